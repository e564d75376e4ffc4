//! Facts as hub rows and back: every field of the fact, the value twice (JSONB for SQL,
//! the canonical MessagePack bytes for a type-faithful round trip), the value hash.

use igniter_ledger::__private::codec;
use igniter_ledger::protocol::json::to_json;
use igniter_ledger::{Fact, FactParts, Timestamp, Value};
use tokio_postgres::Row;
use uuid::Uuid;

use super::SyncError;

/// A value as JSONB, or None when PostgreSQL cannot hold it as JSON (a string with a NUL
/// character): the canonical bytes beside it still carry it whole.
pub fn jsonb(v: &Value) -> Option<serde_json::Value> {
    let j = to_json(v);
    fn has_nul(j: &serde_json::Value) -> bool {
        match j {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().any(has_nul),
            serde_json::Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    (!has_nul(&j)).then_some(j)
}

/// Column arrays of one push batch (one PostgreSQL array parameter per column).
#[derive(Default, Debug)]
pub struct Columns {
    /// Fact ids.
    pub fact_id: Vec<Uuid>,
    /// The facts' positions in the origin ledger's changefeed.
    pub origin_sequence: Vec<i64>,
    /// Store names.
    pub store: Vec<String>,
    /// Keys.
    pub key: Vec<String>,
    /// Values as JSONB.
    pub value: Vec<Option<serde_json::Value>>,
    /// Canonical value bytes.
    pub value_bytes: Vec<Vec<u8>>,
    /// blake3 value hashes.
    pub value_hash: Vec<Vec<u8>>,
    /// Whether the value was erased.
    pub erased: Vec<bool>,
    /// Causations.
    pub causation: Vec<Option<Uuid>>,
    /// Transaction times in microseconds since the epoch.
    pub transaction_us: Vec<i64>,
    /// Valid times (seconds).
    pub valid_time: Vec<Option<f64>>,
    /// Schema versions.
    pub schema_version: Vec<i32>,
    /// Producers as JSONB.
    pub producer: Vec<Option<serde_json::Value>>,
    /// Producers' canonical bytes.
    pub producer_bytes: Vec<Option<Vec<u8>>>,
    /// Derivations as JSONB.
    pub derivation: Vec<Option<serde_json::Value>>,
    /// Derivations' canonical bytes.
    pub derivation_bytes: Vec<Option<Vec<u8>>>,
}

impl Columns {
    /// Adds one fact, at `sequence` in its ledger's changefeed.
    pub fn push(&mut self, f: &Fact, sequence: u64) {
        self.fact_id.push(f.id());
        self.origin_sequence
            .push(i64::try_from(sequence).unwrap_or(i64::MAX));
        self.store.push(f.store().to_owned());
        self.key.push(f.key().to_owned());
        self.value.push(jsonb(&f.value()));
        self.value_bytes.push(f.value_bytes().to_vec());
        self.value_hash.push(f.value_hash().to_vec());
        self.erased.push(f.is_erased());
        self.causation.push(f.causation());
        self.transaction_us.push(f.transaction_time().as_micros());
        self.valid_time.push(f.valid_time());
        self.schema_version
            .push(i32::try_from(f.schema_version()).unwrap_or(i32::MAX));
        self.producer.push(f.producer().as_ref().and_then(jsonb));
        self.producer_bytes
            .push(f.producer_bytes().map(|b| b.to_vec()));
        self.derivation
            .push(f.derivation().as_ref().and_then(jsonb));
        self.derivation_bytes
            .push(f.derivation_bytes().map(|b| b.to_vec()));
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.fact_id.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.fact_id.is_empty()
    }
}

/// The columns a pull selects, in this order (see [`HubFact::from_row`]).
pub const PULL_COLUMNS: &str = "hub_seq, fact_id, origin_ledger, store, key, value_bytes, \
     value_hash, erased, causation, transaction_us, valid_time, schema_version, \
     producer_bytes, derivation_bytes";

/// One fact read from the hub.
#[derive(Clone, Debug)]
pub struct HubFact {
    /// Its position in the hub.
    pub hub_seq: i64,
    /// The ledger (sync node) that pushed it.
    pub origin: Uuid,
    /// Whether its value was erased at the origin (it arrives as nil).
    pub erased: bool,
    /// The value hash recorded at the origin.
    pub value_hash: Vec<u8>,
    /// The fact's parts, its transaction time the origin's.
    pub parts: FactParts,
}

fn decode(what: &str, id: Uuid, bytes: &[u8]) -> Result<Value, SyncError> {
    codec::decode_value(bytes)
        .map_err(|e| SyncError::Invalid(format!("hub row of fact {id}: {what}: {e}")))
}

impl HubFact {
    /// From a row selected with [`PULL_COLUMNS`].
    pub fn from_row(row: &Row) -> Result<Self, SyncError> {
        let id: Uuid = row.try_get(1)?;
        let value_bytes: Vec<u8> = row.try_get(5)?;
        let producer: Option<Vec<u8>> = row.try_get(12)?;
        let derivation: Option<Vec<u8>> = row.try_get(13)?;
        let schema_version: i32 = row.try_get(11)?;
        Ok(HubFact {
            hub_seq: row.try_get(0)?,
            origin: row.try_get(2)?,
            erased: row.try_get(7)?,
            value_hash: row.try_get(6)?,
            parts: FactParts {
                id,
                store: row.try_get(3)?,
                key: row.try_get(4)?,
                value: decode("value", id, &value_bytes)?,
                causation: row.try_get(8)?,
                transaction_time: Timestamp::from_micros(row.try_get(9)?),
                valid_time: row.try_get(10)?,
                schema_version: u32::try_from(schema_version).map_err(|_| {
                    SyncError::Invalid(format!("hub row of fact {id}: negative schema_version"))
                })?,
                producer: producer.map(|b| decode("producer", id, &b)).transpose()?,
                derivation: derivation
                    .map(|b| decode("derivation", id, &b))
                    .transpose()?,
            },
        })
    }
}
