//! kill -9 test of a changefeed consumer. A child process (this test binary, re-executed)
//! opens the ledger, commits facts from a writer thread, and follows the ledger from the
//! cursor it persisted last: for each event it prints `ev <sequence> <fact id>`, then
//! persists the event's cursor (write a temporary file, rename). The parent kills it with
//! SIGKILL at random moments, restarts it, and at the end lets one child drain the rest.
//!
//! Checked: each run resumes exactly at the persisted cursor (the first event it gets is
//! the first fact of its stores after that cursor, and the events of a run are the log's,
//! consecutive, filtered by stores); the cursor each run starts from is the last one the
//! previous run persisted (its last or second-to-last event, depending on where the kill
//! landed); and the runs together cover the whole log. Rounds: `CF_KILL_ROUNDS` (default 8).

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use igniter_ledger::changefeed::{ChangesQuery, Cursor};
use igniter_ledger::{Batch, Durability, LedgerStore, OpenOptions, Value, Write};
use uuid::Uuid;

const CHILD_ENV: &str = "IGNITER_LEDGER_CF_CONSUMER";
const STORES: [&str; 2] = ["orders", "payments"];

fn read_cursor(path: &Path) -> Option<Cursor> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut p = text.split_whitespace();
    let seq = p.next()?.parse().ok()?;
    let ledger = p.next().and_then(|s| Uuid::parse_str(s).ok());
    Some(Cursor::in_ledger(seq, ledger))
}

fn persist_cursor(path: &Path, c: Cursor) {
    let tmp = path.with_extension("tmp");
    let text = format!(
        "{} {}",
        c.sequence,
        c.ledger.map_or_else(|| "-".to_owned(), |u| u.to_string())
    );
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The child: writer thread + consumer. `drain`: no writer; exit once caught up.
fn child(wal: &Path, cursor_file: &Path, drain: bool, seed: u64) {
    let ledger =
        LedgerStore::open_with(wal, OpenOptions::new().durability(Durability::Flush)).unwrap();
    let writer = (!drain).then(|| {
        let l = ledger.clone();
        std::thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(seed);
            for i in 0u64.. {
                let store = STORES[rng.usize(..3).min(1)];
                let r = if rng.u8(..10) == 0 {
                    l.commit(
                        Batch::new()
                            .write(Write::new(
                                "orders",
                                format!("b{seed}-{i}"),
                                Value::Int(i as i64),
                            ))
                            .write(Write::new("other", format!("b{seed}-{i}"), Value::Nil)),
                    )
                    .map(|_| ())
                } else {
                    l.write(Write::new(
                        store,
                        format!("k{}", i % 50),
                        Value::Int(i as i64),
                    ))
                    .map(|_| ())
                };
                if r.is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_micros(rng.u64(50..400)));
            }
        })
    });
    let start = read_cursor(cursor_file);
    let mut q = ChangesQuery::new().stores(STORES);
    if let Some(c) = start {
        q = q.after(c);
    }
    let mut follower = ledger.follow(&q).unwrap();
    let out = std::io::stdout();
    let mut out = out.lock();
    writeln!(out, "\nresume {}", start.map_or(0, |c| c.sequence)).unwrap();
    out.flush().unwrap();
    loop {
        match follower.next_timeout(Duration::from_millis(20)).unwrap() {
            Some(e) => {
                writeln!(out, "ev {} {}", e.sequence(), e.fact_id()).unwrap();
                out.flush().unwrap();
                persist_cursor(cursor_file, e.cursor());
            }
            None if drain => break,
            None => {}
        }
    }
    writeln!(out, "done").unwrap();
    drop(writer);
}

#[test]
#[ignore = "entry point of the consumer child process started by the kill test"]
fn changefeed_consumer_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let p: Vec<&str> = spec.split('|').collect();
    child(
        Path::new(p[0]),
        Path::new(p[1]),
        p[2] == "drain",
        p[3].parse().unwrap(),
    );
}

struct Run {
    resume: Option<u64>,
    events: Vec<(u64, Uuid)>,
}

fn spawn(wal: &Path, cursor_file: &Path, drain: bool, seed: u64) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .args([
            "--exact",
            "changefeed_consumer_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!(
                "{}|{}|{}|{seed}",
                wal.display(),
                cursor_file.display(),
                if drain { "drain" } else { "run" }
            ),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn parse(stdout: impl std::io::Read) -> Run {
    let mut run = Run {
        resume: None,
        events: Vec::new(),
    };
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["resume", c] => run.resume = Some(c.parse().unwrap()),
            ["ev", s, id] => {
                // A line cut by the kill does not parse; the next run re-delivers it.
                if let (Ok(s), Ok(id)) = (s.parse(), Uuid::parse_str(id)) {
                    run.events.push((s, id));
                }
            }
            _ => {}
        }
    }
    run
}

#[test]
fn a_killed_consumer_resumes_exactly_after_its_persisted_cursor() {
    let rounds: u64 = std::env::var("CF_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let wal: PathBuf = dir.path().join("feed.wal");
    let cursor_file = dir.path().join("consumer.cursor");
    let mut rng = fastrand::Rng::with_seed(0xcf);
    let mut runs = Vec::new();
    for round in 0..=rounds {
        let drain = round == rounds;
        let mut c = spawn(&wal, &cursor_file, drain, round);
        let stdout = c.stdout.take().unwrap();
        let reader = std::thread::spawn(move || parse(stdout));
        if drain {
            let t = Instant::now();
            while c.try_wait().unwrap().is_none() {
                assert!(t.elapsed() < Duration::from_secs(120), "drain child hangs");
                std::thread::sleep(Duration::from_millis(10));
            }
        } else {
            std::thread::sleep(Duration::from_millis(rng.u64(5..250)));
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
        runs.push(reader.join().unwrap());
    }
    let ledger = LedgerStore::open(&wal).unwrap();
    let log: Vec<(u64, Uuid)> = ledger
        .changes(&ChangesQuery::new().stores(STORES))
        .unwrap()
        .iter()
        .map(|e| (e.sequence(), e.fact_id()))
        .collect();
    assert!(
        log.len() > 20,
        "the writer committed too little to test anything ({})",
        log.len()
    );
    let mut persisted = 0u64; // what the previous runs can have left in the cursor file
    let mut possible = vec![0u64];
    let mut delivered_runs = 0;
    for (i, run) in runs.iter().enumerate() {
        let Some(resume) = run.resume else {
            assert!(run.events.is_empty());
            continue; // killed before it started following
        };
        assert!(
            possible.contains(&resume),
            "run {i} resumed at {resume}, expected one of {possible:?}"
        );
        let from = log.partition_point(|e| e.0 <= resume);
        let want = &log[from..(from + run.events.len()).min(log.len())];
        assert_eq!(run.events, want, "run {i}: events after cursor {resume}");
        if !run.events.is_empty() {
            delivered_runs += 1;
        }
        // The kill may land between printing an event and persisting its cursor.
        persisted = run.events.last().map_or(resume, |e| e.0);
        let before = if run.events.len() >= 2 {
            run.events[run.events.len() - 2].0
        } else {
            resume
        };
        possible = vec![persisted, before];
    }
    assert_eq!(
        persisted,
        log.last().unwrap().0,
        "the drain run reached the end of the log"
    );
    assert!(
        delivered_runs >= 2,
        "too few runs delivered events to test resuming"
    );
}
