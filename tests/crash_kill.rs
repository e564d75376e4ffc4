//! Process-kill crash test. A child process (the code of `tests/support/crash_writer.rs`, run
//! by re-executing this test binary) writes facts, appends, atomic batches and
//! checkpoints from three threads and prints each acknowledged fact; the parent kills it
//! with SIGKILL at a random moment (sometimes before it has even finished opening), then
//! reopens the ledger and checks:
//!
//! - reopening never fails and never reports corruption,
//! - in `fsync` and `flush` modes every acknowledged fact is present (store, key, id),
//! - no batch is partly visible (each fact records its batch id and size),
//! - causation chains are intact (each write of a key names the previous fact of that
//!   key), transaction times strictly increase, ids are unique;
//! - the writer never failed: any error or panic in a writer thread makes the child print
//!   `error ...` and exit with status 3, which fails the round;
//! - the kills landed where they should: the child prints `begin <thread> <kind>` before
//!   each operation and `open-begin`/`opened` around the open, so each kill is classified
//!   by the operations it interrupted (between their start and their acknowledgement);
//!   some rounds kill on purpose as soon as an open, a checkpoint or a batch begins. Each
//!   mode fails unless kills landed inside writes, batches, checkpoints and opens.
//!
//! Rounds per mode: `CRASH_ROUNDS` (default 12). Long soak:
//! `CRASH_ROUNDS=500 cargo test --release --test crash_kill -- --nocapture`.

#[path = "support/crash_writer.rs"]
#[allow(dead_code)]
mod crash_writer;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use igniter_ledger::{Durability, HistoryQuery, LedgerStore, MapKey, OpenOptions, SnapshotOutcome};
use uuid::Uuid;

const CHILD_ENV: &str = "IGNITER_LEDGER_CRASH_WRITER";

// The three tests of this file run on parallel threads of one process, each spawning
// children while the others hold ledgers open. (With `flock` a child forked by one thread
// carried the others' locks until it exec'd, and a guard had to serialize spawning and
// holding; the ledger's record locks are not inherited, so no guard is needed.)
/// A new ledger file every this many rounds keeps replay and checks cheap in long soaks.
const ROUNDS_PER_FILE: u64 = 25;

/// Entry point of the child process; does nothing unless the crash tests started it.
#[test]
#[ignore = "entry point of the writer child process started by the crash tests"]
fn crash_writer_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        eprintln!("crash_writer_child only runs as the child of the crash tests");
        return;
    };
    let mut parts = spec.splitn(3, '|');
    let (mode, seed, path) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    // End the line libtest started, so every ack line starts at a line start.
    println!();
    crash_writer::run(
        Path::new(path),
        Durability::parse(mode).unwrap(),
        seed.parse().unwrap(),
        // Bounded so that an orphaned child stops by itself.
        20_000,
    );
}

struct Ack {
    store: String,
    key: String,
}

#[derive(Default)]
struct Stats {
    rounds: u64,
    acked: u64,
    facts_after_reopen: u64,
    torn_tails: u64,
    torn_bytes: u64,
    snapshots_loaded: u64,
    killed_before_first_ack: u64,
    checkpoints: u64,
    /// Kills that interrupted: a write or append, a batch, a checkpoint, an open.
    kills_in: [u64; 4],
    longest_chain: usize,
}

