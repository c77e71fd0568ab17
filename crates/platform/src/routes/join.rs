//! `POST /api/v1/nodes/join`: a node exchanges an install token for a node credential
//! (SPEC §10). A new gateway name creates the gateway in the token's account; an existing
//! one adds the node to its cluster. The credential is random, stored as its SHA-256, bound
//! to the gateway, the account and the node id, and revocable (deleting the gateway does).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use model::{AccountId, Gateway, NodeId};
use protocol::link::{JoinRequest, JoinResponse, PROTOCOL_VERSION_HEADER, check_protocol_version};
use serde::Serialize;
use store::{Actor, Audit, AuditTarget, NewGateway, StoreError};
use utoipa::ToSchema;

use crate::auth::{hash_secret, new_secret};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::json::parse_json;
use crate::state::AppState;
use crate::throttle::{self, ClientIp, Secret};

/// The body of a join (the wire type is `protocol::link::JoinRequest`).
#[allow(dead_code)]
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// Link protocol version of the node (1).
    #[schema(minimum = 1, maximum = 1)]
    pub protocol_version: u32,
    /// An install token of the account (`sy_inst_…`), valid 30 min to 24 h.
    pub install_token: String,
    /// A new name creates the gateway; an existing one adds a node to its cluster.
    pub gateway_name: String,
    /// The node's id (a UUID it generated once and keeps in its data directory).
    pub node_id: uuid::Uuid,
    pub host_name: String,
    pub runtime_version: String,
}

/// The answer of a join (the wire type is `protocol::link::JoinResponse`).
#[allow(dead_code)]
#[derive(ToSchema, Serialize)]
pub struct JoinAnswer {
    pub gateway_id: uuid::Uuid,
    pub gateway_name: String,
    pub account_id: uuid::Uuid,
    pub node_id: uuid::Uuid,
    /// Bearer credential of the link (`sy_node_…`), shown only here.
    pub node_credential: String,
}

/// Join a gateway node with an install token (no bearer token: the install token in the body
/// authenticates). Refused with 400 `PROTOCOL_VERSION_MISMATCH` when the node speaks another
/// link protocol version, 401 for an unknown, revoked or expired install token, 429 (with
/// `Retry-After`) for a source with too many wrong install tokens.
#[utoipa::path(post, path = "/api/v1/nodes/join", tag = "gateways", security(()),
    request_body = JoinBody,
    responses((status = 201, body = JoinAnswer),
        (status = 400, description = "PROTOCOL_VERSION_MISMATCH or malformed body", body = ErrorEnvelope),
        (status = 401, description = "invalid or expired install token", body = ErrorEnvelope),
        (status = 409, description = "NODE_ID_TAKEN", body = ErrorEnvelope),
        (status = 422, description = "GATEWAY_NAME_*", body = ErrorEnvelope),
        (status = 429, description = "TOO_MANY_REQUESTS: too many wrong install tokens from this source; see `Retry-After`",
            headers(("Retry-After" = u64, description = "seconds until the source may try again")),
            body = ErrorEnvelope)))]
pub async fn join(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<JoinResponse>)> {
    // The version first: a node of another version may send a body this one cannot read.
    if let Some(v) = headers.get(PROTOCOL_VERSION_HEADER) {
        let v = v.to_str().ok().and_then(|v| v.trim().parse::<u32>().ok());
        check_protocol_version(v.unwrap_or(0)).map_err(super::link::version_error)?;
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(v) = value.get("protocol_version").and_then(|v| v.as_u64())
    {
        check_protocol_version(u32::try_from(v).unwrap_or(u32::MAX))
            .map_err(super::link::version_error)?;
    }
    let request: JoinRequest = parse_json(&body)?;
    check_protocol_version(request.protocol_version).map_err(super::link::version_error)?;
    let node: NodeId = request
        .node_id
        .parse()
        .map_err(|_| ApiError::bad_field("INVALID_FIELD", "node_id", "node_id must be a UUID"))?;
    let at = state.now();
    throttle::check_secret(&state, ip)?;
    let Some(token) = state
        .store
        .find_install_token(&hash_secret(request.install_token.trim()), at)
        .await?
    else {
        let refusal = ApiError::unauthenticated("invalid, revoked or expired install token");
        return Err(throttle::secret_failed(&state, ip, Secret::InstallToken, refusal).await);
    };
    let account = token.account_id;
    let audit = |action: &str| Audit::new(Actor::Node(node), action, at);
    let name = model::validate::validate_gateway_name(&request.gateway_name)
        .map_err(|e| ApiError::validation(e.code(), "gateway_name", e.to_string()))?;

    // Refused before a new gateway is created for it; `join_node` below decides, atomically.
    if state.store.node_registered(node).await? {
        return Err(node_id_taken(node));
    }
    let (gateway, created) = find_or_create_gateway(&state, account, &name, &audit).await?;
    let node_row = model::Node {
        id: node,
        gateway_id: gateway.id,
        host_name: request.host_name.chars().take(255).collect(),
        address: None,
        version: request.runtime_version.chars().take(100).collect(),
        joined_at: at,
        last_seen: None,
        applied_generation: None,
    };
    let secret = new_secret(crate::link::NODE_CREDENTIAL_PREFIX);
    let mut join_audit = audit("node.join").with_target(AuditTarget::new("node", node));
    join_audit.details = serde_json::json!({
        "gateway_id": gateway.id.to_string(),
        "gateway_created": created,
        "install_token_id": token.id.to_string(),
        "host_name": node_row.host_name,
    });
    state
        .store
        .join_node(account, &node_row, &hash_secret(&secret), join_audit)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => node_id_taken(node),
            other => other.into(),
        })?;
    // A new gateway (or a node's first join) gets its first generation published now, so
    // the node's link starts from a published snapshot.
    state.link.changed(account);
    Ok((
        StatusCode::CREATED,
        axum::Json(JoinResponse {
            gateway_id: gateway.id.to_string(),
            gateway_name: gateway.name,
            account_id: account.to_string(),
            node_id: node.to_string(),
            node_credential: secret,
        }),
    ))
}

/// 409 `NODE_ID_TAKEN`: the node id is registered already (in this gateway or another, of
/// any account). Joining again never moves a node; the message says how to re-join.
fn node_id_taken(node: NodeId) -> ApiError {
    ApiError::conflict(
        "NODE_ID_TAKEN",
        format!(
            "node id {node} is already registered; to join again, remove the node from its \
             gateway's Cluster Status (DELETE /api/v1/gateways/{{id}}/nodes/{node}) and retry, \
             or start the node with a fresh data directory (a new node id)"
        ),
    )
    .with_details(serde_json::json!({ "node_id": node.to_string() }))
}

/// The live gateway of `account` named `name`, created when there is none. Two nodes
/// joining a new name at once: the loser of the create finds the winner's gateway.
async fn find_or_create_gateway(
    state: &AppState,
    account: AccountId,
    name: &str,
    audit: &impl Fn(&str) -> Audit,
) -> ApiResult<(Gateway, bool)> {
    for _ in 0..3 {
        if let Some(g) = state.store.gateway_by_name(account, name).await? {
            return Ok((g, false));
        }
        match state
            .store
            .create_gateway(account, NewGateway::named(name), audit("gateway.create"))
            .await
        {
            Ok(g) => return Ok((g, true)),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        "GATEWAY_NAME_TAKEN",
        "the gateway name is taken and could not be read; retry",
    ))
}
