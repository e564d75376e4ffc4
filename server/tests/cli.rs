//! The `igniter-ledger` and `igniter-ledger-server` binaries: each subcommand end to
//! end, errors as one line with exit code 1, and SIGTERM draining a served ledger.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use igniter_ledger::{LedgerStore, Value, Write};
use igniter_ledger_server::client::RemoteStore;
use igniter_ledger_server::server::frame;
use serde_json::{json, Value as Json};

fn cli(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_igniter-ledger"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn ledger_with(path: &std::path::Path, n: i64) {
    let l = LedgerStore::open(path).unwrap();
    let first = l.write(Write::new("tasks", "t0", Value::Int(0))).unwrap();
    for i in 1..n {
        let w = Write::new(
            if i % 2 == 0 { "tasks" } else { "notes" },
            format!("k{i}"),
            Value::Int(i),
        )
        .causation(first.id());
        l.write(w).unwrap();
    }
    l.close().unwrap();
}

#[test]
fn stats_dump_verify_checkpoint_tail() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.wal");
    ledger_with(&p, 10);
    let ps = p.to_str().unwrap();
    assert_eq!(cli(&["stats", ps]), (0, "10\n".into(), String::new()));
    assert_eq!(cli(&["stats", "--path", ps]).1, "10\n");
    let (code, out, _) = cli(&["dump", ps]);
    assert_eq!(code, 0);
    let lines: Vec<Json> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10);
    assert_eq!(lines[0]["key"], "t0");
    assert!(lines[0].get("value_hash").is_some() && lines[0].get("transaction_time").is_some());
    assert_eq!(cli(&["dump", ps, "--store", "notes"]).1.lines().count(), 5);
    let (code, out, err) = cli(&["verify", ps]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("ok: 10 frames, 10 facts, 9 causation links"),
        "{out}"
    );
    let (code, out, _) = cli(&["checkpoint", ps]);
    assert_eq!(code, 0);
    assert!(out.starts_with("checkpoint: 10 facts"), "{out}");
    let (code, out, _) = cli(&["tail", ps, "-n", "3"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3);
    let (code, _, err) = cli(&["tail", ps, "--follow"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1);
    let (code, out, _) = cli(&["compact", ps]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn verify_finds_damage() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.wal");
    ledger_with(&p, 5);
    let mut bytes = std::fs::read(&p).unwrap();
    // Flip a byte in the first frame's body: valid frames follow, so it is corruption.
    bytes[6] ^= 0x55;
    std::fs::write(&p, &bytes).unwrap();
    let (code, out, err) = cli(&["verify", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("CRC32 mismatch"), "{err}");
}

#[test]
fn import_a_0_5_2_file() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.wal");
    let mut f = std::fs::File::create(&old).unwrap();
    for i in 0..3 {
        let body = json!({"id": format!("0190c5a0-0000-7000-8000-00000000000{i}"), "store": "tasks", "key": format!("t{i}"),
            "value": {"n": i}, "value_hash": "ignored", "causation": null, "transaction_time": 1_700_000_000.0 + i as f64,
            "valid_time": null, "schema_version": 1, "producer": null, "derivation": null});
        f.write_all(&frame::encode(body.to_string().as_bytes()))
            .unwrap();
    }
    drop(f);
    let new = dir.path().join("new.wal");
    let (code, out, err) = cli(&["import", old.to_str().unwrap(), new.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("imported 3 facts"), "{out}");
    let l = LedgerStore::open(&new).unwrap();
    assert_eq!(l.fact_count(), 3);
    assert_eq!(
        l.latest("tasks", "t1").unwrap().id().to_string(),
        "0190c5a0-0000-7000-8000-000000000001"
    );
    l.close().unwrap();
}

#[test]
fn errors_are_one_line_and_exit_1() {
    for args in [
        &["stats", "/nonexistent/x.wal"][..],
        &["stats"],
        &["verify", "--bogus"],
        &["serve", "--backend", "tape"],
        &["nope"],
    ] {
        let (code, out, err) = cli(args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("igniter-ledger: "), "{err}");
    }
    let (code, out, err) = cli(&["--help"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.contains("Examples:"));
    for sub in [
        "stats",
        "verify",
        "dump",
        "import",
        "checkpoint",
        "compact",
        "tail",
        "serve",
        "mcp",
    ] {
        let (code, out, _) = cli(&[sub, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Example"), "{sub} --help has no example");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_igniter-ledger-server"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("igniter-ledger-server {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(o.stderr.is_empty());
    let (_, out, _) = cli(&["serve", "--help"]);
    for flag in [
        "--host",
        "--port",
        "--transport",
        "--backend",
        "--path",
        "--log-level",
        "--pid-file",
        "--drain-timeout",
        "--http-port",
        "--tcp-port",
        "--changefeed-max-size",
        "--changefeed-subscriber-queue-size",
        "--changefeed-overflow",
        "--changefeed-close-policy",
        "--changefeed-diagnostic-ring-size",
        "--changefeed-alert-total-queued",
        "--changefeed-alert-overflow-dropped-total",
        "--changefeed-alert-failed-total",
        "--changefeed-alert-queue-pressure-ratio",
    ] {
        assert!(out.contains(flag), "serve --help lacks {flag}");
    }
}

#[test]
fn serve_drains_on_sigterm_and_tail_follows() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("served.wal");
    let pid = dir.path().join("served.pid");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_igniter-ledger"))
        .args([
            "serve",
            p.to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--pid-file",
            pid.to_str().unwrap(),
            "--changefeed-max-size",
            "50",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("tcp://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let store = loop {
        if let Ok(s) = RemoteStore::connect(&url) {
            break s;
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        std::fs::read_to_string(&pid).unwrap().trim(),
        server.id().to_string()
    );
    store.write("tasks", "a", Value::Int(1)).unwrap();
    let mut tail = Command::new(env!("CARGO_BIN_EXE_igniter-ledger"))
        .args(["tail", &url, "--follow", "-n", "5"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    store.write("tasks", "b", Value::Int(2)).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    tail.kill().unwrap();
    let out = tail.wait_with_output().unwrap();
    let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Json>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(keys, vec!["a", "b"]);
    // SIGTERM: drain, remove the pid file, close the ledger, exit 0.
    let kill = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = server.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut logs = String::new();
    std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut logs).unwrap();
    let events: Vec<Json> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for n in [
        "server_start",
        "connection_open",
        "server_drain",
        "server_stop",
    ] {
        assert!(names.contains(&n), "no {n} in {names:?}");
    }
    assert!(!pid.exists());
    let l = LedgerStore::open(&p).unwrap();
    assert_eq!(l.fact_count(), 2);
    l.close().unwrap();
}
