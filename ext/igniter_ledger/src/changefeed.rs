//! The changefeed's native side: `Igniter::Ledger::ChangefeedBuffer` and `Subscription`
//! over the core's `changefeed` module, and the changefeed methods of `LedgerStore`
//! (`_attach_changefeed`, `_changes`, `ledger_id`, `_head`).
//!
//! The Ruby layer (`lib/igniter/ledger/changefeed.rb`) checks argument shapes, builds the
//! `ChangeEvent` objects and runs each subscriber's block on its own Ruby thread; that
//! thread waits for events in `Subscription#_take` with the GVL released.

use std::sync::OnceLock;
use std::time::Duration;

use igniter_ledger::changefeed::{
    Alert, AlertThresholds, AlertValue, BufferOptions, ChangeEvent, ChangefeedBuffer,
    ChangefeedError, ChangesQuery, ClosePolicy, Cursor, Diagnostic, Overflow, Recv, ReplayStatus,
    SubscriberSnapshot, Subscription,
};
use magnus::{
    exception::ExceptionClass, prelude::*, typed_data::Obj, value::Opaque, DataTypeFunctions,
    Error, Exception, IntoValue, RArray, RClass, RHash, RModule, RObject, Ruby, TryConvert,
    TypedData, Value as RValue,
};

use crate::errors::ledger_err;
use crate::fact::FactObj;
use crate::render::{self, hash_of, nil, sym};
use crate::store::StoreObj;
use crate::{args, convert, errors, gvl};

/// The data behind a `ChangefeedBuffer` object.
#[derive(TypedData)]
#[magnus(class = "Igniter::Ledger::ChangefeedBuffer", free_immediately, size)]
pub struct BufferObj {
    buf: ChangefeedBuffer,
}

impl DataTypeFunctions for BufferObj {}

impl BufferObj {
    /// Wraps a buffer made elsewhere (the native server's, see `server.rs`).
    pub(crate) fn from_buffer(buf: ChangefeedBuffer) -> Self {
        BufferObj { buf }
    }
}

/// The data behind a `Subscription` object.
#[derive(TypedData)]
#[magnus(class = "Igniter::Ledger::Subscription", free_immediately, size)]
pub struct SubObj {
    sub: Subscription,
}

impl DataTypeFunctions for SubObj {}

static EVENT_CLASS: OnceLock<Opaque<RClass>> = OnceLock::new();

/// `ChangefeedArgumentError` (< ArgumentError) and `CursorTooOldError` (< it).
struct ErrorClasses {
    argument: Opaque<ExceptionClass>,
    too_old: Opaque<ExceptionClass>,
}

static ERRORS: OnceLock<ErrorClasses> = OnceLock::new();

/// An error of `class` (ArgumentError when the classes are not defined yet) with
/// `@argument` and, when given, `@horizon` set.
fn changefeed_exception(
    ruby: &Ruby,
    too_old: bool,
    message: String,
    argument: &str,
    horizon: Option<Cursor>,
) -> Error {
    let class = match ERRORS.get() {
        Some(c) if too_old => ruby.get_inner(c.too_old),
        Some(c) => ruby.get_inner(c.argument),
        None => ruby.exception_arg_error(),
    };
    let exc: Exception = match class.new_instance((ruby.str_new(&message),)) {
        Ok(e) => e,
        Err(e) => return e,
    };
    if let Some(obj) = RObject::from_value(exc.as_value()) {
        let _ = obj.ivar_set("@argument", sym(ruby, argument));
        if let Some(h) = horizon {
            match cursor_hash(ruby, Some(h)) {
                Ok(v) => {
                    let _ = obj.ivar_set("@horizon", v);
                }
                Err(e) => return e,
            }
        }
    }
    Error::from(exc)
}

/// The Ruby exception for a core changefeed error: `Igniter::Ledger::CursorTooOldError`
/// (with `horizon`) for a cursor older than retention kept, else
/// `ChangefeedArgumentError`; both are ArgumentErrors and `Igniter::Ledger::Error`s,
/// with `argument` naming what was refused.
pub fn ledger_error(ruby: &Ruby, e: ChangefeedError) -> Error {
    let argument = e.argument().to_owned();
    let message = e.to_string();
    match e {
        ChangefeedError::CursorTooOld { horizon, .. } => {
            changefeed_exception(ruby, true, message, &argument, Some(horizon))
        }
        _ => changefeed_exception(ruby, false, message, &argument, None),
    }
}

