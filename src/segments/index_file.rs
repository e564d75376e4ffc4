//! The per-segment index file (`segment-NNNNNN.wal.index`), written when a segment is
//! sealed, so that opening a ledger builds its in-memory indexes without decoding a
//! single value.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! "IGLSIDX1"                            magic, 8 bytes
//! u64 fact_count, u64 segment byte size, [32] segment blake3
//! u32 key_count, u64 key section bytes
//! key section: key_count × (u32 len, UTF-8 bytes)      the segment's distinct keys
//! entries: fact_count × 80 bytes, in file order:
//!   [16] id, i64 tx micros, u32 key ordinal, u32 record number in its frame,
//!   u64 frame offset, u32 frame length (header and CRC included), u32 reserved,
//!   [32] blake3 value hash
//! [32] blake3 of everything above
//! ```
//!
//! The file binds itself to its segment (size and blake3, which the manifest also
//! records) and to its own bytes (the trailing blake3). It is written aside, fsynced,
//! renamed into place and the directory fsynced, before the manifest: a crash leaves
//! either no index (the segment is unsealed, and sealed again at the next open) or a
//! complete one. An index that is missing, damaged or disagrees with its manifest is
//! ignored: the segment is then decoded in full, as before indexes existed, and a fresh
//! index is written for it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value as Json};
use uuid::Uuid;

use super::codec::decode_frame_body;
use super::values::{FrameCache, Located, SegmentValues};
use crate::ledger::error::{Error, Result};
use crate::ledger::fact::{value_hash_of, Body, Fact, FactData};
use crate::ledger::fs::FileSystem;
use crate::ledger::index::State;
use crate::ledger::time::Timestamp;
use crate::ledger::wal::{self, ScanEnd};

/// Suffix of a sealed segment's index file (`segment-000001.wal.index`).
pub const INDEX_SUFFIX: &str = ".index";

const MAGIC: &[u8; 8] = b"IGLSIDX1";
/// Bytes of one entry.
pub(crate) const ENTRY_LEN: usize = 80;
const HEADER_LEN: usize = 8 + 8 + 8 + 32 + 4 + 8;

/// One fact's entry.
pub(crate) struct Entry {
    pub(crate) id: Uuid,
    pub(crate) tx: i64,
    pub(crate) key: u32,
    pub(crate) in_frame: u32,
    pub(crate) frame_off: u64,
    pub(crate) frame_len: u32,
    pub(crate) value_hash: [u8; 32],
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Entry {
    /// Parses one entry (`b` is `ENTRY_LEN` bytes).
    pub(crate) fn parse(b: &[u8; ENTRY_LEN]) -> Entry {
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[0..16]);
        let mut value_hash = [0u8; 32];
        value_hash.copy_from_slice(&b[48..80]);
        Entry {
            id: Uuid::from_bytes(id),
            tx: u64_at(b, 16) as i64,
            key: u32_at(b, 24),
            in_frame: u32_at(b, 28),
            frame_off: u64_at(b, 32),
            frame_len: u32_at(b, 40),
            value_hash,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.tx.to_le_bytes());
        out.extend_from_slice(&self.key.to_le_bytes());
        out.extend_from_slice(&self.in_frame.to_le_bytes());
        out.extend_from_slice(&self.frame_off.to_le_bytes());
        out.extend_from_slice(&self.frame_len.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.value_hash);
    }
}

/// The index file of a segment.
pub(crate) fn index_path(segment: &Path) -> PathBuf {
    let mut s = segment.as_os_str().to_owned();
    s.push(INDEX_SUFFIX);
    PathBuf::from(s)
}

