//! Immutable facts and their on-disk record encoding.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use super::codec::{self, DecodeError, Reader};
use super::error::{Error, Result};
use super::time::Timestamp;
use super::value::{limits, Value};
pub(crate) use crate::segments::values::Located;

/// One immutable fact: a value of (store, key) at a transaction time.
///
/// `Fact` is a cheap handle (one `Arc`): cloning it copies a pointer. The value is kept
/// in its encoded form; [`Fact::value`] decodes it on each call. A fact loaded from a
/// sealed segment keeps only its id, time and key in memory: its value and metadata are
/// read back from the segment when asked for (see `crate::segments`), and
/// [`Fact::try_value`] reports a segment that can no longer be read.
///
/// ```
/// use igniter_ledger::{Fact, Value, Write};
/// let f = Fact::build(Write::new("notes", "n1", Value::from("hi"))).unwrap();
/// assert_eq!(f.store(), "notes");
/// assert_eq!(f.value(), Value::from("hi"));
/// assert_eq!(f.value_hash_hex().len(), 64);
/// ```
#[derive(Clone)]
pub struct Fact(pub(crate) Arc<FactData>);

/// What every fact keeps in memory: what the indexes need (id, time, key) and where the
/// rest is. 56 bytes.
pub(crate) struct FactData {
    pub(crate) id: Uuid,
    pub(crate) tx: Timestamp,
    pub(crate) key: Arc<str>,
    pub(crate) body: Body,
}

/// The rest of a fact: in memory, or in a sealed segment.
pub(crate) enum Body {
    Resident(Box<Resident>),
    Located(Located),
}

const _: () = assert!(std::mem::size_of::<FactData>() == 56);

/// The fields of a fact held in memory.
pub(crate) struct Resident {
    pub(crate) store: Arc<str>,
    pub(crate) value: Box<[u8]>,
    /// Nil UUID means "no causation".
    pub(crate) causation: Uuid,
    /// NaN means "no valid time".
    pub(crate) valid: f64,
    pub(crate) schema_version: u32,
    pub(crate) extra: Option<Box<Extra>>,
}

/// Rarely set fields, kept out of line to keep the common fact small.
#[derive(Clone)]
pub(crate) struct Extra {
    pub(crate) producer: Option<Box<[u8]>>,
    pub(crate) derivation: Option<Box<[u8]>>,
}

impl FactData {
    pub(crate) fn resident(id: Uuid, tx: Timestamp, key: Arc<str>, r: Resident) -> FactData {
        FactData {
            id,
            tx,
            key,
            body: Body::Resident(Box::new(r)),
        }
    }
}

/// The fallback when a located fact's segment cannot be read (see [`Fact::try_value`]).
static UNREADABLE: std::sync::LazyLock<Resident> = std::sync::LazyLock::new(|| Resident {
    store: Arc::from("?"),
    value: Box::from(&NIL_BYTES[..]),
    causation: Uuid::nil(),
    valid: f64::NAN,
    schema_version: 0,
    extra: None,
});

/// A fact's resident fields, borrowed or fetched from its segment.
pub(crate) enum ResidentRef<'a> {
    Here(&'a Resident),
    Fetched(Fact),
}

impl std::ops::Deref for ResidentRef<'_> {
    type Target = Resident;
    fn deref(&self) -> &Resident {
        match self {
            ResidentRef::Here(r) => r,
            ResidentRef::Fetched(f) => match &f.0.body {
                Body::Resident(r) => r,
                // A fetched fact is always resident.
                Body::Located(_) => &UNREADABLE,
            },
        }
    }
}

