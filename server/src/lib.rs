//! # igniter_ledger_server
//!
//! The front doors of igniter-ledger, kept out of the embeddable core: they need an async
//! runtime and network or stdio transports, which the core never depends on.
//!
//! | module | holds |
//! |---|---|
//! | [`server`] | the ledger server: framed TCP/unix (legacy ops and wire envelopes), HTTP, SSE |
//! | [`client`] | [`client::RemoteStore`]: a ledger store served by a server |
//! | [`mcp`] | the MCP server: the core's MCP tool catalogue served over stdio with `rmcp` |
//! | [`cli`] | the `igniter-ledger` operator command line |
//! | [`sync`] | the PostgreSQL sync hub: push, pull, bootstrap, hub retention |
//!
//! `cli` and `mcp` need the default `tools` feature (clap, rmcp, indicatif); `sync` needs
//! the `sync` feature (tokio-postgres), which `tools` implies. With neither, the crate is
//! the server and the client only; the Ruby extension builds it with `sync`.
//!
//! Every front door answers through the core's one protocol interpreter
//! ([`igniter_ledger::protocol::Interpreter`]), so the MCP server, the Ruby gem's
//! `MCPAdapter` and the servers answer alike.

#[cfg(feature = "tools")]
pub mod cli;
pub mod client;
#[cfg(feature = "tools")]
pub mod mcp;
pub mod server;
#[cfg(feature = "sync")]
pub mod sync;
