//! Lineage: a key's causation chain with its proof hash, and compact fact references.

use uuid::Uuid;

use super::LedgerStore;
use crate::ledger::fact;
use crate::ledger::request::HistoryQuery;
use crate::ledger::time::Timestamp;

/// One entry of [`LedgerStore::causation_chain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEntry {
    /// Fact id.
    pub id: Uuid,
    /// First 12 hex characters of the value hash.
    pub value_hash: String,
    /// The fact's causation.
    pub causation: Option<Uuid>,
    /// Commit time.
    pub transaction_time: Timestamp,
}

/// The lineage of a key: its causation chain and a stable proof hash over it.
#[derive(Clone, Debug, PartialEq)]
pub struct Lineage {
    /// Store name.
    pub store: String,
    /// Key.
    pub key: String,
    /// The chain, oldest first.
    pub chain: Vec<ChainEntry>,
    /// Number of facts in the chain.
    pub depth: usize,
    /// The derivations whose source store is the key's store (as the reference lists
    /// them). A derived fact's own provenance is in its `derivation` field.
    pub derived_by: Vec<crate::derive::Derivation>,
    /// blake3 hex over the chain's `id:value_hash:causation` entries joined by `\n`
    /// (None for an unknown key).
    pub proof_hash: Option<String>,
}

/// A compact reference to a fact.
#[derive(Clone, Debug, PartialEq)]
pub struct FactRef {
    /// Fact id.
    pub id: Uuid,
    /// Store name.
    pub store: String,
    /// Key.
    pub key: String,
    /// Commit time.
    pub transaction_time: Timestamp,
    /// Domain time.
    pub valid_time: Option<f64>,
    /// Full value hash (hex).
    pub value_hash: String,
}

impl LedgerStore {
    /// The key's facts as a causation chain, oldest first.
    pub fn causation_chain(&self, store: &str, key: &str) -> Vec<ChainEntry> {
        self.history_raw(HistoryQuery::new(store).key(key))
            .iter()
            .map(|f| ChainEntry {
                id: f.id(),
                value_hash: fact::hex(&f.value_hash()[..6]),
                causation: f.causation(),
                transaction_time: f.transaction_time(),
            })
            .collect()
    }

    /// The key's lineage with a stable proof hash.
    pub fn lineage(&self, store: &str, key: &str) -> Lineage {
        let chain = self.causation_chain(store, key);
        let proof_hash = (!chain.is_empty()).then(|| {
            let text: Vec<String> = chain
                .iter()
                .map(|e| {
                    format!(
                        "{}:{}:{}",
                        e.id,
                        e.value_hash,
                        e.causation.map(|c| c.to_string()).unwrap_or_default()
                    )
                })
                .collect();
            blake3::hash(text.join("\n").as_bytes())
                .to_hex()
                .to_string()
        });
        Lineage {
            store: store.to_owned(),
            key: key.to_owned(),
            depth: chain.len(),
            derived_by: self.derivations_for_store(store),
            chain,
            proof_hash,
        }
    }

    /// A compact reference to a fact by id.
    pub fn fact_ref(&self, id: Uuid) -> Option<FactRef> {
        self.fact_by_id(id).map(|f| FactRef {
            id: f.id(),
            store: f.store().to_owned(),
            key: f.key().to_owned(),
            transaction_time: f.transaction_time(),
            valid_time: f.valid_time(),
            value_hash: f.value_hash_hex(),
        })
    }
}
