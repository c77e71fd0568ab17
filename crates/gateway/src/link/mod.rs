//! The link agent: the node's side of the platform link (SPEC §10, `protocol::link`).
//!
//! One task owns the WebSocket. Per connection it sends `Hello`, waits for `Welcome`, then
//! multiplexes: frames from the platform (snapshots, commands), heartbeats every interval and at
//! once on every state change, and results of commands that run in their own tasks. When the
//! connection ends it reconnects with capped exponential backoff and jitter; the data plane keeps
//! serving its configuration meanwhile (fail static). Lifecycle decisions (drain, stop, restart,
//! exit) belong to `crate::node`; the agent reports them as [`AgentEvent`]s.

pub mod identity;
mod probe;
pub mod props;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use protocol::Snapshot;
use protocol::link::{
    AppliedConfig, ApplyResult, Command, CommandDetails, CommandOutcome, Counters, IssueSeverity,
    NodeIssue, NodeMessage, PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, PlatformMessage,
    RefusalCode, ReportedState, StartupProperties, check_protocol_version,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::cache::SnapshotCache;
use crate::{ApplyOutcome, GatewayHandle};

/// The issue codes a node reports: refused snapshot, failing health check (SPEC §3); their one
/// definition is the model's.
pub use model::status::codes::{CONFIG_APPLY_FAILED, UPSTREAM_UNREACHABLE};
/// Unreachable targets named in one `UPSTREAM_UNREACHABLE` issue; the rest are counted.
const MAX_NAMED_UNREACHABLE: usize = 20;

/// Outgoing frames waiting for the connection (command results); bounded.
const OUTBOX_CAPACITY: usize = 64;
/// A frame write that takes longer than this means the connection is stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Silence from the platform (no frame, no pong) for longer than this ends the connection.
const MIN_SILENCE_LIMIT: Duration = Duration::from_secs(15);

/// How the agent connects and paces itself.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `http(s)://host[:port][/prefix]` of the platform; the link URL is derived from it.
    pub platform_url: String,
    pub node_credential: String,
    pub node_id: String,
    pub startup: StartupProperties,
    /// The previous run left its `running` marker behind (said in the first `Hello`).
    pub unclean_previous_exit: bool,
    /// Heartbeat interval until the platform's `Welcome` names one.
    pub heartbeat_interval: Duration,
    /// First reconnect delay; doubles per failed attempt up to `reconnect_max` (itself at most
    /// [`MAX_RECONNECT_DELAY`]).
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// TCP + TLS + WebSocket handshake, and the wait for `Welcome`.
    pub connect_timeout: Duration,
    /// Per-target timeout of the `probe_upstreams` command.
    pub probe_timeout: Duration,
}

/// Lifecycle requests the agent passes to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    Restart {
        drain_timeout: Duration,
    },
    Stop {
        drain_timeout: Duration,
    },
    /// The platform refused the node for good (credential revoked, gateway deleted).
    Revoked {
        reason: String,
    },
}

/// Requests from the node to the agent.
#[derive(Debug)]
pub enum AgentControl {
    /// Send a last heartbeat with the current state, close the connection and end.
    Finish { done: oneshot::Sender<()> },
    /// Send a heartbeat with the current state now (acknowledged at once when not connected),
    /// so a short-lived state such as `stopping` reaches the platform before the next one.
    Report { done: oneshot::Sender<()> },
}

/// What the agent and the node share.
pub struct AgentShared {
    pub handle: Arc<GatewayHandle>,
    pub state: watch::Sender<ReportedState>,
    pub cache: SnapshotCache,
    /// Issues raised by this node, reported in every heartbeat until cleared.
    pub issues: Mutex<Vec<NodeIssue>>,
    /// A welcomed link is up: only then is it worth waiting for a frame to go out.
    pub connected: std::sync::atomic::AtomicBool,
}

impl AgentShared {
    /// `Starting` → `Online`: the first configuration is loaded and the listeners are up.
    pub fn mark_online(&self) {
        self.state.send_if_modified(|state| {
            if matches!(state, ReportedState::Starting { .. }) {
                *state = ReportedState::Online;
                true
            } else {
                false
            }
        });
    }

    fn applied(&self) -> Option<AppliedConfig> {
        self.handle
            .applied()
            .map(|(generation, content_hash)| AppliedConfig {
                generation,
                content_hash,
            })
    }

