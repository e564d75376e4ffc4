//! Verifying a ledger's files without opening (or changing) them: every frame's CRC,
//! every record's encoding, causation links, transaction-time order, duplicate ids, the
//! snapshot against the WAL, and retention receipts against what the log holds.
//!
//! [`verify_file`] reads a WAL path (and the snapshot beside it) in 8 MiB windows, so its
//! memory is one window plus 16 bytes per fact id (for the causation check), never the
//! file; [`verify_file_with`] also reports progress. [`crate::LedgerStore::verify`] runs
//! the same checks on an open ledger, reading its WAL through the ledger's own locked
//! descriptor (opening and closing another descriptor of the file would release the
//! process's lock on it).
//!
//! What counts as a problem ([`VerifyReport::is_ok`] is false):
//! - **corruption**: a frame whose length or CRC is wrong with valid frames after it, or
//!   a CRC-valid frame that does not decode;
//! - **hash mismatches**: a snapshot fact that differs from the WAL fact it stands for, a
//!   tombstone whose value hash is not the one its erasure receipt recorded, a fact an
//!   erasure receipt lists that still has its value, a fact a prune receipt lists that is
//!   still there;
//! - **broken causation links**: a causation naming the fact itself, a fact later in the
//!   log, or a fact that is not in the log and that no retention receipt accounts for
//!   (a compaction receipt's dropped-id range, a prune receipt's list);
//! - **duplicate ids** and **transaction times that do not increase**.
//!
//! Reported but not a problem: a torn tail (an interrupted final write: opening cuts it,
//! copying it aside first), zero bytes after the last frame (space preallocated by a
//! process that did not close the ledger), a snapshot that no longer matches the WAL
//! (opening ignores it), causations to facts removed by compaction or prune.
//!
//! A ledger being written by another process while it is verified shows at most a torn
//! tail where a write was in progress; its other findings hold. After damage, the rest of
//! the file is read whole to look for the next valid frame (as opening does).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;

use super::codec::DecodeError;
use super::error::{Error, Result};
use super::fact::{hex, Fact, Interner};
use super::recovery::decode_body_with;
use super::snapshot::{self, Loaded};
use super::time::Timestamp;
use super::value::Value;
use super::wal::{self, FRAME_OVERHEAD, MAX_BODY};

/// Bytes read at a time.
const WINDOW: usize = 8 << 20;
/// Problems listed one by one (all are counted).
const LISTED: usize = 1000;

/// A region of the WAL that is damaged with valid frames after it (or a frame that does
/// not decode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRegion {
    /// Offset of the first damaged byte.
    pub offset: u64,
    /// Bytes up to the next valid frame (or to the end of the file).
    pub bytes: u64,
    /// What is wrong.
    pub reason: String,
}

/// An interrupted final write (opening cuts it off, after copying it aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTailFound {
    /// Where the incomplete frame begins.
    pub offset: u64,
    /// Bytes from there to the end of the file.
    pub bytes: u64,
}

/// What kind of value-hash disagreement was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MismatchKind {
    /// A snapshot fact differs from the WAL fact at the same position.
    Snapshot,
    /// A tombstone's value hash is not the one its erasure receipt recorded.
    ErasedHash,
    /// An erasure receipt lists the fact but the fact still has its value.
    NotErased,
    /// A prune receipt lists the fact but the fact is still in the log.
    NotPruned,
}

/// A fact whose content disagrees with what another record says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashMismatch {
    /// Which check failed.
    pub kind: MismatchKind,
    /// The fact.
    pub id: Uuid,
    /// In words.
    pub detail: String,
}

/// A causation link that does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenCausation {
    /// The fact holding the link.
    pub id: Uuid,
    /// Its store.
    pub store: String,
    /// What the link names.
    pub causation: Uuid,
    /// Why it is broken.
    pub reason: String,
}

