//! Loopback benchmark of the ledger server against the embedded store, side by side in
//! one run: writes/s and reads/s with 1 and 8 client connections (native Rust client,
//! `RemoteStore`), p50/p99 latency, and SSE fan-out to 100 subscribers.
//!
//! `cargo bench -p igniter_ledger_server --bench loopback [-- N]` (N writes per
//! connection, default 5000). Both sides use a file ledger with `flush` durability (no
//! fsync: the point is the server's overhead, not the disk's). The temporary directory
//! is removed at the end.

use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use igniter_ledger::{Durability, LedgerStore, OpenOptions, Read as LRead, Value, Write};
use igniter_ledger_server::client::RemoteStore;
use igniter_ledger_server::server::{NullSink, Server, ServerOptions};

fn pct(lat: &mut [Duration], p: f64) -> f64 {
    lat.sort_unstable();
    if lat.is_empty() {
        return 0.0;
    }
    lat[((lat.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6
}

fn row(what: &str, conns: usize, ops: usize, took: Duration, lat: &mut [Duration]) {
    println!(
        "| {what:<28} | {conns:>5} | {ops:>7} | {:>10.0} | {:>8.1} | {:>8.1} |",
        ops as f64 / took.as_secs_f64(),
        pct(lat, 0.50),
        pct(lat, 0.99)
    );
}

fn value(i: usize) -> Value {
    Value::Map(vec![
        (
            igniter_ledger::MapKey::sym("title"),
            Value::Str(format!("task number {i}")),
        ),
        (
            igniter_ledger::MapKey::sym("status"),
            Value::Str("open".into()),
        ),
        (igniter_ledger::MapKey::sym("n"), Value::Int(i as i64)),
    ])
}

fn embedded(dir: &std::path::Path, n: usize, conns: usize) {
    let l = LedgerStore::open_with(
        dir.join(format!("embedded-{conns}.wal")),
        OpenOptions::new().durability(Durability::Flush),
    )
    .unwrap();
    for (what, writing) in [("embedded write", true), ("embedded read", false)] {
        let barrier = Arc::new(Barrier::new(conns + 1));
        let threads: Vec<_> = (0..conns)
            .map(|c| {
                let l = l.clone();
                let b = barrier.clone();
                std::thread::spawn(move || {
                    let mut lat = Vec::with_capacity(n);
                    b.wait();
                    for i in 0..n {
                        let t = Instant::now();
                        if writing {
                            l.write(Write::new("tasks", format!("c{c}-{i}"), value(i)))
                                .unwrap();
                        } else {
                            l.read(LRead::new("tasks", format!("c{c}-{}", (i * 7919) % n)))
                                .unwrap()
                                .unwrap();
                        }
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        let mut lat: Vec<Duration> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        row(what, conns, n * conns, t.elapsed(), &mut lat);
    }
    l.close().unwrap();
}

fn served(dir: &std::path::Path, n: usize, conns: usize) {
    let l = LedgerStore::open_with(
        dir.join(format!("served-{conns}.wal")),
        OpenOptions::new().durability(Durability::Flush),
    )
    .unwrap();
    let opts = ServerOptions::tcp("127.0.0.1:0");
    let opts = ServerOptions {
        worker_threads: 2,
        ..opts
    };
    let h = Server::start(l.clone(), opts, Arc::new(NullSink)).unwrap();
    let url = format!("tcp://{}", h.bind_address());
    for (what, writing) in [
        ("server write (RemoteStore)", true),
        ("server read (RemoteStore)", false),
    ] {
        let barrier = Arc::new(Barrier::new(conns + 1));
        let threads: Vec<_> = (0..conns)
            .map(|c| {
                let b = barrier.clone();
                let url = url.clone();
                std::thread::spawn(move || {
                    let s = RemoteStore::connect(&url).unwrap();
                    let mut lat = Vec::with_capacity(n);
                    b.wait();
                    for i in 0..n {
                        let t = Instant::now();
                        if writing {
                            s.write("tasks", &format!("c{c}-{i}"), value(i)).unwrap();
                        } else {
                            s.read("tasks", &format!("c{c}-{}", (i * 7919) % n))
                                .unwrap()
                                .unwrap();
                        }
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        let mut lat: Vec<Duration> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        row(what, conns, n * conns, t.elapsed(), &mut lat);
    }
    h.stop();
    l.close().unwrap();
}

fn sse_fanout(dir: &std::path::Path, subscribers: usize, facts: usize) {
    let l = LedgerStore::open_with(
        dir.join("sse.wal"),
        OpenOptions::new().durability(Durability::Flush),
    )
    .unwrap();
    let h = Server::start(
        l.clone(),
        ServerOptions::tcp("127.0.0.1:0").http("127.0.0.1:0"),
        Arc::new(NullSink),
    )
    .unwrap();
    let web = h.http_addr().unwrap();
    let ready = Arc::new(Barrier::new(subscribers + 1));
    let readers: Vec<_> = (0..subscribers)
        .map(|_| {
            let ready = ready.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(web).unwrap();
                s.write_all(
                    b"GET /v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
                )
                .unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = 0usize;
                let mut tail = Vec::new();
                let body_at = loop {
                    let k = s.read(&mut buf).unwrap();
                    tail.extend_from_slice(&buf[..k]);
                    if let Some(p) = tail.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                tail.drain(..body_at);
                ready.wait();
                // Count events; keep at most a partial marker between reads.
                let mut carry = tail;
                loop {
                    let (n, end) = count(&carry, b"event: fact_committed");
                    seen += n;
                    let keep = end.max(carry.len().saturating_sub(20));
                    carry.drain(..keep);
                    if seen >= facts {
                        break;
                    }
                    let k = s.read(&mut buf).unwrap();
                    carry.extend_from_slice(&buf[..k]);
                }
                Instant::now()
            })
        })
        .collect();
    ready.wait();
    let t = Instant::now();
    for i in 0..facts {
        l.write(Write::new("tasks", format!("k{i}"), value(i)))
            .unwrap();
    }
    let wrote = t.elapsed();
    let last = readers
        .into_iter()
        .map(|r| r.join().unwrap())
        .max()
        .unwrap();
    let all = last - t;
    println!(
        "| SSE fan-out                  | {subscribers:>5} | {facts:>7} | {:>10.0} | write {:.1} ms | all delivered {:.1} ms |",
        (subscribers * facts) as f64 / all.as_secs_f64(),
        wrote.as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3
    );
    h.stop();
    l.close().unwrap();
}

/// Occurrences of `needle` in `hay`, and where the last one ends (0: none).
fn count(hay: &[u8], needle: &[u8]) -> (usize, usize) {
    let mut n = 0;
    let mut end = 0;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if &hay[i..i + needle.len()] == needle {
            n += 1;
            i += needle.len();
            end = i;
        } else {
            i += 1;
        }
    }
    (n, end)
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5000);
    let dir = tempfile::tempdir().unwrap();
    println!(
        "loopback, file ledgers with flush durability, {n} ops per connection; {} cores",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    println!(
        "| what                         | conns |     ops |      ops/s |  p50 µs  |  p99 µs  |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for conns in [1, 8] {
        embedded(dir.path(), n, conns);
        served(dir.path(), n, conns);
    }
    sse_fanout(dir.path(), 100, 1000);
    drop(dir);
}
