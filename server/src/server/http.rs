//! The HTTP listener (axum): the reference `HTTPAdapter`'s routes, metrics in JSON and
//! Prometheus text, the SSE changefeed and the status page.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the status page (stores, fact counts, durability, a live tail over SSE) |
//! | `POST /v1/dispatch` | one wire envelope in, its response out (400 on invalid JSON) |
//! | `GET /v1/health` | the health snapshot, with `protocol: "igniter_store"` |
//! | `GET /v1/status` | `{schema_version, status, uptime_ms, metrics, alerts, server, ledger}` |
//! | `GET /v1/ready` | 200 `{ready: true}` while serving, 503 while draining |
//! | `GET /v1/metrics` | the metrics snapshot (Prometheus text with `?format=prometheus` or `Accept: text/plain`) |
//! | `GET /metrics` | the metrics in Prometheus text |
//! | `GET /v1/events/recent` | `{events, count}`: recent server events |
//! | `GET /v1/metadata` | the interpreter's metadata snapshot |
//! | `GET /v1/compaction/activity` | `?store&kind&since&limit` (400 on a bad number) |
//! | `GET /v1/events` | SSE: `id: N\nevent: fact_committed\ndata: {...}\n\n`, resuming after `Last-Event-ID` or `?cursor=N`; `?store=`/`?stores=a,b` filter |
//! | `GET /v1/ledger` | `{fact_count, durability, path, stores: [{name, facts}]}` (the page's data) |
//!
//! Unknown paths answer 404 JSON, a wrong method 405 JSON. With a token, every route
//! but `/` needs `Authorization: Bearer <token>` or `?token=<token>` (401 otherwise).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use igniter_ledger::protocol::json;
use igniter_ledger::{ChangeEvent, ChangesQuery, Cursor, Value};
use serde_json::{json as j, Value as Json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Semaphore;

use super::conn::{constant_time_eq, nesting};
use super::events::{Level, ServerEvent};
use super::Shared;

type St = State<Arc<Shared>>;

fn json_response(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

fn not_allowed() -> Response {
    json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &j!({"error": "Method not allowed"}),
    )
}

fn only(m: MethodRouter<Arc<Shared>>) -> MethodRouter<Arc<Shared>> {
    m.fallback(|| async { not_allowed() })
}

/// The router over `shared` (exposed for tests and embedding).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let limit = shared.opts.max_body_bytes;
    Router::new()
        .route("/", only(get(page)))
        .route("/v1/dispatch", only(post(dispatch)))
        .route("/v1/health", only(get(health)))
        .route("/v1/status", only(get(status)))
        .route("/v1/ready", only(get(ready)))
        .route("/v1/metrics", only(get(metrics)))
        .route("/metrics", only(get(prometheus)))
        .route("/v1/events/recent", only(get(recent)))
        .route("/v1/metadata", only(get(metadata)))
        .route("/v1/compaction/activity", only(get(compaction)))
        .route("/v1/events", only(get(events)))
        .route("/v1/ledger", only(get(ledger_info)))
        .fallback(|m: Method, uri: axum::http::Uri| async move {
            json_response(
                StatusCode::NOT_FOUND,
                &j!({"error": format!("Not found: {m} {}", uri.path())}),
            )
        })
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

/// The most bytes of request line and headers read (hyper's read buffer): 431 beyond.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Serves HTTP until the drain signal (see [`serve_router`]).
pub(crate) async fn serve(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    let app = router(shared.clone());
    let s = shared.clone();
    serve_router(
        app,
        listener,
        shared.drain.subscribe(),
        shared.opts.max_http_connections,
        shared.opts.header_read_timeout,
        move |e| s.emit(ServerEvent::new("http_error", Level::Error).with("error", e)),
    )
    .await;
}

/// Serves `app` on `listener` until `drain` turns true: hyper's HTTP/1 connection
/// builder with a header read timeout (`header_read_timeout`), and at most
/// `max_connections` connections at once (a semaphore: the next connection is accepted
/// when one closes; until then it waits in the listen backlog). On drain the listener
/// closes and each connection finishes its request in flight, then closes.
pub(crate) async fn serve_router(
    app: Router,
    listener: tokio::net::TcpListener,
    mut drain: tokio::sync::watch::Receiver<bool>,
    max_connections: usize,
    header_read_timeout: Duration,
    on_error: impl Fn(String) + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    loop {
        if *drain.borrow() {
            break;
        }
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = drain.changed() => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of descriptors and the like: say so, wait a little, go on.
                    on_error(e.to_string());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = drain.changed() => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = drain.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                // Request line and headers of at most 32 KiB (431 beyond).
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// The token check, the declared body size, and request metrics.
async fn guard(State(shared): St, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.opts.max_body_bytes as u64) {
        // Refused before reading it: the unread body makes the connection unusable.
        shared.metrics.error("PayloadTooLarge", "http");
        let mut r = json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &j!({"error": format!("request body over the limit of {} bytes", shared.opts.max_body_bytes)}),
        );
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    if let Some(t) = &shared.opts.token {
        let path = req.uri().path();
        if path != "/" {
            let bearer = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let query = req.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("token="))
                    .map(percent_decode)
            });
            let ok = bearer.is_some_and(|b| constant_time_eq(b.as_bytes(), t.as_bytes()))
                || query.is_some_and(|q| constant_time_eq(q.as_bytes(), t.as_bytes()));
            if !ok {
                shared.metrics.error("Unauthorized", "http");
                return json_response(
                    StatusCode::UNAUTHORIZED,
                    &j!({"error": "Unauthorized: a valid token is required"}),
                );
            }
        }
    }
    let label = format!("http:{} {}", req.method(), req.uri().path());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    if resp.status() != StatusCode::NOT_FOUND {
        shared
            .metrics
            .request(&label, 0, 0, started.elapsed().as_micros() as u64);
    }
    resp
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(x) => {
                        out.push(x);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn page() -> Html<&'static str> {
    Html(super::page::HTML)
}

