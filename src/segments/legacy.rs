//! Reading the 0.5.2 gem's `compact_delta_zlib` segments.
//!
//! Layout (every frame in the WAL's CRC32 framing): a header frame holding the MessagePack
//! map `{"store", "fields" => [field names], "valid_time", "schema_version"}`, then batch
//! frames whose body is `[u32 BE count]` followed by the zlib stream of the MessagePack
//! map `{"km" => {"<index>" => key (keys new in this batch)}, "e" => [[key index, Δms
//! (the first absolute), [values in field order]], ...]}`.
//!
//! That codec was lossy: it kept no id, causation or producer, and times only to the
//! millisecond. A fact read here gets a stable name-based id (from the segment's path
//! and its position: the same on every open), no causation, the header's valid time
//! and schema version, and its value as a map of Symbol field names.

use std::io::Read as _;

use flate2::read::ZlibDecoder;

use crate::ledger::codec::decode_value;
use crate::ledger::fact::{Fact, FactParts};
use crate::ledger::time::Timestamp;
use crate::ledger::value::{MapKey, Value};
use crate::ledger::wal::{self, ScanEnd, MAX_BODY};

use super::codec::Decoded;

fn field<'a>(m: &'a Value, name: &str) -> Option<&'a Value> {
    match m {
        Value::Map(pairs) => pairs.iter().find_map(|(k, v)| match k {
            MapKey::Str(s) | MapKey::Sym(s) if s == name => Some(v),
            _ => None,
        }),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) | Value::Sym(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Whether a segment's first frame is a `compact_delta_zlib` header.
pub(crate) fn is_legacy_compact(buf: &[u8]) -> bool {
    let Some(f) = wal::frame_at(buf, 0, 0) else {
        return false;
    };
    let body = &buf[f.body.0..f.body.1];
    // A MessagePack map (our bodies are arrays; 0.5.2 JSON bodies start with '{').
    matches!(body.first(), Some(0x80..=0x8f | 0xde | 0xdf))
        && decode_value(body).is_ok_and(|h| field(&h, "fields").is_some())
}

/// Reads a `compact_delta_zlib` segment. `seed` (the segment's path) makes the ids
/// stable. Never panics on any bytes.
pub(crate) fn decode_legacy_compact(buf: &[u8], seed: &str) -> Decoded {
    let (frames, end) = wal::scan(buf, 0);
    let mut d = Decoded::default();
    let fail = |d: &mut Decoded, off: u64, why: String| {
        d.corrupt = Some(format!("compact_delta_zlib frame at offset {off}: {why}"));
    };
    let Some(first) = frames.first() else {
        if let ScanEnd::TornTail { offset, bytes } = end {
            d.torn = Some((offset, bytes));
        }
        return d;
    };
    let header = match decode_value(&buf[first.body.0..first.body.1]) {
        Ok(h) => h,
        Err(e) => {
            fail(&mut d, 0, format!("header: {}", e.0));
            return d;
        }
    };
    let store = field(&header, "store").and_then(text).unwrap_or_default();
    let fields: Vec<String> = match field(&header, "fields") {
        Some(Value::Array(a)) => a.iter().filter_map(text).collect(),
        _ => Vec::new(),
    };
    let valid_time = field(&header, "valid_time")
        .or_else(|| field(&header, "term"))
        .and_then(as_f64);
    let schema_version = field(&header, "schema_version")
        .and_then(as_f64)
        .map_or(1, |v| v as u32);
    d.valid_len = first.end;
    let mut keys: std::collections::HashMap<i64, String> = std::collections::HashMap::new();
    let mut last_ms: Option<i64> = None;
    let mut n = 0u64;
    for f in &frames[1..] {
        let body = &buf[f.body.0..f.body.1];
        if body.len() < 4 {
            fail(&mut d, f.offset, "batch body shorter than its count".into());
            return d;
        }
        let mut raw = Vec::new();
        if let Err(e) = ZlibDecoder::new(&body[4..])
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut raw)
        {
            fail(&mut d, f.offset, format!("does not inflate: {e}"));
            return d;
        }
        let batch = match decode_value(&raw) {
            Ok(b) => b,
            Err(e) => {
                fail(&mut d, f.offset, e.0);
                return d;
            }
        };
        if let Some(Value::Map(km)) = field(&batch, "km") {
            for (k, v) in km {
                let idx = match k {
                    MapKey::Str(s) | MapKey::Sym(s) => s.parse().ok(),
                    MapKey::Int(i) => Some(*i),
                };
                if let (Some(i), Some(key)) = (idx, text(v)) {
                    keys.insert(i, key);
                }
            }
        }
        let Some(Value::Array(entries)) = field(&batch, "e") else {
            continue;
        };
        for e in entries {
            let Value::Array(parts) = e else {
                fail(&mut d, f.offset, "entry is not an array".into());
                return d;
            };
            let (Some(Value::Int(ki)), Some(Value::Int(dms)), Some(Value::Array(vals))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                fail(
                    &mut d,
                    f.offset,
                    "entry is not [key index, delta ms, values]".into(),
                );
                return d;
            };
            let ms = match last_ms {
                Some(l) => l.saturating_add(*dms),
                None => *dms,
            };
            last_ms = Some(ms);
            let Some(key) = keys.get(ki).cloned() else {
                fail(
                    &mut d,
                    f.offset,
                    format!("key index {ki} is not in the key map"),
                );
                return d;
            };
            let value = Value::Map(
                fields
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        (
                            MapKey::sym(name.as_str()),
                            vals.get(i).cloned().unwrap_or(Value::Nil),
                        )
                    })
                    .collect(),
            );
            let parts = FactParts {
                id: Fact::id_from_str(&format!("{seed}#{n}")),
                store: store.clone(),
                key,
                value,
                causation: None,
                transaction_time: Timestamp::from_micros(ms.saturating_mul(1000)),
                valid_time,
                schema_version,
                producer: None,
                derivation: None,
            };
            match Fact::restore(parts) {
                Ok(fact) => d.facts.push(fact),
                Err(e) => {
                    fail(&mut d, f.offset, e.to_string());
                    return d;
                }
            }
            n += 1;
        }
        d.valid_len = f.end;
    }
    match end {
        ScanEnd::Clean => {}
        ScanEnd::TornTail { offset, bytes } => d.torn = Some((offset, bytes)),
        ScanEnd::Corrupt { reason, .. } => d.corrupt = Some(reason),
    }
    d
}