/// The snapshot beside the WAL, as checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SnapshotCheck {
    /// No snapshot file (or an in-memory ledger).
    #[default]
    Absent,
    /// Readable, tied to this WAL, and every fact equal to the WAL's at its position.
    Consistent {
        /// Facts in it.
        facts: u64,
        /// WAL bytes it covers.
        wal_offset: u64,
    },
    /// Readable but not tied to this WAL (opening ignores it and replays the WAL).
    Stale {
        /// Why.
        reason: String,
    },
    /// Unreadable (opening ignores it and replays the WAL).
    Unreadable {
        /// Why.
        reason: String,
    },
    /// A 0.5.2 Ruby snapshot (merged with the WAL by id on open; not compared).
    Legacy {
        /// Facts in it.
        facts: u64,
    },
}

/// Progress of a verification, reported every few megabytes and once at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyProgress {
    /// WAL bytes checked so far.
    pub bytes_done: u64,
    /// WAL bytes in all.
    pub bytes_total: u64,
    /// Frames checked so far.
    pub frames: u64,
    /// Facts checked so far.
    pub facts: u64,
}

/// What [`verify_file`] or [`crate::LedgerStore::verify`] found. See the module
/// documentation for what each finding means.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The WAL path (None for an in-memory ledger).
    pub path: Option<PathBuf>,
    /// WAL bytes read.
    pub bytes: u64,
    /// CRC-valid frames checked.
    pub frames_checked: u64,
    /// Facts checked.
    pub facts_checked: u64,
    /// Facts whose value was erased (tombstones: accepted).
    pub tombstones: u64,
    /// Frames in the 0.5.2 JSON format.
    pub legacy_frames: u64,
    /// Damaged regions followed by valid frames, and frames that do not decode.
    pub corrupt: Vec<CorruptRegion>,
    /// An interrupted final write.
    pub torn_tail: Option<TornTailFound>,
    /// Zero bytes after the last frame (preallocated space; nothing lost).
    pub zero_tail: u64,
    /// Value-hash disagreements (at most 1,000 listed; see `hash_mismatch_count`).
    pub hash_mismatches: Vec<HashMismatch>,
    /// How many value-hash disagreements there are.
    pub hash_mismatch_count: u64,
    /// Facts with a causation link (broken or not).
    pub causation_links: u64,
    /// Broken causation links (at most 1,000 listed; see `broken_causation_count`).
    pub broken_causations: Vec<BrokenCausation>,
    /// How many causation links are broken.
    pub broken_causation_count: u64,
    /// Causation links to facts that compaction or prune removed, as their receipts say.
    pub causations_to_removed: u64,
    /// Ids that occur more than once (at most 1,000 listed).
    pub duplicate_ids: Vec<Uuid>,
    /// Facts whose transaction time is not after the previous fact's.
    pub out_of_order: u64,
    /// Compaction, prune and erasure receipts found.
    pub receipts: u64,
    /// The snapshot.
    pub snapshot: SnapshotCheck,
}

impl VerifyReport {
    /// True when nothing is wrong: no corruption, no hash mismatch, no broken causation
    /// link, no duplicate id, no out-of-order time. A torn tail, a zero tail and a stale
    /// snapshot are allowed (opening repairs or ignores them).
    pub fn is_ok(&self) -> bool {
        self.corrupt.is_empty()
            && self.hash_mismatch_count == 0
            && self.broken_causation_count == 0
            && self.duplicate_ids.is_empty()
            && self.out_of_order == 0
    }

    /// The problems, one line each (empty when [`VerifyReport::is_ok`]).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.corrupt {
            out.push(format!(
                "corrupt: {} bytes at offset {}: {}",
                c.bytes, c.offset, c.reason
            ));
        }
        if self.hash_mismatch_count > 0 {
            out.push(format!("{} hash mismatch(es)", self.hash_mismatch_count));
        }
        for m in &self.hash_mismatches {
            out.push(format!(
                "hash mismatch ({:?}) at fact {}: {}",
                m.kind, m.id, m.detail
            ));
        }
        if self.broken_causation_count > 0 {
            out.push(format!(
                "{} broken causation link(s)",
                self.broken_causation_count
            ));
        }
        for b in &self.broken_causations {
            out.push(format!(
                "broken causation: fact {} ({}) names {}: {}",
                b.id, b.store, b.causation, b.reason
            ));
        }
        for d in &self.duplicate_ids {
            out.push(format!("duplicate fact id {d}"));
        }
        if self.out_of_order > 0 {
            out.push(format!(
                "{} fact(s) whose transaction time is not after the previous fact's",
                self.out_of_order
            ));
        }
        out
    }
}

