//! The directory lock of a segmented ledger: one open handle per segment root, across
//! processes and within one.
//!
//! It is the WAL's lock (`crate::ledger::lock`) taken on a small file in the root,
//! [`LOCK_FILE`]: a POSIX record lock for other processes (a forked child does not
//! inherit it, so a child that opens the root is refused while the parent holds it) and
//! the process's registry of held files for a second handle of this process. The file is
//! empty and stays after close (removing it would let two openers lock two different
//! files of the same name); only the lock on it matters. A second open fails with
//! [`Error::Locked`] naming the root.

use std::path::Path;

use crate::ledger::error::{Error, Result};
use crate::ledger::fs::FileSystem;
use crate::ledger::lock::{self, LockedFile};

/// The lock file, relative to the root (outside `wal/`, which holds stores only).
pub const LOCK_FILE: &str = "ledger.lock";

/// A held directory lock; released when dropped (the descriptor is closed).
pub(crate) struct DirLock {
    _file: LockedFile,
}

/// Takes the lock of the segment root `root` (which must exist). `Locked` names the root
/// when another handle (this process or another) holds it.
pub(crate) fn lock_root(root: &Path, fs: &dyn FileSystem) -> Result<DirLock> {
    match lock::open_locked(&root.join(LOCK_FILE), fs) {
        Ok(file) => Ok(DirLock { _file: file }),
        Err(Error::Locked { .. }) => Err(Error::Locked {
            path: root.to_owned(),
        }),
        Err(e) => Err(e),
    }
}
