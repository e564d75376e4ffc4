//! The file-system operations the ledger performs besides appending to the WAL: creating
//! and writing snapshot and side files, renames, removals, and directory fsyncs.
//!
//! They go through [`FileSystem`] so that tests can substitute a layer that fails on
//! demand (a full disk while a snapshot or a new WAL generation is written, a failing
//! rename or directory fsync, a side file that cannot be written during recovery) and
//! prove each error path leaves the ledger usable and no byte destroyed. The real layer is
//! [`OsFileSystem`]. It is the one file seam of the ledger besides the WAL's own
//! [`crate::LogFile`]: recovery, checkpoints and the storage rewrites of
//! `crate::retention` (compaction, prune, erasure) all use it.

use std::fs::File;
use std::io;
use std::path::Path;

/// A file being written by the ledger (a snapshot's temporary file, a side file, a new
/// WAL generation).
pub trait WrittenFile: Send {
    /// Writes all of `buf` at the current end.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// fsync (data and metadata).
    fn sync_all(&mut self) -> io::Result<()>;
    /// The open file itself, readable and writable: a new WAL generation becomes the WAL
    /// after its rename and is appended to through it. The default answers
    /// `Unsupported` (a storage rewrite through such a layer then fails cleanly, its
    /// temporary file removed).
    fn into_file(self: Box<Self>) -> io::Result<File> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this file layer cannot hand over its file",
        ))
    }
}

/// The file-system operations besides WAL appends. See the module documentation.
pub trait FileSystem: Send + Sync {
    /// Creates (truncating) a file for writing, also open for reading (not in append
    /// mode).
    fn create(&self, path: &Path) -> io::Result<Box<dyn WrittenFile>>;
    /// Renames `from` over `to` (atomic on POSIX file systems).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// fsyncs a directory, so a create, rename or removal in it is durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFileSystem;

impl WrittenFile for File {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        io::Write::write_all(self, buf)
    }
    fn sync_all(&mut self) -> io::Result<()> {
        File::sync_all(self)
    }
    fn into_file(self: Box<Self>) -> io::Result<File> {
        Ok(*self)
    }
}

impl FileSystem for OsFileSystem {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WrittenFile>> {
        // Not O_APPEND: once a new generation is the WAL, frames are written at the
        // log's end, which may lie before preallocated zeros.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(f))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to a new file at `path` and fsyncs it; on any error the partial file
/// is removed (best effort) and the error returned.
pub(crate) fn write_new_file(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let res = fs.create(path).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if res.is_err() {
        let _ = fs.remove_file(path);
    }
    res
}
