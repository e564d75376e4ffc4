//! Reading and validating: a bounds-checked reader over encoded bytes. One decoder of
//! the marker table ([`Reader::visit`]) serves every mode:
//!
//! - **Validating** ([`Reader::skip_value`], [`decode_value`], [`Reader::token`]): for
//!   bytes from disk, the network or a caller. Every length is checked against the bytes
//!   that remain, strings and Symbol names must be UTF-8, map keys must be Symbols,
//!   Strings or Integers and (in `skip_value`) distinct, nesting is bounded.
//! - **Trusted** ([`Reader::visit`] with a [`Visitor`], or [`Reader::trusted_token`]): for
//!   bytes the store already validated (a fact's value). Items go one at a time to the
//!   visitor without building a [`Value`] and without validating UTF-8 again; lengths are
//!   still bounds-checked, so even wrong bytes cannot make it panic or over-allocate. The
//!   Ruby extension builds Ruby objects this way.
//! - **Fields** (`read_int`, `read_str`, ...): the record and snapshot decoders read
//!   their fixed layouts item by item.
//!
//! Errors are described only when reported: the hot paths carry a zero-sized stop and
//! leave the reason in the reader.

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
    /// Why the last primitive read stopped.
    fault: Fault,
}

/// Why a primitive read stopped. The hot paths return a zero-sized [`Stop`] and leave
/// this in the reader; it is turned into a message only when an error is reported, so a
/// successful read never carries an error type with a destructor through its returns.
#[derive(Clone, Copy, Debug, Default)]
enum Fault {
    #[default]
    None,
    /// A read of this many bytes past the end.
    Short(usize),
    /// A `uint 64` above `i64::MAX`.
    IntRange(u64),
    /// The never-used marker.
    Marker(u8),
    /// An extension type other than Symbol.
    ExtType(i8),
    /// A container of this many items that cannot fit in what remains.
    Count(usize),
}

/// A primitive read failed; the reader's fault says why.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stop;

type Raw<T> = Result<T, Stop>;

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

