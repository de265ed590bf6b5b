//! `create cluster`: small ordered actions, each with a clear precondition, like a recipe:
//! check inputs -> nodes -> kubeadm init -> add-ons (pod network, storage) -> workers join ->
//! Ready -> kubeconfig.
//! On failure the half-made cluster is deleted unless the user asked to retain it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;

use super::capacity;
use super::node_options::{self, NodeOptions};
use super::node_setup;
use super::ownership::Ownership;
use super::plan::{ClusterPlan, NodePlan};
use super::registry::{self as local_registry, RegistryRequest};
use super::{ClusterError, ADMIN_CONF, CLUSTER_LABEL, NETWORK, ROLE_LABEL};
use crate::agent::manifests;
use crate::config::Cluster;
use crate::kubeadm::{self, NodeBootstrap, RenderInput};
use crate::kubeconfig;
use crate::provider::{ContainerSpec, Docker, NodeSecurity, PublishedPort};
use crate::ui::{Step, Ui};

/// Where kubeadm's config is written on each node (kind uses the same directory).
const KUBEADM_CONFIG: &str = "/kind/kubeadm.conf";
/// The add-on manifests as applied, kept on the node for reference.
const ADDONS_MANIFEST: &str = "/kind/addons.yaml";
// The API server is published on the address the config names (127.0.0.1 by default); the
// kubeconfig always uses 127.0.0.1 to reach it, which covers 0.0.0.0 too.
/// Node containers created at once: Docker (and the disk behind it) slows down for everyone
/// with many concurrent creates, and a failure should not leave hundreds in flight.
const CREATE_CONCURRENCY: usize = 4;
/// Test hook (read by the e2e tests and hack/fault-inject.sh only): `<point>[:<milliseconds>]`
/// makes `create` stop at that named point for a while (default 60 s), after printing
/// `paused at <point>` on stderr. The points, in order: name-check, name-checked, locked,
/// nodes-created, nodes-configured, initialized, addons-installed, joined, ready,
/// kubeconfig-written.
pub const PAUSE_ENV: &str = "KINDRED_TEST_PAUSE_AT";

pub struct CreateOptions {
    /// Defaulted and validated.
    pub config: Cluster,
    /// Keep the nodes when creation fails, for debugging.
    pub retain: bool,
    /// How long to wait for every node to be Ready (zero: do not wait).
    pub wait: Duration,
    pub kubeconfig: PathBuf,
}

#[derive(Debug)]
pub struct Created {
    pub context: String,
    pub server: String,
}

/// Creates a cluster; if that fails, removes what this call made (unless `opts.retain`).
pub async fn create(
    docker: &Docker,
    opts: &CreateOptions,
    ui: &Ui,
) -> Result<Created, ClusterError> {
    let owner = Ownership::new(&opts.config.name, &opts.kubeconfig)?;
    create_owned(docker, opts, &owner, ui).await
}

/// [`create`] for a caller that keeps `owner`, to clean up with it if this future is dropped
/// (an interrupted command): everything made carries its token.
pub async fn create_owned(
    docker: &Docker,
    opts: &CreateOptions,
    owner: &Ownership,
    ui: &Ui,
) -> Result<Created, ClusterError> {
    let plan = ClusterPlan::new(opts.config.clone());
    check_inputs(docker, &plan).await?;
    let options = NodeOptions::prepare(docker, &plan, &|name| std::env::var(name).ok()).await?;
    let result = run(docker, &plan, &options, opts, owner, ui).await;
    if result.is_err() {
        if opts.retain {
            ui.info(format!(
                "Kept the nodes of {0} for debugging (--retain); remove them with `kindred delete cluster --name {0}`",
                plan.name()
            ));
        } else {
            let step = ui.step("Deleting what this command created (--retain keeps it)");
            match owner.clean_up(docker, false).await {
                Ok(_) => step.done(),
                Err(e) => {
                    step.fail();
                    ui.warn(e.to_string());
                }
            }
        }
    }
    result
}

