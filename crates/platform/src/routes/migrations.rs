//! Environment migrations (SPEC §7): `/api/v1/migrations` — create (saved at once), list,
//! show and delete, and the three steps: destination and paths, the runtime check run by
//! the destination's online nodes, and the APIs review. What the steps mean is
//! `model::migration`'s; what is saved is `crate::migrations::SavedSteps`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use model::NodeId;
use model::conflict::DeployedApi;
use model::migration::{self as rules, ProbeOutcome, Step};
use model::paths::validate_environment_paths;
use model::{Api, Deployment, Environment, EnvironmentId, EnvironmentPaths, Gateway, GatewayId};
use protocol::link::{Command, CommandDetails, CommandOutcome, ProbeTarget};
use store::{AuditTarget, EnvironmentMigration, MigrationId};

use crate::auth::{Need, Principal};
use crate::dto::EnvironmentConfiguration;
use crate::error::{ApiError, ApiResult, ErrorEnvelope, OrNotFound};
use crate::json::{Json, Query};
use crate::migrations::{
    CreateMigration, DestinationStepDto, MigrationDto, MigrationList, MigrationListQuery,
    MigrationListState, MigrationView, ProbeDto, ReviewStepDto, ReviewedApiDto,
    RuntimeCheckStepDto, SavedSteps, SetDestination, findings, saved_at,
};
use crate::routes::environments::{check_paths_on_gateway, routing};
use crate::routes::parse_id;
use crate::state::AppState;

/// How long the runtime check waits for the destination nodes' probe reports.
pub const RUNTIME_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// A migration with everything it is shown with.
struct Loaded {
    migration: EnvironmentMigration,
    saved: SavedSteps,
    environment: Environment,
    from: Option<Gateway>,
    to: Option<Gateway>,
}

impl Loaded {
    fn view(&self) -> MigrationView<'_> {
        MigrationView {
            migration: &self.migration,
            saved: &self.saved,
            environment_name: &self.environment.name,
            from: self.from.as_ref(),
            to: self.to.as_ref(),
        }
    }

    fn dto(&self) -> MigrationDto {
        self.view().dto()
    }

    /// Refuses a change of a completed migration, or of one whose gateway was deleted.
    fn require_changeable(&self) -> ApiResult<()> {
        if self.migration.completed_at.is_some() {
            return Err(completed());
        }
        let deleted = [&self.from, &self.to]
            .into_iter()
            .flatten()
            .find(|g| g.deleted_at.is_some());
        if let Some(g) = deleted {
            return Err(ApiError::conflict(
                "MIGRATION_GATEWAY_DELETED",
                format!(
                    "gateway {} of this migration was deleted; the migration can only be deleted \
                     (DELETE /api/v1/migrations/{})",
                    g.name, self.migration.id
                ),
            ));
        }
        Ok(())
    }

    /// Saves the steps as they now stand, with the destination `to`, and answers the
    /// migration as saved.
    async fn save_step(
        self,
        state: &AppState,
        account: model::AccountId,
        to: Option<GatewayId>,
        audit: store::Audit,
    ) -> ApiResult<MigrationDto> {
        let migration = state
            .store
            .update_migration(account, self.migration.id, to, self.saved.to_value(), audit)
            .await
            .or_404("migration")?;
        Ok(loaded(state, account, migration).await?.dto())
    }

    fn require_step(&self, step: Step) -> ApiResult<()> {
        self.saved.steps().check_can_run(step).map_err(|e| {
            ApiError::conflict("MIGRATION_STEP_OUT_OF_ORDER", e.to_string())
                .with_details(serde_json::json!({ "missing_step": e.missing.number() }))
        })
    }
}

fn completed() -> ApiError {
    ApiError::conflict(
        "MIGRATION_COMPLETED",
        "the migration is completed and can no longer change; create a new one",
    )
}

async fn load(state: &AppState, account: model::AccountId, raw: &str) -> ApiResult<Loaded> {
    let id: MigrationId = parse_id(raw, "migration")?;
    let migration = state
        .store
        .migration(account, id)
        .await
        .or_404("migration")?;
    loaded(state, account, migration).await
}

