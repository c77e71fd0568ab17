//! A fake platform for the node's link tests: the join endpoint and the link WebSocket, scripted
//! by the test (what to answer, what to push) and recording every frame the node sends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt as _, StreamExt as _};
use protocol::link::{
    JoinRequest, JoinResponse, NodeMessage, PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER,
    PlatformMessage,
};
use tokio::sync::{broadcast, watch};

pub const GATEWAY_ID: &str = "gw-1";
pub const CREDENTIAL: &str = "node-credential-secret";

/// One frame the node sent, with its connection number (1-based) and arrival time.
#[derive(Debug, Clone)]
pub struct Received {
    pub connection: usize,
    pub at: Instant,
    pub message: NodeMessage,
}

#[derive(Default)]
struct Script {
    /// Join answer: `None` accepts; `Some((status, body))` refuses.
    join_refusal: Option<(u16, String)>,
    /// Link answer at the HTTP level: `Some((status, body, peer version))` refuses the upgrade.
    link_refusal: Option<(u16, String, u32)>,
    /// Answer to `Hello` instead of `Welcome`.
    refuse_hello: Option<PlatformMessage>,
    /// Frames sent right after `Welcome` on every connection (e.g. the current snapshot).
    after_welcome: Vec<PlatformMessage>,
}

struct Inner {
    script: Mutex<Script>,
    welcome_version: AtomicU32,
    heartbeat_interval_ms: u64,
    joins: Mutex<Vec<JoinRequest>>,
    /// (authorization, protocol header) of each link request.
    link_headers: Mutex<Vec<(String, String)>>,
    received: Mutex<Vec<Received>>,
    connections: AtomicUsize,
    open: AtomicUsize,
    push: broadcast::Sender<PlatformMessage>,
    /// Bumped to drop every open link connection.
    drop_epoch: watch::Sender<u64>,
}

/// The fake platform; dropping it stops the server.
pub struct FakePlatform {
    inner: Arc<Inner>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakePlatform {
    fn drop(&mut self) {
        self.server.abort();
        // Open link connections end too.
        self.inner.drop_epoch.send_modify(|e| *e += 1);
    }
}

impl FakePlatform {
    pub async fn start(heartbeat_interval_ms: u64) -> FakePlatform {
        Self::start_on("127.0.0.1:0".parse().unwrap(), heartbeat_interval_ms).await
    }

