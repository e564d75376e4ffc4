//! Derived state from Ruby: derivations, scatters, relations, projections, `resolve`,
//! and the lineage parts that list them. Ruby rules (any object responding to `#call`)
//! are wrapped as core rule objects; the store keeps each one in its callback list and
//! marks it for the GC (see `store.rs`), so it lives as long as the store.
//!
//! Rules run from `LedgerStore::react`, which the extension calls after a commit (once
//! the GVL is back, after the consumers): on the thread of the Ruby method that wrote,
//! with the GVL held. A rule that raises a `StandardError` is counted
//! (`derivation_failures`, `last_derivation_failure`) and warned about in verbose mode
//! (`-W`); the write stands. Any other exception (Interrupt, a thread
//! kill) is re-raised once the reactions are done.

use std::sync::Arc;

use igniter_ledger::{
    BoxError, Derivation, DerivationRule, Fact, HistoryQuery, MapKey, Projection, Relation,
    Scatter, ScatterRule, TargetKey, Value,
};
use magnus::{prelude::*, value::Opaque, Error, IntoValue, RArray, RHash, Ruby, Value as RValue};

use crate::callbacks;
use crate::errors::ledger_err;
use crate::fact::FactObj;
use crate::render::hash_of;
use crate::store::StoreObj;
use crate::{args, convert};

/// Calls a Ruby rule; a raised exception becomes a `BoxError` (warned about for a
/// `StandardError`, stashed for re-raising otherwise).
fn call(
    ruby: &Ruby,
    callable: Opaque<RValue>,
    what: &str,
    args: &[RValue],
) -> Result<RValue, BoxError> {
    let callable = ruby.get_inner(callable);
    match callable.funcall::<_, _, RValue>("call", args) {
        Ok(v) => Ok(v),
        Err(e) if e.is_kind_of(ruby.exception_standard_error()) => {
            let message = format!("{what} raised {e}");
            ruby.warning(&format!("igniter-ledger: {message}; the write stands"));
            Err(message.into())
        }
        Err(e) => {
            let message = e.to_string();
            callbacks::defer(e);
            Err(message.into())
        }
    }
}

fn ruby_handle(what: &str) -> Result<Ruby, BoxError> {
    Ruby::get().map_err(|_| format!("{what} was called off a Ruby thread").into())
}

fn fact_list(ruby: &Ruby, facts: &[Fact]) -> RValue {
    let ary = ruby.ary_new_capa(facts.len());
    for f in facts {
        let _ = ary.push(FactObj::wrap_raw(ruby, f.clone()));
    }
    ary.as_value()
}

fn result_value(ruby: &Ruby, out: RValue, what: &str) -> Result<Option<Value>, BoxError> {
    if out.is_nil() {
        return Ok(None);
    }
    convert::to_value(out, what).map(Some).map_err(|e| {
        let message = e.message.clone();
        ruby.warning(&format!("igniter-ledger: {message}; the write stands"));
        message.into()
    })
}

/// `rule.call(facts)` → the target value (nil: no write).
///
/// The `Fact` objects handed to the rule are kept between calls (in `held[0]`, a Ruby
/// Array the store marks), so a call builds objects only for the members that changed
/// since the last one: the core's members arrive sorted by key, as the kept objects are,
/// and one merge walk reuses every object whose fact is unchanged.
struct RubyDerivationRule {
    callable: Opaque<RValue>,
    /// A one-element Ruby Array holding the last call's facts Array.
    held: Opaque<RValue>,
}

