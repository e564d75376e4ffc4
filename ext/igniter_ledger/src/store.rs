//! `Igniter::Ledger::LedgerStore`'s native methods.
//!
//! The Ruby layer (`lib/igniter/ledger/ledger_store.rb`) defines the public methods with
//! keyword arguments and calls these positional ones (named with a leading underscore).
//!
//! GVL: commits of a file-backed store in `fsync` mode, open/replay, checkpoint and close
//! run with the GVL released (see `gvl.rs`); everything they need from Ruby is converted
//! to Rust data first, and consumer notifications are delivered after the GVL is back.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use igniter_ledger::{
    AccessPath, Append, Batch, Durability, Fact, HashKeys, HistoryQuery, LedgerStore, OpenOptions,
    OpenReport, PartitionQuery, Read, ReadFact, SnapshotOutcome, Value, Write,
};
use magnus::{
    data_type_builder, gc::Marker, prelude::*, typed_data::Obj, value::Opaque, DataType,
    DataTypeFunctions, Error, IntoValue, RArray, RClass, RHash, RString, Ruby, Symbol, TypedData,
    Value as RValue,
};

use crate::callbacks::{self, RubyCoercion, RubyConsumer};
use crate::fact::FactObj;
use crate::{args, convert, errors, gvl, Classes};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use std::os::raw::c_long;

/// Ruby values of recently read facts, by fact id (facts never change, so an entry never
/// goes stale). A least-recently-used cache bounded by `cap` entries: a hit makes its
/// entry the most recently used; the least recently used goes first.
///
/// Recency is kept with use stamps: each entry holds the stamp of its last use, and
/// `order` lists (id, stamp) pairs in use order. A hit pushes a new pair instead of
/// moving the old one (O(1)); pairs whose stamp is no longer the entry's are skipped
/// when evicting, and `order` is compacted once it holds more than twice `cap` pairs, so
/// every operation is amortized O(1).
struct ReadCache {
    cap: usize,
    map: HashMap<uuid::Uuid, (Opaque<RValue>, u64), convert::QuickState>,
    order: VecDeque<(uuid::Uuid, u64)>,
    clock: u64,
}

impl ReadCache {
    fn new(cap: usize) -> Self {
        ReadCache {
            cap,
            map: HashMap::default(),
            order: VecDeque::new(),
            clock: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The cached value, made the most recently used.
    fn get(&mut self, id: &uuid::Uuid) -> Option<Opaque<RValue>> {
        let stamp = self.clock + 1;
        let (v, used) = self.map.get_mut(id)?;
        *used = stamp;
        let v = *v;
        self.clock = stamp;
        self.order.push_back((*id, stamp));
        self.compact();
        Some(v)
    }

    fn put(&mut self, id: uuid::Uuid, v: Opaque<RValue>) {
        if self.cap == 0 {
            return;
        }
        let stamp = self.tick();
        self.map.insert(id, (v, stamp));
        self.order.push_back((id, stamp));
        while self.map.len() > self.cap {
            let Some((old, s)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|(_, used)| *used == s) {
                self.map.remove(&old);
            }
        }
        self.compact();
    }

    /// Drops the stale pairs of `order` once it holds more than twice `cap`.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.cap.max(8) {
            let map = &self.map;
            self.order
                .retain(|(id, s)| map.get(id).is_some_and(|(_, used)| used == s));
        }
    }

    fn values(&self) -> impl Iterator<Item = &Opaque<RValue>> {
        self.map.values().map(|(v, _)| v)
    }
}

/// What a cached `history_partition` slice is filed under: store, partition key and the
/// partition value's encoded bytes (values are not `Hash`; equal values encode equally).
#[derive(Clone, PartialEq, Eq, Hash)]
struct SliceKey {
    store: String,
    key: igniter_ledger::MapKey,
    value: Vec<u8>,
}

/// A cached slice: an Array of `Fact` handles (never handed out: callers get copies; only
/// the cache appends to it), its length and its last fact's id.
struct Slice {
    facts: Opaque<RArray>,
    len: usize,
    last: Option<uuid::Uuid>,
    /// The last fact's transaction time.
    last_tx: Option<igniter_ledger::Timestamp>,
}

/// `history_partition` answers (without `since:`/`as_of:`), by slice.
///
/// Partitions only grow, by appending in commit order, so a slice cached at any moment
/// stays a prefix of its partition, and it is the whole partition exactly while the
/// core's count of the partition (`partition_len`, O(1), touching no fact) equals the
/// slice's length. When the partition has grown, only the facts appended since get new
/// handles. An `append` with `partition_key:` files the `Fact` it returns into its slice
/// when that makes the slice whole again, as the 0.5.x gem kept appended facts in
/// partition buckets. Stores with a registered coercion (Ruby code that runs on every
/// read) are never cached. Bounded by the number of handles it keeps; the oldest slice
/// goes first.
struct PartitionCache {
    cap: usize,
    held: usize,
    map: HashMap<SliceKey, Slice, convert::QuickState>,
    order: VecDeque<SliceKey>,
    /// Stores with a coercion registered through this handle.
    coerced: std::collections::HashSet<String>,
}

impl PartitionCache {
    /// Forgets every slice of `store`.
    fn forget_store(&mut self, store: &str) {
        let keys: Vec<SliceKey> = self
            .map
            .keys()
            .filter(|k| k.store == store)
            .cloned()
            .collect();
        for k in keys {
            self.remove(&k);
        }
    }

    fn remove(&mut self, key: &SliceKey) -> Option<Slice> {
        let slice = self.map.remove(key)?;
        self.held -= slice.len;
        Some(slice)
    }

    fn put(&mut self, key: SliceKey, slice: Slice) {
        if slice.len > self.cap {
            self.remove(&key);
            return;
        }
        self.held += slice.len;
        if let Some(old) = self.map.insert(key.clone(), slice) {
            self.held -= old.len;
        } else {
            self.order.push_back(key);
        }
        self.trim();
    }

    /// Drops the oldest slices while more handles than `cap` are kept.
    fn trim(&mut self) {
        while self.held > self.cap {
            match self.order.pop_front() {
                Some(old) => {
                    self.remove(&old);
                }
                None => break,
            }
        }
    }
}

