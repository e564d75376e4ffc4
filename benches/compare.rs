//! Side-by-side comparison: igniter-ledger vs SQLite (rusqlite, WAL) vs redb, on one fact
//! workload, at matched durability, interleaved, with growth from 10k to 1M+ facts.
//!
//! ```text
//! cargo bench --bench compare                      # full run (see BENCHMARKS.md)
//! cargo bench --bench compare -- --quick           # tiny sizes, a few seconds (CI smoke)
//! IGNITER_BENCH_QUICK=1 cargo bench --bench compare
//! cargo bench --bench compare -- --sizes 10k,100k,1m,10m --rounds 3 --out report.md
//! cargo bench --bench compare -- --section writes|growth|limits --engine igniter
//! ```
//!
//! Nothing here asserts anything about speed. The harness does check that every engine
//! answers the workload's queries the same way (counts, versions) before timing them.
//!
//! ## The workload
//! A fact is `(id, store, key, value, value_hash, causation, tx, valid_time, schema)`.
//! Every engine stores the same facts: the value is the ledger's MessagePack encoding, the
//! hash its blake3 over the canonical form, the causation the previous fact of the key
//! (looked up through the engine's own index on every write), `tx` strictly increasing.
//! - `tasks`: keys written with `write` (value `{status:, title:, n:, owner:}`); one key
//!   with ~1,000 versions, 100 keys with 10 versions, 100 keys with `status: :flagged`
//!   (the scope), the rest with one version.
//! - `events`: appends `{order_id:, kind:, amount:, seq:}`, 100 per order, interleaved
//!   with everything else; a partition slice is one order (100 facts).
//!
//! Peers get the indexes these reads need: SQLite `facts(store,key,tx)`,
//! `facts(store,part,seq)`, `facts(store,status,key)`; redb tables keyed
//! `(store,key,tx)`, `(store,part,seq)`, `(store,status,key,tx)` beside `seq -> record`.
//! SQLite runs with a 256 MiB page cache (`cache_size`), redb with its default (1 GiB).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use igniter_ledger::__private::codec;
use igniter_ledger::{
    AccessPath, Append, Batch, Durability, HistoryQuery, LedgerStore, MapKey, OpenOptions,
    PartitionQuery, Read, Timestamp, Value, Write,
};

// ------------------------------------------------------------------ allocation counting

