//! Receipts (facts that say what a compaction, prune or erasure removed), the reports
//! the operations return, and the activity view over the receipts.

use uuid::Uuid;

use crate::ledger::fact::Fact;
use crate::ledger::store::FactRef;
use crate::ledger::time::Timestamp;
use crate::ledger::value::{MapKey, Value};

use super::policy::Strategy;

/// The store compaction receipts are written to.
pub const COMPACTION_RECEIPTS: &str = "__compaction_receipts";
/// The default store exact-prune receipts are written to.
pub const PRUNE_RECEIPTS: &str = "__fact_prune_receipts";
/// The default store erasure receipts are written to.
pub const ERASURE_RECEIPTS: &str = "__erasure_receipts";

/// What `compact` did to one store.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactionReport {
    /// The store.
    pub store: String,
    /// Its strategy.
    pub strategy: Strategy,
    /// Facts removed.
    pub dropped_count: usize,
    /// Facts of the store that remain.
    pub kept_count: usize,
    /// The receipt fact (None when nothing was dropped).
    pub receipt_id: Option<Uuid>,
    /// True when the removal was written to disk (a file-backed ledger).
    pub durable: bool,
    /// The longest time commits had to wait because of this operation (measured).
    pub commit_pause: std::time::Duration,
    /// Bytes of the new WAL generation (0 in memory); the same for every store of one
    /// `compact` call, which is one rewrite.
    pub bytes_written: u64,
    /// Time spent encoding, writing and fsyncing the kept facts to the new generation
    /// (measured; runs beside `rebuild_time`).
    pub write_time: std::time::Duration,
    /// Time spent rebuilding the in-memory indexes over the kept facts (measured).
    pub rebuild_time: std::time::Duration,
}

/// What `prune_fact_ids` did.
#[derive(Clone, Debug, PartialEq)]
pub struct PruneReport {
    /// The receipt fact.
    pub receipt_id: Uuid,
    /// Facts removed.
    pub pruned_count: usize,
    /// References (no values) to the removed facts.
    pub pruned_fact_refs: Vec<FactRef>,
    /// Requested ids that named no fact.
    pub missing_ids: Vec<String>,
    /// True when the removal was written to disk.
    pub durable: bool,
    /// The longest time commits had to wait because of this operation (measured).
    pub commit_pause: std::time::Duration,
}

/// What `erase` did.
#[derive(Clone, Debug, PartialEq)]
pub struct ErasureReport {
    /// The receipt fact.
    pub receipt_id: Uuid,
    /// Facts whose value was erased.
    pub erased_count: usize,
    /// References to the erased facts (their value hashes stay).
    pub erased_fact_refs: Vec<FactRef>,
    /// Requested ids that named no fact.
    pub missing_ids: Vec<String>,
    /// Recovery side files removed because they could hold copies of erased values.
    pub side_files_removed: Vec<String>,
    /// True when the erasure was written to disk.
    pub durable: bool,
    /// The longest time commits had to wait because of this operation (measured).
    pub commit_pause: std::time::Duration,
}

/// What kind of removal an activity entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivityKind {
    /// A retention compaction (`compact`).
    RetentionCompaction,
    /// An exact prune (`prune_fact_ids`).
    ExactPrune,
    /// An erasure (`erase`).
    Erasure,
    /// A sealed segment purged by its store's segment retention (segmented ledgers).
    SegmentPurge,
}

impl ActivityKind {
    /// `retention_compaction`, `exact_prune`, `erasure` or `segment_purge`.
    pub fn name(self) -> &'static str {
        match self {
            ActivityKind::RetentionCompaction => "retention_compaction",
            ActivityKind::ExactPrune => "exact_prune",
            ActivityKind::Erasure => "erasure",
            ActivityKind::SegmentPurge => "segment_purge",
        }
    }
    /// Who performed it: `store_compact`, `fact_prune`, `store_erase` or `segmented_backend`.
    pub fn executor(self) -> &'static str {
        match self {
            ActivityKind::RetentionCompaction => "store_compact",
            ActivityKind::ExactPrune => "fact_prune",
            ActivityKind::Erasure => "store_erase",
            ActivityKind::SegmentPurge => "segmented_backend",
        }
    }
}

/// One entry of `compaction_activity`.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityEntry {
    /// What happened.
    pub kind: ActivityKind,
    /// The store compacted (None for prunes and erasures, which span fact ids).
    pub store: Option<String>,
    /// Always `ok`: failed removals leave no receipt.
    pub status: &'static str,
    /// The strategy (compaction) or the reason given (prune, erasure).
    pub reason: Value,
    /// Facts removed or erased.
    pub fact_count: usize,
    /// The receipt fact.
    pub receipt_id: Uuid,
    /// The receipt's transaction time.
    pub occurred_at: Timestamp,
}

fn sym(s: &str) -> MapKey {
    MapKey::sym(s)
}

/// A reference to a fact as a value (no fact value in it).
pub(crate) fn fact_ref_value(f: &Fact) -> Value {
    Value::map([
        (sym("id"), Value::from(f.id().to_string())),
        (sym("store"), Value::sym(f.store())),
        (sym("key"), Value::from(f.key())),
        (
            sym("transaction_time"),
            Value::Float(f.transaction_time().as_secs_f64()),
        ),
        (
            sym("valid_time"),
            f.valid_time().map_or(Value::Nil, Value::Float),
        ),
        (sym("value_hash"), Value::from(f.value_hash_hex())),
    ])
}

