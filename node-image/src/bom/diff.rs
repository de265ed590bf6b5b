//! `kindred bom diff`: which components two BOMs add, remove or change. A component is the same
//! one in both when its kind, name and path match; it changed when its version or sha256 did.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Bom, Component, Kind};

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    pub from: Summary,
    pub to: Summary,
    /// In `to` only.
    pub added: Vec<Component>,
    /// In `from` only.
    pub removed: Vec<Component>,
    pub changed: Vec<Change>,
}

/// Which BOM a side of the diff is: its source (image name or file) and headline versions.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub source: String,
    pub kubernetes_version: String,
    pub kindred_version: String,
    pub go_version: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Change {
    pub kind: Kind,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub from: Version,
    pub to: Version,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Version {
    pub version: String,
    pub sha256: String,
    pub origin: String,
}

impl From<&Component> for Version {
    fn from(c: &Component) -> Version {
        Version {
            version: c.version.clone(),
            sha256: c.sha256.clone(),
            origin: c.origin.clone(),
        }
    }
}

type Key<'a> = (u8, &'a str, Option<&'a str>);

fn key(c: &Component) -> Key<'_> {
    (super::kind_rank(&c.kind), &c.name, c.path.as_deref())
}

/// Compares `from` (named `from_source`) with `to`; every list is in the BOM's own order
/// (kind, then name).
pub fn diff(from: &Bom, from_source: &str, to: &Bom, to_source: &str) -> Diff {
    let old: BTreeMap<Key, &Component> = from.components.iter().map(|c| (key(c), c)).collect();
    let new: BTreeMap<Key, &Component> = to.components.iter().map(|c| (key(c), c)).collect();
    let mut d = Diff {
        from: summary(from, from_source),
        to: summary(to, to_source),
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
    };
    for (k, c) in &new {
        match old.get(k) {
            None => d.added.push((*c).clone()),
            Some(o) if o.version != c.version || o.sha256 != c.sha256 => d.changed.push(Change {
                kind: c.kind.clone(),
                name: c.name.clone(),
                path: c.path.clone(),
                from: (*o).into(),
                to: (*c).into(),
            }),
            Some(_) => {}
        }
    }
    d.removed = old
        .iter()
        .filter(|(k, _)| !new.contains_key(*k))
        .map(|(_, c)| (*c).clone())
        .collect();
    d
}

fn summary(bom: &Bom, source: &str) -> Summary {
    Summary {
        source: source.to_string(),
        kubernetes_version: bom.kubernetes_version.clone(),
        kindred_version: bom.kindred_version.clone(),
        go_version: bom.go_version.clone(),
    }
}

/// How many hex digits of a sha256 the table shows (as `docker images` does); `-o json` has them
/// in full.
const SHORT: usize = 12;

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// One line per added (`+`), removed (`-`) or changed (`~`) component, then a count.
    pub fn table(&self) -> String {
        let side = |s: &Summary| {
            format!(
                "{}  (Kubernetes {}, kindred {}, {})\n",
                s.source, s.kubernetes_version, s.kindred_version, s.go_version
            )
        };
        let mut out = format!("--- {}+++ {}", side(&self.from), side(&self.to));
        if self.is_empty() {
            out.push_str("no component differs\n");
            return out;
        }
        out.push_str(&format!(
            "  {:<15} {:<40} {:<40} SHA256\n",
            "KIND", "NAME", "VERSION"
        ));
        let row = |mark: char, kind: &Kind, name: &str, version: String, sha: String| {
            format!(
                "{mark} {:<15} {name:<40} {version:<40} {sha}\n",
                kind.as_str()
            )
        };
        for c in &self.removed {
            out.push_str(&row(
                '-',
                &c.kind,
                display_name(c),
                c.version.clone(),
                short(&c.sha256),
            ));
        }
        for c in &self.added {
            out.push_str(&row(
                '+',
                &c.kind,
                display_name(c),
                c.version.clone(),
                short(&c.sha256),
            ));
        }
        for c in &self.changed {
            let arrow = |a: &str, b: &str| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a} -> {b}")
                }
            };
            out.push_str(&row(
                '~',
                &c.kind,
                c.path.as_deref().unwrap_or(&c.name),
                arrow(&c.from.version, &c.to.version),
                arrow(&short(&c.from.sha256), &short(&c.to.sha256)),
            ));
        }
        out.push_str(&format!(
            "{} added, {} removed, {} changed\n",
            self.added.len(),
            self.removed.len(),
            self.changed.len()
        ));
        out
    }
}

/// Binaries and files by path (names repeat), everything else by name.
fn display_name(c: &Component) -> &str {
    c.path.as_deref().unwrap_or(&c.name)
}

fn short(sha256: &str) -> String {
    sha256.chars().take(SHORT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bom::tests::sample;

    #[test]
    fn added_removed_changed() {
        let a = sample();
        let mut b = a.clone();
        // libc6 gets a security update (new version and .deb), etcd is rebuilt (new digest,
        // same tag), kubectl goes away, a new file appears.
        let libc = b.components.iter_mut().find(|c| c.name == "libc6").unwrap();
        libc.version = "2.36-9+deb12u11".into();
        libc.sha256 = "cd".repeat(32);
        let etcd = b
            .components
            .iter_mut()
            .find(|c| c.kind == Kind::Image)
            .unwrap();
        etcd.sha256 = "ef".repeat(32);
        b.components.retain(|c| c.name != "kubectl");
        let mut new_file = a
            .components
            .iter()
            .find(|c| c.kind == Kind::File)
            .unwrap()
            .clone();
        new_file.name = "extra.conf".into();
        new_file.path = Some("/etc/kindred/extra.conf".into());
        b.components.push(new_file);
        // An origin-only change is not a change of the component.
        b.components
            .iter_mut()
            .find(|c| c.name == "kubelet")
            .unwrap()
            .origin = "binaries from /tmp".into();

        let d = diff(&a, "a.json", &b, "kindred/node:v1.34.12");
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.added[0].name, "extra.conf");
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.removed[0].name, "kubectl");
        let names: Vec<&str> = d.changed.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["registry.k8s.io/etcd:3.6.5-0", "libc6"]);
        assert_eq!(d.changed[1].from.version, "2.36-9+deb12u10");
        assert_eq!(d.changed[1].to.version, "2.36-9+deb12u11");
        assert_eq!(d.changed[0].from.version, d.changed[0].to.version);

        let table = d.table();
        assert!(table.contains("--- a.json"), "{table}");
        assert!(table.contains("+++ kindred/node:v1.34.12"), "{table}");
        assert!(
            table.contains("2.36-9+deb12u10 -> 2.36-9+deb12u11"),
            "{table}"
        );
        assert!(table.contains(&format!("{} -> {}", "ab".repeat(6), "ef".repeat(6))));
        assert!(
            table.contains("- binary          /usr/bin/kubectl"),
            "{table}"
        );
        assert!(table.contains("1 added, 1 removed, 2 changed"), "{table}");

        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["changed"][1]["to"]["sha256"], "cd".repeat(32));
        assert_eq!(json["removed"][0]["kind"], "binary");
    }

    #[test]
    fn same_bom_no_difference() {
        let a = sample();
        let mut b = a.clone();
        b.components.reverse();
        let d = diff(&a, "a", &b, "b");
        assert!(d.is_empty());
        assert!(d.table().contains("no component differs"));
    }
}
