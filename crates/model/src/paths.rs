//! URL path rules of SPEC §6: validating and normalising environment paths, API base paths and
//! custom deployment paths, and the uniqueness rules for the paths of environments on a gateway.
//!
//! # Normal form
//!
//! A path is stored, compared and routed in one normal form, so that two spellings of the same
//! path can never slip past the uniqueness and conflict checks:
//!
//! - Segments are separated by single `/`, with none at either end.
//! - Every byte outside the RFC 3986 `pchar` set (unreserved, sub-delims, `:` and `@`) is
//!   percent-encoded, as UTF-8, with uppercase hex digits (`café` → `caf%C3%A9`).
//! - Escapes of unreserved characters are decoded (`%7E` → `~`, `%41` → `A`, RFC 3986 §6.2.2.2),
//!   and the remaining escapes are uppercased (`%2f` → `%2F`). An escaped `/` (`%2F`) stays
//!   escaped and is part of its segment: the gateway routes on the encoded form.
//!
//! Comparison is **case-sensitive** on the normal form, because URL paths are case-sensitive
//! (RFC 3986 §6.2.2.1): `ws/rest` and `WS/rest` are different paths, `%c3%a9` and `%C3%A9` are
//! the same.
//!
//! Whitespace is refused rather than encoded, including escaped whitespace such as `%20`: a
//! space in an API URL is almost always a typing mistake, and refusing the escaped form too means
//! the rule cannot be bypassed. Likewise a `.` or `..` segment is refused in its escaped forms
//! (`%2e`, `%2E%2e`), because clients and proxies resolve them before the gateway sees them.

use std::fmt;

use thiserror::Error;

use crate::entity::{ApiType, Environment, EnvironmentPaths};
use crate::id::EnvironmentId;

/// Why one path is not acceptable. The same rules apply to environment paths, API base paths and
/// custom deployment paths; [`PathKind`] picks the error code family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum PathSyntaxError {
    #[error("the path is empty")]
    Empty,
    #[error("the path starts with '/'")]
    LeadingSlash,
    #[error("the path ends with '/'")]
    TrailingSlash,
    #[error("the path contains a space")]
    Spaces,
    #[error("the path contains '//'")]
    ConsecutiveSlashes,
    #[error("the path contains a '.' or '..' segment")]
    Relative,
    #[error("the path contains a malformed '%' escape")]
    InvalidEncoded,
}

/// Which kind of path a [`PathSyntaxError`] is about, so that the REST error code names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// One of the four URL paths of an environment (`ENVIRONMENT_PATH_*`).
    Environment,
    /// The base path of an API (`API_BASE_PATH_*`).
    ApiBase,
    /// The custom URL path of a deployment (`CUSTOM_PATH_*`).
    Custom,
}

macro_rules! path_codes {
    ($kind:expr, $err:expr, $($k:ident => $prefix:literal),*) => {
        match ($kind, $err) {$(
            (PathKind::$k, PathSyntaxError::Empty) => concat!($prefix, "_EMPTY"),
            (PathKind::$k, PathSyntaxError::LeadingSlash) => concat!($prefix, "_LEADING_SLASH"),
            (PathKind::$k, PathSyntaxError::TrailingSlash) => concat!($prefix, "_TRAILING_SLASH"),
            (PathKind::$k, PathSyntaxError::Spaces) => concat!($prefix, "_SPACES"),
            (PathKind::$k, PathSyntaxError::ConsecutiveSlashes) => {
                concat!($prefix, "_CONSECUTIVE_SLASHES")
            }
            (PathKind::$k, PathSyntaxError::Relative) => concat!($prefix, "_RELATIVE"),
            (PathKind::$k, PathSyntaxError::InvalidEncoded) => concat!($prefix, "_INVALID_ENCODED"),
        )*}
    };
}

