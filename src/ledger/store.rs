//! [`LedgerStore`]: the ledger handle — commits (with group commit), reads, registrations,
//! checkpoints.
//!
//! ## Locks and what each operation costs
//! - `state` (`RwLock<State>`): the published, readable ledger. Readers take it shared for
//!   the few index look-ups of their query and clone `Fact` handles (an `Arc` increment
//!   each); coercions and consumers run after it is released.
//! - `writer` (`Mutex<Writer>`): serializes commits — clock, ids, causation, `expected`
//!   checks, encoding of the frame and its write(2). Value validation and encoding happen
//!   before it is taken.
//! - `sync` (`Mutex<SyncState>` + condvar): group commit in `fsync` mode. A committer whose
//!   frame is not yet durable either becomes the leader — reads the written length, runs
//!   one fdatasync outside every lock, publishes the new durable length — or waits for the
//!   leader. N concurrent writers therefore share one fdatasync.
//!
//! A commit becomes visible to readers (is *published*) only once it is durable for the
//! chosen mode, in commit order, all facts of a batch under one write lock: readers never
//! see a fact that could still be lost by the mode's promise, nor half a batch.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use uuid::Uuid;

use super::access::{AccessPath, Coercion, Delivery, Pending, ReadFact};
use super::codec;
use super::error::{Error, Result};
use super::fact::{self, encode_record, Fact, FactDraft};
use super::fork::{self, Owned, Owner};
use super::fs::{FileSystem, OsFileSystem};
use super::hash_keys::HashKeys;
use super::index::{Resolved, State};
use super::lock;
use super::recovery::{self, OpenOptions, OpenReport};
use super::request::{Append, Batch, Expected, HistoryQuery, Op, PartitionQuery, Read, Write};
use super::snapshot::{self, CheckpointReport};
use super::time::{Clock, Timestamp};
use super::value::{MapKey, Value};
use super::wal::{self, AppendError, Durability, LogFile, WalWriter, TAG_BATCH, TAG_FACT};
use crate::changefeed::LedgerHook;
use crate::derive::SchemaGraph;

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
    state: RwLock<State>,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Bytes handed to write(2) (read by the group-commit leader before it syncs).
    written: AtomicU64,
    path: Option<PathBuf>,
    durability: Durability,
    report: Option<OpenReport>,
    closed: AtomicBool,
    consumer_failures: AtomicU64,
    /// Serializes checkpoints: they share the `.snap.tmp` path.
    checkpointing: Mutex<()>,
    /// Snapshot, side-file and directory operations.
    fs: Arc<dyn FileSystem>,
    /// The process that made this ledger. A forked child shares the WAL descriptor; it
    /// must neither commit nor flush through it, and must not wait on a lock that a
    /// thread of the parent held at fork time (see `fork`).
    pid: u32,
    /// What writes do with String hash keys.
    hash_keys: HashKeys,
    /// The process whose thread holds `state` for writing.
    state_owner: Owner,
    /// The process whose thread holds `writer` (commit path).
    writer_owner: Owner,
    /// Changefeed: told about every publication, in commit order (see crate::changefeed).
    feed: LedgerHook,
    /// Commits written to the WAL whose committer has not yet seen them durable (a
    /// storage rewrite waits for these before it replaces the file).
    in_flight: AtomicUsize,
    /// Retention policies by store (see `crate::retention`).
    retention: Mutex<crate::retention::Policies>,
    /// Derivations, scatters and relations: react to published commits.
    reactor: crate::derive::Reactor,
    /// The segment directory of a segmented ledger (also the writer's sink).
    segments: Option<Arc<crate::segments::SegmentStorage>>,
}

impl Inner {
    /// Refuses file operations in a process forked from the one that opened the file.
    /// Called before any lock is taken.
    fn check_not_forked(&self) -> Result<()> {
        if self.on_disk() && std::process::id() != self.pid {
            return Err(self.forked());
        }
        Ok(())
    }

    /// Backed by files (a WAL or a segment directory) that a forked child must not
    /// write.
    fn on_disk(&self) -> bool {
        self.path.is_some() || self.segments.is_some()
    }

    fn forked(&self) -> Error {
        Error::Forked {
            opened_by: self.pid,
        }
    }

    /// The published state, for reading. In a forked child, never waits on a lock held
    /// by a thread of the parent (`Forked` instead).
    fn read_state(&self) -> Result<RwLockReadGuard<'_, State>> {
        // The uncontended read asks for no process id (getpid is a system call).
        if let Some(g) = self.state.try_read() {
            return Ok(g);
        }
        self.take(
            std::process::id(),
            &self.state_owner,
            || self.state.try_read(),
            || self.state.read(),
        )
    }

    /// Takes one of the ledger's locks for process `me`: at once if free; blocking when
    /// `me` opened the ledger; in a forked child through [`fork::acquire`], which never
    /// waits on a lock a thread of the parent held (`Forked` instead).
    fn take<G>(
        &self,
        me: u32,
        owner: &fork::Owner,
        mut try_lock: impl FnMut() -> Option<G>,
        lock: impl FnOnce() -> G,
    ) -> Result<G> {
        match try_lock() {
            Some(g) => Ok(g),
            None if me == self.pid => Ok(lock()),
            None => fork::acquire(me, owner, try_lock, lock).ok_or_else(|| self.forked()),
        }
    }

    /// [`Inner::read_state`] for the reads whose signature cannot fail. In a forked child
    /// whose parent was publishing at the moment of the fork, the state may be half
    /// updated and its lock can never be taken: such a read panics with the `Forked`
    /// message rather than hang (the fallible reads return the error).
    fn read_state_infallible(&self) -> RwLockReadGuard<'_, State> {
        match self.read_state() {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    /// The published state, for writing, recording this process as its holder (`me`).
    fn write_state_as(&self, me: u32) -> Result<Owned<'_, RwLockWriteGuard<'_, State>>> {
        let g = self.take(
            me,
            &self.state_owner,
            || self.state.try_write(),
            || self.state.write(),
        )?;
        Ok(Owned::new(g, &self.state_owner, me))
    }

    fn write_state(&self) -> Result<Owned<'_, RwLockWriteGuard<'_, State>>> {
        self.write_state_as(std::process::id())
    }

    /// The writer, for a commit by process `me`.
    fn lock_writer(&self, me: u32) -> Result<Owned<'_, MutexGuard<'_, Writer>>> {
        let g = self.take(
            me,
            &self.writer_owner,
            || self.writer.try_lock(),
            || self.writer.lock(),
        )?;
        Ok(Owned::new(g, &self.writer_owner, me))
    }
}

