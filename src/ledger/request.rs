//! Request types: what to write and what to read, as builders.

use uuid::Uuid;

use super::time::Timestamp;
use super::value::Value;

/// What the writer expects the latest fact of (store, key) to be (optimistic concurrency).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Expected {
    /// No check (the default).
    #[default]
    Any,
    /// The key must not exist yet.
    Absent,
    /// The latest fact must be this one.
    Fact(Uuid),
}

/// A `write` of a value to (store, key).
///
/// ```
/// use igniter_ledger::{LedgerStore, Value, Write};
/// let ledger = LedgerStore::memory();
/// let f = ledger.write(Write::new("tasks", "t1", Value::from("draft")).valid_time(1.0)).unwrap();
/// assert_eq!(f.valid_time(), Some(1.0));
/// ```
#[derive(Clone, Debug)]
pub struct Write {
    pub(crate) store: String,
    pub(crate) key: String,
    pub(crate) value: Value,
    pub(crate) schema_version: u32,
    pub(crate) causation: Option<Uuid>,
    pub(crate) valid_time: Option<f64>,
    pub(crate) producer: Option<Value>,
    pub(crate) derivation: Option<Value>,
    pub(crate) expected: Expected,
    /// The id and transaction time of a fact restored from elsewhere
    /// ([`Write::restoring`]).
    pub(crate) restore: Option<(Uuid, crate::Timestamp)>,
}

impl Write {
    /// A write that takes in a fact recorded elsewhere (an export, another ledger, a
    /// backend being replayed) with its own id, transaction time and causation (none
    /// stays none). Committed like any write, it keeps its id; its transaction time is
    /// kept when it is later than every fact of this ledger, and otherwise moved to the
    /// next microsecond (transaction times are strictly increasing). A fact whose id is
    /// already in the ledger is refused (`InvalidArgument`).
    ///
    /// ```
    /// use igniter_ledger::{Fact, LedgerStore, Value, Write};
    /// let elsewhere = Fact::build(Write::new("notes", "n1", Value::from("hi"))).unwrap();
    /// let ledger = LedgerStore::memory();
    /// let f = ledger.write(Write::restoring(elsewhere.to_parts())).unwrap();
    /// assert_eq!(f.id(), elsewhere.id());
    /// assert_eq!(f.transaction_time(), elsewhere.transaction_time());
    /// assert!(ledger.write(Write::restoring(elsewhere.to_parts())).is_err()); // already in
    /// ```
    pub fn restoring(p: crate::FactParts) -> Self {
        Write {
            store: p.store,
            key: p.key,
            value: p.value,
            schema_version: p.schema_version,
            causation: p.causation,
            valid_time: p.valid_time,
            producer: p.producer,
            derivation: p.derivation,
            expected: Expected::Any,
            restore: Some((p.id, p.transaction_time)),
        }
    }
    /// A write of `value` to (`store`, `key`) with schema version 1.
    pub fn new(store: impl Into<String>, key: impl Into<String>, value: impl Into<Value>) -> Self {
        Write {
            store: store.into(),
            key: key.into(),
            value: value.into(),
            schema_version: 1,
            causation: None,
            valid_time: None,
            producer: None,
            derivation: None,
            expected: Expected::Any,
            restore: None,
        }
    }
    /// The parts of a fact with this write's content and the given id, transaction time
    /// and causation (for [`crate::Fact::restore`]; `expected` is dropped).
    pub fn into_parts(
        self,
        id: Uuid,
        transaction_time: crate::Timestamp,
        causation: Option<Uuid>,
    ) -> crate::FactParts {
        crate::FactParts {
            id,
            store: self.store,
            key: self.key,
            value: self.value,
            causation,
            transaction_time,
            valid_time: self.valid_time,
            schema_version: self.schema_version,
            producer: self.producer,
            derivation: self.derivation,
        }
    }
    /// Schema version of the value (default 1).
    pub fn schema_version(mut self, v: u32) -> Self {
        self.schema_version = v;
        self
    }
    /// Explicit causation (default: the previous fact of the same key).
    pub fn causation(mut self, id: Uuid) -> Self {
        self.causation = Some(id);
        self
    }
    /// Explicit causation, or None for the default.
    pub fn causation_opt(mut self, id: Option<Uuid>) -> Self {
        self.causation = id;
        self
    }
    /// Domain (valid) time in seconds since the epoch.
    pub fn valid_time(mut self, t: f64) -> Self {
        self.valid_time = Some(t);
        self
    }
    /// Domain time, or None.
    pub fn valid_time_opt(mut self, t: Option<f64>) -> Self {
        self.valid_time = t;
        self
    }
    /// Who wrote it.
    pub fn producer(mut self, v: impl Into<Value>) -> Self {
        self.producer = Some(v.into());
        self
    }
    /// What it was derived from.
    pub fn derivation(mut self, v: impl Into<Value>) -> Self {
        self.derivation = Some(v.into());
        self
    }
    /// Optimistic concurrency check.
    pub fn expected(mut self, e: Expected) -> Self {
        self.expected = e;
        self
    }
}

