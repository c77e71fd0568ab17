//! Validation of entity fields: names, API base and custom paths, upstream URLs, execution
//! settings, gateway properties and install-token validity. Every error has a stable code and
//! names its field, so the REST API can report `{"code", "message", "details": {"field"}}`.
//!
//! Names are **trimmed** of leading and trailing whitespace before they are checked, and the
//! validators return the trimmed form to store: a trailing space pasted into a form should not
//! create a gateway that looks identical to another one. Lengths count Unicode scalar values
//! (`char`s), not bytes, because the limit is about what a person sees and types.
//!
//! Every named object (account, gateway, environment, API and its version, user, token) follows
//! one rule, [`check_name`]: no control characters and none of [`NAME_FORBIDDEN`]. Only the
//! error variant differs, so the code names the object (`ENVIRONMENT_NAME_INVALID_CHARACTER`).

use std::time::Duration;

use thiserror::Error;

use crate::entity::{ExecutionSettings, GatewaySettings};
use crate::paths::{PathKind, PathSyntaxError, normalize_path};

/// Longest account, gateway, environment and API name, in characters.
pub const MAX_NAME_CHARS: usize = 80;
/// Longest API version label, in characters.
pub const MAX_API_VERSION_CHARS: usize = 40;
/// Characters no name may contain: names end up in file names, command lines, URLs and HTML,
/// where these characters are special (markup, paths, shell globs and pipes, escapes).
pub const NAME_FORBIDDEN: &[char] = &['*', '\\', '^', ':', '$', '>', '<', '%', '|', '?', '"', '/'];
/// Most upstream targets one API may have: each is a connection pool and a health check on
/// every node, so the list stays a short, hand-written one.
pub const MAX_UPSTREAM_TARGETS: usize = 16;

/// Execution-settings ranges of SPEC §5, inclusive.
pub const MAX_CONCURRENCY_RANGE: (u32, u32) = (1, 10_000);
pub const RETRY_ATTEMPTS_RANGE: (u32, u32) = (0, 10);
pub const CONNECT_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(600));
pub const EXECUTION_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(315_360_000));
/// Install-token validity of SPEC §10: 30 minutes to 24 hours, inclusive.
pub const INSTALL_TOKEN_VALIDITY_RANGE: (Duration, Duration) =
    (Duration::from_secs(30 * 60), Duration::from_secs(1440 * 60));
/// Gateway property ranges the SPEC leaves open; chosen so that status evaluation and draining
/// stay meaningful (a heartbeat slower than a minute would make lost-contact detection useless).
pub const HEARTBEAT_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(60));
pub const FORCE_RESTART_AFTER_RANGE: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(24 * 60 * 60));
pub const LOG_RETENTION_DAYS_RANGE: (u32, u32) = (1, 3650);
pub const SHUTDOWN_DELAY_RANGE: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(600));

/// A field value that breaks a rule. [`ValidationError::code`] is stable and part of the REST API.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ValidationError {
    #[error("account name is empty")]
    AccountNameEmpty,
    #[error("account name is longer than {MAX_NAME_CHARS} characters")]
    AccountNameTooLong,
    #[error("account name contains {character:?}, which is not allowed")]
    AccountNameInvalidCharacter { character: char },

    #[error("gateway name is empty")]
    GatewayNameEmpty,
    #[error("gateway name is longer than {MAX_NAME_CHARS} characters")]
    GatewayNameTooLong,
    #[error("gateway name contains {character:?}, which is not allowed")]
    GatewayNameInvalidCharacter { character: char },

    #[error("environment name is empty")]
    EnvironmentNameEmpty,
    #[error("environment name is longer than {MAX_NAME_CHARS} characters")]
    EnvironmentNameTooLong,
    #[error("environment name contains {character:?}, which is not allowed")]
    EnvironmentNameInvalidCharacter { character: char },

    #[error("API name is empty")]
    ApiNameEmpty,
    #[error("API name is longer than {MAX_NAME_CHARS} characters")]
    ApiNameTooLong,
    #[error("API name contains {character:?}, which is not allowed")]
    ApiNameInvalidCharacter { character: char },

    #[error("API version is empty")]
    ApiVersionEmpty,
    #[error("API version is longer than {MAX_API_VERSION_CHARS} characters")]
    ApiVersionTooLong,
    #[error("API version contains {character:?}, which is not allowed")]
    ApiVersionInvalidCharacter { character: char },

    #[error("user name is empty")]
    UserNameEmpty,
    #[error("user name is longer than {MAX_NAME_CHARS} characters")]
    UserNameTooLong,
    #[error("user name contains {character:?}, which is not allowed")]
    UserNameInvalidCharacter { character: char },

    #[error("token name is empty")]
    TokenNameEmpty,
    #[error("token name is longer than {MAX_NAME_CHARS} characters")]
    TokenNameTooLong,
    #[error("token name contains {character:?}, which is not allowed")]
    TokenNameInvalidCharacter { character: char },

    #[error("base path: {0}")]
    ApiBasePath(PathSyntaxError),
    #[error("custom path: {0}")]
    CustomPath(PathSyntaxError),

    #[error("an API needs at least one upstream target")]
    UpstreamTargetsEmpty,
    #[error("an API has at most {MAX_UPSTREAM_TARGETS} upstream targets, not {count}")]
    UpstreamTargetsTooMany { count: usize },
    #[error("upstream target {index} repeats target {first} ({url})")]
    UpstreamTargetDuplicate {
        index: usize,
        first: usize,
        url: String,
    },
    /// `field` is `upstream_targets` (with `index`) or `health_check_url`.
    #[error("{field}: {error}")]
    UpstreamUrl {
        field: &'static str,
        index: Option<usize>,
        error: UrlError,
    },

    #[error("max concurrency per node {value} is outside 1–10000")]
    MaxConcurrencyOutOfRange { value: u32 },
    #[error("retry attempts {value} is outside 0–10")]
    RetryAttemptsOutOfRange { value: u32 },
    #[error("connect timeout {value:?} is outside 1–600 s")]
    ConnectTimeoutOutOfRange { value: Duration },
    #[error("execution timeout {value:?} is outside 1–315360000 s")]
    ExecutionTimeoutOutOfRange { value: Duration },
    #[error("retry case {case} is listed twice")]
    RetryCaseDuplicate { case: &'static str },

    #[error("heartbeat interval {value:?} is outside 1–60 s")]
    HeartbeatIntervalOutOfRange { value: Duration },
    #[error("force restart after {value:?} is outside 1–1440 min")]
    ForceRestartOutOfRange { value: Duration },
    #[error("log retention {value} days is outside 1–3650")]
    LogRetentionOutOfRange { value: u32 },
    #[error("shutdown delay {value:?} is outside 0–600 s")]
    ShutdownDelayOutOfRange { value: Duration },

    #[error("install token validity {value:?} is outside 30–1440 min")]
    InstallTokenValidityOutOfRange { value: Duration },
}

