//! The Environments pages (list, create, rename, delete) and the Environment Configuration
//! page (SPEC §6: the four URL paths with each rule's message next to its field, and example
//! URLs of every deployed API in encoded form, previewed as the user types). Reads come from
//! the store; every change is the REST handler's, called with the session's principal.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use model::conflict::{example_url, route_prefix};
use model::paths::normalize_path;
use model::{AccountId, ApiType, Classification, Environment, EnvironmentId, EnvironmentPaths};

use super::form::{FieldErrors, PATH_LABELS, explain};
use super::{Act, ConsoleError, ConsoleResult, ConsoleUser, Layout, Posted, render};
use crate::auth::Need;
use crate::dto::{
    ClassificationDto, CreateEnvironment, EnvironmentConfiguration, UpdateEnvironment,
};
use crate::json::Json;
use crate::routes::environments as rest;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/environments", get(list_page).post(create))
        .route("/environments/{id}/edit", get(edit_page).post(rename))
        .route("/environments/{id}/delete", get(delete_page).post(delete))
        .route(
            "/environments/{id}/configuration",
            get(configuration_page).post(save_configuration),
        )
        .route(
            "/environments/{id}/configuration/examples",
            get(examples_fragment),
        )
}

async fn account(state: &AppState, user: &ConsoleUser, need: Need) -> ConsoleResult<AccountId> {
    Ok(user.principal.require(state, need, None).await?)
}

async fn environment(
    state: &AppState,
    account: AccountId,
    raw: &str,
) -> ConsoleResult<Environment> {
    let id: EnvironmentId = raw
        .parse()
        .map_err(|_| ConsoleError::not_found("environment"))?;
    state
        .store
        .environment(account, id)
        .await
        .map_err(|e| match e {
            store::StoreError::NotFound => ConsoleError::not_found("environment"),
            other => other.into(),
        })
}

fn classification_label(c: Classification) -> &'static str {
    match c {
        Classification::Production => "production",
        Classification::Test => "test",
    }
}

fn classification(raw: &str) -> Option<ClassificationDto> {
    match raw {
        "production" => Some(ClassificationDto::Production),
        "test" => Some(ClassificationDto::Test),
        _ => None,
    }
}

// ---- the list, create ------------------------------------------------------------------------

struct EnvRow {
    id: String,
    name: String,
    classification: &'static str,
    gateway: Option<(String, String)>,
    rest_path: String,
    deployments: usize,
}

#[derive(Template)]
#[template(path = "environments.html")]
struct ListPage {
    l: Layout,
    can_manage: bool,
    rows: Vec<EnvRow>,
    name: String,
    classification: String,
    errors: FieldErrors,
}

async fn list(
    state: &AppState,
    user: &ConsoleUser,
    notice: Option<&'static str>,
    name: String,
    classification: String,
    errors: FieldErrors,
) -> ConsoleResult<ListPage> {
    let account = account(state, user, Need::Member).await?;
    let envs = state.store.environments(account).await?;
    let gateways = state
        .store
        .gateways(account, store::GatewayView::Enabled)
        .await?;
    // Every deployment of the account in one read, counted per environment.
    let placed = state.store.account_deployments(account).await?;
    let mut rows = Vec::with_capacity(envs.len());
    for e in envs {
        let deployments = placed
            .iter()
            .filter(|p| p.deployment.environment_id == e.id)
            .count();
        rows.push(EnvRow {
            id: e.id.to_string(),
            classification: classification_label(e.classification),
            gateway: e.gateway_id.and_then(|g| {
                gateways
                    .iter()
                    .find(|x| x.id == g)
                    .map(|x| (x.id.to_string(), x.name.clone()))
            }),
            rest_path: e.paths.rest,
            name: e.name,
            deployments,
        });
    }
    Ok(ListPage {
        l: Layout::new(user, "Environments", "environments").with_notice(notice),
        can_manage: user.principal.user.role.can_manage(),
        rows,
        name,
        classification,
        errors,
    })
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
    let notice = match query.done.as_deref() {
        Some("created") => Some("Environment created. It is not attached to a gateway yet."),
        Some("renamed") => Some("Environment saved."),
        Some("deleted") => Some("Environment deleted, with its deployments."),
        _ => None,
    };
    let page = list(
        &state,
        &user,
        notice,
        String::new(),
        "test".into(),
        FieldErrors::default(),
    )
    .await?;
    Ok(render(&page))
}

