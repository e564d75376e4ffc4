//! [`SegmentedBackend`]: the segment directory of a ledger — live and sealed segments per
//! store, rotation, sealing, quarantine, purge by segment, and the commit journal that
//! makes a batch over several stores atomic.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions as FsOpen};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value as Json};
use uuid::Uuid;

use super::appender::{Appender, WRITE_BUFFER};
use super::codec::{decode_any, decode_segment, encode_compact, encode_frames};
use super::dirlock::{lock_root, DirLock};
use super::index_file;
use super::options::{SegmentCodec, SegmentOptions};
use super::values::FrameCache;
use crate::ledger::error::{Error, Result};
use crate::ledger::fact::Fact;
use crate::ledger::fs::{FileSystem, OsFileSystem};
use crate::ledger::time::Timestamp;
use crate::ledger::wal::Durability;
use crate::retention::{RetentionPolicy, Strategy};

/// Suffix of a sealed segment's manifest (`segment-000001.wal.manifest.json`).
pub const MANIFEST_SUFFIX: &str = ".manifest.json";
/// Suffix of a purge receipt (`segment-000001.wal.purged.json`).
pub const PURGED_SUFFIX: &str = ".purged.json";
/// Suffix of a quarantine receipt (`segment-000001.wal.quarantine.json`).
pub const QUARANTINE_SUFFIX: &str = ".quarantine.json";
/// The commit journal of batches over several stores, relative to the root (outside
/// `wal/`, which holds stores only).
pub const JOURNAL_FILE: &str = "commit.journal";

const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_EXT: &str = ".wal";

fn now_secs() -> f64 {
    Timestamp::now().as_secs_f64()
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(what, e)
}

/// The live (unsealed, appendable) segment of a store.
struct Live {
    path: PathBuf,
    number: u32,
    bucket: String,
    /// The bucket's time span, once known (a resumed segment learns it from its first
    /// commit whose time falls in its bucket).
    span: Option<(f64, f64)>,
    codec: SegmentCodec,
    /// The file, its bytes waiting to be written or hashed, and its content hash.
    out: Appender,
    /// Facts in the segment (in the file, or waiting to be written in `none` mode).
    on_disk: u64,
    /// Facts written by the compact codec's buffer later.
    buffer: Vec<Fact>,
    min_ts: Option<f64>,
    max_ts: Option<f64>,
}

/// A sealed segment, as its manifest describes it.
#[derive(Clone)]
struct Sealed {
    path: PathBuf,
    number: u32,
    manifest: Map<String, Json>,
}

impl Sealed {
    fn f64_field(&self, k: &str) -> Option<f64> {
        self.manifest.get(k).and_then(Json::as_f64)
    }
    fn u64_field(&self, k: &str) -> u64 {
        self.manifest.get(k).and_then(Json::as_u64).unwrap_or(0)
    }
    fn codec(&self) -> String {
        self.manifest
            .get("codec")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned()
    }
}

#[derive(Default)]
struct StoreSegs {
    sealed: Vec<Sealed>,
    live: Option<Live>,
    purged: Vec<Json>,
    quarantined: Vec<Json>,
}

/// What opening a segment directory found and did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SegmentOpenReport {
    /// Unsealed segments that were sealed at open (not the newest of their store).
    pub sealed_at_open: usize,
    /// Torn tails cut from live segments: (segment path, offset, bytes moved aside).
    pub torn_tails: Vec<(PathBuf, u64, u64)>,
    /// Segments quarantined at open.
    pub quarantined: Vec<PathBuf>,
    /// Facts of an interrupted multi-store batch completed from the commit journal.
    pub journal_facts_restored: usize,
}

/// The segment directory of a ledger. See the crate README ("Segmented storage") for
/// the layout and its guarantees.
pub struct SegmentedBackend {
    root: PathBuf,
    opts: SegmentOptions,
    stores: BTreeMap<String, StoreSegs>,
    fs: Arc<dyn FileSystem>,
    report: SegmentOpenReport,
    closed: bool,
    /// Set when a batch over several stores failed after its commit journal was written:
    /// the outcome is the journal's (the next open completes the batch), so this handle
    /// refuses further writes ([`Error::Poisoned`]) rather than let them land after it.
    poisoned: Option<String>,
    frame: Vec<u8>,
    /// The directory lock (see `dirlock`), held until the handle is dropped or crashes.
    lock: Option<DirLock>,
    /// The process that opened it (a forked child's copy writes nothing when dropped).
    pid: u32,
    /// `none` mode: bytes waiting in memory over all live segments (an upper bound:
    /// recounted when they are written out together).
    waiting: usize,
}

fn seg_name(n: u32) -> String {
    format!("{SEGMENT_PREFIX}{n:06}{SEGMENT_EXT}")
}

fn seg_number(name: &str) -> Option<u32> {
    name.strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_EXT)?
        .parse()
        .ok()
}

fn side(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn read_json(path: &Path) -> Option<Map<String, Json>> {
    let bytes = fs::read(path).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Json::Object(m) => Some(m),
        _ => None,
    }
}

/// blake3 of a file, read in chunks.
fn hash_file(path: &Path) -> std::io::Result<blake3::Hash> {
    let mut f = File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize());
        }
        h.update(&buf[..n]);
    }
}

fn ts_json(t: Option<f64>) -> Json {
    t.map_or(Json::Null, |v| json!(v))
}

fn min_max(facts: &[Fact]) -> (Option<f64>, Option<f64>) {
    let mut lo: Option<f64> = None;
    let mut hi: Option<f64> = None;
    for f in facts {
        let t = f.transaction_time().as_secs_f64();
        lo = Some(lo.map_or(t, |l| l.min(t)));
        hi = Some(hi.map_or(t, |h| h.max(t)));
    }
    (lo, hi)
}

impl SegmentedBackend {
    /// Opens (or creates) the segment directory at `root`: reads every manifest,
    /// verifies sealed segments against them (quarantining those that disagree), resumes
    /// the newest unsealed segment of each store (cutting a torn tail aside), seals the
    /// other unsealed ones, and completes an interrupted multi-store batch from the
    /// commit journal.
    pub fn open(root: impl AsRef<Path>, opts: SegmentOptions) -> Result<Self> {
        Self::open_with_fs(root, opts, Arc::new(OsFileSystem))
    }