/// Verifies the ledger file at `path` (the WAL, and the snapshot beside it) without
/// opening it as a ledger: nothing is written, no lock is taken. A ledger file this
/// process has open must be verified through its handle ([`crate::LedgerStore::verify`]):
/// this function refuses it with `InvalidArgument`, since opening and closing another
/// descriptor of the file would release the process's lock on it.
///
/// ```
/// use igniter_ledger::{verify_file, LedgerStore, Value, Write};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("app.wal");
/// let ledger = LedgerStore::open(&path).unwrap();
/// ledger.write(Write::new("notes", "n1", Value::from("hi"))).unwrap();
/// ledger.close().unwrap();
/// drop(ledger);
/// let report = verify_file(&path).unwrap();
/// assert!(report.is_ok(), "{:?}", report.problems());
/// assert_eq!(report.facts_checked, 1);
/// ```
pub fn verify_file(path: impl AsRef<Path>) -> Result<VerifyReport> {
    verify_file_with(path, &mut |_| {})
}

/// [`verify_file`], calling `progress` every 8 MiB and once at the end.
pub fn verify_file_with(
    path: impl AsRef<Path>,
    progress: &mut dyn FnMut(&VerifyProgress),
) -> Result<VerifyReport> {
    let path = path.as_ref();
    if super::lock::held_by_this_process(path) {
        return Err(Error::InvalidArgument(format!(
            "{} is open in this process: verify it through its handle (LedgerStore::verify)",
            path.display()
        )));
    }
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("reading the metadata of {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(Error::io(
            format!("opening {}", path.display()),
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let src = FileSource(&file);
    verify_source(path, &src, meta.len(), progress)
}

/// Reads bytes at an offset (a file, or the ledger's locked WAL).
pub(crate) trait ReadAt {
    /// Reads into `buf` from `offset`; how many bytes were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

struct FileSource<'a>(&'a File);

impl ReadAt for FileSource<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        read_file_at(self.0, buf, offset)
    }
}

/// Positional read of a file (does not move a shared cursor on Unix).
#[cfg(unix)]
pub(crate) fn read_file_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// Positional read of a file.
#[cfg(not(unix))]
pub(crate) fn read_file_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read(buf)
}

fn read_exact_at(src: &dyn ReadAt, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match src.read_at(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ended while being read",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The bytes `[base, base + buf.len())` of the source.
struct Window<'a> {
    src: &'a dyn ReadAt,
    total: u64,
    base: u64,
    buf: Vec<u8>,
}

impl Window<'_> {
    /// Makes `[off, off + n)` available; false if it runs past the end.
    fn ensure(&mut self, off: u64, n: usize) -> io::Result<bool> {
        let end = off.saturating_add(n as u64);
        if end > self.total {
            return Ok(false);
        }
        if off >= self.base && end <= self.base + self.buf.len() as u64 {
            return Ok(true);
        }
        if off > self.base {
            let drop = ((off - self.base) as usize).min(self.buf.len());
            self.buf.drain(..drop);
            self.base += drop as u64;
        }
        let target = end.max(self.base + WINDOW as u64).min(self.total);
        let have = self.buf.len();
        let want = (target - self.base) as usize;
        if want > have {
            self.buf.resize(want, 0);
            if let Err(e) = read_exact_at(self.src, &mut self.buf[have..], self.base + have as u64)
            {
                self.buf.truncate(have);
                return Err(e);
            }
        }
        Ok(true)
    }

    /// The rest of the source from `off`, whole (to search past damage).
    fn load_rest(&mut self, off: u64) -> io::Result<()> {
        let n = (self.total - off) as usize;
        self.ensure(off, n).map(drop)
    }
}

/// Interns store names (few); keys are not shared.
#[derive(Default)]
struct StoreNames(HashMap<Box<str>, Arc<str>>);

impl Interner for StoreNames {
    fn store(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(Box::from(s), a.clone());
        a
    }
    fn key(&mut self, _store: &Arc<str>, k: &str) -> Arc<str> {
        Arc::from(k)
    }
}

