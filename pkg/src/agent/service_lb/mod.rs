//! LoadBalancer Services: one agent per node (a hostNetwork DaemonSet) that, together with
//! the others, gives every `type: LoadBalancer` Service an address from the cluster's pool and
//! makes one node answer for it. kube-proxy's own rules carry the traffic: the address is
//! reported with `ipMode: VIP`, so kube-proxy on every node translates it like the Service's
//! cluster IP (pods reach it on their own node; the host reaches it across the Docker bridge
//! through the node that holds it). No container per Service, no Docker socket.
//!
//! Each pass (on Service changes, and every [`PASS`]):
//! - the Service's Lease says which node answers for it (see `lease`); only nodes that may
//!   answer compete: Ready, not excluded from load balancers, and with
//!   `externalTrafficPolicy: Local` holding the most ready endpoints of it (while any node does);
//! - the holder adds the cleanup finalizer, takes an address in the table (see `pool`), writes
//!   the Service's status and puts the address on its interface (see `address`); failures (pool
//!   exhausted, a requested address outside the pool or taken) become an Event on the Service,
//!   which stays pending;
//! - a Service deleted or no longer a LoadBalancer is released by the holder: the address
//!   freed, the status cleared, the finalizer and the Lease removed;
//! - every agent keeps exactly the addresses of the Services it holds on its interface.
//!
//! In a cluster with IPv6 the agent also gets the pool's IPv6 twin (`LB_POOL_V6`, see
//! [`pool::Pool6`]): a Service's IPv6 address is the twin of its IPv4 slot, shown per its
//! `spec.ipFamilies`, so IPv6-only and dual-stack Services share the one table.
//!
//! Services whose `loadBalancerClass` names another implementation are left alone.

mod address;
pub mod lease;
pub mod pool;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};

use self::address::Uplink;
use self::lease::Decision;
use self::pool::{AllocError, Holder, Pool, Pool6, Table};
use super::{env, AgentError};

/// The finalizer service controllers put on LoadBalancer Services they provision.
pub const FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";
/// The `loadBalancerClass` that names this implementation (Services without a class are
/// ours too, as the default implementation's).
pub const CLASS: &str = "kindred.dev/service-lb";
/// The ConfigMap in kube-system holding the address table.
pub const TABLE: &str = "kindred-lb-addresses";
/// Lease names: this prefix and the Service's uid.
pub const LEASE_PREFIX: &str = "kindred-lb-";
/// Label on the Leases, to list them in one call.
const LEASE_LABEL: &str = "kindred.dev/service-lb";
/// Where the Leases and the table live.
const NAMESPACE: &str = "kube-system";
/// Nodes with this label never answer for a Service (upstream's well-known label).
const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// How often every agent reconciles without a Service change: the Leases are renewed at this
/// pace, and a takeover happens within [`lease::DURATION`] plus this.
const PASS: Duration = Duration::from_secs(2);

pub struct ServiceLbAgent {
    node_name: String,
    pool: Pool,
    /// The pool's IPv6 twin, in a cluster with IPv6.
    pool6: Option<Pool6>,
}

struct Apis {
    services: Api<Service>,
    leases: Api<Lease>,
    tables: Api<ConfigMap>,
    slices: Api<EndpointSlice>,
    nodes: Api<Node>,
    recorder: Recorder,
}

/// What one agent remembers between passes.
#[derive(Default)]
struct Memory {
    /// The last Event sent per Service uid, so a pending Service gets one Event per reason and
    /// not one per pass.
    told: HashMap<String, String>,
}

impl ServiceLbAgent {
    pub fn from_env() -> Result<Self, AgentError> {
        let pool =
            Pool::parse(&env("LB_POOL")?).map_err(|e| AgentError::Msg(format!("LB_POOL: {e}")))?;
        let pool6 = match std::env::var("LB_POOL_V6").ok().filter(|v| !v.is_empty()) {
            Some(text) => Some(
                Pool6::parse(&text, &pool)
                    .map_err(|e| AgentError::Msg(format!("LB_POOL_V6: {e}")))?,
            ),
            None => None,
        };
        Ok(ServiceLbAgent {
            node_name: env("NODE_NAME")?,
            pool,
            pool6,
        })
    }

