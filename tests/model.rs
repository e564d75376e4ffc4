//! Model-based property test: random sequences of writes, appends, batches, conflicting
//! writes, checkpoints and reopens; after every step every read path is compared with a
//! plain reference model (a Vec of facts scanned naively).

use igniter_ledger::{
    AccessPath, Append, Batch, Durability, Error, Expected, HistoryQuery, LedgerStore, MapKey,
    OpenOptions, PartitionQuery, Read, Timestamp, Value, Write,
};
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Clone, Debug)]
enum OpSpec {
    Write {
        store: u8,
        key: u8,
        p: u8,
        open: bool,
        valid: Option<u8>,
    },
    Append {
        p: u8,
        named: bool,
    },
}

#[derive(Clone, Debug)]
enum Expect {
    None,
    Absent,
    Latest,
    Stale,
}

#[derive(Clone, Debug)]
enum Step {
    Op(OpSpec, Expect),
    Batch(Vec<OpSpec>),
    Checkpoint,
    Reopen,
}

fn op_spec() -> impl Strategy<Value = OpSpec> {
    prop_oneof![
        3 => (0u8..2, 0u8..5, 0u8..3, any::<bool>(), proptest::option::of(0u8..10))
            .prop_map(|(store, key, p, open, valid)| OpSpec::Write { store, key, p, open, valid }),
        2 => (0u8..3, any::<bool>()).prop_map(|(p, named)| OpSpec::Append { p, named }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (op_spec(), prop_oneof![4 => Just(Expect::None), 1 => Just(Expect::Absent), 1 => Just(Expect::Latest), 1 => Just(Expect::Stale)])
            .prop_map(|(o, e)| Step::Op(o, e)),
        2 => proptest::collection::vec(op_spec(), 1..4).prop_map(Step::Batch),
        1 => Just(Step::Checkpoint),
        1 => Just(Step::Reopen),
    ]
}

#[derive(Clone, Debug)]
struct MFact {
    id: Uuid,
    store: String,
    key: String,
    value: Value,
    tx: Timestamp,
    valid: Option<f64>,
    causation: Option<Uuid>,
}

#[derive(Default)]
struct Model {
    facts: Vec<MFact>,
}

impl Model {
    fn latest(&self, store: &str, key: &str, as_of: Option<Timestamp>) -> Option<&MFact> {
        self.facts
            .iter()
            .rfind(|f| f.store == store && f.key == key && as_of.is_none_or(|t| f.tx <= t))
    }
    fn valid_at(&self, store: &str, key: &str, t: f64, as_of: Option<Timestamp>) -> Option<&MFact> {
        let mut best: Option<&MFact> = None;
        for f in self
            .facts
            .iter()
            .filter(|f| f.store == store && f.key == key && as_of.is_none_or(|a| f.tx <= a))
        {
            let vt = f.valid.unwrap_or(f.tx.as_secs_f64());
            if vt <= t && best.is_none_or(|b| vt >= b.valid.unwrap_or(b.tx.as_secs_f64())) {
                best = Some(f);
            }
        }
        best
    }
}

const STORES: [&str; 2] = ["alpha", "beta"];

fn value_of(p: u8, open: bool) -> Value {
    Value::map([
        (MapKey::sym("p"), Value::Int(p as i64)),
        (
            MapKey::sym("status"),
            Value::sym(if open { "open" } else { "done" }),
        ),
    ])
}

fn register(l: &LedgerStore) {
    l.register_path(
        AccessPath::scope("alpha", "open").filter(MapKey::sym("status"), Value::sym("open")),
    )
    .unwrap();
}

fn build_op(o: &OpSpec) -> (igniter_ledger::Op, String, Option<String>) {
    match o {
        OpSpec::Write {
            store,
            key,
            p,
            open,
            valid,
        } => {
            let mut w = Write::new(
                STORES[*store as usize],
                format!("k{key}"),
                value_of(*p, *open),
            );
            if let Some(v) = valid {
                w = w.valid_time(*v as f64);
            }
            (
                igniter_ledger::Op::Write(w),
                STORES[*store as usize].to_owned(),
                Some(format!("k{key}")),
            )
        }
        OpSpec::Append { p, named } => {
            let mut a = Append::new(
                "events",
                Value::map([(MapKey::sym("p"), Value::Int(*p as i64))]),
            );
            if *named {
                a = a.partition_key("p");
            }
            (igniter_ledger::Op::Append(a), "events".to_owned(), None)
        }
    }
}

fn record(model: &mut Model, facts: &[igniter_ledger::Fact]) {
    for f in facts {
        model.facts.push(MFact {
            id: f.id(),
            store: f.store().to_owned(),
            key: f.key().to_owned(),
            value: f.value(),
            tx: f.transaction_time(),
            valid: f.valid_time(),
            causation: f.causation(),
        });
    }
}

fn check(l: &LedgerStore, model: &Model) {
    assert_eq!(l.fact_count(), model.facts.len());
    // Commit order, ids, causation.
    let log = l.fact_log_all(None, None);
    for (f, m) in log.iter().zip(&model.facts) {
        assert_eq!(f.id(), m.id);
        assert_eq!(f.value(), m.value);
        assert_eq!(f.causation(), m.causation);
        assert_eq!(f.valid_time(), m.valid);
    }
    for w in log.windows(2) {
        assert!(w[0].transaction_time() < w[1].transaction_time());
    }
    let mut times: Vec<Option<Timestamp>> = vec![None];
    for m in model.facts.iter().step_by(3) {
        times.push(Some(m.tx));
        times.push(Some(Timestamp::from_micros(m.tx.as_micros() - 1)));
    }
    for store in STORES {
        for k in 0..5 {
            let key = format!("k{k}");
            for &t in &times {
                let got = l.read(Read::new(store, &key).as_of_opt(t)).unwrap();
                assert_eq!(
                    got,
                    model.latest(store, &key, t).map(|f| f.value.clone()),
                    "read {store}/{key} as_of {t:?}"
                );
                for vt in [0.0, 4.0, 9.0, 1e12] {
                    let got = l
                        .read_fact(Read::new(store, &key).as_of_opt(t).valid_at(vt))
                        .unwrap()
                        .map(|f| f.id());
                    assert_eq!(
                        got,
                        model.valid_at(store, &key, vt, t).map(|f| f.id),
                        "valid_at {vt} as_of {t:?}"
                    );
                }
                let h: Vec<Uuid> = l
                    .history(HistoryQuery::new(store).key(&key).as_of_opt(t))
                    .unwrap()
                    .iter()
                    .map(|f| f.id())
                    .collect();
                let want: Vec<Uuid> = model
                    .facts
                    .iter()
                    .filter(|f| f.store == store && f.key == key && t.is_none_or(|a| f.tx <= a))
                    .map(|f| f.id)
                    .collect();
                assert_eq!(h, want);
            }
        }
        for &t in &times {
            let h: Vec<Uuid> = l
                .history(HistoryQuery::new(store).since_opt(t))
                .unwrap()
                .iter()
                .map(|f| f.id())
                .collect();
            let want: Vec<Uuid> = model
                .facts
                .iter()
                .filter(|f| f.store == store && t.is_none_or(|s| f.tx >= s))
                .map(|f| f.id)
                .collect();
            assert_eq!(h, want);
        }
    }
    // Partitions over the history store (and over a write store).
    for (store, p) in [("events", 0), ("events", 1), ("events", 2), ("alpha", 1)] {
        for &t in times.iter().take(4) {
            let got: Vec<Uuid> = l
                .history_partition(PartitionQuery::new(store, "p", Value::Int(p)).as_of_opt(t))
                .unwrap()
                .iter()
                .map(|f| f.id())
                .collect();
            let want: Vec<Uuid> = model
                .facts
                .iter()
                .filter(|f| {
                    f.store == store
                        && f.value.get_sym("p") == Some(&Value::Int(p))
                        && t.is_none_or(|a| f.tx <= a)
                })
                .map(|f| f.id)
                .collect();
            assert_eq!(got, want, "partition {store} p={p} as_of {t:?}");
        }
    }
    // Scope, current and as_of.
    for &t in times.iter().take(5) {
        let got: Vec<String> = l
            .query("alpha", "open", t)
            .unwrap()
            .iter()
            .map(|f| f.key().to_owned())
            .collect();
        let mut want: Vec<String> = (0..5)
            .map(|k| format!("k{k}"))
            .filter(|k| {
                model
                    .latest("alpha", k, t)
                    .is_some_and(|f| f.value.get_sym("status") == Some(&Value::sym("open")))
            })
            .collect();
        want.sort();
        assert_eq!(got, want, "scope as_of {t:?}");
    }
    for m in model.facts.iter().step_by(5) {
        assert_eq!(l.fact_by_id(m.id).map(|f| f.id()), Some(m.id));
    }
}

fn run(steps: Vec<Step>, mode: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.wal");
    let opts = OpenOptions::new().durability(mode);
    let mut l = LedgerStore::open_with(&path, opts.clone()).unwrap();
    register(&l);
    let mut model = Model::default();
    for s in steps {
        match s {
            Step::Op(o, e) => {
                let (op, store, key) = build_op(&o);
                let expected = match (&e, &key) {
                    (Expect::None, _) | (_, None) => Expected::Any,
                    (Expect::Absent, _) => Expected::Absent,
                    (Expect::Latest, Some(k)) => match model.latest(&store, k, None) {
                        Some(f) => Expected::Fact(f.id),
                        None => Expected::Absent,
                    },
                    (Expect::Stale, Some(_)) => {
                        Expected::Fact(model.facts.first().map_or(Uuid::nil(), |f| f.id))
                    }
                };
                let should_pass = match (&expected, &key) {
                    (Expected::Any, _) => true,
                    (Expected::Absent, Some(k)) => model.latest(&store, k, None).is_none(),
                    (Expected::Fact(id), Some(k)) => {
                        model.latest(&store, k, None).map(|f| f.id) == Some(*id)
                    }
                    _ => true,
                };
                let op = match op {
                    igniter_ledger::Op::Write(w) => igniter_ledger::Op::Write(w.expected(expected)),
                    other => other,
                };
                let mut b = Batch::new();
                b.push(op);
                match l.commit(b) {
                    Ok(facts) => {
                        assert!(should_pass, "a conflicting write was accepted");
                        if let (Some(k), Some(f)) = (&key, facts.first()) {
                            assert_eq!(f.causation(), model.latest(&store, k, None).map(|m| m.id));
                        }
                        record(&mut model, &facts);
                    }
                    Err(Error::Conflict { .. }) => {
                        assert!(!should_pass, "a valid write conflicted")
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            Step::Batch(ops) => {
                let mut b = Batch::new();
                for o in &ops {
                    b.push(build_op(o).0);
                }
                let facts = l.commit(b).unwrap();
                assert_eq!(facts.len(), ops.len());
                record(&mut model, &facts);
            }
            Step::Checkpoint => {
                let r = l.checkpoint().unwrap();
                assert_eq!(r.fact_count as usize, model.facts.len());
            }
            Step::Reopen => {
                l.close().unwrap();
                l = LedgerStore::open_with(&path, opts.clone()).unwrap();
                let rep = l.open_report().unwrap();
                assert!(rep.torn_tail.is_none() && rep.recovered.is_none());
                register(&l);
            }
        }
        check(&l, &model);
    }
    l.close().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn ledger_matches_model_flush(steps in proptest::collection::vec(step(), 1..40)) {
        run(steps, Durability::Flush);
    }

    #[test]
    fn ledger_matches_model_none(steps in proptest::collection::vec(step(), 1..25)) {
        run(steps, Durability::None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn ledger_matches_model_fsync(steps in proptest::collection::vec(step(), 1..25)) {
        run(steps, Durability::Fsync);
    }
}
