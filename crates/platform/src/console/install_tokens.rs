//! Install tokens (SPEC §10), beside Add a Gateway which creates them: the account's tokens
//! with their state, and revocation after a confirmation page. Reading and revoking are the
//! REST side's rules (`routes::tokens::account_install_tokens` and
//! `revoke_account_install_token`: admin or owner, refusals audited, one audit entry per
//! revocation), so the console and `GET`/`DELETE /api/v1/install-tokens` cannot differ.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use model::Timestamp;
use store::InstallToken;

use super::{Act, ConsoleError, ConsoleResult, ConsoleUser, Layout, render, when};
use crate::dto::rfc3339;
use crate::routes::tokens as rest;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/gateways/install-tokens", get(list_page))
        .route(
            "/gateways/install-tokens/{id}/revoke",
            get(confirm_page).post(revoke),
        )
}

struct TokenRow {
    id: String,
    /// `active`, `expired` or `revoked`.
    state: &'static str,
    created_at: String,
    created_by: String,
    expires_at: String,
    revoked_at: Option<String>,
}

/// Whether a token still joins nodes at `now`: the rule of `Store::find_install_token`
/// (not revoked, and `expires_at` after `now`).
fn token_state(t: &InstallToken, now: Timestamp) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at <= now {
        "expired"
    } else {
        "active"
    }
}

async fn rows(state: &AppState, user: &ConsoleUser) -> ConsoleResult<Vec<TokenRow>> {
    let tokens = rest::account_install_tokens(state, &user.principal).await?;
    let users = match user.principal.user.account_id {
        Some(account) => state.store.users(account).await?,
        None => Vec::new(),
    };
    let now = state.now();
    Ok(tokens
        .iter()
        .map(|t| TokenRow {
            id: t.id.to_string(),
            state: token_state(t, now),
            created_at: when(&rfc3339(t.created_at), now),
            created_by: match t.created_by {
                None => "the platform".into(),
                Some(id) => users
                    .iter()
                    .find(|u| u.id == id)
                    .map(|u| u.name.clone())
                    .unwrap_or_else(|| "a removed user".into()),
            },
            expires_at: when(&rfc3339(t.expires_at), now),
            revoked_at: t.revoked_at.map(|r| when(&rfc3339(r), now)),
        })
        .collect())
}

#[derive(Template)]
#[template(path = "install_tokens.html")]
struct ListPage {
    l: Layout,
    rows: Vec<TokenRow>,
    /// Why the last revocation did not happen (the token is not the account's).
    error: Option<&'static str>,
}

#[derive(serde::Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn list_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(query): Query<DoneQuery>,
) -> ConsoleResult<Response> {
    let notice = match query.done.as_deref() {
        Some("revoked") => Some(
            "Install token revoked: no node can join with it from now on. Nodes that already \
             joined keep their own credentials and keep running.",
        ),
        Some("already_revoked") => Some("That install token was already revoked; nothing changed."),
        _ => None,
    };
    Ok(render(&ListPage {
        rows: rows(&state, &user).await?,
        l: Layout::new(&user, "Install tokens", "gateways").with_notice(notice),
        error: None,
    }))
}

/// The list again, answered 404, saying that there is no such token to revoke.
async fn unknown_token(state: &AppState, user: &ConsoleUser) -> ConsoleResult<Response> {
    let page = ListPage {
        rows: rows(state, user).await?,
        l: Layout::new(user, "Install tokens", "gateways"),
        error: Some(
            "There is no such install token in this account, so nothing was revoked. Pick the \
             token from the list below.",
        ),
    };
    Ok((StatusCode::NOT_FOUND, render(&page)).into_response())
}

#[derive(Template)]
#[template(path = "install_token_revoke.html")]
struct ConfirmPage {
    l: Layout,
    t: TokenRow,
}

async fn confirm_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
) -> ConsoleResult<Response> {
    let mut all = rows(&state, &user).await?;
    let Some(at) = all.iter().position(|t| t.id == raw) else {
        return unknown_token(&state, &user).await;
    };
    Ok(render(&ConfirmPage {
        l: Layout::new(&user, "Revoke install token", "gateways"),
        t: all.swap_remove(at),
    }))
}

async fn revoke(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    act: Act,
) -> ConsoleResult<Response> {
    let before = state.now();
    match rest::revoke_account_install_token(&state, &act.user.principal, &raw).await {
        // Revoking a revoked token keeps its first revocation time.
        Ok(token) if token.revoked_at.is_some_and(|at| at < before) => {
            Ok(Redirect::to("/gateways/install-tokens?done=already_revoked").into_response())
        }
        Ok(_) => Ok(Redirect::to("/gateways/install-tokens?done=revoked").into_response()),
        Err(e) if e.status == StatusCode::NOT_FOUND => unknown_token(&state, &act.user).await,
        Err(e) => Err(ConsoleError::from(e)),
    }
}
