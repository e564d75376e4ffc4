//! Access paths (registered scopes and point paths), consumers and coercions.

use std::fmt;
use std::sync::Arc;

use super::fact::Fact;
use super::value::{MapKey, Value};

/// A boxed error returned by consumers and coercions.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a consumer is told.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notification {
    /// A write to `store` touched `key` (point access paths).
    Point {
        /// Store name.
        store: Arc<str>,
        /// Key written.
        key: Arc<str>,
    },
    /// The membership of `scope` in `store` changed (a key entered or left it).
    Scope {
        /// Store name.
        store: Arc<str>,
        /// Scope name.
        scope: Arc<str>,
    },
}

/// Something told about writes: a cache to invalidate, a view to refresh.
///
/// Consumers are called after the write has committed, outside the ledger's locks; an
/// error or panic in a consumer is counted ([`crate::LedgerStore::consumer_failures`]) and
/// never undoes or fails the write.
pub trait Consumer: Send + Sync {
    /// Called once per notification.
    fn notify(&self, n: &Notification) -> Result<(), BoxError>;
}

impl<F> Consumer for F
where
    F: Fn(&Notification) -> Result<(), BoxError> + Send + Sync,
{
    fn notify(&self, n: &Notification) -> Result<(), BoxError> {
        self(n)
    }
}

/// A read-path transform of a store's values (schema migration on read). Raw facts never
/// change; readers see the coerced value.
pub trait Coercion: Send + Sync {
    /// Returns the value readers should see.
    fn coerce(&self, value: &Value, schema_version: u32, fact: &Fact) -> Result<Value, BoxError>;
}

impl<F> Coercion for F
where
    F: Fn(&Value, u32) -> Result<Value, BoxError> + Send + Sync,
{
    fn coerce(&self, value: &Value, schema_version: u32, _fact: &Fact) -> Result<Value, BoxError> {
        self(value, schema_version)
    }
}

/// A registered way of reading a store: a scope with equality filters (materialized and
/// maintained on every write) or, without a scope, a point path whose consumers hear of
/// every write to the store.
///
/// ```
/// use igniter_ledger::{AccessPath, LedgerStore, MapKey, Value, Write};
/// let ledger = LedgerStore::memory();
/// ledger.register_path(AccessPath::scope("tasks", "open").filter(MapKey::sym("status"), Value::sym("open"))).unwrap();
/// ledger.write(Write::new("tasks", "t1", Value::map([(MapKey::sym("status"), Value::sym("open"))]))).unwrap();
/// assert_eq!(ledger.query("tasks", "open", None).unwrap().len(), 1);
/// ```
#[derive(Clone)]
pub struct AccessPath {
    pub(crate) store: String,
    pub(crate) scope: Option<String>,
    pub(crate) filters: Vec<(MapKey, Value)>,
    pub(crate) lookup: Option<Value>,
    pub(crate) cache_ttl: Option<f64>,
    pub(crate) consumers: Vec<Arc<dyn Consumer>>,
}

impl fmt::Debug for AccessPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessPath")
            .field("store", &self.store)
            .field("scope", &self.scope)
            .field("filters", &self.filters)
            .field("lookup", &self.lookup)
            .field("cache_ttl", &self.cache_ttl)
            .field("consumers", &self.consumers.len())
            .finish()
    }
}

impl AccessPath {
    /// A scope path: `query(store, scope)` returns the keys whose current value matches
    /// every filter.
    pub fn scope(store: impl Into<String>, scope: impl Into<String>) -> Self {
        AccessPath {
            store: store.into(),
            scope: Some(scope.into()),
            filters: Vec::new(),
            lookup: None,
            cache_ttl: None,
            consumers: Vec::new(),
        }
    }
    /// A point path: its consumers hear `(store, key)` after every write to the store.
    pub fn point(store: impl Into<String>) -> Self {
        AccessPath {
            store: store.into(),
            scope: None,
            filters: Vec::new(),
            lookup: None,
            cache_ttl: None,
            consumers: Vec::new(),
        }
    }
    /// Adds a top-level equality filter: `value[key] == expected`.
    pub fn filter(mut self, key: MapKey, expected: impl Into<Value>) -> Self {
        self.filters.push((key, expected.into()));
        self
    }
    /// Lookup strategy label (kept as metadata, shown in the schema graph).
    pub fn lookup(mut self, v: impl Into<Value>) -> Self {
        self.lookup = Some(v.into());
        self
    }
    /// Cache time-to-live in seconds (metadata for consumers).
    pub fn cache_ttl(mut self, secs: f64) -> Self {
        self.cache_ttl = Some(secs);
        self
    }
    /// Adds a consumer.
    pub fn consumer(mut self, c: Arc<dyn Consumer>) -> Self {
        self.consumers.push(c);
        self
    }
    /// Store name.
    pub fn store_name(&self) -> &str {
        &self.store
    }
    /// Scope name (None for a point path).
    pub fn scope_name(&self) -> Option<&str> {
        self.scope.as_deref()
    }
    /// The filters.
    pub fn filters(&self) -> &[(MapKey, Value)] {
        &self.filters
    }
    /// Lookup label.
    pub fn lookup_label(&self) -> Option<&Value> {
        self.lookup.as_ref()
    }
    /// Cache TTL.
    pub fn ttl(&self) -> Option<f64> {
        self.cache_ttl
    }
    /// Number of consumers.
    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// True when `value` passes every filter.
    pub fn matches(&self, value: &Value) -> bool {
        matches_filters(&self.filters, value)
    }
}

pub(crate) fn matches_filters(filters: &[(MapKey, Value)], value: &Value) -> bool {
    filters
        .iter()
        .all(|(k, expected)| value.get(k) == Some(expected))
}

