//! Retention: compaction, exact prune and erasure — results, every read path afterwards,
//! receipts and activity, durability across reopen, bad input.

use std::path::{Path, PathBuf};

use igniter_ledger::retention::{
    ActivityKind, Erase, Prune, RetentionPolicy, Strategy, COMPACTION_RECEIPTS,
};
use igniter_ledger::{
    AccessPath, Append, Durability, Error, HistoryQuery, LedgerStore, MapKey, OpenOptions,
    PartitionQuery, Read, Value, Write,
};

fn v(n: i64) -> Value {
    Value::map([(MapKey::sym("v"), Value::Int(n))])
}

fn file_ledger(dir: &Path) -> (PathBuf, LedgerStore) {
    let path = dir.join("r.wal");
    let l =
        LedgerStore::open_with(&path, OpenOptions::new().durability(Durability::Flush)).unwrap();
    (path, l)
}

/// Every file under `dir`, concatenated.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.extend(std::fs::read(&p).unwrap());
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn ephemeral_keeps_the_latest_of_each_key_and_writes_a_receipt() {
    let l = LedgerStore::memory();
    l.set_retention("sensors", RetentionPolicy::ephemeral())
        .unwrap();
    let a1 = l.write(Write::new("sensors", "s1", v(1))).unwrap();
    l.write(Write::new("sensors", "s1", v(2))).unwrap();
    let a3 = l.write(Write::new("sensors", "s1", v(3))).unwrap();
    let b = l.write(Write::new("sensors", "s2", v(10))).unwrap();
    l.write(Write::new("payments", "p1", v(1))).unwrap();
    l.write(Write::new("payments", "p1", v(2))).unwrap();
    let reports = l.compact(None).unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!((r.dropped_count, r.kept_count), (2, 2));
    assert_eq!(r.strategy, Strategy::Ephemeral);
    assert!(!r.durable);
    // kept: s1 latest, s2, both payments, one receipt
    assert_eq!(l.fact_count(), 5);
    assert_eq!(l.read(Read::new("sensors", "s1")).unwrap(), Some(v(3)));
    assert_eq!(l.read(Read::new("sensors", "s2")).unwrap(), Some(v(10)));
    assert!(l.fact_by_id(a1.id()).is_none());
    assert!(l.fact_ref(a1.id()).is_none());
    assert_eq!(l.fact_by_id(a3.id()).unwrap().id(), a3.id());
    assert_eq!(l.fact_by_id(b.id()).unwrap().id(), b.id());
    assert_eq!(l.causation_chain("payments", "p1").len(), 2);
    assert_eq!(
        l.history_raw(HistoryQuery::new("sensors").key("s1")).len(),
        1
    );
    // as_of before the compaction sees only what is kept
    assert_eq!(
        l.read(Read::new("sensors", "s1").as_of(a1.transaction_time()))
            .unwrap(),
        None
    );
    let receipts = l.compaction_receipts(Some("sensors"));
    assert_eq!(receipts.len(), 1);
    assert_eq!(Some(receipts[0].id()), r.receipt_id);
    let rv = receipts[0].value();
    assert_eq!(rv.get_sym("type"), Some(&Value::sym("compaction_receipt")));
    assert_eq!(rv.get_sym("compacted_store"), Some(&Value::sym("sensors")));
    assert_eq!(rv.get_sym("compacted_count"), Some(&Value::Int(2)));
    assert_eq!(
        rv.get_sym("oldest_dropped"),
        Some(&Value::from(a1.id().to_string()))
    );
    assert!(matches!(rv.get_sym("compacted_at"), Some(Value::Float(_))));
    assert_eq!(receipts[0].store(), COMPACTION_RECEIPTS);
    assert!(receipts[0].key().starts_with("sensors_"));
    // nothing more to drop: a report, no receipt
    let again = l.compact(Some("sensors")).unwrap();
    assert_eq!(again[0].dropped_count, 0);
    assert_eq!(again[0].receipt_id, None);
    assert_eq!(l.compaction_receipts(None).len(), 1);
}

