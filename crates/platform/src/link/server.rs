//! The link server: one node-initiated WebSocket (SPEC §10) after `GET /api/v1/link`
//! (`crate::routes::link`) upgraded it. The node's Hello is answered with Welcome and the
//! current snapshot, and heartbeats, acknowledgements and command results are folded into
//! the node's status record (queued for the store, `records`) until the link closes.

use std::collections::HashMap;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use model::status::codes::{self, CONFIG_APPLY_FAILED};
use model::status::{
    NodeEvent, NodeRecord, ReportedState as ModelState, RestartEnd, Severity, reconcile,
};
use model::{AccountId, GatewayId, NodeId, Timestamp};
use protocol::link::{
    ApplyResult, NodeIssue, NodeMessage, PROTOCOL_VERSION, PlatformMessage, ReportedState,
    check_protocol_version,
};
use store::{NewIssue, NodeCredential, NodeReport};
use tokio::sync::mpsc;

use super::{Link, Outbound, publisher};

/// Largest frame a node may send: heartbeats and acknowledgements are small.
pub(crate) const MAX_NODE_FRAME_BYTES: usize = 1024 * 1024;
/// Read buffer of a link, allocated up front for every link: a heartbeat is a few hundred
/// bytes, and a larger frame grows the buffer while it is read (axum's default, 128 KiB,
/// was most of a link's memory).
pub(crate) const LINK_READ_BUFFER_BYTES: usize = 4 * 1024;
/// Node-reported issues kept per node; more are ignored (a limit on everything).
const MAX_NODE_ISSUES: usize = 100;

