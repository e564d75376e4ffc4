//! Hostile input through the Rust API: each case asserts the exact error and that
//! nothing was written (fact count and WAL length unchanged, the store still usable).
//!
//! Decisions recorded here: floats accept NaN and ±Infinity and round-trip them (NaN
//! in one canonical bit pattern) in memory, after reopen and through a snapshot;
//! `valid_time` must be finite. Rust's `Value` is an owned tree, so a cyclic value
//! cannot be built (the Ruby layer refuses cycles); out-of-range integers and invalid
//! UTF-8 cannot be built either (`i64`, `String`), and the decoder refuses them in
//! files (see `tests/fuzz.rs`).

mod common;

use std::path::{Path, PathBuf};

use igniter_ledger::limits;
use igniter_ledger::limits::MAX_BODY;
use igniter_ledger::{
    AccessPath, Append, Batch, Durability, Error, Expected, LedgerStore, LogFile, MapKey,
    OpenOptions, Read, Timestamp, Value, Write,
};

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    l: LedgerStore,
}

fn fixture() -> Fixture {
    let dir = common::tempdir();
    let path = dir.path().join("h.wal");
    let l = LedgerStore::open(&path).unwrap();
    l.write(Write::new("kv", "k", Value::Int(1))).unwrap();
    Fixture { _dir: dir, path, l }
}

fn wal_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// Runs `op`, expecting an error; checks nothing was written; returns the error.
fn refused<T: std::fmt::Debug>(
    fx: &Fixture,
    op: impl FnOnce(&LedgerStore) -> Result<T, Error>,
) -> Error {
    let (count, len) = (fx.l.fact_count(), wal_len(&fx.path));
    let err = op(&fx.l).expect_err("hostile input must be refused");
    assert_eq!(fx.l.fact_count(), count, "nothing visible was written");
    assert_eq!(wal_len(&fx.path), len, "nothing reached the WAL");
    // The store is still usable.
    fx.l.write(Write::new("kv", "after", Value::Int(0)))
        .expect("a refused write leaves the store working");
    err
}

fn nested(depth: usize) -> Value {
    let mut v = Value::Int(0);
    for _ in 1..depth {
        v = Value::array([v]);
    }
    v
}

#[test]
fn values_nested_deeper_than_the_limit_are_refused_with_their_path() {
    let fx = fixture();
    fx.l.write(Write::new("kv", "deep", nested(limits::MAX_DEPTH)))
        .expect("exactly the limit is accepted");
    let err = refused(&fx, |l| {
        l.write(Write::new("kv", "k", nested(limits::MAX_DEPTH + 1)))
    });
    let path = format!("value{}", "[0]".repeat(limits::MAX_DEPTH));
    match &err {
        Error::InvalidValue { path: p, reason } => {
            assert_eq!(p, &path);
            assert_eq!(reason, "nests deeper than 128 levels");
        }
        other => panic!("{other}"),
    }
    // Deeper, in a map, as producer: same error kind, path names the field. (Values
    // far deeper than this are a stack hazard for the caller's own clone and drop, not
    // for the ledger, which stops at the limit.)
    let mut v = Value::Nil;
    for _ in 0..600 {
        v = Value::map([(MapKey::sym("m"), v)]);
    }
    let err = refused(&fx, |l| {
        l.write(Write::new("kv", "k", Value::Nil).producer(v))
    });
    assert!(
        matches!(&err, Error::InvalidValue { path, .. } if path.starts_with("producer[:m][:m]")),
        "{err}"
    );
}

