//! `query(store:, where:, order:, limit:, as_of:)`: how the records are found.
//!
//! The answer is the latest (coerced) record of every key whose value matches `where`
//! (field equality; Symbols and Strings compare by text, and a field is found under a
//! Symbol or a String key), ordered by `order` then key (by key without `order`), at
//! most `limit`. Three things keep it from costing O(keys) when it need not:
//!
//! - **Field indexes.** A `where` field that an `access_path` descriptor of the store
//!   names (`fields: [...]`) is looked up in the ledger's partition index of that field
//!   (built on first use, kept current by every write after): the keys that ever held the
//!   value are the candidates, and each candidate's latest record is checked against the
//!   whole `where`. Both spellings of the field name and of a Symbol/String value are
//!   looked up, so the answer is the scan's. The index is used when its slice is smaller
//!   than the store's key count (a field whose value most records share is cheaper to
//!   scan), never for a store with a read coercion (the index holds stored values, the
//!   query sees coerced ones), and only for values whose equality is byte equality
//!   (Symbols, Strings, Integers, booleans, binaries).
//! - **Early exit.** Without `order`, records come in key order, so a `limit` stops the
//!   scan at the `limit`-th match.
//! - **Bounded top-k.** With `order` and `limit`, a heap of at most `limit` records is
//!   kept while scanning: O(matches · log limit) and O(limit) memory instead of sorting
//!   every match.
//!
//! `replay(filter: {store:, partition_key:, partition_value:})` reads the same partition
//! indexes ([`partition_facts`]): O(slice) instead of O(facts of the store).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

use crate::{Fact, LedgerStore, MapKey, PartitionQuery, Read, Timestamp, Value};

use super::error::ProtocolError;
use super::packet::{compare, field};
use super::sources::{latest_items, same, Item};

/// A parsed query.
#[derive(Debug)]
pub struct Query<'a> {
    /// The store.
    pub store: &'a str,
    /// `where`: field equality filters.
    pub filters: Vec<(&'a MapKey, &'a Value)>,
    /// `order`: (field, descending).
    pub order: Option<(String, bool)>,
    /// `limit`.
    pub limit: Option<usize>,
    /// `as_of`.
    pub as_of: Option<Timestamp>,
}

impl Query<'_> {
    /// True when `value` passes every filter of `where`.
    pub fn matches(&self, value: &Value) -> bool {
        self.filters.iter().all(|(k, v)| {
            let name = match k {
                MapKey::Sym(s) | MapKey::Str(s) => s.as_str(),
                MapKey::Int(_) => return value.get(k).is_some_and(|x| same(x, v)),
            };
            field(value, name).is_some_and(|x| same(x, v))
                || (v.is_nil() && field(value, name).is_none())
        })
    }

    /// Runs the query over `store`; `indexed` names the fields of this store that
    /// `access_path` descriptors declare.
    pub fn run(
        &self,
        ledger: &LedgerStore,
        indexed: &[String],
    ) -> Result<Vec<Item>, ProtocolError> {
        if self.limit == Some(0) {
            return Ok(Vec::new());
        }
        let mut out = Collector::new(self);
        match self.candidates(ledger, indexed)? {
            Some(keys) => {
                for key in keys {
                    let value =
                        ledger.read(Read::new(self.store, key.as_str()).as_of_opt(self.as_of))?;
                    if let Some(value) = value {
                        if self.matches(&value) && !out.push(key, value) {
                            break;
                        }
                    }
                }
            }
            None if self.as_of.is_none() => {
                for f in ledger.current(self.store)? {
                    let value = f.value();
                    if self.matches(&value) && !out.push(f.key().to_owned(), value) {
                        break;
                    }
                }
            }
            None => {
                for i in latest_items(ledger, self.store, self.as_of)? {
                    if self.matches(&i.value) && !out.push(i.key, i.value) {
                        break;
                    }
                }
            }
        }
        Ok(out.finish())
    }

    /// The candidate keys from the cheapest usable field index, in key order, or None
    /// when no index applies (or scanning is cheaper).
    fn candidates(
        &self,
        ledger: &LedgerStore,
        indexed: &[String],
    ) -> Result<Option<Vec<String>>, ProtocolError> {
        if indexed.is_empty() || ledger.has_coercion(self.store) {
            return Ok(None);
        }
        let mut best: Option<(usize, Vec<PartitionQuery>)> = None;
        for (k, v) in &self.filters {
            let name = match k {
                MapKey::Sym(s) | MapKey::Str(s) if indexed.iter().any(|f| f == s) => s,
                _ => continue,
            };
            let Some(lookups) = spellings(self.store, name, v, None, self.as_of) else {
                continue;
            };
            let mut size = 0;
            for q in &lookups {
                size += slice_len(ledger, q)?;
            }
            if best.as_ref().is_none_or(|(b, _)| size < *b) {
                best = Some((size, lookups));
            }
        }
        let Some((size, lookups)) = best else {
            return Ok(None);
        };
        if size >= ledger.key_count(self.store) {
            return Ok(None);
        }
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        for q in lookups {
            for f in ledger.history_partition(q)? {
                if seen.insert(f.key().to_owned()) {
                    keys.push(f.key().to_owned());
                }
            }
        }
        keys.sort_unstable();
        Ok(Some(keys))
    }
}

