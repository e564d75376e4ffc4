//! The Ledger Open Protocol from Rust: descriptors, receipts, operations, the wire
//! envelope (never an error), bad input, the MCP tool bounds and the `Sources` seam.

use std::sync::Arc;

use igniter_ledger::protocol::mcp::{McpTools, READ_TOOLS};
use igniter_ledger::protocol::packet::{field, obj};
use igniter_ledger::protocol::{json, Interpreter, Sources, OPERATIONS};
use igniter_ledger::{LedgerStore, MapKey, Value};

fn s(x: &str) -> Value {
    Value::sym(x)
}

fn text(x: &str) -> Value {
    Value::from(x)
}

fn proto() -> Interpreter {
    Interpreter::new(LedgerStore::memory())
}

fn store_descriptor(name: &str) -> Value {
    obj([
        ("schema_version", Value::Int(1)),
        ("kind", s("store")),
        ("name", s(name)),
        ("key", s("id")),
        ("fields", Value::Array(vec![])),
    ])
}

fn env(op: &str, packet: Value) -> Value {
    obj([
        ("protocol", s("igniter_store")),
        ("schema_version", Value::Int(1)),
        ("request_id", text("req_1")),
        ("op", s(op)),
        ("packet", packet),
    ])
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    static NIL: Value = Value::Nil;
    path.iter().try_fold(v, |v, f| field(v, f)).unwrap_or(&NIL)
}

fn err_text(resp: &Value) -> String {
    get(resp, &["error"]).as_str().unwrap_or("").to_owned()
}

#[test]
fn every_descriptor_kind_is_accepted_and_snapshotted() {
    let p = proto();
    let descriptors = [
        store_descriptor("tasks"),
        obj([
            ("kind", s("history")),
            ("name", s("task_events")),
            ("key", s("task_id")),
        ]),
        obj([
            ("kind", s("access_path")),
            ("name", s("tasks_by_status")),
            ("store", s("tasks")),
            ("fields", Value::Array(vec![s("status")])),
            ("unique", Value::Bool(true)),
        ]),
        obj([
            ("kind", s("relation")),
            ("name", s("project_tasks")),
            ("from", obj([("store", s("projects")), ("key", s("id"))])),
            (
                "to",
                obj([("store", s("tasks")), ("field", s("project_id"))]),
            ),
        ]),
        obj([
            ("kind", s("projection")),
            ("name", s("counts")),
            ("source", s("tasks")),
        ]),
        obj([("kind", s("derivation")), ("name", s("focus"))]),
        obj([
            ("kind", s("command")),
            ("name", s("complete")),
            ("owner", s("tasks")),
            ("operation", s("record_update")),
        ]),
        obj([
            ("kind", s("effect")),
            ("name", s("complete")),
            ("owner", s("tasks")),
            ("store_op", s("store_write")),
            ("write_kind", s("update")),
        ]),
        obj([
            ("kind", s("subscription")),
            ("name", s("changed")),
            ("source", s("tasks")),
        ]),
    ];
    for d in &descriptors {
        let r = p.register(d);
        assert!(r.is_accepted(), "{d:?}: {:?}", r.errors);
    }
    let snap = p.descriptor_snapshot();
    assert!(field(get(&snap, &["stores"]), "tasks").is_some());
    assert!(field(get(&snap, &["histories"]), "task_events").is_some());
    assert!(field(get(&snap, &["subscriptions"]), "changed").is_some());
    assert!(field(get(&snap, &["commands", "tasks"]), "complete").is_some());
    let meta = p.metadata_snapshot();
    assert_eq!(
        get(&meta, &["relations", "project_tasks", "source"]),
        &s("tasks")
    );
    assert_eq!(
        get(&meta, &["relations", "project_tasks", "partition"]),
        &s("project_id")
    );
    assert_eq!(
        get(&meta, &["projections", "counts", "reactive"]),
        &Value::Bool(true)
    );
    assert_eq!(
        get(&meta, &["projections", "counts", "store_count"]),
        &Value::Int(1)
    );
    assert_eq!(
        get(&meta, &["effects", "tasks", "complete", "lowers_to"]),
        &s("store_t")
    );
    assert_eq!(
        get(&meta, &["commands", "tasks", "complete", "target_shape"]),
        &s("store")
    );
    let Value::Array(scatters) = get(&meta, &["scatters"]) else {
        panic!()
    };
    assert_eq!(get(&scatters[0], &["source_store"]), &s("tasks"));
    // The derivation descriptor is metadata only, and says so.
    let r = p.register_as("derivation", &obj([("name", s("other"))]));
    assert!(r.warnings[0].contains("metadata only"));
}

