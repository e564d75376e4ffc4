//! Snapshots: every fact up to a WAL position, in one file, so reopening reads the
//! snapshot and then only the WAL after that position.
//!
//! File `<wal>.snap`: a header frame (MessagePack map: `format`, `version`, `fact_count`,
//! `wal_offset`, `wal_tail_crc`, `written_at`) then frames `[3, [record, ...]]` of up to
//! 1,024 fact records each, in commit order. `wal_tail_crc` is the CRC of the WAL frame
//! that ends at `wal_offset`; it ties the snapshot to the WAL it was taken from, so a
//! snapshot beside a different or shortened WAL is detected and ignored.
//!
//! Written to `<wal>.snap.tmp`, fsynced, renamed over `<wal>.snap`, then the directory is
//! fsynced: a crash at any point leaves either the old snapshot or the new one, and a
//! failure at any step removes the temporary file.

use std::path::{Path, PathBuf};

use super::codec::{self, Reader};
use super::error::{Error, Result};
use super::fact::{decode_record, encode_record, Fact, Interner};
use super::fs::{parent_dir, FileSystem};
use super::time::Timestamp;
use super::wal::{self, TAG_CHUNK};
use crate::changefeed::sequence::Sequences;

const FORMAT: &str = "igniter-ledger-snapshot";
const VERSION: i64 = 1;
const CHUNK: usize = 1024;

/// The snapshot path for a WAL path.
pub fn snapshot_path(wal: &Path) -> PathBuf {
    let mut s = wal.as_os_str().to_owned();
    s.push(".snap");
    PathBuf::from(s)
}

/// The temporary path a snapshot is written to before the rename.
pub fn snapshot_tmp_path(wal: &Path) -> PathBuf {
    let mut s = wal.as_os_str().to_owned();
    s.push(".snap.tmp");
    PathBuf::from(s)
}

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub fact_count: u64,
    pub wal_offset: u64,
    pub wal_tail_crc: u32,
    pub written_at: i64,
}

fn encode_header(h: &Header, seqs: &Sequences, out: &mut Vec<u8>) {
    codec::write_map_len(out, if seqs.is_plain() { 6 } else { 7 });
    codec::write_str(out, "format");
    codec::write_str(out, FORMAT);
    codec::write_str(out, "version");
    codec::write_int(out, VERSION);
    codec::write_str(out, "fact_count");
    codec::write_int(out, h.fact_count as i64);
    codec::write_str(out, "wal_offset");
    codec::write_int(out, h.wal_offset as i64);
    codec::write_str(out, "wal_tail_crc");
    codec::write_int(out, h.wal_tail_crc as i64);
    codec::write_str(out, "written_at");
    codec::write_int(out, h.written_at);
    if !seqs.is_plain() {
        // Only a rewritten log has one (older readers skip the unknown key).
        codec::write_str(out, "sequences");
        seqs.encode(out);
    }
}

fn decode_header(body: &[u8]) -> Result<(Header, Sequences), String> {
    let mut r = Reader::new(body);
    let n = r.read_map_len().map_err(|e| e.0)?;
    let mut h = Header {
        fact_count: 0,
        wal_offset: 0,
        wal_tail_crc: 0,
        written_at: 0,
    };
    let mut format_ok = false;
    let mut seqs = Sequences::default();
    for _ in 0..n {
        let k = r.read_str().map_err(|e| e.0)?;
        match k {
            "format" => format_ok = r.read_str().map_err(|e| e.0)? == FORMAT,
            "version" => {
                let v = r.read_int().map_err(|e| e.0)?;
                if v != VERSION {
                    return Err(format!("snapshot version {v} is not supported"));
                }
            }
            "fact_count" => h.fact_count = r.read_int().map_err(|e| e.0)?.max(0) as u64,
            "wal_offset" => h.wal_offset = r.read_int().map_err(|e| e.0)?.max(0) as u64,
            "wal_tail_crc" => h.wal_tail_crc = r.read_int().map_err(|e| e.0)? as u32,
            "written_at" => h.written_at = r.read_int().map_err(|e| e.0)?,
            "sequences" => seqs = Sequences::decode(&mut r).map_err(|e| e.0)?,
            _ => {
                r.raw_value().map_err(|e| e.0)?;
            }
        }
    }
    if !format_ok {
        return Err("header does not name the igniter-ledger snapshot format".into());
    }
    Ok((h, seqs))
}

/// What `checkpoint` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointReport {
    /// The snapshot file.
    pub path: PathBuf,
    /// Facts written into it.
    pub fact_count: u64,
    /// WAL bytes the snapshot covers (reopen replays only what follows).
    pub wal_offset: u64,
    /// Size of the snapshot file.
    pub bytes: u64,
}

/// Writes a snapshot atomically (tmp, fsync, rename, directory fsync) through `fs`.
/// Every error path removes the temporary file, so a failed checkpoint (a full disk,
/// say) leaves no partial `.snap.tmp` taking the space the WAL needs.
pub(crate) fn write(
    fs: &dyn FileSystem,
    wal_path: &Path,
    facts: &[Fact],
    seqs: &Sequences,
    wal_offset: u64,
    wal_tail_crc: u32,
) -> Result<CheckpointReport> {
    let tmp = snapshot_tmp_path(wal_path);
    let dest = snapshot_path(wal_path);
    let res =
        write_tmp(fs, &tmp, facts, seqs, wal_offset, wal_tail_crc).and_then(|(header, bytes)| {
            fs.rename(&tmp, &dest).map_err(|e| {
                Error::io(
                    format!("renaming {} to {}", tmp.display(), dest.display()),
                    e,
                )
            })?;
            Ok((header, bytes))
        });
    let (header, bytes) = match res {
        Ok(r) => r,
        Err(e) => {
            // Best effort: the error being reported matters more than a failed removal
            // (which the next open also retries).
            let _ = fs.remove_file(&tmp);
            return Err(e);
        }
    };
    let dir = parent_dir(&dest);
    fs.sync_dir(dir)
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))?;
    Ok(CheckpointReport {
        path: dest,
        fact_count: header.fact_count,
        wal_offset,
        bytes,
    })
}