impl PathSyntaxError {
    /// The stable error code for this rule applied to a path of `kind`,
    /// e.g. `ENVIRONMENT_PATH_TRAILING_SLASH` or `API_BASE_PATH_EMPTY`.
    pub fn code(self, kind: PathKind) -> &'static str {
        path_codes!(kind, self,
            Environment => "ENVIRONMENT_PATH",
            ApiBase => "API_BASE_PATH",
            Custom => "CUSTOM_PATH")
    }
}

/// Validates one path and returns its normal form (see the module documentation).
///
/// Checks run in a fixed order so that one input always yields the same error: empty, spaces,
/// leading slash, trailing slash, consecutive slashes, then escapes from left to right (malformed,
/// or escaped whitespace), and relative segments last.
pub fn normalize_path(raw: &str) -> Result<String, PathSyntaxError> {
    if raw.trim().is_empty() {
        return Err(PathSyntaxError::Empty);
    }
    if raw.chars().any(char::is_whitespace) {
        return Err(PathSyntaxError::Spaces);
    }
    if raw.starts_with('/') {
        return Err(PathSyntaxError::LeadingSlash);
    }
    if raw.ends_with('/') {
        return Err(PathSyntaxError::TrailingSlash);
    }
    if raw.contains("//") {
        return Err(PathSyntaxError::ConsecutiveSlashes);
    }
    let mut out = String::with_capacity(raw.len());
    let mut relative = false;
    for (i, segment) in raw.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let start = out.len();
        normalize_segment(segment, &mut out)?;
        let normalised = &out[start..];
        relative |= normalised == "." || normalised == "..";
    }
    if relative {
        return Err(PathSyntaxError::Relative);
    }
    Ok(out)
}

/// Appends the normal form of one segment (no `/` inside) to `out`.
fn normalize_segment(segment: &str, out: &mut String) -> Result<(), PathSyntaxError> {
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) else {
                return Err(PathSyntaxError::InvalidEncoded);
            };
            let decoded = hi << 4 | lo;
            if decoded.is_ascii_whitespace() || decoded == 0x0B {
                return Err(PathSyntaxError::Spaces);
            }
            if is_unreserved(decoded) {
                out.push(char::from(decoded));
            } else {
                push_escape(decoded, out);
            }
            i += 3;
        } else {
            if is_pchar(b) {
                out.push(char::from(b));
            } else {
                push_escape(b, out);
            }
            i += 1;
        }
    }
    Ok(())
}

fn push_escape(b: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0F)]));
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 `unreserved`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `pchar` without `pct-encoded`: unreserved, sub-delims, `:` and `@`.
fn is_pchar(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

/// The REST field name of the environment path used by APIs of `api_type`.
pub fn path_field(api_type: ApiType) -> &'static str {
    match api_type {
        ApiType::Rest => "rest_path",
        ApiType::Soap => "soap_path",
        ApiType::Soap12 => "soap12_path",
        ApiType::Odata => "odata_path",
    }
}

/// Why the paths of one environment cannot be saved. Each value names the offending field
/// (`rest_path`, `soap_path`, `soap12_path` or `odata_path`).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EnvironmentPathError {
    /// One path breaks a syntax rule.
    #[error("{field}: {error}")]
    Syntax {
        field: &'static str,
        error: PathSyntaxError,
    },
    /// Two of the four paths of the environment are equal.
    #[error("{field} is the same as {other_field}")]
    Duplicate {
        field: &'static str,
        other_field: &'static str,
    },
    /// A path equals a path of another environment attached to the same gateway.
    #[error(
        "{field} '{path}' is already used by environment '{other_environment_name}' on this gateway"
    )]
    NotUniqueOnGateway {
        field: &'static str,
        path: String,
        other_environment_id: EnvironmentId,
        other_environment_name: String,
    },
}