/// An `append` of an event to a history: a fact with a fresh UUID key.
#[derive(Clone, Debug)]
pub struct Append {
    pub(crate) history: String,
    pub(crate) event: Value,
    pub(crate) partition_key: Option<crate::MapKey>,
    pub(crate) schema_version: u32,
    pub(crate) causation: Option<Uuid>,
    pub(crate) valid_time: Option<f64>,
    pub(crate) producer: Option<Value>,
    pub(crate) derivation: Option<Value>,
}

impl Append {
    /// An append of `event` to `history`.
    pub fn new(history: impl Into<String>, event: impl Into<Value>) -> Self {
        Append {
            history: history.into(),
            event: event.into(),
            partition_key: None,
            schema_version: 1,
            causation: None,
            valid_time: None,
            producer: None,
            derivation: None,
        }
    }
    /// Names the event field this history is partitioned by. Optional: partitions are
    /// answered correctly whether or not appends name it; naming it starts maintaining
    /// that partition index right away.
    pub fn partition_key(mut self, k: impl Into<String>) -> Self {
        self.partition_key = Some(crate::MapKey::Sym(k.into()));
        self
    }
    /// As [`Append::partition_key`] with any kind of map key (or None).
    pub fn partition_map_key(mut self, k: Option<crate::MapKey>) -> Self {
        self.partition_key = k;
        self
    }
    /// Schema version (default 1).
    pub fn schema_version(mut self, v: u32) -> Self {
        self.schema_version = v;
        self
    }
    /// Explicit causation (default none).
    pub fn causation(mut self, id: Uuid) -> Self {
        self.causation = Some(id);
        self
    }
    /// Domain (valid) time in seconds.
    pub fn valid_time(mut self, t: f64) -> Self {
        self.valid_time = Some(t);
        self
    }
    /// Domain time, or None.
    pub fn valid_time_opt(mut self, t: Option<f64>) -> Self {
        self.valid_time = t;
        self
    }
    /// Who wrote it.
    pub fn producer(mut self, v: impl Into<Value>) -> Self {
        self.producer = Some(v.into());
        self
    }
    /// What it was derived from.
    pub fn derivation(mut self, v: impl Into<Value>) -> Self {
        self.derivation = Some(v.into());
        self
    }
}

/// One operation of a batch.
#[derive(Clone, Debug)]
pub enum Op {
    /// A write.
    Write(Write),
    /// An append.
    Append(Append),
}

/// Writes and appends committed atomically: all become visible at once, and after a
/// crash either all or none are present. `expected` checks see earlier operations of the
/// same batch.
///
/// ```
/// use igniter_ledger::{Batch, LedgerStore, Value, Write, Append};
/// let ledger = LedgerStore::memory();
/// let facts = ledger.commit(Batch::new()
///     .write(Write::new("stock", "sku-1", Value::Int(4)))
///     .append(Append::new("moves", Value::from("sku-1 -1")))).unwrap();
/// assert_eq!(facts.len(), 2);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub(crate) ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }
    /// Adds a write.
    pub fn write(mut self, w: Write) -> Self {
        self.ops.push(Op::Write(w));
        self
    }
    /// Adds an append.
    pub fn append(mut self, a: Append) -> Self {
        self.ops.push(Op::Append(a));
        self
    }
    /// Adds an operation in place.
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }
    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A point read of (store, key), optionally in the past and/or bitemporal.
#[derive(Clone, Debug)]
pub struct Read {
    pub(crate) store: String,
    pub(crate) key: String,
    pub(crate) as_of: Option<Timestamp>,
    pub(crate) valid_at: Option<f64>,
}

