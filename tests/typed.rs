//! Typed values (issue 19): the serde mapping, typed writes and reads, errors with paths,
//! and round trips in memory, after reopen and after a snapshot.
//!
//! `cargo test --test typed`

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use igniter_ledger::__private::codec::{decode_value, encode_value};
use igniter_ledger::{
    from_slice, from_value, from_value_ref, to_value, to_value_with, value, Append, BoxError,
    Error, Fact, HistoryQuery, KeyStyle, LedgerStore, MapKey, PartitionQuery, Read,
    SnapshotOutcome, Value, Write,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Status {
    Open,
    Paid,
    Shipped,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Plain,
    Gift { message: String },
    Split(u8, u8),
    Ref(String),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Line {
    sku: String,
    qty: u16,
    price: Option<f64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Order {
    id: String,
    status: Status,
    total: f64,
    qty: u32,
    big: i64,
    small: i8,
    note: Option<String>,
    tags: Vec<String>,
    lines: Vec<Line>,
    #[serde(with = "serde_bytes")]
    blob: Vec<u8>,
    raw: Vec<u8>,
    attrs: BTreeMap<String, i64>,
    by_id: BTreeMap<i64, String>,
    kind: Kind,
    pair: (bool, char),
    extra: Value,
}

fn sample_order() -> Order {
    Order {
        id: "o-1".into(),
        status: Status::Paid,
        total: 12.5,
        qty: 3,
        big: i64::MIN,
        small: -7,
        note: None,
        tags: vec!["a".into(), "b".into()],
        lines: vec![
            Line {
                sku: "s1".into(),
                qty: 2,
                price: Some(4.0),
            },
            Line {
                sku: "s2".into(),
                qty: 1,
                price: None,
            },
        ],
        blob: vec![0, 255],
        raw: vec![1, 2, 3],
        attrs: BTreeMap::from([("color".into(), 5)]),
        by_id: BTreeMap::from([(-1, "minus".into()), (7, "seven".into())]),
        kind: Kind::Gift {
            message: "hi".into(),
        },
        pair: (true, 'é'),
        extra: value!({ any: [:thing, "x", 1.5], "k" => nil }),
    }
}

#[test]
fn a_struct_becomes_the_value_ruby_writes() {
    let v = to_value(&sample_order()).unwrap();
    let expected = value!({
        id: "o-1",
        status: :paid,
        total: 12.5,
        qty: 3,
        big: i64::MIN,
        small: -7,
        note: nil,
        tags: ["a", "b"],
        lines: [
            { sku: "s1", qty: 2, price: 4.0 },
            { sku: "s2", qty: 1, price: nil },
        ],
        blob: (Value::Bin(vec![0, 255])),
        raw: (Value::Bin(vec![1, 2, 3])),
        attrs: { color: 5 },
        by_id: { -1 => "minus", 7 => "seven" },
        kind: { gift: { message: "hi" } },
        pair: [true, "é"],
        extra: { any: [:thing, "x", 1.5], "k" => nil },
    });
    assert_eq!(v, expected);
    // Map order follows the struct's field order (what Ruby's Hash#keys shows).
    let Value::Map(pairs) = &v else { panic!() };
    assert_eq!(pairs[0].0, MapKey::sym("id"));
    assert_eq!(pairs[15].0, MapKey::sym("extra"));
    // And back, from the Value and from its stored bytes.
    assert_eq!(from_value::<Order>(v.clone()).unwrap(), sample_order());
    let bytes = encode_value(&v).bytes;
    assert_eq!(from_slice::<Order>(&bytes).unwrap(), sample_order());
}

#[test]
fn every_variant_shape() {
    for (kind, expected) in [
        (Kind::Plain, value!(:plain)),
        (Kind::Split(1, 2), value!({ split: [1, 2] })),
        (Kind::Ref("r".into()), value!({ ref: "r" })),
    ] {
        let v = to_value(&kind).unwrap();
        assert_eq!(v, expected);
        assert_eq!(from_value::<Kind>(v.clone()).unwrap(), kind);
        assert_eq!(from_slice::<Kind>(&encode_value(&v).bytes).unwrap(), kind);
    }
    // A unit variant also reads from a String (Ruby code may store "plain") and from
    // {plain: nil}.
    assert_eq!(from_value::<Kind>(value!("plain")).unwrap(), Kind::Plain);
    assert_eq!(
        from_value::<Kind>(value!({ plain: nil })).unwrap(),
        Kind::Plain
    );
    let err = from_value::<Status>(value!(:lost)).unwrap_err();
    assert!(err.to_string().contains("unknown variant `lost`"), "{err}");
}

#[test]
fn scalars_and_their_limits() {
    assert_eq!(to_value(&()).unwrap(), Value::Nil);
    assert_eq!(
        to_value(&u64::MAX.to_string()).unwrap(),
        Value::from("18446744073709551615")
    );
    assert_eq!(to_value(&(i64::MAX as u64)).unwrap(), Value::Int(i64::MAX));
    assert_eq!(to_value(&(i64::MIN as i128)).unwrap(), Value::Int(i64::MIN));
    assert_eq!(to_value(&1.5f32).unwrap(), Value::Float(1.5));
    assert_eq!(to_value(&'x').unwrap(), Value::from("x"));
    assert_eq!(
        to_value(&f64::INFINITY).unwrap(),
        Value::Float(f64::INFINITY)
    );
    // Reading: an f64 field takes an Integer; a String field takes a Symbol's name.
    assert_eq!(from_value::<f64>(Value::Int(3)).unwrap(), 3.0);
    assert_eq!(from_value::<String>(Value::sym("open")).unwrap(), "open");
    // Out of range integers on read.
    let err = from_value::<u8>(Value::Int(300)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("value invalid value: integer `300`"),
        "{err}"
    );
    assert_eq!(
        from_value::<u64>(Value::Int(i64::MAX)).unwrap(),
        i64::MAX as u64
    );
    assert!(from_value::<u64>(Value::Int(-1)).is_err());
}

#[test]
fn bytes_are_binary() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct B {
        #[serde(with = "serde_bytes")]
        always: Vec<u8>,
        plain: Vec<u8>,
        numbers: Vec<u16>,
        maybe: Vec<Option<u8>>,
    }
    let b = B {
        always: vec![],
        plain: vec![9, 8],
        numbers: vec![1, 2],
        maybe: vec![Some(1)],
    };
    let v = to_value(&b).unwrap();
    assert_eq!(
        v,
        value!({
            always: (Value::Bin(vec![])),
            plain: (Value::Bin(vec![9, 8])),
            numbers: [1, 2],
            maybe: [1],
        })
    );
    assert_eq!(from_slice::<B>(&encode_value(&v).bytes).unwrap(), b);
    // An empty Vec<u8> has no item type in serde: it is an empty Array, and reads back.
    let empty: Vec<u8> = vec![];
    assert_eq!(to_value(&empty).unwrap(), value!([]));
    assert_eq!(from_value::<Vec<u8>>(value!([])).unwrap(), empty);
    // Ruby binary strings read into Vec<u8> and serde_bytes.
    assert_eq!(
        from_value::<serde_bytes::ByteBuf>(Value::Bin(vec![1]))
            .unwrap()
            .into_vec(),
        vec![1]
    );
}

#[test]
fn key_styles() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Inner {
        a: i64,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Outer {
        inner: Inner,
        #[serde(with = "igniter_ledger::typed::string_keys")]
        by_name: BTreeMap<String, Inner>,
        #[serde(with = "igniter_ledger::typed::symbol_keys")]
        sym: Inner,
        #[serde(with = "igniter_ledger::typed::symbol")]
        state: String,
    }
    let o = Outer {
        inner: Inner { a: 1 },
        by_name: BTreeMap::from([("x".into(), Inner { a: 2 })]),
        sym: Inner { a: 3 },
        state: "open".into(),
    };
    let syms = to_value(&o).unwrap();
    assert_eq!(
        syms,
        value!({ inner: { a: 1 }, by_name: { "x" => { "a" => 2 } }, sym: { a: 3 }, state: :open })
    );
    let strs = to_value_with(&o, KeyStyle::Strings).unwrap();
    assert_eq!(
        strs,
        value!({ "inner" => { "a" => 1 }, "by_name" => { "x" => { "a" => 2 } }, "sym" => { a: 3 }, "state" => :open })
    );
    // Either reads back: field names match Symbol and String keys alike.
    assert_eq!(from_value::<Outer>(syms).unwrap(), o);
    assert_eq!(from_slice::<Outer>(&encode_value(&strs).bytes).unwrap(), o);
}

#[test]
fn values_keep_symbols_through_serde() {
    let v = value!({
        sym: :a, str: "a", bin: (Value::Bin(vec![0xff])), "s" => [nil, true, -1, 2.5, :b],
        7 => { nested: :c }, (MapKey::sym("odd key ✓")) => (Value::Float(f64::NEG_INFINITY)),
    });
    assert_eq!(to_value(&v).unwrap(), v);
    assert_eq!(from_value::<Value>(v.clone()).unwrap(), v);
    assert_eq!(from_slice::<Value>(&encode_value(&v).bytes).unwrap(), v);
    // Inside a struct too.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Holder {
        keys: Vec<MapKey>,
        v: Value,
    }
    let h = Holder {
        keys: vec![MapKey::sym("s"), MapKey::str("s"), MapKey::Int(-4)],
        v: v.clone(),
    };
    let hv = to_value(&h).unwrap();
    assert_eq!(hv, value!({ keys: [:s, "s", -4], v: (v.clone()) }));
    assert_eq!(from_slice::<Holder>(&encode_value(&hv).bytes).unwrap(), h);
}

#[test]
fn other_serde_formats_see_plain_data() {
    let v = value!({ status: :paid, n: 1, tags: ["a"] });
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"status":"paid","n":1,"tags":["a"]}"#
    );
    let back: Value = serde_json::from_str(r#"{"status":"paid","n":1,"x":[null,1.5]}"#).unwrap();
    assert_eq!(
        back,
        value!({ "status" => "paid", "n" => 1, "x" => [nil, 1.5] })
    );
    let too_big: Result<Value, _> = serde_json::from_str("18446744073709551615");
    assert!(too_big.is_err());
}