/// Stops at the named point while the test hook [`PAUSE_ENV`] asks for it.
pub(super) async fn pause_point(point: &str) {
    let Ok(spec) = std::env::var(PAUSE_ENV) else {
        return;
    };
    let (at, millis) = match spec.split_once(':') {
        Some((at, ms)) => (at.to_string(), ms.parse().unwrap_or(60_000)),
        None => (spec, 60_000),
    };
    if at == point {
        eprintln!("{PAUSE_ENV}: paused at {point} for {millis} ms");
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }
}

/// Fails before anything is created: every node image present, the name free, the registry
/// (if asked for) running on the same port or its port free.
async fn check_inputs(docker: &Docker, plan: &ClusterPlan) -> Result<(), ClusterError> {
    let mut images: Vec<&str> = plan.nodes.iter().map(|n| n.config.image.as_str()).collect();
    images.dedup();
    for image in images.iter().copied() {
        if !docker.image_exists(image).await? {
            let hint = if image.starts_with(crate::defaults::NODE_IMAGE_REPO) {
                let version = image.rsplit(':').next().unwrap_or_default();
                format!("build it with `kindred build node-image --kube-version {version}`")
            } else {
                "build it with `kindred build node-image --image <name>` or load it into Docker"
                    .to_string()
            };
            return Err(ClusterError::Msg(format!(
                "node image {image} is not in Docker; {hint}"
            )));
        }
    }
    super::host_support::check_images(docker, &images).await?;
    capacity::check(docker, &plan.config).await?;
    let net = &plan.config.networking;
    if net.api_server_port > 0 {
        // The daemon runs on this host (or in this pod): a port we cannot bind, it cannot either.
        let addr = if net.api_server_address.contains(':') {
            format!("[{}]:{}", net.api_server_address, net.api_server_port)
        } else {
            format!("{}:{}", net.api_server_address, net.api_server_port)
        };
        if let Err(e) = std::net::TcpListener::bind(&addr) {
            return Err(ClusterError::Msg(format!(
                "networking.apiServerPort {}: {addr} is not free on this host ({e}); \
                 pick another port, or 0 for a free one",
                net.api_server_port
            )));
        }
    }
    // Fails early when the name is taken; the check that counts is made again under the network
    // lock, right before the containers are created (see `reserve_name`).
    pause_point("name-check").await;
    reserve_name(docker, plan).await?;
    pause_point("name-checked").await;
    if let Some(request) = RegistryRequest::of(&plan.config) {
        local_registry::check(docker, request).await?;
    }
    Ok(())
}

/// Fails if the cluster exists or a container has one of its node names. Under the network
/// lock this reserves the name: every create checks and creates its containers while holding
/// it, so a create that gets the lock later sees the containers of one that got it before.
async fn reserve_name(docker: &Docker, plan: &ClusterPlan) -> Result<(), ClusterError> {
    let name = plan.name();
    if !docker
        .list_by_labels(&[format!("{CLUSTER_LABEL}={name}")])
        .await?
        .is_empty()
    {
        return Err(ClusterError::NameTaken {
            name: name.to_string(),
        });
    }
    let wanted: Vec<&String> = plan
        .nodes
        .iter()
        .map(|n| &n.name)
        .chain(plan.load_balancer.as_ref())
        .collect();
    if let Some(container) = docker
        .container_names()
        .await?
        .into_iter()
        .find(|c| wanted.contains(&c))
    {
        return Err(ClusterError::ContainerNameTaken {
            container,
            cluster: name.to_string(),
        });
    }
    Ok(())
}

