//! Typed writes and reads on the ledger's own types: `Write::typed`, `Fact::value_as`,
//! `LedgerStore::read_as` and friends, and [`TypedStore`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{from_slice, from_value_ref, to_value_with, KeyStyle, TypedError};
use crate::{
    Append, Fact, HistoryQuery, LedgerStore, PartitionQuery, Read, ReadFact, Result, Timestamp,
    Write,
};

impl Write {
    /// A write of any `T: Serialize` to (`store`, `key`), struct fields and string map
    /// keys as Symbols (see [`crate::typed`] for the mapping). Fails, before anything is
    /// written, when the value cannot be represented.
    ///
    /// ```
    /// use igniter_ledger::{LedgerStore, Write};
    /// #[derive(serde::Serialize)]
    /// struct Task { title: String, done: bool }
    /// let ledger = LedgerStore::memory();
    /// let task = Task { title: "Buy milk".into(), done: false };
    /// ledger.write(Write::typed("tasks", "t1", &task)?.valid_time(1.0))?;
    /// # Ok::<(), igniter_ledger::Error>(())
    /// ```
    pub fn typed<T: Serialize + ?Sized>(
        store: impl Into<String>,
        key: impl Into<String>,
        value: &T,
    ) -> std::result::Result<Write, TypedError> {
        Write::typed_with(store, key, value, KeyStyle::Symbols)
    }

    /// As [`Write::typed`] with the given key style.
    pub fn typed_with<T: Serialize + ?Sized>(
        store: impl Into<String>,
        key: impl Into<String>,
        value: &T,
        keys: KeyStyle,
    ) -> std::result::Result<Write, TypedError> {
        Ok(Write::new(store, key, to_value_with(value, keys)?))
    }
}

impl Append {
    /// An append of any `T: Serialize` to `history`, with Symbol keys. Errors name the
    /// path from `event`.
    pub fn typed<T: Serialize + ?Sized>(
        history: impl Into<String>,
        event: &T,
    ) -> std::result::Result<Append, TypedError> {
        Append::typed_with(history, event, KeyStyle::Symbols)
    }

    /// As [`Append::typed`] with the given key style.
    pub fn typed_with<T: Serialize + ?Sized>(
        history: impl Into<String>,
        event: &T,
        keys: KeyStyle,
    ) -> std::result::Result<Append, TypedError> {
        let v = to_value_with(event, keys).map_err(|e| e.rooted("event"))?;
        Ok(Append::new(history, v))
    }
}

impl Fact {
    /// The value decoded straight from its stored bytes into `T` (no [`Value`](crate::Value)
    /// tree is built). `T` may borrow strings and bytes from the fact.
    ///
    /// ```
    /// use igniter_ledger::{Fact, Write, value};
    /// let f = Fact::build(Write::new("notes", "n1", value!({ text: "hi", tags: [:a] })))?;
    /// #[derive(serde::Deserialize)]
    /// struct Note<'a> { text: &'a str, tags: Vec<String> }
    /// let note: Note = f.value_as()?;
    /// assert_eq!((note.text, note.tags), ("hi", vec!["a".to_owned()]));
    /// # Ok::<(), igniter_ledger::Error>(())
    /// ```
    ///
    /// `T` may borrow from the fact, so a fact located in a sealed segment (whose bytes
    /// are read back on each call, see [`Fact::is_located`]) is refused here: use
    /// [`Fact::value_as_owned`] for those.
    pub fn value_as<'a, T: Deserialize<'a>>(&'a self) -> std::result::Result<T, TypedError> {
        match self.try_value_bytes() {
            Ok(std::borrow::Cow::Borrowed(b)) => from_slice(b),
            Ok(std::borrow::Cow::Owned(_)) => Err(TypedError::msg(
                "lives in a sealed segment and cannot be borrowed: use value_as_owned",
            )),
            Err(e) => Err(TypedError::msg(format!("cannot be read: {e}"))),
        }
    }

    /// The value as an owned `T`, for any fact (a located fact's bytes are read back from
    /// its segment).
    pub fn value_as_owned<T: serde::de::DeserializeOwned>(
        &self,
    ) -> std::result::Result<T, TypedError> {
        let b = self
            .try_value_bytes()
            .map_err(|e| TypedError::msg(format!("cannot be read: {e}")))?;
        from_slice(&b)
    }

    /// The recorded producer as `T` (None when none was recorded). Errors name the path
    /// from `producer`.
    pub fn producer_as<'a, T: Deserialize<'a>>(
        &'a self,
    ) -> Option<std::result::Result<T, TypedError>> {
        match self.producer_bytes()? {
            std::borrow::Cow::Borrowed(b) => Some(from_slice(b).map_err(|e| e.rooted("producer"))),
            std::borrow::Cow::Owned(_) => Some(Err(TypedError::msg(
                "lives in a sealed segment and cannot be borrowed",
            )
            .rooted("producer"))),
        }
    }

