//! `switchyard up` as a user runs it: first run writes both tokens (mode 0600) and prints
//! their paths; the local gateway node serves the sample `echo` API at the printed curl line;
//! a second run on the same data directory reuses data, tokens and the gateway.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A running `switchyard up`, stopped with SIGTERM on drop.
struct Up {
    child: Child,
    stdout: Vec<String>,
    base: String,
    through_gateway: String,
}

impl Up {
    fn start(data_dir: &Path) -> Up {
        let mut child = Command::new(BIN)
            .args(["up", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn switchyard up");
        let reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut stdout = Vec::new();
        let mut base = None;
        let mut through_gateway = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        // The last line of the welcome text is the curl hint; read up to it.
        for line in reader.lines() {
            let line = line.expect("read stdout");
            if let Some(rest) = line.trim().strip_prefix("REST API:") {
                let url = rest.split_whitespace().next().expect("url");
                base = Some(url.trim_end_matches("/api/v1").to_string());
            }
            if let Some(rest) = line.trim().strip_prefix("Through the gateway: curl ") {
                through_gateway = Some(rest.trim().to_string());
            }
            let done = line.starts_with("Try:");
            stdout.push(line);
            if done || Instant::now() > deadline {
                break;
            }
        }
        let base = base.unwrap_or_else(|| panic!("no REST API line in {stdout:#?}"));
        let through_gateway =
            through_gateway.unwrap_or_else(|| panic!("no curl line in {stdout:#?}"));
        Up {
            child,
            stdout,
            base,
            through_gateway,
        }
    }

    /// Waits until the printed URL through the gateway answers 200; answers the body.
    fn echo(&self) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let client = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let last = match client.get(&self.through_gateway).send().await {
                    Ok(r) if r.status() == 200 => return r.json().await.expect("json body"),
                    Ok(r) => format!("{}", r.status()),
                    Err(e) => e.to_string(),
                };
                assert!(
                    Instant::now() < deadline,
                    "{} never answered 200: {last}",
                    self.through_gateway
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    }

    fn gateways(&self, token: &str) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            reqwest::Client::new()
                .get(format!("{}/api/v1/gateways", self.base))
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json")
        })
    }

    fn get(&self, path: &str, token: &str) -> u16 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            reqwest::Client::new()
                .get(format!("{}{path}", self.base))
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        })
    }

    fn stop(mut self) {
        terminate(&self.child);
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "up exited with {status} after SIGTERM");
    }
}

fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

impl Drop for Up {
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

#[test]
fn up_writes_tokens_once_and_reuses_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let owner_file = data.join("owner-token");
    let admin_file = data.join("admin-token");

    let first = Up::start(&data);
    let text = first.stdout.join("\n");
    assert!(text.contains(&owner_file.display().to_string()), "{text}");
    assert!(text.contains(&admin_file.display().to_string()), "{text}");
    assert_eq!(mode(&owner_file), 0o600);
    assert_eq!(mode(&admin_file), 0o600);
    let owner = std::fs::read_to_string(&owner_file)
        .unwrap()
        .trim()
        .to_string();
    let admin = std::fs::read_to_string(&admin_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(owner.starts_with("sy_pat_") && admin.starts_with("sy_pat_"));
    assert_ne!(owner, admin);
    assert!(
        !text.contains(&owner),
        "the owner's token stays in its file; stdout shows only its path: {text}"
    );
    assert!(text.contains("First run"), "{text}");
    assert!(
        !text.contains(&admin),
        "the admin token stays in its file: {text}"
    );
    assert_eq!(first.get("/api/v1/gateways", &owner), 200);
    assert_eq!(first.get("/api/v1/accounts", &admin), 200);
    assert_eq!(first.get("/api/v1/accounts", &owner), 403);
    assert!(
        first.through_gateway.ends_with("/ws/rest/echo/hello"),
        "{}",
        first.through_gateway
    );
    let body = first.echo();
    assert_eq!(body["method"], "GET", "{body}");
    assert_eq!(body["path"], "/hello", "{body}");
    let gateways = first.gateways(&owner);
    assert_eq!(
        gateways["gateways"].as_array().map(Vec::len),
        Some(1),
        "{gateways}"
    );
    first.stop();

    let second = Up::start(&data);
    assert_eq!(std::fs::read_to_string(&owner_file).unwrap().trim(), owner);
    assert_eq!(std::fs::read_to_string(&admin_file).unwrap().trim(), admin);
    assert_eq!(second.get("/api/v1/gateways", &owner), 200);
    let again = second.stdout.join("\n");
    assert!(again.contains("Reusing"), "{again}");
    assert!(
        !again.contains(&owner),
        "later runs do not print the token: {again}"
    );
    let body = second.echo();
    assert_eq!(body["path"], "/hello", "{body}");
    let gateways = second.gateways(&owner);
    let list = gateways["gateways"].as_array().expect("gateways");
    assert_eq!(list.len(), 1, "still one gateway: {gateways}");
    assert_eq!(list[0]["name"], "local", "{gateways}");
    second.stop();
}

/// A second `up`, `platform` or `gateway` on a data directory in use exits at once, naming the
/// holder's pid, and leaves the running one (and its node's `running` marker) alone.
#[test]
fn a_second_process_on_the_same_data_directory_exits_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let first = Up::start(&data);
    let owner = std::fs::read_to_string(data.join("owner-token"))
        .unwrap()
        .trim()
        .to_string();
    let marker = data.join("gateway").join("running");
    let marked = std::fs::read_to_string(&marker).expect("the live node's running marker");
    let pid = first.child.id().to_string();

    let node_dir = data.join("gateway");
    let attempts: [Vec<std::ffi::OsString>; 3] = [
        vec!["up".into(), "--data-dir".into(), data.clone().into()],
        vec!["platform".into(), "--data-dir".into(), data.clone().into()],
        vec![
            "gateway".into(),
            "--data-dir".into(),
            node_dir.clone().into(),
        ],
    ];
    for args in attempts {
        let mut second = Command::new(BIN)
            .args(&args)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the second process");
        // "At once": it must have exited within the bound, or it is running beside the first.
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = second.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = second.kill();
                let _ = second.wait();
                panic!("{args:?} is still running beside the first after 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!status.success(), "{args:?} succeeded: {stderr}");
        assert!(
            stderr.contains("is in use by process"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(&pid),
            "{args:?} names the holder {pid}: {stderr}"
        );
    }

    // The first is untouched: its node's marker is in place and it still serves.
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), marked);
    assert_eq!(first.get("/api/v1/gateways", &owner), 200);
    assert_eq!(first.echo()["path"], "/hello");
    first.stop();
    assert!(!marker.exists(), "a clean stop removes the marker");
    // Once it is gone the directory is free again.
    Up::start(&data).stop();
}
