//! MessagePack encoding of values, its validation, and the canonical form behind the
//! value hash.
//!
//! The storage encoding is plain MessagePack with one extension type: a Ruby Symbol is
//! `ext 1` holding its UTF-8 name, so Symbols and Strings (as values and as hash keys)
//! survive a round trip. UTF-8 strings are `str`, binary strings are `bin`, floats are
//! always `float 64`, integers use the shortest form. Maps keep insertion order.
//!
//! The canonical form used for the blake3 value hash is the same encoding with every
//! map's entries sorted by the bytes of their encoded keys, so the hash does not depend on
//! insertion order. When a value's maps are already in canonical order (or it has none)
//! the storage bytes *are* the canonical bytes and are hashed without a second encoding.
//!
//! Decoding never panics and never allocates more than the input justifies: lengths are
//! checked against the bytes that remain, and what is reserved ahead of decoding is
//! capped, so memory grows only with the items actually decoded.
//!
//! ## Why a hand-written codec
//!
//! A general MessagePack library (rmp, rmp-serde) reads and writes the format, but not
//! the two things this module exists for: the **canonical form** (one byte string per
//! value, whatever the insertion order of its maps or the width an outside writer chose
//! for a number, hashed without building a second encoding) and the **validation** of
//! stored bytes (UTF-8 names, Symbol-only extensions, distinct keys under every encoding
//! of a key, bounded nesting, no allocation beyond the input) together with a
//! classification of whether those bytes may be hashed as they are. Both need the reader
//! to see every header's exact form, so the codec is written here, in one place.
//!
//! | module | job |
//! |---|---|
//! | `marker` | the marker table and the one rule for integer and length headers |
//! | `write` | the storage form of values and record fields, and its exact size |
//! | `read` | the bounds-checked reader: validating, trusted tokens, fixed fields |
//! | `hash` | the canonical form, the value hash, map field look-up on encoded bytes |

mod hash;
mod marker;
mod read;
mod write;

pub(crate) use hash::{canonical_of_encoded, hash_stored, map_field};
pub use hash::{encode_value, hash_encoded, write_canonical, EncodedValue};
pub use marker::EXT_SYMBOL;
pub use read::{decode_value, Reader, Token, TrustedToken, Visitor};
pub use write::{
    encoded_len, write_array_len, write_bin, write_bool, write_f64, write_int, write_key,
    write_map_len, write_nil, write_str, write_sym, write_value,
};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

type DResult<T> = Result<T, DecodeError>;