#[test]
fn duplicate_map_keys_are_refused_naming_the_key() {
    let fx = fixture();
    let dup = |k: MapKey| Value::map([(k.clone(), Value::Int(1)), (k, Value::Int(2))]);
    for (k, shown) in [
        (MapKey::sym("a"), ":a"),
        (MapKey::str("a"), "\"a\""),
        (MapKey::Int(7), "7"),
    ] {
        let v = Value::map([(MapKey::sym("meta"), dup(k))]);
        let err = refused(&fx, |l| l.write(Write::new("kv", "k", v.clone())));
        assert_eq!(
            err.to_string(),
            format!("value[:meta] has the key {shown} twice")
        );
    }
    // A Symbol and a String of the same name are different keys.
    fx.l.write(Write::new(
        "kv",
        "k",
        Value::map([
            (MapKey::sym("a"), Value::Int(1)),
            (MapKey::str("a"), Value::Int(2)),
        ]),
    ))
    .unwrap();
    let err = refused(&fx, |l| {
        l.append(Append::new("h", Value::Nil).derivation(dup(MapKey::sym("x"))))
    });
    assert_eq!(err.to_string(), "derivation has the key :x twice");
}

#[test]
fn oversized_values_keys_and_store_names_are_refused() {
    let fx = fixture();
    // A string one byte past the value limit (its header takes 5 more bytes).
    let big = Value::from("x".repeat(limits::MAX_VALUE_BYTES));
    let err = refused(&fx, |l| l.write(Write::new("kv", "k", big)));
    assert_eq!(
        err.to_string(),
        format!(
            "value encodes to {} bytes; the limit is {}",
            limits::MAX_VALUE_BYTES + 5,
            limits::MAX_VALUE_BYTES
        )
    );
    // A huge array (of 64 KiB strings) past the limit.
    let chunk = Value::Bin(vec![7; 64 * 1024]);
    let arr = Value::Array(vec![chunk; limits::MAX_VALUE_BYTES / (64 * 1024) + 1]);
    let err = refused(&fx, |l| l.append(Append::new("h", arr)));
    assert!(
        matches!(&err, Error::InvalidValue { path, reason } if path == "event" && reason.contains("the limit is 67108864")),
        "{err}"
    );
    // Keys.
    let key = "k".repeat(limits::MAX_KEY_BYTES + 1);
    let err = refused(&fx, |l| l.write(Write::new("kv", key.as_str(), Value::Nil)));
    assert_eq!(err.to_string(), "key is 65537 bytes; the limit is 65536");
    fx.l.write(Write::new(
        "kv",
        "k".repeat(limits::MAX_KEY_BYTES),
        Value::Nil,
    ))
    .expect("a key of exactly the limit is accepted");
    // Store names.
    let err = refused(&fx, |l| l.write(Write::new("", "k", Value::Nil)));
    assert!(matches!(&err, Error::InvalidArgument(m) if m == "store name must not be empty"));
    let err = refused(&fx, |l| l.append(Append::new("", Value::Nil)));
    assert_eq!(err.to_string(), "store name must not be empty");
    let long = "s".repeat(limits::MAX_STORE_NAME_BYTES + 1);
    let err = refused(&fx, |l| l.write(Write::new(long.as_str(), "k", Value::Nil)));
    assert_eq!(
        err.to_string(),
        "store name is 1025 bytes; the limit is 1024"
    );
}

#[test]
fn a_commit_larger_than_one_frame_may_hold_is_refused_whole() {
    let fx = fixture();
    // Each value is within the value limit; together they exceed one frame.
    let part = limits::MAX_VALUE_BYTES - 1024;
    let n = MAX_BODY / part + 1;
    let mut b = Batch::new().write(Write::new("kv", "small", Value::Int(1)));
    for i in 0..n {
        b = b.write(Write::new(
            "kv",
            format!("big{i}"),
            Value::Bin(vec![i as u8; part]),
        ));
    }
    let err = refused(&fx, |l| l.commit(b));
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("one commit may hold at most 268435456 bytes")),
        "{err}"
    );
    assert!(fx.l.read(Read::new("kv", "small")).unwrap().is_none());
}

