//! Every operation of SPEC §4 through the Rust API, in memory and on a file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use igniter_ledger::{
    AccessPath, Append, Batch, BoxError, Durability, Error, Expected, HistoryQuery, LedgerStore,
    MapKey, Notification, OpenOptions, PartitionQuery, Read, SnapshotOutcome, Timestamp, Value,
    Write,
};

fn m(pairs: &[(&str, Value)]) -> Value {
    Value::map(pairs.iter().map(|(k, v)| (MapKey::sym(*k), v.clone())))
}

fn task(status: &str) -> Value {
    m(&[("title", Value::from("t")), ("status", Value::sym(status))])
}

#[test]
fn write_sets_default_causation_and_reads_time_travel() {
    let l = LedgerStore::memory();
    let a = l.write(Write::new("tasks", "t1", task("open"))).unwrap();
    let b = l.write(Write::new("tasks", "t1", task("done"))).unwrap();
    assert_eq!(a.causation(), None);
    assert_eq!(b.causation(), Some(a.id()));
    assert!(b.transaction_time() > a.transaction_time());
    assert_eq!(
        l.read(Read::new("tasks", "t1")).unwrap(),
        Some(task("done"))
    );
    assert_eq!(
        l.read(Read::new("tasks", "t1").as_of(a.transaction_time()))
            .unwrap(),
        Some(task("open"))
    );
    let before = Timestamp::from_micros(a.transaction_time().as_micros() - 1);
    assert_eq!(
        l.read(Read::new("tasks", "t1").as_of(before)).unwrap(),
        None
    );
    assert_eq!(l.read(Read::new("tasks", "missing")).unwrap(), None);
    assert_eq!(l.read(Read::new("nostore", "t1")).unwrap(), None);
}

#[test]
fn explicit_causation_and_metadata_are_kept() {
    let l = LedgerStore::memory();
    let a = l.write(Write::new("s", "k", Value::Int(1))).unwrap();
    let b = l
        .write(
            Write::new("s", "other", Value::Int(2))
                .causation(a.id())
                .schema_version(3)
                .valid_time(100.5)
                .producer(Value::sym("importer"))
                .derivation(m(&[("from", Value::from("k"))])),
        )
        .unwrap();
    assert_eq!(b.causation(), Some(a.id()));
    assert_eq!(b.schema_version(), 3);
    assert_eq!(b.valid_time(), Some(100.5));
    assert_eq!(b.producer(), Some(Value::sym("importer")));
    assert_eq!(b.derivation(), Some(m(&[("from", Value::from("k"))])));
}

#[test]
fn transaction_times_strictly_increase_even_in_a_burst() {
    let l = LedgerStore::memory();
    let mut prev = Timestamp::MIN;
    for i in 0..20_000 {
        let f = l
            .write(Write::new("s", format!("k{}", i % 10), Value::Int(i)))
            .unwrap();
        assert!(f.transaction_time() > prev);
        prev = f.transaction_time();
        // as_of the fact's own time is exact
        if i % 997 == 0 {
            let seen = l
                .history(HistoryQuery::new("s").as_of(f.transaction_time()))
                .unwrap();
            assert_eq!(seen.len() as i64, i + 1);
            let via_float = Timestamp::from_secs_f64(f.transaction_time().as_secs_f64());
            assert_eq!(via_float, f.transaction_time());
        }
    }
}

#[test]
fn append_gets_fresh_uuid_keys_and_no_causation() {
    let l = LedgerStore::memory();
    let a = l
        .append(Append::new("events", m(&[("n", Value::Int(1))])))
        .unwrap();
    let b = l
        .append(Append::new("events", m(&[("n", Value::Int(2))])))
        .unwrap();
    assert_ne!(a.key(), b.key());
    assert_eq!(a.key().len(), 36);
    assert!(uuid::Uuid::try_parse(a.key()).is_ok());
    assert_eq!(b.causation(), None);
    let c = l
        .append(Append::new("events", Value::Nil).causation(a.id()))
        .unwrap();
    assert_eq!(c.causation(), Some(a.id()));
    assert_eq!(l.history(HistoryQuery::new("events")).unwrap().len(), 3);
    // an appended fact is readable by its key
    assert_eq!(
        l.read(Read::new("events", a.key())).unwrap(),
        Some(m(&[("n", Value::Int(1))]))
    );
}