#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("websocket: {0}")]
    Socket(#[from] axum::Error),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Closed(String),
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

async fn send(sink: &mut Sink, message: &PlatformMessage) -> Result<(), LinkError> {
    let text = serde_json::to_string(message).expect("a link message serialises");
    sink.send(Message::Text(text.into())).await?;
    Ok(())
}

async fn refuse(sink: &mut Sink, reason: &str, retry: bool) -> LinkError {
    let _ = send(
        sink,
        &PlatformMessage::Refused {
            reason: reason.to_owned(),
            retry,
        },
    )
    .await;
    let _ = sink.send(Message::Close(None)).await;
    LinkError::Closed(reason.to_owned())
}

/// One link, from Hello to close.
/// Serves one upgraded link, from Hello to close (the REST handler `routes::link` checked
/// the credential and the protocol version before the upgrade).
pub(crate) async fn run(
    link: Link,
    socket: WebSocket,
    credential: NodeCredential,
    peer: Option<std::net::IpAddr>,
) -> Result<(), LinkError> {
    // Counted until the end, after the disconnection is recorded (a shutdown waits for it).
    let _task = link.inner.registry.link_task();
    let (mut sink, mut stream) = socket.split();
    let mut shutdown = link.inner.shutdown.subscribe();
    if *shutdown.borrow() {
        return Err(refuse(&mut sink, "the platform is shutting down", true).await);
    }
    let account = credential.account_id;
    let gateway = credential.gateway_id;

    // Hello first, within the limit.
    let first = tokio::time::timeout(link.config().hello_timeout, next_message(&mut stream)).await;
    let hello = match first {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) => return Err(LinkError::Closed("closed before hello".into())),
        Ok(Err(reason)) => return Err(refuse(&mut sink, &reason, false).await),
        Err(_) => return Err(refuse(&mut sink, "no hello in time", true).await),
    };
    let NodeMessage::Hello {
        protocol_version,
        node_id,
        state,
        runtime_version,
        applied,
        startup,
    } = hello
    else {
        return Err(refuse(&mut sink, "the first frame of a link must be hello", false).await);
    };
    if let Err(e) = check_protocol_version(protocol_version) {
        return Err(refuse(&mut sink, &e.to_string(), false).await);
    }
    let Ok(node) = node_id.parse::<NodeId>() else {
        return Err(refuse(&mut sink, "node_id must be a UUID", false).await);
    };
    if credential.node_id.is_some_and(|n| n != node) {
        return Err(refuse(
            &mut sink,
            "this credential belongs to another node id; join with an install token",
            false,
        )
        .await);
    }
    let at = link.now();
    let gateway_row = match link.store().gateway(account, gateway).await {
        Ok(g) if g.deleted_at.is_none() => g,
        Ok(_) | Err(store::StoreError::NotFound) => {
            return Err(refuse(&mut sink, "this gateway was deleted", false).await);
        }
        Err(e) => return Err(refuse(&mut sink, &format!("platform error: {e}"), true).await),
    };

    // The node row: host name and version from this run.
    let existing = link
        .store()
        .nodes(account, gateway)
        .await?
        .into_iter()
        .find(|(n, _)| n.id == node);
    let host_name = startup
        .as_ref()
        .map(|s| s.host_name.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| existing.as_ref().map(|(n, _)| n.host_name.clone()))
        .unwrap_or_else(|| "unknown".to_owned());
    let node_row = model::Node {
        id: node,
        gateway_id: gateway,
        host_name: truncate(&host_name, 255),
        // Where clients reach it: its first (HTTP) listener, with the link's source address
        // when it binds all interfaces.
        address: startup
            .as_ref()
            .and_then(|s| s.bind_addresses.first())
            .and_then(|bound| model::Node::reachable_address(bound, peer, &host_name))
            .or_else(|| existing.as_ref().and_then(|(n, _)| n.address.clone())),
        version: truncate(&runtime_version, 100),
        joined_at: existing.as_ref().map_or(at, |(n, _)| n.joined_at),
        last_seen: Some(at),
        applied_generation: applied.as_ref().map(|a| a.generation),
    };
    match link.store().upsert_node(account, &node_row).await {
        Ok(_) => {}
        Err(store::StoreError::NotFound) => {
            return Err(refuse(&mut sink, "this gateway was deleted", false).await);
        }
        Err(store::StoreError::Conflict { .. }) => {
            return Err(refuse(&mut sink, "this node id belongs to another account", false).await);
        }
        Err(e) => return Err(refuse(&mut sink, &format!("platform error: {e}"), true).await),
    }
    if let Some(startup) = &startup {
        let props = serde_json::to_value(startup.as_ref()).expect("start-up properties serialise");
        link.store()
            .set_node_startup_properties(account, node, &props, at)
            .await?;
    }
    let settings = link.config().status_settings(&gateway_row.settings);
    link.inner.records.set_settings(gateway, settings);

    let mut conn = LinkSession {
        link: link.clone(),
        account,
        gateway,
        node,
        version: node_row.version.clone(),
        joined_at: node_row.joined_at,
        node_issues: HashMap::new(),
        apply_failed: false,
    };
    // Node-raised issues still active from an earlier link are this link's to clear.
    for issue in link.store().issues(account, gateway).await? {
        if issue.node_id == Some(node) && !codes::from_node_states(&issue.code) {
            if issue.code == CONFIG_APPLY_FAILED {
                conn.apply_failed = true;
            }
            conn.node_issues.insert(
                issue.code.clone(),
                (issue.severity, issue.message.clone(), issue.details.clone()),
            );
        }
    }
    conn.report(state, applied.as_ref().map(|a| a.generation), at);

    let (tx, mut rx) = mpsc::channel::<Outbound>(link.config().send_queue_frames.max(1));
    let conn_id = link.inner.registry.register(gateway, node, tx);
    let result = async {
        send(
            &mut sink,
            &PlatformMessage::Welcome {
                protocol_version: PROTOCOL_VERSION,
                gateway_id: gateway.to_string(),
                heartbeat_interval_ms: u64::try_from(settings.heartbeat_interval.as_millis())
                    .unwrap_or(u64::MAX),
            },
        )
        .await?;
        let (_, frame) = publisher::current_frame(&link, account, gateway).await?;
        sink.send(Message::Text(frame.as_ref().into())).await?;
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(Outbound::Text(frame)) => {
                        sink.send(Message::Text(frame.as_ref().into())).await?;
                    }
                    Some(Outbound::Refuse { reason, retry }) => {
                        return Err(refuse(&mut sink, &reason, retry).await);
                    }
                    // Dropped from the registry: too slow, or replaced by a newer link.
                    None => {
                        let _ = sink.send(Message::Close(None)).await;
                        return Err(LinkError::Closed("dropped by the registry".into()));
                    }
                },
                message = next_message(&mut stream) => match message {
                    Ok(Some(message)) => conn.on_message(message).await?,
                    Ok(None) => return Ok(()),
                    Err(reason) => return Err(refuse(&mut sink, &reason, true).await),
                },
                _ = shutdown.changed() => {
                    let _ = sink.send(Message::Close(None)).await;
                    return Ok(());
                }
            }
        }
    }
    .await;
    if link.inner.registry.unregister(gateway, conn_id) {
        conn.event(NodeEvent::Disconnected, None, link.now());
    }
    result
}

