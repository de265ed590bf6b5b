use std::collections::HashMap;

use super::*;
use crate::config::parse;

fn plan(yaml: &str) -> ClusterPlan {
    let config = parse(
        &format!("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: opts\n{yaml}"),
        "test.yaml",
    )
    .unwrap()
    .with_defaults();
    config.validate().unwrap_or_else(|e| panic!("{e}"));
    ClusterPlan::new(config)
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn options(yaml: &str) -> Result<NodeOptions, String> {
    NodeOptions::from_plan(&plan(yaml), &no_env, &MountTable::default()).map_err(|e| e.to_string())
}

fn spec_of(options: &NodeOptions, node: &str, subnets: &[String]) -> ContainerSpec {
    let mut spec = ContainerSpec {
        name: node.to_string(),
        binds: vec!["/lib/modules:/lib/modules:ro".into()],
        ..Default::default()
    };
    options.apply(&mut spec, subnets);
    spec
}

#[test]
fn mounts_become_docker_binds_with_their_options() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let opts = options(&format!(
        "nodes:
- role: control-plane
  extraMounts:
  - {{hostPath: {d}, containerPath: /plain}}
  - {{hostPath: {d}, containerPath: /ro, readOnly: true}}
  - {{hostPath: {d}, containerPath: /all, readOnly: true, selinuxRelabel: true, propagation: HostToContainer}}
  - {{hostPath: {d}, containerPath: /both, propagation: Bidirectional}}
- role: worker
"
    ))
    .unwrap();
    let spec = spec_of(&opts, "opts-control-plane", &[]);
    assert_eq!(
        spec.binds,
        [
            "/lib/modules:/lib/modules:ro".to_string(),
            format!("{d}:/plain"),
            format!("{d}:/ro:ro"),
            format!("{d}:/all:ro,rslave,Z"),
            format!("{d}:/both:rshared"),
        ]
    );
    let worker = spec_of(&opts, "opts-worker", &[]);
    assert_eq!(worker.binds, ["/lib/modules:/lib/modules:ro"]);
    assert!(worker.ports.is_empty() && worker.env.is_empty());
    assert_eq!(worker.dns_search, None);
}

#[test]
fn a_missing_host_path_names_the_node_and_path() {
    let err = options(
        "nodes:
- role: control-plane
- role: worker
  extraMounts:
  - {hostPath: /nonexistent/kindred-data, containerPath: /data}
",
    )
    .unwrap_err();
    assert_eq!(
        err,
        "the cluster config does not fit this host (nothing was created):\n  node \
         opts-worker (nodes[1].extraMounts[0]): hostPath /nonexistent/kindred-data does not \
         exist on this host; create it first, or fix the path (relative paths count from the \
         config file's directory, or from the current directory for a config read from stdin)"
    );
}