#[test]
fn one_bad_operation_fails_the_whole_batch() {
    let fx = fixture();
    let b = Batch::new()
        .write(Write::new("kv", "good1", Value::Int(1)))
        .append(Append::new("h", Value::Nil))
        .write(Write::new("kv", "bad", nested(500)))
        .write(Write::new("kv", "good2", Value::Int(2)));
    let err = refused(&fx, |l| l.commit(b));
    assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
    assert!(fx.l.read(Read::new("kv", "good1")).unwrap().is_none());
    assert!(fx
        .l
        .history_raw(igniter_ledger::HistoryQuery::new("h"))
        .is_empty());
}

#[test]
fn nan_and_infinity_round_trip_in_floats_but_valid_time_must_be_finite() {
    let fx = fixture();
    let specials = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        f64::MIN_POSITIVE,
    ];
    let v = Value::array(specials.iter().map(|&f| Value::Float(f)));
    fx.l.write(Write::new("floats", "f", v.clone())).unwrap();
    let check = |l: &LedgerStore, when: &str| {
        let Some(Value::Array(back)) = l.read(Read::new("floats", "f")).unwrap() else {
            panic!("{when}: missing");
        };
        for (a, b) in specials.iter().zip(&back) {
            let Value::Float(b) = b else {
                panic!("{when}: not a float")
            };
            assert!(
                (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits(),
                "{when}: {a} came back as {b}"
            );
        }
    };
    check(&fx.l, "in memory");
    // NaN has one canonical encoding, so equal values hash equally.
    let f2 =
        fx.l.write(Write::new(
            "floats",
            "g",
            Value::Float(f64::from_bits(0x7ff8_dead_beef_0001)),
        ))
        .unwrap();
    let f3 =
        fx.l.write(Write::new("floats", "h", Value::Float(f64::NAN)))
            .unwrap();
    assert_eq!(f2.value_hash(), f3.value_hash());
    fx.l.checkpoint().unwrap();
    fx.l.close().unwrap();
    let l = LedgerStore::open(&fx.path).unwrap();
    check(&l, "after reopen from the snapshot");
    drop(l);
    std::fs::remove_file(igniter_ledger::__private::snapshot_path(&fx.path)).unwrap();
    let l = LedgerStore::open(&fx.path).unwrap();
    check(&l, "after a full WAL replay");
    drop(l);

    let fx = fixture();
    for t in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = refused(&fx, |l| {
            l.write(Write::new("kv", "k", Value::Nil).valid_time(t))
        });
        assert_eq!(
            err.to_string(),
            format!("valid_time must be a finite number of seconds, got {t}")
        );
        let err = refused(&fx, |l| {
            l.append(Append::new("h", Value::Nil).valid_time(t))
        });
        assert!(matches!(err, Error::InvalidArgument(_)));
    }
    // Reading at a non-finite valid time is not an error: NaN matches nothing, +inf
    // everything, -inf nothing.
    fx.l.write(Write::new("kv", "vt", Value::Int(5)).valid_time(10.0))
        .unwrap();
    assert_eq!(
        fx.l.read(Read::new("kv", "vt").valid_at(f64::NAN)).unwrap(),
        None
    );
    assert_eq!(
        fx.l.read(Read::new("kv", "vt").valid_at(f64::INFINITY))
            .unwrap(),
        Some(Value::Int(5))
    );
    assert_eq!(
        fx.l.read(Read::new("kv", "vt").valid_at(f64::NEG_INFINITY))
            .unwrap(),
        None
    );
    // Extreme as_of times.
    assert_eq!(
        fx.l.read(Read::new("kv", "vt").as_of(Timestamp::MIN))
            .unwrap(),
        None
    );
    assert!(fx
        .l
        .read(Read::new("kv", "vt").as_of(Timestamp::MAX))
        .unwrap()
        .is_some());
}

