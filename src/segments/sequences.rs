//! The changefeed sequences a segmented ledger must not forget: `root/sequences.json`.
//!
//! A ledger's facts keep their changefeed sequence for life (see
//! `crate::changefeed::sequence`). A segmented ledger loads its log back from the
//! segments in commit order; once [`LedgerStore::purge_segments`](crate::LedgerStore)
//! has dropped facts, positions alone would renumber the survivors. So before a purge
//! removes a segment, the sequences of the facts it drops (those not carried forward) are
//! recorded here, as ranges under the segment's path (relative to the root), together
//! with the ledger's identity (its first fact may be among them):
//!
//! ```json
//! {"format": 1, "ledger_id": "0191…", "removed": {"wal/store=r/date=…/segment-000001.wal": [[2, 4], [7, 7]]}}
//! ```
//!
//! On open, the ranges of every segment that is gone are skipped when numbering the
//! facts loaded. The file is written (atomically) before the segment is removed: a crash
//! in between leaves the segment, and its ranges are then not applied.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::backend::SegmentedBackend;
use crate::changefeed::sequence::Sequences;
use crate::ledger::error::Result;

/// The file under the root.
pub const SEQUENCES_FILE: &str = "sequences.json";

/// What `sequences.json` holds.
#[derive(Debug, Default)]
pub(crate) struct SequenceTable {
    /// The ledger's identity (the id of its first fact), once a purge has run.
    ledger_id: Option<Uuid>,
    /// Removed sequence ranges `[lo, hi]`, by segment path relative to the root.
    removed: BTreeMap<String, Vec<(u64, u64)>>,
}

impl SequenceTable {
    /// Reads the table of the segment directory at `root` (empty when there is none).
    /// A file that does not parse is an error: numbering without it would renumber.
    pub(crate) fn load(root: &Path) -> Result<Self> {
        let path = root.join(SEQUENCES_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(crate::Error::io(format!("reading {}", path.display()), e)),
        };
        let bad = |why: &str| crate::Error::Corruption {
            path: path.clone(),
            offset: 0,
            reason: format!("sequence table: {why}"),
        };
        let v: Json = serde_json::from_slice(&bytes).map_err(|e| bad(&e.to_string()))?;
        let ledger_id = match v.get("ledger_id") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(Uuid::parse_str(s).map_err(|_| bad("bad ledger_id"))?),
            Some(_) => return Err(bad("bad ledger_id")),
        };
        let mut removed = BTreeMap::new();
        if let Some(map) = v.get("removed") {
            let map = map
                .as_object()
                .ok_or_else(|| bad("removed is not an object"))?;
            for (seg, ranges) in map {
                let ranges = ranges
                    .as_array()
                    .ok_or_else(|| bad("ranges are not an array"))?;
                let mut out = Vec::with_capacity(ranges.len());
                for r in ranges {
                    let pair = r.as_array().filter(|a| a.len() == 2);
                    let pair = pair.and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)));
                    match pair {
                        Some((lo, hi)) if lo >= 1 && lo <= hi => out.push((lo, hi)),
                        _ => return Err(bad("a range is not [lo, hi] with 1 <= lo <= hi")),
                    }
                }
                removed.insert(seg.clone(), out);
            }
        }
        Ok(SequenceTable { ledger_id, removed })
    }

    /// The sequences of the `len` facts loaded from the segment directory at `root`:
    /// the ranges of the segments that are gone are skipped.
    pub(crate) fn sequences(&self, root: &Path, len: usize) -> Sequences {
        if self.removed.is_empty() && self.ledger_id.is_none() {
            return Sequences::default();
        }
        let gone: Vec<(u64, u64)> = self
            .removed
            .iter()
            .filter(|(seg, _)| !root.join(seg).exists())
            .flat_map(|(_, r)| r.iter().copied())
            .collect();
        Sequences::skipping(self.ledger_id, &gone, len)
    }

    /// Records that `segment` (a path under the root) drops the facts with these
    /// sequences, and the ledger's identity; written before the segment is removed.
    pub(crate) fn record(
        &mut self,
        backend: &SegmentedBackend,
        segment: &Path,
        ledger_id: Option<Uuid>,
        mut seqs: Vec<u64>,
    ) -> Result<()> {
        let root = backend.root();
        let rel = segment.strip_prefix(root).unwrap_or(segment);
        seqs.sort_unstable();
        seqs.dedup();
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for s in seqs {
            match ranges.last_mut() {
                Some((_, hi)) if *hi + 1 == s => *hi = s,
                _ => ranges.push((s, s)),
            }
        }
        if ranges.is_empty() && self.ledger_id.is_some() {
            return Ok(()); // nothing new to remember
        }
        if ledger_id.is_some() {
            self.ledger_id = ledger_id;
        }
        if !ranges.is_empty() {
            self.removed
                .insert(rel.to_string_lossy().into_owned(), ranges);
        }
        let removed: serde_json::Map<String, Json> = self
            .removed
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    json!(r.iter().map(|&(lo, hi)| [lo, hi]).collect::<Vec<_>>()),
                )
            })
            .collect();
        let v = json!({
            "format": 1,
            "ledger_id": self.ledger_id.map(|u| u.to_string()),
            "removed": removed,
        });
        backend.write_json_atomic(&root.join(SEQUENCES_FILE), &v)
    }
}
