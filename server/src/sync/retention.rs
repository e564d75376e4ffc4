//! Retention in the hub: drop the facts of a store older than a cutoff, by dropping whole
//! day partitions where every row of the partition may go, by deleting rows otherwise.
//! Each run leaves a receipt row in `igniter_hub.retention_receipts`, as local
//! compaction leaves receipts in the ledger.
//!
//! The ids of removed facts stay in `igniter_hub.fact_ids`, so a ledger that still holds
//! one of them cannot push it back in.

use igniter_ledger::Timestamp;
use tokio_postgres::Client;
use uuid::Uuid;

use super::schema::{self, PUSH_LOCK};
use super::SyncError;

/// What one hub retention run removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubReceipt {
    /// The receipt's id (its row in `retention_receipts`).
    pub receipt_id: Uuid,
    /// The store.
    pub store: String,
    /// Facts with an origin transaction time before this were removed.
    pub before: Timestamp,
    /// Partitions dropped whole.
    pub dropped_partitions: Vec<String>,
    /// Rows removed with those partitions.
    pub dropped_rows: u64,
    /// Rows deleted one by one (from partitions that hold other stores or later facts).
    pub deleted_rows: u64,
}

/// Removes the hub's facts of `store` with a transaction time before `before`, in one
/// transaction (holding the push lock, so pushes wait for it), and records a receipt.
pub async fn retain(
    client: &mut Client,
    store: &str,
    before: Timestamp,
) -> Result<HubReceipt, SyncError> {
    schema::ensure(client).await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PUSH_LOCK])
        .await?;
    let parts = tx
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'igniter_hub.facts'::regclass ORDER BY 1",
            &[],
        )
        .await?;
    let cutoff = before.as_micros();
    let cutoff_sql = "timestamptz 'epoch' + $2::bigint * interval '1 microsecond'";
    let mut dropped = Vec::new();
    let (mut dropped_rows, mut deleted_rows) = (0u64, 0u64);
    for row in parts {
        let name: String = row.get(0);
        let Some(day) = schema::day_of_partition(&name) else {
            continue;
        };
        if schema::day_start_us(day) >= cutoff {
            continue;
        }
        let whole_day_before = schema::day_start_us(day + 1) <= cutoff;
        // `name` came from the catalogue and matched facts_YYYYMMDD: safe to splice.
        let counts = tx
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE store = $1), count(*) FROM igniter_hub.{name}"
                ),
                &[&store],
            )
            .await?;
        let (mine, all): (i64, i64) = (counts.get(0), counts.get(1));
        if whole_day_before && mine == all {
            tx.batch_execute(&format!("DROP TABLE igniter_hub.{name}"))
                .await?;
            dropped.push(name);
            dropped_rows += mine as u64;
        } else if mine > 0 {
            let n = tx
                .execute(
                    &format!(
                        "DELETE FROM igniter_hub.{name} WHERE store = $1 AND transaction_time < {cutoff_sql}"
                    ),
                    &[&store, &cutoff],
                )
                .await?;
            deleted_rows += n;
        }
    }
    let receipt = HubReceipt {
        receipt_id: Uuid::new_v4(),
        store: store.to_owned(),
        before,
        dropped_partitions: dropped,
        dropped_rows,
        deleted_rows,
    };
    tx.execute(
        &format!(
            "INSERT INTO igniter_hub.retention_receipts \
             (receipt_id, store, before, dropped_partitions, dropped_rows, deleted_rows) \
             VALUES ($1, $3, {cutoff_sql}, $4, $5, $6)"
        ),
        &[
            &receipt.receipt_id,
            &cutoff,
            &receipt.store,
            &receipt.dropped_partitions,
            &(receipt.dropped_rows as i64),
            &(receipt.deleted_rows as i64),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(receipt)
}
