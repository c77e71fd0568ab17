//! Console sign-in: the login form (account name, e-mail, password), Argon2id password hashes,
//! server-side sessions in the store, CSRF tokens, logout and the password change page.
//!
//! Decisions:
//! - The session cookie holds 256 random bits; the store keeps only its SHA-256 (like API
//!   tokens), so a database reader cannot sign in. HttpOnly, SameSite=Lax, `Secure` when the
//!   request came over https; ended after [`IDLE_TIMEOUT`] without use and at the latest
//!   [`ABSOLUTE_TIMEOUT`] after login. The last use is written at most every [`TOUCH_EVERY`],
//!   so browsing costs a write only once a minute.
//! - The CSRF token of a session is derived from its cookie (SHA-256 of a label and the
//!   cookie value): an attacker who cannot read the cookie cannot compute it, and nothing more
//!   needs storing. The login form, which has no session yet, uses a double-submit cookie.
//! - Failed logins count per source address and per login identity (`account/e-mail`,
//!   lowercased) in `AppState.throttles`; over either limit the answer is a 429 page saying
//!   when to retry, even with the right password, and the refusal is audited.
//! - An unknown account or e-mail costs the same Argon2id verification as a wrong password,
//!   so the answer's timing does not tell which accounts exist.

use std::sync::OnceLock;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use model::{Timestamp, UserId};
use rand::RngCore;
use sha2::{Digest, Sha256};
use store::{Actor, Audit, Store, StoreError};

use super::{Act, ConsoleError, ConsoleResult, Layout, Posted, is_https, local_path, render};
use crate::auth::{Principal, hash_secret};
use crate::state::AppState;
use crate::throttle::{ClientIp, Throttled, source_key};

/// Name of the session cookie.
const SESSION_COOKIE: &str = "sy_session";
/// Name of the login form's double-submit cookie.
const LOGIN_COOKIE: &str = "sy_login";
/// A session unused this long ends.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after login, used or not.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// The last use of a session is written when it is older than this.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Shortest and longest password the console accepts.
const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_CHARS: usize = 256;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route(
            "/account/password",
            get(password_page).post(change_password),
        )
}

// ---- passwords ------------------------------------------------------------------------------

/// An Argon2id hash (PHC string) of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes are a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2id with default parameters cannot fail")
        .to_string()
}

/// Whether `password` matches the PHC string `hash`; a malformed hash matches nothing.
fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Verifies on a blocking thread (Argon2id takes tens of milliseconds by design). With no
/// hash (unknown user, or no password set) a dummy hash is verified, so the time is the same.
async fn verify_blocking(password: String, hash: Option<String>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_password(&password, &hash),
        None => {
            let dummy = DUMMY.get_or_init(|| hash_password("no such user; never matches"));
            let _ = verify_password(&password, dummy);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// Gives `user` a new random password (for `switchyard up`'s first owner) and answers it.
pub async fn set_initial_password(
    store: &Store,
    user: UserId,
    now: Timestamp,
) -> Result<String, StoreError> {
    use rand::distr::{Alphanumeric, SampleString};
    let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
    // Once per installation: hashing on this thread is fine.
    let hash = hash_password(&password);
    store
        .set_password_hash(
            user,
            Some(&hash),
            Audit::new(Actor::System, "user.password_set", now),
        )
        .await?;
    Ok(password)
}

// ---- sessions -------------------------------------------------------------------------------

/// A signed-in console user: the REST principal of the session and the CSRF token of its
/// forms. As an extractor it answers a redirect to the login page when there is no valid
/// session (401 for the script's background fetches).
#[derive(Clone, Debug)]
pub(crate) struct ConsoleUser {
    pub principal: Principal,
    pub csrf: String,
    /// The SHA-256 of the session cookie, as the store keeps it.
    session_hash: String,
}

/// The CSRF token of the session whose cookie is `cookie`.
fn csrf_token(cookie: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"switchyard console csrf\0");
    hasher.update(cookie.as_bytes());
    hex::encode(hasher.finalize())
}

/// Constant-time comparison of the expected CSRF token with a posted one.
pub(super) fn csrf_matches(expected: &str, posted: Option<&str>) -> bool {
    let Some(posted) = posted else { return false };
    let (a, b) = (expected.as_bytes(), posted.as_bytes());
    a.len() == b.len() && !a.is_empty() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The value of cookie `name` in the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, `Secure` under https.
fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let not_signed_in = || {
            if parts.headers.contains_key("x-console-fetch") {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            let here = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/gateways");
            let next: String =
                percent_encoding::utf8_percent_encode(here, percent_encoding::NON_ALPHANUMERIC)
                    .collect();
            Redirect::to(&format!("/login?next={next}")).into_response()
        };
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(not_signed_in());
        };
        let hash = hash_secret(secret);
        let now = state.now();
        let found = state
            .store
            .find_session(&hash, now)
            .await
            .map_err(|e| ConsoleError::from(e).into_response())?;
        let Some((session, user)) = found else {
            return Err(not_signed_in());
        };
        if now.since(session.last_seen_at) >= IDLE_TIMEOUT {
            let _ = state.store.delete_session(&hash).await;
            return Err(not_signed_in());
        }
        if now.since(session.last_seen_at) >= TOUCH_EVERY {
            state
                .store
                .touch_session(&hash, now)
                .await
                .map_err(|e| ConsoleError::from(e).into_response())?;
        }
        Ok(ConsoleUser {
            principal: Principal {
                user,
                token_id: session.id,
            },
            csrf: csrf_token(secret),
            session_hash: hash,
        })
    }
}

