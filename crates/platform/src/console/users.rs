//! The Users and roles page: everyone of the account sees the users and their roles; owners
//! add users (with a first console password and API token, shown once), change roles and
//! remove users, through the REST handlers, whose owner-only rule and audit apply.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::form::FieldErrors;
use super::{Act, ConsoleResult, ConsoleUser, Layout, render};
use crate::auth::Need;
use crate::dto::{CreateUser, RoleDto, UpdateUser};
use crate::json::Json;
use crate::routes::users as rest;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(users_page).post(create))
        .route("/users/{id}/role", post(set_role))
        .route("/users/{id}/delete", get(confirm_delete).post(delete))
}

const ROLES: [(&str, &str); 3] = [
    ("viewer", "viewer — sees everything, changes nothing"),
    ("admin", "admin — manages gateways, environments, APIs"),
    (
        "owner",
        "owner — everything, incl. users, restart and delete",
    ),
];

fn parse_role(raw: &str) -> Option<RoleDto> {
    match raw {
        "viewer" => Some(RoleDto::Viewer),
        "admin" => Some(RoleDto::Admin),
        "owner" => Some(RoleDto::Owner),
        _ => None,
    }
}

struct UserRow {
    id: String,
    name: String,
    email: String,
    role: &'static str,
    created_at: String,
    me: bool,
}

/// The secrets of a user just created, shown once.
struct Created {
    name: String,
    email: String,
    password: String,
    token: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    l: Layout,
    owner: bool,
    rows: Vec<UserRow>,
    roles: &'static [(&'static str, &'static str)],
    name: String,
    email: String,
    role: String,
    errors: FieldErrors,
    created: Option<Created>,
}

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    notice: Option<&'static str>,
) -> ConsoleResult<UsersPage> {
    let account = user.principal.require(state, Need::Member, None).await?;
    let rows = state
        .store
        .users(account)
        .await?
        .into_iter()
        .map(|u| UserRow {
            id: u.id.to_string(),
            me: u.id == user.principal.user.id,
            name: u.name,
            email: u.email.unwrap_or_default(),
            role: u.role.as_str(),
            created_at: crate::dto::rfc3339(u.created_at),
        })
        .collect();
    Ok(UsersPage {
        l: Layout::new(user, "Users and roles", "users").with_notice(notice),
        owner: user.principal.user.role.is_owner(),
        rows,
        roles: &ROLES,
        name: String::new(),
        email: String::new(),
        role: "viewer".into(),
        errors: FieldErrors::default(),
        created: None,
    })
}

#[derive(serde::Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn users_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(query): Query<DoneQuery>,
) -> ConsoleResult<Response> {
    let notice = match query.done.as_deref() {
        Some("role") => Some("Role changed; it applies to the user's next request."),
        Some("deleted") => Some("User removed, with their API tokens and console sessions."),
        _ => None,
    };
    Ok(render(&page(&state, &user, notice).await?))
}

async fn create(State(state): State<AppState>, act: Act) -> ConsoleResult<Response> {
    let name = act.form.text("name");
    let email = act.form.text("email");
    let raw_role = act.form.text("role");
    let mut errors = FieldErrors::default();
    let created = match parse_role(&raw_role) {
        // The console signs in by e-mail; the REST side allows users without one.
        _ if email.is_empty() => {
            errors.set("email", "Enter the e-mail address the user signs in with.");
            None
        }
        None => {
            errors.set("role", "Choose viewer, admin or owner.");
            None
        }
        Some(role) => {
            let result = rest::create_user(
                State(state.clone()),
                act.user.principal(),
                Json(CreateUser {
                    name: name.clone(),
                    email: Some(email.clone()),
                    role,
                }),
            )
            .await;
            match result {
                Ok((_, created)) => {
                    let created = created.0;
                    // The console needs a password to sign in with; like `up`'s first owner,
                    // a generated one, shown once.
                    let password = super::session::set_initial_password(
                        &state.store,
                        model::UserId(created.user.id),
                        state.now(),
                    )
                    .await?;
                    Some(Created {
                        name: created.user.name,
                        email: created.user.email.unwrap_or_default(),
                        password,
                        token: created.token,
                    })
                }
                Err(e) => {
                    errors = FieldErrors::from_refusal(e, &["name", "email", "role"])?;
                    None
                }
            }
        }
    };
    let mut p = page(&state, &act.user, None).await?;
    let status = if created.is_some() {
        StatusCode::OK
    } else {
        p.name = name;
        p.email = email;
        p.role = raw_role;
        StatusCode::UNPROCESSABLE_ENTITY
    };
    p.errors = errors;
    p.created = created;
    Ok((status, render(&p)).into_response())
}

async fn set_role(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    act: Act,
) -> ConsoleResult<Response> {
    let Some(role) = parse_role(&act.form.text("role")) else {
        return Ok(Redirect::to("/users").into_response());
    };
    let _changed = rest::update_user(
        State(state),
        act.user.principal(),
        Path(raw),
        Json(UpdateUser { role }),
    )
    .await?;
    Ok(Redirect::to("/users?done=role").into_response())
}

#[derive(Template)]
#[template(path = "user_delete.html")]
struct ConfirmDelete {
    l: Layout,
    u: UserRow,
}

/// Removing asks first (owners only): the user's API tokens and console sessions end with it
/// and it cannot be undone.
async fn confirm_delete(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
) -> ConsoleResult<Response> {
    let mut p = page(&state, &user, None).await?;
    if !p.owner {
        return Err(super::ConsoleError::new(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Only an owner can remove users.",
            "Ask an owner of this account.",
        ));
    }
    let Some(at) = p.rows.iter().position(|r| r.id == raw && !r.me) else {
        return Err(super::ConsoleError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no other user with this id in your account, so nobody can be removed.",
            "Go to Users and roles and pick the user from the list.",
        ));
    };
    Ok(render(&ConfirmDelete {
        l: Layout::new(&user, "Remove user", "users"),
        u: p.rows.swap_remove(at),
    }))
}

async fn delete(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    act: Act,
) -> ConsoleResult<Response> {
    rest::delete_user(State(state), act.user.principal(), Path(raw)).await?;
    Ok(Redirect::to("/users?done=deleted").into_response())
}
