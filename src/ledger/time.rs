//! Transaction time: microseconds since the Unix epoch, strictly increasing per ledger.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A point in transaction time: whole microseconds since the Unix epoch.
///
/// Microseconds are the ledger's smallest unit because every such instant survives the
/// trip through a Ruby `Float` (seconds) and back exactly: `as_of: fact.transaction_time`
/// selects exactly the facts up to and including that fact.
///
/// ```
/// use igniter_ledger::Timestamp;
/// let t = Timestamp::from_micros(1_700_000_000_123_456);
/// assert_eq!(Timestamp::from_secs_f64(t.as_secs_f64()), t);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The earliest representable time.
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    /// The latest representable time.
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// From microseconds since the epoch.
    pub const fn from_micros(us: i64) -> Self {
        Timestamp(us)
    }
    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }
    /// Seconds since the epoch as a float (what Ruby sees).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
    /// From float seconds. A float that came from [`Timestamp::as_secs_f64`] maps back to
    /// the same microsecond; any other float maps to the last microsecond not after it, so
    /// `as_of` comparisons stay `<=`. Non-finite inputs saturate.
    pub fn from_secs_f64(secs: f64) -> Self {
        if secs.is_nan() {
            return Timestamp(i64::MIN);
        }
        let x = secs * 1e6;
        if x >= i64::MAX as f64 {
            return Timestamp::MAX;
        }
        if x <= i64::MIN as f64 {
            return Timestamp::MIN;
        }
        let r = x.round();
        // Within float noise of a whole microsecond: that microsecond (covers the round
        // trip of our own timestamps, whose float form is at most half an ulp away).
        let ulp = f64::EPSILON * x.abs().max(1.0);
        if (x - r).abs() <= ulp.max(1e-6) {
            Timestamp(r as i64)
        } else {
            Timestamp(x.floor() as i64)
        }
    }
    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_micros().min(i64::MAX as u128) as i64)
    }
    /// The next microsecond.
    pub fn next(self) -> Self {
        Timestamp(self.0.saturating_add(1))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}", self.as_secs_f64())
    }
}

/// Hands out strictly increasing transaction times: the wall clock, or the last time plus
/// one microsecond when the clock stalls or steps back.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    last: Timestamp,
}

impl Clock {
    pub(crate) fn new(last: Timestamp) -> Self {
        Clock { last }
    }
    /// `t` when it is later than every time handed out so far, else the next tick.
    pub(crate) fn tick_at(&mut self, t: Timestamp) -> Timestamp {
        if t > self.last {
            self.last = t;
            t
        } else {
            self.tick()
        }
    }
    pub(crate) fn tick(&mut self) -> Timestamp {
        let now = Timestamp::now();
        let t = if now > self.last {
            now
        } else {
            self.last.next()
        };
        self.last = t;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_round_trip_is_exact_for_current_times() {
        let base = Timestamp::now().as_micros();
        for d in 0..10_000 {
            let t = Timestamp::from_micros(base + d * 7919);
            assert_eq!(Timestamp::from_secs_f64(t.as_secs_f64()), t);
        }
    }

    #[test]
    fn clock_is_strictly_increasing() {
        let mut c = Clock::new(Timestamp::from_micros(i64::MAX / 2));
        let a = c.tick();
        let b = c.tick();
        assert!(b > a);
        assert_eq!(b, a.next());
    }

    #[test]
    fn between_microseconds_floors() {
        assert_eq!(
            Timestamp::from_secs_f64(1.0000015),
            Timestamp::from_micros(1_000_001)
        );
    }
}
