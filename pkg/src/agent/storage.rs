//! The storage agent: one per node (a DaemonSet). It provisions PersistentVolumes for claims of
//! StorageClasses whose provisioner is [`PROVISIONER`], as directories on the node the claim's
//! first pod was scheduled to (the class binds WaitForFirstConsumer, so the scheduler picks the
//! node and records it on the claim). When a claim is deleted and its volume's reclaim policy
//! is Delete, the agent on that node removes the directory and the volume.
//!
//! Running one agent per node, each handling only its own node's claims, means directories are
//! created and removed locally: no helper pods, no node-to-node access.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};

use super::{env, AgentError};

/// The provisioner name the default StorageClass names.
pub const PROVISIONER: &str = "kindred.dev/host-path";
/// Where volumes live on each node (the same place kind's provisioner uses).
pub const DEFAULT_DIR: &str = "/var/local-path-provisioner";

const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const CLAIM_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
const CLAIM_PROVISIONER_BETA: &str = "volume.beta.kubernetes.io/storage-provisioner";
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// Which node's agent owns a volume's directory.
const VOLUME_NODE: &str = "kindred.dev/node";
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

pub struct StorageAgent {
    node_name: String,
    dir: PathBuf,
}

impl StorageAgent {
    pub fn from_env() -> Result<Self, AgentError> {
        Ok(StorageAgent {
            node_name: env("NODE_NAME")?,
            dir: std::env::var("STORAGE_DIR")
                .unwrap_or_else(|_| DEFAULT_DIR.into())
                .into(),
        })
    }

    pub async fn run(self) -> Result<(), AgentError> {
        let client = super::client().await?;
        let apis = Apis {
            claims: Api::all(client.clone()),
            volumes: Api::all(client.clone()),
            classes: Api::all(client.clone()),
            nodes: Api::all(client),
        };
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| AgentError::Msg(format!("{}: {e}", self.dir.display())))?;
        tracing::info!(node = %self.node_name, dir = %self.dir.display(), "storage agent started");
        let claims = watcher(apis.claims.clone(), watcher::Config::default())
            .default_backoff()
            .map_ok(|_| ());
        let volumes = watcher(apis.volumes.clone(), watcher::Config::default())
            .default_backoff()
            .map_ok(|_| ());
        let events = Box::pin(futures_util::stream::select(claims, volumes));
        super::reconcile_loop(events, super::SETTLE, || self.reconcile(&apis)).await
    }

    async fn reconcile(&self, apis: &Apis) -> Result<(), AgentError> {
        let claims = apis.claims.list(&ListParams::default()).await?;
        for claim in claims.items.iter().filter(|c| self.should_provision(c)) {
            if let Err(e) = self.provision(apis, claim).await {
                tracing::warn!("provisioning {}: {e}", claim_name(claim));
            }
        }
        let volumes = apis.volumes.list(&ListParams::default()).await?;
        for volume in volumes.items.iter().filter(|v| self.should_delete(v)) {
            if let Err(e) = self.delete(apis, volume).await {
                tracing::warn!(
                    "deleting {}: {e}",
                    volume.metadata.name.as_deref().unwrap_or("?")
                );
            }
        }
        Ok(())
    }

    /// A pending claim for our provisioner whose pod was scheduled to this node.
    fn should_provision(&self, claim: &PersistentVolumeClaim) -> bool {
        let annotations = claim.metadata.annotations.clone().unwrap_or_default();
        let ours = [CLAIM_PROVISIONER, CLAIM_PROVISIONER_BETA]
            .iter()
            .any(|k| annotations.get(*k).map(String::as_str) == Some(PROVISIONER));
        let bound = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_ref())
            .is_some_and(|v| !v.is_empty());
        ours && !bound
            && claim.metadata.deletion_timestamp.is_none()
            && annotations.get(SELECTED_NODE) == Some(&self.node_name)
    }

    async fn provision(
        &self,
        apis: &Apis,
        claim: &PersistentVolumeClaim,
    ) -> Result<(), AgentError> {
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        let name = format!("pvc-{uid}");
        if apis.volumes.get_opt(&name).await?.is_some() {
            return Ok(()); // Made on an earlier pass; the PV controller binds it.
        }
        let spec = claim.spec.clone().unwrap_or_default();
        if spec.volume_mode.as_deref() == Some("Block") {
            return Err(AgentError::Msg(format!(
                "{PROVISIONER} provides directories only; claim {} asks for volumeMode Block",
                claim_name(claim)
            )));
        }
        let class_name = spec.storage_class_name.clone().unwrap_or_default();
        let class = apis.classes.get_opt(&class_name).await?;
        let reclaim = class
            .and_then(|c| c.reclaim_policy)
            .unwrap_or_else(|| "Delete".into());
        let node = apis.nodes.get(&self.node_name).await?;
        let hostname = node
            .metadata
            .labels
            .and_then(|l| l.get(HOSTNAME_LABEL).cloned())
            .unwrap_or_else(|| self.node_name.clone());
        let path = self.dir.join(&name);
        create_world_writable_dir(&path)?;
        let capacity = spec
            .resources
            .and_then(|r| r.requests)
            .and_then(|r| r.get("storage").cloned());
        let volume = PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                annotations: Some(BTreeMap::from([
                    (PROVISIONED_BY.to_string(), PROVISIONER.to_string()),
                    (VOLUME_NODE.to_string(), self.node_name.clone()),
                ])),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                access_modes: spec.access_modes.clone(),
                capacity: capacity.map(|c| BTreeMap::from([("storage".to_string(), c)])),
                claim_ref: Some(ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("PersistentVolumeClaim".into()),
                    namespace: claim.metadata.namespace.clone(),
                    name: claim.metadata.name.clone(),
                    uid: claim.metadata.uid.clone(),
                    ..Default::default()
                }),
                host_path: Some(HostPathVolumeSource {
                    path: path.display().to_string(),
                    type_: Some("DirectoryOrCreate".into()),
                }),
                node_affinity: Some(VolumeNodeAffinity {
                    required: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: HOSTNAME_LABEL.into(),
                                operator: "In".into(),
                                values: Some(vec![hostname]),
                            }]),
                            ..Default::default()
                        }],
                    }),
                }),
                persistent_volume_reclaim_policy: Some(reclaim),
                storage_class_name: Some(class_name),
                volume_mode: spec.volume_mode.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        apis.volumes.create(&PostParams::default(), &volume).await?;
        tracing::info!(
            "provisioned {name} at {} for {}",
            path.display(),
            claim_name(claim)
        );
        Ok(())
    }

    /// A released volume of ours, on this node, whose reclaim policy is Delete.
    fn should_delete(&self, volume: &PersistentVolume) -> bool {
        let annotations = volume.metadata.annotations.clone().unwrap_or_default();
        let released = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
        let policy = volume
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref());
        released
            && policy == Some("Delete")
            && annotations.get(PROVISIONED_BY).map(String::as_str) == Some(PROVISIONER)
            && annotations.get(VOLUME_NODE) == Some(&self.node_name)
    }

    async fn delete(&self, apis: &Apis, volume: &PersistentVolume) -> Result<(), AgentError> {
        let name = volume.metadata.name.clone().unwrap_or_default();
        let path = volume
            .spec
            .as_ref()
            .and_then(|s| s.host_path.as_ref())
            .map(|h| PathBuf::from(&h.path));
        if let Some(path) = path {
            // Never remove anything outside our directory, whatever the volume says.
            if is_volume_dir(&self.dir, &path) && path.exists() {
                std::fs::remove_dir_all(&path)
                    .map_err(|e| AgentError::Msg(format!("removing {}: {e}", path.display())))?;
            }
        }
        apis.volumes.delete(&name, &DeleteParams::default()).await?;
        tracing::info!("deleted {name} and its directory");
        Ok(())
    }
}

