//! [`RemoteStore`]: a ledger served by an `igniter-ledger` server, with the embedded
//! store's read/write/history/query/transaction/`expected` API.
//!
//! Unlike the reference's `NetworkBackend` (which makes the caller build facts and
//! replay them by hand), the server assigns ids and transaction times, and answers the
//! committed [`Fact`]s. A conflict comes back as [`ClientError::Conflict`] with the same
//! fields as the core's `Error::Conflict`.
//!
//! Blocking, one connection per `RemoteStore` (share it behind an `Arc`: requests are
//! serialized on the connection). When the connection breaks, the call in flight fails
//! with [`ClientError::Disconnected`] and the next call reconnects. A write whose answer
//! was lost may or may not have been committed: check with `read` before retrying.
//!
//! ```no_run
//! use igniter_ledger::Value;
//! use igniter_ledger_server::client::RemoteStore;
//! let store = RemoteStore::connect("tcp://127.0.0.1:7400").unwrap();
//! let fact = store.write("tasks", "t1", Value::from("open")).unwrap();
//! assert_eq!(store.read("tasks", "t1").unwrap(), Some(Value::from("open")));
//! println!("{} at {}", fact.id(), fact.transaction_time());
//! ```

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use igniter_ledger::protocol::json;
use igniter_ledger::{Expected, Fact, Value};
use serde_json::{json as j, Map, Value as Json};

use crate::server::frame;
use crate::server::legacy::decode_fact;

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `host:port`.
    Tcp(String),
    /// A unix socket path.
    Unix(PathBuf),
}

impl Address {
    /// Parses `tcp://host:port`, `unix:///path`, `host:port` or a path with a `/`.
    pub fn parse(s: &str) -> Result<Address, ClientError> {
        if let Some(rest) = s.strip_prefix("tcp://") {
            return Ok(Address::Tcp(rest.trim_end_matches('/').to_owned()));
        }
        if let Some(rest) = s.strip_prefix("unix://") {
            return Ok(Address::Unix(PathBuf::from(rest)));
        }
        if s.contains('/') {
            return Ok(Address::Unix(PathBuf::from(s)));
        }
        if s.contains(':') {
            return Ok(Address::Tcp(s.to_owned()));
        }
        Err(ClientError::Invalid(format!(
            "address {s:?}: expected tcp://host:port or unix:///path"
        )))
    }
}

/// What went wrong with a remote call.
#[derive(Debug)]
pub enum ClientError {
    /// The write's `expected` did not hold; nothing was written.
    Conflict {
        /// The server's message.
        message: String,
        /// Store.
        store: String,
        /// Key.
        key: String,
        /// The fact id expected (None: no fact).
        expected: Option<String>,
        /// The fact id found (None: no fact).
        actual: Option<String>,
    },
    /// The server refused the request.
    Server {
        /// `error_code` (`invalid_argument`, `unknown_op`, `unauthorized`, ...).
        code: String,
        /// The message.
        message: String,
    },
    /// The connection broke or could not be made; the next call reconnects.
    Disconnected(String),
    /// The server answered something this client cannot read.
    Protocol(String),
    /// A bad argument on the client side.
    Invalid(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Conflict { message, .. } => f.write_str(message),
            ClientError::Server { code, message } => write!(f, "{message} ({code})"),
            ClientError::Disconnected(m) => write!(f, "ledger server unavailable: {m}"),
            ClientError::Protocol(m) => write!(f, "unexpected answer from the ledger server: {m}"),
            ClientError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ClientError {}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Conn::Tcp(s) => s,
            Conn::Unix(s) => s,
        }
    }
}

trait ReadWrite: Read + std::io::Write {}
impl<T: Read + std::io::Write> ReadWrite for T {}

/// One operation of a [`RemoteStore::transaction`].
#[derive(Clone, Debug, Default)]
pub struct Tx {
    ops: Vec<Json>,
}

impl Tx {
    /// Adds a write.
    pub fn write(&mut self, store: &str, key: &str, value: Value) -> &mut Self {
        self.ops
            .push(j!({"op": "write", "store": store, "key": key, "value": json::to_json(&value)}));
        self
    }
    /// Adds a write with an `expected` check.
    pub fn write_expected(
        &mut self,
        store: &str,
        key: &str,
        value: Value,
        expected: Expected,
    ) -> &mut Self {
        self.ops.push(j!({"op": "write", "store": store, "key": key,
            "value": json::to_json(&value), "expected": expected_json(&expected)}));
        self
    }
    /// Adds an append to a history.
    pub fn append(&mut self, history: &str, event: Value) -> &mut Self {
        self.ops
            .push(j!({"op": "append", "history": history, "event": json::to_json(&event)}));
        self
    }
}

