//! The in-memory views over the log: commit order, per-store and per-key positions,
//! fact ids, partitions and materialized scopes.
//!
//! Every index holds `u32` positions into one `Vec<Fact>` in commit order. Because
//! transaction times are strictly increasing along that vector, any position list is
//! also sorted by time, so `since`/`as_of` windows are two binary searches.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use uuid::Uuid;

use super::access::{AccessPath, Coercion, Delivery, EncodedFilters, Notification};
use super::codec;
use super::error::{Error, Result};
use super::fact::Fact;
use super::time::Timestamp;
use super::value::{MapKey, Value};

/// Positions of one key's facts: most keys have one version, so that case is inline;
/// the list of a key with several versions is boxed so that a key-map entry stays small
/// (16 bytes here instead of 24, in every entry of every key map).
#[derive(Debug)]
pub(crate) enum Versions {
    One(u32),
    #[allow(clippy::box_collection)]
    Many(Box<Vec<u32>>),
}

const _: () = assert!(std::mem::size_of::<Versions>() == 16);

impl Versions {
    fn push(&mut self, p: u32) {
        match self {
            Versions::One(a) => *self = Versions::Many(Box::new(vec![*a, p])),
            Versions::Many(v) => v.push(p),
        }
    }
    pub(crate) fn as_slice(&self) -> &[u32] {
        match self {
            Versions::One(a) => std::slice::from_ref(a),
            Versions::Many(v) => v,
        }
    }
}

/// One key of a store's key map: its name, the positions of its facts, and its hash,
/// computed once when the key is first seen.
#[derive(Debug)]
pub(crate) struct KeyEntry {
    hash: u64,
    pub(crate) name: Arc<str>,
    pub(crate) versions: Versions,
}

/// A store's keys: key -> positions of its facts.
///
/// A hash table of entries that keep their own hash (std's keyed SipHash of the key), so
/// growing a map of a million keys moves entries without hashing a million strings again
/// (that rehashing was a third of the time of reopening a large ledger, and a long stall
/// for the write that triggered it).
#[derive(Default)]
pub(crate) struct KeyMap {
    table: hashbrown::HashTable<KeyEntry>,
    hashing: std::collections::hash_map::RandomState,
}

impl KeyMap {
    fn hash(&self, key: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hashing, key)
    }

    /// The entry of `key`.
    pub(crate) fn entry_of(&self, key: &str) -> Option<&KeyEntry> {
        self.table.find(self.hash(key), |e| &*e.name == key)
    }

    /// The positions of `key`'s facts.
    pub(crate) fn get(&self, key: &str) -> Option<&Versions> {
        self.entry_of(key).map(|e| &e.versions)
    }

    /// Adds position `pos` to `key` (a new entry if the key is new); returns the entry.
    fn push(&mut self, key: &Arc<str>, pos: u32) -> &KeyEntry {
        let hash = self.hash(key);
        match self
            .table
            .entry(hash, |e| e.name == *key, |e: &KeyEntry| e.hash)
        {
            hashbrown::hash_table::Entry::Occupied(e) => {
                let e = e.into_mut();
                e.versions.push(pos);
                e
            }
            hashbrown::hash_table::Entry::Vacant(e) => e
                .insert(KeyEntry {
                    hash,
                    name: key.clone(),
                    versions: Versions::One(pos),
                })
                .into_mut(),
        }
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &KeyEntry> {
        self.table.iter()
    }

    /// How many keys.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

pub(crate) struct ScopeIndex {
    pub(crate) path: AccessPath,
    pub(crate) name: Arc<str>,
    pub(crate) members: BTreeSet<Arc<str>>,
    /// Every time a key entered the scope (position of the fact that made it a member),
    /// in commit order — what `as_of` queries need. Built from the store's facts by the
    /// first `as_of` query, maintained on every write after.
    pub(crate) entered: Option<Vec<(u32, Arc<str>)>>,
}

#[derive(Default)]
pub(crate) struct StoreIndex {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) all: Vec<u32>,
    pub(crate) keys: KeyMap,
    /// partition key -> encoded partition value -> positions
    pub(crate) partitions: HashMap<MapKey, HashMap<Box<[u8]>, Vec<u32>>>,
    pub(crate) scopes: BTreeMap<Arc<str>, ScopeIndex>,
    pub(crate) point_paths: Vec<AccessPath>,
    pub(crate) coercion: Option<Arc<dyn Coercion>>,
}

