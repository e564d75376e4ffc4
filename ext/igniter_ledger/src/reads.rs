//! `LedgerStore`'s reading methods (private, under the keyword wrappers of
//! `ledger_store.rb`). A plain current read borrows the names from Ruby and answers from
//! the read cache of deep-frozen values; `history_partition` answers whole slices from
//! the partition cache.

use igniter_ledger::{Fact, HistoryQuery, PartitionQuery, Read, ReadFact};
use magnus::{
    prelude::*, typed_data::Obj, value::Opaque, Error, RArray, RClass, RString, Ruby, Symbol,
    Value as RValue,
};

use crate::caches::{Slice, SliceKey, TimeTravelKey};
use crate::errors::ledger_err;
use crate::fact::FactObj;
use crate::store::{lock, StoreObj};
use crate::{args, convert};
use magnus::rb_sys::AsRawValue;

pub(crate) fn fact_array(
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
        // A static Symbol (a literal like `:tasks`): its cached name, no Ruby call.
        if let Some(name) = convert::static_sym_str(raw) {
            return Some(name);
        }
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
    Some(s.ledger().latest(store, key))
}

/// The deep-frozen value of a stored (uncoerced) fact, through the read cache.
fn cached_value(ruby: &Ruby, s: &StoreObj, fact: &Fact, epoch: u64) -> Result<RValue, Error> {
    if s.cache_cap == 0 {
        return crate::fact::stored_value(ruby, fact);
    }
    let id = fact.id();
    let cached = lock(&s.cache).get(&id);
    if let Some(v) = cached {
        return Ok(ruby.get_inner(v));
    }
    let v = crate::fact::stored_value(ruby, fact)?;
    let mut cache = lock(&s.cache);
    if s.cacheable(epoch) {
        cache.put(id, Opaque::from(v));
    }
    Ok(v)
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
    if !as_of.is_nil() && valid_at.is_nil() {
        return read_time_travel(ruby, s, store, key, as_of, epoch);
    }
    if let Some(found) = plain_current(s, store, key, as_of, valid_at) {
        return match found {
            // An erased fact reads as nil, like a key never written.
            Some(fact) if !fact.is_erased() => cached_value(ruby, s, &fact, epoch),
            _ => Ok(ruby.qnil().as_value()),
        };
    }
    let q = read_query(ruby, store, key, as_of, valid_at)?;
    match s.ledger().read_fact(q).map_err(ledger_err(ruby))? {
        None => Ok(ruby.qnil().as_value()),
        Some(rf) if rf.fact.is_erased() => Ok(ruby.qnil().as_value()),
        Some(ReadFact {
            coerced: Some(v), ..
        }) => Ok(convert::to_ruby(ruby, &v, true)),
        Some(rf) => cached_value(ruby, s, &rf.fact, epoch),
    }
}

/// A read with `as_of:` (no `valid_at:`) through the time-travel cache: the same read
/// again, with nothing written in between, answers the same object. (The fact count is
/// taken before reading, so an answer is never filed under a later count.)
fn read_time_travel(
    ruby: &Ruby,
    s: &StoreObj,
    store: RValue,
    key: RValue,
    as_of: RValue,
    epoch: u64,
) -> Result<RValue, Error> {
    let token = s.ledger().fact_count();
    let store = args::name(ruby, store, "store")?;
    let key = args::name(ruby, key, "key")?;
    let secs = args::opt_secs(ruby, as_of, "as_of")?.unwrap_or_default();
    let tt = TimeTravelKey {
        store,
        key,
        as_of: secs.to_bits(),
    };
    if let Some((v, t)) = lock(&s.time_travel).get(&tt) {
        if t == token {
            return Ok(ruby.get_inner(v));
        }
    }
    let q = Read::new(tt.store.clone(), tt.key.clone())
        .as_of(igniter_ledger::Timestamp::from_secs_f64(secs));
    let v = match s.ledger().read_fact(q).map_err(ledger_err(ruby))? {
        None => return Ok(ruby.qnil().as_value()),
        Some(rf) if rf.fact.is_erased() => return Ok(ruby.qnil().as_value()),
        Some(ReadFact {
            coerced: Some(v), ..
        }) => convert::to_ruby(ruby, &v, true),
        Some(rf) => cached_value(ruby, s, &rf.fact, epoch)?,
    };
    let mut cache = lock(&s.time_travel);
    if s.cacheable(epoch) {
        cache.put(tt, (Opaque::from(v), token));
    }
    Ok(v)
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
    read_facts(ruby, s.ledger().history(q).map_err(ledger_err(ruby))?)
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
    let pv = args::value(ruby, partition_value, "partition_value")?;
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
            s.ledger().history_partition(q).map_err(ledger_err(ruby))?,
        );
    }
    let key = SliceKey::new(store.clone(), pk.clone(), &pv);
    let q = PartitionQuery::with_key(store, pk, pv);
    let cached = lock(&s.slices).map.get(&key).map(|c| (c.facts, c.len));
    if let (Some((facts, n)), Some(len)) = (cached, s.ledger().partition_len(&q)) {
        if n == len {
            // Unchanged: a copy-on-write copy, O(1); the caller may change it.
            return Ok(ruby.get_inner(facts).dup());
        }
    }
    let facts = s.ledger().history_partition(q).map_err(ledger_err(ruby))?;
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

/// The fact with this id (raw), or nil for nil, blank, malformed or unknown ids: the very
/// object a recent write returned when it is still kept (see `identity.rs`).
fn fact_by_id(ruby: &Ruby, s: &StoreObj, id: RValue) -> Option<RValue> {
    let id = args::lookup_id(id)?;
    let fact = s.ledger().fact_by_id(id)?;
    if let Some(kept) = lock(&s.recent).get(&id) {
        return Some(ruby.get_inner(kept));
    }
    Some(FactObj::wrap_raw(ruby, fact).as_value())
}

fn fact_count(s: &StoreObj) -> usize {
    s.ledger().fact_count()
}

fn fact_log_all(ruby: &Ruby, s: &StoreObj, since: RValue, as_of: RValue) -> Result<RArray, Error> {
    let since = args::opt_time(ruby, since, "since")?;
    let as_of = args::opt_time(ruby, as_of, "as_of")?;
    raw_facts(ruby, s.ledger().fact_log_all(since, as_of))
}

/// Defines the reading methods of `LedgerStore`.
pub fn define(class: RClass) -> Result<(), Error> {
    use magnus::method;
    class.define_private_method("_read", method!(read, 4))?;
    class.define_private_method("_read_fact", method!(read_fact, 4))?;
    class.define_private_method("_history", method!(history, 4))?;
    class.define_private_method("_history_partition", method!(history_partition, 5))?;
    class.define_private_method("_query", method!(query, 3))?;
    class.define_private_method("_fact_log_all", method!(fact_log_all, 2))?;
    class.define_method("fact_by_id", method!(fact_by_id, 1))?;
    class.define_method("fact_count", method!(fact_count, 0))?;
    Ok(())
}
