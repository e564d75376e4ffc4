//! One subscriber of a [`ChangefeedBuffer`](super::ChangefeedBuffer): its bounded queue,
//! policies and counters, and the [`Subscription`] handle its consumer holds.
//!
//! The buffer pushes events into the queue (never waiting), or, for a catch-up
//! subscriber of an attached buffer, the consumer reads them from the ledger's log
//! itself (see the module docs' Threads section); the consumer takes them, on
//! its own thread, with [`Subscription::recv_timeout`] (or [`Subscription::take`] plus
//! [`Subscription::ack`] / [`Subscription::fail`] when a handler runs in between, as the
//! Ruby worker does).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::buffer::Shared;
use super::event::ChangeEvent;
use super::forksafe;
use super::options::{ClosePolicy, Overflow};

/// What waiting for the next event gave.
#[derive(Debug)]
pub enum Recv {
    /// The next event.
    Event(ChangeEvent),
    /// Nothing arrived in time; the subscription is still open.
    Timeout,
    /// The subscription is closed (and, under the drain policy, drained) or failed.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Active,
    Closing,
    Closed,
    Failed,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Closing => "closing",
            Status::Closed => "closed",
            Status::Failed => "failed",
        }
    }
}

pub(crate) struct SubState {
    pub(crate) queue: VecDeque<ChangeEvent>,
    pub(crate) status: Status,
    delivered: u64,
    overflow_dropped: u64,
    failed: u64,
    /// The highest sequence queued (or read back from the log) for this subscriber.
    last_seq: u64,
    /// Catch-up mode: the queue filled up; missed events are read back from the log.
    lagging: bool,
    /// A closing log reader under `Drain`: the newest sequence published when it was
    /// closed (it still hands out the events up to there).
    drain_to: u64,
}

/// A subscriber as the buffer holds it.
pub(crate) struct Subscriber {
    pub(crate) id: String,
    pub(crate) stores: Vec<String>,
    pub(crate) cap: usize,
    pub(crate) overflow: Overflow,
    pub(crate) close_policy: ClosePolicy,
    pub(crate) state: Mutex<SubState>,
    ready: Condvar,
    /// Bumped on every push (read without the lock by a consumer about to park).
    pushed: AtomicU64,
    feed: Weak<Shared>,
    /// The process that made it (see [`super::forksafe`]).
    origin: u32,
    /// A log reader: the catch-up subscriber of a buffer attached to a ledger. Commits
    /// are not pushed to it: its consumer reads them from the ledger's log, after
    /// `last_seq`, a queue's worth at a time, and waits on the ledger for new ones. The
    /// writer pays nothing per commit for it (see [`super`]'s Threads section).
    pub(crate) from_log: bool,
    /// Set once it stops taking events (closed or failed): read without the lock by a
    /// consumer waiting on the ledger.
    stop: AtomicBool,
}

/// How long a consumer that found its queue empty keeps yielding (checking `pushed`)
/// before it parks. While it is awake, a writer's push costs no wake-up system call, so
/// a busy feed does not slow its writers by one futex wake per event.
const LINGER: Duration = Duration::from_micros(50);

/// A log reader that sees new commits waits for this many (or [`BATCH_WAIT`]) before it
/// reads them, so it takes the ledger's read lock once per batch, not once per commit.
const LOG_BATCH: u64 = 64;

/// The longest a log reader delays a commit it has seen, to gather a batch.
const BATCH_WAIT: Duration = Duration::from_micros(20);

/// A point-in-time view of one subscriber.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriberSnapshot {
    /// 16 hex characters.
    pub id: String,
    /// The stores it follows (empty: all).
    pub stores: Vec<String>,
    /// Events queued now.
    pub queue_size: usize,
    /// Queue capacity.
    pub queue_max_size: usize,
    /// Overflow policy.
    pub overflow: Overflow,
    /// Close policy.
    pub close_policy: ClosePolicy,
    /// `active`, `closing`, `closed` or `failed`.
    pub status: &'static str,
    /// Events its consumer took (Rust) or handled without error (Ruby).
    pub delivered_total: u64,
    /// Events its full queue dropped.
    pub overflow_dropped_total: u64,
    /// 1 once its handler failed.
    pub failed_total: u64,
    /// True while it catches up from the log (catch-up policy).
    pub lagging: bool,
}

