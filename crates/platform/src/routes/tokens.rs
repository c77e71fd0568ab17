//! Personal API tokens (self-service, shown once) and install tokens for joining nodes.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use model::{InstallTokenId, TokenId};
use store::{AuditTarget, NewApiToken, NewInstallToken};

use crate::auth::{
    API_TOKEN_PREFIX, INSTALL_TOKEN_PREFIX, Need, Principal, hash_secret, new_secret, shown_prefix,
};
use crate::dto::{
    CreateInstallToken, CreateToken, CreatedInstallToken, CreatedToken, InstallTokenDto,
    InstallTokenList, TokenDto, TokenList, rfc3339,
};
use crate::error::{ApiError, ApiResult, ErrorEnvelope, OrNotFound};
use crate::json::Json;
use crate::json::Query;
use crate::routes::{paginate, parse_id};
use crate::state::AppState;

const MAX_TOKEN_DAYS: u32 = 3650;

/// Create a personal API token for the caller; the secret is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens",
    request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 422, body = ErrorEnvelope)))]
pub async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateToken>,
) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    let name = model::validate::validate_token_name(&body.name)?;
    let now = state.now();
    let expires_at = match body.expires_in_days {
        None => None,
        Some(days) if (1..=MAX_TOKEN_DAYS).contains(&days) => {
            Some(now.plus(Duration::from_secs(u64::from(days) * 86_400)))
        }
        Some(_) => {
            return Err(ApiError::validation(
                "TOKEN_EXPIRY_OUT_OF_RANGE",
                "expires_in_days",
                format!("expires_in_days must be from 1 to {MAX_TOKEN_DAYS}"),
            ));
        }
    };
    let secret = new_secret(API_TOKEN_PREFIX);
    let token = state
        .store
        .create_api_token(
            NewApiToken {
                user_id: principal.user.id,
                name,
                prefix: shown_prefix(&secret),
                hash: hash_secret(&secret),
                expires_at,
            },
            principal.audit(&state, "api_token.create"),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedToken {
            info: TokenDto::from(&token),
            token: secret,
        }),
    ))
}

/// The caller's tokens, revoked and expired ones included; never the secrets.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    params(crate::dto::PageQuery),
    responses((status = 200, body = TokenList), (status = 401, body = ErrorEnvelope)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<crate::dto::PageQuery>,
) -> ApiResult<axum::Json<TokenList>> {
    let tokens = state.store.api_tokens(principal.user.id).await?;
    let (page, next_cursor) = paginate(tokens, |t| t.id.0, &query)?;
    Ok(axum::Json(TokenList {
        tokens: page.iter().map(TokenDto::from).collect(),
        next_cursor,
    }))
}

/// Revoke one of the caller's tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: TokenId = parse_id(&id, "token")?;
    state
        .store
        .revoke_api_token(
            principal.user.id,
            id,
            principal.audit(&state, "api_token.revoke"),
        )
        .await
        .or_404("token")?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create an install token for joining gateway nodes (admin or owner), valid 30–1440 minutes;
/// the secret is in this response only.
#[utoipa::path(post, path = "/api/v1/install-tokens", tag = "gateways",
    request_body = CreateInstallToken,
    responses((status = 201, body = CreatedInstallToken), (status = 403, body = ErrorEnvelope),
        (status = 422, description = "INSTALL_TOKEN_VALIDITY_OUT_OF_RANGE", body = ErrorEnvelope)))]
pub async fn create_install_token(
    State(state): State<AppState>,
    principal: Principal,
    headers: axum::http::HeaderMap,
    Json(body): Json<CreateInstallToken>,
) -> ApiResult<(StatusCode, axum::Json<CreatedInstallToken>)> {
    let account = principal
        .require(&state, Need::Manage, Some(("install_token.create", None)))
        .await?;
    let minutes = u64::try_from(body.valid_for_minutes).unwrap_or(0);
    let validity = Duration::from_secs(minutes.saturating_mul(60));
    model::validate::validate_install_token_validity(validity).map_err(|e| {
        ApiError::validation(
            e.code(),
            "valid_for_minutes",
            "valid_for_minutes must be from 30 to 1440",
        )
    })?;
    let now = state.now();
    let secret = new_secret(INSTALL_TOKEN_PREFIX);
    let token = state
        .store
        .create_install_token(
            account,
            NewInstallToken {
                hash: hash_secret(&secret),
                expires_at: now.plus(validity),
                created_by: Some(principal.user.id),
            },
            principal.audit(&state, "install_token.create"),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedInstallToken {
            id: token.id.0,
            join_command: join_command(&headers, &secret),
            token: secret,
            expires_at: rfc3339(token.expires_at),
        }),
    ))
}

/// Revoke an install token of the caller's account (admin or owner).
#[utoipa::path(delete, path = "/api/v1/install-tokens/{id}", tag = "gateways",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn revoke_install_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    revoke_account_install_token(&state, &principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes the install token `raw_id` of the principal's account (admin or owner; a refusal
/// is audited), and answers it as it is now: revoking a revoked token keeps its first
/// `revoked_at`, which is then before this call. The rule of the REST handler and the
/// console.
pub(crate) async fn revoke_account_install_token(
    state: &AppState,
    principal: &Principal,
    raw_id: &str,
) -> ApiResult<store::InstallToken> {
    let account = principal
        .require(
            state,
            Need::Manage,
            Some((
                "install_token.revoke",
                Some(AuditTarget::new("install_token", raw_id)),
            )),
        )
        .await?;
    let id: InstallTokenId = parse_id(raw_id, "install token")?;
    let token = state
        .store
        .revoke_install_token(account, id, principal.audit(state, "install_token.revoke"))
        .await
        .or_404("install token")?;
    Ok(token)
}

/// The `switchyard gateway` line that joins a node with `secret`, addressed to the platform
/// as the caller reached it (its `Host`).
fn join_command(headers: &axum::http::HeaderMap, secret: &str) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("127.0.0.1:8080");
    format!(
        "switchyard gateway --platform http://{host} --install-token {secret} --name GATEWAY_NAME"
    )
}

/// The install tokens of the caller's account (admin or owner), newest first, revoked and
/// expired ones included; never the secrets.
#[utoipa::path(get, path = "/api/v1/install-tokens", tag = "gateways",
    params(crate::dto::PageQuery),
    responses((status = 200, body = InstallTokenList), (status = 403, body = ErrorEnvelope)))]
pub async fn list_install_tokens(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<crate::dto::PageQuery>,
) -> ApiResult<axum::Json<InstallTokenList>> {
    let tokens = account_install_tokens(&state, &principal).await?;
    let (page, next_cursor) = paginate(tokens, |t| t.id.0, &query)?;
    Ok(axum::Json(InstallTokenList {
        install_tokens: page.iter().map(InstallTokenDto::from).collect(),
        next_cursor,
    }))
}

/// The install tokens of the principal's account (admin or owner), newest first, revoked
/// and expired ones included. The rule of the REST list and the console.
pub(crate) async fn account_install_tokens(
    state: &AppState,
    principal: &Principal,
) -> ApiResult<Vec<store::InstallToken>> {
    let account = principal.require(state, Need::Manage, None).await?;
    Ok(state.store.install_tokens(account).await?)
}
