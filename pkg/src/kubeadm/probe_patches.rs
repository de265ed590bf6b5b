//! kubeadm patch files that give control-plane components time to start on a slow host.
//!
//! kubeadm's static Pods have a startup probe of 24 tries 10 s apart: a component not live
//! within about four minutes is killed and started again, and on an emulated or overloaded
//! host the API server and etcd can take that long, so they never come up. kindred allows ten
//! minutes (times `KINDRED_TIMEOUT_SCALE`) and slower probe answers; on a healthy host nothing
//! changes, since a live component is never probed again at startup.

use super::input::{NodeBootstrap, RenderInput};

/// The control-plane static Pods, each patched by name (kubeadm's patch targets).
const COMPONENTS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];
/// Startup probe tries, 10 s apart (kubeadm: 24).
const STARTUP_TRIES: u32 = 60;
/// Seconds a probe may take to answer (kubeadm: 15).
const PROBE_TIMEOUT_SECONDS: u32 = 30;
/// Liveness failures in a row before a restart (kubeadm: 8).
const LIVENESS_FAILURES: u32 = 16;

/// (file name, content) for kubeadm's patches directory; none on workers.
pub(super) fn files(input: &RenderInput) -> Vec<(String, String)> {
    if input.bootstrap == NodeBootstrap::Worker {
        return Vec::new();
    }
    let tries = STARTUP_TRIES * input.timeout_scale.max(1);
    COMPONENTS
        .iter()
        .map(|component| {
            let patch = format!(
                "spec:\n  containers:\n  - name: {component}\n    startupProbe:\n      \
                 failureThreshold: {tries}\n      timeoutSeconds: {PROBE_TIMEOUT_SECONDS}\n    \
                 livenessProbe:\n      failureThreshold: {LIVENESS_FAILURES}\n      \
                 timeoutSeconds: {PROBE_TIMEOUT_SECONDS}\n"
            );
            (format!("{component}+strategic.yaml"), patch)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_planes_get_patient_probes_and_workers_none() {
        let mut input = RenderInput {
            bootstrap: NodeBootstrap::FirstControlPlane,
            ..RenderInput::default()
        };
        let files = files(&input);
        assert_eq!(files.len(), 4);
        let (name, content) = &files[1];
        assert_eq!(name, "kube-apiserver+strategic.yaml");
        let patch: serde_yaml::Value = serde_yaml::from_str(content).unwrap();
        let container = &patch["spec"]["containers"][0];
        assert_eq!(container["name"], "kube-apiserver");
        assert_eq!(container["startupProbe"]["failureThreshold"], 60);
        assert_eq!(container["livenessProbe"]["timeoutSeconds"], 30);

        input.timeout_scale = 2;
        let patch: serde_yaml::Value = serde_yaml::from_str(&super::files(&input)[0].1).unwrap();
        assert_eq!(
            patch["spec"]["containers"][0]["startupProbe"]["failureThreshold"],
            120
        );

        input.bootstrap = NodeBootstrap::JoiningControlPlane;
        assert_eq!(super::files(&input).len(), 4);
        input.bootstrap = NodeBootstrap::Worker;
        assert!(super::files(&input).is_empty());
    }
}
