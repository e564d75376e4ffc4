//! The descriptor registry: what has been registered, by kind, in registration order.

use std::collections::HashMap;

use crate::Value;

use super::descriptor::{Checked, RelationRule};
use super::packet::{obj, sym};

/// Named entries in registration order; registering a name again replaces its entry.
#[derive(Clone, Debug, Default)]
pub struct Named {
    entries: Vec<(String, Value)>,
}

impl Named {
    fn put(&mut self, name: &str, v: Value) {
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = v,
            None => self.entries.push((name.to_owned(), v)),
        }
    }
    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
    /// True when there is an entry named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    /// The entries in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// `{name => entry}` with Symbol keys.
    pub fn to_value(&self) -> Value {
        Value::Map(
            self.entries
                .iter()
                .map(|(n, v)| (crate::MapKey::sym(n.as_str()), v.clone()))
                .collect(),
        )
    }
}

/// Named entries grouped by owner (commands and effects), in registration order.
#[derive(Clone, Debug, Default)]
pub struct Grouped {
    groups: Vec<(String, Named)>,
}

impl Grouped {
    fn put(&mut self, owner: &str, name: &str, v: Value) {
        match self.groups.iter_mut().find(|(o, _)| o == owner) {
            Some((_, named)) => named.put(name, v),
            None => {
                let mut named = Named::default();
                named.put(name, v);
                self.groups.push((owner.to_owned(), named));
            }
        }
    }
    /// The entry of `owner` named `name`.
    pub fn get(&self, owner: &str, name: &str) -> Option<&Value> {
        self.groups
            .iter()
            .find(|(o, _)| o == owner)
            .and_then(|(_, n)| n.get(name))
    }
    /// Number of entries over all owners.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|(_, n)| n.len()).sum()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
    /// `{owner => {name => entry}}` with Symbol keys.
    pub fn to_value(&self) -> Value {
        Value::Map(
            self.groups
                .iter()
                .map(|(o, n)| (crate::MapKey::sym(o.as_str()), n.to_value()))
                .collect(),
        )
    }
}

/// Everything registered through descriptors.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    /// Store descriptors by name.
    pub stores: Named,
    /// History descriptors by name.
    pub histories: Named,
    /// Access path descriptors by name.
    pub access_paths: Named,
    /// Relation descriptors by name.
    pub relations: Named,
    /// Relation rules by name.
    pub relation_rules: Vec<RelationRule>,
    /// Projection descriptors (normalized) by name.
    pub projections: Named,
    /// Derivation descriptors by name (metadata only).
    pub derivations: Named,
    /// Command descriptors by owner, then name.
    pub commands: Grouped,
    /// Effect descriptors by owner, then name.
    pub effects: Grouped,
    /// Subscription descriptors by name.
    pub subscriptions: Named,
    /// The content hash of the current descriptor of each (kind, owner, name).
    hashes: HashMap<(String, String, String), [u8; 32]>,
}

impl Registry {
    /// True when exactly this descriptor is the current one for its kind and name.
    pub fn is_current(&self, c: &Checked) -> bool {
        self.hashes.get(&identity(c)) == Some(&c.hash)
    }

    /// Records a checked descriptor (replacing an earlier one of the same kind and name).
    pub fn put(&mut self, c: &Checked) {
        self.hashes.insert(identity(c), c.hash);
        let d = c.descriptor.clone();
        match c.kind {
            "store" => self.stores.put(&c.name, d),
            "history" => self.histories.put(&c.name, d),
            "access_path" => self.access_paths.put(&c.name, d),
            "relation" => {
                if let Some(rule) = RelationRule::of(&d) {
                    self.relation_rules.retain(|r| r.name != rule.name);
                    self.relation_rules.push(rule);
                }
                self.relations.put(&c.name, d)
            }
            "projection" => self.projections.put(&c.name, d),
            "derivation" => self.derivations.put(&c.name, d),
            "command" => self
                .commands
                .put(c.owner.as_deref().unwrap_or(""), &c.name, d),
            "effect" => self
                .effects
                .put(c.owner.as_deref().unwrap_or(""), &c.name, d),
            "subscription" => self.subscriptions.put(&c.name, d),
            _ => {}
        }
    }

