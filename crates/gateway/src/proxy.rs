//! The request handler: refusals from the framing guard, health endpoints, routing, limits,
//! header rewriting, the upstream call with retries and timeouts, and WebSocket pass-through.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use crate::Shared;
use crate::body::{
    Claims, ClientBody, MAX_BUFFERED_BODY_BYTES, RespBody, UpstreamRequestBody,
    UpstreamResponseBody,
};
use crate::client_body::{BodyError, BodyTimeout, PacedBody};
use crate::config::{Execution, Route, Runtime};
use crate::h1guard::Reject;
use crate::headers::*;
use crate::io::{ClientConnState, REJECT_MARKER_HEADER, reject_secret};
use crate::router::check_request_path;
use crate::upstream::{Target, UpstreamFailure, pick};

/// One client connection as the handler sees it.
pub struct ClientConn {
    pub shared: Arc<Shared>,
    pub conn: Arc<ClientConnState>,
    pub peer_ip: HeaderValue,
    /// The client's address, for the per-address cap on requests sending a body.
    pub peer: std::net::IpAddr,
    pub local_port: HeaderValue,
    pub https: bool,
}

struct Active<'a>(&'a ClientConnState);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Release);
    }
}

/// The hyper service: never fails, and a panic answers 500 for this request only.
pub async fn serve(
    ctx: Arc<ClientConn>,
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
pub fn panicked(ctx: &ClientConn) -> Response<RespBody> {
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
pub fn refused(ctx: &ClientConn, reject: Reject) -> Response<RespBody> {
    ctx.shared.metrics.unrouted(reject.status().as_u16());
    access_log_refusal(ctx, reject);
    Answer::refusal(reject).response()
}

/// An error answer of the handler, as data: what [`Answer::response`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
    /// The connection closes after it (the request's body was not read to its end).
    close: bool,
    retry_after: bool,
}

impl Answer {
    const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Answer {
        Answer {
            status,
            code,
            message,
            close: false,
            retry_after: false,
        }
    }

    const fn closing(self) -> Answer {
        Answer {
            close: true,
            ..self
        }
    }

    /// A message the framing guard refused.
    fn refusal(reject: Reject) -> Answer {
        let code = match reject {
            Reject::BadRequest(_) => "BAD_REQUEST",
            Reject::UriTooLong => "REQUEST_LINE_TOO_LONG",
            Reject::HeadersTooLarge(_) => "HEADERS_TOO_LARGE",
            Reject::Timeout => "REQUEST_TIMEOUT",
            Reject::MethodNotAllowed => "METHOD_NOT_ALLOWED",
        };
        Answer::new(reject.status(), code, reject.reason()).closing()
    }

    /// A request body that could not be read: the guard's refusal when it refused it.
    fn unreadable_body(rejected: Option<Reject>) -> Answer {
        match rejected {
            Some(reject) => Answer::refusal(reject),
            None => Answer::new(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "the request body could not be read",
            )
            .closing(),
        }
    }

    const BODY_TIMEOUT: Answer = Answer::new(
        StatusCode::REQUEST_TIMEOUT,
        "REQUEST_TIMEOUT",
        "the request body did not arrive in time",
    )
    .closing();

    const BODY_TOO_LARGE: Answer = Answer::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "BODY_TOO_LARGE",
        "the request body is over this API's limit",
    )
    .closing();

    /// The failure→response table of SPEC §5: how the last failed attempt is answered.
    fn of_failure(failure: UpstreamFailure, rejected: Option<Reject>) -> Answer {
        match failure {
            UpstreamFailure::ConnectTimeout => Answer::new(
                StatusCode::GATEWAY_TIMEOUT,
                "UPSTREAM_CONNECT_TIMEOUT",
                "connecting to the upstream timed out",
            ),
            UpstreamFailure::ExecutionTimeout => Answer::new(
                StatusCode::GATEWAY_TIMEOUT,
                "UPSTREAM_TIMEOUT",
                "the upstream did not answer within the execution timeout",
            ),
            UpstreamFailure::HostNotFound => Answer::new(
                StatusCode::BAD_GATEWAY,
                "UPSTREAM_HOST_NOT_FOUND",
                "the upstream host name does not resolve",
            ),
            UpstreamFailure::HostRouting => Answer::new(
                StatusCode::BAD_GATEWAY,
                "UPSTREAM_UNREACHABLE",
                "the upstream refused or could not be reached",
            ),
            UpstreamFailure::BadResponse => Answer::new(
                StatusCode::BAD_GATEWAY,
                "UPSTREAM_BAD_RESPONSE",
                "the upstream answered with a response that is not valid HTTP/1.1",
            ),
            UpstreamFailure::ConnectionDropped | UpstreamFailure::Other => Answer::new(
                StatusCode::BAD_GATEWAY,
                "UPSTREAM_CONNECTION_DROPPED",
                "the upstream closed the connection without a complete response",
            ),
            UpstreamFailure::RequestBodyTooLarge => Answer::BODY_TOO_LARGE,
            UpstreamFailure::RequestBodyTimeout(_) => Answer::BODY_TIMEOUT,
            UpstreamFailure::RequestBodyBroken => Answer::unreadable_body(rejected),
        }
    }

    fn response(self) -> Response<RespBody> {
        let mut response = error_response(self.status, self.code, self.message);
        if self.close {
            response = close(response);
        }
        if self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Why a routed request is refused before its upstream is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The declared body is over the API's limit (413; the body is not read).
    BodyTooLarge,
    /// The API's per-node concurrency limit is reached (503 with `Retry-After`).
    ConcurrencyLimit,
}

impl Refusal {
    fn answer(self) -> Answer {
        match self {
            Refusal::BodyTooLarge => Answer::BODY_TOO_LARGE,
            Refusal::ConcurrencyLimit => Answer {
                retry_after: true,
                ..Answer::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "CONCURRENCY_LIMIT",
                    "too many concurrent requests for this API on this node",
                )
            },
        }
    }
}

