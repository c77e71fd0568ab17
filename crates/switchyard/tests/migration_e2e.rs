//! Environment migrations (SPEC §7) end to end with real processes: a platform and gateway
//! nodes of two gateways. The steps are checked through REST: every refusal of step 1, the
//! runtime check run by the destination's real nodes against real (and dead) upstreams,
//! resuming after a platform restart, redoing a step, and an offline destination.

mod e2e;

use e2e::*;
use reqwest::Method;
use serde_json::{Value, json};

/// A second gateway with one node, joined with a fresh install token.
async fn second_gateway(
    root: &std::path::Path,
    platform: &Platform,
    name: &str,
) -> (Node, String, String) {
    let token = platform.install_token().await;
    let mut node = Node::new(root, &format!("node-{name}"), platform);
    node.start(Some((name, &token)));
    let node_id = node.id().await;
    let gateway = wait_until("the second gateway", || platform.gateway(name)).await;
    (node, gateway["id"].as_str().unwrap().to_owned(), node_id)
}

async fn env_id(platform: &Platform, name: &str) -> String {
    let envs = platform
        .ok(Method::GET, "/api/v1/environments?limit=100", None)
        .await;
    envs["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn paths(prefix: &str) -> Value {
    json!({
        "rest_path": format!("{prefix}/rest"), "soap_path": format!("{prefix}/soap"),
        "soap12_path": format!("{prefix}/soap12"), "odata_path": format!("{prefix}/odata"),
    })
}

fn codes(findings: &Value) -> Vec<String> {
    findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["severity"].as_str().unwrap(),
                f["code"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_steps_refuse_bad_input_probe_real_upstreams_and_resume_after_restart() {
    let root = tempfile::tempdir().unwrap();
    let (mut platform, node_a, gw_a, a_id) = platform_and_node(root.path(), "gw-a").await;
    let (mut node_b, gw_b, b_id) = second_gateway(root.path(), &platform, "gw-b").await;
    platform.wait_node(&gw_a, &a_id, "online", None).await;
    platform.wait_node(&gw_b, &b_id, "online", None).await;

    let live = upstream().await;
    // A port nothing listens on: bound, then released.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    platform
        .deploy(&gw_a, "prod", "orders", &format!("http://{live}"))
        .await;
    platform
        .deploy(&gw_a, "prod", "ghost", &format!("http://{dead}"))
        .await;
    // Staging on the destination keeps the default paths `ws/*`.
    platform
        .deploy(&gw_b, "staging", "stock", &format!("http://{live}"))
        .await;
    node_a
        .wait_status(&platform.client, "/ws/rest/orders/1", 200)
        .await;
    let prod = env_id(&platform, "prod").await;

    let created = platform
        .ok(
            Method::POST,
            "/api/v1/migrations",
            Some(json!({ "environment_id": prod })),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["current_step"], "1");
    assert_eq!(created["moving_from"]["name"], "gw-a");
    assert_eq!(created["moving_to"], Value::Null);
    assert_eq!(created["blocked"].as_array().unwrap().len(), 3);

    // One migration per environment.
    let (status, body) = platform
        .call(
            Method::POST,
            "/api/v1/migrations",
            Some(json!({ "environment_id": prod })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("MIGRATION_IN_PROGRESS"))
    );
    // Steps run in order.
    let (status, body) = platform
        .call(
            Method::POST,
            &format!("/api/v1/migrations/{id}/runtime-check"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("MIGRATION_STEP_OUT_OF_ORDER")),
        "{body}"
    );

    // Step 1 refusals: (body, status, code, field).
    let destination = format!("/api/v1/migrations/{id}/destination");
    let mut bad_paths = paths("p");
    bad_paths["soap_path"] = json!("/p/soap");
    let mut spaced = paths("p");
    spaced["odata_path"] = json!("p/o data");
    let refusals = [
        (
            json!({ "gateway_id": gw_a, "paths": paths("p") }),
            422,
            "MIGRATION_SAME_GATEWAY",
            "gateway_id",
        ),
        (
            json!({ "gateway_id": gw_b, "paths": bad_paths }),
            422,
            "ENVIRONMENT_PATH_LEADING_SLASH",
            "soap_path",
        ),
        (
            json!({ "gateway_id": gw_b, "paths": spaced }),
            422,
            "ENVIRONMENT_PATH_SPACES",
            "odata_path",
        ),
        // The destination's Staging already uses `ws/*`.
        (
            json!({ "gateway_id": gw_b, "paths": paths("ws") }),
            422,
            "ENVIRONMENT_PATH_NOT_UNIQUE_ON_GATEWAY",
            "rest_path",
        ),
        (
            json!({ "gateway_id": uuid::Uuid::now_v7(), "paths": paths("p") }),
            404,
            "NOT_FOUND",
            "",
        ),
        (json!({ "gateway_id": gw_b }), 400, "", ""),
    ];
    for (body, want_status, want_code, want_field) in refusals {
        let (status, answer) = platform
            .call(Method::PUT, &destination, Some(body.clone()))
            .await;
        assert_eq!(status, want_status, "{body}: {answer}");
        if !want_code.is_empty() {
            assert_eq!(answer["error"]["code"], want_code, "{body}: {answer}");
        }
        if !want_field.is_empty() {
            assert_eq!(
                answer["error"]["details"]["field"], want_field,
                "{body}: {answer}"
            );
        }
    }
    // Nothing was saved by a refusal.
    let shown = platform
        .ok(Method::GET, &format!("/api/v1/migrations/{id}"), None)
        .await;
    assert_eq!(shown["current_step"], "1");

    // Step 1 saved, with percent-encoding, and the nested-path warning: `ws` would contain
    // Staging's `ws/rest`.
    let mut nested = paths("café");
    nested["odata_path"] = json!("ws");
    let saved = platform
        .ok(
            Method::PUT,
            &destination,
            Some(json!({ "gateway_id": gw_b, "paths": nested })),
        )
        .await;
    assert_eq!(saved["current_step"], "2", "{saved:#}");
    assert_eq!(saved["moving_to"]["name"], "gw-b");
    assert_eq!(
        saved["steps"]["destination"]["paths"]["rest_path"],
        "caf%C3%A9/rest"
    );
    assert!(
        codes(&saved["steps"]["destination"]["warnings"])
            .contains(&"WARNING ENVIRONMENT_PATH_NESTED".to_owned()),
        "{saved:#}"
    );
    let saved = platform
        .ok(
            Method::PUT,
            &destination,
            Some(json!({ "gateway_id": gw_b, "paths": paths("p") })),
        )
        .await;
    assert_eq!(saved["steps"]["destination"]["warnings"], json!([]));

    // Step 2: gw-b's node probes both upstreams for real.
    let checked = platform
        .ok(
            Method::POST,
            &format!("/api/v1/migrations/{id}/runtime-check"),
            None,
        )
        .await;
    let check = &checked["steps"]["runtime_check"];
    assert_eq!(checked["current_step"], "3", "{checked:#}");
    assert_eq!(
        check["nodes_answered"].as_array().unwrap().len(),
        1,
        "{check:#}"
    );
    let probes = check["probes"].as_array().unwrap();
    let reach = |api: &str| {
        probes
            .iter()
            .find(|p| p["api"] == api)
            .map(|p| p["reachable"].as_bool().unwrap())
    };
    assert_eq!((reach("orders"), reach("ghost")), (Some(true), Some(false)));
    let warnings = codes(&check["warnings"]);
    assert_eq!(warnings, vec!["WARNING UPSTREAM_UNREACHABLE"], "{check:#}");
    let message = check["warnings"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("ghost") && message.contains(&dead.to_string()),
        "{message}"
    );

    // Saved in the database: a restarted platform resumes at step 3.
    platform.stop("TERM").await;
    platform.spawn().await;
    let resumed = platform
        .ok(Method::GET, &format!("/api/v1/migrations/{id}"), None)
        .await;
    assert_eq!(resumed["current_step"], "3");
    assert_eq!(
        resumed["steps"]["runtime_check"],
        checked["steps"]["runtime_check"]
    );

    let reviewed = platform
        .ok(
            Method::POST,
            &format!("/api/v1/migrations/{id}/review"),
            None,
        )
        .await;
    assert_eq!(reviewed["current_step"], "ready", "{reviewed:#}");
    assert_eq!(reviewed["blocked"], json!([]));
    let apis: Vec<&str> = reviewed["steps"]["review"]["apis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(apis, vec!["ghost", "orders"]);
    assert_eq!(
        reviewed["warnings"].as_array().unwrap().len(),
        1,
        "the standing warning is step 2's"
    );

    // Redoing step 1 clears steps 2 and 3.
    let redone = platform
        .ok(
            Method::PUT,
            &destination,
            Some(json!({ "gateway_id": gw_b, "paths": paths("q") })),
        )
        .await;
    assert_eq!(redone["current_step"], "2");
    assert_eq!(redone["steps"]["runtime_check"], Value::Null);
    assert_eq!(redone["steps"]["review"], Value::Null);

    // An offline destination is an ERROR that blocks Migrate.
    node_b.stop("TERM").await;
    platform.wait_node(&gw_b, &b_id, "offline", None).await;
    let offline = platform
        .ok(
            Method::POST,
            &format!("/api/v1/migrations/{id}/runtime-check"),
            None,
        )
        .await;
    assert_eq!(
        codes(&offline["steps"]["runtime_check"]["warnings"]),
        vec!["ERROR DESTINATION_OFFLINE"]
    );
    let blocked: Vec<&str> = offline["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["code"].as_str().unwrap())
        .collect();
    assert_eq!(blocked, vec!["STEP_INCOMPLETE", "DESTINATION_OFFLINE"]);

    // Listed while in progress; deleted, it is gone and the environment stayed.
    let list = platform.ok(Method::GET, "/api/v1/migrations", None).await;
    assert_eq!(list["migrations"].as_array().unwrap().len(), 1);
    let (status, _) = platform
        .call(Method::DELETE, &format!("/api/v1/migrations/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = platform
        .call(Method::GET, &format!("/api/v1/migrations/{id}"), None)
        .await;
    assert_eq!(status, 404);
    let list = platform.ok(Method::GET, "/api/v1/migrations", None).await;
    assert_eq!(list["migrations"], json!([]));
    let env = platform
        .ok(Method::GET, &format!("/api/v1/environments/{prod}"), None)
        .await;
    assert_eq!(env["gateway_id"], gw_a);
    let audit = platform
        .ok(Method::GET, "/api/v1/audit?limit=200", None)
        .await;
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for action in [
        "migration.create",
        "migration.destination",
        "migration.runtime_check",
        "migration.review",
        "migration.delete",
    ] {
        assert!(actions.contains(&action), "{action} audited: {audit}");
    }
    drop(node_a);
}

/// Joins one more node to gateway `gateway`.
async fn join(
    root: &std::path::Path,
    platform: &Platform,
    name: &str,
    gateway: &str,
) -> (Node, String) {
    let token = platform.install_token().await;
    let mut node = Node::new(root, name, platform);
    node.start(Some((gateway, &token)));
    let id = node.id().await;
    (node, id)
}

/// Steps 1–3 of a saved migration of `env` to `gateway` with the default paths.
async fn prepare(platform: &Platform, env: &str, gateway: &str) -> String {
    let created = platform
        .ok(
            Method::POST,
            "/api/v1/migrations",
            Some(json!({ "environment_id": env })),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    platform
        .ok(
            Method::PUT,
            &format!("/api/v1/migrations/{id}/destination"),
            Some(json!({ "gateway_id": gateway, "paths": paths("ws") })),
        )
        .await;
    platform
        .ok(
            Method::POST,
            &format!("/api/v1/migrations/{id}/runtime-check"),
            None,
        )
        .await;
    let ready = platform
        .ok(
            Method::POST,
            &format!("/api/v1/migrations/{id}/review"),
            None,
        )
        .await;
    assert_eq!(ready["current_step"], "ready", "{ready:#}");
    id
}

const REQUESTS: usize = 3_000;

/// SPEC §7 make-before-break: a bounded client loop keeps calling three APIs through the
/// source gateway's first node (following redirects) while the environment moves between
/// two gateways of two real nodes each: no request fails. Afterwards the destination serves
/// the APIs, the source answers 308 to the destination during the grace period and 404
/// after it. A destination node that stops answering during the cut-over ends a second
/// migration with ERROR and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_moves_an_environment_without_a_failed_request_then_redirects_until_the_grace_period_ends()
 {
    let root = tempfile::tempdir().unwrap();
    let mut platform = Platform::start_with(
        root.path(),
        &[
            "--migration-grace-secs",
            "4",
            "--migration-cutover-timeout-secs",
            "5",
        ],
    )
    .await;
    let (a1, a1_id) = join(root.path(), &platform, "a1", "gw-a").await;
    let gw_a = wait_until("gw-a", || platform.gateway("gw-a")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (a2, a2_id) = join(root.path(), &platform, "a2", "gw-a").await;
    let (b1, b1_id) = join(root.path(), &platform, "b1", "gw-b").await;
    let gw_b = wait_until("gw-b", || platform.gateway("gw-b")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut b2, b2_id) = join(root.path(), &platform, "b2", "gw-b").await;
    for (gw, id) in [
        (&gw_a, &a1_id),
        (&gw_a, &a2_id),
        (&gw_b, &b1_id),
        (&gw_b, &b2_id),
    ] {
        platform.wait_node(gw, id, "online", None).await;
    }
    let live = upstream().await;
    for api in ["orders", "stock", "users"] {
        platform
            .deploy(&gw_a, "prod", api, &format!("http://{live}"))
            .await;
    }
    let client = reqwest::Client::new();
    for node in [&a1, &a2] {
        node.wait_status(&client, "/ws/rest/users/1", 200).await;
    }
    let prod = env_id(&platform, "prod").await;
    let id = prepare(&platform, &prod, &gw_b).await;

    // The client loop: sequential requests through a1, redirects followed (the default).
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let source = a1.url("");
    let loop_task = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut failed = Vec::new();
        let mut redirected = 0usize;
        for i in 0..REQUESTS {
            let api = ["orders", "stock", "users"][i % 3];
            let url = format!("{source}/ws/rest/{api}/{i}?n={i}");
            match client.get(&url).send().await {
                Ok(r) if r.status() == 200 => {
                    if r.url().as_str() != url {
                        redirected += 1;
                    }
                    // The upstream echoes the path it was sent, which ends with the id.
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    if !body["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with(&format!("/{i}")))
                    {
                        failed.push(format!("{url}: unexpected body {body}"));
                    }
                }
                Ok(r) => failed.push(format!("{url}: {}", r.status())),
                Err(e) => failed.push(format!("{url}: {e}")),
            }
            let _ = progress_tx.send(i + 1);
        }
        (failed, redirected)
    });
    progress
        .wait_for(|n| *n >= REQUESTS / 4)
        .await
        .expect("the loop runs");
    let done = platform
        .ok(
            Method::POST,
            &format!("/api/v1/migrations/{id}/migrate"),
            None,
        )
        .await;
    assert_eq!(done["result"], "OK", "{done:#}");
    assert!(done["completed_at"].is_string());
    let (failed, redirected) = loop_task.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        redirected > 0,
        "some requests after the move were redirected"
    );

    // The destination serves the APIs; the source redirects (308, same path and query).
    let env = platform
        .ok(Method::GET, &format!("/api/v1/environments/{prod}"), None)
        .await;
    assert_eq!(env["gateway_id"], gw_b);
    for node in [&b1, &b2] {
        node.wait_status(&client, "/ws/rest/orders/1", 200).await;
    }
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for node in [&a1, &a2] {
        let r = no_follow
            .get(node.url("/ws/rest/stock/9?x=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 308);
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.ends_with("/ws/rest/stock/9?x=1") && location.starts_with("http://127.0.0.1:"),
            "{location}"
        );
        assert!(
            [b1.url(""), b2.url("")]
                .iter()
                .any(|b| location.starts_with(b.as_str())),
            "{location} names a destination node"
        );
    }
    // After the grace period: 404.
    for node in [&a1, &a2] {
        node.wait_status(&no_follow, "/ws/rest/stock/9", 404).await;
    }
    let history = platform
        .ok(Method::GET, "/api/v1/migrations?state=completed", None)
        .await;
    assert_eq!(history["migrations"][0]["id"], id.as_str());

    // Back to gw-a, whose node a2 is suspended: it never applies the configuration, loses
    // contact, and the cut-over ends with ERROR.
    let back = prepare(&platform, &prod, &gw_a).await;
    a2.signal_stop();
    let failed = platform
        .ok(
            Method::POST,
            &format!("/api/v1/migrations/{back}/migrate"),
            None,
        )
        .await;
    a2.signal_continue();
    assert_eq!(failed["result"], "ERROR", "{failed:#}");
    assert_eq!(
        codes(&failed["steps"]["migrate"]),
        vec!["ERROR CUTOVER_TIMEOUT"],
        "{failed:#}"
    );
    let env = platform
        .ok(Method::GET, &format!("/api/v1/environments/{prod}"), None)
        .await;
    assert_eq!(env["gateway_id"], gw_b, "nothing changed");
    b1.wait_status(&client, "/ws/rest/orders/1", 200).await;
    // The aborted cut-over left gw-a: its URLs are not served there (404 once a1 has the
    // configuration without it).
    a1.wait_status(&client, "/ws/rest/orders/1", 404).await;

    // Moving off: the APIs stop being served at once.
    let off = platform
        .ok(
            Method::POST,
            "/api/v1/migrations",
            Some(json!({ "environment_id": prod })),
        )
        .await;
    let off_id = off["id"].as_str().unwrap();
    platform
        .ok(
            Method::PUT,
            &format!("/api/v1/migrations/{off_id}/destination"),
            Some(json!({ "gateway_id": null, "paths": paths("ws") })),
        )
        .await;
    let checked = platform
        .ok(
            Method::POST,
            &format!("/api/v1/migrations/{off_id}/runtime-check"),
            None,
        )
        .await;
    assert_eq!(
        codes(&checked["steps"]["runtime_check"]["warnings"]),
        vec!["WARNING APIS_UNREACHABLE_AFTER_MOVE"]
    );
    platform
        .ok(
            Method::POST,
            &format!("/api/v1/migrations/{off_id}/review"),
            None,
        )
        .await;
    let done = platform
        .ok(
            Method::POST,
            &format!("/api/v1/migrations/{off_id}/migrate"),
            None,
        )
        .await;
    assert_eq!(done["result"], "OK_WITH_WARNINGS", "{done:#}");
    b1.wait_status(&no_follow, "/ws/rest/orders/1", 404).await;
    let env = platform
        .ok(Method::GET, &format!("/api/v1/environments/{prod}"), None)
        .await;
    assert_eq!(env["gateway_id"], Value::Null);
    // A completed migration cannot be changed or deleted.
    let (status, body) = platform
        .call(
            Method::DELETE,
            &format!("/api/v1/migrations/{off_id}"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("MIGRATION_COMPLETED"))
    );
    platform.stop("TERM").await;
    b2.stop("TERM").await;
}
