//! The caches a `LedgerStore` handle keeps of Ruby objects it handed out: deep-frozen
//! values of read facts (`ReadCache`, an LRU by fact id), time-travel answers
//! (`TimeTravelCache`, an LRU by store, key and `as_of`) and the `Fact` handles of whole
//! `history_partition` slices (`PartitionCache`). They hold `Opaque` handles only; the
//! store marks them for the GC.

use std::collections::{HashMap, HashSet, VecDeque};

use magnus::{value::Opaque, RArray, Value as RValue};

use crate::convert;

/// A least-recently-used map bounded by `cap` entries: a hit makes its entry the most
/// recently used; the least recently used goes first.
///
/// Recency is kept with use stamps: each entry holds the stamp of its last use, and
/// `order` lists (key, stamp) pairs in use order. A hit pushes a new pair instead of
/// moving the old one (O(1)); pairs whose stamp is no longer the entry's are skipped
/// when evicting, and `order` is compacted once it holds more than twice `cap` pairs, so
/// every operation is amortized O(1).
pub(crate) struct Lru<K, V> {
    pub(crate) cap: usize,
    pub(crate) map: HashMap<K, (V, u64), convert::QuickState>,
    pub(crate) order: VecDeque<(K, u64)>,
    pub(crate) clock: u64,
}

/// Ruby values of recently read facts, by fact id (facts never change, so an entry never
/// goes stale).
pub(crate) type ReadCache = Lru<uuid::Uuid, Opaque<RValue>>;

/// What a time-travel read (`as_of:` without `valid_at:`) is filed under: store, key and
/// the `as_of` seconds' bits (the core reads `as_of` as those seconds, so equal seconds
/// answer equally).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct TimeTravelKey {
    pub(crate) store: String,
    pub(crate) key: String,
    pub(crate) as_of: u64,
}

/// Time-travel answers, each with the ledger's fact count when it was read: an answer is
/// reused only while the count is the same (the 0.5.x store's `ReadCache` entries with
/// their token), so it never outlives a write. Bounded by the store's `lru_cap:`.
pub(crate) type TimeTravelCache = Lru<TimeTravelKey, (Opaque<RValue>, usize)>;

impl<K: std::hash::Hash + Eq + Clone, V: Copy> Lru<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        Lru {
            cap,
            map: HashMap::default(),
            order: VecDeque::new(),
            clock: 0,
        }
    }

    /// Forgets every entry.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// A new bound; the least recently used entries beyond it go.
    pub(crate) fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
        self.evict();
    }

    /// Drops the entries `keep` answers false for.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.map.retain(|k, _| keep(k));
        self.compact();
    }

    pub(crate) fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The cached value, made the most recently used.
    pub(crate) fn get(&mut self, id: &K) -> Option<V> {
        let stamp = self.clock + 1;
        let (v, used) = self.map.get_mut(id)?;
        *used = stamp;
        let v = *v;
        self.clock = stamp;
        self.order.push_back((id.clone(), stamp));
        self.compact();
        Some(v)
    }

    pub(crate) fn put(&mut self, id: K, v: V) {
        if self.cap == 0 {
            return;
        }
        let stamp = self.tick();
        self.map.insert(id.clone(), (v, stamp));
        self.order.push_back((id, stamp));
        self.evict();
        self.compact();
    }

    fn evict(&mut self) {
        while self.map.len() > self.cap {
            let Some((old, s)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|(_, used)| *used == s) {
                self.map.remove(&old);
            }
        }
    }

    /// Drops the stale pairs of `order` once it holds more than twice `cap`.
    pub(crate) fn compact(&mut self) {
        if self.order.len() > 2 * self.cap.max(8) {
            let map = &self.map;
            self.order
                .retain(|(id, s)| map.get(id).is_some_and(|(_, used)| used == s));
        }
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values().map(|(v, _)| v)
    }
}

/// What a cached `history_partition` slice is filed under: store, partition key and the
/// partition value's encoded bytes (values are not `Hash`; equal values encode equally).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct SliceKey {
    pub(crate) store: String,
    pub(crate) key: igniter_ledger::MapKey,
    pub(crate) value: Vec<u8>,
}

impl SliceKey {
    /// The key of the slice of `store` whose events hold `value` under `key`.
    pub(crate) fn new(
        store: String,
        key: igniter_ledger::MapKey,
        value: &igniter_ledger::Value,
    ) -> Self {
        let mut bytes = Vec::with_capacity(16);
        igniter_ledger::__private::codec::write_value(&mut bytes, value);
        SliceKey {
            store,
            key,
            value: bytes,
        }
    }
}

/// A cached slice: an Array of `Fact` handles (never handed out: callers get copies; only
/// the cache appends to it), its length and its last fact's id.
pub(crate) struct Slice {
    pub(crate) facts: Opaque<RArray>,
    pub(crate) len: usize,
    pub(crate) last: Option<uuid::Uuid>,
    /// The last fact's transaction time.
    pub(crate) last_tx: Option<igniter_ledger::Timestamp>,
}

