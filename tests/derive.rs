//! Derived state from Rust: derivations, scatters, relations, projections, the schema
//! graph, lineage, provenance, reconciliation and failure counting — the behaviours the
//! reference gem's derivation/scatter/relation/schema-graph/lineage specs check, and
//! those the issue adds.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use igniter_ledger::{partition_key_text, Fallible};
use igniter_ledger::{
    Batch, Derivation, Durability, Error, Fact, LedgerStore, MapKey, OpenOptions, Projection, Read,
    Relation, Scatter, TargetKey, Timestamp, Value, Write,
};

fn m(pairs: &[(&str, Value)]) -> Value {
    Value::map(pairs.iter().map(|(k, v)| (MapKey::sym(*k), v.clone())))
}

fn count(n: usize) -> Value {
    m(&[("count", Value::Int(n as i64))])
}

fn read(l: &LedgerStore, store: &str, key: &str) -> Option<Value> {
    l.read(Read::new(store, key)).unwrap()
}

fn counting_derivation(source: &str, target: &str, key: &str) -> Derivation {
    Derivation::new(source, target, key, |facts: &[Fact]| {
        Some(count(facts.len()))
    })
}

fn status(s: &str) -> Value {
    m(&[("status", Value::sym(s))])
}

#[test]
fn derivation_writes_and_updates_the_target_after_each_source_write() {
    let l = LedgerStore::memory();
    l.register_derivation(counting_derivation("tasks", "summaries", "all"))
        .unwrap();
    l.write(Write::new(
        "tasks",
        "t1",
        m(&[("title", "Buy milk".into())]),
    ))
    .unwrap();
    assert_eq!(read(&l, "summaries", "all"), Some(count(1)));
    l.write(Write::new(
        "tasks",
        "t2",
        m(&[("title", "Send email".into())]),
    ))
    .unwrap();
    assert_eq!(read(&l, "summaries", "all"), Some(count(2)));
    // The source is untouched; source and derived facts are all counted.
    assert_eq!(
        read(&l, "tasks", "t1"),
        Some(m(&[("title", "Buy milk".into())]))
    );
    assert_eq!(l.fact_count(), 4);
}

#[test]
fn filters_select_the_rules_input_and_follow_transitions() {
    let l = LedgerStore::memory();
    l.register_derivation(
        counting_derivation("tasks", "summaries", "open")
            .filter(MapKey::sym("status"), Value::sym("open")),
    )
    .unwrap();
    l.write(Write::new("tasks", "t1", status("open"))).unwrap();
    l.write(Write::new("tasks", "t2", status("done"))).unwrap();
    l.write(Write::new("tasks", "t3", status("open"))).unwrap();
    assert_eq!(read(&l, "summaries", "open"), Some(count(2)));
    l.write(Write::new("tasks", "t1", status("done"))).unwrap();
    assert_eq!(read(&l, "summaries", "open"), Some(count(1)));
}

#[test]
fn the_rule_gets_the_latest_fact_of_each_matching_key_in_key_order() {
    let l = LedgerStore::memory();
    let seen: Arc<parking_lot::Mutex<Vec<(String, Value)>>> = Arc::default();
    let s2 = seen.clone();
    l.register_derivation(Derivation::new("s", "t", "k", move |facts: &[Fact]| {
        *s2.lock() = facts
            .iter()
            .map(|f| (f.key().to_owned(), f.value()))
            .collect();
        Some(Value::Nil)
    }))
    .unwrap();
    l.write(Write::new("s", "b", Value::Int(1))).unwrap();
    l.write(Write::new("s", "a", Value::Int(2))).unwrap();
    l.write(Write::new("s", "b", Value::Int(3))).unwrap();
    assert_eq!(
        *seen.lock(),
        vec![("a".into(), Value::Int(2)), ("b".into(), Value::Int(3))]
    );
}