impl RubyDerivationRule {
    fn facts_array(&self, ruby: &Ruby, facts: &[Fact]) -> RValue {
        let held = RArray::from_value(ruby.get_inner(self.held));
        let prev = held
            .and_then(|h| h.entry::<RValue>(0).ok())
            .and_then(RArray::from_value);
        let ary = ruby.ary_new_capa(facts.len());
        let mut j = 0;
        let prev_len = prev.map_or(0, |p| p.len());
        for f in facts {
            let mut reused = None;
            if let Some(prev) = prev {
                while j < prev_len {
                    let Ok(v) = prev.entry::<RValue>(j as isize) else {
                        break;
                    };
                    let Ok(old) = <&FactObj>::try_convert(v) else {
                        break;
                    };
                    if old.fact.id() == f.id() {
                        reused = Some(v);
                        j += 1;
                        break;
                    }
                    match old.fact.key().cmp(f.key()) {
                        std::cmp::Ordering::Less => j += 1,
                        std::cmp::Ordering::Equal => {
                            if old.fact.id() == f.id() {
                                reused = Some(v);
                            }
                            j += 1;
                            break;
                        }
                        std::cmp::Ordering::Greater => break,
                    }
                }
            }
            let v = reused.unwrap_or_else(|| FactObj::wrap_raw(ruby, f.clone()).as_value());
            let _ = ary.push(v);
        }
        if let Some(h) = held {
            let _ = h.store(0, ary);
        }
        // The rule gets its own copy (it may change it); the kept one stays intact.
        ary.dup().as_value()
    }
}

impl DerivationRule for RubyDerivationRule {
    fn derive(&self, facts: &[Fact]) -> Result<Option<Value>, BoxError> {
        let ruby = ruby_handle("a derivation rule")?;
        let list = self.facts_array(&ruby, facts);
        let out = call(&ruby, self.callable, "a derivation rule", &[list])?;
        result_value(&ruby, out, "the derivation rule's result")
    }
}

/// `target_key.call(facts)` → the target key (a String or Symbol).
struct RubyKeyRule {
    callable: Opaque<RValue>,
}

impl igniter_ledger::KeyRule for RubyKeyRule {
    fn key(&self, facts: &[Fact]) -> Result<String, BoxError> {
        let ruby = ruby_handle("a target_key callable")?;
        let out = call(
            &ruby,
            self.callable,
            "a target_key callable",
            &[fact_list(&ruby, facts)],
        )?;
        args::name(&ruby, out, "the target_key callable's result").map_err(|e| {
            let message = e.to_string();
            ruby.warning(&format!("igniter-ledger: {message}; the write stands"));
            message.into()
        })
    }
}

/// `rule.call(partition_value, existing_value, fact)` → the new target value.
struct RubyScatterRule {
    callable: Opaque<RValue>,
}

impl ScatterRule for RubyScatterRule {
    fn fold(
        &self,
        partition: &Value,
        existing: Option<&Value>,
        fact: &Fact,
    ) -> Result<Option<Value>, BoxError> {
        let ruby = ruby_handle("a scatter rule")?;
        let pv = convert::to_ruby(&ruby, partition, true);
        let existing =
            existing.map_or(ruby.qnil().as_value(), |v| convert::to_ruby(&ruby, v, true));
        let fact = FactObj::wrap_raw(&ruby, fact.clone()).as_value();
        let out = call(
            &ruby,
            self.callable,
            "a scatter rule",
            &[pv, existing, fact],
        )?;
        result_value(&ruby, out, "the scatter rule's result")
    }
}

fn rule_arg(ruby: &Ruby, v: RValue, what: &str) -> Result<RValue, Error> {
    if v.respond_to("call", false)? {
        Ok(v)
    } else {
        Err(Error::new(
            ruby.exception_arg_error(),
            format!(
                "{what} must respond to #call, got {}",
                convert::class_name(v)
            ),
        ))
    }
}

fn filters_arg(ruby: &Ruby, v: RValue) -> Result<Vec<(MapKey, Value)>, Error> {
    if v.is_nil() {
        return Ok(Vec::new());
    }
    match convert::to_value(v, "source_filters").map_err(|e| e.into_error(ruby))? {
        Value::Map(pairs) => Ok(pairs),
        _ => Err(Error::new(
            ruby.exception_type_error(),
            "source_filters must be a Hash",
        )),
    }
}

fn partition_arg(ruby: &Ruby, v: RValue, what: &str) -> Result<MapKey, Error> {
    if v.is_nil() {
        return Err(Error::new(
            ruby.exception_arg_error(),
            format!("{what} must not be nil"),
        ));
    }
    convert::to_map_key(v, what).map_err(|e| e.into_error(ruby))
}