/// The snapshot's facts, compared with the WAL's as the scan meets them.
struct SnapshotCompare {
    facts: Vec<Fact>,
    wal_offset: u64,
    next: usize,
}

fn verify_source(
    path: &Path,
    src: &dyn ReadAt,
    total: u64,
    progress: &mut dyn FnMut(&VerifyProgress),
) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        path: Some(path.to_owned()),
        bytes: total,
        ..VerifyReport::default()
    };
    let mut names = StoreNames::default();
    let mut checker = Checker::default();
    let mut snap = load_snapshot(path, src, total, &mut names, &mut report)?;
    let mut win = Window {
        src,
        total,
        base: 0,
        buf: Vec::new(),
    };
    let io_err = |e| Error::io(format!("reading {}", path.display()), e);
    let mut off = 0u64;
    let mut next_progress = 0u64;
    while off < total {
        if off >= next_progress {
            progress(&VerifyProgress {
                bytes_done: off,
                bytes_total: total,
                frames: report.frames_checked,
                facts: checker.facts,
            });
            next_progress = off + WINDOW as u64;
        }
        let frame = if win.ensure(off, FRAME_OVERHEAD).map_err(io_err)? {
            let at = (off - win.base) as usize;
            let len = u32::from_be_bytes(win.buf[at..at + 4].try_into().unwrap_or([0; 4])) as usize;
            if len == 0
                || len > MAX_BODY
                || !win.ensure(off, len + FRAME_OVERHEAD).map_err(io_err)?
            {
                None
            } else {
                wal::frame_at(&win.buf, (off - win.base) as usize, win.base)
            }
        } else {
            None
        };
        let Some(fr) = frame else {
            // Damage: search the rest for a valid frame.
            win.load_rest(off).map_err(io_err)?;
            let at = (off - win.base) as usize;
            let rest = &win.buf[at..];
            if rest.iter().all(|&b| b == 0) {
                report.zero_tail = rest.len() as u64;
                break;
            }
            let reason = wal::describe_damage(&win.buf, at);
            match wal::next_valid_frame(&win.buf, at + 1) {
                wal::Search::Found(q) => {
                    report.corrupt.push(CorruptRegion {
                        offset: off,
                        bytes: (q - at) as u64,
                        reason,
                    });
                    off = win.base + q as u64;
                    continue;
                }
                wal::Search::OverBudget(q) => {
                    report.corrupt.push(CorruptRegion {
                        offset: off,
                        bytes: total - off,
                        reason: format!(
                            "{reason}; the bytes after it hold too many frame-like candidates \
                             to search (gave up at offset {})",
                            win.base + q as u64
                        ),
                    });
                    break;
                }
                wal::Search::None => {
                    report.torn_tail = Some(TornTailFound {
                        offset: off,
                        bytes: total - off,
                    });
                    break;
                }
            }
        };
        report.frames_checked += 1;
        let body = &win.buf[fr.body.0..fr.body.1];
        let mut dropped = 0u64;
        let mut seqs = None;
        let decoded = decode_body_with(
            body,
            &mut names,
            &mut report.legacy_frames,
            &mut dropped,
            &mut seqs,
        )
        .and_then(|facts| match seqs {
            // A rewritten generation's sequence table belongs before its first fact.
            Some(_) if checker.facts > 0 => Err(DecodeError(
                "a changefeed sequence table after the first fact".into(),
            )),
            _ => Ok(facts),
        });
        match decoded {
            Ok(facts) => {
                for f in facts {
                    if let Some(s) = snap.as_mut() {
                        s.compare(&f, fr.offset, &mut checker);
                    }
                    checker.fact(&f);
                }
            }
            Err(DecodeError(e)) => report.corrupt.push(CorruptRegion {
                offset: fr.offset,
                bytes: fr.end - fr.offset,
                reason: format!("frame has a valid CRC but does not decode: {e}"),
            }),
        }
        off = fr.end;
    }
    if let Some(s) = snap {
        if s.next < s.facts.len() {
            checker.mismatch(
                MismatchKind::Snapshot,
                s.facts[s.next].id(),
                format!(
                    "the snapshot holds {} facts; the WAL bytes it covers hold only {}",
                    s.facts.len(),
                    s.next
                ),
            );
        } else if report.snapshot == SnapshotCheck::Absent {
            report.snapshot = SnapshotCheck::Consistent {
                facts: s.facts.len() as u64,
                wal_offset: s.wal_offset,
            };
        }
    }
    progress(&VerifyProgress {
        bytes_done: total,
        bytes_total: total,
        frames: report.frames_checked,
        facts: checker.facts,
    });
    checker.finish(&mut report);
    Ok(report)
}

