//! A [`LedgerStore`] over a segment directory: [`LedgerStore::open_segmented`], and the
//! segment operations of such a ledger (reports, checkpoint, purge keeping the latest
//! fact of every key).

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value as Json;

use super::backend::SegmentedBackend;
use super::options::SegmentOptions;
use super::sequences::SequenceTable;
use crate::ledger::commit::CommitSink;
use crate::ledger::error::{Error, Result};
use crate::ledger::fact::Fact;
use crate::ledger::fs::OsFileSystem;
use crate::ledger::index::State;
use crate::ledger::recovery::{self, OpenOptions, OpenReport};
use crate::LedgerStore;

/// The segment directory as the commit engine's sink (see `crate::ledger::commit`).
pub struct SegmentStorage(Mutex<SegmentedBackend>);

impl SegmentStorage {
    /// Runs `f` on the segment directory (commits wait meanwhile).
    pub fn with<R>(&self, f: impl FnOnce(&mut SegmentedBackend) -> R) -> R {
        f(&mut self.0.lock())
    }
}

impl CommitSink for SegmentStorage {
    fn append(&self, facts: &[Fact]) -> Result<()> {
        self.0.lock().append(facts)
    }
    fn close(&self) -> Result<()> {
        self.0.lock().close()
    }
}

impl LedgerStore {
    /// Opens (or creates) a segmented ledger at `root` (see [`crate::segments`]): every
    /// fact of every readable segment is loaded into the in-memory indexes, and every
    /// commit is written to the segment of its store before it is published.
    /// `opts.durability` is the ledger's durability. Compaction, prune and erasure (which
    /// rewrite a single WAL) are refused; [`LedgerStore::purge_segments`] drops whole
    /// sealed segments instead.
    pub fn open_segmented(root: impl AsRef<Path>, opts: SegmentOptions) -> Result<Self> {
        Self::open_segmented_with(root, opts, OpenOptions::new())
    }

    /// [`LedgerStore::open_segmented`] with ledger options (of which `hash_keys` applies).
    pub fn open_segmented_with(
        root: impl AsRef<Path>,
        opts: SegmentOptions,
        ledger: OpenOptions,
    ) -> Result<Self> {
        let durability = opts.durability;
        let mut backend = SegmentedBackend::open(root, opts)?;
        let facts = backend.replay(None, None, None)?;
        let mut state = State::default();
        let mut report = OpenReport::default();
        for f in facts {
            recovery::push(&mut state, f, &mut report);
        }
        // Purged segments took facts with them: number the rest as they were numbered.
        state.seqs =
            SequenceTable::load(backend.root())?.sequences(backend.root(), state.log.len());
        let storage = Arc::new(SegmentStorage(Mutex::new(backend)));
        Ok(LedgerStore::build(
            state,
            None,
            None,
            durability,
            Some(report),
            Arc::new(OsFileSystem),
            ledger.hash_keys,
            Some(storage),
        ))
    }

    /// True for a ledger opened with [`LedgerStore::open_segmented`].
    pub fn is_segmented(&self) -> bool {
        self.segment_storage().is_some()
    }

    /// Runs `f` on the segment directory of a segmented ledger (None otherwise).
    pub fn with_segments<R>(&self, f: impl FnOnce(&mut SegmentedBackend) -> R) -> Option<R> {
        self.segment_storage().map(|s| s.with(f))
    }

    /// Storage statistics of a segmented ledger (see
    /// [`SegmentedBackend::storage_stats`]); None for any other ledger.
    pub fn storage_stats(&self, store: Option<&str>) -> Option<Json> {
        self.with_segments(|b| b.storage_stats(store))
    }

    /// The segment manifest of a segmented ledger (see
    /// [`SegmentedBackend::segment_manifest`]); None for any other ledger.
    pub fn segment_manifest(&self, store: Option<&str>) -> Option<Json> {
        self.with_segments(|b| b.segment_manifest(store))
    }

    /// Seals every live segment and starts fresh ones (a segmented ledger's checkpoint).
    pub fn seal_segments(&self) -> Result<()> {
        self.with_segments(|b| b.checkpoint())
            .unwrap_or_else(|| Err(not_segmented()))
    }

    /// Purges sealed segments per the segment retention policies (see
    /// [`SegmentedBackend::purge`]), never dropping a fact that is still the latest of
    /// its key: such facts are carried forward into the live segment first (same id,
    /// times and causation), and the receipt counts them (`carried_forward`). The
    /// in-memory view keeps the purged facts until the ledger is reopened.
    pub fn purge_segments(&self, store: Option<&str>) -> Result<Vec<Json>> {
        let Some(storage) = self.segment_storage() else {
            return Err(not_segmented());
        };
        let me = self.clone();
        storage.with(|b| {
            let mut table = SequenceTable::load(b.root())?;
            b.purge_keeping(store, |b, path| {
                let facts = SegmentedBackend::segment_facts(path)?;
                let (kept, dropped): (Vec<Fact>, Vec<Fact>) = facts.into_iter().partition(|f| {
                    me.latest(f.store(), f.key())
                        .is_some_and(|l| l.id() == f.id())
                });
                // Remember the sequences the segment takes with it (before it goes).
                let seqs = me.read_log(|s| sequences_of(s, &dropped));
                table.record(b, path, me.ledger_id(), seqs)?;
                Ok(kept)
            })
        })
    }
}

/// The changefeed sequences of `facts` in the published log (facts not found are
/// skipped). The log is in commit order, which is transaction-time order for facts
/// loaded from segments and written since: each fact is looked up by its time first,
/// and only searched for in the whole log when it is not there.
fn sequences_of(state: &State, facts: &[Fact]) -> Vec<u64> {
    let log = &state.log;
    let mut out = Vec::with_capacity(facts.len());
    let mut by_id: Option<std::collections::HashMap<uuid::Uuid, usize>> = None;
    for f in facts {
        let t = f.transaction_time();
        let from = log.partition_point(|x| x.transaction_time() < t);
        let near = log[from..]
            .iter()
            .take_while(|x| x.transaction_time() == t)
            .position(|x| x.id() == f.id())
            .map(|i| from + i);
        let at = near.or_else(|| {
            by_id
                .get_or_insert_with(|| log.iter().enumerate().map(|(i, x)| (x.id(), i)).collect())
                .get(&f.id())
                .copied()
        });
        if let Some(at) = at {
            out.push(state.seqs.seq_at(at));
        }
    }
    out
}

fn not_segmented() -> Error {
    Error::InvalidArgument("this ledger is not segmented (open it with open_segmented)".into())
}
