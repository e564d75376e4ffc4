//! What a [`ChangefeedBuffer`](super::ChangefeedBuffer) reports about itself: its
//! [`Snapshot`] (counters, configuration), the diagnostics ring of subscriber lifecycle
//! events, and the [`Alert`]s its thresholds raise.

use std::collections::VecDeque;

use uuid::Uuid;

use super::options::{AlertThresholds, ClosePolicy, Overflow};

/// One entry of the diagnostics ring.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// `subscriber_subscribed`, `subscriber_closed`, `subscriber_failed`,
    /// `subscriber_overflow` or `subscriber_lagging`.
    pub kind: &'static str,
    /// When (float seconds since the epoch).
    pub ts: f64,
    /// The subscriber.
    pub subscriber_id: String,
    /// Its stores.
    pub stores: Vec<String>,
    /// The overflow policy (overflow and lagging entries).
    pub overflow: Option<Overflow>,
    /// The handler's error class (failures).
    pub error_class: Option<String>,
    /// The handler's error message (failures).
    pub message: Option<String>,
}

/// The diagnostics ring as [`Snapshot`] shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostics {
    /// The most recent entries, oldest first.
    pub recent: Vec<Diagnostic>,
    /// Entries ever recorded.
    pub recent_count: u64,
    /// Entries evicted from the ring.
    pub dropped_diagnostics_total: u64,
}

/// The measured value of an alert.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AlertValue {
    /// A count.
    Count(u64),
    /// A ratio.
    Ratio(f64),
}

/// A threshold that is reached.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// `changefeed_subscriber_failures`, `changefeed_overflow_drops` or
    /// `changefeed_queue_pressure`.
    pub code: &'static str,
    /// Always `warning`.
    pub severity: &'static str,
    /// The measured value.
    pub value: AlertValue,
    /// The threshold reached.
    pub threshold: AlertValue,
    /// The subscriber (per-subscriber queue pressure only).
    pub subscriber_id: Option<String>,
}

/// Counters, configuration, alerts and diagnostics of a buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Events emitted.
    pub emitted_total: u64,
    /// Events delivered to subscribers.
    pub delivered_total: u64,
    /// Events evicted from the ring.
    pub dropped_total: u64,
    /// Events dropped by full subscriber queues.
    pub overflow_dropped_total: u64,
    /// Subscribers removed for failing.
    pub failed_total: u64,
    /// Events in the ring.
    pub buffered: usize,
    /// Ring capacity.
    pub max_size: usize,
    /// Active subscribers.
    pub subscriber_count: usize,
    /// Sequence of the oldest event in the ring.
    pub oldest_sequence: Option<u64>,
    /// Sequence of the newest event in the ring.
    pub newest_sequence: Option<u64>,
    /// Close policy.
    pub close_policy: ClosePolicy,
    /// Overflow policy new subscribers get.
    pub overflow: Overflow,
    /// Queue capacity of each subscriber.
    pub subscriber_queue_size: usize,
    /// Events queued over all subscribers.
    pub total_queued: usize,
    /// Thresholds reached.
    pub alerts: Vec<Alert>,
    /// The diagnostics ring.
    pub diagnostics: Diagnostics,
    /// The ledger followed, if attached (its identity; None while it is empty).
    pub ledger: Option<Uuid>,
    /// True when attached to a ledger.
    pub attached: bool,
}

/// The bounded ring of diagnostics.
#[derive(Default)]
pub(crate) struct DiagRing {
    entries: VecDeque<Diagnostic>,
    count: u64,
    dropped: u64,
}

impl DiagRing {
    /// Records `d`, evicting the oldest entry beyond `cap`.
    pub(crate) fn push(&mut self, d: Diagnostic, cap: usize) {
        self.count += 1;
        if self.entries.len() >= cap {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back(d);
    }

    /// The ring as a snapshot shows it.
    pub(crate) fn view(&self) -> Diagnostics {
        Diagnostics {
            recent: self.entries.iter().cloned().collect(),
            recent_count: self.count,
            dropped_diagnostics_total: self.dropped,
        }
    }
}

/// The alerts the thresholds raise for these counters; `pressure` is (subscriber id,
/// queued, capacity) per active subscriber.
pub(crate) fn alerts(
    t: &AlertThresholds,
    failed: u64,
    overflow_dropped: u64,
    total_queued: usize,
    pressure: &[(&str, usize, usize)],
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    let warn = |code, value, threshold, subscriber_id| Alert {
        code,
        severity: "warning",
        value,
        threshold,
        subscriber_id,
    };
    if let Some(th) = t.failed_total.filter(|th| failed >= *th) {
        alerts.push(warn(
            "changefeed_subscriber_failures",
            AlertValue::Count(failed),
            AlertValue::Count(th),
            None,
        ));
    }
    if let Some(th) = t
        .overflow_dropped_total
        .filter(|th| overflow_dropped >= *th)
    {
        alerts.push(warn(
            "changefeed_overflow_drops",
            AlertValue::Count(overflow_dropped),
            AlertValue::Count(th),
            None,
        ));
    }
    if let Some(th) = t.total_queued.filter(|th| total_queued as u64 >= *th) {
        alerts.push(warn(
            "changefeed_queue_pressure",
            AlertValue::Count(total_queued as u64),
            AlertValue::Count(th),
            None,
        ));
    }
    if let Some(th) = t.queue_pressure_ratio {
        for (id, q, cap) in pressure {
            let ratio = *q as f64 / *cap as f64;
            if ratio >= th {
                alerts.push(warn(
                    "changefeed_queue_pressure",
                    AlertValue::Ratio(ratio),
                    AlertValue::Ratio(th),
                    Some((*id).to_owned()),
                ));
            }
        }
    }
    alerts
}
