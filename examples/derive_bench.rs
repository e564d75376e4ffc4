//! What one source write costs with derived state: no rule, one derivation, one scatter,
//! one relation — on a store already holding N facts (in memory, so the figures are the
//! derive path, not the disk).
//!
//! ```text
//! cargo run --release --example derive_bench -- 10000 1000000
//! ```
//!
//! The store `tasks` is filled with N facts of distinct keys, value
//! `{status: (1 in 100 :open), p: i % 1000, n: i}`; then the rule is registered (which
//! reconciles over the N facts, timed separately) and W = 2,000 writes of new keys are
//! timed one by one. The rules: a derivation counting the `status: :open` facts (its
//! input is N/100 facts), a scatter counting facts per `p` (1,000 partitions), a relation
//! indexing keys by `p` (each index record holds N/1000 keys, copied on every new key).
use std::time::Instant;

use igniter_ledger::*;

const W: usize = 2_000;

fn task(i: usize) -> Value {
    Value::map([
        (
            MapKey::sym("status"),
            Value::sym(if i.is_multiple_of(100) {
                "open"
            } else {
                "done"
            }),
        ),
        (MapKey::sym("p"), Value::Int((i % 1000) as i64)),
        (MapKey::sym("n"), Value::Int(i as i64)),
    ])
}

fn register(l: &LedgerStore, rule: &str) {
    match rule {
        "none" => {}
        "derivation" => l
            .register_derivation(
                Derivation::new("tasks", "summaries", "open", |facts: &[Fact]| {
                    Some(Value::map([(
                        MapKey::sym("count"),
                        Value::Int(facts.len() as i64),
                    )]))
                })
                .filter(MapKey::sym("status"), Value::sym("open")),
            )
            .unwrap(),
        "scatter" => l
            .register_scatter(Scatter::new(
                "tasks",
                MapKey::sym("p"),
                "per_p",
                |_: &Value, e: Option<&Value>, _: &Fact| {
                    Some(Value::Int(e.and_then(Value::as_i64).unwrap_or(0) + 1))
                },
            ))
            .unwrap(),
        "relation" => l
            .register_relation(Relation::new("by_p", "tasks", MapKey::sym("p"), "ps"))
            .unwrap(),
        _ => unreachable!(),
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are integers"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000]
    } else {
        sizes
    };
    println!("| facts in store | rule | register (reconcile) | write mean | p50 | p99 |");
    println!("|---:|---|---:|---:|---:|---:|");
    for n in sizes {
        for rule in ["none", "derivation", "scatter", "relation"] {
            let l = LedgerStore::memory();
            let mut b = Batch::new();
            for i in 0..n {
                b = b.write(Write::new("tasks", format!("t{i}"), task(i)));
                if (i + 1) % 10_000 == 0 {
                    l.commit(std::mem::take(&mut b)).unwrap();
                }
            }
            l.commit(b).unwrap();
            let t = Instant::now();
            register(&l, rule);
            let reg = t.elapsed().as_secs_f64() * 1e3;
            let mut us = Vec::with_capacity(W);
            let start = Instant::now();
            for j in 0..W {
                let i = n + j;
                let w = Write::new("tasks", format!("t{i}"), task(i));
                let t = Instant::now();
                l.write(w).unwrap();
                us.push(t.elapsed().as_secs_f64() * 1e6);
            }
            let mean = start.elapsed().as_secs_f64() * 1e6 / W as f64;
            assert_eq!(l.derivation_failures(), 0);
            us.sort_by(f64::total_cmp);
            println!(
                "| {n} | {rule} | {reg:.1} ms | {mean:.1} µs | {:.1} µs | {:.1} µs |",
                pct(&us, 0.5),
                pct(&us, 0.99)
            );
        }
    }
}
