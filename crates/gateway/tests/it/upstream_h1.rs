//! The node's own HTTP/1.1 client against scripted upstreams that answer with exact bytes:
//! keep-alive reuse, every body framing, interim and HEAD responses, ambiguous or truncated
//! responses, and idle connections the upstream closed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gateway::GatewayHandle;
use http::Request;
use http_body_util::Full;
use testkit::{Client, SnapshotBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{settles, start, url};

/// What the scripted upstream does with one request.
pub(crate) enum Reply {
    /// Writes these bytes and waits for the next request on the connection.
    Send(String),
    /// Writes these bytes and closes the connection.
    SendAndClose(String),
    /// Writes these bytes, then closes the connection after a pause (an idle timeout).
    SendThenCloseAfter(String, Duration),
}

pub(crate) struct Upstream {
    pub(crate) url: String,
    connections: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    pub(crate) async fn start(respond: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let respond = Arc::new(respond);
        let (c, h) = (connections.clone(), heads.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (respond, heads) = (respond.clone(), h.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Some(head) = read_request(&mut stream, &mut buf).await {
                        heads.lock().unwrap().push(head.clone());
                        match respond(&head) {
                            Reply::Send(bytes) => {
                                if stream.write_all(bytes.as_bytes()).await.is_err() {
                                    return;
                                }
                            }
                            Reply::SendAndClose(bytes) => {
                                let _ = stream.write_all(bytes.as_bytes()).await;
                                return;
                            }
                            Reply::SendThenCloseAfter(bytes, pause) => {
                                let _ = stream.write_all(bytes.as_bytes()).await;
                                tokio::time::sleep(pause).await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        Upstream {
            url,
            connections,
            heads,
        }
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request (head and a Content-Length body) and answers its head, lowercased.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < end + 4 + length {
                read_more(stream, buf).await?;
            }
            buf.drain(..end + 4 + length);
            return Some(head);
        }
        read_more(stream, buf).await?;
    }
}

pub(crate) async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// A node serving API `a` at `/ws/rest/a` with `target` as its only upstream.
pub(crate) async fn node_for(target: &str) -> GatewayHandle {
    start(
        SnapshotBuilder::new(1)
            .api("a", "a", std::slice::from_ref(&target.to_owned()))
            .build(),
    )
    .await
}

fn request(method: http::Method, uri: String, body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

#[tokio::test]
async fn keep_alive_reuses_one_connection_and_sends_the_forwarding_headers() {
    let upstream = Upstream::start(|_| Reply::Send(OK.into())).await;
    let node = node_for(&format!("{}/base", upstream.url)).await;
    let client = Client::new();
    for i in 0..5 {
        let response = client
            .send(
                Request::get(url(&node, &format!("/ws/rest/a/x/{i}?q=1")))
                    .header("connection", "keep-alive, x-private")
                    .header("x-private", "secret")
                    .header("x-forwarded-for", "203.0.113.9")
                    .body(Full::<Bytes>::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "ok");
        assert!(response.headers.contains_key("x-request-id"));
    }
    settles(&node).await;
    assert_eq!(
        upstream.connections(),
        1,
        "one pooled connection for sequential requests"
    );
    let heads = upstream.heads.lock().unwrap().clone();
    let head = &heads[4];
    let upstream_host = upstream.url.trim_start_matches("http://");
    assert!(head.starts_with("get /base/x/4?q=1 http/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("host: {upstream_host}\r\n")),
        "{head}"
    );
    assert!(
        head.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\r\n"),
        "{head}"
    );
    assert!(head.contains("x-forwarded-proto: http\r\n"), "{head}");
    assert!(head.contains("x-real-ip: 127.0.0.1\r\n"), "{head}");
    assert!(head.contains("x-request-id: "), "{head}");
    assert!(head.contains("traceparent: 00-"), "{head}");
    assert!(!head.contains("x-private"), "named in Connection: {head}");
    assert!(!head.contains("connection:"), "{head}");
    assert!(!head.contains("content-length"), "GET without body: {head}");
}

#[tokio::test]
async fn chunked_close_delimited_and_post_bodies() {
    let upstream = Upstream::start(|head| {
        if head.starts_with("get /chunked") {
            Reply::Send(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: keep-alive, x-hop\r\nx-hop: 1\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"
                    .into(),
            )
        } else if head.starts_with("get /until-close") {
            Reply::SendAndClose("HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nbye".into())
        } else {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .unwrap_or("none")
                .trim()
                .to_owned();
            Reply::Send(format!(
                "HTTP/1.1 201 Created\r\ncontent-length: {}\r\n\r\n{length}",
                length.len()
            ))
        }
    })
    .await;
    let node = node_for(&upstream.url).await;
    let client = Client::new();
    let chunked = client.get(&url(&node, "/ws/rest/a/chunked")).await.unwrap();
    assert_eq!(
        (chunked.status, chunked.text().as_str()),
        (200, "hello world")
    );
    assert!(
        !chunked.headers.contains_key("x-hop"),
        "hop-by-hop header forwarded"
    );
    let closed = client
        .get(&url(&node, "/ws/rest/a/until-close"))
        .await
        .unwrap();
    assert_eq!((closed.status, closed.text().as_str()), (200, "bye"));
    // After both, the pooled connection still works.
    let chunked = client.get(&url(&node, "/ws/rest/a/chunked")).await.unwrap();
    assert_eq!(chunked.text(), "hello world");
    let items = || url(&node, "/ws/rest/a/items");
    let post = client
        .send(request(http::Method::POST, items(), b"{\"n\":1}"))
        .await
        .unwrap();
    assert_eq!((post.status, post.text().as_str()), (201, "7"));
    let empty_post = client
        .send(request(http::Method::POST, items(), b""))
        .await
        .unwrap();
    assert_eq!(empty_post.text(), "0", "an empty POST says so");
    settles(&node).await;
}

#[tokio::test]
async fn head_and_interim_responses() {
    let upstream = Upstream::start(|head| {
        if head.starts_with("head ") {
            // A HEAD response announces a length but has no body.
            Reply::Send("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n".into())
        } else {
            Reply::Send(format!(
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n{OK}"
            ))
        }
    })
    .await;
    let node = node_for(&upstream.url).await;
    let client = Client::new();
    let head = client
        .send(request(http::Method::HEAD, url(&node, "/ws/rest/a/x"), b""))
        .await
        .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], "10");
    assert!(head.body.is_empty());
    let interim = client.get(&url(&node, "/ws/rest/a/x")).await.unwrap();
    assert_eq!((interim.status, interim.text().as_str()), (200, "ok"));
    settles(&node).await;
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn ambiguous_or_truncated_responses_never_pass_as_complete() {
    let upstream = Upstream::start(|head| {
        if head.starts_with("get /ambiguous") {
            Reply::SendAndClose(
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
                    .into(),
            )
        } else if head.starts_with("get /two-lengths") {
            Reply::SendAndClose(
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!".into(),
            )
        } else if head.starts_with("get /bad-chunk") {
            Reply::SendAndClose(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
                    .into(),
            )
        } else {
            Reply::SendAndClose("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc".into())
        }
    })
    .await;
    let node = node_for(&upstream.url).await;
    let client = Client::new();
    for path in ["ambiguous", "two-lengths"] {
        let response = client
            .get(&url(&node, &format!("/ws/rest/a/{path}")))
            .await
            .unwrap();
        assert_eq!(response.status, 502, "{path}");
        assert_eq!(
            response.json()["error"]["code"],
            "UPSTREAM_BAD_RESPONSE",
            "{path}"
        );
    }
    // Once the head is sent, a body that breaks off cuts the client connection instead.
    for path in ["bad-chunk", "truncated"] {
        let result = client.get(&url(&node, &format!("/ws/rest/a/{path}"))).await;
        assert!(result.is_err(), "{path}: {result:?}");
    }
    settles(&node).await;
    let metrics = node.metrics_text();
    assert!(metrics.contains("kind=\"bad_response\""), "{metrics}");
}

#[tokio::test]
async fn idle_connections_the_upstream_closed_are_not_reused() {
    let upstream =
        Upstream::start(|_| Reply::SendThenCloseAfter(OK.into(), Duration::from_millis(50))).await;
    let node = node_for(&upstream.url).await;
    let client = Client::new();
    for method in [http::Method::GET, http::Method::POST, http::Method::GET] {
        let response = client
            .send(request(
                method.clone(),
                url(&node, "/ws/rest/a/x"),
                b"payload",
            ))
            .await
            .unwrap();
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "ok"),
            "{method}"
        );
        // Longer than the upstream's idle timeout.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    settles(&node).await;
    assert_eq!(upstream.connections(), 3);
}
