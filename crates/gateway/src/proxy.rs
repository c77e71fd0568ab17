//! The request handler: refusals from the framing guard, health endpoints, routing, limits,
//! header rewriting, the upstream call with retries and timeouts, and WebSocket pass-through.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use crate::Shared;
use crate::body::{BodyError, Claims, ClientBody, RespBody, UpBody, UpstreamBody};
use crate::client_body::{BodyTimeout, PacedBody};
use crate::config::{Route, Runtime};
use crate::h1guard::Reject;
use crate::headers::*;
use crate::io::{ConnShared, REJECT_MARKER_HEADER, reject_secret};
use crate::router::check_request_path;
use crate::upstream::{Target, UpstreamFailure, pick};

/// Idempotent request bodies up to this size are buffered so a retry can resend them; larger
/// ones are streamed and not retried.
const REPLAY_BUFFER_BYTES: u64 = 64 * 1024;

/// One client connection as the handler sees it.
pub struct ConnCtx {
    pub shared: Arc<Shared>,
    pub conn: Arc<ConnShared>,
    pub peer_ip: HeaderValue,
    /// The client's address, for the per-address cap on requests sending a body.
    pub peer: std::net::IpAddr,
    pub local_port: HeaderValue,
    pub https: bool,
}

struct Active<'a>(&'a ConnShared);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Release);
    }
}

/// The hyper service: never fails, and a panic answers 500 for this request only.
pub async fn serve(
    ctx: Arc<ConnCtx>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let request = req.map(ClientBody::Hyper);
    let mut response = match AssertUnwindSafe(respond(&ctx, request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => panicked(&ctx),
    };
    // hyper writes only the header map.
    if let Some(fields) = response.body_mut().take_fields() {
        fields.append_to(response.headers_mut());
    }
    Ok(response)
}

/// The answer to a request whose handler panicked.
pub fn panicked(ctx: &ConnCtx) -> Response<RespBody> {
    ctx.shared.metrics.panics.inc();
    ctx.shared.metrics.unrouted(500);
    tracing::error!("request handler panicked; answered 500");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        "the gateway failed while handling this request",
    )
}

/// A JSON error in the envelope `{"error":{"code","message"}}`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response<RespBody> {
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let mut response = Response::new(RespBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn close(mut response: Response<RespBody>) -> Response<RespBody> {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The answer to a message the framing guard refused, counted and logged.
pub fn refused(ctx: &ConnCtx, reject: Reject) -> Response<RespBody> {
    ctx.shared.metrics.unrouted(reject.status().as_u16());
    access_log_refusal(ctx, reject);
    refusal(reject)
}

fn refusal(reject: Reject) -> Response<RespBody> {
    let code = match reject {
        Reject::BadRequest(_) => "BAD_REQUEST",
        Reject::UriTooLong => "REQUEST_LINE_TOO_LONG",
        Reject::HeadersTooLarge(_) => "HEADERS_TOO_LARGE",
        Reject::Timeout => "REQUEST_TIMEOUT",
        Reject::MethodNotAllowed => "METHOD_NOT_ALLOWED",
    };
    close(error_response(reject.status(), code, reject.reason()))
}

/// The host a request is for: the URI authority (HTTP/2, absolute form) or the `Host` header,
/// without the port.
fn request_host<'a>(uri: &'a Uri, host_header: Option<&'a HeaderValue>) -> Option<&'a str> {
    let raw = match uri.authority() {
        Some(authority) => authority.as_str(),
        None => host_header?.to_str().ok()?,
    };
    let raw = match memchr::memrchr(b'@', raw.as_bytes()) {
        Some(at) => &raw[at + 1..],
        None => raw,
    };
    if raw.starts_with('[') {
        return memchr::memchr(b']', raw.as_bytes()).map(|end| &raw[..=end]);
    }
    Some(match memchr::memchr(b':', raw.as_bytes()) {
        Some(colon) => &raw[..colon],
        None => raw,
    })
}

/// Where a request goes: the configuration, the route's index and the length of the matched
/// prefix; or the answer when it goes nowhere (refusal, health endpoint, no configuration, bad
/// host or path, no route), boxed to keep the common result small.
type Routed = Result<(Arc<Runtime>, usize, usize), Box<Response<RespBody>>>;

fn route(
    ctx: &ConnCtx,
    req: &Request<ClientBody>,
    host_header: Option<&HeaderValue>,
    start: Instant,
) -> Routed {
    let shared = &ctx.shared;
    if let Some(reject) = ctx.conn.rejected() {
        let marked = req
            .headers()
            .get(REJECT_MARKER_HEADER)
            .is_some_and(|v| v.as_bytes() == reject_secret().as_bytes());
        if marked {
            return Err(Box::new(refused(ctx, reject)));
        }
    }
    let path = req.uri().path();
    if path.starts_with("/_admin/") {
        if let Some(response) = crate::admin::traffic_endpoint(shared, path) {
            return Err(Box::new(response));
        }
    }
    if shared.panic_path.as_deref() == Some(path) {
        panic!("panic requested by the test hook");
    }
    let Some(rt) = shared.current.load_full() else {
        shared.metrics.unrouted(503);
        return Err(Box::new(error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_READY",
            "the gateway has no configuration yet",
        )));
    };
    let Some(host) = request_host(req.uri(), host_header) else {
        shared.metrics.unrouted(400);
        return Err(Box::new(close(error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "missing host",
        ))));
    };
    if check_request_path(path).is_err() {
        shared.metrics.unrouted(400);
        return Err(Box::new(error_response(
            StatusCode::BAD_REQUEST,
            "BAD_PATH",
            "the path has a `.` or `..` segment or is not absolute",
        )));
    }
    let found = if rt.serves_host(host) {
        rt.router.lookup(path)
    } else {
        None
    };
    let Some(found) = found else {
        shared.metrics.unrouted(404);
        access_log(ctx, req, 404, None, None, start);
        return Err(Box::new(error_response(
            StatusCode::NOT_FOUND,
            "ROUTE_NOT_FOUND",
            "no API is deployed at this URL",
        )));
    };
    Ok((rt, found.route as usize, found.prefix_len))
}