fn arg_error(ruby: &Ruby, msg: String) -> Error {
    changefeed_exception(ruby, false, msg, "cursor", None)
}

fn str_list(ruby: &Ruby, items: &[String]) -> RValue {
    let a = ruby.ary_new_capa(items.len());
    for s in items {
        let _ = a.push(convert::string(ruby, s, false));
    }
    a.as_value()
}

/// `{sequence: N}` or `{sequence: N, ledger: "<uuid>"}`, frozen.
fn cursor_hash(ruby: &Ruby, c: Option<Cursor>) -> Result<RValue, Error> {
    let Some(c) = c else { return Ok(nil(ruby)) };
    let h = ruby.hash_new();
    h.aset(sym(ruby, "sequence"), c.sequence)?;
    if let Some(l) = c.ledger {
        h.aset(
            sym(ruby, "ledger"),
            convert::string(ruby, &l.to_string(), true),
        )?;
    }
    h.freeze();
    Ok(h.as_value())
}

/// A cursor from the Ruby layer's (sequence or nil, ledger String or nil).
fn cursor_arg(
    ruby: &Ruby,
    seq: Option<u64>,
    ledger: Option<String>,
) -> Result<Option<Cursor>, Error> {
    let Some(seq) = seq else {
        return Ok(None);
    };
    let ledger = match ledger {
        None => None,
        Some(s) => Some(uuid::Uuid::parse_str(&s).map_err(|_| {
            arg_error(
                ruby,
                format!("cursor: ledger {s:?} is not a ledger id (a UUID)"),
            )
        })?),
    };
    Ok(Some(Cursor::in_ledger(seq, ledger)))
}

fn names(ruby: &Ruby, stores: RArray) -> Result<Vec<String>, Error> {
    let mut out = Vec::with_capacity(stores.len());
    for v in stores.into_iter() {
        out.push(args::name(ruby, v, "stores: entry")?);
    }
    Ok(out)
}

/// The Ruby `ChangeEvent` for a core event.
pub fn event(ruby: &Ruby, e: ChangeEvent) -> Result<RValue, Error> {
    let class = match EVENT_CLASS.get() {
        Some(c) => ruby.get_inner(*c),
        None => {
            let ledger: RModule = ruby
                .class_object()
                .const_get::<_, RModule>("Igniter")?
                .const_get("Ledger")?;
            let c: RClass = ledger.const_get("ChangeEvent")?;
            let _ = EVENT_CLASS.set(c.into());
            c
        }
    };
    let ledger = e.ledger().map_or_else(
        || nil(ruby),
        |l| convert::string(ruby, &l.to_string(), true),
    );
    let id = convert::string(ruby, &e.id(), true);
    let seq = e.sequence();
    let at = e.emitted_at();
    let fact = FactObj::wrap_raw(ruby, e.fact().clone());
    class.funcall("_native", (id, fact, seq, ledger, at))
}

fn events(ruby: &Ruby, list: Vec<ChangeEvent>) -> Result<RArray, Error> {
    let a = ruby.ary_new_capa(list.len());
    for e in list {
        a.push(event(ruby, e)?)?;
    }
    Ok(a)
}

// ------------------------------------------------------------------ ChangefeedBuffer

#[allow(clippy::too_many_arguments)]
fn buffer_new(
    ruby: &Ruby,
    max_size: usize,
    queue: usize,
    overflow: Option<String>,
    close_policy: String,
    diag: usize,
    thresholds: RArray,
) -> Result<Obj<BufferObj>, Error> {
    let overflow = overflow
        .map(|o| Overflow::parse(&o))
        .transpose()
        .map_err(ledger_err(ruby))?;
    let close_policy = ClosePolicy::parse(&close_policy).map_err(ledger_err(ruby))?;
    let mut pairs: Vec<(String, f64)> = Vec::new();
    for pair in thresholds.into_iter() {
        let (k, v): (String, f64) = TryConvert::try_convert(pair)?;
        pairs.push((k, v));
    }
    let alert_thresholds = AlertThresholds::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), *v)))
        .map_err(ledger_err(ruby))?;
    let buf = ChangefeedBuffer::new(BufferOptions {
        max_size,
        subscriber_queue_size: queue,
        overflow,
        close_policy,
        diagnostic_ring_size: diag,
        alert_thresholds,
    })
    .map_err(ledger_err(ruby))?;
    Ok(ruby.obj_wrap(BufferObj { buf }))
}

