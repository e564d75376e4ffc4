//! `verify_file` and `LedgerStore::verify`: what each finding means, on files made clean
//! and then damaged on purpose.

use std::path::Path;

use igniter_ledger::retention::{Erase, Prune, RetentionPolicy, Strategy};
use igniter_ledger::{
    verify_file, verify_file_with, LedgerStore, SnapshotCheck, Value, VerifyProgress, Write,
};

fn filled(path: &Path, n: usize) -> LedgerStore {
    let l = LedgerStore::open(path).unwrap();
    for i in 0..n {
        l.write(Write::new(
            "things",
            format!("k{}", i % 10),
            Value::Int(i as i64),
        ))
        .unwrap();
    }
    l
}

fn closed(path: &Path, n: usize) {
    let l = filled(path, n);
    l.close().unwrap();
}

#[test]
fn a_clean_file_verifies_with_its_counts_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wal");
    closed(&path, 50);
    let mut seen: Vec<VerifyProgress> = Vec::new();
    let r = verify_file_with(&path, &mut |p| seen.push(*p)).unwrap();
    assert!(r.is_ok(), "{:?}", r.problems());
    assert_eq!((r.frames_checked, r.facts_checked), (50, 50));
    assert_eq!(r.bytes, std::fs::metadata(&path).unwrap().len());
    assert!(r.torn_tail.is_none() && r.corrupt.is_empty());
    assert_eq!(r.snapshot, SnapshotCheck::Absent);
    let last = seen.last().unwrap();
    assert_eq!(
        (last.bytes_done, last.bytes_total, last.facts),
        (r.bytes, r.bytes, 50)
    );
}

#[test]
fn a_damaged_middle_frame_is_corruption_and_the_frames_after_it_are_still_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wal");
    closed(&path, 20);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let r = verify_file(&path).unwrap();
    assert!(!r.is_ok());
    assert_eq!(r.corrupt.len(), 1, "{:?}", r.corrupt);
    let c = &r.corrupt[0];
    assert!(
        c.offset <= mid as u64 && mid as u64 <= c.offset + c.bytes,
        "{c:?}"
    );
    assert_eq!(r.frames_checked, 19, "one frame lost, the rest checked");
    // The facts after the damage name causes that were lost with the damaged frame
    // (one of them, for the key written in it) — reported as broken.
    assert!(r.broken_causation_count <= 1);
    assert!(r.problems().iter().any(|p| p.contains("corrupt")));
}

#[test]
fn a_torn_tail_and_a_zero_tail_are_reported_but_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wal");
    closed(&path, 5);
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() - 3]).unwrap();
    let r = verify_file(&path).unwrap();
    assert!(r.is_ok(), "{:?}", r.problems());
    assert_eq!(r.frames_checked, 4);
    let t = r.torn_tail.unwrap();
    assert_eq!(t.offset + t.bytes, full.len() as u64 - 3);

    let mut z = full.clone();
    z.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&path, &z).unwrap();
    let r = verify_file(&path).unwrap();
    assert!(r.is_ok() && r.torn_tail.is_none());
    assert_eq!((r.frames_checked, r.zero_tail), (5, 4096));
}

#[test]
fn a_causation_to_no_fact_is_a_broken_link() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wal");
    let l = LedgerStore::open(&path).unwrap();
    let ghost = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
    let f = l
        .write(Write::new("things", "k", Value::Int(1)).causation(ghost))
        .unwrap();
    let r = l.verify().unwrap();
    assert!(!r.is_ok());
    assert_eq!(r.broken_causation_count, 1);
    assert_eq!(r.broken_causations[0].id, f.id());
    assert_eq!(r.broken_causations[0].causation, ghost);
    // The same on the in-memory ledger.
    let m = LedgerStore::memory();
    m.write(Write::new("things", "k", Value::Int(1)).causation(ghost))
        .unwrap();
    assert_eq!(m.verify().unwrap().broken_causation_count, 1);
}

#[test]
fn after_compaction_prune_and_erasure_the_ledger_verifies_and_the_links_to_removed_facts_are_accounted_for(
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wal");
    let l = filled(&path, 100);
    l.set_retention(
        "things",
        RetentionPolicy::new(Strategy::Ephemeral, None).unwrap(),
    )
    .unwrap();
    let kept_before = l.verify().unwrap();
    assert!(kept_before.is_ok());
    l.compact(None).unwrap();
    let r = l.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.problems());
    assert_eq!(r.receipts, 1);
    assert_eq!(
        r.causations_to_removed, 10,
        "each kept latest names a dropped fact"
    );
    // Prune a fact that a later fact names.
    let a = l.write(Write::new("things", "p", Value::Int(1))).unwrap();
    l.write(Write::new("things", "p", Value::Int(2))).unwrap();
    l.prune_fact_ids(Prune::new([a.id().to_string()], Value::sym("test")))
        .unwrap();
    l.write(Write::new("people", "ada", Value::from("Ada Lovelace")))
        .unwrap();
    l.erase(Erase::key("people", "ada", Value::sym("gdpr")))
        .unwrap();
    let r = l.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.problems());
    assert_eq!(r.receipts, 3);
    assert_eq!(r.tombstones, 1);
    assert_eq!(r.causations_to_removed, 11);
    l.close().unwrap();
    drop(l);
    let f = verify_file(&path).unwrap();
    assert!(f.is_ok(), "{:?}", f.problems());
    assert_eq!((f.facts_checked, f.tombstones), (r.facts_checked, 1));
}

