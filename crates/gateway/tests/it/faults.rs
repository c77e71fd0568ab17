//! Upstreams that hang, reset or answer slowly, and clients that go away: correct statuses and
//! nothing left behind (in-flight gauge back to zero, upstream connections closed).

use std::time::Duration;

use protocol::ExecutionSettings;
use testkit::{Behavior, Client, MockUpstream, SnapshotBuilder, api, wait_until};
use tokio::io::AsyncWriteExt;

use crate::{settles, start, url};

#[tokio::test]
async fn hang_reset_slow_upstreams() {
    let hang = MockUpstream::start(Behavior::Hang).await;
    let reset = MockUpstream::start(Behavior::Reset).await;
    let slow = MockUpstream::start(Behavior::Slow(Duration::from_millis(300))).await;
    let execution = Some(ExecutionSettings {
        execution_timeout_ms: 1000,
        retry_attempts: 0,
        ..ExecutionSettings::default()
    });
    let mut apis = Vec::new();
    for (id, upstream) in [("hang", &hang), ("reset", &reset), ("slow", &slow)] {
        let mut a = api(id, id, &[upstream.url()]);
        a.execution = execution.clone();
        apis.push(a);
    }
    let node = start(SnapshotBuilder::new(1).with(|c| c.apis = apis).build()).await;
    let client = Client::new();
    for _ in 0..3 {
        assert_eq!(
            client
                .get(&url(&node, "/ws/rest/hang/x"))
                .await
                .unwrap()
                .status,
            504
        );
        assert_eq!(
            client
                .get(&url(&node, "/ws/rest/reset/x"))
                .await
                .unwrap()
                .status,
            502
        );
        assert_eq!(
            client
                .get(&url(&node, "/ws/rest/slow/x"))
                .await
                .unwrap()
                .status,
            200
        );
    }
    settles(&node).await;
    // The gateway dropped its connections to the hanging upstream after each timeout.
    wait_until(
        Duration::from_secs(5),
        "hanging upstream connections closed",
        || async { hang.open_connections() == 0 },
    )
    .await;
    assert_eq!(hang.requests(), 3);
    let metrics = node.metrics_text();
    assert!(metrics.contains("kind=\"execution_timeout\""), "{metrics}");
}

#[tokio::test]
async fn client_going_away_releases_everything() {
    let slow = MockUpstream::start(Behavior::Slow(Duration::from_secs(30))).await;
    let node = start(
        SnapshotBuilder::new(1)
            .api("slow", "slow", &[slow.url()])
            .build(),
    )
    .await;
    for _ in 0..4 {
        let mut stream = tokio::net::TcpStream::connect(node.http_addr())
            .await
            .unwrap();
        stream
            .write_all(b"GET /ws/rest/slow/x HTTP/1.1\r\nHost: gw\r\n\r\n")
            .await
            .unwrap();
        wait_until(
            Duration::from_secs(5),
            "request reached upstream",
            || async { node.requests_in_flight() == 1 },
        )
        .await;
        drop(stream);
        settles(&node).await;
    }
    wait_until(
        Duration::from_secs(5),
        "upstream connections closed",
        || async { slow.open_connections() == 0 },
    )
    .await;
    wait_until(
        Duration::from_secs(5),
        "client connections closed",
        || async { node.connections_open() == 0 },
    )
    .await;
}
