//! `igniter-ledger import SOURCE DEST`: copy every fact of a ledger file (a 0.5.2
//! `FileBackend` WAL, or one of ours) into a new ledger, keeping ids, times and
//! causation links.

use std::path::PathBuf;

use igniter_ledger::{Batch, LedgerStore, Op, Write};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `import`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  $ igniter-ledger import old-0.5.2.wal ledger.wal\n  imported 1024 facts from old-0.5.2.wal into ledger.wal"
)]
pub struct Args {
    /// The file to read (a 0.5.2 WAL).
    #[arg(value_name = "SOURCE")]
    source: Option<PathBuf>,
    /// The ledger to write (created if missing).
    #[arg(value_name = "DEST")]
    dest: Option<PathBuf>,
    /// The file to read (synonym of SOURCE).
    #[arg(long = "path", value_name = "SOURCE")]
    path: Option<PathBuf>,
    /// The ledger to write (synonym of DEST).
    #[arg(long = "into", value_name = "DEST")]
    into: Option<PathBuf>,
}

pub(super) fn run(a: Args) -> Result<(), String> {
    let (src, dest) = match (a.source, a.dest, a.path, a.into) {
        (Some(s), Some(d), None, None) => (s, d),
        (Some(s), None, None, Some(d)) | (None, None, Some(s), Some(d)) => (s, d),
        (Some(d), None, Some(s), None) => (s, d),
        _ => return Err("give SOURCE and DEST (e.g. `import old.wal ledger.wal`)".into()),
    };
    if !src.is_file() {
        return Err(format!("no ledger at {}", src.display()));
    }
    if src == dest {
        return Err("SOURCE and DEST must differ".into());
    }
    let from =
        LedgerStore::open(&src).map_err(|e| format!("cannot open {}: {e}", src.display()))?;
    let to =
        LedgerStore::open(&dest).map_err(|e| format!("cannot open {}: {e}", dest.display()))?;
    let facts = from.fact_log_all(None, None);
    let pb = if facts.len() > 100_000 {
        let b = ProgressBar::new(facts.len() as u64);
        if let Ok(s) = ProgressStyle::with_template("import [{bar:40}] {pos}/{len} ({eta})") {
            b.set_style(s.progress_chars("=> "));
        }
        b
    } else {
        ProgressBar::hidden()
    };
    let mut done = 0usize;
    for chunk in facts.chunks(1000) {
        let mut b = Batch::new();
        for f in chunk {
            b.push(Op::Write(Write::restoring(f.to_parts())));
        }
        to.commit(b)
            .map_err(|e| format!("writing {}: {e}", dest.display()))?;
        done += chunk.len();
        pb.set_position(done as u64);
    }
    pb.finish_and_clear();
    from.close()
        .map_err(|e| format!("closing {}: {e}", src.display()))?;
    to.close()
        .map_err(|e| format!("closing {}: {e}", dest.display()))?;
    println!(
        "imported {done} facts from {} into {}",
        src.display(),
        dest.display()
    );
    Ok(())
}