/// `_register_derivation(source_store, source_filters, target_store, target_key, rule)`.
pub fn register_derivation(
    ruby: &Ruby,
    s: &StoreObj,
    source_store: RValue,
    filters: RValue,
    target_store: RValue,
    target_key: RValue,
    rule: RValue,
) -> Result<(), Error> {
    let source = args::name(ruby, source_store, "source_store")?;
    let filters = filters_arg(ruby, filters)?;
    let target = args::name(ruby, target_store, "target_store")?;
    let rule = rule_arg(ruby, rule, "rule:")?;
    let key = if target_key.respond_to("call", false)? {
        TargetKey::Computed(Arc::new(RubyKeyRule {
            callable: s.keep(target_key),
        }))
    } else {
        TargetKey::Fixed(args::name(ruby, target_key, "target_key")?)
    };
    let mut d = Derivation::with_rule(
        source,
        target,
        key,
        Arc::new(RubyDerivationRule {
            callable: s.keep(rule),
            held: s.keep(ruby.ary_new().as_value()),
        }),
    );
    for (k, v) in filters {
        d = d.filter(k, v);
    }
    let r = s.ledger.register_derivation(d).map_err(ledger_err(ruby));
    callbacks::raise_deferred()?;
    r
}

/// `_register_scatter(source_store, partition_by, target_store, rule)`.
pub fn register_scatter(
    ruby: &Ruby,
    s: &StoreObj,
    source_store: RValue,
    partition_by: RValue,
    target_store: RValue,
    rule: RValue,
) -> Result<(), Error> {
    let source = args::name(ruby, source_store, "source_store")?;
    let partition = partition_arg(ruby, partition_by, "partition_by")?;
    let target = args::name(ruby, target_store, "target_store")?;
    let rule = rule_arg(ruby, rule, "rule:")?;
    let sc = Scatter::with_rule(
        source,
        partition,
        target,
        Arc::new(RubyScatterRule {
            callable: s.keep(rule),
        }),
    );
    let r = s.ledger.register_scatter(sc).map_err(ledger_err(ruby));
    callbacks::raise_deferred()?;
    r
}

/// `_register_relation(name, source, partition, target)`.
pub fn register_relation(
    ruby: &Ruby,
    s: &StoreObj,
    name: RValue,
    source: RValue,
    partition: RValue,
    target: RValue,
) -> Result<(), Error> {
    let name = args::name(ruby, name, "relation name")?;
    let source = args::name(ruby, source, "source")?;
    let partition = partition_arg(ruby, partition, "partition")?;
    let target = args::name(ruby, target, "target")?;
    s.ledger
        .register_relation(Relation::new(name, source, partition, target))
        .map_err(ledger_err(ruby))
}

fn names(ruby: &Ruby, v: RValue, what: &str) -> Result<Vec<String>, Error> {
    if v.is_nil() {
        return Ok(Vec::new());
    }
    let list = RArray::from_value(v).ok_or_else(|| {
        Error::new(
            ruby.exception_type_error(),
            format!("{what} must be an Array of store names"),
        )
    })?;
    list.into_iter()
        .enumerate()
        .map(|(i, n)| args::name(ruby, n, &format!("{what}[{i}]")))
        .collect()
}

/// `_register_projection(name, reads, relations, consumer_hint, reactive)`.
pub fn register_projection(
    ruby: &Ruby,
    s: &StoreObj,
    name: RValue,
    reads: RValue,
    relations: RValue,
    consumer_hint: RValue,
    reactive: RValue,
) -> Result<(), Error> {
    let mut p = Projection::new(
        args::name(ruby, name, "projection name")?,
        names(ruby, reads, "reads")?,
    );
    p.relations = names(ruby, relations, "relations")?;
    p.consumer_hint =
        convert::to_value(consumer_hint, "consumer_hint").map_err(|e| e.into_error(ruby))?;
    p.reactive = reactive.to_bool();
    s.ledger.register_projection(p).map_err(ledger_err(ruby))
}

