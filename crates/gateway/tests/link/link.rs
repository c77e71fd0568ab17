//! Join, hello and heartbeats, snapshot pushes and acknowledgements, version mismatch,
//! reconnects and refusals.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use gateway::link::identity::{IdentityError, StoredCredential};
use gateway::node::{ExitReason, Node};
use protocol::link::{
    ApplyResult, IssueSeverity, NodeMessage, PROTOCOL_VERSION, PlatformMessage, ReportedState,
};
use testkit::{Behavior, MockUpstream};

use crate::fake::{CREDENTIAL, FakePlatform, GATEWAY_ID, Received};
use crate::{Running, TempDir, joining, options, snapshot, wait_status};

fn hello(r: &Received) -> Option<(usize, NodeMessage)> {
    matches!(r.message, NodeMessage::Hello { .. }).then(|| (r.connection, r.message.clone()))
}

fn heartbeat_state(r: &Received) -> Option<ReportedState> {
    match &r.message {
        NodeMessage::Heartbeat { state, .. } => Some(*state),
        _ => None,
    }
}

fn ack(r: &Received) -> Option<(u64, ApplyResult)> {
    match &r.message {
        NodeMessage::SnapshotAck {
            generation, result, ..
        } => Some((*generation, result.clone())),
        _ => None,
    }
}

fn push_snapshot(platform: &FakePlatform, snapshot: protocol::Snapshot) {
    platform.push(PlatformMessage::Snapshot {
        snapshot: Box::new(snapshot),
    });
}

#[tokio::test]
async fn join_stores_an_owner_only_credential_and_a_stable_node_id() {
    let platform = FakePlatform::start(100).await;
    let dir = TempDir::new();
    let node = Running::start(joining(dir.path(), &platform.url(), "tok-1", "edge")).await;
    let joins = platform.joins();
    assert_eq!(joins.len(), 1);
    assert_eq!(joins[0].install_token, "tok-1");
    assert_eq!(joins[0].gateway_name, "edge");
    assert_eq!(joins[0].protocol_version, PROTOCOL_VERSION);
    assert_eq!(joins[0].node_id, node.node_id);
    assert!(uuid::Uuid::parse_str(&node.node_id).is_ok());

    let path = dir.join("credential.json");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "credential mode");
    let stored: StoredCredential = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(stored.gateway_id, GATEWAY_ID);
    assert_eq!(stored.node_credential, CREDENTIAL);
    assert_eq!(stored.node_id, node.node_id);
    assert_eq!(stored.platform_url, platform.url());
    platform.wait_for("hello", hello).await;
    let (authorization, version) = platform.link_headers()[0].clone();
    assert_eq!(authorization, format!("Bearer {CREDENTIAL}"));
    assert_eq!(version, PROTOCOL_VERSION.to_string());
    let first_id = node.node_id.clone();
    assert_eq!(node.stop().await, ExitReason::Stopped);

    // Later starts need neither token nor name, keep the node id and do not join again.
    let mut again = options(dir.path(), &platform.url());
    again.platform_url = None;
    let node = Running::start(again).await;
    assert_eq!(node.node_id, first_id);
    platform
        .wait_for("hello of the second run", |r| {
            (r.connection == 2).then_some(())
        })
        .await;
    match &platform
        .received()
        .iter()
        .find(|r| r.connection == 2)
        .unwrap()
        .message
    {
        NodeMessage::Hello { node_id, .. } => assert_eq!(node_id, &first_id),
        other => panic!("expected hello, got {other:?}"),
    }
    assert_eq!(platform.joins().len(), 1);
    node.stop().await;
}

