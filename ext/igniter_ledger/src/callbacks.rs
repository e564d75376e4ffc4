//! Ruby blocks and callables held by the core: coercions and consumers.
//!
//! Each wraps an `Opaque` reference to the Ruby object. The store that registered it
//! keeps the same reference in its list of callbacks and marks it for the GC (see
//! `store.rs`), so the object lives as long as the store does.
//!
//! The core calls these only from the thread that runs the Ruby method, with the GVL held:
//! coercions while reading, consumers from `LedgerStore::deliver`, which the extension
//! calls after a commit once the GVL is back.

use std::cell::RefCell;

use igniter_ledger::{BoxError, Coercion, Consumer, Fact, Notification, Value};
use magnus::{
    error::ErrorType, prelude::*, value::BoxValue, value::Opaque, Error, Exception, Ruby,
    Value as RValue,
};

use crate::convert;

/// A Ruby error kept across the core's frames until the extension can raise it.
enum Stashed {
    /// An exception object, registered with the GC while stashed.
    Exception(BoxValue<Exception>),
    /// A non-local exit (`throw`, `break`) or a Rust-made error; holds no GC-managed
    /// object other than an exception class (a constant).
    Other(Error),
}

impl Stashed {
    fn new(e: Error) -> Self {
        match e.error_type() {
            ErrorType::Exception(exc) => Stashed::Exception(BoxValue::new(*exc)),
            _ => Stashed::Other(e),
        }
    }
    fn into_error(self) -> Error {
        match self {
            Stashed::Exception(b) => Error::from(*b),
            Stashed::Other(e) => e,
        }
    }
}

thread_local! {
    /// What the last failing coercion on this thread raised.
    static COERCION_ERROR: RefCell<Option<Stashed>> = const { RefCell::new(None) };
    /// An exception that is not a `StandardError` (Interrupt, SystemExit, a thread kill)
    /// raised by a consumer: delivery continues, then it is re-raised.
    static DEFERRED: RefCell<Option<Stashed>> = const { RefCell::new(None) };
}

fn stash(slot: &'static std::thread::LocalKey<RefCell<Option<Stashed>>>, e: Error) {
    let s = Stashed::new(e);
    slot.with(|cell| {
        // Replacing an older entry drops it (unregistering it from the GC) on this
        // thread, with the GVL held.
        *cell.borrow_mut() = Some(s);
    });
}

fn take(slot: &'static std::thread::LocalKey<RefCell<Option<Stashed>>>) -> Option<Error> {
    slot.with(|cell| cell.borrow_mut().take())
        .map(Stashed::into_error)
}

/// The error the last failing coercion raised on this thread, if any.
pub fn take_coercion_error() -> Option<Error> {
    take(&COERCION_ERROR)
}

/// Re-raises an exception a consumer raised that must not be swallowed.
pub fn raise_deferred() -> Result<(), Error> {
    match take(&DEFERRED) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A coercion block: `block.call(value, schema_version)` → the value readers see.
pub struct RubyCoercion {
    pub callable: Opaque<RValue>,
}

impl Coercion for RubyCoercion {
    fn coerce(&self, value: &Value, schema_version: u32, fact: &Fact) -> Result<Value, BoxError> {
        let ruby = Ruby::get().map_err(|_| "a coercion block was called off a Ruby thread")?;
        let callable = ruby.get_inner(self.callable);
        // The block gets a fresh, unfrozen copy: it may change it in place.
        let input = convert::to_ruby(&ruby, value, false);
        let out: RValue = match callable.funcall("call", (input, schema_version)) {
            Ok(out) => out,
            Err(e) => {
                let message = e.to_string();
                stash(&COERCION_ERROR, e);
                return Err(message.into());
            }
        };
        convert::to_value(out, "coerced value").map_err(|ce| {
            let ce = ce.context(&format!(
                "coercion for store :{} returned an unsupported value",
                fact.store()
            ));
            let message = ce.message.clone();
            stash(&COERCION_ERROR, ce.into_error(&ruby));
            message.into()
        })
    }
}

/// A consumer: `consumer.call(store, key)` (point paths) or `consumer.call(store, scope)`
/// (scope paths).
pub struct RubyConsumer {
    pub callable: Opaque<RValue>,
}

impl Consumer for RubyConsumer {
    fn notify(&self, n: &Notification) -> Result<(), BoxError> {
        let ruby = Ruby::get().map_err(|_| "a consumer was called off a Ruby thread")?;
        let callable = ruby.get_inner(self.callable);
        let (store, second) = match n {
            Notification::Point { store, key } => (
                convert::symbol(&ruby, store),
                convert::string(&ruby, key, true),
            ),
            Notification::Scope { store, scope } => {
                (convert::symbol(&ruby, store), convert::symbol(&ruby, scope))
            }
            // A kind of notification newer than this binding: no Ruby consumer asked for it.
            _ => return Ok(()),
        };
        match callable.funcall::<_, _, RValue>("call", (store, second)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_kind_of(ruby.exception_standard_error()) => {
                let message = e.to_string();
                ruby.warning(&format!(
                    "igniter-ledger: a consumer raised ({message}); the write stands"
                ));
                Err(message.into())
            }
            Err(e) => {
                let message = e.to_string();
                stash(&DEFERRED, e);
                Err(message.into())
            }
        }
    }
}
