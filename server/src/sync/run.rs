//! [`SyncHandle`]: the push and pull loops on their own threads, reconnecting with backoff
//! after hub errors, stopped cleanly by [`SyncHandle::stop`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use igniter_ledger::LedgerStore;

use super::progress::Progress;
use super::pull::{PullCommit, PullFilter, Puller};
use super::push::{InsertMode, Pusher};
use super::state::StateDir;
use super::SyncError;

/// What a sync does.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// The hub: a PostgreSQL connection string (`postgres://user@host:port/db`).
    pub hub: String,
    /// Push this ledger's facts.
    pub push: bool,
    /// Pull this subscription (None: do not pull).
    pub pull: Option<PullFilter>,
    /// Where the node id, pull cursors and provenance live (None: in memory, for a
    /// ledger in memory; a file ledger should use `<file>.sync`).
    pub state_dir: Option<PathBuf>,
    /// Facts per push transaction and rows per pull batch. Default 1000.
    pub batch_size: usize,
    /// The longest wait between two looks at the ledger or the hub when idle (a NOTIFY
    /// or a commit wakes earlier). Default 1 s.
    pub poll_interval: Duration,
    /// The longest wait before reconnecting after a hub error. Default 5 s.
    pub max_backoff: Duration,
    /// How rows are inserted (batched by default).
    pub insert_mode: InsertMode,
    /// Print hub errors and reconnects to stderr.
    pub verbose: bool,
    /// When set, [`SyncHandle::start`] connects to the hub first (creating its schema if
    /// the database is empty) and fails with [`SyncError::Unreachable`] when it does not
    /// answer within this time. None (the default): start returns at once and the
    /// threads retry until the hub answers.
    pub connect_timeout: Option<Duration>,
    /// Seed the ledger from the hub before [`SyncHandle::start`] returns: pull the whole
    /// subscription (`pull`, which must be set) with a progress bar on a terminal, then
    /// follow it.
    pub bootstrap: bool,
    /// On [`SyncHandle::stop`], keep pushing for up to this long until the hub holds
    /// every fact the ledger had when stop was called (zero, the default: stop after the
    /// current step; what is left is pushed by the next start, from the hub's cursor).
    pub flush_on_stop: Duration,
    /// Commits pulled facts (default: on the pull thread; see [`PullCommit`]).
    pub pull_commit: Option<Arc<dyn PullCommit>>,
}

impl SyncConfig {
    /// Neither push nor pull yet, with the defaults.
    pub fn new(hub: impl Into<String>) -> Self {
        SyncConfig {
            hub: hub.into(),
            push: false,
            pull: None,
            state_dir: None,
            batch_size: 1000,
            poll_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            insert_mode: InsertMode::Batched,
            verbose: false,
            connect_timeout: None,
            bootstrap: false,
            flush_on_stop: Duration::ZERO,
            pull_commit: None,
        }
    }
}

/// Counters of a running sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// Facts written into the hub.
    pub pushed: u64,
    /// The last ledger sequence known to be in the hub.
    pub push_cursor: u64,
    /// Facts taken in from the hub.
    pub pulled: u64,
    /// The last hub sequence taken in.
    pub pull_cursor: i64,
    /// Hub errors survived (each followed by a reconnect).
    pub reconnects: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Facts taken in by the bootstrap (part of `pulled`).
    pub bootstrapped: u64,
    /// False once every loop has ended (stopped, or a fatal error).
    pub running: bool,
}

impl SyncStatus {
    /// The counters as a JSON object (`/v1/status`'s `sync` section).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "running": self.running,
            "pushed": self.pushed,
            "push_cursor": self.push_cursor,
            "pulled": self.pulled,
            "pull_cursor": self.pull_cursor,
            "bootstrapped": self.bootstrapped,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        })
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    pushed: AtomicU64,
    push_cursor: AtomicU64,
    pulled: AtomicU64,
    pull_cursor: AtomicI64,
    reconnects: AtomicU64,
    bootstrapped: AtomicU64,
    /// Loops still running.
    running: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Reads a running sync's counters from another thread (a server's status page) while
/// the [`SyncHandle`] is owned elsewhere.
#[derive(Clone)]
pub struct SyncMonitor {
    shared: Arc<Shared>,
    node: uuid::Uuid,
}

impl std::fmt::Debug for SyncMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncMonitor")
            .field("node", &self.node)
            .finish()
    }
}

impl SyncMonitor {
    /// The counters now.
    pub fn status(&self) -> SyncStatus {
        SyncHandle::read_status(&self.shared)
    }

    /// The sync node's id.
    pub fn node(&self) -> uuid::Uuid {
        self.node
    }
}

