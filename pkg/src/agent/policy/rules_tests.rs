//! What `rules::ruleset` programs for typical policies (kept apart from rules.rs: long
//! expected scripts).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::rules::{network, ruleset, Inputs, PodView, Ruleset};

fn pod(ns: &str, name: &str, node: &str, ip: &str, labels: &[(&str, &str)]) -> PodView {
    PodView {
        namespace: ns.into(),
        name: name.into(),
        node: node.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ips: vec![ip.parse().unwrap()],
        host_network: false,
        ports: vec![("serve-80".into(), "TCP".into(), 80)],
    }
}

fn policy(yaml: &str) -> NetworkPolicy {
    serde_yaml::from_str(yaml).unwrap()
}

/// Pods a and b in namespace x (a on node n1, b on n2), c in namespace y on n1.
fn compile(policies: &[NetworkPolicy]) -> Ruleset {
    let pods = vec![
        pod("x", "a", "n1", "10.244.1.2", &[("pod", "a")]),
        pod("x", "b", "n2", "10.244.2.2", &[("pod", "b")]),
        pod("y", "c", "n1", "10.244.1.3", &[("pod", "c")]),
    ];
    let namespaces = BTreeMap::from([
        (
            "x".to_string(),
            BTreeMap::from([("ns".to_string(), "x".to_string())]),
        ),
        (
            "y".to_string(),
            BTreeMap::from([("ns".to_string(), "y".to_string())]),
        ),
    ]);
    ruleset(&Inputs {
        node: "n1",
        pod_cidrs: &["10.244.1.0/24".to_string()],
        pods: &pods,
        namespaces: &namespaces,
        policies,
    })
}

/// The lines of one chain's body.
fn chain<'a>(script: &'a str, name: &str) -> Vec<&'a str> {
    let start = script
        .find(&format!("chain {name} {{"))
        .unwrap_or_else(|| panic!("no chain {name} in\n{script}"));
    script[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.trim() != "}")
        .map(str::trim)
        .collect()
}

#[test]
fn no_policy_removes_the_table() {
    let r = compile(&[]);
    assert_eq!(
        r.script,
        "table inet kindred_policy\ndelete table inet kindred_policy\n"
    );
}

#[test]
fn default_deny_ingress_isolates_the_selected_local_pods_only() {
    let r = compile(&[policy(
        "metadata: {name: deny, namespace: x}\nspec: {podSelector: {}}\n",
    )]);
    assert!(r.problems.is_empty());
    assert_eq!(r.isolated, (1, 0));
    let ingress = chain(&r.script, "ingress_forward");
    assert_eq!(
        ingress,
        vec![
            "type filter hook forward priority filter - 4; policy accept;",
            "ct state established,related accept",
            "ip daddr vmap { 10.244.1.2 : jump pod_0_ingress }",
            // Fail closed for local addresses no known pod holds yet.
            "ip daddr 10.244.1.0/24 ip daddr != { 10.244.1.2, 10.244.1.3 } drop",
        ]
    );
    assert_eq!(
        chain(&r.script, "pod_0_ingress"),
        vec![
            "jump policy_0_ingress",
            "meta l4proto tcp reject with tcp reset",
            "reject with icmpx admin-prohibited",
        ]
    );
    assert!(chain(&r.script, "policy_0_ingress").is_empty());
    // Egress is not isolated: no dispatch, only the unknown-address guard.
    assert_eq!(
        chain(&r.script, "egress_forward")[2],
        "ip saddr 10.244.1.0/24 ip saddr != { 10.244.1.2, 10.244.1.3 } drop"
    );
}

