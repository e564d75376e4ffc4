//! The hash-key compatibility switch ([`HashKeys`]).
//!
//! Values are type-faithful by default: a map written with String keys reads back with
//! String keys. The reference gem (igniter-ledger 0.5.2) handed keys back as Symbols in
//! its native mode (and in its pure-Ruby mode after a reopen), so code written against it
//! writes `"available_seconds" => 5` and reads `value[:available_seconds]`. A ledger
//! opened with [`HashKeys::Symbolize`] serves that code: at write time, every String key
//! of the value (or event), the producer and the derivation maps becomes a Symbol key, at
//! every depth (maps inside arrays included). String *values* stay Strings; Integer keys
//! stay Integers. Facts already stored are not rewritten.
//!
//! Under `Symbolize` a String partition key (an append's `partition_key`, a
//! `history_partition` query) and String filter keys of access paths name the Symbol key
//! too, so they keep finding what was written. A map with both `"a"` and `:a` becomes a
//! map with `:a` twice, which the write refuses (`InvalidValue`: duplicate key).

use super::access::AccessPath;
use super::request::{Append, Batch, Op, PartitionQuery, Write};
use super::value::{MapKey, Value};

/// What a ledger does with String hash keys of the values written to it.
///
/// ```
/// use igniter_ledger::{HashKeys, LedgerStore, MapKey, OpenOptions, Read, Value, Write};
///
/// let ledger = LedgerStore::memory_with(OpenOptions::new().hash_keys(HashKeys::Symbolize));
/// ledger.write(Write::new("slots", "s1", Value::map([
///     (MapKey::str("available_seconds"), Value::Int(5)),
/// ]))).unwrap();
/// let v = ledger.read(Read::new("slots", "s1")).unwrap().unwrap();
/// assert_eq!(v.get_sym("available_seconds"), Some(&Value::Int(5)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashKeys {
    /// Keys are kept as written (the default: type-faithful).
    #[default]
    Keep,
    /// String keys become Symbol keys at write time, at every depth.
    Symbolize,
}

impl HashKeys {
    /// Parses `"keep"` / `"symbolize"`.
    pub fn parse(s: &str) -> Option<HashKeys> {
        match s {
            "keep" => Some(HashKeys::Keep),
            "symbolize" => Some(HashKeys::Symbolize),
            _ => None,
        }
    }

    /// The name [`HashKeys::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            HashKeys::Keep => "keep",
            HashKeys::Symbolize => "symbolize",
        }
    }

    /// The batch with this policy applied to every operation's value, producer,
    /// derivation and partition key.
    pub(crate) fn apply_batch(self, batch: Batch) -> Batch {
        if self == HashKeys::Keep {
            return batch;
        }
        Batch {
            ops: batch
                .ops
                .into_iter()
                .map(|op| match op {
                    Op::Write(w) => Op::Write(symbolize_write(w)),
                    Op::Append(a) => Op::Append(symbolize_append(a)),
                })
                .collect(),
        }
    }

    /// The partition query with its partition key under this policy.
    pub(crate) fn apply_partition(self, q: &PartitionQuery) -> Option<PartitionQuery> {
        match (self, &q.partition_key) {
            (HashKeys::Symbolize, MapKey::Str(k)) => {
                let mut q = q.clone();
                q.partition_key = MapKey::Sym(k.clone());
                Some(q)
            }
            _ => None,
        }
    }

    /// The access path with its filter keys (and filter values' keys) under this policy.
    pub(crate) fn apply_path(self, path: AccessPath) -> AccessPath {
        if self == HashKeys::Keep {
            return path;
        }
        let mut path = path;
        path.filters = std::mem::take(&mut path.filters)
            .into_iter()
            .map(|(k, v)| (symbolize_key(k), symbolize(v)))
            .collect();
        path
    }
}

fn symbolize_key(k: MapKey) -> MapKey {
    match k {
        MapKey::Str(s) => MapKey::Sym(s),
        k => k,
    }
}

fn symbolize_opt(v: Option<Value>) -> Option<Value> {
    v.map(symbolize)
}

fn symbolize_write(mut w: Write) -> Write {
    w.value = symbolize(std::mem::take(&mut w.value));
    w.producer = symbolize_opt(w.producer.take());
    w.derivation = symbolize_opt(w.derivation.take());
    w
}

fn symbolize_append(mut a: Append) -> Append {
    a.event = symbolize(std::mem::take(&mut a.event));
    a.producer = symbolize_opt(a.producer.take());
    a.derivation = symbolize_opt(a.derivation.take());
    a.partition_key = a.partition_key.take().map(symbolize_key);
    a
}

/// `v` with every String map key turned into a Symbol key, at every depth.
pub fn symbolize(v: Value) -> Value {
    match v {
        Value::Map(pairs) => Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (symbolize_key(k), symbolize(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(symbolize).collect()),
        v => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolizes_string_keys_at_every_depth_and_nothing_else() {
        let v = Value::map([
            (MapKey::str("a"), Value::from("str value")),
            (MapKey::Int(1), Value::Int(2)),
            (
                MapKey::str("nested"),
                Value::Array(vec![Value::map([(MapKey::str("deep"), Value::sym("s"))])]),
            ),
        ]);
        let out = symbolize(v);
        assert_eq!(
            out,
            Value::map([
                (MapKey::sym("a"), Value::from("str value")),
                (MapKey::Int(1), Value::Int(2)),
                (
                    MapKey::sym("nested"),
                    Value::Array(vec![Value::map([(MapKey::sym("deep"), Value::sym("s"))])]),
                ),
            ])
        );
    }

    #[test]
    fn parse_and_name_round_trip() {
        for h in [HashKeys::Keep, HashKeys::Symbolize] {
            assert_eq!(HashKeys::parse(h.name()), Some(h));
        }
        assert_eq!(HashKeys::parse("strings"), None);
    }
}
