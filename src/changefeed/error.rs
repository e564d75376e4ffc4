//! [`ChangefeedError`]: what the changefeed refuses, by argument.

use uuid::Uuid;

use super::event::Cursor;

/// A changefeed argument that was refused, or a cursor that cannot be served. Every
/// message starts with the argument's name (`overflow:`, `cursor:`, …). Arrives as
/// [`crate::Error::Changefeed`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangefeedError {
    /// An overflow or close policy that does not exist.
    #[error(
        "{argument}: unknown {} {value:?} (expected {expected})",
        policy_word(argument)
    )]
    UnknownPolicy {
        /// `overflow` or `close_policy`.
        argument: &'static str,
        /// What was given.
        value: String,
        /// The names accepted.
        expected: &'static str,
    },
    /// A size or limit that must be positive was not.
    #[error("{argument}: must be a positive Integer, got {value}")]
    NotPositive {
        /// `max_size`, `subscriber_queue_size`, `diagnostic_ring_size` or `limit`.
        argument: &'static str,
        /// What was given.
        value: i64,
    },
    /// Alert thresholds with unknown names (all of them listed).
    #[error("alert_thresholds: unknown alert_threshold keys: {} (known: {})", keys.join(", "), super::AlertThresholds::KEYS.join(", "))]
    UnknownThresholds {
        /// The unknown names.
        keys: Vec<String>,
    },
    /// An alert threshold with a value out of range.
    #[error("alert_thresholds: {key} must be {expected}, got {value}")]
    BadThreshold {
        /// The threshold's name.
        key: String,
        /// What it must be.
        expected: &'static str,
        /// What was given.
        value: f64,
    },
    /// A cursor that names another ledger.
    #[error("cursor: {cursor} is from another ledger (this ledger is {})", ledger.map_or_else(|| "empty".to_owned(), |u| u.to_string()))]
    ForeignCursor {
        /// The cursor given.
        cursor: Cursor,
        /// This ledger's identity (None while it is empty).
        ledger: Option<Uuid>,
    },
    /// A cursor that names a ledger, given to a standalone buffer (whose cursors have
    /// none).
    #[error("cursor: {cursor} names a ledger, but this ChangefeedBuffer is standalone (its cursors are {{sequence: N}})")]
    LedgerCursorOnStandalone {
        /// The cursor given.
        cursor: Cursor,
    },
    /// A cursor past the newest fact of this ledger.
    #[error("cursor: sequence {} is past the end of this ledger (its newest sequence is {head})", cursor.sequence)]
    CursorPastEnd {
        /// The cursor given.
        cursor: Cursor,
        /// The newest sequence.
        head: u64,
    },
    /// Retention or compaction removed the history right after this cursor: the facts
    /// up to `horizon` are gone (those kept after it are still there). Resume from
    /// `horizon` (or later) knowingly.
    #[error("cursor: {cursor} is too old: retention removed the history after it (the oldest cursor that can resume is {horizon})")]
    CursorTooOld {
        /// The cursor given.
        cursor: Cursor,
        /// The oldest cursor that can resume: just before the oldest fact kept.
        horizon: Cursor,
    },
    /// An operation this buffer does not allow (emitting by hand into a buffer that
    /// follows a ledger, attaching one buffer to two ledgers, …).
    #[error("{argument}: {reason}")]
    Misuse {
        /// The operation or argument.
        argument: &'static str,
        /// Why.
        reason: String,
    },
}

fn policy_word(argument: &str) -> &'static str {
    if argument == "overflow" {
        "overflow policy"
    } else {
        "close_policy"
    }
}

impl ChangefeedError {
    /// The name of the argument refused (`cursor` for the cursor errors).
    pub fn argument(&self) -> &str {
        match self {
            ChangefeedError::UnknownPolicy { argument, .. }
            | ChangefeedError::NotPositive { argument, .. }
            | ChangefeedError::Misuse { argument, .. } => argument,
            ChangefeedError::UnknownThresholds { .. } | ChangefeedError::BadThreshold { .. } => {
                "alert_thresholds"
            }
            ChangefeedError::ForeignCursor { .. }
            | ChangefeedError::LedgerCursorOnStandalone { .. }
            | ChangefeedError::CursorPastEnd { .. }
            | ChangefeedError::CursorTooOld { .. } => "cursor",
        }
    }
}
