//! The one error type of the ledger.

use std::io;
use std::path::PathBuf;

use uuid::Uuid;

/// Everything that can go wrong in the ledger. No operation panics on user input or on
/// disk content; each failure arrives as one of these variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value broke a rule of the value model (too deep, duplicate key, too large...).
    /// `path` names the offending place, e.g. `value[:meta][:at]`.
    #[error("{path} {reason}")]
    InvalidValue {
        /// Where in the value the problem is.
        path: String,
        /// What is wrong there.
        reason: String,
    },
    /// An argument other than a value was wrong (empty store name, negative time...).
    #[error("{0}")]
    InvalidArgument(String),
    /// Optimistic concurrency: the latest fact of (store, key) was not the expected one.
    /// Nothing was written.
    #[error(
        "write conflict on {store}/{key}: expected {}, found {}",
        describe(expected),
        describe(actual)
    )]
    Conflict {
        /// Store name.
        store: String,
        /// Key.
        key: String,
        /// What the writer expected as latest fact (None = no fact).
        expected: Option<Uuid>,
        /// What the latest fact actually was (None = no fact).
        actual: Option<Uuid>,
    },
    /// `query` on a scope that was never registered.
    #[error("unknown scope {scope:?} for store {store:?}: register an access path first")]
    UnknownScope {
        /// Store name.
        store: String,
        /// Scope name.
        scope: String,
    },
    /// Another handle (this process or another) has the ledger file open.
    #[error("{} is locked by another open ledger (one process and one handle may own a ledger file at a time)", path.display())]
    Locked {
        /// The WAL path, or the root of a segmented ledger.
        path: PathBuf,
    },
    /// Damage that is not a torn final frame: valid frames follow it, or a complete frame
    /// does not decode. Open with `recover` to move the damaged remainder aside.
    #[error("{} is corrupt at byte offset {offset}: {reason}", path.display())]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the first damaged frame.
        offset: u64,
        /// What was found there.
        reason: String,
    },
    /// An operating-system I/O error, with what the ledger was doing.
    #[error("{context}: {source}")]
    Io {
        /// What the ledger was doing (includes the file path).
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The store was closed.
    #[error("the ledger is closed")]
    Closed,
    /// An earlier I/O failure left the log in a state the ledger could not repair, so it
    /// refuses further writes. Reopen the ledger to recover.
    #[error("the ledger refuses writes after an unrecoverable I/O failure ({0}); reopen it")]
    Poisoned(String),
    /// This process was forked from the one that made the ledger. A child of a
    /// file-backed ledger shares the parent's descriptor, so it may read but not write,
    /// checkpoint or flush (its `close` writes nothing). And a child never waits on a lock
    /// that a thread of the parent held at the moment of the fork (nobody is left to
    /// release it): such a read, or any use of an in-memory ledger caught that way, fails
    /// with this error. Open the file anew in the child.
    #[error("this ledger was opened by process {opened_by}; a forked child may not write to it, and cannot use it while a thread of that process held it at the fork (open it anew)")]
    Forked {
        /// The process that opened the file.
        opened_by: u32,
    },
    /// The changefeed refused an argument or a cursor (see
    /// [`ChangefeedError`](crate::changefeed::ChangefeedError)); the message names the
    /// argument.
    #[error(transparent)]
    Changefeed(#[from] crate::changefeed::ChangefeedError),
    /// A registered coercion failed while reading.
    #[error("coercion for store {store:?} failed: {message}")]
    Coercion {
        /// Store name.
        store: String,
        /// The coercion's error message.
        message: String,
    },
}

fn describe(id: &Option<Uuid>) -> String {
    match id {
        Some(id) => id.to_string(),
        None => "no fact".to_owned(),
    }
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// `Result` with the ledger's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
