//! The manifests that run the agents, written into node images at /kind/manifests/ (where kind
//! keeps its own) and applied by `create cluster` after the first control plane is up.
//! They carry kind-style placeholders filled in at create time, see [`render`].

use super::storage::{DEFAULT_DIR, PROVISIONER};

/// Path of the pod network manifest inside a node image.
pub const DEFAULT_CNI_PATH: &str = "/kind/manifests/default-cni.yaml";
/// Path of the storage manifest inside a node image.
pub const DEFAULT_STORAGE_PATH: &str = "/kind/manifests/default-storage.yaml";

const POD_SUBNET: &str = "{{ .PodSubnet }}";
const SERVICE_SUBNET: &str = "{{ .ServiceSubnet }}";
const API_SERVER: &str = "{{ .APIServer }}";

/// Fills in the cluster's pod subnet, the service subnet the network agent guards (empty: no
/// guard) and the API server URL the agents talk to.
pub fn render(template: &str, pod_subnet: &str, service_subnet: &str, api_server: &str) -> String {
    template
        .replace(POD_SUBNET, pod_subnet)
        .replace(SERVICE_SUBNET, service_subnet)
        .replace(API_SERVER, api_server)
}

/// Service account, read access to nodes, and a hostNetwork DaemonSet on every node
/// (tolerating every taint: nodes are NotReady until it has run).
pub fn default_cni(image: &str) -> String {
    format!(
        r#"apiVersion: v1
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
    resources: ["nodes"]
    verbs: ["get", "list", "watch"]
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
            - name: KINDRED_API_SERVER
              value: "{API_SERVER}"
            - name: KINDRED_LOG
              value: info
            - name: SERVICE_SUBNET
              value: "{SERVICE_SUBNET}"
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
      hostNetwork: true
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
            - name: KINDRED_API_SERVER
              value: "{API_SERVER}"
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

    #[test]
    fn network_manifest_renders_to_valid_documents() {
        let text = render(
            &default_cni("img:v1"),
            "10.244.0.0/16",
            "10.96.0.0/16",
            "https://c:6443",
        );
        assert!(!text.contains("{{"), "{text}");
        let docs = documents(&text);
        assert_eq!(docs.len(), 4);
        let ds = &docs[3];
        assert_eq!(ds["kind"], "DaemonSet");
        let container = &ds["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "img:v1");
        assert_eq!(container["env"][1]["value"], "10.244.0.0/16");
        assert_eq!(container["env"][2]["value"], "https://c:6443");
        assert_eq!(container["env"][4]["name"], "SERVICE_SUBNET");
        assert_eq!(container["env"][4]["value"], "10.96.0.0/16");
    }

    #[test]
    fn storage_manifest_has_a_default_class_binding_on_first_consumer() {
        let text = render(
            &default_storage("img:v1"),
            "10.244.0.0/16",
            "10.96.0.0/16",
            "https://c:6443",
        );
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
    }
}
