//! An in-memory [`Provider`] for unit tests: containers, volumes and one network as plain
//! records, commands that succeed with scripted output, and failures injected by name, so
//! create's ordering and cleanup can be tested without a daemon.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    ContainerInfo, ContainerSpec, ExecOutput, InputStream, NetworkAddressing, NodeSecurity,
    Provider, ProviderError,
};

#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub labels: HashMap<String, String>,
    pub image: String,
    pub running: bool,
}

#[derive(Default)]
struct State {
    containers: HashMap<String, FakeContainer>,
    /// Volume name -> labels.
    volumes: HashMap<String, HashMap<String, String>>,
    /// Every command run, as `container: cmd`.
    commands: Vec<String>,
    next_volume: usize,
    /// How many more `info_json` calls fail as if the daemon were down.
    down_for: usize,
}

/// See the module comment. `fail_run` makes creating that container fail; `fail_exec` makes
/// every command containing that text exit 1.
#[derive(Default)]
pub struct FakeProvider {
    state: Mutex<State>,
    fail_run: Option<String>,
    fail_exec: Option<String>,
    /// `(text, stdout)`: a command containing `text` prints `stdout`.
    outputs: Vec<(String, String)>,
}

fn matches(labels: &HashMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
        None => labels.contains_key(filter),
    }
}

impl FakeProvider {
    pub fn failing_run(mut self, container: &str) -> Self {
        self.fail_run = Some(container.to_string());
        self
    }

    pub fn failing_exec(mut self, text: &str) -> Self {
        self.fail_exec = Some(text.to_string());
        self
    }

    pub fn output(mut self, text: &str, stdout: &str) -> Self {
        self.outputs.push((text.to_string(), stdout.to_string()));
        self
    }

    /// The daemon does not answer the next `calls` calls of `info_json` (a restarting daemon).
    pub fn down_for(self, calls: usize) -> Self {
        self.state.lock().unwrap().down_for = calls;
        self
    }

    /// A container made outside the code under test (another cluster, say).
    pub fn add_container(&self, name: &str, labels: &[(&str, &str)]) {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.state.lock().unwrap().containers.insert(
            name.to_string(),
            FakeContainer {
                labels,
                image: "kindred/node:test".into(),
                running: true,
            },
        );
    }

    pub fn container_names_sorted(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .state
            .lock()
            .unwrap()
            .containers
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    pub fn volume_count(&self) -> usize {
        self.state.lock().unwrap().volumes.len()
    }

    pub fn commands(&self) -> Vec<String> {
        self.state.lock().unwrap().commands.clone()
    }

    fn missing(name: &str) -> ProviderError {
        ProviderError::Other(format!("no such container: {name}"))
    }
}

#[async_trait]
impl Provider for FakeProvider {
    fn api_socket(&self) -> Option<String> {
        None
    }

    async fn cgroup_version(&self) -> Result<String, ProviderError> {
        Ok("2".into())
    }

    async fn info_json(&self) -> Result<serde_json::Value, ProviderError> {
        let mut state = self.state.lock().unwrap();
        if state.down_for > 0 {
            state.down_for -= 1;
            return Err(ProviderError::Other("connection refused".into()));
        }
        Ok(serde_json::json!({ "MemTotal": 64u64 << 30, "NCPU": 8 }))
    }

    async fn podman_version(&self) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }

    async fn uses_containerd_image_store(&self) -> Result<bool, ProviderError> {
        Ok(false)
    }

    async fn image_exists(&self, _name: &str) -> Result<bool, ProviderError> {
        Ok(true)
    }

    async fn image_id(&self, name: &str) -> Result<Option<String>, ProviderError> {
        Ok(Some(format!("sha256:{name}")))
    }

    async fn image_labels(&self, _name: &str) -> Result<HashMap<String, String>, ProviderError> {
        Ok(HashMap::from([(
            "io.kindred.kubernetes-version".to_string(),
            "v1.34.12".to_string(),
        )]))
    }