async fn create(State(state): State<AppState>, act: Act) -> ConsoleResult<Response> {
    let name = act.form.text("name");
    let raw_class = act.form.text("classification");
    let mut errors = FieldErrors::default();
    match classification(&raw_class) {
        None => errors.set("classification", "Choose production or test."),
        Some(c) => {
            let created = rest::create_environment(
                State(state.clone()),
                act.user.principal(),
                Json(CreateEnvironment {
                    name: name.clone(),
                    classification: c,
                }),
            )
            .await;
            match created {
                Ok(_) => return Ok(Redirect::to("/environments?done=created").into_response()),
                Err(e) => errors = FieldErrors::from_refusal(e, &["name"])?,
            }
        }
    }
    let page = list(&state, &act.user, None, name, raw_class, errors).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
}

// ---- rename ----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "environment_edit.html")]
struct EditPage {
    l: Layout,
    id: String,
    current_name: String,
    name: String,
    classification: String,
    errors: FieldErrors,
}

async fn edit_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
) -> ConsoleResult<Response> {
    let account = account(&state, &user, Need::Manage).await?;
    let env = environment(&state, account, &raw).await?;
    Ok(render(&EditPage {
        l: Layout::new(&user, format!("Rename {}", env.name), "environments"),
        id: env.id.to_string(),
        current_name: env.name.clone(),
        name: env.name,
        classification: classification_label(env.classification).into(),
        errors: FieldErrors::default(),
    }))
}

async fn rename(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    act: Act,
) -> ConsoleResult<Response> {
    let name = act.form.text("name");
    let raw_class = act.form.text("classification");
    let mut errors = FieldErrors::default();
    let class = classification(&raw_class);
    if class.is_none() {
        errors.set("classification", "Choose production or test.");
    } else {
        let saved = rest::update_environment(
            State(state.clone()),
            act.user.principal(),
            Path(raw.clone()),
            Json(UpdateEnvironment {
                name: Some(name.clone()),
                classification: class,
            }),
        )
        .await;
        match saved {
            Ok(_) => return Ok(Redirect::to("/environments?done=renamed").into_response()),
            Err(e) => errors = FieldErrors::from_refusal(e, &["name"])?,
        }
    }
    let account = account(&state, &act.user, Need::Member).await?;
    let env = environment(&state, account, &raw).await?;
    let page = EditPage {
        l: Layout::new(&act.user, format!("Rename {}", env.name), "environments"),
        id: env.id.to_string(),
        current_name: env.name,
        name,
        classification: raw_class,
        errors,
    };
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
}

// ---- delete ----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "environment_delete.html")]
struct DeletePage {
    l: Layout,
    id: String,
    name: String,
    attached: bool,
    deployments: usize,
}

async fn delete_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
) -> ConsoleResult<Response> {
    let account = account(&state, &user, Need::Manage).await?;
    let env = environment(&state, account, &raw).await?;
    let deployments = state
        .store
        .deployments_by_environment(account, env.id)
        .await?
        .len();
    Ok(render(&DeletePage {
        l: Layout::new(&user, format!("Delete {}", env.name), "environments"),
        id: env.id.to_string(),
        attached: env.gateway_id.is_some(),
        name: env.name,
        deployments,
    }))
}

