//! Ledger values into Rust values: one serde `Deserializer` over a stream of
//! [`Token`]s, fed either straight from stored MessagePack bytes (the codec's
//! the codec's token `Reader`, no [`Value`] tree in between) or from a `Value`.

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::error::{index_segment, key_segment, TypedError};
use super::{SYMBOL_TOKEN, VALUE_TOKEN};
use crate::ledger::codec::{Reader, Token};
use crate::ledger::value::limits;
use crate::{MapKey, Value};

type R<T> = Result<T, TypedError>;

/// Where tokens come from.
pub(crate) trait Tokens<'de> {
    /// The next item.
    fn next(&mut self) -> R<Token<'de>>;
    /// Consumes the next item and returns true if it is nil; otherwise leaves it.
    fn take_nil(&mut self) -> R<bool>;
}

/// Tokens straight from encoded bytes: the most common items (short strings and
/// Symbols, small integers, small maps and arrays, nil, floats) are read here with the
/// codec's checks, the rest (and every error) by the codec's [`Reader`].
pub(crate) struct ByteTokens<'de> {
    buf: &'de [u8],
    pub(crate) reader: Reader<'de>,
}

impl<'de> ByteTokens<'de> {
    pub(crate) fn new(buf: &'de [u8]) -> Self {
        ByteTokens {
            buf,
            reader: Reader::new(buf),
        }
    }

    /// The UTF-8 text at `start..end`, if it is all there and valid, moving past it.
    #[inline]
    fn text(&mut self, start: usize, end: usize) -> Option<&'de str> {
        let s = std::str::from_utf8(self.buf.get(start..end)?).ok()?;
        self.reader.pos = end;
        Some(s)
    }
}

#[cold]
fn decode_error(e: crate::ledger::codec::DecodeError) -> TypedError {
    TypedError::msg(format!("cannot be decoded: {e}"))
}

impl<'de> Tokens<'de> for ByteTokens<'de> {
    #[inline]
    fn next(&mut self) -> R<Token<'de>> {
        let pos = self.reader.pos;
        if let Some(&m) = self.buf.get(pos) {
            match m {
                0x00..=0x7f => {
                    self.reader.pos = pos + 1;
                    return Ok(Token::Int(m as i64));
                }
                // fixstr
                0xa0..=0xbf => {
                    let end = pos + 1 + (m & 0x1f) as usize;
                    if let Some(s) = self.text(pos + 1, end) {
                        return Ok(Token::Str(s));
                    }
                }
                // ext 8 of type 1: a Symbol
                0xc7 if self.buf.get(pos + 2) == Some(&1) => {
                    let end = pos + 3 + self.buf[pos + 1] as usize;
                    if let Some(s) = self.text(pos + 3, end) {
                        return Ok(Token::Sym(s));
                    }
                }
                // fixmap, fixarray whose items can fit in what remains (the codec's rule:
                // at least two bytes per entry, one per item)
                0x80..=0x8f if ((m & 0x0f) as usize) * 2 < self.buf.len() - pos => {
                    self.reader.pos = pos + 1;
                    return Ok(Token::Map((m & 0x0f) as usize));
                }
                0x90..=0x9f if ((m & 0x0f) as usize) < self.buf.len() - pos => {
                    self.reader.pos = pos + 1;
                    return Ok(Token::Array((m & 0x0f) as usize));
                }
                0xc0 => {
                    self.reader.pos = pos + 1;
                    return Ok(Token::Nil);
                }
                0xcb => {
                    if let Some(b) = self.buf.get(pos + 1..pos + 9) {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(b);
                        self.reader.pos = pos + 9;
                        return Ok(Token::Float(f64::from_bits(u64::from_be_bytes(a))));
                    }
                }
                _ => {}
            }
        }
        self.reader.token().map_err(decode_error)
    }
    #[inline]
    fn take_nil(&mut self) -> R<bool> {
        self.reader.read_nil().map_err(decode_error)
    }
}

/// Tokens from a [`Value`] tree, in the order the encoder would write them.
pub(crate) struct ValueTokens<'de> {
    first: Option<&'de Value>,
    stack: Vec<Frame<'de>>,
    peeked: Option<Token<'de>>,
}

enum Frame<'de> {
    Items(std::slice::Iter<'de, Value>),
    Pairs(std::slice::Iter<'de, (MapKey, Value)>, Option<&'de Value>),
}

impl<'de> ValueTokens<'de> {
    pub(crate) fn new(v: &'de Value) -> Self {
        ValueTokens {
            first: Some(v),
            stack: Vec::new(),
            peeked: None,
        }
    }

