//! Gateways: the Gateways & Environments list (SPEC §4), one gateway, rename, soft delete,
//! and its nodes.

use std::cmp::Ordering;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use model::{GatewayId, NodeId};
use store::{AuditTarget, GatewayRow, GatewayView, NewGateway, OverviewFilter};

use crate::auth::{Need, Principal};
use crate::dto::{
    CreateGateway, EnvRef, GatewayDto, GatewayListDto, GatewayRowDto, IssueDto, NodeDto, NodeList,
    StatusDto, UpdateGateway, rfc3339,
};
use crate::error::{ApiError, ApiResult, ErrorEnvelope, OrNotFound};
use crate::json::{Json, Query};
use crate::routes::parse_id;
use crate::state::AppState;
use crate::status_job::Reading;

/// The list of the Gateways page, filtered, sorted, with the unattached environments.
#[utoipa::path(get, path = "/api/v1/gateways", tag = "gateways",
    params(crate::dto::GatewaysQuery),
    responses((status = 200, body = GatewayListDto), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope)))]
pub async fn list_gateways(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<crate::dto::GatewaysQuery>,
) -> ApiResult<axum::Json<GatewayListDto>> {
    let account = principal.require(&state, Need::Member, None).await?;
    let view = match query.view.unwrap_or_default() {
        crate::dto::GatewayViewParam::Deleted => GatewayView::Deleted,
        crate::dto::GatewayViewParam::Enabled => GatewayView::Enabled,
    };
    let sort = query.sort.unwrap_or_default().as_str();
    let descending = query.order.unwrap_or_default() == crate::dto::OrderParam::Desc;
    let q = query.q.as_deref().unwrap_or("");
    if q.chars().count() > 200 {
        return Err(ApiError::bad_field(
            "INVALID_PARAMETER",
            "q",
            "query parameter `q` is longer than 200 characters",
        ));
    }
    let overview = state
        .store
        .gateways_overview(account, view, OverviewFilter::search(q))
        .await?;
    let mut rows = overview_rows(&state, &overview.gateways);
    sort_rows(&mut rows, sort, descending);
    Ok(axum::Json(GatewayListDto {
        gateways: rows,
        // The store answers them by name, case-insensitive: alphabetical, as SPEC §4 asks.
        unattached_environments: overview.unattached.iter().map(EnvRef::from).collect(),
    }))
}

