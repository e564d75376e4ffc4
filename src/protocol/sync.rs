//! The sync hub profile: what a replica needs to catch up, from a cursor or from scratch.

use crate::Value;

use super::packet::{obj, opt_float, sym};

/// Whether a profile carries everything or only what followed a cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// No cursor was given: every fact up to `as_of`.
    Full,
    /// Facts after the cursor.
    Incremental,
}

/// The answer to `sync_hub_profile`.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncProfile {
    /// Full or incremental.
    pub mode: SyncMode,
    /// The upper bound asked for (seconds), if any.
    pub as_of: Option<f64>,
    /// The cursor's timestamp (seconds), for an incremental profile.
    pub cursor: Option<f64>,
    /// The stores asked for (empty: all).
    pub stores: Vec<String>,
    /// Fact packets in commit order.
    pub facts: Vec<Value>,
    /// The cursor to ask with next: the last fact's transaction time, or the given
    /// cursor when nothing followed it.
    pub next_cursor: Option<f64>,
}

impl SyncProfile {
    /// True for a full profile.
    pub fn is_full(&self) -> bool {
        self.mode == SyncMode::Full
    }
    /// True for an incremental profile.
    pub fn is_incremental(&self) -> bool {
        self.mode == SyncMode::Incremental
    }

    /// The profile as a packet.
    pub fn to_value(&self) -> Value {
        let cursor = |t: Option<f64>| {
            t.map_or(Value::Nil, |t| {
                obj([("kind", sym("timestamp")), ("value", Value::Float(t))])
            })
        };
        obj([
            ("schema_version", Value::Int(1)),
            ("kind", sym("sync_hub_profile")),
            (
                "mode",
                sym(match self.mode {
                    SyncMode::Full => "full",
                    SyncMode::Incremental => "incremental",
                }),
            ),
            ("as_of", opt_float(self.as_of)),
            ("cursor", cursor(self.cursor)),
            ("next_cursor", cursor(self.next_cursor)),
            (
                "stores",
                Value::Array(self.stores.iter().map(|s| sym(s)).collect()),
            ),
            ("fact_count", Value::Int(self.facts.len() as i64)),
            ("facts", Value::Array(self.facts.clone())),
        ])
    }
}
