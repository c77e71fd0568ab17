//! Header rewriting between client and upstream: hop-by-hop removal (both ways), forwarding
//! headers, request ids and W3C trace context.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub use crate::h1::X_REQUEST_ID;
use crate::h1::{KEEP_ALIVE, list_elements, lists_token, write_field};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Hop-by-hop headers of RFC 9110 §7.6.1 plus the legacy ones.
const HOP_BY_HOP: [&HeaderName; 9] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
];

/// Removes hop-by-hop headers and those named in `Connection`. With `keep_upgrade` the
/// `Upgrade` header and a `Connection: upgrade` survive (WebSocket pass-through).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of them: one pass of cheap name comparisons (standard names
    // compare as enum values) avoids nine hash lookups per message.
    let present = headers.keys().any(|name| HOP_BY_HOP.contains(&name));
    if !present {
        if keep_upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        // Collect first: the names borrow the map. Few requests carry extra tokens.
        for name in connection_listed(headers) {
            if !(keep_upgrade && name == header::UPGRADE) {
                headers.remove(&name);
            }
        }
    }
    for name in HOP_BY_HOP {
        if keep_upgrade && *name == header::UPGRADE {
            continue;
        }
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The field names the `Connection` fields of `headers` list (hop-by-hop for this message).
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| list_elements(value.as_bytes()))
        .filter_map(|token| HeaderName::from_bytes(token).ok())
        .collect()
}

/// Whether a request asks for a WebSocket upgrade.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    upgrade
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| lists_token(v.as_bytes(), b"upgrade"))
}

/// Appends the client address to `X-Forwarded-For`.
pub fn append_forwarded_for(headers: &mut HeaderMap, peer_ip: &HeaderValue) {
    let existing: Vec<&[u8]> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if existing.is_empty() {
        headers.insert(X_FORWARDED_FOR.clone(), peer_ip.clone());
        return;
    }
    let mut joined = Vec::with_capacity(existing.iter().map(|v| v.len() + 2).sum::<usize>() + 46);
    for value in existing {
        joined.extend_from_slice(value);
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(peer_ip.as_bytes());
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
}

/// Whether a header is hop-by-hop (RFC 9110 §7.6.1, plus the legacy ones); `name` is lowercase.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|hop| hop.as_str() == name)
}

/// The forwarding headers this hop sets on one request (SPEC §9), computed once and either
/// applied to the header map (hyper's client) or written straight into the request head (the
/// node's own HTTP/1.1 client, which then never changes the map). Both give the same headers.
pub struct Forwarding<'a> {
    /// The `Host` (or HTTP/2 authority) the client asked for: `X-Forwarded-Host`.
    pub host: Option<HeaderValue>,
    pub peer_ip: &'a HeaderValue,
    pub port: &'a HeaderValue,
    /// Whether the client sent a `Connection` header (which may name more hop-by-hop ones).
    pub client_connection: bool,
    /// `X-Forwarded-Proto` to add; `None` when the client sent one, which is kept.
    pub proto: Option<&'static str>,
    pub request_id: &'a HeaderValue,
    /// The `traceparent` sent upstream ([`next_traceparent`]).
    pub traceparent: [u8; TRACEPARENT_LEN],
}

