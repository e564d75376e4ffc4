//! The reactor: the live derivations, scatters and relations of a ledger, and what they
//! do when a commit is published.
//!
//! ## When rules run
//! [`crate::LedgerStore::react`] runs after a commit is published and its consumers are
//! notified, never inside the commit (the plain `write`/`append`/`commit` call it before
//! they return). Derived facts are ordinary commits that follow their source commit.
//!
//! ## Cycle guard
//! Derived writes never trigger reactions: the reactor writes them itself and does not
//! react to them, and a thread-local flag makes any write a rule makes through the ledger
//! (a Ruby rule calling `write`) skip reactions too. So a derivation whose target store is
//! its source store cannot loop, and derived stores do not cascade (as in the reference).
//!
//! ## Cost
//! Each derivation keeps the latest matching fact of every key of its source store in a
//! key-sorted array, updated from the published state for the keys a commit touched
//! (a binary search and, for a key entering or leaving, a shift of the array). The rule
//! reads that array itself (shared, not copied), so a write costs O(log n) plus the
//! shift plus the rule, and never a pass over the source store. A scatter touches one
//! target record per source fact; a relation index record holds every key of its
//! partition (the reference's shape), so adding a key costs O(keys in the partition).
//!
//! ## Concurrency
//! No lock is held while a rule runs (a Ruby rule may let other threads run). A
//! derivation numbers each evaluation and skips writing a result older than the one
//! already written; a scatter (and a relation index) writes with an optimistic
//! `expected:` check on the target record and folds again on conflict.
//!
//! ## Crash consistency
//! A crash can fall between a source commit and its derived writes. Registration
//! reconciles: a derivation or scatter registered over a source store that already holds
//! facts recomputes from the current source state (a scatter folds the store's facts in
//! commit order from an empty target) and writes only the targets that differ. After a
//! reopen, registering the same rules therefore brings every target back to the rule
//! applied to its source state. Registering over an empty store calls no rule.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::ledger::access::EncodedFilters;
use crate::{
    Batch, BoxError, Error, Expected, Fact, HistoryQuery, LedgerStore, MapKey, Read, Result, Value,
    Write,
};

use super::rules::{partition_key_text, Derivation, Projection, Relation, Scatter, ScatterRule};

/// How often a scatter folds again after losing an optimistic race before giving up
/// (counted as a failure).
const MAX_FOLD_ATTEMPTS: usize = 64;

thread_local! {
    /// Set while this thread runs reactions or registrations: writes made meanwhile (by a
    /// rule, through the ledger) do not react.
    static REACTING: Cell<bool> = const { Cell::new(false) };
}

/// Clears [`REACTING`] when dropped (also on unwinding).
struct ReactingGuard;

impl ReactingGuard {
    /// Marks this thread as reacting; None if it already is (re-entry).
    fn enter() -> Option<Self> {
        REACTING.with(|r| {
            if r.get() {
                None
            } else {
                r.set(true);
                Some(ReactingGuard)
            }
        })
    }
}

impl Drop for ReactingGuard {
    fn drop(&mut self) {
        REACTING.with(|r| r.set(false));
    }
}

/// The live state of one derivation.
pub(crate) struct LiveDerivation {
    pub(crate) spec: Derivation,
    label: String,
    state: Mutex<Members>,
}

/// A derivation's membership: the latest matching fact of every key of the source
/// store, sorted by key, in one contiguous array that evaluations share (copied only if a
/// change arrives while an evaluation still holds it), and a digest of the set.
#[derive(Default)]
struct Members {
    keys: Vec<Arc<str>>,
    facts: Arc<Vec<Fact>>,
    /// Sum (lane-wise, wrapping) of `member_hash` over the members: updated in O(1) per
    /// change, equal for equal sets.
    digest: [u64; 4],
    /// Evaluations started.
    version: u64,
    /// The evaluation whose result was written last.
    written: u64,
}

