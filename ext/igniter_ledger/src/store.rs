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
    AccessPath, Append, Batch, Durability, Fact, HistoryQuery, LedgerStore, OpenOptions,
    OpenReport, PartitionQuery, Read, ReadFact, SnapshotOutcome, Value, Write,
};
use magnus::{
    data_type_builder, gc::Marker, prelude::*, typed_data::Obj, value::Opaque, DataType,
    DataTypeFunctions, Error, IntoValue, RArray, RClass, RHash, Ruby, Symbol, TypedData,
    Value as RValue,
};

use crate::callbacks::{self, RubyCoercion, RubyConsumer};
use crate::fact::FactObj;
use crate::{args, convert, errors, gvl, Classes};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use std::os::raw::c_long;

/// Ruby values of recently read facts, by fact id (facts never change, so an entry never
/// goes stale). Bounded; the oldest entry goes first.
struct ReadCache {
    cap: usize,
    map: HashMap<uuid::Uuid, Opaque<RValue>>,
    order: VecDeque<uuid::Uuid>,
}

impl ReadCache {
    fn get(&self, id: &uuid::Uuid) -> Option<Opaque<RValue>> {
        self.map.get(id).copied()
    }

    fn put(&mut self, id: uuid::Uuid, v: Opaque<RValue>) {
        if self.cap == 0 || self.map.insert(id, v).is_some() {
            return;
        }
        self.order.push_back(id);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// The data behind a `LedgerStore` object.
pub struct StoreObj {
    ledger: LedgerStore,
    /// Commits wait for fsync: release the GVL around them.
    release_gvl: bool,
    /// Every Ruby object the core holds through this store (coercion blocks, consumers).
    /// Append-only: a replaced coercion may still be running when it is replaced.
    callbacks: Mutex<Vec<Opaque<RValue>>>,
    /// Deep-frozen values handed out by `read`, marked for the GC.
    cache: Mutex<ReadCache>,
}

/// Locks a mutex of the store. No Ruby call is ever made while one is held, so the GC
/// (which takes them in `mark`) never finds one held by the thread running the GC;
/// poisoning (a panic while held) cannot leave the data inconsistent, so it is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StoreObj {
    fn new(ledger: LedgerStore, cache_entries: usize) -> Self {
        let release_gvl = ledger.path().is_some() && ledger.durability() == Durability::Fsync;
        StoreObj {
            ledger,
            release_gvl,
            callbacks: Mutex::new(Vec::new()),
            cache: Mutex::new(ReadCache {
                cap: cache_entries,
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    fn keep(&self, v: RValue) -> Opaque<RValue> {
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
        for v in lock(&self.cache).map.values() {
            marker.mark(*v);
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

fn ledger_err(ruby: &Ruby) -> impl Fn(igniter_ledger::Error) -> Error + '_ {
    move |e| errors::ledger_error(ruby, e)
}

fn check_class(ruby: &Ruby, klass: RClass) -> Result<(), Error> {
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

fn memory(ruby: &Ruby, klass: RClass, cache_entries: usize) -> Result<Obj<StoreObj>, Error> {
    check_class(ruby, klass)?;
    Ok(ruby.obj_wrap_as(StoreObj::new(LedgerStore::memory(), cache_entries), klass))
}

fn open(
    ruby: &Ruby,
    klass: RClass,
    path: String,
    durability: String,
    recover: bool,
    cache_entries: usize,
) -> Result<Obj<StoreObj>, Error> {
    check_class(ruby, klass)?;
    let durability = Durability::parse(&durability).map_err(ledger_err(ruby))?;
    let opts = OpenOptions::new().durability(durability).recover(recover);
    let path = PathBuf::from(path);
    let ledger = gvl::without_gvl(move || LedgerStore::open_with(&path, opts))
        .map_err(|m| errors::internal(ruby, "open", m))?
        .map_err(ledger_err(ruby))?;
    Ok(ruby.obj_wrap_as(StoreObj::new(ledger, cache_entries), klass))
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
        .valid_time_opt(args::opt_secs(ruby, valid_time, "valid_time")?)
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
) -> Result<Append, Error> {
    let history = args::name(ruby, history, "history")?;
    let event = value_arg(ruby, event, "event")?;
    let pk = if partition_key.is_nil() {
        None
    } else {
        Some(convert::to_map_key(partition_key, "partition_key").map_err(|e| e.into_error(ruby))?)
    };
    let mut a = Append::new(history, event)
        .partition_map_key(pk)
        .schema_version(args::schema_version(ruby, schema_version)?)
        .valid_time_opt(args::opt_secs(ruby, valid_time, "valid_time")?);
    if let Some(c) = args::opt_fact_id(ruby, causation, "causation")? {
        a = a.causation(c);
    }
    if let Some(p) = opt_value_arg(ruby, producer, "producer")? {
        a = a.producer(p);
    }
    if let Some(d) = opt_value_arg(ruby, derivation, "derivation")? {
        a = a.derivation(d);
    }
    Ok(a)
}

/// Commits a batch (GVL released in fsync mode), then delivers consumer notifications.
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
        callbacks::raise_deferred()?;
    }
    Ok(committed.facts)
}

fn commit_one(ruby: &Ruby, s: &StoreObj, batch: Batch) -> Result<Obj<FactObj>, Error> {
    let fact = commit(ruby, s, batch)?
        .pop()
        .ok_or_else(|| errors::internal(ruby, "commit", "no fact returned".to_owned()))?;
    Ok(FactObj::wrap_raw(ruby, fact))
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
    let a = build_append(
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
    commit_one(ruby, s, Batch::new().append(a))
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
                let a = build_append(
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
    fact_array(ruby, facts.into_iter().map(|f| FactObj::wrap_raw(ruby, f)))
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

fn read(
    ruby: &Ruby,
    s: &StoreObj,
    store: RValue,
    key: RValue,
    as_of: RValue,
    valid_at: RValue,
) -> Result<RValue, Error> {
    let q = read_query(ruby, store, key, as_of, valid_at)?;
    match s.ledger.read_fact(q).map_err(ledger_err(ruby))? {
        None => Ok(ruby.qnil().as_value()),
        Some(ReadFact {
            coerced: Some(v), ..
        }) => Ok(convert::to_ruby(ruby, &v, true)),
        Some(rf) => {
            let id = rf.fact.id();
            let cached = lock(&s.cache).get(&id);
            if let Some(v) = cached {
                return Ok(ruby.get_inner(v));
            }
            let v = crate::fact::stored_value(ruby, &rf.fact);
            lock(&s.cache).put(id, Opaque::from(v));
            Ok(v)
        }
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
    let q = PartitionQuery::with_key(args::name(ruby, store, "store")?, pk, pv)
        .since_opt(args::opt_time(ruby, since, "since")?)
        .as_of_opt(args::opt_time(ruby, as_of, "as_of")?);
    read_facts(
        ruby,
        s.ledger.history_partition(q).map_err(ledger_err(ruby))?,
    )
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

fn hash_of(ruby: &Ruby, pairs: &[(&str, RValue)]) -> Result<RHash, Error> {
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
    let derived_by = match &l.derived_by {
        Some(v) => convert::to_ruby(ruby, v, true),
        None => ruby.qnil().as_value(),
    };
    let proof = match &l.proof_hash {
        Some(p) => convert::string(ruby, p, true),
        None => ruby.qnil().as_value(),
    };
    hash_of(
        ruby,
        &[
            ("subject", subject.as_value()),
            ("chain", chain_array(ruby, &l.chain)?.as_value()),
            ("depth", l.depth.into_value_with(ruby)),
            ("derived_by", derived_by),
            ("proof_hash", proof),
        ],
    )
}

fn fact_by_id(ruby: &Ruby, s: &StoreObj, id: RValue) -> Option<Obj<FactObj>> {
    let id = args::lookup_id(id)?;
    s.ledger.fact_by_id(id).map(|f| FactObj::wrap_raw(ruby, f))
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
    };
    let torn = match &r.torn_tail {
        Some(t) => hash_of(
            ruby,
            &[
                ("offset", t.offset.into_value_with(ruby)),
                ("bytes", t.bytes.into_value_with(ruby)),
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

fn is_memory(s: &StoreObj) -> bool {
    s.ledger.path().is_none()
}

/// Defines the native methods of `LedgerStore`.
pub fn define(class: RClass) -> Result<(), Error> {
    use magnus::{function, method};
    class.define_singleton_method("_memory", function!(memory, 2))?;
    class.define_singleton_method("_open", function!(open, 5))?;
    class.define_private_method("_write", method!(write, 9))?;
    class.define_private_method("_append", method!(append, 8))?;
    class.define_private_method("_commit", method!(commit_ops, 1))?;
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
    class.define_method("fact_by_id", method!(fact_by_id, 1))?;
    class.define_method("fact_ref", method!(fact_ref, 1))?;
    class.define_method("fact_count", method!(fact_count, 0))?;
    class.define_method("schema_graph", method!(schema_graph, 0))?;
    class.define_method("open_report", method!(open_report, 0))?;
    class.define_method("path", method!(path, 0))?;
    class.define_method("durability", method!(durability, 0))?;
    class.define_method("consumer_failures", method!(consumer_failures, 0))?;
    class.define_method("close", method!(close, 0))?;
    class.define_method("closed?", method!(is_closed, 0))?;
    class.define_method("memory?", method!(is_memory, 0))?;
    Ok(())
}
