//! [`LedgerStore`]: the ledger handle — opening, writing, lifecycle. Reading lives in
//! `store/reads.rs`, lineage in `store/lineage.rs`; the commit machinery behind the
//! writes (writer, group commit, publication, the WAL position, locks and their costs)
//! is the commit engine, `super::commit`.

mod lineage;
mod reads;
#[cfg(test)]
mod tests;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::access::Pending;
use super::commit::exclusive::Exclusive;
use super::commit::{CommitSink, Engine, Storage, WalPosition};
use super::error::{Error, Result};
use super::fact::Fact;
use super::fs::{FileSystem, OsFileSystem};
use super::hash_keys::HashKeys;
use super::index::State;
use super::lock;
use super::recovery::{self, OpenOptions, OpenReport};
use super::request::{Append, Batch, Op, Write};
use super::snapshot::{self, CheckpointReport};
use super::wal::{Durability, LogFile, WalWriter};
use crate::changefeed::LedgerHook;

pub use super::commit::Committed;
pub use lineage::{ChainEntry, FactRef, Lineage};

/// An embedded, append-only, bitemporal fact ledger. In memory ([`LedgerStore::memory`])
/// or on a file ([`LedgerStore::open`]). Cheap to clone (clones share one ledger);
/// `Send + Sync`, so share it between threads freely.
///
/// ```
/// use igniter_ledger::{LedgerStore, MapKey, Read, Value, Write};
///
/// let ledger = LedgerStore::memory();
/// let v1 = ledger.write(Write::new("reminders", "r1", Value::map([
///     (MapKey::sym("title"), Value::from("Buy milk")),
///     (MapKey::sym("status"), Value::sym("open")),
/// ]))).unwrap();
/// let v2 = ledger.write(Write::new("reminders", "r1", Value::map([
///     (MapKey::sym("title"), Value::from("Buy milk")),
///     (MapKey::sym("status"), Value::sym("done")),
/// ]))).unwrap();
/// assert_eq!(v2.causation(), Some(v1.id()));
///
/// let now = ledger.read(Read::new("reminders", "r1")).unwrap().unwrap();
/// assert_eq!(now.get_sym("status"), Some(&Value::sym("done")));
/// let then = ledger.read(Read::new("reminders", "r1").as_of(v1.transaction_time())).unwrap().unwrap();
/// assert_eq!(then.get_sym("status"), Some(&Value::sym("open")));
/// ```
#[derive(Clone)]
pub struct LedgerStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The commit engine: published state, writer, group commit (see `super::commit`).
    engine: Engine,
    report: Option<OpenReport>,
    consumer_failures: AtomicU64,
    /// Serializes checkpoints and storage rewrites: they share the `.snap.tmp` path.
    checkpointing: Mutex<()>,
    /// Snapshot, side-file and directory operations.
    fs: Arc<dyn FileSystem>,
    /// What writes do with String hash keys.
    hash_keys: HashKeys,
    /// Retention policies by store (see `crate::retention`).
    retention: Mutex<crate::retention::Policies>,
    /// Derivations, scatters and relations: react to published commits.
    reactor: crate::derive::Reactor,
    /// The segment directory of a segmented ledger (also the engine's sink).
    segments: Option<Arc<crate::segments::SegmentStorage>>,
}

