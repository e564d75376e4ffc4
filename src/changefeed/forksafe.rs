//! Locks of the changefeed that a forked child never waits on forever.
//!
//! `fork(2)` copies only the calling thread: a changefeed lock that another thread of the
//! parent held at that moment (a writer emitting, a consumer taking an event, a
//! subscriber registering) stays held in the child, and nobody is left to release it.
//! An in-memory ledger is fully usable in a child, so its commits must not emit into
//! such a lock and hang. Every changefeed lock is therefore taken with [`lock`]: at once
//! when free (no system call on this path); by blocking, as usual, in the process that
//! made it; and in any other process by retrying for at most the ledger's orphan grace
//! (see `crate::ledger::fork`), after which the lock is treated as orphaned (`None`) and
//! the caller degrades: a subscriber whose lock is orphaned is skipped and closed, a
//! buffer whose registry or ring is orphaned stops emitting in that process.

use crate::ledger::fork::{acquire, Owner};

/// Changefeed locks record no owner: a busy lock in a child is waited for up to the
/// grace, then called orphaned.
static NO_OWNER: Owner = Owner::new_const();

/// Takes a lock made in process `origin` (see the module documentation).
pub(crate) fn lock<G>(
    origin: u32,
    mut try_lock: impl FnMut() -> Option<G>,
    lock: impl FnOnce() -> G,
) -> Option<G> {
    if let Some(g) = try_lock() {
        return Some(g);
    }
    let me = std::process::id();
    if me == origin {
        return Some(lock());
    }
    acquire(me, &NO_OWNER, try_lock, lock)
}
