//! Reading and validating: a bounds-checked reader over encoded bytes, in three modes.
//!
//! - **Validating** ([`Reader::skip_value`], [`decode_value`], [`Reader::token`]): for
//!   bytes from disk, the network or a caller. Every length is checked against the bytes
//!   that remain, strings and Symbol names must be UTF-8, map keys must be Symbols,
//!   Strings or Integers and (in `skip_value`) distinct, nesting is bounded.
//! - **Trusted tokens** ([`Reader::trusted_token`]): for bytes the store already
//!   validated (a fact's value). Items come out one at a time without building a
//!   [`Value`] and without validating UTF-8 again; lengths are still bounds-checked, so
//!   even wrong bytes cannot make it panic or over-allocate. The Ruby extension builds
//!   Ruby objects from these tokens.
//! - **Fields** (`read_int`, `read_str`, ...): the record and snapshot decoders read
//!   their fixed layouts item by item.

use super::marker::{self as mk, int_head, ARRAY, BIN, EXT, EXT_SYMBOL, MAP, STR};
use super::{derr, DResult, DecodeError};
use crate::ledger::value::{limits, MapKey, Value};

/// Decodes one complete value (the whole slice must be that value).
pub fn decode_value(bytes: &[u8]) -> DResult<Value> {
    let mut r = Reader::new(bytes);
    let v = r.read_value(1)?;
    if r.pos != bytes.len() {
        return derr("trailing bytes after value");
    }
    Ok(v)
}

/// Most items a container reserves room for before they are decoded. A container's
/// count is checked against the bytes that remain, but every level of a nested value
/// sees nearly the same remaining bytes, so reserving the full count at each level would
/// let a small input reserve (nesting depth × its length × item size) bytes. Beyond this
/// many items, vectors grow as items actually arrive.
const PREALLOCATE_ITEMS: usize = 256;

/// A bounds-checked MessagePack reader over a byte slice.
pub struct Reader<'a> {
    pub(super) buf: &'a [u8],
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

