//! The write-ahead log: CRC32-framed records appended to one file.
//!
//! Frame: `[u32 BE body length][body][u32 BE CRC32(body)]`. A body is MessagePack
//! (`[1, record]` for one fact, `[2, [record, ...]]` for an atomic batch) or, for files
//! written by the 0.5.2 Ruby gem, a JSON object (one fact).
//!
//! Reading classifies damage: an incomplete or CRC-failing frame with no valid frame
//! after it is a *torn tail* (an interrupted final write) and is cut off; damage followed
//! by a valid frame is *corruption* and fails the open unless recovery is requested.
//! The search for a valid frame after damage takes linear time: it checksums only
//! candidates that start like a body the ledger writes, within a budget; a tail that
//! exhausts the budget (only crafted bytes do) is reported as corruption.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{Error, Result};
use super::lock::LockedFile;

/// Bytes of framing around each body.
pub const FRAME_OVERHEAD: usize = 8;
/// Largest body the ledger writes or accepts (a batch is one frame).
pub const MAX_BODY: usize = 256 * 1024 * 1024;

/// Body tag: one fact record.
pub(crate) const TAG_FACT: i64 = 1;
/// Body tag: an atomic batch of fact records.
pub(crate) const TAG_BATCH: i64 = 2;
/// Body tag (snapshot files only): a chunk of fact records.
pub(crate) const TAG_CHUNK: i64 = 3;
/// Frame tag: the changefeed sequence table of a rewritten generation (its first frame;
/// see `crate::changefeed::sequence`).
pub(crate) const TAG_SEQUENCES: i64 = 4;

/// Starts a frame in `out` (reserves the length), returning where it begins.
pub(crate) fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    start
}

/// Finishes the frame begun at `start`: patches the length, appends the CRC. Returns
/// the CRC.
pub(crate) fn end_frame(out: &mut Vec<u8>, start: usize) -> Result<u32> {
    let body_len = out.len() - start - 4;
    if body_len > MAX_BODY {
        out.truncate(start);
        return Err(Error::InvalidArgument(format!(
            "a commit encodes to {body_len} bytes; one commit may hold at most {MAX_BODY} bytes"
        )));
    }
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_be_bytes());
    let crc = crc32fast::hash(&out[start + 4..]);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(crc)
}

/// One complete, CRC-valid frame found in a buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameRef {
    /// Offset of the frame's length field.
    pub offset: u64,
    /// Body range in the buffer.
    pub body: (usize, usize),
    /// Offset just after the frame.
    pub end: u64,
    /// The frame's CRC.
    pub crc: u32,
}

