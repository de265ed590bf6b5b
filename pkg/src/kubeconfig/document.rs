//! A kubeconfig held as plain YAML values: kindred edits its own three entries and
//! `current-context` and carries everything else through untouched, including fields it has
//! never heard of.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::entry::Entry;
use super::error::KubeconfigError;
use super::yaml_text;

/// The lists kindred adds to; each item is a map with a `name`.
const LISTS: [&str; 3] = ["clusters", "users", "contexts"];
const CURRENT_CONTEXT: &str = "current-context";

pub(super) struct Document {
    root: Mapping,
}

impl Document {
    /// A kubeconfig with nothing in it, keyed in the order kubectl writes.
    pub fn empty() -> Self {
        let mut root = Mapping::new();
        root.insert("apiVersion".into(), "v1".into());
        root.insert("clusters".into(), Value::Sequence(Vec::new()));
        root.insert("contexts".into(), Value::Sequence(Vec::new()));
        root.insert(CURRENT_CONTEXT.into(), "".into());
        root.insert("kind".into(), "Config".into());
        root.insert("preferences".into(), Value::Mapping(Mapping::new()));
        root.insert("users".into(), Value::Sequence(Vec::new()));
        Document { root }
    }

    /// Reads a kubeconfig's text. An empty file is an empty kubeconfig, as for kubectl; a file
    /// kubectl could not load is refused, so kindred never rewrites (and loses) it.
    pub fn parse(text: &str, file: &Path) -> Result<Self, KubeconfigError> {
        let not_a_kubeconfig = |reason: String| KubeconfigError::NotAKubeconfig {
            file: file.to_path_buf(),
            reason,
        };
        let root = match serde_yaml::from_str(text).map_err(|e| not_a_kubeconfig(e.to_string()))? {
            Value::Null => return Ok(Document::empty()),
            Value::Mapping(root) => root,
            _ => {
                return Err(not_a_kubeconfig(
                    "a kubeconfig is a YAML map (apiVersion, clusters, contexts, users, ...)"
                        .into(),
                ))
            }
        };
        match root.get("kind") {
            None | Some(Value::Null) => {}
            Some(Value::String(kind)) if kind == "Config" => {}
            Some(other) => {
                return Err(not_a_kubeconfig(format!(
                    "its kind is {}, not Config",
                    serde_yaml::to_string(other).unwrap_or_default().trim()
                )))
            }
        }
        for list in LISTS {
            if !matches!(
                root.get(list),
                None | Some(Value::Null | Value::Sequence(_))
            ) {
                return Err(not_a_kubeconfig(format!("`{list}` is not a list")));
            }
        }
        if !matches!(
            root.get(CURRENT_CONTEXT),
            None | Some(Value::Null | Value::String(_))
        ) {
            return Err(not_a_kubeconfig(format!(
                "`{CURRENT_CONTEXT}` is not a string"
            )));
        }
        Ok(Document { root })
    }

    /// Adds `entry` (replacing same-named items in place, as kind does) and makes it the
    /// current context.
    pub fn upsert(&mut self, entry: &Entry) {
        let name = entry.name();
        for (list, item) in entry.items() {
            let items = self.list_mut(list);
            match items.iter().position(|i| is_named(i, &name)) {
                Some(index) => items[index] = item,
                None => items.push(item),
            }
        }
        self.root.insert(CURRENT_CONTEXT.into(), name.into());
    }

    /// Drops every item called `name` from the three lists and unsets `current-context` if it
    /// is `name` (to "", as kubectl does). Returns whether anything changed.
    pub fn remove(&mut self, name: &str) -> bool {
        let mut changed = false;
        for list in LISTS {
            if let Some(Value::Sequence(items)) = self.root.get_mut(list) {
                let before = items.len();
                items.retain(|item| !is_named(item, name));
                changed |= items.len() != before;
            }
        }
        if self.root.get(CURRENT_CONTEXT).and_then(Value::as_str) == Some(name) {
            self.root.insert(CURRENT_CONTEXT.into(), "".into());
            changed = true;
        }
        changed
    }

    pub fn to_yaml(&self) -> String {
        yaml_text::to_yaml(&self.root)
    }

    /// The list `key`, created if it is missing or null (kubectl writes `users: null`).
    fn list_mut(&mut self, key: &str) -> &mut Vec<Value> {
        let slot = self
            .root
            .entry(key.into())
            .or_insert(Value::Sequence(Vec::new()));
        if !slot.is_sequence() {
            // Only null gets here: `parse` refused every other non-list.
            *slot = Value::Sequence(Vec::new());
        }
        slot.as_sequence_mut().expect("made a list just above")
    }
}

fn is_named(item: &Value, name: &str) -> bool {
    item.get("name").and_then(Value::as_str) == Some(name)
}
