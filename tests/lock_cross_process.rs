//! A second open of a ledger from another process fails with `Error::Locked` and
//! writes nothing; once the first process closes it, the other can open it. (In its own
//! test binary: no other test thread of this process may hold a descriptor that a
//! spawned child could inherit.)

mod common;

use std::path::Path;
use std::process::Command;

use igniter_ledger::{Error, LedgerStore, Value, Write};

const CHILD_ENV: &str = "IGNITER_LEDGER_LOCK_CHILD";

/// Child process: tries to open the path and reports what happened.
#[test]
#[ignore = "entry point of the child process started by a_second_open_from_another_process_is_locked"]
fn lock_probe_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        eprintln!("lock_probe_child only runs as a child of the lock test");
        return;
    };
    match LedgerStore::open(&path) {
        Err(Error::Locked { .. }) => println!("\nRESULT locked"),
        Err(e) => println!("\nRESULT error {e}"),
        Ok(l) => println!("\nRESULT opened {}", l.fact_count()),
    }
}

fn probe_from_another_process(path: &Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "lock_probe_child",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_ENV, path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("RESULT ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no result: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_second_open_from_another_process_is_locked() {
    let dir = common::tempdir();
    let path = dir.path().join("locked.wal");
    let l = LedgerStore::open(&path).unwrap();
    l.write(Write::new("kv", "k", Value::Int(1))).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(probe_from_another_process(&path), "locked");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        len,
        "nothing written"
    );
    assert_eq!(l.fact_count(), 1);
    l.close().unwrap();
    assert_eq!(probe_from_another_process(&path), "opened 1");
}
