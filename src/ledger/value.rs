//! The value model: what a fact can hold.
//!
//! [`Value`] mirrors the Ruby types the ledger accepts (nil, booleans, integers, floats,
//! UTF-8 strings, binary strings, symbols, arrays and hashes keyed by symbols, strings or
//! integers) so that a value written from Ruby comes back with exactly the same types:
//! a Symbol stays a Symbol, a String key stays a String key.
//!
//! ```
//! use igniter_ledger::{MapKey, Value};
//!
//! let v = Value::map([
//!     (MapKey::sym("title"), Value::from("Buy milk")),
//!     (MapKey::sym("status"), Value::sym("open")),
//! ]);
//! assert_eq!(v.get_sym("status"), Some(&Value::sym("open")));
//! // Map equality ignores insertion order, as Ruby's Hash#== does.
//! let w = Value::map([
//!     (MapKey::sym("status"), Value::sym("open")),
//!     (MapKey::sym("title"), Value::from("Buy milk")),
//! ]);
//! assert_eq!(v, w);
//! ```

use std::fmt;

use super::error::{Error, Result};

/// Limits enforced on every value before it is written.
///
/// They exist so that hostile or accidental input (a self-nesting structure, a
/// multi-gigabyte string) fails with a clear error instead of exhausting the stack or memory.
pub mod limits {
    /// Maximum nesting depth of arrays and maps (the top-level value is depth 1).
    pub const MAX_DEPTH: usize = 128;
    /// Maximum encoded size of one value, in bytes.
    pub const MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;
    /// Maximum length of a key, in bytes.
    pub const MAX_KEY_BYTES: usize = 64 * 1024;
    /// Maximum length of a store or history name, in bytes.
    pub const MAX_STORE_NAME_BYTES: usize = 1024;
}

/// A hash key: Ruby hashes in the ledger may be keyed by Symbols, Strings or Integers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MapKey {
    /// A Ruby Symbol key (`:title`).
    Sym(String),
    /// A Ruby String key (`"title"`).
    Str(String),
    /// An Integer key.
    Int(i64),
}

impl MapKey {
    /// A Symbol key.
    pub fn sym(s: impl Into<String>) -> Self {
        MapKey::Sym(s.into())
    }
    /// A String key.
    pub fn str(s: impl Into<String>) -> Self {
        MapKey::Str(s.into())
    }
    /// The same key as a [`Value`].
    pub fn to_value(&self) -> Value {
        match self {
            MapKey::Sym(s) => Value::Sym(s.clone()),
            MapKey::Str(s) => Value::Str(s.clone()),
            MapKey::Int(i) => Value::Int(*i),
        }
    }
    /// The key a value can serve as, if it is a Symbol, String or Integer.
    pub fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Sym(s) => Some(MapKey::Sym(s.clone())),
            Value::Str(s) => Some(MapKey::Str(s.clone())),
            Value::Int(i) => Some(MapKey::Int(*i)),
            _ => None,
        }
    }
}

impl fmt::Display for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapKey::Sym(s) => write!(f, ":{s}"),
            MapKey::Str(s) => write!(f, "{s:?}"),
            MapKey::Int(i) => write!(f, "{i}"),
        }
    }
}

/// A value stored in a fact.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// `nil`.
    #[default]
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float (NaN and ±Infinity are accepted and round-trip).
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// A binary (ASCII-8BIT) string.
    Bin(Vec<u8>),
    /// A Ruby Symbol.
    Sym(String),
    /// An array.
    Array(Vec<Value>),
    /// A hash, in insertion order. Keys are unique (checked on write).
    Map(Vec<(MapKey, Value)>),
}

