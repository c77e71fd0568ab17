//! A gateway node joined to a platform: identity, fail-static cache, data plane and link agent
//! wired together, and the node's lifecycle (SPEC §2 states, §9 graceful stop, §10).
//!
//! [`Node::start`] joins if needed (install token → credential in the data directory), binds the
//! listeners and serves the cached snapshot at once when there is a valid one, so traffic flows
//! before the platform is reached. [`Node::run`] runs the link agent until the node stops:
//! `shutdown` resolving (SIGTERM, Ctrl-C), a stop or restart command, or a refusal for good.
//! The caller acts on the [`ExitReason`]: the binary re-executes itself for a restart.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use protocol::link::{JoinRequest, PROTOCOL_VERSION, ReportedState};
use tokio::sync::{mpsc, oneshot, watch};

use crate::cache::{CacheLoad, SnapshotCache};
use crate::link::identity::{self, IdentityError, StoredCredential};
use crate::link::{Agent, AgentConfig, AgentControl, AgentEvent, AgentShared, props};
use crate::{ApplyOutcome, Gateway, GatewayHandle, StartError, StartOptions};

/// How a platform-managed node is started. Typed; the binary fills it from flags and env.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Holds the node id, the credential, the snapshot cache and the `running` marker.
    pub data_dir: PathBuf,
    /// The platform to join or connect to; optional once joined (the stored one is used).
    pub platform_url: Option<String>,
    /// Needed only for the first start (join); ignored once the node holds a credential.
    pub install_token: Option<String>,
    /// Gateway to join (a new name creates it); needed only with an install token.
    pub gateway_name: Option<String>,
    /// Listeners of the data plane.
    pub gateway: StartOptions,
    /// Heartbeat interval until the platform names one in `Welcome`.
    pub heartbeat_interval: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Join request, link handshake and the wait for `Welcome`.
    pub connect_timeout: Duration,
    pub probe_timeout: Duration,
    /// Drain limit after a refusal for good (credential revoked): the node stops soon.
    pub revoked_drain_timeout: Duration,
}

