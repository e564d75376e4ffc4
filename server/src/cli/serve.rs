//! `igniter-ledger serve` and `igniter-ledger-server`: serve a ledger over TCP/unix
//! (legacy ops and wire envelopes) and HTTP, with the reference's flags (including the
//! nine `--changefeed-*`) and config keys. SIGTERM or SIGINT drains (up to
//! `--drain-timeout` seconds), then the ledger is closed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use igniter_ledger::changefeed::{AlertThresholds, BufferOptions, ClosePolicy, Overflow};
use igniter_ledger::{Durability, LedgerStore, OpenOptions};
use serde_json::Value as Json;

use crate::server::{
    EventSink, JsonLinesSink, Level, Server, ServerEvent, ServerOptions, DEFAULT_PORT,
};
use crate::sync::{PullFilter, StateDir, SyncConfig, SyncHandle};

/// The server's flags.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(
    after_help = "Examples:\n  igniter-ledger-server --backend file --path ledger.wal --http-port 7300\n  igniter-ledger serve ledger.wal --port 7400 --token \"$SECRET\"\n  igniter-ledger-server --transport unix --host /tmp/ledger.sock --backend file --path ledger.wal\n\n  igniter-ledger serve ledger.wal --http-port 7300 --sync-hub postgres://postgres@127.0.0.1/hub --sync-push --sync-pull=orders\n\nSIGTERM/SIGINT drain the server (up to --drain-timeout seconds), stop the sync (if any) and close the ledger."
)]
pub struct ServeArgs {
    /// The ledger's WAL file (implies --backend file).
    #[arg(value_name = "PATH")]
    pub positional: Option<PathBuf>,
    /// The ledger's WAL file (implies --backend file).
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// A JSON file with the reference's ServerConfig keys (host, port, transport,
    /// backend, path, log_level, pid_file, drain_timeout, max_connections, changefeed);
    /// flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to bind (the socket path with --transport unix) [default: 127.0.0.1].
    #[arg(long)]
    pub host: Option<String>,
    /// Port of the framed listener [default: 7400].
    #[arg(long)]
    pub port: Option<u16>,
    /// tcp or unix [default: tcp].
    #[arg(long)]
    pub transport: Option<String>,
    /// memory or file [default: file with a path, else memory].
    #[arg(long)]
    pub backend: Option<String>,
    /// debug, info, warn or error [default: info]. Logs are JSON lines on stderr.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Write the process id here while serving.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Seconds to let requests in flight finish on stop [default: 5].
    #[arg(long)]
    pub drain_timeout: Option<f64>,
    /// Also serve HTTP (routes, SSE, status page) on this port.
    #[arg(long)]
    pub http_port: Option<u16>,
    /// Also serve the framed protocol (wire envelopes, as the reference's TCPAdapter) on
    /// this port. The main port answers envelopes too.
    #[arg(long)]
    pub tcp_port: Option<u16>,
    /// Most framed connections at once [default: 1024].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Largest frame body in bytes [default: 16 MiB].
    #[arg(long)]
    pub max_frame_bytes: Option<usize>,
    /// Largest HTTP body in bytes [default: 16 MiB].
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// Close connections idle this many seconds (0: never) [default: never; the
    /// reference's NetworkBackend does not reconnect].
    #[arg(long)]
    pub idle_timeout: Option<f64>,
    /// A shared secret clients must present.
    #[arg(long, env = "IGNITER_LEDGER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// fsync, flush or none [default: fsync].
    #[arg(long)]
    pub durability: Option<String>,
    /// Changefeed ring size.
    #[arg(long)]
    pub changefeed_max_size: Option<usize>,
    /// Changefeed queue size per subscriber.
    #[arg(long)]
    pub changefeed_subscriber_queue_size: Option<usize>,
    /// Changefeed overflow policy (drop_oldest, drop_newest, ...).
    #[arg(long)]
    pub changefeed_overflow: Option<String>,
    /// Changefeed close policy (drain or discard).
    #[arg(long)]
    pub changefeed_close_policy: Option<String>,
    /// Changefeed diagnostic ring size.
    #[arg(long)]
    pub changefeed_diagnostic_ring_size: Option<usize>,
    /// Alert when this many events are queued.
    #[arg(long)]
    pub changefeed_alert_total_queued: Option<u64>,
    /// Alert when this many events were dropped by overflow.
    #[arg(long)]
    pub changefeed_alert_overflow_dropped_total: Option<u64>,
    /// Alert when this many subscribers failed.
    #[arg(long)]
    pub changefeed_alert_failed_total: Option<u64>,
    /// Alert when a subscriber queue is this full (0.0 to 1.0).
    #[arg(long)]
    pub changefeed_alert_queue_pressure_ratio: Option<f64>,
    /// Also sync the ledger with this PostgreSQL hub while serving
    /// (postgres://user@host:port/db; its schema is created if the database is empty).
    /// The sync's counters are the `sync` section of /v1/status; SIGTERM drains the
    /// server, pushes what is left (up to --drain-timeout), then stops the sync.
    #[arg(long, value_name = "URL")]
    pub sync_hub: Option<String>,
    /// With --sync-hub: push this ledger's facts to the hub.
    #[arg(long)]
    pub sync_push: bool,
    /// With --sync-hub: pull these stores from the hub (comma-separated, e.g.
    /// --sync-pull=orders,users; bare --sync-pull: every store).
    #[arg(long, num_args = 0.., value_delimiter = ',', value_name = "STORES")]
    pub sync_pull: Option<Vec<String>>,
    /// With --sync-hub: the sync state directory (node id, pull cursors, provenance)
    /// [default: PATH.sync beside the ledger file; in memory with --backend memory].
    #[arg(long, value_name = "DIR")]
    pub sync_state_dir: Option<PathBuf>,
}