#[test]
fn rolling_window_keeps_recent_facts_and_the_latest() {
    let l = LedgerStore::memory();
    l.set_retention("r", RetentionPolicy::rolling_window(0.15).unwrap())
        .unwrap();
    l.write(Write::new("r", "k", v(1))).unwrap();
    l.write(Write::new("r", "k", v(2))).unwrap();
    l.write(Write::new("r", "old", v(0))).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    l.write(Write::new("r", "k", v(3))).unwrap();
    l.write(Write::new("r", "k", v(4))).unwrap();
    let r = l.compact(None).unwrap();
    assert_eq!((r[0].dropped_count, r[0].kept_count), (2, 3));
    let chain: Vec<Value> = l
        .history_raw(HistoryQuery::new("r").key("k"))
        .iter()
        .map(|f| f.value())
        .collect();
    assert_eq!(chain, vec![v(3), v(4)]);
    // the single old fact of "old" is its latest: kept
    assert_eq!(l.read(Read::new("r", "old")).unwrap(), Some(v(0)));
}

#[test]
fn permanent_stores_and_stores_without_policy_are_never_touched() {
    let l = LedgerStore::memory();
    assert!(l.compact(None).unwrap().is_empty());
    l.set_retention("pay", RetentionPolicy::permanent())
        .unwrap();
    l.write(Write::new("pay", "p", v(1))).unwrap();
    l.write(Write::new("pay", "p", v(2))).unwrap();
    assert!(l.compact(None).unwrap().is_empty());
    assert_eq!(l.causation_chain("pay", "p").len(), 2);
}

#[test]
fn indexes_scopes_partitions_and_coercions_survive_a_compaction() {
    let l = LedgerStore::memory();
    l.register_path(
        AccessPath::scope("tasks", "open").filter(MapKey::sym("open"), Value::Bool(true)),
    )
    .unwrap();
    l.set_retention("tasks", RetentionPolicy::ephemeral())
        .unwrap();
    let task = |open: bool, n: i64| {
        Value::map([
            (MapKey::sym("open"), Value::Bool(open)),
            (MapKey::sym("n"), Value::Int(n)),
        ])
    };
    l.write(Write::new("tasks", "t1", task(true, 1))).unwrap();
    l.write(Write::new("tasks", "t1", task(false, 2))).unwrap();
    l.write(Write::new("tasks", "t2", task(false, 1))).unwrap();
    l.write(Write::new("tasks", "t2", task(true, 2))).unwrap();
    let ev = |o: &str| Value::map([(MapKey::sym("order"), Value::from(o))]);
    l.set_retention("events", RetentionPolicy::ephemeral())
        .unwrap();
    l.append(Append::new("events", ev("o1")).partition_key("order"))
        .unwrap();
    l.append(Append::new("events", ev("o2")).partition_key("order"))
        .unwrap();
    l.append(Append::new("events", ev("o1")).partition_key("order"))
        .unwrap();
    let reports = l.compact(None).unwrap();
    let tasks = reports.iter().find(|r| r.store == "tasks").unwrap();
    assert_eq!(tasks.dropped_count, 2);
    // appends have unique keys: nothing to drop
    let events = reports.iter().find(|r| r.store == "events").unwrap();
    assert_eq!(events.dropped_count, 0);
    let open: Vec<String> = l
        .query("tasks", "open", None)
        .unwrap()
        .iter()
        .map(|f| f.fact.key().to_owned())
        .collect();
    assert_eq!(open, vec!["t2"]);
    let q = PartitionQuery::new("events", "order", "o1");
    assert_eq!(l.partition_len(&q), Some(2));
    assert_eq!(l.history_partition(q).unwrap().len(), 2);
    // as_of scope query after compaction
    let now = l.latest("tasks", "t2").unwrap().transaction_time();
    assert_eq!(l.query("tasks", "open", Some(now)).unwrap().len(), 1);
    // writes after the compaction keep every index current
    l.write(Write::new("tasks", "t3", task(true, 1))).unwrap();
    assert_eq!(l.query("tasks", "open", None).unwrap().len(), 2);
    let g = l.schema_graph();
    assert_eq!(g.paths.len(), 1);
}