#[cfg(test)]
thread_local! {
    /// Bytes checksummed by `frame_at` on this thread (tests measure the scan's work).
    pub(crate) static CRC_BYTES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Tries to read a valid frame at `pos` of `buf` (whose first byte is file offset `base`).
pub(crate) fn frame_at(buf: &[u8], pos: usize, base: u64) -> Option<FrameRef> {
    let rest = buf.len().checked_sub(pos)?;
    if rest < FRAME_OVERHEAD {
        return None;
    }
    let len = u32::from_be_bytes(buf[pos..pos + 4].try_into().ok()?) as usize;
    if len == 0 || len > MAX_BODY || len + FRAME_OVERHEAD > rest {
        return None;
    }
    let body = &buf[pos + 4..pos + 4 + len];
    let crc = u32::from_be_bytes(buf[pos + 4 + len..pos + 8 + len].try_into().ok()?);
    #[cfg(test)]
    CRC_BYTES.with(|c| c.set(c.get() + len as u64));
    if crc32fast::hash(body) != crc {
        return None;
    }
    Some(FrameRef {
        offset: base + pos as u64,
        body: (pos + 4, pos + 4 + len),
        end: base + (pos + 8 + len) as u64,
        crc,
    })
}

/// Where scanning stopped, and why.
#[derive(Debug)]
pub(crate) enum ScanEnd {
    /// The buffer ended exactly after the last frame.
    Clean,
    /// Damage with no valid frame after it: an interrupted final write.
    TornTail { offset: u64, bytes: u64 },
    /// Damage followed by a valid frame.
    Corrupt { offset: u64, reason: String },
}

/// Splits a buffer into frames, stopping at the first damage and classifying it.
pub(crate) fn scan(buf: &[u8], base: u64) -> (Vec<FrameRef>, ScanEnd) {
    let mut frames = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        match frame_at(buf, pos, base) {
            Some(f) => {
                pos = (f.end - base) as usize;
                frames.push(f);
            }
            None => {
                let offset = base + pos as u64;
                let end = match next_valid_frame(buf, pos + 1) {
                    Search::Found(q) => ScanEnd::Corrupt {
                        offset,
                        reason: format!(
                            "frame at offset {offset} is damaged ({}) and a valid frame follows at offset {}",
                            describe_damage(buf, pos),
                            base + q as u64
                        ),
                    },
                    Search::OverBudget(q) => ScanEnd::Corrupt {
                        offset,
                        reason: format!(
                            "frame at offset {offset} is damaged ({}) and the {} bytes after it \
                             hold too many frame-like candidates to rule out a valid frame \
                             (searched up to offset {})",
                            describe_damage(buf, pos),
                            buf.len() - pos,
                            base + q as u64
                        ),
                    },
                    Search::None => ScanEnd::TornTail {
                        offset,
                        bytes: (buf.len() - pos) as u64,
                    },
                };
                return (frames, end);
            }
        }
    }
    (frames, ScanEnd::Clean)
}

/// Why the frame at `pos` is not valid, in words.
pub(crate) fn describe_damage(buf: &[u8], pos: usize) -> String {
    let rest = buf.len() - pos;
    if rest < FRAME_OVERHEAD {
        return format!("only {rest} bytes remain");
    }
    let len = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
    if len == 0 || len > MAX_BODY {
        format!("impossible body length {len}")
    } else if len + FRAME_OVERHEAD > rest {
        format!("body length {len} runs past the end of the file")
    } else {
        "CRC mismatch".to_owned()
    }
}

/// Whether a body starts the way every frame body written by this ledger (or by the
/// 0.5.2 gem) starts: `[1, record]`, `[2 | 3, [record, ...]]` with a record beginning
/// `[id (bin 16), ...` (see [`super::fact::encode_record`]), or a JSON object. Used only
/// when searching past damage, to skip the CRC of bytes that cannot be a frame we wrote.
pub(crate) fn looks_like_a_body(body: &[u8]) -> bool {
    const REC: u8 = 0x90 | super::fact::RECORD_FIELDS as u8;
    let record = |r: &[u8]| matches!(r, [REC, 0xc4, 0x10, ..]);
    match body {
        [0x92, 0x01, r @ ..] => record(r),
        [0x92, 0x02 | 0x03, rest @ ..] => match rest {
            [0x91..=0x9f, r @ ..] => record(r),
            [0xdc, _, _, r @ ..] => record(r),
            [0xdd, _, _, _, _, r @ ..] => record(r),
            _ => false,
        },
        [b'{', b'"', c, ..] => c.is_ascii_lowercase() || *c == b'_',
        _ => false,
    }
}

/// What the search past damage found.
pub(crate) enum Search {
    /// A valid frame starts here.
    Found(usize),
    /// No valid frame follows.
    None,
    /// Gave up here: checksumming every candidate would cost more than the budget.
    OverBudget(usize),
}

