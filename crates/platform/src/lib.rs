//! The control plane: REST API under `/api/v1` (axum, OpenAPI 3.1 by utoipa), auth and audit,
//! the node link server (`link`: join, WebSocket link, snapshot publisher, commands) and the
//! status job (`status_job`), and the web console (`console`: HTML pages on the same port).
//!
//! Start it with [`Platform::start`] on a bound listener (port 0 in tests) or [`serve`] with a
//! shutdown future; both run the link's background tasks too ([`serve_with`] and
//! [`Platform::start_with`] take a [`LinkConfig`] with other timings). First-run data for
//! `switchyard up` comes from [`bootstrap::bootstrap`].

pub mod auth;
pub mod bootstrap;
pub mod client;
pub mod clock;
pub mod console;
pub mod dto;
pub mod error;
pub mod json;
pub mod link;
pub mod migrations;
pub mod openapi;
mod routes;
pub mod state;
mod status_job;
pub use status_job::SESSION_SWEEP_EVERY;
pub mod throttle;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

pub use crate::link::{Link, LinkConfig};
pub use crate::state::AppState;

/// Typed configuration of the platform; the binary builds it from flags, env and files.
#[derive(Clone, Debug)]
pub struct PlatformConfig {
    pub store: store::Store,
}

/// The whole HTTP application: REST API, OpenAPI document, error envelopes for unknown
/// routes, a 1 MiB body limit, a panic guard and response compression.
pub fn app(config: PlatformConfig) -> Router {
    app_with_link(AppState::new(config.store))
}

/// [`app`] over a given state (with a started [`Link`] when nodes should get changes).
pub fn app_with_link(state: AppState) -> Router {
    let (api, _) = routes::router().split_for_parts();
    api.merge(console::router())
        .fallback(|uri: axum::http::Uri| async move {
            // Outside the REST API a person is reading: answer a page, not JSON.
            if uri.path().starts_with("/api/") {
                error::ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
                    .into_response()
            } else {
                console::not_found_page()
            }
        })
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed on this route",
            )
        })
        .with_state(state)
        .layer(DefaultBodyLimit::max(json::MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                // The panic message may hold request data; the default hook already logged it.
                tracing::error!("handler panicked");
                error::ApiError::internal().into_response()
            },
        ))
        // gzip or brotli when the client accepts it (console pages, assets and REST JSON alike);
        // tower-http's default predicate leaves small bodies, images, gRPC and event streams
        // alone. Outside the panic guard, so a panic's answer is compressed too. Level 2 (gzip
        // and brotli alike): pages are compressed on every request, and at the defaults (gzip 6,
        // brotli 4) compressing the 1,000-gateway page cost 3 and 2 times its rendering
        // (bench/RESULTS.md, "Console").
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .br(true)
                .quality(tower_http::CompressionLevel::Precise(2)),
        )
        .layer(TraceLayer::new_for_http())
}

/// Serves the platform on `listener` until `shutdown` completes, then drains in-flight
/// requests.
pub async fn serve(
    config: PlatformConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(config, LinkConfig::default(), listener, shutdown).await
}

/// [`serve`] with the link's timings: starts the link's background tasks (publisher, notice
/// listener, status job) and, on shutdown, stops them and closes every node link so the
/// nodes reconnect (to this platform when it is back, or another process).
pub async fn serve_with(
    config: PlatformConfig,
    link: LinkConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let link = Link::new(config.store.clone(), link);
    link.start();
    let state = AppState::with_link(config.store, link.clone());
    let stopping = link.clone();
    // Connection info gives handlers the peer address (`throttle::ClientIp`).
    let app = app_with_link(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Upgraded links are not part of axum's graceful drain: close them now.
            stopping.stop();
        })
        .await;
    link.finish().await;
    result
}

/// A platform serving in a background task; tests and `switchyard up` hold one.
pub struct Platform {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Platform {
    /// Starts serving on `listener` (bind it to port 0 to let the OS pick).
    pub async fn start(config: PlatformConfig, listener: TcpListener) -> std::io::Result<Platform> {
        Self::start_with(config, LinkConfig::default(), listener).await
    }

    /// [`Platform::start`] with the link's timings (tests use short ones).
    pub async fn start_with(
        config: PlatformConfig,
        link: LinkConfig,
        listener: TcpListener,
    ) -> std::io::Result<Platform> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_with(config, link, listener, async {
            let _ = stopped.await;
        }));
        Ok(Platform {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// The bound address, e.g. `127.0.0.1:41234`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base of the REST API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes in-flight requests and waits for the server task.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(join) => Err(std::io::Error::other(join)),
        }
    }
}
