//! The sync hub against a real PostgreSQL (a throwaway cluster per test; skipped with a
//! printed reason when the server binaries are absent).

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use igniter_ledger::{
    Fact, FactParts, HistoryQuery, LedgerStore, MapKey, Read, Timestamp, Value, Write,
};
use igniter_ledger_server::sync::{PullFilter, Puller, Pusher, StateDir, SyncConfig, SyncHandle};
use support::pg::{count, query, Cluster};

fn far() -> Instant {
    Instant::now() + Duration::from_secs(120)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Values of every kind the ledger keeps (Symbols, binaries, integer keys, nested maps).
fn varied(i: i64) -> Value {
    Value::map([
        (MapKey::sym("n"), Value::Int(i)),
        (MapKey::sym("label"), Value::sym(format!("s{i}"))),
        (MapKey::str("text"), Value::Str(format!("row {i}"))),
        (MapKey::Int(7), Value::Float(i as f64 / 3.0)),
        (MapKey::sym("bin"), Value::Bin(vec![0, 159, 146, i as u8])),
        // A NUL character cannot be JSONB text (PostgreSQL refuses \u0000).
        (
            MapKey::sym("nul"),
            Value::Str(if i % 10 == 0 { "a\0b" } else { "ab" }.into()),
        ),
        (
            MapKey::sym("list"),
            Value::array([Value::Nil, Value::Bool(true), Value::Int(-i)]),
        ),
    ])
}

fn write_facts(ledger: &LedgerStore, store: &str, n: i64, prefix: &str) {
    for i in 0..n {
        let mut w = Write::new(store, format!("{prefix}{}", i % 7), varied(i));
        if i % 3 == 0 {
            w = w.valid_time(1_700_000_000.0 + i as f64);
        }
        ledger.write(w).unwrap();
    }
}

fn facts_by_id(l: &LedgerStore) -> HashMap<uuid::Uuid, Fact> {
    l.fact_log_all(None, None)
        .into_iter()
        .map(|f| (f.id(), f))
        .collect()
}

fn assert_same_fact(a: &Fact, b: &Fact) {
    assert_eq!(a.id(), b.id());
    assert_eq!(a.store(), b.store());
    assert_eq!(a.key(), b.key());
    assert_eq!(a.value(), b.value(), "value of {}", a.id());
    assert_eq!(a.value_bytes(), b.value_bytes());
    assert_eq!(a.value_hash(), b.value_hash());
    assert_eq!(a.causation(), b.causation());
    assert_eq!(
        a.valid_time().map(f64::to_bits),
        b.valid_time().map(f64::to_bits)
    );
    assert_eq!(a.schema_version(), b.schema_version());
}

#[test]
fn two_ledgers_one_hub_converge_exactly_once() {
    let Some(pg) = Cluster::start() else { return };
    let url = pg.create_db("hub");
    let dir = tempfile::tempdir().unwrap();
    let a = LedgerStore::open(dir.path().join("a.wal")).unwrap();
    let b = LedgerStore::open(dir.path().join("b.wal")).unwrap();
    let start = |l: &LedgerStore, name: &str| {
        let mut c = SyncConfig::new(url.clone());
        c.push = true;
        c.pull = Some(PullFilter::all());
        c.batch_size = 40;
        c.poll_interval = Duration::from_millis(100);
        c.state_dir = Some(dir.path().join(format!("{name}.wal.sync")));
        SyncHandle::start(l.clone(), c).unwrap()
    };
    // Zero setup: the database is empty; both syncs create the schema concurrently.
    let sa = start(&a, "a");
    let sb = start(&b, "b");
    assert_ne!(sa.node(), sb.node());
    write_facts(&a, "orders", 120, "o");
    write_facts(&b, "users", 90, "u");
    // A writes, B pulls; B writes, A pulls — at the same time.
    write_facts(&a, "users", 30, "x");
    wait_until("convergence", || {
        a.fact_count() == 240 && b.fact_count() == 240
    });
    // Nothing more arrives (no echo of pulled facts back and forth).
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!((a.fact_count(), b.fact_count()), (240, 240));
    let (fa, fb) = (facts_by_id(&a), facts_by_id(&b));
    assert_eq!(fa.len(), 240);
    assert_eq!(
        fa.keys().collect::<HashSet<_>>(),
        fb.keys().collect::<HashSet<_>>()
    );
    for (id, f) in &fa {
        assert_same_fact(f, &fb[id]);
    }
    // Each fact is in the hub once, from the node that wrote it.
    wait_until("pushes settle", || {
        count(&url, "SELECT count(*) FROM igniter_hub.facts") == 240
    });
    assert_eq!(
        count(
            &url,
            "SELECT count(DISTINCT fact_id) FROM igniter_hub.facts"
        ),
        240
    );
    let by_origin = query(
        &url,
        "SELECT origin_ledger, count(*) FROM igniter_hub.facts GROUP BY 1 ORDER BY 2 DESC",
    );
    let origins: Vec<(uuid::Uuid, i64)> = by_origin.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(origins, vec![(sa.node(), 150), (sb.node(), 90)]);
    // The JSONB copy answers SQL; the canonical bytes keep the types (checked above).
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM igniter_hub.facts WHERE store = 'orders' AND (value->>'n')::int = 5"
        ),
        1
    );
    // A value holding a NUL character has no JSONB copy, but its bytes round-trip
    // (the facts compared equal above): 12 + 9 + 3 of them.
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM igniter_hub.facts WHERE value IS NULL"
        ),
        24
    );
    let stats_a = sa.status();
    sa.stop().unwrap();
    sb.stop().unwrap();
    assert_eq!(stats_a.pushed, 150);
    // B recorded where A's facts came from, with their origin times.
    let state_b = StateDir::open(Some(dir.path().join("b.wal.sync"))).unwrap();
    let prov = state_b.provenance().unwrap();
    let from_a: Vec<_> = fa.values().filter(|f| prov.contains_key(&f.id())).collect();
    assert_eq!(from_a.len(), 150);
    for f in from_a {
        let p = prov[&f.id()];
        assert_eq!(p.origin, stats_origin(&url, f.id()));
        assert_eq!(p.origin_transaction_us, f.transaction_time().as_micros());
    }
    a.close().unwrap();
    b.close().unwrap();
}

