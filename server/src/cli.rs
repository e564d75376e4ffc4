//! The `igniter-ledger` operator command line: a dispatcher over one small module per
//! subcommand (`cli/<name>.rs`).
//!
//! Every subcommand that reads a ledger takes its path as a positional argument, with
//! `--path` accepted as a synonym. Errors are one line on stderr and exit code 1.

mod checkpoint;
mod compact;
mod dump;
mod import;
mod mcp;
mod path;
pub mod serve;
mod stats;
mod tail;
mod verify;

use clap::{Parser, Subcommand};

pub use path::LedgerPath;

/// `igniter-ledger`: operate an igniter-ledger fact ledger.
#[derive(Debug, Parser)]
#[command(
    name = "igniter-ledger",
    version,
    about,
    after_help = "Examples:\n  igniter-ledger stats ledger.wal\n  igniter-ledger verify ledger.wal\n  igniter-ledger dump ledger.wal --store tasks > tasks.jsonl\n  igniter-ledger serve --path ledger.wal --backend file --http-port 7300\n  igniter-ledger tail tcp://127.0.0.1:7400 --follow"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the number of facts (a plain integer).
    Stats(stats::Args),
    /// Check every frame (length, CRC32), every value hash and every causation link.
    Verify(verify::Args),
    /// Print the facts as JSON Lines (one fact hash per line, commit order).
    Dump(dump::Args),
    /// Copy the facts of a 0.5.2 (or any) ledger file into a new ledger, keeping ids.
    Import(import::Args),
    /// Write a snapshot of the ledger next to its WAL (faster open).
    Checkpoint(checkpoint::Args),
    /// Apply the registered retention policies (compaction).
    Compact(compact::Args),
    /// Print the last facts; with --follow, keep printing new ones (from a server).
    Tail(tail::Args),
    /// Serve the ledger over TCP/unix and HTTP (same as `igniter-ledger-server`).
    Serve(Box<serve::ServeArgs>),
    /// Serve a ledger to an MCP client (an editor or an agent) over stdio. Read-only
    /// unless write tools are allowed by name.
    Mcp(mcp::McpArgs),
    /// Sync with a PostgreSQL hub: push this ledger's facts, pull or bootstrap others'.
    Sync(crate::sync::cli::SyncArgs),
}

/// Runs a parsed command line; the error is the message for stderr.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Stats(a) => stats::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Dump(a) => dump::run(a),
        Command::Import(a) => import::run(a),
        Command::Checkpoint(a) => checkpoint::run(a),
        Command::Compact(a) => compact::run(a),
        Command::Tail(a) => tail::run(a),
        Command::Serve(a) => serve::run(*a),
        Command::Mcp(a) => mcp::run(a),
        Command::Sync(args) => crate::sync::cli::run(args),
    }
}

/// Parses `args` and runs them; returns the process exit code. Help and version go to
/// stdout (code 0); any error is one line on stderr (code 1).
pub fn main_with<P: Parser, I, T>(
    args: I,
    name: &str,
    run: impl FnOnce(P) -> Result<(), String>,
) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match P::try_parse_from(args) {
        Ok(p) => match run(p) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{name}: {}", e.lines().next().unwrap_or("failed"));
                1
            }
        },
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    1
                } else {
                    0
                }
            } else {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("invalid arguments");
                let first = first.strip_prefix("error: ").unwrap_or(first);
                eprintln!("{name}: {first} (see --help)");
                1
            }
        }
    }
}
