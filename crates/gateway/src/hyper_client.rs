//! hyper's pooled client, for what the node's own HTTP/1.1 client (`h1client`) does not take:
//! `https://` and `h2c://` targets, WebSocket upgrades, streamed request bodies and active
//! health checks. Building it (TLS roots, the shared resolver) and classifying its errors into
//! [`UpstreamFailure`]s.

use std::error::Error as StdError;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::body::UpstreamRequestBody;
use crate::client_body::BodyError;
use crate::upstream::UpstreamFailure;
use crate::upstream::connect::{ResolveError, Resolver};

pub type HttpsConnector = hyper_rustls::HttpsConnector<HttpConnector<Resolver>>;
pub type UpstreamClient = Client<HttpsConnector, UpstreamRequestBody>;

/// Classifies an error of hyper's client by walking its source chain.
pub fn classify(error: &hyper_util::client::legacy::Error) -> UpstreamFailure {
    let connect = error.is_connect();
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(e) = source {
        if let Some(body) = e.downcast_ref::<BodyError>() {
            return match body {
                BodyError::TooLarge => UpstreamFailure::RequestBodyTooLarge,
                BodyError::Client(_) => UpstreamFailure::RequestBodyBroken,
                BodyError::TimedOut(reason) => UpstreamFailure::RequestBodyTimeout(*reason),
            };
        }
        if e.is::<ResolveError>() {
            return UpstreamFailure::HostNotFound;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                TimedOut if connect => return UpstreamFailure::ConnectTimeout,
                ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable
                    if connect =>
                {
                    return UpstreamFailure::HostRouting;
                }
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    return UpstreamFailure::ConnectionDropped;
                }
                _ => {}
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return UpstreamFailure::ConnectionDropped;
        }
        source = e.source();
    }
    if connect {
        UpstreamFailure::HostRouting
    } else {
        UpstreamFailure::ConnectionDropped
    }
}

fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        if !loaded.errors.is_empty() {
            tracing::warn!(
                errors = loaded.errors.len(),
                "some system root certificates did not load"
            );
        }
        loaded.certs
    })
}

/// Why the upstream TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("upstream CA: {0}")]
pub struct CaError(String);

/// Builds a pooled client. `h2c` forces HTTP/2 with prior knowledge; otherwise HTTP/1.1 for
/// `http` and ALPN (h2 or http/1.1) for `https`.
pub fn build_client(
    connect_timeout: Duration,
    h2c: bool,
    extra_ca_pem: Option<&str>,
) -> Result<UpstreamClient, CaError> {
    let mut roots = rustls::RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(native_roots().iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let mut any = false;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| CaError(e.to_string()))?;
            roots.add(cert).map_err(|e| CaError(e.to_string()))?;
            any = true;
        }
        if !any {
            return Err(CaError("no certificate in PEM".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new_with_resolver(Resolver);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .http2_only(h2c);
    Ok(builder.build(connector))
}
