//! What a segmented ledger is opened with: size and time rotation, codecs, flush policy,
//! durability and per-store retention of whole segments.

use std::collections::BTreeMap;

use crate::ledger::error::{Error, Result};
use crate::ledger::wal::Durability;
use crate::retention::{RetentionPolicy, Strategy};

/// The reference's default `max_bytes` (64 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Facts the compact codec buffers before it writes a batch under the `batch` flush
/// policy (the reference's `Codecs::CompactDelta::BATCH_SIZE`).
pub const COMPACT_BATCH_SIZE: usize = 64;

/// How segments are grouped by the transaction time of their facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeBucket {
    /// `date=YYYY-MM-DD` (UTC).
    Day,
    /// `date=YYYY-MM-DDTHH` (UTC).
    Hour,
    /// `date=flat`: one bucket.
    None,
}

impl TimeBucket {
    /// Parses `"day"`, `"hour"` or `"none"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "day" => Ok(TimeBucket::Day),
            "hour" => Ok(TimeBucket::Hour),
            "none" => Ok(TimeBucket::None),
            other => Err(Error::InvalidArgument(format!(
                "time_bucket must be day, hour or none, got {other:?}"
            ))),
        }
    }

    /// The span `[start, end)` (seconds) of the bucket holding `secs`: what a live
    /// segment compares each commit's time against, instead of formatting its name.
    pub(crate) fn span_of(self, secs: f64) -> (f64, f64) {
        let len = match self {
            TimeBucket::Day => 86_400,
            TimeBucket::Hour => 3600,
            TimeBucket::None => return (f64::NEG_INFINITY, f64::INFINITY),
        };
        let start = (secs.floor() as i64).div_euclid(len) * len;
        (start as f64, (start + len) as f64)
    }

    /// The bucket name of a transaction time (seconds since the epoch).
    pub fn name_of(self, secs: f64) -> String {
        if self == TimeBucket::None {
            return "flat".to_owned();
        }
        let s = secs.floor() as i64;
        let days = s.div_euclid(86_400);
        let hour = s.rem_euclid(86_400) / 3600;
        let (y, m, d) = civil_from_days(days);
        match self {
            TimeBucket::Day => format!("{y:04}-{m:02}-{d:02}"),
            _ => format!("{y:04}-{m:02}-{d:02}T{hour:02}"),
        }
    }
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// How new segments encode facts. Both are lossless: every field of every fact, bit for
/// bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentCodec {
    /// One CRC32 frame per commit, the WAL's own frame format (manifest name
    /// `ledger_frames`). Asked for as `frames` or by the 0.5.2 name `json_crc32`.
    Frames,
    /// Commits buffered by the flush policy, then written as one CRC32 frame holding the
    /// zlib-compressed records (manifest name `ledger_compact_zlib`). Asked for as
    /// `compact` or by the 0.5.2 name `compact_delta`.
    Compact,
}

impl SegmentCodec {
    /// Parses a codec name: `frames` / `json_crc32`, or `compact` / `compact_delta`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "frames" | "ledger_frames" | "json_crc32" => Ok(SegmentCodec::Frames),
            "compact" | "ledger_compact_zlib" | "compact_delta" | "compact_delta_zlib" => {
                Ok(SegmentCodec::Compact)
            }
            other => Err(Error::InvalidArgument(format!(
                "codec must be json_crc32 (frames) or compact_delta (compact), got {other:?}"
            ))),
        }
    }

    /// The name written to manifests.
    pub fn name(self) -> &'static str {
        match self {
            SegmentCodec::Frames => "ledger_frames",
            SegmentCodec::Compact => "ledger_compact_zlib",
        }
    }
}

/// When the compact codec writes its buffered facts (the frames codec writes every
/// commit at once, whatever the policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Every [`COMPACT_BATCH_SIZE`] facts (and on checkpoint, rotation and close).
    Batch,
    /// After every commit.
    OnWrite,
    /// Once at least N facts are buffered.
    EveryN(u32),
}

impl FlushPolicy {
    /// `batch`, `on_write` or `every_n:N` (what `durability_snapshot` reports).
    pub fn name(self) -> String {
        match self {
            FlushPolicy::Batch => "batch".into(),
            FlushPolicy::OnWrite => "on_write".into(),
            FlushPolicy::EveryN(n) => format!("every_n:{n}"),
        }
    }

    pub(crate) fn threshold(self) -> usize {
        match self {
            FlushPolicy::Batch => COMPACT_BATCH_SIZE,
            FlushPolicy::OnWrite => 1,
            FlushPolicy::EveryN(n) => n.max(1) as usize,
        }
    }
}

