//! The one browser harness of the console tests (`console.rs`, `console_pages.rs`): a real
//! `switchyard up` (platform, SQLite, local node) and headless Chromium under its own
//! chromedriver, driven over WebDriver. Every wait retries until a condition holds or [`WAIT`]
//! runs out: a click returns before the page it leads to has loaded, and the console's script
//! replaces live regions while they are read.
//!
//! Without chromium/chromedriver the tests skip with a message, except under `CI=true`, where
//! they fail (CI installs both in `.ci/run`).

// Each test file uses its own part of the harness.
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Long enough for a debug build on a loaded machine; conditions end waits much earlier.
pub const WAIT: Duration = Duration::from_secs(30);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);
pub const OWNER_EMAIL: &str = "owner@switchyard.local";

// ---- the platform ---------------------------------------------------------------------------

/// A running `switchyard up`, stopped on drop.
pub struct Up {
    child: Child,
    pub data: tempfile::TempDir,
    /// The console's URL, without the trailing `/`.
    pub base: String,
    /// The local gateway node's URL (`http://127.0.0.1:PORT`).
    pub gateway: String,
    /// What `up` printed up to and including its `Console sign-in:` line.
    pub welcome: Vec<String>,
    /// The path `Console sign-in:` names for the owner's password.
    pub password_file: PathBuf,
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
        let (mut base, mut gateway, mut password_file) = (None, None, None);
        let mut welcome = Vec::new();
        for line in (&mut reader).lines() {
            let line = line.expect("stdout line");
            if let Some(rest) = line.trim().strip_prefix("console:") {
                base = Some(rest.trim().trim_end_matches('/').to_string());
            }
            if let Some(rest) = line.trim().strip_prefix("gateway:") {
                let url = rest.split_whitespace().next().unwrap_or("");
                gateway = Some(url.trim_end_matches('/').to_string());
            }
            // The last line of the welcome: every file is written by then.
            let done = line.starts_with("Console sign-in:");
            if let Some(rest) = line.strip_prefix("Console sign-in: ") {
                let path = rest.rsplit("password in ").next().unwrap_or("");
                password_file = Some(PathBuf::from(path.trim()));
            }
            welcome.push(line);
            if done {
                break;
            }
        }
        // Keep reading: `up` may print more later.
        std::thread::spawn(move || for _ in reader.lines() {});
        let base = base.unwrap_or_else(|| panic!("no console line in {welcome:#?}"));
        let gateway = gateway.unwrap_or_else(|| panic!("no gateway line in {welcome:#?}"));
        let password_file =
            password_file.unwrap_or_else(|| panic!("no sign-in line in {welcome:#?}"));
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .trim()
                .to_string()
        };
        Up {
            password: read(&password_file),
            token: read(&data.path().join("owner-token")),
            password_file,
            welcome,
            gateway,
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

    pub async fn create_gateway(&self, name: &str) -> (u16, Value) {
        self.rest(
            reqwest::Method::POST,
            "/api/v1/gateways",
            Some(json!({ "name": name })),
        )
        .await
    }

    /// Creates an environment, attached to `gateway` (an id) when given.
    pub async fn create_environment(&self, name: &str, gateway: Option<&str>) -> (u16, Value) {
        let (status, env) = self
            .rest(
                reqwest::Method::POST,
                "/api/v1/environments",
                Some(json!({ "name": name, "classification": "test" })),
            )
            .await;
        if let (201, Some(gateway)) = (status, gateway) {
            let id = env["id"].as_str().expect("environment id");
            let (attached, body) = self
                .rest(
                    reqwest::Method::PUT,
                    &format!("/api/v1/environments/{id}/gateway"),
                    Some(json!({ "gateway_id": gateway })),
                )
                .await;
            assert_eq!(attached, 200, "attach {name}: {body}");
        }
        (status, env)
    }

    /// The Gateway URL (Public URL, else the head node's reported address) of the gateway
    /// named `name`, once a node has reported one.
    pub async fn gateway_url(&self, name: &str) -> String {
        let deadline = Instant::now() + WAIT;
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
                Instant::now() < deadline,
                "gateway {name} has no Gateway URL in {list}"
            );
            tokio::time::sleep(POLL).await;
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

    /// The platform's database, opened beside the running process (SQLite in WAL mode).
    pub async fn store(&self) -> store::Store {
        let url = format!(
            "sqlite://{}",
            self.data.path().join("switchyard.db").display()
        );
        store::Store::open(&url, store::StoreOptions::default())
            .await
            .expect("open store")
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Ends a child process this harness started: SIGTERM, then SIGKILL after 10 s.
pub fn stop(child: &mut Child) {
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

// ---- the browser ----------------------------------------------------------------------------

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
    /// A browser at 1280×800; `script: false` turns JavaScript off (the pages must work
    /// without it).
    pub async fn start(script: bool) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let listening = tokio::time::timeout(WAIT, async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        if listening.is_err() {
            stop(&mut driver);
            panic!("chromedriver did not listen on port {port} within {WAIT:?}");
        }
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
        // A busy machine may refuse the first session; retried like every other wait.
        let mut attempt = 0;
        let client = loop {
            attempt += 1;
            let session =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps.clone())
                    .connect(&format!("http://127.0.0.1:{port}"))
                    .await;
            match session {
                Ok(client) => break client,
                Err(e) if attempt >= 3 => {
                    stop(&mut driver);
                    panic!("WebDriver session: {e}");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
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
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Waits until the browser is at `expected` (path and query).
    pub async fn wait_path(&self, expected: impl AsRef<str>) {
        let expected = expected.as_ref();
        let deadline = Instant::now() + WAIT;
        loop {
            let path = self.path().await;
            if path == expected {
                return;
            }
            assert!(Instant::now() < deadline, "at {path}, expected {expected}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Retries `step` on the element `selector` names until it succeeds: the element may not
    /// be there yet (the next page is loading), or be replaced between finding and using it.
    async fn on<T, F, Fut>(&self, selector: &str, what: &str, mut step: F) -> T
    where
        F: FnMut(fantoccini::elements::Element) -> Fut,
        Fut: Future<Output = Result<T, fantoccini::error::CmdError>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            let error = match self.client.find(Locator::Css(selector)).await {
                Ok(element) => match step(element).await {
                    Ok(value) => return value,
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!("{what} {selector} on {}: {error}", self.path().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The element `selector` names, waiting for it.
    pub async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.on(selector, "no", |e| async move { Ok(e) }).await
    }

    /// Whether an element matches `selector` now (no wait).
    pub async fn has(&self, selector: &str) -> bool {
        self.count_now(selector).await > 0
    }

    /// How many elements match `selector` now.
    async fn count_now(&self, selector: &str) -> usize {
        let value = self
            .script(
                "return document.querySelectorAll(arguments[0]).length;",
                vec![json!(selector)],
            )
            .await;
        value.as_u64().unwrap_or(0) as usize
    }

    /// The rendered text of the first element matching `selector`, waiting for it.
    pub async fn text(&self, selector: &str) -> String {
        self.on(
            selector,
            "could not read",
            |e| async move { e.text().await },
        )
        .await
    }

    /// The text of the first element matching `selector` at this instant ("" when none).
    pub async fn text_now(&self, selector: &str) -> String {
        self.script(
            "var e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : '';",
            vec![json!(selector)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Runs `script` in the page; a failure (a page being replaced) is retried.
    async fn script(&self, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.client.execute(script, args.clone()).await {
                Ok(value) => return value,
                Err(e) if Instant::now() >= deadline => panic!("script failed: {e}"),
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// One value per element `selector` names, read in one script run so that a region the
    /// live refresh replaces cannot leave a stale element half-way.
    async fn each(&self, selector: &str, displayed_only: bool, value: &str) -> Vec<String> {
        let filter = if displayed_only {
            ".filter(e => e.getClientRects().length > 0)"
        } else {
            ""
        };
        let found = self
            .script(
                &format!(
                    "return Array.from(document.querySelectorAll(arguments[0])){filter}.map(e => {value});"
                ),
                vec![json!(selector)],
            )
            .await;
        found
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default().trim().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The rendered texts of the displayed elements matching `selector`, in page order.
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        self.each(selector, true, "e.innerText").await
    }

    /// Attribute `attr` of every element matching `selector` (displayed or not).
    pub async fn attrs(&self, selector: &str, attr: &str) -> Vec<String> {
        let attr = serde_json::to_string(attr).expect("attribute name");
        self.each(selector, false, &format!("e.getAttribute({attr}) || ''"))
            .await
    }

    pub async fn fill(&self, selector: &str, value: &str) {
        self.on(selector, "could not type into", |e| async move {
            e.clear().await?;
            e.send_keys(value).await
        })
        .await
    }

    pub async fn select(&self, selector: &str, value: &str) {
        self.on(
            selector,
            &format!("could not select {value} in"),
            |e| async move { e.select_by_value(value).await },
        )
        .await
    }

    pub async fn click(&self, selector: &str) {
        self.on(
            selector,
            "could not click",
            |e| async move { e.click().await },
        )
        .await
    }

    /// Waits until `condition` holds, re-reading it every few milliseconds.
    pub async fn wait<F, Fut>(&self, what: &str, condition: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        testkit::wait_until(WAIT, what, condition).await;
    }

    /// Signs in through the login form and waits for the answer: a redirect onward, the form
    /// with an error, or an error page (the rate limit's).
    pub async fn login(&self, up: &Up, email: &str, password: &str) {
        self.goto(&up.url("/login")).await;
        self.fill("#account", "default").await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("form[action='/login'] button[type=submit]")
            .await;
        self.wait("the login is answered", || async {
            !self.path().await.starts_with("/login")
                || self.has("#login-error").await
                || self.has("#error-title").await
        })
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
