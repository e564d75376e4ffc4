//! `igniter-ledger sync`: push a ledger to the hub, pull from it, bootstrap from it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use igniter_ledger::{LedgerStore, Timestamp};
use uuid::Uuid;

use super::progress::Progress;
use super::pull::{PullFilter, Puller};
use super::push::Pusher;
use super::run::{SyncConfig, SyncHandle};
use super::state::StateDir;
use super::{connect, retention, runtime, SyncError};

/// Arguments of `igniter-ledger sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The ledger's WAL file (created if missing; it must not be open in another process).
    #[arg(long)]
    pub path: PathBuf,
    /// The hub: a PostgreSQL connection string, e.g. postgres://user@host:5432/hub. Its
    /// schema is created if the database is empty.
    #[arg(long)]
    pub hub: String,
    /// Push this ledger's facts to the hub (from the cursor stored in the hub; the first
    /// push starts at the first fact).
    #[arg(long)]
    pub push: bool,
    /// Pull these stores from the hub (comma-separated; none: every store).
    #[arg(long, num_args = 0.., value_delimiter = ',')]
    pub pull: Option<Vec<String>>,
    /// Seed the ledger from the hub first, with a progress bar, then follow it (these
    /// stores, comma-separated; none: every store).
    #[arg(long, num_args = 0.., value_delimiter = ',')]
    pub bootstrap: Option<Vec<String>>,
    /// Pull only rows pushed by these sync nodes (comma-separated UUIDs).
    #[arg(long, value_delimiter = ',')]
    pub origin: Vec<Uuid>,
    /// Pull only facts with an origin transaction time at or after this (Unix seconds).
    #[arg(long)]
    pub since: Option<f64>,
    /// Pull only facts with an origin transaction time at or before this (Unix seconds).
    #[arg(long)]
    pub until: Option<f64>,
    /// The sync state directory (node id, pull cursors, provenance). Default: PATH.sync (beside the ledger file)
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Facts per push transaction and rows per pull batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Catch up once (push everything, pull everything) and exit instead of following.
    #[arg(long)]
    pub once: bool,
    /// Hub retention first: remove the hub's facts of STORE older than SECONDS
    /// (STORE=SECONDS, repeatable). Whole day partitions are dropped where possible.
    #[arg(long, value_name = "STORE=SECONDS")]
    pub retain: Vec<String>,
    /// Report hub errors and reconnects on stderr.
    #[arg(long)]
    pub verbose: bool,
}

fn parse_retain(s: &str) -> Result<(String, f64), String> {
    let (store, secs) = s
        .split_once('=')
        .ok_or_else(|| format!("--retain {s}: expected STORE=SECONDS"))?;
    let secs: f64 = secs
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| format!("--retain {s}: SECONDS must be a non-negative number"))?;
    Ok((store.to_owned(), secs))
}

impl SyncArgs {
    fn filter(&self) -> Result<Option<PullFilter>, String> {
        let stores = match (&self.pull, &self.bootstrap) {
            (None, None) => return Ok(None),
            (Some(p), Some(b)) if !p.is_empty() && !b.is_empty() && p != b => {
                return Err("--pull and --bootstrap name different stores; give one list".into())
            }
            (Some(p), Some(b)) => {
                if p.is_empty() {
                    b.clone()
                } else {
                    p.clone()
                }
            }
            (Some(s), None) | (None, Some(s)) => s.clone(),
        };
        Ok(Some(PullFilter {
            stores,
            origins: self.origin.clone(),
            since: self.since.map(Timestamp::from_secs_f64),
            until: self.until.map(Timestamp::from_secs_f64),
        }))
    }
}

/// Runs `igniter-ledger sync`; the error is the message for stderr.
pub fn run(args: SyncArgs) -> Result<(), String> {
    let filter = args.filter()?;
    let retain = args
        .retain
        .iter()
        .map(|s| parse_retain(s))
        .collect::<Result<Vec<_>, _>>()?;
    if !args.push && filter.is_none() && retain.is_empty() {
        return Err("sync: give --push, --pull, --bootstrap or --retain".into());
    }
    let ledger = LedgerStore::open(&args.path)
        .map_err(|e| format!("cannot open {}: {e}", args.path.display()))?;
    let r = sync(&args, &ledger, filter, &retain);
    let closed = ledger
        .close()
        .map_err(|e| format!("closing {}: {e}", args.path.display()));
    r.map_err(|e| e.to_string()).and(closed)
}

