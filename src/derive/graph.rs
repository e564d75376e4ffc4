//! [`SchemaGraph`]: everything registered on a ledger, with the look-ups and the metadata
//! snapshots (in the reference gem's shapes) that the protocol and metadata endpoints
//! publish.

use crate::{AccessPath, MapKey, Value};

use super::rules::{Derivation, Projection, Relation, Scatter, TargetKey};

/// Metadata about what is registered: access paths, partition indexes, coercions, stores,
/// derivations, scatters, relations and projections. A copy taken by
/// [`crate::LedgerStore::schema_graph`]; the registered objects (rules included) are
/// shared with the ledger, not rebuilt.
#[derive(Clone, Debug, Default)]
pub struct SchemaGraph {
    /// Every registered access path.
    pub paths: Vec<AccessPath>,
    /// (store, partition key) pairs with a maintained partition index.
    pub partitions: Vec<(String, MapKey)>,
    /// Stores with a read coercion.
    pub coercions: Vec<String>,
    /// Stores that hold facts.
    pub stores: Vec<String>,
    /// Registered derivations, in registration order.
    pub derivations: Vec<Derivation>,
    /// Registered scatters (a relation's index scatter included), in registration order.
    pub scatters: Vec<Scatter>,
    /// Registered relations, in registration order.
    pub relations: Vec<Relation>,
    /// Registered projections, in registration order.
    pub projections: Vec<Projection>,
}

fn sym(s: &str) -> Value {
    Value::sym(s)
}

fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::map(pairs.into_iter().map(|(k, v)| (MapKey::sym(k), v)))
}

fn filters_value(filters: &[(MapKey, Value)]) -> Value {
    Value::Map(filters.to_vec())
}

impl SchemaGraph {
    /// The access paths of `store`.
    pub fn paths_for(&self, store: &str) -> Vec<&AccessPath> {
        self.paths
            .iter()
            .filter(|p| p.store_name() == store)
            .collect()
    }
    /// The scope path `scope` of `store`.
    pub fn path_for(&self, store: &str, scope: &str) -> Option<&AccessPath> {
        self.paths
            .iter()
            .find(|p| p.store_name() == store && p.scope_name() == Some(scope))
    }
    /// Stores with at least one access path, in registration order.
    pub fn registered_stores(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in &self.paths {
            if !out.contains(&p.store_name()) {
                out.push(p.store_name());
            }
        }
        out
    }
    /// The relation named `name`.
    pub fn relation_for(&self, name: &str) -> Option<&Relation> {
        self.relations.iter().find(|r| r.name == name)
    }
    /// Names of the registered relations.
    pub fn registered_relations(&self) -> Vec<&str> {
        self.relations.iter().map(|r| r.name.as_str()).collect()
    }
    /// Derivations whose source is `store`.
    pub fn derivations_for_store(&self, store: &str) -> Vec<&Derivation> {
        self.derivations
            .iter()
            .filter(|d| d.source_store == store)
            .collect()
    }
    /// Scatters whose source is `store`.
    pub fn scatters_for_store(&self, store: &str) -> Vec<&Scatter> {
        self.scatters
            .iter()
            .filter(|s| s.source_store == store)
            .collect()
    }
    /// The projection named `name`.
    pub fn projection_for(&self, name: &str) -> Option<&Projection> {
        self.projections.iter().find(|p| p.name == name)
    }
    /// Projections that read `store`.
    pub fn projections_for_store(&self, store: &str) -> Vec<&Projection> {
        self.projections
            .iter()
            .filter(|p| p.reads.iter().any(|r| r == store))
            .collect()
    }

    /// `{store => [{store:, scope:, lookup:, filters:, cache_ttl:, consumer_count:}]}`.
    pub fn metadata_snapshot(&self) -> Value {
        let mut by_store: Vec<(MapKey, Value)> = Vec::new();
        for p in &self.paths {
            let entry = map([
                ("store", sym(p.store_name())),
                ("scope", p.scope_name().map_or(Value::Nil, sym)),
                ("lookup", p.lookup_label().cloned().unwrap_or(Value::Nil)),
                ("filters", filters_value(p.filters())),
                ("cache_ttl", p.ttl().map_or(Value::Nil, Value::Float)),
                ("consumer_count", Value::Int(p.consumer_count() as i64)),
            ]);
            let k = MapKey::sym(p.store_name());
            match by_store.iter_mut().find(|(s, _)| *s == k) {
                Some((_, Value::Array(list))) => list.push(entry),
                _ => by_store.push((k, Value::Array(vec![entry]))),
            }
        }
        Value::Map(by_store)
    }

    /// `{name => {name:, source:, partition:, target:, index_store:}}`.
    pub fn relation_snapshot(&self) -> Value {
        Value::Map(
            self.relations
                .iter()
                .map(|r| {
                    (
                        MapKey::sym(&r.name),
                        map([
                            ("name", sym(&r.name)),
                            ("source", sym(&r.source)),
                            ("partition", r.partition.to_value()),
                            ("target", sym(&r.target)),
                            ("index_store", sym(&r.index_store())),
                        ]),
                    )
                })
                .collect(),
        )
    }

    /// `{name => {name:, reads:, relations:, consumer_hint:, reactive:, store_count:,
    /// relation_count:}}`.
    pub fn projection_snapshot(&self) -> Value {
        Value::Map(
            self.projections
                .iter()
                .map(|p| {
                    (
                        MapKey::sym(&p.name),
                        map([
                            ("name", sym(&p.name)),
                            ("reads", Value::array(p.reads.iter().map(|s| sym(s)))),
                            (
                                "relations",
                                Value::array(p.relations.iter().map(|s| sym(s))),
                            ),
                            ("consumer_hint", p.consumer_hint.clone()),
                            ("reactive", Value::Bool(p.reactive)),
                            ("store_count", Value::Int(p.reads.len() as i64)),
                            ("relation_count", Value::Int(p.relations.len() as i64)),
                        ]),
                    )
                })
                .collect(),
        )
    }

    /// `[{source_store:, source_filters:, target_store:, target_key: (key or
    /// :callable), has_rule: true}]`.
    pub fn derivation_snapshot(&self) -> Value {
        Value::array(self.derivations.iter().map(|d| {
            map([
                ("source_store", sym(&d.source_store)),
                ("source_filters", filters_value(&d.filters)),
                ("target_store", sym(&d.target_store)),
                ("target_key", target_key_value(&d.target_key)),
                ("has_rule", Value::Bool(true)),
            ])
        }))
    }

    /// `[{source_store:, partition_by:, target_store:, has_rule: true}]` (never the rule).
    pub fn scatter_snapshot(&self) -> Value {
        Value::array(self.scatters.iter().map(|s| {
            map([
                ("source_store", sym(&s.source_store)),
                ("partition_by", s.partition_by.to_value()),
                ("target_store", sym(&s.target_store)),
                ("has_rule", Value::Bool(true)),
            ])
        }))
    }
}

/// `lineage`'s `derived_by` in the reference's shape: `[{target_store:, target_key: (key or
/// :callable), source_filters:}]`.
pub fn derived_by_value(list: &[Derivation]) -> Value {
    Value::array(list.iter().map(|d| {
        map([
            ("target_store", sym(&d.target_store)),
            ("target_key", target_key_value(&d.target_key)),
            ("source_filters", filters_value(&d.filters)),
        ])
    }))
}

/// A target key as metadata: the key, or `:callable`.
pub fn target_key_value(k: &TargetKey) -> Value {
    match k {
        TargetKey::Fixed(k) => Value::from(k.as_str()),
        TargetKey::Computed(_) => Value::sym("callable"),
    }
}
