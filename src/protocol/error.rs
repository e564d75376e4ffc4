//! The protocol's typed error.

use thiserror::Error;

/// Why a protocol operation could not run. Operations that answer with a receipt turn
/// these into a rejected receipt; the wire envelope turns them into an error response.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A required field is absent (or nil).
    #[error("missing required field: {field}")]
    MissingField {
        /// The field's name.
        field: String,
    },
    /// A field is present but unusable.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// The field's name.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `resolve` named a relation nobody registered.
    #[error("unknown relation: {0}")]
    UnknownRelation(String),
    /// The ledger refused the operation.
    #[error(transparent)]
    Ledger(#[from] crate::Error),
}

impl ProtocolError {
    /// A missing required field.
    pub fn missing(field: &str) -> Self {
        ProtocolError::MissingField {
            field: field.to_owned(),
        }
    }
    /// An unusable field.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ProtocolError::InvalidField {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
    /// The field the error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ProtocolError::MissingField { field } | ProtocolError::InvalidField { field, .. } => {
                Some(field)
            }
            ProtocolError::UnknownRelation(_) => Some("relation"),
            ProtocolError::Ledger(_) => None,
        }
    }
}
