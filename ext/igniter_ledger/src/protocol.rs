//! `Igniter::Ledger::Protocol::Interpreter`'s native side: a core
//! [`igniter_ledger::protocol::Interpreter`] over a `LedgerStore`'s ledger, taking Ruby
//! Hashes as packets and answering Ruby objects (type-faithfully: Symbols stay Symbols).
//!
//! The keyword API, `Receipt`, `WireEnvelope`, `SyncProfile` and `MCPAdapter` are Ruby
//! (`lib/igniter/ledger/protocol/*.rb`); every answer is computed here, by the core.

use std::sync::OnceLock;

use igniter_ledger::protocol::{
    interpreter::items_value, Answer, Failure, Interpreter, McpTools, ProtocolError, Receipt,
    Requirements, Response, TBackendAdapterDescriptor,
};
use igniter_ledger::Value;
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::{
    exception::ExceptionClass, prelude::*, typed_data::Obj, value::Opaque, DataTypeFunctions,
    Error, IntoValue, RArray, RClass, RHash, RModule, RString, Ruby, TypedData, Value as RValue,
};

use crate::{convert, errors, store::StoreObj};

/// The data behind a `Protocol::Interpreter` object.
#[derive(DataTypeFunctions)]
pub struct ProtocolObj {
    /// Shared with the ledger server when one serves this store (`server.rs`), so both
    /// answer with the same registered descriptors.
    interp: std::sync::Arc<Interpreter>,
}

impl ProtocolObj {
    /// The interpreter (for the in-process ledger server).
    pub(crate) fn interpreter(&self) -> std::sync::Arc<Interpreter> {
        self.interp.clone()
    }
}

static CLASS: OnceLock<Opaque<RClass>> = OnceLock::new();
static PROTOCOL: OnceLock<Opaque<RModule>> = OnceLock::new();
static ERROR: OnceLock<Opaque<ExceptionClass>> = OnceLock::new();

// SAFETY: the interpreter holds no Ruby objects (nothing to mark); dropping it calls no
// Ruby API.
unsafe impl TypedData for ProtocolObj {
    fn class(ruby: &Ruby) -> RClass {
        ruby.get_inner(
            *CLASS
                .get()
                .expect("protocol classes are defined at load time"),
        )
    }

    fn data_type() -> &'static magnus::DataType {
        static DATA_TYPE: magnus::DataType =
            magnus::data_type_builder!(ProtocolObj, "Igniter::Ledger::Protocol::Interpreter")
                .free_immediately()
                .build();
        &DATA_TYPE
    }
}

fn protocol_error(ruby: &Ruby, e: ProtocolError) -> Error {
    match e {
        ProtocolError::Ledger(e) => errors::ledger_error(ruby, e),
        other => Error::new(
            ruby.get_inner(*ERROR.get().expect("defined at load time")),
            other.to_string(),
        ),
    }
}

fn packet(ruby: &Ruby, v: RValue, what: &str) -> Result<Value, Error> {
    if v.is_nil() {
        return Ok(Value::Map(Vec::new()));
    }
    convert::to_value(v, what).map_err(|e| e.into_error(ruby))
}

fn out(ruby: &Ruby, v: &Value) -> RValue {
    convert::to_ruby(ruby, v, false)
}

static RECEIPT: OnceLock<Opaque<RClass>> = OnceLock::new();

/// `Protocol::Receipt` (a Struct defined by the Ruby layer, looked up once).
fn receipt_class(ruby: &Ruby) -> Result<RClass, Error> {
    if let Some(c) = RECEIPT.get() {
        return Ok(ruby.get_inner(*c));
    }
    let module: RModule = ruby.get_inner(*PROTOCOL.get().expect("defined at load time"));
    let class: RClass = module.const_get("Receipt")?;
    let _ = RECEIPT.set(class.into());
    Ok(class)
}

fn opt_sym(ruby: &Ruby, s: Option<&str>) -> RValue {
    s.map_or_else(|| ruby.qnil().as_value(), |s| convert::symbol(ruby, s))
}

fn opt_string(ruby: &Ruby, s: Option<&str>) -> RValue {
    s.map_or_else(
        || ruby.qnil().as_value(),
        |s| convert::string(ruby, s, true),
    )
}

fn strings(ruby: &Ruby, v: &[String]) -> RValue {
    let ary = ruby.ary_new_capa(v.len());
    for s in v {
        let _ = ary.push(convert::string(ruby, s, true));
    }
    ary.as_value()
}

