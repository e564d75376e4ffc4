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

use igniter_ledger::codec::{Reader, Token};
use igniter_ledger::value::limits::MAX_DEPTH;
use igniter_ledger::{MapKey, Value};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::{
    prelude::*, r_hash::ForEach, Error, Float, Integer, RHash, RString, Ruby, Symbol,
    Value as RValue,
};
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

fn class_name(v: RValue) -> String {
    // SAFETY: the borrowed class name is copied before any other Ruby call.
    unsafe { v.classname() }.into_owned()
}

/// The Ruby type tag of `v`.
fn type_of(v: RValue) -> T {
    // SAFETY: `v` is a live Ruby value (handed to us by Ruby or read out of a live
    // container); RB_TYPE only decodes an immediate or reads the object's header flags.
    unsafe { rb_sys::RB_TYPE(v.as_raw()) }
}

/// A string's content, by encoding.
enum StrContent {
    Utf8(String),
    Binary(Vec<u8>),
}

/// Reads a String: UTF-8 and US-ASCII must be valid UTF-8; ASCII-8BIT is binary; other
/// encodings are refused (the reason is returned, to be placed after the path).
fn read_string(s: RString) -> Result<StrContent, String> {
    let raw = s.as_raw();
    // SAFETY: `raw` is a String (callers checked the type). The encoding queries read
    // global tables, and the bytes are copied out before any other Ruby call, so the
    // borrowed slice cannot be invalidated while it is in use.
    unsafe {
        let enc = rb_sys::rb_enc_get_index(raw);
        let bytes = std::slice::from_raw_parts(
            rb_sys::RSTRING_PTR(raw) as *const u8,
            rb_sys::RSTRING_LEN(raw) as usize,
        );
        if enc == rb_sys::rb_ascii8bit_encindex() {
            Ok(StrContent::Binary(bytes.to_vec()))
        } else if enc == rb_sys::rb_utf8_encindex() || enc == rb_sys::rb_usascii_encindex() {
            match std::str::from_utf8(bytes) {
                Ok(text) => Ok(StrContent::Utf8(text.to_owned())),
                Err(e) => Err(format!(
                    "with invalid UTF-8 (byte offset {}; binary data belongs in an ASCII-8BIT string, e.g. str.b)",
                    e.valid_up_to()
                )),
            }
        } else {
            let name: String = s
                .funcall::<_, _, RValue>("encoding", ())
                .and_then(|e| e.funcall("to_s", ()))
                .unwrap_or_else(|_| "another encoding".to_owned());
            Err(format!(
                "in {name} (the ledger stores UTF-8 and binary ASCII-8BIT strings; use str.encode(\"UTF-8\"))"
            ))
        }
    }
}

fn symbol_name(s: Symbol) -> Result<String, ()> {
    s.name().map(|n| n.into_owned()).map_err(|_| ())
}

/// Converts a Ruby object to a [`Value`]; `what` names it in errors (`"value"`,
/// `"event"`, `"producer"`...).
pub fn to_value(v: RValue, what: &str) -> Result<Value, ConvError> {
    let mut cx = ToValue { stack: Vec::new() };
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
}

impl Failure {
    fn new(kind: Kind, reason: impl Into<String>) -> Self {
        Failure {
            kind,
            reason: reason.into(),
            segments: Vec::new(),
        }
    }

    fn within(mut self, segment: String) -> Self {
        self.segments.push(segment);
        self
    }

    fn into_error(self, what: &str) -> ConvError {
        let mut path = String::from(what);
        for s in self.segments.iter().rev() {
            path.push_str(s);
        }
        ConvError::new(self.kind, format!("{path} {}", self.reason))
    }
}

struct ToValue {
    /// The containers on the current path (cycle detection).
    stack: Vec<VALUE>,
}