struct PendingCommit {
    seq: u64,
    end: u64,
    crc: u32,
    facts: Vec<(Fact, Option<Value>, Option<MapKey>)>,
}

struct Writer {
    clock: Clock,
    wal: Option<WalWriter>,
    /// Committed to the file, waiting for fsync before publication (fsync mode only).
    pending: VecDeque<PendingCommit>,
    /// Latest fact id per (store, key) among `pending` (for causation and `expected`).
    overlay: HashMap<Arc<str>, HashMap<Arc<str>, Uuid>>,
    /// Notifications of commits published by another committer, by commit sequence.
    delivered: HashMap<u64, Vec<Delivery>>,
    poisoned: Option<String>,
    next_seq: u64,
    frame: Vec<u8>,
    /// Where commits go when there is no WAL (see `super::commit`).
    sink: Option<Arc<dyn super::commit::CommitSink>>,
}

/// Group-commit state, under `Inner::sync`.
#[derive(Default)]
struct SyncState {
    /// WAL bytes known to be on stable storage.
    synced: u64,
    /// A committer is running fdatasync.
    leader: bool,
    /// The sync failure that poisoned the ledger.
    error: Option<String>,
    /// The WAL file, for the leader's fdatasync. `close` clears it in the same critical
    /// section in which it records the final sync's outcome (`synced` or `error`), so a
    /// committer that finds no file always finds its answer too: no one waits for a
    /// notification that was already sent.
    file: Option<Arc<dyn LogFile>>,
}

/// The result of a commit whose consumer notifications have not been delivered yet (see
/// [`LedgerStore::commit_deferred`]).
#[derive(Debug)]
pub struct Committed {
    /// The facts, in commit order.
    pub facts: Vec<Fact>,
    /// Notifications owed to consumers.
    pub pending: Pending,
}

/// One entry of [`LedgerStore::causation_chain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEntry {
    /// Fact id.
    pub id: Uuid,
    /// First 12 hex characters of the value hash.
    pub value_hash: String,
    /// The fact's causation.
    pub causation: Option<Uuid>,
    /// Commit time.
    pub transaction_time: Timestamp,
}

/// The lineage of a key: its causation chain and a stable proof hash over it.
#[derive(Clone, Debug, PartialEq)]
pub struct Lineage {
    /// Store name.
    pub store: String,
    /// Key.
    pub key: String,
    /// The chain, oldest first.
    pub chain: Vec<ChainEntry>,
    /// Number of facts in the chain.
    pub depth: usize,
    /// The derivations whose source store is the key's store (as the reference lists
    /// them). A derived fact's own provenance is in its `derivation` field.
    pub derived_by: Vec<crate::derive::Derivation>,
    /// blake3 hex over the chain's `id:value_hash:causation` entries joined by `\n`
    /// (None for an unknown key).
    pub proof_hash: Option<String>,
}

/// A compact reference to a fact.
#[derive(Clone, Debug, PartialEq)]
pub struct FactRef {
    /// Fact id.
    pub id: Uuid,
    /// Store name.
    pub store: String,
    /// Key.
    pub key: String,
    /// Commit time.
    pub transaction_time: Timestamp,
    /// Domain time.
    pub valid_time: Option<f64>,
    /// Full value hash (hex).
    pub value_hash: String,
}

impl Default for LedgerStore {
    fn default() -> Self {
        Self::memory()
    }
}

