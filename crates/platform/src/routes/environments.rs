//! Environments: CRUD, their URL path configuration (SPEC §6) and, until environment
//! migrations land (SPEC §7), a direct attach/detach to a gateway.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use model::conflict::{DeployedApi, GatewayEnvironment, ProposedChange, check_change};
use model::paths::{check_unique_on_gateway, validate_environment_paths};
use model::{Environment, EnvironmentId, EnvironmentPaths, GatewayId};
use store::{AuditTarget, GatewayRoutes, NewEnvironment};

use crate::auth::{Need, Principal};
use crate::dto::{
    AttachEnvironment, CreateEnvironment, EnvironmentConfiguration, EnvironmentConfigurationView,
    EnvironmentDto, EnvironmentList, ExampleUrlDto, UpdateEnvironment,
};
use crate::error::{ApiError, ApiResult, ErrorEnvelope, OrNotFound, Refused};
use crate::json::Json;
use crate::json::Query;
use crate::routes::{paginate, parse_id};
use crate::state::AppState;

/// The routing facts of a gateway, in the model's terms.
pub(crate) fn routing(routes: &GatewayRoutes) -> (Vec<GatewayEnvironment>, Vec<DeployedApi>) {
    let environments = routes
        .environments
        .iter()
        .map(|e| GatewayEnvironment {
            id: e.id,
            name: e.name.clone(),
            paths: e.paths.clone(),
        })
        .collect();
    let deployments = routes
        .deployments
        .iter()
        .map(|r| DeployedApi::new(&r.api, &r.deployment))
        .collect();
    (environments, deployments)
}

/// SPEC §6 checks of `paths` for `env` on a gateway with `routes`: unique among the gateway's
/// environments, and no API path conflict. `extra` are deployments of `env` that `routes`
/// does not hold yet (when the environment is moving onto the gateway).
pub(crate) fn check_paths_on_gateway(
    env: &Environment,
    paths: &EnvironmentPaths,
    routes: &GatewayRoutes,
    extra: &[DeployedApi],
) -> Result<(), Refused> {
    check_unique_on_gateway(env.id, paths, &routes.environments).map_err(|e| Refused(e.into()))?;
    let (environments, mut deployments) = routing(routes);
    deployments.extend(extra.iter().cloned());
    check_change(
        &environments,
        &deployments,
        ProposedChange::EnvironmentPaths {
            environment_id: env.id,
            environment_name: &env.name,
            paths,
        },
    )
    .map_err(|e| Refused(e.into()))
}

/// Create an environment (admin or owner); it starts unattached with the default paths
/// `ws/rest`, `ws/soap`, `ws/soap12`, `ws/odata`.
#[utoipa::path(post, path = "/api/v1/environments", tag = "environments",
    request_body = CreateEnvironment,
    responses((status = 201, body = EnvironmentDto), (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
pub async fn create_environment(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateEnvironment>,
) -> ApiResult<(StatusCode, axum::Json<EnvironmentDto>)> {
    let account = principal
        .require(&state, Need::Manage, Some(("environment.create", None)))
        .await?;
    let name = model::validate::validate_environment_name(&body.name)?;
    let env = state
        .store
        .create_environment(
            account,
            NewEnvironment {
                name,
                classification: body.classification.into(),
                paths: EnvironmentPaths::default(),
            },
            principal.audit(&state, "environment.create"),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(EnvironmentDto::from(&env))))
}

/// The environments of the caller's account, by name.
#[utoipa::path(get, path = "/api/v1/environments", tag = "environments",
    params(crate::dto::PageQuery),
    responses((status = 200, body = EnvironmentList), (status = 401, body = ErrorEnvelope)))]
pub async fn list_environments(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<crate::dto::PageQuery>,
) -> ApiResult<axum::Json<EnvironmentList>> {
    let account = principal.require(&state, Need::Member, None).await?;
    let envs = state.store.environments(account).await?;
    let (page, next_cursor) = paginate(envs, |e| e.id.0, &query)?;
    Ok(axum::Json(EnvironmentList {
        environments: page.iter().map(EnvironmentDto::from).collect(),
        next_cursor,
    }))
}

/// One environment.
#[utoipa::path(get, path = "/api/v1/environments/{id}", tag = "environments",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = EnvironmentDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get_environment(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<EnvironmentDto>> {
    let account = principal.require(&state, Need::Member, None).await?;
    let id: EnvironmentId = parse_id(&raw, "environment")?;
    let env = state
        .store
        .environment(account, id)
        .await
        .or_404("environment")?;
    Ok(axum::Json(EnvironmentDto::from(&env)))
}