#[test]
fn a_checkpoint_is_checked_against_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wal");
    let l = filled(&path, 30);
    l.checkpoint().unwrap();
    l.write(Write::new("things", "after", Value::Int(1)))
        .unwrap();
    let r = l.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.problems());
    match r.snapshot {
        SnapshotCheck::Consistent { facts, .. } => assert_eq!(facts, 30),
        other => panic!("{other:?}"),
    }
    l.close().unwrap();
    drop(l);
    // A snapshot whose bytes are damaged is unreadable (opening ignores it).
    let snap = igniter_ledger::__private::snapshot_path(&path);
    let mut b = std::fs::read(&snap).unwrap();
    let n = b.len();
    b[n / 2] ^= 1;
    std::fs::write(&snap, &b).unwrap();
    let r = verify_file(&path).unwrap();
    assert!(r.is_ok());
    assert!(
        matches!(r.snapshot, SnapshotCheck::Unreadable { .. }),
        "{:?}",
        r.snapshot
    );
}

#[test]
fn an_open_ledger_is_verified_through_its_handle_while_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wal");
    let l = filled(&path, 10);
    let e = verify_file(&path).unwrap_err();
    assert!(e.to_string().contains("open in this process"), "{e}");
    std::thread::scope(|s| {
        let w = s.spawn(|| {
            for i in 0..200 {
                l.write(Write::new("more", format!("m{i}"), Value::Int(i)))
                    .unwrap();
            }
        });
        for _ in 0..20 {
            let r = l.verify().unwrap();
            assert!(r.is_ok(), "{:?}", r.problems());
            assert!(r.torn_tail.is_none(), "whole frames only");
        }
        w.join().unwrap();
    });
    assert_eq!(l.verify().unwrap().facts_checked, 210);
    // The lock is still held: a second handle is refused.
    assert!(LedgerStore::open(&path).is_err());
    l.close().unwrap();
    assert!(matches!(l.verify(), Err(igniter_ledger::Error::Closed)));
}

#[test]
fn a_missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        verify_file(dir.path().join("nope.wal")),
        Err(igniter_ledger::Error::Io { .. })
    ));
}

#[test]
fn a_file_larger_than_the_read_window_is_verified_frame_by_frame_across_windows() {
    // ~24 MB in frames of ~1 KB and some of ~300 KB, so frames straddle the 8 MiB
    // windows; then damage past the first window.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.wal");
    let l = LedgerStore::open_with(
        &path,
        igniter_ledger::OpenOptions::new().durability(igniter_ledger::Durability::Flush),
    )
    .unwrap();
    let small = "s".repeat(1000);
    let large = "L".repeat(300_000);
    let mut n = 0u64;
    for i in 0..20_000u64 {
        let v = if i % 500 == 7 { &large } else { &small };
        l.write(Write::new(
            "big",
            format!("k{}", i % 1000),
            Value::from(v.as_str()),
        ))
        .unwrap();
        n += 1;
    }
    l.close().unwrap();
    drop(l);
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 3 * 8 * 1024 * 1024 - 4_000_000, "{len}");
    let mut calls = 0;
    let r = verify_file_with(&path, &mut |_| calls += 1).unwrap();
    assert!(r.is_ok(), "{:?}", r.problems());
    assert_eq!((r.frames_checked, r.facts_checked), (n, n));
    assert!(calls >= 3, "progress every 8 MiB: {calls}");

    let mut bytes = std::fs::read(&path).unwrap();
    let at = (len as usize * 3) / 4;
    bytes[at] ^= 0x77;
    std::fs::write(&path, &bytes).unwrap();
    let r = verify_file(&path).unwrap();
    assert_eq!(r.corrupt.len(), 1, "{:?}", r.corrupt);
    assert_eq!(r.frames_checked, n - 1);
    let c = &r.corrupt[0];
    assert!(c.offset <= at as u64 && (at as u64) < c.offset + c.bytes);
}

#[test]
fn a_segmented_ledger_verifies_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let l = LedgerStore::open_segmented(
        dir.path().join("seg"),
        igniter_ledger::segments::SegmentOptions::new(),
    )
    .unwrap();
    for i in 0..5 {
        l.write(Write::new("things", "k", Value::Int(i))).unwrap();
    }
    let r = l.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.problems());
    assert_eq!((r.facts_checked, r.frames_checked), (5, 0));
    l.close().unwrap();
}