#[test]
fn history_windows_are_inclusive() {
    let l = LedgerStore::memory();
    let facts: Vec<_> = (0..10)
        .map(|i| l.write(Write::new("s", "k", Value::Int(i))).unwrap())
        .collect();
    l.write(Write::new("s", "j", Value::Int(99))).unwrap();
    let h = l
        .history(
            HistoryQuery::new("s")
                .key("k")
                .since(facts[2].transaction_time())
                .as_of(facts[5].transaction_time()),
        )
        .unwrap();
    let got: Vec<i64> = h.iter().map(|f| f.value().as_i64().unwrap()).collect();
    assert_eq!(got, vec![2, 3, 4, 5]);
    assert_eq!(l.history(HistoryQuery::new("s")).unwrap().len(), 11);
    assert_eq!(
        l.history(HistoryQuery::new("s").key("nope")).unwrap().len(),
        0
    );
    let all = l.fact_log_all(Some(facts[8].transaction_time()), None);
    assert_eq!(all.len(), 3);
    assert_eq!(
        l.fact_log_all(None, Some(facts[0].transaction_time()))
            .len(),
        1
    );
}

#[test]
fn partitions_do_not_depend_on_partition_key_being_passed() {
    let l = LedgerStore::memory();
    let ev = |o: &str, n: i64| m(&[("order_id", Value::from(o)), ("n", Value::Int(n))]);
    // Early appends without partition_key, later with, and a write into the same store.
    l.append(Append::new("orders", ev("o1", 1))).unwrap();
    l.append(Append::new("orders", ev("o2", 2))).unwrap();
    l.append(Append::new("orders", ev("o1", 3)).partition_key("order_id"))
        .unwrap();
    l.append(Append::new("orders", ev("o1", 4))).unwrap();
    l.write(Write::new("orders", "x", ev("o1", 5))).unwrap();
    l.append(Append::new("orders", m(&[("n", Value::Int(6))])))
        .unwrap();
    let slice = l
        .history_partition(PartitionQuery::new("orders", "order_id", "o1"))
        .unwrap();
    let ns: Vec<i64> = slice
        .iter()
        .map(|f| f.value().get_sym("n").unwrap().as_i64().unwrap())
        .collect();
    assert_eq!(ns, vec![1, 3, 4, 5]);
    // A partition key never named at append time is answered too, and then maintained.
    let by_n = l
        .history_partition(PartitionQuery::new("orders", "n", Value::Int(2)))
        .unwrap();
    assert_eq!(by_n.len(), 1);
    l.append(Append::new("orders", ev("o9", 2))).unwrap();
    assert_eq!(
        l.history_partition(PartitionQuery::new("orders", "n", Value::Int(2)))
            .unwrap()
            .len(),
        2
    );
    // Types matter: "o1" the String is not :o1 the Symbol.
    assert!(l
        .history_partition(PartitionQuery::new("orders", "order_id", Value::sym("o1")))
        .unwrap()
        .is_empty());
    // since / as_of windows
    let third = &slice[1];
    let w = l
        .history_partition(
            PartitionQuery::new("orders", "order_id", "o1").since(third.transaction_time()),
        )
        .unwrap();
    assert_eq!(w.len(), 3);
}

#[test]
fn scope_queries_are_materialized_and_membership_aware() {
    let l = LedgerStore::memory();
    l.write(Write::new("tasks", "a", task("open"))).unwrap();
    let calls: Arc<Mutex<Vec<Notification>>> = Arc::default();
    let c2 = calls.clone();
    let consumer = Arc::new(move |n: &Notification| -> Result<(), BoxError> {
        c2.lock().unwrap().push(n.clone());
        Ok(())
    });
    l.register_path(
        AccessPath::scope("tasks", "open")
            .filter(MapKey::sym("status"), Value::sym("open"))
            .consumer(consumer),
    )
    .unwrap();
    // Registered after "a" was written: membership computed from current state.
    let keys =
        |q: Vec<igniter_ledger::ReadFact>| q.iter().map(|f| f.key().to_owned()).collect::<Vec<_>>();
    assert_eq!(keys(l.query("tasks", "open", None).unwrap()), vec!["a"]);
    let t_before_b = l
        .write(Write::new("tasks", "b", task("open")))
        .unwrap()
        .transaction_time();
    assert_eq!(calls.lock().unwrap().len(), 1, "b entered the scope");
    l.write(Write::new(
        "tasks",
        "b",
        m(&[("title", Value::from("t2")), ("status", Value::sym("open"))]),
    ))
    .unwrap();
    assert_eq!(
        calls.lock().unwrap().len(),
        1,
        "b stayed in the scope: no notification"
    );
    l.write(Write::new("tasks", "a", task("done"))).unwrap();
    assert_eq!(calls.lock().unwrap().len(), 2, "a left the scope");
    assert_eq!(keys(l.query("tasks", "open", None).unwrap()), vec!["b"]);
    assert_eq!(
        keys(l.query("tasks", "open", Some(t_before_b)).unwrap()),
        vec!["a", "b"]
    );
    match &calls.lock().unwrap()[0] {
        Notification::Scope { store, scope } => {
            assert_eq!(&**store, "tasks");
            assert_eq!(&**scope, "open");
        }
        other => panic!("{other:?}"),
    }
    let err = l.query("tasks", "nope", None).unwrap_err();
    assert!(matches!(err, Error::UnknownScope { .. }), "{err}");
    assert!(err.to_string().contains("nope"));
}

