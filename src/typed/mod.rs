//! Typed values: Rust types in and out of the ledger through serde.
//!
//! A Rust app keeps its data in its own types. [`to_value`] turns any `T: Serialize` into
//! a ledger [`Value`], [`from_value`] turns a `Value` back into any `T: Deserialize`, and
//! the typed reads ([`Fact::value_as`](crate::Fact::value_as),
//! [`LedgerStore::read_as`](crate::LedgerStore::read_as),
//! [`history_as`](crate::LedgerStore::history_as), ...) decode a fact's stored
//! MessagePack bytes straight into `T`, without building a `Value` tree first.
//!
//! ```
//! use igniter_ledger::{LedgerStore, Read, Write, value};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! #[serde(rename_all = "snake_case")]
//! enum Status { Open, Paid }
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Order { id: String, status: Status, total: f64, note: Option<String> }
//!
//! let ledger = LedgerStore::memory();
//! let order = Order { id: "o-1".into(), status: Status::Paid, total: 12.5, note: None };
//! ledger.write(Write::typed("orders", "o-1", &order)?)?;
//!
//! // What Ruby reads: {id: "o-1", status: :paid, total: 12.5, note: nil}
//! let stored = ledger.read(Read::new("orders", "o-1"))?.unwrap();
//! assert_eq!(stored, value!({ id: "o-1", status: :paid, total: 12.5, note: nil }));
//!
//! let back: Order = ledger.read_as(Read::new("orders", "o-1"))?.unwrap();
//! assert_eq!(back, order);
//! # Ok::<(), igniter_ledger::Error>(())
//! ```
//!
//! # How Rust types map onto ledger values
//!
//! | Rust (serde data model) | ledger value (Ruby) |
//! |---|---|
//! | `bool` | `true` / `false` |
//! | `i8`..`i64`, `u8`..`u32`, `u64`/`i128`/`u128` within i64 | Integer |
//! | `u64`/`i128`/`u128` beyond i64 | refused (error names the path) |
//! | `f32`, `f64` (NaN and infinities included) | Float |
//! | `char`, `String`, `&str` | String (UTF-8) |
//! | `Vec<u8>`, `&[u8]` (non-empty), `serde_bytes` | binary String (`bin`); an empty `Vec<u8>` is `[]` (serde gives an empty sequence no item type: use `serde_bytes` for an always-binary field) |
//! | `Option<T>` | `nil` or the value |
//! | `()`, unit struct | `nil` |
//! | struct, `HashMap`/`BTreeMap` | Hash (in field/iteration order) |
//! | struct field names, string map keys | Symbol keys (default, [`KeyStyle::Symbols`]) or String keys ([`KeyStyle::Strings`]) |
//! | integer map keys | Integer keys |
//! | other map keys (floats, bools, tuples, `Option`, ...) | refused |
//! | unit enum variant (`Status::Paid`) | Symbol (`:paid` with `rename_all = "snake_case"`) |
//! | newtype/tuple/struct variant | `{variant: data}` (key in the key style) |
//! | `Vec<T>`, tuples, arrays | Array |
//! | [`Value`], [`MapKey`](crate::MapKey) | themselves, Symbols included |
//! | a `String` field with `#[serde(with = "igniter_ledger::typed::symbol")]` | Symbol |
//!
//! Serde's own attributes work as usual (`rename`, `rename_all`, `default`, `skip_*`,
//! `flatten`, internally/adjacently tagged and untagged enums). Two things follow from
//! serde giving those no Symbol type: an internal tag (`#[serde(tag = "type")]`) is
//! written as a String, and a [`Value`] inside a `flatten`ed or untagged part reads
//! Symbols back as Strings (serde buffers that content in its own model first).
//!
//! Reading is lenient where Ruby is: a struct field or an enum variant matches a Symbol
//! key/value or a String one of the same name; a `String` field reads a Symbol as its
//! name; an `f64` field reads an Integer; a `Vec<u8>` reads binary or an Array of bytes;
//! unknown hash keys are ignored unless the struct says `#[serde(deny_unknown_fields)]`.
//!
//! # Key style
//!
//! Ruby code reading the ledger expects the keys it writes itself, which are Symbols in
//! idiomatic Ruby (`{status: :paid}`, as the 0.5.2 gem's examples and specs write them),
//! so [`to_value`] and [`Write::typed`](crate::Write::typed) write struct fields and
//! string map keys as Symbols. A store whose Ruby side uses String keys writes with
//! [`KeyStyle::Strings`] ([`to_value_with`], [`Write::typed_with`](crate::Write::typed_with),
//! or [`TypedStore::keys`] for every write through one handle). One field can choose for
//! its own subtree, whatever the style around it, with
//! `#[serde(with = "igniter_ledger::typed::string_keys")]` or
//! `#[serde(with = "igniter_ledger::typed::symbol_keys")]`.
//!
//! # Errors
//!
//! Every conversion fails with a [`TypedError`], a serde error whose
//! [`path`](TypedError::path) names the place (`value[:lines][2][:qty]`). A write whose
//! value cannot be converted fails before anything is written. Converted into the
//! ledger's [`Error`](crate::Error), a `TypedError` becomes
//! [`Error::InvalidValue`](crate::Error::InvalidValue) with the same path and reason.
//!
//! # The `value!` macro
//!
//! [`value!`](crate::value!) writes literal values in Ruby's notation:
//! `value!({ status: :paid, total: 12.5, tags: ["a"], "str key" => 1, 7 => nil })`.

