//! Process-kill crash test of a segmented ledger. A child process (this test binary,
//! re-executed) writes batches over three stores — each fact records its batch number —
//! rotating segments by size and sealing now and then, and prints each acknowledged
//! batch; the parent kills it with SIGKILL at a random moment, reopens, and checks:
//!
//! - reopening never fails;
//! - every acknowledged batch is present, whole (`flush` durability, and `fsync` with its
//!   preallocated space: a process crash);
//! - no batch is partly present: each batch number has 0 or 3 facts, across the three
//!   stores' different segment files (the commit journal's promise).
//!
//! Rounds per codec: `SEGMENT_CRASH_ROUNDS` (default 6).

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use igniter_ledger::segments::{SegmentCodec, SegmentOptions};
use igniter_ledger::{Batch, Durability, LedgerStore, MapKey, Value, Write};

const CHILD_ENV: &str = "IGNITER_SEGMENT_CRASH_WRITER";

/// `codec` or `codec@durability` (`frames@fsync`: live segments keep zero-filled space
/// ahead, which a kill leaves behind).
fn opts(codec: &str) -> SegmentOptions {
    let (codec, durability) = codec.split_once('@').unwrap_or((codec, "flush"));
    SegmentOptions::new()
        .durability(Durability::parse(durability).unwrap())
        .codec(SegmentCodec::parse(codec).unwrap())
        .max_bytes(4096)
        .unwrap()
}

/// Entry point of the child process; does nothing unless the crash test started it.
#[test]
#[ignore = "entry point of the writer child process started by the crash test"]
fn segment_crash_writer_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (codec, rest) = spec.split_once('|').unwrap();
    let (start, path) = rest.split_once('|').unwrap();
    let start: i64 = start.parse().unwrap();
    println!();
    let l = LedgerStore::open_segmented(path, opts(codec)).unwrap();
    println!("opened");
    for i in start.. {
        let mut b = Batch::new();
        for s in ["alpha", "beta", "gamma"] {
            b = b.write(Write::new(
                s,
                format!("k{}", i % 13),
                Value::map([(MapKey::sym("batch"), Value::Int(i))]),
            ));
        }
        l.commit(b).unwrap();
        println!("ack {i}");
        if i % 17 == 0 {
            l.seal_segments().unwrap();
        }
    }
}

fn batches(root: &Path, codec: &str) -> BTreeMap<i64, usize> {
    let l = LedgerStore::open_segmented(root, opts(codec)).expect("reopen never fails");
    let mut n = BTreeMap::new();
    for f in l.fact_log_all(None, None) {
        if let Some(Value::Int(b)) = f.value().get_sym("batch") {
            *n.entry(*b).or_insert(0) += 1;
        }
    }
    l.close().unwrap();
    n
}

#[test]
fn kill_9_never_splits_a_multi_store_batch_or_loses_an_acknowledged_one() {
    let rounds: u64 = std::env::var("SEGMENT_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    for codec in ["frames", "compact", "frames@fsync"] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("seg");
        let mut acked: HashSet<i64> = HashSet::new();
        let mut next = 0i64;
        let mut killed_mid_run = 0;
        for round in 0..rounds {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "segment_crash_writer_child",
                    "--nocapture",
                    "--test-threads=1",
                    "-q",
                ])
                .env(CHILD_ENV, format!("{codec}|{next}|{}", root.display()))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let out = child.stdout.take().unwrap();
            let delay = Duration::from_millis(20 + fastrand::u64(..150) + round * 7);
            let reader = std::thread::spawn(move || {
                let mut acks = Vec::new();
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(n) = line.strip_prefix("ack ") {
                        acks.push(n.trim().parse::<i64>().unwrap());
                    }
                }
                acks
            });
            let t = Instant::now();
            while t.elapsed() < delay {
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            let acks = reader.join().unwrap();
            if !acks.is_empty() {
                killed_mid_run += 1;
            }
            acked.extend(acks);
            let seen = batches(&root, codec);
            for (b, n) in &seen {
                assert_eq!(*n, 3, "{codec}: batch {b} is split ({n} of 3 facts)");
            }
            for b in &acked {
                assert!(seen.contains_key(b), "{codec}: acknowledged batch {b} lost");
            }
            next = seen.keys().next_back().map_or(0, |b| b + 1).max(next);
        }
        assert!(killed_mid_run > 0, "{codec}: no kill landed while writing");
    }
}