#[test]
fn point_consumers_hear_every_write_and_failures_never_break_writes() {
    let l = LedgerStore::memory();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    l.register_path(AccessPath::point("tasks").consumer(Arc::new(
        move |n: &Notification| -> Result<(), BoxError> {
            if let Notification::Point { key, .. } = n {
                assert!(!key.is_empty());
            }
            c.fetch_add(1, Ordering::SeqCst);
            Ok(())
        },
    )))
    .unwrap();
    l.register_path(AccessPath::point("tasks").consumer(Arc::new(
        |_: &Notification| -> Result<(), BoxError> { Err("consumer failed".into()) },
    )))
    .unwrap();
    l.register_path(AccessPath::point("tasks").consumer(Arc::new(
        |_: &Notification| -> Result<(), BoxError> { panic!("consumer panicked") },
    )))
    .unwrap();
    l.write(Write::new("tasks", "a", task("open"))).unwrap();
    l.write(Write::new("other", "a", task("open"))).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(l.consumer_failures(), 2);
    assert_eq!(l.fact_count(), 2);
}

#[test]
fn coercions_apply_on_every_read_path_and_never_change_facts() {
    let l = LedgerStore::memory();
    let old = l
        .write(Write::new("tasks", "a", m(&[("title", Value::from("x"))])))
        .unwrap();
    l.write(Write::new("tasks", "b", m(&[("name", Value::from("y"))])).schema_version(2))
        .unwrap();
    l.register_path(AccessPath::scope("tasks", "all")).unwrap();
    l.register_coercion(
        "tasks",
        Arc::new(|v: &Value, sv: u32| -> Result<Value, BoxError> {
            if sv >= 2 {
                return Ok(v.clone());
            }
            let title = v.get_sym("title").cloned().unwrap_or_default();
            Ok(m(&[("name", title)]))
        }),
    )
    .unwrap();
    let want_a = m(&[("name", Value::from("x"))]);
    assert_eq!(
        l.read(Read::new("tasks", "a")).unwrap(),
        Some(want_a.clone())
    );
    let rf = l.read_fact(Read::new("tasks", "a")).unwrap().unwrap();
    assert!(rf.is_coerced());
    assert_eq!(
        rf.fact.value(),
        m(&[("title", Value::from("x"))]),
        "raw fact unchanged"
    );
    assert!(!l
        .read_fact(Read::new("tasks", "b"))
        .unwrap()
        .unwrap()
        .is_coerced());
    let h = l.history(HistoryQuery::new("tasks")).unwrap();
    assert_eq!(h[0].value(), want_a);
    let q = l.query("tasks", "all", None).unwrap();
    assert_eq!(q[0].value(), want_a);
    assert_eq!(
        l.read(Read::new("tasks", "a").as_of(old.transaction_time()))
            .unwrap(),
        Some(want_a)
    );
    // A failing coercion raises to the reader.
    l.register_coercion(
        "tasks",
        Arc::new(|_: &Value, _: u32| -> Result<Value, BoxError> { Err("boom".into()) }),
    )
    .unwrap();
    let e = l.read(Read::new("tasks", "a")).unwrap_err();
    assert!(
        matches!(e, Error::Coercion { .. }) && e.to_string().contains("boom"),
        "{e}"
    );
}

