//! `switchyard up`: everything on one machine. The platform with SQLite in a data directory;
//! on the first run a platform administrator, the account `default` and its owner, with their
//! tokens written to `DATA/admin-token` and `DATA/owner-token` (mode 0600). Later runs reuse
//! the data and the tokens. Only the files' paths are printed, never a token: stdout often
//! ends up in a log. `up` holds the locks of `DATA` and `DATA/gateway` while it runs (`lock`).
//!
//! The owner signs in to the console (same address) with a generated password kept in
//! `DATA/owner-password` (0600); `up` prints the account, e-mail and that path.
//!
//! `up` also runs one local gateway node in-process (data in `DATA/gateway`, traffic on
//! `--gateway-listen`) joined to its own platform as gateway `local`, and a tiny built-in echo
//! service. The first run creates the environment `Production` on that gateway and the REST API
//! `echo` deployed there, all through the REST API (so validation, audit and the snapshot
//! publisher run as for any client); every run points `echo` at the echo service's new port.
//! Ctrl-C or SIGTERM stops the node, then the platform.

/// `println!` that ignores a closed stdout: whoever read `up`'s welcome (a terminal, a log
/// pipe, a test) may have gone away, and that must not stop the platform and its node.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use platform::client::Client;
use platform::dto::{
    ApiTypeDto, AttachEnvironment, ClassificationDto, CreateApi, CreateDeployment,
    CreateEnvironment, CreateInstallToken, UpdateApi,
};

use crate::lock::DataDirLock;

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
    /// Listen address of the local gateway node's traffic (HTTP/1.1 and h2c).
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
    // The platform's directory and the in-process node's, as `platform` and `gateway` take
    // them: a second `up`, or a `gateway` on the node's directory, exits at once.
    let _lock = DataDirLock::acquire(&args.data_dir, "switchyard up")?;
    let node_dir = args.data_dir.join(GATEWAY_DIR);
    ensure_data_dir(&node_dir)?;
    let _node_lock = DataDirLock::acquire(&node_dir, "gateway node")?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| sqlite_url(&args.data_dir));
    let store = open_store(&database_url).await?;
    let first_run = ensure_tokens(&store, &args.data_dir).await?;
    ensure_owner_password(&store, &args.data_dir).await?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %redact(&database_url), "platform listening");
    let platform = platform::Platform::start(platform::PlatformConfig { store }, listener)
        .await
        .context("starting the platform")?;

    // One signal stops everything: the node first, then the platform.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let echo = start_echo().await?;
    let owner = read_token(&args.data_dir.join(OWNER_TOKEN_FILE)).context("reading owner token")?;
    let local = LocalGateway::new(platform.url(), owner)?;
    let options = local.node_options(&node_dir, args.gateway_listen).await?;
    let node = gateway::node::Node::start(options.clone())
        .await
        .context("starting the local gateway node")?;
    let gateway_addr = node.handle().http_addr();
    let curl = local
        .provision(node.gateway_id(), &format!("http://{echo}"))
        .await
        .context("setting up the sample API")?;
    print_welcome(&args.data_dir, addr, first_run, gateway_addr, &curl);
    print_console_login(&args.data_dir);

    let mut exit = node.run(stopped(stop_rx.clone())).await;
    while let gateway::node::ExitReason::Restart = exit {
        tracing::info!("restarting the local gateway node");
        match gateway::node::run_node(options.clone(), stopped(stop_rx.clone())).await {
            Ok(next) => exit = next,
            Err(error) => {
                tracing::error!(%error, "the local gateway node did not restart");
                break;
            }
        }
    }
    if let gateway::node::ExitReason::Revoked { reason } = exit {
        tracing::error!(%reason, "the local gateway node was refused for good; the platform keeps running");
    }
    stopped(stop_rx).await;
    platform.shutdown().await.context("serving")
}

