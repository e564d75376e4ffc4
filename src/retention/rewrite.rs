//! The durable rewrite: a new WAL generation written aside, fsynced, renamed over the
//! WAL, directory fsynced, with the snapshot removed first so that no snapshot of the old
//! generation can be read beside the new one.
//!
//! Order, and what a crash at each point leaves (reopen shows the state before or after,
//! never a mix):
//! 1. The snapshot removed, directory fsynced. Crash: the old WAL alone holds every fact
//!    of the old state (a checkpoint never truncates the WAL), so it replays to the
//!    state before.
//! 2. `<wal>.rewrite.tmp` written and fsynced. Crash: the old WAL is untouched; the
//!    leftover file is removed on open.
//! 3. The new generation renamed over the WAL, directory fsynced. From the rename on,
//!    the WAL path holds the state after, receipts included (they are frames of the new
//!    generation, so they land in the same rename as the removal).
//!
//! A 0.5.2 Ruby snapshot can hold facts its WAL no longer has, so step 1 would lose
//! them: such a ledger is first rewritten keeping everything, renamed, and only then is
//! its snapshot removed (a crash in between reopens the same facts: snapshot and WAL
//! are merged by id); then it is rewritten for real.
//!
//! Every file operation goes through the ledger's [`FileSystem`] (the same seam as
//! recovery and checkpoints), so tests can fail any of them (a full disk, a failing fsync
//! or rename) and check that the old state stays intact with no file left behind.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::ledger::fs::{parent_dir as dir_of, FileSystem, WrittenFile};

use crate::ledger::codec;
use crate::ledger::error::{Error, Result};
use crate::ledger::fact::{encode_record, Fact};
use crate::ledger::lock::{self, LockedFile};
use crate::ledger::snapshot;
use crate::ledger::wal::{self, TAG_BATCH};

/// Facts per frame of a new generation.
const CHUNK: usize = 1024;
/// Bytes buffered before a write(2).
const WRITE_BUFFER: usize = 1 << 20;

/// Where a new generation is written before its rename.
pub fn rewrite_tmp_path(wal: &Path) -> PathBuf {
    let mut s = wal.as_os_str().to_owned();
    s.push(".rewrite.tmp");
    PathBuf::from(s)
}

/// Removes a generation left aside by a rewrite that did not reach its rename (called
/// on open, before anything is read).
pub(crate) fn remove_stale_rewrite(fs: &dyn FileSystem, wal: &Path) {
    let tmp = rewrite_tmp_path(wal);
    if tmp.exists() && fs.remove_file(&tmp).is_ok() {
        let _ = fs.sync_dir(dir_of(wal));
    }
}

/// A generation written aside and durable, not yet renamed into place.
pub(crate) struct Written {
    file: Box<dyn WrittenFile>,
    tmp: PathBuf,
    /// Its length.
    pub(crate) len: u64,
    /// The CRC of its last frame (0 when empty).
    pub(crate) tail_crc: u32,
}

/// Bytes written to a new generation between two syncs: the device writes back what is
/// already encoded while the rest is being encoded and written, instead of all of it in
/// one sync at the end.
const SYNC_EVERY: u64 = 32 << 20;

/// Frames of a new generation encoded apart from its file (on another thread than the
/// one writing it): frames of up to [`CHUNK`] records, handed out in buffers of at
/// least [`WRITE_BUFFER`] bytes.
pub(crate) struct Frames {
    buf: Vec<u8>,
    tail_crc: u32,
}

impl Frames {
    /// No frames yet.
    pub(crate) fn new() -> Self {
        Frames {
            buf: Vec::with_capacity(WRITE_BUFFER + (WRITE_BUFFER >> 2)),
            tail_crc: 0,
        }
    }

    /// Encodes the changefeed sequence table of the generation (its first frame, before
    /// any fact; see `crate::changefeed::sequence`).
    pub(crate) fn sequences(
        &mut self,
        seqs: &crate::changefeed::sequence::Sequences,
    ) -> Result<()> {
        let s = wal::begin_frame(&mut self.buf);
        codec::write_array_len(&mut self.buf, 2);
        codec::write_int(&mut self.buf, wal::TAG_SEQUENCES);
        seqs.encode(&mut self.buf);
        self.tail_crc = wal::end_frame(&mut self.buf, s)?;
        Ok(())
    }