struct Apis {
    claims: Api<PersistentVolumeClaim>,
    volumes: Api<PersistentVolume>,
    classes: Api<StorageClass>,
    nodes: Api<Node>,
}

fn claim_name(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Pods run as any user; the directory must be writable by all of them.
fn create_world_writable_dir(path: &Path) -> Result<(), AgentError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path)
        .and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)))
        .map_err(|e| AgentError::Msg(format!("{}: {e}", path.display())))
}

/// `path` is a direct child of `dir` named like a volume we made.
fn is_volume_dir(dir: &Path, path: &Path) -> bool {
    path.parent() == Some(dir)
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pvc-") && !n.contains(".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> StorageAgent {
        StorageAgent {
            node_name: "c-worker".into(),
            dir: DEFAULT_DIR.into(),
        }
    }

    fn claim(annotations: &[(&str, &str)], volume_name: Option<&str>) -> PersistentVolumeClaim {
        let mut c = PersistentVolumeClaim::default();
        c.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        c.spec = Some(Default::default());
        c.spec.as_mut().unwrap().volume_name = volume_name.map(String::from);
        c
    }

    #[test]
    fn provisions_only_unbound_claims_of_ours_scheduled_here() {
        let a = agent();
        let ours = [
            (CLAIM_PROVISIONER, PROVISIONER),
            (SELECTED_NODE, "c-worker"),
        ];
        assert!(a.should_provision(&claim(&ours, None)));
        assert!(!a.should_provision(&claim(&ours, Some("pvc-1"))));
        let elsewhere = [
            (CLAIM_PROVISIONER, PROVISIONER),
            (SELECTED_NODE, "c-worker2"),
        ];
        assert!(!a.should_provision(&claim(&elsewhere, None)));
        let other = [
            (CLAIM_PROVISIONER, "example.com/nfs"),
            (SELECTED_NODE, "c-worker"),
        ];
        assert!(!a.should_provision(&claim(&other, None)));
        let unscheduled = [(CLAIM_PROVISIONER_BETA, PROVISIONER)];
        assert!(!a.should_provision(&claim(&unscheduled, None)));
    }

    #[test]
    fn deletes_only_released_volumes_of_this_node_with_delete_policy() {
        let a = agent();
        let volume = |node: &str, phase: &str, policy: &str| PersistentVolume {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([
                    (PROVISIONED_BY.to_string(), PROVISIONER.to_string()),
                    (VOLUME_NODE.to_string(), node.to_string()),
                ])),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                persistent_volume_reclaim_policy: Some(policy.into()),
                ..Default::default()
            }),
            status: Some(k8s_openapi::api::core::v1::PersistentVolumeStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        };
        assert!(a.should_delete(&volume("c-worker", "Released", "Delete")));
        assert!(!a.should_delete(&volume("c-worker", "Bound", "Delete")));
        assert!(!a.should_delete(&volume("c-worker", "Released", "Retain")));
        assert!(!a.should_delete(&volume("c-worker2", "Released", "Delete")));
    }

    #[test]
    fn only_our_directories_are_removed() {
        let dir = Path::new(DEFAULT_DIR);
        assert!(is_volume_dir(dir, &dir.join("pvc-1234")));
        assert!(!is_volume_dir(dir, Path::new("/var/lib/kubelet")));
        assert!(!is_volume_dir(dir, &dir.join("pvc-1/..")));
        assert!(!is_volume_dir(dir, &dir.join("other")));
    }
}
