//! The account's audit log, newest first, for owners and admins.

use axum::extract::State;
use model::AuditId;

use crate::auth::{Need, Principal};
use crate::dto::{AuditDto, AuditList};
use crate::error::{ApiResult, ErrorEnvelope};
use crate::json::Query;
use crate::state::AppState;

/// Audit records of the caller's account, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(crate::dto::AuditQuery),
    responses((status = 200, body = AuditList), (status = 403, body = ErrorEnvelope)))]
pub async fn list_audit(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<crate::dto::AuditQuery>,
) -> ApiResult<axum::Json<AuditList>> {
    let account = principal.require(&state, Need::Manage, None).await?;
    let limit = crate::json::page_limit(query.limit, 100, 500)?;
    let before = query.cursor.map(AuditId);
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