async fn dispatch(State(shared): St, body: Bytes) -> Response {
    let env: Json = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            shared.metrics.error("ParseError", "http:dispatch");
            return json_response(
                StatusCode::BAD_REQUEST,
                &j!({"error": format!("Invalid JSON: {e}")}),
            );
        }
    };
    if nesting(&env) > shared.opts.max_nesting {
        return json_response(
            StatusCode::BAD_REQUEST,
            &j!({"error": format!("Invalid JSON: nests deeper than {} levels", shared.opts.max_nesting)}),
        );
    }
    match shared.run(move |s| s.dispatch_envelope(env)).await {
        Some(answer) => json_response(StatusCode::OK, &answer),
        None => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &j!({"error": "dispatch failed"}),
        ),
    }
}

async fn health(State(shared): St) -> Response {
    let mut h = serde_json::to_value(shared.health()).unwrap_or_else(|_| j!({}));
    h["protocol"] = j!("igniter_store");
    json_response(StatusCode::OK, &h)
}

async fn status(State(shared): St) -> Response {
    let s = shared.clone();
    let body = tokio::task::spawn_blocking(move || s.status_json())
        .await
        .unwrap_or_else(|_| j!({"error": "status failed"}));
    json_response(StatusCode::OK, &body)
}

async fn ready(State(shared): St) -> Response {
    if shared.draining() {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &j!({"ready": false, "status": shared.status()}),
        )
    } else {
        json_response(StatusCode::OK, &j!({"ready": true, "status": "ready"}))
    }
}

async fn metrics(
    State(shared): St,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let m = shared.metrics_snapshot();
    let wants_text = q.get("format").is_some_and(|f| f == "prometheus")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.starts_with("text/plain"));
    if wants_text {
        prometheus_text(&m)
    } else {
        json_response(StatusCode::OK, &serde_json::to_value(m).unwrap_or_default())
    }
}

fn prometheus_text(m: &super::MetricsSnapshot) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        m.to_prometheus(),
    )
        .into_response()
}

async fn prometheus(State(shared): St) -> Response {
    prometheus_text(&shared.metrics_snapshot())
}

async fn recent(State(shared): St) -> Response {
    let events: Vec<Json> = shared
        .recent
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    json_response(
        StatusCode::OK,
        &j!({"count": events.len(), "events": events}),
    )
}

async fn metadata(State(shared): St) -> Response {
    json_response(
        StatusCode::OK,
        &json::to_json(&shared.interp.metadata_snapshot()),
    )
}

async fn compaction(State(shared): St, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut pairs: Vec<(igniter_ledger::MapKey, Value)> = Vec::new();
    for name in ["store", "kind"] {
        if let Some(v) = q.get(name).filter(|v| !v.is_empty()) {
            pairs.push((igniter_ledger::MapKey::sym(name), Value::Str(v.clone())));
        }
    }
    if let Some(v) = q.get("since").filter(|v| !v.is_empty()) {
        match v.parse::<f64>() {
            Ok(f) if f.is_finite() => {
                pairs.push((igniter_ledger::MapKey::sym("since"), Value::Float(f)))
            }
            _ => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &j!({"error": format!("since: invalid number: {v}")}),
                )
            }
        }
    }
    if let Some(v) = q.get("limit").filter(|v| !v.is_empty()) {
        match v.parse::<i64>() {
            Ok(n) if n >= 0 => pairs.push((igniter_ledger::MapKey::sym("limit"), Value::Int(n))),
            _ => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &j!({"error": format!("limit: invalid number: {v}")}),
                )
            }
        }
    }
    match shared.interp.compaction_activity(&Value::Map(pairs)) {
        Ok(v) => json_response(StatusCode::OK, &json::to_json(&v)),
        Err(e) => json_response(StatusCode::BAD_REQUEST, &j!({"error": e.to_string()})),
    }
}

