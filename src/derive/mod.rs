//! Derived state: derivations, scatters, relations, projections and the schema graph.
//!
//! | module | holds |
//! |---|---|
//! | [`rules`] | what can be registered ([`Derivation`], [`Scatter`], [`Relation`], [`Projection`]) and the rule traits |
//! | [`graph`] | [`SchemaGraph`]: everything registered, look-ups and metadata snapshots |
//! | `reactor` | the live rules and what they do after a commit is published |
//! | `api` | the [`crate::LedgerStore`] methods: `register_*`, `react`, `resolve` |
//!
//! Rules react to **published** commits, never inside one: a derived fact is an ordinary
//! commit that follows its source commit, before `write` returns. Each derived fact
//! records in its `derivation` field which rule made it and from which source facts:
//!
//! - a derivation: `{kind: :derivation, rule:, trigger: <source fact id>, inputs: <n>,
//!   inputs_as_of: <newest input's transaction time>, input_digest: <blake3 over the
//!   inputs' ids and value hashes, in key order>, reconciled:}`;
//! - a scatter or relation index: `{kind: :scatter | :relation, rule:, sources: [<id>]}`.
//!
//! After a crash between a source commit and its derived writes, registering the rules
//! again reconciles the targets (see `reactor`'s documentation).

mod api;
pub mod graph;
mod reactor;
pub mod rules;

pub(crate) use reactor::Reactor;

pub use graph::SchemaGraph;
pub use rules::{
    partition_key_text, Derivation, DerivationRule, Fallible, KeyRule, Projection, Relation,
    Scatter, ScatterRule, TargetKey,
};
