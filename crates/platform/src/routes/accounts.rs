//! Accounts: created and listed by platform administrators only; a member may read their own
//! account, and any other id answers 404 to them, exactly like an id that does not exist.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use model::AccountId;
use store::NewApiToken;

use crate::auth::Principal;
use crate::auth::{API_TOKEN_PREFIX, hash_secret, new_secret, shown_prefix};
use crate::dto::{AccountDto, AccountList, CreateAccount, CreatedAccount};
use crate::error::{ApiError, ApiResult, ErrorEnvelope, OrNotFound};
use crate::json::Json;
use crate::json::Query;
use crate::routes::{paginate, parse_id};
use crate::state::AppState;

/// Create an account with a first owner; answers the owner's token once.
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts",
    request_body = CreateAccount,
    responses(
        (status = 201, body = CreatedAccount),
        (status = 403, description = "not a platform administrator", body = ErrorEnvelope),
        (status = 409, description = "name taken", body = ErrorEnvelope),
        (status = 422, description = "invalid name", body = ErrorEnvelope),
    ))]
pub async fn create_account(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateAccount>,
) -> ApiResult<(StatusCode, axum::Json<CreatedAccount>)> {
    principal
        .require_platform_admin(&state, Some(("account.create", None)))
        .await?;
    let name = model::validate::validate_account_name(&body.name)?;
    // One transaction: a failure never leaves an account without its owner.
    let secret = new_secret(API_TOKEN_PREFIX);
    let (account, owner, _) = state
        .store
        .create_account_with_owner(
            &name,
            "Owner",
            NewApiToken {
                // Overwritten by the store with the new owner's id.
                user_id: model::UserId(uuid::Uuid::nil()),
                name: "initial owner token".into(),
                prefix: shown_prefix(&secret),
                hash: hash_secret(&secret),
                expires_at: None,
            },
            principal.audit(&state, "account.create"),
        )
        .await?;
    let token = secret;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedAccount {
            id: account.id.0,
            name: account.name,
            created_at: crate::dto::rfc3339(account.created_at),
            owner_user_id: owner.id.0,
            owner_token: token.clone(),
            token,
        }),
    ))
}

/// List all accounts.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts",
    params(crate::dto::PageQuery),
    responses((status = 200, body = AccountList), (status = 403, body = ErrorEnvelope)))]
pub async fn list_accounts(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<crate::dto::PageQuery>,
) -> ApiResult<axum::Json<AccountList>> {
    principal.require_platform_admin(&state, None).await?;
    let accounts = state.store.accounts().await?;
    let (page, next_cursor) = paginate(accounts, |a| a.id.0, &query)?;
    Ok(axum::Json(AccountList {
        accounts: page.iter().map(AccountDto::from).collect(),
        next_cursor,
    }))
}

/// One account: any account for a platform administrator; for the users of an account, their
/// own account only. Every other id answers 404, whether or not it exists.
#[utoipa::path(get, path = "/api/v1/accounts/{id}", tag = "accounts",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = AccountDto),
        (status = 404, description = "no such account, or not the caller's", body = ErrorEnvelope)))]
pub async fn get_account(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AccountDto>> {
    let id: AccountId = parse_id(&id, "account")?;
    if !principal.user.platform_admin && principal.user.account_id != Some(id) {
        return Err(ApiError::not_found("account"));
    }
    let account = state.store.account(id).await.or_404("account")?;
    Ok(axum::Json(AccountDto::from(&account)))
}