    /// [`SegmentedBackend::open`] with a custom file-system layer for manifests,
    /// receipts, renames and directory syncs (fault-injection tests).
    #[doc(hidden)]
    pub fn open_with_fs(
        root: impl AsRef<Path>,
        opts: SegmentOptions,
        fs: Arc<dyn FileSystem>,
    ) -> Result<Self> {
        let root = root.as_ref().to_owned();
        if root.exists() && !root.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "root {} is not a directory",
                root.display()
            )));
        }
        let wal = root.join("wal");
        fs::create_dir_all(&wal).map_err(io_err(format!("creating {}", wal.display())))?;
        let lock = lock_root(&root, &*fs)?;
        let mut b = SegmentedBackend {
            root,
            opts,
            stores: BTreeMap::new(),
            fs,
            report: SegmentOpenReport::default(),
            closed: false,
            poisoned: None,
            frame: Vec::with_capacity(4096),
            lock: Some(lock),
            pid: std::process::id(),
            waiting: 0,
        };
        b.load()?;
        b.recover_journal()?;
        Ok(b)
    }

    /// What opening found and did.
    pub fn open_report(&self) -> &SegmentOpenReport {
        &self.report
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The options it was opened with.
    pub fn options(&self) -> &SegmentOptions {
        &self.opts
    }

    /// The durability mode: whether an append waits for fsync.
    pub fn durability(&self) -> Durability {
        self.opts.durability
    }

    fn store_dir(&self, store: &str) -> PathBuf {
        self.root.join("wal").join(format!("store={store}"))
    }

    fn load(&mut self) -> Result<()> {
        let wal = self.root.join("wal");
        let entries = fs::read_dir(&wal).map_err(io_err(format!("reading {}", wal.display())))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(store) = name.strip_prefix("store=") else {
                continue;
            };
            if !e.path().is_dir() {
                continue;
            }
            let segs = self.load_store(store, &e.path())?;
            self.stores.insert(store.to_owned(), segs);
        }
        Ok(())
    }

    fn load_store(&mut self, store: &str, dir: &Path) -> Result<StoreSegs> {
        let mut segs = StoreSegs::default();
        // (number, bucket, path) of every segment file, receipts by segment path.
        let mut files: Vec<(u32, String, PathBuf)> = Vec::new();
        let buckets = fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))?;
        for b in buckets.flatten() {
            let bname = b.file_name().to_string_lossy().into_owned();
            let Some(bucket) = bname.strip_prefix("date=") else {
                continue;
            };
            let Ok(list) = fs::read_dir(b.path()) else {
                continue;
            };
            for f in list.flatten() {
                let fname = f.file_name().to_string_lossy().into_owned();
                let p = f.path();
                if fname.ends_with(PURGED_SUFFIX) {
                    if let Some(r) = read_json(&p) {
                        segs.purged.push(Json::Object(r));
                    }
                } else if fname.ends_with(QUARANTINE_SUFFIX) {
                    if let Some(r) = read_json(&p) {
                        segs.quarantined.push(Json::Object(r));
                    }
                } else if let Some(n) = seg_number(&fname) {
                    files.push((n, bucket.to_owned(), p));
                }
            }
        }
        files.sort();
        let newest_unsealed = files
            .iter()
            .rev()
            .find(|(_, _, p)| !side(p, MANIFEST_SUFFIX).exists())
            .map(|(n, _, _)| *n);
        let newest = files.last().map(|(n, _, _)| *n);
        for (n, bucket, path) in files {
            if side(&path, QUARANTINE_SUFFIX).exists() {
                continue;
            }
            match read_json(&side(&path, MANIFEST_SUFFIX)) {
                Some(m) => match self.verify_sealed(&path, &m) {
                    Ok(()) => segs.sealed.push(Sealed {
                        path,
                        number: n,
                        manifest: m,
                    }),
                    Err((class, msg)) => {
                        let r = self.quarantine(store, &path, Some(&m), class, &msg)?;
                        segs.quarantined.push(r);
                    }
                },
                None => {
                    let resume = Some(n) == newest_unsealed && Some(n) == newest;
                    match self.open_unsealed(store, n, &bucket, &path, resume)? {
                        Unsealed::Live(l) => segs.live = Some(l),
                        Unsealed::Sealed(s) => segs.sealed.push(s),
                        Unsealed::Quarantined(r) => segs.quarantined.push(r),
                        Unsealed::Empty => {}
                    }
                }
            }
        }
        Ok(segs)
    }

    /// Checks a sealed segment against its manifest: byte size, blake3 (when the
    /// manifest has one) and fact count. The time range is not checked: an operator may
    /// edit it to age a segment.
    fn verify_sealed(
        &self,
        path: &Path,
        m: &Map<String, Json>,
    ) -> Result<(), (&'static str, String)> {
        let size = fs::metadata(path)
            .map_err(|e| ("IOError", format!("reading the segment: {e}")))?
            .len();
        let want = m.get("byte_size").and_then(Json::as_u64);
        if want != Some(size) {
            return Err((
                "ManifestMismatch",
                format!(
                    "segment is {size} bytes, its manifest says {}",
                    want.map_or("nothing".into(), |w| w.to_string())
                ),
            ));
        }
        if let Some(h) = m.get("blake3").and_then(Json::as_str) {
            // Streamed: the segment is hashed, not held in memory.
            let got = hash_file(path)
                .map_err(|e| ("IOError", format!("reading the segment: {e}")))?
                .to_hex();
            if got.as_str() != h {
                return Err((
                    "ChecksumMismatch",
                    format!("segment blake3 {got} differs from the manifest's {h}"),
                ));
            }
            // A valid index bound to this size, blake3 and fact count: the frames were
            // checked when it was written from them; no value is decoded at open.
            if index_file::plausible(path, m) {
                return Ok(());
            }
        }
        let bytes = fs::read(path).map_err(|e| ("IOError", format!("reading the segment: {e}")))?;
        let d = decode_any(&bytes, &path.to_string_lossy());
        if let Some(c) = d.corrupt {
            return Err(("CorruptFrame", c));
        }
        if let Some((off, n)) = d.torn {
            return Err((
                "CorruptFrame",
                format!("sealed segment ends in {n} bytes that are not a frame (offset {off})"),
            ));
        }
        let count = m.get("fact_count").and_then(Json::as_u64);
        if count != Some(d.facts.len() as u64) {
            return Err((
                "ManifestMismatch",
                format!(
                    "segment holds {} facts, its manifest says {}",
                    d.facts.len(),
                    count.map_or("nothing".into(), |c| c.to_string())
                ),
            ));
        }
        Ok(())
    }

    /// Writes a quarantine receipt beside `path` (the segment stays where it is, for an
    /// operator; the receipt keeps it out of every later open).
    fn quarantine(
        &mut self,
        store: &str,
        path: &Path,
        manifest: Option<&Map<String, Json>>,
        class: &str,
        msg: &str,
    ) -> Result<Json> {
        let mut r = manifest.cloned().unwrap_or_default();
        r.entry("store").or_insert_with(|| json!(store));
        r.entry("sealed").or_insert(json!(false));
        r.insert("quarantined_at".into(), json!(now_secs()));
        r.insert("error_class".into(), json!(class));
        r.insert("error_message".into(), json!(msg));
        r.insert("segment_path".into(), json!(path.to_string_lossy()));
        let r = Json::Object(r);
        self.write_json_atomic(&side(path, QUARANTINE_SUFFIX), &r)?;
        self.report.quarantined.push(path.to_owned());
        Ok(r)
    }

    pub(crate) fn write_json_atomic(&self, path: &Path, v: &Json) -> Result<()> {
        let tmp = side(path, ".tmp");
        let bytes = serde_json::to_vec(v).unwrap_or_default();
        crate::ledger::fs::write_new_file(&*self.fs, &tmp, &bytes)
            .map_err(io_err(format!("writing {}", tmp.display())))?;
        if let Err(e) = self.fs.rename(&tmp, path) {
            let _ = self.fs.remove_file(&tmp);
            return Err(Error::io(format!("renaming {}", tmp.display()), e));
        }
        let dir = crate::ledger::fs::parent_dir(path);
        self.fs
            .sync_dir(dir)
            .map_err(io_err(format!("syncing {}", dir.display())))
    }

    fn open_unsealed(
        &mut self,
        store: &str,
        number: u32,
        bucket: &str,
        path: &Path,
        resume: bool,
    ) -> Result<Unsealed> {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_err(format!("reading {}", path.display())))?;
        let d = decode_any(&bytes, &path.to_string_lossy());
        if let Some(c) = &d.corrupt {
            let r = self.quarantine(store, path, None, "CorruptFrame", c)?;
            return Ok(Unsealed::Quarantined(r));
        }
        if let Some((off, n)) = d.torn {
            // Like the WAL's torn tail: the bytes go aside, the segment ends at its last
            // complete frame. Trailing zeros (preallocated space, see `appender`) hold
            // nothing: a tail of zeros only is cut without a side file.
            let tail = &bytes[off as usize..];
            let kept = tail.len() - tail.iter().rev().take_while(|&&b| b == 0).count();
            if kept > 0 {
                let aside = side(path, &format!(".torn-{off}"));
                crate::ledger::fs::write_new_file(&*self.fs, &aside, &tail[..kept])
                    .map_err(io_err(format!("writing {}", aside.display())))?;
            }
            let f = FsOpen::new()
                .write(true)
                .open(path)
                .map_err(io_err(format!("opening {}", path.display())))?;
            f.set_len(off)
                .and_then(|_| f.sync_all())
                .map_err(io_err(format!("cutting {}", path.display())))?;
            bytes.truncate(off as usize);
            if kept > 0 {
                self.report.torn_tails.push((path.to_owned(), off, n));
            }
        }
        let compact_or_json = bytes.len() > 8 && (bytes[4] == super::codec::COMPACT_MARK);
        let codec = if compact_or_json {
            SegmentCodec::Compact
        } else if bytes.is_empty() {
            self.opts.codec_of(store)
        } else {
            SegmentCodec::Frames
        };
        let (min_ts, max_ts) = min_max(&d.facts);
        if d.facts.is_empty() && !resume {
            let _ = self.fs.remove_file(path);
            return Ok(Unsealed::Empty);
        }
        let file = FsOpen::new()
            .write(true)
            .open(path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        let prealloc = self.opts.durability == Durability::Fsync;
        let live = Live {
            path: path.to_owned(),
            number,
            bucket: bucket.to_owned(),
            span: None,
            codec,
            out: Appender::new(path, file, &bytes, prealloc),
            on_disk: d.facts.len() as u64,
            buffer: Vec::new(),
            min_ts,
            max_ts,
        };
        if resume && !d.legacy_json && !d.legacy_compact {
            return Ok(Unsealed::Live(live));
        }
        self.report.sealed_at_open += 1;
        let codec_name = if d.legacy_json {
            "json_crc32"
        } else if d.legacy_compact {
            "compact_delta_zlib"
        } else {
            codec.name()
        };
        match self
            .seal_live(store, live, codec_name)
            .map_err(|(e, _)| e)?
        {
            Some(s) => Ok(Unsealed::Sealed(s)),
            None => Ok(Unsealed::Empty),
        }
    }

    // ------------------------------------------------------------------ writing

    /// Writes the facts of one commit. Facts of several stores are made atomic by the
    /// commit journal: the whole batch is written (and, in `fsync` mode, synced) to
    /// `root/commit.journal` before any segment, the journal is emptied once every
    /// segment has it, and an open completes a batch the journal still holds.
    ///
    /// If such a batch fails once its journal is written (a segment write, a rotation or
    /// the journal's emptying), the batch is neither undone nor published: the error is
    /// [`Error::Poisoned`], saying that the next open completes it from the journal, and
    /// this handle refuses later writes the same way until the ledger is reopened.
    pub fn append(&mut self, facts: &[Fact]) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        if let Some(why) = &self.poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        if facts.is_empty() {
            return Ok(());
        }
        let first = facts[0].store();
        let multi = facts[1..].iter().any(|f| f.store() != first);
        if !multi {
            return self.append_store(first, facts, false);
        }
        self.journal_write(facts)?;
        let mut groups: BTreeMap<&str, Vec<Fact>> = BTreeMap::new();
        for f in facts {
            groups.entry(f.store()).or_default().push(f.clone());
        }
        let direct = self.direct();
        let mut written = Ok(());
        for (store, part) in &groups {
            written = self.append_store_as(store, part, true, direct);
            if written.is_err() {
                break;
            }
        }
        match written.and_then(|()| self.journal_clear()) {
            Ok(()) => Ok(()),
            Err(e) => {
                let why = format!(
                    "a batch over several stores failed after its commit journal was written \
                     ({e}); the next open completes it from {}",
                    self.journal_path().display()
                );
                self.poisoned = Some(why.clone());
                Err(Error::Poisoned(why))
            }
        }
    }

    fn journal_path(&self) -> PathBuf {
        self.root.join(JOURNAL_FILE)
    }

    fn journal_write(&mut self, facts: &[Fact]) -> Result<()> {
        let path = self.journal_path();
        let mut buf = Vec::new();
        encode_frames(&mut buf, facts)?;
        let mut f = FsOpen::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        f.write_all(&buf)
            .map_err(io_err(format!("writing {}", path.display())))?;
        if self.opts.durability == Durability::Fsync {
            f.sync_data()
                .map_err(io_err(format!("syncing {}", path.display())))?;
        }
        Ok(())
    }

    fn journal_clear(&mut self) -> Result<()> {
        let path = self.journal_path();
        let f = FsOpen::new()
            .write(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        f.set_len(0)
            .map_err(io_err(format!("emptying {}", path.display())))?;
        if self.opts.durability == Durability::Fsync {
            f.sync_data()
                .map_err(io_err(format!("syncing {}", path.display())))?;
        }
        Ok(())
    }

    fn recover_journal(&mut self) -> Result<()> {
        let path = self.journal_path();
        let Ok(bytes) = fs::read(&path) else {
            return Ok(());
        };
        if bytes.is_empty() {
            let _ = fs::remove_file(&path);
            return Ok(());
        }
        // A torn journal frame is a batch that never reached any segment (the journal is
        // written in full before the segments): it is dropped.
        let d = decode_segment(&bytes);
        if !d.facts.is_empty() {
            let mut by_store: BTreeMap<String, Vec<Fact>> = BTreeMap::new();
            for f in &d.facts {
                by_store
                    .entry(f.store().to_owned())
                    .or_default()
                    .push(f.clone());
            }
            for (store, part) in by_store {
                let have: HashSet<Uuid> = self.live_facts(&store)?.iter().map(Fact::id).collect();
                let missing: Vec<Fact> = part
                    .into_iter()
                    .filter(|f| !have.contains(&f.id()))
                    .collect();
                if !missing.is_empty() {
                    self.report.journal_facts_restored += missing.len();
                    self.append_store_as(&store, &missing, true, self.direct())?;
                }
            }
        }
        // The restored facts are in their segments (flushed and synced): the journal
        // goes.
        fs::remove_file(&path).map_err(io_err(format!("removing {}", path.display())))?;
        Ok(())
    }

    /// The facts of a store's live segment (on disk and buffered).
    fn live_facts(&mut self, store: &str) -> Result<Vec<Fact>> {
        let Some(l) = self.stores.get_mut(store).and_then(|s| s.live.as_mut()) else {
            return Ok(Vec::new());
        };
        l.out.write_waiting()?;
        let bytes = fs::read(&l.path).map_err(io_err(format!("reading {}", l.path.display())))?;
        let mut facts = decode_segment(&bytes).facts;
        facts.extend(l.buffer.iter().cloned());
        Ok(facts)
    }

    fn next_number(&self, store: &str) -> u32 {
        let s = self.stores.get(store);
        let mut n = 0;
        if let Some(s) = s {
            n = s.sealed.iter().map(|x| x.number).max().unwrap_or(0);
            if let Some(l) = &s.live {
                n = n.max(l.number);
            }
            for r in s.purged.iter().chain(&s.quarantined) {
                let num = r
                    .get("segment_path")
                    .and_then(Json::as_str)
                    .and_then(|p| Path::new(p).file_name()?.to_str().and_then(seg_number));
                n = n.max(num.unwrap_or(0));
            }
        }
        n + 1
    }

    fn open_live(&mut self, store: &str, bucket: String, span: Option<(f64, f64)>) -> Result<()> {
        let number = self.next_number(store);
        let dir = self.store_dir(store).join(format!("date={bucket}"));
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let path = dir.join(seg_name(number));
        let file = FsOpen::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("creating {}", path.display())))?;
        if self.opts.durability == Durability::Fsync {
            self.fs
                .sync_dir(&dir)
                .map_err(io_err(format!("syncing {}", dir.display())))?;
        }
        let codec = self.opts.codec_of(store);
        self.stores.entry(store.to_owned()).or_default().live = Some(Live {
            out: Appender::new(&path, file, &[], self.opts.durability == Durability::Fsync),
            path,
            number,
            bucket,
            span,
            codec,
            on_disk: 0,
            buffer: Vec::new(),
            min_ts: None,
            max_ts: None,
        });
        Ok(())
    }

    /// The durability of writes that must reach the file at once: the ledger's, but at
    /// least `flush` (what waits in memory in `none` mode is written first, in order).
    fn direct(&self) -> Durability {
        match self.opts.durability {
            Durability::None => Durability::Flush,
            d => d,
        }
    }

    /// Writes every live segment's waiting bytes (`none` mode). On an error what is not
    /// written stays waiting.
    fn write_all_waiting(&mut self) -> Result<()> {
        let mut first_err = None;
        for s in self.stores.values_mut() {
            if let Some(l) = s.live.as_mut() {
                if let Err(e) = l.out.write_waiting() {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.waiting = self
            .stores
            .values()
            .filter_map(|s| s.live.as_ref())
            .map(|l| l.out.unwritten())
            .sum();
        first_err.map_or(Ok(()), Err)
    }

    fn append_store(&mut self, store: &str, facts: &[Fact], force_flush: bool) -> Result<()> {
        self.append_store_as(store, facts, force_flush, self.opts.durability)
    }

    /// `durability` for what must reach the file now even in `none` mode (parts of a
    /// multi-store batch, facts carried forward by a purge, facts restored from the
    /// journal): [`SegmentedBackend::direct`].
    fn append_store_as(
        &mut self,
        store: &str,
        facts: &[Fact],
        force_flush: bool,
        durability: Durability,
    ) -> Result<()> {
        if durability == Durability::None && self.waiting >= WRITE_BUFFER {
            // The commits waiting in memory were acknowledged: on an error they stay
            // waiting, and this commit fails before any of it is taken in.
            self.write_all_waiting()?;
        }
        let t = facts[0].transaction_time().as_secs_f64();
        let tb = self.opts.time_bucket;
        let rotate = match self.stores.get_mut(store).and_then(|s| s.live.as_mut()) {
            None => None,
            Some(l) => match l.span {
                Some((a, b)) => Some(!(t >= a && t < b)),
                None if tb.name_of(t) == l.bucket => {
                    l.span = Some(tb.span_of(t));
                    Some(false)
                }
                None => Some(true),
            },
        };
        match rotate {
            None => self.open_live(store, tb.name_of(t), Some(tb.span_of(t)))?,
            Some(true) => {
                self.seal_store(store)?;
                self.open_live(store, tb.name_of(t), Some(tb.span_of(t)))?;
            }
            Some(false) => {}
        }
        let threshold = self.opts.flush.threshold();
        let max_bytes = self.opts.max_bytes;
        let mut frame = std::mem::take(&mut self.frame);
        let segs = self.stores.get_mut(store).expect("opened above");
        let live = segs.live.as_mut().expect("opened above");
        let waiting_before = live.out.unwritten();
        let res = (|| {
            match live.codec {
                SegmentCodec::Frames => {
                    frame.clear();
                    encode_frames(&mut frame, facts)?;
                    write_out(live, &frame, facts, durability)?;
                }
                SegmentCodec::Compact => {
                    live.buffer.extend(facts.iter().cloned());
                    if force_flush || live.buffer.len() >= threshold {
                        flush_buffer(live, &mut frame, durability)?;
                    }
                }
            }
            Ok::<_, Error>(())
        })();
        self.frame = frame;
        res?;
        self.waiting += live.out.unwritten().saturating_sub(waiting_before);
        let full = live.out.len() >= max_bytes;
        if full {
            self.seal_store(store)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ sealing

    /// Seals the live segment of `store` (if any): writes out its buffer, fsyncs it, and
    /// writes its manifest aside, fsyncs it, renames it into place and fsyncs the
    /// directory. An empty live segment is removed instead. On an error the segment
    /// stays live and unsealed (no manifest), so the store stays usable.
    fn seal_store(&mut self, store: &str) -> Result<()> {
        let Some(segs) = self.stores.get_mut(store) else {
            return Ok(());
        };
        let Some(mut live) = segs.live.take() else {
            return Ok(());
        };
        let mut frame = std::mem::take(&mut self.frame);
        let flushed = flush_buffer(&mut live, &mut frame, Durability::Flush);
        self.frame = frame;
        if let Err(e) = flushed {
            self.stores.get_mut(store).expect("exists").live = Some(live);
            return Err(e);
        }
        let codec = live.codec.name();
        match self.seal_live(store, live, codec) {
            Ok(Some(s)) => {
                self.stores.get_mut(store).expect("exists").sealed.push(s);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err((e, live)) => {
                self.stores.get_mut(store).expect("exists").live = live.map(|l| *l);
                Err(e)
            }
        }
    }

    fn seal_live(
        &mut self,
        store: &str,
        mut live: Live,
        codec: &str,
    ) -> std::result::Result<Option<Sealed>, (Error, Option<Box<Live>>)> {
        if live.on_disk == 0 {
            drop(live.out);
            let _ = self.fs.remove_file(&live.path);
            return Ok(None);
        }
        let hash = match live.out.finish() {
            Ok(h) => h,
            Err(e) => return Err((e, Some(Box::new(live)))),
        };
        // The index goes in place before the manifest (see `index_file`).
        let indexed = fs::read(&live.path)
            .map_err(io_err(format!("reading {}", live.path.display())))
            .and_then(|bytes| index_file::write(&*self.fs, &live.path, &bytes));
        if let Err(e) = indexed {
            return Err((e, Some(Box::new(live))));
        }
        let mut m = Map::new();
        m.insert(
            "segment_id".into(),
            json!(format!("{store}/{}/{:06}", live.bucket, live.number)),
        );
        m.insert("store".into(), json!(store));
        m.insert("codec".into(), json!(codec));
        m.insert("fact_count".into(), json!(live.on_disk));
        m.insert("byte_size".into(), json!(live.out.len()));
        m.insert("min_timestamp".into(), ts_json(live.min_ts));
        m.insert("max_timestamp".into(), ts_json(live.max_ts));
        m.insert("sealed".into(), json!(true));
        m.insert("sealed_at".into(), json!(now_secs()));
        m.insert("blake3".into(), json!(hash));
        m.insert("format_version".into(), json!(1));
        let mpath = side(&live.path, MANIFEST_SUFFIX);
        if let Err(e) = self.write_json_atomic(&mpath, &Json::Object(m.clone())) {
            // No manifest in place: the segment is still live (and appendable).
            return Err((e, Some(Box::new(live))));
        }
        Ok(Some(Sealed {
            path: live.path.clone(),
            number: live.number,
            manifest: m,
        }))
    }

    /// Seals every live segment and opens a fresh live segment for each store that had
    /// one (the reference's `checkpoint!`).
    pub fn checkpoint(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        let names: Vec<String> = self
            .stores
            .iter()
            .filter(|(_, s)| s.live.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        let now = now_secs();
        let bucket = self.opts.time_bucket.name_of(now);
        let span = self.opts.time_bucket.span_of(now);
        for n in names {
            self.seal_store(&n)?;
            self.open_live(&n, bucket.clone(), Some(span))?;
        }
        Ok(())
    }

    /// Seals every live segment (removing empty ones), removes the empty commit journal
    /// and releases the directory lock. Later writes fail with [`Error::Closed`]. Closing
    /// twice is fine.
    pub fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let names: Vec<String> = self.stores.keys().cloned().collect();
        let mut first_err = None;
        for n in names {
            if let Err(e) = self.seal_store(&n) {
                first_err.get_or_insert(e);
            }
        }
        // A poisoned handle's journal holds the failed batch for the next open.
        if first_err.is_none() && self.poisoned.is_none() {
            let _ = fs::remove_file(self.journal_path());
        }
        self.closed = true;
        for s in self.stores.values_mut() {
            s.live = None;
        }
        self.lock = None;
        first_err.map_or(Ok(()), Err)
    }

    /// Simulates the death of the process holding this handle (for crash tests and the
    /// reference's crash-simulating specs, which close a store's live file): every live
    /// segment is dropped without writing buffers or sealing, the directory lock is
    /// released, and the handle is closed (later writes fail with [`Error::Closed`];
    /// `close` does nothing). `store` names the store whose file the caller closed; a
    /// crash takes the others with it.
    #[doc(hidden)]
    pub fn abandon(&mut self, store: &str) {
        let _ = store;
        for s in self.stores.values_mut() {
            if let Some(l) = s.live.take() {
                l.out.crash();
            }
        }
        self.lock = None;
        self.closed = true;
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    // ------------------------------------------------------------------ reading

    /// Facts in transaction-time order. `store` limits to one store. `since` skips sealed
    /// segments whose `max_timestamp` is before it, `as_of` those whose `min_timestamp` is
    /// after it; the live segment is always read (the reference's segment-level pruning:
    /// facts of a segment that is read are all returned). A sealed segment that no longer
    /// matches its manifest is quarantined and skipped.
    pub fn replay(
        &mut self,
        store: Option<&str>,
        since: Option<f64>,
        as_of: Option<f64>,
    ) -> Result<Vec<Fact>> {
        self.replay_with(store, since, as_of, None)
    }

    /// Every fact, for opening a ledger: the facts of a sealed segment with a valid index
    /// are located (see `super::values`: their values stay in the segment), the others
    /// are decoded (and an index is written for them, best effort, for the next open).
    pub(crate) fn replay_located(&mut self, cache: &Arc<FrameCache>) -> Result<Vec<Fact>> {
        self.replay_with(None, None, None, Some(cache))
    }

    fn replay_with(
        &mut self,
        store: Option<&str>,
        since: Option<f64>,
        as_of: Option<f64>,
        located: Option<&Arc<FrameCache>>,
    ) -> Result<Vec<Fact>> {
        let names: Vec<String> = match store {
            Some(s) => self
                .stores
                .contains_key(s)
                .then(|| s.to_owned())
                .into_iter()
                .collect(),
            None => self.stores.keys().cloned().collect(),
        };
        let mut out = Vec::new();
        for name in names {
            let sealed = self.stores[&name].sealed.clone();
            let store_name: Arc<str> = Arc::from(name.as_str());
            let mut bad = Vec::new();
            for s in &sealed {
                if since.is_some_and(|t| s.f64_field("max_timestamp").is_some_and(|m| m < t)) {
                    continue;
                }
                if as_of.is_some_and(|t| s.f64_field("min_timestamp").is_some_and(|m| m > t)) {
                    continue;
                }
                if let Some(cache) = located {
                    // Verified against its manifest when the directory was opened.
                    if let Some(facts) = index_file::read(&s.path, &s.manifest).and_then(|i| {
                        index_file::located_facts(&s.path, store_name.clone(), i, cache.clone())
                    }) {
                        out.extend(facts);
                        continue;
                    }
                }
                let bytes = fs::read(&s.path).unwrap_or_default();
                let d = decode_any(&bytes, &s.path.to_string_lossy());
                if d.corrupt.is_some()
                    || d.torn.is_some()
                    || bytes.len() as u64 != s.u64_field("byte_size")
                    || d.facts.len() as u64 != s.u64_field("fact_count")
                {
                    bad.push(s.clone());
                    continue;
                }
                if located.is_some() && !d.legacy_compact && !d.legacy_json {
                    let _ = index_file::write(&*self.fs, &s.path, &bytes);
                }
                out.extend(d.facts);
            }
            for s in bad {
                let r = self.quarantine(
                    &name,
                    &s.path,
                    Some(&s.manifest),
                    "ManifestMismatch",
                    "segment no longer matches its manifest",
                )?;
                let segs = self.stores.get_mut(&name).expect("exists");
                segs.sealed.retain(|x| x.path != s.path);
                segs.quarantined.push(r);
            }
            out.extend(self.live_facts(&name)?);
        }
        // Stable: a batch's facts keep their order; duplicates (a fact carried forward
        // and still in its old segment after a crash) appear once.
        out.sort_by_key(|f| f.transaction_time());
        let mut seen = HashSet::with_capacity(out.len());
        out.retain(|f| seen.insert(f.id()));
        Ok(out)
    }

    /// Segments on record (sealed and live) over every store.
    pub fn segment_count(&self) -> usize {
        self.stores
            .values()
            .map(|s| s.sealed.len() + s.live.is_some() as usize)
            .sum()
    }

    /// The names of the stores that have a directory.
    pub fn store_names(&self) -> Vec<String> {
        self.stores.keys().cloned().collect()
    }

    // ------------------------------------------------------------------ retention

    /// Sets the segment retention of a store (`permanent` removes it).
    pub fn set_retention(&mut self, store: &str, p: RetentionPolicy) {
        self.opts.retention.insert(store.to_owned(), p);
    }

    /// Purges, per the retention policies, the sealed segments of `store` (or of every
    /// store): `rolling_window` those whose `max_timestamp` is older than now minus the
    /// duration, `ephemeral` all but the newest sealed segment. The live segment is
    /// never purged. Each purge writes a receipt (`*.wal.purged.json`: the manifest plus
    /// `purged_at`, `purge_strategy`, `purge_duration`, `segment_path`, `reason`) before
    /// the segment and manifest are removed. O(segments): no segment is read.
    pub fn purge(&mut self, store: Option<&str>) -> Result<Vec<Json>> {
        self.purge_keeping(store, |_, _| Ok(Vec::new()))
    }

    /// [`SegmentedBackend::purge`] that first carries forward the facts `keep` picks from
    /// each doomed segment (written to the store's live segment with their ids, times and
    /// causations unchanged). A ledger uses it to keep the latest fact of every key (and
    /// to record the changefeed sequences the segment takes with it; see `sequences`).
    pub(crate) fn purge_keeping(
        &mut self,
        store: Option<&str>,
        mut keep: impl FnMut(&SegmentedBackend, &Path) -> Result<Vec<Fact>>,
    ) -> Result<Vec<Json>> {
        let names: Vec<String> = match store {
            Some(s) => vec![s.to_owned()],
            None => self.stores.keys().cloned().collect(),
        };
        let now = now_secs();
        let mut receipts = Vec::new();
        for name in names {
            let Some(policy) = self.opts.strategy_of(&name) else {
                continue;
            };
            let Some(segs) = self.stores.get(&name) else {
                continue;
            };
            let mut doomed: Vec<(Sealed, String)> = Vec::new();
            match policy.strategy() {
                Strategy::Ephemeral => {
                    let newest = segs.sealed.iter().map(|s| s.number).max();
                    for s in &segs.sealed {
                        if Some(s.number) != newest {
                            doomed.push((
                                s.clone(),
                                "ephemeral: only the newest sealed segment is kept".into(),
                            ));
                        }
                    }
                }
                Strategy::RollingWindow => {
                    let d = policy.duration().unwrap_or(0.0);
                    for s in &segs.sealed {
                        if let Some(m) = s.f64_field("max_timestamp") {
                            if m < now - d {
                                doomed.push((
                                    s.clone(),
                                    format!(
                                        "rolling_window: max_timestamp {m} is older than the {d}s window"
                                    ),
                                ));
                            }
                        }
                    }
                }
                Strategy::Permanent => {}
            }
            for (s, reason) in doomed {
                let carried = keep(self, &s.path)?;
                if !carried.is_empty() {
                    self.append_store_as(&name, &carried, true, self.direct())?;
                }
                let mut r = s.manifest.clone();
                r.insert("purged_at".into(), json!(now_secs()));
                r.insert("purge_strategy".into(), json!(policy.strategy().name()));
                r.insert("purge_duration".into(), ts_json(policy.duration()));
                r.insert("segment_path".into(), json!(s.path.to_string_lossy()));
                r.insert("reason".into(), json!(reason));
                if !carried.is_empty() {
                    r.insert("carried_forward".into(), json!(carried.len()));
                }
                let r = Json::Object(r);
                self.write_json_atomic(&side(&s.path, PURGED_SUFFIX), &r)?;
                self.fs
                    .remove_file(&s.path)
                    .map_err(io_err(format!("removing {}", s.path.display())))?;
                let _ = self.fs.remove_file(&side(&s.path, MANIFEST_SUFFIX));
                let _ = self.fs.remove_file(&index_file::index_path(&s.path));
                let dir = crate::ledger::fs::parent_dir(&s.path);
                let _ = self.fs.sync_dir(dir);
                let segs = self.stores.get_mut(&name).expect("exists");
                segs.sealed.retain(|x| x.path != s.path);
                segs.purged.push(r.clone());
                receipts.push(r);
            }
        }
        Ok(receipts)
    }

    /// Facts of one sealed segment (for `purge_keeping`).
    pub(crate) fn segment_facts(path: &Path) -> Result<Vec<Fact>> {
        let bytes = fs::read(path).map_err(io_err(format!("reading {}", path.display())))?;
        Ok(decode_any(&bytes, &path.to_string_lossy()).facts)
    }

    /// Purge receipts, oldest first: of `store` (or all), with `purged_at` in
    /// [`since`, `until`], at most `limit`.
    pub fn purge_receipts(
        &self,
        store: Option<&str>,
        since: Option<f64>,
        until: Option<f64>,
        limit: Option<usize>,
    ) -> Vec<Json> {
        let mut v: Vec<Json> = self
            .stores
            .iter()
            .filter(|(n, _)| store.is_none_or(|s| s == n.as_str()))
            .flat_map(|(_, s)| s.purged.iter().cloned())
            .filter(|r| {
                let t = r.get("purged_at").and_then(Json::as_f64).unwrap_or(0.0);
                since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
            })
            .collect();
        v.sort_by(|a, b| {
            let t = |r: &Json| r.get("purged_at").and_then(Json::as_f64).unwrap_or(0.0);
            t(a).total_cmp(&t(b))
        });
        if let Some(l) = limit {
            v.truncate(l);
        }
        v
    }

    /// Quarantine receipts of `store` (or all), oldest first.
    pub fn quarantine_receipts(&self, store: Option<&str>) -> Vec<Json> {
        let mut v: Vec<Json> = self
            .stores
            .iter()
            .filter(|(n, _)| store.is_none_or(|s| s == n.as_str()))
            .flat_map(|(_, s)| s.quarantined.iter().cloned())
            .collect();
        v.sort_by(|a, b| {
            let t = |r: &Json| {
                r.get("quarantined_at")
                    .and_then(Json::as_f64)
                    .unwrap_or(0.0)
            };
            t(a).total_cmp(&t(b))
        });
        v
    }

    // ------------------------------------------------------------------ reports

    /// `{"policy", "sync", "stores" => {s => {"codec", "buffered_count", "facts_on_disk",
    /// "durability" => "buffered" | "flushed"}}}`: what a crash would lose now. Facts of
    /// the frames codec are never buffered; the compact codec's buffer is written per the
    /// flush policy. `sync` is the durability mode (`fsync`: what is on disk is on
    /// stable storage; `flush`/`none`: it survives a process crash, not power loss).
    pub fn durability_snapshot(&self) -> Json {
        let mut stores = Map::new();
        for (n, s) in &self.stores {
            let (codec, buffered, on_disk) = match &s.live {
                Some(l) => (
                    l.codec,
                    l.buffer.len() as u64 + l.out.unwritten_facts(),
                    l.on_disk - l.out.unwritten_facts(),
                ),
                None => (self.opts.codec_of(n), 0, 0),
            };
            stores.insert(
                n.clone(),
                json!({
                    "codec": codec.name(),
                    "buffered_count": buffered,
                    "facts_on_disk": on_disk,
                    "durability": if buffered > 0 { "buffered" } else { "flushed" },
                }),
            );
        }
        json!({
            "policy": self.opts.flush.name(),
            "sync": self.opts.durability.name(),
            "stores": stores,
        })
    }

    fn store_stats(&self, s: &StoreSegs, segments: bool) -> Json {
        let mut codecs: Vec<String> = s.sealed.iter().map(Sealed::codec).collect();
        let mut byte_size = 0u64;
        let mut fact_count = 0u64;
        let mut lo: Option<f64> = None;
        let mut hi: Option<f64> = None;
        let mut list = Vec::new();
        let mut widen = |a: Option<f64>, b: Option<f64>| {
            if let Some(a) = a {
                lo = Some(lo.map_or(a, |l| l.min(a)));
            }
            if let Some(b) = b {
                hi = Some(hi.map_or(b, |h| h.max(b)));
            }
        };
        for x in &s.sealed {
            byte_size += x.u64_field("byte_size");
            fact_count += x.u64_field("fact_count");
            widen(x.f64_field("min_timestamp"), x.f64_field("max_timestamp"));
            if segments {
                let mut m = x.manifest.clone();
                m.insert("path".into(), json!(x.path.to_string_lossy()));
                list.push(Json::Object(m));
            }
        }
        if let Some(l) = &s.live {
            codecs.push(l.codec.name().to_owned());
            byte_size += l.out.len();
            let n = l.on_disk + l.buffer.len() as u64;
            fact_count += n;
            let (bl, bh) = min_max(&l.buffer);
            let lmin = [l.min_ts, bl].into_iter().flatten().reduce(f64::min);
            let lmax = [l.max_ts, bh].into_iter().flatten().reduce(f64::max);
            widen(lmin, lmax);
            if segments {
                let store = l
                    .path
                    .parent()
                    .and_then(Path::parent)
                    .and_then(Path::file_name)
                    .map(|s| s.to_string_lossy().trim_start_matches("store=").to_owned())
                    .unwrap_or_default();
                list.push(json!({
                    "segment_id": format!("{store}/{}/{:06}", l.bucket, l.number),
                    "store": store,
                    "codec": l.codec.name(),
                    "fact_count": n,
                    "byte_size": l.out.len(),
                    "min_timestamp": ts_json(lmin),
                    "max_timestamp": ts_json(lmax),
                    "sealed": false,
                    "sealed_at": Json::Null,
                    "path": l.path.to_string_lossy(),
                }));
            }
        }
        codecs.sort();
        codecs.dedup();
        let mut o = json!({
            "segment_count": s.sealed.len() + s.live.is_some() as usize,
            "sealed_count": s.sealed.len(),
            "live_count": s.live.is_some() as usize,
            "codecs": codecs,
            "byte_size": byte_size,
            "fact_count": fact_count,
            "min_timestamp": ts_json(lo),
            "max_timestamp": ts_json(hi),
            "purge_receipt_count": s.purged.len(),
            "quarantine_receipt_count": s.quarantined.len(),
        });
        if segments {
            o["segments"] = Json::Array(list);
        }
        o
    }

    fn stats(&self, store: Option<&str>, segments: bool) -> Json {
        let mut stores = Map::new();
        for (n, s) in &self.stores {
            if store.is_some_and(|x| x != n) {
                continue;
            }
            stores.insert(n.clone(), self.store_stats(s, segments));
        }
        json!({
            "schema_version": 1,
            "generated_at": now_secs(),
            "stores": stores,
        })
    }

    /// `{"schema_version" => 1, "generated_at", "stores" => {s => {"segment_count",
    /// "sealed_count", "live_count", "codecs", "byte_size", "fact_count",
    /// "min_timestamp", "max_timestamp", "purge_receipt_count",
    /// "quarantine_receipt_count"}}}` (string keys, as the reference).
    pub fn storage_stats(&self, store: Option<&str>) -> Json {
        self.stats(store, false)
    }

    /// [`SegmentedBackend::storage_stats`] with each store's `"segments"`: every sealed
    /// segment's manifest and the live segment's entry (`"sealed" => false`).
    pub fn segment_manifest(&self, store: Option<&str>) -> Json {
        self.stats(store, true)
    }
}

impl Drop for SegmentedBackend {
    /// Dropped without `close`: writes out the compact codec's buffers (best effort), so
    /// a dropped handle loses no acknowledged fact; segments stay unsealed and are
    /// resumed by the next open. A copy in a process forked from the opener writes
    /// nothing (the files are the parent's).
    fn drop(&mut self) {
        if self.closed || self.pid != std::process::id() {
            return;
        }
        let mut frame = std::mem::take(&mut self.frame);
        for s in self.stores.values_mut() {
            if let Some(l) = s.live.as_mut() {
                let _ = flush_buffer(l, &mut frame, self.opts.durability);
                let _ = l.out.write_waiting();
            }
        }
    }
}

enum Unsealed {
    Live(Live),
    Sealed(Sealed),
    Quarantined(Json),
    Empty,
}

fn write_out(live: &mut Live, frame: &[u8], facts: &[Fact], durability: Durability) -> Result<()> {
    live.out.append(frame, facts.len() as u64, durability)?;
    live.on_disk += facts.len() as u64;
    for f in facts {
        let t = f.transaction_time().as_secs_f64();
        live.min_ts = Some(live.min_ts.map_or(t, |m| m.min(t)));
        live.max_ts = Some(live.max_ts.map_or(t, |m| m.max(t)));
    }
    Ok(())
}

fn flush_buffer(live: &mut Live, frame: &mut Vec<u8>, durability: Durability) -> Result<()> {
    if live.buffer.is_empty() {
        return Ok(());
    }
    let facts = std::mem::take(&mut live.buffer);
    frame.clear();
    let r = encode_compact(frame, &facts).and_then(|_| write_out(live, frame, &facts, durability));
    if r.is_err() {
        live.buffer = facts;
    }
    r
}
