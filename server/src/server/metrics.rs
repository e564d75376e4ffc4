//! Counters of a running server and the snapshots built from them (the reference's
//! `ServerMetrics#snapshot` and `StoreServer#health_snapshot` keys), in JSON and in
//! the Prometheus text format.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value as Json;

/// When the metrics raise alerts (the reference's defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsThresholds {
    /// Active connections at or above this raise `max_connections`.
    pub max_connections: u64,
    /// Errors per request above this raise `error_rate` (after 10 requests).
    pub error_rate: f64,
    /// A replay answering more facts than this raises `replay_size`.
    pub replay_size: u64,
    /// Storage bytes above this raise `storage_bytes` (None: never).
    pub storage_bytes: Option<u64>,
}

impl Default for MetricsThresholds {
    fn default() -> Self {
        MetricsThresholds {
            max_connections: 500,
            error_rate: 0.1,
            replay_size: 10_000,
            storage_bytes: Some(1 << 30),
        }
    }
}

#[derive(Default)]
struct Maps {
    requests: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    subs: BTreeMap<String, u64>,
    largest_replay: u64,
    latency_us: Vec<u32>,
    latency_at: usize,
}

/// The live counters.
#[derive(Default)]
pub(crate) struct Metrics {
    active: AtomicU64,
    accepted: AtomicU64,
    closed: AtomicU64,
    rejected: AtomicU64,
    facts_written: AtomicU64,
    facts_replayed: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    next_conn: AtomicU64,
    maps: Mutex<Maps>,
}

const LATENCY_RING: usize = 4096;

