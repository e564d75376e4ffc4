//! Changefeed sequences across retention: a fact keeps its sequence for life — across
//! compaction, exact prune, erasure, checkpoints and reopen — and a cursor resumes
//! with exactly the surviving facts after it, or is `CursorTooOld` (naming the horizon)
//! when retention removed the history at the front of the log.
//!
//! The property test keeps its own model of the committed log: each commit's facts
//! with the sequence the ledger handed out at the time (read from `head()` right after
//! the commit), minus what retention removed (checked fact by fact with `fact_by_id`),
//! plus the receipts retention added. Cases: `PROPTEST_CASES` (default 128).

use std::time::Duration;

use igniter_ledger::changefeed::{
    BufferOptions, ChangefeedBuffer, ChangefeedError, ChangesQuery, Cursor, Follower, Recv,
    ReplayStatus, Subscription, ALL_STORES,
};
use igniter_ledger::retention::{Erase, Prune, RetentionPolicy};
use igniter_ledger::{Batch, Durability, Error, LedgerStore, OpenOptions, Value, Write};
use proptest::prelude::*;
use uuid::Uuid;

const STORES: [&str; 3] = ["a", "b", "c"];

fn open(path: &std::path::Path) -> LedgerStore {
    let l = LedgerStore::open_with(path, OpenOptions::new().durability(Durability::None)).unwrap();
    // Policies are registrations (not persisted): set them on every open.
    l.set_retention("a", RetentionPolicy::ephemeral()).unwrap();
    l
}

fn seqs_ids(events: &[igniter_ledger::changefeed::ChangeEvent]) -> Vec<(u64, Uuid)> {
    events.iter().map(|e| (e.sequence(), e.fact_id())).collect()
}

#[test]
fn a_prune_keeps_every_later_sequence_and_the_identity_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.wal");
    let ledger = open(&path);
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            ledger
                .write(Write::new("b", format!("k{i}"), Value::Int(i)))
                .unwrap()
                .id(),
        );
    }
    let identity = ledger.ledger_id().unwrap();
    assert_eq!(identity, ids[0]);
    // Prune the first three and the sixth.
    let gone: Vec<String> = [0, 1, 2, 5].iter().map(|&i| ids[i].to_string()).collect();
    ledger
        .prune_fact_ids(Prune::new(gone, Value::sym("test")))
        .unwrap();
    let check = |l: &LedgerStore| {
        assert_eq!(l.ledger_id(), Some(identity), "identity survives the prune");
        assert_eq!(l.first_sequence(), 4);
        // (Later checks run after more writes: look at sequences up to 11.)
        let mut all = l.changes(&ChangesQuery::new().stores(["b"])).unwrap();
        all.retain(|e| e.sequence() <= 10);
        let want: Vec<(u64, Uuid)> = [3, 4, 6, 7, 8, 9]
            .iter()
            .map(|&i| (i as u64 + 1, ids[i]))
            .collect();
        assert_eq!(seqs_ids(&all), want);
        // The receipt is a commit after the head: sequence 11.
        let receipt = l
            .changes(&ChangesQuery::new().after(Cursor::new(10)))
            .unwrap();
        assert_eq!(seqs_ids(&receipt)[0].0, 11);
        assert!(l.head().sequence >= 11);
        // Resuming from any cursor at or after the horizon gives exactly what follows.
        for c in 3..=11u64 {
            let mut got = l
                .changes(&ChangesQuery::new().after(Cursor::in_ledger(c, Some(identity))))
                .unwrap();
            got.retain(|e| e.sequence() <= 11);
            let want: Vec<u64> = [4, 5, 7, 8, 9, 10, 11]
                .into_iter()
                .filter(|&s| s > c)
                .collect();
            assert_eq!(
                got.iter().map(|e| e.sequence()).collect::<Vec<_>>(),
                want,
                "cursor {c}"
            );
        }
        // Before the horizon: CursorTooOld naming it.
        match l.changes(&ChangesQuery::new().after(Cursor::new(1))) {
            Err(Error::Changefeed(ChangefeedError::CursorTooOld { horizon, .. })) => {
                assert_eq!(horizon, Cursor::in_ledger(3, Some(identity)))
            }
            other => panic!("{other:?}"),
        }
        assert!(l
            .follow(&ChangesQuery::new().after(Cursor::new(2)))
            .is_err());
    };
    check(&ledger);
    ledger.write(Write::new("b", "new", Value::Nil)).unwrap();
    assert_eq!(ledger.head().sequence, 12);
    ledger.checkpoint().unwrap();
    ledger.close().unwrap();
    drop(ledger);
    // From the snapshot.
    let l = open(&path);
    check(&l);
    assert_eq!(l.head().sequence, 12);
    l.close().unwrap();
    drop(l);
    // From the WAL alone.
    std::fs::remove_file(dir.path().join("s.wal.snap")).unwrap();
    let l = open(&path);
    check(&l);
    let next = l.write(Write::new("c", "x", Value::Nil)).unwrap();
    assert_eq!(l.head().sequence, 13);
    let last = l
        .changes(&ChangesQuery::new().after(Cursor::new(12)))
        .unwrap();
    assert_eq!(seqs_ids(&last), [(13, next.id())]);
    l.close().unwrap();
}