async fn loaded(
    state: &AppState,
    account: model::AccountId,
    migration: EnvironmentMigration,
) -> ApiResult<Loaded> {
    let saved = SavedSteps::read(&migration)?;
    let environment = state
        .store
        .environment(account, migration.environment_id)
        .await
        .or_404("environment")?;
    let gateway = |id: Option<GatewayId>| async move {
        match id {
            Some(id) => state.store.gateway(account, id).await.map(Some),
            None => Ok(None),
        }
    };
    let from = gateway(migration.from_gateway_id).await?;
    let to = gateway(migration.to_gateway_id).await?;
    Ok(Loaded {
        migration,
        saved,
        environment,
        from,
        to,
    })
}

/// Create a migration of an environment (admin or owner); it is saved at once, at step 1.
/// 409 `MIGRATION_IN_PROGRESS` when the environment already has one.
#[utoipa::path(post, path = "/api/v1/migrations", tag = "migrations",
    request_body = CreateMigration,
    responses((status = 201, body = MigrationDto), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "MIGRATION_IN_PROGRESS", body = ErrorEnvelope)))]
pub async fn create_migration(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateMigration>,
) -> ApiResult<(StatusCode, axum::Json<MigrationDto>)> {
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some((
                "migration.create",
                Some(AuditTarget::new("environment", body.environment_id)),
            )),
        )
        .await?;
    let env_id = EnvironmentId(body.environment_id);
    state
        .store
        .environment(account, env_id)
        .await
        .or_404("environment")?;
    let mut audit = principal.audit(&state, "migration.create");
    audit.details = serde_json::json!({ "environment_id": env_id.to_string() });
    let migration = state
        .store
        .create_migration(
            account,
            env_id,
            None,
            SavedSteps::default().to_value(),
            audit,
        )
        .await?;
    let loaded = loaded(&state, account, migration).await?;
    Ok((StatusCode::CREATED, axum::Json(loaded.dto())))
}

/// The migrations of the account: in progress (oldest first), or with `?state=completed`
/// the history (newest first).
#[utoipa::path(get, path = "/api/v1/migrations", tag = "migrations",
    params(MigrationListQuery),
    responses((status = 200, body = MigrationList), (status = 401, body = ErrorEnvelope)))]
pub async fn list_migrations(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<MigrationListQuery>,
) -> ApiResult<axum::Json<MigrationList>> {
    let account = principal.require(&state, Need::Member, None).await?;
    let migrations = match query.state.unwrap_or_default() {
        MigrationListState::InProgress => state.store.migrations_in_progress(account).await?,
        MigrationListState::Completed => state.store.completed_migrations(account).await?,
    };
    let mut out = Vec::with_capacity(migrations.len());
    for m in migrations {
        out.push(loaded(&state, account, m).await?.dto());
    }
    Ok(axum::Json(MigrationList { migrations: out }))
}

/// One migration: its current step, each saved step's input, summary and findings, why
/// Migrate is refused now, and its result once completed.
#[utoipa::path(get, path = "/api/v1/migrations/{id}", tag = "migrations",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = MigrationDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get_migration(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<MigrationDto>> {
    let account = principal.require(&state, Need::Member, None).await?;
    Ok(axum::Json(load(&state, account, &raw).await?.dto()))
}

/// Delete a migration in progress (admin or owner); the environment stays where it is. A
/// completed migration stays in the history: 409 `MIGRATION_COMPLETED`.
#[utoipa::path(delete, path = "/api/v1/migrations/{id}", tag = "migrations",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "MIGRATION_COMPLETED", body = ErrorEnvelope)))]
pub async fn delete_migration(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some((
                "migration.delete",
                Some(AuditTarget::new("migration", &raw)),
            )),
        )
        .await?;
    let loaded = load(&state, account, &raw).await?;
    if loaded.migration.completed_at.is_some() {
        return Err(completed());
    }
    state
        .store
        .delete_migration(
            account,
            loaded.migration.id,
            principal.audit(&state, "migration.delete"),
        )
        .await
        .or_404("migration")?;
    Ok(StatusCode::NO_CONTENT)
}