mod de;
mod error;
mod ledger;
mod macros;
mod ser;
mod value_serde;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Value;

pub use error::TypedError;
pub use ledger::TypedStore;

/// Reserved newtype-struct name: a Symbol being serialized.
const SYMBOL_TOKEN: &str = "$igniter_ledger::Symbol";
/// Reserved newtype-struct name: a String hash key of a [`Value`] (stays a String key
/// whatever the key style).
const STRING_KEY_TOKEN: &str = "$igniter_ledger::StringKey";
/// Reserved newtype-struct name: a [`Value`] or [`MapKey`](crate::MapKey) being
/// deserialized (Symbols must stay Symbols).
const VALUE_TOKEN: &str = "$igniter_ledger::Value";
/// Reserved newtype-struct name: serialize the inside with String keys.
const STRING_KEYS_TOKEN: &str = "$igniter_ledger::StringKeys";
/// Reserved newtype-struct name: serialize the inside with Symbol keys.
const SYMBOL_KEYS_TOKEN: &str = "$igniter_ledger::SymbolKeys";

/// How struct field names and string map keys are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyStyle {
    /// As Symbols (`{status: :paid}` in Ruby). The default.
    #[default]
    Symbols,
    /// As Strings (`{"status" => :paid}` in Ruby).
    Strings,
}

/// Converts any `T: Serialize` into a ledger [`Value`], with Symbol keys.
///
/// ```
/// use igniter_ledger::{to_value, value};
/// use std::collections::BTreeMap;
///
/// let counts = BTreeMap::from([("a", 1), ("b", 2)]);
/// assert_eq!(to_value(&counts)?, value!({ a: 1, b: 2 }));
/// let err = to_value(&u64::MAX).unwrap_err();
/// assert_eq!(err.path(), "value");
/// # Ok::<(), igniter_ledger::TypedError>(())
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, TypedError> {
    to_value_with(value, KeyStyle::Symbols)
}

/// Converts any `T: Serialize` into a ledger [`Value`], writing struct field names and
/// string map keys in the given style.
///
/// ```
/// use igniter_ledger::{to_value_with, value, KeyStyle};
/// #[derive(serde::Serialize)]
/// struct Line { sku: String, qty: u32 }
/// let v = to_value_with(&Line { sku: "a".into(), qty: 2 }, KeyStyle::Strings)?;
/// assert_eq!(v, value!({ "sku" => "a", "qty" => 2 }));
/// # Ok::<(), igniter_ledger::TypedError>(())
/// ```
pub fn to_value_with<T: Serialize + ?Sized>(
    value: &T,
    keys: KeyStyle,
) -> Result<Value, TypedError> {
    value.serialize(ser::Ser::new(keys))
}

/// Converts a ledger [`Value`] into any `T: DeserializeOwned`.
///
/// ```
/// use igniter_ledger::{from_value, value};
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Line { sku: String, qty: u32 }
/// let line: Line = from_value(value!({ sku: "a", qty: 2 }))?;
/// assert_eq!(line, Line { sku: "a".into(), qty: 2 });
/// let err = from_value::<Line>(value!({ sku: "a", qty: -1 })).unwrap_err();
/// assert_eq!(err.path(), "value[:qty]");
/// # Ok::<(), igniter_ledger::TypedError>(())
/// ```
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, TypedError> {
    from_value_ref(&value)
}