impl Read {
    /// The current value of (store, key).
    pub fn new(store: impl Into<String>, key: impl Into<String>) -> Self {
        Read {
            store: store.into(),
            key: key.into(),
            as_of: None,
            valid_at: None,
        }
    }
    /// Only facts with `transaction_time <= t`.
    pub fn as_of(mut self, t: Timestamp) -> Self {
        self.as_of = Some(t);
        self
    }
    /// `as_of`, or None.
    pub fn as_of_opt(mut self, t: Option<Timestamp>) -> Self {
        self.as_of = t;
        self
    }
    /// Bitemporal: the fact with the greatest valid time `<= t` (facts without a valid time
    /// count from their transaction time; ties go to the later transaction).
    pub fn valid_at(mut self, t: f64) -> Self {
        self.valid_at = Some(t);
        self
    }
    /// `valid_at`, or None.
    pub fn valid_at_opt(mut self, t: Option<f64>) -> Self {
        self.valid_at = t;
        self
    }
}

/// A history query: facts of a store (or one key) in commit order.
#[derive(Clone, Debug)]
pub struct HistoryQuery {
    pub(crate) store: String,
    pub(crate) key: Option<String>,
    pub(crate) since: Option<Timestamp>,
    pub(crate) as_of: Option<Timestamp>,
}

impl HistoryQuery {
    /// Every fact of `store`.
    pub fn new(store: impl Into<String>) -> Self {
        HistoryQuery {
            store: store.into(),
            key: None,
            since: None,
            as_of: None,
        }
    }
    /// Only facts of this key.
    pub fn key(mut self, k: impl Into<String>) -> Self {
        self.key = Some(k.into());
        self
    }
    /// Key, or None for the whole store.
    pub fn key_opt(mut self, k: Option<String>) -> Self {
        self.key = k;
        self
    }
    /// Only facts with `transaction_time >= t`.
    pub fn since(mut self, t: Timestamp) -> Self {
        self.since = Some(t);
        self
    }
    /// `since`, or None.
    pub fn since_opt(mut self, t: Option<Timestamp>) -> Self {
        self.since = t;
        self
    }
    /// Only facts with `transaction_time <= t`.
    pub fn as_of(mut self, t: Timestamp) -> Self {
        self.as_of = Some(t);
        self
    }
    /// `as_of`, or None.
    pub fn as_of_opt(mut self, t: Option<Timestamp>) -> Self {
        self.as_of = t;
        self
    }
}

/// A partition slice: facts of a store whose value has `partition_key == partition_value`.
#[derive(Clone, Debug)]
pub struct PartitionQuery {
    pub(crate) store: String,
    pub(crate) partition_key: crate::MapKey,
    pub(crate) partition_value: Value,
    pub(crate) since: Option<Timestamp>,
    pub(crate) as_of: Option<Timestamp>,
}

impl PartitionQuery {
    /// The slice of `store` whose events have `partition_key` (a Symbol key) equal to
    /// `partition_value`.
    pub fn new(
        store: impl Into<String>,
        partition_key: impl Into<String>,
        partition_value: impl Into<Value>,
    ) -> Self {
        Self::with_key(
            store,
            crate::MapKey::Sym(partition_key.into()),
            partition_value,
        )
    }
    /// As [`PartitionQuery::new`] with any kind of map key.
    pub fn with_key(
        store: impl Into<String>,
        partition_key: crate::MapKey,
        partition_value: impl Into<Value>,
    ) -> Self {
        PartitionQuery {
            store: store.into(),
            partition_key,
            partition_value: partition_value.into(),
            since: None,
            as_of: None,
        }
    }
    /// Only facts with `transaction_time >= t`.
    pub fn since(mut self, t: Timestamp) -> Self {
        self.since = Some(t);
        self
    }
    /// `since`, or None.
    pub fn since_opt(mut self, t: Option<Timestamp>) -> Self {
        self.since = t;
        self
    }
    /// Only facts with `transaction_time <= t`.
    pub fn as_of(mut self, t: Timestamp) -> Self {
        self.as_of = Some(t);
        self
    }
    /// `as_of`, or None.
    pub fn as_of_opt(mut self, t: Option<Timestamp>) -> Self {
        self.as_of = t;
        self
    }
}