/// Starts a session for `user`: answers the `Set-Cookie` header value.
async fn start_session(
    state: &AppState,
    user: &model::User,
    secure: bool,
) -> ConsoleResult<HeaderValue> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    let now = state.now();
    state
        .store
        .create_session(
            user.id,
            &hash_secret(&secret),
            now.plus(ABSOLUTE_TIMEOUT),
            Audit::new(Actor::User(user.id), "session.create", now),
        )
        .await?;
    Ok(set_cookie(
        SESSION_COOKIE,
        &secret,
        ABSOLUTE_TIMEOUT,
        secure,
    ))
}

// ---- login and logout -----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    account: String,
    email: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    next: Option<String>,
    done: Option<String>,
}

/// The double-submit token of the login form: the cookie's value when the browser has one.
fn login_token(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie(headers, LOGIN_COOKIE) {
        Some(token) if token.len() == 64 => (token.to_string(), None),
        _ => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let token = hex::encode(bytes);
            let header = set_cookie(
                LOGIN_COOKIE,
                &token,
                Duration::from_secs(3600),
                is_https(headers),
            );
            (token, Some(header))
        }
    }
}

fn login_form(headers: &HeaderMap, status: StatusCode, mut page: LoginPage) -> Response {
    let (token, set) = login_token(headers);
    page.csrf = token;
    let mut response = (status, render(&page)).into_response();
    if let Some(set) = set {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    response
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    // Already signed in: straight on.
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        if let Ok(Some(_)) = state
            .store
            .find_session(&hash_secret(secret), state.now())
            .await
        {
            return Redirect::to(&local_path(query.next.as_deref())).into_response();
        }
    }
    let notice = match query.done.as_deref() {
        Some("logout") => Some("You have signed out."),
        Some("password") => Some("Your password was changed; sign in with the new one."),
        _ => None,
    };
    login_form(
        &headers,
        StatusCode::OK,
        LoginPage {
            csrf: String::new(),
            next: local_path(query.next.as_deref()),
            account: String::new(),
            email: String::new(),
            error: None,
            notice,
        },
    )
}

/// The 429 page of a throttled login.
fn throttled_page(throttled: Throttled) -> ConsoleError {
    let secs = throttled.retry_after_secs();
    let minutes = secs.div_ceil(60);
    let mut e = ConsoleError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many failed sign-ins",
        "Sign-in is paused for this account or this address after too many wrong passwords.",
        format!(
            "Try again in {} ({secs} seconds). If you forgot the password, ask an owner of \
             the account to set a new one.",
            if minutes <= 1 {
                "a minute".to_string()
            } else {
                format!("{minutes} minutes")
            }
        ),
    );
    e.retry_after = Some(secs);
    e
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Posted,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if !csrf_matches(expected, form.get("csrf")) {
        return ConsoleError::csrf().into_response();
    }
    let account = form.text("account");
    let email = form.text("email");
    let password = form.get("password").unwrap_or("").to_string();
    let next = local_path(form.get("next"));
    let identity = format!("{}/{}", account.to_lowercase(), email.to_lowercase());
    let source = ip.map(source_key);
    let now = state.now();
    let throttles = &state.throttles;

    let refused = source
        .map(|s| throttles.logins_per_source.check(&s, now))
        .unwrap_or(Ok(()))
        .and(throttles.logins_per_account.check(&identity, now));
    let login = match state.store.account_user_login(&account, &email).await {
        Ok(login) => login,
        Err(e) => return ConsoleError::from(e).into_response(),
    };
    if let Err(throttled) = refused {
        audit_throttled(&state, login.as_ref().map(|l| &l.user), &identity, now).await;
        return throttled_page(throttled).into_response();
    }
    let hash = login.as_ref().and_then(|l| l.password_hash.clone());
    let ok = !password.is_empty() && verify_blocking(password, hash).await;
    match login {
        Some(login) if ok => {
            let secure = is_https(&headers);
            match start_session(&state, &login.user, secure).await {
                Ok(cookie) => {
                    let mut response = Redirect::to(&next).into_response();
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                    // The login form's token has served its purpose.
                    response.headers_mut().append(
                        header::SET_COOKIE,
                        set_cookie(LOGIN_COOKIE, "", Duration::ZERO, secure),
                    );
                    response
                }
                Err(e) => e.into_response(),
            }
        }
        login => {
            let by_source = source
                .map(|s| throttles.logins_per_source.record_failure(&s, now))
                .unwrap_or(Ok(()));
            let by_identity = throttles.logins_per_account.record_failure(&identity, now);
            if let Err(throttled) = by_source.and(by_identity) {
                audit_throttled(&state, login.as_ref().map(|l| &l.user), &identity, now).await;
                return throttled_page(throttled).into_response();
            }
            login_form(
                &headers,
                StatusCode::UNAUTHORIZED,
                LoginPage {
                    csrf: String::new(),
                    next,
                    account,
                    email,
                    error: Some(
                        "The account name, e-mail or password is not right. Check all three \
                         (the account name is the one your owner gave you, e.g. default) and try \
                         again."
                            .into(),
                    ),
                    notice: None,
                },
            )
        }
    }
}

