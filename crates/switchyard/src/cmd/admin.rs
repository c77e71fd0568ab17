//! Admin commands: a typed REST client for accounts, gateways, environments, APIs and tokens.
//! Human tables by default, `--json` for scripts (the API's JSON, unchanged).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::platform::DEFAULT_DATA_DIR;
use super::up::OWNER_TOKEN_FILE;

/// Where and as whom to call the REST API.
#[derive(clap::Args, Debug)]
pub struct Conn {
    /// Base URL of the platform.
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
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum AdminCommand {
    /// Accounts (platform administrator token).
    Accounts {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: AccountsCmd,
    },
    /// Gateways of your account.
    Gateways {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: GatewaysCmd,
    },
    /// Environments and their URL paths.
    Environments {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: EnvironmentsCmd,
    },
    /// APIs and deployments.
    Apis {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: ApisCmd,
    },
    /// Your personal API tokens.
    Tokens {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: TokensCmd,
    },
    /// Install tokens for joining gateway nodes.
    InstallTokens {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: InstallTokensCmd,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum AccountsCmd {
    List,
    /// Create an account; prints its owner's token once.
    Create {
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
    /// Pre-register a gateway by name.
    Create { name: String },
    /// Rename a gateway (by id or name).
    Rename { gateway: String, new_name: String },
    /// Delete a gateway (by id or name): its environments become unattached; not restorable.
    Delete { gateway: String },
}

#[derive(clap::Subcommand, Debug)]
pub enum EnvironmentsCmd {
    List,
    /// Create an unattached environment with the default paths.
    Create {
        name: String,
        /// production or test.
        #[arg(long, default_value = "production")]
        classification: String,
    },
    /// Set URL paths (by id or name); paths not given keep their value.
    Configure {
        environment: String,
        #[arg(long)]
        rest_path: Option<String>,
        #[arg(long)]
        soap_path: Option<String>,
        #[arg(long)]
        soap12_path: Option<String>,
        #[arg(long)]
        odata_path: Option<String>,
    },
    /// Attach to a gateway, or detach with --detach (direct attach until migrations exist).
    Attach {
        environment: String,
        /// Gateway id or name.
        #[arg(long, required_unless_present = "detach")]
        gateway: Option<String>,
        #[arg(long, conflicts_with = "gateway")]
        detach: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum ApisCmd {
    List,
    /// Create an API.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "v1")]
        version: String,
        /// REST, SOAP, SOAP12 or ODATA.
        #[arg(long = "type", default_value = "REST")]
        api_type: String,
        #[arg(long)]
        base_path: String,
        /// Upstream target URL; repeat for several.
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
        #[arg(long)]
        health_check_url: Option<String>,
    },
    /// Deploy an API (by id or name) to an environment (by id or name).
    Deploy {
        api: String,
        #[arg(long)]
        environment: String,
        #[arg(long)]
        custom_path: Option<String>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum TokensCmd {
    List,
    /// Create a token; prints the secret once.
    Create {
        name: String,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    Revoke {
        id: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum InstallTokensCmd {
    /// Create an install token (30–1440 minutes); prints the secret once.
    Create {
        #[arg(long, default_value_t = 60)]
        valid_for_minutes: i64,
    },
}

pub fn run(command: AdminCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(dispatch(command))
}

/// A thin typed client over the REST API.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    json: bool,
}

impl Client {
    fn new(conn: Conn) -> anyhow::Result<Client> {
        let token = match conn.token {
            Some(t) => t,
            None => {
                let path = conn.data_dir.join(OWNER_TOKEN_FILE);
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no --token or SWITCHYARD_TOKEN, and {} is not readable",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Client {
            http,
            base: conn.url.trim_end_matches('/').to_string(),
            token,
            json: conn.json,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling {}", self.base))?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if !status.is_success() {
            let e = &value["error"];
            let mut text = format!(
                "{} {}: {}",
                status.as_u16(),
                e["code"].as_str().unwrap_or("ERROR"),
                e["message"].as_str().unwrap_or("request failed")
            );
            if let Some(field) = e["details"]["field"].as_str() {
                text.push_str(&format!(" (field `{field}`)"));
            }
            bail!(text);
        }
        Ok(value)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Prints `value` as JSON with `--json`, else as a table of `rows` with `columns`.
    fn show(&self, value: &Value, rows: &[Value], columns: &[(&str, &str)]) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            print_table(rows, columns);
        }
    }

    /// Prints one object as JSON with `--json`, else as `key: value` lines.
    fn show_one(&self, value: &Value, keys: &[&str]) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            for key in keys {
                println!("{key}: {}", cell(&value[*key]));
            }
        }
    }

    /// An id as given, or the id of the object named so in `list_path`'s `key` array.
    async fn resolve(&self, given: &str, list_path: &str, key: &str) -> anyhow::Result<String> {
        if uuid_like(given) {
            return Ok(given.to_string());
        }
        let list = self.get(list_path).await?;
        let found: Vec<&Value> = list[key]
            .as_array()
            .map(|a| a.iter().filter(|o| o["name"] == given).collect())
            .unwrap_or_default();
        match found.as_slice() {
            [one] => Ok(one["id"].as_str().unwrap_or_default().to_string()),
            [] => bail!("no {} named {given:?}", key.trim_end_matches('s')),
            _ => bail!("several {key} are named {given:?}; use the id"),
        }
    }
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

async fn dispatch(command: AdminCommand) -> anyhow::Result<()> {
    use reqwest::Method;
    match command {
        AdminCommand::Accounts { conn, cmd } => {
            let c = Client::new(conn)?;
            match cmd {
                AccountsCmd::List => {
                    let v = c.get("/api/v1/accounts").await?;
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
        }
        AdminCommand::Gateways { conn, cmd } => {
            let c = Client::new(conn)?;
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
                    c.show(
                        &v,
                        &items(&v, "gateways"),
                        &[
                            ("STATUS", "status"),
                            ("ISSUES", "issues"),
                            ("NAME", "name"),
                            ("ENVIRONMENTS", "environments"),
                            ("HOST", "host_name"),
                            ("GATEWAY URL", "gateway_url"),
                            ("ID", "id"),
                        ],
                    );
                    if !c.json {
                        println!(
                            "unattached environments: {}",
                            cell(&v["unattached_environments"])
                        );
                    }
                }
                GatewaysCmd::Create { name } => {
                    let v = c.post("/api/v1/gateways", json!({ "name": name })).await?;
                    c.show_one(&v, &["id", "name", "status", "gateway_url"]);
                }
                GatewaysCmd::Rename { gateway, new_name } => {
                    let id = c.resolve(&gateway, "/api/v1/gateways", "gateways").await?;
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
                    let id = c.resolve(&gateway, "/api/v1/gateways", "gateways").await?;
                    c.call(Method::DELETE, &format!("/api/v1/gateways/{id}"), None)
                        .await?;
                    if !c.json {
                        println!("deleted gateway {id}");
                    }
                }
            }
        }
        AdminCommand::Environments { conn, cmd } => {
            let c = Client::new(conn)?;
            let env_columns = [
                ("NAME", "name"),
                ("CLASS", "classification"),
                ("GATEWAY", "gateway_id"),
                ("REST", "rest_path"),
                ("SOAP", "soap_path"),
                ("SOAP12", "soap12_path"),
                ("ODATA", "odata_path"),
                ("ID", "id"),
            ];
            match cmd {
                EnvironmentsCmd::List => {
                    let v = c.get("/api/v1/environments").await?;
                    c.show(&v, &items(&v, "environments"), &env_columns);
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
                    c.show(&v, std::slice::from_ref(&v), &env_columns);
                }
                EnvironmentsCmd::Configure {
                    environment,
                    rest_path,
                    soap_path,
                    soap12_path,
                    odata_path,
                } => {
                    let id = c
                        .resolve(&environment, "/api/v1/environments", "environments")
                        .await?;
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
                    c.show(&v, std::slice::from_ref(&v), &env_columns);
                }
                EnvironmentsCmd::Attach {
                    environment,
                    gateway,
                    detach,
                } => {
                    let id = c
                        .resolve(&environment, "/api/v1/environments", "environments")
                        .await?;
                    let gateway_id = match (gateway, detach) {
                        (Some(g), false) => {
                            Value::String(c.resolve(&g, "/api/v1/gateways", "gateways").await?)
                        }
                        _ => Value::Null,
                    };
                    let v = c
                        .call(
                            Method::PUT,
                            &format!("/api/v1/environments/{id}/gateway"),
                            Some(json!({ "gateway_id": gateway_id })),
                        )
                        .await?;
                    c.show(&v, std::slice::from_ref(&v), &env_columns);
                }
            }
        }
        AdminCommand::Apis { conn, cmd } => {
            let c = Client::new(conn)?;
            match cmd {
                ApisCmd::List => {
                    let v = c.get("/api/v1/apis").await?;
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
                    c.show_one(&v, &["id", "name", "version", "api_type", "base_path"]);
                }
                ApisCmd::Deploy {
                    api,
                    environment,
                    custom_path,
                } => {
                    let api = c.resolve(&api, "/api/v1/apis", "apis").await?;
                    let env = c
                        .resolve(&environment, "/api/v1/environments", "environments")
                        .await?;
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
            }
        }
        AdminCommand::Tokens { conn, cmd } => {
            let c = Client::new(conn)?;
            match cmd {
                TokensCmd::List => {
                    let v = c.get("/api/v1/tokens").await?;
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
                    c.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
                        .await?;
                    if !c.json {
                        println!("revoked token {id}");
                    }
                }
            }
        }
        AdminCommand::InstallTokens { conn, cmd } => {
            let c = Client::new(conn)?;
            match cmd {
                InstallTokensCmd::Create { valid_for_minutes } => {
                    let v = c
                        .post(
                            "/api/v1/install-tokens",
                            json!({ "valid_for_minutes": valid_for_minutes }),
                        )
                        .await?;
                    c.show_one(&v, &["id", "token", "expires_at"]);
                }
            }
        }
    }
    Ok(())
}
