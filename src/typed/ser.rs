//! Rust values into ledger [`Value`]s: a serde `Serializer` whose output is a `Value`.

use std::cell::Cell;

use serde::ser::{self, Impossible, Serialize};

use super::error::{index_segment, key_segment, TypedError};
use super::{KeyStyle, STRING_KEYS_TOKEN, STRING_KEY_TOKEN, SYMBOL_KEYS_TOKEN, SYMBOL_TOKEN};
use crate::{MapKey, Value};

type R<T> = Result<T, TypedError>;

/// The serializer behind [`to_value_with`](crate::to_value_with).
pub(crate) struct Ser<'a> {
    pub(crate) keys: KeyStyle,
    /// Set when this serializer writes a `u8`: a sequence whose items are all `u8`s (a
    /// `Vec<u8>`, `&[u8]`) becomes binary.
    pub(crate) saw_u8: Option<&'a Cell<bool>>,
}

impl Ser<'_> {
    pub(crate) fn new(keys: KeyStyle) -> Ser<'static> {
        Ser { keys, saw_u8: None }
    }
}

/// A struct field name or string map key in the chosen style.
fn name_key(keys: KeyStyle, name: &str) -> MapKey {
    match keys {
        KeyStyle::Symbols => MapKey::Sym(name.to_owned()),
        KeyStyle::Strings => MapKey::Str(name.to_owned()),
    }
}

fn int_from<T: TryInto<i64> + std::fmt::Display + Copy>(v: T) -> R<i64> {
    v.try_into().map_err(|_| {
        TypedError::msg(format!(
            "integer {v} is beyond the 64-bit signed range of ledger integers"
        ))
    })
}

/// The integer methods of a serializer whose output `$ok` wraps an `i64` with `$int`
/// (every integer type but `u8`, which each serializer writes itself): widths that fit
/// convert, wider ones are checked ([`int_from`]).
macro_rules! int_arms {
    ($ok:ty, $int:path) => {
        int_arms!(@fit $ok, $int, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
            serialize_i64: i64, serialize_u16: u16, serialize_u32: u32);
        int_arms!(@checked $ok, $int, serialize_i128: i128, serialize_u64: u64,
            serialize_u128: u128);
    };
    (@fit $ok:ty, $int:path, $($name:ident: $t:ty),*) => {
        $(fn $name(self, v: $t) -> R<$ok> {
            Ok($int(i64::from(v)))
        })*
    };
    (@checked $ok:ty, $int:path, $($name:ident: $t:ty),*) => {
        $(fn $name(self, v: $t) -> R<$ok> {
            int_from(v).map($int)
        })*
    };
}

/// `value` serialized in the key style `keys`, an error in it located under `key`.
fn entry<T: ?Sized + Serialize>(keys: KeyStyle, key: &MapKey, value: &T) -> R<Value> {
    value
        .serialize(Ser::new(keys))
        .map_err(|e| e.within(|| key_segment(key)))
}

impl<'a> ser::Serializer for Ser<'a> {
    type Ok = Value;
    type Error = TypedError;
    type SerializeSeq = SeqOut;
    type SerializeTuple = SeqOut;
    type SerializeTupleStruct = SeqOut;
    type SerializeTupleVariant = VariantOut<SeqOut>;
    type SerializeMap = MapOut;
    type SerializeStruct = StructOut;
    type SerializeStructVariant = VariantOut<StructOut>;

