//! Faults while compacting, pruning and erasing: every file operation of the rewrite is
//! failed in turn (ENOSPC on writes, EIO on fsyncs, a failing rename, removal or
//! directory fsync). Before the rename the old state must stay intact in memory and on
//! disk, usable, with no file left behind; a failure after the rename (the directory
//! fsync) leaves the new state in effect. Either way a reopen shows the state before or
//! the state after, never a mix.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use igniter_ledger::retention::{Erase, Prune, RetentionPolicy};
use igniter_ledger::{Durability, LedgerStore, MapKey, OpenOptions, Read, Value, Write};
use igniter_ledger::{FileSystem, OsFileSystem, WrittenFile};
use uuid::Uuid;

/// Fails the `fail_at`-th file operation (counting from 0), passing the rest through.
struct FaultyIo {
    n: AtomicUsize,
    fail_at: usize,
    log: std::sync::Mutex<Vec<&'static str>>,
}

impl FaultyIo {
    fn new(fail_at: usize) -> Self {
        FaultyIo {
            n: AtomicUsize::new(0),
            fail_at,
            log: Default::default(),
        }
    }
    fn step(&self, what: &'static str, err: i32) -> io::Result<()> {
        let i = self.n.fetch_add(1, Ordering::SeqCst);
        if i == self.fail_at {
            self.log.lock().unwrap().push(what);
            return Err(io::Error::from_raw_os_error(err));
        }
        Ok(())
    }
    fn failed(&self) -> Option<&'static str> {
        self.log.lock().unwrap().first().copied()
    }
}

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

struct FaultyFile<'a> {
    io: &'a FaultyIo,
    inner: Box<dyn WrittenFile>,
}

impl WrittenFile for FaultyFile<'static> {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.io.step("write", ENOSPC)?;
        self.inner.write_all(buf)
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.io.step("fsync", EIO)?;
        self.inner.sync_all()
    }
    fn into_file(self: Box<Self>) -> io::Result<std::fs::File> {
        self.inner.into_file()
    }
}

