//! Request-smuggling vectors on a real socket: each gets its status, the connection closes
//! after a refusal, and the upstream sees at most the one request the client sent, never the
//! smuggled one.

use std::time::Duration;

use testkit::{Behavior, MockUpstream, SnapshotBuilder, raw_exchange, statuses};

use crate::start;

const SMUGGLED: &str = "GET /ws/rest/a/SMUGGLED HTTP/1.1\r\nHost: gw\r\n\r\n";

/// (name, request bytes, expected first status, requests the upstream sees (at most, when refused))
fn vectors() -> Vec<(&'static str, String, u16, usize)> {
    let post = "POST /ws/rest/a/x HTTP/1.1\r\nHost: gw\r\n";
    vec![
        (
            "CL.TE",
            format!("{post}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
            400,
            0,
        ),
        (
            "TE.CL",
            format!("{post}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n{SMUGGLED}\r\n0\r\n\r\n"),
            400,
            0,
        ),
        (
            "TE: chunked, chunked",
            format!("{post}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
            400,
            0,
        ),
        ("TE: gzip", format!("{post}Transfer-Encoding: gzip\r\n\r\n{SMUGGLED}"), 400, 0),
        ("TE: gzip, chunked", format!("{post}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 400, 0),
        ("TE: identity", format!("{post}Transfer-Encoding: identity\r\n\r\n"), 400, 0),
        ("TE: xchunked", format!("{post}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"), 400, 0),
        (
            "two TE headers",
            format!("{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            400,
            0,
        ),
        (
            "duplicate CL, same value",
            format!("{post}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
            400,
            0,
        ),
        (
            "duplicate CL, different values",
            format!("{post}Content-Length: 5\r\nContent-Length: 50\r\n\r\nhello{SMUGGLED}"),
            400,
            0,
        ),
        ("CL list", format!("{post}Content-Length: 5, 5\r\n\r\nhello"), 400, 0),
        ("signed CL +5", format!("{post}Content-Length: +5\r\n\r\nhello"), 400, 0),
        ("negative CL", format!("{post}Content-Length: -1\r\n\r\n"), 400, 0),
        ("hex CL", format!("{post}Content-Length: 0x5\r\n\r\nhello"), 400, 0),
        (
            "obs-fold",
            "GET /ws/rest/a/x HTTP/1.1\r\nHost: gw\r\nX-Folded: a\r\n b\r\n\r\n".into(),
            400,
            0,
        ),
        (
            "obs-fold of Transfer-Encoding",
            format!("{post}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
            400,
            0,
        ),
        ("bare LF", "GET /ws/rest/a/x HTTP/1.1\nHost: gw\n\n".into(), 400, 0),
        ("bare CR", "GET /ws/rest/a/x HTTP/1.1\r\nHost: gw\rX: 1\r\n\r\n".into(), 400, 0),
        ("NUL in header", "GET /ws/rest/a/x HTTP/1.1\r\nHost: gw\r\nX: a\0b\r\n\r\n".into(), 400, 0),
        ("space before colon", "GET /ws/rest/a/x HTTP/1.1\r\nHost: gw\r\nContent-Length : 5\r\n\r\nhello".into(), 400, 0),
        (
            "oversize chunk size",
            format!("{post}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n"),
            400,
            1,
        ),
        (
            "bare LF in chunk size line",
            format!("{post}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"),
            400,
            1,
        ),
        (
            "chunk longer than its size",
            format!("{post}Transfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n"),
            400,
            1,
        ),
        ("two Host headers", "GET /ws/rest/a/x HTTP/1.1\r\nHost: gw\r\nHost: evil\r\n\r\n".into(), 400, 0),
        ("no Host in HTTP/1.1", "GET /ws/rest/a/x HTTP/1.1\r\n\r\n".into(), 400, 0),
        (
            "absolute form disagrees with Host",
            "GET http://evil/ws/rest/a/x HTTP/1.1\r\nHost: gw\r\n\r\n".into(),
            400,
            0,
        ),
        (
            "absolute form agrees with Host",
            "GET http://gw/ws/rest/a/x HTTP/1.1\r\nHost: gw\r\n\r\n".into(),
            200,
            1,
        ),
        ("HTTP/1.0 with TE", "POST /ws/rest/a/x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(), 400, 0),
        ("CONNECT", "CONNECT gw:443 HTTP/1.1\r\nHost: gw:443\r\n\r\n".into(), 405, 0),
        (
            "valid chunked body",
            format!("{post}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            200,
            1,
        ),
        (
            "pipelined valid requests",
            "GET /ws/rest/a/1 HTTP/1.1\r\nHost: gw\r\n\r\nGET /ws/rest/a/2 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n".into(),
            200,
            2,
        ),
    ]
}

#[tokio::test]
async fn smuggling_vectors() {
    let mut report = Vec::new();
    for (name, request, status, upstream_sees) in vectors() {
        // A fresh upstream per vector, so counts cannot mix.
        let upstream = MockUpstream::start(Behavior::Echo).await;
        let node = start(
            SnapshotBuilder::new(1)
                .api("a", "a", &[upstream.url()])
                .build(),
        )
        .await;
        let raw = raw_exchange(
            node.http_addr(),
            request.as_bytes(),
            Duration::from_millis(1500),
        )
        .await;
        let got = statuses(&raw);
        report.push(format!(
            "{name}: {got:?}, upstream saw {}",
            upstream.requests()
        ));
        assert_eq!(got.first().copied(), Some(status), "{name}: {raw:.400}");
        if status >= 400 {
            assert_eq!(
                got.len(),
                1,
                "{name}: exactly one response, then close: {raw:.400}"
            );
            assert!(
                raw.to_ascii_lowercase().contains("connection: close"),
                "{name}"
            );
        }
        if status >= 400 {
            // A refused head never reaches the upstream; a body refused mid-stream may have
            // started one request upstream, which is then aborted. Never more.
            assert!(
                upstream.requests() <= upstream_sees,
                "{name}: upstream saw {}",
                upstream.requests()
            );
        } else {
            assert_eq!(upstream.requests(), upstream_sees, "{name}");
        }
        assert!(!raw.contains("SMUGGLED"), "{name}");
        crate::settles(&node).await;
    }
    println!("{}", report.join("\n"));
}
