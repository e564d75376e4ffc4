//! `Igniter::Ledger::LedgerStore`'s data (`StoreObj`: the core ledger, the caches of
//! Ruby objects handed out, the handle's state) and its lifecycle methods: construction,
//! open, share, close, and the plain accessors. The other jobs have their own modules:
//! `writes` (write, append, transaction), `reads`, `registration`, `reports`, `caches`.
//!
//! GVL: commits of a file-backed store in `fsync` mode, open/replay, checkpoint and close
//! run with the GVL released (see `gvl.rs`); everything they need from Ruby is converted
//! to Rust data first, and consumer notifications are delivered after the GVL is back.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use igniter_ledger::{Durability, HashKeys, LedgerStore, OpenOptions};
use magnus::{
    data_type_builder, gc::Marker, prelude::*, typed_data::Obj, value::Opaque, DataType,
    DataTypeFunctions, Error, RClass, Ruby, TypedData, Value as RValue,
};

use crate::caches::{PartitionCache, ReadCache, TimeTravelCache};
use crate::errors::ledger_err;
use crate::{errors, gvl, render, Classes};

/// The data behind a `LedgerStore` object.
///
/// Handles made by `_share` (a second open of a file this process already has open) hold
/// the same ledger and the same `Arc`s below, so what one registers or caches the others
/// see, and every Ruby object the ledger holds stays marked while any handle lives.
pub struct StoreObj {
    pub(crate) ledger: LedgerStore,
    /// Commits wait for fsync: release the GVL around them.
    pub(crate) release_gvl: bool,
    /// Every Ruby object the core holds through this store (coercion blocks, consumers).
    /// Append-only: a replaced coercion may still be running when it is replaced.
    callbacks: Arc<Mutex<Vec<Opaque<RValue>>>>,
    /// Deep-frozen values handed out by `read`, marked for the GC.
    pub(crate) cache: Arc<Mutex<ReadCache>>,
    /// Fact handles handed out by `history_partition`, marked for the GC.
    pub(crate) slices: Arc<Mutex<PartitionCache>>,
    /// Time-travel answers (`read` with `as_of:`), marked for the GC.
    pub(crate) time_travel: Arc<Mutex<TimeTravelCache>>,
    /// Set once any coercion is registered: plain current reads then take the general
    /// path (through the core's coercion step).
    pub(crate) any_coercion: Arc<AtomicBool>,
    /// The Fact objects recent writes returned (for `fact_by_id`'s identity).
    pub(crate) recent: Arc<Mutex<crate::identity::RecentFacts>>,
    /// The read cache's capacity (0: off), readable without its lock.
    pub(crate) cache_cap: usize,
    /// Storage rewrites (compaction, prune, erasure) begun plus ended through this handle:
    /// odd while one runs. Caches are filled only with what was read within one even
    /// epoch, so nothing read before a rewrite is cached after it.
    rewrites: Arc<AtomicU64>,
    /// This handle was closed (the ledger stays open while another handle is).
    handle_closed: AtomicBool,
    /// The `backend:` object every committed fact is handed to (`write_fact`), if any.
    backend: OnceLock<Opaque<RValue>>,
}

