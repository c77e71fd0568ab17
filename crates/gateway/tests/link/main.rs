//! Tests of the node side of the platform link through real sockets: the node (join, link agent,
//! snapshot cache, lifecycle) against a small fake platform written here with axum (a test peer,
//! not the product), traffic through testkit mock upstreams.

mod fake;
mod lifecycle;
mod link;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gateway::node::{ExitReason, Node, NodeOptions};
use gateway::{GatewayHandle, StartOptions};
use protocol::Snapshot;
use testkit::SnapshotBuilder;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Generous deadline for conditions in these tests; they usually hold within milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A temporary data directory, removed when dropped.
pub struct TempDir(tempfile::TempDir);

impl Default for TempDir {
    fn default() -> TempDir {
        TempDir::new()
    }
}

impl TempDir {
    pub fn new() -> TempDir {
        TempDir(tempfile::tempdir().expect("temp dir"))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// Node options on port 0 with short timings for tests.
pub fn options(dir: &Path, platform_url: &str) -> NodeOptions {
    let mut listen = StartOptions::new("127.0.0.1:0".parse().unwrap());
    listen.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    listen.node_name = "test-node".into();
    let mut options = NodeOptions::new(dir, listen);
    options.platform_url = Some(platform_url.to_string());
    options.reconnect_min = Duration::from_millis(20);
    options.reconnect_max = Duration::from_millis(200);
    options.connect_timeout = Duration::from_secs(2);
    options.probe_timeout = Duration::from_secs(2);
    options.revoked_drain_timeout = Duration::from_millis(200);
    options
}

/// Options for a first start that joins gateway `name` with `token`.
pub fn joining(dir: &Path, platform_url: &str, token: &str, name: &str) -> NodeOptions {
    let mut options = options(dir, platform_url);
    options.install_token = Some(token.into());
    options.gateway_name = Some(name.into());
    options
}

/// A node running its link in the background.
pub struct Running {
    pub handle: Arc<GatewayHandle>,
    pub node_id: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<ExitReason>,
}

impl Running {
    pub async fn start(options: NodeOptions) -> Running {
        let node = Node::start(options).await.expect("node starts");
        Running::run(node)
    }

    pub fn run(node: Node) -> Running {
        let handle = node.handle().clone();
        let node_id = node.node_id().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(node.run(async move {
            let _ = stopped.await;
        }));
        Running {
            handle,
            node_id,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.handle.http_addr(), path)
    }

    /// Signals a stop (like SIGTERM) and waits for the node to end.
    pub async fn stop(mut self) -> ExitReason {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.exit().await
    }

    /// Waits for the node to end on its own.
    pub async fn exit(self) -> ExitReason {
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("node ends in time")
            .expect("node task")
    }
}

/// A snapshot with one API `orders` at `/ws/rest/orders` forwarding to `upstream`.
pub fn snapshot(generation: u64, upstream: &str) -> Snapshot {
    SnapshotBuilder::new(generation)
        .api("orders", "orders", &[upstream.to_string()])
        .with(|c| c.gateway.drain_timeout_ms = 1_000)
        .build()
}

/// Waits until `url` answers `status`.
pub async fn wait_status(url: &str, status: u16) {
    let client = testkit::Client::new();
    testkit::wait_until(DEADLINE, &format!("{url} answers {status}"), || async {
        client.get(url).await.map(|r| r.status) == Ok(status)
    })
    .await;
}
