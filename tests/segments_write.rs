//! The write path of a segmented ledger: what each durability mode leaves in the file
//! and in memory, the `none` mode's buffer (written when full, read, sealed, dropped or
//! closed; lost on a crash, like the WAL's), and the content hash fed in chunks.

use std::path::Path;

use igniter_ledger::segments::{SegmentOptions, SegmentedBackend, MANIFEST_SUFFIX};
use igniter_ledger::{Batch, Durability, LedgerStore, MapKey, Value, Write};

mod segment_support;
use segment_support::files;

fn v(n: i64) -> Value {
    Value::map([
        (MapKey::sym("n"), Value::Int(n)),
        (MapKey::sym("unit"), Value::from("celsius")),
    ])
}

fn opts(d: Durability) -> SegmentOptions {
    SegmentOptions::new().durability(d)
}

/// Bytes in the segment files of `store` (sealed or live), not counting zeros after the
/// last frame (preallocated space in `fsync` mode).
fn segment_bytes(root: &Path, store: &str) -> u64 {
    files(&root.join("wal").join(format!("store={store}")), ".wal")
        .iter()
        .map(|p| {
            let b = std::fs::read(p).unwrap();
            (b.len() - b.iter().rev().take_while(|&&x| x == 0).count()) as u64
        })
        .sum()
}

/// File sizes of the segment files of `store`.
fn file_sizes(root: &Path, store: &str) -> Vec<u64> {
    files(&root.join("wal").join(format!("store={store}")), ".wal")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect()
}

fn facts(n: usize, store: &str) -> Vec<igniter_ledger::Fact> {
    let mem = LedgerStore::memory();
    (0..n)
        .map(|i| {
            mem.write(Write::new(store, format!("k{}", i % 7), v(i as i64)))
                .unwrap()
        })
        .collect()
}

#[test]
fn flush_and_fsync_commits_are_in_the_file_when_they_return() {
    for d in [Durability::Flush, Durability::Fsync] {
        let dir = tempfile::tempdir().unwrap();
        let mut b = SegmentedBackend::open(dir.path(), opts(d)).unwrap();
        let fs = facts(3, "a");
        let mut last = 0;
        for f in &fs {
            b.append(std::slice::from_ref(f)).unwrap();
            let now = segment_bytes(dir.path(), "a");
            assert!(now > last, "{d:?}: each commit is written at once");
            last = now;
        }
        let snap = b.durability_snapshot();
        assert_eq!(snap["stores"]["a"]["buffered_count"], 0);
        assert_eq!(snap["stores"]["a"]["facts_on_disk"], 3);
        b.close().unwrap();
    }
}

#[test]
fn none_mode_commits_wait_in_memory_until_read_sealed_or_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = SegmentedBackend::open(dir.path(), opts(Durability::None)).unwrap();
    let fs = facts(5, "a");
    for f in &fs[..3] {
        b.append(std::slice::from_ref(f)).unwrap();
    }
    assert_eq!(segment_bytes(dir.path(), "a"), 0, "nothing written yet");
    let snap = b.durability_snapshot();
    assert_eq!(snap["stores"]["a"]["buffered_count"], 3);
    assert_eq!(snap["stores"]["a"]["facts_on_disk"], 0);
    assert_eq!(snap["stores"]["a"]["durability"], "buffered");
    assert_eq!(b.storage_stats(None)["stores"]["a"]["fact_count"], 3);
    // Reading the live segment writes it out first.
    assert_eq!(b.replay(None, None, None).unwrap().len(), 3);
    assert!(segment_bytes(dir.path(), "a") > 0);
    assert_eq!(b.durability_snapshot()["stores"]["a"]["buffered_count"], 0);
    for f in &fs[3..] {
        b.append(std::slice::from_ref(f)).unwrap();
    }
    b.checkpoint().unwrap();
    assert_eq!(files(dir.path(), MANIFEST_SUFFIX).len(), 1);
    b.close().unwrap();
    let mut again = SegmentedBackend::open(dir.path(), opts(Durability::None)).unwrap();
    let back = again.replay(None, None, None).unwrap();
    assert_eq!(
        back.iter().map(|f| f.id()).collect::<Vec<_>>(),
        fs.iter().map(|f| f.id()).collect::<Vec<_>>()
    );
    assert!(
        again.quarantine_receipts(None).is_empty(),
        "the hash matches"
    );
    again.close().unwrap();
}

#[test]
fn none_mode_loses_only_what_waits_on_a_crash_and_a_dropped_handle_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = facts(6, "a");
    {
        let mut b = SegmentedBackend::open(dir.path(), opts(Durability::None)).unwrap();
        for f in &fs[..2] {
            b.append(std::slice::from_ref(f)).unwrap();
        }
        // dropped without close: what waits is written
    }
    let mut b = SegmentedBackend::open(dir.path(), opts(Durability::None)).unwrap();
    assert_eq!(b.replay(None, None, None).unwrap().len(), 2);
    for f in &fs[2..] {
        b.append(std::slice::from_ref(f)).unwrap();
    }
    b.abandon("a"); // the process dies: the four waiting commits are lost
    let mut b = SegmentedBackend::open(dir.path(), opts(Durability::None)).unwrap();
    let back = b.replay(None, None, None).unwrap();
    assert_eq!(back.len(), 2, "a prefix: what was written");
    assert!(b.quarantine_receipts(None).is_empty());
    b.close().unwrap();
}