impl Metrics {
    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn try_open(&self, max: usize) -> Option<u64> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        if now as usize > max {
            self.active.fetch_sub(1, Ordering::SeqCst);
            self.rejected.fetch_add(1, Ordering::SeqCst);
            return None;
        }
        self.accepted.fetch_add(1, Ordering::SeqCst);
        Some(self.next_conn.fetch_add(1, Ordering::SeqCst) + 1)
    }
    pub(crate) fn close(&self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst) as usize
    }
    pub(crate) fn request(&self, op: &str, bytes_in: usize, bytes_out: usize, micros: u64) {
        self.bytes_in.fetch_add(bytes_in as u64, Ordering::Relaxed);
        self.bytes_out
            .fetch_add(bytes_out as u64, Ordering::Relaxed);
        let mut m = self.maps();
        *m.requests.entry(op.to_owned()).or_default() += 1;
        if m.latency_us.len() >= LATENCY_RING {
            let at = m.latency_at;
            m.latency_us[at] = micros.min(u32::MAX as u64) as u32;
            m.latency_at = (at + 1) % LATENCY_RING;
        } else {
            m.latency_us.push(micros.min(u32::MAX as u64) as u32);
        }
    }
    pub(crate) fn error(&self, class: &str, op: &str) {
        *self
            .maps()
            .errors
            .entry(format!("{class}/{op}"))
            .or_default() += 1;
    }
    pub(crate) fn facts_written(&self, n: u64) {
        self.facts_written.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn facts_replayed(&self, n: u64) {
        self.facts_replayed.fetch_add(n, Ordering::Relaxed);
        let mut m = self.maps();
        m.largest_replay = m.largest_replay.max(n);
    }
    pub(crate) fn facts_written_total(&self) -> u64 {
        self.facts_written.load(Ordering::Relaxed)
    }
    pub(crate) fn subscription(&self, stores: &[String], delta: i64) {
        let mut m = self.maps();
        let keys: Vec<String> = if stores.is_empty() {
            vec!["*".to_owned()]
        } else {
            stores.to_vec()
        };
        for s in keys {
            let e = m.subs.entry(s).or_default();
            *e = (*e as i64 + delta).max(0) as u64;
        }
    }
    pub(crate) fn subscriptions_for(&self, store: &str) -> usize {
        let m = self.maps();
        (m.subs.get(store).copied().unwrap_or(0) + m.subs.get("*").copied().unwrap_or(0)) as usize
    }
    pub(crate) fn subscription_count(&self) -> usize {
        self.maps().subs.values().sum::<u64>() as usize
    }

    pub(crate) fn snapshot(
        &self,
        uptime_ms: u64,
        storage_stats: Option<Json>,
        t: &MetricsThresholds,
    ) -> MetricsSnapshot {
        let m = self.maps();
        let requests: u64 = m.requests.values().sum();
        let errors: u64 = m.errors.values().sum();
        let mut lat = m.latency_us.clone();
        lat.sort_unstable();
        let pct = |p: f64| -> Option<f64> {
            (!lat.is_empty())
                .then(|| lat[((lat.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0)
        };
        let active = self.active.load(Ordering::SeqCst);
        let mut alerts = Vec::new();
        if active >= t.max_connections {
            alerts.push(serde_json::json!({"type": "max_connections", "value": active, "threshold": t.max_connections}));
        }
        if requests >= 10 && errors as f64 / requests as f64 > t.error_rate {
            alerts.push(serde_json::json!({"type": "error_rate", "value": errors as f64 / requests as f64, "threshold": t.error_rate}));
        }
        if m.largest_replay > t.replay_size {
            alerts.push(serde_json::json!({"type": "replay_size", "value": m.largest_replay, "threshold": t.replay_size}));
        }
        if let (Some(limit), Some(bytes)) = (
            t.storage_bytes,
            storage_stats
                .as_ref()
                .and_then(|s| s.get("total_bytes").or_else(|| s.get("bytes")))
                .and_then(Json::as_u64),
        ) {
            if bytes > limit {
                alerts.push(serde_json::json!({"type": "storage_bytes", "value": bytes, "threshold": limit}));
            }
        }
        MetricsSnapshot {
            schema_version: 1,
            generated_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            uptime_ms,
            facts_written: self.facts_written.load(Ordering::Relaxed),
            facts_replayed: self.facts_replayed.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            requests_total: m.requests.clone(),
            errors_total: m.errors.clone(),
            active_connections: active,
            accepted_connections_total: self.accepted.load(Ordering::SeqCst),
            closed_connections_total: self.closed.load(Ordering::SeqCst),
            rejected_connections_total: self.rejected.load(Ordering::SeqCst),
            subscription_count: m.subs.values().sum(),
            subscriptions_by_store: m.subs.clone(),
            storage_stats,
            alerts,
            latency_p50_ms: pct(0.50),
            latency_p99_ms: pct(0.99),
        }
    }
}

/// The metrics snapshot: the reference's keys, plus request latency percentiles.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Always 1.
    pub schema_version: u32,
    /// When taken (seconds since the epoch).
    pub generated_at: f64,
    /// Milliseconds since start.
    pub uptime_ms: u64,
    /// Facts written through this server.
    pub facts_written: u64,
    /// Facts answered by legacy `replay`.
    pub facts_replayed: u64,
    /// Request bytes received (framed).
    pub bytes_in: u64,
    /// Response bytes sent (framed).
    pub bytes_out: u64,
    /// Requests by op.
    pub requests_total: BTreeMap<String, u64>,
    /// Errors by `Class/op`.
    pub errors_total: BTreeMap<String, u64>,
    /// Framed connections open.
    pub active_connections: u64,
    /// Framed connections accepted.
    pub accepted_connections_total: u64,
    /// Framed connections closed.
    pub closed_connections_total: u64,
    /// Framed connections refused (max connections).
    pub rejected_connections_total: u64,
    /// Push subscriptions open (one per store subscribed).
    pub subscription_count: u64,
    /// Push subscriptions by store (`*`: all stores).
    pub subscriptions_by_store: BTreeMap<String, u64>,
    /// The ledger's storage stats (None for a memory ledger).
    pub storage_stats: Option<Json>,
    /// Thresholds reached.
    pub alerts: Vec<Json>,
    /// Median request latency over the last 4096 requests, in milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// 99th percentile request latency over the last 4096 requests, in milliseconds.
    pub latency_p99_ms: Option<f64>,
}

impl MetricsSnapshot {
    /// The snapshot in the Prometheus text exposition format.
    pub fn to_prometheus(&self) -> String {
        let mut o = String::new();
        let mut gauge = |name: &str, kind: &str, help: &str, v: String| {
            o.push_str(&format!(
                "# HELP igniter_ledger_{name} {help}\n# TYPE igniter_ledger_{name} {kind}\nigniter_ledger_{name} {v}\n"
            ));
        };
        gauge(
            "uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            format!("{}", self.uptime_ms as f64 / 1000.0),
        );
        gauge(
            "facts_written_total",
            "counter",
            "Facts written through the server.",
            self.facts_written.to_string(),
        );
        gauge(
            "facts_replayed_total",
            "counter",
            "Facts answered by replay.",
            self.facts_replayed.to_string(),
        );
        gauge(
            "bytes_in_total",
            "counter",
            "Request bytes received.",
            self.bytes_in.to_string(),
        );
        gauge(
            "bytes_out_total",
            "counter",
            "Response bytes sent.",
            self.bytes_out.to_string(),
        );
        gauge(
            "active_connections",
            "gauge",
            "Open framed connections.",
            self.active_connections.to_string(),
        );
        gauge(
            "accepted_connections_total",
            "counter",
            "Accepted framed connections.",
            self.accepted_connections_total.to_string(),
        );
        gauge(
            "closed_connections_total",
            "counter",
            "Closed framed connections.",
            self.closed_connections_total.to_string(),
        );
        gauge(
            "rejected_connections_total",
            "counter",
            "Refused framed connections.",
            self.rejected_connections_total.to_string(),
        );
        gauge(
            "subscriptions",
            "gauge",
            "Open push subscriptions.",
            self.subscription_count.to_string(),
        );
        gauge(
            "alerts",
            "gauge",
            "Alert thresholds reached.",
            self.alerts.len().to_string(),
        );
        o.push_str("# HELP igniter_ledger_requests_total Requests by op.\n# TYPE igniter_ledger_requests_total counter\n");
        for (op, n) in &self.requests_total {
            o.push_str(&format!(
                "igniter_ledger_requests_total{{op=\"{}\"}} {n}\n",
                escape(op)
            ));
        }
        o.push_str("# HELP igniter_ledger_errors_total Errors by class and op.\n# TYPE igniter_ledger_errors_total counter\n");
        for (k, n) in &self.errors_total {
            o.push_str(&format!(
                "igniter_ledger_errors_total{{kind=\"{}\"}} {n}\n",
                escape(k)
            ));
        }
        if let (Some(p50), Some(p99)) = (self.latency_p50_ms, self.latency_p99_ms) {
            o.push_str("# HELP igniter_ledger_request_latency_ms Request latency over the last 4096 requests.\n# TYPE igniter_ledger_request_latency_ms summary\n");
            o.push_str(&format!("igniter_ledger_request_latency_ms{{quantile=\"0.5\"}} {p50}\nigniter_ledger_request_latency_ms{{quantile=\"0.99\"}} {p99}\n"));
        }
        o
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The health snapshot (the reference's `StoreServer#health_snapshot` keys).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthSnapshot {
    /// Always 1.
    pub schema_version: u32,
    /// `ready`, `draining` or `stopped`.
    pub status: String,
    /// `memory` or `file`.
    pub backend: String,
    /// `tcp` or `unix`.
    pub transport: String,
    /// `host:port` or the socket path.
    pub bind_address: String,
    /// Milliseconds since start.
    pub uptime_ms: u64,
    /// Framed connections open.
    pub active_connections: usize,
    /// Push subscriptions open.
    pub subscriptions: usize,
    /// The last connection error, if any.
    pub last_error: Option<String>,
}