impl Fact {
    /// The fields of this fact, fetched from its segment when it is located.
    pub(crate) fn try_resident(&self) -> Result<ResidentRef<'_>> {
        match &self.0.body {
            Body::Resident(r) => Ok(ResidentRef::Here(r)),
            Body::Located(l) => l.fetch(self.0.id).map(ResidentRef::Fetched),
        }
    }

    /// [`Fact::try_resident`], or the nil fallback when the segment cannot be read.
    fn res(&self) -> ResidentRef<'_> {
        self.try_resident()
            .unwrap_or(ResidentRef::Here(&UNREADABLE))
    }

    /// Bytes of the value held in memory (0 for a located fact: reading nothing, so
    /// cheap enough for a garbage collector's size callback).
    pub fn resident_value_len(&self) -> usize {
        match &self.0.body {
            Body::Resident(r) => r.value.len(),
            Body::Located(_) => 0,
        }
    }

    /// True when the fact's value and metadata live in a sealed segment (read back when
    /// asked for) rather than in memory.
    pub fn is_located(&self) -> bool {
        matches!(self.0.body, Body::Located(_))
    }

    /// A copy of this fact with everything in memory (a located fact's fields are read
    /// from its segment and checked).
    pub fn detach(&self) -> Result<Fact> {
        match &self.0.body {
            Body::Resident(_) => Ok(self.clone()),
            Body::Located(l) => {
                let f = l.fetch(self.0.id)?;
                Ok(with_tx_key(&f, self.0.tx, self.0.key.clone()))
            }
        }
    }

    /// The fact's id (UUID v7 for facts written by this ledger: time-ordered).
    pub fn id(&self) -> Uuid {
        self.0.id
    }
    /// Store (or history) name.
    pub fn store(&self) -> &str {
        self.store_arc()
    }
    /// The shared store name.
    pub fn store_arc(&self) -> &Arc<str> {
        match &self.0.body {
            Body::Resident(r) => &r.store,
            Body::Located(l) => l.store(),
        }
    }
    /// Key.
    pub fn key(&self) -> &str {
        &self.0.key
    }
    /// The shared key.
    pub fn key_arc(&self) -> &Arc<str> {
        &self.0.key
    }
    /// The value, decoded from its stored bytes (nil for an erased fact, and for a
    /// located fact whose segment can no longer be read: [`Fact::try_value`] says why).
    pub fn value(&self) -> Value {
        // The bytes were validated when the fact was built or loaded.
        codec::decode_value(&self.value_bytes()).unwrap_or_default()
    }
    /// The value, or the error met reading it from its segment (a located fact whose
    /// segment is gone or damaged: the bytes read must match the value hash recorded
    /// when the segment was sealed).
    pub fn try_value(&self) -> Result<Value> {
        let b = self.try_value_bytes()?;
        codec::decode_value(&b).map_err(|e| Error::Corruption {
            path: std::path::PathBuf::new(),
            offset: 0,
            reason: format!("value of fact {} does not decode: {}", self.0.id, e.0),
        })
    }
    /// The value's MessagePack bytes (Symbols as extension type 1, maps in insertion
    /// order; [`Fact::value`] decodes them); nil's for an erased fact (and for a located
    /// fact whose segment cannot be read: see [`Fact::try_value_bytes`]).
    pub fn value_bytes(&self) -> Cow<'_, [u8]> {
        self.try_value_bytes()
            .unwrap_or(Cow::Borrowed(&NIL_BYTES[..]))
    }
    /// [`Fact::value_bytes`], or the error met reading them from the fact's segment.
    pub fn try_value_bytes(&self) -> Result<Cow<'_, [u8]>> {
        Ok(match self.try_resident()? {
            ResidentRef::Here(r) => Cow::Borrowed(stored_or_nil(&r.value)),
            ResidentRef::Fetched(f) => Cow::Owned(f.value_bytes().into_owned()),
        })
    }
    /// True when the fact's value was erased (see `crate::retention`): its id, value
    /// hash, causation, times and metadata remain; its value reads as nil.
    pub fn is_erased(&self) -> bool {
        is_tombstone_value(&self.res().value)
    }
    /// blake3 of the value's canonical encoding (all zeros for a located fact whose
    /// segment index cannot be read: [`Fact::try_value_hash`] says why).
    pub fn value_hash(&self) -> [u8; 32] {
        match &self.0.body {
            Body::Located(l) => l.value_hash(self.0.id).unwrap_or([0; 32]),
            Body::Resident(r) => value_hash_of(&r.value),
        }
    }
    /// [`Fact::value_hash`], or the error met reading it from the fact's segment index.
    pub fn try_value_hash(&self) -> Result<[u8; 32]> {
        match &self.0.body {
            Body::Located(l) => l.value_hash(self.0.id),
            Body::Resident(r) => Ok(value_hash_of(&r.value)),
        }
    }
    /// The value hash as 64 lowercase hex characters.
    pub fn value_hash_hex(&self) -> String {
        hex(&self.value_hash())
    }
    /// The fact this one follows (for `write`: the previous fact of the same key).
    pub fn causation(&self) -> Option<Uuid> {
        let c = self.res().causation;
        (!c.is_nil()).then_some(c)
    }
    /// Commit time.
    pub fn transaction_time(&self) -> Timestamp {
        self.0.tx
    }
    /// Domain time, if given.
    pub fn valid_time(&self) -> Option<f64> {
        let v = self.res().valid;
        (!v.is_nan()).then_some(v)
    }
    /// The valid time, or the transaction time for facts without one.
    pub fn effective_valid_time(&self) -> f64 {
        self.valid_time().unwrap_or_else(|| self.0.tx.as_secs_f64())
    }
    /// Schema version of the value.
    pub fn schema_version(&self) -> u32 {
        self.res().schema_version
    }
    /// Who wrote it, if recorded.
    pub fn producer(&self) -> Option<Value> {
        self.producer_bytes()
            .map(|b| codec::decode_value(&b).unwrap_or_default())
    }
    /// What it was derived from, if recorded.
    pub fn derivation(&self) -> Option<Value> {
        self.derivation_bytes()
            .map(|b| codec::decode_value(&b).unwrap_or_default())
    }
    /// Encoded producer bytes, if any.
    pub fn producer_bytes(&self) -> Option<Cow<'_, [u8]>> {
        self.extra_bytes(|e| e.producer.as_deref())
    }
    /// Encoded derivation bytes, if any.
    pub fn derivation_bytes(&self) -> Option<Cow<'_, [u8]>> {
        self.extra_bytes(|e| e.derivation.as_deref())
    }
    fn extra_bytes(&self, pick: impl Fn(&Extra) -> Option<&[u8]>) -> Option<Cow<'_, [u8]>> {
        match self.res() {
            ResidentRef::Here(r) => r.extra.as_deref().and_then(pick).map(Cow::Borrowed),
            ResidentRef::Fetched(f) => match &f.0.body {
                Body::Resident(r) => r
                    .extra
                    .as_deref()
                    .and_then(pick)
                    .map(|b| Cow::Owned(b.to_vec())),
                Body::Located(_) => None,
            },
        }
    }
    /// True when both handles point at the same fact record.
    pub fn same_record(&self, other: &Fact) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Builds a standalone fact (not stored anywhere) stamped with the current time and a
    /// fresh id. `expected` on the request is ignored.
    pub fn build(w: super::request::Write) -> Result<Fact> {
        let tx = Timestamp::now();
        let causation = w.causation;
        FactDraft::from_write(w)?.seal(new_id(tx), tx, causation)
    }
}