/// Counts live bytes allocated through the Rust allocator (igniter-ledger and redb; SQLite
/// allocates with libc malloc and reports through `sqlite3_memory_used`).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            if new >= l.size() {
                LIVE.fetch_add(new - l.size(), Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

// ------------------------------------------------------------------ configuration

#[derive(Clone, Debug)]
struct Cfg {
    quick: bool,
    sizes: Vec<usize>,
    rounds: usize,
    dir: PathBuf,
    sections: Vec<String>,
    engines: Vec<String>,
    out: Option<PathBuf>,
    /// Ops per timed trial.
    fsync_ops: usize,
    fast_ops: usize,
    fsync_batches: usize,
    fast_batches: usize,
    read_ops: usize,
    slice_ops: usize,
    scope_ops: usize,
}

fn parse_size(s: &str) -> usize {
    let s = s.trim().to_ascii_lowercase();
    let (num, mul) = if let Some(n) = s.strip_suffix('m') {
        (n, 1_000_000)
    } else if let Some(n) = s.strip_suffix('k') {
        (n, 1_000)
    } else {
        (s.as_str(), 1)
    };
    num.parse::<usize>().expect("size like 10k, 1m or 5000") * mul
}

fn parse_args() -> Cfg {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env_quick = std::env::var("IGNITER_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    // `cargo test --benches` runs bench targets with `--test`: treat it as the smoke mode.
    let quick = env_quick || args.iter().any(|a| a == "--quick" || a == "--test");
    let mut cfg = Cfg {
        quick,
        sizes: if quick {
            vec![2_000]
        } else {
            vec![10_000, 100_000, 1_000_000]
        },
        rounds: if quick { 1 } else { 3 },
        dir: std::env::var_os("IGNITER_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir),
        sections: vec!["limits".into(), "writes".into(), "growth".into()],
        engines: vec![],
        out: None,
        fsync_ops: if quick { 20 } else { 1_000 },
        fast_ops: if quick { 200 } else { 20_000 },
        fsync_batches: if quick { 2 } else { 20 },
        fast_batches: if quick { 2 } else { 50 },
        read_ops: if quick { 200 } else { 20_000 },
        slice_ops: if quick { 20 } else { 2_000 },
        scope_ops: if quick { 5 } else { 300 },
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let mut val = || {
            i += 1;
            args.get(i).cloned().unwrap_or_default()
        };
        match a {
            "--sizes" => cfg.sizes = val().split(',').map(parse_size).collect(),
            "--rounds" => cfg.rounds = val().parse().expect("--rounds N"),
            "--dir" => cfg.dir = PathBuf::from(val()),
            "--section" => cfg.sections = val().split(',').map(str::to_owned).collect(),
            "--engine" => cfg.engines = val().split(',').map(str::to_owned).collect(),
            "--out" => cfg.out = Some(PathBuf::from(val())),
            _ => {} // cargo passes --bench; ignore what we do not know
        }
        i += 1;
    }
    if std::env::var("IGNITER_BENCH_10M").is_ok_and(|v| v == "1")
        && !cfg.sizes.contains(&10_000_000)
    {
        cfg.sizes.push(10_000_000);
    }
    cfg
}

impl Cfg {
    fn section(&self, s: &str) -> bool {
        self.sections.iter().any(|x| x == s)
    }
    fn engine(&self, e: &str) -> bool {
        self.engines.is_empty() || self.engines.iter().any(|x| e.starts_with(x.as_str()))
    }
}

// ------------------------------------------------------------------ workload

#[derive(Clone, Debug)]
enum In {
    Write {
        store: &'static str,
        key: String,
        value: Value,
    },
    Append {
        store: &'static str,
        value: Value,
    },
}

const TASKS: &str = "tasks";
const EVENTS: &str = "events";
const PART_KEY: &str = "order_id";
const FLAGGED: &str = "flagged";

fn task_value(key: &str, n: i64, status: &str) -> Value {
    let h = key
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    Value::map([
        (MapKey::sym("status"), Value::sym(status)),
        (MapKey::sym("title"), Value::from(format!("Task {key}"))),
        (MapKey::sym("n"), Value::Int(n)),
        (
            MapKey::sym("owner"),
            Value::from(format!("user-{}", h % 97)),
        ),
    ])
}

fn event_value(order: usize, seq: i64) -> Value {
    const KINDS: [&str; 4] = ["created", "paid", "packed", "shipped"];
    Value::map([
        (MapKey::sym("order_id"), Value::from(format!("o-{order}"))),
        (MapKey::sym("kind"), Value::sym(KINDS[seq as usize % 4])),
        (
            MapKey::sym("amount"),
            Value::Float(order as f64 * 0.5 + seq as f64),
        ),
        (MapKey::sym("seq"), Value::Int(seq)),
    ])
}

/// The shape of a ledger of `n` facts.
#[derive(Clone, Copy, Debug)]
struct Shape {
    n: usize,
    deep: usize,
    d10_keys: usize,
    flagged: usize,
    orders: usize,
    singles: usize,
}

impl Shape {
    fn new(n: usize) -> Shape {
        let deep = (n / 10).min(1_000);
        let d10_keys = (n / 100).min(100);
        let flagged = (n / 100).min(100);
        let orders = (n / 2 / 100).max(1);
        let events = orders * 100;
        let singles = n.saturating_sub(deep + d10_keys * 10 + flagged + events);
        Shape {
            n,
            deep,
            d10_keys,
            flagged,
            orders,
            singles,
        }
    }
}

/// Every fact of the ledger, in a fixed shuffled order (versions of a key in order).
fn load_plan(shape: Shape) -> Vec<(u8, u32)> {
    let mut plan: Vec<(u8, u32)> = Vec::with_capacity(shape.n);
    plan.extend((0..shape.deep).map(|_| (0u8, 0u32)));
    for j in 0..shape.d10_keys {
        plan.extend((0..10).map(|_| (1u8, j as u32)));
    }
    plan.extend((0..shape.flagged).map(|j| (2u8, j as u32)));
    for o in 0..shape.orders {
        plan.extend((0..100).map(|_| (3u8, o as u32)));
    }
    plan.extend((0..shape.singles).map(|i| (4u8, i as u32)));
    let mut rng = fastrand::Rng::with_seed(42);
    rng.shuffle(&mut plan);
    plan
}

/// Materializes the plan lazily, numbering versions and event sequence numbers in order.
struct Materializer {
    deep_v: i64,
    d10_v: Vec<i64>,
    order_seq: Vec<i64>,
}

impl Materializer {
    fn new(shape: Shape) -> Self {
        Materializer {
            deep_v: 0,
            d10_v: vec![0; shape.d10_keys],
            order_seq: vec![0; shape.orders],
        }
    }
    fn item(&mut self, (kind, a): (u8, u32)) -> In {
        let a = a as usize;
        match kind {
            0 => {
                let v = self.deep_v;
                self.deep_v += 1;
                In::Write {
                    store: TASKS,
                    key: "deep-0".into(),
                    value: task_value("deep-0", v, "open"),
                }
            }
            1 => {
                let v = self.d10_v[a];
                self.d10_v[a] += 1;
                let key = format!("d10-{a}");
                let value = task_value(&key, v, "open");
                In::Write {
                    store: TASKS,
                    key,
                    value,
                }
            }
            2 => {
                let key = format!("flag-{a}");
                let value = task_value(&key, 0, FLAGGED);
                In::Write {
                    store: TASKS,
                    key,
                    value,
                }
            }
            3 => {
                let s = self.order_seq[a];
                self.order_seq[a] += 1;
                In::Append {
                    store: EVENTS,
                    value: event_value(a, s),
                }
            }
            _ => {
                let key = format!("task-{a}");
                let value = task_value(&key, 0, ["open", "done"][a % 2]);
                In::Write {
                    store: TASKS,
                    key,
                    value,
                }
            }
        }
    }
}

// ------------------------------------------------------------------ engines

/// Durability tiers; each engine is configured to the same promise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tier {
    /// A commit returns once it is on stable storage.
    Fsync,
    /// write(2) per commit, no fsync: survives a process crash, not power loss.
    Flush,
    /// Nothing synced per commit (buffered).
    NoSync,
    /// No file at all.
    Memory,
}

impl Tier {
    fn name(self) -> &'static str {
        match self {
            Tier::Fsync => "fsync per commit",
            Tier::Flush => "write(2) per commit, no fsync",
            Tier::NoSync => "no sync",
            Tier::Memory => "in memory",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Igniter,
    SqliteFull,
    SqliteNormal,
    SqliteOff,
    Redb,
}

impl Kind {
    fn label(self, tier: Tier) -> String {
        match (self, tier) {
            (Kind::Igniter, Tier::Memory) => "igniter (memory)".into(),
            (Kind::Igniter, Tier::Fsync) => "igniter (fsync)".into(),
            (Kind::Igniter, Tier::Flush) => "igniter (flush)".into(),
            (Kind::Igniter, Tier::NoSync) => "igniter (none)".into(),
            (Kind::SqliteFull, _) => "sqlite WAL sync=FULL".into(),
            (Kind::SqliteNormal, _) => "sqlite WAL sync=NORMAL".into(),
            (Kind::SqliteOff, Tier::Memory) => "sqlite :memory:".into(),
            (Kind::SqliteOff, _) => "sqlite WAL sync=OFF".into(),
            (Kind::Redb, Tier::Memory) => "redb (in-memory backend)".into(),
            (Kind::Redb, Tier::Fsync) => "redb (Immediate)".into(),
            (Kind::Redb, _) => "redb (Durability::None)".into(),
        }
    }
    fn short(self) -> &'static str {
        match self {
            Kind::Igniter => "igniter",
            Kind::SqliteFull | Kind::SqliteNormal | Kind::SqliteOff => "sqlite",
            Kind::Redb => "redb",
        }
    }
}

fn engines_for(tier: Tier) -> Vec<Kind> {
    match tier {
        Tier::Fsync => vec![Kind::Igniter, Kind::SqliteFull, Kind::Redb],
        Tier::Flush => vec![Kind::Igniter, Kind::SqliteNormal],
        Tier::NoSync => vec![Kind::Igniter, Kind::SqliteOff, Kind::Redb],
        Tier::Memory => vec![Kind::Igniter, Kind::SqliteOff, Kind::Redb],
    }
}

/// What every engine can do.
trait Db: Send {
    /// One fact, one commit. Returns its transaction time (µs).
    fn put(&mut self, f: In) -> i64;
    /// Facts in one atomic commit.
    fn put_batch(&mut self, fs: Vec<In>) -> i64;
    /// The value of (store, key), latest or as of `as_of` (µs).
    fn get(&mut self, store: &str, key: &str, as_of: Option<i64>) -> Option<Value>;
    /// Transaction times of the key's facts, oldest first.
    fn versions(&mut self, store: &str, key: &str) -> Vec<i64>;
    /// Decoded values of one partition slice, in commit order.
    fn partition(&mut self, store: &str, value: &str) -> Vec<Value>;
    /// (key, value) of the latest fact per key whose status is `status`, by key.
    fn scope(&mut self, store: &str, status: &str, as_of: Option<i64>) -> Vec<(String, Value)>;
    /// Another handle for a concurrent writer, if the engine has its own concurrency.
    fn handle(&self) -> Option<Box<dyn Db>>;
    /// Bytes on disk.
    fn disk_bytes(&self) -> u64;
    /// Heap bytes the engine reports itself (SQLite), if any.
    fn own_heap(&self) -> Option<u64> {
        None
    }
    /// The ledger, for igniter-only steps (checkpoint, registration timing).
    fn as_igniter(&self) -> Option<&LedgerStore> {
        None
    }
    /// Releases files (clean close).
    fn close(self: Box<Self>);
}

/// A strictly increasing microsecond clock for the peers (the ledger has its own).
static PEER_CLOCK: AtomicI64 = AtomicI64::new(0);

fn peer_tick() -> i64 {
    let now = Timestamp::now().as_micros();
    let mut last = PEER_CLOCK.load(Ordering::Relaxed);
    loop {
        let t = if now > last { now } else { last + 1 };
        match PEER_CLOCK.compare_exchange_weak(last, t, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return t,
            Err(x) => last = x,
        }
    }
}

/// A UUID v7-like id from a time (peers need fact ids too).
fn peer_id(tx: i64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&(tx as u64).to_be_bytes());
    b[8..16].copy_from_slice(&fastrand::u64(..).to_be_bytes());
    b[6] = 0x70 | (b[6] & 0x0f);
    b[8] = 0x80 | (b[8] & 0x3f);
    b
}

/// What a peer stores per fact (same content as the ledger's record).
struct PeerFact {
    id: [u8; 16],
    store: &'static str,
    key: String,
    tx: i64,
    value: Vec<u8>,
    hash: [u8; 32],
    part: Option<String>,
    status: Option<String>,
}

fn peer_fact(f: In) -> PeerFact {
    let (store, key, value, is_append) = match f {
        In::Write { store, key, value } => (store, key, value, false),
        In::Append { store, value } => (store, uuid::Uuid::new_v4().to_string(), value, true),
    };
    let e = codec::encode_value(&value);
    let part = if is_append {
        value
            .get_sym(PART_KEY)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    } else {
        None
    };
    let status = if is_append {
        None
    } else {
        match value.get_sym("status") {
            Some(Value::Sym(s)) => Some(s.clone()),
            _ => None,
        }
    };
    PeerFact {
        id: [0; 16],
        store,
        key,
        tx: 0,
        value: e.bytes,
        hash: e.hash,
        part,
        status,
    }
}

// ---------------------------------------------------------------- igniter-ledger

struct Igniter {
    ledger: LedgerStore,
}

fn igniter_durability(tier: Tier) -> Durability {
    match tier {
        Tier::Fsync => Durability::Fsync,
        Tier::Flush => Durability::Flush,
        _ => Durability::None,
    }
}

fn igniter_register(ledger: &LedgerStore) {
    ledger
        .register_path(
            AccessPath::scope(TASKS, FLAGGED).filter(MapKey::sym("status"), Value::sym(FLAGGED)),
        )
        .expect("register scope");
}

impl Igniter {
    fn open(path: Option<&Path>, tier: Tier, register: bool) -> Igniter {
        let ledger = match path {
            None => LedgerStore::memory(),
            Some(p) => {
                LedgerStore::open_with(p, OpenOptions::new().durability(igniter_durability(tier)))
                    .expect("open ledger")
            }
        };
        if register {
            // Writes maintain the scope, as the peers maintain their status index.
            igniter_register(&ledger);
        }
        Igniter { ledger }
    }
    fn op(f: In) -> igniter_ledger::Op {
        match f {
            In::Write { store, key, value } => {
                igniter_ledger::Op::Write(Write::new(store, key, value))
            }
            In::Append { store, value } => {
                igniter_ledger::Op::Append(Append::new(store, value).partition_key(PART_KEY))
            }
        }
    }
}

impl Db for Igniter {
    fn put(&mut self, f: In) -> i64 {
        let fact = match f {
            In::Write { store, key, value } => self.ledger.write(Write::new(store, key, value)),
            In::Append { store, value } => self
                .ledger
                .append(Append::new(store, value).partition_key(PART_KEY)),
        }
        .expect("write");
        fact.transaction_time().as_micros()
    }
    fn put_batch(&mut self, fs: Vec<In>) -> i64 {
        let mut b = Batch::new();
        for f in fs {
            b.push(Igniter::op(f));
        }
        let facts = self.ledger.commit(b).expect("commit");
        facts.last().map_or(0, |f| f.transaction_time().as_micros())
    }
    fn get(&mut self, store: &str, key: &str, as_of: Option<i64>) -> Option<Value> {
        self.ledger
            .read(Read::new(store, key).as_of_opt(as_of.map(Timestamp::from_micros)))
            .expect("read")
    }
    fn versions(&mut self, store: &str, key: &str) -> Vec<i64> {
        self.ledger
            .history_raw(HistoryQuery::new(store).key(key))
            .iter()
            .map(|f| f.transaction_time().as_micros())
            .collect()
    }
    fn partition(&mut self, store: &str, value: &str) -> Vec<Value> {
        self.ledger
            .history_partition(PartitionQuery::new(store, PART_KEY, value))
            .expect("partition")
            .iter()
            .map(|f| f.value())
            .collect()
    }
    fn scope(&mut self, store: &str, status: &str, as_of: Option<i64>) -> Vec<(String, Value)> {
        assert_eq!(status, FLAGGED);
        self.ledger
            .query(store, FLAGGED, as_of.map(Timestamp::from_micros))
            .expect("query")
            .iter()
            .map(|f| (f.key().to_owned(), f.value()))
            .collect()
    }
    fn handle(&self) -> Option<Box<dyn Db>> {
        Some(Box::new(Igniter {
            ledger: self.ledger.clone(),
        }))
    }
    fn disk_bytes(&self) -> u64 {
        self.ledger.path().map_or(0, |p| {
            let snap = igniter_ledger::__private::snapshot_path(p);
            file_len(p) + file_len(&snap)
        })
    }
    fn as_igniter(&self) -> Option<&LedgerStore> {
        Some(&self.ledger)
    }
    fn close(self: Box<Self>) {
        self.ledger.close().expect("close");
    }
}

fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map_or(0, |m| m.len())
}

