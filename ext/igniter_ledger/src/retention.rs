//! `LedgerStore`'s retention methods (policies, compaction, exact prune, erasure,
//! receipts, activity) and `Fact#erased?`. Thin: arguments in, the core's reports out as
//! Hashes with Symbol keys. The rewrites run without the GVL (they call no Ruby code).

use igniter_ledger::retention::{
    ActivityEntry, CompactionReport, Erase, Prune, RetentionPolicy, Strategy,
};
use igniter_ledger::FactRef;
use magnus::{method, prelude::*, Error, IntoValue, RArray, RClass, RHash, Ruby, Value as RValue};

use crate::errors::ledger_err;
use crate::fact::FactObj;
use crate::render::{self, hash_of, opt_id, sym};
use crate::store::StoreObj;
use crate::{args, convert, errors, gvl};

fn strategy_arg(ruby: &Ruby, v: RValue) -> Result<Strategy, Error> {
    let name = convert::sym_name(v)
        .or_else(|_| String::try_convert(v).map_err(|_| ()))
        .map_err(|_| {
            Error::new(
                ruby.exception_arg_error(),
                format!(
                    "strategy must be :permanent, :ephemeral or :rolling_window, got {}",
                    v.inspect()
                ),
            )
        })?;
    Strategy::parse(&name).map_err(ledger_err(ruby))
}

fn duration_arg(ruby: &Ruby, v: RValue) -> Result<Option<f64>, Error> {
    if v.is_nil() {
        return Ok(None);
    }
    if v.is_kind_of(ruby.class_integer()) || v.is_kind_of(ruby.class_float()) {
        return Ok(Some(f64::try_convert(v)?));
    }
    Err(Error::new(
        ruby.exception_type_error(),
        format!(
            "duration must be a number of seconds or nil, got {}",
            v.inspect()
        ),
    ))
}

/// Runs a rewrite without the GVL; the handle's caches are bypassed meanwhile and
/// emptied after.
fn rewrite<T: Send>(
    ruby: &Ruby,
    s: &StoreObj,
    what: &str,
    work: impl FnOnce(igniter_ledger::LedgerStore) -> igniter_ledger::Result<T> + Send,
) -> Result<T, Error> {
    let ledger = s.ledger().clone();
    s.begin_rewrite();
    let res = gvl::without_gvl(move || work(ledger));
    // Even a failed rewrite may have taken effect (a directory fsync failing after the
    // rename): never serve cached values across one.
    s.end_rewrite();
    res.map_err(|m| errors::internal(ruby, what, m))?
        .map_err(ledger_err(ruby))
}

fn set_retention(
    ruby: &Ruby,
    s: &StoreObj,
    store: RValue,
    strategy: RValue,
    duration: RValue,
) -> Result<(), Error> {
    let store = args::name(ruby, store, "store")?;
    let policy = RetentionPolicy::new(strategy_arg(ruby, strategy)?, duration_arg(ruby, duration)?)
        .map_err(ledger_err(ruby))?;
    s.ledger()
        .set_retention(&store, policy)
        .map_err(ledger_err(ruby))
}

/// `[[store, strategy, duration], ...]`
fn retention_policies(ruby: &Ruby, s: &StoreObj) -> Result<RArray, Error> {
    let out = ruby.ary_new();
    for (store, p) in s.ledger().retention_policies() {
        out.push(ruby.ary_new_from_values(&[
            sym(ruby, &store),
            sym(ruby, p.strategy().name()),
            p.duration().into_value_with(ruby),
        ]))?;
    }
    Ok(out)
}

fn report_hash(ruby: &Ruby, r: &CompactionReport) -> Result<RHash, Error> {
    hash_of(
        ruby,
        &[
            ("store", sym(ruby, &r.store)),
            ("strategy", sym(ruby, r.strategy.name())),
            ("dropped_count", r.dropped_count.into_value_with(ruby)),
            ("kept_count", r.kept_count.into_value_with(ruby)),
            ("receipt_id", opt_id(ruby, r.receipt_id)),
            ("durable", r.durable.into_value_with(ruby)),
        ],
    )
}

fn compact(ruby: &Ruby, s: &StoreObj, store: RValue) -> Result<RArray, Error> {
    let store = args::opt_name(ruby, store, "store")?;
    let reports = rewrite(ruby, s, "compact", move |l| l.compact(store.as_deref()))?;
    let out = ruby.ary_new_capa(reports.len());
    for r in &reports {
        out.push(report_hash(ruby, r)?)?;
    }
    Ok(out)
}

fn refs_array(ruby: &Ruby, refs: &[FactRef]) -> Result<RArray, Error> {
    let out = ruby.ary_new_capa(refs.len());
    for r in refs {
        out.push(render::fact_ref(ruby, r)?)?;
    }
    Ok(out)
}

fn strings(ruby: &Ruby, v: &[String]) -> Result<RArray, Error> {
    let out = ruby.ary_new_capa(v.len());
    for s in v {
        out.push(convert::string(ruby, s, false))?;
    }
    Ok(out)
}

/// Fact ids as strings: Strings as given, anything else (a Fact) by its `id`.
fn id_strings(ruby: &Ruby, ids: RValue, what: &str) -> Result<Vec<String>, Error> {
    let ary = RArray::try_convert(ids).map_err(|_| {
        Error::new(
            ruby.exception_type_error(),
            format!("{what} must be an Array of fact ids, got {}", ids.inspect()),
        )
    })?;
    let mut out = Vec::with_capacity(ary.len());
    for v in ary.into_iter() {
        if let Ok(s) = String::try_convert(v) {
            out.push(s);
        } else if let Some(id) = args::lookup_id(v) {
            out.push(id.hyphenated().to_string());
        } else {
            out.push(v.to_string());
        }
    }
    Ok(out)
}

