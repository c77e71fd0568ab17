//! Retries: only idempotent methods, only the configured cases, across targets, exactly as
//! many as configured.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use protocol::{ExecutionSettings, RetryCase};
use testkit::{Behavior, Client, MockUpstream, SnapshotBuilder, api, closed_port_url};

use crate::{settles, start, start_with_manual_clock, url};

fn settings(retry_attempts: u32, retry_cases: &[RetryCase]) -> ExecutionSettings {
    ExecutionSettings {
        retry_attempts,
        retry_cases: retry_cases.to_vec(),
        execution_timeout_ms: 400,
        connect_timeout_ms: 300,
        ..ExecutionSettings::default()
    }
}

async fn node_with(targets: Vec<String>, execution: ExecutionSettings) -> gateway::GatewayHandle {
    let mut a = api("a", "a", &targets);
    a.execution = Some(execution);
    // Passive ejection off, so every request meets the failing target in turn.
    start(
        SnapshotBuilder::new(1)
            .push_api(a)
            .with(|c| c.gateway.health.eject_after_failures = 0)
            .build(),
    )
    .await
}

async fn send(client: &Client, method: &str, target: &str) -> u16 {
    let req = Request::builder()
        .method(method)
        .uri(target)
        .body(Full::<Bytes>::from(if method == "GET" {
            ""
        } else {
            "body"
        }))
        .unwrap();
    client.send(req).await.unwrap().status
}

const DEFAULT_CASES: [RetryCase; 4] = [
    RetryCase::ConnectTimeout,
    RetryCase::ConnectionDropped,
    RetryCase::HostNotFound,
    RetryCase::HostRoutingError,
];

#[tokio::test]
async fn dropped_connection_is_retried_on_another_target_for_get_only() {
    let reset = MockUpstream::start(Behavior::Reset).await;
    let good = MockUpstream::start(Behavior::Echo).await;
    let node = node_with(vec![reset.url(), good.url()], settings(1, &DEFAULT_CASES)).await;
    let client = Client::new();
    let target = url(&node, "/ws/rest/a/x");
    for _ in 0..6 {
        assert_eq!(send(&client, "GET", &target).await, 200);
    }
    // Every GET reached the good target exactly once; half of them met the reset first.
    assert_eq!(good.requests(), 6);
    assert_eq!(reset.requests(), 3);

    for method in ["PUT", "DELETE"] {
        assert_eq!(send(&client, method, &target).await, 200, "{method}");
        assert_eq!(send(&client, method, &target).await, 200, "{method}");
    }

    let (reset_before, good_before) = (reset.requests(), good.requests());
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(send(&client, "POST", &target).await);
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 502, 502, 502]);
    // Never retried: one upstream request per POST.
    assert_eq!(
        reset.requests() - reset_before + good.requests() - good_before,
        6
    );
    for _ in 0..2 {
        let status = send(&client, "PATCH", &target).await;
        assert!(status == 200 || status == 502);
    }
    assert_eq!(
        reset.requests() - reset_before + good.requests() - good_before,
        8
    );
    settles(&node).await;
}

#[tokio::test]
async fn only_configured_cases_and_attempts() {
    // CONNECTION_DROPPED not configured: no retry.
    let reset = MockUpstream::start(Behavior::Reset).await;
    let good = MockUpstream::start(Behavior::Echo).await;
    let node = node_with(
        vec![reset.url(), good.url()],
        settings(3, &[RetryCase::HostRoutingError]),
    )
    .await;
    let client = Client::new();
    let target = url(&node, "/ws/rest/a/x");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(send(&client, "GET", &target).await);
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 502, 502]);
    assert_eq!(reset.requests() + good.requests(), 4);

    // Three failing targets and 2 retries: exactly 3 attempts, one on each target.
    let failing: Vec<MockUpstream> = futures_join(3).await;
    let node = node_with(
        failing.iter().map(MockUpstream::url).collect(),
        settings(2, &DEFAULT_CASES),
    )
    .await;
    assert_eq!(send(&client, "GET", &url(&node, "/ws/rest/a/x")).await, 502);
    let seen: Vec<usize> = failing.iter().map(MockUpstream::requests).collect();
    assert_eq!(seen, [1, 1, 1]);

    // Zero retry attempts: one attempt.
    let reset = MockUpstream::start(Behavior::Reset).await;
    let node = node_with(vec![reset.url()], settings(0, &DEFAULT_CASES)).await;
    assert_eq!(send(&client, "GET", &url(&node, "/ws/rest/a/x")).await, 502);
    assert_eq!(reset.requests(), 1);
}