/// A `Protocol::Receipt` object, filled member by member in C (no Ruby-level
/// `initialize` call: receipts are on every write's path).
fn receipt(ruby: &Ruby, r: Receipt) -> Result<RValue, Error> {
    let class = receipt_class(ruby)?;
    let derived = ruby.ary_new_capa(r.derived.len());
    for v in &r.derived {
        derived.push(out(ruby, v))?;
    }
    let values = ruby.ary_new_capa(11);
    for v in [
        (r.schema_version as i64).into_value_with(ruby),
        opt_sym(ruby, r.kind.as_deref()),
        convert::symbol(ruby, r.status.as_str()),
        opt_sym(ruby, r.name.as_deref()),
        opt_sym(ruby, r.store.as_deref()),
        opt_string(ruby, r.key.as_deref()),
        opt_string(ruby, r.fact_id.as_deref()),
        opt_string(ruby, r.value_hash.as_deref()),
        strings(ruby, &r.warnings),
        strings(ruby, &r.errors),
        derived.as_value(),
    ] {
        values.push(v)?;
    }
    // SAFETY: `class` is the Receipt Struct class (11 members, in this order); a fresh
    // allocation of it is a Struct whose members `rb_struct_initialize` sets from an
    // Array no longer than the member list. Neither calls Ruby code that could raise
    // (beyond NoMemoryError) and no Rust value with a destructor is live across them
    // except `values`/`class`, which are GC-visible Ruby objects on this stack.
    unsafe {
        let obj = rb_sys::rb_obj_alloc(class.as_raw());
        rb_sys::rb_struct_initialize(obj, values.as_raw());
        Ok(RValue::from_raw(obj))
    }
}

/// `Interpreter._new(klass, store)`.
fn new(ruby: &Ruby, klass: RClass, store: Obj<StoreObj>) -> Result<Obj<ProtocolObj>, Error> {
    let base: RClass = ruby.get_inner(*CLASS.get().expect("defined at load time"));
    if !klass.is_inherited(base) {
        return Err(Error::new(
            ruby.exception_type_error(),
            format!("{klass} is not a Protocol::Interpreter class"),
        ));
    }
    Ok(ruby.obj_wrap_as(
        ProtocolObj {
            interp: std::sync::Arc::new(Interpreter::new(store.ledger().clone())),
        },
        klass,
    ))
}

/// `_call(op, packet)`: one interpreter operation (receipts come back as Hashes).
fn call(ruby: &Ruby, s: &ProtocolObj, op: RValue, p: RValue) -> Result<RValue, Error> {
    let op = crate::args::name(ruby, op, "op")?;
    let p = packet(ruby, p, "packet")?;
    let i = &s.interp;
    let err = |e| protocol_error(ruby, e);
    Ok(match op.as_str() {
        "write" => receipt(ruby, i.write(&p).map_err(err)?)?,
        "append" => receipt(ruby, i.append(&p).map_err(err)?)?,
        "write_fact" => receipt(ruby, i.write_fact(&p))?,
        "read" => out(ruby, &i.read(&p).map_err(err)?.unwrap_or_default()),
        "query" => out(ruby, &items_value(&i.query(&p).map_err(err)?)),
        "resolve" => out(ruby, &items_value(&i.resolve(&p).map_err(err)?)),
        "causation_chain" => out(ruby, &Value::Array(i.causation_chain(&p).map_err(err)?)),
        "lineage" => out(ruby, &i.lineage(&p).map_err(err)?),
        "fact_ref" => out(ruby, &i.fact_ref(&p).map_err(err)?.unwrap_or_default()),
        "replay" => out(ruby, &Value::Array(i.replay(&p).map_err(err)?)),
        "sync_hub_profile" => out(ruby, &i.sync_hub_profile(&p).map_err(err)?.to_value()),
        "metadata_snapshot" => out(ruby, &i.metadata_snapshot()),
        "descriptor_snapshot" => out(ruby, &i.descriptor_snapshot()),
        "observability_snapshot" => out(ruby, &i.observability_snapshot()),
        "storage_stats" => out(ruby, &i.storage_stats(&p).map_err(err)?.unwrap_or_default()),
        "segment_manifest" => out(
            ruby,
            &i.segment_manifest(&p).map_err(err)?.unwrap_or_default(),
        ),
        "compaction_activity" => out(ruby, &i.compaction_activity(&p).map_err(err)?),
        other => {
            return Err(Error::new(
                ruby.exception_arg_error(),
                format!("unknown protocol operation: {other}"),
            ))
        }
    })
}

