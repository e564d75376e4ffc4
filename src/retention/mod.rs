//! Retention: policies, compaction, exact prune and erasure, each with a receipt, and
//! durable on disk.
//!
//! | module | holds |
//! |---|---|
//! | [`policy`] | strategies and policies |
//! | [`receipt`] | receipt values, reports, the activity view |
//! | `ledger` | the [`crate::LedgerStore`] methods |
//! | `rebuild` | the in-memory views over a rewritten log |
//! | [`rewrite`] | the new WAL generation: written aside, fsynced, renamed (through the ledger's [`crate::FileSystem`]) |
//!
//! What each operation keeps and proves:
//! - **compaction** (`compact`) drops, per store with a non-permanent policy, every fact
//!   of a key but its latest (`ephemeral`), or only those older than the window
//!   (`rolling_window`); one receipt per store in `__compaction_receipts`.
//! - **exact prune** (`prune_fact_ids`) drops exactly the named facts; a receipt in
//!   `__fact_prune_receipts` (or the store given) lists references to them (no values)
//!   and the ids that named nothing.
//! - **erasure** (`erase`) replaces the named facts by tombstones: id, store, key, value
//!   hash, causation, times, schema version, producer and derivation stay (causation
//!   chains and lineage proof hashes still verify), the value bytes go from memory and
//!   from every file; a receipt in `__erasure_receipts` says who, why and which facts.
//!
//! On a file-backed ledger all three rewrite the WAL as a new generation holding the kept
//! facts and the receipts, renamed into place in one atomic step ([`rewrite`]); a reopen
//! after a crash at any point shows the state before or after. Reads never wait; commits
//! go on while the kept facts are copied, written and re-indexed, and wait only while
//! the plan is made, for one chunk of the copy, and for the final swap (measured in each
//! report's `commit_pause`). `crate::verify_file` and `LedgerStore::verify` check the
//! result (tombstones accepted, causations to removed facts accounted for by receipts).

pub mod policy;
pub mod receipt;
pub mod rewrite;

mod ledger;
mod rebuild;

pub use ledger::{Erase, Prune};
pub use policy::{Policies, RetentionPolicy, Strategy};
pub use receipt::{
    ActivityEntry, ActivityKind, CompactionReport, ErasureReport, PruneReport, COMPACTION_RECEIPTS,
    ERASURE_RECEIPTS, PRUNE_RECEIPTS,
};

pub(crate) use rewrite::remove_stale_rewrite;
