//! `igniter-ledger verify PATH`: a front end over [`igniter_ledger::verify_file_with`].
//! It reads the WAL and the snapshot beside it without opening the ledger (no lock, no
//! repair) and checks every frame (length, CRC32), every record (decodes), every id
//! (unique), every transaction time (increasing), every causation link, the retention
//! receipts and the snapshot. A progress bar shows on a terminal for long files.

use std::io::IsTerminal as _;
use std::path::Path;

use igniter_ledger::{SnapshotCheck, VerifyProgress, VerifyReport};
use indicatif::{ProgressBar, ProgressStyle};

use super::path::LedgerPath;

/// Files over this size get a progress bar (on a terminal).
const BIG: u64 = 8 << 20;

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  $ igniter-ledger verify ledger.wal\n  ok: 1024 frames, 1024 facts, 12 causation links (81920 bytes)"
)]
pub struct Args {
    #[command(flatten)]
    path: LedgerPath,
}

/// A progress bar over `total` bytes when they are many and stderr is a terminal;
/// hidden otherwise.
fn bar(total: u64) -> ProgressBar {
    if total <= BIG || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(total);
    let style =
        ProgressStyle::with_template("verify [{bar:30}] {bytes}/{total_bytes}, {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    b.set_style(style);
    b
}

/// Verifies `path`, drawing the progress bar from the verifier's callback.
fn verify(path: &Path) -> Result<VerifyReport, String> {
    let mut pb: Option<ProgressBar> = None;
    let report = igniter_ledger::verify_file_with(path, &mut |p: &VerifyProgress| {
        let b = pb.get_or_insert_with(|| bar(p.bytes_total));
        b.set_position(p.bytes_done);
        b.set_message(format!("{} facts", p.facts));
    });
    if let Some(b) = pb {
        b.finish_and_clear();
    }
    report.map_err(|e| format!("cannot verify {}: {e}", path.display()))
}

/// Findings that are not problems (opening repairs or ignores them).
fn notes(r: &VerifyReport) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(t) = r.torn_tail {
        out.push(format!(
            "a torn final frame of {} bytes at byte {} (an interrupted write; open cuts it off)",
            t.bytes, t.offset
        ));
    }
    match &r.snapshot {
        SnapshotCheck::Stale { reason } => {
            out.push(format!("the snapshot is stale (open ignores it): {reason}"))
        }
        SnapshotCheck::Unreadable { reason } => out.push(format!(
            "the snapshot is unreadable (open ignores it): {reason}"
        )),
        _ => {}
    }
    if r.causations_to_removed > 0 {
        out.push(format!(
            "{} causation link(s) name facts removed by compaction or prune",
            r.causations_to_removed
        ));
    }
    out
}

/// The one-line summary of a clean report.
fn summary(r: &VerifyReport) -> String {
    let mut extra = String::new();
    if r.zero_tail > 0 {
        extra.push_str(&format!(", {} preallocated", r.zero_tail));
    }
    let mut also = Vec::new();
    if r.tombstones > 0 {
        also.push(format!("{} erased", r.tombstones));
    }
    if r.receipts > 0 {
        also.push(format!("{} retention receipts", r.receipts));
    }
    if r.legacy_frames > 0 {
        also.push(format!("{} 0.5.2 frames", r.legacy_frames));
    }
    match r.snapshot {
        SnapshotCheck::Consistent { facts, .. } => {
            also.push(format!("snapshot of {facts} facts matches"))
        }
        SnapshotCheck::Legacy { facts } => also.push(format!("0.5.2 snapshot of {facts} facts")),
        _ => {}
    }
    let also = if also.is_empty() {
        String::new()
    } else {
        format!("; {}", also.join(", "))
    };
    format!(
        "ok: {} frames, {} facts, {} causation links ({} bytes{extra}){also}",
        r.frames_checked, r.facts_checked, r.causation_links, r.bytes
    )
}

/// How many problems the report counts (listed ones are capped; counts are not).
fn problem_count(r: &VerifyReport) -> u64 {
    r.corrupt.len() as u64
        + r.hash_mismatch_count
        + r.broken_causation_count
        + r.duplicate_ids.len() as u64
        + r.out_of_order
}

pub(super) fn run(a: Args) -> Result<(), String> {
    let path = a.path.existing()?;
    let report = verify(&path)?;
    for n in notes(&report) {
        println!("note: {n}");
    }
    if report.is_ok() {
        println!("{}", summary(&report));
        return Ok(());
    }
    let problems = report.problems();
    for p in &problems {
        println!("problem: {p}");
    }
    Err(format!(
        "{} problem(s) in {}: {}",
        problem_count(&report),
        path.display(),
        problems.first().map_or("see above", String::as_str)
    ))
}
