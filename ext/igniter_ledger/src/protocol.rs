//! `Igniter::Ledger::Protocol::Interpreter`'s native side: a core
//! [`igniter_ledger::protocol::Interpreter`] over a `LedgerStore`'s ledger, taking Ruby
//! Hashes as packets and answering Ruby objects (type-faithfully: Symbols stay Symbols).
//!
//! The keyword API, `Receipt`, `WireEnvelope`, `SyncProfile` and `MCPAdapter` are Ruby
//! (`lib/igniter/ledger/protocol/*.rb`); every answer is computed here, by the core.

use std::sync::OnceLock;

use igniter_ledger::protocol::{
    interpreter::items_value, Interpreter, McpTools, ProtocolError, Receipt,
};
use igniter_ledger::Value;
use magnus::{
    exception::ExceptionClass, prelude::*, typed_data::Obj, value::Opaque, DataTypeFunctions,
    Error, RArray, RClass, RModule, RString, Ruby, TypedData, Value as RValue,
};

use crate::{convert, errors, store::StoreObj};

/// The data behind a `Protocol::Interpreter` object.
#[derive(DataTypeFunctions)]
pub struct ProtocolObj {
    interp: Interpreter,
}

static CLASS: OnceLock<Opaque<RClass>> = OnceLock::new();
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

fn receipt(ruby: &Ruby, r: Receipt) -> RValue {
    out(ruby, &r.to_value())
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
            interp: Interpreter::new(store.ledger().clone()),
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
        "register" => receipt(ruby, i.register(&p)),
        "write" => receipt(ruby, i.write(&p).map_err(err)?),
        "append" => receipt(ruby, i.append(&p).map_err(err)?),
        "write_fact" => receipt(ruby, i.write_fact(&p)),
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
            return Ok(receipt(
                ruby,
                Receipt::rejection(e.into_error(ruby).to_string(), None, None),
            ))
        }
    };
    Ok(receipt(
        ruby,
        match kind {
            Some(kind) => s.interp.register_as(&kind, &d),
            None => s.interp.register(&d),
        },
    ))
}

/// `_dispatch(envelope)`: never raises for a bad envelope (an unconvertible one gets an
/// error response too).
fn dispatch(ruby: &Ruby, s: &ProtocolObj, env: RValue) -> RValue {
    match convert::to_value(env, "envelope") {
        Ok(env) => out(ruby, &s.interp.dispatch(&env)),
        Err(e) => {
            // Echo the request id when the envelope is a Hash that has one.
            let request_id = magnus::RHash::from_value(env)
                .and_then(|h| {
                    h.get(ruby.to_symbol("request_id"))
                        .or_else(|| h.get("request_id"))
                })
                .and_then(|v| convert::to_value(v, "request_id").ok())
                .unwrap_or_default();
            let bad = igniter_ledger::protocol::packet::obj([
                ("protocol", Value::sym("igniter_store")),
                ("schema_version", Value::Int(1)),
                ("request_id", request_id),
                ("status", Value::sym("error")),
                (
                    "error",
                    Value::Str(format!("error: {}", e.into_error(ruby))),
                ),
            ]);
            out(ruby, &bad)
        }
    }
}

/// `dispatch_json(text)`: a JSON envelope in, a JSON response out.
fn dispatch_json(s: &ProtocolObj, text: RString) -> Result<String, Error> {
    // SAFETY: the bytes are copied before any other Ruby call.
    let bytes = unsafe { text.as_slice() }.to_vec();
    let text = String::from_utf8_lossy(&bytes);
    Ok(s.interp.wire().dispatch_json(&text))
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

/// Defines `Igniter::Ledger::Protocol::Interpreter`'s native methods and
/// `Igniter::Ledger::ProtocolError` (an `ArgumentError`).
pub fn define(ruby: &Ruby, ledger: RModule) -> Result<(), Error> {
    use magnus::{function, method};
    let error = ledger.define_error("ProtocolError", ruby.exception_arg_error())?;
    let _ = ERROR.set(error.into());
    let module = ledger.define_module("Protocol")?;
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
    Ok(())
}
