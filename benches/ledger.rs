//! Criterion benchmarks of the core operations (issue 2's list).
//!
//! ```text
//! cargo bench --bench ledger                       # everything at 100k facts
//! IGNITER_BENCH_1M=1 cargo bench --bench ledger    # also the reopen benchmarks at 1M facts
//! cargo bench --bench ledger -- read/              # a subset (criterion filter)
//! cargo bench --bench ledger -- --test             # run each once (smoke test)
//! ```
//!
//! Before the benchmarks it prints the WAL and snapshot bytes per fact of the read data
//! set (RAM bytes per fact: `benches/compare.rs`). The side-by-side comparison with SQLite
//! and redb is `benches/compare.rs`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use igniter_ledger::{
    AccessPath, Append, Batch, Durability, HistoryQuery, LedgerStore, MapKey, OpenOptions,
    PartitionQuery, Read, Timestamp, Value, Write,
};

const PART_KEY: &str = "order_id";

fn task(key: &str, n: i64, status: &str) -> Value {
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

fn event(order: usize, seq: i64) -> Value {
    Value::map([
        (MapKey::sym("order_id"), Value::from(format!("o-{order}"))),
        (MapKey::sym("kind"), Value::sym("paid")),
        (MapKey::sym("amount"), Value::Float(seq as f64 * 1.5)),
        (MapKey::sym("seq"), Value::Int(seq)),
    ])
}

fn flagged_scope() -> AccessPath {
    AccessPath::scope("tasks", "flagged").filter(MapKey::sym("status"), Value::sym("flagged"))
}

/// The read data set: `n` facts — one key with 1,000 versions, 100 keys with 10
/// versions, 100 flagged keys, n/2 events (100 per order), the rest one-version keys —
/// interleaved in a fixed pseudo-random order.
struct DataSet {
    ledger: LedgerStore,
    deep: Vec<Timestamp>,
    d10: Vec<Vec<Timestamp>>,
    singles: usize,
    orders: usize,
    mid: Timestamp,
}

fn plan(n: usize) -> (Vec<u8>, usize, usize) {
    let orders = (n / 200).max(1);
    let singles = n.saturating_sub(1000 + 1000 + 100 + orders * 100);
    let mut kinds: Vec<u8> = Vec::with_capacity(n);
    kinds.extend(std::iter::repeat_n(0u8, 1000));
    kinds.extend(std::iter::repeat_n(1u8, 1000));
    kinds.extend(std::iter::repeat_n(2u8, 100));
    kinds.extend(std::iter::repeat_n(3u8, orders * 100));
    kinds.extend(std::iter::repeat_n(4u8, singles));
    fastrand::Rng::with_seed(42).shuffle(&mut kinds);
    (kinds, singles, orders)
}

/// Writes the data set into `ledger` in commits of 1,000.
fn fill(ledger: &LedgerStore, n: usize) -> (usize, usize) {
    let (kinds, singles, orders) = plan(n);
    let (mut deep_v, mut d10_v, mut flag, mut single) = (0i64, [0i64; 100], 0usize, 0usize);
    let mut order_seq = vec![0i64; orders];
    let mut rng = fastrand::Rng::with_seed(7);
    for chunk in kinds.chunks(1000) {
        let mut b = Batch::new();
        for &k in chunk {
            b = match k {
                0 => {
                    deep_v += 1;
                    b.write(Write::new(
                        "tasks",
                        "deep",
                        task("deep", deep_v - 1, "open"),
                    ))
                }
                1 => {
                    let j = loop {
                        let j = rng.usize(..100);
                        if d10_v[j] < 10 {
                            break j;
                        }
                    };
                    d10_v[j] += 1;
                    let key = format!("d10-{j}");
                    let v = task(&key, d10_v[j] - 1, "open");
                    b.write(Write::new("tasks", key, v))
                }
                2 => {
                    flag += 1;
                    let key = format!("flag-{flag}");
                    let v = task(&key, 0, "flagged");
                    b.write(Write::new("tasks", key, v))
                }
                3 => {
                    let o = loop {
                        let o = rng.usize(..orders);
                        if order_seq[o] < 100 {
                            break o;
                        }
                    };
                    order_seq[o] += 1;
                    b.append(
                        Append::new("events", event(o, order_seq[o] - 1)).partition_key(PART_KEY),
                    )
                }
                _ => {
                    single += 1;
                    let key = format!("task-{single}");
                    let v = task(&key, 0, if single % 2 == 0 { "open" } else { "done" });
                    b.write(Write::new("tasks", key, v))
                }
            };
        }
        ledger.commit(b).expect("commit");
    }
    (singles, orders)
}

fn data_set(n: usize) -> DataSet {
    let ledger = LedgerStore::memory();
    ledger.register_path(flagged_scope()).expect("scope");
    let (singles, orders) = fill(&ledger, n);
    let times = |key: &str| -> Vec<Timestamp> {
        ledger
            .history_raw(HistoryQuery::new("tasks").key(key))
            .iter()
            .map(|f| f.transaction_time())
            .collect()
    };
    let deep = times("deep");
    let d10 = (0..100).map(|j| times(&format!("d10-{j}"))).collect();
    let mid = deep[deep.len() / 2];
    DataSet {
        ledger,
        deep,
        d10,
        singles,
        orders,
        mid,
    }
}

fn temp_dir() -> tempfile::TempDir {
    match std::env::var_os("IGNITER_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("tempdir")
}

fn open(path: &Path, d: Durability) -> LedgerStore {
    LedgerStore::open_with(path, OpenOptions::new().durability(d)).expect("open")
}

fn modes() -> [(Durability, &'static str); 3] {
    [
        (Durability::Fsync, "fsync"),
        (Durability::Flush, "flush"),
        (Durability::None, "none"),
    ]
}

// ------------------------------------------------------------------ writes

fn bench_writes(c: &mut Criterion) {
    let mut g = c.benchmark_group("write");
    g.throughput(Throughput::Elements(1));
    {
        let ledger = LedgerStore::memory();
        let mut i = 0u64;
        g.bench_function("memory", |b| {
            b.iter_batched(
                || {
                    i += 1;
                    let key = format!("k{i}");
                    let v = task(&key, i as i64, "open");
                    Write::new("tasks", key, v)
                },
                |w| ledger.write(w).expect("write"),
                BatchSize::SmallInput,
            )
        });
    }
    for (mode, name) in modes() {
        let dir = temp_dir();
        let ledger = open(&dir.path().join("w.wal"), mode);
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new(name, "1 writer"), |b| {
            b.iter_batched(
                || {
                    i += 1;
                    let key = format!("k{}", i % 10_000);
                    let v = task(&key, i as i64, "open");
                    Write::new("tasks", key, v)
                },
                |w| ledger.write(w).expect("write"),
                BatchSize::SmallInput,
            )
        });
        g.bench_function(BenchmarkId::new(name, "8 writers"), |b| {
            b.iter_custom(|iters| concurrent_writes(&ledger, 8, iters))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("write batch of 1000");
    g.throughput(Throughput::Elements(1000));
    let batch = |n: &mut u64| {
        let mut b = Batch::new();
        for _ in 0..1000 {
            *n += 1;
            let key = format!("b{n}");
            let v = task(&key, *n as i64, "open");
            b = b.write(Write::new("tasks", key, v));
        }
        b
    };
    {
        let ledger = LedgerStore::memory();
        let mut n = 0u64;
        g.bench_function("memory", |b| {
            b.iter_batched(
                || batch(&mut n),
                |bt| ledger.commit(bt).expect("commit"),
                BatchSize::LargeInput,
            )
        });
    }
    for (mode, name) in modes() {
        let dir = temp_dir();
        let ledger = open(&dir.path().join("b.wal"), mode);
        let mut n = 0u64;
        g.bench_function(name, |b| {
            b.iter_batched(
                || batch(&mut n),
                |bt| ledger.commit(bt).expect("commit"),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// `iters` writes spread over `threads` threads sharing one ledger; returns the wall time.
fn concurrent_writes(ledger: &LedgerStore, threads: u64, iters: u64) -> Duration {
    let per = iters.div_ceil(threads);
    let barrier = Arc::new(std::sync::Barrier::new(threads as usize + 1));
    let prepared: Vec<Vec<Write>> = (0..threads)
        .map(|t| {
            (0..per)
                .map(|i| {
                    let key = format!("c{t}-{}", i % 1000);
                    let v = task(&key, i as i64, "open");
                    Write::new("tasks", key, v)
                })
                .collect()
        })
        .collect();
    let joins: Vec<_> = prepared
        .into_iter()
        .map(|ws| {
            let l = ledger.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for w in ws {
                    l.write(w).expect("write");
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for j in joins {
        j.join().expect("writer");
    }
    // Time per write as if exactly `iters` were done.
    start
        .elapsed()
        .mul_f64(iters as f64 / (per * threads) as f64)
}

// ------------------------------------------------------------------ reads

fn bench_reads(c: &mut Criterion, ds: &DataSet, size: &str) {
    let l = &ds.ledger;
    let mut rng = fastrand::Rng::with_seed(1);
    let mut g = c.benchmark_group(format!("read {size}"));
    g.throughput(Throughput::Elements(1));
    let keys: Vec<String> = (0..4096)
        .map(|_| format!("task-{}", rng.usize(1..=ds.singles)))
        .collect();
    let mut i = 0;
    g.bench_function("current", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(l.read(Read::new("tasks", keys[i].as_str())).expect("read"))
        })
    });
    let now = Timestamp::now();
    g.bench_function("as_of, 1 version", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(
                l.read(Read::new("tasks", keys[i].as_str()).as_of(now))
                    .expect("read"),
            )
        })
    });
    let q10: Vec<(String, Timestamp)> = (0..4096)
        .map(|_| {
            let j = rng.usize(..100);
            (format!("d10-{j}"), ds.d10[j][rng.usize(..10)])
        })
        .collect();
    g.bench_function("as_of, 10 versions", |b| {
        b.iter(|| {
            i = (i + 1) % q10.len();
            let (k, t) = &q10[i];
            black_box(
                l.read(Read::new("tasks", k.as_str()).as_of(*t))
                    .expect("read"),
            )
        })
    });
    let q1000: Vec<Timestamp> = (0..4096)
        .map(|_| ds.deep[rng.usize(..ds.deep.len())])
        .collect();
    g.bench_function("as_of, 1000 versions", |b| {
        b.iter(|| {
            i = (i + 1) % q1000.len();
            black_box(
                l.read(Read::new("tasks", "deep").as_of(q1000[i]))
                    .expect("read"),
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("history_partition {size}"));
    g.throughput(Throughput::Elements(100));
    let orders: Vec<String> = (0..4096)
        .map(|_| format!("o-{}", rng.usize(..ds.orders)))
        .collect();
    g.bench_function("100-fact slice", |b| {
        b.iter(|| {
            i = (i + 1) % orders.len();
            black_box(
                l.history_partition(PartitionQuery::new("events", PART_KEY, orders[i].as_str()))
                    .expect("partition"),
            )
        })
    });
    g.bench_function("100-fact slice, values decoded", |b| {
        b.iter(|| {
            i = (i + 1) % orders.len();
            let s = l
                .history_partition(PartitionQuery::new("events", PART_KEY, orders[i].as_str()))
                .expect("partition");
            black_box(s.iter().map(|f| f.value()).collect::<Vec<_>>())
        })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("query scope {size}"));
    g.throughput(Throughput::Elements(100));
    g.bench_function("current (100 members)", |b| {
        b.iter(|| black_box(l.query("tasks", "flagged", None).expect("query")))
    });
    g.bench_function("as_of mid-history", |b| {
        b.iter(|| black_box(l.query("tasks", "flagged", Some(ds.mid)).expect("query")))
    });
    g.finish();
}

// ------------------------------------------------------------------ reopen

fn wal_with(n: usize, dir: &Path, snapshot: bool) -> PathBuf {
    let path = dir.join(if snapshot { "snap.wal" } else { "replay.wal" });
    let l = open(&path, Durability::None);
    fill(&l, n);
    if snapshot {
        l.checkpoint().expect("checkpoint");
    }
    l.close().expect("close");
    path
}

fn bench_reopen(c: &mut Criterion, n: usize, label: &str) {
    let dir = temp_dir();
    let wal = wal_with(n, dir.path(), false);
    let snap = wal_with(n, dir.path(), true);
    let mut g = c.benchmark_group(format!("reopen {label}"));
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    // Open + first read + close (which releases the lock); freeing the ledger is not
    // part of reopening, so it happens outside the measurement.
    let reopen = |path: &Path| {
        let l = open(path, Durability::Fsync);
        black_box(l.read(Read::new("tasks", "deep")).expect("read"));
        l.close().expect("close");
        l
    };
    g.bench_function("from WAL", |b| b.iter_with_large_drop(|| reopen(&wal)));
    g.bench_function("from snapshot", |b| {
        b.iter_with_large_drop(|| reopen(&snap))
    });
    g.finish();
}

// ------------------------------------------------------------------ sizes

/// WAL and snapshot bytes per fact of the data set. (Heap bytes per fact need a counting
/// allocator, which would tax every benchmark here: `benches/compare.rs` measures them.)
fn print_sizes(n: usize) {
    let dir = temp_dir();
    let wal = wal_with(n, dir.path(), true);
    let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
    let snap_bytes =
        std::fs::metadata(igniter_ledger::__private::snapshot_path(&wal)).map_or(0, |m| m.len());
    eprintln!(
        "sizes at {n} facts: WAL {:.1} B/fact, snapshot {:.1} B/fact",
        wal_bytes as f64 / n as f64,
        snap_bytes as f64 / n as f64,
    );
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let n = if quick { 5_000 } else { 100_000 };
    if !quick {
        print_sizes(n);
    }
    bench_writes(&mut c);
    let ds = data_set(n);
    bench_reads(&mut c, &ds, if quick { "5k" } else { "100k" });
    drop(ds);
    bench_reopen(&mut c, n, if quick { "5k" } else { "100k" });
    if std::env::var("IGNITER_BENCH_1M").is_ok_and(|v| v == "1") {
        print_sizes(1_000_000);
        let ds = data_set(1_000_000);
        bench_reads(&mut c, &ds, "1M");
        drop(ds);
        bench_reopen(&mut c, 1_000_000, "1M");
    }
    c.final_summary();
}
