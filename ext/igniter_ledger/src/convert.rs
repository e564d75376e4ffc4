//! Values between Ruby and the core, type-faithfully.
//!
//! Ruby → [`Value`]: nil, true, false, Integer (64-bit signed), Float, String (UTF-8 or
//! binary ASCII-8BIT), Symbol, Array, Hash keyed by Symbols, Strings or Integers. Anything
//! else is refused with an error naming the path inside the value
//! (`value[:meta][:at] is a Time`). Subclasses of String, Array and Hash are read as their
//! base class.
//!
//! [`Value`] → Ruby: fresh objects, deep-frozen for readers (or left mutable for the
//! input of a coercion block). Symbols stay Symbols, String keys stay String keys, binary
//! strings stay ASCII-8BIT.

use std::os::raw::{c_char, c_long};

use igniter_ledger::__private::codec::{Reader, Visitor};
use igniter_ledger::limits::{MAX_DEPTH, MAX_VALUE_BYTES};
use igniter_ledger::{MapKey, Value};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::{prelude::*, Error, Float, Integer, Ruby, Value as RValue};
use rb_sys::{ruby_value_type as T, VALUE};

/// Which Ruby exception a conversion failure becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `TypeError`: an object of an unsupported class.
    Type,
    /// `ArgumentError`: a supported class with unusable content (invalid UTF-8, a cycle).
    Argument,
    /// `RangeError`: an Integer outside 64 bits.
    Range,
}

/// A refused value: what kind of error, and the message naming the path.
#[derive(Debug)]
pub struct ConvError {
    /// Exception class.
    pub kind: Kind,
    /// Message, starting with the path.
    pub message: String,
}

