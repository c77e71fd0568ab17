//! Admin commands: a typed REST client for accounts, gateways, nodes, environments, APIs,
//! users, tokens and the audit log. Human tables by default, `--json` for scripts (the API's
//! JSON, unchanged; a failure prints the REST error envelope on stdout).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use platform::client::ClientError;

use super::platform::DEFAULT_DATA_DIR;
use super::up::OWNER_TOKEN_FILE;

/// Where and as whom to call the REST API.
#[derive(clap::Args, Debug)]
pub struct PlatformArgs {
    /// Base URL of the platform (where `switchyard up` or `switchyard platform` listens).
    #[arg(
        long,
        env = "SWITCHYARD_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// Personal API token [default: the owner token `switchyard up` wrote in the data directory].
    #[arg(long, env = "SWITCHYARD_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Data directory to read `owner-token` from when no token is given.
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = DEFAULT_DATA_DIR, global = true)]
    data_dir: PathBuf,
    /// Print the API's JSON instead of a table; failures print the error envelope as JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum AdminCommand {
    /// Accounts (platform administrator token).
    Accounts {
        #[command(flatten)]
        conn: PlatformArgs,
        #[command(subcommand)]
        cmd: AccountsCmd,
    },
    /// Gateways of your account, their nodes, restart and stop.
    Gateways {
        #[command(flatten)]
        conn: PlatformArgs,
        #[command(subcommand)]
        cmd: GatewaysCmd,
    },
    /// Environments and their URL paths.
    Environments {
        #[command(flatten)]
        conn: PlatformArgs,
        #[command(subcommand)]
        cmd: EnvironmentsCmd,
    },
    /// APIs and deployments.
    Apis {
        #[command(flatten)]
        conn: PlatformArgs,
        #[command(subcommand)]
        cmd: ApisCmd,
    },
    /// Users and roles of your account.
    Users {
        #[command(flatten)]
        conn: PlatformArgs,
        #[command(subcommand)]
        cmd: UsersCmd,
    },
    /// Your personal API tokens.
    Tokens {
        #[command(flatten)]
        conn: PlatformArgs,
        #[command(subcommand)]
        cmd: TokensCmd,
    },
    /// Install tokens for joining gateway nodes.
    InstallTokens {
        #[command(flatten)]
        conn: PlatformArgs,
        #[command(subcommand)]
        cmd: InstallTokensCmd,
    },
    /// The audit log of your account, newest first (owner or admin).
    Audit {
        #[command(flatten)]
        conn: PlatformArgs,
        /// How many records, 1–500.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// `next_cursor` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
}