#[test]
fn bad_descriptors_are_rejected_naming_the_problem_and_change_nothing() {
    let p = proto();
    let before = p.descriptor_snapshot();
    let cases: Vec<(Value, &str)> = vec![
        (obj([("name", s("x"))]), "kind"),
        (obj([("kind", s("wormhole")), ("name", s("x"))]), "wormhole"),
        (obj([("kind", s("store")), ("name", s("x"))]), "key"),
        (obj([("kind", s("store")), ("key", s("id"))]), "name"),
        (
            obj([("kind", s("command")), ("name", s("c"))]),
            "owner, operation",
        ),
        (
            obj([
                ("kind", s("command")),
                ("name", s("c")),
                ("owner", s("o")),
                ("operation", s("teleport")),
            ]),
            "Unsupported command operation",
        ),
        (
            obj([
                ("kind", s("effect")),
                ("name", s("e")),
                ("owner", s("o")),
                ("store_op", s("system_shell")),
                ("write_kind", s("update")),
            ]),
            "Unsupported effect store_op",
        ),
        (
            obj([
                ("kind", s("relation")),
                ("name", s("r")),
                ("from", obj([("store", s("a"))])),
                ("to", obj([("store", s("b")), ("field", s("f"))])),
            ]),
            "from",
        ),
        (obj([("kind", s("projection")), ("name", s("p"))]), "reads"),
        (
            obj([
                ("kind", s("store")),
                ("name", s("x")),
                ("key", s("id")),
                ("schema_version", Value::Int(2)),
            ]),
            "schema_version",
        ),
        (text("not a hash"), "Hash"),
    ];
    for (d, needle) in cases {
        let r = p.register(&d);
        assert!(r.is_rejected(), "{d:?}");
        assert!(
            r.errors[0].contains(needle),
            "{:?} should mention {needle}",
            r.errors
        );
    }
    // Deeply nested and oversized descriptors.
    let mut deep = Value::Nil;
    for _ in 0..100 {
        deep = Value::Array(vec![deep]);
    }
    let mut d = store_descriptor("deep");
    igniter_ledger::protocol::packet::set(&mut d, "fields", deep);
    let r = p.register(&d);
    assert!(
        r.is_rejected() && r.errors[0].contains("deeper"),
        "{:?}",
        r.errors
    );
    let mut d = store_descriptor("big");
    igniter_ledger::protocol::packet::set(&mut d, "doc", Value::from("x".repeat(300 * 1024)));
    let r = p.register(&d);
    assert!(
        r.is_rejected() && r.errors[0].contains("too large"),
        "{:?}",
        r.errors
    );
    assert_eq!(p.descriptor_snapshot(), before);
}

#[test]
fn deduplication_ignores_key_order_and_the_symbol_string_form() {
    let p = proto();
    assert!(p.register(&store_descriptor("things")).is_accepted());
    assert!(p.register(&store_descriptor("things")).is_deduplicated());
    // Same descriptor from JSON (String names, other key order).
    let j: serde_json::Value = serde_json::from_str(
        r#"{"fields":[],"key":"id","name":"things","kind":"store","schema_version":1}"#,
    )
    .unwrap();
    assert!(p.register(&json::from_json(&j)).is_deduplicated());
    // A changed descriptor under the same name replaces it.
    let mut changed = store_descriptor("things");
    igniter_ledger::protocol::packet::set(&mut changed, "key", s("uuid"));
    assert!(p.register(&changed).is_accepted());
    assert_eq!(
        get(&p.descriptor_snapshot(), &["stores", "things", "key"]),
        &s("uuid")
    );
    // Going back to the first one is a change again, not a duplicate.
    assert!(p.register(&store_descriptor("things")).is_accepted());
}

