//! Pull: take the hub's rows a ledger subscribes to, in hub order, into the ledger.
//!
//! A pulled fact keeps its id, value, value hash, causation, valid time, schema version,
//! producer and derivation. Its transaction time is the origin's when that is later than
//! the ledger's latest; otherwise it gets the next local commit time (transaction times
//! stay strictly increasing), and the origin time stays recorded in the provenance log
//! ([`super::state`]). A fact whose id the ledger already holds is skipped; the ledger's
//! own rows (its node id as `origin_ledger`) are never selected.
//!
//! Order of a step: select rows after the durable cursor; append their provenance
//! (fsynced); commit them to the ledger in one batch; store the cursor (fsynced). A crash
//! between any two leaves the cursor behind the ledger, and the next step skips the facts
//! already in by id: nothing is taken twice, nothing is missed. The cursor is stored
//! after the commit returns, so it is as durable as the ledger's mode: under
//! `Durability::None` a crash of the process can lose buffered pulled facts that the
//! cursor already counts (use `Fsync`, the default, or `Flush`).

use std::time::{Duration, Instant};

use igniter_ledger::{Batch, Fact, LedgerStore, Timestamp, Write};
use tokio::runtime::Runtime;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Notification};
use uuid::Uuid;

use super::row::{HubFact, PULL_COLUMNS};
use super::schema::{self, CHANNEL};
use super::state::{Provenance, StateDir};
use super::{connect, runtime, SyncError};

/// What a ledger pulls: some stores (empty: all), from some origins (empty: all but
/// itself), in a window of origin transaction times.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PullFilter {
    /// Only these stores (empty: every store).
    pub stores: Vec<String>,
    /// Only rows pushed by these sync nodes (empty: every node but this one).
    pub origins: Vec<Uuid>,
    /// Only facts with an origin transaction time at or after this.
    pub since: Option<Timestamp>,
    /// Only facts with an origin transaction time at or before this.
    pub until: Option<Timestamp>,
}

impl PullFilter {
    /// Every store, every origin, all time.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only these stores.
    pub fn stores<S: AsRef<str>>(stores: impl IntoIterator<Item = S>) -> Self {
        PullFilter {
            stores: stores.into_iter().map(|s| s.as_ref().to_owned()).collect(),
            ..Self::default()
        }
    }

    /// The subscription as JSON (stored beside its cursor).
    pub fn describe(&self) -> serde_json::Value {
        let mut stores = self.stores.clone();
        stores.sort();
        stores.dedup();
        let mut origins: Vec<String> = self.origins.iter().map(Uuid::to_string).collect();
        origins.sort();
        origins.dedup();
        serde_json::json!({
            "stores": stores,
            "origins": origins,
            "since_us": self.since.map(Timestamp::as_micros),
            "until_us": self.until.map(Timestamp::as_micros),
        })
    }

    /// The name of this subscription's cursor file for `hub`: each distinct subscription
    /// has its own cursor (a new store in the list starts from the hub's beginning).
    pub fn cursor_name(&self, hub: Uuid) -> String {
        // FNV-1a 64 of the canonical description.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.describe().to_string().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("pull-{hub}-{h:016x}.json")
    }
}

/// How a puller commits the facts it takes in. The default commits on the pull thread
/// ([`LedgerStore::commit`]: consumers notified and derivations run there). An embedding
/// runtime whose consumers or derivations must run on its own threads (the Ruby gem:
/// Ruby code only with the GVL, on a Ruby thread) hands the batch to such a thread and
/// answers what its commit answered.
pub trait PullCommit: Send + Sync {
    /// Commits `batch` (restoring writes of pulled facts) to `ledger`; the facts in order.
    /// `Error::Closed` stops the pull quietly.
    fn commit(&self, ledger: &LedgerStore, batch: Batch) -> igniter_ledger::Result<Vec<Fact>>;
}

impl std::fmt::Debug for dyn PullCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PullCommit")
    }
}

