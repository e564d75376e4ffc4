//! An HTTP listener whose requests are answered elsewhere: each request is queued for
//! the embedding process's threads ([`Bridge::next`]), which answer through its
//! [`Responder`] (status and headers, then body chunks: a streamed answer such as SSE
//! is sent chunk by chunk). The Ruby gem serves a Rack app with it
//! (`HTTPAdapter#start_async`): Ruby threads take requests and call the app; the
//! connections, HTTP parsing and limits are this server's (tokio and hyper), with the
//! same connection limit and header read timeout as the ledger server's HTTP listener.
//!
//! ```no_run
//! use igniter_ledger_server::server::bridge::{Bridge, BridgeOptions};
//! use std::time::Duration;
//!
//! let bridge = Bridge::start("127.0.0.1:0", BridgeOptions::default()).unwrap();
//! while let Some(req) = bridge.next(Duration::from_secs(1)) {
//!     let mut r = req.responder;
//!     r.start(200, vec![("content-type".into(), "text/plain".into())]);
//!     r.write(b"hello".to_vec());
//! }
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::{mpsc, oneshot, watch};

use super::ServerError;

/// How a bridge listens.
#[derive(Clone, Debug)]
pub struct BridgeOptions {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Most requests waiting for a handler (503 beyond).
    pub max_queued: usize,
    /// Runtime worker threads.
    pub worker_threads: usize,
}

impl Default for BridgeOptions {
    fn default() -> Self {
        BridgeOptions {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            max_body_bytes: 8 * 1024 * 1024,
            max_queued: 1024,
            worker_threads: 1,
        }
    }
}

type Head = (u16, Vec<(String, String)>);

/// Where one request's answer goes: [`start`](Self::start) once, then
/// [`write`](Self::write) body chunks; dropping it ends the answer (a 500 when it was
/// never started). Its methods block: call them from a thread outside the bridge's
/// runtime.
#[derive(Debug)]
pub struct Responder {
    head: Option<oneshot::Sender<Head>>,
    body: Option<mpsc::Sender<Vec<u8>>>,
}

impl Responder {
    /// Sends the status and headers. False when already started or the client is gone.
    pub fn start(&mut self, status: u16, headers: Vec<(String, String)>) -> bool {
        match self.head.take() {
            Some(h) => h.send((status, headers)).is_ok(),
            None => false,
        }
    }

    /// Sends one body chunk (waiting while the client reads slowly). False when the
    /// client is gone or the answer was finished.
    pub fn write(&mut self, chunk: Vec<u8>) -> bool {
        if self.head.is_some() {
            return false;
        }
        match &self.body {
            Some(b) => b.blocking_send(chunk).is_ok(),
            None => false,
        }
    }

    /// Ends the answer.
    pub fn finish(&mut self) {
        self.head = None;
        self.body = None;
    }

    /// True while the client still waits for this answer's body.
    pub fn open(&self) -> bool {
        self.body.as_ref().is_some_and(|b| !b.is_closed())
    }
}

/// One request for the handler.
#[derive(Debug)]
pub struct BridgeRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path (no query).
    pub path: String,
    /// The query string (no `?`; empty when none).
    pub query: String,
    /// The headers, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
    /// The peer's address.
    pub remote: String,
    /// Where the answer goes.
    pub responder: Responder,
}

#[derive(Default)]
struct Queue {
    items: Mutex<(VecDeque<BridgeRequest>, bool)>,
    ready: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, (VecDeque<BridgeRequest>, bool)> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Ctx {
    queue: Arc<Queue>,
    opts: BridgeOptions,
}

/// A running bridge. See the module docs.
pub struct Bridge {
    queue: Arc<Queue>,
    addr: SocketAddr,
    drain: watch::Sender<bool>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").field("addr", &self.addr).finish()
    }
}