impl Deref for Inner {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl Default for LedgerStore {
    fn default() -> Self {
        Self::memory()
    }
}

impl LedgerStore {
    /// A ledger over a recovered `state`. `wal` is the WAL to append to, with the
    /// position recovery found its last frame to end at; `segments` the segment
    /// directory of a segmented ledger (its sink).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        state: State,
        wal: Option<(WalWriter, WalPosition)>,
        path: Option<PathBuf>,
        durability: Durability,
        report: Option<OpenReport>,
        fs: Arc<dyn FileSystem>,
        hash_keys: HashKeys,
        segments: Option<Arc<crate::segments::SegmentStorage>>,
    ) -> Self {
        let storage = match (wal, &segments) {
            (Some((w, p)), _) => Storage::Wal(w, p),
            (None, Some(s)) => Storage::Sink(s.clone() as Arc<dyn CommitSink>),
            (None, None) => Storage::Memory,
        };
        LedgerStore {
            inner: Arc::new(Inner {
                engine: Engine::new(state, storage, path, durability),
                report,
                consumer_failures: AtomicU64::new(0),
                checkpointing: Mutex::new(()),
                fs,
                hash_keys,
                retention: Mutex::new(crate::retention::Policies::default()),
                reactor: crate::derive::Reactor::default(),
                segments,
            }),
        }
    }

    /// A ledger that lives in memory only.
    pub fn memory() -> Self {
        Self::memory_with(OpenOptions::new())
    }

    /// A ledger in memory with options (of which only [`OpenOptions::hash_keys`] applies).
    pub fn memory_with(opts: OpenOptions) -> Self {
        Self::build(
            State::default(),
            None,
            None,
            Durability::None,
            None,
            Arc::new(OsFileSystem),
            opts.hash_keys,
            None,
        )
    }

    /// What writes to this ledger do with String hash keys.
    pub fn hash_keys(&self) -> HashKeys {
        self.inner.hash_keys
    }