impl Members {
    fn add(&mut self, f: &Fact) {
        for (d, h) in self.digest.iter_mut().zip(member_hash(f)) {
            *d = d.wrapping_add(h);
        }
    }
    fn sub(&mut self, f: &Fact) {
        for (d, h) in self.digest.iter_mut().zip(member_hash(f)) {
            *d = d.wrapping_sub(h);
        }
    }
    /// Makes `fact` the member for its key (or removes the key when `fact` is None).
    fn set(&mut self, key: &str, fact: Option<Fact>) {
        let pos = self.keys.binary_search_by(|k| (**k).cmp(key));
        match (fact, pos) {
            (Some(f), Ok(i)) => {
                if self.facts[i].id() == f.id() {
                    return;
                }
                self.add(&f);
                let old = std::mem::replace(&mut Arc::make_mut(&mut self.facts)[i], f);
                self.sub(&old);
            }
            (Some(f), Err(i)) => {
                self.add(&f);
                self.keys.insert(i, f.key_arc().clone());
                Arc::make_mut(&mut self.facts).insert(i, f);
            }
            (None, Ok(i)) => {
                self.keys.remove(i);
                let old = Arc::make_mut(&mut self.facts).remove(i);
                self.sub(&old);
            }
            (None, Err(_)) => {}
        }
    }
}

/// blake3 of a member's id and value hash, as four lanes.
fn member_hash(f: &Fact) -> [u64; 4] {
    let mut h = blake3::Hasher::new();
    h.update(f.id().as_bytes());
    h.update(&f.value_hash());
    let b = h.finalize();
    let b = b.as_bytes();
    std::array::from_fn(|i| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8])))
}

/// The hex form of a membership digest.
fn digest_hex(d: &[u64; 4]) -> String {
    d.iter().map(|l| format!("{l:016x}")).collect()
}

/// What a scatter folds with.
enum Fold {
    /// A user rule.
    Rule(Arc<dyn ScatterRule>),
    /// A relation's grow-only index: `{keys:, count:, partition_key:}`.
    RelationIndex,
}

/// The live state of one scatter (a relation's index included).
pub(crate) struct LiveScatter {
    pub(crate) spec: Scatter,
    label: String,
    fold: Fold,
    /// Encoded partition field, for reading it without decoding the whole value.
    field: Vec<u8>,
}

/// Everything registered.
#[derive(Default)]
struct Registry {
    derivations: Vec<Arc<LiveDerivation>>,
    scatters: Vec<Arc<LiveScatter>>,
    relations: Vec<Relation>,
    projections: Vec<Projection>,
}

/// The derived-state engine of one ledger (held by the ledger; see the module docs).
#[derive(Default)]
pub(crate) struct Reactor {
    /// Set once anything that reacts is registered (the no-rule write path checks only
    /// this).
    active: AtomicBool,
    registry: RwLock<Registry>,
    failures: AtomicU64,
    last_failure: Mutex<Option<String>>,
}

/// The relation index rule, as a [`ScatterRule`] (what the schema graph shows for a
/// relation's scatter; the reactor runs the same fold).
pub(crate) struct RelationIndexRule {
    partition: MapKey,
}

impl ScatterRule for RelationIndexRule {
    fn fold(
        &self,
        _partition: &Value,
        existing: Option<&Value>,
        fact: &Fact,
    ) -> std::result::Result<Option<Value>, BoxError> {
        Ok(relation_fold(&self.partition, existing, fact.key()))
    }
}

/// The keys of a relation index value.
fn index_keys(v: Option<&Value>) -> Vec<Value> {
    match v.and_then(|v| v.get_sym("keys")) {
        Some(Value::Array(keys)) => keys.clone(),
        _ => Vec::new(),
    }
}

fn index_value(partition: &MapKey, keys: Vec<Value>) -> Value {
    let count = keys.len() as i64;
    Value::map([
        (MapKey::sym("keys"), Value::Array(keys)),
        (MapKey::sym("count"), Value::Int(count)),
        (MapKey::sym("partition_key"), partition.to_value()),
    ])
}

/// Adds `key` to an index value; None when it is already there (nothing to write).
fn relation_fold(partition: &MapKey, existing: Option<&Value>, key: &str) -> Option<Value> {
    let mut keys = index_keys(existing);
    if keys.iter().any(|k| k.as_str() == Some(key)) {
        return None;
    }
    keys.push(Value::from(key));
    Some(index_value(partition, keys))
}

