//! MessagePack encoding of values and the canonical form behind the value hash.
//!
//! The storage encoding is plain MessagePack with one extension type: a Ruby Symbol is
//! `ext 1` holding its UTF-8 name, so Symbols and Strings (as values and as hash keys)
//! survive a round trip. UTF-8 strings are `str`, binary strings are `bin`, floats are
//! always `float 64`, integers use the shortest form. Maps keep insertion order.
//!
//! The canonical form used for the blake3 value hash is the same encoding with every
//! map's entries sorted by the bytes of their encoded keys, so the hash does not depend on
//! insertion order. When a value's maps are already in canonical order (or it has none)
//! the storage bytes *are* the canonical bytes and are hashed without a second encoding.
//!
//! Decoding never panics and never allocates more than the input justifies: lengths are
//! checked against the bytes that remain, and what is reserved ahead of decoding is
//! capped, so memory grows only with the items actually decoded.

use super::value::{limits, MapKey, Value};

/// The MessagePack extension type used for Symbols.
pub const EXT_SYMBOL: i8 = 1;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type DResult<T> = Result<T, DecodeError>;

fn derr<T>(msg: impl Into<String>) -> DResult<T> {
    Err(DecodeError(msg.into()))
}

// ---------------------------------------------------------------- writing

/// Appends MessagePack `nil`.
pub fn write_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

/// Appends a boolean.
pub fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.push(if b { 0xc3 } else { 0xc2 });
}