    fn serialize_bool(self, v: bool) -> R<Value> {
        Ok(Value::Bool(v))
    }
    int_arms!(Value, Value::Int);
    fn serialize_u8(self, v: u8) -> R<Value> {
        if let Some(flag) = self.saw_u8 {
            flag.set(true);
        }
        Ok(Value::Int(v.into()))
    }
    fn serialize_f32(self, v: f32) -> R<Value> {
        Ok(Value::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> R<Value> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> R<Value> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> R<Value> {
        Ok(Value::Str(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> R<Value> {
        Ok(Value::Bin(v.to_vec()))
    }
    fn serialize_none(self) -> R<Value> {
        Ok(Value::Nil)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> R<Value> {
        value.serialize(Ser::new(self.keys))
    }
    fn serialize_unit(self) -> R<Value> {
        Ok(Value::Nil)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> R<Value> {
        Ok(Value::Nil)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> R<Value> {
        Ok(Value::Sym(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> R<Value> {
        match name {
            SYMBOL_TOKEN => match value.serialize(Ser::new(self.keys))? {
                Value::Str(s) | Value::Sym(s) => Ok(Value::Sym(s)),
                other => Err(TypedError::msg(format!(
                    "a Symbol must be a string, not {}",
                    other.type_name()
                ))),
            },
            STRING_KEYS_TOKEN => value.serialize(Ser::new(KeyStyle::Strings)),
            SYMBOL_KEYS_TOKEN => value.serialize(Ser::new(KeyStyle::Symbols)),
            _ => value.serialize(Ser::new(self.keys)),
        }
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> R<Value> {
        let key = name_key(self.keys, variant);
        let v = entry(self.keys, &key, value)?;
        Ok(Value::Map(vec![(key, v)]))
    }
    fn serialize_seq(self, len: Option<usize>) -> R<SeqOut> {
        Ok(SeqOut::new(self.keys, len, true))
    }
    fn serialize_tuple(self, len: usize) -> R<SeqOut> {
        Ok(SeqOut::new(self.keys, Some(len), false))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> R<SeqOut> {
        Ok(SeqOut::new(self.keys, Some(len), false))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> R<VariantOut<SeqOut>> {
        Ok(VariantOut {
            key: name_key(self.keys, variant),
            inner: SeqOut::new(self.keys, Some(len), false),
        })
    }
    fn serialize_map(self, len: Option<usize>) -> R<MapOut> {
        Ok(MapOut {
            keys: self.keys,
            pairs: Vec::with_capacity(len.unwrap_or(0).min(256)),
            pending: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> R<StructOut> {
        Ok(StructOut {
            keys: self.keys,
            pairs: Vec::with_capacity(len.min(256)),
        })
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> R<VariantOut<StructOut>> {
        Ok(VariantOut {
            key: name_key(self.keys, variant),
            inner: StructOut {
                keys: self.keys,
                pairs: Vec::with_capacity(len.min(256)),
            },
        })
    }
}

/// Collects the items of a sequence, tuple or tuple struct.
pub(crate) struct SeqOut {
    keys: KeyStyle,
    items: Vec<Value>,
    /// Still true while every item was a `u8` (only for sequences).
    bytes: bool,
}

impl SeqOut {
    fn new(keys: KeyStyle, len: Option<usize>, bytes: bool) -> Self {
        SeqOut {
            keys,
            items: Vec::with_capacity(len.unwrap_or(0).min(256)),
            bytes,
        }
    }
    fn push<T: ?Sized + Serialize>(&mut self, value: &T) -> R<()> {
        let i = self.items.len();
        let flag = Cell::new(false);
        let v = value
            .serialize(Ser {
                keys: self.keys,
                saw_u8: self.bytes.then_some(&flag),
            })
            .map_err(|e| e.within(|| index_segment(i)))?;
        self.bytes &= flag.get();
        self.items.push(v);
        Ok(())
    }
    fn finish(self) -> Value {
        if self.bytes && !self.items.is_empty() {
            // Every item came from `serialize_u8`, so each is an Int in 0..=255.
            let bytes = self
                .items
                .iter()
                .map(|v| match v {
                    Value::Int(b) => *b as u8,
                    _ => 0,
                })
                .collect();
            return Value::Bin(bytes);
        }
        Value::Array(self.items)
    }
}

/// Sequences, tuples and tuple structs all collect their items into a [`SeqOut`].
macro_rules! seq_impl {
    ($($trait:ident :: $method:ident),*) => {
        $(impl ser::$trait for SeqOut {
            type Ok = Value;
            type Error = TypedError;
            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> R<()> {
                self.push(value)
            }
            fn end(self) -> R<Value> {
                Ok(self.finish())
            }
        })*
    };
}

seq_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

/// Collects the entries of a map.
pub(crate) struct MapOut {
    keys: KeyStyle,
    pairs: Vec<(MapKey, Value)>,
    pending: Option<MapKey>,
}

impl ser::SerializeMap for MapOut {
    type Ok = Value;
    type Error = TypedError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> R<()> {
        self.pending = Some(key.serialize(KeySer { keys: self.keys })?);
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> R<()> {
        let Some(key) = self.pending.take() else {
            return Err(TypedError::msg("a map value was given without its key"));
        };
        let v = entry(self.keys, &key, value)?;
        self.pairs.push((key, v));
        Ok(())
    }
    fn end(self) -> R<Value> {
        Ok(Value::Map(self.pairs))
    }
}

/// Collects the fields of a struct.
pub(crate) struct StructOut {
    keys: KeyStyle,
    pairs: Vec<(MapKey, Value)>,
}

impl ser::SerializeStruct for StructOut {
    type Ok = Value;
    type Error = TypedError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, name: &'static str, value: &T) -> R<()> {
        let key = name_key(self.keys, name);
        let v = entry(self.keys, &key, value)?;
        self.pairs.push((key, v));
        Ok(())
    }
    fn end(self) -> R<Value> {
        Ok(Value::Map(self.pairs))
    }
}

/// A tuple or struct variant: `{variant => content}`.
pub(crate) struct VariantOut<T> {
    key: MapKey,
    inner: T,
}

impl ser::SerializeTupleVariant for VariantOut<SeqOut> {
    type Ok = Value;
    type Error = TypedError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> R<()> {
        let key = &self.key;
        self.inner
            .push(value)
            .map_err(|e| e.within(|| key_segment(key)))
    }
    fn end(self) -> R<Value> {
        Ok(Value::Map(vec![(self.key, self.inner.finish())]))
    }
}

impl ser::SerializeStructVariant for VariantOut<StructOut> {
    type Ok = Value;
    type Error = TypedError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, name: &'static str, value: &T) -> R<()> {
        let key = &self.key;
        ser::SerializeStruct::serialize_field(&mut self.inner, name, value)
            .map_err(|e| e.within(|| key_segment(key)))
    }
    fn end(self) -> R<Value> {
        Ok(Value::Map(vec![(self.key, Value::Map(self.inner.pairs))]))
    }
}

/// Serializes map keys: strings in the chosen style, integers, Symbols, unit variants.
struct KeySer {
    keys: KeyStyle,
}

fn bad_key<T>(what: &str) -> R<T> {
    Err(TypedError::msg(format!(
        "has a map key that is {what}; ledger hash keys are Symbols, Strings or Integers"
    )))
}

impl ser::Serializer for KeySer {
    type Ok = MapKey;
    type Error = TypedError;
    type SerializeSeq = Impossible<MapKey, TypedError>;
    type SerializeTuple = Impossible<MapKey, TypedError>;
    type SerializeTupleStruct = Impossible<MapKey, TypedError>;
    type SerializeTupleVariant = Impossible<MapKey, TypedError>;
    type SerializeMap = Impossible<MapKey, TypedError>;
    type SerializeStruct = Impossible<MapKey, TypedError>;
    type SerializeStructVariant = Impossible<MapKey, TypedError>;

    fn serialize_bool(self, _v: bool) -> R<MapKey> {
        bad_key("a boolean")
    }
    int_arms!(MapKey, MapKey::Int);
    fn serialize_u8(self, v: u8) -> R<MapKey> {
        Ok(MapKey::Int(v.into()))
    }
    fn serialize_f32(self, _v: f32) -> R<MapKey> {
        bad_key("a float")
    }
    fn serialize_f64(self, _v: f64) -> R<MapKey> {
        bad_key("a float")
    }
    fn serialize_char(self, v: char) -> R<MapKey> {
        Ok(name_key(self.keys, v.encode_utf8(&mut [0; 4])))
    }
    fn serialize_str(self, v: &str) -> R<MapKey> {
        Ok(name_key(self.keys, v))
    }
    fn serialize_bytes(self, _v: &[u8]) -> R<MapKey> {
        bad_key("binary")
    }
    fn serialize_none(self) -> R<MapKey> {
        bad_key("None")
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _value: &T) -> R<MapKey> {
        bad_key("an Option")
    }
    fn serialize_unit(self) -> R<MapKey> {
        bad_key("()")
    }
    fn serialize_unit_struct(self, name: &'static str) -> R<MapKey> {
        bad_key(&format!("the unit struct {name}"))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> R<MapKey> {
        Ok(MapKey::Sym(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> R<MapKey> {
        let symbols = KeySer {
            keys: KeyStyle::Symbols,
        };
        let strings = KeySer {
            keys: KeyStyle::Strings,
        };
        match name {
            SYMBOL_TOKEN => match value.serialize(symbols)? {
                MapKey::Sym(s) => Ok(MapKey::Sym(s)),
                _ => bad_key("a Symbol that is not a string"),
            },
            STRING_KEY_TOKEN => match value.serialize(strings)? {
                MapKey::Str(s) => Ok(MapKey::Str(s)),
                _ => bad_key("a String key that is not a string"),
            },
            STRING_KEYS_TOKEN => value.serialize(strings),
            SYMBOL_KEYS_TOKEN => value.serialize(symbols),
            _ => value.serialize(self),
        }
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _value: &T,
    ) -> R<MapKey> {
        bad_key(&format!("the enum variant {name}::{variant} with data"))
    }
    fn serialize_seq(self, _len: Option<usize>) -> R<Self::SerializeSeq> {
        bad_key("a sequence")
    }
    fn serialize_tuple(self, _len: usize) -> R<Self::SerializeTuple> {
        bad_key("a tuple")
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> R<Self::SerializeTupleStruct> {
        bad_key(&format!("the tuple struct {name}"))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> R<Self::SerializeTupleVariant> {
        bad_key(&format!("the enum variant {name}::{variant} with data"))
    }
    fn serialize_map(self, _len: Option<usize>) -> R<Self::SerializeMap> {
        bad_key("a map")
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> R<Self::SerializeStruct> {
        bad_key(&format!("the struct {name}"))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> R<Self::SerializeStructVariant> {
        bad_key(&format!("the enum variant {name}::{variant} with data"))
    }
}