#[test]
fn writes_reads_queries_and_provenance() {
    let p = proto();
    for (k, status, prio) in [
        ("t1", "pending", 3),
        ("t2", "open", 1),
        ("t3", "pending", 2),
    ] {
        let r = p
            .write(&obj([
                ("store", s("tasks")),
                ("key", text(k)),
                (
                    "value",
                    obj([("status", s(status)), ("prio", Value::Int(prio))]),
                ),
            ]))
            .unwrap();
        assert!(r.is_accepted() && r.fact_id.is_some() && r.value_hash.is_some());
    }
    let pending = p
        .query(&obj([
            ("store", s("tasks")),
            ("where", obj([("status", s("pending"))])),
            ("order", s("prio")),
        ]))
        .unwrap();
    assert_eq!(
        pending.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["t3", "t1"]
    );
    let desc = p
        .query(&obj([
            ("store", s("tasks")),
            ("order", obj([("prio", s("desc"))])),
            ("limit", Value::Int(2)),
        ]))
        .unwrap();
    assert_eq!(
        desc.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["t1", "t3"]
    );
    assert_eq!(
        p.read(&obj([("store", s("tasks")), ("key", text("t2"))]))
            .unwrap(),
        Some(obj([("status", s("open")), ("prio", Value::Int(1))]))
    );
    // A second write of t1 chains to the first.
    p.write(&obj([
        ("store", s("tasks")),
        ("key", text("t1")),
        ("value", obj([("status", s("done"))])),
    ]))
    .unwrap();
    let chain = p
        .causation_chain(&obj([("store", s("tasks")), ("key", text("t1"))]))
        .unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(get(&chain[1], &["causation"]), get(&chain[0], &["id"]));
    let lineage = p
        .lineage(&obj([("store", s("tasks")), ("key", text("t1"))]))
        .unwrap();
    assert_eq!(get(&lineage, &["depth"]), &Value::Int(2));
    assert!(get(&lineage, &["proof_hash"]).as_str().is_some());
    let id = get(&chain[0], &["id"]).clone();
    let r = p.fact_ref(&obj([("fact_id", id)])).unwrap().unwrap();
    assert_eq!(get(&r, &["key"]), &text("t1"));
    assert!(field(&r, "value").is_none());
    assert_eq!(p.fact_ref(&obj([("fact_id", text("nope"))])).unwrap(), None);
    // Missing fields are errors naming the field.
    let e = p
        .write(&obj([("key", text("k")), ("value", Value::Int(1))]))
        .unwrap_err();
    assert_eq!(e.field(), Some("store"));
    let e = p.read(&obj([("store", s("tasks"))])).unwrap_err();
    assert_eq!(e.field(), Some("key"));
}

#[test]
fn write_fact_append_replay_resolve_and_sync() {
    let p = proto();
    let r = p.write_fact(&obj([
        ("kind", s("fact")),
        ("store", s("tasks")),
        ("key", text("t1")),
        ("value", obj([("project_id", text("p1"))])),
        ("valid_time", Value::Float(1_714_200_123.5)),
        ("producer", obj([("system", s("ext"))])),
    ]));
    assert!(r.is_accepted());
    let f = p.store().latest("tasks", "t1").unwrap();
    assert_eq!(f.valid_time(), Some(1_714_200_123.5));
    assert_eq!(f.producer(), Some(obj([("system", s("ext"))])));
    assert!(p
        .write_fact(&obj([
            ("kind", s("store")),
            ("store", s("t")),
            ("key", text("k")),
            ("value", Value::Nil)
        ]))
        .errors[0]
        .contains("kind"));
    assert!(p
        .write_fact(&obj([
            ("kind", s("fact")),
            ("key", text("k")),
            ("value", Value::Int(1))
        ]))
        .errors[0]
        .contains("store"));

    let a = p
        .append(&obj([
            ("history", s("events")),
            ("event", obj([("obs", text("o1"))])),
            ("partition_key", s("obs")),
            ("key", text("client-key")),
        ]))
        .unwrap();
    assert_eq!(a.kind.as_deref(), Some("append_receipt"));
    assert_ne!(a.key.as_deref(), Some("client-key"));
    assert!(a.warnings[0].contains("metadata only"));

    let replay = p
        .replay(&obj([(
            "filter",
            obj([
                ("store", s("events")),
                ("partition_key", s("obs")),
                ("partition_value", text("o1")),
            ]),
        )]))
        .unwrap();
    assert_eq!(replay.len(), 1);
    assert_eq!(get(&replay[0], &["kind"]), &s("fact"));
    assert_eq!(p.replay(&obj([])).unwrap().len(), 2);

    p.register(&obj([
        ("kind", s("relation")),
        ("name", s("project_tasks")),
        ("from", obj([("store", s("projects")), ("key", s("id"))])),
        (
            "to",
            obj([("store", s("tasks")), ("field", s("project_id"))]),
        ),
    ]));
    let items = p
        .resolve(&obj([
            ("relation", s("project_tasks")),
            ("from", text("p1")),
        ]))
        .unwrap();
    assert_eq!(items.len(), 1);
    assert!(p
        .resolve(&obj([("relation", s("p99")), ("from", text("x"))]))
        .is_err());

    let full = p.sync_hub_profile(&obj([])).unwrap();
    assert!(full.is_full());
    // The two facts written, and the relation's index fact (the relation is registered
    // with the derived-state engine, which indexed the task already there).
    assert_eq!(full.facts.len(), 3);
    assert_eq!(get(&full.facts[2], &["store"]), &s("__rel_project_tasks"));
    let cursor = full.next_cursor.unwrap();
    let inc = p
        .sync_hub_profile(&obj([(
            "cursor",
            obj([("kind", s("timestamp")), ("value", Value::Float(cursor))]),
        )]))
        .unwrap();
    assert!(inc.is_incremental());
    assert!(inc.facts.is_empty());
    assert_eq!(inc.next_cursor, Some(cursor));
}

