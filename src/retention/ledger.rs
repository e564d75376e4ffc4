//! The retention operations of [`LedgerStore`]: policies, compaction, exact prune,
//! erasure, receipts and activity.

use std::collections::HashMap;
use std::path::PathBuf;

use uuid::Uuid;

use crate::ledger::commit::WalPosition;
use crate::ledger::error::{Error, Result};
use crate::ledger::fact::{self, check_store_name, Fact, FactDraft};
use crate::ledger::index::State;
use crate::ledger::request::{Batch, HistoryQuery, Write};
use crate::ledger::store::LedgerStore;
use crate::ledger::time::Timestamp;
use crate::ledger::value::Value;

use super::policy::{RetentionPolicy, Strategy};
use super::rebuild::{extend, rebuild, Registrations};
use super::receipt::{
    self, ActivityEntry, ActivityKind, CompactionReport, ErasureReport, PruneReport,
    COMPACTION_RECEIPTS, ERASURE_RECEIPTS, PRUNE_RECEIPTS,
};
use super::rewrite::{self, Committed};
use crate::changefeed::sequence::Sequences;
use crate::ledger::fs::FileSystem;

/// An exact prune: remove these facts (by id) from every read path and from disk.
///
/// ```
/// use igniter_ledger::{LedgerStore, Value, Write};
/// use igniter_ledger::retention::Prune;
/// let ledger = LedgerStore::memory();
/// let f = ledger.write(Write::new("things", "k", Value::Int(1))).unwrap();
/// let r = ledger.prune_fact_ids(Prune::new([f.id().to_string(), "nope".into()], Value::sym("test"))).unwrap();
/// assert_eq!((r.pruned_count, r.missing_ids.len()), (1, 1));
/// assert!(ledger.fact_by_id(f.id()).is_none());
/// ```
#[derive(Clone, Debug)]
pub struct Prune {
    ids: Vec<String>,
    reason: Value,
    metadata: Value,
    receipt_store: String,
}

impl Prune {
    /// Prune `ids` (strings; those that name no fact are reported as missing) for
    /// `reason`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(ids: I, reason: Value) -> Self {
        Prune {
            ids: ids.into_iter().map(Into::into).collect(),
            reason,
            metadata: Value::Map(Vec::new()),
            receipt_store: PRUNE_RECEIPTS.to_owned(),
        }
    }
    /// Metadata recorded in the receipt.
    pub fn metadata(mut self, v: Value) -> Self {
        self.metadata = v;
        self
    }
    /// The store the receipt goes to (default `__fact_prune_receipts`).
    pub fn receipt_store(mut self, s: impl Into<String>) -> Self {
        self.receipt_store = s.into();
        self
    }
}

#[derive(Clone, Debug)]
enum Target {
    Key { store: String, key: String },
    Ids(Vec<String>),
}

/// An erasure ("right to be forgotten"): the values of these facts are removed from
/// memory and from every file of the ledger; each fact stays as a tombstone (id, store,
/// key, value hash, causation, times, schema version, producer, derivation).
///
/// ```
/// use igniter_ledger::{LedgerStore, Read, Value, Write};
/// use igniter_ledger::retention::Erase;
/// let ledger = LedgerStore::memory();
/// let f = ledger.write(Write::new("people", "p1", Value::from("Ada"))).unwrap();
/// let r = ledger.erase(Erase::key("people", "p1", Value::sym("gdpr_request"))).unwrap();
/// assert_eq!(r.erased_count, 1);
/// assert_eq!(ledger.read(Read::new("people", "p1")).unwrap(), None);
/// let t = ledger.fact_by_id(f.id()).unwrap();
/// assert!(t.is_erased());
/// assert_eq!(t.value_hash(), f.value_hash());
/// ```
#[derive(Clone, Debug)]
pub struct Erase {
    target: Target,
    reason: Value,
    actor: Value,
    metadata: Value,
    receipt_store: String,
}

