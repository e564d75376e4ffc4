//! The ledger server end to end: legacy ops, wire envelopes, push subscriptions,
//! limits, token, malformed input, HTTP routes, SSE, drain.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{header, http, Framed};
use igniter_ledger::{LedgerStore, Value, Write as LWrite};
use igniter_ledger_server::server::{frame, NullSink, Server, ServerHandle, ServerOptions};
use serde_json::{json, Value as Json};

fn start(opts: ServerOptions) -> ServerHandle {
    Server::start(LedgerStore::memory(), opts, Arc::new(NullSink)).unwrap()
}

fn local() -> ServerOptions {
    ServerOptions::tcp("127.0.0.1:0")
}

fn ref_fact(id: &str, store: &str, key: &str, n: i64) -> Json {
    json!({"id": id, "store": store, "key": key, "value": {"n": n}, "value_hash": "x",
           "causation": null, "transaction_time": 1_700_000_000.0 + n as f64, "valid_time": null,
           "schema_version": 1, "producer": null, "derivation": null})
}

fn env(op: &str, packet: Json) -> Json {
    json!({"protocol": "igniter_store", "schema_version": 1, "request_id": "r-1", "op": op, "packet": packet})
}

#[test]
fn legacy_ops_round_trip() {
    let h = start(local());
    let mut c = Framed::connect(h.bind_address());
    assert_eq!(
        c.rpc(json!({"op": "ping"})),
        json!({"ok": true, "pong": true})
    );
    let id = "0190c5a0-0000-7000-8000-000000000001";
    assert_eq!(
        c.rpc(json!({"op": "write_fact", "fact": ref_fact(id, "tasks", "t1", 1)}))["ok"],
        true
    );
    let r = c.rpc(json!({"op": "replay"}));
    let facts = r["facts"].as_array().unwrap();
    assert_eq!(facts.len(), 1);
    assert_eq!(facts[0]["id"], id);
    assert_eq!(facts[0]["key"], "t1");
    assert_eq!(facts[0]["value"], json!({"n": 1}));
    assert_eq!(facts[0]["transaction_time"], 1_700_000_001.0);
    let s = c.rpc(json!({"op": "stats"}));
    assert_eq!(
        (
            s["facts_written"].as_u64(),
            s["connections_active"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert!(s["uptime_ms"].as_u64().unwrap() > 0);
    let st = c.rpc(json!({"op": "server_status"}));
    assert_eq!(st["ok"], true);
    assert_eq!(st["metrics"]["facts_written"], 1);
    assert!(st["alerts"].is_array() && st["server"].is_object());
    let u = c.rpc(json!({"op": "bogus"}));
    assert_eq!(
        (u["ok"].clone(), u["error_code"].clone()),
        (json!(false), json!("unknown_op"))
    );
    assert!(u["error"].as_str().unwrap().contains("bogus"));
    assert_eq!(
        c.rpc(json!({"op": "write_snapshot", "facts": []}))["ok"],
        true
    );
    assert_eq!(c.rpc(json!({"op": "close"}))["ok"], true);
    assert!(c.closed());
    let m = h.metrics();
    assert_eq!(m.requests_total["write_fact"], 1);
    assert!(m.errors_total.values().sum::<u64>() >= 1);
    assert!(m.bytes_in > 0 && m.bytes_out > 0);
    h.stop();
}

#[test]
fn envelopes_on_the_same_listener() {
    let h = start(local());
    let mut c = Framed::connect(h.bind_address());
    let w = c.rpc(env(
        "write",
        json!({"store": "items", "key": "i1", "value": {"label": "Widget"}}),
    ));
    assert_eq!(w["status"], "ok", "{w}");
    let r = c.rpc(env("read", json!({"store": "items", "key": "i1"})));
    assert_eq!(r["result"]["value"]["label"], "Widget");
    assert_eq!(r["request_id"], "r-1");
    let bad = c.rpc(json!({"protocol": "other", "op": "read", "packet": {}}));
    assert_eq!(bad["status"], "error");
    let unknown = c.rpc(env("nonexistent_op", json!({})));
    assert_eq!(unknown["status"], "error");
    h.stop();
}

#[test]
fn push_subscription_filters_by_store() {
    let h = start(local());
    let mut sub = Framed::connect(h.bind_address());
    assert_eq!(
        sub.rpc(json!({"op": "subscribe", "stores": ["tasks"]})),
        json!({"ok": true})
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.subscription_count("tasks") != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(h.subscription_count("tasks"), 1);
    let mut w = Framed::connect(h.bind_address());
    w.rpc(json!({"op": "write_fact", "fact": ref_fact("a", "other", "o1", 1)}));
    w.rpc(json!({"op": "write_fact", "fact": ref_fact("b", "tasks", "t1", 2)}));
    let ev = sub.recv().unwrap();
    assert_eq!(ev["event"], "fact_written");
    assert_eq!(ev["fact"]["key"], "t1");
    sub.send(&json!({"op": "close"}));
    assert!(sub.closed());
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.subscription_count("tasks") != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(h.subscription_count("tasks"), 0);
    h.stop();
}

#[test]
fn malformed_input_gets_an_error_and_a_close() {
    let h = start(local().max_frame_bytes(1024).max_nesting(8));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (frame::encode(b"not json"), "invalid_json"),
        (frame::encode(b"[1,2]"), "invalid_json"),
        (
            frame::encode(json!({"a": [[[[[[[[[[1]]]]]]]]]]}).to_string().as_bytes()),
            "invalid_json",
        ),
        (
            {
                let mut f = frame::encode(b"{\"op\":\"ping\"}");
                let n = f.len();
                f[n - 1] ^= 0xff;
                f
            },
            "bad_frame",
        ),
        ((2048u32).to_be_bytes().to_vec(), "bad_frame"),
    ];
    for (bytes, code) in cases {
        let mut c = Framed::connect(h.bind_address());
        c.send_raw(&bytes);
        let a = c.recv().expect("an error answer");
        assert_eq!(a["error_code"], code, "{a}");
        assert!(c.closed());
    }
    // Random bytes never take the server down.
    let mut seed = 7u64;
    for _ in 0..200 {
        let mut c = Framed::connect(h.bind_address());
        let n = (seed % 64) as usize + 1;
        let bytes: Vec<u8> = (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) as u8
            })
            .collect();
        c.send_raw(&bytes);
        let _ = c.0.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = c.0.read_to_end(&mut sink);
    }
    let mut c = Framed::connect(h.bind_address());
    assert_eq!(c.rpc(json!({"op": "ping"}))["pong"], true);
    h.stop();
}

#[test]
fn connection_limit_and_timeouts() {
    let h = start(
        local()
            .max_connections(2)
            .idle_timeout(Some(Duration::from_millis(300)))
            .slow_timeout(Duration::from_millis(300)),
    );
    let mut a = Framed::connect(h.bind_address());
    let mut b = Framed::connect(h.bind_address());
    a.rpc(json!({"op": "ping"}));
    b.rpc(json!({"op": "ping"}));
    let mut c = Framed::connect(h.bind_address());
    let refused = c.recv().expect("an error frame");
    assert_eq!(refused["error_code"], "too_many_connections");
    assert!(c.closed());
    assert_eq!(h.metrics().rejected_connections_total, 1);
    // Idle: a and b say nothing; each is told why, then closed.
    for c in [&mut a, &mut b] {
        assert_eq!(
            c.recv().expect("an error frame")["error_code"],
            "idle_timeout"
        );
        assert!(c.closed());
    }
    // Slow: a frame started but never finished.
    let mut s = Framed::connect(h.bind_address());
    s.send_raw(&[0, 0, 0, 50, b'{']);
    let t = Instant::now();
    let a = s.recv().expect("an error frame");
    assert_eq!(a["error_code"], "bad_frame");
    assert!(t.elapsed() < Duration::from_secs(5));
    h.stop();
}

#[test]
fn token_guards_frames_and_http() {
    let h = start(local().http("127.0.0.1:0").token("s3cret"));
    let mut c = Framed::connect(h.bind_address());
    let a = c.rpc(json!({"op": "ping"}));
    assert_eq!(a["error_code"], "unauthorized");
    assert!(c.closed());
    let mut c = Framed::connect(h.bind_address());
    assert_eq!(c.rpc(json!({"op": "auth", "token": "s3cret"}))["ok"], true);
    assert_eq!(c.rpc(json!({"op": "ping"}))["pong"], true);
    let mut e = Framed::connect(h.bind_address());
    let mut with_token = env("metadata_snapshot", json!({}));
    with_token["token"] = json!("s3cret");
    assert_eq!(e.rpc(with_token)["status"], "ok");
    let web = h.http_addr().unwrap();
    assert_eq!(http(web, "GET", "/v1/health", &[], b"").0, 401);
    assert_eq!(
        http(
            web,
            "GET",
            "/v1/health",
            &[("Authorization", "Bearer wrong")],
            b""
        )
        .0,
        401
    );
    assert_eq!(
        http(
            web,
            "GET",
            "/v1/health",
            &[("Authorization", "Bearer s3cret")],
            b""
        )
        .0,
        200
    );
    assert_eq!(http(web, "GET", "/v1/health?token=s3cret", &[], b"").0, 200);
    h.stop();
}

#[test]
fn http_routes() {
    let h = start(local().http("127.0.0.1:0").max_body_bytes(4096));
    let web = h.http_addr().unwrap();
    let (s, hd, b) = http(web, "GET", "/v1/health", &[], b"");
    assert_eq!(s, 200);
    assert_eq!(header(&hd, "content-type"), Some("application/json"));
    let v: Json = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (
            v["status"].clone(),
            v["protocol"].clone(),
            v["schema_version"].clone()
        ),
        (json!("ready"), json!("igniter_store"), json!(1))
    );
    assert_eq!(http(web, "POST", "/v1/health", &[], b"").0, 405);
    let (s, _, b) = http(web, "POST", "/v1/dispatch", &[], b"{nope");
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&b)
        .to_lowercase()
        .contains("invalid json"));
    let body = env(
        "write",
        json!({"store": "tasks", "key": "t1", "value": {"title": "Buy milk"}}),
    )
    .to_string();
    let (s, _, b) = http(
        web,
        "POST",
        "/v1/dispatch",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(s, 200);
    assert_eq!(serde_json::from_slice::<Json>(&b).unwrap()["status"], "ok");
    assert_eq!(
        http(web, "POST", "/v1/dispatch", &[], &vec![b' '; 5000]).0,
        413
    );
    assert_eq!(http(web, "GET", "/v1/dispatch", &[], b"").0, 405);
    let (s, _, b) = http(web, "GET", "/nope", &[], b"");
    assert_eq!(s, 404);
    assert!(String::from_utf8_lossy(&b).contains("Not found"));
    let (s, _, b) = http(web, "GET", "/v1/metadata", &[], b"");
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_slice::<Json>(&b).unwrap()["schema_version"],
        1
    );
    assert_eq!(http(web, "GET", "/v1/ready", &[], b"").0, 200);
    let (_, _, b) = http(web, "GET", "/v1/status", &[], b"");
    let st: Json = serde_json::from_slice(&b).unwrap();
    assert_eq!(st["status"], "ready");
    assert_eq!(st["ledger"]["fact_count"], 1);
    let (_, _, b) = http(web, "GET", "/v1/metrics", &[], b"");
    let m: Json = serde_json::from_slice(&b).unwrap();
    for k in [
        "schema_version",
        "generated_at",
        "uptime_ms",
        "facts_written",
        "facts_replayed",
        "bytes_in",
        "bytes_out",
        "requests_total",
        "errors_total",
        "active_connections",
        "accepted_connections_total",
        "closed_connections_total",
        "rejected_connections_total",
        "subscription_count",
        "subscriptions_by_store",
        "storage_stats",
        "alerts",
    ] {
        assert!(m.get(k).is_some(), "metrics lack {k}");
    }
    let (s, hd, b) = http(web, "GET", "/metrics", &[], b"");
    assert_eq!(s, 200);
    assert!(header(&hd, "content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(b).unwrap();
    assert!(text.contains("# TYPE igniter_ledger_active_connections gauge"));
    assert!(text.contains("igniter_ledger_requests_total{op="));
    let (_, hd, _) = http(web, "GET", "/v1/metrics?format=prometheus", &[], b"");
    assert!(header(&hd, "content-type")
        .unwrap()
        .starts_with("text/plain"));
    let (s, _, b) = http(web, "GET", "/v1/events/recent", &[], b"");
    assert_eq!(s, 200);
    let r: Json = serde_json::from_slice(&b).unwrap();
    assert!(r["count"].as_u64().unwrap() >= 1);
    assert_eq!(r["events"][0]["event"], "server_start");
    assert_eq!(
        http(web, "GET", "/v1/compaction/activity?limit=abc", &[], b"").0,
        400
    );
    assert_eq!(
        http(web, "GET", "/v1/compaction/activity?limit=5", &[], b"").0,
        200
    );
    let (s, hd, b) = http(web, "GET", "/", &[], b"");
    assert_eq!(s, 200);
    assert!(header(&hd, "content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(String::from_utf8_lossy(&b).contains("EventSource"));
    h.stop();
}

/// Reads SSE frames from a raw stream until `n` frames arrived (or timeout).
fn sse_frames(
    web: std::net::SocketAddr,
    path: &str,
    last_id: Option<&str>,
    n: usize,
) -> Vec<(u64, String, Json)> {
    let mut s = TcpStream::connect(web).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n");
    if let Some(id) = last_id {
        req.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut frames = Vec::new();
    while Instant::now() < deadline {
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(_) => {}
        }
        let text = String::from_utf8_lossy(&buf).to_string();
        frames = text
            .split("\n\n")
            .filter_map(|block| {
                let mut id = None;
                let mut ev = String::new();
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.trim().parse().ok();
                    }
                    if let Some(v) = line.strip_prefix("event: ") {
                        ev = v.trim().to_owned();
                    }
                    if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).ok();
                    }
                }
                Some((id?, ev, data?))
            })
            .collect();
        if frames.len() >= n {
            break;
        }
    }
    frames
}

