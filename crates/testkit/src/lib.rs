//! Test harness: mock upstreams on port 0, an HTTP client and a raw-socket client for tests,
//! wait-until helpers, and a builder for configuration snapshots.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use protocol::{
    Api, ApiType, Deployment, Environment, EnvironmentPaths, LoadBalancing, Snapshot,
    SnapshotConfig, UpstreamTarget,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What a mock upstream does with each request.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// 200 with a JSON echo of method, path, headers and body.
    Echo,
    /// This status with a small body.
    Status(u16),
    /// Echo after this delay.
    Slow(Duration),
    /// Read the request, never answer.
    Hang,
    /// Read the request, then reset the connection (RST).
    Reset,
    /// Accept a WebSocket upgrade and echo the raw bytes of the upgraded stream.
    WebSocketEcho,
}

/// A mock upstream server on 127.0.0.1, port 0.
pub struct MockUpstream {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockUpstream {
    /// HTTP/1.1 upstream.
    pub async fn start(behavior: Behavior) -> MockUpstream {
        Self::start_with(behavior, false).await
    }

    /// HTTP/2 with prior knowledge (h2c).
    pub async fn start_h2(behavior: Behavior) -> MockUpstream {
        Self::start_with(behavior, true).await
    }

    async fn start_with(behavior: Behavior, h2: bool) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock upstream");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (req_count, conn_count, open_count) =
            (requests.clone(), connections.clone(), open.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                conn_count.fetch_add(1, Ordering::SeqCst);
                open_count.fetch_add(1, Ordering::SeqCst);
                let guard = OpenGuard(open_count.clone());
                let behavior = behavior.clone();
                let req_count = req_count.clone();
                conns.spawn(async move {
                    let _guard = guard;
                    match behavior {
                        Behavior::Reset => reset_after_request(stream, &req_count).await,
                        Behavior::Hang => hang_after_request(stream, &req_count).await,
                        behavior => serve_http(stream, behavior, req_count, h2).await,
                    }
                });
            }
        });
        MockUpstream {
            addr,
            requests,
            connections,
            open,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `h2c://…` for an HTTP/2 mock when `h2c` is asked).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen (counted when the request head arrives).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Connections accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn read_head(stream: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    return true;
                }
            }
        }
    }
}

async fn reset_after_request(mut stream: TcpStream, count: &AtomicUsize) {
    if read_head(&mut stream).await {
        count.fetch_add(1, Ordering::SeqCst);
    }
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn hang_after_request(mut stream: TcpStream, count: &AtomicUsize) {
    if read_head(&mut stream).await {
        count.fetch_add(1, Ordering::SeqCst);
    }
    // Keep the connection open, answering nothing, until the peer closes it.
    let mut sink = [0u8; 1024];
    while let Ok(n) = stream.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

async fn serve_http(stream: TcpStream, behavior: Behavior, count: Arc<AtomicUsize>, h2: bool) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        count.fetch_add(1, Ordering::SeqCst);
        let behavior = behavior.clone();
        async move { Ok::<_, Infallible>(respond(req, behavior).await) }
    });
    let io = TokioIo::new(stream);
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .with_upgrades()
            .await;
    }
}

async fn respond(mut req: Request<Incoming>, behavior: Behavior) -> Response<Full<Bytes>> {
    match behavior {
        Behavior::Status(code) => {
            let mut response = Response::new(Full::new(Bytes::from(format!("status {code}"))));
            *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            response
        }
        Behavior::WebSocketEcho => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
                .body(Full::new(Bytes::new()))
                .unwrap_or_default()
        }
        Behavior::Slow(delay) => {
            tokio::time::sleep(delay).await;
            echo(req).await
        }
        _ => echo(req).await,
    }
}