impl ValidationError {
    /// The stable error code, e.g. `GATEWAY_NAME_TOO_LONG`.
    pub fn code(&self) -> &'static str {
        use ValidationError::*;
        match self {
            AccountNameEmpty => "ACCOUNT_NAME_EMPTY",
            AccountNameTooLong => "ACCOUNT_NAME_TOO_LONG",
            AccountNameInvalidCharacter { .. } => "ACCOUNT_NAME_INVALID_CHARACTER",
            GatewayNameEmpty => "GATEWAY_NAME_EMPTY",
            GatewayNameTooLong => "GATEWAY_NAME_TOO_LONG",
            GatewayNameInvalidCharacter { .. } => "GATEWAY_NAME_INVALID_CHARACTER",
            EnvironmentNameEmpty => "ENVIRONMENT_NAME_EMPTY",
            EnvironmentNameTooLong => "ENVIRONMENT_NAME_TOO_LONG",
            EnvironmentNameInvalidCharacter { .. } => "ENVIRONMENT_NAME_INVALID_CHARACTER",
            ApiNameEmpty => "API_NAME_EMPTY",
            ApiNameTooLong => "API_NAME_TOO_LONG",
            ApiNameInvalidCharacter { .. } => "API_NAME_INVALID_CHARACTER",
            ApiVersionEmpty => "API_VERSION_EMPTY",
            ApiVersionTooLong => "API_VERSION_TOO_LONG",
            ApiVersionInvalidCharacter { .. } => "API_VERSION_INVALID_CHARACTER",
            UserNameEmpty => "USER_NAME_EMPTY",
            UserNameTooLong => "USER_NAME_TOO_LONG",
            UserNameInvalidCharacter { .. } => "USER_NAME_INVALID_CHARACTER",
            TokenNameEmpty => "TOKEN_NAME_EMPTY",
            TokenNameTooLong => "TOKEN_NAME_TOO_LONG",
            TokenNameInvalidCharacter { .. } => "TOKEN_NAME_INVALID_CHARACTER",
            ApiBasePath(e) => e.code(PathKind::ApiBase),
            CustomPath(e) => e.code(PathKind::Custom),
            UpstreamTargetsEmpty => "UPSTREAM_TARGETS_EMPTY",
            UpstreamTargetsTooMany { .. } => "UPSTREAM_TARGETS_TOO_MANY",
            UpstreamTargetDuplicate { .. } => "UPSTREAM_TARGET_DUPLICATE",
            UpstreamUrl { error, .. } => error.code(),
            MaxConcurrencyOutOfRange { .. } => "MAX_CONCURRENCY_OUT_OF_RANGE",
            RetryAttemptsOutOfRange { .. } => "RETRY_ATTEMPTS_OUT_OF_RANGE",
            ConnectTimeoutOutOfRange { .. } => "CONNECT_TIMEOUT_OUT_OF_RANGE",
            ExecutionTimeoutOutOfRange { .. } => "EXECUTION_TIMEOUT_OUT_OF_RANGE",
            RetryCaseDuplicate { .. } => "RETRY_CASE_DUPLICATE",
            HeartbeatIntervalOutOfRange { .. } => "HEARTBEAT_INTERVAL_OUT_OF_RANGE",
            ForceRestartOutOfRange { .. } => "FORCE_RESTART_OUT_OF_RANGE",
            LogRetentionOutOfRange { .. } => "LOG_RETENTION_OUT_OF_RANGE",
            ShutdownDelayOutOfRange { .. } => "SHUTDOWN_DELAY_OUT_OF_RANGE",
            InstallTokenValidityOutOfRange { .. } => "INSTALL_TOKEN_VALIDITY_OUT_OF_RANGE",
        }
    }

    /// The REST field this error is about.
    pub fn field(&self) -> &'static str {
        use ValidationError::*;
        match self {
            AccountNameEmpty | AccountNameTooLong | AccountNameInvalidCharacter { .. } => "name",
            GatewayNameEmpty | GatewayNameTooLong | GatewayNameInvalidCharacter { .. } => "name",
            EnvironmentNameEmpty
            | EnvironmentNameTooLong
            | EnvironmentNameInvalidCharacter { .. } => "name",
            ApiNameEmpty | ApiNameTooLong | ApiNameInvalidCharacter { .. } => "name",
            ApiVersionEmpty | ApiVersionTooLong | ApiVersionInvalidCharacter { .. } => "version",
            UserNameEmpty | UserNameTooLong | UserNameInvalidCharacter { .. } => "name",
            TokenNameEmpty | TokenNameTooLong | TokenNameInvalidCharacter { .. } => "name",
            ApiBasePath(_) => "base_path",
            CustomPath(_) => "custom_path",
            UpstreamTargetsEmpty
            | UpstreamTargetsTooMany { .. }
            | UpstreamTargetDuplicate { .. } => "upstream_targets",
            UpstreamUrl { field, .. } => field,
            MaxConcurrencyOutOfRange { .. } => "max_concurrency_per_node",
            RetryAttemptsOutOfRange { .. } => "retry_attempts",
            ConnectTimeoutOutOfRange { .. } => "connect_timeout",
            ExecutionTimeoutOutOfRange { .. } => "execution_timeout",
            RetryCaseDuplicate { .. } => "retry_cases",
            HeartbeatIntervalOutOfRange { .. } => "heartbeat_interval",
            ForceRestartOutOfRange { .. } => "force_restart_after",
            LogRetentionOutOfRange { .. } => "log_retention_days",
            ShutdownDelayOutOfRange { .. } => "shutdown_delay",
            InstallTokenValidityOutOfRange { .. } => "validity",
        }
    }
}