fn stats_origin(url: &str, id: uuid::Uuid) -> uuid::Uuid {
    query(
        url,
        &format!("SELECT origin_ledger FROM igniter_hub.facts WHERE fact_id = '{id}'"),
    )[0]
    .get(0)
}

#[test]
fn jsonb_values_without_nul_are_queryable() {
    let Some(pg) = Cluster::start() else { return };
    let url = pg.create_db("hub");
    let a = LedgerStore::memory();
    a.write(Write::new(
        "orders",
        "o1",
        Value::map([
            (MapKey::sym("total"), Value::Int(42)),
            (MapKey::sym("status"), Value::sym("paid")),
        ]),
    ))
    .unwrap();
    let node = uuid::Uuid::new_v4();
    let mut p = Pusher::new(a.clone(), &url, node, 10, Default::default()).unwrap();
    assert_eq!(p.catch_up(far()).unwrap(), 1);
    // Pulling only from some origins.
    for (origins, expected) in [(vec![uuid::Uuid::new_v4()], 0), (vec![node], 1)] {
        let l = LedgerStore::memory();
        let filter = PullFilter {
            origins,
            ..PullFilter::all()
        };
        let state = Arc::new(StateDir::open(None).unwrap());
        let mut q = Puller::new(l.clone(), &url, state, filter, 10).unwrap();
        q.catch_up(far(), |_| {}).unwrap();
        assert_eq!(l.fact_count(), expected);
    }
    let rows = query(
        &url,
        "SELECT value->>'status', (value->>'total')::int, transaction_us, \
                extract(epoch FROM transaction_time)::float8 FROM igniter_hub.facts",
    );
    assert_eq!(rows[0].get::<_, String>(0), "paid");
    assert_eq!(rows[0].get::<_, i32>(1), 42);
    let us: i64 = rows[0].get(2);
    let f = a.fact_log_all(None, None)[0].clone();
    assert_eq!(us, f.transaction_time().as_micros());
    assert!((rows[0].get::<_, f64>(3) - f.transaction_time().as_secs_f64()).abs() < 1e-5);
}

