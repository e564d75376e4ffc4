//! Structured server events: what happened, at which level, with which fields.
//!
//! The server reports every lifecycle step (`server_start`, `connection_open`,
//! `connection_close`, `request`, `request_error`, `subscription_open`,
//! `subscription_close`, `alert`, `server_drain`, `server_stop`, ...) to an
//! [`EventSink`]. The binary logs them as JSON lines; the Ruby gem forwards them to its
//! `ServerLogger` (`[EVENT] {json}` lines).

use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value as Json};

/// An event's severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Per-request detail.
    Debug,
    /// Lifecycle.
    Info,
    /// Something a client did wrong, or a limit was hit.
    Warn,
    /// Something failed on the server's side.
    Error,
}

impl Level {
    /// `debug`, `info`, `warn` or `error`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// Parses a level name.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" => Level::Error,
            _ => return None,
        })
    }
}

/// One server event.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerEvent {
    /// What happened (`connection_open`, ...).
    pub name: &'static str,
    /// How much it matters.
    pub level: Level,
    /// When (seconds since the Unix epoch).
    pub at: f64,
    /// Its fields.
    pub fields: Map<String, Json>,
}

impl ServerEvent {
    /// An event without fields, now.
    pub fn new(name: &'static str, level: Level) -> Self {
        ServerEvent {
            name,
            level,
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            fields: Map::new(),
        }
    }

    /// The event with one more field.
    pub fn with(mut self, key: &str, value: impl Into<Json>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// `{event, type, level, ts, ...fields}` (`ts` in ISO 8601 UTC).
    pub fn to_json(&self) -> Json {
        let mut m = Map::new();
        m.insert("event".into(), self.name.into());
        m.insert("type".into(), self.name.into());
        m.insert("level".into(), self.level.name().into());
        m.insert("ts".into(), iso8601(self.at).into());
        for (k, v) in &self.fields {
            m.insert(k.clone(), v.clone());
        }
        Json::Object(m)
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso8601(secs: f64) -> String {
    let ms = (secs * 1000.0).max(0.0) as i64;
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Receives the server's events. Called from the server's threads; keep it quick.
pub trait EventSink: Send + Sync + 'static {
    /// One event.
    fn event(&self, e: &ServerEvent);
}

/// Drops every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl EventSink for NullSink {
    fn event(&self, _e: &ServerEvent) {}
}

/// Writes events at or above a level as JSON lines (one object per line).
#[derive(Debug)]
pub struct JsonLinesSink<W: Write + Send + 'static> {
    out: Mutex<W>,
    level: Level,
}

impl<W: Write + Send + 'static> JsonLinesSink<W> {
    /// Events at `level` and above go to `out`.
    pub fn new(out: W, level: Level) -> Self {
        JsonLinesSink {
            out: Mutex::new(out),
            level,
        }
    }
}

impl<W: Write + Send + 'static> EventSink for JsonLinesSink<W> {
    fn event(&self, e: &ServerEvent) {
        if e.level < self.level {
            return;
        }
        if let Ok(mut o) = self.out.lock() {
            let _ = writeln!(o, "{}", e.to_json());
            let _ = o.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_709_251_199.5), "2024-02-29T23:59:59.500Z");
    }
}
