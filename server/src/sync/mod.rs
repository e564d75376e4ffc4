//! The sync hub: ledgers push their facts into one PostgreSQL database and pull from it
//! what they subscribe to. Each ledger stays hot and local; the hub is the cold, shared
//! copy (backups, SQL analytics, retention by dropping partitions, bootstrapping new
//! nodes). The write path never waits on PostgreSQL: pushing reads the committed log on
//! its own thread.
//!
//! | module | holds |
//! |---|---|
//! | [`schema`] | the hub's tables (created on first use), time partitions, the push lock |
//! | [`row`] | a fact as a hub row and back (every field, JSONB + canonical bytes) |
//! | [`push`] | [`Pusher`]: changefeed → hub, the cursor in the same transaction |
//! | [`pull`] | [`Puller`]: hub → ledger by subscription, woken by LISTEN/NOTIFY |
//! | [`state`] | the syncing side's node id, durable pull cursors and provenance |
//! | [`retention`] | hub retention: drop whole partitions, delete otherwise, receipts |
//! | [`run`] | [`SyncHandle`]: push and pull threads with reconnects, stopped cleanly |
//! | `cli` | `igniter-ledger sync` (with the `tools` feature) |
//!
//! ```no_run
//! use igniter_ledger::LedgerStore;
//! use igniter_ledger_server::sync::{PullFilter, SyncConfig, SyncHandle};
//!
//! let ledger = LedgerStore::open("app.wal").unwrap();
//! let mut config = SyncConfig::new("postgres://postgres@localhost/hub");
//! config.push = true;
//! config.pull = Some(PullFilter::stores(["orders"]));
//! config.state_dir = Some("app.wal.sync".into());
//! let sync = SyncHandle::start(ledger.clone(), config).unwrap();
//! // ... the app writes to `ledger` as usual ...
//! sync.stop().unwrap();
//! ledger.close().unwrap();
//! ```

#[cfg(feature = "tools")]
pub mod cli;
pub mod progress;
pub mod pull;
pub mod push;
pub mod retention;
pub mod row;
pub mod run;
pub mod schema;
pub mod state;

use std::fmt;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification};

pub use pull::{PullCommit, PullFilter, Puller};
pub use push::{InsertMode, Pusher};
pub use retention::{retain, HubReceipt};
pub use run::{SyncConfig, SyncHandle, SyncMonitor, SyncStatus};
pub use state::{Provenance, StateDir};

/// What can go wrong while syncing.
#[derive(Debug)]
pub enum SyncError {
    /// PostgreSQL refused or the connection failed (retried by the sync threads).
    Hub(tokio_postgres::Error),
    /// The connection is gone (retried).
    Disconnected,
    /// The ledger refused (e.g. it was closed).
    Ledger(igniter_ledger::Error),
    /// The state directory could not be read or written.
    State(String),
    /// Something that retrying will not fix (named in the message).
    Invalid(String),
    /// The ledger was closed: the sync stops.
    Stopped,
    /// The hub's connection string is not one (the message says why).
    BadUrl(String),
    /// The hub did not answer within the connect timeout (the last error).
    Unreachable(String),
}

impl SyncError {
    /// True for errors a reconnect may fix.
    pub fn is_transient(&self) -> bool {
        matches!(self, SyncError::Hub(_) | SyncError::Disconnected)
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::Hub(e) => match e.as_db_error() {
                Some(db) => write!(f, "hub: {}: {}", db.severity(), db.message()),
                None => write!(f, "hub: {e}"),
            },
            SyncError::Disconnected => write!(f, "hub: disconnected"),
            SyncError::Ledger(e) => write!(f, "ledger: {e}"),
            SyncError::State(s) => write!(f, "sync state: {s}"),
            SyncError::Invalid(s) => write!(f, "{s}"),
            SyncError::Stopped => write!(f, "the ledger was closed"),
            SyncError::BadUrl(s) => write!(f, "hub: not a PostgreSQL connection string: {s}"),
            SyncError::Unreachable(s) => write!(f, "hub: unreachable: {s}"),
        }
    }
}

impl std::error::Error for SyncError {}

impl From<tokio_postgres::Error> for SyncError {
    fn from(e: tokio_postgres::Error) -> Self {
        SyncError::Hub(e)
    }
}

impl From<igniter_ledger::Error> for SyncError {
    fn from(e: igniter_ledger::Error) -> Self {
        match e {
            igniter_ledger::Error::Closed => SyncError::Stopped,
            e => SyncError::Ledger(e),
        }
    }
}

/// A single-threaded runtime for one sync thread.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, SyncError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SyncError::Invalid(format!("cannot start a runtime: {e}")))
}

/// Checks that `url` is a PostgreSQL connection string (`postgres://user@host:port/db`
/// or `host=… user=…`), without connecting.
pub fn check_url(url: &str) -> Result<(), SyncError> {
    url.parse::<tokio_postgres::Config>()
        .map(|_| ())
        .map_err(|e| SyncError::BadUrl(e.to_string()))
}

/// Connects to the hub (no TLS: a unix socket or a trusted network; put a TLS-terminating
/// proxy in front otherwise), giving up after 10 s unless the URL sets `connect_timeout`. The connection is driven by a task on the current runtime,
/// which forwards notifications to the returned receiver; the receiver ends when the
/// connection does.
pub async fn connect(url: &str) -> Result<(Client, UnboundedReceiver<Notification>), SyncError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| SyncError::BadUrl(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        // An address that drops packets must not hold a sync thread (or a start with a
        // connect timeout) for the operating system's minutes.
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    let (client, mut conn) = config.connect(NoTls).await?;
    let (tx, rx) = unbounded_channel();
    tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    Ok((client, rx))
}