#[test]
fn the_wire_envelope_never_fails_and_echoes_the_request_id() {
    let p = proto();
    assert_eq!(OPERATIONS.len(), 18);
    let facts_before = p.store().fact_count();
    let bad: Vec<(Value, &str)> = vec![
        (text("just a string"), "Hash"),
        (
            obj([
                ("request_id", text("req_1")),
                ("protocol", s("other")),
                ("op", s("write")),
                ("packet", obj([])),
            ]),
            "protocol",
        ),
        (
            obj([
                ("request_id", text("req_1")),
                ("protocol", s("igniter_store")),
                ("schema_version", Value::Int(9)),
                ("op", s("read")),
                ("packet", obj([])),
            ]),
            "schema_version",
        ),
        (
            obj([
                ("request_id", text("req_1")),
                ("protocol", s("igniter_store")),
                ("packet", obj([])),
            ]),
            "op",
        ),
        (env("teleport", obj([])), "teleport"),
        (
            obj([
                ("request_id", text("req_1")),
                ("protocol", s("igniter_store")),
                ("op", s("write")),
            ]),
            "packet",
        ),
        (env("write", Value::Int(3)), "packet"),
        (
            env("write", obj([("key", text("t1")), ("value", obj([]))])),
            "store",
        ),
        (
            env(
                "resolve",
                obj([("relation", Value::Nil), ("from", text("x"))]),
            ),
            "error",
        ),
    ];
    for (e, needle) in bad {
        let resp = p.dispatch(&e);
        assert_eq!(get(&resp, &["status"]), &s("error"), "{e:?}");
        assert!(
            err_text(&resp).contains(needle),
            "{} should mention {needle}",
            err_text(&resp)
        );
        if matches!(e, Value::Map(_)) {
            assert_eq!(get(&resp, &["request_id"]), &text("req_1"));
        }
    }
    // A deeply nested packet is an error too, and nothing was written.
    let mut deep = Value::Int(1);
    for _ in 0..200 {
        deep = Value::Array(vec![deep]);
    }
    let resp = p.dispatch(&env(
        "write",
        obj([("store", s("t")), ("key", text("k")), ("value", deep)]),
    ));
    assert_eq!(get(&resp, &["status"]), &s("error"));
    assert_eq!(p.store().fact_count(), facts_before);
    // A rejected descriptor is an ok response carrying the rejection.
    let resp = p.dispatch(&env("register_descriptor", obj([("kind", s("store"))])));
    assert_eq!(get(&resp, &["status"]), &s("ok"));
    assert_eq!(get(&resp, &["result", "status"]), &s("rejected"));
    // Malformed JSON is an error response, in JSON.
    let out: serde_json::Value =
        serde_json::from_str(&p.wire().dispatch_json("{not json")).unwrap();
    assert_eq!(out["status"], "error");
}

