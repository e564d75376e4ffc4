//! A process forked (bare `fork(2)`) while threads of the parent were inside the
//! changefeed — a writer emitting a large batch (holding the buffer's ring and registry),
//! consumers taking events and catching up from the log (holding their queues), a
//! follower waiting — never hangs on a changefeed lock in the child: its commits to an
//! in-memory ledger succeed, `subscribe`, `subscriber_count`, `snapshot` and a
//! `Follower` answer. Where a parent thread held a lock at the fork, the buffer stops
//! emitting in the child (its subscriptions are born closed); otherwise it works there.
//!
//! Every child runs bounded work and leaves with `_exit`; the parent kills and fails any
//! child that has not finished within a deadline (a hang). The test uses `unsafe` for
//! `fork` itself; the ledger crate has none.

mod forking;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use forking::{fork_child, wait_for};
use igniter_ledger::changefeed::{BufferOptions, ChangefeedBuffer, ChangesQuery, Recv, ALL_STORES};
use igniter_ledger::{Batch, Error, LedgerStore, Value, Write};

/// What a child does: exit code 10 when the buffer worked in it, 11 when a parent
/// thread had held it at the fork (it stopped emitting there), 12 when the ledger itself
/// refused the child's write (a parent thread was committing: `Forked`), else a failure.
fn child(ledger: &LedgerStore, feed: &ChangefeedBuffer) -> i32 {
    let wrote = match ledger.write(Write::new("child", "k", Value::Int(1))) {
        Ok(_) => true,
        Err(Error::Forked { .. }) => false,
        Err(_) => return 1,
    };
    let sub = feed.subscribe(&["child"]);
    let orphaned = sub.is_closed();
    if wrote {
        if ledger
            .write(Write::new("child", "k2", Value::Int(2)))
            .is_err()
        {
            return 2;
        }
        if !orphaned {
            match sub.recv_timeout(Duration::from_secs(5)) {
                Recv::Event(e) if e.key() == "k2" => {}
                _ => return 3,
            }
        }
    }
    let _ = feed.subscriber_count(None);
    let _ = feed.snapshot();
    let _ = feed.subscriber_snapshot();
    if wrote {
        let mut follower = match ledger.follow(&ChangesQuery::new().stores(["child"])) {
            Ok(f) => f,
            Err(_) => return 4,
        };
        match follower.next_timeout(Duration::from_secs(5)) {
            Ok(Some(e)) if e.key() == "k" => {}
            _ => return 5,
        }
    }
    sub.close();
    match (wrote, orphaned) {
        (false, _) => 12,
        (true, true) => 11,
        (true, false) => 10,
    }
}

#[test]
fn a_child_forked_while_parent_threads_are_inside_the_changefeed_never_hangs() {
    let ledger = LedgerStore::memory();
    let feed = ChangefeedBuffer::new(BufferOptions {
        subscriber_queue_size: 8,
        ..BufferOptions::default()
    })
    .unwrap();
    ledger.attach_changefeed(&feed).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    // Consumers: small queues, so they go through catch-up (reading the log while
    // holding their queue's lock).
    for _ in 0..2 {
        let sub = feed.subscribe(ALL_STORES);
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = sub.recv_timeout(Duration::from_millis(10));
            }
        }));
    }
    // A follower waiting for commits.
    {
        let mut f = ledger.follow(&ChangesQuery::new()).unwrap();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = f.next_timeout(Duration::from_millis(10));
            }
        }));
    }
    // Observers: snapshots take the ring, the registry, each queue and the diagnostics.
    for _ in 0..2 {
        let feed = feed.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = feed.snapshot();
                let _ = feed.subscriber_snapshot();
            }
        }));
    }
    // A writer committing batches, with pauses (so a child can often write): emitting
    // each holds the ring and the registry.
    {
        let ledger = ledger.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut b = Batch::new();
                for j in 0..50 {
                    b = b.write(Write::new(
                        "busy",
                        format!("{}", j % 64),
                        Value::Int(i as i64),
                    ));
                }
                ledger.commit(b).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(100));
    let (mut worked, mut orphaned, mut refused, mut forks) = (0, 0, 0, 0);
    let started = Instant::now();
    // Fork until both outcomes were seen a few times (or enough forks were made).
    while forks < 10 && (orphaned < 1 || worked < 2) {
        std::thread::sleep(Duration::from_millis(fastrand::u64(1..15)));
        let (l, f) = (ledger.clone(), feed.clone());
        let pid = fork_child(move || child(&l, &f));
        forks += 1;
        match wait_for(pid, Duration::from_secs(30)) {
            None => panic!("fork {forks}: the child hung (killed after 30 s)"),
            Some(10) => worked += 1,
            Some(11) => orphaned += 1,
            Some(12) => refused += 1,
            Some(code) => panic!("fork {forks}: the child failed with code {code}"),
        }
        if started.elapsed() > Duration::from_secs(45) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    eprintln!(
        "{forks} forks: the buffer worked in {worked} children, was orphaned in {orphaned}; \
         the ledger refused the write in {refused}"
    );
    assert_eq!(worked + orphaned + refused, forks);
    // Whether a busy parent had a lock at the moment of a fork is up to the scheduler
    // (on a fast machine it nearly always has one). Forked while no parent thread is
    // inside the changefeed, a child must be able to use it: fork safety must not refuse
    // more than it has to.
    let (l, f) = (ledger.clone(), feed.clone());
    let pid = fork_child(move || child(&l, &f));
    match wait_for(pid, Duration::from_secs(30)) {
        None => panic!("the quiet fork: the child hung (killed after 30 s)"),
        Some(10) => {}
        Some(code) => {
            panic!("the quiet fork: the child could not use the changefeed (code {code})")
        }
    }
}