/// The three outcomes of the name rule, mapped to per-object variants by [`name_rule!`].
enum NameRule {
    Empty,
    TooLong,
    InvalidCharacter(char),
}

/// The one name rule: trims `raw`, then refuses an empty name, one over `max_chars`, and a
/// control character or one of [`NAME_FORBIDDEN`].
fn check_name(raw: &str, max_chars: usize) -> Result<String, NameRule> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(NameRule::Empty);
    }
    if name.chars().count() > max_chars {
        return Err(NameRule::TooLong);
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || NAME_FORBIDDEN.contains(c))
    {
        return Err(NameRule::InvalidCharacter(c));
    }
    Ok(name.to_owned())
}

/// Defines `validate_*_name`: [`check_name`] with the object's own error variants.
macro_rules! name_rule {
    ($(#[$doc:meta])* $fn:ident, $max:expr, $empty:ident, $too_long:ident, $invalid:ident) => {
        $(#[$doc])*
        pub fn $fn(raw: &str) -> Result<String, ValidationError> {
            check_name(raw, $max).map_err(|rule| match rule {
                NameRule::Empty => ValidationError::$empty,
                NameRule::TooLong => ValidationError::$too_long,
                NameRule::InvalidCharacter(character) => ValidationError::$invalid { character },
            })
        }
    };
}

name_rule!(
    /// Validates an account name; returns the trimmed name.
    validate_account_name,
    MAX_NAME_CHARS,
    AccountNameEmpty,
    AccountNameTooLong,
    AccountNameInvalidCharacter
);
name_rule!(
    /// Validates a gateway name; returns the trimmed name. Uniqueness among the account's
    /// non-deleted gateways is the store's job.
    validate_gateway_name,
    MAX_NAME_CHARS,
    GatewayNameEmpty,
    GatewayNameTooLong,
    GatewayNameInvalidCharacter
);
name_rule!(
    /// Validates an environment name; returns the trimmed name.
    validate_environment_name,
    MAX_NAME_CHARS,
    EnvironmentNameEmpty,
    EnvironmentNameTooLong,
    EnvironmentNameInvalidCharacter
);
name_rule!(
    /// Validates an API name; returns the trimmed name.
    validate_api_name,
    MAX_NAME_CHARS,
    ApiNameEmpty,
    ApiNameTooLong,
    ApiNameInvalidCharacter
);
name_rule!(
    /// Validates an API version label (e.g. `v1`, `2024-06`); returns the trimmed label.
    validate_api_version,
    MAX_API_VERSION_CHARS,
    ApiVersionEmpty,
    ApiVersionTooLong,
    ApiVersionInvalidCharacter
);
name_rule!(
    /// Validates a user's (display) name; returns the trimmed name.
    validate_user_name,
    MAX_NAME_CHARS,
    UserNameEmpty,
    UserNameTooLong,
    UserNameInvalidCharacter
);
name_rule!(
    /// Validates the name of a personal API token; returns the trimmed name.
    validate_token_name,
    MAX_NAME_CHARS,
    TokenNameEmpty,
    TokenNameTooLong,
    TokenNameInvalidCharacter
);

/// Validates an API base path with the rules of an environment path; returns its normal form.
pub fn validate_api_base_path(raw: &str) -> Result<String, ValidationError> {
    normalize_path(raw).map_err(ValidationError::ApiBasePath)
}

/// Validates a deployment's custom URL path with the rules of an environment path; returns its
/// normal form.
pub fn validate_custom_path(raw: &str) -> Result<String, ValidationError> {
    normalize_path(raw).map_err(ValidationError::CustomPath)
}

/// Checks the execution settings against the ranges of SPEC §5. Reports the first broken rule
/// in field order.
pub fn validate_execution_settings(s: &ExecutionSettings) -> Result<(), ValidationError> {
    if !in_range(s.max_concurrency_per_node, MAX_CONCURRENCY_RANGE) {
        return Err(ValidationError::MaxConcurrencyOutOfRange {
            value: s.max_concurrency_per_node,
        });
    }
    if !in_range(s.retry_attempts, RETRY_ATTEMPTS_RANGE) {
        return Err(ValidationError::RetryAttemptsOutOfRange {
            value: s.retry_attempts,
        });
    }
    if !in_range(s.connect_timeout, CONNECT_TIMEOUT_RANGE) {
        return Err(ValidationError::ConnectTimeoutOutOfRange {
            value: s.connect_timeout,
        });
    }
    if !in_range(s.execution_timeout, EXECUTION_TIMEOUT_RANGE) {
        return Err(ValidationError::ExecutionTimeoutOutOfRange {
            value: s.execution_timeout,
        });
    }
    for (i, case) in s.retry_cases.iter().enumerate() {
        if s.retry_cases[..i].contains(case) {
            return Err(ValidationError::RetryCaseDuplicate {
                case: case.as_str(),
            });
        }
    }
    Ok(())
}

/// Checks the gateway properties, including its default execution settings.
pub fn validate_gateway_settings(s: &GatewaySettings) -> Result<(), ValidationError> {
    if !in_range(s.heartbeat_interval, HEARTBEAT_INTERVAL_RANGE) {
        return Err(ValidationError::HeartbeatIntervalOutOfRange {
            value: s.heartbeat_interval,
        });
    }
    if let Some(value) = s.force_restart_after
        && !in_range(value, FORCE_RESTART_AFTER_RANGE)
    {
        return Err(ValidationError::ForceRestartOutOfRange { value });
    }
    if !in_range(s.log_retention_days, LOG_RETENTION_DAYS_RANGE) {
        return Err(ValidationError::LogRetentionOutOfRange {
            value: s.log_retention_days,
        });
    }
    if !in_range(s.shutdown_delay, SHUTDOWN_DELAY_RANGE) {
        return Err(ValidationError::ShutdownDelayOutOfRange {
            value: s.shutdown_delay,
        });
    }
    validate_execution_settings(&s.execution)
}

/// Checks an install token's validity period: 30 minutes to 24 hours, inclusive.
pub fn validate_install_token_validity(validity: Duration) -> Result<(), ValidationError> {
    if in_range(validity, INSTALL_TOKEN_VALIDITY_RANGE) {
        Ok(())
    } else {
        Err(ValidationError::InstallTokenValidityOutOfRange { value: validity })
    }
}

fn in_range<T: PartialOrd>(value: T, (min, max): (T, T)) -> bool {
    min <= value && value <= max
}

/// Why a URL is not an acceptable upstream URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum UrlError {
    #[error("the URL is empty")]
    Empty,
    #[error("the URL contains a space, a control or a non-ASCII character")]
    InvalidCharacter,
    #[error("the URL is not absolute (scheme://host/...)")]
    NotAbsolute,
    #[error("only http and https URLs are supported")]
    UnsupportedScheme,
    #[error("the URL has no host")]
    HostMissing,
    #[error("the URL's host is not a valid host name or IP address")]
    HostInvalid,
    #[error("the URL's port is not a number from 1 to 65535")]
    PortInvalid,
    #[error("credentials in the URL are not allowed; use backend authentication")]
    Userinfo,
    #[error("the URL has a fragment ('#'), which is never sent to a server")]
    Fragment,
    #[error("the URL contains a malformed '%' escape")]
    InvalidEncoded,
}

impl UrlError {
    /// The stable error code, e.g. `UPSTREAM_URL_UNSUPPORTED_SCHEME`.
    pub fn code(self) -> &'static str {
        match self {
            UrlError::Empty => "UPSTREAM_URL_EMPTY",
            UrlError::InvalidCharacter => "UPSTREAM_URL_INVALID_CHARACTER",
            UrlError::NotAbsolute => "UPSTREAM_URL_NOT_ABSOLUTE",
            UrlError::UnsupportedScheme => "UPSTREAM_URL_UNSUPPORTED_SCHEME",
            UrlError::HostMissing => "UPSTREAM_URL_HOST_MISSING",
            UrlError::HostInvalid => "UPSTREAM_URL_HOST_INVALID",
            UrlError::PortInvalid => "UPSTREAM_URL_PORT_INVALID",
            UrlError::Userinfo => "UPSTREAM_URL_USERINFO",
            UrlError::Fragment => "UPSTREAM_URL_FRAGMENT",
            UrlError::InvalidEncoded => "UPSTREAM_URL_INVALID_ENCODED",
        }
    }
}

