//! `Igniter::Ledger::NativeHTTPBridge` and `NativeHTTPResponder`: the Rust HTTP listener
//! (`igniter_ledger_server::server::bridge`, on tokio and hyper) whose requests Ruby
//! threads take and answer, so `HTTPAdapter#start_async` serves its Rack app without a
//! Ruby HTTP server (`lib/igniter/ledger/server/native_http.rb` is the Ruby side).
//!
//! Ruby is never called from the bridge's threads: Ruby threads wait for a request with
//! the GVL released (`_next`), call the app with the GVL, and send the answer through
//! the responder (each chunk sent with the GVL released, since a slow client makes it
//! wait).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use igniter_ledger_server::server::bridge::{Bridge, BridgeOptions, Responder};
use magnus::{prelude::*, Error, RArray, RModule, RString, Ruby, Value as RValue};

use crate::{errors, gvl};

/// The data behind a `NativeHTTPBridge`.
#[magnus::wrap(class = "Igniter::Ledger::NativeHTTPBridge", free_immediately, size)]
struct BridgeObj {
    bridge: Arc<Bridge>,
}

/// The data behind a `NativeHTTPResponder`.
#[magnus::wrap(class = "Igniter::Ledger::NativeHTTPResponder", free_immediately, size)]
struct ResponderObj {
    inner: Arc<Mutex<Option<Responder>>>,
}

fn runtime_error(ruby: &Ruby, m: impl std::fmt::Display) -> Error {
    Error::new(ruby.exception_runtime_error(), format!("http bridge: {m}"))
}

/// `NativeHTTPBridge._start(address, max_connections, header_read_timeout,
/// max_body_bytes)`: binds before it returns.
fn start(
    ruby: &Ruby,
    address: String,
    max_connections: usize,
    header_read_timeout: f64,
    max_body_bytes: usize,
) -> Result<BridgeObj, Error> {
    if !header_read_timeout.is_finite() || header_read_timeout <= 0.0 {
        return Err(Error::new(
            ruby.exception_arg_error(),
            "header_read_timeout must be a positive number of seconds",
        ));
    }
    let opts = BridgeOptions {
        max_connections,
        header_read_timeout: Duration::from_secs_f64(header_read_timeout),
        max_body_bytes,
        ..BridgeOptions::default()
    };
    let started = gvl::without_gvl(move || Bridge::start(&address, opts))
        .map_err(|m| errors::internal(ruby, "NativeHTTPBridge.start", m))?;
    let bridge = started.map_err(|e| runtime_error(ruby, e))?;
    Ok(BridgeObj {
        bridge: Arc::new(bridge),
    })
}

impl BridgeObj {
    fn port(&self) -> u16 {
        self.bridge.local_addr().port()
    }

    /// `_next(timeout)`: `[method, path, query, headers (pairs), body, remote,
    /// responder]`, or nil when no request came within `timeout` seconds (GVL released
    /// while waiting) or the bridge stopped.
    fn next(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<Option<RArray>, Error> {
        let b = rb_self.bridge.clone();
        let d = Duration::from_secs_f64(timeout.clamp(0.0, 5.0));
        let Some(req) = gvl::without_gvl(move || b.next(d))
            .map_err(|m| errors::internal(ruby, "NativeHTTPBridge#next", m))?
        else {
            return Ok(None);
        };
        let headers = ruby.ary_new_capa(req.headers.len());
        for (k, v) in &req.headers {
            headers.push(
                ruby.ary_new_from_values(&[ruby.str_new(k).as_value(), ruby.str_new(v).as_value()]),
            )?;
        }
        let responder = ruby.obj_wrap(ResponderObj {
            inner: Arc::new(Mutex::new(Some(req.responder))),
        });
        let out = ruby.ary_new_from_values(&[
            ruby.str_new(&req.method).as_value(),
            ruby.str_new(&req.path).as_value(),
            ruby.str_new(&req.query).as_value(),
            headers.as_value(),
            ruby.str_from_slice(&req.body).as_value(),
            ruby.str_new(&req.remote).as_value(),
            responder.as_value(),
        ]);
        Ok(Some(out))
    }

    fn stopped(&self) -> bool {
        self.bridge.stopped()
    }

    /// `_stop(timeout)`: stops listening; answers in progress get up to `timeout`
    /// seconds. GVL released.
    fn stop(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<(), Error> {
        let b = rb_self.bridge.clone();
        let d = Duration::from_secs_f64(timeout.clamp(0.0, 60.0));
        gvl::without_gvl(move || b.stop(d))
            .map_err(|m| errors::internal(ruby, "NativeHTTPBridge#stop", m))
    }
}

impl ResponderObj {
    /// `start(status, headers)` (headers: an Array of [name, value] pairs): false when
    /// the client is gone.
    fn start(ruby: &Ruby, rb_self: &Self, status: u16, headers: RArray) -> Result<bool, Error> {
        let mut pairs = Vec::with_capacity(headers.len());
        for pair in headers.into_iter() {
            let pair = RArray::from_value(pair)
                .ok_or_else(|| Error::new(ruby.exception_type_error(), "a header is a pair"))?;
            let k: String = pair.entry(0)?;
            let v: String = pair.entry(1)?;
            pairs.push((k, v));
        }
        let mut g = rb_self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(g.as_mut().is_some_and(|r| r.start(status, pairs)))
    }

    /// `write(chunk)`: false when the client is gone. Waits (GVL released) while the
    /// client reads slowly.
    fn write(ruby: &Ruby, rb_self: &Self, chunk: RValue) -> Result<bool, Error> {
        let s = RString::from_value(chunk)
            .ok_or_else(|| Error::new(ruby.exception_type_error(), "a body chunk is a String"))?;
        // SAFETY: the bytes are copied before any other Ruby call.
        let bytes = unsafe { s.as_slice() }.to_vec();
        let inner = rb_self.inner.clone();
        gvl::without_gvl(move || {
            let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
            g.as_mut().is_some_and(|r| r.write(bytes))
        })
        .map_err(|m| errors::internal(ruby, "NativeHTTPResponder#write", m))
    }

    /// `finish`: ends the answer.
    fn finish(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut r) = g.take() {
            r.finish();
        }
    }

    /// `open?`: the client still waits for the body.
    fn is_open(&self) -> bool {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref().is_some_and(Responder::open)
    }
}

/// Defines `NativeHTTPBridge` and `NativeHTTPResponder`.
pub fn init(ruby: &Ruby, ledger: RModule) -> Result<(), Error> {
    use magnus::{function, method};
    let class = ledger.define_class("NativeHTTPBridge", ruby.class_object())?;
    class.undef_default_alloc_func();
    class.define_singleton_method("_start", function!(start, 4))?;
    class.define_method("port", method!(BridgeObj::port, 0))?;
    class.define_method("_next", method!(BridgeObj::next, 1))?;
    class.define_method("stopped?", method!(BridgeObj::stopped, 0))?;
    class.define_method("_stop", method!(BridgeObj::stop, 1))?;
    let r = ledger.define_class("NativeHTTPResponder", ruby.class_object())?;
    r.undef_default_alloc_func();
    r.define_method("start", method!(ResponderObj::start, 2))?;
    r.define_method("write", method!(ResponderObj::write, 1))?;
    r.define_method("finish", method!(ResponderObj::finish, 0))?;
    r.define_method("open?", method!(ResponderObj::is_open, 0))?;
    Ok(())
}