/// Directory of the local node under the data directory.
pub const GATEWAY_DIR: &str = "gateway";
/// Name of the gateway the local node joins.
pub const LOCAL_GATEWAY: &str = "local";
const ENVIRONMENT: &str = "Production";
const SAMPLE_API: &str = "echo";

/// Talks to the platform's own REST API with the owner's token.
struct LocalGateway {
    client: Client,
}

impl LocalGateway {
    fn new(base: String, token: String) -> anyhow::Result<Self> {
        Ok(Self {
            client: Client::new(&base, &token, std::time::Duration::from_secs(30))?,
        })
    }

    /// Options of the local node: joins `local` with a fresh install token when the node has no
    /// credential yet, otherwise reuses it.
    async fn node_options(
        &self,
        dir: &Path,
        listen: SocketAddr,
    ) -> anyhow::Result<gateway::node::NodeOptions> {
        let mut config = gateway::StartOptions::new(listen);
        config.node_name = "local".into();
        let mut options = gateway::node::NodeOptions::new(dir.to_path_buf(), config);
        options.platform_url = Some(self.client.base().to_owned());
        if !dir.join("credential.json").exists() {
            let created = self
                .client
                .create_install_token(&CreateInstallToken {
                    valid_for_minutes: 30,
                })
                .await
                .context("creating an install token for the local node")?;
            options.install_token = Some(created.token);
            options.gateway_name = Some(LOCAL_GATEWAY.into());
        }
        Ok(options)
    }

    /// Creates `Production` on the gateway and the `echo` API deployed there when missing, and
    /// points `echo` at `upstream`; answers the path of a request through the gateway.
    async fn provision(&self, gateway_id: &str, upstream: &str) -> anyhow::Result<String> {
        let gateway_id: uuid::Uuid = gateway_id.parse().context("the local gateway's id")?;
        let envs = self.client.environments(100).await?;
        let env = match envs
            .environments
            .into_iter()
            .find(|e| e.name == ENVIRONMENT)
        {
            Some(env) => env,
            None => {
                let env = self
                    .client
                    .create_environment(&CreateEnvironment {
                        name: ENVIRONMENT.into(),
                        classification: ClassificationDto::Production,
                    })
                    .await?;
                self.client
                    .attach_environment(
                        env.id,
                        &AttachEnvironment {
                            gateway_id: Some(gateway_id),
                        },
                    )
                    .await?
            }
        };

        let apis = self.client.apis(100).await?;
        let api = match apis.apis.into_iter().find(|a| a.name == SAMPLE_API) {
            Some(api) => {
                let update = UpdateApi {
                    name: None,
                    version: None,
                    api_type: None,
                    base_path: None,
                    upstream_targets: Some(vec![upstream.to_owned()]),
                    health_check_url: None,
                };
                self.client.update_api(api.id, &update).await?
            }
            None => {
                let create = CreateApi {
                    name: SAMPLE_API.into(),
                    version: "1".into(),
                    api_type: ApiTypeDto::Rest,
                    base_path: SAMPLE_API.into(),
                    upstream_targets: vec![upstream.to_owned()],
                    health_check_url: None,
                };
                self.client.create_api(&create).await?
            }
        };
        let deployments = self.client.deployments(api.id).await?;
        if !deployments
            .deployments
            .iter()
            .any(|d| d.environment_id == env.id)
        {
            let deployment = CreateDeployment {
                environment_id: env.id,
                custom_path: None,
            };
            self.client.create_deployment(api.id, &deployment).await?;
        }
        Ok(format!("/{}/{}/hello", env.rest_path, api.base_path))
    }
}

/// The built-in echo service on 127.0.0.1 (a new port each run): answers every request with
/// its method, path, query and headers as JSON.
async fn start_echo() -> anyhow::Result<SocketAddr> {
    async fn echo(request: axum::extract::Request) -> axum::Json<serde_json::Value> {
        let headers: serde_json::Map<String, serde_json::Value> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    String::from_utf8_lossy(value.as_bytes())
                        .into_owned()
                        .into(),
                )
            })
            .collect();
        axum::Json(serde_json::json!({
            "service": "switchyard echo",
            "method": request.method().as_str(),
            "path": request.uri().path(),
            "query": request.uri().query(),
            "headers": headers,
        }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the echo service")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(echo);
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "echo service stopped");
        }
    });
    Ok(addr)
}

