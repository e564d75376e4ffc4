//! Two ledgers, one PostgreSQL hub: each writes locally, pushes and pulls; both end up
//! with each other's facts, once, with the same ids and hashes.
//!
//! ```text
//! cargo run -p igniter_ledger_server --example two_nodes -- postgres://postgres@127.0.0.1:5432/hub
//! ```

use std::time::{Duration, Instant};

use igniter_ledger::{LedgerStore, Read, Value, Write};
use igniter_ledger_server::sync::{PullFilter, SyncConfig, SyncHandle};

fn main() {
    let hub = std::env::args()
        .nth(1)
        .expect("usage: two_nodes postgres://user@host:port/db");
    let dir = tempfile::tempdir().expect("temp dir");
    let node = |name: &str| {
        let path = dir.path().join(format!("{name}.wal"));
        let ledger = LedgerStore::open(&path).expect("open");
        let mut config = SyncConfig::new(hub.clone());
        config.push = true;
        config.pull = Some(PullFilter::all());
        config.state_dir = Some(path.with_extension("wal.sync"));
        let sync = SyncHandle::start(ledger.clone(), config).expect("sync");
        println!("{name}: node {}", sync.node());
        (ledger, sync)
    };
    let (eu, eu_sync) = node("eu");
    let (us, us_sync) = node("us");

    let order = eu
        .write(Write::new("orders", "o-1", Value::sym("placed")))
        .unwrap();
    let user = us
        .write(Write::new("users", "alice", Value::from("Alice")))
        .unwrap();
    println!("eu wrote orders/o-1 = :placed   (fact {})", order.id());
    println!("us wrote users/alice = \"Alice\" (fact {})", user.id());

    let started = Instant::now();
    while eu.fact_count() < 2 || us.fact_count() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no convergence"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("converged in {:?}", started.elapsed());
    let seen = |l: &LedgerStore, store: &str, key: &str| {
        let f = l.latest(store, key).unwrap();
        format!(
            "{store}/{key} = {:?} (fact {}, hash {}…)",
            l.read(Read::new(store, key)).unwrap().unwrap(),
            f.id(),
            &f.value_hash_hex()[..12]
        )
    };
    println!("us sees {}", seen(&us, "orders", "o-1"));
    println!("eu sees {}", seen(&eu, "users", "alice"));
    println!(
        "eu: {} facts, us: {} facts",
        eu.fact_count(),
        us.fact_count()
    );
    eu_sync.stop().unwrap();
    us_sync.stop().unwrap();
    eu.close().unwrap();
    us.close().unwrap();
}
