//! Opening a ledger file: snapshot + WAL replay, torn-tail repair, corruption handling,
//! and the report that says what happened.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use super::codec::{DecodeError, Reader};
use super::commit::WalPosition;
use super::error::{Error, Result};
use super::fact::{decode_record, Fact, Interner};
use super::fs::{parent_dir, write_new_file, FileSystem};
use super::import::{self, decode_json, JsonBody};
use super::index::{State, StateInterner};
use super::snapshot::{self, Loaded};
use super::time::Timestamp;
use super::wal::{self, LogFile, ScanEnd, TAG_BATCH, TAG_FACT};

/// What happened to the snapshot on open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SnapshotOutcome {
    /// No snapshot file.
    #[default]
    Absent,
    /// Loaded; the WAL was replayed from `wal_offset` on.
    Loaded {
        /// Facts in the snapshot.
        facts: u64,
        /// WAL bytes it covered.
        wal_offset: u64,
    },
    /// A 0.5.2 Ruby snapshot was merged with the whole WAL (deduplicated by id).
    LoadedLegacy {
        /// Facts in the snapshot.
        facts: u64,
    },
    /// The snapshot was unusable (damaged, or not from this WAL) and the whole WAL was
    /// replayed instead.
    Ignored {
        /// Why.
        reason: String,
    },
}

/// A damaged final frame (an interrupted write, or damage to the last frame with no
/// valid frame after it) that was cut off after its bytes were copied aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Where the damaged frame began (the WAL's new length).
    pub offset: u64,
    /// Bytes cut.
    pub bytes: u64,
    /// The side file (`<wal>.torn-<offset>`) holding the cut bytes, trailing zeros
    /// trimmed; fsynced, with its directory, before the WAL was cut.
    pub side_file: PathBuf,
}

/// Damage moved aside because the open asked to recover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Offset of the first damaged byte (the WAL's new length).
    pub offset: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// The side file now holding them.
    pub side_file: PathBuf,
    /// What was wrong.
    pub reason: String,
}

/// What opening a ledger file found and did. Inspect it with
/// [`crate::LedgerStore::open_report`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenReport {
    /// The WAL path.
    pub path: PathBuf,
    /// WAL size found on open (before any cut).
    pub wal_bytes: u64,
    /// Frames replayed from the WAL.
    pub frames_replayed: u64,
    /// Facts in memory after open.
    pub facts_loaded: u64,
    /// The snapshot's fate.
    pub snapshot: SnapshotOutcome,
    /// A torn final frame that was cut (and copied to a side file), if any.
    pub torn_tail: Option<TornTail>,
    /// Zero bytes after the last frame that were trimmed: preallocated space left by a
    /// process that did not close the ledger (nothing was lost).
    pub zero_tail: u64,
    /// Corruption moved to a side file (only with `recover`).
    pub recovered: Option<Recovered>,
    /// Frames in the 0.5.2 JSON format that were read.
    pub legacy_frames: u64,
    /// Facts whose transaction time had to be moved forward to keep times strictly
    /// increasing (only imported data can need this).
    pub retimed_facts: u64,
    /// Imported causations that were not fact ids and were dropped.
    pub dropped_causations: u64,
    /// Whether a leftover `<wal>.snap.tmp` was found (it is ignored and removed).
    pub stale_snapshot_tmp: bool,
}

/// Options for opening a ledger file.
///
/// ```no_run
/// use igniter_ledger::{Durability, LedgerStore, OpenOptions};
/// let ledger = LedgerStore::open_with("app.wal", OpenOptions::new().durability(Durability::Flush)).unwrap();
/// ```
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    pub(crate) durability: Durability,
    pub(crate) recover: bool,
    pub(crate) hash_keys: super::hash_keys::HashKeys,
}

use super::wal::Durability;

impl OpenOptions {
    /// Defaults: `fsync` durability, no recovery.
    pub fn new() -> Self {
        Self::default()
    }
    /// How commits reach the disk.
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// On corruption (damage followed by valid frames), move the damaged remainder of the
    /// WAL to `<wal>.corrupt-<offset>` and open with what precedes it, instead of failing.
    pub fn recover(mut self, yes: bool) -> Self {
        self.recover = yes;
        self
    }
    /// What writes do with String hash keys (default: keep them; see
    /// [`crate::HashKeys`]). Also read by [`crate::LedgerStore::memory_with`].
    pub fn hash_keys(mut self, h: super::hash_keys::HashKeys) -> Self {
        self.hash_keys = h;
        self
    }
}

