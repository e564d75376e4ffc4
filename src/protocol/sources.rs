//! Where the interpreter gets what other modules of the core know.
//!
//! The interpreter translates packets into calls on [`LedgerStore`]. Some answers belong
//! to the engines beside it: relation indexes and derived metadata (`derive`), retention
//! policies and compaction activity ([`crate::retention`]), the changefeed
//! ([`crate::changefeed`]) and segment storage statistics (segments). [`Sources`] is the
//! seam: every method has a default that answers from the engine in the core (the free
//! functions of this module, which an implementation can call to extend rather than
//! replace an answer), and a module that owns more (segment storage) implements the
//! methods it adds to and hands its `Sources` to
//! [`Interpreter::with_sources`](super::Interpreter::with_sources).

use std::collections::HashMap;

use crate::changefeed::{AlertValue, Snapshot};
use crate::retention::ActivityEntry;
use crate::{HistoryQuery, LedgerStore, MapKey, Relation, Timestamp, Value};

use super::descriptor::RelationRule;
use super::error::ProtocolError;
use super::packet::{obj, opt_float, opt_str, sym};

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
    /// Only entries of this kind (`retention_compaction`, `exact_prune`, `erasure`,
    /// `segment_purge`).
    pub kind: Option<String>,
    /// Only entries that occurred at or after this time (seconds).
    pub since: Option<f64>,
    /// At most this many entries (the newest).
    pub limit: Option<usize>,
}

impl ActivityQuery {
    /// Applies the kind and since filters and the limit to entries sorted oldest first
    /// (the store filter is the source's job: only it knows which prunes touched a
    /// store).
    pub fn apply(&self, entries: Vec<Value>) -> Vec<Value> {
        let mut out: Vec<Value> = entries
            .into_iter()
            .filter(|e| {
                self.kind.as_deref().is_none_or(|k| {
                    super::packet::field(e, "kind").and_then(super::packet::name_of) == Some(k)
                })
            })
            .filter(|e| {
                self.since.is_none_or(|t| {
                    matches!(super::packet::field(e, "occurred_at"), Some(Value::Float(at)) if *at >= t)
                })
            })
            .collect();
        if let Some(n) = self.limit {
            if out.len() > n {
                out.drain(..out.len() - n);
            }
        }
        out
    }
}

/// Answers the interpreter takes from the engines beside the ledger (see the module
/// docs).
pub trait Sources: Send + Sync {
    /// Called when a relation descriptor is accepted. Default: registers the relation
    /// with the ledger's derived-state engine ([`LedgerStore::register_relation`]), which
    /// maintains its grow-only index in `__rel_<name>` from then on (indexing the facts
    /// already there). Another definition under a registered name is refused.
    fn register_relation(
        &self,
        store: &LedgerStore,
        rule: &RelationRule,
    ) -> Result<(), ProtocolError> {
        register_relation(store, rule)
    }