#[test]
fn callable_target_key_and_nil_results() {
    let l = LedgerStore::memory();
    l.register_derivation(Derivation::new(
        "tasks",
        "summaries",
        TargetKey::computed(|facts: &[Fact]| format!("count_{}", facts.len())),
        |facts: &[Fact]| Some(m(&[("total", Value::Int(facts.len() as i64))])),
    ))
    .unwrap();
    l.register_derivation(
        Derivation::new("tasks", "summaries", "open", |facts: &[Fact]| {
            (!facts.is_empty()).then(|| count(facts.len()))
        })
        .filter(MapKey::sym("status"), Value::sym("open")),
    )
    .unwrap();
    l.write(Write::new("tasks", "t1", status("done"))).unwrap();
    assert_eq!(
        read(&l, "summaries", "count_1"),
        Some(m(&[("total", Value::Int(1))]))
    );
    assert_eq!(read(&l, "summaries", "open"), None, "nil skips the write");
}

#[test]
fn derived_writes_never_retrigger_and_same_store_targets_do_not_loop() {
    let l = LedgerStore::memory();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    l.register_derivation(Derivation::new(
        "tasks",
        "tasks",
        "derived",
        move |_: &[Fact]| {
            c.fetch_add(1, Ordering::SeqCst);
            Some(m(&[("synthetic", Value::Bool(true))]))
        },
    ))
    .unwrap();
    l.write(Write::new("tasks", "t1", Value::Int(1))).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        read(&l, "tasks", "derived"),
        Some(m(&[("synthetic", Value::Bool(true))]))
    );
    // A scatter into its own source store fires once per source write too.
    let folds = Arc::new(AtomicUsize::new(0));
    let f2 = folds.clone();
    l.register_scatter(Scatter::new(
        "index",
        MapKey::sym("group_id"),
        "index",
        move |_: &Value, e: Option<&Value>, _: &Fact| {
            f2.fetch_add(1, Ordering::SeqCst);
            let n = e
                .and_then(|v| v.get_sym("count"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            Some(count(n as usize + 1))
        },
    ))
    .unwrap();
    l.write(Write::new("index", "i1", m(&[("group_id", "g1".into())])))
        .unwrap();
    assert_eq!(folds.load(Ordering::SeqCst), 1);
}

#[test]
fn a_derived_fact_in_the_source_store_joins_later_inputs() {
    // As in the reference (which scans the store on each write), a derived fact whose
    // target is the source store is among the facts later evaluations receive.
    let l = LedgerStore::memory();
    l.register_derivation(counting_derivation("tasks", "tasks", "n"))
        .unwrap();
    l.write(Write::new("tasks", "t1", Value::Int(1))).unwrap();
    assert_eq!(read(&l, "tasks", "n"), Some(count(1)));
    l.write(Write::new("tasks", "t2", Value::Int(1))).unwrap();
    assert_eq!(
        read(&l, "tasks", "n"),
        Some(count(3)),
        "t1, t2 and n itself"
    );
}

#[test]
fn several_derivations_fire_and_other_stores_fire_none() {
    let l = LedgerStore::memory();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    l.register_derivation(counting_derivation("tasks", "counts", "total"))
        .unwrap();
    l.register_derivation(Derivation::new(
        "tasks",
        "titles",
        "list",
        move |facts: &[Fact]| {
            f.fetch_add(1, Ordering::SeqCst);
            Some(Value::array(
                facts
                    .iter()
                    .filter_map(|f| f.value().get_sym("title").cloned()),
            ))
        },
    ))
    .unwrap();
    l.write(Write::new("reminders", "r1", Value::Int(1)))
        .unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 0);
    l.write(Write::new(
        "tasks",
        "t1",
        m(&[("title", "Buy milk".into())]),
    ))
    .unwrap();
    assert_eq!(read(&l, "counts", "total"), Some(count(1)));
    assert_eq!(
        read(&l, "titles", "list"),
        Some(Value::array([Value::from("Buy milk")]))
    );
}

#[test]
fn a_batch_evaluates_each_derivation_once() {
    let l = LedgerStore::memory();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    l.register_derivation(Derivation::new("s", "t", "k", move |facts: &[Fact]| {
        c.fetch_add(1, Ordering::SeqCst);
        Some(count(facts.len()))
    }))
    .unwrap();
    l.commit(
        Batch::new()
            .write(Write::new("s", "a", Value::Int(1)))
            .write(Write::new("s", "b", Value::Int(2))),
    )
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(read(&l, "t", "k"), Some(count(2)));
}

