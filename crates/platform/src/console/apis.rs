//! The APIs pages: the list, create and edit forms, and one API's page with its deployments
//! (SPEC §8: status Requires Configuration or Sent to the Gateway) where it is deployed to an
//! environment or undeployed, and its delete page (a confirmation naming what stops being
//! served). Changes are the REST handlers', so a deployment that would create a path conflict
//! is refused here exactly as there, naming the APIs.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use model::conflict::{example_url, route_prefix};
use model::{AccountId, Api, ApiId, ApiType, DeploymentStatus};

use super::form::FieldErrors;
use super::{Act, ConsoleError, ConsoleResult, ConsoleUser, Layout, Posted, render};
use crate::auth::Need;
use crate::dto::{ApiTypeDto, CreateApi, CreateDeployment, UpdateApi};
use crate::json::Json;
use crate::routes::apis as rest;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/apis", get(list_page))
        .route("/apis/new", get(new_page).post(create))
        .route("/apis/{id}", get(api_page))
        .route("/apis/{id}/edit", get(edit_page).post(save))
        .route("/apis/{id}/deploy", post(deploy))
        .route("/apis/{id}/delete", get(delete_page).post(delete))
        .route(
            "/apis/{id}/deployments/{deployment}/undeploy",
            post(undeploy),
        )
}

/// The API types a form offers: the REST value and the label.
const TYPES: [(&str, &str); 4] = [
    ("REST", "REST"),
    ("SOAP", "SOAP"),
    ("SOAP12", "SOAP 1.2"),
    ("ODATA", "OData"),
];

/// The fields of the create and edit forms, as their REST names.
const FIELDS: [&str; 5] = [
    "name",
    "version",
    "base_path",
    "upstream_targets",
    "health_check_url",
];

async fn account(state: &AppState, user: &ConsoleUser, need: Need) -> ConsoleResult<AccountId> {
    Ok(user.principal.require(state, need, None).await?)
}

async fn api(state: &AppState, account: AccountId, raw: &str) -> ConsoleResult<Api> {
    let id: ApiId = raw.parse().map_err(|_| ConsoleError::not_found("API"))?;
    state.store.api(account, id).await.map_err(|e| match e {
        store::StoreError::NotFound => ConsoleError::not_found("API"),
        other => other.into(),
    })
}

fn type_value(t: ApiType) -> &'static str {
    match t {
        ApiType::Rest => "REST",
        ApiType::Soap => "SOAP",
        ApiType::Soap12 => "SOAP12",
        ApiType::Odata => "ODATA",
    }
}

fn type_label(t: ApiType) -> &'static str {
    match t {
        ApiType::Rest => "REST",
        ApiType::Soap => "SOAP",
        ApiType::Soap12 => "SOAP 1.2",
        ApiType::Odata => "OData",
    }
}

fn parse_type(raw: &str) -> Option<ApiTypeDto> {
    serde_json::from_value(serde_json::Value::String(raw.to_string())).ok()
}

fn status_label(s: DeploymentStatus) -> (&'static str, &'static str, &'static str) {
    match s {
        DeploymentStatus::Pending => ("Pending", "warn", "pending"),
        DeploymentStatus::SentToGateway => ("Sent to the Gateway", "ok", "sent_to_gateway"),
        DeploymentStatus::RequiresConfiguration => {
            ("Requires Configuration", "warn", "requires_configuration")
        }
    }
}

// ---- the list --------------------------------------------------------------------------------

struct ApiRow {
    id: String,
    name: String,
    version: String,
    api_type: &'static str,
    base_path: String,
    targets: Vec<String>,
    /// Deployments by status: Sent to the Gateway, Pending, Requires Configuration.
    sent: usize,
    pending: usize,
    requires: usize,
}

#[derive(Template)]
#[template(path = "apis.html")]
struct ListPage {
    l: Layout,
    can_manage: bool,
    rows: Vec<ApiRow>,
}

