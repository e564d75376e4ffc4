//! Building core operations (`Write`, `Append`) from the arguments of `write`, `append`,
//! `Transaction#write`/`#append` and `Fact.build` (their Ruby wrappers pass the keyword
//! values in order), converting every argument at once; and `Fact._build` /
//! `Fact._restore` (standalone facts) on top of them.
//!
//! A keyword not given takes the core's default; `expected:` not given means "no check",
//! `expected: nil` (or `:none`) "the key must not exist yet". `term:` is the 0.5.x name
//! of `valid_time:`: both may be given when they agree.

use igniter_ledger::{Append, Expected, Fact, MapKey, Value, Write};
use magnus::{prelude::*, typed_data::Obj, Error, RClass, Ruby, Value as RValue};

use crate::caches::SliceKey;
use crate::fact::FactObj;

use crate::{args, convert, errors};

/// The arguments of a positional operation method (`_write`, `_append`, `_build`): the
/// values of its Ruby wrapper's keywords, in order. A trailing optional one (`expected:`)
/// counts as given only when passed: the wrapper leaves it out when its caller did.
pub fn positional<const N: usize>(
    ruby: &Ruby,
    argv: &[RValue],
    what: &str,
    min: usize,
) -> Result<[Option<RValue>; N], Error> {
    if argv.len() < min || argv.len() > N {
        return Err(Error::new(
            ruby.exception_arg_error(),
            format!("{what} takes {min} to {N} arguments, got {}", argv.len()),
        ));
    }
    let mut out = [None; N];
    for (slot, v) in out.iter_mut().zip(argv) {
        *slot = Some(*v);
    }
    Ok(out)
}

/// The valid time from `valid_time:` and its alias `term:` (they must agree when both
/// are given), as seconds.
/// The value passed, nil when not.
fn or_nil(ruby: &Ruby, v: Option<RValue>) -> RValue {
    v.unwrap_or_else(|| ruby.qnil().as_value())
}

fn valid_time(
    ruby: &Ruby,
    valid: Option<RValue>,
    term: Option<RValue>,
) -> Result<Option<f64>, Error> {
    let given = |v: Option<RValue>| v.filter(|v| !v.is_nil());
    let v = match (given(valid), given(term)) {
        (Some(v), Some(t)) => {
            if !v.funcall::<_, _, bool>("==", (t,))? {
                return Err(Error::new(
                    ruby.exception_arg_error(),
                    format!(
                        "valid_time: {} and term: {} disagree (term is an alias)",
                        v.inspect(),
                        t.inspect()
                    ),
                ));
            }
            Some(v)
        }
        (v, t) => v.or(t),
    };
    args::opt_valid_time(ruby, or_nil(ruby, v), "valid_time")
}

fn schema_version(ruby: &Ruby, v: Option<RValue>) -> Result<u32, Error> {
    v.map_or(Ok(1), |v| args::schema_version(ruby, v))
}

fn opt_value(ruby: &Ruby, v: Option<RValue>, what: &str) -> Result<Option<Value>, Error> {
    args::opt_value(ruby, or_nil(ruby, v), what)
}

/// A core `Write` from `write`'s arguments: store, key, value, schema_version,
/// causation, valid_time, term, producer, derivation and, when given, expected.
pub fn write(ruby: &Ruby, k: &[Option<RValue>]) -> Result<Write, Error> {
    let [store, key, value, schema, causation, valid, term, producer, derivation] = k[..9] else {
        unreachable!("callers pass at least nine keyword slots")
    };
    let store = args::name(ruby, or_nil(ruby, store), "store")?;
    let key = args::name(ruby, or_nil(ruby, key), "key")?;
    let value = args::value(ruby, or_nil(ruby, value), "value")?;
    let expected = match k.get(9).copied().flatten() {
        None => Expected::Any,
        Some(e) => args::expected(ruby, e)?,
    };
    let mut w = Write::new(store, key, value)
        .schema_version(schema_version(ruby, schema)?)
        .causation_opt(args::opt_fact_id(
            ruby,
            or_nil(ruby, causation),
            "causation",
        )?)
        .valid_time_opt(valid_time(ruby, valid, term)?)
        .expected(expected);
    if let Some(p) = opt_value(ruby, producer, "producer")? {
        w = w.producer(p);
    }
    if let Some(d) = opt_value(ruby, derivation, "derivation")? {
        w = w.derivation(d);
    }
    Ok(w)
}