/// A running sync of one ledger: a push thread and/or a pull thread.
pub struct SyncHandle {
    shared: Arc<Shared>,
    state: Arc<StateDir>,
    threads: Vec<(&'static str, JoinHandle<Result<(), SyncError>>)>,
}

impl std::fmt::Debug for SyncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHandle")
            .field("node", &self.state.node())
            .field("status", &self.status())
            .finish()
    }
}

impl SyncHandle {
    /// Starts syncing `ledger` as `config` says. Returns at once; the threads connect
    /// (and create the hub schema if the database is empty) on their own and retry
    /// until the hub answers.
    pub fn start(ledger: LedgerStore, config: SyncConfig) -> Result<SyncHandle, SyncError> {
        if !config.push && config.pull.is_none() {
            return Err(SyncError::Invalid(
                "sync: nothing to do (neither push nor pull)".into(),
            ));
        }
        super::check_url(&config.hub)?;
        if config.bootstrap && config.pull.is_none() {
            return Err(SyncError::Invalid(
                "sync: bootstrap needs a pull subscription".into(),
            ));
        }
        let state = Arc::new(StateDir::open(config.state_dir.clone())?);
        let shared = Arc::new(Shared::default());
        let mut pusher = match config.push {
            true => Some(Pusher::new(
                ledger.clone(),
                &config.hub,
                state.node(),
                config.batch_size,
                config.insert_mode,
            )?),
            false => None,
        };
        let mut puller = match config.pull.clone() {
            Some(filter) => {
                let mut p = Puller::new(
                    ledger,
                    &config.hub,
                    state.clone(),
                    filter,
                    config.batch_size,
                )?;
                if let Some(c) = &config.pull_commit {
                    p.set_committer(c.clone());
                }
                Some(p)
            }
            None => None,
        };
        if let Some(limit) = config.connect_timeout {
            let until = std::time::Instant::now() + limit;
            if let Some(p) = pusher.as_mut() {
                connect_within(until, || p.connect())?;
            }
            if let Some(p) = puller.as_mut() {
                connect_within(until, || p.connect().map(|_| ()))?;
            }
        }
        if config.bootstrap {
            if let Some(p) = puller.as_mut() {
                let mut bar = Progress::new(p.remaining()?, false);
                let far = std::time::Instant::now() + Duration::from_secs(365 * 86_400);
                let before = p.pulled();
                p.catch_up(far, |done| bar.update(done))?;
                bar.finish();
                shared
                    .bootstrapped
                    .store(p.pulled() - before, Ordering::SeqCst);
                shared.pulled.store(p.pulled(), Ordering::SeqCst);
                shared.pull_cursor.store(p.cursor(), Ordering::SeqCst);
            }
        }
        let mut threads = Vec::new();
        if let Some(mut pusher) = pusher {
            let sh = shared.clone();
            let cfg = config.clone();
            sh.running.fetch_add(1, Ordering::SeqCst);
            threads.push((
                "push",
                spawn("igniter-sync-push", move || {
                    let r = run_loop("push", &sh, &cfg, |wait| {
                        let r = pusher.step(wait);
                        sh.pushed.store(pusher.pushed(), Ordering::SeqCst);
                        sh.push_cursor.store(pusher.cursor(), Ordering::SeqCst);
                        if r.is_err() {
                            pusher.disconnect();
                        }
                        r
                    });
                    if r.is_ok() && !cfg.flush_on_stop.is_zero() {
                        // Stopped: push what the ledger holds now, within the limit. A
                        // failure here loses nothing (the next start resumes from the
                        // hub's cursor); it is reported in `last_error`.
                        let until = std::time::Instant::now() + cfg.flush_on_stop;
                        if let Err(e) = pusher.catch_up(until) {
                            if !matches!(e, SyncError::Stopped) {
                                *sh.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                                    Some(format!("push on stop: {e}"));
                            }
                        }
                        sh.pushed.store(pusher.pushed(), Ordering::SeqCst);
                        sh.push_cursor.store(pusher.cursor(), Ordering::SeqCst);
                    }
                    sh.running.fetch_sub(1, Ordering::SeqCst);
                    r
                })?,
            ));
        }
        if let Some(mut puller) = puller {
            let sh = shared.clone();
            sh.running.fetch_add(1, Ordering::SeqCst);
            let cfg = config.clone();
            threads.push((
                "pull",
                spawn("igniter-sync-pull", move || {
                    let r = run_loop("pull", &sh, &cfg, |wait| {
                        let r = puller.step(wait);
                        sh.pulled.store(puller.pulled(), Ordering::SeqCst);
                        sh.pull_cursor.store(puller.cursor(), Ordering::SeqCst);
                        if r.is_err() {
                            puller.disconnect();
                        }
                        r
                    });
                    sh.running.fetch_sub(1, Ordering::SeqCst);
                    r
                })?,
            ));
        }
        Ok(SyncHandle {
            shared,
            state,
            threads,
        })
    }