impl ToValue {
    fn convert(&mut self, v: RValue, depth: usize) -> Result<Value, Failure> {
        match type_of(v) {
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
                let s = RString::from_value(v)
                    .ok_or_else(|| Failure::new(Kind::Type, "is not a String"))?;
                match read_string(s) {
                    Ok(StrContent::Utf8(s)) => Ok(Value::Str(s)),
                    Ok(StrContent::Binary(b)) => Ok(Value::Bin(b)),
                    Err(reason) => Err(Failure::new(
                        Kind::Argument,
                        format!("is a String {reason}"),
                    )),
                }
            }
            T::RUBY_T_SYMBOL => {
                let s = Symbol::from_value(v)
                    .ok_or_else(|| Failure::new(Kind::Type, "is not a Symbol"))?;
                symbol_name(s)
                    .map(Value::Sym)
                    .map_err(|_| Failure::new(Kind::Argument, "is a Symbol with invalid UTF-8"))
            }
            T::RUBY_T_ARRAY => self.array(v, depth),
            T::RUBY_T_HASH => self.hash(v, depth),
            _ => Err(Failure::new(
                Kind::Type,
                format!("is a {} ({SUPPORTED})", class_name(v)),
            )),
        }
    }

    /// Enters a container: checks depth and cycles.
    fn enter(&mut self, raw: VALUE, depth: usize) -> Result<(), Failure> {
        if self.stack.contains(&raw) {
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
        self.stack.push(raw);
        Ok(())
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
        self.stack.pop();
        Ok(Value::Array(items))
    }

    fn hash(&mut self, v: RValue, depth: usize) -> Result<Value, Failure> {
        let raw = v.as_raw();
        self.enter(raw, depth)?;
        let hash = RHash::from_value(v).ok_or_else(|| Failure::new(Kind::Type, "is not a Hash"))?;
        let mut pairs: Vec<(MapKey, Value)> = Vec::with_capacity(hash.len());
        let mut failure: Option<Failure> = None;
        let walked = hash.foreach(|k: RValue, val: RValue| {
            let key = match key(k) {
                Ok(key) => key,
                Err((kind, noun)) => {
                    failure = Some(Failure::new(kind, format!("has {noun} key ({KEY_HINT})")));
                    return Ok(ForEach::Stop);
                }
            };
            match self.convert(val, depth + 1) {
                Ok(value) => {
                    pairs.push((key, value));
                    Ok(ForEach::Continue)
                }
                Err(f) => {
                    failure = Some(f.within(format!("[{key}]")));
                    Ok(ForEach::Stop)
                }
            }
        });
        if let Some(f) = failure {
            return Err(f);
        }
        if let Err(e) = walked {
            return Err(Failure::new(
                Kind::Argument,
                format!("could not be read: {e}"),
            ));
        }
        self.stack.pop();
        Ok(Value::Map(pairs))
    }
}

/// A hash key, or (kind, description) of what the refused key is, e.g. `"a Float"`;
/// callers place it in a sentence.
fn key(k: RValue) -> Result<MapKey, (Kind, String)> {
    match type_of(k) {
        T::RUBY_T_SYMBOL => {
            let s = Symbol::from_value(k).ok_or((Kind::Type, "not a Symbol".to_owned()))?;
            symbol_name(s)
                .map(MapKey::Sym)
                .map_err(|_| (Kind::Argument, "a Symbol with invalid UTF-8".to_owned()))
        }
        T::RUBY_T_STRING => {
            let s = RString::from_value(k).ok_or((Kind::Type, "not a String".to_owned()))?;
            match read_string(s) {
                Ok(StrContent::Utf8(s)) => Ok(MapKey::Str(s)),
                Ok(StrContent::Binary(_)) => {
                    Err((Kind::Argument, "a binary (ASCII-8BIT) String".to_owned()))
                }
                Err(reason) => Err((Kind::Argument, format!("a String {reason}"))),
            }
        }
        T::RUBY_T_FIXNUM | T::RUBY_T_BIGNUM => {
            let i = Integer::from_value(k).ok_or((Kind::Type, "not an Integer".to_owned()))?;
            i.to_i64().map(MapKey::Int).map_err(|_| {
                (
                    Kind::Range,
                    "an Integer out of the 64-bit signed range".to_owned(),
                )
            })
        }
        _ => Err((Kind::Type, format!("a {}", class_name(k)))),
    }
}

const KEY_HINT: &str = "hash keys must be Symbols, UTF-8 Strings or 64-bit Integers";

// ------------------------------------------------------------------ Value -> Ruby
//
// The builders below call Ruby allocation functions directly. Those can only raise
// NoMemoryError (the containers are fresh and unfrozen, the keys are Symbols, Strings or
// Integers whose hashing never calls user code); the frames below hold no values with
// destructors, so even that longjmp would skip no Rust cleanup.

