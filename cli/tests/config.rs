//! The cluster config's node options end to end, against the real Docker daemon. One 1 control
//! plane + 1 worker cluster, created from a config that uses every feature at once (host port
//! mappings, extra mounts with a relative path, read-only and propagating mounts, cluster and
//! node kubeadm patches, containerd patches, DNS search domains, proxy variables, kube-proxy in
//! nftables mode), serves every
//! subtest; the subtests run in order inside one test function so the cluster is deleted at the
//! end whatever happens, and a failing subtest does not hide the others. Bad input (a taken host
//! port, a missing host path, ...) is checked first: it must fail before anything is created.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const CLUSTER: &str = "config-e2e";
const CP: &str = "config-e2e-control-plane";
const WORKER: &str = "config-e2e-worker";
/// The pod's port on the worker (hostPort), published on the host by extraPortMappings.
const NODE_PORT: u16 = 30079;
const PROXY: &str = "http://127.0.0.1:3128";

struct Ctx {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    /// A host port that was free when the config was written, published on 127.0.0.1.
    fixed_port: u16,
    /// A shared bind mount on the host, for propagation HostToContainer.
    propagated: PathBuf,
}

impl Ctx {
    fn kindred(&self, args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Output {
        let exe = env!("CARGO_BIN_EXE_kindred");
        let mut cmd = kindred_e2e::kindred(exe, args, &self.kubeconfig);
        cmd.current_dir(self.dir.path());
        // The test's own environment must not decide what the nodes get.
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"] {
            cmd.env_remove(name).env_remove(name.to_lowercase());
        }
        output(cmd.envs(envs.iter().copied()), stdin)
    }

    fn cleanup(&self) {
        let _ = self.kindred(&["delete", "cluster", "--name", CLUSTER], &[], None);
        // The propagated mounts: first what the test mounted inside, then the bind itself.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(&self.propagated)
            .output();
    }
}

use kindred_e2e::{free_port, node_sh, output, stdout_ok, text};

fn run(program: &str, args: &[&str]) -> Output {
    kindred_e2e::run(program, args, None)
}

/// kubectl on the control plane (the host has none).
fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    kindred_e2e::node_kubectl(CP, args, stdin)
}

fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    stdout_ok(
        &kubectl(args, stdin),
        format_args!("kubectl {}", args.join(" ")),
    )
}

/// Every feature at once. Host paths: `./shared` and `./readonly` relative to the config file.
fn config(fixed_port: u16, propagated: &Path) -> String {
    format!(
        r#"kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  dnsSearch: [kindred-e2e.test, corp.internal]
  kubeProxyMode: nftables
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  eventRecordQPS: 7
containerdConfigPatches:
# kind's local registry patch, written for containerd's version 2 config.
- |-
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
- |
  [plugins.'io.containerd.cri.v1.images']
    max_concurrent_downloads = 7
containerdConfigPatchesJSON6902:
- |
  - op: add
    path: /plugins/io.containerd.cri.v1.images/image_pull_progress_timeout
    value: 7m0s
nodes:
- role: control-plane
- role: worker
  kubeadmConfigPatches:
  - |
    kind: KubeletConfiguration
    maxPods: 42
  kubeadmConfigPatchesJSON6902:
  - group: kubelet.config.k8s.io
    version: v1beta1
    kind: KubeletConfiguration
    patch: |
      - op: add
        path: /registryPullQPS
        value: 3
  extraMounts:
  - hostPath: ./shared
    containerPath: /shared
  - hostPath: ./readonly
    containerPath: /readonly
    readOnly: true
    selinuxRelabel: true
  - hostPath: {propagated}
    containerPath: /propagated
    propagation: HostToContainer
  extraPortMappings:
  - containerPort: {NODE_PORT}
    hostPort: 0
  - containerPort: {NODE_PORT}
    hostPort: {fixed_port}
    listenAddress: 127.0.0.1
  - containerPort: 30053
    protocol: UDP
"#,
        propagated = propagated.display()
    )
}

#[test]
fn every_node_option_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let propagated = dir.path().join("propagated");
    for sub in ["shared", "readonly", "propagated"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    std::fs::write(dir.path().join("readonly/hello.txt"), "from the host\n").unwrap();
    // A shared mount, so that mounts made below it on the host reach the node.
    let p = propagated.to_str().unwrap();
    for args in [vec!["--bind", p, p], vec!["--make-rshared", p]] {
        let out = run("mount", &args);
        assert!(out.status.success(), "mount {args:?}: {}", text(&out));
    }
    let ctx = Ctx {
        kubeconfig: dir.path().join("kubeconfig"),
        fixed_port: free_port(),
        propagated,
        dir,
    };
    ctx.cleanup_cluster_only();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| run_subtests(&ctx)));
    if result.is_err() && std::env::var_os("KINDRED_ARTIFACTS").is_some() {
        let _ = ctx.kindred(&["export", "logs", "--name", CLUSTER], &[], None);
    }
    ctx.cleanup();
    assert_eq!(kindred_e2e::containers_of(CLUSTER), "", "nodes remain");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

