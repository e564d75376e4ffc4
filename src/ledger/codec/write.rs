//! Writing: values and record fields in the storage form (MessagePack, shortest forms,
//! maps in insertion order), and the exact size of that form.

use super::marker::{self, int_head, ARRAY, BIN, EXT, EXT_SYMBOL, MAP, STR};
use crate::ledger::value::{MapKey, Value};

/// Appends MessagePack `nil`.
pub fn write_nil(out: &mut Vec<u8>) {
    out.push(marker::NIL);
}

/// Appends a boolean.
pub fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.push(if b { marker::TRUE } else { marker::FALSE });
}

/// Appends an integer in its shortest form.
#[inline]
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    let (m, size) = int_head(v);
    out.push(m);
    // The payload: the low `size - 1` bytes of the two's complement, big-endian.
    match size {
        1 => {}
        2 => out.push(v as u8),
        3 => out.extend_from_slice(&(v as u16).to_be_bytes()),
        5 => out.extend_from_slice(&(v as u32).to_be_bytes()),
        _ => out.extend_from_slice(&(v as u64).to_be_bytes()),
    }
}

/// Appends a 64-bit float. NaN is written in one canonical bit pattern.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    let v = if v.is_nan() { f64::NAN } else { v };
    out.push(marker::FLOAT64);
    out.extend_from_slice(&v.to_bits().to_be_bytes());
}

/// Appends the header of a string of `len` bytes.
#[inline(always)]
pub(crate) fn write_str_header(out: &mut Vec<u8>, len: usize) {
    STR.write(out, len);
}

/// Appends a UTF-8 string.
#[inline]
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    STR.write(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// Appends a binary string.
pub fn write_bin(out: &mut Vec<u8>, b: &[u8]) {
    BIN.write(out, b.len());
    out.extend_from_slice(b);
}

/// Appends a Symbol (`ext 1`).
#[inline]
pub fn write_sym(out: &mut Vec<u8>, s: &str) {
    write_sym_header(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// The header of a Symbol of `len` bytes (`ext 8/16/32` with type 1).
#[inline(always)]
pub(crate) fn write_sym_header(out: &mut Vec<u8>, len: usize) {
    EXT.write(out, len);
    out.push(EXT_SYMBOL as u8);
}

/// Appends an array header.
pub fn write_array_len(out: &mut Vec<u8>, len: usize) {
    ARRAY.write(out, len);
}

/// Appends a map header.
pub fn write_map_len(out: &mut Vec<u8>, len: usize) {
    MAP.write(out, len);
}

/// Appends a map key.
#[inline]
pub fn write_key(out: &mut Vec<u8>, k: &MapKey) {
    match k {
        MapKey::Sym(s) => write_sym(out, s),
        MapKey::Str(s) => write_str(out, s),
        MapKey::Int(i) => write_int(out, *i),
    }
}

/// Appends a value in storage order. Returns true when every map in it was already in
/// canonical key order, i.e. the bytes written are also the canonical bytes.
pub fn write_value(out: &mut Vec<u8>, v: &Value) -> bool {
    match v {
        Value::Nil => write_nil(out),
        Value::Bool(b) => write_bool(out, *b),
        Value::Int(i) => write_int(out, *i),
        Value::Float(f) => write_f64(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::Bin(b) => write_bin(out, b),
        Value::Sym(s) => write_sym(out, s),
        Value::Array(items) => {
            write_array_len(out, items.len());
            let mut canonical = true;
            for item in items {
                canonical &= write_value(out, item);
            }
            return canonical;
        }
        Value::Map(pairs) => {
            write_map_len(out, pairs.len());
            let mut canonical = true;
            let mut prev_key: Option<(usize, usize)> = None;
            for (k, val) in pairs {
                let start = out.len();
                write_key(out, k);
                let end = out.len();
                if let Some((ps, pe)) = prev_key {
                    if out[ps..pe] >= out[start..end] {
                        canonical = false;
                    }
                }
                prev_key = Some((start, end));
                canonical &= write_value(out, val);
            }
            return canonical;
        }
    }
    true
}

/// The exact length of [`write_value`]'s output for `v` (so the buffer is allocated once,
/// at its final size).
pub fn encoded_len(v: &Value) -> usize {
    fn str_len(n: usize) -> usize {
        n + STR.head(n).1
    }
    fn sym_len(n: usize) -> usize {
        n + EXT.head(n).1 + 1
    }
    match v {
        Value::Nil | Value::Bool(_) => 1,
        Value::Int(i) => int_head(*i).1,
        Value::Float(_) => 9,
        Value::Str(s) => str_len(s.len()),
        Value::Bin(b) => b.len() + BIN.head(b.len()).1,
        Value::Sym(s) => sym_len(s.len()),
        Value::Array(items) => {
            ARRAY.head(items.len()).1 + items.iter().map(encoded_len).sum::<usize>()
        }
        Value::Map(pairs) => {
            MAP.head(pairs.len()).1
                + pairs
                    .iter()
                    .map(|(k, v)| {
                        let kl = match k {
                            MapKey::Sym(s) => sym_len(s.len()),
                            MapKey::Str(s) => str_len(s.len()),
                            MapKey::Int(i) => int_head(*i).1,
                        };
                        kl + encoded_len(v)
                    })
                    .sum::<usize>()
        }
    }
}