fn buffer_emit(ruby: &Ruby, b: &BufferObj, fact: RValue) -> Result<RValue, Error> {
    let Ok(f) = <&FactObj>::try_convert(fact) else {
        return Err(Error::new(
            ruby.exception_type_error(),
            "emit needs an Igniter::Ledger::Fact",
        ));
    };
    let e = b.buf.emit(f.fact.clone()).map_err(ledger_err(ruby))?;
    event(ruby, e)
}

fn buffer_subscribe(
    ruby: &Ruby,
    b: &BufferObj,
    stores: RArray,
    seq: Option<u64>,
    ledger: Option<String>,
) -> Result<Obj<SubObj>, Error> {
    let stores = names(ruby, stores)?;
    let sub = match cursor_arg(ruby, seq, ledger)? {
        None => b.buf.subscribe(&stores),
        Some(c) => b
            .buf
            .subscribe_after(c, &stores)
            .map_err(ledger_err(ruby))?,
    };
    Ok(ruby.obj_wrap(SubObj { sub }))
}

fn buffer_replay(
    ruby: &Ruby,
    b: &BufferObj,
    seq: Option<u64>,
    ledger: Option<String>,
    stores: RArray,
    limit: Option<usize>,
) -> Result<RHash, Error> {
    let cursor = cursor_arg(ruby, seq, ledger)?;
    let stores = names(ruby, stores)?;
    let buf = b.buf.clone();
    let r = gvl::without_gvl(move || buf.replay(cursor, &stores, limit))
        .map_err(|m| errors::internal(ruby, "replay", m))?
        .map_err(ledger_err(ruby))?;
    let status = match r.status {
        ReplayStatus::Ok => "ok",
        ReplayStatus::CursorTooOld => "cursor_too_old",
    };
    hash_of(
        ruby,
        &[
            ("status", sym(ruby, status)),
            ("events", events(ruby, r.events)?.as_value()),
            ("cursor", cursor_hash(ruby, r.cursor)?),
            ("oldest_cursor", cursor_hash(ruby, r.oldest_cursor)?),
            ("newest_cursor", cursor_hash(ruby, r.newest_cursor)?),
            ("dropped_total", r.dropped_total.into_value_with(ruby)),
        ],
    )
}

fn alert_value(ruby: &Ruby, v: AlertValue) -> RValue {
    match v {
        AlertValue::Count(n) => n.into_value_with(ruby),
        AlertValue::Ratio(r) => r.into_value_with(ruby),
    }
}

fn alert_hash(ruby: &Ruby, a: &Alert) -> Result<RValue, Error> {
    let h = hash_of(
        ruby,
        &[
            ("code", sym(ruby, a.code)),
            ("severity", sym(ruby, a.severity)),
            ("value", alert_value(ruby, a.value)),
            ("threshold", alert_value(ruby, a.threshold)),
        ],
    )?;
    if let Some(id) = &a.subscriber_id {
        h.aset(sym(ruby, "subscriber_id"), convert::string(ruby, id, false))?;
    }
    Ok(h.as_value())
}

fn diag_hash(ruby: &Ruby, d: &Diagnostic) -> Result<RValue, Error> {
    let h = hash_of(
        ruby,
        &[
            ("type", sym(ruby, d.kind)),
            ("ts", d.ts.into_value_with(ruby)),
            (
                "subscriber_id",
                convert::string(ruby, &d.subscriber_id, false),
            ),
            ("stores", str_list(ruby, &d.stores)),
        ],
    )?;
    if let Some(o) = d.overflow {
        h.aset(sym(ruby, "overflow"), sym(ruby, o.name()))?;
    }
    if let Some(c) = &d.error_class {
        h.aset(sym(ruby, "error_class"), convert::string(ruby, c, false))?;
    }
    if let Some(m) = &d.message {
        h.aset(sym(ruby, "message"), convert::string(ruby, m, false))?;
    }
    Ok(h.as_value())
}

