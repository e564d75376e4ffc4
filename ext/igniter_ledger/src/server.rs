//! The Rust ledger server inside the Ruby process: `Igniter::Ledger::NativeServer`, over
//! `igniter_ledger_server::server` (tokio). The Ruby class `NativeStoreServer`
//! (`lib/igniter/ledger/server/native_server.rb`) gives it the reference's lifecycle; it
//! is `StoreServer`'s default engine.
//!
//! The server serves a Ruby `LedgerStore`'s core ledger (and answers envelopes with the
//! store's protocol interpreter), so the store's Ruby side and the network see one
//! ledger. Ruby is never called from a server thread:
//! - while the store holds no Ruby callback (derivation rules, consumers, coercion
//!   blocks: its callback list is empty), requests run on the server's threads and the
//!   GVL is never needed;
//! - once it holds one, each request's ledger work is queued to a Ruby thread
//!   (`_host_run`, looped by `NativeStoreServer`), which waits with the GVL released and
//!   runs the work with the GVL, so the core calls the Ruby callbacks on a Ruby thread;
//! - the same Ruby thread answers the remote store's `call` op (Ruby's type-faithful
//!   `RemoteCalls`) through a handler block.
//!
//! Server events go to a bounded queue that another Ruby thread drains with
//! `_next_events` and hands to the Ruby `ServerLogger`. Every call that may wait (start,
//! drain, stop, waiting for events or work) releases the GVL.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use igniter_ledger::changefeed::{AlertThresholds, BufferOptions, ClosePolicy, Overflow};
use igniter_ledger_server::server::{
    EventSink, Host, HostJob, HostReply, Server, ServerEvent, ServerHandle, ServerOptions,
};
use magnus::{prelude::*, value::Opaque, Error, RModule, Ruby, Value as RValue};
use serde_json::Value as Json;

use crate::changefeed::BufferObj;
use crate::protocol::ProtocolObj;
use crate::store::{lock, StoreObj};
use crate::{callbacks, errors, gvl};

/// The most events kept while no Ruby thread drains them (the oldest are dropped).
const EVENT_QUEUE_CAP: usize = 10_000;

/// Events waiting for the Ruby thread, and a signal for it.
#[derive(Default)]
struct EventQueue {
    items: Mutex<(VecDeque<String>, u64)>,
    ready: Condvar,
}

