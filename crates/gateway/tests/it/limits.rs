//! Safe limits (SPEC §9) and execution settings (SPEC §5), each with its status code, on a
//! real socket.

use std::time::{Duration, Instant};

use protocol::ExecutionSettings;
use testkit::{
    Behavior, Blackhole, Client, MockUpstream, SnapshotBuilder, api, raw_exchange, statuses,
};

use crate::{settles, start, url};

const IDLE: Duration = Duration::from_millis(1500);

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: gw\r\n{extra}\r\n").into_bytes()
}

#[tokio::test]
async fn head_limits_have_their_status_codes() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let node = start(
        SnapshotBuilder::new(1)
            .api("a", "a", &[upstream.url()])
            .build(),
    )
    .await;
    let addr = node.http_addr();
    let long_path = format!("/ws/rest/a/{}", "x".repeat(8 * 1024));
    let long_header = format!("X-Big: {}\r\n", "y".repeat(8 * 1024));
    let many_headers: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big_total: String = (0..5)
        .map(|i| format!("X-T{i}: {}\r\n", "z".repeat(7 * 1024)))
        .collect();
    let at_limit: String = (0..90).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("request line over 8 KiB", get(&long_path, ""), 414),
        (
            "request line of 100 KiB",
            get(&format!("/{}", "x".repeat(100 * 1024)), ""),
            414,
        ),
        (
            "one header over 8 KiB",
            get("/ws/rest/a/1", &long_header),
            431,
        ),
        ("101 headers", get("/ws/rest/a/1", &many_headers), 431),
        ("headers over 32 KiB", get("/ws/rest/a/1", &big_total), 431),
        ("91 headers pass", get("/ws/rest/a/1", &at_limit), 200),
    ];
    for (name, request, status) in cases {
        let before = upstream.requests();
        let raw = raw_exchange(addr, &request, IDLE).await;
        assert_eq!(
            statuses(&raw).first().copied(),
            Some(status),
            "{name}: {raw:.300}"
        );
        let forwarded = upstream.requests() - before;
        assert_eq!(forwarded, usize::from(status == 200), "{name}");
        if status != 200 {
            assert!(
                raw.to_ascii_lowercase().contains("connection: close"),
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn body_limit_is_413() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let mut small = api("small", "small", &[upstream.url()]);
    small.max_body_bytes = Some(1000);
    let node = start(SnapshotBuilder::new(1).push_api(small).build()).await;
    let addr = node.http_addr();

    let declared = format!(
        "POST /ws/rest/small/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 1001\r\n\r\n{}",
        "a".repeat(1001)
    );
    let raw = raw_exchange(addr, declared.as_bytes(), IDLE).await;
    assert_eq!(statuses(&raw), [413], "{raw}");
    assert_eq!(upstream.requests(), 0);

    let chunk = "b".repeat(600);
    let chunked = format!(
        "POST /ws/rest/small/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let raw = raw_exchange(addr, chunked.as_bytes(), IDLE).await;
    assert_eq!(statuses(&raw), [413], "{raw}");

    let fits = format!(
        "POST /ws/rest/small/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n\r\n{}",
        "a".repeat(1000)
    );
    let raw = raw_exchange(addr, fits.as_bytes(), Duration::from_millis(500)).await;
    assert_eq!(statuses(&raw), [200], "{raw:.200}");
    settles(&node).await;
}

#[tokio::test]
async fn slow_head_is_408() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let snapshot = SnapshotBuilder::new(1)
        .api("a", "a", &[upstream.url()])
        .with(|c| c.gateway.limits.header_read_timeout_ms = 300)
        .build();
    let node = start(snapshot).await;
    let started = Instant::now();
    let raw = raw_exchange(
        node.http_addr(),
        b"GET /ws/rest/a/1 HTTP/1.1\r\nHost: gw\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(statuses(&raw), [408], "{raw}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(upstream.requests(), 0);
    // Nothing at all sent: also 408 after the timeout.
    let raw = raw_exchange(node.http_addr(), b"", Duration::from_secs(3)).await;
    assert_eq!(statuses(&raw), [408], "{raw}");
}

fn exec(edit: impl FnOnce(&mut ExecutionSettings)) -> Option<ExecutionSettings> {
    let mut settings = ExecutionSettings::default();
    edit(&mut settings);
    Some(settings)
}

#[tokio::test]
async fn concurrency_limit_is_503_with_retry_after() {
    let upstream = MockUpstream::start(Behavior::Slow(Duration::from_millis(600))).await;
    let mut limited = api("limited", "limited", &[upstream.url()]);
    limited.execution = exec(|e| e.max_concurrency_per_node = 2);
    let node = start(SnapshotBuilder::new(1).push_api(limited).build()).await;
    let client = Client::new();
    let target = url(&node, "/ws/rest/limited/x");
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (client, target) = (client.clone(), target.clone());
        tasks.push(tokio::spawn(
            async move { client.get(&target).await.unwrap() },
        ));
    }
    let mut ok = 0;
    let mut refused = 0;
    for task in tasks {
        let response = task.await.unwrap();
        match response.status {
            200 => ok += 1,
            503 => {
                refused += 1;
                assert_eq!(response.headers["retry-after"], "1");
                assert_eq!(response.json()["error"]["code"], "CONCURRENCY_LIMIT");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, refused), (2, 3));
    settles(&node).await;
    // The slots are free again.
    assert_eq!(client.get(&target).await.unwrap().status, 200);
}

#[tokio::test]
async fn timeouts_are_504() {
    let hang = MockUpstream::start(Behavior::Hang).await;
    let blackhole = Blackhole::start().await;
    let mut slow = api("slow", "slow", &[hang.url()]);
    slow.execution = exec(|e| {
        e.execution_timeout_ms = 300;
        e.retry_attempts = 0;
    });
    let mut unreachable = api("unreachable", "unreachable", &[blackhole.url()]);
    unreachable.execution = exec(|e| {
        e.connect_timeout_ms = 200;
        e.retry_attempts = 0;
    });
    let node = start(
        SnapshotBuilder::new(1)
            .push_api(slow)
            .push_api(unreachable)
            .build(),
    )
    .await;
    let client = Client::new();

    let started = Instant::now();
    let response = client.get(&url(&node, "/ws/rest/slow/x")).await.unwrap();
    assert_eq!(response.status, 504);
    assert_eq!(response.json()["error"]["code"], "UPSTREAM_TIMEOUT");
    assert!(started.elapsed() < Duration::from_secs(2));

    let started = Instant::now();
    let response = client
        .get(&url(&node, "/ws/rest/unreachable/x"))
        .await
        .unwrap();
    assert_eq!(response.status, 504, "{}", response.text());
    assert_eq!(response.json()["error"]["code"], "UPSTREAM_CONNECT_TIMEOUT");
    assert!(started.elapsed() < Duration::from_secs(2));
    settles(&node).await;
}