impl ConvError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        ConvError {
            kind,
            message: message.into(),
        }
    }

    /// The Ruby exception.
    pub fn into_error(self, ruby: &Ruby) -> Error {
        let class = match self.kind {
            Kind::Type => ruby.exception_type_error(),
            Kind::Argument => ruby.exception_arg_error(),
            Kind::Range => ruby.exception_range_error(),
        };
        Error::new(class, self.message)
    }

    /// Prefixes the message (e.g. with the position inside a batch).
    pub fn context(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

const SUPPORTED: &str =
    "a ledger value may hold nil, true, false, Integer, Float, String, Symbol, Array and Hash";

/// The name of `v`'s class.
pub(crate) fn class_name(v: RValue) -> String {
    // SAFETY: the borrowed class name is copied before any other Ruby call.
    unsafe { v.classname() }.into_owned()
}

/// The class of `v` with its indefinite article: "a Time", "an Object".
fn a_class(v: RValue) -> String {
    let name = class_name(v);
    let article = match name.as_bytes().first() {
        Some(b'A' | b'E' | b'I' | b'O' | b'U') => "an",
        _ => "a",
    };
    format!("{article} {name}")
}

/// The Ruby type tag of `v`.
fn type_of(v: RValue) -> T {
    // SAFETY: `v` is a live Ruby value (handed to us by Ruby or read out of a live
    // container); RB_TYPE only decodes an immediate or reads the object's header flags.
    unsafe { rb_sys::RB_TYPE(v.as_raw()) }
}

/// What a Ruby String holds, borrowed (copy it out before the next Ruby call).
pub(crate) enum StrRef<'a> {
    /// UTF-8 or US-ASCII text (validated).
    Utf8(&'a str),
    /// ASCII-8BIT bytes.
    Binary(&'a [u8]),
    /// UTF-8/US-ASCII that is not valid UTF-8: the offset where it stops being valid.
    BadUtf8(usize),
    /// Another encoding, by name.
    Other(String),
}

const CR_7BIT: i32 = rb_sys::ruby_coderange_type::RUBY_ENC_CODERANGE_7BIT as i32;
const CR_VALID: i32 = rb_sys::ruby_coderange_type::RUBY_ENC_CODERANGE_VALID as i32;

/// Reads a String's bytes and encoding without copying. Ruby's cached code range of the
/// string answers "valid UTF-8?" for strings it has scanned before (scanning once
/// otherwise), so the bytes are not validated again here.
///
/// # Safety
/// `raw` must be a live String. The slice borrows the string's buffer: use it before
/// any other Ruby call.
pub(crate) unsafe fn str_ref<'a>(raw: VALUE) -> StrRef<'a> {
    // SAFETY: see the function's contract; these calls read the string and global
    // encoding tables and never raise (`rb_enc_str_coderange` only caches a flag).
    unsafe {
        let bytes = std::slice::from_raw_parts(
            rb_sys::RSTRING_PTR(raw) as *const u8,
            rb_sys::RSTRING_LEN(raw) as usize,
        );
        let enc = rb_sys::rb_enc_get_index(raw);
        if enc == rb_sys::rb_utf8_encindex() || enc == rb_sys::rb_usascii_encindex() {
            let cr = rb_sys::rb_enc_str_coderange(raw);
            if cr == CR_7BIT || (cr == CR_VALID && enc == rb_sys::rb_utf8_encindex()) {
                return StrRef::Utf8(std::str::from_utf8_unchecked(bytes));
            }
            // Broken for its encoding (a US-ASCII string may still hold UTF-8).
            return match std::str::from_utf8(bytes) {
                Ok(text) => StrRef::Utf8(text),
                Err(e) => StrRef::BadUtf8(e.valid_up_to()),
            };
        }
        if enc == rb_sys::rb_ascii8bit_encindex() {
            return StrRef::Binary(bytes);
        }
        let e = rb_sys::rb_enc_from_index(enc);
        let name = if e.is_null() || (*e).name.is_null() {
            "another encoding".to_owned()
        } else {
            std::ffi::CStr::from_ptr((*e).name)
                .to_string_lossy()
                .into_owned()
        };
        StrRef::Other(name)
    }
}

/// Why a String cannot be stored as text, to be placed after "is a String ".
fn string_reason(r: &StrRef<'_>) -> String {
    match r {
        StrRef::BadUtf8(at) => format!(
            "with invalid UTF-8 (byte offset {at}; binary data belongs in an ASCII-8BIT string, e.g. str.b)"
        ),
        StrRef::Other(name) => format!(
            "in {name} (the ledger stores UTF-8 and binary ASCII-8BIT strings; use str.encode(\"UTF-8\"))"
        ),
        _ => String::new(),
    }
}

/// The hasher of the extension's maps, whose keys it controls (Symbol VALUEs, names,
/// fact ids, partition slices): rustc's FxHash (the `rustc-hash` crate), much cheaper than
/// SipHash; the keys cannot be chosen to collide on purpose in a way that matters (the
/// maps are small, bounded caches).
pub(crate) type QuickState = rustc_hash::FxBuildHasher;

/// Names of static Symbols by VALUE (static Symbols are immortal immediates, so the
/// VALUE is a stable key). Bounded like `STATIC_SYMBOLS`; the names are leaked on
/// purpose (at most `STATIC_SYMBOL_CACHE_MAX` of them, like the Symbols themselves), so
/// a reader can borrow one for as long as it likes.
static SYMBOL_NAMES: GvlCell<Option<std::collections::HashMap<VALUE, &'static str, QuickState>>> =
    GvlCell::new(None);

/// The UTF-8 name of a static Symbol, from the cache (filled on a miss while it has
/// room); None for a dynamic Symbol, a name that is not UTF-8 or a full cache.
///
/// `raw` must be a Symbol.
pub(crate) fn static_sym_str(raw: VALUE) -> Option<&'static str> {
    if !rb_sys::STATIC_SYM_P(raw) {
        return None;
    }
    // SAFETY: called with the GVL held; no Ruby call while the map is borrowed.
    if let Some(n) = unsafe { SYMBOL_NAMES.get() }
        .as_ref()
        .and_then(|c| c.get(&raw))
    {
        return Some(n);
    }
    // SAFETY: `raw` is a Symbol; `rb_sym2str` answers its (frozen, GC-kept) name
    // String without allocating, and the name is copied out at once.
    let name = match unsafe { str_ref(rb_sys::rb_sym2str(raw)) } {
        StrRef::Utf8(t) => t,
        _ => return None,
    };
    // SAFETY: as above; the Ruby call (`rb_sym2str`) has returned.
    let names = unsafe { SYMBOL_NAMES.get() }.get_or_insert_with(Default::default);
    if names.len() >= STATIC_SYMBOL_CACHE_MAX {
        return None;
    }
    let leaked: &'static str = Box::leak(Box::from(name));
    names.insert(raw, leaked);
    Some(leaked)
}

/// The UTF-8 name of a Symbol (`Err` if it is not valid UTF-8).
pub(crate) fn sym_name(v: RValue) -> Result<String, ()> {
    let raw = v.as_raw();
    if let Some(n) = static_sym_str(raw) {
        return Ok(String::from(n));
    }
    // SAFETY: `raw` is a Symbol; `rb_sym2str` answers its (frozen, GC-kept) name
    // String without allocating, and the name is copied out at once.
    match unsafe { str_ref(rb_sys::rb_sym2str(raw)) } {
        StrRef::Utf8(t) => Ok(t.to_owned()),
        _ => Err(()),
    }
}

/// Converts a Ruby object to a [`Value`]; `what` names it in errors (`"value"`,
/// `"event"`, `"producer"`...).
pub fn to_value(v: RValue, what: &str) -> Result<Value, ConvError> {
    let mut cx = ToValue {
        path: [0; INLINE_PATH],
        deep: Vec::new(),
        depth_in: 0,
        budget: MAX_VALUE_BYTES,
    };
    cx.convert(v, 1).map_err(|f| f.into_error(what))
}

/// Converts a hash key (also used for partition keys and filter keys).
pub fn to_map_key(k: RValue, what: &str) -> Result<MapKey, ConvError> {
    key(k).map_err(|(kind, noun)| ConvError::new(kind, format!("{what} is {noun} ({KEY_HINT})")))
}

/// A conversion failure on its way out of the recursion: the path is assembled only
/// then, from the segments each level adds (innermost first).
struct Failure {
    kind: Kind,
    reason: String,
    segments: Vec<String>,
    /// About the whole value (its size): the path inside it is not named.
    whole: bool,
}

impl Failure {
    fn new(kind: Kind, reason: impl Into<String>) -> Self {
        Failure {
            kind,
            reason: reason.into(),
            segments: Vec::new(),
            whole: false,
        }
    }

    fn too_large() -> Self {
        Failure {
            whole: true,
            ..Failure::new(
                Kind::Argument,
                format!(
                    "encodes to more than {MAX_VALUE_BYTES} bytes; the limit is {MAX_VALUE_BYTES}"
                ),
            )
        }
    }

    fn within(mut self, segment: String) -> Self {
        self.segments.push(segment);
        self
    }

    fn into_error(self, what: &str) -> ConvError {
        let mut path = String::from(what);
        if !self.whole {
            for s in self.segments.iter().rev() {
                path.push_str(s);
            }
        }
        ConvError::new(self.kind, format!("{path} {}", self.reason))
    }
}

/// Containers on the current path kept without allocating (deeper ones spill to a Vec).
const INLINE_PATH: usize = 16;

struct ToValue {
    /// The containers on the current path (cycle detection): the first `INLINE_PATH`
    /// here, `depth_in` of them in use ...
    path: [VALUE; INLINE_PATH],
    /// ... and the deeper ones here.
    deep: Vec<VALUE>,
    depth_in: usize,
    /// Encoded bytes still allowed. Each element is charged a lower bound of its encoded
    /// size (a String its length) *before* it is copied, so an oversized value — a huge
    /// String, or a small structure that shares substructures and would expand to an
    /// enormous tree — is refused early instead of being built in memory first. The core
    /// checks the exact encoded size afterwards.
    budget: usize,
}

/// The byte length of a String (no copy).
fn str_len(v: RValue) -> usize {
    // SAFETY: callers pass a value whose type is T_STRING.
    unsafe { rb_sys::RSTRING_LEN(v.as_raw()) as usize }
}

impl ToValue {
    fn charge(&mut self, bytes: usize) -> Result<(), Failure> {
        match self.budget.checked_sub(bytes) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => Err(Failure::too_large()),
        }
    }

    fn convert(&mut self, v: RValue, depth: usize) -> Result<Value, Failure> {
        let t = type_of(v);
        self.charge(if t == T::RUBY_T_STRING {
            1 + str_len(v)
        } else {
            1
        })?;
        match t {
            T::RUBY_T_NIL => Ok(Value::Nil),
            T::RUBY_T_TRUE => Ok(Value::Bool(true)),
            T::RUBY_T_FALSE => Ok(Value::Bool(false)),
            T::RUBY_T_FIXNUM => {
                // SAFETY: `v` is a Fixnum (checked above); FIX2LONG only decodes it.
                Ok(Value::Int(unsafe { rb_sys::FIX2LONG(v.as_raw()) } as i64))
            }
            T::RUBY_T_BIGNUM => {
                let i = Integer::from_value(v)
                    .ok_or_else(|| Failure::new(Kind::Type, "is not an Integer"))?;
                i.to_i64().map(Value::Int).map_err(|_| {
                    Failure::new(
                        Kind::Range,
                        "is an Integer out of range (the ledger stores 64-bit signed integers)",
                    )
                })
            }
            T::RUBY_T_FLOAT => Float::from_value(v)
                .map(|f| Value::Float(f.to_f64()))
                .ok_or_else(|| Failure::new(Kind::Type, "is not a Float")),
            T::RUBY_T_STRING => {
                // SAFETY: `v` is a String; its bytes are copied before any Ruby call.
                match unsafe { str_ref(v.as_raw()) } {
                    StrRef::Utf8(t) => Ok(Value::Str(t.to_owned())),
                    StrRef::Binary(b) => Ok(Value::Bin(b.to_vec())),
                    bad => Err(Failure::new(
                        Kind::Argument,
                        format!("is a String {}", string_reason(&bad)),
                    )),
                }
            }
            T::RUBY_T_SYMBOL => sym_name(v)
                .map(Value::Sym)
                .map_err(|_| Failure::new(Kind::Argument, "is a Symbol with invalid UTF-8")),
            T::RUBY_T_ARRAY => self.array(v, depth),
            T::RUBY_T_HASH => self.hash(v, depth),
            _ => Err(Failure::new(
                Kind::Type,
                format!("is {} ({SUPPORTED})", a_class(v)),
            )),
        }
    }

    /// Enters a container: checks depth and cycles.
    fn enter(&mut self, raw: VALUE, depth: usize) -> Result<(), Failure> {
        if self.path[..self.depth_in].contains(&raw) || self.deep.contains(&raw) {
            return Err(Failure::new(
                Kind::Argument,
                "is a cyclic reference (the structure contains itself)",
            ));
        }
        if depth > MAX_DEPTH {
            return Err(Failure::new(
                Kind::Argument,
                format!("nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        if self.depth_in < INLINE_PATH && self.deep.is_empty() {
            self.path[self.depth_in] = raw;
            self.depth_in += 1;
        } else {
            self.deep.push(raw);
        }
        Ok(())
    }

    /// Leaves the innermost container.
    fn leave(&mut self) {
        if self.deep.pop().is_none() {
            self.depth_in -= 1;
        }
    }

    fn array(&mut self, v: RValue, depth: usize) -> Result<Value, Failure> {
        let raw = v.as_raw();
        self.enter(raw, depth)?;
        // SAFETY: `raw` is an Array (checked by the caller). Its length is re-read on each
        // step and `rb_ary_entry` never raises (it returns nil past the end); converting
        // the elements runs no Ruby code that could change the array.
        let len = unsafe { rb_sys::RARRAY_LEN(raw) } as usize;
        let mut items = Vec::with_capacity(len);
        let mut i = 0usize;
        // SAFETY: as above.
        while i < unsafe { rb_sys::RARRAY_LEN(raw) } as usize {
            // SAFETY: as above; the element is kept alive by the array.
            let item = unsafe { RValue::from_raw(rb_sys::rb_ary_entry(raw, i as c_long)) };
            items.push(
                self.convert(item, depth + 1)
                    .map_err(|f| f.within(format!("[{i}]")))?,
            );
            i += 1;
        }
        self.leave();
        Ok(Value::Array(items))
    }

    fn hash(&mut self, v: RValue, depth: usize) -> Result<Value, Failure> {
        let raw = v.as_raw();
        self.enter(raw, depth)?;
        // SAFETY: `raw` is a Hash (checked by the caller).
        let len = unsafe { rb_sys::RHASH_SIZE(raw) } as usize;
        let mut walk = HashWalk {
            cx: self,
            depth,
            pairs: Vec::with_capacity(len),
            failure: None,
        };
        // SAFETY: `each_pair` matches the callback type and `walk` outlives the call.
        // The callback never raises (it calls no Ruby code that can, and catches Rust
        // panics), so no longjmp crosses these frames, and it does not change the hash.
        unsafe {
            rb_sys::rb_hash_foreach(
                raw,
                Some(each_pair),
                &mut walk as *mut HashWalk<'_> as VALUE,
            )
        };
        let HashWalk { pairs, failure, .. } = walk;
        if let Some(f) = failure {
            return Err(f);
        }
        self.leave();
        Ok(Value::Map(pairs))
    }

    /// One entry of a hash being converted; false stops the walk (`walk.failure` says why).
    fn pair(
        &mut self,
        k: RValue,
        val: RValue,
        depth: usize,
        walk_pairs: &mut Vec<(MapKey, Value)>,
    ) -> Result<(), Failure> {
        self.charge(if type_of(k) == T::RUBY_T_STRING {
            1 + str_len(k)
        } else {
            1
        })?;
        let key = key(k)
            .map_err(|(kind, noun)| Failure::new(kind, format!("has {noun} key ({KEY_HINT})")))?;
        match self.convert(val, depth + 1) {
            Ok(value) => {
                walk_pairs.push((key, value));
                Ok(())
            }
            Err(f) => Err(f.within(format!("[{key}]"))),
        }
    }
}

/// The state of one `rb_hash_foreach` walk.
struct HashWalk<'a> {
    cx: &'a mut ToValue,
    depth: usize,
    pairs: Vec<(MapKey, Value)>,
    failure: Option<Failure>,
}

/// `rb_hash_foreach` callback: converts one entry.
///
/// # Safety
/// `arg` is the address of the live `HashWalk` passed by `ToValue::hash`.
unsafe extern "C" fn each_pair(k: VALUE, v: VALUE, arg: VALUE) -> std::os::raw::c_int {
    const CONTINUE: std::os::raw::c_int = rb_sys::st_retval::ST_CONTINUE as std::os::raw::c_int;
    const STOP: std::os::raw::c_int = rb_sys::st_retval::ST_STOP as std::os::raw::c_int;
    // SAFETY: see the function's contract.
    let walk = unsafe { &mut *(arg as *mut HashWalk<'_>) };
    // SAFETY: Ruby hands the callback live keys and values of the hash.
    let (k, v) = unsafe { (RValue::from_raw(k), RValue::from_raw(v)) };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let HashWalk {
            cx, depth, pairs, ..
        } = walk;
        cx.pair(k, v, *depth, pairs)
    }));
    match outcome {
        Ok(Ok(())) => CONTINUE,
        Ok(Err(f)) => {
            walk.failure = Some(f);
            STOP
        }
        Err(_) => {
            walk.failure = Some(Failure::new(
                Kind::Argument,
                "could not be read (internal error while converting it)",
            ));
            STOP
        }
    }
}

/// A hash key, or (kind, description) of what the refused key is, e.g. `"a Float"`;
/// callers place it in a sentence.
fn key(k: RValue) -> Result<MapKey, (Kind, String)> {
    match type_of(k) {
        T::RUBY_T_SYMBOL => sym_name(k)
            .map(MapKey::Sym)
            .map_err(|_| (Kind::Argument, "a Symbol with invalid UTF-8".to_owned())),
        // SAFETY: `k` is a String; its bytes are copied before any Ruby call.
        T::RUBY_T_STRING => match unsafe { str_ref(k.as_raw()) } {
            StrRef::Utf8(t) => Ok(MapKey::Str(t.to_owned())),
            StrRef::Binary(_) => Err((Kind::Argument, "a binary (ASCII-8BIT) String".to_owned())),
            bad => Err((Kind::Argument, format!("a String {}", string_reason(&bad)))),
        },
        T::RUBY_T_FIXNUM => {
            // SAFETY: `k` is a Fixnum; FIX2LONG only decodes it.
            Ok(MapKey::Int(unsafe { rb_sys::FIX2LONG(k.as_raw()) } as i64))
        }
        T::RUBY_T_BIGNUM => {
            let i = Integer::from_value(k).ok_or((Kind::Type, "not an Integer".to_owned()))?;
            i.to_i64().map(MapKey::Int).map_err(|_| {
                (
                    Kind::Range,
                    "an Integer out of the 64-bit signed range".to_owned(),
                )
            })
        }
        _ => Err((Kind::Type, a_class(k))),
    }
}

const KEY_HINT: &str = "hash keys must be Symbols, UTF-8 Strings or 64-bit Integers";

// ------------------------------------------------------------------ Value -> Ruby
//
// The builders below call Ruby allocation functions directly. Those can only raise
// NoMemoryError (the containers are fresh and unfrozen, the keys are Symbols, Strings or
// Integers whose hashing never calls user code); the frames below hold no values with
// destructors, so even that longjmp would skip no Rust cleanup.

/// A cell only ever touched by a thread holding Ruby's GVL, which serializes every
/// access (the extension is not Ractor-safe and never decodes without the GVL), so no
/// lock is needed.
pub(crate) struct GvlCell<T>(std::cell::UnsafeCell<T>);

// SAFETY: see the type's documentation: all access is serialized by the GVL.
unsafe impl<T> Sync for GvlCell<T> {}

impl<T> GvlCell<T> {
    pub(crate) const fn new(v: T) -> Self {
        GvlCell(std::cell::UnsafeCell::new(v))
    }

    /// # Safety
    /// The caller holds the GVL and does not call back into Ruby (which could reach this
    /// cell again) while the reference is alive.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn get(&self) -> &mut T {
        // SAFETY: see above.
        unsafe { &mut *self.0.get() }
    }
}

