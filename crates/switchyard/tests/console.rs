//! The web console in a real browser: headless Chromium driven over WebDriver (chromedriver)
//! against a real `switchyard up` (platform, SQLite, local node) and real joining nodes.
//! Screenshots of the main pages land in `target/screenshots/` on every run.
//!
//! Without chromium/chromedriver the tests skip with a message, except under `CI=true`, where
//! they fail (CI installs both in `.ci/run`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Long enough for a debug build on a loaded machine; conditions end waits much earlier.
const WAIT: Duration = Duration::from_secs(30);

// ---- the platform -------------------------------------------------------------------------

/// A running `switchyard up`, stopped on drop.
struct Up {
    child: Child,
    data: tempfile::TempDir,
    base: String,
    password: String,
    token: String,
    http: reqwest::Client,
}

impl Up {
    fn start() -> Up {
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
        let reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut base = None;
        let mut password_file = None;
        let mut lines = Vec::new();
        for line in reader.lines() {
            let line = line.expect("stdout line");
            if let Some(rest) = line.trim().strip_prefix("console:") {
                base = Some(rest.trim().trim_end_matches('/').to_string());
            }
            if let Some(rest) = line.strip_prefix("Console sign-in: ") {
                assert!(rest.contains("account `default`"), "{rest}");
                assert!(rest.contains("e-mail owner@switchyard.local"), "{rest}");
                let path = rest.rsplit("password in ").next().expect("path");
                password_file = Some(PathBuf::from(path.trim()));
            }
            let done = line.starts_with("Console sign-in:");
            lines.push(line);
            if done {
                break;
            }
        }
        let base = base.unwrap_or_else(|| panic!("no console line in {lines:#?}"));
        let password_file =
            password_file.unwrap_or_else(|| panic!("no sign-in line in {lines:#?}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&password_file)
                .expect("password file")
                .permissions();
            assert_eq!(mode.mode() & 0o777, 0o600, "owner-password must be 0600");
        }
        let password = std::fs::read_to_string(&password_file)
            .expect("password")
            .trim()
            .to_string();
        let token = std::fs::read_to_string(data.path().join("owner-token"))
            .expect("owner token")
            .trim()
            .to_string();
        Up {
            child,
            data,
            base,
            password,
            token,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A REST call with the owner's token; answers (status, body).
    async fn rest(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("REST request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn create_gateway(&self, name: &str) -> (u16, Value) {
        self.rest(
            reqwest::Method::POST,
            "/api/v1/gateways",
            Some(json!({ "name": name })),
        )
        .await
    }

    async fn create_environment(&self, name: &str, gateway: Option<&str>) -> (u16, Value) {
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

    /// The platform's database, opened beside the running process (SQLite in WAL mode).
    async fn store(&self) -> store::Store {
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

// ---- the browser --------------------------------------------------------------------------

/// Headless Chromium under its own chromedriver on a free port, with a fresh profile.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// Whether the browser tests can run here; `false` means skip (never under CI).
fn browser_available() -> bool {
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

impl Browser {
    async fn start(script: bool) -> Browser {
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
        let driver_url = format!("http://127.0.0.1:{port}");
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
            .connect(&driver_url)
            .await
            .expect("WebDriver session");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("goto");
    }

    /// Waits until the browser is at `expected` (path and query): a click returns before
    /// the page it submits to has loaded.
    async fn wait_path(&self, expected: impl AsRef<str>) {
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

    async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// The element `selector` names, waiting for it: after a click the next page may still
    /// be loading.
    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match self.client.find(Locator::Css(selector)).await {
                Ok(element) => return element,
                Err(e) if std::time::Instant::now() >= deadline => {
                    panic!("no {selector} on {}: {e}", self.path().await)
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    async fn has(&self, selector: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(selector))
            .await
            .expect("find_all")
            .is_empty()
    }

    async fn text(&self, selector: &str) -> String {
        // Retried like `collect`: a live region may be replaced between finding and reading.
        for _ in 0..20 {
            if let Ok(text) = self.css(selector).await.text().await {
                return text;
            }
        }
        panic!("could not read {selector}")
    }

    /// The texts (`attr: None`, displayed elements only) or an attribute of every element
    /// matching `selector`. The live refresh may replace elements while they are read; the
    /// reading is then repeated.
    async fn collect(&self, selector: &str, attr: Option<&str>) -> Vec<String> {
        let once = || async {
            let mut out = Vec::new();
            for e in self.client.find_all(Locator::Css(selector)).await? {
                match attr {
                    Some(attr) => out.push(e.attr(attr).await?.unwrap_or_default()),
                    None => {
                        if e.is_displayed().await? {
                            out.push(e.text().await?);
                        }
                    }
                }
            }
            Ok::<_, fantoccini::error::CmdError>(out)
        };
        let mut last = None;
        for _ in 0..20 {
            match once().await {
                Ok(out) => return out,
                Err(e) => last = Some(e),
            }
        }
        panic!("could not read {selector}: {last:?}")
    }

    async fn texts(&self, selector: &str) -> Vec<String> {
        self.collect(selector, None).await
    }

    async fn attrs(&self, selector: &str, attr: &str) -> Vec<String> {
        self.collect(selector, Some(attr)).await
    }

    async fn fill(&self, selector: &str, value: &str) {
        let field = self.css(selector).await;
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    async fn click(&self, selector: &str) {
        self.css(selector).await.click().await.expect("click");
    }

    /// Waits until `condition` holds for the page, re-reading it every few milliseconds.
    async fn wait<F, Fut>(&self, what: &str, condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        testkit::wait_until(WAIT, what, condition).await;
    }

    async fn login(&self, up: &Up, email: &str, password: &str) {
        self.goto(&up.url("/login")).await;
        self.fill("#account", "default").await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("form[action='/login'] button[type=submit]")
            .await;
        // The answer is a redirect onward, the form with an error, or an error page.
        self.wait("the login is answered", || async {
            !self.path().await.starts_with("/login")
                || self.has("#login-error").await
                || self.has("#error-title").await
        })
        .await;
    }

    /// Saves a PNG of the page as `target/screenshots/NAME.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target dir")
            .join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        stop(&mut self.driver);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        stop(&mut self.driver);
    }
}

/// How many unattached environments the last row shows.
async fn shown(b: &Browser) -> usize {
    b.texts("#unattached .env").await.len()
}

/// The gateway names of the table, top to bottom.
async fn row_names(b: &Browser) -> Vec<String> {
    b.texts("#gateways tbody tr[data-gateway] td.name").await
}

// ---- tests --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_logout_wrong_password_password_change_and_rate_limit() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    let b = Browser::start(true).await;

    // Not signed in: a page sends the browser to the login form, and back after it.
    b.goto(&up.url("/gateways?sort=status")).await;
    assert!(
        b.path().await.starts_with("/login?next="),
        "{}",
        b.path().await
    );
    b.screenshot("login").await;

    // Wrong password: the form says what to check and keeps account and e-mail.
    b.fill("#account", "default").await;
    b.fill("#email", "owner@switchyard.local").await;
    b.fill("#password", "not the password").await;
    b.click("button[type=submit]").await;
    assert!(b.text("#login-error").await.contains("not right"));
    assert_eq!(
        b.css("#email")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("owner@switchyard.local")
    );
    b.screenshot("login-wrong-password").await;

    // Right password: on to the page asked for, with an HttpOnly session cookie.
    b.fill("#password", &up.password).await;
    b.click("button[type=submit]").await;
    b.wait_path("/gateways?sort=status").await;
    assert_eq!(b.text("h1").await, "Gateways");
    let cookie = b
        .client
        .get_named_cookie("sy_session")
        .await
        .expect("session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Lax)");
    let visible = b
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert!(
        !visible.as_str().unwrap_or("").contains("sy_session"),
        "{visible}"
    );

    // Password change: errors next to their field, then the new password works.
    b.goto(&up.url("/account/password")).await;
    b.fill("#current", "wrong").await;
    b.fill("#new", "short").await;
    b.fill("#confirm", "short").await;
    b.click("main button[type=submit]").await;
    assert!(
        b.text("#current-error")
            .await
            .contains("not your current password")
    );
    assert!(b.text("#new-error").await.contains("12"));
    b.screenshot("password-change-errors").await;
    let new_password = "correct horse battery staple";
    b.fill("#current", &up.password).await;
    b.fill("#new", new_password).await;
    b.fill("#confirm", new_password).await;
    b.click("main button[type=submit]").await;
    b.wait_path("/account/password?done=changed").await;
    assert!(b.text(".notice").await.contains("changed"));

    // Logout ends the session: pages need a login again.
    b.click("form[action='/logout'] button").await;
    b.wait_path("/login?done=logout").await;
    assert!(b.text(".notice").await.contains("signed out"));
    b.goto(&up.url("/gateways")).await;
    assert!(b.path().await.starts_with("/login"));
    b.login(&up, "owner@switchyard.local", &up.password).await;
    assert!(
        b.has("#login-error").await,
        "the old password must no longer work"
    );
    b.login(&up, "OWNER@switchyard.local", new_password).await;
    b.wait_path("/gateways").await;
    b.click("form[action='/logout'] button").await;

    // Rate limit: after 10 failures for this identity (1 above, 9 here) sign-in is paused,
    // even with the right password, and the page says when to retry.
    for _ in 0..9 {
        b.login(&up, "owner@switchyard.local", "guess").await;
    }
    assert_eq!(b.text("#error-title").await, "Too many failed sign-ins");
    b.login(&up, "owner@switchyard.local", new_password).await;
    assert_eq!(b.text("#error-title").await, "Too many failed sign-ins");
    assert!(b.text("main").await.contains("Try again in"));
    b.screenshot("login-rate-limited").await;
    // The answer is a 429 with Retry-After.
    let response = up
        .http
        .post(up.url("/login"))
        .header("cookie", "sy_login=".to_string() + &"a".repeat(64))
        .form(&[
            ("csrf", "a".repeat(64).as_str()),
            ("account", "default"),
            ("email", "owner@switchyard.local"),
            ("password", new_password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_page_sorts_searches_toggles_lists_unattached_and_escapes() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    use reqwest::Method;
    let store = up.store().await;
    let account = store.account_by_name("default").await.unwrap().unwrap().id;

    // Gateways whose host names and URLs sort differently from their names.
    let mut ids = Vec::new();
    for (name, host, url) in [
        ("alpha", "zeta-host", "https://c.example"),
        ("Bravo", "mid-host", "https://a.example"),
        ("charlie-7", "alpha-host", "https://b.example"),
    ] {
        let (status, g) = up.create_gateway(name).await;
        assert_eq!(status, 201, "{g}");
        let id: model::GatewayId = g["id"].as_str().unwrap().parse().unwrap();
        let gateway = store.gateway(account, id).await.unwrap();
        store
            .update_gateway(
                account,
                id,
                store::GatewayUpdate {
                    public_url: Some(url.into()),
                    bind_address: gateway.bind_address.clone(),
                    settings: gateway.settings.clone(),
                },
                store::Audit::new(
                    store::Actor::System,
                    "gateway.update",
                    platform::state::now(),
                ),
            )
            .await
            .unwrap();
        store
            .upsert_node(
                account,
                &model::Node {
                    id: model::NodeId::new_v7(),
                    gateway_id: id,
                    host_name: host.into(),
                    address: None,
                    version: "test".into(),
                    joined_at: platform::state::now(),
                    last_seen: None,
                    applied_generation: None,
                },
            )
            .await
            .unwrap();
        ids.push(g["id"].as_str().unwrap().to_string());
    }
    up.create_environment("Staging", Some(&ids[0])).await;
    // A gateway with no node: no host name.
    let (status, _) = up.create_gateway("delta").await;
    assert_eq!(status, 201);

    // Names that need escaping: the strict name rule may refuse `<script>`; then a name it
    // allows that still needs escaping shows the same.
    let script = "<script>alert(1)</script>";
    let (status, _) = up.create_gateway(script).await;
    let tricky_gateway = if status == 201 { script } else { "a&b 'q'" };
    if status != 201 {
        assert_eq!(status, 422, "a refused name is a validation error");
        let (status, body) = up.create_gateway(tricky_gateway).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, _) = up.create_environment(script, None).await;
    let tricky_env = if status == 201 { script } else { "e&f 'q'" };
    if status != 201 {
        let (status, body) = up.create_environment(tricky_env, None).await;
        assert_eq!(status, 201, "{body}");
    }

    let b = Browser::start(true).await;
    b.login(&up, "owner@switchyard.local", &up.password).await;
    b.wait_path("/gateways").await;
    let names = row_names(&b).await;
    let mut expected = vec![
        "alpha",
        "Bravo",
        "charlie-7",
        "delta",
        "local",
        tricky_gateway,
    ];
    expected.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, expected, "default: Gateway Name ascending");
    // Escaped: the name is text, no element was made of it.
    assert!(!b.has("#gateways script").await);
    let unattached = b.texts("#unattached .env").await;
    assert!(unattached.iter().any(|e| e == tricky_env), "{unattached:?}");
    b.screenshot("gateways").await;

    // Each sortable column, both ways (clicking the header; state in the URL).
    b.click("#sort-name").await;
    b.wait_path("/gateways?order=desc").await;
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(row_names(&b).await, reversed);

    b.click("#sort-host_name").await;
    b.wait_path("/gateways?sort=host_name").await;
    let hosts = b.texts("#gateways tbody tr[data-gateway] td.host").await;
    let known: Vec<&String> = hosts.iter().filter(|h| *h != "—").collect();
    let mut sorted = known.clone();
    sorted.sort_by_key(|h| h.to_lowercase());
    assert_eq!(known, sorted, "hosts ascending: {hosts:?}");
    assert_eq!(
        hosts.last().map(String::as_str),
        Some("—"),
        "no host last: {hosts:?}"
    );
    assert_eq!(hosts[0], "alpha-host");
    b.click("#sort-host_name").await;
    b.wait_path("/gateways?sort=host_name&order=desc").await;
    let hosts = b.texts("#gateways tbody tr[data-gateway] td.host").await;
    assert_eq!(hosts[0], "—", "no host first when descending: {hosts:?}");
    let known: Vec<&String> = hosts.iter().filter(|h| *h != "—").collect();
    assert_eq!(
        known.last().map(|h| h.as_str()),
        Some("alpha-host"),
        "{hosts:?}"
    );

    b.click("#sort-gateway_url").await;
    b.wait_path("/gateways?sort=gateway_url").await;
    let urls = b.texts("#gateways tbody tr[data-gateway] td.url").await;
    let mut sorted = urls.clone();
    sorted.sort_by_key(|u| u.to_lowercase());
    assert_eq!(urls, sorted);
    assert!(urls.contains(&"https://a.example".to_string()), "{urls:?}");
    b.click("#sort-gateway_url").await;
    let desc = b.texts("#gateways tbody tr[data-gateway] td.url").await;
    let mut sorted = desc.clone();
    sorted.sort_by_key(|u| std::cmp::Reverse(u.to_lowercase()));
    assert_eq!(desc, sorted);
    assert!(desc.contains(&"https://c.example".to_string()));

    let rank = |s: &str| match s.split('/').next().unwrap_or("") {
        "online" => 0,
        "cluster_issues" => 1,
        "starting" => 2,
        "restarting" => 3,
        "stopping" => 4,
        "offline" => 5,
        _ => 6,
    };
    b.click("#sort-status").await;
    b.wait_path("/gateways?sort=status").await;
    b.wait("the local gateway is online", || async {
        b.goto(&up.url("/gateways?sort=status")).await;
        b.attrs("#gateways tbody tr[data-gateway] .badge", "data-status")
            .await
            .first()
            .is_some_and(|s| s == "online")
    })
    .await;
    let statuses: Vec<u8> = b
        .attrs("#gateways tbody tr[data-gateway] .badge", "data-status")
        .await
        .iter()
        .map(|s| rank(s))
        .collect();
    assert!(statuses.windows(2).all(|w| w[0] <= w[1]), "{statuses:?}");
    assert!(statuses.first() < statuses.last(), "{statuses:?}");
    b.click("#sort-status").await;
    b.wait_path("/gateways?sort=status&order=desc").await;
    let statuses: Vec<u8> = b
        .attrs("#gateways tbody tr[data-gateway] .badge", "data-status")
        .await
        .iter()
        .map(|s| rank(s))
        .collect();
    assert!(statuses.windows(2).all(|w| w[0] >= w[1]), "{statuses:?}");

    // Every status shows its text beside the icon; a variant is spelled out.
    for badge in b.texts("#gateways tbody .badge").await {
        assert!(!badge.trim().is_empty());
    }
    let offline = b
        .texts("#gateways tbody .badge[data-status='offline/not_running']")
        .await;
    assert!(
        offline.iter().all(|t| t.contains("not running")),
        "{offline:?}"
    );

    // Search by gateway name, instantly (script) with the query in the URL.
    b.goto(&up.url("/gateways")).await;
    b.fill("#search", "brav").await;
    b.wait("the search narrows the rows", || async {
        row_names(&b).await == ["Bravo"]
    })
    .await;
    b.wait_path("/gateways?q=brav").await;
    // By environment name (case-insensitive), submitted with Enter.
    b.fill("#search", "STAGING\n").await;
    b.wait("the search finds the gateway of Staging", || async {
        row_names(&b).await == ["alpha"]
    })
    .await;
    b.fill("#search", "no such thing").await;
    b.wait("the empty search says so", || async {
        b.has("#gateways-empty").await
    })
    .await;
    assert!(b.text("#gateways-empty").await.contains("Clear the search"));
    b.screenshot("gateways-search-empty").await;

    // Enabled / deleted toggle.
    let (status, _) = up
        .rest(
            Method::DELETE,
            &format!("/api/v1/gateways/{}", ids[2]),
            None,
        )
        .await;
    assert_eq!(status, 204);
    b.goto(&up.url("/gateways")).await;
    assert!(!row_names(&b).await.contains(&"charlie-7".to_string()));
    b.click("#view-deleted").await;
    b.wait_path("/gateways?view=deleted").await;
    assert_eq!(row_names(&b).await, ["charlie-7"]);
    assert_eq!(
        b.attrs("#gateways tbody tr[data-gateway] .badge", "data-status")
            .await,
        ["deleted"]
    );
    assert_eq!(
        b.text("#gateways tbody td.issues").await,
        "",
        "deleted rows show no issues"
    );
    b.screenshot("gateways-deleted").await;
    b.click("#view-enabled").await;
    b.wait_path("/gateways").await;

    // The unattached row with 2 (the tricky one and one more), 3, 4 and 7 environments;
    // See more / See less with script here and without script below.
    let (status, _) = up.create_environment("u-1", None).await;
    assert_eq!(status, 201);
    b.goto(&up.url("/gateways")).await;
    assert_eq!(shown(&b).await, 2);
    assert!(!b.has("#see-more").await);
    up.create_environment("u-2", None).await;
    b.goto(&up.url("/gateways")).await;
    assert_eq!(shown(&b).await, 3);
    assert!(!b.has("#see-more").await);
    up.create_environment("u-3", None).await;
    b.goto(&up.url("/gateways")).await;
    assert_eq!(shown(&b).await, 3);
    b.click("#see-more").await;
    assert_eq!(shown(&b).await, 4);
    assert!(b.css("#see-less").await.is_displayed().await.unwrap());
    b.wait_path("/gateways?more=1").await;
    b.click("#see-less").await;
    assert_eq!(shown(&b).await, 3);
    for name in ["u-4", "u-5", "u-6"] {
        up.create_environment(name, None).await;
    }
    b.goto(&up.url("/gateways")).await;
    assert_eq!(shown(&b).await, 3);
    let first_three = b.texts("#unattached .env").await;
    let mut sorted = first_three.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(first_three, sorted, "alphabetical");
    b.click("#see-more").await;
    assert_eq!(shown(&b).await, 7);
    b.screenshot("gateways-unattached-expanded").await;
    // The live refresh keeps the row expanded.
    let before = b.attrs("#gateways-table", "data-refreshed").await;
    b.wait("the table refreshes by itself", || async {
        b.attrs("#gateways-table", "data-refreshed").await != before
    })
    .await;
    assert_eq!(shown(&b).await, 7);
    b.click("#see-less").await;
    assert_eq!(shown(&b).await, 3);
    // The search filters the unattached row too.
    b.fill("#search", "u-").await;
    b.wait("only u-* environments", || async {
        b.texts("#unattached .env")
            .await
            .iter()
            .all(|e| e.starts_with("u-"))
    })
    .await;

    // Every link of the main pages lands on a page (no error page, no dead link).
    let mut hrefs: Vec<String> = Vec::new();
    let settings = format!("/gateways/{}", ids[0]);
    for page in [
        "/gateways",
        "/gateways?tab=migration",
        "/gateways?view=deleted",
        "/gateways/add",
        settings.as_str(),
    ] {
        b.goto(&up.url(page)).await;
        for href in b.attrs("a[href]", "href").await {
            // A link within the page (`#main`) is resolved against it.
            let href = if href.starts_with('#') {
                format!("{}{href}", page.split('#').next().unwrap_or(page))
            } else {
                href
            };
            if !hrefs.contains(&href) {
                hrefs.push(href);
            }
        }
    }
    assert!(hrefs.len() > 15, "{hrefs:?}");
    for href in &hrefs {
        let url = if href.starts_with('/') {
            up.url(href)
        } else {
            href.clone()
        };
        assert!(
            url.starts_with(&up.base),
            "no link leaves the console: {href}"
        );
        b.goto(&url).await;
        assert!(
            !b.has("#error-title").await,
            "{href} lands on an error page"
        );
        if let Some(id) = href
            .strip_prefix("/gateways/")
            .map(|rest| rest.split(['#', '?']).next().unwrap_or(""))
            .filter(|id| id.len() == 36)
        {
            let name = b.text("h1").await;
            assert!(
                names.contains(&name) || name == "charlie-7",
                "{href} shows gateway {name} ({id})"
            );
        }
        if let Some(fragment) = href.split('#').nth(1) {
            assert!(
                b.has(&format!("#{fragment}")).await,
                "{href}: no #{fragment}"
            );
        }
    }
    b.goto(&up.url(&format!("/gateways/{}", ids[0]))).await;
    b.screenshot("gateway-settings").await;
    b.goto(&up.url("/gateways?tab=migration")).await;
    assert_eq!(
        b.texts("#migrations thead th").await,
        [
            "CURRENT STEP",
            "ENVIRONMENT",
            "MOVING FROM",
            "MOVING TO",
            "DELETE"
        ]
    );
    assert!(
        b.text("#migrations-empty")
            .await
            .contains("Create a New Migration")
    );
    b.screenshot("gateways-migration").await;
    b.close().await;

    // Without script: sorting, search and See more / See less are plain links and forms.
    let b = Browser::start(false).await;
    b.login(&up, "owner@switchyard.local", &up.password).await;
    b.wait_path("/gateways").await;
    assert_eq!(shown(&b).await, 3);
    b.click("#see-more").await;
    b.wait_path("/gateways?more=1").await;
    assert_eq!(shown(&b).await, 7);
    b.click("#see-less").await;
    b.wait_path("/gateways").await;
    assert_eq!(shown(&b).await, 3);
    b.fill("#search", "alp\n").await;
    b.wait_path("/gateways?q=alp").await;
    assert_eq!(row_names(&b).await, ["alpha"]);
    b.click("#sort-name").await;
    b.wait_path("/gateways?order=desc&q=alp").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_a_gateway_command_joins_a_real_node_that_appears_online_without_a_reload() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    let b = Browser::start(true).await;
    b.login(&up, "owner@switchyard.local", &up.password).await;
    b.click("#add-gateway").await;
    b.wait_path("/gateways/add").await;

    // A name the rule refuses is shown next to its field, with its code.
    b.fill("#name", "").await;
    b.click("main button[type=submit]").await;
    assert!(b.text("#name-error").await.contains("GATEWAY_NAME_EMPTY"));
    b.fill("#name", "<script>alert(1)</script>").await;
    b.click("main button[type=submit]").await;
    if b.has("#name-error").await {
        let error = b.text("#name-error").await;
        assert!(error.contains("GATEWAY_NAME"), "{error}");
        b.screenshot("add-gateway-error").await;
    } else {
        // Allowed: the command quotes it as text.
        assert!(
            b.text("#command")
                .await
                .contains("'<script>alert(1)</script>'")
        );
        b.goto(&up.url("/gateways/add")).await;
    }

    b.fill("#name", "edge-1").await;
    b.css("#valid_for_minutes")
        .await
        .select_by_value("30")
        .await
        .expect("select");
    b.click("main button[type=submit]").await;
    let command = b.text("#command").await;
    b.screenshot("add-gateway").await;
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(&words[..2], ["switchyard", "gateway"], "{command}");
    assert_eq!(words[2], "--platform");
    assert_eq!(words[3], up.base);
    assert_eq!(words[4], "--install-token");
    assert!(words[5].starts_with("sy_inst_"), "{command}");
    assert_eq!(&words[6..], ["--name", "edge-1"]);

    // The Gateways page, then the node starts: its row appears online without a reload.
    b.click("a.button.primary[href='/gateways']").await;
    assert!(!row_names(&b).await.contains(&"edge-1".to_string()));
    b.client
        .execute("window.notReloaded = true", vec![])
        .await
        .unwrap();
    let node_dir = tempfile::tempdir().expect("node dir");
    let mut node = Command::new(BIN)
        .args(&words[1..])
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(node_dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the node");
    b.wait("edge-1 appears online", || async {
        let names = row_names(&b).await;
        let statuses = b
            .attrs("#gateways tr[data-gateway] .badge", "data-status")
            .await;
        names
            .iter()
            .zip(&statuses)
            .any(|(n, s)| n == "edge-1" && s == "online")
    })
    .await;
    let same_page = b
        .client
        .execute("return window.notReloaded === true", vec![])
        .await
        .unwrap();
    assert_eq!(same_page, json!(true), "the row appeared without a reload");
    b.screenshot("gateways-live").await;

    // Its settings page: Cluster Status with the head node, owner actions.
    b.client
        .find(Locator::LinkText("edge-1"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(b.text("h1").await, "edge-1");
    b.wait("the node row shows online", || async {
        b.attrs("#cluster tr[data-node] .badge", "data-status")
            .await
            == ["online"]
    })
    .await;
    assert!(b.text("#cluster").await.contains("head node"));
    assert!(b.text("#information").await.contains("Online"));
    assert!(b.has("#restart").await && b.has("#delete").await);
    b.screenshot("gateway-settings-online").await;

    // A form posted without its CSRF token is refused, and nothing happens.
    b.client
        .execute(
            "document.querySelector('form[action$=\"/restart\"] input[name=csrf]').remove()",
            vec![],
        )
        .await
        .unwrap();
    b.click("#restart").await;
    assert_eq!(b.text("#error-title").await, "Form expired");
    b.screenshot("csrf-refused").await;
    b.client.back().await.unwrap();
    b.client.refresh().await.unwrap();

    // Delete warns, then deletes; the node's credential is revoked and it stops serving.
    b.click("#delete").await;
    assert!(b.text("main").await.contains("cannot be restored"));
    b.screenshot("gateway-delete").await;
    b.click("#confirm-delete").await;
    b.wait_path("/gateways?view=deleted&done=deleted").await;
    assert_eq!(row_names(&b).await, ["edge-1"]);
    stop(&mut node);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_restart_or_delete_and_actions_need_role_and_csrf() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    let store = up.store().await;
    let account = store.account_by_name("default").await.unwrap().unwrap().id;
    let password = "viewer password 1";
    store
        .create_user(
            store::NewUser {
                account_id: Some(account),
                name: "Vera Viewer".into(),
                email: Some("vera@example.com".into()),
                role: model::Role::Viewer,
                platform_admin: false,
                password_hash: Some(platform::console::hash_password(password)),
            },
            store::Audit::new(store::Actor::System, "user.create", platform::state::now()),
        )
        .await
        .unwrap();
    let (_, list) = up
        .rest(reqwest::Method::GET, "/api/v1/gateways", None)
        .await;
    let local = list["gateways"][0]["id"].as_str().unwrap().to_string();

    let b = Browser::start(true).await;
    b.login(&up, "vera@example.com", password).await;
    b.wait_path("/gateways").await;
    assert!(!b.has("#add-gateway").await, "a viewer cannot add gateways");
    b.goto(&up.url(&format!("/gateways/{local}"))).await;
    assert_eq!(b.text("h1").await, "local");
    assert!(!b.has("#restart").await && !b.has("#delete").await);
    b.screenshot("gateway-settings-viewer").await;
    b.goto(&up.url(&format!("/gateways/{local}/delete"))).await;
    assert_eq!(b.text("#error-title").await, "Not allowed");

    // The viewer's session, outside the page: with the token a viewer is refused by role,
    // without it the form is refused before anything else.
    let cookie = b.client.get_named_cookie("sy_session").await.unwrap();
    b.goto(&up.url("/gateways")).await;
    let csrf = b
        .attrs("form[action='/logout'] input[name=csrf]", "value")
        .await[0]
        .clone();
    let post = |fields: Vec<(&'static str, String)>| {
        up.http
            .post(up.url(&format!("/gateways/{local}/restart")))
            .header("cookie", format!("sy_session={}", cookie.value()))
            .form(&fields)
            .send()
    };
    let refused = post(vec![("csrf", csrf.clone())]).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("Not allowed"));
    let no_token = post(vec![]).await.unwrap();
    assert_eq!(no_token.status(), 403);
    assert!(no_token.text().await.unwrap().contains("Form expired"));
    let wrong_token = post(vec![("csrf", "0".repeat(64))]).await.unwrap();
    assert_eq!(wrong_token.status(), 403);

    // Security headers on every console response; the REST API does not take the cookie.
    for path in ["/gateways", "/login", "/assets/console.js", "/no-such-page"] {
        let response = up
            .http
            .get(up.url(path))
            .header("cookie", format!("sy_session={}", cookie.value()))
            .send()
            .await
            .unwrap();
        let h = response.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert!(h.contains_key("referrer-policy"), "{path}");
    }
    let rest = up
        .http
        .get(up.url("/api/v1/gateways"))
        .header("cookie", format!("sy_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 401, "the REST API is bearer-only");
    b.close().await;
}
