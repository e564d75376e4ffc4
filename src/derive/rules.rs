//! What can be registered: derivations, scatters, relations and projections, and the
//! rule traits their closures implement.
//!
//! Rules are plain closures for Rust callers (`Fn(&[Fact]) -> Option<Value>` and the like);
//! a binding (the Ruby extension) implements the traits directly so that an error raised
//! by foreign code is reported, counted, and never fails the source write.

use std::fmt;
use std::sync::Arc;

use crate::{BoxError, Fact, MapKey, Value};

/// Computes a derivation's target value from the latest facts of its source store that
/// match its filters. `Ok(None)` skips the write.
pub trait DerivationRule: Send + Sync {
    /// The value to write at the target key, or None to write nothing.
    fn derive(&self, facts: &[Fact]) -> Result<Option<Value>, BoxError>;
}

impl<F> DerivationRule for F
where
    F: Fn(&[Fact]) -> Option<Value> + Send + Sync,
{
    fn derive(&self, facts: &[Fact]) -> Result<Option<Value>, BoxError> {
        Ok(self(facts))
    }
}

/// Computes a derivation's target key from the same facts its rule receives.
pub trait KeyRule: Send + Sync {
    /// The target key.
    fn key(&self, facts: &[Fact]) -> Result<String, BoxError>;
}

impl<F> KeyRule for F
where
    F: Fn(&[Fact]) -> String + Send + Sync,
{
    fn key(&self, facts: &[Fact]) -> Result<String, BoxError> {
        Ok(self(facts))
    }
}

/// Folds one source fact into its partition's target value:
/// `(partition value, existing target value, fact) -> new target value` (None: no write).
pub trait ScatterRule: Send + Sync {
    /// The partition's new target value, or None to write nothing.
    fn fold(
        &self,
        partition: &Value,
        existing: Option<&Value>,
        fact: &Fact,
    ) -> Result<Option<Value>, BoxError>;
}

impl<F> ScatterRule for F
where
    F: Fn(&Value, Option<&Value>, &Fact) -> Option<Value> + Send + Sync,
{
    fn fold(
        &self,
        partition: &Value,
        existing: Option<&Value>,
        fact: &Fact,
    ) -> Result<Option<Value>, BoxError> {
        Ok(self(partition, existing, fact))
    }
}

/// A derivation rule or key rule that may fail: wraps a closure returning `Result`.
///
/// ```
/// use igniter_ledger::{Derivation, Fact, Fallible, Value};
/// let d = Derivation::new("tasks", "summaries", "all", Fallible(|facts: &[Fact]| {
///     if facts.len() > 1_000_000 { return Err("too many".into()); }
///     Ok(Some(Value::Int(facts.len() as i64)))
/// }));
/// assert_eq!(d.source_store(), "tasks");
/// ```
pub struct Fallible<F>(pub F);

impl<F> DerivationRule for Fallible<F>
where
    F: Fn(&[Fact]) -> Result<Option<Value>, BoxError> + Send + Sync,
{
    fn derive(&self, facts: &[Fact]) -> Result<Option<Value>, BoxError> {
        (self.0)(facts)
    }
}

/// Where a derivation writes: a fixed key, or one computed from the source facts.
#[derive(Clone)]
pub enum TargetKey {
    /// Always this key.
    Fixed(String),
    /// Computed from the facts the rule receives (shown as `:callable` in metadata).
    Computed(Arc<dyn KeyRule>),
}

impl TargetKey {
    /// A key computed by `rule`.
    pub fn computed(rule: impl KeyRule + 'static) -> Self {
        TargetKey::Computed(Arc::new(rule))
    }
    /// The fixed key, or None when it is computed.
    pub fn fixed(&self) -> Option<&str> {
        match self {
            TargetKey::Fixed(k) => Some(k),
            TargetKey::Computed(_) => None,
        }
    }
}

impl fmt::Debug for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetKey::Fixed(k) => write!(f, "{k:?}"),
            TargetKey::Computed(_) => f.write_str(":callable"),
        }
    }
}

impl From<&str> for TargetKey {
    fn from(k: &str) -> Self {
        TargetKey::Fixed(k.to_owned())
    }
}

impl From<String> for TargetKey {
    fn from(k: String) -> Self {
        TargetKey::Fixed(k)
    }
}