/// Builds the index of a segment written by one of our codecs from its bytes; None for
/// a segment that does not decode cleanly or is not ours (0.5.2 codecs stay resident).
pub(crate) fn build(bytes: &[u8]) -> Option<Vec<u8>> {
    let (frames, end) = wal::scan(bytes, 0);
    if !matches!(end, ScanEnd::Clean) {
        return None;
    }
    let mut keys: HashMap<Arc<str>, u32> = HashMap::new();
    let mut key_list: Vec<Arc<str>> = Vec::new();
    let mut entries = Vec::new();
    let mut state = State::default();
    let mut count = 0u64;
    for fr in &frames {
        let body = &bytes[fr.body.0..fr.body.1];
        if body.first() == Some(&b'{') {
            return None;
        }
        let facts = decode_frame_body(body, &mut state).ok()?;
        let frame_len = u32::try_from(fr.end - fr.offset).ok()?;
        for (i, f) in facts.iter().enumerate() {
            let Body::Resident(r) = &f.0.body else {
                return None;
            };
            let next = key_list.len() as u32;
            let k = *keys.entry(f.key_arc().clone()).or_insert_with(|| {
                key_list.push(f.key_arc().clone());
                next
            });
            Entry {
                id: f.id(),
                tx: f.transaction_time().as_micros(),
                key: k,
                in_frame: u32::try_from(i).ok()?,
                frame_off: fr.offset,
                frame_len,
                value_hash: value_hash_of(&r.value),
            }
            .write(&mut entries);
            count += 1;
        }
    }
    let mut ks = Vec::new();
    for k in &key_list {
        ks.extend_from_slice(&(k.len() as u32).to_le_bytes());
        ks.extend_from_slice(k.as_bytes());
    }
    let mut out = Vec::with_capacity(HEADER_LEN + ks.len() + entries.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(blake3::hash(bytes).as_bytes());
    out.extend_from_slice(&(key_list.len() as u32).to_le_bytes());
    out.extend_from_slice(&(ks.len() as u64).to_le_bytes());
    out.extend_from_slice(&ks);
    out.extend_from_slice(&entries);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    Some(out)
}

/// Writes the index of the segment at `segment` (whose bytes are `bytes`) crash-safely:
/// aside, fsync, rename, fsync the directory. Ok(false) when the segment has no index
/// (not ours, or not clean).
pub(crate) fn write(fs: &dyn FileSystem, segment: &Path, bytes: &[u8]) -> Result<bool> {
    let Some(idx) = build(bytes) else {
        return Ok(false);
    };
    let path = index_path(segment);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    crate::ledger::fs::write_new_file(fs, &tmp, &idx)
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    if let Err(e) = fs.rename(&tmp, &path) {
        let _ = fs.remove_file(&tmp);
        return Err(Error::io(format!("renaming {}", tmp.display()), e));
    }
    let dir = crate::ledger::fs::parent_dir(&path);
    fs.sync_dir(dir)
        .map_err(|e| Error::io(format!("syncing {}", dir.display()), e))?;
    Ok(true)
}

/// What a valid index says, checked against its manifest.
pub(crate) struct Loaded {
    count: u64,
    keys: Vec<Arc<str>>,
    entries_at: usize,
    bytes: Vec<u8>,
}

/// Whether the index of `segment` looks right for its manifest, from its header and
/// length alone (open uses it to skip decoding the segment; [`read`] checks the whole
/// file when the facts are loaded, and a segment whose index fails that is decoded and
/// checked then).
pub(crate) fn plausible(segment: &Path, manifest: &Map<String, Json>) -> bool {
    use std::io::Read as _;
    let path = index_path(segment);
    let Ok(mut f) = std::fs::File::open(&path) else {
        return false;
    };
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return false;
    };
    let mut h = [0u8; HEADER_LEN];
    if f.read_exact(&mut h).is_err() || &h[..8] != MAGIC {
        return false;
    }
    let (count, size) = (u64_at(&h, 8), u64_at(&h, 16));
    let seg_hash = blake3::Hash::from_bytes(h[24..56].try_into().unwrap_or([0; 32]));
    let want = (HEADER_LEN as u64 + 32)
        .checked_add(u64_at(&h, 60))
        .and_then(|n| n.checked_add(count.checked_mul(ENTRY_LEN as u64)?));
    want == Some(len)
        && manifest.get("fact_count").and_then(Json::as_u64) == Some(count)
        && manifest.get("byte_size").and_then(Json::as_u64) == Some(size)
        && manifest.get("blake3").and_then(Json::as_str) == Some(seg_hash.to_hex().as_str())
}

/// Reads and checks the index of `segment` against the segment's manifest: its own
/// blake3, the fact count, the byte size and the blake3 of the segment. None when it is
/// missing or disagrees (the caller decodes the segment instead).
pub(crate) fn read(segment: &Path, manifest: &Map<String, Json>) -> Option<Loaded> {
    let bytes = std::fs::read(index_path(segment)).ok()?;
    if bytes.len() < HEADER_LEN + 32 || &bytes[..8] != MAGIC {
        return None;
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let count = u64_at(body, 8);
    let size = u64_at(body, 16);
    let seg_hash = blake3::Hash::from_bytes(body[24..56].try_into().ok()?);
    if manifest.get("fact_count").and_then(Json::as_u64) != Some(count)
        || manifest.get("byte_size").and_then(Json::as_u64) != Some(size)
    {
        return None;
    }
    match manifest.get("blake3").and_then(Json::as_str) {
        Some(h) if h == seg_hash.to_hex().as_str() => {}
        _ => return None,
    }
    let key_count = u32_at(body, 56) as usize;
    let ks_len = usize::try_from(u64_at(body, 60)).ok()?;
    let entries_at = HEADER_LEN.checked_add(ks_len)?;
    let want = entries_at.checked_add(usize::try_from(count).ok()?.checked_mul(ENTRY_LEN)?)?;
    if want != body.len() || count > u32::MAX as u64 {
        return None;
    }
    let mut keys = Vec::with_capacity(key_count.min(ks_len / 4));
    let mut p = HEADER_LEN;
    while p < entries_at {
        if p + 4 > entries_at {
            return None;
        }
        let n = u32_at(body, p) as usize;
        let s = body.get(p + 4..(p + 4).checked_add(n)?)?;
        if p + 4 + n > entries_at {
            return None;
        }
        keys.push(Arc::from(std::str::from_utf8(s).ok()?));
        p += 4 + n;
    }
    if keys.len() != key_count {
        return None;
    }
    Some(Loaded {
        count,
        keys,
        entries_at,
        bytes,
    })
}

/// The located facts of a segment whose index was read: each keeps its id, time and key
/// in memory, its other fields stay in the segment. None when an entry names a key that
/// is not in the key section.
pub(crate) fn located_facts(
    segment: &Path,
    store: Arc<str>,
    idx: Loaded,
    cache: Arc<FrameCache>,
) -> Option<Vec<Fact>> {
    let keys = idx.keys;
    let seg = Arc::new(SegmentValues::new(
        store,
        segment,
        &index_path(segment),
        idx.entries_at as u64,
        idx.count as u32,
        cache,
    ));
    let mut out = Vec::with_capacity(idx.count as usize);
    for i in 0..idx.count as usize {
        let at = idx.entries_at + i * ENTRY_LEN;
        let b: &[u8; ENTRY_LEN] = idx.bytes.get(at..at + ENTRY_LEN)?.try_into().ok()?;
        let e = Entry::parse(b);
        let key = keys.get(e.key as usize)?.clone();
        out.push(Fact(Arc::new(FactData {
            id: e.id,
            tx: Timestamp::from_micros(e.tx),
            key,
            body: Body::Located(Located::new(seg.clone(), i as u32)),
        })));
    }
    Some(out)
}
