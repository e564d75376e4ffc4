//! `igniter-ledger compact PATH`: apply the retention policies registered in the ledger.

use super::path::{close, LedgerPath};

/// Arguments of `compact`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  igniter-ledger compact ledger.wal\n  igniter-ledger compact ledger.wal --store events"
)]
pub struct Args {
    #[command(flatten)]
    path: LedgerPath,
    /// Only this store.
    #[arg(long)]
    store: Option<String>,
}

pub(super) fn run(a: Args) -> Result<(), String> {
    let (p, l) = a.path.open()?;
    let reports = l
        .compact(a.store.as_deref())
        .map_err(|e| format!("compacting {}: {e}", p.display()))?;
    if reports.is_empty() {
        println!("compact: nothing to do (no retention policy applies)");
    }
    for r in &reports {
        println!(
            "compact: {}: dropped {}, kept {}{}",
            r.store,
            r.dropped_count,
            r.kept_count,
            r.receipt_id
                .map(|id| format!(" (receipt {id})"))
                .unwrap_or_default()
        );
    }
    close(&p, l)
}
