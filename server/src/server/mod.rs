//! The ledger server: one process owns the ledger file, many processes talk to it.
//!
//! [`Server::start`] binds its listeners before returning (a caller may connect at
//! once), then serves on its own tokio runtime:
//!
//! - the **framed listener** (TCP, or a unix socket): CRC32 frames
//!   ([`frame`]) carrying either the reference's legacy framed-JSON ops
//!   (`write_fact`, `replay`, `write_snapshot`, `stats`, `server_status`, `ping`,
//!   `close`, `subscribe`) or wire envelopes (`{protocol: "igniter_store", op, packet}`)
//!   answered by the core's [`Interpreter`] (or by a [`Dispatch`] hook), plus the
//!   `ledger.*` ops of the remote store ([`crate::client::RemoteStore`]);
//! - the optional **HTTP listener** ([`http`]): `POST /v1/dispatch`, health, status,
//!   ready, metrics (JSON and Prometheus text), recent events, metadata, compaction
//!   activity, the SSE changefeed `/v1/events`, and a status page at `/`.
//!
//! Safe by default: binds `127.0.0.1`, limits frame and body sizes, JSON nesting,
//! connections, idle and slow clients; an optional shared-secret token guards both
//! listeners. A malformed frame or request gets an error answer and its connection is
//! closed; no client byte can crash the server.
//!
//! ```no_run
//! use std::sync::Arc;
//! use igniter_ledger::LedgerStore;
//! use igniter_ledger_server::server::{NullSink, Server, ServerOptions};
//!
//! let ledger = LedgerStore::open("ledger.wal").unwrap();
//! let opts = ServerOptions::tcp("127.0.0.1:7400").http("127.0.0.1:7300");
//! let handle = Server::start(ledger, opts, Arc::new(NullSink)).unwrap();
//! println!("framed on {}, http on {:?}", handle.bind_address(), handle.http_addr());
//! handle.stop();
//! ```

pub mod bridge;
pub mod conn;
pub mod events;
pub mod frame;
pub mod host;
pub mod http;
pub mod legacy;
pub mod metrics;
mod page;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use igniter_ledger::changefeed::BufferOptions;
use igniter_ledger::protocol::{json, Interpreter};
use igniter_ledger::{ChangeEvent, ChangefeedBuffer, ChangesQuery, LedgerStore};
use serde_json::Value as Json;
use tokio::sync::{broadcast, watch};

pub use events::{EventSink, JsonLinesSink, Level, NullSink, ServerEvent};
pub use host::{Host, HostJob, HostReply};
pub use metrics::{HealthSnapshot, MetricsSnapshot, MetricsThresholds};

/// Where the framed listener listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address, `host:port` (port 0: any free port).
    Tcp(String),
    /// A unix socket path.
    Unix(PathBuf),
}

