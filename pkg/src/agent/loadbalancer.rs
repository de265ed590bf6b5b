//! The API server load balancer of clusters with several control planes: a TCP proxy that runs
//! in its own container on the cluster's Docker network, in front of every control plane's
//! kube-apiserver. Kubeconfigs and kubeadm's controlPlaneEndpoint name it.
//!
//! It relays bytes and never looks at them: TLS stays end to end between clients and API
//! servers, so the balancer needs no certificate and the API servers see client certificates
//! unchanged. Each connection goes to the next backend, round-robin, among those passing health
//! checks. The backends come from a file (one `host:port` a line) that is re-read when it
//! changes, so control planes can be added or removed without restarting the balancer; writers
//! should replace it with a rename so it is never read half-written.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use super::AgentError;

/// Where the balancer listens unless told otherwise: the API server port, on every address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:6443";

/// Consecutive failed checks that take a healthy backend out of rotation: one lost check (a
/// busy host, a garbage-collection pause) should not.
const UNHEALTHY_AFTER: u32 = 2;

/// How a backend's liveness is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheck {
    /// A TLS handshake (certificate not verified: this is a liveness probe, not a client) and
    /// `GET /healthz` answered with 200, which kube-apiserver allows anonymously.
    Https,
    /// A TCP connect succeeds.
    Tcp,
}

#[derive(Debug, Clone)]
pub struct LoadBalancerConfig {
    pub listen: SocketAddr,
    /// One `host:port` a line; blank lines and `#` comments ignored; missing means empty.
    pub backends_file: PathBuf,
    pub health_check: HealthCheck,
    /// How often each backend is checked.
    pub check_interval: Duration,
    /// How long one check may take before it counts as failed.
    pub check_timeout: Duration,
    /// How long a proxied connection waits for a backend to accept before trying the next.
    pub connect_timeout: Duration,
    /// How often the backends file is re-read.
    pub reload_interval: Duration,
}

impl LoadBalancerConfig {
    /// The settings `kindred agent loadbalancer` runs with.
    pub fn new(listen: SocketAddr, backends_file: impl Into<PathBuf>, health: HealthCheck) -> Self {
        LoadBalancerConfig {
            listen,
            backends_file: backends_file.into(),
            health_check: health,
            check_interval: Duration::from_secs(2),
            check_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(3),
            reload_interval: Duration::from_secs(1),
        }
    }
}

pub struct LoadBalancer {
    shared: Arc<Shared>,
}

impl LoadBalancer {
    pub fn new(config: LoadBalancerConfig) -> Result<Self, AgentError> {
        Ok(LoadBalancer {
            shared: Arc::new(Shared {
                tls: health_check_tls()?,
                pool: Mutex::new(Pool::default()),
                config,
            }),
        })
    }

    /// Listens on the configured address and serves until SIGTERM or SIGINT.
    pub async fn run(self) -> Result<(), AgentError> {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = self.shared.config.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| AgentError::Msg(format!("cannot listen on {listen}: {e}")))?;
        // As PID 1 of its container the default action of SIGTERM is to ignore it, and
        // `docker stop` would wait for its timeout.
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| AgentError::Msg(format!("cannot handle SIGTERM: {e}")))?;
        tokio::select! {
            never = self.serve(listener) => match never {},
            _ = term.recv() => tracing::info!("SIGTERM: exiting"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: exiting"),
        }
        Ok(())
    }

    /// Serves connections from `listener` (already bound, so tests can use port 0), follows the
    /// backends file and checks the backends, forever.
    pub async fn serve(self, listener: TcpListener) -> Infallible {
        let shared = self.shared;
        // Read the file before accepting, so the first connections have backends.
        let mut seen = None;
        shared.reload(&mut seen).await;
        tracing::info!(
            "load balancer listening on {} ({:?} health checks)",
            listener.local_addr().map_or(shared.config.listen, |a| a),
            shared.config.health_check
        );
        tokio::select! {
            never = shared.accept_loop(listener) => never,
            never = shared.reload_loop(seen) => never,
            never = shared.health_loop() => never,
        }
    }
}

/// What the accept, reload and health loops and every proxied connection share.
struct Shared {
    config: LoadBalancerConfig,
    pool: Mutex<Pool>,
    tls: TlsConnector,
}

