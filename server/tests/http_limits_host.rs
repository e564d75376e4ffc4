//! The HTTP listener's connection limit and header read timeout; HTTP started on a
//! running server; the host hook (ledger work handed to the embedding process's thread,
//! and ops the host answers).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{http, Framed};
use igniter_ledger::LedgerStore;
use igniter_ledger_server::server::{
    Host, HostJob, HostReply, NullSink, Server, ServerHandle, ServerOptions,
};
use serde_json::{json, Value as Json};

fn start(opts: ServerOptions) -> ServerHandle {
    Server::start(LedgerStore::memory(), opts, Arc::new(NullSink)).unwrap()
}

fn local() -> ServerOptions {
    ServerOptions::tcp("127.0.0.1:0").http("127.0.0.1:0")
}

/// True when the server closes `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + within;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // hyper may answer (408) before closing: read on to the end
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
        if Instant::now() > deadline {
            return false;
        }
    }
}

#[test]
fn a_client_that_does_not_finish_its_headers_is_closed() {
    let h = start(local().header_read_timeout(Duration::from_millis(300)));
    let addr = h.http_addr().unwrap();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)),
        "a client stuck in its headers must be closed"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    // A client that says nothing at all is closed too.
    let mut silent = TcpStream::connect(addr).unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)));
    // Well-behaved clients are still served.
    assert_eq!(http(addr, "GET", "/v1/health", &[], b"").0, 200);
    h.stop();
}

#[test]
fn http_connections_beyond_the_limit_wait_until_one_closes() {
    let h = start(local().max_http_connections(1));
    let addr = h.http_addr().unwrap();
    // The one slot: a connection that has not sent its request yet.
    let mut first = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(http(addr, "GET", "/v1/health", &[], b"").0);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(700)).is_err(),
        "a second connection must not be served while the first holds the only slot"
    );
    // The first finishes (a request, then close): the second is served.
    first
        .write_all(b"GET /v1/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    first.read_to_end(&mut out).unwrap();
    assert!(out.starts_with(b"HTTP/1.1 200"));
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 200);
    h.stop();
}

#[test]
fn http_can_start_on_a_running_server_and_stops_with_it() {
    let h = start(ServerOptions::tcp("127.0.0.1:0"));
    assert!(h.http_addr().is_none());
    let addr = h.serve_http("127.0.0.1:0").unwrap();
    assert_eq!(h.http_addr(), Some(addr));
    assert_eq!(http(addr, "GET", "/v1/health", &[], b"").0, 200);
    assert!(h.serve_http("127.0.0.1:0").is_err(), "one HTTP listener");
    h.stop();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

/// A host thread that counts the jobs it ran, needed only while `needed` is set.
struct TestHost {
    needed: AtomicBool,
    queue: Mutex<mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    ran: Arc<AtomicUsize>,
}

impl Host for TestHost {
    fn needed(&self) -> bool {
        self.needed.load(Ordering::SeqCst)
    }
    fn submit(&self, job: HostJob) -> bool {
        self.queue.lock().unwrap().send(job).is_ok()
    }
    fn answers(&self, op: &str) -> bool {
        op == "echo"
    }
    fn submit_op(&self, request: Json, reply: HostReply) -> bool {
        let ran = self.ran.clone();
        self.submit(Box::new(move || {
            ran.fetch_add(1, Ordering::SeqCst);
            reply(json!({"ok": true, "echo": request["say"].clone(), "on": std::thread::current().name()}));
        }))
    }
}

fn host_thread() -> (Arc<TestHost>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
    let ran = Arc::new(AtomicUsize::new(0));
    let host = Arc::new(TestHost {
        needed: AtomicBool::new(false),
        queue: Mutex::new(tx),
        ran: ran.clone(),
    });
    let t = std::thread::Builder::new()
        .name("test-host".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        })
        .unwrap();
    (host, t)
}

