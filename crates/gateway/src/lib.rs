//! The data plane node: listeners, routing, proxying, upstream pools and health checks.
//!
//! [`Gateway::start`] binds the listeners and returns a [`GatewayHandle`]; configuration arrives
//! as [`protocol::Snapshot`]s through [`GatewayHandle::apply_snapshot`] (from a file today, from
//! the platform link later). Each snapshot is validated whole (`config`) into a [`Runtime`] and
//! swapped in atomically; requests keep the runtime they started with.
//!
//! Reading order: `h1guard` (strict framing) → `io` (the guarded byte stream) → `server`
//! (listeners) → `proxy` (the handler) → `router`, `upstream`, `headers`, `body`.

mod admin;
mod body;
pub mod cache;
mod client_body;
mod clock;
pub mod config;
mod h1;
mod h1client;
pub mod h1guard;
mod h1server;
mod headers;
mod hyper_client;
mod io;
pub mod link;
mod metrics;
pub mod node;
mod proxy;
pub mod router;
mod server;
mod tls;
mod upstream;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use hyper_util::server::graceful::GracefulShutdown;
use protocol::Snapshot;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use clock::{Clock, ManualClock};
pub use config::{RejectReason, Runtime};

use crate::config::{NodeSettings, StateRegistry};
use crate::metrics::Metrics;
use crate::tls::SniResolver;

/// How a node is started (its configuration arrives later, in snapshots). Addresses with port
/// 0 bind a free port (see the handle's getters).
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub listen: SocketAddr,
    pub tls_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub node_name: String,
    /// The clock of passive ejections and idle upstream connections ([`Clock::manual`] in
    /// tests that step time).
    pub clock: Clock,
    /// Test hook: a request to exactly this path panics inside the handler, to show that a
    /// panic affects only its own request. Compiled only with the `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    pub panic_path: Option<String>,
}

impl StartOptions {
    pub fn new(listen: SocketAddr) -> StartOptions {
        StartOptions {
            listen,
            tls_listen: None,
            admin_listen: None,
            node_name: String::new(),
            clock: Clock::real(),
            #[cfg(feature = "test-hooks")]
            panic_path: None,
        }
    }
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
}

/// What happened to an offered snapshot that was not refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Validated and swapped in.
    Applied { generation: u64 },
    /// Not newer than the applied one: ignored (generations only increase).
    Ignored { offered: u64, current: u64 },
}

/// The last refused snapshot, for `/_admin/status`.
#[derive(Debug, Clone)]
pub struct ReloadError {
    pub message: String,
    pub generation: Option<u64>,
    pub at_unix_ms: u64,
}

/// State shared by the listeners, the handler and the handle.
pub struct Shared {
    current: ArcSwapOption<Runtime>,
    metrics: Metrics,
    registry: Mutex<StateRegistry>,
    started: Instant,
    draining: AtomicBool,
    last_error: Mutex<Option<ReloadError>>,
    node_name: String,
    clock: Clock,
    #[cfg(feature = "test-hooks")]
    panic_path: Option<String>,
    certificates: Arc<SniResolver>,
    /// Bumped whenever an active health check changes a target's health, so the link agent
    /// reports the change at once.
    health_changes: watch::Sender<u64>,
    /// Requests per client address still sending a body (the per-address cap).
    body_senders: Arc<client_body::BodySenders>,
}

impl Shared {
    /// Ready: a configuration is loaded and the node is not draining.
    fn ready(&self) -> bool {
        self.current.load().is_some() && !self.draining.load(Ordering::Relaxed)
    }

    /// The node clock's milliseconds (ejections, idle upstream connections).
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn settings(&self) -> NodeSettings {
        self.current
            .load()
            .as_ref()
            .map(|rt| rt.settings.clone())
            .unwrap_or_default()
    }
}

/// A target whose last active health check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreachableUpstream {
    pub api_id: String,
    pub api_name: String,
    pub target: String,
}

