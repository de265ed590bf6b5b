//! `kindred agent policy-bench`: how long one node's rules take to compute and to program for
//! a cluster of a given size (hack/bench-netpol.sh runs it in a throwaway node container, so
//! the kernel's nftables does the real work and no cluster is touched).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::rules::{ruleset, Inputs, PodView};
use crate::agent::{run_with_input, AgentError};

pub struct BenchReport {
    pub compile: Duration,
    pub apply: Duration,
    pub script_bytes: usize,
    pub rules: usize,
}

/// A synthetic cluster, as the agent's watches would mirror it.
pub struct Synthetic {
    pub pods: Vec<PodView>,
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub policies: Vec<NetworkPolicy>,
}

/// `pods` pods on node "bench" in `namespaces` namespaces, and `policies` policies spread over
/// them, each isolating one app both ways and allowing: its clients by label, a monitoring
/// namespace by namespace label, a named port, a port range, and an ipBlock with an exception.
pub fn synthetic(policies: usize, pods: usize, namespaces: usize) -> Synthetic {
    let namespaces = namespaces.max(1);
    let ns_name = |i: usize| format!("ns-{}", i % namespaces);
    let pod_list = (0..pods)
        .map(|i| PodView {
            namespace: ns_name(i),
            name: format!("pod-{i}"),
            node: "bench".into(),
            labels: BTreeMap::from([
                ("app".to_string(), format!("app-{}", i % 20)),
                ("role".to_string(), ["server", "client"][i % 2].to_string()),
            ]),
            ips: vec![format!("10.244.{}.{}", i / 250, 2 + i % 250)
                .parse()
                .unwrap()],
            host_network: false,
            ports: vec![("http".into(), "TCP".into(), 8080)],
        })
        .collect();
    let ns_map = (0..namespaces)
        .map(|i| {
            let labels = BTreeMap::from([(
                "team".to_string(),
                if i == 0 { "monitoring" } else { "apps" }.to_string(),
            )]);
            (ns_name(i), labels)
        })
        .collect();
    let policy_list = (0..policies)
        .map(|k| {
            let yaml = format!(
                r#"
metadata: {{name: policy-{k}, namespace: {ns}}}
spec:
  podSelector: {{matchLabels: {{app: app-{app}}}}}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - podSelector: {{matchLabels: {{role: client}}}}
        - namespaceSelector: {{matchLabels: {{team: monitoring}}}}
      ports: [{{port: http}}, {{port: 9000, endPort: 9100}}]
  egress:
    - to:
        - ipBlock: {{cidr: 10.0.0.0/8, except: [10.{k}.0.0/16]}}
      ports: [{{protocol: UDP, port: 53}}]
    - to:
        - podSelector: {{matchExpressions: [{{key: app, operator: In, values: [app-{next}]}}]}}
"#,
                ns = ns_name(k),
                app = k % 20,
                next = (k + 1) % 20,
            );
            serde_yaml::from_str(&yaml).expect("synthetic policy parses")
        })
        .collect();
    Synthetic {
        pods: pod_list,
        namespaces: ns_map,
        policies: policy_list,
    }
}

/// Computes the rules for the synthetic cluster, then programs them twice (creating the table,
/// then replacing it, as every later change does) and reports the slower program.
pub async fn run(
    policies: usize,
    pods: usize,
    namespaces: usize,
) -> Result<BenchReport, AgentError> {
    let Synthetic {
        pods,
        namespaces,
        policies,
    } = synthetic(policies, pods, namespaces);
    let cidrs = ["10.244.0.0/16".to_string()];
    let started = Instant::now();
    let rules = ruleset(&Inputs {
        node: "bench",
        pod_cidrs: &cidrs,
        pods: &pods,
        namespaces: &namespaces,
        policies: &policies,
    });
    let compile = started.elapsed();
    let mut apply = Duration::ZERO;
    for _ in 0..2 {
        let started = Instant::now();
        run_with_input("nft", &["-f", "-"], &rules.script).await?;
        apply = apply.max(started.elapsed());
    }
    run_with_input(
        "nft",
        &["-f", "-"],
        &format!("delete table inet {}\n", super::rules::TABLE),
    )
    .await?;
    Ok(BenchReport {
        compile,
        apply,
        script_bytes: rules.script.len(),
        rules: rules
            .script
            .lines()
            .filter(|l| l.trim_end().ends_with("accept") || l.contains("jump"))
            .count(),
    })
}