#[test]
fn bootstrap_answers_like_the_source_including_as_of() {
    let Some(pg) = Cluster::start() else { return };
    let url = pg.create_db("hub");
    let src = LedgerStore::memory();
    for i in 0..60 {
        let store = ["orders", "users", "logs"][i % 3];
        src.write(Write::new(
            store,
            format!("k{}", i % 5),
            Value::Int(i as i64),
        ))
        .unwrap();
    }
    let mut p = Pusher::new(
        src.clone(),
        &url,
        uuid::Uuid::new_v4(),
        7,
        Default::default(),
    )
    .unwrap();
    assert_eq!(p.catch_up(far()).unwrap(), 60);
    // The hub is partitioned by day.
    let parts = count(
        &url,
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'igniter_hub.facts'::regclass",
    );
    assert!(parts >= 1);

    let fresh = LedgerStore::memory();
    let state = Arc::new(StateDir::open(None).unwrap());
    let mut puller = Puller::new(
        fresh.clone(),
        &url,
        state,
        PullFilter::stores(["orders", "users"]),
        9,
    )
    .unwrap();
    assert_eq!(puller.remaining().unwrap(), 40);
    let mut seen = Vec::new();
    puller.catch_up(far(), |n| seen.push(n)).unwrap();
    assert_eq!(seen.last(), Some(&40));
    assert_eq!(fresh.fact_count(), 40);
    // Every transaction time kept: as_of answers as on the source.
    for f in src.fact_log_all(None, None) {
        let t = f.transaction_time();
        if f.store() == "logs" {
            assert!(fresh.fact_by_id(f.id()).is_none());
            continue;
        }
        let g = fresh.fact_by_id(f.id()).unwrap();
        assert_eq!(g.transaction_time(), t);
        assert_same_fact(&f, &g);
        for store in ["orders", "users"] {
            for k in 0..5 {
                let q = || Read::new(store, format!("k{k}")).as_of(t);
                assert_eq!(src.read(q()).unwrap(), fresh.read(q()).unwrap());
            }
        }
    }
    for store in ["orders", "users"] {
        let cur = |l: &LedgerStore| {
            l.current(store)
                .unwrap()
                .into_iter()
                .map(|r| (r.fact.key().to_owned(), r.fact.id()))
                .collect::<Vec<_>>()
        };
        assert_eq!(cur(&src), cur(&fresh));
        let hist = |l: &LedgerStore| {
            l.history(HistoryQuery::new(store).key("k1"))
                .unwrap()
                .into_iter()
                .map(|r| r.fact.id())
                .collect::<Vec<_>>()
        };
        assert_eq!(hist(&src), hist(&fresh));
    }
    // Then it follows: a new fact arrives on the next step.
    src.write(Write::new("orders", "late", Value::Int(1)))
        .unwrap();
    src.write(Write::new("logs", "late", Value::Int(1)))
        .unwrap();
    p.catch_up(far()).unwrap();
    puller.catch_up(far(), |_| {}).unwrap();
    assert_eq!(fresh.fact_count(), 41);
    // A time window: only facts in it.
    let times: Vec<Timestamp> = src
        .fact_log_all(None, None)
        .iter()
        .map(Fact::transaction_time)
        .collect();
    let windowed = LedgerStore::memory();
    let mut w = Puller::new(
        windowed.clone(),
        &url,
        Arc::new(StateDir::open(None).unwrap()),
        PullFilter {
            since: Some(times[10]),
            until: Some(times[19]),
            ..PullFilter::all()
        },
        100,
    )
    .unwrap();
    w.catch_up(far(), |_| {}).unwrap();
    assert_eq!(windowed.fact_count(), 10);
}

#[test]
fn a_pulled_fact_older_than_the_local_latest_gets_a_local_time() {
    let Some(pg) = Cluster::start() else { return };
    let url = pg.create_db("hub");
    let a = LedgerStore::memory();
    a.write(Write::new("s", "k", Value::Int(1))).unwrap();
    let mut p = Pusher::new(
        a.clone(),
        &url,
        uuid::Uuid::new_v4(),
        10,
        Default::default(),
    )
    .unwrap();
    p.catch_up(far()).unwrap();
    let b = LedgerStore::memory();
    b.write(Write::new("mine", "k", Value::Int(2))).unwrap(); // later than A's fact
    let mut q = Puller::new(
        b.clone(),
        &url,
        Arc::new(StateDir::open(None).unwrap()),
        PullFilter::all(),
        10,
    )
    .unwrap();
    q.catch_up(far(), |_| {}).unwrap();
    let fa = &a.fact_log_all(None, None)[0];
    let fb = b.fact_by_id(fa.id()).unwrap();
    let mine = b.latest("mine", "k").unwrap();
    assert!(fb.transaction_time() > mine.transaction_time());
    assert!(fb.transaction_time() > fa.transaction_time());
    assert_same_fact(fa, &fb);
}