/// Appends an integer in its shortest form.
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        if v < 128 {
            out.push(v as u8);
        } else if v <= u8::MAX as i64 {
            out.extend_from_slice(&[0xcc, v as u8]);
        } else if v <= u16::MAX as i64 {
            out.push(0xcd);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v <= u32::MAX as i64 {
            out.push(0xce);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(v as u64).to_be_bytes());
        }
    } else if v >= -32 {
        out.push(v as i8 as u8);
    } else if v >= i8::MIN as i64 {
        out.extend_from_slice(&[0xd0, v as i8 as u8]);
    } else if v >= i16::MIN as i64 {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i32::MIN as i64 {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Appends a 64-bit float. NaN is written in one canonical bit pattern.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    let v = if v.is_nan() { f64::NAN } else { v };
    out.push(0xcb);
    out.extend_from_slice(&v.to_bits().to_be_bytes());
}

fn write_len(
    out: &mut Vec<u8>,
    len: usize,
    fix: Option<(u8, usize)>,
    m8: Option<u8>,
    m16: u8,
    m32: u8,
) {
    match fix {
        Some((base, max)) if len <= max => out.push(base | len as u8),
        _ => {
            if let (Some(m8), true) = (m8, len <= u8::MAX as usize) {
                out.extend_from_slice(&[m8, len as u8]);
            } else if len <= u16::MAX as usize {
                out.push(m16);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(m32);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
        }
    }
}

/// Appends a UTF-8 string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    write_len(out, s.len(), Some((0xa0, 31)), Some(0xd9), 0xda, 0xdb);
    out.extend_from_slice(s.as_bytes());
}

/// Appends a binary string.
pub fn write_bin(out: &mut Vec<u8>, b: &[u8]) {
    write_len(out, b.len(), None, Some(0xc4), 0xc5, 0xc6);
    out.extend_from_slice(b);
}

/// Appends a Symbol (`ext 1`).
pub fn write_sym(out: &mut Vec<u8>, s: &str) {
    write_ext_header(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// The header of a Symbol of `len` bytes (`ext 8/16/32` with type 1).
fn write_ext_header(out: &mut Vec<u8>, len: usize) {
    if len <= u8::MAX as usize {
        out.extend_from_slice(&[0xc7, len as u8]);
    } else if len <= u16::MAX as usize {
        out.push(0xc8);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xc9);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.push(EXT_SYMBOL as u8);
}

/// Appends an array header.
pub fn write_array_len(out: &mut Vec<u8>, len: usize) {
    write_len(out, len, Some((0x90, 15)), None, 0xdc, 0xdd);
}

/// Appends a map header.
pub fn write_map_len(out: &mut Vec<u8>, len: usize) {
    write_len(out, len, Some((0x80, 15)), None, 0xde, 0xdf);
}

/// Appends a map key.
pub fn write_key(out: &mut Vec<u8>, k: &MapKey) {
    match k {
        MapKey::Sym(s) => write_sym(out, s),
        MapKey::Str(s) => write_str(out, s),
        MapKey::Int(i) => write_int(out, *i),
    }
}

/// Appends a value in storage order. Returns true when every map in it was already in
/// canonical key order, i.e. the bytes written are also the canonical bytes.
pub fn write_value(out: &mut Vec<u8>, v: &Value) -> bool {
    match v {
        Value::Nil => write_nil(out),
        Value::Bool(b) => write_bool(out, *b),
        Value::Int(i) => write_int(out, *i),
        Value::Float(f) => write_f64(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::Bin(b) => write_bin(out, b),
        Value::Sym(s) => write_sym(out, s),
        Value::Array(items) => {
            write_array_len(out, items.len());
            let mut canonical = true;
            for item in items {
                canonical &= write_value(out, item);
            }
            return canonical;
        }
        Value::Map(pairs) => {
            write_map_len(out, pairs.len());
            let mut canonical = true;
            let mut prev_key: Option<(usize, usize)> = None;
            for (k, val) in pairs {
                let start = out.len();
                write_key(out, k);
                let end = out.len();
                if let Some((ps, pe)) = prev_key {
                    if out[ps..pe] >= out[start..end] {
                        canonical = false;
                    }
                }
                prev_key = Some((start, end));
                canonical &= write_value(out, val);
            }
            return canonical;
        }
    }
    true
}

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

/// The exact length of [`write_value`]'s output for `v` (so the buffer is allocated once,
/// at its final size).
pub fn encoded_len(v: &Value) -> usize {
    fn len_header(len: usize, fix_max: Option<usize>, has8: bool) -> usize {
        match fix_max {
            Some(max) if len <= max => 1,
            _ if has8 && len <= u8::MAX as usize => 2,
            _ if len <= u16::MAX as usize => 3,
            _ => 5,
        }
    }
    fn int_len(v: i64) -> usize {
        if (-32..128).contains(&v) {
            1
        } else if (i8::MIN as i64..=u8::MAX as i64).contains(&v) {
            2
        } else if (i16::MIN as i64..=u16::MAX as i64).contains(&v) {
            3
        } else if (i32::MIN as i64..=u32::MAX as i64).contains(&v) {
            5
        } else {
            9
        }
    }
    fn sym_len(s: &str) -> usize {
        let n = s.len();
        n + 1
            + if n <= u8::MAX as usize {
                2
            } else if n <= u16::MAX as usize {
                3
            } else {
                5
            }
    }
    match v {
        Value::Nil | Value::Bool(_) => 1,
        Value::Int(i) => int_len(*i),
        Value::Float(_) => 9,
        Value::Str(s) => s.len() + len_header(s.len(), Some(31), true),
        Value::Bin(b) => b.len() + len_header(b.len(), None, true),
        Value::Sym(s) => sym_len(s),
        Value::Array(items) => {
            len_header(items.len(), Some(15), false) + items.iter().map(encoded_len).sum::<usize>()
        }
        Value::Map(pairs) => {
            len_header(pairs.len(), Some(15), false)
                + pairs
                    .iter()
                    .map(|(k, v)| {
                        let kl = match k {
                            MapKey::Sym(s) => sym_len(s),
                            MapKey::Str(s) => s.len() + len_header(s.len(), Some(31), true),
                            MapKey::Int(i) => int_len(*i),
                        };
                        kl + encoded_len(v)
                    })
                    .sum::<usize>()
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
pub(crate) fn hash_checked(bytes: &[u8], canonical: bool) -> [u8; 32] {
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
    let Ok(Head::Map(n)) = r.head() else {
        return None;
    };
    with_scratch(|c| {
        for _ in 0..n {
            c.keys.clear();
            match r.head().ok()? {
                Head::Int(i) => write_int(&mut c.keys, i),
                Head::Str(len) => {
                    let b = r.take(len).ok()?;
                    write_len(&mut c.keys, len, Some((0xa0, 31)), Some(0xd9), 0xda, 0xdb);
                    c.keys.extend_from_slice(b);
                }
                Head::Ext(len) => r.copy_sym(len, &mut c.keys).ok()?,
                _ => return None,
            }
            let start = r.pos;
            r.skip_raw().ok()?;
            if c.keys == key_canon {
                return Some(&bytes[start..r.pos]);
            }
        }
        None
    })
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

/// Decodes one complete value (the whole slice must be that value).
pub fn decode_value(bytes: &[u8]) -> DResult<Value> {
    let mut r = Reader::new(bytes);
    let v = r.read_value(1)?;
    if r.pos != bytes.len() {
        return derr("trailing bytes after value");
    }
    Ok(v)
}

// ---------------------------------------------------------------- reading

/// Most items a container reserves room for before they are decoded. A container's
/// count is checked against the bytes that remain, but every level of a nested value
/// sees nearly the same remaining bytes, so reserving the full count at each level would
/// let a small input reserve (nesting depth × its length × item size) bytes. Beyond this
/// many items, vectors grow as items actually arrive.
const PREALLOCATE_ITEMS: usize = 256;

/// A bounds-checked MessagePack reader over a byte slice.
pub struct Reader<'a> {
    buf: &'a [u8],
    /// Current position.
    pub pos: usize,
}

/// One item of an encoded value, as read by [`Reader::token`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Token<'a> {
    /// `nil`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A UTF-8 string (validated).
    Str(&'a str),
    /// A binary string.
    Bin(&'a [u8]),
    /// A Symbol's name (validated UTF-8).
    Sym(&'a str),
    /// An array of this many items; the items follow.
    Array(usize),
    /// A map of this many entries; key and value of each entry follow.
    Map(usize),
}

/// What a marker byte starts.
enum Head {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(usize),
    Bin(usize),
    Ext(usize),
    Array(usize),
    Map(usize),
}

/// The marker byte this codec's writer uses for a head, i.e. whether bytes that start
/// with `marker` and read as `h` are in the writer's (shortest) form. Only bytes in that
/// form may be hashed as they are; anything else is re-encoded first.
fn is_canonical_head(marker: u8, h: &Head) -> bool {
    fn len_marker(n: usize, fix: Option<(u8, usize)>, m8: Option<u8>, m16: u8, m32: u8) -> u8 {
        match (fix, m8) {
            (Some((base, max)), _) if n <= max => base | n as u8,
            (_, Some(m8)) if n <= u8::MAX as usize => m8,
            _ if n <= u16::MAX as usize => m16,
            _ => m32,
        }
    }
    let expected = match h {
        Head::Nil | Head::Bool(_) => return true,
        Head::Int(v) => match *v {
            0..=127 => *v as u8,
            -32..=-1 => *v as i8 as u8,
            128..=0xff => 0xcc,
            0x100..=0xffff => 0xcd,
            0x1_0000..=0xffff_ffff => 0xce,
            0x1_0000_0000.. => 0xcf,
            -128..=-33 => 0xd0,
            -32768..=-129 => 0xd1,
            -2147483648..=-32769 => 0xd2,
            _ => 0xd3,
        },
        Head::Float(f) => {
            return marker == 0xcb && (!f.is_nan() || f.to_bits() == f64::NAN.to_bits())
        }
        Head::Str(n) => len_marker(*n, Some((0xa0, 31)), Some(0xd9), 0xda, 0xdb),
        Head::Bin(n) => len_marker(*n, None, Some(0xc4), 0xc5, 0xc6),
        Head::Ext(n) => len_marker(*n, None, Some(0xc7), 0xc8, 0xc9),
        Head::Array(n) => len_marker(*n, Some((0x90, 15)), None, 0xdc, 0xdd),
        Head::Map(n) => len_marker(*n, Some((0x80, 15)), None, 0xde, 0xdf),
    };
    marker == expected
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    #[inline]
    fn take(&mut self, n: usize) -> DResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.short(n));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> DResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> DResult<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> DResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> DResult<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// The error for a read of `n` bytes past the end (kept out of the hot paths).
    #[cold]
    #[inline(never)]
    fn short(&self, n: usize) -> DecodeError {
        DecodeError(format!(
            "needs {n} bytes at offset {} but only {} remain",
            self.pos,
            self.remaining()
        ))
    }

    /// The next item's header. Single-byte markers are decoded inline; the rest (and
    /// every error) by [`Reader::head_full`].
    #[inline]
    fn head(&mut self) -> DResult<Head> {
        let Some(&m) = self.buf.get(self.pos) else {
            return Err(self.short(1));
        };
        let h = match m {
            0x00..=0x7f => Head::Int(m as i64),
            0x80..=0x8f => Head::Map((m & 0x0f) as usize),
            0x90..=0x9f => Head::Array((m & 0x0f) as usize),
            0xa0..=0xbf => Head::Str((m & 0x1f) as usize),
            0xc0 => Head::Nil,
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xe0..=0xff => Head::Int(m as i8 as i64),
            // bin 8, ext 8, str 8: a one-byte length
            0xc4 | 0xc7 | 0xd9 if self.pos + 1 < self.buf.len() => {
                let n = self.buf[self.pos + 1] as usize;
                self.pos += 2;
                return Ok(match m {
                    0xc4 => Head::Bin(n),
                    0xc7 => Head::Ext(n),
                    _ => Head::Str(n),
                });
            }
            0xcb if self.pos + 8 < self.buf.len() => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&self.buf[self.pos + 1..self.pos + 9]);
                self.pos += 9;
                return Ok(Head::Float(f64::from_bits(u64::from_be_bytes(a))));
            }
            _ => return self.head_full(),
        };
        self.pos += 1;
        Ok(h)
    }

    fn head_full(&mut self) -> DResult<Head> {
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => Head::Int(m as i64),
            0x80..=0x8f => Head::Map((m & 0x0f) as usize),
            0x90..=0x9f => Head::Array((m & 0x0f) as usize),
            0xa0..=0xbf => Head::Str((m & 0x1f) as usize),
            0xc0 => Head::Nil,
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xc4 => Head::Bin(self.u8()? as usize),
            0xc5 => Head::Bin(self.u16()? as usize),
            0xc6 => Head::Bin(self.u32()? as usize),
            0xc7 => Head::Ext(self.u8()? as usize),
            0xc8 => Head::Ext(self.u16()? as usize),
            0xc9 => Head::Ext(self.u32()? as usize),
            0xca => Head::Float(f32::from_bits(self.u32()?) as f64),
            0xcb => Head::Float(f64::from_bits(self.u64()?)),
            0xcc => Head::Int(self.u8()? as i64),
            0xcd => Head::Int(self.u16()? as i64),
            0xce => Head::Int(self.u32()? as i64),
            0xcf => {
                let v = self.u64()?;
                if v > i64::MAX as u64 {
                    return derr(format!("integer {v} is out of the 64-bit signed range"));
                }
                Head::Int(v as i64)
            }
            0xd0 => Head::Int(self.u8()? as i8 as i64),
            0xd1 => Head::Int(self.u16()? as i16 as i64),
            0xd2 => Head::Int(self.u32()? as i32 as i64),
            0xd3 => Head::Int(self.u64()? as i64),
            0xd4 => Head::Ext(1),
            0xd5 => Head::Ext(2),
            0xd6 => Head::Ext(4),
            0xd7 => Head::Ext(8),
            0xd8 => Head::Ext(16),
            0xd9 => Head::Str(self.u8()? as usize),
            0xda => Head::Str(self.u16()? as usize),
            0xdb => Head::Str(self.u32()? as usize),
            0xdc => Head::Array(self.u16()? as usize),
            0xdd => Head::Array(self.u32()? as usize),
            0xde => Head::Map(self.u16()? as usize),
            0xdf => Head::Map(self.u32()? as usize),
            0xe0..=0xff => Head::Int(m as i8 as i64),
            0xc1 => return derr(format!("invalid marker 0xc1 at offset {}", self.pos - 1)),
        })
    }

    fn utf8(&mut self, len: usize, what: &str) -> DResult<&'a str> {
        let at = self.pos;
        let b = self.take(len)?;
        std::str::from_utf8(b)
            .map_err(|_| DecodeError(format!("{what} at offset {at} is not valid UTF-8")))
    }

    fn ext_symbol(&mut self, len: usize) -> DResult<&'a str> {
        let t = self.u8()? as i8;
        if t != EXT_SYMBOL {
            return derr(format!(
                "unknown extension type {t} at offset {}",
                self.pos - 1
            ));
        }
        self.utf8(len, "symbol")
    }

    /// Checks that a container of `n` items could fit in what remains (each item takes at
    /// least `min_item` bytes), so a forged length cannot make us reserve memory.
    fn check_count(&self, n: usize, min_item: usize) -> DResult<()> {
        if n.saturating_mul(min_item) > self.remaining() {
            return derr(format!(
                "container of {n} items at offset {} exceeds the {} bytes that remain",
                self.pos,
                self.remaining()
            ));
        }
        Ok(())
    }

    /// Reads a full value.
    pub fn read_value(&mut self, depth: usize) -> DResult<Value> {
        if depth > limits::MAX_DEPTH {
            return derr(format!(
                "value nests deeper than {} levels",
                limits::MAX_DEPTH
            ));
        }
        Ok(match self.head()? {
            Head::Nil => Value::Nil,
            Head::Bool(b) => Value::Bool(b),
            Head::Int(i) => Value::Int(i),
            Head::Float(f) => Value::Float(f),
            Head::Str(n) => Value::Str(self.utf8(n, "string")?.to_owned()),
            Head::Bin(n) => Value::Bin(self.take(n)?.to_vec()),
            Head::Ext(n) => Value::Sym(self.ext_symbol(n)?.to_owned()),
            Head::Array(n) => {
                self.check_count(n, 1)?;
                let mut items = Vec::with_capacity(n.min(PREALLOCATE_ITEMS));
                for _ in 0..n {
                    items.push(self.read_value(depth + 1)?);
                }
                Value::Array(items)
            }
            Head::Map(n) => {
                self.check_count(n, 2)?;
                let mut pairs = Vec::with_capacity(n.min(PREALLOCATE_ITEMS));
                for _ in 0..n {
                    let k = self.read_key()?;
                    let v = self.read_value(depth + 1)?;
                    pairs.push((k, v));
                }
                Value::Map(pairs)
            }
        })
    }

    /// Reads a map key.
    pub fn read_key(&mut self) -> DResult<MapKey> {
        let at = self.pos;
        Ok(match self.head()? {
            Head::Int(i) => MapKey::Int(i),
            Head::Str(n) => MapKey::Str(self.utf8(n, "string key")?.to_owned()),
            Head::Ext(n) => MapKey::Sym(self.ext_symbol(n)?.to_owned()),
            _ => {
                return derr(format!(
                    "hash key at offset {at} is not a Symbol, String or Integer"
                ))
            }
        })
    }

    /// Reads the next item as a [`Token`] without allocating: scalars and strings whole
    /// (borrowed from the input), arrays and maps as their lengths, whose items (for maps:
    /// key, value, key, value...) follow. For decoders that build another representation
    /// directly (the Ruby extension builds Ruby objects), skipping the [`Value`] tree.
    pub fn token(&mut self) -> DResult<Token<'a>> {
        Ok(match self.head()? {
            Head::Nil => Token::Nil,
            Head::Bool(b) => Token::Bool(b),
            Head::Int(i) => Token::Int(i),
            Head::Float(f) => Token::Float(f),
            Head::Str(n) => Token::Str(self.utf8(n, "string")?),
            Head::Bin(n) => Token::Bin(self.take(n)?),
            Head::Ext(n) => Token::Sym(self.ext_symbol(n)?),
            Head::Array(n) => {
                self.check_count(n, 1)?;
                Token::Array(n)
            }
            Head::Map(n) => {
                self.check_count(n, 2)?;
                Token::Map(n)
            }
        })
    }

    /// Validates and skips one value without building it. Returns true when the bytes
    /// are canonical: every map in key order and every item in the writer's shortest form
    /// (so hashing them as they are gives the value's hash).
    pub fn skip_value(&mut self, depth: usize) -> DResult<bool> {
        if depth > limits::MAX_DEPTH {
            return derr(format!(
                "value nests deeper than {} levels",
                limits::MAX_DEPTH
            ));
        }
        let marker = self.buf.get(self.pos).copied().unwrap_or(0);
        let head = self.head()?;
        let minimal = is_canonical_head(marker, &head);
        match head {
            Head::Nil | Head::Bool(_) | Head::Int(_) | Head::Float(_) => Ok(minimal),
            Head::Str(n) => self.utf8(n, "string").map(|_| minimal),
            Head::Bin(n) => self.take(n).map(|_| minimal),
            Head::Ext(n) => self.ext_symbol(n).map(|_| minimal),
            Head::Array(n) => {
                self.check_count(n, 1)?;
                let mut canonical = minimal;
                for _ in 0..n {
                    canonical &= self.skip_value(depth + 1)?;
                }
                Ok(canonical)
            }
            Head::Map(n) => {
                self.check_count(n, 2)?;
                let mut canonical = minimal;
                let mut ordered = true;
                let mut keys_minimal = true;
                let mut keys_start = None;
                let mut prev: Option<&'a [u8]> = None;
                for _ in 0..n {
                    let start = self.pos;
                    keys_start.get_or_insert(start);
                    keys_minimal &= self.read_key_skip()?;
                    let kb = &self.buf[start..self.pos];
                    if let Some(p) = prev {
                        if p >= kb {
                            ordered = false;
                        }
                    }
                    prev = Some(kb);
                    canonical &= self.skip_value(depth + 1)?;
                }
                if !ordered || !keys_minimal {
                    // Keys in the writer's form and in strictly ascending byte order
                    // cannot repeat; others are checked (one key can have several
                    // encodings, 63 as `0x3f` and as `0xcc 0x3f`), so no stored map can
                    // hold a key twice (the write path refuses that).
                    self.check_unique_keys(keys_start.unwrap_or(self.pos), n)?;
                }
                Ok(canonical && keys_minimal && ordered)
            }
        }
    }

    /// Re-reads the `n` entries of an already validated map starting at `from` and fails
    /// if a key (compared as a key, whatever its encoded form) appears twice.
    fn check_unique_keys(&self, from: usize, n: usize) -> DResult<()> {
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum K<'b> {
            Int(i64),
            Str(&'b [u8]),
            Sym(&'b [u8]),
        }
        let mut r = Reader {
            buf: self.buf,
            pos: from,
        };
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            keys.push(match r.head()? {
                Head::Int(i) => K::Int(i),
                Head::Str(len) => K::Str(r.take(len)?),
                Head::Ext(len) => K::Sym(r.take(len + 1)?),
                _ => return derr("hash key is not a Symbol, String or Integer"),
            });
            r.skip_raw()?;
        }
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return derr(format!("a map at offset {from} has the same key twice"));
        }
        Ok(())
    }

    /// Validates and skips a map key; true when it is in the writer's form.
    fn read_key_skip(&mut self) -> DResult<bool> {
        let at = self.pos;
        let marker = self.buf.get(self.pos).copied().unwrap_or(0);
        let head = self.head()?;
        let minimal = is_canonical_head(marker, &head);
        match head {
            Head::Int(_) => Ok(minimal),
            Head::Str(n) => self.utf8(n, "string key").map(|_| minimal),
            Head::Ext(n) => self.ext_symbol(n).map(|_| minimal),
            _ => derr(format!(
                "hash key at offset {at} is not a Symbol, String or Integer"
            )),
        }
    }

    /// Reads an array header.
    pub fn read_array_len(&mut self) -> DResult<usize> {
        let at = self.pos;
        match self.head()? {
            Head::Array(n) => {
                self.check_count(n, 1)?;
                Ok(n)
            }
            _ => derr(format!("expected an array at offset {at}")),
        }
    }

    /// Reads a map header.
    pub fn read_map_len(&mut self) -> DResult<usize> {
        let at = self.pos;
        match self.head()? {
            Head::Map(n) => {
                self.check_count(n, 2)?;
                Ok(n)
            }
            _ => derr(format!("expected a map at offset {at}")),
        }
    }

    /// Reads an integer.
    pub fn read_int(&mut self) -> DResult<i64> {
        let at = self.pos;
        match self.head()? {
            Head::Int(i) => Ok(i),
            _ => derr(format!("expected an integer at offset {at}")),
        }
    }

    /// Reads a UTF-8 string.
    pub fn read_str(&mut self) -> DResult<&'a str> {
        let at = self.pos;
        match self.head()? {
            Head::Str(n) => self.utf8(n, "string"),
            _ => derr(format!("expected a string at offset {at}")),
        }
    }

    /// Reads a binary string.
    pub fn read_bin(&mut self) -> DResult<&'a [u8]> {
        let at = self.pos;
        match self.head()? {
            Head::Bin(n) => self.take(n),
            _ => derr(format!("expected binary at offset {at}")),
        }
    }

    /// True (and consumed) if the next item is nil.
    pub fn read_nil(&mut self) -> DResult<bool> {
        if self.pos < self.buf.len() && self.buf[self.pos] == 0xc0 {
            self.pos += 1;
            Ok(true)
        } else if self.pos >= self.buf.len() {
            derr("unexpected end of data")
        } else {
            Ok(false)
        }
    }

    /// Reads a float (f32 or f64).
    pub fn read_f64(&mut self) -> DResult<f64> {
        let at = self.pos;
        match self.head()? {
            Head::Float(f) => Ok(f),
            _ => derr(format!("expected a float at offset {at}")),
        }
    }

    /// Skips one value and returns its raw bytes.
    pub fn raw_value(&mut self) -> DResult<&'a [u8]> {
        Ok(self.raw_value_canonical()?.0)
    }

    /// Skips (validating) one value; returns its raw bytes and whether its maps are in
    /// canonical order.
    pub fn raw_value_canonical(&mut self) -> DResult<(&'a [u8], bool)> {
        let start = self.pos;
        let canonical = self.skip_value(1)?;
        Ok((&self.buf[start..self.pos], canonical))
    }

    /// The next byte, not consumed.
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Skips one well-formed value without validating its contents (its bytes were
    /// validated before).
    fn skip_raw(&mut self) -> DResult<()> {
        match self.head()? {
            Head::Nil | Head::Bool(_) | Head::Int(_) | Head::Float(_) => {}
            Head::Str(n) | Head::Bin(n) => {
                self.take(n)?;
            }
            Head::Ext(n) => {
                self.take(n + 1)?;
            }
            Head::Array(n) => {
                self.check_count(n, 1)?;
                for _ in 0..n {
                    self.skip_raw()?;
                }
            }
            Head::Map(n) => {
                self.check_count(n, 2)?;
                for _ in 0..2 * n {
                    self.skip_raw()?;
                }
            }
        }
        Ok(())
    }

    /// Appends the Symbol in an ext payload of `len` bytes, normalized.
    fn copy_sym(&mut self, len: usize, out: &mut Vec<u8>) -> DResult<()> {
        let t = self.u8()? as i8;
        if t != EXT_SYMBOL {
            return derr(format!("unknown extension type {t}"));
        }
        let b = self.take(len)?;
        write_ext_header(out, len);
        out.extend_from_slice(b);
        Ok(())
    }

    /// Appends the canonical encoding of the (validated) value at the reader: what
    /// `write_canonical(decode_value(..))` writes — scalars and headers normalized to
    /// their shortest form, every map's entries sorted (stably) by their encoded keys.
    fn canonical_into(
        &mut self,
        out: &mut Vec<u8>,
        keys: &mut Vec<u8>,
        entries: &mut Vec<(usize, usize, usize, usize)>,
    ) -> DResult<()> {
        match self.head()? {
            Head::Nil => write_nil(out),
            Head::Bool(b) => write_bool(out, b),
            Head::Int(i) => write_int(out, i),
            Head::Float(f) => write_f64(out, f),
            Head::Str(n) => {
                let b = self.take(n)?;
                write_len(out, n, Some((0xa0, 31)), Some(0xd9), 0xda, 0xdb);
                out.extend_from_slice(b);
            }
            Head::Bin(n) => write_bin(out, self.take(n)?),
            Head::Ext(n) => self.copy_sym(n, out)?,
            Head::Array(n) => {
                self.check_count(n, 1)?;
                write_array_len(out, n);
                for _ in 0..n {
                    self.canonical_into(out, keys, entries)?;
                }
            }
            Head::Map(n) => {
                self.check_count(n, 2)?;
                write_map_len(out, n);
                let (kbase, ebase) = (keys.len(), entries.len());
                for _ in 0..n {
                    let ks = keys.len();
                    match self.head()? {
                        Head::Int(i) => write_int(keys, i),
                        Head::Str(len) => {
                            let b = self.take(len)?;
                            write_len(keys, len, Some((0xa0, 31)), Some(0xd9), 0xda, 0xdb);
                            keys.extend_from_slice(b);
                        }
                        Head::Ext(len) => self.copy_sym(len, keys)?,
                        _ => return derr("hash key is not a Symbol, String or Integer"),
                    }
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
                    let mut sub = Reader {
                        buf: &self.buf[..ve],
                        pos: vs,
                    };
                    sub.canonical_into(out, keys, entries)?;
                }
                keys.truncate(kbase);
                entries.truncate(ebase);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        Value::map([
            (MapKey::sym("title"), Value::from("Buy milk")),
            (MapKey::str("title"), Value::sym("open")),
            (MapKey::Int(-7), Value::Bin(vec![0, 255, 3])),
            (
                MapKey::sym("nested"),
                Value::array([
                    Value::Nil,
                    Value::Bool(true),
                    Value::Int(i64::MIN),
                    Value::Int(i64::MAX),
                    Value::Float(-0.5),
                    Value::Float(f64::INFINITY),
                ]),
            ),
        ])
    }

    #[test]
    fn round_trip_is_type_faithful() {
        let v = sample();
        let e = encode_value(&v);
        let back = decode_value(&e.bytes).unwrap();
        assert_eq!(back, v);
        // Order is kept, not just equality.
        if let (Value::Map(a), Value::Map(b)) = (&back, &v) {
            let ka: Vec<_> = a.iter().map(|p| &p.0).collect();
            let kb: Vec<_> = b.iter().map(|p| &p.0).collect();
            assert_eq!(ka, kb);
        }
    }

    #[test]
    fn hash_ignores_insertion_order_but_not_types() {
        let a = Value::map([
            (MapKey::sym("a"), Value::Int(1)),
            (MapKey::sym("b"), Value::Int(2)),
        ]);
        let b = Value::map([
            (MapKey::sym("b"), Value::Int(2)),
            (MapKey::sym("a"), Value::Int(1)),
        ]);
        let c = Value::map([
            (MapKey::str("a"), Value::Int(1)),
            (MapKey::sym("b"), Value::Int(2)),
        ]);
        let ha = encode_value(&a).hash;
        assert_eq!(ha, encode_value(&b).hash);
        assert_ne!(ha, encode_value(&c).hash);
        assert_eq!(hash_encoded(&encode_value(&b).bytes).unwrap(), ha);
    }

    /// The hash as defined: blake3 over `write_canonical` of the decoded value.
    fn reference_hash(bytes: &[u8]) -> [u8; 32] {
        let v = decode_value(bytes).unwrap();
        let mut c = Vec::new();
        write_canonical(&mut c, &v);
        *blake3::hash(&c).as_bytes()
    }

    fn arb_key() -> impl proptest::strategy::Strategy<Value = MapKey> {
        use proptest::prelude::*;
        prop_oneof![
            "[a-d]{0,3}".prop_map(MapKey::Sym),
            "[a-d]{0,3}".prop_map(MapKey::Str),
            (-300i64..300).prop_map(MapKey::Int),
        ]
    }

    fn arb_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            (-1000i64..1000).prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
            "[a-zé]{0,40}".prop_map(Value::Str),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bin),
            "[a-z]{0,300}".prop_map(Value::Sym),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((arb_key(), inner), 0..20).prop_map(|pairs| {
                    // Unique keys, in whatever order they came.
                    let mut seen = Vec::new();
                    Value::Map(
                        pairs
                            .into_iter()
                            .filter(|(k, _)| {
                                let fresh = !seen.contains(k);
                                seen.push(k.clone());
                                fresh
                            })
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn fast_hashing_matches_the_definition(v in arb_value()) {
            let e = encode_value(&v);
            let mut plain = Vec::new();
            write_value(&mut plain, &v);
            proptest::prop_assert_eq!(&plain, &e.bytes);
            proptest::prop_assert_eq!(encoded_len(&v), e.bytes.len());
            proptest::prop_assert_eq!(e.bytes.capacity(), e.bytes.len());
            let want = reference_hash(&e.bytes);
            proptest::prop_assert_eq!(e.hash, want);
            proptest::prop_assert_eq!(hash_encoded(&e.bytes).unwrap(), want);
        }
    }

    proptest::proptest! {
        #[test]
        fn map_field_finds_what_decoding_finds(v in arb_value(), k in arb_key()) {
            let e = encode_value(&v);
            let mut kb = Vec::new();
            write_key(&mut kb, &k);
            let want = v.get(&k).map(|x| encode_value(x).bytes);
            let got = map_field(&e.bytes, &kb).map(<[u8]>::to_vec);
            proptest::prop_assert_eq!(got, want);
            let mut canon = Vec::new();
            proptest::prop_assert!(canonical_of_encoded(&e.bytes, &mut canon));
            let mut want = Vec::new();
            write_canonical(&mut want, &v);
            proptest::prop_assert_eq!(canon, want);
        }
    }

    #[test]
    fn hashing_normalizes_non_minimal_encodings_like_decoding_does() {
        // {"b" => 1 (as int64), :a => 1.5 (as float32), "c" => [sym "x" as fixext1]} —
        // out of canonical order, with non-shortest forms.
        let mut b = vec![0x83];
        b.extend_from_slice(&[0xd9, 1, b'b', 0xd3, 0, 0, 0, 0, 0, 0, 0, 1]);
        b.extend_from_slice(&[0xd4, 1, b'a']); // fixext1 symbol key :a ... then value
        b.extend_from_slice(&[0xca]);
        b.extend_from_slice(&1.5f32.to_bits().to_be_bytes());
        b.extend_from_slice(&[0xa1, b'c', 0x91, 0xd4, 1, b'x']);
        assert_eq!(hash_encoded(&b).unwrap(), reference_hash(&b));
        // Field look-up normalizes keys the same way: :a written as fixext 1 is found.
        let mut ka = Vec::new();
        write_key(&mut ka, &MapKey::sym("a"));
        let raw = map_field(&b, &ka).unwrap();
        assert_eq!(decode_value(raw).unwrap(), Value::Float(1.5));
        let mut kb = Vec::new();
        write_key(&mut kb, &MapKey::str("b"));
        let mut canon = Vec::new();
        assert!(canonical_of_encoded(
            map_field(&b, &kb).unwrap(),
            &mut canon
        ));
        assert_eq!(canon, [1]);
    }

    #[test]
    fn forged_lengths_do_not_allocate() {
        // array32 claiming 4 billion items with 0 bytes behind it
        let bytes = [0xdd, 0xff, 0xff, 0xff, 0xff];
        assert!(decode_value(&bytes).is_err());
        let bytes = [0xdb, 0xff, 0xff, 0xff, 0xff];
        assert!(decode_value(&bytes).is_err());
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let bytes = [0xa2, 0xff, 0xfe];
        let e = decode_value(&bytes).unwrap_err();
        assert!(e.0.contains("UTF-8"), "{e}");
    }

    #[test]
    fn stored_bytes_in_any_form_hash_as_their_value() {
        // Found by the fuzzer: bytes that decode to a value but are not in this writer's
        // shortest form used to be hashed as they were, giving the same value two hashes.
        let cases: &[(&[u8], Value)] = &[
            (&[0xcf, 0, 0, 0, 0, 0, 0, 0, 1], Value::Int(1)),
            (&[0xd0, 0x05], Value::Int(5)),
            (&[0xca, 0x3f, 0x80, 0, 0], Value::Float(1.0)),
            (
                &[0xcb, 0xff, 0xf0, 0xff, 0xff, 0, 0, 0, 0],
                Value::Float(f64::NAN),
            ),
            (&[0xd9, 0x01, b'a'], Value::from("a")),
            (&[0xd4, 0x01, b'a'], Value::sym("a")),
            (&[0xdc, 0x00, 0x01, 0xc0], Value::array([Value::Nil])),
            (
                &[0xde, 0x00, 0x01, 0xd0, 0x01, 0xc0],
                Value::map([(MapKey::Int(1), Value::Nil)]),
            ),
        ];
        for (bytes, v) in cases {
            assert_eq!(
                hash_encoded(bytes).unwrap(),
                encode_value(v).hash,
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn stored_duplicate_keys_in_different_encodings_are_refused() {
        // Found by libFuzzer (target value): {63 => 127, 63 => 123} with the second 63
        // written as uint8 is in ascending byte order, which used to skip the check.
        let bytes = [0x82, 0x3f, 0x7f, 0xcc, 0x3f, 0x7b];
        let mut r = Reader::new(&bytes);
        assert!(r.skip_value(1).is_err());
        assert!(hash_encoded(&bytes).is_err());
        // The same for a symbol as ext8 and as fixext1.
        let bytes = [0x82, 0xc7, 0x01, 0x01, b'a', 0xc0, 0xd4, 0x01, b'a', 0xc0];
        assert!(Reader::new(&bytes).skip_value(1).is_err());
    }

    #[test]
    fn stored_duplicate_keys_are_refused() {
        let bytes = [0x82, 0xa1, b'a', 0x01, 0xa1, b'a', 0x02];
        assert!(
            decode_value(&bytes).is_ok(),
            "decoding alone does not judge"
        );
        let e = hash_encoded(&bytes).unwrap_err();
        assert!(e.0.contains("twice"), "{e}");
    }

    #[test]
    fn every_int_width_round_trips() {
        for v in [
            0,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            u32::MAX as i64,
            u32::MAX as i64 + 1,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32768,
            -32769,
            i32::MIN as i64,
            i32::MIN as i64 - 1,
        ] {
            let e = encode_value(&Value::Int(v));
            assert_eq!(decode_value(&e.bytes).unwrap(), Value::Int(v), "{v}");
        }
    }

    /// Rebuilds a value from tokens alone: the token stream carries everything.
    fn from_tokens(r: &mut Reader<'_>) -> Value {
        match r.token().unwrap() {
            Token::Nil => Value::Nil,
            Token::Bool(b) => Value::Bool(b),
            Token::Int(i) => Value::Int(i),
            Token::Float(f) => Value::Float(f),
            Token::Str(s) => Value::from(s),
            Token::Bin(b) => Value::Bin(b.to_vec()),
            Token::Sym(s) => Value::sym(s),
            Token::Array(n) => Value::Array((0..n).map(|_| from_tokens(r)).collect()),
            Token::Map(n) => Value::Map(
                (0..n)
                    .map(|_| {
                        let k = MapKey::from_value(&from_tokens(r)).unwrap();
                        (k, from_tokens(r))
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn tokens_describe_the_whole_value() {
        let v = sample();
        let e = encode_value(&v);
        let mut r = Reader::new(&e.bytes);
        assert_eq!(from_tokens(&mut r), v);
        assert_eq!(r.remaining(), 0);
        let mut forged = Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert!(
            forged.token().is_err(),
            "lengths are checked against the input"
        );
    }
}
