//! # igniter_ledger_server
//!
//! The front doors of igniter-ledger, kept out of the embeddable core: they need an async
//! runtime and network or stdio transports, which the core never depends on.
//!
//! | module | holds |
//! |---|---|
//! | [`mcp`] | the MCP server: the core's MCP tool catalogue served over stdio with `rmcp` |
//! | [`cli`] | the `igniter-ledger` operator command line |
//! | [`sync`] | the PostgreSQL sync hub: push, pull, bootstrap, hub retention |
//!
//! Every front door answers through the core's one protocol interpreter
//! ([`igniter_ledger::protocol::Interpreter`]), so the MCP server, the Ruby gem's
//! `MCPAdapter` and the servers to come answer alike.

pub mod cli;
pub mod mcp;
pub mod sync;
