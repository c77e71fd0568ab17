//! `switchyard gateway` in platform mode as a real process against a small fake platform (a test
//! peer written here with axum, not the product): join, serve, restart by re-executing itself
//! with the same node id and process id, SIGTERM → `stopped` and exit 0; clear errors and a
//! non-zero exit when the node cannot join or is refused for good.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{SinkExt as _, StreamExt as _};
use protocol::link::{
    Command as NodeCommand, JoinRequest, JoinResponse, NodeMessage, PROTOCOL_VERSION,
    PlatformMessage, ReportedState,
};
use testkit::{Behavior, MockUpstream, SnapshotBuilder};
use tokio::sync::broadcast;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const DEADLINE: Duration = Duration::from_secs(20);

/// What the fake platform answers and what it received, per connection.
struct Fake {
    snapshot: protocol::Snapshot,
    refuse_hello: Option<PlatformMessage>,
    received: Mutex<Vec<(usize, NodeMessage)>>,
    connections: AtomicUsize,
    push: broadcast::Sender<PlatformMessage>,
}

async fn start_fake(fake: Arc<Fake>) -> String {
    let app = Router::new()
        .route("/api/v1/nodes/join", post(join))
        .route("/api/v1/link", get(link))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

async fn join(Json(request): Json<JoinRequest>) -> Json<JoinResponse> {
    Json(JoinResponse {
        gateway_id: "gw-1".into(),
        gateway_name: request.gateway_name,
        account_id: "acc-1".into(),
        node_id: request.node_id,
        node_credential: "secret".into(),
    })
}

async fn link(State(fake): State<Arc<Fake>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .on_upgrade(move |socket| serve(fake, socket))
        .into_response()
}

async fn serve(fake: Arc<Fake>, socket: WebSocket) {
    let connection = fake.connections.fetch_add(1, Ordering::SeqCst) + 1;
    let mut pushes = fake.push.subscribe();
    let (mut tx, mut rx) = socket.split();
    let text = |m: &PlatformMessage| Message::Text(serde_json::to_string(m).unwrap().into());
    let mut first = true;
    loop {
        tokio::select! {
            frame = rx.next() => {
                let Some(Ok(Message::Text(frame))) = frame else {
                    if matches!(frame, Some(Ok(_))) { continue; }
                    return;
                };
                let message: NodeMessage = serde_json::from_str(frame.as_str()).unwrap();
                fake.received.lock().unwrap().push((connection, message));
                if std::mem::take(&mut first) {
                    if let Some(refusal) = &fake.refuse_hello {
                        let _ = tx.send(text(refusal)).await;
                        return;
                    }
                    let welcome = PlatformMessage::Welcome {
                        protocol_version: PROTOCOL_VERSION,
                        gateway_id: "gw-1".into(),
                        heartbeat_interval_ms: 100,
                    };
                    let snapshot = PlatformMessage::Snapshot { snapshot: Box::new(fake.snapshot.clone()) };
                    if tx.send(text(&welcome)).await.is_err() || tx.send(text(&snapshot)).await.is_err() {
                        return;
                    }
                }
            }
            Ok(pushed) = pushes.recv() => {
                if tx.send(text(&pushed)).await.is_err() {
                    return;
                }
            }
        }
    }
}

impl Fake {
    fn new(snapshot: protocol::Snapshot, refuse_hello: Option<PlatformMessage>) -> Arc<Fake> {
        Arc::new(Fake {
            snapshot,
            refuse_hello,
            received: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            push: broadcast::channel(8).0,
        })
    }

    fn received(&self) -> Vec<(usize, NodeMessage)> {
        self.received.lock().unwrap().clone()
    }

    fn states(&self, connection: usize) -> Vec<ReportedState> {
        self.received()
            .into_iter()
            .filter(|(c, _)| *c == connection)
            .filter_map(|(_, m)| match m {
                NodeMessage::Hello { state, .. } | NodeMessage::Heartbeat { state, .. } => {
                    Some(state)
                }
                _ => None,
            })
            .collect()
    }

    fn hello(&self, connection: usize) -> Option<(String, ReportedState, bool)> {
        self.received().into_iter().find_map(|(c, m)| match m {
            NodeMessage::Hello {
                node_id,
                state,
                startup,
                ..
            } if c == connection => Some((node_id, state, startup.is_some())),
            _ => None,
        })
    }
}

/// The node process; its stdout lines are collected by a thread.
struct NodeProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl NodeProcess {
    fn spawn(args: &[&str], data_dir: &Path) -> NodeProcess {
        let mut child = Command::new(BIN)
            .arg("gateway")
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchyard gateway");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        NodeProcess { child, lines }
    }

    /// The traffic addresses the node printed, one per run of the process.
    fn addresses(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("switchyard gateway: node "))
            .filter_map(|l| l.split("http://").nth(1))
            .map(|rest| {
                rest.split([',', ' '])
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    fn wait_exit(&mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                return (status, stderr);
            }
            assert!(Instant::now() < deadline, "node process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get_status(url: &str) -> Option<u16> {
    testkit::Client::new().get(url).await.ok().map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reexecutes_with_the_same_node_id_and_sigterm_stops_cleanly() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let snapshot = SnapshotBuilder::new(1)
        .api("orders", "orders", &[upstream.url()])
        .with(|c| c.gateway.drain_timeout_ms = 1_000)
        .build();
    let fake = Fake::new(snapshot, None);
    let url = start_fake(fake.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::spawn(
        &[
            "--platform",
            &url,
            "--install-token",
            "tok",
            "--name",
            "edge",
        ],
        dir.path(),
    );
    let pid = node.child.id();

    testkit::wait_until(DEADLINE, "online on the first connection", || async {
        fake.states(1).contains(&ReportedState::Online)
    })
    .await;
    let first = node.addresses()[0].clone();
    assert_eq!(
        get_status(&format!("http://{first}/ws/rest/orders/x")).await,
        Some(200)
    );
    let (node_id, state, startup) = fake.hello(1).unwrap();
    assert_eq!(
        (state, startup),
        (
            ReportedState::Starting {
                unclean_previous_exit: false
            },
            true
        )
    );

    let _ = fake.push.send(PlatformMessage::Command {
        command_id: "c1".into(),
        command: NodeCommand::Restart {
            drain_timeout_ms: 1_000,
        },
    });
    testkit::wait_until(
        DEADLINE,
        "online on the connection after restart",
        || async { fake.states(2).contains(&ReportedState::Online) },
    )
    .await;
    assert!(fake.states(1).contains(&ReportedState::Restarting));
    // Same process (exec keeps the pid), same node id, a fresh run with its start-up facts.
    assert!(node.child.try_wait().unwrap().is_none());
    assert_eq!(node.child.id(), pid);
    let (again, state, startup) = fake.hello(2).unwrap();
    assert_eq!(again, node_id);
    assert_eq!(
        (state, startup),
        (
            ReportedState::Starting {
                unclean_previous_exit: false
            },
            true
        )
    );
    testkit::wait_until(DEADLINE, "second run prints its address", || async {
        node.addresses().len() == 2
    })
    .await;
    let second = node.addresses()[1].clone();
    assert_eq!(
        get_status(&format!("http://{second}/ws/rest/orders/x")).await,
        Some(200)
    );

    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, stderr) = node.wait_exit();
    assert!(status.success(), "exit {status:?}: {stderr}");
    testkit::wait_until(DEADLINE, "stopped received", || async {
        fake.states(2).last() == Some(&ReportedState::Stopped)
    })
    .await;
    assert!(fake.states(2).contains(&ReportedState::Stopping));
    assert!(!dir.path().join("running").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refused_for_good_exits_non_zero_with_the_reason() {
    let fake = Fake::new(
        SnapshotBuilder::new(1).build(),
        Some(PlatformMessage::Refused {
            reason: "gateway deleted".into(),
            retry: false,
        }),
    );
    let url = start_fake(fake.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::spawn(
        &[
            "--platform",
            &url,
            "--install-token",
            "tok",
            "--name",
            "edge",
        ],
        dir.path(),
    );
    let (status, stderr) = node.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refused this node for good") && stderr.contains("gateway deleted"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credential_or_token_the_node_says_how_to_join() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::spawn(&[], dir.path());
    let (status, stderr) = node.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no node credential") && stderr.contains("--install-token"),
        "{stderr}"
    );

    let closed = testkit::closed_port_url().await;
    let mut node = NodeProcess::spawn(
        &[
            "--platform",
            &closed,
            "--install-token",
            "t",
            "--name",
            "edge",
        ],
        dir.path(),
    );
    let (status, stderr) = node.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach the platform"), "{stderr}");
}
