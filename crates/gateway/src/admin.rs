//! Health endpoints on the traffic port and the separate admin listener (Prometheus metrics).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::Shared;
use crate::body::RespBody;

fn json(status: StatusCode, value: serde_json::Value) -> Response<RespBody> {
    let mut response = Response::new(RespBody::full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The status document of `/_admin/status`.
pub fn status_json(shared: &Shared) -> serde_json::Value {
    let current = shared.current.load();
    let last_error = shared
        .last_error
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    serde_json::json!({
        "node": shared.node_name,
        "generation": current.as_ref().map(|rt| rt.generation),
        "content_hash": current.as_ref().map(|rt| rt.content_hash.as_str()),
        "api_count": current.as_ref().map_or(0, |rt| rt.apis.len()),
        "route_count": current.as_ref().map_or(0, |rt| rt.routes.len()),
        "uptime_seconds": shared.started.elapsed().as_secs(),
        "ready": shared.ready(),
        "draining": shared.draining.load(Ordering::Relaxed),
        "requests_in_flight": shared.metrics.requests_in_flight.get(),
        "last_reload_error": last_error.map(|e| serde_json::json!({
            "message": e.message,
            "generation": e.generation,
            "at_unix_ms": e.at_unix_ms,
        })),
    })
}

/// `/_admin/status`, `/_admin/readiness`, `/_admin/liveness`; `None` for other paths.
pub fn traffic_endpoint(shared: &Shared, path: &str) -> Option<Response<RespBody>> {
    match path {
        "/_admin/status" => Some(json(StatusCode::OK, status_json(shared))),
        "/_admin/readiness" => Some(if shared.ready() {
            json(StatusCode::OK, serde_json::json!({"ready": true}))
        } else {
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({
                    "ready": false,
                    "draining": shared.draining.load(Ordering::Relaxed),
                }),
            )
        }),
        "/_admin/liveness" => Some(json(StatusCode::OK, serde_json::json!({"alive": true}))),
        _ => None,
    }
}

/// The admin listener: `/metrics` plus the health endpoints.
pub async fn admin_service<B>(
    shared: Arc<Shared>,
    req: Request<B>,
) -> Result<Response<RespBody>, std::convert::Infallible> {
    let path = req.uri().path();
    if path == "/metrics" {
        let mut response = Response::new(RespBody::full(shared.metrics.encode()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        return Ok(response);
    }
    Ok(traffic_endpoint(&shared, path).unwrap_or_else(|| {
        json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": {"code": "NOT_FOUND", "message": "unknown admin path"}}),
        )
    }))
}
