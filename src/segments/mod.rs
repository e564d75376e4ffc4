//! Segmented storage: a ledger kept as sealed, self-describing segment files per store
//! and time bucket instead of one growing WAL.
//!
//! Layout under the root:
//!
//! ```text
//! root/ledger.lock                                   the directory lock (see below; empty)
//! root/commit.journal                                  multi-store batches in flight (empty after a clean close: removed)
//! root/sequences.json                                  sequences of purged facts (see `sequences`; written by the first purge)
//! root/wal/store=<s>/date=<bucket>/segment-NNNNNN.wal  frames of one store (bucket: YYYY-MM-DD, YYYY-MM-DDTHH or flat)
//!                                  segment-NNNNNN.wal.manifest.json    written when sealed
//!                                  segment-NNNNNN.wal.index            index of a sealed segment (keys, ids, times, value places and hashes)
//!                                  segment-NNNNNN.wal.purged.json      receipt of a purged segment
//!                                  segment-NNNNNN.wal.quarantine.json  receipt of a damaged segment
//! ```
//!
//! | module | holds |
//! |---|---|
//! | `options` | [`SegmentOptions`]: rotation, codecs, flush policy, durability, retention |
//! | `codec` | frames in and out: `ledger_frames`, `ledger_compact_zlib`, 0.5.2 `json_crc32` |
//! | `legacy` | reading 0.5.2 `compact_delta_zlib` segments |
//! | `index_file` | the per-segment index written at seal, read at open (no value decoded) |
//! | `values` | located facts: values read back from sealed segments (pread, checked) |
//! | `dirlock` | the directory lock: one open handle per root, across processes |
//! | `appender` | the appending side of a live segment: buffering (`none`), hashing |
//! | `backend` | [`SegmentedBackend`]: the directory, sealing, quarantine, purge, journal, reports |
//! | `sequences` | `sequences.json`: the changefeed sequences purged segments took with them |
//!
//! A [`crate::LedgerStore`] opened with [`crate::LedgerStore::open_segmented`] keeps its
//! indexes in memory as usual and hands every commit to a [`SegmentedBackend`] through the
//! commit engine's sink seam (`crate::ledger::commit`).

mod appender;
mod backend;
mod codec;
mod dirlock;
mod index_file;
mod ledger;
mod legacy;
mod options;
mod sequences;
pub(crate) mod values;

pub use backend::{
    SegmentOpenReport, SegmentedBackend, JOURNAL_FILE, MANIFEST_SUFFIX, PURGED_SUFFIX,
    QUARANTINE_SUFFIX,
};
pub use dirlock::LOCK_FILE;
pub use index_file::INDEX_SUFFIX;
pub use ledger::SegmentStorage;
pub use options::{
    FlushPolicy, SegmentCodec, SegmentOptions, TimeBucket, COMPACT_BATCH_SIZE, DEFAULT_MAX_BYTES,
};
pub use sequences::SEQUENCES_FILE;
