//! Name resolution and connecting to a target, shared by the node's own HTTP/1.1 client and
//! hyper's pooled client (as its connector's resolver), so that both tell a host that does not
//! resolve from one that cannot be reached by type ([`ResolveError`]), not by message text.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::dns::Name;
use tokio::net::TcpStream;

use super::pool::UpstreamConn;
use super::{Target, UpstreamFailure};

/// A host name did not resolve (or resolved to no address).
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}: {source}")]
pub struct ResolveError {
    pub host: String,
    #[source]
    pub source: io::Error,
}

/// The addresses of `host` (an IP literal, bracketed or not, or a name to look up) at `port`.
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let failed = |source| ResolveError {
        host: host.to_owned(),
        source,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(failed)?
        .collect();
    if addrs.is_empty() {
        return Err(failed(io::Error::new(
            io::ErrorKind::NotFound,
            "no address",
        )));
    }
    Ok(addrs)
}

/// A new connection to `target` for the node's own client, within `timeout`.
pub async fn connect(target: &Target, timeout: Duration) -> Result<UpstreamConn, UpstreamFailure> {
    let attempt = async {
        let port = target.authority.port_u16().unwrap_or(80);
        let addrs = resolve(target.authority.host(), port)
            .await
            .map_err(|_| UpstreamFailure::HostNotFound)?;
        let mut failure = UpstreamFailure::HostRouting;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(UpstreamConn::new(stream));
                }
                Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                    failure = UpstreamFailure::ConnectTimeout;
                }
                Err(_) => {}
            }
        }
        Err(failure)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(UpstreamFailure::ConnectTimeout))
}

/// [`resolve`] as the resolver of hyper's `HttpConnector` (which sets the port itself).
#[derive(Debug, Clone, Copy, Default)]
pub struct Resolver;

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        Box::pin(async move { resolve(name.as_str(), 0).await.map(Vec::into_iter) })
    }
}
