//! `Igniter::Ledger::Fact` and `CoercedFact`: light, frozen handles onto core facts.
//!
//! A handle holds the core `Fact` (one `Arc`) and, for a `CoercedFact`, the value a
//! coercion produced. The Ruby value is built the first time `#value` is called and kept
//! (deep-frozen) in the handle, which marks it for the GC; so returning many facts from
//! `history` costs one small object each, not a conversion of every value.

use std::sync::OnceLock;

use igniter_ledger::{Fact, ReadFact, Value};
use magnus::{
    data_type_builder, gc::Marker, prelude::*, typed_data::Obj, value::Opaque, DataType,
    DataTypeFunctions, Error, RClass, Ruby, TypedData, Value as RValue,
};

use crate::{convert, render, Classes};
use magnus::rb_sys::AsRawValue;

/// The data behind a `Fact` / `CoercedFact` object.
pub struct FactObj {
    /// The stored fact.
    pub fact: Fact,
    /// The value a coercion produced (CoercedFact only).
    pub coerced: Option<Box<Value>>,
    /// The Ruby form of the value readers see, once built.
    memo: OnceLock<Opaque<RValue>>,
}

impl FactObj {
    pub fn new(fact: Fact, coerced: Option<Value>) -> Self {
        FactObj {
            fact,
            coerced: coerced.map(Box::new),
            memo: OnceLock::new(),
        }
    }

    /// A frozen Ruby object for a fact as a reader sees it.
    pub fn wrap_read(ruby: &Ruby, rf: ReadFact) -> Obj<FactObj> {
        Self::wrap(ruby, FactObj::new(rf.fact, rf.coerced))
    }

    /// A frozen Ruby object for a stored fact.
    pub fn wrap_raw(ruby: &Ruby, fact: Fact) -> Obj<FactObj> {
        Self::wrap(ruby, FactObj::new(fact, None))
    }

    fn wrap(ruby: &Ruby, data: FactObj) -> Obj<FactObj> {
        let obj = ruby.obj_wrap(data);
        convert::freeze_fresh(obj.as_raw());
        obj
    }
}

impl DataTypeFunctions for FactObj {
    fn mark(&self, marker: &Marker) {
        if let Some(v) = self.memo.get() {
            marker.mark(*v);
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.fact.resident_value_len()
    }
}

// SAFETY: the data type has the `mark` and `size` flags backed by the implementations
// above; `free_immediately` is sound because dropping a `FactObj` calls no Ruby API
// (the memoized value is only an `Opaque` handle). The classes are those defined at load.
unsafe impl TypedData for FactObj {
    fn class(ruby: &Ruby) -> RClass {
        ruby.get_inner(Classes::get().fact)
    }

    fn data_type() -> &'static DataType {
        static DATA_TYPE: DataType = data_type_builder!(FactObj, "Igniter::Ledger::Fact")
            .mark()
            .size()
            .free_immediately()
            .build();
        &DATA_TYPE
    }

    fn class_for(ruby: &Ruby, value: &Self) -> RClass {
        if value.coerced.is_some() {
            ruby.get_inner(Classes::get().coerced_fact)
        } else {
            ruby.get_inner(Classes::get().fact)
        }
    }
}

fn id(ruby: &Ruby, f: &FactObj) -> RValue {
    render::id(ruby, f.fact.id())
}

fn store(ruby: &Ruby, f: &FactObj) -> RValue {
    convert::symbol(ruby, f.fact.store())
}

fn key(ruby: &Ruby, f: &FactObj) -> RValue {
    convert::string(ruby, f.fact.key(), true)
}

/// The value readers see (coerced for a CoercedFact), deep-frozen, built once. A fact
/// located in a sealed segment that can no longer be read raises the ledger's typed
/// error (`CorruptionError`, `StorageError`): never a nil that looks like a value.
fn value(ruby: &Ruby, f: &FactObj) -> Result<RValue, Error> {
    if let Some(v) = f.memo.get() {
        return Ok(ruby.get_inner(*v));
    }
    let v = match &f.coerced {
        Some(c) => convert::to_ruby(ruby, c, true),
        None => stored_value(ruby, &f.fact)?,
    };
    // Methods run with the GVL held, so no other thread can have set it meanwhile; if
    // one had, both values are equal and the stored one wins.
    Ok(match f.memo.set(Opaque::from(v)) {
        Ok(()) => v,
        Err(_) => f.memo.get().map_or(v, |stored| ruby.get_inner(*stored)),
    })
}