/// [`relation_fold`] on an owned index value (its keys are moved, not copied).
fn relation_fold_owned(partition: &MapKey, existing: Option<Value>, key: &str) -> Option<Value> {
    let mut keys = match existing {
        Some(Value::Map(pairs)) => pairs
            .into_iter()
            .find_map(|(k, v)| match (k, v) {
                (MapKey::Sym(name), Value::Array(keys)) if name == "keys" => Some(keys),
                _ => None,
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if keys.iter().any(|k| k.as_str() == Some(key)) {
        return None;
    }
    keys.push(Value::from(key));
    Some(index_value(partition, keys))
}

fn ids_value(ids: impl IntoIterator<Item = Uuid>) -> Value {
    Value::array(ids.into_iter().map(|id| Value::from(id.to_string())))
}

fn provenance<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::map(pairs.into_iter().map(|(k, v)| (MapKey::sym(k), v)))
}

/// Runs a rule, turning a panic into an error.
fn guarded<T>(
    f: impl FnOnce() -> std::result::Result<T, BoxError>,
) -> std::result::Result<T, BoxError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err("the rule panicked".into()),
    }
}

impl Reactor {
    // ------------------------------------------------------------------ registration

    pub(crate) fn add_derivation(&self, ledger: &LedgerStore, spec: Derivation) -> Result<()> {
        check_name(&spec.source_store, "source_store")?;
        check_name(&spec.target_store, "target_store")?;
        if let Some(k) = spec.target_key.fixed() {
            if k.is_empty() {
                return Err(Error::InvalidArgument(
                    "target_key must not be empty".into(),
                ));
            }
        }
        let label = format!(
            "derivation {}->{}/{:?}",
            spec.source_store, spec.target_store, spec.target_key
        );
        let live = Arc::new(LiveDerivation {
            spec,
            label,
            state: Mutex::new(Members::default()),
        });
        let _guard = ReactingGuard::enter();
        // Registered first, so that commits published from now on are reacted to; the
        // membership is then filled from the published state (reactions meanwhile only
        // re-read the latest fact of their keys, which gives the same result).
        self.registry.write().derivations.push(live.clone());
        self.active.store(true, Ordering::Release);
        let source = ledger.history_raw(HistoryQuery::new(live.spec.source_store.clone()));
        if source.is_empty() {
            return Ok(());
        }
        let mut keys: Vec<Arc<str>> = source.iter().map(|f| f.key_arc().clone()).collect();
        keys.sort_unstable();
        keys.dedup();
        drop(source);
        self.refresh(&live, ledger, keys.iter().map(|k| &**k));
        self.evaluate(ledger, &live, None, true);
        Ok(())
    }

    pub(crate) fn add_scatter(&self, ledger: &LedgerStore, spec: Scatter) -> Result<()> {
        check_name(&spec.source_store, "source_store")?;
        check_name(&spec.target_store, "target_store")?;
        let label = format!(
            "scatter {}->{} by {}",
            spec.source_store, spec.target_store, spec.partition_by
        );
        let fold = Fold::Rule(spec.rule.clone());
        self.add_live_scatter(ledger, spec, label, fold)
    }

    fn add_live_scatter(
        &self,
        ledger: &LedgerStore,
        spec: Scatter,
        label: String,
        fold: Fold,
    ) -> Result<()> {
        let mut field = Vec::new();
        crate::ledger::codec::write_key(&mut field, &spec.partition_by);
        let live = Arc::new(LiveScatter {
            spec,
            label,
            fold,
            field,
        });
        let _guard = ReactingGuard::enter();
        self.registry.write().scatters.push(live.clone());
        self.active.store(true, Ordering::Release);
        self.reconcile_scatter(ledger, &live);
        Ok(())
    }

    pub(crate) fn add_relation(&self, ledger: &LedgerStore, rel: Relation) -> Result<()> {
        check_name(&rel.name, "relation name")?;
        check_name(&rel.source, "source")?;
        check_name(&rel.target, "target")?;
        {
            let reg = self.registry.read();
            if let Some(old) = reg.relations.iter().find(|r| r.name == rel.name) {
                if *old == rel {
                    return Ok(());
                }
                return Err(Error::InvalidArgument(format!(
                    "relation :{} is already registered as {} by {} -> {}; it cannot be \
                     registered again as {} by {} -> {}",
                    rel.name,
                    old.source,
                    old.partition,
                    old.target,
                    rel.source,
                    rel.partition,
                    rel.target
                )));
            }
        }
        let scatter = Scatter::with_rule(
            rel.source.clone(),
            rel.partition.clone(),
            rel.index_store(),
            Arc::new(RelationIndexRule {
                partition: rel.partition.clone(),
            }),
        );
        let label = format!("relation {}", rel.name);
        {
            let mut reg = self.registry.write();
            // Checked again under the write lock (another thread may have won).
            if let Some(old) = reg.relations.iter().find(|r| r.name == rel.name) {
                return if *old == rel {
                    Ok(())
                } else {
                    Err(Error::InvalidArgument(format!(
                        "relation :{} is already registered with a different definition",
                        rel.name
                    )))
                };
            }
            reg.relations.push(rel);
        }
        self.add_live_scatter(ledger, scatter, label, Fold::RelationIndex)
    }

