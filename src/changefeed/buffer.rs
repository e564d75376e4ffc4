//! [`ChangefeedBuffer`]: the ring of recent events, the subscriber registry and fan-out,
//! counters and replay (what it reports lives in [`super::observe`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use uuid::Uuid;

use super::error::ChangefeedError;
use super::event::{now_secs, ChangeEvent, Cursor};
use super::follow::ChangesQuery;
use super::forksafe;
use super::observe::{self, DiagRing, Diagnostic, Snapshot};
use super::options::{BufferOptions, Overflow};
use super::subscription::{Subscriber, SubscriberSnapshot, Subscription};
use crate::ledger::store::WeakLedger;
use crate::{Error, Fact, LedgerStore, Result};

/// Whether a replay could answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayStatus {
    /// The events after the cursor are all there.
    Ok,
    /// History after the cursor is gone (a standalone buffer's ring moved on, or
    /// retention removed the ledger's facts after it); `oldest_cursor` names the
    /// oldest event still there.
    CursorTooOld,
}

/// The answer of [`ChangefeedBuffer::replay`].
#[derive(Clone, Debug)]
pub struct Replay {
    /// Ok or CursorTooOld.
    pub status: ReplayStatus,
    /// The events after the cursor (filtered, limited), in order.
    pub events: Vec<ChangeEvent>,
    /// Where to resume: the last event's cursor, else the cursor given.
    pub cursor: Option<Cursor>,
    /// The oldest position still readable.
    pub oldest_cursor: Option<Cursor>,
    /// The newest position.
    pub newest_cursor: Option<Cursor>,
    /// Events the ring has evicted so far.
    pub dropped_total: u64,
}

struct Ring {
    /// The recent events of a standalone buffer (an attached buffer reads its log
    /// instead, and keeps only the window's bounds).
    events: VecDeque<ChangeEvent>,
    /// Last sequence handed out.
    next: u64,
    /// Events in the window of an attached buffer (≤ max_size).
    window: usize,
    /// Reused to build a commit's events (emission holds the ring).
    scratch: Vec<ChangeEvent>,
}

/// An atomic alone on its cache line(s).
#[repr(align(128))]
struct Padded(AtomicU64);

pub(crate) struct Shared {
    opts: BufferOptions,
    /// Also serializes emission, so each subscriber sees sequence order.
    ring: Mutex<Ring>,
    subs: RwLock<Vec<Arc<Subscriber>>>,
    /// Subscribers commits are pushed to (all but the log readers): set whenever `subs`
    /// changes, read by the writer under the ring lock. 0: a commit only counts.
    pushers: AtomicUsize,
    emitted: AtomicU64,
    /// Bumped by consumer threads: on a cache line of its own, away from the counters
    /// and the ring lock the writer touches on every commit.
    delivered: Padded,
    dropped: AtomicU64,
    overflow_dropped: AtomicU64,
    failed: AtomicU64,
    diag: Mutex<DiagRing>,
    ledger: OnceLock<WeakLedger>,
    /// The process the registry was last checked in (see `check_fork`).
    pid: AtomicU32,
    /// The process that made the buffer: its locks block as usual only there (see
    /// [`super::forksafe`]).
    pub(crate) origin: u32,
    /// The process in which one of its locks was found orphaned (0: none): the buffer
    /// is inert there from then on, so later calls do not wait for the lock again.
    dead_in: AtomicU32,
}

impl Shared {
    pub(crate) fn ledger(&self) -> Option<LedgerStore> {
        self.ledger.get().and_then(|w| w.upgrade())
    }

    /// Takes one of its locks (see [`super::forksafe`]); None when it is orphaned, or
    /// the buffer is inert in this process because one was.
    fn take<G>(&self, try_lock: impl FnMut() -> Option<G>, lock: impl FnOnce() -> G) -> Option<G> {
        let dead = self.dead_in.load(Ordering::Relaxed);
        if dead != 0 && dead == std::process::id() {
            return None;
        }
        let g = forksafe::lock(self.origin, try_lock, lock);
        if g.is_none() {
            self.dead_in.store(std::process::id(), Ordering::Relaxed);
        }
        g
    }

