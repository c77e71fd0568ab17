//! REST API contract tests through real sockets: every test runs on SQLite, and on
//! PostgreSQL too when `SWITCHYARD_TEST_POSTGRES_URL` is set (a fresh schema per test).

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Backend, TestPlatform};

/// Generates one `#[tokio::test]` per backend for each listed `async fn(TestPlatform)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let p = super::TestPlatform::start(super::Backend::Sqlite).await
                        .expect("sqlite platform");
                    super::$name(p).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(p) = super::TestPlatform::start(super::Backend::Postgres).await else {
                        eprintln!("SWITCHYARD_TEST_POSTGRES_URL not set; skipped");
                        return;
                    };
                    super::$name(p).await;
                }
            )*
        }
    };
}

on_both_backends!(
    authentication_is_required,
    roles_are_enforced_and_denials_audited,
    accounts_are_for_platform_admins,
    accounts_are_isolated,
    gateway_lifecycle,
    gateways_list_filters_and_sorts,
    deleted_gateways_detach_environments,
    environment_defaults_and_configuration,
    every_path_rule_has_its_code,
    paths_unique_on_gateway,
    conflicting_deployment_is_refused_naming_the_apis,
    apis_crud,
    install_tokens,
    personal_tokens,
    users_and_roles,
    bad_input_names_the_field,
    mutations_write_audit_records,
    unknown_routes_use_the_envelope,
    database_down_is_503,
    lists_page_with_cursors,
    wrong_secrets_are_throttled_per_source,
    emails_are_unique_within_an_account_only,
    accounts_of_others_are_not_found,
    bodies_must_be_objects,
    one_name_rule_everywhere,
    upstream_targets_are_capped_and_unique,
    install_tokens_are_listed_and_print_their_join_line,
    empty_list_parameters_and_vanished_cursors,
    integral_floats_are_integers,
);

fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .expect("array")
        .iter()
        .map(|g| g["name"].as_str().expect("name").to_string())
        .collect()
}

async fn authentication_is_required(p: TestPlatform) {
    let none = p.call(Method::GET, "/api/v1/gateways", None, None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.code(), "UNAUTHENTICATED");
    let bad = p.get("/api/v1/gateways", "sy_pat_not-a-real-token").await;
    assert_eq!(bad.status, 401);
    let garbage = p.get("/api/v1/gateways", "hello").await;
    assert_eq!(garbage.status, 401);
    p.get("/api/v1/gateways", &p.owner).await.expect(200);
    let me = p.get("/api/v1/me", &p.owner).await.expect(200);
    assert_eq!(me["role"], "owner");
}

async fn roles_are_enforced_and_denials_audited(p: TestPlatform) {
    let viewer = p.user("Vera Viewer", "viewer").await;
    let admin = p.user("Adam Admin", "admin").await;
    // Viewers read, never change.
    p.get("/api/v1/gateways", &viewer).await.expect(200);
    let denied = p
        .post("/api/v1/gateways", &viewer, json!({ "name": "gw" }))
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.code(), "FORBIDDEN");
    p.post(
        "/api/v1/environments",
        &viewer,
        json!({ "name": "e", "classification": "test" }),
    )
    .await
    .expect(403);
    p.get("/api/v1/audit", &viewer).await.expect(403);
    // Admins manage but do not delete gateways or manage users.
    let gw = p.gateway("gw-a").await;
    p.patch(
        &format!("/api/v1/gateways/{gw}"),
        &admin,
        json!({ "name": "gw-b" }),
    )
    .await
    .expect(200);
    p.delete(&format!("/api/v1/gateways/{gw}"), &admin)
        .await
        .expect(403);
    p.post(
        "/api/v1/users",
        &admin,
        json!({ "name": "x", "role": "owner" }),
    )
    .await
    .expect(403);
    // The platform administrator belongs to no account.
    p.get("/api/v1/gateways", &p.admin).await.expect(403);
    // Every denial left a record.
    let audit = p.get("/api/v1/audit?limit=500", &p.owner).await.expect(200);
    let denied: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "denied")
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in [
        "gateway.create",
        "environment.create",
        "gateway.delete",
        "user.create",
    ] {
        assert!(denied.contains(&action), "{action} not audited: {denied:?}");
    }
}

async fn accounts_are_for_platform_admins(p: TestPlatform) {
    let created = p
        .post("/api/v1/accounts", &p.admin, json!({ "name": "acme" }))
        .await
        .expect(201);
    let token = created["owner_token"].as_str().unwrap().to_string();
    assert!(token.starts_with("sy_pat_"));
    assert_eq!(created["token"], created["owner_token"]);
    let me = p.get("/api/v1/me", &token).await.expect(200);
    assert_eq!(me["role"], "owner");
    assert_eq!(me["account_id"], created["id"]);
    // Account, owner and token were written together, each with its audit record.
    let audit = p.get("/api/v1/audit", &token).await.expect(200);
    let mut actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        ["account.create", "api_token.create", "user.create"]
    );
    let list = p.get("/api/v1/accounts", &p.admin).await.expect(200);
    assert_eq!(ids(&list, "accounts"), ["acme", "default"]);
    let id = created["id"].as_str().unwrap();
    p.get(&format!("/api/v1/accounts/{id}"), &p.admin)
        .await
        .expect(200);
    // Owners of an account are not platform administrators.
    p.post("/api/v1/accounts", &p.owner, json!({ "name": "evil" }))
        .await
        .expect(403);
    p.get("/api/v1/accounts", &p.owner).await.expect(403);
    let dup = p
        .post("/api/v1/accounts", &p.admin, json!({ "name": "acme" }))
        .await;
    assert_eq!(dup.status, 409);
    let empty = p
        .post("/api/v1/accounts", &p.admin, json!({ "name": " " }))
        .await;
    assert_eq!(empty.status, 422);
    assert_eq!(empty.code(), "ACCOUNT_NAME_EMPTY");
}

