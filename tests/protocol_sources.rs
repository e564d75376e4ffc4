//! The protocol answers from the engines beside the ledger: relations from the
//! derived-state engine's index, lineage's `derived_by` from its derivations, retention
//! policies and compaction activity from the retention engine, and the changefeed's head
//! and counters in the observability snapshot.

use std::sync::Arc;

use igniter_ledger::changefeed::BufferOptions;
use igniter_ledger::protocol::packet::{field, obj};
use igniter_ledger::protocol::{Interpreter, Sources};
use igniter_ledger::retention::{Prune, RetentionPolicy};
use igniter_ledger::{ChangefeedBuffer, Derivation, Fact, LedgerStore, MapKey, Relation, Value};

fn s(x: &str) -> Value {
    Value::sym(x)
}

fn text(x: &str) -> Value {
    Value::from(x)
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, name| {
        field(v, name).unwrap_or_else(|| panic!("no {name} in {v:?}"))
    })
}

fn relation(name: &str, from: &str, to: &str, by: &str) -> Value {
    obj([
        ("schema_version", Value::Int(1)),
        ("kind", s("relation")),
        ("name", s(name)),
        ("from", obj([("store", s(from)), ("key", s("id"))])),
        ("to", obj([("store", s(to)), ("field", s(by))])),
        ("cardinality", s("many")),
    ])
}

fn write(p: &Interpreter, store: &str, key: &str, value: Value) -> String {
    p.write(&obj([
        ("store", s(store)),
        ("key", text(key)),
        ("value", value),
    ]))
    .unwrap()
    .fact_id
    .unwrap()
}

fn task(project: &str, title: &str) -> Value {
    obj([("project_id", text(project)), ("title", text(title))])
}

fn keys(items: &[igniter_ledger::protocol::Item]) -> Vec<&str> {
    items.iter().map(|i| i.key.as_str()).collect()
}

#[test]
fn a_relation_descriptor_is_resolved_from_the_engines_index() {
    let p = Interpreter::new(LedgerStore::memory());
    // A fact written before the relation: indexed when the relation is registered.
    write(&p, "tasks", "t0", task("p1", "Zero"));
    assert!(p
        .register(&relation(
            "project_tasks",
            "projects",
            "tasks",
            "project_id"
        ))
        .is_accepted());
    write(&p, "tasks", "t1", task("p1", "Alpha"));
    write(&p, "tasks", "t2", task("p2", "Beta"));
    let checkpoint = igniter_ledger::Timestamp::now();
    write(&p, "tasks", "t3", task("p1", "Gamma"));

    let from = |v: &str| obj([("relation", s("project_tasks")), ("from", text(v))]);
    let items = p.resolve(&from("p1")).unwrap();
    assert_eq!(keys(&items), ["t0", "t1", "t3"]);
    assert_eq!(items[1].value, task("p1", "Alpha"));
    assert_eq!(keys(&p.resolve(&from("p2")).unwrap()), ["t2"]);
    assert!(p.resolve(&from("p99")).unwrap().is_empty());

    // The index is the engine's: the ledger resolves the same relation, and the index
    // store holds the keys.
    let direct = p
        .store()
        .resolve("project_tasks", &text("p1"), None)
        .unwrap();
    assert_eq!(direct.len(), 3);
    let index = p.store().latest("__rel_project_tasks", "p1").unwrap();
    assert_eq!(
        index.value().get_sym("keys"),
        Some(&Value::Array(vec![text("t0"), text("t1"), text("t3")]))
    );

    // As of a past time: the keys that had joined by then.
    let mut past = from("p1");
    igniter_ledger::protocol::packet::set(
        &mut past,
        "as_of",
        Value::Float(checkpoint.as_secs_f64()),
    );
    assert_eq!(keys(&p.resolve(&past).unwrap()), ["t0", "t1"]);

    // Metadata: one scatter for the relation (the engine's), the relation rule.
    let meta = p.metadata_snapshot();
    let Value::Array(scatters) = get(&meta, &["scatters"]) else {
        panic!("scatters is an Array")
    };
    let for_tasks: Vec<&Value> = scatters
        .iter()
        .filter(|s| field(s, "source_store") == Some(&Value::sym("tasks")))
        .collect();
    assert_eq!(for_tasks.len(), 1);
    assert_eq!(
        get(for_tasks[0], &["target_store"]),
        &s("__rel_project_tasks")
    );
    assert_eq!(
        get(&meta, &["relations", "project_tasks", "partition"]),
        &s("project_id")
    );
}

