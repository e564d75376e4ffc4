//! The Ruby extension of igniter-ledger: `Igniter::Ledger::LedgerStore`, `Fact` and
//! `CoercedFact` over the `igniter_ledger` core, built with magnus.
//!
//! | module | holds |
//! |---|---|
//! | `convert` | Ruby objects ⇄ core values, type-faithful, with error paths |
//! | `args` | store names, keys, times, fact ids |
//! | `fact` | the `Fact` handle class |
//! | `store` | `LedgerStore`'s native methods |
//! | `callbacks` | coercion blocks and consumers held by the core |
//! | `errors` | exception classes and the core-error mapping |
//! | `gvl` | running disk-bound work without the GVL |
//! | `protocol` | `Protocol::Interpreter`'s native methods over the core interpreter |
//! | `changefeed` | `ChangefeedBuffer`, `Subscription`, `LedgerStore#changes` |
//!
//! The public, keyword-argument API is defined in Ruby (`lib/igniter/ledger/*.rb`) on top
//! of the positional methods defined here. Nothing here panics on user input: every
//! failure is returned as a Ruby exception.

use std::sync::OnceLock;

use magnus::{prelude::*, value::Opaque, Error, RClass, Ruby};

mod args;
mod callbacks;
mod changefeed;
mod convert;
mod errors;
mod fact;
mod gvl;
mod protocol;
mod store;

/// The classes the extension wraps data in, defined at load.
pub(crate) struct Classes {
    pub store: Opaque<RClass>,
    pub fact: Opaque<RClass>,
    pub coerced_fact: Opaque<RClass>,
}

static CLASSES: OnceLock<Classes> = OnceLock::new();

impl Classes {
    /// The classes. Defined in `init` before any method that needs them can run.
    pub(crate) fn get() -> &'static Classes {
        CLASSES
            .get()
            .expect("igniter_ledger: classes are defined at load time")
    }
}

#[magnus::init(name = "igniter_ledger_native")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let igniter = ruby.define_module("Igniter")?;
    let ledger = igniter.define_module("Ledger")?;
    errors::define(ruby, ledger)?;

    let store_class = ledger.define_class("LedgerStore", ruby.class_object())?;
    store_class.undef_default_alloc_func();
    let fact_class = ledger.define_class("Fact", ruby.class_object())?;
    fact_class.undef_default_alloc_func();
    let coerced_class = ledger.define_class("CoercedFact", fact_class)?;
    coerced_class.undef_default_alloc_func();
    let _ = CLASSES.set(Classes {
        store: store_class.into(),
        fact: fact_class.into(),
        coerced_fact: coerced_class.into(),
    });

    fact::define(fact_class)?;
    store::define(store_class)?;
    protocol::define(ruby, ledger)?;
    changefeed::define(ruby, ledger, store_class)?;

    let native = ledger.define_module("Native")?;
    native.const_set("VERSION", env!("CARGO_PKG_VERSION"))?;
    native.const_set("CORE", "igniter_ledger (Rust)")?;
    Ok(())
}
