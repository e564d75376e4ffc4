//! Exception classes under `Igniter::Ledger` and the mapping from core errors to them.
//!
//! | core error | Ruby exception |
//! |---|---|
//! | `InvalidValue`, `InvalidArgument` | `ArgumentError` |
//! | `UnknownScope` | `Igniter::Ledger::UnknownScopeError` (an `ArgumentError`) |
//! | `Conflict` | `ConflictError` |
//! | `Locked` | `LockedError` |
//! | `Corruption` | `CorruptionError` |
//! | `Io` | `Igniter::Ledger::IOError` |
//! | `Poisoned` | `PoisonedError` |
//! | `Closed` | `ClosedError` |
//! | `Coercion` | whatever the coercion raised, else `CoercionError` |
//! | `Changefeed` | `ChangefeedArgumentError` / `CursorTooOldError` (ArgumentErrors), see `changefeed.rs` |
//!
//! `StorageError` is the common superclass of the storage failures (`IOError`,
//! `CorruptionError`, `LockedError`, `PoisonedError`); `Error` is the superclass of all of
//! the ledger's own errors.

use std::sync::OnceLock;

use igniter_ledger::Error as LedgerError;
use magnus::{
    exception::ExceptionClass, prelude::*, value::Opaque, Error, Exception, IntoValue, RModule,
    RObject, Ruby, Value,
};

use crate::callbacks;

struct Classes {
    error: Opaque<ExceptionClass>,
    io: Opaque<ExceptionClass>,
    corruption: Opaque<ExceptionClass>,
    locked: Opaque<ExceptionClass>,
    poisoned: Opaque<ExceptionClass>,
    closed: Opaque<ExceptionClass>,
    conflict: Opaque<ExceptionClass>,
    coercion: Opaque<ExceptionClass>,
    unknown_scope: Opaque<ExceptionClass>,
}

static CLASSES: OnceLock<Classes> = OnceLock::new();

/// Defines the exception classes under `ledger` (the `Igniter::Ledger` module).
pub fn define(ruby: &Ruby, ledger: RModule) -> Result<(), Error> {
    let error = ledger.define_error("Error", ruby.exception_standard_error())?;
    let storage = ledger.define_error("StorageError", error)?;
    let classes = Classes {
        error: error.into(),
        io: ledger.define_error("IOError", storage)?.into(),
        corruption: ledger.define_error("CorruptionError", storage)?.into(),
        locked: ledger.define_error("LockedError", storage)?.into(),
        poisoned: ledger.define_error("PoisonedError", storage)?.into(),
        closed: ledger.define_error("ClosedError", error)?.into(),
        conflict: ledger.define_error("ConflictError", error)?.into(),
        coercion: ledger.define_error("CoercionError", error)?.into(),
        unknown_scope: ledger
            .define_error("UnknownScopeError", ruby.exception_arg_error())?
            .into(),
    };
    // A second definition (the extension loaded twice) keeps the first set: the
    // constants are the same objects either way.
    let _ = CLASSES.set(classes);
    Ok(())
}

fn classes() -> &'static Classes {
    // `define` runs in the extension's Init function before any method can be called.
    CLASSES
        .get()
        .expect("igniter_ledger: exception classes are defined at load time")
}

/// `Igniter::Ledger::Error`.
pub fn base(ruby: &Ruby) -> ExceptionClass {
    ruby.get_inner(classes().error)
}

/// `Igniter::Ledger::ClosedError`.
pub fn closed(ruby: &Ruby) -> ExceptionClass {
    ruby.get_inner(classes().closed)
}

/// Maps core errors to Ruby exceptions (for `map_err`).
pub fn ledger_err(ruby: &Ruby) -> impl Fn(LedgerError) -> Error + '_ {
    move |e| ledger_error(ruby, e)
}