impl AdminCommand {
    fn conn(&self) -> &PlatformArgs {
        match self {
            AdminCommand::Accounts { conn, .. }
            | AdminCommand::Gateways { conn, .. }
            | AdminCommand::Environments { conn, .. }
            | AdminCommand::Apis { conn, .. }
            | AdminCommand::Users { conn, .. }
            | AdminCommand::Tokens { conn, .. }
            | AdminCommand::InstallTokens { conn, .. }
            | AdminCommand::Audit { conn, .. } => conn,
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum AccountsCmd {
    /// All accounts.
    List,
    /// Create an account; prints its owner's token once.
    Create {
        /// Account name.
        name: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum GatewaysCmd {
    /// The Gateways & Environments list, with the unattached environments.
    List {
        /// enabled or deleted.
        #[arg(long, default_value = "enabled")]
        view: String,
        /// status, name, host_name or gateway_url.
        #[arg(long, default_value = "name")]
        sort: String,
        /// asc or desc.
        #[arg(long, default_value = "asc")]
        order: String,
        /// Filter by gateway or environment name.
        #[arg(long, short)]
        q: Option<String>,
    },
    /// One gateway (by id or name).
    Show {
        /// Gateway id or name.
        gateway: String,
    },
    /// Pre-register a gateway by name.
    Create {
        /// Gateway name.
        name: String,
    },
    /// Rename a gateway (by id or name).
    Rename {
        /// Gateway id or name.
        gateway: String,
        /// The new name.
        new_name: String,
    },
    /// Delete a gateway (by id or name): its environments become unattached; not restorable.
    Delete {
        /// Gateway id or name.
        gateway: String,
    },
    /// The nodes of a gateway (by id or name) and their states.
    Nodes {
        /// Gateway id or name.
        gateway: String,
    },
    /// Rolling restart of a gateway's online nodes (owner).
    Restart {
        /// Gateway id or name.
        gateway: String,
    },
    /// Stop a gateway's online nodes (owner); start them again on their hosts.
    Stop {
        /// Gateway id or name.
        gateway: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum EnvironmentsCmd {
    /// All environments, with the gateway each is attached to.
    List,
    /// Create an unattached environment with the default paths.
    Create {
        /// Environment name.
        name: String,
        /// production or test.
        #[arg(long, default_value = "production")]
        classification: String,
    },
    /// Rename an environment (by id or name).
    Rename {
        /// Environment id or name.
        environment: String,
        /// The new name.
        new_name: String,
    },
    /// Delete an environment (by id or name) and its deployments.
    Delete {
        /// Environment id or name.
        environment: String,
    },
    /// Set URL paths (by id or name); paths not given keep their value.
    Configure {
        /// Environment id or name.
        environment: String,
        /// Path prefix of REST APIs, e.g. `ws/rest` (no leading slash).
        #[arg(long)]
        rest_path: Option<String>,
        /// Path prefix of SOAP 1.1 APIs.
        #[arg(long)]
        soap_path: Option<String>,
        /// Path prefix of SOAP 1.2 APIs.
        #[arg(long)]
        soap12_path: Option<String>,
        /// Path prefix of OData APIs.
        #[arg(long)]
        odata_path: Option<String>,
    },
    /// Attach to a gateway, or detach with --detach (direct attach until migrations exist).
    Attach {
        /// Environment id or name.
        environment: String,
        /// Gateway id or name.
        #[arg(long, required_unless_present = "detach")]
        gateway: Option<String>,
        /// Attach to no gateway.
        #[arg(long, conflicts_with = "gateway")]
        detach: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum ApisCmd {
    /// All APIs.
    List,
    /// Create an API.
    Create {
        /// API name.
        #[arg(long)]
        name: String,
        /// API version, e.g. `v1`.
        #[arg(long, default_value = "v1")]
        version: String,
        /// REST, SOAP, SOAP12 or ODATA.
        #[arg(long = "type", default_value = "REST")]
        api_type: String,
        /// Base path under the environment's path for its type, e.g. `orders`.
        #[arg(long)]
        base_path: String,
        /// Upstream target URL; repeat for several.
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
        /// URL the gateway polls to tell whether the upstream is healthy.
        #[arg(long)]
        health_check_url: Option<String>,
    },
    /// Change an API (by id or name); options not given keep their value.
    Update {
        /// API id or name.
        api: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New version.
        #[arg(long)]
        version: Option<String>,
        /// REST, SOAP, SOAP12 or ODATA.
        #[arg(long = "type")]
        api_type: Option<String>,
        /// New base path.
        #[arg(long)]
        base_path: Option<String>,
        /// Upstream target URL; repeat for several; replaces all targets.
        #[arg(long = "target")]
        targets: Vec<String>,
        /// New health check URL.
        #[arg(long, conflicts_with = "no_health_check")]
        health_check_url: Option<String>,
        /// Remove the health check URL.
        #[arg(long)]
        no_health_check: bool,
    },
    /// Delete an API (by id or name) and its deployments.
    Delete {
        /// API id or name.
        api: String,
    },
    /// Deploy an API (by id or name) to an environment (by id or name).
    Deploy {
        /// API id or name.
        api: String,
        /// Environment id or name.
        #[arg(long)]
        environment: String,
        /// Path to serve the API under instead of its base path.
        #[arg(long)]
        custom_path: Option<String>,
    },
    /// Remove an API's deployment (API by id or name) from an environment (by id or name).
    Undeploy {
        /// API id or name.
        api: String,
        /// Environment id or name.
        #[arg(long)]
        environment: String,
    },
    /// The deployments of an API (by id or name).
    Deployments {
        /// API id or name.
        api: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum UsersCmd {
    /// The users of your account.
    List,
    /// Create a user (owner); prints a first token for them once.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// E-mail address (the console login).
        #[arg(long)]
        email: Option<String>,
        /// owner, admin or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// Change a user's role (owner); user by id, name or e-mail.
    SetRole {
        /// User id, name or e-mail.
        user: String,
        /// owner, admin or viewer.
        role: String,
    },
    /// Delete a user (owner); user by id, name or e-mail.
    Delete {
        /// User id, name or e-mail.
        user: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum TokensCmd {
    /// Your tokens (never their secrets).
    List,
    /// Create a token; prints the secret once.
    Create {
        /// A name to recognise the token by.
        name: String,
        /// Days until it expires (1–3650); never when not given.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke one of your tokens.
    Revoke {
        /// Token id (see `tokens list`).
        id: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum InstallTokensCmd {
    /// The install tokens of your account (never their secrets).
    List,
    /// Create an install token; prints the secret once, with the `switchyard gateway` line
    /// that joins a node with it.
    Create {
        /// How long the token can be used to join, 30–1440 minutes.
        #[arg(long, default_value_t = 60)]
        valid_for_minutes: i64,
        /// Gateway the printed join line names (an existing one gets a node, a new name creates
        /// it).
        #[arg(long)]
        gateway: Option<String>,
    },
    /// Revoke an install token: nodes can no longer join with it (joined nodes stay).
    Revoke {
        /// Install token id (see `install-tokens list`).
        id: String,
    },
}

pub fn run(command: AdminCommand) -> anyhow::Result<()> {
    let json = command.conn().json;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(dispatch(command));
    if let (Err(error), true) = (&result, json) {
        // Scripts read stdout: every failure there is an error envelope, the REST API's own
        // when it answered, else one describing what happened here.
        let envelope = match error.downcast_ref::<Failure>() {
            Some(failure) => failure.envelope.clone(),
            None => envelope("CLI_ERROR", &format!("{error:#}"), json!({})),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&envelope).expect("a JSON value serialises")
        );
    }
    result
}

/// A failed call: the REST error envelope (or one made up for a failure without one) and the
/// sentence shown to people.
#[derive(Debug)]
struct Failure {
    envelope: Value,
    text: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Failure {}

fn envelope(code: &str, message: &str, details: Value) -> Value {
    json!({ "error": { "code": code, "message": message, "details": details } })
}

/// The admin commands' view of the REST API: the shared [`platform::client::Client`], with
/// the answers as JSON (printed unchanged with `--json`, else as tables) and failures as
/// [`Failure`]s. Request bodies pass the given strings through, so a wrong value is refused
/// by the API with its own message and field.
struct Client {
    api: platform::client::Client,
    json: bool,
}

impl Client {
    fn new(conn: PlatformArgs) -> anyhow::Result<Client> {
        let token = match conn.token {
            Some(t) => t,
            None => {
                let path = conn.data_dir.join(OWNER_TOKEN_FILE);
                std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "no --token or SWITCHYARD_TOKEN, and {} is not readable",
                        path.display()
                    )
                })?
            }
        };
        let api =
            platform::client::Client::new(&conn.url, &token, std::time::Duration::from_secs(30))?;
        Ok(Client {
            api,
            json: conn.json,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.api
            .send(method, path, body.as_ref())
            .await
            .map_err(|error| self.failure(error).into())
    }

    /// A failed call as the envelope scripts read and the sentence people read.
    fn failure(&self, error: ClientError) -> Failure {
        let base = self.api.base();
        match error {
            ClientError::Refused { status, envelope } => {
                let e = &envelope.error;
                let mut text = format!("{status} {}: {}", e.code, e.message);
                if let Some(field) = e.details["field"].as_str() {
                    text.push_str(&format!(" (field `{field}`)"));
                }
                Failure {
                    envelope: serde_json::to_value(&envelope).expect("an envelope serialises"),
                    text,
                }
            }
            ClientError::Unexpected { status, what, .. } => {
                let text = format!("{base} answered {status}: {what}");
                Failure {
                    envelope: envelope(
                        "UNEXPECTED_RESPONSE",
                        &text,
                        json!({ "status": status, "url": base }),
                    ),
                    text,
                }
            }
            // The failure for a platform that did not answer: names the URL tried and how
            // to set it.
            ClientError::Unreachable { reason, .. } => {
                let text = format!(
                    "cannot reach the platform at {base} ({reason}); is it running? Give its \
                     address with --url URL or SWITCHYARD_URL"
                );
                Failure {
                    envelope: envelope("PLATFORM_UNREACHABLE", &text, json!({ "url": base })),
                    text,
                }
            }
        }
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Prints `value` as JSON with `--json`, else as a table of `rows` with `columns`.
    fn show(&self, value: &Value, rows: &[Value], columns: &[(&str, &str)]) {
        if self.json {
            print_json(value);
        } else {
            print_table(rows, columns);
        }
    }

    /// Prints one object as JSON with `--json`, else as `key: value` lines.
    fn show_one(&self, value: &Value, keys: &[&str]) {
        if self.json {
            print_json(value);
        } else {
            for key in keys {
                println!("{key}: {}", cell(&value[*key]));
            }
        }
    }

    /// Prints `text` for people; with `--json` the (empty) answer is `{}`.
    fn done(&self, text: &str) {
        if self.json {
            println!("{{}}");
        } else {
            println!("{text}");
        }
    }

    /// An id as given, or the id of the one object in `list_path`'s `key` array whose name
    /// (or e-mail) is `given`.
    async fn resolve(&self, given: &str, list_path: &str, key: &str) -> anyhow::Result<String> {
        if uuid_like(given) {
            return Ok(given.to_string());
        }
        let list = self.get(list_path).await?;
        let found: Vec<&Value> = list[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|o| o["name"] == given || o["email"] == given)
                    .collect()
            })
            .unwrap_or_default();
        let what = key.trim_end_matches('s');
        match found.as_slice() {
            [one] => Ok(one["id"].as_str().unwrap_or_default().to_string()),
            [] => Err(local_failure(
                "NOT_FOUND",
                format!("no {what} named {given:?}"),
            )),
            _ => Err(local_failure(
                "AMBIGUOUS_NAME",
                format!("several {key} are named {given:?}; use the id"),
            )),
        }
    }

    async fn gateway_id(&self, given: &str) -> anyhow::Result<String> {
        self.resolve(given, "/api/v1/gateways", "gateways").await
    }

    async fn environment_id(&self, given: &str) -> anyhow::Result<String> {
        self.resolve(given, "/api/v1/environments?limit=1000", "environments")
            .await
    }

    async fn api_id(&self, given: &str) -> anyhow::Result<String> {
        self.resolve(given, "/api/v1/apis?limit=1000", "apis").await
    }

    /// Environments with the name of the gateway each is attached to (`gateway`), for tables.
    async fn with_gateway_names(&self, environments: Vec<Value>) -> anyhow::Result<Vec<Value>> {
        if self.json {
            return Ok(environments);
        }
        let gateways = self.get("/api/v1/gateways").await?;
        let name_of = |id: &Value| {
            items(&gateways, "gateways")
                .into_iter()
                .find(|g| &g["id"] == id)
                .map(|g| g["name"].clone())
                .unwrap_or_else(|| id.clone())
        };
        Ok(environments
            .into_iter()
            .map(|mut env| {
                env["gateway"] = name_of(&env["gateway_id"]);
                env
            })
            .collect())
    }
}

fn local_failure(code: &str, text: String) -> anyhow::Error {
    Failure {
        envelope: envelope(code, &text, json!({})),
        text,
    }
    .into()
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("a JSON value serialises")
    );
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| match i.get("name").or_else(|| i.get("code")) {
                    Some(n) => cell(n),
                    None => cell(i),
                })
                .collect();
            if parts.is_empty() {
                "-".into()
            } else {
                parts.join(", ")
            }
        }
        Value::Object(map) => match (map.get("state"), map.get("variant")) {
            (Some(state), Some(Value::Null)) | (Some(state), None) => cell(state),
            (Some(state), Some(variant)) => format!("{} ({})", cell(state), cell(variant)),
            _ => v.to_string(),
        },
        other => other.to_string(),
    }
}

fn print_table(rows: &[Value], columns: &[(&str, &str)]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, key)| cell(&r[*key])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (title, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|(t, _)| t.to_string()).collect());
    for row in cells {
        line(row);
    }
}

fn items(value: &Value, key: &str) -> Vec<Value> {
    value[key].as_array().cloned().unwrap_or_default()
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const GATEWAY_COLUMNS: [(&str, &str); 7] = [
    ("STATUS", "status"),
    ("ISSUES", "issues"),
    ("NAME", "name"),
    ("ENVIRONMENTS", "environments"),
    ("HOST", "host_name"),
    ("GATEWAY URL", "gateway_url"),
    ("ID", "id"),
];

const ENV_COLUMNS: [(&str, &str); 8] = [
    ("NAME", "name"),
    ("CLASS", "classification"),
    ("GATEWAY", "gateway"),
    ("REST", "rest_path"),
    ("SOAP", "soap_path"),
    ("SOAP12", "soap12_path"),
    ("ODATA", "odata_path"),
    ("ID", "id"),
];

const API_KEYS: [&str; 6] = [
    "id",
    "name",
    "version",
    "api_type",
    "base_path",
    "upstream_targets",
];

async fn dispatch(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Accounts { conn, cmd } => accounts(Client::new(conn)?, cmd).await,
        AdminCommand::Gateways { conn, cmd } => gateways(Client::new(conn)?, cmd).await,
        AdminCommand::Environments { conn, cmd } => environments(Client::new(conn)?, cmd).await,
        AdminCommand::Apis { conn, cmd } => apis(Client::new(conn)?, cmd).await,
        AdminCommand::Users { conn, cmd } => users(Client::new(conn)?, cmd).await,
        AdminCommand::Tokens { conn, cmd } => tokens(Client::new(conn)?, cmd).await,
        AdminCommand::InstallTokens { conn, cmd } => install_tokens(Client::new(conn)?, cmd).await,
        AdminCommand::Audit {
            conn,
            limit,
            cursor,
        } => {
            let c = Client::new(conn)?;
            let mut path = format!("/api/v1/audit?limit={limit}");
            if let Some(cursor) = cursor {
                path.push_str(&format!("&cursor={}", query_escape(&cursor)));
            }
            let v = c.get(&path).await?;
            c.show(
                &v,
                &items(&v, "records"),
                &[
                    ("AT", "at"),
                    ("ACTOR", "actor_kind"),
                    ("ACTOR ID", "actor_id"),
                    ("ACTION", "action"),
                    ("TARGET", "target_kind"),
                    ("TARGET ID", "target_id"),
                    ("RESULT", "result"),
                ],
            );
            if let (false, Some(next)) = (c.json, v["next_cursor"].as_str()) {
                println!("more: --cursor {next}");
            }
            Ok(())
        }
    }
}

async fn accounts(c: Client, cmd: AccountsCmd) -> anyhow::Result<()> {
    match cmd {
        AccountsCmd::List => {
            let v = c.get("/api/v1/accounts?limit=1000").await?;
            c.show(
                &v,
                &items(&v, "accounts"),
                &[("ID", "id"), ("NAME", "name"), ("CREATED", "created_at")],
            );
        }
        AccountsCmd::Create { name } => {
            let v = c.post("/api/v1/accounts", json!({ "name": name })).await?;
            c.show_one(&v, &["id", "name", "owner_user_id", "owner_token"]);
        }
    }
    Ok(())
}

async fn gateways(c: Client, cmd: GatewaysCmd) -> anyhow::Result<()> {
    use reqwest::Method;
    match cmd {
        GatewaysCmd::List {
            view,
            sort,
            order,
            q,
        } => {
            let mut path = format!(
                "/api/v1/gateways?view={}&sort={}&order={}",
                query_escape(&view),
                query_escape(&sort),
                query_escape(&order)
            );
            if let Some(q) = q {
                path.push_str(&format!("&q={}", query_escape(&q)));
            }
            let v = c.get(&path).await?;
            c.show(&v, &items(&v, "gateways"), &GATEWAY_COLUMNS);
            if !c.json {
                println!(
                    "unattached environments: {}",
                    cell(&v["unattached_environments"])
                );
            }
        }
        GatewaysCmd::Show { gateway } => {
            let id = c.gateway_id(&gateway).await?;
            let v = c.get(&format!("/api/v1/gateways/{id}")).await?;
            c.show_one(
                &v,
                &[
                    "id",
                    "name",
                    "status",
                    "issues",
                    "environments",
                    "host_name",
                    "gateway_url",
                    "public_url",
                    "bind_address",
                    "created_at",
                ],
            );
        }
        GatewaysCmd::Create { name } => {
            let v = c.post("/api/v1/gateways", json!({ "name": name })).await?;
            c.show_one(&v, &["id", "name", "status", "gateway_url"]);
        }
        GatewaysCmd::Rename { gateway, new_name } => {
            let id = c.gateway_id(&gateway).await?;
            let v = c
                .call(
                    Method::PATCH,
                    &format!("/api/v1/gateways/{id}"),
                    Some(json!({ "name": new_name })),
                )
                .await?;
            c.show_one(&v, &["id", "name"]);
        }
        GatewaysCmd::Delete { gateway } => {
            let id = c.gateway_id(&gateway).await?;
            c.delete(&format!("/api/v1/gateways/{id}")).await?;
            c.done(&format!("deleted gateway {id}"));
        }
        GatewaysCmd::Nodes { gateway } => {
            let id = c.gateway_id(&gateway).await?;
            let v = c.get(&format!("/api/v1/gateways/{id}/nodes")).await?;
            c.show(
                &v,
                &items(&v, "nodes"),
                &[
                    ("STATUS", "status"),
                    ("HOST", "host_name"),
                    ("ADDRESS", "address"),
                    ("VERSION", "version"),
                    ("GENERATION", "applied_generation"),
                    ("LAST SEEN", "last_seen"),
                    ("ID", "id"),
                ],
            );
        }
        GatewaysCmd::Restart { gateway } => {
            let id = c.gateway_id(&gateway).await?;
            let v = c
                .post(&format!("/api/v1/gateways/{id}/restart"), json!({}))
                .await?;
            c.show_one(&v, &["command_id", "nodes"]);
        }
        GatewaysCmd::Stop { gateway } => {
            let id = c.gateway_id(&gateway).await?;
            let v = c
                .post(&format!("/api/v1/gateways/{id}/stop"), json!({}))
                .await?;
            c.show_one(&v, &["command_id", "nodes"]);
        }
    }
    Ok(())
}

async fn environments(c: Client, cmd: EnvironmentsCmd) -> anyhow::Result<()> {
    use reqwest::Method;
    let one = |v: Value| vec![v];
    match cmd {
        EnvironmentsCmd::List => {
            let v = c.get("/api/v1/environments?limit=1000").await?;
            let rows = c.with_gateway_names(items(&v, "environments")).await?;
            c.show(&v, &rows, &ENV_COLUMNS);
        }
        EnvironmentsCmd::Create {
            name,
            classification,
        } => {
            let v = c
                .post(
                    "/api/v1/environments",
                    json!({ "name": name, "classification": classification }),
                )
                .await?;
            let rows = c.with_gateway_names(one(v.clone())).await?;
            c.show(&v, &rows, &ENV_COLUMNS);
        }
        EnvironmentsCmd::Rename {
            environment,
            new_name,
        } => {
            let id = c.environment_id(&environment).await?;
            let v = c
                .call(
                    Method::PATCH,
                    &format!("/api/v1/environments/{id}"),
                    Some(json!({ "name": new_name })),
                )
                .await?;
            let rows = c.with_gateway_names(one(v.clone())).await?;
            c.show(&v, &rows, &ENV_COLUMNS);
        }
        EnvironmentsCmd::Delete { environment } => {
            let id = c.environment_id(&environment).await?;
            c.delete(&format!("/api/v1/environments/{id}")).await?;
            c.done(&format!("deleted environment {id}"));
        }
        EnvironmentsCmd::Configure {
            environment,
            rest_path,
            soap_path,
            soap12_path,
            odata_path,
        } => {
            let id = c.environment_id(&environment).await?;
            let path = format!("/api/v1/environments/{id}/configuration");
            let current = c.get(&path).await?;
            let pick = |given: Option<String>, key: &str| {
                given
                    .map(Value::String)
                    .unwrap_or_else(|| current[key].clone())
            };
            let body = json!({
                "rest_path": pick(rest_path, "rest_path"),
                "soap_path": pick(soap_path, "soap_path"),
                "soap12_path": pick(soap12_path, "soap12_path"),
                "odata_path": pick(odata_path, "odata_path"),
            });
            let v = c.call(Method::PUT, &path, Some(body)).await?;
            let rows = c.with_gateway_names(one(v.clone())).await?;
            c.show(&v, &rows, &ENV_COLUMNS);
        }
        EnvironmentsCmd::Attach {
            environment,
            gateway,
            detach,
        } => {
            let id = c.environment_id(&environment).await?;
            let gateway_id = match (gateway, detach) {
                (Some(g), false) => Value::String(c.gateway_id(&g).await?),
                _ => Value::Null,
            };
            let v = c
                .call(
                    Method::PUT,
                    &format!("/api/v1/environments/{id}/gateway"),
                    Some(json!({ "gateway_id": gateway_id })),
                )
                .await?;
            let rows = c.with_gateway_names(one(v.clone())).await?;
            c.show(&v, &rows, &ENV_COLUMNS);
        }
    }
    Ok(())
}

async fn apis(c: Client, cmd: ApisCmd) -> anyhow::Result<()> {
    use reqwest::Method;
    match cmd {
        ApisCmd::List => {
            let v = c.get("/api/v1/apis?limit=1000").await?;
            c.show(
                &v,
                &items(&v, "apis"),
                &[
                    ("NAME", "name"),
                    ("VERSION", "version"),
                    ("TYPE", "api_type"),
                    ("BASE PATH", "base_path"),
                    ("TARGETS", "upstream_targets"),
                    ("ID", "id"),
                ],
            );
        }
        ApisCmd::Create {
            name,
            version,
            api_type,
            base_path,
            targets,
            health_check_url,
        } => {
            let v = c
                .post(
                    "/api/v1/apis",
                    json!({
                        "name": name,
                        "version": version,
                        "api_type": api_type,
                        "base_path": base_path,
                        "upstream_targets": targets,
                        "health_check_url": health_check_url,
                    }),
                )
                .await?;
            c.show_one(&v, &API_KEYS);
        }
        ApisCmd::Update {
            api,
            name,
            version,
            api_type,
            base_path,
            targets,
            health_check_url,
            no_health_check,
        } => {
            let id = c.api_id(&api).await?;
            let mut body = serde_json::Map::new();
            let mut set = |key: &str, value: Option<Value>| {
                if let Some(value) = value {
                    body.insert(key.to_string(), value);
                }
            };
            set("name", name.map(Value::String));
            set("version", version.map(Value::String));
            set("api_type", api_type.map(Value::String));
            set("base_path", base_path.map(Value::String));
            set(
                "upstream_targets",
                (!targets.is_empty()).then(|| json!(targets)),
            );
            set("health_check_url", health_check_url.map(Value::String));
            if no_health_check {
                set("health_check_url", Some(Value::Null));
            }
            if body.is_empty() {
                bail!("nothing to change: give at least one option (see --help)");
            }
            let v = c
                .call(
                    Method::PATCH,
                    &format!("/api/v1/apis/{id}"),
                    Some(Value::Object(body)),
                )
                .await?;
            c.show_one(&v, &API_KEYS);
        }
        ApisCmd::Delete { api } => {
            let id = c.api_id(&api).await?;
            c.delete(&format!("/api/v1/apis/{id}")).await?;
            c.done(&format!("deleted API {id}"));
        }
        ApisCmd::Deploy {
            api,
            environment,
            custom_path,
        } => {
            let api = c.api_id(&api).await?;
            let env = c.environment_id(&environment).await?;
            let v = c
                .post(
                    &format!("/api/v1/apis/{api}/deployments"),
                    json!({ "environment_id": env, "custom_path": custom_path }),
                )
                .await?;
            c.show_one(
                &v,
                &["id", "api_id", "environment_id", "custom_path", "status"],
            );
        }
        ApisCmd::Undeploy { api, environment } => {
            let api = c.api_id(&api).await?;
            let env = c.environment_id(&environment).await?;
            let list = c.get(&format!("/api/v1/apis/{api}/deployments")).await?;
            let Some(deployment) = items(&list, "deployments")
                .into_iter()
                .find(|d| d["environment_id"] == env.as_str())
            else {
                return Err(local_failure(
                    "NOT_FOUND",
                    format!("the API is not deployed to environment {environment:?}"),
                ));
            };
            let id = deployment["id"].as_str().unwrap_or_default();
            c.delete(&format!("/api/v1/apis/{api}/deployments/{id}"))
                .await?;
            c.done(&format!("removed deployment {id}"));
        }
        ApisCmd::Deployments { api } => {
            let api = c.api_id(&api).await?;
            let v = c.get(&format!("/api/v1/apis/{api}/deployments")).await?;
            c.show(
                &v,
                &items(&v, "deployments"),
                &[
                    ("ENVIRONMENT ID", "environment_id"),
                    ("CUSTOM PATH", "custom_path"),
                    ("STATUS", "status"),
                    ("CREATED", "created_at"),
                    ("ID", "id"),
                ],
            );
        }
    }
    Ok(())
}

async fn users(c: Client, cmd: UsersCmd) -> anyhow::Result<()> {
    use reqwest::Method;
    let user_id = |given: String| {
        let c = &c;
        async move { c.resolve(&given, "/api/v1/users?limit=1000", "users").await }
    };
    match cmd {
        UsersCmd::List => {
            let v = c.get("/api/v1/users?limit=1000").await?;
            c.show(
                &v,
                &items(&v, "users"),
                &[
                    ("NAME", "name"),
                    ("EMAIL", "email"),
                    ("ROLE", "role"),
                    ("CREATED", "created_at"),
                    ("ID", "id"),
                ],
            );
        }
        UsersCmd::Create { name, email, role } => {
            let v = c
                .post(
                    "/api/v1/users",
                    json!({ "name": name, "email": email, "role": role }),
                )
                .await?;
            c.show_one(&v, &["id", "name", "email", "role", "token"]);
        }
        UsersCmd::SetRole { user, role } => {
            let id = user_id(user).await?;
            let v = c
                .call(
                    Method::PATCH,
                    &format!("/api/v1/users/{id}"),
                    Some(json!({ "role": role })),
                )
                .await?;
            c.show_one(&v, &["id", "name", "email", "role"]);
        }
        UsersCmd::Delete { user } => {
            let id = user_id(user).await?;
            c.delete(&format!("/api/v1/users/{id}")).await?;
            c.done(&format!("deleted user {id}"));
        }
    }
    Ok(())
}

async fn tokens(c: Client, cmd: TokensCmd) -> anyhow::Result<()> {
    match cmd {
        TokensCmd::List => {
            let v = c.get("/api/v1/tokens?limit=1000").await?;
            c.show(
                &v,
                &items(&v, "tokens"),
                &[
                    ("NAME", "name"),
                    ("PREFIX", "prefix"),
                    ("CREATED", "created_at"),
                    ("EXPIRES", "expires_at"),
                    ("REVOKED", "revoked_at"),
                    ("ID", "id"),
                ],
            );
        }
        TokensCmd::Create {
            name,
            expires_in_days,
        } => {
            let v = c
                .post(
                    "/api/v1/tokens",
                    json!({ "name": name, "expires_in_days": expires_in_days }),
                )
                .await?;
            c.show_one(&v, &["id", "name", "expires_at", "token"]);
        }
        TokensCmd::Revoke { id } => {
            c.delete(&format!("/api/v1/tokens/{id}")).await?;
            c.done(&format!("revoked token {id}"));
        }
    }
    Ok(())
}

async fn install_tokens(c: Client, cmd: InstallTokensCmd) -> anyhow::Result<()> {
    match cmd {
        InstallTokensCmd::List => {
            let v = c.get("/api/v1/install-tokens?limit=1000").await?;
            c.show(
                &v,
                &items(&v, "install_tokens"),
                &[
                    ("CREATED", "created_at"),
                    ("EXPIRES", "expires_at"),
                    ("REVOKED", "revoked_at"),
                    ("ID", "id"),
                ],
            );
        }
        InstallTokensCmd::Create {
            valid_for_minutes,
            gateway,
        } => {
            let mut v = c
                .post(
                    "/api/v1/install-tokens",
                    json!({ "valid_for_minutes": valid_for_minutes }),
                )
                .await?;
            if let (Some(gateway), Some(line)) = (gateway, v["join_command"].as_str()) {
                v["join_command"] =
                    Value::String(line.replace("GATEWAY_NAME", &shell_word(&gateway)));
            }
            c.show_one(&v, &["id", "token", "expires_at"]);
            if !c.json {
                println!(
                    "start a node with (add --data-dir and --listen for a second node on one host):"
                );
                println!("  {}", cell(&v["join_command"]));
            }
        }
        InstallTokensCmd::Revoke { id } => {
            c.delete(&format!("/api/v1/install-tokens/{id}")).await?;
            c.done(&format!("revoked install token {id}"));
        }
    }
    Ok(())
}

/// `s` as one shell word: as is when it needs no quoting, else single-quoted.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@+=".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quote_what_the_shell_would_split() {
        assert_eq!(shell_word("edge-1"), "edge-1");
        assert_eq!(shell_word("my gateway"), "'my gateway'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
