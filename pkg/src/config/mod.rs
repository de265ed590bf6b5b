//! The cluster config file: kind's `Cluster` schema (`kind.x-k8s.io/v1alpha4`), also accepted
//! under kindred's own apiVersion (`kindred.dev/v1alpha4`).
//!
//! A command reads a config in this order: `load` (or `parse`), `Cluster::with_name` /
//! `with_node_image` for command line overrides, `with_defaults`, `resolve_host_paths` with the
//! directory `load` returned (the current directory for stdin), then `validate`.

mod cidr;
mod decode;
mod defaults;
mod error;
mod types;
mod validate;

#[cfg(test)]
mod examples_tests;

pub use cidr::Cidr;
pub use decode::{load, parse};
pub use defaults::{DEFAULT_CLUSTER_NAME, DEFAULT_REGISTRY_PORT};
pub use error::{ConfigError, Problem};
pub use types::{
    Cluster, IpFamily, KubeProxyMode, Mount, MountPropagation, Networking, Node, NodeRole,
    PatchJson6902, PortMapping, PortProtocol, Registry, Toggle, CLUSTER_KIND, KINDRED_API_VERSION,
    KIND_API_VERSION,
};
pub use validate::MAX_NODES;
