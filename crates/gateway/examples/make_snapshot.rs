//! Writes a sealed configuration snapshot with N REST APIs to stdout, for benchmarks and manual
//! runs: `cargo run -p gateway --example make_snapshot -- APIS TARGET_URL [GENERATION]`.
//! API `i` is served at `/ws/rest/api{i}/v1` and proxies to TARGET_URL.

use protocol::{
    Api, ApiType, Deployment, Environment, EnvironmentPaths, LoadBalancing, Snapshot,
    SnapshotConfig, UpstreamTarget,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let apis: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let target = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:9000".into());
    let generation: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1);
    let mut config = SnapshotConfig::default();
    config.environments.push(Environment {
        id: "env-prod".into(),
        name: "Production".into(),
        paths: EnvironmentPaths::default(),
    });
    // Benchmarks drive more concurrency than the default per-node limit of 100.
    config.gateway.execution.max_concurrency_per_node = 10_000;
    for i in 0..apis {
        config.apis.push(Api {
            id: format!("api-{i}"),
            name: format!("api{i}"),
            version: "1".into(),
            api_type: ApiType::Rest,
            base_path: format!("api{i}/v1"),
            targets: vec![UpstreamTarget {
                url: target.clone(),
            }],
            load_balancing: LoadBalancing::RoundRobin,
            health_check_url: None,
            execution: None,
            max_body_bytes: None,
            deployments: vec![Deployment {
                environment_id: "env-prod".into(),
                custom_path: None,
            }],
        });
    }
    println!("{}", Snapshot::new(generation, config).to_json_pretty());
}
