//! Clusters: create (an ordered list of small actions), delete, list, load images, export logs. Node containers carry
//! labels naming their cluster and role, which is all the state kindred keeps: Docker is the
//! source of truth.

mod access;
mod bounded;
mod capacity;
mod containers;
mod create;
mod delete;
mod error;
mod host_support;
mod images;
mod kubectl;
mod layout;
mod lifecycle;
mod list;
mod load;
mod logs;
mod node;
mod node_options;
mod node_setup;
mod nodes;
mod offline;
mod ownership;
mod plan;
mod registry;

pub use access::{control_plane, kubeconfig_entry, schedulable_nodes};
pub use capacity::{estimated_memory_mib, CONTROL_PLANE_MIB, WORKER_MIB};
pub use create::{
    add_node, create, resolve_config, shutdown_signal, AddNodeOptions, ConfigOverrides,
    CreateOptions, Created, PAUSE_ENV,
};
pub use delete::{delete, Deleted};
pub use error::ClusterError;
pub use host_support::{check_runtime, host_default};
pub use kubectl::{cluster_kubectl, ClusterKubectl};
pub use lifecycle::{start, stop};
pub use list::{
    clusters, node_details, nodes, render_nodes, select_nodes, NodeDetails, NodeFormat, NodeSummary,
};
pub use load::{load, ImageSource, LoadReport, Outcome};
pub use logs::{export_logs, ExportedLogs, ARTIFACTS_ENV};
pub use node_options::{NodeExtras, NodeOptions, PROXY_VARIABLES};
pub use nodes::{delete_node, next_worker_name, restart_node, NodeRoleRequest};
pub use offline::{block_registry_pulls, unblock_registry_pulls, BlockedPulls};
pub use ownership::{CleanedUp, CleanupError, Leftover, Ownership, TOKEN_LABEL};
pub use plan::{ClusterPlan, NodePlan};
pub use registry::{
    delete_registry, find as find_registry, users as registry_users, RegistryRequest, RegistryState,
};

/// Label carrying the cluster name on every node container.
pub const CLUSTER_LABEL: &str = "io.kindred.cluster";
/// Label on node containers: the cluster's `networking.ipFamily`, so that `create node` joins
/// a new node in the same family.
pub const IP_FAMILY_LABEL: &str = "io.kindred.ip-family";
/// Label carrying the node role (`control-plane` or `worker`).
pub const ROLE_LABEL: &str = "io.kindred.role";
/// Role label value of an HA cluster's API load balancer (not a Kubernetes node).
pub const LOAD_BALANCER_ROLE: &str = "external-load-balancer";
/// Role label value of the container that keeps the cluster's Nodes in step with its node
/// containers (`agent::node_lifecycle`; not a Kubernetes node, and not listed as one).
pub const NODE_LIFECYCLE_ROLE: &str = "node-lifecycle";
/// The Docker network all clusters share.
pub const NETWORK: &str = "kindred";
/// kubeadm's admin kubeconfig on control-plane nodes.
const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";

/// Tells the user what a command without a [`crate::ui::Step`] at hand waits for (the network
/// lock), on stderr like every progress line.
fn say_waiting(message: &str) {
    eprintln!("{message}");
}

/// Environment variable that names the default cluster.
pub const CLUSTER_NAME_ENV: &str = "KINDRED_CLUSTER_NAME";

/// The cluster name to use: the flag, else $KINDRED_CLUSTER_NAME, else `kindred`.
pub fn default_name(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            std::env::var(CLUSTER_NAME_ENV)
                .ok()
                .filter(|v| !v.is_empty())
        })
        .unwrap_or_else(|| crate::config::DEFAULT_CLUSTER_NAME.to_string())
}