/// A core `Append` from `append`'s arguments (history, event, partition_key,
/// schema_version, causation, valid_time, term, producer, derivation), and with `slice`
/// the partition slice
/// the event joins (for the partition cache) when `partition_key:` is given and the event
/// has that field.
pub fn append(
    ruby: &Ruby,
    k: &[Option<RValue>; 9],
    slice: bool,
) -> Result<(Append, Option<(SliceKey, Value)>), Error> {
    let [history, event, partition_key, schema, causation, valid, term, producer, derivation] = *k;
    let history = args::name(ruby, or_nil(ruby, history), "history")?;
    let event = args::value(ruby, or_nil(ruby, event), "event")?;
    let pk: Option<MapKey> = match partition_key.filter(|v| !v.is_nil()) {
        None => None,
        Some(v) => Some(convert::to_map_key(v, "partition_key").map_err(|e| e.into_error(ruby))?),
    };
    let slice = match (&pk, slice) {
        (Some(pk), true) => event
            .get(pk)
            .map(|pv| (SliceKey::new(history.clone(), pk.clone(), pv), pv.clone())),
        _ => None,
    };
    let mut a = Append::new(history, event)
        .partition_map_key(pk)
        .schema_version(schema_version(ruby, schema)?)
        .valid_time_opt(valid_time(ruby, valid, term)?);
    if let Some(c) = args::opt_fact_id(ruby, or_nil(ruby, causation), "causation")? {
        a = a.causation(c);
    }
    if let Some(p) = opt_value(ruby, producer, "producer")? {
        a = a.producer(p);
    }
    if let Some(d) = opt_value(ruby, derivation, "derivation")? {
        a = a.derivation(d);
    }
    Ok((a, slice))
}

/// `Fact._build(store, key, value, schema_version, causation, valid_time, term, producer,
/// derivation)`: a standalone fact (stored nowhere) with a fresh id and the current time.
fn build(ruby: &Ruby, argv: &[RValue]) -> Result<Obj<FactObj>, Error> {
    let k: [Option<RValue>; 9] = positional(ruby, argv, "Fact._build", 9)?;
    let fact = Fact::build(write(ruby, &k)?).map_err(|e| errors::ledger_error(ruby, e))?;
    Ok(FactObj::wrap_raw(ruby, fact))
}

/// An id recorded elsewhere: a Fact, a UUID String, or any other String (mapped to a
/// name-based UUID by the core, so equal strings give equal ids).
fn restored_id(ruby: &Ruby, v: RValue, what: &str) -> Result<Option<uuid::Uuid>, Error> {
    if v.is_nil() {
        return Ok(None);
    }
    if let Ok(f) = <&FactObj>::try_convert(v) {
        return Ok(Some(f.fact.id()));
    }
    match magnus::RString::from_value(v) {
        Some(s) => Ok(Some(Fact::id_from_str(&s.to_string()?))),
        None => Err(Error::new(
            ruby.exception_type_error(),
            format!("{what} must be a String, got {}", convert::class_name(v)),
        )),
    }
}

/// `Fact._restore(id, store, key, value, causation, transaction_time, valid_time,
/// schema_version, producer, derivation)`: a standalone fact keeping the given id and
/// times (`Fact.from_h`, which reads them from a Hash). A nil id or time gets a fresh one.
fn restore(ruby: &Ruby, argv: &[RValue]) -> Result<Obj<FactObj>, Error> {
    let [id, store, key, value, causation, tx, valid, schema, producer, derivation] = *argv else {
        return Err(Error::new(
            ruby.exception_arg_error(),
            "Fact._restore takes 10 arguments",
        ));
    };
    let w = write(
        ruby,
        &[
            Some(store),
            Some(key),
            Some(value),
            Some(schema),
            None,
            Some(valid),
            None,
            Some(producer),
            Some(derivation),
        ],
    )?;
    let tx = args::opt_time(ruby, tx, "transaction_time")?;
    let tx = tx.unwrap_or_else(igniter_ledger::Timestamp::now);
    let id = match restored_id(ruby, id, "id")? {
        Some(id) => id,
        // No id recorded: a fresh one, as a new fact gets.
        None => Fact::build(w.clone())
            .map_err(|e| errors::ledger_error(ruby, e))?
            .id(),
    };
    let causation = restored_id(ruby, causation, "causation")?;
    let fact = Fact::restore(w.into_parts(id, tx, causation));
    let fact = fact.map_err(|e| errors::ledger_error(ruby, e))?;
    Ok(FactObj::wrap_raw(ruby, fact))
}

/// Defines `Fact._build` and `Fact._restore`.
pub fn define(fact_class: RClass) -> Result<(), Error> {
    use magnus::function;
    fact_class.define_singleton_method("_build", function!(build, -1))?;
    fact_class.define_singleton_method("_restore", function!(restore, -1))?;
    Ok(())
}
