//! Receipts: the answer to registering a descriptor or writing through the protocol.

use crate::{Fact, Value};

use super::packet::{obj, opt_str, opt_sym, sym};

/// A receipt's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// Registered or written.
    Accepted,
    /// Refused; nothing changed. `errors` says why.
    Rejected,
    /// An identical descriptor was registered before; nothing changed.
    Deduplicated,
}

impl ReceiptStatus {
    /// The status's name (`accepted`, `rejected`, `deduplicated`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptStatus::Accepted => "accepted",
            ReceiptStatus::Rejected => "rejected",
            ReceiptStatus::Deduplicated => "deduplicated",
        }
    }
}

/// A receipt, with the reference's fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    /// Always 1.
    pub schema_version: u32,
    /// The descriptor kind (`store`, `history`, ...), or `write_receipt` / `append_receipt`.
    pub kind: Option<String>,
    /// The outcome.
    pub status: ReceiptStatus,
    /// The descriptor's name.
    pub name: Option<String>,
    /// The store written to.
    pub store: Option<String>,
    /// The key written.
    pub key: Option<String>,
    /// The written fact's id.
    pub fact_id: Option<String>,
    /// The written fact's value hash (hex).
    pub value_hash: Option<String>,
    /// Things the caller should know that did not stop the operation.
    pub warnings: Vec<String>,
    /// Why the operation was rejected.
    pub errors: Vec<String>,
    /// Facts derived by the write (reserved; empty until derivations report them).
    pub derived: Vec<Value>,
}

impl Receipt {
    fn new(status: ReceiptStatus, kind: Option<&str>, name: Option<&str>) -> Self {
        Receipt {
            schema_version: 1,
            kind: kind.map(str::to_owned),
            status,
            name: name.map(str::to_owned),
            store: None,
            key: None,
            fact_id: None,
            value_hash: None,
            warnings: Vec::new(),
            errors: Vec::new(),
            derived: Vec::new(),
        }
    }

    /// An accepted registration.
    pub fn accepted(kind: &str, name: Option<&str>) -> Self {
        Self::new(ReceiptStatus::Accepted, Some(kind), name)
    }

    /// A rejection with one error.
    pub fn rejection(error: impl Into<String>, kind: Option<&str>, name: Option<&str>) -> Self {
        let mut r = Self::new(ReceiptStatus::Rejected, kind, name);
        r.errors.push(error.into());
        r
    }

    /// A registration that repeated an identical descriptor.
    pub fn deduplicated(kind: &str, name: Option<&str>) -> Self {
        Self::new(ReceiptStatus::Deduplicated, Some(kind), name)
    }

    /// An accepted write of `fact`.
    pub fn write_accepted(fact: &Fact) -> Self {
        let mut r = Self::new(ReceiptStatus::Accepted, Some("write_receipt"), None);
        r.fill(fact);
        r
    }

    /// An accepted append of `fact`; a key the caller asked for is only echoed as a
    /// warning (appends always get a fresh key).
    pub fn append_accepted(fact: &Fact, requested_key: Option<&str>) -> Self {
        let mut r = Self::new(ReceiptStatus::Accepted, Some("append_receipt"), None);
        r.fill(fact);
        if let Some(k) = requested_key {
            r.warnings.push(format!(
                "requested key {k:?} is metadata only: append generated key {}",
                fact.key()
            ));
        }
        r
    }

    fn fill(&mut self, fact: &Fact) {
        self.store = Some(fact.store().to_owned());
        self.key = Some(fact.key().to_owned());
        self.fact_id = Some(fact.id().to_string());
        self.value_hash = Some(fact.value_hash_hex());
    }

    /// True when accepted.
    pub fn is_accepted(&self) -> bool {
        self.status == ReceiptStatus::Accepted
    }
    /// True when rejected.
    pub fn is_rejected(&self) -> bool {
        self.status == ReceiptStatus::Rejected
    }
    /// True when deduplicated.
    pub fn is_deduplicated(&self) -> bool {
        self.status == ReceiptStatus::Deduplicated
    }

    /// The receipt as a packet (Symbol keys; kind, status, name and store as Symbols).
    pub fn to_value(&self) -> Value {
        let strings =
            |v: &[String]| Value::Array(v.iter().map(|s| Value::Str(s.clone())).collect());
        obj([
            ("schema_version", Value::Int(self.schema_version as i64)),
            ("kind", opt_sym(self.kind.as_deref())),
            ("status", sym(self.status.as_str())),
            ("name", opt_sym(self.name.as_deref())),
            ("store", opt_sym(self.store.as_deref())),
            ("key", opt_str(self.key.clone())),
            ("fact_id", opt_str(self.fact_id.clone())),
            ("value_hash", opt_str(self.value_hash.clone())),
            ("warnings", strings(&self.warnings)),
            ("errors", strings(&self.errors)),
            ("derived", Value::Array(self.derived.clone())),
        ])
    }
}
