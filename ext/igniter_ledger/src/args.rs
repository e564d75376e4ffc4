//! Arguments: values, store names, keys, times, fact ids, schema versions, `expected:`.

use igniter_ledger::{Expected, Timestamp, Value};
use magnus::{prelude::*, Error, Integer, RString, Ruby, Symbol, TryConvert, Value as RValue};
use uuid::Uuid;

use crate::convert;
use crate::fact::FactObj;
use magnus::rb_sys::AsRawValue;

use convert::class_name;

fn type_error(ruby: &Ruby, msg: String) -> Error {
    Error::new(ruby.exception_type_error(), msg)
}

fn arg_error(ruby: &Ruby, msg: String) -> Error {
    Error::new(ruby.exception_arg_error(), msg)
}

/// A value (`what` names it in errors: `value`, `event`, `producer` ...).
pub fn value(ruby: &Ruby, v: RValue, what: &str) -> Result<Value, Error> {
    convert::to_value(v, what).map_err(|e| e.into_error(ruby))
}

/// An optional value (nil → None).
pub fn opt_value(ruby: &Ruby, v: RValue, what: &str) -> Result<Option<Value>, Error> {
    if v.is_nil() {
        Ok(None)
    } else {
        value(ruby, v, what).map(Some)
    }
}

/// A name given as a Symbol or a String.
pub fn name(ruby: &Ruby, v: RValue, what: &str) -> Result<String, Error> {
    if Symbol::from_value(v).is_some() {
        return convert::sym_name(v)
            .map_err(|_| arg_error(ruby, format!("{what} is a Symbol with invalid UTF-8")));
    }
    if RString::from_value(v).is_some() {
        // SAFETY: `v` is a String; its bytes are copied before any other Ruby call.
        return match unsafe { convert::str_ref(v.as_raw()) } {
            convert::StrRef::Utf8(t) => Ok(t.to_owned()),
            convert::StrRef::Binary(b) => std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| arg_error(ruby, format!("{what} is a String with invalid UTF-8"))),
            // Another encoding: converted to UTF-8 (as Ruby would), or refused.
            convert::StrRef::Other(_) => RString::from_value(v)
                .map_or(Err(()), |s| s.to_string().map_err(|_| ()))
                .map_err(|_| arg_error(ruby, format!("{what} is a String with invalid UTF-8"))),
            convert::StrRef::BadUtf8(_) => Err(arg_error(
                ruby,
                format!("{what} is a String with invalid UTF-8"),
            )),
        };
    }
    Err(type_error(
        ruby,
        format!("{what} must be a Symbol or a String, got {}", class_name(v)),
    ))
}

/// An optional name (nil → None).
pub fn opt_name(ruby: &Ruby, v: RValue, what: &str) -> Result<Option<String>, Error> {
    if v.is_nil() {
        Ok(None)
    } else {
        name(ruby, v, what).map(Some)
    }
}

/// Seconds as a float, from a Numeric or a Time.
fn secs(ruby: &Ruby, v: RValue, what: &str) -> Result<f64, Error> {
    // The common cases first, by type tag (no method or ancestry look-ups).
    if let Some(f) = magnus::Float::from_value(v) {
        let t = f.to_f64();
        if !t.is_nan() {
            return Ok(t);
        }
    } else if let Some(i) = magnus::Fixnum::from_value(v) {
        return Ok(i.to_i64() as f64);
    }
    let t = if v.is_kind_of(ruby.class_time()) {
        v.funcall::<_, _, f64>("to_f", ())?
    } else if v.is_kind_of(ruby.class_numeric()) {
        f64::try_convert(v)?
    } else {
        return Err(type_error(
            ruby,
            format!(
                "{what} must be a number of seconds since the epoch (Float, Integer) or a Time, got {}",
                class_name(v)
            ),
        ));
    };
    if t.is_nan() {
        return Err(arg_error(ruby, format!("{what} is NaN")));
    }
    Ok(t)
}

/// An optional time in seconds (nil → None).
pub fn opt_secs(ruby: &Ruby, v: RValue, what: &str) -> Result<Option<f64>, Error> {
    if v.is_nil() {
        Ok(None)
    } else {
        secs(ruby, v, what).map(Some)
    }
}

/// An optional valid time: like [`opt_secs`], and also finite (a valid time is stored;
/// refusing it here lets a batch name the operation).
pub fn opt_valid_time(ruby: &Ruby, v: RValue, what: &str) -> Result<Option<f64>, Error> {
    match opt_secs(ruby, v, what)? {
        Some(t) if t.is_infinite() => Err(arg_error(
            ruby,
            format!(
                "{what} must be a finite number of seconds, got {}Infinity",
                if t < 0.0 { "-" } else { "" }
            ),
        )),
        t => Ok(t),
    }
}

/// An optional transaction time (nil → None).
pub fn opt_time(ruby: &Ruby, v: RValue, what: &str) -> Result<Option<Timestamp>, Error> {
    Ok(opt_secs(ruby, v, what)?.map(Timestamp::from_secs_f64))
}

/// A fact id from a String (canonical UUID) or a Fact.
pub fn fact_id(ruby: &Ruby, v: RValue, what: &str) -> Result<Uuid, Error> {
    if let Ok(f) = <&FactObj>::try_convert(v) {
        return Ok(f.fact.id());
    }
    let s: String = match RString::from_value(v) {
        Some(s) => s.to_string()?,
        None => {
            return Err(type_error(
                ruby,
                format!(
                    "{what} must be a fact id (String) or a Fact, got {}",
                    class_name(v)
                ),
            ))
        }
    };
    Uuid::try_parse(&s).map_err(|_| arg_error(ruby, format!("{what} {s:?} is not a fact id")))
}

/// An optional fact id (nil → None).
pub fn opt_fact_id(ruby: &Ruby, v: RValue, what: &str) -> Result<Option<Uuid>, Error> {
    if v.is_nil() {
        Ok(None)
    } else {
        fact_id(ruby, v, what).map(Some)
    }
}

/// A fact id for a lookup: nil, blank or malformed → None (lookups answer nil).
pub fn lookup_id(v: RValue) -> Option<Uuid> {
    if let Ok(f) = <&FactObj>::try_convert(v) {
        return Some(f.fact.id());
    }
    let s = RString::from_value(v)?.to_string().ok()?;
    Uuid::try_parse(s.trim()).ok()
}

/// A given `expected:` of a write: nil or `:none` → the key must not exist; a fact id or
/// Fact → that must be the latest fact. (Not given: no check.)
pub fn expected(ruby: &Ruby, v: RValue) -> Result<Expected, Error> {
    if v.is_nil() {
        return Ok(Expected::Absent);
    }
    if let Some(s) = Symbol::from_value(v) {
        if s.name().map(|n| n == "none").unwrap_or(false) {
            return Ok(Expected::Absent);
        }
        return Err(arg_error(
            ruby,
            format!(
                "expected: must be a fact id, a Fact, nil or :none, got :{}",
                s.name().unwrap_or_default()
            ),
        ));
    }
    fact_id(ruby, v, "expected:").map(Expected::Fact)
}

/// A schema version (0..=u32::MAX).
pub fn schema_version(ruby: &Ruby, v: RValue) -> Result<u32, Error> {
    let i = Integer::from_value(v).ok_or_else(|| {
        type_error(
            ruby,
            format!("schema_version must be an Integer, got {}", class_name(v)),
        )
    })?;
    i.to_u32().map_err(|_| {
        Error::new(
            ruby.exception_range_error(),
            format!("schema_version {i} is out of range (0..{})", u32::MAX),
        )
    })
}
