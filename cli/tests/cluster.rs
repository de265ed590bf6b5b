//! `kindred create cluster` end to end, against the real Docker daemon: a 1 control plane +
//! 2 worker cluster and, at the same time, a 1-node cluster. Workloads use the etcd image the
//! node image preloads (it serves HTTP and carries a client), so nothing is pulled.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const MULTI: &str = "kindred-e2e-multi";
const SINGLE: &str = "kindred-e2e-single";

use kindred_e2e::image::host_kubectl;
use kindred_e2e::{docker_out, output, stdout_ok, text};

fn kindred(args: &[&str], kubeconfig: &Path, stdin: Option<&str>) -> Output {
    let exe = env!("CARGO_BIN_EXE_kindred");
    output(&mut kindred_e2e::kindred(exe, args, kubeconfig), stdin)
}

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    context: String,
}

impl Kubectl {
    /// kubectl pointed at this cluster.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "--kubeconfig",
            self.kubeconfig.to_str().unwrap(),
            "--context",
            &self.context,
        ]);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run kubectl")
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout_ok(&self.run(args), format_args!("kubectl {}", args.join(" ")))
    }

    fn apply(&self, yaml: &str) {
        let out = output(self.command().args(["apply", "-f", "-"]), Some(yaml));
        assert!(
            out.status.success(),
            "kubectl apply failed:\n{}\n{yaml}",
            text(&out)
        );
    }

    /// Polls until `args` succeeds and its output satisfies `done`.
    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        args: &[&str],
        done: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            let out = self.run(args);
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && done(&stdout) {
                return stdout;
            }
            assert!(
                start.elapsed() < timeout,
                "{what}: not done after {timeout:?}; last output:\n{}",
                text(&out)
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

const MULTI_CONFIG: &str = kindred_e2e::cluster::ONE_PLUS_TWO;

#[tokio::test]
async fn clusters_are_created_used_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let kubectl_bin = host_kubectl(dir.path()).await;
    let cleanup = || {
        for name in [MULTI, SINGLE] {
            let _ = kindred(&["delete", "cluster", "--name", name], &kubeconfig, None);
        }
    };
    kindred_e2e::cluster::cleaned_up(
        &[MULTI, SINGLE],
        cleanup,
        || {},
        || {
            exercise(&kubeconfig, &kubectl_bin);
        },
    );
}

