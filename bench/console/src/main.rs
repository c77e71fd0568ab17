//! The console's Gateways page (`/gateways`) on the benchmark shape (1,000 gateways × 3
//! environments + 100 unattached, `store::seed::SeedShape::BENCH`): server time over a real
//! socket (one keep-alive client, one request at a time) with identity, gzip and brotli
//! answers, the page's bytes in each encoding, and time to first paint in headless Chromium
//! (the Performance API's `first-contentful-paint`, read over WebDriver).
//!
//! ```text
//! cargo run --release -p consolebench -- [--db URL] [--iterations N] [--paints N] [--nginx /usr/sbin/nginx]
//! ```
//!
//! Without `--db` it uses a SQLite file in a temp dir. A PostgreSQL URL names a server and a
//! database to connect to first: a fresh database `consolebench_<pid>` is created beside it,
//! used, and dropped afterwards. With `--nginx` the same page, saved as a static file with the
//! console's assets, is also served by nginx (one worker, loopback) and timed the same way: a
//! floor for the server time and the first paint.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use platform::{Platform, PlatformConfig};
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, COOKIE, SET_COOKIE};
use store::{Store, StoreOptions, seed};

#[derive(Parser)]
struct Args {
    /// Database: empty for SQLite in a temp dir, or a PostgreSQL URL (a fresh database is
    /// created on that server and dropped afterwards).
    #[arg(long, default_value = "")]
    db: String,
    /// Timed requests per encoding (after 20 warm-up requests).
    #[arg(long, default_value_t = 300)]
    iterations: usize,
    /// Timed page loads in Chromium (after 3 warm-up loads); 0 skips the browser.
    #[arg(long, default_value_t = 20)]
    paints: usize,
    /// nginx binary: also serve the saved page as a static file and time it the same way.
    #[arg(long)]
    nginx: Option<PathBuf>,
    #[arg(long, default_value = "/usr/bin/chromium")]
    chromium: PathBuf,
    #[arg(long, default_value = "/usr/bin/chromedriver")]
    chromedriver: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let (url, created) = if args.db.starts_with("postgres") {
        let name = format!("consolebench_{}", std::process::id());
        let admin = sqlx::PgPool::connect(&args.db).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        let (server, _) = args
            .db
            .split('?')
            .next()
            .and_then(|u| u.rsplit_once('/'))
            .context("a PostgreSQL URL with a database name")?;
        (format!("{server}/{name}"), Some(name))
    } else if args.db.is_empty() {
        let path = dir.path().join("bench.db");
        (format!("sqlite://{}", path.display()), None)
    } else {
        (args.db.clone(), None)
    };

    let result = run(&args, &url, dir.path()).await;

    if let Some(name) = created {
        let admin = sqlx::PgPool::connect(&args.db).await?;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&admin)
            .await?;
        admin.close().await;
    }
    result
}