/// Static Symbols by name. Static Symbols are immortal immediates (never collected,
/// never moved), so their VALUEs can be kept outside the GC's sight. Bounded: names are
/// only added while the cache is small.
type SymbolsByName = std::collections::HashMap<Box<[u8]>, VALUE, QuickState>;

static STATIC_SYMBOLS: GvlCell<Option<SymbolsByName>> = GvlCell::new(None);

const STATIC_SYMBOL_CACHE_MAX: usize = 4096;

/// A Symbol named by UTF-8 `bytes` (validated here unless the Symbol is already
/// cached): an existing one when possible (static ones are cached), else a new dynamic —
/// garbage-collectable — Symbol. None if the bytes are not UTF-8.
fn symbol_from_bytes(ruby: &Ruby, bytes: &[u8]) -> Option<RValue> {
    // SAFETY: called with the GVL held; no Ruby call while the map is borrowed.
    let cache = unsafe { STATIC_SYMBOLS.get() };
    if let Some(&v) = cache.as_ref().and_then(|c| c.get(bytes)) {
        // SAFETY: only static Symbols are cached, and they live forever.
        return Some(unsafe { RValue::from_raw(v) });
    }
    let name = std::str::from_utf8(bytes).ok()?;
    // SAFETY: `name` is valid UTF-8 and outlives the call; `rb_check_symbol_cstr` only
    // looks the name up (it raises only for a broken encoding, impossible for UTF-8).
    let found = unsafe {
        rb_sys::rb_check_symbol_cstr(
            name.as_ptr() as *const c_char,
            name.len() as c_long,
            rb_sys::rb_utf8_encoding(),
        )
    };
    if !rb_sys::NIL_P(found) {
        if rb_sys::STATIC_SYM_P(found) {
            // SAFETY: as above; the lookup above has returned.
            let cache = unsafe { STATIC_SYMBOLS.get() }.get_or_insert_with(Default::default);
            if cache.len() < STATIC_SYMBOL_CACHE_MAX {
                cache.insert(bytes.into(), found);
            }
        }
        // SAFETY: a live Symbol returned by Ruby.
        return Some(unsafe { RValue::from_raw(found) });
    }
    let s = ruby.str_new(name);
    // SAFETY: `s` is a valid UTF-8 String; `rb_to_symbol` on a String does not raise.
    Some(unsafe { RValue::from_raw(rb_sys::rb_to_symbol(s.as_raw())) })
}