/// The data behind a `LedgerStore` object.
///
/// Handles made by `_share` (a second open of a file this process already has open) hold
/// the same ledger and the same `Arc`s below, so what one registers or caches the others
/// see, and every Ruby object the ledger holds stays marked while any handle lives.
pub struct StoreObj {
    pub(crate) ledger: LedgerStore,
    /// Commits wait for fsync: release the GVL around them.
    release_gvl: bool,
    /// Every Ruby object the core holds through this store (coercion blocks, consumers).
    /// Append-only: a replaced coercion may still be running when it is replaced.
    callbacks: Arc<Mutex<Vec<Opaque<RValue>>>>,
    /// Deep-frozen values handed out by `read`, marked for the GC.
    cache: Arc<Mutex<ReadCache>>,
    /// Fact handles handed out by `history_partition`, marked for the GC.
    slices: Arc<Mutex<PartitionCache>>,
    /// Set once any coercion is registered: plain current reads then take the general
    /// path (through the core's coercion step).
    any_coercion: Arc<std::sync::atomic::AtomicBool>,
    /// The Fact objects recent writes returned (for `fact_by_id`'s identity).
    recent: Arc<Mutex<crate::identity::RecentFacts>>,
    /// The read cache's capacity (0: off), readable without its lock.
    cache_cap: usize,
    /// Storage rewrites (compaction, prune, erasure) begun plus ended through this handle:
    /// odd while one runs. Caches are filled only with what was read within one even
    /// epoch, so nothing read before a rewrite is cached after it.
    rewrites: Arc<std::sync::atomic::AtomicU64>,
}

/// Locks a mutex of the store. No Ruby call is ever made while one is held, so the GC
/// (which takes them in `mark`) never finds one held by the thread running the GC;
/// poisoning (a panic while held) cannot leave the data inconsistent, so it is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StoreObj {
    pub(crate) fn new(ledger: LedgerStore, cache_entries: usize, slice_handles: usize) -> Self {
        let release_gvl = ledger.path().is_some() && ledger.durability() == Durability::Fsync;
        StoreObj {
            ledger,
            release_gvl,
            callbacks: Arc::new(Mutex::new(Vec::new())),
            cache: Arc::new(Mutex::new(ReadCache::new(cache_entries))),
            recent: Arc::new(Mutex::new(crate::identity::RecentFacts::new(
                crate::identity::DEFAULT_KEPT,
            ))),
            any_coercion: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            cache_cap: cache_entries,
            rewrites: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            slices: Arc::new(Mutex::new(PartitionCache {
                cap: slice_handles,
                held: 0,
                map: HashMap::default(),
                order: VecDeque::new(),
                coerced: std::collections::HashSet::new(),
            })),
        }
    }

    /// Another handle on the same ledger, sharing everything (see the type's doc).
    fn shared(&self) -> Self {
        StoreObj {
            ledger: self.ledger.clone(),
            release_gvl: self.release_gvl,
            callbacks: self.callbacks.clone(),
            cache: self.cache.clone(),
            recent: self.recent.clone(),
            rewrites: self.rewrites.clone(),
            slices: self.slices.clone(),
            any_coercion: self.any_coercion.clone(),
            cache_cap: self.cache_cap,
        }
    }

    /// The core ledger (shared with the changefeed bindings and the protocol interpreter).
    pub(crate) fn ledger(&self) -> &LedgerStore {
        &self.ledger
    }

    /// The rewrite epoch (see `rewrites`), read before reading the ledger.
    fn epoch(&self) -> u64 {
        self.rewrites.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether what was read since `epoch` may be cached: no rewrite began or ran since.
    fn cacheable(&self, epoch: u64) -> bool {
        epoch.is_multiple_of(2) && self.epoch() == epoch
    }

    /// Marks a storage rewrite as running (before the core is called).
    pub(crate) fn begin_rewrite(&self) {
        self.rewrites
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Marks it ended and forgets every cached value and slice (facts left, values were
    /// erased, partitions shrank).
    pub(crate) fn end_rewrite(&self) {
        self.rewrites
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.forget_cached();
    }

    fn forget_cached(&self) {
        let mut c = lock(&self.cache);
        c.map.clear();
        c.order.clear();
        drop(c);
        let mut sl = lock(&self.slices);
        sl.map.clear();
        sl.order.clear();
        sl.held = 0;
        drop(sl);
        lock(&self.recent).clear();
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

pub(crate) fn ledger_err(ruby: &Ruby) -> impl Fn(igniter_ledger::Error) -> Error + '_ {
    move |e| errors::ledger_error(ruby, e)
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
    refuse_special_file(ruby, &path)?;
    let ledger = gvl::without_gvl(move || LedgerStore::open_with(&path, opts))
        .map_err(|m| errors::internal(ruby, "open", m))?
        .map_err(ledger_err(ruby))?;
    Ok(ruby.obj_wrap_as(StoreObj::new(ledger, cache_entries, slice_handles), klass))
}

/// A ledger lives in a regular file. A character device (`/dev/zero`, `/dev/full`), a
/// FIFO or a socket — directly or through a symlink — would be read without end on open
/// (a device yields bytes forever, a FIFO blocks), so it is refused up front with an
/// `IOError`. Directories and missing paths are left to the core (EISDIR, or creation).
fn refuse_special_file(ruby: &Ruby, path: &std::path::Path) -> Result<(), Error> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() && !m.is_dir() => Err(errors::ledger_error(
            ruby,
            igniter_ledger::Error::Io {
                context: format!("opening {}", path.display()),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a regular file (a ledger lives in a regular file)",
                ),
            },
        )),
        _ => Ok(()),
    }
}

// ------------------------------------------------------------------ writing

fn value_arg(ruby: &Ruby, v: RValue, what: &str) -> Result<Value, Error> {
    convert::to_value(v, what).map_err(|e| e.into_error(ruby))
}

fn opt_value_arg(ruby: &Ruby, v: RValue, what: &str) -> Result<Option<Value>, Error> {
    if v.is_nil() {
        Ok(None)
    } else {
        value_arg(ruby, v, what).map(Some)
    }
}

/// A core `Write` from the positional arguments of `_write` (also used by `Fact._build`).
#[allow(clippy::too_many_arguments)]
pub fn build_write(
    ruby: &Ruby,
    store: RValue,
    key: RValue,
    value: RValue,
    schema_version: RValue,
    causation: RValue,
    valid_time: RValue,
    producer: RValue,
    derivation: RValue,
    expected: RValue,
) -> Result<Write, Error> {
    let store = args::name(ruby, store, "store")?;
    let key = args::name(ruby, key, "key")?;
    let value = value_arg(ruby, value, "value")?;
    let mut w = Write::new(store, key, value)
        .schema_version(args::schema_version(ruby, schema_version)?)
        .causation_opt(args::opt_fact_id(ruby, causation, "causation")?)
        .valid_time_opt(args::opt_valid_time(ruby, valid_time, "valid_time")?)
        .expected(args::expected(ruby, expected)?);
    if let Some(p) = opt_value_arg(ruby, producer, "producer")? {
        w = w.producer(p);
    }
    if let Some(d) = opt_value_arg(ruby, derivation, "derivation")? {
        w = w.derivation(d);
    }
    Ok(w)
}

