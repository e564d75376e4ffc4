//! Reading and building packets: maps keyed by Symbols (from Ruby) or Strings (from JSON).
//!
//! Every field read here accepts either key form, and every name (store, kind, op...)
//! accepts a Symbol or a String, so a packet means the same whether it came from Ruby or
//! from the wire. Packets built here use Symbol keys and Symbol names, as the reference's
//! packets do.

use crate::{MapKey, Timestamp, Value};

use super::error::ProtocolError;

/// Limits on packets and envelopes, checked before anything is interpreted.
pub mod limits {
    /// Maximum nesting depth of a packet (the envelope itself is depth 1).
    pub const MAX_PACKET_DEPTH: usize = 64;
    /// Maximum approximate size of a packet, in bytes.
    pub const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;
    /// Maximum approximate size of a descriptor, in bytes.
    pub const MAX_DESCRIPTOR_BYTES: usize = 256 * 1024;
    /// Maximum length of a JSON envelope accepted by [`crate::protocol::WireEnvelope::dispatch_json`].
    pub const MAX_ENVELOPE_JSON_BYTES: usize = 32 * 1024 * 1024;
}

/// A field of a map packet by name (Symbol or String key). `nil` counts as absent.
pub fn field<'a>(packet: &'a Value, name: &str) -> Option<&'a Value> {
    let Value::Map(pairs) = packet else {
        return None;
    };
    pairs
        .iter()
        .find(|(k, _)| match k {
            MapKey::Sym(s) | MapKey::Str(s) => s == name,
            MapKey::Int(_) => false,
        })
        .map(|(_, v)| v)
        .filter(|v| !v.is_nil())
}

/// The text of a Symbol or non-empty String.
pub fn name_of(v: &Value) -> Option<&str> {
    match v {
        Value::Sym(s) | Value::Str(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// A required name field (Symbol or non-empty String).
pub fn req_name<'a>(packet: &'a Value, name: &str) -> Result<&'a str, ProtocolError> {
    match field(packet, name) {
        None => Err(ProtocolError::missing(name)),
        Some(v) => name_of(v).ok_or_else(|| {
            ProtocolError::invalid(
                name,
                format!("must be a Symbol or String, got {}", v.type_name()),
            )
        }),
    }
}

/// An optional name field.
pub fn opt_name<'a>(packet: &'a Value, name: &str) -> Result<Option<&'a str>, ProtocolError> {
    match field(packet, name) {
        None => Ok(None),
        Some(_) => req_name(packet, name).map(Some),
    }
}

/// A key: a String or Symbol (its text), or an Integer (its decimal form).
pub fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) | Value::Sym(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A required key field.
pub fn req_key(packet: &Value, name: &str) -> Result<String, ProtocolError> {
    let v = field(packet, name).ok_or_else(|| ProtocolError::missing(name))?;
    key_text(v).ok_or_else(|| {
        ProtocolError::invalid(name, format!("must be a String, got {}", v.type_name()))
    })
}

/// An optional time field in float seconds (Integer or Float).
pub fn opt_time(packet: &Value, name: &str) -> Result<Option<f64>, ProtocolError> {
    match field(packet, name) {
        None => Ok(None),
        Some(Value::Float(f)) if f.is_finite() => Ok(Some(*f)),
        Some(Value::Int(i)) => Ok(Some(*i as f64)),
        Some(v) => Err(ProtocolError::invalid(
            name,
            format!("must be a number of seconds, got {}", v.type_name()),
        )),
    }
}

/// An optional transaction-time field.
pub fn opt_timestamp(packet: &Value, name: &str) -> Result<Option<Timestamp>, ProtocolError> {
    Ok(opt_time(packet, name)?.map(Timestamp::from_secs_f64))
}

/// An optional non-negative integer field.
pub fn opt_count(packet: &Value, name: &str) -> Result<Option<usize>, ProtocolError> {
    match field(packet, name) {
        None => Ok(None),
        Some(Value::Int(i)) if *i >= 0 => Ok(Some(*i as usize)),
        Some(v) => Err(ProtocolError::invalid(
            name,
            format!("must be a non-negative Integer, got {}", v.type_name()),
        )),
    }
}

/// An optional map field.
pub fn opt_map<'a>(packet: &'a Value, name: &str) -> Result<Option<&'a Value>, ProtocolError> {
    match field(packet, name) {
        None => Ok(None),
        Some(v @ Value::Map(_)) => Ok(Some(v)),
        Some(v) => Err(ProtocolError::invalid(
            name,
            format!("must be a Hash, got {}", v.type_name()),
        )),
    }
}

