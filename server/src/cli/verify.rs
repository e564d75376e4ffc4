//! `igniter-ledger verify PATH`: every frame (length and CRC32), every value (decodes,
//! and its hash matches a fresh canonical encoding), every id (unique), every
//! transaction time (strictly increasing) and every causation link (names an earlier
//! fact). A progress bar shows on a terminal for long files.

use std::collections::HashMap;
use std::io::Read;

use igniter_ledger::{Fact, Write};
use indicatif::{ProgressBar, ProgressStyle};

use super::path::{close, LedgerPath};

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  $ igniter-ledger verify ledger.wal\n  ok: 1024 frames, 1024 facts, 12 causation links (81920 bytes)"
)]
pub struct Args {
    #[command(flatten)]
    path: LedgerPath,
}

/// A progress bar on a terminal for inputs over 8 MiB (or many facts); hidden otherwise.
fn bar(len: u64, what: &str, big: bool) -> ProgressBar {
    if !big {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    b.set_style(style);
    b.set_message(what.to_owned());
    b
}

/// What the frame scan found.
pub(crate) struct Scan {
    pub frames: u64,
    pub bytes: u64,
    pub torn_tail: Option<(u64, u64)>,
    pub zero_tail: u64,
}

/// Scans the frames of a WAL file; Err names the first damage that is not at the tail.
pub(crate) fn scan_frames(path: &std::path::Path) -> Result<Scan, String> {
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    let pb = bar(size, "frames", size > 8 << 20);
    let mut r = std::io::BufReader::with_capacity(1 << 20, &mut f);
    let mut at = 0u64;
    let mut frames = 0u64;
    let mut body = Vec::new();
    loop {
        let mut head = [0u8; 4];
        let got = read_full(&mut r, &mut head).map_err(|e| e.to_string())?;
        if got == 0 {
            break;
        }
        if got < 4 {
            pb.finish_and_clear();
            return Ok(Scan {
                frames,
                bytes: size,
                torn_tail: Some((at, size - at)),
                zero_tail: 0,
            });
        }
        let len = u32::from_be_bytes(head) as u64;
        if len == 0 && head == [0; 4] {
            // Preallocated zeros after the last frame are not damage; zeros followed by
            // anything else are.
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).map_err(|e| e.to_string())?;
            if rest.iter().all(|b| *b == 0) {
                pb.finish_and_clear();
                return Ok(Scan {
                    frames,
                    bytes: size,
                    torn_tail: None,
                    zero_tail: size - at,
                });
            }
            pb.finish_and_clear();
            return Err(format!(
                "frame {} at byte {at}: zero bytes followed by data (corruption)",
                frames + 1
            ));
        }
        if len > igniter_ledger::limits::MAX_BODY as u64 || at + 8 + len > size {
            pb.finish_and_clear();
            if at + 8 + len > size {
                return Ok(Scan {
                    frames,
                    bytes: size,
                    torn_tail: Some((at, size - at)),
                    zero_tail: 0,
                });
            }
            return Err(format!(
                "frame {} at byte {at}: length {len} is over the limit",
                frames + 1
            ));
        }
        body.resize(len as usize + 4, 0);
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
        let crc = u32::from_be_bytes([
            body[len as usize],
            body[len as usize + 1],
            body[len as usize + 2],
            body[len as usize + 3],
        ]);
        if crc32fast::hash(&body[..len as usize]) != crc {
            pb.finish_and_clear();
            if at + 8 + len == size {
                return Ok(Scan {
                    frames,
                    bytes: size,
                    torn_tail: Some((at, size - at)),
                    zero_tail: 0,
                });
            }
            return Err(format!(
                "frame {} at byte {at}: CRC32 mismatch (corruption; valid data follows)",
                frames + 1
            ));
        }
        frames += 1;
        at += 8 + len;
        pb.set_position(at);
    }
    pb.finish_and_clear();
    Ok(Scan {
        frames,
        bytes: size,
        torn_tail: None,
        zero_tail: 0,
    })
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = r.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// Checks the facts of an open ledger; the problems found.
pub(crate) fn check_facts(facts: &[Fact]) -> (Vec<String>, u64) {
    let mut problems = Vec::new();
    let mut seen: HashMap<uuid::Uuid, (usize, igniter_ledger::Timestamp)> =
        HashMap::with_capacity(facts.len());
    let pb = bar(facts.len() as u64, "facts", facts.len() > 200_000);
    let mut links = 0u64;
    let mut last_tx = None;
    for (i, f) in facts.iter().enumerate() {
        let n = i + 1;
        let value = f.value();
        match Fact::build(Write::new(f.store(), f.key(), value)) {
            Ok(fresh) if fresh.value_hash() == f.value_hash() => {}
            Ok(_) => problems.push(format!(
                "fact {n} ({}): value hash does not match its value",
                f.id()
            )),
            Err(e) => problems.push(format!(
                "fact {n} ({}): value does not re-encode: {e}",
                f.id()
            )),
        }
        if let Some(prev) = last_tx {
            if f.transaction_time() <= prev {
                problems.push(format!(
                    "fact {n} ({}): transaction time {} is not after the previous fact's",
                    f.id(),
                    f.transaction_time()
                ));
            }
        }
        last_tx = Some(f.transaction_time());
        if let Some(c) = f.causation() {
            links += 1;
            match seen.get(&c) {
                Some(_) => {}
                None => problems.push(format!(
                    "fact {n} ({}): causation {c} names no earlier fact",
                    f.id()
                )),
            }
        }
        if seen.insert(f.id(), (n, f.transaction_time())).is_some() {
            problems.push(format!("fact {n}: id {} appears twice", f.id()));
        }
        if n % 4096 == 0 {
            pb.set_position(n as u64);
        }
    }
    pb.finish_and_clear();
    (problems, links)
}

pub(super) fn run(a: Args) -> Result<(), String> {
    let path = a.path.existing()?;
    let scan = scan_frames(&path)?;
    let (p, l) = a.path.open()?;
    let facts = l.fact_log_all(None, None);
    let (problems, links) = check_facts(&facts);
    close(&p, l)?;
    for x in &problems {
        println!("problem: {x}");
    }
    if let Some((at, n)) = scan.torn_tail {
        println!("note: a torn final frame of {n} bytes at byte {at} (an interrupted write; open cuts it off)");
    }
    if !problems.is_empty() {
        return Err(format!(
            "{} problem(s) in {}",
            problems.len(),
            path.display()
        ));
    }
    println!(
        "ok: {} frames, {} facts, {} causation links ({} bytes{})",
        scan.frames,
        facts.len(),
        links,
        scan.bytes,
        if scan.zero_tail > 0 {
            format!(", {} preallocated", scan.zero_tail)
        } else {
            String::new()
        }
    );
    Ok(())
}
