//! The in-memory views over the log: commit order, per-store and per-key positions,
//! fact ids, partitions and materialized scopes.
//!
//! Every index holds `u32` positions into one `Vec<Fact>` in commit order. Because
//! transaction times are strictly increasing along that vector, any position list is
//! also sorted by time, so `since`/`as_of` windows are two binary searches.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use super::access::{matches_filters, AccessPath, Coercion, Delivery, Notification};
use super::codec;
use super::error::{Error, Result};
use super::fact::Fact;
use super::time::Timestamp;
use super::value::{MapKey, Value};

/// Positions of one key's facts: most keys have one version, so that case is inline.
#[derive(Debug)]
pub(crate) enum Versions {
    One(u32),
    Many(Vec<u32>),
}

impl Versions {
    fn push(&mut self, p: u32) {
        match self {
            Versions::One(a) => *self = Versions::Many(vec![*a, p]),
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

pub(crate) struct ScopeIndex {
    pub(crate) path: AccessPath,
    pub(crate) name: Arc<str>,
    pub(crate) members: BTreeSet<Arc<str>>,
}

#[derive(Default)]
pub(crate) struct StoreIndex {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) all: Vec<u32>,
    pub(crate) keys: HashMap<Arc<str>, Versions>,
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
    pub(crate) stores: HashMap<Arc<str>, StoreIndex>,
    /// Built once a fact arrives whose id is not greater than its predecessor's (facts
    /// imported from other writers); until then ids are found by binary search on `log`.
    id_map: Option<HashMap<Uuid, u32>>,
    /// End offset in the WAL of the last applied frame, and that frame's CRC.
    pub(crate) wal_end: u64,
    pub(crate) wal_tail_crc: u32,
}

/// Moves between the interned names of a [`State`] and decoding.
pub(crate) struct StateInterner<'a>(pub(crate) &'a mut State);

impl super::fact::Interner for StateInterner<'_> {
    fn store(&mut self, s: &str) -> Arc<str> {
        match self.0.stores.get_key_value(s) {
            Some((k, _)) => k.clone(),
            None => Arc::from(s),
        }
    }
    fn key(&mut self, store: &Arc<str>, k: &str) -> Arc<str> {
        match self
            .0
            .stores
            .get(store)
            .and_then(|si| si.keys.get_key_value(k))
        {
            Some((k, _)) => k.clone(),
            None => Arc::from(k),
        }
    }
}

impl State {
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

    /// Shared key, if it exists.
    pub(crate) fn key_name(&self, store: &str, key: &str) -> Option<Arc<str>> {
        self.stores
            .get(store)
            .and_then(|si| si.keys.get_key_value(key))
            .map(|(k, _)| k.clone())
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
        fact: Fact,
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
        let store_name = fact.store_arc().clone();
        let si = self.stores.entry(store_name.clone()).or_default();
        if si.name.is_none() {
            si.name = Some(store_name.clone());
        }
        si.all.push(pos);
        let key = fact.key_arc().clone();
        match si.keys.get_mut(&*key) {
            Some(v) => v.push(pos),
            None => {
                si.keys.insert(key.clone(), Versions::One(pos));
            }
        }
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
                    scope.members.remove(&*key)
                };
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
    pub(crate) fn read(
        &self,
        store: &str,
        key: &str,
        as_of: Option<Timestamp>,
        valid_at: Option<f64>,
    ) -> Option<Fact> {
        let versions = self.stores.get(store)?.keys.get(key)?.as_slice();
        let window = self.window(versions, None, as_of);
        match valid_at {
            None => window.last().map(|&p| self.log[p as usize].clone()),
            Some(t) => {
                let mut best: Option<(f64, u32)> = None;
                for &p in window {
                    let vt = self.log[p as usize].effective_valid_time();
                    if vt <= t && best.is_none_or(|(b, _)| vt >= b) {
                        best = Some((vt, p));
                    }
                }
                best.map(|(_, p)| self.log[p as usize].clone())
            }
        }
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
                for (key, versions) in &si.keys {
                    if let Some(&p) = versions.as_slice().last() {
                        if path.matches(&log[p as usize].value()) {
                            members.insert(key.clone());
                        }
                    }
                }
                let name: Arc<str> = Arc::from(scope.as_str());
                si.scopes.insert(
                    name.clone(),
                    ScopeIndex {
                        path,
                        name,
                        members,
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

    pub(crate) fn coercion(&self, store: &str) -> Option<Arc<dyn Coercion>> {
        self.stores.get(store).and_then(|s| s.coercion.clone())
    }

    pub(crate) fn query(
        &self,
        store: &str,
        scope: &str,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<Fact>> {
        let unknown = || Error::UnknownScope {
            store: store.to_owned(),
            scope: scope.to_owned(),
        };
        let si = self.stores.get(store).ok_or_else(unknown)?;
        let sc = si.scopes.get(scope).ok_or_else(unknown)?;
        match as_of {
            None => Ok(sc
                .members
                .iter()
                .filter_map(|k| si.keys.get(k))
                .filter_map(|v| v.as_slice().last())
                .map(|&p| self.log[p as usize].clone())
                .collect()),
            Some(t) => {
                let mut keys: Vec<(&Arc<str>, &Versions)> = si.keys.iter().collect();
                keys.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = Vec::new();
                for (_, v) in keys {
                    if let Some(&p) = self.window(v.as_slice(), None, Some(t)).last() {
                        let f = &self.log[p as usize];
                        if matches_filters(&sc.path.filters, &f.value()) {
                            out.push(f.clone());
                        }
                    }
                }
                Ok(out)
            }
        }
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
    for &p in positions {
        let v = log[p as usize].value();
        if let Some(pv) = v.get(pk) {
            buckets.entry(encode_key(pv)).or_default().push(p);
        }
    }
    buckets
}