fn exercise(kubeconfig: &Path, kubectl_bin: &Path) {
    // Two clusters at once: a 1+2 from a kind config on stdin, and a 1-node one.
    let kc = kubeconfig.to_path_buf();
    let single = std::thread::spawn(move || {
        kindred(
            &["create", "cluster", "--name", SINGLE, "--wait", "3m"],
            &kc,
            None,
        )
    });
    let multi = kindred(
        &[
            "create", "cluster", "--name", MULTI, "--config", "-", "--wait", "3m",
        ],
        kubeconfig,
        Some(MULTI_CONFIG),
    );
    let single = single.join().unwrap();
    assert!(
        multi.status.success(),
        "create {MULTI} failed:\n{}",
        text(&multi)
    );
    assert!(
        single.status.success(),
        "create {SINGLE} failed:\n{}",
        text(&single)
    );

    // A taken name is refused before anything is touched.
    let again = kindred(&["create", "cluster", "--name", SINGLE], kubeconfig, None);
    assert!(!again.status.success());
    assert!(
        text(&again).contains(&format!("a cluster named {SINGLE} already exists")),
        "{}",
        text(&again)
    );

    let listed = String::from_utf8_lossy(&kindred(&["get", "clusters"], kubeconfig, None).stdout)
        .into_owned();
    assert!(
        listed.lines().any(|l| l == MULTI) && listed.lines().any(|l| l == SINGLE),
        "{listed}"
    );
    let nodes = String::from_utf8_lossy(
        &kindred(&["get", "nodes", "--name", MULTI], kubeconfig, None).stdout,
    )
    .into_owned();
    assert_eq!(nodes.lines().count(), 3, "{nodes}");

    let multi_k = Kubectl {
        bin: kubectl_bin.into(),
        kubeconfig: kubeconfig.into(),
        context: format!("kindred-{MULTI}"),
    };
    let ready = multi_k.ok(&["get", "nodes", "-o", r#"jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}"#]);
    assert_eq!(
        ready.matches("=True").count(),
        3,
        "not every node is Ready: {ready}"
    );

    // The system pods, CoreDNS included (it needs pod networking, Services and upstream DNS).
    multi_k.wait_for(
        "kube-system pods ready",
        Duration::from_secs(120),
        &[
            "-n",
            "kube-system",
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.status.containerStatuses[0].ready} {end}",
        ],
        |o| !o.is_empty() && !o.contains("false"),
    );

    // Two etcd pods, one pinned on each worker, behind a ClusterIP Service and a NodePort.
    let etcd_image = multi_k.ok(&[
        "-n",
        "kube-system",
        "get",
        "pod",
        &format!("etcd-{MULTI}-control-plane"),
        "-o",
        "jsonpath={.spec.containers[0].image}",
    ]);
    for worker in [format!("{MULTI}-worker"), format!("{MULTI}-worker2")] {
        multi_k.apply(&echo_pod(&worker, &etcd_image));
    }
    multi_k.apply(ECHO_SERVICES);
    let ips = multi_k.wait_for(
        "echo pods running",
        Duration::from_secs(120),
        &[
            "get",
            "pods",
            "-l",
            "app=echo",
            "-o",
            r#"jsonpath={range .items[*]}{.status.phase}={.status.podIP} {end}"#,
        ],
        |o| o.matches("Running=").count() == 2,
    );
    assert_eq!(ips.matches("Running=").count(), 2, "{ips}");
    let pod_b_ip = multi_k.ok(&[
        "get",
        "pod",
        &format!("echo-{MULTI}-worker2"),
        "-o",
        "jsonpath={.status.podIP}",
    ]);
    let pod_a = format!("echo-{MULTI}-worker");

    // Pod to pod across nodes.
    let health = multi_k.ok(&[
        "exec",
        &pod_a,
        "--",
        "etcdctl",
        &format!("--endpoints=http://{pod_b_ip}:2379"),
        "endpoint",
        "health",
    ]);
    assert!(health.contains("is healthy"), "{health}");
    // A ClusterIP Service by its DNS name (cluster DNS), from a pod.
    let health = multi_k.ok(&[
        "exec",
        &pod_a,
        "--",
        "etcdctl",
        "--endpoints=http://echo.default.svc.cluster.local:2379",
        "endpoint",
        "health",
    ]);
    assert!(health.contains("is healthy"), "{health}");
    // A NodePort from the host through a node's address on the kindred network.
    let node_ip = multi_k.ok(&[
        "get",
        "node",
        &format!("{MULTI}-worker"),
        "-o",
        r#"jsonpath={.status.addresses[?(@.type=="InternalIP")].address}"#,
    ]);
    let body = http_get(&format!("{node_ip}:30379"), "/health");
    assert!(
        body.contains(r#""health":"true""#),
        "NodePort answered: {body}"
    );

    deployment_spreads_over_workers(&multi_k, &etcd_image);
    api_server_by_short_name(&multi_k, &pod_a);
    pod_network_agent_routes(&multi_k);
    default_storage_class_provisions_and_cleans_up(&multi_k, &etcd_image);

    // The 1-node cluster schedules workloads on its control plane.
    let single_k = Kubectl {
        bin: kubectl_bin.into(),
        kubeconfig: kubeconfig.into(),
        context: format!("kindred-{SINGLE}"),
    };
    single_k.apply(&echo_pod(&format!("{SINGLE}-control-plane"), &etcd_image));
    single_k.wait_for(
        "a pod runs on the single node",
        Duration::from_secs(120),
        &[
            "get",
            "pods",
            "-l",
            "app=echo",
            "-o",
            "jsonpath={.items[0].status.phase}",
        ],
        |o| o == "Running",
    );

    // Deleting leaves nothing: containers, their volumes, kubeconfig entries, and the network
    // once unused.
    let volumes: Vec<String> = [MULTI, SINGLE]
        .iter()
        .flat_map(|c| {
            kindred_e2e::containers_of(c)
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .flat_map(|node| {
            docker_out(&[
                "inspect",
                "-f",
                "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
                &node,
            ])
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        volumes.len(),
        4,
        "each node has its /var volume: {volumes:?}"
    );
    for name in [MULTI, SINGLE] {
        let out = kindred(&["delete", "cluster", "--name", name], kubeconfig, None);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            kindred_e2e::containers_of(name),
            "",
            "containers of {name} remain"
        );
    }
    for volume in &volumes {
        let out = Command::new("docker")
            .args(["volume", "inspect", volume])
            .output()
            .unwrap();
        assert!(!out.status.success(), "volume {volume} outlived its node");
    }
    let config = std::fs::read_to_string(kubeconfig).unwrap_or_default();
    assert!(
        !config.contains("kindred-kindred-e2e"),
        "kubeconfig entries remain:\n{config}"
    );
    let net = Command::new("docker")
        .args(["network", "ls", "--filter", "name=^kindred$", "-q"])
        .output()
        .unwrap();
    let others = Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=io.kindred.cluster"])
        .output()
        .unwrap();
    if others.stdout.is_empty() {
        assert!(
            net.stdout.is_empty(),
            "the kindred network outlived its last cluster"
        );
    }
}

/// Three replicas with a hostname spread constraint land on both workers and all run.
fn deployment_spreads_over_workers(k: &Kubectl, image: &str) {
    k.apply(&format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: spread
spec:
  replicas: 3
  selector:
    matchLabels:
      app: spread
  template:
    metadata:
      labels:
        app: spread
    spec:
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        nodeTaintsPolicy: Honor
        labelSelector:
          matchLabels:
            app: spread
      containers:
      - name: etcd
        image: {image}
        imagePullPolicy: Never
        command: [etcd, --data-dir=/tmp/etcd]
"
    ));
    let placed = k.wait_for(
        "3 replicas running",
        Duration::from_secs(120),
        &[
            "get",
            "pods",
            "-l",
            "app=spread",
            "-o",
            "jsonpath={range .items[*]}{.status.phase}={.spec.nodeName} {end}",
        ],
        |o| o.matches("Running=").count() == 3,
    );
    for worker in [format!("{MULTI}-worker "), format!("{MULTI}-worker2 ")] {
        assert!(placed.contains(&worker), "no replica on {worker}: {placed}");
    }
    k.ok(&["delete", "deployment", "spread"]);
}

/// `kubernetes.default` resolves through the pod's DNS search path and reaches the API server:
/// etcdctl's gRPC call over TLS gets the API server's HTTP 403, which only it can send.
fn api_server_by_short_name(k: &Kubectl, pod: &str) {
    let out = k.run(&[
        "exec",
        pod,
        "--",
        "etcdctl",
        "--endpoints=https://kubernetes.default:443",
        "--insecure-skip-tls-verify",
        "--dial-timeout=5s",
        "--command-timeout=10s",
        "endpoint",
        "health",
    ]);
    assert!(
        text(&out).contains("received from server: 403"),
        "kubernetes.default did not reach the API server:\n{}",
        text(&out)
    );
}

/// The network agent on the control plane routes each worker's PodCIDR via that worker.
fn pod_network_agent_routes(k: &Kubectl) {
    let cidrs = k.ok(&[
        "get",
        "nodes",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name}={.spec.podCIDR}={.status.addresses[?(@.type=="InternalIP")].address} {end}"#,
    ]);
    let routes = docker_exec(
        &format!("{MULTI}-control-plane"),
        &["ip", "route", "show", "proto", "117"],
    );
    for entry in cidrs.split_whitespace() {
        let parts: Vec<&str> = entry.split('=').collect();
        if parts[0].ends_with("control-plane") {
            continue;
        }
        assert!(
            routes.contains(&format!("{} via {}", parts[1], parts[2])),
            "no agent route for {entry}:\n{routes}"
        );
    }
}

/// A claim on the default class binds once its pod is scheduled, the pod writes into it, and
/// deleting the claim removes the volume and its directory on the node.
fn default_storage_class_provisions_and_cleans_up(k: &Kubectl, image: &str) {
    let mode = k.ok(&[
        "get",
        "storageclass",
        "standard",
        "-o",
        "jsonpath={.volumeBindingMode}",
    ]);
    assert_eq!(mode, "WaitForFirstConsumer");
    k.apply(&format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Pod
metadata:
  name: store
spec:
  containers:
  - name: etcd
    image: {image}
    imagePullPolicy: Never
    command: [etcd, --data-dir=/data/etcd]
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: data
"
    ));
    k.wait_for(
        "the pod with a claim runs",
        Duration::from_secs(120),
        &["get", "pod", "store", "-o", "jsonpath={.status.phase}"],
        |o| o == "Running",
    );
    let node = k.ok(&["get", "pod", "store", "-o", "jsonpath={.spec.nodeName}"]);
    let volume = k.ok(&["get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}"]);
    let dir = format!("/var/local-path-provisioner/{volume}");
    let member = format!("{dir}/etcd/member");
    k.wait_for(
        "etcd writes into the volume",
        Duration::from_secs(60),
        &["exec", "store", "--", "etcdctl", "endpoint", "health"],
        |o| o.contains("is healthy"),
    );
    assert!(
        docker_exec(&node, &["ls", &member]).contains("snap"),
        "etcd's data is not in {member} on {node}"
    );
    k.ok(&["delete", "pod", "store", "--now"]);
    k.ok(&["delete", "pvc", "data"]);
    k.wait_for(
        "the released volume is deleted",
        Duration::from_secs(60),
        &["get", "pv", "-o", "name"],
        |o| !o.contains(&volume),
    );
    assert_eq!(
        docker_exec(
            &node,
            &[
                "sh",
                "-c",
                &format!("test -e {dir} && echo left || echo gone")
            ]
        )
        .trim(),
        "gone"
    );
}

fn docker_exec(container: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", container];
    args.extend(cmd);
    docker_out(&args)
}

fn echo_pod(node: &str, image: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: echo-{node}
  labels:
    app: echo
spec:
  nodeName: {node}
  containers:
  - name: etcd
    image: {image}
    imagePullPolicy: Never
    command: [etcd, --data-dir=/tmp/etcd, --listen-client-urls=http://0.0.0.0:2379, --advertise-client-urls=http://127.0.0.1:2379, --listen-peer-urls=http://127.0.0.1:2380]
"
    )
}

const ECHO_SERVICES: &str = "apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  selector:
    app: echo
  ports:
  - port: 2379
---
apiVersion: v1
kind: Service
metadata:
  name: echo-nodeport
spec:
  type: NodePort
  selector:
    app: echo
  ports:
  - port: 2379
    nodePort: 30379
";

fn http_get(addr: &str, path: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(mut conn) =
            TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(3))
        {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            write!(conn, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
            let mut body = String::new();
            if conn.read_to_string(&mut body).is_ok() && !body.is_empty() {
                return body;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing answered on {addr}{path}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

const BROKEN_KUBEADM: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
kubeadmConfigPatches:
- |
  kind: ClusterConfiguration
  networking:
    serviceSubnet: not-a-cidr
";

#[test]
fn a_failing_step_is_explained_and_cleaned_up_unless_retained() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let name = "kindred-e2e-broken";
    let _ = kindred(&["delete", "cluster", "--name", name], &kubeconfig, None);

    let out = kindred(
        &["create", "cluster", "--name", name, "--config", "-"],
        &kubeconfig,
        Some(BROKEN_KUBEADM),
    );
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("kubeadm init") && log.contains("failed"),
        "the failing step is not named:\n{log}"
    );
    assert!(
        log.contains("not-a-cidr"),
        "kubeadm's reason is missing:\n{log}"
    );
    assert!(
        log.contains("last kubelet log lines on kindred-e2e-broken-control-plane"),
        "{log}"
    );
    assert_eq!(
        kindred_e2e::containers_of(name),
        "",
        "nodes were left behind:\n{log}"
    );

    let out = kindred(
        &[
            "create", "cluster", "--name", name, "--config", "-", "--retain",
        ],
        &kubeconfig,
        Some(BROKEN_KUBEADM),
    );
    assert!(!out.status.success());
    let kept = kindred_e2e::node_containers_of(name);
    let _ = kindred(&["delete", "cluster", "--name", name], &kubeconfig, None);
    assert_eq!(
        kept,
        format!("{name}-control-plane"),
        "--retain did not keep the node:\n{}",
        text(&out)
    );
    assert!(text(&out).contains("--retain"), "{}", text(&out));
}

#[test]
fn sigterm_during_create_deletes_the_partial_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let name = "kindred-e2e-sigterm";
    let _ = kindred(&["delete", "cluster", "--name", name], &kubeconfig, None);
    let mut child = Command::new(env!("CARGO_BIN_EXE_kindred"))
        .args(["create", "cluster", "--name", name, "--wait", "3m"])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the node exists, i.e. there is something to clean up.
    let start = Instant::now();
    while kindred_e2e::containers_of(name).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the node was never created"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = {
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status, err)
    };
    let leftover = kindred_e2e::containers_of(name);
    let _ = kindred(&["delete", "cluster", "--name", name], &kubeconfig, None);
    assert!(!out.0.success(), "create survived SIGTERM:\n{}", out.1);
    assert!(out.1.contains("Interrupted by SIGTERM"), "{}", out.1);
    assert_eq!(leftover, "", "nodes left after SIGTERM:\n{}", out.1);
}
