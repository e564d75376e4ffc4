//! Tests of the ledger handle that reach into its internals.

use super::*;
use crate::ledger::request::Expected;
use crate::ledger::value::Value;
use crate::ledger::wal;

#[test]
fn concurrent_checkpoints_do_not_collide() {
    // Found by tests/crash_kill.rs: two checkpoints at once wrote the same
    // `.snap.tmp` and one renamed it from under the other ("No such file").
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.wal");
    let l = LedgerStore::open_with(&path, OpenOptions::new().durability(Durability::None)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let l = l.clone();
            s.spawn(move || {
                for i in 0..40 {
                    l.write(Write::new("s", format!("{t}-{i}"), Value::Int(i)))
                        .unwrap();
                    l.checkpoint().unwrap();
                }
            });
        }
    });
    l.close().unwrap();
    drop(l);
    let l = LedgerStore::open(&path).unwrap();
    assert_eq!(l.fact_count(), 160);
    assert!(matches!(
        l.open_report().unwrap().snapshot,
        crate::SnapshotOutcome::Loaded { .. }
    ));
}

#[test]
fn every_frame_written_looks_like_a_body_to_the_damage_search() {
    // The search past damage only checksums candidates that start like our bodies;
    // if the writer's format changes, this keeps the two in step.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.wal");
    let l = LedgerStore::open_with(&path, OpenOptions::new().durability(Durability::None)).unwrap();
    l.write(Write::new("s", "k", Value::Int(1))).unwrap();
    l.append(Append::new("h", Value::Nil)).unwrap();
    for n in [2usize, 15, 16, 300, 70_000] {
        let mut b = Batch::new();
        for i in 0..n {
            b = b.write(Write::new("s", format!("{i}"), Value::Nil));
        }
        l.commit(b).unwrap();
    }
    l.checkpoint().unwrap();
    l.close().unwrap();
    let wal_bytes = std::fs::read(&path).unwrap();
    let (frames, end) = wal::scan(&wal_bytes, 0);
    assert!(matches!(end, wal::ScanEnd::Clean));
    assert_eq!(frames.len(), 7);
    let snap = std::fs::read(snapshot::snapshot_path(&path)).unwrap();
    let (chunks, _) = wal::scan(&snap, 0);
    assert!(chunks.len() > 2);
    for (buf, f) in frames
        .iter()
        .map(|f| (&wal_bytes, f))
        .chain(chunks[1..].iter().map(|f| (&snap, f)))
    {
        assert!(
            wal::looks_like_a_body(&buf[f.body.0..f.body.1]),
            "frame at {}",
            f.offset
        );
    }
    // 0.5.2 JSON bodies too.
    assert!(wal::looks_like_a_body(br#"{"id":"x"}"#));
}

#[test]
fn batches_track_repeated_keys_wherever_they_are() {
    let l = LedgerStore::memory();
    // The second write of k sees the first: Absent fails.
    let e = l
        .commit(
            Batch::new()
                .write(Write::new("s", "k", Value::Int(1)).expected(Expected::Absent))
                .write(Write::new("s", "k", Value::Int(2)).expected(Expected::Absent)),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }));
    assert_eq!(l.fact_count(), 0);
    // A repeat far apart in a large batch chains to the earlier op; same key in
    // another store does not.
    let mut b = Batch::new().write(Write::new("s", "r", Value::Int(0)));
    for i in 0..1000 {
        b = b.write(Write::new("s", format!("u{i}"), Value::Int(i)));
    }
    b = b
        .write(Write::new("t", "r", Value::Int(1)))
        .write(Write::new("s", "r", Value::Int(2)));
    let facts = l.commit(b).unwrap();
    let n = facts.len();
    assert_eq!(facts[n - 1].causation(), Some(facts[0].id()));
    assert_eq!(facts[n - 2].causation(), None);
    assert_eq!(facts[1].causation(), None);
}

#[test]
fn store_is_send_sync() {
    fn assert<T: Send + Sync>() {}
    assert::<LedgerStore>();
    assert::<Fact>();
}

#[test]
fn lazy_index_builds_race_with_writers_and_each_other() {
    // Partition indexes and scope histories are built by the first query that needs
    // them, under the upgradable lock, while writers keep committing and other readers
    // ask for the same index: every answer is a prefix of the final one.
    use crate::ledger::access::AccessPath;
    use crate::ledger::request::PartitionQuery;
    use crate::ledger::value::MapKey;
    let l = LedgerStore::memory();
    let ev = |i: i64| {
        Value::map([
            (MapKey::sym("order"), Value::from(format!("o{}", i % 3))),
            (MapKey::sym("flag"), Value::Bool(i % 2 == 0)),
        ])
    };
    for i in 0..300 {
        l.append(Append::new("h", ev(i))).unwrap();
        l.write(Write::new("s", format!("k{}", i % 50), ev(i)))
            .unwrap();
    }
    l.register_path(
        AccessPath::scope("s", "flagged").filter(MapKey::sym("flag"), Value::Bool(true)),
    )
    .unwrap();
    let mid = l.latest("s", "k0").unwrap().transaction_time();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 300..600 {
                l.append(Append::new("h", ev(i))).unwrap();
                l.write(Write::new("s", format!("k{}", i % 50), ev(i)))
                    .unwrap();
            }
        });
        for _ in 0..4 {
            s.spawn(|| {
                let mut last = 0;
                for _ in 0..50 {
                    let n = l
                        .history_partition(PartitionQuery::new("h", "order", "o1"))
                        .unwrap()
                        .len();
                    assert!(n >= last && n >= 100, "{n} after {last}");
                    last = n;
                    let then = l.query("s", "flagged", Some(mid)).unwrap();
                    assert_eq!(then.len(), 25);
                }
            });
        }
    });
    let all = l
        .history_partition(PartitionQuery::new("h", "order", "o1"))
        .unwrap();
    assert_eq!(all.len(), 200);
    assert_eq!(l.query("s", "flagged", Some(mid)).unwrap().len(), 25);
}
