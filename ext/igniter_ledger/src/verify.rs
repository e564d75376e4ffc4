//! `LedgerStore#verify` and `LedgerStore.verify_file(path)`: the core's verification
//! (`igniter_ledger::verify_file`, `LedgerStore::verify`) as a Hash with Symbol keys. Runs
//! without the GVL (it reads files and calls no Ruby code); no progress block.

use igniter_ledger::{MismatchKind, SnapshotCheck, VerifyReport};
use magnus::{
    function, method, prelude::*, Error, IntoValue, RArray, RClass, RHash, Ruby, Value as RValue,
};

use crate::store::StoreObj;
use crate::{convert, errors, gvl};

fn sym(ruby: &Ruby, s: &str) -> RValue {
    convert::symbol(ruby, s)
}

fn str(ruby: &Ruby, s: &str) -> RValue {
    convert::string(ruby, s, false)
}

fn hash(ruby: &Ruby, pairs: &[(&str, RValue)]) -> Result<RHash, Error> {
    let h = ruby.hash_new();
    for (k, v) in pairs {
        h.aset(sym(ruby, k), *v)?;
    }
    Ok(h)
}

fn array<T>(
    ruby: &Ruby,
    items: &[T],
    f: impl Fn(&T) -> Result<RHash, Error>,
) -> Result<RArray, Error> {
    let out = ruby.ary_new_capa(items.len());
    for i in items {
        out.push(f(i)?)?;
    }
    Ok(out)
}

fn snapshot(ruby: &Ruby, s: &SnapshotCheck) -> Result<RHash, Error> {
    let n = |v: u64| v.into_value_with(ruby);
    match s {
        SnapshotCheck::Consistent { facts, wal_offset } => hash(
            ruby,
            &[
                ("status", sym(ruby, "consistent")),
                ("facts", n(*facts)),
                ("wal_offset", n(*wal_offset)),
            ],
        ),
        SnapshotCheck::Stale { reason } => hash(
            ruby,
            &[
                ("status", sym(ruby, "stale")),
                ("reason", str(ruby, reason)),
            ],
        ),
        SnapshotCheck::Unreadable { reason } => hash(
            ruby,
            &[
                ("status", sym(ruby, "unreadable")),
                ("reason", str(ruby, reason)),
            ],
        ),
        SnapshotCheck::Legacy { facts } => hash(
            ruby,
            &[("status", sym(ruby, "legacy")), ("facts", n(*facts))],
        ),
        _ => hash(ruby, &[("status", sym(ruby, "absent"))]),
    }
}

fn kind_name(k: MismatchKind) -> &'static str {
    match k {
        MismatchKind::Snapshot => "snapshot",
        MismatchKind::ErasedHash => "erased_hash",
        MismatchKind::NotErased => "not_erased",
        MismatchKind::NotPruned => "not_pruned",
        _ => "other",
    }
}

fn report_hash(ruby: &Ruby, r: &VerifyReport) -> Result<RHash, Error> {
    let n = |v: u64| v.into_value_with(ruby);
    let id = |u: uuid::Uuid| str(ruby, &u.hyphenated().to_string());
    let torn = match r.torn_tail {
        Some(t) => hash(ruby, &[("offset", n(t.offset)), ("bytes", n(t.bytes))])?.as_value(),
        None => ruby.qnil().as_value(),
    };
    let problems = ruby.ary_new();
    for p in r.problems() {
        problems.push(str(ruby, &p))?;
    }
    let dups = ruby.ary_new();
    for d in &r.duplicate_ids {
        dups.push(id(*d))?;
    }
    hash(
        ruby,
        &[
            ("ok", r.is_ok().into_value_with(ruby)),
            (
                "path",
                r.path.as_ref().map_or(ruby.qnil().as_value(), |p| {
                    str(ruby, &p.display().to_string())
                }),
            ),
            ("bytes", n(r.bytes)),
            ("frames_checked", n(r.frames_checked)),
            ("facts_checked", n(r.facts_checked)),
            ("tombstones", n(r.tombstones)),
            ("legacy_frames", n(r.legacy_frames)),
            ("receipts", n(r.receipts)),
            (
                "corrupt",
                array(ruby, &r.corrupt, |c| {
                    hash(
                        ruby,
                        &[
                            ("offset", n(c.offset)),
                            ("bytes", n(c.bytes)),
                            ("reason", str(ruby, &c.reason)),
                        ],
                    )
                })?
                .as_value(),
            ),
            ("torn_tail", torn),
            ("zero_tail", n(r.zero_tail)),
            ("hash_mismatch_count", n(r.hash_mismatch_count)),
            (
                "hash_mismatches",
                array(ruby, &r.hash_mismatches, |m| {
                    hash(
                        ruby,
                        &[
                            ("kind", sym(ruby, kind_name(m.kind))),
                            ("id", id(m.id)),
                            ("detail", str(ruby, &m.detail)),
                        ],
                    )
                })?
                .as_value(),
            ),
            ("broken_causation_count", n(r.broken_causation_count)),
            (
                "broken_causations",
                array(ruby, &r.broken_causations, |b| {
                    hash(
                        ruby,
                        &[
                            ("id", id(b.id)),
                            ("store", sym(ruby, &b.store)),
                            ("causation", id(b.causation)),
                            ("reason", str(ruby, &b.reason)),
                        ],
                    )
                })?
                .as_value(),
            ),
            ("causations_to_removed", n(r.causations_to_removed)),
            ("duplicate_ids", dups.as_value()),
            ("out_of_order", n(r.out_of_order)),
            ("snapshot", snapshot(ruby, &r.snapshot)?.as_value()),
            ("problems", problems.as_value()),
        ],
    )
}

fn verify(ruby: &Ruby, s: &StoreObj) -> Result<RHash, Error> {
    let ledger = s.ledger().clone();
    let r = gvl::without_gvl(move || ledger.verify())
        .map_err(|m| errors::internal(ruby, "verify", m))?
        .map_err(|e| errors::ledger_error(ruby, e))?;
    report_hash(ruby, &r)
}

fn verify_file(ruby: &Ruby, path: String) -> Result<RHash, Error> {
    let r = gvl::without_gvl(move || igniter_ledger::verify_file(&path))
        .map_err(|m| errors::internal(ruby, "verify_file", m))?
        .map_err(|e| errors::ledger_error(ruby, e))?;
    report_hash(ruby, &r)
}

/// Defines `LedgerStore#_verify` and `LedgerStore._verify_file`.
pub fn define(store: RClass) -> Result<(), Error> {
    store.define_private_method("_verify", method!(verify, 0))?;
    store.define_singleton_method("_verify_file", function!(verify_file, 1))?;
    Ok(())
}
