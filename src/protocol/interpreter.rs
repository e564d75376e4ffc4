//! The interpreter: packets in, calls on [`LedgerStore`], packets and receipts out.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use uuid::Uuid;

use crate::{Append, Fact, HistoryQuery, LedgerStore, MapKey, Read, Timestamp, Value, Write};

use super::descriptor::{self, RelationRule};
use super::error::ProtocolError;
use super::packet::{
    check_bounds, field, limits, name_of, obj, opt_count, opt_map, opt_name, opt_str, opt_sym,
    opt_time, opt_timestamp, req_key, req_name, set, sym,
};
use super::query::Query;
use super::receipt::Receipt;
use super::registry::Registry;
use super::sources::{same, ActivityQuery, CoreSources, Item, Sources};
use super::sync::{SyncMode, SyncProfile};

/// The Ledger Open Protocol interpreter over one ledger.
///
/// ```
/// use igniter_ledger::protocol::{packet::obj, Interpreter};
/// use igniter_ledger::{LedgerStore, Value};
///
/// let proto = Interpreter::new(LedgerStore::memory());
/// let receipt = proto.register(&obj([
///     ("schema_version", Value::Int(1)),
///     ("kind", Value::sym("store")),
///     ("name", Value::sym("tasks")),
///     ("key", Value::sym("id")),
/// ]));
/// assert!(receipt.is_accepted());
/// // The same descriptor again changes nothing.
/// assert!(proto.register(&obj([
///     ("key", Value::sym("id")),
///     ("name", Value::sym("tasks")),
///     ("kind", Value::sym("store")),
///     ("schema_version", Value::Int(1)),
/// ])).is_deduplicated());
/// ```
pub struct Interpreter {
    store: LedgerStore,
    registry: RwLock<Registry>,
    sources: Arc<dyn Sources>,
}

impl std::fmt::Debug for Interpreter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interpreter")
            .field("store", &self.store.path())
            .finish_non_exhaustive()
    }
}

impl Interpreter {
    /// An interpreter over `store` answering from the store alone ([`CoreSources`]).
    pub fn new(store: LedgerStore) -> Self {
        Self::with_sources(store, Arc::new(CoreSources))
    }

    /// An interpreter that takes relation indexes, retention, storage, activity and
    /// changefeed answers from `sources`.
    pub fn with_sources(store: LedgerStore, sources: Arc<dyn Sources>) -> Self {
        Interpreter {
            store,
            registry: RwLock::new(Registry::default()),
            sources,
        }
    }

    /// The ledger.
    pub fn store(&self) -> &LedgerStore {
        &self.store
    }

