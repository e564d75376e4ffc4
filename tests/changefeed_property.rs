//! Property: for any interleaving of writes, batches, appends, consumer restarts at random
//! cursors and ledger reopens, what each consumer received (after truncating to the
//! cursor it restarted from, each time) equals the committed log filtered by its stores.
//!
//! Consumers: three buffer subscriptions with small queues (1–3 events, so most events
//! come through the catch-up path once a queue fills) and different store filters, and
//! one `Follower`. Cases: `PROPTEST_CASES` (default 256).

use std::time::Duration;

use igniter_ledger::changefeed::{
    BufferOptions, ChangefeedBuffer, ChangesQuery, Cursor, Follower, Recv, Subscription,
};
use igniter_ledger::{Append, Batch, Durability, LedgerStore, OpenOptions, Value, Write};
use proptest::prelude::*;

const STORES: [&str; 3] = ["a", "b", "c"];

#[derive(Clone, Debug)]
enum Op {
    Write(usize, u8),
    Batch(Vec<(usize, u8)>),
    Append(usize),
    Pump(usize, usize),
    Restart(usize, u32),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..4u8).prop_map(|(s, k)| Op::Write(s, k)),
        2 => prop::collection::vec((0..3usize, 0..4u8), 1..6).prop_map(Op::Batch),
        1 => (0..3usize).prop_map(Op::Append),
        4 => (0..4usize, 0..6usize).prop_map(|(c, n)| Op::Pump(c, n)),
        2 => (0..4usize, any::<u32>()).prop_map(|(c, r)| Op::Restart(c, r)),
        1 => Just(Op::Reopen),
    ]
}

enum Source {
    Sub(Subscription),
    Follow(Follower),
}

struct Consumer {
    stores: Vec<String>,
    source: Source,
    received: Vec<(u64, uuid::Uuid)>,
}

impl Consumer {
    /// Takes up to `n` events that are available now; false when none was.
    fn pump(&mut self, n: usize) -> bool {
        for _ in 0..n {
            let e = match &mut self.source {
                Source::Sub(s) => match s.recv_timeout(Duration::ZERO) {
                    Recv::Event(e) => Some(e),
                    _ => None,
                },
                Source::Follow(f) => f.next_timeout(Duration::ZERO).ok().flatten(),
            };
            match e {
                Some(e) => self.received.push((e.sequence(), e.fact_id())),
                None => return false,
            }
        }
        true
    }

    fn last(&self) -> u64 {
        self.received.last().map_or(0, |r| r.0)
    }
}

struct World {
    ledger: LedgerStore,
    feed: ChangefeedBuffer,
    consumers: Vec<Consumer>,
    path: std::path::PathBuf,
}

fn open(path: &std::path::Path) -> (LedgerStore, ChangefeedBuffer) {
    let l = LedgerStore::open_with(path, OpenOptions::new().durability(Durability::None)).unwrap();
    let feed = ChangefeedBuffer::new(BufferOptions {
        subscriber_queue_size: 2,
        max_size: 4,
        ..BufferOptions::default()
    })
    .unwrap();
    l.attach_changefeed(&feed).unwrap();
    (l, feed)
}