    /// Starts on a given address, e.g. the address of a platform that was stopped.
    pub async fn start_on(addr: SocketAddr, heartbeat_interval_ms: u64) -> FakePlatform {
        let inner = Arc::new(Inner {
            script: Mutex::new(Script::default()),
            welcome_version: AtomicU32::new(PROTOCOL_VERSION),
            heartbeat_interval_ms,
            joins: Mutex::new(Vec::new()),
            link_headers: Mutex::new(Vec::new()),
            received: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            push: broadcast::channel(64).0,
            drop_epoch: watch::channel(0).0,
        });
        let app = axum::Router::new()
            .route("/api/v1/nodes/join", post(join))
            .route("/api/v1/link", get(link))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakePlatform {
            inner,
            addr,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits until its address is free again.
    pub async fn stop(mut self) {
        self.server.abort();
        let server = std::mem::replace(&mut self.server, tokio::spawn(async {}));
        let _ = server.await;
        self.drop_connections();
        testkit::wait_until(crate::DEADLINE, "link connections closed", || async {
            self.open_connections() == 0
        })
        .await;
    }

    /// Link connections being served now.
    pub fn open_connections(&self) -> usize {
        self.inner.open.load(Ordering::SeqCst)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn refuse_join(&self, status: u16, body: &str) {
        self.inner.script.lock().unwrap().join_refusal = Some((status, body.into()));
    }

    pub fn refuse_link(&self, status: u16, body: &str, peer_version: u32) {
        self.inner.script.lock().unwrap().link_refusal = Some((status, body.into(), peer_version));
    }

    pub fn refuse_hello(&self, message: PlatformMessage) {
        self.inner.script.lock().unwrap().refuse_hello = Some(message);
    }

    pub fn welcome_version(&self, version: u32) {
        self.inner.welcome_version.store(version, Ordering::SeqCst);
    }

    pub fn after_welcome(&self, message: PlatformMessage) {
        self.inner
            .script
            .lock()
            .unwrap()
            .after_welcome
            .push(message);
    }

    /// Sends `message` on every open link connection.
    pub fn push(&self, message: PlatformMessage) {
        let _ = self.inner.push.send(message);
    }

    /// Ends every open link connection (the server keeps accepting).
    pub fn drop_connections(&self) {
        self.inner.drop_epoch.send_modify(|e| *e += 1);
    }

    pub fn joins(&self) -> Vec<JoinRequest> {
        self.inner.joins.lock().unwrap().clone()
    }

    pub fn link_headers(&self) -> Vec<(String, String)> {
        self.inner.link_headers.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// Waits until a received frame satisfies `pick`; returns the first one that does.
    pub async fn wait_for<T>(&self, what: &str, mut pick: impl FnMut(&Received) -> Option<T>) -> T {
        let deadline = Instant::now() + crate::DEADLINE;
        loop {
            if let Some(found) = self.received().iter().find_map(&mut pick) {
                return found;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Waits for the `n`-th (1-based) received frame satisfying `pick`, counted from the start.
    pub async fn wait_for_nth<T>(
        &self,
        what: &str,
        n: usize,
        mut pick: impl FnMut(&Received) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + crate::DEADLINE;
        loop {
            if let Some(found) = self.received().iter().filter_map(&mut pick).nth(n - 1) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} #{n}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

async fn join(State(inner): State<Arc<Inner>>, Json(request): Json<JoinRequest>) -> Response {
    inner.joins.lock().unwrap().push(request.clone());
    let refusal = inner.script.lock().unwrap().join_refusal.clone();
    if let Some((status, body)) = refusal {
        return (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
            .into_response();
    }
    Json(JoinResponse {
        gateway_id: GATEWAY_ID.into(),
        gateway_name: request.gateway_name,
        account_id: "acc-1".into(),
        node_id: request.node_id,
        node_credential: CREDENTIAL.into(),
    })
    .into_response()
}

async fn link(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    inner
        .link_headers
        .lock()
        .unwrap()
        .push((header("authorization"), header(PROTOCOL_VERSION_HEADER)));
    let refusal = inner.script.lock().unwrap().link_refusal.clone();
    if let Some((status, body, version)) = refusal {
        return (
            StatusCode::from_u16(status).unwrap(),
            [
                ("content-type", "application/json".to_string()),
                (PROTOCOL_VERSION_HEADER, version.to_string()),
            ],
            body,
        )
            .into_response();
    }
    if header("authorization") != format!("Bearer {CREDENTIAL}") {
        return (StatusCode::UNAUTHORIZED, "bad credential").into_response();
    }
    upgrade.on_upgrade(move |socket| serve_link(inner, socket))
}

async fn serve_link(inner: Arc<Inner>, socket: WebSocket) {
    inner.open.fetch_add(1, Ordering::SeqCst);
    serve_link_inner(&inner, socket).await;
    inner.open.fetch_sub(1, Ordering::SeqCst);
}

async fn serve_link_inner(inner: &Arc<Inner>, socket: WebSocket) {
    let connection = inner.connections.fetch_add(1, Ordering::SeqCst) + 1;
    let mut pushes = inner.push.subscribe();
    let mut drops = inner.drop_epoch.subscribe();
    drops.borrow_and_update();
    let (mut tx, mut rx) = socket.split();
    let send =
        |message: &PlatformMessage| Message::Text(serde_json::to_string(message).unwrap().into());
    let record = |text: &str| {
        let message: NodeMessage = serde_json::from_str(text).expect("node frame parses");
        inner.received.lock().unwrap().push(Received {
            connection,
            at: Instant::now(),
            message: message.clone(),
        });
        message
    };
    // Hello first.
    let Some(Ok(Message::Text(first))) = rx.next().await else {
        return;
    };
    let hello = record(first.as_str());
    assert!(
        matches!(hello, NodeMessage::Hello { .. }),
        "first frame is hello"
    );
    let (refusal, after) = {
        let script = inner.script.lock().unwrap();
        (script.refuse_hello.clone(), script.after_welcome.clone())
    };
    if let Some(refusal) = refusal {
        let _ = tx.send(send(&refusal)).await;
        let _ = tx.close().await;
        return;
    }
    let welcome = PlatformMessage::Welcome {
        protocol_version: inner.welcome_version.load(Ordering::SeqCst),
        gateway_id: GATEWAY_ID.into(),
        heartbeat_interval_ms: inner.heartbeat_interval_ms,
    };
    if tx.send(send(&welcome)).await.is_err() {
        return;
    }
    for message in &after {
        if tx.send(send(message)).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            frame = rx.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    record(text.as_str());
                }
                Some(Ok(_)) => {}
                _ => return,
            },
            pushed = pushes.recv() => match pushed {
                Ok(message) => {
                    if tx.send(send(&message)).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            _ = drops.changed() => return,
        }
    }
}
