//! The reading API of [`LedgerStore`]: point reads, histories, partitions, scopes,
//! registrations, and the read-path coercions applied to what they return.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::LedgerStore;
use crate::derive::SchemaGraph;
use crate::ledger::access::{AccessPath, Coercion, ReadFact};
use crate::ledger::error::{Error, Result};
use crate::ledger::fact::Fact;
use crate::ledger::request::{HistoryQuery, PartitionQuery, Read};
use crate::ledger::time::Timestamp;
use crate::ledger::value::Value;

impl LedgerStore {
    fn coerce(&self, facts: Vec<Fact>) -> Result<Vec<ReadFact>> {
        if facts.is_empty() {
            return Ok(Vec::new());
        }
        let state = self.inner.read_state()?;
        // Facts of one store share its interned name: look each store up once.
        let mut last: Option<&Arc<str>> = None;
        let any = facts.iter().any(|f| {
            let s = f.store_arc();
            if last.is_some_and(|l| Arc::ptr_eq(l, s)) {
                return false;
            }
            last = Some(s);
            state.coercion(s).is_some()
        });
        if !any {
            return Ok(facts
                .into_iter()
                .map(|fact| ReadFact {
                    fact,
                    coerced: None,
                })
                .collect());
        }
        let mut cache: HashMap<Arc<str>, Option<Arc<dyn Coercion>>> = HashMap::new();
        let lookups: Vec<Option<Arc<dyn Coercion>>> = facts
            .iter()
            .map(|f| {
                cache
                    .entry(f.store_arc().clone())
                    .or_insert_with(|| state.coercion(f.store()))
                    .clone()
            })
            .collect();
        drop(state);
        facts
            .into_iter()
            .zip(lookups)
            .map(|(fact, c)| match c {
                None => Ok(ReadFact {
                    fact,
                    coerced: None,
                }),
                Some(c) => apply_coercion(&*c, fact),
            })
            .collect()
    }

    /// The value a point read sees (coerced), or None.
    /// An erased fact reads as nil, like a key never written.
    pub fn read(&self, q: Read) -> Result<Option<Value>> {
        Ok(self
            .read_fact(q)?
            .filter(|f| !f.fact.is_erased())
            .map(|f| f.value()))
    }

    /// The fact a point read selects (with its coerced value), or None.
    pub fn read_fact(&self, q: Read) -> Result<Option<ReadFact>> {
        // The fact and the store's coercion under one read lock.
        let found = self
            .inner
            .read_state()?
            .read_coercible(&q.store, &q.key, q.as_of, q.valid_at);
        let Some((f, c)) = found else {
            return Ok(None);
        };
        match c {
            None => Ok(Some(ReadFact {
                fact: f,
                coerced: None,
            })),
            Some(c) => apply_coercion(&*c, f).map(Some),
        }
    }

    /// The current fact (coerced) of every key of a store, ordered by key: O(keys), from
    /// the key index.
    pub fn current(&self, store: &str) -> Result<Vec<ReadFact>> {
        let mut facts = self.inner.state.read().latest_of_store(store);
        facts.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        self.coerce(facts)
    }

    /// The latest raw fact of (store, key), ignoring coercions.
    pub fn latest(&self, store: &str, key: &str) -> Option<Fact> {
        self.inner
            .read_state_infallible()
            .latest(store, key)
            .cloned()
    }

    /// Facts of a store or key in commit order (coerced).
    pub fn history(&self, q: HistoryQuery) -> Result<Vec<ReadFact>> {
        let facts = self
            .inner
            .read_state()?
            .history(&q.store, q.key.as_deref(), q.since, q.as_of);
        self.coerce(facts)
    }

    /// Raw facts of a store or key in commit order (no coercion).
    pub fn history_raw(&self, q: HistoryQuery) -> Vec<Fact> {
        self.inner
            .read_state_infallible()
            .history(&q.store, q.key.as_deref(), q.since, q.as_of)
    }

    /// Facts of a store whose value has `partition_key == partition_value`, in commit
    /// order (coerced). The first call for a (store, partition key) builds its index from
    /// the store's facts; later appends and writes keep it current, so later calls cost
    /// O(slice).
    pub fn history_partition(&self, q: PartitionQuery) -> Result<Vec<ReadFact>> {
        let facts = self.partition_raw(&q)?;
        self.coerce(facts)
    }

    fn partition_raw(&self, q: &PartitionQuery) -> Result<Vec<Fact>> {
        if let Some(q) = self.inner.hash_keys.apply_partition(q) {
            return self.partition_raw(&q);
        }
        // The first call for (store, partition key) builds its index.
        self.inner.build_then_read(
            |s| !s.has_partition(&q.store, &q.partition_key),
            |s| s.build_partition_index(&q.store, &q.partition_key),
            |s| {
                s.partition(
                    &q.store,
                    &q.partition_key,
                    &q.partition_value,
                    q.since,
                    q.as_of,
                )
            },
        )
    }

