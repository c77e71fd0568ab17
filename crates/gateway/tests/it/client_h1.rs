//! The node's own HTTP/1.1 server as raw clients see it: pipelining, keep-alive and
//! `Connection: close`, HTTP/1.0 clients, response framing, and the handover to hyper's server
//! for what the fast path does not serve (chunked or late bodies, `Expect`), on one connection.

use std::time::Duration;

use testkit::{Behavior, MockUpstream, SnapshotBuilder};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::upstream_h1::{Reply, Upstream, node_for, read_more};
use crate::{settles, start};

/// One response as a raw client reads it: the head, lower-cased, and the decoded body.
struct Answer {
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::trim)
        })
    }
}

/// A client writing raw bytes and reading responses off one connection.
struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    async fn connect(node: &gateway::GatewayHandle) -> RawClient {
        RawClient {
            stream: TcpStream::connect(node.http_addr()).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn more(&mut self, what: &str) {
        read_more(&mut self.stream, &mut self.buf)
            .await
            .unwrap_or_else(|| panic!("connection ended before {what}"));
    }

    /// Reads a head, interim or final.
    async fn head(&mut self) -> String {
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            self.more("a response head").await;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_lowercase();
        self.buf.drain(..end);
        head
    }

    /// Reads one response; `head_request` when it answers a HEAD request (no body).
    async fn answer(&mut self, head_request: bool) -> Answer {
        let mut answer = Answer {
            head: self.head().await,
            body: Vec::new(),
        };
        if head_request {
            return answer;
        }
        if let Some(length) = answer.header("content-length") {
            let length: usize = length.parse().unwrap();
            while self.buf.len() < length {
                self.more("the whole body").await;
            }
            answer.body = self.buf.drain(..length).collect();
        } else if answer.header("transfer-encoding") == Some("chunked") {
            loop {
                let line_end = loop {
                    if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break at;
                    }
                    self.more("a chunk size").await;
                };
                let size = std::str::from_utf8(&self.buf[..line_end]).unwrap();
                let size = usize::from_str_radix(size, 16).expect("hex chunk size");
                while self.buf.len() < line_end + 2 + size + 2 {
                    self.more("chunk data").await;
                }
                let data = line_end + 2..line_end + 2 + size;
                answer.body.extend_from_slice(&self.buf[data.clone()]);
                assert_eq!(&self.buf[data.end..data.end + 2], b"\r\n");
                self.buf.drain(..data.end + 2);
                if size == 0 {
                    break;
                }
            }
        } else {
            // Delimited by the end of the connection.
            while read_more(&mut self.stream, &mut self.buf).await.is_some() {}
            answer.body = std::mem::take(&mut self.buf);
        }
        answer
    }

    /// Whether the node closes the connection with nothing more sent.
    async fn closed(&mut self) -> bool {
        let read = read_more(&mut self.stream, &mut self.buf);
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the node closes the connection")
            .is_none()
            && self.buf.is_empty()
    }

    /// Sends a request to the echo upstream and answers its JSON echo.
    async fn echo(&mut self, request: &[u8]) -> serde_json::Value {
        self.send(request).await;
        let answer = self.answer(false).await;
        assert!(
            answer.head.starts_with("http/1.1 200 ok\r\n"),
            "{}",
            answer.head
        );
        serde_json::from_slice(&answer.body).unwrap()
    }
}