/// The partition-index look-ups that find `field == value` as the protocol compares
/// (a Symbol or String field name, a Symbol or String value by text): one per spelling,
/// or None when the value's equality is not byte equality (floats, containers, nil).
fn spellings(
    store: &str,
    name: &str,
    value: &Value,
    since: Option<Timestamp>,
    as_of: Option<Timestamp>,
) -> Option<Vec<PartitionQuery>> {
    let values: Vec<Value> = match value {
        Value::Sym(t) | Value::Str(t) => vec![Value::Sym(t.clone()), Value::Str(t.clone())],
        Value::Int(_) | Value::Bool(_) | Value::Bin(_) => vec![value.clone()],
        _ => return None,
    };
    let mut out = Vec::with_capacity(4);
    for key in [MapKey::sym(name), MapKey::str(name)] {
        for v in &values {
            out.push(
                PartitionQuery::with_key(store, key.clone(), v.clone())
                    .since_opt(since)
                    .as_of_opt(as_of),
            );
        }
    }
    Some(out)
}

/// How many facts a look-up's slice holds (whatever its time bounds); the first look-up
/// of a field spelling builds its index.
fn slice_len(ledger: &LedgerStore, q: &PartitionQuery) -> Result<usize, ProtocolError> {
    Ok(match ledger.partition_len(q) {
        Some(n) => n,
        None => {
            ledger.history_partition(q.clone())?;
            ledger.partition_len(q).unwrap_or(0)
        }
    })
}

/// The raw facts of `store` whose field `name` equals `value` (as the protocol compares),
/// in commit order, with `since <= transaction_time <= as_of`, from the partition index
/// of the field: what `replay(filter: {store:, partition_key:, partition_value:})`
/// answers, in O(slice) instead of O(facts of the store). None when the index cannot
/// answer exactly: a value compared otherwise than by bytes, or matches under more than
/// one spelling (their slices are not merged, as commit order across them is not known
/// here).
pub fn partition_facts(
    ledger: &LedgerStore,
    store: &str,
    name: &str,
    value: &Value,
    since: Option<Timestamp>,
    as_of: Option<Timestamp>,
) -> Result<Option<Vec<Fact>>, ProtocolError> {
    let Some(lookups) = spellings(store, name, value, since, as_of) else {
        return Ok(None);
    };
    let mut found: Option<Vec<Fact>> = None;
    for q in lookups {
        if slice_len(ledger, &q)? == 0 {
            continue;
        }
        // Checked as the scan checks (the first field spelling present decides, an
        // erased value matches nothing).
        let facts: Vec<Fact> = ledger
            .history_partition(q)?
            .into_iter()
            .map(|f| f.fact)
            .filter(|f| field(&f.value(), name).is_some_and(|v| same(v, value)))
            .collect();
        match &found {
            None => found = Some(facts),
            // The same slice under another spelling (a ledger that symbolizes keys
            // answers a String field name from the Symbol index).
            Some(f) if same_facts(f, &facts) => {}
            Some(_) => return Ok(None),
        }
    }
    Ok(Some(found.unwrap_or_default()))
}

fn same_facts(a: &[Fact], b: &[Fact]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.id() == y.id())
}

/// One record ranked by the `order` field (then key).
struct Ranked {
    rank: Value,
    desc: bool,
    item: Item,
}

impl Ranked {
    fn cmp_rank(&self, other: &Self) -> Ordering {
        let o = compare(&self.rank, &other.rank);
        let o = if self.desc { o.reverse() } else { o };
        o.then_with(|| self.item.key.cmp(&other.item.key))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_rank(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_rank(other)
    }
}

/// Gathers matches in key order: all of them, the first `limit`, or (with `order`) the
/// best `limit` in a bounded heap.
enum Collector {
    /// No order: key order, stop at the limit.
    Keyed { items: Vec<Item>, limit: usize },
    /// Order without limit: everything, sorted at the end.
    Sorted {
        items: Vec<Ranked>,
        field: String,
        desc: bool,
    },
    /// Order with limit: a max-heap of the best `limit` (its top is the worst kept).
    TopK {
        heap: BinaryHeap<Ranked>,
        field: String,
        desc: bool,
        limit: usize,
    },
}

impl Collector {
    fn new(q: &Query<'_>) -> Self {
        match (&q.order, q.limit) {
            (None, limit) => Collector::Keyed {
                items: Vec::new(),
                limit: limit.unwrap_or(usize::MAX),
            },
            (Some((field, desc)), None) => Collector::Sorted {
                items: Vec::new(),
                field: field.clone(),
                desc: *desc,
            },
            (Some((field, desc)), Some(limit)) => Collector::TopK {
                heap: BinaryHeap::with_capacity(limit.min(1024) + 1),
                field: field.clone(),
                desc: *desc,
                limit,
            },
        }
    }

    /// Adds a match (keys arrive in ascending order); false when no later match can be
    /// part of the answer.
    fn push(&mut self, key: String, value: Value) -> bool {
        let rank = |name: &str, value: &Value| field(value, name).cloned().unwrap_or_default();
        match self {
            Collector::Keyed { items, limit } => {
                items.push(Item { key, value });
                items.len() < *limit
            }
            Collector::Sorted { items, field, desc } => {
                items.push(Ranked {
                    rank: rank(field, &value),
                    desc: *desc,
                    item: Item { key, value },
                });
                true
            }
            Collector::TopK {
                heap,
                field,
                desc,
                limit,
            } => {
                let r = Ranked {
                    rank: rank(field, &value),
                    desc: *desc,
                    item: Item { key, value },
                };
                if heap.len() < *limit {
                    heap.push(r);
                } else if heap.peek().is_some_and(|worst| r < *worst) {
                    heap.pop();
                    heap.push(r);
                }
                true
            }
        }
    }

    fn finish(self) -> Vec<Item> {
        match self {
            Collector::Keyed { items, .. } => items,
            Collector::Sorted { mut items, .. } => {
                items.sort();
                items.into_iter().map(|r| r.item).collect()
            }
            Collector::TopK { heap, .. } => {
                heap.into_sorted_vec().into_iter().map(|r| r.item).collect()
            }
        }
    }
}