pub(crate) fn sort_rows(rows: &mut [GatewayRowDto], sort: &str, descending: bool) {
    let by_name = |a: &GatewayRowDto, b: &GatewayRowDto| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then_with(|| a.id.cmp(&b.id))
    };
    let primary = |a: &GatewayRowDto, b: &GatewayRowDto| -> Ordering {
        match sort {
            // The model's order of statuses: the healthiest first, deleted last.
            "status" => a.status.status().rank().cmp(&b.status.status().rank()),
            "host_name" => {
                // Rows without a host (no node yet) sort after every host name.
                match (&a.host_name, &b.host_name) {
                    (Some(x), Some(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                }
            }
            // Rows without a URL (no node reported one yet) sort after every URL.
            "gateway_url" => match (&a.gateway_url, &b.gateway_url) {
                (Some(x), Some(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
            _ => Ordering::Equal,
        }
    };
    rows.sort_by(|a, b| {
        let ord = primary(a, b);
        let ord = if descending { ord.reverse() } else { ord };
        // Ties keep name ascending whatever the order, so equal statuses read alphabetically.
        if sort == "name" {
            let n = by_name(a, b);
            if descending { n.reverse() } else { n }
        } else {
            ord.then_with(|| by_name(a, b))
        }
    });
}

/// The Gateways page's rows (REST list and console): each gateway's status, shown node and
/// derived issues from the same records at the same instant ([`crate::status_job::read_row`]).
pub(crate) fn overview_rows(state: &AppState, gateways: &[GatewayRow]) -> Vec<GatewayRowDto> {
    let now = state.now();
    gateways
        .iter()
        .map(|row| row_dto(row, crate::status_job::read_row(&state.link, row, now)))
        .collect()
}

/// The row of a gateway: its status, the host name of its shown node and its issues as
/// `reading` (`model::status`, [`crate::status_job`]) has them. The issues are the stored
/// ones; until the status job has evaluated the gateway, and whenever it has no node, the
/// issues `model::status::issues` derives are shown too (e.g. NO_NODES of a gateway just
/// created), so they appear and clear by themselves.
fn row_dto(row: &GatewayRow, reading: Reading) -> GatewayRowDto {
    let g = &row.gateway;
    let deleted = g.deleted_at.is_some();
    let shown = reading
        .shown
        .and_then(|id| row.nodes.iter().map(|(n, _)| n).find(|n| n.id == id));
    let mut issues: Vec<IssueDto> = Vec::new();
    if !deleted {
        issues.extend(row.issues.iter().map(|i| IssueDto {
            code: i.code.clone(),
            severity: i.severity.into(),
            message: i.message.clone(),
            node_id: i.node_id.map(|n| n.0),
            first_seen: Some(rfc3339(i.first_seen)),
            last_seen: Some(rfc3339(i.last_seen)),
            details: i.details.clone(),
        }));
        if row.status.is_none() || row.nodes.is_empty() {
            for derived in reading.issues {
                let stored = row
                    .issues
                    .iter()
                    .any(|i| i.code == derived.code && i.node_id == derived.node_id);
                if !stored {
                    issues.push(IssueDto {
                        code: derived.code.to_owned(),
                        severity: derived.severity.into(),
                        message: derived.message,
                        node_id: derived.node_id.map(|n| n.0),
                        first_seen: None,
                        last_seen: None,
                        details: serde_json::json!({ "raised_by": "platform" }),
                    });
                }
            }
        }
    }
    GatewayRowDto {
        id: g.id.0,
        name: g.name.clone(),
        status: StatusDto::from(reading.status),
        issues,
        environments: row.environments.iter().map(EnvRef::from).collect(),
        host_name: shown.map(|n| n.host_name.clone()),
        gateway_url: g.gateway_url(
            shown
                .and_then(|n| n.address.as_deref())
                .or_else(|| row.nodes.iter().find_map(|(n, _)| n.address.as_deref())),
        ),
    }
}

pub(crate) async fn gateway_dto(
    state: &AppState,
    account: model::AccountId,
    id: GatewayId,
) -> ApiResult<GatewayDto> {
    // One gateway is read as its row of the overview so that the row logic (status, issues,
    // head node) is the same as in the list; a gateway not among the enabled ones is looked
    // for among the deleted ones.
    let mut row = None;
    for view in [GatewayView::Enabled, GatewayView::Deleted] {
        let overview = state
            .store
            .gateways_overview(account, view, OverviewFilter::gateway(id))
            .await?;
        row = overview.gateways.into_iter().next();
        if row.is_some() {
            break;
        }
    }
    let row = row.ok_or_else(|| ApiError::not_found("gateway"))?;
    let gateway = &row.gateway;
    let reading = crate::status_job::read_gateway(&state.link, gateway, state.now()).await?;
    Ok(GatewayDto {
        row: row_dto(&row, reading.row),
        public_url: gateway.public_url.clone(),
        bind_address: gateway.bind_address.clone(),
        created_at: rfc3339(gateway.created_at),
        deleted_at: gateway.deleted_at.map(rfc3339),
    })
}

/// The Gateway URL a page shows for gateway `id`: the REST answer's (Public URL, else the head
/// node's reported address); `None` for a deleted or unknown gateway or one no node reported.
pub(crate) async fn shown_gateway_url(
    state: &AppState,
    account: model::AccountId,
    id: GatewayId,
) -> ApiResult<Option<String>> {
    match gateway_dto(state, account, id).await {
        Ok(dto) if dto.deleted_at.is_none() => Ok(dto.row.gateway_url),
        Ok(_) => Ok(None),
        Err(error) if error.status == StatusCode::NOT_FOUND => Ok(None),
        Err(error) => Err(error),
    }
}

/// Pre-register a gateway by name (admin or owner).
#[utoipa::path(post, path = "/api/v1/gateways", tag = "gateways",
    request_body = CreateGateway,
    responses((status = 201, body = GatewayDto), (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 409, description = "GATEWAY_NAME_TAKEN", body = ErrorEnvelope),
        (status = 422, description = "GATEWAY_NAME_*", body = ErrorEnvelope)))]
pub async fn create_gateway(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateGateway>,
) -> ApiResult<(StatusCode, axum::Json<GatewayDto>)> {
    let account = principal
        .require(&state, Need::Manage, Some(("gateway.create", None)))
        .await?;
    let name = model::validate::validate_gateway_name(&body.name)?;
    let gateway = state
        .store
        .create_gateway(
            account,
            NewGateway::named(name),
            principal.audit(&state, "gateway.create"),
        )
        .await?;
    state.link.changed(account);
    let dto = gateway_dto(&state, account, gateway.id).await?;
    Ok((StatusCode::CREATED, axum::Json(dto)))
}

/// One gateway, deleted or not.
#[utoipa::path(get, path = "/api/v1/gateways/{id}", tag = "gateways",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = GatewayDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get_gateway(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<GatewayDto>> {
    let account = principal.require(&state, Need::Member, None).await?;
    let id: GatewayId = parse_id(&id, "gateway")?;
    Ok(axum::Json(gateway_dto(&state, account, id).await?))
}

/// Rename a gateway (admin or owner). Deleted gateways cannot be changed (404).
#[utoipa::path(patch, path = "/api/v1/gateways/{id}", tag = "gateways",
    params(("id" = uuid::Uuid, Path)), request_body = UpdateGateway,
    responses((status = 200, body = GatewayDto), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn update_gateway(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    Json(body): Json<UpdateGateway>,
) -> ApiResult<axum::Json<GatewayDto>> {
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some(("gateway.rename", Some(AuditTarget::new("gateway", &raw)))),
        )
        .await?;
    let id: GatewayId = parse_id(&raw, "gateway")?;
    if let Some(name) = body.name {
        let name = model::validate::validate_gateway_name(&name)?;
        state
            .store
            .rename_gateway(
                account,
                id,
                &name,
                principal.audit(&state, "gateway.rename"),
            )
            .await
            .or_404("gateway")?;
        state.link.changed(account);
    }
    Ok(axum::Json(gateway_dto(&state, account, id).await?))
}

/// Delete a gateway (owner only): soft delete, never restored; its environments become
/// unattached and its node credentials are revoked.
#[utoipa::path(delete, path = "/api/v1/gateways/{id}", tag = "gateways",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_gateway(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let account = principal
        .require(
            &state,
            Need::Owner,
            Some(("gateway.delete", Some(AuditTarget::new("gateway", &raw)))),
        )
        .await?;
    let id: GatewayId = parse_id(&raw, "gateway")?;
    state
        .store
        .delete_gateway(account, id, principal.audit(&state, "gateway.delete"))
        .await
        .or_404("gateway")?;
    state.link.gateway_deleted(account, id);
    Ok(StatusCode::NO_CONTENT)
}

