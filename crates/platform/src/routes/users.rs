//! Users of the caller's account and their roles; managed by owners.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use model::UserId;
use store::{AuditTarget, NewUser};

use crate::auth::{Need, Principal};
use crate::bootstrap::mint_token;
use crate::dto::{CreateUser, CreatedUser, UpdateUser, UserDto, UserList};
use crate::error::{ApiError, ApiResult, ErrorEnvelope, OrNotFound};
use crate::json::Json;
use crate::json::Query;
use crate::routes::{paginate, parse_id};
use crate::state::AppState;

/// Who the token belongs to.
#[utoipa::path(get, path = "/api/v1/me", tag = "users",
    responses((status = 200, body = UserDto), (status = 401, body = ErrorEnvelope)))]
pub async fn me(principal: Principal) -> axum::Json<UserDto> {
    axum::Json(UserDto::from(&principal.user))
}

/// Create a user in the caller's account (owner only); answers a first token for them once.
/// An e-mail address is unique within the account (409 `USER_EMAIL_TAKEN`); the same address
/// in another account is another user and never changes this answer.
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    request_body = CreateUser,
    responses((status = 201, body = CreatedUser), (status = 403, body = ErrorEnvelope),
        (status = 409, description = "USER_EMAIL_TAKEN: the e-mail address is in use in this account", body = ErrorEnvelope),
        (status = 422, description = "USER_NAME_*, USER_EMAIL_INVALID", body = ErrorEnvelope)))]
pub async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateUser>,
) -> ApiResult<(StatusCode, axum::Json<CreatedUser>)> {
    let account = principal
        .require(&state, Need::Owner, Some(("user.create", None)))
        .await?;
    let name = model::validate::validate_user_name(&body.name)?;
    let email = body
        .email
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    if let Some(email) = &email {
        if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_whitespace) {
            return Err(ApiError::validation(
                "USER_EMAIL_INVALID",
                "email",
                "e-mail address is not valid",
            ));
        }
    }
    let user = state
        .store
        .create_user(
            NewUser {
                account_id: Some(account),
                name,
                email,
                role: body.role.into(),
                platform_admin: false,
                password_hash: None,
            },
            principal.audit(&state, "user.create"),
        )
        .await?;
    let token = mint_token(&state.store, &user, "initial token", state.now()).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedUser {
            user: UserDto::from(&user),
            token,
        }),
    ))
}

/// The users of the caller's account.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    params(crate::dto::PageQuery),
    responses((status = 200, body = UserList), (status = 401, body = ErrorEnvelope)))]
pub async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<crate::dto::PageQuery>,
) -> ApiResult<axum::Json<UserList>> {
    let account = principal.require(&state, Need::Member, None).await?;
    let users = state.store.users(account).await?;
    let (page, next_cursor) = paginate(users, |u| u.id.0, &query)?;
    Ok(axum::Json(UserList {
        users: page.iter().map(UserDto::from).collect(),
        next_cursor,
    }))
}

/// One user of the caller's account.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = UserDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<UserDto>> {
    let account = principal.require(&state, Need::Member, None).await?;
    let id: UserId = parse_id(&id, "user")?;
    let user = state.store.user(account, id).await.or_404("user")?;
    Ok(axum::Json(UserDto::from(&user)))
}

/// Change a user's role (owner only).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = uuid::Uuid, Path)), request_body = UpdateUser,
    responses((status = 200, body = UserDto), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn update_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<UpdateUser>,
) -> ApiResult<axum::Json<UserDto>> {
    let target = AuditTarget::new("user", &id);
    let account = principal
        .require(&state, Need::Owner, Some(("user.set_role", Some(target))))
        .await?;
    let id: UserId = parse_id(&id, "user")?;
    let role: model::Role = body.role.into();
    if id == principal.user.id && role != model::Role::Owner {
        // An account must keep an owner who can undo this; demote yourself via another owner.
        return Err(ApiError::conflict(
            "CANNOT_DEMOTE_SELF",
            "an owner cannot change their own role",
        ));
    }
    let user = state
        .store
        .set_user_role(account, id, role, principal.audit(&state, "user.set_role"))
        .await
        .or_404("user")?;
    Ok(axum::Json(UserDto::from(&user)))
}

/// Delete a user of the caller's account with their tokens (owner only).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn delete_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let target = AuditTarget::new("user", &id);
    let account = principal
        .require(&state, Need::Owner, Some(("user.delete", Some(target))))
        .await?;
    let id: UserId = parse_id(&id, "user")?;
    if id == principal.user.id {
        // The account must keep the owner who is acting; another owner can remove them.
        return Err(ApiError::conflict(
            "CANNOT_DELETE_SELF",
            "an owner cannot delete themselves",
        ));
    }
    state
        .store
        .delete_user(account, id, principal.audit(&state, "user.delete"))
        .await
        .or_404("user")?;
    Ok(StatusCode::NO_CONTENT)
}