impl Erase {
    /// Erase every fact of (store, key). The key must have facts.
    pub fn key(store: impl Into<String>, key: impl Into<String>, reason: Value) -> Self {
        Self::with(
            Target::Key {
                store: store.into(),
                key: key.into(),
            },
            reason,
        )
    }
    /// Erase these facts (ids naming no fact are reported as missing).
    pub fn fact_ids<I: IntoIterator<Item = S>, S: Into<String>>(ids: I, reason: Value) -> Self {
        Self::with(
            Target::Ids(ids.into_iter().map(Into::into).collect()),
            reason,
        )
    }
    fn with(target: Target, reason: Value) -> Self {
        Erase {
            target,
            reason,
            actor: Value::Nil,
            metadata: Value::Map(Vec::new()),
            receipt_store: ERASURE_RECEIPTS.to_owned(),
        }
    }
    /// Who asked (recorded in the receipt).
    pub fn actor(mut self, v: Value) -> Self {
        self.actor = v;
        self
    }
    /// Metadata recorded in the receipt.
    pub fn metadata(mut self, v: Value) -> Self {
        self.metadata = v;
        self
    }
    /// The store the receipt goes to (default `__erasure_receipts`).
    pub fn receipt_store(mut self, s: impl Into<String>) -> Self {
        self.receipt_store = s.into();
        self
    }
}

type ReceiptValue = Box<dyn FnOnce(Timestamp) -> Value>;

/// Facts copied out of the published log per read lock (see `rewrite`).
const COPY_CHUNK: usize = 16 * 1024;

/// A planned rewrite: positions to drop, positions to erase, receipts to add.
struct Change {
    drop: Vec<bool>,
    erase: Vec<bool>,
    receipts: Vec<(String, String, ReceiptValue)>,
    side_files: Vec<PathBuf>,
}

impl Change {
    fn new(n: usize) -> Self {
        Change {
            drop: vec![false; n],
            erase: Vec::new(),
            receipts: Vec::new(),
            side_files: Vec::new(),
        }
    }
}

/// What a rewrite did.
struct Done {
    receipt_ids: Vec<Uuid>,
    durable: bool,
    /// A directory fsync after the rename failed: in effect, durability uncertain.
    late_error: Option<Error>,
    /// Receipts of an operation that removed nothing, to commit as an ordinary batch.
    deferred: Vec<(String, String, Value)>,
    /// The longest window in which commits waited.
    pause: std::time::Duration,
    /// How the time went (zero for an in-memory ledger's I/O).
    timing: RewriteTiming,
}

/// Where a rewrite's time went.
#[derive(Clone, Copy, Debug, Default)]
struct RewriteTiming {
    /// Bytes of the new generation.
    bytes: u64,
    /// Encoding, writing and fsyncing the kept facts (phase 1, beside the rebuild).
    write: std::time::Duration,
    /// Rebuilding the in-memory views over the kept facts (phase 1).
    rebuild: std::time::Duration,
}

impl LedgerStore {
    /// Commits the receipts of an operation that removed nothing; returns their ids.
    fn commit_deferred_receipts(&self, done: &mut Done) -> Result<()> {
        if done.deferred.is_empty() {
            return Ok(());
        }
        let mut b = Batch::new();
        for (s, k, v) in done.deferred.drain(..) {
            b = b.write(Write::new(s, k, v));
        }
        done.receipt_ids = self.commit(b)?.iter().map(|f| f.id()).collect();
        done.durable = self.path().is_some();
        Ok(())
    }
}

fn position(state: &State, f: &Fact) -> usize {
    state
        .log
        .partition_point(|g| g.transaction_time() < f.transaction_time())
}

/// Resolves id strings against the state: (positions found, missing strings). Duplicates
/// count once.
fn resolve_ids(state: &State, ids: &[String]) -> (Vec<usize>, Vec<String>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for s in ids {
        if !seen.insert(s.as_str()) {
            continue;
        }
        let hit = Uuid::try_parse(s)
            .ok()
            .and_then(|id| state.fact_by_id(id))
            .map(|f| position(state, f));
        match hit {
            Some(p) => found.push(p),
            None => missing.push(s.clone()),
        }
    }
    found.sort_unstable();
    found.dedup();
    (found, missing)
}

fn receipt_key(prefix: &str) -> String {
    format!("{prefix}_{:08x}", fastrand::u32(..))
}

impl LedgerStore {
    // ------------------------------------------------------------------ policies

    /// Sets the retention policy of `store` (replacing an earlier one). Policies are
    /// registrations held in memory, like access paths.
    pub fn set_retention(&self, store: &str, policy: RetentionPolicy) -> Result<()> {
        check_store_name(store)?;
        self.retention_policies_lock()
            .lock()
            .0
            .insert(store.to_owned(), policy);
        Ok(())
    }

    /// The retention policy of `store`, if set.
    pub fn retention_policy(&self, store: &str) -> Option<RetentionPolicy> {
        self.retention_policies_lock().lock().0.get(store).copied()
    }

