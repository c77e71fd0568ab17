//! APIs and their deployments to environments; a deployment or change that would make two
//! APIs on one gateway resolve to the same URL prefix is refused naming both (SPEC §6).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::collections::HashMap;

use model::conflict::{DeployedApi, ProposedChange, all_conflicts, check_change};
use model::status::{DeploymentPlace, NodeState, deployment_status};
use model::validate::{
    validate_api_base_path, validate_api_name, validate_api_version, validate_custom_path,
    validate_health_check_url, validate_upstream_targets,
};
use model::{
    Api, ApiId, Deployment, DeploymentId, DeploymentStatus, EnvironmentId, UpstreamTarget,
};
use store::{AuditTarget, NewApi, NewDeployment, PlacedDeployment};

use crate::auth::{Need, Principal};
use crate::dto::{
    ApiDto, ApiList, CreateApi, CreateDeployment, DeploymentDto, DeploymentList, UpdateApi,
};
use crate::error::{ApiError, ApiResult, ErrorEnvelope, OrNotFound, Refused};
use crate::json::Json;
use crate::json::Query;
use crate::routes::environments::routing;
use crate::routes::{paginate, parse_id};
use crate::state::AppState;

/// Validates an API definition with the model's rules into the store's input.
fn validated(
    name: &str,
    version: &str,
    api_type: model::ApiType,
    base_path: &str,
    targets: &[String],
    health_check_url: Option<&str>,
) -> ApiResult<NewApi> {
    let name = validate_api_name(name)?;
    let version = validate_api_version(version)?;
    let base_path = validate_api_base_path(base_path)?;
    let upstream_targets = validate_upstream_targets(targets.iter().map(String::as_str))?
        .iter()
        .map(|u| UpstreamTarget {
            url: u.to_url_string(),
        })
        .collect();
    let health_check_url = match health_check_url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => Some(validate_health_check_url(url)?.to_url_string()),
        None => None,
    };
    Ok(NewApi {
        name,
        version,
        api_type,
        base_path,
        upstream_targets,
        health_check_url,
        execution: None,
    })
}

/// Create an API (admin or owner).
#[utoipa::path(post, path = "/api/v1/apis", tag = "apis",
    request_body = CreateApi,
    responses((status = 201, body = ApiDto), (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
pub async fn create_api(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateApi>,
) -> ApiResult<(StatusCode, axum::Json<ApiDto>)> {
    let account = principal
        .require(&state, Need::Manage, Some(("api.create", None)))
        .await?;
    let new = validated(
        &body.name,
        &body.version,
        body.api_type.into(),
        &body.base_path,
        &body.upstream_targets,
        body.health_check_url.as_deref(),
    )?;
    let api = state
        .store
        .create_api(account, new, principal.audit(&state, "api.create"))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(ApiDto::from(&api))))
}

/// The APIs of the caller's account, by name and version.
#[utoipa::path(get, path = "/api/v1/apis", tag = "apis",
    params(crate::dto::PageQuery),
    responses((status = 200, body = ApiList), (status = 401, body = ErrorEnvelope)))]
pub async fn list_apis(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<crate::dto::PageQuery>,
) -> ApiResult<axum::Json<ApiList>> {
    let account = principal.require(&state, Need::Member, None).await?;
    let apis = state.store.apis(account).await?;
    let (page, next_cursor) = paginate(apis, |a| a.id.0, &query)?;
    Ok(axum::Json(ApiList {
        apis: page.iter().map(ApiDto::from).collect(),
        next_cursor,
    }))
}

/// One API.
#[utoipa::path(get, path = "/api/v1/apis/{id}", tag = "apis",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = ApiDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get_api(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<ApiDto>> {
    let account = principal.require(&state, Need::Member, None).await?;
    let id: ApiId = parse_id(&raw, "API")?;
    let api = state.store.api(account, id).await.or_404("API")?;
    Ok(axum::Json(ApiDto::from(&api)))
}