async fn run(
    docker: &Docker,
    plan: &ClusterPlan,
    options: &NodeOptions,
    opts: &CreateOptions,
    owner: &Ownership,
    ui: &Ui,
) -> Result<Created, ClusterError> {
    let started = Instant::now();
    let cp = plan.first_control_plane();

    let step = ui.step(format!("Preparing nodes ({})", plan.nodes.len()));
    let security = create_nodes(docker, plan, options, owner, ui, &step).await?;
    pause_point("nodes-created").await;
    write_lb_backends(docker, plan, &step).await?;
    try_join_all(plan.nodes.iter().map(|n| wait_for_systemd(docker, &n.name))).await?;
    for note in &options.notes {
        step.detail(note);
    }
    node_setup::configure_nodes(docker, plan, options, &step).await?;
    step.done_with(security.name());
    pause_point("nodes-configured").await;

    let step = ui.step("Starting the control plane (kubeadm init)");
    let kube_version = node_sh(docker, &cp.name, "cat /kind/version", &step)
        .await?
        .trim()
        .to_string();
    let cgroup_v1 = docker.cgroup_version().await? == "1";
    tracing::debug!(
        "Docker runs containers on cgroup v{}; kubelet is configured to match",
        if cgroup_v1 { 1 } else { 2 }
    );
    let token = bootstrap_token()?;
    let endpoint = format!(
        "{}:{}",
        plan.api_endpoint_host(),
        kubeadm::API_SERVER_BIND_PORT
    );
    // HA: `kubeadm init --upload-certs` stores the control-plane certificates in the cluster,
    // encrypted with this key; joining control planes fetch them with it.
    let certificate_key = match plan.load_balancer {
        Some(_) => Some(random_hex(32)?),
        None => None,
    };
    let mut ips = HashMap::new();
    for n in &plan.nodes {
        ips.insert(n.name.clone(), docker.container_ip(&n.name, NETWORK).await?);
    }
    let render = |node: &NodePlan, bootstrap: NodeBootstrap| {
        let mut input = RenderInput::from_cluster(&plan.config, &node.config);
        input.kubernetes_version = kube_version.clone();
        input.node_name = node.name.clone();
        input.node_ips = vec![ips[&node.name].clone()];
        input.bootstrap = bootstrap;
        input.control_plane_endpoint = endpoint.clone();
        input.api_server_cert_sans = vec![
            "127.0.0.1".into(),
            "localhost".into(),
            plan.config.networking.api_server_address.clone(),
        ];
        input.bootstrap_token = token.clone();
        input.certificate_key = certificate_key.clone();
        input.cgroup_v1 = cgroup_v1;
        input.timeout_scale = crate::patience::scale();
        kubeadm::render_node(&input)
    };
    write_kubeadm_config(
        docker,
        &cp.name,
        &render(cp, NodeBootstrap::FirstControlPlane)?,
        &step,
    )
    .await?;
    let upload_certs = if certificate_key.is_some() {
        " --upload-certs"
    } else {
        ""
    };
    let init = format!(
        "kubeadm init --config={KUBEADM_CONFIG} --skip-token-print --ignore-preflight-errors=all{upload_certs}"
    );
    if let Err(e) = node_sh(docker, &cp.name, &init, &step).await {
        return Err(with_kubelet_log(docker, &cp.name, e).await);
    }
    step.done_with(kube_version.clone());
    pause_point("initialized").await;

    let step = ui.step("Installing the pod network and storage");
    if plan.config.networking.disable_default_cni {
        step.detail(
            "no pod network (disableDefaultCNI): nodes stay NotReady until you install one",
        );
    }
    install_addons(docker, plan, &endpoint, &step).await?;
    step.done();
    pause_point("addons-installed").await;

    let joining = plan.other_control_planes().count() + plan.workers().count();
    if joining > 0 {
        let step = ui.step(format!("Joining {joining} node(s)"));
        let join = |node: &NodePlan, bootstrap: NodeBootstrap| {
            let (render, step) = (&render, &step);
            let name = node.name.clone();
            let config = render(node, bootstrap);
            async move {
                write_kubeadm_config(docker, &name, &config?, step).await?;
                let join =
                    format!("kubeadm join --config={KUBEADM_CONFIG} --ignore-preflight-errors=all");
                match node_sh(docker, &name, &join, step).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(with_kubelet_log(docker, &name, e).await),
                }
            }
        };
        // Control planes one at a time: each adds an etcd member, and etcd admits a single
        // learner at a time. Workers only need the API, so they join meanwhile, all at once.
        let control_planes = async {
            for node in plan.other_control_planes() {
                join(node, NodeBootstrap::JoiningControlPlane).await?;
            }
            Ok::<(), ClusterError>(())
        };
        let workers = try_join_all(plan.workers().map(|w| join(w, NodeBootstrap::Worker)));
        futures_util::future::try_join(control_planes, workers).await?;
        step.done();
    }
    pause_point("joined").await;
    if plan.workers().count() == 0 {
        // No workers: let workloads schedule on the control plane(s).
        let step = ui.step("Allowing workloads on the control plane");
        kubectl(
            docker,
            &cp.name,
            "taint nodes --all node-role.kubernetes.io/control-plane-",
            &step,
        )
        .await?;
        step.done();
    }

    if !opts.wait.is_zero() {
        let step = ui.step(format!(
            "Waiting up to {}s for every node to be Ready",
            opts.wait.as_secs()
        ));
        wait_ready(docker, plan, opts.wait, &step).await?;
        step.done();
    }
    pause_point("ready").await;

    let step = ui.step("Writing kubeconfig");
    let entry = super::kubeconfig_entry(docker, plan.name(), false).await?;
    let server = entry.server.clone();
    kubeconfig::merge(&opts.kubeconfig, &entry)?;
    owner.wrote_kubeconfig();
    step.done_with(opts.kubeconfig.display().to_string());
    pause_point("kubeconfig-written").await;
    ui.detail(format!(
        "cluster {} created in {:.1}s",
        plan.name(),
        started.elapsed().as_secs_f64()
    ));
    Ok(Created {
        context: kubeconfig::context_name(plan.name()),
        server,
    })
}