fn buffer_snapshot(ruby: &Ruby, b: &BufferObj) -> Result<RHash, Error> {
    let s = b.buf.snapshot();
    let alerts = ruby.ary_new_capa(s.alerts.len());
    for a in &s.alerts {
        alerts.push(alert_hash(ruby, a)?)?;
    }
    let recent = ruby.ary_new_capa(s.diagnostics.recent.len());
    for d in &s.diagnostics.recent {
        recent.push(diag_hash(ruby, d)?)?;
    }
    let diagnostics = hash_of(
        ruby,
        &[
            ("recent", recent.as_value()),
            (
                "recent_count",
                s.diagnostics.recent_count.into_value_with(ruby),
            ),
            (
                "dropped_diagnostics_total",
                s.diagnostics
                    .dropped_diagnostics_total
                    .into_value_with(ruby),
            ),
        ],
    )?;
    hash_of(
        ruby,
        &[
            ("emitted_total", s.emitted_total.into_value_with(ruby)),
            ("delivered_total", s.delivered_total.into_value_with(ruby)),
            ("dropped_total", s.dropped_total.into_value_with(ruby)),
            (
                "overflow_dropped_total",
                s.overflow_dropped_total.into_value_with(ruby),
            ),
            ("failed_total", s.failed_total.into_value_with(ruby)),
            ("buffered", s.buffered.into_value_with(ruby)),
            ("max_size", s.max_size.into_value_with(ruby)),
            ("subscriber_count", s.subscriber_count.into_value_with(ruby)),
            ("oldest_sequence", render::opt(ruby, s.oldest_sequence)),
            ("newest_sequence", render::opt(ruby, s.newest_sequence)),
            ("close_policy", sym(ruby, s.close_policy.name())),
            ("overflow", sym(ruby, s.overflow.name())),
            (
                "subscriber_queue_size",
                s.subscriber_queue_size.into_value_with(ruby),
            ),
            ("total_queued", s.total_queued.into_value_with(ruby)),
            ("alerts", alerts.as_value()),
            ("diagnostics", diagnostics.as_value()),
            ("attached", s.attached.into_value_with(ruby)),
            (
                "ledger",
                s.ledger.map_or_else(
                    || nil(ruby),
                    |l| convert::string(ruby, &l.to_string(), true),
                ),
            ),
        ],
    )
}

fn sub_hash(ruby: &Ruby, s: &SubscriberSnapshot) -> Result<RValue, Error> {
    Ok(hash_of(
        ruby,
        &[
            ("id", convert::string(ruby, &s.id, false)),
            ("stores", str_list(ruby, &s.stores)),
            ("queue_size", s.queue_size.into_value_with(ruby)),
            ("queue_max_size", s.queue_max_size.into_value_with(ruby)),
            ("overflow", sym(ruby, s.overflow.name())),
            ("close_policy", sym(ruby, s.close_policy.name())),
            ("status", sym(ruby, s.status)),
            ("delivered_total", s.delivered_total.into_value_with(ruby)),
            (
                "overflow_dropped_total",
                s.overflow_dropped_total.into_value_with(ruby),
            ),
            ("failed_total", s.failed_total.into_value_with(ruby)),
            ("lagging", s.lagging.into_value_with(ruby)),
        ],
    )?
    .as_value())
}

fn buffer_subscriber_snapshot(ruby: &Ruby, b: &BufferObj) -> Result<RArray, Error> {
    let list = b.buf.subscriber_snapshot();
    let a = ruby.ary_new_capa(list.len());
    for s in &list {
        a.push(sub_hash(ruby, s)?)?;
    }
    Ok(a)
}

fn buffer_subscriber_count(ruby: &Ruby, b: &BufferObj, store: RValue) -> Result<usize, Error> {
    let store = args::opt_name(ruby, store, "store")?;
    Ok(b.buf.subscriber_count(store.as_deref()))
}

fn buffer_is_attached(b: &BufferObj) -> bool {
    b.buf.is_attached()
}

// ------------------------------------------------------------------ Subscription

/// Waits up to `timeout` seconds (GVL released) for the next event: the `ChangeEvent`,
/// `false` on timeout, `nil` once closed.
fn sub_take(ruby: &Ruby, s: &SubObj, timeout: f64) -> Result<RValue, Error> {
    let t = Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
    let sub = &s.sub;
    let r =
        gvl::without_gvl(|| sub.take(Some(t))).map_err(|m| errors::internal(ruby, "take", m))?;
    match r {
        Recv::Event(e) => event(ruby, e),
        Recv::Timeout => Ok(ruby.qfalse().as_value()),
        Recv::Closed => Ok(nil(ruby)),
    }
}

fn sub_ack(s: &SubObj) {
    s.sub.ack();
}

fn sub_fail(s: &SubObj, class: String, message: String) {
    s.sub.fail(&class, &message);
}

fn sub_close(s: &SubObj) {
    s.sub.close();
}

fn sub_is_closed(s: &SubObj) -> bool {
    s.sub.is_closed()
}

fn sub_id(s: &SubObj) -> String {
    s.sub.id().to_owned()
}

