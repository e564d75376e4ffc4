//! The `value!` macro: literal ledger values in Ruby's notation.

use crate::{MapKey, Value};

/// A literal [`Value`](crate::Value) in Ruby's notation.
///
/// - `nil`, and any expression convertible with `Value::from` (`1`, `12.5`, `"a"`,
///   `true`, a `String`, a `Value`, an `Option`...);
/// - `:name` or `:"any name"`: a Symbol;
/// - `[a, b, ...]`: an Array;
/// - `{ name: v, "str" => v, 7 => v, (expr) => v }`: a Hash; `name:` is a Symbol key,
///   a string literal before `=>` a String key, an integer literal an Integer key, and a
///   parenthesized expression any [`MapKey`](crate::MapKey).
///
/// ```
/// use igniter_ledger::{value, MapKey, Value};
///
/// let total = 12.5;
/// let v = value!({ status: :paid, total: total, tags: ["a", :b], "note" => nil, 7 => [1, -2] });
/// assert_eq!(v, Value::map([
///     (MapKey::sym("status"), Value::sym("paid")),
///     (MapKey::sym("total"), Value::Float(12.5)),
///     (MapKey::sym("tags"), Value::array([Value::from("a"), Value::sym("b")])),
///     (MapKey::str("note"), Value::Nil),
///     (MapKey::Int(7), Value::array([Value::Int(1), Value::Int(-2)])),
/// ]));
/// assert_eq!(value!(:"odd name"), Value::sym("odd name"));
/// assert_eq!(value!([]), Value::Array(vec![]));
/// assert_eq!(value!({}), Value::Map(vec![]));
/// ```
#[macro_export]
macro_rules! value {
    // ---- hashes: @map [entries done] tokens...
    (@map [$($done:expr,)*]) => {
        $crate::Value::Map(::std::vec![$($done,)*])
    };
    (@map [$($done:expr,)*] , $($rest:tt)*) => {
        $crate::value!(@map [$($done,)*] $($rest)*)
    };
    // Fast paths (one expansion step per entry, so long literals stay far from the
    // recursion limit): `name: :sym,` and `name: <one token>,`.
    (@map [$($done:expr,)*] $k:ident : : $s:ident $(, $($rest:tt)*)?) => {
        $crate::value!(@map [$($done,)* ($crate::MapKey::Sym(::std::string::String::from(stringify!($k))), $crate::value!(: $s)),] $($($rest)*)?)
    };
    (@map [$($done:expr,)*] $k:ident : $v:tt $(, $($rest:tt)*)?) => {
        $crate::value!(@map [$($done,)* ($crate::MapKey::Sym(::std::string::String::from(stringify!($k))), $crate::value!($v)),] $($($rest)*)?)
    };
    (@map [$($done:expr,)*] $k:ident : $($rest:tt)*) => {
        $crate::value!(@val [$($done,)*] ($crate::MapKey::Sym(::std::string::String::from(stringify!($k)))) [] $($rest)*)
    };
    (@map [$($done:expr,)*] ($k:expr) => $($rest:tt)*) => {
        $crate::value!(@val [$($done,)*] ($crate::MapKey::from($k)) [] $($rest)*)
    };
    (@map [$($done:expr,)*] $k:literal => $($rest:tt)*) => {
        $crate::value!(@val [$($done,)*] ($crate::MapKey::from($k)) [] $($rest)*)
    };
    // ---- one hash value: @val [entries done] (key) [value tokens so far] tokens...
    (@val [$($done:expr,)*] ($key:expr) [$($v:tt)+] , $($rest:tt)*) => {
        $crate::value!(@map [$($done,)* ($key, $crate::value!($($v)+)),] $($rest)*)
    };
    (@val [$($done:expr,)*] ($key:expr) [$($v:tt)+]) => {
        $crate::value!(@map [$($done,)* ($key, $crate::value!($($v)+)),])
    };
    (@val [$($done:expr,)*] ($key:expr) [$($v:tt)*] $next:tt $($rest:tt)*) => {
        $crate::value!(@val [$($done,)*] ($key) [$($v)* $next] $($rest)*)
    };
    // ---- arrays: @arr [items done] [item tokens so far] tokens...
    (@arr [$($done:expr,)*] []) => {
        $crate::Value::Array(::std::vec![$($done,)*])
    };
    (@arr [$($done:expr,)*] [$($v:tt)+]) => {
        $crate::Value::Array(::std::vec![$($done,)* $crate::value!($($v)+),])
    };
    // Fast path: a one-token item.
    (@arr [$($done:expr,)*] [] $v:tt $(, $($rest:tt)*)?) => {
        $crate::value!(@arr [$($done,)* $crate::value!($v),] [] $($($rest)*)?)
    };
    (@arr [$($done:expr,)*] [$($v:tt)+] , $($rest:tt)*) => {
        $crate::value!(@arr [$($done,)* $crate::value!($($v)+),] [] $($rest)*)
    };
    (@arr [$($done:expr,)*] [$($v:tt)*] $next:tt $($rest:tt)*) => {
        $crate::value!(@arr [$($done,)*] [$($v)* $next] $($rest)*)
    };
    // ---- entry points
    (nil) => {
        $crate::Value::Nil
    };
    (: $name:ident) => {
        $crate::Value::Sym(::std::string::String::from(stringify!($name)))
    };
    (: $name:literal) => {
        $crate::Value::Sym(::std::string::String::from($name))
    };
    ([ $($items:tt)* ]) => {
        $crate::value!(@arr [] [] $($items)*)
    };
    ({ $($entries:tt)* }) => {
        $crate::value!(@map [] $($entries)*)
    };
    ($other:expr) => {
        $crate::Value::from($other)
    };
}