#[test]
fn a_relation_that_conflicts_with_the_engine_is_rejected_and_changes_nothing() {
    let p = Interpreter::new(LedgerStore::memory());
    p.store()
        .register_relation(Relation::new(
            "owned",
            "tasks",
            MapKey::sym("owner_id"),
            "owners",
        ))
        .unwrap();
    let r = p.register(&relation("owned", "projects", "tasks", "project_id"));
    assert!(r.is_rejected(), "{r:?}");
    assert!(r.errors.iter().any(|e| e.contains("owned")), "{r:?}");
    assert_eq!(
        get(&p.descriptor_snapshot(), &["relations"]),
        &Value::Map(vec![])
    );
    // A relation registered on the ledger directly shows in the metadata too.
    assert_eq!(
        get(&p.metadata_snapshot(), &["relations", "owned", "partition"]),
        &s("owner_id")
    );
}

#[test]
fn lineage_lists_the_engines_derivations() {
    let p = Interpreter::new(LedgerStore::memory());
    p.store()
        .register_derivation(Derivation::new(
            "tasks",
            "task_counts",
            "all",
            |facts: &[Fact]| Some(Value::Int(facts.len() as i64)),
        ))
        .unwrap();
    write(&p, "tasks", "t1", task("p1", "Alpha"));
    let lineage = p
        .lineage(&obj([("store", s("tasks")), ("key", text("t1"))]))
        .unwrap();
    let Value::Array(by) = get(&lineage, &["derived_by"]) else {
        panic!("derived_by is an Array")
    };
    assert_eq!(by.len(), 1);
    assert_eq!(get(&by[0], &["target_store"]), &s("task_counts"));
    assert_eq!(get(&by[0], &["target_key"]), &text("all"));
    // The derived fact was written by the engine, and the metadata lists the rule.
    assert_eq!(
        p.read(&obj([("store", s("task_counts")), ("key", text("all"))]))
            .unwrap(),
        Some(Value::Int(1))
    );
    let meta = p.metadata_snapshot();
    let Value::Array(derivations) = get(&meta, &["derivations"]) else {
        panic!("derivations is an Array")
    };
    assert!(derivations
        .iter()
        .any(|d| field(d, "target_store") == Some(&s("task_counts"))));
}

#[test]
fn compaction_activity_and_retention_come_from_the_retention_engine() {
    let p = Interpreter::new(LedgerStore::memory());
    let store = p.store();
    store
        .set_retention("alpha", RetentionPolicy::ephemeral())
        .unwrap();
    store
        .set_retention("beta", RetentionPolicy::rolling_window(60.0).unwrap())
        .unwrap();
    let none = p.compaction_activity(&obj([])).unwrap();
    assert_eq!(get(&none, &["count"]), &Value::Int(0));

    for st in ["alpha", "beta"] {
        write(&p, st, "k", Value::Int(1));
        write(&p, st, "k", Value::Int(2));
    }
    let pruned = write(&p, "gamma", "g", Value::Int(1));
    store.compact(Some("alpha")).unwrap();
    let since = igniter_ledger::Timestamp::now().as_secs_f64();
    store
        .prune_fact_ids(Prune::new([pruned], Value::sym("test_prune")))
        .unwrap();

    let all = p.compaction_activity(&obj([])).unwrap();
    assert_eq!(get(&all, &["count"]), &Value::Int(2));
    let Value::Array(entries) = get(&all, &["activity"]) else {
        panic!("activity is an Array")
    };
    assert_eq!(get(&entries[0], &["kind"]), &s("retention_compaction"));
    assert_eq!(get(&entries[0], &["executor"]), &s("store_compact"));
    assert_eq!(get(&entries[0], &["store"]), &s("alpha"));
    assert_eq!(get(&entries[0], &["reason"]), &s("ephemeral"));
    assert_eq!(get(&entries[0], &["fact_count"]), &Value::Int(1));
    assert_eq!(get(&entries[1], &["kind"]), &s("exact_prune"));
    assert_eq!(get(&entries[1], &["reason"]), &s("test_prune"));
    assert_eq!(field(&entries[1], "store"), None);

    let count = |packet: Value| get(&p.compaction_activity(&packet).unwrap(), &["count"]).clone();
    assert_eq!(count(obj([("store", s("alpha"))])), Value::Int(1));
    assert_eq!(count(obj([("store", s("beta"))])), Value::Int(0));
    // The prune touched gamma.
    assert_eq!(count(obj([("store", s("gamma"))])), Value::Int(1));
    assert_eq!(count(obj([("kind", s("exact_prune"))])), Value::Int(1));
    assert_eq!(count(obj([("since", Value::Float(since))])), Value::Int(1));
    let newest = p
        .compaction_activity(&obj([("limit", Value::Int(1))]))
        .unwrap();
    assert_eq!(
        get(&newest, &["activity"]),
        &Value::Array(vec![entries[1].clone()])
    );
    assert_eq!(get(&newest, &["filters", "limit"]), &Value::Int(1));

    let meta = p.metadata_snapshot();
    assert_eq!(
        get(&meta, &["retention", "alpha", "strategy"]),
        &s("ephemeral")
    );
    assert_eq!(
        get(&meta, &["retention", "beta", "duration"]),
        &Value::Float(60.0)
    );
    let obs = p.observability_snapshot();
    assert_eq!(get(&obs, &["retention", "activity_count"]), &Value::Int(2));
    assert_eq!(
        get(&obs, &["retention", "last_activity", "kind"]),
        &s("exact_prune")
    );
}