fn source(
    w_ledger: &LedgerStore,
    feed: &ChangefeedBuffer,
    i: usize,
    stores: &[String],
    after: u64,
) -> Source {
    let cursor = Cursor::in_ledger(after, w_ledger.ledger_id());
    if i == 3 {
        Source::Follow(
            w_ledger
                .follow(&ChangesQuery::new().after(cursor).stores(stores))
                .unwrap(),
        )
    } else {
        Source::Sub(feed.subscribe_after(cursor, stores).unwrap())
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.wal");
    let (ledger, feed) = open(&path);
    let filters: [Vec<String>; 4] = [
        vec![],
        vec!["a".into()],
        vec!["b".into(), "c".into()],
        vec!["a".into(), "c".into()],
    ];
    let consumers = filters
        .iter()
        .enumerate()
        .map(|(i, f)| Consumer {
            stores: f.clone(),
            source: source(&ledger, &feed, i, f, 0),
            received: Vec::new(),
        })
        .collect();
    let mut w = World {
        ledger,
        feed,
        consumers,
        path,
    };
    for op in ops {
        match op {
            Op::Write(s, k) => {
                w.ledger
                    .write(Write::new(STORES[s], format!("k{k}"), Value::Int(k as i64)))
                    .unwrap();
            }
            Op::Batch(items) => {
                let mut b = Batch::new();
                for (s, k) in items {
                    b = b.write(Write::new(STORES[s], format!("k{k}"), Value::Nil));
                }
                w.ledger.commit(b).unwrap();
            }
            Op::Append(s) => {
                w.ledger.append(Append::new(STORES[s], Value::Nil)).unwrap();
            }
            Op::Pump(c, n) => {
                w.consumers[c].pump(n);
            }
            Op::Restart(c, r) => {
                // A consumer resumes from some cursor it had reached (it may have
                // persisted an older one than its last event).
                let (ledger, feed) = (&w.ledger, &w.feed);
                let con = &mut w.consumers[c];
                let at = u64::from(r) % (con.last() + 1);
                con.received.retain(|e| e.0 <= at);
                // The old subscription is dropped (closed) here.
                con.source = source(ledger, feed, c, &con.stores, at);
            }
            Op::Reopen => {
                w.ledger.close().unwrap();
                // Drain what the closed subscriptions still hold, then resume each
                // consumer from its last event in the reopened ledger.
                for c in &mut w.consumers {
                    if let Source::Sub(_) = c.source {
                        while c.pump(1) {}
                    }
                }
                let (l, f) = {
                    drop(std::mem::replace(&mut w.ledger, LedgerStore::memory()));
                    open(&w.path)
                };
                for (i, c) in w.consumers.iter_mut().enumerate() {
                    c.source = source(&l, &f, i, &c.stores, c.last());
                }
                w.ledger = l;
                w.feed = f;
            }
        }
    }
    for (i, c) in w.consumers.iter_mut().enumerate() {
        while c.pump(64) {}
        let want: Vec<(u64, uuid::Uuid)> = w
            .ledger
            .changes(&ChangesQuery::new().stores(&c.stores))
            .unwrap()
            .iter()
            .map(|e| (e.sequence(), e.fact_id()))
            .collect();
        assert_eq!(c.received, want, "consumer {i} (stores {:?})", c.stores);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_consumer_receives_the_committed_log_filtered_by_its_stores(ops in prop::collection::vec(op(), 1..80)) {
        run(ops);
    }
}

/// The same property with real concurrency: writer threads (single writes and batches)
/// race consumer threads that restart at random cursors they had reached, with queues of
/// one or two events so most events go through the catch-up path while commits continue.
#[test]
fn concurrent_writers_and_restarting_consumers_lose_and_repeat_nothing() {
    let ledger = LedgerStore::memory();
    let feed = ChangefeedBuffer::new(BufferOptions {
        subscriber_queue_size: 2,
        ..BufferOptions::default()
    })
    .unwrap();
    ledger.attach_changefeed(&feed).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let filters: Vec<Vec<String>> = vec![vec![], vec!["a".into()], vec!["b".into(), "c".into()]];
    let consumers: Vec<_> = filters
        .into_iter()
        .enumerate()
        .map(|(i, stores)| {
            let feed = feed.clone();
            let ledger = ledger.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(i as u64);
                let mut received: Vec<(u64, uuid::Uuid)> = Vec::new();
                let mut restarts = 0;
                let mut sub = feed.subscribe_after(Cursor::new(0), &stores).unwrap();
                loop {
                    let caught_up = |received: &[(u64, uuid::Uuid)]| {
                        let last = received.last().map_or(0, |r| r.0);
                        let q = ChangesQuery::new().stores(&stores).after(Cursor::new(last));
                        ledger.changes(&q).unwrap().is_empty()
                    };
                    match sub.recv_timeout(Duration::from_millis(5)) {
                        Recv::Event(e) => received.push((e.sequence(), e.fact_id())),
                        // Writers are done and nothing is left after the last event.
                        Recv::Timeout
                            if done.load(std::sync::atomic::Ordering::SeqCst)
                                && caught_up(&received) =>
                        {
                            break
                        }
                        _ => {}
                    }
                    if rng.u8(..100) == 0 {
                        let last = received.last().map_or(0, |r| r.0);
                        // A cursor it had persisted a little earlier (up to 50 facts back).
                        let at = last - rng.u64(..=last.min(50));
                        received.retain(|r| r.0 <= at);
                        sub = feed.subscribe_after(Cursor::new(at), &stores).unwrap();
                        restarts += 1;
                    }
                }
                (stores, received, restarts)
            })
        })
        .collect();
    std::thread::scope(|s| {
        for t in 0..3 {
            let ledger = ledger.clone();
            s.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(100 + t);
                for i in 0..1500 {
                    if i % 8 == 0 {
                        std::thread::yield_now(); // let consumers run between commits
                    }
                    if rng.u8(..5) == 0 {
                        let mut b = Batch::new();
                        for j in 0..rng.usize(1..6) {
                            b = b.write(Write::new(
                                STORES[rng.usize(..3)],
                                format!("{t}-{i}-{j}"),
                                Value::Nil,
                            ));
                        }
                        ledger.commit(b).unwrap();
                    } else {
                        ledger
                            .write(Write::new(
                                STORES[rng.usize(..3)],
                                format!("{t}-{i}"),
                                Value::Nil,
                            ))
                            .unwrap();
                    }
                }
            });
        }
    });
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for c in consumers {
        let (stores, received, restarts) = c.join().unwrap();
        assert!(restarts > 0, "the consumer never restarted");
        let want: Vec<(u64, uuid::Uuid)> = ledger
            .changes(&ChangesQuery::new().stores(&stores))
            .unwrap()
            .iter()
            .map(|e| (e.sequence(), e.fact_id()))
            .collect();
        assert!(want.len() > 100);
        assert_eq!(received, want, "stores {stores:?}");
    }
}
