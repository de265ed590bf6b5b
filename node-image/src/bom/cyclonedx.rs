//! The BOM as a CycloneDX 1.5 JSON document (<https://cyclonedx.org/docs/1.5/json/>): the node
//! image as the metadata component, every component with its purl and SHA-256 hash.

use serde::Serialize;

use super::{purl, Bom, Component as BomComponent, Kind};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub bom_format: &'static str,
    pub spec_version: &'static str,
    pub serial_number: String,
    pub version: u32,
    pub metadata: Metadata,
    pub components: Vec<Component>,
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Serialize)]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    pub tools: Tools,
    pub component: Component,
    pub properties: Vec<Property>,
}

#[derive(Debug, Serialize)]
pub struct Tools {
    pub components: Vec<Component>,
}

#[derive(Debug, Serialize)]
pub struct Component {
    #[serde(rename = "type")]
    pub ty: &'static str,
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    pub name: String,
    pub version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<Hash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
}

#[derive(Debug, Serialize)]
pub struct Hash {
    pub alg: &'static str,
    pub content: String,
}

#[derive(Debug, Serialize)]
pub struct Property {
    pub name: &'static str,
    pub value: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    #[serde(rename = "ref")]
    pub reference: String,
    pub depends_on: Vec<String>,
}

const NODE_IMAGE_REF: &str = "node-image";

/// The CycloneDX document for `bom`, whose metadata component is `subject` (the node image's
/// name). `timestamp` is optional in CycloneDX: given only when it derives from the inputs
/// ([`super::document_time`]), so that the same BOM always gives the same document.
pub fn document(bom: &Bom, subject: &str, timestamp: Option<String>) -> Document {
    let (_, bom_sha256) = bom.to_json();
    let sorted = bom.sorted();
    let mut refs = super::UniqueIds::default();
    let components: Vec<Component> = sorted
        .components
        .iter()
        .map(|c| component(c, refs.get(&bom_ref(c))))
        .collect();
    let dependencies = vec![Dependency {
        reference: NODE_IMAGE_REF.into(),
        depends_on: components
            .iter()
            .filter_map(|c| c.bom_ref.clone())
            .collect(),
    }];
    Document {
        bom_format: "CycloneDX",
        spec_version: "1.5",
        serial_number: serial_number(&bom_sha256),
        version: 1,
        metadata: Metadata {
            timestamp,
            tools: Tools {
                components: vec![Component {
                    ty: "application",
                    bom_ref: None,
                    name: "kindred".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    hashes: Vec::new(),
                    purl: None,
                    properties: Vec::new(),
                }],
            },
            component: Component {
                ty: "container",
                bom_ref: Some(NODE_IMAGE_REF.into()),
                name: subject.to_string(),
                version: bom.kubernetes_version.clone(),
                hashes: Vec::new(),
                purl: None,
                properties: vec![
                    prop("kindred:kindred-version", &bom.kindred_version),
                    prop("kindred:go-version", &bom.go_version),
                ],
            },
            properties: vec![prop("kindred:bom-sha256", &bom_sha256)],
        },
        components,
        dependencies,
    }
}

fn component(c: &BomComponent, bom_ref: String) -> Component {
    let ty = match c.kind {
        Kind::Binary => "application",
        Kind::Image => "container",
        Kind::File => "file",
        Kind::DebianPackage => "library",
    };
    let mut properties = vec![
        prop("kindred:kind", c.kind.as_str()),
        prop("kindred:origin", &c.origin),
    ];
    if let Some(path) = &c.path {
        properties.push(prop("kindred:path", path));
    }
    Component {
        ty,
        bom_ref: Some(bom_ref),
        name: c.name.clone(),
        version: c.version.clone(),
        hashes: if c.sha256.is_empty() {
            Vec::new()
        } else {
            vec![Hash {
                alg: "SHA-256",
                content: c.sha256.clone(),
            }]
        },
        purl: Some(purl::of(c).to_string()),
        properties,
    }
}

fn prop(name: &'static str, value: &str) -> Property {
    Property {
        name,
        value: value.to_string(),
    }
}

/// `kind:name`, plus `:path` where there is one. Not the purl: the containerd binaries share one
/// (one Go module), and bom-refs must be unique.
fn bom_ref(c: &BomComponent) -> String {
    match &c.path {
        Some(path) => format!("{}:{}:{path}", c.kind.as_str(), c.name),
        None => format!("{}:{}", c.kind.as_str(), c.name),
    }
}

/// A UUID from the BOM's sha256, so the same BOM always has the same serial number. The schema
/// admits UUID versions 1-5 only; 5 (name-based) is the closest, though the hash is SHA-256.
fn serial_number(sha256_hex: &str) -> String {
    let mut hex: Vec<char> = sha256_hex.chars().chain("0".repeat(32).chars()).collect();
    hex.truncate(32);
    hex[12] = '5';
    // RFC 4122 variant: the first hex digit of the fourth group is 8, 9, a or b.
    let variant = hex[16].to_digit(16).unwrap_or(0);
    hex[16] = std::char::from_digit(8 | (variant & 3), 16).unwrap_or('8');
    let s: String = hex.into_iter().collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bom::tests::sample;

    #[test]
    fn has_required_fields_and_every_component() {
        let bom = sample();
        let v = serde_json::to_value(document(&bom, "kindred/node:v1.34.12", None)).unwrap();
        assert_eq!(v["bomFormat"], "CycloneDX");
        assert_eq!(v["specVersion"], "1.5");
        assert_eq!(v["version"], 1);
        assert!(v["metadata"].get("timestamp").is_none());
        assert_eq!(v["metadata"]["component"]["name"], "kindred/node:v1.34.12");
        let components = v["components"].as_array().unwrap();
        assert_eq!(components.len(), bom.components.len());
        for c in &bom.components {
            let d = components
                .iter()
                .find(|d| d["name"] == c.name.as_str() && d["version"] == c.version.as_str())
                .unwrap_or_else(|| panic!("{} missing", c.name));
            assert_eq!(d["hashes"][0]["alg"], "SHA-256");
            assert_eq!(d["hashes"][0]["content"], c.sha256.as_str());
            assert!(d["purl"].as_str().unwrap().starts_with("pkg:"));
        }
        let mut refs: Vec<&str> = components
            .iter()
            .map(|c| c["bom-ref"].as_str().unwrap())
            .collect();
        refs.sort();
        refs.dedup();
        assert_eq!(refs.len(), components.len());
        assert_eq!(
            v["dependencies"][0]["dependsOn"].as_array().unwrap().len(),
            components.len()
        );
    }

    #[test]
    fn deterministic() {
        let bom = sample();
        let mut shuffled = bom.clone();
        shuffled.components.reverse();
        let a = serde_json::to_string(&document(&bom, "n", None)).unwrap();
        let b = serde_json::to_string(&document(&shuffled, "n", None)).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn serial_number_is_a_valid_uuid_from_the_content() {
        let s = serial_number(&"f".repeat(64));
        assert_eq!(s, "urn:uuid:ffffffff-ffff-5fff-bfff-ffffffffffff");
        let s = serial_number(&"0".repeat(64));
        assert_eq!(s, "urn:uuid:00000000-0000-5000-8000-000000000000");
    }
}