    /// The ring (None: orphaned by a fork).
    fn ring(&self) -> Option<MutexGuard<'_, Ring>> {
        self.take(|| self.ring.try_lock(), || self.ring.lock())
    }

    fn subs_read(&self) -> Option<RwLockReadGuard<'_, Vec<Arc<Subscriber>>>> {
        self.take(|| self.subs.try_read(), || self.subs.read())
    }

    fn subs_write(&self) -> Option<RwLockWriteGuard<'_, Vec<Arc<Subscriber>>>> {
        self.take(|| self.subs.try_write(), || self.subs.write())
    }

    fn diag(&self) -> Option<MutexGuard<'_, DiagRing>> {
        self.take(|| self.diag.try_lock(), || self.diag.lock())
    }

    fn record(&self, d: Diagnostic) {
        if let Some(mut g) = self.diag() {
            g.push(d, self.opts.diagnostic_ring_size);
        }
    }

    fn entry(&self, kind: &'static str, s: &Subscriber) -> Diagnostic {
        Diagnostic {
            kind,
            ts: now_secs(),
            subscriber_id: s.id.clone(),
            stores: s.stores.clone(),
            overflow: None,
            error_class: None,
            message: None,
        }
    }

    pub(crate) fn note_overflow(&self, s: &Subscriber) {
        self.overflow_dropped.fetch_add(1, Ordering::Relaxed);
        let mut d = self.entry("subscriber_overflow", s);
        d.overflow = Some(s.overflow);
        self.record(d);
    }

    pub(crate) fn note_lagging(&self, s: &Subscriber) {
        let mut d = self.entry("subscriber_lagging", s);
        d.overflow = Some(s.overflow);
        self.record(d);
    }

    pub(crate) fn note_closed(&self, s: &Subscriber) {
        self.record(self.entry("subscriber_closed", s));
    }

    pub(crate) fn note_delivered(&self) {
        self.delivered.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_failed(&self, s: &Subscriber, error_class: &str, message: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut d = self.entry("subscriber_failed", s);
        d.error_class = Some(error_class.to_owned());
        d.message = Some(message.to_owned());
        self.record(d);
    }

    pub(crate) fn remove(&self, s: &Arc<Subscriber>) {
        if let Some(mut subs) = self.subs_write() {
            subs.retain(|x| !Arc::ptr_eq(x, s));
            self.recount(&subs);
        }
    }

    /// Sets `pushers` from the registry (called with it locked for writing).
    fn recount(&self, subs: &[Arc<Subscriber>]) {
        let n = subs.iter().filter(|s| !s.from_log).count();
        self.pushers.store(n, Ordering::Relaxed);
    }

    /// The policy new subscribers get: the configured one, else `CatchUp` attached and
    /// `DropOldest` standalone. `CatchUp` needs a log to catch up from: a standalone
    /// buffer's subscribers drop the oldest instead.
    fn overflow_default(&self) -> Overflow {
        let attached = self.ledger.get().is_some();
        match self.opts.overflow {
            Some(Overflow::CatchUp) | None if attached => Overflow::CatchUp,
            Some(Overflow::CatchUp) | None => Overflow::DropOldest,
            Some(o) => o,
        }
    }

    /// A forked child inherits the registry but not the consumer threads: close
    /// everything there (discarding the queues).
    fn check_fork(&self) {
        let me = std::process::id();
        if self.pid.load(Ordering::Relaxed) != me {
            self.pid.store(me, Ordering::Relaxed);
            let Some(mut subs) = self.subs_write() else {
                return;
            };
            let subs = std::mem::take(&mut *subs);
            self.pushers.store(0, Ordering::Relaxed);
            for s in subs {
                if s.close_forked() {
                    self.note_closed(&s);
                }
            }
        }
    }

    /// Pushes a hand-emitted event into the ring and every subscriber's queue. The
    /// caller holds the ring lock.
    fn fan_out(&self, ring: &mut Ring, ev: &ChangeEvent) {
        // No fork check here (getpid is a system call per emit): in a forked child the
        // queues of the inherited subscribers stay bounded until the next subscribe,
        // count or snapshot call closes them.
        self.emitted.fetch_add(1, Ordering::Relaxed);
        if ring.events.len() >= self.opts.max_size {
            ring.events.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ring.events.push_back(ev.clone());
        let mut orphaned = false;
        if let Some(subs) = self.subs_read() {
            for s in subs.iter() {
                orphaned |= !s.offer(ev, self);
            }
        }
        if orphaned {
            // Only in a forked child: drop the parent's subscribers.
            self.check_fork();
        }
    }
}

/// The changefeed: a bounded ring of recent events and a set of subscribers, each with a
/// bounded queue its consumer drains on its own thread. Cheap to clone (clones share one
/// buffer).
///
/// Standalone, events come from [`emit`](Self::emit) and are numbered 1, 2, 3, …;
/// attached to a ledger ([`LedgerStore::attach_changefeed`]), they come from its commits
/// and carry the fact's position in the log, and [`replay`](Self::replay) reads the log
/// itself.
///
/// ```
/// use igniter_ledger::changefeed::{BufferOptions, ChangefeedBuffer, Cursor, ReplayStatus, ALL_STORES};
/// use igniter_ledger::{Fact, Value, Write};
///
/// let feed = ChangefeedBuffer::new(BufferOptions { max_size: 2, ..BufferOptions::default() }).unwrap();
/// for k in ["a", "b", "c"] {
///     feed.emit(Fact::build(Write::new("tasks", k, Value::Nil)).unwrap()).unwrap();
/// }
/// let r = feed.replay(Some(Cursor::new(1)), ALL_STORES, None).unwrap();
/// assert_eq!(r.status, ReplayStatus::Ok);
/// assert_eq!(r.events.iter().map(|e| e.key()).collect::<Vec<_>>(), ["b", "c"]);
/// assert_eq!(feed.replay(Some(Cursor::new(0)), ALL_STORES, None).unwrap().status, ReplayStatus::CursorTooOld);
/// ```
#[derive(Clone)]
pub struct ChangefeedBuffer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ChangefeedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangefeedBuffer")
            .field("options", &self.shared.opts)
            .field("attached", &self.shared.ledger.get().is_some())
            .finish()
    }
}