/// Node restart policy: nodes come back with the Docker daemon (and after a host reboot)
/// unless the user stopped them.
const RESTART_POLICY: &str = "unless-stopped";

async fn create_nodes(
    docker: &Docker,
    plan: &ClusterPlan,
    options: &NodeOptions,
    owner: &Ownership,
    ui: &Ui,
    step: &Step,
) -> Result<NodeSecurity, ClusterError> {
    // Held until the containers exist: concurrent creates must not pick the same addresses,
    // and of two creates of one name only the first may create containers.
    let _lock = docker
        .lock_network(NETWORK, &|waiting| step.note(waiting))
        .await?;
    pause_point("locked").await;
    reserve_name(docker, plan).await?;
    let addressing = docker
        .ensure_network(
            NETWORK,
            HashMap::from([("io.kindred.network".to_string(), "true".to_string())]),
        )
        .await?;
    // The registry first, so that the nodes' addresses are picked around its address.
    let registry = RegistryRequest::of(&plan.config);
    if let Some(request) = registry {
        let done = local_registry::ensure(docker, &addressing, request, owner, step).await?;
        step.detail(done);
    }
    let containers = plan.nodes.len() + usize::from(plan.load_balancer.is_some());
    let mut ips: Vec<Option<String>> = if addressing.supports_fixed_addresses() {
        let used = docker.used_addresses(NETWORK).await?;
        addressing
            .free_addresses(&used, containers)?
            .into_iter()
            .map(|ip| Some(ip.to_string()))
            .collect()
    } else {
        ui.info(format!(
            "The Docker network `{NETWORK}` ({}) was made by an older kindred and cannot pin node \
             addresses; this cluster may not survive restarts. Delete all clusters so kindred \
             can recreate the network.",
            addressing.subnet
        ));
        vec![None; containers]
    };
    let security = NodeSecurity::from_env().map_err(ClusterError::Msg)?;
    let modules = std::path::Path::new("/lib/modules").is_dir();
    if !modules {
        // Nested (a CI container): nodes use the modules the host kernel already has loaded.
        tracing::debug!("no /lib/modules here: nodes get none mounted");
    }
    let net = &plan.config.networking;
    // A fixed host port, so the kubeconfig stays right when the container restarts.
    let api_port = if net.api_server_port > 0 {
        net.api_server_port as u16
    } else {
        free_port(&net.api_server_address)?
    };
    let api_port = PublishedPort {
        container_port: kubeadm::API_SERVER_BIND_PORT,
        protocol: "tcp".into(),
        host_ip: net.api_server_address.clone(),
        host_port: Some(api_port),
    };
    let lb_ip = if plan.load_balancer.is_some() {
        ips.pop().flatten()
    } else {
        None
    };
    // The cluster and this create's token, so that cleanup finds what this create made.
    let node_labels = |n: &NodePlan| {
        let role = (ROLE_LABEL.to_string(), n.role.as_str().to_string());
        // Marks the cluster as a user of the registry (see cluster::registry).
        let registry_user =
            registry.map(|r| (crate::registry::USER_LABEL.to_string(), r.port.to_string()));
        HashMap::from_iter(
            owner
                .labels()
                .into_iter()
                .chain([role])
                .chain(registry_user),
        )
    };
    let mut specs: Vec<ContainerSpec> = plan
        .nodes
        .iter()
        .zip(ips)
        .map(|(n, ip)| ContainerSpec {
            name: n.name.clone(),
            image: n.config.image.clone(),
            hostname: Some(n.name.clone()),
            labels: node_labels(n),
            tmpfs: vec!["/run".into(), "/tmp".into()],
            // Kept out of the overlay root: containerd's snapshots need a real filesystem.
            volumes: vec!["/var".into()],
            volume_labels: HashMap::from(owner.labels()),
            binds: if modules {
                vec!["/lib/modules:/lib/modules:ro".into()]
            } else {
                vec![]
            },
            network: Some(NETWORK.into()),
            ip,
            restart_policy: Some(RESTART_POLICY.into()),
            security: Some(security),
            ports: if n.name == plan.api_endpoint_host() {
                vec![api_port.clone()]
            } else {
                vec![]
            },
            ..Default::default()
        })
        .collect();
    // extraMounts, extraPortMappings, dnsSearch, proxy variables (node_options.rs).
    let subnets = node_options::network_subnets(docker, NETWORK).await?;
    for spec in &mut specs {
        options.apply(spec, &subnets);
    }
    if let Some(lb) = &plan.load_balancer {
        specs.push(load_balancer_spec(plan, lb, lb_ip, api_port, owner));
    }
    let used = super::bounded::run_all(&specs, CREATE_CONCURRENCY, |s| docker.run(s))
        .await
        .map_err(|e| name_conflict(e, plan.name()))?;
    Ok(used.into_iter().flatten().next().unwrap_or(security))
}

