//! `LedgerStore`'s report methods — provenance (causation chains, lineage, fact refs),
//! the schema graph, the open report, checkpoints — rendering the core's reports as
//! Hashes with Symbol keys.

use igniter_ledger::{OpenReport, SnapshotOutcome};
use magnus::{prelude::*, Error, IntoValue, RArray, RClass, RHash, Ruby, Value as RValue};

use crate::errors::ledger_err;
use crate::render::{self, hash_of, nil, opt_id, sym};
use crate::store::StoreObj;
use crate::{args, convert, errors, gvl};

fn chain_array(ruby: &Ruby, chain: &[igniter_ledger::ChainEntry]) -> Result<RArray, Error> {
    let ary = ruby.ary_new_capa(chain.len());
    for e in chain {
        ary.push(hash_of(
            ruby,
            &[
                ("id", render::id(ruby, e.id)),
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
    chain_array(ruby, &s.ledger().causation_chain(&store, &key))
}

fn lineage(ruby: &Ruby, s: &StoreObj, store: RValue, key: RValue) -> Result<RHash, Error> {
    let store = args::name(ruby, store, "store")?;
    let key = args::name(ruby, key, "key")?;
    let l = s.ledger().lineage(&store, &key);
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
        None => nil(ruby),
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

/// `{id:, store:, key:, ...}` of the fact with this id, or nil for nil, blank, malformed
/// or unknown ids.
fn fact_ref(ruby: &Ruby, s: &StoreObj, id: RValue) -> Result<Option<RHash>, Error> {
    let Some(id) = args::lookup_id(id) else {
        return Ok(None);
    };
    let Some(r) = s.ledger().fact_ref(id) else {
        return Ok(None);
    };
    render::fact_ref(ruby, &r).map(Some)
}

// ------------------------------------------------------------------ metadata

fn schema_graph(ruby: &Ruby, s: &StoreObj) -> Result<RHash, Error> {
    let g = s.ledger().schema_graph();
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
            None => nil(ruby),
        };
        let lookup = match p.lookup_label() {
            Some(l) => convert::to_ruby(ruby, l, true),
            None => nil(ruby),
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
        None => nil(ruby),
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
        None => nil(ruby),
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

fn checkpoint(ruby: &Ruby, s: &StoreObj) -> Result<RHash, Error> {
    let ledger = s.ledger().clone();
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

/// Defines the report methods of `LedgerStore`.
pub fn define(class: RClass) -> Result<(), Error> {
    use magnus::method;
    class.define_private_method("_causation_chain", method!(causation_chain, 2))?;
    class.define_private_method("_lineage", method!(lineage, 2))?;
    class.define_method("fact_ref", method!(fact_ref, 1))?;
    class.define_private_method("_schema_graph", method!(schema_graph, 0))?;
    class.define_method("open_report", method!(open_report, 0))?;
    class.define_private_method("_checkpoint", method!(checkpoint, 0))?;
    Ok(())
}
