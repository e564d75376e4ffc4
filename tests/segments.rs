//! Segmented storage: rotation, sealing, reopen, quarantine, purge, lossless round trips,
//! the commit journal of multi-store batches, a failing seal, and the parsers on hostile
//! bytes.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use igniter_ledger::retention::RetentionPolicy;
use igniter_ledger::segments::{
    FlushPolicy, SegmentCodec, SegmentOptions, SegmentedBackend, TimeBucket, JOURNAL_FILE,
    MANIFEST_SUFFIX, QUARANTINE_SUFFIX,
};
use igniter_ledger::{
    Append, Batch, Durability, FileSystem, LedgerStore, MapKey, OsFileSystem, Read, Value, Write,
    WrittenFile,
};
use proptest::prelude::*;

mod segment_support;
use segment_support::{files, same};

fn v(n: i64) -> Value {
    Value::map([
        (MapKey::sym("n"), Value::Int(n)),
        (MapKey::sym("unit"), Value::from("celsius")),
    ])
}

fn opts() -> SegmentOptions {
    SegmentOptions::new().durability(Durability::Flush)
}

#[test]
fn a_segmented_ledger_reopens_with_every_field_of_every_fact() {
    for codec in [SegmentCodec::Frames, SegmentCodec::Compact] {
        let dir = tempfile::tempdir().unwrap();
        let o = opts().codec(codec).max_bytes(600).unwrap();
        let l = LedgerStore::open_segmented(dir.path(), o.clone()).unwrap();
        let mut written = Vec::new();
        for i in 0..40 {
            written.push(
                l.write(
                    Write::new("readings", format!("k{}", i % 5), v(i))
                        .valid_time(i as f64)
                        .producer(Value::from("sensor")),
                )
                .unwrap(),
            );
        }
        written.push(
            l.append(Append::new("events", v(99)).partition_key("n"))
                .unwrap(),
        );
        l.close().unwrap();
        assert!(
            files(dir.path(), MANIFEST_SUFFIX).len() > 1,
            "rotated by size"
        );
        let l2 = LedgerStore::open_segmented(dir.path(), o).unwrap();
        let all = l2.fact_log_all(None, None);
        assert_eq!(all.len(), written.len(), "{codec:?}");
        for (a, b) in written.iter().zip(&all) {
            assert!(same(a, b), "{codec:?}");
            assert_eq!(a.causation(), b.causation());
            assert_eq!(a.value_hash(), b.value_hash());
        }
        assert_eq!(
            l2.read(Read::new("readings", "k4")).unwrap(),
            Some(v(39)),
            "{codec:?}"
        );
        l2.close().unwrap();
    }
}

#[test]
fn the_compact_codec_is_smaller_than_the_frames_codec() {
    let mut sizes = Vec::new();
    for codec in [SegmentCodec::Frames, SegmentCodec::Compact] {
        let dir = tempfile::tempdir().unwrap();
        let l = LedgerStore::open_segmented(dir.path(), opts().codec(codec)).unwrap();
        for i in 0..1000 {
            l.write(Write::new("readings", format!("tech_{}", i % 10), v(i % 3)))
                .unwrap();
        }
        l.close().unwrap();
        sizes.push(
            files(dir.path(), ".wal")
                .iter()
                .map(|p| std::fs::metadata(p).unwrap().len())
                .sum::<u64>(),
        );
    }
    assert!(
        sizes[1] * 2 < sizes[0],
        "compact {} vs frames {}",
        sizes[1],
        sizes[0]
    );
}

#[test]
fn a_segment_that_disagrees_with_its_manifest_is_quarantined_and_the_rest_opens() {
    let dir = tempfile::tempdir().unwrap();
    let l = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    l.write(Write::new("a", "k", v(1))).unwrap();
    l.write(Write::new("b", "k", v(2))).unwrap();
    l.close().unwrap();
    let seg_a = files(&dir.path().join("wal/store=a"), ".wal")[0].clone();
    // Same length, one byte flipped: only the blake3 (and the CRC) can tell.
    let mut bytes = std::fs::read(&seg_a).unwrap();
    let last = bytes.len() - 6;
    bytes[last] ^= 0x55;
    std::fs::write(&seg_a, &bytes).unwrap();
    let l2 = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    assert_eq!(l2.read(Read::new("a", "k")).unwrap(), None);
    assert_eq!(l2.read(Read::new("b", "k")).unwrap(), Some(v(2)));
    let stats = l2.storage_stats(Some("a")).unwrap();
    assert_eq!(stats["stores"]["a"]["quarantine_receipt_count"], 1);
    assert!(Path::new(&format!("{}{QUARANTINE_SUFFIX}", seg_a.display())).exists());
    l2.close().unwrap();
}