/// Records a throttled login in the audit log (the account's when the identity is a user).
async fn audit_throttled(
    state: &AppState,
    user: Option<&model::User>,
    identity: &str,
    now: Timestamp,
) {
    let actor = user.map_or(Actor::System, |u| Actor::User(u.id));
    let audit = Audit::new(actor, "session.create", now).with_details(serde_json::json!({
        "reason": "too many failed logins",
        "identity": identity,
    }));
    if let Err(error) = state
        .store
        .record_denied(user.and_then(|u| u.account_id), audit)
        .await
    {
        tracing::warn!(%error, "could not record a throttled login");
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, act: Act) -> Response {
    if let Err(e) = state.store.delete_session(&act.user.session_hash).await {
        return ConsoleError::from(e).into_response();
    }
    let mut response = Redirect::to("/login?done=logout").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Duration::ZERO, is_https(&headers)),
    );
    response
}

// ---- password change ------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    l: Layout,
    current_error: Option<&'static str>,
    new_error: Option<String>,
    confirm_error: Option<&'static str>,
}

#[derive(serde::Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn password_page(user: ConsoleUser, Query(query): Query<DoneQuery>) -> Response {
    let notice = (query.done.as_deref() == Some("changed"))
        .then_some("Your password was changed. Your other sessions were signed out.");
    render(&PasswordPage {
        l: Layout::new(&user, "Change password", "account").with_notice(notice),
        current_error: None,
        new_error: None,
        confirm_error: None,
    })
}

async fn change_password(State(state): State<AppState>, headers: HeaderMap, act: Act) -> Response {
    let user = &act.user;
    let current = act.form.get("current").unwrap_or("").to_string();
    let new = act.form.get("new").unwrap_or("").to_string();
    let confirm = act.form.get("confirm").unwrap_or("");
    let mut page = PasswordPage {
        l: Layout::new(user, "Change password", "account"),
        current_error: None,
        new_error: None,
        confirm_error: None,
    };
    let chars = new.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        page.new_error = Some(format!(
            "Use {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters (this one has {chars}); \
             a few unrelated words make a good one."
        ));
    } else if new != confirm {
        page.confirm_error = Some("This does not match the new password; type it again.");
    }
    let hash = match state.store.password_hash(user.principal.user.id).await {
        Ok(hash) => hash,
        Err(e) => return ConsoleError::from(e).into_response(),
    };
    if !verify_blocking(current, hash).await {
        page.current_error = Some("This is not your current password; type it again.");
    }
    if page.current_error.is_some() || page.new_error.is_some() || page.confirm_error.is_some() {
        return (StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response();
    }
    let hash = tokio::task::spawn_blocking(move || hash_password(&new))
        .await
        .unwrap_or_default();
    let id = user.principal.user.id;
    let result = async {
        state
            .store
            .set_password_hash(
                id,
                Some(&hash),
                user.principal.audit(&state, "user.password_change"),
            )
            .await?;
        // Every session of the user ends (a stolen one too); this browser gets a new one.
        state.store.delete_user_sessions(id).await?;
        start_session(&state, &user.principal.user, is_https(&headers)).await
    }
    .await;
    match result {
        Ok(cookie) => {
            let mut response = Redirect::to("/account/password?done=changed").into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => e.into_response(),
    }
}