/// The request headers the handler reads; the first value of each, like `HeaderMap::get`.
#[derive(Default)]
struct RequestHeaders<'a> {
    host: Option<&'a HeaderValue>,
    content_length: Option<&'a HeaderValue>,
    request_id: Option<&'a HeaderValue>,
    traceparent: Option<&'a HeaderValue>,
    upgrade: bool,
    connection: bool,
    forwarded_proto: bool,
}

impl<'a> RequestHeaders<'a> {
    fn scan(headers: &'a http::HeaderMap) -> RequestHeaders<'a> {
        let mut seen = RequestHeaders::default();
        for (name, value) in headers {
            match name.as_str() {
                "host" => {
                    seen.host.get_or_insert(value);
                }
                "content-length" => {
                    seen.content_length.get_or_insert(value);
                }
                "x-request-id" => {
                    seen.request_id.get_or_insert(value);
                }
                "traceparent" => {
                    seen.traceparent.get_or_insert(value);
                }
                "upgrade" => seen.upgrade = true,
                "connection" => seen.connection = true,
                "x-forwarded-proto" => seen.forwarded_proto = true,
                _ => {}
            }
        }
        seen
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

fn upstream_uri(target: &Target, rest: &str, query: Option<&str>) -> Option<Uri> {
    let mut path = String::with_capacity(
        target.base_path.len() + rest.len() + query.map_or(0, |q| q.len() + 1) + 1,
    );
    path.push_str(&target.base_path);
    path.push_str(rest);
    if path.is_empty() {
        path.push('/');
    }
    if let Some(query) = query {
        path.push('?');
        path.push_str(query);
    }
    Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(path)
        .build()
        .ok()
}

fn finish(route: &Route, status: StatusCode, start: Instant) {
    let metrics = &route.metrics;
    metrics.totals.count(status.as_u16());
    metrics.by_class[crate::metrics::status_class_index(status.as_u16())].inc();
    metrics.duration.observe(start.elapsed().as_secs_f64());
}

/// Answers one request: routing, limits, the upstream call with retries and timeouts. The
/// caller isolates panics: hyper's service above wraps the future, and the node's own server
/// catches a panic around each poll. Routing and proxying are one future on purpose: a future
/// awaited inside another is built and then moved into place, and this one is about 2 KB.
pub async fn respond(ctx: &ConnCtx, mut req: Request<ClientBody>) -> Response<RespBody> {
    ctx.conn.active.fetch_add(1, Ordering::Acquire);
    let _active = Active(&ctx.conn);
    let start = Instant::now();
    // The request headers routing and proxying look at, found in one pass over the map instead
    // of a hash lookup each.
    let mut seen = RequestHeaders::scan(req.headers());
    let (rt, route_index, prefix_len) = match route(ctx, &req, seen.host, start) {
        Ok(routed) => routed,
        Err(response) => return *response,
    };
    let rt = &rt;
    let shared = &ctx.shared;
    let route = &rt.routes[route_index];
    let api = &route.api;
    let exec = &api.execution;

    let declared_length = seen
        .content_length
        .and_then(|v| crate::h1guard::parse_content_length(v.as_bytes()));
    if declared_length.is_some_and(|n| n > api.max_body_bytes) {
        finish(route, StatusCode::PAYLOAD_TOO_LARGE, start);
        access_log(ctx, &req, 413, Some(route), None, start);
        // The body is not read, so the connection cannot be reused.
        return close(error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BODY_TOO_LARGE",
            "the request body is over this API's limit",
        ));
    }

    // A body still on its way (never one that arrived with its head) is held to the slow-body
    // limits, and waits for one of its address's slots, before it takes one of the API's.
    if matches!(req.body(), ClientBody::Hyper(_)) && !req.body().is_end_stream() {
        if let Err(response) = pace_body(ctx, &mut req, rt, route, declared_length, start).await {
            return *response;
        }
        // Pacing needed the request mutably; the slow path scans its headers again.
        seen = RequestHeaders::scan(req.headers());
    }

    let previous = api.state.in_flight.fetch_add(1, Ordering::AcqRel);
    if previous >= exec.max_concurrency {
        api.state.in_flight.fetch_sub(1, Ordering::AcqRel);
        route.metrics.concurrency_rejections.inc();
        finish(route, StatusCode::SERVICE_UNAVAILABLE, start);
        access_log(ctx, &req, 503, Some(route), None, start);
        let mut response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "CONCURRENCY_LIMIT",
            "too many concurrent requests for this API on this node",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    shared.metrics.requests_in_flight.inc();
    let mut claims = Claims {
        api: Some(api.state.clone()),
        target: None,
        node_in_flight: shared.metrics.requests_in_flight.clone(),
    };

    let client_version = req.version();
    let websocket =
        client_version == Version::HTTP_11 && seen.upgrade && is_websocket_upgrade(req.headers());
    let h1_upgrade_request = client_version <= Version::HTTP_11 && seen.upgrade;
    let original_host = match req.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => seen.host.cloned(),
    };
    let request_id = match seen.request_id {
        Some(v) if acceptable_request_id(v) => v.clone(),
        _ => new_request_id(),
    };
    let forwarded_proto = seen.forwarded_proto;
    let client_connection = seen.connection;
    let traceparent = next_traceparent(seen.traceparent);
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    // A body streamed at the client's pace: whether it had all arrived when the upstream
    // timed out decides who is to blame.
    let body_arrived = match req.body() {
        ClientBody::Paced(paced) => Some(paced.arrived()),
        _ => None,
    };

    let (mut parts, body) = req.into_parts();
    let method = parts.method.clone();
    let forwarding = Forwarding {
        host: original_host,
        peer_ip: &ctx.peer_ip,
        port: &ctx.local_port,
        client_connection,
        proto: (!forwarded_proto).then_some(if ctx.https { "https" } else { "http" }),
        request_id: &request_id,
        traceparent,
    };
    // The node's own client writes the forwarding into the request head; the map is rewritten
    // only when hyper's client sends it (once, whatever the number of attempts).
    let mut map_forwarded = false;

    // Small bodies of known length are read whole before the upstream is called (as nginx
    // buffers request bodies): a retry can send them again, and the node's own HTTP/1.1 client
    // sends them with the head. Others are streamed through and never retried.
    let mut retries_allowed = if is_idempotent(&method) {
        exec.retry_attempts
    } else {
        0
    };
    let mut body = if body.is_end_stream() {
        Some(UpBody::Empty)
    } else if let ClientBody::Buffered(data) = body {
        // The node's own server read it with the head.
        Some(UpBody::Full(data))
    } else {
        retries_allowed = 0;
        Some(UpBody::Stream {
            inner: body,
            limit: api.max_body_bytes,
            seen: 0,
        })
    };
    // Upgrades and streamed bodies go through hyper's client.
    let own_client_fits =
        !websocket && !h1_upgrade_request && matches!(body, Some(UpBody::Empty | UpBody::Full(_)));

    let path = parts.uri.path();
    let rest = &path[prefix_len..];
    let query = parts.uri.query();
    let settings = &rt.settings;
    let mut tried: u64 = 0;
    let mut attempt = 0;
    let failure = loop {
        let now_ms = shared.now_ms();
        let index = pick(&api.targets, api.load_balancing, &api.state, tried, now_ms);
        tried |= 1u64 << index.min(63);
        let target = &api.targets[index];
        let last = attempt >= retries_allowed;
        target.outstanding.fetch_add(1, Ordering::Relaxed);
        let outcome = if own_client_fits && target.plain_http() {
            let bytes = match &body {
                Some(UpBody::Full(Some(bytes))) => Some(bytes),
                _ => None,
            };
            let exchange = crate::h1client::Exchange {
                method: &method,
                rest,
                query,
                headers: &parts.headers,
                forwarding: (!map_forwarded).then_some(&forwarding),
                body: bytes,
                replayable: is_idempotent(&method),
                connect_timeout: exec.connect_timeout,
                now_ms,
            };
            match tokio::time::timeout(
                exec.execution_timeout,
                crate::h1client::send(target, exchange),
            )
            .await
            {
                Ok(Ok(response)) => {
                    let (head, body) = response.into_parts();
                    Ok((head, UpstreamBody::H1(body), None))
                }
                Ok(Err(failure)) => Err(failure),
                Err(_elapsed) => Err(UpstreamFailure::ExecutionTimeout),
            }
        } else {
            if !map_forwarded {
                forwarding.apply(&mut parts.headers, websocket);
                map_forwarded = true;
            }
            match upstream_uri(target, rest, query) {
                None => Err(UpstreamFailure::Other),
                Some(uri) => {
                    let this_body = match &body {
                        Some(UpBody::Full(Some(bytes))) if !last => {
                            UpBody::Full(Some(Bytes::clone(bytes)))
                        }
                        Some(UpBody::Empty) => UpBody::Empty,
                        _ => body.take().unwrap_or(UpBody::Empty),
                    };
                    let mut up = Request::new(this_body);
                    *up.method_mut() = method.clone();
                    *up.uri_mut() = uri;
                    *up.version_mut() = Version::HTTP_11;
                    *up.headers_mut() = if last {
                        std::mem::take(&mut parts.headers)
                    } else {
                        parts.headers.clone()
                    };
                    let client = if target.h2c {
                        &api.h2c_client
                    } else {
                        &api.client
                    };
                    match tokio::time::timeout(exec.execution_timeout, client.request(up)).await {
                        Ok(Ok(mut response)) => {
                            let upstream_upgrade = (websocket
                                && response.status() == StatusCode::SWITCHING_PROTOCOLS)
                                .then(|| hyper::upgrade::on(&mut response));
                            let (head, body) = response.into_parts();
                            Ok((head, UpstreamBody::Hyper(body), upstream_upgrade))
                        }
                        Ok(Err(error)) => {
                            let failure = UpstreamFailure::classify(&error);
                            tracing::debug!(target = %target.url, %error, kind = failure.as_str(), "upstream request failed");
                            Err(failure)
                        }
                        Err(_elapsed) => Err(UpstreamFailure::ExecutionTimeout),
                    }
                }
            }
        };
        let failure = match outcome {
            Ok((mut head, mut up_body, upstream_upgrade)) => {
                target.record_success();
                claims.target = Some(target.clone());
                let status = head.status;
                finish(route, status, start);
                access_log_parts(
                    ctx,
                    &method,
                    path,
                    status.as_u16(),
                    Some(route),
                    Some(target),
                    &request_id,
                    start,
                );
                if let (Some(client_side), Some(upstream_side)) = (client_upgrade, upstream_upgrade)
                {
                    strip_hop_by_hop(&mut head.headers, true);
                    tokio::spawn(tunnel(client_side, upstream_side, claims));
                    return Response::from_parts(head, RespBody::empty());
                }
                match &mut up_body {
                    // The node's own client leaves hop-by-hop headers out as it parses, and
                    // keeps the fields for the writer instead of in the map.
                    UpstreamBody::H1(body) => {
                        if let Some(fields) = body.fields_mut() {
                            fields.set_request_id(request_id);
                        }
                    }
                    UpstreamBody::Hyper(_) => {
                        strip_hop_by_hop(&mut head.headers, false);
                        if !head.headers.contains_key(&X_REQUEST_ID) {
                            head.headers.insert(X_REQUEST_ID.clone(), request_id);
                        }
                    }
                }
                if h1_upgrade_request {
                    // The guard stopped reading this connection as HTTP/1 after the upgrade
                    // request; since no upgrade happened, the connection ends here.
                    head.headers
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                head.version = client_version;
                return Response::from_parts(head, RespBody::upstream(up_body, claims));
            }
            Err(failure) => {
                target.outstanding.fetch_sub(1, Ordering::Relaxed);
                failure
            }
        };
        // The execution timeout passed while the client was still sending its body (slowly,
        // but above the minimum rate): the client's slowness, not the target's.
        let failure = match failure {
            UpstreamFailure::ExecutionTimeout
                if body_arrived
                    .as_ref()
                    .is_some_and(|arrived| !arrived.load(Ordering::Acquire)) =>
            {
                UpstreamFailure::RequestBodyTimeout(BodyTimeout::TooSlow)
            }
            failure => failure,
        };
        if failure.blames_target() {
            target.record_failure(
                now_ms,
                settings.eject_after_failures,
                settings.ejection.as_millis() as u64,
            );
            shared
                .metrics
                .upstream_error(&route.metrics, failure.as_str());
        }
        let retry = attempt < retries_allowed
            && body.is_some()
            && failure
                .retry_case()
                .is_some_and(|case| exec.retries_on(case));
        if !retry {
            break failure;
        }
        attempt += 1;
    };
    drop(claims);
    if let UpstreamFailure::RequestBodyTimeout(reason) = failure {
        return body_timed_out(ctx, &method, path, route, Some(&request_id), reason, start);
    }

    let response = match failure {
        UpstreamFailure::ConnectTimeout => error_response(
            StatusCode::GATEWAY_TIMEOUT,
            "UPSTREAM_CONNECT_TIMEOUT",
            "connecting to the upstream timed out",
        ),
        UpstreamFailure::ExecutionTimeout => error_response(
            StatusCode::GATEWAY_TIMEOUT,
            "UPSTREAM_TIMEOUT",
            "the upstream did not answer within the execution timeout",
        ),
        UpstreamFailure::HostNotFound => error_response(
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_HOST_NOT_FOUND",
            "the upstream host name does not resolve",
        ),
        UpstreamFailure::HostRouting => error_response(
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_UNREACHABLE",
            "the upstream refused or could not be reached",
        ),
        UpstreamFailure::BadResponse => error_response(
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_BAD_RESPONSE",
            "the upstream answered with a response that is not valid HTTP/1.1",
        ),
        UpstreamFailure::ConnectionDropped | UpstreamFailure::Other => error_response(
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_CONNECTION_DROPPED",
            "the upstream closed the connection without a complete response",
        ),
        UpstreamFailure::RequestBodyTooLarge => close(error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BODY_TOO_LARGE",
            "the request body is over this API's limit",
        )),
        UpstreamFailure::RequestBodyTimeout(_) => body_timeout_response(),
        UpstreamFailure::RequestBodyBroken => match ctx.conn.rejected() {
            Some(reject) => refusal(reject),
            None => close(error_response(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "the request body could not be read",
            )),
        },
    };
    finish(route, response.status(), start);
    access_log_parts(
        ctx,
        &method,
        path,
        response.status().as_u16(),
        Some(route),
        None,
        &request_id,
        start,
    );
    response
}

/// Puts a request body that is still on its way under the slow-body limits: it first takes one
/// of its client address's slots (waiting up to the body timeout, which counts toward its
/// first window, so every slow client is answered about one timeout after its head), then a small body of known
/// length is read whole here, before the request takes an API slot, so a slow client holds
/// none while it sends; a larger one is streamed to the upstream at the client's pace. The
/// answer instead when the body cannot be had: 408 for a slow client, else the refusal.
async fn pace_body(
    ctx: &ConnCtx,
    req: &mut Request<ClientBody>,
    rt: &Runtime,
    route: &Route,
    declared_length: Option<u64>,
    start: Instant,
) -> Result<(), Box<Response<RespBody>>> {
    let settings = &rt.settings;
    let pace = settings.body_pace;
    let timed_out = |req: &Request<ClientBody>, reason| {
        let id = req.headers().get(&X_REQUEST_ID);
        Box::new(body_timed_out(
            ctx,
            req.method(),
            req.uri().path(),
            route,
            id,
            reason,
            start,
        ))
    };
    let asked = tokio::time::Instant::now();
    let slot = ctx
        .shared
        .body_senders
        .acquire(ctx.peer, settings.max_body_connections_per_ip, pace.timeout)
        .await;
    let Some(slot) = slot else {
        return Err(timed_out(req, BodyTimeout::AddressBusy));
    };
    let ClientBody::Hyper(incoming) = std::mem::replace(req.body_mut(), ClientBody::Buffered(None))
    else {
        return Ok(());
    };
    let paced = ClientBody::Paced(Box::new(PacedBody::new(
        incoming,
        pace,
        slot,
        asked.elapsed(),
    )));
    if declared_length.is_none_or(|n| n > REPLAY_BUFFER_BYTES) {
        *req.body_mut() = paced;
        return Ok(());
    }
    let execution_timeout = route.api.execution.execution_timeout;
    match tokio::time::timeout(execution_timeout, paced.collect()).await {
        Ok(Ok(collected)) => {
            let bytes = collected.to_bytes();
            *req.body_mut() = ClientBody::Buffered((!bytes.is_empty()).then_some(bytes));
            Ok(())
        }
        Ok(Err(BodyError::TimedOut(reason))) => Err(timed_out(req, reason)),
        // At the pace kept, the body would take longer than the request may.
        Err(_elapsed) => Err(timed_out(req, BodyTimeout::TooSlow)),
        Ok(Err(_)) => {
            finish(route, StatusCode::BAD_REQUEST, start);
            Err(Box::new(match ctx.conn.rejected() {
                Some(reject) => refusal(reject),
                None => close(error_response(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    "the request body could not be read",
                )),
            }))
        }
    }
}

fn body_timeout_response() -> Response<RespBody> {
    close(error_response(
        StatusCode::REQUEST_TIMEOUT,
        "REQUEST_TIMEOUT",
        "the request body did not arrive in time",
    ))
}

/// The answer to a client too slow with its body: 408 and the connection closed, counted,
/// and logged as `client_body_timeout` (the upstream is not blamed).
fn body_timed_out(
    ctx: &ConnCtx,
    method: &Method,
    path: &str,
    route: &Route,
    request_id: Option<&HeaderValue>,
    reason: BodyTimeout,
    start: Instant,
) -> Response<RespBody> {
    ctx.shared
        .metrics
        .client_body_timeouts
        .get_or_create(&crate::metrics::ReasonLabels {
            reason: reason.as_str(),
        })
        .inc();
    finish(route, StatusCode::REQUEST_TIMEOUT, start);
    tracing::info!(
        target: "switchyard::access",
        method = method.as_str(),
        path,
        status = 408,
        api = route.api.name.as_str(),
        environment = route.environment.as_str(),
        client = ctx.peer_ip.to_str().unwrap_or(""),
        request_id = request_id.and_then(|id| id.to_str().ok()).unwrap_or(""),
        reason = "client_body_timeout",
        cause = reason.as_str(),
        duration_us = start.elapsed().as_micros() as u64,
        "request"
    );
    body_timeout_response()
}

async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    claims: Claims,
) {
    let _claims = claims;
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "websocket upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(%error, "websocket tunnel ended with an error");
    }
}

