//! Rust and Ruby reading each other's typed values (run by `tests/ruby/typed_interop_spec.rb`).
//!
//! ```text
//! cargo run --example typed_interop -- write PATH   # writes the orders below to a WAL
//! cargo run --example typed_interop -- read PATH    # reads the orders the Ruby spec wrote
//! cargo run --example typed_interop                 # both, through a temporary file
//! ```
//!
//! `write` stores `o-1` in `orders` with Symbol keys (what idiomatic Ruby writes) and
//! `o-2` in `orders_str` with String keys. `read` expects `ruby-1` in `orders` (Symbol
//! keys) and `ruby-2` in `orders_str` (String keys), written by the Ruby spec, and checks
//! that they decode into exactly [`ruby_order`]; it exits with status 1 otherwise.
use std::collections::BTreeMap;
use std::process::ExitCode;

use igniter_ledger::{KeyStyle, LedgerStore, Read, Write};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Status {
    Open,
    Paid,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Plain,
    Gift { message: String },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Line {
    sku: String,
    qty: u32,
    price: Option<f64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Order {
    id: String,
    status: Status,
    total: f64,
    note: Option<String>,
    tags: Vec<String>,
    lines: Vec<Line>,
    #[serde(with = "serde_bytes_compat")]
    blob: Vec<u8>,
    by_id: BTreeMap<i64, String>,
    kind: Kind,
    big: i64,
}

/// `Vec<u8>` as binary even when empty (what `serde_bytes` does), without the dependency.
mod serde_bytes_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Vec::<u8>::deserialize(d)
    }
}

/// What `write` stores (the Ruby spec checks it field by field).
fn rust_order(id: &str) -> Order {
    Order {
        id: id.into(),
        status: Status::Paid,
        total: 12.5,
        note: None,
        tags: vec!["gift".into(), "rush".into()],
        lines: vec![
            Line {
                sku: "a".into(),
                qty: 2,
                price: Some(4.0),
            },
            Line {
                sku: "b".into(),
                qty: 1,
                price: None,
            },
        ],
        blob: vec![0, 255],
        by_id: BTreeMap::from([(-1, "minus".into()), (7, "seven".into())]),
        kind: Kind::Gift {
            message: "hi ✓".into(),
        },
        big: 1 << 62,
    }
}

/// What `read` expects the Ruby spec to have written.
fn ruby_order(id: &str) -> Order {
    Order {
        id: id.into(),
        status: Status::Open,
        total: 3.0, // Ruby wrote the Integer 3: an f64 field reads it
        note: Some("from ruby".into()),
        tags: vec!["sym".into(), "str".into()], // a Symbol and a String
        lines: vec![Line {
            sku: "z".into(),
            qty: 5,
            price: Some(0.5),
        }],
        blob: vec![1, 2, 254],
        by_id: BTreeMap::from([(3, "three".into())]),
        kind: Kind::Plain,
        big: -(1 << 62),
    }
}

fn write(path: &str) -> igniter_ledger::Result<()> {
    let ledger = LedgerStore::open(path)?;
    ledger.write(Write::typed("orders", "o-1", &rust_order("o-1"))?)?;
    ledger.write(Write::typed_with(
        "orders_str",
        "o-2",
        &rust_order("o-2"),
        KeyStyle::Strings,
    )?)?;
    ledger.close()
}

fn read(path: &str) -> igniter_ledger::Result<bool> {
    let ledger = LedgerStore::open(path)?;
    let mut ok = true;
    for (store, key) in [("orders", "ruby-1"), ("orders_str", "ruby-2")] {
        let got: Option<Order> = ledger.read_as(Read::new(store, key))?;
        let want = ruby_order(key);
        if got.as_ref() == Some(&want) {
            println!("{store}/{key}: ok");
        } else {
            println!("{store}/{key}: MISMATCH\n  got  {got:?}\n  want {want:?}");
            ok = false;
        }
    }
    ledger.close()?;
    Ok(ok)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["write", path] => write(path).map(|()| true),
        ["read", path] => read(path),
        [] => {
            // Self-check: what `write` stores reads back as the same structs.
            let dir = std::env::temp_dir().join(format!("typed-interop-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join("interop.wal");
            let path = path.to_string_lossy().into_owned();
            let r = write(&path).and_then(|()| {
                let ledger = LedgerStore::open(&path)?;
                let a: Option<Order> = ledger.read_as(Read::new("orders", "o-1"))?;
                let b: Option<Order> = ledger.read_as(Read::new("orders_str", "o-2"))?;
                println!(
                    "o-1 {:?}",
                    ledger.latest("orders", "o-1").map(|f| f.value())
                );
                ledger.close()?;
                Ok(a == Some(rust_order("o-1")) && b == Some(rust_order("o-2")))
            });
            let _ = std::fs::remove_dir_all(&dir);
            r
        }
        _ => {
            eprintln!("usage: typed_interop [write PATH | read PATH]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
