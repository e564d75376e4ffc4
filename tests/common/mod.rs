//! Helpers shared by the crash-safety tests: a fast temporary directory and a
//! fault-injecting file layer for the WAL.
#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use igniter_ledger::LogFile;

/// A temporary directory, on tmpfs when there is one (the tests open and fsync files
/// thousands of times; what they check does not depend on the device).
pub fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// What the fault-injecting file does wrong, and when.
#[derive(Default, Debug, Clone)]
pub struct Plan {
    /// Device capacity: an append that would grow the file past it writes what fits and
    /// then fails with ENOSPC, like a full disk.
    pub capacity: Option<u64>,
    /// The next this many appends fail with EIO after writing `short` bytes.
    pub fail_appends: u32,
    /// Bytes a failing append writes before its error (a short write).
    pub short: usize,
    /// The next this many syncs fail with EIO.
    pub fail_syncs: u32,
    /// set_len fails with EIO (so a partial write cannot be undone).
    pub fail_set_len: bool,
    /// Each sync sleeps this long first (so concurrent writers queue up behind it).
    pub sync_delay_ms: u64,
}

/// A real file under the WAL that records what reached it and fails on demand.
pub struct FaultFile {
    file: File,
    /// Current length as written through this layer.
    pub len: AtomicU64,
    /// Length covered by the last successful sync.
    pub synced: AtomicU64,
    pub syncs: AtomicU64,
    pub failed_appends: AtomicU64,
    pub failed_syncs: AtomicU64,
    pub plan: Mutex<Plan>,
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected I/O error ({what})"))
}

impl FaultFile {
    pub fn open(path: &Path) -> Arc<FaultFile> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        let len = file.metadata().unwrap().len();
        Arc::new(FaultFile {
            file,
            len: AtomicU64::new(len),
            synced: AtomicU64::new(len),
            syncs: AtomicU64::new(0),
            failed_appends: AtomicU64::new(0),
            failed_syncs: AtomicU64::new(0),
            plan: Mutex::new(Plan::default()),
        })
    }

    pub fn set_plan(&self, p: Plan) {
        *self.plan.lock().unwrap() = p;
    }

    /// The real file's length on disk.
    pub fn disk_len(&self) -> u64 {
        self.file.metadata().unwrap().len()
    }
}

impl LogFile for FaultFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        let mut plan = self.plan.lock().unwrap();
        let len = self.len.load(Ordering::SeqCst);
        if plan.fail_appends > 0 {
            plan.fail_appends -= 1;
            let n = plan.short.min(buf.len());
            (&self.file).write_all(&buf[..n])?;
            self.len.fetch_add(n as u64, Ordering::SeqCst);
            self.failed_appends.fetch_add(1, Ordering::SeqCst);
            return Err(eio("append"));
        }
        if let Some(cap) = plan.capacity {
            if len + buf.len() as u64 > cap {
                let n = cap.saturating_sub(len) as usize;
                (&self.file).write_all(&buf[..n])?;
                self.len.fetch_add(n as u64, Ordering::SeqCst);
                self.failed_appends.fetch_add(1, Ordering::SeqCst);
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
        }
        drop(plan);
        (&self.file).write_all(buf)?;
        self.len.fetch_add(buf.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let upto = self.len.load(Ordering::SeqCst);
        let delay = {
            let mut plan = self.plan.lock().unwrap();
            if plan.fail_syncs > 0 {
                plan.fail_syncs -= 1;
                self.failed_syncs.fetch_add(1, Ordering::SeqCst);
                return Err(eio("fdatasync"));
            }
            plan.sync_delay_ms
        };
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        self.file.sync_data()?;
        self.synced.fetch_max(upto, Ordering::SeqCst);
        self.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if self.plan.lock().unwrap().fail_set_len {
            return Err(eio("set_len"));
        }
        self.file.set_len(len)?;
        self.len.store(len, Ordering::SeqCst);
        Ok(())
    }
}
