//! `igniter-ledger checkpoint PATH`: write a snapshot next to the WAL.

use super::path::{close, LedgerPath};

/// Arguments of `checkpoint`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  $ igniter-ledger checkpoint ledger.wal\n  checkpoint: 1024 facts, 81920 bytes -> ledger.wal.snap"
)]
pub struct Args {
    #[command(flatten)]
    path: LedgerPath,
}

pub(super) fn run(a: Args) -> Result<(), String> {
    let (p, l) = a.path.open()?;
    let r = l
        .checkpoint()
        .map_err(|e| format!("checkpoint of {}: {e}", p.display()))?;
    println!(
        "checkpoint: {} facts, {} bytes -> {}",
        r.fact_count,
        r.bytes,
        r.path.display()
    );
    close(&p, l)
}