    /// Opens (or creates) the ledger whose WAL is at `path`, with `fsync` durability.
    /// The snapshot lives beside it at `path + ".snap"`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, OpenOptions::new())
    }

    /// Opens with options (durability, recovery).
    pub fn open_with(path: impl AsRef<Path>, opts: OpenOptions) -> Result<Self> {
        Self::open_with_layers(path, opts, None, Arc::new(OsFileSystem))
    }

    /// Opens on a custom file layer (for fault-injection tests). The file at `path` is read
    /// for recovery and locked as usual; appends, syncs and the recovery cut go through
    /// `file`.
    #[doc(hidden)]
    pub fn open_with_file(
        path: impl AsRef<Path>,
        opts: OpenOptions,
        file: Arc<dyn LogFile>,
    ) -> Result<Self> {
        Self::open_with_layers(path, opts, Some(file), Arc::new(OsFileSystem))
    }

    /// Opens with custom I/O layers (for fault-injection tests): `file` (if given) takes
    /// the WAL's appends, syncs and recovery cut; `fs` the snapshot, side-file and
    /// directory operations.
    #[doc(hidden)]
    pub fn open_with_layers(
        path: impl AsRef<Path>,
        opts: OpenOptions,
        file: Option<Arc<dyn LogFile>>,
        fs: Arc<dyn FileSystem>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let locked = Arc::new(lock::open_locked(path, &*fs)?);
        let (log, lock_holder): (Arc<dyn LogFile>, _) = match file {
            Some(f) => (f, Some(locked.clone())),
            None => (locked.clone(), None),
        };
        let opened = recovery::load(path, &locked.file, &*log, &*fs, &opts)?;
        let len = locked
            .file
            .metadata()
            .map_err(|e| Error::io(format!("reading the size of {}", path.display()), e))?
            .len();
        {
            let mut e = locked.extent.lock();
            (e.end, e.allocated) = (len, len);
            e.preallocate = opts.durability == Durability::Fsync;
        }
        drop(locked);
        let mut wal = WalWriter::new(log, len, opts.durability, path);
        wal._lock = lock_holder;
        Ok(Self::build(
            opened.state,
            Some((wal, opened.position)),
            Some(path.to_owned()),
            opts.durability,
            Some(opened.report),
            fs,
            opts.hash_keys,
            None,
        ))
    }

    /// What opening found and did (None for an in-memory ledger).
    pub fn open_report(&self) -> Option<&OpenReport> {
        self.inner.report.as_ref()
    }

    /// The WAL path (None in memory).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The durability mode.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// How many consumer calls failed (returned an error or panicked) so far.
    pub fn consumer_failures(&self) -> u64 {
        self.inner.consumer_failures.load(Ordering::Relaxed)
    }

    // ------------------------------------------------------------------ writing

    /// Writes a value; returns the new fact. Consumers are notified before it returns.
    pub fn write(&self, w: Write) -> Result<Fact> {
        self.commit_one(Op::Write(w))
    }

    /// Appends an event to a history; returns the new fact.
    pub fn append(&self, a: Append) -> Result<Fact> {
        self.commit_one(Op::Append(a))
    }

    fn commit_one(&self, op: Op) -> Result<Fact> {
        let mut c = self.commit_deferred(Batch { ops: vec![op] })?;
        self.deliver(c.pending);
        self.react(&c.facts);
        Ok(c.facts.pop().expect("one op, one fact"))
    }

    /// Commits a batch atomically; returns its facts in order.
    pub fn commit(&self, b: Batch) -> Result<Vec<Fact>> {
        let c = self.commit_deferred(b)?;
        self.deliver(c.pending);
        self.react(&c.facts);
        Ok(c.facts)
    }

    /// Calls the consumers owed `pending`. Failures are counted, never raised.
    pub fn deliver(&self, pending: Pending) {
        for (consumer, n) in pending.items {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| consumer.notify(&n)));
            if !matches!(r, Ok(Ok(()))) {
                self.inner.consumer_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Commits a batch and returns the notifications owed to consumers instead of
    /// delivering them (for callers that must deliver on another thread or under a
    /// runtime lock, such as the Ruby extension). Derivations are not run either: call
    /// [`LedgerStore::react`] with the facts after delivering.
    pub fn commit_deferred(&self, batch: Batch) -> Result<Committed> {
        if batch.ops.is_empty() {
            return Ok(Committed {
                facts: Vec::new(),
                pending: Pending::default(),
            });
        }
        // Before any lock: a forked child must not wait on a lock a parent thread held.
        let me = std::process::id();
        let inner = &*self.inner;
        if inner.on_disk && me != inner.pid {
            return Err(inner.forked());
        }
        inner.commit(me, inner.hash_keys.apply_batch(batch))
    }

    // ------------------------------------------------------------------ lifecycle

    /// Writes a snapshot of everything published so far (atomically) and records the WAL
    /// position it covers. In `none` mode the buffer is written out first. Errors for an
    /// in-memory ledger.
    pub fn checkpoint(&self) -> Result<CheckpointReport> {
        let Some(path) = self.inner.path.clone() else {
            return Err(Error::InvalidArgument(
                "checkpoint needs a file-backed ledger (open it with a path)".into(),
            ));
        };
        // Before any lock (a forked child must not wait on one a parent thread held).
        self.inner.check_not_forked()?;
        // One checkpoint at a time: concurrent ones would write the same temporary file
        // and rename it from under each other.
        let _one_at_a_time = self.inner.checkpointing.lock();
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let view = self.inner.checkpoint_view()?;
        // The snapshot must cover only WAL bytes on stable storage. Otherwise (`flush` and
        // `none` modes) a power cut could leave a WAL shorter than the snapshot claims:
        // the snapshot would be ignored on open and overwritten by the next checkpoint,
        // losing the facts only it held. So write out the buffer (`none`), then fdatasync
        // the WAL (which covers the view's position) before the snapshot is written. In
        // `fsync` mode every published commit is already durable.
        self.inner.flush_wal()?;
        if self.inner.durability != Durability::Fsync {
            self.inner.sync_wal()?;
        }
        let pos = view.position;
        snapshot::write(
            &*self.inner.fs,
            &path,
            &view.facts,
            &view.seqs,
            pos.end,
            pos.tail_crc,
        )
    }

    /// Flushes and syncs the WAL and releases the file lock. Later writes fail with
    /// [`Error::Closed`]; reads keep answering from memory. Closing twice is fine.
    pub fn close(&self) -> Result<()> {
        if self.inner.check_not_forked().is_err() {
            // Before any lock (one may have been held by a parent thread at fork time).
            // The parent owns the buffered commits and the file: write nothing; this
            // process's copy of the descriptor goes when the handle is dropped.
            self.inner.closed.store(true, Ordering::Release);
            return Ok(());
        }
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.feed.closed();
        self.inner.close_storage()
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }
}

