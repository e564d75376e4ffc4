//! The wire envelope: one request packet in, one response packet out, never an error.
//!
//! Request: `{protocol: :igniter_store, schema_version: 1, request_id:, op:, packet:}`.
//! Response: `{protocol: :igniter_store, schema_version: 1, request_id:, status: :ok,
//! result:}` or `{..., status: :error, error: "message"[, error_field: :name]}`. The
//! request id is echoed whatever happens. Receipts are results: a rejected descriptor is
//! an `:ok` response carrying a rejected receipt, as in the reference.

use crate::{MapKey, Value};

use super::error::ProtocolError;
use super::interpreter::{items_value, Interpreter};
use super::json::{from_json, to_json};
use super::packet::{check_bounds, field, limits, name_of, obj, sym};
use super::receipt::Receipt;

/// The protocol's name on the wire.
pub const PROTOCOL: &str = "igniter_store";

/// The envelope schema version.
pub const SCHEMA_VERSION: i64 = 1;

/// The 18 operations an envelope may name.
pub const OPERATIONS: [&str; 18] = [
    "register_descriptor",
    "write",
    "append",
    "write_fact",
    "read",
    "query",
    "resolve",
    "causation_chain",
    "lineage",
    "fact_ref",
    "replay",
    "sync_hub_profile",
    "metadata_snapshot",
    "descriptor_snapshot",
    "observability_snapshot",
    "storage_stats",
    "segment_manifest",
    "compaction_activity",
];

/// The operations whose result is a receipt.
pub const RECEIPT_OPERATIONS: [&str; 4] = ["register_descriptor", "write", "append", "write_fact"];

/// Dispatches envelopes to an [`Interpreter`].
#[derive(Clone, Copy, Debug)]
pub struct WireEnvelope<'a> {
    interp: &'a Interpreter,
}

impl<'a> WireEnvelope<'a> {
    /// The envelope over `interp`.
    pub fn new(interp: &'a Interpreter) -> Self {
        WireEnvelope { interp }
    }

    /// Answers one envelope. Never fails: a malformed envelope or a failing operation
    /// gets an error response echoing the request id.
    pub fn dispatch(&self, env: &Value) -> Value {
        self.respond(env.clone()).into_value()
    }

    /// Answers one envelope (taken by value: its packet's value moves into the write),
    /// as a typed [`Response`].
    pub fn respond(&self, mut env: Value) -> Response {
        let request_id = field(&env, "request_id").cloned().unwrap_or_default();
        let outcome = self.run(&mut env);
        Response {
            request_id,
            outcome,
        }
    }

    /// Answers one envelope given as JSON text, in JSON text.
    pub fn dispatch_json(&self, text: &str) -> String {
        let answer = if text.len() > limits::MAX_ENVELOPE_JSON_BYTES {
            Response {
                request_id: Value::Nil,
                outcome: Err(Failure::new(format!(
                    "envelope is larger than {} bytes",
                    limits::MAX_ENVELOPE_JSON_BYTES
                ))),
            }
        } else {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(j) => self.respond(from_json(&j)),
                Err(e) => Response {
                    request_id: Value::Nil,
                    outcome: Err(Failure::new(format!("malformed JSON envelope: {e}"))),
                },
            }
        };
        to_json(&answer.into_value()).to_string()
    }

    fn run(&self, env: &mut Value) -> Result<Answer, Failure> {
        if !matches!(env, Value::Map(_)) {
            return Err(Failure::new(format!(
                "envelope must be a Hash, got {}",
                env.type_name()
            )));
        }
        check_bounds(env, "envelope", limits::MAX_PACKET_BYTES)
            .map_err(|e| Failure::from_protocol(None, e))?;
        match field(env, "protocol") {
            None => return Err(Failure::field("missing protocol", "protocol")),
            Some(p) if name_of(p) == Some(PROTOCOL) => {}
            Some(p) => {
                return Err(Failure::field(
                    format!(
                        "unsupported protocol: {} (expected {PROTOCOL})",
                        name_of(p).unwrap_or(p.type_name())
                    ),
                    "protocol",
                ))
            }
        }
        if let Some(v) = field(env, "schema_version") {
            if v != &Value::Int(SCHEMA_VERSION) {
                return Err(Failure::field(
                    format!("unsupported schema_version (expected {SCHEMA_VERSION})"),
                    "schema_version",
                ));
            }
        }
        let op = match field(env, "op") {
            None => return Err(Failure::field("missing op", "op")),
            Some(v) => match name_of(v).and_then(|o| OPERATIONS.iter().find(|x| **x == o)) {
                Some(op) => *op,
                None => {
                    return Err(Failure::field(
                        format!("unknown op: {}", name_of(v).unwrap_or(v.type_name())),
                        "op",
                    ))
                }
            },
        };
        let packet = match take(env, "packet") {
            None => return Err(Failure::field(format!("{op}: missing packet"), "packet")),
            Some(p @ Value::Map(_)) => p,
            Some(p) => {
                return Err(Failure::field(
                    format!("{op}: packet must be a Hash, got {}", p.type_name()),
                    "packet",
                ))
            }
        };
        self.op(op, packet)
            .map_err(|e| Failure::from_protocol(Some(op), e))
    }

    fn op(&self, op: &str, mut packet: Value) -> Result<Answer, ProtocolError> {
        let i = self.interp;
        let p = &packet;
        let receipt = match op {
            "register_descriptor" => Some(i.register(p)),
            "write" => {
                // The reference forwards only these fields of a write packet.
                let value = take(&mut packet, "value");
                let forwarded = obj(["store", "key", "producer"]
                    .into_iter()
                    .filter_map(|f| field(&packet, f).map(|v| (f, v.clone()))));
                Some(i.write_with(&forwarded, value)?)
            }
            "append" => Some(i.append(p)?),
            "write_fact" => Some(i.write_fact(p)),
            _ => None,
        };
        if let Some(r) = receipt {
            return Ok(Answer::Receipt(r));
        }
        let p = &packet;
        Ok(Answer::Value(match op {
            "read" => {
                let v = i.read(p)?;
                obj([
                    ("found", Value::Bool(v.is_some())),
                    ("value", v.unwrap_or_default()),
                ])
            }
            "query" => results(&i.query(p)?),
            "resolve" => results(&i.resolve(p)?),
            "causation_chain" => {
                let chain = i.causation_chain(p)?;
                obj([
                    ("store", field(p, "store").cloned().unwrap_or_default()),
                    ("key", field(p, "key").cloned().unwrap_or_default()),
                    ("count", Value::Int(chain.len() as i64)),
                    ("chain", Value::Array(chain)),
                ])
            }
            "lineage" => i.lineage(p)?,
            "fact_ref" => {
                let r = i.fact_ref(p)?;
                obj([
                    ("found", Value::Bool(r.is_some())),
                    ("ref", r.unwrap_or_default()),
                ])
            }
            "replay" => {
                let facts = i.replay(p)?;
                obj([
                    ("count", Value::Int(facts.len() as i64)),
                    ("facts", Value::Array(facts)),
                ])
            }
            "sync_hub_profile" => i.sync_hub_profile(p)?.to_value(),
            "metadata_snapshot" => i.metadata_snapshot(),
            "descriptor_snapshot" => i.descriptor_snapshot(),
            "observability_snapshot" => i.observability_snapshot(),
            "storage_stats" => i.storage_stats(p)?.unwrap_or_default(),
            "segment_manifest" => i.segment_manifest(p)?.unwrap_or_default(),
            "compaction_activity" => i.compaction_activity(p)?,
            _ => unreachable!("op is one of OPERATIONS and receipt operations returned"),
        }))
    }
}