impl ChangefeedBuffer {
    /// A buffer with these options (validated).
    pub fn new(opts: BufferOptions) -> Result<Self> {
        opts.validate()?;
        Ok(ChangefeedBuffer {
            shared: Arc::new(Shared {
                opts,
                ring: Mutex::new(Ring {
                    events: VecDeque::new(),
                    next: 0,
                    window: 0,
                    scratch: Vec::new(),
                }),
                subs: RwLock::new(Vec::new()),
                pushers: AtomicUsize::new(0),
                emitted: AtomicU64::new(0),
                delivered: Padded(AtomicU64::new(0)),
                dropped: AtomicU64::new(0),
                overflow_dropped: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                diag: Mutex::new(DiagRing::default()),
                ledger: OnceLock::new(),
                pid: AtomicU32::new(std::process::id()),
                origin: std::process::id(),
                dead_in: AtomicU32::new(0),
            }),
        })
    }

    /// The options it was made with.
    pub fn options(&self) -> &BufferOptions {
        &self.shared.opts
    }

    /// True when both handles are the same buffer.
    pub fn same(&self, other: &ChangefeedBuffer) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The ledger it follows, if attached (and the ledger is still alive).
    pub fn ledger(&self) -> Option<LedgerStore> {
        self.shared.ledger()
    }

    /// True once attached to a ledger.
    pub fn is_attached(&self) -> bool {
        self.shared.ledger.get().is_some()
    }

    pub(crate) fn attach(&self, ledger: WeakLedger) -> Result<()> {
        self.shared.ledger.set(ledger).map_err(|_| {
            ChangefeedError::Misuse {
                argument: "changefeed",
                reason:
                    "this ChangefeedBuffer already follows a ledger (use one buffer per ledger)"
                        .into(),
            }
            .into()
        })
    }

