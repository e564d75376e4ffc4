//! Values on the wire: plain JSON, as the reference's transports send.
//!
//! Value → JSON: Symbols become strings, map keys become strings (Integer keys their
//! decimal form), binary strings become a string when they hold UTF-8 and an array of
//! byte values otherwise, and non-finite floats become `null` (JSON has no NaN).
//! JSON → Value: object keys become Symbols (as the reference's `symbolize_names: true`),
//! strings stay Strings, integers that fit in 64 bits stay Integers and other numbers
//! become Floats. So a packet the specs use round-trips except for the Symbol/String
//! distinction of *values*, which JSON cannot carry; the protocol reads names either way.

use crate::{MapKey, Value};

/// A value as JSON.
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Str(s) | Value::Sym(s) => J::String(s.clone()),
        Value::Bin(b) => match std::str::from_utf8(b) {
            Ok(s) => J::String(s.to_owned()),
            Err(_) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
        },
        Value::Array(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(pairs) => J::Object(
            pairs
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        MapKey::Sym(s) | MapKey::Str(s) => s.clone(),
                        MapKey::Int(i) => i.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
    }
}

/// JSON as a value (object keys as Symbols).
pub fn from_json(j: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::Str(s.clone()),
        J::Array(items) => Value::Array(items.iter().map(from_json).collect()),
        J::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| (MapKey::sym(k.as_str()), from_json(v)))
                .collect(),
        ),
    }
}
