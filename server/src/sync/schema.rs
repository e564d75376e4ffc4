//! The hub's schema in PostgreSQL: created by the first `sync` that finds an empty
//! database, its time partitions created as rows need them.
//!
//! Everything lives in the schema `igniter_hub`:
//!
//! | relation | holds |
//! |---|---|
//! | `meta` | one row: the hub's id (a UUID made when the schema was created) and the schema version |
//! | `facts` | every pushed fact, one row each, partitioned by `transaction_time` (one partition per UTC day, `facts_YYYYMMDD`) |
//! | `fact_ids` | every fact id the hub ever took (not partitioned): what makes a second push of a fact a no-op |
//! | `push_cursors` | per origin ledger, the last changefeed sequence whose facts are in `facts`, facts written, facts skipped (ids already in the hub: facts it pulled) |
//! | `retention_receipts` | one row per hub retention run: what was dropped or deleted |
//!
//! Pushes are serialized by a transaction-scoped advisory lock ([`PUSH_LOCK`]), taken
//! before the hub sequence is drawn: rows become visible in `hub_seq` order, so a
//! puller that has seen row *n* has seen every row before it.

use tokio_postgres::{Client, GenericClient};
use uuid::Uuid;

use super::SyncError;

/// The advisory lock key every push (and hub retention) holds for its transaction.
pub const PUSH_LOCK: i64 = 0x1961_7e72_1ed9_e700;

/// The NOTIFY channel a push signals on commit (payload: the highest `hub_seq` it wrote).
pub const CHANNEL: &str = "igniter_hub";

/// The version of the hub schema this code writes.
pub const SCHEMA_VERSION: i32 = 1;