/// The stored value bytes, or nil's for an erased value.
fn stored_or_nil(b: &[u8]) -> &[u8] {
    if is_tombstone_value(b) {
        &NIL_BYTES
    } else {
        b
    }
}

/// The value hash of stored value bytes (the recorded hash of a tombstone).
pub(crate) fn value_hash_of(b: &[u8]) -> [u8; 32] {
    match tombstone_hash(b) {
        Some(h) => h,
        None => codec::hash_stored(b),
    }
}

/// A resident copy of `f` with another transaction time and key (the same name).
pub(crate) fn with_tx_key(f: &Fact, tx: Timestamp, key: Arc<str>) -> Fact {
    let r = f.res();
    Fact(Arc::new(FactData::resident(
        f.0.id,
        tx,
        key,
        Resident {
            store: f.store_arc().clone(),
            value: r.value.clone(),
            causation: r.causation,
            valid: r.valid,
            schema_version: r.schema_version,
            extra: r.extra.clone(),
        },
    )))
}

/// The parts of a fact recorded elsewhere (an export, another ledger, the 0.5.x gem's
/// `Fact#to_h`), for [`Fact::restore`].
#[derive(Clone, Debug)]
pub struct FactParts {
    /// The fact's id (see [`Fact::id_from_str`] for ids that are not UUIDs).
    pub id: Uuid,
    /// Store (or history) name.
    pub store: String,
    /// Key.
    pub key: String,
    /// Value.
    pub value: Value,
    /// The previous fact of the key, if any.
    pub causation: Option<Uuid>,
    /// When it was recorded.
    pub transaction_time: Timestamp,
    /// When it holds in the world (seconds), if given.
    pub valid_time: Option<f64>,
    /// Schema version of the value.
    pub schema_version: u32,
    /// Who produced it.
    pub producer: Option<Value>,
    /// How it was derived.
    pub derivation: Option<Value>,
}

