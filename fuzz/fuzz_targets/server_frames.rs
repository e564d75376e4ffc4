//! The ledger server's decoders on client bytes: CRC32 frames (`frame::decode`), then
//! each frame body as a request (`conn::parse_request`, the JSON and nesting limits),
//! then a wire envelope through the protocol interpreter (over a fresh in-memory
//! ledger) or a legacy fact hash through `legacy::decode_fact`. No input may panic.
#![no_main]
use igniter_ledger::protocol::{json, Interpreter};
use igniter_ledger::LedgerStore;
use igniter_ledger_server::server::{conn, frame, legacy};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1 << 20;
const NESTING: usize = 64;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut interp: Option<Interpreter> = None;
    while let Ok(Some((body, used))) = frame::decode(rest, LIMIT) {
        assert_eq!(used, body.len() + frame::OVERHEAD);
        assert!(used <= rest.len());
        let again = frame::encode(body);
        assert_eq!(frame::decode(&again, LIMIT).unwrap().unwrap().0, body);
        if let Ok(req) = conn::parse_request(body, NESTING) {
            assert!(req.is_object());
            assert!(conn::nesting(&req) <= NESTING);
            if req.get("protocol").is_some() {
                let i = interp.get_or_insert_with(|| Interpreter::new(LedgerStore::memory()));
                let answer = i.wire().dispatch(&json::from_json(&req));
                let _ = json::to_json(&answer).to_string();
            } else if let Some(f) = req.get("fact") {
                let _ = legacy::decode_fact(f);
            }
        }
        rest = &rest[used..];
    }
});