/// Admission by the declared body length: over the API's limit is refused before reading.
fn admit_length(declared_length: Option<u64>, max_body_bytes: u64) -> Result<(), Refusal> {
    match declared_length {
        Some(n) if n > max_body_bytes => Err(Refusal::BodyTooLarge),
        _ => Ok(()),
    }
}

/// Admission by the API's concurrency limit: takes one of its slots (released by `Claims`), or
/// refuses when all `max_concurrency` are taken.
fn take_api_slot(in_flight: &AtomicU32, max_concurrency: u32) -> Result<(), Refusal> {
    let previous = in_flight.fetch_add(1, Ordering::AcqRel);
    if previous >= max_concurrency {
        in_flight.fetch_sub(1, Ordering::AcqRel);
        return Err(Refusal::ConcurrencyLimit);
    }
    Ok(())
}

/// Answers a refused request: counted, logged, and the refusal's answer.
fn refuse(
    ctx: &ClientConn,
    req: &Request<ClientBody>,
    route: &Route,
    refusal: Refusal,
    start: Instant,
) -> Response<RespBody> {
    let answer = refusal.answer();
    finish(route, answer.status, start);
    access_log(ctx, req, answer.status.as_u16(), Some(route), None, start);
    answer.response()
}

/// How a request's body goes upstream, and what that allows.
#[derive(Debug)]
struct BodyPlan {
    body: UpstreamRequestBody,
    /// Attempts after the first: only idempotent requests with a body that can be sent again.
    retries_allowed: u32,
    /// The node's own HTTP/1.1 client can send it (no upgrade, the body in hand); upgrades and
    /// streamed bodies go through hyper's client.
    own_client: bool,
}

