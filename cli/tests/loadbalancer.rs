//! LoadBalancer Services end to end, on a real 1 control plane + 1 worker cluster: a Service
//! with a TCP and a UDP port gets an address from the cluster's pool and answers from this
//! host (the Docker host, on the `kindred` network) and from a pod; its port is changed live
//! and answers on the new one; a `loadBalancerIP` outside the pool leaves a Service pending
//! with an Event naming the reason; the cluster stopped and started, the Service keeps its
//! address and answers on it; deleted, the address stops answering and is handed out again.
//! The servers are images every node image preloads (etcd for HTTP, CoreDNS for DNS).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use kindred_e2e::{node_kubectl, run, stdout_ok, text};

const NAME: &str = "lb-e2e";

const APP: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: etcd
        image: ETCD
        imagePullPolicy: Never
        command: [etcd, --data-dir=/tmp/etcd, --listen-client-urls=http://0.0.0.0:2379,
                  --advertise-client-urls=http://127.0.0.1:2379, --listen-peer-urls=http://127.0.0.1:2380]
      - name: dns
        image: COREDNS
        imagePullPolicy: Never
        args: [-dns.port, '5353']
";

fn service(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports:
  - {{name: http, port: 80, targetPort: 2379, protocol: TCP}}
  - {{name: dns, port: 53, targetPort: 5353, protocol: UDP}}
{extra_spec}"
    )
}

fn cp() -> String {
    format!("{NAME}-control-plane")
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    stdout_ok(
        &node_kubectl(&cp(), args, stdin),
        format_args!("kubectl {args:?}"),
    )
}

fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) => assert!(
                start.elapsed() < timeout,
                "{what}: not done after {timeout:?}; last: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `GET /version` from etcd at `ip:port`, from this host.
fn http_version(ip: Ipv4Addr, port: u16) -> Result<String, String> {
    kindred_e2e::etcd_version(SocketAddr::from((ip, port)))
}

/// A DNS query for `kindred.test.` to `ip:53` over UDP, from this host: any answer carrying
/// the query's id counts (CoreDNS without a Corefile answers every name).
fn dns_answers(ip: Ipv4Addr) -> Result<(), String> {
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut query = vec![0x4b, 0x52, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend(b"\x07kindred\x04test\x00\x00\x01\x00\x01");
    socket
        .send_to(&query, (ip, 53))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 512];
    let (n, _) = socket.recv_from(&mut buf).map_err(|e| e.to_string())?;
    if n >= 12 && buf[..2] == [0x4b, 0x52] && buf[2] & 0x80 != 0 {
        Ok(())
    } else {
        Err(format!("not an answer to our query: {:?}", &buf[..n]))
    }
}

fn service_ip(name: &str) -> Result<Ipv4Addr, String> {
    let ip = kubectl(
        &[
            "get",
            "svc",
            name,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ],
        None,
    );
    ip.trim()
        .parse()
        .map_err(|_| format!("no address yet: {ip:?}"))
}

fn preloaded(prefix: &str) -> String {
    let out = run(
        "docker",
        &["exec", &cp(), "crictl", "images", "-o", "json"],
        None,
    );
    let images: serde_json::Value = serde_json::from_slice(&out.stdout).expect("crictl json");
    images["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["repoTags"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(String::from))
        .find(|t| t.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} image preloaded in the node image"))
}

#[test]
fn load_balancer_services_answer_change_ports_and_release_their_address() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let kubeconfig = kubeconfig.to_str().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, kindred_e2e::cluster::ONE_PLUS_ONE).unwrap();
    let delete = || {
        kindred_e2e::cluster::delete(env!("CARGO_BIN_EXE_kindred"), NAME, kubeconfig);
    };
    let image = kindred_e2e::node_image();
    let create = [
        "create",
        "cluster",
        "--name",
        NAME,
        "--config",
        config.to_str().unwrap(),
        "--image",
        &image,
        "--kubeconfig",
        kubeconfig,
        "--wait",
        "3m",
    ];
    let on_failure = || {
        let logs = node_kubectl(
            &cp(),
            &[
                "-n",
                "kube-system",
                "logs",
                "-l",
                "app=kindred-service-lb",
                "--tail=40",
                "--prefix",
            ],
            None,
        );
        eprintln!("--- LoadBalancer agent logs ---\n{}", text(&logs));
    };
    kindred_e2e::cluster::cleaned_up(&[NAME], delete, on_failure, || {
        let out = run(env!("CARGO_BIN_EXE_kindred"), &create, None);
        assert!(out.status.success(), "create:\n{}", text(&out));
        exercise();
    });
}