impl EventQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<String>, u64)> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `timeout` for events; takes them all.
    fn take(&self, timeout: Duration) -> Vec<String> {
        let mut g = self.lock();
        if g.0.is_empty() {
            g = self
                .ready
                .wait_timeout(g, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        g.0.drain(..).collect()
    }
}

/// The sink the server calls from its threads: JSON lines into the queue.
struct QueueSink(Arc<EventQueue>);

impl EventSink for QueueSink {
    fn event(&self, e: &ServerEvent) {
        let line = e.to_json().to_string();
        let mut g = self.0.lock();
        if g.0.len() >= EVENT_QUEUE_CAP {
            g.0.pop_front();
            g.1 += 1;
        }
        g.0.push_back(line);
        drop(g);
        self.0.ready.notify_one();
    }
}

/// One piece of work for the Ruby thread.
enum Work {
    /// Ledger work, run with the GVL.
    Job(HostJob),
    /// A `call` request for the handler block, and where its answer goes.
    Op(Json, HostReply),
}

/// The server's [`Host`]: work queued for the Ruby thread that loops `_host_run`.
struct HostQueue {
    /// Queued work, and whether the queue is closed (the server stopped).
    items: Mutex<(VecDeque<Work>, bool)>,
    ready: Condvar,
    /// The served store's list of Ruby callbacks: work needs Ruby once it is not empty.
    callbacks: Arc<Mutex<Vec<Opaque<RValue>>>>,
}

impl HostQueue {
    fn push(&self, w: Work) -> bool {
        let mut g = lock(&self.items);
        if g.1 {
            return false;
        }
        g.0.push_back(w);
        drop(g);
        self.ready.notify_one();
        true
    }

    /// Waits up to `timeout` for work; takes it all.
    fn take(&self, timeout: Duration) -> Vec<Work> {
        let mut g = lock(&self.items);
        if g.0.is_empty() && !g.1 {
            g = self
                .ready
                .wait_timeout(g, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        g.0.drain(..).collect()
    }

    /// Refuses new work and drops what is queued (its requests answer an error).
    fn close(&self) -> Vec<Work> {
        let mut g = lock(&self.items);
        g.1 = true;
        let left = g.0.drain(..).collect();
        drop(g);
        self.ready.notify_all();
        left
    }
}

impl Host for HostQueue {
    fn needed(&self) -> bool {
        !lock(&self.callbacks).is_empty()
    }

    fn submit(&self, job: HostJob) -> bool {
        self.push(Work::Job(job))
    }

    fn answers(&self, op: &str) -> bool {
        op == "call"
    }

    fn submit_op(&self, request: Json, reply: HostReply) -> bool {
        self.push(Work::Op(request, reply))
    }
}

/// The data behind a `NativeServer` object.
#[magnus::wrap(class = "Igniter::Ledger::NativeServer", free_immediately, size)]
struct NativeServer {
    handle: Arc<ServerHandle>,
    events: Arc<EventQueue>,
    host: Arc<HostQueue>,
}

fn bad(ruby: &Ruby, msg: impl Into<String>) -> Error {
    Error::new(ruby.exception_arg_error(), msg.into())
}

fn secs(v: &Json) -> Option<Duration> {
    v.as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn usize_of(v: &Json) -> Option<usize> {
    v.as_u64().and_then(|n| usize::try_from(n).ok())
}

/// The changefeed options from `{max_size:, subscriber_queue_size:, overflow:,
/// close_policy:, diagnostic_ring_size:, alert_thresholds: {}}`.
fn buffer_options(ruby: &Ruby, cf: &Json) -> Result<BufferOptions, Error> {
    let mut o = BufferOptions::default();
    let Some(m) = cf.as_object() else {
        return Ok(o);
    };
    if let Some(v) = m.get("max_size").and_then(usize_of) {
        o.max_size = v;
    }
    if let Some(v) = m.get("subscriber_queue_size").and_then(usize_of) {
        o.subscriber_queue_size = v;
    }
    if let Some(v) = m.get("diagnostic_ring_size").and_then(usize_of) {
        o.diagnostic_ring_size = v;
    }
    if let Some(v) = m.get("overflow").and_then(Json::as_str) {
        o.overflow = Some(Overflow::parse(v).map_err(|e| bad(ruby, e.to_string()))?);
    }
    if let Some(v) = m.get("close_policy").and_then(Json::as_str) {
        o.close_policy = ClosePolicy::parse(v).map_err(|e| bad(ruby, e.to_string()))?;
    }
    if let Some(t) = m.get("alert_thresholds").and_then(Json::as_object) {
        let pairs: Vec<(String, f64)> = t
            .iter()
            .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
            .collect();
        o.alert_thresholds =
            AlertThresholds::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(|e| bad(ruby, e.to_string()))?;
    }
    Ok(o)
}

/// `NativeServer._start(options_json, store, protocol)`: serves `store`'s ledger (a
/// `LedgerStore`), answering envelopes with `protocol` (its `Protocol::Interpreter`, or
/// nil for a new one), bound before it returns. Options: `transport` ("tcp"|"unix"),
/// `address`, `http`, `token`, `max_connections`, `max_frame_bytes`, `max_body_bytes`,
/// `max_http_connections`, `idle_timeout`, `slow_timeout`, `header_read_timeout`,
/// `drain_timeout` (seconds), `pid_file`, `backend` (the name health reports),
/// `changefeed` (a Hash: attach a buffer with these options).
fn start(
    ruby: &Ruby,
    options: String,
    store: &StoreObj,
    protocol: Option<&ProtocolObj>,
) -> Result<NativeServer, Error> {
    let o: Json = serde_json::from_str(&options).map_err(|e| bad(ruby, e.to_string()))?;
    let s = |k: &str| o.get(k).and_then(Json::as_str).map(str::to_owned);
    let address = s("address").ok_or_else(|| bad(ruby, "address is required"))?;
    let mut opts = if s("transport").as_deref() == Some("unix") {
        ServerOptions::unix(address)
    } else {
        ServerOptions::tcp(address)
    };
    if let Some(h) = s("http") {
        opts = opts.http(h);
    }
    if let Some(t) = s("token") {
        opts = opts.token(t);
    }
    if let Some(n) = o.get("max_connections").and_then(usize_of) {
        opts = opts.max_connections(n);
    }
    if let Some(n) = o.get("max_frame_bytes").and_then(usize_of) {
        opts = opts.max_frame_bytes(n);
    }
    if let Some(n) = o.get("max_body_bytes").and_then(usize_of) {
        opts = opts.max_body_bytes(n);
    }
    if let Some(n) = o.get("max_http_connections").and_then(usize_of) {
        opts = opts.max_http_connections(n);
    }
    if let Some(v) = o.get("idle_timeout") {
        opts = opts.idle_timeout(secs(v));
    }
    if let Some(d) = o.get("slow_timeout").and_then(secs) {
        opts = opts.slow_timeout(d);
    }
    if let Some(d) = o.get("header_read_timeout").and_then(secs) {
        opts = opts.header_read_timeout(d);
    }
    if let Some(d) = o.get("drain_timeout").and_then(secs) {
        opts = opts.drain_timeout(d);
    }
    if let Some(p) = s("pid_file") {
        opts = opts.pid_file(p);
    }
    if let Some(cf) = o.get("changefeed").filter(|v| v.is_object()) {
        opts = opts.changefeed(buffer_options(ruby, cf)?);
    }
    if let Some(b) = s("backend") {
        opts = opts.backend_name(b);
    }
    store.check_open(ruby)?;
    if let Some(p) = protocol {
        opts = opts.interpreter(p.interpreter());
    }
    let host = Arc::new(HostQueue {
        items: Mutex::new((VecDeque::new(), false)),
        ready: Condvar::new(),
        callbacks: store.callback_list(),
    });
    opts = opts.host(host.clone());
    let ledger = store.ledger().clone();
    let events = Arc::new(EventQueue::default());
    let sink = Arc::new(QueueSink(events.clone()));
    let started = gvl::without_gvl(move || Server::start(ledger, opts, sink))
        .map_err(|m| errors::internal(ruby, "NativeServer.start", m))?;
    let handle = started.map_err(|e| {
        Error::new(
            ruby.exception_runtime_error(),
            format!("ledger server: {e}"),
        )
    })?;
    Ok(NativeServer {
        handle: Arc::new(handle),
        events,
        host,
    })
}

impl NativeServer {
    fn bind_address(&self) -> String {
        self.handle.bind_address().to_owned()
    }

    fn port(&self) -> Option<u16> {
        self.handle.local_addr().map(|a| a.port())
    }

    fn http_port(&self) -> Option<u16> {
        self.handle.http_addr().map(|a| a.port())
    }

    fn health_json(&self) -> String {
        serde_json::to_string(&self.handle.health()).unwrap_or_default()
    }

    fn metrics_json(&self) -> String {
        serde_json::to_string(&self.handle.metrics()).unwrap_or_default()
    }

    fn metrics_prometheus(&self) -> String {
        self.handle.metrics().to_prometheus()
    }

    fn status_json(&self) -> String {
        self.handle.status().to_string()
    }

    fn recent_events_json(&self) -> String {
        Json::Array(self.handle.recent_events()).to_string()
    }

    fn fact_count(&self) -> u64 {
        self.handle.ledger().fact_count() as u64
    }

    fn active_connections(&self) -> usize {
        self.handle.active_connections()
    }

    fn subscription_count(&self, store: String) -> usize {
        self.handle.subscription_count(&store)
    }

    fn stream_count(&self) -> usize {
        self.handle.stream_count()
    }

    fn is_ready(&self) -> bool {
        self.handle.is_ready()
    }

    fn is_draining(&self) -> bool {
        self.handle.is_draining()
    }

    /// Refuses new connections, lets requests in flight finish (up to `timeout`
    /// seconds), stops, and closes the work queue. The store stays open (its owner
    /// closes it). GVL released: the Ruby thread running `_host_run` finishes the work in
    /// flight meanwhile.
    fn drain(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<(), Error> {
        let d = Duration::from_secs_f64(timeout.max(0.0));
        let h = rb_self.handle.clone();
        gvl::without_gvl(move || h.drain(d)).map_err(|m| errors::internal(ruby, "drain", m))?;
        drop(rb_self.host.close());
        Ok(())
    }

    /// Stops, draining for the configured drain timeout (see `_drain`). GVL released.
    fn stop(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        let h = rb_self.handle.clone();
        gvl::without_gvl(move || h.stop()).map_err(|m| errors::internal(ruby, "stop", m))?;
        drop(rb_self.host.close());
        Ok(())
    }

    /// `_host_run(handler, timeout)`: runs the work the server queued for Ruby, waiting
    /// up to `timeout` seconds for some (GVL released while waiting). Ledger work runs
    /// with the GVL; a `call` request is answered by `handler.call(request_json)` (a JSON
    /// String in, a JSON String out). False once the server has stopped.
    fn host_run(ruby: &Ruby, rb_self: &Self, handler: RValue, timeout: f64) -> Result<bool, Error> {
        let q = rb_self.host.clone();
        let d = Duration::from_secs_f64(timeout.clamp(0.0, 5.0));
        let work = gvl::without_gvl(move || q.take(d))
            .map_err(|m| errors::internal(ruby, "host_run", m))?;
        for w in work {
            match w {
                Work::Job(job) => {
                    // A panic inside drops the job's answer channel: the request answers
                    // an internal error.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    // An Interrupt or the like a rule raised: the write stood; re-raised
                    // here it would end the server's Ruby thread, so it is reported.
                    if let Err(e) = callbacks::raise_deferred() {
                        ruby.warning(&format!(
                            "igniter-ledger server: a rule raised {e} while serving a request"
                        ));
                    }
                }
                Work::Op(req, reply) => {
                    let answer = match handler.funcall::<_, _, String>("call", (req.to_string(),)) {
                        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                            serde_json::json!({"ok": false, "error_code": "internal_error",
                                               "error": format!("bad answer: {e}")})
                        }),
                        Err(e) => serde_json::json!({"ok": false, "error_code": "internal_error",
                                                     "error": e.to_string()}),
                    };
                    reply(answer);
                }
            }
        }
        Ok(!lock(&rb_self.host.items).1)
    }

    /// `_serve_http(address)`: starts the HTTP listener ("host:port") on the running
    /// server; answers its port.
    fn serve_http(ruby: &Ruby, rb_self: &Self, address: String) -> Result<u16, Error> {
        let h = rb_self.handle.clone();
        let bound = gvl::without_gvl(move || h.serve_http(&address))
            .map_err(|m| errors::internal(ruby, "serve_http", m))?;
        bound.map(|a| a.port()).map_err(|e| {
            Error::new(
                ruby.exception_runtime_error(),
                format!("ledger server: {e}"),
            )
        })
    }

    /// The events since the last call, waiting up to `timeout` seconds for one (GVL
    /// released), as JSON strings.
    fn next_events(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<Vec<String>, Error> {
        let q = rb_self.events.clone();
        let d = Duration::from_secs_f64(timeout.clamp(0.0, 5.0));
        gvl::without_gvl(move || q.take(d)).map_err(|m| errors::internal(ruby, "next_events", m))
    }

    /// The server's changefeed as a `ChangefeedBuffer` (snapshot, subscribe, replay
    /// from Ruby), or nil.
    fn changefeed(ruby: &Ruby, rb_self: &Self) -> Option<magnus::typed_data::Obj<BufferObj>> {
        rb_self
            .handle
            .changefeed()
            .map(|c| ruby.obj_wrap(BufferObj::from_buffer(c.clone())))
    }

    /// Events dropped because the queue was full.
    fn dropped_events(&self) -> u64 {
        self.events.lock().1
    }
}

/// Defines `Igniter::Ledger::NativeServer`.
pub fn init(ruby: &Ruby, ledger: RModule) -> Result<(), Error> {
    use magnus::{function, method};
    let class = ledger.define_class("NativeServer", ruby.class_object())?;
    class.undef_default_alloc_func();
    class.define_singleton_method("_start", function!(start, 3))?;
    class.define_method("bind_address", method!(NativeServer::bind_address, 0))?;
    class.define_method("port", method!(NativeServer::port, 0))?;
    class.define_method("http_port", method!(NativeServer::http_port, 0))?;
    class.define_method("health_json", method!(NativeServer::health_json, 0))?;
    class.define_method("metrics_json", method!(NativeServer::metrics_json, 0))?;
    class.define_method(
        "metrics_prometheus",
        method!(NativeServer::metrics_prometheus, 0),
    )?;
    class.define_method("status_json", method!(NativeServer::status_json, 0))?;
    class.define_method(
        "recent_events_json",
        method!(NativeServer::recent_events_json, 0),
    )?;
    class.define_method("fact_count", method!(NativeServer::fact_count, 0))?;
    class.define_method(
        "active_connections",
        method!(NativeServer::active_connections, 0),
    )?;
    class.define_method(
        "subscription_count",
        method!(NativeServer::subscription_count, 1),
    )?;
    class.define_method("ready?", method!(NativeServer::is_ready, 0))?;
    class.define_method("stream_count", method!(NativeServer::stream_count, 0))?;
    class.define_method("draining?", method!(NativeServer::is_draining, 0))?;
    class.define_method("_drain", method!(NativeServer::drain, 1))?;
    class.define_method("_stop", method!(NativeServer::stop, 0))?;
    class.define_method("_next_events", method!(NativeServer::next_events, 1))?;
    class.define_method("_host_run", method!(NativeServer::host_run, 2))?;
    class.define_method("_serve_http", method!(NativeServer::serve_http, 1))?;
    class.define_method("dropped_events", method!(NativeServer::dropped_events, 0))?;
    class.define_method("changefeed", method!(NativeServer::changefeed, 0))?;
    Ok(())
}
