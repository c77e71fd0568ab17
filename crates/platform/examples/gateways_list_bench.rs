//! Times `GET /api/v1/gateways` over HTTP on the Gateways page benchmark shape (1,000
//! gateways × 3 environments + 100 unattached; see `store::seed::SeedShape::BENCH`), and
//! `GET /api/v1/gateways/{id}` of one of them.
//!
//! ```text
//! cargo run --release -p platform --example gateways_list_bench -- [DATABASE_URL] [ITERATIONS]
//! ```
//!
//! Without a URL (or with an empty one) it uses a SQLite file in a temp dir. With a PostgreSQL URL it creates a
//! fresh schema, runs in it and drops it afterwards. Requests go through a real socket with
//! one keep-alive client, one at a time, so the figures are per-request latency.

use std::time::{Duration, Instant};

use platform::{Platform, PlatformConfig};
use store::{Store, StoreOptions, seed};

/// The list calls measured: a sort with a search (the goal), and the whole list. Then one
/// gateway, the one named [`ONE_GATEWAY`].
const QUERIES: &[&str] = &[
    "/api/v1/gateways?sort=status&q=gw-01",
    "/api/v1/gateways?sort=status",
    "/api/v1/gateways",
];

/// The gateway whose `GET /api/v1/gateways/{id}` is measured after the list calls.
const ONE_GATEWAY: &str = "gw-0500";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = tempfile::tempdir()?;
    let base = args
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let iterations: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(500);

    let (url, schema) = if base.starts_with("postgres") {
        let schema = format!("sy_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&base).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        (
            format!("{base}{sep}options=-c%20search_path%3D{schema}"),
            Some(schema),
        )
    } else {
        (base.clone(), None)
    };

    let result = run(&url, iterations).await;

    if let Some(schema) = schema {
        let admin = sqlx::PgPool::connect(&base).await?;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await?;
        admin.close().await;
    }
    result
}

async fn run(url: &str, iterations: usize) -> anyhow::Result<()> {
    let store = Store::open(url, StoreOptions::default()).await?;
    let now = platform::state::now();
    let tokens = platform::bootstrap::bootstrap(&store, now).await?;
    let started = Instant::now();
    seed::seed_account(&store, tokens.account_id, seed::SeedShape::BENCH, now).await?;
    println!(
        "backend {:?}: seeded {} gateways x {} environments + {} unattached in {:?}",
        store.backend(),
        seed::SeedShape::BENCH.gateways,
        seed::SeedShape::BENCH.environments_per_gateway,
        seed::SeedShape::BENCH.unattached_environments,
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
    let client = reqwest::Client::new();
    let found: serde_json::Value = client
        .get(format!(
            "{}/api/v1/gateways?q={ONE_GATEWAY}",
            platform.url()
        ))
        .bearer_auth(&tokens.owner_token)
        .send()
        .await?
        .json()
        .await?;
    let one_id = found["gateways"][0]["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no gateway named {ONE_GATEWAY}"))?
        .to_owned();
    let mut queries: Vec<String> = QUERIES.iter().map(|q| q.to_string()).collect();
    queries.push(format!("/api/v1/gateways/{one_id}"));
    for query in &queries {
        let url = format!("{}{query}", platform.url());
        let call = || async {
            let resp = client
                .get(&url)
                .bearer_auth(&tokens.owner_token)
                .send()
                .await?;
            anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
            Ok::<_, anyhow::Error>(resp.bytes().await?)
        };
        let body = call().await?;
        let parsed: serde_json::Value = serde_json::from_slice(&body)?;
        // A list has `gateways`; one gateway is one row.
        let rows = parsed["gateways"].as_array().map_or(1, Vec::len);
        for _ in 0..20 {
            call().await?;
        }
        let mut times: Vec<Duration> = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            call().await?;
            times.push(t.elapsed());
        }
        times.sort();
        let pct =
            |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
        println!(
            "GET {query}: {rows} gateways, {} bytes; n={iterations} median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            body.len(),
            ms(pct(0.50)),
            ms(pct(0.99)),
            ms(times[times.len() - 1]),
        );
    }
    platform.shutdown().await?;
    store.close().await;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
