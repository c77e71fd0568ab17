//! The Audit log page (SPEC §14, owners and admins): the account's records newest first,
//! filtered by actor, action, result and date, a page at a time with the store's cursor
//! (the last record's id), all in the URL so a filtered view can be bookmarked.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use model::{AuditId, Timestamp};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use store::{Actor, AuditFilter, AuditResult};

use super::{ConsoleResult, ConsoleUser, Layout, render};
use crate::auth::Need;
use crate::dto::rfc3339;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/audit", get(audit_page))
}

/// Records a page shows.
const PAGE: u32 = 50;

#[derive(Debug, Default, serde::Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    result: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

/// Midnight UTC of a `YYYY-MM-DD` date, in milliseconds.
fn day_start(raw: &str) -> Option<Timestamp> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(raw.trim(), &format).ok()?;
    let secs = date.midnight().assume_utc().unix_timestamp();
    Some(Timestamp::from_millis(secs.saturating_mul(1000)))
}

struct Row {
    at: String,
    actor: String,
    action: String,
    target: String,
    result: &'static str,
    details: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    l: Layout,
    rows: Vec<Row>,
    /// (value, label) of the actor choices: the account's users, then `system`.
    actors: Vec<(String, String)>,
    actor: String,
    action: String,
    result: String,
    from: String,
    to: String,
    date_error: Option<&'static str>,
    filtered: bool,
    first_page: bool,
    older_href: Option<String>,
    newest_href: String,
}

async fn audit_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(q): Query<AuditQuery>,
) -> ConsoleResult<Response> {
    let account = user.principal.require(&state, Need::Manage, None).await?;
    let users = state.store.users(account).await?;
    let text = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_string();
    let (actor, action, result, from, to) = (
        text(&q.actor),
        text(&q.action),
        text(&q.result),
        text(&q.from),
        text(&q.to),
    );
    let mut date_error = None;
    let mut date = |raw: &str, plus_day: bool| {
        if raw.is_empty() {
            return None;
        }
        match day_start(raw) {
            Some(t) if plus_day => Some(t.plus(std::time::Duration::from_secs(86_400))),
            Some(t) => Some(t),
            None => {
                date_error = Some("Write dates as YYYY-MM-DD, for example 2026-12-03.");
                None
            }
        }
    };
    let filter = AuditFilter {
        actor: match actor.as_str() {
            "" => None,
            "system" => Some(Actor::System),
            id => id.parse().ok().map(Actor::User),
        },
        action_prefix: Some(action.clone()).filter(|a| !a.is_empty()),
        result: AuditResult::parse(&result),
        from: date(&from, false),
        // The "to" date is inclusive: records before the next midnight.
        until: date(&to, true),
    };
    let before: Option<AuditId> = q.cursor.as_deref().and_then(|c| c.parse().ok());
    let records = state
        .store
        .audit_records_filtered(account, &filter, before, PAGE)
        .await?;
    let user_name = |id: model::UserId| {
        users
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| format!("user {id} (removed)"))
    };
    let query = |cursor: Option<&str>| {
        let mut parts = Vec::new();
        for (k, v) in [
            ("actor", &actor),
            ("action", &action),
            ("result", &result),
            ("from", &from),
            ("to", &to),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)));
            }
        }
        if let Some(c) = cursor {
            parts.push(format!("cursor={c}"));
        }
        if parts.is_empty() {
            "/audit".to_string()
        } else {
            format!("/audit?{}", parts.join("&"))
        }
    };
    let older_href = (records.len() == PAGE as usize)
        .then(|| records.last().map(|r| query(Some(&r.id.to_string()))))
        .flatten();
    let rows = records
        .iter()
        .map(|r| Row {
            at: rfc3339(r.at),
            actor: match r.actor {
                Actor::User(id) => user_name(id),
                Actor::Node(id) => format!("node {id}"),
                Actor::System => "system".into(),
            },
            action: r.action.clone(),
            target: r
                .target
                .as_ref()
                .map(|t| match &t.id {
                    Some(id) => format!("{} {id}", t.kind),
                    None => t.kind.clone(),
                })
                .unwrap_or_default(),
            result: r.result.as_str(),
            details: match &r.details {
                serde_json::Value::Object(m) if m.is_empty() => String::new(),
                other => other.to_string(),
            },
        })
        .collect();
    let mut actors: Vec<(String, String)> = users
        .iter()
        .map(|u| (u.id.to_string(), u.name.clone()))
        .collect();
    actors.push(("system".into(), "system".into()));
    Ok(render(&AuditPage {
        l: Layout::new(&user, "Audit log", "audit"),
        rows,
        actors,
        filtered: !(actor.is_empty()
            && action.is_empty()
            && result.is_empty()
            && from.is_empty()
            && to.is_empty()),
        first_page: before.is_none(),
        newest_href: query(None),
        older_href,
        actor,
        action,
        result,
        from,
        to,
        date_error,
    }))
}
