//! Crash rounds: `igniter-ledger sync` processes (one pushing ledger A, one pulling into
//! ledger B) are killed with SIGKILL at random moments, PostgreSQL is crash-restarted
//! during pushes, for 24 rounds with new facts between rounds. The hub must end up with
//! every fact of A's changefeed exactly once, and B with every one of them exactly once.
//! Also: SIGTERM stops a following sync cleanly.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use igniter_ledger::{ChangesQuery, LedgerStore, Value, Write};
use support::pg::{count, query, Cluster};

const BIN: &str = env!("CARGO_BIN_EXE_igniter-ledger");

/// A small deterministic PRNG (xorshift), seeded from the clock and printed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn sync(path: &Path, url: &str, extra: &[&str]) -> Child {
    Command::new(BIN)
        .arg("sync")
        .arg("--path")
        .arg(path)
        .args(["--hub", url])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("igniter-ledger runs")
}

fn run_once(path: &Path, url: &str, extra: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("sync")
        .arg("--path")
        .arg(path)
        .args(["--hub", url, "--once"])
        .args(extra)
        .output()
        .expect("igniter-ledger runs");
    assert!(
        out.status.success(),
        "sync {extra:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Rows in the hub (0 before the schema exists).
fn hub_count(url: &str) -> i64 {
    if count(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'igniter_hub' AND tablename = 'fact_ids'") == 0 {
        return 0;
    }
    count(url, "SELECT count(*) FROM igniter_hub.facts")
}

fn kill9(mut c: Child) {
    let _ = c.kill(); // SIGKILL
    let _ = c.wait();
}

#[test]
fn kill_nine_and_postgres_restarts_never_duplicate_or_lose_a_fact() {
    let Some(pg) = Cluster::start() else { return };
    let url = pg.create_db("hub");
    let dir = tempfile::tempdir().unwrap();
    let (a_path, b_path) = (dir.path().join("a.wal"), dir.path().join("b.wal"));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash rounds: seed {seed}");
    let mut rng = Rng(seed);
    let mut written = 0u64;
    let mut restarts = 0;
    let (mut before_round, mut cut_midway) = (0i64, 0);
    const ROUNDS: usize = 24;
    for round in 0..ROUNDS {
        {
            let a = LedgerStore::open(&a_path).unwrap();
            let n = 300 + rng.below(600);
            for i in 0..n {
                a.write(Write::new(
                    ["orders", "users", "events"][(i % 3) as usize],
                    format!("k{}", rng.below(40)),
                    Value::Int((round as i64) * 1000 + i as i64),
                ))
                .unwrap();
            }
            written += n;
            a.close().unwrap();
        }
        let pusher = sync(&a_path, &url, &["--push", "--batch", "10"]);
        let puller = sync(&b_path, &url, &["--pull", "--batch", "10"]);
        if round % 4 != 1 {
            // Aim the kill inside the push, whatever the machine's speed: wait until its
            // first batches are in the hub, then a few milliseconds more.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while hub_count(&url) <= before_round && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(rng.below(15)));
        } else {
            std::thread::sleep(Duration::from_millis(30 + rng.below(300)));
        }
        if round % 4 == 1 {
            // PostgreSQL crashes under the running push and pull, and comes back.
            pg.restart();
            restarts += 1;
            std::thread::sleep(Duration::from_millis(100 + rng.below(500)));
        }
        if rng.below(2) == 0 {
            kill9(pusher);
            kill9(puller);
        } else {
            kill9(puller);
            kill9(pusher);
        }
        // Was the push cut off midway (not before its first batch, not after its last)?
        let in_hub = hub_count(&url);
        if in_hub > before_round && in_hub < written as i64 {
            cut_midway += 1;
        }
        before_round = in_hub;
    }
    eprintln!("crash rounds: {cut_midway} of {ROUNDS} pushes killed midway");
    assert!(
        cut_midway >= 3,
        "the kills must land inside pushes ({cut_midway} did)"
    );
    assert_eq!(restarts, ROUNDS / 4);
    // Let both finish (new processes, from the durable cursors).
    let pushed = run_once(&a_path, &url, &["--push"]);
    assert!(pushed.contains("pushed"), "{pushed}");
    let pulled = run_once(&b_path, &url, &["--pull"]);
    assert!(pulled.contains("pulled"), "{pulled}");

    let a = LedgerStore::open(&a_path).unwrap();
    let feed = a.changes(&ChangesQuery::new()).unwrap();
    assert_eq!(feed.len() as u64, written);
    let ids: HashSet<uuid::Uuid> = feed.iter().map(|e| e.fact_id()).collect();
    // The hub: each fact once, none missing.
    assert_eq!(
        count(&url, "SELECT count(*) FROM igniter_hub.facts"),
        written as i64
    );
    assert_eq!(
        count(
            &url,
            "SELECT count(DISTINCT fact_id) FROM igniter_hub.facts"
        ),
        written as i64
    );
    let hub_ids: HashSet<uuid::Uuid> = query(&url, "SELECT fact_id FROM igniter_hub.facts")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(hub_ids, ids);
    assert_eq!(
        count(&url, "SELECT sequence FROM igniter_hub.push_cursors"),
        a.head().sequence as i64
    );
    // Exactly once by the cursor, not only by the id table: A never pulls, so none of
    // its facts was ever offered to the hub twice.
    assert_eq!(
        count(&url, "SELECT facts_skipped FROM igniter_hub.push_cursors"),
        0
    );
    assert_eq!(
        count(&url, "SELECT facts_pushed FROM igniter_hub.push_cursors"),
        written as i64
    );
    // Hub order follows each origin's changefeed order.
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM (SELECT origin_sequence < lag(origin_sequence) OVER (ORDER BY hub_seq) AS back \
             FROM igniter_hub.facts) s WHERE back"
        ),
        0
    );
    // B: each fact once, the same fact.
    let b = LedgerStore::open(&b_path).unwrap();
    assert_eq!(b.fact_count() as u64, written);
    for e in &feed {
        let f = b.fact_by_id(e.fact_id()).expect("pulled");
        assert_eq!(f.value_hash(), e.fact().value_hash());
        assert_eq!(f.causation(), e.causation());
        assert_eq!(f.value(), e.fact().value());
    }
    a.close().unwrap();
    b.close().unwrap();
}

#[test]
fn sigterm_stops_a_following_sync_cleanly() {
    let Some(pg) = Cluster::start() else { return };
    let url = pg.create_db("hub");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wal");
    {
        let a = LedgerStore::open(&path).unwrap();
        for i in 0..500 {
            a.write(Write::new("orders", format!("k{i}"), Value::Int(i)))
                .unwrap();
        }
        a.close().unwrap();
    }
    let child = Command::new(BIN)
        .arg("sync")
        .arg("--path")
        .arg(&path)
        .args(["--hub", &url, "--push", "--pull"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(
        &url,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'igniter_hub' AND tablename = 'push_cursors'",
    ) == 0
        || count(&url, "SELECT coalesce(max(sequence), 0) FROM igniter_hub.push_cursors") < 500
    {
        assert!(Instant::now() < deadline, "the push did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("stopped: pushed 500"), "{stdout}");
    // Closed durably: it reopens without recovering anything.
    let a = LedgerStore::open(&path).unwrap();
    assert_eq!(a.fact_count(), 500);
    a.close().unwrap();
}