/// Reads the snapshot beside `path`: the facts to compare when it is ours and tied to
/// this WAL, else its verdict in `report.snapshot`.
fn load_snapshot(
    path: &Path,
    src: &dyn ReadAt,
    total: u64,
    names: &mut StoreNames,
    report: &mut VerifyReport,
) -> Result<Option<SnapshotCompare>> {
    let snap_path = snapshot::snapshot_path(path);
    let bytes = match std::fs::read(&snap_path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            report.snapshot = SnapshotCheck::Unreadable {
                reason: format!("cannot read {}: {e}", snap_path.display()),
            };
            return Ok(None);
        }
    };
    match snapshot::read(&bytes, names) {
        Err(reason) => {
            report.snapshot = SnapshotCheck::Unreadable { reason };
            Ok(None)
        }
        Ok(Loaded::Legacy { facts, .. }) => {
            report.snapshot = SnapshotCheck::Legacy {
                facts: facts.len() as u64,
            };
            Ok(None)
        }
        Ok(Loaded::Native { header, facts, .. }) => {
            let tied = header.wal_offset == 0
                || (header.wal_offset <= total && header.wal_offset >= FRAME_OVERHEAD as u64 && {
                    let mut crc = [0u8; 4];
                    read_exact_at(src, &mut crc, header.wal_offset - 4).is_ok()
                        && crc == header.wal_tail_crc.to_be_bytes()
                });
            if !tied {
                report.snapshot = SnapshotCheck::Stale {
                    reason: format!(
                        "it covers {} WAL bytes that do not match this WAL ({total} bytes)",
                        header.wal_offset
                    ),
                };
                return Ok(None);
            }
            Ok(Some(SnapshotCompare {
                facts,
                wal_offset: header.wal_offset,
                next: 0,
            }))
        }
    }
}

impl SnapshotCompare {
    /// Compares the WAL fact at `offset` with the snapshot's fact at the same position.
    fn compare(&mut self, f: &Fact, offset: u64, checker: &mut Checker) {
        if offset >= self.wal_offset || self.next >= self.facts.len() {
            return;
        }
        let s = &self.facts[self.next];
        self.next += 1;
        // Transaction times may differ: opening moves imported times forward.
        let (a, b) = (&*s.0, &*f.0);
        let same = a.id == b.id
            && a.store == b.store
            && a.key == b.key
            && a.value == b.value
            && a.causation == b.causation
            && a.schema_version == b.schema_version
            && a.valid.to_bits() == b.valid.to_bits()
            && s.producer_bytes() == f.producer_bytes()
            && s.derivation_bytes() == f.derivation_bytes();
        if !same {
            checker.mismatch(
                MismatchKind::Snapshot,
                f.id(),
                format!(
                    "the snapshot's fact {} (position {}) differs from the WAL's fact at offset {offset}",
                    s.id(),
                    self.next - 1
                ),
            );
        }
    }
}

/// The per-fact checks: ids, order, causation, receipts.
#[derive(Default)]
pub(crate) struct Checker {
    facts: u64,
    tombstones: u64,
    causation_links: u64,
    seen: HashSet<Uuid>,
    /// Causations not resolved when their fact was read: (fact, store, causation).
    unresolved: Vec<(Uuid, Arc<str>, Uuid)>,
    last_tx: Option<Timestamp>,
    out_of_order: u64,
    duplicates: Vec<Uuid>,
    /// Value hashes of tombstones.
    erased: HashMap<Uuid, [u8; 32]>,
    /// From receipts: (first, last) dropped ids of each compaction.
    compacted: Vec<(Uuid, Uuid)>,
    pruned: HashSet<Uuid>,
    /// From erasure receipts: (fact id, value hash hex).
    erasure_claims: Vec<(Uuid, String)>,
    receipts: u64,
    mismatches: Vec<HashMismatch>,
    mismatch_count: u64,
}

