//! [`Engine::commit`] and its publish strategies:
//! - **at once** ([`Engine::publish_now`]): an in-memory ledger, or a segmented one once
//!   its sink has the commit;
//! - **once written** ([`Engine::publish_written`]): `flush` and `none` modes, as soon as
//!   the frame is handed to the WAL;
//! - **once durable** ([`Engine::publish_when_durable`]): `fsync` mode, through group
//!   commit ([`Engine::wait_durable`]), in commit order ([`Engine::publish_durable`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::MutexGuard;

use super::seal::{self, Sealed};
use super::writer::{PendingCommit, Writer};
use super::{Committed, Engine, WalPosition};
use crate::ledger::access::{Delivery, Pending};
use crate::ledger::error::{Error, Result};
use crate::ledger::fact::Fact;
use crate::ledger::fork::Owned;
use crate::ledger::index::State;
use crate::ledger::request::Batch;
use crate::ledger::wal::{Durability, LogFile};

/// Group-commit state, under the engine's `sync` lock.
#[derive(Default)]
pub(crate) struct SyncState {
    /// WAL bytes known to be on stable storage.
    pub(crate) synced: u64,
    /// A committer is running fdatasync (or a storage rewrite holds the file).
    pub(crate) leader: bool,
    /// The sync failure that poisoned the ledger.
    pub(crate) error: Option<String>,
    /// The WAL file, for the leader's fdatasync. `close` clears it in the same critical
    /// section in which it records the final sync's outcome (`synced` or `error`), so a
    /// committer that finds no file always finds its answer too: no one waits for a
    /// notification that was already sent.
    pub(crate) file: Option<Arc<dyn LogFile>>,
}

impl SyncState {
    pub(crate) fn new(synced: u64, file: Option<Arc<dyn LogFile>>) -> Self {
        SyncState {
            synced,
            file,
            ..SyncState::default()
        }
    }
}

type WriterGuard<'a> = Owned<'a, MutexGuard<'a, Writer>>;

impl Engine {
    /// Commits a non-empty batch (String hash keys already applied) for process `me`:
    /// validates and encodes before any lock, seals under the writer lock, stores,
    /// publishes as the storage and durability mode allow.
    pub(crate) fn commit(&self, me: u32, batch: Batch) -> Result<Committed> {
        let mut prepared = Vec::with_capacity(batch.ops.len());
        for op in batch.ops {
            prepared.push(seal::prepare(op)?);
        }
        let mut w = self.lock_writer(me)?;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        w.check_poisoned()?;
        let facts = {
            let state = self.read_state()?;
            seal::seal_all(&mut w, &state, prepared)?
        };
        let seq = w.next_seq;
        w.next_seq += 1;
        if w.wal.is_none() {
            return self.publish_now(me, &w, facts);
        }
        let position = w.write_frame(&facts)?;
        if let Some(wal) = &w.wal {
            self.written.store(wal.written, Ordering::Release);
        }
        if self.durability == Durability::Fsync {
            self.publish_when_durable(w, seq, facts, position)
        } else {
            self.publish_written(me, &mut w, facts, position)
        }
    }

    /// In memory, or into the sink: publishes at once (after the sink has it).
    fn publish_now(&self, me: u32, w: &Writer, facts: Vec<Sealed>) -> Result<Committed> {
        if let Some(sink) = &w.sink {
            let committed: Vec<Fact> = facts.iter().map(|s| s.fact.clone()).collect();
            sink.append(&committed)?;
        }
        let mut out = Vec::new();
        let mut state = self.write_state_as(me)?;
        let first_seq = state.next_sequence();
        let facts = publish_facts(&mut state, facts, &mut out);
        drop(state);
        self.feed.published(first_seq, &facts);
        Ok(Committed {
            facts,
            pending: Pending { items: out },
        })
    }

