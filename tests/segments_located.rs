//! Values off the heap: a segmented ledger reopened from sealed segments holds its facts
//! located (id, time and key in memory; the rest read back from the segment), and every
//! read path gives back exactly what was written. A segment damaged under a running
//! ledger gives a typed error, never a panic or a wrong value; a missing or damaged
//! index is ignored (the segment is decoded) and written anew.

use std::path::Path;

use igniter_ledger::segments::{FlushPolicy, SegmentCodec, SegmentOptions, INDEX_SUFFIX};
use igniter_ledger::{
    Batch, Durability, Error, Fact, HistoryQuery, LedgerStore, MapKey, Read, Value, Write,
};
use proptest::prelude::*;

mod segment_support;
use segment_support::{copy_tree, files, same};

fn opts(codec: SegmentCodec, max_bytes: i64) -> SegmentOptions {
    SegmentOptions::new()
        .durability(Durability::Flush)
        .codec(codec)
        .flush(FlushPolicy::EveryN(4))
        .unwrap()
        .max_bytes(max_bytes)
        .unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    Write {
        store: u8,
        key: u8,
        n: i64,
        valid: Option<i32>,
        meta: bool,
    },
    Batch(Vec<(u8, u8, i64)>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..6, any::<i64>(), proptest::option::of(any::<i32>()), any::<bool>())
            .prop_map(|(store, key, n, valid, meta)| Op::Write { store, key, n, valid, meta }),
        1 => proptest::collection::vec((0u8..3, 0u8..6, any::<i64>()), 1..5).prop_map(Op::Batch),
    ]
}

fn value(n: i64) -> Value {
    Value::map([
        (MapKey::sym("n"), Value::Int(n)),
        (MapKey::sym("label"), Value::from(format!("v{}", n % 97))),
        (
            MapKey::str("tags"),
            Value::Array(vec![Value::sym("a"), Value::Nil]),
        ),
    ])
}

fn run(l: &LedgerStore, ops: &[Op]) {
    for o in ops {
        match o {
            Op::Write {
                store,
                key,
                n,
                valid,
                meta,
            } => {
                let mut w = Write::new(format!("s{store}"), format!("k{key}"), value(*n));
                if let Some(v) = valid {
                    w = w.valid_time(*v as f64 / 8.0);
                }
                if *meta {
                    w = w
                        .producer(Value::sym("api"))
                        .derivation(Value::from(*n))
                        .schema_version(3);
                }
                l.write(w).unwrap();
            }
            Op::Batch(ws) => {
                let mut b = Batch::new();
                for (s, k, n) in ws {
                    b = b.write(Write::new(format!("s{s}"), format!("k{k}"), value(*n)));
                }
                l.commit(b).unwrap();
            }
        }
    }
}