/// Locks a mutex of the store. No Ruby call is ever made while one is held, so the GC
/// (which takes them in `mark`) never finds one held by the thread running the GC;
/// poisoning (a panic while held) cannot leave the data inconsistent, so it is ignored.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StoreObj {
    pub(crate) fn new(ledger: LedgerStore, cache_entries: usize, slice_handles: usize) -> Self {
        let release_gvl = (ledger.path().is_some() || ledger.is_segmented())
            && ledger.durability() == Durability::Fsync;
        StoreObj {
            ledger,
            release_gvl,
            callbacks: Arc::new(Mutex::new(Vec::new())),
            cache: Arc::new(Mutex::new(ReadCache::new(cache_entries))),
            recent: Arc::new(Mutex::new(crate::identity::RecentFacts::new(
                crate::identity::DEFAULT_KEPT,
            ))),
            any_coercion: Arc::new(AtomicBool::new(false)),
            cache_cap: cache_entries,
            rewrites: Arc::new(AtomicU64::new(0)),
            slices: Arc::new(Mutex::new(PartitionCache::new(slice_handles))),
            time_travel: Arc::new(Mutex::new(TimeTravelCache::new(0))),
            handle_closed: AtomicBool::new(false),
            backend: OnceLock::new(),
        }
    }

    /// Another handle on the same ledger, sharing everything but the handle's own state
    /// (see the type's doc).
    fn shared(&self) -> Self {
        StoreObj {
            ledger: self.ledger.clone(),
            release_gvl: self.release_gvl,
            callbacks: self.callbacks.clone(),
            cache: self.cache.clone(),
            recent: self.recent.clone(),
            rewrites: self.rewrites.clone(),
            slices: self.slices.clone(),
            time_travel: self.time_travel.clone(),
            any_coercion: self.any_coercion.clone(),
            cache_cap: self.cache_cap,
            handle_closed: AtomicBool::new(false),
            backend: OnceLock::new(),
        }
    }

    /// The core ledger (shared with the changefeed bindings and the protocol interpreter).
    pub(crate) fn ledger(&self) -> &LedgerStore {
        &self.ledger
    }

    /// The rewrite epoch (see `rewrites`), read before reading the ledger.
    pub(crate) fn epoch(&self) -> u64 {
        self.rewrites.load(Ordering::Acquire)
    }

    /// Whether what was read since `epoch` may be cached: no rewrite began or ran since.
    pub(crate) fn cacheable(&self, epoch: u64) -> bool {
        epoch.is_multiple_of(2) && self.epoch() == epoch
    }

    /// Marks a storage rewrite as running (before the core is called).
    pub(crate) fn begin_rewrite(&self) {
        self.rewrites.fetch_add(1, Ordering::AcqRel);
    }

    /// Marks it ended and forgets every cached value and slice (facts left, values were
    /// erased, partitions shrank).
    pub(crate) fn end_rewrite(&self) {
        self.rewrites.fetch_add(1, Ordering::AcqRel);
        self.forget_cached();
    }

    fn forget_cached(&self) {
        lock(&self.cache).clear();
        lock(&self.slices).clear();
        lock(&self.time_travel).clear();
        lock(&self.recent).clear();
    }

    /// `ClosedError` once this handle was closed (writes refuse a closed handle).
    pub(crate) fn check_open(&self, ruby: &Ruby) -> Result<(), Error> {
        if !self.handle_closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let path = self
            .ledger
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Err(Error::new(
            errors::closed(ruby),
            format!(
                "this handle of {path} was closed (the ledger stays open for its other handles)"
            ),
        ))
    }

    /// Whether a `backend:` object takes the committed facts.
    pub(crate) fn has_backend(&self) -> bool {
        self.backend.get().is_some()
    }

    /// Hands a fact just committed to the `backend:` object, if any.
    pub(crate) fn hand_to_backend(&self, ruby: &Ruby, fact: RValue) -> Result<(), Error> {
        match self.backend.get() {
            Some(b) => ruby
                .get_inner(*b)
                .funcall::<_, _, RValue>("write_fact", (fact,))
                .map(|_| ()),
            None => Ok(()),
        }
    }

    /// The list of Ruby objects the core holds through this store (the in-process
    /// server checks it is empty before running work off a Ruby thread).
    pub(crate) fn callback_list(&self) -> Arc<Mutex<Vec<Opaque<RValue>>>> {
        self.callbacks.clone()
    }

    pub(crate) fn keep(&self, v: RValue) -> Opaque<RValue> {
        let o = Opaque::from(v);
        lock(&self.callbacks).push(o);
        o
    }
}

impl DataTypeFunctions for StoreObj {
    fn mark(&self, marker: &Marker) {
        for v in lock(&self.callbacks).iter() {
            marker.mark(*v);
        }
        for v in lock(&self.cache).values() {
            marker.mark(*v);
        }
        for v in lock(&self.recent).values() {
            marker.mark(*v);
        }
        for slice in lock(&self.slices).map.values() {
            marker.mark(slice.facts);
        }
        for (v, _) in lock(&self.time_travel).values() {
            marker.mark(*v);
        }
        if let Some(b) = self.backend.get() {
            marker.mark(*b);
        }
    }
}

