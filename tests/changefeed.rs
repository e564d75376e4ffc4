//! The changefeed from Rust: standalone buffer semantics (0.5.2 shapes), the ledger as the
//! changefeed (sequences = log positions, stable across reopen; identity; resume from any
//! cursor), subscriptions (policies, catch-up, failures, close), followers on other
//! threads, and bad input.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use igniter_ledger::changefeed::{
    AlertThresholds, AlertValue, BufferOptions, ChangefeedBuffer, ChangefeedError, ChangesQuery,
    ClosePolicy, Cursor, Overflow, Recv, ReplayStatus, ALL_STORES,
};
use igniter_ledger::{
    Append, Batch, Durability, Error, Fact, LedgerStore, OpenOptions, Value, Write,
};

fn fact(store: &str, key: &str) -> Fact {
    Fact::build(Write::new(store, key, Value::Int(1))).unwrap()
}

fn buffer(f: impl FnOnce(&mut BufferOptions)) -> ChangefeedBuffer {
    let mut o = BufferOptions::default();
    f(&mut o);
    ChangefeedBuffer::new(o).unwrap()
}

fn next(sub: &igniter_ledger::changefeed::Subscription) -> igniter_ledger::changefeed::ChangeEvent {
    match sub.recv_timeout(Duration::from_secs(5)) {
        Recv::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn seqs(events: &[igniter_ledger::changefeed::ChangeEvent]) -> Vec<u64> {
    events.iter().map(|e| e.sequence()).collect()
}

#[test]
fn standalone_buffer_numbers_from_one_and_filters_by_store() {
    let feed = buffer(|_| {});
    let tasks = feed.subscribe(&["tasks"]);
    let all = feed.subscribe(ALL_STORES);
    for (s, k) in [("tasks", "a"), ("other", "b"), ("tasks", "c")] {
        feed.emit(fact(s, k)).unwrap();
    }
    assert_eq!(next(&tasks).key(), "a");
    let c = next(&tasks);
    assert_eq!(
        (c.key(), c.sequence(), c.cursor()),
        ("c", 3, Cursor::new(3))
    );
    assert_eq!(seqs(&[next(&all), next(&all), next(&all)]), [1, 2, 3]);
    assert_eq!(feed.subscriber_count(Some("tasks")), 2); // the all-stores one counts
    assert_eq!(feed.subscriber_count(Some("other")), 1);
    let snap = feed.snapshot();
    assert_eq!((snap.emitted_total, snap.delivered_total), (3, 5));
    assert!(next_id_is_unique(&feed));
}

fn next_id_is_unique(feed: &ChangefeedBuffer) -> bool {
    let f = fact("x", "k");
    let a = igniter_ledger::changefeed::ChangeEvent::now(f.clone(), 1, None);
    let b = igniter_ledger::changefeed::ChangeEvent::now(f, 1, None);
    a.id() != b.id() && a.id().starts_with("change_") && feed.options().max_size == 1000
}

#[test]
fn standalone_replay_answers_cursor_too_old_once_the_ring_moved_on() {
    let feed = buffer(|o| o.max_size = 3);
    for i in 0..5 {
        feed.emit(fact("tasks", &format!("k{i}"))).unwrap();
    }
    let r = feed.replay(Some(Cursor::new(1)), ALL_STORES, None).unwrap();
    assert_eq!(r.status, ReplayStatus::CursorTooOld);
    assert_eq!(r.oldest_cursor, Some(Cursor::new(3)));
    assert_eq!(r.dropped_total, 2);
    let r = feed
        .replay(Some(Cursor::new(2)), ALL_STORES, Some(2))
        .unwrap();
    assert_eq!(r.status, ReplayStatus::Ok);
    assert_eq!(seqs(&r.events), [3, 4]);
    assert_eq!(r.cursor, Some(Cursor::new(4)));
    assert_eq!(feed.snapshot().buffered, 3);
}

#[test]
fn overflow_policies_drop_oldest_or_newest_and_count() {
    for (policy, expect) in [
        (Overflow::DropOldest, vec![4u64, 5, 6]),
        (Overflow::DropNewest, vec![1, 2, 3]),
    ] {
        let feed = buffer(|o| {
            o.subscriber_queue_size = 3;
            o.overflow = Some(policy);
            o.alert_thresholds = AlertThresholds {
                overflow_dropped_total: Some(1),
                queue_pressure_ratio: Some(0.5),
                ..AlertThresholds::default()
            };
        });
        let sub = feed.subscribe(ALL_STORES);
        for i in 0..6 {
            feed.emit(fact("s", &format!("{i}"))).unwrap();
        }
        let snap = feed.snapshot();
        assert_eq!(snap.overflow_dropped_total, 3);
        assert!(snap
            .alerts
            .iter()
            .any(|a| a.code == "changefeed_overflow_drops"));
        assert!(snap
            .alerts
            .iter()
            .any(|a| a.subscriber_id.is_some() && a.value == AlertValue::Ratio(1.0)));
        assert!(snap
            .diagnostics
            .recent
            .iter()
            .any(|d| d.kind == "subscriber_overflow"));
        let got: Vec<u64> = (0..3).map(|_| next(&sub).sequence()).collect();
        assert_eq!(got, expect, "{policy:?}");
        assert!(matches!(
            sub.recv_timeout(Duration::from_millis(5)),
            Recv::Timeout
        ));
    }
}

#[test]
fn catch_up_on_a_standalone_buffer_drops_the_oldest() {
    let feed = buffer(|o| {
        o.subscriber_queue_size = 2;
        o.overflow = Some(Overflow::CatchUp);
    });
    let sub = feed.subscribe(ALL_STORES);
    assert_eq!(sub.snapshot().overflow, Overflow::DropOldest);
    for i in 0..4 {
        feed.emit(fact("s", &format!("{i}"))).unwrap();
    }
    assert_eq!(seqs(&[next(&sub), next(&sub)]), [3, 4]);
    assert_eq!(feed.snapshot().overflow_dropped_total, 2);
}

#[test]
fn close_policies_drain_or_discard() {
    for (policy, left) in [(ClosePolicy::Drain, 4), (ClosePolicy::Discard, 0)] {
        let feed = buffer(|o| o.close_policy = policy);
        let sub = feed.subscribe(ALL_STORES);
        for i in 0..4 {
            feed.emit(fact("s", &format!("{i}"))).unwrap();
        }
        sub.close();
        sub.close(); // idempotent
        assert_eq!(feed.subscriber_count(None), 0);
        let mut n = 0;
        while let Recv::Event(_) = sub.recv_timeout(Duration::from_millis(5)) {
            n += 1;
        }
        assert_eq!(n, left, "{policy:?}");
        assert!(matches!(sub.recv_timeout(Duration::ZERO), Recv::Closed));
        let kinds: Vec<&str> = feed
            .snapshot()
            .diagnostics
            .recent
            .iter()
            .map(|d| d.kind)
            .collect();
        assert_eq!(kinds, ["subscriber_subscribed", "subscriber_closed"]);
    }
}

#[test]
fn a_failing_handler_is_removed_counted_and_recorded() {
    let feed = buffer(|o| {
        o.alert_thresholds.failed_total = Some(1);
        o.diagnostic_ring_size = 2;
    });
    let sub = feed.subscribe(&["s"]);
    feed.emit(fact("s", "a")).unwrap();
    feed.emit(fact("s", "b")).unwrap();
    let Recv::Event(_) = sub.take(Some(Duration::from_secs(1))) else {
        panic!("no event")
    };
    sub.fail("RuntimeError", "boom");
    assert!(matches!(sub.take(Some(Duration::ZERO)), Recv::Closed));
    let snap = feed.snapshot();
    assert_eq!(
        (
            snap.failed_total,
            snap.delivered_total,
            snap.subscriber_count
        ),
        (1, 0, 0)
    );
    assert_eq!(snap.alerts[0].code, "changefeed_subscriber_failures");
    let d = snap.diagnostics.recent.last().unwrap();
    assert_eq!(
        (d.kind, d.error_class.as_deref(), d.message.as_deref()),
        ("subscriber_failed", Some("RuntimeError"), Some("boom"))
    );
    assert_eq!(snap.diagnostics.recent_count, 2);
    sub.close(); // after a failure: nothing more recorded
    assert_eq!(feed.snapshot().diagnostics.recent_count, 2);
}

#[test]
fn bad_options_and_inputs_are_refused_by_name() {
    let msg = |e: Error| e.to_string();
    assert!(msg(Overflow::parse("nope").unwrap_err()).contains("unknown overflow policy"));
    assert!(msg(ClosePolicy::parse("nope").unwrap_err()).contains("unknown close_policy"));
    let e = AlertThresholds::from_pairs([("typo_key", 1.0)]).unwrap_err();
    assert!(msg(e).contains("unknown alert_threshold keys: typo_key"));
    for bad in [
        BufferOptions {
            max_size: 0,
            ..BufferOptions::default()
        },
        BufferOptions {
            subscriber_queue_size: 0,
            ..BufferOptions::default()
        },
    ] {
        assert!(matches!(
            ChangefeedBuffer::new(bad),
            Err(Error::Changefeed(ChangefeedError::NotPositive {
                value: 0,
                ..
            }))
        ));
    }
    assert!(matches!(
        Overflow::parse("nope"),
        Err(Error::Changefeed(ChangefeedError::UnknownPolicy {
            argument: "overflow",
            ..
        }))
    ));
    assert!(matches!(
        ClosePolicy::parse("nope"),
        Err(Error::Changefeed(ChangefeedError::UnknownPolicy {
            argument: "close_policy",
            ..
        }))
    ));
    let e = ChangefeedBuffer::new(BufferOptions {
        subscriber_queue_size: 0,
        ..BufferOptions::default()
    });
    assert!(msg(e.unwrap_err()).starts_with("subscriber_queue_size"));
    // A ledger cursor given to a standalone buffer, a zero limit.
    let feed = buffer(|_| {});
    let other = LedgerStore::memory();
    other.write(Write::new("s", "k", Value::Nil)).unwrap();
    let e = feed
        .replay(Some(other.head()), ALL_STORES, None)
        .unwrap_err();
    assert!(matches!(
        &e,
        Error::Changefeed(ChangefeedError::LedgerCursorOnStandalone { .. })
    ));
    assert!(msg(e).starts_with("cursor:"));
    assert!(msg(feed.replay(None, ALL_STORES, Some(0)).unwrap_err()).starts_with("limit:"));
}

#[test]
fn the_ledger_numbers_facts_by_log_position_and_names_itself() {
    let ledger = LedgerStore::memory();
    assert_eq!(ledger.ledger_id(), None);
    assert_eq!(ledger.head(), Cursor::new(0));
    let a = ledger
        .write(Write::new("tasks", "a", Value::Int(1)))
        .unwrap();
    ledger
        .commit(
            Batch::new()
                .write(Write::new("tasks", "b", Value::Int(2)))
                .append(Append::new("log", Value::Nil)),
        )
        .unwrap();
    assert_eq!(ledger.ledger_id(), Some(a.id()));
    let all = ledger.changes(&ChangesQuery::new()).unwrap();
    assert_eq!(seqs(&all), [1, 2, 3]);
    assert!(all.iter().all(|e| e.ledger() == Some(a.id())));
    let tasks = ledger
        .changes(&ChangesQuery::new().stores(["tasks"]))
        .unwrap();
    assert_eq!(seqs(&tasks), [1, 2]);
    let after = ledger
        .changes(&ChangesQuery::new().after(all[0].cursor()).limit(1))
        .unwrap();
    assert_eq!(after[0].key(), "b");
    // A plain {sequence: N} cursor (no identity) is accepted.
    assert_eq!(
        ledger
            .changes(&ChangesQuery::new().after(Cursor::new(2)))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn cursors_from_another_ledger_or_past_the_end_are_refused() {
    let a = LedgerStore::memory();
    let b = LedgerStore::memory();
    a.write(Write::new("s", "k", Value::Nil)).unwrap();
    b.write(Write::new("s", "k", Value::Nil)).unwrap();
    let e = b.changes(&ChangesQuery::new().after(a.head())).unwrap_err();
    assert!(e.to_string().contains("from another ledger"), "{e}");
    assert!(matches!(
        e,
        Error::Changefeed(ChangefeedError::ForeignCursor {
            ledger: Some(_),
            ..
        })
    ));
    let e = a
        .changes(&ChangesQuery::new().after(Cursor::new(9)))
        .unwrap_err();
    assert!(e.to_string().contains("past the end"), "{e}");
    assert!(matches!(
        e,
        Error::Changefeed(ChangefeedError::CursorPastEnd { head: 1, .. })
    ));
    assert!(a.follow(&ChangesQuery::new().after(b.head())).is_err());
    let e = a.changes(&ChangesQuery::new().limit(0)).unwrap_err();
    assert!(e.to_string().starts_with("limit:"));
}

#[test]
fn sequences_and_identity_survive_reopen_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cf.wal");
    let (id, cursor) = {
        let l = LedgerStore::open_with(&path, OpenOptions::new().durability(Durability::Flush))
            .unwrap();
        for i in 0..5 {
            l.write(Write::new("s", format!("{i}"), Value::Int(i)))
                .unwrap();
        }
        l.checkpoint().unwrap();
        for i in 5..8 {
            l.write(Write::new("s", format!("{i}"), Value::Int(i)))
                .unwrap();
        }
        let c = l.changes(&ChangesQuery::new()).unwrap()[3].cursor();
        l.close().unwrap();
        (l.ledger_id().unwrap(), c)
    };
    let l = LedgerStore::open(&path).unwrap();
    assert_eq!(l.ledger_id(), Some(id));
    assert_eq!(l.head(), Cursor::in_ledger(8, Some(id)));
    let rest = l.changes(&ChangesQuery::new().after(cursor)).unwrap();
    assert_eq!(seqs(&rest), [5, 6, 7, 8]);
    assert_eq!(rest[0].key(), "4");
    // New commits continue the numbering, and an attached buffer sees them so.
    let feed = buffer(|_| {});
    l.attach_changefeed(&feed).unwrap();
    let sub = feed.subscribe(ALL_STORES);
    l.write(Write::new("s", "new", Value::Nil)).unwrap();
    let e = next(&sub);
    assert_eq!((e.sequence(), e.ledger()), (9, Some(id)));
}

#[test]
fn attached_buffer_emits_commits_in_order_and_replays_from_the_log() {
    let ledger = LedgerStore::memory();
    let feed = buffer(|o| o.max_size = 2);
    ledger.attach_changefeed(&feed).unwrap();
    assert!(ledger.attach_changefeed(&buffer(|_| {})).is_err());
    assert!(
        feed.emit(fact("s", "k")).is_err(),
        "hand emission on an attached buffer"
    );
    let sub = feed.subscribe(ALL_STORES);
    for i in 0..5 {
        ledger
            .write(Write::new("s", format!("{i}"), Value::Int(i)))
            .unwrap();
    }
    assert_eq!(
        seqs(&(0..5).map(|_| next(&sub)).collect::<Vec<_>>()),
        [1, 2, 3, 4, 5]
    );
    // The ring holds 2, but replay reads the ledger: no cursor_too_old.
    let r = feed.replay(Some(Cursor::new(1)), ALL_STORES, None).unwrap();
    assert_eq!(r.status, ReplayStatus::Ok);
    assert_eq!(seqs(&r.events), [2, 3, 4, 5]);
    assert_eq!(r.oldest_cursor.unwrap().sequence, 1);
    let snap = feed.snapshot();
    assert_eq!(snap.overflow, Overflow::CatchUp);
    assert_eq!(
        (
            snap.buffered,
            snap.oldest_sequence,
            snap.newest_sequence,
            snap.dropped_total,
            snap.emitted_total
        ),
        (2, Some(4), Some(5), 3, 5)
    );
    // Closing the ledger closes the subscriptions.
    ledger.close().unwrap();
    assert!(matches!(
        sub.recv_timeout(Duration::from_secs(1)),
        Recv::Closed
    ));
    assert_eq!(feed.subscriber_count(None), 0);
}

#[test]
fn a_lagging_catch_up_subscriber_reads_what_it_missed_from_the_log() {
    let ledger = LedgerStore::memory();
    let feed = buffer(|o| o.subscriber_queue_size = 2);
    ledger.attach_changefeed(&feed).unwrap();
    let sub = feed.subscribe(&["a"]);
    for i in 0..50 {
        let store = if i % 3 == 0 { "b" } else { "a" };
        ledger
            .write(Write::new(store, format!("{i}"), Value::Int(i)))
            .unwrap();
    }
    assert!(sub.snapshot().lagging);
    let want: Vec<u64> = ledger
        .changes(&ChangesQuery::new().stores(["a"]))
        .unwrap()
        .iter()
        .map(|e| e.sequence())
        .collect();
    let mut got = Vec::new();
    while got.len() < want.len() {
        got.push(next(&sub).sequence());
        if got.len() == 10 {
            ledger.write(Write::new("a", "late", Value::Nil)).unwrap();
        }
    }
    let mut want = want;
    want.push(51);
    while got.len() < want.len() {
        got.push(next(&sub).sequence());
    }
    assert_eq!(got, want);
    assert_eq!(feed.snapshot().overflow_dropped_total, 0);
    // subscribe_after: from any old cursor, log first then live.
    let late = feed.subscribe_after(Cursor::new(45), ALL_STORES).unwrap();
    ledger.write(Write::new("a", "live", Value::Nil)).unwrap();
    let got: Vec<u64> = (0..7).map(|_| next(&late).sequence()).collect();
    assert_eq!(got, [46, 47, 48, 49, 50, 51, 52]);
}

#[test]
fn a_stuck_subscriber_never_blocks_writers() {
    let ledger = LedgerStore::memory();
    let feed = buffer(|o| o.subscriber_queue_size = 4);
    ledger.attach_changefeed(&feed).unwrap();
    let stuck = feed.subscribe(ALL_STORES); // never read
    for i in 0..20_000 {
        ledger
            .write(Write::new("s", format!("{i}"), Value::Int(i)))
            .unwrap();
    }
    // The writes completed (none waited for the reader) and the queue stayed bounded.
    assert_eq!(stuck.snapshot().queue_size, 4);
    assert_eq!(ledger.fact_count(), 20_000);
}

#[test]
fn a_follower_on_another_thread_gets_every_commit_in_order() {
    let ledger = LedgerStore::memory();
    let mut follower = ledger.follow(&ChangesQuery::new()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let l = ledger.clone();
            std::thread::spawn(move || {
                for i in 0..300 {
                    if i % 10 == 0 {
                        l.commit(
                            Batch::new()
                                .write(Write::new("s", format!("{t}-{i}a"), Value::Nil))
                                .write(Write::new("s", format!("{t}-{i}b"), Value::Nil)),
                        )
                        .unwrap();
                    } else {
                        l.write(Write::new("s", format!("{t}-{i}"), Value::Nil))
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    let consumer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while !stop.load(Ordering::SeqCst) || got.len() < 990 {
                if let Some(e) = follower.next_timeout(Duration::from_millis(50)).unwrap() {
                    got.push((e.sequence(), e.fact_id()));
                }
            }
            (got, follower.cursor())
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let (got, cursor) = consumer.join().unwrap();
    let log: Vec<_> = ledger
        .changes(&ChangesQuery::new())
        .unwrap()
        .iter()
        .map(|e| (e.sequence(), e.fact_id()))
        .collect();
    assert_eq!(got, log);
    assert_eq!(cursor, ledger.head());
    ledger.close().unwrap();
    let mut f = ledger.follow(&ChangesQuery::new().after(cursor)).unwrap();
    assert!(matches!(
        f.next_timeout(Duration::from_millis(10)),
        Err(Error::Closed)
    ));
}

#[test]
fn file_backed_commit_modes_all_emit_in_commit_order() {
    for d in [Durability::Fsync, Durability::Flush, Durability::None] {
        let dir = tempfile::tempdir().unwrap();
        let l = LedgerStore::open_with(dir.path().join("m.wal"), OpenOptions::new().durability(d))
            .unwrap();
        let feed = buffer(|o| o.subscriber_queue_size = 10_000);
        l.attach_changefeed(&feed).unwrap();
        let sub = feed.subscribe(ALL_STORES);
        std::thread::scope(|s| {
            for t in 0..4 {
                let l = l.clone();
                s.spawn(move || {
                    for i in 0..50 {
                        l.write(Write::new("s", format!("{t}-{i}"), Value::Nil))
                            .unwrap();
                    }
                });
            }
        });
        let got: Vec<_> = (0..200)
            .map(|_| {
                let e = next(&sub);
                (e.sequence(), e.fact_id())
            })
            .collect();
        let log: Vec<_> = l
            .changes(&ChangesQuery::new())
            .unwrap()
            .iter()
            .map(|e| (e.sequence(), e.fact_id()))
            .collect();
        assert_eq!(got, log, "{d:?}");
    }
}
