//! Mutation fuzzing, on the stable toolchain, of every parser of untrusted bytes: frame
//! scanning, MessagePack values, fact records, snapshot files, 0.5.2 JSON bodies and
//! whole recovery (snapshot + WAL replay). The targets live in
//! `igniter_ledger::__private::fuzzing`; this file is the engine. See `docs/fuzzing.md`.
//!
//! For every input the engine checks that the target
//! - does not panic (the targets also assert their own invariants),
//! - does not hang (a watchdog fails the run when one input takes longer than
//!   `FUZZ_HANG_SECS`, default 60),
//! - allocates at most `ALLOC_SLACK + ALLOC_PER_BYTE * input length` bytes at its peak
//!   (a counting global allocator measures it).
//!
//! A failing input is written to `fuzz/artifacts/<target>/` and the test fails naming
//! it. Inputs that once failed go to `fuzz/regressions/<target>/` and are replayed on
//! every run, as is the seed corpus in `fuzz/corpus/<target>/`.
//!
//! `cargo test --test fuzz` runs each target for a bounded number of inputs
//! (`FUZZ_ITERS`, default 20,000). A long run of one target:
//! `FUZZ_SECS=3600 cargo test --release --test fuzz fuzz_value -- --nocapture`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use igniter_ledger::__private::fuzzing;

// ------------------------------------------------------------ allocation accounting

struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note_alloc(n: usize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + n as i64;
        l.set(v);
        let _ = PEAK.try_with(|p| {
            if v > p.get() {
                p.set(v)
            }
        });
    });
}

fn note_free(n: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get() - n as i64));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the bookkeeping
// only touches const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            note_alloc(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            note_alloc(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        note_free(l.size());
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            note_free(l.size());
            note_alloc(new);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak extra bytes allocated on this thread while `f` runs.
fn peak_during(f: impl FnOnce()) -> u64 {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    f();
    (PEAK.with(Cell::get) - base).max(0) as u64
}

/// Allowed peak: a constant plus a multiple of the input's length. A decoded value
/// needs up to ~64 bytes of `Value` per input byte; the rest is headroom for indexes.
const ALLOC_SLACK: u64 = 8 << 20;
const ALLOC_PER_BYTE: u64 = 256;
/// Largest input the mutator produces.
const MAX_INPUT: usize = 256 * 1024;

// ------------------------------------------------------------ corpus and artifacts

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn read_dir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file() {
                if let Ok(b) = std::fs::read(&p) {
                    out.push((p.file_name().unwrap().to_string_lossy().into_owned(), b));
                }
            }
        }
    }
    out.sort();
    out
}

fn save_artifact(target: &str, kind: &str, data: &[u8]) -> PathBuf {
    let dir = fuzz_dir().join("artifacts").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let name = format!("{kind}-{}", &blake3::hash(data).to_hex().as_str()[..16]);
    let p = dir.join(name);
    let _ = std::fs::write(&p, data);
    p
}

// ------------------------------------------------------------ mutation

const MSGPACK_DICT: &[&[u8]] = &[
    &[0xc0],
    &[0xc1],
    &[0xc2],
    &[0xc3],
    &[0x80],
    &[0x90],
    &[0xa0],
    &[0x9a],
    &[0x92, 0x01],
    &[0x92, 0x02],
    &[0x92, 0x03],
    &[0xcc, 0xff],
    &[0xcd, 0xff, 0xff],
    &[0xce, 0xff, 0xff, 0xff, 0xff],
    &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0],
    &[0xd0, 0x80],
    &[0xca, 0x7f, 0xc0, 0, 0],
    &[0xca, 0x3f, 0x80, 0, 0],
    &[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1],
    &[0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0],
    &[0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0],
    &[0xd9, 0xff],
    &[0xda, 0xff, 0xff],
    &[0xdb, 0xff, 0xff, 0xff, 0xff],
    &[0xdc, 0xff, 0xff],
    &[0xdd, 0x00, 0x01, 0x00, 0x00],
    &[0xdd, 0xff, 0xff, 0xff, 0xff],
    &[0xde, 0xff, 0xff],
    &[0xdf, 0xff, 0xff, 0xff, 0xff],
    &[0xc4, 0x10],
    &[0xc4, 0x0f],
    &[0xc5, 0xff, 0xff],
    &[0xc6, 0xff, 0xff, 0xff, 0xff],
    &[0xc7, 0x01, 0x01, b'a'],
    &[0xc7, 0x01, 0x02, b'a'],
    &[0xd4, 0x01, b'a'],
    &[0xd5, 0x01, b'a', b'b'],
    &[0xa2, 0xff, 0xfe],
    &[0xa3, 0xed, 0xa0, 0x80],
    &[0x82, 0x01, 0xc0, 0x01, 0xc0],
    &[0x82, 0xa1, b'a', 0xc0, 0xa1, b'a', 0xc0],
    &[0x81, 0x90, 0xc0],
    &[0x81, 0xc0, 0xc0],
];