/// How a server runs. Build with [`ServerOptions::tcp`] or [`ServerOptions::unix`] and
/// the builder methods; every limit has a safe default.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The framed listener.
    pub listen: Listen,
    /// The HTTP listener (`host:port`), if any.
    pub http: Option<String>,
    /// A shared secret every client must present (frames: an `auth` op or a `token`
    /// field; HTTP: `Authorization: Bearer <token>` or `?token=`).
    pub token: Option<String>,
    /// Most framed connections open at once (more are refused with an error frame).
    pub max_connections: usize,
    /// Largest frame body accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Largest HTTP request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted in a request.
    pub max_nesting: usize,
    /// A connection that sends nothing for this long is closed (None, the default:
    /// never — the reference's `NetworkBackend` keeps one connection for its lifetime
    /// and does not reconnect). Push subscriptions are never idle-closed.
    pub idle_timeout: Option<Duration>,
    /// Time allowed to finish sending a started frame, or to take a response.
    pub slow_timeout: Duration,
    /// How long [`ServerHandle::stop`] waits for requests in flight.
    pub drain_timeout: Duration,
    /// A changefeed buffer to attach to the ledger (the nine `--changefeed-*` options);
    /// its snapshot is part of the observability snapshot.
    pub changefeed: Option<BufferOptions>,
    /// A file to write the process id into while serving.
    pub pid_file: Option<PathBuf>,
    /// How many recent server events `/v1/events/recent` keeps.
    pub max_recent_events: usize,
    /// Alert thresholds of the metrics snapshot.
    pub thresholds: MetricsThresholds,
    /// The backend name reported by health (`memory` or `file`; default: from the ledger).
    pub backend_name: Option<String>,
    /// A hook answering wire envelopes instead of the core interpreter.
    pub dispatch: Option<Arc<dyn Dispatch>>,
    /// Runtime worker threads (default 2).
    pub worker_threads: usize,
    /// The embedding process's thread for ledger work that must not run on the server's
    /// threads (see [`host`]).
    pub host: Option<Arc<dyn Host>>,
    /// The protocol interpreter to answer envelopes with (it must be over the ledger
    /// served); default: a new one. Sharing the embedding process's interpreter shares
    /// its registered descriptors.
    pub interpreter: Option<Arc<Interpreter>>,
    /// Most HTTP connections open at once (more wait in the listen backlog until one
    /// closes).
    pub max_http_connections: usize,
    /// Time an HTTP client has to send a request's headers (on a new connection, and
    /// between keep-alive requests).
    pub header_read_timeout: Duration,
    /// Sections an embedding process adds to `/v1/status` (e.g. the sync hub's `sync`).
    pub status_sections: Vec<Arc<dyn StatusSection>>,
}

/// A part of the `/v1/status` answer the server does not own (the sync hub's counters):
/// `status[name()] = snapshot()`, read on each request.
pub trait StatusSection: Send + Sync {
    /// The key in the status object.
    fn name(&self) -> &str;
    /// The section's current answer.
    fn snapshot(&self) -> Json;
}

impl std::fmt::Debug for dyn StatusSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StatusSection({})", self.name())
    }
}

impl std::fmt::Debug for dyn Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Host")
    }
}

impl std::fmt::Debug for dyn Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dispatch")
    }
}

/// The default port of the framed listener (the reference's).
pub const DEFAULT_PORT: u16 = 7400;
/// The default port of the HTTP listener (the reference's).
pub const DEFAULT_HTTP_PORT: u16 = 7300;

impl ServerOptions {
    /// A framed TCP listener at `addr` (`host:port`), with default limits.
    pub fn tcp(addr: impl Into<String>) -> Self {
        Self::with(Listen::Tcp(addr.into()))
    }