async fn futures_join(n: usize) -> Vec<MockUpstream> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(MockUpstream::start(Behavior::Reset).await);
    }
    out
}

#[tokio::test]
async fn refused_connect_and_execution_timeout_cases() {
    let good = MockUpstream::start(Behavior::Echo).await;
    let closed = closed_port_url().await;
    let node = node_with(
        vec![closed.clone(), good.url()],
        settings(1, &DEFAULT_CASES),
    )
    .await;
    let client = Client::new();
    let target = url(&node, "/ws/rest/a/x");
    for _ in 0..4 {
        assert_eq!(send(&client, "GET", &target).await, 200);
    }
    assert_eq!(good.requests(), 4);

    // EXECUTION_TIMEOUT is not a default case: a hanging target answers 504, not retried.
    let hang = MockUpstream::start(Behavior::Hang).await;
    let good = MockUpstream::start(Behavior::Echo).await;
    let node = node_with(vec![hang.url(), good.url()], settings(1, &DEFAULT_CASES)).await;
    let target = url(&node, "/ws/rest/a/x");
    let mut statuses = vec![
        send(&client, "GET", &target).await,
        send(&client, "GET", &target).await,
    ];
    statuses.sort();
    assert_eq!(statuses, [200, 504]);
    assert_eq!(good.requests(), 1);

    // With EXECUTION_TIMEOUT configured it is retried on the other target.
    let mut cases = DEFAULT_CASES.to_vec();
    cases.push(RetryCase::ExecutionTimeout);
    let hang = MockUpstream::start(Behavior::Hang).await;
    let good = MockUpstream::start(Behavior::Echo).await;
    let node = node_with(vec![hang.url(), good.url()], settings(1, &cases)).await;
    let target = url(&node, "/ws/rest/a/x");
    assert_eq!(send(&client, "GET", &target).await, 200);
    assert_eq!(send(&client, "GET", &target).await, 200);
    assert_eq!(good.requests(), 2);
    assert_eq!(hang.requests(), 1);
    settles(&node).await;
}

#[tokio::test]
async fn passive_ejection_and_recovery() {
    let reset = MockUpstream::start(Behavior::Reset).await;
    let good = MockUpstream::start(Behavior::Echo).await;
    let mut a = api("a", "a", &[reset.url(), good.url()]);
    a.execution = Some(settings(1, &DEFAULT_CASES));
    let (node, clock) = start_with_manual_clock(
        SnapshotBuilder::new(1)
            .push_api(a)
            .with(|c| {
                c.gateway.health.eject_after_failures = 2;
                c.gateway.health.ejection_ms = 500;
            })
            .build(),
    )
    .await;
    let client = Client::new();
    let target = url(&node, "/ws/rest/a/x");
    for _ in 0..10 {
        assert_eq!(send(&client, "GET", &target).await, 200);
    }
    // Ejected after 2 failures: later requests went to the good target only.
    assert_eq!(reset.requests(), 2);
    // The node's clock stands still: still ejected 1 ms before the end.
    clock.advance(std::time::Duration::from_millis(499));
    for _ in 0..4 {
        assert_eq!(send(&client, "GET", &target).await, 200);
    }
    assert_eq!(reset.requests(), 2);
    clock.advance(std::time::Duration::from_millis(1));
    for _ in 0..4 {
        assert_eq!(send(&client, "GET", &target).await, 200);
    }
    // Tried again once the ejection ended (and ejected again at once).
    assert_eq!(reset.requests(), 3);
}