impl Ctx {
    fn cleanup_cluster_only(&self) {
        let _ = self.kindred(&["delete", "cluster", "--name", CLUSTER], &[], None);
    }
}

fn run_subtests(ctx: &Ctx) {
    let t = Instant::now();
    bad_input_fails_before_anything_is_created(ctx);
    eprintln!("=== ok: bad input ({:.1?})", t.elapsed());

    let started = Instant::now();
    let path = ctx.dir.path().join("cluster.yaml");
    std::fs::write(&path, config(ctx.fixed_port, &ctx.propagated)).unwrap();
    let created = ctx.kindred(
        &[
            "create",
            "cluster",
            "--name",
            CLUSTER,
            "--config",
            "cluster.yaml",
            "--wait",
            "3m",
            "-v",
        ],
        &[("HTTP_PROXY", PROXY), ("no_proxy", "corp.internal")],
        None,
    );
    assert!(
        created.status.success(),
        "create {CLUSTER} failed:\n{}",
        text(&created)
    );
    let log = text(&created);
    assert!(
        log.contains("version 2 settings moved to containerd's version 3 plugins"),
        "-v tells about the moved registry patch:\n{log}"
    );
    eprintln!("setup took {:.0?}", started.elapsed());

    let subtests: [kindred_e2e::Subtest<Ctx>; 7] = [
        ("host ports reach a pod's hostPort", host_ports_reach_a_pod),
        ("extra mounts", extra_mounts),
        ("kubeadm patches in /configz", kubeadm_patches_in_configz),
        ("containerd patches in config dump", containerd_patches),
        ("proxy variables in containerd and kubelet", proxy_variables),
        ("dnsSearch in the node and pods", dns_search),
        (
            "kube-proxy in nftables mode serves a Service",
            nftables_kube_proxy,
        ),
    ];
    kindred_e2e::run_subtests(ctx, &subtests);
}

/// Each of these fails before any container is created, and says why.
fn bad_input_fails_before_anything_is_created(ctx: &Ctx) {
    let header = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n";
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cwd = ctx.dir.path().display().to_string();
    let cases = [
        (
            "config-bad-port",
            format!(
                "{header}nodes:\n- role: control-plane\n  extraPortMappings:\n  - \
                 {{containerPort: 80, hostPort: {port}, listenAddress: 127.0.0.1}}\n"
            ),
            vec![format!(
                "node config-bad-port-control-plane (nodes[0].extraPortMappings[0]): host port \
                 127.0.0.1:{port}/TCP is already in use on this host"
            )],
        ),
        (
            "config-bad-mount",
            format!(
                "{header}nodes:\n- role: control-plane\n- role: worker\n  extraMounts:\n  - \
                 {{hostPath: /nonexistent/config-e2e, containerPath: /data}}\n  - \
                 {{hostPath: ./not-here, containerPath: /rel}}\n"
            ),
            vec![
                "node config-bad-mount-worker (nodes[1].extraMounts[0]): hostPath \
                 /nonexistent/config-e2e does not exist on this host"
                    .to_string(),
                // From stdin, relative paths count from the current directory.
                format!(
                    "node config-bad-mount-worker (nodes[1].extraMounts[1]): hostPath \
                     {cwd}/not-here does not exist"
                ),
            ],
        ),
        (
            "config-bad-patch",
            format!(
                "{header}containerdConfigPatches:\n- \"[plugins\\na = 1\"\n\
                 containerdConfigPatchesJSON6902:\n- \"op: add\"\n"
            ),
            vec![
                "containerdConfigPatches[0]: is not valid TOML (line 1 column".to_string(),
                "containerdConfigPatchesJSON6902[0]: is not a list of JSON patch operations"
                    .to_string(),
            ],
        ),
        (
            "config-bad-family",
            format!("{header}networking:\n  ipFamily: ipv6\n  podSubnet: 10.244.0.0/16\n"),
            vec!["\"10.244.0.0/16\" does not fit ipFamily ipv6".to_string()],
        ),
    ];
    for (name, yaml, expected) in cases {
        let out = ctx.kindred(
            &["create", "cluster", "--name", name, "--config", "-"],
            &[],
            Some(&yaml),
        );
        let msg = text(&out);
        assert!(!out.status.success(), "{name} was created:\n{msg}");
        for e in expected {
            assert!(msg.contains(&e), "{name}: expected {e}\ngot:\n{msg}");
        }
        assert_eq!(
            kindred_e2e::containers_of(name),
            "",
            "{name} left containers"
        );
    }
    drop(taken);
    let probes = run(
        "docker",
        &["network", "ls", "-q", "--filter", "name=kindred-ipv6-probe"],
    );
    assert!(probes.stdout.is_empty(), "the IPv6 probe network remains");
}