    pub(crate) fn add_projection(&self, p: Projection) -> Result<()> {
        check_name(&p.name, "projection name")?;
        let mut reg = self.registry.write();
        match reg.projections.iter_mut().find(|q| q.name == p.name) {
            Some(q) => *q = p,
            None => reg.projections.push(p),
        }
        Ok(())
    }

    // ------------------------------------------------------------------ metadata

    /// Adds the derived-state registrations to a schema graph.
    pub(crate) fn fill(&self, mut g: super::SchemaGraph) -> super::SchemaGraph {
        let reg = self.registry.read();
        g.derivations = reg.derivations.iter().map(|d| d.spec.clone()).collect();
        g.scatters = reg.scatters.iter().map(|s| s.spec.clone()).collect();
        g.relations = reg.relations.clone();
        g.projections = reg.projections.clone();
        g
    }

    pub(crate) fn derivations(&self) -> Vec<Derivation> {
        self.registry
            .read()
            .derivations
            .iter()
            .map(|d| d.spec.clone())
            .collect()
    }

    pub(crate) fn scatters(&self) -> Vec<Scatter> {
        self.registry
            .read()
            .scatters
            .iter()
            .map(|s| s.spec.clone())
            .collect()
    }

    pub(crate) fn relation(&self, name: &str) -> Option<Relation> {
        self.registry
            .read()
            .relations
            .iter()
            .find(|r| r.name == name)
            .cloned()
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub(crate) fn last_failure(&self) -> Option<String> {
        self.last_failure.lock().clone()
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_failure.lock() = Some(format!("{what}: {e}"));
    }

    // ------------------------------------------------------------------ reacting

    /// Runs the rules that `facts` (one published commit) trigger.
    pub(crate) fn react(&self, ledger: &LedgerStore, facts: &[Fact]) {
        if facts.is_empty() || !self.active.load(Ordering::Acquire) {
            return;
        }
        let Some(_guard) = ReactingGuard::enter() else {
            return; // a write made by a rule: no cascade
        };
        let (derivations, scatters) = {
            let reg = self.registry.read();
            let d: Vec<Arc<LiveDerivation>> = reg
                .derivations
                .iter()
                .filter(|d| facts.iter().any(|f| f.store() == d.spec.source_store))
                .cloned()
                .collect();
            let s: Vec<Arc<LiveScatter>> = reg
                .scatters
                .iter()
                .filter(|s| facts.iter().any(|f| f.store() == s.spec.source_store))
                .cloned()
                .collect();
            (d, s)
        };
        for d in &derivations {
            let touched: Vec<&Fact> = facts
                .iter()
                .filter(|f| f.store() == d.spec.source_store)
                .collect();
            self.refresh(d, ledger, touched.iter().map(|f| f.key()));
            let trigger = touched.last().map(|f| f.id());
            self.evaluate(ledger, d, trigger, false);
        }
        for s in &scatters {
            for f in facts.iter().filter(|f| f.store() == s.spec.source_store) {
                self.scatter_one(ledger, s, f);
            }
        }
    }

    /// Re-reads the latest fact of `keys` into a derivation's membership.
    fn refresh<'k>(
        &self,
        d: &LiveDerivation,
        ledger: &LedgerStore,
        keys: impl Iterator<Item = &'k str>,
    ) {
        let filters = EncodedFilters::new(&d.spec.filters);
        let mut st = d.state.lock();
        for key in keys {
            let latest = ledger
                .latest(&d.spec.source_store, key)
                .filter(|f| filters.matches(&f.value_bytes()));
            st.set(key, latest);
        }
    }

    /// A derived fact was written: derivations reading its store see it (without being
    /// evaluated: derived writes do not react).
    fn note_derived(&self, ledger: &LedgerStore, fact: &Fact) {
        let ds: Vec<Arc<LiveDerivation>> = self
            .registry
            .read()
            .derivations
            .iter()
            .filter(|d| d.spec.source_store == fact.store())
            .cloned()
            .collect();
        for d in ds {
            self.refresh(&d, ledger, std::iter::once(fact.key()));
        }
    }