/// Rename or reclassify an environment (admin or owner).
#[utoipa::path(patch, path = "/api/v1/environments/{id}", tag = "environments",
    params(("id" = uuid::Uuid, Path)), request_body = UpdateEnvironment,
    responses((status = 200, body = EnvironmentDto), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn update_environment(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    Json(body): Json<UpdateEnvironment>,
) -> ApiResult<axum::Json<EnvironmentDto>> {
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some((
                "environment.update",
                Some(AuditTarget::new("environment", &raw)),
            )),
        )
        .await?;
    let id: EnvironmentId = parse_id(&raw, "environment")?;
    let current = state
        .store
        .environment(account, id)
        .await
        .or_404("environment")?;
    let name = match body.name {
        Some(name) => model::validate::validate_environment_name(&name)?,
        None => current.name,
    };
    let classification = body
        .classification
        .map(Into::into)
        .unwrap_or(current.classification);
    let env = state
        .store
        .update_environment(
            account,
            id,
            &name,
            classification,
            principal.audit(&state, "environment.update"),
        )
        .await
        .or_404("environment")?;
    state.link.changed(account);
    Ok(axum::Json(EnvironmentDto::from(&env)))
}

/// Delete an environment and its deployments (admin or owner).
#[utoipa::path(delete, path = "/api/v1/environments/{id}", tag = "environments",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_environment(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some((
                "environment.delete",
                Some(AuditTarget::new("environment", &raw)),
            )),
        )
        .await?;
    let id: EnvironmentId = parse_id(&raw, "environment")?;
    state
        .store
        .delete_environment(account, id, principal.audit(&state, "environment.delete"))
        .await
        .or_404("environment")?;
    state.link.changed(account);
    Ok(StatusCode::NO_CONTENT)
}