/// A Symbol for `name`.
pub fn symbol(ruby: &Ruby, name: &str) -> RValue {
    // A `&str` is UTF-8, so this always finds or makes one.
    symbol_from_bytes(ruby, name.as_bytes()).unwrap_or_else(|| ruby.qnil().as_value())
}

/// Freezes an object this extension just created, through `rb_obj_freeze`, so that
/// whatever else freezing involves in the running Ruby (object shapes since 3.2, a
/// singleton class) is done by Ruby itself rather than assumed here.
pub(crate) fn freeze_fresh(obj: VALUE) {
    // SAFETY: callers pass a live heap object (String, Array, Hash, typed data) they
    // created; rb_obj_freeze does not raise for such an object.
    unsafe {
        rb_sys::rb_obj_freeze(obj);
    }
}

/// A new String (UTF-8), frozen when asked.
pub fn string(ruby: &Ruby, s: &str, freeze: bool) -> RValue {
    let v = ruby.str_new(s);
    if freeze {
        freeze_fresh(v.as_raw());
    }
    v.as_value()
}

fn map_key(ruby: &Ruby, k: &MapKey, freeze: bool) -> RValue {
    match k {
        MapKey::Sym(s) => symbol(ruby, s),
        MapKey::Str(s) => string(ruby, s, freeze),
        MapKey::Int(i) => ruby.integer_from_i64(*i).as_value(),
    }
}