fn comment_index(article: &Value, existing: Option<&Value>, f: &Fact) -> Option<Value> {
    let mut ids = match existing.and_then(|e| e.get_sym("ids")) {
        Some(Value::Array(ids)) => ids.clone(),
        _ => Vec::new(),
    };
    let id = Value::from(f.id().to_string());
    if !ids.contains(&id) {
        ids.push(id);
    }
    Some(m(&[
        ("article_id", article.clone()),
        ("count", Value::Int(ids.len() as i64)),
        ("ids", Value::Array(ids)),
    ]))
}

fn comment(article: &str) -> Value {
    m(&[("article_id", article.into()), ("body", "hi".into())])
}

#[test]
fn scatter_folds_each_fact_into_its_partition() {
    let l = LedgerStore::memory();
    l.register_scatter(Scatter::new(
        "comments",
        MapKey::sym("article_id"),
        "article_comment_index",
        comment_index,
    ))
    .unwrap();
    l.write(Write::new("comments", "c1", comment("a1")))
        .unwrap();
    l.write(Write::new("comments", "c2", comment("a1")))
        .unwrap();
    l.write(Write::new("comments", "c3", comment("a2")))
        .unwrap();
    l.write(Write::new(
        "comments",
        "c4",
        m(&[("body", "no article".into())]),
    ))
    .unwrap();
    let a1 = read(&l, "article_comment_index", "a1").unwrap();
    assert_eq!(a1.get_sym("count"), Some(&Value::Int(2)));
    let a2 = read(&l, "article_comment_index", "a2").unwrap();
    assert_eq!(a2.get_sym("count"), Some(&Value::Int(1)));
    assert_eq!(read(&l, "article_comment_index", ""), None);
    // 4 comments + 3 index versions; a causation chain across index updates.
    assert_eq!(l.fact_count(), 7);
    let chain = l.causation_chain("article_comment_index", "a1");
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0].causation, None);
    assert_eq!(chain[1].causation, Some(chain[0].id));
}

