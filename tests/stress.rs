//! Concurrency stress: many threads writing, batching, incrementing a counter with
//! optimistic concurrency, reading and checkpointing at once, on a file-backed `fsync`
//! ledger (group commit), a `flush` one and an in-memory one. Invariants:
//!
//! - commit order is transaction-time order (and id order), strictly;
//! - every acknowledged fact is present exactly once, and nothing else is;
//! - each thread's commits appear in the order they were acknowledged;
//! - causation chains are intact per key;
//! - readers never see half a batch, and the log they see only grows;
//! - optimistic-concurrency increments lose no update;
//! - after close and reopen the log is identical.
//!
//! Scale with `STRESS_OPS` (operations per thread, default 400), e.g.
//! `STRESS_OPS=5000 cargo test --release --test stress -- --nocapture`.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use igniter_ledger::{
    Append, Batch, Durability, Error, Expected, Fact, HistoryQuery, LedgerStore, MapKey,
    OpenOptions, Read, Value, Write,
};
use uuid::Uuid;

const WRITERS: u64 = 3;
const BATCHERS: u64 = 2;
const COUNTERS: u64 = 3;
const READERS: u64 = 2;
const KEYS: u64 = 8;

fn ops() -> u64 {
    std::env::var("STRESS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn tagged(thread: u64, seq: u64, batch: u64, size: usize) -> Value {
    Value::map([
        (MapKey::sym("thread"), Value::Int(thread as i64)),
        (MapKey::sym("seq"), Value::Int(seq as i64)),
        (MapKey::sym("batch"), Value::Int(batch as i64)),
        (MapKey::sym("size"), Value::Int(size as i64)),
    ])
}

fn int(v: &Value, k: &str) -> i64 {
    v.get(&MapKey::sym(k)).and_then(Value::as_i64).unwrap_or(-1)
}

/// Checks that no batch is partly visible in `log`.
fn batches_whole(log: &[Fact]) {
    let mut seen: HashMap<i64, (i64, i64)> = HashMap::new();
    for f in log {
        if f.store() == "counter" {
            continue;
        }
        let v = f.value();
        let b = int(&v, "batch");
        if b > 0 {
            let e = seen.entry(b).or_insert((0, int(&v, "size")));
            e.0 += 1;
        }
    }
    for (b, (n, size)) in seen {
        assert_eq!(n, size, "batch {b} is partly visible: {n} of {size}");
    }
}

/// Strict transaction-time and id order along the log.
fn ordered(log: &[Fact]) {
    for w in log.windows(2) {
        assert!(
            w[0].transaction_time() < w[1].transaction_time(),
            "commit order is transaction-time order"
        );
        assert!(w[0].id() < w[1].id(), "ids follow transaction time");
    }
}

fn stress(l: LedgerStore, checkpoints: bool) -> LedgerStore {
    let n = ops();
    let batch_ids = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let increments = AtomicU64::new(0);
    let conflicts = AtomicU64::new(0);
    let reads = AtomicU64::new(0);
    let checkpoints_done = AtomicU64::new(0);
    // (thread, acknowledged fact ids in order)
    let acked: Vec<(u64, Vec<Uuid>)> = std::thread::scope(|s| {
        let mut hs = Vec::new();
        for t in 0..WRITERS {
            let l = l.clone();
            hs.push(s.spawn(move || {
                let mut ids = Vec::new();
                let mut rng = fastrand::Rng::with_seed(t);
                for i in 0..n {
                    let key = format!("k{}", rng.u64(..KEYS));
                    let f = if i % 4 == 3 {
                        l.append(Append::new("log", tagged(t, i, 0, 1)).partition_key("thread"))
                    } else {
                        l.write(Write::new("kv", key, tagged(t, i, 0, 1)))
                    }
                    .unwrap();
                    ids.push(f.id());
                }
                (t, ids)
            }));
        }
        for t in WRITERS..WRITERS + BATCHERS {
            let (l, batch_ids) = (l.clone(), &batch_ids);
            hs.push(s.spawn(move || {
                let mut ids = Vec::new();
                let mut rng = fastrand::Rng::with_seed(t);
                for i in 0..n / 2 {
                    let size = rng.usize(2..10);
                    let b = batch_ids.fetch_add(1, Ordering::Relaxed) + 1;
                    let mut batch = Batch::new();
                    for _ in 0..size {
                        if rng.bool() {
                            let key = format!("k{}", rng.u64(..KEYS));
                            batch = batch.write(Write::new("kv", key, tagged(t, i, b, size)));
                        } else {
                            batch = batch.append(Append::new("log", tagged(t, i, b, size)));
                        }
                    }
                    ids.extend(l.commit(batch).unwrap().iter().map(Fact::id));
                }
                (t, ids)
            }));
        }
        for c in 0..COUNTERS {
            let t = WRITERS + BATCHERS + c;
            let (l, increments, conflicts) = (l.clone(), &increments, &conflicts);
            hs.push(s.spawn(move || {
                let mut ids = Vec::new();
                for _ in 0..n / 3 {
                    loop {
                        let latest = l.latest("counter", "c");
                        let (expected, next) = match &latest {
                            None => (Expected::Absent, 1),
                            Some(f) => (Expected::Fact(f.id()), f.value().as_i64().unwrap() + 1),
                        };
                        match l
                            .write(Write::new("counter", "c", Value::Int(next)).expected(expected))
                        {
                            Ok(f) => {
                                increments.fetch_add(1, Ordering::Relaxed);
                                ids.push(f.id());
                                break;
                            }
                            Err(Error::Conflict { .. }) => {
                                conflicts.fetch_add(1, Ordering::Relaxed);
                                // The winner may still be waiting for its fsync.
                                std::thread::sleep(std::time::Duration::from_micros(200));
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                (t, ids)
            }));
        }
        let mut side = Vec::new();
        for _ in 0..READERS {
            let (l, done, reads) = (l.clone(), &done, &reads);
            side.push(s.spawn(move || {
                let mut last_len = 0;
                while !done.load(Ordering::Acquire) {
                    let log = l.fact_log_all(None, None);
                    assert!(log.len() >= last_len, "the visible log only grows");
                    last_len = log.len();
                    batches_whole(&log);
                    ordered(&log);
                    // Point reads and histories agree with what the log showed.
                    if let Some(f) = log.last() {
                        assert!(l.fact_by_id(f.id()).is_some());
                        let h = l.history_raw(HistoryQuery::new(f.store()).key(f.key()));
                        assert!(h.iter().any(|g| g.id() == f.id()));
                        let at = l
                            .read_fact(Read::new(f.store(), f.key()).as_of(f.transaction_time()))
                            .unwrap()
                            .unwrap();
                        assert_eq!(at.fact.id(), f.id(), "as_of a fact's time sees that fact");
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(std::time::Duration::from_micros(500));
                }
            }));
        }
        if checkpoints {
            let (l, done, c) = (l.clone(), &done, &checkpoints_done);
            side.push(s.spawn(move || {
                while !done.load(Ordering::Acquire) {
                    let r = l.checkpoint().unwrap();
                    assert!(r.fact_count as usize <= l.fact_count());
                    c.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }));
        }
        let acked = hs.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::Release);
        for h in side {
            h.join().unwrap();
        }
        acked
    });

    let log = l.fact_log_all(None, None);
    ordered(&log);
    batches_whole(&log);
    // Every acknowledged fact exactly once, nothing else; each thread's in its order.
    let position: HashMap<Uuid, usize> = log.iter().enumerate().map(|(i, f)| (f.id(), i)).collect();
    assert_eq!(position.len(), log.len(), "no duplicated facts");
    let mut all = HashSet::new();
    for (t, ids) in &acked {
        let mut prev = None;
        for id in ids {
            let p = *position
                .get(id)
                .unwrap_or_else(|| panic!("thread {t}: {id} was lost"));
            assert!(
                prev < Some(p),
                "thread {t}: acknowledgement order is commit order"
            );
            prev = Some(p);
            assert!(all.insert(*id));
        }
    }
    assert_eq!(all.len(), log.len(), "no fact that nobody acknowledged");
    // Causation chains.
    for store in ["kv", "counter"] {
        let mut last: HashMap<&str, Uuid> = HashMap::new();
        for f in log.iter().filter(|f| f.store() == store) {
            assert_eq!(
                f.causation(),
                last.get(f.key()).copied(),
                "{store}/{}",
                f.key()
            );
            last.insert(f.key(), f.id());
        }
    }
    // No lost update.
    let total = increments.load(Ordering::Relaxed);
    assert_eq!(
        l.read(Read::new("counter", "c")).unwrap(),
        Some(Value::Int(total as i64))
    );
    println!(
        "stress {}: {} facts from {} threads, {} counter increments ({} conflicts retried), \
         {} reader passes, {} checkpoints",
        if l.path().is_some() {
            l.durability().name()
        } else {
            "in-memory"
        },
        log.len(),
        acked.len(),
        total,
        conflicts.load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed),
        checkpoints_done.load(Ordering::Relaxed)
    );
    l
}

fn reopen_is_identical(mode: Durability) {
    // On the real disk in fsync mode, so that fdatasyncs take real time and writers
    // queue up behind them (group commit); tmpfs elsewhere.
    let dir = if mode == Durability::Fsync {
        tempfile::tempdir().unwrap()
    } else {
        common::tempdir()
    };
    let path = dir.path().join("stress.wal");
    let l = LedgerStore::open_with(&path, OpenOptions::new().durability(mode)).unwrap();
    let l = stress(l, true);
    let before = l.fact_log_all(None, None);
    l.close().unwrap();
    drop(l);
    let r = LedgerStore::open(&path).unwrap();
    let report = r.open_report().unwrap();
    assert_eq!(report.torn_tail, None);
    let after = r.fact_log_all(None, None);
    assert_eq!(after.len(), before.len());
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a, b, "identical after reopen");
        assert_eq!(a.value_bytes(), b.value_bytes());
    }
}

#[test]
fn stress_fsync_file_ledger_with_group_commit() {
    reopen_is_identical(Durability::Fsync);
}

#[test]
fn stress_flush_file_ledger() {
    reopen_is_identical(Durability::Flush);
}

#[test]
fn stress_in_memory_ledger() {
    stress(LedgerStore::memory(), false);
}
