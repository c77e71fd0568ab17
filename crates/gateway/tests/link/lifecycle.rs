//! Node lifecycle: fail-static restarts from the cache, corrupt caches, stop and restart
//! commands, signals, unclean exits, and the probe command.

use gateway::node::{ExitReason, Node};
use protocol::link::{
    Command, CommandDetails, CommandOutcome, NodeMessage, PlatformMessage, ProbeTarget,
    ReportedState,
};
use testkit::{Behavior, MockUpstream};

use crate::fake::{FakePlatform, Received};
use crate::{Running, TempDir, joining, options, snapshot, wait_status};

fn state(r: &Received) -> Option<ReportedState> {
    match &r.message {
        NodeMessage::Heartbeat { state, .. } | NodeMessage::Hello { state, .. } => Some(*state),
        _ => None,
    }
}

fn command_result(r: &Received) -> Option<(String, CommandOutcome)> {
    match &r.message {
        NodeMessage::CommandResult { command_id, result } => {
            Some((command_id.clone(), result.clone()))
        }
        _ => None,
    }
}

/// Everything received once the platform has seen the connection close after `stopped`
/// (the node has exited; its last frames may still be in flight to the fake platform).
async fn stopped_received(platform: &FakePlatform) -> Vec<Received> {
    platform
        .wait_for("stopped", |r| {
            (state(r) == Some(ReportedState::Stopped)).then_some(())
        })
        .await;
    testkit::wait_until(crate::DEADLINE, "link closed", || async {
        platform.open_connections() == 0
    })
    .await;
    platform.received()
}

/// Joins, applies generation 1 towards `upstream` through the platform, and stops cleanly.
async fn joined_with_cache(dir: &TempDir, platform: &FakePlatform, upstream: &str) {
    platform.after_welcome(PlatformMessage::Snapshot {
        snapshot: Box::new(snapshot(1, upstream)),
    });
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    wait_status(&node.url("/ws/rest/orders/x"), 200).await;
    testkit::wait_until(crate::DEADLINE, "cache written", || async {
        dir.join("snapshot.json").exists()
    })
    .await;
    assert_eq!(node.stop().await, ExitReason::Stopped);
}

#[tokio::test]
async fn restarts_from_the_cache_while_the_platform_is_down() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let platform = FakePlatform::start(100).await;
    let dir = TempDir::new();
    joined_with_cache(&dir, &platform, &upstream.url()).await;
    let addr = platform.addr();
    platform.stop().await;

    // Serves before any connection to the platform: the link is not even running yet.
    let node = Node::start(options(dir.path(), &format!("http://{addr}")))
        .await
        .expect("starts without the platform");
    let base = format!("http://{}", node.handle().http_addr());
    let client = testkit::Client::new();
    let ready = client
        .get(&format!("{base}/_admin/readiness"))
        .await
        .unwrap();
    assert_eq!(ready.status, 200);
    let served = client
        .get(&format!("{base}/ws/rest/orders/x"))
        .await
        .unwrap();
    assert_eq!(served.status, 200);
    assert_eq!(*node.state().borrow(), ReportedState::Online);

    // And keeps serving while the link retries.
    let node = Running::run(node);
    for _ in 0..5 {
        let served = client.get(&node.url("/ws/rest/orders/x")).await.unwrap();
        assert_eq!(served.status, 200);
    }

    // The platform comes back: the node says it started (not unclean), then online.
    let platform = FakePlatform::start_on(addr, 100).await;
    let hello = platform
        .wait_for("hello", |r| match &r.message {
            NodeMessage::Hello { state, applied, .. } => Some((*state, applied.clone())),
            _ => None,
        })
        .await;
    assert_eq!(
        hello.0,
        ReportedState::Starting {
            unclean_previous_exit: false
        }
    );
    assert_eq!(hello.1.map(|a| a.generation), Some(1));
    platform
        .wait_for("online", |r| {
            (state(r) == Some(ReportedState::Online)).then_some(())
        })
        .await;
    node.stop().await;
}

