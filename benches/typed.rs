//! Typed decode (issue 19): a fact's stored MessagePack bytes straight into a Rust struct,
//! against decoding them into a `Value` first and converting that, on the compare
//! workload's values (`benches/compare.rs`: tasks `{status:, title:, n:, owner:}` and
//! order events `{order_id:, kind:, amount:, seq:}`, Symbol keys, Symbol status/kind).
//!
//! ```text
//! cargo bench --bench typed                 # everything (about a minute)
//! cargo bench --bench typed -- decode/      # a subset (criterion filter)
//! cargo bench --bench typed -- --test       # run each once (smoke test)
//! ```
//!
//! It also decodes with `rmp-serde` where `rmp-serde` can: it cannot read the stored
//! (Symbol-keyed) bytes at all (the error is printed at start), so it is timed on a
//! String-keyed, Symbol-free encoding of the same event, beside our decoder on those
//! same bytes. Nothing here asserts anything about speed.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use igniter_ledger::__private::codec::{decode_value, encode_value};
use igniter_ledger::{
    from_slice, from_value, to_value_with, Append, Batch, KeyStyle, LedgerStore, MapKey,
    PartitionQuery, Read, Value, Write,
};
use serde::{Deserialize, Serialize};

const ORDERS: usize = 200;
const EVENTS_PER_ORDER: i64 = 100;
const TASKS: usize = 10_000;

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Status {
    Open,
    Done,
    Flagged,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Task {
    status: Status,
    title: String,
    n: i64,
    owner: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Created,
    Paid,
    Packed,
    Shipped,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Event {
    order_id: String,
    kind: Kind,
    amount: f64,
    seq: i64,
}

/// The same event with `kind` as a plain string: String keys and no Symbol anywhere, so
/// plain MessagePack decoders can read it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct PlainEvent {
    order_id: String,
    kind: String,
    amount: f64,
    seq: i64,
}

/// `benches/compare.rs`'s task value.
fn task_value(key: &str, n: i64, status: &str) -> Value {
    let h = key
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    Value::map([
        (MapKey::sym("status"), Value::sym(status)),
        (MapKey::sym("title"), Value::from(format!("Task {key}"))),
        (MapKey::sym("n"), Value::Int(n)),
        (
            MapKey::sym("owner"),
            Value::from(format!("user-{}", h % 97)),
        ),
    ])
}

/// `benches/compare.rs`'s event value.
fn event_value(order: usize, seq: i64) -> Value {
    const KINDS: [&str; 4] = ["created", "paid", "packed", "shipped"];
    Value::map([
        (MapKey::sym("order_id"), Value::from(format!("o-{order}"))),
        (MapKey::sym("kind"), Value::sym(KINDS[seq as usize % 4])),
        (
            MapKey::sym("amount"),
            Value::Float(order as f64 * 0.5 + seq as f64),
        ),
        (MapKey::sym("seq"), Value::Int(seq)),
    ])
}

fn ledger() -> LedgerStore {
    let ledger = LedgerStore::memory();
    let statuses = ["open", "done", "flagged"];
    for chunk in (0..TASKS).collect::<Vec<_>>().chunks(1000) {
        let mut b = Batch::new();
        for &i in chunk {
            let key = format!("task-{i}");
            let v = task_value(&key, i as i64, statuses[i % 3]);
            b = b.write(Write::new("tasks", key, v));
        }
        ledger.commit(b).expect("commit");
    }
    for seq in 0..EVENTS_PER_ORDER {
        let mut b = Batch::new();
        for o in 0..ORDERS {
            b = b.append(Append::new("events", event_value(o, seq)).partition_key("order_id"));
        }
        ledger.commit(b).expect("commit");
    }
    ledger
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();

    let ledger = ledger();
    let event_fact = ledger
        .history_partition(PartitionQuery::new("events", "order_id", "o-7"))
        .expect("slice")[42]
        .fact
        .clone();
    let stored = event_fact.value_bytes().to_vec();
    let event: Event = from_slice(&stored).expect("typed decode");
    let plain = PlainEvent {
        order_id: event.order_id.clone(),
        kind: "paid".into(),
        amount: event.amount,
        seq: event.seq,
    };
    let plain_bytes = encode_value(&to_value_with(&plain, KeyStyle::Strings).unwrap()).bytes;
    assert_eq!(
        rmp_serde::from_slice::<PlainEvent>(&plain_bytes).unwrap(),
        plain
    );
    assert_eq!(from_slice::<PlainEvent>(&plain_bytes).unwrap(), plain);
    println!(
        "rmp-serde on the stored (Symbol-keyed) event bytes: {:?}",
        rmp_serde::from_slice::<Event>(&stored).map(|_| ())
    );
    println!(
        "rmp-serde on the stored bytes into a String-keyed map: {:?}",
        rmp_serde::from_slice::<std::collections::BTreeMap<String, serde::de::IgnoredAny>>(&stored)
            .map(|_| ())
    );

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("event/typed", |b| {
        b.iter(|| from_slice::<Event>(black_box(&stored)).unwrap())
    });
    g.bench_function("event/via_value", |b| {
        b.iter(|| from_value::<Event>(decode_value(black_box(&stored)).unwrap()).unwrap())
    });
    g.bench_function("event/value_only", |b| {
        b.iter(|| decode_value(black_box(&stored)).unwrap())
    });
    g.bench_function("plain_event/typed", |b| {
        b.iter(|| from_slice::<PlainEvent>(black_box(&plain_bytes)).unwrap())
    });
    g.bench_function("plain_event/rmp_serde", |b| {
        b.iter(|| rmp_serde::from_slice::<PlainEvent>(black_box(&plain_bytes)).unwrap())
    });
    g.finish();

    let q = PartitionQuery::new("events", "order_id", "o-7");
    let mut g = c.benchmark_group("partition_slice_100");
    g.throughput(Throughput::Elements(EVENTS_PER_ORDER as u64));
    g.bench_function("typed", |b| {
        b.iter(|| {
            let evs: Vec<Event> = ledger.history_partition_as(q.clone()).unwrap();
            evs
        })
    });
    g.bench_function("via_value", |b| {
        b.iter(|| {
            let evs: Vec<Event> = ledger
                .history_partition(q.clone())
                .unwrap()
                .iter()
                .map(|f| from_value(f.value()).unwrap())
                .collect();
            evs
        })
    });
    g.bench_function("value_only", |b| {
        b.iter(|| {
            let vs: Vec<Value> = ledger
                .history_partition(q.clone())
                .unwrap()
                .iter()
                .map(|f| f.value())
                .collect();
            vs
        })
    });
    g.finish();

    let mut g = c.benchmark_group("point_read");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("task/typed", |b| {
        b.iter(|| {
            i = (i + 7919) % TASKS;
            ledger
                .read_as::<Task>(Read::new("tasks", format!("task-{i}")))
                .unwrap()
                .unwrap()
        })
    });
    g.bench_function("task/via_value", |b| {
        b.iter(|| {
            i = (i + 7919) % TASKS;
            let v = ledger
                .read(Read::new("tasks", format!("task-{i}")))
                .unwrap()
                .unwrap();
            from_value::<Task>(v).unwrap()
        })
    });
    g.finish();

    c.final_summary();
}
