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

/// What the fault-injecting file-system layer does wrong (snapshot, side-file and
/// directory operations).
#[derive(Default, Debug, Clone)]
pub struct FsPlan {
    /// Bytes that may be written to created files in total before writes fail with
    /// ENOSPC (writing what fits first), like a full disk.
    pub capacity: Option<u64>,
    /// `create` fails with EIO.
    pub fail_create: bool,
    /// `sync_all` of a created file fails with EIO.
    pub fail_file_sync: bool,
    /// `rename` fails with EIO.
    pub fail_rename: bool,
    /// `sync_dir` fails with EIO.
    pub fail_sync_dir: bool,
    /// Each `create` sleeps this long first (so a test can fork while it runs).
    pub create_delay_ms: u64,
}

/// The real file system with faults on demand; records what it did.
#[derive(Default)]
pub struct FaultFs {
    pub plan: Mutex<FsPlan>,
    /// Bytes written through created files so far (counted against `capacity`).
    pub written: Arc<AtomicU64>,
    /// Operations, in order: "create <path>", "sync <path>", "rename <from> <to>",
    /// "remove <path>", "sync_dir <dir>".
    pub log: Arc<Mutex<Vec<String>>>,
}

impl FaultFs {
    pub fn new() -> Arc<FaultFs> {
        Arc::new(FaultFs::default())
    }
    pub fn set_plan(&self, p: FsPlan) {
        *self.plan.lock().unwrap() = p;
    }
    pub fn ops(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn note(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
}

struct FaultWritten {
    file: File,
    path: String,
    capacity: Option<u64>,
    fail_sync: bool,
    written: Arc<AtomicU64>,
    log: Arc<Mutex<Vec<String>>>,
}

impl igniter_ledger::WrittenFile for FaultWritten {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(cap) = self.capacity {
            let used = self.written.load(Ordering::SeqCst);
            if used + buf.len() as u64 > cap {
                let n = cap.saturating_sub(used) as usize;
                io::Write::write_all(&mut self.file, &buf[..n])?;
                self.written.fetch_add(n as u64, Ordering::SeqCst);
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
        }
        io::Write::write_all(&mut self.file, buf)?;
        self.written.fetch_add(buf.len() as u64, Ordering::SeqCst);
        Ok(())
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.log.lock().unwrap().push(format!("sync {}", self.path));
        if self.fail_sync {
            return Err(eio("fsync of a created file"));
        }
        self.file.sync_all()
    }
    fn into_file(self: Box<Self>) -> io::Result<File> {
        Ok(self.file)
    }
}

impl igniter_ledger::FileSystem for FaultFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn igniter_ledger::WrittenFile>> {
        let plan = self.plan.lock().unwrap().clone();
        if plan.create_delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(plan.create_delay_ms));
        }
        self.note(format!("create {}", path.display()));
        if plan.fail_create {
            return Err(eio("create"));
        }
        Ok(Box::new(FaultWritten {
            file: std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?,
            path: path.display().to_string(),
            capacity: plan.capacity,
            fail_sync: plan.fail_file_sync,
            written: self.written.clone(),
            log: self.log.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.note(format!("rename {} {}", from.display(), to.display()));
        if self.plan.lock().unwrap().fail_rename {
            return Err(eio("rename"));
        }
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.note(format!("remove {}", path.display()));
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.note(format!("sync_dir {}", dir.display()));
        if self.plan.lock().unwrap().fail_sync_dir {
            return Err(eio("directory fsync"));
        }
        File::open(dir)?.sync_all()
    }
}

/// A small tmpfs mounted for one test (unmounted on drop), when the test runs as root
/// and the system allows it; otherwise the reason it could not be made.
pub struct SmallTmpfs {
    pub dir: tempfile::TempDir,
}

impl SmallTmpfs {
    pub fn mount(size: &str) -> Result<SmallTmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallTmpfs { dir })
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}
