//! The status page in headless Chromium (Debian package `chromium`): it loads, shows
//! the stores and counts, and shows a fact written after it opened (the live tail over
//! SSE). A screenshot is written to `target/status-page.png` and its path printed.
//! Skips, printing why, when no Chromium is installed.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use igniter_ledger::{LedgerStore, Value, Write};
use igniter_ledger_server::server::{EventSink, Server, ServerEvent, ServerOptions};

/// Counts SSE streams opened, so the test writes only once the page is following.
#[derive(Default)]
struct SseOpened(std::sync::Mutex<usize>, std::sync::Condvar);

impl EventSink for SseOpened {
    fn event(&self, e: &ServerEvent) {
        if e.name == "sse_open" {
            *self.0.lock().unwrap() += 1;
            self.1.notify_all();
        }
    }
}

impl SseOpened {
    fn wait_for(&self, n: usize) -> bool {
        let g = self.0.lock().unwrap();
        let (g, _) = self
            .1
            .wait_timeout_while(g, Duration::from_secs(30), |c| *c < n)
            .unwrap();
        *g >= n
    }
}

/// Writes `key` once the `n`th SSE stream is open.
fn write_when_following(
    sink: Arc<SseOpened>,
    ledger: LedgerStore,
    n: usize,
    key: &'static str,
) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let ok = sink.wait_for(n);
        std::thread::sleep(Duration::from_millis(200));
        ledger
            .write(Write::new("tasks", key, Value::Int(3)))
            .unwrap();
        ok
    })
}

fn chromium() -> Option<String> {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return Some(c.to_owned());
        }
    }
    None
}

fn headless(
    browser: &str,
    profile: &std::path::Path,
    extra: &[&str],
    url: &str,
) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("running the browser")
}

#[test]
fn status_page_shows_a_fact_written_after_it_opened() {
    let Some(browser) = chromium() else {
        println!("SKIPPED: no Chromium found (install the Debian package `chromium`)");
        return;
    };
    let ledger = LedgerStore::memory();
    ledger
        .write(Write::new("tasks", "before-1", Value::Int(1)))
        .unwrap();
    ledger
        .write(Write::new("notes", "before-2", Value::Int(2)))
        .unwrap();
    let sink = Arc::new(SseOpened::default());
    let h = Server::start(
        ledger.clone(),
        ServerOptions::tcp("127.0.0.1:0").http("127.0.0.1:0"),
        sink.clone(),
    )
    .unwrap();
    // The page stops its live tail after one fact, so the browser's network goes idle and
    // --virtual-time-budget can end; the fact is written once the page follows the feed.
    let url = format!("http://{}/?max_live=1", h.http_addr().unwrap());
    let profile = tempfile::tempdir().unwrap();
    let writer = write_when_following(sink.clone(), ledger.clone(), 1, "written-after-open");
    let out = headless(
        &browser,
        profile.path(),
        &["--virtual-time-budget=3000", "--dump-dom"],
        &url,
    );
    assert!(
        writer.join().unwrap(),
        "the page never opened the SSE stream"
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("tasks/written-after-open"),
        "the live tail does not show the new fact:\n{dom}"
    );
    assert!(
        dom.contains("id=\"fact-count\">3<"),
        "the fact count did not reach 3:\n{dom}"
    );
    assert!(dom.contains("notes") && dom.contains("durability"), "{dom}");
    // The screenshot (the page after the live fact), part of the test's output.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let writer = write_when_following(sink.clone(), ledger.clone(), 2, "second-live-fact");
    let out = headless(
        &browser,
        profile.path(),
        &[
            "--virtual-time-budget=3000",
            "--window-size=1000,700",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    assert!(
        writer.join().unwrap(),
        "the page never opened the SSE stream"
    );
    assert!(
        out.status.success(),
        "screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    println!(
        "status page screenshot: {} ({} bytes)",
        shot.display(),
        png.len()
    );
    h.stop();
}