// ---------------------------------------------------------------- SQLite

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS facts(
  seq INTEGER PRIMARY KEY,
  id BLOB NOT NULL,
  store TEXT NOT NULL,
  key TEXT NOT NULL,
  tx INTEGER NOT NULL,
  value BLOB NOT NULL,
  value_hash BLOB NOT NULL,
  causation BLOB,
  valid_time REAL,
  schema_version INTEGER NOT NULL,
  part TEXT,
  status TEXT
);
CREATE INDEX IF NOT EXISTS facts_key ON facts(store, key, tx);
CREATE INDEX IF NOT EXISTS facts_part ON facts(store, part, seq) WHERE part IS NOT NULL;
CREATE INDEX IF NOT EXISTS facts_status ON facts(store, status, key) WHERE status IS NOT NULL;
";

const SQL_LATEST_ID: &str =
    "SELECT id FROM facts WHERE store = ?1 AND key = ?2 ORDER BY tx DESC LIMIT 1";
const SQL_INSERT: &str = "INSERT INTO facts(id, store, key, tx, value, value_hash, causation, valid_time, schema_version, part, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, 1, ?8, ?9)";
const SQL_GET: &str =
    "SELECT value FROM facts WHERE store = ?1 AND key = ?2 ORDER BY tx DESC LIMIT 1";
const SQL_GET_AS_OF: &str =
    "SELECT value FROM facts WHERE store = ?1 AND key = ?2 AND tx <= ?3 ORDER BY tx DESC LIMIT 1";
const SQL_VERSIONS: &str = "SELECT tx FROM facts WHERE store = ?1 AND key = ?2 ORDER BY tx";
const SQL_PART: &str = "SELECT value FROM facts WHERE store = ?1 AND part = ?2 ORDER BY seq";
const SQL_SCOPE: &str = "SELECT f.key, f.value FROM facts f WHERE f.store = ?1 AND f.status = ?2 AND f.tx = (SELECT max(g.tx) FROM facts g WHERE g.store = ?1 AND g.key = f.key) ORDER BY f.key";
const SQL_SCOPE_AS_OF: &str = "SELECT f.key, f.value FROM facts f WHERE f.store = ?1 AND f.status = ?2 AND f.tx <= ?3 AND f.tx = (SELECT max(g.tx) FROM facts g WHERE g.store = ?1 AND g.key = f.key AND g.tx <= ?3) ORDER BY f.key";

struct Sqlite {
    conn: rusqlite::Connection,
    path: Option<PathBuf>,
    sync: &'static str,
}

impl Sqlite {
    fn open(path: Option<&Path>, kind: Kind) -> Sqlite {
        let sync = match kind {
            Kind::SqliteFull => "FULL",
            Kind::SqliteNormal => "NORMAL",
            _ => "OFF",
        };
        let conn = match path {
            Some(p) => rusqlite::Connection::open(p).expect("sqlite open"),
            None => rusqlite::Connection::open_in_memory().expect("sqlite memory"),
        };
        if path.is_some() {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .expect("wal");
            assert_eq!(mode.to_ascii_lowercase(), "wal");
        }
        // A 256 MiB page cache (default: 2 MiB): the ledger keeps everything in memory,
        // so let SQLite keep its indexes there too.
        conn.execute_batch(&format!(
            "PRAGMA synchronous={sync}; PRAGMA cache_size=-262144;"
        ))
        .expect("pragmas");
        conn.busy_timeout(Duration::from_secs(60)).expect("busy");
        conn.execute_batch(SQLITE_SCHEMA).expect("schema");
        Sqlite {
            conn,
            path: path.map(Path::to_owned),
            sync,
        }
    }

    fn insert(tx: &rusqlite::Connection, mut f: PeerFact) -> rusqlite::Result<i64> {
        use rusqlite::OptionalExtension;
        let causation: Option<Vec<u8>> = if f.part.is_none() {
            tx.prepare_cached(SQL_LATEST_ID)?
                .query_row(rusqlite::params![f.store, f.key], |r| r.get(0))
                .optional()?
        } else {
            None
        };
        f.tx = peer_tick();
        f.id = peer_id(f.tx);
        tx.prepare_cached(SQL_INSERT)?.execute(rusqlite::params![
            &f.id[..],
            f.store,
            f.key,
            f.tx,
            f.value,
            &f.hash[..],
            causation,
            f.part,
            f.status
        ])?;
        Ok(f.tx)
    }
}

impl Db for Sqlite {
    fn put(&mut self, f: In) -> i64 {
        let pf = peer_fact(f);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("begin");
        let t = Sqlite::insert(&tx, pf).expect("insert");
        tx.commit().expect("commit");
        t
    }
    fn put_batch(&mut self, fs: Vec<In>) -> i64 {
        let pfs: Vec<PeerFact> = fs.into_iter().map(peer_fact).collect();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("begin");
        let mut t = 0;
        for pf in pfs {
            t = Sqlite::insert(&tx, pf).expect("insert");
        }
        tx.commit().expect("commit");
        t
    }
    fn get(&mut self, store: &str, key: &str, as_of: Option<i64>) -> Option<Value> {
        use rusqlite::OptionalExtension;
        let bytes: Option<Vec<u8>> = match as_of {
            None => self
                .conn
                .prepare_cached(SQL_GET)
                .expect("prep")
                .query_row(rusqlite::params![store, key], |r| r.get(0)),
            Some(t) => self
                .conn
                .prepare_cached(SQL_GET_AS_OF)
                .expect("prep")
                .query_row(rusqlite::params![store, key, t], |r| r.get(0)),
        }
        .optional()
        .expect("get");
        bytes.map(|b| codec::decode_value(&b).expect("decode"))
    }
    fn versions(&mut self, store: &str, key: &str) -> Vec<i64> {
        let mut st = self.conn.prepare_cached(SQL_VERSIONS).expect("prep");
        let rows = st
            .query_map(rusqlite::params![store, key], |r| r.get(0))
            .expect("versions");
        rows.map(|r| r.expect("row")).collect()
    }
    fn partition(&mut self, store: &str, value: &str) -> Vec<Value> {
        let mut st = self.conn.prepare_cached(SQL_PART).expect("prep");
        let mut rows = st.query(rusqlite::params![store, value]).expect("part");
        let mut out = Vec::with_capacity(100);
        while let Some(r) = rows.next().expect("row") {
            let b = r.get_ref(0).expect("col").as_blob().expect("blob");
            out.push(codec::decode_value(b).expect("decode"));
        }
        out
    }
    fn scope(&mut self, store: &str, status: &str, as_of: Option<i64>) -> Vec<(String, Value)> {
        let mut st = self
            .conn
            .prepare_cached(if as_of.is_some() {
                SQL_SCOPE_AS_OF
            } else {
                SQL_SCOPE
            })
            .expect("prep");
        let mut rows = match as_of {
            None => st.query(rusqlite::params![store, status]),
            Some(t) => st.query(rusqlite::params![store, status, t]),
        }
        .expect("scope");
        let mut out = Vec::new();
        while let Some(r) = rows.next().expect("row") {
            let k: String = r.get(0).expect("key");
            let b = r.get_ref(1).expect("col").as_blob().expect("blob");
            out.push((k, codec::decode_value(b).expect("decode")));
        }
        out
    }
    fn handle(&self) -> Option<Box<dyn Db>> {
        let p = self.path.as_ref()?;
        let kind = match self.sync {
            "FULL" => Kind::SqliteFull,
            "NORMAL" => Kind::SqliteNormal,
            _ => Kind::SqliteOff,
        };
        Some(Box::new(Sqlite::open(Some(p), kind)))
    }
    fn disk_bytes(&self) -> u64 {
        self.path.as_ref().map_or(0, |p| {
            let mut s = p.as_os_str().to_owned();
            s.push("-wal");
            file_len(p) + file_len(Path::new(&s))
        })
    }
    fn own_heap(&self) -> Option<u64> {
        // SAFETY: a plain read of SQLite's global memory counter.
        Some(unsafe { rusqlite::ffi::sqlite3_memory_used() } as u64)
    }
    fn close(self: Box<Self>) {
        self.conn.close().map_err(|(_, e)| e).expect("close");
    }
}