/// `igniter-ledger-server`: the server binary's command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "igniter-ledger-server",
    version,
    about = "Serve an igniter-ledger over TCP/unix and HTTP"
)]
pub struct ServerCli {
    /// The flags.
    #[command(flatten)]
    pub args: ServeArgs,
}

fn cfg_str(c: &Json, k: &str) -> Option<String> {
    c.get(k).and_then(Json::as_str).map(str::to_owned)
}

/// The resolved options: (server options, backend, path, log level, tcp port, durability).
pub(crate) struct Plan {
    pub opts: ServerOptions,
    pub path: Option<PathBuf>,
    pub level: Level,
    pub tcp_port: Option<u16>,
    pub durability: Durability,
}

/// Resolves flags over the config file over the reference's defaults.
pub(crate) fn plan(a: &ServeArgs) -> Result<Plan, String> {
    let cfg: Json = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let v: Json = serde_json::from_str(&text)
                .map_err(|e| format!("{}: invalid JSON: {e}", p.display()))?;
            const KEYS: [&str; 14] = [
                "host",
                "port",
                "transport",
                "backend",
                "path",
                "log_io",
                "log_level",
                "pid_file",
                "drain_timeout",
                "max_connections",
                "changefeed",
                "http_port",
                "tcp_port",
                "token",
            ];
            if let Some(o) = v.as_object() {
                if let Some(k) = o.keys().find(|k| !KEYS.contains(&k.as_str())) {
                    return Err(format!(
                        "{}: unknown config key {k:?} (known: {})",
                        p.display(),
                        KEYS.join(", ")
                    ));
                }
            } else {
                return Err(format!("{}: must hold a JSON object", p.display()));
            }
            v
        }
        None => Json::Null,
    };
    let path = match (&a.positional, &a.path) {
        (Some(x), Some(y)) if x != y => {
            return Err("give the ledger path once (positional or --path)".into())
        }
        (Some(x), _) | (None, Some(x)) => Some(x.clone()),
        (None, None) => cfg_str(&cfg, "path").map(PathBuf::from),
    };
    let backend = a
        .backend
        .clone()
        .or(cfg_str(&cfg, "backend"))
        .unwrap_or_else(|| if path.is_some() { "file" } else { "memory" }.into());
    let path = match backend.as_str() {
        "memory" => None,
        "file" => Some(path.ok_or("--backend file needs --path")?),
        other => return Err(format!("--backend must be memory or file, got {other:?}")),
    };
    let transport = a
        .transport
        .clone()
        .or(cfg_str(&cfg, "transport"))
        .unwrap_or_else(|| "tcp".into());
    let host = a
        .host
        .clone()
        .or(cfg_str(&cfg, "host"))
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = a
        .port
        .or(cfg.get("port").and_then(Json::as_u64).map(|p| p as u16))
        .unwrap_or(DEFAULT_PORT);
    let mut opts = match transport.as_str() {
        "tcp" => ServerOptions::tcp(join(&host, port)),
        "unix" => ServerOptions::unix(&host),
        other => return Err(format!("--transport must be tcp or unix, got {other:?}")),
    };
    let http_host = if transport == "unix" {
        "127.0.0.1".to_owned()
    } else {
        host.clone()
    };
    if let Some(p) = a.http_port.or(cfg
        .get("http_port")
        .and_then(Json::as_u64)
        .map(|p| p as u16))
    {
        opts = opts.http(join(&http_host, p));
    }
    let level_name = a
        .log_level
        .clone()
        .or(cfg_str(&cfg, "log_level"))
        .unwrap_or_else(|| "info".into());
    let level = Level::parse(&level_name).ok_or_else(|| {
        format!("--log-level must be debug, info, warn or error, got {level_name:?}")
    })?;
    if let Some(p) = a
        .pid_file
        .clone()
        .or(cfg_str(&cfg, "pid_file").map(PathBuf::from))
    {
        opts = opts.pid_file(p);
    }
    let drain = a
        .drain_timeout
        .or(cfg.get("drain_timeout").and_then(Json::as_f64))
        .unwrap_or(5.0);
    if !(drain.is_finite() && drain >= 0.0) {
        return Err("--drain-timeout must be a non-negative number of seconds".into());
    }
    opts = opts.drain_timeout(Duration::from_secs_f64(drain));
    if let Some(n) = a.max_connections.or(cfg
        .get("max_connections")
        .and_then(Json::as_u64)
        .map(|n| n as usize))
    {
        if n == 0 {
            return Err("--max-connections must be positive".into());
        }
        opts = opts.max_connections(n);
    }
    if let Some(n) = a.max_frame_bytes {
        opts = opts.max_frame_bytes(n);
    }
    if let Some(n) = a.max_body_bytes {
        opts = opts.max_body_bytes(n);
    }
    if let Some(s) = a.idle_timeout {
        if !(s.is_finite() && s >= 0.0) {
            return Err("--idle-timeout must be a non-negative number of seconds".into());
        }
        opts = opts.idle_timeout((s > 0.0).then(|| Duration::from_secs_f64(s)));
    }
    if let Some(t) = a.token.clone().or(cfg_str(&cfg, "token")) {
        if t.is_empty() {
            return Err("--token must not be empty".into());
        }
        opts = opts.token(t);
    }
    opts = opts.backend_name(backend);
    if let Some(cf) = changefeed(a, cfg.get("changefeed"))? {
        opts = opts.changefeed(cf);
    }
    let durability = Durability::parse(a.durability.as_deref().unwrap_or("fsync"))
        .map_err(|e| format!("--durability: {e}"))?;
    Ok(Plan {
        opts,
        path,
        level,
        tcp_port: a
            .tcp_port
            .or(cfg.get("tcp_port").and_then(Json::as_u64).map(|p| p as u16)),
        durability,
    })
}

