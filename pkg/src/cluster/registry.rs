//! The local registry container at run time: checked before anything is created, created (or
//! reused) under the network lock together with the nodes, and removed with the last cluster
//! that uses it unless it was asked to be kept.
//!
//! The container `kindred-registry` sits on the `kindred` network with a fixed address (like
//! the nodes, so it keeps it across restarts), publishes its port 5000 on 127.0.0.1:<port>,
//! keeps its data in the named volume `kindred-registry`, and restarts with the daemon
//! (`unless-stopped`). Which clusters use it is read from their nodes' labels
//! ([`registry::USER_LABEL`]), so kindred keeps no state of its own about it.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::{ClusterError, CLUSTER_LABEL, NETWORK};
use crate::provider::{ContainerSpec, NetworkAddressing, Provider, PublishedPort};
use crate::registry;
use crate::ui::Step;

/// What a cluster asks of the registry (from `registry:` or `--registry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryRequest {
    pub port: u16,
    pub keep: bool,
}

impl RegistryRequest {
    /// The cluster's registry settings, if it asks for the registry (config defaulted).
    pub fn of(config: &crate::config::Cluster) -> Option<RegistryRequest> {
        let r = config.registry()?;
        Some(RegistryRequest {
            port: r
                .port
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(crate::config::DEFAULT_REGISTRY_PORT as u16),
            keep: r.keep,
        })
    }
}

/// The registry container as kindred finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryState {
    /// Its host port, from its label.
    pub port: Option<u16>,
    pub keep: bool,
    pub running: bool,
    /// Its fixed address on the kindred network, if it has one.
    pub ip: Option<String>,
    /// Made by kindred (labelled); anything else of that name is left alone.
    pub ours: bool,
}

/// The registry container, if there is one (kindred's or not).
pub async fn find(docker: &dyn Provider) -> Result<Option<RegistryState>, ClusterError> {
    let Some(container) = docker.container(registry::CONTAINER).await? else {
        return Ok(None);
    };
    let labels = container.labels;
    let ip = container.fixed_ips.get(NETWORK).cloned();
    Ok(Some(RegistryState {
        port: labels
            .get(registry::PORT_LABEL)
            .and_then(|p| p.parse().ok()),
        keep: labels
            .get(registry::KEEP_LABEL)
            .is_some_and(|k| k == "true"),
        running: container.state == "running",
        ip,
        ours: labels.get(registry::LABEL).is_some_and(|v| v == "true"),
    }))
}

/// The clusters whose nodes use the registry, sorted.
pub async fn users(docker: &dyn Provider) -> Result<Vec<String>, ClusterError> {
    let containers = docker
        .list_by_labels(&[registry::USER_LABEL.to_string()])
        .await?;
    let names: BTreeSet<String> = containers
        .into_iter()
        .filter_map(|c| c.labels.get(CLUSTER_LABEL).cloned())
        .collect();
    Ok(names.into_iter().collect())
}

/// Before anything is created: the registry image is there, and either the registry runs on
/// the asked port, or it does not exist and the port is free on 127.0.0.1.
pub(super) async fn check(
    docker: &dyn Provider,
    request: RegistryRequest,
) -> Result<(), ClusterError> {
    let port = request.port;
    match find(docker).await? {
        Some(found) => match conflict(docker, &found, port).await? {
            Some(e) => Err(e),
            None => Ok(()),
        },
        None => {
            if let Err(source) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                return Err(ClusterError::RegistryPortTaken { port, source });
            }
            let image = registry::image();
            if !docker.image_exists(&image).await? {
                return Err(ClusterError::RegistryImageMissing { image });
            }
            Ok(())
        }
    }
}

/// Why an existing registry container cannot serve a cluster asking for `port`, if it cannot:
/// it is not kindred's, or it runs on another port.
async fn conflict(
    docker: &dyn Provider,
    found: &RegistryState,
    port: u16,
) -> Result<Option<ClusterError>, ClusterError> {
    if !found.ours {
        return Ok(Some(ClusterError::RegistryNotOurs {
            container: registry::CONTAINER.to_string(),
        }));
    }
    if found.port == Some(port) {
        return Ok(None);
    }
    let on = found
        .port
        .map(|p| p.to_string())
        .unwrap_or_else(|| "an unknown port".into());
    Ok(Some(ClusterError::RegistryOnOtherPort {
        container: registry::CONTAINER.to_string(),
        on,
        port,
        used_by: users(docker).await?,
    }))
}