async fn echo(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let doc = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut response = Response::new(Full::new(Bytes::from(doc.to_string())));
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// An address whose TCP connects hang: a listener with a full accept queue that never accepts
/// (Linux drops further SYNs). Keep the value alive while it is used.
pub struct Blackhole {
    addr: SocketAddr,
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

impl Blackhole {
    pub async fn start() -> Blackhole {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let listener = socket.listen(1).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let mut fillers = Vec::new();
        // Fill the accept queue; connects that do not complete quickly mean it is full.
        for _ in 0..8 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => fillers.push(stream),
                _ => break,
            }
        }
        Blackhole {
            addr,
            _listener: listener,
            _fillers: fillers,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// An address where nothing listens (connects are refused).
pub async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// Polls `condition` every 10 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A response as tests look at it.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

type TestClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// A pooled HTTP/1.1 (or h2c) client for tests.
#[derive(Clone)]
pub struct Client {
    inner: TestClient,
}

impl Client {
    pub fn new() -> Client {
        Self::build(false)
    }

    /// HTTP/2 with prior knowledge.
    pub fn h2c() -> Client {
        Self::build(true)
    }

    fn build(h2: bool) -> Client {
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .http2_only(h2)
            .build_http();
        Client { inner }
    }

    pub async fn get(&self, url: &str) -> Result<TestResponse, String> {
        self.send(
            Request::get(url)
                .body(Full::default())
                .map_err(|e| e.to_string())?,
        )
        .await
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<TestResponse, String> {
        let response = self
            .inner
            .request(req)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(TestResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

/// Sends raw bytes on a new connection and returns everything read until the peer closes or
/// `idle` passes without data.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], idle: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(request).await;
    read_all(&mut stream, idle).await
}

/// Reads until close or until `idle` passes with no data.
pub async fn read_all(stream: &mut TcpStream, idle: Duration) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(Ok(n)) = tokio::time::timeout(idle, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Status codes of every HTTP/1 response head in `raw`, in order.
pub fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| raw.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// Environment id of the builder's default environment.
pub const ENV_ID: &str = "env-prod";

/// Builds snapshots for tests: one environment "Production" with the default paths.
#[derive(Clone, Debug)]
pub struct SnapshotBuilder {
    generation: u64,
    config: SnapshotConfig,
}

impl SnapshotBuilder {
    pub fn new(generation: u64) -> SnapshotBuilder {
        let mut config = SnapshotConfig::default();
        config.environments.push(Environment {
            id: ENV_ID.into(),
            name: "Production".into(),
            paths: EnvironmentPaths::default(),
        });
        SnapshotBuilder { generation, config }
    }

    /// A REST API deployed to the default environment.
    pub fn api(mut self, id: &str, base_path: &str, targets: &[String]) -> SnapshotBuilder {
        self.config.apis.push(api(id, base_path, targets));
        self
    }

    pub fn push_api(mut self, api: Api) -> SnapshotBuilder {
        self.config.apis.push(api);
        self
    }

    /// Edits the configuration freely.
    pub fn with(mut self, edit: impl FnOnce(&mut SnapshotConfig)) -> SnapshotBuilder {
        edit(&mut self.config);
        self
    }

    pub fn generation(mut self, generation: u64) -> SnapshotBuilder {
        self.generation = generation;
        self
    }

    pub fn build(&self) -> Snapshot {
        Snapshot::new(self.generation, self.config.clone())
    }
}

/// A REST API named like its id, deployed to [`ENV_ID`].
pub fn api(id: &str, base_path: &str, targets: &[String]) -> Api {
    Api {
        id: id.into(),
        name: id.into(),
        version: "1".into(),
        api_type: ApiType::Rest,
        base_path: base_path.into(),
        targets: targets
            .iter()
            .map(|url| UpstreamTarget { url: url.clone() })
            .collect(),
        load_balancing: LoadBalancing::RoundRobin,
        health_check_url: None,
        execution: None,
        max_body_bytes: None,
        deployments: vec![Deployment {
            environment_id: ENV_ID.into(),
            custom_path: None,
        }],
    }
}
