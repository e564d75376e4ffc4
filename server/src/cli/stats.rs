//! `igniter-ledger stats PATH`: the fact count, as a plain integer.

use super::path::{close, LedgerPath};

/// Arguments of `stats`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  $ igniter-ledger stats ledger.wal\n  1024")]
pub struct Args {
    #[command(flatten)]
    path: LedgerPath,
}

pub(super) fn run(a: Args) -> Result<(), String> {
    let (p, l) = a.path.open()?;
    println!("{}", l.fact_count());
    close(&p, l)
}