    /// Commits one derived write; notifies consumers; updates memberships.
    fn write_derived(&self, ledger: &LedgerStore, w: Write) -> Result<Fact> {
        let mut c = ledger.commit_deferred(Batch::new().write(w))?;
        ledger.deliver(std::mem::take(&mut c.pending));
        let fact = c
            .facts
            .pop()
            .ok_or_else(|| Error::InvalidArgument("a derived write returned no fact".into()))?;
        self.note_derived(ledger, &fact);
        Ok(fact)
    }

    /// Calls a derivation's rule on its membership and writes the result. `reconcile`:
    /// write only when the target differs.
    fn evaluate(
        &self,
        ledger: &LedgerStore,
        d: &LiveDerivation,
        trigger: Option<Uuid>,
        reconcile: bool,
    ) {
        let (version, input, digest) = {
            let mut st = d.state.lock();
            st.version += 1;
            (st.version, st.facts.clone(), st.digest)
        };
        let key = match &d.spec.target_key {
            super::TargetKey::Fixed(k) => k.clone(),
            super::TargetKey::Computed(r) => match guarded(|| r.key(&input)) {
                Ok(k) if !k.is_empty() => k,
                Ok(_) => return self.fail(&d.label, "the target key rule returned an empty key"),
                Err(e) => return self.fail(&d.label, e),
            },
        };
        let value = match guarded(|| d.spec.rule.derive(&input)) {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(e) => return self.fail(&d.label, e),
        };
        if reconcile
            && ledger
                .latest(&d.spec.target_store, &key)
                .is_some_and(|f| f.value() == value)
        {
            return;
        }
        let prov = provenance([
            ("kind", Value::sym("derivation")),
            ("rule", Value::from(d.label.as_str())),
            (
                "trigger",
                trigger.map_or(Value::Nil, |id| Value::from(id.to_string())),
            ),
            ("inputs", Value::Int(input.len() as i64)),
            ("input_digest", Value::from(digest_hex(&digest))),
            ("reconciled", Value::Bool(reconcile)),
        ]);
        let w = Write::new(d.spec.target_store.clone(), key, value).derivation(prov);
        // Not older than what is already written (another thread may have evaluated a
        // newer membership and written first).
        let committed = {
            let mut st = d.state.lock();
            if st.written > version {
                return;
            }
            match ledger.commit_deferred(Batch::new().write(w)) {
                Ok(c) => {
                    st.written = version;
                    c
                }
                Err(e) => {
                    drop(st);
                    return self.fail(&d.label, e);
                }
            }
        };
        ledger.deliver(committed.pending);
        for f in &committed.facts {
            self.note_derived(ledger, f);
        }
    }

    /// The partition value of a fact for a scatter, if the field is there.
    fn partition_of(s: &LiveScatter, fact: &Fact) -> Option<Value> {
        let bytes = fact.value_bytes();
        let raw = crate::ledger::codec::map_field(&bytes, &s.field)?;
        crate::ledger::codec::decode_value(raw).ok()
    }

    fn fold_with(
        s: &LiveScatter,
        pv: &Value,
        existing: Option<&Value>,
        fact: &Fact,
    ) -> std::result::Result<Option<Value>, BoxError> {
        match &s.fold {
            Fold::Rule(r) => guarded(|| r.fold(pv, existing, fact)),
            Fold::RelationIndex => Ok(relation_fold(&s.spec.partition_by, existing, fact.key())),
        }
    }