const DDL: &str = r#"
CREATE SCHEMA IF NOT EXISTS igniter_hub;
CREATE TABLE IF NOT EXISTS igniter_hub.meta (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    hub_id uuid NOT NULL,
    schema_version integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS igniter_hub.facts (
    hub_seq bigserial NOT NULL,
    fact_id uuid NOT NULL,
    origin_ledger uuid NOT NULL,
    origin_sequence bigint NOT NULL,
    store text NOT NULL,
    key text NOT NULL,
    value jsonb,
    value_bytes bytea NOT NULL,
    value_hash bytea NOT NULL,
    erased boolean NOT NULL DEFAULT false,
    causation uuid,
    transaction_time timestamptz NOT NULL,
    transaction_us bigint NOT NULL,
    valid_time double precision,
    schema_version integer NOT NULL,
    producer jsonb,
    producer_bytes bytea,
    derivation jsonb,
    derivation_bytes bytea,
    pushed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (hub_seq, transaction_time)
) PARTITION BY RANGE (transaction_time);
CREATE INDEX IF NOT EXISTS facts_store_time ON igniter_hub.facts (store, transaction_time);
CREATE INDEX IF NOT EXISTS facts_fact_id ON igniter_hub.facts (fact_id);
CREATE TABLE IF NOT EXISTS igniter_hub.fact_ids (
    fact_id uuid PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS igniter_hub.push_cursors (
    origin_ledger uuid PRIMARY KEY,
    ledger_identity uuid,
    sequence bigint NOT NULL,
    last_fact_id uuid,
    facts_pushed bigint NOT NULL,
    facts_skipped bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS igniter_hub.retention_receipts (
    receipt_id uuid PRIMARY KEY,
    store text NOT NULL,
    before timestamptz NOT NULL,
    dropped_partitions text[] NOT NULL,
    dropped_rows bigint NOT NULL,
    deleted_rows bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"#;

/// Creates the hub schema if it is missing (idempotent, safe when several syncs start at
/// once) and returns the hub's id.
pub async fn ensure(client: &mut Client) -> Result<Uuid, SyncError> {
    if let Some(id) = hub_id(client).await? {
        return Ok(id);
    }
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PUSH_LOCK])
        .await?;
    tx.batch_execute(DDL).await?;
    tx.execute(
        "INSERT INTO igniter_hub.meta (hub_id, schema_version) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&Uuid::new_v4(), &SCHEMA_VERSION],
    )
    .await?;
    tx.commit().await?;
    hub_id(client)
        .await?
        .ok_or_else(|| SyncError::Invalid("the hub schema has no meta row".into()))
}

/// The hub's id, or None when the schema does not exist yet. A hub made by a newer
/// schema version is refused.
pub async fn hub_id(client: &impl GenericClient) -> Result<Option<Uuid>, SyncError> {
    let exists: Option<String> = client
        .query_one("SELECT to_regclass('igniter_hub.meta')::text", &[])
        .await?
        .get(0);
    if exists.is_none() {
        return Ok(None);
    }
    let Some(row) = client
        .query_opt("SELECT hub_id, schema_version FROM igniter_hub.meta", &[])
        .await?
    else {
        return Ok(None);
    };
    let version: i32 = row.get(1);
    if version > SCHEMA_VERSION {
        return Err(SyncError::Invalid(format!(
            "the hub's schema version is {version}; this igniter-ledger knows up to {SCHEMA_VERSION}"
        )));
    }
    Ok(Some(row.get(0)))
}

/// Microseconds in a day.
const DAY_US: i64 = 86_400_000_000;

/// The UTC day (days since 1970-01-01) a transaction time (µs) falls in.
pub fn day_of(us: i64) -> i64 {
    us.div_euclid(DAY_US)
}

/// The first microsecond of a day.
pub fn day_start_us(day: i64) -> i64 {
    day.saturating_mul(DAY_US)
}

/// (year, month, day) of a day number (proleptic Gregorian, days since 1970-01-01).
pub fn civil(day: i64) -> (i64, u32, u32) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The day number of a partition name `facts_YYYYMMDD` (None for another name).
pub fn day_of_partition(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("facts_")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = digits[..4].parse().ok()?;
    let m: i64 = digits[4..6].parse().ok()?;
    let d: i64 = digits[6..].parse().ok()?;
    // days_from_civil
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let day = era * 146_097 + doe - 719_468;
    (civil(day) == (y, m as u32, d as u32)).then_some(day)
}

/// The partition name of a day: `facts_YYYYMMDD`.
pub fn partition_name(day: i64) -> Result<String, SyncError> {
    let (y, m, d) = civil(day);
    if !(1..=9999).contains(&y) {
        return Err(SyncError::Invalid(format!(
            "transaction time in year {y}: the hub partitions years 1 to 9999"
        )));
    }
    Ok(format!("facts_{y:04}{m:02}{d:02}"))
}

/// Creates the partition of `day` if it is missing (inside the caller's transaction).
pub async fn ensure_partition(client: &impl GenericClient, day: i64) -> Result<(), SyncError> {
    let name = partition_name(day)?;
    let (y, m, d) = civil(day);
    let (y2, m2, d2) = civil(day + 1);
    // Names and bounds are made here from numbers, never from user input.
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS igniter_hub.{name} PARTITION OF igniter_hub.facts \
         FOR VALUES FROM ('{y:04}-{m:02}-{d:02} 00:00:00+00') TO ('{y2:04}-{m2:02}-{d2:02} 00:00:00+00')"
    );
    client.batch_execute(&sql).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_partition_names_round_trip() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(
            partition_name(day_of(1_764_374_400_000_000)).unwrap(),
            "facts_20251129"
        );
        for day in [-719_162, -1, 0, 59, 11_016, 20_000, 2_932_896] {
            let name = partition_name(day).unwrap();
            assert_eq!(day_of_partition(&name), Some(day), "{name}");
        }
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_of_partition("facts_20250230"), None);
        assert_eq!(day_of_partition("facts_default"), None);
        assert!(partition_name(-800_000).is_err());
    }
}