/// Decodes a WAL frame body into facts.
pub(crate) fn decode_body(
    body: &[u8],
    state: &mut State,
    report: &mut OpenReport,
) -> Result<Vec<Fact>, DecodeError> {
    let mut seqs = None;
    let facts = decode_body_with(
        body,
        &mut StateInterner(state),
        &mut report.legacy_frames,
        &mut report.dropped_causations,
        &mut seqs,
    )?;
    if let Some(seqs) = seqs {
        // The sequence table of a rewritten generation describes the log from its
        // start, so it is only valid as the generation's first frame.
        if !state.log.is_empty() {
            return Err(DecodeError(
                "a sequence table after the first fact of the log".into(),
            ));
        }
        state.seqs = seqs;
    }
    Ok(facts)
}

/// Decodes a WAL frame body into facts, interning names through `intern`; counts 0.5.2
/// JSON frames and the imported causations dropped. A changefeed sequence table frame
/// (the first frame of a rewritten generation) yields no fact and lands in `sequences`.
pub(crate) fn decode_body_with(
    body: &[u8],
    intern: &mut dyn Interner,
    legacy_frames: &mut u64,
    dropped_causations: &mut u64,
    sequences: &mut Option<crate::changefeed::sequence::Sequences>,
) -> Result<Vec<Fact>, DecodeError> {
    if body.first() == Some(&b'{') {
        *legacy_frames += 1;
        return match decode_json(body, intern)? {
            JsonBody::Fact {
                fact,
                dropped_causation,
            } => {
                *dropped_causations += dropped_causation as u64;
                Ok(vec![fact])
            }
            JsonBody::SnapshotHeader { .. } => {
                Err(DecodeError("a snapshot header inside the WAL".into()))
            }
        };
    }
    let mut r = Reader::new(body);
    if r.read_array_len()? != 2 {
        return Err(DecodeError(
            "frame body is not a [tag, payload] pair".into(),
        ));
    }
    let facts = match r.read_int()? {
        TAG_FACT => vec![decode_record(&mut r, intern)?],
        wal::TAG_SEQUENCES => {
            *sequences = Some(crate::changefeed::sequence::Sequences::decode(&mut r)?);
            Vec::new()
        }
        TAG_BATCH => {
            let n = r.read_array_len()?;
            // The count is untrusted: a record takes well over 16 bytes.
            let mut v = Vec::with_capacity(n.min(body.len() / 16));
            for _ in 0..n {
                v.push(decode_record(&mut r, intern)?);
            }
            v
        }
        t => return Err(DecodeError(format!("unknown frame tag {t}"))),
    };
    if r.remaining() != 0 {
        return Err(DecodeError("trailing bytes in frame body".into()));
    }
    Ok(facts)
}

/// Appends a replayed fact, keeping transaction times strictly increasing.
pub(crate) fn push(state: &mut State, f: Fact, report: &mut OpenReport) {
    let f = match state.last_tx() {
        Some(last) if f.transaction_time() <= last => {
            report.retimed_facts += 1;
            import::with_tx(&f, last.next())
        }
        _ => f,
    };
    state.apply(f, None, None, &mut Vec::new());
}

/// Damage found while replaying: where, why, and whether it is corruption (valid frames
/// follow it, or a CRC-valid frame does not decode) rather than a torn tail.
#[derive(Debug)]
pub(crate) struct Damage {
    pub(crate) offset: u64,
    pub(crate) reason: String,
    pub(crate) corrupt: bool,
}

