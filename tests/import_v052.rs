//! Opening files written by the 0.5.2 Ruby FileBackend (JSON frame bodies).

use std::io::Write as _;
use std::path::Path;

use igniter_ledger::{HistoryQuery, LedgerStore, MapKey, Read, SnapshotOutcome, Value, Write};

fn frame(out: &mut Vec<u8>, body: &str) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body.as_bytes());
    out.extend_from_slice(&crc32fast::hash(body.as_bytes()).to_be_bytes());
}

fn write_file(p: &Path, bytes: &[u8]) {
    std::fs::File::create(p).unwrap().write_all(bytes).unwrap();
}

const ID1: &str = "6f1c1b52-3f4e-4c6a-9d59-0a9f6a0c1e01";
const ID2: &str = "6f1c1b52-3f4e-4c6a-9d59-0a9f6a0c1e02";
const ID3: &str = "6f1c1b52-3f4e-4c6a-9d59-0a9f6a0c1e03";

fn fact_json(id: &str, key: &str, status: &str, t: f64, causation: Option<&str>) -> String {
    let c = causation.map_or("null".to_owned(), |c| format!("\"{c}\""));
    format!(
        r#"{{"id":"{id}","store":"tasks","key":"{key}","value":{{"title":"Buy milk","status":"{status}","tags":["a",1,2.5,null,true]}},"value_hash":"ignored","causation":{c},"transaction_time":{t},"valid_time":null,"schema_version":1,"producer":{{"name":"app"}},"derivation":null}}"#
    )
}

#[test]
fn opens_a_052_wal_and_keeps_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.wal");
    let mut wal = Vec::new();
    frame(
        &mut wal,
        &fact_json(ID1, "t1", "open", 1_700_000_000.25, None),
    );
    frame(
        &mut wal,
        &fact_json(ID2, "t1", "done", 1_700_000_001.5, Some(ID1)),
    );
    // an older file's field names: timestamp / term, and a value-hash causation
    frame(
        &mut wal,
        &format!(
            r#"{{"id":"{ID3}","store":"tasks","key":"t2","value":{{"n":1}},"value_hash":"x","causation":"abc123","timestamp":1700000002.0,"term":1699999999.0,"schema_version":2}}"#
        ),
    );
    write_file(&path, &wal);

    let l = LedgerStore::open(&path).unwrap();
    let rep = l.open_report().unwrap().clone();
    assert_eq!(rep.legacy_frames, 3);
    assert_eq!(rep.dropped_causations, 1);
    assert_eq!(l.fact_count(), 3);
    let v = l.read(Read::new("tasks", "t1")).unwrap().unwrap();
    // keys come back as Symbols, strings as Strings (as the 0.5.2 gem reads them)
    assert_eq!(v.get_sym("status"), Some(&Value::from("done")));
    assert_eq!(
        v.get_sym("tags"),
        Some(&Value::array([
            Value::from("a"),
            Value::Int(1),
            Value::Float(2.5),
            Value::Nil,
            Value::Bool(true)
        ]))
    );
    let h = l.history(HistoryQuery::new("tasks").key("t1")).unwrap();
    assert_eq!(h[1].causation().unwrap().to_string(), ID1);
    assert_eq!(h[0].transaction_time().as_micros(), 1_700_000_000_250_000);
    assert_eq!(
        h[0].producer(),
        Some(Value::map([(MapKey::sym("name"), Value::from("app"))]))
    );
    let t2 = l.latest("tasks", "t2").unwrap();
    assert_eq!(t2.valid_time(), Some(1_699_999_999.0));
    assert_eq!(t2.schema_version(), 2);
    assert_eq!(t2.causation(), None);
    // new writes continue the chain and come after the imported times
    let f = l
        .write(Write::new("tasks", "t1", Value::from("again")))
        .unwrap();
    assert_eq!(f.causation().unwrap().to_string(), ID2);
    l.checkpoint().unwrap();
    l.close().unwrap();
    let l = LedgerStore::open(&path).unwrap();
    assert_eq!(l.fact_count(), 4);
    assert_eq!(
        l.read(Read::new("tasks", "t1")).unwrap(),
        Some(Value::from("again"))
    );
}

