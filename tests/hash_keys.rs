//! The hash-key compatibility switch, through the public API: type-faithful by default,
//! `HashKeys::Symbolize` turns String keys into Symbols at write time (value, producer,
//! derivation; every depth), on memory and file ledgers, across a reopen.

use igniter_ledger::{
    AccessPath, Append, Batch, HashKeys, HistoryQuery, LedgerStore, MapKey, OpenOptions,
    PartitionQuery, Read, Value, Write,
};

fn slot(seconds: i64) -> Value {
    Value::map([
        (MapKey::str("available_seconds"), Value::Int(seconds)),
        (MapKey::str("label"), Value::from("desk")),
        (
            MapKey::str("windows"),
            Value::Array(vec![Value::map([(MapKey::str("from"), Value::Int(9))])]),
        ),
        (MapKey::Int(7), Value::from("int key stays")),
    ])
}

fn symbolized(seconds: i64) -> Value {
    Value::map([
        (MapKey::sym("available_seconds"), Value::Int(seconds)),
        (MapKey::sym("label"), Value::from("desk")),
        (
            MapKey::sym("windows"),
            Value::Array(vec![Value::map([(MapKey::sym("from"), Value::Int(9))])]),
        ),
        (MapKey::Int(7), Value::from("int key stays")),
    ])
}

#[test]
fn default_keeps_string_keys() {
    let l = LedgerStore::memory();
    assert_eq!(l.hash_keys(), HashKeys::Keep);
    l.write(Write::new("slots", "s1", slot(5))).unwrap();
    assert_eq!(l.read(Read::new("slots", "s1")).unwrap(), Some(slot(5)));
}

#[test]
fn symbolize_turns_string_keys_into_symbols_everywhere_a_map_is_written() {
    let l = LedgerStore::memory_with(OpenOptions::new().hash_keys(HashKeys::Symbolize));
    assert_eq!(l.hash_keys(), HashKeys::Symbolize);
    let meta = Value::map([(MapKey::str("system"), Value::sym("spec"))]);
    let f = l
        .write(
            Write::new("slots", "s1", slot(5))
                .producer(meta.clone())
                .derivation(meta),
        )
        .unwrap();
    let sym_meta = Value::map([(MapKey::sym("system"), Value::sym("spec"))]);
    assert_eq!(f.value(), symbolized(5));
    assert_eq!(f.producer(), Some(sym_meta.clone()));
    assert_eq!(f.derivation(), Some(sym_meta));
    assert_eq!(
        l.read(Read::new("slots", "s1")).unwrap(),
        Some(symbolized(5))
    );
    // batches and appends too
    let facts = l
        .commit(
            Batch::new()
                .write(Write::new("slots", "s2", slot(6)))
                .append(Append::new("events", slot(7))),
        )
        .unwrap();
    assert_eq!(facts[0].value(), symbolized(6));
    assert_eq!(facts[1].value(), symbolized(7));
    // a String value stays a String; scalars are untouched
    l.write(Write::new("slots", "s3", Value::from("plain")))
        .unwrap();
    assert_eq!(
        l.read(Read::new("slots", "s3")).unwrap(),
        Some(Value::from("plain"))
    );
}

#[test]
fn symbolize_makes_string_partition_keys_and_filters_find_the_symbol_keys() {
    let l = LedgerStore::memory_with(OpenOptions::new().hash_keys(HashKeys::Symbolize));
    let ev = |t: &str| Value::map([(MapKey::str("tracker_id"), Value::from(t))]);
    l.append(Append::new("logs", ev("sleep")).partition_map_key(Some(MapKey::str("tracker_id"))))
        .unwrap();
    l.append(Append::new("logs", ev("mood"))).unwrap();
    l.append(Append::new("logs", ev("sleep"))).unwrap();
    let by_str = PartitionQuery::with_key("logs", MapKey::str("tracker_id"), "sleep");
    let by_sym = PartitionQuery::new("logs", "tracker_id", "sleep");
    assert_eq!(l.history_partition(by_str.clone()).unwrap().len(), 2);
    assert_eq!(l.history_partition(by_sym).unwrap().len(), 2);
    assert_eq!(l.partition_len(&by_str), Some(2));

    l.register_path(
        AccessPath::scope("tasks", "open").filter(MapKey::str("status"), Value::from("open")),
    )
    .unwrap();
    l.write(Write::new(
        "tasks",
        "t1",
        Value::map([(MapKey::str("status"), Value::from("open"))]),
    ))
    .unwrap();
    assert_eq!(l.query("tasks", "open", None).unwrap().len(), 1);
}

#[test]
fn symbolize_refuses_a_map_whose_keys_collide_writing_nothing() {
    let l = LedgerStore::memory_with(OpenOptions::new().hash_keys(HashKeys::Symbolize));
    let both = Value::map([
        (MapKey::str("a"), Value::Int(1)),
        (MapKey::sym("a"), Value::Int(2)),
    ]);
    assert!(l.write(Write::new("s", "k", both)).is_err());
    assert_eq!(l.fact_count(), 0);
}

#[test]
fn symbolize_on_a_file_ledger_survives_reopen_and_keeps_older_facts_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.wal");
    {
        let l = LedgerStore::open(&path).unwrap();
        l.write(Write::new("slots", "before", slot(1))).unwrap();
        l.close().unwrap();
    }
    {
        let l = LedgerStore::open_with(&path, OpenOptions::new().hash_keys(HashKeys::Symbolize))
            .unwrap();
        l.write(Write::new("slots", "after", slot(2))).unwrap();
        l.close().unwrap();
    }
    let l = LedgerStore::open(&path).unwrap();
    assert_eq!(l.read(Read::new("slots", "before")).unwrap(), Some(slot(1)));
    assert_eq!(
        l.read(Read::new("slots", "after")).unwrap(),
        Some(symbolized(2))
    );
    assert_eq!(l.history(HistoryQuery::new("slots")).unwrap().len(), 2);
}
