//! The routing table: host + environment path + API base path → route, as a trie over path
//! segments, so a lookup costs one hash probe per request segment whatever the number of APIs.
//!
//! Segments are compared in a normal form: percent-escapes of unreserved characters are decoded
//! (`%41` = `A`) and the hex digits of the others are upper-cased (`%2f` = `%2F`), as RFC 3986
//! §6.2.2 allows. An encoded slash stays inside its segment. Matching is case-sensitive.
//! The longest matching prefix of whole segments wins; `/a/bc` never matches prefix `/a/b`.

use std::borrow::Cow;

/// FNV-1a (the `fnv` crate; the same 64-bit FNV-1a as the hand-written hasher it replaced):
/// the keys are configuration, not attacker-chosen, so a fast non-keyed hash is safe; a
/// request can only probe, never fill, the table.
type FnvMap<K, V> = fnv::FnvHashMap<K, V>;

#[derive(Debug, Default)]
struct Node {
    children: Children,
    route: Option<u32>,
}

/// Up to this many children are searched in a list: comparing a few short keys costs less
/// than hashing one. Wider nodes (e.g. thousands of APIs under one environment path) hash.
const FEW_CHILDREN: usize = 8;

#[derive(Debug)]
enum Children {
    Few(Vec<(Box<str>, u32)>),
    Many(FnvMap<Box<str>, u32>),
}

impl Default for Children {
    fn default() -> Self {
        Children::Few(Vec::new())
    }
}

impl Children {
    fn get(&self, key: &str) -> Option<u32> {
        match self {
            Children::Few(list) => list
                .iter()
                .find(|(k, _)| k.len() == key.len() && **k == *key)
                .map(|(_, v)| *v),
            Children::Many(map) => map.get(key).copied(),
        }
    }

    fn insert(&mut self, key: Box<str>, value: u32) {
        match self {
            Children::Few(list) if list.len() < FEW_CHILDREN => list.push((key, value)),
            Children::Few(list) => {
                let mut map: FnvMap<Box<str>, u32> = std::mem::take(list).into_iter().collect();
                map.insert(key, value);
                *self = Children::Many(map);
            }
            Children::Many(map) => {
                map.insert(key, value);
            }
        }
    }
}

/// Why a route could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("path {0:?} is empty or has an empty, `.` or `..` segment")]
    BadPath(String),
    #[error("path {path:?} is already routed")]
    Duplicate { path: String, existing: u32 },
}

/// A match: the route and how many bytes of the request path its prefix covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub route: u32,
    /// `path[prefix_len..]` is the rest, empty or starting with `/`.
    pub prefix_len: usize,
}

/// Why a request path is refused before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not starting with `/`.
    NotOrigin,
    /// A `.` or `..` segment (also percent-encoded): never forwarded, so an upstream cannot be
    /// walked out of its base path.
    DotSegment,
}

/// A prefix trie over normalised path segments.
#[derive(Debug)]
pub struct Router {
    nodes: Vec<Node>,
}

impl Default for Router {
    fn default() -> Self {
        Router {
            nodes: vec![Node::default()],
        }
    }
}

impl Router {
    /// Adds `prefix` (segments joined by `/`, no leading or trailing `/`) for `route`.
    pub fn insert(&mut self, prefix: &str, route: u32) -> Result<(), RouteError> {
        let mut node = 0usize;
        for segment in prefix.split('/') {
            if segment.is_empty() || is_dot_segment(segment) {
                return Err(RouteError::BadPath(prefix.to_string()));
            }
            let key: Box<str> = normalise(segment).into();
            let next = match self.nodes[node].children.get(&key) {
                Some(next) => next as usize,
                None => {
                    let next = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[node].children.insert(key, next as u32);
                    next
                }
            };
            node = next;
        }
        if let Some(existing) = self.nodes[node].route {
            return Err(RouteError::Duplicate {
                path: prefix.to_string(),
                existing,
            });
        }
        self.nodes[node].route = Some(route);
        Ok(())
    }

    /// Longest prefix of whole segments of `path` (which starts with `/`) that has a route.
    pub fn lookup(&self, path: &str) -> Option<Match> {
        let mut node = &self.nodes[0];
        let mut best = None;
        let mut offset = 0;
        let bytes = path.as_bytes();
        // Most paths have no escape at all: one scan spares a check per segment.
        let escaped = memchr::memchr(b'%', bytes).is_some();
        while offset < bytes.len() && bytes[offset] == b'/' {
            let start = offset + 1;
            let end = memchr::memchr(b'/', &bytes[start..]).map_or(path.len(), |i| start + i);
            let segment = &path[start..end];
            if segment.is_empty() {
                break;
            }
            let key = if escaped {
                normalise(segment)
            } else {
                Cow::Borrowed(segment)
            };
            let Some(next) = node.children.get(key.as_ref()) else {
                break;
            };
            node = &self.nodes[next as usize];
            if let Some(route) = node.route {
                best = Some(Match {
                    route,
                    prefix_len: end,
                });
            }
            offset = end;
        }
        best
    }

