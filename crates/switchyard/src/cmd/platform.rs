//! `switchyard platform`: the control plane alone. Configuration comes from flags, then
//! `SWITCHYARD_*` environment variables, then an optional TOML file, then defaults.
//!
//! On a database without a platform administrator it creates one and writes its token (mode
//! 0600) to `--admin-token-file` (default `DATA/admin-token`); `switchyard platform bootstrap`
//! mints a new administrator token into that file and exits (the way back in when it is lost).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use super::up::{ADMIN_TOKEN_FILE, write_secret};

/// Default REST/console listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory (SQLite database, tokens of `up`).
pub const DEFAULT_DATA_DIR: &str = "./switchyard-data";

#[derive(clap::Args, Debug)]
pub struct PlatformArgs {
    #[command(subcommand)]
    pub action: Option<PlatformAction>,
    /// Address of the REST API and console [default: 127.0.0.1:8080].
    #[arg(long, env = "SWITCHYARD_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// `sqlite://PATH` or `postgres://…` [default: SQLite file in the data directory].
    #[arg(
        long,
        env = "SWITCHYARD_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,
    /// Directory for the SQLite database and other local state [default: ./switchyard-data].
    #[arg(long, env = "SWITCHYARD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// TOML file with `listen`, `database_url`, `data_dir`, `admin_token_file`; unknown keys
    /// are errors.
    #[arg(long, env = "SWITCHYARD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Where the platform administrator's token is written (mode 0600) when the database has
    /// no administrator yet, or by `bootstrap` [default: DATA/admin-token].
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN_FILE", global = true)]
    pub admin_token_file: Option<PathBuf>,
    /// Advanced (tests): heartbeat interval every gateway uses, overriding its property.
    #[arg(long, hide = true)]
    pub heartbeat_interval_ms: Option<u64>,
    /// Advanced (tests): how long a starting node may take to come online.
    #[arg(long, hide = true)]
    pub startup_timeout_ms: Option<u64>,
    /// Advanced (tests): floor of the lost-contact threshold.
    #[arg(long, hide = true)]
    pub lost_contact_floor_ms: Option<u64>,
    /// Advanced (tests): a restart is unresponsive after this long.
    #[arg(long, hide = true)]
    pub restart_unresponsive_ms: Option<u64>,
    /// Advanced (tests): how often the status job evaluates every gateway.
    #[arg(long, hide = true)]
    pub status_interval_ms: Option<u64>,
    /// Advanced (tests): how long a node drains before a restart or stop.
    #[arg(long, hide = true)]
    pub drain_timeout_ms: Option<u64>,
    /// How long Migrate waits for every online destination node to apply the configuration
    /// containing the environment before it gives up (result ERROR, nothing changed).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub migration_cutover_timeout_secs: u64,
    /// How long the source gateway of a migration keeps answering the environment's URLs
    /// with 308 redirects to the destination.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub migration_grace_secs: u64,
}

#[derive(clap::Subcommand, Debug)]
pub enum PlatformAction {
    /// Mint a new platform administrator token (creating the administrator when missing), write
    /// it to the admin token file and exit; needs access to the database, not a running platform.
    Bootstrap,
}

/// The optional TOML file (first step of two-step configuration: raw input).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    admin_token_file: Option<PathBuf>,
}

/// Resolved configuration of the platform process.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub listen: SocketAddr,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub admin_token_file: PathBuf,
    pub link: platform::LinkConfig,
}

impl PlatformArgs {
    /// The link's timings: defaults with the advanced flags applied.
    fn link_config(&self) -> platform::LinkConfig {
        let ms = std::time::Duration::from_millis;
        let mut link = platform::LinkConfig::default();
        if let Some(v) = self.heartbeat_interval_ms {
            link.heartbeat_interval = Some(ms(v));
        }
        if let Some(v) = self.startup_timeout_ms {
            link.startup_timeout = ms(v);
        }
        if let Some(v) = self.lost_contact_floor_ms {
            link.min_lost_contact = ms(v);
        }
        if let Some(v) = self.restart_unresponsive_ms {
            link.restart_unresponsive_after = ms(v);
        }
        if let Some(v) = self.status_interval_ms {
            link.status_interval = ms(v);
        }
        if let Some(v) = self.drain_timeout_ms {
            link.drain_timeout = ms(v);
        }
        link.migration_cutover_timeout =
            std::time::Duration::from_secs(self.migration_cutover_timeout_secs);
        link.migration_grace = std::time::Duration::from_secs(self.migration_grace_secs);
        link
    }