    /// Every retention policy, by store name.
    pub fn retention_policies(&self) -> Vec<(String, RetentionPolicy)> {
        self.retention_policies_lock()
            .lock()
            .0
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    // ------------------------------------------------------------------ compaction

    /// Compacts every store with a retention policy (or only `store`): drops the facts
    /// the policy lets go (never a key's latest fact; `rolling_window` also keeps facts
    /// newer than its window; `permanent` stores are not touched), with a receipt in
    /// `__compaction_receipts` per store that lost facts. File-backed, the removal and
    /// the receipts reach the disk in one atomic rename (see `retention::rewrite`).
    /// Returns one report per store with a non-permanent policy.
    pub fn compact(&self, store: Option<&str>) -> Result<Vec<CompactionReport>> {
        self.compact_with_io(store, &*self.file_system())
    }

    /// [`LedgerStore::compact`] through another file layer than the ledger's own
    /// (fault-injection tests that fail only the rewrite's operations).
    #[doc(hidden)]
    pub fn compact_with_io(
        &self,
        store: Option<&str>,
        io: &dyn FileSystem,
    ) -> Result<Vec<CompactionReport>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let targets: Vec<(String, RetentionPolicy)> = self
            .retention_policies()
            .into_iter()
            .filter(|(s, p)| {
                p.strategy() != Strategy::Permanent && store.is_none_or(|t| t == s.as_str())
            })
            .collect();
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let mut reports: Vec<CompactionReport> = Vec::new();
        let now = Timestamp::now();
        let done = {
            let plan = |state: &State| -> Result<Change> {
                let mut change = Change::new(state.log.len());
                for (name, policy) in &targets {
                    let Some(si) = state.stores.get(name.as_str()) else {
                        reports.push(report(name, policy, 0, 0));
                        continue;
                    };
                    let cutoff = policy.duration().map(|d| {
                        Timestamp::from_micros(
                            now.as_micros().saturating_sub((d * 1e6).round() as i64),
                        )
                    });
                    // Positions follow transaction time: the window is one position.
                    let window_start = match (policy.strategy(), cutoff) {
                        (Strategy::RollingWindow, Some(c)) => {
                            state.log.partition_point(|f| f.transaction_time() < c) as u32
                        }
                        _ => u32::MAX,
                    };
                    let (mut count, mut lo, mut hi) = (0usize, u32::MAX, 0u32);
                    for entry in si.keys.iter() {
                        let v = entry.versions.as_slice();
                        for &p in &v[..v.len().saturating_sub(1)] {
                            if p >= window_start {
                                break;
                            }
                            change.drop[p as usize] = true;
                            count += 1;
                            lo = lo.min(p);
                            hi = hi.max(p);
                        }
                    }
                    reports.push(report(name, policy, count, si.all.len() - count));
                    if count > 0 {
                        let (store, strategy) = (name.clone(), policy.strategy());
                        let summary = receipt::Dropped::new(
                            count,
                            &state.log[lo as usize],
                            &state.log[hi as usize],
                        );
                        change.receipts.push((
                            COMPACTION_RECEIPTS.to_owned(),
                            receipt_key(name),
                            Box::new(move |at| {
                                receipt::compaction_value(&store, strategy, &summary, at)
                            }),
                        ));
                    }
                }
                Ok(change)
            };
            self.rewrite(io, plan)?
        };
        let mut ids = done.receipt_ids.into_iter();
        for r in reports.iter_mut() {
            r.durable = done.durable;
            r.commit_pause = done.pause;
            r.bytes_written = done.timing.bytes;
            r.write_time = done.timing.write;
            r.rebuild_time = done.timing.rebuild;
            if r.dropped_count > 0 {
                r.receipt_id = ids.next();
            }
        }
        match done.late_error {
            Some(e) => Err(e),
            None => Ok(reports),
        }
    }

    // ------------------------------------------------------------------ exact prune

    /// Removes exactly these facts from every read path and from disk, with a receipt
    /// (written in the same atomic step). Ids naming no fact are reported as missing.
    pub fn prune_fact_ids(&self, req: Prune) -> Result<PruneReport> {
        self.prune_fact_ids_with_io(req, &*self.file_system())
    }

