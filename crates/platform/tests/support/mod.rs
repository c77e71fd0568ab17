//! Test harness: a real platform on port 0 over a SQLite file in a temp dir, or over a fresh
//! PostgreSQL schema (dropped afterwards) when `SWITCHYARD_TEST_POSTGRES_URL` is set.

#![allow(dead_code)]

use platform::{Platform, PlatformConfig};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use store::{Store, StoreOptions};

pub const POSTGRES_URL_VAR: &str = "SWITCHYARD_TEST_POSTGRES_URL";

/// The PostgreSQL URL of this test run, `None` when it is not set. Under `CI=true` an unset
/// URL fails the test instead: in CI a skipped PostgreSQL variant would be a test that cannot fail.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!(
                "{POSTGRES_URL_VAR} must be set when CI=true (PostgreSQL tests may not skip in CI)"
            )
        }
        Err(_) => None,
    }
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub store: Store,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("platform.db").display());
        let store = Store::open(&url, options()).await.expect("open sqlite");
        TestDb {
            store,
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// `None` when PostgreSQL is not configured for this run.
    pub async fn postgres() -> Option<TestDb> {
        Self::postgres_via(None).await
    }

    /// Like [`TestDb::postgres`], with the store's connections going through `via`
    /// (`host:port` of a proxy to the server) instead of straight to the server.
    pub async fn postgres_via(via: Option<&str>) -> Option<TestDb> {
        let base = postgres_url()?;
        let schema = format!("sy_platform_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&base)
            .await
            .expect("connect to test postgres");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("create schema");
        admin.close().await;
        let url = match via {
            Some(via) => schema_url(&with_authority(&base, via), &schema),
            None => schema_url(&base, &schema),
        };
        let store = Store::open(&url, options()).await.expect("open postgres");
        Some(TestDb {
            store,
            url,
            _dir: None,
            pg: Some((base, schema)),
        })
    }

    pub async fn open(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(TestDb::sqlite().await),
            Backend::Postgres => TestDb::postgres().await,
        }
    }
}

fn options() -> StoreOptions {
    StoreOptions {
        // A database that is down answers 503 quickly instead of after the default wait.
        acquire_timeout: std::time::Duration::from_secs(1),
        ..StoreOptions::default()
    }
}

/// `url` with its `host:port` replaced by `authority` (user and database kept).
pub fn with_authority(url: &str, authority: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let host_start = rest.find('@').map_or(0, |i| i + 1);
    let host_end = rest[host_start..]
        .find(['/', '?'])
        .map_or(rest.len(), |i| host_start + i);
    format!(
        "{}{}{}{}",
        &url[..start],
        &rest[..host_start],
        authority,
        &rest[host_end..]
    )
}

/// `base` with every connection's search_path set to `schema`.
pub fn schema_url(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((base, schema)) = self.pg.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot block on its own futures.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(admin) = sqlx::PgPool::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                        .execute(&admin)
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A running platform with the first-run data of `switchyard up`.
pub struct TestPlatform {
    pub platform: Platform,
    pub base: String,
    pub client: reqwest::Client,
    /// Owner of the account `default`.
    pub owner: String,
    /// Platform administrator.
    pub admin: String,
    pub db: TestDb,
}

/// An HTTP answer: status and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// `error.code` of an error envelope.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// `error.details.field` of an error envelope.
    pub fn field(&self) -> &str {
        self.body["error"]["details"]["field"]
            .as_str()
            .unwrap_or("")
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {:#}",
            self.body
        );
        self.body
    }
}

impl TestPlatform {
    pub async fn start(backend: Backend) -> Option<TestPlatform> {
        let db = TestDb::open(backend).await?;
        Some(Self::start_on(db).await)
    }

    /// A platform on an already opened test database.
    pub async fn start_on(db: TestDb) -> TestPlatform {
        let tokens = platform::bootstrap::bootstrap(&db.store, platform::state::now())
            .await
            .expect("bootstrap");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let platform = Platform::start(
            PlatformConfig {
                store: db.store.clone(),
            },
            listener,
        )
        .await
        .expect("start platform");
        TestPlatform {
            base: platform.url(),
            platform,
            client: reqwest::Client::new(),
            owner: tokens.owner_token,
            admin: tokens.admin_token,
            db,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, body }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(
            Method::POST,
            path,
            Some(token),
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(
            Method::PUT,
            path,
            Some(token),
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(
            Method::PATCH,
            path,
            Some(token),
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Creates a gateway as the owner and answers its id.
    pub async fn gateway(&self, name: &str) -> String {
        let body = self
            .post(
                "/api/v1/gateways",
                &self.owner,
                serde_json::json!({ "name": name }),
            )
            .await
            .expect(201);
        body["id"].as_str().expect("gateway id").to_string()
    }

    /// Creates an environment as the owner, attached to `gateway` when given; answers its id.
    pub async fn environment(&self, name: &str, gateway: Option<&str>) -> String {
        let body = self
            .post(
                "/api/v1/environments",
                &self.owner,
                serde_json::json!({ "name": name, "classification": "test" }),
            )
            .await
            .expect(201);
        let id = body["id"].as_str().expect("environment id").to_string();
        if let Some(gateway) = gateway {
            self.put(
                &format!("/api/v1/environments/{id}/gateway"),
                &self.owner,
                serde_json::json!({ "gateway_id": gateway }),
            )
            .await
            .expect(200);
        }
        id
    }

    /// Creates a REST API as the owner; answers its id.
    pub async fn api(&self, name: &str, base_path: &str) -> String {
        let body = self
            .post(
                "/api/v1/apis",
                &self.owner,
                serde_json::json!({
                    "name": name,
                    "version": "v1",
                    "api_type": "REST",
                    "base_path": base_path,
                    "upstream_targets": ["http://127.0.0.1:9/"],
                }),
            )
            .await
            .expect(201);
        body["id"].as_str().expect("api id").to_string()
    }

    /// Creates a user with `role` in the default account; answers their token.
    pub async fn user(&self, name: &str, role: &str) -> String {
        let body = self
            .post(
                "/api/v1/users",
                &self.owner,
                serde_json::json!({ "name": name, "role": role }),
            )
            .await
            .expect(201);
        body["token"].as_str().expect("user token").to_string()
    }
}

/// A TCP proxy to `upstream` that can be cut: then it stops accepting and drops every open
/// connection, which is what a database host going away looks like to the pool.
pub struct CuttableProxy {
    pub addr: std::net::SocketAddr,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    pub async fn start(upstream: String) -> CuttableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            Default::default();
        let registry = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                registry.lock().expect("registry").push(task);
            }
        });
        CuttableProxy {
            addr,
            tasks,
            accept,
        }
    }

    pub fn cut(&self) {
        self.accept.abort();
        for task in self.tasks.lock().expect("registry").drain(..) {
            task.abort();
        }
    }
}

/// `host:port` of a database URL.
pub fn authority_of(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let host_start = rest.find('@').map_or(0, |i| i + 1);
    let host = &rest[host_start..];
    let end = host.find(['/', '?']).unwrap_or(host.len());
    let authority = &host[..end];
    if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:5432")
    }
}