/// Converts a key to Ruby (frozen).
pub fn key_to_ruby(ruby: &Ruby, k: &MapKey) -> RValue {
    map_key(ruby, k, true)
}

/// Converts a [`Value`] to a new Ruby object; `freeze` deep-freezes it.
pub fn to_ruby(ruby: &Ruby, v: &Value, freeze: bool) -> RValue {
    match v {
        Value::Nil => ruby.qnil().as_value(),
        Value::Bool(true) => ruby.qtrue().as_value(),
        Value::Bool(false) => ruby.qfalse().as_value(),
        Value::Int(i) => ruby.integer_from_i64(*i).as_value(),
        Value::Float(f) => ruby.float_from_f64(*f).as_value(),
        Value::Str(s) => string(ruby, s, freeze),
        Value::Bin(b) => {
            let s = ruby.str_from_slice(b);
            if freeze {
                freeze_fresh(s.as_raw());
            }
            s.as_value()
        }
        Value::Sym(s) => symbol(ruby, s),
        Value::Array(items) => {
            // SAFETY: a fresh array; pushing to it cannot raise (see the note above). Each
            // element is referenced from the array as soon as it is created.
            let ary = unsafe { rb_sys::rb_ary_new_capa(items.len() as c_long) };
            for item in items {
                let item = to_ruby(ruby, item, freeze);
                // SAFETY: as above; `ary` is on this stack frame, so the GC sees it.
                unsafe { rb_sys::rb_ary_push(ary, item.as_raw()) };
            }
            // SAFETY: a live array created above.
            let ary = unsafe { RValue::from_raw(ary) };
            if freeze {
                freeze_fresh(ary.as_raw());
            }
            ary
        }
        Value::Map(pairs) => {
            // SAFETY: a fresh hash; `rb_hash_aset` with Symbol/String/Integer keys cannot
            // raise (see the note above).
            let hash = unsafe { rb_sys::rb_hash_new() };
            for (k, val) in pairs {
                let k = map_key(ruby, k, freeze);
                let val = to_ruby(ruby, val, freeze);
                // SAFETY: as above; `k` and `val` are live on this frame until inserted.
                unsafe { rb_sys::rb_hash_aset(hash, k.as_raw(), val.as_raw()) };
            }
            // SAFETY: a live hash created above.
            let hash = unsafe { RValue::from_raw(hash) };
            if freeze {
                freeze_fresh(hash.as_raw());
            }
            hash
        }
    }
}

