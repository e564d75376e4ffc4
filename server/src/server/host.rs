//! The host hook: work the server hands to a thread of the process that embeds it.
//!
//! A ledger can hold callbacks that only one kind of thread may call: the Ruby gem's
//! derivation rules, consumers and coercion blocks are Ruby objects, callable only from a
//! Ruby thread holding the GVL. The server's own threads (tokio workers and blocking
//! threads) must never call them. With a [`Host`] in its options
//! ([`ServerOptions::host`](super::ServerOptions::host)), the server asks the host, per
//! request, whether ledger work must run on the host's thread now
//! ([`Host::needed`]); when it must, the request's work is queued to the host
//! ([`Host::submit`]) and the connection waits for the answer without blocking a tokio
//! worker. When it need not (the ledger holds no such callback), the request runs on the
//! server's blocking threads as without a host: one cheap check per request.
//!
//! The host may also answer framed ops the server does not know itself
//! ([`Host::answers`], [`Host::submit_op`]): the Ruby gem answers the remote store's
//! `call` op there, with Ruby's type-faithful value codec.

use serde_json::Value as Json;

/// A unit of ledger work for the host's thread.
pub type HostJob = Box<dyn FnOnce() + Send + 'static>;

/// Where an answer to a host-answered op goes.
pub type HostReply = Box<dyn FnOnce(Json) + Send + 'static>;

/// A thread (or threads) of the embedding process that runs the server's ledger work
/// when the ledger holds callbacks only that thread may call. See the module docs.
pub trait Host: Send + Sync {
    /// Whether ledger work must run on the host now. Called once per request: keep it
    /// cheap (an atomic load, an uncontended lock).
    fn needed(&self) -> bool;

    /// Queues `job` to run on the host's thread. False when the host is gone (the job
    /// was dropped without running; the request then fails with an error answer).
    fn submit(&self, job: HostJob) -> bool;

    /// Whether the host answers framed requests whose `op` is `op` (ops the server does
    /// not know itself). Default: none.
    fn answers(&self, op: &str) -> bool {
        let _ = op;
        false
    }

    /// Queues one such request (the whole request object); the host calls `reply` with
    /// the answer object. False when the host is gone. Default: refuses.
    fn submit_op(&self, request: Json, reply: HostReply) -> bool {
        let _ = (request, reply);
        false
    }
}