/// Options of a segmented ledger. `SegmentOptions::new()` gives the reference's
/// defaults: 64 MiB segments, day buckets, the frames codec, `batch` flush, and `fsync`
/// durability (each commit is on stable storage when it returns).
#[derive(Clone, Debug)]
pub struct SegmentOptions {
    pub(crate) max_bytes: u64,
    pub(crate) time_bucket: TimeBucket,
    pub(crate) codec: SegmentCodec,
    pub(crate) store_codecs: BTreeMap<String, SegmentCodec>,
    pub(crate) retention: BTreeMap<String, RetentionPolicy>,
    pub(crate) flush: FlushPolicy,
    pub(crate) durability: Durability,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentOptions {
    /// The defaults (see the type's documentation).
    pub fn new() -> Self {
        SegmentOptions {
            max_bytes: DEFAULT_MAX_BYTES,
            time_bucket: TimeBucket::Day,
            codec: SegmentCodec::Frames,
            store_codecs: BTreeMap::new(),
            retention: BTreeMap::new(),
            flush: FlushPolicy::Batch,
            durability: Durability::Fsync,
        }
    }

    /// Rotate once a segment holds at least this many bytes (must be positive).
    pub fn max_bytes(mut self, n: i64) -> Result<Self> {
        if n <= 0 {
            return Err(Error::InvalidArgument(format!(
                "max_bytes must be a positive number of bytes, got {n}"
            )));
        }
        self.max_bytes = n as u64;
        Ok(self)
    }

    /// Rotate when the time bucket of the facts changes.
    pub fn time_bucket(mut self, b: TimeBucket) -> Self {
        self.time_bucket = b;
        self
    }

    /// The codec of every store without a codec of its own.
    pub fn codec(mut self, c: SegmentCodec) -> Self {
        self.codec = c;
        self
    }

    /// The codec of one store.
    pub fn store_codec(mut self, store: impl Into<String>, c: SegmentCodec) -> Self {
        self.store_codecs.insert(store.into(), c);
        self
    }

    /// The segment retention of one store (see `SegmentedBackend::purge`).
    pub fn retention(mut self, store: impl Into<String>, p: RetentionPolicy) -> Self {
        self.retention.insert(store.into(), p);
        self
    }

    /// When the compact codec writes its buffer.
    pub fn flush(mut self, f: FlushPolicy) -> Result<Self> {
        if let FlushPolicy::EveryN(0) = f {
            return Err(Error::InvalidArgument(
                "flush every_n must be a positive number of facts".into(),
            ));
        }
        self.flush = f;
        Ok(self)
    }

    /// `fsync` (default: data written is fsynced before a commit returns), `flush` (one
    /// write(2) per commit or flushed batch: survives a process crash, not power loss) or
    /// `none` (as `flush`; segments are fsynced only when sealed).
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    pub(crate) fn codec_of(&self, store: &str) -> SegmentCodec {
        self.store_codecs.get(store).copied().unwrap_or(self.codec)
    }

    pub(crate) fn strategy_of(&self, store: &str) -> Option<RetentionPolicy> {
        self.retention
            .get(store)
            .copied()
            .filter(|p| p.strategy() != Strategy::Permanent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_name_utc_dates_and_hours() {
        // 2024-02-29T13:05:00Z
        let t = 1_709_211_900.0;
        assert_eq!(TimeBucket::Day.name_of(t), "2024-02-29");
        assert_eq!(TimeBucket::Hour.name_of(t), "2024-02-29T13");
        assert_eq!(TimeBucket::None.name_of(t), "flat");
        assert_eq!(TimeBucket::Day.name_of(0.0), "1970-01-01");
        assert_eq!(TimeBucket::Day.name_of(-1.0), "1969-12-31");
        let (a, b) = TimeBucket::Hour.span_of(t);
        assert_eq!(TimeBucket::Hour.name_of(a), "2024-02-29T13");
        assert_eq!(TimeBucket::Hour.name_of(b - 0.5), "2024-02-29T13");
        assert_eq!(TimeBucket::Hour.name_of(b), "2024-02-29T14");
        assert_eq!(TimeBucket::Day.span_of(-1.0), (-86_400.0, 0.0));
    }

    #[test]
    fn bad_arguments_name_themselves() {
        let e = SegmentOptions::new().max_bytes(0).unwrap_err().to_string();
        assert!(e.contains("max_bytes"), "{e}");
        let e = TimeBucket::parse("week").unwrap_err().to_string();
        assert!(e.contains("time_bucket"), "{e}");
        let e = SegmentCodec::parse("lz4").unwrap_err().to_string();
        assert!(e.contains("codec"), "{e}");
    }
}