const JSON_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"false",
    b"0",
    b"-0",
    b"1.5",
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"9223372036854775807",
    b"4294967296",
    b"\"\\ud800\"",
    b"\"\\u0000\"",
    b"\"\xff\xfe\"",
    b"\"id\":",
    b"\"store\":",
    b"\"key\":",
    b"\"value\":",
    b"\"value_hash\":",
    b"\"causation\":",
    b"\"transaction_time\":",
    b"\"timestamp\":",
    b"\"valid_time\":",
    b"\"term\":",
    b"\"schema_version\":",
    b"\"producer\":",
    b"\"derivation\":",
    b"\"type\":\"snapshot_header\"",
    b"\"fact_count\":",
    b"\"0191c2f0-0000-7000-8000-000000000001\"",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":",
    b"\"a\":1,\"a\":2",
];

const INTERESTING_U32: &[u32] = &[
    0,
    1,
    2,
    7,
    8,
    9,
    16,
    127,
    128,
    255,
    256,
    0x7fff,
    0xffff,
    0x1_0000,
    0x0fff_ffff,
    0x1000_0000,
    0x1000_0001,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

struct Mutator {
    rng: fastrand::Rng,
    dict: &'static [&'static [u8]],
    framed: bool,
    recovery: bool,
}

impl Mutator {
    fn new(target: &str, seed: u64) -> Self {
        Mutator {
            rng: fastrand::Rng::with_seed(seed),
            dict: if target == "json" {
                JSON_DICT
            } else {
                MSGPACK_DICT
            },
            framed: matches!(target, "frames" | "snapshot" | "recovery"),
            recovery: target == "recovery",
        }
    }

    fn pos(&mut self, len: usize) -> usize {
        self.rng.usize(..=len)
    }