async fn run(args: &Args, url: &str, work: &Path) -> anyhow::Result<()> {
    let store = Store::open(url, StoreOptions::default()).await?;
    let now = platform::state::now();
    let tokens = platform::bootstrap::bootstrap(&store, now).await?;
    let started = Instant::now();
    let shape = seed::SeedShape::BENCH;
    seed::seed_account(&store, tokens.account_id, shape, now).await?;
    let owner = store
        .user_login(Some("default"), platform::bootstrap::OWNER_EMAIL)
        .await?
        .context("the owner")?;
    let password = platform::console::set_initial_password(&store, owner.user.id, now).await?;
    println!(
        "backend {:?}: seeded {} gateways x {} environments + {} unattached in {:?}",
        store.backend(),
        shape.gateways,
        shape.environments_per_gateway,
        shape.unattached_environments,
        started.elapsed()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let platform = Platform::start(
        PlatformConfig {
            store: store.clone(),
        },
        listener,
    )
    .await?;
    let base = platform.url().trim_end_matches('/').to_string();
    let client = reqwest::Client::new();
    let session = sign_in(&base, &password).await?;
    let page = format!("{base}/gateways");

    // The page in each encoding: its size, and that each decodes to a whole page.
    let identity = fetch(&client, &page, Some(&session), None).await?;
    let rows = identity.matches("<tr data-gateway=").count();
    let unattached = identity.matches("class=\"env extra\"").count() + 3;
    // The first page of the table, which counts every gateway.
    let page_rows = shape.gateways.min(platform::console::GATEWAYS_PAGE_SIZE);
    ensure!(
        rows == page_rows,
        "the page lists {rows} gateways, expected {page_rows}"
    );
    let of_all = format!("of {} gateways", thousands(shape.gateways));
    ensure!(
        identity.contains(&of_all),
        "the page does not say {of_all:?}"
    );
    println!(
        "page: {rows} gateway rows ({of_all}), {unattached} unattached environments, {} bytes uncompressed",
        identity.len()
    );
    for encoding in ["gzip", "br"] {
        let raw = fetch_raw(&client, &page, Some(&session), Some(encoding)).await?;
        let decoded = decode(encoding, &raw.1)?;
        ensure!(raw.0 == encoding, "asked for {encoding}, got {:?}", raw.0);
        // The status job may change a row's status or issues between two reads: compare the
        // rows, not the bytes.
        let decoded = String::from_utf8(decoded)?;
        ensure!(
            decoded.matches("<tr data-gateway=").count() == rows
                && decoded.trim_end().ends_with("</html>"),
            "the {encoding} page does not decode to the page"
        );
        println!("page: {} bytes {encoding}", raw.1.len());
    }

    for encoding in [None, Some("gzip"), Some("br")] {
        let label = encoding.unwrap_or("identity");
        let times =
            time_requests(&client, &page, Some(&session), encoding, args.iterations).await?;
        println!("server GET /gateways ({label}): {}", summary(&times));
    }
    // A later page of another order: the sort covers every gateway before the page is cut,
    // so this costs what page 1 by name costs.
    let sorted = format!("{page}?sort=status&order=desc&page=5");
    let times = time_requests(&client, &sorted, Some(&session), None, args.iterations).await?;
    println!(
        "server GET /gateways?sort=status&order=desc&page=5 (identity): {}",
        summary(&times)
    );

    let mut nginx = None;
    if let Some(bin) = &args.nginx {
        let root = work.join("nginx");
        std::fs::create_dir_all(root.join("assets"))?;
        std::fs::write(root.join("gateways.html"), &identity)?;
        for asset in ["console.css", "console.js", "icon.svg"] {
            let body = fetch(&client, &format!("{base}/assets/{asset}"), None, None).await?;
            std::fs::write(root.join("assets").join(asset), body)?;
        }
        let server = Nginx::start(bin, &root)?;
        wait_listening(server.port).await?;
        let static_page = format!("http://127.0.0.1:{}/gateways", server.port);
        let saved = fetch(&client, &static_page, None, None).await?;
        ensure!(saved == identity, "nginx serves the saved page");
        let times = time_requests(&client, &static_page, None, None, args.iterations).await?;
        println!(
            "nginx GET /gateways (static file, identity): {}",
            summary(&times)
        );
        nginx = Some((server, static_page));
    }

    if args.paints > 0 {
        let browser = Browser::start(&args.chromium, &args.chromedriver, work).await?;
        let result = async {
            // The session cookie is set on the platform's origin, then every load is a fresh
            // navigation whose paint entries start at zero.
            browser.client.goto(&format!("{base}/login")).await?;
            // Set by script: WebDriver's add-cookie refuses an IP address as the domain. The
            // server reads the cookie the same way (it is HttpOnly only when it sets it).
            browser
                .client
                .execute(
                    "document.cookie = arguments[0] + '; path=/';",
                    vec![session.clone().into()],
                )
                .await?;
            let paints = first_paints(&browser, &page, args.paints).await?;
            println!(
                "chromium first-contentful-paint /gateways: {}",
                summary(&paints)
            );
            if let Some((_, static_page)) = &nginx {
                let paints = first_paints(&browser, static_page, args.paints).await?;
                println!(
                    "chromium first-contentful-paint /gateways from nginx: {}",
                    summary(&paints)
                );
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        browser.close().await;
        result?;
    }

    drop(nginx);
    platform.shutdown().await?;
    store.close().await;
    Ok(())
}

// ---- HTTP -----------------------------------------------------------------------------------

/// `name=value` of the non-empty `Set-Cookie` named `name`.
fn cookie_of(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .find(|pair| pair.starts_with(&format!("{name}=")) && pair.len() > name.len() + 1)
}

/// Signs the owner in through the console's login form; answers the session cookie.
async fn sign_in(base: &str, password: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form = http.get(format!("{base}/login")).send().await?;
    let login_cookie = cookie_of(&form, "sy_login").context("login cookie")?;
    let html = form.text().await?;
    let at = html.find("name=\"csrf\" value=\"").context("csrf field")? + 19;
    let csrf = html[at..].split('"').next().context("csrf value")?;
    let answer = http
        .post(format!("{base}/login"))
        .header(COOKIE, login_cookie)
        .form(&[
            ("csrf", csrf),
            ("account", "default"),
            ("email", platform::bootstrap::OWNER_EMAIL),
            ("password", password),
            ("next", "/gateways"),
        ])
        .send()
        .await?;
    ensure!(answer.status() == 303, "login answered {}", answer.status());
    cookie_of(&answer, "sy_session").context("session cookie")
}

/// GET `url`: (Content-Encoding, body bytes as sent).
async fn fetch_raw(
    client: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
    accept: Option<&str>,
) -> anyhow::Result<(String, Vec<u8>)> {
    let mut request = client.get(url);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    if let Some(accept) = accept {
        request = request.header(ACCEPT_ENCODING, accept);
    }
    let response = request.send().await?;
    ensure!(response.status() == 200, "GET {url}: {}", response.status());
    let encoding = response
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Ok((encoding, response.bytes().await?.to_vec()))
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
    accept: Option<&str>,
) -> anyhow::Result<String> {
    let (encoding, body) = fetch_raw(client, url, cookie, accept).await?;
    Ok(String::from_utf8(decode(&encoding, &body)?)?)
}

fn decode(encoding: &str, body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    match encoding {
        "" => out.extend_from_slice(body),
        "gzip" => {
            flate2::read::GzDecoder::new(body).read_to_end(&mut out)?;
        }
        "br" => {
            brotli::Decompressor::new(body, 4096).read_to_end(&mut out)?;
        }
        other => bail!("unexpected Content-Encoding {other}"),
    }
    Ok(out)
}

/// Times `iterations` GETs of `url` (after 20 warm-up ones), body read whole.
async fn time_requests(
    client: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
    accept: Option<&str>,
    iterations: usize,
) -> anyhow::Result<Vec<Duration>> {
    for _ in 0..20 {
        fetch_raw(client, url, cookie, accept).await?;
    }
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        fetch_raw(client, url, cookie, accept).await?;
        times.push(t.elapsed());
    }
    Ok(times)
}

/// `n` with thousands separated by commas, as the page writes it.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn summary(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return "no samples".into();
    }
    let pct = |p: f64| {
        sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1].as_secs_f64()
            * 1000.0
    };
    format!(
        "n={} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        sorted.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    )
}