    /// Emits a fact by hand (standalone buffers): numbers it with the next sequence,
    /// keeps it in the ring and queues it for every matching subscriber. Never waits for
    /// a subscriber. Refused for a buffer attached to a ledger, whose events are its
    /// commits.
    pub fn emit(&self, fact: Fact) -> Result<ChangeEvent> {
        if self.is_attached() {
            return Err(ChangefeedError::Misuse {
                argument: "emit",
                reason:
                    "this ChangefeedBuffer follows a ledger; its events are the ledger's commits"
                        .into(),
            }
            .into());
        }
        let Some(mut ring) = self.shared.ring() else {
            return Err(ChangefeedError::Misuse {
                argument: "emit",
                reason: "a thread of the parent process held this ChangefeedBuffer when this process forked; make a new one here".into(),
            }
            .into());
        };
        ring.next += 1;
        let ev = ChangeEvent::now(fact, ring.next, None);
        self.shared.fan_out(&mut ring, &ev);
        Ok(ev)
    }

    /// Emits committed facts, numbered from `first_seq` (the ledger hook; the caller
    /// serializes calls in commit order).
    pub(crate) fn emit_committed(&self, first_seq: u64, ledger: Option<Uuid>, facts: &[Fact]) {
        let sh = &self.shared;
        let n = facts.len();
        let Some(mut ring) = sh.ring() else {
            return; // orphaned by a fork: the buffer does not emit in this process
        };
        ring.next = first_seq + n as u64 - 1;
        sh.emitted.fetch_add(n as u64, Ordering::Relaxed);
        let added = n.min(sh.opts.max_size - ring.window);
        ring.window += added;
        if n > added {
            sh.dropped.fetch_add((n - added) as u64, Ordering::Relaxed);
        }
        // Log readers take commits from the ledger itself: with no other subscriber, a
        // commit costs the writer only the counting above (registration holds the ring
        // lock too, so a new subscriber is counted before the next commit looks).
        if sh.pushers.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(subs) = sh.subs_read() else {
            return;
        };
        if subs.is_empty() {
            return;
        }
        // The commit's events, built once into a scratch vector the ring keeps (no
        // allocation per commit once it has grown), then handed to each subscriber under
        // one lock with one wake-up.
        let at = now_secs();
        let mut evs = std::mem::take(&mut ring.scratch);
        evs.extend(
            facts
                .iter()
                .enumerate()
                .map(|(i, f)| ChangeEvent::new(f.clone(), first_seq + i as u64, ledger, at)),
        );
        let mut orphaned = false;
        for s in subs.iter() {
            orphaned |= !s.offer_all(&evs, sh);
        }
        evs.clear();
        ring.scratch = evs;
        drop(subs);
        if orphaned {
            // Only in a forked child: drop the parent's subscribers.
            sh.check_fork();
        }
    }

    /// Subscribes to the events of `stores` (empty: every store) from now on. The
    /// subscriber gets its own queue (capacity `subscriber_queue_size`) with the buffer's
    /// overflow and close policies; take events with the returned handle, from any thread.
    pub fn subscribe<S: AsRef<str>>(&self, stores: &[S]) -> Subscription {
        self.register(stores, None)
    }

    /// Subscribes from `cursor` (attached buffers): the events after it are read back
    /// from the ledger's log first, then live events follow, with no gap and no repeat.
    /// A cursor of another ledger or past the log's end is an error naming `cursor`.
    pub fn subscribe_after<S: AsRef<str>>(
        &self,
        cursor: Cursor,
        stores: &[S],
    ) -> Result<Subscription> {
        let Some(ledger) = self.ledger() else {
            return Err(ChangefeedError::Misuse {
                argument: "cursor",
                reason: "subscribing from a cursor needs a changefeed attached to a ledger".into(),
            }
            .into());
        };
        ledger.check_cursor(&cursor)?;
        let horizon = ledger.first_sequence() - 1;
        if cursor.sequence < horizon {
            return Err(ChangefeedError::CursorTooOld {
                cursor,
                horizon: Cursor::in_ledger(horizon, ledger.ledger_id()),
            }
            .into());
        }
        Ok(self.register(stores, Some(cursor.sequence)))
    }

