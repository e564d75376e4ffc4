//! `igniter-ledger dump PATH`: every fact as one JSON object per line.

use std::io::Write;

use super::path::{close, LedgerPath};
use crate::server::legacy::fact_json;

/// Arguments of `dump`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  igniter-ledger dump ledger.wal > facts.jsonl\n  igniter-ledger dump ledger.wal --store tasks | head -3"
)]
pub struct Args {
    #[command(flatten)]
    path: LedgerPath,
    /// Only the facts of this store.
    #[arg(long)]
    store: Option<String>,
}

pub(super) fn run(a: Args) -> Result<(), String> {
    let (p, l) = a.path.open()?;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    for f in l.fact_log_all(None, None) {
        if a.store.as_deref().is_some_and(|s| s != f.store()) {
            continue;
        }
        if let Err(e) = writeln!(out, "{}", fact_json(&f)) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(format!("writing: {e}"));
        }
    }
    let _ = out.flush();
    drop(out);
    close(&p, l)
}
