//! The PostgreSQL sync hub for a Ruby store: `LedgerStore#_start_sync` and
//! `Igniter::Ledger::NativeSync`, over `igniter_ledger_server::sync::SyncHandle`. The Ruby
//! class `SyncHandle` (`lib/igniter/ledger/sync.rb`) is the face.
//!
//! The push and pull loops run on Rust threads with their own tokio runtimes and never
//! touch Ruby. Pulled facts are committed on a Ruby thread (the handle's applier, or the
//! thread running `start_sync` while it bootstraps) through the store's normal commit
//! path (`writes::commit`: GVL released around an fsync commit, consumers notified and
//! derivations run with the GVL, then the `backend:` object), because consumers and
//! derivations may be Ruby code. The pull thread hands each batch over a channel and
//! waits for the answer; its durable cursor moves only after the commit answered.
//!
//! | Ruby exception | when |
//! |---|---|
//! | `SyncArgumentError` (< ArgumentError) | a malformed argument (`hub:` not a connection string, an origin not a UUID) |
//! | `HubUnreachableError` (< `SyncError` < `Error`) | the hub did not answer within `connect_timeout:` |
//! | `SyncError` (< `Error`) | the sync failed (the hub refused, the state directory) |

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use igniter_ledger::{Batch, Error as LedgerError, Fact, LedgerStore, Timestamp};
use igniter_ledger_server::sync::{
    PullCommit, PullFilter, SyncConfig, SyncError, SyncHandle, SyncMonitor, SyncStatus,
};
use magnus::{
    exception::ExceptionClass, prelude::*, value::Opaque, Error, Exception, RClass, RModule,
    RObject, Ruby,
};
use serde_json::Value as Json;

use crate::fact::FactObj;
use crate::store::{lock, StoreObj};
use crate::{errors, gvl};

/// How long one wait for a batch lasts with the GVL released (Ruby's interrupts are
/// handled between waits).
const WAIT: Duration = Duration::from_millis(200);

struct Classes {
    argument: Opaque<ExceptionClass>,
    sync: Opaque<ExceptionClass>,
    unreachable: Opaque<ExceptionClass>,
}

static CLASSES: OnceLock<Classes> = OnceLock::new();

fn classes() -> &'static Classes {
    CLASSES
        .get()
        .expect("igniter_ledger: sync exception classes are defined at load time")
}

/// An exception of `class` with `message` and `@argument` (a Symbol).
fn raise(ruby: &Ruby, class: Opaque<ExceptionClass>, message: String, argument: &str) -> Error {
    let class = ruby.get_inner(class);
    match class.new_instance((ruby.str_new(&message),)) {
        Ok(exc) => {
            let exc: Exception = exc;
            if let Some(obj) = RObject::from_value(exc.as_value()) {
                if let Err(e) = obj.ivar_set("@argument", ruby.to_symbol(argument)) {
                    return e;
                }
            }
            Error::from(exc)
        }
        Err(e) => e,
    }
}

fn bad(ruby: &Ruby, argument: &str, message: impl std::fmt::Display) -> Error {
    raise(
        ruby,
        classes().argument,
        format!("{argument}: {message}"),
        argument,
    )
}

/// The Ruby exception for a sync error.
fn sync_error(ruby: &Ruby, e: SyncError) -> Error {
    let c = classes();
    match e {
        SyncError::BadUrl(_) => raise(ruby, c.argument, e.to_string(), "hub"),
        SyncError::Unreachable(_) => raise(ruby, c.unreachable, e.to_string(), "hub"),
        SyncError::Hub(_) | SyncError::Disconnected => raise(ruby, c.sync, e.to_string(), "hub"),
        SyncError::Ledger(le) => errors::ledger_error(ruby, le),
        SyncError::Stopped => Error::new(errors::closed(ruby), e.to_string()),
        SyncError::State(_) => raise(ruby, c.sync, e.to_string(), "state_dir"),
        _ => Error::new(ruby.get_inner(c.sync), e.to_string()),
    }
}

