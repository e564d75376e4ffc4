//! Reading facts written by the 0.5.2 Ruby `FileBackend` (JSON frame bodies).
//!
//! Each such body is one JSON object with `id, store, key, value, value_hash, causation,
//! transaction_time, valid_time, schema_version, producer, derivation` (older files:
//! `timestamp` and `term`). JSON cannot tell a Symbol from a String, so — as the 0.5.2
//! gem does when it reads its own files — hash keys come back as Symbols and every other
//! string as a String. The value hash is recomputed with this ledger's canonical encoding
//! (the 0.5.2 hash used a different one); a `causation` that is not a fact id (very old
//! files pointed at value hashes) is dropped and counted in the open report.

use std::sync::Arc;

use serde_json::Value as Json;
use uuid::Uuid;

use super::codec::{self, DecodeError};
use super::fact::{self, Body, Extra, Fact, FactData, Interner, Resident};
use super::time::Timestamp;
use super::value::{limits, MapKey, Value};

/// A JSON fact, or the 0.5.2 snapshot header.
pub(crate) enum JsonBody {
    Fact { fact: Fact, dropped_causation: bool },
    SnapshotHeader { fact_count: u64 },
}

fn err<T>(s: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(s.into()))
}

fn to_value(j: &Json, depth: usize) -> Result<Value, DecodeError> {
    if depth > limits::MAX_DEPTH {
        return err("JSON value nests too deeply");
    }
    Ok(match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(a) => Value::Array(
            a.iter()
                .map(|x| to_value(x, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(m) => Value::Map(
            m.iter()
                .map(|(k, v)| Ok((MapKey::Sym(k.clone()), to_value(v, depth + 1)?)))
                .collect::<Result<_, DecodeError>>()?,
        ),
    })
}

fn time_field(
    o: &serde_json::Map<String, Json>,
    names: &[&str],
) -> Result<Option<f64>, DecodeError> {
    for n in names {
        match o.get(*n) {
            None | Some(Json::Null) => continue,
            Some(Json::Number(x)) => return Ok(x.as_f64()),
            Some(other) => return err(format!("{n} is not a number: {other}")),
        }
    }
    Ok(None)
}

fn str_field<'a>(o: &'a serde_json::Map<String, Json>, name: &str) -> Result<&'a str, DecodeError> {
    match o.get(name) {
        Some(Json::String(s)) => Ok(s),
        Some(Json::Number(_)) | None | Some(_) => {
            err(format!("field {name} is missing or not a string"))
        }
    }
}

fn meta(o: &serde_json::Map<String, Json>, name: &str) -> Result<Option<Box<[u8]>>, DecodeError> {
    match o.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(j) => {
            let v = to_value(j, 1)?;
            let mut b = Vec::new();
            codec::write_value(&mut b, &v);
            Ok(Some(b.into_boxed_slice()))
        }
    }
}

/// Decodes a JSON frame body.
pub(crate) fn decode_json(body: &[u8], intern: &mut dyn Interner) -> Result<JsonBody, DecodeError> {
    let j: Json =
        serde_json::from_slice(body).map_err(|e| DecodeError(format!("JSON body: {e}")))?;
    let Json::Object(o) = j else {
        return err("JSON body is not an object");
    };
    if o.get("type").and_then(Json::as_str) == Some("snapshot_header") {
        let n = o.get("fact_count").and_then(Json::as_u64).unwrap_or(0);
        return Ok(JsonBody::SnapshotHeader { fact_count: n });
    }
    let id = Uuid::try_parse(str_field(&o, "id")?)
        .map_err(|_| DecodeError("JSON fact id is not a UUID".into()))?;
    let store_s = str_field(&o, "store")?;
    if store_s.is_empty() || store_s.len() > limits::MAX_STORE_NAME_BYTES {
        return err("JSON fact store name is empty or too long");
    }
    let store: Arc<str> = intern.store(store_s);
    let key_s = match o.get("key") {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Number(n)) => n.to_string(),
        _ => return err("JSON fact key is missing"),
    };
    let key = intern.key(&store, &key_s);
    let value = to_value(o.get("value").unwrap_or(&Json::Null), 1)?;
    value
        .validate("value")
        .map_err(|e| DecodeError(e.to_string()))?;
    let enc = codec::encode_value(&value);
    let (causation, dropped_causation) = match o.get("causation") {
        None | Some(Json::Null) => (Uuid::nil(), false),
        Some(Json::String(s)) => match Uuid::try_parse(s) {
            Ok(u) => (u, false),
            Err(_) => (Uuid::nil(), true),
        },
        Some(_) => (Uuid::nil(), true),
    };
    let tx = time_field(&o, &["transaction_time", "timestamp"])?
        .ok_or_else(|| DecodeError("JSON fact has no transaction_time".into()))?;
    let valid = time_field(&o, &["valid_time", "term"])?.unwrap_or(f64::NAN);
    let schema_version = match o.get("schema_version") {
        None | Some(Json::Null) => 1,
        Some(j) => j
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                DecodeError("schema_version is not a small non-negative integer".into())
            })?,
    };
    let producer = meta(&o, "producer")?;
    let derivation = meta(&o, "derivation")?;
    let extra = (producer.is_some() || derivation.is_some()).then(|| {
        Box::new(Extra {
            producer,
            derivation,
        })
    });
    Ok(JsonBody::Fact {
        fact: Fact(Arc::new(FactData::resident(
            id,
            Timestamp::from_secs_f64(tx),
            key,
            Resident {
                store,
                value: enc.bytes.into_boxed_slice(),
                causation,
                valid: if valid.is_finite() { valid } else { f64::NAN },
                schema_version,
                extra,
            },
        ))),
        dropped_causation,
    })
}

/// Re-stamps a fact with a later transaction time (used when imported times are not
/// strictly increasing).
pub(crate) fn with_tx(f: &Fact, tx: Timestamp) -> Fact {
    let d = &*f.0;
    match &d.body {
        // A located fact stays located: its segment is checked by id, not time.
        Body::Located(l) => Fact(Arc::new(FactData {
            id: d.id,
            tx,
            key: d.key.clone(),
            body: Body::Located(l.clone()),
        })),
        Body::Resident(_) => fact::with_tx_key(f, tx, d.key.clone()),
    }
}
