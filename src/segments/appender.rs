//! The appending side of a live segment: its file, the bytes of its frames not yet
//! written (`none` durability) or not yet hashed, and the running blake3 of its content.
//!
//! What a commit costs here, by durability mode (the single-WAL store's costs, so that a
//! segmented ledger writes at the same rate):
//! - `fsync`: one write(2) and one fdatasync per commit;
//! - `flush`: one write(2) per commit;
//! - `none`: nothing but a copy into the process: frames wait in memory and are written
//!   once the ledger's segments hold [`WRITE_BUFFER`] bytes in all (see
//!   `SegmentedBackend`), or when the segment is read, sealed, or its handle dropped or
//!   closed. Loss window: what waits, on any crash (as the WAL's 1 MiB buffer).
//!
//! In `fsync` mode the file keeps zero-filled space ahead of its last frame, added
//! [`PREALLOCATE`] bytes at a time (the WAL's preallocation, see `crate::ledger::wal`): a
//! commit then overwrites blocks already part of the file, so its fdatasync flushes data
//! only, instead of also committing a new file size through the file system's journal.
//! Frames are written at the segment's end with pwrite (the file is not opened in append
//! mode). Sealing, closing and dropping the handle cut the zeros off; a crash leaves them,
//! and opening cuts a zero tail without keeping it aside (it holds nothing).
//!
//! The content hash is fed [`HASH_CHUNK`] bytes at a time rather than frame by frame:
//! blake3 hashes long inputs several times faster (SIMD over many 1 KiB chunks) than a
//! stream of 100-byte updates. Only bytes already written are hashed, so a commit whose
//! write fails can be taken back out of the segment.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::ledger::error::{Error, Result};
use crate::ledger::wal::Durability;

/// `none` mode: frames waiting in memory, over all segments of a ledger, are written once
/// they reach this many bytes (the WAL's buffer size).
pub(crate) const WRITE_BUFFER: usize = 1 << 20;
/// Bytes of written frames gathered before they are fed to the hasher.
pub(crate) const HASH_CHUNK: usize = 16 * 1024;
/// Zero-filled space added past a live segment's end at a time (`fsync` mode).
pub(crate) const PREALLOCATE: u64 = 1 << 20;

/// The file of a live segment and its appended bytes.
pub(crate) struct Appender {
    path: PathBuf,
    file: File,
    /// The segment's length: bytes in the file plus bytes waiting to be written.
    len: u64,
    /// The segment's last bytes not yet fed to the hasher; its last `unwritten` bytes are
    /// not in the file yet.
    unhashed: Vec<u8>,
    unwritten: usize,
    /// Facts of the frames not in the file yet.
    unwritten_facts: u64,
    /// Boxed: the hasher's state is 2 KiB.
    hasher: Box<blake3::Hasher>,
    /// The file's length: the written bytes plus preallocated zeros.
    allocated: u64,
    /// Keep zero-filled space ahead (`fsync` mode).
    preallocate: bool,
    /// After a failed preallocation, do not try again before the segment reaches this.
    retry_at: u64,
    /// Cut the zeros off when dropped (not after a simulated crash).
    trim_on_drop: bool,
    /// The process that opened the file (a forked child's copy never touches it).
    pid: u32,
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(not(unix))]
fn write_at(mut file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Seek as _, SeekFrom, Write as _};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(buf)
}

