//! The changefeed: every committed fact, in commit order, resumable from a cursor.
//!
//! | module | holds |
//! |---|---|
//! | [`error`] | [`ChangefeedError`]: refused arguments and cursors |
//! | [`event`] | [`ChangeEvent`] and [`Cursor`] (a position in the committed log) |
//! | [`options`] | overflow and close policies, alert thresholds, buffer options |
//! | [`subscription`] | one subscriber: its bounded queue, counters and the [`Subscription`] handle |
//! | [`buffer`] | [`ChangefeedBuffer`]: ring, fan-out, counters, replay |
//! | [`observe`] | what a buffer reports: [`Snapshot`], diagnostics ring, [`Alert`]s |
//! | `sequence` | each fact's sequence across retention rewrites |
//! | `forksafe` | locks a forked child never waits on forever |
//! | [`follow`] | the ledger side: [`ChangesQuery`], `LedgerStore::changes`/`follow`, [`Follower`] |
//!
//! ## Sequences and cursors
//! Attached to a ledger, an event's `sequence` is its fact's sequence: the 1-based
//! position the fact was committed at in the ledger's log, kept for the fact's whole
//! life. A fresh log numbers 1, 2, 3, … by position and stores nothing; a retention
//! rewrite (compaction, exact prune) that removes facts records where the kept facts'
//! sequences jump (see `sequence`: a table in the new WAL generation's first frame and
//! in the snapshot header), so no kept fact is ever renumbered, across reopen too. A
//! segmented ledger whose `purge_segments` dropped facts records their sequences in
//! `sequences.json` under its root (see `crate::segments`) and skips them on reopen. A
//! cursor before the oldest kept fact's sequence minus one is
//! [`ChangefeedError::CursorTooOld`], naming that horizon
//! ([`LedgerStore::first_sequence`](crate::LedgerStore::first_sequence)).
//!
//! A ledger's identity is the id of its first fact (fact ids are unique, time-ordered
//! UUIDs); a rewrite that removes that fact keeps the identity in its sequence table. It needs no new file or WAL field, survives reopen, snapshots and 0.5.2 WAL
//! import, and is the same for a copy of the same history. An empty ledger has no
//! identity yet; cursors taken from it are plain `{sequence: 0}`. A cursor that names
//! another ledger is refused.
//!
//! A standalone [`ChangefeedBuffer`] (events emitted by hand) keeps the 0.5.2 shape: a
//! bounded ring, its own counter from 1, cursors without a ledger, and `cursor_too_old`
//! once the ring has moved past a cursor.
//!
//! ## Threads
//! Events are emitted after a commit is published, under the ledger's writer lock, so
//! every subscriber sees commit order. What the writer does per commit depends on the
//! subscriber's policy:
//!
//! - **Catch-up** (the default of a buffer attached to a ledger): nothing per
//!   subscriber. The writer publishes the newest sequence (one atomic store) and wakes
//!   waiting consumers only when one is parked (a count checked after the store). The
//!   consumer reads the facts from the ledger's own log, after its last sequence, a
//!   queue's worth per read lock, builds the events on its own thread, and between reads
//!   yields briefly, then parks on the ledger. Facts removed by retention or an exact
//!   prune before the consumer reached them are not delivered (as for a [`Follower`]).
//! - **Dropping policies** (`drop_oldest`/`drop_newest`, and every subscriber of a
//!   standalone buffer): the writer pushes the commit's events into the subscriber's
//!   bounded queue (one lock and at most one wake-up per subscriber per commit).
//!
//! Neither ever waits for a consumer, so a stuck subscriber never blocks a writer. A
//! forked child never waits on a changefeed lock a parent thread held at the fork (see
//! `forksafe`).

pub mod buffer;
pub mod error;
pub mod event;
pub mod follow;
mod forksafe;
pub mod observe;
pub mod options;
pub(crate) mod sequence;
pub mod subscription;

/// The store filter that matches every store: `feed.subscribe(ALL_STORES)`.
pub const ALL_STORES: &[&str] = &[];

pub use buffer::{ChangefeedBuffer, Replay, ReplayStatus};
pub use error::ChangefeedError;
pub use event::{ChangeEvent, Cursor};
pub(crate) use follow::LedgerHook;
pub use follow::{ChangesQuery, Follower};
pub use observe::{Alert, AlertValue, Diagnostic, Diagnostics, Snapshot};
pub use options::{AlertThresholds, BufferOptions, ClosePolicy, Overflow};
pub use subscription::{Recv, SubscriberSnapshot, Subscription};
