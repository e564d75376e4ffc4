//! Sync hub measurements (ignored by default; numbers, not assertions):
//!
//! ```text
//! cargo test --release -p igniter_ledger_server --test sync_bench -- --ignored --nocapture
//! ```
//! (`SYNC_BENCH_FACTS` sets the fact count, default 20000.) Prints push throughput
//! (batched vs one INSERT per row), end-to-end lag p50/p99 from a commit in ledger A to
//! the fact's arrival in ledger B, and the bootstrap rate.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use igniter_ledger::{ChangesQuery, LedgerStore, MapKey, Value, Write};
use igniter_ledger_server::sync::{
    InsertMode, PullFilter, Puller, Pusher, StateDir, SyncConfig, SyncHandle,
};
use support::pg::Cluster;

fn fill(n: usize) -> LedgerStore {
    let l = LedgerStore::memory();
    for i in 0..n {
        l.write(Write::new(
            ["orders", "users", "events"][i % 3],
            format!("k{}", i % 500),
            Value::map([
                (MapKey::sym("n"), Value::Int(i as i64)),
                (MapKey::sym("status"), Value::sym("open")),
                (MapKey::sym("note"), Value::Str(format!("fact number {i}"))),
            ]),
        ))
        .unwrap();
    }
    l
}

fn push_rate(url: &str, ledger: &LedgerStore, mode: InsertMode) -> f64 {
    let mut p = Pusher::new(ledger.clone(), url, uuid::Uuid::new_v4(), 1000, mode).unwrap();
    // Connect and create the schema outside the timing: push one batch of nothing.
    p.step(Duration::ZERO).ok();
    let t = Instant::now();
    p.catch_up(Instant::now() + Duration::from_secs(3600))
        .unwrap();
    let n = ledger.fact_count() as f64;
    n / t.elapsed().as_secs_f64()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn measure() {
    let Some(pg) = Cluster::start() else { return };
    let n: usize = std::env::var("SYNC_BENCH_FACTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let src = fill(n);
    let batched_url = pg.create_db("batched");
    let batched = push_rate(&batched_url, &src, InsertMode::Batched);
    let rows_url = pg.create_db("rows");
    let row_by_row = push_rate(&rows_url, &src, InsertMode::RowByRow);
    println!("facts: {n}");
    println!("push, batched (1000 facts per transaction, one INSERT ... SELECT FROM unnest): {batched:.0} facts/s");
    println!("push, one INSERT per row (1000 rows per transaction):                      {row_by_row:.0} facts/s");

    // Bootstrap: a fresh ledger pulls everything.
    let fresh = LedgerStore::memory();
    let mut puller = Puller::new(
        fresh.clone(),
        &batched_url,
        Arc::new(StateDir::open(None).unwrap()),
        PullFilter::all(),
        1000,
    )
    .unwrap();
    puller.remaining().unwrap();
    let t = Instant::now();
    puller
        .catch_up(Instant::now() + Duration::from_secs(3600), |_| {})
        .unwrap();
    let boot = fresh.fact_count() as f64 / t.elapsed().as_secs_f64();
    assert_eq!(fresh.fact_count(), n);
    println!("bootstrap (1000 rows per batch): {boot:.0} facts/s");

    // Lag: A commits, B (another ledger, another sync) sees it.
    let url = pg.create_db("lag");
    let a = LedgerStore::memory();
    let b = LedgerStore::memory();
    let start = |l: &LedgerStore, push: bool| {
        let mut c = SyncConfig::new(url.clone());
        c.push = push;
        c.pull = (!push).then(PullFilter::all);
        SyncHandle::start(l.clone(), c).unwrap()
    };
    let sa = start(&a, true);
    let sb = start(&b, false);
    let committed: Arc<Mutex<HashMap<uuid::Uuid, Instant>>> = Arc::default();
    let mut follower = b.follow(&ChangesQuery::new()).unwrap();
    let total = 500;
    let watcher = {
        let committed = committed.clone();
        std::thread::spawn(move || {
            let mut lags = Vec::new();
            while lags.len() < total {
                let e = follower
                    .next_timeout(Duration::from_secs(30))
                    .unwrap()
                    .expect("a fact arrives");
                let at = Instant::now();
                let c = committed.lock().unwrap()[&e.fact_id()];
                lags.push(at.duration_since(c).as_secs_f64() * 1000.0);
            }
            lags
        })
    };
    for i in 0..total {
        let mut m = committed.lock().unwrap();
        let f = a
            .write(Write::new(
                "orders",
                format!("lag{i}"),
                Value::Int(i as i64),
            ))
            .unwrap();
        m.insert(f.id(), Instant::now());
        drop(m);
        std::thread::sleep(Duration::from_millis(4));
    }
    let mut lags = watcher.join().unwrap();
    lags.sort_by(f64::total_cmp);
    println!(
        "end-to-end lag, commit in A -> fact in B ({total} facts, one every ~4 ms): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(&lags, 0.5),
        pct(&lags, 0.99),
        lags[lags.len() - 1]
    );
    sa.stop().unwrap();
    sb.stop().unwrap();
}
