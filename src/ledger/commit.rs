//! The commit engine's storage seam: where committed frames go besides (or instead of)
//! the single WAL.
//!
//! The writer (in `store`) seals each commit under the writer lock — ids, times,
//! causations, `expected` checks — and then hands it to its storage: the WAL file
//! (`wal::WalWriter`, with group commit and the three durability modes), nothing (an
//! in-memory ledger), or a [`CommitSink`]. A sink receives every commit, in commit order,
//! before it is published; when the sink fails, nothing is published and the writer
//! gets the error. The segment directory (`crate::segments`) is the sink of a segmented
//! ledger.
//!
//! This is the narrow form of the seam (issue 9 item 1 asks for the whole writer to move
//! here): the WAL path still lives in `store.rs`.

use super::error::Result;
use super::fact::Fact;

/// Durable storage for committed facts, called under the writer lock.
pub(crate) trait CommitSink: Send + Sync {
    /// Stores the facts of one commit (all or nothing); returns once they are as
    /// durable as the sink's durability mode promises.
    fn append(&self, facts: &[Fact]) -> Result<()>;
    /// Writes out and closes; later appends fail with `Error::Closed`.
    fn close(&self) -> Result<()>;
}
