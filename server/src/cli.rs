//! The `igniter-ledger` operator command line.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use igniter_ledger::protocol::Interpreter;
use igniter_ledger::LedgerStore;
use rmcp::ServiceExt;

use crate::mcp::LedgerMcp;

/// `igniter-ledger`: operate an igniter-ledger fact ledger.
#[derive(Debug, Parser)]
#[command(name = "igniter-ledger", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a ledger to an MCP client (an editor or an agent) over stdio. Read-only
    /// unless write tools are allowed by name.
    Mcp(McpArgs),
    /// Sync with a PostgreSQL hub: push this ledger's facts, pull or bootstrap others'.
    Sync(crate::sync::cli::SyncArgs),
}

/// Arguments of `igniter-ledger mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The ledger's WAL file (it must exist, and not be open in another process).
    #[arg(long)]
    pub path: PathBuf,
    /// Serve only these read tools (comma-separated; default: all 14).
    #[arg(long, value_delimiter = ',')]
    pub tools: Vec<String>,
    /// Also serve these write tools (comma-separated: write, append, write_fact,
    /// register_descriptor). Without it the server never writes.
    #[arg(long, value_delimiter = ',')]
    pub allow_write: Vec<String>,
}

/// Runs a parsed command line; the error is the message for stderr.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Mcp(args) => mcp(args),
        Command::Sync(args) => crate::sync::cli::run(args),
    }
}

fn mcp(args: McpArgs) -> Result<(), String> {
    if !args.path.is_file() {
        return Err(format!("no ledger at {}", args.path.display()));
    }
    let ledger = LedgerStore::open(&args.path)
        .map_err(|e| format!("cannot open {}: {e}", args.path.display()))?;
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
        .map_err(|e| format!("closing {}: {e}", args.path.display()));
    served.and(closed)
}
