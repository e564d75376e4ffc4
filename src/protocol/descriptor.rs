//! Descriptors: validation, normalization and the content hash behind deduplication.
//!
//! A descriptor is a map packet with a `kind:` (store, history, access_path, relation,
//! projection, derivation, command, effect, subscription). [`check`] validates it and
//! returns what the registry keeps: the normalized descriptor, its identity (kind and
//! name, plus the owner for commands and effects) and the receipt's warnings.

use crate::{MapKey, Value};

use super::packet::{field, name_of, obj, set, sym};

/// The descriptor kinds the protocol understands.
pub const KINDS: [&str; 9] = [
    "store",
    "history",
    "access_path",
    "relation",
    "projection",
    "derivation",
    "command",
    "effect",
    "subscription",
];

/// Command operations a command descriptor may name, with the shape each targets.
const COMMAND_OPERATIONS: [(&str, &str); 6] = [
    ("record_create", "store"),
    ("record_update", "store"),
    ("record_upsert", "store"),
    ("record_delete", "store"),
    ("history_append", "history"),
    ("store_write", "store"),
];

/// Effect store operations, with what each lowers to.
const EFFECT_STORE_OPS: [(&str, &str); 3] = [
    ("store_write", "store_t"),
    ("store_append", "history_t"),
    ("history_append", "history_t"),
];

/// Effect write kinds.
const EFFECT_WRITE_KINDS: [&str; 5] = ["create", "update", "upsert", "delete", "append"];

/// A validated descriptor, ready for the registry.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The kind.
    pub kind: &'static str,
    /// The name.
    pub name: String,
    /// The owner (commands and effects).
    pub owner: Option<String>,
    /// What the registry keeps (the descriptor, normalized).
    pub descriptor: Value,
    /// Warnings for the receipt.
    pub warnings: Vec<String>,
    /// The content hash of the descriptor as given (key order ignored).
    pub hash: [u8; 32],
}

/// Why a descriptor was refused (the receipt's error), and what is known of it.
#[derive(Clone, Debug)]
pub struct Refused {
    /// The error message.
    pub error: String,
    /// The kind, when it is one of [`KINDS`].
    pub kind: Option<&'static str>,
    /// The name, when given.
    pub name: Option<String>,
}

fn missing(kind: &'static str, name: Option<String>, fields: &[&str]) -> Refused {
    Refused {
        error: format!(
            "{kind} descriptor missing required fields: {}",
            fields.join(", ")
        ),
        kind: Some(kind),
        name,
    }
}

/// The names of `fields` that are absent from `d`, or do not hold a name.
fn absent<'a>(d: &Value, fields: &[&'a str]) -> Vec<&'a str> {
    fields
        .iter()
        .copied()
        .filter(|f| field(d, f).and_then(name_of).is_none())
        .collect()
}