impl FileSystem for &'static FaultyIo {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WrittenFile>> {
        self.step("create", ENOSPC)?;
        Ok(Box::new(FaultyFile {
            io: self,
            inner: OsFileSystem.create(path)?,
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step("rename", EIO)?;
        OsFileSystem.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.step("remove", EIO)?;
        OsFileSystem.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.step("sync_dir", EIO)?;
        OsFileSystem.sync_dir(dir)
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn ids(l: &LedgerStore) -> Vec<Uuid> {
    l.fact_log_all(None, None).iter().map(|f| f.id()).collect()
}

/// A ledger of 3000 facts (so the new generation takes several writes), checkpointed.
fn setup(dir: &Path) -> (std::path::PathBuf, LedgerStore, Vec<Uuid>) {
    let path = dir.join("f.wal");
    let l =
        LedgerStore::open_with(&path, OpenOptions::new().durability(Durability::Flush)).unwrap();
    l.set_retention("s", RetentionPolicy::ephemeral()).unwrap();
    let pad = "x".repeat(600);
    let mut first = Vec::new();
    for i in 0..3000i64 {
        let f = l
            .write(Write::new(
                "s",
                format!("k{}", i % 100),
                Value::map([
                    (MapKey::sym("i"), Value::Int(i)),
                    (MapKey::sym("pad"), Value::from(pad.as_str())),
                ]),
            ))
            .unwrap();
        if i < 10 {
            first.push(f.id());
        }
    }
    l.checkpoint().unwrap();
    (path, l, first)
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Compact,
    Prune,
    Erase,
}

fn run(
    l: &LedgerStore,
    op: Op,
    io: &'static FaultyIo,
    first: &[Uuid],
) -> igniter_ledger::Result<()> {
    match op {
        Op::Compact => l.compact_with_io(None, &io).map(|_| ()),
        Op::Prune => l
            .prune_fact_ids_with_io(
                Prune::new(first.iter().map(|i| i.to_string()), Value::sym("t")),
                &io,
            )
            .map(|_| ()),
        Op::Erase => l
            .erase_with_io(Erase::key("s", "k7", Value::sym("t")), &io)
            .map(|_| ()),
    }
}

fn every_failure_point(op: Op) {
    let mut points = 0;
    let mut seen = Vec::new();
    for fail_at in 0.. {
        let dir = tempfile::tempdir().unwrap();
        let (path, l, first) = setup(dir.path());
        let before = ids(&l);
        let files_before = files(dir.path());
        let io: &'static FaultyIo = Box::leak(Box::new(FaultyIo::new(fail_at)));
        let res = run(&l, op, io, &first);
        let Some(failed) = io.failed() else {
            assert!(res.is_ok(), "{op:?} without a fault: {res:?}");
            break;
        };
        points += 1;
        let err = res.expect_err("an injected fault must surface");
        let after_rename =
            failed == "sync_dir" && !dir.path().join("f.wal.snap").exists() && ids(&l) != before;
        if after_rename {
            // The final directory fsync: the new state is in effect and on disk.
            assert!(err.to_string().contains("syncing directory"), "{err}");
        } else {
            assert_eq!(ids(&l), before, "{op:?} fault at {failed} changed memory");
            let now = files(dir.path());
            // Nothing left behind; the snapshot may be gone (the WAL alone is complete).
            assert!(
                now == files_before || now == vec!["f.wal".to_owned()],
                "{op:?} fault at {failed}: files {now:?}"
            );
        }
        seen.push(failed);
        // Usable: commits go on, and a retry succeeds.
        l.write(Write::new("s", "later", Value::Int(1))).unwrap();
        let io_ok: &'static FaultyIo = Box::leak(Box::new(FaultyIo::new(usize::MAX)));
        run(&l, op, io_ok, &first).unwrap();
        l.close().unwrap();
        drop(l);
        let l = LedgerStore::open(&path).unwrap();
        assert_eq!(
            l.read(Read::new("s", "later")).unwrap(),
            Some(Value::Int(1))
        );
        drop(l);
        // The failed attempt's on-disk state, reopened on its own.
        let dir2 = tempfile::tempdir().unwrap();
        let (path2, l2, first2) = setup(dir2.path());
        let io2: &'static FaultyIo = Box::leak(Box::new(FaultyIo::new(fail_at)));
        let _ = run(&l2, op, io2, &first2);
        let mem = ids(&l2);
        drop(l2); // no close: as if the process died here
        let l3 = LedgerStore::open(&path2).unwrap();
        assert_eq!(
            ids(&l3),
            mem,
            "{op:?} fault at {failed}: reopen differs from memory"
        );
    }
    eprintln!("{op:?}: {points} failure points: {seen:?}");
    for kind in ["create", "write", "fsync", "remove", "rename", "sync_dir"] {
        assert!(seen.contains(&kind), "{op:?}: no fault injected at {kind}");
    }
}

#[test]
fn compaction_faults_leave_the_state_before_or_after() {
    every_failure_point(Op::Compact);
}

#[test]
fn prune_faults_leave_the_state_before_or_after() {
    every_failure_point(Op::Prune);
}

#[test]
fn erasure_faults_leave_the_state_before_or_after() {
    every_failure_point(Op::Erase);
}

mod common;

/// One file seam: a ledger opened with a file layer compacts through that same layer
/// (the layer recovery and checkpoints use), and its faults leave the state before.
#[test]
fn the_ledgers_own_file_layer_carries_its_rewrites() {
    use common::{FaultFs, FsPlan};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.wal");
    let fs = FaultFs::new();
    let l = LedgerStore::open_with_layers(
        &path,
        OpenOptions::new().durability(Durability::Flush),
        None,
        fs.clone(),
    )
    .unwrap();
    l.set_retention("s", RetentionPolicy::ephemeral()).unwrap();
    for i in 0..50i64 {
        l.write(Write::new("s", format!("k{}", i % 5), Value::Int(i)))
            .unwrap();
    }
    let before = ids(&l);
    for plan in [
        FsPlan {
            fail_rename: true,
            ..FsPlan::default()
        },
        FsPlan {
            capacity: Some(100),
            ..FsPlan::default()
        },
        FsPlan {
            fail_file_sync: true,
            ..FsPlan::default()
        },
    ] {
        fs.set_plan(plan.clone());
        let e = l.compact(None).unwrap_err();
        assert_eq!(ids(&l), before, "{plan:?}: {e}");
        assert_eq!(
            files(dir.path()),
            ["f.wal"],
            "{plan:?}: nothing left behind"
        );
    }
    fs.set_plan(FsPlan::default());
    let r = l.compact(None).unwrap();
    assert_eq!(r[0].dropped_count, 45);
    let ops = fs.ops();
    let tmp = format!("create {}", path.display());
    assert!(
        ops.iter()
            .any(|o| o.starts_with(&tmp) && o.ends_with(".rewrite.tmp")),
        "{ops:?}"
    );
    assert!(ops.iter().any(|o| o.starts_with("rename ")), "{ops:?}");
    l.close().unwrap();
    drop(l);
    let l = LedgerStore::open(&path).unwrap();
    assert_eq!(l.fact_count(), 6, "5 latest + 1 receipt");
}
