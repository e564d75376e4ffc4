//! [`Sequences`]: each fact's changefeed sequence, stable for the fact's whole life.
//!
//! A fresh ledger numbers its facts 1, 2, 3, … in commit order, so a fact's sequence is
//! its position in the log plus one, and nothing needs storing. A retention rewrite
//! (compaction, exact prune) removes facts and leaves the survivors at lower positions;
//! from then on the mapping position → sequence has *runs*: from log index `at` on,
//! sequences continue from `seq`. Only the starts of runs are kept (one per hole a
//! rewrite left, not one per fact), together with the ledger's identity (the first fact
//! may be gone, and with it the id that named the ledger).
//!
//! Persistence: a rewrite writes a `[TAG_SEQUENCES, [identity, [[at, seq], …]]]` frame
//! at the start of the new WAL generation, and a checkpoint writes the same into the
//! snapshot header. A log that never lost a fact has neither, and reads as 1, 2, 3, ….
//! New commits need nothing written: they continue the last run.

use uuid::Uuid;

use crate::ledger::codec::{self, DecodeError, Reader};
use crate::ledger::index::State;

/// The sequences of a log: starts of runs, and the pinned ledger identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sequences {
    /// The ledger's identity once its first fact can be gone (set by a rewrite).
    identity: Option<Uuid>,
    /// `(at, seq)`: the fact at log index `at` (or the next one appended there) has
    /// sequence `seq`, and those after it follow one by one. Strictly increasing in
    /// both; empty = the identity mapping (`seq = at + 1`).
    runs: Vec<(u64, u64)>,
}

/// Most runs a decoded table may hold (one per removed hole; far above any real log).
const MAX_RUNS: usize = 1 << 28;

impl Sequences {
    /// The sequence of the fact at log index `at` (for `at == len`, the sequence the
    /// next appended fact gets).
    pub(crate) fn seq_at(&self, at: usize) -> u64 {
        let at = at as u64;
        let i = self.runs.partition_point(|r| r.0 <= at);
        match i {
            0 => at + 1,
            i => {
                let (start, seq) = self.runs[i - 1];
                seq + (at - start)
            }
        }
    }

    /// The log index of the first run that starts after index `at`, if any (sequences
    /// step by one from `at` up to it).
    pub(crate) fn next_run_after(&self, at: usize) -> Option<usize> {
        let at = at as u64;
        let i = self.runs.partition_point(|r| r.0 <= at);
        self.runs.get(i).map(|r| r.0 as usize)
    }

