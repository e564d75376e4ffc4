//! # igniter_ledger
//!
//! An embedded, append-only, bitemporal fact ledger. Every change is an immutable
//! [`Fact`]; current state, time travel (`as_of`), bitemporal reads (`valid_at`), history,
//! partitions and scopes are views over the log. Facts are kept in a CRC32-framed
//! write-ahead log with three durability modes and group commit, and snapshots make
//! reopening cheap.
//!
//! ```
//! use igniter_ledger::{Append, HistoryQuery, LedgerStore, MapKey, PartitionQuery, Read, Value, Write};
//!
//! let ledger = LedgerStore::memory();
//! ledger.write(Write::new("reminders", "r1", Value::map([
//!     (MapKey::sym("title"), Value::from("Buy milk")),
//! ]))).unwrap();
//! assert!(ledger.read(Read::new("reminders", "r1")).unwrap().is_some());
//!
//! ledger.append(Append::new("events", Value::map([
//!     (MapKey::sym("order_id"), Value::from("o1")),
//! ])).partition_key("order_id")).unwrap();
//! let slice = ledger.history_partition(PartitionQuery::new("events", "order_id", "o1")).unwrap();
//! assert_eq!(slice.len(), 1);
//! assert_eq!(ledger.history(HistoryQuery::new("reminders")).unwrap().len(), 1);
//! ```
//!
//! Everything a user needs is at the crate root; the modules behind it are private.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod changefeed;
mod derive;
mod ledger;
pub mod protocol;
pub mod retention;
pub mod segments;
pub mod typed;

pub use changefeed::{ChangeEvent, ChangefeedBuffer, ChangesQuery, Cursor, Follower};

pub use derive::{
    partition_key_text, Derivation, DerivationRule, Fallible, KeyRule, Projection, Relation,
    Scatter, ScatterRule, SchemaGraph, TargetKey,
};
pub use ledger::access::{
    AccessPath, BoxError, Coercion, Consumer, Notification, Pending, ReadFact,
};
pub use ledger::error::{Error, Result};
pub use ledger::fact::{Fact, FactParts};
pub use ledger::fs::{FileSystem, OsFileSystem, WrittenFile};
pub use ledger::hash_keys::HashKeys;
pub use ledger::recovery::{OpenOptions, OpenReport, Recovered, SnapshotOutcome, TornTail};
pub use ledger::request::{Append, Batch, Expected, HistoryQuery, Op, PartitionQuery, Read, Write};
pub use ledger::snapshot::CheckpointReport;
pub use ledger::store::{ChainEntry, Committed, FactRef, LedgerStore, Lineage};
pub use ledger::time::Timestamp;
pub use ledger::value::{MapKey, Value};
pub use ledger::wal::{Durability, LogFile};
pub use typed::{
    from_slice, from_value, from_value_ref, to_value, to_value_with, KeyStyle, TypedError,
    TypedStore,
};

/// The limits every value, key, name and WAL frame must keep.
pub mod limits {
    pub use crate::ledger::value::limits::*;
    pub use crate::ledger::wal::MAX_BODY;
}

/// Internals shared with the project's own Ruby extension, tests, benchmarks and fuzz
/// targets. Not a public API: anything here may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::ledger::codec;
    #[cfg(feature = "fuzzing")]
    pub use crate::ledger::fuzzing;
    pub use crate::ledger::snapshot::{snapshot_path, snapshot_tmp_path};
}
