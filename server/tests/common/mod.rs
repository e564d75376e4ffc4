//! Helpers shared by the server tests: a framed client and a raw HTTP/1.1 client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use igniter_ledger_server::server::frame;
use serde_json::Value as Json;

/// A framed connection.
pub struct Framed(pub TcpStream);

impl Framed {
    pub fn connect(addr: &str) -> Framed {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Framed(s)
    }
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).unwrap();
    }
    pub fn send(&mut self, v: &Json) {
        self.send_raw(&frame::encode(v.to_string().as_bytes()));
    }
    /// The next frame as JSON; None at end of stream.
    pub fn recv(&mut self) -> Option<Json> {
        let mut head = [0u8; 4];
        if self.0.read_exact(&mut head).is_err() {
            return None;
        }
        let len = u32::from_be_bytes(head) as usize;
        let mut rest = vec![0u8; len + 4];
        self.0.read_exact(&mut rest).ok()?;
        let mut whole = head.to_vec();
        whole.extend_from_slice(&rest);
        let (body, _) = frame::decode(&whole, usize::MAX).unwrap().unwrap();
        Some(serde_json::from_slice(body).unwrap())
    }
    pub fn rpc(&mut self, v: Json) -> Json {
        self.send(&v);
        self.recv().expect("an answer")
    }
    /// True when the server closed the connection (EOF).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.0.read(&mut b), Ok(0) | Err(_))
    }
}

/// One HTTP/1.1 request; (status, headers lowercased, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse_response(&out)
}

pub fn parse_response(out: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = out[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let n =
            usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < nl + 2 + n {
            out.extend_from_slice(&b[(nl + 2).min(b.len())..(nl + 2 + n).min(b.len())]);
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[(nl + 4 + n).min(b.len())..];
    }
    out
}

pub fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}
