//! Bearer-token authentication and role checks (SPEC §14).
//!
//! Personal API tokens are `sy_pat_` + 256 random bits in hex; install tokens `sy_inst_` + the
//! same. Both are stored only as their SHA-256 (hex): they are high-entropy secrets, so a fast
//! hash is enough and lets the store look a token up by its hash in one indexed query
//! (Argon2id is for low-entropy passwords). The account of a request always comes from the
//! authenticated user, never from a parameter. Wrong tokens count against their source
//! address (`throttle`): past the limit it gets 429 until its window ends.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use model::{AccountId, Role, User};
use rand::RngCore;
use sha2::{Digest, Sha256};
use store::{Actor, Audit, AuditTarget};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::throttle::{self, ClientIp, Secret};

/// Prefix of personal API tokens.
pub const API_TOKEN_PREFIX: &str = "sy_pat_";
/// Prefix of install tokens.
pub const INSTALL_TOKEN_PREFIX: &str = "sy_inst_";
/// Characters of a token kept in listings to recognise it (`sy_pat_` + 6 hex digits).
const SHOWN_PREFIX_CHARS: usize = 13;

/// A new random secret with `prefix`.
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// SHA-256 of a token, hex: what the store keeps.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The non-secret part of a token shown in listings.
pub fn shown_prefix(secret: &str) -> String {
    secret.chars().take(SHOWN_PREFIX_CHARS).collect()
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: User,
    pub token_id: model::TokenId,
}

/// What an action needs of the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any member of an account (viewer and up): reads.
    Member,
    /// Admin or owner: manage gateways, environments, APIs.
    Manage,
    /// Owner: users and roles, deleting gateways.
    Owner,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor::User(self.user.id)
    }

    /// An audit entry for `action` by this caller at `state.now()`.
    pub fn audit(&self, state: &AppState, action: &str) -> Audit {
        Audit::new(self.actor(), action, state.now())
    }

    /// The caller's account if its role allows `need`; otherwise 403, recorded as a denied
    /// action in the audit log when `action` is a change (`Some`).
    pub async fn require(
        &self,
        state: &AppState,
        need: Need,
        action: Option<(&str, Option<AuditTarget>)>,
    ) -> ApiResult<AccountId> {
        let Some(account) = self.user.account_id else {
            return Err(self
                .deny(
                    state,
                    None,
                    action,
                    "platform administrators belong to no account; use a token of an account user",
                )
                .await);
        };
        let allowed = match need {
            Need::Member => true,
            Need::Manage => self.user.role.can_manage(),
            Need::Owner => self.user.role.is_owner(),
        };
        if allowed {
            return Ok(account);
        }
        let needed = match need {
            Need::Member => Role::Viewer,
            Need::Manage => Role::Admin,
            Need::Owner => Role::Owner,
        };
        let message = format!(
            "role {} may not do this; it needs {}",
            self.user.role.as_str(),
            if needed == Role::Owner {
                "owner"
            } else {
                "admin or owner"
            }
        );
        Err(self.deny(state, Some(account), action, &message).await)
    }

    /// 403 unless the caller is a platform administrator (accounts endpoints).
    pub async fn require_platform_admin(
        &self,
        state: &AppState,
        action: Option<(&str, Option<AuditTarget>)>,
    ) -> ApiResult<()> {
        if self.user.platform_admin {
            Ok(())
        } else {
            Err(self
                .deny(
                    state,
                    self.user.account_id,
                    action,
                    "only a platform administrator may do this",
                )
                .await)
        }
    }

    /// Hands `result` back; a change refused by a rule (422) is first recorded as a failed
    /// action in the audit log. Other errors pass through unrecorded (nothing was decided).
    pub async fn audit_refusal<T>(
        &self,
        state: &AppState,
        account: AccountId,
        action: &str,
        target: AuditTarget,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let Err(error) = &result else {
            return result;
        };
        if error.status == axum::http::StatusCode::UNPROCESSABLE_ENTITY {
            let audit =
                self.audit(state, action)
                    .with_target(target)
                    .with_details(serde_json::json!({
                        "code": error.code,
                        "field": error.details.get("field"),
                    }));
            if let Err(e) = state
                .store
                .append_audit(Some(account), audit, store::AuditResult::Failed)
                .await
            {
                tracing::warn!(error = %e, action, "could not record failed action");
            }
        }
        result
    }

    async fn deny(
        &self,
        state: &AppState,
        account: Option<AccountId>,
        action: Option<(&str, Option<AuditTarget>)>,
        message: &str,
    ) -> ApiError {
        if let Some((action, target)) = action {
            let mut audit = self.audit(state, action);
            audit.target = target;
            if let Err(error) = state.store.record_denied(account, audit).await {
                // The refusal stands either way; a lost audit record is an operational problem.
                tracing::warn!(%error, action, "could not record denied action");
            }
        }
        ApiError::forbidden(message)
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthenticated("missing `Authorization: Bearer <token>` header")
            })?;
        let value = header
            .to_str()
            .map_err(|_| ApiError::unauthenticated("malformed Authorization header"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthenticated("expected `Authorization: Bearer <token>`"))?;
        // A presented token is a guess until it matches: its source is checked first.
        let ip = ClientIp::of(parts);
        throttle::check_secret(state, ip)?;
        let found = if token.starts_with(API_TOKEN_PREFIX) && token.len() <= 200 {
            state
                .store
                .find_api_token(&hash_secret(token), state.now())
                .await
                .map_err(ApiError::from)?
        } else {
            None
        };
        match found {
            Some(principal) => Ok(Principal {
                user: principal.user,
                token_id: principal.token.id,
            }),
            None => {
                let refusal = ApiError::unauthenticated("invalid or expired token");
                Err(throttle::secret_failed(state, ip, Secret::ApiToken, refusal).await)
            }
        }
    }
}
