//! Commands from the REST API to a gateway's nodes (SPEC §5, §10): a rolling restart (one
//! node at a time: drained, restarted, back online before the next) and a stop.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use model::status::NodeState;
use model::{AccountId, GatewayId, NodeId};
use protocol::link::Command;
use serde::Serialize;
use store::{Actor, Audit, AuditResult, AuditTarget};
use utoipa::ToSchema;

use super::{Link, publisher};
use crate::auth::{Need, Principal};
use crate::error::{ApiError, ApiResult, ErrorEnvelope, OrNotFound};
use crate::routes::parse_id;
use crate::state::{AppState, now};

/// How often the rolling restart looks at the restarting node's record.
const ROLL_POLL: Duration = Duration::from_millis(50);

/// A command accepted for a gateway's nodes; it runs in the background.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandAccepted {
    pub command_id: String,
    /// The nodes the command goes to, in the order it reaches them.
    pub nodes: Vec<uuid::Uuid>,
}

/// Restart a gateway (owner only): a rolling restart across its online nodes, one at a time,
/// each drained first (for at most Force Restart, else the platform's drain timeout) and back
/// online before the next. 409 `NO_NODE_ONLINE` when no node is online.
#[utoipa::path(post, path = "/api/v1/gateways/{id}/restart", tag = "gateways",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 202, body = CommandAccepted), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "NO_NODE_ONLINE", body = ErrorEnvelope)))]
pub async fn restart_gateway(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<CommandAccepted>)> {
    command(state, principal, raw, Kind::Restart).await
}

/// Stop every online node of a gateway (owner only); each drains first. The nodes stay
/// stopped until they are started again on their hosts.
#[utoipa::path(post, path = "/api/v1/gateways/{id}/stop", tag = "gateways",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 202, body = CommandAccepted), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "NO_NODE_ONLINE", body = ErrorEnvelope)))]
pub async fn stop_gateway(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<CommandAccepted>)> {
    command(state, principal, raw, Kind::Stop).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Restart,
    Stop,
}

async fn command(
    state: AppState,
    principal: Principal,
    raw: String,
    kind: Kind,
) -> ApiResult<(StatusCode, axum::Json<CommandAccepted>)> {
    let action = match kind {
        Kind::Restart => "gateway.restart",
        Kind::Stop => "gateway.stop",
    };
    let account = principal
        .require(
            &state,
            Need::Owner,
            Some((action, Some(AuditTarget::new("gateway", &raw)))),
        )
        .await?;
    let id: GatewayId = parse_id(&raw, "gateway")?;
    let gateway = state.store.gateway(account, id).await.or_404("gateway")?;
    if gateway.deleted_at.is_some() {
        return Err(ApiError::not_found("gateway"));
    }
    let at = now();
    // Online nodes, oldest (the head node) last so the head stays up longest.
    let mut nodes: Vec<NodeId> = state
        .store
        .nodes(account, id)
        .await?
        .into_iter()
        .map(|(n, _)| n.id)
        .filter(|n| {
            state
                .link
                .node_status(*n, at)
                .is_some_and(|s| s.state == model::status::GatewayState::Online)
        })
        .collect();
    nodes.reverse();
    if nodes.is_empty() {
        return Err(ApiError::conflict(
            "NO_NODE_ONLINE",
            "no node of this gateway is online to receive the command",
        ));
    }
    let command_id = uuid::Uuid::now_v7().to_string();
    let drain = state.link.config().drain_timeout(&gateway.settings);
    let drain_timeout_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX);
    let mut audit = principal
        .audit(&state, action)
        .with_target(AuditTarget::new("gateway", id));
    audit.details = serde_json::json!({
        "command_id": command_id,
        "nodes": nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
    });
    state
        .store
        .append_audit(Some(account), audit, AuditResult::Allowed)
        .await?;
    match kind {
        Kind::Restart => {
            let link = state.link.clone();
            let limit = link
                .config()
                .status_settings(&gateway.settings)
                .unresponsive_after();
            // The first node's restart is requested before answering, so that a read right
            // after the answer already shows it Restarting.
            let first = nodes[0];
            let sent_at = now();
            let command = Command::Restart { drain_timeout_ms };
            if let Err(error) = publisher::send_command(&link, first, &command_id, &command).await {
                tracing::warn!(%error, node = %first, command_id, "could not send restart");
                return Err(error.into());
            }
            let nodes = nodes.clone();
            let command_id = command_id.clone();
            tokio::spawn(async move {
                roll(&link, &command_id, &nodes, sent_at, drain_timeout_ms, limit).await;
            });
        }
        Kind::Stop => {
            for node in &nodes {
                let command = Command::Stop { drain_timeout_ms };
                if let Err(error) =
                    publisher::send_command(&state.link, *node, &command_id, &command).await
                {
                    tracing::warn!(%error, %node, "could not send stop");
                }
            }
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(CommandAccepted {
            command_id,
            nodes: nodes.iter().map(|n| n.0).collect(),
        }),
    ))
}

