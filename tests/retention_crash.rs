//! Kill -9 inside compaction, exact prune and erasure. A child process (this test
//! binary re-executed) builds a ledger, then runs a writer thread while its main thread
//! compacts, prunes and erases in a loop, printing every acknowledged fact; the parent
//! kills it with SIGKILL at a random moment, reopens the ledger and checks that what it
//! finds is a state before or after each rewrite, never a mix:
//!
//! - reopening never fails; no file is left beside the WAL and its snapshot;
//! - an acknowledged fact is present unless a receipt present on disk accounts for it
//!   (a newer fact of its key, for the ephemeral store; a prune receipt listing it);
//! - every prune receipt's facts are absent, every compaction receipt's dropped ids are
//!   absent;
//! - every erasure receipt's facts are tombstones, every tombstone is listed by an
//!   erasure receipt, and no erased value's bytes appear in any file of the directory.
//!
//! Rounds: `RETENTION_CRASH_ROUNDS` (default 8).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use igniter_ledger::retention::{
    Erase, Prune, RetentionPolicy, COMPACTION_RECEIPTS, ERASURE_RECEIPTS, PRUNE_RECEIPTS,
};
use igniter_ledger::{
    Append, Batch, Durability, HistoryQuery, LedgerStore, MapKey, OpenOptions, Value, Write,
};
use uuid::Uuid;

const CHILD_ENV: &str = "IGNITER_LEDGER_RETENTION_CHILD";

fn marker(seed: u64, i: u64) -> String {
    format!("PII-{seed}-{i}-MARKER")
}

