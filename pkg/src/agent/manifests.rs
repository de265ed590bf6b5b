//! The manifests that run the agents, written into node images at /kind/manifests/ (where kind
//! keeps its own) and applied by `create cluster` after the first control plane is up.
//!
//! They keep kind's node image contract, so kind can create clusters from kindred's images
//! too: the pod network manifest's only placeholder is `{{ .PodSubnet }}` and it carries
//! kind's two markers (template me, patch me: kind then adds the API endpoint as the
//! `CONTROL_PLANE_ENDPOINT` variable of the DaemonSet's first container); the storage manifest
//! has no placeholder. kindred's [`render`] does the same, plus the service range to guard.

use serde_yaml::Value;

use super::storage::{DEFAULT_DIR, PROVISIONER};

/// Path of the pod network manifest inside a node image.
pub const DEFAULT_CNI_PATH: &str = "/kind/manifests/default-cni.yaml";
/// Path of the storage manifest inside a node image.
pub const DEFAULT_STORAGE_PATH: &str = "/kind/manifests/default-storage.yaml";

const POD_SUBNET: &str = "{{ .PodSubnet }}";
/// Placeholders of images built before the manifests followed kind's contract.
const OLD_SERVICE_SUBNET: &str = "{{ .ServiceSubnet }}";
const OLD_API_SERVER: &str = "{{ .APIServer }}";
/// The variable holding `host:port` of the API server, named as kind's patch names it.
pub const CONTROL_PLANE_ENDPOINT: &str = "CONTROL_PLANE_ENDPOINT";
/// The service range the network agent guards (see `agent::network`).
pub const SERVICE_SUBNET: &str = "SERVICE_SUBNET";

/// Fills in the cluster's pod subnet and gives every DaemonSet's first container the API
/// endpoint (`host:port`) and the service subnet to guard (empty: no guard), so the agents
/// need neither kube-proxy nor cluster DNS to start.
pub fn render(
    template: &str,
    pod_subnet: &str,
    service_subnet: &str,
    endpoint: &str,
) -> Result<String, serde_yaml::Error> {
    let text = template
        .replace(POD_SUBNET, pod_subnet)
        .replace(OLD_SERVICE_SUBNET, service_subnet)
        .replace(OLD_API_SERVER, &format!("https://{endpoint}"));
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let mut doc: Value = serde::Deserialize::deserialize(document)?;
        if doc.is_null() {
            continue;
        }
        if doc["kind"] == "DaemonSet" {
            add_env(&mut doc, CONTROL_PLANE_ENDPOINT, endpoint);
            add_env(&mut doc, SERVICE_SUBNET, service_subnet);
        }
        out.push(serde_yaml::to_string(&doc)?);
    }
    Ok(out.join("---\n"))
}

/// Sets `name=value` in the environment of a DaemonSet's first container (appended, or
/// replacing an entry of that name, so a variable is never listed twice).
fn add_env(daemon_set: &mut Value, name: &str, value: &str) {
    let Some(container) = daemon_set["spec"]["template"]["spec"]["containers"]
        .get_mut(0)
        .and_then(Value::as_mapping_mut)
    else {
        return;
    };
    let env = container
        .entry(Value::from("env"))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if let Some(list) = env.as_sequence_mut() {
        if let Some(existing) = list.iter_mut().find(|v| v["name"] == name) {
            existing["value"] = value.into();
            return;
        }
        let mut var = serde_yaml::Mapping::new();
        var.insert("name".into(), name.into());
        var.insert("value".into(), value.into());
        list.push(Value::Mapping(var));
    }
}