    pub async fn run(self) -> Result<(), AgentError> {
        use tokio::signal::unix::{signal, SignalKind};
        let client = super::client().await?;
        let apis = self.apis(client);
        let uplink = Uplink::find().await?;
        let pool6 = self.pool6.map(|p| p.to_string()).unwrap_or_default();
        tracing::info!(node = %self.node_name, pool = %self.pool, pool6, dev = %uplink.dev, "LoadBalancer agent started");
        let mut events =
            Box::pin(watcher(apis.services.clone(), watcher::Config::default()).default_backoff());
        let mut tick = tokio::time::interval(PASS);
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| AgentError::Msg(e.to_string()))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| AgentError::Msg(e.to_string()))?;
        let mut memory = Memory::default();
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                event = events.next() => {
                    if event.is_none() {
                        return Err(AgentError::Msg("the Service watch ended".into()));
                    }
                    // A burst (the initial listing, an edit) becomes one pass.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while let Some(Some(_)) = futures_util::FutureExt::now_or_never(events.next()) {}
                }
                _ = tick.tick() => {}
            }
            if let Err(e) = self.pass(&apis, &uplink, &mut memory).await {
                tracing::warn!("pass failed (retrying): {e}");
            }
        }
        self.step_down(&apis, &uplink).await;
        Ok(())
    }

    fn apis(&self, client: Client) -> Apis {
        let reporter = Reporter {
            controller: "kindred-service-lb".into(),
            instance: Some(self.node_name.clone()),
        };
        Apis {
            services: Api::all(client.clone()),
            leases: Api::namespaced(client.clone(), NAMESPACE),
            tables: Api::namespaced(client.clone(), NAMESPACE),
            slices: Api::all(client.clone()),
            nodes: Api::all(client.clone()),
            recorder: Recorder::new(client, reporter),
        }
    }

    async fn pass(
        &self,
        apis: &Apis,
        uplink: &Uplink,
        memory: &mut Memory,
    ) -> Result<(), AgentError> {
        // Read in this order so that everything the Leases and the table name was made before
        // the Services were listed: what is missing from the list is gone, not just new.
        let leases = apis
            .leases
            .list(&ListParams::default().labels(LEASE_LABEL))
            .await?;
        let mut table = TableHandle::read(&apis.tables).await?;
        let services = apis.services.list(&ListParams::default()).await?.items;
        let candidates = self.candidates(apis, &services).await?;

        let leases: BTreeMap<String, Lease> = leases
            .items
            .into_iter()
            .filter_map(|l| Some((lease::service_uid(&l, LEASE_PREFIX)?, l)))
            .collect();
        let mut keep = BTreeSet::new();
        let mut live = BTreeSet::new();
        for svc in &services {
            let uid = svc.uid().unwrap_or_default();
            let wants = wants_address(svc);
            let finalized = svc.finalizers().iter().any(|f| f == FINALIZER);
            if !wants && !finalized {
                continue;
            }
            live.insert(uid.clone());
            // Releasing needs a holder too, but any node will do.
            let may_answer = !wants
                || candidates
                    .get(&uid)
                    .is_none_or(|c| c.contains(&self.node_name));
            let held = leases.get(&uid);
            let leads = match self.lead(apis, &uid, held, may_answer).await {
                Ok(leads) => leads,
                Err(e) => {
                    tracing::debug!("lease for {}: {e}", name_of(svc));
                    false
                }
            };
            if !leads {
                continue;
            }
            let result = if wants {
                self.provide(apis, svc, &mut table, memory).await
            } else {
                self.release(apis, svc, &mut table).await
            };
            match result {
                Ok(ips) => keep.extend(ips),
                Err(e) => tracing::warn!("{}: {e}", name_of(svc)),
            }
        }
        // Leases of Services gone (deleted without our finalizer, or released): removed.
        for (uid, l) in &leases {
            if !live.contains(uid) {
                let _ = apis.leases.delete(&l.name_any(), &Default::default()).await;
            }
        }
        // Addresses of Services gone: freed (the holder normally did it on release).
        if table.forget_all_but(&live) {
            table.write(&apis.tables).await?;
        }
        memory.told.retain(|uid, _| live.contains(uid));
        self.sync_addresses(uplink, &keep).await
    }

    /// Per Service uid, the nodes that may answer for it (absent: any node of this agent's
    /// kind may). With `externalTrafficPolicy: Local` the answering node's own endpoints are
    /// the only ones that serve, so only the nodes with the most ready endpoints compete (as
    /// long as any node has one): traffic then spreads over as many pods as one node can
    /// reach. A holder tied with others keeps its Lease, so a rolling update that takes one
    /// pod per node at a time does not move the address.
    async fn candidates(
        &self,
        apis: &Apis,
        services: &[Service],
    ) -> Result<HashMap<String, BTreeSet<String>>, AgentError> {
        let nodes = apis.nodes.list(&ListParams::default()).await?.items;
        let ready = answering_nodes(&nodes);
        let local: Vec<&Service> = services
            .iter()
            .filter(|s| {
                wants_address(s)
                    && s.spec
                        .as_ref()
                        .and_then(|s| s.external_traffic_policy.as_deref())
                        == Some("Local")
            })
            .collect();
        let slices = if local.is_empty() {
            Vec::new()
        } else {
            apis.slices.list(&ListParams::default()).await?.items
        };
        let mut out = HashMap::new();
        for svc in services.iter().filter(|s| wants_address(s)) {
            let mut nodes = ready.clone();
            if local.iter().any(|l| l.uid() == svc.uid()) {
                let busiest = busiest_nodes(&nodes, &endpoints_per_node(svc, &slices));
                if !busiest.is_empty() {
                    nodes = busiest;
                }
            }
            out.insert(svc.uid().unwrap_or_default(), nodes);
        }
        Ok(out)
    }

    /// Takes, renews or follows the Service's Lease; true when this node answers for it.
    /// A node that may no longer answer lets go of a Lease it holds.
    async fn lead(
        &self,
        apis: &Apis,
        uid: &str,
        current: Option<&Lease>,
        may_answer: bool,
    ) -> Result<bool, AgentError> {
        let now = Timestamp::now();
        let spec = current.and_then(|l| l.spec.as_ref());
        let decision = lease::decide(spec, &self.node_name, now);
        if !may_answer {
            if matches!(decision, Decision::Held | Decision::Renew) {
                let mut released = current.cloned().expect("held leases exist");
                if let Some(spec) = released.spec.as_mut() {
                    spec.holder_identity = None;
                }
                apis.leases
                    .replace(&released.name_any(), &PostParams::default(), &released)
                    .await?;
                tracing::info!("gave up Lease {LEASE_PREFIX}{uid}: this node may no longer answer");
            }
            return Ok(false);
        }
        let next = || lease::next_spec(spec, &decision, &self.node_name, now);
        match &decision {
            Decision::Held => {}
            Decision::Follow(_) => return Ok(false),
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(format!("{LEASE_PREFIX}{uid}")),
                        namespace: Some(NAMESPACE.into()),
                        labels: Some(BTreeMap::from([(LEASE_LABEL.into(), "true".into())])),
                        ..Default::default()
                    },
                    spec: Some(next()),
                };
                apis.leases.create(&PostParams::default(), &lease).await?;
            }
            Decision::Renew | Decision::TakeOver => {
                // Replace carries the resourceVersion read: a concurrent writer makes it fail.
                let mut lease = current.cloned().expect("existing leases");
                lease.spec = Some(next());
                apis.leases
                    .replace(&lease.name_any(), &PostParams::default(), &lease)
                    .await?;
            }
        }
        if matches!(decision, Decision::Create | Decision::TakeOver) {
            tracing::info!("now answering for the Service with uid {uid}");
        }
        Ok(true)
    }

    /// The holder's work for a Service that wants an address; returns the addresses to hold
    /// (one per family it shows).
    async fn provide(
        &self,
        apis: &Apis,
        svc: &Service,
        table: &mut TableHandle,
        memory: &mut Memory,
    ) -> Result<Vec<IpAddr>, AgentError> {
        let ns = svc.namespace().unwrap_or_default();
        let services: Api<Service> = Api::namespaced(apis.services.clone().into_client(), &ns);
        if !svc.finalizers().iter().any(|f| f == FINALIZER) {
            let mut finalizers = svc.finalizers().to_vec();
            finalizers.push(FINALIZER.into());
            set_finalizers(&services, svc, finalizers).await?;
        }
        let holder = Holder {
            namespace: ns.clone(),
            name: svc.name_any(),
            uid: svc.uid().unwrap_or_default(),
        };
        let requested = svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_ip.as_deref())
            .map(|r| self.requested_slot(r));
        // The slot behind the first address the status shows (an IPv6 one: its twin's slot).
        let status_ip = status_ips(svc).into_iter().find_map(|ip| self.slot_of(ip));
        let families = svc
            .spec
            .as_ref()
            .and_then(|s| s.ip_families.clone())
            .unwrap_or_default();
        let chosen = pool::check_families(&families, self.pool6.is_some()).and_then(|()| {
            pool::choose(
                &self.pool,
                &table.table,
                &holder,
                requested.as_deref(),
                status_ip,
            )
        });
        let ip = match chosen {
            Ok(ip) => ip,
            Err(e) => {
                // Pending, with nothing half-configured: no address, no status.
                if pool::release(&mut table.table, &holder.uid) {
                    table.write(&apis.tables).await?;
                }
                if !status_ips(svc).is_empty() {
                    set_status(&services, svc, &[]).await?;
                }
                self.tell(apis, svc, memory, EventType::Warning, &e).await;
                return Ok(Vec::new());
            }
        };
        if pool::assign(&mut table.table, &holder, ip) {
            table.write(&apis.tables).await?;
        }
        let shown = pool::addresses_for(&families, &self.pool, self.pool6.as_ref(), ip);
        if status_ips(svc) != shown || !reports_vip(svc) {
            set_status(&services, svc, &shown).await?;
            memory.told.remove(&holder.uid);
            let list: Vec<String> = shown.iter().map(IpAddr::to_string).collect();
            let pools = match &self.pool6 {
                Some(p6) => format!("{} and {p6}", self.pool),
                None => self.pool.to_string(),
            };
            let note = format!(
                "{} from pool {pools}, answered by node {}",
                list.join(", "),
                self.node_name
            );
            self.publish(apis, svc, EventType::Normal, "IPAllocated", note)
                .await;
        }
        Ok(shown)
    }

    /// `spec.loadBalancerIP` as the IPv4 slot the table keeps: an address of the IPv6 twin
    /// asks for its slot; anything else goes to [`pool::choose`] as written (which refuses
    /// what is not in the pool).
    fn requested_slot(&self, requested: &str) -> String {
        match (requested.trim().parse::<IpAddr>(), &self.pool6) {
            (Ok(IpAddr::V6(v6)), Some(p6)) => p6
                .slot(&self.pool, v6)
                .map_or_else(|| requested.to_string(), |slot| slot.to_string()),
            _ => requested.to_string(),
        }
    }

    /// The IPv4 slot behind an address a status shows.
    fn slot_of(&self, ip: IpAddr) -> Option<Ipv4Addr> {
        match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(v6) => self.pool6.as_ref()?.slot(&self.pool, v6),
        }
    }

    /// The holder's work for a Service deleted or no longer a LoadBalancer: everything undone,
    /// the finalizer last.
    async fn release(
        &self,
        apis: &Apis,
        svc: &Service,
        table: &mut TableHandle,
    ) -> Result<Vec<IpAddr>, AgentError> {
        let ns = svc.namespace().unwrap_or_default();
        let services: Api<Service> = Api::namespaced(apis.services.clone().into_client(), &ns);
        let uid = svc.uid().unwrap_or_default();
        if pool::release(&mut table.table, &uid) {
            table.write(&apis.tables).await?;
        }
        if svc.metadata.deletion_timestamp.is_none() && !status_ips(svc).is_empty() {
            set_status(&services, svc, &[]).await?;
        }
        let finalizers: Vec<String> = svc
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        set_finalizers(&services, svc, finalizers).await?;
        let _ = apis
            .leases
            .delete(&format!("{LEASE_PREFIX}{uid}"), &Default::default())
            .await;
        tracing::info!("released the address of {}", name_of(svc));
        Ok(Vec::new())
    }

    /// Exactly the addresses this node answers for on its interface; new ones announced.
    async fn sync_addresses(
        &self,
        uplink: &Uplink,
        keep: &BTreeSet<IpAddr>,
    ) -> Result<(), AgentError> {
        let held = uplink.held(&self.pool, self.pool6.as_ref()).await?;
        for ip in held.difference(keep) {
            uplink.remove(*ip).await?;
            tracing::info!("removed {ip} from {}", uplink.dev);
        }
        for ip in keep.difference(&held) {
            uplink.add(*ip).await?;
            if let Err(e) = uplink.announce(*ip).await {
                tracing::warn!("{e}");
            }
            tracing::info!("added {ip} to {} and announced it", uplink.dev);
        }
        Ok(())
    }

    /// On SIGTERM (an update, a drain, the node shutting down): let go of every Lease held
    /// and every address, so other nodes take over at once instead of after the Leases expire.
    async fn step_down(&self, apis: &Apis, uplink: &Uplink) {
        if let Ok(leases) = apis
            .leases
            .list(&ListParams::default().labels(LEASE_LABEL))
            .await
        {
            for mut l in leases.items {
                let Some(spec) = l.spec.as_mut() else {
                    continue;
                };
                if spec.holder_identity.as_deref() == Some(self.node_name.as_str()) {
                    spec.holder_identity = None;
                    let _ = apis
                        .leases
                        .replace(&l.name_any(), &PostParams::default(), &l)
                        .await;
                }
            }
        }
        let _ = self.sync_addresses(uplink, &BTreeSet::new()).await;
        tracing::info!("stepped down: Leases released, addresses removed");
    }

    /// An Event on the Service, once per distinct message while it stays the same.
    async fn tell(
        &self,
        apis: &Apis,
        svc: &Service,
        memory: &mut Memory,
        kind: EventType,
        e: &AllocError,
    ) {
        let uid = svc.uid().unwrap_or_default();
        let note = e.to_string();
        if memory.told.get(&uid) == Some(&note) {
            return;
        }
        tracing::warn!("{}: {note}", name_of(svc));
        self.publish(apis, svc, kind, e.reason(), note.clone())
            .await;
        memory.told.insert(uid, note);
    }

    async fn publish(
        &self,
        apis: &Apis,
        svc: &Service,
        kind: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_: kind,
            reason: reason.into(),
            note: Some(note),
            action: "AllocateLoadBalancerIP".into(),
            secondary: None,
        };
        if let Err(e) = apis.recorder.publish(&event, &svc.object_ref(&())).await {
            tracing::warn!("event on {}: {e}", name_of(svc));
        }
    }
}

