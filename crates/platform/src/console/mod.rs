//! The web console (SPEC §4, §5, §14, §15): server-rendered HTML pages on the platform's port,
//! beside the REST API (which stays bearer-only: no console cookie counts there).
//!
//! Decisions:
//! - Pages are askama templates (`crates/platform/templates/`), compile-time checked and
//!   HTML-escaped by default; the only unescaped output is markup of our own (icons, rendered
//!   fragments).
//! - Every page works without script: links for sorting and tabs, forms with POST-redirect-GET.
//!   `assets/console.js` only enhances (live refresh of `[data-live]` regions, instant search,
//!   See more / See less without a round trip). Assets are embedded in the binary.
//! - Every console response carries the security headers of [`security_headers`]; the CSP
//!   allows no inline script and nothing from other origins.
//! - Actions call the REST handlers as functions with the session's [`Principal`], so the role
//!   rules, validation and audit records are the REST side's, not a copy.
//! - Sessions live in the store (`session.rs`), so several platform processes share them.

mod apis;
mod assets;
mod audit;
mod environments;
mod form;
mod gateways;
mod install_tokens;
mod session;
mod tokens;
mod users;

use axum::Router;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use askama::Template;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// Gateway rows on one page of the Gateways table (the bench checks the first page by it).
pub use gateways::PAGE_SIZE as GATEWAYS_PAGE_SIZE;
pub(crate) use session::ConsoleUser;
pub use session::{hash_password, set_initial_password};

/// The console's routes; merged into the platform's router (same port as `/api/v1`).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/gateways") }))
        .merge(assets::router())
        .merge(session::router())
        .merge(gateways::router())
        .merge(install_tokens::router())
        .merge(environments::router())
        .merge(apis::router())
        .merge(users::router())
        .merge(tokens::router())
        .merge(audit::router())
        .layer(middleware::from_fn(security_headers))
}

/// The console's Content-Security-Policy: own script and style only, no inline script, no
/// framing, forms post only to this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every console response (pages, fragments, assets, errors).
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    add_security_headers(&mut response);
    response
}

fn add_security_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Pages show account data and one-time secrets: never cache them (assets set their own).
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// The page for a path that is neither the REST API nor a console page.
pub fn not_found_page() -> Response {
    let mut response = ConsoleError::new(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no console page at this address.",
        "Use the navigation, or go to the Gateways page.",
    )
    .into_response();
    add_security_headers(&mut response);
    response
}

/// What the layout of every signed-in page shows: who is signed in, the navigation and the
/// CSRF token for the forms of the page.
pub(crate) struct Layout {
    pub title: String,
    /// Which navigation entry is current (`gateways`, `environments`, `apis`, `users`,
    /// `tokens`, `audit`, `account`).
    pub active: &'static str,
    pub user_name: String,
    pub user_email: String,
    pub role: &'static str,
    pub csrf: String,
    /// A one-line confirmation of the last action (POST-redirect-GET), fixed texts only.
    pub notice: Option<&'static str>,
}

impl Layout {
    pub fn new(user: &ConsoleUser, title: impl Into<String>, active: &'static str) -> Self {
        Self {
            title: title.into(),
            active,
            user_name: user.principal.user.name.clone(),
            user_email: user.principal.user.email.clone().unwrap_or_default(),
            role: user.principal.user.role.as_str(),
            csrf: user.csrf.clone(),
            notice: None,
        }
    }

    pub fn with_notice(mut self, notice: Option<&'static str>) -> Self {
        self.notice = notice;
        self
    }

    /// The icons' shapes, once per page (see `gateways::icon`).
    pub fn icons(&self) -> &'static str {
        gateways::icon::SPRITE
    }
}

/// A failure shown as a page: what happened and what to do next.
#[derive(Debug)]
pub(crate) struct ConsoleError {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
    pub next_step: String,
    pub retry_after: Option<u64>,
}

impl ConsoleError {
    pub fn new(
        status: StatusCode,
        title: impl Into<String>,
        message: impl Into<String>,
        next_step: impl Into<String>,
    ) -> Self {
        Self {
            status,
            title: title.into(),
            message: message.into(),
            next_step: next_step.into(),
            retry_after: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("There is no {what} here, or it belongs to another account."),
            "Go back to the Gateways page and pick it from the list.",
        )
    }