    /// The issues raised by events (kept in `issues`) and those read from the data plane's
    /// current state.
    fn issues(&self) -> Vec<NodeIssue> {
        let mut issues = self.issues.lock().map(|i| i.clone()).unwrap_or_default();
        issues.extend(upstream_unreachable(&self.handle.unreachable_upstreams()));
        issues
    }

    /// Replaces the issue with `code` (or clears it with `None`); answers whether it changed.
    fn set_issue(&self, code: &str, issue: Option<NodeIssue>) -> bool {
        let Ok(mut issues) = self.issues.lock() else {
            return false;
        };
        let before = issues.clone();
        issues.retain(|i| i.code != code);
        issues.extend(issue);
        *issues != before
    }

    fn heartbeat(&self, state: ReportedState) -> NodeMessage {
        NodeMessage::Heartbeat {
            state,
            runtime_version: props::RUNTIME_VERSION.to_string(),
            applied: self.applied(),
            issues: self.issues(),
            counters: Counters {
                requests_total: self.handle.requests_total(),
                responses_5xx_total: self.handle.responses_5xx_total(),
                in_flight: self.handle.requests_in_flight().max(0) as u64,
            },
        }
    }
}

/// One warning for every target whose health check fails, with API and target in its message
/// and details; `None` when all are healthy. One issue, not one per API: the platform keeps
/// one issue per code and node.
fn upstream_unreachable(unreachable: &[crate::UnreachableUpstream]) -> Option<NodeIssue> {
    let first = unreachable.first()?;
    let mut apis: Vec<&str> = unreachable.iter().map(|u| u.api_name.as_str()).collect();
    apis.dedup();
    let message = if unreachable.len() == 1 {
        format!(
            "API {} target {} fails its health check",
            first.api_name, first.target
        )
    } else {
        let named: Vec<String> = unreachable
            .iter()
            .take(MAX_NAMED_UNREACHABLE)
            .map(|u| format!("{} {}", u.api_name, u.target))
            .collect();
        let more = unreachable.len().saturating_sub(MAX_NAMED_UNREACHABLE);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!(
            "{} targets of {} APIs fail their health check: {}{tail}",
            unreachable.len(),
            apis.len(),
            named.join(", ")
        )
    };
    let details = serde_json::json!({
        "unreachable": unreachable
            .iter()
            .take(MAX_NAMED_UNREACHABLE)
            .map(|u| serde_json::json!({"api_id": u.api_id, "api": u.api_name, "target": u.target}))
            .collect::<Vec<_>>(),
        "total": unreachable.len(),
    });
    Some(NodeIssue {
        code: UPSTREAM_UNREACHABLE.into(),
        severity: IssueSeverity::Warning,
        message,
        details: details.to_string(),
    })
}

/// The longest wait between reconnect attempts, whatever the node's options say: a platform
/// that comes back sees its nodes within a few seconds (SPEC §10).
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Capped exponential backoff with jitter: each delay is drawn from [d/2, d] where d doubles
/// from `min` to `max` (at most [`MAX_RECONNECT_DELAY`]), so a fleet of nodes does not
/// reconnect in lockstep.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