/// The environment's deployments with their APIs.
async fn deployed(
    state: &AppState,
    account: model::AccountId,
    env: EnvironmentId,
) -> ApiResult<Vec<(Api, Deployment)>> {
    let apis = state.store.apis(account).await?;
    let mut out: Vec<(Api, Deployment)> = state
        .store
        .deployments_by_environment(account, env)
        .await?
        .into_iter()
        .filter_map(|d| {
            let api = apis.iter().find(|a| a.id == d.api_id)?.clone();
            Some((api, d))
        })
        .collect();
    out.sort_by(|(a, _), (b, _)| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
    Ok(out)
}

fn paths_text(p: &EnvironmentPaths) -> String {
    format!(
        "REST `{}`, SOAP `{}`, SOAP 1.2 `{}`, OData `{}`",
        p.rest, p.soap, p.soap12, p.odata
    )
}

/// Step 1: the destination (a gateway of the account, or null for "off its gateway", only
/// when the environment is attached) and the environment's paths there, validated as SPEC §6
/// against the destination's environments and APIs (422 with the same codes as
/// `PUT /environments/{id}/configuration`, the conflicting APIs named). Redoing it clears
/// steps 2 and 3.
#[utoipa::path(put, path = "/api/v1/migrations/{id}/destination", tag = "migrations",
    params(("id" = uuid::Uuid, Path)), request_body = SetDestination,
    responses((status = 200, body = MigrationDto), (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "MIGRATION_COMPLETED, MIGRATION_GATEWAY_DELETED", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
pub async fn set_destination(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    Json(body): Json<SetDestination>,
) -> ApiResult<axum::Json<MigrationDto>> {
    let action = "migration.destination";
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some((action, Some(AuditTarget::new("migration", &raw)))),
        )
        .await?;
    let result = async {
        let mut loaded = load(&state, account, &raw).await?;
        loaded.require_changeable()?;
        let env = &loaded.environment;
        let destination = match body.gateway_id.map(GatewayId) {
            Some(id) => {
                let g = state.store.gateway(account, id).await.or_404("gateway")?;
                if g.deleted_at.is_some() {
                    return Err(ApiError::not_found("gateway"));
                }
                if Some(g.id) == env.gateway_id {
                    return Err(ApiError::validation(
                        "MIGRATION_SAME_GATEWAY",
                        "gateway_id",
                        format!(
                            "{} is already on gateway {}; choose another gateway, or null to \
                             move it off its gateway",
                            env.name, g.name
                        ),
                    ));
                }
                Some(g)
            }
            None if env.gateway_id.is_none() => {
                return Err(ApiError::validation(
                    "MIGRATION_DESTINATION_REQUIRED",
                    "gateway_id",
                    format!(
                        "{} is not attached to a gateway, so it cannot move off one; choose a \
                         destination gateway",
                        env.name
                    ),
                ));
            }
            None => None,
        };
        let paths = validate_environment_paths(&EnvironmentPaths {
            rest: body.paths.rest_path,
            soap: body.paths.soap_path,
            soap12: body.paths.soap12_path,
            odata: body.paths.odata_path,
        })?;
        let deployments = deployed(&state, account, env.id).await?;
        let mut warnings = Vec::new();
        if let Some(g) = &destination {
            let routes = state.store.gateway_routes(account, g.id).await?;
            let extra: Vec<DeployedApi> = deployments
                .iter()
                .map(|(a, d)| DeployedApi::new(a, d))
                .collect();
            check_paths_on_gateway(env, &paths, &routes, &extra).map_err(|r| r.0)?;
            let (others, _) = routing(&routes);
            warnings = rules::nested_path_warnings(env.id, &env.name, &paths, &others);
        }
        let count = deployments.len();
        let apis = format!("{count} deployed API{}", if count == 1 { "" } else { "s" });
        let summary = match (&loaded.from, &destination) {
            (None, Some(to)) => format!(
                "Attach {} to {} with paths {}; {apis} start serving there.",
                env.name,
                to.name,
                paths_text(&paths)
            ),
            (Some(from), Some(to)) => format!(
                "Move {} from {} to {} with paths {}; {apis} move with it.",
                env.name,
                from.name,
                to.name,
                paths_text(&paths)
            ),
            (_, None) => format!(
                "Move {} off its gateway; {apis} will no longer be served by a gateway.",
                env.name
            ),
        };
        loaded.saved.destination = Some(DestinationStepDto {
            gateway_id: destination.as_ref().map(|g| g.id.0),
            paths: EnvironmentConfiguration {
                rest_path: paths.rest.clone(),
                soap_path: paths.soap.clone(),
                soap12_path: paths.soap12.clone(),
                odata_path: paths.odata.clone(),
            },
            summary,
            warnings: findings(&warnings),
            saved_at: saved_at(state.now()),
        });
        loaded.saved.invalidate_after(Step::Destination);
        let mut audit = principal.audit(&state, action);
        audit.details = serde_json::json!({
            "gateway_id": destination.as_ref().map(|g| g.id.to_string()),
            "paths": {
                "rest_path": paths.rest, "soap_path": paths.soap,
                "soap12_path": paths.soap12, "odata_path": paths.odata,
            },
        });
        let to = destination.as_ref().map(|g| g.id);
        Ok(axum::Json(
            loaded.save_step(&state, account, to, audit).await?,
        ))
    }
    .await;
    principal
        .audit_refusal(
            &state,
            account,
            action,
            AuditTarget::new("migration", &raw),
            result,
        )
        .await
}

/// What steps 2 and 3 start with: the caller may manage, the migration can change, and the
/// earlier steps are complete.
async fn begin_step(
    state: &AppState,
    principal: &Principal,
    raw: &str,
    action: &str,
    step: Step,
) -> ApiResult<(model::AccountId, Loaded)> {
    let account = principal
        .require(
            state,
            Need::Manage,
            Some((action, Some(AuditTarget::new("migration", raw)))),
        )
        .await?;
    let loaded = load(state, account, raw).await?;
    loaded.require_changeable()?;
    loaded.require_step(step)?;
    Ok((account, loaded))
}

/// The online nodes of a gateway now, by id and host name, oldest first.
async fn online_nodes(
    state: &AppState,
    account: model::AccountId,
    gateway: GatewayId,
) -> ApiResult<Vec<(NodeId, String)>> {
    let at = state.now();
    Ok(state
        .store
        .nodes(account, gateway)
        .await?
        .into_iter()
        .filter(|(n, _)| is_online(state, n.id, at))
        .map(|(n, _)| (n.id, n.host_name))
        .collect())
}

/// Whether `node`'s status at `at` is Online.
fn is_online(state: &AppState, node: NodeId, at: model::Timestamp) -> bool {
    state
        .link
        .node_status(node, at)
        .is_some_and(|s| s.state == model::status::GatewayState::Online)
}

/// What a node probes for an API: its health-check URL, else its first upstream target
/// (a TCP connect).
fn probe_target(api: &Api) -> Option<String> {
    api.health_check_url
        .clone()
        .or_else(|| api.upstream_targets.first().map(|t| t.url.clone()))
}

/// Step 2: the destination's online nodes probe every deployed API's upstream (its
/// health-check URL, else a TCP connect) and report, within a bounded time; the reports are
/// saved with the migration. No online destination node is an ERROR
/// (`DESTINATION_OFFLINE`); an unreachable upstream a WARNING naming the API, the target and
/// the node; moving off a WARNING that the APIs will no longer be reachable. Redoing it
/// clears step 3.
#[utoipa::path(post, path = "/api/v1/migrations/{id}/runtime-check", tag = "migrations",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = MigrationDto), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "MIGRATION_STEP_OUT_OF_ORDER, MIGRATION_COMPLETED, MIGRATION_GATEWAY_DELETED", body = ErrorEnvelope)))]
pub async fn runtime_check(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<MigrationDto>> {
    let action = "migration.runtime_check";
    let (account, mut loaded) =
        begin_step(&state, &principal, &raw, action, Step::RuntimeCheck).await?;
    let deployments = deployed(&state, account, loaded.environment.id).await?;
    let api_names: Vec<String> = deployments.iter().map(|(a, _)| a.name.clone()).collect();
    let mut asked = Vec::new();
    let mut answered = Vec::new();
    let mut outcomes = Vec::new();
    let mut probes = Vec::new();
    let warnings = match &loaded.to {
        None => rules::runtime_check_findings(false, &api_names, &[], &[], &[]),
        Some(destination) => {
            let nodes = online_nodes(&state, account, destination.id).await?;
            let targets: Vec<ProbeTarget> = deployments
                .iter()
                .filter_map(|(api, _)| {
                    probe_target(api).map(|url| ProbeTarget {
                        api_id: api.id.to_string(),
                        url,
                    })
                })
                .collect();
            let ids: Vec<NodeId> = nodes.iter().map(|(id, _)| *id).collect();
            let answers = if ids.is_empty() || targets.is_empty() {
                // Nothing to ask: an offline destination is the model's ERROR; with no API
                // every online node has nothing to report.
                ids.iter().map(|id| (*id, None)).collect()
            } else {
                crate::link::results::ask(
                    &state.link,
                    &ids,
                    &Command::ProbeUpstreams { targets },
                    RUNTIME_CHECK_TIMEOUT,
                )
                .await
            };
            for ((id, name), (_, answer)) in nodes.iter().zip(answers) {
                asked.push(name.clone());
                let report = match answer {
                    Some(CommandOutcome::Done {
                        details: CommandDetails::ProbeUpstreams(report),
                    }) => report,
                    Some(other) => {
                        tracing::warn!(node = %id, ?other, "a probe did not run");
                        continue;
                    }
                    None if deployments.is_empty() => {
                        answered.push(name.clone());
                        continue;
                    }
                    None => continue,
                };
                answered.push(name.clone());
                for r in report.results {
                    let Some((api, _)) = deployments
                        .iter()
                        .find(|(a, _)| a.id.to_string() == r.api_id)
                    else {
                        continue;
                    };
                    outcomes.push(ProbeOutcome {
                        node: name.clone(),
                        api_name: api.name.clone(),
                        target: r.url.clone(),
                        reachable: r.reachable,
                        error: r.error.clone(),
                    });
                    probes.push(ProbeDto {
                        node_id: id.0,
                        node: name.clone(),
                        api_id: api.id.0,
                        api: api.name.clone(),
                        target: r.url,
                        reachable: r.reachable,
                        status: r.status,
                        latency_ms: r.latency_ms,
                        error: r.error,
                    });
                }
            }
            rules::runtime_check_findings(true, &api_names, &asked, &answered, &outcomes)
        }
    };
    let reachable = probes.iter().filter(|p| p.reachable).count();
    let summary = match &loaded.to {
        None => format!(
            "Moving off: {} API{} will no longer be reachable through a gateway.",
            api_names.len(),
            if api_names.len() == 1 { "" } else { "s" }
        ),
        Some(g) if asked.is_empty() => format!(
            "{} has no online node: start a node of it, then run the check again.",
            g.name
        ),
        Some(g) => format!(
            "{} of {} node{} of {} answered; {reachable} of {} probe{} reached the upstream.",
            answered.len(),
            asked.len(),
            if asked.len() == 1 { "" } else { "s" },
            g.name,
            probes.len(),
            if probes.len() == 1 { "" } else { "s" }
        ),
    };
    loaded.saved.runtime_check = Some(RuntimeCheckStepDto {
        nodes_asked: asked,
        nodes_answered: answered,
        probes,
        summary,
        warnings: findings(&warnings),
        saved_at: saved_at(state.now()),
    });
    loaded.saved.invalidate_after(Step::RuntimeCheck);
    let mut audit = principal.audit(&state, action);
    audit.details = serde_json::json!({
        "findings": warnings.iter().map(|w| w.code.as_str()).collect::<Vec<_>>(),
    });
    let to = loaded.migration.to_gateway_id;
    Ok(axum::Json(
        loaded.save_step(&state, account, to, audit).await?,
    ))
}

/// Step 3: the environment's deployed APIs with their authentication and plans. An API that
/// needs a plan and has none will be an ERROR once plans exist (API policies); until then
/// the review lists the APIs and raises nothing.
#[utoipa::path(post, path = "/api/v1/migrations/{id}/review", tag = "migrations",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = MigrationDto), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "MIGRATION_STEP_OUT_OF_ORDER, MIGRATION_COMPLETED, MIGRATION_GATEWAY_DELETED", body = ErrorEnvelope)))]
pub async fn review(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<MigrationDto>> {
    let action = "migration.review";
    let (account, mut loaded) = begin_step(&state, &principal, &raw, action, Step::Review).await?;
    let deployments = deployed(&state, account, loaded.environment.id).await?;
    let apis: Vec<ReviewedApiDto> = deployments
        .iter()
        .map(|(api, _)| ReviewedApiDto {
            api_id: api.id.0,
            name: api.name.clone(),
            version: api.version.clone(),
            authentication: "none".to_owned(),
            plans: Vec::new(),
        })
        .collect();
    let warnings = if apis.is_empty() {
        vec![rules::Warning::new(
            rules::Severity::Info,
            rules::codes::NO_DEPLOYED_APIS,
            "the environment has no deployed API",
        )]
    } else {
        Vec::new()
    };
    let summary = format!(
        "{} API{} reviewed; none requires a plan.",
        apis.len(),
        if apis.len() == 1 { "" } else { "s" }
    );
    loaded.saved.review = Some(ReviewStepDto {
        apis,
        summary,
        warnings: findings(&warnings),
        saved_at: saved_at(state.now()),
    });
    loaded.saved.invalidate_after(Step::Review);
    let to = loaded.migration.to_gateway_id;
    let audit = principal.audit(&state, action);
    Ok(axum::Json(
        loaded.save_step(&state, account, to, audit).await?,
    ))
}

/// How often Migrate looks at the destination nodes' applied generations.
const CUTOVER_POLL: Duration = Duration::from_millis(100);

/// Why a cut-over did not complete.
struct CutoverFailed(String);

/// Waits until every node of `nodes` (the destination's online nodes when the cut-over
/// started) applied `generation` or a newer one; fails when one of them goes offline or the
/// time runs out.
async fn wait_applied(
    state: &AppState,
    account: model::AccountId,
    gateway: &Gateway,
    nodes: &[(NodeId, String)],
    generation: u64,
) -> Result<(), CutoverFailed> {
    let limit = state.link.config().migration_cutover_timeout;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let stored = state
            .store
            .nodes(account, gateway.id)
            .await
            .map_err(|e| CutoverFailed(format!("the database did not answer: {e}")))?;
        let at = state.now();
        let mut waiting = Vec::new();
        for (id, name) in nodes {
            let applied = stored
                .iter()
                .find(|(n, _)| n.id == *id)
                .and_then(|(n, _)| n.applied_generation);
            if applied.is_some_and(|g| g >= generation) {
                continue;
            }
            if !is_online(state, *id, at) {
                return Err(CutoverFailed(format!(
                    "node {name} of {} went offline before it applied the configuration \
                     with the environment (generation {generation})",
                    gateway.name
                )));
            }
            waiting.push(name.as_str());
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CutoverFailed(format!(
                "{} did not apply the configuration with the environment (generation \
                 {generation}) within {} s: {}",
                gateway.name,
                limit.as_secs(),
                waiting.join(", ")
            )));
        }
        tokio::time::sleep(CUTOVER_POLL).await;
    }
}

/// Migrate (admin or owner): refused with 409 `MIGRATION_BLOCKED` while a step is incomplete
/// or an ERROR stands. Make-before-break: the destination gateway receives the environment
/// (with the paths of step 1) while the source still serves it; once every online
/// destination node applied that configuration (within the platform's cut-over timeout,
/// default 60 s) the environment leaves the source, whose nodes answer its URLs with `308`
/// to the destination's Gateway URL for the grace period (default 10 min), then 404. A
/// cut-over that does not complete ends the migration with result `ERROR` and changes
/// nothing. Moving off has no destination: the URLs answer 404 at once.
#[utoipa::path(post, path = "/api/v1/migrations/{id}/migrate", tag = "migrations",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = MigrationDto), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "MIGRATION_BLOCKED, MIGRATION_COMPLETED, MIGRATION_GATEWAY_DELETED", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
pub async fn migrate(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<MigrationDto>> {
    let action = "migration.migrate";
    let account = principal
        .require(
            &state,
            Need::Manage,
            Some((action, Some(AuditTarget::new("migration", &raw)))),
        )
        .await?;
    let result = async {
        let mut loaded = load(&state, account, &raw).await?;
        loaded.require_changeable()?;
        let blocked = loaded.view().blocked();
        if !blocked.is_empty() {
            let reasons: Vec<String> = blocked.iter().map(ToString::to_string).collect();
            return Err(ApiError::conflict(
                "MIGRATION_BLOCKED",
                format!("Migrate is refused: {}", reasons.join("; ")),
            )
            .with_details(serde_json::json!({
                "blocked": blocked.iter().map(crate::migrations::BlockedDto::from).collect::<Vec<_>>(),
            })));
        }
        let Some(step) = loaded.saved.destination.clone() else {
            unreachable!("not blocked, so step 1 is saved")
        };
        let paths = EnvironmentPaths {
            rest: step.paths.rest_path,
            soap: step.paths.soap_path,
            soap12: step.paths.soap12_path,
            odata: step.paths.odata_path,
        };
        let env = loaded.environment.clone();
        if env.gateway_id != loaded.migration.from_gateway_id {
            return Err(ApiError::conflict(
                "MIGRATION_SOURCE_CHANGED",
                format!(
                    "{} is no longer on the gateway this migration started from; delete this \
                     migration and create a new one",
                    env.name
                ),
            ));
        }
        // The destination's routes do not hold the environment's deployments yet.
        let extra: Vec<DeployedApi> = deployed(&state, account, env.id)
            .await?
            .iter()
            .map(|(a, d)| DeployedApi::new(a, d))
            .collect();
        let check = |env: &Environment, routes: Option<&store::GatewayRoutes>| match routes {
            Some(routes) => check_paths_on_gateway(env, &paths, routes, &extra),
            None => Ok(()),
        };
        let standing = loaded.view().warnings();
        let mut audit = principal.audit(&state, action);
        let (result, applied, findings_now) = match loaded.to.clone() {
            None => {
                // Moving off: nothing to make first; the URLs answer 404 at once.
                let outcome = store::MigrationOutcome::Applied {
                    paths: paths.clone(),
                    redirect: None,
                };
                (rules::MigrationResult::of_completed(&standing), outcome, Vec::new())
            }
            Some(destination) => {
                let at = state.now();
                let nodes = online_nodes(&state, account, destination.id).await?;
                let cutover = if nodes.is_empty() {
                    Err(CutoverFailed(format!(
                        "{} has no online node to receive the environment",
                        destination.name
                    )))
                } else {
                    state
                        .store
                        .start_cutover(account, loaded.migration.id, &paths, at, &check)
                        .await
                        .or_404("migration")?;
                    let generation = state.link.publish_now(account, destination.id).await?;
                    wait_applied(&state, account, &destination, &nodes, generation).await
                };
                match cutover {
                    Ok(()) => {
                        // The destination serves the environment: the source may let it go.
                        let redirect = match &loaded.from {
                            Some(_) => crate::routes::gateways::shown_gateway_url(
                                &state,
                                account,
                                destination.id,
                            )
                            .await?
                            .map(|location| store::CutoverRedirect {
                                location,
                                until: state.now().plus(state.link.config().migration_grace),
                            }),
                            None => None,
                        };
                        let outcome = store::MigrationOutcome::Applied {
                            paths: paths.clone(),
                            redirect,
                        };
                        (rules::MigrationResult::of_completed(&standing), outcome, Vec::new())
                    }
                    Err(CutoverFailed(why)) => {
                        let finding = rules::Warning::new(
                            rules::Severity::Error,
                            rules::codes::CUTOVER_TIMEOUT,
                            format!("{why}; nothing changed: {} stays where it was", env.name),
                        );
                        (
                            rules::MigrationResult::Error,
                            store::MigrationOutcome::Unchanged,
                            vec![finding],
                        )
                    }
                }
            }
        };
        loaded.saved.migrate = findings(&findings_now);
        audit.details = serde_json::json!({ "findings": findings_now.iter().map(|w| &w.code).collect::<Vec<_>>() });
        let migration = state
            .store
            .complete_migration(
                account,
                loaded.migration.id,
                result.name(),
                applied,
                loaded.saved.to_value(),
                audit,
                &check,
            )
            .await
            .or_404("migration")?;
        state.link.changed(account);
        Ok(axum::Json(self::loaded(&state, account, migration).await?.dto()))
    }
    .await;
    principal
        .audit_refusal(
            &state,
            account,
            action,
            AuditTarget::new("migration", &raw),
            result,
        )
        .await
}
