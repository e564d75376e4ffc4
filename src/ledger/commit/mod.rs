//! The commit engine: everything between a validated batch and a published commit.
//!
//! | module | holds |
//! |---|---|
//! | `mod.rs` | [`Engine`]: the published state, the writer and their locks (fork-aware); [`WalPosition`]; the [`CommitSink`] seam |
//! | `seal` | validation and encoding before any lock ([`seal::prepare`]), then ids, times, causations and `expected` checks under the writer lock ([`seal::seal_all`] → [`seal::Sealed`]) |
//! | `writer` | the [`writer::Writer`] behind the writer lock: clock, WAL, frame buffer, fsync queue |
//! | `publish` | [`Engine::commit`] and its three publish strategies: at once (in memory or into a sink), once written (`flush`/`none`), once durable (`fsync`, group commit) |
//! | `exclusive` | the WAL's maintenance: flush, sync, close, the checkpoint's view, and storage rewrites ([`exclusive::Exclusive`]) |
//!
//! ## Locks and what each operation costs
//! - `state` (`RwLock<State>`): the published, readable ledger. Readers take it shared for
//!   the few index look-ups of their query and clone `Fact` handles (an `Arc` increment
//!   each); coercions and consumers run after it is released. Lazy index builds take it
//!   upgradable (one builder at a time, readers keep reading) and upgrade to build.
//! - `writer` (`Mutex<Writer>`): serializes commits — clock, ids, causation, `expected`
//!   checks, encoding of the frame and its write(2). Value validation and encoding happen
//!   before it is taken.
//! - `sync` (`Mutex<SyncState>` + condvar): group commit in `fsync` mode. A committer whose
//!   frame is not yet durable either becomes the leader — reads the written length, runs
//!   one fdatasync outside every lock, publishes the new durable length — or waits for the
//!   leader. N concurrent writers therefore share one fdatasync.
//!
//! Lock order: `checkpointing` (the store's) → `sync` (group-commit leadership) → `writer`
//! → `state`.
//!
//! A commit becomes visible to readers (is *published*) only once it is durable for the
//! chosen mode, in commit order, all facts of a batch under one write lock: readers never
//! see a fact that could still be lost by the mode's promise, nor half a batch.
//!
//! ## The WAL position
//! The engine alone owns where the WAL ends: recovery hands it the position it found
//! ([`WalPosition`], a value), every publication moves it under the writer lock, and a
//! storage rewrite that starts a new WAL generation hands it the new one through
//! [`exclusive::Exclusive::install`]. A checkpoint reads it together with the published
//! state ([`Engine::checkpoint_view`]).
//!
//! ## The storage seam
//! After sealing, a commit goes to its storage: the WAL file (`wal::WalWriter`, with group
//! commit and the three durability modes), nothing (an in-memory ledger), or a
//! [`CommitSink`]. A sink receives every commit, in commit order, before it is published;
//! when the sink fails, nothing is published and the writer gets the error. The segment
//! directory (`crate::segments`) is the sink of a segmented ledger.

pub(crate) mod exclusive;
mod publish;
pub(crate) mod seal;
pub(crate) mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;

use parking_lot::{
    Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockUpgradableReadGuard,
    RwLockWriteGuard,
};

use super::access::Pending;
use super::error::{Error, Result};
use super::fact::Fact;
use super::fork::{self, Owned, Owner};
use super::index::State;
use super::recovery;
use super::time::Clock;
use super::wal::{Durability, WalWriter};
use crate::changefeed::LedgerHook;
use publish::SyncState;
use writer::Writer;

/// Durable storage for committed facts, called under the writer lock.
pub(crate) trait CommitSink: Send + Sync {
    /// Stores the facts of one commit (all or nothing); returns once they are as
    /// durable as the sink's durability mode promises.
    fn append(&self, facts: &[Fact]) -> Result<()>;
    /// Writes out and closes; later appends fail with `Error::Closed`.
    fn close(&self) -> Result<()>;
}

