//! Slow request bodies against one API (issue 8, item 1): an in-process node and echo upstream,
//! N connections that send a complete head with `Content-Length: 100000` and then one body byte
//! per second, and a probe loop of GETs on the same API. Prints what the probes got (status
//! counts, latency) and how the slow connections ended. Bounded by `--seconds`.
//!
//!   cargo run -p gateway --example slowbody -- [--slow 100] [--seconds 15]

use std::time::{Duration, Instant};

use gateway::{Gateway, StartOptions};
use testkit::{Behavior, Client, MockUpstream, SnapshotBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// One slow client: how it ended (status or `None` for a close without an answer) and when.
async fn slow_client(addr: std::net::SocketAddr, until: Instant) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return (None, started.elapsed());
    };
    let head = "POST /ws/rest/slow/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 100000\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return (None, started.elapsed());
    }
    let mut buf = vec![0u8; 4096];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => {
                let status = match read {
                    Ok(n) if n >= 12 => std::str::from_utf8(&buf[9..12]).ok().and_then(|s| s.parse().ok()),
                    _ => None,
                };
                return (status, started.elapsed());
            }
            _ = tick.tick() => {
                if Instant::now() >= until {
                    return (Some(0), started.elapsed());
                }
                let _ = stream.write_all(b"x").await;
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let slow = arg("--slow", 100);
    let seconds = arg("--seconds", 15);
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let node = Gateway::start(StartOptions::new("127.0.0.1:0".parse().unwrap()))
        .await
        .expect("gateway starts");
    node.apply_snapshot(
        SnapshotBuilder::new(1)
            .api("slow", "slow", &[upstream.url()])
            .build(),
    )
    .expect("snapshot applies");
    let addr = node.http_addr();
    let rss_start = rss_kib();
    let until = Instant::now() + Duration::from_secs(seconds);
    let slow_tasks: Vec<_> = (0..slow)
        .map(|_| tokio::spawn(slow_client(addr, until)))
        .collect();
    // Let the slow heads arrive before probing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = Client::new();
    let probe_url = format!("http://{addr}/ws/rest/slow/probe");
    let mut ok = Vec::new();
    let mut other: std::collections::BTreeMap<String, u64> = Default::default();
    let mut rss_peak = rss_start;
    while Instant::now() < until {
        let sent = Instant::now();
        match client.get(&probe_url).await {
            Ok(response) if response.status == 200 => ok.push(sent.elapsed()),
            Ok(response) => *other.entry(response.status.to_string()).or_default() += 1,
            Err(_) => *other.entry("error".into()).or_default() += 1,
        }
        rss_peak = rss_peak.max(rss_kib());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ended: std::collections::BTreeMap<String, u64> = Default::default();
    let mut ended_at = Vec::new();
    for task in slow_tasks {
        let (status, at) = task.await.expect("slow client");
        let key = match status {
            Some(0) => "still sending at the end".to_string(),
            Some(s) => s.to_string(),
            None => "closed without an answer".to_string(),
        };
        if status.is_some_and(|s| s != 0) {
            ended_at.push(at);
        }
        *ended.entry(key).or_default() += 1;
    }
    ok.sort();
    ended_at.sort();
    let probes = ok.len() as u64 + other.values().sum::<u64>();
    println!("slow connections: {slow}, run: {seconds} s");
    println!(
        "probes: {probes}, 200: {} ({:.1} %), others: {other:?}",
        ok.len(),
        100.0 * ok.len() as f64 / probes.max(1) as f64
    );
    println!(
        "probe latency of 200s: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&ok, 0.5),
        percentile(&ok, 0.99),
        percentile(&ok, 1.0)
    );
    println!("slow connections ended: {ended:?}");
    println!(
        "slow connections answered after: min {:?}, max {:?}",
        percentile(&ended_at, 0.0),
        percentile(&ended_at, 1.0)
    );
    println!("RSS: {} KiB at start, {} KiB peak", rss_start, rss_peak);
    node.shutdown().await;
}
