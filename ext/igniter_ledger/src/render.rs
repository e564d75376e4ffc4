//! The pieces every binding renders core answers with: Symbols, Hashes with Symbol keys,
//! fact ids as Strings, nil for what is absent, and a core `FactRef` as a Hash. One copy
//! for the store, retention, changefeed, derivation and error bindings.

use igniter_ledger::FactRef;
use magnus::{prelude::*, Error, IntoValue, RHash, Ruby, Value as RValue};

use crate::convert;

/// `:name`.
pub fn sym(ruby: &Ruby, name: &str) -> RValue {
    convert::symbol(ruby, name)
}

/// nil.
pub fn nil(ruby: &Ruby) -> RValue {
    ruby.qnil().as_value()
}

/// A Hash with Symbol keys.
pub fn hash_of(ruby: &Ruby, pairs: &[(&str, RValue)]) -> Result<RHash, Error> {
    let h = ruby.hash_new();
    for (k, v) in pairs {
        h.aset(sym(ruby, k), *v)?;
    }
    Ok(h)
}

/// A fact id as its canonical (hyphenated) frozen String.
pub fn id(ruby: &Ruby, id: uuid::Uuid) -> RValue {
    convert::string(ruby, &id.hyphenated().to_string(), true)
}

/// A fact id, or nil.
pub fn opt_id(ruby: &Ruby, v: Option<uuid::Uuid>) -> RValue {
    v.map_or_else(|| nil(ruby), |v| id(ruby, v))
}

/// Anything convertible, or nil.
pub fn opt<T: IntoValue>(ruby: &Ruby, v: Option<T>) -> RValue {
    v.map_or_else(|| nil(ruby), |v| v.into_value_with(ruby))
}

/// A core value (deep-frozen), or nil.
pub fn opt_value(ruby: &Ruby, v: Option<&igniter_ledger::Value>) -> RValue {
    v.map_or_else(|| nil(ruby), |v| convert::to_ruby(ruby, v, true))
}

/// `{id:, store:, key:, transaction_time:, valid_time:, value_hash:}`.
pub fn fact_ref(ruby: &Ruby, r: &FactRef) -> Result<RHash, Error> {
    hash_of(
        ruby,
        &[
            ("id", id(ruby, r.id)),
            ("store", sym(ruby, &r.store)),
            ("key", convert::string(ruby, &r.key, true)),
            (
                "transaction_time",
                r.transaction_time.as_secs_f64().into_value_with(ruby),
            ),
            ("valid_time", r.valid_time.into_value_with(ruby)),
            ("value_hash", convert::string(ruby, &r.value_hash, true)),
        ],
    )
}
