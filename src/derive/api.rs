//! The derived-state methods of [`LedgerStore`]: registrations, `react`, `resolve`.

use crate::{Fact, HistoryQuery, LedgerStore, Read, Result, Timestamp, Value};

use super::rules::{partition_key_text, Derivation, Projection, Relation, Scatter};

impl LedgerStore {
    /// Registers a derivation (see [`Derivation`]). Over a source store that already
    /// holds facts, the rule is called once at once and the target written if it differs
    /// (reconciliation after a crash between a source commit and its derived write);
    /// over an empty store nothing is called.
    ///
    /// Errors: [`crate::Error::InvalidArgument`] for an empty store name or target key.
    pub fn register_derivation(&self, d: Derivation) -> Result<()> {
        self.reactor().add_derivation(self, d)
    }

    /// Registers a scatter (see [`Scatter`]). Over a source store that already holds
    /// facts, every partition's target is recomputed by folding the store's facts in
    /// commit order from an empty target, and written where it differs.
    pub fn register_scatter(&self, s: Scatter) -> Result<()> {
        self.reactor().add_scatter(self, s)
    }

    /// Registers a relation (see [`Relation`]): its index is maintained by a scatter into
    /// `__rel_<name>` (shown in the schema graph), and a source store that already holds
    /// facts is indexed at once (keys missing from the index are added). Registering the
    /// same definition again is a no-op; another definition under a registered name is an
    /// [`crate::Error::InvalidArgument`].
    ///
    /// ```
    /// use igniter_ledger::{LedgerStore, MapKey, Relation, Value, Write};
    /// let ledger = LedgerStore::memory();
    /// ledger.register_relation(Relation::new("article_comments", "comments",
    ///     MapKey::sym("article_id"), "articles")).unwrap();
    /// let c = |a: &str, body: &str| Value::map([
    ///     (MapKey::sym("article_id"), Value::from(a)), (MapKey::sym("body"), Value::from(body))]);
    /// ledger.write(Write::new("comments", "c1", c("a1", "First"))).unwrap();
    /// ledger.write(Write::new("comments", "c2", c("a1", "Second"))).unwrap();
    /// let found = ledger.resolve("article_comments", &Value::from("a1"), None).unwrap();
    /// assert_eq!(found, vec![c("a1", "First"), c("a1", "Second")]);
    /// ```
    pub fn register_relation(&self, r: Relation) -> Result<()> {
        self.reactor().add_relation(self, r)
    }

    /// Registers a projection (metadata only; a later one with the same name replaces
    /// it).
    pub fn register_projection(&self, p: Projection) -> Result<()> {
        self.reactor().add_projection(p)
    }

    /// The current values (coerced) of the source keys the relation `name` indexes under
    /// the partition value `from`, in the order they joined the index. With `as_of`: the
    /// keys that had joined by then (a source fact with that partition value committed at
    /// or before `as_of`), with their values as of then.
    ///
    /// Errors: [`crate::Error::InvalidArgument`] ("No relation registered ...") for an
    /// unknown name.
    pub fn resolve(
        &self,
        name: &str,
        from: &Value,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<Value>> {
        Ok(self
            .resolve_items(name, from, as_of)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// [`LedgerStore::resolve`] with each value's source key: `(key, value)` pairs, in
    /// the same order.
    ///
    /// ```
    /// use igniter_ledger::{LedgerStore, MapKey, Relation, Value, Write};
    /// let ledger = LedgerStore::memory();
    /// ledger.register_relation(Relation::new("article_comments", "comments",
    ///     MapKey::sym("article_id"), "articles")).unwrap();
    /// let c = Value::map([(MapKey::sym("article_id"), Value::from("a1"))]);
    /// ledger.write(Write::new("comments", "c1", c.clone())).unwrap();
    /// let found = ledger.resolve_items("article_comments", &Value::from("a1"), None).unwrap();
    /// assert_eq!(found, vec![("c1".to_owned(), c)]);
    /// ```
    pub fn resolve_items(
        &self,
        name: &str,
        from: &Value,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<(String, Value)>> {
        let Some(rel) = self.reactor().relation(name) else {
            return Err(crate::Error::InvalidArgument(format!(
                "No relation registered as :{name} (register_relation first)"
            )));
        };
        let Some(pk) = partition_key_text(from) else {
            return Ok(Vec::new());
        };
        let Some(index) = self.latest(&rel.index_store(), &pk) else {
            return Ok(Vec::new());
        };
        let keys: Vec<String> = match index.value().get_sym("keys") {
            Some(Value::Array(keys)) => keys
                .iter()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(t) = as_of {
                let joined = self
                    .history_raw(
                        HistoryQuery::new(rel.source.clone())
                            .key(key.clone())
                            .as_of(t),
                    )
                    .iter()
                    .any(|f| {
                        f.value()
                            .get(&rel.partition)
                            .and_then(partition_key_text)
                            .is_some_and(|p| p == pk)
                    });
                if !joined {
                    continue;
                }
            }
            if let Some(v) =
                self.read(Read::new(rel.source.clone(), key.clone()).as_of_opt(as_of))?
            {
                out.push((key, v));
            }
        }
        Ok(out)
    }

    /// Runs the derivations, scatters and relation indexes that a published commit
    /// triggers. The plain [`LedgerStore::write`], [`LedgerStore::append`] and
    /// [`LedgerStore::commit`] call it before they return; a caller of
    /// [`LedgerStore::commit_deferred`] calls it after delivering (the Ruby extension
    /// does). A rule that fails or panics is counted ([`Self::derivation_failures`]) and
    /// never fails the source write. Writes made while reacting (by a rule) do not react.
    pub fn react(&self, facts: &[Fact]) {
        self.reactor().react(self, facts)
    }

    /// How many rule calls (derivation, key, scatter) and derived writes failed so far.
    pub fn derivation_failures(&self) -> u64 {
        self.reactor().failures()
    }

    /// The last such failure (which rule, and the error), if any.
    pub fn last_derivation_failure(&self) -> Option<String> {
        self.reactor().last_failure()
    }

    /// Derivations whose source store is `store` (what `lineage` lists as `derived_by`).
    pub fn derivations_for_store(&self, store: &str) -> Vec<Derivation> {
        self.reactor()
            .derivations()
            .into_iter()
            .filter(|d| d.source_store == store)
            .collect()
    }

    /// Scatters whose source store is `store` (a relation's index scatter included).
    pub fn scatters_for_store(&self, store: &str) -> Vec<Scatter> {
        self.reactor()
            .scatters()
            .into_iter()
            .filter(|s| s.source_store == store)
            .collect()
    }
}
