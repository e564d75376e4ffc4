//! `LedgerStore`'s writing methods: `_write` and `_append` (under the keyword wrappers
//! `write` and `append` in `ledger_store.rb`), `transaction`, and `_replay`. A commit runs
//! without the GVL in fsync mode; consumer notifications and triggered derivations run
//! after it, with the GVL; each fact committed is then handed to the handle's `backend:`
//! object, if any.

use igniter_ledger::{Batch, Fact, PartitionQuery, Value, Write};
use magnus::{
    prelude::*, typed_data::Obj, value::Opaque, Error, RArray, RClass, Ruby, Value as RValue,
};

use crate::caches::{Slice, SliceKey};
use crate::errors::ledger_err;
use crate::fact::FactObj;
use crate::store::{lock, StoreObj};
use crate::transaction::TxObj;
use crate::{callbacks, errors, gvl, operations};
use magnus::rb_sys::AsRawValue;

/// Commits a batch (GVL released in fsync mode), then delivers consumer notifications
/// and runs the derivations the commit triggers. (Also the sync's path for pulled facts.)
pub(crate) fn commit(ruby: &Ruby, s: &StoreObj, batch: Batch) -> Result<Vec<Fact>, Error> {
    let committed = if s.release_gvl {
        let ledger = s.ledger().clone();
        gvl::without_gvl(move || ledger.commit_deferred(batch))
            .map_err(|m| errors::internal(ruby, "commit", m))?
    } else {
        s.ledger().commit_deferred(batch)
    }
    .map_err(ledger_err(ruby))?;
    if !committed.pending.is_empty() {
        s.ledger().deliver(committed.pending);
    }
    s.ledger().react(&committed.facts);
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

/// `_write(store, key, value, schema_version, causation, valid_time, term, producer,
/// derivation, [expected])` (the values of `write`'s keywords; `expected` only when
/// given): the new Fact.
fn write(ruby: &Ruby, s: &StoreObj, argv: &[RValue]) -> Result<Obj<FactObj>, Error> {
    let k: [Option<RValue>; 10] = operations::positional(ruby, argv, "_write", 9)?;
    s.check_open(ruby)?;
    let w = operations::write(ruby, &k)?;
    let fact = commit_one(ruby, s, Batch::new().write(w))?;
    s.hand_to_backend(ruby, fact.as_value())?;
    Ok(fact)
}

/// `_append(history, event, partition_key, schema_version, causation, valid_time, term,
/// producer, derivation)` (the values of `append`'s keywords): the new Fact.
fn append(ruby: &Ruby, s: &StoreObj, argv: &[RValue]) -> Result<Obj<FactObj>, Error> {
    let k: [Option<RValue>; 9] = operations::positional(ruby, argv, "_append", 9)?;
    s.check_open(ruby)?;
    let (a, slice) = operations::append(ruby, &k, true)?;
    let epoch = s.epoch();
    let fact = commit_one(ruby, s, Batch::new().append(a))?;
    if let Some((key, pv)) = slice {
        note_append(ruby, s, key, pv, fact, epoch);
    }
    s.hand_to_backend(ruby, fact.as_value())?;
    Ok(fact)
}

/// `transaction { |tx| ... }`: yields a `Transaction`, then commits what the block
/// queued, atomically; answers the facts in order. Nothing is written if the block
/// raises (or leaves by `break`/`throw`).
fn transaction(ruby: &Ruby, s: &StoreObj) -> Result<RArray, Error> {
    if !ruby.block_given() {
        return Err(Error::new(
            ruby.exception_arg_error(),
            "transaction needs a block",
        ));
    }
    s.check_open(ruby)?;
    let tx = ruby.obj_wrap(TxObj::new());
    let _: RValue = ruby.yield_value(tx)?;
    let batch = tx.take();
    if batch.is_empty() {
        return Ok(ruby.ary_new());
    }
    let facts = commit(ruby, s, batch)?;
    let ary = ruby.ary_new_capa(facts.len());
    for f in facts {
        let f = written(s, FactObj::wrap_raw(ruby, f));
        // SAFETY: `ary` is a fresh, unfrozen array on this frame (visible to the GC), so
        // pushing cannot raise; `f` is a live object, referenced by the array from here.
        unsafe { rb_sys::rb_ary_push(ary.as_raw(), f.as_raw()) };
    }
    if s.has_backend() {
        for f in ary {
            s.hand_to_backend(ruby, f)?;
        }
    }
    Ok(ary)
}

/// Defines the writing methods of `LedgerStore`.
pub fn define(class: RClass) -> Result<(), Error> {
    use magnus::method;
    class.define_private_method("_write", method!(write, -1))?;
    class.define_private_method("_append", method!(append, -1))?;
    class.define_method("transaction", method!(transaction, 0))?;
    class.define_private_method("_replay", method!(replay_fact, 1))?;
    Ok(())
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
    let len = match s.ledger().partition_len(&q) {
        Some(len) => len,
        None => match s.ledger().history_partition(q) {
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