/// Small bodies of known length were read whole before the upstream is called (as nginx
/// buffers request bodies; by the node's own server with the head, or by `pace_body`): a
/// retry can send them again, and the node's own client sends them with the head. Others are
/// streamed through with the API's byte limit and never retried.
#[inline]
fn plan_body(
    method: &Method,
    body: ClientBody,
    retry_attempts: u32,
    max_body_bytes: u64,
    upgrade: bool,
) -> BodyPlan {
    let retries = if is_idempotent(method) {
        retry_attempts
    } else {
        0
    };
    let (body, retries_allowed) = if body.is_end_stream() {
        (UpstreamRequestBody::Empty, retries)
    } else if let ClientBody::Buffered(data) = body {
        (UpstreamRequestBody::Full(data), retries)
    } else {
        let stream = UpstreamRequestBody::Stream {
            inner: body,
            limit: max_body_bytes,
            seen: 0,
        };
        (stream, 0)
    };
    let own_client = !upgrade
        && matches!(
            body,
            UpstreamRequestBody::Empty | UpstreamRequestBody::Full(_)
        );
    BodyPlan {
        body,
        retries_allowed,
        own_client,
    }
}

/// Who a failure is blamed on: an execution timeout while the client was still sending its
/// body (slowly, but above the minimum rate) is the client's slowness, not the target's.
fn blame(failure: UpstreamFailure, body_still_arriving: bool) -> UpstreamFailure {
    match failure {
        UpstreamFailure::ExecutionTimeout if body_still_arriving => {
            UpstreamFailure::RequestBodyTimeout(BodyTimeout::TooSlow)
        }
        failure => failure,
    }
}

