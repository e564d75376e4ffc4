//! Segmented storage against the single-WAL store, side by side in one run:
//!
//! 1. disk bytes per fact on a GPS-like workload (4-field values, 1,000 keys): the WAL,
//!    the `ledger_frames` and the `ledger_compact_zlib` segment codecs;
//! 2. write cost: one fact per commit, single writer, in each durability mode, the two
//!    stores alternated round by round (median of the rounds);
//! 3. open time of a cleanly closed store of N facts;
//! 4. RSS growth of a fresh process that opens the store, per fact (the child process is
//!    this binary re-executed with `--rss <kind> <path>`).
//!
//! `cargo bench --bench segments -- [N] [dir] [--no-cost]` (N defaults to 1000000; dir
//! to `target/segments-bench`, removed at the end; `--no-cost` skips part 2;
//! `SEG_KINDS=wal,frames` limits parts 1, 3 and 4 to those stores).
//!
//! The open time and RSS of a segmented store are those of a store closed cleanly (every
//! segment sealed, with its index): its facts are located (values stay in the files).
//!
//! `cargo bench --bench segments -- --write [ROUNDS] [dir] [none,flush,fsync]` runs only
//! part 2 (the write cost), with ROUNDS rounds (default 5) per mode; the facts per round
//! are 100,000 (`none`), 50,000 (`flush`) and 1,000 (`fsync`), or
//! `SEGMENTS_BENCH_FACTS` for all modes. `SEGMENTS_BENCH_KINDS=wal` (or `frames`) runs one
//! store kind only (for instruction counts under callgrind, one kind per run).

use std::path::{Path, PathBuf};
use std::time::Instant;

use igniter_ledger::segments::{SegmentCodec, SegmentOptions};
use igniter_ledger::{Durability, LedgerStore, MapKey, OpenOptions, Value, Write};

fn gps(i: usize) -> Value {
    Value::map([
        (
            MapKey::sym("lat"),
            Value::Float(34.052 + (i % 97) as f64 * 1e-4),
        ),
        (
            MapKey::sym("lng"),
            Value::Float(-118.243 - (i % 89) as f64 * 1e-4),
        ),
        (MapKey::sym("accuracy_m"), Value::Float(10.0)),
        (MapKey::sym("battery_pct"), Value::Int(85 - (i % 50) as i64)),
    ])
}

fn open(kind: &str, path: &Path, d: Durability) -> LedgerStore {
    match kind {
        "wal" => LedgerStore::open_with(path, OpenOptions::new().durability(d)).unwrap(),
        "frames" => LedgerStore::open_segmented(
            path,
            SegmentOptions::new()
                .durability(d)
                .codec(SegmentCodec::Frames),
        )
        .unwrap(),
        _ => LedgerStore::open_segmented(
            path,
            SegmentOptions::new()
                .durability(d)
                .codec(SegmentCodec::Compact),
        )
        .unwrap(),
    }
}