    /// [`LedgerStore::prune_fact_ids`] through a custom file layer.
    #[doc(hidden)]
    pub fn prune_fact_ids_with_io(&self, req: Prune, io: &dyn FileSystem) -> Result<PruneReport> {
        check_store_name(&req.receipt_store)?;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let mut refs = Vec::new();
        let mut missing = Vec::new();
        let Prune {
            ids,
            reason,
            metadata,
            receipt_store,
        } = req;
        let done = {
            let plan = |state: &State| -> Result<Change> {
                let mut change = Change::new(state.log.len());
                let (found, miss) = resolve_ids(state, &ids);
                missing = miss;
                let pruned: Vec<Fact> = found.iter().map(|&p| state.log[p].clone()).collect();
                refs = pruned.iter().map(receipt::fact_ref).collect();
                for &p in &found {
                    change.drop[p] = true;
                }
                let (reason, metadata, missing) =
                    (reason.clone(), metadata.clone(), missing.clone());
                change.receipts.push((
                    receipt_store.clone(),
                    receipt_key("prune"),
                    Box::new(move |at| {
                        let p: Vec<&Fact> = pruned.iter().collect();
                        receipt::prune_value(&reason, &metadata, &p, &missing, at)
                    }),
                ));
                Ok(change)
            };
            self.rewrite(io, plan)?
        };
        let mut done = done;
        self.commit_deferred_receipts(&mut done)?;
        let report = PruneReport {
            receipt_id: done.receipt_ids[0],
            pruned_count: refs.len(),
            pruned_fact_refs: refs,
            missing_ids: missing,
            durable: done.durable,
            commit_pause: done.pause,
        };
        match done.late_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    // ------------------------------------------------------------------ erasure

    /// Erases values: see [`Erase`]. Every file of the ledger is rewritten without the
    /// erased values (the WAL as a new generation, the snapshot removed, recovery side
    /// files that may hold copies removed and listed in the receipt). `read` of an erased
    /// key answers None; `read_fact`, `history`, `fact_by_id` and `lineage` show the
    /// tombstones. Erasing a key with no facts is an `InvalidArgument` error naming `key`.
    pub fn erase(&self, req: Erase) -> Result<ErasureReport> {
        self.erase_with_io(req, &*self.file_system())
    }

    /// [`LedgerStore::erase`] through a custom file layer.
    #[doc(hidden)]
    pub fn erase_with_io(&self, req: Erase, io: &dyn FileSystem) -> Result<ErasureReport> {
        check_store_name(&req.receipt_store)?;
        if let Target::Key { store, .. } = &req.target {
            check_store_name(store)?;
        }
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let mut refs = Vec::new();
        let mut missing = Vec::new();
        let mut side_names = Vec::new();
        let wal = self.path().map(|p| p.to_owned());
        let Erase {
            target,
            reason,
            actor,
            metadata,
            receipt_store,
        } = req;
        let done = {
            let plan = |state: &State| -> Result<Change> {
                let mut change = Change::new(state.log.len());
                change.erase = vec![false; state.log.len()];
                let found: Vec<usize> = match &target {
                    Target::Key { store, key } => {
                        let v = state
                            .stores
                            .get(store.as_str())
                            .and_then(|si| si.keys.get(key.as_str()))
                            .ok_or_else(|| {
                                Error::InvalidArgument(format!(
                                    "key {key:?} has no facts in store {store:?}: nothing to erase"
                                ))
                            })?;
                        v.as_slice().iter().map(|&p| p as usize).collect()
                    }
                    Target::Ids(ids) => {
                        let (found, miss) = resolve_ids(state, ids);
                        missing = miss;
                        found
                    }
                };
                let erased: Vec<Fact> = found.iter().map(|&p| state.log[p].clone()).collect();
                refs = erased.iter().map(receipt::fact_ref).collect();
                for &p in &found {
                    change.erase[p] = true;
                }
                if !found.is_empty() {
                    if let Some(w) = &wal {
                        change.side_files = rewrite::side_files(w);
                    }
                }
                side_names = change
                    .side_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                let (reason, actor, metadata, missing, sides) = (
                    reason.clone(),
                    actor.clone(),
                    metadata.clone(),
                    missing.clone(),
                    side_names.clone(),
                );
                change.receipts.push((
                    receipt_store.clone(),
                    receipt_key("erasure"),
                    Box::new(move |at| {
                        let e: Vec<&Fact> = erased.iter().collect();
                        receipt::erasure_value(&reason, &actor, &metadata, &e, &missing, &sides, at)
                    }),
                ));
                Ok(change)
            };
            self.rewrite(io, plan)?
        };
        let mut done = done;
        self.commit_deferred_receipts(&mut done)?;
        let report = ErasureReport {
            receipt_id: done.receipt_ids[0],
            erased_count: refs.len(),
            erased_fact_refs: refs,
            missing_ids: missing,
            side_files_removed: side_names,
            durable: done.durable,
            commit_pause: done.pause,
        };
        match done.late_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    // ------------------------------------------------------------------ receipts

    /// Compaction receipt facts, oldest first (only those of `store` if given).
    pub fn compaction_receipts(&self, store: Option<&str>) -> Vec<Fact> {
        self.history_raw(HistoryQuery::new(COMPACTION_RECEIPTS))
            .into_iter()
            .filter(|f| {
                store.is_none_or(|s| {
                    matches!(f.value().get_sym("compacted_store"),
                        Some(Value::Sym(n) | Value::Str(n)) if n == s)
                })
            })
            .collect()
    }

    /// Compactions, exact prunes and erasures, oldest first, from their receipts (only
    /// the compactions of `store`, and the prunes and erasures that touched it, if
    /// given).
    pub fn compaction_activity(&self, store: Option<&str>) -> Vec<ActivityEntry> {
        let mut out = Vec::new();
        for (kind, rs) in [
            (ActivityKind::RetentionCompaction, COMPACTION_RECEIPTS),
            (ActivityKind::ExactPrune, PRUNE_RECEIPTS),
            (ActivityKind::Erasure, ERASURE_RECEIPTS),
        ] {
            for f in self.history_raw(HistoryQuery::new(rs)) {
                let Some(e) = receipt::activity_entry(kind, &f) else {
                    continue;
                };
                let keep = match (store, &e.store) {
                    (None, _) => true,
                    (Some(s), Some(es)) => s == es,
                    (Some(s), None) => touches(&f, s),
                };
                if keep {
                    out.push(e);
                }
            }
        }
        // Segment purges of a segmented ledger, from their receipts on disk.
        let purges = self
            .with_segments(|b| b.purge_receipts(store, None, None, None))
            .unwrap_or_default();
        for r in purges {
            let text = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            out.push(ActivityEntry {
                kind: ActivityKind::SegmentPurge,
                store: Some(text("store")),
                status: "ok",
                reason: Value::from(text("reason")),
                fact_count: r.get("fact_count").and_then(|v| v.as_u64()).unwrap_or(0) as usize,
                receipt_id: Fact::id_from_str(&text("segment_id")),
                occurred_at: crate::Timestamp::from_secs_f64(
                    r.get("purged_at").and_then(|v| v.as_f64()).unwrap_or(0.0),
                ),
            });
        }
        out.sort_by_key(|e| e.occurred_at);
        out
    }
}

/// Whether a prune or erasure receipt lists a fact of `store`.
fn touches(receipt: &Fact, store: &str) -> bool {
    let v = receipt.value();
    ["pruned_fact_refs", "erased_fact_refs"].iter().any(|name| {
        matches!(v.get_sym(name), Some(Value::Array(refs)) if refs.iter().any(|r| {
            matches!(r.get_sym("store"), Some(Value::Sym(s) | Value::Str(s)) if s == store)
        }))
    })
}

fn report(store: &str, p: &RetentionPolicy, dropped: usize, kept: usize) -> CompactionReport {
    CompactionReport {
        store: store.to_owned(),
        strategy: p.strategy(),
        dropped_count: dropped,
        kept_count: kept,
        receipt_id: None,
        durable: false,
        commit_pause: std::time::Duration::ZERO,
        bytes_written: 0,
        write_time: std::time::Duration::ZERO,
        rebuild_time: std::time::Duration::ZERO,
    }
}

impl LedgerStore {
    /// Plans against the published state and applies the change: in memory, or through
    /// a new WAL generation. With nothing to remove, the receipts are handed back to be
    /// committed as one ordinary batch (no rewrite).
    ///
    /// Two phases, so that commits pause only briefly. Phase 1 (commits go on): the plan
    /// is made under one read lock, the kept facts are copied out in chunks (one read lock
    /// each), then written to the new generation on a second thread while the views over
    /// them are rebuilt. Phase 2 (commits wait, see [`LedgerStore::exclusive`]): the
    /// facts committed meanwhile and the receipts are appended to both, the generation is
    /// fsynced and renamed into place, and the new state is published.
    fn rewrite(
        &self,
        io: &dyn FileSystem,
        plan: impl FnOnce(&State) -> Result<Change>,
    ) -> Result<Done> {
        let _one_at_a_time = self.rewrite_lock();
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let path = self.path().map(|p| p.to_owned());
        // A 0.5.2 snapshot may hold facts the WAL lacks: first make the WAL whole (and
        // drop that snapshot), so that removing the snapshot can never lose a fact.
        if let Some(p) = path.as_deref().filter(|p| rewrite::snapshot_is_legacy(p)) {
            self.exclusive(|ex| {
                let held = ex.hold_state();
                let all = held.log.clone();
                let mut s = rebuild(&Registrations::of(&held), Vec::new());
                let g = rewrite::Generation::create(io, p)?;
                let (wal, late) = swap_in(io, p, g, all, &mut s)?;
                let old = ex.install(held, s, Some(wal));
                late.map_or(Ok(old), Err)
            })
            .map(free_aside)?;
            rewrite::remove_snapshot(io, p)?;
        }

        // Phase 1. The plan is made under one read lock (commits wait to publish); the
        // kept facts are then copied out in chunks, each under its own read lock, so a
        // commit waits at most one chunk. The prefix of the log that the plan covers
        // does not change meanwhile: commits only append, and this lock excludes other
        // rewrites and checkpoints.
        let t = std::time::Instant::now();
        let (change, cut, regs, seqs) = {
            let state = self.published();
            let change = plan(&state)?;
            let cut = state.log.len();
            let removes = change.drop.iter().any(|&d| d) || change.erase.iter().any(|&e| e);
            // Changefeed: the kept facts keep their sequences (and the ledger its
            // identity), recorded as the new generation's first frame.
            let seqs = removes.then(|| {
                Sequences::rewritten(
                    &state.seqs,
                    state.ledger_identity(),
                    (0..cut).filter(|&i| !change.drop[i]),
                    cut,
                )
            });
            (change, cut, Registrations::of(&state), seqs)
        };
        let mut read_window = t.elapsed();
        let Some(seqs) = seqs else {
            // Nothing to remove: no rewrite.
            let now = Timestamp::now();
            return Ok(Done {
                receipt_ids: Vec::new(),
                durable: false,
                late_error: None,
                pause: std::time::Duration::ZERO,
                timing: RewriteTiming::default(),
                deferred: change
                    .receipts
                    .into_iter()
                    .map(|(s, k, v)| (s, k, v(now)))
                    .collect(),
            });
        };
        let dropped = change.drop.iter().filter(|&&d| d).count();
        let mut kept: Vec<Fact> = Vec::with_capacity(cut - dropped);
        let mut from = 0;
        while from < cut {
            let to = (from + COPY_CHUNK).min(cut);
            let t = std::time::Instant::now();
            let state = self.published();
            for (i, f) in state.log[from..to].iter().enumerate() {
                let i = from + i;
                if change.drop[i] {
                    continue;
                }
                if change.erase.get(i).copied().unwrap_or(false) {
                    kept.push(f.tombstone());
                } else {
                    kept.push(f.clone());
                }
            }
            drop(state);
            read_window = read_window.max(t.elapsed());
            from = to;
        }
        let mut timing = RewriteTiming::default();
        let mut generation = None;
        let mut new_state = match path.as_deref() {
            None => rebuild(&regs, kept.clone()),
            Some(p) => {
                rewrite::remove_snapshot(io, p)?;
                let mut g = rewrite::Generation::create(io, p)?;
                let (written, s) = std::thread::scope(|sc| {
                    let w = sc.spawn(|| {
                        let t = std::time::Instant::now();
                        g.append_sequences(&seqs)
                            .and_then(|()| g.append(kept.iter()))
                            .and_then(|()| g.sync())
                            .map(|()| t.elapsed())
                    });
                    let t = std::time::Instant::now();
                    let s = rebuild(&regs, kept.clone());
                    timing.rebuild = t.elapsed();
                    (w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)), s)
                });
                timing.write = written?;
                generation = Some(g);
                s
            }
        };

        // Phase 2.
        let receipts = change.receipts;
        let side_files = change.side_files;
        self.exclusive(|ex| {
            let held = ex.hold_state();
            let tail: Vec<Fact> = held.log[cut..].to_vec();
            let now_regs = Registrations::of(&held);
            if !now_regs.same(&regs) {
                // Registered meanwhile: build again with what is registered now.
                new_state = rebuild(&now_regs, kept);
            }
            // Receipts: the next transaction times, chained to their key's latest.
            let mut sealed = Vec::with_capacity(receipts.len());
            let mut latest: HashMap<(String, String), Uuid> = HashMap::new();
            for (store, key, value) in receipts {
                let tx = ex.tick();
                let value = value(tx);
                let causation = latest
                    .get(&(store.clone(), key.clone()))
                    .copied()
                    .or_else(|| {
                        tail.iter()
                            .rev()
                            .find(|f| f.store() == store && f.key() == key)
                            .or_else(|| new_state.latest(&store, &key))
                            .map(|f| f.id())
                    });
                let draft = FactDraft::new(
                    store.clone(),
                    key.clone(),
                    &value,
                    None,
                    1,
                    None,
                    None,
                    "receipt",
                )?;
                let id = fact::new_id(tx);
                sealed.push(draft.seal(id, tx, causation)?);
                latest.insert((store, key), id);
            }
            let receipt_ids: Vec<Uuid> = sealed.iter().map(|f| f.id()).collect();
            let receipts_published = sealed.clone();
            let added = tail.into_iter().chain(sealed).collect();
            new_state.seqs = seqs;
            let (wal, late) = match (generation.take(), path.as_deref()) {
                (Some(g), Some(p)) => {
                    let (wal, late) = swap_in(io, p, g, added, &mut new_state)?;
                    timing.bytes = wal.1.end;
                    (Some(wal), late)
                }
                _ => {
                    extend(&mut new_state, added);
                    (None, None)
                }
            };
            let receipts_seq = new_state.next_sequence() - receipts_published.len() as u64;
            let durable = wal.is_some();
            let old = ex.install(held, std::mem::take(&mut new_state), wal);
            // The receipts are commits too: the changefeed numbers and delivers them.
            self.feed_hook()
                .published(receipts_seq, &receipts_published);
            let late = late.or_else(|| match path.as_deref() {
                Some(p) => rewrite::remove_files(io, p, &side_files).err(),
                None => None,
            });
            let done = Done {
                receipt_ids,
                durable,
                late_error: late,
                deferred: Vec::new(),
                pause: read_window.max(ex.held_for()),
                timing,
            };
            Ok((done, old))
        })
        .map(|(done, old)| {
            free_aside(old);
            done
        })
    }
}

