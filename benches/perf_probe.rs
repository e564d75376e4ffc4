//! Single-path probes used to profile the core (the commit messages of the perf changes
//! quote them): one operation in a loop, nothing else, so `perf record` and
//! `valgrind --tool=callgrind --toggle-collect=...` see only that path.
//!
//! A benchmark tool, not a criterion bench: `cargo bench` runs it with no probe named,
//! and it then only prints its usage.
//!
//! ```text
//! cargo bench --bench perf_probe -- write 1000000          # in-memory writes
//! cargo bench --bench perf_probe -- batch 1000000          # in-memory batches of 1,000
//! cargo bench --bench perf_probe -- read 1000000           # current reads
//! cargo bench --bench perf_probe -- baseline 1000000       # building + dropping the requests only
//! cargo bench --bench perf_probe -- reopen 1000000         # write a WAL, then time its reopen
//! cargo bench --bench perf_probe -- mkwal 1000000 /tmp/p.wal
//! cargo bench --bench perf_probe -- open 0 /tmp/p.wal      # reopen an existing WAL
//! cargo bench --bench perf_probe -- register 0 /tmp/p.wal  # scope registration, partition and scope-history builds
//! cargo bench --no-run --bench perf_probe                  # prints the binary's path, for perf/valgrind:
//! valgrind --tool=callgrind --toggle-collect='igniter_ledger::ledger::recovery::load' \
//!     target/release/deps/perf_probe-<hash> reopen 100000
//! ```
use igniter_ledger::*;
use std::time::Instant;

fn task_value(key: &str, n: i64, status: &str) -> Value {
    Value::map([
        (MapKey::sym("status"), Value::sym(status)),
        (MapKey::sym("title"), Value::from(format!("Task {key}"))),
        (MapKey::sym("n"), Value::Int(n)),
        (
            MapKey::sym("owner"),
            Value::from(format!("user-{}", n % 97)),
        ),
    ])
}

fn main() {
    // `cargo bench` passes `--bench` (and filters); only the probe name and numbers count.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let what = args.first().cloned().unwrap_or_default();
    let n: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(1_000_000);
    match what.as_str() {
        "write" => {
            let l = LedgerStore::memory();
            let vals: Vec<(String, Value)> = (0..n)
                .map(|i| {
                    let k = format!("task-{i}");
                    let v = task_value(&k, i as i64, "open");
                    (k, v)
                })
                .collect();
            let t = Instant::now();
            for (k, v) in vals {
                l.write(Write::new("tasks", k, v)).unwrap();
            }
            let s = t.elapsed().as_secs_f64();
            println!("memory write {:.0}/s", n as f64 / s);
        }
        "batch" => {
            let l = LedgerStore::memory();
            let vals: Vec<(String, Value)> = (0..n)
                .map(|i| {
                    let k = format!("task-{i}");
                    let v = task_value(&k, i as i64, "open");
                    (k, v)
                })
                .collect();
            let mut batches = Vec::new();
            let mut it = vals.into_iter();
            loop {
                let mut b = Batch::new();
                for (k, v) in it.by_ref().take(1000) {
                    b = b.write(Write::new("tasks", k, v));
                }
                if b.is_empty() {
                    break;
                }
                batches.push(b);
            }
            let t = Instant::now();
            for b in batches {
                l.commit(b).unwrap();
            }
            let s = t.elapsed().as_secs_f64();
            println!("memory batch {:.0} facts/s", n as f64 / s);
        }
        "register" => {
            let p = std::path::PathBuf::from(args.get(2).expect("a WAL path"));
            let l = LedgerStore::open(&p).unwrap();
            let t = Instant::now();
            l.register_path(
                AccessPath::scope("tasks", "flag")
                    .filter(MapKey::sym("status"), Value::sym("flagged")),
            )
            .unwrap();
            let a = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let s = l
                .history_partition(PartitionQuery::new("tasks", "owner", "user-1"))
                .unwrap();
            let b = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let q = l.query("tasks", "flag", Some(Timestamp::now())).unwrap();
            let c = t.elapsed().as_secs_f64();
            println!("register scope {:.1} ms, build partition {:.1} ms ({} facts), first scope as_of {:.1} ms ({})", a * 1e3, b * 1e3, s.len(), c * 1e3, q.len());
            std::mem::forget(l);
        }
        "baseline" => {
            let vals: Vec<(String, Value)> = (0..n)
                .map(|i| {
                    let k = format!("task-{i}");
                    let v = task_value(&k, i as i64, "open");
                    (k, v)
                })
                .collect();
            let t = Instant::now();
            for (k, v) in vals {
                std::hint::black_box(Write::new("tasks", k, v));
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "baseline (build + drop the request) {:.0}/s  {:.0} ns each",
                n as f64 / s,
                s * 1e9 / n as f64
            );
        }
        "reopen" => {
            let dir = std::env::temp_dir().join(format!("probe-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let p = dir.join("l.wal");
            {
                let l = LedgerStore::open_with(&p, OpenOptions::new().durability(Durability::None))
                    .unwrap();
                let mut i = 0;
                while i < n {
                    let mut b = Batch::new();
                    for j in i..(i + 1000).min(n) {
                        let k = format!("task-{j}");
                        b = b.write(Write::new(
                            "tasks",
                            k.clone(),
                            task_value(&k, j as i64, "open"),
                        ));
                    }
                    l.commit(b).unwrap();
                    i += 1000;
                }
                l.close().unwrap();
            }
            let t = Instant::now();
            let l = LedgerStore::open(&p).unwrap();
            let s = t.elapsed().as_secs_f64();
            println!(
                "reopen {} facts {:.0}/s ({:.3}s)",
                l.fact_count(),
                n as f64 / s,
                s
            );
            drop(l);
            std::fs::remove_dir_all(&dir).unwrap();
        }
        "mkwal" => {
            let p = std::path::PathBuf::from(args.get(2).expect("a WAL path"));
            let l = LedgerStore::open_with(&p, OpenOptions::new().durability(Durability::None))
                .unwrap();
            let mut i = 0;
            while i < n {
                let mut b = Batch::new();
                for j in i..(i + 1000).min(n) {
                    let k = format!("task-{j}");
                    b = b.write(Write::new(
                        "tasks",
                        k.clone(),
                        task_value(&k, j as i64, "open"),
                    ));
                }
                l.commit(b).unwrap();
                i += 1000;
            }
            l.close().unwrap();
        }
        "open" => {
            let p = std::path::PathBuf::from(args.get(2).expect("a WAL path"));
            let t = Instant::now();
            let l = LedgerStore::open(&p).unwrap();
            let s = t.elapsed().as_secs_f64();
            println!(
                "open {} facts {:.0}/s ({:.3}s)",
                l.fact_count(),
                l.fact_count() as f64 / s,
                s
            );
            std::mem::forget(l);
        }
        "read" => {
            let l = LedgerStore::memory();
            for i in 0..n {
                let k = format!("task-{i}");
                l.write(Write::new(
                    "tasks",
                    k.clone(),
                    task_value(&k, i as i64, "open"),
                ))
                .unwrap();
            }
            let keys: Vec<String> = (0..1_000_000)
                .map(|i| format!("task-{}", (i * 7919) % n))
                .collect();
            let t = Instant::now();
            for k in &keys {
                std::hint::black_box(l.read(Read::new("tasks", k.as_str())).unwrap());
            }
            println!(
                "read {:.0}/s",
                keys.len() as f64 / t.elapsed().as_secs_f64()
            );
        }
        _ => eprintln!(
            "usage: perf_probe write|batch|read|baseline|reopen N | mkwal|open|register N PATH"
        ),
    }
}
