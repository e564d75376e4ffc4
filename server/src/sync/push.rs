//! Push: follow the ledger's changefeed from the cursor stored in the hub and write each
//! batch, with the cursor that covers it, in one PostgreSQL transaction.
//!
//! Exactly once: the hub's `push_cursors` row of this node is the only truth about what
//! was pushed. It moves in the same transaction as the rows it covers, so after a crash
//! of anything (this process, the ledger's process, PostgreSQL; even a commit whose
//! answer was lost) the pusher reconnects, reads the cursor back and resumes after it.
//! A fact id the hub already holds (a fact this node pulled from another) is skipped by
//! the `fact_ids` table in the same statement.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use igniter_ledger::{ChangeEvent, ChangesQuery, Cursor, Follower, LedgerStore};
use tokio::runtime::Runtime;
use tokio_postgres::Client;
use uuid::Uuid;

use super::row::Columns;
use super::schema::{self, CHANNEL, PUSH_LOCK};
use super::{connect, runtime, SyncError};

/// How rows go into the hub: one statement per batch (the default), or one INSERT per
/// row (kept to measure the difference; see the benchmark report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InsertMode {
    /// One `INSERT … SELECT FROM unnest(…)` per batch.
    #[default]
    Batched,
    /// One `INSERT … VALUES` per row (same transaction).
    RowByRow,
}

const INSERT_BATCH: &str = r#"
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::jsonb[],
                         $6::bytea[], $7::bytea[], $8::bool[], $9::uuid[], $10::bigint[],
                         $11::float8[], $12::int[], $13::jsonb[], $14::bytea[], $15::jsonb[],
                         $16::bytea[])
        WITH ORDINALITY AS u(fact_id, origin_sequence, store, key, value, value_bytes,
                             value_hash, erased, causation, transaction_us, valid_time,
                             schema_version, producer, producer_bytes, derivation,
                             derivation_bytes, ord)
), fresh AS (
    INSERT INTO igniter_hub.fact_ids (fact_id) SELECT fact_id FROM input
    ON CONFLICT DO NOTHING RETURNING fact_id
)
INSERT INTO igniter_hub.facts (fact_id, origin_ledger, origin_sequence, store, key, value,
    value_bytes, value_hash, erased, causation, transaction_time, transaction_us, valid_time,
    schema_version, producer, producer_bytes, derivation, derivation_bytes)
SELECT i.fact_id, $17, i.origin_sequence, i.store, i.key, i.value, i.value_bytes,
       i.value_hash, i.erased, i.causation,
       timestamptz 'epoch' + i.transaction_us * interval '1 microsecond', i.transaction_us,
       i.valid_time, i.schema_version, i.producer, i.producer_bytes, i.derivation,
       i.derivation_bytes
FROM input i JOIN fresh USING (fact_id)
ORDER BY i.ord
RETURNING hub_seq
"#;

const INSERT_ID: &str =
    "INSERT INTO igniter_hub.fact_ids (fact_id) VALUES ($1) ON CONFLICT DO NOTHING";

const INSERT_ROW: &str = r#"
INSERT INTO igniter_hub.facts (fact_id, origin_ledger, origin_sequence, store, key, value,
    value_bytes, value_hash, erased, causation, transaction_time, transaction_us, valid_time,
    schema_version, producer, producer_bytes, derivation, derivation_bytes)
VALUES ($1, $17, $2, $3, $4, $5, $6, $7, $8, $9,
        timestamptz 'epoch' + $10::bigint * interval '1 microsecond', $10, $11, $12, $13, $14,
        $15, $16)
RETURNING hub_seq
"#;

const SAVE_CURSOR: &str = r#"
INSERT INTO igniter_hub.push_cursors (origin_ledger, ledger_identity, sequence, facts_pushed,
    facts_skipped, last_fact_id)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (origin_ledger) DO UPDATE
SET ledger_identity = EXCLUDED.ledger_identity, sequence = EXCLUDED.sequence,
    last_fact_id = EXCLUDED.last_fact_id,
    facts_pushed = igniter_hub.push_cursors.facts_pushed + EXCLUDED.facts_pushed,
    facts_skipped = igniter_hub.push_cursors.facts_skipped + EXCLUDED.facts_skipped,
    updated_at = now()
"#;

/// Follows one ledger and pushes its facts to the hub.
pub struct Pusher {
    ledger: LedgerStore,
    url: String,
    node: Uuid,
    batch: usize,
    mode: InsertMode,
    rt: Runtime,
    client: Option<Client>,
    follower: Option<Follower>,
    pending: VecDeque<ChangeEvent>,
    /// The position in the ledger's changefeed of the last fact in the hub.
    cursor: u64,
    /// The `sequence` stored in the hub's cursor row (differs from `cursor` after local
    /// retention renumbered the log).
    stored: i64,
    realigned: u64,
    partitions: HashSet<i64>,
    pushed: u64,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("node", &self.node)
            .field("cursor", &self.cursor)
            .field("connected", &self.client.is_some())
            .finish()
    }
}

