//! `SegmentedFileBackend` (the segment directory on its own, the reference's backend
//! API) and the segment methods of `LedgerStore` (`_open_segmented`, storage reports,
//! purge). Thin: options in as plain values, reports out as JSON text that the Ruby
//! layer parses (their keys are Strings, as the reference's are).

use std::sync::Mutex;

use igniter_ledger::retention::{RetentionPolicy, Strategy};
use igniter_ledger::segments::{
    FlushPolicy, SegmentCodec, SegmentOptions, SegmentedBackend, TimeBucket, COMPACT_BATCH_SIZE,
    MANIFEST_SUFFIX, PURGED_SUFFIX, QUARANTINE_SUFFIX,
};
use igniter_ledger::{Durability, LedgerStore, OpenOptions};
use magnus::{
    function, method, prelude::*, typed_data::Obj, Error, RArray, RClass, RModule, Ruby,
    Value as RValue,
};

use crate::fact::FactObj;
use crate::store::StoreObj;
use crate::{errors, gvl};

/// `[max_bytes, time_bucket, codec, [[store, codec]...], [[store, strategy, duration]...],
/// flush, every_n, durability]`, as `segmented.rb` builds it.
type OptsArg = (
    i64,
    String,
    String,
    Vec<(String, String)>,
    Vec<(String, String, Option<f64>)>,
    String,
    i64,
    String,
);

fn err(ruby: &Ruby) -> impl Fn(igniter_ledger::Error) -> Error + '_ {
    move |e| errors::ledger_error(ruby, e)
}

fn options(ruby: &Ruby, o: OptsArg) -> Result<SegmentOptions, Error> {
    let (max_bytes, bucket, codec, codecs, retention, flush, every_n, durability) = o;
    let e = err(ruby);
    let mut opts = SegmentOptions::new()
        .max_bytes(max_bytes)
        .map_err(&e)?
        .time_bucket(TimeBucket::parse(&bucket).map_err(&e)?)
        .codec(SegmentCodec::parse(&codec).map_err(&e)?)
        .durability(Durability::parse(&durability).map_err(|_| {
            e(igniter_ledger::Error::InvalidArgument(format!(
                "durability must be :fsync, :flush or :none, got {durability:?}"
            )))
        })?);
    for (store, c) in codecs {
        opts = opts.store_codec(store, SegmentCodec::parse(&c).map_err(&e)?);
    }
    for (store, s, d) in retention {
        let p = RetentionPolicy::new(Strategy::parse(&s).map_err(&e)?, d).map_err(&e)?;
        opts = opts.retention(store, p);
    }
    let flush = match flush.as_str() {
        "batch" => FlushPolicy::Batch,
        "on_write" => FlushPolicy::OnWrite,
        "every_n" => FlushPolicy::EveryN(u32::try_from(every_n).unwrap_or(0)),
        other => {
            return Err(e(igniter_ledger::Error::InvalidArgument(format!(
                "flush must be :batch, :on_write or {{every_n: N}}, got {other:?}"
            ))))
        }
    };
    opts.flush(flush).map_err(&e)
}

/// The data behind a `SegmentedFileBackend`.
#[magnus::wrap(class = "Igniter::Store::SegmentedFileBackend", free_immediately, size)]
struct BackendObj(Mutex<SegmentedBackend>);