#[test]
fn every_operation_round_trips_through_json() {
    let p = proto();
    p.register(&store_descriptor("tasks"));
    let w = p.wire();
    let ops = [
        r#"{"op":"write","packet":{"store":"tasks","key":"t1","value":{"status":"open","n":1.5,"tags":["a"]}}}"#,
        r#"{"op":"append","packet":{"history":"ev","event":{"k":"t1"}}}"#,
        r#"{"op":"write_fact","packet":{"kind":"fact","store":"tasks","key":"t2","value":{"status":"done"}}}"#,
        r#"{"op":"read","packet":{"store":"tasks","key":"t1"}}"#,
        r#"{"op":"query","packet":{"store":"tasks","where":{"status":"open"},"limit":5}}"#,
        r#"{"op":"causation_chain","packet":{"store":"tasks","key":"t1"}}"#,
        r#"{"op":"lineage","packet":{"store":"tasks","key":"t1"}}"#,
        r#"{"op":"replay","packet":{"filter":{"store":"tasks"}}}"#,
        r#"{"op":"sync_hub_profile","packet":{"stores":["tasks"]}}"#,
        r#"{"op":"metadata_snapshot","packet":{}}"#,
        r#"{"op":"descriptor_snapshot","packet":{}}"#,
        r#"{"op":"observability_snapshot","packet":{}}"#,
        r#"{"op":"storage_stats","packet":{}}"#,
        r#"{"op":"segment_manifest","packet":{}}"#,
        r#"{"op":"compaction_activity","packet":{"limit":10}}"#,
    ];
    for op in ops {
        let body = op.replacen(
            '{',
            r#"{"protocol":"igniter_store","schema_version":1,"request_id":"j1","#,
            1,
        );
        let out: serde_json::Value = serde_json::from_str(&w.dispatch_json(&body)).unwrap();
        assert_eq!(out["status"], "ok", "{op}: {out}");
        assert_eq!(out["request_id"], "j1");
    }
    let out: serde_json::Value = serde_json::from_str(&w.dispatch_json(
        r#"{"protocol":"igniter_store","schema_version":1,"request_id":"j2","op":"read","packet":{"store":"tasks","key":"t1"}}"#,
    ))
    .unwrap();
    assert_eq!(
        out["result"]["value"],
        serde_json::json!({"status":"open","n":1.5,"tags":["a"]})
    );
    // Value -> JSON -> Value keeps everything but the Symbol/String distinction of values.
    let v = obj([
        ("a", Value::Int(1)),
        (
            "b",
            Value::Array(vec![Value::Bool(true), Value::Nil, Value::Float(2.5)]),
        ),
        ("c", text("x")),
    ]);
    assert_eq!(json::from_json(&json::to_json(&v)), v);
}

#[test]
fn mcp_tools_are_bounded() {
    let p = proto();
    for i in 0..5 {
        p.write(&obj([
            ("store", s("ev")),
            ("key", text(&format!("e{i}"))),
            ("value", Value::Int(i)),
        ]))
        .unwrap();
    }
    let tools = McpTools::read_only(&p);
    assert_eq!(tools.tools().len(), READ_TOOLS.len());
    let q = tools.call("query", &obj([("store", s("ev"))]));
    assert_eq!(get(&q, &["status"]), &s("error"));
    assert!(err_text(&q).contains("limit"));
    let q = tools.call(
        "query",
        &obj([("store", s("ev")), ("limit", Value::Int(2))]),
    );
    assert_eq!(
        get(&q, &["result"]),
        &Value::Array(vec![Value::Int(0), Value::Int(1)])
    );
    let r = tools.call("replay", &obj([]));
    assert!(err_text(&r).contains("bounding"));
    let r = tools.call(
        "replay",
        &obj([("store", s("ev")), ("limit", Value::Int(3))]),
    );
    assert_eq!(get(&r, &["result", "count"]), &Value::Int(3));
    assert_eq!(get(&r, &["result", "truncated"]), &Value::Bool(true));
    for _ in 0..3 {
        p.write(&obj([
            ("store", s("ev")),
            ("key", text("e0")),
            ("value", Value::Int(9)),
        ]))
        .unwrap();
    }
    let c = tools.call(
        "causation_chain",
        &obj([
            ("store", s("ev")),
            ("key", text("e0")),
            ("limit", Value::Int(2)),
        ]),
    );
    assert_eq!(get(&c, &["result", "count"]), &Value::Int(2));
    assert_eq!(get(&c, &["result", "truncated"]), &Value::Bool(true));
    let w = tools.call(
        "write",
        &obj([
            ("store", s("ev")),
            ("key", text("x")),
            ("value", Value::Int(1)),
        ]),
    );
    assert!(err_text(&w).contains("not enabled"));
    assert_eq!(p.store().fact_count(), 8);
    let u = tools.call("nope", &obj([("request_id", text("rq"))]));
    assert_eq!(get(&u, &["request_id"]), &text("rq"));
    assert_eq!(get(&u, &["source_protocol_op"]), &Value::Nil);
    assert!(McpTools::enabled(&p, &["frobnicate"]).is_err());
}