/// Pulls a subscription from the hub into one ledger.
pub struct Puller {
    ledger: LedgerStore,
    url: String,
    state: std::sync::Arc<StateDir>,
    filter: PullFilter,
    batch: usize,
    rt: Runtime,
    client: Option<Client>,
    notes: Option<UnboundedReceiver<Notification>>,
    hub: Uuid,
    cursor: i64,
    pulled: u64,
    skipped: u64,
    committer: Option<std::sync::Arc<dyn PullCommit>>,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller")
            .field("filter", &self.filter)
            .field("cursor", &self.cursor)
            .field("connected", &self.client.is_some())
            .finish()
    }
}

impl Puller {
    /// A puller of `filter` from the hub at `url` into `ledger`, with its cursor and
    /// provenance in `state`. Nothing is contacted until the first step.
    pub fn new(
        ledger: LedgerStore,
        url: &str,
        state: std::sync::Arc<StateDir>,
        filter: PullFilter,
        batch: usize,
    ) -> Result<Self, SyncError> {
        Ok(Puller {
            ledger,
            url: url.to_owned(),
            state,
            filter,
            batch: batch.max(1),
            rt: runtime()?,
            client: None,
            notes: None,
            hub: Uuid::nil(),
            cursor: 0,
            pulled: 0,
            skipped: 0,
            committer: None,
        })
    }

    /// Commits pulled facts through `c` instead of on the pull thread (see [`PullCommit`]).
    pub fn set_committer(&mut self, c: std::sync::Arc<dyn PullCommit>) {
        self.committer = Some(c);
    }

    /// Connects now (creating the hub schema if the database is empty) instead of at the
    /// first step; the hub's id.
    pub fn connect(&mut self) -> Result<Uuid, SyncError> {
        self.ensure()?;
        Ok(self.hub)
    }

    /// The last hub sequence taken in.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Facts committed into the ledger by this puller.
    pub fn pulled(&self) -> u64 {
        self.pulled
    }

    /// Rows skipped because the ledger already held their fact.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The hub's id (nil before the first connection).
    pub fn hub(&self) -> Uuid {
        self.hub
    }

    /// Drops the connection: the next step reconnects.
    pub fn disconnect(&mut self) {
        self.client = None;
        self.notes = None;
    }

    fn ensure(&mut self) -> Result<(), SyncError> {
        if self.client.is_some() {
            return Ok(());
        }
        let (mut client, notes) = self.rt.block_on(connect(&self.url))?;
        let hub = self.rt.block_on(schema::ensure(&mut client))?;
        self.rt
            .block_on(client.batch_execute(&format!("LISTEN {CHANNEL}")))?;
        self.cursor = self.state.pull_cursor(&self.filter.cursor_name(hub))?;
        self.hub = hub;
        self.client = Some(client);
        self.notes = Some(notes);
        Ok(())
    }