impl Subscriber {
    pub(crate) fn new(
        stores: Vec<String>,
        cap: usize,
        overflow: Overflow,
        close_policy: ClosePolicy,
        feed: Weak<Shared>,
        last_seq: u64,
        lagging: bool,
    ) -> Self {
        // Catch-up is only ever the policy of an attached buffer's subscribers (see
        // `Shared::overflow_default`): they read the ledger's log.
        let from_log = overflow == Overflow::CatchUp;
        Subscriber {
            id: format!("{:016x}", fastrand::u64(..)),
            stores,
            cap,
            overflow,
            close_policy,
            state: Mutex::new(SubState {
                queue: VecDeque::new(),
                status: Status::Active,
                delivered: 0,
                overflow_dropped: 0,
                failed: 0,
                last_seq,
                lagging: lagging && !from_log,
                drain_to: 0,
            }),
            ready: Condvar::new(),
            pushed: AtomicU64::new(0),
            feed,
            origin: std::process::id(),
            from_log,
            stop: AtomicBool::new(false),
        }
    }

    pub(crate) fn follows(&self, store: &str) -> bool {
        self.stores.is_empty() || self.stores.iter().any(|s| s == store)
    }

    /// Queues `ev` by the overflow policy. Called by the buffer, in sequence order.
    /// False when its lock is orphaned (a forked child; see [`super::forksafe`]).
    pub(crate) fn offer(&self, ev: &ChangeEvent, shared: &Shared) -> bool {
        self.offer_all(std::slice::from_ref(ev), shared)
    }

    /// Queues the events of one commit (in sequence order) by the overflow policy: one
    /// lock and at most one wake-up for the whole commit. False when its lock is
    /// orphaned (a forked child; see [`super::forksafe`]).
    pub(crate) fn offer_all(&self, evs: &[ChangeEvent], shared: &Shared) -> bool {
        if self.from_log || !evs.iter().any(|ev| self.follows(ev.store())) {
            return true;
        }
        let Some(mut st) = self.lock_state() else {
            return false;
        };
        if st.status != Status::Active {
            return true;
        }
        let mut queued = 0u64;
        for ev in evs {
            if !self.follows(ev.store()) || ev.sequence() <= st.last_seq {
                // Not followed; or already read back from the log (catching up), or
                // before this subscriber's starting point.
                continue;
            }
            if st.lagging {
                break;
            }
            if st.queue.len() >= self.cap {
                match self.overflow {
                    Overflow::DropOldest => {
                        st.queue.pop_front();
                        st.overflow_dropped += 1;
                        shared.note_overflow(self);
                    }
                    Overflow::DropNewest => {
                        st.overflow_dropped += 1;
                        shared.note_overflow(self);
                        continue;
                    }
                    Overflow::CatchUp => {
                        st.lagging = true;
                        shared.note_lagging(self);
                        break;
                    }
                }
            }
            st.last_seq = ev.sequence();
            st.queue.push_back(ev.clone());
            queued += 1;
        }
        drop(st);
        if queued > 0 {
            self.pushed.fetch_add(queued, Ordering::Release);
            self.ready.notify_one();
        }
        true
    }