/// Docker's "name already in use" (409) as the typed error saying the name is taken: a
/// kindred that does not share this one's lock (another user, an older version) got there
/// first.
fn name_conflict(err: crate::provider::ProviderError, cluster: &str) -> ClusterError {
    use crate::provider::ProviderError;
    match &err {
        ProviderError::Api {
            source:
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    message,
                },
            ..
        } if message.contains("already in use") => ClusterError::NameTaken {
            name: cluster.to_string(),
        },
        _ => err.into(),
    }
}

/// Where the load balancer reads its backends (written by [`write_lb_backends`]).
const LB_BACKENDS: &str = "/kindred/lb-backends";

/// An HA cluster's API load balancer: `kindred agent loadbalancer` from the node image (which
/// carries the kindred binary), an ordinary unprivileged container.
fn load_balancer_spec(
    plan: &ClusterPlan,
    name: &str,
    ip: Option<String>,
    api_port: PublishedPort,
    owner: &Ownership,
) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        image: plan.first_control_plane().config.image.clone(),
        hostname: Some(name.to_string()),
        labels: HashMap::from_iter(owner.labels().into_iter().chain([(
            ROLE_LABEL.to_string(),
            super::LOAD_BALANCER_ROLE.to_string(),
        )])),
        entrypoint: Some(vec!["/usr/local/bin/kindred".into()]),
        cmd: Some(vec![
            "agent".into(),
            "loadbalancer".into(),
            "--backends".into(),
            LB_BACKENDS.into(),
        ]),
        env: vec!["KINDRED_LOG=kindred=info".into()],
        network: Some(NETWORK.into()),
        ip,
        restart_policy: Some(RESTART_POLICY.into()),
        // The image's stop signal is systemd's; the balancer exits on SIGTERM.
        stop_signal: Some("SIGTERM".into()),
        ports: vec![api_port],
        ..Default::default()
    }
}

