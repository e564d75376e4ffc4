//! Entry points for fuzzing every parser of untrusted bytes (hidden; not a stable API).
//!
//! Each function takes arbitrary bytes, runs one parser of the ledger on them and checks
//! the invariants that must hold whatever the input. A parser may refuse its input (that
//! is the expected outcome for most fuzz inputs); it must never panic, hang or allocate
//! beyond a bound proportional to the input. The only panics here are failed invariant
//! checks, which are bugs. The stable-toolchain mutation fuzzer in `tests/fuzz.rs` and
//! the optional cargo-fuzz targets in `fuzz/` both drive these functions; see
//! `docs/fuzzing.md`.

use super::codec::{self, Reader};
use super::fact::{decode_record, encode_record, Interner};
use super::import::{decode_json, JsonBody};
use super::index::{State, StateInterner};
use super::recovery::{self, OpenReport};
use super::snapshot::{self, Loaded};
use super::wal::{self, ScanEnd};
use std::sync::Arc;

/// The fuzz targets, by name.
pub const TARGETS: &[&str] = &["frames", "value", "record", "snapshot", "json", "recovery"];

/// Runs the target called `name` on `data`. Returns false for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "frames" => frames(data),
        "value" => value(data),
        "record" => record(data),
        "snapshot" => snapshot(data),
        "json" => json(data),
        "recovery" => recovery(data),
        _ => return false,
    }
    true
}

struct Plain;
impl Interner for Plain {
    fn store(&mut self, s: &str) -> Arc<str> {
        Arc::from(s)
    }
    fn key(&mut self, _: &Arc<str>, k: &str) -> Arc<str> {
        Arc::from(k)
    }
}

/// Frame scanning: the frames found are contiguous, the damage classification accounts
/// for every byte, and the scan is stable under cutting at the damage.
pub fn frames(data: &[u8]) {
    for base in [0u64, 1 << 40] {
        let (frames, end) = wal::scan(data, base);
        let mut at = base;
        for f in &frames {
            assert_eq!(f.offset, at, "frames are contiguous");
            assert!(f.end > f.offset + wal::FRAME_OVERHEAD as u64);
            let (b0, b1) = f.body;
            assert_eq!(b0 as u64 + base, f.offset + 4);
            assert_eq!(b1 as u64 + base + 4, f.end);
            assert_eq!(crc32fast::hash(&data[b0..b1]), f.crc);
            at = f.end;
        }
        let total = base + data.len() as u64;
        match end {
            ScanEnd::Clean => assert_eq!(at, total, "a clean scan covers every byte"),
            ScanEnd::TornTail { offset, bytes } => {
                assert_eq!(offset, at, "a torn tail starts after the last frame");
                assert!(bytes > 0);
                assert_eq!(offset + bytes, total, "a torn tail runs to the end");
                let cut = (offset - base) as usize;
                let (again, end2) = wal::scan(&data[..cut], base);
                assert_eq!(again.len(), frames.len());
                assert!(matches!(end2, ScanEnd::Clean));
            }
            ScanEnd::Corrupt { offset, ref reason } => {
                assert_eq!(offset, at, "corruption starts after the last frame");
                assert!(offset < total);
                assert!(!reason.is_empty());
            }
        }
    }
    // Every frame body goes through the WAL body decoder.
    let (found, _) = wal::scan(data, 0);
    let mut state = State::default();
    let mut report = OpenReport::default();
    for f in found {
        let _ = recovery::decode_body(&data[f.body.0..f.body.1], &mut state, &mut report);
    }
}

/// MessagePack values: decoding agrees with validation-only skipping and with hashing,
/// and a decoded value survives re-encoding.
pub fn value(data: &[u8]) {
    let decoded = codec::decode_value(data);
    let mut r = Reader::new(data);
    let skipped = r.skip_value(1).map(|_| r.pos);
    let hashed = codec::hash_encoded(data);
    match decoded {
        Ok(v) => {
            if v.validate("value").is_ok() {
                assert_eq!(skipped, Ok(data.len()), "skip agrees with decode");
            } else {
                // Decoding does not judge; validation (and so skipping) refuses a map
                // with a key twice, as the write path does.
                assert!(skipped.is_err(), "skip refuses what writing refuses");
            }
            let e = codec::encode_value(&v);
            let back = codec::decode_value(&e.bytes).expect("re-encoded value decodes");
            assert!(same(&back, &v), "re-encoding round-trips");
            if v.validate("value").is_err() {
                assert!(hashed.is_err(), "hashing refuses what writing refuses");
                return;
            }
            assert_eq!(codec::hash_encoded(&e.bytes).as_ref(), Ok(&e.hash));
            assert_eq!(
                hashed.as_ref(),
                Ok(&e.hash),
                "the hash of stored bytes is the hash of the value they hold"
            );
        }
        Err(_) => {
            assert!(
                hashed.is_err(),
                "hash_encoded accepts only decodable values"
            );
        }
    }
}

/// NaN-aware structural equality (NaN != NaN under `==`).
fn same(a: &crate::Value, b: &crate::Value) -> bool {
    use crate::Value as V;
    match (a, b) {
        (V::Float(x), V::Float(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (V::Map(x), V::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kp, vp), (kq, vq))| kp == kq && same(vp, vq))
        }
        _ => a == b,
    }
}