#[derive(serde::Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn list_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(query): Query<DoneQuery>,
) -> ConsoleResult<Response> {
    let account = account(&state, &user, Need::Member).await?;
    let apis = state.store.apis(account).await?;
    // Every deployment of the account in one read, with the REST side's status derivation.
    let placed = state.store.account_deployments(account).await?;
    let statuses = rest::deployment_statuses(&state, account, &placed).await?;
    let mut counts: HashMap<ApiId, [usize; 3]> = HashMap::new();
    for (p, status) in placed.iter().zip(statuses) {
        let count = counts.entry(p.deployment.api_id).or_default();
        count[match status {
            DeploymentStatus::SentToGateway => 0,
            DeploymentStatus::Pending => 1,
            DeploymentStatus::RequiresConfiguration => 2,
        }] += 1;
    }
    let rows = apis
        .into_iter()
        .map(|a| {
            let [sent, pending, requires] = counts.get(&a.id).copied().unwrap_or_default();
            ApiRow {
                id: a.id.to_string(),
                version: a.version,
                api_type: type_label(a.api_type),
                base_path: a.base_path,
                targets: a.upstream_targets.into_iter().map(|t| t.url).collect(),
                sent,
                pending,
                requires,
                name: a.name,
            }
        })
        .collect();
    let notice = match query.done.as_deref() {
        Some("deleted") => Some("API deleted."),
        _ => None,
    };
    Ok(render(&ListPage {
        l: Layout::new(&user, "APIs", "apis").with_notice(notice),
        can_manage: user.principal.user.role.can_manage(),
        rows,
    }))
}

// ---- create and edit -------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "api_form.html")]
struct FormPage {
    l: Layout,
    /// `None` when creating.
    id: Option<String>,
    heading: String,
    name: String,
    version: String,
    api_type: String,
    base_path: String,
    targets: String,
    health_check_url: String,
    types: &'static [(&'static str, &'static str)],
    errors: FieldErrors,
}

impl FormPage {
    fn from_form(l: Layout, id: Option<String>, heading: String, form: &Posted) -> Self {
        Self {
            l,
            id,
            heading,
            name: form.text("name"),
            version: form.text("version"),
            api_type: form.text("api_type"),
            base_path: form.text("base_path"),
            targets: form.text("upstream_targets"),
            health_check_url: form.text("health_check_url"),
            types: &TYPES,
            errors: FieldErrors::default(),
        }
    }
}