fn rounds() -> u64 {
    std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

/// One child run killed after `delay`; returns the complete lines it printed.
/// When to kill the child.
enum Kill {
    /// This long after it was started (it may still be opening the ledger).
    AfterStart(Duration),
    /// This long after its first acknowledgement.
    AfterFirstAck(Duration),
    /// As soon as a line for which this returns true is printed (the reader thread sends
    /// SIGKILL the moment it reads the line).
    OnLine(fn(&str) -> bool),
}

const KINDS: [&str; 4] = ["writes", "batches", "checkpoints", "opens"];

/// Which operations a kill interrupted, from the lines the child printed: an open begun
/// and not finished; per thread, an operation begun and not acknowledged.
fn interrupted(lines: &[String]) -> [bool; 4] {
    let mut hit = [false; 4];
    let opened = lines.iter().any(|l| l == "opened");
    hit[3] = lines.iter().any(|l| l == "open-begin") && !opened;
    let mut last: HashMap<String, Option<usize>> = HashMap::new();
    for l in lines {
        let p: Vec<&str> = l.split(' ').collect();
        match p[0] {
            "begin" => {
                let kind = match p[2] {
                    "write" | "append" => 0,
                    "batch" => 1,
                    _ => 2,
                };
                last.insert(p[1].to_owned(), Some(kind));
            }
            "ack" => {
                last.insert(p[6].to_owned(), None);
            }
            "checkpoint" => {
                last.insert(p[2].to_owned(), None);
            }
            _ => {}
        }
    }
    for k in last.values().flatten() {
        hit[*k] = true;
    }
    hit
}

fn run_child(path: &Path, mode: Durability, seed: u64, kill: Kill) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash_writer_child",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(
            CHILD_ENV,
            format!("{}|{seed}|{}", mode.name(), path.display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (first_tx, first_rx) = std::sync::mpsc::channel::<()>();
    let on_line = match kill {
        Kill::OnLine(f) => Some(f),
        _ => None,
    };
    let pid = child.id() as libc::pid_t;
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                // A line cut by the kill has no newline: it was never a complete ack.
                Ok(_) if buf.last() == Some(&b'\n') => {
                    if buf.starts_with(b"ack ") {
                        let _ = first_tx.send(());
                    }
                    let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                    if on_line.is_some_and(|f| f(&line)) {
                        // SAFETY: a signal to our own child, which has not been reaped.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    lines.push(line);
                }
                Ok(_) => break,
            }
        }
        lines
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut start = Instant::now();
    let delay = match kill {
        Kill::AfterStart(d) => d,
        Kill::OnLine(_) => Duration::from_secs(30),
        Kill::AfterFirstAck(d) => {
            // Wait (bounded) for the first acknowledgement, then start the clock.
            let _ = first_rx.recv_timeout(Duration::from_secs(60));
            start = Instant::now();
            d
        }
    };
    while start.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill(); // SIGKILL
    let status = child.wait().unwrap();
    let lines = reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    assert!(
        status.code().is_none() || status.success(),
        "the writer failed before it was killed ({status}):\n{stderr}"
    );
    if let Some(e) = lines.iter().find(|l| l.starts_with("error ")) {
        panic!("the writer reported a failure: {e}\n{stderr}");
    }
    lines
}

fn int(v: &igniter_ledger::Value, k: &str) -> i64 {
    v.get(&MapKey::sym(k))
        .and_then(|x| x.as_i64())
        .unwrap_or(-1)
}

/// Reopens and checks every invariant.
fn verify(path: &Path, mode: Durability, acked: &HashMap<Uuid, Ack>, stats: &mut Stats) {
    let ledger = LedgerStore::open_with(path, OpenOptions::new().durability(mode))
        .unwrap_or_else(|e| panic!("reopen after a kill must not fail: {e}"));
    let report = ledger.open_report().unwrap().clone();
    assert_eq!(report.recovered, None, "a kill never produces corruption");
    if let Some(t) = &report.torn_tail {
        stats.torn_tails += 1;
        stats.torn_bytes += t.bytes;
    }
    if matches!(report.snapshot, SnapshotOutcome::Loaded { .. }) {
        stats.snapshots_loaded += 1;
    }
    assert!(
        !matches!(report.snapshot, SnapshotOutcome::Ignored { .. }),
        "the snapshot is written atomically, so a kill never damages it: {:?}",
        report.snapshot
    );

    // Every acknowledged fact survived (fsync and flush modes).
    if mode != Durability::None {
        for (id, a) in acked {
            let f = ledger.fact_by_id(*id).unwrap_or_else(|| {
                panic!("acknowledged fact {id} ({}/{}) was lost", a.store, a.key)
            });
            assert_eq!((f.store(), f.key()), (a.store.as_str(), a.key.as_str()));
        }
    }

    let all = ledger.fact_log_all(None, None);
    stats.facts_after_reopen = all.len() as u64;
    // Ids unique, transaction times strictly increasing.
    let mut ids = HashSet::new();
    for w in all.windows(2) {
        assert!(w[0].transaction_time() < w[1].transaction_time());
    }
    // No batch partly visible.
    let mut batches: HashMap<i64, (i64, i64)> = HashMap::new();
    for f in &all {
        assert!(ids.insert(f.id()), "duplicate fact id {}", f.id());
        let v = f.value();
        let (b, size) = (int(&v, "batch"), int(&v, "size"));
        if b != 0 {
            let e = batches.entry(b).or_insert((0, size));
            e.0 += 1;
            assert_eq!(e.1, size);
        }
    }
    for (b, (n, size)) in &batches {
        assert_eq!(n, size, "batch {b} is partly visible: {n} of {size} facts");
    }
    // Causation chains intact.
    for k in 0..crash_writer::KEYS {
        let key = format!("k{k}");
        let chain = ledger.causation_chain("kv", &key);
        stats.longest_chain = stats.longest_chain.max(chain.len());
        for (i, e) in chain.iter().enumerate() {
            let expected = (i > 0).then(|| chain[i - 1].id);
            assert_eq!(
                e.causation, expected,
                "causation chain of kv/{key} broken at {i}"
            );
        }
        assert_eq!(
            ledger
                .history_raw(HistoryQuery::new("kv").key(key.as_str()))
                .len(),
            chain.len()
        );
    }
    ledger.close().unwrap();
}