impl Fact {
    /// A standalone fact with the given id, times and causation (stored nowhere). The
    /// value, names and metadata are validated as for a write; the value hash is
    /// recomputed from the value (a hash recorded elsewhere is not trusted).
    ///
    /// ```
    /// use igniter_ledger::{Fact, FactParts, Timestamp, Value};
    /// let id = Fact::id_from_str("fact-1");
    /// let f = Fact::restore(FactParts {
    ///     id, store: "items".into(), key: "a".into(), value: Value::from(1),
    ///     causation: None, transaction_time: Timestamp::from_secs_f64(1_714_200_000.0),
    ///     valid_time: Some(1_714_200_123.5), schema_version: 1, producer: None, derivation: None,
    /// }).unwrap();
    /// assert_eq!(f.id(), id);
    /// assert_eq!(f.transaction_time().as_secs_f64(), 1_714_200_000.0);
    /// ```
    pub fn restore(p: FactParts) -> Result<Fact> {
        let draft = FactDraft::new(
            p.store,
            p.key,
            &p.value,
            p.valid_time,
            p.schema_version,
            p.producer.as_ref(),
            p.derivation.as_ref(),
            "value",
        )?;
        draft.seal(p.id, p.transaction_time, p.causation)
    }

    /// This fact's parts (the value, producer and derivation decoded), e.g. to restore it
    /// into another ledger with [`crate::Write::restoring`].
    pub fn to_parts(&self) -> FactParts {
        FactParts {
            id: self.id(),
            store: self.store().to_owned(),
            key: self.key().to_owned(),
            value: self.value(),
            causation: self.causation(),
            transaction_time: self.transaction_time(),
            valid_time: self.valid_time(),
            schema_version: self.schema_version(),
            producer: self.producer(),
            derivation: self.derivation(),
        }
    }

    /// The id a fact recorded elsewhere keeps: the UUID itself when `s` is one; otherwise
    /// a name-based UUID (version 8, from the blake3 hash of `s`), the same for the same
    /// string, so links between restored facts (`causation`) stay consistent.
    pub fn id_from_str(s: &str) -> Uuid {
        if let Ok(u) = Uuid::try_parse(s) {
            return u;
        }
        let h = blake3::hash(s.as_bytes());
        let mut b = [0u8; 16];
        b.copy_from_slice(&h.as_bytes()[..16]);
        uuid::Builder::from_custom_bytes(b).into_uuid()
    }
}

impl PartialEq for Fact {
    /// Facts are equal when they have the same id and the same content.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&*self.0, &*other.0);
        if std::ptr::eq(a, b) {
            return true;
        }
        if !(a.id == b.id && a.tx == b.tx && self.store() == other.store() && a.key == b.key) {
            return false;
        }
        let (ra, rb) = (self.res(), other.res());
        self.value_hash() == other.value_hash()
            && ra.causation == rb.causation
            && ra.schema_version == rb.schema_version
            && ra.valid.to_bits() == rb.valid.to_bits()
    }
}

