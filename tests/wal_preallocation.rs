//! WAL preallocation in `fsync` mode (issue 8, defect 7): commits overwrite zero-filled
//! space instead of growing the file, and the space never outlives the handle — after a
//! clean close, a drop, and the open that follows a crash, the WAL ends exactly at its
//! last frame; the zeros a crashed process left are the end of the log, not damage.

mod common;

use std::path::Path;

use igniter_ledger::{Durability, Error, Fact, LedgerStore, OpenOptions, Value, Write};
use uuid::Uuid;

fn w(i: i64) -> Write {
    Write::new(
        "kv",
        format!("k{}", i % 13),
        Value::from("v".repeat(100 + i as usize % 50)),
    )
}

fn ids(l: &LedgerStore) -> Vec<Uuid> {
    l.fact_log_all(None, None).iter().map(Fact::id).collect()
}

/// The end of the last complete frame (length-prefixed frames from offset 0).
fn frames_end(bytes: &[u8]) -> usize {
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 || at + 8 + len > bytes.len() {
            break;
        }
        at += 8 + len;
    }
    at
}

fn len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
fn fsync_mode_preallocates_and_a_clean_close_leaves_the_exact_length() {
    let dir = common::tempdir();
    let path = dir.path().join("p.wal");
    let l = LedgerStore::open(&path).unwrap();
    for i in 0..50 {
        l.write(w(i)).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let end = frames_end(&bytes);
    assert!(
        bytes.len() > end,
        "zero-filled space is reserved while open"
    );
    assert!(bytes[end..].iter().all(|&b| b == 0));
    l.close().unwrap();
    assert_eq!(
        len(&path),
        end as u64,
        "close cuts the file to its last frame"
    );
    drop(l);
    let l = LedgerStore::open(&path).unwrap();
    let rep = l.open_report().unwrap();
    assert_eq!((rep.zero_tail, rep.torn_tail.is_none()), (0, true));
    assert_eq!(l.fact_count(), 50);
}

#[test]
fn flush_and_none_modes_do_not_preallocate() {
    for mode in [Durability::Flush, Durability::None] {
        let dir = common::tempdir();
        let path = dir.path().join("n.wal");
        let l = LedgerStore::open_with(&path, OpenOptions::new().durability(mode)).unwrap();
        for i in 0..20 {
            l.write(w(i)).unwrap();
        }
        l.checkpoint().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(frames_end(&bytes), bytes.len(), "{mode:?}");
    }
}

#[test]
fn dropping_the_handle_without_close_also_leaves_the_exact_length() {
    let dir = common::tempdir();
    let path = dir.path().join("d.wal");
    let l = LedgerStore::open(&path).unwrap();
    for i in 0..30 {
        l.write(w(i)).unwrap();
    }
    drop(l);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(frames_end(&bytes), bytes.len());
}

#[test]
fn the_zeros_a_crashed_process_left_are_the_end_of_the_log() {
    let dir = common::tempdir();
    let path = dir.path().join("c.wal");
    let l = LedgerStore::open(&path).unwrap();
    let mut acked = Vec::new();
    for i in 0..40 {
        acked.push(l.write(w(i)).unwrap().id());
    }
    // A crash: the file as the process left it (with the preallocated zeros).
    let left = std::fs::read(&path).unwrap();
    let end = frames_end(&left);
    assert!(left.len() > end);
    l.close().unwrap();
    drop(l);
    let copy = dir.path().join("copy.wal");
    std::fs::write(&copy, &left).unwrap();
    let l = LedgerStore::open(&copy).unwrap();
    let rep = l.open_report().unwrap().clone();
    assert_eq!(ids(&l), acked);
    assert_eq!(rep.torn_tail, None, "zeros are not damage");
    assert_eq!(rep.recovered, None);
    assert_eq!(rep.zero_tail, (left.len() - end) as u64);
    assert_eq!(len(&copy), end as u64, "opening trims them");
    // No side file for zeros.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".torn-")), "{names:?}");
    // The log goes on from its end, through a new preallocated region.
    acked.push(l.write(w(99)).unwrap().id());
    l.close().unwrap();
    drop(l);
    let l = LedgerStore::open(&copy).unwrap();
    assert_eq!(ids(&l), acked);
}

#[test]
fn a_torn_frame_inside_the_preallocated_region_is_kept_and_the_zeros_trimmed() {
    let dir = common::tempdir();
    let path = dir.path().join("t.wal");
    let l = LedgerStore::open(&path).unwrap();
    for i in 0..10 {
        l.write(w(i)).unwrap();
    }
    let mut left = std::fs::read(&path).unwrap();
    let end = frames_end(&left);
    l.close().unwrap();
    drop(l);
    // Half a frame written into the zeros, then the crash.
    let partial = [0u8, 0, 0, 200, 0x92, 0x01, 0x9a, 0xc4, 0x10, 7, 7, 7];
    left[end..end + partial.len()].copy_from_slice(&partial);
    let copy = dir.path().join("copy.wal");
    std::fs::write(&copy, &left).unwrap();
    let l = LedgerStore::open(&copy).unwrap();
    assert_eq!(l.fact_count(), 10);
    let torn = l.open_report().unwrap().torn_tail.clone().unwrap();
    assert_eq!(torn.offset, end as u64);
    assert_eq!(std::fs::read(torn.side_file).unwrap(), partial);
    assert_eq!(len(&copy), end as u64);
}

#[test]
fn on_a_full_tmpfs_commits_go_on_without_preallocation() {
    let fs = match common::SmallTmpfs::mount("2m") {
        Ok(fs) => fs,
        Err(reason) => {
            println!("SKIPPED on_a_full_tmpfs_commits_go_on_without_preallocation: {reason}");
            return;
        }
    };
    let path = fs.path().join("full.wal");
    let l = LedgerStore::open(&path).unwrap();
    let mut acked = Vec::new();
    let mut n = 0i64;
    let err = loop {
        match l.write(w(n)) {
            Ok(f) => acked.push(f.id()),
            Err(e) => break e,
        }
        n += 1;
    };
    assert!(
        matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(28)),
        "{err}"
    );
    // More than fit before the first 1 MiB of reserved space would have been refused.
    let used = len(&path);
    assert!(
        used > 1_500_000,
        "only {used} bytes of log fit on a 2 MiB disk"
    );
    l.close().unwrap();
    drop(l);
    let l = LedgerStore::open(&path).unwrap();
    assert_eq!(ids(&l), acked);
}
