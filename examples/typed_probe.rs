//! Single-path probe of the typed decoders, for `perf stat` / `perf record` (instruction
//! counts do not depend on how loaded the machine is, unlike times):
//!
//! ```text
//! cargo build --release --example typed_probe
//! perf stat -e instructions target/release/examples/typed_probe typed 1000000
//! ```
//!
//! Modes: `all` (each of the others, interleaved, best of 7 rounds), `typed` (stored event bytes into a struct), `via_value` (bytes into a `Value`,
//! then into the struct), `value_only` (bytes into a `Value`), `plain_typed` and
//! `plain_rmp` (a String-keyed, Symbol-free encoding of the same event, with our decoder
//! and with rmp-serde), `none` (setup only, to subtract).
use std::hint::black_box;

use igniter_ledger::__private::codec::{decode_value, encode_value};
use igniter_ledger::{from_slice, from_value, to_value, to_value_with, KeyStyle};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Created,
    Paid,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Event {
    order_id: String,
    kind: Kind,
    amount: f64,
    seq: i64,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct PlainEvent {
    order_id: String,
    kind: String,
    amount: f64,
    seq: i64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "typed".into());
    let n: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let ev = Event {
        order_id: "o-7".into(),
        kind: Kind::Paid,
        amount: 45.5,
        seq: 42,
    };
    let stored = encode_value(&to_value(&ev).unwrap()).bytes;
    let plain = PlainEvent {
        order_id: "o-7".into(),
        kind: "paid".into(),
        amount: 45.5,
        seq: 42,
    };
    let plain_bytes = encode_value(&to_value_with(&plain, KeyStyle::Strings).unwrap()).bytes;
    let run = |mode: &str| -> i64 {
        let mut sum = 0i64;
        for _ in 0..n {
            sum += one(mode, &stored, &plain_bytes);
        }
        sum
    };
    if mode == "all" {
        // Interleaved rounds; the minimum per mode is the least disturbed one.
        let modes = [
            "typed",
            "via_value",
            "value_only",
            "plain_typed",
            "plain_rmp",
        ];
        let mut best = [f64::MAX; 5];
        for _ in 0..7 {
            for (i, m) in modes.iter().enumerate() {
                let t = std::time::Instant::now();
                black_box(run(m));
                best[i] = best[i].min(t.elapsed().as_nanos() as f64 / n as f64);
            }
        }
        for (m, ns) in modes.iter().zip(best) {
            println!("{m:12} {ns:8.1} ns/op (best of 7 rounds of {n})");
        }
        return;
    }
    let sum = run(&mode);
    println!("{mode} x{n}: {sum}");
}

fn one(mode: &str, stored: &[u8], plain_bytes: &[u8]) -> i64 {
    {
        match mode {
            "typed" => from_slice::<Event>(black_box(stored)).unwrap().seq,
            "via_value" => {
                from_value::<Event>(decode_value(black_box(stored)).unwrap())
                    .unwrap()
                    .seq
            }
            "value_only" => decode_value(black_box(stored)).is_ok() as i64,
            "plain_typed" => {
                from_slice::<PlainEvent>(black_box(plain_bytes))
                    .unwrap()
                    .seq
            }
            "plain_rmp" => {
                rmp_serde::from_slice::<PlainEvent>(black_box(plain_bytes))
                    .unwrap()
                    .seq
            }
            _ => black_box(1),
        }
    }
}