/// `_resolve(name, from, as_of)` → Array of values.
pub fn resolve(
    ruby: &Ruby,
    s: &StoreObj,
    name: RValue,
    from: RValue,
    as_of: RValue,
) -> Result<RArray, Error> {
    let name = args::name(ruby, name, "relation name")?;
    let from = convert::to_value(from, "from").map_err(|e| e.into_error(ruby))?;
    let as_of = args::opt_time(ruby, as_of, "as_of")?;
    let values = s
        .ledger
        .resolve(&name, &from, as_of)
        .map_err(ledger_err(ruby))?;
    callbacks::take_coercion_error().map_or(Ok(()), Err)?;
    Ok(ruby.ary_from_iter(values.iter().map(|v| convert::to_ruby(ruby, v, true))))
}

/// `derivation_failures` → Integer.
pub fn derivation_failures(s: &StoreObj) -> u64 {
    s.ledger.derivation_failures()
}

/// `last_derivation_failure` → String (which rule, and what it raised) or nil.
pub fn last_derivation_failure(s: &StoreObj) -> Option<String> {
    s.ledger.last_derivation_failure()
}

/// Lineage chain entries in the reference's shape: `{id, store, key, causation,
/// value_hash, transaction_time, valid_time, schema_version}`, oldest first.
pub fn lineage_chain(ruby: &Ruby, s: &StoreObj, store: &str, key: &str) -> Result<RArray, Error> {
    let facts = s.ledger.history_raw(HistoryQuery::new(store).key(key));
    let ary = ruby.ary_new_capa(facts.len());
    for f in &facts {
        let causation = match f.causation() {
            Some(c) => convert::string(ruby, &c.to_string(), true),
            None => ruby.qnil().as_value(),
        };
        ary.push(hash_of(
            ruby,
            &[
                ("id", convert::string(ruby, &f.id().to_string(), true)),
                ("store", convert::symbol(ruby, f.store())),
                ("key", convert::string(ruby, f.key(), true)),
                ("causation", causation),
                (
                    "value_hash",
                    convert::string(ruby, &f.value_hash_hex(), true),
                ),
                (
                    "transaction_time",
                    f.transaction_time().as_secs_f64().into_value_with(ruby),
                ),
                ("valid_time", f.valid_time().into_value_with(ruby)),
                ("schema_version", f.schema_version().into_value_with(ruby)),
            ],
        )?)?;
    }
    Ok(ary)
}

/// `derived_by` in the reference's shape: `[{target_store:, target_key: (key or
/// :callable), source_filters:}]`.
pub fn derived_by(ruby: &Ruby, list: &[Derivation]) -> Result<RArray, Error> {
    let ary = ruby.ary_new_capa(list.len());
    for d in list {
        let key = match d.target_key().fixed() {
            Some(k) => convert::string(ruby, k, true),
            None => convert::symbol(ruby, "callable"),
        };
        let filters: RHash = ruby.hash_new();
        for (k, v) in d.filters() {
            filters.aset(
                convert::key_to_ruby(ruby, k),
                convert::to_ruby(ruby, v, true),
            )?;
        }
        ary.push(hash_of(
            ruby,
            &[
                ("target_store", convert::symbol(ruby, d.target_store())),
                ("target_key", key),
                ("source_filters", filters.as_value()),
            ],
        )?)?;
    }
    Ok(ary)
}

/// Defines the derivation methods of `LedgerStore`.
pub fn define(class: magnus::RClass) -> Result<(), Error> {
    use magnus::method;
    class.define_private_method("_register_derivation", method!(register_derivation, 5))?;
    class.define_private_method("_register_scatter", method!(register_scatter, 4))?;
    class.define_private_method("_register_relation", method!(register_relation, 4))?;
    class.define_private_method("_register_projection", method!(register_projection, 5))?;
    class.define_private_method("_resolve", method!(resolve, 3))?;
    class.define_method("derivation_failures", method!(derivation_failures, 0))?;
    class.define_method(
        "last_derivation_failure",
        method!(last_derivation_failure, 0),
    )?;
    Ok(())
}