    /// The first log index (≤ `len`) whose fact has a sequence greater than `cursor`.
    pub(crate) fn index_after(&self, cursor: u64, len: usize) -> usize {
        // seq_at is strictly increasing in the index: binary search over 0..=len.
        let (mut lo, mut hi) = (0usize, len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.seq_at(mid) <= cursor {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The identity pinned by a rewrite, if any.
    pub(crate) fn pinned_identity(&self) -> Option<Uuid> {
        self.identity
    }

    /// True when the mapping is the plain `seq = index + 1` and no identity is pinned.
    pub(crate) fn is_plain(&self) -> bool {
        self.identity.is_none() && self.runs.is_empty()
    }

    /// The sequences of a log rewritten from `old` (whose facts have `old_seqs`): the
    /// facts at the old indexes `kept` (ascending, all `< cut`) followed by everything
    /// from old index `cut` on (committed while the rewrite ran, then receipts), which
    /// keep their sequences too. `identity` is the ledger's identity before the rewrite.
    pub(crate) fn rewritten(
        old_seqs: &Sequences,
        identity: Option<Uuid>,
        kept: impl Iterator<Item = usize>,
        cut: usize,
    ) -> Sequences {
        let mut out = Sequences {
            identity,
            runs: Vec::new(),
        };
        for (at, old) in kept.chain(std::iter::once(cut)).enumerate() {
            out.push_run(at as u64, old_seqs.seq_at(old));
        }
        out
    }

    /// The sequences of a log loaded without some facts whose sequences are known: the
    /// facts still there keep their order, and the `removed` sequences (ranges
    /// `[lo, hi]`, any order, may overlap) are skipped, so the fact at index `i` gets the
    /// `i`-th smallest sequence that was not removed. A segmented ledger reopened after
    /// `purge_segments` numbers by this (see `crate::segments`). `identity` pins the
    /// ledger's identity (its first fact may be among the removed).
    pub(crate) fn skipping(identity: Option<Uuid>, removed: &[(u64, u64)], len: usize) -> Self {
        let mut ranges: Vec<(u64, u64)> = removed
            .iter()
            .copied()
            .filter(|&(lo, hi)| lo >= 1 && lo <= hi)
            .collect();
        ranges.sort_unstable();
        let mut out = Sequences {
            identity,
            runs: Vec::new(),
        };
        // `at`: the next log index to number; `seq`: the smallest sequence not yet
        // handed out or skipped.
        let (mut at, mut seq) = (0u64, 1u64);
        for (lo, hi) in ranges {
            if hi < seq {
                continue; // inside a range already skipped
            }
            if lo > seq {
                // The facts at `at..` take `seq..lo`; stop where the log ends.
                let n = lo - seq;
                if at + n > len as u64 {
                    break;
                }
                at += n;
            }
            seq = hi + 1;
            out.push_run(at, seq);
        }
        out
    }

    /// Records that index `at` has sequence `seq` (called in ascending `at`); adds a run
    /// only where the sequence does not simply continue.
    fn push_run(&mut self, at: u64, seq: u64) {
        if self.seq_at(at as usize) != seq {
            self.runs.push((at, seq));
        }
    }

    /// Writes the payload `[identity or nil, [[at, seq], …]]`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        codec::write_array_len(out, 2);
        match self.identity {
            Some(id) => codec::write_bin(out, id.as_bytes()),
            None => codec::write_nil(out),
        }
        codec::write_array_len(out, self.runs.len());
        for &(at, seq) in &self.runs {
            codec::write_array_len(out, 2);
            codec::write_int(out, at as i64);
            codec::write_int(out, seq as i64);
        }
    }

    /// Reads a payload written by [`encode`](Self::encode), checking that the runs make a
    /// strictly increasing mapping (untrusted bytes never make a table that could
    /// number two facts alike).
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Sequences, DecodeError> {
        let bad = |why: &str| DecodeError(format!("sequence table: {why}"));
        if r.read_array_len()? != 2 {
            return Err(bad("not an [identity, runs] pair"));
        }
        let identity = if r.read_nil()? {
            None
        } else {
            let b = r.read_bin()?;
            Some(Uuid::from_slice(b).map_err(|_| bad("identity is not 16 bytes"))?)
        };
        let n = r.read_array_len()?;
        if n > MAX_RUNS || n > r.remaining() {
            return Err(bad("too many runs"));
        }
        let mut s = Sequences {
            identity,
            runs: Vec::with_capacity(n),
        };
        for _ in 0..n {
            if r.read_array_len()? != 2 {
                return Err(bad("a run is not an [index, sequence] pair"));
            }
            let (at, seq) = (r.read_int()?, r.read_int()?);
            if at < 0 || seq < 1 {
                return Err(bad("negative index or sequence below 1"));
            }
            let (at, seq) = (at as u64, seq as u64);
            if let Some(&(pa, _)) = s.runs.last() {
                if at <= pa {
                    return Err(bad("run indexes do not increase"));
                }
            }
            // Sequences must not go back: the run starts at or past the one it replaces.
            if seq < s.seq_at(at as usize) {
                return Err(bad("sequences do not increase"));
            }
            s.runs.push((at, seq));
        }
        Ok(s)
    }
}

impl State {
    /// The sequence the next published fact gets.
    pub(crate) fn next_sequence(&self) -> u64 {
        self.seqs.seq_at(self.log.len())
    }

    /// The ledger's identity: pinned by a rewrite, else the id of the first fact.
    pub(crate) fn ledger_identity(&self) -> Option<Uuid> {
        self.seqs
            .pinned_identity()
            .or_else(|| self.log.first().map(|f| f.id()))
    }

    /// The sequence of the oldest fact still in the log (the next sequence when empty).
    pub(crate) fn first_sequence(&self) -> u64 {
        self.seqs.seq_at(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_log_numbers_by_position() {
        let s = Sequences::default();
        assert_eq!((s.seq_at(0), s.seq_at(9)), (1, 10));
        assert_eq!(s.index_after(0, 5), 0);
        assert_eq!(s.index_after(3, 5), 3);
        assert_eq!(s.index_after(9, 5), 5);
    }

    #[test]
    fn rewrite_keeps_sequences_and_roundtrips() {
        // Old log of 10 facts (1..=10); keep old indexes 0, 3, 4, 8; 2 facts from
        // index 10 on (committed meanwhile).
        let s = Sequences::rewritten(&Sequences::default(), None, [0, 3, 4, 8].into_iter(), 10);
        let seqs: Vec<u64> = (0..6).map(|i| s.seq_at(i)).collect();
        assert_eq!(seqs, [1, 4, 5, 9, 11, 12]);
        assert_eq!(s.index_after(1, 6), 1);
        assert_eq!(s.index_after(2, 6), 1);
        assert_eq!(s.index_after(5, 6), 3);
        assert_eq!(s.index_after(10, 6), 4);
        // A second rewrite over the first.
        let t = Sequences::rewritten(&s, None, [1, 3].into_iter(), 6);
        let seqs: Vec<u64> = (0..4).map(|i| t.seq_at(i)).collect();
        assert_eq!(seqs, [4, 9, 13, 14]);
        let mut buf = Vec::new();
        t.encode(&mut buf);
        let back = Sequences::decode(&mut Reader::new(&buf)).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn skipping_removed_sequences_numbers_the_rest_in_order() {
        // 12 facts numbered 1..=12; 2, 3, 4, 7 and 11..=12 removed (11 and 12 given as
        // overlapping ranges, out of order): 6 facts left.
        let s = Sequences::skipping(None, &[(7, 7), (2, 4), (12, 12), (11, 12)], 6);
        let seqs: Vec<u64> = (0..6).map(|i| s.seq_at(i)).collect();
        assert_eq!(seqs, [1, 5, 6, 8, 9, 10]);
        assert_eq!(
            s.seq_at(6),
            13,
            "the next fact continues after the removed tail"
        );
        // Nothing removed: the plain mapping.
        assert!(Sequences::skipping(None, &[], 5).is_plain());
        // The first fact removed: numbering starts after it, the identity is pinned.
        let id = Uuid::from_u128(7);
        let t = Sequences::skipping(Some(id), &[(1, 1)], 2);
        assert_eq!((t.seq_at(0), t.seq_at(1)), (2, 3));
        assert_eq!(t.pinned_identity(), Some(id));
        // Ranges past the end of what is left (removed, then nothing loaded after them)
        // stop the numbering at the log's end instead of inventing facts.
        let u = Sequences::skipping(None, &[(5, 5), (9, 9)], 2);
        assert_eq!((u.seq_at(0), u.seq_at(1), u.seq_at(2)), (1, 2, 3));
        // Bad ranges (lo > hi, or sequence 0) are ignored.
        assert!(Sequences::skipping(None, &[(4, 2), (0, 0)], 3).is_plain());
    }

    #[test]
    fn decode_refuses_tables_that_do_not_increase() {
        for runs in [
            vec![(2u64, 2u64)],
            vec![(0, 5), (1, 5)],
            vec![(3, 9), (2, 20)],
        ] {
            let s = Sequences {
                identity: None,
                runs,
            };
            let mut buf = Vec::new();
            s.encode(&mut buf);
            assert!(Sequences::decode(&mut Reader::new(&buf)).is_err(), "{s:?}");
        }
    }
}