/// Whether a failed attempt is tried again: attempts left, the body can be sent again, and
/// the API retries this case.
fn should_retry(
    attempt: u32,
    retries_allowed: u32,
    body_left: bool,
    failure: UpstreamFailure,
    exec: &Execution,
) -> bool {
    attempt < retries_allowed
        && body_left
        && failure
            .retry_case()
            .is_some_and(|case| exec.retries_on(case))
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
    ctx: &ClientConn,
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
    #[cfg(feature = "test-hooks")]
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
        if let Some(response) = redirect(&rt, host, req.uri()) {
            shared.metrics.unrouted(308);
            access_log(ctx, req, 308, None, None, start);
            return Err(Box::new(response));
        }
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

/// The `308 Permanent Redirect` of a request under an environment that moved to another
/// gateway and is still in its grace period (SPEC §7); `None` for the normal 404. Reached only
/// when no route matched, so proxied requests never pay for it.
fn redirect(rt: &Runtime, host: &str, uri: &Uri) -> Option<Response<RespBody>> {
    if !rt.serves_host(host) {
        return None;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = rt.redirects.location(uri.path(), path_and_query, now_ms)?;
    // The location was checked as a header value when the snapshot was applied and the path
    // and query came from a parsed URI, so this only fails on a bug; answer 404 then.
    let value = HeaderValue::from_str(&location).ok()?;
    let mut response = error_response(
        StatusCode::PERMANENT_REDIRECT,
        "ENVIRONMENT_MOVED",
        "this environment moved to another gateway",
    );
    response.headers_mut().insert(header::LOCATION, value);
    Some(response)
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
pub async fn respond(ctx: &ClientConn, mut req: Request<ClientBody>) -> Response<RespBody> {
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
        .and_then(|v| crate::h1::parse_content_length(v.as_bytes()));
    if let Err(refusal) = admit_length(declared_length, api.max_body_bytes) {
        return refuse(ctx, &req, route, refusal, start);
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

    if let Err(refusal) = take_api_slot(&api.state.in_flight, exec.max_concurrency) {
        route.metrics.concurrency_rejections.inc();
        return refuse(ctx, &req, route, refusal, start);
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

    let plan = plan_body(
        &method,
        body,
        exec.retry_attempts,
        api.max_body_bytes,
        h1_upgrade_request,
    );
    let retries_allowed = plan.retries_allowed;
    let own_client_fits = plan.own_client;
    // `None` once a streamed body was sent: it cannot be sent again.
    let mut body = Some(plan.body);

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
                Some(UpstreamRequestBody::Full(Some(bytes))) => Some(bytes),
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
                    Ok((head, UpstreamResponseBody::H1(body), None))
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
                        Some(UpstreamRequestBody::Full(Some(bytes))) if !last => {
                            UpstreamRequestBody::Full(Some(Bytes::clone(bytes)))
                        }
                        Some(UpstreamRequestBody::Empty) => UpstreamRequestBody::Empty,
                        _ => body.take().unwrap_or(UpstreamRequestBody::Empty),
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
                            Ok((head, UpstreamResponseBody::Hyper(body), upstream_upgrade))
                        }
                        Ok(Err(error)) => {
                            let failure = crate::hyper_client::classify(&error);
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
                    UpstreamResponseBody::H1(body) => {
                        if let Some(fields) = body.fields_mut() {
                            fields.set_request_id(request_id);
                        }
                    }
                    UpstreamResponseBody::Hyper(_) => {
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
        let failure = blame(
            failure,
            body_arrived
                .as_ref()
                .is_some_and(|arrived| !arrived.load(Ordering::Acquire)),
        );
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
        if !should_retry(attempt, retries_allowed, body.is_some(), failure, exec) {
            break failure;
        }
        attempt += 1;
    };
    drop(claims);
    if let UpstreamFailure::RequestBodyTimeout(reason) = failure {
        return body_timed_out(ctx, &method, path, route, Some(&request_id), reason, start);
    }

    let response = Answer::of_failure(failure, ctx.conn.rejected()).response();
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
    ctx: &ClientConn,
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
    if declared_length.is_none_or(|n| n > MAX_BUFFERED_BODY_BYTES) {
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
            Err(Box::new(
                Answer::unreadable_body(ctx.conn.rejected()).response(),
            ))
        }
    }
}

/// The answer to a client too slow with its body: 408 and the connection closed, counted,
/// and logged as `client_body_timeout` (the upstream is not blamed).
fn body_timed_out(
    ctx: &ClientConn,
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
    Answer::BODY_TIMEOUT.response()
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
    ctx: &ClientConn,
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
    ctx: &ClientConn,
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

fn access_log_refusal(ctx: &ClientConn, reject: Reject) {
    tracing::info!(
        target: "switchyard::access",
        status = reject.status().as_u16(),
        reason = reject.reason(),
        client = ctx.peer_ip.to_str().unwrap_or(""),
        "request refused"
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use protocol::RetryCase;

    use super::*;

    #[test]
    fn every_failure_has_its_answer() {
        let cases = [
            (
                UpstreamFailure::ConnectTimeout,
                504,
                "UPSTREAM_CONNECT_TIMEOUT",
                false,
            ),
            (
                UpstreamFailure::ExecutionTimeout,
                504,
                "UPSTREAM_TIMEOUT",
                false,
            ),
            (
                UpstreamFailure::HostNotFound,
                502,
                "UPSTREAM_HOST_NOT_FOUND",
                false,
            ),
            (
                UpstreamFailure::HostRouting,
                502,
                "UPSTREAM_UNREACHABLE",
                false,
            ),
            (
                UpstreamFailure::BadResponse,
                502,
                "UPSTREAM_BAD_RESPONSE",
                false,
            ),
            (
                UpstreamFailure::ConnectionDropped,
                502,
                "UPSTREAM_CONNECTION_DROPPED",
                false,
            ),
            (
                UpstreamFailure::Other,
                502,
                "UPSTREAM_CONNECTION_DROPPED",
                false,
            ),
            (
                UpstreamFailure::RequestBodyTooLarge,
                413,
                "BODY_TOO_LARGE",
                true,
            ),
            (
                UpstreamFailure::RequestBodyTimeout(BodyTimeout::NoProgress),
                408,
                "REQUEST_TIMEOUT",
                true,
            ),
            (UpstreamFailure::RequestBodyBroken, 400, "BAD_REQUEST", true),
        ];
        for (failure, status, code, close) in cases {
            let answer = Answer::of_failure(failure, None);
            assert_eq!(
                (answer.status.as_u16(), answer.code, answer.close),
                (status, code, close),
                "{failure:?}"
            );
            let response = answer.response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers().contains_key(header::CONNECTION), close);
        }
        // A body the guard refused is answered with the guard's refusal.
        let refused = Answer::of_failure(
            UpstreamFailure::RequestBodyBroken,
            Some(Reject::BadRequest("bare LF in chunked body")),
        );
        assert_eq!(refused.message, "bare LF in chunked body");
        assert!(refused.close);
        assert_eq!(
            Answer::refusal(Reject::UriTooLong).code,
            "REQUEST_LINE_TOO_LONG"
        );
    }

    #[test]
    fn admission() {
        assert_eq!(admit_length(None, 10), Ok(()));
        assert_eq!(admit_length(Some(10), 10), Ok(()));
        assert_eq!(admit_length(Some(11), 10), Err(Refusal::BodyTooLarge));
        let in_flight = AtomicU32::new(0);
        assert_eq!(take_api_slot(&in_flight, 2), Ok(()));
        assert_eq!(take_api_slot(&in_flight, 2), Ok(()));
        assert_eq!(take_api_slot(&in_flight, 2), Err(Refusal::ConcurrencyLimit));
        // A refusal takes no slot.
        assert_eq!(in_flight.load(Ordering::Relaxed), 2);
        let busy = Refusal::ConcurrencyLimit.answer().response();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            Refusal::BodyTooLarge.answer().status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn body_plans() {
        let empty = plan_body(&Method::GET, ClientBody::Buffered(None), 2, 100, false);
        assert!(matches!(empty.body, UpstreamRequestBody::Empty));
        assert_eq!((empty.retries_allowed, empty.own_client), (2, true));
        let buffered = ClientBody::Buffered(Some(Bytes::from_static(b"abc")));
        let put = plan_body(&Method::PUT, buffered, 2, 100, false);
        assert!(matches!(put.body, UpstreamRequestBody::Full(Some(_))));
        assert_eq!((put.retries_allowed, put.own_client), (2, true));
        let buffered = ClientBody::Buffered(Some(Bytes::from_static(b"abc")));
        let post = plan_body(&Method::POST, buffered, 2, 100, false);
        assert_eq!((post.retries_allowed, post.own_client), (0, true));
        let upgrade = plan_body(&Method::GET, ClientBody::Buffered(None), 2, 100, true);
        assert_eq!((upgrade.retries_allowed, upgrade.own_client), (2, false));
    }

    #[test]
    fn retry_decisions() {
        let exec = Execution {
            max_concurrency: 1,
            retry_attempts: 2,
            connect_timeout: Duration::from_secs(1),
            execution_timeout: Duration::from_secs(1),
            retry_cases: vec![RetryCase::ConnectionDropped],
        };
        let dropped = UpstreamFailure::ConnectionDropped;
        assert!(should_retry(0, 2, true, dropped, &exec));
        assert!(should_retry(1, 2, true, dropped, &exec));
        assert!(!should_retry(2, 2, true, dropped, &exec));
        // A streamed body already sent cannot be sent again.
        assert!(!should_retry(0, 2, false, dropped, &exec));
        assert!(!should_retry(
            0,
            2,
            true,
            UpstreamFailure::ConnectTimeout,
            &exec
        ));
        assert!(!should_retry(
            0,
            2,
            true,
            UpstreamFailure::BadResponse,
            &exec
        ));
        // Whose fault a timeout is.
        let timeout = UpstreamFailure::ExecutionTimeout;
        assert_eq!(blame(timeout, false), timeout);
        assert_eq!(
            blame(timeout, true),
            UpstreamFailure::RequestBodyTimeout(BodyTimeout::TooSlow)
        );
        assert_eq!(blame(dropped, true), dropped);
    }
}