/// Points the load balancer at every control plane, written whole and renamed into place so it
/// never reads half a file.
async fn write_lb_backends(
    docker: &Docker,
    plan: &ClusterPlan,
    step: &Step,
) -> Result<(), ClusterError> {
    let Some(lb) = &plan.load_balancer else {
        return Ok(());
    };
    let backends: String = plan
        .nodes
        .iter()
        .filter(|n| n.role == crate::config::NodeRole::ControlPlane)
        .map(|n| format!("{}:{}\n", n.name, kubeadm::API_SERVER_BIND_PORT))
        .collect();
    node_sh(
        docker,
        lb,
        &format!(
            "mkdir -p /kindred && printf '%s' '{backends}' > {LB_BACKENDS}.tmp && mv {LB_BACKENDS}.tmp {LB_BACKENDS}"
        ),
        step,
    )
    .await?;
    Ok(())
}

/// Applies the node image's add-on manifests (kind's layout: /kind/manifests/) on the first
/// control plane: the pod network agent unless disableDefaultCNI, and the storage agent with
/// the default StorageClass. Done before workers join so their agent pods start as they
/// register.
async fn install_addons(
    docker: &Docker,
    plan: &ClusterPlan,
    endpoint: &str,
    step: &Step,
) -> Result<(), ClusterError> {
    let cp = &plan.first_control_plane().name;
    let mut paths = vec![manifests::DEFAULT_STORAGE_PATH];
    if !plan.config.networking.disable_default_cni {
        paths.insert(0, manifests::DEFAULT_CNI_PATH);
    }
    let mut rendered = Vec::new();
    for path in paths {
        let out = docker.exec(cp, &["cat", path]).await?;
        if out.code != 0 {
            return Err(ClusterError::Msg(format!(
                "the node image {} has no {path}; rebuild it with `kindred build node-image`",
                plan.first_control_plane().config.image
            )));
        }
        let manifest = manifests::render(
            &out.stdout,
            &plan.config.networking.pod_subnet,
            &guarded_service_subnet(&plan.config.networking),
            endpoint,
        )
        .map_err(|e| ClusterError::Step {
            step: format!("reading {path} of the node image"),
            reason: format!(
                "it is not valid YAML ({e}); rebuild the image with `kindred build node-image`"
            ),
        })?;
        rendered.push(manifest);
    }
    if let Some(request) = RegistryRequest::of(&plan.config) {
        // kind's discovery ConfigMap for the local registry (KEP-1755).
        rendered.push(crate::registry::local_registry_hosting(request.port));
        step.detail(format!(
            "ConfigMap kube-public/local-registry-hosting: localhost:{}",
            request.port
        ));
    }
    write_file(docker, cp, ADDONS_MANIFEST, &rendered.join("\n---\n"), step).await?;
    kubectl(docker, cp, &format!("apply -f {ADDONS_MANIFEST}"), step).await?;
    Ok(())
}