#[allow(clippy::too_many_arguments)]
fn build_append(
    ruby: &Ruby,
    history: RValue,
    event: RValue,
    partition_key: RValue,
    schema_version: RValue,
    causation: RValue,
    valid_time: RValue,
    producer: RValue,
    derivation: RValue,
) -> Result<(Append, Option<(SliceKey, Value)>), Error> {
    let history = args::name(ruby, history, "history")?;
    let event = value_arg(ruby, event, "event")?;
    let pk = if partition_key.is_nil() {
        None
    } else {
        Some(convert::to_map_key(partition_key, "partition_key").map_err(|e| e.into_error(ruby))?)
    };
    // The slice this event joins, for the partition cache.
    let slice = pk.as_ref().and_then(|pk| {
        let pv = event.get(pk)?;
        let mut value = Vec::with_capacity(16);
        igniter_ledger::__private::codec::write_value(&mut value, pv);
        Some((
            SliceKey {
                store: history.clone(),
                key: pk.clone(),
                value,
            },
            pv.clone(),
        ))
    });
    let mut a = Append::new(history, event)
        .partition_map_key(pk)
        .schema_version(args::schema_version(ruby, schema_version)?)
        .valid_time_opt(args::opt_valid_time(ruby, valid_time, "valid_time")?);
    if let Some(c) = args::opt_fact_id(ruby, causation, "causation")? {
        a = a.causation(c);
    }
    if let Some(p) = opt_value_arg(ruby, producer, "producer")? {
        a = a.producer(p);
    }
    if let Some(d) = opt_value_arg(ruby, derivation, "derivation")? {
        a = a.derivation(d);
    }
    Ok((a, slice))
}

/// Commits a batch (GVL released in fsync mode), then delivers consumer notifications
/// and runs the derivations the commit triggers.
fn commit(ruby: &Ruby, s: &StoreObj, batch: Batch) -> Result<Vec<Fact>, Error> {
    let committed = if s.release_gvl {
        let ledger = s.ledger.clone();
        gvl::without_gvl(move || ledger.commit_deferred(batch))
            .map_err(|m| errors::internal(ruby, "commit", m))?
    } else {
        s.ledger.commit_deferred(batch)
    }
    .map_err(ledger_err(ruby))?;
    if !committed.pending.is_empty() {
        s.ledger.deliver(committed.pending);
    }
    s.ledger.react(&committed.facts);
    callbacks::raise_deferred()?;
    Ok(committed.facts)
}

fn commit_one(ruby: &Ruby, s: &StoreObj, batch: Batch) -> Result<Obj<FactObj>, Error> {
    let fact = commit(ruby, s, batch)?
        .pop()
        .ok_or_else(|| errors::internal(ruby, "commit", "no fact returned".to_owned()))?;
    Ok(written(s, FactObj::wrap_raw(ruby, fact)))
}

/// Notes a Fact object a write returns, for `fact_by_id` (see `identity.rs`).
fn written(s: &StoreObj, f: Obj<FactObj>) -> Obj<FactObj> {
    lock(&s.recent).note(f.fact.id(), Opaque::from(f.as_value()));
    f
}

#[allow(clippy::too_many_arguments)]
fn write(
    ruby: &Ruby,
    s: &StoreObj,
    store: RValue,
    key: RValue,
    value: RValue,
    schema_version: RValue,
    causation: RValue,
    valid_time: RValue,
    producer: RValue,
    derivation: RValue,
    expected: RValue,
) -> Result<Obj<FactObj>, Error> {
    let w = build_write(
        ruby,
        store,
        key,
        value,
        schema_version,
        causation,
        valid_time,
        producer,
        derivation,
        expected,
    )?;
    commit_one(ruby, s, Batch::new().write(w))
}

#[allow(clippy::too_many_arguments)]
fn append(
    ruby: &Ruby,
    s: &StoreObj,
    history: RValue,
    event: RValue,
    partition_key: RValue,
    schema_version: RValue,
    causation: RValue,
    valid_time: RValue,
    producer: RValue,
    derivation: RValue,
) -> Result<Obj<FactObj>, Error> {
    let (a, slice) = build_append(
        ruby,
        history,
        event,
        partition_key,
        schema_version,
        causation,
        valid_time,
        producer,
        derivation,
    )?;
    let epoch = s.epoch();
    let fact = commit_one(ruby, s, Batch::new().append(a))?;
    if let Some((key, pv)) = slice {
        note_append(ruby, s, key, pv, fact, epoch);
    }
    Ok(fact)
}

/// Files the `Fact` an append returns into its partition's cached slice when the slice
/// plus this fact is the whole partition (or starts the slice of a new partition), so a
/// later `history_partition` hands out this very object instead of building another.
/// The first append with a given partition key also has the core build that key's
/// partition index (which the first `history_partition` call would do anyway).
fn note_append(
    ruby: &Ruby,
    s: &StoreObj,
    key: SliceKey,
    pv: Value,
    fact: Obj<FactObj>,
    epoch: u64,
) {
    let cached = {
        let cache = lock(&s.slices);
        if cache.cap == 0 || cache.coerced.contains(&key.store) {
            return;
        }
        cache.map.get(&key).map(|c| (c.facts, c.len, c.last_tx))
    };
    let q = PartitionQuery::with_key(key.store.clone(), key.key.clone(), pv);
    let len = match s.ledger.partition_len(&q) {
        Some(len) => len,
        None => match s.ledger.history_partition(q) {
            Ok(slice) => slice.len(),
            Err(_) => return,
        },
    };
    // Never call Ruby with the cache locked (the GC's mark takes the lock). Between the
    // look-up above and the update below this thread keeps the GVL and runs no Ruby code
    // (pushing onto an Array runs none), so no other Ruby thread changes the cache.
    let tx = fact.fact.transaction_time();
    match cached {
        // One fact more than the slice, and this one comes after the slice's last (a
        // reader may have cached the slice with this fact already in it): it is this one.
        Some((facts, n, last_tx)) if len == n + 1 && last_tx.is_none_or(|t| t < tx) => {
            if ruby.get_inner(facts).push(fact).is_err() {
                return;
            }
            let mut cache = lock(&s.slices);
            if !s.cacheable(epoch) {
                return;
            }
            if let Some(slice) = cache.map.get_mut(&key) {
                if ruby.get_inner(slice.facts).as_raw() == ruby.get_inner(facts).as_raw() {
                    slice.len += 1;
                    slice.last = Some(fact.fact.id());
                    slice.last_tx = Some(tx);
                    cache.held += 1;
                    cache.trim();
                }
            }
        }
        None if len == 1 => {
            let ary = ruby.ary_new_capa(4);
            if ary.push(fact).is_err() {
                return;
            }
            let mut cache = lock(&s.slices);
            if s.cacheable(epoch) && !cache.map.contains_key(&key) {
                cache.put(
                    key,
                    Slice {
                        facts: Opaque::from(ary),
                        len: 1,
                        last: Some(fact.fact.id()),
                        last_tx: Some(tx),
                    },
                );
            }
        }
        // Anything else (older facts not cached, others appended meanwhile): the next
        // `history_partition` call brings the slice up to date.
        _ => {}
    }
}

