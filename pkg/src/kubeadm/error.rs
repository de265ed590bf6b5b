//! What can stop a kubeadm config from being rendered, worded for whoever has to fix it: the
//! caller (bad input) or the person who wrote the cluster config (bad patch).

#[derive(Debug, thiserror::Error)]
pub enum KubeadmError {
    /// The Kubernetes version is not `vMAJOR.MINOR.PATCH` or is one kindred cannot configure.
    #[error("Kubernetes version \"{version}\": {reason}")]
    Version { version: String, reason: String },
    /// A `RenderInput` field the caller filled in wrongly.
    #[error("cannot render the kubeadm config: {field} {message}")]
    Input {
        field: &'static str,
        message: String,
    },
    /// A user patch that does not parse or does not apply; `patch` names it, e.g.
    /// `kubeadmConfigPatchesJSON6902[1]` or `node "kindred-worker" kubeadmConfigPatches[0]`.
    #[error("{patch}: {message}")]
    Patch { patch: String, message: String },
    #[error("cannot write the kubeadm config as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

impl KubeadmError {
    pub(super) fn input(field: &'static str, message: impl Into<String>) -> KubeadmError {
        KubeadmError::Input {
            field,
            message: message.into(),
        }
    }
}