    /// Folds one source fact into its partition's target record.
    fn scatter_one(&self, ledger: &LedgerStore, s: &LiveScatter, fact: &Fact) {
        let Some(pv) = Self::partition_of(s, fact) else {
            return;
        };
        let Some(key) = partition_key_text(&pv) else {
            return;
        };
        for _ in 0..MAX_FOLD_ATTEMPTS {
            let existing =
                match ledger.read_fact(Read::new(s.spec.target_store.clone(), key.clone())) {
                    Ok(e) => e,
                    Err(e) => return self.fail(&s.label, e),
                };
            let (expected, current) = match &existing {
                Some(rf) => (Expected::Fact(rf.id()), Some(rf.value())),
                None => (Expected::Absent, None),
            };
            let folded = match &s.fold {
                // The index record is ours to take apart: no copy of its keys.
                Fold::RelationIndex => Ok(relation_fold_owned(
                    &s.spec.partition_by,
                    current,
                    fact.key(),
                )),
                Fold::Rule(_) => Self::fold_with(s, &pv, current.as_ref(), fact),
            };
            let value = match folded {
                Ok(Some(v)) => v,
                Ok(None) => return,
                Err(e) => return self.fail(&s.label, e),
            };
            let prov = provenance([
                ("kind", Value::sym(self.kind(s))),
                ("rule", Value::from(s.label.as_str())),
                ("sources", ids_value([fact.id()])),
            ]);
            let w = Write::new(s.spec.target_store.clone(), key.clone(), value)
                .expected(expected)
                .derivation(prov);
            match self.write_derived(ledger, w) {
                Ok(_) => return,
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return self.fail(&s.label, e),
            }
        }
        self.fail(
            &s.label,
            "gave up after repeated write conflicts on the target",
        );
    }

    fn kind(&self, s: &LiveScatter) -> &'static str {
        match s.fold {
            Fold::Rule(_) => "scatter",
            Fold::RelationIndex => "relation",
        }
    }

    /// Brings every target of a scatter to the fold of the source store's facts in
    /// commit order, writing only the targets that differ. Calls no rule for an empty
    /// source store.
    fn reconcile_scatter(&self, ledger: &LedgerStore, s: &LiveScatter) {
        let source = ledger.history_raw(HistoryQuery::new(s.spec.source_store.clone()));
        if source.is_empty() {
            return;
        }
        // partition key text -> (partition value, folded value, ids folded, failed)
        let mut parts: HashMap<String, (Value, Option<Value>, Vec<Uuid>)> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        // Relation indexes: the keys already indexed per partition.
        let mut indexed: HashMap<String, HashSet<Arc<str>>> = HashMap::new();
        for f in &source {
            let Some(pv) = Self::partition_of(s, f) else {
                continue;
            };
            let Some(key) = partition_key_text(&pv) else {
                continue;
            };
            let entry = parts.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                (pv.clone(), None, Vec::new())
            });
            match &s.fold {
                Fold::RelationIndex => {
                    // Linear: keys in first-seen order.
                    let keys = match &mut entry.1 {
                        Some(Value::Array(k)) => k,
                        slot => {
                            *slot = Some(Value::Array(Vec::new()));
                            match slot {
                                Some(Value::Array(k)) => k,
                                _ => continue,
                            }
                        }
                    };
                    if indexed
                        .entry(key.clone())
                        .or_default()
                        .insert(f.key_arc().clone())
                    {
                        keys.push(Value::from(f.key()));
                        entry.2.push(f.id());
                    }
                }
                Fold::Rule(_) => match Self::fold_with(s, &pv, entry.1.as_ref(), f) {
                    Ok(Some(v)) => {
                        entry.1 = Some(v);
                        entry.2.push(f.id());
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.fail(&s.label, e);
                        failed.push(key.clone());
                    }
                },
            }
        }
        for key in order {
            if failed.contains(&key) {
                continue;
            }
            let Some((_, Some(folded), ids)) = parts.remove(&key) else {
                continue;
            };
            let target = match &s.fold {
                Fold::RelationIndex => match folded {
                    Value::Array(keys) => index_value(&s.spec.partition_by, keys),
                    other => other,
                },
                Fold::Rule(_) => folded,
            };
            let current = ledger.latest(&s.spec.target_store, &key);
            if current.as_ref().is_some_and(|f| f.value() == target) {
                continue;
            }
            let prov = provenance([
                ("kind", Value::sym(self.kind(s))),
                ("rule", Value::from(s.label.as_str())),
                ("sources", ids_value(ids.last().copied())),
                ("inputs", Value::Int(ids.len() as i64)),
                ("reconciled", Value::Bool(true)),
            ]);
            let expected = current.map_or(Expected::Absent, |f| Expected::Fact(f.id()));
            let w = Write::new(s.spec.target_store.clone(), key, target)
                .expected(expected)
                .derivation(prov);
            if let Err(e) = self.write_derived(ledger, w) {
                self.fail(&s.label, e);
            }
        }
    }
}

fn check_name(name: &str, what: &str) -> Result<()> {
    crate::ledger::fact::check_store_name(name)
        .map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))
}
