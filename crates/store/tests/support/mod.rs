//! Test databases: a SQLite file in a temp dir, or a fresh PostgreSQL schema dropped on drop.

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

pub struct TestDb {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = Store::open(&url, StoreOptions::default())
            .await
            .expect("open sqlite");
        TestDb {
            store,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// `None` when PostgreSQL is not configured for this run.
    pub async fn postgres() -> Option<TestDb> {
        let base = postgres_url()?;
        let schema = format!("sy_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&base)
            .await
            .expect("connect to test postgres");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("create schema");
        admin.close().await;
        let store = Store::open(&schema_url(&base, &schema), StoreOptions::default())
            .await
            .expect("open postgres");
        Some(TestDb {
            store,
            _dir: None,
            pg: Some((base, schema)),
        })
    }
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
        // Drop runs inside the test's runtime, which cannot block on its own futures:
        // clean up on a separate thread with its own runtime. Runs on panic too.
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
