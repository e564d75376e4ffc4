//! The ledger path argument: positional, or `--path`.

use std::path::PathBuf;

use igniter_ledger::LedgerStore;

/// A ledger path given as a positional argument or with `--path`.
#[derive(Debug, Clone, clap::Args)]
pub struct LedgerPath {
    /// The ledger's WAL file.
    #[arg(value_name = "PATH")]
    pub positional: Option<PathBuf>,
    /// The ledger's WAL file (synonym of the positional argument).
    #[arg(long = "path", value_name = "PATH")]
    pub flag: Option<PathBuf>,
}

impl LedgerPath {
    /// The path given (exactly one way).
    pub fn get(&self) -> Result<PathBuf, String> {
        match (&self.positional, &self.flag) {
            (Some(p), None) | (None, Some(p)) => Ok(p.clone()),
            (Some(a), Some(b)) if a == b => Ok(a.clone()),
            (Some(_), Some(_)) => Err("give the ledger path once (positional or --path)".into()),
            (None, None) => Err("missing the ledger path (e.g. `ledger.wal`)".into()),
        }
    }

    /// The path, which must be an existing file.
    pub fn existing(&self) -> Result<PathBuf, String> {
        let p = self.get()?;
        if !p.is_file() {
            return Err(format!("no ledger at {}", p.display()));
        }
        Ok(p)
    }

    /// Opens the existing ledger.
    pub fn open(&self) -> Result<(PathBuf, LedgerStore), String> {
        let p = self.existing()?;
        let l = LedgerStore::open(&p).map_err(|e| format!("cannot open {}: {e}", p.display()))?;
        Ok((p, l))
    }
}

/// Closes a ledger, naming it in the error.
pub fn close(path: &std::path::Path, l: LedgerStore) -> Result<(), String> {
    l.close()
        .map_err(|e| format!("closing {}: {e}", path.display()))
}
