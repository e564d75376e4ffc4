//! Derived state: derivations, scatters, relations, projections and the schema graph.
//!
//! | module | holds |
//! |---|---|
//! | `rules` | what can be registered ([`Derivation`], [`Scatter`], [`Relation`], [`Projection`]) and the rule traits |
//! | `graph` | [`SchemaGraph`]: everything registered, look-ups and metadata snapshots |
//! | `reactor` | the live rules and what they do after a commit is published |
//! | `api` | the [`crate::LedgerStore`] methods: `register_*`, `react`, `resolve` |
//!
//! Rules react to **published** commits, never inside one: a derived fact is an ordinary
//! commit that follows its source commit, before `write` returns. Each derived fact
//! records in its `derivation` field which rule made it and from which source facts:
//!
//! - a derivation: `{kind: :derivation, rule:, trigger: <source fact id>, inputs: <n>,
//!   input_digest: <hex of the lane-wise wrapping sum of blake3(id ++ value hash) over
//!   the input facts: equal for equal sets, kept up to date in O(1) per change>,
//!   reconciled:}` (listing every input id would make each derived fact O(inputs) big);
//! - a scatter or relation index: `{kind: :scatter | :relation, rule:, sources: [<id>]}`.
//!
//! After a crash between a source commit and its derived writes, registering the rules
//! again reconciles the targets (see `reactor`'s documentation).

mod api;
mod graph;
mod reactor;
mod rules;

pub(crate) use reactor::Reactor;

pub(crate) use graph::derived_by_value;
pub use graph::SchemaGraph;
pub use rules::{
    partition_key_text, Derivation, DerivationRule, Fallible, KeyRule, Projection, Relation,
    Scatter, ScatterRule, TargetKey,
};
