//! The account's audit log, newest first, for owners and admins.

use axum::extract::State;
use model::AuditId;

use crate::auth::{Need, Principal};
use crate::dto::{AuditDto, AuditList};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::json::QueryParams;
use crate::state::AppState;

/// Audit records of the caller's account, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "page size, 1–500 (100)"),
        ("cursor" = Option<uuid::Uuid>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = AuditList), (status = 403, body = ErrorEnvelope)))]
pub async fn list_audit(
    State(state): State<AppState>,
    principal: Principal,
    query: QueryParams,
) -> ApiResult<axum::Json<AuditList>> {
    let account = principal.require(&state, Need::Manage, None).await?;
    query.only(&["limit", "cursor"])?;
    let limit = query.limit(100, 500)?;
    let before = match query.get("cursor") {
        None => None,
        Some(c) => Some(c.parse::<AuditId>().map_err(|_| {
            ApiError::bad_field("INVALID_PARAMETER", "cursor", "cursor is not valid")
        })?),
    };
    let records = state.store.audit_records(account, before, limit).await?;
    let next_cursor = if records.len() == limit as usize {
        records.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Ok(axum::Json(AuditList {
        records: records.iter().map(AuditDto::from).collect(),
        next_cursor,
    }))
}
