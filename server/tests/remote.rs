//! `RemoteStore` against a server: the embedded store's API with server-assigned ids and
//! times, conflicts, transactions, and a multi-process crash test (client processes,
//! kill -9 of the server, restart: every acknowledged write survives).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use igniter_ledger::{Expected, LedgerStore, Value};
use igniter_ledger_server::client::{ClientError, RemoteStore};
use igniter_ledger_server::server::{NullSink, Server, ServerOptions};

fn start() -> (igniter_ledger_server::server::ServerHandle, String) {
    let h = Server::start(
        LedgerStore::memory(),
        ServerOptions::tcp("127.0.0.1:0"),
        Arc::new(NullSink),
    )
    .unwrap();
    let url = format!("tcp://{}", h.bind_address());
    (h, url)
}

#[test]
fn remote_store_api() {
    let (h, url) = start();
    let s = RemoteStore::connect(&url).unwrap();
    let before = igniter_ledger::Timestamp::now();
    let f1 = s.write("tasks", "t1", Value::from("open")).unwrap();
    assert!(
        f1.transaction_time() >= before,
        "the server assigns the time"
    );
    assert_eq!(f1.store(), "tasks");
    assert_eq!(s.read("tasks", "t1").unwrap(), Some(Value::from("open")));
    assert_eq!(s.read("tasks", "nope").unwrap(), None);
    // Same id on the server's ledger.
    assert_eq!(h.ledger().latest("tasks", "t1").unwrap().id(), f1.id());
    // expected: a stale write is a conflict, nothing written.
    let f2 = s
        .write_expected("tasks", "t1", Value::from("done"), Expected::Fact(f1.id()))
        .unwrap();
    match s.write_expected("tasks", "t1", Value::from("lost"), Expected::Fact(f1.id())) {
        Err(ClientError::Conflict {
            store,
            key,
            expected,
            actual,
            ..
        }) => {
            assert_eq!((store.as_str(), key.as_str()), ("tasks", "t1"));
            assert_eq!(expected, Some(f1.id().to_string()));
            assert_eq!(actual, Some(f2.id().to_string()));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        s.write_expected("tasks", "t1", Value::Nil, Expected::Absent),
        Err(ClientError::Conflict { .. })
    ));
    assert_eq!(s.read("tasks", "t1").unwrap(), Some(Value::from("done")));
    let hist = s.history("tasks", Some("t1")).unwrap();
    assert_eq!(
        hist.iter().map(|f| f.id()).collect::<Vec<_>>(),
        vec![f1.id(), f2.id()]
    );
    assert_eq!(
        s.read_as_of("tasks", "t1", Some(f1.transaction_time().as_secs_f64()))
            .unwrap(),
        Some(Value::from("open"))
    );
    // A transaction is atomic: a failing expected leaves nothing.
    let r = s.transaction(|tx| {
        tx.write("tasks", "t2", Value::from("a"));
        tx.write_expected("tasks", "t1", Value::from("x"), Expected::Absent);
    });
    assert!(matches!(r, Err(ClientError::Conflict { .. })));
    assert_eq!(s.read("tasks", "t2").unwrap(), None);
    let facts = s
        .transaction(|tx| {
            tx.write("tasks", "t2", Value::from("a"));
            tx.write("tasks", "t3", Value::from("b"));
        })
        .unwrap();
    assert_eq!(facts.len(), 2);
    assert_eq!(s.fact_count().unwrap(), 4);
    let q = s.query("tasks", Value::Map(vec![]), Some(10)).unwrap();
    assert_eq!(q.len(), 3);
    let a = s.append("audit", Value::from("hello")).unwrap();
    assert_eq!(a.store(), "audit");
    h.stop();
    // A stopped server: a clear error.
    let e = s.read("tasks", "t1").unwrap_err();
    assert!(matches!(e, ClientError::Disconnected(_)), "{e:?}");
    assert!(e.to_string().contains("unavailable"));
}

#[test]
fn remote_store_token_and_unix() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("l.sock");
    let h = Server::start(
        LedgerStore::memory(),
        ServerOptions::unix(&sock).token("k"),
        Arc::new(NullSink),
    )
    .unwrap();
    let url = format!("unix://{}", sock.display());
    match RemoteStore::connect(&url) {
        Err(ClientError::Server { code, .. }) => assert_eq!(code, "unauthorized"),
        other => panic!("expected unauthorized, got {other:?}"),
    }
    assert!(matches!(
        RemoteStore::connect_with(&url, Some("wrong")),
        Err(ClientError::Server { .. })
    ));
    let s = RemoteStore::connect_with(&url, Some("k")).unwrap();
    s.write("a", "b", Value::Int(1)).unwrap();
    assert_eq!(s.read("a", "b").unwrap(), Some(Value::Int(1)));
    h.stop();
}

