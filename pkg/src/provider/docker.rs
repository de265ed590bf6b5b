//! The Docker implementation of [`Provider`]: Docker's Engine API through bollard. The API
//! version is negotiated, so Debian's Docker 20.10 (API 1.41) works as well as current releases.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;

use async_trait::async_trait;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ImportImageOptions, LogsOptions,
    RemoveContainerOptions, RemoveImageOptions, WaitContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt};

use super::network::{
    host_routes, host_routes_v6, lower_half, pick_subnet, pick_subnet_v6, MTU_OPTION,
};
use super::security::{is_privilege_refusal, NodeSecurity};
use super::{
    block_addresses, file_stream, ContainerInfo, ContainerSpec, ExecOutput, InputStream,
    NetworkAddressing, Provider, ProviderError, PublishedPort, LB_POOL_LABEL,
};
use crate::config::Cidr;

fn api(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> ProviderError {
    let action = action.into();
    move |source| ProviderError::from_api(&action, source)
}

fn restart_policy(name: &str) -> bollard::models::RestartPolicy {
    use bollard::models::RestartPolicyNameEnum as Name;
    let name = match name {
        "always" => Name::ALWAYS,
        "unless-stopped" => Name::UNLESS_STOPPED,
        "on-failure" => Name::ON_FAILURE,
        _ => Name::NO,
    };
    bollard::models::RestartPolicy {
        name: Some(name),
        maximum_retry_count: None,
    }
}

/// The endpoint config that pins `spec.ip` (and `spec.ip6`) on `spec.network`.
fn fixed_address(spec: &ContainerSpec) -> Option<bollard::models::NetworkingConfig> {
    let (network, ip) = (spec.network.as_ref()?, spec.ip.as_ref()?);
    let endpoint = bollard::models::EndpointSettings {
        ipam_config: Some(bollard::models::EndpointIpamConfig {
            ipv4_address: Some(ip.clone()),
            ipv6_address: spec.ip6.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    Some(bollard::models::NetworkingConfig {
        endpoints_config: Some(HashMap::from([(network.clone(), endpoint)])),
    })
}

/// Node containers need every device (`--privileged` or the device rule `a *:* rwm`); a
/// daemon that itself runs under a device cgroup allowing less (a pod that is not privileged)
/// cannot grant that. Say so, and what to change, instead of runc's words alone.
fn explain_device_refusal(err: ProviderError) -> ProviderError {
    let message = err.to_string();
    if message.contains("devices.allow") && message.contains("operation not permitted") {
        return ProviderError::Other(format!(
            "{message}\nThis Docker daemon cannot give node containers access to all devices: it \
             runs under a device cgroup that allows fewer (e.g. in a Kubernetes pod that is not \
             privileged). Run it with access to all devices: `privileged: true` for a pod, or \
             `--device-cgroup-rule 'a *:* rwm'` for a Docker container (docs/ci-pods.md)."
        ));
    }
    err
}

#[derive(Clone)]
pub struct Docker {
    client: bollard::Docker,
}

/// Docker sent the kill, but the container's init did not exit (see provider::thaw).
fn is_stuck_exit(e: &bollard::errors::Error) -> bool {
    e.to_string().contains("did not receive an exit event")
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The socket path DOCKER_HOST names (Docker's default socket when it is unset or empty).
fn socket_path(docker_host: Option<&str>) -> Option<String> {
    match docker_host.filter(|h| !h.is_empty()) {
        None => Some("/var/run/docker.sock".into()),
        Some(host) => host.strip_prefix("unix://").map(str::to_string),
    }
}

impl Docker {
    /// Connects to DOCKER_HOST (or the local socket), negotiates the API version and checks the
    /// daemon answers, so later errors are about the request, not the connection.
    pub async fn connect() -> Result<Docker, ProviderError> {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let no_daemon = |reason: String| ProviderError::NoDaemon {
            host: host.clone(),
            reason,
        };
        let client =
            bollard::Docker::connect_with_defaults().map_err(|e| no_daemon(e.to_string()))?;
        let client = client
            .negotiate_version()
            .await
            .map_err(|e| no_daemon(e.to_string()))?;
        client.ping().await.map_err(|e| no_daemon(e.to_string()))?;
        Ok(Docker { client })
    }

    pub fn client(&self) -> &bollard::Docker {
        &self.client
    }

    /// A kill Docker sent did not end the container: its init waits for tasks in frozen
    /// cgroups (see provider::thaw). Thaws them, or says how to when this process cannot.
    async fn thaw_stuck(
        &self,
        name: &str,
        e: &bollard::errors::Error,
    ) -> Result<(), ProviderError> {
        let pid = self
            .client
            .inspect_container(name, None)
            .await
            .ok()
            .and_then(|c| c.state?.pid)
            .unwrap_or_default();
        let frozen = super::thaw::frozen_below(pid, Path::new("/sys/fs/cgroup"));
        let thawed = super::thaw::thaw(&frozen);
        if thawed == 0 {
            return Err(ProviderError::Other(format!(
                "container {name} does not exit ({e}): its init (host PID {pid}) waits for \
                 tasks of its PID namespace; on a cgroup v1 host these are usually in a pod \
                 cgroup that runc left frozen. As root, write THAWED into each freezer.state \
                 that reads FROZEN under /sys/fs/cgroup/freezer/docker/<its id>/, then try again."
            )));
        }
        tracing::info!("{name}: thawed {thawed} frozen cgroup(s) so that it can exit");
        Ok(())
    }

    async fn run_with_fallback(
        &self,
        spec: &ContainerSpec,
    ) -> Result<Option<NodeSecurity>, ProviderError> {
        match spec.security {
            Some(NodeSecurity::Privileged) => {
                match self.create_and_start(spec, spec.security).await {
                    Ok(()) => Ok(Some(NodeSecurity::Privileged)),
                    Err(ProviderError::Api { source, .. })
                        if is_privilege_refusal(&source.to_string()) =>
                    {
                        tracing::debug!(
                            "--privileged refused here ({source}); using the restricted profile"
                        );
                        self.remove_container(&spec.name).await?;
                        self.create_and_start(spec, Some(NodeSecurity::Restricted))
                            .await?;
                        Ok(Some(NodeSecurity::Restricted))
                    }
                    Err(e) => Err(e),
                }
            }
            other => {
                self.create_and_start(spec, other).await?;
                Ok(other)
            }
        }
    }

    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        security: Option<NodeSecurity>,
    ) -> Result<(), ProviderError> {
        let port_key = |p: &PublishedPort| format!("{}/{}", p.container_port, p.protocol);
        // One container port may be published on several host addresses or ports.
        let mut bindings = bollard::models::PortMap::new();
        for p in &spec.ports {
            let binding = bollard::models::PortBinding {
                host_ip: Some(p.host_ip.clone()),
                host_port: Some(p.host_port.map(|h| h.to_string()).unwrap_or_default()),
            };
            let list = bindings
                .entry(port_key(p))
                .or_insert_with(|| Some(Vec::new()));
            list.get_or_insert_with(Vec::new).push(binding);
        }
        let exposed: Vec<String> = bindings.keys().cloned().collect();
        let mut host = HostConfig {
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
            tmpfs: (!spec.tmpfs.is_empty()).then(|| {
                spec.tmpfs
                    .iter()
                    .map(|p| (p.clone(), String::new()))
                    .collect()
            }),
            network_mode: spec.network.clone(),
            restart_policy: spec.restart_policy.as_deref().map(restart_policy),
            sysctls: (!spec.sysctls.is_empty()).then(|| spec.sysctls.clone()),
            ..Default::default()
        };
        if let Some(security) = security {
            security.apply(&mut host);
        }
        host.dns_search.clone_from(&spec.dns_search);
        // A volume mount without a source is an anonymous volume like `Volumes` makes (filled
        // from the image, removed with the container), but one that can carry labels.
        let labelled_volumes = !spec.volume_labels.is_empty();
        if labelled_volumes {
            let mounts = spec.volumes.iter().map(|target| bollard::models::Mount {
                target: Some(target.clone()),
                typ: Some(bollard::models::MountType::VOLUME),
                volume_options: Some(bollard::models::MountVolumeOptions {
                    labels: Some(spec.volume_labels.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            });
            host.mounts.get_or_insert_with(Vec::new).extend(mounts);
        }
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            hostname: spec.hostname.clone(),
            labels: (!spec.labels.is_empty()).then(|| spec.labels.clone()),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            volumes: (!spec.volumes.is_empty() && !labelled_volumes).then(|| spec.volumes.clone()),
            stop_signal: spec.stop_signal.clone(),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            host_config: Some(host),
            networking_config: fixed_address(spec),
            ..Default::default()
        };
        let opts = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        self.client
            .create_container(Some(opts), body)
            .await
            .map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    ref message,
                } if message.contains("already in use") => ProviderError::NameInUse {
                    name: spec.name.clone(),
                },
                e => api(format!(
                    "create container {} from {}",
                    spec.name, spec.image
                ))(e),
            })?;
        if let Err(e) = self.client.start_container(&spec.name, None).await {
            // Leave nothing half-created behind.
            let _ = self.remove_container(&spec.name).await;
            return Err(api(format!("start container {}", spec.name))(e));
        }
        Ok(())
    }

    /// The networks matching one of Docker's list filters (`name`, `label`, ...).
    async fn networks_where(
        &self,
        filter: &str,
        value: &str,
    ) -> Result<Vec<bollard::models::Network>, ProviderError> {
        let opts = bollard::query_parameters::ListNetworksOptions {
            filters: Some(HashMap::from([(
                filter.to_string(),
                vec![value.to_string()],
            )])),
        };
        self.client
            .list_networks(Some(opts))
            .await
            .map_err(api("list networks"))
    }

    /// IDs of the networks named exactly `name` (Docker's name filter matches substrings).
    pub(super) async fn networks_named(&self, name: &str) -> Result<Vec<String>, ProviderError> {
        Ok(self
            .networks_where("name", name)
            .await?
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .filter_map(|n| n.id)
            .collect())
    }

    async fn network_settings(
        &self,
        name: &str,
    ) -> Result<Option<bollard::models::NetworkSettings>, ProviderError> {
        let c = self
            .client
            .inspect_container(name, None)
            .await
            .map_err(api(format!("inspect container {name}")))?;
        Ok(c.network_settings)
    }

    /// Exec with optional stdin, stdout into `sink`; returns the exit code and stderr.
    async fn exec_streaming(
        &self,
        container: &str,
        cmd: &[&str],
        input: Option<InputStream>,
        sink: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
    ) -> Result<(i64, String), ProviderError> {
        use tokio::io::AsyncWriteExt;
        let action = || format!("run `{}` in {container}", cmd.join(" "));
        let exec = self
            .client
            .create_exec(
                container,
                CreateExecOptions {
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                    attach_stdin: Some(input.is_some()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(api(action()))?;
        let StartExecResults::Attached {
            mut output,
            input: mut stdin,
        } = self
            .client
            .start_exec(&exec.id, None)
            .await
            .map_err(api(action()))?
        else {
            return Err(ProviderError::Other(format!("{}: not attached", action())));
        };
        let writer = async move {
            let Some(mut input) = input else {
                return Ok(());
            };
            let mut result = Ok(());
            while let Some(chunk) = input.next().await {
                match chunk {
                    Ok(chunk) => {
                        if let Err(e) = stdin.write_all(&chunk).await {
                            result = Err(e);
                            break;
                        }
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            // Half-close: the command reads EOF (or a truncated stream after an error).
            let closed = stdin.shutdown().await;
            result.and(closed)
        };
        let mut stderr = Vec::new();
        let reader = async {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(api(action()))? {
                    LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    other => sink
                        .write_all(&other.into_bytes())
                        .await
                        .map_err(|source| ProviderError::Io {
                            path: format!("output of {}", action()),
                            source,
                        })?,
                }
            }
            Ok::<(), ProviderError>(())
        };
        let mut writer = Box::pin(writer);
        let mut reader = Box::pin(reader);
        let mut written: Option<std::io::Result<()>> = None;
        let read = loop {
            tokio::select! {
                r = &mut reader => break r,
                w = &mut writer, if written.is_none() => written = Some(w),
            }
        };
        read?;
        drop(reader);
        if written.is_none() {
            // The command is done; its stdin is closed already or will never be read.
            written = tokio::time::timeout(std::time::Duration::from_secs(2), writer)
                .await
                .ok();
        }
        let info = self
            .client
            .inspect_exec(&exec.id)
            .await
            .map_err(api(action()))?;
        let code = info.exit_code.unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        match written {
            Some(Err(e)) if code == 0 => Err(ProviderError::Other(format!(
                "{}: feeding its input failed: {e}",
                action()
            ))),
            // A failing command closing its stdin early explains itself through its stderr.
            _ => Ok((code, stderr)),
        }
    }

    /// The MTU of Docker's default `bridge` network when it is set (dockerd --mtu).
    pub async fn bridge_mtu(&self) -> Option<u32> {
        let net = self.client().inspect_network("bridge", None).await.ok()?;
        net.options?.get(MTU_OPTION)?.parse().ok()
    }
}

#[async_trait]
impl Provider for Docker {
    fn api_socket(&self) -> Option<String> {
        socket_path(std::env::var("DOCKER_HOST").ok().as_deref())
    }

    async fn image_exists(&self, name: &str) -> Result<bool, ProviderError> {
        match self.client.inspect_image(name).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(format!("inspect image {name}"))(e)),
        }
    }

    async fn image_labels(&self, name: &str) -> Result<HashMap<String, String>, ProviderError> {
        let img = self
            .client
            .inspect_image(name)
            .await
            .map_err(api(format!("inspect image {name}")))?;
        Ok(img.config.and_then(|c| c.labels).unwrap_or_default())
    }

    async fn load_archive(&self, path: &Path) -> Result<(), ProviderError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|source| ProviderError::Io {
                path: path.display().to_string(),
                source,
            })?;
        let body = file_stream(file);
        let mut progress = self.client.import_image(
            ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            bollard::body_try_stream(body),
            None,
        );
        while let Some(msg) = progress.next().await {
            msg.map_err(api(format!("load image archive {}", path.display())))?;
        }
        Ok(())
    }

    async fn remove_image(&self, name: &str) -> Result<(), ProviderError> {
        match self
            .client
            .remove_image(
                name,
                Some(RemoveImageOptions {
                    force: true,
                    ..Default::default()
                }),
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("remove image {name}"))(e)),
        }
    }

    async fn run(&self, spec: &ContainerSpec) -> Result<Option<NodeSecurity>, ProviderError> {
        let started = self.run_with_fallback(spec).await;
        if spec.security.is_some() {
            return started.map_err(explain_device_refusal);
        }
        started
    }

    async fn wait(&self, name: &str) -> Result<i64, ProviderError> {
        let mut stream = self
            .client
            .wait_container(name, None::<WaitContainerOptions>);
        match stream.next().await {
            Some(Ok(resp)) => Ok(resp.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(api(format!("wait for container {name}"))(e)),
            None => Err(ProviderError::Other(format!(
                "container {name} vanished while waiting for it"
            ))),
        }
    }

    async fn logs(&self, name: &str) -> Result<String, ProviderError> {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: "all".into(),
            ..Default::default()
        };
        let chunks: Vec<LogOutput> = self
            .client
            .logs(name, Some(opts))
            .try_collect()
            .await
            .map_err(api(format!("read logs of {name}")))?;
        Ok(chunks
            .iter()
            .map(|c| String::from_utf8_lossy(&c.clone().into_bytes()).into_owned())
            .collect())
    }

    async fn stop_container(&self, name: &str, timeout_secs: i32) -> Result<(), ProviderError> {
        let opts = bollard::query_parameters::StopContainerOptions {
            t: Some(timeout_secs),
            ..Default::default()
        };
        let mut result = self.client.stop_container(name, Some(opts.clone())).await;
        if let Err(e) = &result {
            if is_stuck_exit(e) {
                self.thaw_stuck(name, e).await?;
                result = self.client.stop_container(name, Some(opts)).await;
            }
        }
        match result {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(api(format!("stop container {name}"))(e)),
        }
    }

    async fn start_container(&self, name: &str) -> Result<(), ProviderError> {
        match self.client.start_container(name, None).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(api(format!("start container {name}"))(e)),
        }
    }

    async fn remove_container(&self, name: &str) -> Result<(), ProviderError> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.client.remove_container(name, Some(opts.clone())).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) if is_stuck_exit(&e) => {
                self.thaw_stuck(name, &e).await?;
                match self.client.remove_container(name, Some(opts)).await {
                    Err(e) if !is_not_found(&e) => Err(api(format!("remove container {name}"))(e)),
                    _ => Ok(()),
                }
            }
            Err(e) => Err(api(format!("remove container {name}"))(e)),
        }
    }

    async fn ensure_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), ProviderError> {
        match self.client.inspect_volume(name).await {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(api(format!("inspect volume {name}"))(e)),
        }
        let request = bollard::models::VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        };
        self.client
            .create_volume(request)
            .await
            .map_err(api(format!("create volume {name}")))?;
        Ok(())
    }

    async fn volumes_labelled(&self, label: &str) -> Result<Vec<String>, ProviderError> {
        let opts = bollard::query_parameters::ListVolumesOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![label.to_string()],
            )])),
        };
        let list = self
            .client
            .list_volumes(Some(opts))
            .await
            .map_err(api("list volumes"))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    async fn volume_labels(
        &self,
        name: &str,
    ) -> Result<Option<HashMap<String, String>>, ProviderError> {
        match self.client.inspect_volume(name).await {
            Ok(v) => Ok(Some(v.labels)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspect volume {name}"))(e)),
        }
    }

    async fn remove_volume(&self, name: &str) -> Result<(), ProviderError> {
        match self
            .client
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("remove volume {name}"))(e)),
        }
    }

    async fn exec(&self, container: &str, cmd: &[&str]) -> Result<ExecOutput, ProviderError> {
        let action = || format!("run `{}` in {container}", cmd.join(" "));
        let exec = self
            .client
            .create_exec(
                container,
                CreateExecOptions {
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(api(action()))?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        if let StartExecResults::Attached { mut output, .. } = self
            .client
            .start_exec(&exec.id, None)
            .await
            .map_err(api(action()))?
        {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(api(action()))? {
                    LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    other => stdout.extend_from_slice(&other.into_bytes()),
                }
            }
        }
        let info = self
            .client
            .inspect_exec(&exec.id)
            .await
            .map_err(api(action()))?;
        Ok(ExecOutput {
            code: info.exit_code.unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    async fn read_image_file(&self, image: &str, path: &str) -> Result<Vec<u8>, ProviderError> {
        // The process ID alone would clash when one process reads two images at once.
        static READS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("kindred-read-{}-{n}", std::process::id());
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["/bin/true".into()]),
            ..Default::default()
        };
        let opts = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        self.client
            .create_container(Some(opts), body)
            .await
            .map_err(api(format!("create a container from {image}")))?;
        let result = self.read_container_file(&name, path).await;
        self.remove_container(&name).await?;
        result
    }

    async fn read_container_file(
        &self,
        container: &str,
        path: &str,
    ) -> Result<Vec<u8>, ProviderError> {
        let opts = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let tar_bytes: Vec<u8> = self
            .client
            .download_from_container(container, Some(opts))
            .map_ok(|b| b.to_vec())
            .try_concat()
            .await
            .map_err(api(format!("copy {path} out of {container}")))?;
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let io = |source| ProviderError::Io {
            path: path.to_string(),
            source,
        };
        let mut entries = archive.entries().map_err(io)?;
        match entries.next() {
            Some(entry) => {
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut entry.map_err(io)?, &mut data).map_err(io)?;
                Ok(data)
            }
            None => Err(ProviderError::Other(format!(
                "{path} is empty in {container}"
            ))),
        }
    }

    async fn cgroup_version(&self) -> Result<String, ProviderError> {
        let info = self.client.info().await.map_err(api("read daemon info"))?;
        Ok(info
            .cgroup_version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "1".into()))
    }

    async fn remove_network_if_unused(&self, name: &str) -> Result<bool, ProviderError> {
        let mut removed = false;
        for id in self.networks_named(name).await? {
            let net = match self.client.inspect_network(&id, None).await {
                Ok(n) => n,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(api(format!("inspect network {name}"))(e)),
            };
            if net.containers.map(|c| !c.is_empty()).unwrap_or(false) {
                continue;
            }
            // The network's own list holds running containers only: a stopped cluster (or a
            // create between its container create and start) would lose its network, and
            // could never start again ("network ... not found").
            if !self.containers_on_network(name, &id).await?.is_empty() {
                continue;
            }
            // Docker 20.10 may still count the endpoints of containers removed a moment ago,
            // and another create may attach one meanwhile: retry briefly, then leave the
            // network for the next delete rather than fail this one.
            for attempt in 1..=10 {
                match self.client.remove_network(&id).await {
                    Ok(()) => removed = true,
                    Err(e) if is_not_found(&e) => {}
                    Err(e) if e.to_string().contains("active endpoints") => {
                        if attempt < 10 {
                            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                            continue;
                        }
                        tracing::debug!("network {name} still has endpoints; kept");
                    }
                    Err(e) => return Err(api(format!("remove network {name}"))(e)),
                }
                break;
            }
        }
        Ok(removed)
    }

    async fn containers_on_network(
        &self,
        name: &str,
        id: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let opts = bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "network".to_string(),
                vec![name.to_string(), id.to_string()],
            )])),
            ..Default::default()
        };
        let list = self
            .client
            .list_containers(Some(opts))
            .await
            .map_err(api("list containers"))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                c.names?
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
            })
            .collect())
    }

    async fn container_names(&self) -> Result<Vec<String>, ProviderError> {
        let opts = bollard::query_parameters::ListContainersOptions {
            all: true,
            ..Default::default()
        };
        let list = self
            .client
            .list_containers(Some(opts))
            .await
            .map_err(api("list containers"))?;
        Ok(list
            .into_iter()
            .flat_map(|c| c.names.unwrap_or_default())
            .map(|n| n.trim_start_matches('/').to_string())
            .collect())
    }

    async fn container(&self, name: &str) -> Result<Option<ContainerInfo>, ProviderError> {
        let c = match self.client.inspect_container(name, None).await {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(api(format!("inspect container {name}"))(e)),
        };
        let config = c.config.unwrap_or_default();
        Ok(Some(container_info(
            &c.name.unwrap_or_else(|| name.to_string()),
            config.labels.unwrap_or_default(),
            c.state
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            config.image.unwrap_or_default(),
            c.network_settings
                .and_then(|n| n.networks)
                .unwrap_or_default(),
        )))
    }

    async fn network_subnets(&self, name: &str) -> Result<Vec<String>, ProviderError> {
        let inspected = self
            .client
            .inspect_network(name, None)
            .await
            .map_err(api(format!("inspect network {name}")))?;
        Ok(inspected
            .ipam
            .and_then(|ipam| ipam.config)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.subnet)
            .collect())
    }

    async fn probe_ipv6_network(&self) -> Result<(), ProviderError> {
        // Labelled, so a probe network left by a kindred that died between create and remove
        // is found and removed by the next probe (no container ever joins one).
        let stale = self
            .networks_where("label", "io.kindred.probe=ipv6")
            .await?;
        for net in stale.into_iter().filter_map(|n| n.id) {
            let _ = self.client.remove_network(&net).await;
        }
        let name = format!("kindred-ipv6-probe-{}", std::process::id());
        let request = bollard::models::NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            enable_ipv6: Some(true),
            labels: Some(HashMap::from([(
                "io.kindred.probe".to_string(),
                "ipv6".to_string(),
            )])),
            ipam: Some(bollard::models::Ipam {
                config: Some(vec![bollard::models::IpamConfig {
                    subnet: Some("fd00:6b69:6e64::/64".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.client
            .create_network(request)
            .await
            .map_err(api("create an IPv6 network"))?;
        let _ = self.client.remove_network(&name).await;
        Ok(())
    }

    async fn list_by_labels(&self, labels: &[String]) -> Result<Vec<ContainerInfo>, ProviderError> {
        let opts = bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), labels.to_vec())])),
            ..Default::default()
        };
        let list = self
            .client
            .list_containers(Some(opts))
            .await
            .map_err(api("list containers"))?;
        let mut out: Vec<ContainerInfo> = list
            .into_iter()
            .map(|c| {
                let name = c
                    .names
                    .unwrap_or_default()
                    .first()
                    .cloned()
                    .unwrap_or_default();
                container_info(
                    &name,
                    c.labels.unwrap_or_default(),
                    c.state.map(|s| s.to_string()).unwrap_or_default(),
                    c.image.unwrap_or_default(),
                    c.network_settings
                        .and_then(|n| n.networks)
                        .unwrap_or_default(),
                )
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn container_ip(&self, name: &str, network: &str) -> Result<String, ProviderError> {
        self.network_settings(name)
            .await?
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty())
            .ok_or_else(|| {
                ProviderError::Other(format!(
                    "container {name} has no address on network {network}"
                ))
            })
    }

    async fn container_ipv6(
        &self,
        name: &str,
        network: &str,
    ) -> Result<Option<String>, ProviderError> {
        Ok(self
            .network_settings(name)
            .await?
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.global_ipv6_address)
            .filter(|ip| !ip.is_empty()))
    }

    async fn published_address(
        &self,
        name: &str,
        container_port: &str,
    ) -> Result<std::net::SocketAddr, ProviderError> {
        self.network_settings(name)
            .await?
            .and_then(|n| n.ports)
            .and_then(|mut p| p.remove(container_port))
            .flatten()
            .and_then(|b| {
                b.into_iter().find_map(|b| {
                    let port: u16 = b.host_port?.parse().ok()?;
                    // An empty host address is every IPv4 address.
                    let ip = b.host_ip.filter(|ip| !ip.is_empty());
                    let ip = ip.as_deref().unwrap_or("0.0.0.0").parse().ok()?;
                    Some(std::net::SocketAddr::new(ip, port))
                })
            })
            .ok_or_else(|| {
                ProviderError::Other(format!("container {name} publishes no {container_port}"))
            })
    }

    async fn exec_with_input(
        &self,
        container: &str,
        cmd: &[&str],
        input: InputStream,
    ) -> Result<ExecOutput, ProviderError> {
        let mut stdout = Vec::new();
        let (code, stderr) = self
            .exec_streaming(container, cmd, Some(input), &mut stdout)
            .await?;
        Ok(ExecOutput {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr,
        })
    }

    async fn exec_to_file(
        &self,
        container: &str,
        cmd: &[&str],
        path: &Path,
    ) -> Result<ExecOutput, ProviderError> {
        let io = |source| ProviderError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = tokio::fs::File::create(path).await.map_err(io)?;
        let (code, stderr) = self.exec_streaming(container, cmd, None, &mut file).await?;
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(io)?;
        Ok(ExecOutput {
            code,
            stdout: String::new(),
            stderr,
        })
    }

    async fn image_id(&self, name: &str) -> Result<Option<String>, ProviderError> {
        match self.client.inspect_image(name).await {
            Ok(img) => Ok(img.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspect image {name}"))(e)),
        }
    }

    fn container_changes(&self, labels: &[String]) -> super::ChangeStream {
        let mut filters = HashMap::from([("type".to_string(), vec!["container".to_string()])]);
        filters.insert("label".to_string(), labels.to_vec());
        let opts = bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        self.client
            .events(Some(opts))
            .map(|event| event.map(|_| ()).map_err(api("follow container events")))
            .boxed()
    }

    fn export_images(&self, names: &[String]) -> InputStream {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let what = names.join(", ");
        self.client
            .export_images(&refs)
            .map_err(move |e| std::io::Error::other(format!("export {what} from Docker: {e}")))
            .boxed()
    }

    fn copy_out(&self, container: &str, path: &str) -> InputStream {
        let opts = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let what = format!("copy {path} out of {container}");
        self.client
            .download_from_container(container, Some(opts))
            .map_err(move |e| std::io::Error::other(format!("{what}: {e}")))
            .boxed()
    }

    async fn inspect_container_json(&self, name: &str) -> Result<serde_json::Value, ProviderError> {
        let c = self
            .client
            .inspect_container(name, None)
            .await
            .map_err(api(format!("inspect container {name}")))?;
        serde_json::to_value(c).map_err(|e| ProviderError::Other(e.to_string()))
    }

    async fn info_json(&self) -> Result<serde_json::Value, ProviderError> {
        let info = self.client.info().await.map_err(api("read daemon info"))?;
        serde_json::to_value(info).map_err(|e| ProviderError::Other(e.to_string()))
    }

    async fn podman_version(&self) -> Result<Option<String>, ProviderError> {
        let version = self
            .client
            .version()
            .await
            .map_err(api("read daemon version"))?;
        Ok(version
            .components
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.name == "Podman Engine")
            .map(|c| c.version))
    }

    async fn uses_containerd_image_store(&self) -> Result<bool, ProviderError> {
        let info = self.client.info().await.map_err(api("read daemon info"))?;
        Ok(info.driver_status.unwrap_or_default().iter().any(|pair| {
            pair.iter()
                .any(|v| v.starts_with("io.containerd.snapshotter"))
        }))
    }

    async fn ensure_network(
        &self,
        name: &str,
        labels: HashMap<String, String>,
        require_ipv6: bool,
    ) -> Result<NetworkAddressing, ProviderError> {
        if let Some(existing) = self.network_addressing(name).await? {
            // A network from an older kindred, without a dynamic pool (or without IPv6 when
            // that is asked for): replace it while no container uses it; otherwise the caller
            // works with what there is.
            let lacking = !existing.supports_fixed_addresses()
                || (require_ipv6 && existing.subnet_v6.is_none());
            if !lacking || !self.remove_network_if_unused(name).await? {
                return Ok(existing);
            }
        }
        let nets = self
            .client()
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .map_err(|e| ProviderError::Other(format!("list networks: {e}")))?;
        let mut taken: Vec<Cidr> = nets
            .iter()
            .flat_map(|n| n.ipam.iter().flat_map(|i| i.config.iter().flatten()))
            .filter_map(|c| c.subnet.as_deref()?.parse().ok())
            .collect();
        taken.extend(host_routes());
        taken.extend(host_routes_v6());
        let subnet = pick_subnet(&taken).ok_or_else(|| {
            ProviderError::Other(
                "no free private subnet for the kindred network (172.18-31.0.0/16 and \
                 192.168.0-255.0/20 are all used by other networks or routes)"
                    .into(),
            )
        })?;
        let mut addressing = NetworkAddressing::for_subnet(subnet);
        if require_ipv6 {
            addressing.subnet_v6 = Some(pick_subnet_v6(&taken).ok_or_else(|| {
                ProviderError::Other(
                    "no free IPv6 subnet for the kindred network (fc00:6b69:6e64:7265::/64 \
                     and the 15 after it are all used by other networks or routes)"
                        .into(),
                )
            })?);
        }
        // A daemon started with --mtu (nested in a network with a smaller MTU, e.g. a CI pod)
        // gives its default bridge that MTU; kindred's network must not exceed it either.
        let options = match self.bridge_mtu().await {
            Some(mtu) => {
                tracing::debug!(
                    "the default bridge network has MTU {mtu}: the {name} network uses it too"
                );
                HashMap::from([(MTU_OPTION.to_string(), mtu.to_string())])
            }
            None => HashMap::new(),
        };
        let request = |addressing: &NetworkAddressing| {
            let pools = [Some(addressing.subnet), addressing.subnet_v6]
                .into_iter()
                .flatten()
                .map(|subnet| bollard::models::IpamConfig {
                    subnet: Some(subnet.to_string()),
                    ip_range: Some(lower_half(&subnet).to_string()),
                    ..Default::default()
                });
            bollard::models::NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                enable_ipv6: Some(addressing.subnet_v6.is_some()),
                options: Some(options.clone()),
                labels: Some(labels.clone()),
                ipam: Some(bollard::models::Ipam {
                    config: Some(pools.collect()),
                    ..Default::default()
                }),
                ..Default::default()
            }
        };
        self.client()
            .create_network(request(&addressing))
            .await
            .map_err(|e| ProviderError::Other(format!("create network {name}: {e}")))?;
        Ok(addressing)
    }

    async fn network_addressing(
        &self,
        name: &str,
    ) -> Result<Option<NetworkAddressing>, ProviderError> {
        let Some(id) = self.networks_named(name).await?.into_iter().next() else {
            return Ok(None);
        };
        let net = self
            .client()
            .inspect_network(&id, None)
            .await
            .map_err(|e| ProviderError::Other(format!("inspect network {name}: {e}")))?;
        let config = net.ipam.and_then(|i| i.config).unwrap_or_default();
        let pools: Vec<(Cidr, Option<Cidr>)> = config
            .iter()
            .filter_map(|c| {
                let subnet: Cidr = c.subnet.as_deref()?.parse().ok()?;
                Some((subnet, c.ip_range.as_deref().and_then(|r| r.parse().ok())))
            })
            .collect();
        // IPv6 counts only with Docker's pool in the lower half, where derived node
        // addresses cannot collide with it.
        let subnet_v6 = pools
            .iter()
            .find(|(s, range)| !s.is_ipv4() && *range == Some(lower_half(s)))
            .filter(|_| net.enable_ipv6 == Some(true))
            .map(|(s, _)| *s);
        let v4 = pools
            .iter()
            .find(|(s, _)| s.is_ipv4())
            .map(|&(subnet, ip_range)| NetworkAddressing {
                subnet,
                ip_range,
                subnet_v6,
            });
        Ok(v4)
    }

    async fn used_addresses(&self, name: &str) -> Result<BTreeSet<Ipv4Addr>, ProviderError> {
        let opts = bollard::query_parameters::ListContainersOptions {
            all: true,
            ..Default::default()
        };
        let containers = self
            .client()
            .list_containers(Some(opts))
            .await
            .map_err(|e| ProviderError::Other(format!("list containers: {e}")))?;
        let mut used = BTreeSet::new();
        for c in containers {
            let Some(endpoint) = c
                .network_settings
                .and_then(|s| s.networks)
                .and_then(|mut n| n.remove(name))
            else {
                continue;
            };
            let pool = c.labels.as_ref().and_then(|l| l.get(LB_POOL_LABEL));
            if let Some(block) = pool.and_then(|p| p.parse::<Cidr>().ok()) {
                used.extend(block_addresses(&block));
            }
            let fixed = endpoint.ipam_config.and_then(|i| i.ipv4_address);
            for addr in [fixed, endpoint.ip_address].into_iter().flatten() {
                if let Ok(ip) = addr.parse() {
                    used.insert(ip);
                }
            }
        }
        Ok(used)
    }
}

