//! Where the interpreter gets what other modules of the core know.
//!
//! The interpreter translates packets into calls on [`LedgerStore`]. Some answers belong
//! to modules that grow beside it: relation indexes and derived metadata (`derive/`),
//! retention policies and compaction activity (`retention/`), segment storage statistics
//! (`segments/`), changefeed diagnostics (`changefeed/`). [`Sources`] is the seam they
//! fill: every method has a default that answers honestly from what a plain
//! [`LedgerStore`] holds, and a module replaces a default by implementing the method and
//! handing its `Sources` to [`Interpreter::with_sources`](super::Interpreter::with_sources).

use std::collections::HashMap;

use crate::{HistoryQuery, LedgerStore, Timestamp, Value};

use super::descriptor::RelationRule;
use super::error::ProtocolError;
use super::packet::field;

/// One record of a query or resolve answer: a key and its current (coerced) value.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The record's key.
    pub key: String,
    /// The record's value.
    pub value: Value,
}

/// Filters of a `compaction_activity` request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActivityQuery {
    /// Only entries of this store.
    pub store: Option<String>,
    /// Only entries of this kind (`retention_compaction`, `exact_prune`, `segment_purge`).
    pub kind: Option<String>,
    /// Only entries that occurred at or after this time (seconds).
    pub since: Option<f64>,
    /// At most this many entries (the newest).
    pub limit: Option<usize>,
}

/// Answers the interpreter takes from modules beside the ledger (see the module docs).
pub trait Sources: Send + Sync {
    /// Called when a relation descriptor is accepted, so an index can be set up.
    /// Default: nothing to set up ([`Sources::resolve`] scans).
    fn register_relation(
        &self,
        _store: &LedgerStore,
        _rule: &RelationRule,
    ) -> Result<(), ProtocolError> {
        Ok(())
    }

    /// The current records of `rule.source` whose `rule.partition` field equals `from`.
    /// Default: a scan of the source store's latest facts, O(facts of the store).
    fn resolve(
        &self,
        store: &LedgerStore,
        rule: &RelationRule,
        from: &Value,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<Item>, ProtocolError> {
        let items = latest_items(store, &rule.source, as_of)?;
        Ok(items
            .into_iter()
            .filter(|i| field(&i.value, &rule.partition).is_some_and(|v| same(v, from)))
            .collect())
    }

    /// Derivation rules registered on the store, as metadata. Default: none.
    fn derivations(&self, _store: &LedgerStore) -> Vec<Value> {
        Vec::new()
    }

    /// Scatter rules registered on the store (besides those relations imply), as metadata.
    /// Default: none.
    fn scatters(&self, _store: &LedgerStore) -> Vec<Value> {
        Vec::new()
    }

    /// Retention policies by store. Default: none (an empty map: no store has a policy).
    fn retention(&self, _store: &LedgerStore) -> Value {
        Value::Map(Vec::new())
    }

    /// Segment storage statistics (string-keyed, as the reference), or None when the
    /// ledger is not segmented (a WAL or memory ledger has no segments).
    fn storage_stats(&self, store: &LedgerStore, name: Option<&str>) -> Option<Value> {
        store.storage_stats(name).as_ref().map(string_keyed)
    }

    /// The segment manifest (string-keyed), or None when the ledger is not segmented.
    fn segment_manifest(&self, store: &LedgerStore, name: Option<&str>) -> Option<Value> {
        store.segment_manifest(name).as_ref().map(string_keyed)
    }

    /// Compaction, prune and purge activity entries, oldest first. Default: none — a
    /// ledger without the retention module never compacts, prunes or purges.
    fn compaction_activity(&self, _store: &LedgerStore, _q: &ActivityQuery) -> Vec<Value> {
        Vec::new()
    }

    /// Changefeed diagnostics for the observability snapshot, or None without a
    /// changefeed. Default: None.
    fn changefeed(&self, _store: &LedgerStore) -> Option<Value> {
        None
    }
}

/// The defaults of [`Sources`]: what a plain [`LedgerStore`] can answer.
#[derive(Clone, Copy, Debug, Default)]
pub struct CoreSources;

impl Sources for CoreSources {}

/// True when two values are equal, Symbols and Strings comparing by text (the wire cannot
/// tell them apart).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Sym(x) | Value::Str(x), Value::Sym(y) | Value::Str(y)) => x == y,
        _ => a == b,
    }
}

/// The latest (coerced) value of every key of a store, as of `as_of`, ordered by key:
/// O(keys) for the current state, O(facts of the store) with `as_of`.
pub fn latest_items(
    store: &LedgerStore,
    name: &str,
    as_of: Option<Timestamp>,
) -> Result<Vec<Item>, ProtocolError> {
    if as_of.is_none() {
        return Ok(store
            .current(name)?
            .into_iter()
            .map(|f| Item {
                key: f.key().to_owned(),
                value: f.value(),
            })
            .collect());
    }
    let facts = store.history(HistoryQuery::new(name).as_of_opt(as_of))?;
    let mut slot: HashMap<&str, usize> = HashMap::with_capacity(facts.len());
    for (i, f) in facts.iter().enumerate() {
        slot.insert(f.key(), i);
    }
    let mut picked: Vec<usize> = slot.into_values().collect();
    picked.sort_unstable_by(|a, b| facts[*a].key().cmp(facts[*b].key()));
    Ok(picked
        .into_iter()
        .map(|i| Item {
            key: facts[i].key().to_owned(),
            value: facts[i].value(),
        })
        .collect())
}

/// JSON as a value with String map keys (the segment reports' keys are Strings in the
/// reference).
fn string_keyed(j: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Array(items) => Value::Array(items.iter().map(string_keyed).collect()),
        J::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| (crate::MapKey::str(k.as_str()), string_keyed(v)))
                .collect(),
        ),
        other => super::json::from_json(other),
    }
}