#[test]
fn propagation_needs_a_shared_or_slave_host_mount() {
    let table = MountTable::parse(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
         40 27 0:50 / /srv rw shared:7 - tmpfs tmpfs rw\n\
         41 27 0:51 / /mnt\\040x rw master:3 - tmpfs tmpfs rw\n",
    );
    assert_eq!(
        table.holder(Path::new("/srv/a/b")).unwrap().mount_point,
        "/srv"
    );
    assert_eq!(
        table.holder(Path::new("/mnt x/y")).unwrap().mount_point,
        "/mnt x"
    );
    assert_eq!(table.holder(Path::new("/home")).unwrap().mount_point, "/");
    let mount = |host: &str, propagation| Mount {
        host_path: host.into(),
        container_path: "/data".into(),
        propagation,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::canonicalize(dir.path()).unwrap();
    let table = MountTable(vec![
        HostMount {
            mount_point: "/".into(),
            shared: false,
            slave: false,
        },
        HostMount {
            mount_point: real.display().to_string(),
            shared: false,
            slave: true,
        },
    ]);
    let host = real.display().to_string();
    assert!(check_mount(&mount(&host, MountPropagation::None), &table).is_ok());
    assert!(check_mount(&mount(&host, MountPropagation::HostToContainer), &table).is_ok());
    let err = check_mount(&mount(&host, MountPropagation::Bidirectional), &table).unwrap_err();
    assert_eq!(
        err,
        format!(
            "propagation Bidirectional needs the host mount holding {host} ({host}) to be \
             shared, and it is private; make it shared first, e.g. `mount --make-rshared \
             {host}`, or use propagation None"
        )
    );
    let private = MountTable(vec![HostMount {
        mount_point: "/".into(),
        shared: false,
        slave: false,
    }]);
    let err = check_mount(&mount(&host, MountPropagation::HostToContainer), &private).unwrap_err();
    assert!(err.contains("to be shared or a slave"), "{err}");
}

#[test]
fn port_mappings_are_published_with_fixed_host_ports() {
    let opts = options(
        "nodes:
- role: control-plane
  extraPortMappings:
  - {containerPort: 80}
  - {containerPort: 53, protocol: UDP, listenAddress: 127.0.0.1}
  - {containerPort: 9, protocol: SCTP}
  - {containerPort: 81}
",
    )
    .unwrap();
    let ports = &opts.node("opts-control-plane").unwrap().ports;
    assert_eq!(ports.len(), 4);
    let picked: Vec<u16> = ports
        .iter()
        .map(|p| p.host_port.expect("chosen now"))
        .collect();
    assert!(picked.iter().all(|p| *p != 0), "{picked:?}");
    assert_ne!(picked[0], picked[3], "two random ports differ");
    let shapes: Vec<(u16, &str, &str)> = ports
        .iter()
        .map(|p| (p.container_port, p.protocol.as_str(), p.host_ip.as_str()))
        .collect();
    assert_eq!(
        shapes,
        [
            (80, "tcp", "0.0.0.0"),
            (53, "udp", "127.0.0.1"),
            (9, "sctp", "0.0.0.0"),
            (81, "tcp", "0.0.0.0")
        ]
    );
    // The chosen ports are released again for Docker to bind.
    TcpListener::bind(("0.0.0.0", picked[0])).expect("port released");
    UdpSocket::bind(("127.0.0.1", picked[1])).expect("port released");
}

#[test]
fn a_host_port_in_use_is_refused_with_the_node_and_port() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let err = options(&format!(
        "nodes:
- role: control-plane
  extraPortMappings:
  - {{containerPort: 80, hostPort: {port}, listenAddress: 127.0.0.1}}
  - {{containerPort: 80, hostPort: {port}, protocol: UDP, listenAddress: 127.0.0.1}}
  - {{containerPort: 53, hostPort: {udp_port}, protocol: UDP, listenAddress: 127.0.0.1}}
"
    ))
    .unwrap_err();
    assert_eq!(
        err,
        format!(
            "the cluster config does not fit this host (nothing was created):\n  node \
             opts-control-plane (nodes[0].extraPortMappings[0]): host port 127.0.0.1:{port}/TCP \
             is already in use on this host; stop what uses it, pick another hostPort, or use \
             hostPort 0 for a free one\n  node opts-control-plane \
             (nodes[0].extraPortMappings[2]): host port 127.0.0.1:{udp_port}/UDP is already in \
             use on this host; stop what uses it, pick another hostPort, or use hostPort 0 for \
             a free one"
        ),
        "the same port over UDP is another port"
    );
    // The wildcard address clashes with a specific one.
    let err = options(&format!(
        "nodes:\n- extraPortMappings:\n  - {{containerPort: 80, hostPort: {port}}}\n"
    ))
    .unwrap_err();
    assert!(
        err.contains(&format!("host port 0.0.0.0:{port}/TCP is already in use")),
        "{err}"
    );
}

#[test]
fn dns_search_becomes_dockers_option() {
    let spec = |yaml: &str| spec_of(&options(yaml).unwrap(), "opts-control-plane", &[]);
    assert_eq!(spec("").dns_search, None, "unset keeps the host's");
    assert_eq!(
        spec("networking:\n  dnsSearch: [a.test, b.test]\n").dns_search,
        Some(vec!["a.test".to_string(), "b.test".to_string()])
    );
    assert_eq!(
        spec("networking:\n  dnsSearch: []\n").dns_search,
        Some(vec![".".to_string()]),
        "Docker's way of saying none"
    );
}

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

#[test]
fn no_proxy_variables_means_no_env() {
    let plan = plan("");
    let opts = NodeOptions::from_plan(
        &plan,
        &env_of(&[("HTTP_PROXY", "")]),
        &MountTable::default(),
    )
    .unwrap();
    assert!(opts.proxy_env(&["172.18.0.0/16".into()]).is_empty());
}

