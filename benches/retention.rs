//! Measures compaction: a ledger of N facts compacted keeping 10% and keeping 90%,
//! the new generation's write throughput against the device's sequential write bandwidth
//! (measured here, in the same directory, with the same write size and one fsync), the
//! reopen time after compaction, and how long a concurrent writer is paused.
//!
//! `cargo bench --bench retention -- [N] [dir]` (N defaults to 1000000; dir to
//! `target/retention-bench`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use igniter_ledger::retention::RetentionPolicy;
use igniter_ledger::{Batch, Durability, LedgerStore, MapKey, OpenOptions, Value, Write};

fn value(i: usize, payload: &str) -> Value {
    Value::map([
        (MapKey::sym("i"), Value::Int(i as i64)),
        (MapKey::sym("payload"), Value::from(payload)),
    ])
}

/// Sequential write bandwidth of the device under `dir`: `bytes` in 1 MiB writes, then
/// one fsync (what a new generation does).
fn device_bandwidth(dir: &Path, bytes: u64) -> f64 {
    let p = dir.join("bandwidth.probe");
    let buf = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    let mut f = std::fs::File::create(&p).unwrap();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_all().unwrap();
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&p).unwrap();
    bytes as f64 / secs / 1e6
}

/// CPU time (user + system) of the whole process so far.
fn cpu_time() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// With `RETENTION_PERF_CTL=<fifo>`, tells a `perf record --control fifo:<fifo> -D -1`
/// to sample only while `compact` runs.
fn perf_ctl(cmd: &str) {
    if let Ok(p) = std::env::var("RETENTION_PERF_CTL") {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(p) {
            let _ = writeln!(f, "{cmd}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(n: usize, keep_pct: usize, dir: &Path) {
    let path: PathBuf = dir.join(format!("keep{keep_pct}.wal"));
    let _ = std::fs::remove_file(&path);
    let l =
        LedgerStore::open_with(&path, OpenOptions::new().durability(Durability::Flush)).unwrap();
    l.set_retention("s", RetentionPolicy::ephemeral()).unwrap();
    let payload = "x".repeat(100);
    // keep 10%: n/10 keys written 10 times each. keep 90%: the first 20% of the writes
    // go to n/10 keys twice each, the rest to unique keys.
    let key = |i: usize| -> String {
        if keep_pct == 10 || i < n / 5 {
            format!("k{}", i % (n / 10))
        } else {
            format!("u{i}")
        }
    };
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let mut b = Batch::new();
        for j in i..(i + 1000).min(n) {
            b = b.write(Write::new("s", key(j), value(j, &payload)));
        }
        l.commit(b).unwrap();
        i += 1000;
    }
    l.checkpoint().unwrap();
    let build = t.elapsed();
    let before = std::fs::metadata(&path).unwrap().len();
    l.close().unwrap();
    drop(l);
    let t = Instant::now();
    let l =
        LedgerStore::open_with(&path, OpenOptions::new().durability(Durability::Flush)).unwrap();
    let reopen_before = t.elapsed();
    l.set_retention("s", RetentionPolicy::ephemeral()).unwrap();

    // A writer to another store, timing each commit, while the compaction runs.
    let stop = AtomicBool::new(false);
    let (report, compact_time, compact_cpu, max_pause, writes_during) = std::thread::scope(|s| {
        let w = s.spawn(|| {
            let mut max = Duration::ZERO;
            let mut count = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                l.write(Write::new("w", format!("{count}"), Value::Int(1)))
                    .unwrap();
                max = max.max(t.elapsed());
                count += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            (max, count)
        });
        std::thread::sleep(Duration::from_millis(50));
        perf_ctl("enable");
        let cpu = cpu_time();
        let t = Instant::now();
        let r = l.compact(Some("s")).unwrap();
        let ct = t.elapsed();
        let cpu = cpu_time() - cpu;
        perf_ctl("disable");
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        let (max, count) = w.join().unwrap();
        (r, ct, cpu, max, count)
    });
    let after = std::fs::metadata(&path).unwrap().len();
    let r = &report[0];
    l.close().unwrap();
    drop(l);
    let t = Instant::now();
    let l = LedgerStore::open(&path).unwrap();
    let reopen = t.elapsed();
    let facts = l.fact_count();
    drop(l);
    let bw = device_bandwidth(dir, after);
    let thr = after as f64 / compact_time.as_secs_f64() / 1e6;
    // The write path alone: encoding, writing and fsyncing the kept facts (measured in
    // the core; it runs beside the index rebuild).
    let write_thr = r.bytes_written as f64 / r.write_time.as_secs_f64() / 1e6;
    println!(
        "keep {keep_pct}%: N={n} built in {:.2}s; WAL {:.1} MB -> {:.1} MB; dropped {} kept {}; \
         compaction {:.3}s (CPU {:.3}s; {:.0} facts/s in, {:.1} MB/s written); device sequential write {:.1} MB/s \
         (compaction = {:.0}% of it); write path {:.3}s = {:.1} MB/s ({:.0}% of the device), \
         index rebuild {:.3}s; reopen before compaction (snapshot + WAL) {:.3}s, \
         after compaction {:.3}s ({} facts); \
         commits paused at most {:.3}s (measured in the core); concurrent writer: {} commits, longest {:.3}s",
        build.as_secs_f64(),
        before as f64 / 1e6,
        after as f64 / 1e6,
        r.dropped_count,
        r.kept_count,
        compact_time.as_secs_f64(),
        compact_cpu.as_secs_f64(),
        n as f64 / compact_time.as_secs_f64(),
        thr,
        bw,
        100.0 * thr / bw,
        r.write_time.as_secs_f64(),
        write_thr,
        100.0 * write_thr / bw,
        r.rebuild_time.as_secs_f64(),
        reopen_before.as_secs_f64(),
        reopen.as_secs_f64(),
        facts,
        r.commit_pause.as_secs_f64(),
        writes_during,
        max_pause.as_secs_f64(),
    );
    let _ = std::fs::remove_file(&path);
}

fn main() {
    // `cargo bench` adds `--bench`.
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let n: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = match args.next() {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/retention-bench"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    for keep in [10, 90] {
        run(n, keep, &dir);
    }
}