    fn emit(&mut self, v: &'de Value) -> Token<'de> {
        match v {
            Value::Nil => Token::Nil,
            Value::Bool(b) => Token::Bool(*b),
            Value::Int(i) => Token::Int(*i),
            Value::Float(f) => Token::Float(*f),
            Value::Str(s) => Token::Str(s),
            Value::Bin(b) => Token::Bin(b),
            Value::Sym(s) => Token::Sym(s),
            Value::Array(items) => {
                self.stack.push(Frame::Items(items.iter()));
                Token::Array(items.len())
            }
            Value::Map(pairs) => {
                self.stack.push(Frame::Pairs(pairs.iter(), None));
                Token::Map(pairs.len())
            }
        }
    }
}

impl<'de> Tokens<'de> for ValueTokens<'de> {
    fn next(&mut self) -> R<Token<'de>> {
        if let Some(t) = self.peeked.take() {
            return Ok(t);
        }
        if let Some(v) = self.first.take() {
            return Ok(self.emit(v));
        }
        loop {
            let next = match self.stack.last_mut() {
                None => return Err(TypedError::msg("has no more items")),
                Some(Frame::Items(it)) => it.next().map(Ok),
                Some(Frame::Pairs(it, pending)) => match pending.take() {
                    Some(v) => Some(Ok(v)),
                    None => it.next().map(|(k, v)| {
                        *pending = Some(v);
                        Err(k)
                    }),
                },
            };
            match next {
                Some(Ok(v)) => return Ok(self.emit(v)),
                Some(Err(k)) => {
                    return Ok(match k {
                        MapKey::Sym(s) => Token::Sym(s),
                        MapKey::Str(s) => Token::Str(s),
                        MapKey::Int(i) => Token::Int(*i),
                    })
                }
                None => {
                    self.stack.pop();
                }
            }
        }
    }
    fn take_nil(&mut self) -> R<bool> {
        let t = self.next()?;
        if t == Token::Nil {
            return Ok(true);
        }
        self.peeked = Some(t);
        Ok(false)
    }
}

/// The deserializer: a token source and the current nesting depth.
pub(crate) struct De<S> {
    pub(crate) src: S,
    depth: usize,
}

impl<'de, S: Tokens<'de>> De<S> {
    pub(crate) fn new(src: S) -> Self {
        De { src, depth: 1 }
    }

    /// Steps into a container of `n` items. Its items sit one level deeper than it; as
    /// in the codec and [`Value::validate`], no item may sit deeper than the limit (an
    /// empty container at the limit is fine).
    fn enter(&mut self, n: usize) -> R<()> {
        if n > 0 && self.depth >= limits::MAX_DEPTH {
            return Err(TypedError::msg(format!(
                "nests deeper than {} levels",
                limits::MAX_DEPTH
            )));
        }
        self.depth += 1;
        Ok(())
    }

    /// Hands one token (and, for containers, the items that follow it) to a visitor.
    fn any<V: Visitor<'de>>(&mut self, tok: Token<'de>, v: V) -> R<V::Value> {
        match tok {
            Token::Nil => v.visit_unit(),
            Token::Bool(b) => v.visit_bool(b),
            Token::Int(i) => v.visit_i64(i),
            Token::Float(f) => v.visit_f64(f),
            Token::Str(s) | Token::Sym(s) => v.visit_borrowed_str(s),
            Token::Bin(b) => v.visit_borrowed_bytes(b),
            Token::Array(n) => self.seq(n, v),
            Token::Map(n) => self.map(n, v),
        }
    }

    fn seq<V: Visitor<'de>>(&mut self, n: usize, v: V) -> R<V::Value> {
        self.enter(n)?;
        let mut access = Seq {
            de: self,
            left: n,
            index: 0,
        };
        let out = v.visit_seq(&mut access)?;
        if access.left > 0 {
            return Err(TypedError::msg(format!(
                "is an array of {n} items, more than the {} expected",
                access.index
            )));
        }
        self.depth -= 1;
        Ok(out)
    }

    fn map<V: Visitor<'de>>(&mut self, n: usize, v: V) -> R<V::Value> {
        self.enter(n)?;
        let mut access = Map {
            de: self,
            left: n,
            key: None,
        };
        let out = v.visit_map(&mut access)?;
        if access.left > 0 {
            return Err(TypedError::msg(format!(
                "is a hash of {n} entries, {} of them left unread",
                access.left
            )));
        }
        self.depth -= 1;
        Ok(out)
    }

    /// Skips one whole value.
    fn skip(&mut self) -> R<()> {
        let mut pending: usize = 1;
        while pending > 0 {
            pending -= 1;
            match self.src.next()? {
                Token::Array(n) => pending = pending.saturating_add(n),
                Token::Map(n) => pending = pending.saturating_add(n.saturating_mul(2)),
                _ => {}
            }
        }
        Ok(())
    }
}

