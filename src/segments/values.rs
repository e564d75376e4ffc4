//! Values off the heap: a fact loaded from a sealed segment keeps its id, time and key in
//! memory and a [`Located`] slot — the segment's reader and the fact's entry number in
//! the segment's index file (see `super::index_file`). Everything else (value bytes,
//! causation, valid time, schema version, producer, derivation) is read back from the
//! segment when asked for, and checked: the frame's CRC, the record's id, and the blake3
//! of the value against the hash the index recorded when the segment was sealed.
//!
//! Reads go through `pread` (`FileExt::read_at`): no mmap, no `unsafe`. Decoded frames
//! are kept in a small cache shared by a ledger's segments (at most [`CACHE_FRAMES`]
//! frames), so reading the facts of one commit, or one fact's several fields, decodes
//! its frame once.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use uuid::Uuid;

use super::codec::decode_frame_body;
use super::index_file::{Entry, ENTRY_LEN};
use crate::ledger::error::{Error, Result};
use crate::ledger::fact::{value_hash_of, Body, Fact};
use crate::ledger::index::State;
use crate::ledger::wal::{self, ScanEnd};

/// Decoded frames a ledger keeps at most (shared by all its segments).
pub const CACHE_FRAMES: usize = 64;

/// A decoded frame: (segment serial, frame offset) and its facts.
type CachedFrame = ((u64, u64), Arc<Vec<Fact>>);

/// A small cache of decoded frames, most recently used first.
#[derive(Default)]
pub(crate) struct FrameCache {
    frames: Mutex<VecDeque<CachedFrame>>,
}

impl FrameCache {
    fn get(&self, k: (u64, u64)) -> Option<Arc<Vec<Fact>>> {
        let mut q = self.frames.lock();
        let i = q.iter().position(|(key, _)| *key == k)?;
        let hit = q.remove(i)?;
        let facts = hit.1.clone();
        q.push_front(hit);
        Some(facts)
    }
    fn put(&self, k: (u64, u64), facts: Arc<Vec<Fact>>) {
        let mut q = self.frames.lock();
        q.push_front((k, facts));
        q.truncate(CACHE_FRAMES);
    }
}

static SERIAL: AtomicU64 = AtomicU64::new(1);

/// The reader of one sealed segment: its file, its index file, and where the index's
/// entry table starts.
pub(crate) struct SegmentValues {
    serial: u64,
    store: Arc<str>,
    path: PathBuf,
    index_path: PathBuf,
    entries_at: u64,
    count: u32,
    files: OnceLock<(File, File)>,
    open_lock: Mutex<()>,
    cache: Arc<FrameCache>,
}

impl SegmentValues {
    pub(crate) fn new(
        store: Arc<str>,
        path: &Path,
        index_path: &Path,
        entries_at: u64,
        count: u32,
        cache: Arc<FrameCache>,
    ) -> Self {
        SegmentValues {
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            store,
            path: path.to_owned(),
            index_path: index_path.to_owned(),
            entries_at,
            count,
            files: OnceLock::new(),
            open_lock: Mutex::new(()),
            cache,
        }
    }

    fn damaged(&self, path: &Path, offset: u64, reason: String) -> Error {
        Error::Corruption {
            path: path.to_owned(),
            offset,
            reason,
        }
    }

    /// The segment and its index, opened on first use and kept.
    fn files(&self) -> Result<&(File, File)> {
        if let Some(f) = self.files.get() {
            return Ok(f);
        }
        let _g = self.open_lock.lock();
        if let Some(f) = self.files.get() {
            return Ok(f);
        }
        let seg = File::open(&self.path)
            .map_err(|e| Error::io(format!("opening {}", self.path.display()), e))?;
        let idx = File::open(&self.index_path)
            .map_err(|e| Error::io(format!("opening {}", self.index_path.display()), e))?;
        Ok(self.files.get_or_init(|| (seg, idx)))
    }

    fn read_exact_at(&self, file: &File, path: &Path, buf: &mut [u8], at: u64) -> Result<()> {
        file.read_exact_at(buf, at)
            .map_err(|e| Error::io(format!("reading {} at {at}", path.display()), e))
    }