async fn wait_listening(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        ensure!(Instant::now() < deadline, "nothing listens on port {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Ends a child process we started: SIGTERM, then SIGKILL after 5 s.
fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
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

// ---- nginx ----------------------------------------------------------------------------------

/// nginx serving `root` (the saved page at `/gateways`, the assets under `/assets/`) with one
/// worker on a loopback port, stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(bin: &Path, root: &Path) -> anyhow::Result<Nginx> {
        let port = free_port()?;
        let conf = root.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes 1;\nmaster_process off;\ndaemon off;\npid {root}/nginx.pid;\n\
                 error_log {root}/error.log warn;\nevents {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  types {{ text/html html; text/css css; \
                 text/javascript js; image/svg+xml svg; }}\n  client_body_temp_path {root}/tmp;\n  \
                 server {{\n    listen 127.0.0.1:{port};\n    root {root};\n    \
                 location = /gateways {{ default_type text/html; try_files /gateways.html =404; }}\n  \
                 }}\n}}\n",
                root = root.display()
            ),
        )?;
        let child = Command::new(bin)
            .arg("-p")
            .arg(root)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        Ok(Nginx { child, port })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

// ---- Chromium -------------------------------------------------------------------------------

/// Headless Chromium under its own chromedriver, with a fresh profile.
struct Browser {
    client: fantoccini::Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(chromium: &Path, chromedriver: &Path, work: &Path) -> anyhow::Result<Browser> {
        let port = free_port()?;
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {}", chromedriver.display()))?;
        wait_listening(port).await?;
        let profile = tempfile::tempdir_in(work)?;
        let options = serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,800",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert("goog:chromeOptions".into(), options);
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await?;
        Ok(Browser {
            client,
            driver,
            _profile: profile,
        })
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

/// Loads `url` `n` times (after 3 warm-up loads) and answers each load's
/// first-contentful-paint, measured from the navigation's start.
async fn first_paints(browser: &Browser, url: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 3 {
        browser.client.goto(url).await?;
        let title = browser.client.title().await?;
        ensure!(
            title.starts_with("Gateways"),
            "loaded {title:?}, not the page"
        );
        let mut paint = None;
        for _ in 0..100 {
            let value = browser
                .client
                .execute(
                    "const p = performance.getEntriesByName('first-contentful-paint')[0]; \
                     return p ? p.startTime : null;",
                    vec![],
                )
                .await?;
            if let Some(ms) = value.as_f64() {
                paint = Some(ms);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ms = paint.context("no first-contentful-paint entry")?;
        if i >= 3 {
            out.push(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    Ok(out)
}