impl fmt::Debug for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fact")
            .field("id", &self.id())
            .field("store", &self.store())
            .field("key", &self.key())
            .field("value", &self.value())
            .field("transaction_time", &self.transaction_time())
            .field("valid_time", &self.valid_time())
            .field("causation", &self.causation())
            .field("schema_version", &self.schema_version())
            .finish()
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// A fresh UUID v7 whose timestamp part carries `tx` to the microsecond (RFC 9562,
/// "replace leftmost random bits with increased clock precision"): since transaction
/// times are strictly increasing, ids written by one ledger are strictly increasing too.
pub(crate) fn new_id(tx: Timestamp) -> Uuid {
    let us = tx.as_micros().max(0) as u64;
    let ms = us / 1000;
    let sub = (us % 1000) as u16; // 0..999 fits in 10 bits
    let rand: u64 = fastrand::u64(..);
    let mut b = [0u8; 16];
    b[0..6].copy_from_slice(&ms.to_be_bytes()[2..8]);
    // version 7 in the high nibble; 12 bits rand_a = sub-millisecond micros << 2 | 2 random bits
    let rand_a: u16 = (sub << 2) | ((rand >> 62) as u16 & 0b11);
    b[6] = 0x70 | ((rand_a >> 8) as u8 & 0x0f);
    b[7] = rand_a as u8;
    let rb = rand.to_be_bytes();
    b[8..16].copy_from_slice(&rb);
    b[8] = 0x80 | (b[8] & 0x3f); // variant 10
    Uuid::from_bytes(b)
}

/// A validated, encoded fact that has not yet been given its id and time. The names stay
/// plain strings until sealing, which shares the index's copies when they exist.
pub(crate) struct FactDraft {
    pub(crate) store: String,
    pub(crate) key: String,
    pub(crate) value: Vec<u8>,
    pub(crate) valid: f64,
    pub(crate) schema_version: u32,
    pub(crate) producer: Option<Vec<u8>>,
    pub(crate) derivation: Option<Vec<u8>>,
}

