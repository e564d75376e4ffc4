//! Quick start: write, read, time travel, history, reopen.
//!
//! `cargo run --example quickstart`
use igniter_ledger::{HistoryQuery, LedgerStore, MapKey, Read, Value, Write};

fn reminder(title: &str, status: &str) -> Value {
    Value::map([
        (MapKey::sym("title"), Value::from(title)),
        (MapKey::sym("status"), Value::sym(status)),
    ])
}

fn main() -> igniter_ledger::Result<()> {
    let dir =
        std::env::temp_dir().join(format!("igniter-ledger-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| igniter_ledger::Error::InvalidArgument(e.to_string()))?;
    let path = dir.join("reminders.wal");

    let ledger = LedgerStore::open(&path)?;
    let first = ledger.write(Write::new("reminders", "r1", reminder("Buy milk", "open")))?;
    let second = ledger.write(Write::new("reminders", "r1", reminder("Buy milk", "done")))?;
    println!("wrote {} then {}", first.id(), second.id());
    println!(
        "second.causation == first.id: {}",
        second.causation() == Some(first.id())
    );

    let now = ledger.read(Read::new("reminders", "r1"))?;
    println!(
        "current: {:?}",
        now.as_ref().and_then(|v| v.get_sym("status"))
    );
    let then = ledger.read(Read::new("reminders", "r1").as_of(first.transaction_time()))?;
    println!(
        "as_of first write: {:?}",
        then.as_ref().and_then(|v| v.get_sym("status"))
    );

    let history = ledger.history(HistoryQuery::new("reminders").key("r1"))?;
    println!("history: {} facts", history.len());
    ledger.close()?;

    let reopened = LedgerStore::open(&path)?;
    let report = reopened.open_report().expect("file-backed");
    println!(
        "reopened: {} facts from {} WAL frames",
        report.facts_loaded, report.frames_replayed
    );
    println!(
        "after reopen: {:?}",
        reopened
            .read(Read::new("reminders", "r1"))?
            .and_then(|v| v.get_sym("status").cloned())
    );
    reopened.close()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
