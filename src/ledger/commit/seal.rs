//! Sealing: a batch's operations validated and encoded before any lock ([`prepare`]),
//! then given their times, ids and causations, with the `expected` checks, under the
//! writer lock ([`seal_all`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use uuid::Uuid;

use super::writer::Writer;
use crate::ledger::error::{Error, Result};
use crate::ledger::fact::{self, Fact, FactDraft};
use crate::ledger::index::{Resolved, State};
use crate::ledger::request::{Expected, Op};
use crate::ledger::time::Timestamp;
use crate::ledger::value::{MapKey, Value};

/// A validated, encoded operation.
pub(crate) struct Prepared {
    draft: FactDraft,
    value: Option<Value>,
    is_append: bool,
    causation: Option<Uuid>,
    expected: Expected,
    partition_key: Option<MapKey>,
    /// Id and time of a restored fact (`Write::restoring`).
    restore: Option<(Uuid, Timestamp)>,
}

/// Validates and encodes one operation (no lock held).
pub(crate) fn prepare(op: Op) -> Result<Prepared> {
    match op {
        Op::Write(w) => {
            let draft = FactDraft::new(
                w.store,
                w.key,
                &w.value,
                w.valid_time,
                w.schema_version,
                w.producer.as_ref(),
                w.derivation.as_ref(),
                "value",
            )?;
            Ok(Prepared {
                draft,
                value: Some(w.value),
                is_append: false,
                causation: w.causation,
                expected: w.expected,
                partition_key: None,
                restore: w.restore,
            })
        }
        Op::Append(a) => {
            // The key is a fresh UUID (v4: random, unrelated to the fact id), from the
            // thread's fast PRNG rather than a getrandom(2) call per append.
            let key = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
                .into_uuid()
                .hyphenated()
                .to_string();
            let draft = FactDraft::new(
                a.history,
                key,
                &a.event,
                a.valid_time,
                a.schema_version,
                a.producer.as_ref(),
                a.derivation.as_ref(),
                "event",
            )?;
            Ok(Prepared {
                draft,
                value: Some(a.event),
                is_append: true,
                causation: a.causation,
                expected: Expected::Any,
                partition_key: a.partition_key,
                restore: None,
            })
        }
    }
}

/// A sealed fact, with what publishing it needs besides the fact.
pub(crate) struct Sealed {
    /// The fact, with its id, time and causation.
    pub(crate) fact: Fact,
    /// The decoded value, kept when the store's partitions or scopes need it.
    pub(crate) value: Option<Value>,
    /// The partition key the append named (its index is kept current).
    pub(crate) partition_key: Option<MapKey>,
}

/// Gives each prepared op its time, id and causation, checking `expected`.
pub(crate) fn seal_all(
    w: &mut Writer,
    state: &State,
    prepared: Vec<Prepared>,
) -> Result<Vec<Sealed>> {
    // Only ops whose (store, key) occurs more than once in the batch need batch-local
    // tracking; usually there are none.
    let repeats = repeated_keys(&prepared);
    // Pass 1: interned names and the latest id of each key (two lookups per op), and the
    // `expected` checks — nothing is sealed unless every check passes. Latest ids: earlier
    // ops of this batch first, then pending (fsync) commits, then published facts.
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    let mut resolved: Vec<Resolved> = Vec::with_capacity(prepared.len());
    for (i, p) in prepared.iter().enumerate() {
        let repeat = repeats.get(i).copied().unwrap_or(false);
        let (store, key) = (p.draft.store.as_str(), p.draft.key.as_str());
        let r = state.resolve(store, (!p.is_append).then_some(key));
        let latest = if repeat && seen.contains(&(store, key)) {
            // Reserved by an earlier op of this batch: its id is assigned below.
            Some(Uuid::max())
        } else {
            w.overlay
                .get(store)
                .and_then(|m| m.get(key))
                .copied()
                .or(r.latest)
        };
        let ok = match &p.expected {
            Expected::Any => true,
            Expected::Absent => latest.is_none(),
            Expected::Fact(id) => latest == Some(*id),
        };
        if !ok {
            return Err(Error::Conflict {
                store: store.to_owned(),
                key: key.to_owned(),
                expected: match p.expected {
                    Expected::Fact(id) => Some(id),
                    _ => None,
                },
                actual: latest,
            });
        }
        if repeat {
            seen.insert((store, key));
        }
        if let Some((id, _)) = p.restore {
            if state.fact_by_id(id).is_some() {
                return Err(Error::InvalidArgument(format!(
                    "fact {id} is already in the ledger"
                )));
            }
        }
        resolved.push(Resolved { latest, ..r });
    }
    drop(seen);
    // Pass 2: times, ids, causations.
    let mut local: HashMap<(Arc<str>, Arc<str>), Uuid> = HashMap::new();
    let mut out = Vec::with_capacity(prepared.len());
    for (i, (mut p, r)) in prepared.into_iter().zip(resolved).enumerate() {
        let repeat = repeats.get(i).copied().unwrap_or(false);
        let (tx, id) = match p.restore {
            Some((id, t)) => (w.clock.tick_at(t), id),
            None => {
                let tx = w.clock.tick();
                (tx, fact::new_id(tx))
            }
        };
        // Share the interned store name and key with the index.
        let store = r.store.unwrap_or_else(|| Arc::from(p.draft.store.as_str()));
        let key = r.key.unwrap_or_else(|| Arc::from(p.draft.key.as_str()));
        let latest = if repeat {
            let k = (store.clone(), key.clone());
            let l = local.get(&k).copied().or(r.latest);
            local.insert(k, id);
            l
        } else {
            r.latest
        };
        let causation = match (p.causation, p.is_append || p.restore.is_some()) {
            (Some(c), _) => Some(c),
            (None, false) => latest,
            (None, true) => None,
        };
        let value = if r.needs_value { p.value.take() } else { None };
        let fact = p.draft.seal_named(store, key, id, tx, causation)?;
        out.push(Sealed {
            fact,
            value,
            partition_key: p.partition_key.take(),
        });
    }
    Ok(out)
}

/// For each op, whether another op of the batch has the same (store, key) (empty for a
/// single op: nothing repeats).
fn repeated_keys(prepared: &[Prepared]) -> Vec<bool> {
    if prepared.len() < 2 {
        return Vec::new(); // no allocation for single ops
    }
    let mut repeats = vec![false; prepared.len()];
    // The first op of each (store, key); appends have fresh keys: they never repeat.
    let mut first: HashMap<(&str, &str), usize> = HashMap::with_capacity(prepared.len());
    for (i, p) in prepared.iter().enumerate().filter(|(_, p)| !p.is_append) {
        match first.entry((p.draft.store.as_str(), p.draft.key.as_str())) {
            std::collections::hash_map::Entry::Occupied(e) => {
                repeats[*e.get()] = true;
                repeats[i] = true;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i);
            }
        }
    }
    repeats
}
