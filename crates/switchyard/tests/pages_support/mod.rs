//! The browser harness of `console_pages.rs`: a real `switchyard up` (platform, SQLite, local
//! node) and headless Chromium under its own chromedriver, driven over WebDriver. Written in
//! the style of `console.rs`' harness, which was not committed when these tests were; the two
//! are meant to become one shared module.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Long enough for a debug build on a loaded machine; conditions end waits much earlier.
pub const WAIT: Duration = Duration::from_secs(30);
pub const OWNER_EMAIL: &str = "owner@switchyard.local";

/// A running `switchyard up`, stopped on drop.
pub struct Up {
    child: Child,
    pub data: tempfile::TempDir,
    pub base: String,
    /// The local gateway node's URL (`http://127.0.0.1:PORT`).
    pub gateway: String,
    pub password: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Up {
    pub fn start() -> Up {
        let data = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(BIN)
            .args(["up", "--data-dir"])
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn switchyard up");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut base = None;
        let mut gateway = None;
        let mut lines = Vec::new();
        for line in (&mut reader).lines() {
            let line = line.expect("stdout line");
            if let Some(rest) = line.trim().strip_prefix("console:") {
                base = Some(rest.trim().trim_end_matches('/').to_string());
            }
            if let Some(rest) = line.trim().strip_prefix("gateway:") {
                let url = rest.split_whitespace().next().unwrap_or("");
                gateway = Some(url.trim_end_matches('/').to_string());
            }
            // `Try: curl …` is the last line of the welcome: every file is written by then.
            let done = line.starts_with("Try:");
            lines.push(line);
            if done {
                break;
            }
        }
        // Keep reading: `up` prints more later, and a closed pipe would end it.
        std::thread::spawn(move || for _ in reader.lines() {});
        let base = base.unwrap_or_else(|| panic!("no console line in {lines:#?}"));
        let read = |name: &str| {
            std::fs::read_to_string(data.path().join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .trim()
                .to_string()
        };
        Up {
            password: read("owner-password"),
            token: read("owner-token"),
            gateway: gateway.unwrap_or_else(|| panic!("no gateway line in {lines:#?}")),
            child,
            data,
            base,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A REST call with `token`; answers (status, body).
    pub async fn rest_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("REST request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A REST call with the owner's token.
    pub async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.rest_as(&self.token, method, path, body).await
    }

    /// The Gateway URL (Public URL, else the head node's reported address) of the gateway
    /// named `name`, once a node has reported one.
    pub async fn gateway_url(&self, name: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (_, list) = self
                .rest(reqwest::Method::GET, "/api/v1/gateways", None)
                .await;
            let url = list["gateways"]
                .as_array()
                .and_then(|g| g.iter().find(|g| g["name"] == name))
                .and_then(|g| g["gateway_url"].as_str())
                .map(|url| url.trim_end_matches('/').to_string());
            if let Some(url) = url {
                return url;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "gateway {name} has no Gateway URL in {list}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The id of the environment named `name`.
    pub async fn environment_id(&self, name: &str) -> Option<String> {
        let (_, list) = self
            .rest(reqwest::Method::GET, "/api/v1/environments", None)
            .await;
        list["environments"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["id"].as_str())
            .map(str::to_string)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Whether the browser tests can run here; `false` means skip (never under CI).
pub fn browser_available() -> bool {
    let present = Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists();
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {CHROMIUM} or {CHROMEDRIVER} is missing: .ci/run installs chromium and chromium-driver"
        );
        eprintln!(
            "SKIPPED: console browser tests need {CHROMIUM} and {CHROMEDRIVER} \
             (apt-get install -y chromium chromium-driver)"
        );
    }
    present
}

/// Headless Chromium under its own chromedriver on a free port, with a fresh profile.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start(script: bool) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        testkit::wait_until(WAIT, "chromedriver listens", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        let profile = tempfile::tempdir().expect("profile dir");
        let mut options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-quic", "--disable-dev-shm-usage",
                "--window-size=1280,800",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        if !script {
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("WebDriver session");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("goto");
    }

    /// The path and query of the current page.
    /// Waits until the browser is at `expected` (path and query): a click returns before
    /// the page it submits to has loaded.
    pub async fn wait_path(&self, expected: impl AsRef<str>) {
        let expected = expected.as_ref();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let path = self.path().await;
            if path == expected {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "at {path}, expected {expected}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// The element `selector` names, waiting for it: after a click the next page may still
    /// be loading.
    pub async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            match self.client.find(Locator::Css(selector)).await {
                Ok(e) => return e,
                Err(e) if std::time::Instant::now() >= deadline => {
                    panic!("no {selector} on {}: {e}", self.path().await)
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    /// One value per element `selector` names, read in one script run so that a page being
    /// replaced cannot leave a stale element half-way.
    async fn each(&self, selector: &str, script: &str) -> Vec<String> {
        let value = self
            .client
            .execute(
                &format!(
                    "return Array.from(document.querySelectorAll(arguments[0])).map(e => {script});"
                ),
                vec![serde_json::Value::String(selector.to_string())],
            )
            .await
            .expect("script");
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default().trim().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn has(&self, selector: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(selector))
            .await
            .expect("find_all")
            .is_empty()
    }

    /// The text of the first element matching `selector` at this instant ("" when none);
    /// for waits on regions that script replaces.
    pub async fn text_now(&self, selector: &str) -> String {
        self.client
            .execute(
                "var e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : '';",
                vec![json!(selector)],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub async fn text(&self, selector: &str) -> String {
        self.css(selector).await.text().await.expect("text")
    }

    /// The texts of the elements matching `selector`, in page order.
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        self.each(selector, "e.innerText").await
    }

    pub async fn attrs(&self, selector: &str, attr: &str) -> Vec<String> {
        let attr = serde_json::to_string(attr).expect("attribute name");
        self.each(selector, &format!("e.getAttribute({attr}) || ''"))
            .await
    }

    pub async fn fill(&self, selector: &str, value: &str) {
        let field = self.css(selector).await;
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    pub async fn select(&self, selector: &str, value: &str) {
        self.css(selector)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in {selector}: {e}"));
    }

    pub async fn click(&self, selector: &str) {
        self.css(selector).await.click().await.expect("click");
    }

    /// Waits until `condition` holds, re-reading it every few milliseconds.
    pub async fn wait<F, Fut>(&self, what: &str, condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        testkit::wait_until(WAIT, what, condition).await;
    }

    pub async fn login(&self, up: &Up, email: &str, password: &str) {
        self.goto(&up.url("/login")).await;
        self.fill("#account", "default").await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("form[action='/login'] button[type=submit]")
            .await;
    }

    /// Saves a PNG of the page as `target/screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target dir")
            .join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        stop(&mut self.driver);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        stop(&mut self.driver);
    }
}
