//! The Ledger Open Protocol: descriptors, receipts, the interpreter, the wire envelope,
//! the sync profile, metadata and observability snapshots, and the MCP tool catalogue.
//!
//! | module | holds |
//! |---|---|
//! | [`packet`] | reading and building packets (Symbol or String keys), packet limits |
//! | [`descriptor`] | descriptor kinds, validation, normalization, the dedup hash |
//! | [`registry`] | what descriptors registered, and the descriptor snapshot |
//! | [`receipt`] | receipts: accepted, rejected, deduplicated |
//! | [`interpreter`] | [`Interpreter`]: every operation over a [`crate::LedgerStore`] |
//! | [`query`] | how `query` finds records: field indexes, early exit, bounded top-k |
//! | [`sources`] | [`Sources`]: the seam other modules fill (relations, retention, storage, changefeed) |
//! | [`sync`] | [`SyncProfile`] |
//! | [`envelope`] | [`WireEnvelope`] and its 18 operations |
//! | [`json`] | values ⇄ plain JSON for the wire |
//! | [`mcp`] | the MCP tools and their bounded calls |
//! | [`sink`] | the contractable receipt sink |
//! | [`tbackend`] | TBackend adapter descriptors and their diagnostics |
//!
//! Every front door (the Ruby gem, the MCP server, the servers to come) goes through one
//! [`Interpreter`], so they all answer alike.
//!
//! ```
//! use igniter_ledger::protocol::{json, Interpreter};
//! use igniter_ledger::LedgerStore;
//!
//! let proto = Interpreter::new(LedgerStore::memory());
//! let w = proto.wire().dispatch_json(
//!     r#"{"protocol":"igniter_store","schema_version":1,"request_id":"r1","op":"write",
//!         "packet":{"store":"tasks","key":"t1","value":{"status":"open"}}}"#,
//! );
//! assert!(w.contains(r#""status":"ok""#));
//! let r = proto.wire().dispatch_json(
//!     r#"{"protocol":"igniter_store","schema_version":1,"request_id":"r2","op":"read",
//!         "packet":{"store":"tasks","key":"t1"}}"#,
//! );
//! let r: serde_json::Value = serde_json::from_str(&r).unwrap();
//! assert_eq!(r["result"]["value"]["status"], "open");
//! ```

pub mod descriptor;
pub mod envelope;
mod error;
pub mod interpreter;
pub mod json;
pub mod mcp;
pub mod packet;
pub mod query;
pub mod receipt;
pub mod registry;
pub mod sink;
pub mod sources;
pub mod sync;
pub mod tbackend;

pub use descriptor::RelationRule;
pub use envelope::{Answer, Failure, Response, WireEnvelope, OPERATIONS};
pub use error::ProtocolError;
pub use interpreter::{fact_packet, Interpreter};
pub use mcp::{McpTools, Tool};
pub use receipt::{Receipt, ReceiptStatus};
pub use sources::{ActivityQuery, CoreSources, Item, Sources};
pub use sync::{SyncMode, SyncProfile};
pub use tbackend::{Requirements, TBackendAdapterDescriptor};