/// Scheme of an upstream URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A parsed upstream URL, ready for the gateway to connect to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamUrl {
    pub scheme: Scheme,
    /// Lowercase host name or IP address; IPv6 addresses keep their brackets.
    pub host: String,
    /// The explicit port, else the scheme's default.
    pub port: u16,
    /// Path and query as written (at least `/`).
    pub path_and_query: String,
}

impl UpstreamUrl {
    /// The normalised URL text, with the port only when it is not the scheme's default.
    pub fn to_url_string(&self) -> String {
        if self.port == self.scheme.default_port() {
            format!(
                "{}://{}{}",
                self.scheme.as_str(),
                self.host,
                self.path_and_query
            )
        } else {
            format!(
                "{}://{}:{}{}",
                self.scheme.as_str(),
                self.host,
                self.port,
                self.path_and_query
            )
        }
    }
}

/// Parses an absolute http(s) URL with a host: `http://10.0.0.5:8080/base?x=1`.
///
/// Parsed by hand rather than with a URL crate because the accepted language is small and
/// strict: ASCII only (international host names must be given in their `xn--` form), no
/// credentials (they would leak into logs; backend authentication holds them), no fragment.
/// Surrounding whitespace is trimmed.
pub fn parse_upstream_url(raw: &str) -> Result<UpstreamUrl, UrlError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(UrlError::Empty);
    }
    if s.chars()
        .any(|c| !c.is_ascii() || c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(UrlError::InvalidCharacter);
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(UrlError::NotAbsolute);
    };
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        Scheme::Http
    } else if scheme.eq_ignore_ascii_case("https") {
        Scheme::Https
    } else {
        return Err(UrlError::UnsupportedScheme);
    };
    if rest.contains('#') {
        return Err(UrlError::Fragment);
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(UrlError::Userinfo);
    }
    let (host, port) = split_host_port(authority)?;
    check_escapes(path_and_query)?;
    let port = match port {
        None => scheme.default_port(),
        Some(p) => parse_port(p)?,
    };
    let path_and_query = if path_and_query.starts_with('/') {
        path_and_query.to_owned()
    } else {
        format!("/{path_and_query}")
    };
    Ok(UpstreamUrl {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
        path_and_query,
    })
}