#[tokio::test]
async fn join_errors_are_clear() {
    let platform = FakePlatform::start(100).await;
    platform.refuse_join(
        401,
        r#"{"error":{"code":"INSTALL_TOKEN_EXPIRED","message":"the install token expired","details":{}}}"#,
    );
    let dir = TempDir::new();
    let error = Node::start(joining(dir.path(), &platform.url(), "old", "edge"))
        .await
        .err()
        .expect("join refused");
    let text = error.to_string();
    assert!(
        text.contains("the install token expired") && text.contains("401"),
        "{text}"
    );
    assert!(!dir.join("credential.json").exists());
    assert!(!dir.join("running").exists());

    let unreachable = testkit::closed_port_url().await;
    let error = Node::start(joining(dir.path(), &unreachable, "tok", "edge"))
        .await
        .err()
        .expect("platform unreachable");
    assert!(
        matches!(
            &error,
            gateway::node::NodeError::Identity(IdentityError::PlatformUnreachable { .. })
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("cannot reach the platform"),
        "{error}"
    );

    let error = Node::start(options(dir.path(), &platform.url()))
        .await
        .err()
        .expect("neither credential nor token");
    assert!(error.to_string().contains("no node credential"), "{error}");
    assert!(error.to_string().contains("--install-token"), "{error}");
}

#[tokio::test]
async fn hello_then_heartbeats_at_the_welcomed_interval() {
    let platform = FakePlatform::start(100).await;
    let dir = TempDir::new();
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    let (_, first) = platform.wait_for("hello", hello).await;
    match first {
        NodeMessage::Hello {
            protocol_version,
            state,
            startup,
            applied,
            ..
        } => {
            assert_eq!(protocol_version, PROTOCOL_VERSION);
            assert_eq!(
                state,
                ReportedState::Starting {
                    unclean_previous_exit: false
                }
            );
            assert_eq!(applied, None);
            let startup = startup.expect("start-up properties on the first connection");
            assert!(startup.cpus >= 1);
            assert!(!startup.host_name.is_empty());
            assert_eq!(startup.bind_addresses.len(), 2);
            assert!(startup.started_at_ms > 0);
        }
        other => panic!("{other:?}"),
    }
    // Six heartbeats: one right after welcome, then one per 100 ms.
    platform.wait_for_nth("heartbeat", 6, heartbeat_state).await;
    let beats: Vec<Instant> = platform
        .received()
        .iter()
        .filter(|r| heartbeat_state(r).is_some())
        .map(|r| r.at)
        .collect();
    let span = beats[5] - beats[1];
    assert!(
        span >= Duration::from_millis(300) && span < Duration::from_millis(5_000),
        "4 intervals took {span:?}"
    );
    // Still starting: no configuration yet.
    assert!(matches!(
        platform.received().last().and_then(heartbeat_state),
        Some(ReportedState::Starting { .. })
    ));
    node.stop().await;
}

#[tokio::test]
async fn snapshots_are_applied_acked_cached_and_stale_ones_ignored() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let platform = FakePlatform::start(100).await;
    let dir = TempDir::new();
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    platform.wait_for("hello", hello).await;
    wait_status(&node.url("/_admin/readiness"), 503).await;

    let first = snapshot(5, &upstream.url());
    push_snapshot(&platform, first.clone());
    let (generation, result) = platform.wait_for("ack", ack).await;
    assert_eq!((generation, result), (5, ApplyResult::Applied));
    wait_status(&node.url("/ws/rest/orders/x"), 200).await;
    assert_eq!(upstream.requests(), 1);
    // Online once the first configuration is loaded, at once and in heartbeats.
    platform
        .wait_for("online heartbeat with generation 5", |r| match &r.message {
            NodeMessage::Heartbeat {
                state: ReportedState::Online,
                applied: Some(applied),
                ..
            } => (applied.generation == 5 && applied.content_hash == first.content_hash)
                .then_some(()),
            _ => None,
        })
        .await;
    // The cache holds it.
    match gateway::cache::SnapshotCache::new(dir.path())
        .load()
        .unwrap()
    {
        gateway::cache::CacheLoad::Loaded(cached) => assert_eq!(*cached, first),
        other => panic!("{other:?}"),
    }

    // Older and equal generations are acknowledged as stale and change nothing.
    push_snapshot(&platform, snapshot(4, &testkit::closed_port_url().await));
    push_snapshot(&platform, snapshot(5, &upstream.url()));
    assert_eq!(
        platform.wait_for_nth("ack", 2, ack).await,
        (
            4,
            ApplyResult::Stale {
                serving_generation: 5
            }
        )
    );
    assert_eq!(
        platform.wait_for_nth("ack", 3, ack).await,
        (
            5,
            ApplyResult::Stale {
                serving_generation: 5
            }
        )
    );
    assert_eq!(node.handle.applied().map(|(g, _)| g), Some(5));

    // A newer one replaces it.
    push_snapshot(&platform, snapshot(6, &upstream.url()));
    assert_eq!(
        platform.wait_for_nth("ack", 4, ack).await,
        (6, ApplyResult::Applied)
    );
    node.stop().await;
}

