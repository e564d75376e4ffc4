//! A real MCP client (rmcp) drives `igniter-ledger mcp` over stdio: initialize →
//! tools/list → tools/call, against a ledger file written beforehand.

use igniter_ledger::{Append, LedgerStore, MapKey, Value, Write};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Map, Value as J};

fn ledger_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("ledger.wal");
    let ledger = LedgerStore::open(&path).unwrap();
    let task = |title: &str, status: &str| {
        Value::map([
            (MapKey::sym("title"), Value::from(title)),
            (MapKey::sym("status"), Value::sym(status)),
        ])
    };
    ledger
        .write(Write::new("tasks", "t1", task("Alpha", "open")))
        .unwrap();
    ledger
        .write(Write::new("tasks", "t2", task("Beta", "done")))
        .unwrap();
    ledger
        .write(Write::new("tasks", "t1", task("Alpha 2", "open")))
        .unwrap();
    ledger
        .append(Append::new(
            "task_events",
            Value::map([(MapKey::sym("task_id"), Value::from("t1"))]),
        ))
        .unwrap();
    ledger.close().unwrap();
    path
}

async fn start(path: &std::path::Path, extra: &[&str]) -> RunningService<RoleClient, ()> {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_igniter-ledger"));
    cmd.arg("mcp").arg("--path").arg(path).args(extra);
    let transport = TokioChildProcess::new(cmd).expect("spawn igniter-ledger mcp");
    ().serve(transport).await.expect("MCP initialize handshake")
}

fn args(v: J) -> Map<String, J> {
    match v {
        J::Object(m) => m,
        _ => panic!("arguments must be an object"),
    }
}

async fn call(client: &RunningService<RoleClient, ()>, name: &str, a: J) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args(a)))
        .await
        .expect("tools/call")
}

fn envelope(r: &CallToolResult) -> &J {
    r.structured_content.as_ref().expect("structured content")
}

#[tokio::test]
async fn handshake_list_and_read_tools_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_file(&dir);
    let client = start(&path, &[]).await;

    // initialize: the server introduced itself and offers tools.
    let info = client.peer_info().expect("server info after initialize");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("igniter-ledger")
    );
    assert!(info.capabilities.tools.is_some());

    // tools/list: the 14 read tools, each with an object JSON Schema; no write tool.
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    let mut expected = igniter_ledger::protocol::mcp::READ_TOOLS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for t in &tools {
        assert_eq!(
            t.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            t.name
        );
        assert_eq!(
            t.annotations.as_ref().and_then(|a| a.read_only_hint),
            Some(true)
        );
    }
    let query = tools.iter().find(|t| t.name == "query").unwrap();
    assert_eq!(
        query.input_schema.get("required"),
        Some(&json!(["store", "limit"]))
    );

    // metadata_snapshot names the stores that hold facts, registered by descriptor or not.
    let meta = call(&client, "metadata_snapshot", json!({})).await;
    assert_eq!(meta.is_error, Some(false));
    let env = envelope(&meta);
    assert_eq!(env["status"], "ok");
    assert_eq!(env["source_protocol_op"], "metadata_snapshot");
    assert_eq!(
        env["result"]["fact_stores"],
        json!(["task_events", "tasks"])
    );
    assert_eq!(env["result"]["stores"], json!({}));

    // read: the current value.
    let read = call(
        &client,
        "read",
        json!({"store": "tasks", "key": "t1", "request_id": "r1"}),
    )
    .await;
    let env = envelope(&read);
    assert_eq!(env["request_id"], "r1");
    assert_eq!(env["result"]["title"], "Alpha 2");
    assert_eq!(env["result"]["status"], "open");

    // query: bounded, filtered (a Symbol value matches its text over JSON).
    let q = call(
        &client,
        "query",
        json!({"store": "tasks", "where": {"status": "open"}, "limit": 10}),
    )
    .await;
    assert_eq!(
        envelope(&q)["result"],
        json!([{"title": "Alpha 2", "status": "open"}])
    );

    // causation chain and lineage over the file's history.
    let chain = call(
        &client,
        "causation_chain",
        json!({"store": "tasks", "key": "t1"}),
    )
    .await;
    let env = envelope(&chain);
    assert_eq!(env["result"]["count"], 2);
    assert_eq!(
        env["result"]["chain"][1]["causation"],
        env["result"]["chain"][0]["id"]
    );

    // replay: bounded by store and limit.
    let replay = call(&client, "replay", json!({"store": "tasks", "limit": 2})).await;
    assert_eq!(envelope(&replay)["result"]["count"], 2);

    client.cancel().await.unwrap();
}

#[tokio::test]
async fn bad_calls_are_tool_errors_and_writes_need_the_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_file(&dir);
    let client = start(&path, &[]).await;

    // query without limit: refused, naming the field.
    let q = call(&client, "query", json!({"store": "tasks"})).await;
    assert_eq!(q.is_error, Some(true));
    assert!(envelope(&q)["error"].as_str().unwrap().contains("limit"));

    // a limit beyond the bound is refused too.
    let q = call(
        &client,
        "query",
        json!({"store": "tasks", "limit": 1_000_000}),
    )
    .await;
    assert_eq!(q.is_error, Some(true));

    // replay without any bound: refused.
    let r = call(&client, "replay", json!({})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(envelope(&r)["error"].as_str().unwrap().contains("bounding"));

    // an unknown argument: refused, naming it.
    let r = call(
        &client,
        "read",
        json!({"store": "tasks", "key": "t1", "sneaky": 1}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(envelope(&r)["error"].as_str().unwrap().contains("sneaky"));

    // write is not served read-only.
    let w = call(
        &client,
        "write",
        json!({"store": "tasks", "key": "t9", "value": {"n": 1}}),
    )
    .await;
    assert_eq!(w.is_error, Some(true));
    assert!(envelope(&w)["error"]
        .as_str()
        .unwrap()
        .contains("not enabled"));
    client.cancel().await.unwrap();

    // With --allow-write write, the write tool is listed and writes.
    let client = start(&path, &["--allow-write", "write"]).await;
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.contains(&"write".to_owned()));
    assert!(!names.contains(&"append".to_owned()));
    let w = call(
        &client,
        "write",
        json!({"store": "tasks", "key": "t9", "value": {"n": 1}}),
    )
    .await;
    assert_eq!(w.is_error, Some(false), "{:?}", envelope(&w));
    assert_eq!(envelope(&w)["result"]["status"], "accepted");
    let read = call(&client, "read", json!({"store": "tasks", "key": "t9"})).await;
    assert_eq!(envelope(&read)["result"], json!({"n": 1}));
    client.cancel().await.unwrap();

    // The write reached the file.
    let ledger = LedgerStore::open(&path).unwrap();
    assert!(ledger.latest("tasks", "t9").is_some());
}