#[test]
fn prune_removes_exactly_the_named_facts_and_reports_missing_ids() {
    let l = LedgerStore::memory();
    let keep = l.write(Write::new("things", "keep", v(10))).unwrap();
    let drop = l.write(Write::new("things", "drop", v(99))).unwrap();
    let r = l
        .prune_fact_ids(
            Prune::new(
                [
                    drop.id().to_string(),
                    "nonexistent-id".into(),
                    drop.id().to_string(),
                ],
                Value::sym("test"),
            )
            .metadata(Value::map([(MapKey::sym("source"), Value::from("t"))])),
        )
        .unwrap();
    assert_eq!(r.pruned_count, 1);
    assert_eq!(r.missing_ids, vec!["nonexistent-id".to_owned()]);
    assert_eq!(r.pruned_fact_refs[0].id, drop.id());
    assert!(l.fact_by_id(drop.id()).is_none());
    assert_eq!(l.read(Read::new("things", "drop")).unwrap(), None);
    assert!(l
        .history_raw(HistoryQuery::new("things").key("drop"))
        .is_empty());
    assert_eq!(l.read(Read::new("things", "keep")).unwrap(), Some(v(10)));
    assert!(l.fact_by_id(keep.id()).is_some());
    let receipt = l.fact_by_id(r.receipt_id).unwrap();
    let rv = receipt.value();
    assert_eq!(rv.get_sym("reason"), Some(&Value::sym("test")));
    assert_eq!(rv.get_sym("pruned_count"), Some(&Value::Int(1)));
    assert_eq!(receipt.store(), "__fact_prune_receipts");
    // only missing ids: reported, receipt still written, nothing removed
    let n = l.fact_count();
    let r2 = l
        .prune_fact_ids(Prune::new(["nope"], Value::sym("test")))
        .unwrap();
    assert_eq!((r2.pruned_count, r2.missing_ids.len()), (0, 1));
    assert_eq!(l.fact_count(), n + 1);
    let act = l.compaction_activity(None);
    assert_eq!(act.len(), 2);
    assert!(act
        .iter()
        .all(|e| e.kind == ActivityKind::ExactPrune && e.store.is_none()));
    assert_eq!(act[0].fact_count, 1);
    assert!(act[0].occurred_at <= act[1].occurred_at);
    // activity filtered by store: the prune touched "things"
    assert_eq!(l.compaction_activity(Some("things")).len(), 1);
}

#[test]
fn erasure_keeps_tombstones_and_proofs_and_answers_nil() {
    let l = LedgerStore::memory();
    let secret = "SECRET-VALUE-4711";
    let f1 = l
        .write(Write::new("people", "p1", Value::from(secret)).producer(Value::sym("api")))
        .unwrap();
    let f2 = l
        .write(Write::new(
            "people",
            "p1",
            Value::from(format!("{secret}-v2")),
        ))
        .unwrap();
    let other = l
        .write(Write::new("people", "p2", Value::from("keep")))
        .unwrap();
    let proof_before = l.lineage("people", "p1").proof_hash;
    let r = l
        .erase(Erase::key("people", "p1", Value::sym("gdpr")).actor(Value::from("dpo@example.com")))
        .unwrap();
    assert_eq!(r.erased_count, 2);
    assert_eq!(l.read(Read::new("people", "p1")).unwrap(), None);
    let rf = l.read_fact(Read::new("people", "p1")).unwrap().unwrap();
    assert!(rf.fact.is_erased());
    assert_eq!(rf.fact.value(), Value::Nil);
    let t1 = l.fact_by_id(f1.id()).unwrap();
    assert!(t1.is_erased());
    assert_eq!(t1.value_hash(), f1.value_hash());
    assert_eq!(t1.producer(), Some(Value::sym("api")));
    assert_eq!(t1.transaction_time(), f1.transaction_time());
    assert_eq!(l.fact_by_id(f2.id()).unwrap().causation(), Some(f1.id()));
    assert_eq!(l.lineage("people", "p1").proof_hash, proof_before);
    assert_eq!(
        l.history_raw(HistoryQuery::new("people").key("p1")).len(),
        2
    );
    assert_eq!(
        l.read(Read::new("people", "p2")).unwrap(),
        Some(Value::from("keep"))
    );
    assert!(!l.fact_by_id(other.id()).unwrap().is_erased());
    let receipt = l.fact_by_id(r.receipt_id).unwrap().value();
    assert_eq!(
        receipt.get_sym("actor"),
        Some(&Value::from("dpo@example.com"))
    );
    assert_eq!(receipt.get_sym("erased_count"), Some(&Value::Int(2)));
    // a later write to the key reads normally
    l.write(Write::new("people", "p1", Value::from("new")))
        .unwrap();
    assert_eq!(
        l.read(Read::new("people", "p1")).unwrap(),
        Some(Value::from("new"))
    );
    let act = l.compaction_activity(None);
    assert_eq!(act.len(), 1);
    assert_eq!(act[0].kind, ActivityKind::Erasure);
}