fn expected_json(e: &Expected) -> Json {
    match e {
        Expected::Any => Json::Null,
        Expected::Absent => j!("absent"),
        Expected::Fact(id) => j!(id.to_string()),
    }
}

/// A ledger store served by a server. See the module documentation.
pub struct RemoteStore {
    address: Address,
    token: Option<String>,
    timeout: Duration,
    conn: Mutex<Option<Conn>>,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("address", &self.address)
            .finish()
    }
}

impl RemoteStore {
    /// Connects to `address` (`tcp://host:port` or `unix:///path`).
    pub fn connect(address: &str) -> Result<RemoteStore, ClientError> {
        Self::connect_with(address, None)
    }

    /// Connects, presenting `token` to a server that requires one.
    pub fn connect_with(address: &str, token: Option<&str>) -> Result<RemoteStore, ClientError> {
        let s = RemoteStore {
            address: Address::parse(address)?,
            token: token.map(str::to_owned),
            timeout: Duration::from_secs(30),
            conn: Mutex::new(None),
        };
        s.rpc(j!({"op": "ping"}))?;
        Ok(s)
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    fn open(&self) -> Result<Conn, ClientError> {
        let dis = |e: std::io::Error| ClientError::Disconnected(e.to_string());
        let mut c = match &self.address {
            Address::Tcp(a) => {
                let s = TcpStream::connect(a).map_err(dis)?;
                let _ = s.set_nodelay(true);
                s.set_read_timeout(Some(self.timeout)).map_err(dis)?;
                s.set_write_timeout(Some(self.timeout)).map_err(dis)?;
                Conn::Tcp(s)
            }
            Address::Unix(p) => {
                let s = UnixStream::connect(p).map_err(dis)?;
                s.set_read_timeout(Some(self.timeout)).map_err(dis)?;
                s.set_write_timeout(Some(self.timeout)).map_err(dis)?;
                Conn::Unix(s)
            }
        };
        if let Some(t) = &self.token {
            let a = exchange(&mut c, &j!({"op": "auth", "token": t}))?;
            check(a)?;
        }
        Ok(c)
    }

    /// Sends one framed-JSON request and returns the `ok: true` answer.
    pub fn rpc(&self, req: Json) -> Result<Json, ClientError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        let conn = guard.as_mut().expect("just connected");
        match exchange(conn, &req) {
            Ok(a) => {
                if a.get("error_code").and_then(Json::as_str) == Some("unauthorized") {
                    *guard = None;
                }
                check(a)
            }
            Err(e) => {
                *guard = None;
                Err(e)
            }
        }
    }

    /// Writes `value` to (store, key); the committed fact.
    pub fn write(&self, store: &str, key: &str, value: Value) -> Result<Fact, ClientError> {
        self.write_expected(store, key, value, Expected::Any)
    }

    /// Writes if the latest fact of (store, key) is the `expected` one.
    pub fn write_expected(
        &self,
        store: &str,
        key: &str,
        value: Value,
        expected: Expected,
    ) -> Result<Fact, ClientError> {
        let a = self.rpc(j!({"op": "ledger.write", "store": store, "key": key,
            "value": json::to_json(&value), "expected": expected_json(&expected)}))?;
        fact(a.get("fact"))
    }

    /// Appends `event` to a history; the committed fact.
    pub fn append(&self, history: &str, event: Value) -> Result<Fact, ClientError> {
        let a = self
            .rpc(j!({"op": "ledger.append", "history": history, "event": json::to_json(&event)}))?;
        fact(a.get("fact"))
    }

    /// Commits the operations `build` adds, atomically; their facts in order.
    pub fn transaction(&self, build: impl FnOnce(&mut Tx)) -> Result<Vec<Fact>, ClientError> {
        let mut tx = Tx::default();
        build(&mut tx);
        let a = self.rpc(j!({"op": "ledger.commit", "ops": tx.ops}))?;
        facts(a.get("facts"))
    }

    /// The current value of (store, key).
    pub fn read(&self, store: &str, key: &str) -> Result<Option<Value>, ClientError> {
        self.read_as_of(store, key, None)
    }

    /// The value of (store, key) as of a transaction time (seconds since the epoch).
    pub fn read_as_of(
        &self,
        store: &str,
        key: &str,
        as_of: Option<f64>,
    ) -> Result<Option<Value>, ClientError> {
        let a = self.rpc(j!({"op": "ledger.read", "store": store, "key": key, "as_of": as_of}))?;
        Ok(if a.get("found") == Some(&Json::Bool(true)) {
            Some(json::from_json(a.get("value").unwrap_or(&Json::Null)))
        } else {
            None
        })
    }

    /// The latest fact of (store, key).
    pub fn latest(&self, store: &str, key: &str) -> Result<Option<Fact>, ClientError> {
        let a = self.rpc(j!({"op": "ledger.read", "store": store, "key": key}))?;
        match a.get("fact") {
            Some(f) if !f.is_null() => fact(Some(f)).map(Some),
            _ => Ok(None),
        }
    }