fn check_same(a: &LedgerStore, b: &LedgerStore) {
    let fa = a.fact_log_all(None, None);
    let fb = b.fact_log_all(None, None);
    assert_eq!(fa.len(), fb.len());
    for (x, y) in fa.iter().zip(&fb) {
        assert!(same(x, y), "{x:?} vs {y:?}");
        let by_id = b.fact_by_id(x.id()).expect("found by id");
        assert!(same(x, &by_id));
    }
    for s in 0..3 {
        let store = format!("s{s}");
        for k in 0..6 {
            let key = format!("k{k}");
            assert_eq!(
                a.read(Read::new(&store, &key)).unwrap(),
                b.read(Read::new(&store, &key)).unwrap()
            );
            let ha = a.history_raw(HistoryQuery::new(&store).key(&key));
            let hb = b.history_raw(HistoryQuery::new(&store).key(&key));
            assert_eq!(ha.len(), hb.len());
            for (x, y) in ha.iter().zip(&hb) {
                assert!(same(x, y));
            }
            let (ca, cb) = (
                a.causation_chain(&store, &key),
                b.causation_chain(&store, &key),
            );
            assert_eq!(format!("{ca:?}"), format!("{cb:?}"));
            if let Some(f) = fa.iter().find(|f| f.store() == store && f.key() == key) {
                let t = f.transaction_time();
                assert_eq!(
                    a.read(Read::new(&store, &key).as_of(t)).unwrap(),
                    b.read(Read::new(&store, &key).as_of(t)).unwrap()
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Reopened from sealed segments, every fact is located and reads back bit for bit
    /// through every read path, with either codec and many small segments.
    #[test]
    fn every_fact_reads_back_after_reopen_from_sealed_segments(
        ops in proptest::collection::vec(op(), 1..60),
        compact in any::<bool>(),
        max_bytes in 200i64..3000,
    ) {
        let codec = if compact { SegmentCodec::Compact } else { SegmentCodec::Frames };
        let dir = tempfile::tempdir().unwrap();
        let mem = LedgerStore::memory();
        let l = LedgerStore::open_segmented(dir.path(), opts(codec, max_bytes)).unwrap();
        run(&l, &ops);
        run(&mem, &[]);
        let written = l.fact_log_all(None, None);
        l.close().unwrap();
        drop(l);
        let l2 = LedgerStore::open_segmented(dir.path(), opts(codec, max_bytes)).unwrap();
        let back = l2.fact_log_all(None, None);
        prop_assert_eq!(back.len(), written.len());
        for (w, b) in written.iter().zip(&back) {
            prop_assert!(b.is_located(), "a fact of a sealed segment is located");
            prop_assert!(same(w, b), "{:?} vs {:?}", w, b);
            prop_assert_eq!(b.try_value().unwrap(), w.value());
            prop_assert!(same(&b.detach().unwrap(), w));
            prop_assert!(!b.detach().unwrap().is_located());
        }
        // A second reopen (the indexes already there) and a ledger over it agree. The
        // directory lock admits one handle per root, so the second opens a copy.
        let copy = tempfile::tempdir().unwrap();
        copy_tree(dir.path(), copy.path());
        let l3 = LedgerStore::open_segmented(copy.path(), opts(codec, max_bytes)).unwrap();
        check_same(&l2, &l3);
        l3.close().unwrap();
        // Writes after a reopen go on top of located facts.
        l2.write(Write::new("s0", "k0", value(7))).unwrap();
        prop_assert_eq!(l2.read(Read::new("s0", "k0")).unwrap(), Some(value(7)));
        l2.close().unwrap();
    }
}

fn written_ledger(dir: &Path, codec: SegmentCodec) -> Vec<Fact> {
    let l = LedgerStore::open_segmented(dir, opts(codec, 400)).unwrap();
    let mut out = Vec::new();
    for i in 0..40 {
        out.push(
            l.write(Write::new("s", format!("k{}", i % 5), value(i)))
                .unwrap(),
        );
    }
    l.close().unwrap();
    out
}

#[test]
fn a_segment_damaged_under_a_running_ledger_gives_a_typed_error_not_a_wrong_value() {
    for codec in [SegmentCodec::Frames, SegmentCodec::Compact] {
        let dir = tempfile::tempdir().unwrap();
        let written = written_ledger(dir.path(), codec);
        let l = LedgerStore::open_segmented(dir.path(), opts(codec, 400)).unwrap();
        let facts = l.fact_log_all(None, None);
        assert!(facts.iter().all(Fact::is_located));
        // Damage every segment in place (same size) after the open: flip the byte
        // before each frame's CRC.
        for seg in files(dir.path(), ".wal") {
            let mut b = std::fs::read(&seg).unwrap();
            for i in (0..b.len()).step_by(7) {
                b[i] ^= 0x21;
            }
            std::fs::write(&seg, &b).unwrap();
        }
        for (f, w) in facts.iter().zip(&written) {
            match f.try_value() {
                // Every byte run was changed: no frame can pass its CRC.
                Ok(v) => panic!("damaged segment gave {v:?} for {:?}", w.value()),
                Err(e) => assert!(
                    matches!(e, Error::Corruption { .. } | Error::Io { .. }),
                    "{e}"
                ),
            }
            // The infallible accessors fall back to nil, never to another fact's value.
            assert_eq!(f.value(), Value::Nil);
        }
        l.close().unwrap();
    }
}

#[test]
fn a_removed_segment_gives_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    written_ledger(dir.path(), SegmentCodec::Frames);
    let l = LedgerStore::open_segmented(dir.path(), opts(SegmentCodec::Frames, 400)).unwrap();
    let facts = l.fact_log_all(None, None);
    for seg in files(dir.path(), ".wal") {
        std::fs::remove_file(seg).unwrap();
    }
    let e = facts[0].try_value().unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    l.close().unwrap();
}

#[test]
fn a_missing_or_damaged_index_is_rebuilt_and_reads_stay_the_same() {
    for codec in [SegmentCodec::Frames, SegmentCodec::Compact] {
        let dir = tempfile::tempdir().unwrap();
        let written = written_ledger(dir.path(), codec);
        let indexes = files(dir.path(), INDEX_SUFFIX);
        assert!(
            indexes.len() > 2,
            "several sealed segments, each with an index"
        );
        std::fs::remove_file(&indexes[0]).unwrap();
        let mut b = std::fs::read(&indexes[1]).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 1;
        std::fs::write(&indexes[1], &b).unwrap();
        let l = LedgerStore::open_segmented(dir.path(), opts(codec, 400)).unwrap();
        let facts = l.fact_log_all(None, None);
        assert_eq!(facts.len(), written.len());
        for (f, w) in facts.iter().zip(&written) {
            assert!(same(f, w));
        }
        assert_eq!(
            facts.iter().filter(|f| !f.is_located()).count(),
            written.len() - facts.iter().filter(|f| f.is_located()).count()
        );
        assert!(
            facts.iter().any(|f| !f.is_located()),
            "the two segments without a valid index were decoded"
        );
        l.close().unwrap();
        // Both indexes were written anew: every fact is located at the next open.
        assert!(indexes[0].exists());
        let l = LedgerStore::open_segmented(dir.path(), opts(codec, 400)).unwrap();
        let facts = l.fact_log_all(None, None);
        assert!(facts.iter().all(Fact::is_located));
        for (f, w) in facts.iter().zip(&written) {
            assert!(same(f, w));
        }
        l.close().unwrap();
    }
}

#[test]
fn a_purged_segment_takes_its_index_with_it() {
    use igniter_ledger::retention::RetentionPolicy;
    let dir = tempfile::tempdir().unwrap();
    written_ledger(dir.path(), SegmentCodec::Frames);
    let before = files(dir.path(), INDEX_SUFFIX).len();
    let l = LedgerStore::open_segmented(
        dir.path(),
        opts(SegmentCodec::Frames, 400).retention("s", RetentionPolicy::ephemeral()),
    )
    .unwrap();
    let receipts = l.purge_segments(None).unwrap();
    assert!(!receipts.is_empty());
    let after = files(dir.path(), INDEX_SUFFIX).len();
    assert_eq!(before - after, receipts.len());
    // The latest fact of every key survived the purge (carried forward).
    for k in 0..5 {
        assert!(l.read(Read::new("s", format!("k{k}"))).unwrap().is_some());
    }
    l.close().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Hostile index bytes (random, or a valid index cut or with bytes changed) never
    /// panic the open and never change what is read: such an index is ignored and the
    /// segment decoded.
    #[test]
    fn hostile_index_bytes_never_change_what_is_read(
        junk in proptest::collection::vec(any::<u8>(), 0..400),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        use_junk in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let written = written_ledger(dir.path(), SegmentCodec::Frames);
        let idx = files(dir.path(), INDEX_SUFFIX)[0].clone();
        let mut b = std::fs::read(&idx).unwrap();
        if use_junk {
            b = junk;
        } else {
            for (i, x) in &flips {
                let at = i.index(b.len());
                b[at] ^= x;
            }
            if let Some(c) = cut {
                b.truncate(c.index(b.len()));
            }
        }
        std::fs::write(&idx, &b).unwrap();
        let l = LedgerStore::open_segmented(dir.path(), opts(SegmentCodec::Frames, 400)).unwrap();
        let facts = l.fact_log_all(None, None);
        prop_assert_eq!(facts.len(), written.len());
        for (f, w) in facts.iter().zip(&written) {
            prop_assert!(same(f, w));
        }
        l.close().unwrap();
    }
}