impl Checker {
    fn mismatch(&mut self, kind: MismatchKind, id: Uuid, detail: String) {
        self.mismatch_count += 1;
        if self.mismatches.len() < LISTED {
            self.mismatches.push(HashMismatch { kind, id, detail });
        }
    }

    /// Checks one fact, in log order.
    pub(crate) fn fact(&mut self, f: &Fact) {
        self.facts += 1;
        let id = f.id();
        if !self.seen.insert(id) && self.duplicates.len() < LISTED {
            self.duplicates.push(id);
        }
        let tx = f.transaction_time();
        if self.last_tx.is_some_and(|t| tx <= t) {
            self.out_of_order += 1;
        }
        self.last_tx = Some(tx);
        if let Some(c) = f.causation() {
            self.causation_links += 1;
            if c == id || !self.seen.contains(&c) {
                self.unresolved.push((id, f.store_arc().clone(), c));
            }
        }
        if f.is_erased() {
            self.tombstones += 1;
            self.erased.insert(id, *f.value_hash());
            return;
        }
        let bytes = f.value_bytes();
        if bytes.windows(8).any(|w| w == b"_receipt") {
            self.receipt(&f.value());
        }
    }

    fn receipt(&mut self, v: &Value) {
        let ids = |name: &str| -> Vec<(Uuid, String)> {
            match v.get_sym(name) {
                Some(Value::Array(refs)) => refs
                    .iter()
                    .filter_map(|r| {
                        let id = r.get_sym("id")?.as_str()?;
                        let hash = r.get_sym("value_hash").and_then(|h| h.as_str());
                        Some((Uuid::try_parse(id).ok()?, hash.unwrap_or("").to_owned()))
                    })
                    .collect(),
                _ => Vec::new(),
            }
        };
        let id_of = |name: &str| {
            v.get_sym(name)
                .and_then(|s| s.as_str())
                .and_then(|s| Uuid::try_parse(s).ok())
        };
        match v.get_sym("type").and_then(|t| t.as_str()) {
            Some("compaction_receipt") => {
                self.receipts += 1;
                if let (Some(a), Some(b)) = (id_of("oldest_dropped"), id_of("newest_dropped")) {
                    self.compacted.push((a.min(b), a.max(b)));
                }
            }
            Some("fact_prune_receipt") => {
                self.receipts += 1;
                self.pruned
                    .extend(ids("pruned_fact_refs").into_iter().map(|(id, _)| id));
            }
            Some("erasure_receipt") => {
                self.receipts += 1;
                self.erasure_claims.extend(ids("erased_fact_refs"));
            }
            _ => {}
        }
    }

    /// Resolves what needed the whole log and fills in the report.
    pub(crate) fn finish(mut self, report: &mut VerifyReport) {
        let mut broken = Vec::new();
        let mut broken_count = 0u64;
        let mut removed = 0u64;
        for (id, store, c) in std::mem::take(&mut self.unresolved) {
            let reason = if c == id {
                "names the fact itself"
            } else if self.seen.contains(&c) {
                "names a fact later in the log"
            } else if self.pruned.contains(&c)
                || self.compacted.iter().any(|&(a, b)| a <= c && c <= b)
            {
                removed += 1;
                continue;
            } else {
                "names no fact in the log, and no compaction or prune receipt accounts for it"
            };
            broken_count += 1;
            if broken.len() < LISTED {
                broken.push(BrokenCausation {
                    id,
                    store: store.to_string(),
                    causation: c,
                    reason: reason.to_owned(),
                });
            }
        }
        for (id, hash) in std::mem::take(&mut self.erasure_claims) {
            match self.erased.get(&id) {
                Some(h) if !hash.is_empty() && hex(h) != hash => self.mismatch(
                    MismatchKind::ErasedHash,
                    id,
                    format!(
                        "the tombstone's value hash is {}, its erasure receipt recorded {hash}",
                        hex(h)
                    ),
                ),
                Some(_) => {}
                None if self.seen.contains(&id) => self.mismatch(
                    MismatchKind::NotErased,
                    id,
                    "an erasure receipt lists the fact, but its value is still in the log".into(),
                ),
                None => {}
            }
        }
        let still: Vec<Uuid> = self
            .pruned
            .iter()
            .filter(|id| self.seen.contains(id))
            .copied()
            .collect();
        for id in still {
            self.mismatch(
                MismatchKind::NotPruned,
                id,
                "a prune receipt lists the fact, but it is still in the log".into(),
            );
        }
        report.facts_checked = self.facts;
        report.tombstones = self.tombstones;
        report.causation_links = self.causation_links;
        report.broken_causations = broken;
        report.broken_causation_count = broken_count;
        report.causations_to_removed = removed;
        report.duplicate_ids = self.duplicates;
        report.out_of_order = self.out_of_order;
        report.receipts = self.receipts;
        report.hash_mismatches = self.mismatches;
        report.hash_mismatch_count = self.mismatch_count;
    }
}