impl Pusher {
    /// A pusher of `ledger` into the hub at `url`, as sync node `node`, `batch` facts per
    /// transaction at most. Nothing is contacted until the first step.
    pub fn new(
        ledger: LedgerStore,
        url: &str,
        node: Uuid,
        batch: usize,
        mode: InsertMode,
    ) -> Result<Self, SyncError> {
        Ok(Pusher {
            ledger,
            url: url.to_owned(),
            node,
            batch: batch.max(1),
            mode,
            rt: runtime()?,
            client: None,
            follower: None,
            pending: VecDeque::new(),
            cursor: 0,
            stored: 0,
            realigned: 0,
            partitions: HashSet::new(),
            pushed: 0,
        })
    }

    /// The last changefeed sequence known to be in the hub.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Facts written into the hub by this pusher (not counting skipped ones).
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Connects now (creating the hub schema if the database is empty and reading this
    /// node's cursor back) instead of at the first step.
    pub fn connect(&mut self) -> Result<(), SyncError> {
        self.ensure()
    }

    /// Drops the connection: the next step reconnects and re-reads the cursor.
    pub fn disconnect(&mut self) {
        self.client = None;
        self.follower = None;
        self.pending.clear();
        self.partitions.clear();
    }

    fn ensure(&mut self) -> Result<(), SyncError> {
        if self.client.is_some() {
            return Ok(());
        }
        let (mut client, _notes) = self.rt.block_on(connect(&self.url))?;
        self.rt.block_on(schema::ensure(&mut client))?;
        let row = self.rt.block_on(client.query_opt(
            "SELECT sequence, last_fact_id FROM igniter_hub.push_cursors WHERE origin_ledger = $1",
            &[&self.node],
        ))?;
        let (stored, last): (i64, Option<Uuid>) = row.map_or((0, None), |r| (r.get(0), r.get(1)));
        let cursor = self.realign(stored.max(0) as u64, last)?;
        let head = self.ledger.head().sequence;
        if cursor > head {
            return Err(SyncError::Invalid(format!(
                "the hub has this node's facts up to sequence {cursor}, but the ledger has only {head}: \
                 is this the ledger the node pushed from?"
            )));
        }
        self.follower = Some(
            self.ledger
                .follow(&ChangesQuery::new().after(Cursor::new(cursor)))?,
        );
        self.cursor = cursor;
        self.stored = stored;
        self.client = Some(client);
        Ok(())
    }

    /// Times the pusher found the ledger's log renumbered (local retention removed facts
    /// before its cursor) and resumed after its last pushed fact by id.
    pub fn realigned(&self) -> u64 {
        self.realigned
    }

    /// The changefeed position to resume after: `stored`, when the fact there is the
    /// last one pushed; else (local compaction or pruning removed facts in front of it)
    /// the position of that fact now; else (it was removed itself) the oldest position
    /// the ledger still serves — everything is offered again and the hub skips the ids it holds (counted in `facts_skipped`).
    fn realign(&mut self, stored: u64, last: Option<Uuid>) -> Result<u64, SyncError> {
        let Some(last) = last else {
            return Ok(stored);
        };
        if stored > 0 && stored <= self.ledger.head().sequence {
            let at = self
                .ledger
                .changes(&ChangesQuery::new().after(Cursor::new(stored - 1)).limit(1))?;
            if at.first().map(ChangeEvent::fact_id) == Some(last) {
                return Ok(stored);
            }
        }
        self.realigned += 1;
        let all = self.ledger.changes(&ChangesQuery::new())?;
        // Not found: offer everything the ledger still holds (the oldest cursor it
        // accepts is the one before its first sequence).
        let oldest = self.ledger.first_sequence().saturating_sub(1);
        Ok(all
            .iter()
            .find(|e| e.fact_id() == last)
            .map_or(oldest, ChangeEvent::sequence))
    }

    /// Takes up to one batch of events, waiting up to `wait` for the first.
    fn take(&mut self, wait: Duration) -> Result<Vec<ChangeEvent>, SyncError> {
        let follower = self.follower.as_mut().ok_or(SyncError::Disconnected)?;
        if self.pending.len() < self.batch {
            self.pending.extend(follower.poll());
        }
        if self.pending.is_empty() {
            match follower.next_timeout(wait) {
                Ok(Some(e)) => self.pending.push_back(e),
                Ok(None) => return Ok(Vec::new()),
                Err(igniter_ledger::Error::Closed) => return Err(SyncError::Stopped),
                Err(e) => return Err(e.into()),
            }
            self.pending.extend(follower.poll());
        }
        let n = self.pending.len().min(self.batch);
        Ok(self.pending.drain(..n).collect())
    }

    /// Pushes at most one batch, waiting up to `wait` for a fact when there is none.
    /// Returns how many facts the batch covered (0: nothing to push). On a hub error the
    /// connection is dropped (the next step reconnects and resumes from the hub's cursor).
    pub fn step(&mut self, wait: Duration) -> Result<usize, SyncError> {
        self.ensure()?;
        let events = self.take(wait)?;
        if events.is_empty() {
            return Ok(0);
        }
        match self.write(&events) {
            Ok(written) => {
                self.cursor = events.last().map_or(self.cursor, |e| e.sequence());
                self.pushed += written;
                Ok(events.len())
            }
            Err(e) => {
                self.disconnect();
                Err(e)
            }
        }
    }

    /// Pushes until the hub holds everything the ledger had when called (or `deadline`).
    pub fn catch_up(&mut self, deadline: Instant) -> Result<u64, SyncError> {
        let mut n = 0;
        self.ensure()?;
        let target = self.ledger.head().sequence;
        while self.cursor < target {
            if Instant::now() >= deadline {
                return Err(SyncError::Invalid("push: deadline passed".into()));
            }
            n += self.step(Duration::from_millis(50))? as u64;
        }
        Ok(n)
    }

    fn write(&mut self, events: &[ChangeEvent]) -> Result<u64, SyncError> {
        let mut cols = Columns::default();
        let mut days = Vec::new();
        for e in events {
            cols.push(e.fact(), e.sequence());
            let day = schema::day_of(e.transaction_time().as_micros());
            if !self.partitions.contains(&day) && !days.contains(&day) {
                days.push(day);
            }
        }
        let last = events.last().map_or(0, |e| e.sequence());
        let expected = self.stored;
        let last_id = events.last().map(ChangeEvent::fact_id);
        let node = self.node;
        let identity = self.ledger.ledger_id();
        let mode = self.mode;
        let client = self.client.as_mut().ok_or(SyncError::Disconnected)?;
        let written = self.rt.block_on(async {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PUSH_LOCK])
                .await?;
            // Another pusher of this node moved the cursor: stop rather than guess.
            let stored = tx
                .query_opt(
                    "SELECT sequence FROM igniter_hub.push_cursors WHERE origin_ledger = $1",
                    &[&node],
                )
                .await?
                .map_or(0, |r| r.get::<_, i64>(0));
            if stored != expected {
                return Err(SyncError::Invalid(format!(
                    "push: the hub's cursor for this node is {stored}, expected {expected} \
                     (is another sync pushing this ledger?)"
                )));
            }
            for day in &days {
                schema::ensure_partition(&tx, *day).await?;
            }
            let seqs: Vec<i64> = match mode {
                InsertMode::Batched => tx
                    .query(
                        INSERT_BATCH,
                        &[
                            &cols.fact_id,
                            &cols.origin_sequence,
                            &cols.store,
                            &cols.key,
                            &cols.value,
                            &cols.value_bytes,
                            &cols.value_hash,
                            &cols.erased,
                            &cols.causation,
                            &cols.transaction_us,
                            &cols.valid_time,
                            &cols.schema_version,
                            &cols.producer,
                            &cols.producer_bytes,
                            &cols.derivation,
                            &cols.derivation_bytes,
                            &node,
                        ],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
                InsertMode::RowByRow => {
                    let id_stmt = tx.prepare(INSERT_ID).await?;
                    let row_stmt = tx.prepare(INSERT_ROW).await?;
                    let mut out = Vec::new();
                    for i in 0..cols.len() {
                        if tx.execute(&id_stmt, &[&cols.fact_id[i]]).await? == 0 {
                            continue;
                        }
                        let r = tx
                            .query_one(
                                &row_stmt,
                                &[
                                    &cols.fact_id[i],
                                    &cols.origin_sequence[i],
                                    &cols.store[i],
                                    &cols.key[i],
                                    &cols.value[i],
                                    &cols.value_bytes[i],
                                    &cols.value_hash[i],
                                    &cols.erased[i],
                                    &cols.causation[i],
                                    &cols.transaction_us[i],
                                    &cols.valid_time[i],
                                    &cols.schema_version[i],
                                    &cols.producer[i],
                                    &cols.producer_bytes[i],
                                    &cols.derivation[i],
                                    &cols.derivation_bytes[i],
                                    &node,
                                ],
                            )
                            .await?;
                        out.push(r.get(0));
                    }
                    out
                }
            };
            tx.execute(
                SAVE_CURSOR,
                &[
                    &node,
                    &identity,
                    &(last as i64),
                    &(seqs.len() as i64),
                    &((cols.len() - seqs.len()) as i64),
                    &last_id,
                ],
            )
            .await?;
            if let Some(max) = seqs.iter().max() {
                tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &max.to_string()])
                    .await?;
            }
            tx.commit().await?;
            Ok::<u64, SyncError>(seqs.len() as u64)
        })?;
        self.partitions.extend(days);
        self.stored = last as i64;
        Ok(written)
    }
}
