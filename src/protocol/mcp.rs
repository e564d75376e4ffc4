//! The MCP tool catalogue and its calls: the reference's read tools (and, only when
//! enabled by name, write tools), each a bounded call through the wire envelope.
//!
//! Both MCP front doors use this: the in-process `MCPAdapter` of the Ruby gem and the
//! `igniter-ledger mcp` stdio server, so they answer alike. A call answers
//! `{schema_version: 1, request_id:, source_protocol_op:, status: :ok|:error,
//! result:|error:}`.

use serde_json::json;

use crate::{MapKey, Value};

use super::interpreter::Interpreter;
use super::packet::{field, name_of, obj, set, sym};

/// The most records a tool answers in one call (`limit:` may ask for fewer).
pub const MAX_LIMIT: usize = 1000;

/// One MCP tool.
#[derive(Clone, Debug)]
pub struct Tool {
    /// The tool's name.
    pub name: &'static str,
    /// The protocol operation it calls.
    pub op: &'static str,
    /// What it does, for the client.
    pub description: &'static str,
    /// The JSON Schema of its arguments.
    pub input_schema: serde_json::Value,
    /// True for tools that write (never enabled by default).
    pub writes: bool,
}

/// The names of the read tools (the default set), in the reference's order.
pub const READ_TOOLS: [&str; 14] = [
    "metadata_snapshot",
    "descriptor_snapshot",
    "observability_snapshot",
    "read",
    "query",
    "resolve",
    "causation_chain",
    "lineage",
    "fact_ref",
    "replay",
    "sync_profile",
    "storage_stats",
    "segment_manifest",
    "compaction_activity",
];

/// The names of the write tools (enabled only when named explicitly).
pub const WRITE_TOOLS: [&str; 4] = ["write", "append", "write_fact", "register_descriptor"];

fn schema(props: serde_json::Value, required: &[&str]) -> serde_json::Value {
    let mut props = props;
    if let Some(map) = props.as_object_mut() {
        map.insert(
            "request_id".into(),
            json!({"type": "string", "description": "echoed in the response"}),
        );
    }
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

fn name_prop(what: &str) -> serde_json::Value {
    json!({"type": "string", "minLength": 1, "description": what})
}

fn time_prop(what: &str) -> serde_json::Value {
    json!({"type": "number", "description": what})
}

fn limit_prop() -> serde_json::Value {
    json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "description": "at most this many records"})
}

/// Every tool, read tools first.
pub fn catalogue() -> Vec<Tool> {
    let t = |name, op, description, input_schema, writes| Tool {
        name,
        op,
        description,
        input_schema,
        writes,
    };
    let store_key = || {
        schema(
            json!({"store": name_prop("store name"), "key": name_prop("record key"),
                   "limit": limit_prop()}),
            &["store", "key"],
        )
    };
    vec![
        t("metadata_snapshot", "metadata_snapshot",
          "Stores, histories, access paths, relations, projections, commands, effects, derivations, scatters, subscriptions and retention of the ledger.",
          schema(json!({}), &[]), false),
        t("descriptor_snapshot", "descriptor_snapshot",
          "Every descriptor registered through the protocol, by kind.",
          schema(json!({}), &[]), false),
        t("observability_snapshot", "observability_snapshot",
          "Fact and store counts, backend, durability, descriptor counts, storage and changefeed state.",
          schema(json!({}), &[]), false),
        t("read", "read",
          "The current value of one record (or its value as of a transaction time); null when absent.",
          schema(json!({"store": name_prop("store name"), "key": name_prop("record key"),
                        "as_of": time_prop("transaction time, seconds since the epoch")}),
                 &["store", "key"]), false),
        t("query", "query",
          "Current records of a store whose fields equal `where`, ordered, at most `limit` (required).",
          schema(json!({"store": name_prop("store name"),
                        "where": {"type": "object", "description": "field => value equality filters"},
                        "order": {"description": "a field name, or {field: \"asc\"|\"desc\"}",
                                  "anyOf": [{"type": "string"}, {"type": "object"}]},
                        "limit": limit_prop(),
                        "as_of": time_prop("transaction time, seconds since the epoch")}),
                 &["store", "limit"]), false),
        t("resolve", "resolve",
          "Records of a relation's source store that point at `from`.",
          schema(json!({"relation": name_prop("relation name"),
                        "from": {"description": "the partition value (a key of the relation's target store)"},
                        "as_of": time_prop("transaction time, seconds since the epoch"),
                        "limit": limit_prop()}),
                 &["relation", "from"]), false),
        t("causation_chain", "causation_chain",
          "The facts of one record as a causation chain, oldest first.",
          store_key(), false),
        t("lineage", "lineage",
          "The lineage of one record: its chain, depth, derivation and a proof hash.",
          store_key(), false),
        t("fact_ref", "fact_ref",
          "A compact reference to a fact by id (no value).",
          schema(json!({"fact_id": name_prop("fact id (UUID)")}), &["fact_id"]), false),
        t("replay", "replay",
          "Fact packets in commit order, bounded by store and/or a time range; at most `limit`.",
          schema(json!({"store": name_prop("store name"), "key": name_prop("record key"),
                        "partition_key": name_prop("partition field"),
                        "partition_value": {"description": "partition value"},
                        "from": time_prop("from this transaction time (inclusive)"),
                        "to": time_prop("up to this transaction time (inclusive)"),
                        "limit": limit_prop()}), &[]), false),
        t("sync_profile", "sync_hub_profile",
          "What a replica needs to catch up: every fact (full) or those after a timestamp cursor (incremental); at most `limit`.",
          schema(json!({"as_of": time_prop("upper bound, seconds"),
                        "cursor": {"type": "object", "properties": {"kind": {"const": "timestamp"}, "value": {"type": "number"}}, "required": ["value"]},
                        "stores": {"type": "array", "items": {"type": "string"}},
                        "limit": limit_prop()}), &[]), false),
        t("storage_stats", "storage_stats",
          "Segment storage statistics; null for a ledger without segment storage.",
          schema(json!({"store": name_prop("store name")}), &[]), false),
        t("segment_manifest", "segment_manifest",
          "Segment manifests; null for a ledger without segment storage.",
          schema(json!({"store": name_prop("store name")}), &[]), false),
        t("compaction_activity", "compaction_activity",
          "Retention compactions, exact prunes and segment purges, filtered.",
          schema(json!({"store": name_prop("store name"), "kind": name_prop("activity kind"),
                        "since": time_prop("seconds since the epoch"), "limit": limit_prop()}), &[]), false),
        t("write", "write",
          "Writes a value to (store, key). A write tool: enabled only when named explicitly.",
          schema(json!({"store": name_prop("store name"), "key": name_prop("record key"),
                        "value": {"description": "the value"}, "producer": {"type": "object"}}),
                 &["store", "key", "value"]), true),
        t("append", "append",
          "Appends an event to a history. A write tool: enabled only when named explicitly.",
          schema(json!({"history": name_prop("history name"), "event": {"type": "object"},
                        "partition_key": name_prop("partition field"), "producer": {"type": "object"}}),
                 &["history", "event"]), true),
        t("write_fact", "write_fact",
          "Writes a fact packet (kind: fact). A write tool: enabled only when named explicitly.",
          schema(json!({"packet": {"type": "object"}}), &["packet"]), true),
        t("register_descriptor", "register_descriptor",
          "Registers a descriptor. A write tool: enabled only when named explicitly.",
          schema(json!({"descriptor": {"type": "object"}}), &["descriptor"]), true),
    ]
}