// ---------------------------------------------------------------- redb

use redb::{ReadableTable, TableDefinition};

const R_FACTS: TableDefinition<u64, &[u8]> = TableDefinition::new("facts");
const R_KEY: TableDefinition<(&str, &str, i64), u64> = TableDefinition::new("by_key");
const R_PART: TableDefinition<(&str, &str, u64), ()> = TableDefinition::new("by_part");
const R_STATUS: TableDefinition<(&str, &str, &str, i64), u64> = TableDefinition::new("by_status");

struct Redb {
    db: Arc<redb::Database>,
    path: Option<PathBuf>,
    durability: redb::Durability,
    seq: Arc<AtomicI64>,
}

/// `seq -> record`: id, tx, causation, hash, schema, valid, store, key, value.
fn redb_record(f: &PeerFact, causation: Option<[u8; 16]>) -> Vec<u8> {
    let mut r = Vec::with_capacity(16 + 8 + 16 + 32 + 4 + 8 + 4 + f.key.len() + f.value.len() + 8);
    r.extend_from_slice(&f.id);
    r.extend_from_slice(&f.tx.to_be_bytes());
    r.extend_from_slice(&causation.unwrap_or([0; 16]));
    r.extend_from_slice(&f.hash);
    r.extend_from_slice(&1u32.to_be_bytes());
    r.extend_from_slice(&f64::NAN.to_be_bytes());
    r.extend_from_slice(&(f.store.len() as u16).to_be_bytes());
    r.extend_from_slice(&(f.key.len() as u16).to_be_bytes());
    r.extend_from_slice(f.store.as_bytes());
    r.extend_from_slice(f.key.as_bytes());
    r.extend_from_slice(&f.value);
    r
}

fn redb_value(rec: &[u8]) -> Value {
    let sl = u16::from_be_bytes([rec[84], rec[85]]) as usize;
    let kl = u16::from_be_bytes([rec[86], rec[87]]) as usize;
    codec::decode_value(&rec[88 + sl + kl..]).expect("decode")
}

impl Redb {
    fn open(path: Option<&Path>, tier: Tier) -> Redb {
        let db = match path {
            Some(p) => redb::Database::create(p).expect("redb open"),
            None => redb::Builder::new()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .expect("redb memory"),
        };
        let w = db.begin_write().expect("w");
        {
            w.open_table(R_FACTS).expect("t");
            w.open_table(R_KEY).expect("t");
            w.open_table(R_PART).expect("t");
            w.open_table(R_STATUS).expect("t");
        }
        w.commit().expect("commit");
        let seq = {
            let r = db.begin_read().expect("r");
            let t = r.open_table(R_FACTS).expect("t");
            let last = t.last().expect("last").map_or(0, |(k, _)| k.value());
            last as i64
        };
        Redb {
            db: Arc::new(db),
            path: path.map(Path::to_owned),
            durability: match tier {
                Tier::Fsync | Tier::Memory => redb::Durability::Immediate,
                _ => redb::Durability::None,
            },
            seq: Arc::new(AtomicI64::new(seq)),
        }
    }

    fn commit(&self, fs: Vec<PeerFact>) -> i64 {
        let mut w = self.db.begin_write().expect("begin");
        w.set_durability(self.durability);
        let mut last = 0;
        {
            let mut facts = w.open_table(R_FACTS).expect("t");
            let mut by_key = w.open_table(R_KEY).expect("t");
            let mut by_part = w.open_table(R_PART).expect("t");
            let mut by_status = w.open_table(R_STATUS).expect("t");
            for mut f in fs {
                let causation = if f.part.is_none() {
                    let prev = by_key
                        .range(
                            (f.store, f.key.as_str(), i64::MIN)
                                ..=(f.store, f.key.as_str(), i64::MAX),
                        )
                        .expect("range")
                        .next_back()
                        .map(|e| e.expect("entry").1.value());
                    prev.map(|seq| {
                        let rec = facts.get(seq).expect("get").expect("fact");
                        let mut id = [0u8; 16];
                        id.copy_from_slice(&rec.value()[..16]);
                        id
                    })
                } else {
                    None
                };
                f.tx = peer_tick();
                f.id = peer_id(f.tx);
                let seq = self.seq.fetch_add(1, Ordering::Relaxed) as u64 + 1;
                facts
                    .insert(seq, redb_record(&f, causation).as_slice())
                    .expect("insert");
                by_key
                    .insert((f.store, f.key.as_str(), f.tx), seq)
                    .expect("insert");
                if let Some(p) = &f.part {
                    by_part
                        .insert((f.store, p.as_str(), seq), ())
                        .expect("insert");
                }
                if let Some(s) = &f.status {
                    by_status
                        .insert((f.store, s.as_str(), f.key.as_str(), f.tx), seq)
                        .expect("insert");
                }
                last = f.tx;
            }
        }
        w.commit().expect("commit");
        last
    }

    fn latest_at(
        t: &impl ReadableTable<(&'static str, &'static str, i64), u64>,
        store: &str,
        key: &str,
        as_of: i64,
    ) -> Option<(i64, u64)> {
        t.range((store, key, i64::MIN)..=(store, key, as_of))
            .expect("range")
            .next_back()
            .map(|e| {
                let (k, v) = e.expect("entry");
                (k.value().2, v.value())
            })
    }
}

impl Db for Redb {
    fn put(&mut self, f: In) -> i64 {
        self.commit(vec![peer_fact(f)])
    }
    fn put_batch(&mut self, fs: Vec<In>) -> i64 {
        self.commit(fs.into_iter().map(peer_fact).collect())
    }
    fn get(&mut self, store: &str, key: &str, as_of: Option<i64>) -> Option<Value> {
        let r = self.db.begin_read().expect("r");
        let by_key = r.open_table(R_KEY).expect("t");
        let (_, seq) = Redb::latest_at(&by_key, store, key, as_of.unwrap_or(i64::MAX))?;
        let facts = r.open_table(R_FACTS).expect("t");
        let rec = facts.get(seq).expect("get").expect("fact");
        Some(redb_value(rec.value()))
    }
    fn versions(&mut self, store: &str, key: &str) -> Vec<i64> {
        let r = self.db.begin_read().expect("r");
        let by_key = r.open_table(R_KEY).expect("t");
        by_key
            .range((store, key, i64::MIN)..=(store, key, i64::MAX))
            .expect("range")
            .map(|e| e.expect("entry").0.value().2)
            .collect()
    }
    fn partition(&mut self, store: &str, value: &str) -> Vec<Value> {
        let r = self.db.begin_read().expect("r");
        let by_part = r.open_table(R_PART).expect("t");
        let facts = r.open_table(R_FACTS).expect("t");
        let mut out = Vec::with_capacity(100);
        for e in by_part
            .range((store, value, 0u64)..=(store, value, u64::MAX))
            .expect("range")
        {
            let seq = e.expect("entry").0.value().2;
            let rec = facts.get(seq).expect("get").expect("fact");
            out.push(redb_value(rec.value()));
        }
        out
    }
    fn scope(&mut self, store: &str, status: &str, as_of: Option<i64>) -> Vec<(String, Value)> {
        let t = as_of.unwrap_or(i64::MAX);
        let r = self.db.begin_read().expect("r");
        let by_status = r.open_table(R_STATUS).expect("t");
        let by_key = r.open_table(R_KEY).expect("t");
        let facts = r.open_table(R_FACTS).expect("t");
        let mut out: Vec<(String, Value)> = Vec::new();
        for e in by_status
            .range((store, status, "", i64::MIN)..)
            .expect("range")
        {
            let (k, seq) = e.expect("entry");
            let (s, st, key, tx) = k.value();
            if s != store || st != status {
                break;
            }
            if tx > t {
                continue;
            }
            if Redb::latest_at(&by_key, store, key, t).map(|(x, _)| x) == Some(tx) {
                let rec = facts.get(seq.value()).expect("get").expect("fact");
                out.push((key.to_owned(), redb_value(rec.value())));
            }
        }
        out
    }
    fn handle(&self) -> Option<Box<dyn Db>> {
        Some(Box::new(Redb {
            db: self.db.clone(),
            path: self.path.clone(),
            durability: self.durability,
            seq: self.seq.clone(),
        }))
    }
    fn disk_bytes(&self) -> u64 {
        self.path.as_ref().map_or(0, |p| file_len(p))
    }
    fn close(self: Box<Self>) {
        drop(self);
    }
}