async fn delete(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    act: Act,
) -> ConsoleResult<Response> {
    rest::delete_environment(State(state), act.user.principal(), Path(raw)).await?;
    Ok(Redirect::to("/environments?done=deleted").into_response())
}

// ---- Environment Configuration -------------------------------------------------------------

/// One path field of the form: its value as typed (or stored) and the message of its rule.
struct PathField {
    name: &'static str,
    label: &'static str,
    api_type: &'static str,
    value: String,
    error: Option<String>,
}

/// One deployed API's example URL under the paths being edited.
struct Example {
    api_id: String,
    api: String,
    version: String,
    api_type: &'static str,
    /// The URL in encoded form, or why the path it needs is not valid.
    url: Result<String, String>,
    custom: bool,
}

#[derive(Template)]
#[template(path = "environment_examples.html")]
struct Examples {
    examples: Vec<Example>,
    gateway_url: Option<String>,
}

#[derive(Template)]
#[template(path = "environment_configuration.html")]
struct ConfigurationPage {
    l: Layout,
    id: String,
    name: String,
    can_manage: bool,
    gateway: Option<(String, String)>,
    fields: Vec<PathField>,
    form_error: Option<String>,
    examples: String,
}

fn api_type_label(t: ApiType) -> &'static str {
    match t {
        ApiType::Rest => "REST",
        ApiType::Soap => "SOAP",
        ApiType::Soap12 => "SOAP 1.2",
        ApiType::Odata => "OData",
    }
}

/// The four fields of a form (or query), in REST order; absent ones keep `current`.
fn posted_paths(form: &Posted, current: &EnvironmentPaths) -> EnvironmentPaths {
    let get = |name: &str, fallback: &str| {
        form.get(name)
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| fallback.to_string())
    };
    EnvironmentPaths {
        rest: get("rest_path", &current.rest),
        soap: get("soap_path", &current.soap),
        soap12: get("soap12_path", &current.soap12),
        odata: get("odata_path", &current.odata),
    }
}

fn path_value(paths: &EnvironmentPaths, field: &str) -> String {
    match field {
        "rest_path" => paths.rest.clone(),
        "soap_path" => paths.soap.clone(),
        "soap12_path" => paths.soap12.clone(),
        _ => paths.odata.clone(),
    }
}

/// The example URLs of every API deployed to `env`, under `paths` as typed: each path is
/// normalised as saving would (so the examples show the encoded form), an invalid one says why.
async fn examples(
    state: &AppState,
    account: AccountId,
    env: &Environment,
    paths: &EnvironmentPaths,
) -> ConsoleResult<Examples> {
    let gateway_url = match env.gateway_id {
        Some(g) => crate::routes::gateways::shown_gateway_url(state, account, g).await?,
        None => None,
    };
    // Each path in the form saving would store; a path that breaks a rule says which.
    let mut normal = paths.clone();
    let mut invalid: Vec<(ApiType, String)> = Vec::new();
    for t in ApiType::ALL {
        match normalize_path(paths.for_type(t)) {
            Ok(p) => match t {
                ApiType::Rest => normal.rest = p,
                ApiType::Soap => normal.soap = p,
                ApiType::Soap12 => normal.soap12 = p,
                ApiType::Odata => normal.odata = p,
            },
            Err(e) => invalid.push((t, explain(e.code(model::paths::PathKind::Environment), ""))),
        }
    }
    let apis = state.store.apis(account).await?;
    let deployments = state
        .store
        .deployments_by_environment(account, env.id)
        .await?;
    let mut out = Vec::new();
    for d in &deployments {
        let Some(api) = apis.iter().find(|a| a.id == d.api_id) else {
            continue;
        };
        let broken = invalid.iter().find(|(t, _)| *t == api.api_type);
        let url = match (broken, &d.custom_path) {
            (Some((_, why)), None) => Err(why.clone()),
            _ => Ok(example_url(
                gateway_url.as_deref().unwrap_or("http://GATEWAY-URL"),
                &route_prefix(
                    &normal,
                    api.api_type,
                    &api.base_path,
                    d.custom_path.as_deref(),
                ),
            )),
        };
        out.push(Example {
            api_id: api.id.to_string(),
            api: api.name.clone(),
            version: api.version.clone(),
            api_type: api_type_label(api.api_type),
            url,
            custom: d.custom_path.is_some(),
        });
    }
    out.sort_by_key(|a| a.api.to_lowercase());
    Ok(Examples {
        examples: out,
        gateway_url,
    })
}