#[test]
fn causation_chain_and_lineage() {
    let l = LedgerStore::memory();
    let a = l.write(Write::new("s", "k", Value::Int(1))).unwrap();
    let b = l
        .write(Write::new("s", "k", Value::Int(2)).derivation(Value::sym("rule")))
        .unwrap();
    let chain = l.causation_chain("s", "k");
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0].id, a.id());
    assert_eq!(chain[1].causation, Some(a.id()));
    assert_eq!(chain[1].value_hash, b.value_hash_hex()[..12]);
    let lin = l.lineage("s", "k");
    assert_eq!(lin.depth, 2);
    // derived_by lists derivations of the store (none here); the fact keeps its own.
    assert!(lin.derived_by.is_empty());
    assert_eq!(b.derivation(), Some(Value::sym("rule")));
    let p = lin.proof_hash.clone().unwrap();
    assert_eq!(p.len(), 64);
    assert_eq!(l.lineage("s", "k").proof_hash, Some(p.clone()), "stable");
    l.write(Write::new("s", "k", Value::Int(3))).unwrap();
    assert_ne!(
        l.lineage("s", "k").proof_hash,
        Some(p),
        "changes with the chain"
    );
    assert_eq!(l.lineage("s", "nope").proof_hash, None);
    assert!(l.causation_chain("s", "nope").is_empty());
}

#[test]
fn fact_by_id_and_fact_ref() {
    let l = LedgerStore::memory();
    let facts: Vec<_> = (0..100)
        .map(|i| {
            l.write(Write::new("s", format!("k{i}"), Value::Int(i)).valid_time(i as f64))
                .unwrap()
        })
        .collect();
    for f in &facts {
        assert_eq!(l.fact_by_id(f.id()).unwrap(), *f);
    }
    assert!(l.fact_by_id(uuid::Uuid::new_v4()).is_none());
    let r = l.fact_ref(facts[7].id()).unwrap();
    assert_eq!(r.key, "k7");
    assert_eq!(r.valid_time, Some(7.0));
    assert_eq!(r.value_hash, facts[7].value_hash_hex());
    assert_eq!(l.fact_count(), 100);
}

#[test]
fn value_hash_is_canonical() {
    let l = LedgerStore::memory();
    let a = l
        .write(Write::new(
            "s",
            "a",
            m(&[("x", Value::Int(1)), ("y", Value::Int(2))]),
        ))
        .unwrap();
    let b = l
        .write(Write::new(
            "s",
            "b",
            m(&[("y", Value::Int(2)), ("x", Value::Int(1))]),
        ))
        .unwrap();
    let c = l
        .write(Write::new(
            "s",
            "c",
            Value::map([
                (MapKey::str("x"), Value::Int(1)),
                (MapKey::sym("y"), Value::Int(2)),
            ]),
        ))
        .unwrap();
    assert_eq!(a.value_hash(), b.value_hash());
    assert_ne!(a.value_hash(), c.value_hash());
}

#[test]
fn optimistic_concurrency() {
    let l = LedgerStore::memory();
    let a = l
        .write(Write::new("s", "k", Value::Int(1)).expected(Expected::Absent))
        .unwrap();
    let e = l
        .write(Write::new("s", "k", Value::Int(2)).expected(Expected::Absent))
        .unwrap_err();
    assert!(
        matches!(e, Error::Conflict { actual: Some(id), .. } if id == a.id()),
        "{e}"
    );
    let b = l
        .write(Write::new("s", "k", Value::Int(2)).expected(Expected::Fact(a.id())))
        .unwrap();
    let e = l
        .write(Write::new("s", "k", Value::Int(3)).expected(Expected::Fact(a.id())))
        .unwrap_err();
    assert!(e.to_string().contains(&b.id().to_string()), "{e}");
    assert_eq!(l.fact_count(), 2, "conflicts write nothing");
    assert_eq!(l.read(Read::new("s", "k")).unwrap(), Some(Value::Int(2)));
}

#[test]
fn batches_are_atomic_and_see_their_own_writes() {
    let l = LedgerStore::memory();
    let facts = l
        .commit(
            Batch::new()
                .write(Write::new("s", "k", Value::Int(1)).expected(Expected::Absent))
                .write(Write::new("s", "k", Value::Int(2)))
                .append(Append::new("h", Value::Int(3))),
        )
        .unwrap();
    assert_eq!(facts.len(), 3);
    assert_eq!(facts[1].causation(), Some(facts[0].id()));
    assert!(facts[0].transaction_time() < facts[1].transaction_time());
    // A conflicting op anywhere fails the whole batch.
    let e = l
        .commit(
            Batch::new()
                .write(Write::new("s", "new", Value::Int(1)))
                .write(Write::new("s", "k", Value::Int(9)).expected(Expected::Fact(facts[0].id()))),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }));
    // Same for an invalid value.
    let mut deep = Value::Nil;
    for _ in 0..200 {
        deep = Value::Array(vec![deep]);
    }
    assert!(l
        .commit(
            Batch::new()
                .write(Write::new("s", "new", Value::Int(1)))
                .write(Write::new("s", "x", deep))
        )
        .is_err());
    assert_eq!(l.fact_count(), 3);
    assert_eq!(l.read(Read::new("s", "new")).unwrap(), None);
    assert!(l.commit(Batch::new()).unwrap().is_empty());
}

