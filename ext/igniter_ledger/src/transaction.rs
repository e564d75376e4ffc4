//! `Igniter::Ledger::Transaction`: the writes and appends of one `LedgerStore#transaction`
//! block, held as a core `Batch`. Each `write`/`append` (keyword wrappers in
//! `lib/igniter/ledger/transaction.rb`) converts its arguments at once,
//! so a refused argument raises at the caller's line, named `batch operation N: ...`
//! with the class the plain write would raise; nothing is written until the block
//! returns (see `writes.rs`).

use std::sync::Mutex;

use igniter_ledger::Batch;
use magnus::{prelude::*, Error, RModule, Ruby, Value as RValue};

use crate::operations;

/// The data behind a `Transaction` object.
#[magnus::wrap(class = "Igniter::Store::Transaction", free_immediately, size)]
pub struct TxObj {
    batch: Mutex<Batch>,
}

impl TxObj {
    /// An empty transaction.
    pub fn new() -> Self {
        TxObj {
            batch: Mutex::new(Batch::new()),
        }
    }

    /// The operations queued so far, leaving the transaction empty.
    pub fn take(&self) -> Batch {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Batch> {
        // Only this object's methods take it, never across a Ruby call.
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an operation built by `build`; answers its position in the result array.
    /// An error gets the operation's number (1-based) in front of its message.
    fn queue(
        &self,
        build: impl FnOnce() -> Result<igniter_ledger::Op, Error>,
    ) -> Result<usize, Error> {
        let n = self.lock().len();
        let op = build().map_err(|e| match e.error_type() {
            magnus::error::ErrorType::Error(class, msg) => {
                Error::new(*class, format!("batch operation {}: {msg}", n + 1))
            }
            _ => e,
        })?;
        let mut batch = self.lock();
        batch.push(op);
        Ok(batch.len() - 1)
    }
}

/// `_write(store, key, value, ..., [expected])`: as `LedgerStore#_write`.
fn write(ruby: &Ruby, tx: &TxObj, argv: &[RValue]) -> Result<usize, Error> {
    let k: [Option<RValue>; 10] = operations::positional(ruby, argv, "_write", 9)?;
    tx.queue(|| operations::write(ruby, &k).map(igniter_ledger::Op::Write))
}

/// `_append(history, event, ...)`: as `LedgerStore#_append`.
fn append(ruby: &Ruby, tx: &TxObj, argv: &[RValue]) -> Result<usize, Error> {
    let k: [Option<RValue>; 9] = operations::positional(ruby, argv, "_append", 9)?;
    tx.queue(|| operations::append(ruby, &k, false).map(|(a, _)| igniter_ledger::Op::Append(a)))
}

fn size(tx: &TxObj) -> usize {
    tx.lock().len()
}

fn is_empty(tx: &TxObj) -> bool {
    tx.lock().is_empty()
}

/// Defines `Transaction` under `ledger` (made only by `LedgerStore#transaction`).
pub fn define(ruby: &Ruby, ledger: RModule) -> Result<(), Error> {
    use magnus::method;
    let class = ledger.define_class("Transaction", ruby.class_object())?;
    class.undef_default_alloc_func();
    class.define_private_method("_write", method!(write, -1))?;
    class.define_private_method("_append", method!(append, -1))?;
    class.define_method("size", method!(size, 0))?;
    class.define_method("empty?", method!(is_empty, 0))?;
    Ok(())
}