    /// How many facts `history_partition` would answer for this store, partition key and
    /// value (`since`/`as_of` ignored), in O(1) and without cloning any fact; None while
    /// that store and key have no partition index (built by the first `history_partition`
    /// call, or an append naming the key).
    /// Partitions only grow, by appending in commit order, so an unchanged length means
    /// an unchanged slice (the Ruby extension caches slices on this).
    ///
    /// ```
    /// use igniter_ledger::{Append, LedgerStore, MapKey, PartitionQuery, Value};
    ///
    /// let ledger = LedgerStore::memory();
    /// let event = |o: &str| Value::map([(MapKey::sym("order_id"), Value::from(o))]);
    /// ledger.append(Append::new("events", event("o1"))).unwrap();
    /// let q = PartitionQuery::new("events", "order_id", "o1");
    /// assert_eq!(ledger.partition_len(&q), None); // no index for "order_id" yet
    /// assert_eq!(ledger.history_partition(q.clone()).unwrap().len(), 1);
    /// ledger.append(Append::new("events", event("o1")).partition_key("order_id")).unwrap();
    /// assert_eq!(ledger.partition_len(&q), Some(2));
    /// assert_eq!(ledger.partition_len(&PartitionQuery::new("events", "order_id", "o2")), Some(0));
    /// ```
    pub fn partition_len(&self, q: &PartitionQuery) -> Option<usize> {
        if let Some(q) = self.inner.hash_keys.apply_partition(q) {
            return self.partition_len(&q);
        }
        self.inner.read_state_infallible().partition_len(
            &q.store,
            &q.partition_key,
            &q.partition_value,
        )
    }

    /// How many keys `store` holds, in O(1) (0 for an unknown store).
    pub fn key_count(&self, store: &str) -> usize {
        self.inner.read_state_infallible().key_count(store)
    }

    /// True when `store` has a read coercion (its readers see coerced values).
    pub fn has_coercion(&self, store: &str) -> bool {
        self.inner.read_state_infallible().has_coercion(store)
    }

    /// Latest fact per key whose value matches the scope's filters (coerced), ordered by
    /// key. Current state (`as_of` None) is read from the materialized scope index,
    /// O(members); `as_of` reads the keys that had entered the scope by then (the first
    /// `as_of` query of a scope builds that history from the store's facts).
    pub fn query(
        &self,
        store: &str,
        scope: &str,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<ReadFact>> {
        let facts = match as_of {
            None => self.inner.read_state()?.query_current(store, scope)?,
            // The first `as_of` query of a scope builds its history.
            Some(t) => self.inner.build_then_read(
                |s| !s.scope_history_built(store, scope),
                |s| s.build_scope_history(store, scope),
                |s| s.query_as_of(store, scope, t),
            )??,
        };
        self.coerce(facts)
    }

    /// Registers an access path. A scope path's membership is computed from the current
    /// state at once and maintained on every write after.
    pub fn register_path(&self, path: AccessPath) -> Result<()> {
        let path = self.inner.hash_keys.apply_path(path);
        self.inner.write_state()?.register_path(path)
    }

    /// Registers a read-path coercion for a store (replacing an earlier one).
    pub fn register_coercion(&self, store: &str, c: Arc<dyn Coercion>) -> Result<()> {
        self.inner.write_state()?.register_coercion(store, c)
    }

    /// A fact by id.
    pub fn fact_by_id(&self, id: Uuid) -> Option<Fact> {
        self.inner.read_state_infallible().fact_by_id(id).cloned()
    }

    /// Number of facts.
    pub fn fact_count(&self) -> usize {
        self.inner.read_state_infallible().fact_count()
    }

    /// Every fact in commit order with `since <= tx <= as_of`.
    pub fn fact_log_all(&self, since: Option<Timestamp>, as_of: Option<Timestamp>) -> Vec<Fact> {
        let s = self.inner.read_state_infallible();
        let lo = since.map_or(0, |t| s.log.partition_point(|f| f.transaction_time() < t));
        let hi = as_of.map_or(s.log.len(), |t| {
            s.log.partition_point(|f| f.transaction_time() <= t)
        });
        if lo >= hi {
            Vec::new()
        } else {
            s.log[lo..hi].to_vec()
        }
    }

    /// What is registered.
    pub fn schema_graph(&self) -> SchemaGraph {
        let s = self.inner.read_state_infallible();
        let graph = SchemaGraph {
            paths: s.paths(),
            partitions: s
                .partition_keys()
                .into_iter()
                .map(|(n, k)| (n.to_string(), k))
                .collect(),
            coercions: s.coerced_stores().iter().map(|n| n.to_string()).collect(),
            stores: s.store_names().iter().map(|n| n.to_string()).collect(),
            ..SchemaGraph::default()
        };
        drop(s);
        self.reactor().fill(graph)
    }

    /// The derived-state engine (see `crate::derive`).
    pub(crate) fn reactor(&self) -> &crate::derive::Reactor {
        &self.inner.reactor
    }

    /// True when any access path is registered (consumers may be owed notifications).
    pub fn has_access_paths(&self) -> bool {
        self.inner.read_state_infallible().consumers_registered()
    }
}

fn apply_coercion(c: &dyn Coercion, fact: Fact) -> Result<ReadFact> {
    let raw = fact.value();
    match c.coerce(&raw, fact.schema_version(), &fact) {
        Ok(v) if v == raw => Ok(ReadFact {
            fact,
            coerced: None,
        }),
        Ok(v) => Ok(ReadFact {
            fact,
            coerced: Some(v),
        }),
        Err(e) => Err(Error::Coercion {
            store: fact.store().to_owned(),
            message: e.to_string(),
        }),
    }
}