/// Converts a borrowed ledger [`Value`] into any `T: Deserialize` (which may borrow
/// strings and bytes from it).
pub fn from_value_ref<'a, T: Deserialize<'a>>(value: &'a Value) -> Result<T, TypedError> {
    let mut de = de::De::new(de::ValueTokens::new(value));
    T::deserialize(&mut de)
}

/// Decodes one value encoded in the ledger's MessagePack (the ledger codec; for
/// example [`Fact::value_bytes`](crate::Fact::value_bytes)) straight into `T`, without
/// building a [`Value`]. The whole slice must be that one value.
///
/// ```
/// use igniter_ledger::{from_slice, value, LedgerStore, Write};
/// let ledger = LedgerStore::memory();
/// let fact = ledger.write(Write::new("posts", "p1", value!({ tags: ["a", :b] })))?;
/// let bytes = fact.value_bytes();
/// #[derive(serde::Deserialize)]
/// struct Tagged<'a> { #[serde(borrow)] tags: Vec<&'a str> }
/// let t: Tagged = from_slice(&bytes)?;
/// assert_eq!(t.tags, ["a", "b"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, TypedError> {
    let mut de = de::De::new(de::ByteTokens::new(bytes));
    let out = T::deserialize(&mut de)?;
    if de.src.reader.remaining() != 0 {
        return Err(TypedError::msg(format!(
            "is followed by {} bytes that are not part of it",
            de.src.reader.remaining()
        )));
    }
    Ok(out)
}

/// `#[serde(with = "igniter_ledger::typed::symbol")]` on a `String` (or `&str`) field:
/// written as a Symbol; read from a Symbol or a String.
///
/// ```
/// use igniter_ledger::{to_value, value};
/// #[derive(serde::Serialize)]
/// struct Event { #[serde(with = "igniter_ledger::typed::symbol")] kind: String }
/// assert_eq!(to_value(&Event { kind: "paid".into() })?, value!({ kind: :paid }));
/// # Ok::<(), igniter_ledger::TypedError>(())
/// ```
pub mod symbol {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes the string as a Symbol (a plain string for other formats).
    pub fn serialize<T: AsRef<str> + ?Sized, S: Serializer>(
        v: &T,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(super::SYMBOL_TOKEN, v.as_ref())
    }

    /// Deserializes the field as usual (a Symbol reads as its name).
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        T::deserialize(d)
    }
}

/// `#[serde(with = "igniter_ledger::typed::string_keys")]` on a field: the field's value
/// is written with String keys (struct fields and string map keys, all the way down),
/// whatever the style around it. Reading accepts either kind of key.
///
/// ```
/// use igniter_ledger::{to_value, value};
/// use std::collections::BTreeMap;
/// #[derive(serde::Serialize)]
/// struct Stock {
///     sku: String,
///     #[serde(with = "igniter_ledger::typed::string_keys")]
///     by_warehouse: BTreeMap<String, u32>,
/// }
/// let s = Stock { sku: "a".into(), by_warehouse: BTreeMap::from([("berlin".into(), 3)]) };
/// assert_eq!(to_value(&s)?, value!({ sku: "a", by_warehouse: { "berlin" => 3 } }));
/// # Ok::<(), igniter_ledger::TypedError>(())
/// ```
pub mod string_keys {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes the value with String keys (unchanged for other formats).
    pub fn serialize<T: Serialize + ?Sized, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(super::STRING_KEYS_TOKEN, v)
    }

    /// Deserializes the value as usual (Symbol and String keys both match).
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        T::deserialize(d)
    }
}

/// `#[serde(with = "igniter_ledger::typed::symbol_keys")]` on a field: the field's value
/// is written with Symbol keys, whatever the style around it (see [`string_keys`]).
pub mod symbol_keys {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes the value with Symbol keys (unchanged for other formats).
    pub fn serialize<T: Serialize + ?Sized, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(super::SYMBOL_KEYS_TOKEN, v)
    }

    /// Deserializes the value as usual (Symbol and String keys both match).
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        T::deserialize(d)
    }
}