impl StoreIndex {
    fn needs_value(&self) -> bool {
        !self.partitions.is_empty() || !self.scopes.is_empty()
    }
}

/// All in-memory state of a ledger.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) log: Vec<Fact>,
    /// Each fact's changefeed sequence (plain positions until a rewrite removes facts).
    pub(crate) seqs: crate::changefeed::sequence::Sequences,
    pub(crate) stores: HashMap<Arc<str>, StoreIndex>,
    /// Built once a fact arrives whose id is not greater than its predecessor's (facts
    /// imported from other writers); until then ids are found by binary search on `log`.
    id_map: Option<HashMap<Uuid, u32>>,
    /// The store name the interner handed out last (decoding runs of facts of one store
    /// then costs a string comparison instead of a hash lookup per fact).
    last_store: Option<Arc<str>>,
}

/// Moves between the interned names of a [`State`] and decoding.
pub(crate) struct StateInterner<'a>(pub(crate) &'a mut State);

impl super::fact::Interner for StateInterner<'_> {
    fn store(&mut self, s: &str) -> Arc<str> {
        // Consecutive facts mostly share a store: compare before hashing.
        if let Some(last) = &self.0.last_store {
            if **last == *s {
                return last.clone();
            }
        }
        let name = match self.0.stores.get_key_value(s) {
            Some((k, _)) => k.clone(),
            None => Arc::from(s),
        };
        self.0.last_store = Some(name.clone());
        name
    }
    fn key(&mut self, _store: &Arc<str>, k: &str) -> Arc<str> {
        // Not looked up here: applying the fact shares the index's copy of a known key
        // (one hash look-up per fact instead of two).
        Arc::from(k)
    }
}

/// What a writer needs to know of (store, key) before sealing a fact.
#[derive(Default)]
pub(crate) struct Resolved {
    /// The index's copy of the store name, if the store exists.
    pub(crate) store: Option<Arc<str>>,
    /// The index's copy of the key, if the key exists.
    pub(crate) key: Option<Arc<str>>,
    /// The id of the key's latest published fact.
    pub(crate) latest: Option<Uuid>,
    /// Whether the store's partitions or scopes need the decoded value.
    pub(crate) needs_value: bool,
}

impl State {
    /// Interned names, latest fact id and index needs of (store, key) — one lookup for
    /// the store and one for the key (None for appends, whose keys are fresh).
    pub(crate) fn resolve(&self, store: &str, key: Option<&str>) -> Resolved {
        let Some((name, si)) = self.stores.get_key_value(store) else {
            return Resolved::default();
        };
        let (key, latest) = match key.and_then(|k| si.keys.entry_of(k)) {
            Some(e) => (
                Some(e.name.clone()),
                e.versions
                    .as_slice()
                    .last()
                    .map(|&p| self.log[p as usize].id()),
            ),
            None => (None, None),
        };
        Resolved {
            store: Some(name.clone()),
            key,
            latest,
            needs_value: si.needs_value(),
        }
    }

    pub(crate) fn fact_count(&self) -> usize {
        self.log.len()
    }

    pub(crate) fn last_tx(&self) -> Option<Timestamp> {
        self.log.last().map(|f| f.transaction_time())
    }

    /// Shared store name, if the store exists.
    pub(crate) fn store_name(&self, s: &str) -> Option<Arc<str>> {
        self.stores.get_key_value(s).map(|(k, _)| k.clone())
    }

    /// The latest fact of every key of a store, in no particular order.
    pub(crate) fn latest_of_store(&self, store: &str) -> Vec<Fact> {
        let Some(si) = self.stores.get(store) else {
            return Vec::new();
        };
        si.keys
            .iter()
            .filter_map(|e| {
                e.versions
                    .as_slice()
                    .last()
                    .map(|&p| self.log[p as usize].clone())
            })
            .collect()
    }

    pub(crate) fn latest(&self, store: &str, key: &str) -> Option<&Fact> {
        let v = self.stores.get(store)?.keys.get(key)?;
        v.as_slice().last().map(|&p| &self.log[p as usize])
    }

