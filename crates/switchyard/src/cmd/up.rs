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
    let local = LocalGateway::new(platform.url(), owner);
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
    base: String,
    token: String,
    client: reqwest::Client,
}

impl LocalGateway {
    fn new(base: String, token: String) -> Self {
        Self {
            base,
            token,
            client: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "{method} {path}: {status}: {text}");
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
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
        options.platform_url = Some(self.base.clone());
        if !dir.join("credential.json").exists() {
            let created = self
                .call(
                    reqwest::Method::POST,
                    "/api/v1/install-tokens",
                    Some(serde_json::json!({ "valid_for_minutes": 30 })),
                )
                .await?;
            options.install_token = created["token"].as_str().map(str::to_string);
            options.gateway_name = Some(LOCAL_GATEWAY.into());
        }
        Ok(options)
    }

    /// Creates `Production` on the gateway and the `echo` API deployed there when missing, and
    /// points `echo` at `upstream`; answers the path of a request through the gateway.
    async fn provision(&self, gateway_id: &str, upstream: &str) -> anyhow::Result<String> {
        use reqwest::Method;
        use serde_json::json;
        let envs = self
            .call(Method::GET, "/api/v1/environments?limit=100", None)
            .await?;
        let env = match find(&envs["environments"], ENVIRONMENT) {
            Some(env) => env,
            None => {
                let env = self
                    .call(
                        Method::POST,
                        "/api/v1/environments",
                        Some(json!({ "name": ENVIRONMENT, "classification": "production" })),
                    )
                    .await?;
                let id = env["id"].as_str().unwrap_or_default();
                self.call(
                    Method::PUT,
                    &format!("/api/v1/environments/{id}/gateway"),
                    Some(json!({ "gateway_id": gateway_id })),
                )
                .await?;
                env
            }
        };
        let env_id = env["id"].as_str().unwrap_or_default().to_string();
        let rest_path = env["rest_path"].as_str().unwrap_or("ws/rest").to_string();

        let apis = self
            .call(Method::GET, "/api/v1/apis?limit=100", None)
            .await?;
        let api = match find(&apis["apis"], SAMPLE_API) {
            Some(api) => {
                let id = api["id"].as_str().unwrap_or_default();
                self.call(
                    Method::PATCH,
                    &format!("/api/v1/apis/{id}"),
                    Some(json!({ "upstream_targets": [upstream] })),
                )
                .await?
            }
            None => {
                self.call(
                    Method::POST,
                    "/api/v1/apis",
                    Some(
                        json!({ "name": SAMPLE_API, "version": "1", "api_type": "REST",
                        "base_path": SAMPLE_API, "upstream_targets": [upstream] }),
                    ),
                )
                .await?
            }
        };
        let api_id = api["id"].as_str().unwrap_or_default().to_string();
        let base_path = api["base_path"].as_str().unwrap_or(SAMPLE_API).to_string();
        let deployments = self
            .call(
                Method::GET,
                &format!("/api/v1/apis/{api_id}/deployments"),
                None,
            )
            .await?;
        let deployed = deployments["deployments"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["environment_id"] == env_id.as_str()));
        if !deployed {
            self.call(
                Method::POST,
                &format!("/api/v1/apis/{api_id}/deployments"),
                Some(json!({ "environment_id": env_id })),
            )
            .await?;
        }
        Ok(format!("/{rest_path}/{base_path}/hello"))
    }
}

fn find(list: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    list.as_array()?
        .iter()
        .find(|item| item["name"] == name)
        .cloned()
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

/// Writes a secret readable by its owner only, atomically (temp file, then rename).
pub(crate) fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
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