fn derr<T>(msg: impl Into<String>) -> DResult<T> {
    Err(DecodeError(msg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::value::{MapKey, Value};

    fn sample() -> Value {
        Value::map([
            (MapKey::sym("title"), Value::from("Buy milk")),
            (MapKey::str("title"), Value::sym("open")),
            (MapKey::Int(-7), Value::Bin(vec![0, 255, 3])),
            (
                MapKey::sym("nested"),
                Value::array([
                    Value::Nil,
                    Value::Bool(true),
                    Value::Int(i64::MIN),
                    Value::Int(i64::MAX),
                    Value::Float(-0.5),
                    Value::Float(f64::INFINITY),
                ]),
            ),
        ])
    }

    #[test]
    fn round_trip_is_type_faithful() {
        let v = sample();
        let e = encode_value(&v);
        let back = decode_value(&e.bytes).unwrap();
        assert_eq!(back, v);
        // Order is kept, not just equality.
        if let (Value::Map(a), Value::Map(b)) = (&back, &v) {
            let ka: Vec<_> = a.iter().map(|p| &p.0).collect();
            let kb: Vec<_> = b.iter().map(|p| &p.0).collect();
            assert_eq!(ka, kb);
        }
    }

    #[test]
    fn hash_ignores_insertion_order_but_not_types() {
        let a = Value::map([
            (MapKey::sym("a"), Value::Int(1)),
            (MapKey::sym("b"), Value::Int(2)),
        ]);
        let b = Value::map([
            (MapKey::sym("b"), Value::Int(2)),
            (MapKey::sym("a"), Value::Int(1)),
        ]);
        let c = Value::map([
            (MapKey::str("a"), Value::Int(1)),
            (MapKey::sym("b"), Value::Int(2)),
        ]);
        let ha = encode_value(&a).hash;
        assert_eq!(ha, encode_value(&b).hash);
        assert_ne!(ha, encode_value(&c).hash);
        assert_eq!(hash_encoded(&encode_value(&b).bytes).unwrap(), ha);
    }

    /// The hash as defined: blake3 over `write_canonical` of the decoded value.
    fn reference_hash(bytes: &[u8]) -> [u8; 32] {
        let v = decode_value(bytes).unwrap();
        let mut c = Vec::new();
        write_canonical(&mut c, &v);
        *blake3::hash(&c).as_bytes()
    }

    fn arb_key() -> impl proptest::strategy::Strategy<Value = MapKey> {
        use proptest::prelude::*;
        prop_oneof![
            "[a-d]{0,3}".prop_map(MapKey::Sym),
            "[a-d]{0,3}".prop_map(MapKey::Str),
            (-300i64..300).prop_map(MapKey::Int),
        ]
    }

    fn arb_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            (-1000i64..1000).prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
            "[a-zé]{0,40}".prop_map(Value::Str),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bin),
            "[a-z]{0,300}".prop_map(Value::Sym),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((arb_key(), inner), 0..20).prop_map(|pairs| {
                    // Unique keys, in whatever order they came.
                    let mut seen = Vec::new();
                    Value::Map(
                        pairs
                            .into_iter()
                            .filter(|(k, _)| {
                                let fresh = !seen.contains(k);
                                seen.push(k.clone());
                                fresh
                            })
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn fast_hashing_matches_the_definition(v in arb_value()) {
            let e = encode_value(&v);
            let mut plain = Vec::new();
            write_value(&mut plain, &v);
            proptest::prop_assert_eq!(&plain, &e.bytes);
            proptest::prop_assert_eq!(encoded_len(&v), e.bytes.len());
            proptest::prop_assert_eq!(e.bytes.capacity(), e.bytes.len());
            let want = reference_hash(&e.bytes);
            proptest::prop_assert_eq!(e.hash, want);
            proptest::prop_assert_eq!(hash_encoded(&e.bytes).unwrap(), want);
        }
    }

    proptest::proptest! {
        #[test]
        fn map_field_finds_what_decoding_finds(v in arb_value(), k in arb_key()) {
            let e = encode_value(&v);
            let mut kb = Vec::new();
            write_key(&mut kb, &k);
            let want = v.get(&k).map(|x| encode_value(x).bytes);
            let got = map_field(&e.bytes, &kb).map(<[u8]>::to_vec);
            proptest::prop_assert_eq!(got, want);
            let mut canon = Vec::new();
            proptest::prop_assert!(canonical_of_encoded(&e.bytes, &mut canon));
            let mut want = Vec::new();
            write_canonical(&mut want, &v);
            proptest::prop_assert_eq!(canon, want);
        }
    }

    #[test]
    fn hashing_normalizes_non_minimal_encodings_like_decoding_does() {
        // {"b" => 1 (as int64), :a => 1.5 (as float32), "c" => [sym "x" as fixext1]} —
        // out of canonical order, with non-shortest forms.
        let mut b = vec![0x83];
        b.extend_from_slice(&[0xd9, 1, b'b', 0xd3, 0, 0, 0, 0, 0, 0, 0, 1]);
        b.extend_from_slice(&[0xd4, 1, b'a']); // fixext1 symbol key :a ... then value
        b.extend_from_slice(&[0xca]);
        b.extend_from_slice(&1.5f32.to_bits().to_be_bytes());
        b.extend_from_slice(&[0xa1, b'c', 0x91, 0xd4, 1, b'x']);
        assert_eq!(hash_encoded(&b).unwrap(), reference_hash(&b));
        // Field look-up normalizes keys the same way: :a written as fixext 1 is found.
        let mut ka = Vec::new();
        write_key(&mut ka, &MapKey::sym("a"));
        let raw = map_field(&b, &ka).unwrap();
        assert_eq!(decode_value(raw).unwrap(), Value::Float(1.5));
        let mut kb = Vec::new();
        write_key(&mut kb, &MapKey::str("b"));
        let mut canon = Vec::new();
        assert!(canonical_of_encoded(
            map_field(&b, &kb).unwrap(),
            &mut canon
        ));
        assert_eq!(canon, [1]);
    }

    #[test]
    fn forged_lengths_do_not_allocate() {
        // array32 claiming 4 billion items with 0 bytes behind it
        let bytes = [0xdd, 0xff, 0xff, 0xff, 0xff];
        assert!(decode_value(&bytes).is_err());
        let bytes = [0xdb, 0xff, 0xff, 0xff, 0xff];
        assert!(decode_value(&bytes).is_err());
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let bytes = [0xa2, 0xff, 0xfe];
        let e = decode_value(&bytes).unwrap_err();
        assert!(e.0.contains("UTF-8"), "{e}");
    }

    #[test]
    fn stored_bytes_in_any_form_hash_as_their_value() {
        // Found by the fuzzer: bytes that decode to a value but are not in this writer's
        // shortest form used to be hashed as they were, giving the same value two hashes.
        let cases: &[(&[u8], Value)] = &[
            (&[0xcf, 0, 0, 0, 0, 0, 0, 0, 1], Value::Int(1)),
            (&[0xd0, 0x05], Value::Int(5)),
            (&[0xca, 0x3f, 0x80, 0, 0], Value::Float(1.0)),
            (
                &[0xcb, 0xff, 0xf0, 0xff, 0xff, 0, 0, 0, 0],
                Value::Float(f64::NAN),
            ),
            (&[0xd9, 0x01, b'a'], Value::from("a")),
            (&[0xd4, 0x01, b'a'], Value::sym("a")),
            (&[0xdc, 0x00, 0x01, 0xc0], Value::array([Value::Nil])),
            (
                &[0xde, 0x00, 0x01, 0xd0, 0x01, 0xc0],
                Value::map([(MapKey::Int(1), Value::Nil)]),
            ),
        ];
        for (bytes, v) in cases {
            assert_eq!(
                hash_encoded(bytes).unwrap(),
                encode_value(v).hash,
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn stored_duplicate_keys_in_different_encodings_are_refused() {
        // Found by libFuzzer (target value): {63 => 127, 63 => 123} with the second 63
        // written as uint8 is in ascending byte order, which used to skip the check.
        let bytes = [0x82, 0x3f, 0x7f, 0xcc, 0x3f, 0x7b];
        let mut r = Reader::new(&bytes);
        assert!(r.skip_value(1).is_err());
        assert!(hash_encoded(&bytes).is_err());
        // The same for a symbol as ext8 and as fixext1.
        let bytes = [0x82, 0xc7, 0x01, 0x01, b'a', 0xc0, 0xd4, 0x01, b'a', 0xc0];
        assert!(Reader::new(&bytes).skip_value(1).is_err());
    }

    #[test]
    fn stored_duplicate_keys_are_refused() {
        let bytes = [0x82, 0xa1, b'a', 0x01, 0xa1, b'a', 0x02];
        assert!(
            decode_value(&bytes).is_ok(),
            "decoding alone does not judge"
        );
        let e = hash_encoded(&bytes).unwrap_err();
        assert!(e.0.contains("twice"), "{e}");
    }

    #[test]
    fn every_int_width_round_trips() {
        for v in [
            0,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            u32::MAX as i64,
            u32::MAX as i64 + 1,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32768,
            -32769,
            i32::MIN as i64,
            i32::MIN as i64 - 1,
        ] {
            let e = encode_value(&Value::Int(v));
            assert_eq!(decode_value(&e.bytes).unwrap(), Value::Int(v), "{v}");
        }
    }

    /// Rebuilds a value from tokens alone: the token stream carries everything.
    fn from_tokens(r: &mut Reader<'_>) -> Value {
        match r.token().unwrap() {
            Token::Nil => Value::Nil,
            Token::Bool(b) => Value::Bool(b),
            Token::Int(i) => Value::Int(i),
            Token::Float(f) => Value::Float(f),
            Token::Str(s) => Value::from(s),
            Token::Bin(b) => Value::Bin(b.to_vec()),
            Token::Sym(s) => Value::sym(s),
            Token::Array(n) => Value::Array((0..n).map(|_| from_tokens(r)).collect()),
            Token::Map(n) => Value::Map(
                (0..n)
                    .map(|_| {
                        let k = MapKey::from_value(&from_tokens(r)).unwrap();
                        (k, from_tokens(r))
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn tokens_describe_the_whole_value() {
        let v = sample();
        let e = encode_value(&v);
        let mut r = Reader::new(&e.bytes);
        assert_eq!(from_tokens(&mut r), v);
        assert_eq!(r.remaining(), 0);
        let mut forged = Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert!(
            forged.token().is_err(),
            "lengths are checked against the input"
        );
    }

    /// Rebuilds a value as a [`Visitor`] (validating the UTF-8 here, as a consumer of
    /// trusted bytes would have to for untrusted ones).
    struct Rebuild;

    impl<'a> Visitor<'a> for Rebuild {
        type Out = Value;
        fn nil(&mut self) -> Option<Value> {
            Some(Value::Nil)
        }
        fn bool(&mut self, b: bool) -> Option<Value> {
            Some(Value::Bool(b))
        }
        fn int(&mut self, i: i64) -> Option<Value> {
            Some(Value::Int(i))
        }
        fn float(&mut self, f: f64) -> Option<Value> {
            Some(Value::Float(f))
        }
        fn str(&mut self, b: &'a [u8]) -> Option<Value> {
            std::str::from_utf8(b).ok().map(Value::from)
        }
        fn bin(&mut self, b: &'a [u8]) -> Option<Value> {
            Some(Value::Bin(b.to_vec()))
        }
        fn sym(&mut self, b: &'a [u8]) -> Option<Value> {
            std::str::from_utf8(b).ok().map(Value::sym)
        }
        fn array(&mut self, r: &mut Reader<'a>, n: usize) -> Option<Value> {
            (0..n)
                .map(|_| r.visit(self))
                .collect::<Option<_>>()
                .map(Value::Array)
        }
        fn map(&mut self, r: &mut Reader<'a>, n: usize) -> Option<Value> {
            let mut pairs = Vec::new();
            for _ in 0..n {
                let k = MapKey::from_value(&r.visit(self)?)?;
                pairs.push((k, r.visit(self)?));
            }
            Some(Value::Map(pairs))
        }
    }

    proptest::proptest! {
        #[test]
        fn a_visitor_sees_the_whole_value(v in arb_value()) {
            let e = encode_value(&v);
            let mut r = Reader::new(&e.bytes);
            proptest::prop_assert_eq!(r.visit(&mut Rebuild), Some(v));
            proptest::prop_assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn trusted_tokens_read_every_form_the_reader_accepts() {
        // Non-shortest forms an outside writer may use (float 32, fixext, int64 for 1,
        // str 8 for a short string) come out as the same tokens as the shortest form.
        let mut b = vec![0x95, 0xca];
        b.extend_from_slice(&1.5f32.to_bits().to_be_bytes());
        b.extend_from_slice(&[0xd4, 1, b'a', 0xd3, 0, 0, 0, 0, 0, 0, 0, 1, 0xd9, 1, b'x']);
        b.extend_from_slice(&[0xc4, 2, 0xff, 0x00]);
        let mut r = Reader::new(&b);
        let got: Vec<_> = (0..6).map(|_| r.trusted_token().unwrap()).collect();
        assert_eq!(
            got,
            [
                TrustedToken::Array(5),
                TrustedToken::Float(1.5),
                TrustedToken::Sym(b"a"),
                TrustedToken::Int(1),
                TrustedToken::Str(b"x"),
                TrustedToken::Bin(&[0xff, 0x00]),
            ]
        );
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn trusted_tokens_still_check_lengths_and_extension_types() {
        // Whatever the bytes, the trusted reader errs instead of panicking or reserving.
        for bad in [
            &[0xdd, 0xff, 0xff, 0xff, 0xff][..], // array32 of 4 billion, nothing behind
            &[0xdf, 0xff, 0xff, 0xff, 0xff][..], // map32, same
            &[0xdb, 0x00, 0x00, 0x01, 0x00][..], // str32 of 256 bytes, none there
            &[0xc7, 0x01, 0x02, b'a'][..],       // ext type 2: not a Symbol
            &[0xc1][..],                         // never-used marker
            &[0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0][..], // uint64 above i64::MAX
            &[][..],
        ] {
            let mut r = Reader::new(bad);
            assert!(r.trusted_token().is_none(), "{bad:02x?}");
            assert!(!r.trusted_error().0.is_empty());
        }
        // Invalid UTF-8 is handed out as bytes (the store validated them before), while
        // the validating token refuses it.
        let b = [0xa2, 0xff, 0xfe];
        assert_eq!(
            Reader::new(&b).trusted_token().unwrap(),
            TrustedToken::Str(&[0xff, 0xfe])
        );
        let e = Reader::new(&b).token().unwrap_err();
        assert!(e.0.contains("offset 1 is not valid UTF-8"), "{e}");
    }

    #[test]
    fn one_length_rule_for_every_family() {
        // Every boundary of every length family: the header written, the header size the
        // exact-size computation counts, and the reader's "shortest form" check agree.
        for n in [0usize, 1, 15, 16, 31, 32, 255, 256, 65535, 65536] {
            let s = "a".repeat(n);
            let sym = Value::Sym(s.clone());
            let arr = Value::Array(vec![Value::Nil; n]);
            let bin = Value::Bin(vec![7; n]);
            for v in [Value::Str(s), sym, arr, bin] {
                let e = encode_value(&v);
                assert_eq!(encoded_len(&v), e.bytes.len(), "{n}");
                let mut r = Reader::new(&e.bytes);
                assert!(r.skip_value(1).unwrap(), "writer's form is canonical: {n}");
                assert_eq!(decode_value(&e.bytes).unwrap(), v);
            }
        }
    }
}