/// Change an API (admin or owner); absent fields keep their value. Refused with
/// `API_PATH_CONFLICT` when the new base path or type would collide on a gateway it is
/// deployed on.
#[utoipa::path(patch, path = "/api/v1/apis/{id}", tag = "apis",
    params(("id" = uuid::Uuid, Path)), request_body = UpdateApi,
    responses((status = 200, body = ApiDto), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn update_api(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    Json(body): Json<UpdateApi>,
) -> ApiResult<axum::Json<ApiDto>> {
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some(("api.update", Some(AuditTarget::new("api", &raw)))),
        )
        .await?;
    let result = async {
        let id: ApiId = parse_id(&raw, "API")?;
        let current = state.store.api(account, id).await.or_404("API")?;
        let targets: Vec<String> = match body.upstream_targets {
            Some(t) => t,
            None => current
                .upstream_targets
                .iter()
                .map(|t| t.url.clone())
                .collect(),
        };
        let health = match body.health_check_url {
            Some(h) => h,
            None => current.health_check_url.clone(),
        };
        let mut update = validated(
            body.name.as_deref().unwrap_or(&current.name),
            body.version.as_deref().unwrap_or(&current.version),
            body.api_type.map(Into::into).unwrap_or(current.api_type),
            body.base_path.as_deref().unwrap_or(&current.base_path),
            &targets,
            health.as_deref(),
        )?;
        update.execution = current.execution.clone();
        let api = state
            .store
            .update_api(
                account,
                id,
                update,
                principal.audit(&state, "api.update"),
                |api: &Api, gateways| {
                    for routes in gateways {
                        let (environments, deployments) = routing(routes);
                        for entry in routes.deployments.iter().filter(|r| r.api.id == api.id) {
                            let changed = DeployedApi::new(api, &entry.deployment);
                            check_change(
                                &environments,
                                &deployments,
                                ProposedChange::Deployment(&changed),
                            )
                            .map_err(|e| Refused(e.into()))?;
                        }
                    }
                    Ok(())
                },
            )
            .await
            .or_404("API")?;
        state.link.changed(account);
        Ok(axum::Json(ApiDto::from(&api)))
    }
    .await;
    principal
        .audit_refusal(
            &state,
            account,
            "api.update",
            AuditTarget::new("api", &raw),
            result,
        )
        .await
}

/// Delete an API and its deployments (admin or owner).
#[utoipa::path(delete, path = "/api/v1/apis/{id}", tag = "apis",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_api(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some(("api.delete", Some(AuditTarget::new("api", &raw)))),
        )
        .await?;
    let id: ApiId = parse_id(&raw, "API")?;
    state
        .store
        .delete_api(account, id, principal.audit(&state, "api.delete"))
        .await
        .or_404("API")?;
    state.link.changed(account);
    Ok(StatusCode::NO_CONTENT)
}

/// Deploy an API to an environment (admin or owner). Refused with 422 `API_PATH_CONFLICT`,
/// naming the conflicting APIs in `details.apis` and `details.conflicts`, when it would
/// resolve to the same URL prefix as another deployment on the environment's gateway;
/// a `custom_path` avoids that.
#[utoipa::path(post, path = "/api/v1/apis/{id}/deployments", tag = "apis",
    params(("id" = uuid::Uuid, Path)), request_body = CreateDeployment,
    responses((status = 201, body = DeploymentDto), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "ALREADY_DEPLOYED", body = ErrorEnvelope),
        (status = 422, description = "API_PATH_CONFLICT or CUSTOM_PATH_*", body = ErrorEnvelope)))]