/// File with the first owner's console password, written by the first run (mode 0600).
pub const OWNER_PASSWORD_FILE: &str = "owner-password";

/// Gives the owner a generated console password and writes it to `DATA/owner-password` when
/// the file is missing or the owner has no password; a kept file is left alone (the owner
/// may have changed the password in the console since).
async fn ensure_owner_password(store: &store::Store, data_dir: &Path) -> anyhow::Result<()> {
    use platform::bootstrap::{DEFAULT_ACCOUNT, OWNER_EMAIL};
    let path = data_dir.join(OWNER_PASSWORD_FILE);
    let owner = store
        .user_login(Some(DEFAULT_ACCOUNT), OWNER_EMAIL)
        .await?
        .context("the owner of the default account is missing")?;
    if owner.password_hash.is_some() && read_token(&path).is_some() {
        return Ok(());
    }
    let password =
        platform::console::set_initial_password(store, owner.user.id, platform::state::now())
            .await?;
    write_secret(&path, &password)
}

fn print_console_login(data_dir: &Path) {
    say!(
        "Console sign-in: account `{}`, e-mail {}, password in {}",
        platform::bootstrap::DEFAULT_ACCOUNT,
        platform::bootstrap::OWNER_EMAIL,
        data_dir.join(OWNER_PASSWORD_FILE).display()
    );
}

/// Makes sure both token files hold valid tokens; answers whether new ones were minted.
/// Existing valid tokens are kept, so re-running `up` never invalidates a saved token.
async fn ensure_tokens(store: &store::Store, data_dir: &Path) -> anyhow::Result<bool> {
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
            return Ok(false);
        }
        tracing::warn!("saved tokens are not valid for this database; minting new ones");
    }
    let tokens = platform::bootstrap::bootstrap(store, now)
        .await
        .context("creating the first accounts and tokens")?;
    write_secret(&data_dir.join(ADMIN_TOKEN_FILE), &tokens.admin_token)?;
    write_secret(&data_dir.join(OWNER_TOKEN_FILE), &tokens.owner_token)?;
    Ok(true)
}

fn read_token(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Writes a secret readable by its owner only (0600), atomically and durably.
pub(crate) fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    let (dir, name) = match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) => (
            if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            },
            name,
        ),
        _ => anyhow::bail!("{} names no file", path.display()),
    };
    gateway::cache::write_atomic(dir, name, format!("{secret}\n").as_bytes(), 0o600)
        .with_context(|| format!("writing {}", path.display()))
}

fn print_welcome(
    data_dir: &Path,
    addr: SocketAddr,
    first_run: bool,
    gateway: SocketAddr,
    path: &str,
) {
    let owner = data_dir.join(OWNER_TOKEN_FILE);
    let admin = data_dir.join(ADMIN_TOKEN_FILE);
    say!("Switchyard is up.");
    say!("  console:      http://{addr}/");
    say!("  REST API:     http://{addr}/api/v1 (OpenAPI: /api/v1/openapi.json)");
    say!("  owner token:  {}", owner.display());
    say!("  admin token:  {}", admin.display());
    say!(
        "  gateway:      http://{gateway}/ (gateway `{LOCAL_GATEWAY}`, environment `{ENVIRONMENT}`)"
    );
    if first_run {
        say!("First run: created account `default` with an owner, and a platform administrator;");
        say!("  their tokens are in the files above (readable by you only).");
    } else {
        say!("Reusing the data in {}.", data_dir.display());
    }
    say!("Through the gateway: curl http://{gateway}{path}");
    say!(
        "Try: curl -H \"Authorization: Bearer $(cat {})\" http://{addr}/api/v1/gateways",
        owner.display()
    );
}