/// Looks for a valid frame after damage. Only candidates whose length fits and whose
/// body starts like one we write are checksummed, and the bytes checksummed are capped
/// (a multiple of what is searched, plus a constant), so a torn multi-megabyte batch is
/// cut in linear time and crafted input cannot make opening run for hours: past the
/// budget the damage is reported as corruption, which fails loudly (or is moved aside
/// with `recover`) rather than dropping anything silently.
pub(crate) fn next_valid_frame(buf: &[u8], from: usize) -> Search {
    let mut budget = (SEARCH_BUDGET_BASE as u64).saturating_add(
        SEARCH_BUDGET_PER_BYTE.saturating_mul(buf.len().saturating_sub(from) as u64),
    );
    for q in from..buf.len().saturating_sub(FRAME_OVERHEAD - 1) {
        let len = u32::from_be_bytes([buf[q], buf[q + 1], buf[q + 2], buf[q + 3]]) as usize;
        if len == 0 || len > MAX_BODY || len + FRAME_OVERHEAD > buf.len() - q {
            continue;
        }
        if !looks_like_a_body(&buf[q + 4..q + 4 + len]) {
            continue;
        }
        if len as u64 > budget {
            return Search::OverBudget(q);
        }
        budget -= len as u64;
        if frame_at(buf, q, 0).is_some() {
            return Search::Found(q);
        }
    }
    Search::None
}

/// Bytes the search past damage may always checksum.
const SEARCH_BUDGET_BASE: usize = 64 << 20;
/// Further bytes it may checksum per byte searched.
const SEARCH_BUDGET_PER_BYTE: u64 = 16;

/// How a commit reaches the disk. Chosen at open; see the README for each mode's loss
/// window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// A write returns once its frame is on stable storage (fdatasync). Concurrent writers
    /// share one fdatasync (group commit). Loss window: none.
    #[default]
    Fsync,
    /// One write(2) per commit, no fsync: survives a crash of the process, not of the
    /// machine (power loss can lose the commits since the OS last wrote back).
    Flush,
    /// Commits are buffered in the process (up to 1 MiB) and written on close,
    /// checkpoint, or when the buffer fills. Loss window: the unwritten buffer on any crash.
    None,
}

impl Durability {
    /// Parses `"fsync"`, `"flush"` or `"none"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "fsync" => Ok(Durability::Fsync),
            "flush" => Ok(Durability::Flush),
            "none" => Ok(Durability::None),
            other => Err(Error::InvalidArgument(format!(
                "durability must be \"fsync\", \"flush\" or \"none\", got {other:?}"
            ))),
        }
    }
    /// The mode's name.
    pub fn name(self) -> &'static str {
        match self {
            Durability::Fsync => "fsync",
            Durability::Flush => "flush",
            Durability::None => "none",
        }
    }
}

/// The file layer under the WAL. The real one is [`std::fs::File`]; tests substitute one
/// that fails on demand to prove I/O errors are handled.
pub trait LogFile: Send + Sync {
    /// Appends all of `buf` at the end of the file.
    fn append(&self, buf: &[u8]) -> io::Result<()>;
    /// fdatasync.
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates (or extends) to `len` bytes: the log ends there.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Called by a clean close before the final sync: gives back any space reserved past
    /// the log's end, so the file ends exactly at its last frame. The default does
    /// nothing.
    fn finish(&self) -> io::Result<()> {
        Ok(())
    }
    /// Reads into `buf` from `offset` without moving a shared cursor (used to verify an
    /// open ledger through its own descriptor). The default answers `Unsupported`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let _ = (buf, offset);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this file layer cannot be read back",
        ))
    }
}

/// Zero-filled space added past the log's end at a time (fsync mode).
pub(crate) const PREALLOCATE: u64 = 1 << 20;