/// Splits `host[:port]` or `[v6][:port]` and checks the host.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), UrlError> {
    if authority.is_empty() {
        return Err(UrlError::HostMissing);
    }
    if authority.starts_with('[') {
        let Some(close) = authority.find(']') else {
            return Err(UrlError::HostInvalid);
        };
        let (host, after) = authority.split_at(close + 1);
        let inner = &host[1..host.len() - 1];
        let valid = inner.contains(':')
            && inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        if !valid {
            return Err(UrlError::HostInvalid);
        }
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(UrlError::HostInvalid),
            },
        };
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(UrlError::HostMissing);
    }
    // A single trailing dot (a fully qualified name) is allowed.
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if !labels_ok || host.len() > 253 {
        return Err(UrlError::HostInvalid);
    }
    Ok((host, port))
}

fn parse_port(p: &str) -> Result<u16, UrlError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::PortInvalid);
    }
    match p.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(UrlError::PortInvalid),
    }
}

fn check_escapes(s: &str) -> Result<(), UrlError> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(UrlError::InvalidEncoded);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Validates the upstream target URL at `index` of an API.
pub fn validate_upstream_target_url(
    index: usize,
    raw: &str,
) -> Result<UpstreamUrl, ValidationError> {
    parse_upstream_url(raw).map_err(|error| ValidationError::UpstreamUrl {
        field: "upstream_targets",
        index: Some(index),
        error,
    })
}

/// Validates an API's health-check URL.
pub fn validate_health_check_url(raw: &str) -> Result<UpstreamUrl, ValidationError> {
    parse_upstream_url(raw).map_err(|error| ValidationError::UpstreamUrl {
        field: "health_check_url",
        index: None,
        error,
    })
}

