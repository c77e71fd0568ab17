//! The REST handlers, one module per resource, gathered into one router whose OpenAPI
//! document is generated from the handlers' annotations.

mod accounts;
pub(crate) mod apis;
mod audit;
pub(crate) mod commands;
pub(crate) mod environments;
pub(crate) mod gateways;
mod join;
mod link;
mod migrations;
pub(crate) mod tokens;
pub(crate) mod users;

use std::str::FromStr;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(routes!(accounts::create_account, accounts::list_accounts))
        .routes(routes!(accounts::get_account))
        .routes(routes!(users::me))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(
            tokens::create_install_token,
            tokens::list_install_tokens
        ))
        .routes(routes!(tokens::revoke_install_token))
        .routes(routes!(gateways::create_gateway, gateways::list_gateways))
        .routes(routes!(
            gateways::get_gateway,
            gateways::update_gateway,
            gateways::delete_gateway
        ))
        .routes(routes!(gateways::list_nodes))
        .routes(routes!(gateways::remove_node))
        .routes(routes!(commands::restart_gateway))
        .routes(routes!(commands::stop_gateway))
        .routes(routes!(join::join))
        .routes(routes!(link::link))
        .routes(routes!(
            environments::create_environment,
            environments::list_environments
        ))
        .routes(routes!(
            environments::get_environment,
            environments::update_environment,
            environments::delete_environment
        ))
        .routes(routes!(
            environments::get_configuration,
            environments::put_configuration
        ))
        .routes(routes!(environments::attach_environment))
        .routes(routes!(
            migrations::create_migration,
            migrations::list_migrations
        ))
        .routes(routes!(
            migrations::get_migration,
            migrations::delete_migration
        ))
        .routes(routes!(migrations::set_destination))
        .routes(routes!(migrations::runtime_check))
        .routes(routes!(migrations::review))
        .routes(routes!(migrations::migrate))
        .routes(routes!(apis::create_api, apis::list_apis))
        .routes(routes!(apis::get_api, apis::update_api, apis::delete_api))
        .routes(routes!(apis::create_deployment, apis::list_deployments))
        .routes(routes!(apis::delete_deployment))
        .routes(routes!(audit::list_audit))
        .routes(routes!(crate::openapi::openapi_json))
}

/// Parses an id from the URL. A malformed id cannot name an existing object, so it answers
/// 404 like any other unknown id.
pub(crate) fn parse_id<T: FromStr>(raw: &str, what: &str) -> ApiResult<T> {
    raw.parse().map_err(|_| ApiError::not_found(what))
}

/// Default and largest page of the account's lists (`?limit=`).
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// Cuts a list already in its display order into a page after the `cursor` (the id of the
/// previous page's last item). Lists are small enough per account to be read whole and cut
/// here; the cursor keeps working when items are added before it.
pub(crate) fn paginate<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> uuid::Uuid,
    query: &crate::dto::PageQuery,
) -> ApiResult<(Vec<T>, Option<String>)> {
    let limit = crate::json::page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE)? as usize;
    let start = match query.cursor {
        None => 0,
        Some(after) => {
            // A well-formed cursor names an item; once that item is gone the page it started
            // cannot be found (404), which is not a malformed request.
            let at = items.iter().position(|i| id(i) == after).ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::NOT_FOUND,
                    "CURSOR_NOT_FOUND",
                    "the item this cursor points after no longer exists; start from the first page",
                )
                .with_details(serde_json::json!({ "field": "cursor" }))
            })?;
            at + 1
        }
    };
    let rest: Vec<T> = items.into_iter().skip(start).collect();
    let more = rest.len() > limit;
    let page: Vec<T> = rest.into_iter().take(limit).collect();
    let next = if more {
        page.last().map(|i| id(i).to_string())
    } else {
        None
    };
    Ok((page, next))
}
