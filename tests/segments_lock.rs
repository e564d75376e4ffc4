//! The directory lock of a segmented ledger: a second open of the same root, from this
//! process or from another one, fails with `Error::Locked` naming the root and writes
//! nothing; a close (or a simulated crash) releases it. (In its own test binary: no other
//! test thread of this process may hold a descriptor that a spawned child could inherit.)

mod common;

use std::path::Path;
use std::process::Command;

use igniter_ledger::segments::{SegmentOptions, SegmentedBackend, LOCK_FILE};
use igniter_ledger::{Durability, Error, LedgerStore, Value, Write};

const CHILD_ENV: &str = "IGNITER_SEGMENT_LOCK_CHILD";

fn opts() -> SegmentOptions {
    SegmentOptions::new().durability(Durability::Flush)
}

/// Child process: tries to open the root and reports what happened.
#[test]
#[ignore = "entry point of the child process started by the cross-process lock test"]
fn segment_lock_probe_child() {
    let Ok(root) = std::env::var(CHILD_ENV) else {
        eprintln!("segment_lock_probe_child only runs as a child of the lock test");
        return;
    };
    match LedgerStore::open_segmented(&root, opts()) {
        Err(Error::Locked { path }) => println!("\nRESULT locked {}", path.display()),
        Err(e) => println!("\nRESULT error {e}"),
        Ok(l) => {
            let n = l.fact_count();
            l.close().unwrap();
            println!("\nRESULT opened {n}");
        }
    }
}

fn probe_from_another_process(root: &Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "segment_lock_probe_child",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_ENV, root)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("RESULT ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no result: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Every file under `root` with its length (what a refused open must not change).
fn tree(root: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let len = std::fs::metadata(&p).unwrap().len();
                out.push((p.to_string_lossy().into_owned(), len));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_second_open_from_another_process_is_refused_until_the_first_closes() {
    let dir = common::tempdir();
    let root = dir.path().join("root");
    let l = LedgerStore::open_segmented(&root, opts()).unwrap();
    l.write(Write::new("a", "k", Value::Int(1))).unwrap();
    assert!(root.join(LOCK_FILE).is_file());
    let before = tree(&root);
    assert_eq!(
        probe_from_another_process(&root),
        format!("locked {}", root.display()),
        "the error names the root"
    );
    assert_eq!(tree(&root), before, "the refused open wrote nothing");
    l.write(Write::new("a", "k", Value::Int(2))).unwrap();
    assert_eq!(l.fact_count(), 2);
    l.close().unwrap();
    assert_eq!(probe_from_another_process(&root), "opened 2");
}

#[test]
fn a_second_handle_in_the_same_process_is_refused() {
    let dir = common::tempdir();
    let root = dir.path().join("root");
    let l = LedgerStore::open_segmented(&root, opts()).unwrap();
    l.write(Write::new("a", "k", Value::Int(1))).unwrap();
    match LedgerStore::open_segmented(&root, opts()) {
        Err(Error::Locked { path }) => assert_eq!(path, root),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second handle opened a locked root"),
    }
    let e = SegmentedBackend::open(&root, opts()).err().expect("locked");
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    assert!(e.to_string().contains(&root.display().to_string()), "{e}");
    // The first handle is unharmed by the refused opens.
    l.write(Write::new("a", "k", Value::Int(2))).unwrap();
    l.close().unwrap();
    let l2 = LedgerStore::open_segmented(&root, opts()).unwrap();
    assert_eq!(l2.fact_count(), 2);
    l2.close().unwrap();
}

#[test]
fn a_dropped_handle_and_a_simulated_crash_release_the_lock() {
    let dir = common::tempdir();
    let root = dir.path().join("root");
    {
        let l = LedgerStore::open_segmented(&root, opts()).unwrap();
        l.write(Write::new("a", "k", Value::Int(1))).unwrap();
    }
    let mut b = SegmentedBackend::open(&root, opts()).unwrap();
    assert!(SegmentedBackend::open(&root, opts()).is_err());
    b.abandon("a");
    let l = LedgerStore::open_segmented(&root, opts()).unwrap();
    assert_eq!(l.fact_count(), 1);
    l.close().unwrap();
    // The crashed handle refuses writes and its close does nothing.
    assert!(b.is_closed());
    b.close().unwrap();
}