/// The scripted upstream answers with the request path as the body: chunked when the path ends
/// in `/chunked`, with a Content-Length otherwise (and no body for HEAD).
fn path_as_body(head: &str) -> Reply {
    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    if head.starts_with("head ") && path.ends_with("/chunked") {
        Reply::Send("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".into())
    } else if head.starts_with("head ") {
        Reply::Send(format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            path.len()
        ))
    } else if path.ends_with("/chunked") {
        Reply::Send(format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{path}\r\n0\r\n\r\n",
            path.len()
        ))
    } else {
        Reply::Send(format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}",
            path.len()
        ))
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let upstream = Upstream::start(path_as_body).await;
    let node = node_for(&upstream.url).await;
    let mut client = RawClient::connect(&node).await;
    let mut pipeline = String::new();
    for i in 0..3 {
        pipeline += &format!("GET /ws/rest/a/p{i} HTTP/1.1\r\nHost: gw\r\n\r\n");
    }
    pipeline += "POST /ws/rest/a/post HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello";
    pipeline += "HEAD /ws/rest/a/head HTTP/1.1\r\nHost: gw\r\n\r\n";
    client.send(pipeline.as_bytes()).await;
    for expected in ["/p0", "/p1", "/p2", "/post"] {
        let answer = client.answer(false).await;
        assert!(
            answer.head.starts_with("http/1.1 200 ok\r\n"),
            "{}",
            answer.head
        );
        assert!(answer.header("date").is_some(), "{}", answer.head);
        assert_eq!(answer.header("connection"), None);
        assert_eq!(answer.body, expected.as_bytes());
    }
    // A HEAD answer keeps the upstream's length and has no body.
    let head = client.answer(true).await;
    assert_eq!(head.header("content-length"), Some("5"));
    // Without a length from the upstream, none is made up.
    client
        .send(b"HEAD /ws/rest/a/chunked HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await;
    let head = client.answer(true).await;
    assert!(
        head.head.starts_with("http/1.1 200 ok\r\n"),
        "{}",
        head.head
    );
    assert_eq!(head.header("content-length"), None);
    assert_eq!(head.header("transfer-encoding"), None);

    // An upstream's chunked body reaches an HTTP/1.1 client chunked; the connection stays.
    client
        .send(b"GET /ws/rest/a/chunked HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await;
    let chunked = client.answer(false).await;
    assert_eq!(chunked.header("transfer-encoding"), Some("chunked"));
    assert_eq!(chunked.body, b"/chunked");

    // `Connection: close` is answered, then the connection ends.
    client
        .send(b"GET /ws/rest/a/last HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        .await;
    let last = client.answer(false).await;
    assert_eq!(last.header("connection"), Some("close"));
    assert_eq!(last.body, b"/last");
    assert!(client.closed().await);
    settles(&node).await;
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn http10_clients_get_http10_answers() {
    let upstream = Upstream::start(path_as_body).await;
    let node = node_for(&upstream.url).await;

    // Without keep-alive: answered, then closed.
    let mut once = RawClient::connect(&node).await;
    once.send(b"GET /ws/rest/a/one HTTP/1.0\r\nHost: gw\r\n\r\n")
        .await;
    let answer = once.answer(false).await;
    assert!(
        answer.head.starts_with("http/1.0 200 ok\r\n"),
        "{}",
        answer.head
    );
    assert_eq!(answer.body, b"/one");
    assert!(once.closed().await);

    // With keep-alive the connection stays, until a body of unknown length has to be ended
    // by closing it (HTTP/1.0 has no chunked coding).
    let mut kept = RawClient::connect(&node).await;
    kept.send(b"GET /ws/rest/a/two HTTP/1.0\r\nHost: gw\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let answer = kept.answer(false).await;
    assert_eq!(answer.header("connection"), Some("keep-alive"));
    assert_eq!(answer.body, b"/two");
    kept.send(b"GET /ws/rest/a/chunked HTTP/1.0\r\nHost: gw\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let answer = kept.answer(false).await;
    assert_eq!(answer.header("transfer-encoding"), None);
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(answer.body, b"/chunked");
    settles(&node).await;
}

#[tokio::test]
async fn requests_the_fast_path_hands_over_are_served_on_the_same_connection() {
    let echo = MockUpstream::start(Behavior::Echo).await;
    let node = start(SnapshotBuilder::new(1).api("a", "a", &[echo.url()]).build()).await;
    let mut client = RawClient::connect(&node).await;
    let first = client
        .echo(b"GET /ws/rest/a/first HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await;
    assert_eq!(first["path"], "/first");

    // A body that arrives after its head.
    client
        .send(b"POST /ws/rest/a/late HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\n\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = client.echo(b"body").await;
    assert_eq!(
        (late["path"].as_str(), late["body"].as_str()),
        (Some("/late"), Some("body"))
    );

    // A chunked body.
    let chunked = client
        .echo(b"POST /ws/rest/a/chunked-up HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await;
    assert_eq!(chunked["body"], "hello");

    // `Expect: 100-continue` gets its interim response before the body is sent.
    client
        .send(b"PUT /ws/rest/a/expect HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        .await;
    let interim = client.head().await;
    assert!(
        interim.starts_with("http/1.1 100 continue\r\n"),
        "{interim}"
    );
    let put = client.echo(b"ok").await;
    assert_eq!(put["body"], "ok");

    let after = client
        .echo(b"GET /ws/rest/a/after HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await;
    assert_eq!(after["path"], "/after");
    settles(&node).await;
    assert_eq!(node.connections_open(), 1);
}
