//! Segment contents: how committed facts become frames, and how a segment's bytes
//! become facts again.
//!
//! Every segment is a sequence of the WAL's CRC32 frames (`[u32 BE length][body][u32 BE
//! CRC32(body)]`, see `crate::ledger::wal`). The bodies differ by codec:
//!
//! - `ledger_frames`: the WAL's own body, `[1, record]` or `[2, [record, ...]]` (one frame
//!   per commit);
//! - `ledger_compact_zlib`: `b'Z'` followed by the zlib stream of such a `[2, [...]]`
//!   body (one frame per flushed buffer of commits);
//! - `json_crc32` (0.5.2): a JSON object per fact, read through the WAL's JSON import.
//!
//! Records carry every field of a fact (id, store, key, value bytes, causation,
//! microsecond transaction time, valid time, schema version, producer, derivation), so
//! both of our codecs are lossless; the value hash is recomputed from the value bytes and
//! checked by the round-trip tests.

use std::io::{Read as _, Write as _};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;

use crate::ledger::codec::{self, DecodeError};
use crate::ledger::error::Result;
use crate::ledger::fact::{encode_record, Fact};
use crate::ledger::index::State;
use crate::ledger::recovery::{decode_body, OpenReport};
use crate::ledger::wal::{self, ScanEnd, MAX_BODY, TAG_BATCH, TAG_FACT};

/// First byte of a compact frame body.
pub(crate) const COMPACT_MARK: u8 = b'Z';

fn plain_body(out: &mut Vec<u8>, facts: &[Fact]) {
    codec::write_array_len(out, 2);
    if facts.len() == 1 {
        codec::write_int(out, TAG_FACT);
        encode_record(out, &facts[0]);
    } else {
        codec::write_int(out, TAG_BATCH);
        codec::write_array_len(out, facts.len());
        for f in facts {
            encode_record(out, f);
        }
    }
}

/// Appends one `ledger_frames` frame holding `facts` (one commit) to `out`.
pub(crate) fn encode_frames(out: &mut Vec<u8>, facts: &[Fact]) -> Result<()> {
    let start = wal::begin_frame(out);
    plain_body(out, facts);
    wal::end_frame(out, start)?;
    Ok(())
}

/// Appends one `ledger_compact_zlib` frame holding `facts` to `out`.
pub(crate) fn encode_compact(out: &mut Vec<u8>, facts: &[Fact]) -> Result<()> {
    let mut body = Vec::new();
    plain_body(&mut body, facts);
    let start = wal::begin_frame(out);
    out.push(COMPACT_MARK);
    let mut z = ZlibEncoder::new(std::mem::take(out), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = z.write_all(&body);
    *out = z.finish().unwrap_or_default();
    wal::end_frame(out, start)?;
    Ok(())
}

/// What reading a segment's bytes found.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// The facts, in file order.
    pub facts: Vec<Fact>,
    /// Bytes of complete, valid frames from the start.
    pub valid_len: u64,
    /// A torn final frame: (offset, bytes).
    pub torn: Option<(u64, u64)>,
    /// Damage that is not a torn tail (valid frames follow it, or a valid frame does not
    /// decode).
    pub corrupt: Option<String>,
    /// Whether the first frame was a 0.5.2 JSON body.
    pub legacy_json: bool,
    /// Whether this is a 0.5.2 `compact_delta_zlib` segment.
    pub legacy_compact: bool,
}

/// Reads a segment of any codec: ours, 0.5.2 `json_crc32` or 0.5.2
/// `compact_delta_zlib` (`seed`, the segment's path, gives the latter's facts stable ids).
pub(crate) fn decode_any(buf: &[u8], seed: &str) -> Decoded {
    if super::legacy::is_legacy_compact(buf) {
        let mut d = super::legacy::decode_legacy_compact(buf, seed);
        d.legacy_compact = true;
        return d;
    }
    decode_segment(buf)
}

