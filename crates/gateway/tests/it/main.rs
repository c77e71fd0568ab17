//! Integration tests of the gateway node through real sockets: one test binary, one module per
//! feature.

mod client_h1;
mod faults;
mod limits;
mod node;
mod retries;
mod routing;
mod slow_body;
mod smuggling;
mod swap;
mod upstream_h1;

use std::time::Duration;

use gateway::{Clock, Gateway, GatewayHandle, ManualClock, StartOptions};
use protocol::Snapshot;

/// The path that panics inside the handler (test hook).
pub const PANIC_PATH: &str = "/__panic";

/// Starts a node on port 0 (traffic and admin) and applies `snapshot`.
pub async fn start(snapshot: Snapshot) -> GatewayHandle {
    let handle = start_empty().await;
    handle.apply_snapshot(snapshot).expect("snapshot applies");
    handle
}

pub async fn start_empty() -> GatewayHandle {
    start_options(options(Clock::real())).await
}

/// Like [`start`], with a manual clock for ejections that the test steps.
pub async fn start_with_manual_clock(snapshot: Snapshot) -> (GatewayHandle, ManualClock) {
    let (clock, hand) = Clock::manual();
    let handle = start_options(options(clock)).await;
    handle.apply_snapshot(snapshot).expect("snapshot applies");
    (handle, hand)
}

fn options(clock: Clock) -> StartOptions {
    let mut options = StartOptions::new("127.0.0.1:0".parse().unwrap());
    options.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    options.node_name = "test-node".into();
    options.panic_path = Some(PANIC_PATH.into());
    options.clock = clock;
    options
}

async fn start_options(options: StartOptions) -> GatewayHandle {
    Gateway::start(options).await.expect("gateway starts")
}

pub fn url(handle: &GatewayHandle, path: &str) -> String {
    format!("http://{}{}", handle.http_addr(), path)
}

/// Waits until the node has no request in flight.
pub async fn settles(handle: &GatewayHandle) {
    testkit::wait_until(Duration::from_secs(5), "no request in flight", || async {
        handle.requests_in_flight() == 0
    })
    .await;
}
