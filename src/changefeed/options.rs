//! How a [`ChangefeedBuffer`](super::ChangefeedBuffer) behaves: ring size, subscriber
//! queue size, overflow and close policies, diagnostics ring size, alert thresholds.

use super::error::ChangefeedError;
use crate::Result;

/// What a subscriber's full queue does with one more event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the oldest queued event to make room (0.5.2 default).
    DropOldest,
    /// Drop the incoming event.
    DropNewest,
    /// Stop queueing and, once the queue is drained, read the missed events back from the
    /// ledger's log: nothing is lost. The default of a buffer attached to a ledger; a
    /// standalone buffer has no log to read, so its subscribers drop the oldest instead.
    CatchUp,
}

impl Overflow {
    /// Parses `drop_oldest`, `drop_newest` or `catch_up`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "drop_oldest" => Ok(Overflow::DropOldest),
            "drop_newest" => Ok(Overflow::DropNewest),
            "catch_up" => Ok(Overflow::CatchUp),
            other => Err(ChangefeedError::UnknownPolicy {
                argument: "overflow",
                value: other.to_owned(),
                expected: "drop_oldest, drop_newest or catch_up",
            }
            .into()),
        }
    }

    /// The policy's name.
    pub fn name(self) -> &'static str {
        match self {
            Overflow::DropOldest => "drop_oldest",
            Overflow::DropNewest => "drop_newest",
            Overflow::CatchUp => "catch_up",
        }
    }
}

/// What closing a subscription does with the events still queued for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClosePolicy {
    /// Deliver them first (0.5.2 default).
    #[default]
    Drain,
    /// Drop them; the consumer stops after the event it is handling.
    Discard,
}

impl ClosePolicy {
    /// Parses `drain` or `discard`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "drain" => Ok(ClosePolicy::Drain),
            "discard" => Ok(ClosePolicy::Discard),
            other => Err(ChangefeedError::UnknownPolicy {
                argument: "close_policy",
                value: other.to_owned(),
                expected: "drain or discard",
            }
            .into()),
        }
    }

    /// The policy's name.
    pub fn name(self) -> &'static str {
        match self {
            ClosePolicy::Drain => "drain",
            ClosePolicy::Discard => "discard",
        }
    }
}

/// Levels at which [`Snapshot::alerts`](super::Snapshot::alerts) reports a problem. Unset
/// thresholds never fire.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AlertThresholds {
    /// Events queued over all subscribers.
    pub total_queued: Option<u64>,
    /// Events dropped by full subscriber queues.
    pub overflow_dropped_total: Option<u64>,
    /// Subscribers removed because their handler failed.
    pub failed_total: Option<u64>,
    /// One subscriber's queue length / queue capacity.
    pub queue_pressure_ratio: Option<f64>,
}

impl AlertThresholds {
    /// The names a threshold may have.
    pub const KEYS: [&'static str; 4] = [
        "total_queued",
        "overflow_dropped_total",
        "failed_total",
        "queue_pressure_ratio",
    ];

    /// From (name, value) pairs; unknown names are refused together, by name. Counts
    /// must be non-negative whole numbers, the ratio a number in 0..=1.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, f64)>) -> Result<Self> {
        let mut t = AlertThresholds::default();
        let mut unknown = Vec::new();
        for (k, v) in pairs {
            let count = |v: f64| -> Result<u64> {
                if v.is_finite() && v >= 0.0 && v.fract() == 0.0 {
                    Ok(v as u64)
                } else {
                    Err(ChangefeedError::BadThreshold {
                        key: k.to_owned(),
                        expected: "a non-negative Integer",
                        value: v,
                    }
                    .into())
                }
            };
            match k {
                "total_queued" => t.total_queued = Some(count(v)?),
                "overflow_dropped_total" => t.overflow_dropped_total = Some(count(v)?),
                "failed_total" => t.failed_total = Some(count(v)?),
                "queue_pressure_ratio" => {
                    if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                        return Err(ChangefeedError::BadThreshold {
                            key: k.to_owned(),
                            expected: "a number from 0 to 1",
                            value: v,
                        }
                        .into());
                    }
                    t.queue_pressure_ratio = Some(v)
                }
                other => unknown.push(other.to_owned()),
            }
        }
        if !unknown.is_empty() {
            return Err(ChangefeedError::UnknownThresholds { keys: unknown }.into());
        }
        Ok(t)
    }
}

/// Options of a [`ChangefeedBuffer`](super::ChangefeedBuffer). Defaults are 0.5.2's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BufferOptions {
    /// Events kept in the ring (for `replay` of a standalone buffer); ≥ 1. Default 1000.
    pub max_size: usize,
    /// Capacity of each subscriber's queue; ≥ 1. Default 100.
    pub subscriber_queue_size: usize,
    /// The overflow policy; None = the default: `DropOldest` standalone, `CatchUp` once
    /// attached to a ledger.
    pub overflow: Option<Overflow>,
    /// The close policy. Default `Drain`.
    pub close_policy: ClosePolicy,
    /// Entries kept in the diagnostics ring; ≥ 1. Default 100.
    pub diagnostic_ring_size: usize,
    /// Alert thresholds. Default: none.
    pub alert_thresholds: AlertThresholds,
}

impl Default for BufferOptions {
    fn default() -> Self {
        BufferOptions {
            max_size: 1000,
            subscriber_queue_size: 100,
            overflow: None,
            close_policy: ClosePolicy::Drain,
            diagnostic_ring_size: 100,
            alert_thresholds: AlertThresholds::default(),
        }
    }
}

impl BufferOptions {
    /// Checks the sizes, naming the offending argument.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("max_size", self.max_size),
            ("subscriber_queue_size", self.subscriber_queue_size),
            ("diagnostic_ring_size", self.diagnostic_ring_size),
        ] {
            if v == 0 {
                return Err(ChangefeedError::NotPositive {
                    argument: name,
                    value: 0,
                }
                .into());
            }
        }
        Ok(())
    }
}
