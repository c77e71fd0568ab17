//! `switchyard gateway`: one gateway node serving a configuration snapshot file.
//!
//! The file is re-read when its modification time or size changes (polled, which works on every
//! file system and in containers) and on SIGHUP; each version is validated whole by the node
//! and refused if invalid, the previous one staying in service. SIGTERM and Ctrl-C stop the
//! node gracefully. The platform link (`--platform`, `--install-token`, `--data-dir`) will add
//! a second source of snapshots beside the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use gateway::{ApplyOutcome, Gateway, GatewayConfig, GatewayHandle};

#[derive(clap::Args, Debug)]
pub struct GatewayArgs {
    /// Configuration snapshot (JSON) to serve; watched for changes, re-read on SIGHUP.
    #[arg(long, env = "SWITCHYARD_SNAPSHOT")]
    pub snapshot: PathBuf,
    /// Address of the HTTP listener (HTTP/1.1 and h2c).
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "0.0.0.0:8077")]
    pub listen: SocketAddr,
    /// Address of the HTTPS listener; certificates come from the snapshot, chosen by SNI.
    #[arg(long, env = "SWITCHYARD_TLS_LISTEN")]
    pub tls_listen: Option<SocketAddr>,
    /// Address of the admin listener (Prometheus `/metrics` and the health endpoints).
    #[arg(long, env = "SWITCHYARD_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Node name shown in status; defaults to the host name.
    #[arg(long, env = "SWITCHYARD_NODE_NAME")]
    pub name: Option<String>,
    /// Runtime worker threads; defaults to the number of CPUs.
    #[arg(long, env = "SWITCHYARD_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// How often the snapshot file is checked for changes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_interval_ms: u64,
}

pub fn run(args: GatewayArgs) -> anyhow::Result<()> {
    init_logging();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.worker_threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build().context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    // JSON lines on stdout: the access log (target `switchyard::access`) and events.
    // `RUST_LOG=info,switchyard::access=off` turns the access log off.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .try_init();
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "gateway".into())
}

/// Modification time and size: a change of either means the file was rewritten.
fn fingerprint(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn load(handle: &GatewayHandle, path: &Path) {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "cannot read snapshot file");
            return;
        }
    };
    match handle.apply_snapshot_json(&bytes) {
        Ok(ApplyOutcome::Applied { generation }) => {
            tracing::info!(generation, path = %path.display(), "snapshot file applied");
        }
        Ok(ApplyOutcome::Ignored { offered, current }) => {
            tracing::info!(
                offered,
                current,
                "snapshot file not newer than the applied one"
            );
        }
        // The node logged and recorded the refusal; the previous configuration stays.
        Err(_) => {}
    }
}

async fn serve(args: GatewayArgs) -> anyhow::Result<()> {
    let mut config = GatewayConfig::new(args.listen);
    config.tls_listen = args.tls_listen;
    config.admin_listen = args.admin_listen;
    config.node_name = args.name.clone().unwrap_or_else(host_name);
    let handle = Gateway::start(config).await?;
    println!(
        "switchyard gateway: http://{}{}{}",
        handle.http_addr(),
        handle
            .https_addr()
            .map(|a| format!(", https://{a}"))
            .unwrap_or_default(),
        handle
            .admin_addr()
            .map(|a| format!(", admin http://{a}/metrics"))
            .unwrap_or_default(),
    );

    let path = args.snapshot.clone();
    let mut seen = fingerprint(&path);
    load(&handle, &path);

    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut poll = tokio::time::interval(Duration::from_millis(args.poll_interval_ms.max(50)));
    loop {
        tokio::select! {
            _ = poll.tick() => {
                let now = fingerprint(&path);
                if now != seen {
                    seen = now;
                    if now.is_some() {
                        load(&handle, &path);
                    }
                }
            }
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: re-reading the snapshot file");
                seen = fingerprint(&path);
                load(&handle, &path);
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let drained = handle.shutdown().await;
    if !drained {
        tracing::warn!("drain timeout reached with requests still in flight");
    }
    Ok(())
}