#[test]
fn an_edited_time_range_is_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let l = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    l.write(Write::new("a", "k", v(1))).unwrap();
    l.close().unwrap();
    let m = files(dir.path(), MANIFEST_SUFFIX)[0].clone();
    let mut j: serde_json::Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    j["max_timestamp"] = serde_json::json!(1.0);
    std::fs::write(&m, serde_json::to_vec(&j).unwrap()).unwrap();
    let l2 = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    assert_eq!(l2.read(Read::new("a", "k")).unwrap(), Some(v(1)));
    l2.close().unwrap();
}

#[test]
fn a_torn_live_segment_is_cut_and_its_tail_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = SegmentedBackend::open(dir.path(), opts()).unwrap();
    let l = LedgerStore::memory();
    let f1 = l.write(Write::new("a", "k1", v(1))).unwrap();
    let f2 = l.write(Write::new("a", "k2", v(2))).unwrap();
    b.append(std::slice::from_ref(&f1)).unwrap();
    b.append(&[f2]).unwrap();
    b.abandon("a"); // crash: nothing sealed
    let seg = files(dir.path(), ".wal")[0].clone();
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 3).unwrap();
    let mut b2 = SegmentedBackend::open(dir.path(), opts()).unwrap();
    assert_eq!(b2.open_report().torn_tails.len(), 1);
    let facts = b2.replay(None, None, None).unwrap();
    assert_eq!(facts.len(), 1);
    assert!(same(&facts[0], &f1));
    assert_eq!(
        files(dir.path(), "")
            .iter()
            .filter(|p| p.to_string_lossy().contains(".torn-"))
            .count(),
        1
    );
    b2.close().unwrap();
}

#[test]
fn purge_by_segment_keeps_the_latest_fact_of_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts().retention("r", RetentionPolicy::ephemeral());
    let l = LedgerStore::open_segmented(dir.path(), o.clone()).unwrap();
    l.write(Write::new("r", "old", v(1))).unwrap();
    l.write(Write::new("r", "k", v(1))).unwrap();
    l.seal_segments().unwrap();
    l.write(Write::new("r", "k", v(2))).unwrap();
    l.seal_segments().unwrap();
    l.write(Write::new("r", "k", v(3))).unwrap();
    let receipts = l.purge_segments(None).unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0]["carried_forward"], 1, "{receipts:?}");
    let act = l.compaction_activity(Some("r"));
    assert_eq!(act.len(), 1);
    assert_eq!(act[0].kind.name(), "segment_purge");
    l.close().unwrap();
    let l2 = LedgerStore::open_segmented(dir.path(), o).unwrap();
    assert_eq!(
        l2.read(Read::new("r", "old")).unwrap(),
        Some(v(1)),
        "latest of its key"
    );
    assert_eq!(l2.read(Read::new("r", "k")).unwrap(), Some(v(3)));
    assert_eq!(
        l2.fact_log_all(None, None).len(),
        3,
        "k's first version is gone"
    );
    l2.close().unwrap();
}