/// A derivation: after each published write to `source_store`, `rule` is called with the
/// latest facts of that store matching `filters` (ordered by key) and its result is
/// written at (`target_store`, `target_key`).
///
/// ```
/// use igniter_ledger::{Derivation, Fact, LedgerStore, MapKey, Read, Value, Write};
/// let ledger = LedgerStore::memory();
/// ledger.register_derivation(
///     Derivation::new("tasks", "summaries", "open", |facts: &[Fact]| {
///         Some(Value::map([(MapKey::sym("count"), Value::Int(facts.len() as i64))]))
///     })
///     .filter(MapKey::sym("status"), Value::sym("open")),
/// ).unwrap();
/// ledger.write(Write::new("tasks", "t1", Value::map([(MapKey::sym("status"), Value::sym("open"))]))).unwrap();
/// let v = ledger.read(Read::new("summaries", "open")).unwrap().unwrap();
/// assert_eq!(v.get_sym("count"), Some(&Value::Int(1)));
/// ```
#[derive(Clone)]
pub struct Derivation {
    pub(crate) source_store: String,
    pub(crate) filters: Vec<(MapKey, Value)>,
    pub(crate) target_store: String,
    pub(crate) target_key: TargetKey,
    pub(crate) rule: Arc<dyn DerivationRule>,
}

impl Derivation {
    /// A derivation from every fact of `source_store` (add filters with [`Self::filter`]).
    pub fn new(
        source_store: impl Into<String>,
        target_store: impl Into<String>,
        target_key: impl Into<TargetKey>,
        rule: impl DerivationRule + 'static,
    ) -> Self {
        Self::with_rule(source_store, target_store, target_key, Arc::new(rule))
    }
    /// Like [`Self::new`] with a shared rule object.
    pub fn with_rule(
        source_store: impl Into<String>,
        target_store: impl Into<String>,
        target_key: impl Into<TargetKey>,
        rule: Arc<dyn DerivationRule>,
    ) -> Self {
        Derivation {
            source_store: source_store.into(),
            filters: Vec::new(),
            target_store: target_store.into(),
            target_key: target_key.into(),
            rule,
        }
    }
    /// Only facts whose value has `value[key] == expected` reach the rule.
    pub fn filter(mut self, key: MapKey, expected: impl Into<Value>) -> Self {
        self.filters.push((key, expected.into()));
        self
    }
    /// The source store.
    pub fn source_store(&self) -> &str {
        &self.source_store
    }
    /// The source filters.
    pub fn filters(&self) -> &[(MapKey, Value)] {
        &self.filters
    }
    /// The target store.
    pub fn target_store(&self) -> &str {
        &self.target_store
    }
    /// The target key.
    pub fn target_key(&self) -> &TargetKey {
        &self.target_key
    }
}

impl fmt::Debug for Derivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Derivation")
            .field("source_store", &self.source_store)
            .field("filters", &self.filters)
            .field("target_store", &self.target_store)
            .field("target_key", &self.target_key)
            .finish()
    }
}

/// A scatter: each published fact of `source_store` whose value has the field
/// `partition_by` is folded by `rule` into the target record at key
/// `partition value as text` (see [`partition_key_text`]).
///
/// ```
/// use igniter_ledger::{Fact, LedgerStore, MapKey, Read, Scatter, Value, Write};
/// let ledger = LedgerStore::memory();
/// ledger.register_scatter(Scatter::new("comments", MapKey::sym("article_id"), "comment_counts",
///     |_article: &Value, existing: Option<&Value>, _f: &Fact| {
///         Some(Value::Int(existing.and_then(Value::as_i64).unwrap_or(0) + 1))
///     })).unwrap();
/// let comment = Value::map([(MapKey::sym("article_id"), Value::from("a1"))]);
/// ledger.write(Write::new("comments", "c1", comment.clone())).unwrap();
/// ledger.write(Write::new("comments", "c2", comment)).unwrap();
/// assert_eq!(ledger.read(Read::new("comment_counts", "a1")).unwrap(), Some(Value::Int(2)));
/// ```
#[derive(Clone)]
pub struct Scatter {
    pub(crate) source_store: String,
    pub(crate) partition_by: MapKey,
    pub(crate) target_store: String,
    pub(crate) rule: Arc<dyn ScatterRule>,
}

impl Scatter {
    /// A scatter of `source_store` by the field `partition_by` into `target_store`.
    pub fn new(
        source_store: impl Into<String>,
        partition_by: MapKey,
        target_store: impl Into<String>,
        rule: impl ScatterRule + 'static,
    ) -> Self {
        Self::with_rule(source_store, partition_by, target_store, Arc::new(rule))
    }
    /// Like [`Self::new`] with a shared rule object.
    pub fn with_rule(
        source_store: impl Into<String>,
        partition_by: MapKey,
        target_store: impl Into<String>,
        rule: Arc<dyn ScatterRule>,
    ) -> Self {
        Scatter {
            source_store: source_store.into(),
            partition_by,
            target_store: target_store.into(),
            rule,
        }
    }
    /// The source store.
    pub fn source_store(&self) -> &str {
        &self.source_store
    }
    /// The partition field.
    pub fn partition_by(&self) -> &MapKey {
        &self.partition_by
    }
    /// The target store.
    pub fn target_store(&self) -> &str {
        &self.target_store
    }
}