#[test]
fn opens_a_052_snapshot_merged_with_its_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.wal");
    // The WAL holds all three facts; the snapshot holds the first two (0.5.2 dedupes by id).
    let mut wal = Vec::new();
    frame(
        &mut wal,
        &fact_json(ID1, "t1", "open", 1_700_000_000.0, None),
    );
    frame(
        &mut wal,
        &fact_json(ID2, "t1", "done", 1_700_000_001.0, Some(ID1)),
    );
    frame(
        &mut wal,
        &fact_json(ID3, "t3", "open", 1_700_000_002.0, None),
    );
    write_file(&path, &wal);
    let mut snap = Vec::new();
    frame(
        &mut snap,
        r#"{"type":"snapshot_header","fact_count":2,"written_at":1700000001.5}"#,
    );
    frame(
        &mut snap,
        &fact_json(ID1, "t1", "open", 1_700_000_000.0, None),
    );
    frame(
        &mut snap,
        &fact_json(ID2, "t1", "done", 1_700_000_001.0, Some(ID1)),
    );
    let mut sp = path.as_os_str().to_owned();
    sp.push(".snap");
    write_file(Path::new(&sp), &snap);

    let l = LedgerStore::open(&path).unwrap();
    assert_eq!(
        l.open_report().unwrap().snapshot,
        SnapshotOutcome::LoadedLegacy { facts: 2 }
    );
    assert_eq!(l.fact_count(), 3);
    let ids: Vec<String> = l
        .fact_log_all(None, None)
        .iter()
        .map(|f| f.id().to_string())
        .collect();
    assert_eq!(ids, vec![ID1, ID2, ID3]);
}

/// A 0.5.2 snapshot may hold a fact its WAL lacks: compaction first folds both into one
/// WAL generation (renamed), removes the snapshot, then rewrites for real — and the fact
/// only the snapshot held survives.
#[test]
fn compacting_a_ledger_with_a_052_snapshot_keeps_the_facts_only_the_snapshot_held() {
    use igniter_ledger::retention::RetentionPolicy;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.wal");
    // The WAL lacks ID1 (0.5.2 could truncate it after a snapshot); the snapshot has it.
    let mut wal = Vec::new();
    frame(
        &mut wal,
        &fact_json(ID2, "t1", "done", 1_700_000_001.0, Some(ID1)),
    );
    frame(
        &mut wal,
        &fact_json(ID3, "t3", "open", 1_700_000_002.0, None),
    );
    write_file(&path, &wal);
    let mut snap = Vec::new();
    frame(
        &mut snap,
        r#"{"type":"snapshot_header","fact_count":1,"written_at":1700000001.5}"#,
    );
    frame(
        &mut snap,
        &fact_json(ID1, "t1", "open", 1_700_000_000.0, None),
    );
    let mut sp = path.as_os_str().to_owned();
    sp.push(".snap");
    write_file(Path::new(&sp), &snap);

    let l = LedgerStore::open(&path).unwrap();
    assert_eq!(l.fact_count(), 3);
    // A store without a policy: nothing of tasks is dropped, but the other store's
    // compaction rewrites the whole WAL.
    for i in 0..3 {
        l.write(Write::new("scratch", "k", Value::Int(i))).unwrap();
    }
    l.set_retention("scratch", RetentionPolicy::ephemeral())
        .unwrap();
    let r = l.compact(None).unwrap();
    assert_eq!(r[0].dropped_count, 2);
    assert!(!Path::new(&sp).exists(), "the 0.5.2 snapshot is gone");
    l.close().unwrap();
    drop(l);
    let l = LedgerStore::open(&path).unwrap();
    let ids: Vec<String> = l
        .history(HistoryQuery::new("tasks"))
        .unwrap()
        .iter()
        .map(|f| f.id().to_string())
        .collect();
    assert_eq!(ids, vec![ID1, ID2, ID3], "the snapshot-only fact survived");
    assert!(l.verify().unwrap().is_ok());
}