    /// A relation rule by name.
    pub fn relation(&self, name: &str) -> Option<&RelationRule> {
        self.relation_rules.iter().find(|r| r.name == name)
    }

    /// The descriptors as registered, by kind (`descriptor_snapshot`).
    pub fn descriptor_snapshot(&self) -> Value {
        obj([
            ("schema_version", Value::Int(1)),
            ("stores", self.stores.to_value()),
            ("histories", self.histories.to_value()),
            ("access_paths", self.access_paths.to_value()),
            ("relations", self.relations.to_value()),
            ("projections", self.projections.to_value()),
            ("derivations", self.derivations.to_value()),
            ("commands", self.commands.to_value()),
            ("effects", self.effects.to_value()),
            ("subscriptions", self.subscriptions.to_value()),
        ])
    }

    /// Descriptor counts by kind (for the observability snapshot).
    pub fn counts(&self) -> Value {
        obj([
            ("stores", Value::Int(self.stores.len() as i64)),
            ("histories", Value::Int(self.histories.len() as i64)),
            ("access_paths", Value::Int(self.access_paths.len() as i64)),
            ("relations", Value::Int(self.relations.len() as i64)),
            ("projections", Value::Int(self.projections.len() as i64)),
            ("derivations", Value::Int(self.derivations.len() as i64)),
            ("commands", Value::Int(self.commands.len() as i64)),
            ("effects", Value::Int(self.effects.len() as i64)),
            ("subscriptions", Value::Int(self.subscriptions.len() as i64)),
        ])
    }

    /// Relation rules as metadata, by name.
    pub fn relation_metadata(&self) -> Value {
        Value::Map(
            self.relation_rules
                .iter()
                .map(|r| (crate::MapKey::sym(r.name.as_str()), r.to_value()))
                .collect(),
        )
    }

    /// The scatters relations imply.
    pub fn scatters(&self) -> Vec<Value> {
        self.relation_rules
            .iter()
            .map(RelationRule::scatter)
            .collect()
    }

    /// The fields `access_path` descriptors of `store` name (what `query` may look up
    /// in a field index).
    pub fn indexed_fields(&self, store: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, d) in self.access_paths.iter() {
            let of_store = super::packet::field(d, "store").and_then(super::packet::name_of);
            if of_store != Some(store) {
                continue;
            }
            if let Some(Value::Array(fields)) = super::packet::field(d, "fields") {
                for f in fields {
                    let name = match f {
                        Value::Map(_) => {
                            super::packet::field(f, "name").and_then(super::packet::name_of)
                        }
                        other => super::packet::name_of(other),
                    };
                    if let Some(n) = name {
                        if !out.iter().any(|o| o == n) {
                            out.push(n.to_owned());
                        }
                    }
                }
            }
        }
        out
    }

    /// Access path descriptors grouped by store, as routing metadata
    /// (`{store => [{scope:, store:, fields:, unique:, source: :descriptor}]}`).
    pub fn access_paths_by_store(&self) -> Vec<(String, Value)> {
        let mut out: Vec<(String, Vec<Value>)> = Vec::new();
        for (name, d) in self.access_paths.iter() {
            let store = super::packet::field(d, "store")
                .and_then(super::packet::name_of)
                .unwrap_or("")
                .to_owned();
            let entry = obj([
                ("scope", sym(name)),
                ("store", sym(&store)),
                (
                    "fields",
                    super::packet::field(d, "fields")
                        .cloned()
                        .unwrap_or(Value::Array(Vec::new())),
                ),
                (
                    "unique",
                    Value::Bool(super::packet::field(d, "unique") == Some(&Value::Bool(true))),
                ),
                ("source", sym("descriptor")),
            ]);
            match out.iter_mut().find(|(s, _)| *s == store) {
                Some((_, v)) => v.push(entry),
                None => out.push((store, vec![entry])),
            }
        }
        out.into_iter().map(|(s, v)| (s, Value::Array(v))).collect()
    }
}

fn identity(c: &Checked) -> (String, String, String) {
    (
        c.kind.to_owned(),
        c.owner.clone().unwrap_or_default(),
        c.name.clone(),
    )
}