    fn register<S: AsRef<str>>(&self, stores: &[S], after: Option<u64>) -> Subscription {
        let shared = &self.shared;
        shared.check_fork();
        let stores: Vec<String> = stores.iter().map(|s| s.as_ref().to_owned()).collect();
        let ledger = self.ledger();
        // Registered under the ring lock (which serializes emission): it sees exactly the
        // events after its starting point.
        let ring = shared.ring();
        let head = ledger.as_ref().map_or(0, |l| l.head().sequence);
        let sub = Arc::new(Subscriber::new(
            stores,
            shared.opts.subscriber_queue_size,
            shared.overflow_default(),
            shared.opts.close_policy,
            Arc::downgrade(shared),
            after.unwrap_or(head),
            after.is_some_and(|a| a < head),
        ));
        match (&ring, shared.subs_write()) {
            (Some(_), Some(mut subs)) => {
                subs.push(sub.clone());
                shared.recount(&subs);
            }
            // Orphaned by a fork: the subscription is born closed.
            _ => sub.close(None),
        }
        drop(ring);
        shared.record(shared.entry("subscriber_subscribed", &sub));
        Subscription { sub }
    }

    /// Closes every subscription (each by its close policy); used when the ledger closes.
    /// Also call it in a forked child that will not subscribe, count or snapshot (those
    /// notice the fork themselves).
    pub fn close_all(&self) {
        let Some(mut subs) = self.shared.subs_write() else {
            return;
        };
        let subs = std::mem::take(&mut *subs);
        self.shared.pushers.store(0, Ordering::Relaxed);
        for s in subs {
            s.close(Some(&self.shared));
        }
    }

    /// Active subscribers that follow `store` (a subscriber to every store counts), or
    /// all active subscribers.
    pub fn subscriber_count(&self, store: Option<&str>) -> usize {
        self.shared.check_fork();
        let Some(subs) = self.shared.subs_read() else {
            return 0;
        };
        match store {
            None => subs.len(),
            Some(st) => subs.iter().filter(|s| s.follows(st)).count(),
        }
    }

    /// One entry per active subscriber.
    pub fn subscriber_snapshot(&self) -> Vec<SubscriberSnapshot> {
        self.shared.check_fork();
        let subs: Vec<Arc<Subscriber>> =
            self.shared.subs_read().map_or_else(Vec::new, |s| s.clone());
        subs.iter().map(|s| s.snapshot()).collect()
    }

    /// Counters, configuration, alerts and the diagnostics ring.
    pub fn snapshot(&self) -> Snapshot {
        let sh = &self.shared;
        sh.check_fork();
        let (buffered, oldest, newest) = match sh.ring() {
            None => (0, None, None),
            Some(r) if r.window > 0 => {
                // Attached: the window of the last `window` sequences.
                (r.window, Some(r.next + 1 - r.window as u64), Some(r.next))
            }
            Some(r) => (
                r.events.len(),
                r.events.front().map(|e| e.sequence()),
                r.events.back().map(|e| e.sequence()),
            ),
        };
        let subs: Vec<Arc<Subscriber>> = sh.subs_read().map_or_else(Vec::new, |s| s.clone());
        let queued: Vec<usize> = subs.iter().map(|s| s.queued()).collect();
        let total_queued: usize = queued.iter().sum();
        let failed = sh.failed.load(Ordering::Relaxed);
        let overflow_dropped = sh.overflow_dropped.load(Ordering::Relaxed);
        let pressure: Vec<(&str, usize, usize)> = subs
            .iter()
            .zip(&queued)
            .map(|(s, q)| (s.id.as_str(), *q, s.cap))
            .collect();
        let alerts = observe::alerts(
            &sh.opts.alert_thresholds,
            failed,
            overflow_dropped,
            total_queued,
            &pressure,
        );
        let diagnostics = sh
            .diag()
            .map_or_else(|| DiagRing::default().view(), |d| d.view());
        let ledger = self.ledger();
        Snapshot {
            emitted_total: sh.emitted.load(Ordering::Relaxed),
            delivered_total: sh.delivered.0.load(Ordering::Relaxed),
            dropped_total: sh.dropped.load(Ordering::Relaxed),
            overflow_dropped_total: overflow_dropped,
            failed_total: failed,
            buffered,
            max_size: sh.opts.max_size,
            subscriber_count: subs.len(),
            oldest_sequence: oldest,
            newest_sequence: newest,
            close_policy: sh.opts.close_policy,
            overflow: sh.overflow_default(),
            subscriber_queue_size: sh.opts.subscriber_queue_size,
            total_queued,
            alerts,
            diagnostics,
            ledger: ledger.as_ref().and_then(|l| l.ledger_id()),
            attached: sh.ledger.get().is_some(),
        }
    }

