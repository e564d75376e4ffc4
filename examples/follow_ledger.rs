//! Following the ledger from Rust: a consumer thread follows every commit of two stores,
//! persists its cursor, stops; later it resumes from that cursor after a reopen, with no
//! gap and no repeat.
//!
//! `cargo run --example follow_ledger`
use std::time::Duration;

use igniter_ledger::changefeed::{ChangesQuery, Cursor};
use igniter_ledger::{LedgerStore, Value, Write};

fn main() -> igniter_ledger::Result<()> {
    let dir = std::env::temp_dir().join(format!("igniter-ledger-follow-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| igniter_ledger::Error::InvalidArgument(e.to_string()))?;
    let path = dir.join("shop.wal");

    let ledger = LedgerStore::open(&path)?;
    // A consumer on another thread: everything from the start, then live commits.
    let mut follower = ledger.follow(&ChangesQuery::new().stores(["orders", "payments"]))?;
    let consumer = std::thread::spawn(move || {
        let mut last = Cursor::default();
        while let Ok(Some(e)) = follower.next_timeout(Duration::from_millis(200)) {
            println!(
                "  seq {:>2}  {:<8} {:<4} fact {}",
                e.sequence(),
                e.store(),
                e.key(),
                e.fact_id()
            );
            last = e.cursor(); // a real consumer persists this
        }
        last
    });
    ledger.write(Write::new("orders", "o1", Value::from("placed")))?;
    ledger.write(Write::new("audit", "a1", Value::from("not followed")))?;
    ledger.write(Write::new("payments", "p1", Value::Int(42)))?;
    let cursor = consumer.join().expect("consumer thread");
    println!("consumer stopped at cursor {cursor}");
    ledger.write(Write::new("orders", "o1", Value::from("shipped")))?; // while it is away
    ledger.close()?;

    // Later, in another process perhaps: reopen and resume from the persisted cursor.
    let ledger = LedgerStore::open(&path)?;
    println!(
        "reopened: ledger {} head {}",
        ledger.ledger_id().unwrap(),
        ledger.head().sequence
    );
    for e in ledger.changes(
        &ChangesQuery::new()
            .after(cursor)
            .stores(["orders", "payments"]),
    )? {
        println!("  resumed: seq {} {} {}", e.sequence(), e.store(), e.key());
    }
    ledger.close()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
