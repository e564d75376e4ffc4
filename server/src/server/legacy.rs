//! The framed-JSON ops: the reference `StoreServer`'s legacy ops and the `ledger.*` ops
//! of the remote store.
//!
//! Legacy requests are `{op: "...", ...}` and answers `{ok: true, ...}` or
//! `{ok: false, error_code, error}`:
//!
//! | op | request | answer |
//! |---|---|---|
//! | `write_fact` | `{fact: {id, store, key, value, ...}}` | `{ok}`: the fact is committed with its own id |
//! | `replay` | | `{ok, facts: [fact hashes]}` (every fact, in commit order) |
//! | `write_snapshot` | `{facts}` | `{ok}` (a checkpoint of a file ledger) |
//! | `stats` | | `{ok, facts_written, connections_active, uptime_ms}` |
//! | `server_status` | | `{ok, schema_version, status, uptime_ms, metrics, alerts, server}` |
//! | `ping` / `close` | | `{ok, pong}` / `{ok}` |
//!
//! The remote store's ops (values as JSON; the server assigns ids and times):
//!
//! | op | request | answer |
//! |---|---|---|
//! | `ledger.write` | `{store, key, value, expected?, valid_time?, causation?, producer?, derivation?}` | `{ok, fact}` |
//! | `ledger.append` | `{history, event, partition_key?, valid_time?, causation?, producer?}` | `{ok, fact}` |
//! | `ledger.commit` | `{ops: [{op: "write"\|"append", ...}]}` | `{ok, facts}` (atomic) |
//! | `ledger.read` | `{store, key, as_of?, valid_at?}` | `{ok, found, value, fact?}` |
//! | `ledger.history` | `{store, key?, since?, as_of?}` | `{ok, facts}` |
//! | `ledger.count` | | `{ok, count, head}` (head: the newest sequence) |
//! | `ledger.changes` | `{after?, stores?, limit?}` | `{ok, events, cursor}` |
//!
//! `expected` is `null` (no check), `"absent"`, or a fact id. A conflict answers
//! `{ok: false, error_code: "conflict", error, store, key, expected, actual}`.

use igniter_ledger::protocol::json;
use igniter_ledger::{
    Append, Batch, ChangesQuery, Cursor, Error as LedgerError, Expected, Fact, FactParts,
    HistoryQuery, Op, Read, Timestamp, Write,
};
use serde_json::{json, Map, Value as Json};
use uuid::Uuid;

use super::Shared;

/// A legacy fact hash (the reference's `Fact#to_h`): `id, store, key, value, value_hash,
/// causation, transaction_time, valid_time, schema_version, producer, derivation`.
pub fn fact_json(f: &Fact) -> Json {
    json!({
        "id": f.id().to_string(),
        "store": f.store(),
        "key": f.key(),
        "value": json::to_json(&f.value()),
        "value_hash": f.value_hash_hex(),
        "causation": f.causation().map(|c| c.to_string()),
        "transaction_time": f.transaction_time().as_secs_f64(),
        "valid_time": f.valid_time(),
        "schema_version": f.schema_version(),
        "producer": f.producer().map(|p| json::to_json(&p)),
        "derivation": f.derivation().map(|d| json::to_json(&d)),
    })
}

/// An error answer.
pub fn error(code: &str, message: impl Into<String>) -> Json {
    json!({"ok": false, "error_code": code, "error": message.into()})
}

fn bad(message: impl Into<String>) -> Json {
    error("invalid_request", message)
}

fn str_field<'a>(o: &'a Map<String, Json>, name: &str) -> Result<&'a str, Json> {
    match o.get(name) {
        Some(Json::String(s)) if !s.is_empty() => Ok(s),
        Some(Json::Number(n)) if name == "key" => {
            Err(bad(format!("{name}: must be a String, got the number {n}")))
        }
        Some(other) => Err(bad(format!(
            "{name}: must be a non-empty String, got {other}"
        ))),
        None => Err(bad(format!("{name}: missing"))),
    }
}