impl Bridge {
    /// Binds `addr` (`host:port`) before returning, and serves on a runtime of its own.
    pub fn start(addr: &str, opts: BridgeOptions) -> Result<Bridge, ServerError> {
        if opts.max_connections == 0 || opts.max_body_bytes == 0 || opts.max_queued == 0 {
            return Err(ServerError::Invalid(
                "max_connections, max_body_bytes and max_queued must be positive".into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.worker_threads.max(1))
            .thread_name("igniter-ledger-http")
            .enable_all()
            .build()
            .map_err(ServerError::Io)?;
        let l = std::net::TcpListener::bind(addr).map_err(|e| ServerError::Bind {
            addr: addr.to_owned(),
            source: e,
        })?;
        let bound = l.local_addr().map_err(ServerError::Io)?;
        l.set_nonblocking(true).map_err(ServerError::Io)?;
        let queue = Arc::new(Queue::default());
        let (drain, rx) = watch::channel(false);
        let ctx = Arc::new(Ctx {
            queue: queue.clone(),
            opts: opts.clone(),
        });
        let app = Router::new().fallback(handle).with_state(ctx);
        {
            let _guard = runtime.enter();
            let l = tokio::net::TcpListener::from_std(l).map_err(ServerError::Io)?;
            runtime.spawn(super::http::serve_router(
                app,
                l,
                rx,
                opts.max_connections,
                opts.header_read_timeout,
                |_| {},
            ));
        }
        Ok(Bridge {
            queue,
            addr: bound,
            drain,
            runtime: Mutex::new(Some(runtime)),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next request, waiting up to `timeout`; None when none came or the bridge
    /// stopped (see [`stopped`](Self::stopped)).
    pub fn next(&self, timeout: Duration) -> Option<BridgeRequest> {
        let mut g = self.queue.lock();
        if g.0.is_empty() && !g.1 {
            g = self
                .queue
                .ready
                .wait_timeout(g, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        g.0.pop_front()
    }

    /// True once [`stop`](Self::stop) ran.
    pub fn stopped(&self) -> bool {
        self.queue.lock().1
    }

    /// Stops listening, refuses queued requests (503), lets answers in progress finish
    /// for up to `timeout`, then ends every connection.
    pub fn stop(&self, timeout: Duration) {
        let left: Vec<BridgeRequest> = {
            let mut g = self.queue.lock();
            g.1 = true;
            g.0.drain(..).collect()
        };
        self.queue.ready.notify_all();
        for mut r in left {
            r.responder.start(503, Vec::new());
        }
        let _ = self.drain.send(true);
        if let Some(rt) = self.runtime.lock().ok().and_then(|mut r| r.take()) {
            rt.shutdown_timeout(timeout);
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop(Duration::from_millis(0));
    }
}

fn plain(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        serde_json::json!({ "error": msg }).to_string(),
    )
        .into_response()
}

async fn handle(State(ctx): State<Arc<Ctx>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match declared {
        Some(n) if n > ctx.opts.max_body_bytes as u64 => Err(()),
        _ => axum::body::to_bytes(body, ctx.opts.max_body_bytes)
            .await
            .map_err(|_| ()),
    };
    let body = match body {
        Ok(b) => b.to_vec(),
        Err(_) => {
            let mut r = plain(StatusCode::PAYLOAD_TOO_LARGE, "payload too large");
            r.headers_mut().insert(
                axum::http::header::CONNECTION,
                HeaderValue::from_static("close"),
            );
            return r;
        }
    };
    let (head_tx, head_rx) = oneshot::channel();
    let (body_tx, body_rx) = mpsc::channel::<Vec<u8>>(16);
    let remote = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let request = BridgeRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        remote,
        responder: Responder {
            head: Some(head_tx),
            body: Some(body_tx),
        },
    };
    {
        let mut g = ctx.queue.lock();
        if g.1 {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "stopping");
        }
        if g.0.len() >= ctx.opts.max_queued {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "too many requests waiting");
        }
        g.0.push_back(request);
    }
    ctx.queue.ready.notify_one();
    let Ok((status, headers)) = head_rx.await else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "no answer");
    };
    let stream = futures_util::stream::unfold(body_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    for (k, v) in headers {
        // Framing is hyper's: a length the handler computed is dropped (chunked).
        if k.eq_ignore_ascii_case("content-length")
            || k.eq_ignore_ascii_case("transfer-encoding")
            || k.eq_ignore_ascii_case("connection")
        {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.append(k, v);
        }
    }
    resp
}