/// The delay before reconnect attempt `attempt` (0 = the first after a loss): the ceiling
/// `min · 2^attempt`, capped at `max`, scaled into [ceiling/2, ceiling] by `jitter` ∈ [0, 1].
/// Pure, so the sequence is tested without sleeping.
pub fn backoff_delay(min: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let ceiling = min
        .checked_mul(1u32 << attempt.min(20))
        .map_or(max, |d| d.min(max));
    let half = ceiling / 2;
    half + (ceiling - half).mul_f64(jitter.clamp(0.0, 1.0))
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.min(MAX_RECONNECT_DELAY);
        let min = min.max(Duration::from_millis(1)).min(max);
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let delay = backoff_delay(self.min, self.max, self.attempt, rand::random::<f64>());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How one connection ended.
enum SessionEnd {
    /// The node asked the agent to finish.
    Finished,
    /// Refused for good; the node was told.
    Fatal,
    /// Lost or refused for now; `welcomed` says whether it got as far as `Welcome`.
    Lost { welcomed: bool, reason: String },
}

/// The link agent of one run.
pub struct Agent {
    config: AgentConfig,
    shared: Arc<AgentShared>,
    events: mpsc::Sender<AgentEvent>,
    control: mpsc::Receiver<AgentControl>,
    state: watch::Receiver<ReportedState>,
    outbox_tx: mpsc::Sender<NodeMessage>,
    outbox: mpsc::Receiver<NodeMessage>,
    /// Start-up properties go out once per run, on the first welcomed connection.
    startup_sent: bool,
    heartbeat_interval: Duration,
}

impl Agent {
    pub fn new(
        config: AgentConfig,
        shared: Arc<AgentShared>,
        events: mpsc::Sender<AgentEvent>,
        control: mpsc::Receiver<AgentControl>,
    ) -> Agent {
        let (outbox_tx, outbox) = mpsc::channel(OUTBOX_CAPACITY);
        let state = shared.state.subscribe();
        let heartbeat_interval = config.heartbeat_interval;
        Agent {
            config,
            shared,
            events,
            control,
            state,
            outbox_tx,
            outbox,
            startup_sent: false,
            heartbeat_interval,
        }
    }

    /// Connects, serves the connection, reconnects; returns when finished or refused for good.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(self.config.reconnect_min, self.config.reconnect_max);
        loop {
            let started = Instant::now();
            let end = self.session().await;
            self.shared
                .connected
                .store(false, std::sync::atomic::Ordering::Relaxed);
            let (welcomed, reason) = match end {
                SessionEnd::Finished | SessionEnd::Fatal => return,
                SessionEnd::Lost { welcomed, reason } => (welcomed, reason),
            };
            // A connection that was welcomed and lasted resets the backoff; one that fails at
            // once keeps growing it, so a platform that accepts and drops is not hammered.
            if welcomed && started.elapsed() >= self.heartbeat_interval.min(Duration::from_secs(10))
            {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "platform link down; serving the last configuration");
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    control = self.control.recv() => match control {
                        Some(AgentControl::Report { done }) => {
                            let _ = done.send(());
                        }
                        Some(AgentControl::Finish { done }) => {
                            let _ = done.send(());
                            return;
                        }
                        None => return,
                    },
                }
            }
        }
    }

    fn link_url(&self) -> String {
        let base = &self.config.platform_url;
        let ws = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.clone()
        };
        format!("{ws}/api/v1/link")
    }

    async fn connect(&self) -> Result<Ws, ConnectError> {
        let mut request = self
            .link_url()
            .into_client_request()
            .map_err(|e| ConnectError::Other(e.to_string()))?;
        let headers = request.headers_mut();
        let bearer = format!("Bearer {}", self.config.node_credential);
        headers.insert(
            http::header::AUTHORIZATION,
            bearer
                .parse()
                .map_err(|_| ConnectError::Other("the credential is not a valid header".into()))?,
        );
        headers.insert(PROTOCOL_VERSION_HEADER, PROTOCOL_VERSION.into());
        let mut ws_config = WebSocketConfig::default();
        ws_config.max_message_size = Some(protocol::link::MAX_FRAME_BYTES);
        ws_config.max_frame_size = Some(protocol::link::MAX_FRAME_BYTES);
        let connector = tokio_tungstenite::Connector::Rustls(tls_config());
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(ws_config),
            true,
            Some(connector),
        );
        match tokio::time::timeout(self.config.connect_timeout, connect).await {
            Err(_) => Err(ConnectError::Other(format!(
                "no handshake within {:?}",
                self.config.connect_timeout
            ))),
            Ok(Ok((ws, _response))) => Ok(ws),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let status = response.status();
                let peer_version = response
                    .headers()
                    .get(PROTOCOL_VERSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u32>().ok());
                let body = response.body().as_deref().unwrap_or_default();
                Err(ConnectError::Http {
                    status: status.as_u16(),
                    message: identity::error_message(status, body),
                    code: identity::refusal_code(body),
                    peer_version,
                })
            }
            Ok(Err(error)) => Err(ConnectError::Other(error.to_string())),
        }
    }

    async fn session(&mut self) -> SessionEnd {
        let lost = |welcomed: bool, reason: String| SessionEnd::Lost { welcomed, reason };
        let mut ws = match self.connect().await {
            Ok(ws) => ws,
            Err(ConnectError::Http {
                status,
                message,
                code,
                peer_version,
            }) => {
                if let Some(mismatch) = peer_version.and_then(|v| check_protocol_version(v).err()) {
                    tracing::error!(status, %message, "{mismatch}");
                    return lost(false, mismatch.to_string());
                }
                if code == Some(RefusalCode::ProtocolVersionMismatch) {
                    tracing::error!(
                        status,
                        %message,
                        "link protocol version mismatch: this node speaks version {PROTOCOL_VERSION}; \
                         run the same Switchyard release on the platform and its gateway nodes"
                    );
                    return lost(false, message);
                }
                if status == 401 || status == 403 {
                    let reason = format!(
                        "the platform refused this node's credential (HTTP {status}): {message}"
                    );
                    return self.fatal(reason).await;
                }
                tracing::error!(status, %message, "the platform refused the link");
                return lost(false, format!("HTTP {status}: {message}"));
            }
            Err(ConnectError::Other(message)) => return lost(false, message),
        };

        // Until the platform has seen this run start, the node introduces itself as starting
        // (with the unclean-exit flag), even when it already serves from its cache; the
        // heartbeat right after `Welcome` then carries the current state.
        let first = !self.startup_sent;
        let current = *self.state.borrow_and_update();
        let hello_state = match (first, current) {
            (true, ReportedState::Online) => ReportedState::Starting {
                unclean_previous_exit: self.config.unclean_previous_exit,
            },
            _ => current,
        };
        let hello = NodeMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            node_id: self.config.node_id.clone(),
            state: hello_state,
            runtime_version: props::RUNTIME_VERSION.to_string(),
            applied: self.shared.applied(),
            startup: first.then(|| Box::new(self.config.startup.clone())),
        };
        if let Err(reason) = send(&mut ws, &hello).await {
            return lost(false, reason);
        }

        // Wait for Welcome (or Refused).
        let deadline = tokio::time::Instant::now() + self.config.connect_timeout;
        loop {
            let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => return lost(false, "no welcome from the platform".into()),
                Ok(None) => return lost(false, "connection closed before welcome".into()),
                Ok(Some(Err(error))) => return lost(false, error.to_string()),
                Ok(Some(Ok(frame))) => frame,
            };
            match parse(frame) {
                Parsed::Message(PlatformMessage::Welcome {
                    protocol_version,
                    gateway_id,
                    heartbeat_interval_ms,
                }) => {
                    if let Err(mismatch) = check_protocol_version(protocol_version) {
                        tracing::error!("{mismatch}");
                        let _ = ws.close(None).await;
                        return lost(false, mismatch.to_string());
                    }
                    if heartbeat_interval_ms > 0 {
                        self.heartbeat_interval =
                            Duration::from_millis(heartbeat_interval_ms.clamp(10, 3_600_000));
                    }
                    tracing::info!(%gateway_id, heartbeat_ms = self.heartbeat_interval.as_millis() as u64, "platform link up");
                    break;
                }
                Parsed::Message(PlatformMessage::Refused { reason, retry }) => {
                    return self.refused(reason, retry, false).await;
                }
                Parsed::Message(other) => {
                    tracing::warn!(?other, "unexpected frame before welcome; ignored");
                }
                Parsed::Closed(reason) => return lost(false, reason),
                Parsed::Control | Parsed::Invalid => {}
            }
        }
        self.startup_sent = true;
        self.shared
            .connected
            .store(true, std::sync::atomic::Ordering::Relaxed);

        let welcomed = true;
        let state = *self.state.borrow_and_update();
        if let Err(reason) = send(&mut ws, &self.shared.heartbeat(state)).await {
            return lost(welcomed, reason);
        }
        let mut ticker = tokio::time::interval(self.heartbeat_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.reset();
        let silence_limit = (self.heartbeat_interval * 3).max(MIN_SILENCE_LIMIT);
        let mut last_heard = Instant::now();
        let mut health = self.shared.handle.health_changes();
        health.borrow_and_update();
        loop {
            tokio::select! {
                biased;
                control = self.control.recv() => {
                    let state = *self.state.borrow_and_update();
                    let sent = send(&mut ws, &self.shared.heartbeat(state)).await;
                    match control {
                        Some(AgentControl::Report { done }) => {
                            let _ = done.send(());
                            if let Err(reason) = sent {
                                return lost(welcomed, reason);
                            }
                        }
                        Some(AgentControl::Finish { done }) => {
                            let _ = tokio::time::timeout(WRITE_TIMEOUT, ws.close(None)).await;
                            let _ = done.send(());
                            return SessionEnd::Finished;
                        }
                        None => return SessionEnd::Finished,
                    }
                }
                changed = self.state.changed() => {
                    if changed.is_err() {
                        return SessionEnd::Finished;
                    }
                    let state = *self.state.borrow_and_update();
                    if let Err(reason) = send(&mut ws, &self.shared.heartbeat(state)).await {
                        return lost(welcomed, reason);
                    }
                }
                // A target's health changed: `UPSTREAM_UNREACHABLE` goes out now, not at the
                // next tick.
                Ok(()) = health.changed() => {
                    let state = *self.state.borrow();
                    if let Err(reason) = send(&mut ws, &self.shared.heartbeat(state)).await {
                        return lost(welcomed, reason);
                    }
                }
                frame = ws.next() => {
                    let frame = match frame {
                        None => return lost(welcomed, "connection closed by the platform".into()),
                        Some(Err(error)) => return lost(welcomed, error.to_string()),
                        Some(Ok(frame)) => frame,
                    };
                    last_heard = Instant::now();
                    match parse(frame) {
                        Parsed::Message(message) => {
                            if let Some(end) = self.on_message(&mut ws, message).await {
                                return end;
                            }
                        }
                        Parsed::Closed(reason) => return lost(welcomed, reason),
                        Parsed::Control | Parsed::Invalid => {}
                    }
                }
                Some(message) = self.outbox.recv() => {
                    if let Err(reason) = send(&mut ws, &message).await {
                        return lost(welcomed, reason);
                    }
                }
                _ = ticker.tick() => {
                    if last_heard.elapsed() > silence_limit {
                        return lost(welcomed, format!("nothing heard from the platform for {silence_limit:?}"));
                    }
                    let state = *self.state.borrow_and_update();
                    if let Err(reason) = send(&mut ws, &self.shared.heartbeat(state)).await {
                        return lost(welcomed, reason);
                    }
                    // The pong proves the platform is still there on an otherwise quiet link.
                    if let Err(reason) = send_frame(&mut ws, Message::Ping(Default::default())).await {
                        return lost(welcomed, reason);
                    }
                }
            }
        }
    }

    /// Handles one platform frame after `Welcome`; `Some` ends the session.
    async fn on_message(&mut self, ws: &mut Ws, message: PlatformMessage) -> Option<SessionEnd> {
        let lost = |reason: String| {
            Some(SessionEnd::Lost {
                welcomed: true,
                reason,
            })
        };
        match message {
            PlatformMessage::Snapshot { snapshot } => {
                let (ack, issues_changed) = self.apply(*snapshot).await;
                if let Err(reason) = send(ws, &ack).await {
                    return lost(reason);
                }
                if issues_changed {
                    let state = *self.state.borrow();
                    if let Err(reason) = send(ws, &self.shared.heartbeat(state)).await {
                        return lost(reason);
                    }
                }
            }
            PlatformMessage::Command {
                command_id,
                command,
            } => {
                if let Some(result) = self.command(command_id, command).await {
                    if let Err(reason) = send(ws, &result).await {
                        return lost(reason);
                    }
                }
            }
            PlatformMessage::Refused { reason, retry } => {
                return Some(self.refused(reason, retry, true).await);
            }
            PlatformMessage::Welcome { .. } => {
                tracing::warn!("second welcome on one connection; ignored");
            }
        }
        None
    }

    async fn refused(&mut self, reason: String, retry: bool, welcomed: bool) -> SessionEnd {
        if retry {
            tracing::error!(%reason, "the platform refused the link; will retry");
            SessionEnd::Lost { welcomed, reason }
        } else {
            self.fatal(reason).await
        }
    }

    async fn fatal(&mut self, reason: String) -> SessionEnd {
        tracing::error!(%reason, "the platform refused this node for good; stopping");
        let _ = self.events.send(AgentEvent::Revoked { reason }).await;
        SessionEnd::Fatal
    }

    /// Verifies, applies and caches a pushed snapshot; the acknowledgement to send and whether
    /// the node's issues changed.
    async fn apply(&mut self, snapshot: Snapshot) -> (NodeMessage, bool) {
        let generation = snapshot.generation;
        let content_hash = snapshot.content_hash.clone();
        let ack = |result: ApplyResult| NodeMessage::SnapshotAck {
            generation,
            content_hash: content_hash.clone(),
            result,
        };
        if let Err(mismatch) = snapshot.verify_hash() {
            let reason = mismatch.to_string();
            tracing::error!(generation, %reason, "snapshot refused");
            let changed = self.raise_apply_failed(generation, &reason);
            return (ack(ApplyResult::Refused { reason }), changed);
        }
        if let Some((serving, _)) = self.shared.handle.applied() {
            if generation <= serving {
                tracing::info!(offered = generation, serving, "snapshot not newer; ignored");
                return (
                    ack(ApplyResult::Stale {
                        serving_generation: serving,
                    }),
                    false,
                );
            }
        }
        // Validation of a large configuration is CPU work: keep it off the runtime's workers.
        let handle = self.shared.handle.clone();
        let offered = snapshot.clone();
        let outcome = tokio::task::spawn_blocking(move || handle.apply_snapshot(offered))
            .await
            .unwrap_or_else(|e| Err(crate::RejectReason::Malformed(e.to_string())));
        match outcome {
            Ok(ApplyOutcome::Applied { .. }) => {
                self.shared.mark_online();
                let changed = self.shared.set_issue(CONFIG_APPLY_FAILED, None);
                let cache = self.shared.cache.clone();
                let stored = tokio::task::spawn_blocking(move || cache.store(&snapshot)).await;
                match stored {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::error!(%error, "cannot write the snapshot cache"),
                    Err(error) => tracing::error!(%error, "snapshot cache writer failed"),
                }
                (ack(ApplyResult::Applied), changed)
            }
            Ok(ApplyOutcome::Ignored { current, .. }) => (
                ack(ApplyResult::Stale {
                    serving_generation: current,
                }),
                false,
            ),
            Err(reason) => {
                let reason = reason.to_string();
                let changed = self.raise_apply_failed(generation, &reason);
                (ack(ApplyResult::Refused { reason }), changed)
            }
        }
    }

    fn raise_apply_failed(&self, generation: u64, reason: &str) -> bool {
        let serving = self
            .shared
            .handle
            .applied()
            .map_or("no configuration".to_string(), |(g, _)| {
                format!("generation {g}")
            });
        self.shared.set_issue(
            CONFIG_APPLY_FAILED,
            Some(NodeIssue {
                code: CONFIG_APPLY_FAILED.into(),
                severity: IssueSeverity::Error,
                message: format!(
                    "configuration generation {generation} was refused; still serving {serving}"
                ),
                details: reason.to_string(),
            }),
        )
    }

    /// Runs or dispatches a command; the immediate result, if any.
    async fn command(&mut self, command_id: String, command: Command) -> Option<NodeMessage> {
        let result = |result: CommandOutcome| NodeMessage::CommandResult {
            command_id: command_id.clone(),
            result,
        };
        tracing::info!(%command_id, ?command, "command from the platform");
        match command {
            Command::Restart { drain_timeout_ms } => {
                let event = AgentEvent::Restart {
                    drain_timeout: Duration::from_millis(drain_timeout_ms),
                };
                let _ = self.events.send(event).await;
                Some(result(CommandOutcome::Accepted))
            }
            Command::Stop { drain_timeout_ms } => {
                let event = AgentEvent::Stop {
                    drain_timeout: Duration::from_millis(drain_timeout_ms),
                };
                let _ = self.events.send(event).await;
                Some(result(CommandOutcome::Accepted))
            }
            Command::ProbeUpstreams { targets } => {
                let outbox = self.outbox_tx.clone();
                let timeout = self.config.probe_timeout;
                tokio::spawn(async move {
                    let details = probe::probe_all(targets, timeout).await;
                    let _ = outbox
                        .send(NodeMessage::CommandResult {
                            command_id,
                            result: CommandOutcome::Done {
                                details: CommandDetails::ProbeUpstreams(details),
                            },
                        })
                        .await;
                });
                None
            }
            Command::CollectLogs { .. } | Command::ApplyUpdate { .. } | Command::RollBackUpdate => {
                Some(result(CommandOutcome::Unsupported))
            }
        }
    }
}