    /// Number of trie nodes, for metrics and tests.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.len() == 1
    }
}

/// Checks a request path before routing.
pub fn check_request_path(path: &str) -> Result<(), PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotOrigin);
    }
    // A dot segment needs a `.` or an escape somewhere; most paths have neither.
    if memchr::memchr2(b'.', b'%', path.as_bytes()).is_none() {
        return Ok(());
    }
    if path.split('/').any(is_dot_segment) {
        return Err(PathError::DotSegment);
    }
    Ok(())
}

fn is_dot_segment(segment: &str) -> bool {
    if !segment.contains('.') && !segment.contains('%') {
        return false;
    }
    let normal = normalise(segment);
    normal == "." || normal == ".."
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §6.2.2 normal form of one segment; borrows when there is no escape.
pub fn normalise(segment: &str) -> Cow<'_, str> {
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                let value = h << 4 | l;
                if is_unreserved(value) {
                    out.push(value as char);
                } else {
                    out.push('%');
                    out.push(bytes[i + 1].to_ascii_uppercase() as char);
                    out.push(bytes[i + 2].to_ascii_uppercase() as char);
                }
                i += 3;
                continue;
            }
        }
        // A malformed escape stays as it is; it can only match the same malformed text.
        let ch_len = segment[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&segment[i..i + ch_len]);
        i += ch_len;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Router {
        let mut router = Router::default();
        for (i, prefix) in [
            "ws/rest/orders",
            "ws/rest/orders/v2",
            "ws/rest/a%2Fb",
            "ws/soap/orders",
            "custom/x",
        ]
        .iter()
        .enumerate()
        {
            router.insert(prefix, i as u32).unwrap();
        }
        router
    }

    #[test]
    fn lookups() {
        let router = table();
        let cases: &[(&str, Option<(u32, &str)>)] = &[
            ("/ws/rest/orders", Some((0, ""))),
            ("/ws/rest/orders/", Some((0, "/"))),
            ("/ws/rest/orders/items/7", Some((0, "/items/7"))),
            ("/ws/rest/orders/v2", Some((1, ""))),
            ("/ws/rest/orders/v2/x", Some((1, "/x"))),
            ("/ws/rest/orders/v3/x", Some((0, "/v3/x"))),
            ("/ws/rest/ordersX", None),
            ("/ws/rest/Orders", None),
            ("/ws/rest/%6Frders/1", Some((0, "/1"))),
            ("/ws/rest/a%2fb/c", Some((2, "/c"))),
            ("/ws/rest/a/b/c", None),
            ("/ws/soap/orders?x", None),
            ("/ws/soap/orders", Some((3, ""))),
            ("/ws//rest/orders", None),
            ("/ws/rest", None),
            ("/", None),
            ("/custom/x/y", Some((4, "/y"))),
        ];
        for (path, expected) in cases {
            let got = router
                .lookup(path)
                .map(|m| (m.route, &path[m.prefix_len..]));
            assert_eq!(got, *expected, "path {path}");
        }
    }

    #[test]
    fn duplicates_and_bad_prefixes_are_refused() {
        let mut router = table();
        assert!(matches!(
            router.insert("ws/rest/%6frders", 9),
            Err(RouteError::Duplicate { existing: 0, .. })
        ));
        assert!(router.insert("ws//x", 9).is_err());
        assert!(router.insert("ws/../x", 9).is_err());
    }

    #[test]
    fn dot_segments_are_refused() {
        for path in ["/a/../b", "/a/./b", "/a/%2e%2E/b", "/..", "/a/.%2e"] {
            assert_eq!(
                check_request_path(path),
                Err(PathError::DotSegment),
                "{path}"
            );
        }
        for path in ["/a/..b/c", "/a.b/c", "/"] {
            assert_eq!(check_request_path(path), Ok(()), "{path}");
        }
        assert_eq!(check_request_path("*"), Err(PathError::NotOrigin));
    }

    #[test]
    fn lookup_cost_does_not_depend_on_table_size() {
        let mut router = Router::default();
        for i in 0..10_000u32 {
            router.insert(&format!("ws/rest/api{i}/v1"), i).unwrap();
        }
        assert_eq!(
            router.lookup("/ws/rest/api9999/v1/x").map(|m| m.route),
            Some(9999)
        );
    }
}