/// Validates and normalizes a descriptor.
pub fn check(d: &Value) -> Result<Checked, Refused> {
    let refuse = |error: String| Refused {
        error,
        kind: None,
        name: None,
    };
    if !matches!(d, Value::Map(_)) {
        return Err(refuse(format!(
            "descriptor must be a Hash, got {}",
            d.type_name()
        )));
    }
    if let Some(v) = field(d, "schema_version") {
        if v != &Value::Int(1) {
            return Err(refuse(format!(
                "unsupported descriptor schema_version: {}",
                describe(v)
            )));
        }
    }
    let Some(kind_v) = field(d, "kind") else {
        return Err(refuse("descriptor missing required field: kind".into()));
    };
    let Some(kind) = name_of(kind_v).and_then(|k| KINDS.iter().copied().find(|x| *x == k)) else {
        return Err(refuse(format!(
            "unknown descriptor kind: {}",
            describe(kind_v)
        )));
    };
    let name = field(d, "name").and_then(name_of).map(str::to_owned);
    let mut warnings = Vec::new();
    let mut owner = None;
    let mut kept = d.clone();
    match kind {
        "store" => {
            let m = absent(d, &["name", "key"]);
            if !m.is_empty() {
                return Err(missing(kind, name, &m));
            }
        }
        "history" | "derivation" => {
            let m = absent(d, &["name"]);
            if !m.is_empty() {
                return Err(missing(kind, name, &m));
            }
            if kind == "derivation" {
                warnings.push(
                    "derivation descriptors are metadata only: register a derivation rule on the \
                     store to run it"
                        .to_owned(),
                );
            }
        }
        "access_path" => {
            let m = absent(d, &["name", "store"]);
            if !m.is_empty() {
                return Err(missing(kind, name, &m));
            }
            if field(d, "unique") != Some(&Value::Bool(true)) {
                warnings.push(format!(
                    "access path {} is not unique: a lookup may match several records",
                    name.as_deref().unwrap_or("")
                ));
            }
        }
        "relation" => {
            let mut m = absent(d, &["name"]);
            let from = field(d, "from");
            let to = field(d, "to");
            if from.is_none() {
                m.push("from");
            }
            if to.is_none() {
                m.push("to");
            }
            if !m.is_empty() {
                return Err(missing(kind, name, &m));
            }
            for (label, side, need) in [
                ("from", from, ["store", "key"]),
                ("to", to, ["store", "field"]),
            ] {
                let side = side.unwrap_or(&Value::Nil);
                let gaps = if matches!(side, Value::Map(_)) {
                    absent(side, &need)
                } else {
                    need.to_vec()
                };
                if !gaps.is_empty() {
                    return Err(Refused {
                        error: format!(
                            "relation descriptor {label}: must be a Hash with {} (missing: {})",
                            need.join(" and "),
                            gaps.join(", ")
                        ),
                        kind: Some(kind),
                        name,
                    });
                }
            }
            let card = field(d, "cardinality").and_then(name_of).unwrap_or("many");
            if card == "one" {
                warnings.push(
                    "cardinality :one is not enforced: the relation index keeps every matching \
                     record"
                        .to_owned(),
                );
            } else if card != "many" {
                return Err(Refused {
                    error: format!("unsupported relation cardinality: {card}"),
                    kind: Some(kind),
                    name,
                });
            }
        }
        "projection" => {
            let m = absent(d, &["name"]);
            if !m.is_empty() {
                return Err(missing(kind, name, &m));
            }
            let reads = match (field(d, "reads"), field(d, "source")) {
                (Some(Value::Array(items)), _) if !items.is_empty() => Value::Array(items.clone()),
                (Some(v), _) if name_of(v).is_some() => Value::Array(vec![v.clone()]),
                (_, Some(Value::Array(items))) if !items.is_empty() => Value::Array(items.clone()),
                (_, Some(v)) if name_of(v).is_some() => Value::Array(vec![v.clone()]),
                _ => {
                    return Err(Refused {
                        error: "projection descriptor needs reads: or source:".to_owned(),
                        kind: Some(kind),
                        name,
                    })
                }
            };
            let relations = match field(d, "relations") {
                Some(Value::Array(items)) => Value::Array(items.clone()),
                Some(v) => Value::Array(vec![v.clone()]),
                None => Value::Array(Vec::new()),
            };
            let mode = field(d, "mode")
                .cloned()
                .unwrap_or_else(|| sym("materialized"));
            let reactive = match field(d, "reactive") {
                Some(Value::Bool(b)) => *b,
                _ => name_of(&mode) == Some("materialized"),
            };
            let count = |v: &Value| match v {
                Value::Array(a) => Value::Int(a.len() as i64),
                _ => Value::Int(0),
            };
            set(&mut kept, "store_count", count(&reads));
            set(&mut kept, "relation_count", count(&relations));
            set(&mut kept, "reads", reads);
            set(&mut kept, "relations", relations);
            if field(d, "consumer_hint").is_none() {
                set(&mut kept, "consumer_hint", Value::Nil);
            }
            set(&mut kept, "mode", mode);
            set(&mut kept, "reactive", Value::Bool(reactive));
        }
        "command" => {
            let m = absent(d, &["name", "owner", "operation"]);
            if !m.is_empty() {
                return Err(missing(kind, name, &m));
            }
            let op = field(d, "operation").and_then(name_of).unwrap_or("");
            let Some((_, shape)) = COMMAND_OPERATIONS.iter().find(|(o, _)| *o == op) else {
                return Err(Refused {
                    error: format!(
                        "Unsupported command operation: {op} (supported: {})",
                        COMMAND_OPERATIONS.map(|(o, _)| o).join(", ")
                    ),
                    kind: Some(kind),
                    name,
                });
            };
            owner = field(d, "owner").and_then(name_of).map(str::to_owned);
            default(&mut kept, "target_shape", sym(shape));
            default(&mut kept, "boundary", sym("app"));
            default(&mut kept, "mutation_intent", sym(op));
            default(&mut kept, "changes", Value::Map(Vec::new()));
        }
        "effect" => {
            let m = absent(d, &["name", "owner", "store_op", "write_kind"]);
            if !m.is_empty() {
                return Err(missing(kind, name, &m));
            }
            let op = field(d, "store_op").and_then(name_of).unwrap_or("");
            let Some((_, lowers)) = EFFECT_STORE_OPS.iter().find(|(o, _)| *o == op) else {
                return Err(Refused {
                    error: format!(
                        "Unsupported effect store_op: {op} (supported: {})",
                        EFFECT_STORE_OPS.map(|(o, _)| o).join(", ")
                    ),
                    kind: Some(kind),
                    name,
                });
            };
            let wk = field(d, "write_kind").and_then(name_of).unwrap_or("");
            if !EFFECT_WRITE_KINDS.contains(&wk) {
                return Err(Refused {
                    error: format!(
                        "Unsupported effect write_kind: {wk} (supported: {})",
                        EFFECT_WRITE_KINDS.join(", ")
                    ),
                    kind: Some(kind),
                    name,
                });
            }
            owner = field(d, "owner").and_then(name_of).map(str::to_owned);
            default(&mut kept, "lowers_to", sym(lowers));
            default(&mut kept, "boundary", sym("app"));
            default(&mut kept, "source_operation", Value::Nil);
        }
        "subscription" => {
            let m = absent(d, &["name", "source"]);
            if !m.is_empty() {
                return Err(missing(kind, name, &m));
            }
        }
        _ => unreachable!("kind is one of KINDS"),
    }
    Ok(Checked {
        kind,
        name: name.unwrap_or_default(),
        owner,
        descriptor: kept,
        warnings,
        hash: content_hash(d),
    })
}