fn open_db(kind: Kind, tier: Tier, path: Option<&Path>) -> Box<dyn Db> {
    open_db_with(kind, tier, path, true)
}

fn open_db_with(kind: Kind, tier: Tier, path: Option<&Path>, register: bool) -> Box<dyn Db> {
    match kind {
        Kind::Igniter => Box::new(Igniter::open(path, tier, register)),
        Kind::Redb => Box::new(Redb::open(path, tier)),
        _ => Box::new(Sqlite::open(path, kind)),
    }
}

// ------------------------------------------------------------------ measuring

#[derive(Clone, Debug, Default)]
struct Trial {
    ops: u64,
    secs: f64,
    /// Per-op latencies (ns).
    lat: Vec<u64>,
}

impl Trial {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

/// Times `n` calls of `f`, one timestamp per call.
fn time_ops(n: usize, mut f: impl FnMut(usize)) -> Trial {
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    let mut prev = start;
    for i in 0..n {
        f(i);
        let now = Instant::now();
        lat.push((now - prev).as_nanos() as u64);
        prev = now;
    }
    Trial {
        ops: n as u64,
        secs: (prev - start).as_secs_f64(),
        lat,
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i]
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Results: (table, row) -> trials.
#[derive(Default)]
struct Results {
    trials: BTreeMap<(String, String), Vec<Trial>>,
    /// Table order and notes.
    tables: Vec<(String, String)>,
    scalars: BTreeMap<(String, String, String), Vec<f64>>,
}

impl Results {
    fn table(&mut self, name: &str, note: &str) {
        if !self.tables.iter().any(|(n, _)| n == name) {
            self.tables.push((name.to_owned(), note.to_owned()));
        }
    }
    fn add(&mut self, table: &str, row: &str, t: Trial) {
        self.trials
            .entry((table.to_owned(), row.to_owned()))
            .or_default()
            .push(t);
    }
    fn scalar(&mut self, table: &str, row: &str, col: &str, v: f64) {
        self.scalars
            .entry((table.to_owned(), row.to_owned(), col.to_owned()))
            .or_default()
            .push(v);
    }
}

fn fmt_rate(r: f64) -> String {
    if !r.is_finite() {
        "—".into()
    } else if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e4 {
        format!("{:.0}k", r / 1e3)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn fmt_ns(ns: u64) -> String {
    let ns = ns as f64;
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        "—".into()
    } else if r >= 10.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}

/// Renders every table: throughput tables (ops/s, p50, p99, igniter/peer) and scalar
/// tables.
fn render(res: &Results) -> String {
    let mut s = String::new();
    for (table, note) in &res.tables {
        let rows: Vec<&(String, String)> = res.trials.keys().filter(|(t, _)| t == table).collect();
        let srows: Vec<&(String, String, String)> =
            res.scalars.keys().filter(|(t, _, _)| t == table).collect();
        if rows.is_empty() && srows.is_empty() {
            continue;
        }
        s += &format!("\n#### {table}\n\n");
        if !note.is_empty() {
            s += &format!("{note}\n\n");
        }
        if !rows.is_empty() {
            // Medians per row.
            let mut med: Vec<(String, f64, u64, u64, usize)> = Vec::new();
            for k in &rows {
                let trials = &res.trials[*k];
                let mut rates: Vec<f64> = trials.iter().map(Trial::rate).collect();
                let mut all: Vec<u64> = trials.iter().flat_map(|t| t.lat.iter().copied()).collect();
                all.sort_unstable();
                med.push((
                    k.1.clone(),
                    median(&mut rates),
                    pct(&all, 0.5),
                    pct(&all, 0.99),
                    trials.len(),
                ));
            }
            med.sort_by_key(|(n, ..)| row_order(n));
            let ign = med
                .iter()
                .find(|(n, ..)| n.starts_with("igniter"))
                .map(|m| m.1);
            s += "| engine | ops/s (median) | p50 | p99 | igniter ÷ this | rounds |\n|---|---:|---:|---:|---:|---:|\n";
            for (name, rate, p50, p99, n) in &med {
                let ratio = match ign {
                    Some(i) if !name.starts_with("igniter") => fmt_ratio(i / rate),
                    _ => "".into(),
                };
                s += &format!(
                    "| {name} | {} | {} | {} | {ratio} | {n} |\n",
                    fmt_rate(*rate),
                    fmt_ns(*p50),
                    fmt_ns(*p99)
                );
            }
        }
        if !srows.is_empty() {
            let mut cols: Vec<String> = Vec::new();
            let mut rnames: Vec<String> = Vec::new();
            for (_, r, c) in &srows {
                if !cols.contains(c) {
                    cols.push(c.clone());
                }
                if !rnames.contains(r) {
                    rnames.push(r.clone());
                }
            }
            rnames.sort_by_key(|n| row_order(n));
            s += &format!(
                "\n| | {} |\n|---|{}\n",
                cols.join(" | "),
                "---:|".repeat(cols.len())
            );
            for r in &rnames {
                let mut line = format!("| {r} |");
                for c in &cols {
                    let v = res
                        .scalars
                        .get(&(table.clone(), r.clone(), c.clone()))
                        .map(|v| median(&mut v.clone()));
                    line += &format!(" {} |", v.map_or("—".into(), |v| fmt_scalar(c, v)));
                }
                s += &line;
                s += "\n";
            }
        }
    }
    s
}

fn fmt_scalar(col: &str, v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if col.contains("(ms)") {
        if v < 1.0 {
            format!("{v:.3}")
        } else {
            format!("{v:.1}")
        }
    } else if col.contains("/s") {
        fmt_rate(v)
    } else if col.contains('%') || col.contains('×') || col.contains("ratio") {
        format!("{v:.2}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn row_order(name: &str) -> (u8, String) {
    let rank = if name.starts_with("igniter") {
        0
    } else if name.starts_with("sqlite") {
        1
    } else if name.starts_with("redb") {
        2
    } else {
        3
    };
    (rank, name.to_owned())
}

// ------------------------------------------------------------------ physical limits

/// A loop of 150-byte write + fdatasync: appending to a fresh file (every sync also
/// commits the file's new size through the filesystem journal) or overwriting a
/// preallocated, already-synced file in place (data blocks only).
fn fdatasync_rate(dir: &Path, overwrite: bool, secs: f64, min_iters: usize) -> Trial {
    use std::io::{Seek, SeekFrom};
    let path = dir.join(format!("fdatasync-{}.probe", std::process::id()));
    let _ = fs::remove_file(&path);
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .expect("probe");
    let rec = [0xabu8; 150];
    if overwrite {
        // Room for the longest run: ~20k syncs/s for `secs`.
        let room = ((secs * 20_000.0) as usize).max(min_iters) * rec.len() + 4096;
        f.write_all(&vec![0u8; room]).expect("prefill");
        f.sync_all().expect("sync");
        f.seek(SeekFrom::Start(0)).expect("seek");
    }
    let deadline = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut lat = Vec::new();
    let mut prev = start;
    while lat.len() < min_iters || prev - start < deadline {
        f.write_all(&rec).expect("write");
        f.sync_data().expect("fdatasync");
        let now = Instant::now();
        lat.push((now - prev).as_nanos() as u64);
        prev = now;
    }
    drop(f);
    let _ = fs::remove_file(&path);
    Trial {
        ops: lat.len() as u64,
        secs: (prev - start).as_secs_f64(),
        lat,
    }
}

fn seq_write_bw(dir: &Path, bytes: usize) -> f64 {
    let path = dir.join("seqwrite.probe");
    let mut f = fs::File::create(&path).expect("probe");
    let chunk = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    let mut done = 0;
    while done < bytes {
        f.write_all(&chunk).expect("write");
        done += chunk.len();
    }
    f.sync_all().expect("sync");
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    let _ = fs::remove_file(&path);
    done as f64 / secs
}

struct Limits {
    bw: f64,
}

fn limits(cfg: &Cfg, res: &mut Results, when: &str) -> Limits {
    let t = "Physical limits of this machine";
    res.table(
        t,
        "A loop of 150-byte write + fdatasync in the bench directory: appending to a fresh \
         file, and overwriting a preallocated one in place; sequential write: 1 MiB writes \
         then one fsync. The fsync-tier tables also carry these probes, measured in the same \
         rounds as the engines.",
    );
    let tr = fdatasync_rate(&cfg.dir, false, if cfg.quick { 0.05 } else { 2.0 }, 10);
    let ow = fdatasync_rate(&cfg.dir, true, if cfg.quick { 0.05 } else { 2.0 }, 10);
    res.scalar(
        t,
        &format!("measured {when}"),
        "overwrite fdatasync/s",
        ow.rate(),
    );
    let bw = seq_write_bw(&cfg.dir, if cfg.quick { 8 << 20 } else { 1 << 30 });
    let fd = tr.rate();
    let mut sorted = tr.lat.clone();
    sorted.sort_unstable();
    res.scalar(t, &format!("measured {when}"), "fdatasync/s", fd);
    res.scalar(
        t,
        &format!("measured {when}"),
        "fdatasync p50 (µs)",
        pct(&sorted, 0.5) as f64 / 1e3,
    );
    res.scalar(
        t,
        &format!("measured {when}"),
        "seq write MiB/s",
        bw / (1 << 20) as f64,
    );
    eprintln!(
        "[limits {when}] fdatasync {:.0}/s, sequential write {:.0} MiB/s (load {})",
        fd,
        bw / (1 << 20) as f64,
        loadavg()
    );
    Limits { bw }
}

// ------------------------------------------------------------------ section: writes

fn write_in(prefix: &str, i: usize, keys: usize) -> In {
    let key = format!("{prefix}-{}", i % keys);
    let value = task_value(&key, i as i64, ["open", "done", "done"][i % 3]);
    In::Write {
        store: TASKS,
        key,
        value,
    }
}

fn fresh(cfg: &Cfg, tag: &str) -> PathBuf {
    let d = cfg.dir.join(format!(
        "igniter-compare-{}-{tag}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    fs::create_dir_all(&d).expect("mkdir");
    d
}

fn db_path(dir: &Path, kind: Kind) -> PathBuf {
    dir.join(match kind {
        Kind::Igniter => "ledger.wal",
        Kind::Redb => "facts.redb",
        _ => "facts.sqlite",
    })
}

fn single_writer(db: &mut dyn Db, n: usize, tag: usize) -> Trial {
    let prefix = format!("w{tag}");
    time_ops(n, |i| {
        db.put(write_in(&prefix, i, 500));
    })
}

fn batched(db: &mut dyn Db, batches: usize, tag: usize) -> Trial {
    let prefix = format!("b{tag}");
    let mut t = time_ops(batches, |b| {
        let fs: Vec<In> = (0..1000)
            .map(|i| write_in(&prefix, b * 1000 + i, usize::MAX))
            .collect();
        db.put_batch(fs);
    });
    // Report facts/s; latencies stay per commit of 1,000.
    t.ops *= 1000;
    t
}

fn concurrent(db: &dyn Db, mutex: bool, threads: usize, per_thread: usize, tag: usize) -> Trial {
    let mut handles: Vec<Box<dyn Db>> = Vec::new();
    let shared: Option<Arc<Mutex<Box<dyn Db>>>> = if mutex {
        Some(Arc::new(Mutex::new(db.handle().expect("handle"))))
    } else {
        for _ in 0..threads {
            handles.push(db.handle().expect("handle"));
        }
        None
    };
    let barrier = Arc::new(std::sync::Barrier::new(threads + 1));
    let mut joins = Vec::new();
    for t in 0..threads {
        let mut own = if mutex {
            None
        } else {
            Some(handles.pop().expect("h"))
        };
        let shared = shared.clone();
        let barrier = barrier.clone();
        joins.push(std::thread::spawn(move || {
            let prefix = format!("c{tag}-{t}");
            barrier.wait();
            let tr = time_ops(per_thread, |i| {
                let f = write_in(&prefix, i, 200);
                match (&mut own, &shared) {
                    (Some(db), _) => {
                        db.put(f);
                    }
                    (None, Some(s)) => {
                        s.lock().expect("lock").put(f);
                    }
                    _ => unreachable!(),
                }
            });
            // Dropped, not closed: igniter handles share one ledger.
            drop(own);
            tr
        }));
    }
    barrier.wait();
    let start = Instant::now();
    let mut lat = Vec::new();
    for j in joins {
        lat.extend(j.join().expect("writer thread").lat);
    }
    let secs = start.elapsed().as_secs_f64();
    Trial {
        ops: (threads * per_thread) as u64,
        secs,
        lat,
    }
}

fn section_writes(cfg: &Cfg, res: &mut Results, lim: &Limits) {
    let tiers = [Tier::Fsync, Tier::Flush, Tier::NoSync, Tier::Memory];
    let mut tag = 0usize;
    for round in 0..cfg.rounds {
        for tier in tiers {
            let mut engines: Vec<Option<Kind>> = engines_for(tier)
                .into_iter()
                .filter(|k| cfg.engine(k.short()))
                .map(Some)
                .collect();
            if engines.is_empty() {
                continue;
            }
            if tier == Tier::Fsync {
                // The device probes take turns with the engines (None = the probes).
                engines.push(None);
            }
            let rot = round % engines.len();
            engines.rotate_left(rot);
            let (single_n, batches) = if tier == Tier::Fsync {
                (cfg.fsync_ops, cfg.fsync_batches)
            } else {
                (cfg.fast_ops, cfg.fast_batches)
            };
            eprintln!(
                "[writes round {}/{} tier {}] load {}",
                round + 1,
                cfg.rounds,
                tier.name(),
                loadavg()
            );
            for slot in engines {
                if tier == Tier::Fsync {
                    // Nobody inherits another's dirty pages or pending discards.
                    let _ = Command::new("sync").status();
                }
                let Some(kind) = slot else {
                    // The device, in the same round: what one commit per fdatasync allows.
                    for (overwrite, name) in [
                        (false, "device: append + fdatasync"),
                        (true, "device: overwrite + fdatasync"),
                    ] {
                        let t = fdatasync_rate(&cfg.dir, overwrite, 0.0, single_n);
                        let tn = format!("Single writer, one fact per commit — {}", tier.name());
                        res.table(&tn, "");
                        res.add(&tn, name, t);
                    }
                    continue;
                };
                let label = kind.label(tier);
                let dir = fresh(cfg, "w");
                let path = (tier != Tier::Memory).then(|| db_path(&dir, kind));
                // single writer
                let mut db = open_db(kind, tier, path.as_deref());
                tag += 1;
                let t = single_writer(&mut *db, single_n, tag);
                let tn = format!("Single writer, one fact per commit — {}", tier.name());
                res.table(&tn, "");
                res.add(&tn, &label, t);
                // batches of 1,000
                tag += 1;
                let d0 = db.disk_bytes();
                let t = batched(&mut *db, batches, tag);
                if kind == Kind::Igniter && tier == Tier::Fsync {
                    let bpf = (db.disk_bytes() - d0) as f64 / t.ops as f64;
                    res.scalar(
                        "Durable writes against the device",
                        &label,
                        "% of seq. bandwidth (batches of 1,000)",
                        t.rate() * bpf / lim.bw * 100.0,
                    );
                }
                let tn = format!("Batches of 1,000 facts per commit — {}", tier.name());
                res.table(&tn, "Throughput in facts/s; p50/p99 per commit of 1,000.");
                res.add(&tn, &label, t);
                // 8 concurrent writers
                let tn = format!(
                    "8 concurrent writers, one fact per commit — {}",
                    tier.name()
                );
                res.table(
                    &tn,
                    "igniter: one shared handle (group commit); SQLite: a connection per \
                     thread (BEGIN IMMEDIATE, busy_timeout) and, separately, one connection \
                     behind a Mutex; redb: one shared Database (writers serialize).",
                );
                let per = (single_n / 8).max(1) * if tier == Tier::Fsync { 2 } else { 1 };
                let sqlite_own = matches!(
                    kind,
                    Kind::SqliteFull | Kind::SqliteNormal | Kind::SqliteOff
                );
                if tier != Tier::Memory || !sqlite_own {
                    tag += 1;
                    let t = concurrent(&*db, false, 8, per, tag);
                    let l = if sqlite_own {
                        format!("{label}, 8 connections")
                    } else {
                        label.clone()
                    };
                    res.add(&tn, &l, t);
                }
                if sqlite_own {
                    tag += 1;
                    let t = if tier == Tier::Memory {
                        // :memory: cannot be shared between connections: share this one.
                        let shared: Arc<Mutex<Box<dyn Db>>> = Arc::new(Mutex::new(db));
                        let t = concurrent_shared(&shared, 8, per, tag);
                        db = Arc::try_unwrap(shared)
                            .ok()
                            .expect("unshared")
                            .into_inner()
                            .expect("lock");
                        t
                    } else {
                        concurrent(&*db, true, 8, per, tag)
                    };
                    res.add(&tn, &format!("{label}, 1 connection + Mutex"), t);
                }
                db.close();
                let _ = fs::remove_dir_all(&dir);
            }
        }
    }
    // Every engine against the device probes of the same rounds (medians).
    let single = format!(
        "Single writer, one fact per commit — {}",
        Tier::Fsync.name()
    );
    let med = |res: &Results, row: &str| -> Option<f64> {
        let v = res.trials.get(&(single.clone(), row.to_owned()))?;
        let mut rates: Vec<f64> = v.iter().map(Trial::rate).collect();
        Some(median(&mut rates))
    };
    let append = med(res, "device: append + fdatasync");
    let overwrite = med(res, "device: overwrite + fdatasync");
    for kind in [Kind::Igniter, Kind::SqliteFull, Kind::Redb] {
        let label = kind.label(Tier::Fsync);
        let Some(rate) = med(res, &label) else {
            continue;
        };
        if let Some(a) = append {
            res.scalar(
                "Durable writes against the device",
                &label,
                "% of append+fdatasync rate (one writer)",
                rate / a * 100.0,
            );
        }
        if let Some(o) = overwrite {
            res.scalar(
                "Durable writes against the device",
                &label,
                "% of overwrite+fdatasync rate (one writer)",
                rate / o * 100.0,
            );
        }
    }
    res.table(
        "Durable writes against the device",
        "Single-writer fsync commits/s as a share of the device probes measured in the same \
         rounds; batched facts/s x WAL bytes per fact as a share of the sequential write \
         bandwidth measured at the start.",
    );
}

fn concurrent_shared(
    shared: &Arc<Mutex<Box<dyn Db>>>,
    threads: usize,
    per_thread: usize,
    tag: usize,
) -> Trial {
    let barrier = Arc::new(std::sync::Barrier::new(threads + 1));
    let mut joins = Vec::new();
    for t in 0..threads {
        let shared = shared.clone();
        let barrier = barrier.clone();
        joins.push(std::thread::spawn(move || {
            let prefix = format!("m{tag}-{t}");
            barrier.wait();
            time_ops(per_thread, |i| {
                shared.lock().expect("lock").put(write_in(&prefix, i, 200));
            })
        }));
    }
    barrier.wait();
    let start = Instant::now();
    let mut lat = Vec::new();
    for j in joins {
        lat.extend(j.join().expect("writer").lat);
    }
    Trial {
        ops: (threads * per_thread) as u64,
        secs: start.elapsed().as_secs_f64(),
        lat,
    }
}

// ------------------------------------------------------------------ section: growth

fn kind_from(s: &str) -> Kind {
    match s {
        "igniter" => Kind::Igniter,
        "sqlite" => Kind::SqliteFull,
        "redb" => Kind::Redb,
        _ => panic!("unknown engine {s}"),
    }
}

/// Child process: load `n` facts in durable batches of 1,000, print the time, and exit
/// without closing anything (as if the process died right after its last commit).
fn child_load(engine: &str, n: usize, dir: &Path) -> ! {
    let kind = kind_from(engine);
    let path = db_path(dir, kind);
    let mut db = open_db(kind, Tier::Fsync, Some(&path));
    let shape = Shape::new(n);
    let plan = load_plan(shape);
    let mut m = Materializer::new(shape);
    let mut lat = Vec::with_capacity(n / 1000 + 1);
    let mut secs = 0.0;
    for chunk in plan.chunks(1000) {
        let fs: Vec<In> = chunk.iter().map(|&p| m.item(p)).collect();
        let t0 = Instant::now();
        db.put_batch(fs);
        let d = t0.elapsed();
        secs += d.as_secs_f64();
        lat.push(d.as_nanos() as u64);
    }
    lat.sort_unstable();
    println!(
        "LOADED {secs} {} {} {}",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.len()
    );
    std::io::stdout().flush().expect("flush");
    std::process::exit(0);
}

fn run_child_load(engine: Kind, n: usize, dir: &Path) -> Trial {
    let exe = std::env::current_exe().expect("exe");
    let out = Command::new(exe)
        .arg("--child-load")
        .arg(engine.short())
        .arg(n.to_string())
        .arg(dir)
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("LOADED "))
        .unwrap_or_else(|| {
            panic!(
                "child load failed: {}\n{}",
                stdout,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let p: Vec<&str> = line.split_whitespace().collect();
    let secs: f64 = p[1].parse().expect("secs");
    let p50: u64 = p[2].parse().expect("p50");
    let p99: u64 = p[3].parse().expect("p99");
    // Rebuild a latency sample with the same p50/p99 for pooling.
    let commits: usize = p[4].parse().expect("n");
    let mut lat = vec![p50; commits];
    if let Some(l) = lat.last_mut() {
        *l = p99;
    }
    Trial {
        ops: n as u64,
        secs,
        lat,
    }
}

fn size_label(n: usize) -> String {
    if n >= 1_000_000 && n / 1_000_000 * 1_000_000 == n {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n / 1_000 * 1_000 == n {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// Opens an engine for the read phase and times open + first read.
fn reopen(kind: Kind, path: &Path) -> (Box<dyn Db>, f64) {
    let kind = if kind == Kind::Igniter || kind == Kind::Redb {
        kind
    } else {
        Kind::SqliteOff
    };
    let t0 = Instant::now();
    let mut db = open_db_with(kind, Tier::NoSync, Some(path), false);
    let v = db.get(TASKS, "deep-0", None);
    let secs = t0.elapsed().as_secs_f64();
    assert!(v.is_some(), "{kind:?}: deep-0 must exist after reopen");
    (db, secs)
}

struct Probe {
    deep: Vec<i64>,
    d10: Vec<Vec<i64>>,
    t_mid: i64,
    t_end: i64,
}

fn probe(db: &mut dyn Db, shape: Shape) -> Probe {
    let deep = db.versions(TASKS, "deep-0");
    assert_eq!(deep.len(), shape.deep, "deep key versions");
    let d10: Vec<Vec<i64>> = (0..shape.d10_keys)
        .map(|j| db.versions(TASKS, &format!("d10-{j}")))
        .collect();
    assert!(d10.iter().all(|v| v.len() == 10), "d10 versions");
    let t_mid = deep[deep.len() / 2];
    Probe {
        deep,
        d10,
        t_mid,
        t_end: Timestamp::now().as_micros(),
    }
}

/// Checks that the engine answers the workload's queries as the workload defines them.
fn verify(db: &mut dyn Db, shape: Shape, p: &Probe, kind: Kind) {
    for v in [0usize, shape.deep / 2, shape.deep - 1] {
        let got = db
            .get(TASKS, "deep-0", Some(p.deep[v]))
            .expect("as_of deep");
        assert_eq!(
            got.get_sym("n"),
            Some(&Value::Int(v as i64)),
            "{kind:?} as_of"
        );
    }
    let slice = db.partition(EVENTS, "o-0");
    assert_eq!(slice.len(), 100, "{kind:?} partition slice");
    for (i, v) in slice.iter().enumerate() {
        assert_eq!(
            v.get_sym("seq"),
            Some(&Value::Int(i as i64)),
            "{kind:?} order"
        );
    }
    let sc = db.scope(TASKS, FLAGGED, None);
    assert_eq!(sc.len(), shape.flagged, "{kind:?} scope");
    assert!(
        sc.windows(2).all(|w| w[0].0 < w[1].0),
        "{kind:?} scope order"
    );
    assert!(db.get(TASKS, "task-0", None).is_some() || shape.singles == 0);
}

#[allow(clippy::too_many_lines)]
fn section_growth(cfg: &Cfg, res: &mut Results) {
    let kinds: Vec<Kind> = [Kind::Igniter, Kind::SqliteFull, Kind::Redb]
        .into_iter()
        .filter(|k| cfg.engine(k.short()))
        .collect();
    for &n in &cfg.sizes {
        let shape = Shape::new(n);
        let sz = size_label(n);
        let rounds = if n >= 5_000_000 { 1 } else { cfg.rounds };
        for round in 0..rounds {
            let mut order = kinds.clone();
            let rot = round % order.len().max(1);
            order.rotate_left(rot);
            for &kind in &order {
                eprintln!(
                    "[growth {sz} round {}/{rounds} {}] load {}",
                    round + 1,
                    kind.short(),
                    loadavg()
                );
                let label = match kind {
                    Kind::Igniter => "igniter",
                    Kind::Redb => "redb",
                    _ => "sqlite (WAL)",
                };
                let dir = fresh(cfg, "g");
                let path = db_path(&dir, kind);
                // 1. Load (child process, durable batches of 1,000, then "crash").
                let t = run_child_load(kind, n, &dir);
                let tn = format!("Load: durable batches of 1,000 — {sz} facts");
                res.table(&tn, "fsync per commit; facts/s; p50/p99 per commit.");
                res.add(&tn, label, t);
                // 2. Recovery: open after the crash + first read. Count heap growth.
                let heap0 = live_bytes();
                let (mut db, secs) = reopen(kind, &path);
                let rt = format!("Open after a crash (+ first read) — {sz} facts");
                res.table(
                    &rt,
                    "igniter replays its whole WAL (no snapshot); SQLite replays its -wal file; \
                     redb repairs after an unclean shutdown.",
                );
                res.scalar(&rt, label, "time (ms)", secs * 1e3);
                res.scalar(&rt, label, "facts/s", n as f64 / secs);
                let heap_after_open =
                    live_bytes().saturating_sub(heap0) as f64 + db.own_heap().unwrap_or(0) as f64;
                // igniter: scopes are not persisted; registering one builds it from the
                // current state, and the partition index is built by the first query.
                if let Some(ig) = db.as_igniter() {
                    let t0 = Instant::now();
                    igniter_register(ig);
                    let reg = t0.elapsed().as_secs_f64();
                    let t0 = Instant::now();
                    let _ = ig.history_partition(PartitionQuery::new(EVENTS, PART_KEY, "o-0"));
                    let part = t0.elapsed().as_secs_f64();
                    res.scalar(&rt, label, "register scope (ms)", reg * 1e3);
                    res.scalar(&rt, label, "build partition index (ms)", part * 1e3);
                }
                // 3. Reads.
                let p = probe(&mut *db, shape);
                if kind == Kind::Igniter {
                    // The first as_of scope query builds the scope's history.
                    let t0 = Instant::now();
                    db.scope(TASKS, FLAGGED, Some(p.t_mid));
                    let build = t0.elapsed().as_secs_f64();
                    res.scalar(&rt, label, "first scope as_of query (ms)", build * 1e3);
                }
                verify(&mut *db, shape, &p, kind);
                let disk_after_load = db.disk_bytes();
                let mut rng = fastrand::Rng::with_seed(7 + round as u64);
                let ops = cfg.read_ops;
                let tn = format!("Current read — {sz} facts");
                res.table(&tn, "read(store, key) of a random key, value decoded.");
                let keys: Vec<String> = (0..ops)
                    .map(|_| {
                        if shape.singles > 0 {
                            format!("task-{}", rng.usize(..shape.singles))
                        } else {
                            "deep-0".into()
                        }
                    })
                    .collect();
                let t = time_ops(ops, |i| {
                    std::hint::black_box(db.get(TASKS, &keys[i], None));
                });
                res.add(&tn, label, t);

                let tn = format!("as_of read, 1 version per key — {sz} facts");
                res.table(&tn, "");
                let t = time_ops(ops, |i| {
                    std::hint::black_box(db.get(TASKS, &keys[i], Some(p.t_end)));
                });
                res.add(&tn, label, t);

                if shape.d10_keys > 0 {
                    let tn = format!("as_of read, 10 versions per key — {sz} facts");
                    res.table(&tn, "A random key of 100, at the time of a random version.");
                    let q: Vec<(String, i64)> = (0..ops)
                        .map(|_| {
                            let j = rng.usize(..shape.d10_keys);
                            (format!("d10-{j}"), p.d10[j][rng.usize(..10)])
                        })
                        .collect();
                    let t = time_ops(ops, |i| {
                        std::hint::black_box(db.get(TASKS, &q[i].0, Some(q[i].1)));
                    });
                    res.add(&tn, label, t);
                }

                let tn = format!("as_of read, {} versions per key — {sz} facts", shape.deep);
                res.table(&tn, "One key, at the time of a random version.");
                let q: Vec<i64> = (0..ops)
                    .map(|_| p.deep[rng.usize(..p.deep.len())])
                    .collect();
                let t = time_ops(ops, |i| {
                    std::hint::black_box(db.get(TASKS, "deep-0", Some(q[i])));
                });
                res.add(&tn, label, t);

                let tn = format!("Partition slice (100 facts) — {sz} facts");
                res.table(
                    &tn,
                    "history_partition of a random order: 100 facts in commit order, values decoded. ops/s = slices/s.",
                );
                let q: Vec<String> = (0..cfg.slice_ops)
                    .map(|_| format!("o-{}", rng.usize(..shape.orders)))
                    .collect();
                let t = time_ops(cfg.slice_ops, |i| {
                    std::hint::black_box(db.partition(EVENTS, &q[i]));
                });
                res.add(&tn, label, t);

                let tn = format!(
                    "Scope query, current ({} members) — {sz} facts",
                    shape.flagged
                );
                res.table(
                    &tn,
                    "Latest fact per key with status :flagged, values decoded.",
                );
                let t = time_ops(cfg.scope_ops, |_| {
                    std::hint::black_box(db.scope(TASKS, FLAGGED, None));
                });
                res.add(&tn, label, t);

                let tn = format!("Scope query, as_of mid-load — {sz} facts");
                res.table(&tn, "The same scope as it was at the middle of the load.");
                let t = time_ops(cfg.scope_ops, |_| {
                    std::hint::black_box(db.scope(TASKS, FLAGGED, Some(p.t_mid)));
                });
                res.add(&tn, label, t);

                // 4. Writes into a ledger of this size (CPU cost; no sync).
                let tn = format!("Single writer, no sync, into a ledger of {sz} facts");
                res.table(
                    &tn,
                    "igniter in `none` mode was opened above; SQLite synchronous=OFF; redb \
                     Durability::None. Half updates of existing keys, half new keys.",
                );
                let wn = (cfg.fast_ops / 2).max(10);
                let t = time_ops(wn, |i| {
                    let f = if i % 2 == 0 {
                        let key = format!("task-{}", (i * 7919) % shape.singles.max(1));
                        let value = task_value(&key, 1, "open");
                        In::Write {
                            store: TASKS,
                            key,
                            value,
                        }
                    } else {
                        write_in("grow", i, usize::MAX)
                    };
                    db.put(f);
                });
                res.add(&tn, label, t);

                // 5. Memory and disk.
                let heap_total = live_bytes().saturating_sub(heap0) as f64;
                let own = db.own_heap().unwrap_or(0) as f64;
                let total_facts = (n + wn) as f64;
                let mt = format!("Memory and disk per fact — {sz} facts");
                res.table(
                    &mt,
                    "Heap: bytes held through the Rust allocator after open + the reads above \
                     (+ SQLite's own sqlite3_memory_used), divided by the facts held. Peers \
                     keep facts on disk; their heap is their page cache, bounded, not per fact. \
                     Disk: the files right after the load (SQLite: database + -wal).",
                );
                res.scalar(
                    &mt,
                    label,
                    "heap after open B/fact",
                    heap_after_open / n as f64,
                );
                res.scalar(
                    &mt,
                    label,
                    "heap after reads B/fact",
                    (heap_total + own) / total_facts,
                );
                res.scalar(&mt, label, "disk B/fact", disk_after_load as f64 / n as f64);

                // 6. Clean reopen (and, for igniter, from a snapshot).
                let rt = format!("Clean reopen (+ first read) — {sz} facts");
                res.table(
                    &rt,
                    "After a clean close. igniter: whole-WAL replay, then after `checkpoint` \
                     (snapshot + empty WAL tail).",
                );
                if let Some(ig) = db.as_igniter() {
                    let t0 = Instant::now();
                    let rep = ig.checkpoint().expect("checkpoint");
                    let ck = t0.elapsed().as_secs_f64();
                    res.scalar(&rt, label, "checkpoint (ms)", ck * 1e3);
                    res.scalar(
                        &rt,
                        label,
                        "snapshot B/fact",
                        rep.bytes as f64 / total_facts,
                    );
                    db.close();
                    // Replay the whole WAL: move the snapshot aside.
                    let snap = igniter_ledger::__private::snapshot_path(&path);
                    let aside = dir.join("aside.snap");
                    fs::rename(&snap, &aside).expect("move snapshot");
                    let (db2, secs) = reopen(kind, &path);
                    res.scalar(&rt, label, "from WAL (ms)", secs * 1e3);
                    res.scalar(&rt, label, "WAL facts/s", total_facts / secs);
                    db2.close();
                    fs::rename(&aside, &snap).expect("restore snapshot");
                    let (db3, secs) = reopen(kind, &path);
                    res.scalar(&rt, label, "from snapshot (ms)", secs * 1e3);
                    res.scalar(&rt, label, "snapshot facts/s", total_facts / secs);
                    db3.close();
                } else {
                    db.close();
                    let (db2, secs) = reopen(kind, &path);
                    res.scalar(&rt, label, "from WAL (ms)", secs * 1e3);
                    db2.close();
                }
                let _ = fs::remove_dir_all(&dir);
            }
        }
    }
}

// ------------------------------------------------------------------ main

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.to_owned()))
        .unwrap_or_default();
    format!("CPU {cpu}, {cores} cores, kernel {kernel}, {mem}")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-load") {
        let engine = &args[i + 1];
        let n: usize = args[i + 2].parse().expect("n");
        let dir = PathBuf::from(&args[i + 3]);
        child_load(engine, n, &dir);
    }
    let cfg = parse_args();
    fs::create_dir_all(&cfg.dir).expect("bench dir");
    let started = Instant::now();
    eprintln!(
        "compare: {} mode, sizes {:?}, {} rounds, dir {} ({})",
        if cfg.quick { "quick" } else { "full" },
        cfg.sizes,
        cfg.rounds,
        cfg.dir.display(),
        machine()
    );
    let mut res = Results::default();
    let load_start = loadavg();
    let lim = limits(&cfg, &mut res, "at start");
    if cfg.section("writes") {
        section_writes(&cfg, &mut res, &lim);
    }
    if cfg.section("growth") {
        section_growth(&cfg, &mut res);
    }
    let lim_end = limits(&cfg, &mut res, "at end");
    let mut report = format!(
        "### compare run\n\n{}\n\nMode: {}; sizes {:?}; rounds {}; load average at start {}, at end {}; \
         wall time {:.0} s.\n",
        machine(),
        if cfg.quick { "quick (smoke test: numbers mean nothing)" } else { "full" },
        cfg.sizes,
        cfg.rounds,
        load_start,
        loadavg(),
        started.elapsed().as_secs_f64()
    );
    let _ = lim_end;
    report += &render(&res);
    println!("{report}");
    if let Some(out) = &cfg.out {
        fs::write(out, &report).expect("write report");
        eprintln!("report written to {}", out.display());
    }
}