enum ConnectError {
    Http {
        status: u16,
        message: String,
        /// The envelope's code when it is one the node acts on.
        code: Option<RefusalCode>,
        peer_version: Option<u32>,
    },
    Other(String),
}

enum Parsed {
    Message(PlatformMessage),
    Closed(String),
    /// Ping, pong, binary: nothing to act on.
    Control,
    Invalid,
}

fn parse(frame: Message) -> Parsed {
    match frame {
        Message::Text(text) => match serde_json::from_str::<PlatformMessage>(text.as_str()) {
            Ok(message) => Parsed::Message(message),
            Err(error) => {
                tracing::warn!(%error, "unreadable frame from the platform; ignored");
                Parsed::Invalid
            }
        },
        Message::Close(frame) => Parsed::Closed(match frame {
            Some(frame) if !frame.reason.is_empty() => {
                format!("closed by the platform: {}", frame.reason.as_str())
            }
            _ => "closed by the platform".into(),
        }),
        _ => Parsed::Control,
    }
}

async fn send(ws: &mut Ws, message: &NodeMessage) -> Result<(), String> {
    let text = serde_json::to_string(message).expect("a link message serialises");
    send_frame(ws, Message::text(text)).await
}

async fn send_frame(ws: &mut Ws, frame: Message) -> Result<(), String> {
    match tokio::time::timeout(WRITE_TIMEOUT, ws.send(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("write stuck for {WRITE_TIMEOUT:?}")),
    }
}