thread_local! {
    /// Static Symbols by name. Static Symbols are immortal immediates (never collected,
    /// never moved), so their VALUEs can be kept outside the GC's sight. Bounded: names
    /// are only added while the cache is small.
    static STATIC_SYMBOLS: std::cell::RefCell<std::collections::HashMap<Box<str>, VALUE>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

const STATIC_SYMBOL_CACHE_MAX: usize = 4096;

/// A Symbol for `name`: an existing one when possible (static ones are cached), else a new
/// dynamic — garbage-collectable — Symbol.
pub fn symbol(ruby: &Ruby, name: &str) -> RValue {
    if let Some(v) = STATIC_SYMBOLS.with(|c| c.borrow().get(name).copied()) {
        // SAFETY: only static Symbols are cached, and they live forever.
        return unsafe { RValue::from_raw(v) };
    }
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
            STATIC_SYMBOLS.with(|c| {
                let mut c = c.borrow_mut();
                if c.len() < STATIC_SYMBOL_CACHE_MAX {
                    c.insert(name.into(), found);
                }
            });
        }
        // SAFETY: a live Symbol returned by Ruby.
        return unsafe { RValue::from_raw(found) };
    }
    let s = ruby.str_new(name);
    // SAFETY: `s` is a valid UTF-8 String; `rb_to_symbol` on a String does not raise.
    unsafe { RValue::from_raw(rb_sys::rb_to_symbol(s.as_raw())) }
}

/// A new String (UTF-8), frozen when asked.
pub fn string(ruby: &Ruby, s: &str, freeze: bool) -> RValue {
    let v = ruby.str_new(s);
    if freeze {
        v.freeze();
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
                s.freeze();
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
                ary.freeze();
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
                hash.freeze();
            }
            hash
        }
    }
}

/// Builds the Ruby object for a stored value straight from its encoded bytes (no
/// intermediate [`Value`]); `freeze` deep-freezes it. The bytes were validated when the
/// fact was built or loaded, so an error here means a bug, reported as such.
pub fn bytes_to_ruby(ruby: &Ruby, bytes: &[u8], freeze: bool) -> Result<RValue, String> {
    let mut r = Reader::new(bytes);
    let v = decode(ruby, &mut r, freeze, 1)?;
    if r.remaining() != 0 {
        return Err("trailing bytes after a stored value".to_owned());
    }
    Ok(v)
}

fn decode(ruby: &Ruby, r: &mut Reader<'_>, freeze: bool, depth: usize) -> Result<RValue, String> {
    if depth > MAX_DEPTH {
        return Err(format!("stored value nests deeper than {MAX_DEPTH} levels"));
    }
    let token = r.token().map_err(|e| e.to_string())?;
    Ok(match token {
        Token::Nil => ruby.qnil().as_value(),
        Token::Bool(true) => ruby.qtrue().as_value(),
        Token::Bool(false) => ruby.qfalse().as_value(),
        Token::Int(i) => ruby.integer_from_i64(i).as_value(),
        Token::Float(f) => ruby.float_from_f64(f).as_value(),
        Token::Str(s) => string(ruby, s, freeze),
        Token::Bin(b) => {
            let s = ruby.str_from_slice(b);
            if freeze {
                s.freeze();
            }
            s.as_value()
        }
        Token::Sym(s) => symbol(ruby, s),
        Token::Array(n) => {
            // SAFETY: as in `to_ruby`: a fresh array, pushes cannot raise, and the array
            // stays on this frame (visible to the GC) while its items are built.
            let ary = unsafe { rb_sys::rb_ary_new_capa(n as c_long) };
            for _ in 0..n {
                let item = decode(ruby, r, freeze, depth + 1)?;
                // SAFETY: as above.
                unsafe { rb_sys::rb_ary_push(ary, item.as_raw()) };
            }
            // SAFETY: a live array created above.
            let ary = unsafe { RValue::from_raw(ary) };
            if freeze {
                ary.freeze();
            }
            ary
        }
        Token::Map(n) => {
            // SAFETY: as in `to_ruby`: a fresh hash, Symbol/String/Integer keys.
            let hash = unsafe { rb_sys::rb_hash_new() };
            for _ in 0..n {
                let k = match r.token().map_err(|e| e.to_string())? {
                    Token::Sym(s) => symbol(ruby, s),
                    Token::Str(s) => string(ruby, s, freeze),
                    Token::Int(i) => ruby.integer_from_i64(i).as_value(),
                    other => {
                        return Err(format!(
                            "stored hash key is not a Symbol, String or Integer: {other:?}"
                        ))
                    }
                };
                let val = decode(ruby, r, freeze, depth + 1)?;
                // SAFETY: as above; `k` and `val` are live on this frame until inserted.
                unsafe { rb_sys::rb_hash_aset(hash, k.as_raw(), val.as_raw()) };
            }
            // SAFETY: a live hash created above.
            let hash = unsafe { RValue::from_raw(hash) };
            if freeze {
                hash.freeze();
            }
            hash
        }
    })
}