    /// The facts of a store (or one key), oldest first.
    pub fn history(&self, store: &str, key: Option<&str>) -> Result<Vec<Fact>, ClientError> {
        let a = self.rpc(j!({"op": "ledger.history", "store": store, "key": key}))?;
        facts(a.get("facts"))
    }

    /// The protocol's `query` (`where` filters on the current records, `limit`): the
    /// matching `(key, value)` pairs.
    pub fn query(
        &self,
        store: &str,
        filter: Value,
        limit: Option<usize>,
    ) -> Result<Vec<(String, Value)>, ClientError> {
        let env = j!({"protocol": "igniter_store", "schema_version": 1, "request_id": "remote-query",
            "op": "query", "packet": {"store": store, "where": json::to_json(&filter), "limit": limit}});
        let a = self.rpc(env)?;
        if a.get("status").and_then(Json::as_str) != Some("ok") {
            return Err(ClientError::Server {
                code: "query".into(),
                message: a
                    .get("error")
                    .and_then(Json::as_str)
                    .unwrap_or("query failed")
                    .to_owned(),
            });
        }
        let items = a["result"]["items"].as_array().cloned().unwrap_or_default();
        Ok(items
            .iter()
            .map(|i| {
                (
                    i["key"].as_str().unwrap_or_default().to_owned(),
                    json::from_json(&i["value"]),
                )
            })
            .collect())
    }

    /// How many facts the ledger holds.
    pub fn fact_count(&self) -> Result<u64, ClientError> {
        let a = self.rpc(j!({"op": "ledger.count"}))?;
        a.get("count")
            .and_then(Json::as_u64)
            .ok_or_else(|| ClientError::Protocol("count missing".into()))
    }

    /// Answers a wire envelope (`{protocol, schema_version, request_id, op, packet}`).
    pub fn dispatch(&self, envelope: Json) -> Result<Json, ClientError> {
        self.rpc(envelope)
    }

    /// Closes the connection (the next call reconnects).
    pub fn close(&self) {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut c) = guard.take() {
            let _ = exchange(&mut c, &j!({"op": "close"}));
        }
    }
}

fn exchange(c: &mut Conn, req: &Json) -> Result<Json, ClientError> {
    let dis = |e: std::io::Error| ClientError::Disconnected(e.to_string());
    let s = c.stream();
    s.write_all(&frame::encode(req.to_string().as_bytes()))
        .map_err(dis)?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).map_err(dis)?;
    let len = u32::from_be_bytes(head) as usize;
    if len > 1 << 30 {
        return Err(ClientError::Protocol(format!("answer of {len} bytes")));
    }
    let mut buf = vec![0u8; len + 4];
    s.read_exact(&mut buf).map_err(dis)?;
    let mut whole = head.to_vec();
    whole.extend_from_slice(&buf);
    let body = match frame::decode(&whole, 1 << 30) {
        Ok(Some((b, _))) => b,
        Ok(None) => return Err(ClientError::Protocol("truncated frame".into())),
        Err(e) => return Err(ClientError::Protocol(e.to_string())),
    };
    serde_json::from_slice(body).map_err(|e| ClientError::Protocol(e.to_string()))
}

fn check(a: Json) -> Result<Json, ClientError> {
    if a.get("ok") == Some(&Json::Bool(false)) {
        let s = |k: &str| a.get(k).and_then(Json::as_str).map(str::to_owned);
        let message = s("error").unwrap_or_else(|| "request failed".into());
        return Err(match s("error_code").as_deref() {
            Some("conflict") => ClientError::Conflict {
                message,
                store: s("store").unwrap_or_default(),
                key: s("key").unwrap_or_default(),
                expected: s("expected"),
                actual: s("actual"),
            },
            code => ClientError::Server {
                code: code.unwrap_or("error").to_owned(),
                message,
            },
        });
    }
    Ok(a)
}

fn fact(v: Option<&Json>) -> Result<Fact, ClientError> {
    let v = v.ok_or_else(|| ClientError::Protocol("fact missing".into()))?;
    let parts = decode_fact(v).map_err(|e| ClientError::Protocol(e.to_string()))?;
    Fact::restore(parts).map_err(|e| ClientError::Protocol(e.to_string()))
}

fn facts(v: Option<&Json>) -> Result<Vec<Fact>, ClientError> {
    match v {
        Some(Json::Array(a)) => a.iter().map(|f| fact(Some(f))).collect(),
        _ => Err(ClientError::Protocol("facts missing".into())),
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn f<T: Send + Sync>() {}
    f::<RemoteStore>();
    let _ = Map::<String, Json>::new();
}
