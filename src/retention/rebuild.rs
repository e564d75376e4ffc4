//! Rebuilding the in-memory views over a rewritten log, keeping every registration.

use std::collections::HashMap;

use crate::ledger::fact::Fact;
use crate::ledger::index::State;

/// A fresh state holding `log` (commit order) with the registrations of `old`: access
/// paths (scope memberships recomputed as the facts are applied), coercions, and the
/// partition indexes `old` maintained (rebuilt over `log`). Scope `as_of` histories are
/// rebuilt lazily by their first `as_of` query, as after an open.
pub(crate) fn rebuild(old: &State, log: Vec<Fact>) -> State {
    let mut s = State::default();
    for (name, si) in &old.stores {
        if let Some(c) = &si.coercion {
            // The name was valid when registered.
            let _ = s.register_coercion(name, c.clone());
        }
        for p in si
            .point_paths
            .iter()
            .chain(si.scopes.values().map(|sc| &sc.path))
        {
            let _ = s.register_path(p.clone());
        }
        if !si.partitions.is_empty() {
            let target = s.stores.entry(name.clone()).or_default();
            if target.name.is_none() {
                target.name = Some(name.clone());
            }
            for pk in si.partitions.keys() {
                target.partitions.insert(pk.clone(), HashMap::new());
            }
        }
    }
    let mut discard = Vec::new();
    for f in log {
        s.apply(f, None, None, &mut discard);
        discard.clear();
    }
    s.wal_end = 0;
    s.wal_tail_crc = 0;
    s
}
