//! Power-loss style damage to the files of a ledger, and how opening handles it.
//!
//! Power loss can drop whatever was written after the last fdatasync, cut a frame
//! anywhere, or leave the file's new length with zeros where the data never arrived.
//! Each test builds a ledger whose commit boundaries and synced length are known, damages
//! a copy of its files, reopens the copy and checks that it holds exactly a prefix of the
//! commits (never part of a batch), that every commit acknowledged in `fsync` mode is in
//! it, and that the open report says what was cut. Damage followed by valid frames is
//! corruption: the open fails naming the file and offset, or, asked to recover, moves
//! the damaged remainder to a side file. Damaged snapshots fall back to full replay.

mod common;

use std::path::{Path, PathBuf};

use common::FaultFile;
use igniter_ledger::__private;
use igniter_ledger::{
    Append, Batch, Durability, Error, Fact, LedgerStore, MapKey, OpenOptions, SnapshotOutcome,
    TornTail, Value, Write,
};

/// One acknowledged commit and where its frame ends in the WAL.
#[derive(Clone)]
struct Commit {
    ids: Vec<uuid::Uuid>,
    end: u64,
}

struct Built {
    dir: tempfile::TempDir,
    wal: Vec<u8>,
    snap: Option<Vec<u8>>,
    commits: Vec<Commit>,
    /// WAL length covered by the last successful fdatasync.
    synced: u64,
}

fn commit_op(l: &LedgerStore, i: usize) -> Vec<Fact> {
    let v = |n: usize| {
        Value::map([
            (MapKey::sym("n"), Value::Int(n as i64)),
            (MapKey::sym("text"), Value::from("a fact ".repeat(n % 7))),
        ])
    };
    match i % 4 {
        0 | 1 => vec![l
            .write(Write::new("kv", format!("k{}", i % 5), v(i)))
            .unwrap()],
        2 => vec![l.append(Append::new("log", v(i))).unwrap()],
        _ => l
            .commit(
                Batch::new()
                    .write(Write::new("kv", format!("k{}", i % 5), v(i)))
                    .append(Append::new("log", v(i + 1)))
                    .write(Write::new("kv", "batch", v(i + 2))),
            )
            .unwrap(),
    }
}