    fn one(&mut self, d: &mut Vec<u8>, other: &[u8]) {
        let r = &mut self.rng;
        match r.u8(..14) {
            0 if !d.is_empty() => {
                let i = r.usize(..d.len());
                d[i] ^= 1 << r.u8(..8);
            }
            1 if !d.is_empty() => {
                let i = r.usize(..d.len());
                d[i] = match r.u8(..4) {
                    0 => r.u8(..),
                    1 => [0x00, 0xff, 0x7f, 0x80, 0xc0, 0xc1][r.usize(..6)],
                    2 => d[i].wrapping_add(1),
                    _ => d[i].wrapping_sub(1),
                };
            }
            2 => {
                let i = self.pos(d.len());
                let n = self.rng.usize(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.u8(..)).collect();
                d.splice(i..i, bytes);
            }
            3 if !d.is_empty() => {
                let i = r.usize(..d.len());
                let n = r.usize(1..=(d.len() - i).min(64));
                d.drain(i..i + n);
            }
            4 if !d.is_empty() => {
                // duplicate a range somewhere else
                let i = r.usize(..d.len());
                let n = r.usize(1..=(d.len() - i).min(256));
                let chunk = d[i..i + n].to_vec();
                let j = self.pos(d.len());
                d.splice(j..j, chunk);
            }
            5 if d.len() >= 4 => {
                let i = r.usize(..=d.len() - 4);
                let v = INTERESTING_U32[r.usize(..INTERESTING_U32.len())];
                let v = match r.u8(..3) {
                    0 => v,
                    1 => (d.len() - i) as u32,
                    _ => ((d.len() - i) as u32).wrapping_sub(r.u32(..16)),
                };
                d[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            6 if d.len() >= 2 => {
                let i = r.usize(..=d.len() - 2);
                let v = INTERESTING_U32[r.usize(..INTERESTING_U32.len())] as u16;
                d[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            7 => {
                let t = self.dict[r.usize(..self.dict.len())];
                let i = self.pos(d.len());
                d.splice(i..i, t.iter().copied());
            }
            8 if !d.is_empty() => {
                let t = self.dict[r.usize(..self.dict.len())];
                let i = r.usize(..d.len());
                let end = (i + t.len()).min(d.len());
                d.splice(i..end, t.iter().copied());
            }
            9 => {
                let n = self.pos(d.len());
                d.truncate(n);
            }
            10 if !other.is_empty() => {
                // splice: our prefix, their suffix
                let i = self.pos(d.len());
                let j = self.rng.usize(..other.len());
                d.truncate(i);
                d.extend_from_slice(&other[j..]);
            }
            11 if !other.is_empty() => {
                // insert a chunk of another input
                let j = r.usize(..other.len());
                let n = r.usize(1..=(other.len() - j).min(512));
                let i = self.pos(d.len());
                d.splice(i..i, other[j..j + n].iter().copied());
            }
            12 => {
                // a run of one byte (deep nesting, long zero tails)
                let b = [0x00, 0x91, 0x81, 0xdc, b'[', b'{', 0xff][r.usize(..7)];
                let n = r.usize(1..=600);
                let i = self.pos(d.len());
                d.splice(i..i, std::iter::repeat_n(b, n));
            }
            _ if !d.is_empty() => {
                let i = r.usize(..d.len());
                d[i] = r.u8(..);
            }
            _ => d.push(r.u8(..)),
        }
    }

    fn mutate(&mut self, d: &mut Vec<u8>, other: &[u8]) {
        let n = 1 << self.rng.u32(0..4);
        for _ in 0..self.rng.u32(1..=n) {
            self.one(d, other);
        }
        d.truncate(MAX_INPUT);
        if self.framed && self.rng.bool() {
            if self.recovery {
                fix_recovery_crcs(d);
            } else {
                fuzzing::fix_crcs(d);
            }
        }
    }
}

fn fix_recovery_crcs(d: &mut Vec<u8>) {
    let (wal, snap) = fuzzing::split_recovery_input(d);
    let (mut wal, mut snap) = (wal.to_vec(), snap.map(<[u8]>::to_vec));
    fuzzing::fix_crcs(&mut wal);
    if let Some(s) = snap.as_mut() {
        if s.len() > u16::MAX as usize {
            s.truncate(u16::MAX as usize);
        }
        fuzzing::fix_crcs(s);
    }
    *d = fuzzing::join_recovery_input(&wal, snap.as_deref());
}

// ------------------------------------------------------------ engine

struct Stats {
    execs: u64,
    elapsed: Duration,
    max_peak: u64,
    max_ratio_input: usize,
    slowest: Duration,
}

enum Budget {
    Iters(u64),
    Secs(u64),
}

fn budget() -> Budget {
    if let Some(s) = std::env::var("FUZZ_SECS").ok().and_then(|v| v.parse().ok()) {
        return Budget::Secs(s);
    }
    Budget::Iters(
        std::env::var("FUZZ_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000),
    )
}

/// Runs one input; Err describes a failure.
fn check_one(target: &str, data: &[u8], peak_out: &mut u64) -> Result<(), String> {
    let mut outcome = Ok(());
    let peak = peak_during(|| {
        outcome = std::panic::catch_unwind(|| {
            assert!(fuzzing::run(target, data), "unknown target {target}");
        });
    });
    *peak_out = peak;
    if let Err(p) = outcome {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        return Err(format!("panic: {msg}"));
    }
    let limit = ALLOC_SLACK + ALLOC_PER_BYTE * data.len() as u64;
    if peak > limit {
        return Err(format!(
            "allocated {peak} bytes at peak for a {}-byte input (limit {limit})",
            data.len()
        ));
    }
    Ok(())
}

fn fuzz(target: &'static str) {
    let seeds = read_dir_files(&fuzz_dir().join("corpus").join(target));
    assert!(
        seeds.len() >= 3,
        "the seed corpus fuzz/corpus/{target} is missing (regenerate it with \
         `cargo test --test fuzz -- --ignored write_seed_corpus`)"
    );
    let regressions = read_dir_files(&fuzz_dir().join("regressions").join(target));
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let hang = Duration::from_secs(
        std::env::var("FUZZ_HANG_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    );
    let budget = budget();

    let current = Arc::new(Mutex::new(Vec::<u8>::new()));
    let progress = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (current, progress, stop) = (current.clone(), progress.clone(), stop.clone());
        std::thread::spawn(move || -> Result<Stats, String> {
            let start = Instant::now();
            let mut stats = Stats {
                execs: 0,
                elapsed: Duration::ZERO,
                max_peak: 0,
                max_ratio_input: 0,
                slowest: Duration::ZERO,
            };
            let run = |data: &[u8], stats: &mut Stats, what: &str| -> Result<(), String> {
                current.lock().unwrap().clone_from(&data.to_vec());
                let t = Instant::now();
                let mut peak = 0;
                let r = check_one(target, data, &mut peak);
                stats.slowest = stats.slowest.max(t.elapsed());
                if peak > stats.max_peak {
                    stats.max_peak = peak;
                    stats.max_ratio_input = data.len();
                }
                stats.execs += 1;
                progress.fetch_add(1, Ordering::Release);
                r.map_err(|e| {
                    let p = save_artifact(target, "crash", data);
                    format!(
                        "{target}: {what} failed: {e}; input saved to {}",
                        p.display()
                    )
                })
            };
            for (name, d) in seeds.iter().chain(&regressions) {
                run(d, &mut stats, &format!("corpus file {name}"))?;
            }
            let mut m = Mutator::new(target, seed);
            let mut pool: Vec<Vec<u8>> = seeds.iter().map(|(_, d)| d.clone()).collect();
            let fixed = pool.len();
            loop {
                let done = match budget {
                    Budget::Iters(n) => stats.execs >= n,
                    Budget::Secs(s) => start.elapsed() >= Duration::from_secs(s),
                };
                if done || stop.load(Ordering::Relaxed) {
                    break;
                }
                let a = m.rng.usize(..pool.len());
                let b = m.rng.usize(..pool.len());
                let mut d = pool[a].clone();
                let other = pool[b].clone();
                m.mutate(&mut d, &other);
                run(&d, &mut stats, "mutated input")?;
                // Keep a few mutants to mutate further (bounded pool).
                if m.rng.u8(..32) == 0 {
                    if pool.len() < 512 {
                        pool.push(d);
                    } else {
                        let i = m.rng.usize(fixed..pool.len());
                        pool[i] = d;
                    }
                }
            }
            stats.elapsed = start.elapsed();
            Ok(stats)
        })
    };

    // Watchdog.
    let mut last = (0u64, Instant::now());
    while !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        let p = progress.load(Ordering::Acquire);
        if p != last.0 {
            last = (p, Instant::now());
        } else if last.1.elapsed() > hang {
            stop.store(true, Ordering::Relaxed);
            let d = current.lock().unwrap().clone();
            let path = save_artifact(target, "hang", &d);
            panic!(
                "{target}: one input ran longer than {hang:?} (seed {seed}); saved to {}",
                path.display()
            );
        }
    }
    match worker.join().expect("fuzz worker") {
        Ok(s) => {
            println!(
                "fuzz {target}: {} execs in {:.1?} ({:.0}/s), seed {seed}, slowest input {:.1?}, \
                 peak allocation {} bytes (input {} bytes)",
                s.execs,
                s.elapsed,
                s.execs as f64 / s.elapsed.as_secs_f64().max(1e-9),
                s.slowest,
                s.max_peak,
                s.max_ratio_input
            );
        }
        Err(e) => panic!("{e} (seed {seed})"),
    }
}

#[test]
fn fuzz_frames() {
    fuzz("frames");
}

#[test]
fn fuzz_value() {
    fuzz("value");
}

#[test]
fn fuzz_record() {
    fuzz("record");
}

#[test]
fn fuzz_snapshot() {
    fuzz("snapshot");
}

#[test]
fn fuzz_json() {
    fuzz("json");
}

#[test]
fn fuzz_recovery() {
    fuzz("recovery");
}

#[test]
fn every_target_has_a_test() {
    for t in fuzzing::TARGETS {
        assert!(
            fuzz_dir().join("corpus").join(t).is_dir(),
            "no seed corpus for target {t}"
        );
    }
}

// ------------------------------------------------------------ seed corpus

mod seeds {
    use igniter_ledger::__private::{codec, fuzzing};
    use igniter_ledger::*;
    use std::path::Path;

    fn sample_values() -> Vec<Value> {
        vec![
            Value::Nil,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Int(300),
            Value::Float(f64::NAN),
            Value::Float(f64::NEG_INFINITY),
            Value::Float(-0.0),
            Value::from("héllo ✓"),
            Value::Bin(vec![0, 1, 255]),
            Value::sym("open"),
            Value::array([Value::Int(1), Value::array([Value::Nil]), Value::map([])]),
            Value::map([
                (MapKey::sym("title"), Value::from("Buy milk")),
                (MapKey::str("title"), Value::sym("s")),
                (MapKey::Int(-5), Value::Float(1.5)),
                (
                    MapKey::sym("meta"),
                    Value::map([
                        (MapKey::sym("z"), Value::Int(1)),
                        (MapKey::sym("a"), Value::Int(2)),
                    ]),
                ),
            ]),
        ]
    }

    pub struct Built {
        pub wal: Vec<u8>,
        pub snap: Vec<u8>,
        pub facts: Vec<Fact>,
    }

    /// A small ledger with every kind of commit and a checkpoint in the middle.
    pub fn build(dir: &Path) -> Built {
        let path = dir.join("seed.wal");
        let l = LedgerStore::open_with(&path, OpenOptions::new().durability(Durability::Flush))
            .unwrap();
        let vals = sample_values();
        for (i, v) in vals.iter().enumerate() {
            let mut w =
                Write::new("things", format!("k{}", i % 4), v.clone()).schema_version(i as u32);
            if i % 3 == 0 {
                w = w.valid_time(1_700_000_000.25 + i as f64);
            }
            if i % 5 == 0 {
                w = w
                    .producer(Value::sym("seed"))
                    .derivation(Value::array([Value::from("x")]));
            }
            l.write(w).unwrap();
        }
        l.append(
            Append::new(
                "events",
                Value::map([(MapKey::sym("order"), Value::from("o1"))]),
            )
            .partition_key("order"),
        )
        .unwrap();
        l.checkpoint().unwrap();
        l.commit(
            Batch::new()
                .write(Write::new("stock", "sku-1", Value::Int(4)))
                .write(Write::new("stock", "sku-1", Value::Int(3)))
                .append(Append::new("moves", Value::from("sku-1 -1"))),
        )
        .unwrap();
        l.write(Write::new("things", "k0", Value::from("after checkpoint")))
            .unwrap();
        let facts = l.fact_log_all(None, None);
        l.close().unwrap();
        Built {
            wal: std::fs::read(&path).unwrap(),
            snap: std::fs::read(igniter_ledger::__private::snapshot_path(&path)).unwrap(),
            facts,
        }
    }

    pub fn json_fact(i: usize, old: bool) -> String {
        let (tx, valid) = if old {
            ("timestamp", "term")
        } else {
            ("transaction_time", "valid_time")
        };
        format!(
            "{{\"id\":\"0191c2f0-0000-7000-8000-00000000000{i}\",\"store\":\"tasks\",\"key\":\"t{i}\",\
             \"value\":{{\"title\":\"x\",\"n\":{i},\"tags\":[\"a\",1.5,null,true]}},\"value_hash\":\"ab\",\
             \"causation\":{},\"{tx}\":1700000000.{i}23456,\"{valid}\":null,\"schema_version\":1,\
             \"producer\":{{\"by\":\"ruby\"}},\"derivation\":null}}",
            if i > 0 {
                format!("\"0191c2f0-0000-7000-8000-00000000000{}\"", i - 1)
            } else {
                "null".into()
            }
        )
    }

    pub fn legacy_wal() -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..3 {
            out.extend(fuzzing::frame(json_fact(i, i == 0).as_bytes()));
        }
        out
    }

    pub fn legacy_snapshot() -> Vec<u8> {
        let mut out = fuzzing::frame(
            br#"{"type":"snapshot_header","fact_count":2,"written_at":1700000000.5}"#,
        );
        for i in 0..2 {
            out.extend(fuzzing::frame(json_fact(i, false).as_bytes()));
        }
        out
    }

    /// Every seed, by target.
    pub fn all(dir: &Path) -> Vec<(&'static str, String, Vec<u8>)> {
        let b = build(dir);
        let mut out: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
        let torn = {
            let mut w = b.wal.clone();
            w.truncate(w.len() - 7);
            w
        };
        let zero_tail = {
            let mut w = b.wal.clone();
            w.extend_from_slice(&[0; 64]);
            w
        };
        out.push(("frames", "wal".into(), b.wal.clone()));
        out.push(("frames", "wal-torn".into(), torn.clone()));
        out.push(("frames", "wal-zero-tail".into(), zero_tail.clone()));
        out.push(("frames", "snapshot".into(), b.snap.clone()));
        out.push(("frames", "legacy-wal".into(), legacy_wal()));
        for (i, v) in sample_values().iter().enumerate() {
            out.push((
                "value",
                format!("value-{i:02}"),
                codec::encode_value(v).bytes,
            ));
        }
        for (i, f) in b.facts.iter().enumerate().step_by(3) {
            out.push(("record", format!("record-{i:02}"), fuzzing::record_bytes(f)));
        }
        out.push(("snapshot", "snapshot".into(), b.snap.clone()));
        out.push(("snapshot", "legacy-snapshot".into(), legacy_snapshot()));
        out.push((
            "snapshot",
            "header-only".into(),
            fuzzing::frame_bodies(&b.snap)[..1]
                .iter()
                .flat_map(|h| fuzzing::frame(h))
                .collect(),
        ));
        for i in 0..3 {
            out.push((
                "json",
                format!("fact-{i}"),
                json_fact(i, i == 1).into_bytes(),
            ));
        }
        out.push((
            "json",
            "snapshot-header".into(),
            br#"{"type":"snapshot_header","fact_count":2,"written_at":1700000000.5}"#.to_vec(),
        ));
        let join = fuzzing::join_recovery_input;
        out.push((
            "recovery",
            "wal-and-snapshot".into(),
            join(&b.wal, Some(&b.snap)),
        ));
        out.push(("recovery", "wal-only".into(), join(&b.wal, None)));
        out.push((
            "recovery",
            "torn-with-snapshot".into(),
            join(&torn, Some(&b.snap)),
        ));
        out.push(("recovery", "zero-tail".into(), join(&zero_tail, None)));
        out.push((
            "recovery",
            "legacy".into(),
            join(&legacy_wal(), Some(&legacy_snapshot())),
        ));
        out
    }
}

/// Rewrites `fuzz/corpus/` from a freshly built ledger. Run by hand when a format
/// changes: `cargo test --test fuzz -- --ignored write_seed_corpus`.
#[test]
#[ignore = "writes the seed corpus into the source tree"]
fn write_seed_corpus() {
    let dir = tempfile::tempdir().unwrap();
    for t in fuzzing::TARGETS {
        let d = fuzz_dir().join("corpus").join(t);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
    }
    for (target, name, data) in seeds::all(dir.path()) {
        std::fs::write(fuzz_dir().join("corpus").join(target).join(name), data).unwrap();
    }
}

/// The seeds a fresh ledger produces also run clean (the committed corpus may be older
/// than the current encoder).
#[test]
fn fresh_seeds_run_clean() {
    let dir = tempfile::tempdir().unwrap();
    for (target, name, data) in seeds::all(dir.path()) {
        let mut peak = 0;
        check_one(target, &data, &mut peak).unwrap_or_else(|e| panic!("{target}/{name}: {e}"));
    }
}