    /// Its state (None: orphaned by a fork, see [`super::forksafe`]).
    pub(crate) fn lock_state(&self) -> Option<MutexGuard<'_, SubState>> {
        forksafe::lock(self.origin, || self.state.try_lock(), || self.state.lock())
    }

    /// Stops taking events; under `Discard` drops what is queued. Idempotent.
    pub(crate) fn close(&self, shared: Option<&Shared>) {
        let Some(mut st) = self.lock_state() else {
            return;
        };
        if st.status == Status::Active {
            st.status = Status::Closing;
            if self.close_policy == ClosePolicy::Discard {
                st.queue.clear();
            } else if self.from_log {
                // Drain: what was published before the close is still handed out.
                st.drain_to = self.ledger().map_or(0, |l| l.head().sequence);
            }
            st.lagging = false;
            drop(st);
            if let Some(shared) = shared {
                shared.note_closed(self);
            }
        } else {
            drop(st);
        }
        self.stopped();
    }

    /// Wakes its consumer, wherever it waits (its queue, or the ledger for a log
    /// reader), to notice a close or failure.
    pub(crate) fn stopped(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.ready.notify_all();
        if self.from_log {
            if let Some(l) = self.ledger() {
                l.feed_hook().wake_all();
            }
        }
    }

    /// The ledger its buffer follows (None: standalone, or the ledger is gone).
    fn ledger(&self) -> Option<crate::LedgerStore> {
        self.feed.upgrade().and_then(|s| s.ledger())
    }

    /// Closes it in a forked child, discarding the queue. The parent's consumer thread
    /// may have held the lock when the process forked (it does not exist here, and
    /// never releases it): wait briefly, then leave the state as it is (the subscriber
    /// is out of the registry either way). True when it was closed here.
    pub(crate) fn close_forked(&self) -> bool {
        self.stop.store(true, Ordering::SeqCst);
        let Some(mut st) = self.state.try_lock_for(Duration::from_millis(20)) else {
            return false;
        };
        st.queue.clear();
        if st.status == Status::Active {
            st.status = Status::Closed;
            return true;
        }
        false
    }

    pub(crate) fn snapshot(&self) -> SubscriberSnapshot {
        let Some(st) = self.lock_state() else {
            return SubscriberSnapshot {
                id: self.id.clone(),
                stores: self.stores.clone(),
                queue_size: 0,
                queue_max_size: self.cap,
                overflow: self.overflow,
                close_policy: self.close_policy,
                status: Status::Closed.name(),
                delivered_total: 0,
                overflow_dropped_total: 0,
                failed_total: 0,
                lagging: false,
            };
        };
        let (queue_size, lagging) = self.pending(&st);
        SubscriberSnapshot {
            id: self.id.clone(),
            stores: self.stores.clone(),
            queue_size,
            queue_max_size: self.cap,
            overflow: self.overflow,
            close_policy: self.close_policy,
            status: st.status.name(),
            delivered_total: st.delivered,
            overflow_dropped_total: st.overflow_dropped,
            failed_total: st.failed,
            lagging,
        }
    }

    /// Its queue size and whether it lags. A log reader's queue is what it has read
    /// ahead plus the events of its stores published after that, up to its capacity;
    /// it lags when more than that wait (as a pushed-to queue would have filled up).
    fn pending(&self, st: &SubState) -> (usize, bool) {
        let ledger = if self.from_log && st.status == Status::Active {
            self.ledger()
        } else {
            None
        };
        let Some(ledger) = ledger else {
            return (st.queue.len(), st.lagging);
        };
        let room = (self.cap + 1).saturating_sub(st.queue.len());
        // In a forked child whose parent held the ledger at the fork: nothing readable.
        let waiting =
            super::follow::count_after(&ledger, st.last_seq, &self.stores, room).unwrap_or(0);
        let total = st.queue.len() + waiting;
        (total.min(self.cap), total > self.cap)
    }

    pub(crate) fn queued(&self) -> usize {
        self.lock_state().map_or(0, |st| self.pending(&st).0)
    }

    /// Catch-up: reads the events after `last_seq` back from the ledger's log, up to the
    /// queue's capacity; leaves lagging once the log's end is reached. Holds the
    /// subscriber's lock (emission skips what this reads: its sequences are covered).
    fn refill(&self, st: &mut SubState) {
        let ledger = self.feed.upgrade().and_then(|s| s.ledger());
        let Some(ledger) = ledger else {
            st.lagging = false;
            return;
        };
        let Ok(page) = super::follow::read_after(&ledger, st.last_seq, &self.stores, self.cap)
        else {
            // A forked child whose parent held the ledger at the fork: nothing to read.
            st.lagging = false;
            return;
        };
        st.last_seq = st.last_seq.max(page.scanned_to);
        st.queue.extend(page.events);
        if page.at_end {
            st.lagging = false;
        }
    }

    /// A log reader's read: up to a queue's worth of events after `last_seq` (and, when
    /// closing under `Drain`, not past `drain_to`). False when the ledger is gone.
    fn read_log(&self, st: &mut SubState) -> bool {
        let Some(ledger) = self.ledger() else {
            return false;
        };
        let closing = st.status == Status::Closing;
        if closing && st.last_seq >= st.drain_to {
            return true;
        }
        // A forked child whose parent held the ledger at the fork reads it as gone.
        let Ok(page) = super::follow::read_after(&ledger, st.last_seq, &self.stores, self.cap)
        else {
            return false;
        };
        let mut scanned = page.scanned_to;
        let mut events = page.events;
        if closing {
            events.retain(|e| e.sequence() <= st.drain_to);
            scanned = scanned.min(st.drain_to);
            if events.is_empty() {
                scanned = st.drain_to;
            }
        }
        st.last_seq = st.last_seq.max(scanned);
        st.queue.extend(events);
        true
    }

    /// A log reader waits for a commit after `seen`: awake briefly (yielding, reading
    /// the ledger's head: a writer pays no wake-up meanwhile), then parked on the
    /// ledger, which wakes it only while it is parked. Wakes on close, and at least
    /// every 100 ms (it holds the ledger only while waiting).
    fn wait_log(&self, seen: u64, deadline: Option<Instant>) {
        let Some(ledger) = self.ledger() else {
            return;
        };
        let hook = ledger.feed_hook();
        let linger_until = Instant::now() + LINGER;
        let mut arrived: Option<Instant> = None;
        while Instant::now() < linger_until {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let head = hook.head_sequence();
            if head > seen {
                // Gather a batch before reading: a reader that takes the ledger's lock
                // for every single commit makes the writer's lock, log and counters
                // change cores on every write. A full batch, or BATCH_WAIT after the
                // first new fact, whichever comes first.
                let first = *arrived.get_or_insert_with(Instant::now);
                if head - seen >= LOG_BATCH || first.elapsed() >= BATCH_WAIT {
                    return;
                }
            }
            std::thread::yield_now();
        }
        if arrived.is_some() {
            return;
        }
        let cap = Instant::now() + Duration::from_millis(100);
        let until = deadline.map_or(cap, |d| d.min(cap));
        hook.wait_past_or(seen, Some(until), &self.stop);
    }

    /// The next event (waiting up to `timeout`); `count`: count it as delivered in the
    /// same critical section (one lock per event for `recv`, instead of two).
    fn take(&self, timeout: Option<Duration>, count: bool) -> Recv {
        let deadline = timeout.map(|t| Instant::now() + t);
        let Some(mut st) = self.lock_state() else {
            return Recv::Closed;
        };
        loop {
            match st.status {
                Status::Closed | Status::Failed => return Recv::Closed,
                _ => {}
            }
            if let Some(ev) = st.queue.pop_front() {
                if count {
                    st.delivered += 1;
                    drop(st);
                    if let Some(s) = self.feed.upgrade() {
                        s.note_delivered();
                    }
                }
                return Recv::Event(ev);
            }
            if self.from_log {
                if !self.read_log(&mut st) && st.status == Status::Active {
                    // The ledger is gone: nothing more will come.
                    st.status = Status::Closing;
                    st.drain_to = st.last_seq;
                }
                if !st.queue.is_empty() {
                    continue;
                }
                if st.status == Status::Closing {
                    st.status = Status::Closed;
                    return Recv::Closed;
                }
                if st.status != Status::Active {
                    continue;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Recv::Timeout;
                }
                let seen = st.last_seq;
                MutexGuard::unlocked(&mut st, || self.wait_log(seen, deadline));
                continue;
            }
            if st.status == Status::Closing {
                st.status = Status::Closed;
                return Recv::Closed;
            }
            if st.lagging {
                self.refill(&mut st);
                if !st.queue.is_empty() {
                    continue;
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Recv::Timeout;
            }
            // Linger awake briefly: the next event usually follows soon on a busy feed.
            let seen = self.pushed.load(Ordering::Acquire);
            let linger_until = Instant::now() + LINGER;
            let woke = MutexGuard::unlocked(&mut st, || {
                while Instant::now() < linger_until {
                    std::thread::yield_now();
                    if self.pushed.load(Ordering::Acquire) != seen {
                        return true;
                    }
                }
                false
            });
            if woke || !st.queue.is_empty() || st.status != Status::Active {
                continue;
            }
            match deadline {
                Some(d) => {
                    self.ready.wait_until(&mut st, d);
                }
                None => self.ready.wait(&mut st),
            }
        }
    }
}