#[test]
fn bad_input_names_the_argument_and_changes_nothing() {
    let l = LedgerStore::memory();
    l.write(Write::new("s", "k", v(1))).unwrap();
    let e = Strategy::parse("forever").unwrap_err().to_string();
    assert!(e.contains("strategy"), "{e}");
    let e = RetentionPolicy::new(Strategy::RollingWindow, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("duration"), "{e}");
    let e = RetentionPolicy::rolling_window(-5.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("duration"), "{e}");
    let e = l
        .erase(Erase::key("s", "unknown", Value::sym("x")))
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(ref m) if m.contains("key")),
        "{e}"
    );
    let e = l
        .erase(Erase::key("nostore", "k", Value::sym("x")))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert_eq!(l.fact_count(), 1);
    l.set_retention("s", RetentionPolicy::ephemeral()).unwrap();
    l.close().unwrap();
    assert!(matches!(l.compact(None), Err(Error::Closed)));
    assert!(matches!(
        l.prune_fact_ids(Prune::new(["x"], Value::Nil)),
        Err(Error::Closed)
    ));
    assert!(matches!(
        l.erase(Erase::key("s", "k", Value::Nil)),
        Err(Error::Closed)
    ));
}

#[test]
fn a_compaction_is_durable_and_reopen_shows_exactly_the_kept_facts() {
    let dir = tempfile::tempdir().unwrap();
    let (path, l) = file_ledger(dir.path());
    l.set_retention("s", RetentionPolicy::ephemeral()).unwrap();
    let mut dropped = Vec::new();
    for i in 0..50 {
        let f = l
            .write(Write::new("s", format!("k{}", i % 5), v(i)))
            .unwrap();
        if i < 45 {
            dropped.push(f.id());
        }
    }
    // a checkpoint before the compaction must not bring dropped facts back
    l.checkpoint().unwrap();
    let r = l.compact(None).unwrap();
    assert_eq!((r[0].dropped_count, r[0].kept_count), (45, 5));
    assert!(r[0].durable);
    // commits continue on the new generation
    l.write(Write::new("s", "after", v(1))).unwrap();
    let before: Vec<_> = l.fact_log_all(None, None).iter().map(|f| f.id()).collect();
    l.close().unwrap();
    drop(l);
    assert_eq!(files(dir.path()), vec!["r.wal".to_owned()]);
    let l = LedgerStore::open(&path).unwrap();
    let after: Vec<_> = l.fact_log_all(None, None).iter().map(|f| f.id()).collect();
    assert_eq!(before, after);
    for id in dropped {
        assert!(l.fact_by_id(id).is_none());
    }
    assert_eq!(l.compaction_receipts(Some("s")).len(), 1);
    // checkpoint + reopen after the compaction
    l.checkpoint().unwrap();
    l.close().unwrap();
    drop(l);
    let l = LedgerStore::open(&path).unwrap();
    assert_eq!(l.fact_count(), after.len());
}

#[test]
fn erased_values_are_gone_from_every_file_and_stay_tombstones_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (path, l) = file_ledger(dir.path());
    let secret = "ZEBRA-PASSPORT-99812";
    let f = l
        .write(Write::new(
            "people",
            "p1",
            Value::map([(MapKey::sym("passport"), Value::from(secret))]),
        ))
        .unwrap();
    l.write(Write::new("people", "p2", Value::from("stays")))
        .unwrap();
    l.checkpoint().unwrap();
    // a recovery side file holding a copy of WAL bytes
    let wal_copy = std::fs::read(&path).unwrap();
    std::fs::write(dir.path().join("r.wal.corrupt-12"), &wal_copy).unwrap();
    std::fs::write(dir.path().join("unrelated.txt"), b"other app data").unwrap();
    assert!(contains(&all_bytes(dir.path()), secret.as_bytes()));
    let r = l
        .erase(Erase::fact_ids([f.id().to_string()], Value::sym("gdpr")))
        .unwrap();
    assert_eq!(r.erased_count, 1);
    assert_eq!(r.side_files_removed.len(), 1);
    assert!(!contains(&all_bytes(dir.path()), secret.as_bytes()));
    assert!(dir.path().join("unrelated.txt").exists());
    l.close().unwrap();
    drop(l);
    let l = LedgerStore::open(&path).unwrap();
    let t = l.fact_by_id(f.id()).unwrap();
    assert!(t.is_erased());
    assert_eq!(t.value_hash(), f.value_hash());
    assert_eq!(l.read(Read::new("people", "p1")).unwrap(), None);
    assert_eq!(
        l.read(Read::new("people", "p2")).unwrap(),
        Some(Value::from("stays"))
    );
    assert!(!contains(&all_bytes(dir.path()), secret.as_bytes()));
}