    async fn read_image_file(&self, _image: &str, _path: &str) -> Result<Vec<u8>, ProviderError> {
        Ok(b"v1.34.12\n".to_vec())
    }

    async fn load_archive(&self, _path: &Path) -> Result<(), ProviderError> {
        Ok(())
    }

    fn container_changes(&self, _labels: &[String]) -> super::ChangeStream {
        Box::pin(futures_util::stream::pending())
    }

    fn export_images(&self, _names: &[String]) -> InputStream {
        Box::pin(futures_util::stream::empty())
    }

    async fn remove_image(&self, _name: &str) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn run(&self, spec: &ContainerSpec) -> Result<Option<NodeSecurity>, ProviderError> {
        if self.fail_run.as_deref() == Some(spec.name.as_str()) {
            return Err(ProviderError::Other(format!(
                "injected failure creating {}",
                spec.name
            )));
        }
        let mut state = self.state.lock().unwrap();
        if state.containers.contains_key(&spec.name) {
            return Err(ProviderError::NameInUse {
                name: spec.name.clone(),
            });
        }
        for _ in &spec.volumes {
            state.next_volume += 1;
            let name = format!("anonymous-{}", state.next_volume);
            state.volumes.insert(name, spec.volume_labels.clone());
        }
        state.containers.insert(
            spec.name.clone(),
            FakeContainer {
                labels: spec.labels.clone(),
                image: spec.image.clone(),
                running: true,
            },
        );
        Ok(spec.security)
    }

    async fn start_container(&self, name: &str) -> Result<(), ProviderError> {
        let mut state = self.state.lock().unwrap();
        let c = state
            .containers
            .get_mut(name)
            .ok_or_else(|| Self::missing(name))?;
        c.running = true;
        Ok(())
    }

    async fn stop_container(&self, name: &str, _timeout_secs: i32) -> Result<(), ProviderError> {
        let mut state = self.state.lock().unwrap();
        let c = state
            .containers
            .get_mut(name)
            .ok_or_else(|| Self::missing(name))?;
        c.running = false;
        Ok(())
    }

    async fn wait(&self, _name: &str) -> Result<i64, ProviderError> {
        Ok(0)
    }

    async fn remove_container(&self, name: &str) -> Result<(), ProviderError> {
        self.state.lock().unwrap().containers.remove(name);
        Ok(())
    }

    async fn list_by_labels(&self, labels: &[String]) -> Result<Vec<ContainerInfo>, ProviderError> {
        let state = self.state.lock().unwrap();
        let mut out: Vec<ContainerInfo> = state
            .containers
            .iter()
            .filter(|(_, c)| labels.iter().all(|l| matches(&c.labels, l)))
            .map(|(name, c)| info(name, c))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn container_names(&self) -> Result<Vec<String>, ProviderError> {
        Ok(self.container_names_sorted())
    }

    async fn inspect_container_json(&self, name: &str) -> Result<serde_json::Value, ProviderError> {
        Ok(serde_json::json!({ "Name": format!("/{name}") }))
    }

    async fn container_ip(&self, _name: &str, _network: &str) -> Result<String, ProviderError> {
        Ok("172.30.128.2".into())
    }

    async fn container_ipv6(
        &self,
        _name: &str,
        _network: &str,
    ) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }

    async fn published_address(
        &self,
        _name: &str,
        _container_port: &str,
    ) -> Result<std::net::SocketAddr, ProviderError> {
        Ok(([127, 0, 0, 1], 40000).into())
    }

    async fn logs(&self, _name: &str) -> Result<String, ProviderError> {
        Ok(String::new())
    }

    async fn container(&self, name: &str) -> Result<Option<ContainerInfo>, ProviderError> {
        let state = self.state.lock().unwrap();
        Ok(state.containers.get(name).map(|c| info(name, c)))
    }