    /// This node's id (the `origin_ledger` of its rows in the hub).
    pub fn node(&self) -> uuid::Uuid {
        self.state.node()
    }

    /// The counters so far.
    pub fn status(&self) -> SyncStatus {
        SyncHandle::read_status(&self.shared)
    }

    /// A reader of the counters that can outlive a borrow of the handle (for a status
    /// page on another thread).
    pub fn monitor(&self) -> SyncMonitor {
        SyncMonitor {
            shared: self.shared.clone(),
            node: self.state.node(),
        }
    }

    fn read_status(s: &Shared) -> SyncStatus {
        SyncStatus {
            pushed: s.pushed.load(Ordering::SeqCst),
            push_cursor: s.push_cursor.load(Ordering::SeqCst),
            pulled: s.pulled.load(Ordering::SeqCst),
            pull_cursor: s.pull_cursor.load(Ordering::SeqCst),
            reconnects: s.reconnects.load(Ordering::SeqCst),
            bootstrapped: s.bootstrapped.load(Ordering::SeqCst),
            running: s.running.load(Ordering::SeqCst) > 0,
            last_error: s
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// True once a thread has ended on its own (a fatal error, or the ledger closed).
    pub fn is_finished(&self) -> bool {
        self.threads.iter().any(|(_, t)| t.is_finished())
    }

    /// Stops both loops after their current step (a transaction in flight either commits
    /// or rolls back whole) and waits for them. The first fatal error, if any.
    pub fn stop(self) -> Result<(), SyncError> {
        self.stop_with_status().1
    }

    /// [`SyncHandle::stop`], also answering the final counters (read after both loops
    /// ended, so they cover every step that committed).
    pub fn stop_with_status(self) -> (SyncStatus, Result<(), SyncError>) {
        let shared = self.shared.clone();
        let r = self.join_all();
        let status = SyncHandle::read_status(&shared);
        (status, r)
    }

    fn join_all(self) -> Result<(), SyncError> {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut first = Ok(());
        for (name, t) in self.threads {
            let r = t.join().unwrap_or_else(|_| {
                Err(SyncError::Invalid(format!(
                    "sync: the {name} thread panicked"
                )))
            });
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// Runs `connect` until it succeeds, a non-transient error, or `until`
/// ([`SyncError::Unreachable`] with the last error).
fn connect_within(
    until: std::time::Instant,
    mut connect: impl FnMut() -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    let mut pause = Duration::from_millis(50);
    loop {
        match connect() {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() => {
                let now = std::time::Instant::now();
                if now + pause >= until {
                    return Err(SyncError::Unreachable(e.to_string()));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
}

fn spawn(
    name: &str,
    f: impl FnOnce() -> Result<(), SyncError> + Send + 'static,
) -> Result<JoinHandle<Result<(), SyncError>>, SyncError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|e| SyncError::Invalid(format!("cannot start a sync thread: {e}")))
}

fn run_loop(
    what: &str,
    sh: &Shared,
    cfg: &SyncConfig,
    mut step: impl FnMut(Duration) -> Result<usize, SyncError>,
) -> Result<(), SyncError> {
    let wait = cfg.poll_interval.min(Duration::from_millis(250));
    let mut backoff = Duration::from_millis(50);
    while !sh.stop.load(Ordering::SeqCst) {
        match step(wait) {
            Ok(_) => backoff = Duration::from_millis(50),
            Err(SyncError::Stopped) => return Ok(()),
            Err(e) if e.is_transient() => {
                sh.reconnects.fetch_add(1, Ordering::SeqCst);
                if cfg.verbose {
                    eprintln!("igniter-ledger sync: {what}: {e}; retrying in {backoff:?}");
                }
                *sh.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                let until = std::time::Instant::now() + backoff;
                while std::time::Instant::now() < until && !sh.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                backoff = (backoff * 2).min(cfg.max_backoff);
            }
            Err(e) => {
                *sh.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                return Err(e);
            }
        }
    }
    Ok(())
}

impl crate::server::StatusSection for SyncMonitor {
    fn name(&self) -> &str {
        "sync"
    }

    fn snapshot(&self) -> serde_json::Value {
        let mut o = self.status().to_json();
        o["node"] = self.node.to_string().into();
        o
    }
}