/// `{results: [values], items: [{key, value}], count}`.
fn results(items: &[super::sources::Item]) -> Value {
    obj([
        (
            "results",
            Value::Array(items.iter().map(|i| i.value.clone()).collect()),
        ),
        ("items", items_value(items)),
        ("count", Value::Int(items.len() as i64)),
    ])
}

/// An error response's message and the field it is about.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The message (names the operation and the problem).
    pub message: String,
    /// The field the error is about, when there is one.
    pub field: Option<String>,
}

/// What an operation answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// A receipt (register_descriptor, write, append, write_fact).
    Receipt(Receipt),
    /// Any other result.
    Value(Value),
}

/// A typed envelope response; [`Response::into_value`] gives the packet.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The request id, echoed.
    pub request_id: Value,
    /// The result, or why there is none.
    pub outcome: Result<Answer, Failure>,
}

impl Response {
    /// True for a `status: :ok` response.
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The response packet.
    pub fn into_value(self) -> Value {
        response(
            self.request_id,
            self.outcome.map(|a| match a {
                Answer::Receipt(r) => r.to_value(),
                Answer::Value(v) => v,
            }),
        )
    }
}

/// Removes a field from a map packet and returns it.
fn take(map: &mut Value, name: &str) -> Option<Value> {
    let Value::Map(pairs) = map else {
        return None;
    };
    let at = pairs
        .iter()
        .position(|(k, _)| matches!(k, MapKey::Sym(s) | MapKey::Str(s) if s == name))?;
    Some(pairs.remove(at).1).filter(|v| !v.is_nil())
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            field: None,
        }
    }
    fn field(message: impl Into<String>, field: &str) -> Self {
        Failure {
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }
    fn from_protocol(op: Option<&str>, e: ProtocolError) -> Self {
        Failure {
            message: match op {
                Some(op) => format!("{op} error: {e}"),
                None => format!("error: {e}"),
            },
            field: e.field().map(str::to_owned),
        }
    }
}

fn response(request_id: Value, outcome: Result<Value, Failure>) -> Value {
    let mut pairs = vec![
        ("protocol", sym(PROTOCOL)),
        ("schema_version", Value::Int(SCHEMA_VERSION)),
        ("request_id", request_id),
    ];
    match outcome {
        Ok(result) => {
            pairs.push(("status", sym("ok")));
            pairs.push(("result", result));
        }
        Err(f) => {
            pairs.push(("status", sym("error")));
            pairs.push(("error", Value::Str(f.message)));
            if let Some(name) = f.field {
                pairs.push(("error_field", sym(&name)));
            }
        }
    }
    obj(pairs)
}
