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

use gateway::{Gateway, GatewayConfig, GatewayHandle};
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
    let mut config = GatewayConfig::new("127.0.0.1:0".parse().unwrap());
    config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    config.node_name = "test-node".into();
    config.panic_path = Some(PANIC_PATH.into());
    Gateway::start(config).await.expect("gateway starts")
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