    /// A framed unix-socket listener at `path`, with default limits.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::with(Listen::Unix(path.into()))
    }

    fn with(listen: Listen) -> Self {
        ServerOptions {
            listen,
            http: None,
            token: None,
            max_connections: 1024,
            max_frame_bytes: 16 * 1024 * 1024,
            max_body_bytes: 16 * 1024 * 1024,
            max_nesting: 64,
            idle_timeout: None,
            slow_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            changefeed: None,
            pid_file: None,
            max_recent_events: 100,
            thresholds: MetricsThresholds::default(),
            backend_name: None,
            dispatch: None,
            worker_threads: 2,
            host: None,
            interpreter: None,
            max_http_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            status_sections: Vec::new(),
        }
    }

    /// Also serve HTTP at `addr` (`host:port`).
    pub fn http(mut self, addr: impl Into<String>) -> Self {
        self.http = Some(addr.into());
        self
    }
    /// Require this shared secret.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// At most `n` framed connections.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }
    /// Frame bodies of at most `n` bytes.
    pub fn max_frame_bytes(mut self, n: usize) -> Self {
        self.max_frame_bytes = n;
        self
    }
    /// HTTP bodies of at most `n` bytes.
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }
    /// JSON nesting of at most `n` levels.
    pub fn max_nesting(mut self, n: usize) -> Self {
        self.max_nesting = n;
        self
    }
    /// Close connections idle for `d` (None: never).
    pub fn idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.idle_timeout = d;
        self
    }
    /// Time allowed to finish a started frame or take a response.
    pub fn slow_timeout(mut self, d: Duration) -> Self {
        self.slow_timeout = d;
        self
    }
    /// The drain timeout of [`ServerHandle::stop`].
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.drain_timeout = d;
        self
    }
    /// Attach a changefeed buffer with these options.
    pub fn changefeed(mut self, o: BufferOptions) -> Self {
        self.changefeed = Some(o);
        self
    }
    /// Write the process id to `path` while serving.
    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.pid_file = Some(path.into());
        self
    }
    /// Answer wire envelopes with this hook.
    pub fn dispatch(mut self, d: Arc<dyn Dispatch>) -> Self {
        self.dispatch = Some(d);
        self
    }
    /// Add a section to `/v1/status`.
    pub fn status_section(mut self, s: Arc<dyn StatusSection>) -> Self {
        self.status_sections.push(s);
        self
    }
    /// The backend name health reports.
    pub fn backend_name(mut self, name: impl Into<String>) -> Self {
        self.backend_name = Some(name.into());
        self
    }
    /// Run ledger work on this host's thread when it asks for it (see [`host`]).
    pub fn host(mut self, h: Arc<dyn Host>) -> Self {
        self.host = Some(h);
        self
    }
    /// Answer envelopes with this interpreter (over the ledger served).
    pub fn interpreter(mut self, i: Arc<Interpreter>) -> Self {
        self.interpreter = Some(i);
        self
    }
    /// At most `n` HTTP connections at once.
    pub fn max_http_connections(mut self, n: usize) -> Self {
        self.max_http_connections = n;
        self
    }
    /// Time allowed for an HTTP request's headers.
    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.header_read_timeout = d;
        self
    }
    /// Alert thresholds.
    pub fn thresholds(mut self, t: MetricsThresholds) -> Self {
        self.thresholds = t;
        self
    }
}

/// A hook an embedding process (the Ruby gem) uses to answer wire envelopes itself.
/// Called on a blocking thread of the server's runtime.
pub trait Dispatch: Send + Sync {
    /// Answers one envelope (a JSON object) with a response envelope.
    fn dispatch(&self, envelope: Json) -> Json;
}

/// Why a server could not start.
#[derive(Debug)]
pub enum ServerError {
    /// A listener could not be bound.
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// An option was wrong.
    Invalid(String),
    /// The runtime could not start, or the pid file could not be written.
    Io(std::io::Error),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ServerError::Invalid(m) => f.write_str(m),
            ServerError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ServerError {}

const READY: u8 = 0;
const DRAINING: u8 = 1;
const STOPPED: u8 = 2;

/// What every connection and route shares.
pub(crate) struct Shared {
    pub(crate) ledger: LedgerStore,
    pub(crate) interp: Arc<Interpreter>,
    pub(crate) opts: ServerOptions,
    pub(crate) sink: Arc<dyn EventSink>,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) started: Instant,
    state: AtomicU8,
    pub(crate) feed: broadcast::Sender<ChangeEvent>,
    pub(crate) recent: Mutex<std::collections::VecDeque<Json>>,
    pub(crate) last_error: Mutex<Option<String>>,
    pub(crate) bind_address: String,
    pub(crate) transport: &'static str,
    pub(crate) backend: String,
    pub(crate) drain: watch::Sender<bool>,
    pub(crate) changefeed: Option<ChangefeedBuffer>,
}

impl Shared {
    pub(crate) fn emit(&self, e: ServerEvent) {
        if e.level >= Level::Info {
            let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            r.push_back(e.to_json());
            while r.len() > self.opts.max_recent_events {
                r.pop_front();
            }
        }
        self.sink.event(&e);
    }