/// The running node.
pub struct GatewayHandle {
    shared: Arc<Shared>,
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    graceful: Mutex<Option<Arc<GracefulShutdown>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Entry point of the data plane.
pub struct Gateway;

impl Gateway {
    /// Binds the listeners and starts serving. Until a snapshot is applied every request is
    /// answered 503 and readiness says not ready.
    pub async fn start(config: StartOptions) -> Result<GatewayHandle, StartError> {
        let bind = |addr: SocketAddr| {
            server::bind(addr).map_err(|source| StartError::Bind { addr, source })
        };
        let http = bind(config.listen)?;
        let https = config.tls_listen.map(bind).transpose()?;
        let admin = config.admin_listen.map(bind).transpose()?;
        let addr_of = |l: &tokio::net::TcpListener| {
            l.local_addr().map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })
        };
        let http_addr = addr_of(&http)?;
        let https_addr = https.as_ref().map(addr_of).transpose()?;
        let admin_addr = admin.as_ref().map(addr_of).transpose()?;

        let certificates = Arc::new(SniResolver::default());
        let shared = Arc::new(Shared {
            current: ArcSwapOption::empty(),
            metrics: Metrics::new(),
            registry: Mutex::new(StateRegistry::default()),
            started: Instant::now(),
            draining: AtomicBool::new(false),
            last_error: Mutex::new(None),
            node_name: config.node_name.clone(),
            clock: config.clock.clone(),
            #[cfg(feature = "test-hooks")]
            panic_path: config.panic_path.clone(),
            certificates: certificates.clone(),
            health_changes: watch::channel(0).0,
            body_senders: Arc::default(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let graceful = Arc::new(GracefulShutdown::new());
        let builder = Arc::new(server::conn_builder());
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(server::accept_loop(
            http,
            None,
            shared.clone(),
            builder.clone(),
            graceful.clone(),
            stop_rx.clone(),
        )));
        if let Some(listener) = https {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(certificates)?);
            tasks.push(tokio::spawn(server::accept_loop(
                listener,
                Some(acceptor),
                shared.clone(),
                builder.clone(),
                graceful.clone(),
                stop_rx.clone(),
            )));
        }
        if let Some(listener) = admin {
            tasks.push(tokio::spawn(server::admin_loop(
                listener,
                shared.clone(),
                stop_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(health::run(shared.clone(), stop_rx)));
        tracing::info!(%http_addr, ?https_addr, ?admin_addr, "gateway node listening");
        Ok(GatewayHandle {
            shared,
            http_addr,
            https_addr,
            admin_addr,
            stop,
            graceful: Mutex::new(Some(graceful)),
            tasks: Mutex::new(tasks),
        })
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl GatewayHandle {
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Generation and hash of the applied snapshot.
    pub fn applied(&self) -> Option<(u64, String)> {
        self.shared
            .current
            .load()
            .as_ref()
            .map(|rt| (rt.generation, rt.content_hash.clone()))
    }

    /// Requests being handled right now (their response bodies included).
    pub fn requests_in_flight(&self) -> i64 {
        self.shared.metrics.requests_in_flight.get()
    }

    /// Requests answered since the node started (routed or not), for the heartbeat.
    pub fn requests_total(&self) -> u64 {
        self.shared.metrics.totals.requests()
    }

    /// Of those, answered with a 5xx status.
    pub fn responses_5xx_total(&self) -> u64 {
        self.shared.metrics.totals.responses_5xx()
    }

    /// Targets of the applied configuration whose last health check failed, in API order
    /// (`UPSTREAM_UNREACHABLE`). Only APIs with a health check are looked at.
    pub fn unreachable_upstreams(&self) -> Vec<UnreachableUpstream> {
        let Some(rt) = self.shared.current.load_full() else {
            return Vec::new();
        };
        rt.apis
            .iter()
            .filter(|api| api.health_check.is_some())
            .flat_map(|api| {
                api.targets
                    .iter()
                    .filter(|t| !t.healthy.load(Ordering::Relaxed))
                    .map(|t| UnreachableUpstream {
                        api_id: api.id.clone(),
                        api_name: api.name.to_string(),
                        target: t.url.clone(),
                    })
            })
            .collect()
    }

    /// Changes whenever an active health check changes a target's health.
    pub fn health_changes(&self) -> watch::Receiver<u64> {
        self.shared.health_changes.subscribe()
    }

    pub fn connections_open(&self) -> i64 {
        self.shared.metrics.connections_open.get()
    }

    /// The status document served at `/_admin/status`.
    pub fn status(&self) -> serde_json::Value {
        admin::status_json(&self.shared)
    }

    /// Prometheus text exposition of the node's metrics.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.encode()
    }

    /// Parses and applies a snapshot from its JSON form; a parse failure is recorded like any
    /// other refusal.
    pub fn apply_snapshot_json(&self, bytes: &[u8]) -> Result<ApplyOutcome, RejectReason> {
        match Snapshot::from_json(bytes) {
            Ok(snapshot) => self.apply_snapshot(snapshot),
            Err(error) => {
                let reason = RejectReason::Malformed(error.to_string());
                self.record_refusal(&reason, None);
                Err(reason)
            }
        }
    }

    /// Validates `snapshot` whole and swaps it in; an invalid one is refused and the current
    /// configuration stays. Older or equal generations are ignored.
    pub fn apply_snapshot(&self, snapshot: Snapshot) -> Result<ApplyOutcome, RejectReason> {
        let shared = &self.shared;
        // One apply at a time: the registry is the state being carried over.
        let mut registry = shared.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = shared.current.load().as_ref() {
            if snapshot.generation <= current.generation {
                if snapshot.generation == current.generation
                    && snapshot.content_hash != current.content_hash
                {
                    let reason = RejectReason::GenerationConflict {
                        generation: snapshot.generation,
                    };
                    self.record_refusal(&reason, Some(snapshot.generation));
                    return Err(reason);
                }
                tracing::info!(
                    offered = snapshot.generation,
                    current = current.generation,
                    "snapshot not newer; ignored"
                );
                return Ok(ApplyOutcome::Ignored {
                    offered: snapshot.generation,
                    current: current.generation,
                });
            }
        }
        match config::build(&snapshot, &mut registry, &shared.metrics) {
            Ok(runtime) => {
                shared.certificates.replace(&runtime.certificates);
                let generation = runtime.generation;
                shared.current.store(Some(Arc::new(runtime)));
                shared.metrics.config_generation.set(generation as i64);
                tracing::info!(generation, hash = %snapshot.content_hash, apis = snapshot.config.apis.len(), "snapshot applied");
                Ok(ApplyOutcome::Applied { generation })
            }
            Err(reason) => {
                self.record_refusal(&reason, Some(snapshot.generation));
                Err(reason)
            }
        }
    }

    fn record_refusal(&self, reason: &RejectReason, generation: Option<u64>) {
        tracing::error!(%reason, ?generation, "snapshot refused; keeping the current configuration");
        self.shared.metrics.config_reload_failures.inc();
        if let Ok(mut last) = self.shared.last_error.lock() {
            *last = Some(ReloadError {
                message: reason.to_string(),
                generation,
                at_unix_ms: unix_ms(),
            });
        }
    }

    /// Graceful stop: readiness answers 503 for the shutdown delay while traffic is still
    /// served, then the listeners close and in-flight requests get up to the drain timeout.
    /// Returns whether every connection finished in time.
    pub async fn shutdown(&self) -> bool {
        self.shutdown_draining_for(None).await
    }

    /// Like [`GatewayHandle::shutdown`], with the drain limit of a stop or restart command
    /// instead of the configured one.
    pub async fn shutdown_with_drain_timeout(&self, drain_timeout: Duration) -> bool {
        self.shutdown_draining_for(Some(drain_timeout)).await
    }

    async fn shutdown_draining_for(&self, drain_timeout: Option<Duration>) -> bool {
        let mut settings = self.shared.settings();
        if let Some(limit) = drain_timeout {
            settings.drain_timeout = limit;
        }
        self.shared.draining.store(true, Ordering::Relaxed);
        tracing::info!(delay = ?settings.shutdown_delay, "draining: readiness now 503");
        tokio::time::sleep(settings.shutdown_delay).await;
        let _ = self.stop.send(true);
        // The accept loops end and drop their references to the graceful-shutdown signal.
        let tasks = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        let graceful = self.graceful.lock().ok().and_then(|mut g| g.take());
        let drained = match graceful.and_then(|g| Arc::try_unwrap(g).ok()) {
            Some(graceful) => tokio::time::timeout(settings.drain_timeout, graceful.shutdown())
                .await
                .is_ok(),
            None => true,
        };
        tracing::info!(drained, "gateway node stopped");
        drained
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

mod health {
    //! Active health checks: each API with a health check is probed every interval; a target
    //! answering other than 2xx/3xx (or not at all) gets no traffic until it answers again.

    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use http::{Request, Uri};
    use tokio::sync::watch;
    use tokio::time::Instant;

    use crate::Shared;
    use crate::body::UpstreamRequestBody;
    use crate::config::{ApiRuntime, HealthCheck};
    use crate::upstream::Target;

    pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
        let mut last_round = Instant::now();
        loop {
            // The interval is read again at least every second, so a new configuration's
            // interval applies at once, not after a whole period of the previous one (the
            // default of 10 s while the node has no configuration yet).
            let due = last_round + shared.settings().health_interval;
            let now = Instant::now();
            if now < due {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep((due - now).min(Duration::from_secs(1))) => {}
                }
                continue;
            }
            last_round = now;
            let Some(rt) = shared.current.load_full() else {
                continue;
            };
            let timeout = rt.settings.health_timeout;
            let mut checks = tokio::task::JoinSet::new();
            for api in rt.apis.iter().filter(|a| a.health_check.is_some()) {
                let api = api.clone();
                let shared = shared.clone();
                checks.spawn(async move { check_api(&shared, &api, timeout).await });
            }
            while checks.join_next().await.is_some() {}
        }
    }

    async fn probe(api: &ApiRuntime, uri: Uri, h2c: bool, timeout: std::time::Duration) -> bool {
        let mut req = Request::new(UpstreamRequestBody::Empty);
        *req.uri_mut() = uri;
        let client = if h2c { &api.h2c_client } else { &api.client };
        matches!(
            tokio::time::timeout(timeout, client.request(req)).await,
            Ok(Ok(response)) if response.status().is_success() || response.status().is_redirection()
        )
    }

    async fn check_api(shared: &Shared, api: &ApiRuntime, timeout: std::time::Duration) {
        match &api.health_check {
            Some(HealthCheck::Url(uri)) => {
                let healthy = probe(api, uri.clone(), false, timeout).await;
                for target in &api.targets {
                    set(shared, target, healthy);
                }
            }
            Some(HealthCheck::Path(path)) => {
                for target in &api.targets {
                    let uri = Uri::builder()
                        .scheme(target.scheme.clone())
                        .authority(target.authority.clone())
                        .path_and_query(path.as_str())
                        .build();
                    let healthy = match uri {
                        Ok(uri) => probe(api, uri, target.h2c, timeout).await,
                        Err(_) => false,
                    };
                    set(shared, target, healthy);
                }
            }
            None => {}
        }
    }

    fn set(shared: &Shared, target: &Target, healthy: bool) {
        let was = target.healthy.swap(healthy, Ordering::Relaxed);
        if was != healthy {
            tracing::warn!(target = %target.url, healthy, "upstream health changed");
            shared
                .health_changes
                .send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}