#[test]
fn writers_continue_across_a_compaction_without_losing_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.wal");
    let l = LedgerStore::open(&path).unwrap(); // fsync: group commit in flight
    l.set_retention("hot", RetentionPolicy::ephemeral())
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let acked = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..3 {
            let (l, stop, acked) = (&l, &stop, &acked);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let f = l
                        .write(Write::new("cold", format!("{t}-{i}"), v(i)))
                        .unwrap();
                    l.write(Write::new("hot", format!("{t}"), v(i))).unwrap();
                    acked.lock().unwrap().push(f.id());
                    i += 1;
                }
            });
        }
        for _ in 0..5 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            l.compact(None).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let acked = acked.into_inner().unwrap();
    for id in &acked {
        assert!(l.fact_by_id(*id).is_some());
    }
    l.close().unwrap();
    drop(l);
    let l = LedgerStore::open(&path).unwrap();
    for id in &acked {
        assert!(l.fact_by_id(*id).is_some(), "acknowledged {id} lost");
    }
    for t in 0..3 {
        assert!(l.read(Read::new("hot", format!("{t}"))).unwrap().is_some());
    }
}

/// A file layer that, when the new generation is created (phase 1, commits running),
/// commits a fact and registers a scope through the ledger: the rewrite must carry both
/// into the state it publishes and the file it renames.
struct MidRewrite {
    ledger: LedgerStore,
    fired: std::sync::atomic::AtomicBool,
}

impl igniter_ledger::FileSystem for MidRewrite {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn igniter_ledger::WrittenFile>> {
        if !self.fired.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.ledger
                .write(Write::new(
                    "s",
                    "meanwhile",
                    Value::map([(MapKey::sym("hot"), Value::Bool(true))]),
                ))
                .unwrap();
            self.ledger
                .register_path(
                    AccessPath::scope("s", "hot").filter(MapKey::sym("hot"), Value::Bool(true)),
                )
                .unwrap();
        }
        igniter_ledger::OsFileSystem.create(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        igniter_ledger::OsFileSystem.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        igniter_ledger::OsFileSystem.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        igniter_ledger::OsFileSystem.sync_dir(dir)
    }
}

#[test]
fn commits_and_registrations_during_a_rewrite_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (path, l) = file_ledger(dir.path());
    l.set_retention("s", RetentionPolicy::ephemeral()).unwrap();
    for i in 0..10 {
        l.write(Write::new("s", "k", v(i))).unwrap();
    }
    let io = MidRewrite {
        ledger: l.clone(),
        fired: Default::default(),
    };
    let r = l.compact_with_io(None, &io).unwrap();
    assert!(io.fired.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(r[0].dropped_count, 9);
    // the fact committed in phase 1 is published, indexed and in the scope registered then
    assert!(l.read(Read::new("s", "meanwhile")).unwrap().is_some());
    let hot: Vec<String> = l
        .query("s", "hot", None)
        .unwrap()
        .iter()
        .map(|f| f.fact.key().to_owned())
        .collect();
    assert_eq!(hot, vec!["meanwhile"]);
    // receipt after it, in commit order
    let all = l.fact_log_all(None, None);
    assert_eq!(all.last().unwrap().store(), COMPACTION_RECEIPTS);
    assert!(all
        .windows(2)
        .all(|w| w[0].transaction_time() < w[1].transaction_time()));
    l.close().unwrap();
    drop(l);
    let l = LedgerStore::open(&path).unwrap();
    assert!(l.read(Read::new("s", "meanwhile")).unwrap().is_some());
    assert_eq!(l.history_raw(HistoryQuery::new("s").key("k")).len(), 1);
    assert_eq!(l.compaction_receipts(Some("s")).len(), 1);
}