    /// `flush` and `none` modes: publishes as soon as the frame is written.
    fn publish_written(
        &self,
        me: u32,
        w: &mut Writer,
        facts: Vec<Sealed>,
        position: WalPosition,
    ) -> Result<Committed> {
        let mut out = Vec::new();
        let mut state = self.write_state_as(me)?;
        let first_seq = state.next_sequence();
        let facts = publish_facts(&mut state, facts, &mut out);
        w.published = position;
        drop(state);
        self.feed.published(first_seq, &facts);
        Ok(Committed {
            facts,
            pending: Pending { items: out },
        })
    }

    /// `fsync` mode: queues the commit, releases the writer, waits until group commit
    /// made it durable, and publishes every durable commit in order.
    fn publish_when_durable(
        &self,
        mut w: WriterGuard<'_>,
        seq: u64,
        facts: Vec<Sealed>,
        position: WalPosition,
    ) -> Result<Committed> {
        let result: Vec<Fact> = facts.iter().map(|s| s.fact.clone()).collect();
        w.remember_overlay(&facts);
        w.pending.push_back(PendingCommit {
            seq,
            position,
            facts,
        });
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        drop(w);
        let durable = self.wait_durable(position.end);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        let mut w = self.writer.lock();
        match durable {
            Ok(durable) => {
                self.publish_durable(&mut w, durable);
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
                w.note_poison(&e);
                self.publish_durable(&mut w, durable);
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
        let mut s = self.sync.lock();
        loop {
            if s.synced >= end {
                return Ok(s.synced);
            }
            if let Some(e) = &s.error {
                return Err((Error::Poisoned(e.clone()), s.synced));
            }
            if s.leader {
                self.synced.wait(&mut s);
                continue;
            }
            let Some(file) = s.file.clone() else {
                // `close` finished and its final sync did not cover `end` (it covers all
                // that was written, so this cannot happen; answer rather than wait).
                return Err((Error::Closed, s.synced));
            };
            s.leader = true;
            drop(s);
            let target = self.written.load(Ordering::Acquire);
            let res = file.sync_data().map_err(|e| e.to_string());
            drop(file);
            s = self.sync.lock();
            s.leader = false;
            match res {
                Ok(()) => s.synced = s.synced.max(target),
                Err(e) => {
                    let mut msg = format!("fdatasync failed: {e}");
                    // Poison under the writer lock, together with the cut, so that no
                    // commit can append after the cut; and cut what is not durable, so
                    // a reopen cannot resurrect commits that are reported as failed.
                    let mut w = self.writer.lock();
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
                        self.written.store(s.synced, Ordering::Release);
                    }
                    w.poisoned.get_or_insert_with(|| msg.clone());
                    drop(w);
                    s.error = Some(msg);
                }
            }
            self.synced.notify_all();
        }
    }

    /// Publishes every pending commit that is durable, in order.
    pub(crate) fn publish_durable(&self, w: &mut Writer, durable: u64) {
        if w.pending.front().is_none_or(|c| c.position.end > durable) {
            return;
        }
        let mut published = Vec::new();
        // Only ever called in the process that opened the file (commits check first).
        let mut s = Owned::new(self.state.write(), &self.state_owner, self.pid);
        while let Some(c) = w.pending.front() {
            if c.position.end > durable {
                break;
            }
            let c = w.pending.pop_front().expect("front exists");
            w.forget_overlay(&c.facts);
            let mut out = Vec::new();
            let first_seq = s.next_sequence();
            published.push((first_seq, publish_facts(&mut s, c.facts, &mut out)));
            w.published = c.position;
            if !out.is_empty() {
                w.delivered.insert(c.seq, out);
            }
        }
        drop(s);
        for (first_seq, facts) in published {
            self.feed.published(first_seq, &facts);
        }
    }
}

/// Applies sealed facts to the state (indexes, consumers owed); returns the facts.
fn publish_facts(state: &mut State, facts: Vec<Sealed>, out: &mut Vec<Delivery>) -> Vec<Fact> {
    let mut result = Vec::with_capacity(facts.len());
    for s in facts {
        result.push(s.fact.clone());
        state.apply(s.fact, s.value.as_ref(), s.partition_key.as_ref(), out);
    }
    result
}