/// Builds Ruby objects from stored value bytes as the core's reader visits them (see
/// `igniter_ledger::__private::codec::Visitor`): strings are handed to Ruby as they are
/// stored (they were validated as UTF-8 when the fact was written or loaded, and no Rust
/// `str` is made of them), Symbols come from the Symbol cache. The extension keeps no
/// MessagePack parser of its own.
struct RubyBuilder<'r> {
    ruby: &'r Ruby,
    freeze: bool,
    /// Containers entered.
    depth: usize,
    /// The item being read is a map key (only a Symbol, String or Integer may be).
    key: bool,
    /// Why building stopped, when the reader did not stop it.
    why: Option<&'static str>,
}

/// Pairs of a map built on the stack before one bulk insert (larger maps insert as
/// they go).
const BULK_PAIRS: usize = 16;

impl RubyBuilder<'_> {
    /// A new String (UTF-8 when `utf8`, else binary) copied from `bytes`.
    #[inline]
    fn string(&self, bytes: &[u8], utf8: bool) -> Option<VALUE> {
        let (ptr, len) = (bytes.as_ptr() as *const c_char, bytes.len() as c_long);
        // SAFETY: a fresh String copied from a pointer and length into the stored bytes;
        // no `&str` is made of them.
        let s = unsafe {
            if utf8 {
                rb_sys::rb_utf8_str_new(ptr, len)
            } else {
                rb_sys::rb_str_new(ptr, len)
            }
        };
        if self.freeze {
            freeze_fresh(s);
        }
        Some(s)
    }

    /// Stops building for a reason of the builder's own.
    #[cold]
    fn stop(&mut self, why: &'static str) -> Option<VALUE> {
        self.why = Some(why);
        None
    }

    /// Refuses an item that cannot be a map key where a key is read.
    #[inline]
    fn not_key(&mut self) -> Option<()> {
        if self.key {
            self.stop("stored hash key is not a Symbol, String or Integer")?;
        }
        Some(())
    }

    /// Enters a container (None past the depth limit, or where a key is read).
    #[inline]
    fn enter(&mut self) -> Option<()> {
        self.not_key()?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.stop("stored value nests too deep")?;
        }
        Some(())
    }
}