/// Bytes of the files under `p` whose names end (`index`) or do not end in `.index`.
fn disk_bytes_of(p: &Path, index: bool) -> u64 {
    if p.is_file() {
        let is_index = p.to_string_lossy().ends_with(".index");
        return if is_index == index {
            std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
        } else {
            0
        };
    }
    let mut n = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        n += disk_bytes_of(&e.path(), index);
    }
    n
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn child_rss(kind: &str, path: &Path) {
    let before = rss_kb();
    let t = Instant::now();
    let l = open(kind, path, Durability::Flush);
    let secs = t.elapsed().as_secs_f64();
    let after = rss_kb();
    println!("{} {} {secs}", l.fact_count(), (after - before) * 1024);
    l.close().unwrap();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let no_cost = all.iter().any(|a| a == "--no-cost");
    let args: Vec<String> = all
        .into_iter()
        .filter(|a| a != "--bench" && a != "--no-cost")
        .collect();
    if args.first().map(String::as_str) == Some("--rss") {
        child_rss(&args[1], Path::new(&args[2]));
        return;
    }
    if args.first().map(String::as_str) == Some("--write") {
        let rounds = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
        let dir = PathBuf::from(
            args.get(2)
                .cloned()
                .unwrap_or("target/segments-bench".into()),
        );
        let modes: Vec<Durability> = args
            .get(3)
            .map(|m| {
                m.split(',')
                    .map(|x| Durability::parse(x).unwrap())
                    .collect()
            })
            .unwrap_or(vec![Durability::None, Durability::Flush, Durability::Fsync]);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write_cost(&dir, rounds, &modes);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let n: usize = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = PathBuf::from(
        args.get(1)
            .cloned()
            .unwrap_or("target/segments-bench".into()),
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    println!("# segments bench, N = {n}");

    // 1 + 3 + 4: build each store with N facts, then open it in a fresh process.
    println!("\n| store | disk B/fact | + index B/fact | write N (flush mode) | open (fresh process) | RSS growth B/fact |");
    println!("|---|---|---|---|---|---|");
    let kinds = std::env::var("SEG_KINDS").unwrap_or("wal,frames,compact".into());
    for kind in kinds.split(',') {
        let path = dir.join(kind);
        let l = open(kind, &path, Durability::Flush);
        let t = Instant::now();
        for i in 0..n {
            l.write(Write::new("gps", format!("tech_{}", i % 1000), gps(i)))
                .unwrap();
        }
        let write_s = t.elapsed().as_secs_f64();
        l.close().unwrap();
        drop(l);
        let bytes = disk_bytes_of(&path, false);
        let index_bytes = disk_bytes_of(&path, true);
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--rss", kind, &path.to_string_lossy()])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout);
        let mut it = s.split_whitespace();
        let facts: f64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN);
        let rss: f64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN);
        let open_s: f64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN);
        println!(
            "| {kind} | {:.1} | {:.1} | {:.2} s ({:.0} facts/s) | {:.0} ms | {:.0} |",
            bytes as f64 / n as f64,
            index_bytes as f64 / n as f64,
            write_s,
            n as f64 / write_s,
            open_s * 1e3,
            rss / facts
        );
        std::fs::remove_dir_all(&path)
            .or_else(|_| std::fs::remove_file(&path))
            .ok();
    }

    if no_cost {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    // 2: write cost per durability mode, alternating WAL and segmented round by round.
    write_cost(
        &dir,
        5,
        &[Durability::None, Durability::Flush, Durability::Fsync],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Part 2: commits/s of the WAL store and a segmented store (frames codec), one fact per
/// commit, one writer, the two alternated round by round; the median of the rounds.
fn write_cost(dir: &Path, rounds: usize, modes: &[Durability]) {
    let kinds = std::env::var("SEGMENTS_BENCH_KINDS").unwrap_or("wal,frames".into());
    let facts: Option<usize> = std::env::var("SEGMENTS_BENCH_FACTS")
        .ok()
        .and_then(|s| s.parse().ok());
    println!("\n| durability | facts/round | rounds | WAL commits/s | segmented (frames) commits/s | segmented / WAL |");
    println!("|---|---|---|---|---|---|");
    for &d in modes {
        let m = facts.unwrap_or(match d {
            Durability::None => 100_000,
            Durability::Flush => 50_000,
            _ => 1_000,
        });
        let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            for (j, kind) in ["wal", "frames"].into_iter().enumerate() {
                if !kinds.split(',').any(|k| k == kind) {
                    rates[j].push(f64::NAN);
                    continue;
                }
                let path = dir.join(format!("cost-{kind}-{round}"));
                let l = open(kind, &path, d);
                let t = Instant::now();
                for i in 0..m {
                    l.write(Write::new("gps", format!("tech_{}", i % 1000), gps(i)))
                        .unwrap();
                }
                let secs = t.elapsed().as_secs_f64();
                l.close().unwrap();
                rates[j].push(m as f64 / secs);
                std::fs::remove_dir_all(&path)
                    .or_else(|_| std::fs::remove_file(&path))
                    .ok();
                let _ = std::fs::remove_file(format!("{}.snap", path.display()));
            }
        }
        let (w, s) = (median(rates[0].clone()), median(rates[1].clone()));
        println!(
            "| {} | {m} | {rounds} | {w:.0} | {s:.0} | {:.2} |",
            d.name(),
            s / w
        );
    }
}