// SAFETY: `mark` (flag set) marks every Ruby object the store holds; `free_immediately`
// is sound because dropping a `StoreObj` calls no Ruby API (the core flushes its buffer
// with plain write(2); the callbacks are `Opaque` handles).
unsafe impl TypedData for StoreObj {
    fn class(ruby: &Ruby) -> RClass {
        ruby.get_inner(Classes::get().store)
    }

    fn data_type() -> &'static DataType {
        static DATA_TYPE: DataType = data_type_builder!(StoreObj, "Igniter::Ledger::LedgerStore")
            .mark()
            .free_immediately()
            .build();
        &DATA_TYPE
    }
}

pub(crate) fn check_class(ruby: &Ruby, klass: RClass) -> Result<(), Error> {
    let base: RClass = ruby.get_inner(Classes::get().store);
    if klass.is_inherited(base) {
        Ok(())
    } else {
        Err(Error::new(
            ruby.exception_type_error(),
            format!("{klass} is not a LedgerStore class"),
        ))
    }
}

// ------------------------------------------------------------------ construction

/// `:keep` / `:symbolize` (the Ruby layer checks the value; anything else is an
/// ArgumentError here too).
pub(crate) fn hash_keys_arg(ruby: &Ruby, v: String) -> Result<HashKeys, Error> {
    HashKeys::parse(&v).ok_or_else(|| {
        Error::new(
            ruby.exception_arg_error(),
            format!("hash_keys: must be :keep or :symbolize, got :{v}"),
        )
    })
}

fn memory(
    ruby: &Ruby,
    klass: RClass,
    cache_entries: usize,
    slice_handles: usize,
    hash_keys: String,
) -> Result<Obj<StoreObj>, Error> {
    check_class(ruby, klass)?;
    let opts = OpenOptions::new().hash_keys(hash_keys_arg(ruby, hash_keys)?);
    Ok(ruby.obj_wrap_as(
        StoreObj::new(LedgerStore::memory_with(opts), cache_entries, slice_handles),
        klass,
    ))
}

#[allow(clippy::too_many_arguments)]
fn open(
    ruby: &Ruby,
    klass: RClass,
    path: String,
    durability: String,
    recover: bool,
    cache_entries: usize,
    slice_handles: usize,
    hash_keys: String,
) -> Result<Obj<StoreObj>, Error> {
    check_class(ruby, klass)?;
    // The core's message names the modes as strings; Ruby passes Symbols.
    let durability = Durability::parse(&durability).map_err(|_| {
        ledger_err(ruby)(igniter_ledger::Error::InvalidArgument(format!(
            "durability must be :fsync, :flush or :none, got {durability:?}"
        )))
    })?;
    let opts = OpenOptions::new()
        .durability(durability)
        .recover(recover)
        .hash_keys(hash_keys_arg(ruby, hash_keys)?);
    let path = PathBuf::from(path);
    let ledger = gvl::without_gvl(move || LedgerStore::open_with(&path, opts))
        .map_err(|m| errors::internal(ruby, "open", m))?
        .map_err(ledger_err(ruby))?;
    Ok(ruby.obj_wrap_as(StoreObj::new(ledger, cache_entries, slice_handles), klass))
}

fn path(s: &StoreObj) -> Option<String> {
    s.ledger.path().map(|p| p.to_string_lossy().into_owned())
}

fn durability(ruby: &Ruby, s: &StoreObj) -> Option<RValue> {
    s.ledger
        .path()
        .map(|_| render::sym(ruby, s.ledger.durability().name()))
}

fn consumer_failures(s: &StoreObj) -> u64 {
    s.ledger.consumer_failures()
}

// ------------------------------------------------------------------ lifecycle

fn close(ruby: &Ruby, s: &StoreObj) -> Result<(), Error> {
    let ledger = s.ledger.clone();
    gvl::without_gvl(move || ledger.close())
        .map_err(|m| errors::internal(ruby, "close", m))?
        .map_err(ledger_err(ruby))
}

fn is_closed(s: &StoreObj) -> bool {
    s.ledger.is_closed()
}

