//! The protocol's `query` in-process (no Ruby, no wire): each query shape over a memory
//! ledger, answered by an interpreter whose `access_path` descriptor names the queried
//! fields (field index) and by one without it (scan with early exit / top-k), side by
//! side in one run.
//!
//! `cargo bench --bench protocol_query -- [N]` (N writes over N/10 keys; default 20000).

use std::time::Instant;

use igniter_ledger::protocol::packet::obj;
use igniter_ledger::protocol::Interpreter;
use igniter_ledger::{LedgerStore, MapKey, Value, Write};

fn value(i: usize) -> Value {
    Value::map([
        (MapKey::sym("title"), Value::from(format!("Task {i}"))),
        (
            MapKey::sym("status"),
            Value::sym(if i.is_multiple_of(2) { "open" } else { "done" }),
        ),
        (MapKey::sym("priority"), Value::Int((i % 5) as i64)),
        (
            MapKey::sym("assignee"),
            Value::from(format!("user-{}", i % 97)),
        ),
    ])
}

fn per_sec(p: &Interpreter, q: &Value, runs: usize) -> (f64, usize) {
    let n = p.query(q).unwrap().len();
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(p.query(q).unwrap());
    }
    (runs as f64 / t.elapsed().as_secs_f64(), n)
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let keys = (n / 10).max(1);
    let ledger = LedgerStore::memory();
    for i in 0..n {
        ledger
            .write(Write::new("tasks", format!("k{}", i % keys), value(i)))
            .unwrap();
    }
    let indexed = Interpreter::new(ledger.clone());
    indexed.register(&obj([
        ("schema_version", Value::Int(1)),
        ("kind", Value::sym("access_path")),
        ("name", Value::sym("tasks_by_assignee")),
        ("store", Value::sym("tasks")),
        (
            "fields",
            Value::Array(vec![Value::sym("assignee"), Value::sym("status")]),
        ),
    ]));
    let plain = Interpreter::new(ledger.clone());
    let w = |field: &str, v: Value| Value::map([(MapKey::sym(field), v)]);
    let shapes = [
        (
            "where status (half the keys) + limit 50",
            obj([
                ("store", Value::sym("tasks")),
                ("where", w("status", Value::sym("open"))),
                ("limit", Value::Int(50)),
            ]),
        ),
        (
            "where assignee (~1% of keys) + limit 50",
            obj([
                ("store", Value::sym("tasks")),
                ("where", w("assignee", Value::from("user-5"))),
                ("limit", Value::Int(50)),
            ]),
        ),
        (
            "order priority desc + limit 10",
            obj([
                ("store", Value::sym("tasks")),
                ("order", w("priority", Value::sym("desc"))),
                ("limit", Value::Int(10)),
            ]),
        ),
        (
            "where status, no limit",
            obj([
                ("store", Value::sym("tasks")),
                ("where", w("status", Value::sym("open"))),
            ]),
        ),
    ];
    println!("N = {n} writes over {keys} keys (memory ledger); queries per second.");
    println!("| query | descriptor names the field | no descriptor | results |");
    println!("|---|---:|---:|---:|");
    for (name, q) in &shapes {
        let runs = (200_000 / keys).max(20);
        let (a, found) = per_sec(&indexed, q, runs);
        let (b, found_plain) = per_sec(&plain, q, runs);
        assert_eq!(found, found_plain);
        println!("| {name} | {a:.0} | {b:.0} | {found} |");
    }
}