#[test]
fn hub_retention_drops_whole_partitions_and_deletes_rows_otherwise() {
    let Some(pg) = Cluster::start() else { return };
    let url = pg.create_db("hub");
    const DAY: i64 = 86_400_000_000;
    let today = Timestamp::now().as_micros() / DAY * DAY;
    let a = LedgerStore::memory();
    let restore = |store: &str, key: &str, t: i64| {
        let parts = FactParts {
            id: uuid::Uuid::new_v4(),
            store: store.into(),
            key: key.into(),
            value: Value::Int(t),
            causation: None,
            transaction_time: Timestamp::from_micros(t),
            valid_time: None,
            schema_version: 1,
            producer: None,
            derivation: None,
        };
        a.write(Write::restoring(parts)).unwrap();
    };
    // Day -3: logs only. Day -2: logs and orders. Today: logs.
    for i in 0..5 {
        restore("logs", &format!("a{i}"), today - 3 * DAY + i);
    }
    for i in 0..4 {
        restore("logs", &format!("b{i}"), today - 2 * DAY + 10 * i);
        restore("orders", &format!("b{i}"), today - 2 * DAY + 10 * i + 5);
    }
    a.write(Write::new("logs", "now", Value::Int(0))).unwrap();
    let mut p = Pusher::new(
        a.clone(),
        &url,
        uuid::Uuid::new_v4(),
        100,
        Default::default(),
    )
    .unwrap();
    p.catch_up(far()).unwrap();
    let parts = || {
        query(
            &url,
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'igniter_hub.facts'::regclass ORDER BY 1",
        )
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
    };
    assert!(parts().len() >= 3, "{:?}", parts());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let receipt = rt
        .block_on(async {
            let (mut c, _) = igniter_ledger_server::sync::connect(&url).await?;
            igniter_ledger_server::sync::retain(&mut c, "logs", Timestamp::from_micros(today)).await
        })
        .unwrap();
    assert_eq!(receipt.dropped_partitions.len(), 1);
    assert_eq!(receipt.dropped_rows, 5);
    assert_eq!(receipt.deleted_rows, 4);
    assert!(!parts().contains(&receipt.dropped_partitions[0]));
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM igniter_hub.facts WHERE store = 'logs'"
        ),
        1
    );
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM igniter_hub.facts WHERE store = 'orders'"
        ),
        4
    );
    let r = query(
        &url,
        "SELECT store, dropped_rows, deleted_rows, array_length(dropped_partitions, 1) \
         FROM igniter_hub.retention_receipts",
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].get::<_, String>(0), "logs");
    assert_eq!((r[0].get::<_, i64>(1), r[0].get::<_, i64>(2)), (5, 4));
    // A removed fact's id stays taken: pushing it again (a new node with the same
    // ledger) adds only what the hub never removed.
    let mut again = Pusher::new(
        a.clone(),
        &url,
        uuid::Uuid::new_v4(),
        100,
        Default::default(),
    )
    .unwrap();
    again.catch_up(far()).unwrap();
    assert_eq!(again.pushed(), 0);
}

#[test]
fn local_pruning_before_the_cursor_and_of_the_last_pushed_fact_loses_and_repeats_nothing() {
    let Some(pg) = Cluster::start() else { return };
    let url = pg.create_db("hub");
    let a = LedgerStore::memory();
    let node = uuid::Uuid::new_v4();
    let ids: Vec<uuid::Uuid> = (0..10)
        .map(|i| {
            a.write(Write::new("s", format!("k{i}"), Value::Int(i)))
                .unwrap()
                .id()
        })
        .collect();
    let mut p = Pusher::new(a.clone(), &url, node, 4, Default::default()).unwrap();
    assert_eq!(p.catch_up(far()).unwrap(), 10);
    drop(p);
    let hub = || count(&url, "SELECT count(*) FROM igniter_hub.facts");
    let skipped = || count(&url, "SELECT facts_skipped FROM igniter_hub.push_cursors");
    // Three facts in front of the cursor go (the prune receipt is appended): changefeed
    // sequences are stable across retention, so the cursor still names the last pushed
    // fact and the push resumes right after it, without realigning.
    a.prune_fact_ids(igniter_ledger::retention::Prune::new(
        ids[..3].iter().map(|u| u.to_string()),
        Value::sym("test"),
    ))
    .unwrap();
    for i in 0..5 {
        a.write(Write::new("s", format!("new{i}"), Value::Int(i)))
            .unwrap();
    }
    let mut p = Pusher::new(a.clone(), &url, node, 4, Default::default()).unwrap();
    p.catch_up(far()).unwrap();
    assert_eq!(p.realigned(), 0);
    assert_eq!(hub(), 10 + 1 + 5);
    assert_eq!(skipped(), 0);
    drop(p);
    // The last pushed fact itself goes: everything is offered again, the hub takes only
    // what it lacks.
    let last = a.fact_log_all(None, None).last().unwrap().id();
    a.prune_fact_ids(igniter_ledger::retention::Prune::new(
        [last.to_string()],
        Value::sym("test"),
    ))
    .unwrap();
    a.write(Write::new("s", "after", Value::Int(0))).unwrap();
    let mut p = Pusher::new(a.clone(), &url, node, 4, Default::default()).unwrap();
    p.catch_up(far()).unwrap();
    assert_eq!(p.realigned(), 1);
    assert_eq!(hub(), 16 + 2);
    assert_eq!(
        count(
            &url,
            "SELECT count(DISTINCT fact_id) FROM igniter_hub.facts"
        ),
        18
    );
    assert_eq!(skipped() as usize, a.fact_count() - 2);
}
