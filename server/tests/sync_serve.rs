//! The sync hub inside the server (`--sync-hub`, `--sync-push`, `--sync-pull`), against
//! a real PostgreSQL (a throwaway cluster; skipped with a printed reason when the server
//! binaries are absent): server A pushes, server B pulls; both report the sync on
//! `/v1/status`; SIGTERM drains A, pushes what is left and stops its sync.

mod common;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http;
use igniter_ledger::{LedgerStore, Value};
use igniter_ledger_server::client::RemoteStore;
use serde_json::Value as Json;
use support::pg::{count, Cluster};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(30));
    }
}

struct Served {
    child: Child,
    port: u16,
    http: u16,
}

impl Served {
    fn start(bin: &str, sub: Option<&str>, path: &Path, sync: &[&str]) -> Served {
        let (port, http) = (free_port(), free_port());
        let mut c = Command::new(bin);
        if let Some(s) = sub {
            c.arg(s);
        }
        let child = c
            .arg("--path")
            .arg(path)
            .args([
                "--port",
                &port.to_string(),
                "--http-port",
                &http.to_string(),
            ])
            .args(sync)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary runs");
        let s = Served { child, port, http };
        wait_until("the server to listen", || {
            RemoteStore::connect(&s.url()).is_ok()
        });
        s
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn status(&self) -> Json {
        let addr: SocketAddr = format!("127.0.0.1:{}", self.http).parse().unwrap();
        let (code, _, body) = http(addr, "GET", "/v1/status", &[], b"");
        assert_eq!(code, 200);
        serde_json::from_slice(&body).unwrap()
    }

    /// SIGTERM; the exit status and stderr.
    fn term(self) -> (bool, String) {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let out = self.child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

#[test]
fn the_server_pushes_pulls_reports_and_stops_its_sync_on_sigterm() {
    let Some(pg) = Cluster::start() else { return };
    let hub = pg.create_db("hub");
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (dir.path().join("a.wal"), dir.path().join("b.wal"));
    let a = Served::start(
        env!("CARGO_BIN_EXE_igniter-ledger-server"),
        None,
        &pa,
        &["--sync-hub", &hub, "--sync-push", "--drain-timeout", "10"],
    );
    let b = Served::start(
        env!("CARGO_BIN_EXE_igniter-ledger"),
        Some("serve"),
        &pb,
        &["--sync-hub", &hub, "--sync-pull=orders"],
    );
    let ra = RemoteStore::connect(&a.url()).unwrap();
    for i in 0..30 {
        ra.write("orders", &format!("o{i}"), Value::Int(i)).unwrap();
        ra.write("notes", &format!("n{i}"), Value::Int(i)).unwrap();
    }
    wait_until("B to pull A's 30 orders", || {
        b.status()["sync"]["pulled"].as_u64() == Some(30)
    });
    let sa = a.status();
    assert_eq!(sa["sync"]["pushed"], 60, "{sa}");
    assert_eq!(sa["sync"]["push_cursor"], 60, "{sa}");
    assert_eq!(sa["sync"]["running"], true, "{sa}");
    assert!(sa["sync"]["node"].as_str().is_some_and(|n| n.len() == 36));
    let sb = b.status();
    assert_eq!(sb["sync"]["pushed"], 0, "{sb}");
    assert!(sb["sync"]["pull_cursor"].as_i64().unwrap() > 0, "{sb}");
    let rb = RemoteStore::connect(&b.url()).unwrap();
    assert_eq!(rb.read("orders", "o29").unwrap(), Some(Value::Int(29)));
    assert_eq!(rb.read("notes", "n1").unwrap(), None); // not subscribed
    let fa = ra.latest("orders", "o7").unwrap().unwrap();
    let fb = rb.latest("orders", "o7").unwrap().unwrap();
    assert_eq!(
        (fa.id(), fa.value_hash(), fa.transaction_time()),
        (fb.id(), fb.value_hash(), fb.transaction_time())
    );

    // Written just before SIGTERM: the drain, then the flush on stop, puts them in the hub.
    for i in 30..40 {
        ra.write("orders", &format!("o{i}"), Value::Int(i)).unwrap();
    }
    ra.close();
    rb.close();
    let (ok, err) = a.term();
    assert!(ok, "{err}");
    assert!(err.contains("\"sync_started\""), "{err}");
    let stopped: Json = err
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .find(|e| e["event"] == "sync_stopped")
        .unwrap_or_else(|| panic!("no sync_stopped event in {err}"));
    assert_eq!(stopped["push_cursor"], 70, "{stopped}");
    assert_eq!(
        count(
            &hub,
            "SELECT count(DISTINCT fact_id) FROM igniter_hub.facts"
        ),
        70
    );
    assert_eq!(count(&hub, "SELECT count(*) FROM igniter_hub.facts"), 70);
    wait_until("B to pull the last 10", || {
        b.status()["sync"]["pulled"].as_u64() == Some(40)
    });
    let (ok, err) = b.term();
    assert!(ok, "{err}");
    // Both ledgers were closed durably.
    let la = LedgerStore::open(&pa).unwrap();
    let lb = LedgerStore::open(&pb).unwrap();
    assert_eq!((la.fact_count(), lb.fact_count()), (70, 40));
    la.close().unwrap();
    lb.close().unwrap();
}

#[test]
fn sync_flags_are_checked_and_documented() {
    let bin = env!("CARGO_BIN_EXE_igniter-ledger");
    let help = Command::new(bin)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--sync-hub",
        "--sync-push",
        "--sync-pull",
        "--sync-state-dir",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}");
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.wal");
    for (args, msg) in [
        (vec!["--sync-push"], "need --sync-hub"),
        (vec!["--sync-hub", "postgres://u@h/db"], "needs --sync-push"),
        (
            vec!["--sync-hub", "postgres://u@h:port/db", "--sync-push"],
            "--sync-hub: hub: not a PostgreSQL connection string",
        ),
    ] {
        let out = Command::new(bin)
            .arg("serve")
            .arg(&p)
            .args(["--port", &free_port().to_string()])
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

/// Counts the batches it commits (on the pull thread, as the default does).
struct Counting(std::sync::atomic::AtomicU64);

impl igniter_ledger_server::sync::PullCommit for Counting {
    fn commit(
        &self,
        ledger: &LedgerStore,
        batch: igniter_ledger::Batch,
    ) -> igniter_ledger::Result<Vec<igniter_ledger::Fact>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ledger.commit(batch)
    }
}

#[test]
fn sync_handle_checks_the_hub_bootstraps_flushes_and_commits_through_the_hook() {
    use igniter_ledger::Write;
    use igniter_ledger_server::sync::{PullFilter, SyncConfig, SyncError, SyncHandle};
    use std::sync::Arc;

    // A malformed URL, and nothing listening, fail at start (no PostgreSQL needed).
    let l = LedgerStore::memory();
    let mut c = SyncConfig::new("postgres://u@h:port/db");
    c.push = true;
    assert!(matches!(
        SyncHandle::start(l.clone(), c),
        Err(SyncError::BadUrl(_))
    ));
    let mut c = SyncConfig::new(format!("postgres://postgres@127.0.0.1:{}/hub", free_port()));
    c.push = true;
    c.connect_timeout = Some(Duration::from_millis(300));
    let t = Instant::now();
    match SyncHandle::start(l.clone(), c) {
        Err(SyncError::Unreachable(m)) => assert!(!m.is_empty()),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(15));

    let Some(pg) = Cluster::start() else { return };
    let hub = pg.create_db("hub");
    let a = LedgerStore::memory();
    for i in 0..50 {
        a.write(Write::new("orders", format!("k{i}"), Value::Int(i)))
            .unwrap();
    }
    let mut c = SyncConfig::new(hub.clone());
    c.push = true;
    c.connect_timeout = Some(Duration::from_secs(10));
    c.flush_on_stop = Duration::from_secs(10);
    let push = SyncHandle::start(a.clone(), c).unwrap();
    // Stopped at once: the flush on stop still pushes all 50.
    let (st, r) = push.stop_with_status();
    r.unwrap();
    assert_eq!((st.push_cursor, st.running), (50, false));
    assert_eq!(count(&hub, "SELECT count(*) FROM igniter_hub.facts"), 50);

    let b = LedgerStore::memory();
    let hook = Arc::new(Counting(Default::default()));
    let mut c = SyncConfig::new(hub.clone());
    c.pull = Some(PullFilter::stores(["orders"]));
    c.bootstrap = true;
    c.batch_size = 20;
    c.pull_commit = Some(hook.clone());
    let pull = SyncHandle::start(b.clone(), c).unwrap();
    // Returned after the bootstrap, through the hook: 3 batches of at most 20.
    assert_eq!(b.fact_count(), 50);
    assert_eq!(hook.0.load(std::sync::atomic::Ordering::SeqCst), 3);
    let st = pull.status();
    assert_eq!((st.bootstrapped, st.pulled, st.running), (50, 50, true));
    let m = pull.monitor();
    assert_eq!(m.status().pulled, 50);
    pull.stop().unwrap();
    assert!(!m.status().running);
}