#[test]
fn an_interrupted_multi_store_batch_is_completed_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let mem = LedgerStore::memory();
    let facts = mem
        .commit(
            Batch::new()
                .write(Write::new("a", "k", v(1)))
                .write(Write::new("b", "k", v(2))),
        )
        .unwrap();
    // The batch reached the journal and store a, then the process died.
    let mut b = SegmentedBackend::open(dir.path(), opts()).unwrap();
    b.append(&facts).unwrap();
    b.abandon("a");
    b.abandon("b");
    let journal = dir.path().join(JOURNAL_FILE);
    assert!(!journal.exists() || std::fs::metadata(&journal).unwrap().len() == 0);
    // Rebuild that moment: journal holds the batch, store b's segment lost it.
    let mut frame = Vec::new();
    let scratch = tempfile::tempdir().unwrap();
    {
        let mut s = SegmentedBackend::open(scratch.path(), opts()).unwrap();
        s.append(&facts).unwrap();
        s.abandon("a");
        s.abandon("b");
        // The journal is emptied after a complete batch; re-create it by appending the
        // batch's frames to a fresh file through a single-store segment of the scratch.
    }
    for p in files(&scratch.path().join("wal/store=a"), ".wal") {
        frame.extend(std::fs::read(p).unwrap());
    }
    for p in files(&scratch.path().join("wal/store=b"), ".wal") {
        frame.extend(std::fs::read(p).unwrap());
    }
    std::fs::write(&journal, &frame).unwrap();
    for p in files(&dir.path().join("wal/store=b"), ".wal") {
        std::fs::write(p, b"").unwrap();
    }
    let l = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    assert_eq!(l.read(Read::new("a", "k")).unwrap(), Some(v(1)));
    assert_eq!(
        l.read(Read::new("b", "k")).unwrap(),
        Some(v(2)),
        "completed from the journal"
    );
    assert_eq!(l.fact_log_all(None, None).len(), 2, "nothing doubled");
    l.close().unwrap();
    assert!(!journal.exists(), "a clean close leaves no journal");
}

/// A file system whose manifest writes fail (a full disk while sealing).
struct FullDisk(AtomicBool);
impl FileSystem for FullDisk {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn WrittenFile>> {
        if self.0.load(Ordering::SeqCst) && path.to_string_lossy().contains(MANIFEST_SUFFIX) {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        OsFileSystem.create(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        OsFileSystem.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        OsFileSystem.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        OsFileSystem.sync_dir(dir)
    }
}

#[test]
fn enospc_while_sealing_leaves_a_usable_store_and_no_half_sealed_segment() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FullDisk(AtomicBool::new(true)));
    let mut b = SegmentedBackend::open_with_fs(dir.path(), opts(), fs.clone()).unwrap();
    let mem = LedgerStore::memory();
    let f1 = mem.write(Write::new("a", "k", v(1))).unwrap();
    let f2 = mem.write(Write::new("a", "k", v(2))).unwrap();
    b.append(&[f1]).unwrap();
    assert!(b.checkpoint().is_err());
    assert!(files(dir.path(), MANIFEST_SUFFIX).is_empty());
    assert!(files(dir.path(), ".tmp").is_empty());
    b.append(&[f2]).unwrap(); // still live and appendable
    fs.0.store(false, Ordering::SeqCst);
    b.close().unwrap();
    let mut b2 = SegmentedBackend::open(dir.path(), opts()).unwrap();
    assert_eq!(b2.replay(None, None, None).unwrap().len(), 2);
    b2.close().unwrap();
}

#[test]
fn bad_options_name_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let e = SegmentedBackend::open(&file, opts())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("root"), "{e}");
    assert!(SegmentOptions::new().max_bytes(-1).is_err());
    assert!(SegmentOptions::new().flush(FlushPolicy::EveryN(0)).is_err());
    assert!(TimeBucket::parse("minute").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary bytes in a segment or its manifest never panic the open: the segment is
    /// read, cut or quarantined.
    #[test]
    fn hostile_segment_and_manifest_bytes_never_panic(
        seg in proptest::collection::vec(any::<u8>(), 0..300),
        manifest in proptest::collection::vec(any::<u8>(), 0..200),
        sealed in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal/store=s/date=flat");
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("segment-000001.wal");
        std::fs::write(&p, &seg).unwrap();
        if sealed {
            std::fs::write(format!("{}{MANIFEST_SUFFIX}", p.display()), &manifest).unwrap();
        }
        if let Ok(mut b) = SegmentedBackend::open(dir.path(), opts()) {
            let _ = b.replay(None, None, None);
            let _ = b.storage_stats(None);
            let _ = b.close();
        }
    }
}

fn frame(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
}