/// The stored value of a fact as a new deep-frozen Ruby object, or the ledger's error
/// when its bytes cannot be read back (a located fact whose segment broke after open).
pub fn stored_value(ruby: &Ruby, fact: &Fact) -> Result<RValue, Error> {
    let bytes = fact
        .try_value_bytes()
        .map_err(|e| crate::errors::ledger_error(ruby, e))?;
    // Stored bytes always decode (they were validated on the way in); should that ever
    // fail, fall back to the core's own decoder, which yields nil for undecodable bytes.
    Ok(convert::bytes_to_ruby(ruby, &bytes, true)
        .unwrap_or_else(|_| convert::to_ruby(ruby, &fact.value(), true)))
}

/// The stored value, before any coercion (a fresh frozen copy).
fn raw_value(ruby: &Ruby, f: &FactObj) -> Result<RValue, Error> {
    if f.coerced.is_none() {
        return value(ruby, f);
    }
    stored_value(ruby, &f.fact)
}

fn value_hash(ruby: &Ruby, f: &FactObj) -> RValue {
    convert::string(ruby, &f.fact.value_hash_hex(), true)
}

fn causation(ruby: &Ruby, f: &FactObj) -> RValue {
    render::opt_id(ruby, f.fact.causation())
}

fn transaction_time(f: &FactObj) -> f64 {
    f.fact.transaction_time().as_secs_f64()
}

fn valid_time(f: &FactObj) -> Option<f64> {
    f.fact.valid_time()
}

fn schema_version(f: &FactObj) -> u32 {
    f.fact.schema_version()
}

fn producer(ruby: &Ruby, f: &FactObj) -> RValue {
    render::opt_value(ruby, f.fact.producer().as_ref())
}

fn derivation(ruby: &Ruby, f: &FactObj) -> RValue {
    render::opt_value(ruby, f.fact.derivation().as_ref())
}

fn is_coerced(f: &FactObj) -> bool {
    f.coerced.is_some()
}

/// The stored fact behind a CoercedFact (a Fact answers itself).
fn raw_fact(ruby: &Ruby, rb_self: Obj<FactObj>) -> Obj<FactObj> {
    if rb_self.coerced.is_none() {
        return rb_self;
    }
    FactObj::wrap_raw(ruby, rb_self.fact.clone())
}

/// Same fact (id and content) and, for coerced facts, the same coerced value.
fn eq(f: &FactObj, other: RValue) -> bool {
    match <&FactObj>::try_convert(other) {
        Ok(o) => f.fact == o.fact && f.coerced == o.coerced,
        Err(_) => false,
    }
}

fn hash(f: &FactObj) -> i64 {
    let b = f.fact.id().into_bytes();
    let mut h = [0u8; 8];
    for (i, x) in b.iter().enumerate() {
        h[i % 8] ^= x;
    }
    i64::from_ne_bytes(h) >> 2
}

/// Defines the methods of `Fact` (CoercedFact inherits them).
pub fn define(class: RClass) -> Result<(), Error> {
    use magnus::method;
    class.define_method("id", method!(id, 0))?;
    class.define_method("store", method!(store, 0))?;
    class.define_method("key", method!(key, 0))?;
    class.define_method("value", method!(value, 0))?;
    class.define_method("raw_value", method!(raw_value, 0))?;
    class.define_method("value_hash", method!(value_hash, 0))?;
    class.define_method("causation", method!(causation, 0))?;
    class.define_method("transaction_time", method!(transaction_time, 0))?;
    class.define_method("valid_time", method!(valid_time, 0))?;
    class.define_method("schema_version", method!(schema_version, 0))?;
    class.define_method("producer", method!(producer, 0))?;
    class.define_method("derivation", method!(derivation, 0))?;
    class.define_method("coerced?", method!(is_coerced, 0))?;
    class.define_method("raw_fact", method!(raw_fact, 0))?;
    class.define_method("==", method!(eq, 1))?;
    class.define_method("eql?", method!(eq, 1))?;
    class.define_method("hash", method!(hash, 0))?;
    Ok(())
}