#[test]
fn proxy_variables_are_forwarded_in_both_spellings_with_no_proxy_extended() {
    let plan = plan("nodes:\n- role: control-plane\n- role: worker\n");
    let env = env_of(&[
        ("HTTP_PROXY", "http://127.0.0.1:3128"),
        ("https_proxy", "http://user:p%40ss@proxy.test:3129"),
        ("no_proxy", "example.test, localhost"),
    ]);
    let opts = NodeOptions::from_plan(&plan, &env, &MountTable::default()).unwrap();
    let env: Vec<(String, String)> = opts.proxy_env(&["172.18.0.0/16".into(), "fc00::/64".into()]);
    let no_proxy = "example.test,localhost,10.244.0.0/16,10.96.0.0/16,opts-control-plane,\
                    opts-worker,127.0.0.1,::1,.svc,.svc.cluster,.svc.cluster.local,\
                    .cluster.local,172.18.0.0/16,fc00::/64";
    assert_eq!(
        env,
        [
            ("HTTP_PROXY", "http://127.0.0.1:3128"),
            ("http_proxy", "http://127.0.0.1:3128"),
            ("HTTPS_PROXY", "http://user:p%40ss@proxy.test:3129"),
            ("https_proxy", "http://user:p%40ss@proxy.test:3129"),
            ("NO_PROXY", no_proxy),
            ("no_proxy", no_proxy),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    let spec = spec_of(&opts, "opts-worker", &["172.18.0.0/16".into()]);
    assert!(
        spec.env
            .contains(&"HTTP_PROXY=http://127.0.0.1:3128".to_string()),
        "{:?}",
        spec.env
    );
    assert_eq!(spec.env.len(), 6);
}

#[test]
fn no_proxy_alone_is_forwarded_too() {
    let plan = plan("");
    let env = env_of(&[("NO_PROXY", "internal.test")]);
    let opts = NodeOptions::from_plan(&plan, &env, &MountTable::default()).unwrap();
    let env = opts.proxy_env(&[]);
    assert_eq!(env.len(), 2);
    assert!(
        env[0]
            .1
            .starts_with("internal.test,10.244.0.0/16,10.96.0.0/16,opts-control-plane,localhost"),
        "{env:?}"
    );
}

#[tokio::test]
async fn ipv6_is_refused_while_other_clusters_use_a_network_without_it() {
    let docker = crate::provider::fake::FakeProvider::default();
    // IPv4 needs nothing of the host or the network.
    assert!(check_ip_family(&docker, IpFamily::Ipv4).await.is_ok());
    // The fake's network has no IPv6 subnet; no cluster uses it yet, so create may replace it.
    let lack = host_ipv6_lack();
    let alone = check_ip_family(&docker, IpFamily::Ipv6).await;
    match &lack {
        Some(_) => assert!(matches!(alone, Err(ClusterError::HostWithoutIpv6 { .. }))),
        None => assert!(alone.is_ok(), "{alone:?}"),
    }
    docker.add_container("old-control-plane", &[(CLUSTER_LABEL, "old")]);
    let err = check_ip_family(&docker, IpFamily::Dual).await.unwrap_err();
    if lack.is_none() {
        let msg = err.to_string();
        assert!(
            matches!(err, ClusterError::NetworkWithoutIpv6 { .. }),
            "{msg}"
        );
        assert!(msg.contains("still used by clusters old;"), "{msg}");
        assert!(msg.contains("kindred delete cluster --name NAME"), "{msg}");
        assert!(!msg.contains("registry"), "{msg}");
    }
    // A kept registry holds the network as well.
    docker.add_container(crate::registry::CONTAINER, &[]);
    let err = check_ip_family(&docker, IpFamily::Ipv6).await.unwrap_err();
    if lack.is_none() {
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "used by clusters old and the local registry {};",
                crate::registry::CONTAINER
            )),
            "{msg}"
        );
        assert!(msg.contains("kindred delete registry"), "{msg}");
    }
    // The registry alone: no word of clusters.
    crate::provider::Provider::remove_container(&docker, "old-control-plane")
        .await
        .unwrap();
    let err = check_ip_family(&docker, IpFamily::Ipv6).await.unwrap_err();
    if lack.is_none() {
        let msg = err.to_string();
        assert!(!msg.contains("cluster --name"), "{msg}");
        assert!(
            msg.contains("delete the registry (`kindred delete registry`)"),
            "{msg}"
        );
    }
}