impl LedgerStore {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        state: State,
        wal: Option<WalWriter>,
        path: Option<PathBuf>,
        durability: Durability,
        report: Option<OpenReport>,
        fs: Arc<dyn FileSystem>,
        hash_keys: HashKeys,
        segments: Option<Arc<crate::segments::SegmentStorage>>,
    ) -> Self {
        let sink = segments
            .clone()
            .map(|s| s as Arc<dyn super::commit::CommitSink>);
        let clock = Clock::new(recovery::clock_floor(&state));
        let written = wal.as_ref().map_or(0, |w| w.len);
        let feed = LedgerHook::new(&state);
        let file = wal.as_ref().map(|w| w.file.clone());
        LedgerStore {
            inner: Arc::new(Inner {
                state: RwLock::new(state),
                writer: Mutex::new(Writer {
                    clock,
                    wal,
                    pending: VecDeque::new(),
                    overlay: HashMap::new(),
                    delivered: HashMap::new(),
                    poisoned: None,
                    next_seq: 0,
                    frame: Vec::with_capacity(4096),
                    sink,
                }),
                sync: Mutex::new(SyncState {
                    synced: written,
                    file,
                    ..SyncState::default()
                }),
                synced: Condvar::new(),
                written: AtomicU64::new(written),
                path,
                durability,
                report,
                closed: AtomicBool::new(false),
                consumer_failures: AtomicU64::new(0),
                checkpointing: Mutex::new(()),
                fs,
                pid: std::process::id(),
                hash_keys,
                state_owner: Owner::default(),
                writer_owner: Owner::default(),
                feed,
                in_flight: AtomicUsize::new(0),
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
        let (state, report) = recovery::load(path, &locked.file, &*log, &*fs, &opts)?;
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
            state,
            Some(wal),
            Some(path.to_owned()),
            opts.durability,
            Some(report),
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
        let mut c = self.commit_deferred(Batch {
            ops: vec![Op::Write(w)],
        })?;
        self.deliver(c.pending);
        self.react(&c.facts);
        Ok(c.facts.pop().expect("one op, one fact"))
    }

    /// Appends an event to a history; returns the new fact.
    pub fn append(&self, a: Append) -> Result<Fact> {
        let mut c = self.commit_deferred(Batch {
            ops: vec![Op::Append(a)],
        })?;
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
        if inner.on_disk() && me != inner.pid {
            return Err(inner.forked());
        }
        let batch = inner.hash_keys.apply_batch(batch);
        // Validation and encoding, before any lock.
        let mut prepared = Vec::with_capacity(batch.ops.len());
        for op in batch.ops {
            prepared.push(prepare(op)?);
        }
        let mut guard = inner.lock_writer(me)?;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if let Some(p) = &guard.poisoned {
            return Err(Error::Poisoned(p.clone()));
        }
        let facts = {
            let state = inner.read_state()?;
            seal_all(&mut guard, &state, prepared)?
        };
        let w = &mut *guard;
        let seq = w.next_seq;
        w.next_seq += 1;
        let Some(wal) = w.wal.as_mut() else {
            // In memory, or into the sink: publish at once (after the sink has it).
            if let Some(sink) = &w.sink {
                if let [(f, _, _)] = facts.as_slice() {
                    sink.append(std::slice::from_ref(f))?; // the common case: no copy
                } else {
                    let committed: Vec<Fact> = facts.iter().map(|(f, _, _)| f.clone()).collect();
                    sink.append(&committed)?;
                }
            }
            let mut out = Vec::new();
            let mut state = inner.write_state_as(me)?;
            let first_seq = state.next_sequence();
            let facts = publish_facts(&mut state, facts, &mut out);
            drop(state);
            inner.feed.published(first_seq, &facts);
            return Ok(Committed {
                facts,
                pending: Pending { items: out },
            });
        };
        // Encode the frame.
        w.frame.clear();
        let start = wal::begin_frame(&mut w.frame);
        codec::write_array_len(&mut w.frame, 2);
        if facts.len() == 1 {
            codec::write_int(&mut w.frame, TAG_FACT);
            encode_record(&mut w.frame, &facts[0].0);
        } else {
            codec::write_int(&mut w.frame, TAG_BATCH);
            codec::write_array_len(&mut w.frame, facts.len());
            for (f, _, _) in &facts {
                encode_record(&mut w.frame, f);
            }
        }
        let crc = wal::end_frame(&mut w.frame, start)?;
        let end = match wal.append(&w.frame) {
            Ok(end) => end,
            Err(AppendError::Clean(e)) => return Err(e),
            Err(AppendError::Poisoned(p)) => {
                w.poisoned = Some(p.clone());
                return Err(Error::Poisoned(p));
            }
        };
        inner.written.store(wal.written, Ordering::Release);
        if inner.durability != Durability::Fsync {
            let mut out = Vec::new();
            let mut state = inner.write_state_as(me)?;
            let first_seq = state.next_sequence();
            let facts = publish_facts(&mut state, facts, &mut out);
            state.wal_end = end;
            state.wal_tail_crc = crc;
            drop(state);
            inner.feed.published(first_seq, &facts);
            return Ok(Committed {
                facts,
                pending: Pending { items: out },
            });
        }
        // fsync mode: remember, wait for durability, publish in order.
        let result: Vec<Fact> = facts.iter().map(|(f, _, _)| f.clone()).collect();
        for (f, _, _) in &facts {
            w.overlay
                .entry(f.store_arc().clone())
                .or_default()
                .insert(f.key_arc().clone(), f.id());
        }
        w.pending.push_back(PendingCommit {
            seq,
            end,
            crc,
            facts,
        });
        inner.in_flight.fetch_add(1, Ordering::AcqRel);
        drop(guard);
        let durable = self.wait_durable(end);
        inner.in_flight.fetch_sub(1, Ordering::AcqRel);
        let mut w = inner.writer.lock();
        match durable {
            Ok(durable) => {
                publish_durable(&mut w, inner, durable);
                let items = w.delivered.remove(&seq).unwrap_or_default();
                Ok(Committed {
                    facts: result,
                    pending: Pending { items },
                })
            }
            Err((e, durable)) => {
                // Commits that reached stable storage before the failure were (or are
                // being) acknowledged to their writers: publish them. Nothing after the
                // failure point may become visible.
                if let Error::Poisoned(p) = &e {
                    w.poisoned.get_or_insert_with(|| p.clone());
                }
                publish_durable(&mut w, inner, durable);
                w.pending.clear();
                w.overlay.clear();
                Err(e)
            }
        }
    }

    /// Blocks until the WAL is durable up to `end`; returns the durable length, or the
    /// error together with the length that was durable when syncing failed.
    ///
    /// Every wait re-checks, under the `sync` lock, both the durable length and the
    /// error; and the file the leader syncs is taken from the same `SyncState` that
    /// `close` clears together with recording its outcome. So a committer never waits for
    /// a notification that was already sent (a failing final sync in `close` used to
    /// leave such a committer waiting forever).
    fn wait_durable(&self, end: u64) -> Result<u64, (Error, u64)> {
        let inner = &*self.inner;
        let mut s = inner.sync.lock();
        loop {
            if s.synced >= end {
                return Ok(s.synced);
            }
            if let Some(e) = &s.error {
                return Err((Error::Poisoned(e.clone()), s.synced));
            }
            if s.leader {
                inner.synced.wait(&mut s);
                continue;
            }
            let Some(file) = s.file.clone() else {
                // `close` finished and its final sync did not cover `end` (it covers all
                // that was written, so this cannot happen; answer rather than wait).
                return Err((Error::Closed, s.synced));
            };
            s.leader = true;
            drop(s);
            let target = inner.written.load(Ordering::Acquire);
            let res = file.sync_data().map_err(|e| e.to_string());
            drop(file);
            s = inner.sync.lock();
            s.leader = false;
            match res {
                Ok(()) => s.synced = s.synced.max(target),
                Err(e) => {
                    let mut msg = format!("fdatasync failed: {e}");
                    // Poison under the writer lock, together with the cut, so that no
                    // commit can append after the cut; and cut what is not durable, so
                    // a reopen cannot resurrect commits that are reported as failed.
                    let mut w = inner.writer.lock();
                    if let Some(wal) = w.wal.as_mut() {
                        if let Err(e2) = wal.file.set_len(s.synced) {
                            msg.push_str(&format!(
                                "; cutting the unsynced tail back to {} bytes also failed \
                                 ({e2}), so writes reported as failed may reappear on reopen",
                                s.synced
                            ));
                        }
                        wal.len = s.synced;
                        wal.written = s.synced;
                        inner.written.store(s.synced, Ordering::Release);
                    }
                    w.poisoned.get_or_insert_with(|| msg.clone());
                    drop(w);
                    s.error = Some(msg);
                }
            }
            inner.synced.notify_all();
        }
    }

    // ------------------------------------------------------------------ reading

    fn coerce(&self, facts: Vec<Fact>) -> Result<Vec<ReadFact>> {
        if facts.is_empty() {
            return Ok(Vec::new());
        }
        let state = self.inner.read_state()?;
        // Facts of one store share its interned name: look each store up once.
        let mut last: Option<&Arc<str>> = None;
        let any = facts.iter().any(|f| {
            let s = f.store_arc();
            if last.is_some_and(|l| Arc::ptr_eq(l, s)) {
                return false;
            }
            last = Some(s);
            state.coercion(s).is_some()
        });
        if !any {
            return Ok(facts
                .into_iter()
                .map(|fact| ReadFact {
                    fact,
                    coerced: None,
                })
                .collect());
        }
        let mut cache: HashMap<Arc<str>, Option<Arc<dyn Coercion>>> = HashMap::new();
        let lookups: Vec<Option<Arc<dyn Coercion>>> = facts
            .iter()
            .map(|f| {
                cache
                    .entry(f.store_arc().clone())
                    .or_insert_with(|| state.coercion(f.store()))
                    .clone()
            })
            .collect();
        drop(state);
        facts
            .into_iter()
            .zip(lookups)
            .map(|(fact, c)| match c {
                None => Ok(ReadFact {
                    fact,
                    coerced: None,
                }),
                Some(c) => apply_coercion(&*c, fact),
            })
            .collect()
    }

    /// The value a point read sees (coerced), or None.
    /// An erased fact reads as nil, like a key never written.
    pub fn read(&self, q: Read) -> Result<Option<Value>> {
        Ok(self
            .read_fact(q)?
            .filter(|f| !f.fact.is_erased())
            .map(|f| f.value()))
    }

    /// The fact a point read selects (with its coerced value), or None.
    pub fn read_fact(&self, q: Read) -> Result<Option<ReadFact>> {
        // The fact and the store's coercion under one read lock.
        let found = self
            .inner
            .read_state()?
            .read_coercible(&q.store, &q.key, q.as_of, q.valid_at);
        let Some((f, c)) = found else {
            return Ok(None);
        };
        match c {
            None => Ok(Some(ReadFact {
                fact: f,
                coerced: None,
            })),
            Some(c) => apply_coercion(&*c, f).map(Some),
        }
    }

    /// The current fact (coerced) of every key of a store, ordered by key: O(keys), from
    /// the key index.
    pub fn current(&self, store: &str) -> Result<Vec<ReadFact>> {
        let mut facts = self.inner.state.read().latest_of_store(store);
        facts.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        self.coerce(facts)
    }

    /// The latest raw fact of (store, key), ignoring coercions.
    pub fn latest(&self, store: &str, key: &str) -> Option<Fact> {
        self.inner
            .read_state_infallible()
            .latest(store, key)
            .cloned()
    }

    /// Facts of a store or key in commit order (coerced).
    pub fn history(&self, q: HistoryQuery) -> Result<Vec<ReadFact>> {
        let facts = self
            .inner
            .read_state()?
            .history(&q.store, q.key.as_deref(), q.since, q.as_of);
        self.coerce(facts)
    }

    /// Raw facts of a store or key in commit order (no coercion).
    pub fn history_raw(&self, q: HistoryQuery) -> Vec<Fact> {
        self.inner
            .read_state_infallible()
            .history(&q.store, q.key.as_deref(), q.since, q.as_of)
    }

    /// Facts of a store whose value has `partition_key == partition_value`, in commit
    /// order (coerced). The first call for a (store, partition key) builds its index from
    /// the store's facts; later appends and writes keep it current, so later calls cost
    /// O(slice).
    pub fn history_partition(&self, q: PartitionQuery) -> Result<Vec<ReadFact>> {
        let facts = self.partition_raw(&q)?;
        self.coerce(facts)
    }

    fn partition_raw(&self, q: &PartitionQuery) -> Result<Vec<Fact>> {
        if let Some(q) = self.inner.hash_keys.apply_partition(q) {
            return self.partition_raw(&q);
        }
        {
            let s = self.inner.read_state()?;
            if s.has_partition(&q.store, &q.partition_key) {
                return Ok(s.partition(
                    &q.store,
                    &q.partition_key,
                    &q.partition_value,
                    q.since,
                    q.as_of,
                ));
            }
        }
        let mut s = self.inner.write_state()?;
        s.build_partition_index(&q.store, &q.partition_key);
        Ok(s.partition(
            &q.store,
            &q.partition_key,
            &q.partition_value,
            q.since,
            q.as_of,
        ))
    }

    /// How many facts `history_partition` would answer for this store, partition key and
    /// value (`since`/`as_of` ignored), in O(1) and without cloning any fact; None while
    /// that store and key have no partition index (built by the first `history_partition`
    /// call, or an append naming the key).
    /// Partitions only grow, by appending in commit order, so an unchanged length means
    /// an unchanged slice (the Ruby extension caches slices on this).
    ///
    /// ```
    /// use igniter_ledger::{Append, LedgerStore, MapKey, PartitionQuery, Value};
    ///
    /// let ledger = LedgerStore::memory();
    /// let event = |o: &str| Value::map([(MapKey::sym("order_id"), Value::from(o))]);
    /// ledger.append(Append::new("events", event("o1"))).unwrap();
    /// let q = PartitionQuery::new("events", "order_id", "o1");
    /// assert_eq!(ledger.partition_len(&q), None); // no index for "order_id" yet
    /// assert_eq!(ledger.history_partition(q.clone()).unwrap().len(), 1);
    /// ledger.append(Append::new("events", event("o1")).partition_key("order_id")).unwrap();
    /// assert_eq!(ledger.partition_len(&q), Some(2));
    /// assert_eq!(ledger.partition_len(&PartitionQuery::new("events", "order_id", "o2")), Some(0));
    /// ```
    pub fn partition_len(&self, q: &PartitionQuery) -> Option<usize> {
        if let Some(q) = self.inner.hash_keys.apply_partition(q) {
            return self.partition_len(&q);
        }
        self.inner.read_state_infallible().partition_len(
            &q.store,
            &q.partition_key,
            &q.partition_value,
        )
    }

    /// How many keys `store` holds, in O(1) (0 for an unknown store).
    pub fn key_count(&self, store: &str) -> usize {
        self.inner.read_state_infallible().key_count(store)
    }

    /// True when `store` has a read coercion (its readers see coerced values).
    pub fn has_coercion(&self, store: &str) -> bool {
        self.inner.read_state_infallible().has_coercion(store)
    }

    /// Latest fact per key whose value matches the scope's filters (coerced), ordered by
    /// key. Current state (`as_of` None) is read from the materialized scope index,
    /// O(members); `as_of` reads the keys that had entered the scope by then (the first
    /// `as_of` query of a scope builds that history from the store's facts).
    pub fn query(
        &self,
        store: &str,
        scope: &str,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<ReadFact>> {
        if as_of.is_some() && !self.inner.read_state()?.scope_history_built(store, scope) {
            self.inner.write_state()?.build_scope_history(store, scope);
        }
        let facts = self.inner.read_state()?.query(store, scope, as_of)?;
        self.coerce(facts)
    }

    /// Registers an access path. A scope path's membership is computed from the current
    /// state at once and maintained on every write after.
    pub fn register_path(&self, path: AccessPath) -> Result<()> {
        let path = self.inner.hash_keys.apply_path(path);
        self.inner.write_state()?.register_path(path)
    }

    /// Registers a read-path coercion for a store (replacing an earlier one).
    pub fn register_coercion(&self, store: &str, c: Arc<dyn Coercion>) -> Result<()> {
        self.inner.write_state()?.register_coercion(store, c)
    }

    /// The key's facts as a causation chain, oldest first.
    pub fn causation_chain(&self, store: &str, key: &str) -> Vec<ChainEntry> {
        self.history_raw(HistoryQuery::new(store).key(key))
            .iter()
            .map(|f| ChainEntry {
                id: f.id(),
                value_hash: fact::hex(&f.value_hash()[..6]),
                causation: f.causation(),
                transaction_time: f.transaction_time(),
            })
            .collect()
    }

    /// The key's lineage with a stable proof hash.
    pub fn lineage(&self, store: &str, key: &str) -> Lineage {
        let facts = self.history_raw(HistoryQuery::new(store).key(key));
        let chain: Vec<ChainEntry> = facts
            .iter()
            .map(|f| ChainEntry {
                id: f.id(),
                value_hash: fact::hex(&f.value_hash()[..6]),
                causation: f.causation(),
                transaction_time: f.transaction_time(),
            })
            .collect();
        let proof_hash = (!chain.is_empty()).then(|| {
            let text: Vec<String> = chain
                .iter()
                .map(|e| {
                    format!(
                        "{}:{}:{}",
                        e.id,
                        e.value_hash,
                        e.causation.map(|c| c.to_string()).unwrap_or_default()
                    )
                })
                .collect();
            blake3::hash(text.join("\n").as_bytes())
                .to_hex()
                .to_string()
        });
        Lineage {
            store: store.to_owned(),
            key: key.to_owned(),
            depth: chain.len(),
            derived_by: self.derivations_for_store(store),
            chain,
            proof_hash,
        }
    }

    /// A fact by id.
    pub fn fact_by_id(&self, id: Uuid) -> Option<Fact> {
        self.inner.read_state_infallible().fact_by_id(id).cloned()
    }

    /// A compact reference to a fact by id.
    pub fn fact_ref(&self, id: Uuid) -> Option<FactRef> {
        self.fact_by_id(id).map(|f| FactRef {
            id: f.id(),
            store: f.store().to_owned(),
            key: f.key().to_owned(),
            transaction_time: f.transaction_time(),
            valid_time: f.valid_time(),
            value_hash: f.value_hash_hex(),
        })
    }

    /// Number of facts.
    pub fn fact_count(&self) -> usize {
        self.inner.read_state_infallible().fact_count()
    }

    /// Every fact in commit order with `since <= tx <= as_of`.
    pub fn fact_log_all(&self, since: Option<Timestamp>, as_of: Option<Timestamp>) -> Vec<Fact> {
        let s = self.inner.read_state_infallible();
        let lo = since.map_or(0, |t| s.log.partition_point(|f| f.transaction_time() < t));
        let hi = as_of.map_or(s.log.len(), |t| {
            s.log.partition_point(|f| f.transaction_time() <= t)
        });
        if lo >= hi {
            Vec::new()
        } else {
            s.log[lo..hi].to_vec()
        }
    }

    /// What is registered.
    pub fn schema_graph(&self) -> SchemaGraph {
        let s = self.inner.read_state_infallible();
        let graph = SchemaGraph {
            paths: s.paths(),
            partitions: s
                .partition_keys()
                .into_iter()
                .map(|(n, k)| (n.to_string(), k))
                .collect(),
            coercions: s.coerced_stores().iter().map(|n| n.to_string()).collect(),
            stores: s.store_names().iter().map(|n| n.to_string()).collect(),
            ..SchemaGraph::default()
        };
        drop(s);
        self.reactor().fill(graph)
    }

    /// The derived-state engine (see `crate::derive`).
    pub(crate) fn reactor(&self) -> &crate::derive::Reactor {
        &self.inner.reactor
    }

    /// True when any access path is registered (consumers may be owed notifications).
    pub fn has_access_paths(&self) -> bool {
        self.inner.read_state_infallible().consumers_registered()
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
        let (facts, seqs, wal_end, crc) = {
            let s = self.inner.read_state()?;
            (s.log.clone(), s.seqs.clone(), s.wal_end, s.wal_tail_crc)
        };
        // The snapshot must cover only WAL bytes on stable storage. Otherwise (`flush` and
        // `none` modes) a power cut could leave a WAL shorter than the snapshot claims:
        // the snapshot would be ignored on open and overwritten by the next checkpoint,
        // losing the facts only it held. So write out the buffer (`none`), then fdatasync
        // the WAL (which covers `wal_end`) before the snapshot is written. In `fsync` mode
        // every published commit is already durable.
        self.flush_wal()?;
        if self.inner.durability != Durability::Fsync {
            self.sync_wal()?;
        }
        snapshot::write(&*self.inner.fs, &path, &facts, &seqs, wal_end, crc)
    }

    /// fdatasyncs the WAL (what `write(2)` has handed to the kernel so far).
    fn sync_wal(&self) -> Result<()> {
        let file = self.inner.sync.lock().file.clone();
        let Some(file) = file else {
            return Err(Error::Closed);
        };
        let path = self.inner.path.as_deref().unwrap_or(Path::new(""));
        file.sync_data()
            .map_err(|e| Error::io(format!("syncing {}", path.display()), e))
    }

    fn flush_wal(&self) -> Result<()> {
        let mut w = self.inner.writer.lock();
        if let Some(wal) = w.wal.as_mut() {
            if let Err(e) = wal.flush_buffer() {
                let e: Error = e.into();
                if let Error::Poisoned(p) = &e {
                    w.poisoned = Some(p.clone());
                }
                return Err(e);
            }
            self.inner.written.store(wal.written, Ordering::Release);
        }
        Ok(())
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
        let mut w = self.inner.writer.lock();
        if let Some(sink) = w.sink.take() {
            drop(w);
            return sink.close();
        }
        let Some(mut wal) = w.wal.take() else {
            return Ok(());
        };
        drop(w);
        let res = wal.flush_buffer().map_err(Error::from).and_then(|_| {
            // The file ends exactly at its last frame after a clean close.
            wal.file
                .finish()
                .and_then(|_| wal.file.sync_data())
                .map_err(|e| Error::io(format!("syncing {}", wal.path.display()), e))
        });
        // Commits still waiting for a group-commit sync learn their fate, in the same
        // critical section that removes the file they would sync (see `wait_durable`).
        let mut s = self.inner.sync.lock();
        s.file = None;
        match &res {
            Ok(()) => s.synced = s.synced.max(wal.written),
            Err(e) => {
                s.error.get_or_insert_with(|| e.to_string());
            }
        }
        self.inner.synced.notify_all();
        res
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
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.check_not_forked().is_err() {
            return;
        }
        if let Some(wal) = self.writer.get_mut().wal.as_mut() {
            let _ = wal.flush_buffer();
        }
    }
}

/// A validated, encoded operation.
struct Prepared {
    draft: FactDraft,
    value: Option<Value>,
    is_append: bool,
    causation: Option<Uuid>,
    expected: Expected,
    partition_key: Option<MapKey>,
    /// Id and time of a restored fact (`Write::restoring`).
    restore: Option<(Uuid, Timestamp)>,
}

fn prepare(op: Op) -> Result<Prepared> {
    match op {
        Op::Write(w) => {
            let draft = FactDraft::new(
                w.store,
                w.key,
                &w.value,
                w.valid_time,
                w.schema_version,
                w.producer.as_ref(),
                w.derivation.as_ref(),
                "value",
            )?;
            Ok(Prepared {
                draft,
                value: Some(w.value),
                is_append: false,
                causation: w.causation,
                expected: w.expected,
                partition_key: None,
                restore: w.restore,
            })
        }
        Op::Append(a) => {
            // The key is a fresh UUID (v4: random, unrelated to the fact id), from the
            // thread's fast PRNG rather than a getrandom(2) call per append.
            let key = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
                .into_uuid()
                .hyphenated()
                .to_string();
            let draft = FactDraft::new(
                a.history,
                key,
                &a.event,
                a.valid_time,
                a.schema_version,
                a.producer.as_ref(),
                a.derivation.as_ref(),
                "event",
            )?;
            Ok(Prepared {
                draft,
                value: Some(a.event),
                is_append: true,
                causation: a.causation,
                expected: Expected::Any,
                partition_key: a.partition_key,
                restore: None,
            })
        }
    }
}

type Sealed = (Fact, Option<Value>, Option<MapKey>);

/// Gives each prepared op its time, id and causation, checking `expected`.
fn seal_all(w: &mut Writer, state: &State, prepared: Vec<Prepared>) -> Result<Vec<Sealed>> {
    // Only ops whose (store, key) occurs more than once in the batch need batch-local
    // tracking; usually there are none.
    let repeats = repeated_keys(&prepared);
    // Pass 1: interned names and the latest id of each key (two lookups per op), and the
    // `expected` checks — nothing is sealed unless every check passes. Latest ids: earlier
    // ops of this batch first, then pending (fsync) commits, then published facts.
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    let mut resolved: Vec<Resolved> = Vec::with_capacity(prepared.len());
    for (i, p) in prepared.iter().enumerate() {
        let repeat = repeats.get(i).copied().unwrap_or(false);
        let (store, key) = (p.draft.store.as_str(), p.draft.key.as_str());
        let r = state.resolve(store, (!p.is_append).then_some(key));
        let latest = if repeat && seen.contains(&(store, key)) {
            // Reserved by an earlier op of this batch: its id is assigned below.
            Some(Uuid::max())
        } else {
            w.overlay
                .get(store)
                .and_then(|m| m.get(key))
                .copied()
                .or(r.latest)
        };
        let ok = match &p.expected {
            Expected::Any => true,
            Expected::Absent => latest.is_none(),
            Expected::Fact(id) => latest == Some(*id),
        };
        if !ok {
            return Err(Error::Conflict {
                store: store.to_owned(),
                key: key.to_owned(),
                expected: match p.expected {
                    Expected::Fact(id) => Some(id),
                    _ => None,
                },
                actual: latest,
            });
        }
        if repeat {
            seen.insert((store, key));
        }
        if let Some((id, _)) = p.restore {
            if state.fact_by_id(id).is_some() {
                return Err(Error::InvalidArgument(format!(
                    "fact {id} is already in the ledger"
                )));
            }
        }
        resolved.push(Resolved { latest, ..r });
    }
    drop(seen);
    // Pass 2: times, ids, causations.
    let mut local: HashMap<(Arc<str>, Arc<str>), Uuid> = HashMap::new();
    let mut out = Vec::with_capacity(prepared.len());
    for (i, (mut p, r)) in prepared.into_iter().zip(resolved).enumerate() {
        let repeat = repeats.get(i).copied().unwrap_or(false);
        let (tx, id) = match p.restore {
            Some((id, t)) => (w.clock.tick_at(t), id),
            None => {
                let tx = w.clock.tick();
                (tx, fact::new_id(tx))
            }
        };
        // Share the interned store name and key with the index.
        let store = r.store.unwrap_or_else(|| Arc::from(p.draft.store.as_str()));
        let key = r.key.unwrap_or_else(|| Arc::from(p.draft.key.as_str()));
        let latest = if repeat {
            let k = (store.clone(), key.clone());
            let l = local.get(&k).copied().or(r.latest);
            local.insert(k, id);
            l
        } else {
            r.latest
        };
        let causation = match (p.causation, p.is_append || p.restore.is_some()) {
            (Some(c), _) => Some(c),
            (None, false) => latest,
            (None, true) => None,
        };
        let value = if r.needs_value { p.value.take() } else { None };
        let fact = p.draft.seal_named(store, key, id, tx, causation)?;
        out.push((fact, value, p.partition_key.take()));
    }
    Ok(out)
}

/// For each op, whether another op of the batch has the same (store, key) (empty for a
/// single op: nothing repeats).
fn repeated_keys(prepared: &[Prepared]) -> Vec<bool> {
    if prepared.len() < 2 {
        return Vec::new(); // no allocation for single ops
    }
    let mut repeats = vec![false; prepared.len()];
    // The first op of each (store, key); appends have fresh keys: they never repeat.
    let mut first: HashMap<(&str, &str), usize> = HashMap::with_capacity(prepared.len());
    for (i, p) in prepared.iter().enumerate().filter(|(_, p)| !p.is_append) {
        match first.entry((p.draft.store.as_str(), p.draft.key.as_str())) {
            std::collections::hash_map::Entry::Occupied(e) => {
                repeats[*e.get()] = true;
                repeats[i] = true;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i);
            }
        }
    }
    repeats
}

fn publish_facts(state: &mut State, facts: Vec<Sealed>, out: &mut Vec<Delivery>) -> Vec<Fact> {
    let mut result = Vec::with_capacity(facts.len());
    for (f, v, pk) in facts {
        result.push(f.clone());
        state.apply(f, v.as_ref(), pk.as_ref(), out);
    }
    result
}

/// Publishes every pending commit that is durable, in order.
fn publish_durable(w: &mut Writer, inner: &Inner, durable: u64) {
    if w.pending.front().is_none_or(|c| c.end > durable) {
        return;
    }
    let mut published = Vec::new();
    // Only ever called in the process that opened the file (commits check first).
    let mut s = Owned::new(inner.state.write(), &inner.state_owner, inner.pid);
    while let Some(c) = w.pending.front() {
        if c.end > durable {
            break;
        }
        let c = w.pending.pop_front().expect("front exists");
        let mut out = Vec::new();
        for (f, _, _) in &c.facts {
            if let Some(m) = w.overlay.get_mut(f.store()) {
                if m.get(f.key()) == Some(&f.id()) {
                    m.remove(f.key());
                    if m.is_empty() {
                        w.overlay.remove(f.store());
                    }
                }
            }
        }
        let first_seq = s.next_sequence();
        published.push((first_seq, publish_facts(&mut s, c.facts, &mut out)));
        s.wal_end = c.end;
        s.wal_tail_crc = c.crc;
        if !out.is_empty() {
            w.delivered.insert(c.seq, out);
        }
    }
    drop(s);
    for (first_seq, facts) in published {
        inner.feed.published(first_seq, &facts);
    }
}

fn apply_coercion(c: &dyn Coercion, fact: Fact) -> Result<ReadFact> {
    let raw = fact.value();
    match c.coerce(&raw, fact.schema_version(), &fact) {
        Ok(v) if v == raw => Ok(ReadFact {
            fact,
            coerced: None,
        }),
        Ok(v) => Ok(ReadFact {
            fact,
            coerced: Some(v),
        }),
        Err(e) => Err(Error::Coercion {
            store: fact.store().to_owned(),
            message: e.to_string(),
        }),
    }
}

// ------------------------------------------------------------------ storage rewrites

/// The ledger held exclusively for a storage rewrite (compaction, exact prune, erasure;
/// see `crate::retention`): no commit runs, every written commit is durable and
/// published, no checkpoint runs.
pub(crate) struct Exclusive<'a> {
    inner: &'a Inner,
    writer: &'a mut Writer,
    since: std::time::Instant,
}

impl<'a> Exclusive<'a> {
    /// How long commits have been held (since the writer lock was taken).
    pub(crate) fn held_for(&self) -> std::time::Duration {
        self.since.elapsed()
    }
    /// The next transaction time (for receipts).
    pub(crate) fn tick(&mut self) -> Timestamp {
        self.writer.clock.tick()
    }
    /// Holds the published state against changes (registrations, lazy index builds)
    /// while readers keep reading; see [`Exclusive::install`].
    pub(crate) fn hold_state(&self) -> parking_lot::RwLockUpgradableReadGuard<'a, State> {
        self.inner.state.upgradable_read()
    }
    /// Publishes `state` in place of the held one and, for a file-backed ledger, appends
    /// from now on to `wal` (the new WAL generation, already durable under the WAL's
    /// path, `len` bytes long, locked). Returns the old state, for the caller to drop
    /// once no lock is held (freeing a large state takes a while).
    #[must_use = "drop the old state outside the locks"]
    pub(crate) fn install(
        &mut self,
        held: parking_lot::RwLockUpgradableReadGuard<'a, State>,
        state: State,
        wal: Option<(lock::LockedFile, u64)>,
    ) -> State {
        if let (Some((file, len)), Some(path)) = (wal, self.inner.path.as_deref()) {
            {
                let mut e = file.extent.lock();
                (e.end, e.allocated) = (len, len);
                e.preallocate = self.inner.durability == Durability::Fsync;
            }
            let file: Arc<dyn LogFile> = Arc::new(file);
            let w = WalWriter::new(file.clone(), len, self.inner.durability, path);
            self.writer.wal = Some(w);
            self.inner.written.store(len, Ordering::Release);
            // The group-commit leader syncs this file from now on.
            let mut s = self.inner.sync.lock();
            s.synced = len;
            s.file = Some(file);
        }
        let mut w = Owned::new(
            parking_lot::RwLockUpgradableReadGuard::upgrade(held),
            &self.inner.state_owner,
            self.inner.pid,
        );
        std::mem::replace(&mut *w, state)
    }
}

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
        // Lock order as checkpoint's: checkpointing (the caller), then (group-commit
        // leadership), then writer. Becoming the leader keeps anyone else from syncing
        // or cutting the file.
        {
            let mut s = inner.sync.lock();
            while s.leader {
                inner.synced.wait(&mut s);
            }
            s.leader = true;
        }
        let result = (|| {
            let mut w = inner.lock_writer(inner.pid)?;
            let since = std::time::Instant::now();
            if inner.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            if let Some(p) = &w.poisoned {
                return Err(Error::Poisoned(p.clone()));
            }
            // Everything written: out of the buffer, durable, published.
            if let Some(wal) = w.wal.as_mut() {
                if let Err(e) = wal.flush_buffer() {
                    let e: Error = e.into();
                    if let Error::Poisoned(p) = &e {
                        w.poisoned = Some(p.clone());
                    }
                    return Err(e);
                }
                let written = wal.written;
                inner.written.store(written, Ordering::Release);
                if !w.pending.is_empty() {
                    let file = w.wal.as_ref().map(|wal| wal.file.clone());
                    if let Some(file) = file {
                        file.sync_data().map_err(|e| {
                            Error::io(format!("syncing {}", self.path_display()), e)
                        })?;
                    }
                }
                {
                    let mut s = inner.sync.lock();
                    s.synced = s.synced.max(written);
                    inner.synced.notify_all();
                }
                publish_durable(&mut w, inner, written);
            }
            // Committers between their write and their durability check need only the
            // sync lock to see they are durable.
            while inner.in_flight.load(Ordering::Acquire) > 0 {
                std::thread::yield_now();
            }
            f(&mut Exclusive {
                inner,
                writer: &mut w,
                since,
            })
        })();
        let mut s = inner.sync.lock();
        s.leader = false;
        inner.synced.notify_all();
        result
    }

    fn path_display(&self) -> String {
        self.inner
            .path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// The WAL file and the bytes written to it (whole frames), taken together under the
    /// writer lock: for reading the WAL through the ledger's own descriptor (see
    /// `verify`). None for an in-memory or closed ledger.
    pub(crate) fn wal_for_reading(&self) -> Result<Option<(Arc<dyn LogFile>, u64)>> {
        let inner = &*self.inner;
        inner.check_not_forked()?;
        let w = inner.lock_writer(inner.pid)?;
        Ok(w.wal.as_ref().map(|wal| (wal.file.clone(), wal.written)))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_checkpoints_do_not_collide() {
        // Found by tests/crash_kill.rs: two checkpoints at once wrote the same
        // `.snap.tmp` and one renamed it from under the other ("No such file").
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.wal");
        let l =
            LedgerStore::open_with(&path, OpenOptions::new().durability(Durability::None)).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let l = l.clone();
                s.spawn(move || {
                    for i in 0..40 {
                        l.write(Write::new("s", format!("{t}-{i}"), Value::Int(i)))
                            .unwrap();
                        l.checkpoint().unwrap();
                    }
                });
            }
        });
        l.close().unwrap();
        drop(l);
        let l = LedgerStore::open(&path).unwrap();
        assert_eq!(l.fact_count(), 160);
        assert!(matches!(
            l.open_report().unwrap().snapshot,
            crate::SnapshotOutcome::Loaded { .. }
        ));
    }

    #[test]
    fn every_frame_written_looks_like_a_body_to_the_damage_search() {
        // The search past damage only checksums candidates that start like our bodies;
        // if the writer's format changes, this keeps the two in step.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.wal");
        let l =
            LedgerStore::open_with(&path, OpenOptions::new().durability(Durability::None)).unwrap();
        l.write(Write::new("s", "k", Value::Int(1))).unwrap();
        l.append(Append::new("h", Value::Nil)).unwrap();
        for n in [2usize, 15, 16, 300, 70_000] {
            let mut b = Batch::new();
            for i in 0..n {
                b = b.write(Write::new("s", format!("{i}"), Value::Nil));
            }
            l.commit(b).unwrap();
        }
        l.checkpoint().unwrap();
        l.close().unwrap();
        let wal_bytes = std::fs::read(&path).unwrap();
        let (frames, end) = wal::scan(&wal_bytes, 0);
        assert!(matches!(end, wal::ScanEnd::Clean));
        assert_eq!(frames.len(), 7);
        let snap = std::fs::read(snapshot::snapshot_path(&path)).unwrap();
        let (chunks, _) = wal::scan(&snap, 0);
        assert!(chunks.len() > 2);
        for (buf, f) in frames
            .iter()
            .map(|f| (&wal_bytes, f))
            .chain(chunks[1..].iter().map(|f| (&snap, f)))
        {
            assert!(
                wal::looks_like_a_body(&buf[f.body.0..f.body.1]),
                "frame at {}",
                f.offset
            );
        }
        // 0.5.2 JSON bodies too.
        assert!(wal::looks_like_a_body(br#"{"id":"x"}"#));
    }

    #[test]
    fn batches_track_repeated_keys_wherever_they_are() {
        let l = LedgerStore::memory();
        // The second write of k sees the first: Absent fails.
        let e = l
            .commit(
                Batch::new()
                    .write(Write::new("s", "k", Value::Int(1)).expected(Expected::Absent))
                    .write(Write::new("s", "k", Value::Int(2)).expected(Expected::Absent)),
            )
            .unwrap_err();
        assert!(matches!(e, Error::Conflict { .. }));
        assert_eq!(l.fact_count(), 0);
        // A repeat far apart in a large batch chains to the earlier op; same key in
        // another store does not.
        let mut b = Batch::new().write(Write::new("s", "r", Value::Int(0)));
        for i in 0..1000 {
            b = b.write(Write::new("s", format!("u{i}"), Value::Int(i)));
        }
        b = b
            .write(Write::new("t", "r", Value::Int(1)))
            .write(Write::new("s", "r", Value::Int(2)));
        let facts = l.commit(b).unwrap();
        let n = facts.len();
        assert_eq!(facts[n - 1].causation(), Some(facts[0].id()));
        assert_eq!(facts[n - 2].causation(), None);
        assert_eq!(facts[1].causation(), None);
    }

    #[test]
    fn store_is_send_sync() {
        fn assert<T: Send + Sync>() {}
        assert::<LedgerStore>();
        assert::<Fact>();
    }
}
