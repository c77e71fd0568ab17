//! The node's identity in its data directory: the node id (generated once), the node credential
//! obtained by joining with an install token, and the `running` marker that reveals an unclean
//! exit of the previous run.
//!
//! Layout of the data directory `D` (mode 0700):
//! - `D/node-id`: the node id, a UUIDv7 generated on the first start and never changed.
//! - `D/credential.json` (0600): [`StoredCredential`], written atomically after a join.
//! - `D/running`: present while a run is under way; left behind by a crash.
//! - `D/snapshot.json`: the snapshot cache (`crate::cache`).

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use protocol::link::{
    JoinRequest, JoinResponse, PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, RefusalCode,
};
use serde::{Deserialize, Serialize};

use crate::body::UpstreamRequestBody;
use crate::cache::write_atomic;

pub const NODE_ID_FILE: &str = "node-id";
pub const CREDENTIAL_FILE: &str = "credential.json";
pub const RUNNING_FILE: &str = "running";

/// Largest join answer read; a JSON object of a few ids.
const MAX_JOIN_RESPONSE_BYTES: usize = 64 * 1024;

/// What a node keeps after joining (mode 0600).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredCredential {
    pub platform_url: String,
    pub gateway_id: String,
    #[serde(default)]
    pub gateway_name: String,
    #[serde(default)]
    pub account_id: String,
    pub node_id: String,
    pub node_credential: String,
}

/// Why the node's identity could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}; remove it to join again")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "no node credential in {path} and no install token: join first with \
         `switchyard gateway --platform URL --install-token TOKEN --name GATEWAY --data-dir DIR`"
    )]
    NotJoined { path: PathBuf },
    #[error("the platform refused the install token (HTTP {status}): {message}")]
    JoinRefused { status: u16, message: String },
    #[error("cannot reach the platform at {url} to join: {message}")]
    PlatformUnreachable { url: String, message: String },
    #[error("platform URL {url:?} is not valid: {message}")]
    BadPlatformUrl { url: String, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the data directory (0700) if needed.
pub fn ensure_data_dir(dir: &Path) -> Result<(), IdentityError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

/// The node id stored in `dir`, generated (UUIDv7) and stored on first use.
pub fn node_id(dir: &Path) -> Result<String, IdentityError> {
    let path = dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if uuid::Uuid::parse_str(id).is_err() {
                return Err(IdentityError::Invalid {
                    path,
                    message: format!("{id:?} is not a UUID"),
                });
            }
            Ok(id.to_string())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid::Uuid::now_v7().to_string();
            write_atomic(dir, NODE_ID_FILE, format!("{id}\n").as_bytes(), 0o600)
                .map_err(io(&path))?;
            Ok(id)
        }
        Err(source) => Err(IdentityError::Io { path, source }),
    }
}

/// The stored credential, if the node has joined.
pub fn load_credential(dir: &Path) -> Result<Option<StoredCredential>, IdentityError> {
    let path = dir.join(CREDENTIAL_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(IdentityError::Io { path, source }),
    };
    let meta = std::fs::metadata(&path).map_err(io(&path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "credential file is readable by others; use mode 0600");
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| IdentityError::Invalid {
            path,
            message: e.to_string(),
        })
}

pub fn store_credential(dir: &Path, credential: &StoredCredential) -> Result<(), IdentityError> {
    let path = dir.join(CREDENTIAL_FILE);
    let bytes = serde_json::to_vec_pretty(credential).expect("a credential serialises");
    write_atomic(dir, CREDENTIAL_FILE, &bytes, 0o600).map_err(io(&path))
}

/// Creates the `running` marker; answers whether one was already there (an unclean exit).
pub fn mark_running(dir: &Path) -> Result<bool, IdentityError> {
    let path = dir.join(RUNNING_FILE);
    let unclean = path.exists();
    let contents = format!("{}\n", std::process::id());
    write_atomic(dir, RUNNING_FILE, contents.as_bytes(), 0o600).map_err(io(&path))?;
    Ok(unclean)
}