/// A `Sources` standing in for segment storage: what the segments module will plug in.
struct FakeSegments;

impl Sources for FakeSegments {
    fn storage_stats(&self, _store: &LedgerStore, name: Option<&str>) -> Option<Value> {
        Some(Value::map([
            (MapKey::str("schema_version"), Value::Int(1)),
            (MapKey::str("store"), name.map_or(Value::Nil, Value::from)),
        ]))
    }
}

#[test]
fn sources_fill_the_answers_other_modules_own() {
    let plain = proto();
    assert_eq!(plain.storage_stats(&obj([])).unwrap(), None);
    assert!(field(&plain.metadata_snapshot(), "storage").is_none());
    let p = Interpreter::with_sources(LedgerStore::memory(), Arc::new(FakeSegments));
    let stats = p
        .storage_stats(&obj([("store", s("readings"))]))
        .unwrap()
        .unwrap();
    assert_eq!(stats.get(&MapKey::str("store")), Some(&text("readings")));
    assert!(field(&p.metadata_snapshot(), "storage").is_some());
    // Activity defaults to none: without the retention module nothing compacts.
    let a = p.compaction_activity(&obj([])).unwrap();
    assert_eq!(get(&a, &["count"]), &Value::Int(0));
}

#[test]
fn tbackend_descriptors_hash_canonically_and_diagnose() {
    use igniter_ledger::protocol::{Requirements, TBackendAdapterDescriptor};
    let p = proto();
    p.register(&obj([
        ("kind", s("history")),
        ("name", s("events")),
        ("key", s("id")),
    ]));
    let meta = p.metadata_snapshot();
    let desc = p.descriptor_snapshot();
    let ops = ["read", "append", "replay", "metadata_snapshot"];
    let d = TBackendAdapterDescriptor::build(&meta, &desc, Some("sha256:schema"), &ops);
    assert_eq!(
        d.supported_tbackend_ops,
        ["read", "append", "replay", "snapshot"]
    );
    assert_eq!(d.hook_methods, ["read_as_of", "bihistory_at"]);
    assert!(d.descriptor_hash.starts_with("sha256:") && d.descriptor_hash.len() == 71);
    // Key order does not change the hashes.
    let reversed = |v: &Value| match v {
        Value::Map(p) => Value::Map(p.iter().rev().cloned().collect()),
        other => other.clone(),
    };
    let again = TBackendAdapterDescriptor::build(
        &reversed(&meta),
        &reversed(&desc),
        Some("sha256:schema"),
        &ops,
    );
    assert_eq!(again.descriptor_hash, d.descriptor_hash);
    assert_eq!(again.descriptor_registry_hash, d.descriptor_registry_hash);
    // The payload reads back; diagnostics name what is missing.
    let back = TBackendAdapterDescriptor::from_value(&d.to_value()).unwrap();
    let diag = back.diagnostics(&Requirements {
        ops: vec!["read".into(), "compact".into()],
        schema_fingerprint: Some("sha256:other".into()),
        ..Requirements::default()
    });
    assert_eq!(get(&diag, &["status"]), &text("blocked"));
    assert_eq!(
        get(&diag, &["missing_ops"]),
        &Value::Array(vec![text("compact")])
    );
    assert_eq!(
        get(&diag, &["schema_fingerprint_match"]),
        &Value::Bool(false)
    );
    let ok = back.diagnostics(&Requirements::default());
    assert_eq!(get(&ok, &["status"]), &text("ok"));
}
