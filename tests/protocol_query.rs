//! `query` answers the same whichever way it finds the records: a field index (an
//! `access_path` descriptor names the field), an early exit (limit without order), a
//! bounded top-k (order with limit) or the plain scan, checked against a naive oracle
//! over random data with Symbol/String values and keys mixed.

use igniter_ledger::protocol::packet::{compare, field, obj};
use igniter_ledger::protocol::sources::same;
use igniter_ledger::protocol::{Interpreter, Item};
use igniter_ledger::{LedgerStore, MapKey, Read, Timestamp, Value, Write};

fn s(x: &str) -> Value {
    Value::sym(x)
}

/// A random record: status/owner/priority under Symbol or String keys, values as
/// Symbols or Strings, sometimes a field missing.
fn record(rng: &mut fastrand::Rng) -> Value {
    let key = |rng: &mut fastrand::Rng, name: &str| {
        if rng.u8(..10) == 0 {
            MapKey::str(name)
        } else {
            MapKey::sym(name)
        }
    };
    let text = |rng: &mut fastrand::Rng, t: String| {
        if rng.bool() {
            Value::Sym(t)
        } else {
            Value::Str(t)
        }
    };
    let mut pairs = Vec::new();
    let st = ["open", "done", "held"][rng.usize(..3)].to_owned();
    pairs.push((key(rng, "status"), text(rng, st)));
    if rng.u8(..8) != 0 {
        let owner = format!("u{}", rng.u8(..40));
        pairs.push((key(rng, "owner"), text(rng, owner)));
    }
    if rng.u8(..6) != 0 {
        pairs.push((key(rng, "priority"), Value::Int(rng.i64(0..5))));
    }
    Value::Map(pairs)
}

/// What `query` must answer, computed the slow, obvious way.
fn oracle(
    ledger: &LedgerStore,
    filters: &[(&str, Value)],
    order: Option<(&str, bool)>,
    limit: Option<usize>,
    as_of: Option<Timestamp>,
) -> Vec<Item> {
    let mut keys: Vec<String> = ledger
        .history_raw(igniter_ledger::HistoryQuery::new("tasks"))
        .iter()
        .map(|f| f.key().to_owned())
        .collect();
    keys.sort();
    keys.dedup();
    let mut items: Vec<Item> = keys
        .into_iter()
        .filter_map(|k| {
            let v = ledger
                .read(Read::new("tasks", k.as_str()).as_of_opt(as_of))
                .unwrap()?;
            Some(Item { key: k, value: v })
        })
        .filter(|i| {
            filters
                .iter()
                .all(|(n, v)| field(&i.value, n).is_some_and(|x| same(x, v)))
        })
        .collect();
    if let Some((name, desc)) = order {
        items.sort_by(|a, b| {
            let o = compare(
                field(&a.value, name).unwrap_or(&Value::Nil),
                field(&b.value, name).unwrap_or(&Value::Nil),
            );
            (if desc { o.reverse() } else { o }).then_with(|| a.key.cmp(&b.key))
        });
    }
    if let Some(n) = limit {
        items.truncate(n);
    }
    items
}

fn packet(
    filters: &[(&str, Value)],
    order: Option<(&str, bool)>,
    limit: Option<usize>,
    as_of: Option<Timestamp>,
) -> Value {
    let mut p = obj([
        ("store", s("tasks")),
        (
            "where",
            Value::Map(
                filters
                    .iter()
                    .map(|(n, v)| (MapKey::sym(*n), v.clone()))
                    .collect(),
            ),
        ),
    ]);
    let set = igniter_ledger::protocol::packet::set;
    if let Some((name, desc)) = order {
        set(
            &mut p,
            "order",
            Value::map([(MapKey::sym(name), s(if desc { "desc" } else { "asc" }))]),
        );
    }
    if let Some(n) = limit {
        set(&mut p, "limit", Value::Int(n as i64));
    }
    if let Some(t) = as_of {
        set(&mut p, "as_of", Value::Float(t.as_secs_f64()));
    }
    p
}

#[test]
fn every_query_path_answers_what_the_oracle_answers() {
    for seed in 0..4u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let ledger = LedgerStore::memory();
        let indexed = Interpreter::new(ledger.clone());
        let plain = Interpreter::new(ledger.clone());
        assert!(indexed
            .register(&obj([
                ("schema_version", Value::Int(1)),
                ("kind", s("access_path")),
                ("name", s("tasks_by_owner")),
                ("store", s("tasks")),
                (
                    "fields",
                    Value::Array(vec![s("owner"), s("status"), s("priority")])
                ),
            ]))
            .is_accepted());
        let mut checkpoints = Vec::new();
        for i in 0..600 {
            let key = format!("k{:03}", rng.usize(..150));
            ledger
                .write(Write::new("tasks", key, record(&mut rng)))
                .unwrap();
            if i % 200 == 199 {
                checkpoints.push(Timestamp::now());
            }
        }
        for round in 0..120 {
            let mut filters: Vec<(&str, Value)> = Vec::new();
            if rng.bool() {
                let o = format!("u{}", rng.u8(..42));
                filters.push((
                    "owner",
                    if rng.bool() {
                        Value::Sym(o)
                    } else {
                        Value::Str(o)
                    },
                ));
            }
            if rng.u8(..3) == 0 {
                filters.push(("status", s(["open", "done", "held"][rng.usize(..3)])));
            }
            if rng.u8(..4) == 0 {
                filters.push(("priority", Value::Int(rng.i64(0..6))));
            }
            let order = match rng.u8(..3) {
                0 => None,
                1 => Some(("priority", rng.bool())),
                _ => Some(("owner", rng.bool())),
            };
            let limit = if rng.bool() {
                Some(rng.usize(1..30))
            } else {
                None
            };
            let as_of = if rng.u8(..4) == 0 {
                Some(checkpoints[rng.usize(..checkpoints.len())])
            } else {
                None
            };
            let want = oracle(&ledger, &filters, order, limit, as_of);
            let p = packet(&filters, order, limit, as_of);
            assert_eq!(
                indexed.query(&p).unwrap(),
                want,
                "seed {seed} round {round}: {p:?}"
            );
            assert_eq!(plain.query(&p).unwrap(), want, "seed {seed} round {round}");
        }
        // The descriptor's fields were looked up in the ledger's partition indexes.
        let graph = ledger.schema_graph();
        assert!(graph
            .partitions
            .iter()
            .any(|(st, k)| st == "tasks" && *k == MapKey::sym("owner")));
    }
}