#[test]
fn unrepresentable_values_are_refused_with_their_path_and_nothing_is_written() {
    #[derive(Serialize)]
    struct Qty {
        qty: u64,
    }
    #[derive(Serialize)]
    struct Doc {
        lines: Vec<Qty>,
    }
    let ledger = LedgerStore::memory();
    let doc = Doc {
        lines: vec![Qty { qty: 1 }, Qty { qty: u64::MAX }],
    };
    let err = Write::typed("docs", "d1", &doc).unwrap_err();
    assert_eq!(err.path(), "value[:lines][1][:qty]");
    assert_eq!(
        err.to_string(),
        "value[:lines][1][:qty] integer 18446744073709551615 is beyond the 64-bit signed range of ledger integers"
    );
    let as_ledger_error: Error = err.into();
    assert!(
        matches!(as_ledger_error, Error::InvalidValue { ref path, .. } if path == "value[:lines][1][:qty]")
    );

    #[derive(Serialize)]
    struct Big {
        id: u128,
    }
    let err = to_value(&Big { id: u128::MAX }).unwrap_err();
    assert_eq!(err.path(), "value[:id]");

    let mut floats = HashMap::new();
    floats.insert(vec![1u8], 1);
    #[derive(Serialize)]
    struct Keyed<K: Serialize + Eq + std::hash::Hash> {
        m: HashMap<K, i32>,
    }
    let err = to_value(&Keyed { m: floats }).unwrap_err();
    assert_eq!(err.path(), "value[:m]");
    assert!(err.reason().contains("a sequence"), "{err}");
    let err = to_value(&Keyed {
        m: HashMap::from([(true, 1)]),
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("value[:m] has a map key that is a boolean"),
        "{err}"
    );
    let err = to_value(&BTreeMap::from([((1, 2), 3)])).unwrap_err();
    assert!(err.reason().contains("a tuple"), "{err}");

    let err = Append::typed("events", &doc).unwrap_err();
    assert_eq!(err.path(), "event[:lines][1][:qty]");

    // A typed store refuses the same way; nothing reaches the log.
    let docs = ledger.typed("docs");
    let err = docs.write("d1", &doc).unwrap_err();
    assert_eq!(
        err.to_string(),
        "value[:lines][1][:qty] integer 18446744073709551615 is beyond the 64-bit signed range of ledger integers"
    );
    assert!(docs.append(&doc).is_err());
    // A non-finite valid time is refused too.
    let ok = Doc {
        lines: vec![Qty { qty: 1 }],
    };
    let err = ledger
        .write(
            Write::typed("docs", "d1", &ok)
                .unwrap()
                .valid_time(f64::NAN),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert_eq!(ledger.fact_count(), 0);
    // Duplicate keys (two fields renamed alike) are refused by the write path.
    #[derive(Serialize)]
    struct Twice {
        a: i32,
        #[serde(rename = "a")]
        b: i32,
    }
    let err = ledger
        .write(Write::typed("docs", "d1", &Twice { a: 1, b: 2 }).unwrap())
        .unwrap_err();
    assert_eq!(err.to_string(), "value has the key :a twice");
    assert_eq!(ledger.fact_count(), 0);
}

#[test]
fn reads_that_do_not_fit_name_the_path() {
    let ledger = LedgerStore::memory();
    ledger
        .write(Write::new(
            "orders",
            "o1",
            value!({ lines: [{ sku: "a", qty: 1 }, { sku: "b", qty: "two" }] }),
        ))
        .unwrap();
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct L {
        sku: String,
        qty: u16,
    }
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct O {
        lines: Vec<L>,
    }
    let err = ledger.read_as::<O>(Read::new("orders", "o1")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "value[:lines][1][:qty] invalid type: string \"two\", expected u16"
    );
    let fact = ledger.latest("orders", "o1").unwrap();
    let err = fact.value_as::<O>().unwrap_err();
    assert_eq!(err.path(), "value[:lines][1][:qty]");
    // Missing fields name the struct's place; unknown fields are ignored.
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Strict {
        lines: Vec<Needs>,
    }
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Needs {
        price: f64,
    }
    let err = fact.value_as::<Strict>().unwrap_err();
    assert_eq!(err.to_string(), "value[:lines][0] missing field `price`");
    // Too many items for a tuple.
    let err = from_value::<(i64,)>(value!([1, 2])).unwrap_err();
    assert!(
        err.to_string().contains("more than the 1 expected"),
        "{err}"
    );
    // Trailing bytes after a value.
    let mut bytes = encode_value(&Value::Int(1)).bytes;
    bytes.push(0xc0);
    assert!(from_slice::<i64>(&bytes).is_err());
    // Depth beyond the ledger's limit is an error, not a stack overflow.
    let mut deep = Value::Nil;
    for _ in 0..200 {
        deep = Value::Array(vec![deep]);
    }
    let err = from_value_ref::<Value>(&deep).unwrap_err();
    assert!(err.reason().contains("nests deeper than 128"), "{err}");
}

#[test]
fn typed_reads_on_every_path() {
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Ev {
        order_id: String,
        kind: Status,
        seq: i64,
    }
    let ledger = LedgerStore::memory();
    for seq in 0..6 {
        let ev = Ev {
            order_id: format!("o-{}", seq % 2),
            kind: Status::Open,
            seq,
        };
        ledger
            .append(
                Append::typed("events", &ev)
                    .unwrap()
                    .partition_key("order_id"),
            )
            .unwrap();
    }
    let o1: Vec<Ev> = ledger
        .history_partition_as(PartitionQuery::new("events", "order_id", "o-1"))
        .unwrap();
    assert_eq!(o1.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3, 5]);
    let all: Vec<Ev> = ledger.history_as(HistoryQuery::new("events")).unwrap();
    assert_eq!(all.len(), 6);

    ledger
        .register_path(
            igniter_ledger::AccessPath::scope("orders", "open")
                .filter(MapKey::sym("kind"), Value::sym("open")),
        )
        .unwrap();
    let orders = ledger.typed("orders");
    let first = orders.write("a", &all[0]).unwrap();
    orders.write("b", &all[1]).unwrap();
    let open: Vec<(String, Ev)> = ledger.query_as("orders", "open", None).unwrap();
    assert_eq!(
        open,
        vec![("a".into(), all[0].clone()), ("b".into(), all[1].clone())]
    );
    let mut changed = all[0].clone();
    changed.seq = 99;
    orders.write("a", &changed).unwrap();
    assert_eq!(orders.read::<Ev>("a").unwrap(), Some(changed.clone()));
    assert_eq!(
        orders.versions::<Ev>("a").unwrap(),
        vec![all[0].clone(), changed]
    );
    assert_eq!(orders.history::<Ev>().unwrap().len(), 3);
    assert_eq!(
        ledger
            .read_as::<Ev>(Read::new("orders", "a").as_of(first.transaction_time()))
            .unwrap(),
        Some(all[0].clone())
    );
    assert_eq!(
        ledger.read_as::<Ev>(Read::new("orders", "zzz")).unwrap(),
        None
    );

    // Borrowing straight from the fact's bytes.
    #[derive(Deserialize)]
    struct View<'a> {
        order_id: &'a str,
    }
    let fact: Fact = ledger.latest("orders", "b").unwrap();
    let view: View = fact.value_as().unwrap();
    assert_eq!(view.order_id, "o-1");
}