    async fn exec(&self, container: &str, cmd: &[&str]) -> Result<ExecOutput, ProviderError> {
        let line = cmd.join(" ");
        self.state
            .lock()
            .unwrap()
            .commands
            .push(format!("{container}: {line}"));
        if self
            .fail_exec
            .as_ref()
            .is_some_and(|f| line.contains(f.as_str()))
        {
            return Ok(ExecOutput {
                code: 1,
                stdout: String::new(),
                stderr: format!("injected failure: {line}"),
            });
        }
        let stdout = self
            .outputs
            .iter()
            .find(|(text, _)| line.contains(text.as_str()))
            .map(|(_, out)| out.clone())
            .unwrap_or_default();
        Ok(ExecOutput {
            code: 0,
            stdout,
            stderr: String::new(),
        })
    }

    async fn exec_with_input(
        &self,
        container: &str,
        cmd: &[&str],
        _input: InputStream,
    ) -> Result<ExecOutput, ProviderError> {
        self.exec(container, cmd).await
    }

    async fn exec_to_file(
        &self,
        container: &str,
        cmd: &[&str],
        _path: &Path,
    ) -> Result<ExecOutput, ProviderError> {
        self.exec(container, cmd).await
    }

    async fn read_container_file(
        &self,
        container: &str,
        path: &str,
    ) -> Result<Vec<u8>, ProviderError> {
        let out = self.exec(container, &["cat", path]).await?;
        Ok(out.stdout.into_bytes())
    }

    fn copy_out(&self, _container: &str, _path: &str) -> InputStream {
        Box::pin(futures_util::stream::empty())
    }

    async fn ensure_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), ProviderError> {
        let mut state = self.state.lock().unwrap();
        state.volumes.entry(name.to_string()).or_insert(labels);
        Ok(())
    }

    async fn volumes_labelled(&self, label: &str) -> Result<Vec<String>, ProviderError> {
        let state = self.state.lock().unwrap();
        let mut names: Vec<String> = state
            .volumes
            .iter()
            .filter(|(_, labels)| matches(labels, label))
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    async fn volume_labels(
        &self,
        name: &str,
    ) -> Result<Option<HashMap<String, String>>, ProviderError> {
        Ok(self.state.lock().unwrap().volumes.get(name).cloned())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), ProviderError> {
        self.state.lock().unwrap().volumes.remove(name);
        Ok(())
    }

    async fn ensure_network(
        &self,
        _name: &str,
        _labels: HashMap<String, String>,
        _require_ipv6: bool,
    ) -> Result<NetworkAddressing, ProviderError> {
        Ok(NetworkAddressing::for_subnet(
            "172.30.0.0/16".parse().expect("valid subnet"),
        ))
    }

    async fn network_addressing(
        &self,
        _name: &str,
    ) -> Result<Option<NetworkAddressing>, ProviderError> {
        Ok(Some(NetworkAddressing::for_subnet(
            "172.30.0.0/16".parse().expect("valid subnet"),
        )))
    }

    async fn used_addresses(&self, _name: &str) -> Result<BTreeSet<Ipv4Addr>, ProviderError> {
        Ok(BTreeSet::new())
    }

    async fn containers_on_network(
        &self,
        _name: &str,
        _id: &str,
    ) -> Result<Vec<String>, ProviderError> {
        Ok(self.container_names_sorted())
    }

    async fn remove_network_if_unused(&self, _name: &str) -> Result<bool, ProviderError> {
        Ok(self.state.lock().unwrap().containers.is_empty())
    }

    async fn network_subnets(&self, _name: &str) -> Result<Vec<String>, ProviderError> {
        Ok(vec!["172.30.0.0/16".into()])
    }

    async fn probe_ipv6_network(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

fn info(name: &str, c: &FakeContainer) -> ContainerInfo {
    ContainerInfo {
        name: name.to_string(),
        labels: c.labels.clone(),
        state: if c.running { "running" } else { "exited" }.into(),
        image: c.image.clone(),
        ips: HashMap::new(),
        fixed_ips: HashMap::new(),
    }
}