pub async fn create_deployment(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    Json(body): Json<CreateDeployment>,
) -> ApiResult<(StatusCode, axum::Json<DeploymentDto>)> {
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some(("deployment.create", Some(AuditTarget::new("api", &raw)))),
        )
        .await?;
    let result = async {
        let api_id: ApiId = parse_id(&raw, "API")?;
        let environment_id = EnvironmentId(body.environment_id);
        let custom_path = match body.custom_path.as_deref() {
            Some(p) => Some(validate_custom_path(p)?),
            None => None,
        };
        // Name the missing object precisely.
        state.store.api(account, api_id).await.or_404("API")?;
        let env = state
            .store
            .environment(account, environment_id)
            .await
            .or_404("environment")?;
        let status = if env.gateway_id.is_some() {
            DeploymentStatus::SentToGateway
        } else {
            DeploymentStatus::RequiresConfiguration
        };
        let deployment = state
            .store
            .create_deployment(
                account,
                NewDeployment {
                    api_id,
                    environment_id,
                    custom_path: custom_path.clone(),
                    status,
                },
                principal.audit(&state, "deployment.create"),
                |check| {
                    let Some(routes) = &check.routes else {
                        return Ok(());
                    };
                    let (environments, deployments) = routing(routes);
                    let proposed = DeployedApi {
                        api_id: check.api.id,
                        api_name: check.api.name.clone(),
                        api_type: check.api.api_type,
                        base_path: check.api.base_path.clone(),
                        custom_path: custom_path.clone(),
                        environment_id: check.environment.id,
                    };
                    check_change(
                        &environments,
                        &deployments,
                        ProposedChange::Deployment(&proposed),
                    )
                    .map_err(|e| Refused(e.into()))
                },
            )
            .await
            .or_404("API")?;
        state.link.changed(account);
        Ok((
            StatusCode::CREATED,
            axum::Json(
                deployment_dtos(&state, account, &[deployment])
                    .await?
                    .remove(0),
            ),
        ))
    }
    .await;
    principal
        .audit_refusal(
            &state,
            account,
            "deployment.create",
            AuditTarget::new("api", &raw),
            result,
        )
        .await
}