/// Makes the registry run as asked. The caller holds the network lock (so two creates cannot
/// both create it, and the address picked stays free until the container exists). A registry
/// that exists is reused (started if stopped); one that should now be kept is recreated with
/// the same address and volume. Returns what was done, for the step's detail line.
pub(super) async fn ensure(
    docker: &dyn Provider,
    addressing: &NetworkAddressing,
    request: RegistryRequest,
    owner: &super::Ownership,
    step: &Step,
) -> Result<String, ClusterError> {
    let found = find(docker).await?;
    if let Some(state) = &found {
        // Checked before, but another create may have made it since, on another port.
        if let Some(e) = conflict(docker, state, request.port).await? {
            return Err(e);
        }
    }
    // Only a registry this create makes carries its token: one that was there, or that it
    // recreates to keep, is not this create's to remove when it fails.
    let mut token = None;
    let (ip, done) = match &found {
        Some(state) if state.keep || !request.keep => {
            if state.running {
                return Ok(format!(
                    "using the running registry {} on 127.0.0.1:{}",
                    registry::CONTAINER,
                    request.port
                ));
            }
            docker.start_container(registry::CONTAINER).await?;
            wait_ready(docker, request.port).await?;
            return Ok(format!("started the registry {}", registry::CONTAINER));
        }
        Some(state) => {
            // Asked to be kept now: labels cannot change, so the container is made anew on
            // the same address and volume (clusters using it see a second's interruption).
            docker.remove_container(registry::CONTAINER).await?;
            (
                state.ip.clone(),
                format!(
                    "recreated the registry {} so that it is kept",
                    registry::CONTAINER
                ),
            )
        }
        None => {
            token = Some((super::TOKEN_LABEL.to_string(), owner.token().to_string()));
            let ip = if addressing.supports_fixed_addresses() {
                let used = docker.used_addresses(NETWORK).await?;
                addressing
                    .free_addresses(&used, 1)?
                    .first()
                    .map(|ip| ip.to_string())
            } else {
                None
            };
            (
                ip,
                format!(
                    "created the registry {} on 127.0.0.1:{}",
                    registry::CONTAINER,
                    request.port
                ),
            )
        }
    };
    // Labels only apply if the volume is new: an existing one is not this create's either.
    let labels = HashMap::from_iter(
        [(registry::LABEL.to_string(), "true".to_string())]
            .into_iter()
            .chain(token.clone()),
    );
    docker.ensure_volume(registry::VOLUME, labels).await?;
    step.detail(format!(
        "[{}] image {}, volume {}, address {}",
        registry::CONTAINER,
        registry::image(),
        registry::VOLUME,
        ip.as_deref().unwrap_or("dynamic")
    ));
    let mut spec = spec(request, ip);
    spec.labels.extend(token);
    docker.run(&spec).await?;
    wait_ready(docker, request.port).await?;
    Ok(done)
}

/// The registry container: an ordinary unprivileged container.
fn spec(request: RegistryRequest, ip: Option<String>) -> ContainerSpec {
    ContainerSpec {
        name: registry::CONTAINER.to_string(),
        image: registry::image(),
        hostname: Some(registry::CONTAINER.to_string()),
        labels: HashMap::from([
            (registry::LABEL.to_string(), "true".to_string()),
            (registry::PORT_LABEL.to_string(), request.port.to_string()),
            (registry::KEEP_LABEL.to_string(), request.keep.to_string()),
        ]),
        binds: vec![format!("{}:{}", registry::VOLUME, registry::DATA_DIR)],
        network: Some(NETWORK.to_string()),
        ip,
        restart_policy: Some("unless-stopped".into()),
        ports: vec![PublishedPort {
            container_port: registry::CONTAINER_PORT,
            protocol: "tcp".into(),
            host_ip: "127.0.0.1".into(),
            host_port: Some(request.port),
        }],
        ..Default::default()
    }
}

/// Waits until the registry answers `GET /v2/` on its host port (what `docker push` talks to).
async fn wait_ready(docker: &dyn Provider, port: u16) -> Result<(), ClusterError> {
    let deadline = Instant::now() + crate::patience::scaled(Duration::from_secs(30));
    loop {
        let last = match tokio::task::spawn_blocking(move || probe(port)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            let logs = docker.logs(registry::CONTAINER).await.unwrap_or_default();
            let tail: Vec<&str> = logs.lines().collect();
            return Err(ClusterError::RegistryNotAnswering {
                container: registry::CONTAINER.to_string(),
                port,
                last,
                log_tail: tail[tail.len().saturating_sub(15)..].join("\n"),
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// One `GET /v2/` over plain HTTP/1.0; the registry's API root answers 200.
fn probe(port: u16) -> Result<(), String> {
    let mut stream = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /v2/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|e| e.to_string())?;
    let status = String::from_utf8_lossy(&head);
    if status.ends_with(" 200") {
        Ok(())
    } else {
        Err(format!("answered `{}`", status.trim()))
    }
}

/// Removes the registry (container and volume, so its images) if kindred made it, no cluster
/// uses it, and it was not asked to be kept. Takes the network lock, so a create that is
/// about to use the registry is not left without it. Returns whether it was removed.
pub async fn remove_if_unused(docker: &dyn Provider) -> Result<bool, ClusterError> {
    let _lock = crate::provider::lock_network(NETWORK, &super::say_waiting).await?;
    match find(docker).await? {
        Some(state) if state.ours && !state.keep && users(docker).await?.is_empty() => {
            remove(docker).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// `kindred delete registry`: removes the registry (container and volume) whether kept or
/// not, but not while clusters use it (their nodes would fail to pull), and never a container
/// kindred did not make. Returns whether there was one.
pub async fn delete_registry(docker: &dyn Provider) -> Result<bool, ClusterError> {
    let _lock = crate::provider::lock_network(NETWORK, &super::say_waiting).await?;
    let found = find(docker).await?;
    if let Some(state) = &found {
        if !state.ours {
            return Err(ClusterError::RegistryNotOursToDelete {
                container: registry::CONTAINER.to_string(),
            });
        }
        let used_by = users(docker).await?;
        if !used_by.is_empty() {
            return Err(ClusterError::RegistryInUse { clusters: used_by });
        }
    }
    let volume = our_volume(docker).await?;
    if found.is_some() || volume {
        remove(docker).await?;
    }
    Ok(found.is_some() || volume)
}

/// Whether the registry's volume exists and kindred made it.
async fn our_volume(docker: &dyn Provider) -> Result<bool, ClusterError> {
    Ok(docker
        .volume_labels(registry::VOLUME)
        .await?
        .is_some_and(|labels| labels.get(registry::LABEL).is_some_and(|v| v == "true")))
}

/// The container (kindred's: checked by the callers) and kindred's volume.
async fn remove(docker: &dyn Provider) -> Result<(), ClusterError> {
    docker.remove_container(registry::CONTAINER).await?;
    if our_volume(docker).await? {
        docker.remove_volume(registry::VOLUME).await?;
    }
    Ok(())
}