/// TLS for `wss://` platforms: system roots, aws-lc-rs, chosen explicitly so the process-wide
/// default provider does not matter.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            let (_added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
                .unwrap_or_else(|_| {
                    rustls::ClientConfig::builder_with_provider(Arc::new(
                        rustls::crypto::aws_lc_rs::default_provider(),
                    ))
                    .with_protocol_versions(&[&rustls::version::TLS13])
                    .map(|b| {
                        b.with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth()
                    })
                    .expect("aws-lc-rs supports TLS 1.3")
                });
            Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_five_second_cap_with_jitter() {
        let min = Duration::from_millis(500);
        // The node's default options ask for 30 s; the cap wins.
        let max = Duration::from_secs(30).min(MAX_RECONNECT_DELAY);
        let ceilings: Vec<u64> = (0..8)
            .map(|attempt| backoff_delay(min, max, attempt, 1.0).as_millis() as u64)
            .collect();
        assert_eq!(ceilings, [500, 1000, 2000, 4000, 5000, 5000, 5000, 5000]);
        let floors: Vec<u64> = (0..8)
            .map(|attempt| backoff_delay(min, max, attempt, 0.0).as_millis() as u64)
            .collect();
        assert_eq!(floors, [250, 500, 1000, 2000, 2500, 2500, 2500, 2500]);
        assert_eq!(backoff_delay(min, max, 3, 0.5), Duration::from_millis(3000));
        // Far attempts neither overflow nor pass the cap.
        assert_eq!(backoff_delay(min, max, u32::MAX, 1.0), MAX_RECONNECT_DELAY);
    }

    #[test]
    fn backoff_is_capped_whatever_the_options_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let delays: Vec<Duration> = (0..20).map(|_| backoff.next_delay()).collect();
        assert!(
            delays.iter().all(|d| *d <= MAX_RECONNECT_DELAY),
            "{delays:?}"
        );
        assert!(
            delays[6..].iter().all(|d| *d >= MAX_RECONNECT_DELAY / 2),
            "{delays:?}"
        );
        // Jittered: a fleet does not retry in lockstep.
        assert!(delays[6..].windows(2).any(|w| w[0] != w[1]), "{delays:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(500));
        // An outage of 64 s: the node retries at least every 5 s, so it is back within 5 s
        // of the platform's return (the old 30 s cap gave waits of up to ~23 s here).
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut waited = Duration::ZERO;
        while waited < Duration::from_secs(64) {
            let delay = backoff.next_delay();
            assert!(delay <= MAX_RECONNECT_DELAY);
            waited += delay;
        }
    }
}
