//! The error of typed conversions: a serde error that names where in the value it arose.

use std::fmt;

/// A value that could not be converted to or from a Rust type.
///
/// It is the `serde` error of [`to_value`](crate::to_value),
/// [`from_value`](crate::from_value) and the typed reads and writes: it implements
/// [`serde::ser::Error`] and [`serde::de::Error`], and its [`path`](TypedError::path)
/// names the place in the value, in the ledger's notation (`value[:lines][2][:qty]`).
/// Converted into the ledger's [`Error`](crate::Error) it becomes
/// [`Error::InvalidValue`](crate::Error::InvalidValue) with the same path and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedError(Box<Inner>);

/// Boxed so that `Result<T, TypedError>` stays one pointer wider than `T` on the hot
/// decode path.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Inner {
    /// What the whole value is called in the path (`value`, `event`).
    root: &'static str,
    /// Path segments below the root, outermost first once finished (kept innermost first
    /// while the error travels outwards; see [`TypedError::within`]).
    segments: Vec<String>,
    message: String,
}

impl TypedError {
    /// An error with a message and no path yet.
    pub(crate) fn msg(message: impl Into<String>) -> Self {
        TypedError(Box::new(Inner {
            root: "value",
            segments: Vec::new(),
            message: message.into(),
        }))
    }

    /// The same error one level further out: `segment` (`[:field]`, `[3]`) is the place
    /// in the enclosing container where the failing value sits.
    #[cold]
    pub(crate) fn within(mut self, segment: impl FnOnce() -> String) -> Self {
        self.0.segments.push(segment());
        self
    }

    /// The same error with the whole value called `root` (`event` for appends).
    pub(crate) fn rooted(mut self, root: &'static str) -> Self {
        self.0.root = root;
        self
    }

    /// Where the problem is, e.g. `value[:lines][2][:qty]` (`value` for the whole value; `event` for an append's event).
    pub fn path(&self) -> String {
        let mut p = String::from(self.0.root);
        for s in self.0.segments.iter().rev() {
            p.push_str(s);
        }
        p
    }

    /// What is wrong there.
    pub fn reason(&self) -> &str {
        &self.0.message
    }
}

impl fmt::Display for TypedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.path(), self.0.message)
    }
}

impl std::error::Error for TypedError {}

impl serde::ser::Error for TypedError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TypedError::msg(msg.to_string())
    }
}

impl serde::de::Error for TypedError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TypedError::msg(msg.to_string())
    }
}

impl From<TypedError> for crate::Error {
    fn from(e: TypedError) -> Self {
        crate::Error::InvalidValue {
            path: e.path(),
            reason: e.0.message,
        }
    }
}

/// The path segment of a map key, as the ledger prints keys (`[:sym]`, `["str"]`, `[7]`).
pub(crate) fn key_segment(key: &crate::MapKey) -> String {
    format!("[{key}]")
}

/// The path segment of an array index.
pub(crate) fn index_segment(i: usize) -> String {
    format!("[{i}]")
}