/// Rebuilds the state from the bytes of a WAL and (if the file exists) the snapshot
/// beside it — `Err` when the snapshot could not be read. Pure: touches no file, so
/// fuzzing can drive it directly. Fills in the report; the caller acts on the damage.
pub(crate) fn replay(
    buf: &[u8],
    snapshot_bytes: Option<Result<Vec<u8>, String>>,
    report: &mut OpenReport,
) -> Replayed {
    report.wal_bytes = buf.len() as u64;
    let mut state = State::default();
    // Where the last applied frame ends (handed to the commit engine).
    let mut position = WalPosition::default();

    // 1. Snapshot.
    let mut start = 0u64;
    let mut legacy_snapshot: Option<Vec<Fact>> = None;
    if let Some(bytes) = snapshot_bytes {
        let outcome = bytes.and_then(|b| snapshot::read(&b, &mut StateInterner(&mut state)));
        report.snapshot = match outcome {
            Ok(Loaded::Native {
                header,
                facts,
                sequences,
            }) => {
                let tail_ok = header.wal_offset == 0
                    || (header.wal_offset as usize <= buf.len()
                        && header.wal_offset >= 8
                        && buf[header.wal_offset as usize - 4..header.wal_offset as usize]
                            == header.wal_tail_crc.to_be_bytes());
                if tail_ok {
                    for f in facts {
                        push(&mut state, f, report);
                    }
                    state.seqs = sequences;
                    start = header.wal_offset;
                    position = WalPosition {
                        end: header.wal_offset,
                        tail_crc: header.wal_tail_crc,
                    };
                    SnapshotOutcome::Loaded {
                        facts: header.fact_count,
                        wal_offset: header.wal_offset,
                    }
                } else {
                    state = State::default();
                    SnapshotOutcome::Ignored {
                        reason: format!(
                            "it covers {} WAL bytes that do not match this WAL ({} bytes)",
                            header.wal_offset,
                            buf.len()
                        ),
                    }
                }
            }
            Ok(Loaded::Legacy {
                facts,
                dropped_causations,
            }) => {
                report.dropped_causations += dropped_causations as u64;
                let n = facts.len() as u64;
                legacy_snapshot = Some(facts);
                SnapshotOutcome::LoadedLegacy { facts: n }
            }
            Err(reason) => {
                state = State::default();
                SnapshotOutcome::Ignored { reason }
            }
        };
    }

    // 2. WAL after the snapshot.
    let (frames, end) = wal::scan(&buf[start as usize..], start);
    let mut replay: Vec<(wal::FrameRef, Vec<Fact>)> = Vec::with_capacity(frames.len());
    let mut damage: Option<Damage> = None;
    for f in frames {
        let body = &buf[f.body.0 + start as usize..f.body.1 + start as usize];
        match decode_body(body, &mut state, report) {
            Ok(facts) => replay.push((f, facts)),
            Err(e) => {
                damage = Some(Damage {
                    offset: f.offset,
                    reason: format!(
                        "frame at offset {} has a valid CRC but does not decode: {e}",
                        f.offset
                    ),
                    corrupt: true,
                });
                break;
            }
        }
        if legacy_snapshot.is_none() {
            // Apply as we go so interning sees earlier keys.
            let (fr, facts) = replay.pop().expect("just pushed");
            for fact in facts {
                push(&mut state, fact, report);
            }
            position = WalPosition {
                end: fr.end,
                tail_crc: fr.crc,
            };
            report.frames_replayed += 1;
        }
    }
    if damage.is_none() {
        damage = match end {
            ScanEnd::Clean => None,
            ScanEnd::TornTail { offset, bytes } => Some(Damage {
                offset,
                reason: format!("torn tail of {bytes} bytes"),
                corrupt: false,
            }),
            ScanEnd::Corrupt { offset, reason } => Some(Damage {
                offset,
                reason,
                corrupt: true,
            }),
        };
    }

    if let Some(snap_facts) = legacy_snapshot {
        // 0.5.2 semantics: snapshot facts plus WAL facts not in it, by timestamp.
        let mut seen = std::collections::HashSet::new();
        let mut all: Vec<Fact> = Vec::with_capacity(snap_facts.len());
        for f in snap_facts {
            seen.insert(f.id());
            all.push(f);
        }
        for (fr, facts) in replay {
            report.frames_replayed += 1;
            position = WalPosition {
                end: fr.end,
                tail_crc: fr.crc,
            };
            all.extend(facts.into_iter().filter(|f| seen.insert(f.id())));
        }
        all.sort_by_key(|f| f.transaction_time());
        state = State::default();
        for f in all {
            push(&mut state, f, report);
        }
    }
    report.facts_loaded = state.fact_count() as u64;
    Replayed {
        state,
        position,
        damage,
    }
}

/// What [`replay`] rebuilt: the state, where the WAL's last applied frame ends, and the
/// damage found after it.
pub(crate) struct Replayed {
    pub(crate) state: State,
    pub(crate) position: WalPosition,
    pub(crate) damage: Option<Damage>,
}