#[test]
fn unknown_scopes_and_stores() {
    let fx = fixture();
    let err = refused(&fx, |l| l.query("kv", "nope", None));
    assert!(
        matches!(&err, Error::UnknownScope { store, scope } if store == "kv" && scope == "nope")
    );
    assert_eq!(
        err.to_string(),
        "unknown scope \"nope\" for store \"kv\": register an access path first"
    );
    // A scope registered on another store does not leak.
    fx.l.register_path(AccessPath::scope("other", "open"))
        .unwrap();
    assert!(matches!(
        fx.l.query("kv", "open", None),
        Err(Error::UnknownScope { .. })
    ));
    // An unknown store is simply empty.
    assert_eq!(fx.l.read(Read::new("nope", "k")).unwrap(), None);
    assert!(fx
        .l
        .history_raw(igniter_ledger::HistoryQuery::new("nope"))
        .is_empty());
    // Registering on an empty store name is refused.
    let err = refused(&fx, |l| l.register_path(AccessPath::scope("", "s")));
    assert_eq!(err.to_string(), "store name must not be empty");
}

#[test]
fn expectation_conflicts_write_nothing() {
    let fx = fixture();
    let latest = fx.l.latest("kv", "k").unwrap();
    let err = refused(&fx, |l| {
        l.write(Write::new("kv", "k", Value::Int(2)).expected(Expected::Absent))
    });
    assert!(matches!(&err, Error::Conflict { actual: Some(a), .. } if *a == latest.id()));
    let err = refused(&fx, |l| {
        l.commit(
            Batch::new()
                .write(Write::new("kv", "fresh", Value::Int(1)))
                .write(
                    Write::new("kv", "k", Value::Int(3))
                        .expected(Expected::Fact(uuid::Uuid::nil())),
                ),
        )
    });
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(fx.l.read(Read::new("kv", "fresh")).unwrap().is_none());
}

#[test]
fn closed_and_in_memory_misuse() {
    let fx = fixture();
    fx.l.close().unwrap();
    let len = wal_len(&fx.path);
    assert!(matches!(
        fx.l.write(Write::new("kv", "k", Value::Nil)),
        Err(Error::Closed)
    ));
    assert!(matches!(fx.l.checkpoint(), Err(Error::Closed)));
    assert_eq!(wal_len(&fx.path), len);
    let m = LedgerStore::memory();
    let err = m.checkpoint().unwrap_err();
    assert_eq!(
        err.to_string(),
        "checkpoint needs a file-backed ledger (open it with a path)"
    );
}

#[test]
fn unopenable_paths_are_refused_naming_the_path() {
    let dir = common::tempdir();
    let err = LedgerStore::open(dir.path())
        .err()
        .expect("a directory is not a WAL");
    assert!(
        matches!(&err, Error::Io { context, source } if context.contains(&dir.path().display().to_string()) && source.to_string() == "not a regular file"),
        "{err}"
    );
    let missing = dir.path().join("no/such/dir/x.wal");
    let err = LedgerStore::open(&missing).err().unwrap();
    assert!(err.to_string().contains("no/such/dir/x.wal"), "{err}");
}

#[test]
fn a_second_open_in_the_same_process_is_locked() {
    let fx = fixture();
    let len = wal_len(&fx.path);
    for mode in [Durability::Fsync, Durability::Flush, Durability::None] {
        let err = LedgerStore::open_with(&fx.path, OpenOptions::new().durability(mode))
            .err()
            .expect("a second open must fail");
        match &err {
            Error::Locked { path } => assert_eq!(path, &fx.path),
            other => panic!("{other}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "{} is locked by another open ledger (one process and one handle may own a ledger file at a time)",
                fx.path.display()
            )
        );
    }
    let file: std::sync::Arc<dyn LogFile> =
        std::sync::Arc::new(std::fs::File::open(&fx.path).unwrap());
    assert!(matches!(
        LedgerStore::open_with_file(&fx.path, OpenOptions::new(), file),
        Err(Error::Locked { .. })
    ));
    assert_eq!(wal_len(&fx.path), len, "failed opens write nothing");
    // The first handle is unaffected; once it closes, the file can be opened.
    fx.l.write(Write::new("kv", "k", Value::Int(2))).unwrap();
    fx.l.close().unwrap();
    let again = LedgerStore::open(&fx.path).unwrap();
    assert_eq!(again.fact_count(), 2);
}