fn crash_rounds(mode: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let rounds = rounds();
    let mut rng = fastrand::Rng::new();
    let seed0 = rng.u64(..1 << 20);
    let mut stats = Stats::default();
    let mut acked: HashMap<Uuid, Ack> = HashMap::new();
    let started = Instant::now();
    for round in 0..rounds {
        let path = dir
            .path()
            .join(format!("crash-{}.wal", round / ROUNDS_PER_FILE));
        if round % ROUNDS_PER_FILE == 0 {
            acked.clear();
        }
        // Some rounds kill at a random moment, the others as soon as an open (of a file
        // with data), a checkpoint, a batch or a write begins.
        let kill = match (round % ROUNDS_PER_FILE != 0, round % 5) {
            (true, 1) => Kill::OnLine(|l| l == "open-begin"),
            (_, 4) => Kill::OnLine(|l| l.starts_with("begin ") && l.ends_with(" write")),
            (_, 2) => Kill::OnLine(|l| l.starts_with("begin ") && l.ends_with(" checkpoint")),
            (_, 3) => Kill::OnLine(|l| l.starts_with("begin ") && l.ends_with(" batch")),
            _ => match rng.u8(..10) {
                0 => Kill::AfterStart(Duration::from_millis(rng.u64(..40))),
                _ => Kill::AfterFirstAck(Duration::from_millis(rng.u64(..250))),
            },
        };
        let seed = seed0 + round;
        let lines = run_child(&path, mode, seed, kill);
        for (k, hit) in interrupted(&lines).into_iter().enumerate() {
            stats.kills_in[k] += hit as u64;
        }
        let mut got = 0;
        for l in &lines {
            let mut p = l.split(' ');
            match p.next() {
                Some("ack") => {
                    let id: Uuid = p.next().unwrap().parse().unwrap();
                    let store = p.next().unwrap().to_owned();
                    let key = p.next().unwrap().to_owned();
                    acked.insert(id, Ack { store, key });
                    got += 1;
                }
                Some("checkpoint") => stats.checkpoints += 1,
                _ => {}
            }
        }
        if got == 0 {
            stats.killed_before_first_ack += 1;
        }
        stats.acked += got;
        stats.rounds += 1;
        verify(&path, mode, &acked, &mut stats);
    }
    println!(
        "crash_kill {}: {} rounds in {:.1?} (seeds {}..{}), {} acknowledged facts ({}), \
         {} kills before the first ack, {} torn tails cut ({} bytes), {} reopens from a \
         snapshot, {} checkpoints, longest causation chain {}; kills inside {}",
        mode.name(),
        stats.rounds,
        started.elapsed(),
        seed0,
        seed0 + rounds,
        stats.acked,
        if mode == Durability::None {
            "not promised in this mode"
        } else {
            "all present after reopen"
        },
        stats.killed_before_first_ack,
        stats.torn_tails,
        stats.torn_bytes,
        stats.snapshots_loaded,
        stats.checkpoints,
        stats.longest_chain,
        KINDS
            .iter()
            .zip(stats.kills_in)
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    assert!(stats.facts_after_reopen > 0 || stats.acked == 0);
    for (k, n) in KINDS.iter().zip(stats.kills_in) {
        assert!(
            n > 0,
            "no kill landed inside any of the {k} in {} rounds",
            stats.rounds
        );
    }
}

#[test]
fn kill_9_fsync_mode_loses_no_acknowledged_fact() {
    crash_rounds(Durability::Fsync);
}

#[test]
fn kill_9_flush_mode_loses_no_acknowledged_fact() {
    crash_rounds(Durability::Flush);
}

#[test]
fn kill_9_none_mode_reopens_to_a_consistent_prefix() {
    crash_rounds(Durability::None);
}