#[test]
#[ignore = "entry point of the child process started by the retention crash test"]
fn retention_crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, '|');
    let (mode, seed, path) = (
        Durability::parse(parts.next().unwrap()).unwrap(),
        parts.next().unwrap().parse::<u64>().unwrap(),
        parts.next().unwrap().to_owned(),
    );
    println!();
    let l = LedgerStore::open_with(&path, OpenOptions::new().durability(mode)).unwrap();
    l.set_retention("hot", RetentionPolicy::ephemeral())
        .unwrap();
    let pad = "p".repeat(300);
    for b in 0..20 {
        let mut batch = Batch::new();
        for i in 0..500 {
            batch = batch.write(Write::new(
                "hot",
                format!("h{}", (b * 500 + i) % 200),
                Value::map([
                    (MapKey::sym("i"), Value::Int(i)),
                    (MapKey::sym("pad"), Value::from(pad.as_str())),
                ]),
            ));
        }
        l.commit(batch).unwrap();
    }
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let logs: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let pii: Arc<Mutex<Vec<u64>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (l, out, logs, pii, stop) = (
            l.clone(),
            out.clone(),
            logs.clone(),
            pii.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            let pad = "w".repeat(200);
            for i in 0..1_000_000u64 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let h = l
                    .write(Write::new(
                        "hot",
                        format!("h{}", i % 200),
                        Value::map([
                            (MapKey::sym("i"), Value::Int(i as i64)),
                            (MapKey::sym("pad"), Value::from(pad.as_str())),
                        ]),
                    ))
                    .unwrap();
                let g = l.append(Append::new("log", Value::Int(i as i64))).unwrap();
                let p = l
                    .write(Write::new(
                        "pii",
                        format!("p{i}"),
                        Value::from(marker(seed, i)),
                    ))
                    .unwrap();
                logs.lock().unwrap().push(g.id());
                pii.lock().unwrap().push(i);
                let mut o = out.lock().unwrap();
                writeln!(
                    o,
                    "ACK hot {} {} h{}",
                    h.id(),
                    h.transaction_time().as_micros(),
                    i % 200
                )
                .unwrap();
                writeln!(o, "ACK log {}", g.id()).unwrap();
                writeln!(o, "ACK pii {} {i}", p.id()).unwrap();
                o.flush().unwrap();
            }
        })
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..10_000 {
        l.compact(None).unwrap();
        let ids: Vec<String> = {
            let logs = logs.lock().unwrap();
            if logs.is_empty() {
                Vec::new()
            } else {
                (0..3)
                    .map(|_| logs[rng.usize(..logs.len())].to_string())
                    .collect()
            }
        };
        if !ids.is_empty() {
            l.prune_fact_ids(Prune::new(ids, Value::sym("crash_test")))
                .unwrap();
        }
        let victim = {
            let pii = pii.lock().unwrap();
            (!pii.is_empty()).then(|| pii[rng.usize(..pii.len())])
        };
        if let Some(i) = victim {
            l.erase(Erase::key("pii", format!("p{i}"), Value::sym("crash_test")))
                .unwrap();
        }
        if rng.u8(..) < 40 {
            l.checkpoint().unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
}

fn ids_in(v: &Value, list: &str) -> Vec<Uuid> {
    match v.get_sym(list) {
        Some(Value::Array(refs)) => refs
            .iter()
            .filter_map(|r| match r.get_sym("id") {
                Some(Value::Str(s)) => Uuid::try_parse(s).ok(),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn dir_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        out.extend(std::fs::read(e.unwrap().path()).unwrap());
    }
    out
}

fn one_round(round: u64, mode: Durability) -> (usize, usize, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.wal");
    let seed = 1000 + round;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "retention_crash_child",
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
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let mut rng = fastrand::Rng::with_seed(round);
    std::thread::sleep(Duration::from_millis(300 + rng.u64(..2500)));
    let _ = child.kill();
    let _ = child.wait();
    let lines = reader.join().unwrap();

    let mid = dir.path().join("c.wal.rewrite.tmp").exists() as usize;
    let l = LedgerStore::open(&path).expect("reopen after kill -9");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // Reopen keeps a torn final frame aside as `c.wal.torn-<offset>` (recovery's side
    // file for a write the kill interrupted); anything else would be a leftover.
    assert!(
        names
            .iter()
            .all(|n| n == "c.wal" || n == "c.wal.snap" || n.starts_with("c.wal.torn-")),
        "leftover files: {names:?}"
    );
    let present = |id: Uuid| l.fact_by_id(id);
    let mut pruned: HashSet<Uuid> = HashSet::new();
    for r in l.history_raw(HistoryQuery::new(PRUNE_RECEIPTS)) {
        for id in ids_in(&r.value(), "pruned_fact_refs") {
            assert!(
                present(id).is_none(),
                "pruned {id} present beside its receipt"
            );
            pruned.insert(id);
        }
    }
    for r in l.history_raw(HistoryQuery::new(COMPACTION_RECEIPTS)) {
        let v = r.value();
        for f in ["oldest_dropped", "newest_dropped"] {
            if let Some(Value::Str(s)) = v.get_sym(f) {
                let id = Uuid::try_parse(s).unwrap();
                assert!(
                    present(id).is_none(),
                    "compacted {id} present beside its receipt"
                );
            }
        }
    }
    let mut erased: HashSet<Uuid> = HashSet::new();
    for r in l.history_raw(HistoryQuery::new(ERASURE_RECEIPTS)) {
        for id in ids_in(&r.value(), "erased_fact_refs") {
            let f = present(id).expect("an erased fact stays as a tombstone");
            assert!(f.is_erased(), "{id} listed as erased but holds its value");
            erased.insert(id);
        }
    }
    let bytes = dir_bytes(dir.path());
    let (mut acked, mut gone, mut tomb) = (0, 0, 0);
    for line in &lines {
        let p: Vec<&str> = line.split(' ').collect();
        if p.first() != Some(&"ACK") {
            continue;
        }
        acked += 1;
        let id = Uuid::try_parse(p[2]).unwrap();
        match p[1] {
            "hot" if present(id).is_none() => {
                gone += 1;
                let tx: i64 = p[3].parse().unwrap();
                let latest = l
                    .latest("hot", p[4])
                    .expect("a compacted key keeps its latest");
                assert!(
                    latest.transaction_time().as_micros() > tx,
                    "hot {id} dropped while latest"
                );
            }
            "log" if present(id).is_none() => {
                gone += 1;
                assert!(
                    pruned.contains(&id),
                    "log {id} gone without a prune receipt"
                );
            }
            "pii" => {
                let f = present(id).expect("pii facts are never removed");
                if f.is_erased() {
                    tomb += 1;
                    assert!(erased.contains(&id), "{id} erased without a receipt");
                    let i: u64 = p[3].parse().unwrap();
                    let m = marker(seed, i);
                    assert!(
                        !bytes.windows(m.len()).any(|w| w == m.as_bytes()),
                        "erased value {m} still in a file"
                    );
                }
            }
            _ => {}
        }
    }
    for f in l.history_raw(HistoryQuery::new("pii")) {
        if f.is_erased() {
            assert!(
                erased.contains(&f.id()),
                "tombstone {} without a receipt",
                f.id()
            );
        }
    }
    (acked, gone, tomb, mid)
}

#[test]
fn kill_9_inside_compaction_prune_and_erasure() {
    let rounds: u64 = std::env::var("RETENTION_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut totals = (0, 0, 0);
    let mut mid = 0;
    let mut per_mode: HashMap<&str, u64> = HashMap::new();
    for round in 0..rounds {
        let mode = if round % 2 == 0 {
            Durability::Flush
        } else {
            Durability::Fsync
        };
        let (a, g, t, m) = one_round(round, mode);
        mid += m;
        totals = (totals.0 + a, totals.1 + g, totals.2 + t);
        *per_mode.entry(mode.name()).or_default() += 1;
    }
    eprintln!(
        "retention crash: {rounds} rounds {per_mode:?}; acknowledged {}, removed by receipts {}, tombstones {}; killed with a new generation half written: {mid}",
        totals.0, totals.1, totals.2
    );
    assert!(totals.0 > 0, "the child never acknowledged a fact");
    assert!(
        totals.1 > 0 && totals.2 > 0,
        "no rewrite completed before the kills"
    );
}