#[test]
fn peers_by_pod_and_namespace_selector_with_ports() {
    let r = compile(&[policy(
        r#"
metadata: {name: allow, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
    - from:
        - podSelector: {matchLabels: {pod: b}}
        - namespaceSelector: {matchLabels: {ns: y}}
        - namespaceSelector: {}
          podSelector: {matchExpressions: [{key: pod, operator: In, values: [c]}]}
      ports:
        - port: 80
        - protocol: UDP
          port: 1000
          endPort: 2000
"#,
    )]);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(
        chain(&r.script, "policy_0_ingress"),
        vec![
            "ip saddr { 10.244.2.2 } meta l4proto tcp th dport 80 accept",
            "ip saddr { 10.244.2.2 } meta l4proto udp th dport 1000-2000 accept",
            "ip saddr { 10.244.1.3 } meta l4proto tcp th dport 80 accept",
            "ip saddr { 10.244.1.3 } meta l4proto udp th dport 1000-2000 accept",
            "ip saddr { 10.244.1.3 } meta l4proto tcp th dport 80 accept",
            "ip saddr { 10.244.1.3 } meta l4proto udp th dport 1000-2000 accept",
        ]
    );
}

#[test]
fn egress_to_ip_blocks_and_named_ports() {
    let r = compile(&[policy(
        r#"
metadata: {name: out, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to:
        - ipBlock: {cidr: 10.0.0.1/8, except: [10.244.0.0/16]}
    - ports:
        - port: serve-80
    - to:
        - ipBlock: {cidr: "fd00::/8"}
"#,
    )]);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.isolated, (0, 1));
    assert_eq!(
        chain(&r.script, "policy_0_egress"),
        vec![
            // Host bits cleared; nft refuses them.
            "ip daddr 10.0.0.0/8 ip daddr != { 10.244.0.0/16 } accept",
            // A named port: the number each destination pod gives that name.
            "ip daddr . meta l4proto . th dport { 10.244.1.2 . tcp . 80, 10.244.1.3 . tcp . 80, \
             10.244.2.2 . tcp . 80 } accept",
            "ip6 daddr fd00::/8 accept",
        ]
    );
    assert_eq!(
        chain(&r.script, "egress_forward")[2],
        "ip saddr vmap { 10.244.1.2 : jump pod_0_egress }"
    );
    assert_eq!(
        chain(&r.script, "egress_input")[2],
        "ip saddr vmap { 10.244.1.2 : jump pod_0_egress }"
    );
}

#[test]
fn allow_all_and_empty_selections() {
    let r = compile(&[policy(
        r#"
metadata: {name: all, namespace: y}
spec:
  podSelector: {}
  ingress: [{}]
  egress:
    - to: [{podSelector: {matchLabels: {pod: nobody}}}]
"#,
    )]);
    // An empty rule allows everything; a peer selecting no pod allows nothing.
    assert_eq!(chain(&r.script, "policy_0_ingress"), vec!["accept"]);
    assert!(chain(&r.script, "policy_0_egress").is_empty());
}

#[test]
fn policies_for_other_namespaces_or_nodes_add_no_dispatch() {
    let r = compile(&[policy(
        "metadata: {name: deny, namespace: x}\nspec: {podSelector: {matchLabels: {pod: b}}}\n",
    )]);
    assert_eq!(r.isolated, (0, 0));
    assert!(!r.script.contains("vmap"), "{}", r.script);
}

#[test]
fn what_cannot_be_expressed_is_a_problem_not_an_allow() {
    let r = compile(&[policy(
        r#"
metadata: {name: odd, namespace: x}
spec:
  podSelector: {}
  ingress:
    - ports: [{protocol: ICMP, port: 1}]
"#,
    )]);
    assert_eq!(r.problems.len(), 1);
    assert_eq!(
        r.problems[0].message,
        "spec.ingress[0].ports[0]: protocol \"ICMP\" is not TCP, UDP or SCTP"
    );
    // The pod stays isolated; the rule it could not read allows nothing.
    assert_eq!(r.isolated, (1, 0));
    assert!(chain(&r.script, "policy_0_ingress").is_empty());
}

#[test]
fn cidrs_lose_their_host_bits() {
    assert_eq!(network("10.1.2.3/16").as_deref(), Some("10.1.0.0/16"));
    assert_eq!(network("fd00::1/64").as_deref(), Some("fd00::/64"));
    assert_eq!(network("0.0.0.0/0").as_deref(), Some("0.0.0.0/0"));
    assert_eq!(network("10.0.0.0/33"), None);
    assert_eq!(network("nope"), None);
}
