//! The framed listener: accepting, limits, and one task per connection.
//!
//! Per connection: frames are read with the idle timeout before a frame's first byte
//! and the slow-client timeout for the rest of it; each request is answered on a
//! blocking thread (ledger writes may fsync); the answer is written within the
//! slow-client timeout. A frame that is too large, fails its CRC, is not JSON, nests
//! too deeply or is not an object gets one error frame and the connection is closed.
//! While draining, a connection closes as soon as it is between requests.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value as Json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;

use super::events::{Level, ServerEvent};
use super::frame::{self, FrameError};
use super::legacy::{self, fact_json};
use super::{Listen, ServerError, Shared};

/// A bound framed listener (std, before the runtime takes it).
pub(crate) enum Bound {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener, std::path::PathBuf),
}

/// A framed listener in the runtime.
pub(crate) enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

pub(crate) fn bind(l: &Listen) -> Result<Bound, ServerError> {
    match l {
        Listen::Tcp(a) => {
            std::net::TcpListener::bind(a)
                .map(Bound::Tcp)
                .map_err(|e| ServerError::Bind {
                    addr: a.clone(),
                    source: e,
                })
        }
        Listen::Unix(p) => {
            super::remove_stale_socket(p);
            std::os::unix::net::UnixListener::bind(p)
                .map(|l| Bound::Unix(l, p.clone()))
                .map_err(|e| ServerError::Bind {
                    addr: p.display().to_string(),
                    source: e,
                })
        }
    }
}

impl Bound {
    pub(crate) fn address(&self) -> String {
        match self {
            Bound::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "?".into()),
            Bound::Unix(_, p) => p.display().to_string(),
        }
    }
    pub(crate) fn transport(&self) -> &'static str {
        match self {
            Bound::Tcp(_) => "tcp",
            Bound::Unix(..) => "unix",
        }
    }
    /// Call inside the runtime.
    pub(crate) fn into_tokio(self) -> Result<Listener, ServerError> {
        Ok(match self {
            Bound::Tcp(l) => {
                l.set_nonblocking(true).map_err(ServerError::Io)?;
                Listener::Tcp(tokio::net::TcpListener::from_std(l).map_err(ServerError::Io)?)
            }
            Bound::Unix(l, _) => {
                l.set_nonblocking(true).map_err(ServerError::Io)?;
                Listener::Unix(tokio::net::UnixListener::from_std(l).map_err(ServerError::Io)?)
            }
        })
    }
}