async fn accounts_are_isolated(p: TestPlatform) {
    let other = p
        .post("/api/v1/accounts", &p.admin, json!({ "name": "other" }))
        .await
        .expect(201)["owner_token"]
        .as_str()
        .unwrap()
        .to_string();
    let gw = p.gateway("mine").await;
    let env = p.environment("mine-env", Some(&gw)).await;
    let api = p.api("mine-api", "mine").await;
    for path in [
        format!("/api/v1/gateways/{gw}"),
        format!("/api/v1/gateways/{gw}/nodes"),
        format!("/api/v1/environments/{env}"),
        format!("/api/v1/environments/{env}/configuration"),
        format!("/api/v1/apis/{api}"),
        format!("/api/v1/apis/{api}/deployments"),
    ] {
        let a = p.get(&path, &other).await;
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.code(), "NOT_FOUND");
    }
    p.delete(&format!("/api/v1/gateways/{gw}"), &other)
        .await
        .expect(404);
    p.patch(
        &format!("/api/v1/gateways/{gw}"),
        &other,
        json!({ "name": "x" }),
    )
    .await
    .expect(404);
    // Referencing another account's environment is the same 404.
    let their_api = p
        .post(
            "/api/v1/apis",
            &other,
            json!({ "name": "t", "version": "1", "api_type": "REST", "base_path": "t",
                    "upstream_targets": ["http://127.0.0.1:9"] }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    p.post(
        &format!("/api/v1/apis/{their_api}/deployments"),
        &other,
        json!({ "environment_id": env }),
    )
    .await
    .expect(404);
    let list = p.get("/api/v1/gateways", &other).await.expect(200);
    assert_eq!(list["gateways"], json!([]));
    assert_eq!(list["unattached_environments"], json!([]));
    // Their gateway id in our account is unknown too; a malformed id is just as unknown.
    p.get("/api/v1/gateways/not-a-uuid", &p.owner)
        .await
        .expect(404);
}

async fn gateway_lifecycle(p: TestPlatform) {
    let created = p
        .post("/api/v1/gateways", &p.owner, json!({ "name": "edge-1" }))
        .await
        .expect(201);
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["name"], "edge-1");
    assert_eq!(
        created["status"],
        json!({ "state": "offline", "variant": "not_running" })
    );
    assert_eq!(created["issues"][0]["code"], "NO_NODES");
    // No node has reported where it listens: no URL, never the bind address default.
    assert_eq!(created["gateway_url"], serde_json::Value::Null);
    let got = p
        .get(&format!("/api/v1/gateways/{id}"), &p.owner)
        .await
        .expect(200);
    assert_eq!(got["id"], created["id"]);
    p.get(&format!("/api/v1/gateways/{id}/nodes"), &p.owner)
        .await
        .expect(200);
    let renamed = p
        .patch(
            &format!("/api/v1/gateways/{id}"),
            &p.owner,
            json!({ "name": "edge-2" }),
        )
        .await
        .expect(200);
    assert_eq!(renamed["name"], "edge-2");
    // Names: unique among live gateways, 1–80 chars, no forbidden characters.
    let dup = p
        .post("/api/v1/gateways", &p.owner, json!({ "name": "edge-2" }))
        .await;
    assert_eq!(
        (dup.status.as_u16(), dup.code()),
        (409, "GATEWAY_NAME_TAKEN")
    );
    let bad = p
        .post("/api/v1/gateways", &p.owner, json!({ "name": "a/b" }))
        .await;
    assert_eq!(
        (bad.status.as_u16(), bad.code(), bad.field()),
        (422, "GATEWAY_NAME_INVALID_CHARACTER", "name")
    );
    let long = p
        .post(
            "/api/v1/gateways",
            &p.owner,
            json!({ "name": "x".repeat(81) }),
        )
        .await;
    assert_eq!(
        (long.status.as_u16(), long.code()),
        (422, "GATEWAY_NAME_TOO_LONG")
    );
    // Delete: 204, then gone from the enabled view, never changeable, name free again.
    p.delete(&format!("/api/v1/gateways/{id}"), &p.owner)
        .await
        .expect(204);
    p.delete(&format!("/api/v1/gateways/{id}"), &p.owner)
        .await
        .expect(404);
    p.patch(
        &format!("/api/v1/gateways/{id}"),
        &p.owner,
        json!({ "name": "again" }),
    )
    .await
    .expect(404);
    let gone = p
        .get(&format!("/api/v1/gateways/{id}"), &p.owner)
        .await
        .expect(200);
    assert_eq!(
        gone["status"],
        json!({ "state": "deleted", "variant": null })
    );
    assert_eq!(gone["issues"], json!([]));
    assert!(gone["deleted_at"].is_string());
    p.gateway("edge-2").await;
}

async fn gateways_list_filters_and_sorts(p: TestPlatform) {
    let b = p.gateway("Bravo").await;
    let a = p.gateway("alpha").await;
    let _c = p.gateway("charlie").await;
    p.environment("prod-eu", Some(&a)).await;
    p.environment("test-us", Some(&b)).await;
    p.environment("zulu-free", None).await;
    p.environment("Echo-free", None).await;
    let list = p.get("/api/v1/gateways", &p.owner).await.expect(200);
    assert_eq!(ids(&list, "gateways"), ["alpha", "Bravo", "charlie"]);
    assert_eq!(
        ids(&list, "unattached_environments"),
        ["Echo-free", "zulu-free"]
    );
    let row = &list["gateways"][0];
    for key in [
        "id",
        "name",
        "status",
        "issues",
        "environments",
        "host_name",
        "gateway_url",
    ] {
        assert!(row.get(key).is_some(), "row lacks {key}: {row}");
    }
    assert_eq!(row["environments"][0]["name"], "prod-eu");
    assert!(row["environments"][0]["id"].is_string());
    let desc = p
        .get("/api/v1/gateways?sort=name&order=desc", &p.owner)
        .await
        .expect(200);
    assert_eq!(ids(&desc, "gateways"), ["charlie", "Bravo", "alpha"]);
    for sort in ["status", "host_name", "gateway_url"] {
        let sorted = p
            .get(&format!("/api/v1/gateways?sort={sort}&order=asc"), &p.owner)
            .await
            .expect(200);
        // Equal keys fall back to the name.
        assert_eq!(
            ids(&sorted, "gateways"),
            ["alpha", "Bravo", "charlie"],
            "{sort}"
        );
    }
    // q matches gateway names or environment names, case-insensitively, and filters the
    // unattached row too.
    let by_env = p.get("/api/v1/gateways?q=PROD", &p.owner).await.expect(200);
    assert_eq!(ids(&by_env, "gateways"), ["alpha"]);
    assert_eq!(
        ids(&by_env, "unattached_environments"),
        Vec::<String>::new()
    );
    let by_name = p.get("/api/v1/gateways?q=rav", &p.owner).await.expect(200);
    assert_eq!(ids(&by_name, "gateways"), ["Bravo"]);
    let free = p.get("/api/v1/gateways?q=free", &p.owner).await.expect(200);
    assert_eq!(ids(&free, "gateways"), Vec::<String>::new());
    assert_eq!(
        ids(&free, "unattached_environments"),
        ["Echo-free", "zulu-free"]
    );
    // Bad parameters name themselves.
    for (query, field) in [
        ("sort=size", "sort"),
        ("order=up", "order"),
        ("view=all", "view"),
        ("page=2", "page"),
    ] {
        let bad = p.get(&format!("/api/v1/gateways?{query}"), &p.owner).await;
        assert_eq!((bad.status.as_u16(), bad.field()), (400, field), "{query}");
    }
}

async fn deleted_gateways_detach_environments(p: TestPlatform) {
    let gw = p.gateway("doomed").await;
    let env = p.environment("orphan", Some(&gw)).await;
    p.delete(&format!("/api/v1/gateways/{gw}"), &p.owner)
        .await
        .expect(204);
    let e = p
        .get(&format!("/api/v1/environments/{env}"), &p.owner)
        .await
        .expect(200);
    assert_eq!(e["gateway_id"], Value::Null);
    let enabled = p.get("/api/v1/gateways", &p.owner).await.expect(200);
    assert_eq!(ids(&enabled, "gateways"), Vec::<String>::new());
    assert_eq!(ids(&enabled, "unattached_environments"), ["orphan"]);
    let deleted = p
        .get("/api/v1/gateways?view=deleted", &p.owner)
        .await
        .expect(200);
    assert_eq!(ids(&deleted, "gateways"), ["doomed"]);
    let row = &deleted["gateways"][0];
    assert_eq!(
        row["status"],
        json!({ "state": "deleted", "variant": null })
    );
    assert_eq!(row["issues"], json!([]));
    // A deleted gateway takes no environments.
    p.put(
        &format!("/api/v1/environments/{env}/gateway"),
        &p.owner,
        json!({ "gateway_id": gw }),
    )
    .await
    .expect(404);
}