    /// The wire envelope over this interpreter.
    pub fn wire(&self) -> super::WireEnvelope<'_> {
        super::WireEnvelope::new(self)
    }

    /// Shorthand for `wire().dispatch(envelope)`.
    pub fn dispatch(&self, envelope: &Value) -> Value {
        self.wire().dispatch(envelope)
    }

    // ------------------------------------------------------------------ descriptors

    /// Registers a descriptor of any kind. Never fails: a bad descriptor gets a rejected
    /// receipt naming the problem, and changes nothing; an identical repeat of the current
    /// descriptor of its kind and name gets a deduplicated receipt.
    pub fn register(&self, d: &Value) -> Receipt {
        if let Err(e) = check_bounds(d, "descriptor", limits::MAX_DESCRIPTOR_BYTES) {
            return Receipt::rejection(e.to_string(), None, None);
        }
        let checked = match descriptor::check(d) {
            Ok(c) => c,
            Err(r) => return Receipt::rejection(r.error, r.kind, r.name.as_deref()),
        };
        let mut reg = self.registry.write();
        if reg.is_current(&checked) {
            return Receipt::deduplicated(checked.kind, Some(&checked.name));
        }
        if checked.kind == "relation" {
            if let Some(rule) = RelationRule::of(&checked.descriptor) {
                if let Err(e) = self.sources.register_relation(&self.store, &rule) {
                    return Receipt::rejection(
                        e.to_string(),
                        Some("relation"),
                        Some(&checked.name),
                    );
                }
            }
        }
        reg.put(&checked);
        let mut r = Receipt::accepted(checked.kind, Some(&checked.name));
        r.warnings = checked.warnings;
        r
    }

    /// Registers a descriptor as `kind` (the `register_<kind>` aliases): the kind is
    /// filled in when the descriptor leaves it out.
    pub fn register_as(&self, kind: &str, d: &Value) -> Receipt {
        if matches!(d, Value::Map(_)) && field(d, "kind").is_none() {
            let mut d = d.clone();
            set(&mut d, "kind", sym(kind));
            return self.register(&d);
        }
        self.register(d)
    }

    // ------------------------------------------------------------------ writes

    /// `write(store:, key:, value:, producer:, derivation:, valid_time:, schema_version:,
    /// causation:)`: writes a fact; answers a write receipt.
    pub fn write(&self, p: &Value) -> Result<Receipt, ProtocolError> {
        self.write_with(p, field(p, "value").cloned())
    }

    /// [`Interpreter::write`] with the value given apart from the packet (moved, not
    /// copied).
    pub fn write_with(&self, p: &Value, value: Option<Value>) -> Result<Receipt, ProtocolError> {
        let store = req_name(p, "store")?;
        let key = req_key(p, "key")?;
        let value = value.ok_or_else(|| ProtocolError::missing("value"))?;
        let fact = self
            .store
            .write(self.write_request(p, store, key, value)?)?;
        Ok(Receipt::write_accepted(&fact))
    }

    fn write_request(
        &self,
        p: &Value,
        store: &str,
        key: String,
        value: Value,
    ) -> Result<Write, ProtocolError> {
        check_bounds(&value, "value", limits::MAX_PACKET_BYTES)?;
        let mut w = Write::new(store, key, value).valid_time_opt(opt_time(p, "valid_time")?);
        if let Some(v) = schema_version(p)? {
            w = w.schema_version(v);
        }
        if let Some(v) = field(p, "producer") {
            w = w.producer(v.clone());
        }
        if let Some(v) = field(p, "derivation") {
            w = w.derivation(v.clone());
        }
        if let Some(id) = opt_uuid(p, "causation")? {
            w = w.causation(id);
        }
        Ok(w)
    }

    /// `append(history:, event:, partition_key:, producer:, derivation:, valid_time:,
    /// schema_version:, key:)`: appends an event under a fresh key; a requested `key:` is
    /// only echoed in a warning.
    pub fn append(&self, p: &Value) -> Result<Receipt, ProtocolError> {
        let history = req_name(p, "history")?;
        let event = field(p, "event")
            .cloned()
            .ok_or_else(|| ProtocolError::missing("event"))?;
        check_bounds(&event, "event", limits::MAX_PACKET_BYTES)?;
        let mut a = Append::new(history, event).valid_time_opt(opt_time(p, "valid_time")?);
        if let Some(pk) = field(p, "partition_key") {
            let k = MapKey::from_value(pk).ok_or_else(|| {
                ProtocolError::invalid("partition_key", "must be a Symbol, String or Integer")
            })?;
            a = a.partition_map_key(Some(k));
        }
        if let Some(v) = schema_version(p)? {
            a = a.schema_version(v);
        }
        if let Some(v) = field(p, "producer") {
            a = a.producer(v.clone());
        }
        if let Some(v) = field(p, "derivation") {
            a = a.derivation(v.clone());
        }
        let requested = field(p, "key").and_then(super::packet::key_text);
        let fact = self.store.append(a)?;
        Ok(Receipt::append_accepted(&fact, requested.as_deref()))
    }

    /// `write_fact(packet)` for a fact packet (`kind: :fact`, store, key, value and the
    /// optional fact fields). Never fails: a bad packet gets a rejected receipt.
    pub fn write_fact(&self, p: &Value) -> Receipt {
        let reject = |e: String| Receipt::rejection(e, Some("write_receipt"), None);
        match field(p, "kind").and_then(name_of) {
            Some("fact") => {}
            Some(other) => {
                return reject(format!(
                    "write_fact expects kind: :fact, got kind: :{other}"
                ))
            }
            None => return reject("fact packet missing required field: kind".into()),
        }
        let mut gaps = Vec::new();
        for f in ["store", "key", "value"] {
            if field(p, f).is_none() {
                gaps.push(f);
            }
        }
        if !gaps.is_empty() {
            return reject(format!(
                "fact packet missing required fields: {}",
                gaps.join(", ")
            ));
        }
        let run = || -> Result<Fact, ProtocolError> {
            let store = req_name(p, "store")?;
            let key = req_key(p, "key")?;
            let value = field(p, "value").cloned().unwrap_or_default();
            Ok(self
                .store
                .write(self.write_request(p, store, key, value)?)?)
        };
        match run() {
            Ok(fact) => Receipt::write_accepted(&fact),
            Err(e) => reject(e.to_string()),
        }
    }

    // ------------------------------------------------------------------ reads

    /// `read(store:, key:, as_of:)`: the current (or as-of) value, or None.
    pub fn read(&self, p: &Value) -> Result<Option<Value>, ProtocolError> {
        let store = req_name(p, "store")?;
        let key = req_key(p, "key")?;
        Ok(self
            .store
            .read(Read::new(store, key).as_of_opt(opt_timestamp(p, "as_of")?))?)
    }

    /// `query(store:, where:, order:, limit:, as_of:)`: the latest record of every key
    /// whose value matches `where` (field equality; Symbols and Strings compare by text),
    /// ordered by `order` (a field name, or `{field => :asc|:desc}`) then key, at most
    /// `limit`. A `where` field named by an `access_path` descriptor is answered from a
    /// field index, and `order` with `limit` keeps a bounded top-k (see
    /// [`super::query`]).
    pub fn query(&self, p: &Value) -> Result<Vec<Item>, ProtocolError> {
        let store = req_name(p, "store")?;
        let filters: Vec<(&MapKey, &Value)> = match opt_map(p, "where")? {
            Some(Value::Map(pairs)) => pairs.iter().map(|(k, v)| (k, v)).collect(),
            _ => Vec::new(),
        };
        let q = Query {
            store,
            filters,
            order: order_of(p)?,
            limit: opt_count(p, "limit")?,
            as_of: opt_timestamp(p, "as_of")?,
        };
        let indexed = self.registry.read().indexed_fields(store);
        q.run(&self.store, &indexed)
    }

    /// `resolve(relation:, from:, as_of:)`: the current records of the relation's source
    /// store that point at `from`.
    pub fn resolve(&self, p: &Value) -> Result<Vec<Item>, ProtocolError> {
        let name = req_name(p, "relation")?;
        let from = field(p, "from").ok_or_else(|| ProtocolError::missing("from"))?;
        let rule = self
            .registry
            .read()
            .relation(name)
            .cloned()
            .ok_or_else(|| ProtocolError::UnknownRelation(name.to_owned()))?;
        self.sources
            .resolve(&self.store, &rule, from, opt_timestamp(p, "as_of")?)
    }

    /// `causation_chain(store:, key:)`: `[{id, value_hash (12 hex), causation,
    /// transaction_time}]`, oldest first.
    pub fn causation_chain(&self, p: &Value) -> Result<Vec<Value>, ProtocolError> {
        let store = req_name(p, "store")?;
        let key = req_key(p, "key")?;
        Ok(self
            .store
            .causation_chain(store, &key)
            .iter()
            .map(|e| {
                obj([
                    ("id", Value::Str(e.id.to_string())),
                    ("value_hash", Value::Str(e.value_hash.clone())),
                    ("causation", opt_str(e.causation.map(|c| c.to_string()))),
                    (
                        "transaction_time",
                        Value::Float(e.transaction_time.as_secs_f64()),
                    ),
                ])
            })
            .collect())
    }

    /// `lineage(store:, key:)`: `{subject:, chain:, depth:, derived_by:, proof_hash:}`.
    pub fn lineage(&self, p: &Value) -> Result<Value, ProtocolError> {
        let store = req_name(p, "store")?;
        let key = req_key(p, "key")?;
        let facts = self
            .store
            .history_raw(HistoryQuery::new(store).key(key.as_str()));
        let lineage = self.store.lineage(store, &key);
        let chain = facts
            .iter()
            .map(|f| {
                obj([
                    ("id", Value::Str(f.id().to_string())),
                    ("store", sym(f.store())),
                    ("key", Value::Str(f.key().to_owned())),
                    ("causation", opt_str(f.causation().map(|c| c.to_string()))),
                    ("value_hash", Value::Str(f.value_hash_hex())),
                    (
                        "transaction_time",
                        Value::Float(f.transaction_time().as_secs_f64()),
                    ),
                    ("valid_time", super::packet::opt_float(f.valid_time())),
                    ("schema_version", Value::Int(f.schema_version() as i64)),
                ])
            })
            .collect();
        Ok(obj([
            (
                "subject",
                obj([("store", sym(store)), ("key", Value::Str(key.clone()))]),
            ),
            ("chain", Value::Array(chain)),
            ("depth", Value::Int(lineage.depth as i64)),
            (
                "derived_by",
                crate::derive::derived_by_value(&lineage.derived_by),
            ),
            ("proof_hash", opt_str(lineage.proof_hash)),
        ]))
    }

    /// `fact_ref(fact_id:)`: `{id, store, key, transaction_time, valid_time, value_hash}`
    /// (no value), or None for an unknown or malformed id.
    pub fn fact_ref(&self, p: &Value) -> Result<Option<Value>, ProtocolError> {
        let id = field(p, "fact_id")
            .or_else(|| field(p, "id"))
            .ok_or_else(|| ProtocolError::missing("fact_id"))?;
        let Some(id) = id.as_str().and_then(|s| Uuid::parse_str(s).ok()) else {
            return Ok(None);
        };
        Ok(self.store.fact_ref(id).map(|r| {
            obj([
                ("id", Value::Str(r.id.to_string())),
                ("store", sym(&r.store)),
                ("key", Value::Str(r.key)),
                (
                    "transaction_time",
                    Value::Float(r.transaction_time.as_secs_f64()),
                ),
                ("valid_time", super::packet::opt_float(r.valid_time)),
                ("value_hash", Value::Str(r.value_hash)),
            ])
        }))
    }

    /// `replay(from:, to:, filter: {store:[, key:] | [, partition_key:, partition_value:]})`:
    /// fact packets in commit order with `from <= transaction_time <= to`.
    pub fn replay(&self, p: &Value) -> Result<Vec<Value>, ProtocolError> {
        let from = opt_timestamp(p, "from")?;
        let to = opt_timestamp(p, "to")?;
        let filter = opt_map(p, "filter")?;
        let facts = match filter {
            Some(f) if field(f, "store").is_some() => {
                let store = req_name(f, "store")?;
                let key = field(f, "key").and_then(super::packet::key_text);
                if let (None, Some(pk)) = (&key, field(f, "partition_key").and_then(name_of)) {
                    let pv = field(f, "partition_value").cloned().unwrap_or_default();
                    if let Some(facts) =
                        super::query::partition_facts(&self.store, store, pk, &pv, from, to)?
                    {
                        return Ok(facts.iter().map(fact_packet).collect());
                    }
                }
                let mut facts = self.store.history_raw(
                    HistoryQuery::new(store)
                        .key_opt(key)
                        .since_opt(from)
                        .as_of_opt(to),
                );
                if let Some(pk) = field(f, "partition_key") {
                    let pk = name_of(pk)
                        .ok_or_else(|| ProtocolError::invalid("partition_key", "must be a name"))?
                        .to_owned();
                    let pv = field(f, "partition_value").cloned().unwrap_or_default();
                    facts.retain(|fact| field(&fact.value(), &pk).is_some_and(|v| same(v, &pv)));
                }
                facts
            }
            Some(f) if field(f, "partition_key").is_some() => {
                return Err(ProtocolError::missing("filter.store"));
            }
            _ => self.store.fact_log_all(from, to),
        };
        Ok(facts.iter().map(fact_packet).collect())
    }

    /// `sync_hub_profile(as_of:, cursor: {kind: :timestamp, value:}, stores:)`.
    pub fn sync_hub_profile(&self, p: &Value) -> Result<SyncProfile, ProtocolError> {
        let as_of = opt_time(p, "as_of")?;
        let cursor = match opt_map(p, "cursor")? {
            None => None,
            Some(c) => {
                match field(c, "kind").and_then(name_of) {
                    Some("timestamp") | None => {}
                    Some(other) => {
                        return Err(ProtocolError::invalid(
                            "cursor",
                            format!("unsupported cursor kind: {other} (supported: timestamp)"),
                        ))
                    }
                }
                Some(opt_time(c, "value")?.ok_or_else(|| ProtocolError::missing("cursor.value"))?)
            }
        };
        let stores: Vec<String> = match field(p, "stores") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    name_of(v)
                        .map(str::to_owned)
                        .ok_or_else(|| ProtocolError::invalid("stores", "must hold names"))
                })
                .collect::<Result<_, _>>()?,
            Some(v) => vec![name_of(v)
                .ok_or_else(|| ProtocolError::invalid("stores", "must be an Array of names"))?
                .to_owned()],
        };
        let since = cursor.map(Timestamp::from_secs_f64);
        let facts: Vec<Fact> = self
            .store
            .fact_log_all(since, as_of.map(Timestamp::from_secs_f64))
            .into_iter()
            .filter(|f| since.is_none_or(|c| f.transaction_time() > c))
            .filter(|f| stores.is_empty() || stores.iter().any(|s| s == f.store()))
            .collect();
        let next = facts
            .last()
            .map(|f| f.transaction_time().as_secs_f64())
            .or(cursor);
        Ok(SyncProfile {
            mode: if cursor.is_some() {
                SyncMode::Incremental
            } else {
                SyncMode::Full
            },
            as_of,
            cursor,
            stores,
            facts: facts.iter().map(fact_packet).collect(),
            next_cursor: next,
        })
    }

    // ------------------------------------------------------------------ snapshots

    /// The descriptors as registered, by kind.
    pub fn descriptor_snapshot(&self) -> Value {
        self.registry.read().descriptor_snapshot()
    }

    /// The unified metadata snapshot: `schema_version, stores, histories, access_paths,
    /// relations, projections, commands, effects, derivations, scatters, subscriptions,
    /// retention, fact_stores` and, when the ledger has segment storage, `storage`.
    /// `stores` holds the store descriptors (as the reference); `fact_stores` names every
    /// store and history that holds facts, registered or not (reserved `__` stores aside),
    /// so a ledger written without descriptors can still be browsed.
    pub fn metadata_snapshot(&self) -> Value {
        let reg = self.registry.read();
        let graph = self.store.schema_graph();
        let fact_stores: Vec<Value> = graph
            .stores
            .iter()
            .filter(|n| !n.starts_with("__"))
            .map(|n| sym(n))
            .collect();
        let mut paths = reg.access_paths_by_store();
        for path in &graph.paths {
            let entry = obj([
                ("scope", opt_sym(path.scope_name())),
                ("store", sym(path.store_name())),
                ("lookup", path.lookup_label().cloned().unwrap_or_default()),
                ("filters", Value::Map(path.filters().to_vec())),
                ("cache_ttl", super::packet::opt_float(path.ttl())),
                ("source", sym("access_path")),
            ]);
            match paths.iter_mut().find(|(s, _)| s == path.store_name()) {
                Some((_, Value::Array(v))) => v.push(entry),
                _ => paths.push((path.store_name().to_owned(), Value::Array(vec![entry]))),
            }
        }
        // The engine's scatters include each relation's index scatter; a relation the
        // engine does not hold (a `Sources` that keeps its own index) adds its own.
        let mut scatters = self.sources.scatters(&self.store);
        for s in reg.scatters() {
            let target = field(&s, "target_store");
            if !scatters.iter().any(|t| field(t, "target_store") == target) {
                scatters.push(s);
            }
        }
        let mut derivations: Vec<Value> = reg.derivations.iter().map(|(_, d)| d.clone()).collect();
        derivations.extend(self.sources.derivations(&self.store));
        let mut snap = obj([
            ("schema_version", Value::Int(1)),
            ("stores", reg.stores.to_value()),
            ("histories", reg.histories.to_value()),
            (
                "access_paths",
                Value::Map(
                    paths
                        .into_iter()
                        .map(|(s, v)| (MapKey::sym(s), v))
                        .collect(),
                ),
            ),
            (
                "relations",
                by_name(reg.relation_metadata(), graph.relation_snapshot()),
            ),
            (
                "projections",
                by_name(reg.projections.to_value(), graph.projection_snapshot()),
            ),
            ("commands", reg.commands.to_value()),
            ("effects", reg.effects.to_value()),
            ("derivations", Value::Array(derivations)),
            ("scatters", Value::Array(scatters)),
            ("subscriptions", reg.subscriptions.to_value()),
            ("retention", self.sources.retention(&self.store)),
            ("fact_stores", Value::Array(fact_stores)),
        ]);
        if let Some(storage) = self.sources.storage_stats(&self.store, None) {
            set(&mut snap, "storage", storage);
        }
        snap
    }

    /// What an operator watches: fact and store counts, descriptor counts, the ledger's
    /// file and durability, consumer failures, the derived-state engine (rule counts and
    /// failures), retention (policies and activity), storage when segmented, and the
    /// changefeed (head and, when a buffer is attached, its counters); `alerts` repeats
    /// the changefeed's alerts.
    pub fn observability_snapshot(&self) -> Value {
        let graph = self.store.schema_graph();
        let changefeed = self.sources.changefeed(&self.store).unwrap_or_default();
        let alerts = field(&changefeed, "alerts")
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        let activity = self
            .sources
            .compaction_activity(&self.store, &ActivityQuery::default());
        obj([
            ("schema_version", Value::Int(1)),
            ("kind", sym("observability_snapshot")),
            ("generated_at", Value::Float(now())),
            ("fact_count", Value::Int(self.store.fact_count() as i64)),
            ("store_count", Value::Int(graph.stores.len() as i64)),
            (
                "stores",
                Value::Array(graph.stores.iter().map(|s| sym(s)).collect()),
            ),
            (
                "backend",
                sym(if self.store.path().is_some() {
                    "file"
                } else {
                    "memory"
                }),
            ),
            (
                "path",
                opt_str(self.store.path().map(|p| p.display().to_string())),
            ),
            (
                "durability",
                sym(&format!("{:?}", self.store.durability()).to_lowercase()),
            ),
            ("closed", Value::Bool(self.store.is_closed())),
            (
                "consumer_failures",
                Value::Int(self.store.consumer_failures() as i64),
            ),
            ("descriptors", self.registry.read().counts()),
            ("access_path_count", Value::Int(graph.paths.len() as i64)),
            (
                "derived",
                obj([
                    ("derivations", Value::Int(graph.derivations.len() as i64)),
                    ("scatters", Value::Int(graph.scatters.len() as i64)),
                    ("relations", Value::Int(graph.relations.len() as i64)),
                    ("projections", Value::Int(graph.projections.len() as i64)),
                    (
                        "failures",
                        Value::Int(self.store.derivation_failures() as i64),
                    ),
                    (
                        "last_failure",
                        opt_str(self.store.last_derivation_failure()),
                    ),
                ]),
            ),
            (
                "retention",
                obj([
                    ("policies", self.sources.retention(&self.store)),
                    ("activity_count", Value::Int(activity.len() as i64)),
                    (
                        "last_activity",
                        activity.last().cloned().unwrap_or_default(),
                    ),
                ]),
            ),
            (
                "storage",
                self.sources
                    .storage_stats(&self.store, None)
                    .unwrap_or_default(),
            ),
            ("changefeed", changefeed),
            ("alerts", alerts),
        ])
    }

    /// `storage_stats(store:)`: segment storage statistics, or None when the ledger has
    /// no segment storage.
    pub fn storage_stats(&self, p: &Value) -> Result<Option<Value>, ProtocolError> {
        let store = opt_name(p, "store")?;
        Ok(self.sources.storage_stats(&self.store, store))
    }

    /// `segment_manifest(store:)`: the segment manifest, or None without segment storage.
    pub fn segment_manifest(&self, p: &Value) -> Result<Option<Value>, ProtocolError> {
        let store = opt_name(p, "store")?;
        Ok(self.sources.segment_manifest(&self.store, store))
    }

    /// `compaction_activity(store:, kind:, since:, limit:)`:
    /// `{schema_version, generated_at, filters, activity, count}`.
    pub fn compaction_activity(&self, p: &Value) -> Result<Value, ProtocolError> {
        let q = ActivityQuery {
            store: opt_name(p, "store")?.map(str::to_owned),
            kind: opt_name(p, "kind")?.map(str::to_owned),
            since: opt_time(p, "since")?,
            limit: opt_count(p, "limit")?,
        };
        let activity = self.sources.compaction_activity(&self.store, &q);
        Ok(obj([
            ("schema_version", Value::Int(1)),
            ("generated_at", Value::Float(now())),
            (
                "filters",
                obj([
                    ("store", opt_sym(q.store.as_deref())),
                    ("kind", opt_sym(q.kind.as_deref())),
                    ("since", super::packet::opt_float(q.since)),
                    (
                        "limit",
                        q.limit.map_or(Value::Nil, |n| Value::Int(n as i64)),
                    ),
                ]),
            ),
            ("count", Value::Int(activity.len() as i64)),
            ("activity", Value::Array(activity)),
        ]))
    }
}

