//! The kubeadm config for one node: the multi-document YAML given to
//! `kubeadm init --config` (first control plane) or `kubeadm join --config` (every other node).
//!
//! The documents follow the node's Kubernetes version: kubeadm API v1beta4 from 1.31 (flags
//! as `{name, value}` lists), v1beta3 before (flags as maps); component config fields only
//! where that version has them. The user's kubeadm config patches are applied last, in kind's
//! order and with kind's matching rules.

mod component_documents;
mod documents;
mod error;
mod input;
mod json_patch;
mod kubeadm_documents;
mod merge_patch;
mod patches;
mod version;
mod yaml_builder;

#[cfg(test)]
mod render_tests;

pub use documents::{API_SERVER_BIND_PORT, CRI_SOCKET};
pub use error::KubeadmError;
pub use input::{NodeBootstrap, RenderInput};
pub use version::{KubeVersion, KubeadmApi};

use documents::NodeContext;

/// Renders the kubeadm config for the node `input` describes, with the user's patches applied.
pub fn render(input: &RenderInput) -> Result<String, KubeadmError> {
    let version = KubeVersion::parse(&input.kubernetes_version)?;
    input.check()?;
    let node = NodeContext {
        input,
        api: version.kubeadm_api(),
        version,
    };
    let mut documents = documents::documents(&node)?;
    patches::apply_all(&mut documents, input)?;

    let role = match input.bootstrap {
        NodeBootstrap::FirstControlPlane => "kubeadm init, first control plane",
        NodeBootstrap::JoiningControlPlane => "kubeadm join, control plane",
        NodeBootstrap::Worker => "kubeadm join, worker",
    };
    let mut config = format!(
        "# kubeadm config for node {} ({role}), rendered by kindred\n",
        input.node_name
    );
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            config.push_str("---\n");
        }
        config.push_str(&serde_yaml::to_string(document)?);
    }
    Ok(config)
}