/// The real WAL file. In `fsync` mode it keeps zero-filled space ahead of the log
/// (preallocation): a commit then overwrites blocks that are already written and part of
/// the file, so its fdatasync flushes data only, instead of also committing a new file
/// size through the file system's journal on every commit. The space is added
/// [`PREALLOCATE`] bytes at a time, by writing zeros (not `fallocate`, whose unwritten
/// extents would still need a metadata update on first write); the commit that adds it
/// pays for it. Readers of the WAL treat a zero region after the last frame as the end of
/// the log (a frame never starts with a zero length), and the space never outlives the
/// handle: `close` (and dropping the handle) cuts the file back to the end of its last
/// frame, and opening trims what a crashed process left. If the space cannot be added (a
/// full disk, a file size limit), frames are appended without it.
impl LogFile for LockedFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        let mut e = self.extent.lock();
        let need = e.end + buf.len() as u64;
        if e.preallocate && need > e.allocated && e.end >= e.retry_at {
            let target = need.div_ceil(PREALLOCATE) * PREALLOCATE + PREALLOCATE;
            match zero_fill(&self.file, e.allocated, target) {
                Ok(()) => e.allocated = target,
                Err(_) => {
                    // Best effort: give back what was added, try again a chunk later.
                    let _ = self.file.set_len(e.allocated);
                    e.retry_at = e.end + PREALLOCATE;
                }
            }
        }
        write_all_at(&self.file, buf, e.end)?;
        e.end = need;
        e.allocated = e.allocated.max(need);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut e = self.extent.lock();
        self.file.set_len(len)?;
        e.end = len;
        e.allocated = len;
        Ok(())
    }
    fn finish(&self) -> io::Result<()> {
        let mut e = self.extent.lock();
        if e.allocated > e.end {
            self.file.set_len(e.end)?;
            e.allocated = e.end;
        }
        Ok(())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        super::verify::read_file_at(&self.file, buf, offset)
    }
}