/// The next node message; `Ok(None)` when the link closed, `Err` for a frame that is not one.
async fn next_message(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Result<Option<NodeMessage>, String> {
    loop {
        match stream.next().await {
            None | Some(Err(_)) => return Ok(None),
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str())
                    .map(Some)
                    .map_err(|e| format!("unreadable frame: {e}"));
            }
            Some(Ok(Message::Binary(_))) => {
                return Err("binary frames are not part of the link".into());
            }
            Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
        }
    }
}

/// What one link knows about its node.
struct LinkSession {
    link: Link,
    account: AccountId,
    gateway: GatewayId,
    node: NodeId,
    version: String,
    joined_at: Timestamp,
    /// Issues this node reported and that are active, by code: severity, message, details.
    node_issues: HashMap<String, (Severity, String, serde_json::Value)>,
    /// The last acknowledgement refused a snapshot (CONFIG_APPLY_FAILED stays until one applies).
    apply_failed: bool,
}

impl LinkSession {
    async fn on_message(&mut self, message: NodeMessage) -> Result<(), LinkError> {
        let at = self.link.now();
        match message {
            NodeMessage::Hello { .. } => {
                return Err(LinkError::Closed("hello sent twice".into()));
            }
            NodeMessage::Heartbeat {
                state,
                runtime_version,
                applied,
                issues,
                counters: _,
            } => {
                if runtime_version != self.version {
                    self.version = truncate(&runtime_version, 100);
                }
                self.report(state, applied.map(|a| a.generation), at);
                self.node_reported_issues(issues, at).await;
            }
            NodeMessage::SnapshotAck {
                generation,
                content_hash: _,
                result,
            } => {
                let applied = match &result {
                    ApplyResult::Applied => Some(generation),
                    ApplyResult::Stale { serving_generation } => Some(*serving_generation),
                    ApplyResult::Refused { .. } => None,
                };
                let current = self.link.inner.records.get(self.node);
                let state = current
                    .as_ref()
                    .and_then(|e| e.record.reported)
                    .unwrap_or(ModelState::Online);
                self.event(
                    NodeEvent::Reported {
                        state,
                        applied_generation: applied,
                    },
                    Some((state, applied)),
                    at,
                );
                match result {
                    ApplyResult::Refused { reason } => {
                        self.apply_failed = true;
                        self.raise(
                            CONFIG_APPLY_FAILED,
                            Severity::Error,
                            format!(
                                "node {} refused configuration generation {generation}: {}",
                                self.node,
                                truncate(&reason, 500)
                            ),
                            at,
                        )
                        .await;
                    }
                    ApplyResult::Applied | ApplyResult::Stale { .. } => {
                        if self.apply_failed {
                            self.apply_failed = false;
                            self.clear(CONFIG_APPLY_FAILED, at).await;
                        }
                    }
                }
            }
            NodeMessage::CommandResult { command_id, result } => {
                tracing::info!(node = %self.node, command_id, ?result, "command result");
                super::results::received(&self.link, self.node, command_id, result).await;
            }
        }
        Ok(())
    }

    /// A message with the node's state: a restart announcement or a plain report.
    fn report(&mut self, state: ReportedState, applied: Option<u64>, at: Timestamp) {
        let model_state = match state {
            ReportedState::Starting {
                unclean_previous_exit,
            } => Some(ModelState::Starting {
                unclean_previous_exit,
            }),
            ReportedState::Online => Some(ModelState::Online),
            ReportedState::Stopping => Some(ModelState::Stopping),
            ReportedState::Stopped => Some(ModelState::Stopped),
            ReportedState::Restarting => None,
        };
        match model_state {
            Some(s) => {
                self.event(
                    NodeEvent::Reported {
                        state: s,
                        applied_generation: applied,
                    },
                    Some((s, applied)),
                    at,
                );
            }
            None => {
                // Restarting: draining before the restart; the state shown is Restarting.
                let previous = self
                    .link
                    .inner
                    .records
                    .get(self.node)
                    .and_then(|e| e.record.reported)
                    .unwrap_or(ModelState::Online);
                self.event(NodeEvent::RestartAnnounced, Some((previous, applied)), at);
            }
        }
    }