#[test]
fn scatter_passes_the_existing_value_and_skips_nil_results() {
    let l = LedgerStore::memory();
    let seen: Arc<parking_lot::Mutex<Vec<Option<Value>>>> = Arc::default();
    let s2 = seen.clone();
    l.register_scatter(Scatter::new(
        "c",
        MapKey::sym("a"),
        "idx",
        move |_: &Value, e: Option<&Value>, _: &Fact| {
            s2.lock().push(e.cloned());
            let n = e
                .and_then(|v| v.get_sym("count"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            Some(count(n as usize + 1))
        },
    ))
    .unwrap();
    l.register_scatter(Scatter::new(
        "c",
        MapKey::sym("a"),
        "never",
        |_: &Value, _: Option<&Value>, _: &Fact| None,
    ))
    .unwrap();
    l.write(Write::new("c", "c1", m(&[("a", "x".into())])))
        .unwrap();
    l.write(Write::new("c", "c2", m(&[("a", "x".into())])))
        .unwrap();
    assert_eq!(*seen.lock(), vec![None, Some(count(1))]);
    assert_eq!(read(&l, "never", "x"), None);
}

#[test]
fn partition_values_become_keys_as_ruby_prints_them() {
    assert_eq!(partition_key_text(&Value::from("p42")).unwrap(), "p42");
    assert_eq!(partition_key_text(&Value::Int(-3)).unwrap(), "-3");
    assert_eq!(partition_key_text(&Value::Bool(true)).unwrap(), "true");
    assert_eq!(partition_key_text(&Value::Float(1.5)).unwrap(), "1.5");
    assert_eq!(partition_key_text(&Value::Nil), None);
    let l = LedgerStore::memory();
    l.register_scatter(Scatter::new(
        "s",
        MapKey::sym("n"),
        "by_n",
        |pv: &Value, _: Option<&Value>, _: &Fact| Some(pv.clone()),
    ))
    .unwrap();
    l.write(Write::new("s", "k", m(&[("n", Value::Int(7))])))
        .unwrap();
    l.write(Write::new("s", "j", m(&[("n", Value::Nil)])))
        .unwrap();
    assert_eq!(read(&l, "by_n", "7"), Some(Value::Int(7)));
    assert_eq!(
        l.history_raw(igniter_ledger::HistoryQuery::new("by_n"))
            .len(),
        1
    );
}

fn relation(l: &LedgerStore) {
    l.register_relation(Relation::new(
        "article_comments",
        "comments",
        MapKey::sym("article_id"),
        "articles",
    ))
    .unwrap();
}

fn body(article: &str, text: &str) -> Value {
    m(&[("article_id", article.into()), ("body", text.into())])
}

#[test]
fn relations_resolve_the_latest_values_of_indexed_keys() {
    let l = LedgerStore::memory();
    relation(&l);
    let a1 = Value::from("a1");
    assert!(l.resolve("article_comments", &a1, None).unwrap().is_empty());
    l.write(Write::new("comments", "c1", body("a1", "v1")))
        .unwrap();
    l.write(Write::new("comments", "c1", body("a1", "v2")))
        .unwrap();
    l.write(Write::new("comments", "c2", body("a2", "other")))
        .unwrap();
    l.write(Write::new("comments", "c3", m(&[("body", "none".into())])))
        .unwrap();
    assert_eq!(
        l.resolve("article_comments", &a1, None).unwrap(),
        vec![body("a1", "v2")]
    );
    assert_eq!(
        l.resolve("article_comments", &"a2".into(), None)
            .unwrap()
            .len(),
        1
    );
    assert!(l
        .resolve("article_comments", &"".into(), None)
        .unwrap()
        .is_empty());
    // The index: facts in __rel_<name>, one per new key, with the reference's shape.
    let idx = read(&l, "__rel_article_comments", "a1").unwrap();
    assert_eq!(
        idx,
        m(&[
            ("keys", Value::array([Value::from("c1")])),
            ("count", Value::Int(1)),
            ("partition_key", Value::sym("article_id")),
        ])
    );
    // Grow-only: c1 moving to a2 stays under a1 too.
    l.write(Write::new("comments", "c1", body("a2", "moved")))
        .unwrap();
    assert_eq!(
        l.resolve("article_comments", &a1, None).unwrap(),
        vec![body("a2", "moved")]
    );
    assert_eq!(
        l.resolve("article_comments", &"a2".into(), None)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn resolve_as_of_answers_the_relation_as_it_stood() {
    let l = LedgerStore::memory();
    relation(&l);
    let e = l
        .write(Write::new("comments", "c1", body("a1", "Early")))
        .unwrap();
    let between = l.write(Write::new("other", "x", Value::Nil)).unwrap();
    l.write(Write::new("comments", "c2", body("a1", "Later")))
        .unwrap();
    l.write(Write::new("comments", "c1", body("a1", "Edited")))
        .unwrap();
    let a1 = Value::from("a1");
    let t = between.transaction_time();
    assert_eq!(
        l.resolve("article_comments", &a1, Some(t)).unwrap(),
        vec![body("a1", "Early")]
    );
    // Exactly at the source fact's time (before its index fact was written).
    assert_eq!(
        l.resolve("article_comments", &a1, Some(e.transaction_time()))
            .unwrap(),
        vec![body("a1", "Early")]
    );
    let before = Timestamp::from_secs_f64(e.transaction_time().as_secs_f64() - 1.0);
    assert!(l
        .resolve("article_comments", &a1, Some(before))
        .unwrap()
        .is_empty());
    assert_eq!(l.resolve("article_comments", &a1, None).unwrap().len(), 2);
}

#[test]
fn relation_registration_rules() {
    let l = LedgerStore::memory();
    relation(&l);
    relation(&l); // same definition: fine, and no second index scatter
    assert_eq!(l.schema_graph().scatters.len(), 1);
    let e = l
        .register_relation(Relation::new(
            "article_comments",
            "comments",
            MapKey::sym("user_id"),
            "users",
        ))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    assert!(e.to_string().contains("article_comments"), "{e}");
    let e = l.resolve("nonexistent", &"x".into(), None).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    assert!(e.to_string().starts_with("No relation registered"), "{e}");
    assert_eq!(l.fact_count(), 0);
}

#[test]
fn bad_registrations_write_nothing() {
    let l = LedgerStore::memory();
    let e = l
        .register_derivation(counting_derivation("", "t", "k"))
        .unwrap_err();
    assert!(e.to_string().contains("source_store"), "{e}");
    let e = l
        .register_derivation(counting_derivation("s", "", "k"))
        .unwrap_err();
    assert!(e.to_string().contains("target_store"), "{e}");
    let e = l
        .register_derivation(counting_derivation("s", "t", ""))
        .unwrap_err();
    assert!(e.to_string().contains("target_key"), "{e}");
    let e = l
        .register_scatter(Scatter::new("s", MapKey::sym("p"), "", comment_index))
        .unwrap_err();
    assert!(e.to_string().contains("target_store"), "{e}");
    let g = l.schema_graph();
    assert!(g.derivations.is_empty() && g.scatters.is_empty());
    assert_eq!(l.fact_count(), 0);
}

#[test]
fn relations_survive_reopen() {
    let dir = common::tempdir();
    let path = dir.path().join("rel.wal");
    let t;
    {
        let l = LedgerStore::open(&path).unwrap();
        relation(&l);
        l.write(Write::new("comments", "c1", body("a1", "one")))
            .unwrap();
        t = l
            .write(Write::new("x", "x", Value::Nil))
            .unwrap()
            .transaction_time();
        l.write(Write::new("comments", "c2", body("a1", "two")))
            .unwrap();
        l.close().unwrap();
    }
    let l = LedgerStore::open(&path).unwrap();
    let n = l.fact_count();
    relation(&l);
    assert_eq!(l.fact_count(), n, "an intact index is not rewritten");
    assert_eq!(
        l.resolve("article_comments", &"a1".into(), None)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        l.resolve("article_comments", &"a1".into(), Some(t))
            .unwrap(),
        vec![body("a1", "one")]
    );
}

#[test]
fn failing_and_panicking_rules_are_counted_and_never_fail_the_write() {
    let l = LedgerStore::memory();
    l.register_derivation(Derivation::new(
        "s",
        "t",
        "k",
        Fallible(|_: &[Fact]| Err("boom".into())),
    ))
    .unwrap();
    l.register_scatter(Scatter::new(
        "s",
        MapKey::sym("p"),
        "u",
        |_: &Value, _: Option<&Value>, _: &Fact| -> Option<Value> { panic!("rule panic") },
    ))
    .unwrap();
    let f = l
        .write(Write::new("s", "a", m(&[("p", "x".into())])))
        .unwrap();
    assert_eq!(l.latest("s", "a").unwrap().id(), f.id());
    assert_eq!(l.derivation_failures(), 2);
    assert!(l.last_derivation_failure().unwrap().contains("rule panic"));
    assert_eq!(l.fact_count(), 1);
}

#[test]
fn derived_facts_record_their_provenance() {
    let l = LedgerStore::memory();
    l.register_derivation(counting_derivation("s", "t", "k"))
        .unwrap();
    relation(&l);
    let a = l.write(Write::new("s", "a", Value::Int(1))).unwrap();
    let b = l.write(Write::new("s", "b", Value::Int(2))).unwrap();
    let d = l.latest("t", "k").unwrap().derivation().unwrap();
    assert_eq!(d.get_sym("kind"), Some(&Value::sym("derivation")));
    assert_eq!(d.get_sym("trigger"), Some(&Value::from(b.id().to_string())));
    assert_eq!(d.get_sym("inputs"), Some(&Value::Int(2)));
    // The digest proves which facts the rule read: recomputable from them.
    // The digest identifies the set of facts the rule read: the lane-wise sum of
    // blake3(id ++ value hash) over them, recomputable from the facts.
    let mut lanes = [0u64; 4];
    for f in [&a, &b] {
        let mut h = blake3::Hasher::new();
        h.update(f.id().as_bytes());
        h.update(&f.value_hash());
        let bytes = *h.finalize().as_bytes();
        for (i, l) in lanes.iter_mut().enumerate() {
            *l = l.wrapping_add(u64::from_le_bytes(
                bytes[i * 8..i * 8 + 8].try_into().unwrap(),
            ));
        }
    }
    let hex: String = lanes.iter().map(|l| format!("{l:016x}")).collect();
    assert_eq!(d.get_sym("input_digest"), Some(&Value::from(hex)));
    let c = l
        .write(Write::new("comments", "c1", body("a1", "x")))
        .unwrap();
    let r = l
        .latest("__rel_article_comments", "a1")
        .unwrap()
        .derivation()
        .unwrap();
    assert_eq!(r.get_sym("kind"), Some(&Value::sym("relation")));
    assert_eq!(
        r.get_sym("sources"),
        Some(&Value::array([Value::from(c.id().to_string())]))
    );
}

#[test]
fn registration_over_existing_facts_reconciles_and_over_empty_calls_nothing() {
    let l = LedgerStore::memory();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    l.register_derivation(Derivation::new("empty", "t", "k", move |f: &[Fact]| {
        c.fetch_add(1, Ordering::SeqCst);
        Some(count(f.len()))
    }))
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Facts written before any rule (or whose derived write a crash lost).
    for i in 0..5 {
        l.write(Write::new(
            "s",
            format!("k{i}"),
            m(&[("p", Value::Int(i % 2))]),
        ))
        .unwrap();
    }
    l.register_derivation(counting_derivation("s", "t", "n"))
        .unwrap();
    assert_eq!(read(&l, "t", "n"), Some(count(5)));
    l.register_scatter(Scatter::new(
        "s",
        MapKey::sym("p"),
        "by_p",
        |_: &Value, e: Option<&Value>, _: &Fact| {
            Some(Value::Int(e.and_then(Value::as_i64).unwrap_or(0) + 1))
        },
    ))
    .unwrap();
    assert_eq!(read(&l, "by_p", "0"), Some(Value::Int(3)));
    assert_eq!(read(&l, "by_p", "1"), Some(Value::Int(2)));
    let n = l.fact_count();
    // Registering the same rules again writes nothing: the targets already agree.
    l.register_derivation(counting_derivation("s", "t", "n"))
        .unwrap();
    assert_eq!(l.fact_count(), n);
}

#[test]
fn concurrent_writers_leave_every_target_equal_to_its_rule() {
    let l = LedgerStore::memory();
    l.register_derivation(counting_derivation("s", "t", "n"))
        .unwrap();
    l.register_scatter(Scatter::new(
        "s",
        MapKey::sym("p"),
        "by_p",
        |_: &Value, e: Option<&Value>, _: &Fact| {
            Some(Value::Int(e.and_then(Value::as_i64).unwrap_or(0) + 1))
        },
    ))
    .unwrap();
    l.register_relation(Relation::new("r", "s", MapKey::sym("p"), "ps"))
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let l = l.clone();
            s.spawn(move || {
                for i in 0..100 {
                    l.write(Write::new(
                        "s",
                        format!("{t}-{i}"),
                        m(&[("p", Value::Int(i % 3))]),
                    ))
                    .unwrap();
                }
            });
        }
    });
    assert_eq!(l.derivation_failures(), 0);
    assert_eq!(read(&l, "t", "n"), Some(count(400)));
    let folded: i64 = (0..3)
        .map(|p| read(&l, "by_p", &p.to_string()).unwrap().as_i64().unwrap())
        .sum();
    assert_eq!(folded, 400, "each source fact folded exactly once");
    let resolved: usize = (0..3)
        .map(|p| l.resolve("r", &Value::Int(p), None).unwrap().len())
        .sum();
    assert_eq!(resolved, 400);
}

#[test]
fn schema_graph_lists_and_snapshots_everything() {
    let l = LedgerStore::memory();
    l.register_derivation(
        counting_derivation("tasks", "summaries", "open_count")
            .filter(MapKey::sym("status"), Value::sym("open")),
    )
    .unwrap();
    l.register_derivation(Derivation::new(
        "tasks",
        "summaries",
        TargetKey::computed(|f: &[Fact]| f.len().to_string()),
        |_: &[Fact]| None,
    ))
    .unwrap();
    l.register_scatter(Scatter::new(
        "comments",
        MapKey::sym("article_id"),
        "article_comment_index",
        comment_index,
    ))
    .unwrap();
    relation(&l);
    let mut p = Projection::new("tracker_read_model", ["trackers", "tracker_logs"]);
    p.relations.push("tracker_logs_by_tracker".into());
    p.reactive = true;
    l.register_projection(p.clone()).unwrap();
    let g = l.schema_graph();
    assert_eq!(g.derivations_for_store("tasks").len(), 2);
    assert_eq!(
        g.scatters_for_store("comments").len(),
        2,
        "scatter + relation index"
    );
    assert!(g.scatters_for_store("unknown").is_empty());
    assert_eq!(g.registered_relations(), vec!["article_comments"]);
    assert_eq!(
        g.relation_for("article_comments").unwrap().target(),
        "articles"
    );
    assert!(g.relation_for("unknown").is_none());
    assert_eq!(g.projection_for("tracker_read_model"), Some(&p));
    assert_eq!(g.projections_for_store("tracker_logs").len(), 1);
    assert!(g.projections_for_store("unknown").is_empty());

    let d = g.derivation_snapshot();
    let Value::Array(d) = d else { panic!() };
    assert_eq!(
        d[0],
        m(&[
            ("source_store", Value::sym("tasks")),
            ("source_filters", m(&[("status", Value::sym("open"))])),
            ("target_store", Value::sym("summaries")),
            ("target_key", "open_count".into()),
            ("has_rule", Value::Bool(true)),
        ])
    );
    assert_eq!(d[1].get_sym("target_key"), Some(&Value::sym("callable")));
    let Value::Array(s) = g.scatter_snapshot() else {
        panic!()
    };
    assert_eq!(
        s[0],
        m(&[
            ("source_store", Value::sym("comments")),
            ("partition_by", Value::sym("article_id")),
            ("target_store", Value::sym("article_comment_index")),
            ("has_rule", Value::Bool(true)),
        ])
    );
    assert_eq!(
        g.relation_snapshot().get_sym("article_comments"),
        Some(&m(&[
            ("name", Value::sym("article_comments")),
            ("source", Value::sym("comments")),
            ("partition", Value::sym("article_id")),
            ("target", Value::sym("articles")),
            ("index_store", Value::sym("__rel_article_comments")),
        ]))
    );
    assert_eq!(
        g.projection_snapshot().get_sym("tracker_read_model"),
        Some(&m(&[
            ("name", Value::sym("tracker_read_model")),
            (
                "reads",
                Value::array([Value::sym("trackers"), Value::sym("tracker_logs")])
            ),
            (
                "relations",
                Value::array([Value::sym("tracker_logs_by_tracker")])
            ),
            ("consumer_hint", Value::sym("contract_node")),
            ("reactive", Value::Bool(true)),
            ("store_count", Value::Int(2)),
            ("relation_count", Value::Int(1)),
        ]))
    );
}

#[test]
fn lineage_lists_the_derivations_of_the_keys_store() {
    let l = LedgerStore::memory();
    l.write(Write::new("tasks", "t1", Value::Int(1))).unwrap();
    assert!(l.lineage("tasks", "t1").derived_by.is_empty());
    l.register_derivation(counting_derivation("tasks", "summaries", "all"))
        .unwrap();
    l.register_derivation(counting_derivation("reminders", "summaries", "r"))
        .unwrap();
    let lin = l.lineage("tasks", "t1");
    assert_eq!(lin.derived_by.len(), 1);
    assert_eq!(lin.derived_by[0].target_store(), "summaries");
    assert_eq!(lin.derived_by[0].target_key().fixed(), Some("all"));
}

#[test]
fn file_backed_derivations_in_every_durability_mode() {
    for mode in [Durability::Fsync, Durability::Flush, Durability::None] {
        let dir = common::tempdir();
        let path = dir.path().join("d.wal");
        let l = LedgerStore::open_with(&path, OpenOptions::new().durability(mode)).unwrap();
        l.register_derivation(counting_derivation("s", "t", "n"))
            .unwrap();
        relation(&l);
        l.write(Write::new("s", "a", Value::Int(1))).unwrap();
        l.write(Write::new("comments", "c1", body("a1", "x")))
            .unwrap();
        assert_eq!(read(&l, "t", "n"), Some(count(1)), "{mode:?}");
        assert_eq!(
            l.resolve("article_comments", &"a1".into(), None)
                .unwrap()
                .len(),
            1
        );
        l.close().unwrap();
    }
}
