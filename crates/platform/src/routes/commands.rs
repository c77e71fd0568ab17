//! Commands to a gateway's nodes (SPEC §5, §10): `POST /gateways/{id}/restart` (a rolling
//! restart, run by `crate::link::commands::roll`) and `POST /gateways/{id}/stop`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use model::{GatewayId, NodeId};
use protocol::link::Command;
use serde::Serialize;
use store::{AuditResult, AuditTarget};
use utoipa::ToSchema;

use crate::auth::{Need, Principal};
use crate::error::{ApiError, ApiResult, ErrorEnvelope, OrNotFound};
use crate::link::commands;
use crate::routes::parse_id;
use crate::state::AppState;

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
    let at = state.now();
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
            let sent_at = link.now();
            let command = Command::Restart { drain_timeout_ms };
            if let Err(error) = link.send_command(first, &command_id, &command).await {
                tracing::warn!(%error, node = %first, command_id, "could not send restart");
                return Err(error.into());
            }
            let nodes = nodes.clone();
            let command_id = command_id.clone();
            tokio::spawn(async move {
                commands::roll(&link, &command_id, &nodes, sent_at, drain_timeout_ms, limit).await;
            });
        }
        Kind::Stop => {
            for node in &nodes {
                let command = Command::Stop { drain_timeout_ms };
                if let Err(error) = state.link.send_command(*node, &command_id, &command).await {
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
