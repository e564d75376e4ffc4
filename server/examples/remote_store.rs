//! A remote store against a running server:
//! `cargo run -p igniter_ledger_server --example remote_store -- tcp://127.0.0.1:7400`

use igniter_ledger::{Expected, Value};
use igniter_ledger_server::client::{ClientError, RemoteStore};

fn main() -> Result<(), ClientError> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:7400".into());
    let store = RemoteStore::connect(&url)?;
    let first = store.write("tasks", "t1", Value::from("open"))?;
    println!("wrote {} at {}", first.id(), first.transaction_time());
    store.write_expected(
        "tasks",
        "t1",
        Value::from("done"),
        Expected::Fact(first.id()),
    )?;
    match store.write_expected(
        "tasks",
        "t1",
        Value::from("stale"),
        Expected::Fact(first.id()),
    ) {
        Err(ClientError::Conflict { message, .. }) => println!("conflict: {message}"),
        other => println!("unexpected: {other:?}"),
    }
    println!("read: {:?}", store.read("tasks", "t1")?);
    println!(
        "history: {} facts",
        store.history("tasks", Some("t1"))?.len()
    );
    Ok(())
}
