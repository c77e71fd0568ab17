//! The process harness of the end-to-end tests (`link_e2e.rs`, `migration_e2e.rs`): real
//! `switchyard platform` (short status timings through its advanced flags) and `switchyard
//! gateway` nodes, started, stopped (SIGTERM) and killed (SIGKILL) as an operator or a crash
//! would. Ports are picked free, data lives in temp dirs, every wait has a deadline and every
//! child is killed on drop.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Status timings of the platform under test.
pub const HEARTBEAT_MS: u64 = 200;
pub const LOST_CONTACT_FLOOR_MS: u64 = 600;
pub const STATUS_INTERVAL_MS: u64 = 100;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed on drop; stdout and stderr go to a log file.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(args: &[String], log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info,switchyard::access=off")
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn switchyard");
        Proc { child, log }
    }

    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status();
    }

    pub async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` until it answers `Some`, failing with `what` at the deadline.
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `switchyard platform` on a fixed port over a SQLite file with a bootstrapped owner.
pub struct Platform {
    pub proc: Option<Proc>,
    pub dir: PathBuf,
    pub port: u16,
    pub url: String,
    pub owner: String,
    pub client: reqwest::Client,
    /// More `switchyard platform` arguments, on every start.
    pub extra_args: Vec<String>,
}

impl Platform {
    pub async fn start(root: &Path) -> Platform {
        Platform::start_with(root, &[]).await
    }

    /// A platform started with more arguments (e.g. shorter migration timings).
    pub async fn start_with(root: &Path, extra_args: &[&str]) -> Platform {
        let dir = root.join("platform");
        std::fs::create_dir_all(&dir).unwrap();
        let store = store::Store::open(
            &format!("sqlite://{}", dir.join("switchyard.db").display()),
            store::StoreOptions::default(),
        )
        .await
        .expect("store");
        let tokens = platform::bootstrap::bootstrap(&store, platform::state::now())
            .await
            .expect("bootstrap");
        drop(store);
        let port = free_port();
        let mut platform = Platform {
            proc: None,
            dir,
            port,
            url: format!("http://127.0.0.1:{port}"),
            owner: tokens.owner_token,
            client: reqwest::Client::new(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        platform.spawn().await;
        platform
    }

    pub async fn spawn(&mut self) {
        let args: Vec<String> = [
            "platform",
            "--listen",
            &format!("127.0.0.1:{}", self.port),
            "--data-dir",
            &self.dir.display().to_string(),
            "--heartbeat-interval-ms",
            &HEARTBEAT_MS.to_string(),
            "--lost-contact-floor-ms",
            &LOST_CONTACT_FLOOR_MS.to_string(),
            "--status-interval-ms",
            &STATUS_INTERVAL_MS.to_string(),
            "--startup-timeout-ms",
            "5000",
            "--restart-unresponsive-ms",
            "3000",
            "--drain-timeout-ms",
            "1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(self.extra_args.iter().cloned())
        .collect();
        self.proc = Some(Proc::spawn(&args, self.dir.join("platform.log")));
        let client = self.client.clone();
        let url = format!("{}/api/v1/gateways", self.url);
        let token = self.owner.clone();
        wait_until("the platform to listen", || {
            let request = client.get(&url).bearer_auth(&token).send();
            async move { request.await.ok().filter(|r| r.status() == 200) }
        })
        .await;
    }

    pub async fn stop(&mut self, signal: &str) {
        let mut proc = self.proc.take().expect("platform running");
        proc.signal(signal);
        proc.wait_exit().await;
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.owner);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("platform request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method.clone(), path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {body:#}"
        );
        body
    }

    pub async fn install_token(&self) -> String {
        let body = self
            .ok(
                reqwest::Method::POST,
                "/api/v1/install-tokens",
                Some(json!({ "valid_for_minutes": 60 })),
            )
            .await;
        body["token"].as_str().unwrap().to_owned()
    }

    /// The gateway row named `name`, if listed.
    pub async fn gateway(&self, name: &str) -> Option<Value> {
        let list = self
            .ok(reqwest::Method::GET, "/api/v1/gateways", None)
            .await;
        list["gateways"]
            .as_array()?
            .iter()
            .find(|g| g["name"] == name)
            .cloned()
    }

    pub async fn nodes(&self, gateway_id: &str) -> Vec<Value> {
        let list = self
            .ok(
                reqwest::Method::GET,
                &format!("/api/v1/gateways/{gateway_id}/nodes"),
                None,
            )
            .await;
        list["nodes"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until node `node_id` has status `state`/`variant` (variant `None`: any).
    pub async fn wait_node(
        &self,
        gateway_id: &str,
        node_id: &str,
        state: &str,
        variant: Option<&str>,
    ) {
        wait_until(&format!("node {node_id} {state}/{variant:?}"), || async {
            let nodes = self.nodes(gateway_id).await;
            let node = nodes.iter().find(|n| n["id"] == node_id)?;
            let status = &node["status"];
            (status["state"] == state && variant.is_none_or(|v| status["variant"] == v))
                .then_some(())
        })
        .await
    }

    /// Environment `name` on `gateway_id` with the REST API `api` (base path = name) deployed,
    /// upstream `upstream`.
    pub async fn deploy(&self, gateway_id: &str, env: &str, api: &str, upstream: &str) {
        use reqwest::Method;
        let envs = self
            .ok(Method::GET, "/api/v1/environments?limit=100", None)
            .await;
        let env_id = match envs["environments"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["name"] == env))
        {
            Some(e) => e["id"].as_str().unwrap().to_owned(),
            None => {
                let e = self
                    .ok(
                        Method::POST,
                        "/api/v1/environments",
                        Some(json!({ "name": env, "classification": "production" })),
                    )
                    .await;
                let id = e["id"].as_str().unwrap().to_owned();
                self.ok(
                    Method::PUT,
                    &format!("/api/v1/environments/{id}/gateway"),
                    Some(json!({ "gateway_id": gateway_id })),
                )
                .await;
                id
            }
        };
        let created = self
            .ok(
                Method::POST,
                "/api/v1/apis",
                Some(json!({ "name": api, "version": "1", "api_type": "REST",
                    "base_path": api, "upstream_targets": [upstream] })),
            )
            .await;
        let api_id = created["id"].as_str().unwrap();
        self.ok(
            Method::POST,
            &format!("/api/v1/apis/{api_id}/deployments"),
            Some(json!({ "environment_id": env_id })),
        )
        .await;
    }
}

/// A `switchyard gateway` node in platform mode with its own data directory and port.
pub struct Node {
    pub proc: Option<Proc>,
    pub dir: PathBuf,
    pub port: u16,
    pub platform: String,
}

impl Node {
    pub fn new(root: &Path, name: &str, platform: &Platform) -> Node {
        Node {
            proc: None,
            dir: root.join(name),
            port: free_port(),
            platform: platform.url.clone(),
        }
    }

    /// Starts the node: joins gateway `gateway` with `token` the first time.
    pub fn start(&mut self, join: Option<(&str, &str)>) {
        let mut args: Vec<String> = vec![
            "gateway".into(),
            "--platform".into(),
            self.platform.clone(),
            "--data-dir".into(),
            self.dir.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.port),
        ];
        if let Some((gateway, token)) = join {
            args.extend([
                "--install-token".into(),
                token.into(),
                "--name".into(),
                gateway.into(),
            ]);
        }
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = self.dir.with_extension(format!(
            "{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        self.proc = Some(Proc::spawn(&args, log));
    }

    /// The node id, once the node has written it.
    pub async fn id(&self) -> String {
        let path = self.dir.join("node-id");
        wait_until("the node id file", || {
            let id = std::fs::read_to_string(&path).ok();
            async move { id.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) }
        })
        .await
    }

    /// Suspends the node (SIGSTOP): it stays linked but answers nothing.
    pub fn signal_stop(&self) {
        self.proc.as_ref().expect("node running").signal("STOP");
    }

    /// Resumes a suspended node (SIGCONT).
    pub fn signal_continue(&self) {
        self.proc.as_ref().expect("node running").signal("CONT");
    }

    pub async fn stop(&mut self, signal: &str) -> ExitStatus {
        let mut proc = self.proc.take().expect("node running");
        proc.signal(signal);
        proc.wait_exit().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn wait_status(&self, client: &reqwest::Client, path: &str, want: u16) {
        let url = self.url(path);
        wait_until(&format!("{url} → {want}"), || async {
            let r = client.get(&url).send().await.ok()?;
            (r.status().as_u16() == want).then_some(())
        })
        .await
    }
}

/// A small upstream answering 200 with its path.
pub async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(|uri: axum::http::Uri| async move { axum::Json(json!({ "path": uri.path() })) });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Starts a platform and one node joined to gateway `name`; answers them with the gateway id.
pub async fn platform_and_node(root: &Path, name: &str) -> (Platform, Node, String, String) {
    let platform = Platform::start(root).await;
    let token = platform.install_token().await;
    let mut node = Node::new(root, "node-a", &platform);
    node.start(Some((name, &token)));
    let node_id = node.id().await;
    let gateway = wait_until("the gateway to exist", || platform.gateway(name)).await;
    let gateway_id = gateway["id"].as_str().unwrap().to_owned();
    (platform, node, gateway_id, node_id)
}