fn render_fragment(t: &impl Template) -> ConsoleResult<String> {
    t.render().map_err(|error| {
        tracing::error!(%error, "console template failed");
        crate::error::ApiError::internal().into()
    })
}

async fn configuration(
    state: &AppState,
    user: &ConsoleUser,
    env: &Environment,
    account: AccountId,
    paths: &EnvironmentPaths,
    errors: FieldErrors,
) -> ConsoleResult<ConfigurationPage> {
    let gateway = match env.gateway_id {
        Some(g) => match state.store.gateway(account, g).await {
            Ok(g) => Some((g.id.to_string(), g.name)),
            Err(store::StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let examples = render_fragment(&examples(state, account, env, paths).await?)?;
    Ok(ConfigurationPage {
        l: Layout::new(
            user,
            format!("{} · Configuration", env.name),
            "environments",
        ),
        id: env.id.to_string(),
        name: env.name.clone(),
        can_manage: user.principal.user.role.can_manage(),
        gateway,
        fields: PATH_LABELS
            .iter()
            .zip(ApiType::ALL)
            .map(|((name, label), t)| PathField {
                name,
                label,
                api_type: api_type_label(t),
                value: path_value(paths, name),
                error: errors.get(name).map(str::to_string),
            })
            .collect(),
        form_error: errors.form,
        examples,
    })
}

async fn configuration_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
    Query(query): Query<DoneQuery>,
) -> ConsoleResult<Response> {
    let account = account(&state, &user, Need::Member).await?;
    let env = environment(&state, account, &raw).await?;
    let notice = match query.done.as_deref() {
        Some("saved") => Some("Paths saved; the gateway applies them within seconds."),
        _ => None,
    };
    let mut page = configuration(
        &state,
        &user,
        &env,
        account,
        &env.paths,
        FieldErrors::default(),
    )
    .await?;
    page.l = page.l.with_notice(notice);
    Ok(render(&page))
}

async fn save_configuration(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    act: Act,
) -> ConsoleResult<Response> {
    let account = account(&state, &act.user, Need::Member).await?;
    let env = environment(&state, account, &raw).await?;
    let paths = posted_paths(&act.form, &env.paths);
    let saved = rest::put_configuration(
        State(state.clone()),
        act.user.principal(),
        Path(raw.clone()),
        Json(EnvironmentConfiguration {
            rest_path: paths.rest.clone(),
            soap_path: paths.soap.clone(),
            soap12_path: paths.soap12.clone(),
            odata_path: paths.odata.clone(),
        }),
    )
    .await;
    let errors = match saved {
        Ok(_) => {
            return Ok(
                Redirect::to(&format!("/environments/{raw}/configuration?done=saved"))
                    .into_response(),
            );
        }
        Err(e) => FieldErrors::from_refusal(e, &PATH_LABELS.map(|(f, _)| f))?,
    };
    let page = configuration(&state, &act.user, &env, account, &paths, errors).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
}

/// The example URLs for the paths in the query, for the page's script while the user types.
async fn examples_fragment(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> ConsoleResult<Response> {
    let account = account(&state, &user, Need::Member).await?;
    let env = environment(&state, account, &raw).await?;
    let paths = posted_paths(&Posted(query), &env.paths);
    let html = render_fragment(&examples(&state, account, &env, &paths).await?)?;
    Ok(axum::response::Html(html).into_response())
}