#[test]
fn typed_reads_see_coerced_values() {
    #[derive(Deserialize, Debug, PartialEq)]
    struct V2 {
        name: String,
        version: i64,
    }
    let ledger = LedgerStore::memory();
    ledger
        .write(Write::new("people", "p1", value!({ title: "Ada" })))
        .unwrap();
    let c = |v: &Value, _schema: u32| -> Result<Value, BoxError> {
        let name = v.get_sym("title").cloned().unwrap_or_default();
        Ok(value!({ name: name, version: 2 }))
    };
    ledger.register_coercion("people", Arc::new(c)).unwrap();
    assert_eq!(
        ledger.read_as::<V2>(Read::new("people", "p1")).unwrap(),
        Some(V2 {
            name: "Ada".into(),
            version: 2
        })
    );
}

// ---------------------------------------------------------------- property tests

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,8}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
    ]
}

fn arb_f64() -> impl Strategy<Value = f64> {
    // NaN never equals itself; every other float round-trips bit for bit.
    any::<f64>().prop_filter("not NaN", |f| !f.is_nan())
}

prop_compose! {
    fn arb_line()(sku in arb_string(), qty in any::<u16>(), price in proptest::option::of(arb_f64())) -> Line {
        Line { sku, qty, price }
    }
}

fn arb_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Plain),
        arb_string().prop_map(|message| Kind::Gift { message }),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Kind::Split(a, b)),
        arb_string().prop_map(Kind::Ref),
    ]
}

