//! `igniter-ledger tail TARGET`: the last facts of a ledger file or of a server; with
//! `--follow` (a server), every new fact as it commits (over the changefeed cursor).

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::path::close;
use crate::client::RemoteStore;
use crate::server::legacy::fact_json;

/// Arguments of `tail`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  igniter-ledger tail ledger.wal -n 5\n  igniter-ledger tail tcp://127.0.0.1:7400 --follow --store tasks"
)]
pub struct Args {
    /// A ledger file, or a server address (tcp://host:port, unix:///path).
    #[arg(value_name = "PATH|ADDRESS")]
    target: Option<String>,
    /// Same as the positional argument.
    #[arg(long = "path", value_name = "PATH")]
    path: Option<String>,
    /// How many facts to print first.
    #[arg(short = 'n', long, default_value_t = 10)]
    lines: u64,
    /// Keep printing new facts (needs a server address: a served file is locked).
    #[arg(short, long)]
    follow: bool,
    /// Only the facts of this store.
    #[arg(long)]
    store: Option<String>,
    /// The server's shared-secret token.
    #[arg(long, env = "IGNITER_LEDGER_TOKEN")]
    token: Option<String>,
}

pub(super) fn run(a: Args) -> Result<(), String> {
    let target = a
        .target
        .clone()
        .or(a.path.clone())
        .ok_or("missing the ledger path or server address")?;
    if target.starts_with("tcp://") || target.starts_with("unix://") {
        return remote(&a, &target);
    }
    if a.follow {
        return Err("--follow needs a server address (tcp://host:port): a ledger file is owned by one process".into());
    }
    let p = super::path::LedgerPath {
        positional: Some(target.into()),
        flag: None,
    };
    let (p, l) = p.open()?;
    let facts: Vec<_> = l
        .fact_log_all(None, None)
        .into_iter()
        .filter(|f| a.store.as_deref().is_none_or(|s| s == f.store()))
        .collect();
    let skip = facts.len().saturating_sub(a.lines as usize);
    for f in &facts[skip..] {
        println!("{}", fact_json(f));
    }
    close(&p, l)
}

fn remote(a: &Args, addr: &str) -> Result<(), String> {
    let store = RemoteStore::connect_with(addr, a.token.as_deref()).map_err(|e| e.to_string())?;
    let head = store
        .rpc(json!({"op": "ledger.count"}))
        .map_err(|e| e.to_string())?
        .get("head")
        .and_then(Json::as_u64)
        .unwrap_or(0);
    let stores: Vec<&str> = a.store.as_deref().into_iter().collect();
    let mut after = head.saturating_sub(a.lines);
    loop {
        let r = store
            .rpc(json!({"op": "ledger.changes", "after": after, "stores": stores, "limit": 1000}))
            .map_err(|e| e.to_string())?;
        let events = r
            .get("events")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        for e in &events {
            println!("{}", e["fact"]);
        }
        after = r.get("cursor").and_then(Json::as_u64).unwrap_or(after);
        if !a.follow {
            if events.len() < 1000 {
                return Ok(());
            }
            continue;
        }
        if events.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
