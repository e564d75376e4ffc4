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
    Value, Write,
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
/// before `intact` bytes, and that the report names the cut of `damaged_len - intact`:
/// as a torn tail whose bytes (trailing zeros trimmed) are in a side file, or, when the
/// cut bytes are all zeros, as a zero tail (nothing is destroyed either way).
fn check_prefix(path: &Path, b: &Built, intact: u64, damaged_len: u64) -> LedgerStore {
    let damaged = std::fs::read(path).unwrap();
    assert_eq!(damaged.len() as u64, damaged_len);
    let l = LedgerStore::open(path).unwrap_or_else(|e| panic!("reopen failed: {e}"));
    let k = b.commits.iter().take_while(|c| c.end <= intact).count();
    let boundary = if k == 0 { 0 } else { b.commits[k - 1].end };
    let expected: Vec<uuid::Uuid> = b.commits[..k].iter().flat_map(|c| c.ids.clone()).collect();
    let got: Vec<uuid::Uuid> = l.fact_log_all(None, None).iter().map(Fact::id).collect();
    assert_eq!(got, expected, "a prefix of whole commits (intact {intact})");
    let report = l.open_report().unwrap();
    let tail = &damaged[boundary as usize..];
    let kept = tail.len() - tail.iter().rev().take_while(|&&b| b == 0).count();
    if kept == 0 {
        assert_eq!(report.torn_tail, None, "zeros only: nothing to keep");
        assert_eq!(
            report.zero_tail,
            tail.len() as u64,
            "the report names the cut"
        );
    } else {
        let torn = report.torn_tail.clone().expect("the report names the cut");
        assert_eq!(
            (torn.offset, torn.bytes),
            (boundary, damaged_len - boundary)
        );
        let side = torn.side_file;
        assert_eq!(
            std::fs::read(&side).unwrap(),
            &tail[..kept],
            "the side file holds the cut bytes"
        );
        std::fs::remove_file(side).unwrap();
    }
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

/// Files of `dir` other than `wal` whose bytes are exactly `bytes`.
fn copies_of(dir: &Path, wal: &Path, bytes: &[u8]) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != wal && std::fs::read(p).is_ok_and(|b| b == bytes))
        .collect()
}

#[test]
fn damage_in_the_acknowledged_last_frame_is_kept_in_a_side_file() {
    // Issue 8, defect 4: a flipped bit, a damaged CRC or an impossible length in the
    // complete, fsync-acknowledged final frame used to be cut as a torn tail with no copy.
    let b = build(10, 0, None);
    let last = b.commits[8].end as usize; // where the 10th commit's frame starts
    let len = b.wal.len();
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let damages: [(&str, Damage); 3] = [
        (
            "a flipped bit in the body",
            Box::new(move |w| w[last + 9] ^= 0x10),
        ),
        ("a damaged CRC", Box::new(move |w| w[len - 2] ^= 0xff)),
        (
            "a length of 0xFFFFFFFF",
            Box::new(move |w| w[last..last + 4].copy_from_slice(&[0xff; 4])),
        ),
    ];
    for (i, (what, damage)) in damages.iter().enumerate() {
        let out = common::tempdir();
        let mut w = b.wal.clone();
        damage(&mut w);
        let p = lay_out(out.path(), &format!("d{i}"), &w, None);
        let l = LedgerStore::open(&p).unwrap_or_else(|e| panic!("{what}: {e}"));
        let nine: usize = b.commits[..9].iter().map(|c| c.ids.len()).sum();
        assert_eq!(
            l.fact_count(),
            nine,
            "{what}: the damaged frame is not replayed"
        );
        assert_eq!(std::fs::metadata(&p).unwrap().len(), last as u64);
        let copies = copies_of(out.path(), &p, &w[last..]);
        assert_eq!(
            copies.len(),
            1,
            "{what}: the cut bytes must be kept in a side file, found {copies:?}"
        );
        let torn = l.open_report().unwrap().torn_tail.clone().unwrap();
        assert_eq!(torn.side_file, copies[0]);
        assert!(copies[0]
            .to_string_lossy()
            .ends_with(&format!(".torn-{last}")));
    }
}