/// `history_partition` answers (without `since:`/`as_of:`), by slice.
///
/// Partitions only grow, by appending in commit order, so a slice cached at any moment
/// stays a prefix of its partition, and it is the whole partition exactly while the
/// core's count of the partition (`partition_len`, O(1), touching no fact) equals the
/// slice's length. When the partition has grown, only the facts appended since get new
/// handles. An `append` with `partition_key:` files the `Fact` it returns into its slice
/// when that makes the slice whole again, as the 0.5.x gem kept appended facts in
/// partition buckets. Stores with a registered coercion (Ruby code that runs on every
/// read) are never cached. Bounded by the number of handles it keeps; the oldest slice
/// goes first.
pub(crate) struct PartitionCache {
    pub(crate) cap: usize,
    pub(crate) held: usize,
    pub(crate) map: HashMap<SliceKey, Slice, convert::QuickState>,
    pub(crate) order: VecDeque<SliceKey>,
    /// Stores with a coercion registered through this handle.
    pub(crate) coerced: HashSet<String>,
}

impl PartitionCache {
    /// An empty cache keeping at most `cap` handles.
    pub(crate) fn new(cap: usize) -> Self {
        PartitionCache {
            cap,
            held: 0,
            map: HashMap::default(),
            order: VecDeque::new(),
            coerced: HashSet::new(),
        }
    }

    /// Forgets every slice.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.held = 0;
    }

    /// Forgets every slice of `store`.
    pub(crate) fn forget_store(&mut self, store: &str) {
        let keys: Vec<SliceKey> = self
            .map
            .keys()
            .filter(|k| k.store == store)
            .cloned()
            .collect();
        for k in keys {
            self.remove(&k);
        }
    }

    pub(crate) fn remove(&mut self, key: &SliceKey) -> Option<Slice> {
        let slice = self.map.remove(key)?;
        self.held -= slice.len;
        Some(slice)
    }

    pub(crate) fn put(&mut self, key: SliceKey, slice: Slice) {
        if slice.len > self.cap {
            self.remove(&key);
            return;
        }
        self.held += slice.len;
        if let Some(old) = self.map.insert(key.clone(), slice) {
            self.held -= old.len;
        } else {
            self.order.push_back(key);
        }
        self.trim();
    }

    /// Drops the oldest slices while more handles than `cap` are kept.
    pub(crate) fn trim(&mut self) {
        while self.held > self.cap {
            match self.order.pop_front() {
                Some(old) => {
                    self.remove(&old);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod read_cache_tests {
    //! The LRU bookkeeping only (no Ruby objects are dereferenced: the values are opaque
    //! handles made from immediates).
    use super::*;
    use magnus::rb_sys::FromRawValue;

    fn v(n: i64) -> Opaque<RValue> {
        // SAFETY: a Fixnum is an immediate VALUE (2n+1); it is never dereferenced here.
        Opaque::from(unsafe { RValue::from_raw(((n << 1) | 1) as rb_sys::VALUE) })
    }

    fn id(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    #[test]
    fn evicts_the_least_recently_used_and_promotes_hits() {
        let mut c = ReadCache::new(3);
        for n in 1..=3 {
            c.put(id(n), v(n as i64));
        }
        assert!(c.get(&id(1)).is_some()); // 2 is now the least recently used
        c.put(id(4), v(4));
        assert!(c.get(&id(2)).is_none());
        for n in [1, 3, 4] {
            assert!(c.get(&id(n)).is_some(), "{n} kept");
        }
        assert_eq!(c.map.len(), 3);
    }

    #[test]
    fn stays_bounded_under_many_hits() {
        let mut c = ReadCache::new(4);
        for n in 0..4 {
            c.put(id(n), v(n as i64));
        }
        for i in 0..10_000u128 {
            assert!(c.get(&id(i % 4)).is_some());
        }
        assert!(c.order.len() <= 2 * 8 + 1);
        c.put(id(99), v(99));
        assert_eq!(c.map.len(), 4);
        assert!(c.get(&id(0)).is_none(), "0 was the least recently used");
    }

    #[test]
    fn a_lower_bound_evicts_and_retain_drops() {
        let mut c = ReadCache::new(4);
        for n in 0..4 {
            c.put(id(n), v(n as i64));
        }
        c.set_cap(2);
        assert_eq!(c.len(), 2);
        assert!(c.get(&id(0)).is_none() && c.get(&id(3)).is_some());
        c.retain(|k| *k != id(3));
        assert_eq!(c.len(), 1);
        assert!(c.get(&id(2)).is_some());
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut c = ReadCache::new(0);
        c.put(id(1), v(1));
        assert!(c.get(&id(1)).is_none());
    }
}
