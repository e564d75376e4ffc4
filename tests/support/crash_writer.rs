//! A writer process for crash testing: opens a ledger, writes facts, appends, atomic
//! batches (some of them large) and occasional checkpoints from several threads, and
//! prints one line per acknowledged fact to stdout (flushed before the next commit), until
//! it is killed or `ops` commits are done.
//!
//! Ack line: `ack <fact id> <store> <key> <batch id or 0> <batch size>`; a checkpoint
//! prints `checkpoint <facts>`. `tests/crash_kill.rs` runs this code in a child process,
//! kills it with SIGKILL at random moments and checks that every acknowledged fact
//! survived, that no batch is partly visible, and that causation chains are intact.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use igniter_ledger::{
    Append, Batch, Durability, Fact, LedgerStore, MapKey, OpenOptions, Value, Write,
};

/// Writer threads per process.
pub const THREADS: u64 = 3;
/// Keys of the `kv` store (few, so causation chains grow long).
pub const KEYS: u64 = 16;

fn pad(rng: &mut fastrand::Rng, max: usize) -> Value {
    let n = rng.usize(..=max);
    Value::from("x".repeat(n))
}

fn value(thread: u64, seq: u64, batch: u64, size: usize, pad: Value) -> Value {
    Value::map([
        (MapKey::sym("thread"), Value::Int(thread as i64)),
        (MapKey::sym("seq"), Value::Int(seq as i64)),
        (MapKey::sym("batch"), Value::Int(batch as i64)),
        (MapKey::sym("size"), Value::Int(size as i64)),
        (MapKey::sym("pad"), pad),
    ])
}

fn ack(out: &Mutex<std::io::Stdout>, facts: &[Fact], batch: u64) {
    let mut s = String::new();
    for f in facts {
        s.push_str(&format!(
            "ack {} {} {} {} {}\n",
            f.id(),
            f.store(),
            f.key(),
            batch,
            facts.len()
        ));
    }
    let out = out.lock().unwrap();
    let mut out = out.lock();
    out.write_all(s.as_bytes()).unwrap();
    out.flush().unwrap();
}

/// Runs the writer: returns after `ops` commits per thread (or runs until killed).
pub fn run(path: &Path, durability: Durability, seed: u64, ops: u64) {
    let ledger = LedgerStore::open_with(path, OpenOptions::new().durability(durability))
        .expect("open must never fail after a crash");
    let out = Arc::new(Mutex::new(std::io::stdout()));
    // Batch ids are unique across processes writing the same file: seed-prefixed.
    let batch_ids = Arc::new(AtomicU64::new(seed << 32));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (ledger, out, batch_ids) = (ledger.clone(), out.clone(), batch_ids.clone());
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed.wrapping_mul(31).wrapping_add(t));
                for seq in 0..ops {
                    let roll = rng.u32(..100);
                    if roll < 45 {
                        let key = format!("k{}", rng.u64(..KEYS));
                        let v = value(t, seq, 0, 1, pad(&mut rng, 200));
                        let f = ledger.write(Write::new("kv", key, v)).unwrap();
                        ack(&out, &[f], 0);
                    } else if roll < 65 {
                        let v = value(t, seq, 0, 1, pad(&mut rng, 200));
                        let f = ledger
                            .append(Append::new("log", v).partition_key("thread"))
                            .unwrap();
                        ack(&out, &[f], 0);
                    } else if roll < 97 || (roll < 99 && t != 0) {
                        // An atomic batch; one in eight is large (a frame of ~100-400 KB,
                        // so that a kill can interrupt its write(2) part-way).
                        let big = rng.u8(..8) == 0;
                        let n = if big {
                            rng.usize(50..200)
                        } else {
                            rng.usize(2..8)
                        };
                        let b = batch_ids.fetch_add(1, Ordering::Relaxed) + 1;
                        let mut batch = Batch::new();
                        for _ in 0..n {
                            let p = pad(&mut rng, if big { 2000 } else { 100 });
                            if rng.bool() {
                                let key = format!("k{}", rng.u64(..KEYS));
                                batch = batch.write(Write::new("kv", key, value(t, seq, b, n, p)));
                            } else {
                                batch = batch.append(Append::new("log", value(t, seq, b, n, p)));
                            }
                        }
                        let facts = ledger.commit(batch).unwrap();
                        ack(&out, &facts, b);
                    } else {
                        let r = ledger.checkpoint().unwrap();
                        let out = out.lock().unwrap();
                        let mut out = out.lock();
                        writeln!(out, "checkpoint {}", r.fact_count).unwrap();
                        out.flush().unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    ledger.close().unwrap();
}