#[test]
fn sse_resumes_from_cursor_and_streams_live() {
    let ledger = LedgerStore::memory();
    for i in 1..=5 {
        let store = if i % 2 == 0 { "reminders" } else { "tasks" };
        ledger
            .write(LWrite::new(store, format!("k{i}"), Value::Int(i)))
            .unwrap();
    }
    let h = Server::start(
        ledger.clone(),
        local().http("127.0.0.1:0"),
        Arc::new(NullSink),
    )
    .unwrap();
    let web = h.http_addr().unwrap();
    let all = sse_frames(web, "/v1/events", None, 5);
    assert_eq!(
        all.iter().map(|f| f.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(all[0].1, "fact_committed");
    assert!(all[0].2.get("fact").is_none());
    assert_eq!(all[0].2["cursor"]["sequence"], 1);
    assert!(all[0].2.get("fact_id").is_some());
    let after3 = sse_frames(web, "/v1/events", Some("3"), 2);
    assert_eq!(after3.iter().map(|f| f.0).collect::<Vec<_>>(), vec![4, 5]);
    let q = sse_frames(web, "/v1/events?cursor=2", None, 3);
    assert_eq!(q.iter().map(|f| f.0).collect::<Vec<_>>(), vec![3, 4, 5]);
    let both = sse_frames(web, "/v1/events?cursor=1", Some("4"), 1);
    assert_eq!(both.iter().map(|f| f.0).collect::<Vec<_>>(), vec![5]);
    let tasks = sse_frames(web, "/v1/events?store=tasks", None, 3);
    assert!(tasks.iter().all(|f| f.2["store"] == "tasks"));
    assert_eq!(tasks.len(), 3);
    // Live: a fact written while the stream is open arrives.
    let writer = {
        let ledger = ledger.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            ledger
                .write(LWrite::new("tasks", "live1", Value::Int(6)))
                .unwrap();
        })
    };
    let live = sse_frames(web, "/v1/events?cursor=5", None, 1);
    writer.join().unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].2["key"], "live1");
    assert_eq!(http(web, "POST", "/v1/events", &[], b"").0, 405);
    assert_eq!(http(web, "GET", "/v1/events?cursor=abc", &[], b"").0, 400);
    h.stop();
}

#[test]
fn stop_refuses_new_connections_and_removes_the_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("server.pid");
    let h = start(local().pid_file(&pid));
    assert_eq!(
        std::fs::read_to_string(&pid).unwrap().trim(),
        std::process::id().to_string()
    );
    let addr = h.bind_address().to_owned();
    let mut idle = Framed::connect(&addr);
    idle.rpc(json!({"op": "ping"}));
    let t = Instant::now();
    h.stop();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "idle connections close at once on drain"
    );
    assert!(idle.closed());
    assert!(TcpStream::connect(&addr).is_err());
    assert!(!pid.exists());
    assert_eq!(h.health().status, "stopped");
}

#[test]
fn unix_socket_listener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sock");
    let h = start(ServerOptions::unix(&path));
    assert_eq!(h.bind_address(), path.display().to_string());
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.write_all(&frame::encode(br#"{"op":"ping"}"#)).unwrap();
    let mut buf = vec![0u8; 64];
    let n = s.read(&mut buf).unwrap();
    let (body, _) = frame::decode(&buf[..n], 1024).unwrap().unwrap();
    assert_eq!(serde_json::from_slice::<Json>(body).unwrap()["pong"], true);
    h.stop();
    assert!(!path.exists());
}