fn inflate(z: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    ZlibDecoder::new(z)
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError(format!("compact frame does not inflate: {e}")))?;
    if out.len() > MAX_BODY {
        return Err(DecodeError(
            "compact frame inflates past the body limit".into(),
        ));
    }
    Ok(out)
}

/// Decodes one frame body of any of our codecs (or a 0.5.2 JSON body).
pub(crate) fn decode_frame_body(body: &[u8], state: &mut State) -> Result<Vec<Fact>, DecodeError> {
    let mut report = OpenReport::default();
    if body.first() == Some(&COMPACT_MARK) {
        let inner = inflate(&body[1..])?;
        if inner.first() == Some(&b'{') || inner.first() == Some(&COMPACT_MARK) {
            return Err(DecodeError("compact frame holds a nested body".into()));
        }
        return decode_body(&inner, state, &mut report);
    }
    decode_body(body, state, &mut report)
}

/// Reads a segment written by one of our codecs or by 0.5.2's `json_crc32`. Never
/// panics on any bytes.
pub(crate) fn decode_segment(buf: &[u8]) -> Decoded {
    let (frames, end) = wal::scan(buf, 0);
    let mut d = Decoded::default();
    let mut state = State::default();
    for f in &frames {
        let body = &buf[f.body.0..f.body.1];
        if f.offset == 0 && body.first() == Some(&b'{') {
            d.legacy_json = true;
        }
        match decode_frame_body(body, &mut state) {
            Ok(facts) => d.facts.extend(facts),
            Err(e) => {
                d.corrupt = Some(format!(
                    "frame at offset {} does not decode: {}",
                    f.offset, e.0
                ));
                return d;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::request::Write;
    use crate::ledger::value::{MapKey, Value};

    fn fact(i: i64) -> Fact {
        Fact::build(
            Write::new(
                "readings",
                format!("k{}", i % 7),
                Value::map([(MapKey::sym("n"), Value::from(i))]),
            )
            .valid_time(i as f64 / 3.0)
            .producer(Value::from("p")),
        )
        .unwrap()
    }

    #[test]
    fn both_codecs_round_trip_every_field() {
        let facts: Vec<Fact> = (0..50).map(fact).collect();
        for compact in [false, true] {
            let mut buf = Vec::new();
            for chunk in facts.chunks(7) {
                if compact {
                    encode_compact(&mut buf, chunk).unwrap();
                } else {
                    encode_frames(&mut buf, chunk).unwrap();
                }
            }
            let d = decode_segment(&buf);
            assert!(d.corrupt.is_none() && d.torn.is_none());
            assert_eq!(d.valid_len, buf.len() as u64);
            assert_eq!(d.facts.len(), facts.len());
            for (a, b) in facts.iter().zip(&d.facts) {
                assert_eq!(a.id(), b.id(), "compact={compact}");
                assert_eq!(a.store(), b.store());
                assert_eq!(a.key(), b.key());
                assert_eq!(a.value_bytes(), b.value_bytes());
                assert_eq!(a.causation(), b.causation());
                assert_eq!(a.valid_time(), b.valid_time());
                assert_eq!(a.schema_version(), b.schema_version());
                assert_eq!(a.value_hash(), b.value_hash());
                assert_eq!(a.transaction_time(), b.transaction_time());
                assert_eq!(a.producer(), b.producer());
            }
        }
    }

    #[test]
    fn a_cut_segment_is_a_torn_tail_and_garbage_is_damage() {
        let mut buf = Vec::new();
        encode_frames(&mut buf, &[fact(1)]).unwrap();
        let full = buf.len();
        encode_frames(&mut buf, &[fact(2)]).unwrap();
        buf.truncate(buf.len() - 3);
        let d = decode_segment(&buf);
        assert_eq!(d.facts.len(), 1);
        assert_eq!(d.valid_len, full as u64);
        assert!(d.torn.is_some());
        let d = decode_segment(b"CORRUPT_GARBAGE_DATA_NOT_A_VALID_FRAME");
        assert!(d.facts.is_empty());
        assert!(d.torn.is_some() || d.corrupt.is_some());
    }
}