/// The address table and the resourceVersion it was read at.
struct TableHandle {
    table: Table,
    /// None: the ConfigMap does not exist yet.
    config_map: Option<ConfigMap>,
}

impl TableHandle {
    async fn read(api: &Api<ConfigMap>) -> Result<TableHandle, AgentError> {
        let config_map = api.get_opt(TABLE).await?;
        let table = config_map
            .as_ref()
            .and_then(|c| c.data.as_ref())
            .map(pool::decode_table)
            .unwrap_or_default();
        Ok(TableHandle { table, config_map })
    }

    /// Writes the table if nobody wrote it since it was read (else the API refuses with a
    /// conflict, and the next pass starts from what the other writer wrote).
    async fn write(&mut self, api: &Api<ConfigMap>) -> Result<(), AgentError> {
        let data = Some(pool::encode_table(&self.table));
        let written = match self.config_map.take() {
            Some(mut cm) => {
                cm.data = data;
                api.replace(TABLE, &PostParams::default(), &cm).await
            }
            None => {
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(TABLE.into()),
                        namespace: Some(NAMESPACE.into()),
                        ..Default::default()
                    },
                    data,
                    ..Default::default()
                };
                api.create(&PostParams::default(), &cm).await
            }
        }?;
        self.config_map = Some(written);
        Ok(())
    }

    /// Drops entries whose Service is not among `live` uids; true if any was dropped.
    fn forget_all_but(&mut self, live: &BTreeSet<String>) -> bool {
        let before = self.table.len();
        self.table.retain(|_, h| live.contains(&h.uid));
        self.table.len() != before
    }
}