#[test]
fn the_side_file_is_durable_before_the_wal_is_cut() {
    // Issue 8, defect 4: the side file and its directory entry are fsynced before the
    // truncation; if that fails, the open fails and the WAL keeps every byte.
    let b = build(6, 3, None);
    let out = common::tempdir();
    for (i, recover) in [false, true].into_iter().enumerate() {
        // A torn tail (no recover needed) and a corrupt middle (recover).
        let mut w = b.wal.clone();
        if recover {
            let mid = b.commits[2].end as usize;
            w[mid + 6] ^= 0xff;
        } else {
            w.truncate(w.len() - 3);
        }
        for plan in [
            common::FsPlan {
                fail_sync_dir: true,
                ..Default::default()
            },
            common::FsPlan {
                fail_file_sync: true,
                ..Default::default()
            },
            common::FsPlan {
                fail_create: true,
                ..Default::default()
            },
        ] {
            let p = lay_out(out.path(), &format!("o{i}"), &w, None);
            let fs = common::FaultFs::new();
            fs.set_plan(plan.clone());
            let err = LedgerStore::open_with_layers(
                &p,
                OpenOptions::new().recover(recover),
                None,
                fs.clone(),
            )
            .map(|_| ())
            .unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{plan:?}: {err}");
            assert_eq!(
                std::fs::read(&p).unwrap(),
                w,
                "{plan:?}: the WAL is untouched"
            );
        }
        // Without faults: create, sync, directory sync, in that order, then the cut.
        let p = lay_out(out.path(), &format!("ok{i}"), &w, None);
        let fs = common::FaultFs::new();
        let l = LedgerStore::open_with_layers(
            &p,
            OpenOptions::new().recover(recover),
            None,
            fs.clone(),
        )
        .unwrap();
        let ops = fs.ops();
        let side = ops.iter().position(|o| o.starts_with("create")).unwrap();
        assert!(ops[side + 1].starts_with("sync "), "{ops:?}");
        assert!(ops[side + 2].starts_with("sync_dir"), "{ops:?}");
        drop(l);
    }
}

#[test]
fn holes_in_the_unsynced_region_lose_only_unacknowledged_commits_and_say_so() {
    // Power loss can persist later pages of the unsynced region and not earlier ones:
    // zeroed pages with valid bytes after them. Every fsync-acknowledged commit must
    // survive; what is lost is reported (a torn tail, or corruption that fails the open
    // until `recover` moves it to a side file), never silently dropped.
    let b = build(15, 120, None);
    let out = common::tempdir();
    let len = b.wal.len() as u64;
    assert!(len - b.synced > 3 * 4096, "several unsynced pages");
    let acked: Vec<uuid::Uuid> = b.commits[..15].iter().flat_map(|c| c.ids.clone()).collect();
    let mut rng = fastrand::Rng::with_seed(21);
    let (mut torn, mut corrupt) = (0, 0);
    for i in 0..40 {
        // One or two zeroed pages (page-aligned, as the page cache writes back) starting
        // at or after the first page that holds unsynced bytes.
        let first_page = b.synced / 4096;
        let last_page = (len - 1) / 4096;
        let page = rng.u64(first_page..=last_page);
        let pages = rng.u64(1..=2);
        let from = (page * 4096).max(b.synced) as usize;
        let to = (((page + pages) * 4096).min(len)) as usize;
        let mut w = b.wal.clone();
        w[from..to].fill(0);
        let p = lay_out(out.path(), &format!("h{i}"), &w, None);
        let l = match LedgerStore::open(&p) {
            Ok(l) => {
                torn += 1;
                let rep = l.open_report().unwrap();
                assert!(
                    rep.torn_tail.is_some() || rep.zero_tail > 0,
                    "hole {from}..{to}: the loss is reported"
                );
                l
            }
            Err(Error::Corruption { offset, .. }) => {
                corrupt += 1;
                assert!(
                    offset >= b.synced,
                    "hole {from}..{to}: corruption at {offset}"
                );
                assert_eq!(
                    std::fs::read(&p).unwrap(),
                    w,
                    "a failed open changes nothing"
                );
                let l = LedgerStore::open_with(&p, OpenOptions::new().recover(true)).unwrap();
                let rec = l.open_report().unwrap().recovered.clone().unwrap();
                assert_eq!(
                    std::fs::read(&rec.side_file).unwrap(),
                    &w[offset as usize..]
                );
                l
            }
            Err(e) => panic!("hole {from}..{to}: {e}"),
        };
        let got: Vec<uuid::Uuid> = l.fact_log_all(None, None).iter().map(Fact::id).collect();
        assert!(got.len() >= acked.len());
        assert_eq!(
            &got[..acked.len()],
            &acked[..],
            "every acknowledged commit survives"
        );
        // Whole commits only, in order.
        let all: Vec<uuid::Uuid> = b.commits.iter().flat_map(|c| c.ids.clone()).collect();
        assert_eq!(&all[..got.len()], &got[..]);
        assert!(
            b.commits.iter().any(|c| c.ids.last() == got.last()),
            "ends on a commit boundary"
        );
    }
    println!("holes: {torn} reported as torn tails, {corrupt} as corruption");
}