/// A map with Symbol keys, in the given order.
pub fn obj<'a, I: IntoIterator<Item = (&'a str, Value)>>(pairs: I) -> Value {
    Value::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (MapKey::sym(k), v))
            .collect(),
    )
}

/// A Symbol value.
pub fn sym(s: &str) -> Value {
    Value::sym(s)
}

/// A Symbol, or nil.
pub fn opt_sym(s: Option<&str>) -> Value {
    s.map_or(Value::Nil, Value::sym)
}

/// A String, or nil.
pub fn opt_str(s: Option<String>) -> Value {
    s.map_or(Value::Nil, Value::Str)
}

/// A Float, or nil.
pub fn opt_float(f: Option<f64>) -> Value {
    f.map_or(Value::Nil, Value::Float)
}

/// Sets (or adds) a Symbol-keyed field of a map value.
pub fn set(map: &mut Value, name: &str, v: Value) {
    if let Value::Map(pairs) = map {
        if let Some(slot) = pairs
            .iter_mut()
            .find(|(k, _)| matches!(k, MapKey::Sym(s) | MapKey::Str(s) if s == name))
        {
            slot.1 = v;
        } else {
            pairs.push((MapKey::sym(name), v));
        }
    }
}

/// A copy of a map without the named fields.
pub fn without(map: &Value, names: &[&str]) -> Value {
    match map {
        Value::Map(pairs) => Value::Map(
            pairs
                .iter()
                .filter(|(k, _)| {
                    !matches!(k, MapKey::Sym(s) | MapKey::Str(s) if names.contains(&s.as_str()))
                })
                .cloned()
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Checks the nesting depth and approximate size of a packet.
pub fn check_bounds(v: &Value, what: &str, max_bytes: usize) -> Result<(), ProtocolError> {
    let mut budget = max_bytes;
    walk(v, 1, &mut budget).map_err(|reason| ProtocolError::invalid(what, reason))
}

fn walk(v: &Value, depth: usize, budget: &mut usize) -> Result<(), String> {
    if depth > limits::MAX_PACKET_DEPTH {
        return Err(format!(
            "nests deeper than {} levels",
            limits::MAX_PACKET_DEPTH
        ));
    }
    let cost = match v {
        Value::Str(s) | Value::Sym(s) => s.len() + 1,
        Value::Bin(b) => b.len() + 1,
        Value::Array(items) => items.len() + 1,
        Value::Map(pairs) => pairs.len() * 2 + 1,
        _ => 9,
    };
    *budget = budget
        .checked_sub(cost)
        .ok_or_else(|| "is too large".to_string())?;
    match v {
        Value::Array(items) => items.iter().try_for_each(|i| walk(i, depth + 1, budget)),
        Value::Map(pairs) => pairs.iter().try_for_each(|(k, val)| {
            if let MapKey::Sym(s) | MapKey::Str(s) = k {
                *budget = budget
                    .checked_sub(s.len())
                    .ok_or_else(|| "is too large".to_string())?;
            }
            walk(val, depth + 1, budget)
        }),
        _ => Ok(()),
    }
}

/// A total order over values, for `order:` (type rank first, then the value).
pub fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Nil => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 2,
            Value::Str(_) | Value::Sym(_) => 3,
            Value::Bin(_) => 4,
            Value::Array(_) => 5,
            Value::Map(_) => 6,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Int(x), Value::Float(y)) => (*x as f64).total_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.total_cmp(&(*y as f64)),
        (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
        (Value::Str(x) | Value::Sym(x), Value::Str(y) | Value::Sym(y)) => x.cmp(y),
        (Value::Bin(x), Value::Bin(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = compare(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}
