//! Taking in facts recorded elsewhere (`Fact::restore`, `Write::restoring`): ids, times
//! and causations are kept; transaction times stay strictly increasing; a fact already
//! in the ledger is refused; restored facts survive a reopen.

use igniter_ledger::{Fact, FactParts, HistoryQuery, LedgerStore, Timestamp, Value, Write};

fn parts(id: &str, key: &str, v: i64, tx: f64, causation: Option<&str>) -> FactParts {
    FactParts {
        id: Fact::id_from_str(id),
        store: "items".into(),
        key: key.into(),
        value: Value::Int(v),
        causation: causation.map(Fact::id_from_str),
        transaction_time: Timestamp::from_secs_f64(tx),
        valid_time: Some(tx + 0.5),
        schema_version: 2,
        producer: Some(Value::sym("legacy")),
        derivation: None,
    }
}

#[test]
fn id_from_str_keeps_uuids_and_maps_other_strings_stably() {
    let u = "01a2267b-8b5b-7b2e-9ab5-3202bfa2778b";
    assert_eq!(Fact::id_from_str(u).hyphenated().to_string(), u);
    assert_eq!(Fact::id_from_str("fact-1"), Fact::id_from_str("fact-1"));
    assert_ne!(Fact::id_from_str("fact-1"), Fact::id_from_str("fact-2"));
}

#[test]
fn restore_keeps_every_recorded_field_and_recomputes_the_hash() {
    let f = Fact::restore(parts("fact-1", "a", 7, 1_714_200_000.0, Some("fact-0"))).unwrap();
    assert_eq!(f.id(), Fact::id_from_str("fact-1"));
    assert_eq!(f.causation(), Some(Fact::id_from_str("fact-0")));
    assert_eq!(f.transaction_time().as_secs_f64(), 1_714_200_000.0);
    assert_eq!(f.valid_time(), Some(1_714_200_000.5));
    assert_eq!(f.schema_version(), 2);
    assert_eq!(f.producer(), Some(Value::sym("legacy")));
    let same_value = Fact::build(Write::new("items", "b", Value::Int(7))).unwrap();
    assert_eq!(f.value_hash(), same_value.value_hash());
    assert_eq!(f.to_parts().id, f.id());
}

#[test]
fn restoring_writes_keep_ids_times_and_causation_and_stay_ordered() {
    let l = LedgerStore::memory();
    let a = l
        .write(Write::restoring(parts("f1", "a", 1, 1_000.0, None)))
        .unwrap();
    let b = l
        .write(Write::restoring(parts("f2", "a", 2, 2_000.0, Some("f1"))))
        .unwrap();
    assert_eq!(a.transaction_time().as_secs_f64(), 1_000.0);
    assert_eq!(b.transaction_time().as_secs_f64(), 2_000.0);
    assert_eq!(b.causation(), Some(a.id()));
    // no causation recorded: none (not the key's previous fact)
    let c = l
        .write(Write::restoring(parts("f3", "a", 3, 3_000.0, None)))
        .unwrap();
    assert_eq!(c.causation(), None);
    // older than the ledger's newest fact: moved to the next microsecond
    let d = l
        .write(Write::restoring(parts("f4", "b", 4, 500.0, None)))
        .unwrap();
    assert_eq!(d.id(), Fact::id_from_str("f4"));
    assert!(d.transaction_time() > c.transaction_time());
    // an ordinary write after restored future-dated facts still gets a later time
    let e = l.write(Write::new("items", "a", Value::Int(5))).unwrap();
    assert!(e.transaction_time() > d.transaction_time());
    assert_eq!(e.causation(), Some(c.id()));
    assert_eq!(l.fact_by_id(b.id()).unwrap().id(), b.id());
}

#[test]
fn a_fact_already_in_the_ledger_is_refused_writing_nothing() {
    let l = LedgerStore::memory();
    let f = l.write(Write::new("items", "a", Value::Int(1))).unwrap();
    assert!(l.write(Write::restoring(f.to_parts())).is_err());
    assert_eq!(l.fact_count(), 1);
}

#[test]
fn restored_facts_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.wal");
    let src = LedgerStore::memory();
    let f1 = src.write(Write::new("items", "a", Value::Int(1))).unwrap();
    let f2 = src.write(Write::new("items", "a", Value::Int(2))).unwrap();
    {
        let l = LedgerStore::open(&path).unwrap();
        for f in [&f1, &f2] {
            l.write(Write::restoring(f.to_parts())).unwrap();
        }
        l.close().unwrap();
    }
    let l = LedgerStore::open(&path).unwrap();
    let h = l.history_raw(HistoryQuery::new("items").key("a"));
    assert_eq!(
        h.iter().map(|f| f.id()).collect::<Vec<_>>(),
        [f1.id(), f2.id()]
    );
    assert_eq!(h[1].causation(), Some(f1.id()));
    assert_eq!(h[0].transaction_time(), f1.transaction_time());
}