/// The nodes of a gateway (Cluster Status panel), oldest first. Each node's state is derived
/// by `model::status` from its record, from the same read and instant as the gateway's status
/// in `GET /gateways/{id}`; the nodes of a deleted gateway are offline (their credentials are
/// revoked).
#[utoipa::path(get, path = "/api/v1/gateways/{id}/nodes", tag = "gateways",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = NodeList), (status = 404, body = ErrorEnvelope)))]
pub async fn list_nodes(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<NodeList>> {
    let account = principal.require(&state, Need::Member, None).await?;
    let id: GatewayId = parse_id(&raw, "gateway")?;
    let gateway = state.store.gateway(account, id).await.or_404("gateway")?;
    let reading = crate::status_job::read_gateway(&state.link, &gateway, state.now()).await?;
    Ok(axum::Json(NodeList {
        nodes: reading
            .nodes
            .iter()
            .map(|(node, node_state)| NodeDto::new(node, StatusDto::from(node_state.status())))
            .collect(),
    }))
}

/// Remove an offline node from its gateway (admin or owner; the Cluster Status panel's
/// action). Its credentials are revoked with it, so the node id can join again (e.g. after
/// `POST /nodes/join` answered `NODE_ID_TAKEN`). 409 `NODE_NOT_OFFLINE` while it is live.
#[utoipa::path(delete, path = "/api/v1/gateways/{id}/nodes/{node_id}", tag = "gateways",
    params(("id" = uuid::Uuid, Path), ("node_id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "NODE_NOT_OFFLINE", body = ErrorEnvelope)))]
pub async fn remove_node(
    State(state): State<AppState>,
    principal: Principal,
    Path((raw, raw_node)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some(("node.remove", Some(AuditTarget::new("node", &raw_node)))),
        )
        .await?;
    let id: GatewayId = parse_id(&raw, "gateway")?;
    let node: NodeId = parse_id(&raw_node, "node")?;
    let gateway = state.store.gateway(account, id).await.or_404("gateway")?;
    let reading = crate::status_job::read_gateway(&state.link, &gateway, state.now()).await?;
    let (_, node_state) = reading
        .nodes
        .iter()
        .find(|(n, _)| n.id == node)
        .ok_or_else(|| ApiError::not_found("node"))?;
    if node_state.is_live() {
        return Err(ApiError::conflict(
            "NODE_NOT_OFFLINE",
            format!(
                "node {node} is {}; only an offline node can be removed (stop it first)",
                node_state.status().label()
            ),
        ));
    }
    state
        .store
        .remove_node(account, node, principal.audit(&state, "node.remove"))
        .await
        .or_404("node")?;
    Ok(StatusCode::NO_CONTENT)
}
