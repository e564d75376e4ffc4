//! TBackend adapter descriptors: a metadata-only description of the ledger as a TBackend
//! adapter (what a host runtime may bind to), built from a metadata snapshot and a
//! descriptor snapshot. It authorizes nothing; [`TBackendAdapterDescriptor::diagnostics`]
//! says whether it meets a host's requirements. Hashes are `"sha256:" + hex` of canonical
//! JSON (keys sorted, Symbols as strings), so key order never changes them.

use sha2::{Digest, Sha256};

use crate::Value;

use super::json::to_json;
use super::packet::{field, name_of, obj, set};

/// TBackend operations, each with the protocol operations that provide it.
const TBACKEND_OPS: [(&str, &[&str]); 6] = [
    ("read", &["read"]),
    ("append", &["append"]),
    ("replay", &["replay"]),
    ("snapshot", &["metadata_snapshot", "descriptor_snapshot"]),
    ("compact", &["compact"]),
    ("subscribe", &["subscribe"]),
];

/// `v` as JSON with every object's keys inserted in sorted order, so its text is the
/// same whether or not serde_json keeps insertion order (a feature another crate of the
/// build may turn on).
fn canonical(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::Object(m) => {
            let mut pairs: Vec<(&String, &J)> = m.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            J::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        J::Array(a) => J::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// `"sha256:" + hex` of the canonical JSON of `v` (keys sorted, Symbols as strings).
pub fn canonical_hash(v: &Value) -> String {
    let digest = Sha256::digest(canonical(&to_json(v)).to_string().as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// What a host requires of an adapter (empty lists require nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    /// TBackend operations.
    pub ops: Vec<String>,
    /// Hook methods.
    pub hook_methods: Vec<String>,
    /// Capabilities.
    pub capabilities: Vec<String>,
    /// History axes.
    pub history_axes: Vec<String>,
    /// The schema fingerprint the host compiled against.
    pub schema_fingerprint: Option<String>,
}

/// A built descriptor.
#[derive(Clone, Debug, PartialEq)]
pub struct TBackendAdapterDescriptor {
    /// TBackend operations the ledger's protocol provides.
    pub supported_tbackend_ops: Vec<String>,
    /// `read_as_of`, and `bihistory_at` when histories are registered.
    pub hook_methods: Vec<String>,
    /// `history_read`, and `bihistory_read` when histories are registered.
    pub capabilities: Vec<String>,
    /// `valid_time`, and `transaction_time` when histories are registered.
    pub history_axes: Vec<String>,
    /// The schema fingerprint given.
    pub schema_fingerprint: Option<String>,
    /// Hash of the whole payload (except itself).
    pub descriptor_hash: String,
    /// Hash of the descriptor snapshot.
    pub descriptor_registry_hash: String,
    payload: Value,
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| Value::Str(s.clone())).collect())
}

fn has_histories(snapshot: &Value) -> bool {
    match field(snapshot, "histories") {
        Some(Value::Map(p)) => !p.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    }
}

impl TBackendAdapterDescriptor {
    /// Builds the descriptor from the ledger's snapshots, the protocol operations it
    /// serves and the host's schema fingerprint.
    pub fn build<S: AsRef<str>>(
        metadata_snapshot: &Value,
        descriptor_snapshot: &Value,
        schema_fingerprint: Option<&str>,
        ledger_protocol_ops: &[S],
    ) -> Self {
        let ops: Vec<String> = ledger_protocol_ops
            .iter()
            .map(|o| o.as_ref().to_owned())
            .collect();
        let histories = has_histories(metadata_snapshot) || has_histories(descriptor_snapshot);
        let with = |base: &str, extra: &str| -> Vec<String> {
            let mut v = vec![base.to_owned()];
            if histories {
                v.push(extra.to_owned());
            }
            v
        };
        let supported: Vec<String> = TBACKEND_OPS
            .iter()
            .filter(|(_, needs)| needs.iter().any(|n| ops.iter().any(|o| o == n)))
            .map(|(op, _)| (*op).to_owned())
            .collect();
        let hook_methods = with("read_as_of", "bihistory_at");
        let capabilities = with("history_read", "bihistory_read");
        let history_axes = with("valid_time", "transaction_time");
        let registry_hash = canonical_hash(descriptor_snapshot);
        let f = |b: bool| Value::Bool(b);
        let mut payload = obj([
            ("kind", Value::from("ledger_tbackend_adapter_descriptor")),
            ("adapter_kind", Value::from("ledger_open_protocol")),
            ("adapter_version", Value::from("0.1.0")),
            ("contract_version", Value::from("tbackend.v0")),
            ("protocol", Value::from(super::envelope::PROTOCOL)),
            ("protocol_schema_version", Value::Int(1)),
            ("evidence_mode", Value::from("receipt_required")),
            (
                "schema_fingerprint",
                schema_fingerprint.map_or(Value::Nil, Value::from),
            ),
            ("ledger_protocol_ops", strings(&ops)),
            ("supported_tbackend_ops", strings(&supported)),
            ("hook_methods", strings(&hook_methods)),
            ("capabilities", strings(&capabilities)),
            ("history_axes", strings(&history_axes)),
            (
                "cursor_policy",
                obj([
                    ("ordered", Value::from("forward")),
                    ("cursor_kinds", Value::Array(vec![Value::from("timestamp")])),
                    ("truncation_reported", f(true)),
                    (
                        "tie_breaker",
                        Value::from("timestamp_then_fact_id_required"),
                    ),
                ]),
            ),
            (
                "non_authorization",
                obj([
                    ("runtime_binding", f(false)),
                    ("ledger_reads", f(false)),
                    ("ledger_writes", f(false)),
                    ("ledger_append", f(false)),
                    ("ledger_replay", f(false)),
                    ("ledger_compact", f(false)),
                    ("ledger_subscribe", f(false)),
                    ("migration_execution", f(false)),
                ]),
            ),
            (
                "metadata_hash",
                Value::Str(canonical_hash(metadata_snapshot)),
            ),
            (
                "descriptor_registry_hash",
                Value::Str(registry_hash.clone()),
            ),
        ]);
        let descriptor_hash = canonical_hash(&payload);
        set(
            &mut payload,
            "descriptor_hash",
            Value::Str(descriptor_hash.clone()),
        );
        TBackendAdapterDescriptor {
            supported_tbackend_ops: supported,
            hook_methods,
            capabilities,
            history_axes,
            schema_fingerprint: schema_fingerprint.map(str::to_owned),
            descriptor_hash,
            descriptor_registry_hash: registry_hash,
            payload,
        }
    }

    /// Reads a descriptor back from its payload ([`TBackendAdapterDescriptor::to_value`]);
    /// None when the payload is not one.
    pub fn from_value(payload: &Value) -> Option<Self> {
        let list = |name: &str| -> Option<Vec<String>> {
            match field(payload, name)? {
                Value::Array(a) => a.iter().map(|v| name_of(v).map(str::to_owned)).collect(),
                _ => None,
            }
        };
        let text = |name: &str| field(payload, name).and_then(name_of).map(str::to_owned);
        (text("kind")?.as_str() == "ledger_tbackend_adapter_descriptor").then_some(())?;
        Some(TBackendAdapterDescriptor {
            supported_tbackend_ops: list("supported_tbackend_ops")?,
            hook_methods: list("hook_methods")?,
            capabilities: list("capabilities")?,
            history_axes: list("history_axes")?,
            schema_fingerprint: text("schema_fingerprint"),
            descriptor_hash: text("descriptor_hash")?,
            descriptor_registry_hash: text("descriptor_registry_hash")?,
            payload: payload.clone(),
        })
    }

    /// The payload (Symbol keys, String values, as the reference).
    pub fn to_value(&self) -> Value {
        self.payload.clone()
    }

    /// Whether the descriptor meets `req`: status `ok` or `blocked`, with what is missing.
    pub fn diagnostics(&self, req: &Requirements) -> Value {
        let missing = |want: &[String], have: &[String]| -> Vec<String> {
            want.iter().filter(|w| !have.contains(w)).cloned().collect()
        };
        let ops = missing(&req.ops, &self.supported_tbackend_ops);
        let hooks = missing(&req.hook_methods, &self.hook_methods);
        let caps = missing(&req.capabilities, &self.capabilities);
        let axes = missing(&req.history_axes, &self.history_axes);
        let matches = req
            .schema_fingerprint
            .as_ref()
            .is_none_or(|f| Some(f) == self.schema_fingerprint.as_ref());
        let ok =
            ops.is_empty() && hooks.is_empty() && caps.is_empty() && axes.is_empty() && matches;
        obj([
            (
                "kind",
                Value::from("ledger_tbackend_adapter_descriptor_diagnostics"),
            ),
            ("status", Value::from(if ok { "ok" } else { "blocked" })),
            ("missing_ops", strings(&ops)),
            ("missing_hook_methods", strings(&hooks)),
            ("missing_capabilities", strings(&caps)),
            ("missing_axes", strings(&axes)),
            ("schema_fingerprint_match", Value::Bool(matches)),
            ("descriptor_hash", Value::Str(self.descriptor_hash.clone())),
            (
                "descriptor_registry_hash",
                Value::Str(self.descriptor_registry_hash.clone()),
            ),
        ])
    }
}