/// `_register_as(kind, descriptor)`: `kind` nil registers the descriptor as it is.
fn register_as(ruby: &Ruby, s: &ProtocolObj, kind: RValue, d: RValue) -> Result<RValue, Error> {
    let kind = crate::args::opt_name(ruby, kind, "kind")?;
    // A descriptor that cannot even be converted is a rejection, like any bad descriptor.
    let d = match convert::to_value(d, "descriptor") {
        Ok(d) => d,
        Err(e) => {
            return receipt(
                ruby,
                Receipt::rejection(e.into_error(ruby).to_string(), None, None),
            )
        }
    };
    receipt(
        ruby,
        match kind {
            Some(kind) => s.interp.register_as(&kind, &d),
            None => s.interp.register(&d),
        },
    )
}

/// `_dispatch(envelope)`: never raises for a bad envelope (an unconvertible one gets an
/// error response too). Receipts come back as `Protocol::Receipt` objects.
fn dispatch(ruby: &Ruby, s: &ProtocolObj, env: RValue) -> Result<RHash, Error> {
    let response = match convert::to_value(env, "envelope") {
        Ok(env) => s.interp.wire().respond(env),
        Err(e) => {
            // Echo the request id when the envelope is a Hash that has one.
            let request_id = RHash::from_value(env)
                .and_then(|h| {
                    h.get(ruby.to_symbol("request_id"))
                        .or_else(|| h.get("request_id"))
                })
                .and_then(|v| convert::to_value(v, "request_id").ok())
                .unwrap_or_default();
            Response {
                request_id,
                outcome: Err(Failure {
                    message: format!("error: {}", e.into_error(ruby)),
                    field: None,
                }),
            }
        }
    };
    let h = ruby.hash_new();
    h.aset(
        convert::symbol(ruby, "protocol"),
        convert::symbol(ruby, "igniter_store"),
    )?;
    h.aset(convert::symbol(ruby, "schema_version"), 1)?;
    h.aset(
        convert::symbol(ruby, "request_id"),
        out(ruby, &response.request_id),
    )?;
    match response.outcome {
        Ok(answer) => {
            h.aset(convert::symbol(ruby, "status"), convert::symbol(ruby, "ok"))?;
            let result = match answer {
                Answer::Receipt(r) => receipt(ruby, r)?,
                Answer::Value(v) => out(ruby, &v),
            };
            h.aset(convert::symbol(ruby, "result"), result)?;
        }
        Err(f) => {
            h.aset(
                convert::symbol(ruby, "status"),
                convert::symbol(ruby, "error"),
            )?;
            h.aset(
                convert::symbol(ruby, "error"),
                convert::string(ruby, &f.message, false),
            )?;
            if let Some(field) = f.field {
                h.aset(
                    convert::symbol(ruby, "error_field"),
                    convert::symbol(ruby, &field),
                )?;
            }
        }
    }
    Ok(h)
}

/// `dispatch_json(text)`: a JSON envelope in, a JSON response out.
fn dispatch_json(s: &ProtocolObj, text: RString) -> Result<String, Error> {
    // SAFETY: the bytes are copied before any other Ruby call.
    let bytes = unsafe { text.as_slice() }.to_vec();
    Ok(match std::str::from_utf8(&bytes) {
        Ok(text) => s.interp.wire().dispatch_json(text),
        Err(e) => {
            let refused = Response {
                request_id: Value::Nil,
                outcome: Err(Failure {
                    message: format!("malformed JSON envelope: not UTF-8 ({e})"),
                    field: None,
                }),
            };
            igniter_ledger::protocol::json::to_json(&refused.into_value()).to_string()
        }
    })
}

fn tool_names(ruby: &Ruby, names: RArray) -> Result<Vec<String>, Error> {
    names
        .into_iter()
        .map(|n| crate::args::name(ruby, n, "enabled_tools"))
        .collect()
}

/// `_mcp_tools(names)`: the enabled tools as `[{name:, description:, input_schema:}]`.
fn mcp_tools(ruby: &Ruby, s: &ProtocolObj, names: RArray) -> Result<RValue, Error> {
    let names = tool_names(ruby, names)?;
    let tools = McpTools::enabled(&s.interp, &names)
        .map_err(|e| Error::new(ruby.exception_arg_error(), e))?;
    let list = tools
        .tools()
        .iter()
        .map(|t| {
            igniter_ledger::protocol::packet::obj([
                ("name", Value::Str(t.name.to_owned())),
                ("description", Value::Str(t.description.to_owned())),
                ("input_schema", json_doc(&t.input_schema)),
                ("source_protocol_op", Value::sym(t.op)),
                ("writes", Value::Bool(t.writes)),
            ])
        })
        .collect();
    Ok(out(ruby, &Value::Array(list)))
}

/// A JSON document (a schema) as a value with String keys, as JSON.parse gives.
fn json_doc(j: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Object(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (igniter_ledger::MapKey::str(k.as_str()), json_doc(v)))
                .collect(),
        ),
        J::Array(a) => Value::Array(a.iter().map(json_doc).collect()),
        other => igniter_ledger::protocol::json::from_json(other),
    }
}