/// An exception of `class` with `message` and instance variables set (readable through
/// the `attr_reader`s the Ruby layer defines).
fn with_ivars(
    ruby: &Ruby,
    class: ExceptionClass,
    message: String,
    ivars: &[(&str, Value)],
) -> Error {
    match class.new_instance((ruby.str_new(&message),)) {
        Ok(exc) => {
            let exc: Exception = exc;
            if let Some(obj) = RObject::from_value(exc.as_value()) {
                for (name, value) in ivars {
                    if let Err(e) = obj.ivar_set(*name, *value) {
                        return e;
                    }
                }
            }
            Error::from(exc)
        }
        Err(e) => e,
    }
}

/// `:name` as Ruby's `Symbol#inspect` writes it (`:"odd name"` when quoting is needed).
fn sym_inspect(ruby: &Ruby, name: &str) -> String {
    ruby.to_symbol(name).as_value().inspect()
}

/// The Ruby exception for a core error.
pub fn ledger_error(ruby: &Ruby, e: LedgerError) -> Error {
    let c = classes();
    let message = e.to_string();
    match e {
        LedgerError::InvalidValue { .. } | LedgerError::InvalidArgument(_) => {
            Error::new(ruby.exception_arg_error(), message)
        }
        LedgerError::UnknownScope { store, scope } => with_ivars(
            ruby,
            ruby.get_inner(c.unknown_scope),
            // The reference's message names the scope as `scope=:name`; code matches on it.
            format!(
                "unknown scope: store={} scope={} (register an access path first)",
                sym_inspect(ruby, &store),
                sym_inspect(ruby, &scope)
            ),
            &[
                ("@store", ruby.to_symbol(&store).as_value()),
                ("@scope", ruby.to_symbol(&scope).as_value()),
            ],
        ),
        LedgerError::Conflict {
            store,
            key,
            expected,
            actual,
        } => with_ivars(
            ruby,
            ruby.get_inner(c.conflict),
            message,
            &[
                ("@store", ruby.to_symbol(&store).as_value()),
                ("@key", ruby.str_new(&key).as_value()),
                ("@expected", crate::render::opt_id(ruby, expected)),
                ("@actual", crate::render::opt_id(ruby, actual)),
            ],
        ),
        LedgerError::Locked { path } => with_ivars(
            ruby,
            ruby.get_inner(c.locked),
            message,
            &[("@path", ruby.str_new(&path.to_string_lossy()).as_value())],
        ),
        LedgerError::Corruption {
            path,
            offset,
            reason,
        } => with_ivars(
            ruby,
            ruby.get_inner(c.corruption),
            message,
            &[
                ("@path", ruby.str_new(&path.to_string_lossy()).as_value()),
                ("@offset", offset.into_value_with(ruby)),
                ("@reason", ruby.str_new(&reason).as_value()),
            ],
        ),
        LedgerError::Io { source, .. } => {
            let errno = match source.raw_os_error() {
                Some(n) => n.into_value_with(ruby),
                None => ruby.qnil().as_value(),
            };
            with_ivars(ruby, ruby.get_inner(c.io), message, &[("@errno", errno)])
        }
        LedgerError::Poisoned(_) => Error::new(ruby.get_inner(c.poisoned), message),
        LedgerError::Closed => Error::new(ruby.get_inner(c.closed), message),
        LedgerError::Changefeed(e) => crate::changefeed::ledger_error(ruby, e),
        LedgerError::Coercion { .. } => match callbacks::take_coercion_error() {
            Some(original) => original,
            None => Error::new(ruby.get_inner(c.coercion), message),
        },
        // The core's error enum may grow; anything new is at least a ledger error.
        #[allow(unreachable_patterns)]
        _ => Error::new(ruby.get_inner(c.error), message),
    }
}

/// A `RuntimeError`-like ledger error for a panic caught inside the extension.
pub fn internal(ruby: &Ruby, what: &str, msg: String) -> Error {
    Error::new(
        base(ruby),
        format!("internal error in igniter_ledger ({what}): {msg}"),
    )
}
