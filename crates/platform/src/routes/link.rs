//! `GET /api/v1/link`: the node link's WebSocket upgrade (SPEC §10). The node credential
//! and the protocol version are checked before the upgrade (401 / 400 with the error
//! envelope); the upgraded socket is served by `crate::link::server`.

use axum::extract::State;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use protocol::link::{PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, check_protocol_version};
use store::NodeCredential;

use crate::error::{ApiError, ErrorEnvelope};
use crate::link::{NODE_CREDENTIAL_PREFIX, server};
use crate::state::AppState;
use crate::throttle::{self, ClientIp, Secret};

/// The node link: a WebSocket upgrade authenticated by a node credential
/// (`Authorization: Bearer sy_node_…`) with the header `x-switchyard-protocol: 1`. Frames are
/// JSON `NodeMessage`s / `PlatformMessage`s (crate `protocol`): the node sends `hello`, the
/// platform answers `welcome` and the current `snapshot`, then pushes snapshots and commands.
#[utoipa::path(get, path = "/api/v1/link", tag = "gateways", security(()),
    params(("x-switchyard-protocol" = u32, Header, minimum = 1, maximum = 1, description = "link protocol version (1)")),
    responses(
        (status = 101, description = "switching to the WebSocket link"),
        (status = 400, description = "PROTOCOL_VERSION_MISMATCH, or not a WebSocket upgrade", body = ErrorEnvelope),
        (status = 401, description = "unknown or revoked node credential, or deleted gateway", body = ErrorEnvelope),
        (status = 429, description = "TOO_MANY_REQUESTS: too many wrong node credentials from this source; see `Retry-After`",
            headers(("Retry-After" = u64, description = "seconds until the source may try again")),
            body = ErrorEnvelope)))]
pub async fn link(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let credential = match authenticate(&state, ip, &headers).await {
        Ok(c) => c,
        Err(e) => {
            // The node reads the platform's version from this header on any refusal.
            let mut response = e.into_response();
            response.headers_mut().insert(
                PROTOCOL_VERSION_HEADER,
                axum::http::HeaderValue::from(PROTOCOL_VERSION),
            );
            return response;
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "NOT_A_WEBSOCKET_UPGRADE",
                format!("the link is a WebSocket: {rejection}"),
            )
            .into_response();
        }
    };
    let link = state.link.clone();
    ws.max_message_size(server::MAX_NODE_FRAME_BYTES)
        .max_frame_size(server::MAX_NODE_FRAME_BYTES)
        .read_buffer_size(server::LINK_READ_BUFFER_BYTES)
        // Every frame is written (and flushed) as it is sent: nothing to gather, so no
        // buffer held back; the write buffer only holds the frame being written, however
        // large (a snapshot of 10,000 APIs), so its maximum stays unlimited.
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            let node = credential.node_id;
            if let Err(error) = server::run(link, socket, credential, ip.0).await {
                tracing::debug!(%error, ?node, "link closed");
            }
        })
}

async fn authenticate(
    state: &AppState,
    ip: ClientIp,
    headers: &HeaderMap,
) -> Result<NodeCredential, ApiError> {
    let version = headers
        .get(PROTOCOL_VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                protocol::link::RefusalCode::ProtocolVersionMismatch.as_str(),
                format!(
                    "missing or malformed `{PROTOCOL_VERSION_HEADER}` header; this platform \
                     speaks link protocol version {PROTOCOL_VERSION}"
                ),
            )
        })?;
    check_protocol_version(version).map_err(version_error)?;
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| t.starts_with(NODE_CREDENTIAL_PREFIX) && t.len() <= 200)
        .ok_or_else(|| {
            ApiError::unauthenticated("expected `Authorization: Bearer <node credential>`")
        })?;
    throttle::check_secret(state, ip)?;
    match state
        .store
        .find_node_credential(&crate::auth::hash_secret(token))
        .await?
    {
        Some(credential) => Ok(credential),
        None => {
            let refusal = ApiError::unauthenticated(
                "unknown or revoked node credential (or its gateway was deleted); join again",
            );
            Err(throttle::secret_failed(state, ip, Secret::NodeCredential, refusal).await)
        }
    }
}

pub(crate) fn version_error(e: protocol::link::VersionMismatch) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        protocol::link::RefusalCode::ProtocolVersionMismatch.as_str(),
        e.to_string(),
    )
    .with_details(serde_json::json!({ "platform": e.ours, "node": e.theirs }))
}
