//! Routing: hosts, environment paths by API type, base paths, longest prefix, custom paths,
//! percent-encoding, trailing slashes, dot segments.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use protocol::{Deployment, Environment, EnvironmentPaths};
use testkit::{Behavior, Client, MockUpstream, SnapshotBuilder, api};

use crate::start;

#[tokio::test]
async fn routing_table() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let base = upstream.url();
    let mut custom = api("custom", "unused", &[format!("{base}/c")]);
    custom.deployments[0].custom_path = Some("custom/x".into());
    let mut soap = api("soap", "orders", &[format!("{base}/s")]);
    soap.api_type = protocol::ApiType::Soap;
    let snapshot = SnapshotBuilder::new(1)
        .with(|c| {
            c.gateway.hosts = vec!["gw.example.com".into(), "localhost".into()];
            c.environments.push(Environment {
                id: "env-test".into(),
                name: "Test".into(),
                paths: EnvironmentPaths {
                    rest: "test/rest".into(),
                    soap: "test/soap".into(),
                    soap12: "test/soap12".into(),
                    odata: "test/odata".into(),
                },
            });
        })
        .push_api({
            let mut orders = api("orders", "orders", &[format!("{base}/a")]);
            orders.deployments.push(Deployment {
                environment_id: "env-test".into(),
                custom_path: None,
            });
            orders
        })
        .api("orders-v2", "orders/v2", &[format!("{base}/b/")])
        .api("root-target", "root", std::slice::from_ref(&base))
        .push_api(custom)
        .push_api(soap)
        .build();
    let node = start(snapshot).await;
    let client = Client::new();

    // (host, path, expected status, expected upstream path and query)
    let cases: &[(&str, &str, u16, Option<&str>)] = &[
        (
            "gw.example.com",
            "/ws/rest/orders/items/7?x=1&y=%20",
            200,
            Some("/a/items/7?x=1&y=%20"),
        ),
        ("gw.example.com", "/ws/rest/orders", 200, Some("/a")),
        ("gw.example.com", "/ws/rest/orders/", 200, Some("/a/")),
        ("gw.example.com", "/ws/rest/orders/v2", 200, Some("/b")),
        ("gw.example.com", "/ws/rest/orders/v2/x", 200, Some("/b/x")),
        (
            "gw.example.com",
            "/ws/rest/orders/v3/x",
            200,
            Some("/a/v3/x"),
        ),
        ("gw.example.com", "/ws/rest/ordersX", 404, None),
        ("gw.example.com", "/ws/rest/Orders", 404, None),
        ("gw.example.com", "/ws/rest/%6Frders/1", 200, Some("/a/1")),
        (
            "gw.example.com",
            "/ws/rest/orders/a%2Fb",
            200,
            Some("/a/a%2Fb"),
        ),
        ("gw.example.com", "/test/rest/orders/1", 200, Some("/a/1")),
        (
            "gw.example.com",
            "/test/rest/orders/v2/1",
            200,
            Some("/a/v2/1"),
        ),
        ("gw.example.com", "/ws/soap/orders/op", 200, Some("/s/op")),
        ("gw.example.com", "/ws/rest/root", 200, Some("/")),
        ("gw.example.com", "/ws/rest/root/x/", 200, Some("/x/")),
        ("gw.example.com", "/custom/x/y", 200, Some("/c/y")),
        ("gw.example.com", "/ws/rest/custom/x", 404, None),
        ("gw.example.com", "/ws//rest/orders", 404, None),
        ("gw.example.com", "/ws/rest/orders/../x", 400, None),
        ("gw.example.com", "/ws/rest/orders/%2e%2e/x", 400, None),
        (
            "GW.Example.COM:8443",
            "/ws/rest/orders/1",
            200,
            Some("/a/1"),
        ),
        ("other.example.com", "/ws/rest/orders/1", 404, None),
        ("gw.example.com", "/", 404, None),
    ];
    for (host, path, status, upstream_path) in cases {
        let req = Request::get(format!("http://{}{}", node.http_addr(), path))
            .header("host", *host)
            .body(Full::<Bytes>::default())
            .unwrap();
        let response = client.send(req).await.unwrap();
        assert_eq!(
            response.status,
            *status,
            "{host} {path}: {}",
            response.text()
        );
        match upstream_path {
            Some(expected) => {
                let echo = response.json();
                let mut got = echo["path"].as_str().unwrap().to_string();
                if let Some(q) = echo["query"].as_str() {
                    got = format!("{got}?{q}");
                }
                assert_eq!(got, *expected, "{host} {path}");
            }
            None if *status == 404 => {
                assert_eq!(
                    response.json()["error"]["code"],
                    "ROUTE_NOT_FOUND",
                    "{path}"
                );
            }
            None => {}
        }
    }
}