/// A LoadBalancer Service of ours that is not being deleted.
pub fn wants_address(svc: &Service) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec
            .load_balancer_class
            .as_deref()
            .is_none_or(|c| c == CLASS)
        && svc.metadata.deletion_timestamp.is_none()
}

/// The nodes that may answer for a Service: Ready ones not excluded from load balancers by
/// the well-known label. kubeadm puts that label on control planes, so a cluster whose only
/// Ready nodes are control planes (a single-node cluster) lets them answer rather than none;
/// with no node Ready, any may.
fn answering_nodes(nodes: &[Node]) -> BTreeSet<String> {
    let ready: Vec<&Node> = nodes.iter().filter(|n| is_ready(n)).collect();
    let included: BTreeSet<String> = ready
        .iter()
        .filter(|n| !n.labels().contains_key(EXCLUDE_LABEL))
        .map(|n| n.name_any())
        .collect();
    if !included.is_empty() {
        return included;
    }
    if !ready.is_empty() {
        return ready.iter().map(|n| n.name_any()).collect();
    }
    nodes.iter().map(|n| n.name_any()).collect()
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Ready endpoints of the Service per node (a dual-stack pod counts once per family, on
/// every node alike).
fn endpoints_per_node(svc: &Service, slices: &[EndpointSlice]) -> BTreeMap<String, usize> {
    let ns = svc.namespace();
    let name = svc.name_any();
    let mut counts = BTreeMap::new();
    for node in slices
        .iter()
        .filter(|s| {
            s.namespace() == ns && s.labels().get("kubernetes.io/service-name") == Some(&name)
        })
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter_map(|e| e.node_name.clone())
    {
        *counts.entry(node).or_insert(0) += 1;
    }
    counts
}

/// The nodes of `nodes` holding the most endpoints; empty when none holds any.
fn busiest_nodes(nodes: &BTreeSet<String>, counts: &BTreeMap<String, usize>) -> BTreeSet<String> {
    let count = |n: &String| counts.get(n).copied().unwrap_or(0);
    let most = nodes.iter().map(count).max().unwrap_or(0);
    if most == 0 {
        return BTreeSet::new();
    }
    nodes.iter().filter(|n| count(n) == most).cloned().collect()
}

fn status_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| {
            ingress
                .iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn reports_vip(svc: &Service) -> bool {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|i| i.iter().all(|i| i.ip_mode.as_deref() == Some("VIP")))
}

/// Sets (or with no addresses clears) the Service's load balancer status.
async fn set_status(
    services: &Api<Service>,
    svc: &Service,
    ips: &[IpAddr],
) -> Result<(), AgentError> {
    let ingress = if ips.is_empty() {
        serde_json::Value::Null
    } else {
        ips.iter()
            .map(|ip| serde_json::json!({ "ip": ip.to_string(), "ipMode": "VIP" }))
            .collect()
    };
    let patch = serde_json::json!({ "status": { "loadBalancer": { "ingress": ingress } } });
    services
        .patch_status(
            &svc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// Replaces the finalizer list, only if the Service did not change since it was read: a merge
/// patch that names a resourceVersion is refused with a conflict otherwise.
async fn set_finalizers(
    services: &Api<Service>,
    svc: &Service,
    finalizers: Vec<String>,
) -> Result<(), AgentError> {
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": svc.resource_version(), "finalizers": finalizers }
    });
    services
        .patch(
            &svc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

fn name_of(svc: &Service) -> String {
    format!(
        "Service {}/{}",
        svc.namespace().unwrap_or_default(),
        svc.name_any()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};

    fn node(name: &str, ready: bool, excluded: bool) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        if excluded {
            n.metadata.labels = Some(BTreeMap::from([(EXCLUDE_LABEL.into(), String::new())]));
        }
        n.status = Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        n
    }

    fn names(set: BTreeSet<String>) -> Vec<String> {
        set.into_iter().collect()
    }

    #[test]
    fn local_traffic_goes_to_the_nodes_with_the_most_endpoints() {
        let nodes: BTreeSet<String> = ["w1", "w2", "w3"].map(String::from).into();
        let counts = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
            pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect()
        };
        // Two pods on w2, one on w1: w2 alone answers, so traffic reaches two pods.
        assert_eq!(
            names(busiest_nodes(&nodes, &counts(&[("w1", 1), ("w2", 2)]))),
            ["w2"]
        );
        // Ties: every tied node may answer (the holder among them keeps its Lease).
        assert_eq!(
            names(busiest_nodes(&nodes, &counts(&[("w1", 1), ("w3", 1)]))),
            ["w1", "w3"]
        );
        // Endpoints only on nodes that may not answer, or none at all: no preference.
        assert!(busiest_nodes(&nodes, &counts(&[("cp", 3)])).is_empty());
        assert!(busiest_nodes(&nodes, &counts(&[])).is_empty());
    }

    #[test]
    fn ready_workers_answer_else_control_planes_else_anyone() {
        let cp = node("cp", true, true);
        let w1 = node("w1", true, false);
        let w2 = node("w2", false, false);
        assert_eq!(
            names(answering_nodes(&[cp.clone(), w1, w2.clone()])),
            ["w1"]
        );
        // A single-node cluster: its control plane answers.
        assert_eq!(names(answering_nodes(&[cp.clone(), w2.clone()])), ["cp"]);
        let down = node("cp", false, true);
        assert_eq!(names(answering_nodes(&[down, w2])), ["cp", "w2"]);
    }

    #[test]
    fn only_our_load_balancers_want_an_address() {
        let mut svc = Service::default();
        assert!(!wants_address(&svc));
        svc.spec = Some(k8s_openapi::api::core::v1::ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ..Default::default()
        });
        assert!(wants_address(&svc));
        svc.spec.as_mut().unwrap().load_balancer_class = Some(CLASS.into());
        assert!(wants_address(&svc));
        svc.spec.as_mut().unwrap().load_balancer_class = Some("example.com/other".into());
        assert!(!wants_address(&svc));
        svc.spec.as_mut().unwrap().load_balancer_class = None;
        svc.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        );
        assert!(!wants_address(&svc));
    }
}