/// `_mcp_call(names, tool, args)`.
fn mcp_call(
    ruby: &Ruby,
    s: &ProtocolObj,
    names: RArray,
    tool: RValue,
    args: RValue,
) -> Result<RValue, Error> {
    let names = tool_names(ruby, names)?;
    let tools = McpTools::enabled(&s.interp, &names)
        .map_err(|e| Error::new(ruby.exception_arg_error(), e))?;
    let tool = crate::args::name(ruby, tool, "tool")?;
    let args = packet(ruby, args, "arguments")?;
    Ok(out(ruby, &tools.call(&tool, &args)))
}

fn name_list(ruby: &Ruby, v: RValue, what: &str) -> Result<Vec<String>, Error> {
    if v.is_nil() {
        return Ok(Vec::new());
    }
    let ary = RArray::from_value(v).ok_or_else(|| {
        Error::new(
            ruby.exception_type_error(),
            format!("{what} must be an Array"),
        )
    })?;
    ary.into_iter()
        .map(|n| crate::args::name(ruby, n, what))
        .collect()
}

/// `Protocol._tbackend_build(metadata_snapshot, descriptor_snapshot, fingerprint, ops)`:
/// the TBackend adapter descriptor's payload (deep-frozen).
fn tbackend_build(
    ruby: &Ruby,
    metadata: RValue,
    descriptors: RValue,
    fingerprint: RValue,
    ops: RValue,
) -> Result<RValue, Error> {
    let metadata = packet(ruby, metadata, "metadata_snapshot")?;
    let descriptors = packet(ruby, descriptors, "descriptor_snapshot")?;
    let fingerprint = crate::args::opt_name(ruby, fingerprint, "schema_fingerprint")?;
    let ops = name_list(ruby, ops, "ledger_protocol_ops")?;
    let d = TBackendAdapterDescriptor::build(&metadata, &descriptors, fingerprint.as_deref(), &ops);
    Ok(convert::to_ruby(ruby, &d.to_value(), true))
}

/// `Protocol._tbackend_diagnostics(payload, ops, hooks, capabilities, axes, fingerprint)`.
fn tbackend_diagnostics(ruby: &Ruby, args: &[RValue]) -> Result<RValue, Error> {
    let [payload, ops, hooks, caps, axes, fingerprint] = args else {
        return Err(Error::new(
            ruby.exception_arg_error(),
            "_tbackend_diagnostics takes 6 arguments",
        ));
    };
    let payload = packet(ruby, *payload, "descriptor")?;
    let d = TBackendAdapterDescriptor::from_value(&payload).ok_or_else(|| {
        Error::new(
            ruby.exception_arg_error(),
            "not a TBackend adapter descriptor payload",
        )
    })?;
    let req = Requirements {
        ops: name_list(ruby, *ops, "required_ops")?,
        hook_methods: name_list(ruby, *hooks, "required_hook_methods")?,
        capabilities: name_list(ruby, *caps, "required_capabilities")?,
        history_axes: name_list(ruby, *axes, "history_axes")?,
        schema_fingerprint: crate::args::opt_name(ruby, *fingerprint, "schema_fingerprint")?,
    };
    Ok(out(ruby, &d.diagnostics(&req)))
}

/// Defines `Igniter::Ledger::Protocol::Interpreter`'s native methods and
/// `Igniter::Ledger::ProtocolError` (an `ArgumentError`).
pub fn define(ruby: &Ruby, ledger: RModule) -> Result<(), Error> {
    use magnus::{function, method};
    let error = ledger.define_error("ProtocolError", ruby.exception_arg_error())?;
    let _ = ERROR.set(error.into());
    let module = ledger.define_module("Protocol")?;
    let _ = PROTOCOL.set(module.into());
    let class = module.define_class("Interpreter", ruby.class_object())?;
    class.undef_default_alloc_func();
    let _ = CLASS.set(class.into());
    class.define_singleton_method("_new", function!(new, 2))?;
    class.define_private_method("_call", method!(call, 2))?;
    class.define_private_method("_register_as", method!(register_as, 2))?;
    class.define_private_method("_dispatch", method!(dispatch, 1))?;
    class.define_method("dispatch_json", method!(dispatch_json, 1))?;
    class.define_private_method("_mcp_tools", method!(mcp_tools, 1))?;
    class.define_private_method("_mcp_call", method!(mcp_call, 3))?;
    module.define_singleton_method("_tbackend_build", function!(tbackend_build, 4))?;
    module.define_singleton_method("_tbackend_diagnostics", function!(tbackend_diagnostics, -1))?;
    Ok(())
}
