//! The writer: what the writer lock guards — the clock, the WAL and its frame buffer, the
//! queue of commits waiting for fsync, and the WAL position of the last published commit.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use uuid::Uuid;

use super::seal::Sealed;
use super::{CommitSink, WalPosition};
use crate::ledger::access::Delivery;
use crate::ledger::codec;
use crate::ledger::error::{Error, Result};
use crate::ledger::fact::encode_record;
use crate::ledger::time::Clock;
use crate::ledger::wal::{self, AppendError, WalWriter, TAG_BATCH, TAG_FACT};

/// A commit written to the WAL, waiting for fsync before publication (fsync mode).
pub(crate) struct PendingCommit {
    /// Its commit sequence (see [`Writer::next_seq`]).
    pub(crate) seq: u64,
    /// Where the WAL ends after its frame.
    pub(crate) position: WalPosition,
    pub(crate) facts: Vec<Sealed>,
}

/// State guarded by the writer lock.
pub(crate) struct Writer {
    pub(crate) clock: Clock,
    pub(crate) wal: Option<WalWriter>,
    /// Where the WAL ends after the last published commit (owned here; see the module
    /// doc of `commit`).
    pub(crate) published: WalPosition,
    /// Committed to the file, waiting for fsync before publication (fsync mode only).
    pub(crate) pending: VecDeque<PendingCommit>,
    /// Latest fact id per (store, key) among `pending` (for causation and `expected`).
    pub(crate) overlay: HashMap<Arc<str>, HashMap<Arc<str>, Uuid>>,
    /// Notifications of commits published by another committer, by commit sequence.
    pub(crate) delivered: HashMap<u64, Vec<Delivery>>,
    pub(crate) poisoned: Option<String>,
    /// The sequence of the next commit (numbers `pending` and `delivered`).
    pub(crate) next_seq: u64,
    frame: Vec<u8>,
    /// Where commits go when there is no WAL (see [`CommitSink`]).
    pub(crate) sink: Option<Arc<dyn CommitSink>>,
}

impl Writer {
    pub(crate) fn new(
        clock: Clock,
        wal: Option<WalWriter>,
        published: WalPosition,
        sink: Option<Arc<dyn CommitSink>>,
    ) -> Self {
        Writer {
            clock,
            wal,
            published,
            pending: VecDeque::new(),
            overlay: HashMap::new(),
            delivered: HashMap::new(),
            poisoned: None,
            next_seq: 0,
            frame: Vec::with_capacity(4096),
            sink,
        }
    }

    /// Fails with the poison that stopped the writer, if any.
    pub(crate) fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(p) => Err(Error::Poisoned(p.clone())),
            None => Ok(()),
        }
    }

    /// Records a poisoning error (the first one stays).
    pub(crate) fn note_poison(&mut self, e: &Error) {
        if let Error::Poisoned(p) = e {
            self.poisoned.get_or_insert_with(|| p.clone());
        }
    }

    /// Encodes the commit's frame and hands it to the WAL; returns where the WAL ends
    /// after it. The caller has checked that there is a WAL.
    pub(crate) fn write_frame(&mut self, facts: &[Sealed]) -> Result<WalPosition> {
        self.frame.clear();
        let start = wal::begin_frame(&mut self.frame);
        codec::write_array_len(&mut self.frame, 2);
        if let [one] = facts {
            codec::write_int(&mut self.frame, TAG_FACT);
            encode_record(&mut self.frame, &one.fact);
        } else {
            codec::write_int(&mut self.frame, TAG_BATCH);
            codec::write_array_len(&mut self.frame, facts.len());
            for s in facts {
                encode_record(&mut self.frame, &s.fact);
            }
        }
        let tail_crc = wal::end_frame(&mut self.frame, start)?;
        let Some(wal) = self.wal.as_mut() else {
            return Err(Error::Closed);
        };
        match wal.append(&self.frame) {
            Ok(end) => Ok(WalPosition { end, tail_crc }),
            Err(AppendError::Clean(e)) => Err(e),
            Err(AppendError::Poisoned(p)) => {
                self.poisoned = Some(p.clone());
                Err(Error::Poisoned(p))
            }
        }
    }

    /// Writes out the WAL's buffer (`none` mode); poisons the writer when that fails
    /// half-way. Returns the bytes now in the file (None without a WAL).
    pub(crate) fn flush_wal(&mut self) -> Result<Option<u64>> {
        let Some(wal) = self.wal.as_mut() else {
            return Ok(None);
        };
        if let Err(e) = wal.flush_buffer() {
            let e: Error = e.into();
            self.note_poison(&e);
            return Err(e);
        }
        Ok(Some(wal.written))
    }

    /// Forgets, in the overlay, the facts of a commit being published.
    pub(crate) fn forget_overlay(&mut self, facts: &[Sealed]) {
        for s in facts {
            let f = &s.fact;
            if let Some(m) = self.overlay.get_mut(f.store()) {
                if m.get(f.key()) == Some(&f.id()) {
                    m.remove(f.key());
                    if m.is_empty() {
                        self.overlay.remove(f.store());
                    }
                }
            }
        }
    }

    /// Records, in the overlay, the facts of a commit waiting for fsync.
    pub(crate) fn remember_overlay(&mut self, facts: &[Sealed]) {
        for s in facts {
            let f = &s.fact;
            self.overlay
                .entry(f.store_arc().clone())
                .or_default()
                .insert(f.key_arc().clone(), f.id());
        }
    }
}
