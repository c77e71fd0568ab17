//! Slow request bodies (SPEC §9, issue 8 item 1) on real sockets: clients that trickle a body
//! get 408 and are closed, bounded by the configured pace, while other clients of the same API
//! keep being served; steady uploads are not affected.

use std::time::{Duration, Instant};

use testkit::{Behavior, Client, MockUpstream, SnapshotBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::start;

/// Body timeout (and rate window) of these tests; short so they run in seconds.
const BODY_TIMEOUT: Duration = Duration::from_millis(600);
const SLOW: usize = 100;

fn paced_snapshot(upstream: &MockUpstream) -> protocol::Snapshot {
    SnapshotBuilder::new(1)
        .api("up", "up", &[upstream.url()])
        .with(|c| {
            c.gateway.limits.client_body_timeout_ms = BODY_TIMEOUT.as_millis() as u64;
            c.gateway.limits.min_client_body_rate = 1024;
        })
        .build()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// How a slow client's connection ended.
#[derive(Debug)]
struct Ended {
    response: String,
    /// The node closed the connection after its answer.
    closed: bool,
    after: Duration,
}

/// Sends a head announcing `length` bytes, then one byte every 100 ms until answered.
async fn trickle(addr: std::net::SocketAddr, length: usize, give_up: Duration) -> Ended {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head =
        format!("POST /ws/rest/up/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: {length}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("head");
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    return Ended {
                        response: String::from_utf8_lossy(&response).into_owned(),
                        closed: true,
                        after: started.elapsed(),
                    };
                }
                Ok(n) => response.extend_from_slice(&buf[..n]),
            },
            _ = tick.tick() => {
                if started.elapsed() > give_up {
                    return Ended {
                        response: String::from_utf8_lossy(&response).into_owned(),
                        closed: false,
                        after: started.elapsed(),
                    };
                }
                if response.is_empty() {
                    let _ = stream.write_all(b"x").await;
                }
            }
        }
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_get_408_while_the_api_keeps_serving() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let node = start(paced_snapshot(&upstream)).await;
    let addr = node.http_addr();
    let client = Client::new();
    let probe_url = format!("http://{addr}/ws/rest/up/probe");
    let mut baseline = Vec::new();
    for _ in 0..20 {
        let sent = Instant::now();
        assert_eq!(client.get(&probe_url).await.unwrap().status, 200);
        baseline.push(sent.elapsed());
    }
    let baseline = median(baseline);
    let rss_before = rss_kib();

    // Half stream to the upstream as they arrive (over the 64 KiB read whole first), half are
    // read whole before the upstream is called. All come from 127.0.0.1, so only 32 at a time
    // hold a slot for a body; the rest wait for one.
    let give_up = BODY_TIMEOUT * 10;
    let slow: Vec<_> = (0..SLOW)
        .map(|i| {
            let length = if i % 2 == 0 { 100_000 } else { 5_000 };
            tokio::spawn(trickle(addr, length, give_up))
        })
        .collect();

    let mut probes = Vec::new();
    let mut failures = Vec::new();
    while !slow.iter().all(|t| t.is_finished()) {
        let sent = Instant::now();
        match client.get(&probe_url).await {
            Ok(r) if r.status == 200 => probes.push(sent.elapsed()),
            Ok(r) => failures.push(format!("{} {}", r.status, r.text())),
            Err(e) => failures.push(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ended = Vec::new();
    for task in slow {
        ended.push(task.await.unwrap());
    }

    assert!(failures.is_empty(), "probes failed: {failures:?}");
    assert!(probes.len() >= 10, "only {} probes", probes.len());
    let during = median(probes.clone());
    let worst = probes.iter().max().copied().unwrap_or_default();
    assert!(
        during <= (baseline * 10).max(Duration::from_millis(100)),
        "probe median {during:?} vs {baseline:?} before"
    );
    assert!(worst < Duration::from_secs(2), "slowest probe {worst:?}");

    // The wait for a slot counts toward the first window: every slow client is answered one
    // timeout after its head (plus scheduling on a loaded machine).
    let bound = BODY_TIMEOUT + Duration::from_millis(1500);
    for (i, end) in ended.iter().enumerate() {
        assert!(
            end.response.starts_with("HTTP/1.1 408"),
            "slow client {i}: {end:?}"
        );
        assert!(end.response.contains("REQUEST_TIMEOUT"), "{end:?}");
        assert!(end.closed, "slow client {i} not closed: {end:?}");
        assert!(end.after <= bound, "slow client {i} after {:?}", end.after);
    }

    // Counted by reason, never as an upstream error.
    let metrics = node.metrics_text();
    let counted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("switchyard_client_body_timeouts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted as usize, SLOW, "{metrics}");
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("switchyard_upstream_errors_total{")),
        "{metrics}"
    );
    // The streamed requests' upstream connections were cancelled, not left waiting for bytes.
    testkit::wait_until(
        Duration::from_secs(5),
        "upstream connections of slow requests closed",
        || async { upstream.open_connections() <= 4 },
    )
    .await;
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
}

/// Bodies that keep the pace pass, streamed or read whole, whatever their length.
#[tokio::test]
async fn steady_bodies_pass_the_pace() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let node = start(paced_snapshot(&upstream)).await;
    for (length, chunk) in [(3_000usize, 1_000usize), (100_000, 10_000)] {
        let mut stream = TcpStream::connect(node.http_addr()).await.unwrap();
        let head = format!(
            "POST /ws/rest/up/steady HTTP/1.1\r\nHost: gw\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // Pauses of a third of the timeout between chunks: well above the minimum rate.
        for _ in 0..length / chunk {
            tokio::time::sleep(BODY_TIMEOUT / 3).await;
            stream.write_all(&vec![b'a'; chunk]).await.unwrap();
        }
        let raw = testkit::read_all(&mut stream, Duration::from_secs(5)).await;
        assert!(raw.starts_with("HTTP/1.1 200"), "{length}: {raw:.300}");
    }
}

/// A body that keeps the pace but is still arriving when the execution timeout passes is the
/// client's slowness: 408, and the target is not blamed (no upstream error, no ejection).
#[tokio::test]
async fn a_body_still_arriving_at_the_execution_timeout_is_408() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let mut snapshot = paced_snapshot(&upstream);
    snapshot.config.gateway.execution.execution_timeout_ms = 300;
    snapshot.seal();
    let node = start(snapshot).await;
    let mut stream = TcpStream::connect(node.http_addr()).await.unwrap();
    stream
        .write_all(b"POST /ws/rest/up/big HTTP/1.1\r\nHost: gw\r\nContent-Length: 200000\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if stream.write_all(&[b'a'; 10_000]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await
        {
            raw.push_str(&String::from_utf8_lossy(&buf[..n]));
            break;
        }
    }
    raw.push_str(&testkit::read_all(&mut stream, Duration::from_secs(3)).await);
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw:.300}");
    let metrics = node.metrics_text();
    assert!(
        metrics.contains("switchyard_client_body_timeouts_total{reason=\"too_slow\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("switchyard_upstream_errors_total{"),
        "{metrics}"
    );
}

/// A head whose body never comes is answered 408 after the body timeout.
#[tokio::test]
async fn a_body_that_never_comes_is_408() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let node = start(paced_snapshot(&upstream)).await;
    let started = Instant::now();
    let raw = testkit::raw_exchange(
        node.http_addr(),
        b"PUT /ws/rest/up/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\nab",
        Duration::from_secs(5),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw:.300}");
    assert!(started.elapsed() >= BODY_TIMEOUT, "{:?}", started.elapsed());
    assert!(
        node.metrics_text()
            .contains("switchyard_client_body_timeouts_total{reason=\"no_progress\"} 1"),
        "{}",
        node.metrics_text()
    );
    assert_eq!(upstream.requests(), 0, "the upstream was not called");
}