/// The tools of one MCP front door over an interpreter.
#[derive(Debug)]
pub struct McpTools<'a> {
    interp: &'a Interpreter,
    tools: Vec<Tool>,
}

impl<'a> McpTools<'a> {
    /// The read tools.
    pub fn read_only(interp: &'a Interpreter) -> Self {
        Self::enabled(interp, &READ_TOOLS).unwrap_or_else(|_| McpTools {
            interp,
            tools: Vec::new(),
        })
    }

    /// Exactly the named tools (read or write); an unknown name is an error naming it.
    pub fn enabled<S: AsRef<str>>(interp: &'a Interpreter, names: &[S]) -> Result<Self, String> {
        let all = catalogue();
        let mut tools = Vec::new();
        for n in names {
            let n = n.as_ref();
            let t = all
                .iter()
                .find(|t| t.name == n)
                .ok_or_else(|| format!("unknown MCP tool: {n}"))?;
            if !tools.iter().any(|x: &Tool| x.name == n) {
                tools.push(t.clone());
            }
        }
        Ok(McpTools { interp, tools })
    }

    /// The enabled tools.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// Calls a tool with a map of arguments (`request_id:` among them is echoed; a
    /// fresh `mcp_<hex>` id otherwise). Never fails: errors are error responses.
    pub fn call(&self, name: &str, args: &Value) -> Value {
        let request_id = field(args, "request_id")
            .cloned()
            .unwrap_or_else(|| Value::Str(format!("mcp_{:016x}", fastrand::u64(..))));
        let known = catalogue().into_iter().find(|t| t.name == name);
        let op = known.as_ref().map(|t| t.op);
        let answer = |outcome: Result<Value, String>| {
            let mut pairs = vec![
                ("schema_version", Value::Int(1)),
                ("request_id", request_id.clone()),
                ("source_protocol_op", op.map_or(Value::Nil, sym)),
            ];
            match outcome {
                Ok(v) => {
                    pairs.push(("status", sym("ok")));
                    pairs.push(("result", v));
                }
                Err(e) => {
                    pairs.push(("status", sym("error")));
                    pairs.push(("error", Value::Str(e)));
                }
            }
            obj(pairs)
        };
        let Some(tool) = known else {
            return answer(Err(format!("unknown tool: {name}")));
        };
        if !self.tools.iter().any(|t| t.name == name) {
            let enabled: Vec<&str> = self.tools.iter().map(|t| t.name).collect();
            return answer(Err(format!(
                "tool {name} is not enabled (enabled: {})",
                enabled.join(", ")
            )));
        }
        if !matches!(args, Value::Map(_) | Value::Nil) {
            return answer(Err(format!(
                "{name}: arguments must be a Hash, got {}",
                args.type_name()
            )));
        }
        answer(self.run(&tool, args, &request_id))
    }

