//! Times `Store::gateways_overview` on the Gateways page benchmark shape (1,000 gateways ×
//! 3 environments + 100 unattached).
//!
//! ```text
//! cargo run --release -p store --example overview_bench [DATABASE_URL] [ITERATIONS] [Q]
//! ```
//!
//! With `Q` it times the search `Q` (`OverviewFilter::search`) instead of the whole page.
//! Without a URL (or with an empty one) it uses a SQLite file in a temp dir. A PostgreSQL URL should point at an
//! empty database or schema (`?options=-c%20search_path%3Dbench`); the seed adds one account.

use std::time::{Duration, Instant};

use model::{AccountId, Timestamp};
use store::{Actor, Audit, GatewayView, OverviewFilter, Store, StoreOptions, seed};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = tempfile::tempdir()?;
    let url = args
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let iterations: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(200);
    let q = args.next().unwrap_or_default();

    let store = Store::open(&url, StoreOptions::default()).await?;
    let now = Timestamp(0);
    let name = format!("bench-{}", AccountId::new_v7());
    let account = store
        .create_account(&name, Audit::new(Actor::System, "account.create", now))
        .await?;
    let started = Instant::now();
    seed::seed_account(&store, account.id, seed::SeedShape::BENCH, now).await?;
    println!(
        "backend {:?}: seeded in {:?}",
        store.backend(),
        started.elapsed()
    );

    let expected = store
        .gateways_overview(account.id, GatewayView::Enabled, OverviewFilter::default())
        .await?
        .filter(&q)
        .gateways
        .len();
    let mut times: Vec<Duration> = Vec::with_capacity(iterations);
    let cpu_before = process_cpu();
    for _ in 0..iterations {
        let started = Instant::now();
        let overview = store
            .gateways_overview(account.id, GatewayView::Enabled, OverviewFilter::search(&q))
            .await?;
        times.push(started.elapsed());
        assert_eq!(overview.gateways.len(), expected);
    }
    // CPU time of the whole process (incl. sqlx's SQLite worker thread) per call: unlike
    // wall time, it does not grow when other work competes for the machine.
    if let (Some(before), Some(after)) = (cpu_before, process_cpu()) {
        println!(
            "process CPU per call: {:?}",
            after.saturating_sub(before) / u32::try_from(iterations.max(1)).unwrap_or(1)
        );
    }
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "gateways_overview q={q:?} ({expected} gateways) x{iterations}: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        times[times.len() - 1]
    );
    Ok(())
}

/// User + system CPU time of this process from `/proc/self/stat` (Linux only).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux platform Rust supports.
    Some(Duration::from_millis(ticks * 10))
}
