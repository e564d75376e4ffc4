//! The canonical form and the value hash.
//!
//! A value's hash is blake3 over its canonical encoding: the storage encoding with every
//! map's entries sorted by the bytes of their encoded keys, so the hash does not depend on
//! insertion order. When the stored bytes are already canonical they are hashed as they
//! are; otherwise the maps are re-ordered byte-wise (no [`Value`] is built) using
//! per-thread scratch space, so hashing allocates nothing in the common case.

use super::read::{Item, Reader};
use super::write::{
    encoded_len, write_array_len, write_bin, write_bool, write_f64, write_int, write_key,
    write_map_len, write_nil, write_str_header, write_sym_header, write_value,
};
use super::{decode_value, derr, DResult};
use crate::ledger::value::{MapKey, Value};

/// Appends the canonical encoding of a value (maps sorted by encoded key bytes).
pub fn write_canonical(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Array(items) => {
            write_array_len(out, items.len());
            for item in items {
                write_canonical(out, item);
            }
        }
        Value::Map(pairs) => {
            write_map_len(out, pairs.len());
            let mut entries: Vec<(Vec<u8>, &Value)> = pairs
                .iter()
                .map(|(k, val)| {
                    let mut kb = Vec::with_capacity(16);
                    write_key(&mut kb, k);
                    (kb, val)
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (kb, val) in entries {
                out.extend_from_slice(&kb);
                write_canonical(out, val);
            }
        }
        other => {
            write_value(out, other);
        }
    }
}

/// Storage bytes of a value together with its blake3 hash.
pub struct EncodedValue {
    /// MessagePack bytes in insertion order.
    pub bytes: Vec<u8>,
    /// blake3 of the canonical encoding.
    pub hash: [u8; 32],
}

/// Encodes a value for storage and hashes its canonical form.
pub fn encode_value(v: &Value) -> EncodedValue {
    let mut bytes = Vec::with_capacity(encoded_len(v));
    let hash = match v {
        Value::Map(pairs) if pairs.len() > 1 => encode_map_hashed(&mut bytes, v, pairs),
        _ => {
            if write_value(&mut bytes, v) {
                *blake3::hash(&bytes).as_bytes()
            } else {
                canonical_hash(v)
            }
        }
    };
    EncodedValue { bytes, hash }
}

/// Writes a top-level map (as [`write_value`] does) and returns its value hash. When
/// only the top level is out of canonical order — the usual case: a record whose fields
/// are not in encoded-key order — the canonical form is the written entries re-ordered,
/// so nothing is encoded twice.
fn encode_map_hashed(bytes: &mut Vec<u8>, v: &Value, pairs: &[(MapKey, Value)]) -> [u8; 32] {
    with_scratch(|c| {
        write_map_len(bytes, pairs.len());
        let header = bytes.len();
        let mut in_order = true;
        let mut inner_canonical = true;
        for (k, val) in pairs {
            let ks = bytes.len();
            write_key(bytes, k);
            let ke = bytes.len();
            if let Some(&(ps, pe, _, _)) = c.entries.last() {
                if bytes[ps..pe] >= bytes[ks..ke] {
                    in_order = false;
                }
            }
            inner_canonical &= write_value(bytes, val);
            c.entries.push((ks, ke, bytes.len(), 0));
        }
        if !inner_canonical {
            c.entries.clear();
            canonical_value(&mut c.out, v, &mut c.keys, &mut c.entries);
            return *blake3::hash(&c.out).as_bytes();
        }
        if in_order {
            return *blake3::hash(bytes).as_bytes();
        }
        {
            let b: &[u8] = bytes;
            c.entries.sort_by(|x, y| b[x.0..x.1].cmp(&b[y.0..y.1]));
        }
        c.out.extend_from_slice(&bytes[..header]);
        for &(ks, _, ee, _) in &c.entries {
            c.out.extend_from_slice(&bytes[ks..ee]);
        }
        *blake3::hash(&c.out).as_bytes()
    })
}

/// blake3 of `v`'s canonical encoding.
fn canonical_hash(v: &Value) -> [u8; 32] {
    with_scratch(|c| {
        canonical_value(&mut c.out, v, &mut c.keys, &mut c.entries);
        *blake3::hash(&c.out).as_bytes()
    })
}

/// [`write_canonical`] with reusable scratch space instead of a buffer per map key.
fn canonical_value(
    out: &mut Vec<u8>,
    v: &Value,
    keys: &mut Vec<u8>,
    entries: &mut Vec<(usize, usize, usize, usize)>,
) {
    match v {
        Value::Array(items) => {
            write_array_len(out, items.len());
            for item in items {
                canonical_value(out, item, keys, entries);
            }
        }
        Value::Map(pairs) => {
            write_map_len(out, pairs.len());
            let (kbase, ebase) = (keys.len(), entries.len());
            for (i, (k, _)) in pairs.iter().enumerate() {
                let ks = keys.len();
                write_key(keys, k);
                entries.push((ks, keys.len(), i, 0));
            }
            {
                let kb: &[u8] = keys;
                entries[ebase..].sort_by(|a, b| kb[a.0..a.1].cmp(&kb[b.0..b.1]));
            }
            for e in ebase..ebase + pairs.len() {
                let (ks, ke, i, _) = entries[e];
                out.extend_from_slice(&keys[ks..ke]);
                canonical_value(out, &pairs[i].1, keys, entries);
            }
            keys.truncate(kbase);
            entries.truncate(ebase);
        }
        other => {
            write_value(out, other);
        }
    }
}

/// The value hash of already-encoded storage bytes.
pub fn hash_encoded(bytes: &[u8]) -> DResult<[u8; 32]> {
    let mut r = Reader::new(bytes);
    let canonical = r.skip_value(1)?;
    if r.pos != bytes.len() {
        return derr("trailing bytes after value");
    }
    Ok(hash_checked(bytes, canonical))
}

/// The value hash of stored value bytes (validated when they were written or loaded).
pub(crate) fn hash_stored(bytes: &[u8]) -> [u8; 32] {
    let mut r = Reader::new(bytes);
    let canonical = r.skip_value(1).unwrap_or(false);
    hash_checked(bytes, canonical)
}

/// The value hash of bytes that [`Reader::skip_value`] has validated and classified.
fn hash_checked(bytes: &[u8], canonical: bool) -> [u8; 32] {
    if canonical {
        *blake3::hash(bytes).as_bytes()
    } else {
        hash_noncanonical(bytes).unwrap_or_else(|| {
            // Unreachable for validated bytes; decoding says the same thing the slow way.
            let v = decode_value(bytes).unwrap_or_default();
            let mut c = Vec::with_capacity(bytes.len());
            write_canonical(&mut c, &v);
            *blake3::hash(&c).as_bytes()
        })
    }
}

/// Scratch space for re-ordering maps (reused per thread, so hashing allocates nothing).
#[derive(Default)]
struct CanonScratch {
    out: Vec<u8>,
    keys: Vec<u8>,
    /// (key start, key end, value start, value end) per map entry being re-ordered.
    entries: Vec<(usize, usize, usize, usize)>,
}

thread_local! {
    static CANON: std::cell::RefCell<CanonScratch> = std::cell::RefCell::new(CanonScratch::default());
}

/// blake3 of the canonical form of well-formed encoded bytes, re-ordering their maps
/// byte-wise (no `Value` is built). None if the bytes are not well formed.
fn hash_noncanonical(bytes: &[u8]) -> Option<[u8; 32]> {
    with_scratch(|c| {
        let mut r = Reader::new(bytes);
        r.canonical_into(&mut c.out, &mut c.keys, &mut c.entries)
            .ok()?;
        if r.pos != bytes.len() {
            return None;
        }
        Some(*blake3::hash(&c.out).as_bytes())
    })
}

/// Runs `f` with this thread's (cleared) canonicalization scratch space.
fn with_scratch<T>(f: impl FnOnce(&mut CanonScratch) -> T) -> T {
    CANON.with(|c| {
        let mut c = c.borrow_mut();
        let c = &mut *c;
        c.out.clear();
        c.keys.clear();
        c.entries.clear();
        let r = f(c);
        if c.out.capacity() > 1 << 20 || c.keys.capacity() > 1 << 20 {
            // Do not keep a huge buffer alive after one huge value.
            *c = CanonScratch::default();
        }
        r
    })
}

/// The raw bytes of the value under a key in the top-level map of well-formed encoded
/// bytes — the first entry whose key, normalized, equals `key_canon` (a key as
/// [`write_key`] writes it) — without decoding anything else. None if the bytes are not a
/// map or have no such key: what `decode_value(bytes)?.get(key)` finds, as bytes.
pub(crate) fn map_field<'a>(bytes: &'a [u8], key_canon: &[u8]) -> Option<&'a [u8]> {
    let mut r = Reader::new(bytes);
    let Ok(Item::Map(n)) = r.item() else {
        return None;
    };
    with_scratch(|c| {
        for _ in 0..n {
            c.keys.clear();
            write_key_item(&mut c.keys, r.item().ok()?).ok()?;
            let start = r.pos;
            r.skip_raw().ok()?;
            if c.keys == key_canon {
                return Some(&bytes[start..r.pos]);
            }
        }
        None
    })
}