impl Forwarding<'_> {
    /// Rewrites `headers` for hyper's client: hop-by-hop headers out, `Host` out (the client
    /// sets it from the URI), forwarding headers in.
    pub fn apply(&self, headers: &mut HeaderMap, keep_upgrade: bool) {
        strip_hop_by_hop(headers, keep_upgrade);
        headers.remove(header::HOST);
        append_forwarded_for(headers, self.peer_ip);
        if let Some(host) = &self.host {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
        headers.insert(X_FORWARDED_PORT.clone(), self.port.clone());
        if let Some(proto) = self.proto {
            headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
        }
        headers.insert(X_REAL_IP.clone(), self.peer_ip.clone());
        headers.insert(X_REQUEST_ID.clone(), self.request_id.clone());
        if let Ok(traceparent) = HeaderValue::from_bytes(&self.traceparent) {
            headers.insert(TRACEPARENT.clone(), traceparent);
        }
    }

    /// Writes the header lines [`Forwarding::apply`] would leave in the map, except `Host` and
    /// `Content-Length` (the caller writes those): the client's headers without hop-by-hop
    /// ones, those named in `Connection` and those this hop sets, then this hop's.
    pub fn write(&self, out: &mut Vec<u8>, headers: &HeaderMap) {
        // Only requests with a `Connection` header pay for the list of names it gives.
        let listed: Vec<HeaderName> = if self.client_connection {
            connection_listed(headers)
        } else {
            Vec::new()
        };
        let mut forwarded_for: Option<&HeaderValue> = None;
        let mut more_forwarded_for = false;
        for (name, value) in headers {
            let skip = match name.as_str() {
                "host" | "content-length" | "x-forwarded-host" | "x-forwarded-port"
                | "x-real-ip" | "x-request-id" | "traceparent" => true,
                "x-forwarded-for" => {
                    if forwarded_for.is_some() {
                        more_forwarded_for = true;
                    } else {
                        forwarded_for = Some(value);
                    }
                    true
                }
                other => is_hop_by_hop(other) || listed.contains(name),
            };
            if !skip {
                write_field(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
        out.extend_from_slice(b"x-forwarded-for: ");
        if more_forwarded_for {
            for value in headers.get_all(&X_FORWARDED_FOR) {
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b", ");
            }
        } else if let Some(value) = forwarded_for {
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(self.peer_ip.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(host) = &self.host {
            write_field(out, b"x-forwarded-host", host.as_bytes());
        }
        write_field(out, b"x-forwarded-port", self.port.as_bytes());
        if let Some(proto) = self.proto {
            write_field(out, b"x-forwarded-proto", proto.as_bytes());
        }
        write_field(out, b"x-real-ip", self.peer_ip.as_bytes());
        write_field(out, b"x-request-id", self.request_id.as_bytes());
        write_field(out, b"traceparent", &self.traceparent);
    }
}

/// A fast per-thread pseudo-random number (wyrand, seeded from the OS): trace and span ids need
/// to be unique and unpredictable enough to not collide, not to be secret, and a
/// cryptographic generator per request costs more than the rest of the header work.
fn fast_random() -> u64 {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(rand::random());
    }
    STATE.with(|state| {
        let x = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(x);
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

/// Length of a version-00 `traceparent` value.
pub const TRACEPARENT_LEN: usize = 55;

/// Hex digits of a generated request id (128 random bits).
pub const REQUEST_ID_LEN: usize = 32;

/// A new request id: 128 bits from the thread's CSPRNG (`rand::rng()`, ChaCha seeded and
/// periodically reseeded from the OS), so ids cannot be guessed from earlier ones, and no
/// system call per request.
pub fn new_request_id() -> HeaderValue {
    let bits: u128 = rand::Rng::random(&mut rand::rng());
    let mut buf = [0u8; REQUEST_ID_LEN];
    hex_into(&mut buf[..16], (bits >> 64) as u64, 16);
    hex_into(&mut buf[16..], bits as u64, 16);
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn hex_into(out: &mut [u8], mut value: u64, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out[i] = HEX[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// A client-supplied request id is kept when it is short and printable.
pub fn acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 200 && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// The `traceparent` to send upstream: the client's trace id and flags with a new parent id
/// (this hop's span), or a new trace when the header is absent or malformed.
pub fn next_traceparent(incoming: Option<&HeaderValue>) -> [u8; TRACEPARENT_LEN] {
    let mut out = [0u8; TRACEPARENT_LEN];
    let span: u64 = fast_random() | 1;
    match incoming
        .map(HeaderValue::as_bytes)
        .filter(|v| valid_traceparent(v))
    {
        Some(v) => {
            out.copy_from_slice(&v[..TRACEPARENT_LEN]);
            out[0] = b'0';
            out[1] = b'0';
            hex_into(&mut out[36..52], span, 16);
        }
        None => {
            out[..3].copy_from_slice(b"00-");
            hex_into(&mut out[3..19], fast_random(), 16);
            hex_into(&mut out[19..35], fast_random() | 1, 16);
            out[35] = b'-';
            hex_into(&mut out[36..52], span, 16);
            out[52..].copy_from_slice(b"-01");
        }
    }
    out
}

fn valid_traceparent(v: &[u8]) -> bool {
    let hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    v.len() >= 55
        && (v.len() == 55 || v[55] == b'-')
        && v[2] == b'-'
        && v[35] == b'-'
        && v[52] == b'-'
        && hex(&v[..2])
        && &v[..2] != b"ff"
        && hex(&v[3..35])
        && v[3..35].iter().any(|b| *b != b'0')
        && hex(&v[36..52])
        && v[36..52].iter().any(|b| *b != b'0')
        && hex(&v[53..55])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("proxy-authorization", HeaderValue::from_static("x"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn websocket_keeps_upgrade() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(is_websocket_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn forwarded_for_appends() {
        let ip = HeaderValue::from_static("10.0.0.9");
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, &ip);
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        append_forwarded_for(&mut h, &ip);
        assert_eq!(h["x-forwarded-for"], "10.0.0.9, 1.1.1.1, 10.0.0.9");
    }

    /// The two ways of forwarding give the same headers.
    #[test]
    fn written_forwarding_equals_applied_forwarding() {
        let peer = HeaderValue::from_static("10.0.0.9");
        let port = HeaderValue::from_static("8077");
        let rid = HeaderValue::from_static("rid");
        let forwarding = Forwarding {
            host: Some(HeaderValue::from_static("api.example")),
            peer_ip: &peer,
            port: &port,
            client_connection: true,
            proto: Some("http"),
            request_id: &rid,
            traceparent: next_traceparent(None),
        };
        let mut cases = Vec::new();
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("api.example"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        cases.push(h.clone());
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("content-length", HeaderValue::from_static("3"));
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.insert("x-request-id", HeaderValue::from_static("client"));
        h.insert("traceparent", HeaderValue::from_static("old"));
        cases.push(h.clone());
        h.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        cases.push(h);
        for (i, headers) in cases.into_iter().enumerate() {
            let mut written = Vec::new();
            let proto = (!headers.contains_key(&X_FORWARDED_PROTO)).then_some("http");
            let forwarding = Forwarding {
                proto,
                ..forwarding.clone_for_test()
            };
            forwarding.write(&mut written, &headers);
            let mut applied = headers.clone();
            forwarding.apply(&mut applied, false);
            applied.remove(header::CONTENT_LENGTH);
            let mut lines: Vec<String> = String::from_utf8(written)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            let mut expected: Vec<String> = applied
                .iter()
                .map(|(n, v)| format!("{}: {}", n, v.to_str().unwrap()))
                .collect();
            lines.sort();
            expected.sort();
            assert_eq!(lines, expected, "case {i}");
        }
    }

    impl Forwarding<'_> {
        fn clone_for_test(&self) -> Self {
            Forwarding {
                host: self.host.clone(),
                peer_ip: self.peer_ip,
                port: self.port,
                client_connection: self.client_connection,
                proto: self.proto,
                request_id: self.request_id,
                traceparent: self.traceparent,
            }
        }
    }

    #[test]
    fn trace_context() {
        let incoming =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let next = next_traceparent(Some(&incoming));
        let next = std::str::from_utf8(&next).unwrap();
        assert!(next.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(next.ends_with("-01"));
        assert_ne!(&next[36..52], "00f067aa0ba902b7");
        let fresh = next_traceparent(Some(&HeaderValue::from_static("garbage")));
        assert!(valid_traceparent(&fresh));
        assert_ne!(fresh, next_traceparent(None));
    }

    /// Generated ids are 128 random bits: consecutive ones share no counter pattern. The old
    /// ids (a fixed per-process prefix and a counter) fail every assertion here.
    #[test]
    fn request_ids_are_random_not_a_counter() {
        let ids: Vec<u128> = (0..64)
            .map(|_| {
                let id = new_request_id();
                assert_eq!(id.len(), REQUEST_ID_LEN);
                u128::from_str_radix(id.to_str().unwrap(), 16).unwrap()
            })
            .collect();
        for pair in ids.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            // Not sequential, in either half.
            assert!(b.wrapping_sub(a) > 1 << 20, "{a:032x} then {b:032x}");
            assert!(
                (b as u64).wrapping_sub(a as u64) > 1 << 20,
                "{a:032x} then {b:032x}"
            );
            // No shared prefix or suffix (a per-process prefix, a counter in the low digits):
            // two random ids share 9 or more leading or trailing hex digits once in 2^34.
            let xor = a ^ b;
            assert!(xor.leading_zeros() < 36, "{a:032x} then {b:032x}");
            assert!(xor.trailing_zeros() < 36, "{a:032x} then {b:032x}");
        }
        // About half the bits differ between neighbours, as for independent random values.
        let differing: u32 = ids.windows(2).map(|p| (p[0] ^ p[1]).count_ones()).sum();
        let mean = f64::from(differing) / 63.0;
        assert!((48.0..80.0).contains(&mean), "mean differing bits {mean}");
    }
}
