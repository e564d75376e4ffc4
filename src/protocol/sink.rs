//! The contractable receipt sink: observations (one record each, keyed by
//! `observation_id`) and their events (a history partitioned by `observation_id`),
//! recorded through the protocol.

use crate::Value;

use super::error::ProtocolError;
use super::interpreter::Interpreter;
use super::packet::{field, key_text, name_of, obj, sym};
use super::receipt::Receipt;

/// Records contractable observations and events through an [`Interpreter`].
///
/// ```
/// use igniter_ledger::protocol::{packet::obj, sink::ContractableReceiptSink, Interpreter};
/// use igniter_ledger::{LedgerStore, Value};
///
/// let proto = Interpreter::new(LedgerStore::memory());
/// let sink = ContractableReceiptSink::new(&proto);
/// sink.record_observation(&obj([
///     ("receipt_kind", Value::sym("contractable_observation")),
///     ("observation_id", Value::from("o1")),
///     ("status", Value::sym("ok")),
/// ])).unwrap();
/// sink.record_event(&obj([("observation_id", Value::from("o1")), ("event", Value::sym("done"))])).unwrap();
/// assert!(sink.observation("o1").unwrap().is_some());
/// assert_eq!(sink.events_for("o1").unwrap().len(), 1);
/// ```
#[derive(Debug)]
pub struct ContractableReceiptSink<'a> {
    interp: &'a Interpreter,
    observations: String,
    events: String,
    producer: Value,
}

impl<'a> ContractableReceiptSink<'a> {
    /// A sink over the default stores (`contractable_observations`,
    /// `contractable_events`); registers their store and history descriptors.
    pub fn new(interp: &'a Interpreter) -> Self {
        Self::with_stores(
            interp,
            "contractable_observations",
            "contractable_events",
            obj([("system", sym("igniter_contractable"))]),
        )
    }

    /// A sink over the given stores and producer; registers their descriptors.
    pub fn with_stores(
        interp: &'a Interpreter,
        observations: &str,
        events: &str,
        producer: Value,
    ) -> Self {
        interp.register(&obj([
            ("schema_version", Value::Int(1)),
            ("kind", sym("store")),
            ("name", sym(observations)),
            ("key", sym("observation_id")),
            (
                "fields",
                Value::Array(vec![obj([
                    ("name", sym("observation_id")),
                    ("type", sym("string")),
                    ("required", Value::Bool(true)),
                ])]),
            ),
            ("producer", producer.clone()),
        ]));
        interp.register(&obj([
            ("schema_version", Value::Int(1)),
            ("kind", sym("history")),
            ("name", sym(events)),
            ("key", sym("observation_id")),
            ("partition_key", sym("observation_id")),
            ("producer", producer.clone()),
        ]));
        ContractableReceiptSink {
            interp,
            observations: observations.to_owned(),
            events: events.to_owned(),
            producer,
        }
    }

    /// Writes an observation receipt (`receipt_kind: :contractable_observation`, keyed by
    /// its `observation_id`).
    pub fn record_observation(&self, receipt: &Value) -> Result<Receipt, ProtocolError> {
        match field(receipt, "receipt_kind").and_then(name_of) {
            Some("contractable_observation") => {}
            _ => {
                return Err(ProtocolError::invalid(
                    "receipt_kind",
                    "must be :contractable_observation",
                ))
            }
        }
        let id = field(receipt, "observation_id")
            .and_then(key_text)
            .ok_or_else(|| ProtocolError::missing("observation_id"))?;
        self.interp.write(&obj([
            ("store", sym(&self.observations)),
            ("key", Value::Str(id)),
            ("value", receipt.clone()),
            ("producer", self.producer.clone()),
        ]))
    }

    /// Appends an event (it must carry an `observation_id`).
    pub fn record_event(&self, event: &Value) -> Result<Receipt, ProtocolError> {
        if field(event, "observation_id").is_none() {
            return Err(ProtocolError::missing("observation_id"));
        }
        self.interp.append(&obj([
            ("history", sym(&self.events)),
            ("event", event.clone()),
            ("partition_key", sym("observation_id")),
            ("producer", self.producer.clone()),
        ]))
    }

    /// The observation recorded under `id`.
    pub fn observation(&self, id: &str) -> Result<Option<Value>, ProtocolError> {
        self.interp.read(&obj([
            ("store", sym(&self.observations)),
            ("key", Value::from(id)),
        ]))
    }

    /// The events of observation `id`, oldest first.
    pub fn events_for(&self, id: &str) -> Result<Vec<Value>, ProtocolError> {
        Ok(self
            .interp
            .replay(&obj([(
                "filter",
                obj([
                    ("store", sym(&self.events)),
                    ("partition_key", sym("observation_id")),
                    ("partition_value", Value::from(id)),
                ]),
            )]))?
            .into_iter()
            .filter_map(|p| field(&p, "value").cloned())
            .collect())
    }

    /// Observations, only those with `status` when given, at most `limit`.
    pub fn observations(
        &self,
        status: Option<&Value>,
        limit: Option<usize>,
    ) -> Result<Vec<Value>, ProtocolError> {
        let mut q = vec![("store", sym(&self.observations))];
        if let Some(s) = status {
            q.push(("where", obj([("status", s.clone())])));
        }
        if let Some(n) = limit {
            q.push(("limit", Value::Int(n as i64)));
        }
        Ok(self
            .interp
            .query(&obj(q))?
            .into_iter()
            .map(|i| i.value)
            .collect())
    }

    /// Events whose status is `error` (or that carry an `error`), the last `limit`.
    pub fn error_events(&self, limit: Option<usize>) -> Result<Vec<Value>, ProtocolError> {
        let mut errors: Vec<Value> = self
            .interp
            .replay(&obj([("filter", obj([("store", sym(&self.events))]))]))?
            .into_iter()
            .filter_map(|p| field(&p, "value").cloned())
            .filter(|e| {
                field(e, "status").and_then(name_of) == Some("error") || field(e, "error").is_some()
            })
            .collect();
        if let Some(n) = limit {
            let cut = errors.len().saturating_sub(n);
            errors.drain(..cut);
        }
        Ok(errors)
    }
}