/// The handle of one subscription. Dropping it closes the subscription.
///
/// ```
/// use std::time::Duration;
/// use igniter_ledger::changefeed::{BufferOptions, ChangefeedBuffer, Recv};
/// use igniter_ledger::{Fact, Value, Write};
///
/// let feed = ChangefeedBuffer::new(BufferOptions::default()).unwrap();
/// let sub = feed.subscribe(&["tasks"]);
/// feed.emit(Fact::build(Write::new("tasks", "t1", Value::Int(1))).unwrap()).unwrap();
/// match sub.recv_timeout(Duration::from_secs(1)) {
///     Recv::Event(e) => assert_eq!((e.key(), e.sequence()), ("t1", 1)),
///     other => panic!("{other:?}"),
/// }
/// sub.close();
/// assert!(matches!(sub.recv_timeout(Duration::ZERO), Recv::Closed));
/// ```
pub struct Subscription {
    pub(crate) sub: Arc<Subscriber>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.sub.id)
            .field("stores", &self.sub.stores)
            .finish()
    }
}

impl Subscription {
    /// The subscriber id (16 hex characters).
    pub fn id(&self) -> &str {
        &self.sub.id
    }

    /// The stores it follows (empty: all).
    pub fn stores(&self) -> &[String] {
        &self.sub.stores
    }