#[test]
fn the_host_runs_ledger_work_only_when_it_asks_and_answers_its_own_ops() {
    let (host, _t) = host_thread();
    let counting = Arc::new(AtomicUsize::new(0));
    // Count the jobs that reach the host thread: wrap submit through a second host.
    struct Counting(Arc<TestHost>, Arc<AtomicUsize>);
    impl Host for Counting {
        fn needed(&self) -> bool {
            self.0.needed()
        }
        fn submit(&self, job: HostJob) -> bool {
            let n = self.1.clone();
            self.0.submit(Box::new(move || {
                assert_eq!(std::thread::current().name(), Some("test-host"));
                n.fetch_add(1, Ordering::SeqCst);
                job();
            }))
        }
        fn answers(&self, op: &str) -> bool {
            self.0.answers(op)
        }
        fn submit_op(&self, request: Json, reply: HostReply) -> bool {
            self.0.submit_op(request, reply)
        }
    }
    let h = start(local().host(Arc::new(Counting(host.clone(), counting.clone()))));
    let mut c = Framed::connect(h.bind_address());
    let w = json!({"op": "ledger.write", "store": "s", "key": "k", "value": {"n": 1}});
    assert_eq!(c.rpc(w.clone())["ok"], true);
    assert_eq!(counting.load(Ordering::SeqCst), 0, "not needed: no job");
    host.needed.store(true, Ordering::SeqCst);
    assert_eq!(c.rpc(w.clone())["ok"], true);
    let env = json!({"protocol": "igniter_store", "schema_version": 1, "request_id": "r",
                     "op": "read", "packet": {"store": "s", "key": "k"}});
    assert_eq!(c.rpc(env)["status"], "ok");
    let (status, _, _) = http(
        h.http_addr().unwrap(),
        "POST",
        "/v1/dispatch",
        &[("Content-Type", "application/json")],
        json!({"protocol": "igniter_store", "schema_version": 1, "request_id": "r",
               "op": "read", "packet": {"store": "s", "key": "k"}})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(status, 200);
    assert_eq!(
        counting.load(Ordering::SeqCst),
        3,
        "write, envelope, HTTP dispatch"
    );
    assert_eq!(h.ledger().fact_count(), 2);
    // An op only the host knows.
    let a = c.rpc(json!({"op": "echo", "say": "hi"}));
    assert_eq!(a, json!({"ok": true, "echo": "hi", "on": "test-host"}));
    h.stop();
}

#[test]
fn a_host_that_is_gone_gets_an_error_answer_not_a_hang() {
    struct Gone;
    impl Host for Gone {
        fn needed(&self) -> bool {
            true
        }
        fn submit(&self, job: HostJob) -> bool {
            drop(job);
            false
        }
    }
    let h = start(local().host(Arc::new(Gone)));
    let mut c = Framed::connect(h.bind_address());
    let a = c.rpc(json!({"op": "ledger.count"}));
    assert_eq!(a["error_code"], "internal_error");
    assert_eq!(h.ledger().fact_count(), 0);
    h.stop();
}

#[test]
fn oversized_headers_get_431_and_an_oversized_body_413_then_a_close() {
    let h = start(local().max_body_bytes(1024));
    let addr = h.http_addr().unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = String::from("GET /v1/health HTTP/1.1\r\nHost: x\r\n");
    for _ in 0..40 {
        req.push_str(&format!("X-Pad: {}\r\n", "a".repeat(1000)));
    }
    let _ = s.write_all(req.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        out.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /v1/dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap(); // ends: the server closed the connection
    assert!(
        out.starts_with(b"HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    h.stop();
}

#[test]
fn the_bridge_hands_requests_to_another_thread_and_streams_its_answer() {
    use igniter_ledger_server::server::bridge::{Bridge, BridgeOptions};
    let b = Arc::new(
        Bridge::start(
            "127.0.0.1:0",
            BridgeOptions {
                max_body_bytes: 64,
                ..BridgeOptions::default()
            },
        )
        .unwrap(),
    );
    let addr = b.local_addr();
    let worker = {
        let b = b.clone();
        std::thread::spawn(move || {
            while !b.stopped() {
                if let Some(req) = b.next(Duration::from_millis(100)) {
                    let mut r = req.responder;
                    r.start(201, vec![("x-path".into(), req.path.clone())]);
                    for part in [req.method.as_bytes(), b" ", &req.body[..]] {
                        r.write(part.to_vec());
                    }
                }
            }
        })
    };
    let (status, headers, body) = http(addr, "POST", "/echo", &[], b"hello");
    assert_eq!(status, 201);
    assert!(headers.iter().any(|(k, v)| k == "x-path" && v == "/echo"));
    assert_eq!(body, b"POST hello");
    // Over the body limit: answered by the bridge, the handler never sees it.
    let (status, _, _) = http(addr, "POST", "/echo", &[], &[b'x'; 100]);
    assert_eq!(status, 413);
    b.stop(Duration::from_millis(100));
    worker.join().unwrap();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}