/// `_replay(fact)`: takes in a fact recorded elsewhere with its id, transaction time and
/// causation (`Write::restoring`); returns the stored fact.
fn replay_fact(ruby: &Ruby, s: &StoreObj, fact: RValue) -> Result<Obj<FactObj>, Error> {
    let f = <&FactObj>::try_convert(fact).map_err(|_| {
        Error::new(
            ruby.exception_type_error(),
            "replay needs an Igniter::Store::Fact (or a Hash Fact.from_h accepts)",
        )
    })?;
    let parts = f.fact.to_parts();
    commit_one(ruby, s, Batch::new().write(Write::restoring(parts)))
}

/// `_commit(ops)`: ops are `[:write, store, key, value, schema_version, causation,
/// valid_time, producer, derivation, expected]` or `[:append, history, event,
/// partition_key, schema_version, causation, valid_time, producer, derivation]`.
fn commit_ops(ruby: &Ruby, s: &StoreObj, ops: RArray) -> Result<RArray, Error> {
    let mut batch = Batch::new();
    for (i, op) in ops.into_iter().enumerate() {
        let op = RArray::from_value(op).ok_or_else(|| {
            Error::new(
                ruby.exception_type_error(),
                format!("batch operation {} is not an Array", i + 1),
            )
        })?;
        let raw_op = op.as_raw();
        // SAFETY: `raw_op` is a live Array (checked above); `rb_ary_entry` never raises
        // (nil past the end) and the element stays referenced by the array.
        let at = |n: c_long| -> Result<RValue, Error> {
            Ok(unsafe { RValue::from_raw(rb_sys::rb_ary_entry(raw_op, n)) })
        };
        let kind: Symbol = op.entry(0)?;
        let context = |e: Error| -> Error {
            match e.error_type() {
                magnus::error::ErrorType::Error(class, msg) => {
                    Error::new(*class, format!("batch operation {}: {msg}", i + 1))
                }
                _ => e,
            }
        };
        match &*kind.name()? {
            "write" => {
                let w = build_write(
                    ruby,
                    at(1)?,
                    at(2)?,
                    at(3)?,
                    at(4)?,
                    at(5)?,
                    at(6)?,
                    at(7)?,
                    at(8)?,
                    at(9)?,
                )
                .map_err(context)?;
                batch = batch.write(w);
            }
            "append" => {
                let (a, _) = build_append(
                    ruby,
                    at(1)?,
                    at(2)?,
                    at(3)?,
                    at(4)?,
                    at(5)?,
                    at(6)?,
                    at(7)?,
                    at(8)?,
                )
                .map_err(context)?;
                batch = batch.append(a);
            }
            other => {
                return Err(Error::new(
                    ruby.exception_arg_error(),
                    format!("batch operation {}: unknown kind :{other}", i + 1),
                ))
            }
        }
    }
    let facts = commit(ruby, s, batch)?;
    fact_array(
        ruby,
        facts
            .into_iter()
            .map(|f| written(s, FactObj::wrap_raw(ruby, f))),
    )
}

// ------------------------------------------------------------------ reading

fn fact_array(
    ruby: &Ruby,
    facts: impl ExactSizeIterator<Item = Obj<FactObj>>,
) -> Result<RArray, Error> {
    let ary = ruby.ary_new_capa(facts.len());
    for f in facts {
        // SAFETY: `ary` is a fresh, unfrozen array on this frame (visible to the GC), so
        // pushing cannot raise; `f` is a live object, referenced by the array from here.
        unsafe { rb_sys::rb_ary_push(ary.as_raw(), f.as_raw()) };
    }
    Ok(ary)
}

fn read_facts(ruby: &Ruby, facts: Vec<ReadFact>) -> Result<RArray, Error> {
    fact_array(ruby, facts.into_iter().map(|f| FactObj::wrap_read(ruby, f)))
}

fn raw_facts(ruby: &Ruby, facts: Vec<Fact>) -> Result<RArray, Error> {
    fact_array(ruby, facts.into_iter().map(|f| FactObj::wrap_raw(ruby, f)))
}

fn read_query(
    ruby: &Ruby,
    store: RValue,
    key: RValue,
    as_of: RValue,
    valid_at: RValue,
) -> Result<Read, Error> {
    Ok(Read::new(
        args::name(ruby, store, "store")?,
        args::name(ruby, key, "key")?,
    )
    .as_of_opt(args::opt_time(ruby, as_of, "as_of")?)
    .valid_at_opt(args::opt_secs(ruby, valid_at, "valid_at")?))
}

/// A name borrowed from a Symbol's or String's own bytes when it is plain UTF-8 (None:
/// let `args::name` convert or refuse it). Use it before any other Ruby call.
fn borrowed_name<'a>(v: RValue) -> Option<&'a str> {
    let raw = v.as_raw();
    let string = if Symbol::from_value(v).is_some() {
        // SAFETY: `raw` is a Symbol; its name String lives as long as the Symbol, which
        // the caller's argument keeps alive.
        unsafe { rb_sys::rb_sym2str(raw) }
    } else if RString::from_value(v).is_some() {
        raw
    } else {
        return None;
    };
    // SAFETY: `string` is a live String; the caller uses the slice before any Ruby call.
    match unsafe { convert::str_ref(string) } {
        convert::StrRef::Utf8(t) => Some(t),
        _ => None,
    }
}