fn sync(
    args: &SyncArgs,
    ledger: &LedgerStore,
    filter: Option<PullFilter>,
    retain: &[(String, f64)],
) -> Result<(), SyncError> {
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| StateDir::beside(&args.path));
    if !retain.is_empty() {
        let rt = runtime()?;
        rt.block_on(async {
            let (mut client, _) = connect(&args.hub).await?;
            let now = Timestamp::now().as_secs_f64();
            for (store, secs) in retain {
                let r =
                    retention::retain(&mut client, store, Timestamp::from_secs_f64(now - secs))
                        .await?;
                println!(
                    "retention {}: store {} before {}: dropped {} partitions ({} rows), deleted {} rows",
                    r.receipt_id,
                    r.store,
                    r.before,
                    r.dropped_partitions.len(),
                    r.dropped_rows,
                    r.deleted_rows
                );
            }
            Ok::<(), SyncError>(())
        })?;
    }
    if !args.push && filter.is_none() {
        return Ok(());
    }
    let state = std::sync::Arc::new(StateDir::open(Some(state_dir.clone()))?);
    let far = Instant::now() + Duration::from_secs(365 * 86_400);
    if let (Some(f), true) = (&filter, args.bootstrap.is_some() || args.once) {
        let mut puller = Puller::new(
            ledger.clone(),
            &args.hub,
            state.clone(),
            f.clone(),
            args.batch,
        )?;
        let started = Instant::now();
        let mut bar = Progress::new(puller.remaining()?, false);
        let n = puller.catch_up(far, |done| bar.update(done))?;
        bar.finish();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "pulled {} facts from hub {} ({} rows read, {} already here) in {secs:.2}s ({:.0} rows/s); pull cursor {}",
            puller.pulled(),
            puller.hub(),
            n,
            puller.skipped(),
            n as f64 / secs.max(1e-9),
            puller.cursor()
        );
    }
    if args.once {
        if args.push {
            let mut pusher = Pusher::new(
                ledger.clone(),
                &args.hub,
                state.node(),
                args.batch,
                Default::default(),
            )?;
            let started = Instant::now();
            pusher.catch_up(far)?;
            println!(
                "pushed {} facts as node {} in {:.2}s; push cursor {}",
                pusher.pushed(),
                state.node(),
                started.elapsed().as_secs_f64(),
                pusher.cursor()
            );
        }
        return Ok(());
    }
    drop(state);
    let mut config = SyncConfig::new(args.hub.clone());
    config.push = args.push;
    config.pull = filter;
    config.state_dir = Some(state_dir);
    config.batch_size = args.batch;
    config.verbose = args.verbose;
    let handle = SyncHandle::start(ledger.clone(), config)?;
    println!(
        "syncing {} as node {} (push: {}, pull: {}); SIGTERM or Ctrl-C stops",
        args.path.display(),
        handle.node(),
        args.push,
        args.pull.is_some() || args.bootstrap.is_some()
    );
    let rt = runtime()?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| SyncError::Invalid(format!("cannot catch SIGTERM: {e}")))?;
        let mut int = signal(SignalKind::interrupt())
            .map_err(|e| SyncError::Invalid(format!("cannot catch SIGINT: {e}")))?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if handle.is_finished() { break; }
                }
            }
        }
        Ok::<(), SyncError>(())
    })?;
    // The counters are read once both loops have ended, so they cover every committed step.
    let (status, stopped) = handle.stop_with_status();
    stopped?;
    println!(
        "stopped: pushed {} (cursor {}), pulled {} (cursor {}), {} reconnects",
        status.pushed, status.push_cursor, status.pulled, status.pull_cursor, status.reconnects
    );
    Ok(())
}
