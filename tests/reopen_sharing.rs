//! After a reopen (WAL replay or snapshot), the facts of one key share one copy of the
//! key, as they do when written.

use std::sync::Arc;

use igniter_ledger::{HistoryQuery, LedgerStore, Value, Write};

fn versions_share_key(l: &LedgerStore) {
    let h = l.history_raw(HistoryQuery::new("s").key("k"));
    assert_eq!(h.len(), 3);
    assert!(h
        .windows(2)
        .all(|w| Arc::ptr_eq(w[0].key_arc(), w[1].key_arc())));
    assert!(h
        .windows(2)
        .all(|w| Arc::ptr_eq(w[0].store_arc(), w[1].store_arc())));
    assert_eq!(h[2].causation(), Some(h[1].id()));
}

#[test]
fn replayed_and_snapshot_facts_share_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.wal");
    {
        let l = LedgerStore::open(&path).unwrap();
        for i in 0..3 {
            l.write(Write::new("s", "k", Value::Int(i))).unwrap();
            l.write(Write::new("s", format!("other{i}"), Value::Int(i)))
                .unwrap();
        }
        versions_share_key(&l);
        l.close().unwrap();
    }
    {
        let l = LedgerStore::open(&path).unwrap();
        versions_share_key(&l);
        l.checkpoint().unwrap();
        l.close().unwrap();
    }
    let l = LedgerStore::open(&path).unwrap();
    versions_share_key(&l);
    // Writing after a reopen chains to the replayed facts and shares their key.
    let f = l.write(Write::new("s", "k", Value::Int(9))).unwrap();
    let h = l.history_raw(HistoryQuery::new("s").key("k"));
    assert_eq!(f.causation(), Some(h[2].id()));
    assert!(Arc::ptr_eq(f.key_arc(), h[0].key_arc()));
}