async fn environment_defaults_and_configuration(p: TestPlatform) {
    let env = p
        .post(
            "/api/v1/environments",
            &p.owner,
            json!({ "name": "Production", "classification": "production" }),
        )
        .await
        .expect(201);
    assert_eq!(env["rest_path"], "ws/rest");
    assert_eq!(env["soap_path"], "ws/soap");
    assert_eq!(env["soap12_path"], "ws/soap12");
    assert_eq!(env["odata_path"], "ws/odata");
    assert_eq!(env["classification"], "production");
    assert_eq!(env["gateway_id"], Value::Null);
    let id = env["id"].as_str().unwrap();
    let path = format!("/api/v1/environments/{id}/configuration");
    let saved = p
        .put(
            &path,
            &p.owner,
            json!({ "rest_path": "api/rest", "soap_path": "api/soap",
            "soap12_path": "api/soap12", "odata_path": "api/café" }),
        )
        .await
        .expect(200);
    assert_eq!(saved["rest_path"], "api/rest");
    // Characters outside the RFC 3986 path set are percent-encoded on save.
    assert_eq!(saved["odata_path"], "api/caf%C3%A9");
    let conf = p.get(&path, &p.owner).await.expect(200);
    assert_eq!(conf["soap12_path"], "api/soap12");
    let renamed = p
        .patch(
            &format!("/api/v1/environments/{id}"),
            &p.owner,
            json!({ "name": "Prod", "classification": "test" }),
        )
        .await
        .expect(200);
    assert_eq!(
        (renamed["name"].as_str(), renamed["classification"].as_str()),
        (Some("Prod"), Some("test"))
    );
    let list = p.get("/api/v1/environments", &p.owner).await.expect(200);
    assert_eq!(ids(&list, "environments"), ["Prod"]);
    p.delete(&format!("/api/v1/environments/{id}"), &p.owner)
        .await
        .expect(204);
    p.get(&format!("/api/v1/environments/{id}"), &p.owner)
        .await
        .expect(404);
}

async fn every_path_rule_has_its_code(p: TestPlatform) {
    let id = p.environment("rules", None).await;
    let path = format!("/api/v1/environments/{id}/configuration");
    let ok = json!({ "rest_path": "ws/rest", "soap_path": "ws/soap", "soap12_path": "ws/soap12", "odata_path": "ws/odata" });
    for (field, value, code) in [
        ("rest_path", "", "ENVIRONMENT_PATH_EMPTY"),
        ("soap_path", "/ws/soap", "ENVIRONMENT_PATH_LEADING_SLASH"),
        (
            "soap12_path",
            "ws/soap12/",
            "ENVIRONMENT_PATH_TRAILING_SLASH",
        ),
        ("odata_path", "ws/o data", "ENVIRONMENT_PATH_SPACES"),
        (
            "rest_path",
            "ws//rest",
            "ENVIRONMENT_PATH_CONSECUTIVE_SLASHES",
        ),
        ("rest_path", "ws/../rest", "ENVIRONMENT_PATH_RELATIVE"),
        ("rest_path", "ws/./rest", "ENVIRONMENT_PATH_RELATIVE"),
        ("rest_path", "ws/%zz", "ENVIRONMENT_PATH_INVALID_ENCODED"),
        ("odata_path", "ws/rest", "ENVIRONMENT_PATH_DUPLICATE"),
    ] {
        let mut body = ok.clone();
        body[field] = json!(value);
        let a = p.put(&path, &p.owner, body).await;
        assert_eq!(
            (a.status.as_u16(), a.code(), a.field()),
            (422, code, field),
            "{field}={value:?}: {:#}",
            a.body
        );
    }
    // Nothing was saved by the refused attempts.
    let conf = p.get(&path, &p.owner).await.expect(200);
    for field in ["rest_path", "soap_path", "soap12_path", "odata_path"] {
        assert_eq!(conf[field], ok[field], "{field}");
    }
    assert_eq!(conf["example_urls"], json!([]), "no API deployed");
    assert_eq!(conf["warnings"], json!([]), "unattached");
}

async fn paths_unique_on_gateway(p: TestPlatform) {
    let gw = p.gateway("shared").await;
    let first = p.environment("first", Some(&gw)).await;
    let second = p.environment("second", None).await;
    // Both have the default paths: attaching the second to the same gateway is refused.
    let a = p
        .put(
            &format!("/api/v1/environments/{second}/gateway"),
            &p.owner,
            json!({ "gateway_id": gw }),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code()),
        (422, "ENVIRONMENT_PATH_NOT_UNIQUE_ON_GATEWAY")
    );
    let moved = json!({ "rest_path": "b/rest", "soap_path": "b/soap", "soap12_path": "b/soap12", "odata_path": "b/odata" });
    p.put(
        &format!("/api/v1/environments/{second}/configuration"),
        &p.owner,
        moved,
    )
    .await
    .expect(200);
    p.put(
        &format!("/api/v1/environments/{second}/gateway"),
        &p.owner,
        json!({ "gateway_id": gw }),
    )
    .await
    .expect(200);
    // Now a change of the first environment's paths onto the second's is refused.
    let clash = json!({ "rest_path": "b/rest", "soap_path": "ws/soap", "soap12_path": "ws/soap12", "odata_path": "ws/odata" });
    let a = p
        .put(
            &format!("/api/v1/environments/{first}/configuration"),
            &p.owner,
            clash,
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code(), a.field()),
        (422, "ENVIRONMENT_PATH_NOT_UNIQUE_ON_GATEWAY", "rest_path")
    );
    // Detach works.
    let detached = p
        .put(
            &format!("/api/v1/environments/{second}/gateway"),
            &p.owner,
            json!({ "gateway_id": null }),
        )
        .await
        .expect(200);
    assert_eq!(detached["gateway_id"], Value::Null);
}