/// The host port Docker publishes for the worker's NODE_PORT on `host_ip`.
fn published_port(host_ip: &str) -> u16 {
    let out = run(
        "docker",
        &["inspect", "-f", "{{json .NetworkSettings.Ports}}", WORKER],
    );
    let ports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    ports[format!("{NODE_PORT}/tcp")]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["HostIp"] == host_ip)
        .and_then(|b| b["HostPort"].as_str())
        .unwrap_or_else(|| panic!("no {host_ip} binding for {NODE_PORT}/tcp: {ports}"))
        .parse()
        .unwrap()
}

fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// etcd on the worker, with its client port on a hostPort and its data on the extra mount.
fn etcd_pod() -> String {
    let image = kubectl_ok(
        &[
            "-n",
            "kube-system",
            "get",
            "pod",
            &format!("etcd-{CP}"),
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ],
        None,
    );
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: etcd-hostport
  labels: {{app: etcd-hostport}}
spec:
  nodeName: {WORKER}
  containers:
  - name: etcd
    image: {image}
    imagePullPolicy: Never
    command: [etcd, --data-dir=/shared/etcd, --listen-client-urls=http://0.0.0.0:2379,
              --advertise-client-urls=http://127.0.0.1:2379]
    ports:
    - containerPort: 2379
      hostPort: {NODE_PORT}
    readinessProbe:
      httpGet: {{path: /health, port: 2379}}
      periodSeconds: 2
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    - {{name: readonly, mountPath: /readonly}}
  volumes:
  - name: shared
    hostPath: {{path: /shared}}
  - name: readonly
    hostPath: {{path: /readonly}}
"
    )
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<String>) -> String {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        if start.elapsed() > timeout {
            panic!("{what}: not within {timeout:?}");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn ensure_etcd_pod() {
    kubectl_ok(&["apply", "-f", "-"], Some(&etcd_pod()));
    let start = Instant::now();
    loop {
        let ready = kubectl_ok(
            &[
                "get",
                "pod",
                "etcd-hostport",
                "-o",
                "jsonpath={.status.containerStatuses[0].ready}",
            ],
            None,
        );
        if ready == "true" {
            return;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let describe = kubectl(&["describe", "pod", "etcd-hostport"], None);
            panic!(
                "etcd-hostport is not ready after 120s:\n{}",
                text(&describe)
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn host_ports_reach_a_pod(ctx: &Ctx) {
    ensure_etcd_pod();
    let random = published_port("0.0.0.0");
    assert_eq!(published_port("127.0.0.1"), ctx.fixed_port);
    for port in [random, ctx.fixed_port] {
        let body = wait_for(
            &format!("etcd's /health on host port {port}"),
            Duration::from_secs(30),
            || {
                http_get(port, "/health")
                    .ok()
                    .filter(|r| r.contains("\"health\":\"true\""))
            },
        );
        assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    }
    // hostPort 0 was fixed at create time, so a restarted container keeps its port.
    let bindings = run(
        "docker",
        &["inspect", "-f", "{{json .HostConfig.PortBindings}}", WORKER],
    );
    let bindings: serde_json::Value = serde_json::from_slice(&bindings.stdout).unwrap();
    let configured: Vec<&str> = bindings[format!("{NODE_PORT}/tcp")]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["HostPort"].as_str())
        .collect();
    assert_eq!(
        configured,
        [random.to_string(), ctx.fixed_port.to_string()],
        "{bindings}"
    );
    let udp = bindings["30053/udp"][0]["HostPort"]
        .as_str()
        .unwrap_or_default();
    assert!(
        udp.parse::<u16>().is_ok_and(|p| p > 0),
        "UDP port fixed: {bindings}"
    );
}

/// `kubeProxyMode: nftables`: kube-proxy programs its own nftables table (no iptables
/// chains), and a ClusterIP Service answers through it from the other node.
fn nftables_kube_proxy(_: &Ctx) {
    ensure_etcd_pod();
    for node in [CP, WORKER] {
        let table = run(
            "docker",
            &["exec", node, "nft", "list", "table", "ip", "kube-proxy"],
        );
        assert!(table.status.success(), "{node}: {}", text(&table));
        let chains = run("docker", &["exec", node, "iptables-save", "-t", "nat"]);
        assert!(
            !String::from_utf8_lossy(&chains.stdout).contains("KUBE-SERVICES"),
            "{node} has iptables-mode chains"
        );
    }
    let _ = kubectl(
        &["delete", "service", "etcd-nft", "--ignore-not-found"],
        None,
    );
    kubectl_ok(
        &[
            "expose",
            "pod",
            "etcd-hostport",
            "--name",
            "etcd-nft",
            "--port",
            "80",
            "--target-port",
            "2379",
        ],
        None,
    );
    let ip = kubectl_ok(
        &[
            "get",
            "service",
            "etcd-nft",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
        None,
    );
    // The node has bash but no curl: HTTP/1.0 over bash's /dev/tcp.
    let script = format!(
        "exec 3<>/dev/tcp/{ip}/80 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
    );
    let body = wait_for(
        &format!("etcd's /health through Service {ip}:80 from {CP}"),
        Duration::from_secs(30),
        || {
            let out = run(
                "docker",
                &["exec", CP, "timeout", "5", "bash", "-c", &script],
            );
            let body = String::from_utf8_lossy(&out.stdout).into_owned();
            body.contains("\"health\":\"true\"").then_some(body)
        },
    );
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
}

fn extra_mounts(ctx: &Ctx) {
    ensure_etcd_pod();
    // Pod -> node -> host: etcd's data directory, through a hostPath volume on /shared, which is
    // ./shared next to the config file.
    let member = ctx.dir.path().join("shared/etcd/member");
    wait_for("etcd's data on the host", Duration::from_secs(30), || {
        member.is_dir().then(String::new)
    });
    // Host -> node, read-only.
    assert_eq!(
        node_sh(WORKER, "cat /readonly/hello.txt"),
        "from the host\n"
    );
    let write = run("docker", &["exec", WORKER, "touch", "/readonly/new"]);
    assert!(!write.status.success(), "/readonly is writable");
    assert!(
        String::from_utf8_lossy(&write.stderr).contains("Read-only file system"),
        "{}",
        text(&write)
    );
    // A mount made on the host after the node started reaches it (HostToContainer).
    let sub = ctx.propagated.join("later");
    std::fs::create_dir_all(&sub).unwrap();
    let out = run("mount", &["-t", "tmpfs", "tmpfs", sub.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(sub.join("file"), "propagated\n").unwrap();
    assert_eq!(
        node_sh(WORKER, "cat /propagated/later/file"),
        "propagated\n"
    );
    let mounts = run("docker", &["inspect", "-f", "{{json .Mounts}}", WORKER]);
    let mounts: serde_json::Value = serde_json::from_slice(&mounts.stdout).unwrap();
    let find = |dest: &str| {
        mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == dest)
            .unwrap_or_else(|| panic!("no mount at {dest}: {mounts}"))
            .clone()
    };
    assert_eq!(find("/propagated")["Propagation"], "rslave");
    assert_eq!(find("/readonly")["RW"], false);
    assert_eq!(
        find("/shared")["Source"],
        ctx.dir.path().join("shared").display().to_string(),
        "a relative hostPath counts from the config file's directory"
    );
}

/// The kubelet's live configuration, as the API server's node proxy returns it.
fn configz(node: &str) -> serde_json::Value {
    let raw = kubectl_ok(
        &[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{node}/proxy/configz"),
        ],
        None,
    );
    let json: serde_json::Value = serde_json::from_str(&raw).unwrap();
    json["kubeletconfig"].clone()
}

fn kubeadm_patches_in_configz(_: &Ctx) {
    let worker = configz(WORKER);
    let cp = configz(CP);
    // The cluster's patch reaches every kubelet.
    assert_eq!(worker["eventRecordQPS"], 7, "{worker}");
    assert_eq!(cp["eventRecordQPS"], 7, "{cp}");
    // The worker's own patches (merge and JSON 6902) reach only the worker.
    assert_eq!(worker["maxPods"], 42, "{worker}");
    assert_eq!(worker["registryPullQPS"], 3, "{worker}");
    assert_eq!(cp["maxPods"], 110, "{cp}");
    assert_eq!(cp["registryPullQPS"], 5, "{cp}");
    let capacity = kubectl_ok(
        &[
            "get",
            "node",
            WORKER,
            "-o",
            "jsonpath={.status.capacity.pods}",
        ],
        None,
    );
    assert_eq!(capacity, "42");
    // ... and not the kubelet config kubeadm shares with joining nodes.
    let shared = kubectl_ok(
        &[
            "-n",
            "kube-system",
            "get",
            "configmap",
            "kubelet-config",
            "-o",
            "jsonpath={.data.kubelet}",
        ],
        None,
    );
    assert!(shared.contains("eventRecordQPS: 7"), "{shared}");
    assert!(!shared.contains("maxPods: 42"), "{shared}");
}

fn containerd_patches(_: &Ctx) {
    for node in [CP, WORKER] {
        let dump = node_sh(node, "containerd config dump");
        let setting = |key: &str| {
            dump.lines()
                .find(|l| l.trim_start().starts_with(&format!("{key} =")))
                .map(|l| {
                    l.split_once('=')
                        .unwrap()
                        .1
                        .trim()
                        .trim_matches(['\'', '"'])
                        .to_string()
                })
                .unwrap_or_else(|| panic!("{node}: no {key} in containerd config dump:\n{dump}"))
        };
        assert_eq!(setting("config_path"), "/etc/containerd/certs.d", "{node}");
        assert_eq!(setting("max_concurrent_downloads"), "7", "{node}");
        assert_eq!(setting("image_pull_progress_timeout"), "7m0s", "{node}");
        // The node image's own settings survive the patches.
        assert_eq!(setting("SystemdCgroup"), "true", "{node}");
        assert!(
            node_sh(node, "systemctl is-active containerd").trim() == "active",
            "{node}"
        );
    }
}

/// The environment of a systemd service's main process.
fn service_env(node: &str, unit: &str) -> Vec<(String, String)> {
    let env = node_sh(
        node,
        &format!("tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value {unit})/environ"),
    );
    env.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn proxy_variables(_: &Ctx) {
    let network = run(
        "docker",
        &[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
            "kindred",
        ],
    );
    let subnets = String::from_utf8_lossy(&network.stdout).trim().to_string();
    assert!(!subnets.is_empty());
    for node in [CP, WORKER] {
        for unit in ["containerd", "kubelet"] {
            let env = service_env(node, unit);
            let get = |name: &str| {
                env.iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| panic!("{node} {unit}: no {name} in {env:?}"))
            };
            assert_eq!(get("HTTP_PROXY"), PROXY, "{node} {unit}");
            assert_eq!(get("http_proxy"), PROXY, "{node} {unit}");
            assert!(
                env.iter().all(|(k, _)| k != "HTTPS_PROXY"),
                "not set, not forwarded"
            );
            let no_proxy = get("NO_PROXY");
            assert_eq!(get("no_proxy"), no_proxy);
            let entries: Vec<&str> = no_proxy.split(',').collect();
            assert_eq!(
                entries[0], "corp.internal",
                "the user's entries first: {no_proxy}"
            );
            for expected in [
                "10.244.0.0/16",
                "10.96.0.0/16",
                CP,
                WORKER,
                "localhost",
                "127.0.0.1",
                ".svc",
                ".cluster.local",
            ]
            .into_iter()
            .chain(subnets.split_whitespace())
            {
                assert!(
                    entries.contains(&expected),
                    "{node} {unit}: {expected} not in {no_proxy}"
                );
            }
        }
    }
}

fn dns_search(_: &Ctx) {
    for node in [CP, WORKER] {
        let resolv = node_sh(node, "cat /etc/resolv.conf");
        assert!(
            resolv
                .lines()
                .any(|l| l == "search kindred-e2e.test corp.internal"),
            "{node}:\n{resolv}"
        );
    }
    // A ClusterFirst pod searches the cluster's domains, then the node's.
    ensure_etcd_pod();
    let id = node_sh(WORKER, "crictl pods --name etcd-hostport --state ready -q");
    let id = id.lines().next().expect("the pod's sandbox");
    let inspect: serde_json::Value =
        serde_json::from_str(&node_sh(WORKER, &format!("crictl inspectp {id}"))).unwrap();
    let searches = &inspect["info"]["config"]["dns_config"]["searches"];
    assert_eq!(
        searches,
        &serde_json::json!([
            "default.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
            "kindred-e2e.test",
            "corp.internal"
        ]),
        "{inspect}"
    );
}