impl EnvironmentPathError {
    /// The stable error code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            EnvironmentPathError::Syntax { error, .. } => error.code(PathKind::Environment),
            EnvironmentPathError::Duplicate { .. } => "ENVIRONMENT_PATH_DUPLICATE",
            EnvironmentPathError::NotUniqueOnGateway { .. } => {
                "ENVIRONMENT_PATH_NOT_UNIQUE_ON_GATEWAY"
            }
        }
    }

    /// The field this error is about.
    pub fn field(&self) -> &'static str {
        match self {
            EnvironmentPathError::Syntax { field, .. }
            | EnvironmentPathError::Duplicate { field, .. }
            | EnvironmentPathError::NotUniqueOnGateway { field, .. } => field,
        }
    }
}

/// A non-empty list of errors, so that a form can mark every offending field at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentPathErrors(pub Vec<EnvironmentPathError>);

impl fmt::Display for EnvironmentPathErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for EnvironmentPathErrors {}

/// Validates and normalises the four paths of one environment, and checks that they are
/// distinct. Reports every error, in field order (REST, SOAP, SOAP 1.2, OData); a duplicate is
/// reported on the later field.
pub fn validate_environment_paths(
    raw: &EnvironmentPaths,
) -> Result<EnvironmentPaths, EnvironmentPathErrors> {
    let mut errors = Vec::new();
    let mut normalised: Vec<(&'static str, String)> = Vec::with_capacity(4);
    for api_type in ApiType::ALL {
        let field = path_field(api_type);
        match normalize_path(raw.for_type(api_type)) {
            Ok(path) => {
                if let Some((other_field, _)) = normalised.iter().find(|(_, p)| *p == path) {
                    errors.push(EnvironmentPathError::Duplicate { field, other_field });
                }
                normalised.push((field, path));
            }
            Err(error) => errors.push(EnvironmentPathError::Syntax { field, error }),
        }
    }
    if !errors.is_empty() {
        return Err(EnvironmentPathErrors(errors));
    }
    let mut paths = normalised.into_iter().map(|(_, p)| p);
    let mut next = || paths.next().unwrap_or_default();
    Ok(EnvironmentPaths {
        rest: next(),
        soap: next(),
        soap12: next(),
        odata: next(),
    })
}

/// Checks that none of `paths` (already normalised) equals a path of another environment
/// attached to the same gateway. `others` may include the environment itself (same id); it is
/// skipped. Their paths are assumed to be stored in normal form.
pub fn check_unique_on_gateway<'a>(
    environment_id: EnvironmentId,
    paths: &EnvironmentPaths,
    others: impl IntoIterator<Item = &'a Environment>,
) -> Result<(), EnvironmentPathErrors> {
    let mut errors = Vec::new();
    let others: Vec<&Environment> = others
        .into_iter()
        .filter(|e| e.id != environment_id)
        .collect();
    for api_type in ApiType::ALL {
        let path = paths.for_type(api_type);
        let clash = others.iter().find(|other| {
            ApiType::ALL
                .into_iter()
                .any(|t| other.paths.for_type(t) == path)
        });
        if let Some(other) = clash {
            errors.push(EnvironmentPathError::NotUniqueOnGateway {
                field: path_field(api_type),
                path: path.to_owned(),
                other_environment_id: other.id,
                other_environment_name: other.name.clone(),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EnvironmentPathErrors(errors))
    }
}

/// Everything of SPEC §6 about one environment's paths except API path conflicts (see
/// [`crate::conflict`]): syntax, distinctness, and uniqueness on the gateway. Returns the
/// normalised paths to store.
pub fn validate_environment_paths_on_gateway<'a>(
    environment_id: EnvironmentId,
    raw: &EnvironmentPaths,
    others: impl IntoIterator<Item = &'a Environment>,
) -> Result<EnvironmentPaths, EnvironmentPathErrors> {
    let paths = validate_environment_paths(raw)?;
    check_unique_on_gateway(environment_id, &paths, others)?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::Classification;
    use crate::time::Timestamp;

    /// `expected` is the normal form, or `!CODE` for an error.
    #[track_caller]
    fn check(raw: &str, expected: &str) {
        let actual = match normalize_path(raw) {
            Ok(path) => path,
            Err(e) => format!("!{}", e.code(PathKind::Environment)),
        };
        assert_eq!(actual, expected, "input {raw:?}");
    }

    #[test]
    fn normalize_path_rules() {
        // Valid paths, unchanged.
        check("ws/rest", "ws/rest");
        check("a", "a");
        check("v1.2/x-y_z~", "v1.2/x-y_z~");
        check("a:b@c/!$&'()*+,;=", "a:b@c/!$&'()*+,;=");
        check("...", "...");
        check(".a/a./..b", ".a/a./..b");
        // Characters outside the path set are encoded, as UTF-8, uppercase.
        check("café", "caf%C3%A9");
        check("a[b]", "a%5Bb%5D");
        check("q?x#y", "q%3Fx%23y");
        check("a\"<>\\^`{|}", "a%22%3C%3E%5C%5E%60%7B%7C%7D");
        check("a\u{1}b", "a%01b");
        // Escapes: unreserved decoded, others uppercased, %2F kept inside its segment.
        check("%7e%41", "~A");
        check("a%2fb", "a%2Fb");
        check("%c3%a9", "%C3%A9");
        check("%25", "%25");
        check("a%2E", "a.");
        // Empty.
        check("", "!ENVIRONMENT_PATH_EMPTY");
        check("   ", "!ENVIRONMENT_PATH_EMPTY");
        // Spaces, raw or escaped, anywhere.
        check("ws rest", "!ENVIRONMENT_PATH_SPACES");
        check(" ws", "!ENVIRONMENT_PATH_SPACES");
        check("ws\t", "!ENVIRONMENT_PATH_SPACES");
        check("ws/a\u{a0}b", "!ENVIRONMENT_PATH_SPACES");
        check("ws%20rest", "!ENVIRONMENT_PATH_SPACES");
        check("ws%0a", "!ENVIRONMENT_PATH_SPACES");
        // Slashes.
        check("/ws", "!ENVIRONMENT_PATH_LEADING_SLASH");
        check("/", "!ENVIRONMENT_PATH_LEADING_SLASH");
        check("ws/", "!ENVIRONMENT_PATH_TRAILING_SLASH");
        check("ws//rest", "!ENVIRONMENT_PATH_CONSECUTIVE_SLASHES");
        // Malformed escapes.
        check("ws%", "!ENVIRONMENT_PATH_INVALID_ENCODED");
        check("ws%4", "!ENVIRONMENT_PATH_INVALID_ENCODED");
        check("ws%zz", "!ENVIRONMENT_PATH_INVALID_ENCODED");
        check("ws%4/x", "!ENVIRONMENT_PATH_INVALID_ENCODED");
        check("%%41", "!ENVIRONMENT_PATH_INVALID_ENCODED");
        // Relative segments, raw or escaped.
        check(".", "!ENVIRONMENT_PATH_RELATIVE");
        check("..", "!ENVIRONMENT_PATH_RELATIVE");
        check("ws/./rest", "!ENVIRONMENT_PATH_RELATIVE");
        check("ws/..", "!ENVIRONMENT_PATH_RELATIVE");
        check("%2e", "!ENVIRONMENT_PATH_RELATIVE");
        check("ws/%2E%2e/x", "!ENVIRONMENT_PATH_RELATIVE");
        check("ws/.%2e", "!ENVIRONMENT_PATH_RELATIVE");
        // The order of the checks decides between several errors.
        check("/a b", "!ENVIRONMENT_PATH_SPACES");
        check("/a/", "!ENVIRONMENT_PATH_LEADING_SLASH");
        check("a//b/", "!ENVIRONMENT_PATH_TRAILING_SLASH");
        check("../a%zz", "!ENVIRONMENT_PATH_INVALID_ENCODED");
        check("../a%20", "!ENVIRONMENT_PATH_SPACES");
    }

    #[test]
    fn normal_form_is_a_fixed_point() {
        for raw in [
            "café", "%7e%41", "a%2fb", "a b%", "q?x#y", "a\u{1}b", "ws/rest",
        ] {
            if let Ok(once) = normalize_path(raw) {
                assert_eq!(
                    normalize_path(&once).as_deref(),
                    Ok(once.as_str()),
                    "{raw:?}"
                );
            }
        }
    }

    #[test]
    fn every_path_code() {
        use PathSyntaxError::*;
        let all = [
            Empty,
            LeadingSlash,
            TrailingSlash,
            Spaces,
            ConsecutiveSlashes,
            Relative,
            InvalidEncoded,
        ];
        let codes: Vec<String> = [PathKind::Environment, PathKind::ApiBase, PathKind::Custom]
            .into_iter()
            .map(|kind| {
                all.iter()
                    .map(|e| e.code(kind))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        expect_test::expect![[r#"
            ENVIRONMENT_PATH_EMPTY ENVIRONMENT_PATH_LEADING_SLASH ENVIRONMENT_PATH_TRAILING_SLASH ENVIRONMENT_PATH_SPACES ENVIRONMENT_PATH_CONSECUTIVE_SLASHES ENVIRONMENT_PATH_RELATIVE ENVIRONMENT_PATH_INVALID_ENCODED
            API_BASE_PATH_EMPTY API_BASE_PATH_LEADING_SLASH API_BASE_PATH_TRAILING_SLASH API_BASE_PATH_SPACES API_BASE_PATH_CONSECUTIVE_SLASHES API_BASE_PATH_RELATIVE API_BASE_PATH_INVALID_ENCODED
            CUSTOM_PATH_EMPTY CUSTOM_PATH_LEADING_SLASH CUSTOM_PATH_TRAILING_SLASH CUSTOM_PATH_SPACES CUSTOM_PATH_CONSECUTIVE_SLASHES CUSTOM_PATH_RELATIVE CUSTOM_PATH_INVALID_ENCODED"#]]
        .assert_eq(&codes.join("\n"));
    }

    #[test]
    fn codes_per_kind() {
        let e = PathSyntaxError::TrailingSlash;
        assert_eq!(
            e.code(PathKind::Environment),
            "ENVIRONMENT_PATH_TRAILING_SLASH"
        );
        assert_eq!(e.code(PathKind::ApiBase), "API_BASE_PATH_TRAILING_SLASH");
        assert_eq!(e.code(PathKind::Custom), "CUSTOM_PATH_TRAILING_SLASH");
        assert_eq!(
            PathSyntaxError::InvalidEncoded.code(PathKind::ApiBase),
            "API_BASE_PATH_INVALID_ENCODED"
        );
    }

    fn paths(rest: &str, soap: &str, soap12: &str, odata: &str) -> EnvironmentPaths {
        EnvironmentPaths {
            rest: rest.into(),
            soap: soap.into(),
            soap12: soap12.into(),
            odata: odata.into(),
        }
    }

    fn render(result: Result<EnvironmentPaths, EnvironmentPathErrors>) -> String {
        match result {
            Ok(p) => format!("{} {} {} {}", p.rest, p.soap, p.soap12, p.odata),
            Err(errors) => errors
                .0
                .iter()
                .map(|e| format!("{}:{}", e.field(), e.code()))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    #[track_caller]
    fn check_env(p: [&str; 4], expected: &str) {
        let actual = render(validate_environment_paths(&paths(p[0], p[1], p[2], p[3])));
        assert_eq!(actual, expected);
    }

    #[test]
    fn environment_paths() {
        check_env(
            ["ws/rest", "ws/soap", "ws/soap12", "ws/odata"],
            "ws/rest ws/soap ws/soap12 ws/odata",
        );
        check_env(["é", "b", "c", "d"], "%C3%A9 b c d");
        check_env(
            ["", "b", "/c", "d/"],
            "rest_path:ENVIRONMENT_PATH_EMPTY soap12_path:ENVIRONMENT_PATH_LEADING_SLASH odata_path:ENVIRONMENT_PATH_TRAILING_SLASH",
        );
        check_env(
            ["a", "a", "b", "a"],
            "soap_path:ENVIRONMENT_PATH_DUPLICATE odata_path:ENVIRONMENT_PATH_DUPLICATE",
        );
        // Equal after normalisation.
        check_env(
            ["%41", "A", "b", "c"],
            "soap_path:ENVIRONMENT_PATH_DUPLICATE",
        );
        // Case-sensitive: these are different paths.
        check_env(
            ["ws/rest", "WS/rest", "ws/REST", "Ws/Rest"],
            "ws/rest WS/rest ws/REST Ws/Rest",
        );
    }

    #[test]
    fn duplicate_names_the_other_field() {
        let err = validate_environment_paths(&paths("a", "b", "a", "c")).unwrap_err();
        assert_eq!(
            err.0,
            vec![EnvironmentPathError::Duplicate {
                field: "soap12_path",
                other_field: "rest_path"
            }]
        );
    }

    fn env(name: &str, p: EnvironmentPaths) -> Environment {
        Environment {
            id: EnvironmentId::new_v7(),
            account_id: crate::id::AccountId::new_v7(),
            name: name.into(),
            classification: Classification::Test,
            gateway_id: None,
            paths: p,
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn unique_on_gateway() {
        let prod = env("Production", EnvironmentPaths::default());
        let test = env("Test", paths("t/rest", "t/soap", "t/soap12", "t/odata"));
        let others = [prod.clone(), test.clone()];
        let me = EnvironmentId::new_v7();

        // Distinct paths pass and come back normalised.
        let ok = validate_environment_paths_on_gateway(
            me,
            &paths("x/rést", "x/s", "x/s12", "x/o"),
            &others,
        );
        assert_eq!(ok.unwrap().rest, "x/r%C3%A9st");

        // The same path as another environment's path of any type is refused, naming it.
        let err = validate_environment_paths_on_gateway(
            me,
            &paths("x/r", "t/rest", "x/s12", "ws/rest"),
            &others,
        )
        .unwrap_err();
        let rendered: Vec<_> = err
            .0
            .iter()
            .map(|e| match e {
                EnvironmentPathError::NotUniqueOnGateway {
                    field,
                    path,
                    other_environment_name,
                    other_environment_id,
                } => {
                    let other = if *other_environment_id == test.id {
                        "test"
                    } else {
                        "prod"
                    };
                    format!(
                        "{field} {path} {other_environment_name} {other} {}",
                        e.code()
                    )
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            rendered,
            [
                "soap_path t/rest Test test ENVIRONMENT_PATH_NOT_UNIQUE_ON_GATEWAY",
                "odata_path ws/rest Production prod ENVIRONMENT_PATH_NOT_UNIQUE_ON_GATEWAY",
            ]
        );

        // An environment does not clash with its own stored paths.
        assert!(check_unique_on_gateway(prod.id, &prod.paths, &others).is_ok());
        // A prefix relation is not a uniqueness violation (conflicts are checked per API).
        assert!(check_unique_on_gateway(me, &paths("ws", "ws/rest/x", "b", "c"), &others).is_ok());
        // Syntax errors come first and stop the gateway check.
        let err = validate_environment_paths_on_gateway(
            me,
            &paths("ws/rest/", "ws/rest", "b", "c"),
            &others,
        )
        .unwrap_err();
        assert_eq!(
            render(Err(err)),
            "rest_path:ENVIRONMENT_PATH_TRAILING_SLASH"
        );
    }
}