fn join(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn changefeed(a: &ServeArgs, cfg: Option<&Json>) -> Result<Option<BufferOptions>, String> {
    let c = cfg.cloned().unwrap_or(Json::Null);
    let get_u =
        |flag: Option<usize>, k: &str| flag.or(c.get(k).and_then(Json::as_u64).map(|n| n as usize));
    let th = c.get("alert_thresholds").cloned().unwrap_or(Json::Null);
    let get_t = |flag: Option<u64>, k: &str| flag.or(th.get(k).and_then(Json::as_u64));
    let any = a.changefeed_max_size.is_some()
        || a.changefeed_subscriber_queue_size.is_some()
        || a.changefeed_overflow.is_some()
        || a.changefeed_close_policy.is_some()
        || a.changefeed_diagnostic_ring_size.is_some()
        || a.changefeed_alert_total_queued.is_some()
        || a.changefeed_alert_overflow_dropped_total.is_some()
        || a.changefeed_alert_failed_total.is_some()
        || a.changefeed_alert_queue_pressure_ratio.is_some()
        || !c.is_null();
    if !any {
        return Ok(None);
    }
    let mut o = BufferOptions::default();
    if let Some(n) = get_u(a.changefeed_max_size, "max_size") {
        o.max_size = n;
    }
    if let Some(n) = get_u(a.changefeed_subscriber_queue_size, "subscriber_queue_size") {
        o.subscriber_queue_size = n;
    }
    if let Some(n) = get_u(a.changefeed_diagnostic_ring_size, "diagnostic_ring_size") {
        o.diagnostic_ring_size = n;
    }
    if let Some(s) = a.changefeed_overflow.clone().or(cfg_str(&c, "overflow")) {
        o.overflow = Some(Overflow::parse(&s).map_err(|e| format!("--changefeed-overflow: {e}"))?);
    }
    if let Some(s) = a
        .changefeed_close_policy
        .clone()
        .or(cfg_str(&c, "close_policy"))
    {
        o.close_policy =
            ClosePolicy::parse(&s).map_err(|e| format!("--changefeed-close-policy: {e}"))?;
    }
    let mut pairs: Vec<(&str, f64)> = Vec::new();
    for (k, v) in [
        (
            "total_queued",
            get_t(a.changefeed_alert_total_queued, "total_queued"),
        ),
        (
            "overflow_dropped_total",
            get_t(
                a.changefeed_alert_overflow_dropped_total,
                "overflow_dropped_total",
            ),
        ),
        (
            "failed_total",
            get_t(a.changefeed_alert_failed_total, "failed_total"),
        ),
    ] {
        if let Some(v) = v {
            pairs.push((k, v as f64));
        }
    }
    if let Some(r) = a
        .changefeed_alert_queue_pressure_ratio
        .or(th.get("queue_pressure_ratio").and_then(Json::as_f64))
    {
        pairs.push(("queue_pressure_ratio", r));
    }
    o.alert_thresholds =
        AlertThresholds::from_pairs(pairs).map_err(|e| format!("--changefeed-alert-*: {e}"))?;
    o.validate().map_err(|e| format!("--changefeed-*: {e}"))?;
    Ok(Some(o))
}

/// Serves until SIGTERM/SIGINT, then drains and closes the ledger.
pub fn run(a: ServeArgs) -> Result<(), String> {
    let plan = plan(&a)?;
    let ledger = match &plan.path {
        Some(p) => LedgerStore::open_with(p, OpenOptions::new().durability(plan.durability))
            .map_err(|e| format!("cannot open {}: {e}", p.display()))?,
        None => LedgerStore::memory(),
    };
    let sink = Arc::new(JsonLinesSink::new(std::io::stderr(), plan.level));
    let sync = match start_sync(&a, &plan, &ledger) {
        Ok(s) => s,
        Err(e) => {
            let _ = ledger.close();
            return Err(e);
        }
    };
    let mut opts = plan.opts.clone();
    if let Some(s) = &sync {
        opts = opts.status_section(Arc::new(s.monitor()));
        sink.event(
            &ServerEvent::new("sync_started", Level::Info)
                .with("node", s.node().to_string())
                .with("push", a.sync_push)
                .with("pull", a.sync_pull.clone()),
        );
    }
    let handle = match Server::start(ledger.clone(), opts, sink.clone()) {
        Ok(h) => h,
        Err(e) => {
            if let Some(s) = sync {
                let _ = s.stop();
            }
            let _ = ledger.close();
            return Err(e.to_string());
        }
    };
    let second = match plan.tcp_port {
        Some(p) => {
            let host = match &plan.opts.listen {
                crate::server::Listen::Tcp(a) => a
                    .rsplit_once(':')
                    .map_or("127.0.0.1".to_owned(), |(h, _)| h.to_owned()),
                crate::server::Listen::Unix(_) => "127.0.0.1".to_owned(),
            };
            let mut o = plan.opts.clone();
            o.listen =
                crate::server::Listen::Tcp(join(host.trim_matches(|c| c == '[' || c == ']'), p));
            o.http = None;
            o.pid_file = None;
            o.changefeed = None;
            Some(Server::start(ledger.clone(), o, sink.clone()).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    });
    if let Some(s) = &second {
        s.stop();
    }
    handle.stop();
    if let Some(s) = sync {
        // After the drain: no more writes come in, so the flush on stop pushes them all.
        let (status, r) = s.stop_with_status();
        let mut e = ServerEvent::new("sync_stopped", Level::Info)
            .with("pushed", status.pushed)
            .with("push_cursor", status.push_cursor)
            .with("pulled", status.pulled)
            .with("pull_cursor", status.pull_cursor)
            .with("reconnects", status.reconnects);
        if let Err(err) = &r {
            e = e.with("error", err.to_string());
        }
        sink.event(&e);
    }
    ledger
        .close()
        .map_err(|e| format!("closing the ledger: {e}"))
}

/// Starts the sync `--sync-hub` asks for (None without it).
fn start_sync(
    a: &ServeArgs,
    plan: &Plan,
    ledger: &LedgerStore,
) -> Result<Option<SyncHandle>, String> {
    let Some(hub) = &a.sync_hub else {
        if a.sync_push || a.sync_pull.is_some() || a.sync_state_dir.is_some() {
            return Err("--sync-push, --sync-pull and --sync-state-dir need --sync-hub".into());
        }
        return Ok(None);
    };
    if !a.sync_push && a.sync_pull.is_none() {
        return Err("--sync-hub needs --sync-push, --sync-pull or both".into());
    }
    let mut config = SyncConfig::new(hub.clone());
    config.push = a.sync_push;
    config.pull = a.sync_pull.as_ref().map(PullFilter::stores);
    config.state_dir = a
        .sync_state_dir
        .clone()
        .or_else(|| plan.path.as_deref().map(StateDir::beside));
    config.flush_on_stop = plan.opts.drain_timeout;
    SyncHandle::start(ledger.clone(), config)
        .map(Some)
        .map_err(|e| format!("--sync-hub: {e}"))
}
