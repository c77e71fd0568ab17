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