impl NodeOptions {
    pub fn new(data_dir: impl Into<PathBuf>, gateway: StartOptions) -> NodeOptions {
        NodeOptions {
            data_dir: data_dir.into(),
            platform_url: None,
            install_token: None,
            gateway_name: None,
            gateway,
            heartbeat_interval: protocol::link::DEFAULT_HEARTBEAT_INTERVAL,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: crate::link::MAX_RECONNECT_DELAY,
            connect_timeout: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(5),
            revoked_drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Why [`Node::run`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// Stopped cleanly (signal or stop command); exit 0.
    Stopped,
    /// The platform asked for a restart; the node drained and said `restarting`. The caller
    /// starts the node again (the binary re-executes itself with the same arguments).
    Restart,
    /// The platform refused the node for good (credential revoked, gateway deleted); the node
    /// stopped serving. Exit non-zero with `reason`.
    Revoked { reason: String },
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Start(#[from] StartError),
}

/// A started node: listeners bound, cache served if valid, link not yet running.
pub struct Node {
    options: NodeOptions,
    credential: StoredCredential,
    shared: Arc<AgentShared>,
    unclean_previous_exit: bool,
    started_at_ms: i64,
}

/// Starts the node and runs it until it stops; the library entry point of `switchyard gateway`
/// in platform mode (and of `switchyard up` for its local node).
pub async fn run_node(
    options: NodeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<ExitReason, NodeError> {
    let node = Node::start(options).await?;
    Ok(node.run(shutdown).await)
}

impl Node {
    /// Joins if needed, binds the listeners and serves the cached snapshot if there is one.
    pub async fn start(options: NodeOptions) -> Result<Node, NodeError> {
        let dir = options.data_dir.clone();
        identity::ensure_data_dir(&dir)?;
        let node_id = identity::node_id(&dir)?;
        let credential = resolve_credential(&options, &node_id).await?;

        let unclean_previous_exit = identity::mark_running(&dir)?;
        if unclean_previous_exit {
            tracing::warn!(data_dir = %dir.display(), "the previous run did not exit cleanly");
        }
        let mut gateway = options.gateway.clone();
        if gateway.node_name.is_empty() {
            gateway.node_name = props::host_name();
        }
        let handle = match Gateway::start(gateway).await {
            Ok(handle) => Arc::new(handle),
            Err(error) => {
                identity::clear_running(&dir);
                return Err(error.into());
            }
        };
        let (state, _) = watch::channel(ReportedState::Starting {
            unclean_previous_exit,
        });
        let shared = Arc::new(AgentShared {
            handle,
            state,
            cache: SnapshotCache::new(&dir),
            issues: Mutex::new(Vec::new()),
            connected: AtomicBool::new(false),
        });
        serve_cache(&shared, &credential.gateway_id);
        Ok(Node {
            options,
            credential,
            shared,
            unclean_previous_exit,
            started_at_ms: unix_ms(),
        })
    }

    pub fn handle(&self) -> &Arc<GatewayHandle> {
        &self.shared.handle
    }

    pub fn node_id(&self) -> &str {
        &self.credential.node_id
    }

    pub fn gateway_id(&self) -> &str {
        &self.credential.gateway_id
    }

    /// The state this node reports now.
    pub fn state(&self) -> watch::Receiver<ReportedState> {
        self.shared.state.subscribe()
    }

    /// Runs the link until the node stops; the data plane is shut down when this returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> ExitReason {
        let handle = self.shared.handle.clone();
        let mut bind = vec![handle.http_addr()];
        bind.extend(handle.https_addr());
        bind.extend(handle.admin_addr());
        let config = AgentConfig {
            platform_url: self.credential.platform_url.clone(),
            node_credential: self.credential.node_credential.clone(),
            node_id: self.credential.node_id.clone(),
            startup: props::collect(&self.options.data_dir, &bind, self.started_at_ms),
            unclean_previous_exit: self.unclean_previous_exit,
            heartbeat_interval: self.options.heartbeat_interval,
            reconnect_min: self.options.reconnect_min,
            reconnect_max: self.options.reconnect_max,
            connect_timeout: self.options.connect_timeout,
            probe_timeout: self.options.probe_timeout,
        };
        let (events_tx, mut events) = mpsc::channel(8);
        let (control, control_rx) = mpsc::channel(4);
        let agent =
            tokio::spawn(Agent::new(config, self.shared.clone(), events_tx, control_rx).run());

        tokio::pin!(shutdown);
        let reason = tokio::select! {
            () = &mut shutdown => {
                tracing::info!("stop requested by signal");
                self.stop(None, &control).await;
                ExitReason::Stopped
            }
            event = events.recv() => match event {
                Some(AgentEvent::Stop { drain_timeout }) => {
                    tracing::info!(?drain_timeout, "stop requested by the platform");
                    self.stop(Some(drain_timeout), &control).await;
                    ExitReason::Stopped
                }
                Some(AgentEvent::Restart { drain_timeout }) => {
                    tracing::info!(?drain_timeout, "restart requested by the platform");
                    self.set_state(ReportedState::Restarting, &control).await;
                    let drained = handle.shutdown_with_drain_timeout(drain_timeout).await;
                    if !drained {
                        tracing::warn!("drain timeout reached with requests still in flight");
                    }
                    ExitReason::Restart
                }
                Some(AgentEvent::Revoked { reason }) => {
                    tracing::error!(%reason, "node credential refused; this node stops serving");
                    handle
                        .shutdown_with_drain_timeout(self.options.revoked_drain_timeout)
                        .await;
                    ExitReason::Revoked { reason }
                }
                None => {
                    // The agent ended without asking anything: treat it like a stop.
                    self.stop(None, &control).await;
                    ExitReason::Stopped
                }
            },
        };
        // The last frame: `stopped` after a clean stop, `restarting` before a restart.
        // Not connected: nothing can go out, so do not wait for a connection attempt to end.
        let (done, finished) = oneshot::channel();
        if control.send(AgentControl::Finish { done }).await.is_ok()
            && self.shared.connected.load(Ordering::Relaxed)
        {
            let _ = tokio::time::timeout(Duration::from_secs(3), finished).await;
        }
        agent.abort();
        identity::clear_running(&self.options.data_dir);
        reason
    }

    /// Changes the reported state and waits (briefly) until the agent has sent it, so that
    /// the platform sees every state even when the next one follows at once.
    async fn set_state(&self, state: ReportedState, control: &mpsc::Sender<AgentControl>) {
        self.shared.state.send_replace(state);
        if !self.shared.connected.load(Ordering::Relaxed) {
            return;
        }
        let (done, sent) = oneshot::channel();
        if control.send(AgentControl::Report { done }).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), sent).await;
        }
    }

    /// `Stopping` (heartbeats continue while draining), drain, then `Stopped`.
    async fn stop(&self, drain_timeout: Option<Duration>, control: &mpsc::Sender<AgentControl>) {
        self.set_state(ReportedState::Stopping, control).await;
        let handle = &self.shared.handle;
        let drained = match drain_timeout {
            Some(limit) => handle.shutdown_with_drain_timeout(limit).await,
            None => handle.shutdown().await,
        };
        if !drained {
            tracing::warn!("drain timeout reached with requests still in flight");
        }
        self.shared.state.send_replace(ReportedState::Stopped);
    }
}

/// The stored credential, or a new one from joining with the install token.
async fn resolve_credential(
    options: &NodeOptions,
    node_id: &str,
) -> Result<StoredCredential, IdentityError> {
    let dir = &options.data_dir;
    let url = options
        .platform_url
        .as_deref()
        .map(identity::normalise_platform_url)
        .transpose()?;
    if let Some(mut stored) = identity::load_credential(dir)? {
        if options.install_token.is_some() {
            tracing::info!(gateway_id = %stored.gateway_id, "already joined; install token not used");
        }
        if let Some(url) = url {
            if url != stored.platform_url {
                tracing::warn!(stored = %stored.platform_url, given = %url, "platform URL differs from the one joined; using the given one");
                stored.platform_url = url;
            }
        }
        return Ok(stored);
    }
    let path = dir.join(identity::CREDENTIAL_FILE);
    let Some(token) = options.install_token.as_deref() else {
        return Err(IdentityError::NotJoined { path });
    };
    let Some(url) = url else {
        return Err(IdentityError::BadPlatformUrl {
            url: String::new(),
            message: "--platform is required to join".into(),
        });
    };
    let Some(name) = options.gateway_name.as_deref().filter(|n| !n.is_empty()) else {
        return Err(IdentityError::Invalid {
            path,
            message: "joining needs a gateway name (--name)".into(),
        });
    };
    let request = JoinRequest {
        protocol_version: PROTOCOL_VERSION,
        install_token: token.to_string(),
        gateway_name: name.to_string(),
        node_id: node_id.to_string(),
        host_name: props::host_name(),
        runtime_version: props::RUNTIME_VERSION.to_string(),
    };
    let joined = identity::join(&url, &request, options.connect_timeout).await?;
    let credential = StoredCredential {
        platform_url: url,
        gateway_id: joined.gateway_id,
        gateway_name: joined.gateway_name,
        account_id: joined.account_id,
        // The node id is ours; a platform that answers another one is ignored on this point.
        node_id: node_id.to_string(),
        node_credential: joined.node_credential,
    };
    identity::store_credential(dir, &credential)?;
    tracing::info!(gateway_id = %credential.gateway_id, gateway = %credential.gateway_name, node_id, "joined the gateway");
    Ok(credential)
}

/// Applies the cached snapshot, if valid and of this gateway; `Online` at once when it applies.
fn serve_cache(shared: &AgentShared, gateway_id: &str) {
    let path = shared.cache.path();
    match shared.cache.load() {
        Ok(CacheLoad::Missing) => {
            tracing::info!("no cached configuration; waiting for the platform");
        }
        Ok(CacheLoad::Corrupt { reason, moved_to }) => {
            tracing::error!(path = %path.display(), %reason, moved_to = ?moved_to.as_deref().map(Path::display), "cached configuration is corrupt; not served");
        }
        Ok(CacheLoad::Loaded(snapshot)) => {
            let cached_for = snapshot.config.gateway.gateway_id.clone();
            if !cached_for.is_empty() && cached_for != gateway_id {
                tracing::warn!(
                    cached_for,
                    gateway_id,
                    "cached configuration is of another gateway; not served"
                );
                return;
            }
            let generation = snapshot.generation;
            match shared.handle.apply_snapshot(*snapshot) {
                Ok(ApplyOutcome::Applied { .. }) => {
                    tracing::info!(generation, "serving the cached configuration");
                    shared.mark_online();
                }
                Ok(ApplyOutcome::Ignored { .. }) => {}
                Err(reason) => {
                    tracing::error!(generation, %reason, "cached configuration refused; not served");
                }
            }
        }
        Err(error) => tracing::error!(%error, "cannot read the cached configuration"),
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