/// Removes the `running` marker at a clean exit.
pub fn clear_running(dir: &Path) {
    let path = dir.join(RUNNING_FILE);
    if let Err(error) = std::fs::remove_file(&path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), %error, "cannot remove the running marker");
        }
    }
}

/// `https://host:port/prefix/` → `https://host:port/prefix` (no trailing slash).
pub fn normalise_platform_url(url: &str) -> Result<String, IdentityError> {
    let trimmed = url.trim().trim_end_matches('/');
    let bad = |message: &str| IdentityError::BadPlatformUrl {
        url: url.to_string(),
        message: message.to_string(),
    };
    let uri: http::Uri = trimmed.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(bad("the scheme must be http or https")),
    }
    if uri.host().is_none() {
        return Err(bad("no host"));
    }
    if uri.query().is_some() {
        return Err(bad("no query string allowed"));
    }
    Ok(trimmed.to_string())
}

/// Exchanges an install token for a node credential (`POST /api/v1/nodes/join`).
pub async fn join(
    platform_url: &str,
    request: &JoinRequest,
    timeout: Duration,
) -> Result<JoinResponse, IdentityError> {
    let url = format!("{platform_url}/api/v1/nodes/join");
    let unreachable = |message: String| IdentityError::PlatformUnreachable {
        url: platform_url.to_string(),
        message,
    };
    let client = crate::hyper_client::build_client(timeout, false, None)
        .map_err(|e| unreachable(e.to_string()))?;
    let body = serde_json::to_vec(request).expect("a join request serialises");
    let req = Request::builder()
        .method(Method::POST)
        .uri(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .header(PROTOCOL_VERSION_HEADER, PROTOCOL_VERSION.to_string())
        .body(UpstreamRequestBody::Full(Some(Bytes::from(body))))
        .map_err(|e| IdentityError::BadPlatformUrl {
            url: url.clone(),
            message: e.to_string(),
        })?;
    let exchange = async {
        let response = client.request(req).await.map_err(|e| {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                message = format!("{message}: {inner}");
                source = inner.source();
            }
            message
        })?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_JOIN_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| unreachable(format!("no answer within {timeout:?}")))?
        .map_err(unreachable)?;
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|e| IdentityError::JoinRefused {
            status: status.as_u16(),
            message: format!("unexpected answer: {e}"),
        });
    }
    Err(IdentityError::JoinRefused {
        status: status.as_u16(),
        message: error_message(status, &body),
    })
}

/// The code of the platform's error envelope (`{"error":{"code"}}`) when the node acts on it.
pub fn refusal_code(body: &[u8]) -> Option<RefusalCode> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Code,
    }
    #[derive(serde::Deserialize)]
    struct Code {
        code: String,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    RefusalCode::parse(&envelope.error.code)
}

/// The message of the platform's error envelope (`{"error":{"code","message"}}`), else the body.
pub fn error_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let error = value.get("error").unwrap_or(&value);
        let message = error.get("message").and_then(|m| m.as_str());
        let code = error.get("code").and_then(|c| c.as_str());
        match (code, message) {
            (Some(code), Some(message)) => return format!("{message} ({code})"),
            (None, Some(message)) => return message.to_string(),
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text.chars().take(500).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_urls() {
        let ok = |input: &str, expect: &str| {
            assert_eq!(normalise_platform_url(input).unwrap(), expect, "{input}");
        };
        ok("http://127.0.0.1:8080", "http://127.0.0.1:8080");
        ok("https://platform.example/", "https://platform.example");
        ok(
            "https://platform.example/prefix/",
            "https://platform.example/prefix",
        );
        for bad in ["platform.example", "ftp://x", "http://x/?a=1", ""] {
            assert!(normalise_platform_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_messages() {
        let check = |body: &str, expect: &str| {
            assert_eq!(
                error_message(StatusCode::UNAUTHORIZED, body.as_bytes()),
                expect
            );
        };
        check(
            r#"{"error":{"code":"INSTALL_TOKEN_EXPIRED","message":"install token expired","details":{}}}"#,
            "install token expired (INSTALL_TOKEN_EXPIRED)",
        );
        check(r#"{"message":"nope"}"#, "nope");
        check("plain text", "plain text");
        check("", "Unauthorized");
    }
}