impl Shared {
    /// The lock is never held across an await; a panic while holding it (a bug) must not stop
    /// the balancer, so a poisoned lock is used as is.
    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn accept_loop(self: &Arc<Self>, listener: TcpListener) -> Infallible {
        loop {
            match listener.accept().await {
                Ok((client, peer)) => {
                    tokio::spawn(self.clone().proxy(client, peer));
                }
                Err(e) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Relays one client connection to the first backend that accepts it, in [`Pool::order`].
    async fn proxy(self: Arc<Self>, mut client: TcpStream, peer: SocketAddr) {
        let order = self.pool().order();
        if order.is_empty() {
            tracing::warn!(
                "closing connection from {peer}: no backends in {}",
                self.config.backends_file.display()
            );
            return;
        }
        let timeout = self.config.connect_timeout;
        for addr in &order {
            // Resolved on each connect: backends are container names on Docker's DNS, and a
            // recreated container may come back with another address.
            let mut upstream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(upstream)) => upstream,
                Ok(Err(e)) => {
                    tracing::warn!("{peer}: cannot connect to backend {addr}: {e}");
                    continue;
                }
                Err(_) => {
                    tracing::warn!("{peer}: backend {addr} did not accept within {timeout:?}");
                    continue;
                }
            };
            tracing::debug!("{peer} -> {addr}");
            // A relay must not add Nagle delays to the endpoints' small writes (handshakes,
            // watch events); the endpoints decide their own batching.
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                Ok((up, down)) => {
                    tracing::debug!("{peer} -> {addr}: closed, {up} bytes up, {down} down")
                }
                Err(e) => tracing::debug!("{peer} -> {addr}: {e}"),
            }
            return;
        }
        tracing::warn!(
            "closing connection from {peer}: no backend accepted it (tried {})",
            order.join(", ")
        );
    }

    async fn reload_loop(&self, mut seen: Option<String>) -> Infallible {
        let mut tick = tokio::time::interval(self.config.reload_interval);
        loop {
            tick.tick().await;
            self.reload(&mut seen).await;
        }
    }

    /// Re-reads the backends file and, when its content differs from `seen`, replaces the
    /// backend list. Connections already open are independent tasks and are left alone.
    async fn reload(&self, seen: &mut Option<String>) {
        let file = &self.config.backends_file;
        let content = match tokio::fs::read_to_string(file).await {
            Ok(content) => content,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                tracing::warn!(
                    "cannot read {}: {e}; keeping the current backends",
                    file.display()
                );
                return;
            }
        };
        if seen.as_deref() == Some(content.as_str()) {
            return;
        }
        let (addrs, invalid) = parse_backends(&content);
        for line in invalid {
            tracing::warn!("{}: ignoring {line:?}: not host:port", file.display());
        }
        if addrs.is_empty() {
            tracing::warn!(
                "no backends ({} is missing or empty): connections will be closed",
                file.display()
            );
        } else {
            tracing::info!("backends from {}: {}", file.display(), addrs.join(", "));
        }
        self.pool().update(addrs);
        *seen = Some(content);
    }

    async fn health_loop(&self) -> Infallible {
        let mut tick = tokio::time::interval(self.config.check_interval);
        // A round that took long (timeouts) is followed by a full interval, not a burst.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let addrs: Vec<String> = self
                .pool()
                .backends
                .iter()
                .map(|b| b.addr.clone())
                .collect();
            let results = futures_util::future::join_all(addrs.iter().map(|a| self.check(a))).await;
            let mut pool = self.pool();
            for (addr, result) in addrs.iter().zip(results) {
                // Gone if a reload removed it during the round.
                let Some(backend) = pool.backends.iter_mut().find(|b| &b.addr == addr) else {
                    continue;
                };
                match (backend.record(result.is_ok()), result) {
                    (Some(Health::Healthy), _) => tracing::info!("backend {addr} is healthy"),
                    (Some(Health::Unhealthy), Err(e)) => {
                        tracing::info!("backend {addr} is unhealthy: {e}")
                    }
                    (_, Err(e)) => tracing::debug!("backend {addr}: check failed: {e}"),
                    _ => {}
                }
            }
        }
    }

    /// One health check of `addr`, bounded by the check timeout.
    async fn check(&self, addr: &str) -> Result<(), String> {
        let timeout = self.config.check_timeout;
        match tokio::time::timeout(timeout, self.probe(addr)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    async fn probe(&self, addr: &str) -> Result<(), String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if self.config.health_check == HealthCheck::Tcp {
            return Ok(());
        }
        let mut tls = self
            .tls
            .connect(server_name(addr), tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending GET /healthz: {e}"))?;
        tls.flush()
            .await
            .map_err(|e| format!("sending GET /healthz: {e}"))?;
        // Only the status line matters; read until it is complete.
        let mut response = Vec::new();
        let mut chunk = [0u8; 512];
        while !response.contains(&b'\n') && response.len() < 4096 {
            match tls.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => response.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("reading the /healthz response: {e}")),
            }
        }
        let text = String::from_utf8_lossy(&response);
        let status = text.lines().next().unwrap_or("").trim();
        match status.split_whitespace().collect::<Vec<_>>()[..] {
            [version, "200", ..] if version.starts_with("HTTP/") => Ok(()),
            _ if status.is_empty() => Err("closed without answering GET /healthz".into()),
            _ => Err(format!("GET /healthz: {status}")),
        }
    }
}