pub(crate) fn check_store_name(store: &str) -> Result<()> {
    if store.is_empty() {
        return Err(Error::InvalidArgument(
            "store name must not be empty".into(),
        ));
    }
    if store.len() > limits::MAX_STORE_NAME_BYTES {
        return Err(Error::InvalidArgument(format!(
            "store name is {} bytes; the limit is {}",
            store.len(),
            limits::MAX_STORE_NAME_BYTES
        )));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<()> {
    if key.len() > limits::MAX_KEY_BYTES {
        return Err(Error::InvalidArgument(format!(
            "key is {} bytes; the limit is {}",
            key.len(),
            limits::MAX_KEY_BYTES
        )));
    }
    Ok(())
}

fn encode_checked(v: &Value, what: &str) -> Result<codec::EncodedValue> {
    v.validate(what)?;
    let e = codec::encode_value(v);
    if e.bytes.len() > limits::MAX_VALUE_BYTES {
        return Err(Error::InvalidValue {
            path: what.to_owned(),
            reason: format!(
                "encodes to {} bytes; the limit is {}",
                e.bytes.len(),
                limits::MAX_VALUE_BYTES
            ),
        });
    }
    Ok(e)
}

fn encode_meta(v: Option<&Value>, what: &str) -> Result<Option<Vec<u8>>> {
    match v {
        None | Some(Value::Nil) => Ok(None),
        Some(v) => Ok(Some(encode_checked(v, what)?.bytes)),
    }
}

impl FactDraft {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: String,
        key: String,
        value: &Value,
        valid_time: Option<f64>,
        schema_version: u32,
        producer: Option<&Value>,
        derivation: Option<&Value>,
        value_name: &str,
    ) -> Result<Self> {
        check_store_name(&store)?;
        check_key(&key)?;
        if let Some(v) = valid_time {
            if !v.is_finite() {
                return Err(Error::InvalidArgument(format!(
                    "valid_time must be a finite number of seconds, got {v}"
                )));
            }
        }
        let e = encode_checked(value, value_name)?;
        Ok(FactDraft {
            store,
            key,
            value: e.bytes,
            valid: valid_time.unwrap_or(f64::NAN),
            schema_version,
            producer: encode_meta(producer, "producer")?,
            derivation: encode_meta(derivation, "derivation")?,
        })
    }

    pub(crate) fn from_write(mut w: super::request::Write) -> Result<Self> {
        Self::taking_names(&mut w)
    }

    /// The draft of a write, taking its store and key (the rest of `w` stays).
    pub(crate) fn taking_names(w: &mut super::request::Write) -> Result<Self> {
        FactDraft::new(
            std::mem::take(&mut w.store),
            std::mem::take(&mut w.key),
            &w.value,
            w.valid_time,
            w.schema_version,
            w.producer.as_ref(),
            w.derivation.as_ref(),
            "value",
        )
    }

    pub(crate) fn seal(self, id: Uuid, tx: Timestamp, causation: Option<Uuid>) -> Result<Fact> {
        let store = Arc::from(self.store.as_str());
        let key = Arc::from(self.key.as_str());
        self.seal_named(store, key, id, tx, causation)
    }

    /// Seals with the given (interned) names, which must equal the draft's.
    pub(crate) fn seal_named(
        self,
        store: Arc<str>,
        key: Arc<str>,
        id: Uuid,
        tx: Timestamp,
        causation: Option<Uuid>,
    ) -> Result<Fact> {
        debug_assert!(*store == *self.store && *key == *self.key);
        let extra = if self.producer.is_some() || self.derivation.is_some() {
            Some(Box::new(Extra {
                producer: self.producer.map(Vec::into_boxed_slice),
                derivation: self.derivation.map(Vec::into_boxed_slice),
            }))
        } else {
            None
        };
        Ok(Fact(Arc::new(FactData::resident(
            id,
            tx,
            key,
            Resident {
                store,
                value: self.value.into_boxed_slice(),
                causation: causation.unwrap_or(Uuid::nil()),
                valid: self.valid,
                schema_version: self.schema_version,
                extra,
            },
        ))))
    }
}

// ------------------------------------------------------------ tombstones

/// MessagePack nil: what an erased fact's value reads as.
static NIL_BYTES: [u8; 1] = [0xc0];

/// The MessagePack extension type marking an erased value in a record's value slot:
/// `ext 8` of 32 bytes, type 0x45, holding the erased value's hash. Values never use it
/// (only Symbols, type 1), and readers that do not know it reject the record rather than
/// misread it.
pub(crate) const TOMBSTONE_EXT: u8 = 0x45;
const TOMBSTONE_LEN: usize = 35;

fn is_tombstone_value(b: &[u8]) -> bool {
    b.len() == TOMBSTONE_LEN && b[0] == 0xc7 && b[1] == 32 && b[2] == TOMBSTONE_EXT
}

fn tombstone_hash(b: &[u8]) -> Option<[u8; 32]> {
    if !is_tombstone_value(b) {
        return None;
    }
    b[3..].try_into().ok()
}

impl Fact {
    /// The tombstone of this fact: the same id, store, key, causation, times, schema
    /// version, producer, derivation and value hash, without the value bytes.
    pub(crate) fn tombstone(&self) -> Fact {
        let d = &*self.0;
        let r = self.res();
        let mut marker = Vec::with_capacity(TOMBSTONE_LEN);
        marker.extend_from_slice(&[0xc7, 32, TOMBSTONE_EXT]);
        marker.extend_from_slice(&self.value_hash());
        Fact(Arc::new(FactData::resident(
            d.id,
            d.tx,
            d.key.clone(),
            Resident {
                store: self.store_arc().clone(),
                value: marker.into_boxed_slice(),
                causation: r.causation,
                valid: r.valid,
                schema_version: r.schema_version,
                extra: r.extra.clone(),
            },
        )))
    }
}

// ------------------------------------------------------------ record encoding

pub(crate) const RECORD_FIELDS: usize = 10;

/// Appends the MessagePack record of a fact:
/// `[id bin16, store str, key (str | bin16 for a canonical UUID string), value,
///   causation (nil | bin16), tx micros int, valid (nil | f64), schema int,
///   producer (nil | value), derivation (nil | value)]`.
///
/// A located fact is read back from its segment first; should that fail (the segment
/// was removed or damaged under a running ledger), its value is written as nil.
pub(crate) fn encode_record(out: &mut Vec<u8>, f: &Fact) {
    let d = &*f.0;
    let r = f.res();
    codec::write_array_len(out, RECORD_FIELDS);
    codec::write_bin(out, d.id.as_bytes());
    codec::write_str(out, f.store());
    match canonical_uuid(&d.key) {
        Some(u) => codec::write_bin(out, u.as_bytes()),
        None => codec::write_str(out, &d.key),
    }
    out.extend_from_slice(&r.value);
    if r.causation.is_nil() {
        codec::write_nil(out);
    } else {
        codec::write_bin(out, r.causation.as_bytes());
    }
    codec::write_int(out, d.tx.as_micros());
    if r.valid.is_nan() {
        codec::write_nil(out);
    } else {
        codec::write_f64(out, r.valid);
    }
    codec::write_int(out, r.schema_version as i64);
    let extra = r.extra.as_deref();
    for b in [
        extra.and_then(|e| e.producer.as_deref()),
        extra.and_then(|e| e.derivation.as_deref()),
    ] {
        match b {
            Some(b) => out.extend_from_slice(b),
            None => codec::write_nil(out),
        }
    }
}

fn canonical_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    let u = Uuid::try_parse(s).ok()?;
    let mut buf = [0u8; 36];
    (u.hyphenated().encode_lower(&mut buf).as_bytes() == s.as_bytes()).then_some(u)
}

