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
//! | [`verify`] | checking a ledger's files without changing them |
//! | `import` | reading the 0.5.2 Ruby gem's JSON frames |
//! | [`store`] | [`LedgerStore`](store::LedgerStore), the API over all of the above |

pub mod access;
pub mod codec;
pub(crate) mod commit;
pub mod error;
pub mod fact;
pub(crate) mod fork;
pub mod fs;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod hash_keys;
mod import;
pub(crate) mod index;
pub(crate) mod lock;
pub mod recovery;
pub mod request;
pub mod snapshot;
pub mod store;
pub mod time;
pub mod value;
pub mod verify;
pub mod wal;