    /// Folds an event into the record and queues both for the store (with the report when
    /// the node said something); the record flusher writes them (`records::run_flusher`),
    /// so a heartbeat never waits for the store.
    fn event(&self, event: NodeEvent, report: Option<(ModelState, Option<u64>)>, at: Timestamp) {
        let joined_at = self.joined_at;
        let version = &self.version;
        let node = self.node;
        let report = report.map(|(state, applied)| NodeReport {
            state,
            applied_generation: applied,
            at,
        });
        let (_, restart_end) = self.link.inner.records.apply(
            (self.account, self.gateway, node),
            Some(version),
            event,
            at,
            report,
            || NodeRecord::new(node, version.clone(), joined_at),
        );
        if restart_end == Some(RestartEnd::Cancelled) {
            // The audit record is a store write: off the link's path, like the status writes.
            let (link, account, gateway) = (self.link.clone(), self.account, self.gateway);
            tokio::spawn(async move {
                let reason = "the node reported online on a new link without having restarted";
                super::commands::restart_cancelled(&link, account, gateway, node, reason).await;
            });
        }
    }

    /// Node-reported issues: raise new or changed ones, clear those no longer reported
    /// (`model::status::reconcile`). Codes the status job owns are not the node's.
    async fn node_reported_issues(&mut self, issues: Vec<NodeIssue>, at: Timestamp) {
        let mut wanted: HashMap<String, (Severity, String, serde_json::Value)> = HashMap::new();
        for issue in issues.into_iter().take(MAX_NODE_ISSUES) {
            if codes::from_node_states(&issue.code) || issue.code.len() > 64 {
                continue;
            }
            let severity = Severity::from(issue.severity);
            wanted.insert(
                issue.code.clone(),
                (
                    severity,
                    truncate(&issue.message, 500),
                    node_details(&issue.details),
                ),
            );
        }
        // CONFIG_APPLY_FAILED raised from a refused acknowledgement stays until a snapshot
        // applies, whether or not the node still reports it.
        if self.apply_failed
            && !wanted.contains_key(CONFIG_APPLY_FAILED)
            && let Some(raised) = self.node_issues.get(CONFIG_APPLY_FAILED)
        {
            wanted.insert(CONFIG_APPLY_FAILED.to_owned(), raised.clone());
        }
        let (raise, clear) = reconcile(&self.node_issues, &wanted);
        for (code, (severity, message, details)) in raise {
            self.raise_with(&code, severity, message, details, at).await;
        }
        for code in clear {
            self.clear(&code, at).await;
        }
    }

    /// Raises an issue the platform words itself (no details from the node).
    async fn raise(&mut self, code: &str, severity: Severity, message: String, at: Timestamp) {
        self.raise_with(code, severity, message, node_details(""), at)
            .await;
    }

    async fn raise_with(
        &mut self,
        code: &str,
        severity: Severity,
        message: String,
        details: serde_json::Value,
        at: Timestamp,
    ) {
        let new = NewIssue {
            gateway_id: self.gateway,
            node_id: Some(self.node),
            code: code.to_owned(),
            severity,
            message: message.clone(),
            details: details.clone(),
        };
        match self.link.store().raise_issue(self.account, new, at).await {
            Ok(_) => {
                self.node_issues
                    .insert(code.to_owned(), (severity, message, details));
            }
            Err(error) => tracing::warn!(%error, node = %self.node, code, "could not raise issue"),
        }
    }

    async fn clear(&mut self, code: &str, at: Timestamp) {
        match self
            .link
            .store()
            .clear_issue(self.account, self.gateway, Some(self.node), code, at)
            .await
        {
            Ok(_) => {
                self.node_issues.remove(code);
            }
            Err(error) => tracing::warn!(%error, node = %self.node, code, "could not clear issue"),
        }
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// The most bytes of a node's issue details the platform keeps: enough for the named
/// unreachable targets of `UPSTREAM_UNREACHABLE`, small enough that a node cannot grow rows.
const MAX_NODE_DETAILS_BYTES: usize = 4096;

/// The details stored with a node-raised issue: the node's JSON object when it sent one that
/// fits [`MAX_NODE_DETAILS_BYTES`] (SPEC §3: the API and target of `UPSTREAM_UNREACHABLE`),
/// else its text under `"text"`, always with `"raised_by": "node"` so a reader knows whose
/// words they are.
fn node_details(raw: &str) -> serde_json::Value {
    let mut details = match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(map)) if raw.len() <= MAX_NODE_DETAILS_BYTES => map,
        _ if raw.trim().is_empty() => serde_json::Map::new(),
        _ => {
            let mut map = serde_json::Map::new();
            map.insert("text".into(), truncate(raw, 500).into());
            map
        }
    };
    details.insert("raised_by".into(), "node".into());
    serde_json::Value::Object(details)
}