/// `synced_commits` commits in fsync mode (a checkpoint after `checkpoint_after` of them
/// when given), then `unsynced_commits` more in flush mode (written, never synced).
fn build(synced_commits: usize, unsynced_commits: usize, checkpoint_after: Option<usize>) -> Built {
    let dir = common::tempdir();
    let path = dir.path().join("l.wal");
    let mut commits = Vec::new();
    let synced;
    {
        let f = FaultFile::open(&path);
        let l = LedgerStore::open_with_file(
            &path,
            OpenOptions::new().durability(Durability::Fsync),
            f.clone(),
        )
        .unwrap();
        for i in 0..synced_commits {
            let facts = commit_op(&l, i);
            commits.push(Commit {
                ids: facts.iter().map(Fact::id).collect(),
                end: f.len.load(std::sync::atomic::Ordering::SeqCst),
            });
            assert_eq!(
                f.synced.load(std::sync::atomic::Ordering::SeqCst),
                commits.last().unwrap().end,
                "fsync mode acknowledges only synced commits"
            );
            if checkpoint_after == Some(i + 1) {
                l.checkpoint().unwrap();
            }
        }
        l.close().unwrap();
        synced = f.synced.load(std::sync::atomic::Ordering::SeqCst);
    }
    if unsynced_commits > 0 {
        let f = FaultFile::open(&path);
        let l = LedgerStore::open_with_file(
            &path,
            OpenOptions::new().durability(Durability::Flush),
            f.clone(),
        )
        .unwrap();
        for i in synced_commits..synced_commits + unsynced_commits {
            let facts = commit_op(&l, i);
            commits.push(Commit {
                ids: facts.iter().map(Fact::id).collect(),
                end: f.len.load(std::sync::atomic::Ordering::SeqCst),
            });
        }
        assert_eq!(f.syncs.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Dropped without close: nothing of this session is synced.
        std::mem::forget(l);
    }
    let wal = std::fs::read(&path).unwrap();
    let snap = std::fs::read(__private::snapshot_path(&path)).ok();
    Built {
        dir,
        wal,
        snap,
        commits,
        synced,
    }
}

/// Writes damaged copies of the files into a fresh directory; returns the WAL path.
fn lay_out(dir: &Path, name: &str, wal: &[u8], snap: Option<&[u8]>) -> PathBuf {
    let p = dir.join(format!("{name}.wal"));
    std::fs::write(&p, wal).unwrap();
    if let Some(s) = snap {
        std::fs::write(__private::snapshot_path(&p), s).unwrap();
    }
    p
}

/// Opens a damaged copy and checks it holds exactly the commits whose frames end at or
/// before `intact` bytes, and that the report names the cut of `damaged_len - intact`.
fn check_prefix(path: &Path, b: &Built, intact: u64, damaged_len: u64) -> LedgerStore {
    let l = LedgerStore::open(path).unwrap_or_else(|e| panic!("reopen failed: {e}"));
    let k = b.commits.iter().take_while(|c| c.end <= intact).count();
    let boundary = if k == 0 { 0 } else { b.commits[k - 1].end };
    let expected: Vec<uuid::Uuid> = b.commits[..k].iter().flat_map(|c| c.ids.clone()).collect();
    let got: Vec<uuid::Uuid> = l.fact_log_all(None, None).iter().map(Fact::id).collect();
    assert_eq!(got, expected, "a prefix of whole commits (intact {intact})");
    let report = l.open_report().unwrap();
    let torn = (damaged_len > boundary).then(|| TornTail {
        offset: boundary,
        bytes: damaged_len - boundary,
    });
    assert_eq!(report.torn_tail, torn, "the report names the cut");
    assert_eq!(report.recovered, None);
    assert_eq!(report.wal_bytes, damaged_len);
    assert_eq!(
        std::fs::metadata(path).unwrap().len(),
        boundary,
        "the cut is made"
    );
    // Writing goes on after the repair, and survives another reopen.
    let f = l.write(Write::new("kv", "after", Value::Int(1))).unwrap();
    l.close().unwrap();
    drop(l);
    let l = LedgerStore::open(path).unwrap();
    assert!(l.fact_by_id(f.id()).is_some());
    assert_eq!(l.open_report().unwrap().torn_tail, None);
    assert_eq!(l.fact_count(), expected.len() + 1);
    l
}

#[test]
fn cut_back_to_the_last_synced_length_keeps_every_fsync_acknowledged_commit() {
    let b = build(12, 8, None);
    let out = common::tempdir();
    assert!(b.synced < b.wal.len() as u64);
    // Everything after the last sync lost.
    let p = lay_out(out.path(), "synced", &b.wal[..b.synced as usize], None);
    check_prefix(&p, &b, b.synced, b.synced);
    // Lost at a random point inside the unsynced frames.
    let mut rng = fastrand::Rng::with_seed(5);
    for i in 0..40 {
        let cut = rng.u64(b.synced..=b.wal.len() as u64);
        let p = lay_out(out.path(), &format!("cut{i}"), &b.wal[..cut as usize], None);
        let l = check_prefix(&p, &b, cut, cut);
        // Every commit acknowledged in fsync mode survived.
        for c in &b.commits[..12] {
            for id in &c.ids {
                assert!(l.fact_by_id(*id).is_some());
            }
        }
    }
}

#[test]
fn truncation_at_every_byte_inside_the_last_frames() {
    let b = build(6, 4, None);
    let out = common::tempdir();
    let from = b.commits[b.commits.len() - 4].end;
    for cut in from..=b.wal.len() as u64 {
        let p = lay_out(out.path(), &format!("t{cut}"), &b.wal[..cut as usize], None);
        check_prefix(&p, &b, cut, cut);
        std::fs::remove_file(&p).unwrap();
    }
}

#[test]
fn zero_filled_tails_are_cut_and_reported() {
    let b = build(6, 4, None);
    let out = common::tempdir();
    let len = b.wal.len() as u64;
    let mid_last = (b.commits[b.commits.len() - 2].end + len) / 2;
    // (bytes kept, zeros after them): the new length reached the disk, the data did not.
    for (i, (keep, zeros)) in [
        (len, 4096u64),
        (b.synced, len - b.synced),
        (mid_last, len - mid_last),
        (mid_last, 1),
        (b.synced, 7),
    ]
    .into_iter()
    .enumerate()
    {
        let mut w = b.wal[..keep as usize].to_vec();
        w.resize((keep + zeros) as usize, 0);
        let p = lay_out(out.path(), &format!("z{i}"), &w, None);
        check_prefix(&p, &b, keep, keep + zeros);
    }
}

#[test]
fn random_garbage_after_the_last_frame_is_a_torn_tail() {
    let b = build(5, 0, None);
    let out = common::tempdir();
    let mut rng = fastrand::Rng::with_seed(9);
    for i in 0..20 {
        let mut w = b.wal.clone();
        let n = rng.usize(1..3000);
        w.extend((0..n).map(|_| rng.u8(..)));
        let p = lay_out(out.path(), &format!("g{i}"), &w, None);
        check_prefix(&p, &b, b.wal.len() as u64, w.len() as u64);
    }
}

/// The offsets at which each commit's frame starts.
fn starts(b: &Built) -> Vec<u64> {
    std::iter::once(0)
        .chain(b.commits.iter().map(|c| c.end))
        .take(b.commits.len())
        .collect()
}

#[test]
fn a_flipped_byte_in_any_frame_but_the_last_is_corruption_naming_file_and_offset() {
    let b = build(8, 0, None);
    let out = common::tempdir();
    let starts = starts(&b);
    // Every byte of a frame in the middle, and the first byte of every other frame.
    let victim = 4;
    let positions: Vec<u64> = (starts[victim]..b.commits[victim].end)
        .chain(starts[..b.commits.len() - 1].iter().copied())
        .collect();
    for pos in positions {
        let frame = starts.iter().rposition(|&s| s <= pos).unwrap();
        let mut w = b.wal.clone();
        w[pos as usize] ^= 0x5a;
        let p = lay_out(out.path(), &format!("f{pos}"), &w, None);
        let before = std::fs::read(&p).unwrap();
        match LedgerStore::open(&p) {
            Err(Error::Corruption {
                path,
                offset,
                reason,
            }) => {
                assert_eq!(path, p);
                assert_eq!(offset, starts[frame], "byte {pos}: {reason}");
                let msg = Error::Corruption {
                    path: path.clone(),
                    offset,
                    reason,
                }
                .to_string();
                assert!(
                    msg.contains(&p.display().to_string()) && msg.contains(&offset.to_string())
                );
            }
            Err(e) => panic!("byte {pos}: expected corruption, got {e}"),
            Ok(_) => panic!("byte {pos}: damage before valid frames must not open"),
        }
        assert_eq!(
            std::fs::read(&p).unwrap(),
            before,
            "a failed open changes nothing"
        );
        std::fs::remove_file(&p).unwrap();
    }
}

#[test]
fn recover_moves_the_damaged_remainder_to_a_side_file() {
    let b = build(8, 0, None);
    let out = common::tempdir();
    let starts = starts(&b);
    for victim in [0usize, 3, 6] {
        let mut w = b.wal.clone();
        let pos = (starts[victim] + 6) as usize;
        w[pos] ^= 0xff;
        let p = lay_out(out.path(), &format!("r{victim}"), &w, None);
        let l = LedgerStore::open_with(&p, OpenOptions::new().recover(true)).unwrap();
        let r = l
            .open_report()
            .unwrap()
            .recovered
            .clone()
            .expect("reported");
        assert_eq!(r.offset, starts[victim]);
        assert_eq!(r.bytes, w.len() as u64 - starts[victim]);
        assert_eq!(
            std::fs::read(&r.side_file).unwrap(),
            &w[starts[victim] as usize..],
            "the side file holds exactly the damaged remainder"
        );
        assert!(r
            .side_file
            .to_string_lossy()
            .contains(&format!(".corrupt-{}", r.offset)));
        let expected: Vec<_> = b.commits[..victim]
            .iter()
            .flat_map(|c| c.ids.clone())
            .collect();
        let got: Vec<_> = l.fact_log_all(None, None).iter().map(Fact::id).collect();
        assert_eq!(got, expected);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), starts[victim]);
        l.write(Write::new("kv", "after", Value::Int(1))).unwrap();
        l.close().unwrap();
        drop(l);
        let l = LedgerStore::open(&p).unwrap();
        let rep = l.open_report().unwrap();
        assert_eq!((rep.torn_tail.clone(), rep.recovered.clone()), (None, None));
        assert_eq!(l.fact_count(), expected.len() + 1);
    }
}