/// What [`load`] found: the state, the WAL position for the commit engine, the report.
pub(crate) struct Opened {
    pub(crate) state: State,
    pub(crate) position: WalPosition,
    pub(crate) report: OpenReport,
}

/// Loads the state of the ledger at `path` (whose WAL file is already open and locked as
/// `wal_file`, and appended to through `log`), handling damage per `opts`.
///
/// No byte is destroyed: a cut tail (torn or corrupt) is first copied to a side file,
/// which is fsynced together with its directory entry, and only then is the WAL cut
/// back. Trailing zeros (preallocated space, see [`super::wal`]) carry nothing and are
/// trimmed without a copy. `fs` performs the side-file and snapshot-tmp operations.
pub(crate) fn load(
    path: &Path,
    wal_file: &File,
    log: &dyn LogFile,
    fs: &dyn FileSystem,
    opts: &OpenOptions,
) -> Result<Opened> {
    let mut report = OpenReport {
        path: path.to_owned(),
        ..OpenReport::default()
    };
    // Read through the locked handle: opening and closing another descriptor of the WAL
    // would release this process's record lock (see `lock`).
    let buf = read_wal(path, wal_file)?;

    let tmp = snapshot::snapshot_tmp_path(path);
    if tmp.exists() {
        report.stale_snapshot_tmp = true;
        let _ = fs.remove_file(&tmp);
    }
    // A storage rewrite interrupted before its rename leaves its new generation aside.
    crate::retention::remove_stale_rewrite(fs, path);
    let snap_path = snapshot::snapshot_path(path);
    let snapshot_bytes = snap_path.exists().then(|| {
        std::fs::read(&snap_path).map_err(|e| format!("cannot read {}: {e}", snap_path.display()))
    });

    let Replayed {
        state,
        position,
        damage,
    } = replay(&buf, snapshot_bytes, &mut report);

    // 3. Damage.
    if let Some(Damage {
        offset,
        reason,
        corrupt,
    }) = damage
    {
        if corrupt && !opts.recover {
            return Err(Error::Corruption {
                path: path.to_owned(),
                offset,
                reason,
            });
        }
        let tail = &buf[offset as usize..];
        // Trailing zeros are preallocated (or never-written) space: nothing to keep.
        let kept = tail.len() - tail.iter().rev().take_while(|&&b| b == 0).count();
        let side = if corrupt || kept > 0 {
            let side = side_file(path, if corrupt { "corrupt" } else { "torn" }, offset);
            let bytes = if corrupt { tail } else { &tail[..kept] };
            write_new_file(fs, &side, bytes)
                .map_err(|e| Error::io(format!("writing {}", side.display()), e))?;
            let dir = parent_dir(&side);
            fs.sync_dir(dir)
                .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))?;
            Some(side)
        } else {
            None
        };
        let bytes = tail.len() as u64;
        match side {
            Some(side_file) if corrupt => {
                report.recovered = Some(Recovered {
                    offset,
                    bytes,
                    side_file,
                    reason,
                });
            }
            Some(side_file) => {
                report.torn_tail = Some(TornTail {
                    offset,
                    bytes,
                    side_file,
                });
            }
            None => report.zero_tail = bytes,
        }
        // Only now, with the bytes safe elsewhere, cut the WAL back.
        log.set_len(offset)
            .and_then(|_| log.sync_data())
            .map_err(|e| {
                Error::io(
                    format!("cutting {} back to {offset} bytes", path.display()),
                    e,
                )
            })?;
    }
    Ok(Opened {
        state,
        position,
        report,
    })
}

fn read_wal(path: &Path, mut file: &File) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut buf))
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(buf)
}

/// A free side-file name: `<wal>.<kind>-<offset>`, with `.1`, `.2`, ... appended if taken.
fn side_file(path: &Path, kind: &str, offset: u64) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{kind}-{offset}"));
    let mut p = PathBuf::from(&s);
    let mut n = 1;
    while p.exists() {
        p = PathBuf::from(format!("{}.{n}", s.to_string_lossy()));
        n += 1;
    }
    p
}

/// The earliest time the next commit may have.
pub(crate) fn clock_floor(state: &State) -> Timestamp {
    state.last_tx().unwrap_or(Timestamp::MIN)
}