/// A fact's compact reference.
pub(crate) fn fact_ref(f: &Fact) -> FactRef {
    FactRef::of(f)
}

/// What a compaction receipt says about the facts it dropped.
pub(crate) struct Dropped {
    count: usize,
    oldest: Option<(Uuid, Timestamp)>,
    newest: Option<(Uuid, Timestamp)>,
}

impl Dropped {
    /// `count` facts, the oldest and newest of them.
    pub(crate) fn new(count: usize, oldest: &Fact, newest: &Fact) -> Self {
        Dropped {
            count,
            oldest: Some((oldest.id(), oldest.transaction_time())),
            newest: Some((newest.id(), newest.transaction_time())),
        }
    }
}

/// The value of a compaction receipt.
pub(crate) fn compaction_value(
    store: &str,
    strategy: Strategy,
    dropped: &Dropped,
    at: Timestamp,
) -> Value {
    let id = |f: Option<(Uuid, Timestamp)>| f.map_or(Value::Nil, |f| Value::from(f.0.to_string()));
    let ts =
        |f: Option<(Uuid, Timestamp)>| f.map_or(Value::Nil, |f| Value::Float(f.1.as_secs_f64()));
    Value::map([
        (sym("type"), Value::sym("compaction_receipt")),
        (sym("compacted_store"), Value::sym(store)),
        (sym("strategy"), Value::sym(strategy.name())),
        (sym("compacted_count"), Value::Int(dropped.count as i64)),
        (sym("oldest_dropped"), id(dropped.oldest)),
        (sym("newest_dropped"), id(dropped.newest)),
        (sym("oldest_ts"), ts(dropped.oldest)),
        (sym("newest_ts"), ts(dropped.newest)),
        (sym("compacted_at"), Value::Float(at.as_secs_f64())),
    ])
}

/// The value of a prune receipt.
pub(crate) fn prune_value(
    reason: &Value,
    metadata: &Value,
    pruned: &[&Fact],
    missing: &[String],
    at: Timestamp,
) -> Value {
    Value::map([
        (sym("type"), Value::sym("fact_prune_receipt")),
        (sym("reason"), reason.clone()),
        (sym("metadata"), metadata.clone()),
        (sym("pruned_count"), Value::Int(pruned.len() as i64)),
        (sym("missing_count"), Value::Int(missing.len() as i64)),
        (
            sym("pruned_fact_refs"),
            Value::array(pruned.iter().map(|f| fact_ref_value(f))),
        ),
        (
            sym("missing_ids"),
            Value::array(missing.iter().map(|s| Value::from(s.as_str()))),
        ),
        (sym("pruned_at"), Value::Float(at.as_secs_f64())),
    ])
}

/// The value of an erasure receipt.
#[allow(clippy::too_many_arguments)]
pub(crate) fn erasure_value(
    reason: &Value,
    actor: &Value,
    metadata: &Value,
    erased: &[&Fact],
    missing: &[String],
    side_files: &[String],
    at: Timestamp,
) -> Value {
    Value::map([
        (sym("type"), Value::sym("erasure_receipt")),
        (sym("reason"), reason.clone()),
        (sym("actor"), actor.clone()),
        (sym("metadata"), metadata.clone()),
        (sym("erased_count"), Value::Int(erased.len() as i64)),
        (
            sym("erased_fact_refs"),
            Value::array(erased.iter().map(|f| fact_ref_value(f))),
        ),
        (
            sym("missing_ids"),
            Value::array(missing.iter().map(|s| Value::from(s.as_str()))),
        ),
        (
            sym("side_files_removed"),
            Value::array(side_files.iter().map(|s| Value::from(s.as_str()))),
        ),
        (sym("erased_at"), Value::Float(at.as_secs_f64())),
    ])
}

fn int_field(v: &Value, name: &str) -> usize {
    match v.get_sym(name) {
        Some(Value::Int(n)) => (*n).max(0) as usize,
        _ => 0,
    }
}

fn name_field(v: &Value, name: &str) -> Option<String> {
    match v.get_sym(name) {
        Some(Value::Sym(s) | Value::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The activity entry a receipt fact records, if it is one.
pub(crate) fn activity_entry(kind: ActivityKind, f: &Fact) -> Option<ActivityEntry> {
    if f.is_erased() {
        return None;
    }
    let v = f.value();
    let (store, reason, count) = match kind {
        ActivityKind::RetentionCompaction => (
            name_field(&v, "compacted_store"),
            v.get_sym("strategy").cloned().unwrap_or_default(),
            int_field(&v, "compacted_count"),
        ),
        ActivityKind::ExactPrune => (
            None,
            v.get_sym("reason").cloned().unwrap_or_default(),
            int_field(&v, "pruned_count"),
        ),
        ActivityKind::Erasure => (
            None,
            v.get_sym("reason").cloned().unwrap_or_default(),
            int_field(&v, "erased_count"),
        ),
        // Segment purges leave receipt files, not receipt facts.
        ActivityKind::SegmentPurge => return None,
    };
    Some(ActivityEntry {
        kind,
        store,
        status: "ok",
        reason,
        fact_count: count,
        receipt_id: f.id(),
        occurred_at: f.transaction_time(),
    })
}