/// What health checks have shown of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// Not checked yet: in rotation, so a new balancer serves at once.
    Unknown,
    Healthy,
    Unhealthy,
}

#[derive(Debug)]
struct Backend {
    /// `host:port` as written in the file; also the backend's identity across reloads.
    addr: String,
    health: Health,
    /// Consecutive failed checks.
    failures: u32,
}

impl Backend {
    fn new(addr: String) -> Self {
        Backend {
            addr,
            health: Health::Unknown,
            failures: 0,
        }
    }

    /// Applies one check's outcome; returns the new state if it changed.
    fn record(&mut self, ok: bool) -> Option<Health> {
        let before = self.health;
        if ok {
            self.failures = 0;
            self.health = Health::Healthy;
        } else {
            self.failures += 1;
            // A backend never seen healthy (an API server still starting) leaves rotation at its
            // first failure; one that was healthy gets [`UNHEALTHY_AFTER`] tries.
            if before == Health::Unknown || self.failures >= UNHEALTHY_AFTER {
                self.health = Health::Unhealthy;
            }
        }
        (self.health != before).then_some(self.health)
    }
}

#[derive(Debug, Default)]
struct Pool {
    backends: Vec<Backend>,
    /// Round-robin position: counts connections.
    next: usize,
}

impl Pool {
    /// Replaces the backend list, keeping what checks learnt of backends that stay.
    fn update(&mut self, addrs: Vec<String>) {
        let mut old = std::mem::take(&mut self.backends);
        self.backends = addrs
            .into_iter()
            .map(|addr| match old.iter().position(|b| b.addr == addr) {
                Some(i) => old.swap_remove(i),
                None => Backend::new(addr),
            })
            .collect();
    }

    /// The backends one connection tries, in order: those not known to be unhealthy, starting
    /// at the round-robin position, then the unhealthy ones, also rotated. Checks are only a
    /// hint: when none passes (API servers restarting, checks timing out on a loaded host),
    /// trying them all beats refusing.
    fn order(&mut self) -> Vec<String> {
        let (mut up, mut down): (Vec<&Backend>, Vec<&Backend>) = self
            .backends
            .iter()
            .partition(|b| b.health != Health::Unhealthy);
        for list in [&mut up, &mut down] {
            if !list.is_empty() {
                let start = self.next % list.len();
                list.rotate_left(start);
            }
        }
        self.next = self.next.wrapping_add(1);
        up.iter().chain(&down).map(|b| b.addr.clone()).collect()
    }
}

/// The backends file: `host:port` lines, in order, without duplicates; blank lines and
/// comments (from `#` to the end of the line) skipped. Returns the backends and the lines
/// that are not `host:port`.
fn parse_backends(text: &str) -> (Vec<String>, Vec<String>) {
    let mut addrs: Vec<String> = Vec::new();
    let mut invalid = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if split_host_port(line).is_none() {
            invalid.push(line.to_string());
        } else if !addrs.iter().any(|a| a == line) {
            addrs.push(line.to_string());
        }
    }
    (addrs, invalid)
}