#[test]
fn an_attached_buffer_replays_cursor_too_old_and_delivers_receipts() {
    let ledger = LedgerStore::memory();
    let feed = ChangefeedBuffer::new(BufferOptions::default()).unwrap();
    ledger.attach_changefeed(&feed).unwrap();
    let sub = feed.subscribe(ALL_STORES);
    let f1 = ledger.write(Write::new("b", "k1", Value::Int(1))).unwrap();
    ledger.write(Write::new("b", "k2", Value::Int(2))).unwrap();
    ledger
        .prune_fact_ids(Prune::new([f1.id().to_string()], Value::sym("t")))
        .unwrap();
    let r = feed.replay(Some(Cursor::new(0)), ALL_STORES, None).unwrap();
    assert_eq!(r.status, ReplayStatus::CursorTooOld);
    assert_eq!(r.oldest_cursor.map(|c| c.sequence), Some(2));
    let r = feed.replay(Some(Cursor::new(1)), ALL_STORES, None).unwrap();
    assert_eq!(r.status, ReplayStatus::Ok);
    assert_eq!(
        r.events.iter().map(|e| e.sequence()).collect::<Vec<_>>(),
        [2, 3]
    );
    // The live subscriber reads the ledger's log: the pruned fact was erased before it
    // got there, so it sees the other write and the receipt (sequence 3), in order
    // and with their sequences, and nothing of the erased fact.
    let mut got = Vec::new();
    while let Recv::Event(e) = sub.recv_timeout(Duration::from_millis(200)) {
        got.push(e.sequence());
    }
    assert_eq!(got, [2, 3]);
    assert!(feed.subscribe_after(Cursor::new(0), ALL_STORES).is_err());
    assert!(feed.subscribe_after(Cursor::new(1), ALL_STORES).is_ok());
}

// ------------------------------------------------------------------ property

#[derive(Clone, Debug)]
enum Op {
    Write(usize, u8),
    Batch(Vec<(usize, u8)>),
    /// Compact store "a" (ephemeral: each key's latest fact stays).
    Compact,
    /// Prune the facts at these (modular) positions of the model.
    Prune(Vec<u16>),
    /// Erase a key of store "c" (tombstones: sequences and facts stay).
    Erase(u8),
    Checkpoint,
    Reopen,
    /// A consumer restarts from a random cursor it had reached.
    Restart(usize, u32),
    Pump(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..3usize, 0..4u8).prop_map(|(s, k)| Op::Write(s, k)),
        2 => prop::collection::vec((0..3usize, 0..4u8), 1..5).prop_map(Op::Batch),
        1 => Just(Op::Compact),
        1 => prop::collection::vec(any::<u16>(), 1..4).prop_map(Op::Prune),
        1 => (0..4u8).prop_map(Op::Erase),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
        2 => (0..3usize, any::<u32>()).prop_map(|(c, r)| Op::Restart(c, r)),
        3 => (0..3usize, 0..8usize).prop_map(|(c, n)| Op::Pump(c, n)),
    ]
}