/// The service subnet the network agent guards (see `agent::network`): with kube-proxy in
/// iptables or nftables mode, whose translation happens before the filter table looks.
/// IPVS handles service addresses as local ones, and without kube-proxy whatever replaces it
/// decides; no guard then.
fn guarded_service_subnet(net: &crate::config::Networking) -> String {
    use crate::config::KubeProxyMode;
    match net.kube_proxy_mode {
        KubeProxyMode::Iptables | KubeProxyMode::Nftables => net.service_subnet.clone(),
        KubeProxyMode::Ipvs | KubeProxyMode::None => String::new(),
    }
}

/// A port nothing listens on at `address` right now (the kernel picks it).
fn free_port(address: &str) -> Result<u16, ClusterError> {
    let bind = if address.contains(':') {
        format!("[{address}]:0")
    } else {
        format!("{address}:0")
    };
    std::net::TcpListener::bind(&bind)
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ClusterError::Msg(format!("cannot find a free port on {address}: {e}")))
}

pub(super) async fn wait_for_systemd(docker: &Docker, node: &str) -> Result<(), ClusterError> {
    let limit = crate::patience::scaled(Duration::from_secs(180));
    let deadline = Instant::now() + limit;
    loop {
        let out = docker
            .exec(node, &["systemctl", "is-system-running"])
            .await?;
        let state = out.stdout.trim();
        if state == "running" || state == "degraded" {
            return Ok(());
        }
        if Instant::now() > deadline {
            let failed = docker
                .exec(node, &["systemctl", "--failed", "--no-legend"])
                .await?;
            return Err(ClusterError::Step {
                step: format!("booting {node}"),
                reason: format!(
                    "systemd is still `{state}` after {}s; failed units:\n{}\n\
                     On a slow host, set {}=2 (or more) to wait longer.",
                    limit.as_secs(),
                    failed.stdout,
                    crate::patience::SCALE_ENV
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Runs `bash -c script` on a node; a failure carries the command's output.
async fn node_sh(
    docker: &Docker,
    node: &str,
    script: &str,
    step: &Step,
) -> Result<String, ClusterError> {
    step.detail(format!("[{node}] $ {script}"));
    let out = docker.exec(node, &["bash", "-c", script]).await?;
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        step.detail(format!("[{node}] {line}"));
    }
    if out.code != 0 {
        let tail: Vec<&str> = out.stdout.lines().chain(out.stderr.lines()).collect();
        let tail = tail[tail.len().saturating_sub(25)..].join("\n  ");
        return Err(ClusterError::Step {
            step: format!("`{script}` on {node}"),
            reason: format!("exit code {}; last output:\n  {tail}", out.code),
        });
    }
    Ok(out.stdout)
}

async fn kubectl(
    docker: &Docker,
    node: &str,
    args: &str,
    step: &Step,
) -> Result<String, ClusterError> {
    node_sh(
        docker,
        node,
        &format!("kubectl --kubeconfig={ADMIN_CONF} {args}"),
        step,
    )
    .await
}

/// The node's kubeadm config and the files it refers to (the node's kubelet patches).
async fn write_kubeadm_config(
    docker: &Docker,
    node: &str,
    config: &kubeadm::NodeConfig,
    step: &Step,
) -> Result<(), ClusterError> {
    for (path, content) in &config.files {
        write_file(docker, node, path, content, step).await?;
    }
    write_file(docker, node, KUBEADM_CONFIG, &config.kubeadm_config, step).await
}

async fn write_file(
    docker: &Docker,
    node: &str,
    path: &str,
    content: &str,
    step: &Step,
) -> Result<(), ClusterError> {
    const END: &str = "KINDRED_END_OF_FILE";
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
    node_sh(
        docker,
        node,
        &format!("mkdir -p {dir} && cat > {path} <<'{END}'\n{content}\n{END}"),
        step,
    )
    .await?;
    Ok(())
}

/// Adds the node's last kubelet log lines to a kubeadm failure: kubeadm itself often only
/// says that it timed out waiting.
async fn with_kubelet_log(docker: &Docker, node: &str, err: ClusterError) -> ClusterError {
    let ClusterError::Step { step, reason } = err else {
        return err;
    };
    let log = super::unit_log_tail(docker, node, "kubelet").await;
    ClusterError::Step {
        step,
        reason: format!(
            "{reason}\nlast kubelet log lines on {node} (all of it: `docker exec {node} journalctl -u kubelet`):\n  {}",
            log.trim_end().replace('\n', "\n  ")
        ),
    }
}

async fn wait_ready(
    docker: &Docker,
    plan: &ClusterPlan,
    wait: Duration,
    step: &Step,
) -> Result<(), ClusterError> {
    let cp = &plan.first_control_plane().name;
    let deadline = Instant::now() + wait;
    let query = r#"get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}'"#;
    loop {
        let out = super::node_kubectl(docker, cp, query).await?;
        let ready = out.stdout.lines().filter(|l| l.ends_with("=True")).count();
        step.progress(format!("{ready}/{} Ready", plan.nodes.len()));
        if out.code == 0 && ready == plan.nodes.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ClusterError::Step {
                step: "waiting for nodes to be Ready".into(),
                reason: format!(
                    "{ready} of {} nodes Ready after {}s:\n{}",
                    plan.nodes.len(),
                    wait.as_secs(),
                    out.stdout
                ),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `bytes` random bytes from the kernel, hex-encoded.
pub(super) fn random_hex(bytes: usize) -> Result<String, ClusterError> {
    let mut buf = vec![0u8; bytes];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom")
            .map_err(|e| ClusterError::Msg(format!("/dev/urandom: {e}")))?,
        &mut buf,
    )
    .map_err(|e| ClusterError::Msg(format!("/dev/urandom: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A kubeadm bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`) from the kernel's random source.
fn bootstrap_token() -> Result<String, ClusterError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 22];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom")
            .map_err(|e| ClusterError::Msg(format!("/dev/urandom: {e}")))?,
        &mut bytes,
    )
    .map_err(|e| ClusterError::Msg(format!("/dev/urandom: {e}")))?;
    let chars: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    Ok(format!("{}.{}", &chars[..6], &chars[6..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_name_conflict_says_the_name_is_taken() {
        let conflict = crate::provider::ProviderError::Api {
            action: "create container dev-control-plane".into(),
            source: bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                message: "Conflict. The container name \"/dev-control-plane\" is already in use \
                          by container \"0123\". You have to remove (or rename) that container \
                          to be able to reuse that name."
                    .into(),
            },
        };
        let err = name_conflict(conflict, "dev");
        assert!(matches!(&err, ClusterError::NameTaken { name } if name == "dev"));
        assert!(
            err.to_string().starts_with("the name dev is taken"),
            "{err}"
        );
        let other = crate::provider::ProviderError::Other("no space left".into());
        assert!(matches!(
            name_conflict(other, "dev"),
            ClusterError::Provider(_)
        ));
    }

    #[test]
    fn bootstrap_tokens_have_kubeadms_format() {
        let t = bootstrap_token().unwrap();
        let (id, secret) = t.split_once('.').unwrap();
        assert_eq!((id.len(), secret.len()), (6, 16));
        assert!(t
            .chars()
            .all(|c| c == '.' || c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_ne!(t, bootstrap_token().unwrap());
    }

    #[test]
    fn the_service_range_is_guarded_only_where_kube_proxy_translates_first() {
        use crate::config::{Cluster, KubeProxyMode};
        let mut net = Cluster::default().with_defaults().networking;
        for (mode, guarded) in [
            (KubeProxyMode::Iptables, true),
            (KubeProxyMode::Nftables, true),
            (KubeProxyMode::Ipvs, false),
            (KubeProxyMode::None, false),
        ] {
            net.kube_proxy_mode = mode;
            let subnet = guarded_service_subnet(&net);
            assert_eq!(subnet == net.service_subnet, guarded, "{mode:?}");
            assert_eq!(subnet.is_empty(), !guarded, "{mode:?}");
        }
    }
}