/// Frees a replaced state with no lock held, mostly on a thread of its own so that the
/// caller does not wait for it (freeing a million facts and their indexes takes a
/// while). What may hold callbacks into a host language (coercions, access paths and
/// their consumers, scopes) is taken out first and freed on the calling thread; the rest
/// (fact handles, the dropped facts' only ones, and the position indexes) is plain data.
fn free_aside(mut old: State) {
    let mut callbacks = Vec::new();
    for si in old.stores.values_mut() {
        callbacks.push((
            si.coercion.take(),
            std::mem::take(&mut si.point_paths),
            std::mem::take(&mut si.scopes),
        ));
    }
    // If no thread can be had, the failed spawn drops its closure, and the state with
    // it, here.
    let _ = std::thread::Builder::new()
        .name("igniter-ledger-free".into())
        .spawn(move || drop(old));
    drop(callbacks);
}

/// Appends `facts` to a generation written aside and to `state`, fsyncs the generation
/// and renames it over the WAL at `path` (the one step both rewrites end with: the 0.5.2
/// snapshot fold and every compaction, prune and erasure). Returns the file to append to
/// with its length, and the error of a directory fsync that failed after the rename (the
/// new generation is in effect).
fn swap_in(
    io: &dyn FileSystem,
    path: &std::path::Path,
    mut g: rewrite::Generation<'_>,
    facts: Vec<Fact>,
    state: &mut State,
) -> Result<(
    (crate::ledger::lock::LockedFile, WalPosition),
    Option<Error>,
)> {
    g.append(facts.iter())?;
    let w = g.finish()?;
    let (len, crc) = (w.len, w.tail_crc);
    let (file, late) = match rewrite::commit_generation(io, path, w)? {
        Committed::Durable(f) => (f, None),
        Committed::RenamedUnsynced(f, e) => (f, Some(e)),
    };
    extend(state, facts);
    let position = WalPosition {
        end: len,
        tail_crc: crc,
    };
    Ok(((file, position), late))
}