    /// Appends a fact to the log and every index. `value` is the decoded value when the
    /// caller has it (saves a decode when partitions or scopes need it). Notifications for
    /// consumers are pushed onto `out`.
    pub(crate) fn apply(
        &mut self,
        mut fact: Fact,
        value: Option<&Value>,
        partition_key: Option<&MapKey>,
        out: &mut Vec<Delivery>,
    ) {
        let pos = self.log.len() as u32;
        // id index
        if let Some(prev) = self.log.last() {
            if self.id_map.is_none() && fact.id() <= prev.id() {
                let mut m = HashMap::with_capacity(self.log.len() * 2);
                for (i, f) in self.log.iter().enumerate() {
                    m.insert(f.id(), i as u32);
                }
                self.id_map = Some(m);
            }
        }
        if let Some(m) = self.id_map.as_mut() {
            m.insert(fact.id(), pos);
        }
        let si = match self.stores.get_mut(fact.store()) {
            Some(si) => si,
            None => self.stores.entry(fact.store_arc().clone()).or_default(),
        };
        if si.name.is_none() {
            si.name = Some(fact.store_arc().clone());
        }
        si.all.push(pos);
        // One hash per fact, whether the key is new or not.
        let name = &si.keys.push(fact.key_arc(), pos).name;
        // A fact decoded from a file (not shared yet) carries its own copy of the key:
        // make it share the index's, as written facts do.
        if !Arc::ptr_eq(name, fact.key_arc()) {
            if let Some(d) = Arc::get_mut(&mut fact.0) {
                d.key = name.clone();
            }
        }
        let store_name = fact.store_arc();
        let key = fact.key_arc();
        if let Some(pk) = partition_key {
            if !si.partitions.contains_key(pk) {
                // Start this partition index from everything already in the store.
                let built = build_partition(&self.log, &si.all[..si.all.len() - 1], pk);
                si.partitions.insert(pk.clone(), built);
            }
        }
        if si.needs_value() {
            let decoded;
            let value = match value {
                Some(v) => v,
                None => {
                    decoded = fact.value();
                    &decoded
                }
            };
            for (pk, buckets) in si.partitions.iter_mut() {
                if let Some(pv) = value.get(pk) {
                    buckets.entry(encode_key(pv)).or_default().push(pos);
                }
            }
            for scope in si.scopes.values_mut() {
                let is_member = scope.path.matches(value);
                let changed = if is_member {
                    scope.members.insert(key.clone())
                } else {
                    scope.members.remove(key)
                };
                if is_member && changed {
                    if let Some(entered) = scope.entered.as_mut() {
                        entered.push((pos, key.clone()));
                    }
                }
                if changed {
                    for c in &scope.path.consumers {
                        out.push((
                            c.clone(),
                            Notification::Scope {
                                store: store_name.clone(),
                                scope: scope.name.clone(),
                            },
                        ));
                    }
                }
            }
        }
        for p in &si.point_paths {
            for c in &p.consumers {
                out.push((
                    c.clone(),
                    Notification::Point {
                        store: store_name.clone(),
                        key: key.clone(),
                    },
                ));
            }
        }
        self.log.push(fact);
    }

    pub(crate) fn fact_by_id(&self, id: Uuid) -> Option<&Fact> {
        if let Some(m) = &self.id_map {
            return m.get(&id).map(|&p| &self.log[p as usize]);
        }
        self.log
            .binary_search_by(|f| f.id().cmp(&id))
            .ok()
            .map(|p| &self.log[p])
    }

