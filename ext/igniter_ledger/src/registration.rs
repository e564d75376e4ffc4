//! `LedgerStore`'s registrations of Ruby code the core calls: access paths (with their
//! consumers) and coercions. The store keeps every callable it hands the core.

use std::sync::Arc;

use igniter_ledger::{AccessPath, Value};
use magnus::{prelude::*, Error, RArray, RClass, Ruby, Value as RValue};

use crate::args;
use crate::callbacks::{RubyCoercion, RubyConsumer};
use crate::errors::ledger_err;
use crate::store::{lock, StoreObj};

fn callable(ruby: &Ruby, v: RValue, what: &str) -> Result<RValue, Error> {
    if v.respond_to("call", false)? {
        Ok(v)
    } else {
        Err(Error::new(
            ruby.exception_type_error(),
            format!("{what} must respond to #call"),
        ))
    }
}

#[allow(clippy::too_many_arguments)]
fn register_path(
    ruby: &Ruby,
    s: &StoreObj,
    store: RValue,
    scope: RValue,
    filters: RValue,
    lookup: RValue,
    cache_ttl: RValue,
    consumers: RValue,
) -> Result<(), Error> {
    let store = args::name(ruby, store, "store")?;
    let mut path = match args::opt_name(ruby, scope, "scope")? {
        Some(scope) => AccessPath::scope(store, scope),
        None => AccessPath::point(store),
    };
    if !filters.is_nil() {
        match args::value(ruby, filters, "filters")? {
            Value::Map(pairs) => {
                for (k, v) in pairs {
                    path = path.filter(k, v);
                }
            }
            _ => {
                return Err(Error::new(
                    ruby.exception_type_error(),
                    "filters must be a Hash",
                ))
            }
        }
    }
    if let Some(l) = args::opt_value(ruby, lookup, "lookup")? {
        path = path.lookup(l);
    }
    if let Some(ttl) = args::opt_secs(ruby, cache_ttl, "cache_ttl")? {
        path = path.cache_ttl(ttl);
    }
    if !consumers.is_nil() {
        let list = RArray::from_value(consumers).ok_or_else(|| {
            Error::new(
                ruby.exception_type_error(),
                "consumers must be an Array of objects responding to #call",
            )
        })?;
        // Check them all before keeping any.
        let mut checked = Vec::with_capacity(list.len());
        for (i, c) in list.into_iter().enumerate() {
            checked.push(callable(ruby, c, &format!("consumers[{i}]"))?);
        }
        for c in checked {
            let callable = s.keep(c);
            path = path.consumer(Arc::new(RubyConsumer { callable }));
        }
    }
    s.ledger().register_path(path).map_err(ledger_err(ruby))
}

fn register_coercion(ruby: &Ruby, s: &StoreObj, store: RValue, block: RValue) -> Result<(), Error> {
    let store = args::name(ruby, store, "store")?;
    let block = callable(ruby, block, "a coercion")?;
    let callable = s.keep(block);
    {
        let mut slices = lock(&s.slices);
        slices.forget_store(&store);
        slices.coerced.insert(store.clone());
    }
    s.any_coercion
        .store(true, std::sync::atomic::Ordering::Release);
    s.ledger
        .register_coercion(&store, Arc::new(RubyCoercion { callable }))
        .map_err(ledger_err(ruby))
}

/// Defines the registration methods of `LedgerStore`.
pub fn define(class: RClass) -> Result<(), Error> {
    use magnus::method;
    class.define_private_method("_register_path", method!(register_path, 6))?;
    class.define_private_method("_register_coercion", method!(register_coercion, 2))?;
    Ok(())
}