impl fmt::Debug for Scatter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scatter")
            .field("source_store", &self.source_store)
            .field("partition_by", &self.partition_by)
            .field("target_store", &self.target_store)
            .finish()
    }
}

/// A relation: a grow-only index from a partition value of `source` facts to the source
/// keys that ever had it, kept as facts in the store [`Relation::index_store`]
/// (`__rel_<name>`), followed by [`crate::LedgerStore::resolve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    pub(crate) name: String,
    pub(crate) source: String,
    pub(crate) partition: MapKey,
    pub(crate) target: String,
}

impl Relation {
    /// A relation named `name` over `source`, partitioned by the field `partition`;
    /// `target` names the store the partition values identify (metadata).
    pub fn new(
        name: impl Into<String>,
        source: impl Into<String>,
        partition: MapKey,
        target: impl Into<String>,
    ) -> Self {
        Relation {
            name: name.into(),
            source: source.into(),
            partition,
            target: target.into(),
        }
    }
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The source store.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// The partition field.
    pub fn partition(&self) -> &MapKey {
        &self.partition
    }
    /// The target store (metadata).
    pub fn target(&self) -> &str {
        &self.target
    }
    /// The reserved store that holds the index: `__rel_<name>`.
    pub fn index_store(&self) -> String {
        format!("__rel_{}", self.name)
    }
}

/// A declared read model: metadata only (which stores and relations it reads).
#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    /// Its name.
    pub name: String,
    /// The stores it reads.
    pub reads: Vec<String>,
    /// The relations it follows.
    pub relations: Vec<String>,
    /// Who consumes it (e.g. `Value::sym("contract_node")`).
    pub consumer_hint: Value,
    /// Whether it is refreshed reactively.
    pub reactive: bool,
}

impl Projection {
    /// A projection reading `reads`, with no relations, consumer hint `:contract_node`
    /// and `reactive: false` (the reference's defaults).
    pub fn new<S: Into<String>>(
        name: impl Into<String>,
        reads: impl IntoIterator<Item = S>,
    ) -> Self {
        Projection {
            name: name.into(),
            reads: reads.into_iter().map(Into::into).collect(),
            relations: Vec::new(),
            consumer_hint: Value::sym("contract_node"),
            reactive: false,
        }
    }
}

/// The text form of a partition value, used as the target key of a scatter and of a
/// relation index (Ruby's `to_s`): strings and symbols as themselves, numbers and
/// booleans printed; None for nil (no partition).
///
/// ```
/// use igniter_ledger::{partition_key_text, Value};
/// assert_eq!(partition_key_text(&Value::sym("a1")).as_deref(), Some("a1"));
/// assert_eq!(partition_key_text(&Value::Int(7)).as_deref(), Some("7"));
/// assert_eq!(partition_key_text(&Value::Float(2.0)).as_deref(), Some("2.0"));
/// assert_eq!(partition_key_text(&Value::Nil), None);
/// ```
pub fn partition_key_text(v: &Value) -> Option<String> {
    match v {
        Value::Nil => None,
        Value::Str(s) | Value::Sym(s) => Some(s.clone()),
        Value::Bin(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(inspect(other)),
    }
}

/// Ruby-like `inspect`/`to_s` of non-string values.
fn inspect(v: &Value) -> String {
    match v {
        Value::Nil => "nil".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => {
            if f.is_nan() {
                "NaN".to_owned()
            } else if f.is_infinite() {
                if *f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
            } else if f.fract() == 0.0 && f.abs() < 1e16 {
                format!("{f:.1}")
            } else {
                format!("{f}")
            }
        }
        Value::Str(s) => format!("{s:?}"),
        Value::Bin(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Value::Sym(s) => format!(":{s}"),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(inspect).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Map(pairs) => {
            let parts: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}=>{}", inspect(&k.to_value()), inspect(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

impl PartialEq for Derivation {
    /// Same metadata and the same rule object.
    fn eq(&self, other: &Self) -> bool {
        self.source_store == other.source_store
            && self.filters == other.filters
            && self.target_store == other.target_store
            && match (&self.target_key, &other.target_key) {
                (TargetKey::Fixed(a), TargetKey::Fixed(b)) => a == b,
                (TargetKey::Computed(a), TargetKey::Computed(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
            && Arc::ptr_eq(&self.rule, &other.rule)
    }
}