async fn conflicting_deployment_is_refused_naming_the_apis(p: TestPlatform) {
    let gw = p.gateway("routes").await;
    let env_a = p.environment("env-a", Some(&gw)).await;
    let env_b = p.environment("env-b", None).await;
    p.put(
        &format!("/api/v1/environments/{env_b}/configuration"),
        &p.owner,
        json!({ "rest_path": "ws", "soap_path": "b/soap", "soap12_path": "b/soap12", "odata_path": "b/odata" }),
    )
    .await
    .expect(200);
    p.put(
        &format!("/api/v1/environments/{env_b}/gateway"),
        &p.owner,
        json!({ "gateway_id": gw }),
    )
    .await
    .expect(200);
    let orders = p.api("Orders", "mypath").await;
    let shadow = p.api("Shadow", "rest/mypath").await;
    let dep = p
        .post(
            &format!("/api/v1/apis/{orders}/deployments"),
            &p.owner,
            json!({ "environment_id": env_a }),
        )
        .await
        .expect(201);
    // On a gateway, but no node has applied it (there is none): pending.
    assert_eq!(dep["status"], "pending");
    // env-a ws/rest + mypath and env-b ws + rest/mypath are the same prefix.
    let refused = p
        .post(
            &format!("/api/v1/apis/{shadow}/deployments"),
            &p.owner,
            json!({ "environment_id": env_b }),
        )
        .await;
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (422, "API_PATH_CONFLICT")
    );
    let details = &refused.body["error"]["details"];
    assert_eq!(details["apis"], json!(["Orders", "Shadow"]));
    assert_eq!(details["conflicts"][0]["prefix"], "/ws/rest/mypath");
    assert_eq!(details["conflicts"][0]["existing"]["api_name"], "Orders");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Orders") && message.contains("Shadow"),
        "{message}"
    );
    // A custom path avoids the conflict.
    p.post(
        &format!("/api/v1/apis/{shadow}/deployments"),
        &p.owner,
        json!({ "environment_id": env_b, "custom_path": "shadow/v1" }),
    )
    .await
    .expect(201);
    // The configuration names each deployed API's example URL, and warns that env-b's `ws`
    // contains env-a's paths (its APIs can receive env-a's unmatched URLs).
    let conf_a = p
        .get(
            &format!("/api/v1/environments/{env_a}/configuration"),
            &p.owner,
        )
        .await
        .expect(200);
    assert_eq!(conf_a["example_urls"][0]["api"], "Orders", "{conf_a:#}");
    assert!(
        conf_a["example_urls"][0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/ws/rest/mypath"),
        "{conf_a:#}"
    );
    let nested: Vec<&str> = conf_a["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(
        !nested.is_empty() && nested.iter().all(|c| *c == "ENVIRONMENT_PATH_NESTED"),
        "{conf_a:#}"
    );
    assert_eq!(conf_a["warnings"][0]["severity"], "WARNING");
    let conf_b = p
        .get(
            &format!("/api/v1/environments/{env_b}/configuration"),
            &p.owner,
        )
        .await
        .expect(200);
    assert!(
        conf_b["example_urls"][0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/shadow/v1"),
        "{conf_b:#}"
    );
    // Deploying twice is a conflict of its own.
    let twice = p
        .post(
            &format!("/api/v1/apis/{orders}/deployments"),
            &p.owner,
            json!({ "environment_id": env_a }),
        )
        .await;
    assert_eq!(
        (twice.status.as_u16(), twice.code()),
        (409, "ALREADY_DEPLOYED")
    );
    // A change of environment paths that would create the conflict is refused the same way.
    let moved = p
        .put(
            &format!("/api/v1/environments/{env_a}/configuration"),
            &p.owner,
            json!({ "rest_path": "shadow", "soap_path": "ws/soap", "soap12_path": "ws/soap12", "odata_path": "ws/odata" }),
        )
        .await;
    assert_eq!(moved.status, 200, "{:#}", moved.body);
    let base = p
        .patch(
            &format!("/api/v1/apis/{orders}"),
            &p.owner,
            json!({ "base_path": "v1" }),
        )
        .await;
    assert_eq!(
        (base.status.as_u16(), base.code()),
        (422, "API_PATH_CONFLICT")
    );
    assert_eq!(base.field(), "base_path");
    let list = p
        .get(&format!("/api/v1/apis/{orders}/deployments"), &p.owner)
        .await
        .expect(200);
    let dep_id = list["deployments"][0]["id"].as_str().unwrap();
    p.delete(
        &format!("/api/v1/apis/{orders}/deployments/{dep_id}"),
        &p.owner,
    )
    .await
    .expect(204);
    p.patch(
        &format!("/api/v1/apis/{orders}"),
        &p.owner,
        json!({ "base_path": "v1" }),
    )
    .await
    .expect(200);
    // Refused changes are in the audit log as failed, with the rule's code.
    let audit = p.get("/api/v1/audit?limit=500", &p.owner).await.expect(200);
    let failed: Vec<(&str, &str)> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "failed")
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["details"]["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        failed.contains(&("deployment.create", "API_PATH_CONFLICT")),
        "{failed:?}"
    );
    assert!(
        failed.contains(&("api.update", "API_PATH_CONFLICT")),
        "{failed:?}"
    );
}

async fn apis_crud(p: TestPlatform) {
    let created = p
        .post(
            "/api/v1/apis",
            &p.owner,
            json!({ "name": "Billing", "version": "2.0", "api_type": "SOAP", "base_path": "billing",
                    "upstream_targets": ["http://10.0.0.5:8080/billing", "https://b.example.com"],
                    "health_check_url": "http://10.0.0.5:8080/health" }),
        )
        .await
        .expect(201);
    assert_eq!(created["api_type"], "SOAP");
    assert_eq!(created["upstream_targets"].as_array().unwrap().len(), 2);
    let id = created["id"].as_str().unwrap();
    let updated = p
        .patch(
            &format!("/api/v1/apis/{id}"),
            &p.owner,
            json!({ "version": "2.1", "health_check_url": null }),
        )
        .await
        .expect(200);
    assert_eq!(updated["version"], "2.1");
    assert_eq!(updated["health_check_url"], Value::Null);
    assert_eq!(updated["base_path"], "billing");
    let list = p.get("/api/v1/apis", &p.owner).await.expect(200);
    assert_eq!(ids(&list, "apis"), ["Billing"]);
    for (body, code, field) in [
        (
            json!({ "base_path": "/x" }),
            "API_BASE_PATH_LEADING_SLASH",
            "base_path",
        ),
        (
            json!({ "upstream_targets": [] }),
            "UPSTREAM_TARGETS_EMPTY",
            "upstream_targets",
        ),
        (json!({ "name": "" }), "API_NAME_EMPTY", "name"),
    ] {
        let a = p.patch(&format!("/api/v1/apis/{id}"), &p.owner, body).await;
        assert_eq!((a.status.as_u16(), a.code(), a.field()), (422, code, field));
    }
    let bad_type = p
        .post(
            "/api/v1/apis",
            &p.owner,
            json!({ "name": "x", "version": "1", "api_type": "GRPC",
            "base_path": "x", "upstream_targets": ["http://a"] }),
        )
        .await;
    assert_eq!(
        (bad_type.status.as_u16(), bad_type.field()),
        (400, "api_type")
    );
    p.delete(&format!("/api/v1/apis/{id}"), &p.owner)
        .await
        .expect(204);
    p.get(&format!("/api/v1/apis/{id}"), &p.owner)
        .await
        .expect(404);
}

async fn install_tokens(p: TestPlatform) {
    let t = p
        .post(
            "/api/v1/install-tokens",
            &p.owner,
            json!({ "valid_for_minutes": 30 }),
        )
        .await
        .expect(201);
    assert!(t["token"].as_str().unwrap().starts_with("sy_inst_"));
    let expires = t["expires_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{expires}"
    );
    p.post(
        "/api/v1/install-tokens",
        &p.owner,
        json!({ "valid_for_minutes": 1440 }),
    )
    .await
    .expect(201);
    for minutes in [29, 1441, 0, -5] {
        let a = p
            .post(
                "/api/v1/install-tokens",
                &p.owner,
                json!({ "valid_for_minutes": minutes }),
            )
            .await;
        assert_eq!(
            (a.status.as_u16(), a.code(), a.field()),
            (
                422,
                "INSTALL_TOKEN_VALIDITY_OUT_OF_RANGE",
                "valid_for_minutes"
            ),
            "{minutes}"
        );
    }
    let wrong = p
        .post(
            "/api/v1/install-tokens",
            &p.owner,
            json!({ "valid_for_minutes": "soon" }),
        )
        .await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.field()),
        (400, "valid_for_minutes")
    );
    let viewer = p.user("v", "viewer").await;
    p.post(
        "/api/v1/install-tokens",
        &viewer,
        json!({ "valid_for_minutes": 60 }),
    )
    .await
    .expect(403);
    let id = t["id"].as_str().unwrap();
    p.delete(&format!("/api/v1/install-tokens/{id}"), &p.owner)
        .await
        .expect(204);
}