impl Value {
    /// A Symbol value.
    pub fn sym(s: impl Into<String>) -> Self {
        Value::Sym(s.into())
    }
    /// A map from `(key, value)` pairs, in the given order.
    pub fn map<I: IntoIterator<Item = (MapKey, Value)>>(pairs: I) -> Self {
        Value::Map(pairs.into_iter().collect())
    }
    /// An array.
    pub fn array<I: IntoIterator<Item = Value>>(items: I) -> Self {
        Value::Array(items.into_iter().collect())
    }
    /// True for `Nil`.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }
    /// Looks up a key of a map value (None for other values or a missing key).
    pub fn get(&self, key: &MapKey) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    /// Looks up a Symbol key of a map value.
    pub fn get_sym(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| matches!(k, MapKey::Sym(s) if s == name))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    /// The string inside a `Str` or `Sym`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Sym(s) => Some(s),
            _ => None,
        }
    }
    /// The integer inside an `Int`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// A short name of the value's type, as Ruby would call it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "Boolean",
            Value::Int(_) => "Integer",
            Value::Float(_) => "Float",
            Value::Str(_) => "String",
            Value::Bin(_) => "binary String",
            Value::Sym(_) => "Symbol",
            Value::Array(_) => "Array",
            Value::Map(_) => "Hash",
        }
    }

    /// Checks the limits and the uniqueness of map keys. `what` names the value in errors
    /// (for example `"value"` gives paths like `value[:meta][2]`).
    pub fn validate(&self, what: &str) -> Result<()> {
        // Almost every value is valid: check without allocating first.
        if self.is_valid_at(1) {
            return Ok(());
        }
        self.validate_at(1).map_err(|(segments, reason)| {
            // The path is only built on failure: segments were collected innermost first.
            let mut path = String::from(what);
            for s in segments.iter().rev() {
                path.push_str(s);
            }
            Error::InvalidValue { path, reason }
        })
    }

    /// The checks of [`Value::validate_at`] without allocating.
    fn is_valid_at(&self, depth: usize) -> bool {
        if depth > limits::MAX_DEPTH {
            return false;
        }
        match self {
            Value::Array(items) => items.iter().all(|item| item.is_valid_at(depth + 1)),
            Value::Map(pairs) => {
                keys_unique(pairs) && pairs.iter().all(|(_, v)| v.is_valid_at(depth + 1))
            }
            _ => true,
        }
    }

    /// On failure: the path segments from the failing place outwards, and the reason.
    fn validate_at(&self, depth: usize) -> std::result::Result<(), (Vec<String>, String)> {
        if depth > limits::MAX_DEPTH {
            return Err((
                Vec::new(),
                format!("nests deeper than {} levels", limits::MAX_DEPTH),
            ));
        }
        match self {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    item.validate_at(depth + 1)
                        .map_err(|(mut segments, reason)| {
                            segments.push(format!("[{i}]"));
                            (segments, reason)
                        })?;
                }
            }
            Value::Map(pairs) => {
                if pairs.len() > 1 {
                    let mut keys: Vec<&MapKey> = pairs.iter().map(|(k, _)| k).collect();
                    keys.sort_unstable();
                    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
                        return Err((Vec::new(), format!("has the key {} twice", w[0])));
                    }
                }
                for (k, v) in pairs {
                    v.validate_at(depth + 1).map_err(|(mut segments, reason)| {
                        segments.push(format!("[{k}]"));
                        (segments, reason)
                    })?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// True when no key appears twice (pairwise for small maps, sorted otherwise).
fn keys_unique(pairs: &[(MapKey, Value)]) -> bool {
    if pairs.len() <= 16 {
        return pairs
            .iter()
            .enumerate()
            .all(|(i, (k, _))| pairs[..i].iter().all(|(p, _)| p != k));
    }
    let mut keys: Vec<&MapKey> = pairs.iter().map(|(k, _)| k).collect();
    keys.sort_unstable();
    keys.windows(2).all(|w| w[0] != w[1])
}

fn map_eq(a: &[(MapKey, Value)], b: &[(MapKey, Value)]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // Fast path: same order.
    if a.iter()
        .zip(b)
        .all(|((ka, va), (kb, vb))| ka == kb && va == vb)
    {
        return true;
    }
    a.iter()
        .all(|(k, v)| b.iter().any(|(kb, vb)| kb == k && vb == v))
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bin(a), Value::Bin(b)) => a == b,
            (Value::Sym(a), Value::Sym(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => map_eq(a, b),
            _ => false,
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v as i64)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v as i64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Nil, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_with_path() {
        let v = Value::map([(
            MapKey::sym("meta"),
            Value::map([
                (MapKey::sym("a"), Value::Int(1)),
                (MapKey::sym("a"), Value::Int(2)),
            ]),
        )]);
        let err = v.validate("value").unwrap_err();
        assert_eq!(
            err.to_string(),
            "value[:meta] has the key :a twice",
            "error names the path"
        );
    }

    #[test]
    fn duplicate_keys_in_large_maps_are_refused() {
        let mut pairs: Vec<(MapKey, Value)> =
            (0..40).map(|i| (MapKey::Int(i), Value::Int(i))).collect();
        assert!(Value::Map(pairs.clone()).validate("value").is_ok());
        pairs.push((MapKey::Int(7), Value::Nil));
        let err = Value::Array(vec![Value::Map(pairs)])
            .validate("value")
            .unwrap_err();
        assert_eq!(err.to_string(), "value[0] has the key 7 twice");
    }

    #[test]
    fn depth_limit_is_enforced() {
        let mut v = Value::Nil;
        for _ in 0..limits::MAX_DEPTH - 1 {
            v = Value::Array(vec![v]);
        }
        assert!(v.validate("value").is_ok());
        let v = Value::Array(vec![v]);
        let err = v.validate("value").unwrap_err();
        assert!(err.to_string().contains("nests deeper than 128"), "{err}");
    }

    #[test]
    fn symbol_and_string_differ() {
        assert_ne!(Value::sym("a"), Value::from("a"));
        assert_ne!(MapKey::sym("a"), MapKey::str("a"));
        assert_ne!(Value::Int(1), Value::Float(1.0));
    }
}
