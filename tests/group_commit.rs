//! Group commit: concurrent writers in fsync mode share fdatasyncs, and every write
//! returns only after a sync that covers it.

use std::fs::File;
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use igniter_ledger::{Durability, LedgerStore, LogFile, OpenOptions, Value, Write};

/// A real file that counts syncs and makes each one slow enough that writers queue up.
/// It records where each appended frame ends, by the fact ids the frame holds.
struct SlowSync {
    file: File,
    appended: AtomicU64,
    synced_upto: AtomicU64,
    syncs: AtomicU64,
    /// (frame bytes, end offset) of every append, in order.
    frames: Mutex<Vec<(Vec<u8>, u64)>>,
}

impl SlowSync {
    /// Where the frame holding fact `id` ends (its id is stored as 16 raw bytes).
    fn end_of(&self, id: uuid::Uuid) -> u64 {
        let needle = id.as_bytes();
        self.frames
            .lock()
            .unwrap()
            .iter()
            .find(|(b, _)| b.windows(16).any(|w| w == needle))
            .map(|(_, end)| *end)
            .expect("the acknowledged fact was appended")
    }
}

impl SlowSync {
    fn open(path: &std::path::Path) -> Arc<Self> {
        Arc::new(SlowSync {
            file: std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .unwrap(),
            appended: AtomicU64::new(0),
            synced_upto: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            frames: Mutex::new(Vec::new()),
        })
    }
}

impl LogFile for SlowSync {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        // Under the lock, so the recorded end and the bytes appended agree.
        let mut frames = self.frames.lock().unwrap();
        (&self.file).write_all(buf)?;
        let end = self.appended.fetch_add(buf.len() as u64, Ordering::SeqCst) + buf.len() as u64;
        frames.push((buf.to_vec(), end));
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        let upto = self.appended.load(Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(3));
        self.file.sync_data()?;
        self.synced_upto.fetch_max(upto, Ordering::SeqCst);
        self.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
}

#[test]
fn concurrent_writers_share_fsyncs_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.wal");
    let file = SlowSync::open(&path);
    let l = LedgerStore::open_with_file(
        &path,
        OpenOptions::new().durability(Durability::Fsync),
        file.clone(),
    )
    .unwrap();
    const THREADS: usize = 8;
    const PER: usize = 40;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let l = l.clone();
            let file = file.clone();
            std::thread::spawn(move || {
                for i in 0..PER {
                    let f = l
                        .write(Write::new("s", format!("t{t}"), Value::Int(i as i64)))
                        .unwrap();
                    // When write returns, a completed sync must cover this write's frame:
                    // find where the frame ends (the appends recorded by the file) and
                    // check the durable length had reached it before the acknowledgement.
                    let synced = file.synced_upto.load(Ordering::SeqCst);
                    let end = file.end_of(f.id());
                    assert!(
                        synced >= end,
                        "thread {t} write {i} was acknowledged with its frame ending at \
                         {end} but only {synced} bytes synced"
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let writes = (THREADS * PER) as u64;
    let syncs = file.syncs.load(Ordering::SeqCst);
    assert_eq!(l.fact_count() as u64, writes);
    assert!(
        syncs < writes / 2,
        "{syncs} fdatasyncs for {writes} concurrent writes: group commit is not sharing them"
    );
    assert_eq!(
        file.synced_upto.load(Ordering::SeqCst),
        file.appended.load(Ordering::SeqCst)
    );
    l.close().unwrap();
    let l = LedgerStore::open(&path).unwrap();
    assert_eq!(l.fact_count() as u64, writes);
}

#[test]
fn single_writer_syncs_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.wal");
    let file = SlowSync::open(&path);
    let l = LedgerStore::open_with_file(&path, OpenOptions::new(), file.clone()).unwrap();
    for i in 0..10 {
        l.write(Write::new("s", "k", Value::Int(i))).unwrap();
        assert_eq!(
            file.synced_upto.load(Ordering::SeqCst),
            file.appended.load(Ordering::SeqCst),
            "write {i} returned before its sync"
        );
    }
    assert_eq!(file.syncs.load(Ordering::SeqCst), 10);
}
