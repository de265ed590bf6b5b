//! NetworkPolicy enforcement, run by the pod network agent on every node: it mirrors Pods,
//! Namespaces and NetworkPolicies from the API server (watches, no polling), turns them into
//! one nftables table for the pods of its own node (see `rules`) and replaces that table in
//! one transaction whenever something changes, within a few hundred milliseconds.
//!
//! Why nftables rules rather than a packet queue to user space (NFQUEUE): verdicts stay in the
//! kernel, so the agent being slow or restarting never stalls traffic, and a policy costs a
//! few rules and sets whatever the traffic. A cluster without NetworkPolicies gets no table at
//! all.

pub mod bench;
pub mod rules;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource};

use super::{run_with_input, AgentError};
use rules::{Inputs, PodView};

/// Shorter than the other agents' wait: a policy should hold within a second of its change,
/// and a pass that changes nothing costs one `nft list tables`.
const SETTLE: Duration = Duration::from_millis(50);

pub struct PolicyAgent {
    node_name: String,
    client: Client,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    policies: Store<NetworkPolicy>,
    recorder: Recorder,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The node's PodCIDRs, read once they are set.
    pod_cidrs: Vec<String>,
    /// The script last applied, so an unchanged one is not applied again (except on resync).
    applied: String,
    /// Problems already reported, so each becomes one Event.
    told: HashSet<(String, String, String)>,
}

impl PolicyAgent {
    /// Watches Pods, Namespaces and NetworkPolicies and keeps this node's table, until SIGTERM.
    pub async fn run(client: Client, node_name: String) -> Result<(), AgentError> {
        let (pods, pod_writer) = reflector::store();
        let (namespaces, ns_writer) = reflector::store();
        let (policies, policy_writer) = reflector::store();
        let config = watcher::Config::default;
        let events = futures_util::stream::select_all([
            reflector::reflector(pod_writer, watcher(Api::all(client.clone()), config()))
                .default_backoff()
                .map(|_| ())
                .boxed(),
            reflector::reflector(ns_writer, watcher(Api::all(client.clone()), config()))
                .default_backoff()
                .map(|_| ())
                .boxed(),
            reflector::reflector(policy_writer, watcher(Api::all(client.clone()), config()))
                .default_backoff()
                .map(|_| ())
                .boxed(),
        ]);
        let reporter = Reporter {
            controller: "kindred-network-policy".into(),
            instance: Some(node_name.clone()),
        };
        let agent = Arc::new(PolicyAgent {
            node_name,
            recorder: Recorder::new(client.clone(), reporter),
            client,
            pods,
            namespaces,
            policies,
            state: Mutex::new(State::default()),
        });
        tracing::info!(node = %agent.node_name, "network policy agent started");
        super::reconcile_loop(events, SETTLE, || {
            let agent = agent.clone();
            async move { agent.reconcile().await }
        })
        .await
    }

    async fn reconcile(&self) -> Result<(), AgentError> {
        // Until every listing has arrived, a partial view would open or close the wrong pods:
        // keep whatever the table holds (the listing triggers another pass).
        let ready = [
            self.pods.wait_until_ready().now_or_never(),
            self.namespaces.wait_until_ready().now_or_never(),
            self.policies.wait_until_ready().now_or_never(),
        ];
        if !ready.iter().all(|r| matches!(r, Some(Ok(())))) {
            return Ok(());
        }
        let pod_cidrs = self.pod_cidrs().await?;
        let pods: Vec<PodView> = self
            .pods
            .state()
            .iter()
            .filter_map(|p| PodView::from_pod(p))
            .collect();
        let namespaces: BTreeMap<_, _> = self
            .namespaces
            .state()
            .iter()
            .map(|n| rules::namespace_labels(n))
            .collect();
        let policies: Vec<NetworkPolicy> = self
            .policies
            .state()
            .iter()
            .map(|p| (**p).clone())
            .collect();
        let ruleset = rules::ruleset(&Inputs {
            node: &self.node_name,
            pod_cidrs: &pod_cidrs,
            pods: &pods,
            namespaces: &namespaces,
            policies: &policies,
        });
        self.report(&policies, &ruleset.problems).await;
        let changed = self.state.lock().expect("not poisoned").applied != ruleset.script;
        // Pod status updates trigger most passes and change nothing; programming a large table
        // costs up to a second, so it is only done on a change, or to repair a table that went
        // away (deleted by hand, or the node's network namespace recreated).
        if !changed && (policies.is_empty() || table_exists().await?) {
            return Ok(());
        }
        run_with_input("nft", &["-f", "-"], &ruleset.script).await?;
        if changed {
            tracing::info!(
                policies = policies.len(),
                ingress_isolated = ruleset.isolated.0,
                egress_isolated = ruleset.isolated.1,
                "network policy rules applied"
            );
            self.state.lock().expect("not poisoned").applied = ruleset.script;
        }
        Ok(())
    }

    async fn pod_cidrs(&self) -> Result<Vec<String>, AgentError> {
        let known = self.state.lock().expect("not poisoned").pod_cidrs.clone();
        if !known.is_empty() {
            return Ok(known);
        }
        let node = Api::<Node>::all(self.client.clone())
            .get(&self.node_name)
            .await?;
        let spec = node.spec.unwrap_or_default();
        let mut cidrs = spec.pod_cidrs.unwrap_or_default();
        if cidrs.is_empty() {
            cidrs.extend(spec.pod_cidr);
        }
        self.state.lock().expect("not poisoned").pod_cidrs = cidrs.clone();
        Ok(cidrs)
    }

    /// A policy part that cannot be enforced is never silently allowed: a warning Event on the
    /// policy (once per problem) and a log line.
    async fn report(&self, policies: &[NetworkPolicy], problems: &[rules::Problem]) {
        for problem in problems {
            let key = (
                problem.namespace.clone(),
                problem.policy.clone(),
                problem.message.clone(),
            );
            if !self.state.lock().expect("not poisoned").told.insert(key) {
                continue;
            }
            tracing::warn!(
                "NetworkPolicy {}/{}: {}",
                problem.namespace,
                problem.policy,
                problem.message
            );
            let Some(policy) = policies.iter().find(|p| {
                p.metadata.namespace.as_deref() == Some(&problem.namespace)
                    && p.metadata.name.as_deref() == Some(&problem.policy)
            }) else {
                continue;
            };
            let event = Event {
                type_: EventType::Warning,
                reason: "PolicyNotEnforced".into(),
                note: Some(format!("{} (node {})", problem.message, self.node_name)),
                action: "Program".into(),
                secondary: None,
            };
            if let Err(e) = self.recorder.publish(&event, &policy.object_ref(&())).await {
                tracing::warn!("event on {}/{}: {e}", problem.namespace, problem.policy);
            }
        }
    }
}

/// Whether the agent's table is in the node's ruleset (listing table names is cheap, unlike
/// listing the table).
async fn table_exists() -> Result<bool, AgentError> {
    let tables = super::run("nft", &["list", "tables"]).await?;
    Ok(tables
        .lines()
        .any(|l| l.trim() == format!("table inet {}", rules::TABLE)))
}

#[cfg(test)]
mod rules_tests;