#[tokio::test]
async fn a_corrupt_cache_is_moved_aside_and_never_served() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let platform = FakePlatform::start(100).await;
    let dir = TempDir::new();
    joined_with_cache(&dir, &platform, &upstream.url()).await;
    let path = dir.join("snapshot.json");
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    bytes.truncate(len - 10);
    std::fs::write(&path, &bytes).unwrap();
    drop(platform);

    let node = Node::start(options(dir.path(), &testkit::closed_port_url().await))
        .await
        .unwrap();
    let base = format!("http://{}", node.handle().http_addr());
    let client = testkit::Client::new();
    let ready = client
        .get(&format!("{base}/_admin/readiness"))
        .await
        .unwrap();
    assert_eq!(ready.status, 503);
    assert_eq!(node.handle().applied(), None);
    assert!(dir.join("snapshot.json.corrupt").exists());
    assert!(!path.exists());
    assert!(matches!(
        *node.state().borrow(),
        ReportedState::Starting { .. }
    ));
    Running::run(node).stop().await;
}

#[tokio::test]
async fn stop_command_drains_and_stopped_is_the_last_frame() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let platform = FakePlatform::start(50).await;
    platform.after_welcome(PlatformMessage::Snapshot {
        snapshot: Box::new(snapshot(1, &upstream.url())),
    });
    let dir = TempDir::new();
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    platform
        .wait_for("online", |r| {
            (state(r) == Some(ReportedState::Online)).then_some(())
        })
        .await;
    assert!(dir.join("running").exists());
    platform.push(PlatformMessage::Command {
        command_id: "c-stop".into(),
        command: Command::Stop {
            drain_timeout_ms: 1_000,
        },
    });
    assert_eq!(node.exit().await, ExitReason::Stopped);
    let received = stopped_received(&platform).await;
    assert!(
        received
            .iter()
            .any(|r| command_result(r) == Some(("c-stop".into(), CommandOutcome::Accepted)))
    );
    let states: Vec<_> = received.iter().filter_map(state).collect();
    assert!(states.contains(&ReportedState::Stopping), "{states:?}");
    assert_eq!(
        received.last().and_then(state),
        Some(ReportedState::Stopped)
    );
    assert!(
        !dir.join("running").exists(),
        "clean exit removes the marker"
    );
}

#[tokio::test]
async fn signal_stop_reports_stopping_then_stopped() {
    let platform = FakePlatform::start(50).await;
    let dir = TempDir::new();
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    platform.wait_for("heartbeat", state).await;
    assert_eq!(node.stop().await, ExitReason::Stopped);
    let states: Vec<_> = stopped_received(&platform)
        .await
        .iter()
        .filter_map(state)
        .collect();
    let stopping = states.iter().position(|s| *s == ReportedState::Stopping);
    assert!(stopping.is_some(), "{states:?}");
    assert_eq!(states.last(), Some(&ReportedState::Stopped));
}

#[tokio::test]
async fn restart_command_comes_back_with_the_same_node_id() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let platform = FakePlatform::start(50).await;
    platform.after_welcome(PlatformMessage::Snapshot {
        snapshot: Box::new(snapshot(1, &upstream.url())),
    });
    let dir = TempDir::new();
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    let node_id = node.node_id.clone();
    platform
        .wait_for("online", |r| {
            (state(r) == Some(ReportedState::Online)).then_some(())
        })
        .await;
    platform.push(PlatformMessage::Command {
        command_id: "c-restart".into(),
        command: Command::Restart {
            drain_timeout_ms: 1_000,
        },
    });
    assert_eq!(node.exit().await, ExitReason::Restart);
    let received = platform.received();
    assert_eq!(
        received.last().and_then(state),
        Some(ReportedState::Restarting)
    );
    let connections = platform.connections();

    // What the binary's re-exec does: start again on the same data directory, same flags.
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    assert_eq!(node.node_id, node_id);
    let hello = platform
        .wait_for("hello after restart", |r| {
            (r.connection > connections)
                .then(|| match &r.message {
                    NodeMessage::Hello { node_id, state, .. } => Some((node_id.clone(), *state)),
                    _ => None,
                })
                .flatten()
        })
        .await;
    assert_eq!(
        hello,
        (
            node_id,
            ReportedState::Starting {
                unclean_previous_exit: false
            }
        )
    );
    platform
        .wait_for("online after restart", |r| {
            (r.connection > connections && state(r) == Some(ReportedState::Online)).then_some(())
        })
        .await;
    assert_eq!(platform.joins().len(), 1, "no second join");
    node.stop().await;
}