#[tokio::test]
async fn invalid_snapshots_are_refused_and_reported_until_a_good_one_applies() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let platform = FakePlatform::start(50).await;
    let dir = TempDir::new();
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    platform.wait_for("hello", hello).await;
    push_snapshot(&platform, snapshot(1, &upstream.url()));
    assert_eq!(
        platform.wait_for("ack", ack).await,
        (1, ApplyResult::Applied)
    );

    // Wrong hash.
    let mut tampered = snapshot(2, &upstream.url());
    tampered.content_hash = "0".repeat(64);
    push_snapshot(&platform, tampered);
    // Valid hash, invalid content (a target that is not a URL).
    push_snapshot(&platform, snapshot(3, "not a url"));
    for (n, generation, says) in [(2, 2, "content hash"), (3, 3, "")] {
        let (acked, result) = platform.wait_for_nth("ack", n, ack).await;
        assert_eq!(acked, generation);
        match result {
            ApplyResult::Refused { reason } => assert!(reason.contains(says), "{reason}"),
            other => panic!("generation {generation}: {other:?}"),
        }
    }
    let issue_in_heartbeat = |r: &Received| match &r.message {
        NodeMessage::Heartbeat { issues, .. } => issues
            .iter()
            .find(|i| i.code == "CONFIG_APPLY_FAILED")
            .cloned(),
        _ => None,
    };
    let issue = platform
        .wait_for("CONFIG_APPLY_FAILED", issue_in_heartbeat)
        .await;
    assert_eq!(issue.severity, IssueSeverity::Error);
    // The previous configuration stays in service.
    wait_status(&node.url("/ws/rest/orders/x"), 200).await;
    assert_eq!(node.handle.applied().map(|(g, _)| g), Some(1));

    let after = platform.received().len();
    push_snapshot(&platform, snapshot(4, &upstream.url()));
    assert_eq!(
        platform.wait_for_nth("ack", 4, ack).await,
        (4, ApplyResult::Applied)
    );
    testkit::wait_until(crate::DEADLINE, "a heartbeat without issues", || async {
        platform.received().iter().skip(after).any(
            |r| matches!(&r.message, NodeMessage::Heartbeat { issues, .. } if issues.is_empty()),
        )
    })
    .await;
    node.stop().await;
}

#[tokio::test]
async fn version_mismatch_is_refused_and_retried_without_applying() {
    let platform = FakePlatform::start(100).await;
    let dir = TempDir::new();
    // Welcome of another version: the node closes, keeps serving, retries.
    platform.welcome_version(PROTOCOL_VERSION + 1);
    platform.after_welcome(PlatformMessage::Snapshot {
        snapshot: Box::new(snapshot(1, "http://127.0.0.1:9")),
    });
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    testkit::wait_until(crate::DEADLINE, "three attempts", || async {
        platform.connections() >= 3
    })
    .await;
    assert!(platform.received().iter().all(|r| ack(r).is_none()));
    assert_eq!(node.handle.applied(), None);

    // The same refusal at the HTTP level, as a platform of another version answers it.
    platform.refuse_link(
        400,
        r#"{"error":{"code":"PROTOCOL_VERSION_MISMATCH","message":"link protocol version mismatch","details":{}}}"#,
        PROTOCOL_VERSION + 1,
    );
    let seen = platform.link_headers().len();
    testkit::wait_until(crate::DEADLINE, "more refused attempts", || async {
        platform.link_headers().len() >= seen + 2
    })
    .await;
    assert_eq!(node.stop().await, ExitReason::Stopped);
}

#[tokio::test]
async fn reconnects_after_the_platform_drops_the_link() {
    let platform = FakePlatform::start(100).await;
    let dir = TempDir::new();
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    platform.wait_for("hello", hello).await;
    for round in 2..=4 {
        let dropped = Instant::now();
        platform.drop_connections();
        let (_, again) = platform
            .wait_for("hello on a new connection", |r| {
                (r.connection == round).then(|| hello(r)).flatten()
            })
            .await;
        // Backoff is capped at 200 ms in these options (plus handshake time).
        assert!(dropped.elapsed() < Duration::from_secs(3), "round {round}");
        match again {
            NodeMessage::Hello { startup, .. } => {
                assert!(startup.is_none(), "start-up properties only once per run");
            }
            other => panic!("{other:?}"),
        }
    }

    // The platform goes away entirely and comes back on the same address.
    let addr = platform.addr();
    platform.stop().await;
    let platform = FakePlatform::start_on(addr, 100).await;
    platform
        .wait_for("hello after the platform is back", hello)
        .await;
    node.stop().await;
}