/// Writes zeros over `[from, to)` of `file`.
fn zero_fill(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    static Z: [u8; 64 * 1024] = [0; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = (to - at).min(Z.len() as u64) as usize;
        write_at(file, &Z[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

impl Appender {
    /// An appender over `file` (opened for writing, not in append mode), whose bytes are
    /// exactly `content` (a resumed segment, its zero tail cut; empty for a new one);
    /// `preallocate` in `fsync` mode.
    pub(crate) fn new(path: &Path, file: File, content: &[u8], preallocate: bool) -> Self {
        let mut hasher = Box::new(blake3::Hasher::new());
        hasher.update(content);
        Appender {
            path: path.to_owned(),
            file,
            len: content.len() as u64,
            unhashed: Vec::new(),
            unwritten: 0,
            unwritten_facts: 0,
            hasher,
            allocated: content.len() as u64,
            preallocate,
            retry_at: 0,
            trim_on_drop: true,
            pid: std::process::id(),
        }
    }

    /// Drops the handle the way a crash would: preallocated zeros stay in the file.
    pub(crate) fn crash(mut self) {
        self.trim_on_drop = false;
    }

    /// Writes `buf` at the end of the written bytes, first adding zero-filled space ahead
    /// when preallocating (best effort: on a failure, e.g. a full disk, the frame is
    /// written without it and preallocation is tried again a chunk later).
    fn write_end(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let at = self.written();
        let need = at + buf.len() as u64;
        if self.preallocate && need > self.allocated && at >= self.retry_at {
            let target = need.div_ceil(PREALLOCATE) * PREALLOCATE + PREALLOCATE;
            match zero_fill(&self.file, self.allocated, target) {
                Ok(()) => self.allocated = target,
                Err(_) => {
                    let _ = self.file.set_len(self.allocated);
                    self.retry_at = at + PREALLOCATE;
                }
            }
        }
        write_at(&self.file, buf, at)?;
        self.allocated = self.allocated.max(need);
        Ok(())
    }

    /// The segment's length, written or waiting.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Bytes waiting to be written (`none` mode).
    pub(crate) fn unwritten(&self) -> usize {
        self.unwritten
    }

    /// Facts waiting to be written (`none` mode).
    pub(crate) fn unwritten_facts(&self) -> u64 {
        self.unwritten_facts
    }

    fn written(&self) -> u64 {
        self.len - self.unwritten as u64
    }

    /// Appends one or more complete frames holding `facts` facts, as durable as
    /// `durability` says when it returns. On an error nothing of them remains (in the
    /// file or waiting).
    pub(crate) fn append(
        &mut self,
        frame: &[u8],
        facts: u64,
        durability: Durability,
    ) -> Result<()> {
        if durability == Durability::None {
            self.unhashed.extend_from_slice(frame);
            self.unwritten += frame.len();
            self.unwritten_facts += facts;
            self.len += frame.len() as u64;
            return Ok(());
        }
        // Waiting bytes (a `none`-mode segment being sealed) go first, in order.
        self.write_waiting()?;
        if let Err(e) = self.write_end(frame) {
            return Err(self.cut_back(e, "writing"));
        }
        if durability == Durability::Fsync {
            if let Err(e) = self.file.sync_data() {
                return Err(self.cut_back(e, "syncing"));
            }
        }
        self.len += frame.len() as u64;
        self.unhashed.extend_from_slice(frame);
        if self.unhashed.len() >= HASH_CHUNK {
            self.hash_written();
        }
        Ok(())
    }

    /// Cuts a failed write back to the bytes written before it (no partial frame stays:
    /// a later frame after it would turn a torn tail into corruption).
    fn cut_back(&mut self, e: std::io::Error, doing: &str) -> Error {
        let at = self.written();
        if self.file.set_len(at).is_ok() {
            self.allocated = at;
        }
        Error::io(format!("{doing} {}", self.path.display()), e)
    }

    /// Writes the waiting bytes (`none` mode) with one write(2). On an error they stay
    /// waiting and the file is cut back to what it held.
    pub(crate) fn write_waiting(&mut self) -> Result<()> {
        if self.unwritten == 0 {
            return Ok(());
        }
        let start = self.unhashed.len() - self.unwritten;
        let waiting = std::mem::take(&mut self.unhashed);
        let r = self.write_end(&waiting[start..]);
        self.unhashed = waiting;
        if let Err(e) = r {
            return Err(self.cut_back(e, "writing"));
        }
        self.unwritten = 0;
        self.unwritten_facts = 0;
        if self.unhashed.len() >= HASH_CHUNK {
            self.hash_written();
        }
        Ok(())
    }

    /// Feeds the written, unhashed bytes to the hasher.
    fn hash_written(&mut self) {
        let n = self.unhashed.len() - self.unwritten;
        self.hasher.update(&self.unhashed[..n]);
        self.unhashed.drain(..n);
        if self.unhashed.capacity() > 4 * HASH_CHUNK && self.unhashed.len() < HASH_CHUNK {
            // After a large `none`-mode write: give the memory back.
            self.unhashed.shrink_to(2 * HASH_CHUNK);
        }
    }

    /// Writes what waits, fsyncs the file (data and metadata) and returns the blake3 of
    /// the whole content: what sealing records.
    pub(crate) fn finish(&mut self) -> Result<String> {
        self.write_waiting()?;
        self.trim()
            .map_err(|e| Error::io(format!("trimming {}", self.path.display()), e))?;
        self.file
            .sync_all()
            .map_err(|e| Error::io(format!("syncing {}", self.path.display()), e))?;
        self.hash_written();
        Ok(self.hasher.finalize().to_hex().to_string())
    }
}

impl Appender {
    /// Cuts the preallocated zeros off: the file ends at its last frame.
    fn trim(&mut self) -> std::io::Result<()> {
        if self.allocated > self.len && self.unwritten == 0 {
            self.file.set_len(self.len)?;
            self.allocated = self.len;
        }
        Ok(())
    }
}

impl Drop for Appender {
    /// A handle dropped without sealing still leaves the segment at its exact length
    /// (not after a simulated crash, and not in a forked child: the file is the
    /// parent's).
    fn drop(&mut self) {
        if self.trim_on_drop && self.pid == std::process::id() {
            let _ = self.trim();
        }
    }
}