async fn personal_tokens(p: TestPlatform) {
    let created = p
        .post(
            "/api/v1/tokens",
            &p.owner,
            json!({ "name": "ci", "expires_in_days": 7 }),
        )
        .await
        .expect(201);
    let secret = created["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("sy_pat_"));
    assert!(created["expires_at"].is_string());
    p.get("/api/v1/gateways", &secret).await.expect(200);
    let list = p.get("/api/v1/tokens", &p.owner).await.expect(200);
    let text = list.to_string();
    assert!(!text.contains(&secret), "a listing shows a secret");
    assert!(ids(&list, "tokens").contains(&"ci".to_string()));
    let id = created["id"].as_str().unwrap();
    p.delete(&format!("/api/v1/tokens/{id}"), &p.owner)
        .await
        .expect(204);
    p.get("/api/v1/gateways", &secret).await.expect(401);
    let bad = p
        .post(
            "/api/v1/tokens",
            &p.owner,
            json!({ "name": "x", "expires_in_days": 0 }),
        )
        .await;
    assert_eq!((bad.status.as_u16(), bad.field()), (422, "expires_in_days"));
}

async fn users_and_roles(p: TestPlatform) {
    let created = p
        .post(
            "/api/v1/users",
            &p.owner,
            json!({ "name": "Ann", "email": "ann@example.com", "role": "viewer" }),
        )
        .await
        .expect(201);
    let id = created["id"].as_str().unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    p.post("/api/v1/gateways", &token, json!({ "name": "g" }))
        .await
        .expect(403);
    let promoted = p
        .patch(
            &format!("/api/v1/users/{id}"),
            &p.owner,
            json!({ "role": "admin" }),
        )
        .await
        .expect(200);
    assert_eq!(promoted["role"], "admin");
    p.post("/api/v1/gateways", &token, json!({ "name": "g" }))
        .await
        .expect(201);
    let users = p.get("/api/v1/users", &p.owner).await.expect(200);
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    let bad_role = p
        .post(
            "/api/v1/users",
            &p.owner,
            json!({ "name": "b", "role": "god" }),
        )
        .await;
    assert_eq!((bad_role.status.as_u16(), bad_role.field()), (400, "role"));
    let dup = p
        .post(
            "/api/v1/users",
            &p.owner,
            json!({ "name": "Ann2", "email": "ann@example.com", "role": "viewer" }),
        )
        .await;
    assert_eq!(dup.status, 409);
    // Deleting a user removes their tokens; an owner cannot delete themselves.
    p.delete(&format!("/api/v1/users/{id}"), &p.owner)
        .await
        .expect(204);
    p.get("/api/v1/gateways", &token).await.expect(401);
    p.get(&format!("/api/v1/users/{id}"), &p.owner)
        .await
        .expect(404);
    p.delete(&format!("/api/v1/users/{id}"), &p.owner)
        .await
        .expect(404);
    let me = p.get("/api/v1/me", &p.owner).await.expect(200);
    let me_id = me["id"].as_str().unwrap();
    p.delete(&format!("/api/v1/users/{me_id}"), &p.owner)
        .await
        .expect(409);
}

async fn bad_input_names_the_field(p: TestPlatform) {
    let raw = |body: &str| {
        p.call(
            Method::POST,
            "/api/v1/gateways",
            Some(&p.owner),
            Some(body.as_bytes().to_vec()),
        )
    };
    let malformed = raw(r#"{"name": "x""#).await;
    assert_eq!(
        (malformed.status.as_u16(), malformed.code()),
        (400, "INVALID_JSON")
    );
    let unknown = raw(r#"{"name": "x", "colour": "red"}"#).await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.code(), unknown.field()),
        (400, "UNKNOWN_FIELD", "colour")
    );
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
    let wrong = raw(r#"{"name": 42}"#).await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.code(), wrong.field()),
        (400, "INVALID_FIELD", "name")
    );
    let missing = raw(r#"{}"#).await;
    assert_eq!(
        (missing.status.as_u16(), missing.code(), missing.field()),
        (400, "MISSING_FIELD", "name")
    );
    let not_object = raw(r#""gw""#).await;
    assert_eq!(not_object.status, 400);
    // Over 1 MiB.
    let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(1024 * 1024 + 1));
    let big = raw(&huge).await;
    assert_eq!(
        (big.status.as_u16(), big.code()),
        (413, "PAYLOAD_TOO_LARGE")
    );
    // Environment configuration: wrong type and unknown field.
    let env = p.environment("e", None).await;
    let conf = format!("/api/v1/environments/{env}/configuration");
    let a = p
        .put(
            &conf,
            &p.owner,
            json!({ "rest_path": 1, "soap_path": "a", "soap12_path": "b", "odata_path": "c" }),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.field()), (400, "rest_path"));
    let a = p
        .put(&conf, &p.owner, json!({ "rest_path": "r", "soap_path": "a", "soap12_path": "b", "odata_path": "c", "x_path": "d" }))
        .await;
    assert_eq!((a.status.as_u16(), a.field()), (400, "x_path"));
    let a = p
        .post(
            "/api/v1/environments",
            &p.owner,
            json!({ "name": "n", "classification": "staging" }),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.field()), (400, "classification"));
    // Curl's default form content type still parses as JSON.
    let form = p
        .client
        .post(format!("{}/api/v1/gateways", p.base))
        .bearer_auth(&p.owner)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"name":"from-curl"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 201);
}

async fn mutations_write_audit_records(p: TestPlatform) {
    let gw = p.gateway("audited").await;
    let env = p.environment("audited-env", Some(&gw)).await;
    p.delete(&format!("/api/v1/gateways/{gw}"), &p.owner)
        .await
        .expect(204);
    let audit = p.get("/api/v1/audit", &p.owner).await.expect(200);
    let records = audit["records"].as_array().unwrap();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in [
        "gateway.create",
        "environment.create",
        "environment.set_gateway",
        "gateway.delete",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    let delete = records
        .iter()
        .find(|r| r["action"] == "gateway.delete")
        .unwrap();
    assert_eq!(delete["result"], "allowed");
    assert_eq!(delete["target_id"], gw.as_str());
    assert_eq!(delete["actor_kind"], "user");
    assert!(delete["details"].to_string().contains(&env), "{delete}");
    // Newest first, and pages follow the cursor.
    let page = p.get("/api/v1/audit?limit=2", &p.owner).await.expect(200);
    assert_eq!(page["records"].as_array().unwrap().len(), 2);
    assert_eq!(page["records"][0]["action"], "gateway.delete");
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = p
        .get(&format!("/api/v1/audit?limit=2&cursor={cursor}"), &p.owner)
        .await
        .expect(200);
    assert_eq!(next["records"][0]["id"], records[2]["id"]);
}

async fn unknown_routes_use_the_envelope(p: TestPlatform) {
    let a = p.get("/api/v1/nope", &p.owner).await;
    assert_eq!((a.status.as_u16(), a.code()), (404, "NOT_FOUND"));
    let a = p
        .call(Method::PUT, "/api/v1/gateways", Some(&p.owner), None)
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (405, "METHOD_NOT_ALLOWED"));
}