impl<'a> Visitor<'a> for RubyBuilder<'_> {
    type Out = VALUE;

    fn nil(&mut self) -> Option<VALUE> {
        self.not_key()?;
        Some(rb_sys::Qnil as VALUE)
    }

    fn bool(&mut self, b: bool) -> Option<VALUE> {
        self.not_key()?;
        Some(if b { rb_sys::Qtrue } else { rb_sys::Qfalse } as VALUE)
    }

    fn int(&mut self, i: i64) -> Option<VALUE> {
        Some(self.ruby.integer_from_i64(i).as_value().as_raw())
    }

    fn float(&mut self, f: f64) -> Option<VALUE> {
        self.not_key()?;
        Some(self.ruby.float_from_f64(f).as_value().as_raw())
    }

    fn str(&mut self, b: &'a [u8]) -> Option<VALUE> {
        self.string(b, true)
    }

    fn bin(&mut self, b: &'a [u8]) -> Option<VALUE> {
        self.not_key()?;
        self.string(b, false)
    }

    fn sym(&mut self, name: &'a [u8]) -> Option<VALUE> {
        match symbol_from_bytes(self.ruby, name) {
            Some(v) => Some(v.as_raw()),
            None => self.stop("stored Symbol name is not valid UTF-8"),
        }
    }

    // Containers stay out of line, so the per-item dispatch stays small.
    #[inline(never)]
    fn array(&mut self, r: &mut Reader<'a>, n: usize) -> Option<VALUE> {
        self.enter()?;
        // SAFETY: a fresh array; pushing to it cannot raise. It stays on this frame
        // (visible to the GC's stack scan) while its items are built.
        let ary = unsafe { rb_sys::rb_ary_new_capa(n as c_long) };
        for _ in 0..n {
            let item = r.visit(self)?;
            // SAFETY: as above.
            unsafe { rb_sys::rb_ary_push(ary, item) };
        }
        if self.freeze {
            freeze_fresh(ary);
        }
        self.depth -= 1;
        Some(ary)
    }

    #[inline(never)]
    fn map(&mut self, r: &mut Reader<'a>, n: usize) -> Option<VALUE> {
        self.enter()?;
        // SAFETY: a fresh hash; inserting Symbol/String/Integer keys cannot raise (their
        // hashing runs no user code). Keys and values built so far are kept in `pairs`, a
        // local array the GC's conservative stack scan sees.
        let hash = unsafe { rb_sys::rb_hash_new() };
        let mut pairs = [0 as VALUE; 2 * BULK_PAIRS];
        let mut filled = 0;
        for _ in 0..n {
            self.key = true;
            pairs[filled] = r.visit(self)?;
            self.key = false;
            pairs[filled + 1] = r.visit(self)?;
            filled += 2;
            if filled == pairs.len() {
                // SAFETY: as above; `pairs[..filled]` holds live keys and values.
                unsafe { rb_sys::rb_hash_bulk_insert(filled as c_long, pairs.as_ptr(), hash) };
                filled = 0;
            }
        }
        if filled > 0 {
            // SAFETY: as above.
            unsafe { rb_sys::rb_hash_bulk_insert(filled as c_long, pairs.as_ptr(), hash) };
        }
        if self.freeze {
            freeze_fresh(hash);
        }
        self.depth -= 1;
        Some(hash)
    }
}

/// Builds the Ruby object for a stored value straight from its encoded bytes (no
/// intermediate [`Value`]); `freeze` deep-freezes it. The bytes were validated when the
/// fact was built or loaded, so an error here means a bug, reported as such.
pub fn bytes_to_ruby(ruby: &Ruby, bytes: &[u8], freeze: bool) -> Result<RValue, String> {
    let mut b = RubyBuilder {
        ruby,
        freeze,
        depth: 1,
        key: false,
        why: None,
    };
    let mut r = Reader::new(bytes);
    let Some(v) = r.visit(&mut b) else {
        return Err(match b.why {
            Some(why) => why.to_owned(),
            None => r.trusted_error().0,
        });
    };
    if r.remaining() != 0 {
        return Err("trailing bytes after a stored value".to_owned());
    }
    // SAFETY: a live value just built.
    Ok(unsafe { RValue::from_raw(v) })
}
