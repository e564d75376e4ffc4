//! `Serialize` and `Deserialize` for [`Value`] and [`MapKey`].
//!
//! Symbols have no place in serde's data model, so a Symbol is serialized as a newtype
//! struct with a reserved name: this crate's serializer turns it back into a Symbol, any
//! other serializer (`serde_json`, ...) sees a plain string. Deserializing asks for a
//! newtype struct with another reserved name: this crate's deserializers answer a Symbol
//! as a one-variant enum with a reserved tag, any other deserializer calls
//! `visit_newtype_struct`, which reads the value as usual (strings as Strings). A String
//! hash key is serialized as a newtype struct with a third reserved name, so that the
//! key style of a typed write ([`KeyStyle`](super::KeyStyle)) does not turn it into a Symbol.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::{STRING_KEY_TOKEN, SYMBOL_TOKEN, VALUE_TOKEN};
use crate::{MapKey, Value};

/// A Symbol's name, serialized as the reserved newtype struct.
struct Sym<'a>(&'a str);

impl Serialize for Sym<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(SYMBOL_TOKEN, self.0)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Bin(b) => s.serialize_bytes(b),
            Value::Sym(name) => Sym(name).serialize(s),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl Serialize for MapKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MapKey::Sym(name) => Sym(name).serialize(s),
            // A String key stays a String key whatever the key style around it.
            MapKey::Str(v) => s.serialize_newtype_struct(STRING_KEY_TOKEN, v),
            MapKey::Int(i) => s.serialize_i64(*i),
        }
    }
}

/// Reads the reserved Symbol enum: true when its tag is the Symbol tag.
struct IsSymbolTag;

impl<'de> de::DeserializeSeed<'de> for IsSymbolTag {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Symbol")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
                if v == SYMBOL_TOKEN {
                    Ok(())
                } else {
                    Err(E::unknown_variant(v, &[SYMBOL_TOKEN]))
                }
            }
        }
        d.deserialize_identifier(V)
    }
}

/// The name inside a Symbol enum.
fn symbol_name<'de, A: EnumAccess<'de>>(data: A) -> Result<String, A::Error> {
    let ((), variant) = data.variant_seed(IsSymbolTag)?;
    variant.newtype_variant::<String>()
}

struct ValueVisitor;

impl<'de> de::Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a ledger value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v).map(Value::Int).map_err(|_| {
            E::custom(format!(
                "integer {v} is beyond the 64-bit signed range of ledger integers"
            ))
        })
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v).map(Value::Int).map_err(|_| {
            E::custom(format!(
                "integer {v} is beyond the 64-bit signed range of ledger integers"
            ))
        })
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i64::try_from(v).map(Value::Int).map_err(|_| {
            E::custom(format!(
                "integer {v} is beyond the 64-bit signed range of ledger integers"
            ))
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bin(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bin(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        // Another format's answer to our newtype request: the value itself.
        d.deserialize_any(ValueVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(256));
        while let Some((k, v)) = map.next_entry::<MapKey, Value>()? {
            pairs.push((k, v));
        }
        Ok(Value::Map(pairs))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        symbol_name(data).map(Value::Sym)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_newtype_struct(VALUE_TOKEN, ValueVisitor)
    }
}

struct KeyVisitor;

impl<'de> de::Visitor<'de> for KeyVisitor {
    type Value = MapKey;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Symbol, String or Integer hash key")
    }
    fn visit_i64<E>(self, v: i64) -> Result<MapKey, E> {
        Ok(MapKey::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<MapKey, E> {
        i64::try_from(v).map(MapKey::Int).map_err(|_| {
            E::custom(format!(
                "integer key {v} is beyond the 64-bit signed range of ledger integers"
            ))
        })
    }
    fn visit_str<E>(self, v: &str) -> Result<MapKey, E> {
        Ok(MapKey::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<MapKey, E> {
        Ok(MapKey::Str(v))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<MapKey, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<MapKey, A::Error> {
        symbol_name(data).map(MapKey::Sym)
    }
}

impl<'de> Deserialize<'de> for MapKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MapKey, D::Error> {
        d.deserialize_newtype_struct(VALUE_TOKEN, KeyVisitor)
    }
}