#[test]
fn a_field_most_records_share_is_scanned_and_a_coerced_store_never_uses_the_index() {
    let ledger = LedgerStore::memory();
    let p = Interpreter::new(ledger.clone());
    p.register(&obj([
        ("schema_version", Value::Int(1)),
        ("kind", s("access_path")),
        ("name", s("by_status")),
        ("store", s("tasks")),
        ("fields", Value::Array(vec![s("status")])),
    ]));
    for i in 0..50 {
        for _ in 0..3 {
            ledger
                .write(Write::new(
                    "tasks",
                    format!("k{i}"),
                    Value::map([(MapKey::sym("status"), s("open"))]),
                ))
                .unwrap();
        }
    }
    let q = obj([
        ("store", s("tasks")),
        ("where", Value::map([(MapKey::sym("status"), s("open"))])),
        ("limit", Value::Int(5)),
    ]);
    let got = p.query(&q).unwrap();
    assert_eq!(
        got.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["k0", "k1", "k10", "k11", "k12"]
    );

    // With a coercion the query sees coerced values, which the index does not hold.
    ledger
        .register_coercion(
            "tasks",
            std::sync::Arc::new(|_: &Value, _: u32| {
                Ok::<_, igniter_ledger::BoxError>(Value::map([(
                    MapKey::sym("status"),
                    Value::sym("closed"),
                )]))
            }),
        )
        .unwrap();
    assert!(p.query(&q).unwrap().is_empty());
    let closed = obj([
        ("store", s("tasks")),
        ("where", Value::map([(MapKey::sym("status"), s("closed"))])),
    ]);
    assert_eq!(p.query(&closed).unwrap().len(), 50);
    assert_eq!(ledger.key_count("tasks"), 50);
    assert!(ledger.has_coercion("tasks"));
    assert!(!ledger.has_coercion("other"));
}

#[test]
fn a_zero_limit_answers_nothing() {
    let p = Interpreter::new(LedgerStore::memory());
    p.store()
        .write(Write::new("tasks", "a", Value::Int(1)))
        .unwrap();
    let q = obj([("store", s("tasks")), ("limit", Value::Int(0))]);
    assert!(p.query(&q).unwrap().is_empty());
}

/// `replay(filter: {store:, partition_key:, partition_value:})` reads the partition index
/// and answers what filtering every fact of the store answers, in commit order.
#[test]
fn a_partition_replay_answers_what_the_scan_answers() {
    use igniter_ledger::{Append, HistoryQuery};
    let mut rng = fastrand::Rng::with_seed(7);
    let ledger = LedgerStore::memory();
    let p = Interpreter::new(ledger.clone());
    let mut marks = Vec::new();
    for i in 0..400 {
        let o = format!("o{}", rng.u8(..12));
        // Most events spell the value as a String; observation o0 also as a Symbol.
        let v = if o == "o0" && rng.bool() {
            Value::Sym(o)
        } else {
            Value::Str(o)
        };
        let event = Value::map([(MapKey::sym("obs"), v), (MapKey::sym("n"), Value::Int(i))]);
        ledger
            .append(Append::new("events", event).partition_key("obs"))
            .unwrap();
        if i % 100 == 50 {
            marks.push(Timestamp::now());
        }
    }
    let replay = |pv: Value, from: Option<Timestamp>, to: Option<Timestamp>| {
        let mut packet = obj([(
            "filter",
            obj([
                ("store", s("events")),
                ("partition_key", Value::from("obs")),
                ("partition_value", pv),
            ]),
        )]);
        let set = igniter_ledger::protocol::packet::set;
        if let Some(t) = from {
            set(&mut packet, "from", Value::Float(t.as_secs_f64()));
        }
        if let Some(t) = to {
            set(&mut packet, "to", Value::Float(t.as_secs_f64()));
        }
        p.replay(&packet).unwrap()
    };
    for (pv, from, to) in [
        (Value::from("o3"), None, None),
        (s("o3"), None, None),
        (Value::from("o0"), None, None),
        (Value::from("o5"), Some(marks[0]), Some(marks[2])),
        (Value::from("o99"), None, None),
        (Value::Int(3), None, None),
    ] {
        let want: Vec<Value> = ledger
            .history_raw(HistoryQuery::new("events").since_opt(from).as_of_opt(to))
            .iter()
            .filter(|f| field(&f.value(), "obs").is_some_and(|v| same(v, &pv)))
            .map(igniter_ledger::protocol::fact_packet)
            .collect();
        assert_eq!(replay(pv.clone(), from, to), want, "{pv:?}");
        if pv != Value::from("o99") && pv != Value::Int(3) {
            assert!(!want.is_empty());
        }
    }
}