#[test]
fn bitemporal_valid_at() {
    let l = LedgerStore::memory();
    // Salary valid from t=100, corrected later to have been different from t=150.
    let f1 = l
        .write(Write::new("pay", "ann", Value::Int(10)).valid_time(100.0))
        .unwrap();
    let f2 = l
        .write(Write::new("pay", "ann", Value::Int(20)).valid_time(200.0))
        .unwrap();
    let f3 = l
        .write(Write::new("pay", "ann", Value::Int(15)).valid_time(150.0))
        .unwrap();
    let r = |t: f64, as_of: Option<Timestamp>| {
        l.read(Read::new("pay", "ann").valid_at(t).as_of_opt(as_of))
            .unwrap()
            .and_then(|v| v.as_i64())
    };
    assert_eq!(r(99.0, None), None);
    assert_eq!(r(100.0, None), Some(10));
    assert_eq!(r(160.0, None), Some(15));
    assert_eq!(r(250.0, None), Some(20));
    // Before the correction was recorded, t=160 was still 10.
    assert_eq!(r(160.0, Some(f2.transaction_time())), Some(10));
    // Ties go to the later transaction.
    let f4 = l
        .write(Write::new("pay", "ann", Value::Int(16)).valid_time(150.0))
        .unwrap();
    assert_eq!(r(160.0, None), Some(16));
    assert_eq!(r(160.0, Some(f3.transaction_time())), Some(15));
    // Facts without a valid time count from their transaction time.
    let now = l.write(Write::new("pay", "bob", Value::Int(1))).unwrap();
    let t = now.transaction_time().as_secs_f64();
    assert_eq!(
        l.read(Read::new("pay", "bob").valid_at(t)).unwrap(),
        Some(Value::Int(1))
    );
    assert_eq!(
        l.read(Read::new("pay", "bob").valid_at(t - 1.0)).unwrap(),
        None
    );
    let _ = (f1, f4);
}

#[test]
fn schema_graph_lists_registrations() {
    let l = LedgerStore::memory();
    l.register_path(
        AccessPath::scope("tasks", "open")
            .filter(MapKey::sym("status"), Value::sym("open"))
            .cache_ttl(5.0),
    )
    .unwrap();
    l.register_path(AccessPath::point("tasks")).unwrap();
    l.append(Append::new("ev", m(&[("o", Value::Int(1))])).partition_key("o"))
        .unwrap();
    let g = l.schema_graph();
    assert_eq!(g.paths.len(), 2);
    assert_eq!(g.partitions, vec![("ev".to_owned(), MapKey::sym("o"))]);
    assert_eq!(g.stores, vec!["ev".to_owned()]);
}

