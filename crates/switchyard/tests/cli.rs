//! `switchyard platform` and the admin commands as a user runs them, each a real process: the
//! platform bootstraps its administrator on an empty database (token file 0600) and only
//! then; `platform bootstrap` mints a new token; the admin commands drive a real platform,
//! print tables or JSON (error envelopes included), and say which URL they tried when no
//! platform answers.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A running `switchyard platform`, killed on drop.
struct PlatformProcess {
    child: Child,
    stdout: Vec<String>,
    url: String,
}

impl PlatformProcess {
    fn start(data_dir: &Path) -> PlatformProcess {
        let mut child = Command::new(BIN)
            .args(["platform", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn switchyard platform");
        let reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut stdout = Vec::new();
        let mut url = None;
        // Lines up to the one with the listening address, which comes last.
        for line in reader.lines() {
            let line = line.expect("read stdout");
            if let Some(rest) = line.strip_prefix("Switchyard platform on ") {
                url = rest.split_whitespace().next().map(str::to_string);
            }
            stdout.push(line);
            if url.is_some() {
                break;
            }
        }
        let url = url.unwrap_or_else(|| panic!("no address line in {stdout:#?}"));
        PlatformProcess { child, stdout, url }
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "platform exited with {status}");
    }
}

impl Drop for PlatformProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("token file")
        .trim()
        .to_string()
}

/// `GET /api/v1/me` with `token`: the status and the body.
fn me(url: &str, token: &str) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("{url}/api/v1/me"))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET /me");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    })
}

