//! Lock acquisition that cannot hang in a forked child.
//!
//! `fork(2)` copies only the calling thread. A lock that another thread of the parent
//! held at that moment stays held forever in the child: nobody is left to release it. The
//! ledger therefore refuses file operations in a child before taking any lock (see
//! `LedgerStore`), and takes the locks a child may still use (the published state for
//! reads, the writer of an in-memory ledger) through [`acquire`], which never blocks on a
//! lock whose holder does not exist in this process.
//!
//! Exclusive holders record their process id in an [`Owner`] while they hold the lock.
//! In the process that created the ledger, locks are taken normally. In a child, a lock
//! that is busy is waited for only while its holder is a thread of this process; a lock
//! held by a thread of another process (its owner is a foreign pid), or held with no
//! owner recorded for longer than [`ORPHAN_GRACE`] (a parent reader, or a parent writer
//! caught between taking the lock and recording itself), is reported as orphaned.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a child waits for a busy lock whose holder is unknown before calling it
/// orphaned. Holders of this process record themselves within instructions of taking
/// the lock; readers hold it for the few look-ups of one query.
pub(crate) const ORPHAN_GRACE: Duration = Duration::from_millis(1000);

/// The process whose thread holds an exclusive lock (0: none recorded).
#[derive(Debug, Default)]
pub(crate) struct Owner(AtomicU32);

impl Owner {
    /// No owner.
    pub(crate) const fn new_const() -> Self {
        Owner(AtomicU32::new(0))
    }
    fn get(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }
}

/// A guard that records its process as the lock's owner for as long as it lives.
pub(crate) struct Owned<'a, G> {
    guard: G,
    owner: &'a Owner,
}

impl<'a, G> Owned<'a, G> {
    /// Wraps a freshly taken exclusive guard; `pid` is this process.
    pub(crate) fn new(guard: G, owner: &'a Owner, pid: u32) -> Self {
        owner.0.store(pid, Ordering::Release);
        Owned { guard, owner }
    }
}

impl<G> Drop for Owned<'_, G> {
    fn drop(&mut self) {
        // Cleared before the guard (a field) releases the lock.
        self.owner.0.store(0, Ordering::Release);
    }
}

impl<G: Deref> Deref for Owned<'_, G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for Owned<'_, G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

/// Takes a lock in a forked child (`me` is this process): `try_lock` until it succeeds;
/// block with `lock` only once the lock's recorded owner is this process; `None` when
/// the lock is orphaned (see the module documentation).
pub(crate) fn acquire<G>(
    me: u32,
    owner: &Owner,
    mut try_lock: impl FnMut() -> Option<G>,
    lock: impl FnOnce() -> G,
) -> Option<G> {
    let deadline = Instant::now() + ORPHAN_GRACE;
    loop {
        if let Some(g) = try_lock() {
            return Some(g);
        }
        match owner.get() {
            o if o == me => return Some(lock()),
            0 => {}
            _ => return None, // held by a thread of another process: never released here
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[test]
    fn a_lock_owned_by_another_process_is_orphaned_at_once() {
        let m = Mutex::new(());
        let owner = Owner::default();
        let _held = Owned::new(m.lock(), &owner, 1); // "pid 1" holds it
        let t = Instant::now();
        assert!(acquire(2, &owner, || m.try_lock(), || m.lock()).is_none());
        assert!(t.elapsed() < ORPHAN_GRACE);
    }

    #[test]
    fn a_lock_held_with_no_owner_is_orphaned_after_the_grace() {
        let m = Mutex::new(());
        let owner = Owner::default();
        let _held = m.lock();
        let t = Instant::now();
        assert!(acquire(2, &owner, || m.try_lock(), || m.lock()).is_none());
        assert!(t.elapsed() >= ORPHAN_GRACE);
    }

    #[test]
    fn a_lock_held_by_this_process_is_waited_for() {
        let m = std::sync::Arc::new(Mutex::new(0));
        let owner = std::sync::Arc::new(Owner::default());
        let (m2, o2) = (m.clone(), owner.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let mut g = Owned::new(m2.lock(), &o2, 7);
            tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            *g = 1;
        });
        rx.recv().unwrap();
        let g = acquire(7, &owner, || m.try_lock(), || m.lock()).unwrap();
        assert_eq!(*g, 1, "waited for the holder to finish");
        drop(g);
        h.join().unwrap();
        assert_eq!(owner.get(), 0, "cleared on release");
    }
}