    /// Entry `i` of the index, checked against the fact's id.
    fn entry(&self, i: u32, id: Uuid) -> Result<Entry> {
        if i >= self.count {
            return Err(self.damaged(&self.index_path, 0, format!("no entry {i}")));
        }
        let (_, idx) = self.files()?;
        let mut buf = [0u8; ENTRY_LEN];
        let at = self.entries_at + i as u64 * ENTRY_LEN as u64;
        self.read_exact_at(idx, &self.index_path, &mut buf, at)?;
        let e = Entry::parse(&buf);
        if e.id != id {
            return Err(self.damaged(
                &self.index_path,
                at,
                format!("index entry {i} names fact {} instead of {id}", e.id),
            ));
        }
        Ok(e)
    }

    /// The decoded facts of the frame at `off` (`len` bytes with its header and CRC).
    fn frame(&self, off: u64, len: u32) -> Result<Arc<Vec<Fact>>> {
        if let Some(f) = self.cache.get((self.serial, off)) {
            return Ok(f);
        }
        let (seg, _) = self.files()?;
        if len as usize > wal::MAX_BODY + 8 {
            return Err(self.damaged(&self.path, off, format!("frame length {len}")));
        }
        let mut buf = vec![0u8; len as usize];
        self.read_exact_at(seg, &self.path, &mut buf, off)?;
        let (frames, end) = wal::scan(&buf, off);
        let (Some(fr), ScanEnd::Clean, 1) = (frames.first(), end, frames.len()) else {
            return Err(self.damaged(
                &self.path,
                off,
                "the frame the index points at is not one valid frame".into(),
            ));
        };
        let facts = decode_frame_body(&buf[fr.body.0..fr.body.1], &mut State::default())
            .map_err(|e| self.damaged(&self.path, off, e.0))?;
        let facts = Arc::new(facts);
        self.cache.put((self.serial, off), facts.clone());
        Ok(facts)
    }
}

/// Where a located fact's fields are: its segment's reader and its entry in the
/// segment's index. 16 bytes.
#[derive(Clone)]
pub(crate) struct Located {
    seg: Arc<SegmentValues>,
    entry: u32,
}

impl Located {
    pub(crate) fn new(seg: Arc<SegmentValues>, entry: u32) -> Self {
        Located { seg, entry }
    }

    /// The store the segment belongs to.
    pub(crate) fn store(&self) -> &Arc<str> {
        &self.seg.store
    }

    /// The value hash recorded in the index when the segment was sealed (the entry is
    /// checked against the fact's id).
    pub(crate) fn value_hash(&self, id: Uuid) -> Result<[u8; 32]> {
        Ok(self.seg.entry(self.entry, id)?.value_hash)
    }

    /// The fact's fields, read from its segment (a resident fact): the record at the
    /// entry's place, checked against the fact's id and the recorded value hash.
    pub(crate) fn fetch(&self, id: Uuid) -> Result<Fact> {
        let s = &self.seg;
        let e = s.entry(self.entry, id)?;
        let facts = s.frame(e.frame_off, e.frame_len)?;
        let Some(f) = facts.get(e.in_frame as usize) else {
            return Err(s.damaged(
                &s.path,
                e.frame_off,
                format!("the frame has no record {}", e.in_frame),
            ));
        };
        if f.id() != id || !matches!(f.0.body, Body::Resident(_)) {
            return Err(s.damaged(
                &s.path,
                e.frame_off,
                format!(
                    "record {} of the frame is fact {}, not {id}",
                    e.in_frame,
                    f.id()
                ),
            ));
        }
        let got = match &f.0.body {
            Body::Resident(r) => value_hash_of(&r.value),
            Body::Located(_) => [0; 32],
        };
        if got != e.value_hash {
            return Err(s.damaged(
                &s.path,
                e.frame_off,
                format!("the value of fact {id} does not match its recorded blake3"),
            ));
        }
        Ok(f.clone())
    }
}