/// The latest fact of (store, key) for a plain current read — no `as_of:`/`valid_at:`,
/// no coercion registered — looked up with the names borrowed from Ruby (no copies).
/// None when the general path must answer.
fn plain_current(
    s: &StoreObj,
    store: RValue,
    key: RValue,
    as_of: RValue,
    valid_at: RValue,
) -> Option<Option<Fact>> {
    if !as_of.is_nil()
        || !valid_at.is_nil()
        || s.any_coercion.load(std::sync::atomic::Ordering::Acquire)
    {
        return None;
    }
    let store = borrowed_name(store)?;
    let key = borrowed_name(key)?;
    Some(s.ledger.latest(store, key))
}

/// The deep-frozen value of a stored (uncoerced) fact, through the read cache.
fn cached_value(ruby: &Ruby, s: &StoreObj, fact: &Fact, epoch: u64) -> RValue {
    if s.cache_cap == 0 {
        return crate::fact::stored_value(ruby, fact);
    }
    let id = fact.id();
    let cached = lock(&s.cache).get(&id);
    if let Some(v) = cached {
        return ruby.get_inner(v);
    }
    let v = crate::fact::stored_value(ruby, fact);
    let mut cache = lock(&s.cache);
    if s.cacheable(epoch) {
        cache.put(id, Opaque::from(v));
    }
    v
}

fn read(
    ruby: &Ruby,
    s: &StoreObj,
    store: RValue,
    key: RValue,
    as_of: RValue,
    valid_at: RValue,
) -> Result<RValue, Error> {
    let epoch = s.epoch();
    if let Some(found) = plain_current(s, store, key, as_of, valid_at) {
        return Ok(match found {
            // An erased fact reads as nil, like a key never written.
            Some(fact) if !fact.is_erased() => cached_value(ruby, s, &fact, epoch),
            _ => ruby.qnil().as_value(),
        });
    }
    let q = read_query(ruby, store, key, as_of, valid_at)?;
    match s.ledger.read_fact(q).map_err(ledger_err(ruby))? {
        None => Ok(ruby.qnil().as_value()),
        Some(rf) if rf.fact.is_erased() => Ok(ruby.qnil().as_value()),
        Some(ReadFact {
            coerced: Some(v), ..
        }) => Ok(convert::to_ruby(ruby, &v, true)),
        Some(rf) => Ok(cached_value(ruby, s, &rf.fact, epoch)),
    }
}

fn read_fact(
    ruby: &Ruby,
    s: &StoreObj,
    store: RValue,
    key: RValue,
    as_of: RValue,
    valid_at: RValue,
) -> Result<Option<Obj<FactObj>>, Error> {
    if let Some(found) = plain_current(s, store, key, as_of, valid_at) {
        return Ok(found.map(|f| FactObj::wrap_raw(ruby, f)));
    }
    let q = read_query(ruby, store, key, as_of, valid_at)?;
    Ok(s.ledger
        .read_fact(q)
        .map_err(ledger_err(ruby))?
        .map(|rf| FactObj::wrap_read(ruby, rf)))
}

fn history(
    ruby: &Ruby,
    s: &StoreObj,
    store: RValue,
    key: RValue,
    since: RValue,
    as_of: RValue,
) -> Result<RArray, Error> {
    let q = HistoryQuery::new(args::name(ruby, store, "store")?)
        .key_opt(args::opt_name(ruby, key, "key")?)
        .since_opt(args::opt_time(ruby, since, "since")?)
        .as_of_opt(args::opt_time(ruby, as_of, "as_of")?);
    read_facts(ruby, s.ledger.history(q).map_err(ledger_err(ruby))?)
}

fn history_partition(
    ruby: &Ruby,
    s: &StoreObj,
    store: RValue,
    partition_key: RValue,
    partition_value: RValue,
    since: RValue,
    as_of: RValue,
) -> Result<RArray, Error> {
    let pk = convert::to_map_key(partition_key, "partition_key").map_err(|e| e.into_error(ruby))?;
    let pv = value_arg(ruby, partition_value, "partition_value")?;
    let store = args::name(ruby, store, "store")?;
    let since = args::opt_time(ruby, since, "since")?;
    let as_of = args::opt_time(ruby, as_of, "as_of")?;
    // While a rewrite runs (odd epoch) the cache is bypassed.
    let epoch = s.epoch();
    let whole = since.is_none() && as_of.is_none() && epoch.is_multiple_of(2) && {
        let cache = lock(&s.slices);
        cache.cap > 0 && !cache.coerced.contains(&store)
    };
    if !whole {
        let q = PartitionQuery::with_key(store, pk, pv)
            .since_opt(since)
            .as_of_opt(as_of);
        return read_facts(
            ruby,
            s.ledger.history_partition(q).map_err(ledger_err(ruby))?,
        );
    }
    let mut value = Vec::with_capacity(16);
    igniter_ledger::__private::codec::write_value(&mut value, &pv);
    let key = SliceKey {
        store: store.clone(),
        key: pk.clone(),
        value,
    };
    let q = PartitionQuery::with_key(store, pk, pv);
    let cached = lock(&s.slices).map.get(&key).map(|c| (c.facts, c.len));
    if let (Some((facts, n)), Some(len)) = (cached, s.ledger.partition_len(&q)) {
        if n == len {
            // Unchanged: a copy-on-write copy, O(1); the caller may change it.
            return Ok(ruby.get_inner(facts).dup());
        }
    }
    let facts = s.ledger.history_partition(q).map_err(ledger_err(ruby))?;
    cached_slice(ruby, s, key, facts, epoch)
}

/// The answer for a whole slice through the partition cache: a new Array (the caller
/// may change it) holding the cached `Fact` handles, plus new handles for facts appended
/// since the slice was cached.
fn cached_slice(
    ruby: &Ruby,
    s: &StoreObj,
    key: SliceKey,
    facts: Vec<ReadFact>,
    epoch: u64,
) -> Result<RArray, Error> {
    if facts.iter().any(|f| f.coerced.is_some()) {
        // A coercion changes values on every read: nothing to reuse.
        lock(&s.slices).remove(&key);
        return read_facts(ruby, facts);
    }
    let cached = {
        let cache = lock(&s.slices);
        cache.map.get(&key).and_then(|c| {
            let still_prefix =
                c.len <= facts.len() && c.last == c.len.checked_sub(1).map(|i| facts[i].fact.id());
            still_prefix.then_some((c.facts, c.len))
        })
    };
    let last = facts.last().map(|f| f.fact.id());
    let last_tx = facts.last().map(|f| f.fact.transaction_time());
    let len = facts.len();
    let (old, kept) = match cached {
        Some((ary, kept)) => (Some(ruby.get_inner(ary)), kept),
        None => (None, 0),
    };
    if let (Some(old), true) = (old, kept == len) {
        return Ok(old.dup());
    }
    let ary = ruby.ary_new_capa(len);
    if let Some(old) = old {
        ary.concat(old)?;
    }
    for f in facts.into_iter().skip(kept) {
        let f = FactObj::wrap_read(ruby, f);
        // SAFETY: as in `fact_array`.
        unsafe { rb_sys::rb_ary_push(ary.as_raw(), f.as_raw()) };
    }
    // The cache keeps a copy-on-write copy (never handed out, so never changed but by
    // the cache itself); the caller gets `ary`.
    let keep = ary.dup();
    let mut cache = lock(&s.slices);
    if !s.cacheable(epoch) {
        return Ok(ary);
    }
    cache.put(
        key,
        Slice {
            facts: Opaque::from(keep),
            len,
            last,
            last_tx,
        },
    );
    Ok(ary)
}