fn opt_f64(o: &Map<String, Json>, name: &str) -> Result<Option<f64>, Json> {
    match o.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f)),
            _ => Err(bad(format!("{name}: must be a non-negative number"))),
        },
        Some(other) => Err(bad(format!("{name}: must be a number, got {other}"))),
    }
}

fn opt_uuid(o: &Map<String, Json>, name: &str) -> Result<Option<Uuid>, Json> {
    match o.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(Fact::id_from_str(s))),
        Some(other) => Err(bad(format!(
            "{name}: must be a fact id String, got {other}"
        ))),
    }
}

fn opt_value(o: &Map<String, Json>, name: &str) -> Option<igniter_ledger::Value> {
    match o.get(name) {
        None | Some(Json::Null) => None,
        Some(v) => Some(json::from_json(v)),
    }
}

fn ledger_error(e: LedgerError) -> Json {
    match e {
        LedgerError::Conflict {
            store,
            key,
            expected,
            actual,
        } => {
            let message = LedgerError::Conflict {
                store: store.clone(),
                key: key.clone(),
                expected,
                actual,
            }
            .to_string();
            json!({
                "ok": false, "error_code": "conflict", "error": message,
                "store": store, "key": key,
                "expected": expected.map(|u| u.to_string()),
                "actual": actual.map(|u| u.to_string()),
            })
        }
        LedgerError::InvalidArgument(m) => error("invalid_argument", m),
        e @ LedgerError::InvalidValue { .. } => error("invalid_value", e.to_string()),
        e @ LedgerError::Closed => error("closed", e.to_string()),
        e => error("internal_error", e.to_string()),
    }
}

/// Decodes a legacy fact hash into the parts of a fact keeping its id and times.
pub fn decode_fact(v: &Json) -> Result<FactParts, Json> {
    let Json::Object(o) = v else {
        return Err(bad(format!("fact: must be a Hash, got {v}")));
    };
    let id = match o.get("id") {
        Some(Json::String(s)) if !s.is_empty() => Fact::id_from_str(s),
        _ => return Err(bad("fact: id must be a non-empty String")),
    };
    let tx = opt_f64(o, "transaction_time")?
        .or(opt_f64(o, "timestamp")?)
        .map(Timestamp::from_secs_f64)
        .unwrap_or_else(Timestamp::now);
    let schema_version = match o.get("schema_version") {
        None | Some(Json::Null) => 1,
        Some(Json::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad("fact: schema_version must be a small non-negative Integer"))?,
        Some(_) => return Err(bad("fact: schema_version must be an Integer")),
    };
    Ok(FactParts {
        id,
        store: str_field(o, "store")?.to_owned(),
        key: key_text(o, "key")?,
        value: opt_value(o, "value").unwrap_or_default(),
        causation: opt_uuid(o, "causation")?,
        transaction_time: tx,
        valid_time: opt_f64(o, "valid_time")?,
        schema_version,
        producer: opt_value(o, "producer"),
        derivation: opt_value(o, "derivation"),
    })
}

