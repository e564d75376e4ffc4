//! The MCP server: an [`rmcp`] [`ServerHandler`] over a ledger's protocol interpreter.
//!
//! Tools are the core's catalogue ([`igniter_ledger::protocol::mcp`]): the reference's
//! read tools, each with a JSON Schema for its input; write tools only when enabled by
//! name. Every call answers the protocol's MCP envelope
//! (`{schema_version, request_id, source_protocol_op, status, result|error}`) as
//! structured content (and as its JSON text); an `error` status is a tool error
//! (`isError: true`), never a crash of the server.

use std::sync::Arc;

use igniter_ledger::protocol::mcp::{catalogue, McpTools, READ_TOOLS, WRITE_TOOLS};
use igniter_ledger::protocol::{json, packet::field, Interpreter};
use igniter_ledger::Value;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

/// The MCP handler: one interpreter, a fixed set of enabled tools.
#[derive(Clone, Debug)]
pub struct LedgerMcp {
    interp: Arc<Interpreter>,
    enabled: Arc<Vec<String>>,
}

impl LedgerMcp {
    /// A handler serving the read tools, plus the write tools named in `allow_write`.
    /// `only` (when not empty) restricts the read tools to those named. An unknown name,
    /// or a read tool in `allow_write`, is an error naming it.
    pub fn new(
        interp: Arc<Interpreter>,
        only: &[String],
        allow_write: &[String],
    ) -> Result<Self, String> {
        let mut enabled: Vec<String> = Vec::new();
        for n in only {
            if !READ_TOOLS.contains(&n.as_str()) {
                return Err(format!(
                    "--tools: {n} is not a read tool (read tools: {})",
                    READ_TOOLS.join(", ")
                ));
            }
        }
        for n in READ_TOOLS {
            if only.is_empty() || only.iter().any(|o| o == n) {
                enabled.push(n.to_owned());
            }
        }
        for n in allow_write {
            if !WRITE_TOOLS.contains(&n.as_str()) {
                return Err(format!(
                    "--allow-write: {n} is not a write tool (write tools: {})",
                    WRITE_TOOLS.join(", ")
                ));
            }
            if !enabled.contains(n) {
                enabled.push(n.clone());
            }
        }
        Ok(LedgerMcp {
            interp,
            enabled: Arc::new(enabled),
        })
    }

    /// The names of the enabled tools.
    pub fn enabled(&self) -> &[String] {
        &self.enabled
    }

    fn tools(&self) -> McpTools<'_> {
        // The names were checked in `new`.
        McpTools::enabled(&self.interp, &self.enabled)
            .unwrap_or_else(|_| McpTools::read_only(&self.interp))
    }

    /// Calls a tool with JSON arguments; answers the MCP envelope as JSON.
    pub fn call_json(
        &self,
        name: &str,
        args: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> serde_json::Value {
        let args = args.map_or(Value::Map(Vec::new()), |a| {
            json::from_json(&serde_json::Value::Object(a))
        });
        json::to_json(&self.tools().call(name, &args))
    }
}

impl ServerHandler for LedgerMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "igniter-ledger",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "An igniter-ledger fact ledger. Start with metadata_snapshot to see its stores; \
                 read and query current records (query needs limit); causation_chain, lineage \
                 and fact_ref explain where a record came from; replay needs store, from or to.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = catalogue()
            .into_iter()
            .filter(|t| self.enabled.iter().any(|e| e == t.name))
            .map(|t| {
                let schema = match t.input_schema {
                    serde_json::Value::Object(m) => m,
                    _ => serde_json::Map::new(),
                };
                let mut tool = Tool::new(t.name, t.description, schema);
                tool.annotations = Some(ToolAnnotations::default().read_only(!t.writes));
                tool
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let answer = self.call_json(&request.name, request.arguments);
        let ok = json::from_json(&answer);
        let ok = field(&ok, "status").and_then(Value::as_str) == Some("ok");
        Ok(if ok {
            CallToolResult::structured(answer)
        } else {
            CallToolResult::structured_error(answer)
        }
        .into())
    }
}