/// Validates an API's list of upstream target URLs: 1 to [`MAX_UPSTREAM_TARGETS`], each valid,
/// none repeated (compared in normal form, so `http://H:80` repeats `http://h/`).
pub fn validate_upstream_targets<'a>(
    urls: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<UpstreamUrl>, ValidationError> {
    let urls: Vec<&str> = urls.into_iter().collect();
    if urls.len() > MAX_UPSTREAM_TARGETS {
        return Err(ValidationError::UpstreamTargetsTooMany { count: urls.len() });
    }
    let mut parsed: Vec<UpstreamUrl> = Vec::with_capacity(urls.len());
    for (index, url) in urls.into_iter().enumerate() {
        let url = validate_upstream_target_url(index, url)?;
        if let Some(first) = parsed.iter().position(|earlier| *earlier == url) {
            return Err(ValidationError::UpstreamTargetDuplicate {
                index,
                first,
                url: url.to_url_string(),
            });
        }
        parsed.push(url);
    }
    if parsed.is_empty() {
        return Err(ValidationError::UpstreamTargetsEmpty);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::RetryCase;

    /// Renders a result as the stored value, or `!CODE@field`.
    fn render<T: std::fmt::Debug>(r: Result<T, ValidationError>) -> String {
        match r {
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("!{}@{}", e.code(), e.field()),
        }
    }

    #[track_caller]
    fn check<T: std::fmt::Debug>(r: Result<T, ValidationError>, expected: &str) {
        assert_eq!(render(r), expected);
    }

    #[test]
    fn names() {
        let long = "x".repeat(81);
        let max = "é".repeat(80);
        check(validate_gateway_name("gw-1"), r#""gw-1""#);
        check(validate_gateway_name("  East 1 "), r#""East 1""#);
        check(validate_gateway_name(&max), &format!("{max:?}"));
        check(validate_gateway_name(""), "!GATEWAY_NAME_EMPTY@name");
        check(validate_gateway_name(" \t "), "!GATEWAY_NAME_EMPTY@name");
        check(validate_gateway_name(&long), "!GATEWAY_NAME_TOO_LONG@name");
        check(
            validate_gateway_name("a\u{7}b"),
            "!GATEWAY_NAME_INVALID_CHARACTER@name",
        );
        for c in NAME_FORBIDDEN {
            let r = validate_gateway_name(&format!("gw{c}1"));
            assert_eq!(
                r,
                Err(ValidationError::GatewayNameInvalidCharacter { character: *c })
            );
        }
        check(validate_gateway_name("gw.1_(a)#&"), r#""gw.1_(a)#&""#);

        check(validate_account_name(" Acme "), r#""Acme""#);
        check(validate_account_name(""), "!ACCOUNT_NAME_EMPTY@name");
        check(validate_account_name(&long), "!ACCOUNT_NAME_TOO_LONG@name");
        check(
            validate_account_name("a\nb"),
            "!ACCOUNT_NAME_INVALID_CHARACTER@name",
        );
        check(validate_environment_name("Prod (EU-1)"), r#""Prod (EU-1)""#);
        check(
            validate_environment_name(" "),
            "!ENVIRONMENT_NAME_EMPTY@name",
        );
        check(
            validate_environment_name(&long),
            "!ENVIRONMENT_NAME_TOO_LONG@name",
        );
        check(
            validate_environment_name("a\u{0}"),
            "!ENVIRONMENT_NAME_INVALID_CHARACTER@name",
        );
        check(validate_api_name("Orders"), r#""Orders""#);
        check(validate_api_name(""), "!API_NAME_EMPTY@name");
        check(validate_api_name(&long), "!API_NAME_TOO_LONG@name");
        check(
            validate_api_name("a\rb"),
            "!API_NAME_INVALID_CHARACTER@name",
        );
        check(validate_api_version(" v1 "), r#""v1""#);
        check(validate_api_version(""), "!API_VERSION_EMPTY@version");
        check(
            validate_api_version(&"1".repeat(41)),
            "!API_VERSION_TOO_LONG@version",
        );
        check(
            validate_api_version("v\u{1b}1"),
            "!API_VERSION_INVALID_CHARACTER@version",
        );
        check(validate_user_name(" Ada Lovelace "), r#""Ada Lovelace""#);
        check(validate_user_name(""), "!USER_NAME_EMPTY@name");
        check(validate_user_name(&long), "!USER_NAME_TOO_LONG@name");
        check(validate_token_name("ci (build)"), r#""ci (build)""#);
        check(validate_token_name(" "), "!TOKEN_NAME_EMPTY@name");
        check(validate_token_name(&long), "!TOKEN_NAME_TOO_LONG@name");
    }

    /// Every named object refuses what the gateway name always refused: one rule.
    #[test]
    fn one_name_rule_for_every_object() {
        type Validator = fn(&str) -> Result<String, ValidationError>;
        let validators: [(Validator, &str); 7] = [
            (validate_account_name, "ACCOUNT_NAME_INVALID_CHARACTER"),
            (validate_gateway_name, "GATEWAY_NAME_INVALID_CHARACTER"),
            (
                validate_environment_name,
                "ENVIRONMENT_NAME_INVALID_CHARACTER",
            ),
            (validate_api_name, "API_NAME_INVALID_CHARACTER"),
            (validate_api_version, "API_VERSION_INVALID_CHARACTER"),
            (validate_user_name, "USER_NAME_INVALID_CHARACTER"),
            (validate_token_name, "TOKEN_NAME_INVALID_CHARACTER"),
        ];
        for (validate, code) in validators {
            for c in NAME_FORBIDDEN
                .iter()
                .copied()
                .chain(['\u{0}', '\n', '\u{7f}'])
            {
                let err = validate(&format!("a{c}b")).unwrap_err();
                assert_eq!((err.code(), err.field().is_empty()), (code, false), "{c:?}");
                assert!(err.to_string().contains(&format!("{c:?}")), "{err}");
            }
            let err = validate("<script>alert(2)</script>").unwrap_err();
            assert_eq!(err.code(), code);
            assert_eq!(
                validate(" ok-name_1.2 (x) #&+ "),
                Ok("ok-name_1.2 (x) #&+".into())
            );
        }
    }

    #[test]
    fn api_paths() {
        check(validate_api_base_path("orders/v1"), r#""orders/v1""#);
        check(validate_api_base_path("ordérs"), r#""ord%C3%A9rs""#);
        check(
            validate_api_base_path("/orders"),
            "!API_BASE_PATH_LEADING_SLASH@base_path",
        );
        check(validate_api_base_path(""), "!API_BASE_PATH_EMPTY@base_path");
        check(
            validate_api_base_path("a/%2e%2E"),
            "!API_BASE_PATH_RELATIVE@base_path",
        );
        check(validate_custom_path("shop/orders"), r#""shop/orders""#);
        check(
            validate_custom_path("a//b"),
            "!CUSTOM_PATH_CONSECUTIVE_SLASHES@custom_path",
        );
        check(
            validate_custom_path("a b"),
            "!CUSTOM_PATH_SPACES@custom_path",
        );
    }

    #[track_caller]
    fn check_url(raw: &str, expected: &str) {
        let actual = match parse_upstream_url(raw) {
            Ok(u) => u.to_url_string(),
            Err(e) => format!("!{}", e.code()),
        };
        assert_eq!(actual, expected, "input {raw:?}");
    }

    #[test]
    fn upstream_urls() {
        check_url("http://10.0.0.5:8080/base", "http://10.0.0.5:8080/base");
        check_url(" HTTPS://Api.Example.COM ", "https://api.example.com/");
        check_url(
            "https://api.example.com:443/x?y=1&z=%2F",
            "https://api.example.com/x?y=1&z=%2F",
        );
        check_url("http://h:80", "http://h/");
        check_url("http://h?q", "http://h/?q");
        check_url("http://[::1]:9000/p", "http://[::1]:9000/p");
        check_url("http://[fe80::1]", "http://[fe80::1]/");
        check_url("http://my_host.local./", "http://my_host.local./");
        check_url("", "!UPSTREAM_URL_EMPTY");
        check_url("http://a b/", "!UPSTREAM_URL_INVALID_CHARACTER");
        check_url("http://exämple.com/", "!UPSTREAM_URL_INVALID_CHARACTER");
        check_url("example.com/x", "!UPSTREAM_URL_NOT_ABSOLUTE");
        check_url("/x", "!UPSTREAM_URL_NOT_ABSOLUTE");
        check_url("ftp://example.com/", "!UPSTREAM_URL_UNSUPPORTED_SCHEME");
        check_url("ws://example.com/", "!UPSTREAM_URL_UNSUPPORTED_SCHEME");
        check_url("http:///x", "!UPSTREAM_URL_HOST_MISSING");
        check_url("http://:80/x", "!UPSTREAM_URL_HOST_MISSING");
        check_url("http://a..b/", "!UPSTREAM_URL_HOST_INVALID");
        check_url("http://-a.com/", "!UPSTREAM_URL_HOST_INVALID");
        check_url("http://a$b/", "!UPSTREAM_URL_HOST_INVALID");
        check_url("http://[::1/", "!UPSTREAM_URL_HOST_INVALID");
        check_url("http://[zz]/", "!UPSTREAM_URL_HOST_INVALID");
        check_url("http://[::1]x/", "!UPSTREAM_URL_HOST_INVALID");
        check_url("http://h:0/", "!UPSTREAM_URL_PORT_INVALID");
        check_url("http://h:65536/", "!UPSTREAM_URL_PORT_INVALID");
        check_url("http://h:/", "!UPSTREAM_URL_PORT_INVALID");
        check_url("http://h:8a/", "!UPSTREAM_URL_PORT_INVALID");
        check_url("http://user:pw@h/", "!UPSTREAM_URL_USERINFO");
        check_url("http://h/x#frag", "!UPSTREAM_URL_FRAGMENT");
        check_url("http://h/x%2", "!UPSTREAM_URL_INVALID_ENCODED");
        check_url("http://h/x?a=%zz", "!UPSTREAM_URL_INVALID_ENCODED");
    }

    #[test]
    fn upstream_url_fields() {
        let err = validate_upstream_targets(["http://a/", "ftp://b/"]).unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            ("UPSTREAM_URL_UNSUPPORTED_SCHEME", "upstream_targets")
        );
        assert!(matches!(
            err,
            ValidationError::UpstreamUrl { index: Some(1), .. }
        ));
        check(
            validate_upstream_targets([]),
            "!UPSTREAM_TARGETS_EMPTY@upstream_targets",
        );
        let many: Vec<String> = (0..=MAX_UPSTREAM_TARGETS)
            .map(|i| format!("http://10.0.0.{i}/"))
            .collect();
        let at_limit =
            validate_upstream_targets(many[..MAX_UPSTREAM_TARGETS].iter().map(|s| s.as_str()));
        assert_eq!(at_limit.unwrap().len(), MAX_UPSTREAM_TARGETS);
        check(
            validate_upstream_targets(many.iter().map(|s| s.as_str())),
            "!UPSTREAM_TARGETS_TOO_MANY@upstream_targets",
        );
        let err =
            validate_upstream_targets(["http://a/x", "http://b/", "HTTP://A:80/x"]).unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            ("UPSTREAM_TARGET_DUPLICATE", "upstream_targets")
        );
        assert_eq!(
            err,
            ValidationError::UpstreamTargetDuplicate {
                index: 2,
                first: 0,
                url: "http://a/x".into()
            }
        );
        assert_eq!(
            validate_upstream_targets(["http://a:81/"]).unwrap()[0].port,
            81
        );
        check(
            validate_health_check_url("http://h/health#x"),
            "!UPSTREAM_URL_FRAGMENT@health_check_url",
        );
        assert_eq!(
            validate_health_check_url("https://h/health").unwrap().port,
            443
        );
    }

    #[track_caller]
    fn check_exec(edit: impl FnOnce(&mut ExecutionSettings), expected: &str) {
        let mut s = ExecutionSettings::default();
        edit(&mut s);
        check(validate_execution_settings(&s), expected);
    }

    #[test]
    fn execution_settings_ranges() {
        let secs = Duration::from_secs;
        check_exec(|_| {}, "()");
        check_exec(|s| s.max_concurrency_per_node = 1, "()");
        check_exec(|s| s.max_concurrency_per_node = 10_000, "()");
        check_exec(
            |s| s.max_concurrency_per_node = 0,
            "!MAX_CONCURRENCY_OUT_OF_RANGE@max_concurrency_per_node",
        );
        check_exec(
            |s| s.max_concurrency_per_node = 10_001,
            "!MAX_CONCURRENCY_OUT_OF_RANGE@max_concurrency_per_node",
        );
        check_exec(|s| s.retry_attempts = 0, "()");
        check_exec(|s| s.retry_attempts = 10, "()");
        check_exec(
            |s| s.retry_attempts = 11,
            "!RETRY_ATTEMPTS_OUT_OF_RANGE@retry_attempts",
        );
        check_exec(|s| s.connect_timeout = secs(1), "()");
        check_exec(|s| s.connect_timeout = secs(600), "()");
        check_exec(
            |s| s.connect_timeout = Duration::from_millis(999),
            "!CONNECT_TIMEOUT_OUT_OF_RANGE@connect_timeout",
        );
        check_exec(
            |s| s.connect_timeout = Duration::from_millis(600_001),
            "!CONNECT_TIMEOUT_OUT_OF_RANGE@connect_timeout",
        );
        check_exec(|s| s.execution_timeout = secs(315_360_000), "()");
        check_exec(
            |s| s.execution_timeout = Duration::ZERO,
            "!EXECUTION_TIMEOUT_OUT_OF_RANGE@execution_timeout",
        );
        check_exec(
            |s| s.execution_timeout = secs(315_360_001),
            "!EXECUTION_TIMEOUT_OUT_OF_RANGE@execution_timeout",
        );
        check_exec(|s| s.retry_cases = RetryCase::ALL.to_vec(), "()");
        check_exec(|s| s.retry_cases = vec![], "()");
        check_exec(
            |s| s.retry_cases.push(RetryCase::HostNotFound),
            "!RETRY_CASE_DUPLICATE@retry_cases",
        );
    }

    #[track_caller]
    fn check_gw(edit: impl FnOnce(&mut GatewaySettings), expected: &str) {
        let mut s = GatewaySettings::default();
        edit(&mut s);
        check(validate_gateway_settings(&s), expected);
    }

    #[test]
    fn gateway_settings_ranges() {
        let secs = Duration::from_secs;
        check_gw(|_| {}, "()");
        check_gw(|s| s.heartbeat_interval = secs(60), "()");
        check_gw(
            |s| s.heartbeat_interval = secs(61),
            "!HEARTBEAT_INTERVAL_OUT_OF_RANGE@heartbeat_interval",
        );
        check_gw(
            |s| s.heartbeat_interval = Duration::ZERO,
            "!HEARTBEAT_INTERVAL_OUT_OF_RANGE@heartbeat_interval",
        );
        check_gw(|s| s.force_restart_after = Some(secs(600)), "()");
        check_gw(
            |s| s.force_restart_after = Some(secs(59)),
            "!FORCE_RESTART_OUT_OF_RANGE@force_restart_after",
        );
        check_gw(
            |s| s.force_restart_after = Some(secs(86_401)),
            "!FORCE_RESTART_OUT_OF_RANGE@force_restart_after",
        );
        check_gw(
            |s| s.log_retention_days = 0,
            "!LOG_RETENTION_OUT_OF_RANGE@log_retention_days",
        );
        check_gw(
            |s| s.log_retention_days = 3651,
            "!LOG_RETENTION_OUT_OF_RANGE@log_retention_days",
        );
        check_gw(
            |s| s.shutdown_delay = secs(601),
            "!SHUTDOWN_DELAY_OUT_OF_RANGE@shutdown_delay",
        );
        check_gw(
            |s| s.execution.retry_attempts = 11,
            "!RETRY_ATTEMPTS_OUT_OF_RANGE@retry_attempts",
        );
    }

    #[test]
    fn install_token_validity() {
        let min = |m: u64| Duration::from_secs(m * 60);
        check(validate_install_token_validity(min(30)), "()");
        check(validate_install_token_validity(min(1440)), "()");
        check(
            validate_install_token_validity(min(30) - Duration::from_millis(1)),
            "!INSTALL_TOKEN_VALIDITY_OUT_OF_RANGE@validity",
        );
        check(
            validate_install_token_validity(min(1441)),
            "!INSTALL_TOKEN_VALIDITY_OUT_OF_RANGE@validity",
        );
    }
}