async fn database_down_is_503(p: TestPlatform) {
    p.get("/api/v1/gateways", &p.owner).await.expect(200);
    // Closing the pool is what a lost database looks like from here: every acquire fails.
    p.db.store.close().await;
    for _ in 0..3 {
        let a = p.get("/api/v1/gateways", &p.owner).await;
        assert_eq!(
            (a.status.as_u16(), a.code()),
            (503, "DATABASE_UNAVAILABLE"),
            "{:#}",
            a.body
        );
        assert_eq!(
            a.body["error"]["message"],
            "database unavailable, retry shortly"
        );
        let w = p
            .post("/api/v1/gateways", &p.owner, json!({ "name": "x" }))
            .await;
        assert_eq!(w.status, 503);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_endpoint() {
    let p = TestPlatform::start(Backend::Sqlite).await.unwrap();
    let doc = p
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/accounts",
        "/api/v1/accounts/{id}",
        "/api/v1/me",
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/tokens",
        "/api/v1/tokens/{id}",
        "/api/v1/install-tokens",
        "/api/v1/install-tokens/{id}",
        "/api/v1/gateways",
        "/api/v1/gateways/{id}",
        "/api/v1/gateways/{id}/nodes",
        "/api/v1/environments",
        "/api/v1/environments/{id}",
        "/api/v1/environments/{id}/configuration",
        "/api/v1/environments/{id}/gateway",
        "/api/v1/apis",
        "/api/v1/apis/{id}",
        "/api/v1/apis/{id}/deployments",
        "/api/v1/apis/{id}/deployments/{deployment_id}",
        "/api/v1/audit",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
}

/// PostgreSQL going away under a running platform (the connection cut, new connections
/// refused): 503 with the clear message, never a panic, and back to 200 never needed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connection_lost_is_503() {
    let Some(base) = support::postgres_url() else {
        eprintln!("SWITCHYARD_TEST_POSTGRES_URL not set; skipped");
        return;
    };
    let proxy = support::CuttableProxy::start(support::authority_of(&base)).await;
    let via = proxy.addr.to_string();
    let db = support::TestDb::postgres_via(Some(&via))
        .await
        .expect("postgres");
    let p = TestPlatform::start_on(db).await;
    p.get("/api/v1/gateways", &p.owner).await.expect(200);
    proxy.cut();
    for _ in 0..3 {
        let a = p.get("/api/v1/gateways", &p.owner).await;
        assert_eq!(
            (a.status.as_u16(), a.code()),
            (503, "DATABASE_UNAVAILABLE"),
            "{:#}",
            a.body
        );
        assert_eq!(
            a.body["error"]["message"],
            "database unavailable, retry shortly"
        );
    }
}

async fn lists_page_with_cursors(p: TestPlatform) {
    for name in ["a", "b", "c"] {
        p.environment(name, None).await;
    }
    let first = p
        .get("/api/v1/environments?limit=2", &p.owner)
        .await
        .expect(200);
    assert_eq!(ids(&first, "environments"), ["a", "b"]);
    let cursor = first["next_cursor"].as_str().expect("next_cursor");
    let second = p
        .get(
            &format!("/api/v1/environments?limit=2&cursor={cursor}"),
            &p.owner,
        )
        .await
        .expect(200);
    assert_eq!(ids(&second, "environments"), ["c"]);
    assert_eq!(second["next_cursor"], Value::Null);
    let all = p.get("/api/v1/environments", &p.owner).await.expect(200);
    assert_eq!(ids(&all, "environments"), ["a", "b", "c"]);
    for query in ["limit=0", "limit=x", "cursor=nope", "sort=name"] {
        let a = p
            .get(&format!("/api/v1/environments?{query}"), &p.owner)
            .await;
        assert_eq!(a.status, 400, "{query}");
    }
}

/// A client whose connections come from `source` (any 127.0.0.0/8 address reaches the
/// platform's 127.0.0.1 listener on Linux).
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().expect("address"))
        .build()
        .expect("client")
}

/// Sends `send()` until the platform answers 429; every earlier answer must be `before`.
/// Answers the 429 and how many requests it took.
async fn until_throttled<F, Fut>(before: u16, mut send: F) -> (reqwest::Response, u32)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let limit = platform::throttle::FailurePolicy::SECRETS_PER_SOURCE.max_failures;
    for attempt in 1..=limit + 1 {
        let resp = send().await.expect("request");
        if resp.status() == 429 {
            return (resp, attempt);
        }
        assert_eq!(resp.status().as_u16(), before, "attempt {attempt}");
    }
    panic!("never throttled after {} attempts", limit + 1);
}

#[track_caller]
fn assert_throttled(resp: &reqwest::Response, attempts: u32) {
    let policy = platform::throttle::FailurePolicy::SECRETS_PER_SOURCE;
    assert_eq!(
        attempts, policy.max_failures,
        "the failure that uses up the window"
    );
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=policy.window.as_secs()).contains(&retry), "{retry}");
}

