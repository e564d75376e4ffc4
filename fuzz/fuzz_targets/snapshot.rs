#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    igniter_ledger::__private::fuzzing::snapshot(data);
});