/// Where the WAL ends after the last published commit: the end offset of its frame and
/// that frame's CRC (a snapshot records both, to prove it belongs to the WAL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WalPosition {
    /// End offset in the WAL of the last published frame.
    pub(crate) end: u64,
    /// The CRC of that frame (0 at offset 0).
    pub(crate) tail_crc: u32,
}

/// The result of a commit whose consumer notifications have not been delivered yet (see
/// [`LedgerStore::commit_deferred`](crate::LedgerStore::commit_deferred)).
#[derive(Debug)]
pub struct Committed {
    /// The facts, in commit order.
    pub facts: Vec<Fact>,
    /// Notifications owed to consumers.
    pub pending: Pending,
}

/// Where an engine's commits go, as the store opened it.
pub(crate) enum Storage {
    /// Nowhere: an in-memory ledger.
    Memory,
    /// A WAL file, positioned where recovery found its end.
    Wal(WalWriter, WalPosition),
    /// A sink (a segmented ledger).
    Sink(Arc<dyn CommitSink>),
}

/// The commit engine of one ledger: the published state, the writer, group commit.
pub(crate) struct Engine {
    /// The published, readable ledger.
    pub(crate) state: RwLock<State>,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Bytes handed to write(2) (read by the group-commit leader before it syncs).
    written: AtomicU64,
    /// Commits written to the WAL whose committer has not yet seen them durable (a
    /// storage rewrite waits for these before it replaces the file).
    in_flight: AtomicUsize,
    /// The WAL path (None in memory and for a sink).
    pub(crate) path: Option<PathBuf>,
    pub(crate) durability: Durability,
    pub(crate) closed: AtomicBool,
    /// The process that made this ledger. A forked child shares the WAL descriptor; it
    /// must neither commit nor flush through it, and must not wait on a lock that a
    /// thread of the parent held at fork time (see `fork`).
    pub(crate) pid: u32,
    /// The process whose thread holds `state` for writing.
    state_owner: Owner,
    /// The process whose thread holds `writer` (commit path).
    writer_owner: Owner,
    /// Changefeed: told about every publication, in commit order (see crate::changefeed).
    pub(crate) feed: LedgerHook,
}

impl Engine {
    /// An engine over the recovered `state`, committing to `storage`.
    pub(crate) fn new(
        state: State,
        storage: Storage,
        path: Option<PathBuf>,
        durability: Durability,
    ) -> Self {
        let clock = Clock::new(recovery::clock_floor(&state));
        let (wal, position, sink) = match storage {
            Storage::Memory => (None, WalPosition::default(), None),
            Storage::Wal(w, p) => (Some(w), p, None),
            Storage::Sink(s) => (None, WalPosition::default(), Some(s)),
        };
        let written = wal.as_ref().map_or(0, |w| w.len);
        let file = wal.as_ref().map(|w| w.file.clone());
        let feed = LedgerHook::new(&state);
        Engine {
            state: RwLock::new(state),
            writer: Mutex::new(Writer::new(clock, wal, position, sink)),
            sync: Mutex::new(SyncState::new(written, file)),
            synced: Condvar::new(),
            written: AtomicU64::new(written),
            in_flight: AtomicUsize::new(0),
            path,
            durability,
            closed: AtomicBool::new(false),
            pid: std::process::id(),
            state_owner: Owner::default(),
            writer_owner: Owner::default(),
            feed,
        }
    }

    /// Refuses file operations in a process forked from the one that opened the file.
    /// Called before any lock is taken.
    pub(crate) fn check_not_forked(&self) -> Result<()> {
        if self.path.is_some() && std::process::id() != self.pid {
            return Err(self.forked());
        }
        Ok(())
    }

    pub(crate) fn forked(&self) -> Error {
        Error::Forked {
            opened_by: self.pid,
        }
    }

    /// The published state, for reading. In a forked child, never waits on a lock held
    /// by a thread of the parent (`Forked` instead).
    pub(crate) fn read_state(&self) -> Result<RwLockReadGuard<'_, State>> {
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