/// A segment as the 0.5.2 gem's compact_delta_zlib codec wrote it.
fn legacy_compact_segment() -> Vec<u8> {
    use rmpv::Value as M;
    let mut out = Vec::new();
    let header = M::Map(vec![
        (M::from("store"), M::from("gps")),
        (
            M::from("fields"),
            M::Array(vec![M::from("lat"), M::from("on")]),
        ),
        (M::from("valid_time"), M::Nil),
        (M::from("schema_version"), M::from(1)),
    ]);
    let mut b = Vec::new();
    rmpv::encode::write_value(&mut b, &header).unwrap();
    frame(&mut out, &b);
    for (batch, (km, entries)) in [
        (
            vec![(M::from("0"), M::from("t1")), (M::from("1"), M::from("t2"))],
            vec![
                M::Array(vec![
                    M::from(0),
                    M::from(1_714_200_000_000i64),
                    M::Array(vec![M::from(34.5), M::from(true)]),
                ]),
                M::Array(vec![
                    M::from(1),
                    M::from(250),
                    M::Array(vec![M::from(35.0), M::Nil]),
                ]),
            ],
        ),
        (
            vec![],
            vec![M::Array(vec![
                M::from(0),
                M::from(-50),
                M::Array(vec![M::from(36.0), M::from(false)]),
            ])],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let raw = M::Map(vec![
            (M::from("km"), M::Map(km)),
            (M::from("e"), M::Array(entries)),
        ]);
        let mut r = Vec::new();
        rmpv::encode::write_value(&mut r, &raw).unwrap();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &r).unwrap();
        let mut body = ((2 - batch) as u32).to_be_bytes().to_vec();
        body.extend(z.finish().unwrap());
        frame(&mut out, &body);
    }
    out
}

#[test]
fn segments_written_by_the_0_5_2_gem_open_and_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("wal/store=gps/date=2024-04-27");
    std::fs::create_dir_all(&d).unwrap();
    let seg = legacy_compact_segment();
    std::fs::write(d.join("segment-000001.wal"), &seg).unwrap();
    let manifest = serde_json::json!({
        "segment_id": "gps/2024-04-27/000001", "store": "gps", "codec": "compact_delta_zlib",
        "fact_count": 3, "byte_size": seg.len(), "min_timestamp": 1_714_200_000.0,
        "max_timestamp": 1_714_200_000.25, "sealed": true, "sealed_at": 1_714_200_001.0,
    });
    std::fs::write(
        d.join(format!("segment-000001.wal{MANIFEST_SUFFIX}")),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    // An unsealed 0.5.2 compact segment (a crash) and a json_crc32 one of another store.
    std::fs::write(d.join("segment-000002.wal"), &seg).unwrap();
    let j = dir.path().join("wal/store=crm/date=2024-04-27");
    std::fs::create_dir_all(&j).unwrap();
    let mut js = Vec::new();
    frame(
        &mut js,
        br#"{"id":"5f0c1f7e-5b7e-4b39-9a0f-0d5d2c1e7a11","store":"crm","key":"job_1","value":{"status":"scheduled"},"value_hash":"x","causation":null,"transaction_time":1714200000.5,"valid_time":null,"schema_version":1}"#,
    );
    std::fs::write(j.join("segment-000001.wal"), &js).unwrap();

    let l = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    let gps = l
        .history(igniter_ledger::HistoryQuery::new("gps").key("t1"))
        .unwrap();
    assert_eq!(gps.len(), 4, "two of t1 from each of the two segments");
    let first = &gps[0].fact;
    assert_eq!(first.transaction_time().as_micros(), 1_714_200_000_000_000);
    assert_eq!(
        first.value(),
        Value::map([
            (MapKey::sym("lat"), Value::Float(34.5)),
            (MapKey::sym("on"), Value::Bool(true))
        ])
    );
    assert_eq!(
        l.read(Read::new("gps", "t2"))
            .unwrap()
            .unwrap()
            .get_sym("on"),
        Some(&Value::Nil)
    );
    assert_eq!(
        l.read(Read::new("crm", "job_1"))
            .unwrap()
            .unwrap()
            .get_sym("status"),
        Some(&Value::from("scheduled"))
    );
    let stats = l.storage_stats(None).unwrap();
    assert_eq!(stats["stores"]["gps"]["quarantine_receipt_count"], 0);
    assert_eq!(
        stats["stores"]["gps"]["codecs"],
        serde_json::json!(["compact_delta_zlib"])
    );
    assert_eq!(
        stats["stores"]["crm"]["codecs"],
        serde_json::json!(["json_crc32"])
    );
    // Ids are stable across opens.
    let ids: Vec<_> = gps.iter().map(|f| f.fact.id()).collect();
    l.close().unwrap();
    let l2 = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    let again: Vec<_> = l2
        .history(igniter_ledger::HistoryQuery::new("gps").key("t1"))
        .unwrap()
        .iter()
        .map(|f| f.fact.id())
        .collect();
    assert_eq!(ids, again);
    l2.close().unwrap();
}

