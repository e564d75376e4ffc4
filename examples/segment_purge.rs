//! Retention by whole segments, from Rust: a segmented ledger drops the sealed segments
//! that fall out of each store's retention window, with a receipt for each, and carries
//! forward any fact still the latest of its key (the Ruby twin is `segment_purge.rb`).
//!
//! `cargo run --example segment_purge`
use igniter_ledger::retention::RetentionPolicy;
use igniter_ledger::segments::SegmentOptions;
use igniter_ledger::{Durability, LedgerStore, MapKey, Read, Value, Write};

fn reading(celsius: i64) -> Value {
    Value::map([(MapKey::sym("celsius"), Value::Int(celsius))])
}

fn show(label: &str, receipts: &[serde_json::Value]) {
    println!("{label}: {} segment(s) purged", receipts.len());
    for r in receipts {
        println!(
            "  {}: {} facts, {} bytes, strategy {}, carried forward {}",
            r["segment_id"],
            r["fact_count"],
            r["byte_size"],
            r["purge_strategy"],
            r.get("carried_forward").cloned().unwrap_or(0.into())
        );
        println!("    reason: {}", r["reason"]);
    }
}

fn main() -> Result<(), igniter_ledger::Error> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path().join("ledger");
    let opts = SegmentOptions::new()
        .durability(Durability::Flush)
        .retention("readings", RetentionPolicy::rolling_window(1.0)?)
        .retention("sessions", RetentionPolicy::ephemeral())
        .retention("invoices", RetentionPolicy::permanent());
    let l = LedgerStore::open_segmented(&root, opts.clone())?;
    for generation in 0..3i64 {
        for i in 0..5 {
            l.write(Write::new(
                "readings",
                format!("sensor-{i}"),
                reading(20 + generation),
            ))?;
        }
        l.write(Write::new(
            "readings",
            format!("sensor-old-{generation}"),
            reading(0),
        ))?;
        l.write(Write::new(
            "sessions",
            format!("s{generation}"),
            Value::from("user"),
        ))?;
        l.write(Write::new(
            "invoices",
            format!("inv-{generation}"),
            Value::Int(100),
        ))?;
        l.seal_segments()?; // the segmented checkpoint: every live segment is sealed
    }
    l.write(Write::new("readings", "sensor-0", reading(30)))?;

    show("sessions (ephemeral)", &l.purge_segments(Some("sessions"))?);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    show(
        "readings (rolling_window 1s)",
        &l.purge_segments(Some("readings"))?,
    );
    show("invoices (permanent)", &l.purge_segments(Some("invoices"))?);
    for e in l.compaction_activity(None) {
        println!(
            "activity: {} {:?} {} facts",
            e.kind.name(),
            e.store,
            e.fact_count
        );
    }
    l.close()?;

    let l = LedgerStore::open_segmented(&root, opts)?;
    let stats = l.storage_stats(None).expect("segmented");
    for (store, s) in stats["stores"].as_object().expect("stores") {
        println!(
            "after reopen: {store} {} sealed / {} facts, {} purge receipts",
            s["sealed_count"], s["fact_count"], s["purge_receipt_count"]
        );
    }
    println!(
        "sensor-0 = {:?}; sensor-old-0 (carried forward) = {:?}",
        l.read(Read::new("readings", "sensor-0"))?,
        l.read(Read::new("readings", "sensor-old-0"))?
    );
    l.close()
}
