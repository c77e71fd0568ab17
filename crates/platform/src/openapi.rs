//! The OpenAPI 3.1 document: generated from the handlers' annotations (routes/), plus the
//! bearer security scheme. Served at `/api/v1/openapi.json` and snapshot-tested.

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

/// Adds the bearer scheme, required by every operation, and its 429 answer.
pub fn finish(mut doc: Doc) -> Doc {
    add_throttled_answers(&mut doc);
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
    doc
}

/// Documents 429 on every operation that takes the bearer token: wrong tokens count against the
/// caller's source address (`throttle`), so any of them can answer it. Operations with their
/// own `security` (join, link, this document) document their own answers.
fn add_throttled_answers(doc: &mut Doc) {
    const THROTTLED: &str = "TooManyFailedAuthentications";
    use utoipa::openapi::schema::{Object, Ref, Type};
    use utoipa::openapi::{Content, RefOr, ResponseBuilder, header::Header};
    let throttled = ResponseBuilder::new()
        .description(
            "TOO_MANY_REQUESTS: too many wrong bearer tokens from this source; see `Retry-After`",
        )
        .header("Retry-After", {
            let mut header = Header::new(Object::with_type(Type::Integer));
            header.description = Some("seconds until the source may try again".into());
            header
        })
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorEnvelope"))),
        )
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .responses
        .insert(THROTTLED.into(), throttled.into());
    let reference = Ref::new(format!("#/components/responses/{THROTTLED}"));
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            if operation.security.is_none() {
                operation
                    .responses
                    .responses
                    .entry("429".into())
                    .or_insert_with(|| RefOr::Ref(reference.clone()));
            }
        }
    }
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
    axum::Json(DOC.get_or_init(|| serde_json::to_value(document()).unwrap_or_default()))
}