    /// Encodes facts (commit order).
    pub(crate) fn append<'f>(&mut self, facts: impl Iterator<Item = &'f Fact>) -> Result<()> {
        let mut facts = facts.peekable();
        while facts.peek().is_some() {
            let s = wal::begin_frame(&mut self.buf);
            codec::write_array_len(&mut self.buf, 2);
            codec::write_int(&mut self.buf, TAG_BATCH);
            let chunk: Vec<&Fact> = facts.by_ref().take(CHUNK).collect();
            codec::write_array_len(&mut self.buf, chunk.len());
            for f in chunk {
                encode_record(&mut self.buf, f);
            }
            self.tail_crc = wal::end_frame(&mut self.buf, s)?;
        }
        Ok(())
    }

    /// The encoded bytes, once at least [`WRITE_BUFFER`] of them are buffered.
    pub(crate) fn full(&mut self) -> Option<Vec<u8>> {
        (self.buf.len() >= WRITE_BUFFER).then(|| {
            std::mem::replace(
                &mut self.buf,
                Vec::with_capacity(WRITE_BUFFER + (WRITE_BUFFER >> 2)),
            )
        })
    }

    /// The CRC of the last frame encoded (0 when none).
    pub(crate) fn tail_crc(&self) -> u32 {
        self.tail_crc
    }

    /// The bytes left, and the CRC of the last frame (0 when none).
    pub(crate) fn finish(self) -> (Vec<u8>, u32) {
        (self.buf, self.tail_crc)
    }
}

/// A new generation being written beside the WAL, streaming: frames encoded here (see
/// [`Frames`]) or apart ([`Generation::write_encoded`]), written out every
/// [`WRITE_BUFFER`] bytes and synced every [`SYNC_EVERY`]. Dropped unfinished (an error
/// anywhere), its file is removed.
pub(crate) struct Generation<'a> {
    io: &'a dyn FileSystem,
    file: Option<Box<dyn WrittenFile>>,
    tmp: PathBuf,
    frames: Frames,
    len: u64,
    /// Bytes written since the last sync.
    unsynced: u64,
}

impl<'a> Generation<'a> {
    /// Creates `<wal>.rewrite.tmp`.
    pub(crate) fn create(io: &'a dyn FileSystem, wal: &Path) -> Result<Self> {
        let tmp = rewrite_tmp_path(wal);
        let file = io
            .create(&tmp)
            .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        Ok(Generation {
            io,
            file: Some(file),
            tmp,
            frames: Frames::new(),
            len: 0,
            unsynced: 0,
        })
    }

    /// Writes `bytes` at the end (syncing every [`SYNC_EVERY`] bytes).
    fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.write_all(bytes)
            .map_err(|e| Error::io(format!("writing {}", self.tmp.display()), e))?;
        self.len += bytes.len() as u64;
        self.unsynced += bytes.len() as u64;
        if self.unsynced >= SYNC_EVERY {
            file.sync_all()
                .map_err(|e| Error::io(format!("syncing {}", self.tmp.display()), e))?;
            self.unsynced = 0;
        }
        Ok(())
    }

    fn write_out(&mut self) -> Result<()> {
        let buf = std::mem::take(&mut self.frames.buf);
        let r = self.write_bytes(&buf);
        self.frames.buf = buf;
        self.frames.buf.clear();
        r
    }

    /// Writes frames encoded apart by a [`Frames`] (nothing may be buffered here yet);
    /// `tail_crc` is the CRC of the last of them.
    pub(crate) fn write_encoded(&mut self, bytes: &[u8], tail_crc: u32) -> Result<()> {
        debug_assert!(self.frames.buf.is_empty());
        self.write_bytes(bytes)?;
        self.frames.tail_crc = tail_crc;
        Ok(())
    }

    /// Appends facts (commit order).
    pub(crate) fn append<'f>(&mut self, facts: impl Iterator<Item = &'f Fact>) -> Result<()> {
        let mut facts = facts.peekable();
        while facts.peek().is_some() {
            self.frames.append(facts.by_ref().take(CHUNK))?;
            if self.frames.buf.len() >= WRITE_BUFFER {
                self.write_out()?;
            }
        }
        Ok(())
    }

    /// Writes out what is buffered and fsyncs (so that `finish` later has little left to
    /// sync).
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        if let Some(file) = self.file.as_mut() {
            file.sync_all()
                .map_err(|e| Error::io(format!("syncing {}", self.tmp.display()), e))?;
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Writes out what is buffered and fsyncs.
    pub(crate) fn finish(mut self) -> Result<Written> {
        self.write_out()?;
        let mut file = self.file.take().expect("a generation is finished once");
        if let Err(e) = file.sync_all() {
            drop(file);
            let _ = self.io.remove_file(&self.tmp);
            return Err(Error::io(format!("syncing {}", self.tmp.display()), e));
        }
        Ok(Written {
            file,
            tmp: self.tmp.clone(),
            len: self.len,
            tail_crc: self.frames.tail_crc,
        })
    }
}