fn exercise() {
    let pool_label = run(
        "docker",
        &[
            "inspect",
            "-f",
            "{{index .Config.Labels \"io.kindred.lb-pool\"}}",
            &cp(),
        ],
        None,
    );
    let pool: kindred::config::Cidr = String::from_utf8_lossy(&pool_label.stdout)
        .trim()
        .parse()
        .expect("the node carries its LoadBalancer block");
    let app = APP
        .replace("ETCD", &preloaded("registry.k8s.io/etcd:"))
        .replace("COREDNS", &preloaded("registry.k8s.io/coredns/coredns:"));
    kubectl(&["apply", "-f", "-"], Some(&app));
    kubectl(&["apply", "-f", "-"], Some(&service("web", "")));
    let started = Instant::now();
    let ip = wait_for("an address for web", Duration::from_secs(60), || {
        service_ip("web")
    });
    println!("web got {ip} in {:?}", started.elapsed());
    assert!(pool.contains(ip.into()), "{ip} is not in the pool {pool}");
    let status = kubectl(
        &[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ipMode} {.metadata.finalizers}",
        ],
        None,
    );
    assert_eq!(
        status,
        "VIP [\"service.kubernetes.io/load-balancer-cleanup\"]"
    );

    // From this host, TCP and UDP; then from a pod.
    let started = Instant::now();
    wait_for("HTTP from the host", Duration::from_secs(120), || {
        http_version(ip, 80)
    });
    println!(
        "web answered over TCP {:?} after its address",
        started.elapsed()
    );
    wait_for(
        "DNS over UDP from the host",
        Duration::from_secs(30),
        || dns_answers(ip),
    );
    let etcd = preloaded("registry.k8s.io/etcd:");
    let endpoint = format!("--endpoints=http://{ip}:80");
    kubectl(
        &[
            "run",
            "client",
            &format!("--image={etcd}"),
            "--image-pull-policy=Never",
            "--restart=Never",
            "--command",
            "--",
            "etcdctl",
            &endpoint,
            "endpoint",
            "health",
        ],
        None,
    );
    wait_for(
        "etcdctl in a pod reaching the address",
        Duration::from_secs(60),
        || {
            let out = node_kubectl(&cp(), &["logs", "client"], None);
            let logs = text(&out);
            logs.contains("is healthy").then_some(()).ok_or(logs)
        },
    );

    // A live port change: the new port answers, the old one no longer does.
    kubectl(
        &[
            "patch",
            "svc",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/ports/0/port","value":8080}]"#,
        ],
        None,
    );
    wait_for("HTTP on the new port", Duration::from_secs(30), || {
        http_version(ip, 8080)
    });
    wait_for(
        "the old port closed",
        Duration::from_secs(30),
        || match http_version(ip, 80) {
            Ok(_) => Err("port 80 still answers".into()),
            Err(_) => Ok(()),
        },
    );

    // Stopped and started: the Service keeps its address, and answers on it again.
    let stop: &[&str] = &["stop", "cluster", "--name", NAME];
    let start: &[&str] = &["start", "cluster", "--name", NAME, "--wait", "3m"];
    for args in [stop, start] {
        let out = run(env!("CARGO_BIN_EXE_kindred"), args, None);
        assert!(out.status.success(), "{args:?}:\n{}", text(&out));
    }
    let started = Instant::now();
    wait_for("HTTP after stop/start", Duration::from_secs(180), || {
        http_version(ip, 8080)
    });
    println!("web answered {:?} after start", started.elapsed());
    assert_eq!(
        service_ip("web"),
        Ok(ip),
        "the address changed across stop/start"
    );

    // Bad input: pending, with an Event naming the reason.
    kubectl(
        &["apply", "-f", "-"],
        Some(&service("outside", "  loadBalancerIP: 10.1.2.3\n")),
    );
    let event = wait_for("the Event on outside", Duration::from_secs(30), || {
        let events = kubectl(
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=outside",
                "-o",
                "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
            ],
            None,
        );
        events
            .lines()
            .find(|l| l.starts_with("LoadBalancerIPOutsidePool"))
            .map(String::from)
            .ok_or(events)
    });
    assert!(
        event.contains("10.1.2.3") && event.contains(&pool.to_string()),
        "{event}"
    );
    assert!(service_ip("outside").is_err(), "outside must stay pending");

    // Deleted: the address stops answering and is free again.
    kubectl(&["delete", "svc", "web", "outside", "--timeout=60s"], None);
    wait_for(
        "the address silent",
        Duration::from_secs(30),
        || match http_version(ip, 8080) {
            Ok(_) => Err("still answers".into()),
            Err(_) => Ok(()),
        },
    );
    let table = kubectl(
        &[
            "-n",
            "kube-system",
            "get",
            "configmap",
            "kindred-lb-addresses",
            "-o",
            "jsonpath={.data}",
        ],
        None,
    );
    assert!(
        !table.contains(&ip.to_string()),
        "{ip} still allocated: {table}"
    );
    let leases = kubectl(
        &[
            "-n",
            "kube-system",
            "get",
            "lease",
            "-l",
            "kindred.dev/service-lb",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(leases.trim(), "", "Leases left behind");
    kubectl(&["apply", "-f", "-"], Some(&service("again", "")));
    let again = wait_for("an address for again", Duration::from_secs(60), || {
        service_ip("again")
    });
    assert_eq!(again, ip, "the freed address is handed out again");
    wait_for(
        "HTTP from the host to again",
        Duration::from_secs(60),
        || http_version(ip, 80),
    );
}
