//! Listeners and connections: accept loops for HTTP (HTTP/1.1 and h2c prior knowledge), HTTPS
//! (ALPN h2 and http/1.1) and the admin port. Each client connection is read through the
//! framing guard and served by the node's own HTTP/1.1 server (`h1server`), which hands what it
//! does not serve (HTTP/2, upgrades, streamed bodies) to hyper-util's auto builder.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::Shared;
use crate::h1guard::MAX_HEADERS_CAP;
use crate::io::{ClientConnState, GuardedIo, Timeouts};
use crate::proxy::{ClientConn, serve};

pub type ConnBuilder = auto::Builder<TokioExecutor>;

/// The hyper builder shared by all client connections.
pub fn conn_builder() -> ConnBuilder {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The guard enforces the head limits and timeouts before hyper sees a byte; hyper's own
        // limits are set above the guard's so they never answer first with another status.
        .header_read_timeout(None)
        .max_headers(MAX_HEADERS_CAP + 1)
        .max_buf_size(2 << 20)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(64 * 1024)
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

struct ConnGauge(prometheus_client::metrics::gauge::Gauge);

impl Drop for ConnGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Accepts until `stop` turns true; connections are watched for graceful shutdown.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    builder: Arc<ConnBuilder>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Usually out of file descriptors: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let settings = shared.settings();
        if shared.metrics.connections_open.get() >= i64::from(settings.max_connections) {
            tracing::warn!(%peer, "connection limit reached; connection dropped");
            drop(stream);
            continue;
        }
        shared.metrics.connections_open.inc();
        let gauge = ConnGauge(shared.metrics.connections_open.clone());
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _gauge = gauge;
            let local_port = stream.local_addr().map_or(0, |a| a.port());
            let timeouts = Timeouts {
                header_read: settings.header_read_timeout,
                keep_alive: settings.keep_alive_timeout,
            };
            let ctx = ClientConn {
                shared,
                conn: Arc::new(ClientConnState::default()),
                peer: peer.ip(),
                peer_ip: HeaderValue::from_str(&peer.ip().to_string())
                    .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
                local_port: HeaderValue::from(local_port),
                https: tls.is_some(),
            };
            match tls {
                None => {
                    serve_connection(
                        stream,
                        ctx,
                        settings.head_limits,
                        timeouts,
                        &builder,
                        watcher,
                        stop,
                    )
                    .await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(settings.header_read_timeout, acceptor.accept(stream))
                            .await;
                    match handshake {
                        Ok(Ok(tls_stream)) => {
                            serve_connection(
                                tls_stream,
                                ctx,
                                settings.head_limits,
                                timeouts,
                                &builder,
                                watcher,
                                stop,
                            )
                            .await
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_connection<IO>(
    io: IO,
    ctx: ClientConn,
    limits: crate::h1guard::HeadLimits,
    timeouts: Timeouts,
    builder: &ConnBuilder,
    watcher: hyper_util::server::graceful::Watcher,
    stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = Arc::new(ctx);
    let guarded = GuardedIo::new(io, limits, timeouts, ctx.conn.clone());
    // The watcher is held while the own server runs, so a graceful shutdown waits for it too.
    let Some(guarded) = crate::h1server::serve(guarded, &ctx, stop).await else {
        return;
    };
    let service = hyper::service::service_fn(move |req| serve(ctx.clone(), req));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(guarded), service);
    if let Err(error) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%error, "client connection ended with an error");
    }
}

/// The admin listener (metrics and health), plain HTTP/1.1.
pub async fn admin_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                crate::admin::admin_service(shared.clone(), req)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds a listener; `SO_REUSEADDR` so a restarted node can bind at once.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}
