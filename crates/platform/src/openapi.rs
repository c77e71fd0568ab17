//! The OpenAPI 3.1 document: generated from the handlers' annotations (routes/), plus the
//! bearer security scheme and the error answers every operation of a kind can give (see
//! [`add_common_errors`]). Served at `/api/v1/openapi.json` and snapshot-tested.

use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi as Doc, SecurityRequirement};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchyard REST API",
        description = "Manage accounts, gateways, environments, APIs and tokens. Errors use one \
                       envelope: {\"error\":{\"code\",\"message\",\"details\"}}.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "accounts", description = "Tenants (platform administrators only)"),
        (name = "users", description = "Users and roles of the caller's account"),
        (name = "tokens", description = "Personal API tokens"),
        (name = "gateways", description = "Gateways, their nodes and install tokens"),
        (name = "environments", description = "Environments and their URL paths"),
        (name = "migrations", description = "Environment migrations between gateways (SPEC §7)"),
        (name = "apis", description = "APIs and deployments"),
        (name = "audit", description = "Audit log"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// The document the router starts from; handlers add their paths and schemas.
pub fn base() -> Doc {
    ApiDoc::openapi()
}

/// Adds the bearer scheme, required by every operation, and the common error answers.
pub fn finish(mut doc: Doc) -> Doc {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    doc.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    add_common_errors(doc)
}

/// Paths whose operations act on the caller alone, so no role or account can refuse them.
const SELF_SERVICE: &[&str] = &["/api/v1/me", "/api/v1/tokens", "/api/v1/tokens/{id}"];
/// Public operations that still authenticate a secret (install token, node credential), so
/// the failed-authentication limit applies.
const SECRET_AUTHENTICATED: &[&str] = &["/api/v1/nodes/join", "/api/v1/link"];

/// Lists whose cursor is a position (newest first before it), valid whether or not its item
/// still exists; the other lists' cursors name an item.
const CURSOR_BY_POSITION: &[&str] = &["/api/v1/audit"];

/// Documents the error answers that come from the shared machinery rather than a handler's
/// own rules, on every operation that can give them (handlers' own descriptions win):
/// - bearer-authenticated: 401 `UNAUTHENTICATED`, 429 `TOO_MANY_REQUESTS` (failed
///   authentications from the caller's address; `Retry-After`), and 403 `FORBIDDEN` unless
///   the operation acts on the caller alone (a platform administrator belongs to no account,
///   and roles limit the rest);
/// - a path parameter: 404 `NOT_FOUND` (also for malformed ids and other accounts' objects);
///   a list's cursor: 404 `CURSOR_NOT_FOUND`;
/// - a request body: 400 (malformed JSON, unknown, missing or mistyped field) and 413;
/// - query parameters: 400 (unknown parameter, value out of its schema);
/// - anything that reads the database: 503 `DATABASE_UNAVAILABLE` with `Retry-After`.
fn add_common_errors(doc: Doc) -> Doc {
    let Ok(mut value) = serde_json::to_value(&doc) else {
        return doc;
    };
    let Some(paths) = value.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if !matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch") {
                continue;
            }
            add_operation_errors(path, operation);
        }
    }
    serde_json::from_value(value).unwrap_or(doc)
}

fn add_operation_errors(path: &str, operation: &mut serde_json::Value) {
    use serde_json::json;
    if path == "/api/v1/openapi.json" {
        return;
    }
    // Public operations carry `security: [{}]`; the others inherit the bearer requirement.
    let bearer = operation.get("security").is_none();
    let has_body = operation.get("requestBody").is_some();
    let has_query = operation["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    let paginated = operation["parameters"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| p["in"] == "query" && p["name"] == "cursor")
    });
    let mut add = |status: u16, description: &str, headers: Option<serde_json::Value>| {
        let responses = &mut operation["responses"];
        let key = status.to_string();
        if responses.get(&key).is_none() {
            let mut answer = json!({
                "description": description,
                "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/ErrorEnvelope" } } },
            });
            if let Some(headers) = headers {
                answer["headers"] = headers;
            }
            responses[key] = answer;
        }
    };
    let retry_after = || {
        Some(json!({ "Retry-After": {
            "description": "seconds to wait before retrying",
            "schema": { "type": "integer", "minimum": 0 } } }))
    };
    if has_body || has_query {
        add(
            400,
            "INVALID_JSON, UNKNOWN_FIELD, MISSING_FIELD, INVALID_FIELD, UNKNOWN_PARAMETER or \
             INVALID_PARAMETER: the request could not be read; `details.field` names the field",
            None,
        );
    }
    if bearer {
        add(
            401,
            "UNAUTHENTICATED: no bearer token, or an unknown, expired or revoked one",
            Some(json!({ "WWW-Authenticate": {
                "description": "`Bearer`", "schema": { "type": "string" } } })),
        );
        if !SELF_SERVICE.contains(&path) {
            add(
                403,
                "FORBIDDEN: the caller's role may not do this, or the caller is a platform \
                 administrator (who belongs to no account)",
                None,
            );
        }
    }
    if path.contains('{') {
        add(
            404,
            "NOT_FOUND: no such object in the caller's account (malformed ids included)",
            None,
        );
    }
    if paginated && !CURSOR_BY_POSITION.contains(&path) {
        add(
            404,
            "CURSOR_NOT_FOUND: the item the cursor points after no longer exists",
            None,
        );
    }
    if has_body {
        add(413, "PAYLOAD_TOO_LARGE: the body is over 1 MiB", None);
    }
    if bearer || SECRET_AUTHENTICATED.contains(&path) {
        add(
            429,
            "TOO_MANY_REQUESTS: too many failed authentications from the caller's address",
            retry_after(),
        );
    }
    add(
        503,
        "DATABASE_UNAVAILABLE: the database does not answer; retry shortly",
        retry_after(),
    );
}

/// The document as served, for tests and tools.
pub fn document() -> Doc {
    finish(crate::routes::router().split_for_parts().1)
}

/// The OpenAPI 3.1 document of this API (this document).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "the OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json() -> axum::Json<&'static serde_json::Value> {
    // Built once: the document never changes while the process runs.
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    axum::Json(
        DOC.get_or_init(|| {
            serde_json::to_value(document()).expect("the OpenAPI document serialises")
        }),
    )
}