/// `{name => entry}` maps merged: the descriptors' entries, then the engine's entries
/// whose names no descriptor took (relations and projections registered on the ledger
/// directly).
fn by_name(descriptors: Value, engine: Value) -> Value {
    let Value::Map(mut pairs) = descriptors else {
        return engine;
    };
    if let Value::Map(engine) = engine {
        for (k, v) in engine {
            if !pairs.iter().any(|(n, _)| *n == k) {
                pairs.push((k, v));
            }
        }
    }
    Value::Map(pairs)
}

/// A fact as a packet: `{schema_version, kind: :fact, id, store, key, value, value_hash,
/// causation, transaction_time, valid_time, producer, derivation}`.
pub fn fact_packet(f: &Fact) -> Value {
    obj([
        ("schema_version", Value::Int(f.schema_version() as i64)),
        ("kind", sym("fact")),
        ("id", Value::Str(f.id().to_string())),
        ("store", sym(f.store())),
        ("key", Value::Str(f.key().to_owned())),
        ("value", f.value()),
        ("value_hash", Value::Str(f.value_hash_hex())),
        ("causation", opt_str(f.causation().map(|c| c.to_string()))),
        (
            "transaction_time",
            Value::Float(f.transaction_time().as_secs_f64()),
        ),
        ("valid_time", super::packet::opt_float(f.valid_time())),
        ("producer", f.producer().unwrap_or_default()),
        ("derivation", f.derivation().unwrap_or_default()),
    ])
}

