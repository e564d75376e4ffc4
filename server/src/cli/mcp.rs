//! `igniter-ledger mcp PATH`: the MCP server over stdio.

use std::sync::Arc;

use igniter_ledger::protocol::Interpreter;
use rmcp::ServiceExt;

use super::path::LedgerPath;
use crate::mcp::LedgerMcp;

/// Arguments of `igniter-ledger mcp`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  igniter-ledger mcp ledger.wal\n  igniter-ledger mcp --path ledger.wal --tools read,query --allow-write write"
)]
pub struct McpArgs {
    #[command(flatten)]
    path: LedgerPath,
    /// Serve only these read tools (comma-separated; default: all 14).
    #[arg(long, value_delimiter = ',')]
    pub tools: Vec<String>,
    /// Also serve these write tools (comma-separated: write, append, write_fact,
    /// register_descriptor). Without it the server never writes.
    #[arg(long, value_delimiter = ',')]
    pub allow_write: Vec<String>,
}

pub(super) fn run(args: McpArgs) -> Result<(), String> {
    let (path, ledger) = args.path.open()?;
    let handler = LedgerMcp::new(
        Arc::new(Interpreter::new(ledger.clone())),
        &args.tools,
        &args.allow_write,
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let served = runtime.block_on(async move {
        let service = handler
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| format!("MCP initialization failed: {e}"))?;
        service
            .waiting()
            .await
            .map_err(|e| format!("MCP service failed: {e}"))?;
        Ok::<(), String>(())
    });
    let closed = ledger
        .close()
        .map_err(|e| format!("closing {}: {e}", path.display()));
    served.and(closed)
}