fn key_text(o: &Map<String, Json>, name: &str) -> Result<String, Json> {
    match o.get(name) {
        Some(Json::String(s)) => Ok(s.clone()),
        Some(Json::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(bad(format!("{name}: must be a String, got {other}"))),
        None => Err(bad(format!("{name}: missing"))),
    }
}

fn expected(o: &Map<String, Json>) -> Result<Expected, Json> {
    match o.get("expected") {
        None | Some(Json::Null) => Ok(Expected::Any),
        Some(Json::String(s)) if s == "absent" => Ok(Expected::Absent),
        Some(Json::String(s)) => Uuid::try_parse(s)
            .map(Expected::Fact)
            .map_err(|_| bad(format!("expected: not a fact id: {s}"))),
        Some(other) => Err(bad(format!(
            "expected: must be null, \"absent\" or a fact id, got {other}"
        ))),
    }
}

fn write_op(o: &Map<String, Json>) -> Result<Write, Json> {
    let mut w = Write::new(
        str_field(o, "store")?,
        key_text(o, "key")?,
        opt_value(o, "value").unwrap_or_default(),
    )
    .expected(expected(o)?)
    .valid_time_opt(opt_f64(o, "valid_time")?)
    .causation_opt(opt_uuid(o, "causation")?);
    if let Some(p) = opt_value(o, "producer") {
        w = w.producer(p);
    }
    if let Some(d) = opt_value(o, "derivation") {
        w = w.derivation(d);
    }
    Ok(w)
}

fn append_op(o: &Map<String, Json>) -> Result<Append, Json> {
    let mut a = Append::new(
        str_field(o, "history")?,
        opt_value(o, "event").unwrap_or_default(),
    )
    .valid_time_opt(opt_f64(o, "valid_time")?);
    if let Some(k) = o.get("partition_key").and_then(Json::as_str) {
        a = a.partition_key(k);
    }
    if let Some(c) = opt_uuid(o, "causation")? {
        a = a.causation(c);
    }
    if let Some(p) = opt_value(o, "producer") {
        a = a.producer(p);
    }
    Ok(a)
}

fn ts(o: &Map<String, Json>, name: &str) -> Result<Option<Timestamp>, Json> {
    Ok(opt_f64(o, name)?.map(Timestamp::from_secs_f64))
}

/// The op name of a request (for metrics), `"?"` when it has none.
pub fn op_name(req: &Json) -> &str {
    req.get("op").and_then(Json::as_str).unwrap_or("?")
}

/// Answers one framed-JSON request (not `subscribe`, which the connection handles).
pub(crate) fn handle(shared: &Shared, req: &Json) -> Json {
    let Json::Object(o) = req else {
        return bad("request must be a JSON object");
    };
    let op = op_name(req);
    let ledger = &shared.ledger;
    let answer = (|| -> Result<Json, Json> {
        Ok(match op {
            "write_fact" => {
                let parts = decode_fact(o.get("fact").unwrap_or(&Json::Null))?;
                ledger
                    .write(Write::restoring(parts))
                    .map_err(ledger_error)?;
                shared.metrics.facts_written(1);
                json!({"ok": true})
            }
            "replay" => {
                let facts = ledger.fact_log_all(None, None);
                shared.metrics.facts_replayed(facts.len() as u64);
                json!({"ok": true, "facts": facts.iter().map(fact_json).collect::<Vec<_>>()})
            }
            "write_snapshot" => {
                if ledger.path().is_some() {
                    ledger.checkpoint().map_err(ledger_error)?;
                }
                json!({"ok": true})
            }
            "stats" => json!({
                "ok": true,
                "facts_written": shared.metrics.facts_written_total(),
                "connections_active": shared.metrics.active(),
                "uptime_ms": shared.uptime_ms(),
            }),
            "server_status" => {
                let mut s = shared.status_json();
                s["ok"] = Json::Bool(true);
                s
            }
            "ping" => json!({"ok": true, "pong": true}),
            "close" | "auth" => json!({"ok": true}),
            "ledger.write" => {
                let f = ledger.write(write_op(o)?).map_err(ledger_error)?;
                shared.metrics.facts_written(1);
                json!({"ok": true, "fact": fact_json(&f)})
            }
            "ledger.append" => {
                let f = ledger.append(append_op(o)?).map_err(ledger_error)?;
                shared.metrics.facts_written(1);
                json!({"ok": true, "fact": fact_json(&f)})
            }
            "ledger.commit" => {
                let Some(Json::Array(ops)) = o.get("ops") else {
                    return Err(bad(
                        "ops: must be an Array of {op: \"write\"|\"append\", ...}",
                    ));
                };
                let mut b = Batch::new();
                for (i, x) in ops.iter().enumerate() {
                    let Json::Object(x) = x else {
                        return Err(bad(format!("ops[{i}]: must be a Hash")));
                    };
                    match x.get("op").and_then(Json::as_str) {
                        Some("write") => b.push(Op::Write(write_op(x)?)),
                        Some("append") => b.push(Op::Append(append_op(x)?)),
                        _ => {
                            return Err(bad(format!(
                                "ops[{i}].op: must be \"write\" or \"append\""
                            )))
                        }
                    }
                }
                let facts = ledger.commit(b).map_err(ledger_error)?;
                shared.metrics.facts_written(facts.len() as u64);
                json!({"ok": true, "facts": facts.iter().map(fact_json).collect::<Vec<_>>()})
            }
            "ledger.read" => {
                let q = Read::new(str_field(o, "store")?, key_text(o, "key")?)
                    .as_of_opt(ts(o, "as_of")?)
                    .valid_at_opt(opt_f64(o, "valid_at")?);
                match ledger.read_fact(q).map_err(ledger_error)? {
                    Some(r) => json!({"ok": true, "found": true,
                        "value": json::to_json(&r.value()), "fact": fact_json(&r.fact)}),
                    None => json!({"ok": true, "found": false, "value": null}),
                }
            }
            "ledger.history" => {
                let mut q = HistoryQuery::new(str_field(o, "store")?).since_opt(ts(o, "since")?);
                if let Some(k) = o.get("key").filter(|k| !k.is_null()) {
                    q = q.key(key_text(
                        &Map::from_iter([("key".to_owned(), k.clone())]),
                        "key",
                    )?);
                }
                if let Some(t) = ts(o, "as_of")? {
                    q = q.as_of(t);
                }
                let facts = ledger.history(q).map_err(ledger_error)?;
                json!({"ok": true, "facts": facts.iter().map(|r| {
                    let mut f = fact_json(&r.fact);
                    f["value"] = json::to_json(&r.value());
                    f
                }).collect::<Vec<_>>()})
            }
            "ledger.count" => {
                json!({"ok": true, "count": ledger.fact_count(), "head": ledger.head().sequence})
            }
            "ledger.changes" => {
                let mut q = ChangesQuery::new();
                if let Some(after) = o.get("after").and_then(Json::as_u64) {
                    q = q.after(Cursor::in_ledger(after, ledger.ledger_id()));
                }
                if let Some(Json::Array(s)) = o.get("stores") {
                    q = q.stores(s.iter().filter_map(Json::as_str));
                }
                if let Some(n) = o.get("limit").and_then(Json::as_u64) {
                    q = q.limit(n as usize);
                }
                let events = ledger.changes(&q).map_err(ledger_error)?;
                let cursor = events.last().map_or_else(
                    || o.get("after").and_then(Json::as_u64).unwrap_or(0),
                    |e| e.sequence(),
                );
                json!({"ok": true, "cursor": cursor, "events": events.iter().map(|e| {
                    json!({"sequence": e.sequence(), "fact": fact_json(e.fact())})
                }).collect::<Vec<_>>()})
            }
            other => {
                return Err(error("unknown_op", format!("Unknown op: {other}")));
            }
        })
    })();
    answer.unwrap_or_else(|e| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_reference_fact_hashes() {
        let p = decode_fact(&json!({
            "id": "0190c5a0-0000-7000-8000-000000000001", "store": "tasks", "key": "t1",
            "value": {"n": 1}, "causation": null, "transaction_time": 1700000000.5,
            "valid_time": null, "schema_version": 1, "producer": null, "derivation": null
        }))
        .unwrap();
        assert_eq!(p.store, "tasks");
        assert_eq!(p.transaction_time.as_secs_f64(), 1700000000.5);
        assert!(decode_fact(&json!({"id": "x"})).is_err());
        assert!(decode_fact(&json!([1])).is_err());
        assert!(decode_fact(
            &json!({"id": "x", "store": "s", "key": "k", "transaction_time": "no"})
        )
        .is_err());
    }
}