    /// The current records of `rule.source` indexed under the partition value `from`.
    /// Default: the relation index ([`LedgerStore::resolve_items`]): O(records found).
    fn resolve(
        &self,
        store: &LedgerStore,
        rule: &RelationRule,
        from: &Value,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<Item>, ProtocolError> {
        resolve(store, rule, from, as_of)
    }

    /// Derivation rules registered on the ledger, as metadata. Default: the derived-state
    /// engine's derivations.
    fn derivations(&self, store: &LedgerStore) -> Vec<Value> {
        list(store.schema_graph().derivation_snapshot())
    }

    /// Scatter rules registered on the ledger (a relation's index scatter included), as
    /// metadata. Default: the derived-state engine's scatters.
    fn scatters(&self, store: &LedgerStore) -> Vec<Value> {
        list(store.schema_graph().scatter_snapshot())
    }

    /// Retention policies by store (`{store => {strategy:, duration:}}`). Default: the
    /// ledger's policies ([`LedgerStore::retention_policies`]).
    fn retention(&self, store: &LedgerStore) -> Value {
        retention(store)
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

    /// Compaction, prune, erasure and purge activity entries, oldest first, filtered by
    /// `q`. Default: the retention engine's entries ([`compaction_activity`]).
    fn compaction_activity(&self, store: &LedgerStore, q: &ActivityQuery) -> Vec<Value> {
        compaction_activity(store, q)
    }

    /// Changefeed diagnostics for the observability snapshot. Default: the log's head
    /// and identity, and the attached buffer's snapshot when there is one
    /// ([`changefeed`]).
    fn changefeed(&self, store: &LedgerStore) -> Option<Value> {
        Some(changefeed(store))
    }
}

fn list(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

/// Registers the relation a descriptor describes with the derived-state engine.
pub fn register_relation(store: &LedgerStore, rule: &RelationRule) -> Result<(), ProtocolError> {
    store.register_relation(Relation::new(
        rule.name.as_str(),
        rule.source.as_str(),
        MapKey::sym(rule.partition.as_str()),
        rule.target.as_str(),
    ))?;
    Ok(())
}

/// The records the relation's index holds under `from`, with their keys, in the order
/// they joined the index; with `as_of`, those that had joined by then, as of then.
pub fn resolve(
    store: &LedgerStore,
    rule: &RelationRule,
    from: &Value,
    as_of: Option<Timestamp>,
) -> Result<Vec<Item>, ProtocolError> {
    Ok(store
        .resolve_items(&rule.name, from, as_of)?
        .into_iter()
        .map(|(key, value)| Item { key, value })
        .collect())
}

/// The ledger's retention policies: `{store => {strategy:, duration:}}` (Symbol keys).
pub fn retention(store: &LedgerStore) -> Value {
    Value::Map(
        store
            .retention_policies()
            .into_iter()
            .map(|(name, p)| {
                (
                    MapKey::sym(name),
                    obj([
                        ("strategy", sym(p.strategy().name())),
                        ("duration", opt_float(p.duration())),
                    ]),
                )
            })
            .collect(),
    )
}

/// One activity entry: `{kind:, executor:, store:, status:, reason:, fact_count:,
/// receipt_id:, occurred_at:}`.
pub fn activity_value(e: &ActivityEntry) -> Value {
    obj([
        ("kind", sym(e.kind.name())),
        ("executor", sym(e.kind.executor())),
        ("store", e.store.as_deref().map_or(Value::Nil, sym)),
        ("status", sym(e.status)),
        ("reason", e.reason.clone()),
        ("fact_count", Value::Int(e.fact_count as i64)),
        ("receipt_id", Value::Str(e.receipt_id.to_string())),
        ("occurred_at", Value::Float(e.occurred_at.as_secs_f64())),
    ])
}

/// The retention engine's compactions, exact prunes and erasures (of `q.store`, when
/// given), oldest first, filtered by kind and time and limited to the newest `q.limit`.
pub fn compaction_activity(store: &LedgerStore, q: &ActivityQuery) -> Vec<Value> {
    q.apply(
        store
            .compaction_activity(q.store.as_deref())
            .iter()
            .map(activity_value)
            .collect(),
    )
}

/// The changefeed as the observability snapshot shows it: `{head_sequence:,
/// first_sequence:, ledger:, attached:}` and, with a buffer attached, its snapshot
/// (counters, configuration, alerts, diagnostics) merged in.
pub fn changefeed(store: &LedgerStore) -> Value {
    let head = store.head();
    let mut pairs = vec![
        (
            MapKey::sym("head_sequence"),
            Value::Int(head.sequence as i64),
        ),
        (
            MapKey::sym("first_sequence"),
            Value::Int(store.first_sequence() as i64),
        ),
        (
            MapKey::sym("ledger"),
            opt_str(store.ledger_id().map(|u| u.to_string())),
        ),
    ];
    match store.changefeed() {
        Some(buffer) => {
            if let Value::Map(snap) = snapshot_value(&buffer.snapshot()) {
                pairs.extend(
                    snap.into_iter()
                        .filter(|(k, _)| *k != MapKey::sym("ledger")),
                );
            }
        }
        None => pairs.push((MapKey::sym("attached"), Value::Bool(false))),
    }
    Value::Map(pairs)
}

fn alert_value(v: AlertValue) -> Value {
    match v {
        AlertValue::Count(n) => Value::Int(n as i64),
        AlertValue::Ratio(r) => Value::Float(r),
    }
}

/// A changefeed buffer's snapshot as a value (the shape `ChangefeedBuffer#snapshot`
/// has in Ruby).
pub fn snapshot_value(s: &Snapshot) -> Value {
    let int = |n: u64| Value::Int(n as i64);
    let opt = |n: Option<u64>| n.map_or(Value::Nil, |n| Value::Int(n as i64));
    let alerts = s
        .alerts
        .iter()
        .map(|a| {
            let mut v = obj([
                ("code", sym(a.code)),
                ("severity", sym(a.severity)),
                ("value", alert_value(a.value)),
                ("threshold", alert_value(a.threshold)),
            ]);
            if let Some(id) = &a.subscriber_id {
                super::packet::set(&mut v, "subscriber_id", Value::Str(id.clone()));
            }
            v
        })
        .collect();
    let recent = s
        .diagnostics
        .recent
        .iter()
        .map(|d| {
            let mut v = obj([
                ("type", sym(d.kind)),
                ("ts", Value::Float(d.ts)),
                ("subscriber_id", Value::Str(d.subscriber_id.clone())),
                (
                    "stores",
                    Value::Array(d.stores.iter().map(|s| Value::Str(s.clone())).collect()),
                ),
            ]);
            if let Some(o) = d.overflow {
                super::packet::set(&mut v, "overflow", sym(o.name()));
            }
            if let Some(c) = &d.error_class {
                super::packet::set(&mut v, "error_class", Value::Str(c.clone()));
            }
            if let Some(m) = &d.message {
                super::packet::set(&mut v, "message", Value::Str(m.clone()));
            }
            v
        })
        .collect();
    obj([
        ("emitted_total", int(s.emitted_total)),
        ("delivered_total", int(s.delivered_total)),
        ("dropped_total", int(s.dropped_total)),
        ("overflow_dropped_total", int(s.overflow_dropped_total)),
        ("failed_total", int(s.failed_total)),
        ("buffered", int(s.buffered as u64)),
        ("max_size", int(s.max_size as u64)),
        ("subscriber_count", int(s.subscriber_count as u64)),
        ("oldest_sequence", opt(s.oldest_sequence)),
        ("newest_sequence", opt(s.newest_sequence)),
        ("close_policy", sym(s.close_policy.name())),
        ("overflow", sym(s.overflow.name())),
        ("subscriber_queue_size", int(s.subscriber_queue_size as u64)),
        ("total_queued", int(s.total_queued as u64)),
        ("alerts", Value::Array(alerts)),
        (
            "diagnostics",
            obj([
                ("recent", Value::Array(recent)),
                ("recent_count", int(s.diagnostics.recent_count)),
                (
                    "dropped_diagnostics_total",
                    int(s.diagnostics.dropped_diagnostics_total),
                ),
            ]),
        ),
        ("attached", Value::Bool(s.attached)),
        ("ledger", opt_str(s.ledger.map(|u| u.to_string()))),
    ])
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
