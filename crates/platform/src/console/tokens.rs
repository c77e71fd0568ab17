//! The API tokens page: the signed-in user's personal tokens (SPEC §14: prefixed, hashed at
//! rest, optional expiry, revocable); a new token's secret is shown once, on the answer to
//! the form (never in a URL), and revocation is the REST handler's.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::form::FieldErrors;
use super::{Act, ConsoleError, ConsoleResult, ConsoleUser, Layout, render};
use crate::dto::{CreateToken, rfc3339};
use crate::json::Json;
use crate::routes::tokens as rest;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(tokens_page).post(create))
        .route("/tokens/{id}/revoke", get(confirm_page).post(revoke))
}

/// Expiries offered: days, label (0 = never).
const EXPIRIES: [(u32, &str); 5] = [
    (30, "30 days"),
    (90, "90 days"),
    (365, "1 year"),
    (7, "7 days"),
    (0, "never"),
];

struct TokenRow {
    id: String,
    name: String,
    prefix: String,
    created_at: String,
    expires_at: Option<String>,
    /// `active`, `revoked` or `expired`.
    state: &'static str,
    current: bool,
}

struct Created {
    name: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    l: Layout,
    rows: Vec<TokenRow>,
    expiries: &'static [(u32, &'static str)],
    name: String,
    days: u32,
    errors: FieldErrors,
    created: Option<Created>,
}

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    notice: Option<&'static str>,
) -> ConsoleResult<TokensPage> {
    let now = state.now();
    let rows = state
        .store
        .api_tokens(user.principal.user.id)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id.to_string(),
            state: if t.revoked_at.is_some() {
                "revoked"
            } else if t.expires_at.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            },
            current: false,
            name: t.name,
            prefix: t.prefix,
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
        })
        .collect();
    Ok(TokensPage {
        l: Layout::new(user, "API tokens", "tokens").with_notice(notice),
        rows,
        expiries: &EXPIRIES,
        name: String::new(),
        days: 90,
        errors: FieldErrors::default(),
        created: None,
    })
}

#[derive(serde::Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn tokens_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(query): Query<DoneQuery>,
) -> ConsoleResult<Response> {
    let notice = match query.done.as_deref() {
        Some("revoked") => Some("Token revoked: requests with it are refused from now on."),
        _ => None,
    };
    Ok(render(&page(&state, &user, notice).await?))
}

async fn create(State(state): State<AppState>, act: Act) -> ConsoleResult<Response> {
    let name = act.form.text("name");
    let days: u32 = act.form.text("expires_in_days").parse().unwrap_or(90);
    let result = rest::create_token(
        State(state.clone()),
        act.user.principal(),
        Json(CreateToken {
            name: name.clone(),
            expires_in_days: (days > 0).then_some(days),
        }),
    )
    .await;
    let (status, created, errors) = match result {
        Ok((_, created)) => (
            StatusCode::OK,
            Some(Created {
                name: created.0.info.name,
                secret: created.0.token,
            }),
            FieldErrors::default(),
        ),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            FieldErrors::from_refusal(e, &["name", "expires_in_days"])?,
        ),
    };
    let mut p = page(&state, &act.user, None).await?;
    if let Some(c) = &created {
        if let Some(row) = p.rows.iter_mut().find(|r| r.name == c.name) {
            row.current = true;
        }
    } else {
        p.name = name;
        p.days = days;
    }
    p.errors = errors;
    p.created = created;
    Ok((status, render(&p)).into_response())
}

#[derive(Template)]
#[template(path = "token_revoke.html")]
struct ConfirmPage {
    l: Layout,
    t: TokenRow,
}

/// Revoking asks first: the token's requests are refused at once and it cannot be restored.
async fn confirm_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
) -> ConsoleResult<Response> {
    let mut p = page(&state, &user, None).await?;
    let Some(at) = p.rows.iter().position(|r| r.id == raw) else {
        return Err(ConsoleError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "You have no API token with this id, so nothing can be revoked.",
            "Go to API tokens and pick the token from the list.",
        ));
    };
    Ok(render(&ConfirmPage {
        l: Layout::new(&user, "Revoke API token", "tokens"),
        t: p.rows.swap_remove(at),
    }))
}

async fn revoke(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    act: Act,
) -> ConsoleResult<Response> {
    rest::revoke_token(State(state), act.user.principal(), Path(raw)).await?;
    Ok(Redirect::to("/tokens?done=revoked").into_response())
}
