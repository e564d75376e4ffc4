//! Scope queries `as_of`: exact for keys that entered and left the scope before the
//! scope was registered, and for writes made after the first `as_of` query.

use igniter_ledger::{AccessPath, LedgerStore, MapKey, Timestamp, Value, Write};

fn status(s: &str) -> Value {
    Value::map([(MapKey::sym("status"), Value::sym(s))])
}

fn keys(l: &LedgerStore, t: Option<Timestamp>) -> Vec<String> {
    l.query("tasks", "open", t)
        .unwrap()
        .iter()
        .map(|f| f.key().to_owned())
        .collect()
}

#[test]
fn as_of_sees_membership_before_registration_and_after_the_first_query() {
    let l = LedgerStore::memory();
    let w = |k: &str, s: &str| {
        l.write(Write::new("tasks", k, status(s)))
            .unwrap()
            .transaction_time()
    };
    let t1 = w("a", "open");
    let t2 = w("b", "open");
    let t3 = w("a", "done"); // a leaves before the scope exists
    let t4 = w("c", "done");
    l.register_path(
        AccessPath::scope("tasks", "open").filter(MapKey::sym("status"), Value::sym("open")),
    )
    .unwrap();
    assert_eq!(keys(&l, None), ["b"]);
    assert_eq!(keys(&l, Some(t1)), ["a"]);
    assert_eq!(keys(&l, Some(t2)), ["a", "b"]);
    assert_eq!(keys(&l, Some(t3)), ["b"]);
    assert_eq!(keys(&l, Some(t4)), ["b"]);
    // After the history exists, writes keep it current: c enters, b leaves, a re-enters.
    let t5 = w("c", "open");
    let t6 = w("b", "done");
    let t7 = w("a", "open");
    let t8 = w("a", "open"); // stays a member
    assert_eq!(keys(&l, Some(t5)), ["b", "c"]);
    assert_eq!(keys(&l, Some(t6)), ["c"]);
    assert_eq!(keys(&l, Some(t7)), ["a", "c"]);
    assert_eq!(keys(&l, Some(t8)), ["a", "c"]);
    assert_eq!(keys(&l, None), ["a", "c"]);
    assert_eq!(
        keys(&l, Some(Timestamp::from_micros(0))),
        Vec::<String>::new()
    );
    // The facts returned are the latest at that time.
    let f = l.query("tasks", "open", Some(t7)).unwrap();
    assert!(f.iter().all(|f| f.transaction_time() <= t7));
    assert_eq!(f[0].transaction_time(), t7);
}

#[test]
fn unknown_scope_as_of_is_an_error() {
    let l = LedgerStore::memory();
    l.write(Write::new("tasks", "a", status("open"))).unwrap();
    assert!(l.query("tasks", "nope", Some(Timestamp::now())).is_err());
    assert!(l.query("nostore", "nope", Some(Timestamp::now())).is_err());
}