/// A batch of pulled facts waiting for a Ruby thread, and where its answer goes.
struct Job {
    batch: Batch,
    reply: SyncSender<igniter_ledger::Result<Vec<Fact>>>,
}

/// What the sync's threads send the Ruby thread serving them.
enum Msg {
    Apply(Job),
    Started(Box<Result<SyncHandle, SyncError>>),
}

/// The pull threads' committer: hands the batch to the Ruby thread and waits.
struct RubyCommit {
    tx: Sender<Msg>,
    cancel: Arc<AtomicBool>,
}

impl PullCommit for RubyCommit {
    fn commit(&self, _ledger: &LedgerStore, batch: Batch) -> igniter_ledger::Result<Vec<Fact>> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err(LedgerError::Closed);
        }
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx
            .send(Msg::Apply(Job { batch, reply }))
            .map_err(|_| LedgerError::Closed)?;
        loop {
            match answer.recv_timeout(Duration::from_millis(100)) {
                Ok(r) => return r,
                // Stopping: the batch may still be applied by the Ruby thread; the cursor
                // stays behind it and the next start skips its facts by id.
                Err(RecvTimeoutError::Timeout) if self.cancel.load(Ordering::SeqCst) => {
                    return Err(LedgerError::Closed)
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(LedgerError::Closed),
            }
        }
    }
}

/// The data behind a `NativeSync` object.
#[magnus::wrap(class = "Igniter::Ledger::NativeSync", free_immediately, size)]
struct NativeSync {
    handle: Mutex<Option<SyncHandle>>,
    monitor: SyncMonitor,
    /// The counters once stopped.
    last: Mutex<Option<SyncStatus>>,
    jobs: Mutex<Receiver<Msg>>,
    cancel: Arc<AtomicBool>,
}

fn secs(ruby: &Ruby, o: &Json, key: &str) -> Result<Option<Duration>, Error> {
    match o.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Some(Duration::from_secs_f64(s)))
            .ok_or_else(|| bad(ruby, key, "must be a non-negative number of seconds")),
    }
}

fn strings(ruby: &Ruby, v: &Json, key: &str) -> Result<Vec<String>, Error> {
    v.as_array()
        .ok_or_else(|| bad(ruby, key, "must be an Array"))?
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad(ruby, key, "must hold Strings or Symbols"))
        })
        .collect()
}

/// The `SyncConfig` from the options JSON the Ruby layer built (see `sync.rb`).
fn config(ruby: &Ruby, ledger: &LedgerStore, o: &Json) -> Result<SyncConfig, Error> {
    let hub = o
        .get("hub")
        .and_then(Json::as_str)
        .ok_or_else(|| bad(ruby, "hub", "must be a PostgreSQL connection string"))?;
    igniter_ledger_server::sync::check_url(hub).map_err(|e| sync_error(ruby, e))?;
    let mut c = SyncConfig::new(hub);
    c.push = o.get("push").and_then(Json::as_bool).unwrap_or(false);
    c.bootstrap = o.get("bootstrap").and_then(Json::as_bool).unwrap_or(false);
    let stores = match o.get("pull") {
        None | Some(Json::Null) => None,
        Some(v) => Some(strings(ruby, v, "pull")?),
    };
    // Bootstrap without a subscription takes every store (as `sync --bootstrap`).
    let stores = stores.or_else(|| c.bootstrap.then(Vec::new));
    if let Some(stores) = stores {
        let mut f = PullFilter::stores(stores);
        if let Some(v) = o.get("origins").filter(|v| !v.is_null()) {
            for s in strings(ruby, v, "origins")? {
                f.origins.push(
                    uuid::Uuid::parse_str(&s)
                        .map_err(|e| bad(ruby, "origins", format!("{s:?} is not a UUID: {e}")))?,
                );
            }
        }
        f.since = secs(ruby, o, "since")?.map(|d| Timestamp::from_secs_f64(d.as_secs_f64()));
        f.until = secs(ruby, o, "until")?.map(|d| Timestamp::from_secs_f64(d.as_secs_f64()));
        c.pull = Some(f);
    }
    if !c.push && c.pull.is_none() {
        return Err(bad(
            ruby,
            "push",
            "nothing to do: give push: true, pull: [stores] or bootstrap: true",
        ));
    }
    c.state_dir = match o.get("state_dir").and_then(Json::as_str) {
        Some(d) => Some(d.into()),
        None => ledger
            .path()
            .map(igniter_ledger_server::sync::StateDir::beside),
    };
    if let Some(n) = o.get("batch_size").filter(|v| !v.is_null()) {
        c.batch_size = n
            .as_u64()
            .filter(|n| *n > 0)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| bad(ruby, "batch_size", "must be a positive Integer"))?;
    }
    if let Some(d) = secs(ruby, o, "poll_interval")? {
        c.poll_interval = d.max(Duration::from_millis(1));
    }
    c.connect_timeout = secs(ruby, o, "connect_timeout")?;
    if let Some(d) = secs(ruby, o, "flush_timeout")? {
        c.flush_on_stop = d;
    }
    c.verbose = o.get("verbose").and_then(Json::as_bool).unwrap_or(false);
    Ok(c)
}