    /// The WHERE clause after `hub_seq > $1 AND origin_ledger <> $2`, and its parameters.
    fn conditions(&self) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
        let mut sql = String::new();
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut add = |clause: &str, p: Box<dyn ToSql + Sync + Send>| {
            params.push(p);
            sql.push_str(&clause.replace('?', &format!("${}", params.len() + 2)));
        };
        if !self.filter.stores.is_empty() {
            add(" AND store = ANY(?)", Box::new(self.filter.stores.clone()));
        }
        if !self.filter.origins.is_empty() {
            add(
                " AND origin_ledger = ANY(?)",
                Box::new(self.filter.origins.clone()),
            );
        }
        if let Some(t) = self.filter.since {
            add(
                " AND transaction_time >= timestamptz 'epoch' + ?::bigint * interval '1 microsecond'",
                Box::new(t.as_micros()),
            );
        }
        if let Some(t) = self.filter.until {
            add(
                " AND transaction_time <= timestamptz 'epoch' + ?::bigint * interval '1 microsecond'",
                Box::new(t.as_micros()),
            );
        }
        (sql, params)
    }

    /// How many rows of the subscription are after the cursor (for a progress bar).
    pub fn remaining(&mut self) -> Result<u64, SyncError> {
        self.ensure()?;
        let (cond, extra) = self.conditions();
        let sql = format!(
            "SELECT count(*) FROM igniter_hub.facts WHERE hub_seq > $1 AND origin_ledger <> $2{cond}"
        );
        let node = self.state.node();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.cursor, &node];
        params.extend(extra.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)));
        let client = self.client.as_ref().ok_or(SyncError::Disconnected)?;
        let n: i64 = self
            .rt
            .block_on(client.query_one(sql.as_str(), &params))?
            .get(0);
        Ok(n.max(0) as u64)
    }

    fn fetch(&mut self) -> Result<Vec<HubFact>, SyncError> {
        let (cond, extra) = self.conditions();
        let sql = format!(
            "SELECT {PULL_COLUMNS} FROM igniter_hub.facts \
             WHERE hub_seq > $1 AND origin_ledger <> $2{cond} ORDER BY hub_seq LIMIT {}",
            self.batch
        );
        let node = self.state.node();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.cursor, &node];
        params.extend(extra.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)));
        let client = self.client.as_ref().ok_or(SyncError::Disconnected)?;
        let rows = self.rt.block_on(client.query(sql.as_str(), &params))?;
        rows.iter().map(HubFact::from_row).collect()
    }

    /// Waits up to `wait` for a NOTIFY from a push (polling is the fallback: the caller
    /// steps again after the wait either way).
    fn wait(&mut self, wait: Duration) -> Result<(), SyncError> {
        let Some(notes) = self.notes.as_mut() else {
            return Err(SyncError::Disconnected);
        };
        let got = self
            .rt
            .block_on(async { tokio::time::timeout(wait, notes.recv()).await });
        match got {
            Ok(Some(_)) => {
                while notes.try_recv().is_ok() {}
                Ok(())
            }
            Ok(None) => {
                self.disconnect();
                Err(SyncError::Disconnected)
            }
            Err(_) => Ok(()),
        }
    }

    /// Pulls at most one batch; when the hub has nothing new, waits up to `wait` for a
    /// notification. Returns how many rows the batch covered (0: none).
    pub fn step(&mut self, wait: Duration) -> Result<usize, SyncError> {
        self.ensure()?;
        let rows = match self.fetch() {
            Ok(r) => r,
            Err(e) => {
                self.disconnect();
                return Err(e);
            }
        };
        if rows.is_empty() {
            self.wait(wait)?;
            return Ok(0);
        }
        self.take_in(&rows)?;
        Ok(rows.len())
    }

    /// Pulls until the hub has no more rows for the subscription (or `deadline`),
    /// calling `progress(done)` after each batch.
    pub fn catch_up(
        &mut self,
        deadline: Instant,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, SyncError> {
        let mut n = 0;
        loop {
            if Instant::now() >= deadline {
                return Err(SyncError::Invalid("pull: deadline passed".into()));
            }
            let k = self.step(Duration::ZERO)?;
            if k == 0 {
                return Ok(n);
            }
            n += k as u64;
            progress(n);
        }
    }

    fn take_in(&mut self, rows: &[HubFact]) -> Result<(), SyncError> {
        let mut batch = Batch::new();
        let mut records = Vec::new();
        for r in rows {
            let id = r.parts.id;
            if self.ledger.fact_by_id(id).is_some() {
                self.skipped += 1;
                continue;
            }
            if !r.erased {
                let rebuilt = Fact::restore(r.parts.clone())?;
                if rebuilt.value_hash()[..] != r.value_hash[..] {
                    return Err(SyncError::Invalid(format!(
                        "hub row {} (fact {id}): the value does not match its recorded hash",
                        r.hub_seq
                    )));
                }
            }
            records.push(Provenance {
                fact: id,
                origin: r.origin,
                origin_transaction_us: r.parts.transaction_time.as_micros(),
                hub_seq: r.hub_seq,
                hub: self.hub,
            });
            batch = batch.write(Write::restoring(r.parts.clone()));
        }
        let last = rows.last().map_or(self.cursor, |r| r.hub_seq);
        if !batch.is_empty() {
            self.state.record(&records)?;
            match &self.committer {
                Some(c) => c.commit(&self.ledger, batch)?,
                None => self.ledger.commit(batch)?,
            };
            self.pulled += records.len() as u64;
        }
        self.state.set_pull_cursor(
            &self.filter.cursor_name(self.hub),
            last,
            &self.filter.describe(),
        )?;
        self.cursor = last;
        Ok(())
    }
}
