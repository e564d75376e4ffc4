//! The `Fact` objects a store's writes returned most recently, by id, so that
//! `fact_by_id` hands back the very object `write`/`append`/`transaction` returned (the
//! 0.5.x gem's fact-id index kept its Fact objects).
//!
//! Bounded: the last `cap` facts written through the store (all its handles) are kept
//! (strong references, marked for the GC with the store); for older ones `fact_by_id`
//! answers an equal, new `Fact`. A weak map would keep identity for as long as the object
//! lives, but Ruby 3.1's `ObjectSpace::WeakMap` puts a finalizer on every value, which
//! measured at roughly +50% on an in-memory write; a bounded ring costs a hash insert.

use std::collections::{HashMap, VecDeque};

use magnus::{value::Opaque, Value as RValue};
use uuid::Uuid;

use crate::convert;

/// How many written facts keep their identity by default.
pub const DEFAULT_KEPT: usize = 4096;

/// The most recently written facts' Ruby objects.
pub struct RecentFacts {
    cap: usize,
    order: VecDeque<Uuid>,
    map: HashMap<Uuid, Opaque<RValue>, convert::QuickState>,
}

impl RecentFacts {
    /// Keeps up to `cap` facts (0: none).
    pub fn new(cap: usize) -> Self {
        RecentFacts {
            cap,
            order: VecDeque::new(),
            map: HashMap::default(),
        }
    }

    /// Remembers the object a write returned for fact `id`.
    pub fn note(&mut self, id: Uuid, obj: Opaque<RValue>) {
        if self.cap == 0 {
            return;
        }
        if self.map.insert(id, obj).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    /// The object a write returned for `id`, if it is still kept.
    pub fn get(&self, id: &Uuid) -> Option<Opaque<RValue>> {
        self.map.get(id).copied()
    }

    /// Forgets every kept object (after a storage rewrite: a kept Fact may have been
    /// removed or erased, and must not be handed back by `fact_by_id`).
    pub fn clear(&mut self) {
        self.order.clear();
        self.map.clear();
    }

    /// Every kept object (for the GC's mark).
    pub fn values(&self) -> impl Iterator<Item = &Opaque<RValue>> {
        self.map.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnus::rb_sys::FromRawValue;

    fn v(n: i64) -> Opaque<RValue> {
        // SAFETY: a Fixnum is an immediate VALUE (2n+1); it is never dereferenced here.
        Opaque::from(unsafe { RValue::from_raw(((n << 1) | 1) as rb_sys::VALUE) })
    }

    #[test]
    fn keeps_the_last_cap_facts() {
        let mut r = RecentFacts::new(2);
        for n in 1..=3u128 {
            r.note(Uuid::from_u128(n), v(n as i64));
        }
        assert!(r.get(&Uuid::from_u128(1)).is_none());
        assert!(r.get(&Uuid::from_u128(2)).is_some());
        assert!(r.get(&Uuid::from_u128(3)).is_some());
        assert_eq!(r.values().count(), 2);
        let mut off = RecentFacts::new(0);
        off.note(Uuid::from_u128(1), v(1));
        assert!(off.get(&Uuid::from_u128(1)).is_none());
    }
}