    /// Waits up to `timeout` for the next event and counts it as delivered.
    pub fn recv_timeout(&self, timeout: Duration) -> Recv {
        self.sub.take(Some(timeout), true)
    }

    /// Waits for the next event (None once closed) and counts it as delivered.
    pub fn recv(&self) -> Option<ChangeEvent> {
        match self.sub.take(None, true) {
            Recv::Event(e) => Some(e),
            _ => None,
        }
    }

    /// The events as they come, until the subscription is closed (blocking).
    pub fn iter(&self) -> impl Iterator<Item = ChangeEvent> + '_ {
        std::iter::from_fn(move || self.recv())
    }

    /// Waits up to `timeout` (forever with None) for the next event without counting it:
    /// for a consumer that runs a handler and then calls [`ack`](Self::ack) or
    /// [`fail`](Self::fail).
    pub fn take(&self, timeout: Option<Duration>) -> Recv {
        self.sub.take(timeout, false)
    }

    /// Counts one event as delivered.
    pub fn ack(&self) {
        let Some(mut st) = self.sub.lock_state() else {
            return;
        };
        if st.status == Status::Failed {
            return;
        }
        st.delivered += 1;
        drop(st);
        if let Some(s) = self.sub.feed.upgrade() {
            s.note_delivered();
        }
    }

    /// The handler failed: the subscription is removed, its queue dropped, the failure
    /// counted and recorded in the diagnostics ring.
    pub fn fail(&self, error_class: &str, message: &str) {
        let Some(mut st) = self.sub.lock_state() else {
            return;
        };
        if matches!(st.status, Status::Failed | Status::Closed) {
            return;
        }
        st.status = Status::Failed;
        st.queue.clear();
        st.failed += 1;
        drop(st);
        self.sub.stopped();
        if let Some(s) = self.sub.feed.upgrade() {
            s.remove(&self.sub);
            s.note_failed(&self.sub, error_class, message);
        }
    }

    /// Closes the subscription (idempotent): no new events are queued; under `Drain` the
    /// queued ones are still handed out, under `Discard` they are dropped. A consumer
    /// waiting in `recv`/`take` wakes up.
    pub fn close(&self) {
        let shared = self.sub.feed.upgrade();
        if let Some(s) = &shared {
            s.remove(&self.sub);
        }
        self.sub.close(shared.as_deref());
    }

    /// True once closed or failed.
    pub fn is_closed(&self) -> bool {
        self.sub
            .lock_state()
            .is_none_or(|st| st.status != Status::Active)
    }

    /// This subscriber's counters and queue.
    pub fn snapshot(&self) -> SubscriberSnapshot {
        self.sub.snapshot()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.close();
    }
}