#[cfg(test)]
mod tests {
    use model::*;

    #[test]
    fn node_details_keep_a_small_object_and_say_who_raised_it() {
        let kept = super::node_details(r#"{"unreachable":[{"api":"a","target":"t"}],"total":1}"#);
        assert_eq!(kept["unreachable"][0]["target"], "t");
        assert_eq!(kept["total"], 1);
        assert_eq!(kept["raised_by"], "node");
        assert_eq!(
            super::node_details(""),
            serde_json::json!({"raised_by": "node"})
        );
        let text = super::node_details("not json");
        assert_eq!(
            text,
            serde_json::json!({"text": "not json", "raised_by": "node"})
        );
        let huge = format!(r#"{{"x":"{}"}}"#, "a".repeat(5000));
        let cut = super::node_details(&huge);
        assert_eq!(cut["raised_by"], "node");
        assert!(cut["text"].as_str().unwrap().chars().count() <= 500);
    }
    use protocol::link::{MAX_FRAME_BYTES, PlatformMessage};

    /// Issue 8 #22: the link's write side has no size limit below the node's frame limit,
    /// and a full configuration (10,000 APIs, each with two targets and a deployment) fits
    /// that limit with a wide margin. The size is printed for bench/RESULTS.md.
    #[test]
    fn a_snapshot_of_10000_apis_fits_the_node_frame_limit() {
        let id = |n: u128| uuid::Uuid::from_u128(n);
        let account = AccountId(id(1));
        let gateway = Gateway {
            id: GatewayId(id(2)),
            account_id: account,
            name: "edge".into(),
            public_url: Some("https://api.example.com/".into()),
            bind_address: DEFAULT_BIND_ADDRESS.into(),
            settings: GatewaySettings::default(),
            created_at: Timestamp(1),
            deleted_at: None,
        };
        let env = Environment {
            id: EnvironmentId(id(3)),
            account_id: account,
            name: "Production".into(),
            classification: Classification::Production,
            gateway_id: Some(gateway.id),
            paths: EnvironmentPaths::default(),
            created_at: Timestamp(1),
        };
        let apis: Vec<Api> = (0..10_000u128)
            .map(|n| Api {
                id: ApiId(id(1_000_000 + n)),
                account_id: account,
                name: format!("orders-service-{n}"),
                version: "1.0.0".into(),
                api_type: ApiType::Rest,
                base_path: format!("services/orders-{n}/v1"),
                upstream_targets: vec![
                    UpstreamTarget {
                        url: format!("http://orders-{n}-a.internal.example:8080/api"),
                    },
                    UpstreamTarget {
                        url: format!("http://orders-{n}-b.internal.example:8080/api"),
                    },
                ],
                health_check_url: Some(format!("http://orders-{n}-a.internal.example:8080/health")),
                execution: None,
                created_at: Timestamp(1),
            })
            .collect();
        let deployments: Vec<Deployment> = apis
            .iter()
            .enumerate()
            .map(|(n, api)| Deployment {
                id: DeploymentId(id(2_000_000 + n as u128)),
                api_id: api.id,
                environment_id: env.id,
                custom_path: None,
                status: DeploymentStatus::SentToGateway,
                created_at: Timestamp(1),
            })
            .collect();
        let snapshot = protocol::compile::compile_snapshot(
            protocol::compile::GatewayState {
                gateway: &gateway,
                environments: std::slice::from_ref(&env),
                apis: &apis,
                deployments: &deployments,
                redirects: &[],
            },
            1,
        );
        assert_eq!(snapshot.config.apis.len(), 10_000);
        let frame = serde_json::to_string(&PlatformMessage::Snapshot {
            snapshot: Box::new(snapshot),
        })
        .unwrap();
        eprintln!("snapshot frame of 10,000 APIs: {} bytes", frame.len());
        assert!(frame.len() * 4 < MAX_FRAME_BYTES, "{} bytes", frame.len());
    }
}