/// `host:port` or `[v6]:port` -> host (without brackets) and port.
fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?,
        None => host,
    };
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some((host, port))
}

/// The name the health check's TLS handshake uses (for SNI only: nothing is verified).
fn server_name(addr: &str) -> ServerName<'static> {
    let host = split_host_port(addr).map_or(addr, |(host, _)| host);
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::try_from("localhost").expect("a valid DNS name"))
}

/// TLS client settings for health checks: ring, as everywhere in kindred, and any certificate.
fn health_check_tls() -> Result<TlsConnector, AgentError> {
    let provider = Arc::new(ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| AgentError::Msg(format!("TLS settings for health checks: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Accepts any server certificate: a health check only asks whether the API server is up,
/// sends no credentials and trusts nothing it reads. Handshake signatures are still checked,
/// as the protocol requires.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::ServerConfig;
    use tokio_rustls::TlsAcceptor;

    use super::*;

    /// Short intervals so state changes show within a fraction of a second.
    fn fast(file: &Path, health: HealthCheck) -> LoadBalancerConfig {
        LoadBalancerConfig {
            check_interval: Duration::from_millis(100),
            check_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            reload_interval: Duration::from_millis(50),
            ..LoadBalancerConfig::new(([127, 0, 0, 1], 0).into(), file, health)
        }
    }

    /// Serves `config` on an ephemeral port; returns that address and the state to watch.
    async fn start(config: LoadBalancerConfig) -> (SocketAddr, Arc<Shared>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let lb = LoadBalancer::new(config).unwrap();
        let shared = lb.shared.clone();
        tokio::spawn(lb.serve(listener));
        (addr, shared)
    }

    /// Replaced through a rename, as a writer of the real file should.
    fn write_backends(file: &Path, addrs: &[&str]) {
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, addrs.join("\n") + "\n").unwrap();
        std::fs::rename(&tmp, file).unwrap();
    }

    /// A TCP server that greets each connection with `tag` and a newline, then echoes. Aborting
    /// the returned task closes its port; connections it accepted stay.
    async fn echo_backend(tag: &'static str) -> (String, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    conn.write_all(format!("{tag}\n").as_bytes()).await.ok();
                    let (mut read, mut write) = conn.split();
                    tokio::io::copy(&mut read, &mut write).await.ok();
                });
            }
        });
        (addr, task)
    }

    async fn read_line(conn: &mut TcpStream) -> String {
        let mut line = Vec::new();
        let read = async {
            let mut byte = [0u8];
            while conn.read(&mut byte).await.unwrap() == 1 && byte[0] != b'\n' {
                line.push(byte[0]);
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("a line within 5s");
        String::from_utf8(line).unwrap()
    }

    /// Checks that a connection is relayed both ways: returns the tag of the backend it reached.
    async fn roundtrip(conn: &mut TcpStream) -> String {
        let tag = read_line(conn).await;
        conn.write_all(b"ping\n").await.unwrap();
        assert_eq!(read_line(conn).await, "ping", "echo through the balancer");
        tag
    }

    /// Connects through the balancer; returns the backend's tag and the open connection.
    async fn connect(lb: SocketAddr) -> (String, TcpStream) {
        let mut conn = TcpStream::connect(lb).await.unwrap();
        (roundtrip(&mut conn).await, conn)
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn health(shared: &Shared, addr: &str) -> Option<Health> {
        let pool = shared.pool();
        pool.backends
            .iter()
            .find(|b| b.addr == addr)
            .map(|b| b.health)
    }

    fn backend_addrs(shared: &Shared) -> Vec<String> {
        shared
            .pool()
            .backends
            .iter()
            .map(|b| b.addr.clone())
            .collect()
    }

    /// An address where nothing listens: a port just released.
    fn dead_addr() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    }

    /// An HTTPS server with a fresh self-signed certificate that answers `GET /healthz` with
    /// `status` (and anything else with 404), then closes.
    async fn https_backend(status: &'static str) -> String {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let der = PrivatePkcs8KeyDer::from(key.signing_key.serialize_der());
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], der.into())
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 512];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let status = if request.starts_with(b"GET /healthz HTTP/1.1\r\n") {
                        status
                    } else {
                        "404 Not Found"
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    );
                    tls.write_all(response.as_bytes()).await.ok();
                    tls.shutdown().await.ok();
                });
            }
        });
        addr
    }

    /// A server that accepts connections and closes them at once.
    async fn closing_backend() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                drop(listener.accept().await.unwrap());
            }
        });
        addr
    }

    #[test]
    fn backends_file_parses_host_port_lines() {
        let text = "# control planes\n\
                    \n\
                    kind-control-plane:6443\n\
                    172.18.0.3:6443   # second\n\
                    [fc00::4]:6443\n\
                    kind-control-plane:6443\n\
                    no-port\n\
                    host:notaport\n";
        let (addrs, invalid) = parse_backends(text);
        assert_eq!(
            addrs,
            [
                "kind-control-plane:6443",
                "172.18.0.3:6443",
                "[fc00::4]:6443"
            ]
        );
        assert_eq!(invalid, ["no-port", "host:notaport"]);
        assert_eq!(split_host_port("[fc00::4]:6443"), Some(("fc00::4", 6443)));
        assert_eq!(parse_backends("").0.len(), 0);
    }

    #[test]
    fn health_needs_two_failures_once_healthy_and_one_success_to_return() {
        let mut b = Backend::new("a:1".into());
        assert_eq!(b.record(true), Some(Health::Healthy));
        assert_eq!(b.record(false), None, "one failure is tolerated");
        assert_eq!(b.record(false), Some(Health::Unhealthy));
        assert_eq!(b.record(false), None);
        assert_eq!(b.record(true), Some(Health::Healthy));

        let mut new = Backend::new("b:1".into());
        assert_eq!(new.record(false), Some(Health::Unhealthy), "never seen up");
    }

    #[test]
    fn order_rotates_healthy_first_and_keeps_state_across_updates() {
        let mut pool = Pool::default();
        pool.update(vec!["a:1".into(), "b:1".into(), "c:1".into()]);
        pool.backends[1].health = Health::Unhealthy;
        assert_eq!(pool.order(), ["a:1", "c:1", "b:1"]);
        assert_eq!(pool.order(), ["c:1", "a:1", "b:1"]);
        pool.update(vec!["b:1".into(), "d:1".into()]);
        assert_eq!(
            pool.backends[0].health,
            Health::Unhealthy,
            "b keeps its state"
        );
        assert_eq!(pool.backends[1].health, Health::Unknown);
        assert_eq!(pool.order(), ["d:1", "b:1"]);
        pool.update(vec![]);
        assert!(pool.order().is_empty());
    }

    #[tokio::test]
    async fn connections_alternate_between_two_backends() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backends");
        let (a, _a) = echo_backend("a").await;
        let (b, _b) = echo_backend("b").await;
        write_backends(&file, &[&a, &b]);
        let (lb, _) = start(fast(&file, HealthCheck::Tcp)).await;
        let mut tags = Vec::new();
        for _ in 0..4 {
            tags.push(connect(lb).await.0);
        }
        assert!(
            tags == ["a", "b", "a", "b"] || tags == ["b", "a", "b", "a"],
            "round-robin: {tags:?}"
        );
    }

    #[tokio::test]
    async fn backend_that_goes_down_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backends");
        let (a, _a) = echo_backend("a").await;
        let (b, b_task) = echo_backend("b").await;
        write_backends(&file, &[&a, &b]);
        let (lb, shared) = start(fast(&file, HealthCheck::Tcp)).await;
        wait_for("b healthy", || health(&shared, &b) == Some(Health::Healthy)).await;
        b_task.abort();
        wait_for("b unhealthy", || {
            health(&shared, &b) == Some(Health::Unhealthy)
        })
        .await;
        assert_eq!(health(&shared, &a), Some(Health::Healthy));
        for _ in 0..4 {
            assert_eq!(connect(lb).await.0, "a");
        }
    }

    #[tokio::test]
    async fn refused_connect_falls_through_to_the_next_backend() {
        let (a, _a) = echo_backend("a").await;
        let lb = LoadBalancer::new(fast(Path::new("/nonexistent"), HealthCheck::Tcp)).unwrap();
        let shared = lb.shared;
        // No health loop runs here: the dead backend stays in rotation, first every other time.
        shared.pool().update(vec![dead_addr(), a]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..2 {
            let mut client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (conn, peer) = listener.accept().await.unwrap();
            tokio::spawn(shared.clone().proxy(conn, peer));
            assert_eq!(roundtrip(&mut client).await, "a");
        }
    }

    #[tokio::test]
    async fn reload_adds_and_removes_backends_without_cutting_connections() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backends");
        let (a, _a) = echo_backend("a").await;
        let (b, _b) = echo_backend("b").await;
        write_backends(&file, &[&a]);
        let (lb, shared) = start(fast(&file, HealthCheck::Tcp)).await;
        let (tag, mut open) = connect(lb).await;
        assert_eq!(tag, "a");

        write_backends(&file, &[&a, &b]);
        wait_for("b added", || backend_addrs(&shared).len() == 2).await;
        let mut tags = vec![connect(lb).await.0, connect(lb).await.0];
        tags.sort();
        assert_eq!(tags, ["a", "b"]);

        write_backends(&file, &[&b]);
        wait_for("a removed", || backend_addrs(&shared) == [b.clone()]).await;
        assert_eq!(connect(lb).await.0, "b");
        open.write_all(b"still here\n").await.unwrap();
        assert_eq!(read_line(&mut open).await, "still here");
    }

    #[tokio::test]
    async fn missing_backends_file_closes_connections_until_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backends");
        let (lb, shared) = start(fast(&file, HealthCheck::Tcp)).await;
        let mut conn = TcpStream::connect(lb).await.unwrap();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "closed without data: {read:?}"
        );

        let (a, _a) = echo_backend("a").await;
        write_backends(&file, &[&a]);
        wait_for("a added", || backend_addrs(&shared).len() == 1).await;
        assert_eq!(connect(lb).await.0, "a");
    }

    #[tokio::test]
    async fn https_check_needs_a_200_from_healthz() {
        let ok = https_backend("200 OK").await;
        let failing = https_backend("500 Internal Server Error").await;
        let closing = closing_backend().await;
        let (plain, _plain) = echo_backend("not tls").await;

        let https = LoadBalancer::new(fast(Path::new("/none"), HealthCheck::Https)).unwrap();
        assert_eq!(https.shared.check(&ok).await, Ok(()));
        let err = https.shared.check(&failing).await.unwrap_err();
        assert!(err.contains("500"), "{err}");
        assert!(https.shared.check(&closing).await.is_err());
        assert!(https.shared.check(&plain).await.is_err());
        assert!(https.shared.check(&dead_addr()).await.is_err());

        let tcp = LoadBalancer::new(fast(Path::new("/none"), HealthCheck::Tcp)).unwrap();
        assert_eq!(tcp.shared.check(&closing).await, Ok(()));
        assert!(tcp.shared.check(&dead_addr()).await.is_err());
    }

    #[tokio::test]
    async fn https_checks_mark_backends_in_the_running_balancer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backends");
        let ok = https_backend("200 OK").await;
        let failing = https_backend("500 Internal Server Error").await;
        write_backends(&file, &[&ok, &failing]);
        let (_, shared) = start(fast(&file, HealthCheck::Https)).await;
        wait_for("checks", || {
            health(&shared, &ok) == Some(Health::Healthy)
                && health(&shared, &failing) == Some(Health::Unhealthy)
        })
        .await;
    }

    #[tokio::test]
    async fn no_healthy_backend_means_all_are_tried() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backends");
        // Plain TCP servers fail HTTPS checks but relay fine.
        let (a, _a) = echo_backend("a").await;
        let (b, _b) = echo_backend("b").await;
        write_backends(&file, &[&a, &b]);
        let (lb, shared) = start(fast(&file, HealthCheck::Https)).await;
        wait_for("both unhealthy", || {
            health(&shared, &a) == Some(Health::Unhealthy)
                && health(&shared, &b) == Some(Health::Unhealthy)
        })
        .await;
        let mut tags = vec![connect(lb).await.0, connect(lb).await.0];
        tags.sort();
        assert_eq!(tags, ["a", "b"], "still round-robin");
    }
}