fn access_log(
    ctx: &ConnCtx,
    req: &Request<ClientBody>,
    status: u16,
    route: Option<&Route>,
    target: Option<&Target>,
    start: Instant,
) {
    if tracing::enabled!(target: "switchyard::access", tracing::Level::INFO) {
        let id = req
            .headers()
            .get(&X_REQUEST_ID)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static(""));
        access_log_parts(
            ctx,
            req.method(),
            req.uri().path(),
            status,
            route,
            target,
            &id,
            start,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn access_log_parts(
    ctx: &ConnCtx,
    method: &Method,
    path: &str,
    status: u16,
    route: Option<&Route>,
    target: Option<&Target>,
    request_id: &HeaderValue,
    start: Instant,
) {
    tracing::info!(
        target: "switchyard::access",
        method = method.as_str(),
        path,
        status,
        api = route.map_or("", |r| r.api.name.as_str()),
        environment = route.map_or("", |r| r.environment.as_str()),
        upstream = target.map_or("", |t| t.url.as_str()),
        client = ctx.peer_ip.to_str().unwrap_or(""),
        request_id = request_id.to_str().unwrap_or(""),
        duration_us = start.elapsed().as_micros() as u64,
        "request"
    );
}

fn access_log_refusal(ctx: &ConnCtx, reject: Reject) {
    tracing::info!(
        target: "switchyard::access",
        status = reject.status().as_u16(),
        reason = reject.reason(),
        client = ctx.peer_ip.to_str().unwrap_or(""),
        "request refused"
    );
}