#[test]
fn a_dropped_handle_loses_no_buffered_fact() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts().codec(SegmentCodec::Compact);
    {
        let l = LedgerStore::open_segmented(dir.path(), o.clone()).unwrap();
        for i in 0..5 {
            l.write(Write::new("r", format!("k{i}"), v(i))).unwrap();
        }
        // dropped without close
    }
    let l = LedgerStore::open_segmented(dir.path(), o).unwrap();
    assert_eq!(l.fact_log_all(None, None).len(), 5);
    l.close().unwrap();
}

#[test]
fn a_commit_in_a_new_time_bucket_rotates_into_that_buckets_directory() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts().time_bucket(TimeBucket::Hour);
    let l = LedgerStore::open_segmented(dir.path(), o.clone()).unwrap();
    let at = |secs: f64, key: &str| {
        let mut p = LedgerStore::memory()
            .write(Write::new("r", key, v(1)))
            .unwrap()
            .to_parts();
        p.transaction_time = igniter_ledger::Timestamp::from_secs_f64(secs);
        Write::restoring(p)
    };
    // 2024-02-29T13:59:59 and 14:00:00 UTC.
    l.write(at(1_709_215_199.0, "a")).unwrap();
    l.write(at(1_709_215_200.0, "b")).unwrap();
    l.close().unwrap();
    let segs = files(dir.path(), ".wal");
    let dirs: Vec<String> = segs
        .iter()
        .map(|p| {
            p.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(dirs, ["date=2024-02-29T13", "date=2024-02-29T14"]);
    assert_eq!(files(dir.path(), MANIFEST_SUFFIX).len(), 2);
    let l2 = LedgerStore::open_segmented(dir.path(), o).unwrap();
    assert_eq!(l2.fact_log_all(None, None).len(), 2);
    l2.close().unwrap();
}

/// A batch over several stores that fails once its journal is written (here store b's
/// directory cannot be made) is reported as `Poisoned`: the writer is told the next open
/// completes it, later writes are refused, nothing is published meanwhile, and the reopen
/// holds the whole batch exactly once.
#[test]
fn a_multi_store_batch_failing_after_its_journal_poisons_and_the_reopen_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let l = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    l.write(Write::new("a", "k", v(0))).unwrap();
    let blocker = dir.path().join("wal").join("store=b");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let e = l
        .commit(
            Batch::new()
                .write(Write::new("a", "k", v(1)))
                .write(Write::new("b", "k", v(2))),
        )
        .unwrap_err();
    assert!(
        matches!(&e, igniter_ledger::Error::Poisoned(m) if m.contains("journal")),
        "{e:?}"
    );
    assert_eq!(
        l.read(Read::new("a", "k")).unwrap(),
        Some(v(0)),
        "not published"
    );
    assert_eq!(l.read(Read::new("b", "k")).unwrap(), None);
    let later = l.write(Write::new("a", "k", v(3))).unwrap_err();
    assert!(
        matches!(later, igniter_ledger::Error::Poisoned(_)),
        "{later:?}"
    );
    let _ = l.close();
    drop(l);
    std::fs::remove_file(&blocker).unwrap();
    let l = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    assert_eq!(l.read(Read::new("a", "k")).unwrap(), Some(v(1)));
    assert_eq!(
        l.read(Read::new("b", "k")).unwrap(),
        Some(v(2)),
        "completed from the journal"
    );
    assert_eq!(
        l.fact_log_all(None, None).len(),
        3,
        "nothing doubled, v(3) never landed"
    );
    l.close().unwrap();
}
