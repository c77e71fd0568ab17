//! Open-loop load generator: sends requests at a fixed total rate over N keep-alive
//! connections and reports latency percentiles measured from each request's *scheduled* send
//! time, so a stalled server is charged for the queueing it causes (no coordinated omission).
//!
//! `loadgen URL RATE_PER_S DURATION_S CONNECTIONS`

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: loadgen URL RATE_PER_S DURATION_S CONNECTIONS");
        std::process::exit(2);
    }
    let url: hyper::Uri = args[1].parse().expect("url");
    let rate: f64 = args[2].parse().expect("rate");
    let duration = Duration::from_secs_f64(args[3].parse().expect("duration"));
    let connections: usize = args[4].parse().expect("connections");
    let addr = format!("{}:{}", url.host().unwrap(), url.port_u16().unwrap_or(80));
    let interval = Duration::from_secs_f64(connections as f64 / rate);
    let start = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let path = url.path_and_query().map_or("/".to_string(), |p| p.to_string());
        let host = addr.clone();
        let addr = addr.clone();
        // Spread the connections' schedules evenly over one interval.
        let offset = interval.mul_f64(c as f64 / connections as f64);
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(&addr).await.expect("connect");
            stream.set_nodelay(true).ok();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let mut latencies = Vec::with_capacity((duration.as_secs_f64() / interval.as_secs_f64()) as usize + 1);
            let mut errors = 0u64;
            let mut i = 0u32;
            loop {
                let scheduled = start + offset + interval * i;
                if scheduled > start + duration {
                    break;
                }
                tokio::time::sleep_until(scheduled.into()).await;
                // Origin form, as browsers and wrk send it.
                let req = Request::get(path.as_str())
                    .header("host", host.as_str())
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                match sender.send_request(req).await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        let _ = response.into_body().collect().await;
                        if ok {
                            latencies.push(scheduled.elapsed().as_micros() as u32);
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
                i += 1;
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "requests={} errors={} rate={:.0}/s p50_us={} p90_us={} p99_us={} p999_us={} max_us={}",
        all.len(),
        errors,
        all.len() as f64 / duration.as_secs_f64(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        all.last().copied().unwrap_or(0)
    );
}