macro_rules! forward_to_any {
    ($($name:ident)*) => {$(
        #[inline]
        fn $name<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
            let tok = self.src.next()?;
            self.any(tok, v)
        }
    )*};
}

impl<'de, S: Tokens<'de>> Deserializer<'de> for &mut De<S> {
    type Error = TypedError;

    forward_to_any! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_unit deserialize_map
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
        if self.src.take_nil()? {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, v: V) -> R<V::Value> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, v: V) -> R<V::Value> {
        if name == VALUE_TOKEN {
            // A `Value` (or `MapKey`) is being read: Symbols must stay Symbols.
            return match self.src.next()? {
                Token::Sym(s) => v.visit_enum(SymbolEnum(s)),
                tok => self.any(tok, v),
            };
        }
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
        match self.src.next()? {
            // A `Vec<u8>` written as binary reads back as a sequence of bytes.
            Token::Bin(b) => v.visit_seq(de::value::SeqDeserializer::<_, TypedError>::new(
                b.iter().copied(),
            )),
            tok => self.any(tok, v),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> R<V::Value> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> R<V::Value> {
        self.deserialize_seq(v)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> R<V::Value> {
        let tok = self.src.next()?;
        self.any(tok, v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> R<V::Value> {
        match self.src.next()? {
            Token::Sym(s) | Token::Str(s) => v.visit_enum(s.into_deserializer()),
            Token::Map(1) => {
                self.enter(1)?;
                let out = v.visit_enum(VariantMap { de: self })?;
                self.depth -= 1;
                Ok(out)
            }
            tok => Err(TypedError::msg(format!(
                "is {}, not an enum variant (a Symbol, a String, or a hash of one entry: variant => data)",
                describe(tok)
            ))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
        let tok = self.src.next()?;
        identifier(tok, v).unwrap_or_else(|v| self.any(tok, v))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
        self.skip()?;
        v.visit_unit()
    }
}

/// A field name or variant name from a key-like token; other tokens give the visitor back.
fn identifier<'de, V: Visitor<'de>>(tok: Token<'de>, v: V) -> Result<R<V::Value>, V> {
    match tok {
        Token::Str(s) | Token::Sym(s) => Ok(v.visit_borrowed_str(s)),
        Token::Int(i) if i >= 0 => Ok(v.visit_u64(i as u64)),
        _ => Err(v),
    }
}

fn describe(tok: Token<'_>) -> String {
    match tok {
        Token::Nil => "nil".into(),
        Token::Bool(b) => format!("{b}"),
        Token::Int(i) => format!("the Integer {i}"),
        Token::Float(f) => format!("the Float {f}"),
        Token::Str(s) => format!("the String {s:?}"),
        Token::Bin(_) => "a binary String".into(),
        Token::Sym(s) => format!("the Symbol :{s}"),
        Token::Array(n) => format!("an Array of {n} items"),
        Token::Map(n) => format!("a Hash of {n} entries"),
    }
}

/// The key of a map entry, for error paths (only formatted on failure).
fn token_key(tok: Token<'_>) -> MapKey {
    match tok {
        Token::Sym(s) => MapKey::Sym(s.to_owned()),
        Token::Str(s) => MapKey::Str(s.to_owned()),
        Token::Int(i) => MapKey::Int(i),
        other => MapKey::Str(describe(other)),
    }
}

struct Seq<'a, S> {
    de: &'a mut De<S>,
    left: usize,
    index: usize,
}

impl<'de, S: Tokens<'de>> SeqAccess<'de> for Seq<'_, S> {
    type Error = TypedError;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> R<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let i = self.index;
        self.index += 1;
        seed.deserialize(&mut *self.de)
            .map(Some)
            .map_err(|e| e.within(|| index_segment(i)))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

struct Map<'a, 'de, S> {
    de: &'a mut De<S>,
    left: usize,
    key: Option<Token<'de>>,
}

impl<'de, S: Tokens<'de>> MapAccess<'de> for Map<'_, 'de, S> {
    type Error = TypedError;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> R<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let tok = self.de.src.next()?;
        self.key = Some(tok);
        seed.deserialize(KeyDe(tok))
            .map(Some)
            .map_err(|e| e.within(|| key_segment(&token_key(tok))))
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> R<T::Value> {
        let key = self.key.take();
        seed.deserialize(&mut *self.de).map_err(|e| {
            e.within(|| match key {
                Some(k) => key_segment(&token_key(k)),
                None => "[?]".into(),
            })
        })
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// Deserializes one already-read map key.
struct KeyDe<'de>(Token<'de>);

impl<'de> Deserializer<'de> for KeyDe<'de> {
    type Error = TypedError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
        match self.0 {
            Token::Str(s) | Token::Sym(s) => v.visit_borrowed_str(s),
            Token::Int(i) => v.visit_i64(i),
            other => Err(TypedError::msg(format!(
                "has the hash key {}, which is not a Symbol, String or Integer",
                describe(other)
            ))),
        }
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
        v.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, v: V) -> R<V::Value> {
        match self.0 {
            Token::Sym(s) if name == VALUE_TOKEN => v.visit_enum(SymbolEnum(s)),
            _ if name == VALUE_TOKEN => self.deserialize_any(v),
            _ => v.visit_newtype_struct(self),
        }
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> R<V::Value> {
        match self.0 {
            Token::Str(s) | Token::Sym(s) => v.visit_enum(s.into_deserializer()),
            _ => self.deserialize_any(v),
        }
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
        identifier(self.0, v).unwrap_or_else(|v| self.deserialize_any(v))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct ignored_any
    }
}

/// A Symbol as the reserved one-variant enum (see `value_serde`).
struct SymbolEnum<'de>(&'de str);

impl<'de> EnumAccess<'de> for SymbolEnum<'de> {
    type Error = TypedError;
    type Variant = Self;
    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> R<(T::Value, Self)> {
        let tag = seed.deserialize(de::value::BorrowedStrDeserializer::<TypedError>::new(
            SYMBOL_TOKEN,
        ))?;
        Ok((tag, self))
    }
}

impl<'de> VariantAccess<'de> for SymbolEnum<'de> {
    type Error = TypedError;
    fn unit_variant(self) -> R<()> {
        Err(TypedError::msg("a Symbol carries its name"))
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> R<T::Value> {
        seed.deserialize(de::value::BorrowedStrDeserializer::<TypedError>::new(
            self.0,
        ))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _v: V) -> R<V::Value> {
        Err(TypedError::msg("a Symbol is not a tuple"))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _v: V,
    ) -> R<V::Value> {
        Err(TypedError::msg("a Symbol is not a struct"))
    }
}

/// An enum written as `{variant => data}`.
struct VariantMap<'a, S> {
    de: &'a mut De<S>,
}

impl<'de, 'a, S: Tokens<'de>> EnumAccess<'de> for VariantMap<'a, S> {
    type Error = TypedError;
    type Variant = VariantData<'a, 'de, S>;
    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> R<(T::Value, Self::Variant)> {
        let tok = self.de.src.next()?;
        let tag = seed
            .deserialize(KeyDe(tok))
            .map_err(|e| e.within(|| key_segment(&token_key(tok))))?;
        Ok((tag, VariantData { de: self.de, tok }))
    }
}

/// The data of a `{variant => data}` enum.
struct VariantData<'a, 'de, S> {
    de: &'a mut De<S>,
    tok: Token<'de>,
}

impl<'de, S: Tokens<'de>> VariantData<'_, 'de, S> {
    fn segment(&self) -> String {
        key_segment(&token_key(self.tok))
    }
}

impl<'de, S: Tokens<'de>> VariantAccess<'de> for VariantData<'_, 'de, S> {
    type Error = TypedError;
    fn unit_variant(self) -> R<()> {
        // `{variant => nil}` reads as the unit variant.
        match self.de.src.next()? {
            Token::Nil => Ok(()),
            tok => Err(TypedError::msg(format!(
                "is {}, but a unit variant has no data",
                describe(tok)
            ))
            .within(|| self.segment())),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> R<T::Value> {
        seed.deserialize(&mut *self.de)
            .map_err(|e| e.within(|| self.segment()))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> R<V::Value> {
        Deserializer::deserialize_seq(&mut *self.de, v).map_err(|e| e.within(|| self.segment()))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        v: V,
    ) -> R<V::Value> {
        Deserializer::deserialize_map(&mut *self.de, v).map_err(|e| e.within(|| self.segment()))
    }
}