    pub(crate) fn status(&self) -> &'static str {
        match self.state.load(Ordering::SeqCst) {
            READY => "ready",
            DRAINING => "draining",
            _ => "stopped",
        }
    }

    pub(crate) fn uptime_ms(&self) -> u64 {
        (self.started.elapsed().as_micros() as u64)
            .div_ceil(1000)
            .max(1)
    }

    pub(crate) fn health(&self) -> HealthSnapshot {
        HealthSnapshot {
            schema_version: 1,
            status: self.status().to_owned(),
            backend: self.backend.clone(),
            transport: self.transport.to_owned(),
            bind_address: self.bind_address.clone(),
            uptime_ms: self.uptime_ms(),
            active_connections: self.metrics.active(),
            subscriptions: self.metrics.subscription_count(),
            last_error: self.last_error.lock().map(|e| e.clone()).unwrap_or(None),
        }
    }

    pub(crate) fn metrics_snapshot(&self) -> MetricsSnapshot {
        let storage = if self.ledger.path().is_some() {
            let v = self
                .interp
                .storage_stats(&igniter_ledger::Value::Map(Vec::new()))
                .ok()
                .flatten();
            v.map(|v| json::to_json(&v))
        } else {
            None
        };
        self.metrics
            .snapshot(self.uptime_ms(), storage, &self.opts.thresholds)
    }

    /// `{schema_version, status, uptime_ms, metrics, alerts, server, changefeed?}`.
    pub(crate) fn status_json(&self) -> Json {
        let m = self.metrics_snapshot();
        let alerts = m.alerts.clone();
        let mut o = serde_json::json!({
            "schema_version": 1,
            "status": self.status(),
            "uptime_ms": self.uptime_ms(),
            "metrics": m,
            "alerts": alerts,
            "server": self.health(),
            "ledger": {
                "fact_count": self.ledger.fact_count(),
                "durability": format!("{:?}", self.ledger.durability()).to_lowercase(),
                "path": self.ledger.path().map(|p| p.display().to_string()),
            },
        });
        if let Some(cf) = &self.changefeed {
            o["changefeed"] = changefeed_json(&cf.snapshot());
        }
        for section in &self.opts.status_sections {
            o[section.name()] = section.snapshot();
        }
        o
    }

    pub(crate) fn draining(&self) -> bool {
        self.state.load(Ordering::SeqCst) != READY
    }

    /// Runs ledger work `f`: on the host's thread when the host needs it (see
    /// [`host`]), else on a blocking thread of the runtime. None when the work could not
    /// run (the host is gone, or it panicked).
    pub(crate) async fn run<R, F>(self: &Arc<Self>, f: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&Shared) -> R + Send + 'static,
    {
        let s = self.clone();
        match &self.opts.host {
            Some(h) if h.needed() => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let job: HostJob = Box::new(move || {
                    let _ = tx.send(f(&s));
                });
                if !h.submit(job) {
                    return None;
                }
                rx.await.ok()
            }
            _ => tokio::task::spawn_blocking(move || f(&s)).await.ok(),
        }
    }

    /// Answers a framed request the host answers (see [`Host::answers`]); None when the
    /// host is gone.
    pub(crate) async fn host_op(&self, req: Json) -> Option<Json> {
        let h = self.opts.host.as_ref()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let reply: HostReply = Box::new(move |answer| {
            let _ = tx.send(answer);
        });
        if !h.submit_op(req, reply) {
            return None;
        }
        rx.await.ok()
    }

    /// Whether the host answers framed op `op`.
    pub(crate) fn host_answers(&self, op: &str) -> bool {
        self.opts.host.as_ref().is_some_and(|h| h.answers(op))
    }

    /// Answers one envelope, by the hook or the interpreter.
    pub(crate) fn dispatch_envelope(&self, env: Json) -> Json {
        match &self.opts.dispatch {
            Some(d) => d.dispatch(env),
            None => json::to_json(&self.interp.wire().dispatch(&json::from_json(&env))),
        }
    }
}

/// A changefeed snapshot as JSON (counters and configuration).
pub(crate) fn changefeed_json(s: &igniter_ledger::changefeed::Snapshot) -> Json {
    serde_json::json!({
        "emitted_total": s.emitted_total,
        "delivered_total": s.delivered_total,
        "dropped_total": s.dropped_total,
        "overflow_dropped_total": s.overflow_dropped_total,
        "failed_total": s.failed_total,
        "buffered": s.buffered,
        "max_size": s.max_size,
        "subscriber_count": s.subscriber_count,
        "oldest_sequence": s.oldest_sequence,
        "newest_sequence": s.newest_sequence,
        "close_policy": s.close_policy.name(),
        "overflow": s.overflow.name(),
        "subscriber_queue_size": s.subscriber_queue_size,
        "total_queued": s.total_queued,
        "alert_count": s.alerts.len(),
        "attached": s.attached,
    })
}