/// Runs `switchyard ARGS` to completion (bounded: the client times out by itself).
fn cli(args: &[&str]) -> Output {
    let started = Instant::now();
    let output = Command::new(BIN)
        .args(args)
        .env_remove("SWITCHYARD_TOKEN")
        .env_remove("SWITCHYARD_URL")
        .output()
        .expect("run switchyard");
    assert!(started.elapsed() < Duration::from_secs(60), "{args:?} hung");
    output
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs an admin command that must succeed; answers its stdout.
fn ok(args: &[&str]) -> String {
    let o = cli(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

/// Runs an admin command with `--json` that must succeed; answers the parsed JSON.
fn ok_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ok(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[test]
fn platform_bootstraps_its_administrator_on_an_empty_database_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let file = data.join("admin-token");

    let first = PlatformProcess::start(&data);
    let said = first.stdout.join("\n");
    assert!(
        said.contains(&file.display().to_string()) && said.contains("0600"),
        "{said}"
    );
    assert!(
        !said.contains("sy_pat_"),
        "the token itself is never printed: {said}"
    );
    assert_eq!(mode(&file), 0o600);
    let token = read(&file);
    let (status, body) = me(&first.url, &token);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["platform_admin"], true, "{body}");
    first.stop();

    // Not empty any more: nothing minted, the saved token still valid.
    let second = PlatformProcess::start(&data);
    assert!(
        !second.stdout.join("\n").contains("administrator"),
        "{:?}",
        second.stdout
    );
    assert_eq!(read(&file), token);
    assert_eq!(me(&second.url, &token).0, 200);

    // The way back in: a new token into the file; the old one stays valid.
    let out = ok(&[
        "platform",
        "bootstrap",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(out.contains(&file.display().to_string()), "{out}");
    let renewed = read(&file);
    assert_ne!(renewed, token);
    assert_eq!(mode(&file), 0o600);
    let (status, body) = me(&second.url, &renewed);
    assert_eq!(
        (status, body["platform_admin"].clone()),
        (200, Value::Bool(true))
    );
    assert_eq!(me(&second.url, &token).0, 200);
    second.stop();
}

#[test]
fn admin_commands_drive_a_real_platform() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let platform = PlatformProcess::start(&data);
    let url = platform.url.as_str();
    let admin = read(&data.join("admin-token"));

    let account = ok_json(&[
        "accounts", "create", "acme", "--url", url, "--token", &admin,
    ]);
    let owner = account["owner_token"]
        .as_str()
        .expect("owner token")
        .to_string();
    let c = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["--url".into(), url.into(), "--token".into(), owner.clone()]);
        all
    };
    let run = |args: &[&str]| ok(&c(args).iter().map(String::as_str).collect::<Vec<_>>());
    let run_json = |args: &[&str]| ok_json(&c(args).iter().map(String::as_str).collect::<Vec<_>>());

    let gateway = run_json(&["gateways", "create", "edge-1"]);
    let gateway_id = gateway["id"].as_str().unwrap().to_string();
    run(&[
        "environments",
        "create",
        "Staging",
        "--classification",
        "test",
    ]);
    run(&["environments", "attach", "Staging", "--gateway", "edge-1"]);
    // The table names the gateway, not its id.
    let table = run(&["environments", "list"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("Staging"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("edge-1") && !row.contains(&gateway_id),
        "{table}"
    );
    // Nodes, restart and stop of a gateway without nodes.
    let nodes = run_json(&["gateways", "nodes", "edge-1"]);
    assert_eq!(nodes["nodes"], serde_json::json!([]));
    let o = cli(&c(&["gateways", "restart", "edge-1", "--json"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(!o.status.success());
    let envelope: Value = serde_json::from_str(&stdout(&o)).expect("envelope on stdout");
    assert_eq!(envelope["error"]["code"], "NO_NODE_ONLINE", "{envelope}");
    let o = cli(&c(&["gateways", "stop", "edge-1"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(String::from_utf8_lossy(&o.stderr).contains("409 NO_NODE_ONLINE"));

    // APIs: create, deploy, update, undeploy, delete.
    run(&[
        "apis",
        "create",
        "--name",
        "Orders",
        "--base-path",
        "orders",
        "--target",
        "http://127.0.0.1:9000",
    ]);
    run(&["apis", "deploy", "Orders", "--environment", "Staging"]);
    let deployments = run_json(&["apis", "deployments", "Orders"]);
    assert_eq!(deployments["deployments"].as_array().unwrap().len(), 1);
    let updated = run_json(&[
        "apis",
        "update",
        "Orders",
        "--target",
        "http://127.0.0.1:9001",
        "--version",
        "v2",
    ]);
    assert_eq!(
        (
            updated["version"].clone(),
            updated["upstream_targets"].clone()
        ),
        (
            Value::from("v2"),
            serde_json::json!(["http://127.0.0.1:9001/"])
        )
    );
    run(&["apis", "undeploy", "Orders", "--environment", "Staging"]);
    let deployments = run_json(&["apis", "deployments", "Orders"]);
    assert_eq!(deployments["deployments"], serde_json::json!([]));
    run(&["apis", "delete", "Orders"]);
    assert_eq!(run_json(&["apis", "list"])["apis"], serde_json::json!([]));

    // Environments: rename, delete.
    run(&["environments", "rename", "Staging", "QA"]);
    assert!(run(&["environments", "list"]).contains("QA"));
    run(&["environments", "delete", "QA"]);
    assert_eq!(
        run_json(&["environments", "list"])["environments"],
        serde_json::json!([])
    );

    // Users: create, set role, delete.
    let user = run_json(&[
        "users",
        "create",
        "--name",
        "Vera",
        "--email",
        "vera@acme.test",
        "--role",
        "viewer",
    ]);
    assert!(user["token"].as_str().is_some(), "{user}");
    let changed = run_json(&["users", "set-role", "vera@acme.test", "admin"]);
    assert_eq!(changed["role"], "admin");
    run(&["users", "delete", "Vera"]);
    assert!(!run(&["users", "list"]).contains("Vera"));

    // Install tokens: the join line names the gateway; list and revoke.
    let out = run(&["install-tokens", "create", "--gateway", "edge-1"]);
    let join = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("switchyard gateway "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        join.contains(&format!("--platform {url} ")) && join.ends_with("--name edge-1"),
        "{join}"
    );
    let listed = run_json(&["install-tokens", "list"]);
    let id = listed["install_tokens"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    run(&["install-tokens", "revoke", &id]);
    let listed = run_json(&["install-tokens", "list"]);
    assert!(
        listed["install_tokens"][0]["revoked_at"].is_string(),
        "{listed}"
    );

    // The audit log saw all of it.
    let audit = run(&["audit", "--limit", "500"]);
    for action in ["api.delete", "environment.delete", "install_token.revoke"] {
        assert!(audit.contains(action), "{action} missing in {audit}");
    }

    // A name that resolves to nothing: a clear message, an envelope with --json.
    let o = cli(&c(&["gateways", "delete", "nope", "--json"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(!o.status.success());
    let envelope: Value = serde_json::from_str(&stdout(&o)).expect("envelope on stdout");
    assert_eq!(envelope["error"]["code"], "NOT_FOUND", "{envelope}");
    platform.stop();
}

#[test]
fn a_platform_that_is_not_running_is_named_with_how_to_set_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let o = cli(&["gateways", "list", "--url", &url, "--token", "sy_pat_x"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&url) && err.contains("--url") && err.contains("SWITCHYARD_URL"),
        "{err}"
    );
    let o = cli(&[
        "gateways", "list", "--url", &url, "--token", "sy_pat_x", "--json",
    ]);
    let envelope: Value = serde_json::from_str(&stdout(&o)).expect("envelope on stdout");
    assert_eq!(envelope["error"]["code"], "PLATFORM_UNREACHABLE");
    assert_eq!(envelope["error"]["details"]["url"], url.as_str());
}
