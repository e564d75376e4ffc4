//! Time travel and history: a price list corrected after the fact, read as it was known
//! at different moments (transaction time) and as it was valid at different dates
//! (valid time), plus an order event history read by partition and a scope query.
//!
//! Prices and events are Rust types going through serde (`Write::typed`, `read_as`,
//! `history_partition_as`); the scope's filter and the order statuses use `value!`.
//!
//! `cargo run --example time_travel`
use igniter_ledger::{
    value, AccessPath, Append, Batch, HistoryQuery, LedgerStore, MapKey, PartitionQuery, Read,
    Write,
};
use serde::{Deserialize, Serialize};

/// Stored as `{cents: 1000, currency: :eur}`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
struct Price {
    cents: i64,
    currency: Currency,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Currency {
    Eur,
}

/// Stored as `{order_id: "o-1", kind: :placed}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct OrderEvent {
    order_id: String,
    kind: EventKind,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum EventKind {
    Placed,
    Paid,
    Shipped,
}

fn price(cents: i64) -> Price {
    Price {
        cents,
        currency: Currency::Eur,
    }
}

fn cents(p: Option<Price>) -> String {
    p.map_or("-".to_owned(), |p| {
        format!("{:.2} EUR", p.cents as f64 / 100.0)
    })
}

fn main() -> igniter_ledger::Result<()> {
    let ledger = LedgerStore::memory();
    const JAN: f64 = 1_704_067_200.0; // 2024-01-01
    const FEB: f64 = 1_706_745_600.0; // 2024-02-01
    const MAR: f64 = 1_709_251_200.0; // 2024-03-01

    let jan = ledger.write(Write::typed("prices", "sku-1", &price(1000))?.valid_time(JAN))?;
    let mar = ledger.write(Write::typed("prices", "sku-1", &price(1200))?.valid_time(MAR))?;
    // Later we learn the price had already changed in February: a correction.
    let fix = ledger.write(Write::typed("prices", "sku-1", &price(1100))?.valid_time(FEB))?;
    assert_eq!(fix.value(), value!({ cents: 1100, currency: :eur }));

    println!("== price of sku-1 ==");
    for (label, at) in [
        ("Jan 15", JAN + 14.0 * 86400.0),
        ("Feb 15", FEB + 14.0 * 86400.0),
        ("Mar 15", MAR + 14.0 * 86400.0),
    ] {
        let known_now = ledger.read_as(Read::new("prices", "sku-1").valid_at(at))?;
        let known_before_fix = ledger.read_as(
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
        cents(ledger.read_as(Read::new("prices", "sku-1"))?)
    );
    println!(
        "as_of the first write:      {}",
        cents(ledger.read_as(Read::new("prices", "sku-1").as_of(jan.transaction_time()))?)
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
    let ev = |order: &str, kind: EventKind| -> igniter_ledger::Result<Append> {
        let event = OrderEvent {
            order_id: order.into(),
            kind,
        };
        Ok(Append::typed("order_events", &event)?.partition_key("order_id"))
    };
    ledger.commit(
        Batch::new()
            .append(ev("o-1", EventKind::Placed)?)
            .append(ev("o-2", EventKind::Placed)?),
    )?;
    ledger.append(ev("o-1", EventKind::Paid)?)?;
    ledger.append(ev("o-1", EventKind::Shipped)?)?;
    let o1 = PartitionQuery::new("order_events", "order_id", "o-1");
    for f in ledger.history_partition(o1.clone())? {
        let event: OrderEvent = f.value_as()?;
        println!("o-1 at {}: {:?}", f.transaction_time(), event.kind);
    }
    let kinds: Vec<EventKind> = ledger
        .history_partition_as::<OrderEvent>(o1)?
        .into_iter()
        .map(|e| e.kind)
        .collect();
    println!("o-1 kinds: {kinds:?}");
    println!(
        "all order events: {}",
        ledger.history(HistoryQuery::new("order_events"))?.len()
    );

    println!("\n== scope query ==");
    ledger.register_path(
        AccessPath::scope("orders", "open").filter(MapKey::sym("status"), value!(:open)),
    )?;
    for (k, status) in [
        ("o-1", value!({ status: :open })),
        ("o-2", value!({ status: :open })),
        ("o-1", value!({ status: :closed })),
    ] {
        ledger.write(Write::new("orders", k, status))?;
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