#[test]
fn the_observability_snapshot_shows_the_changefeed_and_the_derived_engine() {
    let p = Interpreter::new(LedgerStore::memory());
    let obs = p.observability_snapshot();
    assert_eq!(get(&obs, &["changefeed", "head_sequence"]), &Value::Int(0));
    assert_eq!(get(&obs, &["changefeed", "attached"]), &Value::Bool(false));
    assert_eq!(
        field(&obs, "changefeed").and_then(|c| field(c, "ledger")),
        None
    );

    write(&p, "tasks", "t1", Value::Int(1));
    let buffer = ChangefeedBuffer::new(BufferOptions {
        max_size: 300,
        ..BufferOptions::default()
    })
    .unwrap();
    p.store().attach_changefeed(&buffer).unwrap();
    write(&p, "tasks", "t2", Value::Int(2));
    write(&p, "tasks", "t3", Value::Int(3));
    let _sub = buffer.subscribe(&["tasks"]);
    let obs = p.observability_snapshot();
    assert_eq!(get(&obs, &["changefeed", "head_sequence"]), &Value::Int(3));
    assert_eq!(get(&obs, &["changefeed", "attached"]), &Value::Bool(true));
    assert_eq!(get(&obs, &["changefeed", "emitted_total"]), &Value::Int(2));
    assert_eq!(get(&obs, &["changefeed", "max_size"]), &Value::Int(300));
    assert_eq!(
        get(&obs, &["changefeed", "subscriber_count"]),
        &Value::Int(1)
    );
    assert_eq!(
        get(&obs, &["changefeed", "ledger"]),
        &Value::Str(p.store().ledger_id().unwrap().to_string())
    );
    assert!(matches!(get(&obs, &["alerts"]), Value::Array(_)));
    assert!(matches!(
        get(&obs, &["changefeed", "diagnostics", "recent"]),
        Value::Array(d) if !d.is_empty()
    ));

    p.store()
        .register_derivation(Derivation::new(
            "tasks",
            "broken",
            "x",
            igniter_ledger::Fallible(|_: &[Fact]| Err("no".into())),
        ))
        .unwrap();
    let obs = p.observability_snapshot();
    assert_eq!(get(&obs, &["derived", "derivations"]), &Value::Int(1));
    assert!(matches!(get(&obs, &["derived", "failures"]), Value::Int(n) if *n >= 1));
}

/// A `Sources` that adds to the engine's answer rather than replacing it.
struct WithPurges;

impl Sources for WithPurges {
    fn compaction_activity(
        &self,
        store: &LedgerStore,
        q: &igniter_ledger::protocol::ActivityQuery,
    ) -> Vec<Value> {
        let mut all = igniter_ledger::protocol::sources::compaction_activity(
            store,
            &igniter_ledger::protocol::ActivityQuery {
                limit: None,
                ..q.clone()
            },
        );
        all.push(obj([
            ("kind", s("segment_purge")),
            ("occurred_at", Value::Float(f64::MAX)),
        ]));
        q.apply(all)
    }
}

#[test]
fn a_source_can_extend_the_engines_answer() {
    let p = Interpreter::with_sources(LedgerStore::memory(), Arc::new(WithPurges));
    p.store()
        .set_retention("alpha", RetentionPolicy::ephemeral())
        .unwrap();
    write(&p, "alpha", "k", Value::Int(1));
    write(&p, "alpha", "k", Value::Int(2));
    p.store().compact(None).unwrap();
    let a = p.compaction_activity(&obj([])).unwrap();
    assert_eq!(get(&a, &["count"]), &Value::Int(2));
    let purges = p
        .compaction_activity(&obj([("kind", s("segment_purge"))]))
        .unwrap();
    assert_eq!(get(&purges, &["count"]), &Value::Int(1));
    // Relations still go to the engine through the defaults.
    assert!(p
        .register(&relation("r", "projects", "tasks", "project_id"))
        .is_accepted());
    assert!(p
        .store()
        .resolve("r", &text("p1"), None)
        .unwrap()
        .is_empty());
}