fn uuid_from(b: &[u8], what: &str) -> Result<Uuid, DecodeError> {
    Uuid::from_slice(b).map_err(|_| DecodeError(format!("{what} is not 16 bytes")))
}

/// Interns store names and keys while decoding so repeated names share one allocation.
pub(crate) trait Interner {
    fn store(&mut self, s: &str) -> Arc<str>;
    fn key(&mut self, store: &Arc<str>, k: &str) -> Arc<str>;
}

/// An interner that shares nothing.
#[cfg(test)]
pub(crate) struct NoIntern;
#[cfg(test)]
impl Interner for NoIntern {
    fn store(&mut self, s: &str) -> Arc<str> {
        Arc::from(s)
    }
    fn key(&mut self, _: &Arc<str>, k: &str) -> Arc<str> {
        Arc::from(k)
    }
}

/// Decodes one fact record (see [`encode_record`]), validating every field.
pub(crate) fn decode_record(
    r: &mut Reader<'_>,
    intern: &mut dyn Interner,
) -> Result<Fact, DecodeError> {
    let n = r.read_array_len()?;
    if n != RECORD_FIELDS {
        return Err(DecodeError(format!(
            "fact record has {n} fields, expected {RECORD_FIELDS}"
        )));
    }
    let id = uuid_from(r.read_bin()?, "fact id")?;
    let store_s = r.read_str()?;
    if store_s.is_empty() || store_s.len() > limits::MAX_STORE_NAME_BYTES {
        return Err(DecodeError("fact store name is empty or too long".into()));
    }
    let store = intern.store(store_s);
    let key = if r.read_nil()? {
        return Err(DecodeError("fact key is nil".into()));
    } else {
        // A str key, else (a canonical UUID key) bin 16. The marker decides which is
        // tried first, so the common case builds no error.
        let start = r.pos;
        let is_str = r.at_str();
        match if is_str { r.read_str().ok() } else { None } {
            Some(s) => intern.key(&store, s),
            None => {
                r.pos = start;
                let u = uuid_from(r.read_bin()?, "fact key")?;
                let mut buf = [0u8; 36];
                let s = u.hyphenated().encode_lower(&mut buf);
                intern.key(&store, s)
            }
        }
    };
    // Validated here; hashed when first asked for. An erased value is a tombstone
    // marker holding the hash.
    let value = match r.rest() {
        rest if rest.len() >= TOMBSTONE_LEN && is_tombstone_value(&rest[..TOMBSTONE_LEN]) => {
            r.pos += TOMBSTONE_LEN;
            &rest[..TOMBSTONE_LEN]
        }
        _ => r.raw_value()?,
    };
    let causation = if r.read_nil()? {
        Uuid::nil()
    } else {
        uuid_from(r.read_bin()?, "causation")?
    };
    let tx = Timestamp::from_micros(r.read_int()?);
    let valid = if r.read_nil()? {
        f64::NAN
    } else {
        let v = r.read_f64()?;
        if !v.is_finite() {
            return Err(DecodeError("valid time is not finite".into()));
        }
        v
    };
    let sv = r.read_int()?;
    let schema_version =
        u32::try_from(sv).map_err(|_| DecodeError(format!("schema version {sv} out of range")))?;
    let mut meta = [None, None];
    for m in meta.iter_mut() {
        if !r.read_nil()? {
            *m = Some(Box::<[u8]>::from(r.raw_value()?));
        }
    }
    let [producer, derivation] = meta;
    let extra = (producer.is_some() || derivation.is_some()).then(|| {
        Box::new(Extra {
            producer,
            derivation,
        })
    });
    Ok(Fact(Arc::new(FactData::resident(
        id,
        tx,
        key,
        Resident {
            store,
            value: value.into(),
            causation,
            valid,
            schema_version,
            extra,
        },
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MapKey, Write};

    #[test]
    fn ids_follow_transaction_time() {
        let mut prev = new_id(Timestamp::from_micros(1_700_000_000_000_000));
        for i in 1..5000 {
            let id = new_id(Timestamp::from_micros(1_700_000_000_000_000 + i));
            assert!(id > prev, "ids must increase with tx");
            assert_eq!(id.get_version_num(), 7);
            prev = id;
        }
    }

    #[test]
    fn record_round_trip() {
        let w = Write::new(
            "orders",
            "0191c2f0-0000-7000-8000-000000000001",
            Value::map([(MapKey::sym("n"), Value::Int(3))]),
        )
        .valid_time(12.5)
        .schema_version(4)
        .producer(Value::sym("api"));
        let f = Fact::build(w).unwrap();
        let mut out = Vec::new();
        encode_record(&mut out, &f);
        let mut r = Reader::new(&out);
        let g = decode_record(&mut r, &mut NoIntern).unwrap();
        assert_eq!(f, g);
        assert_eq!(g.key(), "0191c2f0-0000-7000-8000-000000000001");
        assert_eq!(g.producer(), Some(Value::sym("api")));
        assert_eq!(g.valid_time(), Some(12.5));
        assert_eq!(r.pos, out.len());
    }

    #[test]
    fn decoded_facts_derive_the_written_hash() {
        // Keys out of canonical order, nested: the hash is derived from the bytes on
        // first use and must equal the one computed when the fact was built.
        let v = Value::map([
            (MapKey::sym("title"), Value::from("x")),
            (
                MapKey::sym("a"),
                Value::map([
                    (MapKey::str("z"), Value::Int(1)),
                    (MapKey::Int(3), Value::sym("s")),
                ]),
            ),
        ]);
        let f = Fact::build(Write::new("s", "k", v)).unwrap();
        let mut out = Vec::new();
        encode_record(&mut out, &f);
        let g = decode_record(&mut Reader::new(&out), &mut NoIntern).unwrap();
        assert_eq!(g.value_hash(), f.value_hash());
        assert_eq!(g.value_hash_hex(), f.value_hash_hex());
    }

    #[test]
    fn uppercase_uuid_keys_stay_strings() {
        assert!(canonical_uuid("0191C2F0-0000-7000-8000-000000000001").is_none());
        assert!(canonical_uuid("0191c2f0-0000-7000-8000-000000000001").is_some());
    }
}