#[tokio::test]
async fn an_unclean_previous_exit_is_reported_when_starting() {
    let platform = FakePlatform::start(100).await;
    let dir = TempDir::new();
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    node.stop().await;
    // A crash leaves the marker behind.
    std::fs::write(dir.join("running"), "1\n").unwrap();
    let node = Running::start(options(dir.path(), &platform.url())).await;
    platform
        .wait_for("unclean start", |r| {
            (r.connection == 2
                && state(r)
                    == Some(ReportedState::Starting {
                        unclean_previous_exit: true,
                    }))
            .then_some(())
        })
        .await;
    node.stop().await;
}

#[tokio::test]
async fn probe_upstreams_reports_each_target_and_other_commands_are_unsupported() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let platform = FakePlatform::start(100).await;
    let dir = TempDir::new();
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    platform.wait_for("heartbeat", state).await;
    let closed = testkit::closed_port_url().await;
    platform.push(PlatformMessage::Command {
        command_id: "c-probe".into(),
        command: Command::ProbeUpstreams {
            targets: vec![
                ProbeTarget {
                    api_id: "a".into(),
                    url: upstream.url(),
                },
                ProbeTarget {
                    api_id: "b".into(),
                    url: closed.clone(),
                },
                ProbeTarget {
                    api_id: "c".into(),
                    url: format!("{}/health", upstream.url()),
                },
            ],
        },
    });
    platform.push(PlatformMessage::Command {
        command_id: "c-logs".into(),
        command: Command::RollBackUpdate,
    });
    let (_, outcome) = platform
        .wait_for("probe result", |r| {
            command_result(r).filter(|(id, _)| id == "c-probe")
        })
        .await;
    let CommandOutcome::Done {
        details: CommandDetails::ProbeUpstreams(report),
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    let reachable: Vec<_> = report
        .results
        .iter()
        .map(|r| (r.api_id.as_str(), r.reachable))
        .collect();
    assert_eq!(reachable, vec![("a", true), ("b", false), ("c", true)]);
    assert_eq!(report.reachable, 2);
    assert!(
        report.results[1]
            .error
            .as_deref()
            .unwrap()
            .contains("connect")
    );
    let (_, unsupported) = platform
        .wait_for("unsupported", |r| {
            command_result(r).filter(|(id, _)| id == "c-logs")
        })
        .await;
    assert_eq!(unsupported, CommandOutcome::Unsupported);
    node.stop().await;
}

#[tokio::test]
async fn heartbeats_continue_while_draining_and_in_flight_requests_finish() {
    let upstream = MockUpstream::start(Behavior::Slow(std::time::Duration::from_millis(600))).await;
    let platform = FakePlatform::start(50).await;
    platform.after_welcome(PlatformMessage::Snapshot {
        snapshot: Box::new(snapshot(1, &upstream.url())),
    });
    let dir = TempDir::new();
    let node = Running::start(joining(dir.path(), &platform.url(), "t", "edge")).await;
    platform
        .wait_for("online", |r| {
            (state(r) == Some(ReportedState::Online)).then_some(())
        })
        .await;
    let url = node.url("/ws/rest/orders/slow");
    let in_flight = tokio::spawn(async move { testkit::Client::new().get(&url).await });
    let handle = node.handle.clone();
    testkit::wait_until(crate::DEADLINE, "request in flight", || async {
        handle.requests_in_flight() == 1
    })
    .await;
    let stop = tokio::spawn(node.stop());
    // Several `stopping` heartbeats go out while the slow request drains.
    platform
        .wait_for_nth("stopping heartbeat", 3, |r| match &r.message {
            NodeMessage::Heartbeat {
                state: ReportedState::Stopping,
                ..
            } => Some(()),
            _ => None,
        })
        .await;
    assert_eq!(in_flight.await.unwrap().map(|r| r.status), Ok(200));
    assert_eq!(stop.await.unwrap(), ExitReason::Stopped);
    let received = stopped_received(&platform).await;
    assert_eq!(
        received.last().and_then(state),
        Some(ReportedState::Stopped)
    );
}
