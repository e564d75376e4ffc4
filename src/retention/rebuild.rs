//! Rebuilding the in-memory views over a rewritten log, keeping every registration.

use std::sync::Arc;

use crate::ledger::access::{AccessPath, Coercion};
use crate::ledger::fact::Fact;
use crate::ledger::index::State;
use crate::ledger::value::MapKey;

/// What is registered on a state (access paths, coercions, maintained partition
/// indexes), copied out so that a new state can be built without holding the old one.
pub(crate) struct Registrations {
    stores: Vec<StoreRegs>,
    /// Compared to tell whether anything was registered meanwhile.
    print: Vec<String>,
}

struct StoreRegs {
    name: Arc<str>,
    coercion: Option<Arc<dyn Coercion>>,
    paths: Vec<AccessPath>,
    partitions: Vec<MapKey>,
}

impl Registrations {
    /// The registrations of `s`.
    pub(crate) fn of(s: &State) -> Self {
        let mut stores: Vec<StoreRegs> = s
            .stores
            .iter()
            .map(|(name, si)| {
                let mut partitions: Vec<MapKey> = si.partitions.keys().cloned().collect();
                partitions.sort();
                StoreRegs {
                    name: name.clone(),
                    coercion: si.coercion.clone(),
                    paths: si
                        .point_paths
                        .iter()
                        .chain(si.scopes.values().map(|sc| &sc.path))
                        .cloned()
                        .collect(),
                    partitions,
                }
            })
            .filter(|r| r.coercion.is_some() || !r.paths.is_empty() || !r.partitions.is_empty())
            .collect();
        stores.sort_by(|a, b| a.name.cmp(&b.name));
        let print = stores
            .iter()
            .map(|r| {
                format!(
                    "{}|{:?}|{:?}|{:?}",
                    r.name,
                    r.coercion
                        .as_ref()
                        .map(|c| Arc::as_ptr(c) as *const () as usize),
                    r.paths,
                    r.partitions
                )
            })
            .collect();
        Registrations { stores, print }
    }

    /// Whether `other` registers the same things.
    pub(crate) fn same(&self, other: &Registrations) -> bool {
        self.print == other.print
    }
}

/// A fresh state holding `log` (commit order) with registrations `regs`: access paths
/// (scope memberships recomputed as the facts are applied), coercions, and partition
/// indexes (rebuilt over `log`). Scope `as_of` histories are rebuilt lazily by their
/// first `as_of` query, as after an open.
pub(crate) fn rebuild(regs: &Registrations, log: Vec<Fact>) -> State {
    let mut s = State::default();
    for r in &regs.stores {
        if let Some(c) = &r.coercion {
            // The name was valid when registered.
            let _ = s.register_coercion(&r.name, c.clone());
        }
        for p in &r.paths {
            let _ = s.register_path(p.clone());
        }
        if !r.partitions.is_empty() {
            let target = s.stores.entry(r.name.clone()).or_default();
            if target.name.is_none() {
                target.name = Some(r.name.clone());
            }
            for pk in &r.partitions {
                target.partitions.insert(pk.clone(), Default::default());
            }
        }
    }
    let mut discard = Vec::new();
    for f in log {
        s.apply(f, None, None, &mut discard);
        discard.clear();
    }
    s
}

/// Appends `facts` to a rebuilt state (facts committed while it was being built, and
/// receipts).
pub(crate) fn extend(s: &mut State, facts: impl IntoIterator<Item = Fact>) {
    let mut discard = Vec::new();
    for f in facts {
        s.apply(f, None, None, &mut discard);
        discard.clear();
    }
}