impl BackendObj {
    fn with<R>(&self, f: impl FnOnce(&mut SegmentedBackend) -> R) -> R {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
}

fn json(v: serde_json::Value) -> String {
    v.to_string()
}

fn backend_new(ruby: &Ruby, root: String, o: OptsArg) -> Result<BackendObj, Error> {
    let opts = options(ruby, o)?;
    let b = gvl::without_gvl(move || SegmentedBackend::open(root, opts))
        .map_err(|m| errors::internal(ruby, "open", m))?
        .map_err(err(ruby))?;
    Ok(BackendObj(Mutex::new(b)))
}

fn write_fact(ruby: &Ruby, b: &BackendObj, fact: RValue) -> Result<(), Error> {
    let f = <&FactObj>::try_convert(fact).map_err(|_| {
        Error::new(
            ruby.exception_type_error(),
            "write_fact needs an Igniter::Store::Fact",
        )
    })?;
    let fact = f.fact.clone();
    let append = move || b.with(|b| b.append(std::slice::from_ref(&fact)));
    if b.with(|b| b.durability()) == Durability::Fsync {
        // Waits for fsync: other Ruby threads run meanwhile.
        gvl::without_gvl(append).map_err(|m| errors::internal(ruby, "write_fact", m))?
    } else {
        append()
    }
    .map_err(err(ruby))
}

fn replay(
    ruby: &Ruby,
    b: &BackendObj,
    store: Option<String>,
    since: Option<f64>,
    as_of: Option<f64>,
) -> Result<RArray, Error> {
    let facts = b
        .with(|b| b.replay(store.as_deref(), since, as_of))
        .map_err(err(ruby))?;
    let out = ruby.ary_new_capa(facts.len());
    for f in facts {
        out.push(FactObj::wrap_raw(ruby, f))?;
    }
    Ok(out)
}

fn checkpoint(ruby: &Ruby, b: &BackendObj) -> Result<(), Error> {
    b.with(|b| b.checkpoint()).map_err(err(ruby))
}

fn close(ruby: &Ruby, b: &BackendObj) -> Result<(), Error> {
    b.with(|b| b.close()).map_err(err(ruby))
}

fn abandon(b: &BackendObj, store: String) {
    b.with(|b| b.abandon(&store))
}

fn segment_count(b: &BackendObj) -> usize {
    b.with(|b| b.segment_count())
}

fn store_names(b: &BackendObj) -> Vec<String> {
    b.with(|b| b.store_names())
}

fn set_retention(
    ruby: &Ruby,
    b: &BackendObj,
    store: String,
    strategy: String,
    duration: Option<f64>,
) -> Result<(), Error> {
    let e = err(ruby);
    let p = RetentionPolicy::new(Strategy::parse(&strategy).map_err(&e)?, duration).map_err(&e)?;
    b.with(|b| b.set_retention(&store, p));
    Ok(())
}

fn purge(ruby: &Ruby, b: &BackendObj, store: Option<String>) -> Result<String, Error> {
    let r = b.with(|b| b.purge(store.as_deref())).map_err(err(ruby))?;
    Ok(json(serde_json::Value::Array(r)))
}

fn purge_receipts(
    b: &BackendObj,
    store: Option<String>,
    since: Option<f64>,
    until: Option<f64>,
    limit: Option<usize>,
) -> String {
    json(serde_json::Value::Array(b.with(|b| {
        b.purge_receipts(store.as_deref(), since, until, limit)
    })))
}

fn quarantine_receipts(b: &BackendObj, store: Option<String>) -> String {
    json(serde_json::Value::Array(
        b.with(|b| b.quarantine_receipts(store.as_deref())),
    ))
}

fn durability_snapshot(b: &BackendObj) -> String {
    json(b.with(|b| b.durability_snapshot()))
}

fn storage_stats(b: &BackendObj, store: Option<String>) -> String {
    json(b.with(|b| b.storage_stats(store.as_deref())))
}

fn segment_manifest(b: &BackendObj, store: Option<String>) -> String {
    json(b.with(|b| b.segment_manifest(store.as_deref())))
}

// ------------------------------------------------------------------ LedgerStore

#[allow(clippy::too_many_arguments)]
fn open_segmented(
    ruby: &Ruby,
    klass: RClass,
    root: String,
    o: OptsArg,
    cache_entries: usize,
    slice_handles: usize,
    hash_keys: String,
) -> Result<Obj<StoreObj>, Error> {
    crate::store::check_class(ruby, klass)?;
    let opts = options(ruby, o)?;
    let lopts = OpenOptions::new().hash_keys(crate::store::hash_keys_arg(ruby, hash_keys)?);
    let ledger = gvl::without_gvl(move || LedgerStore::open_segmented_with(root, opts, lopts))
        .map_err(|m| errors::internal(ruby, "open", m))?
        .map_err(err(ruby))?;
    Ok(ruby.obj_wrap_as(StoreObj::new(ledger, cache_entries, slice_handles), klass))
}

/// `_segments_json(kind, store)`: "stats" | "manifest" | "durability"; nil when the
/// ledger is not segmented.
fn store_segments_json(s: &StoreObj, kind: String, store: Option<String>) -> Option<String> {
    let l = s.ledger();
    match kind.as_str() {
        "stats" => l.storage_stats(store.as_deref()).map(json),
        "manifest" => l.segment_manifest(store.as_deref()).map(json),
        _ => l.with_segments(|b| json(b.durability_snapshot())),
    }
}

fn store_purge_segments(ruby: &Ruby, s: &StoreObj, store: Option<String>) -> Result<String, Error> {
    let r = s
        .ledger()
        .purge_segments(store.as_deref())
        .map_err(err(ruby))?;
    Ok(json(serde_json::Value::Array(r)))
}

fn store_seal_segments(ruby: &Ruby, s: &StoreObj) -> Result<(), Error> {
    s.ledger().seal_segments().map_err(err(ruby))
}

fn store_is_segmented(s: &StoreObj) -> bool {
    s.ledger().is_segmented()
}

/// Defines `SegmentedFileBackend`, its constants, and the segment methods of the store
/// class.
pub fn init(ruby: &Ruby, ledger: RModule, store_class: RClass) -> Result<(), Error> {
    let c = ledger.define_class("SegmentedFileBackend", ruby.class_object())?;
    c.const_set("MANIFEST_SUFFIX", MANIFEST_SUFFIX)?;
    c.const_set("PURGED_SUFFIX", PURGED_SUFFIX)?;
    c.const_set("QUARANTINE_SUFFIX", QUARANTINE_SUFFIX)?;
    c.define_singleton_method("_new", function!(backend_new, 2))?;
    c.define_private_method("_write_fact", method!(write_fact, 1))?;
    c.define_private_method("_replay", method!(replay, 3))?;
    c.define_private_method("_checkpoint", method!(checkpoint, 0))?;
    c.define_private_method("_close", method!(close, 0))?;
    c.define_private_method("_abandon", method!(abandon, 1))?;
    c.define_method("segment_count", method!(segment_count, 0))?;
    c.define_method("stored_store_names", method!(store_names, 0))?;
    c.define_private_method("_set_retention", method!(set_retention, 3))?;
    c.define_private_method("_purge", method!(purge, 1))?;
    c.define_private_method("_purge_receipts", method!(purge_receipts, 4))?;
    c.define_private_method("_quarantine_receipts", method!(quarantine_receipts, 1))?;
    c.define_private_method("_durability_snapshot", method!(durability_snapshot, 0))?;
    c.define_private_method("_storage_stats", method!(storage_stats, 1))?;
    c.define_private_method("_segment_manifest", method!(segment_manifest, 1))?;

    let codecs = ledger.define_module("Codecs")?;
    let cd = codecs.define_class("CompactDelta", ruby.class_object())?;
    cd.const_set("BATCH_SIZE", COMPACT_BATCH_SIZE)?;

    store_class.define_singleton_method("_open_segmented", function!(open_segmented, 6))?;
    store_class.define_private_method("_segments_json", method!(store_segments_json, 2))?;
    store_class.define_private_method("_purge_segments", method!(store_purge_segments, 1))?;
    store_class.define_private_method("_seal_segments", method!(store_seal_segments, 0))?;
    store_class.define_method("segmented?", method!(store_is_segmented, 0))?;
    Ok(())
}