/// A path's filters prepared for testing stored (encoded) values without decoding them:
/// same answers as [`matches_filters`] on the decoded value.
pub(crate) struct EncodedFilters<'a> {
    filters: Vec<EncodedFilter<'a>>,
}

/// (key as encoded, expected value, expected value's canonical bytes when bytes decide
/// equality: nil, booleans, integers, strings, binaries, symbols).
type EncodedFilter<'a> = (Vec<u8>, &'a Value, Option<Vec<u8>>);

impl<'a> EncodedFilters<'a> {
    pub(crate) fn new(filters: &'a [(MapKey, Value)]) -> Self {
        let filters = filters
            .iter()
            .map(|(k, v)| {
                let mut kb = Vec::new();
                super::codec::write_key(&mut kb, k);
                let vb = match v {
                    Value::Nil
                    | Value::Bool(_)
                    | Value::Int(_)
                    | Value::Str(_)
                    | Value::Bin(_)
                    | Value::Sym(_) => {
                        let mut b = Vec::new();
                        super::codec::write_value(&mut b, v);
                        Some(b)
                    }
                    // Floats (0.0 == -0.0, NaN != NaN) and containers (maps compare
                    // regardless of order) are compared decoded.
                    _ => None,
                };
                (kb, v, vb)
            })
            .collect();
        EncodedFilters { filters }
    }

    /// True when the encoded value passes every filter.
    pub(crate) fn matches(&self, bytes: &[u8]) -> bool {
        let mut norm = Vec::new();
        self.filters.iter().all(|(kb, expected, vb)| {
            let Some(raw) = super::codec::map_field(bytes, kb) else {
                return false;
            };
            match vb {
                // These scalars are equal exactly when their canonical bytes are.
                Some(vb) => {
                    raw == vb.as_slice() || {
                        norm.clear();
                        super::codec::canonical_of_encoded(raw, &mut norm) && norm == *vb
                    }
                }
                None => super::codec::decode_value(raw).is_ok_and(|v| v == **expected),
            }
        })
    }
}

/// What a consumer call needs: whom to tell, and what.
pub(crate) type Delivery = (Arc<dyn Consumer>, Notification);

/// Notifications owed to consumers after a commit. Delivered by
/// [`crate::LedgerStore::deliver`] (the plain write methods do it for you); an FFI layer
/// that commits without its runtime lock can deliver later, with it.
#[derive(Default)]
#[must_use = "notifications are lost unless delivered"]
pub struct Pending {
    pub(crate) items: Vec<Delivery>,
}

impl Pending {
    /// True when no consumer is owed anything.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// How many notifications are owed.
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.items.iter().map(|(_, n)| n))
            .finish()
    }
}

/// A fact as a reader sees it: the raw fact, and the coerced value when a registered
/// coercion changed it.
#[derive(Clone, Debug)]
pub struct ReadFact {
    /// The stored fact (never changed by coercion).
    pub fact: Fact,
    /// The coerced value, when a coercion changed the value.
    pub coerced: Option<Value>,
}

impl ReadFact {
    /// The value readers see: coerced if a coercion changed it, else the stored one.
    pub fn value(&self) -> Value {
        match &self.coerced {
            Some(v) => v.clone(),
            None => self.fact.value(),
        }
    }
    /// True when a coercion changed the value (Ruby's `CoercedFact`).
    pub fn is_coerced(&self) -> bool {
        self.coerced.is_some()
    }
}

impl std::ops::Deref for ReadFact {
    type Target = Fact;
    fn deref(&self) -> &Fact {
        &self.fact
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::codec::encode_value;

    #[test]
    fn encoded_filters_answer_like_decoded_ones() {
        let values = [
            Value::map([
                (MapKey::sym("status"), Value::sym("open")),
                (MapKey::sym("n"), Value::Int(300)),
                (MapKey::sym("f"), Value::Float(-0.0)),
                (MapKey::sym("nan"), Value::Float(f64::NAN)),
                (
                    MapKey::sym("m"),
                    Value::map([
                        (MapKey::str("b"), Value::Int(2)),
                        (MapKey::str("a"), Value::Int(1)),
                    ]),
                ),
                (MapKey::str("status"), Value::from("open")),
                (MapKey::Int(7), Value::Nil),
            ]),
            Value::Int(3),
            Value::map([(MapKey::sym("status"), Value::from("open"))]),
            Value::array([Value::sym("status")]),
        ];
        let filters: Vec<Vec<(MapKey, Value)>> = vec![
            vec![(MapKey::sym("status"), Value::sym("open"))],
            vec![(MapKey::sym("status"), Value::from("open"))],
            vec![(MapKey::str("status"), Value::from("open"))],
            vec![(MapKey::sym("n"), Value::Int(300))],
            vec![(MapKey::sym("n"), Value::Float(300.0))],
            vec![(MapKey::sym("f"), Value::Float(0.0))],
            vec![(MapKey::sym("nan"), Value::Float(f64::NAN))],
            vec![(
                MapKey::sym("m"),
                Value::map([
                    (MapKey::str("a"), Value::Int(1)),
                    (MapKey::str("b"), Value::Int(2)),
                ]),
            )],
            vec![(MapKey::Int(7), Value::Nil)],
            vec![(MapKey::sym("missing"), Value::Nil)],
            vec![
                (MapKey::sym("status"), Value::sym("open")),
                (MapKey::sym("n"), Value::Int(301)),
            ],
            vec![],
        ];
        for v in &values {
            let bytes = encode_value(v).bytes;
            for f in &filters {
                assert_eq!(
                    EncodedFilters::new(f).matches(&bytes),
                    matches_filters(f, v),
                    "{f:?} on {v:?}"
                );
            }
        }
    }
}
