//! The WAL bodies are standard MessagePack: an independent decoder (rmpv) reads them, and
//! sees Symbols as extension type 1, binary strings as `bin`, floats as f64.

use igniter_ledger::{Batch, LedgerStore, MapKey, Value, Write};
use rmpv::Value as M;

fn frames(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let body = &bytes[pos + 4..pos + 4 + len];
        let crc = u32::from_be_bytes(bytes[pos + 4 + len..pos + 8 + len].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(body));
        out.push(body);
        pos += 8 + len;
    }
    out
}

#[test]
fn wal_bodies_decode_with_an_independent_msgpack_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.wal");
    let l = LedgerStore::open(&path).unwrap();
    let v = Value::map([
        (MapKey::sym("s"), Value::sym("open")),
        (MapKey::str("b"), Value::Bin(vec![1, 2])),
        (MapKey::Int(3), Value::Float(1.5)),
    ]);
    let f = l
        .write(Write::new("tasks", "t1", v).valid_time(2.0))
        .unwrap();
    l.commit(
        Batch::new()
            .write(Write::new("a", "x", Value::Int(1)))
            .write(Write::new("a", "y", Value::Int(-300))),
    )
    .unwrap();
    l.close().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let fr = frames(&bytes);
    assert_eq!(fr.len(), 2);

    let body = rmpv::decode::read_value(&mut &fr[0][..]).unwrap();
    let M::Array(parts) = body else {
        panic!("{body}")
    };
    assert_eq!(parts[0], M::from(1));
    let M::Array(rec) = &parts[1] else { panic!() };
    assert_eq!(rec.len(), 10);
    assert_eq!(rec[0], M::Binary(f.id().as_bytes().to_vec()));
    assert_eq!(rec[1], M::from("tasks"));
    assert_eq!(rec[2], M::from("t1"));
    let M::Map(pairs) = &rec[3] else { panic!() };
    assert_eq!(pairs[0].0, M::Ext(1, b"s".to_vec()));
    assert_eq!(pairs[0].1, M::Ext(1, b"open".to_vec()));
    assert_eq!(pairs[1].0, M::from("b"));
    assert_eq!(pairs[1].1, M::Binary(vec![1, 2]));
    assert_eq!(pairs[2].0, M::from(3));
    assert_eq!(pairs[2].1, M::F64(1.5));
    assert_eq!(rec[4], M::Nil, "no causation for the first write");
    assert_eq!(rec[5], M::from(f.transaction_time().as_micros()));
    assert_eq!(rec[6], M::F64(2.0));
    assert_eq!(rec[7], M::from(1));

    let body = rmpv::decode::read_value(&mut &fr[1][..]).unwrap();
    let M::Array(parts) = body else { panic!() };
    assert_eq!(parts[0], M::from(2), "a batch is one frame tagged 2");
    let M::Array(recs) = &parts[1] else { panic!() };
    assert_eq!(recs.len(), 2);
    let M::Array(second) = &recs[1] else { panic!() };
    assert_eq!(second[3], M::from(-300));
}
