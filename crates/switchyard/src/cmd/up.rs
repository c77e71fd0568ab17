//! `switchyard up`: everything on one machine. The platform with SQLite in a data directory;
//! on the first run a platform administrator, the account `default` and its owner, with their
//! tokens written to `DATA/admin-token` and `DATA/owner-token` (mode 0600). Later runs reuse
//! the data and the tokens.
//!
//! The steps are separate functions so the local gateway node (a later issue) slots in after
//! the platform starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::platform::{
    DEFAULT_DATA_DIR, DEFAULT_LISTEN, ensure_data_dir, init_tracing, open_store, redact,
    shutdown_signal, sqlite_url,
};

/// File names of the tokens `up` writes into the data directory.
pub const OWNER_TOKEN_FILE: &str = "owner-token";
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Directory for the database and tokens.
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Address of the REST API and console.
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Database URL [default: SQLite file in the data directory].
    #[arg(long, env = "SWITCHYARD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Listen address of the local gateway node (not started yet: the node joins in a later
    /// release; accepted now so scripts keep working).
    #[arg(
        long,
        env = "SWITCHYARD_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8077"
    )]
    pub gateway_listen: SocketAddr,
}

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    init_tracing();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(up(args))
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    ensure_data_dir(&args.data_dir)?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| sqlite_url(&args.data_dir));
    let store = open_store(&database_url).await?;
    let first_run = ensure_tokens(&store, &args.data_dir).await?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %redact(&database_url), "platform listening");
    print_welcome(&args.data_dir, addr, first_run.as_deref());

    platform::serve(
        platform::PlatformConfig { store },
        listener,
        shutdown_signal(),
    )
    .await
    .context("serving")
}

/// Makes sure both token files hold valid tokens; answers the new owner token when new ones
/// were minted.
/// Existing valid tokens are kept, so re-running `up` never invalidates a saved token.
async fn ensure_tokens(store: &store::Store, data_dir: &Path) -> anyhow::Result<Option<String>> {
    let now = platform::state::now();
    let owner = read_token(&data_dir.join(OWNER_TOKEN_FILE));
    let admin = read_token(&data_dir.join(ADMIN_TOKEN_FILE));
    if let (Some(owner), Some(admin)) = (owner, admin) {
        let valid = |t: String| async move {
            store
                .find_api_token(&platform::auth::hash_secret(&t), now)
                .await
                .map(|p| p.is_some())
        };
        if valid(owner).await? && valid(admin).await? {
            return Ok(None);
        }
        tracing::warn!("saved tokens are not valid for this database; minting new ones");
    }
    let tokens = platform::bootstrap::bootstrap(store, now)
        .await
        .context("creating the first accounts and tokens")?;
    write_secret(&data_dir.join(ADMIN_TOKEN_FILE), &tokens.admin_token)?;
    write_secret(&data_dir.join(OWNER_TOKEN_FILE), &tokens.owner_token)?;
    Ok(Some(tokens.owner_token))
}

fn read_token(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Writes a secret readable by its owner only, atomically (temp file, then rename).
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    {
        use std::io::Write;
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.write_all(secret.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn print_welcome(data_dir: &Path, addr: SocketAddr, first_run: Option<&str>) {
    let owner = data_dir.join(OWNER_TOKEN_FILE);
    let admin = data_dir.join(ADMIN_TOKEN_FILE);
    println!("Switchyard is up.");
    println!("  console:      http://{addr}/");
    println!("  REST API:     http://{addr}/api/v1 (OpenAPI: /api/v1/openapi.json)");
    println!("  owner token:  {}", owner.display());
    println!("  admin token:  {}", admin.display());
    if let Some(token) = first_run {
        println!(
            "First run: created account `default` with an owner, and a platform administrator."
        );
        println!("  owner's token (also in the file above): {token}");
    } else {
        println!("Reusing the data in {}.", data_dir.display());
    }
    println!(
        "Try: curl -H \"Authorization: Bearer $(cat {})\" http://{addr}/api/v1/gateways",
        owner.display()
    );
}
