//! The WAL file lock: one open handle per ledger file, across processes and within one.
//!
//! **Across processes:** a POSIX record lock (`fcntl(F_SETLK)`, exclusive, whole file)
//! on the WAL itself, taken through `rustix` (a maintained, safe wrapper over the system
//! calls; the core crate needs no `unsafe`). Record locks belong to the *process*: a
//! child made by `fork(2)` does not inherit them, so a parent that closes and reopens
//! its ledger while a child forked earlier is alive gets the lock again (with `flock(2)`,
//! which the ledger used before, the child's inherited descriptor kept the lock and the
//! parent got `Locked`). OFD locks (`F_OFD_SETLK`) would not do: they belong to the open
//! file description, which a child shares.
//!
//! **Within the process:** record locks never conflict inside one process, so a
//! process-wide registry of held files (by device and inode) refuses a second handle.
//! Record locks also have a well-known trap: closing *any* descriptor of the file
//! releases the process's lock on it. Hence: the registry is checked before a new
//! descriptor of the file is opened; recovery reads the WAL through the locked
//! descriptor; the registry entry lives inside [`LockedFile`], after its descriptor, so it
//! is removed only once that descriptor is closed. A program that opens and closes the
//! WAL file itself while the ledger is open (e.g. to read it) drops the lock for other
//! processes; the README says so.

use std::fs::{File, OpenOptions as FsOpen};
use std::io;
use std::path::Path;

use parking_lot::Mutex;

use super::error::{Error, Result};
use super::fork::{self, Owned, Owner};
use super::fs::{parent_dir, FileSystem};

/// A locked WAL file and its entry in the process's registry (removed on drop, after the
/// descriptor is closed). It is also the WAL's file layer (see `wal`), which may
/// preallocate zero-filled space past the end of the log.
#[derive(Debug)]
pub(crate) struct LockedFile {
    pub(crate) file: File,
    /// The log's end and the zero-filled space after it.
    pub(crate) extent: Mutex<Extent>,
    _entry: Entry,
}

/// Where the log ends in the file, and how far the file is zero-filled beyond it.
#[derive(Debug, Default)]
pub(crate) struct Extent {
    /// End of the last frame written (the log's logical length).
    pub(crate) end: u64,
    /// The file's length: `end` plus preallocated zeros.
    pub(crate) allocated: u64,
    /// Preallocate (fsync mode only: see `wal`).
    pub(crate) preallocate: bool,
    /// After a failed preallocation, do not try again before the log reaches this.
    pub(crate) retry_at: u64,
}

#[derive(Debug)]
struct Entry {
    dev: u64,
    ino: u64,
    pid: u32,
}

/// Files held by a ledger handle of this process: (device, inode, pid). Entries with
/// another pid were inherited across `fork` and hold nothing here.
static HELD: Mutex<Held> = parking_lot::const_mutex(Vec::new());
static HELD_OWNER: Owner = Owner::new_const();

/// (device, inode, pid) of each held file.
type Held = Vec<(u64, u64, u32)>;

/// The registry, locked, with this process (`me`) recorded as its holder.
fn registry(me: u32) -> Result<Owned<'static, parking_lot::MutexGuard<'static, Held>>> {
    let g =
        fork::acquire(me, &HELD_OWNER, || HELD.try_lock(), || HELD.lock()).ok_or_else(|| {
            Error::io(
                "opening a ledger file".to_owned(),
                io::Error::other(
                    "the process's ledger registry was locked by a thread of the process this \
                 one was forked from",
                ),
            )
        })?;
    let mut g = Owned::new(g, &HELD_OWNER, me);
    g.retain(|&(_, _, pid)| pid == me);
    Ok(g)
}

impl Drop for Entry {
    fn drop(&mut self) {
        let me = std::process::id();
        if me != self.pid {
            return; // a forked child's copy: the entry is the parent's
        }
        if let Ok(mut g) = registry(me) {
            g.retain(|&(d, i, p)| !(d == self.dev && i == self.ino && p == self.pid));
        }
    }
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<bool> {
    use rustix::fs::{fcntl_lock, FlockOperation};
    match fcntl_lock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::ACCESS => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(unix))]
fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Whether a ledger handle of this process holds the file at `path` (whose lock closing
/// another descriptor of it would release).
pub(crate) fn held_by_this_process(path: &Path) -> bool {
    let me = std::process::id();
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let (dev, ino) = file_id(&meta);
    match registry(me) {
        Ok(held) => held.iter().any(|&(d, i, _)| d == dev && i == ino),
        // Cannot tell: say held, so that no descriptor is opened and closed.
        Err(_) => true,
    }
}

/// Opens (creating if needed) the WAL file for reading and appending and takes its lock;
/// `Locked` if another handle of this process or another process holds it. A new file's
/// directory entry is fsynced through `fs`.
pub(crate) fn open_locked(path: &Path, fs: &dyn FileSystem) -> Result<LockedFile> {
    let me = std::process::id();
    let locked = || Error::Locked {
        path: path.to_owned(),
    };
    let mut held = registry(me)?;
    let existed = match std::fs::metadata(path) {
        Ok(meta) => {
            // A device, FIFO or socket would be read without end (or block) during replay.
            if !meta.is_file() {
                return Err(Error::io(
                    format!("opening {}", path.display()),
                    io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
                ));
            }
            let (dev, ino) = file_id(&meta);
            if held.iter().any(|&(d, i, _)| d == dev && i == ino) {
                // Checked before opening: closing a second descriptor of a held file
                // would release this process's lock on it.
                return Err(locked());
            }
            true
        }
        Err(_) => false,
    };
    // Not O_APPEND: frames are written at the log's end, which may lie before
    // preallocated zeros (and on Linux pwrite ignores its offset under O_APPEND).
    let file = FsOpen::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("reading the metadata of {}", path.display()), e))?;
    let (dev, ino) = file_id(&meta);
    if held.iter().any(|&(d, i, _)| d == dev && i == ino) {
        // The path was replaced by a held file between the check and the open: keep
        // this descriptor open for the life of the process rather than release the
        // holder's lock by closing it.
        std::mem::forget(file);
        return Err(locked());
    }
    match try_lock(&file) {
        Ok(true) => {}
        Ok(false) => return Err(locked()),
        Err(e) => return Err(Error::io(format!("locking {}", path.display()), e)),
    }
    held.push((dev, ino, me));
    drop(held);
    let len = meta.len();
    let locked_file = LockedFile {
        file,
        extent: Mutex::new(Extent {
            end: len,
            allocated: len,
            ..Extent::default()
        }),
        _entry: Entry { dev, ino, pid: me },
    };
    if !existed {
        let dir = parent_dir(path);
        fs.sync_dir(dir)
            .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))?;
    }
    Ok(locked_file)
}

/// Takes the lock on a file the ledger just created (a new WAL generation, before it is
/// renamed over the WAL) and enters it in the registry. `Locked` if someone holds it.
pub(crate) fn adopt(file: File, path: &Path) -> Result<LockedFile> {
    let me = std::process::id();
    let mut held = registry(me)?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("reading the metadata of {}", path.display()), e))?;
    let (dev, ino) = file_id(&meta);
    let locked = || Error::Locked {
        path: path.to_owned(),
    };
    if held.iter().any(|&(d, i, _)| d == dev && i == ino) {
        return Err(locked());
    }
    match try_lock(&file) {
        Ok(true) => {}
        Ok(false) => return Err(locked()),
        Err(e) => return Err(Error::io(format!("locking {}", path.display()), e)),
    }
    held.push((dev, ino, me));
    drop(held);
    let len = meta.len();
    Ok(LockedFile {
        file,
        extent: Mutex::new(Extent {
            end: len,
            allocated: len,
            ..Extent::default()
        }),
        _entry: Entry { dev, ino, pid: me },
    })
}

impl Drop for LockedFile {
    fn drop(&mut self) {
        // A handle dropped without `close` still leaves the WAL at its exact length (not
        // in a forked child: the file is the parent's).
        if self._entry.pid == std::process::id() {
            let e = self.extent.get_mut();
            if e.allocated > e.end {
                let _ = self.file.set_len(e.end);
            }
        }
    }
}