/// The upstream targets of the form's text area: one URL a line.
fn targets(form: &Posted) -> Vec<String> {
    form.text("upstream_targets")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

async fn new_page(State(state): State<AppState>, user: ConsoleUser) -> ConsoleResult<Response> {
    account(&state, &user, Need::Manage).await?;
    Ok(render(&FormPage {
        l: Layout::new(&user, "Create an API", "apis"),
        id: None,
        heading: "Create an API".into(),
        name: String::new(),
        version: "v1".into(),
        api_type: "REST".into(),
        base_path: String::new(),
        targets: String::new(),
        health_check_url: String::new(),
        types: &TYPES,
        errors: FieldErrors::default(),
    }))
}

async fn create(State(state): State<AppState>, act: Act) -> ConsoleResult<Response> {
    let mut page = FormPage::from_form(
        Layout::new(&act.user, "Create an API", "apis"),
        None,
        "Create an API".into(),
        &act.form,
    );
    let Some(api_type) = parse_type(&page.api_type) else {
        page.errors
            .set("api_type", "Choose one of the four API types.");
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    };
    let health = Some(page.health_check_url.clone()).filter(|h| !h.is_empty());
    let created = rest::create_api(
        State(state.clone()),
        act.user.principal(),
        Json(CreateApi {
            name: page.name.clone(),
            version: page.version.clone(),
            api_type,
            base_path: page.base_path.clone(),
            upstream_targets: targets(&act.form),
            health_check_url: health,
        }),
    )
    .await;
    match created {
        Ok((_, api)) => {
            Ok(Redirect::to(&format!("/apis/{}?done=created", api.0.id)).into_response())
        }
        Err(e) => {
            page.errors = FieldErrors::from_refusal(e, &FIELDS)?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
    }
}

async fn edit_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
) -> ConsoleResult<Response> {
    let account = account(&state, &user, Need::Manage).await?;
    let a = api(&state, account, &raw).await?;
    Ok(render(&FormPage {
        l: Layout::new(&user, format!("Edit {}", a.name), "apis"),
        id: Some(a.id.to_string()),
        heading: format!("Edit {} {}", a.name, a.version),
        api_type: type_value(a.api_type).into(),
        base_path: a.base_path,
        targets: a
            .upstream_targets
            .iter()
            .map(|t| t.url.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        health_check_url: a.health_check_url.unwrap_or_default(),
        name: a.name,
        version: a.version,
        types: &TYPES,
        errors: FieldErrors::default(),
    }))
}

async fn save(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    act: Act,
) -> ConsoleResult<Response> {
    let mut page = FormPage::from_form(
        Layout::new(&act.user, "Edit API", "apis"),
        Some(raw.clone()),
        "Edit API".into(),
        &act.form,
    );
    let Some(api_type) = parse_type(&page.api_type) else {
        page.errors
            .set("api_type", "Choose one of the four API types.");
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    };
    let health = Some(page.health_check_url.clone()).filter(|h| !h.is_empty());
    let saved = rest::update_api(
        State(state.clone()),
        act.user.principal(),
        Path(raw.clone()),
        Json(UpdateApi {
            name: Some(page.name.clone()),
            version: Some(page.version.clone()),
            api_type: Some(api_type),
            base_path: Some(page.base_path.clone()),
            upstream_targets: Some(targets(&act.form)),
            health_check_url: Some(health),
        }),
    )
    .await;
    match saved {
        Ok(_) => Ok(Redirect::to(&format!("/apis/{raw}?done=saved")).into_response()),
        Err(e) => {
            page.errors = FieldErrors::from_refusal(e, &FIELDS)?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
    }
}

// ---- one API and its deployments -------------------------------------------------------------

struct DeploymentRow {
    id: String,
    environment_id: String,
    environment: String,
    status: (&'static str, &'static str, &'static str),
    custom_path: Option<String>,
    url: String,
}

#[derive(Template)]
#[template(path = "api.html")]
struct ApiPage {
    l: Layout,
    can_manage: bool,
    id: String,
    name: String,
    version: String,
    api_type: &'static str,
    base_path: String,
    targets: Vec<String>,
    health_check_url: Option<String>,
    created_at: String,
    deployments: Vec<DeploymentRow>,
    /// Environments it is not deployed to: (id, name).
    available: Vec<(String, String)>,
    environment: String,
    custom_path: String,
    errors: FieldErrors,
}

async fn api_view(
    state: &AppState,
    user: &ConsoleUser,
    raw: &str,
    notice: Option<&'static str>,
) -> ConsoleResult<ApiPage> {
    let account = account(state, user, Need::Member).await?;
    let a = api(state, account, raw).await?;
    let environments = state.store.environments(account).await?;
    let deployments = state.store.deployments_by_api(account, a.id).await?;
    let statuses = rest::api_deployment_statuses(state, account, &deployments).await?;
    let mut rows = Vec::with_capacity(deployments.len());
    for (d, status) in deployments.iter().zip(statuses) {
        let Some(env) = environments.iter().find(|e| e.id == d.environment_id) else {
            continue;
        };
        let gateway_url = match env.gateway_id {
            Some(g) => crate::routes::gateways::shown_gateway_url(state, account, g).await?,
            None => None,
        }
        .unwrap_or_else(|| "http://GATEWAY-URL".into());
        rows.push(DeploymentRow {
            id: d.id.to_string(),
            environment_id: env.id.to_string(),
            environment: env.name.clone(),
            status: status_label(status),
            url: example_url(
                &gateway_url,
                &route_prefix(
                    &env.paths,
                    a.api_type,
                    &a.base_path,
                    d.custom_path.as_deref(),
                ),
            ),
            custom_path: d.custom_path.clone(),
        });
    }
    let available = environments
        .iter()
        .filter(|e| !deployments.iter().any(|d| d.environment_id == e.id))
        .map(|e| (e.id.to_string(), e.name.clone()))
        .collect();
    Ok(ApiPage {
        l: Layout::new(user, format!("{} {}", a.name, a.version), "apis").with_notice(notice),
        can_manage: user.principal.user.role.can_manage(),
        id: a.id.to_string(),
        api_type: type_label(a.api_type),
        base_path: a.base_path,
        targets: a.upstream_targets.into_iter().map(|t| t.url).collect(),
        health_check_url: a.health_check_url,
        created_at: crate::dto::rfc3339(a.created_at),
        name: a.name,
        version: a.version,
        deployments: rows,
        available,
        environment: String::new(),
        custom_path: String::new(),
        errors: FieldErrors::default(),
    })
}

async fn api_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
    Query(query): Query<DoneQuery>,
) -> ConsoleResult<Response> {
    let notice = match query.done.as_deref() {
        Some("created") => Some("API created. Deploy it to an environment to serve it."),
        Some("saved") => Some("API saved."),
        Some("deployed") => Some("Deployed."),
        Some("undeployed") => Some("Undeployed: the gateway stops serving it there."),
        _ => None,
    };
    Ok(render(&api_view(&state, &user, &raw, notice).await?))
}

async fn deploy(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    act: Act,
) -> ConsoleResult<Response> {
    let environment = act.form.text("environment_id");
    let custom = act.form.text("custom_path");
    let mut errors = FieldErrors::default();
    match environment.parse::<uuid::Uuid>() {
        Err(_) => errors.set("environment_id", "Choose an environment."),
        Ok(environment_id) => {
            let created = rest::create_deployment(
                State(state.clone()),
                act.user.principal(),
                Path(raw.clone()),
                Json(CreateDeployment {
                    environment_id,
                    custom_path: Some(custom.clone()).filter(|c| !c.is_empty()),
                }),
            )
            .await;
            match created {
                Ok(_) => {
                    return Ok(Redirect::to(&format!("/apis/{raw}?done=deployed")).into_response());
                }
                Err(e) => {
                    errors = FieldErrors::from_refusal(e, &["environment_id", "custom_path"])?;
                }
            }
        }
    }
    let mut page = api_view(&state, &act.user, &raw, None).await?;
    page.environment = environment;
    page.custom_path = custom;
    page.errors = errors;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
}

async fn undeploy(
    State(state): State<AppState>,
    Path((raw, deployment)): Path<(String, String)>,
    act: Act,
) -> ConsoleResult<Response> {
    rest::delete_deployment(
        State(state),
        act.user.principal(),
        Path((raw.clone(), deployment)),
    )
    .await?;
    Ok(Redirect::to(&format!("/apis/{raw}?done=undeployed")).into_response())
}

// ---- delete ----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "api_delete.html")]
struct DeletePage {
    l: Layout,
    id: String,
    name: String,
    version: String,
    /// The environments it is deployed to, and how many of those deployments a gateway serves.
    environments: Vec<String>,
    served: usize,
}

async fn delete_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
) -> ConsoleResult<Response> {
    let account = account(&state, &user, Need::Manage).await?;
    let a = api(&state, account, &raw).await?;
    let deployments = state.store.deployments_by_api(account, a.id).await?;
    let statuses = rest::api_deployment_statuses(&state, account, &deployments).await?;
    let names = state.store.environments(account).await?;
    let environments = deployments
        .iter()
        .filter_map(|d| names.iter().find(|e| e.id == d.environment_id))
        .map(|e| e.name.clone())
        .collect();
    // Pending ones may already be served by some of the gateway's nodes.
    let served = statuses
        .iter()
        .filter(|s| **s != DeploymentStatus::RequiresConfiguration)
        .count();
    Ok(render(&DeletePage {
        l: Layout::new(&user, format!("Delete {}", a.name), "apis"),
        id: a.id.to_string(),
        name: a.name,
        version: a.version,
        environments,
        served,
    }))
}

async fn delete(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    act: Act,
) -> ConsoleResult<Response> {
    rest::delete_api(State(state), act.user.principal(), Path(raw)).await?;
    Ok(Redirect::to("/apis?done=deleted").into_response())
}
