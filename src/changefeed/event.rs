//! [`ChangeEvent`]: one committed fact as the changefeed delivers it, and [`Cursor`]: a
//! position in the committed log.

use std::fmt;

use uuid::Uuid;

use crate::{Fact, Timestamp, Value};

/// A position in a committed log: "everything up to and including `sequence`".
///
/// `ledger` names the ledger the position belongs to (its identity, see the module docs);
/// a standalone buffer's cursors have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Cursor {
    /// 1-based position of the last fact covered (0 = before the first fact).
    pub sequence: u64,
    /// The identity of the ledger the position is in, when known.
    pub ledger: Option<Uuid>,
}

impl Cursor {
    /// A cursor without a ledger identity (the 0.5.2 `{sequence: N}` shape).
    pub fn new(sequence: u64) -> Self {
        Cursor {
            sequence,
            ledger: None,
        }
    }

    /// A cursor in the given ledger.
    pub fn in_ledger(sequence: u64, ledger: Option<Uuid>) -> Self {
        Cursor { sequence, ledger }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ledger {
            Some(l) => write!(f, "{}@{}", self.sequence, l),
            None => write!(f, "{}", self.sequence),
        }
    }
}

/// One committed fact, as delivered by the changefeed. Cheap to clone (the fact is a
/// shared handle).
#[derive(Clone, Debug)]
pub struct ChangeEvent {
    id: u128,
    sequence: u64,
    ledger: Option<Uuid>,
    fact: Fact,
    emitted_at: f64,
}

impl ChangeEvent {
    /// An event for `fact` at `sequence` (with a fresh event id), stamped `emitted_at`
    /// (float seconds since the epoch).
    pub fn new(fact: Fact, sequence: u64, ledger: Option<Uuid>, emitted_at: f64) -> Self {
        ChangeEvent {
            id: fastrand::u128(..),
            sequence,
            ledger,
            fact,
            emitted_at,
        }
    }

    /// An event stamped now.
    pub fn now(fact: Fact, sequence: u64, ledger: Option<Uuid>) -> Self {
        Self::new(fact, sequence, ledger, now_secs())
    }

    /// The event id, `change_<uuid>`; unique per event (two events for the same fact have
    /// different ids).
    pub fn id(&self) -> String {
        format!(
            "change_{}",
            uuid::Builder::from_random_bytes(self.id.to_le_bytes()).into_uuid()
        )
    }

    /// The event type; always `fact_committed`.
    pub fn event_type(&self) -> &'static str {
        "fact_committed"
    }

    /// The shape version of the event; 1.
    pub fn schema_version(&self) -> u32 {
        1
    }

    /// The fact's position in the log (see [`Cursor`]).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The cursor just after this event: resuming from it yields the next fact.
    pub fn cursor(&self) -> Cursor {
        Cursor::in_ledger(self.sequence, self.ledger)
    }

    /// The ledger the event was read from (None for a standalone buffer).
    pub fn ledger(&self) -> Option<Uuid> {
        self.ledger
    }

    /// The committed fact.
    pub fn fact(&self) -> &Fact {
        &self.fact
    }

    /// The fact's store.
    pub fn store(&self) -> &str {
        self.fact.store()
    }

    /// The fact's key.
    pub fn key(&self) -> &str {
        self.fact.key()
    }

    /// The fact's id.
    pub fn fact_id(&self) -> Uuid {
        self.fact.id()
    }

    /// The fact's commit time.
    pub fn transaction_time(&self) -> Timestamp {
        self.fact.transaction_time()
    }

    /// The fact's causation.
    pub fn causation(&self) -> Option<Uuid> {
        self.fact.causation()
    }

    /// The fact's producer.
    pub fn producer(&self) -> Option<Value> {
        self.fact.producer()
    }

    /// When the event was made (float seconds since the epoch): at emission for live
    /// events, at reading for events read back from the log.
    pub fn emitted_at(&self) -> f64 {
        self.emitted_at
    }
}

/// Wall-clock seconds since the epoch as a float.
pub(crate) fn now_secs() -> f64 {
    Timestamp::now().as_secs_f64()
}