    /// The window of `positions` with `since <= tx <= as_of`.
    pub(crate) fn window<'p>(
        &self,
        positions: &'p [u32],
        since: Option<Timestamp>,
        as_of: Option<Timestamp>,
    ) -> &'p [u32] {
        let tx = |p: &u32| self.log[*p as usize].transaction_time();
        let lo = match since {
            Some(s) => positions.partition_point(|p| tx(p) < s),
            None => 0,
        };
        let hi = match as_of {
            Some(a) => positions.partition_point(|p| tx(p) <= a),
            None => positions.len(),
        };
        if lo >= hi {
            &[]
        } else {
            &positions[lo..hi]
        }
    }

    pub(crate) fn facts_at(&self, positions: &[u32]) -> Vec<Fact> {
        positions
            .iter()
            .map(|&p| self.log[p as usize].clone())
            .collect()
    }

    /// The fact a point read returns (see [`crate::Read`]).
    /// The fact a point read selects, and the store's coercion (found in the same lookup).
    pub(crate) fn read_coercible(
        &self,
        store: &str,
        key: &str,
        as_of: Option<Timestamp>,
        valid_at: Option<f64>,
    ) -> Option<(Fact, Option<Arc<dyn Coercion>>)> {
        let si = self.stores.get(store)?;
        let versions = si.keys.get(key)?.as_slice();
        let window = self.window(versions, None, as_of);
        let p = match valid_at {
            None => *window.last()?,
            Some(t) => {
                let mut best: Option<(f64, u32)> = None;
                for &p in window {
                    let vt = self.log[p as usize].effective_valid_time();
                    if vt <= t && best.is_none_or(|(b, _)| vt >= b) {
                        best = Some((vt, p));
                    }
                }
                best?.1
            }
        };
        Some((self.log[p as usize].clone(), si.coercion.clone()))
    }

    pub(crate) fn history(
        &self,
        store: &str,
        key: Option<&str>,
        since: Option<Timestamp>,
        as_of: Option<Timestamp>,
    ) -> Vec<Fact> {
        let Some(si) = self.stores.get(store) else {
            return Vec::new();
        };
        let positions = match key {
            Some(k) => match si.keys.get(k) {
                Some(v) => v.as_slice(),
                None => return Vec::new(),
            },
            None => &si.all,
        };
        self.facts_at(self.window(positions, since, as_of))
    }

    pub(crate) fn has_partition(&self, store: &str, pk: &MapKey) -> bool {
        self.stores
            .get(store)
            .is_none_or(|si| si.partitions.contains_key(pk))
    }

    pub(crate) fn build_partition_index(&mut self, store: &str, pk: &MapKey) {
        let Some(si) = self.stores.get_mut(store) else {
            return;
        };
        if !si.partitions.contains_key(pk) {
            let built = build_partition(&self.log, &si.all, pk);
            si.partitions.insert(pk.clone(), built);
        }
    }

    /// Partition slice; the caller has ensured the index exists.
    pub(crate) fn partition(
        &self,
        store: &str,
        pk: &MapKey,
        pv: &Value,
        since: Option<Timestamp>,
        as_of: Option<Timestamp>,
    ) -> Vec<Fact> {
        let Some(bucket) = self
            .stores
            .get(store)
            .and_then(|si| si.partitions.get(pk))
            .and_then(|b| b.get(&*encode_key(pv)))
        else {
            return Vec::new();
        };
        self.facts_at(self.window(bucket, since, as_of))
    }

    /// How many facts the partition slice holds, without touching them; None when the
    /// partition index of (store, pk) has not been built yet.
    pub(crate) fn partition_len(&self, store: &str, pk: &MapKey, pv: &Value) -> Option<usize> {
        let buckets = self.stores.get(store)?.partitions.get(pk)?;
        Some(buckets.get(&*encode_key(pv)).map_or(0, Vec::len))
    }

    pub(crate) fn register_path(&mut self, path: AccessPath) -> Result<()> {
        super::fact::check_store_name(&path.store)?;
        for (k, v) in &path.filters {
            v.validate(&format!("filter[{k}]"))?;
        }
        let store_name = self
            .store_name(&path.store)
            .unwrap_or_else(|| Arc::from(path.store.as_str()));
        let log = &self.log;
        let si = self.stores.entry(store_name.clone()).or_default();
        if si.name.is_none() {
            si.name = Some(store_name);
        }
        match path.scope.clone() {
            None => si.point_paths.push(path),
            Some(scope) => {
                let mut members = BTreeSet::new();
                let filters = EncodedFilters::new(&path.filters);
                // Each key's latest fact, visited in commit order (memory order, rather
                // than hash order's random walk over the log).
                let mut latest: Vec<u32> = si
                    .keys
                    .iter()
                    .filter_map(|e| e.versions.as_slice().last().copied())
                    .collect();
                latest.sort_unstable();
                for p in latest {
                    let f = &log[p as usize];
                    if filters.matches(f.value_bytes()) {
                        members.insert(f.key_arc().clone());
                    }
                }
                let name: Arc<str> = Arc::from(scope.as_str());
                si.scopes.insert(
                    name.clone(),
                    ScopeIndex {
                        path,
                        name,
                        members,
                        entered: None,
                    },
                );
            }
        }
        Ok(())
    }

    pub(crate) fn register_coercion(&mut self, store: &str, c: Arc<dyn Coercion>) -> Result<()> {
        super::fact::check_store_name(store)?;
        let store_name = self.store_name(store).unwrap_or_else(|| Arc::from(store));
        let si = self.stores.entry(store_name.clone()).or_default();
        if si.name.is_none() {
            si.name = Some(store_name);
        }
        si.coercion = Some(c);
        Ok(())
    }

    /// False when the scope exists and its `entered` history is not built yet.
    pub(crate) fn scope_history_built(&self, store: &str, scope: &str) -> bool {
        self.stores
            .get(store)
            .and_then(|si| si.scopes.get(scope))
            .is_none_or(|sc| sc.entered.is_some())
    }

    /// Builds a scope's `entered` history by replaying the store's facts through its
    /// filters (once; later writes maintain it).
    pub(crate) fn build_scope_history(&mut self, store: &str, scope: &str) {
        let log = &self.log;
        let Some(si) = self.stores.get_mut(store) else {
            return;
        };
        let all = &si.all;
        let Some(sc) = si.scopes.get_mut(scope) else {
            return;
        };
        if sc.entered.is_some() {
            return;
        }
        let mut members: HashSet<&str> = HashSet::new();
        let mut entered = Vec::new();
        let filters = EncodedFilters::new(&sc.path.filters);
        for &p in all {
            let f = &log[p as usize];
            if filters.matches(f.value_bytes()) {
                if members.insert(f.key()) {
                    entered.push((p, f.key_arc().clone()));
                }
            } else {
                members.remove(f.key());
            }
        }
        sc.entered = Some(entered);
    }

    pub(crate) fn coercion(&self, store: &str) -> Option<Arc<dyn Coercion>> {
        self.stores.get(store).and_then(|s| s.coercion.clone())
    }

    /// The current members of a scope: the latest fact of each key, ordered by key.
    pub(crate) fn query_current(&self, store: &str, scope: &str) -> Result<Vec<Fact>> {
        let (si, sc) = self.scope(store, scope)?;
        Ok(sc
            .members
            .iter()
            .filter_map(|k| si.keys.get(k))
            .filter_map(|v| v.as_slice().last())
            .map(|&p| self.log[p as usize].clone())
            .collect())
    }

    /// The members of a scope at `t`, ordered by key, from the scope's history, which
    /// the caller has built ([`State::build_scope_history`]) under the same lock.
    pub(crate) fn query_as_of(&self, store: &str, scope: &str, t: Timestamp) -> Result<Vec<Fact>> {
        let (si, sc) = self.scope(store, scope)?;
        let Some(entered) = &sc.entered else {
            return Err(Error::InvalidArgument(format!(
                "the history of scope {scope} of store {store} is not built"
            )));
        };
        // A key is a member at `t` only if its latest fact at `t` matches, and that fact
        // (or an earlier one) made it enter the scope: the candidates are the keys that
        // entered at or before `t`.
        let end = entered.partition_point(|(p, _)| self.log[*p as usize].transaction_time() <= t);
        let mut cands: Vec<&Arc<str>> = entered[..end].iter().map(|(_, k)| k).collect();
        cands.sort_unstable();
        cands.dedup();
        let mut out = Vec::new();
        let filters = EncodedFilters::new(&sc.path.filters);
        for k in cands {
            let Some(v) = si.keys.get(k) else { continue };
            if let Some(&p) = self.window(v.as_slice(), None, Some(t)).last() {
                let f = &self.log[p as usize];
                if filters.matches(f.value_bytes()) {
                    out.push(f.clone());
                }
            }
        }
        Ok(out)
    }

    /// A store's index and one of its scopes (`UnknownScope` if either is missing).
    fn scope(&self, store: &str, scope: &str) -> Result<(&StoreIndex, &ScopeIndex)> {
        let unknown = || Error::UnknownScope {
            store: store.to_owned(),
            scope: scope.to_owned(),
        };
        let si = self.stores.get(store).ok_or_else(unknown)?;
        let sc = si.scopes.get(scope).ok_or_else(unknown)?;
        Ok((si, sc))
    }

    pub(crate) fn paths(&self) -> Vec<AccessPath> {
        let mut names: Vec<&Arc<str>> = self.stores.keys().collect();
        names.sort();
        let mut out = Vec::new();
        for n in names {
            let si = &self.stores[n];
            out.extend(si.point_paths.iter().cloned());
            out.extend(si.scopes.values().map(|s| s.path.clone()));
        }
        out
    }

    pub(crate) fn partition_keys(&self) -> Vec<(Arc<str>, MapKey)> {
        let mut out: Vec<(Arc<str>, MapKey)> = self
            .stores
            .iter()
            .flat_map(|(n, si)| si.partitions.keys().map(move |k| (n.clone(), k.clone())))
            .collect();
        out.sort();
        out
    }

    /// How many keys `store` holds.
    pub(crate) fn key_count(&self, store: &str) -> usize {
        self.stores.get(store).map_or(0, |si| si.keys.len())
    }

    /// True when `store` has a read coercion.
    pub(crate) fn has_coercion(&self, store: &str) -> bool {
        self.stores
            .get(store)
            .is_some_and(|si| si.coercion.is_some())
    }

    pub(crate) fn coerced_stores(&self) -> Vec<Arc<str>> {
        let mut out: Vec<Arc<str>> = self
            .stores
            .iter()
            .filter(|(_, si)| si.coercion.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        out.sort();
        out
    }

    /// Names of stores that hold facts.
    pub(crate) fn store_names(&self) -> Vec<Arc<str>> {
        let mut out: Vec<Arc<str>> = self
            .stores
            .iter()
            .filter(|(_, si)| !si.all.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        out.sort();
        out
    }

    pub(crate) fn consumers_registered(&self) -> bool {
        self.stores
            .values()
            .any(|si| !si.point_paths.is_empty() || !si.scopes.is_empty())
    }
}

/// The bucket key of a partition value: its canonical encoding.
fn encode_key(v: &Value) -> Box<[u8]> {
    let mut b = Vec::with_capacity(24);
    codec::write_canonical(&mut b, v);
    b.into_boxed_slice()
}

fn build_partition(log: &[Fact], positions: &[u32], pk: &MapKey) -> HashMap<Box<[u8]>, Vec<u32>> {
    let mut buckets: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
    let mut kb = Vec::new();
    codec::write_key(&mut kb, pk);
    let mut canon = Vec::new();
    for &p in positions {
        // The field's bytes, canonicalized: what encode_key(value.get(pk)) gives, without
        // decoding the value.
        if let Some(raw) = codec::map_field(log[p as usize].value_bytes(), &kb) {
            canon.clear();
            if codec::canonical_of_encoded(raw, &mut canon) {
                match buckets.get_mut(canon.as_slice()) {
                    Some(b) => b.push(p),
                    None => {
                        buckets.insert(canon.as_slice().into(), vec![p]);
                    }
                }
            }
        }
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_map_finds_keys_by_str_across_growth() {
        let mut m = KeyMap::default();
        for i in 0..20_000u32 {
            let name: Arc<str> = Arc::from(format!("key-{i}").as_str());
            assert!(
                Arc::ptr_eq(&m.push(&name, i).name, &name),
                "a new key is shared"
            );
        }
        // A second version of a key keeps the first name and adds the position.
        let again: Arc<str> = Arc::from("key-7");
        let e = m.push(&again, 20_000);
        assert!(!Arc::ptr_eq(&e.name, &again));
        assert_eq!(e.versions.as_slice(), [7, 20_000]);
        for i in 0..20_000u32 {
            let got = m.get(format!("key-{i}").as_str()).map(|v| v.as_slice()[0]);
            assert_eq!(got, Some(i));
        }
        assert!(m.get("key-20000").is_none());
        assert_eq!(m.iter().count(), 20_000);
        // The stored hash is the hash of the str under this map's hasher.
        let e = m.entry_of("key-7").unwrap();
        assert_eq!(e.hash, m.hash("key-7"));
    }
}
