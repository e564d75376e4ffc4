//! Fuzzing the server's decoders (stable toolchain, proptest): the frame decoder, the
//! request parser, the legacy fact decoder, and a live server fed arbitrary frames and
//! arbitrary JSON requests. Nothing may panic, every malformed frame gets an answer or a
//! close, and the server keeps answering afterwards.

mod common;

use std::sync::Arc;

use common::Framed;
use igniter_ledger::LedgerStore;
use igniter_ledger_server::server::conn::parse_request;
use igniter_ledger_server::server::legacy::decode_fact;
use igniter_ledger_server::server::{frame, NullSink, Server, ServerHandle, ServerOptions};
use proptest::prelude::*;
use serde_json::{json, Value as Json};

fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        "[a-z_]{0,12}".prop_map(Json::String),
        prop::sample::select(vec![
            "write_fact",
            "replay",
            "ping",
            "stats",
            "subscribe",
            "ledger.write",
            "ledger.read",
            "ledger.commit",
            "ledger.history",
            "ledger.changes",
            "auth",
            "igniter_store",
            "write",
            "read",
            "query"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "op",
                    "fact",
                    "id",
                    "store",
                    "key",
                    "value",
                    "protocol",
                    "packet",
                    "ops",
                    "expected",
                    "transaction_time",
                    "stores",
                    "after",
                    "limit",
                    "valid_time",
                    "causation",
                    "history",
                    "event",
                    "schema_version",
                    "token"
                ])
                .prop_map(str::to_owned),
                inner,
                0..8
            )
            .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn frame_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), limit in 0usize..512) {
        if let Ok(Some((body, used))) = frame::decode(&bytes, limit) {
            prop_assert!(used <= bytes.len());
            prop_assert_eq!(body.len() + frame::OVERHEAD, used);
            prop_assert!(body.len() <= limit);
        }
    }

    #[test]
    fn frame_round_trip(body in prop::collection::vec(any::<u8>(), 0..512), cut in 0usize..600) {
        let f = frame::encode(&body);
        let (b, used) = frame::decode(&f, 1024).unwrap().unwrap();
        prop_assert_eq!(b, &body[..]);
        prop_assert_eq!(used, f.len());
        if cut < f.len() {
            prop_assert_eq!(frame::decode(&f[..cut], 1024), Ok(None));
        }
    }

    #[test]
    fn request_parser_and_fact_decoder_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), v in arb_json()) {
        let _ = parse_request(&bytes, 16);
        let _ = parse_request(v.to_string().as_bytes(), 4);
        let _ = decode_fact(&v);
        if let Some(f) = v.get("fact") {
            let _ = decode_fact(f);
        }
    }
}

fn server() -> ServerHandle {
    Server::start(
        LedgerStore::memory(),
        ServerOptions::tcp("127.0.0.1:0")
            .max_frame_bytes(4096)
            .max_nesting(16),
        Arc::new(NullSink),
    )
    .unwrap()
}

#[test]
fn live_server_survives_arbitrary_requests() {
    let h = server();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 400,
        ..ProptestConfig::default()
    });
    let c = std::cell::RefCell::new(Framed::connect(h.bind_address()));
    runner
        .run(&arb_json(), |v| {
            let mut c = c.borrow_mut();
            if v.get("op") == Some(&json!("subscribe")) || v.get("op") == Some(&json!("close")) {
                return Ok(());
            }
            c.send(&v);
            match c.recv() {
                Some(a) => {
                    prop_assert!(a.is_object(), "answer {a}");
                    // A panic on a request thread would answer internal_error.
                    prop_assert_ne!(
                        a.get("error_code"),
                        Some(&json!("internal_error")),
                        "{} -> {}",
                        v,
                        a
                    );
                    if a.get("error_code") == Some(&json!("invalid_json")) {
                        *c = Framed::connect(h.bind_address());
                    }
                }
                None => *c = Framed::connect(h.bind_address()),
            }
            Ok(())
        })
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    });
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..64), |bytes| {
            let mut c = Framed::connect(h.bind_address());
            c.send_raw(&frame::encode(&bytes));
            if let Some(a) = c.recv() {
                prop_assert!(a.is_object());
            }
            Ok(())
        })
        .unwrap();
    let mut c = Framed::connect(h.bind_address());
    assert_eq!(c.rpc(json!({"op": "ping"}))["pong"], true);
    h.stop();
}