    pub fn resolve(self) -> anyhow::Result<Resolved> {
        let link = self.link_config();
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("in config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let listen = match self.listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse().context("default listen address")?,
        };
        let database_url = match self.database_url.or(file.database_url) {
            Some(url) => url,
            None => sqlite_url(&data_dir),
        };
        let admin_token_file = self
            .admin_token_file
            .or(file.admin_token_file)
            .unwrap_or_else(|| data_dir.join(ADMIN_TOKEN_FILE));
        Ok(Resolved {
            listen,
            database_url,
            data_dir,
            admin_token_file,
            link,
        })
    }
}

/// The SQLite database inside a data directory.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("switchyard.db").display())
}

/// Logs to stderr; `RUST_LOG` overrides the default `info` level.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Creates the data directory, readable by its owner only when we create it.
pub fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Opens the store, naming the database in the error (without credentials).
pub async fn open_store(url: &str) -> anyhow::Result<store::Store> {
    store::Store::open(url, store::StoreOptions::default())
        .await
        .with_context(|| format!("opening database {}", redact(url)))
}

/// A database URL without its password, for messages; anything else unchanged.
pub fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => match url.set_password(Some("***")) {
            Ok(()) => url.to_string(),
            Err(()) => "(a database URL with a password)".to_string(),
        },
        _ => raw.to_string(),
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// Writes a new administrator token to `file`, creating its directory (0700) when missing.
fn write_admin_token(file: &Path, token: &str) -> anyhow::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        ensure_data_dir(dir)?;
    }
    write_secret(file, token)
}

pub fn run(args: PlatformArgs) -> anyhow::Result<()> {
    init_tracing();
    let bootstrap_only = matches!(args.action, Some(PlatformAction::Bootstrap));
    let config = args.resolve()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        // On SQLite the data directory holds the database: one platform process per directory.
        // (On PostgreSQL several platform processes share the database, SPEC §16.) A one-off
        // `platform bootstrap` serves nothing: it writes one token through SQLite's own
        // locking, also beside a running platform, so it takes no directory lock.
        let _lock = if config.database_url.starts_with("sqlite:") && !bootstrap_only {
            ensure_data_dir(&config.data_dir)?;
            Some(crate::lock::DataDirLock::acquire(
                &config.data_dir,
                "platform",
            )?)
        } else {
            None
        };
        let store = open_store(&config.database_url).await?;
        let file = &config.admin_token_file;
        let now = platform::state::now();
        if bootstrap_only {
            let token = platform::bootstrap::new_platform_admin_token(&store, now)
                .await
                .context("minting a platform administrator token")?;
            write_admin_token(file, &token)?;
            println!(
                "Wrote a new platform administrator token to {} (mode 0600).",
                file.display()
            );
            return Ok(());
        }
        if let Some(token) = platform::bootstrap::bootstrap_platform_admin(&store, now)
            .await
            .context("creating the platform administrator")?
        {
            write_admin_token(file, &token)?;
            println!(
                "Empty database: created the platform administrator; its token is in {} \
                 (mode 0600).",
                file.display()
            );
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, database = %redact(&config.database_url), "platform listening");
        println!("Switchyard platform on http://{addr} (REST API under /api/v1)");
        platform::serve_with(
            platform::PlatformConfig { store },
            config.link.clone(),
            listener,
            shutdown_signal(),
        )
        .await
        .context("serving")?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@db:5432/x"),
            "postgres://u:***@db:5432/x"
        );
        assert_eq!(redact("sqlite://./d/x.db"), "sqlite://./d/x.db");
        assert_eq!(
            redact("postgres://u:p%40ss@[::1]:5432/x"),
            "postgres://u:***@[::1]:5432/x"
        );
    }

    #[test]
    fn config_file_rejects_unknown_keys() {
        assert!(toml::from_str::<FileConfig>("listen = \"127.0.0.1:1\"").is_ok());
        assert!(toml::from_str::<FileConfig>("lisen = \"127.0.0.1:1\"").is_err());
        assert!(toml::from_str::<FileConfig>("admin_token_file = \"/x\"").is_ok());
    }
}