// ------------------------------------------------------------------ changefeed access

/// A handle on a ledger that does not keep it alive (held by an attached changefeed).
#[derive(Clone)]
pub(crate) struct WeakLedger(std::sync::Weak<Inner>);

impl WeakLedger {
    pub(crate) fn upgrade(&self) -> Option<LedgerStore> {
        self.0.upgrade().map(|inner| LedgerStore { inner })
    }
}

impl LedgerStore {
    pub(crate) fn downgrade(&self) -> WeakLedger {
        WeakLedger(Arc::downgrade(&self.inner))
    }

    pub(crate) fn feed_hook(&self) -> &LedgerHook {
        &self.inner.feed
    }

    /// Runs `f` over the published state (its log in commit order, and the log's
    /// changefeed sequences) under the read lock.
    pub(crate) fn read_log<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.inner.read_state_infallible())
    }

    /// [`LedgerStore::read_log`] for callers that can fail: in a forked child whose
    /// parent held the state at the fork, `Forked` instead of a panic.
    pub(crate) fn try_read_log<R>(&self, f: impl FnOnce(&State) -> R) -> Result<R> {
        Ok(f(&*self.inner.read_state()?))
    }
}

// ------------------------------------------------------------------ storage rewrites

impl LedgerStore {
    /// Excludes checkpoints and other storage rewrites (not commits or reads). Held for
    /// a whole rewrite, around [`LedgerStore::exclusive`].
    pub(crate) fn rewrite_lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.inner.checkpointing.lock()
    }

    /// The published state, for reading.
    pub(crate) fn published(&self) -> parking_lot::RwLockReadGuard<'_, State> {
        self.inner.state.read()
    }

    /// Runs `f` with the ledger held exclusively (see [`Exclusive`]); the caller holds
    /// [`LedgerStore::rewrite_lock`]. Commits wait; readers keep reading the published
    /// state until `f` installs a new one.
    pub(crate) fn exclusive<T>(
        &self,
        f: impl FnOnce(&mut Exclusive<'_>) -> Result<T>,
    ) -> Result<T> {
        let inner = &*self.inner;
        inner.check_not_forked()?;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if inner.segments.is_some() {
            return Err(Error::InvalidArgument(
                "compaction, prune and erasure rewrite a single WAL; a segmented ledger \
                 drops whole sealed segments instead (purge_segments)"
                    .into(),
            ));
        }
        inner.engine.exclusive(f)
    }

    /// The WAL file and the bytes written to it (whole frames), taken together under the
    /// writer lock: for reading the WAL through the ledger's own descriptor (see
    /// `verify`). None for an in-memory or closed ledger.
    pub(crate) fn wal_for_reading(&self) -> Result<Option<(Arc<dyn LogFile>, u64)>> {
        self.inner.check_not_forked()?;
        self.inner.engine.wal_for_reading()
    }

    /// The ledger's file layer (snapshots, side files, storage rewrites).
    pub(crate) fn file_system(&self) -> Arc<dyn FileSystem> {
        self.inner.fs.clone()
    }

    /// The segment directory of a segmented ledger.
    pub(crate) fn segment_storage(&self) -> Option<&Arc<crate::segments::SegmentStorage>> {
        self.inner.segments.as_ref()
    }

    /// The retention policies (see `crate::retention`).
    pub(crate) fn retention_policies_lock(&self) -> &Mutex<crate::retention::Policies> {
        &self.inner.retention
    }

    /// The commit engine (for tests of its internals).
    #[cfg(test)]
    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }
}
