//! What the syncing side keeps beside its ledger, in a state directory (by default
//! `<ledger file>.sync/`):
//!
//! | file | holds |
//! |---|---|
//! | `node` | this sync node's id (a UUID made on first start): the `origin_ledger` of the rows it pushes |
//! | `pull-<hub>-<subscription>.json` | a durable pull cursor: the last hub sequence taken in, per hub and subscription |
//! | `provenance.jsonl` | one line per pulled fact: its id, origin, origin transaction time and hub sequence |
//!
//! Nothing is written into the ledger but the pulled facts themselves: a bookkeeping fact
//! would take a local transaction time and move the pulled facts' times after it.
//! Files are replaced atomically (written aside, fsynced, renamed, directory fsynced).
//! A ledger without a state directory (in memory) keeps this state in memory.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};

use std::sync::Mutex;

use uuid::Uuid;

use super::SyncError;

/// Where a pulled fact came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// The pulled fact.
    pub fact: Uuid,
    /// The sync node that pushed it to the hub.
    pub origin: Uuid,
    /// Its transaction time at the origin (µs since the epoch).
    pub origin_transaction_us: i64,
    /// Its position in the hub.
    pub hub_seq: i64,
    /// The hub it was pulled from.
    pub hub: Uuid,
}

/// The sync state of one ledger.
#[derive(Debug)]
pub struct StateDir {
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<String, i64>>,
    node: Uuid,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SyncError + '_ {
    move |e| SyncError::State(format!("{}: {e}", path.display()))
}

impl StateDir {
    /// The state in `dir` (created if missing), or in memory with None.
    pub fn open(dir: Option<PathBuf>) -> Result<Self, SyncError> {
        let node = match &dir {
            None => Uuid::new_v4(),
            Some(d) => {
                fs::create_dir_all(d).map_err(io(d))?;
                let p = d.join("node");
                match fs::read_to_string(&p) {
                    Ok(s) => Uuid::try_parse(s.trim()).map_err(|e| {
                        SyncError::State(format!("{}: not a UUID: {e}", p.display()))
                    })?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let id = Uuid::new_v4();
                        replace(d, "node", id.to_string().as_bytes())?;
                        id
                    }
                    Err(e) => return Err(io(&p)(e)),
                }
            }
        };
        Ok(StateDir {
            dir,
            memory: Mutex::new(HashMap::new()),
            node,
        })
    }

    /// The default state directory of a ledger file: `<file>.sync`.
    pub fn beside(ledger_file: &Path) -> PathBuf {
        let mut s = ledger_file.as_os_str().to_owned();
        s.push(".sync");
        PathBuf::from(s)
    }

    /// This node's id.
    pub fn node(&self) -> Uuid {
        self.node
    }

    /// The directory, if on disk.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The pull cursor stored under `name` (0 when none).
    pub fn pull_cursor(&self, name: &str) -> Result<i64, SyncError> {
        let Some(d) = &self.dir else {
            return Ok(self.lock().get(name).copied().unwrap_or(0));
        };
        let p = d.join(name);
        match fs::read(&p) {
            Ok(b) => {
                let j: serde_json::Value = serde_json::from_slice(&b)
                    .map_err(|e| SyncError::State(format!("{}: {e}", p.display())))?;
                j.get("hub_seq")
                    .and_then(|v| v.as_i64())
                    .ok_or_else(|| SyncError::State(format!("{}: no hub_seq", p.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// Stores the pull cursor `name` durably, with a description of its subscription.
    pub fn set_pull_cursor(
        &self,
        name: &str,
        hub_seq: i64,
        subscription: &serde_json::Value,
    ) -> Result<(), SyncError> {
        let Some(d) = &self.dir else {
            self.lock().insert(name.to_owned(), hub_seq);
            return Ok(());
        };
        let body = serde_json::json!({ "hub_seq": hub_seq, "subscription": subscription });
        replace(d, name, body.to_string().as_bytes())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends provenance records and fsyncs them (before the facts are committed, so
    /// every pulled fact has one; a crash in between leaves a record whose fact is pulled
    /// again later, which [`provenance`](Self::provenance) reads as one).
    pub fn record(&self, records: &[Provenance]) -> Result<(), SyncError> {
        let Some(d) = &self.dir else {
            return Ok(());
        };
        let p = d.join("provenance.jsonl");
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(io(&p))?;
        let mut buf = String::new();
        for r in records {
            buf.push_str(
                &serde_json::json!({
                    "fact": r.fact.to_string(),
                    "origin": r.origin.to_string(),
                    "origin_transaction_us": r.origin_transaction_us,
                    "hub_seq": r.hub_seq,
                    "hub": r.hub.to_string(),
                })
                .to_string(),
            );
            buf.push('\n');
        }
        f.write_all(buf.as_bytes()).map_err(io(&p))?;
        f.sync_data().map_err(io(&p))
    }

    /// Every provenance record, by fact id (the last record of a fact wins). Empty for a
    /// state kept in memory.
    pub fn provenance(&self) -> Result<HashMap<Uuid, Provenance>, SyncError> {
        let mut out = HashMap::new();
        let Some(d) = &self.dir else {
            return Ok(out);
        };
        let p = d.join("provenance.jsonl");
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&p)(e)),
        };
        for line in BufReader::new(f).lines() {
            let line = line.map_err(io(&p))?;
            // A torn last line (crash while appending) is skipped: its batch was not
            // committed, and is pulled (and recorded) again.
            let Ok(j) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let uuid = |k: &str| {
                j.get(k)
                    .and_then(|v| v.as_str())
                    .and_then(|s| Uuid::try_parse(s).ok())
            };
            let int = |k: &str| j.get(k).and_then(|v| v.as_i64());
            if let (Some(fact), Some(origin), Some(t), Some(seq), Some(hub)) = (
                uuid("fact"),
                uuid("origin"),
                int("origin_transaction_us"),
                int("hub_seq"),
                uuid("hub"),
            ) {
                out.insert(
                    fact,
                    Provenance {
                        fact,
                        origin,
                        origin_transaction_us: t,
                        hub_seq: seq,
                        hub,
                    },
                );
            }
        }
        Ok(out)
    }
}

/// Replaces `dir/name` atomically and durably.
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SyncError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, &dst).map_err(io(&dst))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_and_cursors_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(Some(d.path().join("x.sync"))).unwrap();
        let node = s.node();
        assert_eq!(s.pull_cursor("pull-a").unwrap(), 0);
        s.set_pull_cursor("pull-a", 42, &serde_json::json!({}))
            .unwrap();
        let rec = Provenance {
            fact: Uuid::new_v4(),
            origin: Uuid::new_v4(),
            origin_transaction_us: 7,
            hub_seq: 3,
            hub: Uuid::new_v4(),
        };
        s.record(&[rec]).unwrap();
        drop(s);
        let s = StateDir::open(Some(d.path().join("x.sync"))).unwrap();
        assert_eq!(s.node(), node);
        assert_eq!(s.pull_cursor("pull-a").unwrap(), 42);
        assert_eq!(s.provenance().unwrap().get(&rec.fact), Some(&rec));
        let m = StateDir::open(None).unwrap();
        m.set_pull_cursor("p", 5, &serde_json::json!({})).unwrap();
        assert_eq!(m.pull_cursor("p").unwrap(), 5);
        assert_ne!(m.node(), node);
    }
}