    /// The events after `cursor` (None: from the start) of `stores` (empty: all), at most
    /// `limit`.
    ///
    /// Standalone, they come from the ring; a cursor the ring has moved past (its next
    /// event was evicted) answers [`ReplayStatus::CursorTooOld`]. Attached, they come from
    /// the ledger's log, so every cursor of that ledger can be served; a cursor of another
    /// ledger, or past the log's end, is an error.
    pub fn replay<S: AsRef<str>>(
        &self,
        cursor: Option<Cursor>,
        stores: &[S],
        limit: Option<usize>,
    ) -> Result<Replay> {
        if limit == Some(0) {
            return Err(ChangefeedError::NotPositive {
                argument: "limit",
                value: 0,
            }
            .into());
        }
        let dropped_total = self.shared.dropped.load(Ordering::Relaxed);
        if self.is_attached() {
            let Some(ledger) = self.ledger() else {
                return Err(Error::Closed);
            };
            let mut q = ChangesQuery::new().stores(stores.iter().map(|s| s.as_ref()));
            if let Some(c) = cursor {
                q = q.after(c);
            }
            if let Some(l) = limit {
                q = q.limit(l);
            }
            let (status, events) = match ledger.changes(&q) {
                Ok(events) => (ReplayStatus::Ok, events),
                Err(Error::Changefeed(ChangefeedError::CursorTooOld { .. })) => {
                    (ReplayStatus::CursorTooOld, Vec::new())
                }
                Err(e) => return Err(e),
            };
            let head = ledger.head();
            let id = ledger.ledger_id();
            let first = ledger.first_sequence();
            let cursor = events.last().map(|e| e.cursor()).or(cursor);
            let any = head.sequence >= first;
            return Ok(Replay {
                status,
                events,
                cursor,
                oldest_cursor: any.then(|| Cursor::in_ledger(first, id)),
                newest_cursor: any.then_some(head),
                dropped_total,
            });
        }
        if let Some(c) = &cursor {
            if c.ledger.is_some() {
                return Err(ChangefeedError::LedgerCursorOnStandalone { cursor: *c }.into());
            }
        }
        let Some(ring) = self.shared.ring() else {
            return Err(ChangefeedError::Misuse {
                argument: "replay",
                reason: "a thread of the parent process held this ChangefeedBuffer when this process forked; make a new one here".into(),
            }
            .into());
        };
        let oldest = ring.events.front().map(|e| e.cursor());
        let newest = ring.events.back().map(|e| e.cursor());
        let after = cursor.map_or(0, |c| c.sequence);
        if let (Some(_), Some(o)) = (cursor, oldest) {
            if after + 1 < o.sequence {
                return Ok(Replay {
                    status: ReplayStatus::CursorTooOld,
                    events: Vec::new(),
                    cursor,
                    oldest_cursor: oldest,
                    newest_cursor: newest,
                    dropped_total,
                });
            }
        }
        let stores: Vec<&str> = stores.iter().map(|s| s.as_ref()).collect();
        let events: Vec<ChangeEvent> = ring
            .events
            .iter()
            .filter(|e| e.sequence() > after)
            .filter(|e| stores.is_empty() || stores.contains(&e.store()))
            .take(limit.unwrap_or(usize::MAX))
            .cloned()
            .collect();
        let cursor = events.last().map(|e| e.cursor()).or(cursor);
        Ok(Replay {
            status: ReplayStatus::Ok,
            events,
            cursor,
            oldest_cursor: oldest,
            newest_cursor: newest,
            dropped_total,
        })
    }
}