async fn wrong_secrets_are_throttled_per_source(p: TestPlatform) {
    let wrong_token = || format!("sy_pat_{}", "0".repeat(64));
    // Bearer tokens: wrong ones from 127.0.0.2 until 429, with Retry-After.
    let attacker = client_from("127.0.0.2");
    let url = format!("{}/api/v1/gateways", p.base);
    let (resp, attempts) =
        until_throttled(401, || attacker.get(&url).bearer_auth(wrong_token()).send()).await;
    assert_throttled(&resp, attempts);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TOO_MANY_REQUESTS");
    // Over its limit, the source is refused even with the right token ...
    let refused = attacker
        .get(&url)
        .bearer_auth(&p.owner)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    // ... while the right token from another source works, and so do wrong ones (401).
    let other = client_from("127.0.0.1");
    let ok = other.get(&url).bearer_auth(&p.owner).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let wrong = other
        .get(&url)
        .bearer_auth(wrong_token())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // Install tokens on the join, from 127.0.0.3; a right one from elsewhere still joins.
    let join_url = format!("{}/api/v1/nodes/join", p.base);
    let join_body = |token: &str| {
        json!({
            "protocol_version": 1,
            "install_token": token,
            "gateway_name": "edge-join",
            "node_id": uuid::Uuid::now_v7().to_string(),
            "host_name": "host-a",
            "runtime_version": "1.0.0",
        })
    };
    let joiner = client_from("127.0.0.3");
    let (resp, attempts) = until_throttled(401, || {
        joiner
            .post(&join_url)
            .json(&join_body(&format!("sy_inst_{}", "1".repeat(64))))
            .send()
    })
    .await;
    assert_throttled(&resp, attempts);
    let install = p
        .post(
            "/api/v1/install-tokens",
            &p.owner,
            json!({ "valid_for_minutes": 30 }),
        )
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = joiner
        .post(&join_url)
        .json(&join_body(&install))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let joined = other
        .post(&join_url)
        .json(&join_body(&install))
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 201);

    // Node credentials on the link, from 127.0.0.4 (refused before the upgrade).
    let link_url = format!("{}/api/v1/link", p.base);
    let node = client_from("127.0.0.4");
    let (resp, attempts) = until_throttled(401, || {
        node.get(&link_url)
            .header("x-switchyard-protocol", "1")
            .bearer_auth(format!("sy_node_{}", "2".repeat(64)))
            .send()
    })
    .await;
    assert_throttled(&resp, attempts);

    // Each throttled source left one platform audit record naming it and the secret.
    let records = p.db.store.platform_audit_records(None, 100).await.unwrap();
    let mut throttled: Vec<(String, String)> = records
        .iter()
        .filter(|r| r.action == "auth.throttled")
        .map(|r| {
            assert_eq!(r.result, store::AuditResult::Denied);
            (
                r.target
                    .as_ref()
                    .and_then(|t| t.id.clone())
                    .unwrap_or_default(),
                r.details["secret"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    throttled.sort();
    assert_eq!(
        throttled,
        [
            ("127.0.0.2".to_string(), "api_token".to_string()),
            ("127.0.0.3".to_string(), "install_token".to_string()),
            ("127.0.0.4".to_string(), "node_credential".to_string()),
        ]
    );
}

async fn emails_are_unique_within_an_account_only(p: TestPlatform) {
    let other = p
        .post("/api/v1/accounts", &p.admin, json!({ "name": "other" }))
        .await
        .expect(201)["owner_token"]
        .as_str()
        .unwrap()
        .to_string();
    let body = |name: &str, email: &str| json!({ "name": name, "role": "viewer", "email": email });
    // Another account's users never change the answer: first in B, then the same in A.
    p.post("/api/v1/users", &other, body("Bea", "same@example.com"))
        .await
        .expect(201);
    p.post("/api/v1/users", &p.owner, body("Ann", "Same@Example.com"))
        .await
        .expect(201);
    // Within one account an address is one user.
    let dup = p
        .post("/api/v1/users", &p.owner, body("Ann 2", "SAME@example.com"))
        .await;
    assert_eq!(
        (dup.status.as_u16(), dup.code(), dup.field()),
        (409, "USER_EMAIL_TAKEN", "email")
    );
    let dup = p
        .post("/api/v1/users", &other, body("Bea 2", "same@example.com"))
        .await;
    assert_eq!((dup.status.as_u16(), dup.code()), (409, "USER_EMAIL_TAKEN"));
    // Each account lists its own user only.
    let mine = p.get("/api/v1/users", &p.owner).await.expect(200);
    let theirs = p.get("/api/v1/users", &other).await.expect(200);
    let with_email = |list: &Value| {
        list["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| {
                u["email"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case("same@example.com"))
            })
            .map(|u| u["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(with_email(&mine), ["Ann"]);
    assert_eq!(with_email(&theirs), ["Bea"]);
}

async fn accounts_of_others_are_not_found(p: TestPlatform) {
    let other = p
        .post("/api/v1/accounts", &p.admin, json!({ "name": "other" }))
        .await
        .expect(201);
    let other_id = other["id"].as_str().unwrap();
    let me = p.get("/api/v1/me", &p.owner).await.expect(200);
    let mine = me["account_id"].as_str().unwrap();
    // Its own account is shown to a member, any role.
    let viewer = p.user("Vic", "viewer").await;
    for token in [&p.owner, &viewer] {
        let got = p
            .get(&format!("/api/v1/accounts/{mine}"), token)
            .await
            .expect(200);
        assert_eq!(got["name"], "default");
    }
    // Another account's id answers exactly like one that does not exist.
    let missing = uuid::Uuid::now_v7();
    for id in [
        other_id.to_string(),
        missing.to_string(),
        "nope".to_string(),
    ] {
        let a = p.get(&format!("/api/v1/accounts/{id}"), &p.owner).await;
        assert_eq!((a.status.as_u16(), a.code()), (404, "NOT_FOUND"), "{id}");
        assert_eq!(a.body["error"]["message"], "account not found");
    }
    // The platform administrator sees every account.
    p.get(&format!("/api/v1/accounts/{other_id}"), &p.admin)
        .await
        .expect(200);
    p.get(&format!("/api/v1/accounts/{mine}"), &p.admin)
        .await
        .expect(200);
}

async fn bodies_must_be_objects(p: TestPlatform) {
    let gw = p.gateway("gw-obj").await;
    let cases = [
        (
            Method::POST,
            "/api/v1/gateways".to_string(),
            r#"["arr-gw"]"#,
        ),
        (
            Method::POST,
            "/api/v1/environments".to_string(),
            r#"["e", "test"]"#,
        ),
        (
            Method::PATCH,
            format!("/api/v1/gateways/{gw}"),
            r#"["renamed"]"#,
        ),
        (Method::POST, "/api/v1/tokens".to_string(), r#""t""#),
        (Method::POST, "/api/v1/users".to_string(), "null"),
        (Method::POST, "/api/v1/install-tokens".to_string(), "[30]"),
        (Method::POST, "/api/v1/nodes/join".to_string(), "[1]"),
    ];
    for (method, path, body) in cases {
        let a = p
            .call(
                method.clone(),
                &path,
                Some(&p.owner),
                Some(body.as_bytes().to_vec()),
            )
            .await;
        assert_eq!(
            (a.status.as_u16(), a.code(), a.field()),
            (400, "BODY_NOT_AN_OBJECT", "body"),
            "{method} {path} {body}"
        );
    }
    // Nothing was created or renamed.
    let list = p.get("/api/v1/gateways", &p.owner).await.expect(200);
    assert_eq!(ids(&list, "gateways"), ["gw-obj"]);
}

async fn one_name_rule_everywhere(p: TestPlatform) {
    let gw = p.gateway("gw-names").await;
    let env = p.environment("env-names", None).await;
    let api = p.api("api-names", "names").await;
    let bad = "<script>alert(2)</script>";
    let cases = [
        (
            Method::POST,
            "/api/v1/accounts".to_string(),
            &p.admin,
            json!({ "name": "<x>" }),
            "ACCOUNT_NAME_INVALID_CHARACTER",
        ),
        (
            Method::POST,
            "/api/v1/gateways".to_string(),
            &p.owner,
            json!({ "name": bad }),
            "GATEWAY_NAME_INVALID_CHARACTER",
        ),
        (
            Method::PATCH,
            format!("/api/v1/gateways/{gw}"),
            &p.owner,
            json!({ "name": "a>b" }),
            "GATEWAY_NAME_INVALID_CHARACTER",
        ),
        (
            Method::POST,
            "/api/v1/environments".to_string(),
            &p.owner,
            json!({ "name": bad, "classification": "test" }),
            "ENVIRONMENT_NAME_INVALID_CHARACTER",
        ),
        (
            Method::PATCH,
            format!("/api/v1/environments/{env}"),
            &p.owner,
            json!({ "name": "Prod: EU" }),
            "ENVIRONMENT_NAME_INVALID_CHARACTER",
        ),
        (
            Method::POST,
            "/api/v1/apis".to_string(),
            &p.owner,
            json!({ "name": bad, "version": "v1", "api_type": "REST", "base_path": "x", "upstream_targets": ["http://127.0.0.1:9/"] }),
            "API_NAME_INVALID_CHARACTER",
        ),
        (
            Method::PATCH,
            format!("/api/v1/apis/{api}"),
            &p.owner,
            json!({ "version": "v<1>" }),
            "API_VERSION_INVALID_CHARACTER",
        ),
        (
            Method::POST,
            "/api/v1/users".to_string(),
            &p.owner,
            json!({ "name": bad, "role": "viewer" }),
            "USER_NAME_INVALID_CHARACTER",
        ),
        (
            Method::POST,
            "/api/v1/tokens".to_string(),
            &p.owner,
            json!({ "name": "ci|deploy" }),
            "TOKEN_NAME_INVALID_CHARACTER",
        ),
    ];
    for (method, path, token, body, code) in cases {
        let a = p
            .call(
                method.clone(),
                &path,
                Some(token),
                Some(body.to_string().into_bytes()),
            )
            .await;
        assert_eq!(
            (a.status.as_u16(), a.code(), a.field()),
            (
                422,
                code,
                if code.starts_with("API_VERSION") {
                    "version"
                } else {
                    "name"
                }
            ),
            "{method} {path}: {:#}",
            a.body
        );
    }
    let user = p
        .post(
            "/api/v1/users",
            &p.owner,
            json!({ "name": "  ", "role": "viewer" }),
        )
        .await;
    assert_eq!(
        (user.status.as_u16(), user.code()),
        (422, "USER_NAME_EMPTY")
    );
    let token = p
        .post(
            "/api/v1/tokens",
            &p.owner,
            json!({ "name": "x".repeat(81) }),
        )
        .await;
    assert_eq!(
        (token.status.as_u16(), token.code()),
        (422, "TOKEN_NAME_TOO_LONG")
    );
}

async fn upstream_targets_are_capped_and_unique(p: TestPlatform) {
    let max = model::validate::MAX_UPSTREAM_TARGETS;
    let targets =
        |n: usize| -> Vec<String> { (0..n).map(|i| format!("http://10.0.0.{i}:8080/")).collect() };
    let create = |targets: Vec<String>| {
        json!({ "name": "many", "version": "v1", "api_type": "REST", "base_path": "many",
                "upstream_targets": targets })
    };
    let too_many = p
        .post("/api/v1/apis", &p.owner, create(targets(max + 1)))
        .await;
    assert_eq!(
        (too_many.status.as_u16(), too_many.code(), too_many.field()),
        (422, "UPSTREAM_TARGETS_TOO_MANY", "upstream_targets")
    );
    let mut dup = targets(2);
    dup.push("HTTP://10.0.0.1:8080".into());
    let duplicate = p.post("/api/v1/apis", &p.owner, create(dup)).await;
    assert_eq!(
        (
            duplicate.status.as_u16(),
            duplicate.code(),
            duplicate.field()
        ),
        (422, "UPSTREAM_TARGET_DUPLICATE", "upstream_targets")
    );
    let created = p
        .post("/api/v1/apis", &p.owner, create(targets(max)))
        .await
        .expect(201);
    let id = created["id"].as_str().unwrap();
    let patched = p
        .patch(
            &format!("/api/v1/apis/{id}"),
            &p.owner,
            json!({ "upstream_targets": ["http://a/", "http://a/"] }),
        )
        .await;
    assert_eq!(
        (patched.status.as_u16(), patched.code()),
        (422, "UPSTREAM_TARGET_DUPLICATE")
    );
    let got = p
        .get(&format!("/api/v1/apis/{id}"), &p.owner)
        .await
        .expect(200);
    assert_eq!(got["upstream_targets"].as_array().map(Vec::len), Some(max));
}

async fn install_tokens_are_listed_and_print_their_join_line(p: TestPlatform) {
    let first = p
        .post(
            "/api/v1/install-tokens",
            &p.owner,
            json!({ "valid_for_minutes": 30 }),
        )
        .await
        .expect(201);
    let secret = first["token"].as_str().unwrap();
    let host = p.base.trim_start_matches("http://");
    assert_eq!(
        first["join_command"],
        format!(
            "switchyard gateway --platform http://{host} --install-token {secret} --name GATEWAY_NAME"
        )
    );
    let second = p
        .post(
            "/api/v1/install-tokens",
            &p.owner,
            json!({ "valid_for_minutes": 60 }),
        )
        .await
        .expect(201);
    p.delete(
        &format!("/api/v1/install-tokens/{}", first["id"].as_str().unwrap()),
        &p.owner,
    )
    .await
    .expect(204);
    let list = p.get("/api/v1/install-tokens", &p.owner).await.expect(200);
    let tokens = list["install_tokens"].as_array().unwrap();
    // Newest first; never a secret.
    assert_eq!(tokens.len(), 2, "{list}");
    assert_eq!(tokens[0]["id"], second["id"]);
    assert_eq!(tokens[0]["revoked_at"], Value::Null);
    assert_eq!(tokens[1]["id"], first["id"]);
    assert!(tokens[1]["revoked_at"].is_string(), "{list}");
    assert!(!list.to_string().contains("sy_inst_"), "{list}");
    // Managers only, and only their own account's.
    let viewer = p.user("viewer-it", "viewer").await;
    assert_eq!(p.get("/api/v1/install-tokens", &viewer).await.status, 403);
    let other = p
        .post("/api/v1/accounts", &p.admin, json!({ "name": "other-it" }))
        .await
        .expect(201);
    let other = other["owner_token"].as_str().unwrap();
    let theirs = p.get("/api/v1/install-tokens", other).await.expect(200);
    assert_eq!(theirs["install_tokens"], json!([]));
}

async fn empty_list_parameters_and_vanished_cursors(p: TestPlatform) {
    for (path, field) in [
        ("/api/v1/users?limit=", "limit"),
        ("/api/v1/environments?cursor=", "cursor"),
        ("/api/v1/audit?limit=", "limit"),
        ("/api/v1/audit?cursor=", "cursor"),
        ("/api/v1/gateways?sort=", "sort"),
        ("/api/v1/gateways?view=", "view"),
        ("/api/v1/gateways?order=", "order"),
    ] {
        let a = p.get(path, &p.owner).await;
        assert_eq!((a.status.as_u16(), a.field()), (400, field), "{path}");
    }
    let id = p.environment("env-a", None).await;
    p.environment("env-b", None).await;
    let a = p
        .get(&format!("/api/v1/environments?cursor={id}"), &p.owner)
        .await
        .expect(200);
    assert_eq!(a["environments"][0]["name"], "env-b");
    p.delete(&format!("/api/v1/environments/{id}"), &p.owner)
        .await
        .expect(204);
    let a = p
        .get(&format!("/api/v1/environments?cursor={id}"), &p.owner)
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (404, "CURSOR_NOT_FOUND"));
}

async fn integral_floats_are_integers(p: TestPlatform) {
    // JSON Schema's `integer` includes 60.0; the server reads it as 60.
    p.post(
        "/api/v1/install-tokens",
        &p.owner,
        json!({ "valid_for_minutes": 60.0 }),
    )
    .await
    .expect(201);
    let a = p
        .post(
            "/api/v1/install-tokens",
            &p.owner,
            json!({ "valid_for_minutes": 60.5 }),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.field()), (400, "valid_for_minutes"));
}