/// One committed fact as the model knows it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Entry {
    seq: u64,
    id: Uuid,
    store: usize,
}

enum Source {
    Sub(#[allow(dead_code)] ChangefeedBuffer, Subscription),
    Follow(Follower),
}

struct Consumer {
    stores: Vec<usize>,
    source: Source,
    /// Where it last (re)started.
    started: u64,
    received: Vec<(u64, Uuid)>,
}

fn names(stores: &[usize]) -> Vec<&'static str> {
    stores.iter().map(|&s| STORES[s]).collect()
}

fn source(ledger: &LedgerStore, i: usize, stores: &[usize], after: u64) -> Option<Source> {
    let q = ChangesQuery::new()
        .after(Cursor::in_ledger(after, ledger.ledger_id()))
        .stores(names(stores));
    if i == 0 {
        ledger.follow(&q).ok().map(Source::Follow)
    } else {
        let feed = ChangefeedBuffer::new(BufferOptions {
            subscriber_queue_size: 2,
            ..BufferOptions::default()
        })
        .unwrap();
        // One buffer per ledger: consumers after the first share the ledger's.
        let feed = match ledger.changefeed() {
            Some(f) => f,
            None => {
                ledger.attach_changefeed(&feed).unwrap();
                feed
            }
        };
        feed.subscribe_after(q.after.unwrap(), &names(stores))
            .ok()
            .map(|s| Source::Sub(feed, s))
    }
}