// ---------------------------------------------------------------- crash test

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_server(path: &std::path::Path, port: u16) -> Child {
    let c = Command::new(env!("CARGO_BIN_EXE_igniter-ledger-server"))
        .args(["--backend", "file", "--path"])
        .arg(path)
        .args([
            "--port",
            &port.to_string(),
            "--durability",
            "fsync",
            "--log-level",
            "error",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    c
}

/// The client process of the crash test (runs only when spawned by it).
#[test]
#[ignore = "a child process of crash_kill9_every_acknowledged_write_survives"]
fn crash_child_writer() {
    let Ok(url) = std::env::var("CRASH_URL") else {
        return;
    };
    let id: String = std::env::var("CRASH_ID").unwrap();
    let until =
        Instant::now() + Duration::from_millis(std::env::var("CRASH_MS").unwrap().parse().unwrap());
    let mut store: Option<RemoteStore> = None;
    let mut i = 0u64;
    let mut last_acked: Option<(String, i64)> = None;
    while Instant::now() < until {
        let s = match &store {
            Some(s) => s,
            None => match RemoteStore::connect(&url) {
                Ok(s) => {
                    // After a reconnect, the last acknowledged write must be there.
                    if let Some((k, v)) = &last_acked {
                        match s.read("crash", k) {
                            Ok(Some(Value::Int(x))) if x == *v => {}
                            Ok(other) => println!("LOST {k} {other:?}"),
                            Err(e) => println!("ERR {e}"),
                        }
                    }
                    store = Some(s);
                    store.as_ref().unwrap()
                }
                Err(e) => {
                    println!("ERR {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            },
        };
        let key = format!("{id}-{i}");
        match s.write("crash", &key, Value::Int(i as i64)) {
            Ok(f) => {
                println!("ACK {key} {} {i}", f.id());
                last_acked = Some((key, i as i64));
                i += 1;
            }
            Err(e) => {
                println!("ERR {e}");
                store = None;
            }
        }
    }
    println!("DONE");
}

#[test]
fn crash_kill9_every_acknowledged_write_survives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.wal");
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut server = spawn_server(&path, port);
    let run_ms = 4000u64;
    let clients: Vec<Child> = (0..4)
        .map(|n| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "crash_child_writer",
                    "--ignored",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env("CRASH_URL", &url)
                .env("CRASH_ID", format!("c{n}"))
                .env("CRASH_MS", run_ms.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // Kill -9 the server at (pseudo-)random moments, restart it each time.
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut kills = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(run_ms - 800) {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(300 + (seed >> 33) % 500));
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        kills += 1;
        std::thread::sleep(Duration::from_millis(50));
        server = spawn_server(&path, port);
    }
    let mut acked: Vec<(String, String, i64)> = Vec::new();
    let mut errors = Vec::new();
    let mut lost = Vec::new();
    for c in clients {
        let out = c.wait_with_output().unwrap();
        let mut done = false;
        for line in BufReader::new(&out.stdout[..]).lines() {
            let line = line.unwrap();
            let parts: Vec<&str> = line.splitn(4, ' ').collect();
            match parts[0] {
                "ACK" => acked.push((
                    parts[1].to_owned(),
                    parts[2].to_owned(),
                    parts[3].parse().unwrap(),
                )),
                "ERR" => errors.push(line.clone()),
                "LOST" => lost.push(line.clone()),
                "DONE" => done = true,
                _ => {}
            }
        }
        assert!(
            done,
            "a client process did not finish: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(kills >= 2, "the server was killed {kills} times");
    assert!(
        lost.is_empty(),
        "clients saw acknowledged facts disappear: {lost:?}"
    );
    assert!(
        !errors.is_empty(),
        "clients saw no error although the server was killed {kills} times"
    );
    assert!(
        errors
            .iter()
            .all(|e| e.contains("unavailable") || e.contains("unexpected answer")),
        "unclear errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert!(
        acked.len() > 20,
        "too few writes acknowledged: {}",
        acked.len()
    );
    let ledger = LedgerStore::open(&path).unwrap();
    for (key, id, v) in &acked {
        let f = ledger
            .latest("crash", key)
            .unwrap_or_else(|| panic!("acknowledged write {key} ({id}) is missing"));
        assert_eq!(&f.id().to_string(), id);
        assert_eq!(f.value(), Value::Int(*v));
    }
    println!(
        "crash test: {} acknowledged writes, {kills} kills, {} client errors, all present",
        acked.len(),
        errors.len()
    );
    ledger.close().unwrap();
}
