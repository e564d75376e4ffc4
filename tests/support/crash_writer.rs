//! A writer process for crash testing: opens a ledger, writes facts, appends, atomic
//! batches (some of them large) and occasional checkpoints from several threads, and
//! prints one line per acknowledged fact to stdout (flushed before the next commit), until
//! it is killed or `ops` commits are done.
//!
//! Lines: `open-begin` before opening and `opened` after; `begin <thread> <kind>` before
//! each operation (`write`, `append`, `batch`, `checkpoint`); then per acknowledged fact
//! `ack <fact id> <store> <key> <batch id or 0> <batch size> <thread>`, or for a
//! checkpoint `checkpoint <facts> <thread>`. Any error or panic prints `error <message>`
//! and exits with status 3 at once, so the test fails the round. The begin lines tell the
//! test which operation each kill interrupted. `tests/crash_kill.rs` runs this code in a child process,
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

fn line(out: &Mutex<std::io::Stdout>, s: &str) {
    let out = out.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = out.lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// Reports a failure of the writer and ends the process at once (a dead thread must not
/// let the round pass).
fn fail(out: &Mutex<std::io::Stdout>, what: &str) -> ! {
    line(out, &format!("error {}\n", what.replace('\n', " ")));
    eprintln!("crash_writer: {what}");
    std::process::exit(3);
}

fn ack(out: &Mutex<std::io::Stdout>, facts: &[Fact], batch: u64, thread: u64) {
    let mut s = String::new();
    for f in facts {
        s.push_str(&format!(
            "ack {} {} {} {} {} {thread}\n",
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
    let out = Arc::new(Mutex::new(std::io::stdout()));
    line(&out, "open-begin\n");
    let ledger = LedgerStore::open_with(path, OpenOptions::new().durability(durability))
        .unwrap_or_else(|e| fail(&out, &format!("open failed after a crash: {e}")));
    line(&out, "opened\n");
    // Batch ids are unique across processes writing the same file: seed-prefixed.
    let batch_ids = Arc::new(AtomicU64::new(seed << 32));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (ledger, out, batch_ids) = (ledger.clone(), out.clone(), batch_ids.clone());
            std::thread::spawn(move || {
                let o = out.clone();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    work(&ledger, &out, &batch_ids, seed, t, ops)
                }));
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => fail(&o, &format!("thread {t}: {e}")),
                    Err(_) => fail(&o, &format!("thread {t} panicked")),
                }
            })
        })
        .collect();
    for t in threads {
        if t.join().is_err() {
            fail(&out, "a writer thread panicked");
        }
    }
    if let Err(e) = ledger.close() {
        fail(&out, &format!("close: {e}"));
    }
}

/// One writer thread's operations.
fn work(
    ledger: &LedgerStore,
    out: &Mutex<std::io::Stdout>,
    batch_ids: &AtomicU64,
    seed: u64,
    t: u64,
    ops: u64,
) -> igniter_ledger::Result<()> {
    let mut rng = fastrand::Rng::with_seed(seed.wrapping_mul(31).wrapping_add(t));
    for seq in 0..ops {
        let roll = rng.u32(..100);
        if roll < 45 {
            let key = format!("k{}", rng.u64(..KEYS));
            let v = value(t, seq, 0, 1, pad(&mut rng, 200));
            line(out, &format!("begin {t} write\n"));
            let f = ledger.write(Write::new("kv", key, v))?;
            ack(out, &[f], 0, t);
        } else if roll < 65 {
            let v = value(t, seq, 0, 1, pad(&mut rng, 200));
            line(out, &format!("begin {t} append\n"));
            let f = ledger.append(Append::new("log", v).partition_key("thread"))?;
            ack(out, &[f], 0, t);
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
            line(out, &format!("begin {t} batch\n"));
            let facts = ledger.commit(batch)?;
            ack(out, &facts, b, t);
        } else {
            line(out, &format!("begin {t} checkpoint\n"));
            let r = ledger.checkpoint()?;
            line(out, &format!("checkpoint {} {t}\n", r.fact_count));
        }
    }
    Ok(())
}
