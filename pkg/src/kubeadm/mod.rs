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
mod kubeadm_documents;
mod merge_patch;
mod patches;
mod probe_patches;
mod version;
mod yaml_builder;

#[cfg(test)]
mod render_tests;

pub use documents::{API_SERVER_BIND_PORT, CRI_SOCKET};
pub use error::KubeadmError;
pub use input::{NodeBootstrap, RenderInput};
pub use version::{KubeVersion, KubeadmApi};

use documents::NodeContext;

/// Where a node's kubeadm patch files go (kubeadm's `patches.directory`), when it has any.
pub const PATCHES_DIR: &str = "/kind/patches";

/// What a node needs before `kubeadm init` or `kubeadm join`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// For `--config`.
    pub kubeadm_config: String,
    /// Files kubeadm's config points to: (absolute path, content). The node's own
    /// KubeletConfiguration patches, as kubeadm patch files.
    pub files: Vec<(String, String)>,
}

/// Renders the kubeadm config for the node `input` describes, with the user's patches applied.
pub fn render(input: &RenderInput) -> Result<String, KubeadmError> {
    render_node(input).map(|config| config.kubeadm_config)
}

/// Like [`render`], with the files the config refers to.
pub fn render_node(input: &RenderInput) -> Result<NodeConfig, KubeadmError> {
    let version = KubeVersion::parse(&input.kubernetes_version)?;
    input.check()?;
    // kubeadm's kubeletconfiguration patch target came in v1.25.
    let kubelet_patches_work = version.at_least(25);
    let node = NodeContext {
        input,
        api: version.kubeadm_api(),
        version,
    };
    let mut documents = documents::documents(&node)?;
    patches::apply_all(&mut documents, input)?;
    let mut patch_files = patches::kubelet_patch_files(input)?;
    if !patch_files.is_empty() && !kubelet_patches_work {
        return Err(KubeadmError::Patch {
            patch: format!("node \"{}\" kubeadmConfigPatches", input.node_name),
            message: format!(
                "KubeletConfiguration patches for one node need kubeadm's \
                 kubeletconfiguration patch target, which Kubernetes {} lacks (it \
                 came in v1.25); patch KubeletConfiguration for the whole cluster instead",
                node.version
            ),
        });
    }
    // A patches directory of the user's own may be a read-only mount: kindred's probe
    // patches go only into its own.
    if !documents::has_patches_directory(&documents) {
        patch_files.extend(probe_patches::files(input));
    }
    let mut files = Vec::new();
    if !patch_files.is_empty() {
        let directory = documents::use_patches_directory(&mut documents, PATCHES_DIR);
        files = patch_files
            .into_iter()
            .map(|(name, content)| (format!("{directory}/{name}"), content))
            .collect();
    }

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
    Ok(NodeConfig {
        kubeadm_config: config,
        files,
    })
}
