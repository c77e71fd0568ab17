//! The platform–gateway link end to end with real processes: `switchyard platform` (short status
//! timings through its advanced flags) and `switchyard gateway` nodes, started, stopped
//! (SIGTERM) and killed (SIGKILL) as an operator or a crash would. Ports are picked free, data
//! lives in temp dirs, every wait has a deadline and every child is killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const DEADLINE: Duration = Duration::from_secs(20);
/// Status timings of the platform under test.
const HEARTBEAT_MS: u64 = 200;
const LOST_CONTACT_FLOOR_MS: u64 = 600;
const STATUS_INTERVAL_MS: u64 = 100;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed on drop; stdout and stderr go to a log file.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(args: &[String], log: PathBuf) -> Proc {
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

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status();
    }

    async fn wait_exit(&mut self) -> ExitStatus {
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

    fn log(&self) -> String {
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
async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> T
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
struct Platform {
    proc: Option<Proc>,
    dir: PathBuf,
    port: u16,
    url: String,
    owner: String,
    client: reqwest::Client,
}

impl Platform {
    async fn start(root: &Path) -> Platform {
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
        };
        platform.spawn().await;
        platform
    }

    async fn spawn(&mut self) {
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

    async fn stop(&mut self, signal: &str) {
        let mut proc = self.proc.take().expect("platform running");
        proc.signal(signal);
        proc.wait_exit().await;
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
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

    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method.clone(), path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {body:#}"
        );
        body
    }

    async fn install_token(&self) -> String {
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
    async fn gateway(&self, name: &str) -> Option<Value> {
        let list = self
            .ok(reqwest::Method::GET, "/api/v1/gateways", None)
            .await;
        list["gateways"]
            .as_array()?
            .iter()
            .find(|g| g["name"] == name)
            .cloned()
    }

    async fn nodes(&self, gateway_id: &str) -> Vec<Value> {
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
    async fn wait_node(&self, gateway_id: &str, node_id: &str, state: &str, variant: Option<&str>) {
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
    async fn deploy(&self, gateway_id: &str, env: &str, api: &str, upstream: &str) {
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
struct Node {
    proc: Option<Proc>,
    dir: PathBuf,
    port: u16,
    platform: String,
}

impl Node {
    fn new(root: &Path, name: &str, platform: &Platform) -> Node {
        Node {
            proc: None,
            dir: root.join(name),
            port: free_port(),
            platform: platform.url.clone(),
        }
    }

    /// Starts the node: joins gateway `gateway` with `token` the first time.
    fn start(&mut self, join: Option<(&str, &str)>) {
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
    async fn id(&self) -> String {
        let path = self.dir.join("node-id");
        wait_until("the node id file", || {
            let id = std::fs::read_to_string(&path).ok();
            async move { id.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) }
        })
        .await
    }

    async fn stop(&mut self, signal: &str) -> ExitStatus {
        let mut proc = self.proc.take().expect("node running");
        proc.signal(signal);
        proc.wait_exit().await
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_status(&self, client: &reqwest::Client, path: &str, want: u16) {
        let url = self.url(path);
        wait_until(&format!("{url} → {want}"), || async {
            let r = client.get(&url).send().await.ok()?;
            (r.status().as_u16() == want).then_some(())
        })
        .await
    }
}

/// A small upstream answering 200 with its path.
async fn upstream() -> SocketAddr {
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
async fn platform_and_node(root: &Path, name: &str) -> (Platform, Node, String, String) {
    let platform = Platform::start(root).await;
    let token = platform.install_token().await;
    let mut node = Node::new(root, "node-a", &platform);
    node.start(Some((name, &token)));
    let node_id = node.id().await;
    let gateway = wait_until("the gateway to exist", || platform.gateway(name)).await;
    let gateway_id = gateway["id"].as_str().unwrap().to_owned();
    (platform, node, gateway_id, node_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_start_online_then_sigterm_not_running() {
    let root = tempfile::tempdir().unwrap();
    let (platform, mut node, gw, id) = platform_and_node(root.path(), "g-start").await;
    platform.wait_node(&gw, &id, "online", None).await;
    let status = node.stop("TERM").await;
    assert!(status.success(), "SIGTERM exits 0: {status}");
    platform
        .wait_node(&gw, &id, "offline", Some("not_running"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_online_is_lost_contact_within_threshold() {
    let root = tempfile::tempdir().unwrap();
    let (platform, mut node, gw, id) = platform_and_node(root.path(), "g-kill").await;
    platform.wait_node(&gw, &id, "online", None).await;
    let killed = Instant::now();
    node.stop("KILL").await;
    platform
        .wait_node(&gw, &id, "offline", Some("lost_contact"))
        .await;
    let took = killed.elapsed();
    let threshold = Duration::from_millis(LOST_CONTACT_FLOOR_MS.max(3 * HEARTBEAT_MS));
    // Threshold + one status interval, plus slack for a loaded 2-core machine and polling.
    let bound = threshold + Duration::from_millis(STATUS_INTERVAL_MS) + Duration::from_millis(700);
    assert!(
        took <= bound,
        "lost_contact after {took:?}, bound {bound:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_one_killed_is_cluster_issue_then_back_online() {
    let root = tempfile::tempdir().unwrap();
    let (platform, a, gw, a_id) = platform_and_node(root.path(), "g-three").await;
    let mut others = Vec::new();
    for name in ["node-b", "node-c"] {
        let token = platform.install_token().await;
        let mut node = Node::new(root.path(), name, &platform);
        node.start(Some(("g-three", &token)));
        let id = node.id().await;
        others.push((node, id));
    }
    platform.wait_node(&gw, &a_id, "online", None).await;
    for (_, id) in &others {
        platform.wait_node(&gw, id, "online", None).await;
    }
    assert_eq!(platform.nodes(&gw).await.len(), 3);
    let (victim, victim_id) = &mut others[0];
    victim.stop("KILL").await;
    let row = wait_until("cluster_issues with NODE_OFFLINE", || async {
        let row = platform.gateway("g-three").await?;
        let offline = row["issues"]
            .as_array()?
            .iter()
            .any(|i| i["code"] == "NODE_OFFLINE");
        (row["status"]["state"] == "cluster_issues" && offline).then_some(row)
    })
    .await;
    assert!(
        row["issues"].to_string().contains(victim_id.as_str()),
        "{row:#}"
    );
    victim.start(None);
    platform.wait_node(&gw, victim_id, "online", None).await;
    wait_until("the gateway online again", || async {
        let row = platform.gateway("g-three").await?;
        (row["status"]["state"] == "online").then_some(())
    })
    .await;
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_down_traffic_continues_cache_serves_and_nodes_catch_up() {
    let root = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let up = upstream().await;
    let (mut platform, mut a, gw, a_id) = platform_and_node(root.path(), "g-down").await;
    let token = platform.install_token().await;
    let mut b = Node::new(root.path(), "node-b", &platform);
    b.start(Some(("g-down", &token)));
    let b_id = b.id().await;
    platform
        .deploy(&gw, "Production", "one", &format!("http://{up}"))
        .await;
    a.wait_status(&client, "/ws/rest/one/x", 200).await;
    b.wait_status(&client, "/ws/rest/one/x", 200).await;

    // Platform gone: traffic continues without a single failure.
    platform.stop("KILL").await;
    let started = Instant::now();
    let mut failed = Vec::new();
    for i in 0..200 {
        match client.get(a.url(&format!("/ws/rest/one/{i}"))).send().await {
            Ok(r) if r.status() == 200 => {}
            other => failed.push(format!("{i}: {other:?}")),
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(failed.is_empty(), "failed requests: {failed:#?}");
    assert!(started.elapsed() >= Duration::from_secs(2));

    // A node restarted while the platform is away serves from its cache.
    let status = b.stop("TERM").await;
    assert!(status.success(), "{status}");
    b.start(None);
    b.wait_status(&client, "/ws/rest/one/cached", 200).await;

    // Platform back; a change made while node A is stopped reaches it when it starts.
    platform.spawn().await;
    platform.wait_node(&gw, &b_id, "online", None).await;
    platform.wait_node(&gw, &a_id, "online", None).await;
    a.stop("TERM").await;
    platform
        .deploy(&gw, "Production", "two", &format!("http://{up}"))
        .await;
    b.wait_status(&client, "/ws/rest/two/x", 200).await;
    a.start(None);
    a.wait_status(&client, "/ws/rest/two/x", 200).await;
    platform.wait_node(&gw, &a_id, "online", None).await;
    let nodes = platform.nodes(&gw).await;
    let generations: Vec<&Value> = nodes.iter().map(|n| &n["applied_generation"]).collect();
    assert!(
        generations.windows(2).all(|w| w[0] == w[1]),
        "every node on the same generation: {nodes:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_gateway_stops_its_node_with_a_clear_message() {
    let root = tempfile::tempdir().unwrap();
    let (platform, mut node, gw, id) = platform_and_node(root.path(), "g-deleted").await;
    platform.wait_node(&gw, &id, "online", None).await;
    platform
        .ok(
            reqwest::Method::DELETE,
            &format!("/api/v1/gateways/{gw}"),
            None,
        )
        .await;
    let mut proc = node.proc.take().expect("running");
    let status = proc.wait_exit().await;
    assert!(!status.success(), "exit code is non-zero: {status}");
    let log = proc.log();
    assert!(
        log.contains("refused this node for good"),
        "clear message: {log}"
    );
    // Its node is not shown online in the deleted gateway (issue 8 item 7).
    let nodes = platform.nodes(&gw).await;
    assert_eq!(
        nodes[0]["status"],
        json!({ "state": "offline", "variant": "not_running" })
    );
}

/// Issue 8 items 5 and 9 with real processes: a node suspended (SIGSTOP) right after a
/// restart was requested becomes Restarting-unresponsive with RESTART_TIMED_OUT; resumed
/// (SIGCONT) it reports again and leaves Restarting (the pending restart completes or is
/// cancelled), a new restart is accepted and completes, and a clean stop shows as one. The
/// gateway URL is the node's own listener, not the bind address default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_during_a_restart_then_resumed_leaves_restarting() {
    let root = tempfile::tempdir().unwrap();
    let (platform, mut node, gw, id) = platform_and_node(root.path(), "g-suspended").await;
    platform.wait_node(&gw, &id, "online", None).await;
    let row = wait_until("the gateway URL", || async {
        platform
            .gateway("g-suspended")
            .await
            .filter(|g| g["gateway_url"].is_string())
    })
    .await;
    assert_eq!(
        row["gateway_url"],
        format!("http://127.0.0.1:{}", node.port)
    );

    let restart = format!("/api/v1/gateways/{gw}/restart");
    node.proc.as_ref().expect("running").signal("STOP");
    let (status, body) = platform
        .call(reqwest::Method::POST, &restart, Some(json!({})))
        .await;
    assert_eq!(status, 202, "{body:#}");
    platform
        .wait_node(&gw, &id, "restarting", Some("unresponsive"))
        .await;
    node.proc.as_ref().expect("running").signal("CONT");
    platform.wait_node(&gw, &id, "online", None).await;
    wait_until("RESTART_TIMED_OUT cleared", || async {
        let g = platform.gateway("g-suspended").await?;
        (g["status"]["state"] == "online" && g["issues"].as_array()?.is_empty()).then_some(())
    })
    .await;

    // A new restart is possible and completes with a new process.
    let (status, body) = platform
        .call(reqwest::Method::POST, &restart, Some(json!({})))
        .await;
    assert_eq!(status, 202, "{body:#}");
    platform.wait_node(&gw, &id, "restarting", None).await;
    platform.wait_node(&gw, &id, "online", None).await;
    node.stop("TERM").await;
    platform
        .wait_node(&gw, &id, "offline", Some("not_running"))
        .await;
}