/// One item of bytes the store has already validated, as read by
/// [`Reader::trusted_token`]: a [`Token`] whose strings and Symbol names are bytes (they
/// were validated as UTF-8 when the value was written or loaded).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TrustedToken<'a> {
    /// `nil`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A UTF-8 string's bytes.
    Str(&'a [u8]),
    /// A binary string.
    Bin(&'a [u8]),
    /// A Symbol's name, as UTF-8 bytes.
    Sym(&'a [u8]),
    /// An array of this many items; the items follow.
    Array(usize),
    /// A map of this many entries; key and value of each entry follow.
    Map(usize),
}

/// What a marker byte starts.
pub(super) enum Head {
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

/// Whether bytes that start with `marker` and read as `h` are in the writer's (shortest)
/// form. Only bytes in that form may be hashed as they are; anything else is re-encoded
/// first.
fn is_canonical_head(marker: u8, h: &Head) -> bool {
    let expected = match h {
        Head::Nil | Head::Bool(_) => return true,
        Head::Int(v) => int_head(*v).0,
        Head::Float(f) => {
            return marker == mk::FLOAT64 && (!f.is_nan() || f.to_bits() == f64::NAN.to_bits())
        }
        Head::Str(n) => STR.head(*n).0,
        Head::Bin(n) => BIN.head(*n).0,
        Head::Ext(n) => EXT.head(*n).0,
        Head::Array(n) => ARRAY.head(*n).0,
        Head::Map(n) => MAP.head(*n).0,
    };
    marker == expected
}

/// The header of an item that is its marker byte alone (fix forms, nil, booleans).
#[inline]
fn one_byte_head(m: u8) -> Option<Head> {
    Some(match m {
        0..=mk::POSFIX_LAST => Head::Int(m as i64),
        mk::FIXMAP..=mk::FIXMAP_LAST => Head::Map((m & 0x0f) as usize),
        mk::FIXARRAY..=mk::FIXARRAY_LAST => Head::Array((m & 0x0f) as usize),
        mk::FIXSTR..=mk::FIXSTR_LAST => Head::Str((m & 0x1f) as usize),
        mk::NIL => Head::Nil,
        mk::FALSE => Head::Bool(false),
        mk::TRUE => Head::Bool(true),
        mk::NEGFIX..=0xff => Head::Int(m as i8 as i64),
        _ => return None,
    })
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

    #[inline]
    pub(super) fn take(&mut self, n: usize) -> DResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.short(n));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(super) fn u8(&mut self) -> DResult<u8> {
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

    /// The next item's header. One-byte items and the common short headers are decoded
    /// inline; the rest (and every error) by [`Reader::head_full`].
    #[inline]
    pub(super) fn head(&mut self) -> DResult<Head> {
        let Some(&m) = self.buf.get(self.pos) else {
            return Err(self.short(1));
        };
        if let Some(h) = one_byte_head(m) {
            self.pos += 1;
            return Ok(h);
        }
        match m {
            // bin 8, ext 8, str 8: a one-byte length
            mk::BIN8 | mk::EXT8 | mk::STR8 if self.pos + 1 < self.buf.len() => {
                let n = self.buf[self.pos + 1] as usize;
                self.pos += 2;
                Ok(match m {
                    mk::BIN8 => Head::Bin(n),
                    mk::EXT8 => Head::Ext(n),
                    _ => Head::Str(n),
                })
            }
            mk::FLOAT64 if self.pos + 8 < self.buf.len() => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&self.buf[self.pos + 1..self.pos + 9]);
                self.pos += 9;
                Ok(Head::Float(f64::from_bits(u64::from_be_bytes(a))))
            }
            _ => self.head_full(),
        }
    }

    /// A header whose marker is followed by a length or a payload.
    fn head_full(&mut self) -> DResult<Head> {
        let m = self.u8()?;
        Ok(match m {
            mk::BIN8 => Head::Bin(self.u8()? as usize),
            mk::BIN16 => Head::Bin(self.u16()? as usize),
            mk::BIN32 => Head::Bin(self.u32()? as usize),
            mk::EXT8 => Head::Ext(self.u8()? as usize),
            mk::EXT16 => Head::Ext(self.u16()? as usize),
            mk::EXT32 => Head::Ext(self.u32()? as usize),
            mk::FLOAT32 => Head::Float(f32::from_bits(self.u32()?) as f64),
            mk::FLOAT64 => Head::Float(f64::from_bits(self.u64()?)),
            mk::UINT8 => Head::Int(self.u8()? as i64),
            mk::UINT16 => Head::Int(self.u16()? as i64),
            mk::UINT32 => Head::Int(self.u32()? as i64),
            mk::UINT64 => {
                let v = self.u64()?;
                if v > i64::MAX as u64 {
                    return derr(format!("integer {v} is out of the 64-bit signed range"));
                }
                Head::Int(v as i64)
            }
            mk::INT8 => Head::Int(self.u8()? as i8 as i64),
            mk::INT16 => Head::Int(self.u16()? as i16 as i64),
            mk::INT32 => Head::Int(self.u32()? as i32 as i64),
            mk::INT64 => Head::Int(self.u64()? as i64),
            mk::FIXEXT1 => Head::Ext(1),
            mk::FIXEXT2 => Head::Ext(2),
            mk::FIXEXT4 => Head::Ext(4),
            mk::FIXEXT8 => Head::Ext(8),
            mk::FIXEXT16 => Head::Ext(16),
            mk::STR8 => Head::Str(self.u8()? as usize),
            mk::STR16 => Head::Str(self.u16()? as usize),
            mk::STR32 => Head::Str(self.u32()? as usize),
            mk::ARRAY16 => Head::Array(self.u16()? as usize),
            mk::ARRAY32 => Head::Array(self.u32()? as usize),
            mk::MAP16 => Head::Map(self.u16()? as usize),
            mk::MAP32 => Head::Map(self.u32()? as usize),
            // 0xc1 (never used); the one-byte markers never reach here (see `head`).
            _ => match one_byte_head(m) {
                Some(h) => h,
                None => {
                    return derr(format!(
                        "invalid marker {m:#04x} at offset {}",
                        self.pos - 1
                    ))
                }
            },
        })
    }

    fn utf8(&mut self, len: usize, what: &str) -> DResult<&'a str> {
        let at = self.pos;
        let b = self.take(len)?;
        std::str::from_utf8(b)
            .map_err(|_| DecodeError(format!("{what} at offset {at} is not valid UTF-8")))
    }

    /// Reads an extension's type byte; only the Symbol type is known.
    #[inline]
    fn ext_type(&mut self) -> DResult<()> {
        let t = self.u8()? as i8;
        if t != EXT_SYMBOL {
            return derr(format!(
                "unknown extension type {t} at offset {}",
                self.pos - 1
            ));
        }
        Ok(())
    }

    fn ext_symbol(&mut self, len: usize) -> DResult<&'a str> {
        self.ext_type()?;
        self.utf8(len, "symbol")
    }

    /// Checks that a container of `n` items could fit in what remains (each item takes at
    /// least `min_item` bytes), so a forged length cannot make us reserve memory.
    pub(super) fn check_count(&self, n: usize, min_item: usize) -> DResult<()> {
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
    /// (borrowed from the input, UTF-8 validated), arrays and maps as their lengths, whose
    /// items (for maps: key, value, key, value...) follow.
    pub fn token(&mut self) -> DResult<Token<'a>> {
        Ok(match self.trusted_token()? {
            TrustedToken::Nil => Token::Nil,
            TrustedToken::Bool(b) => Token::Bool(b),
            TrustedToken::Int(i) => Token::Int(i),
            TrustedToken::Float(f) => Token::Float(f),
            TrustedToken::Str(b) => Token::Str(self.utf8_at(b, "string")?),
            TrustedToken::Bin(b) => Token::Bin(b),
            TrustedToken::Sym(b) => Token::Sym(self.utf8_at(b, "symbol")?),
            TrustedToken::Array(n) => Token::Array(n),
            TrustedToken::Map(n) => Token::Map(n),
        })
    }

    /// Reads the next item of bytes the store has already validated, as a
    /// [`TrustedToken`]: like [`Reader::token`] but strings and Symbol names are handed
    /// out as bytes, not validated as UTF-8 again. Lengths are still checked against the
    /// input (a wrong byte gives an error, never a panic or a large allocation), and an
    /// extension type other than Symbol is refused. For decoders that build another
    /// representation directly from stored values (the Ruby extension builds Ruby
    /// objects), skipping the [`Value`] tree.
    #[inline]
    pub fn trusted_token(&mut self) -> DResult<TrustedToken<'a>> {
        Ok(match self.head()? {
            Head::Nil => TrustedToken::Nil,
            Head::Bool(b) => TrustedToken::Bool(b),
            Head::Int(i) => TrustedToken::Int(i),
            Head::Float(f) => TrustedToken::Float(f),
            Head::Str(n) => TrustedToken::Str(self.take(n)?),
            Head::Bin(n) => TrustedToken::Bin(self.take(n)?),
            Head::Ext(n) => {
                self.ext_type()?;
                TrustedToken::Sym(self.take(n)?)
            }
            Head::Array(n) => {
                self.check_count(n, 1)?;
                TrustedToken::Array(n)
            }
            Head::Map(n) => {
                self.check_count(n, 2)?;
                TrustedToken::Map(n)
            }
        })
    }

    /// `bytes` (just taken from this reader) as UTF-8, or an error naming where they start.
    fn utf8_at(&self, bytes: &'a [u8], what: &str) -> DResult<&'a str> {
        std::str::from_utf8(bytes).map_err(|_| {
            DecodeError(format!(
                "{what} at offset {} is not valid UTF-8",
                self.pos - bytes.len()
            ))
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
        if self.pos < self.buf.len() && self.buf[self.pos] == mk::NIL {
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

    /// True if the next item is a (UTF-8) string, not consumed.
    pub fn at_str(&self) -> bool {
        matches!(
            self.peek(),
            Some(mk::FIXSTR..=mk::FIXSTR_LAST | mk::STR8..=mk::STR32)
        )
    }

    /// Skips one well-formed value without validating its contents (its bytes were
    /// validated before).
    pub(super) fn skip_raw(&mut self) -> DResult<()> {
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
}
