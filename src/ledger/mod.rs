//! The ledger: facts, values, the WAL, snapshots and the indexes behind every read path.
//!
//! | module | holds |
//! |---|---|
//! | [`value`] | the value model and its limits |
//! | [`codec`] | MessagePack encoding of values and the canonical form behind the value hash |
//! | [`fact`] | immutable facts and their record encoding |
//! | [`time`] | transaction time |
//! | [`request`] | write/append/batch/read/history/partition requests |
//! | [`access`] | access paths, consumers, coercions |
//! | `index` | the in-memory views (commit order, keys, ids, partitions, scopes) |
//! | [`wal`] | frames, durability modes, the appending writer |
//! | [`snapshot`] | checkpoint files |
//! | [`recovery`] | opening: snapshot + replay, torn tails, corruption |
//! | `import` | reading the 0.5.2 Ruby gem's JSON frames |
//! | [`store`] | [`LedgerStore`] |

pub mod access;
pub mod codec;
pub mod error;
pub mod fact;
mod fork;
pub mod fs;
#[doc(hidden)]
pub mod fuzzing;
mod import;
mod index;
mod lock;
pub mod recovery;
pub mod request;
pub mod snapshot;
pub mod store;
pub mod time;
pub mod value;
pub mod wal;

pub use access::{AccessPath, BoxError, Coercion, Consumer, Notification, Pending, ReadFact};
pub use error::{Error, Result};
pub use fact::Fact;
pub use fs::{FileSystem, OsFileSystem, WrittenFile};
pub use recovery::{OpenOptions, OpenReport, Recovered, SnapshotOutcome, TornTail};
pub use request::{Append, Batch, Expected, HistoryQuery, Op, PartitionQuery, Read, Write};
pub use snapshot::CheckpointReport;
pub use store::{ChainEntry, Committed, FactRef, LedgerStore, Lineage, SchemaGraph};
pub use time::Timestamp;
pub use value::{MapKey, Value};
pub use wal::{Durability, LogFile};
