//! The BOM as an SPDX 2.3 JSON document (<https://spdx.github.io/spdx-spec/v2.3/>): one package
//! for the node image, one per component, each with its purl and sha256.

use serde::Serialize;

use super::{purl, Bom, Component, Kind};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub spdx_version: &'static str,
    pub data_license: &'static str,
    #[serde(rename = "SPDXID")]
    pub spdx_id: &'static str,
    pub name: String,
    pub document_namespace: String,
    pub creation_info: CreationInfo,
    pub packages: Vec<Package>,
    pub relationships: Vec<Relationship>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationInfo {
    pub created: String,
    pub creators: Vec<String>,
    pub comment: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    pub name: String,
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub version_info: String,
    /// Where it is in the node image (binaries, files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_file_name: Option<String>,
    pub download_location: &'static str,
    /// kindred does not list the files inside packages (that would need a verification code).
    pub files_analyzed: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checksums: Vec<Checksum>,
    pub license_concluded: &'static str,
    pub license_declared: &'static str,
    pub copyright_text: &'static str,
    pub primary_package_purpose: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_refs: Vec<ExternalRef>,
    pub comment: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checksum {
    pub algorithm: &'static str,
    pub checksum_value: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRef {
    pub reference_category: &'static str,
    pub reference_type: &'static str,
    pub reference_locator: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Relationship {
    pub spdx_element_id: String,
    pub relationship_type: &'static str,
    pub related_spdx_element: String,
}

const DOCUMENT_ID: &str = "SPDXRef-DOCUMENT";
const NODE_IMAGE_ID: &str = "SPDXRef-node-image";
/// No license information is recorded in kindred's BOM, so none is claimed.
const NOASSERTION: &str = "NOASSERTION";

/// The SPDX document for `bom`, which describes `subject` (the node image's name). `created` is
/// the document's creation time as `YYYY-MM-DDThh:mm:ssZ` (see [`super::document_time`]).
pub fn document(bom: &Bom, subject: &str, created: &str) -> Document {
    let (_, bom_sha256) = bom.to_json();
    let sorted = bom.sorted();
    let mut ids = super::UniqueIds::default();
    let mut packages = vec![Package {
        name: subject.to_string(),
        spdx_id: NODE_IMAGE_ID.into(),
        version_info: bom.kubernetes_version.clone(),
        package_file_name: None,
        download_location: NOASSERTION,
        files_analyzed: false,
        checksums: Vec::new(),
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION,
        copyright_text: NOASSERTION,
        primary_package_purpose: "CONTAINER",
        external_refs: Vec::new(),
        comment: bom.summary(),
    }];
    let mut relationships = vec![Relationship {
        spdx_element_id: DOCUMENT_ID.into(),
        relationship_type: "DESCRIBES",
        related_spdx_element: NODE_IMAGE_ID.into(),
    }];
    for c in &sorted.components {
        let id = ids.get(&format!("SPDXRef-{}", spdx_id_part(c)));
        relationships.push(Relationship {
            spdx_element_id: NODE_IMAGE_ID.into(),
            relationship_type: "CONTAINS",
            related_spdx_element: id.clone(),
        });
        packages.push(package(c, id));
    }
    Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: DOCUMENT_ID,
        name: format!("kindred-node-{}", bom.kubernetes_version),
        // Unique per content, as SPDX asks: the BOM's own sha256 (the image's
        // io.kindred.bom-sha256 label) and the subject. kindred has no web site, so the host is
        // an RFC 2606 `.invalid` name: an identifier, not a location.
        document_namespace: format!(
            "https://kindred.invalid/spdx/{}/{bom_sha256}",
            sanitize(subject)
        ),
        creation_info: CreationInfo {
            created: created.to_string(),
            creators: vec![format!("Tool: kindred-{}", env!("CARGO_PKG_VERSION"))],
            comment: format!(
                "Made from kindred's BOM (sha256 {bom_sha256}), which node images store at {}.",
                super::BOM_PATH
            ),
        },
        packages,
        relationships,
    }
}

fn package(c: &Component, spdx_id: String) -> Package {
    let purpose = match c.kind {
        Kind::Binary => "APPLICATION",
        Kind::Image => "CONTAINER",
        Kind::File => "FILE",
        // The sha256 is that of the .deb: the package as installed from.
        Kind::DebianPackage => "INSTALL",
    };
    Package {
        name: c.name.clone(),
        spdx_id,
        version_info: c.version.clone(),
        package_file_name: c.path.clone(),
        download_location: NOASSERTION,
        files_analyzed: false,
        checksums: if c.sha256.is_empty() {
            Vec::new()
        } else {
            vec![Checksum {
                algorithm: "SHA256",
                checksum_value: c.sha256.clone(),
            }]
        },
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION,
        copyright_text: NOASSERTION,
        primary_package_purpose: purpose,
        external_refs: vec![ExternalRef {
            reference_category: "PACKAGE-MANAGER",
            reference_type: "purl",
            reference_locator: purl::of(c).to_string(),
        }],
        comment: format!("kind: {}; origin: {}", c.kind.as_str(), c.origin),
    }
}

/// `kind-name`, or `kind-path` for components with a path (names repeat across paths).
fn spdx_id_part(c: &Component) -> String {
    let what = c.path.as_deref().unwrap_or(&c.name);
    sanitize(&format!(
        "{}-{}",
        c.kind.as_str(),
        what.trim_start_matches('/')
    ))
}

/// SPDX identifiers allow letters, digits, '.' and '-' only.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bom::tests::sample;

    #[test]
    fn has_required_fields_and_every_component() {
        let bom = sample();
        let doc = document(&bom, "kindred/node:v1.34.12", "2026-01-02T03:04:05Z");
        let v = serde_json::to_value(&doc).unwrap();
        for field in [
            "spdxVersion",
            "dataLicense",
            "SPDXID",
            "name",
            "documentNamespace",
            "creationInfo",
            "packages",
            "relationships",
        ] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        assert_eq!(v["spdxVersion"], "SPDX-2.3");
        assert_eq!(v["creationInfo"]["created"], "2026-01-02T03:04:05Z");
        let packages = v["packages"].as_array().unwrap();
        // The node image itself, then one package per component.
        assert_eq!(packages.len(), bom.components.len() + 1);
        for c in &bom.components {
            let p = packages
                .iter()
                .find(|p| p["name"] == c.name.as_str() && p["versionInfo"] == c.version.as_str())
                .unwrap_or_else(|| panic!("{} missing", c.name));
            assert_eq!(p["checksums"][0]["algorithm"], "SHA256");
            assert_eq!(p["checksums"][0]["checksumValue"], c.sha256.as_str());
            assert_eq!(p["externalRefs"][0]["referenceType"], "purl");
            assert!(p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .unwrap()
                .starts_with("pkg:"));
            assert_eq!(p["filesAnalyzed"], false);
        }
        // SPDX ids are unique and well-formed; each is contained in the node image.
        let mut ids: Vec<&str> = packages
            .iter()
            .map(|p| p["SPDXID"].as_str().unwrap())
            .collect();
        assert!(ids.iter().all(|id| id.starts_with("SPDXRef-")
            && id[8..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')));
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), packages.len());
        assert_eq!(doc.relationships.len(), packages.len());
        assert_eq!(doc.relationships[0].relationship_type, "DESCRIBES");
    }

    #[test]
    fn deterministic_and_namespace_follows_content() {
        let bom = sample();
        let mut shuffled = bom.clone();
        shuffled.components.reverse();
        let a = serde_json::to_string(&document(&bom, "n", "1970-01-01T00:00:00Z")).unwrap();
        let b = serde_json::to_string(&document(&shuffled, "n", "1970-01-01T00:00:00Z")).unwrap();
        assert_eq!(a, b);
        let mut changed = bom.clone();
        changed.components[0].version = "other".into();
        let ns = |b: &Bom| document(b, "n", "1970-01-01T00:00:00Z").document_namespace;
        assert_ne!(ns(&bom), ns(&changed));
        assert!(ns(&bom).ends_with(&bom.to_json().1));
    }
}