fn hash_keys(ruby: &Ruby, s: &StoreObj) -> RValue {
    render::sym(ruby, s.ledger.hash_keys().name())
}

/// `_share(klass)`: a new `klass` object on this handle's ledger (see `StoreObj`).
fn share(ruby: &Ruby, s: &StoreObj, klass: RClass) -> Result<Obj<StoreObj>, Error> {
    check_class(ruby, klass)?;
    if s.ledger.is_closed() {
        return Err(errors::ledger_error(ruby, igniter_ledger::Error::Closed));
    }
    Ok(ruby.obj_wrap_as(s.shared(), klass))
}

fn is_memory(s: &StoreObj) -> bool {
    s.ledger.path().is_none()
}

/// Defines the native methods of `LedgerStore`.
/// `_close_handle`: marks this handle closed; true when it was open.
fn close_handle(s: &StoreObj) -> bool {
    !s.handle_closed.swap(true, Ordering::AcqRel)
}

fn is_handle_closed(s: &StoreObj) -> bool {
    s.handle_closed.load(Ordering::Acquire)
}

/// `_set_backend(object)`: the object every committed fact is handed to (set once, at
/// construction; nil for none).
fn set_backend(s: &StoreObj, backend: RValue) {
    if !backend.is_nil() {
        let _ = s.backend.set(Opaque::from(backend));
    }
}

fn backend(ruby: &Ruby, s: &StoreObj) -> RValue {
    s.backend
        .get()
        .map_or_else(|| render::nil(ruby), |b| ruby.get_inner(*b))
}

/// `_time_travel_cap(n)`: the bound of the time-travel answers kept (the `lru_cap:`).
fn time_travel_cap(s: &StoreObj, cap: usize) {
    lock(&s.time_travel).set_cap(cap);
}

/// `_time_travel_size`: the time-travel answers kept.
fn time_travel_size(s: &StoreObj) -> usize {
    lock(&s.time_travel).len()
}

/// `_time_travel_forget(store, key)`: forgets the time-travel answers of `store` (every
/// store for nil) and `key` (every key for nil); names that are not Symbols or Strings
/// match nothing.
fn time_travel_forget(s: &StoreObj, store: RValue, key: RValue) {
    let name =
        |v: RValue| crate::convert::sym_name(v).or_else(|_| String::try_convert(v).map_err(|_| ()));
    let store = (!store.is_nil()).then(|| name(store));
    let key = (!key.is_nil()).then(|| name(key));
    lock(&s.time_travel).retain(|k| {
        let hit = |want: &Option<Result<String, ()>>, have: &str| match want {
            None => true,
            Some(Ok(w)) => w == have,
            Some(Err(())) => false,
        };
        !(hit(&store, &k.store) && hit(&key, &k.key))
    });
}

/// Defines the lifecycle methods and accessors of `LedgerStore`.
pub fn define(class: RClass) -> Result<(), Error> {
    use magnus::{function, method};
    class.define_singleton_method("_memory", function!(memory, 4))?;
    class.define_singleton_method("_open", function!(open, 7))?;
    class.define_method("path", method!(path, 0))?;
    class.define_method("durability", method!(durability, 0))?;
    class.define_method("consumer_failures", method!(consumer_failures, 0))?;
    class.define_private_method("_close", method!(close, 0))?;
    class.define_private_method("_closed?", method!(is_closed, 0))?;
    class.define_private_method("_close_handle", method!(close_handle, 0))?;
    class.define_private_method("_handle_closed?", method!(is_handle_closed, 0))?;
    class.define_private_method("_set_backend", method!(set_backend, 1))?;
    class.define_private_method("_backend", method!(backend, 0))?;
    class.define_private_method("_time_travel_cap", method!(time_travel_cap, 1))?;
    class.define_private_method("_time_travel_size", method!(time_travel_size, 0))?;
    class.define_private_method("_time_travel_forget", method!(time_travel_forget, 2))?;
    class.define_method("memory?", method!(is_memory, 0))?;
    class.define_method("hash_keys", method!(hash_keys, 0))?;
    class.define_private_method("_share", method!(share, 1))?;
    Ok(())
}
