//! The Ruby extension of igniter-ledger: `Igniter::Ledger::LedgerStore`, `Fact` and
//! `CoercedFact` over the `igniter_ledger` core, built with magnus.
//!
//! | module | holds |
//! |---|---|
//! | `convert` | Ruby objects ⇄ core values, type-faithful, with error paths |
//! | `args` | values, store names, keys, times, fact ids |
//! | `render` | Symbols, Symbol-keyed Hashes, ids: the shapes answers are rendered in |
//! | `fact` | the `Fact` handle class |
//! | `operations` | core `Write`/`Append` from arguments; `Fact._build`, `Fact._restore` |
//! | `transaction` | `Transaction`: a core `Batch` filled by a `transaction` block |
//! | `store` | `LedgerStore`'s data, lifecycle and accessors |
//! | `caches` | the read cache and the partition-slice cache of Ruby objects |
//! | `writes` | `write`, `append`, `transaction`, `_replay` |
//! | `reads` | `read`, `read_fact`, history, partitions, queries, fact look-ups |
//! | `registration` | access paths (consumers) and coercions |
//! | `reports` | provenance, schema graph, open report, checkpoint, as Hashes |
//! | `retention` | retention policies, compaction, exact prune, erasure, activity |
//! | `callbacks` | coercion blocks and consumers held by the core |
//! | `derive` | derivations, scatters, relations, projections, `resolve` |
//! | `errors` | exception classes and the core-error mapping |
//! | `gvl` | running disk-bound work without the GVL |
//! | `protocol` | `Protocol::Interpreter`'s native methods over the core interpreter |
//! | `segments` | `SegmentedFileBackend` and the segmented store's methods |
//! | `changefeed` | `ChangefeedBuffer`, `Subscription`, `LedgerStore#changes` |
//! | `server` | `NativeServer`: the Rust ledger server (tokio) inside the Ruby process |
//! | `sync` | `LedgerStore#_start_sync`, `NativeSync`: the PostgreSQL sync hub for a store |
//! | `verify` | `LedgerStore#verify`, `LedgerStore.verify_file` |
//!
//! The public, keyword-argument API is defined in Ruby (`lib/igniter/ledger/*.rb`) on top
//! of the private methods defined here (named with a leading underscore), which convert
//! all their arguments at once; `transaction` is native. Nothing here panics on user input: every
//! failure is returned as a Ruby exception.

use std::sync::OnceLock;

use magnus::{prelude::*, value::Opaque, Error, RClass, RModule, Ruby, Value as RValue};

mod args;
mod caches;
mod callbacks;
mod changefeed;
mod convert;
mod derive;
mod errors;
mod fact;
mod gvl;
mod http_bridge;
mod identity;
mod operations;
mod protocol;
mod reads;
mod registration;
mod render;
mod reports;
mod retention;
mod segments;
mod server;
mod store;
mod sync;
mod transaction;
mod verify;
mod writes;

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

/// `Igniter::Store` (defined if needed) with `Igniter::Ledger` naming the same module.
fn alias_module(ruby: &Ruby, igniter: RModule) -> Result<RModule, Error> {
    let store = igniter.define_module("Store")?;
    if !igniter.funcall::<_, _, bool>("const_defined?", ("Ledger", false))? {
        igniter.const_set("Ledger", store)?;
    } else {
        let existing: RValue = igniter.const_get("Ledger")?;
        if !existing.equal(store)? {
            return Err(Error::new(
                ruby.exception_type_error(),
                "Igniter::Ledger is defined and is not Igniter::Store: load igniter-ledger \
                 before defining constants under Igniter::Ledger",
            ));
        }
    }
    Ok(store)
}

#[magnus::init(name = "igniter_ledger_native")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let igniter = ruby.define_module("Igniter")?;
    // The reference gem's names are the real ones (`Igniter::Store::IgniterStore`), so
    // `LedgerStore.name` is what existing code expects; `Igniter::Ledger` and
    // `LedgerStore` are the same objects under the new names (see `alias_module`).
    let ledger = alias_module(ruby, igniter)?;
    errors::define(ruby, ledger)?;

    let store_class = ledger.define_class("IgniterStore", ruby.class_object())?;
    if !ledger.funcall::<_, _, bool>("const_defined?", ("LedgerStore", false))? {
        ledger.const_set("LedgerStore", store_class)?;
    }
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
    operations::define(fact_class)?;
    transaction::define(ruby, ledger)?;
    store::define(store_class)?;
    writes::define(store_class)?;
    reads::define(store_class)?;
    registration::define(store_class)?;
    reports::define(store_class)?;
    derive::define(store_class)?;
    protocol::define(ruby, ledger)?;
    changefeed::define(ruby, ledger, store_class)?;
    retention::define(store_class, fact_class)?;
    segments::init(ruby, ledger, store_class)?;
    server::init(ruby, ledger)?;
    http_bridge::init(ruby, ledger)?;
    sync::init(ruby, ledger, store_class)?;
    verify::define(store_class)?;

    let native = ledger.define_module("Native")?;
    native.const_set("VERSION", env!("CARGO_PKG_VERSION"))?;
    native.const_set("CORE", "igniter_ledger (Rust)")?;
    Ok(())
}