    fn run(&self, tool: &Tool, args: &Value, request_id: &Value) -> Result<Value, String> {
        let allowed: Vec<String> = tool
            .input_schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let mut packet = Vec::new();
        if let Value::Map(pairs) = args {
            for (k, v) in pairs {
                let key = match k {
                    MapKey::Sym(s) | MapKey::Str(s) => s.as_str(),
                    MapKey::Int(_) => return Err(format!("{}: unknown argument {k}", tool.name)),
                };
                if !allowed.iter().any(|a| a == key) {
                    return Err(format!("{}: unknown argument {key}", tool.name));
                }
                if key != "request_id" && !v.is_nil() {
                    packet.push((MapKey::sym(key), v.clone()));
                }
            }
        }
        let args = Value::Map(packet);
        let limit = match field(&args, "limit") {
            None => None,
            Some(Value::Int(n)) if *n >= 1 && *n as usize <= MAX_LIMIT => Some(*n as usize),
            Some(_) => {
                return Err(format!(
                    "{}: limit must be an Integer from 1 to {MAX_LIMIT}",
                    tool.name
                ))
            }
        };
        let packet = match tool.name {
            "query" => {
                if limit.is_none() {
                    return Err(format!(
                        "query needs limit: (an Integer from 1 to {MAX_LIMIT}); results can be large"
                    ));
                }
                args
            }
            "replay" => {
                if ["store", "from", "to"]
                    .iter()
                    .all(|f| field(&args, f).is_none())
                {
                    return Err(
                        "replay needs a bounding argument: store:, from: or to: (and limit: caps the count)"
                            .into(),
                    );
                }
                let mut filter = Vec::new();
                for f in ["store", "key", "partition_key", "partition_value"] {
                    if let Some(v) = field(&args, f) {
                        filter.push((MapKey::sym(f), v.clone()));
                    }
                }
                let mut p = obj([]);
                for f in ["from", "to"] {
                    if let Some(v) = field(&args, f) {
                        set(&mut p, f, v.clone());
                    }
                }
                if !filter.is_empty() {
                    set(&mut p, "filter", Value::Map(filter));
                }
                p
            }
            "write_fact" => field(&args, "packet").cloned().unwrap_or_default(),
            "register_descriptor" => field(&args, "descriptor").cloned().unwrap_or_default(),
            _ => args,
        };
        let env = obj([
            ("protocol", sym(super::envelope::PROTOCOL)),
            ("schema_version", Value::Int(1)),
            ("request_id", request_id.clone()),
            ("op", sym(tool.op)),
            ("packet", packet),
        ]);
        let resp = self.interp.dispatch(&env);
        if field(&resp, "status").and_then(name_of) != Some("ok") {
            return Err(field(&resp, "error")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_owned());
        }
        let result = field(&resp, "result").cloned().unwrap_or_default();
        let cap = limit.unwrap_or(MAX_LIMIT);
        Ok(match tool.name {
            "read" => field(&result, "value").cloned().unwrap_or_default(),
            "query" => field(&result, "results").cloned().unwrap_or_default(),
            "resolve" => capped(result, &["results", "items"], cap),
            // The chain of one key can be long: the oldest `cap` entries (the proof hash
            // still covers all of them).
            "causation_chain" | "lineage" => capped(result, &["chain"], cap),
            "replay" | "sync_profile" => {
                let mut r = capped(result, &["facts"], cap);
                if tool.name == "sync_profile" {
                    // The next cursor follows the last fact handed out.
                    let last = match field(&r, "facts") {
                        Some(Value::Array(f)) => {
                            f.last().and_then(|f| field(f, "transaction_time")).cloned()
                        }
                        _ => None,
                    };
                    if let Some(t) = last {
                        set(
                            &mut r,
                            "next_cursor",
                            obj([("kind", sym("timestamp")), ("value", t)]),
                        );
                    }
                    let n = match field(&r, "facts") {
                        Some(Value::Array(f)) => f.len() as i64,
                        _ => 0,
                    };
                    set(&mut r, "fact_count", Value::Int(n));
                }
                r
            }
            "compaction_activity" => capped(result, &["activity"], cap),
            _ => result,
        })
    }
}

/// Truncates the named arrays of a result to `cap`, updating `count` and marking
/// `truncated: true` when anything was cut.
fn capped(mut result: Value, arrays: &[&str], cap: usize) -> Value {
    let mut cut = false;
    let mut count = None;
    for name in arrays {
        if let Some(Value::Array(items)) = field(&result, name).cloned() {
            if items.len() > cap {
                cut = true;
                set(&mut result, name, Value::Array(items[..cap].to_vec()));
                count = Some(cap);
            } else {
                count = Some(items.len());
            }
        }
    }
    if cut {
        if let Some(n) = count {
            if field(&result, "count").is_some() {
                set(&mut result, "count", Value::Int(n as i64));
            }
        }
        set(&mut result, "truncated", Value::Bool(true));
    }
    result
}