/// Writes and fsyncs the temporary snapshot file; returns its header and size.
fn write_tmp(
    fs: &dyn FileSystem,
    tmp: &Path,
    facts: &[Fact],
    seqs: &Sequences,
    wal_offset: u64,
    wal_tail_crc: u32,
) -> Result<(Header, u64)> {
    let ctx = |what: &str| format!("{what} {}", tmp.display());
    let mut file = fs.create(tmp).map_err(|e| Error::io(ctx("creating"), e))?;
    let header = Header {
        fact_count: facts.len() as u64,
        wal_offset,
        wal_tail_crc,
        written_at: Timestamp::now().as_micros(),
    };
    let mut buf = Vec::with_capacity(1 << 20);
    let s = wal::begin_frame(&mut buf);
    encode_header(&header, seqs, &mut buf);
    wal::end_frame(&mut buf, s)?;
    let mut bytes = 0u64;
    for chunk in facts.chunks(CHUNK) {
        let s = wal::begin_frame(&mut buf);
        codec::write_array_len(&mut buf, 2);
        codec::write_int(&mut buf, TAG_CHUNK);
        codec::write_array_len(&mut buf, chunk.len());
        for f in chunk {
            encode_record(&mut buf, f);
        }
        wal::end_frame(&mut buf, s)?;
        if buf.len() >= 1 << 20 {
            file.write_all(&buf)
                .map_err(|e| Error::io(ctx("writing"), e))?;
            bytes += buf.len() as u64;
            buf.clear();
        }
    }
    file.write_all(&buf)
        .map_err(|e| Error::io(ctx("writing"), e))?;
    bytes += buf.len() as u64;
    file.sync_all().map_err(|e| Error::io(ctx("syncing"), e))?;
    Ok((header, bytes))
}

/// A snapshot read back.
pub(crate) enum Loaded {
    /// Our format.
    Native {
        header: Header,
        facts: Vec<Fact>,
        /// The changefeed sequences of `facts` (plain unless the log was rewritten).
        sequences: Sequences,
    },
    /// The 0.5.2 Ruby format (JSON frames): facts to merge with the whole WAL by id.
    Legacy {
        facts: Vec<Fact>,
        dropped_causations: usize,
    },
}

/// Reads and fully validates a snapshot. Errors are reasons to ignore it.
pub(crate) fn read(bytes: &[u8], intern: &mut dyn Interner) -> Result<Loaded, String> {
    let (frames, end) = wal::scan(bytes, 0);
    match end {
        wal::ScanEnd::Clean => {}
        wal::ScanEnd::TornTail { offset, .. } => {
            return Err(format!("incomplete frame at offset {offset}"))
        }
        wal::ScanEnd::Corrupt { reason, .. } => return Err(reason),
    }
    let Some(first) = frames.first() else {
        return Err("empty snapshot".into());
    };
    let head = &bytes[first.body.0..first.body.1];
    if head.first() == Some(&b'{') {
        return read_legacy(bytes, &frames, intern);
    }
    let (header, sequences) = decode_header(head)?;
    // The header's count is untrusted: reserve no more than the file could hold (a
    // record takes well over 16 bytes).
    let mut facts = Vec::with_capacity(header.fact_count.min(bytes.len() as u64 / 16) as usize);
    for f in &frames[1..] {
        let mut r = Reader::new(&bytes[f.body.0..f.body.1]);
        let chunk = (|| {
            if r.read_array_len()? != 2 || r.read_int()? != TAG_CHUNK {
                return Err(codec::DecodeError("not a fact chunk".into()));
            }
            let n = r.read_array_len()?;
            for _ in 0..n {
                facts.push(decode_record(&mut r, intern)?);
            }
            if r.remaining() != 0 {
                return Err(codec::DecodeError("trailing bytes in chunk".into()));
            }
            Ok(())
        })();
        chunk.map_err(|e| format!("chunk at offset {}: {e}", f.offset))?;
    }
    if facts.len() as u64 != header.fact_count {
        return Err(format!(
            "header promises {} facts, found {}",
            header.fact_count,
            facts.len()
        ));
    }
    Ok(Loaded::Native {
        header,
        facts,
        sequences,
    })
}

fn read_legacy(
    bytes: &[u8],
    frames: &[wal::FrameRef],
    intern: &mut dyn Interner,
) -> Result<Loaded, String> {
    use super::import::{decode_json, JsonBody};
    let mut facts = Vec::new();
    let mut dropped = 0;
    let mut promised = None;
    for f in frames {
        match decode_json(&bytes[f.body.0..f.body.1], intern)
            .map_err(|e| format!("frame at offset {}: {e}", f.offset))?
        {
            JsonBody::SnapshotHeader { fact_count } => promised = Some(fact_count),
            JsonBody::Fact {
                fact,
                dropped_causation,
            } => {
                dropped += dropped_causation as usize;
                facts.push(fact);
            }
        }
    }
    if let Some(n) = promised {
        if n != facts.len() as u64 {
            return Err(format!(
                "0.5.2 snapshot header promises {n} facts, found {}",
                facts.len()
            ));
        }
    }
    Ok(Loaded::Legacy {
        facts,
        dropped_causations: dropped,
    })
}