/// The rolling restart: one node at a time; the next only when the previous one is back
/// online. The first node's command was sent at `first_sent_at`. A node that does not come
/// back within `limit`, or whose restart was cancelled (it never restarted), stops the roll
/// (a timed-out one shows as Restarting-unresponsive with RESTART_TIMED_OUT); the remaining
/// nodes keep serving.
async fn roll(
    link: &Link,
    command_id: &str,
    nodes: &[NodeId],
    first_sent_at: model::Timestamp,
    drain_timeout_ms: u64,
    limit: Duration,
) {
    for (i, node) in nodes.iter().enumerate() {
        let sent_at = if i == 0 {
            first_sent_at
        } else {
            let sent_at = now();
            let command = Command::Restart { drain_timeout_ms };
            if let Err(error) = publisher::send_command(link, *node, command_id, &command).await {
                tracing::warn!(%error, %node, command_id, "could not send restart; stopping the roll");
                return;
            }
            sent_at
        };
        let deadline = tokio::time::Instant::now() + limit;
        // The record may show the request late (the node is linked to another process).
        let mut seen_pending = false;
        loop {
            match restart_progress(link, *node, sent_at) {
                Progress::BackOnline => break,
                Progress::Pending => seen_pending = true,
                Progress::NotPending if seen_pending => {
                    tracing::warn!(%node, command_id, "the node's restart was cancelled; stopping the roll");
                    return;
                }
                Progress::NotPending => {}
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(%node, command_id, "node did not come back after a restart; stopping the roll");
                return;
            }
            tokio::time::sleep(ROLL_POLL).await;
        }
    }
    tracing::info!(command_id, "rolling restart done");
}

enum Progress {
    /// A restart is pending on the node's record.
    Pending,
    /// It reported `online` as a new state (after having said something else) since the
    /// command was sent, and no restart is pending.
    BackOnline,
    /// No restart is pending, and it has not come back since the command was sent: not
    /// recorded yet, or cancelled (it never restarted).
    NotPending,
}

/// How the restart of `node`, sent at `sent_at`, stands.
fn restart_progress(link: &Link, node: NodeId, sent_at: model::Timestamp) -> Progress {
    let Some(entry) = link.inner.records.get(node) else {
        return Progress::NotPending;
    };
    let r = &entry.record;
    if r.restart_since.is_some() {
        return Progress::Pending;
    }
    if r.reported == Some(model::status::ReportedState::Online)
        && r.reported_since > sent_at
        && link.node_status(node, now()) == Some(NodeState::Online.status())
    {
        return Progress::BackOnline;
    }
    Progress::NotPending
}

/// Records, with an audit record, that the restart of `node` was cancelled: it is running and
/// reporting, but it did not restart (the command was lost, or the platform gave up waiting).
/// It is no longer Restarting, so a new restart can be requested.
pub(crate) async fn restart_cancelled(
    link: &Link,
    account: AccountId,
    gateway: GatewayId,
    node: NodeId,
    reason: &str,
) {
    tracing::warn!(%node, %gateway, reason, "restart cancelled");
    let mut audit = Audit::new(Actor::System, "gateway.restart.cancelled", now())
        .with_target(AuditTarget::new("gateway", gateway));
    audit.details = serde_json::json!({ "node_id": node.to_string(), "reason": reason });
    if let Err(error) = link
        .store()
        .append_audit(Some(account), audit, AuditResult::Allowed)
        .await
    {
        tracing::warn!(%error, %node, "could not record a cancelled restart");
    }
}