fn query(
    ruby: &Ruby,
    s: &StoreObj,
    store: RValue,
    scope: RValue,
    as_of: RValue,
) -> Result<RArray, Error> {
    let store = args::name(ruby, store, "store")?;
    let scope = args::name(ruby, scope, "scope")?;
    let as_of = args::opt_time(ruby, as_of, "as_of")?;
    read_facts(
        ruby,
        s.ledger
            .query(&store, &scope, as_of)
            .map_err(ledger_err(ruby))?,
    )
}

// ------------------------------------------------------------------ registration

fn callable(ruby: &Ruby, v: RValue, what: &str) -> Result<RValue, Error> {
    if v.respond_to("call", false)? {
        Ok(v)
    } else {
        Err(Error::new(
            ruby.exception_type_error(),
            format!("{what} must respond to #call"),
        ))
    }
}

#[allow(clippy::too_many_arguments)]
fn register_path(
    ruby: &Ruby,
    s: &StoreObj,
    store: RValue,
    scope: RValue,
    filters: RValue,
    lookup: RValue,
    cache_ttl: RValue,
    consumers: RValue,
) -> Result<(), Error> {
    let store = args::name(ruby, store, "store")?;
    let mut path = match args::opt_name(ruby, scope, "scope")? {
        Some(scope) => AccessPath::scope(store, scope),
        None => AccessPath::point(store),
    };
    if !filters.is_nil() {
        match value_arg(ruby, filters, "filters")? {
            Value::Map(pairs) => {
                for (k, v) in pairs {
                    path = path.filter(k, v);
                }
            }
            _ => {
                return Err(Error::new(
                    ruby.exception_type_error(),
                    "filters must be a Hash",
                ))
            }
        }
    }
    if let Some(l) = opt_value_arg(ruby, lookup, "lookup")? {
        path = path.lookup(l);
    }
    if let Some(ttl) = args::opt_secs(ruby, cache_ttl, "cache_ttl")? {
        path = path.cache_ttl(ttl);
    }
    if !consumers.is_nil() {
        let list = RArray::from_value(consumers).ok_or_else(|| {
            Error::new(
                ruby.exception_type_error(),
                "consumers must be an Array of objects responding to #call",
            )
        })?;
        // Check them all before keeping any.
        let mut checked = Vec::with_capacity(list.len());
        for (i, c) in list.into_iter().enumerate() {
            checked.push(callable(ruby, c, &format!("consumers[{i}]"))?);
        }
        for c in checked {
            let callable = s.keep(c);
            path = path.consumer(Arc::new(RubyConsumer { callable }));
        }
    }
    s.ledger.register_path(path).map_err(ledger_err(ruby))
}

fn register_coercion(ruby: &Ruby, s: &StoreObj, store: RValue, block: RValue) -> Result<(), Error> {
    let store = args::name(ruby, store, "store")?;
    let block = callable(ruby, block, "a coercion")?;
    let callable = s.keep(block);
    {
        let mut slices = lock(&s.slices);
        slices.forget_store(&store);
        slices.coerced.insert(store.clone());
    }
    s.any_coercion
        .store(true, std::sync::atomic::Ordering::Release);
    s.ledger
        .register_coercion(&store, Arc::new(RubyCoercion { callable }))
        .map_err(ledger_err(ruby))
}

// ------------------------------------------------------------------ provenance

fn sym(ruby: &Ruby, name: &str) -> RValue {
    convert::symbol(ruby, name)
}

fn opt_id(ruby: &Ruby, id: Option<uuid::Uuid>) -> RValue {
    match id {
        Some(id) => convert::string(ruby, &id.hyphenated().to_string(), true),
        None => ruby.qnil().as_value(),
    }
}

pub(crate) fn hash_of(ruby: &Ruby, pairs: &[(&str, RValue)]) -> Result<RHash, Error> {
    let h = ruby.hash_new();
    for (k, v) in pairs {
        h.aset(sym(ruby, k), *v)?;
    }
    Ok(h)
}

fn chain_array(ruby: &Ruby, chain: &[igniter_ledger::ChainEntry]) -> Result<RArray, Error> {
    let ary = ruby.ary_new_capa(chain.len());
    for e in chain {
        ary.push(hash_of(
            ruby,
            &[
                ("id", opt_id(ruby, Some(e.id))),
                ("value_hash", convert::string(ruby, &e.value_hash, true)),
                ("causation", opt_id(ruby, e.causation)),
                (
                    "transaction_time",
                    e.transaction_time.as_secs_f64().into_value_with(ruby),
                ),
            ],
        )?)?;
    }
    Ok(ary)
}

fn causation_chain(ruby: &Ruby, s: &StoreObj, store: RValue, key: RValue) -> Result<RArray, Error> {
    let store = args::name(ruby, store, "store")?;
    let key = args::name(ruby, key, "key")?;
    chain_array(ruby, &s.ledger.causation_chain(&store, &key))
}

fn lineage(ruby: &Ruby, s: &StoreObj, store: RValue, key: RValue) -> Result<RHash, Error> {
    let store = args::name(ruby, store, "store")?;
    let key = args::name(ruby, key, "key")?;
    let l = s.ledger.lineage(&store, &key);
    let subject = hash_of(
        ruby,
        &[
            ("store", sym(ruby, &l.store)),
            ("key", convert::string(ruby, &l.key, true)),
        ],
    )?;
    let derived_by = crate::derive::derived_by(ruby, &l.derived_by)?.as_value();
    let proof = match &l.proof_hash {
        Some(p) => convert::string(ruby, p, true),
        None => ruby.qnil().as_value(),
    };
    hash_of(
        ruby,
        &[
            ("subject", subject.as_value()),
            (
                "chain",
                crate::derive::lineage_chain(ruby, s, &store, &key)?.as_value(),
            ),
            ("depth", l.depth.into_value_with(ruby)),
            ("derived_by", derived_by),
            ("proof_hash", proof),
        ],
    )
}