fn arb_status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Open),
        Just(Status::Paid),
        Just(Status::Shipped)
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        arb_f64().prop_map(Value::Float),
        arb_string().prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..6).prop_map(Value::Bin),
        arb_string().prop_map(Value::Sym),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    arb_string().prop_map(MapKey::Sym),
                    arb_string().prop_map(MapKey::Str),
                    any::<i64>().prop_map(MapKey::Int),
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Map(m.into_iter().collect())),
        ]
    })
}

prop_compose! {
    fn arb_order()(
        id in arb_string(),
        status in arb_status(),
        total in arb_f64(),
        qty in any::<u32>(),
        big in any::<i64>(),
        small in any::<i8>(),
        note in proptest::option::of(arb_string()),
        tags in proptest::collection::vec(arb_string(), 0..4),
        lines in proptest::collection::vec(arb_line(), 0..4),
        blob in proptest::collection::vec(any::<u8>(), 0..8),
        raw in proptest::collection::vec(any::<u8>(), 0..8),
        attrs in proptest::collection::btree_map(arb_string(), any::<i64>(), 0..4),
        by_id in proptest::collection::btree_map(any::<i64>(), arb_string(), 0..4),
        kind in arb_kind(),
        pair in (any::<bool>(), any::<char>()),
        extra in arb_value(),
    ) -> Order {
        Order { id, status, total, qty, big, small, note, tags, lines, blob, raw, attrs, by_id, kind, pair, extra }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn prop_structs_round_trip_in_memory(order in arb_order(), keys in prop_oneof![Just(KeyStyle::Symbols), Just(KeyStyle::Strings)]) {
        let ledger = LedgerStore::memory();
        let fact = ledger.write(Write::typed_with("orders", "o", &order, keys).unwrap()).unwrap();
        prop_assert_eq!(fact.value_as::<Order>().unwrap(), order.clone());
        prop_assert_eq!(ledger.read_as::<Order>(Read::new("orders", "o")).unwrap(), Some(order.clone()));
        // The typed decode agrees with decoding through a Value.
        prop_assert_eq!(from_value::<Order>(fact.value()).unwrap(), order);
    }

    #[test]
    fn prop_values_round_trip_through_serde(v in arb_value()) {
        let bytes = encode_value(&v).bytes;
        prop_assert_eq!(&from_slice::<Value>(&bytes).unwrap(), &v);
        prop_assert_eq!(&from_value_ref::<Value>(&v).unwrap(), &v);
        prop_assert_eq!(&to_value(&v).unwrap(), &v);
        prop_assert_eq!(decode_value(&bytes).unwrap(), v);
    }
}

proptest! {
    // File-backed: fewer cases, each writes a handful of facts.
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn prop_structs_round_trip_after_reopen_and_after_a_snapshot(orders in proptest::collection::vec(arb_order(), 1..6)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typed.wal");
        {
            let ledger = LedgerStore::open(&path).unwrap();
            for (i, o) in orders.iter().enumerate() {
                ledger.write(Write::typed("orders", format!("o{i}"), o).unwrap()).unwrap();
            }
            ledger.close().unwrap();
        }
        let check = |ledger: &LedgerStore| -> Result<(), TestCaseError> {
            for (i, o) in orders.iter().enumerate() {
                let back = ledger.read_as::<Order>(Read::new("orders", format!("o{i}"))).unwrap();
                prop_assert_eq!(back.as_ref(), Some(o));
            }
            let all: Vec<Order> = ledger.typed("orders").history().unwrap();
            prop_assert_eq!(&all, &orders);
            Ok(())
        };
        {
            let ledger = LedgerStore::open(&path).unwrap();
            check(&ledger)?;
            ledger.checkpoint().unwrap();
            ledger.close().unwrap();
        }
        let ledger = LedgerStore::open(&path).unwrap();
        prop_assert!(
            matches!(ledger.open_report().unwrap().snapshot, SnapshotOutcome::Loaded { facts, .. } if facts == orders.len() as u64),
            "reopened from the snapshot"
        );
        check(&ledger)?;
        ledger.close().unwrap();
    }
}

#[test]
fn serde_attributes_round_trip() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Tagged {
        Paid { amount: i64 },
        Refunded { amount: i64, reason: String },
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(untagged)]
    enum Loose {
        N(i64),
        S(String),
        L(Vec<i64>),
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Base {
        id: String,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Doc {
        #[serde(flatten)]
        base: Base,
        #[serde(rename = "Kind")]
        kind: Tagged,
        loose: Vec<Loose>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        absent: Option<i64>,
        #[serde(default)]
        defaulted: Vec<String>,
    }
    let d = Doc {
        base: Base { id: "d".into() },
        kind: Tagged::Refunded {
            amount: 5,
            reason: "late".into(),
        },
        loose: vec![Loose::N(1), Loose::S("s".into()), Loose::L(vec![2])],
        absent: None,
        defaulted: vec![],
    };
    let v = to_value(&d).unwrap();
    // An internal tag is a serde string, so it is stored as a String.
    assert_eq!(
        v,
        value!({
            id: "d",
            Kind: { type: "refunded", amount: 5, reason: "late" },
            loose: [1, "s", [2]],
            defaulted: [],
        })
    );
    assert_eq!(from_slice::<Doc>(&encode_value(&v).bytes).unwrap(), d);
    // Ruby may have written the tag and the untagged string as Symbols.
    let from_ruby = value!({
        id: "d",
        Kind: { type: :refunded, amount: 5, reason: :late },
        loose: [1, :s, [2]],
    });
    assert_eq!(from_value::<Doc>(from_ruby).unwrap(), d);
}

/// Nested arrays, `levels` deep, the innermost holding `inner`.
fn nested(levels: usize, inner: Vec<Value>) -> Value {
    let mut v = Value::Array(inner);
    for _ in 1..levels {
        v = Value::Array(vec![v]);
    }
    v
}

#[test]
fn the_depth_limit_is_the_codecs() {
    // 128 levels with an empty innermost array: valid, stored, and readable typed.
    let ok = nested(128, vec![]);
    assert!(ok.validate("value").is_ok());
    let bytes = encode_value(&ok).bytes;
    assert_eq!(decode_value(&bytes).unwrap(), ok);
    assert_eq!(from_slice::<Value>(&bytes).unwrap(), ok);
    assert_eq!(from_value_ref::<Value>(&ok).unwrap(), ok);
    // One item more at the bottom is beyond the limit for all of them.
    let deep = nested(128, vec![Value::Nil]);
    assert!(deep.validate("value").is_err());
    let bytes = encode_value(&deep).bytes;
    assert!(decode_value(&bytes).is_err());
    assert!(from_slice::<Value>(&bytes).is_err());
    assert!(from_value_ref::<Value>(&deep).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// On any bytes (valid encodings with a byte flipped, cut or appended, and noise) the
    /// typed decoder never panics and accepts exactly what the codec accepts, with the
    /// same value.
    #[test]
    fn prop_typed_decoding_of_any_bytes_agrees_with_the_codec(
        v in arb_value(),
        flip in any::<(usize, u8)>(),
        cut in any::<usize>(),
        noise in proptest::collection::vec(any::<u8>(), 0..24),
        which in 0..4u8,
    ) {
        let mut bytes = encode_value(&v).bytes;
        match which {
            0 => { let i = flip.0 % bytes.len(); bytes[i] ^= flip.1; }
            1 => bytes.truncate(cut % (bytes.len() + 1)),
            2 => bytes.extend_from_slice(&noise),
            _ => bytes = noise,
        }
        let codec = decode_value(&bytes);
        let typed = from_slice::<Value>(&bytes);
        match (&codec, &typed) {
            // Compared encoded: a flipped bit may make a NaN, which equals nothing.
            (Ok(a), Ok(b)) => prop_assert_eq!(encode_value(a).bytes, encode_value(b).bytes),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "codec {:?} vs typed {:?} on {:x?}", codec, typed, bytes),
        }
    }
}

#[test]
fn producer_and_derivation_typed() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Producer {
        service: String,
        version: u32,
    }
    let ledger = LedgerStore::memory();
    let p = Producer {
        service: "billing".into(),
        version: 3,
    };
    let f = ledger
        .write(
            Write::new("notes", "n1", value!("x"))
                .producer(to_value(&p).unwrap())
                .derivation(value!({ from: ["a", "b"] })),
        )
        .unwrap();
    assert_eq!(f.producer_as::<Producer>().unwrap().unwrap(), p);
    assert_eq!(
        f.derivation_as::<BTreeMap<String, Vec<String>>>()
            .unwrap()
            .unwrap(),
        BTreeMap::from([("from".to_owned(), vec!["a".to_owned(), "b".to_owned()])])
    );
    let err = f
        .producer_as::<BTreeMap<String, String>>()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.path(), "producer[:version]");
    let bare = ledger.write(Write::new("notes", "n2", value!(1))).unwrap();
    assert!(bare.producer_as::<Producer>().is_none());
}

#[test]
fn a_value_inside_a_flattened_part_reads_symbols_as_strings() {
    // Documented limitation: serde buffers flattened content in its own model, which has
    // no Symbols.
    #[derive(Deserialize, Debug)]
    struct Inner {
        extra: Value,
    }
    #[derive(Deserialize, Debug)]
    struct Outer {
        id: String,
        #[serde(flatten)]
        inner: Inner,
    }
    let v = value!({ id: "x", extra: { a: :b } });
    let direct: Outer = from_slice(&encode_value(&v).bytes).unwrap();
    assert_eq!(direct.id, "x");
    assert_eq!(direct.inner.extra, value!({ "a" => "b" }));
    // Outside flatten, Symbols stay Symbols.
    assert_eq!(from_value::<Inner>(v).unwrap().extra, value!({ a: :b }));
}
