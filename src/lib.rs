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
#![warn(missing_docs)]

pub mod ledger;
pub mod protocol;

pub use ledger::*;