#[test]
fn a_crc_valid_frame_that_does_not_decode_is_corruption_even_at_the_end() {
    let b = build(4, 0, None);
    let out = common::tempdir();
    let bad = igniter_ledger::__private::fuzzing::frame(&[0x92, 0x01, 0xc1]);
    for (name, w, offset) in [
        (
            "end",
            [b.wal.clone(), bad.clone()].concat(),
            b.wal.len() as u64,
        ),
        (
            "middle",
            [
                &b.wal[..b.commits[1].end as usize],
                &bad,
                &b.wal[b.commits[1].end as usize..],
            ]
            .concat(),
            b.commits[1].end,
        ),
    ] {
        let p = lay_out(out.path(), name, &w, None);
        match LedgerStore::open(&p) {
            Err(Error::Corruption {
                offset: o, reason, ..
            }) => {
                assert_eq!(o, offset);
                assert!(reason.contains("does not decode"), "{reason}");
            }
            other => panic!("{name}: expected corruption, got {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn a_damaged_snapshot_falls_back_to_full_replay_and_says_why() {
    let b = build(10, 0, Some(6));
    let snap = b.snap.clone().expect("checkpointed");
    let out = common::tempdir();
    let all: Vec<_> = b.commits.iter().flat_map(|c| c.ids.clone()).collect();
    // The intact snapshot is used.
    let p = lay_out(out.path(), "ok", &b.wal, Some(&snap));
    let l = LedgerStore::open(&p).unwrap();
    assert!(matches!(
        l.open_report().unwrap().snapshot,
        SnapshotOutcome::Loaded { wal_offset, .. } if wal_offset == b.commits[5].end
    ));
    drop(l);
    let other = build(3, 0, Some(3)).snap.unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("truncated".into(), snap[..snap.len() / 2].to_vec()),
        ("another ledger's".into(), other),
        ("garbage".into(), vec![0xab; 300]),
    ];
    for pos in (0..snap.len()).step_by(snap.len() / 25 + 1) {
        let mut s = snap.clone();
        s[pos] ^= 0x10;
        cases.push((format!("flipped at {pos}"), s));
    }
    for (i, (what, s)) in cases.iter().enumerate() {
        let p = lay_out(out.path(), &format!("s{i}"), &b.wal, Some(s));
        let l = LedgerStore::open(&p).unwrap_or_else(|e| panic!("{what} snapshot: {e}"));
        let got: Vec<_> = l.fact_log_all(None, None).iter().map(Fact::id).collect();
        assert_eq!(got, all, "{what} snapshot: full replay");
        match &l.open_report().unwrap().snapshot {
            SnapshotOutcome::Ignored { reason } => assert!(!reason.is_empty()),
            other => panic!("{what} snapshot: expected Ignored, got {other:?}"),
        }
    }
}

#[test]
fn a_wal_cut_below_the_snapshot_ignores_the_snapshot() {
    // Power loss in flush mode after a checkpoint: the snapshot was synced, the WAL it
    // covers was not.
    let b = build(4, 6, None);
    let out = common::tempdir();
    let dir = common::tempdir();
    // Checkpoint a copy of the whole WAL, then lose the WAL's unsynced part.
    let full = lay_out(dir.path(), "full", &b.wal, None);
    LedgerStore::open(&full).unwrap().checkpoint().unwrap();
    let snap = std::fs::read(__private::snapshot_path(&full)).unwrap();
    let p = lay_out(out.path(), "cut", &b.wal[..b.synced as usize], Some(&snap));
    let l = LedgerStore::open(&p).unwrap();
    assert!(matches!(
        l.open_report().unwrap().snapshot,
        SnapshotOutcome::Ignored { .. }
    ));
    let expected: Vec<_> = b.commits[..4].iter().flat_map(|c| c.ids.clone()).collect();
    let got: Vec<_> = l.fact_log_all(None, None).iter().map(Fact::id).collect();
    assert_eq!(got, expected);
}

#[test]
fn a_leftover_snapshot_tmp_is_ignored_and_removed() {
    let b = build(6, 0, Some(3));
    let out = common::tempdir();
    let p = lay_out(out.path(), "tmp", &b.wal, b.snap.as_deref());
    let tmp = __private::snapshot_tmp_path(&p);
    std::fs::write(&tmp, b"half a snapshot \x00\x01\x02").unwrap();
    let l = LedgerStore::open(&p).unwrap();
    let r = l.open_report().unwrap();
    assert!(r.stale_snapshot_tmp);
    assert!(matches!(r.snapshot, SnapshotOutcome::Loaded { .. }));
    assert!(!tmp.exists());
    assert_eq!(
        l.fact_count(),
        b.commits.iter().map(|c| c.ids.len()).sum::<usize>()
    );
    // The built ledger's directory is still intact (the copies were damaged, not it).
    assert!(b.dir.path().join("l.wal").exists());
}