#[test]
fn none_mode_writes_its_buffer_once_the_segments_hold_a_mebibyte() {
    let dir = tempfile::tempdir().unwrap();
    let l = LedgerStore::open_segmented(dir.path(), opts(Durability::None)).unwrap();
    let big = Value::from("x".repeat(4000));
    let mut written_before_close = false;
    for i in 0..400 {
        let store = if i % 2 == 0 { "a" } else { "b" };
        l.write(Write::new(store, format!("k{i}"), big.clone()))
            .unwrap();
        let on_disk = segment_bytes(dir.path(), "a") + segment_bytes(dir.path(), "b");
        let waiting = (i as u64 + 1) * 4000 - on_disk.min((i as u64 + 1) * 4000);
        assert!(
            waiting < (1 << 20) + 3 * 4096,
            "at most a mebibyte (and one commit) waits: {waiting}"
        );
        written_before_close |= on_disk > 0;
    }
    assert!(written_before_close);
    l.close().unwrap();
    let l = LedgerStore::open_segmented(dir.path(), opts(Durability::None)).unwrap();
    assert_eq!(l.fact_count(), 400);
    l.close().unwrap();
}

#[test]
fn a_batch_over_several_stores_reaches_the_files_at_once_even_in_none_mode() {
    let dir = tempfile::tempdir().unwrap();
    let l = LedgerStore::open_segmented(dir.path(), opts(Durability::None)).unwrap();
    l.write(Write::new("a", "first", v(0))).unwrap();
    assert_eq!(segment_bytes(dir.path(), "a"), 0);
    l.commit(
        Batch::new()
            .write(Write::new("a", "k", v(1)))
            .write(Write::new("b", "k", v(2))),
    )
    .unwrap();
    let (a, b) = (
        segment_bytes(dir.path(), "a"),
        segment_bytes(dir.path(), "b"),
    );
    assert!(a > 0 && b > 0, "both parts written: {a} {b}");
    // The commit waiting before it was written too, first: closing adds nothing to a.
    l.close().unwrap();
    assert_eq!(segment_bytes(dir.path(), "a"), a);
    let mut r = SegmentedBackend::open(dir.path(), opts(Durability::None)).unwrap();
    let keys: Vec<String> = r
        .replay(Some("a"), None, None)
        .unwrap()
        .iter()
        .map(|f| f.key().to_owned())
        .collect();
    assert_eq!(keys, ["first", "k"]);
    r.close().unwrap();
}

#[test]
fn a_sealed_segment_records_the_blake3_of_its_bytes_in_every_mode() {
    for d in [Durability::None, Durability::Flush, Durability::Fsync] {
        let dir = tempfile::tempdir().unwrap();
        let mut b = SegmentedBackend::open(dir.path(), opts(d)).unwrap();
        // More than one hash chunk (16 KiB) of frames, in commits of various sizes.
        let n = if d == Durability::Fsync { 60 } else { 400 };
        let fs = facts(n, "a");
        let mut i = 0;
        while i < fs.len() {
            let k = (i % 3) + 1;
            let end = (i + k).min(fs.len());
            b.append(&fs[i..end]).unwrap();
            i = end;
        }
        b.close().unwrap();
        let seg = files(dir.path(), ".wal");
        assert_eq!(seg.len(), 1);
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(files(dir.path(), MANIFEST_SUFFIX)[0].clone()).unwrap(),
        )
        .unwrap();
        let bytes = std::fs::read(&seg[0]).unwrap();
        assert_eq!(m["blake3"], blake3::hash(&bytes).to_hex().as_str(), "{d:?}");
        assert_eq!(m["byte_size"], bytes.len() as u64);
        assert_eq!(m["fact_count"], n as u64);
    }
}

#[test]
fn fsync_mode_keeps_zeroed_space_ahead_which_close_cuts_and_a_reopen_after_a_crash_drops() {
    let dir = tempfile::tempdir().unwrap();
    let fs = facts(5, "a");
    let mut b = SegmentedBackend::open(dir.path(), opts(Durability::Fsync)).unwrap();
    for f in &fs[..3] {
        b.append(std::slice::from_ref(f)).unwrap();
    }
    let written = segment_bytes(dir.path(), "a");
    let size = file_sizes(dir.path(), "a")[0];
    assert!(
        size > written && size.is_multiple_of(1 << 20),
        "zero-filled ahead in mebibytes: {size}"
    );
    b.abandon("a"); // a crash: the zeros stay
    assert_eq!(file_sizes(dir.path(), "a"), [size]);
    let mut b = SegmentedBackend::open(dir.path(), opts(Durability::Fsync)).unwrap();
    assert!(
        b.open_report().torn_tails.is_empty(),
        "zeros are not a torn tail"
    );
    assert!(files(dir.path(), "")
        .iter()
        .all(|p| !p.to_string_lossy().contains(".torn-")));
    assert_eq!(
        file_sizes(dir.path(), "a"),
        [written],
        "the zero tail was cut"
    );
    for f in &fs[3..] {
        b.append(std::slice::from_ref(f)).unwrap();
    }
    drop(b); // dropped without close: the file ends at its last frame
    let sizes = file_sizes(dir.path(), "a");
    assert_eq!(sizes, [segment_bytes(dir.path(), "a")]);
    let mut b = SegmentedBackend::open(dir.path(), opts(Durability::Fsync)).unwrap();
    let back = b.replay(None, None, None).unwrap();
    assert_eq!(
        back.iter().map(|f| f.id()).collect::<Vec<_>>(),
        fs.iter().map(|f| f.id()).collect::<Vec<_>>()
    );
    b.close().unwrap();
    let m = files(dir.path(), MANIFEST_SUFFIX);
    assert_eq!(m.len(), 1);
    assert_eq!(
        file_sizes(dir.path(), "a"),
        [segment_bytes(dir.path(), "a")]
    );
}