/// Writes zeros over `[from, to)` of `file`.
fn zero_fill(file: &File, from: u64, to: u64) -> io::Result<()> {
    static Z: [u8; 64 * 1024] = [0; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = (to - at).min(Z.len() as u64) as usize;
        write_all_at(file, &Z[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(not(unix))]
fn write_all_at(mut file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek as _, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(buf)
}

impl LogFile for File {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        (&*self).write_all(buf)
    }
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        super::verify::read_file_at(self, buf, offset)
    }
}

/// The appending side of the WAL.
pub(crate) struct WalWriter {
    pub(crate) file: Arc<dyn LogFile>,
    /// Bytes in the file plus bytes buffered (`none` mode).
    pub(crate) len: u64,
    /// Bytes known to be in the file (written with write(2)).
    pub(crate) written: u64,
    pub(crate) buf: Vec<u8>,
    pub(crate) mode: Durability,
    pub(crate) path: PathBuf,
    /// Holds the file lock when `file` is not the locked file itself.
    pub(crate) _lock: Option<Arc<LockedFile>>,
}

const NONE_BUFFER: usize = 1024 * 1024;

impl WalWriter {
    pub(crate) fn new(file: Arc<dyn LogFile>, len: u64, mode: Durability, path: &Path) -> Self {
        WalWriter {
            file,
            len,
            written: len,
            buf: Vec::new(),
            mode,
            path: path.to_owned(),
            _lock: None,
        }
    }

    /// Appends complete frames. On error nothing of them remains in the file (a partial
    /// write is cut back); if even that fails the error says so and the caller poisons.
    pub(crate) fn append(&mut self, frames: &[u8]) -> Result<u64, AppendError> {
        match self.mode {
            Durability::None => {
                self.buf.extend_from_slice(frames);
                self.len += frames.len() as u64;
                if self.buf.len() >= NONE_BUFFER {
                    if let Err(e) = self.flush_buffer() {
                        // This commit fails, so its frames must not stay buffered (a
                        // later flush would write a commit reported as failed); the
                        // commits buffered before it stay, as acknowledged.
                        self.buf.truncate(self.buf.len() - frames.len());
                        self.len -= frames.len() as u64;
                        return Err(e);
                    }
                }
                Ok(self.len)
            }
            _ => {
                if let Err(e) = self.file.append(frames) {
                    return Err(self.undo(e));
                }
                self.len += frames.len() as u64;
                self.written = self.len;
                Ok(self.len)
            }
        }
    }

    fn undo(&mut self, e: io::Error) -> AppendError {
        let err = Error::io(format!("appending to {}", self.path.display()), e);
        match self.file.set_len(self.written) {
            Ok(()) => AppendError::Clean(err),
            Err(e2) => AppendError::Poisoned(format!(
                "{err}; cutting the partial write back to {} bytes also failed: {e2}",
                self.written
            )),
        }
    }

    /// Writes out the `none`-mode buffer.
    pub(crate) fn flush_buffer(&mut self) -> Result<(), AppendError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.append(&self.buf) {
            // The buffered commits were already acknowledged in `none` mode; keep them
            // buffered (they stay visible) and report.
            return Err(self.undo(e));
        }
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// A failed append.
pub(crate) enum AppendError {
    /// Nothing of the failed write remains; the WAL is as before.
    Clean(Error),
    /// The file may hold a partial frame: refuse further writes.
    Poisoned(String),
}

impl From<AppendError> for Error {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Clean(e) => e,
            AppendError::Poisoned(s) => Error::Poisoned(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_parses_its_names_and_refuses_others_in_plain_words() {
        for d in [Durability::Fsync, Durability::Flush, Durability::None] {
            assert_eq!(Durability::parse(d.name()).unwrap(), d);
        }
        let e = Durability::parse("bogus").unwrap_err().to_string();
        assert!(e.contains(r#""fsync", "flush" or "none""#), "{e}");
        assert!(
            !e.contains(":fsync"),
            "no Ruby Symbol syntax in the core: {e}"
        );
    }

    fn frames(bodies: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in bodies {
            let s = begin_frame(&mut out);
            out.extend_from_slice(b);
            end_frame(&mut out, s).unwrap();
        }
        out
    }

    #[test]
    fn clean_scan() {
        let buf = frames(&[b"\x91\x01", b"\x91\x02"]);
        let (f, end) = scan(&buf, 0);
        assert_eq!(f.len(), 2);
        assert!(matches!(end, ScanEnd::Clean));
    }

    #[test]
    fn torn_tail_at_every_cut() {
        let buf = frames(&[b"\x91\x01", b"\x92\x02\x03"]);
        let first_end = 10;
        for cut in first_end + 1..buf.len() {
            let (f, end) = scan(&buf[..cut], 0);
            assert_eq!(f.len(), 1, "cut {cut}");
            match end {
                ScanEnd::TornTail { offset, bytes } => {
                    assert_eq!(offset, first_end as u64);
                    assert_eq!(bytes, (cut - first_end) as u64);
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn damage_before_valid_frame_is_corruption() {
        // Bodies that start like fact records (the search past damage looks for those).
        let body = |i: u8| {
            let mut b = vec![0x92, 0x01, 0x9a, 0xc4, 0x10];
            b.extend_from_slice(&[i; 16]);
            b
        };
        let (a, b, c) = (body(1), body(2), body(3));
        let mut buf = frames(&[&a, &b, &c]);
        let second = a.len() + FRAME_OVERHEAD;
        buf[second + 6] ^= 0xff; // inside the second body
        let (f, end) = scan(&buf, 0);
        assert_eq!(f.len(), 1);
        match end {
            ScanEnd::Corrupt { offset, .. } => assert_eq!(offset, second as u64),
            other => panic!("{other:?}"),
        }
        // The same damage in the last frame is a torn tail.
        let mut buf = frames(&[&a, &b]);
        buf[second + 6] ^= 0xff;
        assert!(matches!(scan(&buf, 0).1, ScanEnd::TornTail { .. }));
    }

    fn record_like(n: usize, rng: &mut fastrand::Rng) -> Vec<u8> {
        // A batch body: [2, [record...]] whose records hold random bytes.
        let mut b = vec![0x92, 0x02, 0xdd];
        b.extend_from_slice(&(n as u32).to_be_bytes());
        for _ in 0..n {
            b.extend_from_slice(&[0x9a, 0xc4, 0x10]);
            b.extend((0..16).map(|_| rng.u8(..)));
            b.extend_from_slice(&[0xc4, 200]);
            b.extend((0..200).map(|_| rng.u8(..)));
        }
        b
    }

    #[test]
    fn a_torn_multi_megabyte_batch_is_cut_in_linear_time() {
        // Found while testing torn tails: the search for a valid frame after damage
        // checksummed every position whose 4 bytes read as a length that fits, so cutting
        // a torn 64 MB batch took over two minutes (quadratic in the torn bytes).
        let mut rng = fastrand::Rng::with_seed(3);
        let mut buf = frames(&[b"\x91\x01"]);
        let body = record_like(20_000, &mut rng); // ~4.4 MB
        let s = begin_frame(&mut buf);
        buf.extend_from_slice(&body);
        end_frame(&mut buf, s).unwrap();
        buf.truncate(buf.len() / 2);
        CRC_BYTES.with(|c| c.set(0));
        let (f, end) = scan(&buf, 0);
        assert_eq!(f.len(), 1);
        assert!(
            matches!(end, ScanEnd::TornTail { offset: 10, .. }),
            "{end:?}"
        );
        let work = CRC_BYTES.with(|c| c.get());
        assert!(
            work < buf.len() as u64,
            "checksummed {work} bytes for {}",
            buf.len()
        );
    }

    #[test]
    fn crafted_frame_like_tails_exhaust_a_bounded_budget_and_fail_loudly() {
        // Every 10 bytes a candidate frame of 8 MB length whose body looks like ours: the
        // old search would checksum 8 MB at each of ~1.7 million positions.
        let mut buf = frames(&[b"\x91\x01"]);
        let unit = [0x00, 0x80, 0x00, 0x00, 0x92, 0x01, 0x9a, 0xc4, 0x10, 0x00];
        while buf.len() < (17 << 20) {
            buf.extend_from_slice(&unit);
        }
        CRC_BYTES.with(|c| c.set(0));
        let (f, end) = scan(&buf, 0);
        assert_eq!(f.len(), 1);
        match end {
            ScanEnd::Corrupt { offset, reason } => {
                assert_eq!(offset, 10);
                assert!(
                    reason.contains("too many frame-like candidates"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        let work = CRC_BYTES.with(|c| c.get());
        let budget = SEARCH_BUDGET_BASE as u64 + SEARCH_BUDGET_PER_BYTE * buf.len() as u64;
        assert!(work <= budget, "checksummed {work} bytes, budget {budget}");
    }

    #[test]
    fn a_valid_frame_after_damage_is_still_found() {
        let mut rng = fastrand::Rng::with_seed(4);
        let mut buf = frames(&[b"\x91\x01"]);
        let mut next = Vec::new();
        let s = begin_frame(&mut next);
        next.extend_from_slice(&record_like(3, &mut rng));
        end_frame(&mut next, s).unwrap();
        buf.extend((0..5000).map(|_| rng.u8(..)));
        buf.extend_from_slice(&next);
        let (_, end) = scan(&buf, 0);
        assert!(
            matches!(end, ScanEnd::Corrupt { offset: 10, .. }),
            "{end:?}"
        );
    }

    #[test]
    fn a_cut_in_the_preallocated_region_is_physical() {
        // An undo or a failed sync's cut must not leave the cut bytes in reserved space
        // (a later, shorter frame would be followed by the remains of the failed one).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.wal");
        let f = super::super::lock::open_locked(&path, &super::super::fs::OsFileSystem).unwrap();
        f.extent.lock().preallocate = true;
        let a = frames(&[&[0x92, 1, 0xc0][..], &[0x92, 1, 0xc2][..]]);
        f.append(&a).unwrap();
        assert_eq!(f.file.metadata().unwrap().len(), 2 * PREALLOCATE);
        f.set_len(0).unwrap();
        assert_eq!(f.file.metadata().unwrap().len(), 0, "cut physically");
        let b = frames(&[&[0x92, 1, 0xc3][..]]);
        f.append(&b).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..b.len()], &b[..]);
        assert!(
            bytes[b.len()..].iter().all(|&x| x == 0),
            "nothing of the cut frames"
        );
        f.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b);
    }

    #[test]
    fn zero_tail_is_torn() {
        let mut buf = frames(&[b"\x91\x01"]);
        buf.extend_from_slice(&[0u8; 4096]);
        let (f, end) = scan(&buf, 0);
        assert_eq!(f.len(), 1);
        assert!(matches!(end, ScanEnd::TornTail { bytes: 4096, .. }));
    }
}