/// Sets a field only when the descriptor does not give it.
fn default(map: &mut Value, name: &str, v: Value) {
    if field(map, name).is_none() {
        set(map, name, v);
    }
}

/// How a value reads in an error message (`wormhole`, `2`, `a Hash`).
fn describe(v: &Value) -> String {
    match v {
        Value::Sym(s) | Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        other => format!("a {}", other.type_name()),
    }
}

/// The content hash of a value with map keys sorted: equal for the same descriptor
/// whatever its key order, and whether it came from Ruby (Symbols) or JSON (Strings).
pub fn content_hash(v: &Value) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    feed(&mut h, v);
    *h.finalize().as_bytes()
}

fn feed(h: &mut blake3::Hasher, v: &Value) {
    let text = |h: &mut blake3::Hasher, tag: u8, s: &[u8]| {
        h.update(&[tag]);
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s);
    };
    match v {
        Value::Nil => {
            h.update(&[0]);
        }
        Value::Bool(b) => {
            h.update(&[1, *b as u8]);
        }
        Value::Int(i) => {
            h.update(&[2]);
            h.update(&i.to_le_bytes());
        }
        Value::Float(f) => {
            h.update(&[3]);
            h.update(&f.to_bits().to_le_bytes());
        }
        Value::Str(s) | Value::Sym(s) => text(h, 4, s.as_bytes()),
        Value::Bin(b) => text(h, 5, b),
        Value::Array(items) => {
            h.update(&[6]);
            h.update(&(items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| feed(h, i));
        }
        Value::Map(pairs) => {
            let mut sorted: Vec<(String, &Value)> = pairs
                .iter()
                .map(|(k, v)| {
                    let k = match k {
                        MapKey::Sym(s) | MapKey::Str(s) => s.clone(),
                        MapKey::Int(i) => format!("\u{0}{i}"),
                    };
                    (k, v)
                })
                .collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            h.update(&[7]);
            h.update(&(sorted.len() as u64).to_le_bytes());
            for (k, v) in sorted {
                text(h, 4, k.as_bytes());
                feed(h, v);
            }
        }
    }
}

/// The relation rule a relation descriptor sets up: records of `source` are grouped by
/// their `partition` field, whose value is a key of `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationRule {
    /// The relation's name.
    pub name: String,
    /// The store whose records are resolved (the descriptor's `to: {store:}`).
    pub source: String,
    /// The field of `source` records that names the `target` key (`to: {field:}`).
    pub partition: String,
    /// The store the relation starts from (`from: {store:}`).
    pub target: String,
    /// `many` or `one`.
    pub cardinality: String,
}

impl RelationRule {
    /// The rule of a checked relation descriptor.
    pub fn of(descriptor: &Value) -> Option<Self> {
        let from = field(descriptor, "from")?;
        let to = field(descriptor, "to")?;
        Some(RelationRule {
            name: field(descriptor, "name").and_then(name_of)?.to_owned(),
            source: field(to, "store").and_then(name_of)?.to_owned(),
            partition: field(to, "field").and_then(name_of)?.to_owned(),
            target: field(from, "store").and_then(name_of)?.to_owned(),
            cardinality: field(descriptor, "cardinality")
                .and_then(name_of)
                .unwrap_or("many")
                .to_owned(),
        })
    }

    /// The rule as metadata (`{name, source, partition, target, cardinality}`).
    pub fn to_value(&self) -> Value {
        obj([
            ("name", sym(&self.name)),
            ("source", sym(&self.source)),
            ("partition", sym(&self.partition)),
            ("target", sym(&self.target)),
            ("cardinality", sym(&self.cardinality)),
        ])
    }

    /// The scatter the relation implies, as metadata.
    pub fn scatter(&self) -> Value {
        obj([
            ("source_store", sym(&self.source)),
            ("partition_by", sym(&self.partition)),
            ("target_store", sym(&format!("__rel_{}", self.name))),
            ("relation", sym(&self.name)),
        ])
    }
}