/// The fact with this id (raw), or nil for nil, blank, malformed or unknown ids: the very
/// object a recent write returned when it is still kept (see `identity.rs`).
fn fact_by_id(ruby: &Ruby, s: &StoreObj, id: RValue) -> Option<RValue> {
    let id = args::lookup_id(id)?;
    let fact = s.ledger.fact_by_id(id)?;
    if let Some(kept) = lock(&s.recent).get(&id) {
        return Some(ruby.get_inner(kept));
    }
    Some(FactObj::wrap_raw(ruby, fact).as_value())
}

fn fact_ref(ruby: &Ruby, s: &StoreObj, id: RValue) -> Result<Option<RHash>, Error> {
    let Some(id) = args::lookup_id(id) else {
        return Ok(None);
    };
    let Some(r) = s.ledger.fact_ref(id) else {
        return Ok(None);
    };
    hash_of(
        ruby,
        &[
            ("id", opt_id(ruby, Some(r.id))),
            ("store", sym(ruby, &r.store)),
            ("key", convert::string(ruby, &r.key, true)),
            (
                "transaction_time",
                r.transaction_time.as_secs_f64().into_value_with(ruby),
            ),
            ("valid_time", r.valid_time.into_value_with(ruby)),
            ("value_hash", convert::string(ruby, &r.value_hash, true)),
        ],
    )
    .map(Some)
}

fn fact_count(s: &StoreObj) -> usize {
    s.ledger.fact_count()
}

fn fact_log_all(ruby: &Ruby, s: &StoreObj, since: RValue, as_of: RValue) -> Result<RArray, Error> {
    let since = args::opt_time(ruby, since, "since")?;
    let as_of = args::opt_time(ruby, as_of, "as_of")?;
    raw_facts(ruby, s.ledger.fact_log_all(since, as_of))
}

// ------------------------------------------------------------------ metadata

fn schema_graph(ruby: &Ruby, s: &StoreObj) -> Result<RHash, Error> {
    let g = s.ledger.schema_graph();
    let paths = ruby.ary_new_capa(g.paths.len());
    for p in &g.paths {
        let filters = ruby.hash_new();
        for (k, v) in p.filters() {
            filters.aset(
                convert::key_to_ruby(ruby, k),
                convert::to_ruby(ruby, v, true),
            )?;
        }
        filters.freeze();
        let scope = match p.scope_name() {
            Some(sc) => sym(ruby, sc),
            None => ruby.qnil().as_value(),
        };
        let lookup = match p.lookup_label() {
            Some(l) => convert::to_ruby(ruby, l, true),
            None => ruby.qnil().as_value(),
        };
        paths.push(hash_of(
            ruby,
            &[
                ("store", sym(ruby, p.store_name())),
                ("scope", scope),
                ("filters", filters.as_value()),
                ("lookup", lookup),
                ("cache_ttl", p.ttl().into_value_with(ruby)),
                ("consumers", p.consumer_count().into_value_with(ruby)),
            ],
        )?)?;
    }
    let partitions = ruby.ary_new_capa(g.partitions.len());
    for (store, key) in &g.partitions {
        partitions.push(hash_of(
            ruby,
            &[
                ("store", sym(ruby, store)),
                ("partition_key", convert::key_to_ruby(ruby, key)),
            ],
        )?)?;
    }
    let coercions = ruby.ary_from_iter(g.coercions.iter().map(|n| sym(ruby, n)));
    let stores = ruby.ary_from_iter(g.stores.iter().map(|n| sym(ruby, n)));
    hash_of(
        ruby,
        &[
            ("paths", paths.as_value()),
            ("partitions", partitions.as_value()),
            ("coercions", coercions.as_value()),
            ("stores", stores.as_value()),
        ],
    )
}

fn report_hash(ruby: &Ruby, r: &OpenReport) -> Result<RHash, Error> {
    let snapshot = match &r.snapshot {
        SnapshotOutcome::Absent => hash_of(ruby, &[("status", sym(ruby, "absent"))])?,
        SnapshotOutcome::Loaded { facts, wal_offset } => hash_of(
            ruby,
            &[
                ("status", sym(ruby, "loaded")),
                ("facts", facts.into_value_with(ruby)),
                ("wal_offset", wal_offset.into_value_with(ruby)),
            ],
        )?,
        SnapshotOutcome::LoadedLegacy { facts } => hash_of(
            ruby,
            &[
                ("status", sym(ruby, "loaded_legacy")),
                ("facts", facts.into_value_with(ruby)),
            ],
        )?,
        SnapshotOutcome::Ignored { reason } => hash_of(
            ruby,
            &[
                ("status", sym(ruby, "ignored")),
                ("reason", convert::string(ruby, reason, true)),
            ],
        )?,
        // An outcome newer than this binding: reported by its debug form.
        other => hash_of(
            ruby,
            &[
                ("status", sym(ruby, "other")),
                ("detail", convert::string(ruby, &format!("{other:?}"), true)),
            ],
        )?,
    };
    let torn = match &r.torn_tail {
        Some(t) => hash_of(
            ruby,
            &[
                ("offset", t.offset.into_value_with(ruby)),
                ("bytes", t.bytes.into_value_with(ruby)),
                (
                    "side_file",
                    convert::string(ruby, &t.side_file.to_string_lossy(), true),
                ),
            ],
        )?
        .as_value(),
        None => ruby.qnil().as_value(),
    };
    let recovered = match &r.recovered {
        Some(rc) => hash_of(
            ruby,
            &[
                ("offset", rc.offset.into_value_with(ruby)),
                ("bytes", rc.bytes.into_value_with(ruby)),
                (
                    "side_file",
                    convert::string(ruby, &rc.side_file.to_string_lossy(), true),
                ),
                ("reason", convert::string(ruby, &rc.reason, true)),
            ],
        )?
        .as_value(),
        None => ruby.qnil().as_value(),
    };
    hash_of(
        ruby,
        &[
            (
                "path",
                convert::string(ruby, &r.path.to_string_lossy(), true),
            ),
            ("wal_bytes", r.wal_bytes.into_value_with(ruby)),
            ("frames_replayed", r.frames_replayed.into_value_with(ruby)),
            ("facts_loaded", r.facts_loaded.into_value_with(ruby)),
            ("snapshot", snapshot.as_value()),
            ("torn_tail", torn),
            ("zero_tail", r.zero_tail.into_value_with(ruby)),
            ("recovered", recovered),
            ("legacy_frames", r.legacy_frames.into_value_with(ruby)),
            ("retimed_facts", r.retimed_facts.into_value_with(ruby)),
            (
                "dropped_causations",
                r.dropped_causations.into_value_with(ruby),
            ),
            (
                "stale_snapshot_tmp",
                r.stale_snapshot_tmp.into_value_with(ruby),
            ),
        ],
    )
}

