//! The changefeed: every committed fact, in commit order, resumable from a cursor.
//!
//! | module | holds |
//! |---|---|
//! | [`event`] | [`ChangeEvent`] and [`Cursor`] (a position in the committed log) |
//! | [`options`] | overflow and close policies, alert thresholds, buffer options |
//! | [`subscription`] | one subscriber: its bounded queue, counters and the [`Subscription`] handle |
//! | [`buffer`] | [`ChangefeedBuffer`]: ring, fan-out, counters, replay |
//! | [`observe`] | what a buffer reports: [`Snapshot`], diagnostics ring, [`Alert`]s |
//! | [`follow`] | the ledger side: [`ChangesQuery`], `LedgerStore::changes`/`follow`, [`Follower`] |
//!
//! ## Sequences and cursors
//! Attached to a ledger, an event's `sequence` is the 1-based position of its fact in the
//! ledger's commit log (the order facts were published in, which is also the order of the
//! WAL and of the snapshot). It is not written into the fact record: the log is never
//! reordered or shortened today, so the position is stable across reopen. Retention and
//! compaction (a later issue) must keep it stable by recording how many facts were
//! removed in front of the log (a base offset) and answering `cursor_too_old` with that
//! horizon; `changes` is written against `first_sequence()` for that reason.
//!
//! A ledger's identity is the id of its first fact (fact ids are unique, time-ordered
//! UUIDs). It needs no new file or WAL field, survives reopen, snapshots and 0.5.2 WAL
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
//! every subscriber sees commit order. Emitting only pushes into bounded queues (O(1) per
//! subscriber, never waiting for a consumer), so a stuck subscriber never blocks a writer.

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