    /// The recorded derivation as `T` (None when none was recorded). Errors name the path
    /// from `derivation`.
    pub fn derivation_as<'a, T: Deserialize<'a>>(
        &'a self,
    ) -> Option<std::result::Result<T, TypedError>> {
        match self.derivation_bytes()? {
            std::borrow::Cow::Borrowed(b) => {
                Some(from_slice(b).map_err(|e| e.rooted("derivation")))
            }
            std::borrow::Cow::Owned(_) => Some(Err(TypedError::msg(
                "lives in a sealed segment and cannot be borrowed",
            )
            .rooted("derivation"))),
        }
    }
}

impl ReadFact {
    /// The value readers see (coerced if a coercion changed it), as `T`: decoded straight
    /// from the stored bytes when there is no coercion.
    pub fn value_as<'a, T: Deserialize<'a>>(&'a self) -> std::result::Result<T, TypedError> {
        match &self.coerced {
            Some(v) => from_value_ref(v),
            None => self.fact.value_as(),
        }
    }
}

fn all_as<T: DeserializeOwned>(facts: Vec<ReadFact>) -> Result<Vec<T>> {
    facts
        .iter()
        .map(|f| f.value_as().map_err(Into::into))
        .collect()
}

impl LedgerStore {
    /// [`read`](LedgerStore::read) as `T`: the value a point read sees, decoded straight
    /// from its stored bytes (through the store's coercion, if one is registered).
    pub fn read_as<T: DeserializeOwned>(&self, q: Read) -> Result<Option<T>> {
        match self.read_fact(q)? {
            Some(f) => Ok(Some(f.value_as()?)),
            None => Ok(None),
        }
    }

    /// [`history`](LedgerStore::history) as values of type `T`, in commit order.
    pub fn history_as<T: DeserializeOwned>(&self, q: HistoryQuery) -> Result<Vec<T>> {
        all_as(self.history(q)?)
    }

    /// [`history_partition`](LedgerStore::history_partition) as values of type `T`.
    pub fn history_partition_as<T: DeserializeOwned>(&self, q: PartitionQuery) -> Result<Vec<T>> {
        all_as(self.history_partition(q)?)
    }

    /// [`query`](LedgerStore::query) as `(key, T)` pairs, ordered by key.
    pub fn query_as<T: DeserializeOwned>(
        &self,
        store: &str,
        scope: &str,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<(String, T)>> {
        self.query(store, scope, as_of)?
            .iter()
            .map(|f| Ok((f.key().to_owned(), f.value_as()?)))
            .collect()
    }

    /// A typed handle on one store: typed writes, appends and reads with one key style.
    ///
    /// ```
    /// use igniter_ledger::{KeyStyle, LedgerStore, value};
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Price { cents: i64 }
    /// let ledger = LedgerStore::memory();
    /// let prices = ledger.typed("prices").keys(KeyStyle::Strings);
    /// prices.write("sku-1", &Price { cents: 1000 })?;
    /// assert_eq!(prices.read::<Price>("sku-1")?, Some(Price { cents: 1000 }));
    /// assert_eq!(ledger.latest("prices", "sku-1").unwrap().value(), value!({ "cents" => 1000 }));
    /// # Ok::<(), igniter_ledger::Error>(())
    /// ```
    pub fn typed(&self, store: impl Into<String>) -> TypedStore<'_> {
        TypedStore {
            ledger: self,
            store: store.into(),
            keys: KeyStyle::Symbols,
        }
    }
}

/// Typed access to one store of a [`LedgerStore`] (see [`LedgerStore::typed`]): the key
/// style is chosen once for the store, and every value goes through serde.
#[derive(Clone)]
pub struct TypedStore<'a> {
    ledger: &'a LedgerStore,
    store: String,
    keys: KeyStyle,
}

impl TypedStore<'_> {
    /// Writes struct fields and string map keys in this style (default: Symbols).
    pub fn keys(mut self, keys: KeyStyle) -> Self {
        self.keys = keys;
        self
    }

    /// The store's name.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// The write request for `value` at `key` (to add a valid time, an expected fact...
    /// before passing it to [`LedgerStore::write`]).
    pub fn write_request<T: Serialize + ?Sized>(
        &self,
        key: impl Into<String>,
        value: &T,
    ) -> std::result::Result<Write, TypedError> {
        Write::typed_with(self.store.clone(), key, value, self.keys)
    }

    /// Writes `value` at `key`.
    pub fn write<T: Serialize + ?Sized>(&self, key: impl Into<String>, value: &T) -> Result<Fact> {
        self.ledger.write(self.write_request(key, value)?)
    }

    /// Appends `event` to this store as a history.
    pub fn append<T: Serialize + ?Sized>(&self, event: &T) -> Result<Fact> {
        self.ledger
            .append(Append::typed_with(self.store.clone(), event, self.keys)?)
    }

    /// The current value of `key` as `T`, or None.
    pub fn read<T: DeserializeOwned>(&self, key: impl Into<String>) -> Result<Option<T>> {
        self.ledger.read_as(Read::new(self.store.clone(), key))
    }

    /// Every value of `key`, oldest first.
    pub fn versions<T: DeserializeOwned>(&self, key: impl Into<String>) -> Result<Vec<T>> {
        self.ledger
            .history_as(HistoryQuery::new(self.store.clone()).key(key))
    }

    /// Every value of the store (of every key), in commit order.
    pub fn history<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.ledger
            .history_as(HistoryQuery::new(self.store.clone()))
    }
}