fn sub_stores(s: &SubObj) -> Vec<String> {
    s.sub.stores().to_vec()
}

fn sub_snapshot(ruby: &Ruby, s: &SubObj) -> Result<RValue, Error> {
    sub_hash(ruby, &s.sub.snapshot())
}

// ------------------------------------------------------------------ LedgerStore

fn store_attach(ruby: &Ruby, s: &StoreObj, buf: RValue) -> Result<(), Error> {
    let Ok(b) = <&BufferObj>::try_convert(buf) else {
        return Err(Error::new(
            ruby.exception_type_error(),
            "changefeed: must be an Igniter::Ledger::ChangefeedBuffer",
        ));
    };
    s.ledger()
        .attach_changefeed(&b.buf)
        .map_err(ledger_err(ruby))
}

fn store_changes(
    ruby: &Ruby,
    s: &StoreObj,
    seq: Option<u64>,
    ledger: Option<String>,
    stores: RArray,
    limit: Option<usize>,
) -> Result<RArray, Error> {
    let mut q = ChangesQuery::new().stores(names(ruby, stores)?);
    if let Some(c) = cursor_arg(ruby, seq, ledger)? {
        q = q.after(c);
    }
    if let Some(l) = limit {
        q = q.limit(l);
    }
    let l = s.ledger().clone();
    let list = gvl::without_gvl(move || l.changes(&q))
        .map_err(|m| errors::internal(ruby, "changes", m))?
        .map_err(ledger_err(ruby))?;
    events(ruby, list)
}

fn store_ledger_id(ruby: &Ruby, s: &StoreObj) -> RValue {
    s.ledger().ledger_id().map_or_else(
        || nil(ruby),
        |l| convert::string(ruby, &l.to_string(), true),
    )
}

fn store_head(ruby: &Ruby, s: &StoreObj) -> Result<RValue, Error> {
    cursor_hash(ruby, Some(s.ledger().head()))
}

fn store_first_sequence(s: &StoreObj) -> u64 {
    s.ledger().first_sequence()
}

/// Defines `ChangefeedBuffer`, `Subscription` and the changefeed methods of `LedgerStore`.
pub fn define(ruby: &Ruby, ledger: RModule, store: RClass) -> Result<(), Error> {
    use magnus::{function, method};
    let argument = ledger.define_error("ChangefeedArgumentError", ruby.exception_arg_error())?;
    let too_old = ledger.define_error("CursorTooOldError", argument)?;
    let _ = ERRORS.set(ErrorClasses {
        argument: argument.into(),
        too_old: too_old.into(),
    });
    let buf = ledger.define_class("ChangefeedBuffer", ruby.class_object())?;
    buf.undef_default_alloc_func();
    buf.define_singleton_method("_new", function!(buffer_new, 6))?;
    buf.define_private_method("_emit", method!(buffer_emit, 1))?;
    buf.define_private_method("_subscribe", method!(buffer_subscribe, 3))?;
    buf.define_private_method("_replay", method!(buffer_replay, 4))?;
    buf.define_private_method("_subscriber_count", method!(buffer_subscriber_count, 1))?;
    buf.define_method("snapshot", method!(buffer_snapshot, 0))?;
    buf.define_method(
        "subscriber_snapshot",
        method!(buffer_subscriber_snapshot, 0),
    )?;
    buf.define_method("attached?", method!(buffer_is_attached, 0))?;

    let sub = ledger.define_class("Subscription", ruby.class_object())?;
    sub.undef_default_alloc_func();
    sub.define_private_method("_take", method!(sub_take, 1))?;
    sub.define_private_method("_ack", method!(sub_ack, 0))?;
    sub.define_private_method("_fail", method!(sub_fail, 2))?;
    sub.define_private_method("_close", method!(sub_close, 0))?;
    sub.define_method("closed?", method!(sub_is_closed, 0))?;
    sub.define_method("id", method!(sub_id, 0))?;
    sub.define_method("stores", method!(sub_stores, 0))?;
    sub.define_method("snapshot", method!(sub_snapshot, 0))?;

    store.define_private_method("_attach_changefeed", method!(store_attach, 1))?;
    store.define_private_method("_changes", method!(store_changes, 4))?;
    store.define_method("ledger_id", method!(store_ledger_id, 0))?;
    store.define_method("head", method!(store_head, 0))?;
    store.define_method("first_sequence", method!(store_first_sequence, 0))?;
    Ok(())
}