#[test]
fn a_flush_mode_checkpoint_never_covers_unsynced_wal_bytes() {
    // Issue 8, defect 5: in `flush` and `none` mode the snapshot was fsynced but the WAL
    // it covers was not. After a power cut the WAL was shorter, the snapshot ignored, and
    // the next checkpoint overwrote it: facts held only by the snapshot were gone.
    for mode in [Durability::Flush, Durability::None] {
        let dir = common::tempdir();
        let path = dir.path().join("cp.wal");
        let f = FaultFile::open(&path);
        let l = LedgerStore::open_with_file(&path, OpenOptions::new().durability(mode), f.clone())
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..50 {
            ids.extend(commit_op(&l, i).iter().map(Fact::id));
        }
        let report = l.checkpoint().unwrap();
        let synced = f.synced.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            synced >= report.wal_offset,
            "{mode:?}: the snapshot covers {} WAL bytes, only {synced} are synced",
            report.wal_offset
        );
        // Power cut: the WAL keeps only what was synced; then the ledger is reopened and
        // checkpointed again.
        std::mem::forget(l);
        let snap = std::fs::read(__private::snapshot_path(&path)).unwrap();
        let out = common::tempdir();
        let wal = std::fs::read(&path).unwrap();
        let p = lay_out(out.path(), "cut", &wal[..synced as usize], Some(&snap));
        let l = LedgerStore::open_with(&p, OpenOptions::new().durability(mode)).unwrap();
        assert!(
            matches!(
                l.open_report().unwrap().snapshot,
                SnapshotOutcome::Loaded { .. }
            ),
            "{mode:?}: {:?}",
            l.open_report().unwrap().snapshot
        );
        l.checkpoint().unwrap();
        let got: Vec<uuid::Uuid> = l.fact_log_all(None, None).iter().map(Fact::id).collect();
        assert_eq!(
            got, ids,
            "{mode:?}: every checkpointed fact survives the power cut"
        );
    }
}

#[test]
fn a_wal_cut_that_fails_through_the_file_layer_fails_the_open_and_keeps_the_bytes() {
    let b = build(4, 2, None);
    let out = common::tempdir();
    let mut w = b.wal.clone();
    w.truncate(w.len() - 5);
    let p = lay_out(out.path(), "cutfail", &w, None);
    let f = FaultFile::open(&p);
    f.set_plan(common::Plan {
        fail_set_len: true,
        ..Default::default()
    });
    let err = LedgerStore::open_with_file(&p, OpenOptions::new(), f.clone())
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Io { context, .. } if context.contains("cutting")),
        "{err}"
    );
    assert_eq!(std::fs::read(&p).unwrap(), w, "the WAL is untouched");
    drop(f);
    // The side file was written before the cut was tried; the next open cuts.
    let l = LedgerStore::open(&p).unwrap();
    assert!(l.open_report().unwrap().torn_tail.is_some());
}

#[test]
fn on_a_full_tmpfs_a_damaged_tail_is_never_cut_without_its_copy() {
    let fs = match common::SmallTmpfs::mount("1m") {
        Ok(fs) => fs,
        Err(reason) => {
            println!(
                "SKIPPED on_a_full_tmpfs_a_damaged_tail_is_never_cut_without_its_copy: {reason}"
            );
            return;
        }
    };
    let b = build(10, 0, None);
    let mut w = b.wal.clone();
    let last = b.commits[8].end as usize;
    w[last + 9] ^= 0x10; // damage in the acknowledged last frame
    let p = lay_out(fs.path(), "full", &w, None);
    // Fill the file system so that the side file cannot be written.
    let filler = fs.path().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![7u8; 4096];
    while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
    drop(file);
    let err = LedgerStore::open(&p).map(|_| ()).unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(28)),
        "expected ENOSPC, got {err}"
    );
    assert_eq!(
        std::fs::read(&p).unwrap(),
        w,
        "no byte of the WAL destroyed"
    );
    std::fs::remove_file(&filler).unwrap();
    let l = LedgerStore::open(&p).unwrap();
    let torn = l.open_report().unwrap().torn_tail.clone().unwrap();
    assert_eq!(std::fs::read(torn.side_file).unwrap(), &w[last..]);
}
