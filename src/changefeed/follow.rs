//! The ledger side of the changefeed: the hook the store calls after publishing,
//! [`ChangesQuery`] with `LedgerStore::changes` (read the log after a cursor), and
//! [`Follower`] (follow the log from another thread, with a timeout).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use uuid::Uuid;

use super::buffer::ChangefeedBuffer;
use super::error::ChangefeedError;
use super::event::{now_secs, ChangeEvent, Cursor};
use super::forksafe;
use crate::ledger::index::State;
use crate::{Error, Fact, LedgerStore, Result};

/// What the store calls after each publication (under its writer lock, so in commit
/// order): numbers the facts, wakes followers and feeds an attached buffer.
pub(crate) struct LedgerHook {
    /// Set once (a buffer is never detached): read with a plain load on every commit.
    buffer: OnceLock<ChangefeedBuffer>,
    /// Serializes `attach_changefeed`.
    attaching: Mutex<()>,
    /// Sequence of the newest published fact.
    newest: AtomicU64,
    identity: OnceLock<Uuid>,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
    closed: AtomicBool,
    /// The process that made the ledger (see [`super::forksafe`]).
    origin: u32,
}

impl LedgerHook {
    /// The hook of a ledger whose state (as loaded) is `state`.
    pub(crate) fn new(state: &State) -> Self {
        let identity = OnceLock::new();
        if let Some(id) = state.ledger_identity() {
            let _ = identity.set(id);
        }
        LedgerHook {
            buffer: OnceLock::new(),
            attaching: Mutex::new(()),
            newest: AtomicU64::new(state.next_sequence() - 1),
            identity,
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cond: Condvar::new(),
            closed: AtomicBool::new(false),
            origin: std::process::id(),
        }
    }

    /// `facts` were just published at positions `first_seq..`.
    pub(crate) fn published(&self, first_seq: u64, facts: &[Fact]) {
        let Some(first) = facts.first() else {
            return;
        };
        if first_seq == 1 {
            let _ = self.identity.set(first.id());
        }
        self.newest
            .store(first_seq + facts.len() as u64 - 1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.lock_waiters();
            self.cond.notify_all();
        }
        if let Some(b) = self.buffer.get() {
            b.emit_committed(first_seq, self.identity.get().copied(), facts);
        }
    }

    /// The ledger closed: wake followers, close the attached buffer's subscriptions.
    pub(crate) fn closed(&self) {
        self.closed.store(true, Ordering::SeqCst);
        {
            let _g = self.lock_waiters();
            self.cond.notify_all();
        }
        if let Some(b) = self.buffer.get() {
            b.close_all();
        }
    }