/// The URL paths of an environment, the example URL of every deployed API (encoded form) and
/// an `ENVIRONMENT_PATH_NESTED` WARNING for each path nested with one of another environment
/// on the same gateway.
#[utoipa::path(get, path = "/api/v1/environments/{id}/configuration", tag = "environments",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = EnvironmentConfigurationView), (status = 404, body = ErrorEnvelope)))]
pub async fn get_configuration(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<EnvironmentConfigurationView>> {
    let account = principal.require(&state, Need::Member, None).await?;
    let id: EnvironmentId = parse_id(&raw, "environment")?;
    let env = state
        .store
        .environment(account, id)
        .await
        .or_404("environment")?;
    let apis = state.store.apis(account).await?;
    let deployed: Vec<DeployedApi> = state
        .store
        .deployments_by_environment(account, id)
        .await?
        .iter()
        .filter_map(|d| {
            apis.iter()
                .find(|a| a.id == d.api_id)
                .map(|a| DeployedApi::new(a, d))
        })
        .collect();
    let (gateway_url, warnings) = match env.gateway_id {
        Some(g) => {
            let url = crate::routes::gateways::shown_gateway_url(&state, account, g).await?;
            let routes = state.store.gateway_routes(account, g).await?;
            let (others, _) = routing(&routes);
            let nested =
                model::migration::nested_path_warnings(env.id, &env.name, &env.paths, &others);
            (url, nested)
        }
        None => (None, Vec::new()),
    };
    let example_urls =
        model::migration::example_urls(gateway_url.as_deref(), &env.paths, &deployed)
            .into_iter()
            .map(|e| ExampleUrlDto {
                api_id: e.api_id.0,
                api: e.api_name,
                url: e.url,
            })
            .collect();
    Ok(axum::Json(EnvironmentConfigurationView {
        rest_path: env.paths.rest,
        soap_path: env.paths.soap,
        soap12_path: env.paths.soap12,
        odata_path: env.paths.odata,
        example_urls,
        warnings: crate::migrations::findings(&warnings),
    }))
}

/// Set the four URL paths of an environment (admin or owner). Paths are validated by the
/// rules of SPEC §6 and stored percent-encoded; a refusal is 422 with the rule's code
/// (`ENVIRONMENT_PATH_EMPTY`, `_LEADING_SLASH`, `_TRAILING_SLASH`, `_SPACES`,
/// `_CONSECUTIVE_SLASHES`, `_RELATIVE`, `_INVALID_ENCODED`, `_DUPLICATE`,
/// `_NOT_UNIQUE_ON_GATEWAY`, or `API_PATH_CONFLICT` naming the APIs) and `details.field`.
#[utoipa::path(put, path = "/api/v1/environments/{id}/configuration", tag = "environments",
    params(("id" = uuid::Uuid, Path)), request_body = EnvironmentConfiguration,
    responses((status = 200, body = EnvironmentDto), (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn put_configuration(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    Json(body): Json<EnvironmentConfiguration>,
) -> ApiResult<axum::Json<EnvironmentDto>> {
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some((
                "environment.update_paths",
                Some(AuditTarget::new("environment", &raw)),
            )),
        )
        .await?;
    let result = async {
        let id: EnvironmentId = parse_id(&raw, "environment")?;
        let paths = validate_environment_paths(&EnvironmentPaths {
            rest: body.rest_path,
            soap: body.soap_path,
            soap12: body.soap12_path,
            odata: body.odata_path,
        })?;
        let env = state
            .store
            .update_environment_paths(
                account,
                id,
                paths.clone(),
                principal.audit(&state, "environment.update_paths"),
                |env, routes| match routes {
                    Some(routes) => check_paths_on_gateway(env, &paths, routes, &[]),
                    None => Ok(()),
                },
            )
            .await
            .or_404("environment")?;
        state.link.changed(account);
        Ok(axum::Json(EnvironmentDto::from(&env)))
    }
    .await;
    principal
        .audit_refusal(
            &state,
            account,
            "environment.update_paths",
            AuditTarget::new("environment", &raw),
            result,
        )
        .await
}

/// Attach the environment to a gateway, move it, or detach it (`gateway_id: null`); admin or
/// owner. **Interim:** SPEC §7 makes environment migration the only way to do this; until
/// migrations land this direct switch stands in for them, with the same path rules checked
/// against the destination gateway (422 `ENVIRONMENT_PATH_NOT_UNIQUE_ON_GATEWAY` or
/// `API_PATH_CONFLICT`). It will be removed when migrations exist.
#[utoipa::path(put, path = "/api/v1/environments/{id}/gateway", tag = "environments",
    params(("id" = uuid::Uuid, Path)), request_body = AttachEnvironment,
    responses((status = 200, body = EnvironmentDto), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
pub async fn attach_environment(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    Json(body): Json<AttachEnvironment>,
) -> ApiResult<axum::Json<EnvironmentDto>> {
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some((
                "environment.set_gateway",
                Some(AuditTarget::new("environment", &raw)),
            )),
        )
        .await?;
    let result = async {
        let id: EnvironmentId = parse_id(&raw, "environment")?;
        let gateway = body.gateway_id.map(GatewayId);
        // Name the missing object precisely: the environment, or the destination gateway.
        state
            .store
            .environment(account, id)
            .await
            .or_404("environment")?;
        if let Some(gateway) = gateway {
            let g = state
                .store
                .gateway(account, gateway)
                .await
                .or_404("gateway")?;
            if g.deleted_at.is_some() {
                return Err(ApiError::not_found("gateway"));
            }
        }
        // The environment's own deployments join the destination's routes on attach. Read
        // before the transaction: a deployment created in between is checked by its own request
        // against the environment's then-current gateway.
        let mut extra = Vec::new();
        if gateway.is_some() {
            let apis = state.store.apis(account).await?;
            for d in state.store.deployments_by_environment(account, id).await? {
                if let Some(api) = apis.iter().find(|a| a.id == d.api_id) {
                    extra.push(DeployedApi::new(api, &d));
                }
            }
        }
        let env = state
            .store
            .set_environment_gateway(
                account,
                id,
                gateway,
                principal.audit(&state, "environment.set_gateway"),
                |env, routes| match routes {
                    Some(routes) if Some(routes.gateway_id) != env.gateway_id => {
                        check_paths_on_gateway(env, &env.paths, routes, &extra)
                    }
                    _ => Ok(()),
                },
            )
            .await
            .or_404("environment")?;
        state.link.changed(account);
        Ok(axum::Json(EnvironmentDto::from(&env)))
    }
    .await;
    principal
        .audit_refusal(
            &state,
            account,
            "environment.set_gateway",
            AuditTarget::new("environment", &raw),
            result,
        )
        .await
}
