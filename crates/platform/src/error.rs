//! The one REST error envelope, `{"error":{"code","message","details"}}`, and the mapping of
//! every failure (bad input, validation, store, auth) onto an HTTP status. Only this crate
//! maps errors to status codes (ARCHITECTURE.md invariant).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

/// The body of every non-2xx answer of the REST API.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// What went wrong: a stable machine-readable `code`, a sentence for people, and details
/// (for example `{"field": "name"}` or the conflicting APIs).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code, e.g. `INVALID_FIELD`, `ENVIRONMENT_PATH_LEADING_SLASH`, `NOT_FOUND`.
    pub code: String,
    pub message: String,
    /// Always an object; empty when there is nothing more to say.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// An error a handler returns; turned into the envelope with the right status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            details: json!({}),
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// 400 for a request field that could not be read; `details.field` names it.
    pub fn bad_field(code: &str, field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message).with_details(json!({ "field": field }))
    }

    /// 422 for a value that parsed but breaks a rule; `details.field` names it.
    pub fn validation(code: &str, field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            .with_details(json!({ "field": field }))
    }

    /// 404: also the answer for objects of another account, so their existence never leaks.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// 429 `TOO_MANY_REQUESTS`: too many failed authentications from the caller's source
    /// (`throttle`). `details.retry_after_secs` is also sent as `Retry-After`.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            format!(
                "too many failed authentications from this address; retry in {retry_after_secs} s"
            ),
        )
        .with_details(json!({ "retry_after_secs": retry_after_secs }))
    }

    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "DATABASE_UNAVAILABLE",
            "database unavailable, retry shortly",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error; it has been logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = (self.status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| self.details.get("retry_after_secs").and_then(Value::as_u64))
            .flatten();
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<store::StoreError> for ApiError {
    fn from(error: store::StoreError) -> Self {
        use store::{ConflictKind, StoreError};
        match error {
            StoreError::NotFound => ApiError::not_found("object"),
            StoreError::Conflict { what } => {
                let (code, field) = match &what {
                    ConflictKind::AccountName => ("ACCOUNT_NAME_TAKEN", Some("name")),
                    ConflictKind::UserEmail => ("USER_EMAIL_TAKEN", Some("email")),
                    ConflictKind::GatewayName => ("GATEWAY_NAME_TAKEN", Some("name")),
                    ConflictKind::EnvironmentName => ("ENVIRONMENT_NAME_TAKEN", Some("name")),
                    ConflictKind::ApiNameVersion => ("API_NAME_VERSION_TAKEN", Some("version")),
                    ConflictKind::AlreadyDeployed => ("ALREADY_DEPLOYED", Some("environment_id")),
                    ConflictKind::Reference => ("IN_USE", None),
                    ConflictKind::MigrationInProgress => ("MIGRATION_IN_PROGRESS", None),
                    ConflictKind::MigrationCompleted => ("MIGRATION_COMPLETED", None),
                    _ => ("CONFLICT", None),
                };
                let mut e = ApiError::conflict(code, what.to_string());
                if let Some(field) = field {
                    e.details = json!({ "field": field });
                }
                e
            }
            StoreError::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                ApiError::unavailable()
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::internal()
            }
        }
    }
}

impl From<model::validate::ValidationError> for ApiError {
    fn from(error: model::validate::ValidationError) -> Self {
        ApiError::validation(error.code(), error.field(), error.to_string())
    }
}

impl From<model::paths::EnvironmentPathErrors> for ApiError {
    fn from(errors: model::paths::EnvironmentPathErrors) -> Self {
        // The first error decides the code; all of them are listed so a form can mark every
        // offending field at once.
        let all: Vec<Value> = errors
            .0
            .iter()
            .map(|e| json!({ "code": e.code(), "field": e.field(), "message": e.to_string() }))
            .collect();
        let (code, field) = errors
            .0
            .first()
            .map(|e| (e.code(), e.field()))
            .unwrap_or(("ENVIRONMENT_PATH_INVALID", "paths"));
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, errors.to_string())
            .with_details(json!({ "field": field, "errors": all }))
    }
}

impl From<model::conflict::ApiPathConflictError> for ApiError {
    fn from(error: model::conflict::ApiPathConflictError) -> Self {
        let owner = |o: &model::conflict::RouteOwner| {
            json!({
                "api_id": o.api_id.to_string(),
                "api_name": o.api_name,
                "environment_id": o.environment_id.to_string(),
                "environment_name": o.environment_name,
            })
        };
        let conflicts: Vec<Value> = error
            .conflicts
            .iter()
            .map(|c| {
                json!({
                    "prefix": format!("/{}", c.prefix),
                    "field": c.field,
                    "proposed": owner(&c.proposed),
                    "existing": owner(&c.existing),
                })
            })
            .collect();
        let mut apis: Vec<&str> = error
            .conflicts
            .iter()
            .flat_map(|c| [c.proposed.api_name.as_str(), c.existing.api_name.as_str()])
            .collect();
        apis.sort_unstable();
        apis.dedup();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            error.code(),
            error.message(),
        )
        .with_details(json!({ "field": error.field(), "apis": apis, "conflicts": conflicts }))
    }
}

/// Turns a store NotFound into a 404 naming what was looked for.
pub trait OrNotFound<T> {
    fn or_404(self, what: &str) -> ApiResult<T>;
}

impl<T> OrNotFound<T> for Result<T, store::StoreError> {
    fn or_404(self, what: &str) -> ApiResult<T> {
        self.map_err(|e| match e {
            store::StoreError::NotFound => ApiError::not_found(what),
            other => ApiError::from(other),
        })
    }
}

/// The error of a checked store change: a refused rule or a store failure.
#[derive(Debug)]
pub struct Refused(pub ApiError);

impl<T> OrNotFound<T> for Result<T, store::Checked<Refused>> {
    fn or_404(self, what: &str) -> ApiResult<T> {
        self.map_err(|e| match e {
            store::Checked::Rejected(Refused(e)) => e,
            store::Checked::Store(store::StoreError::NotFound) => ApiError::not_found(what),
            store::Checked::Store(other) => ApiError::from(other),
        })
    }
}