/// Commits one batch of pulled facts through the store's normal path, on this (Ruby)
/// thread, and answers the pull thread.
fn apply(ruby: &Ruby, s: &StoreObj, job: Job) -> Result<(), Error> {
    if let Err(e) = s.check_open(ruby) {
        let _ = job.reply.send(Err(LedgerError::Closed));
        return Err(e);
    }
    match crate::writes::commit(ruby, s, job.batch) {
        Ok(facts) => {
            let handed: Vec<Fact> = if s.has_backend() {
                facts.clone()
            } else {
                Vec::new()
            };
            let _ = job.reply.send(Ok(facts));
            for f in handed {
                s.hand_to_backend(ruby, FactObj::wrap_raw(ruby, f).as_value())?;
            }
            Ok(())
        }
        Err(e) => {
            let le = if e.is_kind_of(errors::closed(ruby)) {
                LedgerError::Closed
            } else {
                LedgerError::InvalidArgument(format!("committing pulled facts: {e}"))
            };
            let _ = job.reply.send(Err(le));
            Err(e)
        }
    }
}

/// Waits up to `wait` (GVL released) for a message.
fn next(jobs: &Mutex<Receiver<Msg>>, wait: Duration) -> Result<Msg, RecvTimeoutError> {
    gvl::without_gvl(|| lock(jobs).recv_timeout(wait)).unwrap_or(Err(RecvTimeoutError::Timeout))
}

/// `_start_sync(options_json)`: starts syncing this store; a `NativeSync`. With
/// `bootstrap`, returns once the subscription is pulled (this thread commits the batches).
fn start(ruby: &Ruby, s: &StoreObj, options: String) -> Result<NativeSync, Error> {
    s.check_open(ruby)?;
    let o: Json = serde_json::from_str(&options)
        .map_err(|e| errors::internal(ruby, "start_sync options", e.to_string()))?;
    let mut config = config(ruby, s.ledger(), &o)?;
    let (tx, rx) = mpsc::channel();
    let cancel = Arc::new(AtomicBool::new(false));
    config.pull_commit = Some(Arc::new(RubyCommit {
        tx: tx.clone(),
        cancel: cancel.clone(),
    }));
    let ledger = s.ledger().clone();
    std::thread::Builder::new()
        .name("igniter-sync-start".into())
        .spawn(move || {
            let r = SyncHandle::start(ledger, config);
            let _ = tx.send(Msg::Started(Box::new(r)));
        })
        .map_err(|e| errors::internal(ruby, "start_sync", e.to_string()))?;
    let jobs = Mutex::new(rx);
    let started = loop {
        match next(&jobs, WAIT) {
            Ok(Msg::Apply(job)) => {
                if let Err(e) = apply(ruby, s, job) {
                    cancel.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            }
            Ok(Msg::Started(r)) => break *r,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(errors::internal(
                    ruby,
                    "start_sync",
                    "the starting thread vanished".into(),
                ))
            }
        }
    };
    let handle = started.map_err(|e| sync_error(ruby, e))?;
    Ok(NativeSync {
        monitor: handle.monitor(),
        handle: Mutex::new(Some(handle)),
        last: Mutex::new(None),
        jobs,
        cancel,
    })
}