/// Accepts until the drain signal; the listener is dropped (closed) when this returns.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: Listener) {
    let mut drain = shared.drain.subscribe();
    loop {
        tokio::select! {
            _ = drain.changed() => break,
            r = accept(&listener) => match r {
                Ok(Accepted::Tcp(s, peer)) => {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(serve(shared.clone(), s, peer));
                }
                Ok(Accepted::Unix(s)) => {
                    tokio::spawn(serve(shared.clone(), s, "unix".to_owned()));
                }
                Err(e) => {
                    shared.emit(ServerEvent::new("accept_error", Level::Warn).with("error", e.to_string()));
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream, String),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &Listener) -> std::io::Result<Accepted> {
    match l {
        Listener::Tcp(l) => l
            .accept()
            .await
            .map(|(s, a)| Accepted::Tcp(s, a.to_string())),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

/// The depth of the deepest array or object in `v` (a scalar is 0).
pub fn nesting(v: &Json) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Json::Array(a) => {
                max = max.max(d + 1);
                stack.extend(a.iter().map(|x| (x, d + 1)));
            }
            Json::Object(o) => {
                max = max.max(d + 1);
                stack.extend(o.values().map(|x| (x, d + 1)));
            }
            _ => {}
        }
    }
    max
}

/// Parses a request body under the limits; the error is the message to answer.
pub fn parse_request(body: &[u8], max_nesting: usize) -> Result<Json, String> {
    // serde_json refuses nesting past 128 levels by itself (no stack overflow).
    let v: Json = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    if nesting(&v) > max_nesting {
        return Err(format!("request nests deeper than {max_nesting} levels"));
    }
    if !v.is_object() {
        return Err("request must be a JSON object".to_owned());
    }
    Ok(v)
}

enum Next {
    Frame(Vec<u8>),
    Eof,
    Idle,
    Drain,
    Bad(FrameError),
    Io(std::io::Error),
}

async fn next_frame<R: AsyncRead + Unpin>(
    shared: &Shared,
    r: &mut R,
    drain: &mut tokio::sync::watch::Receiver<bool>,
) -> Next {
    let mut first = [0u8; 1];
    let idle = async {
        match shared.opts.idle_timeout {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    if *drain.borrow() {
        return Next::Drain;
    }
    let n = tokio::select! {
        n = r.read(&mut first) => n,
        _ = idle => return Next::Idle,
        _ = drain.changed() => return Next::Drain,
    };
    match n {
        Ok(0) => return Next::Eof,
        Ok(_) => {}
        Err(e) => return Next::Io(e),
    }
    let rest = async {
        let mut head = [first[0], 0, 0, 0];
        r.read_exact(&mut head[1..]).await?;
        let len = u32::from_be_bytes(head) as usize;
        if len > shared.opts.max_frame_bytes {
            return Ok::<_, std::io::Error>(Err(FrameError::TooLarge {
                declared: len,
                limit: shared.opts.max_frame_bytes,
            }));
        }
        let mut buf = vec![0u8; len + 4];
        r.read_exact(&mut buf).await?;
        let mut whole = head.to_vec();
        whole.extend_from_slice(&buf);
        Ok::<_, std::io::Error>(match frame::decode(&whole, shared.opts.max_frame_bytes) {
            Ok(Some((body, _))) => Ok(body.to_vec()),
            Ok(None) => Err(FrameError::Truncated),
            Err(e) => Err(e),
        })
    };
    match tokio::time::timeout(shared.opts.slow_timeout, rest).await {
        Err(_) => Next::Bad(FrameError::Slow),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Next::Bad(FrameError::Truncated)
        }
        Ok(Err(e)) => Next::Io(e),
        Ok(Ok(Ok(body))) => Next::Frame(body),
        Ok(Ok(Err(e))) => Next::Bad(e),
    }
}

async fn send<W: AsyncWrite + Unpin>(
    shared: &Shared,
    w: &mut W,
    answer: &Json,
) -> Result<usize, ()> {
    let f = frame::encode(answer.to_string().as_bytes());
    match tokio::time::timeout(shared.opts.slow_timeout, w.write_all(&f)).await {
        Ok(Ok(())) => Ok(f.len()),
        _ => Err(()),
    }
}

fn token_ok(shared: &Shared, req: &Json) -> bool {
    match &shared.opts.token {
        None => true,
        Some(t) => req
            .get("token")
            .and_then(Json::as_str)
            .is_some_and(|x| constant_time_eq(x.as_bytes(), t.as_bytes())),
    }
}

/// Compares secrets without an early exit on the first differing byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    shared: Arc<Shared>,
    stream: S,
    peer: String,
) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let Some(conn_id) = shared.metrics.try_open(shared.opts.max_connections) else {
        shared.emit(
            ServerEvent::new("alert", Level::Warn)
                .with("type", "max_connections")
                .with("max", shared.opts.max_connections)
                .with("remote_addr", peer.as_str()),
        );
        let answer = legacy::error(
            "too_many_connections",
            format!(
                "server is at its limit of {} connections",
                shared.opts.max_connections
            ),
        );
        let _ = send(&shared, &mut wr, &answer).await;
        let _ = wr.shutdown().await;
        return;
    };
    shared.emit(
        ServerEvent::new("connection_open", Level::Info)
            .with("connection_id", conn_id)
            .with("remote_addr", peer.as_str()),
    );
    let mut authed = shared.opts.token.is_none();
    let mut drain = shared.drain.subscribe();
    let reason: &str = loop {
        let body = match next_frame(&shared, &mut rd, &mut drain).await {
            Next::Frame(b) => b,
            Next::Eof => break "normal",
            Next::Idle => {
                let secs = shared.opts.idle_timeout.unwrap_or_default().as_secs_f64();
                let _ = send(
                    &shared,
                    &mut wr,
                    &legacy::error("idle_timeout", format!("connection idle for {secs}s")),
                )
                .await;
                break "idle_timeout";
            }
            Next::Drain => break "drain",
            Next::Io(e) => {
                if let Ok(mut l) = shared.last_error.lock() {
                    *l = Some(e.to_string());
                }
                break "io_error";
            }
            Next::Bad(e) => {
                shared.metrics.error("FrameError", "frame");
                let _ = send(&shared, &mut wr, &legacy::error("bad_frame", e.to_string())).await;
                break "bad_frame";
            }
        };
        let started = Instant::now();
        let req = match parse_request(&body, shared.opts.max_nesting) {
            Ok(r) => r,
            Err(m) => {
                shared.metrics.error("ParseError", "frame");
                let _ = send(&shared, &mut wr, &legacy::error("invalid_json", m)).await;
                break "invalid_json";
            }
        };
        let envelope = req.get("protocol").is_some();
        let op = if envelope {
            format!(
                "envelope:{}",
                req.get("op").and_then(Json::as_str).unwrap_or("?")
            )
        } else {
            legacy::op_name(&req).to_owned()
        };
        if !authed {
            if token_ok(&shared, &req) {
                authed = true;
            } else {
                shared.metrics.error("Unauthorized", &op);
                shared.emit(
                    ServerEvent::new("request_error", Level::Warn)
                        .with("connection_id", conn_id)
                        .with("op", op.as_str())
                        .with("error", "unauthorized"),
                );
                let _ = send(
                    &shared,
                    &mut wr,
                    &legacy::error(
                        "unauthorized",
                        "a valid token is required (send {op: \"auth\", token: ...} first)",
                    ),
                )
                .await;
                break "unauthorized";
            }
        }
        if !envelope && op == "subscribe" {
            let stores: Vec<String> = match req.get("stores") {
                Some(Json::Array(a)) => a
                    .iter()
                    .filter_map(Json::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            };
            subscription(&shared, conn_id, &mut rd, &mut wr, &mut drain, stores).await;
            break "subscription_closed";
        }
        let answer = if !envelope && shared.host_answers(&op) {
            shared.host_op(req).await
        } else {
            shared
                .run(move |s| {
                    if envelope {
                        s.dispatch_envelope(req)
                    } else {
                        legacy::handle(s, &req)
                    }
                })
                .await
        };
        let answer = match answer {
            Some(a) => a,
            None => {
                if let Ok(mut l) = shared.last_error.lock() {
                    *l = Some(format!("request {op} failed on the server"));
                }
                legacy::error("internal_error", "the request failed on the server")
            }
        };
        let failed = answer.get("ok") == Some(&Json::Bool(false))
            || answer.get("status").and_then(Json::as_str) == Some("error");
        let Ok(out) = send(&shared, &mut wr, &answer).await else {
            break "slow_client";
        };
        shared.metrics.request(
            &op,
            body.len() + frame::OVERHEAD,
            out,
            started.elapsed().as_micros() as u64,
        );
        if failed {
            shared.metrics.error("RequestError", &op);
            shared.emit(
                ServerEvent::new("request_error", Level::Warn)
                    .with("connection_id", conn_id)
                    .with("op", op.as_str())
                    .with("error", answer.get("error").cloned().unwrap_or(Json::Null)),
            );
        } else {
            shared.emit(
                ServerEvent::new("request", Level::Debug)
                    .with("connection_id", conn_id)
                    .with("op", op.as_str()),
            );
        }
        if op == "close" {
            break "normal";
        }
    };
    let _ = wr.shutdown().await;
    shared.metrics.close();
    shared.emit(
        ServerEvent::new("connection_close", Level::Info)
            .with("connection_id", conn_id)
            .with("reason", reason),
    );
}

/// Push mode: ack, then `{event: "fact_written", fact}` for each committed fact of
/// `stores` (all when empty), until the client closes or sends `close`, or drain.
async fn subscription<R, W>(
    shared: &Arc<Shared>,
    conn_id: u64,
    rd: &mut R,
    wr: &mut W,
    drain: &mut tokio::sync::watch::Receiver<bool>,
    stores: Vec<String>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut feed = shared.feed.subscribe();
    if send(shared, wr, &json!({"ok": true})).await.is_err() {
        return;
    }
    shared.metrics.subscription(&stores, 1);
    shared.emit(
        ServerEvent::new("subscription_open", Level::Info)
            .with("connection_id", conn_id)
            .with("stores", stores.clone()),
    );
    let wanted = |s: &str| stores.is_empty() || stores.iter().any(|x| x == s);
    let mut last_seq = shared.ledger.head().sequence;
    loop {
        let mut byte = [0u8; 4096];
        let event = tokio::select! {
            _ = drain.changed() => break,
            n = rd.read(&mut byte) => match n {
                // Anything the client sends in push mode (a close frame) ends it.
                Ok(_) | Err(_) => break,
            },
            e = feed.recv() => e,
        };
        let events = match event {
            Ok(e) => vec![e],
            Err(RecvError::Lagged(_)) => {
                let q = igniter_ledger::ChangesQuery::new().after(
                    igniter_ledger::Cursor::in_ledger(last_seq, shared.ledger.ledger_id()),
                );
                shared.ledger.changes(&q).unwrap_or_default()
            }
            Err(RecvError::Closed) => break,
        };
        let mut failed = false;
        for e in events {
            if e.sequence() <= last_seq {
                continue;
            }
            last_seq = e.sequence();
            if !wanted(e.store()) {
                continue;
            }
            let push = json!({"event": "fact_written", "fact": fact_json(e.fact())});
            if send(shared, wr, &push).await.is_err() {
                failed = true;
                break;
            }
        }
        if failed {
            break;
        }
    }
    shared.metrics.subscription(&stores, -1);
    shared.emit(
        ServerEvent::new("subscription_close", Level::Info)
            .with("connection_id", conn_id)
            .with("stores", stores),
    );
}