#[test]
fn bad_arguments_name_what_is_wrong() {
    let l = LedgerStore::memory();
    let e = l.write(Write::new("", "k", Value::Nil)).unwrap_err();
    assert!(e.to_string().contains("store name"), "{e}");
    let e = l
        .write(Write::new("s", "k", Value::Nil).valid_time(f64::NAN))
        .unwrap_err();
    assert!(e.to_string().contains("valid_time"), "{e}");
    let dup = Value::map([
        (MapKey::sym("a"), Value::Int(1)),
        (MapKey::sym("a"), Value::Int(2)),
    ]);
    let e = l
        .write(Write::new("s", "k", m(&[("meta", dup)])))
        .unwrap_err();
    assert_eq!(e.to_string(), "value[:meta] has the key :a twice");
    assert_eq!(l.fact_count(), 0);
    assert!(matches!(l.checkpoint(), Err(Error::InvalidArgument(_))));
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn reopen_after_close_checkpoint_and_more_writes() {
    for mode in [Durability::Fsync, Durability::Flush, Durability::None] {
        let dir = tmp();
        let path = dir.path().join("l.wal");
        let opts = OpenOptions::new().durability(mode);
        let l = LedgerStore::open_with(&path, opts.clone()).unwrap();
        let a = l
            .write(Write::new("s", "k", task("open")).valid_time(5.0))
            .unwrap();
        l.append(Append::new("h", m(&[("o", Value::from("x"))])).partition_key("o"))
            .unwrap();
        l.close().unwrap();
        assert!(matches!(
            l.write(Write::new("s", "k", Value::Nil)),
            Err(Error::Closed)
        ));

        let l = LedgerStore::open_with(&path, opts.clone()).unwrap();
        assert_eq!(l.fact_count(), 2, "{mode:?}");
        assert_eq!(l.fact_by_id(a.id()).unwrap(), a);
        let b = l.write(Write::new("s", "k", task("done"))).unwrap();
        assert_eq!(b.causation(), Some(a.id()), "causation survives reopen");
        assert!(b.transaction_time() > a.transaction_time());
        let cp = l.checkpoint().unwrap();
        assert_eq!(cp.fact_count, 3);
        l.write(Write::new("s", "k2", Value::Bin(vec![0, 1, 2])))
            .unwrap();
        l.close().unwrap();

        let l = LedgerStore::open_with(&path, opts.clone()).unwrap();
        let rep = l.open_report().unwrap().clone();
        assert_eq!(
            rep.snapshot,
            SnapshotOutcome::Loaded {
                facts: 3,
                wal_offset: cp.wal_offset
            }
        );
        assert_eq!(
            rep.frames_replayed, 1,
            "only the WAL after the snapshot is replayed"
        );
        assert_eq!(l.fact_count(), 4);
        assert_eq!(l.read(Read::new("s", "k")).unwrap(), Some(task("done")));
        assert_eq!(
            l.read(Read::new("s", "k2")).unwrap(),
            Some(Value::Bin(vec![0, 1, 2]))
        );
        assert_eq!(
            l.read(Read::new("s", "k").as_of(a.transaction_time()))
                .unwrap(),
            Some(task("open"))
        );
        assert_eq!(
            l.history_partition(PartitionQuery::new("h", "o", "x"))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(l.fact_by_id(a.id()).unwrap().valid_time(), Some(5.0));
        l.close().unwrap();
    }
}

#[test]
fn second_open_is_refused_while_open() {
    let dir = tmp();
    let path = dir.path().join("l.wal");
    let l = LedgerStore::open(&path).unwrap();
    let e = LedgerStore::open(&path)
        .err()
        .expect("second open must fail");
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    assert!(e.to_string().contains("l.wal"));
    l.close().unwrap();
    let again = LedgerStore::open(&path).unwrap();
    again.close().unwrap();
}

#[test]
fn batches_are_one_frame_on_disk() {
    let dir = tmp();
    let path = dir.path().join("l.wal");
    let l = LedgerStore::open(&path).unwrap();
    l.commit(
        Batch::new()
            .write(Write::new("s", "a", Value::Int(1)))
            .write(Write::new("s", "b", Value::Int(2))),
    )
    .unwrap();
    l.close().unwrap();
    // Cut the file one byte short: the whole batch is a torn tail, none of it survives.
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 1).unwrap();
    drop(f);
    let l = LedgerStore::open(&path).unwrap();
    assert_eq!(l.fact_count(), 0);
    let torn = l.open_report().unwrap().torn_tail.clone().unwrap();
    assert_eq!(torn.offset, 0);
    assert_eq!(torn.bytes, len - 1);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "torn tail is cut"
    );
}

#[test]
fn threads_share_one_store() {
    let dir = tmp();
    let l = LedgerStore::open(dir.path().join("l.wal")).unwrap();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let l = l.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    l.write(Write::new("s", format!("t{t}"), Value::Int(i)))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(l.fact_count(), 400);
    for t in 0..8 {
        let h = l
            .history(HistoryQuery::new("s").key(format!("t{t}")))
            .unwrap();
        let vals: Vec<i64> = h.iter().map(|f| f.value().as_i64().unwrap()).collect();
        assert_eq!(vals, (0..50).collect::<Vec<_>>());
        for w in h.windows(2) {
            assert_eq!(w[1].causation(), Some(w[0].id()));
        }
    }
    l.close().unwrap();
}

#[test]
fn a_wal_path_must_be_a_regular_file() {
    for p in ["/dev/zero", "/dev/null"] {
        let e = LedgerStore::open(p).err().expect("devices are refused");
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
    let dir = tmp();
    let e = LedgerStore::open(dir.path())
        .err()
        .expect("a directory is refused");
    assert!(e.to_string().contains("not a regular file"), "{e}");
}