/// Verifies an open file-backed ledger's WAL through `src` (its locked descriptor), up
/// to `len` bytes (whole frames).
pub(crate) fn verify_open(
    path: &Path,
    src: &dyn ReadAt,
    len: u64,
    progress: &mut dyn FnMut(&VerifyProgress),
) -> Result<VerifyReport> {
    verify_source(path, src, len, progress)
}

/// Verifies an in-memory log (ids, order, causation, receipts).
pub(crate) fn verify_log(log: &[Fact], progress: &mut dyn FnMut(&VerifyProgress)) -> VerifyReport {
    let mut report = VerifyReport::default();
    let mut checker = Checker::default();
    for f in log {
        checker.fact(f);
    }
    progress(&VerifyProgress {
        bytes_done: 0,
        bytes_total: 0,
        frames: 0,
        facts: checker.facts,
    });
    checker.finish(&mut report);
    report
}

struct LogSource(Arc<dyn super::wal::LogFile>);

impl ReadAt for LogSource {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
}

impl super::store::LedgerStore {
    /// Verifies this ledger (the checks of [`verify_file`]): for a file-backed
    /// ledger, the WAL as written so far (read through the ledger's own descriptor, while
    /// commits go on) and the snapshot beside it; for an in-memory or a segmented one,
    /// its log as held in memory (ids, order, causation links, receipts: segment files
    /// are not read). Changes nothing.
    ///
    /// ```
    /// use igniter_ledger::{LedgerStore, Value, Write};
    /// let ledger = LedgerStore::memory();
    /// ledger.write(Write::new("notes", "n1", Value::from("a"))).unwrap();
    /// ledger.write(Write::new("notes", "n1", Value::from("b"))).unwrap();
    /// let r = ledger.verify().unwrap();
    /// assert!(r.is_ok());
    /// assert_eq!(r.facts_checked, 2);
    /// ```
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with(&mut |_| {})
    }

    /// [`crate::LedgerStore::verify`], calling `progress` every 8 MiB and once at the end.
    pub fn verify_with(&self, progress: &mut dyn FnMut(&VerifyProgress)) -> Result<VerifyReport> {
        if self.segment_storage().is_some() {
            // A segmented ledger has no single WAL: its log, as loaded from its segments.
            return Ok(self.read_log(|log| verify_log(&log.log, progress)));
        }
        match (self.path(), self.wal_for_reading()?) {
            (Some(path), Some((file, len))) => verify_open(path, &LogSource(file), len, progress),
            (Some(_), None) => Err(Error::Closed),
            (None, _) => Ok(self.read_log(|log| verify_log(&log.log, progress))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FactParts, MapKey, Value};

    fn fact(id: u128, store: &str, value: Value, causation: Option<u128>, tx: i64) -> Fact {
        Fact::restore(FactParts {
            id: Uuid::from_u128(id),
            store: store.into(),
            key: "k".into(),
            value,
            causation: causation.map(Uuid::from_u128),
            transaction_time: Timestamp::from_micros(tx),
            valid_time: None,
            schema_version: 1,
            producer: None,
            derivation: None,
        })
        .unwrap()
    }

    fn refs(kind: &str, field: &str, ids: &[(u128, &str)]) -> Value {
        Value::map([
            (MapKey::sym("type"), Value::sym(kind)),
            (
                MapKey::sym(field),
                Value::array(ids.iter().map(|(id, h)| {
                    Value::map([
                        (
                            MapKey::sym("id"),
                            Value::from(Uuid::from_u128(*id).to_string()),
                        ),
                        (MapKey::sym("value_hash"), Value::from(*h)),
                    ])
                })),
            ),
        ])
    }

    #[test]
    fn receipts_are_checked_against_the_log() {
        let a = fact(1, "s", Value::Int(1), None, 10);
        let b = fact(2, "s", Value::Int(2), Some(1), 20);
        let erased = fact(3, "s", Value::Int(3), None, 30).tombstone();
        let good_hash = hex(erased.value_hash());
        let log = vec![
            a.clone(),
            b,
            erased,
            // Lists a fact still present: not pruned.
            fact(
                4,
                "__fact_prune_receipts",
                refs("fact_prune_receipt", "pruned_fact_refs", &[(1, "")]),
                None,
                40,
            ),
            // Right hash for 3; 1 still has its value.
            fact(
                5,
                "__erasure_receipts",
                refs(
                    "erasure_receipt",
                    "erased_fact_refs",
                    &[(3, &good_hash), (1, "")],
                ),
                None,
                50,
            ),
        ];
        let r = verify_log(&log, &mut |_| {});
        assert_eq!(r.receipts, 2);
        let kinds: Vec<MismatchKind> = r.hash_mismatches.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            [MismatchKind::NotErased, MismatchKind::NotPruned],
            "{r:?}"
        );
        assert!(!r.is_ok());

        // A tombstone whose hash differs from its receipt's.
        let t = fact(3, "s", Value::Int(3), None, 30).tombstone();
        let log = vec![
            t,
            fact(
                5,
                "__erasure_receipts",
                refs("erasure_receipt", "erased_fact_refs", &[(3, "00ff")]),
                None,
                50,
            ),
        ];
        let r = verify_log(&log, &mut |_| {});
        assert_eq!(r.hash_mismatches.len(), 1);
        assert_eq!(r.hash_mismatches[0].kind, MismatchKind::ErasedHash);
    }

    #[test]
    fn order_duplicates_and_self_and_forward_links_are_problems() {
        let log = vec![
            fact(1, "s", Value::Int(1), Some(2), 10), // forward
            fact(2, "s", Value::Int(2), Some(2), 20), // itself
            fact(2, "s", Value::Int(3), None, 15),    // duplicate, out of order
        ];
        let r = verify_log(&log, &mut |_| {});
        assert_eq!(r.duplicate_ids, [Uuid::from_u128(2)]);
        assert_eq!(r.out_of_order, 1);
        assert_eq!(r.causation_links, 2);
        let reasons: Vec<&str> = r
            .broken_causations
            .iter()
            .map(|b| b.reason.as_str())
            .collect();
        assert_eq!(
            reasons,
            ["names a fact later in the log", "names the fact itself"]
        );
    }

    #[test]
    fn a_snapshot_fact_that_differs_from_the_wal_is_a_hash_mismatch() {
        use crate::{LedgerStore, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.wal");
        let l = LedgerStore::open(&path).unwrap();
        for i in 0..5 {
            l.write(Write::new("s", format!("k{i}"), Value::Int(i)))
                .unwrap();
        }
        let mut facts = l.read_log(|log| log.log.to_vec());
        let pos = l.engine().published_position();
        let (end, crc) = (pos.end, pos.tail_crc);
        l.close().unwrap();
        drop(l);
        // Same ids and positions, another value at position 2: tied to the WAL.
        let mut p = facts[2].to_parts();
        p.value = Value::Int(99);
        facts[2] = Fact::restore(p).unwrap();
        snapshot::write(
            &super::super::fs::OsFileSystem,
            &path,
            &facts,
            &Default::default(),
            end,
            crc,
        )
        .unwrap();
        let r = verify_file(&path).unwrap();
        assert_eq!(r.hash_mismatch_count, 1, "{r:?}");
        assert_eq!(r.hash_mismatches[0].kind, MismatchKind::Snapshot);
        assert_eq!(r.hash_mismatches[0].id, facts[2].id());
    }
}