/// Service account, read access to nodes, pods, namespaces and NetworkPolicies (Events on
/// policies it cannot enforce), and a hostNetwork DaemonSet on every node
/// (tolerating every taint: nodes are NotReady until it has run).
pub fn default_cni(image: &str) -> String {
    format!(
        r#"# kind's markers, so kind fills in the pod subnet and adds the API endpoint:
# would you kindly template this file
# would you kindly patch this file
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kindred-network
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kindred-network
rules:
  - apiGroups: [""]
    resources: ["nodes", "pods", "namespaces"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["networking.k8s.io"]
    resources: ["networkpolicies"]
    verbs: ["list", "watch"]
  - apiGroups: ["events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kindred-network
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kindred-network
subjects:
  - kind: ServiceAccount
    name: kindred-network
    namespace: kube-system
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kindred-network
  namespace: kube-system
  labels:
    app: kindred-network
spec:
  selector:
    matchLabels:
      app: kindred-network
  template:
    metadata:
      labels:
        app: kindred-network
    spec:
      hostNetwork: true
      dnsPolicy: Default
      serviceAccountName: kindred-network
      priorityClassName: system-node-critical
      tolerations:
        - operator: Exists
      containers:
        - name: agent
          image: {image}
          imagePullPolicy: Never
          args: ["agent", "network"]
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            - name: POD_SUBNET
              value: "{POD_SUBNET}"
            - name: KINDRED_LOG
              value: info
          securityContext:
            capabilities:
              add: ["NET_ADMIN", "NET_RAW"]
          resources:
            requests:
              cpu: 10m
              memory: 20Mi
          volumeMounts:
            - name: cni-config
              mountPath: /etc/cni/net.d
            - name: xtables-lock
              mountPath: /run/xtables.lock
      volumes:
        - name: cni-config
          hostPath:
            path: /etc/cni/net.d
            type: DirectoryOrCreate
        - name: xtables-lock
          hostPath:
            path: /run/xtables.lock
            type: FileOrCreate
"#
    )
}

/// The LoadBalancer Service agent (see `agent::service_lb`): not in node images, since only
/// kindred knows the cluster's address pool; `create cluster` renders it with the agent image
/// the node image carries. Its Leases and address table live in kube-system. `pool6`: the
/// pool's IPv6 twin, in a cluster with IPv6.
pub fn service_lb(image: &str, pool: &str, pool6: Option<&str>) -> String {
    use super::service_lb::TABLE;
    // Quoted like LB_POOL; indented to sit in the env list.
    let pool6 = pool6
        .map(|p| format!("\n            - name: LB_POOL_V6\n              value: \"{p}\""))
        .unwrap_or_default();
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: kindred-service-lb
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kindred-service-lb
rules:
  - apiGroups: [""]
    resources: ["services"]
    verbs: ["get", "list", "watch", "patch", "update"]
  - apiGroups: [""]
    resources: ["services/status"]
    verbs: ["patch", "update"]
  - apiGroups: [""]
    resources: ["nodes"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["discovery.k8s.io"]
    resources: ["endpointslices"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kindred-service-lb
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kindred-service-lb
subjects:
  - kind: ServiceAccount
    name: kindred-service-lb
    namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: kindred-service-lb
  namespace: kube-system
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get", "list", "watch", "create", "update", "delete"]
  - apiGroups: [""]
    resources: ["configmaps"]
    verbs: ["create"]
  - apiGroups: [""]
    resources: ["configmaps"]
    resourceNames: ["{TABLE}"]
    verbs: ["get", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: kindred-service-lb
  namespace: kube-system
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: kindred-service-lb
subjects:
  - kind: ServiceAccount
    name: kindred-service-lb
    namespace: kube-system
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kindred-service-lb
  namespace: kube-system
  labels:
    app: kindred-service-lb
spec:
  selector:
    matchLabels:
      app: kindred-service-lb
  template:
    metadata:
      labels:
        app: kindred-service-lb
    spec:
      hostNetwork: true
      dnsPolicy: Default
      serviceAccountName: kindred-service-lb
      priorityClassName: system-node-critical
      terminationGracePeriodSeconds: 10
      tolerations:
        - operator: Exists
      containers:
        - name: agent
          image: {image}
          imagePullPolicy: Never
          args: ["agent", "service-lb"]
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            - name: LB_POOL
              value: "{pool}"{pool6}
            - name: KINDRED_LOG
              value: info
          securityContext:
            capabilities:
              add: ["NET_ADMIN", "NET_RAW"]
          resources:
            requests:
              cpu: 10m
              memory: 20Mi
"#
    )
}

/// The agent image a rendered manifest's first DaemonSet runs: what the node image carries,
/// which may be another kindred version's than this binary's [`super::IMAGE`].
pub fn daemon_set_image(rendered: &str) -> Option<String> {
    serde_yaml::Deserializer::from_str(rendered)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .find(|doc: &Value| doc["kind"] == "DaemonSet")
        .and_then(|ds| {
            ds["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(String::from)
        })
}

/// The default StorageClass `standard` and the DaemonSet that provisions its volumes.
pub fn default_storage(image: &str) -> String {
    format!(
        r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: {PROVISIONER}
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kindred-storage
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kindred-storage
rules:
  - apiGroups: [""]
    resources: ["persistentvolumeclaims"]
    verbs: ["get", "list", "watch"]
  - apiGroups: [""]
    resources: ["persistentvolumes"]
    verbs: ["get", "list", "watch", "create", "delete"]
  - apiGroups: ["storage.k8s.io"]
    resources: ["storageclasses"]
    verbs: ["get", "list", "watch"]
  - apiGroups: [""]
    resources: ["nodes"]
    verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kindred-storage
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kindred-storage
subjects:
  - kind: ServiceAccount
    name: kindred-storage
    namespace: kube-system
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kindred-storage
  namespace: kube-system
  labels:
    app: kindred-storage
spec:
  selector:
    matchLabels:
      app: kindred-storage
  template:
    metadata:
      labels:
        app: kindred-storage
    spec:
      # An ordinary pod: it needs only the API server and its hostPath, not the node's
      # network (so it starts once the pod network does, like any workload).
      dnsPolicy: Default
      serviceAccountName: kindred-storage
      tolerations:
        - operator: Exists
      containers:
        - name: agent
          image: {image}
          imagePullPolicy: Never
          args: ["agent", "storage"]
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            - name: STORAGE_DIR
              value: {DEFAULT_DIR}
            - name: KINDRED_LOG
              value: info
          resources:
            requests:
              cpu: 10m
              memory: 20Mi
          volumeMounts:
            - name: volumes
              mountPath: {DEFAULT_DIR}
      volumes:
        - name: volumes
          hostPath:
            path: {DEFAULT_DIR}
            type: DirectoryOrCreate
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn documents(text: &str) -> Vec<serde_yaml::Value> {
        serde_yaml::Deserializer::from_str(text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect()
    }

    fn env_of(ds: &serde_yaml::Value) -> Vec<(String, String)> {
        ds["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| {
                let value = v["value"].as_str().unwrap_or("<from field>");
                (v["name"].as_str().unwrap().to_string(), value.to_string())
            })
            .collect()
    }

    #[test]
    fn network_manifest_renders_to_valid_documents() {
        let text = render(
            &default_cni("img:v1"),
            "10.244.0.0/16",
            "10.96.0.0/16",
            "c:6443",
        )
        .unwrap();
        assert!(!text.contains("{{"), "{text}");
        let docs = documents(&text);
        assert_eq!(docs.len(), 4);
        let ds = &docs[3];
        assert_eq!(ds["kind"], "DaemonSet");
        assert_eq!(
            ds["spec"]["template"]["spec"]["containers"][0]["image"],
            "img:v1"
        );
        let env = env_of(ds);
        let get = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("POD_SUBNET"), Some("10.244.0.0/16"));
        assert_eq!(get(CONTROL_PLANE_ENDPOINT), Some("c:6443"));
        assert_eq!(get(SERVICE_SUBNET), Some("10.96.0.0/16"));
    }

    /// What kind does with a node image's manifests: Go-templates the pod network manifest
    /// with nothing but PodSubnet (so no other `{{` may appear), and applies the storage
    /// manifest as it is (so it may hold no placeholder at all).
    #[test]
    fn manifests_keep_kinds_node_image_contract() {
        let cni = default_cni("img:v1");
        assert!(cni.contains("would you kindly template this file"));
        assert!(cni.contains("would you kindly patch this file"));
        assert_eq!(cni.matches("{{").count(), 1);
        assert_eq!(cni.matches(POD_SUBNET).count(), 1);
        let storage = default_storage("img:v1");
        assert!(!storage.contains("{{"), "{storage}");
        // kind's patch appends to the first container's env: the list must exist.
        let kind_rendered = cni.replace(POD_SUBNET, "10.244.0.0/16");
        let ds = &documents(&kind_rendered)[3];
        assert!(!env_of(ds).is_empty());
    }

    #[test]
    fn images_built_before_the_contract_still_render() {
        let old = "kind: DaemonSet\nspec: {template: {spec: {containers: [{name: a, env: [\
                   {name: KINDRED_API_SERVER, value: '{{ .APIServer }}'}, \
                   {name: SERVICE_SUBNET, value: '{{ .ServiceSubnet }}'}]}]}}}\n";
        let text = render(old, "10.244.0.0/16", "10.96.0.0/16", "c:6443").unwrap();
        let env = env_of(&documents(&text)[0]);
        assert_eq!(
            env[0],
            ("KINDRED_API_SERVER".into(), "https://c:6443".into())
        );
        assert_eq!(env[1], ("SERVICE_SUBNET".into(), "10.96.0.0/16".into()));
    }

    #[test]
    fn service_lb_manifest_carries_the_ipv6_twin_when_given() {
        let text = render(
            &service_lb("img:v1", "172.18.255.192/27", Some("fc00::ffc0/123")),
            "fd00:10:244::/56",
            "fd00:10:96::/112",
            "c:6443",
        )
        .unwrap();
        let docs = documents(&text);
        let env = env_of(&docs[5]);
        let get = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("LB_POOL"), Some("172.18.255.192/27"));
        assert_eq!(get("LB_POOL_V6"), Some("fc00::ffc0/123"));
        assert_eq!(get("KINDRED_LOG"), Some("info"));
    }

    #[test]
    fn service_lb_manifest_carries_the_pool_and_the_endpoint() {
        let text = render(
            &service_lb("img:v1", "172.18.255.192/27", None),
            "10.244.0.0/16",
            "10.96.0.0/16",
            "c:6443",
        )
        .unwrap();
        let docs = documents(&text);
        assert_eq!(docs.len(), 6);
        let ds = &docs[5];
        assert_eq!(ds["kind"], "DaemonSet");
        let env = env_of(ds);
        let get = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("LB_POOL"), Some("172.18.255.192/27"));
        assert_eq!(get("LB_POOL_V6"), None);
        assert_eq!(get(CONTROL_PLANE_ENDPOINT), Some("c:6443"));
        assert_eq!(daemon_set_image(&text).as_deref(), Some("img:v1"));
        assert_eq!(
            ds["spec"]["template"]["spec"]["containers"][0]["args"][1],
            "service-lb"
        );
    }

    #[test]
    fn storage_manifest_has_a_default_class_binding_on_first_consumer() {
        let text = render(
            &default_storage("img:v1"),
            "10.244.0.0/16",
            "10.96.0.0/16",
            "c:6443",
        )
        .unwrap();
        let docs = documents(&text);
        let class = &docs[0];
        assert_eq!(class["metadata"]["name"], "standard");
        assert_eq!(class["provisioner"], PROVISIONER);
        assert_eq!(class["volumeBindingMode"], "WaitForFirstConsumer");
        assert_eq!(
            class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
            "true"
        );
        assert_eq!(docs[4]["kind"], "DaemonSet");
        let pod = &docs[4]["spec"]["template"]["spec"];
        assert!(
            pod["hostNetwork"].is_null(),
            "the storage agent needs no host network"
        );
    }
}
