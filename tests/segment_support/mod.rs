//! Helpers shared by the segmented-storage tests (`segments*.rs`): list the files under a
//! root, copy a closed root aside, compare two facts field by field. Each test crate uses
//! some of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use igniter_ledger::Fact;

/// Every file under `root` whose name ends with `suffix`, sorted; a directory that does
/// not exist yet (a store with no segment) lists nothing.
pub fn files(root: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(list) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in list {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Copies a closed segmented root, files and directories, to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every field of two facts, bit for bit (value bytes, hash, times, metadata).
pub fn same(a: &Fact, b: &Fact) -> bool {
    a.id() == b.id()
        && a.store() == b.store()
        && a.key() == b.key()
        && a.value_bytes() == b.value_bytes()
        && a.value() == b.value()
        && a.value_hash() == b.value_hash()
        && a.causation() == b.causation()
        && a.transaction_time() == b.transaction_time()
        && a.valid_time().map(f64::to_bits) == b.valid_time().map(f64::to_bits)
        && a.schema_version() == b.schema_version()
        && a.producer_bytes() == b.producer_bytes()
        && a.derivation_bytes() == b.derivation_bytes()
}
