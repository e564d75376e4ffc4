//! Changefeed measurements (issue 13): writer slowdown with one subscriber, a stuck
//! subscriber, replay from a cursor, and delivery latency commit → consumer with 1 and
//! 100 subscribers. Prints Markdown tables.
//!
//! `cargo run --release --example changefeed_bench -- [writes] [replay facts]`
//! (defaults 20000 and 100000, a quick smoke; the reports used 200000 1000000). Nothing
//! here asserts a speed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use igniter_ledger::changefeed::{
    BufferOptions, ChangefeedBuffer, ChangesQuery, Cursor, Recv, ALL_STORES,
};
use igniter_ledger::{Batch, Durability, LedgerStore, OpenOptions, Value, Write};

fn ledger(mode: &str, dir: &std::path::Path, tag: &str) -> LedgerStore {
    match mode {
        "memory" => LedgerStore::memory(),
        m => LedgerStore::open_with(
            dir.join(format!("{tag}.wal")),
            OpenOptions::new().durability(Durability::parse(m).unwrap()),
        )
        .unwrap(),
    }
}

/// CPU time this thread has run, in ns (Linux `/proc/thread-self/schedstat`; 0 elsewhere).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Writes `n` single-fact commits; returns writes/s and the writing thread's CPU ns per
/// write. `subscriber`: attach a buffer with
/// one subscriber, drained by a consumer thread (`stuck`: never drained).
fn writer_run(
    mode: &str,
    n: usize,
    subscriber: bool,
    stuck: bool,
    dir: &std::path::Path,
    tag: &str,
) -> (f64, f64) {
    let l = ledger(mode, dir, tag);
    let stop = Arc::new(AtomicBool::new(false));
    let mut consumer = None;
    let mut _held = None;
    if subscriber {
        let feed = ChangefeedBuffer::new(BufferOptions::default()).unwrap();
        l.attach_changefeed(&feed).unwrap();
        let sub = feed.subscribe(ALL_STORES);
        if stuck {
            _held = Some(sub);
        } else {
            let stop = stop.clone();
            consumer = Some(std::thread::spawn(move || {
                let mut got = 0u64;
                loop {
                    match sub.recv_timeout(Duration::from_millis(20)) {
                        Recv::Event(_) => got += 1,
                        _ if stop.load(Ordering::Relaxed) => break,
                        _ => {}
                    }
                }
                got
            }));
        }
    }
    let v = Value::Int(7);
    let t = Instant::now();
    let cpu = thread_cpu_ns();
    for i in 0..n {
        l.write(Write::new("bench", format!("k{}", i % 10_000), v.clone()))
            .unwrap();
    }
    let cpu = (thread_cpu_ns() - cpu) as f64 / n as f64;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(c) = consumer {
        let got = c.join().unwrap();
        assert_eq!(
            got as usize, n,
            "the consumer got every event (catch-up policy)"
        );
    }
    l.close().unwrap();
    (rate, cpu)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Latency (µs) from just before `write` to the consumer holding the event, for `subs`
/// subscribers, `n` writes paced every `gap`.
fn latency(subs: usize, n: usize, gap: Duration) -> (f64, f64, f64) {
    let l = LedgerStore::memory();
    let feed = ChangefeedBuffer::new(BufferOptions {
        subscriber_queue_size: 10_000,
        ..BufferOptions::default()
    })
    .unwrap();
    l.attach_changefeed(&feed).unwrap();
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let origin = Instant::now();
    let threads: Vec<_> = (0..subs)
        .map(|_| {
            let sub = feed.subscribe(ALL_STORES);
            std::thread::spawn(move || {
                let mut at = Vec::with_capacity(n);
                while at.len() < n {
                    if let Some(e) = sub.recv() {
                        at.push((e.sequence(), origin.elapsed()));
                    }
                }
                at
            })
        })
        .collect();
    for i in 0..n {
        starts.lock().unwrap().push(Instant::now());
        l.write(Write::new("lat", format!("k{i}"), Value::Int(i as i64)))
            .unwrap();
        std::thread::sleep(gap);
    }
    let starts = starts.lock().unwrap();
    let mut lat: Vec<u64> = Vec::with_capacity(n * subs);
    for t in threads {
        for (seq, at) in t.join().unwrap() {
            let s = starts[(seq - 1) as usize].duration_since(origin);
            lat.push(at.saturating_sub(s).as_nanos() as u64);
        }
    }
    lat.sort_unstable();
    (pct(&lat, 0.5), pct(&lat, 0.99), pct(&lat, 0.999))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let replay_n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    // Removed with everything in it when `main` returns.
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    let dir = tmp.path().to_path_buf();

    // `CHANGEFEED_BENCH_ONLY=<mode>,<none|draining|stuck>`: one writer run and nothing
    // else (for profilers: `valgrind --tool=callgrind --separate-threads=yes`).
    if let Ok(only) = std::env::var("CHANGEFEED_BENCH_ONLY") {
        let (mode, sub) = only.split_once(',').unwrap_or((only.as_str(), "none"));
        let (rate, cpu) = writer_run(mode, n, sub != "none", sub == "stuck", &dir, "only");
        println!("{mode} {sub}: {rate:.0} writes/s, writer CPU {cpu:.0} ns/write");
        return;
    }

    println!("### Writer throughput with and without a subscriber ({n} single-fact writes, median of 3, interleaved)\n");
    println!("Wall-clock rate, and in brackets the writing thread's own CPU time per write (from");
    println!("/proc/thread-self/schedstat: what the writer pays, without the time it waits for a core).\n");
    println!("| mode | no changefeed | 1 subscriber draining | slowdown (CPU/write) | 1 stuck subscriber | slowdown (CPU/write) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for mode in ["memory", "none", "flush"] {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..3 {
            a.push(writer_run(
                mode,
                n,
                false,
                false,
                &dir,
                &format!("{mode}-a{r}"),
            ));
            b.push(writer_run(
                mode,
                n,
                true,
                false,
                &dir,
                &format!("{mode}-b{r}"),
            ));
            c.push(writer_run(
                mode,
                n,
                true,
                true,
                &dir,
                &format!("{mode}-c{r}"),
            ));
        }
        let rate = |v: &[(f64, f64)]| median(v.iter().map(|x| x.0).collect());
        let cpu = |v: &[(f64, f64)]| median(v.iter().map(|x| x.1).collect());
        let (ra, rb, rc) = (rate(&a), rate(&b), rate(&c));
        let (ca, cb, cc) = (cpu(&a), cpu(&b), cpu(&c));
        println!(
            "| {mode} | {ra:.0}/s [{ca:.0} ns] | {rb:.0}/s [{cb:.0} ns] | {:+.1}% ({:+.1}%) | {rc:.0}/s [{cc:.0} ns] | {:+.1}% ({:+.1}%) |",
            (ra - rb) / ra * 100.0,
            (cb - ca) / ca * 100.0,
            (ra - rc) / ra * 100.0,
            (cc - ca) / ca * 100.0,
        );
    }

    println!("\n### Replay from a cursor ({replay_n} facts in memory, `changes` from the middle and from the start)\n");
    let l = LedgerStore::memory();
    let mut b = Batch::new();
    for i in 0..replay_n {
        b = b.write(Write::new(
            if i % 2 == 0 { "a" } else { "b" },
            format!("k{i}"),
            Value::Int(i as i64),
        ));
        if (i + 1) % 10_000 == 0 {
            l.commit(std::mem::take(&mut b)).unwrap();
        }
    }
    l.commit(b).unwrap();
    println!("| read | events | seconds | events/s |");
    println!("|---|---:|---:|---:|");
    for (what, q) in [
        ("all, from the start", ChangesQuery::new()),
        (
            "all, after the middle",
            ChangesQuery::new().after(Cursor::new(replay_n as u64 / 2)),
        ),
        (
            "one of two stores, from the start",
            ChangesQuery::new().stores(["a"]),
        ),
        (
            "pages of 1,000 (cursor to cursor)",
            ChangesQuery::new().limit(1000),
        ),
    ] {
        let mut best = f64::MAX;
        let mut count = 0;
        for _ in 0..3 {
            let t = Instant::now();
            count = if q.limit.is_some() {
                let mut c = 0;
                let mut q = q.clone();
                loop {
                    let page = l.changes(&q).unwrap();
                    let Some(last) = page.last() else { break };
                    c += page.len();
                    q = q.after(last.cursor());
                }
                c
            } else {
                l.changes(&q).unwrap().len()
            };
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "| {what} | {count} | {best:.3} | {:.0} |",
            count as f64 / best
        );
    }
    let mut f = l.follow(&ChangesQuery::new()).unwrap();
    let t = Instant::now();
    let mut c = 0;
    while f.next_timeout(Duration::ZERO).unwrap().is_some() {
        c += 1;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "| Follower, from the start | {c} | {s:.3} | {:.0} |",
        c as f64 / s
    );

    println!("\n### Delivery latency, write call → consumer thread holding the event (in memory, paced writes)\n");
    println!("| subscribers | writes | p50 µs | p99 µs | p99.9 µs |");
    println!("|---:|---:|---:|---:|---:|");
    for (subs, writes) in [(1usize, 5000usize), (100, 1000)] {
        let (p50, p99, p999) = latency(subs, writes, Duration::from_micros(500));
        println!("| {subs} | {writes} | {p50:.1} | {p99:.1} | {p999:.1} |");
    }
}