fn open_report(ruby: &Ruby, s: &StoreObj) -> Result<Option<RHash>, Error> {
    s.ledger
        .open_report()
        .map(|r| report_hash(ruby, r))
        .transpose()
}

fn path(s: &StoreObj) -> Option<String> {
    s.ledger.path().map(|p| p.to_string_lossy().into_owned())
}

fn durability(ruby: &Ruby, s: &StoreObj) -> Option<RValue> {
    s.ledger
        .path()
        .map(|_| sym(ruby, s.ledger.durability().name()))
}

fn consumer_failures(s: &StoreObj) -> u64 {
    s.ledger.consumer_failures()
}

// ------------------------------------------------------------------ lifecycle

fn checkpoint(ruby: &Ruby, s: &StoreObj) -> Result<RHash, Error> {
    let ledger = s.ledger.clone();
    let report = gvl::without_gvl(move || ledger.checkpoint())
        .map_err(|m| errors::internal(ruby, "checkpoint", m))?
        .map_err(ledger_err(ruby))?;
    hash_of(
        ruby,
        &[
            (
                "path",
                convert::string(ruby, &report.path.to_string_lossy(), true),
            ),
            ("fact_count", report.fact_count.into_value_with(ruby)),
            ("wal_offset", report.wal_offset.into_value_with(ruby)),
            ("bytes", report.bytes.into_value_with(ruby)),
        ],
    )
}

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
    sym(ruby, s.ledger.hash_keys().name())
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
pub fn define(class: RClass) -> Result<(), Error> {
    use magnus::{function, method};
    class.define_singleton_method("_memory", function!(memory, 4))?;
    class.define_singleton_method("_open", function!(open, 7))?;
    class.define_private_method("_write", method!(write, 9))?;
    class.define_private_method("_append", method!(append, 8))?;
    class.define_private_method("_commit", method!(commit_ops, 1))?;
    class.define_private_method("_replay", method!(replay_fact, 1))?;
    class.define_private_method("_read", method!(read, 4))?;
    class.define_private_method("_read_fact", method!(read_fact, 4))?;
    class.define_private_method("_history", method!(history, 4))?;
    class.define_private_method("_history_partition", method!(history_partition, 5))?;
    class.define_private_method("_query", method!(query, 3))?;
    class.define_private_method("_register_path", method!(register_path, 6))?;
    class.define_private_method("_register_coercion", method!(register_coercion, 2))?;
    class.define_private_method("_causation_chain", method!(causation_chain, 2))?;
    class.define_private_method("_lineage", method!(lineage, 2))?;
    class.define_private_method("_fact_log_all", method!(fact_log_all, 2))?;
    class.define_private_method("_checkpoint", method!(checkpoint, 0))?;
    class.define_private_method(
        "_register_derivation",
        method!(crate::derive::register_derivation, 5),
    )?;
    class.define_private_method(
        "_register_scatter",
        method!(crate::derive::register_scatter, 4),
    )?;
    class.define_private_method(
        "_register_relation",
        method!(crate::derive::register_relation, 4),
    )?;
    class.define_private_method(
        "_register_projection",
        method!(crate::derive::register_projection, 5),
    )?;
    class.define_private_method("_resolve", method!(crate::derive::resolve, 3))?;
    class.define_method(
        "derivation_failures",
        method!(crate::derive::derivation_failures, 0),
    )?;
    class.define_method(
        "last_derivation_failure",
        method!(crate::derive::last_derivation_failure, 0),
    )?;
    class.define_method("fact_by_id", method!(fact_by_id, 1))?;
    class.define_method("fact_ref", method!(fact_ref, 1))?;
    class.define_method("fact_count", method!(fact_count, 0))?;
    class.define_private_method("_schema_graph", method!(schema_graph, 0))?;
    class.define_method("open_report", method!(open_report, 0))?;
    class.define_method("path", method!(path, 0))?;
    class.define_method("durability", method!(durability, 0))?;
    class.define_method("consumer_failures", method!(consumer_failures, 0))?;
    class.define_private_method("_close", method!(close, 0))?;
    class.define_private_method("_closed?", method!(is_closed, 0))?;
    class.define_method("memory?", method!(is_memory, 0))?;
    class.define_method("hash_keys", method!(hash_keys, 0))?;
    class.define_private_method("_share", method!(share, 1))?;
    Ok(())
}

#[cfg(test)]
mod read_cache_tests {
    //! The LRU bookkeeping only (no Ruby objects are dereferenced: the values are opaque
    //! handles made from immediates).
    use super::*;

    fn v(n: i64) -> Opaque<RValue> {
        // SAFETY: a Fixnum is an immediate VALUE (2n+1); it is never dereferenced here.
        Opaque::from(unsafe { RValue::from_raw(((n << 1) | 1) as rb_sys::VALUE) })
    }

    fn id(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    #[test]
    fn evicts_the_least_recently_used_and_promotes_hits() {
        let mut c = ReadCache::new(3);
        for n in 1..=3 {
            c.put(id(n), v(n as i64));
        }
        assert!(c.get(&id(1)).is_some()); // 2 is now the least recently used
        c.put(id(4), v(4));
        assert!(c.get(&id(2)).is_none());
        for n in [1, 3, 4] {
            assert!(c.get(&id(n)).is_some(), "{n} kept");
        }
        assert_eq!(c.map.len(), 3);
    }

    #[test]
    fn stays_bounded_under_many_hits() {
        let mut c = ReadCache::new(4);
        for n in 0..4 {
            c.put(id(n), v(n as i64));
        }
        for i in 0..10_000u128 {
            assert!(c.get(&id(i % 4)).is_some());
        }
        assert!(c.order.len() <= 2 * 8 + 1);
        c.put(id(99), v(99));
        assert_eq!(c.map.len(), 4);
        assert!(c.get(&id(0)).is_none(), "0 was the least recently used");
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut c = ReadCache::new(0);
        c.put(id(1), v(1));
        assert!(c.get(&id(1)).is_none());
    }
}
