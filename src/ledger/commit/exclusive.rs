//! The WAL's maintenance: flush, sync and close; the checkpoint's view of what is
//! published; and storage rewrites, which hold the engine exclusively ([`Exclusive`]).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::RwLockUpgradableReadGuard;

use super::writer::Writer;
use super::{Engine, WalPosition};
use crate::changefeed::sequence::Sequences;
use crate::ledger::error::{Error, Result};
use crate::ledger::fact::Fact;
use crate::ledger::index::State;
use crate::ledger::lock;
use crate::ledger::time::Timestamp;
use crate::ledger::wal::{Durability, LogFile, WalWriter};

/// What a checkpoint writes: the published facts, their changefeed sequences, and the
/// WAL position they cover, taken together.
pub(crate) struct CheckpointView {
    pub(crate) facts: Vec<Fact>,
    pub(crate) seqs: Sequences,
    pub(crate) position: WalPosition,
}

/// The ledger held exclusively for a storage rewrite (compaction, exact prune, erasure;
/// see `crate::retention`): no commit runs, every written commit is durable and
/// published, no checkpoint runs.
pub(crate) struct Exclusive<'a> {
    engine: &'a Engine,
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
    pub(crate) fn hold_state(&self) -> RwLockUpgradableReadGuard<'a, State> {
        self.engine.hold_state()
    }
    /// Publishes `state` in place of the held one and, for a file-backed ledger, appends
    /// from now on to `wal` (the new WAL generation, already durable under the WAL's
    /// path, ending at the position given, locked). Returns the old state, for the caller
    /// to drop once no lock is held (freeing a large state takes a while).
    #[must_use = "drop the old state outside the locks"]
    pub(crate) fn install(
        &mut self,
        held: RwLockUpgradableReadGuard<'a, State>,
        state: State,
        wal: Option<(lock::LockedFile, WalPosition)>,
    ) -> State {
        let engine = self.engine;
        if let (Some((file, position)), Some(path)) = (wal, engine.path.as_deref()) {
            let len = position.end;
            {
                let mut e = file.extent.lock();
                (e.end, e.allocated) = (len, len);
                e.preallocate = engine.durability == Durability::Fsync;
            }
            let file: Arc<dyn LogFile> = Arc::new(file);
            let w = WalWriter::new(file.clone(), len, engine.durability, path);
            self.writer.wal = Some(w);
            self.writer.published = position;
            engine.written.store(len, Ordering::Release);
            // The group-commit leader syncs this file from now on.
            let mut s = engine.sync.lock();
            s.synced = len;
            s.file = Some(file);
        }
        engine.replace_held(held, state)
    }
}

impl Engine {
    /// Runs `f` with the ledger held exclusively (see [`Exclusive`]); the caller excludes
    /// checkpoints and other rewrites. Commits wait; readers keep reading the published
    /// state until `f` installs a new one.
    pub(crate) fn exclusive<T>(
        &self,
        f: impl FnOnce(&mut Exclusive<'_>) -> Result<T>,
    ) -> Result<T> {
        // Lock order as checkpoint's: checkpointing (the caller), then (group-commit
        // leadership), then writer. Becoming the leader keeps anyone else from syncing
        // or cutting the file.
        {
            let mut s = self.sync.lock();
            while s.leader {
                self.synced.wait(&mut s);
            }
            s.leader = true;
        }
        let result = (|| {
            let mut w = self.lock_writer(self.pid)?;
            let since = std::time::Instant::now();
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            w.check_poisoned()?;
            // Everything written: out of the buffer, durable, published.
            if let Some(written) = w.flush_wal()? {
                self.written.store(written, Ordering::Release);
                if !w.pending.is_empty() {
                    if let Some(wal) = &w.wal {
                        wal.file
                            .sync_data()
                            .map_err(|e| Error::io(format!("syncing {}", self.shown()), e))?;
                    }
                }
                {
                    let mut s = self.sync.lock();
                    s.synced = s.synced.max(written);
                    self.synced.notify_all();
                }
                self.publish_durable(&mut w, written);
            }
            // Committers between their write and their durability check need only the
            // sync lock to see they are durable.
            while self.in_flight.load(Ordering::Acquire) > 0 {
                std::thread::yield_now();
            }
            f(&mut Exclusive {
                engine: self,
                writer: &mut w,
                since,
            })
        })();
        let mut s = self.sync.lock();
        s.leader = false;
        self.synced.notify_all();
        result
    }

    /// The WAL path, for messages.
    fn shown(&self) -> String {
        self.path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// The published facts, their sequences and the WAL position they cover, taken
    /// together: the position moves only under the writer lock, the state only under
    /// its write lock, and both are held here.
    pub(crate) fn checkpoint_view(&self) -> Result<CheckpointView> {
        let w = self.lock_writer(self.pid)?;
        let s = self.read_state()?;
        Ok(CheckpointView {
            facts: s.log.clone(),
            seqs: s.seqs.clone(),
            position: w.published,
        })
    }

    /// The WAL position of the last published commit.
    #[cfg(test)]
    pub(crate) fn published_position(&self) -> WalPosition {
        self.writer.lock().published
    }

    /// Writes out the WAL's buffer (`none` mode).
    pub(crate) fn flush_wal(&self) -> Result<()> {
        let mut w = self.writer.lock();
        if let Some(written) = w.flush_wal()? {
            self.written.store(written, Ordering::Release);
        }
        Ok(())
    }

    /// fdatasyncs the WAL (what `write(2)` has handed to the kernel so far).
    pub(crate) fn sync_wal(&self) -> Result<()> {
        let file = self.sync.lock().file.clone();
        let Some(file) = file else {
            return Err(Error::Closed);
        };
        let path = self.path.as_deref().unwrap_or(Path::new(""));
        file.sync_data()
            .map_err(|e| Error::io(format!("syncing {}", path.display()), e))
    }

    /// Closes the storage: writes out and syncs the WAL (or closes the sink). Commits
    /// still waiting for a group-commit sync learn their fate. The caller has marked the
    /// engine closed.
    pub(crate) fn close_storage(&self) -> Result<()> {
        let mut w = self.writer.lock();
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
        let mut s = self.sync.lock();
        s.file = None;
        match &res {
            Ok(()) => s.synced = s.synced.max(wal.written),
            Err(e) => {
                s.error.get_or_insert_with(|| e.to_string());
            }
        }
        self.synced.notify_all();
        res
    }

    /// The WAL file and the bytes written to it (whole frames), taken together under the
    /// writer lock: for reading the WAL through the ledger's own descriptor (see
    /// `verify`). None for an in-memory or closed ledger.
    pub(crate) fn wal_for_reading(&self) -> Result<Option<(Arc<dyn LogFile>, u64)>> {
        let w = self.lock_writer(self.pid)?;
        Ok(w.wal.as_ref().map(|wal| (wal.file.clone(), wal.written)))
    }
}
