//! What can be wrong with a cluster config, worded for the person who wrote it.

use std::fmt;

use super::types::{CLUSTER_KIND, KINDRED_API_VERSION, KIND_API_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read cluster config {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error(
        "{file}: the cluster config is empty; it needs at least\n  \
         apiVersion: {KIND_API_VERSION}\n  kind: {CLUSTER_KIND}"
    )]
    Empty { file: String },
    /// YAML syntax errors and fields that do not fit the schema; `message` carries the field
    /// path and "line N column M".
    #[error("{file}: {message}")]
    Decode { file: String, message: String },
    #[error("{file}: {}", api_version_problem(found.as_deref()))]
    ApiVersion { file: String, found: Option<String> },
    #[error("{file}: {}", kind_problem(found.as_deref()))]
    Kind { file: String, found: Option<String> },
    /// Every problem `Cluster::validate` found, one per line.
    #[error("invalid cluster config:{}", list(problems))]
    Invalid { problems: Vec<Problem> },
}

/// One validation problem: the field it is about (e.g. `nodes[1].extraMounts[0].containerPath`)
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

fn api_version_problem(found: Option<&str>) -> String {
    let accepted =
        format!("use {KIND_API_VERSION} (or kindred's equivalent {KINDRED_API_VERSION})");
    match found {
        None => format!("apiVersion is missing; {accepted}"),
        Some(v) if v.ends_with("/v1alpha3") => format!(
            "apiVersion {v} is an older kind schema that is not supported; \
             {accepted} and see kind's v1alpha4 release notes for the changes"
        ),
        Some(v) => format!("unsupported apiVersion \"{v}\"; {accepted}"),
    }
}

fn kind_problem(found: Option<&str>) -> String {
    match found {
        None => format!("kind is missing; add `kind: {CLUSTER_KIND}`"),
        Some(k) => format!("kind is \"{k}\", but a cluster config has `kind: {CLUSTER_KIND}`"),
    }
}
