//! Retention policies: what compaction may drop from a store.

use std::collections::BTreeMap;

use crate::ledger::error::{Error, Result};

/// How a store's history is retained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Never compacted.
    Permanent,
    /// Compaction keeps only the latest fact of each key.
    Ephemeral,
    /// Compaction keeps the latest fact of each key and every fact younger than the
    /// policy's duration.
    RollingWindow,
}

impl Strategy {
    /// Parses `"permanent"`, `"ephemeral"` or `"rolling_window"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "permanent" => Ok(Strategy::Permanent),
            "ephemeral" => Ok(Strategy::Ephemeral),
            "rolling_window" => Ok(Strategy::RollingWindow),
            other => Err(Error::InvalidArgument(format!(
                "strategy must be :permanent, :ephemeral or :rolling_window, got {other:?}"
            ))),
        }
    }

    /// The strategy's name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Permanent => "permanent",
            Strategy::Ephemeral => "ephemeral",
            Strategy::RollingWindow => "rolling_window",
        }
    }
}

/// A store's retention policy: a strategy and, for `rolling_window`, the window in
/// seconds.
///
/// ```
/// use igniter_ledger::retention::{RetentionPolicy, Strategy};
/// let p = RetentionPolicy::new(Strategy::RollingWindow, Some(3600.0)).unwrap();
/// assert_eq!(p.duration(), Some(3600.0));
/// assert!(RetentionPolicy::new(Strategy::RollingWindow, None).is_err());
/// assert!(RetentionPolicy::new(Strategy::Ephemeral, Some(-1.0)).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetentionPolicy {
    strategy: Strategy,
    duration: Option<f64>,
}

impl RetentionPolicy {
    /// A policy. `duration` (seconds) is required for `rolling_window` and must be a
    /// finite, non-negative number wherever it is given.
    pub fn new(strategy: Strategy, duration: Option<f64>) -> Result<Self> {
        if let Some(d) = duration {
            if !d.is_finite() || d < 0.0 {
                return Err(Error::InvalidArgument(format!(
                    "duration must be a finite, non-negative number of seconds, got {d}"
                )));
            }
        }
        if strategy == Strategy::RollingWindow && duration.is_none() {
            return Err(Error::InvalidArgument(
                "duration is required for strategy :rolling_window (seconds)".into(),
            ));
        }
        Ok(RetentionPolicy { strategy, duration })
    }

    /// `permanent`.
    pub fn permanent() -> Self {
        RetentionPolicy {
            strategy: Strategy::Permanent,
            duration: None,
        }
    }

    /// `ephemeral`.
    pub fn ephemeral() -> Self {
        RetentionPolicy {
            strategy: Strategy::Ephemeral,
            duration: None,
        }
    }

    /// `rolling_window` of `seconds`.
    pub fn rolling_window(seconds: f64) -> Result<Self> {
        Self::new(Strategy::RollingWindow, Some(seconds))
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The window in seconds, if any.
    pub fn duration(&self) -> Option<f64> {
        self.duration
    }
}

/// The policies of a ledger, by store name (in memory: like access paths, they are
/// registrations, not facts).
#[derive(Clone, Debug, Default)]
pub struct Policies(pub(crate) BTreeMap<String, RetentionPolicy>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        assert_eq!(Strategy::parse("ephemeral").unwrap(), Strategy::Ephemeral);
        let e = Strategy::parse("forever").unwrap_err().to_string();
        assert!(e.contains("strategy"), "{e}");
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let e = RetentionPolicy::new(Strategy::RollingWindow, Some(bad))
                .unwrap_err()
                .to_string();
            assert!(e.contains("duration"), "{e}");
        }
        assert!(RetentionPolicy::new(Strategy::Permanent, None).is_ok());
        assert!(RetentionPolicy::rolling_window(0.0).is_ok());
    }
}