fn prune_fact_ids(
    ruby: &Ruby,
    s: &StoreObj,
    ids: RValue,
    reason: RValue,
    metadata: RValue,
    receipt_store: RValue,
) -> Result<RHash, Error> {
    let ids = id_strings(ruby, ids, "fact_ids")?;
    let req = Prune::new(ids, args::value(ruby, reason, "reason")?)
        .metadata(args::value(ruby, metadata, "metadata")?)
        .receipt_store(args::name(ruby, receipt_store, "receipt_store")?);
    let r = rewrite(ruby, s, "prune_fact_ids", move |l| l.prune_fact_ids(req))?;
    hash_of(
        ruby,
        &[
            ("status", sym(ruby, "ok")),
            ("receipt_id", render::id(ruby, r.receipt_id)),
            ("pruned_count", r.pruned_count.into_value_with(ruby)),
            ("missing_count", r.missing_ids.len().into_value_with(ruby)),
            (
                "pruned_fact_refs",
                refs_array(ruby, &r.pruned_fact_refs)?.as_value(),
            ),
            ("missing_ids", strings(ruby, &r.missing_ids)?.as_value()),
            ("durable", r.durable.into_value_with(ruby)),
        ],
    )
}

#[allow(clippy::too_many_arguments)]
fn erase(
    ruby: &Ruby,
    s: &StoreObj,
    store: RValue,
    key: RValue,
    ids: RValue,
    reason: RValue,
    actor: RValue,
    metadata: RValue,
    receipt_store: RValue,
) -> Result<RHash, Error> {
    let reason = args::value(ruby, reason, "reason")?;
    let req = if ids.is_nil() {
        Erase::key(
            args::name(ruby, store, "store")?,
            args::name(ruby, key, "key")?,
            reason,
        )
    } else {
        Erase::fact_ids(id_strings(ruby, ids, "fact_ids")?, reason)
    };
    let req = req
        .actor(args::value(ruby, actor, "actor")?)
        .metadata(args::value(ruby, metadata, "metadata")?)
        .receipt_store(args::name(ruby, receipt_store, "receipt_store")?);
    let r = rewrite(ruby, s, "erase", move |l| l.erase(req))?;
    hash_of(
        ruby,
        &[
            ("status", sym(ruby, "ok")),
            ("receipt_id", render::id(ruby, r.receipt_id)),
            ("erased_count", r.erased_count.into_value_with(ruby)),
            (
                "erased_fact_refs",
                refs_array(ruby, &r.erased_fact_refs)?.as_value(),
            ),
            ("missing_count", r.missing_ids.len().into_value_with(ruby)),
            ("missing_ids", strings(ruby, &r.missing_ids)?.as_value()),
            (
                "side_files_removed",
                strings(ruby, &r.side_files_removed)?.as_value(),
            ),
            ("durable", r.durable.into_value_with(ruby)),
        ],
    )
}

fn compaction_receipts(ruby: &Ruby, s: &StoreObj, store: RValue) -> Result<RArray, Error> {
    let store = args::opt_name(ruby, store, "store")?;
    let facts = s.ledger().compaction_receipts(store.as_deref());
    let out = ruby.ary_new_capa(facts.len());
    for f in facts {
        out.push(FactObj::wrap_raw(ruby, f))?;
    }
    Ok(out)
}

fn entry_hash(ruby: &Ruby, e: &ActivityEntry) -> Result<RHash, Error> {
    let store = match &e.store {
        Some(s) => sym(ruby, s),
        None => ruby.qnil().as_value(),
    };
    hash_of(
        ruby,
        &[
            ("kind", sym(ruby, e.kind.name())),
            ("executor", sym(ruby, e.kind.executor())),
            ("store", store),
            ("status", sym(ruby, e.status)),
            ("reason", convert::to_ruby(ruby, &e.reason, false)),
            ("fact_count", e.fact_count.into_value_with(ruby)),
            ("receipt_id", render::id(ruby, e.receipt_id)),
            (
                "occurred_at",
                e.occurred_at.as_secs_f64().into_value_with(ruby),
            ),
        ],
    )
}

/// A plain, unfrozen Array (callers append to it).
fn compaction_activity(ruby: &Ruby, s: &StoreObj, store: RValue) -> Result<RArray, Error> {
    let store = args::opt_name(ruby, store, "store")?;
    let entries = s.ledger().compaction_activity(store.as_deref());
    let out = ruby.ary_new_capa(entries.len());
    for e in &entries {
        out.push(entry_hash(ruby, e)?)?;
    }
    Ok(out)
}

fn is_erased(f: &FactObj) -> bool {
    f.fact.is_erased()
}

/// Defines the retention methods on `LedgerStore` and `Fact#erased?`.
pub fn define(store: RClass, fact: RClass) -> Result<(), Error> {
    store.define_private_method("_set_retention", method!(set_retention, 3))?;
    store.define_private_method("_retention_policies", method!(retention_policies, 0))?;
    store.define_private_method("_compact", method!(compact, 1))?;
    store.define_private_method("_prune_fact_ids", method!(prune_fact_ids, 4))?;
    store.define_private_method("_erase", method!(erase, 7))?;
    store.define_private_method("_compaction_receipts", method!(compaction_receipts, 1))?;
    store.define_private_method("_compaction_activity", method!(compaction_activity, 1))?;
    fact.define_method("erased?", method!(is_erased, 0))?;
    Ok(())
}