impl Drop for Generation<'_> {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            drop(file);
            let _ = self.io.remove_file(&self.tmp);
        }
    }
}

/// Whether the snapshot beside `wal` is in the 0.5.2 Ruby format (which may hold facts
/// the WAL does not).
pub(crate) fn snapshot_is_legacy(wal: &Path) -> bool {
    // The first body byte tells: `{` (JSON) for 0.5.2, MessagePack for ours.
    let mut head = [0u8; 5];
    match File::open(snapshot::snapshot_path(wal)) {
        Ok(mut f) => io::Read::read_exact(&mut f, &mut head).is_ok() && head[4] == b'{',
        Err(_) => false,
    }
}

/// What committing a generation did.
pub(crate) enum Committed {
    /// The new generation is the WAL, durably.
    Durable(LockedFile),
    /// The rename happened but the directory fsync failed: the new generation is the WAL
    /// (so the caller must switch to it), and a power loss may still show the old one.
    RenamedUnsynced(LockedFile, Error),
}

/// Removes the snapshot beside `wal` (if any) and fsyncs the directory: step 1 of the
/// module documentation.
pub(crate) fn remove_snapshot(io: &dyn FileSystem, wal: &Path) -> Result<()> {
    let snap = snapshot::snapshot_path(wal);
    if !snap.exists() {
        return Ok(());
    }
    io.remove_file(&snap)
        .map_err(|e| Error::io(format!("removing {}", snap.display()), e))?;
    io.sync_dir(dir_of(wal))
        .map_err(|e| Error::io(format!("syncing directory {}", dir_of(wal).display()), e))
}

/// Renames a finished generation over the WAL and fsyncs the directory: step 3 of the
/// module documentation. On an error before the rename, the new generation is removed
/// and the old WAL is in place.
pub(crate) fn commit_generation(io: &dyn FileSystem, wal: &Path, w: Written) -> Result<Committed> {
    let dir = dir_of(wal);
    // Locked (and registered) before the rename, so no other handle can take the new
    // WAL between the rename and the switch.
    let tmp = w.tmp.clone();
    let adopted = w
        .file
        .into_file()
        .map_err(|e| Error::io(format!("handing over {}", tmp.display()), e))
        .and_then(|f| lock::adopt(f, &tmp));
    let file = match adopted {
        Ok(f) => f,
        Err(e) => {
            let _ = io.remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = io.rename(&tmp, wal) {
        let e = Error::io(
            format!("renaming {} to {}", tmp.display(), wal.display()),
            e,
        );
        drop(file);
        let _ = io.remove_file(&tmp);
        return Err(e);
    }
    match io.sync_dir(dir) {
        Ok(()) => Ok(Committed::Durable(file)),
        Err(e) => Ok(Committed::RenamedUnsynced(
            file,
            Error::io(format!("syncing directory {}", dir.display()), e),
        )),
    }
}

/// Recovery side files beside `wal` that may hold copies of WAL bytes: `<wal>.corrupt-*`,
/// `<wal>.torn-*` and a leftover `<wal>.snap.tmp`.
pub(crate) fn side_files(wal: &Path) -> Vec<PathBuf> {
    let Some(name) = wal.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let prefixes = [
        format!("{name}.corrupt-"),
        format!("{name}.torn-"),
        format!("{name}.snap.tmp"),
    ];
    let Ok(entries) = std::fs::read_dir(dir_of(wal)) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            prefixes.iter().any(|p| n.starts_with(p.as_str()))
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Removes `files` and fsyncs the directory.
pub(crate) fn remove_files(io: &dyn FileSystem, wal: &Path, files: &[PathBuf]) -> Result<()> {
    for f in files {
        io.remove_file(f)
            .map_err(|e| Error::io(format!("removing {}", f.display()), e))?;
    }
    if !files.is_empty() {
        io.sync_dir(dir_of(wal))
            .map_err(|e| Error::io(format!("syncing directory {}", dir_of(wal).display()), e))?;
    }
    Ok(())
}