/// Fact records: a record that decodes re-encodes to a record that decodes to the same
/// fact.
pub fn record(data: &[u8]) {
    let mut r = Reader::new(data);
    if let Ok(f) = decode_record(&mut r, &mut Plain) {
        assert!(r.pos <= data.len());
        // The hash derived lazily from the stored bytes is the hash of their value.
        assert_eq!(
            f.value_hash(),
            &codec::encode_value(&f.value()).hash,
            "a decoded fact's value hash is its value's hash"
        );
        let _ = (f.producer(), f.derivation(), f.valid_time(), f.causation());
        let mut out = Vec::new();
        encode_record(&mut out, &f);
        let mut r2 = Reader::new(&out);
        let g = decode_record(&mut r2, &mut Plain).expect("re-encoded record decodes");
        assert_eq!(r2.pos, out.len());
        assert_eq!(f, g, "record round trip");
    }
}

/// Snapshot files: reading never panics; a snapshot that loads holds what its header
/// promises.
pub fn snapshot(data: &[u8]) {
    if let Ok(Loaded::Native { header, facts, .. }) = snapshot::read(data, &mut Plain) {
        assert_eq!(header.fact_count, facts.len() as u64);
    }
}

/// 0.5.2 JSON bodies: decoding never panics; a decoded fact's stored value is valid.
pub fn json(data: &[u8]) {
    if let Ok(JsonBody::Fact { fact, .. }) = decode_json(data, &mut Plain) {
        let v = fact.value();
        assert!(
            v.validate("value").is_ok(),
            "imported values obey the limits"
        );
        assert_eq!(&codec::encode_value(&v).hash, fact.value_hash());
    }
    let mut state = State::default();
    let _ = decode_json(data, &mut StateInterner(&mut state));
}

/// Whole recovery (snapshot + WAL replay) from bytes. The input is split into a WAL and
/// a snapshot: a first byte `b` below 128 means "no snapshot file"; otherwise the next
/// two bytes (big-endian) give the snapshot's length, taken from the end.
pub fn recovery(data: &[u8]) {
    let (wal, snap) = split_recovery_input(data);
    let mut report = OpenReport::default();
    let recovery::Replayed { state, damage, .. } =
        recovery::replay(wal, snap.map(|s| Ok(s.to_vec())), &mut report);
    assert_eq!(report.facts_loaded, state.fact_count() as u64);
    assert_eq!(report.wal_bytes, wal.len() as u64);
    if let Some(d) = &damage {
        assert!(d.offset <= wal.len() as u64, "damage lies inside the WAL");
    }
    // Every loaded fact is reachable and readable.
    for f in &state.log {
        let _ = f.value();
        assert!(state.fact_by_id(f.id()).is_some_and(|g| g.id() == f.id()));
        assert!(state.latest(f.store(), f.key()).is_some());
    }
    for w in state.log.windows(2) {
        assert!(
            w[0].transaction_time() <= w[1].transaction_time(),
            "replayed transaction times never go backwards"
        );
    }
}

/// Splits a `recovery` input into WAL bytes and optional snapshot bytes.
pub fn split_recovery_input(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data {
        [b, hi, lo, rest @ ..] if *b >= 128 => {
            let n = (u16::from_be_bytes([*hi, *lo]) as usize).min(rest.len());
            let (w, s) = rest.split_at(rest.len() - n);
            (w, Some(s))
        }
        [_, rest @ ..] => (rest, None),
        [] => (&[], None),
    }
}

/// Builds a `recovery` input from a WAL and an optional snapshot (inverse of the split;
/// snapshots longer than 65,535 bytes are not representable).
pub fn join_recovery_input(wal: &[u8], snap: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(wal.len() + 3 + snap.map_or(0, <[u8]>::len));
    match snap {
        Some(s) => {
            let n = u16::try_from(s.len()).expect("snapshot fits in 64 KiB");
            out.push(0x80);
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(wal);
            out.extend_from_slice(s);
        }
        None => {
            out.push(0);
            out.extend_from_slice(wal);
        }
    }
    out
}

/// The encoded record of a fact (for building seed inputs).
pub fn record_bytes(f: &crate::Fact) -> Vec<u8> {
    let mut out = Vec::new();
    encode_record(&mut out, f);
    out
}

/// The bodies of the valid frames at the start of `buf` (for building seed inputs).
pub fn frame_bodies(buf: &[u8]) -> Vec<Vec<u8>> {
    wal::scan(buf, 0)
        .0
        .iter()
        .map(|f| buf[f.body.0..f.body.1].to_vec())
        .collect()
}

/// Wraps `body` in a frame (length, body, CRC).
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + wal::FRAME_OVERHEAD);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
    out
}

/// Walks `buf` as a chain of frames by their length fields and rewrites each CRC that
/// lies inside the buffer, so that mutated bodies get past the CRC check and reach the
/// decoders. Stops at the first length that runs past the end.
pub fn fix_crcs(buf: &mut [u8]) {
    let mut pos = 0usize;
    while pos + wal::FRAME_OVERHEAD <= buf.len() {
        let len = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
        let Some(end) = pos.checked_add(len + wal::FRAME_OVERHEAD) else {
            return;
        };
        if len == 0 || end > buf.len() {
            return;
        }
        let crc = crc32fast::hash(&buf[pos + 4..pos + 4 + len]);
        buf[pos + 4 + len..end].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
}