    /// The refusal of a form posted without a valid CSRF token.
    pub fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form was not sent from a current console page (its security token is missing or \
             out of date), so nothing was changed.",
            "Reload the page and send the form again.",
        )
    }
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        let (title, next_step) = match error.status {
            StatusCode::FORBIDDEN => (
                "Not allowed",
                "Ask an owner of the account to do this, or to give you a role that may.",
            ),
            StatusCode::NOT_FOUND => (
                "Not found",
                "Go back to the Gateways page and pick it from the list.",
            ),
            StatusCode::CONFLICT => ("Not possible now", "Check the page again and retry."),
            StatusCode::SERVICE_UNAVAILABLE => (
                "Database unavailable",
                "Retry in a few seconds; if it persists, check the platform's database.",
            ),
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                ("Not accepted", "Correct the input and send it again.")
            }
            _ => (
                "Something went wrong",
                "Retry; if it persists, the platform's log has the details.",
            ),
        };
        Self::new(error.status, title, error.message, next_step)
    }
}

impl From<store::StoreError> for ConsoleError {
    fn from(error: store::StoreError) -> Self {
        ApiError::from(error).into()
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    e: &'a ConsoleError,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let mut response = (self.status, render(&ErrorPage { e: &self })).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub(crate) type ConsoleResult<T> = Result<T, ConsoleError>;

/// Renders a template; a template error (a bug, not input) is logged and answered 500.
pub(crate) fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "console template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; it has been logged",
            )
                .into_response()
        }
    }
}

/// The fields of a posted form (`application/x-www-form-urlencoded`), in order.
#[derive(Debug, Default)]
pub(crate) struct Posted(Vec<(String, String)>);

impl Posted {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field, trimmed; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").trim().to_string()
    }
}

impl<S: Send + Sync> FromRequest<S> for Posted {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ConsoleError> {
        let form = axum::Form::<Vec<(String, String)>>::from_request(req, state)
            .await
            .map_err(|_| {
                ConsoleError::new(
                    StatusCode::BAD_REQUEST,
                    "Form not readable",
                    "The form could not be read.",
                    "Reload the page and send the form again.",
                )
            })?;
        Ok(Posted(form.0))
    }
}

/// A posted form of a signed-in user whose CSRF token matched: every console action takes
/// one, so no action runs without the token.
pub(crate) struct Act {
    pub user: ConsoleUser,
    pub form: Posted,
}

impl FromRequest<AppState> for Act {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let user = <ConsoleUser as axum::extract::FromRequestParts<AppState>>::from_request_parts(
            &mut parts, state,
        )
        .await?;
        let req = Request::from_parts(parts, body);
        let form = Posted::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if !session::csrf_matches(&user.csrf, form.get("csrf")) {
            return Err(ConsoleError::csrf().into_response());
        }
        Ok(Act { user, form })
    }
}

/// Whether the request reached us over https (directly or through a proxy that says so):
/// cookies then get `Secure`, and the install command names an https platform URL.
pub(crate) fn is_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("proto=https"));
    forwarded_proto || forwarded
}

/// An RFC 3339 time of the REST types as people read it: `2026-12-03 14:12:12 UTC (3 min ago)`.
pub(crate) fn when(rfc3339: &str, now: model::Timestamp) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(at) = time::OffsetDateTime::parse(rfc3339, &Rfc3339) else {
        return rfc3339.to_string();
    };
    let shown = at
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_else(|_| rfc3339.to_string());
    let at_ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let delta = (now.as_millis() - at_ms) / 1000;
    let (amount, future) = (delta.unsigned_abs(), delta < 0);
    let span = match amount {
        0..=9 => return format!("{shown} (just now)"),
        10..=59 => format!("{amount} s"),
        60..=3599 => format!("{} min", amount / 60),
        3600..=86_399 => format!("{} h", amount / 3600),
        _ => format!("{} days", amount / 86_400),
    };
    if future {
        format!("{shown} (in {span})")
    } else {
        format!("{shown} ({span} ago)")
    }
}

/// A local path to go to after login: only paths of this site (`/x`, never `//host`).
pub(crate) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.into(),
        _ => "/gateways".into(),
    }
}

/// The REST principal of a console user: the session stands where a token would.
impl ConsoleUser {
    pub fn principal(&self) -> Principal {
        self.principal.clone()
    }
}