/// Receives the items of encoded bytes from [`Reader::visit`], one call per item, to
/// build another representation directly (the Ruby extension builds Ruby objects from
/// stored values this way). Strings and Symbol names come as bytes, not validated as
/// UTF-8 (for bytes the store validated before); lengths and container counts are checked
/// by the reader. A method answers `None` to stop reading.
pub trait Visitor<'a> {
    /// What one item becomes.
    type Out;
    /// `nil`.
    fn nil(&mut self) -> Option<Self::Out>;
    /// A boolean.
    fn bool(&mut self, b: bool) -> Option<Self::Out>;
    /// An integer.
    fn int(&mut self, i: i64) -> Option<Self::Out>;
    /// A float.
    fn float(&mut self, f: f64) -> Option<Self::Out>;
    /// A UTF-8 string's bytes.
    fn str(&mut self, b: &'a [u8]) -> Option<Self::Out>;
    /// A binary string.
    fn bin(&mut self, b: &'a [u8]) -> Option<Self::Out>;
    /// A Symbol's name, as UTF-8 bytes.
    fn sym(&mut self, b: &'a [u8]) -> Option<Self::Out>;
    /// An array of `n` items, which follow in `r` (read them with `r.visit`).
    fn array(&mut self, r: &mut Reader<'a>, n: usize) -> Option<Self::Out>;
    /// A map of `n` entries, whose keys and values follow in `r`, alternating.
    fn map(&mut self, r: &mut Reader<'a>, n: usize) -> Option<Self::Out>;
}

/// The visitor that hands each item over as it is ([`Reader::trusted_token`]).
struct Items;

impl<'a> Visitor<'a> for Items {
    type Out = Item<'a>;
    fn nil(&mut self) -> Option<Item<'a>> {
        Some(Item::Nil)
    }
    fn bool(&mut self, b: bool) -> Option<Item<'a>> {
        Some(Item::Bool(b))
    }
    fn int(&mut self, i: i64) -> Option<Item<'a>> {
        Some(Item::Int(i))
    }
    fn float(&mut self, f: f64) -> Option<Item<'a>> {
        Some(Item::Float(f))
    }
    fn str(&mut self, b: &'a [u8]) -> Option<Item<'a>> {
        Some(Item::Str(b))
    }
    fn bin(&mut self, b: &'a [u8]) -> Option<Item<'a>> {
        Some(Item::Bin(b))
    }
    fn sym(&mut self, b: &'a [u8]) -> Option<Item<'a>> {
        Some(Item::Sym(b))
    }
    fn array(&mut self, _: &mut Reader<'a>, n: usize) -> Option<Item<'a>> {
        Some(Item::Array(n))
    }
    fn map(&mut self, _: &mut Reader<'a>, n: usize) -> Option<Item<'a>> {
        Some(Item::Map(n))
    }
}

/// One item as the reader decodes it from the marker table: scalars whole, strings,
/// binaries and Symbol names as their (not yet validated) bytes, containers as their
/// counts. Every reading mode starts from this.
pub(super) type Item<'a> = TrustedToken<'a>;

/// Whether bytes that start with `marker` and read as `item` are in the writer's
/// (shortest) form. Only bytes in that form may be hashed as they are; anything else is
/// re-encoded first.
fn is_canonical(marker: u8, item: &Item<'_>) -> bool {
    let expected = match item {
        Item::Nil | Item::Bool(_) => return true,
        Item::Int(v) => int_head(*v).0,
        Item::Float(f) => {
            return marker == mk::FLOAT64 && (!f.is_nan() || f.to_bits() == f64::NAN.to_bits())
        }
        Item::Str(b) => STR.head(b.len()).0,
        Item::Bin(b) => BIN.head(b.len()).0,
        Item::Sym(b) => EXT.head(b.len()).0,
        Item::Array(n) => ARRAY.head(*n).0,
        Item::Map(n) => MAP.head(*n).0,
    };
    marker == expected
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader::at(buf, 0)
    }

    /// A reader at `pos` of `buf`.
    pub(super) fn at(buf: &'a [u8], pos: usize) -> Self {
        Reader {
            buf,
            pos,
            fault: Fault::None,
        }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Stops a primitive read for `fault`.
    #[cold]
    #[inline(never)]
    fn stop<T>(&mut self, fault: Fault) -> Raw<T> {
        self.fault = fault;
        Err(Stop)
    }

    /// The error for the fault that stopped the last primitive read, at the position
    /// where it stopped.
    #[cold]
    #[inline(never)]
    pub(super) fn fault_error(&self) -> DecodeError {
        DecodeError(match self.fault {
            Fault::Short(n) => format!(
                "needs {n} bytes at offset {} but only {} remain",
                self.pos,
                self.remaining()
            ),
            Fault::IntRange(v) => format!("integer {v} is out of the 64-bit signed range"),
            Fault::Marker(m) => format!("invalid marker {m:#04x} at offset {}", self.pos - 1),
            Fault::ExtType(t) => {
                format!("unknown extension type {t} at offset {}", self.pos - 1)
            }
            Fault::Count(n) => format!(
                "container of {n} items at offset {} exceeds the {} bytes that remain",
                self.pos,
                self.remaining()
            ),
            Fault::None => "unreadable bytes".to_owned(),
        })
    }

    #[inline(always)]
    fn take_raw(&mut self, n: usize) -> Raw<&'a [u8]> {
        let buf: &'a [u8] = self.buf;
        match buf.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => self.stop(Fault::Short(n)),
        }
    }

    #[inline(always)]
    fn u8_raw(&mut self) -> Raw<u8> {
        Ok(self.take_raw(1)?[0])
    }

    #[inline(always)]
    fn be<const N: usize>(&mut self) -> Raw<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take_raw(N)?);
        Ok(a)
    }

    /// The next item. The one decoder of the marker table, for every reading mode: the
    /// forms the writer uses for small items are decoded inline, the rest by
    /// [`Reader::visit_full`]. Each item goes straight to `v` (so a decoder that builds
    /// another representation dispatches once per item); `None` when the bytes stop it
    /// (the reader's fault says why) or `v` does.
    #[inline(always)]
    pub fn visit<V: Visitor<'a>>(&mut self, v: &mut V) -> Option<V::Out> {
        let Some(&m) = self.buf.get(self.pos) else {
            return self.stop(Fault::Short(1)).ok();
        };
        self.pos += 1;
        match m {
            0..=mk::POSFIX_LAST => v.int(m as i64),
            mk::FIXMAP..=mk::FIXMAP_LAST => self.map_of((m & 0x0f) as usize, v),
            mk::FIXARRAY..=mk::FIXARRAY_LAST => self.array_of((m & 0x0f) as usize, v),
            mk::FIXSTR..=mk::FIXSTR_LAST => v.str(self.take_raw((m & 0x1f) as usize).ok()?),
            mk::NIL => v.nil(),
            mk::FALSE => v.bool(false),
            mk::TRUE => v.bool(true),
            mk::NEGFIX..=0xff => v.int(m as i8 as i64),
            mk::STR8 => {
                let n = self.u8_raw().ok()? as usize;
                v.str(self.take_raw(n).ok()?)
            }
            mk::EXT8 => {
                let n = self.u8_raw().ok()? as usize;
                self.symbol_of(n, v)
            }
            mk::FLOAT64 => v.float(f64::from_bits(u64::from_be_bytes(self.be().ok()?))),
            _ => self.visit_full(m, v),
        }
    }

    /// An item in one of the forms the writer does not use for small items (or in a form
    /// only other writers use); `m` is its marker, already read.
    fn visit_full<V: Visitor<'a>>(&mut self, m: u8, v: &mut V) -> Option<V::Out> {
        let u16 = |r: &mut Self| r.be::<2>().map(u16::from_be_bytes).ok();
        let u32 = |r: &mut Self| r.be::<4>().map(u32::from_be_bytes).ok();
        let u64 = |r: &mut Self| r.be::<8>().map(u64::from_be_bytes).ok();
        // A length of 16 bits, or of 32 if `wide`.
        let len = |r: &mut Self, wide: bool| -> Option<usize> {
            Some(if wide {
                u32(r)? as usize
            } else {
                u16(r)? as usize
            })
        };
        match m {
            mk::BIN8 | mk::BIN16 | mk::BIN32 => {
                let n = match m {
                    mk::BIN8 => self.u8_raw().ok()? as usize,
                    _ => len(self, m == mk::BIN32)?,
                };
                v.bin(self.take_raw(n).ok()?)
            }
            mk::STR16 | mk::STR32 => {
                let n = len(self, m == mk::STR32)?;
                v.str(self.take_raw(n).ok()?)
            }
            mk::EXT16 | mk::EXT32 => {
                let n = len(self, m == mk::EXT32)?;
                self.symbol_of(n, v)
            }
            mk::FIXEXT1 => self.symbol_of(1, v),
            mk::FIXEXT2 => self.symbol_of(2, v),
            mk::FIXEXT4 => self.symbol_of(4, v),
            mk::FIXEXT8 => self.symbol_of(8, v),
            mk::FIXEXT16 => self.symbol_of(16, v),
            mk::FLOAT32 => v.float(f32::from_bits(u32(self)?) as f64),
            mk::UINT8 => v.int(self.u8_raw().ok()? as i64),
            mk::UINT16 => v.int(u16(self)? as i64),
            mk::UINT32 => v.int(u32(self)? as i64),
            mk::UINT64 => {
                let n = u64(self)?;
                if n > i64::MAX as u64 {
                    return self.stop(Fault::IntRange(n)).ok();
                }
                v.int(n as i64)
            }
            mk::INT8 => v.int(self.u8_raw().ok()? as i8 as i64),
            mk::INT16 => v.int(u16(self)? as i16 as i64),
            mk::INT32 => v.int(u32(self)? as i32 as i64),
            mk::INT64 => v.int(u64(self)? as i64),
            mk::ARRAY16 | mk::ARRAY32 | mk::MAP16 | mk::MAP32 => {
                let n = len(self, matches!(m, mk::ARRAY32 | mk::MAP32))?;
                if matches!(m, mk::ARRAY16 | mk::ARRAY32) {
                    self.array_of(n, v)
                } else {
                    self.map_of(n, v)
                }
            }
            // 0xc1, never used (every other marker is decoded above or in `visit`).
            _ => self.stop(Fault::Marker(m)).ok(),
        }
    }

    /// A Symbol's name: the extension's type byte (only the Symbol type is known), then
    /// `len` bytes.
    #[inline(always)]
    fn symbol_of<V: Visitor<'a>>(&mut self, len: usize, v: &mut V) -> Option<V::Out> {
        let t = self.u8_raw().ok()? as i8;
        if t != EXT_SYMBOL {
            return self.stop(Fault::ExtType(t)).ok();
        }
        v.sym(self.take_raw(len).ok()?)
    }

    /// An array of `n` items, if they could fit in what remains (each takes a byte at
    /// least), so a forged length cannot make a reader reserve memory.
    #[inline(always)]
    fn array_of<V: Visitor<'a>>(&mut self, n: usize, v: &mut V) -> Option<V::Out> {
        if n > self.remaining() {
            return self.stop(Fault::Count(n)).ok();
        }
        v.array(self, n)
    }

    /// A map of `n` entries, if they could fit in what remains (each takes two bytes at
    /// least).
    #[inline(always)]
    fn map_of<V: Visitor<'a>>(&mut self, n: usize, v: &mut V) -> Option<V::Out> {
        if n.saturating_mul(2) > self.remaining() {
            return self.stop(Fault::Count(n)).ok();
        }
        v.map(self, n)
    }

    /// The next item as an [`Item`].
    #[inline(always)]
    fn item_raw(&mut self) -> Raw<Item<'a>> {
        self.visit(&mut Items).ok_or(Stop)
    }

    /// The next item (validating mode: errors described).
    #[inline]
    pub(super) fn item(&mut self) -> DResult<Item<'a>> {
        self.item_raw().map_err(|Stop| self.fault_error())
    }

    /// `bytes` (just read by this reader) as UTF-8, or an error naming where they start.
    fn utf8_at(&self, bytes: &'a [u8], what: &str) -> DResult<&'a str> {
        std::str::from_utf8(bytes).map_err(|_| {
            DecodeError(format!(
                "{what} at offset {} is not valid UTF-8",
                self.pos - bytes.len()
            ))
        })
    }

    /// Reads a full value.
    pub fn read_value(&mut self, depth: usize) -> DResult<Value> {
        if depth > limits::MAX_DEPTH {
            return derr(format!(
                "value nests deeper than {} levels",
                limits::MAX_DEPTH
            ));
        }
        Ok(match self.item()? {
            Item::Nil => Value::Nil,
            Item::Bool(b) => Value::Bool(b),
            Item::Int(i) => Value::Int(i),
            Item::Float(f) => Value::Float(f),
            Item::Str(b) => Value::Str(self.utf8_at(b, "string")?.to_owned()),
            Item::Bin(b) => Value::Bin(b.to_vec()),
            Item::Sym(b) => Value::Sym(self.utf8_at(b, "symbol")?.to_owned()),
            Item::Array(n) => {
                let mut items = Vec::with_capacity(n.min(PREALLOCATE_ITEMS));
                for _ in 0..n {
                    items.push(self.read_value(depth + 1)?);
                }
                Value::Array(items)
            }
            Item::Map(n) => {
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
        Ok(match self.item()? {
            Item::Int(i) => MapKey::Int(i),
            Item::Str(b) => MapKey::Str(self.utf8_at(b, "string key")?.to_owned()),
            Item::Sym(b) => MapKey::Sym(self.utf8_at(b, "symbol")?.to_owned()),
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
        let t = self.trusted_raw().map_err(|Stop| self.fault_error())?;
        Ok(match t {
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
    /// input (wrong bytes give `None`, never a panic or a large allocation; then
    /// [`Reader::trusted_error`] says why), and an extension type other than Symbol is
    /// refused. For decoders that build another representation directly from stored
    /// values (the Ruby extension builds Ruby objects), skipping the [`Value`] tree.
    #[inline(always)]
    pub fn trusted_token(&mut self) -> Option<TrustedToken<'a>> {
        self.trusted_raw().ok()
    }

    /// Why the last [`Reader::trusted_token`] or [`Reader::visit`] answered `None`
    /// (unless the visitor stopped it).
    #[cold]
    pub fn trusted_error(&self) -> DecodeError {
        self.fault_error()
    }

    #[inline(always)]
    fn trusted_raw(&mut self) -> Raw<TrustedToken<'a>> {
        // Container counts are checked as their headers are read.
        self.item_raw()
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
        let marker = self.peek().unwrap_or(0);
        let item = self.item()?;
        let minimal = is_canonical(marker, &item);
        match item {
            Item::Nil | Item::Bool(_) | Item::Int(_) | Item::Float(_) | Item::Bin(_) => Ok(minimal),
            Item::Str(b) => self.utf8_at(b, "string").map(|_| minimal),
            Item::Sym(b) => self.utf8_at(b, "symbol").map(|_| minimal),
            Item::Array(n) => {
                let mut canonical = minimal;
                for _ in 0..n {
                    canonical &= self.skip_value(depth + 1)?;
                }
                Ok(canonical)
            }
            Item::Map(n) => {
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
        let mut r = Reader::at(self.buf, from);
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            keys.push(match r.item()? {
                Item::Int(i) => K::Int(i),
                Item::Str(b) => K::Str(b),
                Item::Sym(b) => K::Sym(b),
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
        let marker = self.peek().unwrap_or(0);
        let item = self.item()?;
        let minimal = is_canonical(marker, &item);
        match item {
            Item::Int(_) => Ok(minimal),
            Item::Str(b) => self.utf8_at(b, "string key").map(|_| minimal),
            Item::Sym(b) => self.utf8_at(b, "symbol").map(|_| minimal),
            _ => derr(format!(
                "hash key at offset {at} is not a Symbol, String or Integer"
            )),
        }
    }

    /// Reads an array header.
    pub fn read_array_len(&mut self) -> DResult<usize> {
        let at = self.pos;
        match self.item()? {
            Item::Array(n) => Ok(n),
            _ => derr(format!("expected an array at offset {at}")),
        }
    }

    /// Reads a map header.
    pub fn read_map_len(&mut self) -> DResult<usize> {
        let at = self.pos;
        match self.item()? {
            Item::Map(n) => Ok(n),
            _ => derr(format!("expected a map at offset {at}")),
        }
    }

    /// Reads an integer.
    pub fn read_int(&mut self) -> DResult<i64> {
        let at = self.pos;
        match self.item()? {
            Item::Int(i) => Ok(i),
            _ => derr(format!("expected an integer at offset {at}")),
        }
    }

    /// Reads a UTF-8 string.
    pub fn read_str(&mut self) -> DResult<&'a str> {
        let at = self.pos;
        match self.item()? {
            Item::Str(b) => self.utf8_at(b, "string"),
            _ => derr(format!("expected a string at offset {at}")),
        }
    }

    /// Reads a binary string.
    pub fn read_bin(&mut self) -> DResult<&'a [u8]> {
        let at = self.pos;
        match self.item()? {
            Item::Bin(b) => Ok(b),
            _ => derr(format!("expected binary at offset {at}")),
        }
    }

    /// True (and consumed) if the next item is nil.
    pub fn read_nil(&mut self) -> DResult<bool> {
        match self.peek() {
            Some(mk::NIL) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => derr("unexpected end of data"),
        }
    }

    /// Reads a float (f32 or f64).
    pub fn read_f64(&mut self) -> DResult<f64> {
        let at = self.pos;
        match self.item()? {
            Item::Float(f) => Ok(f),
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
        match self.item()? {
            Item::Array(n) => {
                for _ in 0..n {
                    self.skip_raw()?;
                }
            }
            Item::Map(n) => {
                for _ in 0..2 * n {
                    self.skip_raw()?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