#[tokio::test]
async fn refused_for_good_stops_serving_and_exits() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let platform = FakePlatform::start(100).await;
    platform.after_welcome(PlatformMessage::Snapshot {
        snapshot: Box::new(snapshot(1, &upstream.url())),
    });
    let dir = TempDir::new();
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    wait_status(&node.url("/ws/rest/orders/x"), 200).await;
    let addr = node.handle.http_addr();

    platform.refuse_hello(PlatformMessage::Refused {
        reason: "gateway deleted".into(),
        retry: false,
    });
    platform.drop_connections();
    match node.exit().await {
        ExitReason::Revoked { reason } => assert!(reason.contains("gateway deleted"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
    assert!(!dir.join("running").exists());

    // A revoked credential answered at the HTTP level ends the node the same way.
    let platform = FakePlatform::start(100).await;
    let dir = TempDir::new();
    let node = Node::start(joining(dir.path(), &platform.url(), "t", "edge"))
        .await
        .unwrap();
    platform.refuse_link(
        401,
        r#"{"error":{"code":"UNAUTHENTICATED","message":"credential revoked","details":{}}}"#,
        PROTOCOL_VERSION,
    );
    let node = Running::run(node);
    match node.exit().await {
        ExitReason::Revoked { reason } => {
            assert!(reason.contains("credential revoked"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

/// A health-check target whose answer a test switches: 200 while `healthy`, else 503.
async fn switchable_health() -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let healthy = std::sync::Arc::new(AtomicBool::new(true));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = healthy.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let status = if state.load(Ordering::SeqCst) {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let response =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, healthy)
}

fn unreachable_issue(r: &Received) -> Option<protocol::link::NodeIssue> {
    match &r.message {
        NodeMessage::Heartbeat { issues, .. } => issues
            .iter()
            .find(|i| i.code == "UPSTREAM_UNREACHABLE")
            .cloned(),
        _ => None,
    }
}

/// SPEC §3: a target failing its health check raises `UPSTREAM_UNREACHABLE` (warning, API and
/// target named) in the node's heartbeats; it clears when the target is healthy again.
#[tokio::test]
async fn failing_health_checks_raise_upstream_unreachable_until_healthy() {
    use std::sync::atomic::Ordering;
    let (target, healthy) = switchable_health().await;
    let platform = FakePlatform::start(1_000).await;
    let dir = TempDir::new();
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    platform.wait_for("hello", hello).await;
    let checked = testkit::SnapshotBuilder::new(1)
        .api("orders", "orders", std::slice::from_ref(&target))
        .with(|c| {
            c.gateway.drain_timeout_ms = 1_000;
            c.gateway.health.check_interval_ms = 100;
            c.gateway.health.check_timeout_ms = 500;
            c.apis[0].health_check_url = Some("/health".into());
        })
        .build();
    push_snapshot(&platform, checked);
    assert_eq!(
        platform.wait_for("ack", ack).await,
        (1, ApplyResult::Applied)
    );
    assert!(
        platform
            .received()
            .iter()
            .all(|r| unreachable_issue(r).is_none())
    );

    healthy.store(false, Ordering::SeqCst);
    let issue = platform
        .wait_for("UPSTREAM_UNREACHABLE", unreachable_issue)
        .await;
    assert_eq!(issue.severity, IssueSeverity::Warning);
    assert!(issue.message.contains("orders"), "{}", issue.message);
    assert!(issue.message.contains(&target), "{}", issue.message);
    let details: serde_json::Value = serde_json::from_str(&issue.details).unwrap();
    assert_eq!(details["unreachable"][0]["api_id"], "orders");
    assert_eq!(details["unreachable"][0]["target"], target.as_str());

    let after = platform.received().len();
    healthy.store(true, Ordering::SeqCst);
    testkit::wait_until(crate::DEADLINE, "a heartbeat without the issue", || async {
        platform.received().iter().skip(after).any(
            |r| matches!(&r.message, NodeMessage::Heartbeat { issues, .. } if issues.is_empty()),
        )
    })
    .await;
    node.stop().await;
}