#[tokio::test]
async fn conflicting_routes_are_refused_with_both_names() {
    let node = crate::start_empty().await;
    // env `ws/rest` + base `a/b` and a custom path `ws/rest/a/b` resolve to the same prefix.
    let mut second = api("second", "zzz", &["http://127.0.0.1:1".into()]);
    second.deployments[0].custom_path = Some("ws/rest/a/b".into());
    let snapshot = SnapshotBuilder::new(1)
        .api("first", "a/b", &["http://127.0.0.1:1".into()])
        .push_api(second)
        .build();
    let error = node.apply_snapshot(snapshot).unwrap_err().to_string();
    assert!(
        error.contains("first") && error.contains("second"),
        "{error}"
    );
}

/// A Public URL `http://[::1]:port` compiles to the host `[::1]` (protocol::compile); the
/// gateway accepts it and serves requests naming it, with or without the port.
#[tokio::test]
async fn bracketed_ipv6_hosts_are_served() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let snapshot = SnapshotBuilder::new(1)
        .with(|c| c.gateway.hosts = vec!["[::1]".into()])
        .api("orders", "orders", &[upstream.url()])
        .build();
    let node = start(snapshot).await;
    let client = Client::new();
    for (host, status) in [("[::1]:8080", 200), ("[::1]", 200), ("[::2]:8080", 404)] {
        let req = Request::get(format!("http://{}/ws/rest/orders/1", node.http_addr()))
            .header("host", host)
            .body(Full::<Bytes>::default())
            .unwrap();
        let response = client.send(req).await.unwrap();
        assert_eq!(response.status, status, "{host}: {}", response.text());
    }
    let bad = SnapshotBuilder::new(2)
        .with(|c| c.gateway.hosts = vec!["[not-an-address]".into()])
        .build();
    assert!(node.apply_snapshot(bad).is_err());
}

/// SPEC §7: after a migration the source gateway answers a moved environment's URLs with
/// `308` to the same path and query on the destination until the grace period ends, then
/// 404; routes still deployed here win over a redirect, and other hosts get no redirect.
#[tokio::test]
async fn moved_environment_redirects_until_its_grace_period_ends() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let base = upstream.url();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let snapshot = SnapshotBuilder::new(1)
        .with(|c| {
            c.gateway.hosts = vec!["gw.example.com".into()];
            c.redirects = vec![
                protocol::EnvironmentRedirect {
                    paths: vec!["moved/rest".into(), "moved/soap".into()],
                    location: "https://dest.example.com:8443/".into(),
                    until_ms: now_ms + 600_000,
                },
                protocol::EnvironmentRedirect {
                    paths: vec!["expired/rest".into()],
                    location: "https://dest.example.com".into(),
                    until_ms: now_ms - 1,
                },
            ];
        })
        .api("orders", "orders", std::slice::from_ref(&base))
        .build();
    let node = start(snapshot).await;
    let client = Client::new();
    // (host, path, status, Location)
    let cases: &[(&str, &str, u16, Option<&str>)] = &[
        (
            "gw.example.com",
            "/moved/rest/orders/7?x=1&y=%20",
            308,
            Some("https://dest.example.com:8443/moved/rest/orders/7?x=1&y=%20"),
        ),
        (
            "gw.example.com",
            "/moved/soap",
            308,
            Some("https://dest.example.com:8443/moved/soap"),
        ),
        ("gw.example.com", "/movedx/rest/orders", 404, None),
        ("gw.example.com", "/expired/rest/orders", 404, None),
        ("other.example.com", "/moved/rest/orders", 404, None),
        ("gw.example.com", "/ws/rest/orders/1", 200, None),
    ];
    for (host, path, status, location) in cases {
        let req = Request::get(format!("http://{}{}", node.http_addr(), path))
            .header("host", *host)
            .body(Full::<Bytes>::default())
            .unwrap();
        let response = client.send(req).await.unwrap();
        assert_eq!(
            response.status,
            *status,
            "{host} {path}: {}",
            response.text()
        );
        assert_eq!(
            response
                .headers
                .get("location")
                .map(|v| v.to_str().unwrap()),
            *location,
            "{host} {path}"
        );
        if *status == 308 {
            assert_eq!(response.json()["error"]["code"], "ENVIRONMENT_MOVED");
        }
    }
}