impl Consumer {
    fn pump(&mut self, n: usize) -> bool {
        for _ in 0..n {
            let e = match &mut self.source {
                Source::Sub(_, s) => match s.recv_timeout(Duration::ZERO) {
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
}

/// Records the facts committed since `before` (the head before the commit) in the model,
/// checking they were numbered right after it.
fn record(ledger: &LedgerStore, model: &mut Vec<Entry>, before: u64) {
    let new = ledger
        .changes(&ChangesQuery::new().after(Cursor::new(before)))
        .unwrap();
    let mut expect = before;
    for e in new {
        expect += 1;
        assert_eq!(e.sequence(), expect, "new facts numbered after the head");
        let store = STORES.iter().position(|s| *s == e.store()).unwrap_or(9);
        model.push(Entry {
            seq: e.sequence(),
            id: e.fact_id(),
            store,
        });
    }
    assert_eq!(ledger.head().sequence, expect);
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.wal");
    let mut ledger = open(&path);
    let mut model: Vec<Entry> = Vec::new();
    // Every fact ever committed (removed ones too), by id.
    let mut ever: std::collections::HashMap<Uuid, u64> = Default::default();
    let filters = [vec![], vec![0usize], vec![1, 2]];
    let mut consumers: Vec<Consumer> = filters
        .iter()
        .enumerate()
        .map(|(i, f)| Consumer {
            stores: f.clone(),
            source: source(&ledger, i, f, 0).unwrap(),
            started: 0,
            received: Vec::new(),
        })
        .collect();
    let mut cursors_seen: Vec<u64> = vec![0];
    for op in ops {
        let before = ledger.head().sequence;
        match op {
            Op::Write(s, k) => {
                ledger
                    .write(Write::new(STORES[s], format!("k{k}"), Value::Int(k as i64)))
                    .unwrap();
                record(&ledger, &mut model, before);
            }
            Op::Batch(items) => {
                let mut b = Batch::new();
                for (s, k) in items {
                    b = b.write(Write::new(STORES[s], format!("k{k}"), Value::Nil));
                }
                ledger.commit(b).unwrap();
                record(&ledger, &mut model, before);
            }
            Op::Compact | Op::Prune(_) | Op::Erase(_) => {
                match &op {
                    Op::Compact => {
                        ledger.compact(Some("a")).unwrap();
                    }
                    Op::Prune(at) if !model.is_empty() => {
                        let ids: Vec<String> = at
                            .iter()
                            .map(|&p| model[p as usize % model.len()].id.to_string())
                            .collect();
                        ledger
                            .prune_fact_ids(Prune::new(ids, Value::sym("p")))
                            .unwrap();
                    }
                    Op::Erase(k) => {
                        let _ = ledger.erase(Erase::key("c", format!("k{k}"), Value::sym("e")));
                    }
                    _ => {}
                }
                model.retain(|e| ledger.fact_by_id(e.id).is_some());
                record(&ledger, &mut model, before);
            }
            Op::Checkpoint => {
                ledger.checkpoint().unwrap();
            }
            Op::Reopen => {
                ledger.close().unwrap();
                for c in &mut consumers {
                    while c.pump(1) {}
                }
                drop(std::mem::replace(&mut ledger, LedgerStore::memory()));
                ledger = open(&path);
                assert_eq!(ledger.head().sequence, before, "head survives reopen");
                for (i, c) in consumers.iter_mut().enumerate() {
                    let last = c.received.last().map_or(c.started, |r| r.0);
                    let at = last.max(ledger.first_sequence() - 1);
                    c.source = source(&ledger, i, &c.stores, at).unwrap();
                    c.started = at;
                    c.received.clear();
                }
            }
            Op::Restart(c, r) => {
                let con = &mut consumers[c];
                let last = con.received.last().map_or(con.started, |r| r.0);
                let at = u64::from(r) % (last + 1);
                let horizon = ledger.first_sequence() - 1;
                match source(&ledger, c, &con.stores, at) {
                    Some(s) => {
                        assert!(
                            at >= horizon,
                            "cursor {at} before horizon {horizon} accepted"
                        );
                        con.source = s;
                        con.started = at;
                        con.received.clear();
                    }
                    None => assert!(at < horizon, "cursor {at} refused at horizon {horizon}"),
                }
            }
            Op::Pump(c, n) => {
                consumers[c].pump(n);
            }
        }
        for e in &model {
            ever.insert(e.id, e.seq);
        }
        cursors_seen.push(ledger.head().sequence);
        // The whole log: exactly the model, sequences unchanged.
        let all = ledger.changes(&ChangesQuery::new()).unwrap();
        let want: Vec<(u64, Uuid)> = model.iter().map(|e| (e.seq, e.id)).collect();
        assert_eq!(seqs_ids(&all), want);
    }
    // Every cursor ever handed out: exactly the surviving facts after it, or too old.
    let first = ledger.first_sequence();
    for &c in &cursors_seen {
        match ledger.changes(&ChangesQuery::new().after(Cursor::new(c))) {
            Ok(got) => {
                assert!(c + 1 >= first);
                let want: Vec<(u64, Uuid)> = model
                    .iter()
                    .filter(|e| e.seq > c)
                    .map(|e| (e.seq, e.id))
                    .collect();
                assert_eq!(seqs_ids(&got), want, "after {c}");
            }
            Err(Error::Changefeed(ChangefeedError::CursorTooOld { horizon, .. })) => {
                assert!(c + 1 < first);
                assert_eq!(horizon.sequence, first - 1);
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Each consumer: since its last start, strictly increasing sequences of facts that
    // were committed with those sequences, and no surviving fact of its stores skipped.
    for (i, c) in consumers.iter_mut().enumerate() {
        while c.pump(64) {}
        let mut last = c.started;
        for &(seq, id) in &c.received {
            assert!(seq > last, "consumer {i}: {seq} after {last}");
            assert_eq!(
                ever.get(&id),
                Some(&seq),
                "consumer {i}: fact {id} numbered {seq}"
            );
            last = seq;
        }
        let got: std::collections::HashSet<Uuid> = c.received.iter().map(|r| r.1).collect();
        for e in &model {
            let follows = c.stores.is_empty() || c.stores.contains(&e.store);
            if follows && e.seq > c.started {
                assert!(
                    got.contains(&e.id),
                    "consumer {i} skipped fact {} (seq {})",
                    e.id,
                    e.seq
                );
            }
        }
    }
    ledger.close().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn sequences_survive_retention_and_cursors_resume_exactly(ops in prop::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
