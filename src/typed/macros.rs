//! The `value!` macro: literal ledger values in Ruby's notation.

use crate::ledger::{MapKey, Value};

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
    use crate::ledger::{MapKey, Value};

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
    }
}