    /// The followers' lock (None: orphaned by a fork; see [`super::forksafe`]).
    fn lock_waiters(&self) -> Option<parking_lot::MutexGuard<'_, ()>> {
        forksafe::lock(self.origin, || self.lock.try_lock(), || self.lock.lock())
    }

    fn identity(&self) -> Option<Uuid> {
        self.identity.get().copied()
    }

    fn newest(&self) -> u64 {
        self.newest.load(Ordering::SeqCst)
    }

    /// The sequence of the newest published fact.
    pub(crate) fn head_sequence(&self) -> u64 {
        self.newest()
    }

    /// Wakes every thread waiting on the ledger (to notice a close of its own).
    pub(crate) fn wake_all(&self) {
        let _g = self.lock_waiters();
        self.cond.notify_all();
    }

    /// Waits until a fact after `seq` is published, the ledger closes, or `deadline`.
    fn wait_past(&self, seq: u64, deadline: Option<Instant>) {
        self.wait_past_or(seq, deadline, &AtomicBool::new(false));
    }

    /// [`wait_past`](Self::wait_past), also ending once `stop` is set (by a thread that
    /// then calls [`wake_all`](Self::wake_all)). A writer wakes waiters only while
    /// there are some: `waiters` is raised before `newest` is checked, and the writer
    /// stores `newest` before it reads `waiters` (both sequentially consistent), so one
    /// of the two sees the other.
    pub(crate) fn wait_past_or(&self, seq: u64, deadline: Option<Instant>, stop: &AtomicBool) {
        let Some(mut g) = self.lock_waiters() else {
            // Orphaned by a fork: poll instead of waiting to be woken.
            std::thread::sleep(Duration::from_millis(1));
            return;
        };
        self.waiters.fetch_add(1, Ordering::SeqCst);
        while self.newest() <= seq
            && !self.closed.load(Ordering::SeqCst)
            && !stop.load(Ordering::SeqCst)
        {
            match deadline {
                Some(d) => {
                    if self.cond.wait_until(&mut g, d).timed_out() {
                        break;
                    }
                }
                None => self.cond.wait(&mut g),
            }
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What to read from a ledger's log: the facts after a cursor, of some stores, at most
/// `limit`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChangesQuery {
    /// Start after this position (None: at the first fact).
    pub after: Option<Cursor>,
    /// Only these stores (empty: all).
    pub stores: Vec<String>,
    /// At most this many events (None: all).
    pub limit: Option<usize>,
}

impl ChangesQuery {
    /// Everything, from the first fact.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start after `cursor`.
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// Only these stores.
    pub fn stores<S: AsRef<str>>(mut self, stores: impl IntoIterator<Item = S>) -> Self {
        self.stores = stores.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    /// At most `n` events.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }
}

/// What [`read_after`] found.
pub(crate) struct Page {
    /// The events, in order.
    pub(crate) events: Vec<ChangeEvent>,
    /// The sequence of the last fact scanned (the cursor given when none was).
    pub(crate) scanned_to: u64,
    /// Whether the scan reached the log's end.
    pub(crate) at_end: bool,
    /// The oldest resumable cursor (the sequence before the oldest fact kept), when the
    /// cursor given is older than it: retention removed history right after it.
    pub(crate) too_old: Option<u64>,
}

/// Reads up to `limit` events of `stores` after sequence `after` from the log (one read
/// lock: the sequences and the facts are consistent even while a rewrite installs).
pub(crate) fn read_after(
    ledger: &LedgerStore,
    after: u64,
    stores: &[String],
    limit: usize,
) -> Result<Page> {
    let at = now_secs();
    ledger.try_read_log(|state| {
        let log = &state.log;
        let seqs = &state.seqs;
        let id = state.ledger_identity();
        let horizon = state.first_sequence() - 1;
        let start = seqs.index_after(after, log.len());
        let mut out = Vec::with_capacity(limit.min(log.len() - start).min(4096));
        let mut idx = start;
        let mut scanned_to = after;
        // Sequences continue one by one within a run: step instead of searching.
        let mut seq = seqs.seq_at(start);
        let mut next_jump = seqs.next_run_after(start);
        for f in &log[start..] {
            if out.len() >= limit {
                break;
            }
            if next_jump == Some(idx) {
                seq = seqs.seq_at(idx);
                next_jump = seqs.next_run_after(idx);
            }
            if stores.is_empty() || stores.iter().any(|s| s == f.store()) {
                out.push(ChangeEvent::new(f.clone(), seq, id, at));
            }
            scanned_to = seq;
            idx += 1;
            seq += 1;
        }
        if idx == log.len() {
            // Through the head: facts removed at the end are behind it too.
            scanned_to = scanned_to.max(state.next_sequence() - 1);
        }
        Page {
            events: out,
            scanned_to,
            at_end: idx == log.len(),
            too_old: (after < horizon).then_some(horizon),
        }
    })
}

/// How many facts of `stores` (empty: all) follow sequence `after` in the log, counting
/// at most `limit` (for a log reader's queue size; see `subscription`).
pub(crate) fn count_after(
    ledger: &LedgerStore,
    after: u64,
    stores: &[String],
    limit: usize,
) -> Result<usize> {
    ledger.try_read_log(|state| {
        let start = state.seqs.index_after(after, state.log.len());
        state.log[start..]
            .iter()
            .filter(|f| stores.is_empty() || stores.iter().any(|s| s == f.store()))
            .take(limit)
            .count()
    })
}

impl LedgerStore {
    /// The ledger's identity: the id of its first fact (None while it is empty). Cursors
    /// from this ledger carry it; see [`changefeed`](crate::changefeed).
    pub fn ledger_id(&self) -> Option<Uuid> {
        self.feed_hook().identity()
    }

    /// The position of the newest published fact (sequence 0 for an empty ledger).
    pub fn head(&self) -> Cursor {
        let hook = self.feed_hook();
        Cursor::in_ledger(hook.newest(), hook.identity())
    }

    /// The sequence of the oldest fact still in the log: 1 until retention or
    /// compaction removes the facts at the front (the head's next sequence while the
    /// log is empty). A cursor before `first_sequence() - 1` is
    /// [`ChangefeedError::CursorTooOld`].
    pub fn first_sequence(&self) -> u64 {
        self.read_log(|s| s.first_sequence())
    }

    /// Checks that `c` can be served here: its ledger (if it names one) is this one, and
    /// it is not past the newest fact. Whether it is too old is checked by the read
    /// itself, under the same lock as the facts.
    ///
    /// Identity and head come from the published log, not from the hook's counters: a
    /// log reader hands out cursors of facts it read there, which the hook learns of
    /// only just after they are published.
    pub(crate) fn check_cursor(&self, c: &Cursor) -> Result<()> {
        let (identity, newest) =
            self.try_read_log(|s| (s.ledger_identity(), s.next_sequence().saturating_sub(1)))?;
        if let Some(theirs) = c.ledger {
            if identity != Some(theirs) {
                return Err(ChangefeedError::ForeignCursor {
                    cursor: *c,
                    ledger: identity,
                }
                .into());
            }
        }
        if c.sequence > newest {
            return Err(ChangefeedError::CursorPastEnd {
                cursor: *c,
                head: newest,
            }
            .into());
        }
        Ok(())
    }

    /// `CursorTooOld` for cursor `c` when a read found its history removed.
    fn too_old(&self, c: Cursor, horizon: u64) -> Error {
        ChangefeedError::CursorTooOld {
            cursor: c,
            horizon: Cursor::in_ledger(horizon, self.ledger_id()),
        }
        .into()
    }

    /// The committed facts after `q.after` (of `q.stores`, at most `q.limit`) as
    /// events, read from the log itself: any cursor this ledger gave out resumes with
    /// exactly the facts after it, across reopen, checkpoints and retention rewrites (a
    /// fact keeps its sequence for life). Errors ([`ChangefeedError`], naming `cursor`
    /// or `limit`): a cursor of another ledger or past the end of this one; a cursor
    /// older than what retention kept (`CursorTooOld`, naming the horizon); a zero limit.
    ///
    /// ```
    /// use igniter_ledger::changefeed::ChangesQuery;
    /// use igniter_ledger::{LedgerStore, Value, Write};
    ///
    /// let ledger = LedgerStore::memory();
    /// for k in ["a", "b", "c"] {
    ///     ledger.write(Write::new("tasks", k, Value::Int(1))).unwrap();
    /// }
    /// let page = ledger.changes(&ChangesQuery::new().limit(2)).unwrap();
    /// assert_eq!(page.iter().map(|e| e.sequence()).collect::<Vec<_>>(), [1, 2]);
    /// let rest = ledger.changes(&ChangesQuery::new().after(page[1].cursor())).unwrap();
    /// assert_eq!(rest[0].key(), "c");
    /// ```
    pub fn changes(&self, q: &ChangesQuery) -> Result<Vec<ChangeEvent>> {
        if q.limit == Some(0) {
            return Err(ChangefeedError::NotPositive {
                argument: "limit",
                value: 0,
            }
            .into());
        }
        let after = match &q.after {
            Some(c) => {
                self.check_cursor(c)?;
                c.sequence
            }
            None => 0,
        };
        let page = read_after(self, after, &q.stores, q.limit.unwrap_or(usize::MAX))?;
        match (page.too_old, q.after) {
            (Some(h), Some(c)) => Err(self.too_old(c, h)),
            _ => Ok(page.events),
        }
    }

    /// A [`Follower`]: the facts after `q.after`, then each new commit as it is
    /// published, taken from any thread with a timeout (`q.limit` is ignored).
    ///
    /// A cursor older than what retention kept is refused (`CursorTooOld`). Once
    /// following, a compaction that removes facts the follower has not reached yet just
    /// means it never sees them: it goes on with the facts kept, in order.
    pub fn follow(&self, q: &ChangesQuery) -> Result<Follower> {
        if let Some(c) = &q.after {
            self.check_cursor(c)?;
            let horizon = self.first_sequence() - 1;
            if c.sequence < horizon {
                return Err(self.too_old(*c, horizon));
            }
        }
        Ok(Follower {
            ledger: self.clone(),
            stores: q.stores.clone(),
            position: q.after.map_or(0, |c| c.sequence),
            handed: q.after.map_or(0, |c| c.sequence),
            pending: VecDeque::new(),
        })
    }

    /// Attaches a changefeed buffer: from now on every commit is emitted to it, after
    /// publication and in commit order, numbered by its position in the log. One buffer
    /// per ledger, one ledger per buffer.
    pub fn attach_changefeed(&self, buffer: &ChangefeedBuffer) -> Result<()> {
        let hook = self.feed_hook();
        let Some(_one_at_a_time) = forksafe::lock(
            hook.origin,
            || hook.attaching.try_lock(),
            || hook.attaching.lock(),
        ) else {
            return Err(ChangefeedError::Misuse {
                argument: "changefeed",
                reason: "a thread of the parent process was attaching a changefeed when this process forked".into(),
            }
            .into());
        };
        if let Some(b) = hook.buffer.get() {
            if b.same(buffer) {
                return Ok(());
            }
            return Err(ChangefeedError::Misuse {
                argument: "changefeed",
                reason: "this ledger already has a changefeed".into(),
            }
            .into());
        }
        buffer.attach(self.downgrade())?;
        let _ = hook.buffer.set(buffer.clone());
        Ok(())
    }

    /// The attached changefeed buffer, if any.
    pub fn changefeed(&self) -> Option<ChangefeedBuffer> {
        self.feed_hook().buffer.get().cloned()
    }
}

/// Follows a ledger's log: every fact after a cursor, in order, then new commits as they
/// are published. Never loses or repeats a fact, never slows writers (it reads the log
/// under its read lock, in chunks). Iterating blocks until the next fact, and ends once
/// the ledger is closed and everything published was handed out.
///
/// ```
/// use std::time::Duration;
/// use igniter_ledger::changefeed::ChangesQuery;
/// use igniter_ledger::{LedgerStore, Value, Write};
///
/// let ledger = LedgerStore::memory();
/// let mut follower = ledger.follow(&ChangesQuery::new().stores(["tasks"])).unwrap();
/// let writer = {
///     let ledger = ledger.clone();
///     std::thread::spawn(move || {
///         ledger.write(Write::new("notes", "n", Value::Nil)).unwrap();
///         ledger.write(Write::new("tasks", "t1", Value::Int(1))).unwrap();
///     })
/// };
/// let e = follower.next_timeout(Duration::from_secs(5)).unwrap().unwrap();
/// assert_eq!((e.key(), e.sequence()), ("t1", 2));
/// writer.join().unwrap();
/// assert!(follower.next_timeout(Duration::from_millis(10)).unwrap().is_none());
/// ```
pub struct Follower {
    ledger: LedgerStore,
    stores: Vec<String>,
    position: u64,
    handed: u64,
    pending: VecDeque<ChangeEvent>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("stores", &self.stores)
            .field("position", &self.position)
            .field("pending", &self.pending.len())
            .finish()
    }
}

const FOLLOW_CHUNK: usize = 4096;

impl Follower {
    /// The cursor after the last event handed out (persist it to resume later).
    pub fn cursor(&self) -> Cursor {
        let consumed = if self.pending.is_empty() {
            self.position
        } else {
            self.handed
        };
        Cursor::in_ledger(consumed, self.ledger.ledger_id())
    }

    fn fill(&mut self) -> Result<()> {
        let page = read_after(&self.ledger, self.position, &self.stores, FOLLOW_CHUNK)?;
        self.position = page.scanned_to;
        self.pending.extend(page.events);
        Ok(())
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Result<Option<ChangeEvent>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                self.handed = e.sequence();
                return Ok(Some(e));
            }
            self.fill()?;
            if !self.pending.is_empty() {
                continue;
            }
            let hook = self.ledger.feed_hook();
            if hook.newest() > self.position {
                continue;
            }
            if hook.closed.load(Ordering::SeqCst) {
                return Err(Error::Closed);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            hook.wait_past(self.position, deadline);
        }
    }

    /// The next event, waiting up to `timeout` (None when nothing came in time).
    /// `Error::Closed` once the ledger is closed and drained.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<ChangeEvent>> {
        self.next_until(Some(Instant::now() + timeout))
    }

    /// The events already published, without waiting (up to one chunk; none in a forked
    /// child that cannot read the ledger).
    pub fn poll(&mut self) -> Vec<ChangeEvent> {
        if self.pending.is_empty() {
            // Only a forked child whose parent held the ledger at the fork fails here;
            // it has nothing it can read (`next_timeout` reports the error).
            let _ = self.fill();
        }
        if let Some(e) = self.pending.back() {
            self.handed = e.sequence();
        }
        self.pending.drain(..).collect()
    }
}

impl Iterator for Follower {
    type Item = ChangeEvent;

    /// Blocks until the next event; None once the ledger is closed and drained.
    fn next(&mut self) -> Option<ChangeEvent> {
        self.next_until(None).ok().flatten()
    }
}