/// Appends a map key read from encoded bytes as [`write_key`] writes it (the shortest
/// form); an error if the item cannot be a key.
fn write_key_item(out: &mut Vec<u8>, item: Item<'_>) -> DResult<()> {
    match item {
        Item::Int(i) => write_int(out, i),
        Item::Str(b) => {
            write_str_header(out, b.len());
            out.extend_from_slice(b);
        }
        Item::Sym(b) => {
            write_sym_header(out, b.len());
            out.extend_from_slice(b);
        }
        _ => return derr("hash key is not a Symbol, String or Integer"),
    }
    Ok(())
}

/// Appends the canonical encoding of well-formed encoded bytes (what
/// `write_canonical(&decode_value(bytes)?)` writes). False if they are not well formed.
pub(crate) fn canonical_of_encoded(bytes: &[u8], out: &mut Vec<u8>) -> bool {
    with_scratch(|c| {
        let mut r = Reader::new(bytes);
        r.canonical_into(&mut c.out, &mut c.keys, &mut c.entries)
            .is_ok()
            && r.pos == bytes.len()
            && {
                out.extend_from_slice(&c.out);
                true
            }
    })
}

impl<'a> Reader<'a> {
    /// Appends the canonical encoding of the (validated) value at the reader: what
    /// `write_canonical(decode_value(..))` writes — scalars and headers normalized to
    /// their shortest form, every map's entries sorted (stably) by their encoded keys.
    fn canonical_into(
        &mut self,
        out: &mut Vec<u8>,
        keys: &mut Vec<u8>,
        entries: &mut Vec<(usize, usize, usize, usize)>,
    ) -> DResult<()> {
        match self.item()? {
            Item::Nil => write_nil(out),
            Item::Bool(b) => write_bool(out, b),
            Item::Int(i) => write_int(out, i),
            Item::Float(f) => write_f64(out, f),
            Item::Bin(b) => write_bin(out, b),
            key @ (Item::Str(_) | Item::Sym(_)) => write_key_item(out, key)?,
            Item::Array(n) => {
                write_array_len(out, n);
                for _ in 0..n {
                    self.canonical_into(out, keys, entries)?;
                }
            }
            Item::Map(n) => {
                write_map_len(out, n);
                let (kbase, ebase) = (keys.len(), entries.len());
                for _ in 0..n {
                    let ks = keys.len();
                    write_key_item(keys, self.item()?)?;
                    let vs = self.pos;
                    self.skip_raw()?;
                    entries.push((ks, keys.len(), vs, self.pos));
                }
                {
                    let kb: &[u8] = keys;
                    entries[ebase..].sort_by(|a, b| kb[a.0..a.1].cmp(&kb[b.0..b.1]));
                }
                for i in ebase..ebase + n {
                    let (ks, ke, vs, ve) = entries[i];
                    out.extend_from_slice(&keys[ks..ke]);
                    let mut sub = Reader::at(&self.buf[..ve], vs);
                    sub.canonical_into(out, keys, entries)?;
                }
                keys.truncate(kbase);
                entries.truncate(ebase);
            }
        }
        Ok(())
    }
}
