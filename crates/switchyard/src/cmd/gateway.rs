//! `switchyard gateway`: one gateway node, in one of two modes.
//!
//! - **Platform mode** (`--platform URL`, or a data directory that already holds a credential):
//!   the node joins with an install token once, then connects to the platform, which pushes its
//!   configuration; the last applied snapshot is cached in the data directory and served at
//!   start while the platform is unreachable (`gateway::node`). A restart command re-executes
//!   this binary with the same arguments, so the node comes back with the same node id.
//! - **File mode** (`--snapshot FILE`): the node serves a snapshot file, re-read when its
//!   modification time or size changes (polled, which works on every file system and in
//!   containers) and on SIGHUP; each version is validated whole and refused if invalid, the
//!   previous one staying in service.
//!
//! SIGTERM and Ctrl-C stop the node gracefully in both modes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use gateway::node::{ExitReason, NodeOptions};
use gateway::{ApplyOutcome, Gateway, GatewayHandle, StartOptions};

/// Data directory of a platform-managed node when none is given.
pub const DEFAULT_GATEWAY_DATA_DIR: &str = "./switchyard-gateway-data";

#[derive(clap::Args, Debug)]
pub struct GatewayArgs {
    /// File mode: configuration snapshot (JSON) to serve; watched for changes, re-read on SIGHUP.
    #[arg(long, env = "SWITCHYARD_SNAPSHOT", conflicts_with_all = ["platform", "install_token"])]
    pub snapshot: Option<PathBuf>,
    /// Platform mode: URL of the platform (http or https) to join and connect to; optional
    /// once joined (the URL stored at join is used).
    #[arg(long, env = "SWITCHYARD_PLATFORM_URL")]
    pub platform: Option<String>,
    /// Install token for the first start (join); not needed once the node holds a credential.
    #[arg(long, env = "SWITCHYARD_INSTALL_TOKEN", hide_env_values = true)]
    pub install_token: Option<String>,
    /// Platform mode: node id, credential (0600) and cached configuration live here.
    #[arg(long, env = "SWITCHYARD_GATEWAY_DATA_DIR", default_value = DEFAULT_GATEWAY_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Address of the HTTP listener (HTTP/1.1 and h2c).
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "0.0.0.0:8077")]
    pub listen: SocketAddr,
    /// Address of the HTTPS listener; certificates come from the snapshot, chosen by SNI.
    #[arg(long, env = "SWITCHYARD_TLS_LISTEN")]
    pub tls_listen: Option<SocketAddr>,
    /// Address of the admin listener (Prometheus `/metrics` and the health endpoints).
    #[arg(long, env = "SWITCHYARD_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Platform mode: the gateway to join (a new name creates it, an existing one adds this
    /// node to its cluster); needed only with `--install-token`. File mode: the node name
    /// shown in status (defaults to the host name).
    #[arg(long, env = "SWITCHYARD_GATEWAY_NAME")]
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
    // One worker: a current-thread runtime does the same work without the work-stealing
    // scheduler's cross-thread bookkeeping.
    let mut runtime = if args.worker_threads == Some(1) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    runtime.enable_all();
    if let Some(threads) = args.worker_threads.filter(|t| *t > 1) {
        runtime.worker_threads(threads);
    }
    let runtime = runtime.build().context("starting the async runtime")?;
    let Some(snapshot) = args.snapshot.clone() else {
        // One node per data directory (its id, credential and `running` marker); released
        // when this process ends or re-executes itself for a restart.
        super::platform::ensure_data_dir(&args.data_dir)?;
        let _lock = crate::lock::DataDirLock::acquire(&args.data_dir, "gateway node")?;
        let exit = runtime.block_on(serve_platform(&args))?;
        // Listeners and the link are closed once the runtime is gone.
        drop(runtime);
        return match exit {
            ExitReason::Stopped => Ok(()),
            ExitReason::Restart => Err(reexec()),
            ExitReason::Revoked { reason } => Err(anyhow::anyhow!(
                "the platform refused this node for good and it stopped serving: {reason}; \
                 join again with a new install token (remove {} first)",
                args.data_dir.join("credential.json").display()
            )),
        };
    };
    runtime.block_on(serve(args, snapshot))
}

/// Replaces this process by a fresh run of the same binary with the same arguments; returns
/// only on failure.
fn reexec() -> anyhow::Error {
    use std::os::unix::process::CommandExt as _;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return anyhow::Error::new(error).context("finding this binary to restart"),
    };
    tracing::info!(exe = %exe.display(), "restarting");
    let error = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .exec();
    anyhow::Error::new(error).context(format!("re-executing {}", exe.display()))
}

async fn serve_platform(args: &GatewayArgs) -> anyhow::Result<ExitReason> {
    let mut config = StartOptions::new(args.listen);
    config.tls_listen = args.tls_listen;
    config.admin_listen = args.admin_listen;
    config.node_name = host_name();
    let mut options = NodeOptions::new(args.data_dir.clone(), config);
    options.platform_url = args.platform.clone();
    options.install_token = args.install_token.clone();
    options.gateway_name = args.name.clone();
    let node = gateway::node::Node::start(options).await?;
    let handle = node.handle();
    println!(
        "switchyard gateway: node {} of gateway {}: http://{}{}{}",
        node.node_id(),
        node.gateway_id(),
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
    Ok(node.run(stop_signal()).await)
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
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

async fn serve(args: GatewayArgs, path: PathBuf) -> anyhow::Result<()> {
    let mut config = StartOptions::new(args.listen);
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