    /// [`Engine::read_state`] for the reads whose signature cannot fail. In a forked child
    /// whose parent was publishing at the moment of the fork, the state may be half
    /// updated and its lock can never be taken: such a read panics with the `Forked`
    /// message rather than hang (the fallible reads return the error).
    pub(crate) fn read_state_infallible(&self) -> RwLockReadGuard<'_, State> {
        match self.read_state() {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    /// The published state, for writing, recording this process as its holder (`me`).
    pub(crate) fn write_state_as(&self, me: u32) -> Result<Owned<'_, RwLockWriteGuard<'_, State>>> {
        let g = self.take(
            me,
            &self.state_owner,
            || self.state.try_write(),
            || self.state.write(),
        )?;
        Ok(Owned::new(g, &self.state_owner, me))
    }

    /// [`Engine::write_state_as`] for this process.
    pub(crate) fn write_state(&self) -> Result<Owned<'_, RwLockWriteGuard<'_, State>>> {
        self.write_state_as(std::process::id())
    }

    /// Runs `build` on the published state if `missing` says it lacks something (a lazy
    /// index), then `read` on it. One builder at a time holds the state upgradable — so
    /// what `missing` saw cannot change before the build — while readers keep reading;
    /// the write lock is taken only for the build itself.
    pub(crate) fn build_then_read<R>(
        &self,
        missing: impl Fn(&State) -> bool,
        build: impl FnOnce(&mut State),
        read: impl FnOnce(&State) -> R,
    ) -> Result<R> {
        {
            // Built already (the usual case): a plain read, shared with other readers.
            let s = self.read_state()?;
            if !missing(&s) {
                return Ok(read(&s));
            }
        }
        let me = std::process::id();
        let held = self.take(
            me,
            &self.state_owner,
            || self.state.try_upgradable_read(),
            || self.state.upgradable_read(),
        )?;
        if !missing(&held) {
            return Ok(read(&held));
        }
        let mut w = self.upgrade(me, held)?;
        {
            // Marks this process as the writer while the state changes (see `fork`).
            let _writing = Owned::new((), &self.state_owner, me);
            build(&mut w);
        }
        let s = RwLockWriteGuard::downgrade(w);
        Ok(read(&s))
    }

    /// Upgrades a held upgradable read to the write lock: waits for the readers to go. In
    /// a forked child, a reader of the parent never goes: `Forked` after the grace.
    fn upgrade<'a>(
        &'a self,
        me: u32,
        held: RwLockUpgradableReadGuard<'a, State>,
    ) -> Result<RwLockWriteGuard<'a, State>> {
        if me == self.pid {
            return Ok(RwLockUpgradableReadGuard::upgrade(held));
        }
        let deadline = std::time::Instant::now() + fork::ORPHAN_GRACE;
        let mut held = held;
        loop {
            match RwLockUpgradableReadGuard::try_upgrade(held) {
                Ok(w) => return Ok(w),
                Err(back) => held = back,
            }
            if std::time::Instant::now() >= deadline {
                return Err(self.forked());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The published state held upgradable (a storage rewrite's hold; see
    /// [`exclusive::Exclusive::hold_state`]).
    pub(crate) fn hold_state(&self) -> RwLockUpgradableReadGuard<'_, State> {
        self.state.upgradable_read()
    }

    /// Publishes `state` in place of the `held` one; returns the old state.
    fn replace_held(&self, held: RwLockUpgradableReadGuard<'_, State>, state: State) -> State {
        let mut w = Owned::new(
            RwLockUpgradableReadGuard::upgrade(held),
            &self.state_owner,
            self.pid,
        );
        std::mem::replace(&mut *w, state)
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

impl Drop for Engine {
    fn drop(&mut self) {
        if self.check_not_forked().is_err() {
            return;
        }
        if let Some(wal) = self.writer.get_mut().wal.as_mut() {
            let _ = wal.flush_buffer();
        }
    }
}
