//! The node as a whole: health endpoints, snapshot apply rules, forwarding headers, HTTP/2,
//! TLS with SNI, WebSocket, panic isolation, active health checks, metrics, graceful stop.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway::ApplyOutcome;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioExecutor;
use testkit::{Behavior, Client, MockUpstream, SnapshotBuilder, api, read_all, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{PANIC_PATH, settles, start, start_empty, url};

#[tokio::test]
async fn health_endpoints_and_snapshot_rules() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let node = start_empty().await;
    let client = Client::new();
    assert_eq!(
        client
            .get(&url(&node, "/_admin/readiness"))
            .await
            .unwrap()
            .status,
        503
    );
    assert_eq!(
        client
            .get(&url(&node, "/_admin/liveness"))
            .await
            .unwrap()
            .status,
        200
    );
    let response = client.get(&url(&node, "/ws/rest/a/x")).await.unwrap();
    assert_eq!(response.status, 503);

    let v2 = SnapshotBuilder::new(2).api("a", "a", &[upstream.url()]);
    assert_eq!(
        node.apply_snapshot(v2.build()),
        Ok(ApplyOutcome::Applied { generation: 2 })
    );
    assert_eq!(
        client
            .get(&url(&node, "/_admin/readiness"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        client
            .get(&url(&node, "/ws/rest/a/x"))
            .await
            .unwrap()
            .status,
        200
    );

    // Older or equal generations are ignored; the same generation with other content refused.
    let v1 = SnapshotBuilder::new(1)
        .api("b", "b", &[upstream.url()])
        .build();
    assert_eq!(
        node.apply_snapshot(v1),
        Ok(ApplyOutcome::Ignored {
            offered: 1,
            current: 2
        })
    );
    assert_eq!(
        node.apply_snapshot(v2.build()),
        Ok(ApplyOutcome::Ignored {
            offered: 2,
            current: 2
        })
    );
    let conflicting = SnapshotBuilder::new(2)
        .api("b", "b", &[upstream.url()])
        .build();
    assert!(node.apply_snapshot(conflicting).is_err());

    // Invalid snapshots are refused whole; the old one keeps serving.
    let mut tampered = SnapshotBuilder::new(3)
        .api("c", "c", &[upstream.url()])
        .build();
    tampered.config.apis[0].base_path = "other".into();
    assert!(node.apply_snapshot(tampered).is_err());
    let invalid = SnapshotBuilder::new(4)
        .api("ok", "ok", &[upstream.url()])
        .api("bad", "bad path", &[upstream.url()])
        .build();
    assert!(node.apply_snapshot(invalid).is_err());
    assert!(node.apply_snapshot_json(b"{not json").is_err());
    assert_eq!(
        client
            .get(&url(&node, "/ws/rest/a/x"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        client
            .get(&url(&node, "/ws/rest/ok/x"))
            .await
            .unwrap()
            .status,
        404
    );

    let status = client
        .get(&url(&node, "/_admin/status"))
        .await
        .unwrap()
        .json();
    assert_eq!(status["generation"], 2);
    assert_eq!(status["api_count"], 1);
    assert_eq!(status["ready"], true);
    assert!(
        status["last_reload_error"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON"),
        "{status}"
    );

    let admin = format!("http://{}/metrics", node.admin_addr().unwrap());
    let metrics = client.get(&admin).await.unwrap().text();
    assert!(
        metrics.contains("switchyard_config_generation 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchyard_config_reload_failures_total 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "switchyard_requests_total{api=\"a\",environment=\"Production\",status=\"2xx\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchyard_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test]
async fn forwarding_headers() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let node = start(
        SnapshotBuilder::new(1)
            .api("a", "a", &[upstream.url()])
            .build(),
    )
    .await;
    let client = Client::new();
    let req = Request::get(url(&node, "/ws/rest/a/x"))
        .header("host", "gw.example.com:8077")
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic eA==")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = client.send(req).await.unwrap();
    assert_eq!(response.status, 200);
    let echo = response.json();
    let h = &echo["headers"];
    assert_eq!(h["x-forwarded-for"][0], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-real-ip"][0], "127.0.0.1");
    assert_eq!(h["x-forwarded-host"][0], "gw.example.com:8077");
    assert_eq!(
        h["x-forwarded-port"][0],
        node.http_addr().port().to_string()
    );
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["host"][0], upstream.addr().to_string());
    for gone in ["x-private", "keep-alive", "proxy-authorization"] {
        assert!(h[gone].is_null(), "{gone} forwarded: {echo}");
    }
    let traceparent = h["traceparent"][0].as_str().unwrap();
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{traceparent}"
    );
    assert!(!traceparent.contains("00f067aa0ba902b7"));
    let generated = h["x-request-id"][0].as_str().unwrap();
    assert_eq!(generated.len(), 32);
    assert!(
        generated.bytes().all(|b| b.is_ascii_hexdigit()),
        "{generated}"
    );
    assert_eq!(response.headers["x-request-id"], generated);

    // Kept when the client sends one; X-Forwarded-Proto kept when present.
    let req = Request::get(url(&node, "/ws/rest/a/x"))
        .header("x-request-id", "client-id-1")
        .header("x-forwarded-proto", "https")
        .body(Full::<Bytes>::default())
        .unwrap();
    let echo = client.send(req).await.unwrap().json();
    assert_eq!(echo["headers"]["x-request-id"][0], "client-id-1");
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");
    assert!(
        echo["headers"]["traceparent"][0]
            .as_str()
            .unwrap()
            .starts_with("00-")
    );
}

#[tokio::test]
async fn http2_both_sides() {
    let h1 = MockUpstream::start(Behavior::Echo).await;
    let h2 = MockUpstream::start_h2(Behavior::Echo).await;
    let h2_url = format!("h2c://{}", h2.addr());
    let node = start(
        SnapshotBuilder::new(1)
            .api("one", "one", &[h1.url()])
            .api("two", "two", &[h2_url])
            .build(),
    )
    .await;
    let client = Client::h2c();
    for (path, version) in [
        ("/ws/rest/one/x", "HTTP/1.1"),
        ("/ws/rest/two/x", "HTTP/2.0"),
    ] {
        let response = client.get(&url(&node, path)).await.unwrap();
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.json()["version"], version, "{path}");
        // The upstream's fields and this hop's request id reach an HTTP/2 client too (the
        // node's own HTTP/1.1 client keeps them as lines until hyper's server needs a map).
        assert_eq!(
            response.headers["content-type"], "application/json",
            "{path}"
        );
        assert!(response.headers.contains_key("x-request-id"), "{path}");
        assert!(!response.headers.contains_key("connection"), "{path}");
    }
    // Concurrent streams on one connection.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = client.clone();
        let target = url(&node, &format!("/ws/rest/two/{i}"));
        tasks.push(tokio::spawn(async move {
            client.get(&target).await.unwrap().status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    settles(&node).await;
}

fn self_signed(name: &str) -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (cert.cert.pem(), cert.key_pair.serialize_pem())
}

#[tokio::test]
async fn https_with_sni_and_alpn() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let (cert_a, key_a) = self_signed("a.example");
    let (cert_b, key_b) = self_signed("b.example");
    let snapshot = SnapshotBuilder::new(1)
        .api("a", "a", &[upstream.url()])
        .with(|c| {
            for (name, cert, key) in [
                ("a.example", &cert_a, &key_a),
                ("b.example", &cert_b, &key_b),
            ] {
                c.certificates.push(protocol::TlsCertificate {
                    server_names: vec![name.into()],
                    cert_pem: cert.clone(),
                    key_pem: key.clone(),
                });
            }
        })
        .build();
    let mut config = gateway::StartOptions::new("127.0.0.1:0".parse().unwrap());
    config.tls_listen = Some("127.0.0.1:0".parse().unwrap());
    let node = gateway::Gateway::start(config).await.unwrap();
    node.apply_snapshot(snapshot).unwrap();
    let https = node.https_addr().unwrap();

    for (name, cert, alpn) in [
        ("a.example", &cert_a, "h2"),
        ("b.example", &cert_b, "http/1.1"),
    ] {
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::pem::PemObject;
        roots
            .add(rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![alpn.as_bytes().to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        let tcp = tokio::net::TcpStream::connect(https).await.unwrap();
        let server_name = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
        // The handshake succeeds only if the certificate for this SNI name was chosen.
        let stream = connector.connect(server_name, tcp).await.unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(alpn.as_bytes()));
        let io = hyper_util::rt::TokioIo::new(stream);
        let req = Request::get(format!("https://{name}/ws/rest/a/x"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let response = if alpn == "h2" {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            sender.send_request(req).await.unwrap()
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let mut req = req;
            req.headers_mut()
                .insert("host", http::HeaderValue::from_static("b.example"));
            sender.send_request(req).await.unwrap()
        };
        assert_eq!(response.status(), 200, "{name}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");
    }
}

#[tokio::test]
async fn websocket_pass_through() {
    let upstream = MockUpstream::start(Behavior::WebSocketEcho).await;
    let node = start(
        SnapshotBuilder::new(1)
            .api("ws", "ws", &[upstream.url()])
            .build(),
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(node.http_addr())
        .await
        .unwrap();
    stream
        .write_all(
            b"GET /ws/rest/ws/chat HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_all(&mut stream, Duration::from_millis(500)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    stream.write_all(b"\x81\x05hello").await.unwrap();
    let mut echoed = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"\x81\x05hello");
    drop(stream);
    settles(&node).await;
}

#[tokio::test]
async fn panic_affects_only_its_request() {
    let upstream = MockUpstream::start(Behavior::Echo).await;
    let node = start(
        SnapshotBuilder::new(1)
            .api("a", "a", &[upstream.url()])
            .build(),
    )
    .await;
    let client = Client::new();
    let other = Client::new();
    assert_eq!(
        client
            .get(&url(&node, "/ws/rest/a/1"))
            .await
            .unwrap()
            .status,
        200
    );
    let response = client.get(&url(&node, PANIC_PATH)).await.unwrap();
    assert_eq!(response.status, 500);
    assert_eq!(response.json()["error"]["code"], "INTERNAL_ERROR");
    assert_eq!(
        client
            .get(&url(&node, "/ws/rest/a/2"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        other.get(&url(&node, "/ws/rest/a/3")).await.unwrap().status,
        200
    );
    assert!(node.metrics_text().contains("switchyard_panics_total 1"));
    settles(&node).await;
}

#[tokio::test]
async fn active_health_checks_steer_traffic() {
    let healthy = MockUpstream::start(Behavior::Echo).await;
    let sick = MockUpstream::start(Behavior::Status(500)).await;
    let mut a = api("a", "a", &[healthy.url(), sick.url()]);
    a.health_check_url = Some("/health".into());
    let node = start(
        SnapshotBuilder::new(1)
            .push_api(a)
            .with(|c| c.gateway.health.check_interval_ms = 100)
            .build(),
    )
    .await;
    wait_until(
        Duration::from_secs(5),
        "the sick target was checked",
        || async { sick.requests() >= 1 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = sick.requests();
    let client = Client::new();
    for _ in 0..6 {
        assert_eq!(
            client
                .get(&url(&node, "/ws/rest/a/x"))
                .await
                .unwrap()
                .status,
            200
        );
    }
    // Only health checks (at most a few) reached the sick target, no traffic.
    assert!(
        sick.requests() - before <= 2,
        "traffic reached a target marked unhealthy"
    );
}

#[tokio::test]
async fn graceful_stop_drains() {
    let slow = MockUpstream::start(Behavior::Slow(Duration::from_millis(700))).await;
    let node = Arc::new(
        start(
            SnapshotBuilder::new(1)
                .api("slow", "slow", &[slow.url()])
                .with(|c| c.gateway.shutdown_delay_ms = 400)
                .build(),
        )
        .await,
    );
    let client = Client::new();
    let in_flight = {
        let (client, target) = (client.clone(), url(&node, "/ws/rest/slow/x"));
        tokio::spawn(async move { client.get(&target).await.unwrap().status })
    };
    wait_until(Duration::from_secs(5), "request in flight", || async {
        node.requests_in_flight() == 1
    })
    .await;
    let stopper = {
        let node = node.clone();
        tokio::spawn(async move { node.shutdown().await })
    };
    wait_until(Duration::from_secs(2), "readiness 503", || async {
        Client::new()
            .get(&url(&node, "/_admin/readiness"))
            .await
            .is_ok_and(|r| r.status == 503)
    })
    .await;
    assert_eq!(in_flight.await.unwrap(), 200);
    assert!(stopper.await.unwrap(), "drained in time");
    assert!(
        tokio::net::TcpStream::connect(node.http_addr())
            .await
            .is_err()
    );
}