/// Items as `[{key:, value:}]`.
pub fn items_value(items: &[Item]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|i| {
                obj([
                    ("key", Value::Str(i.key.clone())),
                    ("value", i.value.clone()),
                ])
            })
            .collect(),
    )
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn schema_version(p: &Value) -> Result<Option<u32>, ProtocolError> {
    match field(p, "schema_version") {
        None => Ok(None),
        Some(Value::Int(i)) if *i >= 0 && *i <= u32::MAX as i64 => Ok(Some(*i as u32)),
        Some(v) => Err(ProtocolError::invalid(
            "schema_version",
            format!("must be a non-negative Integer, got {}", v.type_name()),
        )),
    }
}

fn opt_uuid(p: &Value, name: &str) -> Result<Option<Uuid>, ProtocolError> {
    match field(p, name) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(Some)
            .ok_or_else(|| ProtocolError::invalid(name, "must be a fact id (UUID String)")),
    }
}

/// `order:` as (field, descending).
fn order_of(p: &Value) -> Result<Option<(String, bool)>, ProtocolError> {
    match field(p, "order") {
        None => Ok(None),
        Some(v) if name_of(v).is_some() => Ok(name_of(v).map(|n| (n.to_owned(), false))),
        Some(Value::Map(pairs)) if pairs.len() == 1 => {
            let (k, dir) = &pairs[0];
            let name = match k {
                MapKey::Sym(s) | MapKey::Str(s) => s.clone(),
                MapKey::Int(i) => i.to_string(),
            };
            match name_of(dir) {
                Some("asc") => Ok(Some((name, false))),
                Some("desc") => Ok(Some((name, true))),
                _ => Err(ProtocolError::invalid(
                    "order",
                    "direction must be :asc or :desc",
                )),
            }
        }
        Some(_) => Err(ProtocolError::invalid(
            "order",
            "must be a field name or {field => :asc|:desc}",
        )),
    }
}
