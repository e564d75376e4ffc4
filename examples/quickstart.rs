//! Quick start: typed values in and out, time travel, history, reopen.
//!
//! `cargo run --example quickstart`
use igniter_ledger::{value, HistoryQuery, LedgerStore, Read, Write};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Status {
    Open,
    Done,
}

/// Stored as `{title: "Buy milk", status: :open}`: the Hash Ruby code writes and reads.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Reminder {
    title: String,
    status: Status,
}

fn main() -> igniter_ledger::Result<()> {
    let dir =
        std::env::temp_dir().join(format!("igniter-ledger-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| igniter_ledger::Error::InvalidArgument(e.to_string()))?;
    let path = dir.join("reminders.wal");

    let ledger = LedgerStore::open(&path)?;
    let mut milk = Reminder {
        title: "Buy milk".into(),
        status: Status::Open,
    };
    let first = ledger.write(Write::typed("reminders", "r1", &milk)?)?;
    milk.status = Status::Done;
    let second = ledger.write(Write::typed("reminders", "r1", &milk)?)?;
    println!("wrote {} then {}", first.id(), second.id());
    println!(
        "second.causation == first.id: {}",
        second.causation() == Some(first.id())
    );
    // What is stored is the Hash a Ruby reader sees.
    assert_eq!(second.value(), value!({ title: "Buy milk", status: :done }));

    let now: Option<Reminder> = ledger.read_as(Read::new("reminders", "r1"))?;
    println!("current: {:?}", now.map(|r| r.status));
    let then: Option<Reminder> =
        ledger.read_as(Read::new("reminders", "r1").as_of(first.transaction_time()))?;
    println!("as_of first write: {:?}", then.map(|r| r.status));

    // Values without a Rust type: written literally.
    ledger.write(Write::new(
        "reminders",
        "r2",
        value!({ title: "Call mom", status: :open, tags: ["family"], due: nil }),
    ))?;
    let r2 = ledger
        .read(Read::new("reminders", "r2"))?
        .unwrap_or_default();
    println!("r2 tags: {:?}", r2.get_sym("tags"));

    let versions: Vec<Reminder> = ledger.history_as(HistoryQuery::new("reminders").key("r1"))?;
    println!(
        "history of r1: {:?}",
        versions.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    ledger.close()?;

    let reopened = LedgerStore::open(&path)?;
    let report = reopened.open_report().expect("file-backed");
    println!(
        "reopened: {} facts from {} WAL frames",
        report.facts_loaded, report.frames_replayed
    );
    let after: Option<Reminder> = reopened.read_as(Read::new("reminders", "r1"))?;
    println!("after reopen: {after:?}");
    reopened.close()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