/// The deployments of an API.
#[utoipa::path(get, path = "/api/v1/apis/{id}/deployments", tag = "apis",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = DeploymentList), (status = 404, body = ErrorEnvelope)))]
pub async fn list_deployments(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<DeploymentList>> {
    let account = principal.require(&state, Need::Member, None).await?;
    let id: ApiId = parse_id(&raw, "API")?;
    state.store.api(account, id).await.or_404("API")?;
    let deployments = state.store.deployments_by_api(account, id).await?;
    Ok(axum::Json(DeploymentList {
        deployments: deployment_dtos(&state, account, &deployments).await?,
    }))
}

/// Per gateway: the deployments in conflict there, and its nodes' states and applied
/// generations.
type Facts = (Vec<(ApiId, EnvironmentId)>, Vec<(NodeState, Option<u64>)>);

async fn gateway_facts(
    state: &AppState,
    account: model::AccountId,
    g: model::GatewayId,
    now: model::Timestamp,
) -> ApiResult<Facts> {
    let routes = state.store.gateway_routes(account, g).await?;
    let (environments, deployed) = routing(&routes);
    let conflicting = all_conflicts(&environments, &deployed)
        .into_iter()
        .flat_map(|c| [c.proposed, c.existing])
        .map(|o| (o.api_id, o.environment_id))
        .collect();
    let gateway = state.store.gateway(account, g).await?;
    let reading = crate::status_job::read_gateway(&state.link, &gateway, now).await?;
    let nodes = reading
        .nodes
        .iter()
        .map(|(n, s)| (*s, n.applied_generation))
        .collect();
    Ok((conflicting, nodes))
}

/// The deployments (all of one API) with their status derived on read.
async fn deployment_dtos(
    state: &AppState,
    account: model::AccountId,
    deployments: &[Deployment],
) -> ApiResult<Vec<DeploymentDto>> {
    let statuses = api_deployment_statuses(state, account, deployments).await?;
    Ok(deployments
        .iter()
        .zip(statuses)
        .map(|(d, status)| DeploymentDto::new(d, status))
        .collect())
}

/// The status of each deployment of one API, by [`deployment_statuses`] from the API's
/// publications and its environments' gateways; in the order of `deployments`.
pub(crate) async fn api_deployment_statuses(
    state: &AppState,
    account: model::AccountId,
    deployments: &[Deployment],
) -> ApiResult<Vec<DeploymentStatus>> {
    let Some(first) = deployments.first() else {
        return Ok(Vec::new());
    };
    let published: HashMap<DeploymentId, (model::GatewayId, u64)> = state
        .store
        .deployment_publications(account, first.api_id)
        .await?
        .into_iter()
        .filter_map(|(id, p)| Some((id, p?)))
        .collect();
    let mut placed = Vec::with_capacity(deployments.len());
    for d in deployments {
        let env = state.store.environment(account, d.environment_id).await?;
        placed.push(PlacedDeployment {
            deployment: d.clone(),
            gateway_id: env.gateway_id,
            published: published.get(&d.id).copied(),
        });
    }
    deployment_statuses(state, account, &placed).await
}

/// The status of each deployment (of any APIs of `account`), derived on read
/// (`model::status::deployment_status`): from its environment's gateway, path conflicts
/// there, the first generation that contained it and what that gateway's nodes applied,
/// read with the same records as the gateway's own status. A constant number of reads per
/// gateway. The one derivation of the REST side and the console.
pub(crate) async fn deployment_statuses(
    state: &AppState,
    account: model::AccountId,
    placed: &[PlacedDeployment],
) -> ApiResult<Vec<DeploymentStatus>> {
    let now = state.now();
    let mut gateways: HashMap<model::GatewayId, Facts> = HashMap::new();
    let mut out = Vec::with_capacity(placed.len());
    for p in placed {
        let d = &p.deployment;
        let place = match p.gateway_id {
            None => DeploymentPlace::NoGateway,
            Some(g) => {
                if let std::collections::hash_map::Entry::Vacant(slot) = gateways.entry(g) {
                    slot.insert(gateway_facts(state, account, g, now).await?);
                }
                let (conflicting, _) = &gateways[&g];
                if conflicting.contains(&(d.api_id, d.environment_id)) {
                    DeploymentPlace::Conflict
                } else {
                    DeploymentPlace::OnGateway {
                        contained_in: p
                            .published
                            .filter(|(pg, _)| *pg == g)
                            .map(|(_, generation)| generation),
                    }
                }
            }
        };
        let nodes = p
            .gateway_id
            .and_then(|g| gateways.get(&g))
            .map(|(_, nodes)| nodes.as_slice())
            .unwrap_or_default();
        out.push(deployment_status(place, nodes.iter().copied()));
    }
    Ok(out)
}

/// Remove a deployment (admin or owner).
#[utoipa::path(delete, path = "/api/v1/apis/{id}/deployments/{deployment_id}", tag = "apis",
    params(("id" = uuid::Uuid, Path), ("deployment_id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_deployment(
    State(state): State<AppState>,
    principal: Principal,
    Path((raw, raw_deployment)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some((
                "deployment.delete",
                Some(AuditTarget::new("deployment", &raw_deployment)),
            )),
        )
        .await?;
    let api_id: ApiId = parse_id(&raw, "API")?;
    let id: DeploymentId = parse_id(&raw_deployment, "deployment")?;
    let deployment = state
        .store
        .deployment(account, id)
        .await
        .or_404("deployment")?;
    if deployment.api_id != api_id {
        return Err(ApiError::not_found("deployment"));
    }
    state
        .store
        .delete_deployment(account, id, principal.audit(&state, "deployment.delete"))
        .await
        .or_404("deployment")?;
    state.link.changed(account);
    Ok(StatusCode::NO_CONTENT)
}