/// A container's listing from what Docker reports of it (list or inspect).
fn container_info(
    name: &str,
    labels: HashMap<String, String>,
    state: String,
    image: String,
    networks: HashMap<String, bollard::models::EndpointSettings>,
) -> ContainerInfo {
    let mut info = ContainerInfo {
        name: name.trim_start_matches('/').to_string(),
        labels,
        state,
        image,
        ips: HashMap::new(),
        fixed_ips: HashMap::new(),
    };
    for (network, endpoint) in networks {
        if let Some(ip) = endpoint.ip_address.filter(|ip| !ip.is_empty()) {
            info.ips.insert(network.clone(), ip);
        }
        let fixed = endpoint.ipam_config.and_then(|i| i.ipv4_address);
        if let Some(ip) = fixed.filter(|ip| !ip.is_empty()) {
            info.fixed_ips.insert(network, ip);
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_unix_socket_can_be_given_to_a_container() {
        assert_eq!(socket_path(None).as_deref(), Some("/var/run/docker.sock"));
        assert_eq!(
            socket_path(Some("")).as_deref(),
            Some("/var/run/docker.sock")
        );
        assert_eq!(
            socket_path(Some("unix:///run/user/1000/docker.sock")).as_deref(),
            Some("/run/user/1000/docker.sock")
        );
        assert_eq!(socket_path(Some("tcp://127.0.0.1:2375")), None);
        assert_eq!(socket_path(Some("ssh://me@host")), None);
    }

    #[test]
    fn a_refused_device_rule_is_explained_with_the_fix() {
        let runc = r#"Docker refused to start container x: failed to write "a *:* rwm": write /sys/fs/cgroup/devices/kubepods.slice/p/docker/c/devices.allow: operation not permitted: unknown"#;
        let explained = explain_device_refusal(ProviderError::Other(runc.into())).to_string();
        assert!(explained.starts_with(runc), "{explained}");
        assert!(explained.contains("privileged: true"), "{explained}");
        assert!(explained.contains("a *:* rwm"), "{explained}");
        let other = explain_device_refusal(ProviderError::Other("No such image".into()));
        assert_eq!(other.to_string(), "No such image");
    }
}
