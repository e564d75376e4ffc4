//! Time travel and history: a price list corrected after the fact, read as it was known
//! at different moments (transaction time) and as it was valid at different dates
//! (valid time), plus an order event history read by partition and a scope query.
//!
//! `cargo run --example time_travel`
use igniter_ledger::{
    AccessPath, Append, Batch, HistoryQuery, LedgerStore, MapKey, PartitionQuery, Read, Value,
    Write,
};

fn price(cents: i64) -> Value {
    Value::map([
        (MapKey::sym("cents"), Value::Int(cents)),
        (MapKey::sym("currency"), Value::sym("eur")),
    ])
}

fn cents(v: Option<Value>) -> String {
    v.and_then(|v| v.get_sym("cents").and_then(Value::as_i64))
        .map_or("-".to_owned(), |c| format!("{:.2} EUR", c as f64 / 100.0))
}

fn main() -> igniter_ledger::Result<()> {
    let ledger = LedgerStore::memory();
    const JAN: f64 = 1_704_067_200.0; // 2024-01-01
    const FEB: f64 = 1_706_745_600.0; // 2024-02-01
    const MAR: f64 = 1_709_251_200.0; // 2024-03-01

    let jan = ledger.write(Write::new("prices", "sku-1", price(1000)).valid_time(JAN))?;
    let mar = ledger.write(Write::new("prices", "sku-1", price(1200)).valid_time(MAR))?;
    // Later we learn the price had already changed in February: a correction.
    let fix = ledger.write(Write::new("prices", "sku-1", price(1100)).valid_time(FEB))?;

    println!("== price of sku-1 ==");
    for (label, at) in [
        ("Jan 15", JAN + 14.0 * 86400.0),
        ("Feb 15", FEB + 14.0 * 86400.0),
        ("Mar 15", MAR + 14.0 * 86400.0),
    ] {
        let known_now = ledger.read(Read::new("prices", "sku-1").valid_at(at))?;
        let known_before_fix = ledger.read(
            Read::new("prices", "sku-1")
                .valid_at(at)
                .as_of(mar.transaction_time()),
        )?;
        println!(
            "valid {label}: as known now {:>10} | as known before the correction {:>10}",
            cents(known_now),
            cents(known_before_fix)
        );
    }
    println!(
        "latest write (no valid_at): {}",
        cents(ledger.read(Read::new("prices", "sku-1"))?)
    );
    println!(
        "as_of the first write:      {}",
        cents(ledger.read(Read::new("prices", "sku-1").as_of(jan.transaction_time()))?)
    );

    println!("\n== causation chain of sku-1 ==");
    for e in ledger.causation_chain("prices", "sku-1") {
        println!(
            "{} hash {} caused by {}",
            e.id,
            e.value_hash,
            e.causation.map_or("-".to_owned(), |c| c.to_string())
        );
    }
    let lineage = ledger.lineage("prices", "sku-1");
    println!(
        "depth {} proof {}",
        lineage.depth,
        lineage.proof_hash.unwrap_or_default()
    );
    assert_eq!(fix.causation(), Some(mar.id()));

    println!("\n== order events by partition ==");
    let ev = |order: &str, kind: &str| {
        Value::map([
            (MapKey::sym("order_id"), Value::from(order)),
            (MapKey::sym("kind"), Value::sym(kind)),
        ])
    };
    ledger.commit(
        Batch::new()
            .append(Append::new("order_events", ev("o-1", "placed")).partition_key("order_id"))
            .append(Append::new("order_events", ev("o-2", "placed")).partition_key("order_id")),
    )?;
    ledger.append(Append::new("order_events", ev("o-1", "paid")).partition_key("order_id"))?;
    ledger.append(Append::new("order_events", ev("o-1", "shipped")).partition_key("order_id"))?;
    for f in ledger.history_partition(PartitionQuery::new("order_events", "order_id", "o-1"))? {
        println!(
            "o-1 at {}: {:?}",
            f.transaction_time(),
            f.value()
                .get_sym("kind")
                .and_then(Value::as_str)
                .unwrap_or("?")
        );
    }
    println!(
        "all order events: {}",
        ledger.history(HistoryQuery::new("order_events"))?.len()
    );

    println!("\n== scope query ==");
    ledger.register_path(
        AccessPath::scope("orders", "open").filter(MapKey::sym("status"), Value::sym("open")),
    )?;
    for (k, s) in [("o-1", "open"), ("o-2", "open"), ("o-1", "closed")] {
        ledger.write(Write::new(
            "orders",
            k,
            Value::map([(MapKey::sym("status"), Value::sym(s))]),
        ))?;
    }
    let open: Vec<String> = ledger
        .query("orders", "open", None)?
        .iter()
        .map(|f| f.key().to_owned())
        .collect();
    println!("open orders now: {open:?}");
    println!("facts in the ledger: {}", ledger.fact_count());
    Ok(())
}