/// The server. See the module documentation.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Binds the listeners (before returning), writes the pid file, and serves `ledger`
    /// on a runtime of its own until [`ServerHandle::stop`].
    pub fn start(
        ledger: LedgerStore,
        opts: ServerOptions,
        sink: Arc<dyn EventSink>,
    ) -> Result<ServerHandle, ServerError> {
        if opts.max_connections == 0 {
            return Err(ServerError::Invalid(
                "max_connections must be positive".into(),
            ));
        }
        if opts.max_frame_bytes == 0
            || opts.max_body_bytes == 0
            || opts.max_nesting == 0
            || opts.max_http_connections == 0
        {
            return Err(ServerError::Invalid(
                "max_frame_bytes, max_body_bytes, max_nesting and max_http_connections must be positive"
                    .into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.worker_threads.max(1))
            .thread_name("igniter-ledger-server")
            .enable_all()
            .build()
            .map_err(ServerError::Io)?;
        let framed = conn::bind(&opts.listen)?;
        let bind_address = framed.address();
        let http_listener = match &opts.http {
            Some(a) => Some(
                std::net::TcpListener::bind(a).map_err(|e| ServerError::Bind {
                    addr: a.clone(),
                    source: e,
                })?,
            ),
            None => None,
        };
        let http_addr = match &http_listener {
            Some(l) => Some(l.local_addr().map_err(ServerError::Io)?),
            None => None,
        };
        let changefeed = match &opts.changefeed {
            Some(o) => {
                let buf =
                    ChangefeedBuffer::new(*o).map_err(|e| ServerError::Invalid(e.to_string()))?;
                ledger
                    .attach_changefeed(&buf)
                    .map_err(|e| ServerError::Invalid(e.to_string()))?;
                Some(buf)
            }
            None => None,
        };
        if let Some(p) = &opts.pid_file {
            std::fs::write(p, format!("{}\n", std::process::id())).map_err(ServerError::Io)?;
        }
        let (feed, _) = broadcast::channel(4096);
        let (drain, _) = watch::channel(false);
        let backend = opts.backend_name.clone().unwrap_or_else(|| {
            if ledger.path().is_some() {
                "file"
            } else {
                "memory"
            }
            .to_owned()
        });
        let shared = Arc::new(Shared {
            interp: opts
                .interpreter
                .clone()
                .unwrap_or_else(|| Arc::new(Interpreter::new(ledger.clone()))),
            ledger,
            sink,
            metrics: metrics::Metrics::default(),
            started: Instant::now(),
            state: AtomicU8::new(READY),
            feed,
            recent: Mutex::new(Default::default()),
            last_error: Mutex::new(None),
            transport: framed.transport(),
            bind_address: bind_address.clone(),
            backend,
            drain,
            changefeed,
            opts,
        });
        let pump_stop = Arc::new(AtomicBool::new(false));
        let pump = start_pump(shared.clone(), pump_stop.clone());
        let mut tasks = Vec::new();
        {
            let _guard = runtime.enter();
            tasks.push(runtime.spawn(conn::accept_loop(shared.clone(), framed.into_tokio()?)));
            if let Some(l) = http_listener {
                l.set_nonblocking(true).map_err(ServerError::Io)?;
                let l = tokio::net::TcpListener::from_std(l).map_err(ServerError::Io)?;
                tasks.push(runtime.spawn(http::serve(shared.clone(), l)));
            }
        }
        shared.emit(
            ServerEvent::new("server_start", Level::Info)
                .with("bind_address", bind_address.as_str())
                .with("transport", shared.transport)
                .with("backend", shared.backend.as_str())
                .with(
                    "http_address",
                    http_addr.map_or(Json::Null, |a| Json::String(a.to_string())),
                )
                .with("message", format!("Listening on {bind_address}")),
        );
        Ok(ServerHandle {
            shared,
            runtime: Mutex::new(Some(runtime)),
            tasks: Mutex::new(tasks),
            pump: Mutex::new(Some(pump)),
            pump_stop,
            http_addr: Mutex::new(http_addr),
            done: (Mutex::new(false), std::sync::Condvar::new()),
        })
    }
}

/// One thread follows the ledger and broadcasts every committed fact to the
/// subscriptions and SSE streams (each filters its stores).
fn start_pump(shared: Arc<Shared>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("igniter-ledger-feed".into())
        .spawn(move || {
            let q = ChangesQuery::new().after(shared.ledger.head());
            let Ok(mut follower) = shared.ledger.follow(&q) else {
                return;
            };
            while !stop.load(Ordering::SeqCst) {
                match follower.next_timeout(Duration::from_millis(100)) {
                    Ok(Some(e)) => {
                        let _ = shared.feed.send(e);
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
        })
        .expect("spawning a thread")
}

/// A running server: addresses, snapshots, drain and stop.
pub struct ServerHandle {
    shared: Arc<Shared>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pump: Mutex<Option<std::thread::JoinHandle<()>>>,
    pump_stop: Arc<AtomicBool>,
    http_addr: Mutex<Option<SocketAddr>>,
    done: (Mutex<bool>, std::sync::Condvar),
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("bind_address", &self.shared.bind_address)
            .field("http_addr", &self.http_addr())
            .field("status", &self.shared.status())
            .finish()
    }
}

impl ServerHandle {
    /// The framed listener's address: `host:port`, or the unix socket path.
    pub fn bind_address(&self) -> &str {
        &self.shared.bind_address
    }

    /// The framed listener's TCP address (None for a unix socket).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.bind_address.parse().ok()
    }

    /// The HTTP listener's address, if there is one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        *self.http_addr.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the HTTP listener at `addr` (`host:port`) on a running server that has
    /// none yet; answers its address. Stops with the server.
    pub fn serve_http(&self, addr: &str) -> Result<SocketAddr, ServerError> {
        let mut current = self.http_addr.lock().unwrap_or_else(|p| p.into_inner());
        if current.is_some() {
            return Err(ServerError::Invalid("already serving HTTP".into()));
        }
        if self.shared.draining() {
            return Err(ServerError::Invalid("the server is stopping".into()));
        }
        let l = std::net::TcpListener::bind(addr).map_err(|e| ServerError::Bind {
            addr: addr.to_owned(),
            source: e,
        })?;
        let bound = l.local_addr().map_err(ServerError::Io)?;
        l.set_nonblocking(true).map_err(ServerError::Io)?;
        let rt = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
        let rt = rt
            .as_ref()
            .ok_or_else(|| ServerError::Invalid("the server has stopped".into()))?;
        let _guard = rt.enter();
        let l = tokio::net::TcpListener::from_std(l).map_err(ServerError::Io)?;
        let task = rt.spawn(http::serve(self.shared.clone(), l));
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
        *current = Some(bound);
        self.shared.emit(
            ServerEvent::new("http_start", Level::Info).with("http_address", bound.to_string()),
        );
        Ok(bound)
    }

    /// The ledger served.
    pub fn ledger(&self) -> &LedgerStore {
        &self.shared.ledger
    }

    /// The attached changefeed buffer, if options asked for one.
    pub fn changefeed(&self) -> Option<&ChangefeedBuffer> {
        self.shared.changefeed.as_ref()
    }

    /// The metrics snapshot (the reference's `ServerMetrics#snapshot` keys).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics_snapshot()
    }

    /// The health snapshot (the reference's `health_snapshot` keys).
    pub fn health(&self) -> HealthSnapshot {
        self.shared.health()
    }

    /// The `server_status` / `/v1/status` answer.
    pub fn status(&self) -> Json {
        self.shared.status_json()
    }

    /// The recent server events (newest last).
    pub fn recent_events(&self) -> Vec<Json> {
        self.shared
            .recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Framed connections open now.
    pub fn active_connections(&self) -> usize {
        self.shared.metrics.active()
    }

    /// Legacy push subscriptions open for `store`.
    pub fn subscription_count(&self, store: &str) -> usize {
        self.shared.metrics.subscriptions_for(store)
    }

    /// Live change streams open now: SSE `/v1/events` streams and legacy push
    /// subscriptions.
    pub fn stream_count(&self) -> usize {
        self.shared.feed.receiver_count()
    }

    /// True until stop or drain begins.
    pub fn is_ready(&self) -> bool {
        !self.shared.draining()
    }

    /// True while draining (or stopped).
    pub fn is_draining(&self) -> bool {
        self.shared.draining()
    }

    /// Stops accepting, lets requests in flight finish for up to `timeout`, closes idle
    /// connections and subscriptions, then stops the server. The ledger stays open (its
    /// owner closes it).
    pub fn drain(&self, timeout: Duration) {
        if self
            .shared
            .state
            .compare_exchange(READY, DRAINING, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            self.wait();
            return;
        }
        self.shared.emit(
            ServerEvent::new("server_drain", Level::Info)
                .with("drain_timeout_ms", timeout.as_millis() as u64)
                .with("active_connections", self.shared.metrics.active()),
        );
        let _ = self.shared.drain.send(true);
        // Accept loops end on the drain signal and drop their listeners; wait for that
        // so no new connection is accepted once drain returns.
        let deadline = Instant::now() + timeout;
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        if let Ok(rt) = self.runtime.lock() {
            if let Some(rt) = rt.as_ref() {
                for t in tasks {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let _ = rt.block_on(async { tokio::time::timeout(left, t).await });
                }
            }
        }
        while self.shared.metrics.active() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = self.shared.metrics.active();
        if left > 0 {
            self.shared
                .emit(ServerEvent::new("force_close", Level::Warn).with("connections", left));
        }
        self.pump_stop.store(true, Ordering::SeqCst);
        if let Some(rt) = self.runtime.lock().ok().and_then(|mut r| r.take()) {
            rt.shutdown_timeout(Duration::from_millis(100));
        }
        if let Some(p) = self.pump.lock().ok().and_then(|mut p| p.take()) {
            let _ = p.join();
        }
        if let Listen::Unix(p) = &self.shared.opts.listen {
            let _ = std::fs::remove_file(p);
        }
        if let Some(p) = &self.shared.opts.pid_file {
            let _ = std::fs::remove_file(p);
        }
        self.shared.state.store(STOPPED, Ordering::SeqCst);
        self.shared.emit(
            ServerEvent::new("server_stop", Level::Info)
                .with("bind_address", self.shared.bind_address.as_str())
                .with("message", "Stopped."),
        );
        let (m, c) = &self.done;
        if let Ok(mut d) = m.lock() {
            *d = true;
        }
        c.notify_all();
    }

    /// [`drain`](Self::drain) with the configured drain timeout.
    pub fn stop(&self) {
        self.drain(self.shared.opts.drain_timeout);
    }

    /// Blocks until the server has stopped.
    pub fn wait(&self) {
        let (m, c) = &self.done;
        let mut d = m.lock().unwrap_or_else(|p| p.into_inner());
        while !*d {
            d = c.wait(d).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks until the server has stopped or `timeout` passed; true when stopped.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let (m, c) = &self.done;
        let d = m.lock().unwrap_or_else(|p| p.into_inner());
        let (d, _) = c
            .wait_timeout_while(d, timeout, |d| !*d)
            .unwrap_or_else(|p| p.into_inner());
        *d
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if !matches!(self.shared.state.load(Ordering::SeqCst), STOPPED) {
            self.drain(Duration::from_millis(0));
        }
    }
}

/// Removes a stale unix socket file before binding (only a socket, never a file).
pub(crate) fn remove_stale_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_socket() && std::os::unix::net::UnixStream::connect(path).is_err() {
            let _ = std::fs::remove_file(path);
        }
    }
}