// Conversions the macro relies on (hash keys from literals, a few more scalar types).

impl From<&str> for MapKey {
    /// A String key.
    fn from(s: &str) -> Self {
        MapKey::Str(s.to_owned())
    }
}
impl From<String> for MapKey {
    /// A String key.
    fn from(s: String) -> Self {
        MapKey::Str(s)
    }
}
impl From<i64> for MapKey {
    fn from(i: i64) -> Self {
        MapKey::Int(i)
    }
}
impl From<i32> for MapKey {
    fn from(i: i32) -> Self {
        MapKey::Int(i.into())
    }
}
impl From<u32> for MapKey {
    fn from(i: u32) -> Self {
        MapKey::Int(i.into())
    }
}

macro_rules! lossless_from {
    ($($t:ty => $variant:ident),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(v.into())
            }
        }
    )*};
}
lossless_from!(i8 => Int, i16 => Int, u8 => Int, u16 => Int, f32 => Float);

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Str(v.clone())
    }
}
impl From<MapKey> for Value {
    /// The key as a value (a Symbol key gives a Symbol, and so on).
    fn from(k: MapKey) -> Self {
        match k {
            MapKey::Sym(s) => Value::Sym(s),
            MapKey::Str(s) => Value::Str(s),
            MapKey::Int(i) => Value::Int(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{MapKey, Value};

    #[test]
    fn scalars_symbols_and_expressions() {
        assert_eq!(value!(nil), Value::Nil);
        assert_eq!(value!(true), Value::Bool(true));
        assert_eq!(value!(-3), Value::Int(-3));
        assert_eq!(value!(2.5), Value::Float(2.5));
        assert_eq!(value!("s"), Value::from("s"));
        assert_eq!(value!(:open), Value::sym("open"));
        let n = 4i64;
        assert_eq!(value!(n * 2), Value::Int(8));
        assert_eq!(value!(Some("x")), Value::from("x"));
        assert_eq!(value!(None::<i64>), Value::Nil);
    }

    #[test]
    fn nested_containers_with_every_key_kind() {
        let inner = value!({ a: 1 });
        let v = value!({
            list: [1, [2, [:three]], { deep: nil }],
            "str" => :sym,
            -1 => "minus one",
            (MapKey::sym("computed")) => inner.clone(),
            trailing: "comma",
        });
        assert_eq!(
            v,
            Value::map([
                (
                    MapKey::sym("list"),
                    Value::array([
                        Value::Int(1),
                        Value::array([Value::Int(2), Value::array([Value::sym("three")])]),
                        Value::map([(MapKey::sym("deep"), Value::Nil)]),
                    ])
                ),
                (MapKey::str("str"), Value::sym("sym")),
                (MapKey::Int(-1), Value::from("minus one")),
                (MapKey::sym("computed"), inner),
                (MapKey::sym("trailing"), Value::from("comma")),
            ])
        );
        assert_eq!(
            value!([1, 2,]),
            Value::array([Value::Int(1), Value::Int(2)])
        );
        assert_eq!(
            value!([-1, :a, 2.5 * 2.0]),
            Value::array([Value::Int(-1), Value::sym("a"), Value::Float(5.0)])
        );
    }

    #[test]
    fn long_literals_stay_within_the_recursion_limit() {
        let v = value!({
            a0: 0, a1: :s, a2: "x", a3: [1, 2, 3], a4: { b: 1 }, a5: nil, a6: true, a7: -7,
            a8: 0, a9: :s, b0: "x", b1: [1, 2, 3], b2: { b: 1 }, b3: nil, b4: true, b5: -7,
            b6: 0, b7: :s, b8: "x", b9: [1, 2, 3], c0: { b: 1 }, c1: nil, c2: true, c3: -7,
            c4: 0, c5: :s, c6: "x", c7: [1, 2, 3], c8: { b: 1 }, c9: nil, d0: true, d1: -7,
            d2: 0, d3: :s, d4: "x", d5: [1, 2, 3], d6: { b: 1 }, d7: nil, d8: true, d9: -7,
            e0: 0, e1: :s, e2: "x", e3: [1, 2, 3], e4: { b: 1 }, e5: nil, e6: true, e7: -7,
            e8: 0, e9: :s, f0: "x", f1: [1, 2, 3], f2: { b: 1 }, f3: nil, f4: true, f5: -7,
        });
        let Value::Map(pairs) = &v else {
            panic!("a map")
        };
        assert_eq!(pairs.len(), 56);
        assert_eq!(v.get_sym("f5"), Some(&Value::Int(-7)));
        assert_eq!(v.get_sym("e9"), Some(&Value::sym("s")));
        let list = value!([
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8,
            9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7,
            8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6,
            7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
        ]);
        assert_eq!(
            list,
            Value::Array((0..100).map(|i| Value::Int(i % 10)).collect())
        );
    }
}