/// `_serve_sync(native, timeout)`: commits the next batch of pulled facts (waiting up to
/// `timeout` seconds for one): true when one was committed, false when none came, nil
/// once the sync has ended (the applier thread's loop ends).
fn serve(
    ruby: &Ruby,
    s: &StoreObj,
    native: &NativeSync,
    timeout: f64,
) -> Result<Option<bool>, Error> {
    let wait = Duration::from_secs_f64(if timeout.is_finite() {
        timeout.clamp(0.0, 60.0)
    } else {
        0.2
    });
    match next(&native.jobs, wait) {
        Ok(Msg::Apply(job)) => apply(ruby, s, job).map(|_| Some(true)),
        Ok(Msg::Started(_)) | Err(RecvTimeoutError::Timeout) => Ok(Some(false)),
        Err(RecvTimeoutError::Disconnected) => Ok(None),
    }
}

impl NativeSync {
    fn status(&self) -> SyncStatus {
        lock(&self.last)
            .clone()
            .unwrap_or_else(|| self.monitor.status())
    }

    /// `status_json`: the counters as JSON.
    fn status_json(&self) -> String {
        let mut o = self.status().to_json();
        o["node"] = self.monitor.node().to_string().into();
        o.to_string()
    }

    /// `node`: the sync node's id (its rows' `origin_ledger` in the hub).
    fn node(&self) -> String {
        self.monitor.node().to_string()
    }

    /// `_stop`: stops the loops (pushing what is left, up to `flush_timeout:`), waiting
    /// with the GVL released; true when this call stopped it, false when it was stopped.
    /// Raises the sync's fatal error, if it ended on one.
    fn stop(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        let Some(handle) = lock(&rb_self.handle).take() else {
            return Ok(false);
        };
        rb_self.cancel.store(true, Ordering::SeqCst);
        let (status, r) = gvl::without_gvl(move || handle.stop_with_status())
            .map_err(|m| errors::internal(ruby, "sync stop", m))?;
        *lock(&rb_self.last) = Some(status);
        match r {
            Ok(()) | Err(SyncError::Stopped) => Ok(true),
            Err(e) => Err(sync_error(ruby, e)),
        }
    }

    /// `running?`: true while a loop runs.
    fn is_running(&self) -> bool {
        lock(&self.handle).is_some() && self.monitor.status().running
    }
}

/// Defines `NativeSync`, the sync exception classes and the store's sync methods.
pub fn init(ruby: &Ruby, ledger: RModule, store_class: RClass) -> Result<(), Error> {
    use magnus::method;
    let base = errors::base(ruby);
    let sync = ledger.define_error("SyncError", base)?;
    let _ = CLASSES.set(Classes {
        argument: ledger
            .define_error("SyncArgumentError", ruby.exception_arg_error())?
            .into(),
        unreachable: ledger.define_error("HubUnreachableError", sync)?.into(),
        sync: sync.into(),
    });
    let class = ledger.define_class("NativeSync", ruby.class_object())?;
    class.undef_default_alloc_func();
    class.define_method("status_json", method!(NativeSync::status_json, 0))?;
    class.define_method("node", method!(NativeSync::node, 0))?;
    class.define_method("_stop", method!(NativeSync::stop, 0))?;
    class.define_method("running?", method!(NativeSync::is_running, 0))?;
    store_class.define_private_method("_start_sync", method!(start, 1))?;
    store_class.define_private_method("_serve_sync", method!(serve, 2))?;
    Ok(())
}
