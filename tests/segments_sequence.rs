//! Changefeed sequences of a segmented ledger stay each fact's for its whole life: a
//! reopen after `purge_segments` numbers the surviving facts as before (no renumbering),
//! keeps the ledger's identity when its first fact was purged, and goes on from the
//! same next sequence; a cursor taken before the purge resumes exactly after it.

use std::collections::BTreeMap;

use igniter_ledger::changefeed::{ChangesQuery, Cursor};
use igniter_ledger::retention::RetentionPolicy;
use igniter_ledger::segments::SegmentOptions;
use igniter_ledger::{Batch, Durability, LedgerStore, Value, Write};
use uuid::Uuid;

mod segment_support;
use segment_support::files;

fn opts() -> SegmentOptions {
    SegmentOptions::new()
        .durability(Durability::Flush)
        .retention("r", RetentionPolicy::ephemeral())
}

/// Fact id → sequence, over the whole log.
fn sequences(l: &LedgerStore) -> BTreeMap<Uuid, u64> {
    l.changes(&ChangesQuery::new())
        .unwrap()
        .iter()
        .map(|e| (e.fact().id(), e.sequence()))
        .collect()
}

/// Writes a few rounds to the purged store `r` (old keys that only live in sealed
/// segments, and `k`, rewritten each round) and the permanent store `p`, sealing after
/// each round.
fn rounds(l: &LedgerStore, from: i64, to: i64) {
    for round in from..to {
        l.write(Write::new("r", format!("old{round}"), Value::Int(round)))
            .unwrap();
        l.write(Write::new("p", format!("p{round}"), Value::Int(round)))
            .unwrap();
        l.commit(
            Batch::new()
                .write(Write::new("r", "k", Value::Int(round)))
                .write(Write::new("p", "k", Value::Int(round))),
        )
        .unwrap();
        l.write(Write::new("r", format!("gone{round}"), Value::Int(round)))
            .unwrap();
        l.write(Write::new("r", format!("gone{round}"), Value::Nil))
            .unwrap();
        l.seal_segments().unwrap();
    }
}

#[test]
fn a_reopen_after_purge_segments_keeps_every_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let l = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    rounds(&l, 0, 4);
    let identity = l.ledger_id().unwrap();
    let before = sequences(&l);
    assert_eq!(
        before.values().copied().collect::<Vec<_>>(),
        (1..=before.len() as u64).collect::<Vec<_>>()
    );
    // A consumer's cursor somewhere in the middle, and the facts after it.
    let cursor = Cursor::in_ledger(7, Some(identity));
    let receipts = l.purge_segments(None).unwrap();
    assert!(!receipts.is_empty(), "the test must purge something");
    l.close().unwrap();

    let l = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    let after = sequences(&l);
    assert!(after.len() < before.len(), "facts were purged");
    for (id, seq) in &after {
        assert_eq!(
            before.get(id),
            Some(seq),
            "fact {id} kept its sequence across purge and reopen"
        );
    }
    // The first fact (r/old0) was purged: the identity stays.
    assert_eq!(l.ledger_id(), Some(identity));
    let next = l.write(Write::new("p", "new", Value::Int(1))).unwrap();
    let head = l.head();
    assert_eq!(head.sequence, before.len() as u64 + 1);
    let tail = l
        .changes(&ChangesQuery::new().after(Cursor::in_ledger(before.len() as u64, Some(identity))))
        .unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].fact().id(), next.id());
    // The pre-purge cursor resumes with exactly the kept facts after it (or is too old).
    match l.changes(&ChangesQuery::new().after(cursor)) {
        Ok(events) => {
            let want: Vec<u64> = after
                .values()
                .copied()
                .filter(|&s| s > 7)
                .chain([head.sequence])
                .collect();
            let mut got: Vec<u64> = events.iter().map(|e| e.sequence()).collect();
            got.sort_unstable();
            assert_eq!(got, want);
        }
        Err(e) => assert!(e.to_string().contains("too old"), "{e}"),
    }
    // Purge again after more rounds, reopen again: still the same numbers.
    rounds(&l, 4, 6);
    let before2 = sequences(&l);
    l.purge_segments(None).unwrap();
    l.close().unwrap();
    let l = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    let after2 = sequences(&l);
    assert!(after2.len() < before2.len());
    for (id, seq) in &after2 {
        assert_eq!(before2.get(id), Some(seq), "fact {id}, second purge");
    }
    assert_eq!(l.ledger_id(), Some(identity));
    assert_eq!(l.head().sequence, *before2.values().max().unwrap());
    l.close().unwrap();
}

#[test]
fn a_reopen_without_purge_numbers_as_committed() {
    // Multi-store batches share a transaction time; the reopened order (and so the
    // numbering) must still be the commit order.
    let dir = tempfile::tempdir().unwrap();
    let l = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    for i in 0..20 {
        l.commit(
            Batch::new()
                .write(Write::new("z", format!("k{i}"), Value::Int(i)))
                .write(Write::new("a", format!("k{i}"), Value::Int(i)))
                .write(Write::new("m", format!("k{i}"), Value::Int(i))),
        )
        .unwrap();
    }
    let before = sequences(&l);
    l.close().unwrap();
    let l = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    assert_eq!(sequences(&l), before);
    l.close().unwrap();
}

#[test]
fn a_purge_cut_short_before_the_segment_went_does_not_skip_its_sequences() {
    // The table is written before a segment is removed. A crash in between leaves the
    // segment (and its facts) in place: its ranges must not be applied.
    let dir = tempfile::tempdir().unwrap();
    let l = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    rounds(&l, 0, 3);
    let before = sequences(&l);
    // Keep copies of the sealed segments of the purged store (with their manifests).
    let keep = tempfile::tempdir().unwrap();
    let saved: Vec<(std::path::PathBuf, std::path::PathBuf)> = files(dir.path(), "")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("store=r"))
        .enumerate()
        .map(|(i, p)| {
            let copy = keep.path().join(i.to_string());
            std::fs::copy(&p, &copy).unwrap();
            (p, copy)
        })
        .collect();
    assert!(!l.purge_segments(None).unwrap().is_empty());
    l.close().unwrap();
    assert!(dir
        .path()
        .join(igniter_ledger::segments::SEQUENCES_FILE)
        .exists());
    // "Crash": the purged segments are back (receipts and all).
    for (p, copy) in &saved {
        if !p.exists() {
            std::fs::copy(copy, p).unwrap();
        }
    }
    let l = LedgerStore::open_segmented(dir.path(), opts()).unwrap();
    assert_eq!(sequences(&l), before, "every fact, numbered as committed");
    l.close().unwrap();
}