async fn ledger_info(State(shared): St) -> Response {
    let s = shared.clone();
    let body = tokio::task::spawn_blocking(move || {
        let mut by_store: BTreeMap<String, u64> = BTreeMap::new();
        for f in s.ledger.fact_log_all(None, None) {
            *by_store.entry(f.store().to_owned()).or_default() += 1;
        }
        j!({
            "fact_count": s.ledger.fact_count(),
            "durability": format!("{:?}", s.ledger.durability()).to_lowercase(),
            "path": s.ledger.path().map(|p| p.display().to_string()),
            "head": s.ledger.head().sequence,
            "stores": by_store.iter().map(|(k, v)| j!({"name": k, "facts": v})).collect::<Vec<_>>(),
        })
    })
    .await
    .unwrap_or_else(|_| j!({"error": "ledger info failed"}));
    json_response(StatusCode::OK, &body)
}

/// A change event as the reference's `ChangeEvent#to_h` (without the fact).
pub fn event_json(e: &ChangeEvent) -> Json {
    let mut cursor = j!({"sequence": e.sequence()});
    if let Some(l) = e.ledger() {
        cursor["ledger"] = j!(l.to_string());
    }
    j!({
        "schema_version": e.schema_version(),
        "id": e.id(),
        "type": e.event_type(),
        "store": e.store(),
        "key": e.key(),
        "fact_id": e.fact_id().to_string(),
        "transaction_time": e.transaction_time().as_secs_f64(),
        "emitted_at": e.emitted_at(),
        "producer": e.producer().map(|p| json::to_json(&p)),
        "causation": e.causation().map(|c| c.to_string()),
        "cursor": cursor,
    })
}

struct SseState {
    shared: Arc<Shared>,
    backlog: VecDeque<ChangeEvent>,
    feed: tokio::sync::broadcast::Receiver<ChangeEvent>,
    drain: tokio::sync::watch::Receiver<bool>,
    stores: Vec<String>,
    last: u64,
}

impl SseState {
    fn wanted(&self, e: &ChangeEvent) -> bool {
        self.stores.is_empty() || self.stores.iter().any(|s| s == e.store())
    }
}

async fn events(
    State(shared): St,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let raw_cursor = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| q.get("cursor").cloned());
    let after = match raw_cursor
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        None => None,
        Some(c) => match c.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &j!({"error": format!("cursor: must be a non-negative integer sequence, got {c:?}")}),
                )
            }
        },
    };
    let mut stores: Vec<String> = Vec::new();
    for name in ["store", "stores"] {
        if let Some(v) = q.get(name) {
            stores.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    stores.sort();
    stores.dedup();
    // Subscribe before reading the backlog, so no commit falls between the two.
    let feed = shared.feed.subscribe();
    let first = shared.ledger.first_sequence();
    if let Some(a) = after {
        if a + 1 < first {
            let head = shared.ledger.head().sequence;
            return json_response(
                StatusCode::CONFLICT,
                &j!({"status": "cursor_too_old", "error": "cursor is older than the oldest retained event",
                     "oldest_cursor": {"sequence": first}, "newest_cursor": {"sequence": head},
                     "dropped_total": first.saturating_sub(1)}),
            );
        }
    }
    let mut query = ChangesQuery::new().stores(stores.iter());
    if let Some(a) = after {
        query = query.after(Cursor::in_ledger(a, shared.ledger.ledger_id()));
    }
    let s = shared.clone();
    let backlog = match tokio::task::spawn_blocking(move || s.ledger.changes(&query)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return json_response(StatusCode::BAD_REQUEST, &j!({"error": e.to_string()})),
        Err(_) => {
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &j!({"error": "replay failed"}),
            )
        }
    };
    let last = after.unwrap_or(0);
    let state = SseState {
        drain: shared.drain.subscribe(),
        shared: shared.clone(),
        backlog: backlog.into(),
        feed,
        stores,
        last,
    };
    shared.emit(ServerEvent::new("sse_open", Level::Debug).with("after", last));
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(e) = st.backlog.pop_front() {
                if e.sequence() <= st.last {
                    continue;
                }
                st.last = e.sequence();
                if !st.wanted(&e) {
                    continue;
                }
                let ev = Event::default()
                    .id(e.sequence().to_string())
                    .event("fact_committed")
                    .data(event_json(&e).to_string());
                return Some((Ok::<Event, Infallible>(ev), st));
            }
            if *st.drain.borrow() {
                return None;
            }
            let got = tokio::select! {
                _ = st.drain.changed() => return None,
                r = st.feed.recv() => r,
            };
            match got {
                Ok(e) => st.backlog.push_back(e),
                Err(RecvError::Lagged(_)) => {
                    let q = ChangesQuery::new()
                        .stores(st.stores.iter())
                        .after(Cursor::in_ledger(st.last, st.shared.ledger.ledger_id()));
                    st.backlog
                        .extend(st.shared.ledger.changes(&q).unwrap_or_default());
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
