//! The console's Environments, Environment Configuration, APIs, Users and roles, API tokens
//! and Audit log pages in a real browser (headless Chromium over WebDriver) against a real
//! `switchyard up`, with the shared harness of `browser/`. Screenshots of each page land in
//! `target/screenshots/` on every run.

mod browser;

use browser::{Browser, OWNER_EMAIL, Up, WAIT, browser_available};
use reqwest::Method;
use serde_json::json;

/// The id in `/things/{id}…` of the current page.
async fn id_in_path(b: &Browser, prefix: &str) -> String {
    let path = b.path().await;
    path.strip_prefix(prefix)
        .and_then(|rest| rest.split(['/', '?']).next())
        .unwrap_or_else(|| panic!("{path} is not under {prefix}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_configuration_shows_rule_messages_and_live_example_urls() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    let env = up.environment_id("Production").await.expect("Production");
    let gw = up.gateway_url("local").await;
    let b = Browser::start(true).await;
    b.login(&up, OWNER_EMAIL, &up.password).await;
    b.click("#nav-environments").await;
    b.wait_path("/environments").await;
    b.screenshot("environments").await;

    // The environment's name leads to its configuration, with the deployed API's URL.
    b.click(&format!("tr[data-environment='{env}'] td.name a"))
        .await;
    b.wait_path(format!("/environments/{env}/configuration"))
        .await;
    let example = b.text(".example-url").await;
    assert_eq!(example, format!("{gw}/ws/rest/echo"));
    b.screenshot("environment-configuration").await;

    // While typing, the example follows, in encoded form; a broken path says why instead.
    b.fill("#rest_path", "api/café").await;
    b.wait("the example URL follows the typing", || async {
        b.text_now(".example-url").await == format!("{gw}/api/caf%C3%A9/echo")
    })
    .await;
    b.fill("#rest_path", "/api").await;
    b.wait("the example says the path is not valid", || async {
        b.has(".example-error").await && b.text(".example-error").await.contains("starts with “/”")
    })
    .await;

    // Saved with a rule broken: the message is next to its field, the value kept.
    b.click("#save-paths").await;
    let error = b.text("#rest_path-error").await;
    assert!(error.contains("starts with “/”"), "{error}");
    assert!(error.contains("Remove the leading slash"), "{error}");
    assert!(error.contains("ENVIRONMENT_PATH_LEADING_SLASH"), "{error}");
    let field = b.css("#rest_path").await;
    assert_eq!(
        field.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    assert_eq!(field.prop("value").await.unwrap().as_deref(), Some("/api"));
    assert!(!b.has("#soap_path-error").await);
    b.screenshot("environment-configuration-error").await;

    // Two paths the same: the later field says which.
    b.fill("#rest_path", "ws/x").await;
    b.fill("#soap_path", "ws/x").await;
    b.click("#save-paths").await;
    let error = b.text("#soap_path-error").await;
    assert!(error.contains("REST path"), "{error}");
    assert!(error.contains("ENVIRONMENT_PATH_DUPLICATE"), "{error}");
    assert!(!b.has("#rest_path-error").await);

    // A valid change is saved encoded, and the gateway serves the API there.
    b.fill("#rest_path", "api/café").await;
    b.fill("#soap_path", "ws/soap").await;
    b.click("#save-paths").await;
    b.wait_path(format!("/environments/{env}/configuration?done=saved"))
        .await;
    assert!(b.text(".notice").await.contains("saved"));
    let stored = b.css("#rest_path").await.prop("value").await.unwrap();
    assert_eq!(stored.as_deref(), Some("api/caf%C3%A9"));
    let url = format!("{}/api/caf%C3%A9/echo/hello", up.gateway);
    let http = up.http.clone();
    testkit::wait_until(WAIT, "the gateway serves the new path", || async {
        http.get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    b.close().await;

    // Without script: the examples change on submit.
    let b = Browser::start(false).await;
    b.login(&up, OWNER_EMAIL, &up.password).await;
    b.goto(&up.url(&format!("/environments/{env}/configuration")))
        .await;
    b.fill("#rest_path", "v2/rest").await;
    assert!(
        b.text(".example-url")
            .await
            .ends_with("/api/caf%C3%A9/echo")
    );
    b.click("#save-paths").await;
    assert_eq!(b.text(".example-url").await, format!("{gw}/v2/rest/echo"));
    b.fill("#odata_path", "ws//odata").await;
    b.click("#save-paths").await;
    assert!(
        b.text("#odata_path-error")
            .await
            .contains("ENVIRONMENT_PATH_CONSECUTIVE_SLASHES")
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_created_renamed_deleted_and_an_api_created_deployed_undeployed() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    let production = up.environment_id("Production").await.expect("Production");
    let gw = up.gateway_url("local").await;
    let b = Browser::start(true).await;
    b.login(&up, OWNER_EMAIL, &up.password).await;

    // Create; the same name again is refused next to the field.
    b.goto(&up.url("/environments")).await;
    b.fill("#name", "Staging").await;
    b.select("#classification", "test").await;
    b.click("#create-environment button[type=submit]").await;
    b.wait_path("/environments?done=created").await;
    assert!(
        b.texts("#environments td.name")
            .await
            .contains(&"Staging".to_string())
    );
    b.fill("#name", "Staging").await;
    b.click("#create-environment button[type=submit]").await;
    let error = b.text("#name-error").await;
    assert!(error.contains("ENVIRONMENT_NAME_TAKEN"), "{error}");
    assert!(error.contains("Choose another name"), "{error}");
    b.screenshot("environments-name-taken").await;

    // Rename.
    let staging = up.environment_id("Staging").await.expect("Staging");
    b.click(&format!(
        "tr[data-environment='{staging}'] a[data-action=rename]"
    ))
    .await;
    b.wait_path(format!("/environments/{staging}/edit")).await;
    b.screenshot("environment-rename").await;
    b.fill("#name", "Staging EU").await;
    b.click("main button[type=submit]").await;
    b.wait_path("/environments?done=renamed").await;
    let names = b.texts("#environments td.name").await;
    assert!(names.contains(&"Staging EU".to_string()), "{names:?}");
    assert!(!names.contains(&"Staging".to_string()), "{names:?}");

    // An API: a broken base path is refused next to its field, then created.
    b.click("#nav-apis").await;
    b.wait_path("/apis").await;
    b.screenshot("apis").await;
    b.click("#create-api").await;
    b.wait_path("/apis/new").await;
    b.fill("#name", "Orders").await;
    b.fill("#version", "v1").await;
    b.select("#api_type", "REST").await;
    b.fill("#base_path", "/orders").await;
    b.fill("#upstream_targets", "http://127.0.0.1:9/orders")
        .await;
    b.click("#save-api").await;
    let error = b.text("#base_path-error").await;
    assert!(error.contains("API_BASE_PATH_LEADING_SLASH"), "{error}");
    b.screenshot("api-form-error").await;
    b.fill("#base_path", "orders").await;
    b.click("#save-api").await;
    // The click returns before the created API's page has loaded.
    b.wait("the created API's page", || async {
        b.path().await.ends_with("?done=created")
    })
    .await;
    let api = id_in_path(&b, "/apis/").await;
    b.wait_path(format!("/apis/{api}?done=created")).await;
    assert!(b.has("#deployments-empty").await);

    // Deploy: unattached → Requires Configuration; attached → Pending, then Sent to the
    // Gateway once the local node has applied it (derived as REST derives it).
    b.select("#environment_id", &staging).await;
    b.click("#deploy").await;
    b.wait_path(format!("/apis/{api}?done=deployed")).await;
    b.select("#environment_id", &production).await;
    b.click("#deploy").await;
    b.wait_path(format!("/apis/{api}?done=deployed")).await;
    b.wait(
        "the Production deployment is sent to the gateway",
        || async {
            b.goto(&up.url(&format!("/apis/{api}"))).await;
            b.attrs("#deployments .badge", "data-status")
                .await
                .contains(&"sent_to_gateway".to_string())
        },
    )
    .await;
    let statuses = b.attrs("#deployments .badge", "data-status").await;
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert!(statuses.contains(&"requires_configuration".to_string()));
    assert!(statuses.contains(&"sent_to_gateway".to_string()));
    let urls = b.texts("#deployments td code").await;
    assert!(urls.contains(&format!("{gw}/ws/rest/orders")), "{urls:?}");
    b.screenshot("api").await;

    // A deployment that would share a URL prefix with another API is refused, naming it.
    let (status, clash) = up
        .rest(
            Method::POST,
            "/api/v1/apis",
            Some(
                json!({ "name": "Clash", "version": "v1", "api_type": "REST",
                "base_path": "echo", "upstream_targets": ["http://127.0.0.1:9/"] }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{clash}");
    b.goto(&up.url(&format!("/apis/{}", clash["id"].as_str().unwrap())))
        .await;
    b.select("#environment_id", &production).await;
    b.click("#deploy").await;
    let error = b.text("#form-error, #environment_id-error").await;
    assert!(error.contains("API_PATH_CONFLICT"), "{error}");
    b.screenshot("api-deploy-conflict").await;

    // Undeploy from Production; edit the API.
    b.goto(&up.url(&format!("/apis/{api}"))).await;
    let row = b
        .css("#deployments tr:has([data-status=sent_to_gateway]) button[data-action=undeploy]")
        .await;
    row.click().await.expect("undeploy");
    b.wait_path(format!("/apis/{api}?done=undeployed")).await;
    assert_eq!(
        b.attrs("#deployments .badge", "data-status").await,
        vec!["requires_configuration".to_string()]
    );
    b.click("#edit-api").await;
    b.screenshot("api-edit").await;
    b.fill("#version", "v2").await;
    b.click("#save-api").await;
    b.wait_path(format!("/apis/{api}?done=saved")).await;
    assert!(b.text("h1").await.contains("v2"));

    // Delete the environment: the page warns about its deployment.
    b.goto(&up.url("/environments")).await;
    b.click(&format!(
        "tr[data-environment='{staging}'] a[data-action=delete]"
    ))
    .await;
    assert!(
        b.text("#warn-deployments")
            .await
            .contains("1 API deployment")
    );
    b.screenshot("environment-delete").await;
    b.click("#confirm-delete").await;
    b.wait("the list after the delete", || async {
        b.path().await == "/environments?done=deleted"
    })
    .await;
    assert!(!b.has(&format!("tr[data-environment='{staging}']")).await);
    let (status, _) = up
        .rest(
            Method::GET,
            &format!("/api/v1/environments/{staging}"),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Delete the API: deployed to Production again, its gateway serves it; the delete page
    // names the deployment and warns, Cancel changes nothing, and the confirmed delete
    // removes it from the list, from REST and from the gateway.
    b.goto(&up.url(&format!("/apis/{api}"))).await;
    b.select("#environment_id", &production).await;
    b.click("#deploy").await;
    b.wait_path(format!("/apis/{api}?done=deployed")).await;
    let served = format!("{gw}/ws/rest/orders");
    let routed = || async {
        up.http
            .get(&served)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    b.wait("the gateway routes /ws/rest/orders", || async {
        let status = routed().await;
        status != 0 && status != 404
    })
    .await;
    b.click("#delete-api").await;
    b.wait_path(format!("/apis/{api}/delete")).await;
    let warning = b.text("#warn-deployments").await;
    assert!(warning.contains("Production"), "{warning}");
    assert!(warning.contains("stop serving it"), "{warning}");
    b.screenshot("api-delete").await;
    b.click("main a.button.secondary").await;
    b.wait_path(format!("/apis/{api}")).await;
    b.goto(&up.url("/apis")).await;
    b.click(&format!("tr[data-api='{api}'] a[data-action=delete]"))
        .await;
    b.wait_path(format!("/apis/{api}/delete")).await;
    b.click("#confirm-delete").await;
    b.wait_path("/apis?done=deleted").await;
    assert!(b.text(".notice").await.contains("API deleted"));
    assert!(!b.has(&format!("tr[data-api='{api}']")).await);
    let (status, _) = up
        .rest(Method::GET, &format!("/api/v1/apis/{api}"), None)
        .await;
    assert_eq!(status, 404);
    b.wait("the gateway stops routing /ws/rest/orders", || async {
        routed().await == 404
    })
    .await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_shown_once_and_revoked_and_the_audit_log_filters_and_pages() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    let b = Browser::start(true).await;
    b.login(&up, OWNER_EMAIL, &up.password).await;
    b.click("#nav-tokens").await;
    b.wait_path("/tokens").await;
    b.fill("#name", "ci").await;
    b.select("#expires_in_days", "30").await;
    b.click("#create-token button[type=submit]").await;
    let secret = b.text("#new-token").await;
    assert!(secret.starts_with("sy_pat_"), "{secret}");
    b.screenshot("tokens-created").await;
    let (status, me) = up.rest_as(&secret, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 200, "{me}");

    // Shown once: the list has its prefix only.
    b.goto(&up.url("/tokens")).await;
    assert!(!b.has("#new-token").await);
    let html = b.client.source().await.unwrap();
    assert!(!html.contains(&secret), "the secret must not show again");
    assert_eq!(b.text("#tokens tbody tr:first-child td.name").await, "ci");
    // Revoking asks first; Cancel keeps the token working.
    b.click("#tokens tbody tr:first-child a[data-action=revoke]")
        .await;
    assert!(b.text("main").await.contains("refused from now on"));
    b.screenshot("token-revoke").await;
    b.click("main a.button.secondary").await;
    b.wait_path("/tokens").await;
    let (status, _) = up.rest_as(&secret, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 200, "Cancel revokes nothing");
    b.click("#tokens tbody tr:first-child a[data-action=revoke]")
        .await;
    b.click("#confirm-revoke").await;
    b.wait_path("/tokens?done=revoked").await;
    assert_eq!(
        b.attrs("#tokens tbody tr:first-child [data-state]", "data-state")
            .await,
        vec!["revoked".to_string()]
    );
    b.screenshot("tokens").await;
    let (status, _) = up.rest_as(&secret, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 401);

    // The audit log: filtered by action, result, actor and date.
    b.click("#nav-audit").await;
    b.wait_path("/audit").await;
    b.screenshot("audit").await;
    b.fill("#action", "api_token.").await;
    b.click("#audit-filter button[type=submit]").await;
    // The click returns before the filtered page has replaced the unfiltered one.
    b.wait("the log filtered by action", || async {
        let actions = b.texts("#audit td.action").await;
        !actions.is_empty() && actions.iter().all(|a| a.starts_with("api_token."))
    })
    .await;
    let actions = b.texts("#audit td.action").await;
    assert!(
        actions.contains(&"api_token.create".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"api_token.revoke".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.iter().all(|a| a.starts_with("api_token.")),
        "{actions:?}"
    );
    let me = up.rest(Method::GET, "/api/v1/me", None).await.1;
    let owner = me["id"].as_str().unwrap().to_string();
    b.select("#actor", &owner).await;
    b.select("#result", "allowed").await;
    b.click("#audit-filter button[type=submit]").await;
    b.wait("the log filtered by actor and result", || async {
        let results = b.texts("#audit td.result").await;
        !results.is_empty() && results.iter().all(|r| r == "allowed")
    })
    .await;
    let actors = b.texts("#audit td.actor").await;
    assert!(actors.iter().all(|a| *a == me["name"]), "{actors:?}");
    assert!(
        b.texts("#audit td.result")
            .await
            .iter()
            .all(|r| r == "allowed")
    );
    assert!(!b.texts("#audit td.result").await.is_empty());
    b.screenshot("audit-filtered").await;
    // A refused change is there as denied or failed, and the date bounds apply.
    let (status, _) = up
        .rest(
            Method::POST,
            "/api/v1/environments",
            Some(json!({ "name": "", "classification": "test" })),
        )
        .await;
    assert_eq!(status, 422);
    b.goto(&up.url("/audit?to=2000-01-01")).await;
    assert!(b.has("#audit-empty").await);
    let (_, audit) = up.rest(Method::GET, "/api/v1/audit?limit=1", None).await;
    let today = audit["records"][0]["at"].as_str().unwrap()[..10].to_string();
    b.goto(&up.url(&format!("/audit?from={today}&action=api_token.create")))
        .await;
    let today_actions = b.texts("#audit td.action").await;
    assert!(!today_actions.is_empty());
    assert!(
        today_actions.iter().all(|a| a == "api_token.create"),
        "{today_actions:?}"
    );

    // Paged with the store's cursor: 55 more records, 50 a page.
    for i in 0..55 {
        let (status, _) = up
            .rest(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({ "name": format!("t{i}") })),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (_, audit) = up.rest(Method::GET, "/api/v1/audit?limit=500", None).await;
    let created = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "api_token.create")
        .count();
    assert!(created > 55, "{created}");
    b.goto(&up.url("/audit?action=api_token.create")).await;
    assert_eq!(b.texts("#audit tbody tr").await.len(), 50);
    assert!(!b.has("#newest").await);
    b.click("#older").await;
    assert!(b.path().await.contains("cursor="));
    assert!(b.path().await.contains("action=api%5Ftoken%2Ecreate"));
    assert_eq!(b.texts("#audit tbody tr").await.len(), created - 50);
    assert!(b.has("#newest").await);
    assert!(!b.has("#older").await);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_actions_and_a_forged_post_is_refused() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    let env = up.environment_id("Production").await.expect("Production");
    let b = Browser::start(true).await;
    b.login(&up, OWNER_EMAIL, &up.password).await;

    // The owner adds a user: a console password and a token, shown once.
    b.click("#nav-users").await;
    b.wait_path("/users").await;
    b.fill("#name", "Vera").await;
    b.fill("#email", "vera@example.com").await;
    b.select("#role", "admin").await;
    b.click("#add-user button[type=submit]").await;
    let password = b.text("#new-password").await;
    assert!(b.text("#new-user-token").await.starts_with("sy_pat_"));
    b.screenshot("users-created").await;
    // Role changes are the owner's: admin → viewer.
    let vera = b.attrs("#users tr[data-user]", "data-user").await;
    let names = b.texts("#users tr[data-user] td.name").await;
    let vera = vera[names.iter().position(|n| n == "Vera").expect("Vera row")].clone();
    b.select(&format!("#role-{vera}"), "viewer").await;
    b.click(&format!(
        "tr[data-user='{vera}'] button[data-action=set-role]"
    ))
    .await;
    b.wait_path("/users?done=role").await;
    let role = b
        .css(&format!("#role-{vera}"))
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(role.as_deref(), Some("viewer"));
    b.screenshot("users").await;
    // Removing asks first; Cancel changes nothing.
    b.click(&format!("tr[data-user='{vera}'] [data-action=delete]"))
        .await;
    b.wait_path(format!("/users/{vera}/delete")).await;
    assert!(b.text("h1").await.contains("Vera"));
    b.screenshot("user-delete").await;
    b.click("a.button.secondary").await;
    b.wait_path("/users").await;
    assert!(
        b.texts("#users td.name")
            .await
            .contains(&"Vera".to_string())
    );
    b.click("form[action='/logout'] button").await;

    // The viewer sees every page without a button that acts.
    b.login(&up, "vera@example.com", &password).await;
    b.wait_path("/gateways").await;
    assert!(!b.has("#nav-audit").await, "audit is for owners and admins");
    b.goto(&up.url("/environments")).await;
    assert!(!b.has("#create-environment").await);
    assert!(!b.has("[data-action]").await);
    assert!(b.has(&format!("tr[data-environment='{env}']")).await);
    b.screenshot("viewer-environments").await;
    b.goto(&up.url(&format!("/environments/{env}/configuration")))
        .await;
    assert!(!b.has("#save-paths").await);
    let readonly = b.css("#rest_path").await.attr("readonly").await.unwrap();
    assert!(readonly.is_some());
    b.goto(&up.url("/apis")).await;
    assert!(!b.has("#create-api").await);
    b.click("#apis td.name a").await;
    b.wait("the API's page", || async { b.has("#deployments").await })
        .await;
    assert!(!b.has("#deploy-form").await);
    assert!(!b.has("#edit-api").await);
    assert!(!b.has("#delete-api").await);
    assert!(!b.has("[data-action]").await);
    b.goto(&up.url("/users")).await;
    assert!(!b.has("#add-user").await);
    assert!(!b.has("[data-action]").await);
    assert!(b.has("#owner-only").await);
    b.goto(&up.url("/audit")).await;
    assert_eq!(b.text("#error-title").await, "Not allowed");
    b.goto(&up.url(&format!("/environments/{env}/edit"))).await;
    assert_eq!(b.text("#error-title").await, "Not allowed");

    // A forged post with the viewer's own valid CSRF token: the REST rule refuses it.
    b.goto(&up.url("/environments")).await;
    let forge = |fields: &str| {
        format!(
            "var f = document.createElement('form'); f.method = 'post'; f.action = '/environments';\
             var csrf = document.querySelector('input[name=csrf]').value;\
             {fields}\
             document.body.appendChild(f); f.submit();"
        )
    };
    let add = "function add(n, v) { var i = document.createElement('input'); i.type = 'hidden'; \
               i.name = n; i.value = v; f.appendChild(i); }";
    b.client
        .execute(
            &forge(&format!(
                "{add} add('csrf', csrf); add('name', 'Forged'); add('classification', 'test');"
            )),
            vec![],
        )
        .await
        .expect("forged post");
    b.wait("the refusal page", || async { b.has("#error-title").await })
        .await;
    assert_eq!(b.text("#error-title").await, "Not allowed");
    b.screenshot("viewer-forged-post").await;
    // Without the token: refused before anything runs.
    b.goto(&up.url("/environments")).await;
    b.client
        .execute(
            &forge(&format!(
                "{add} add('name', 'Forged'); add('classification', 'test');"
            )),
            vec![],
        )
        .await
        .expect("forged post");
    b.wait("the refusal page", || async { b.has("#error-title").await })
        .await;
    assert_eq!(b.text("#error-title").await, "Form expired");
    assert_eq!(up.environment_id("Forged").await, None);
    // The denial is audited.
    let (_, audit) = up.rest(Method::GET, "/api/v1/audit", None).await;
    let denied = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["action"] == "environment.create" && r["result"] == "denied");
    assert!(denied, "{audit}");
    // A viewer cannot even open the removal page.
    b.goto(&up.url(&format!("/users/{vera}/delete"))).await;
    assert_eq!(b.text("#error-title").await, "Not allowed");
    b.goto(&up.url("/users")).await;
    b.click("form[action='/logout'] button").await;

    // The owner removes Vera after confirming: her password and token stop working.
    b.login(&up, OWNER_EMAIL, &up.password).await;
    b.goto(&up.url(&format!("/users/{vera}/delete"))).await;
    b.click("#confirm-delete").await;
    b.wait_path("/users?done=deleted").await;
    assert!(
        !b.texts("#users td.name")
            .await
            .contains(&"Vera".to_string())
    );
    let (status, _) = up
        .rest(Method::GET, &format!("/api/v1/users/{vera}"), None)
        .await;
    assert_eq!(status, 404);
    b.goto(&up.url("/users/not-a-user/delete")).await;
    assert_eq!(b.text("#error-title").await, "Not found");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_link_of_these_pages_lands_on_the_right_page() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    let env = up.environment_id("Production").await.expect("Production");
    let (_, apis) = up.rest(Method::GET, "/api/v1/apis", None).await;
    let api = apis["apis"][0]["id"]
        .as_str()
        .expect("the sample API")
        .to_string();
    let b = Browser::start(true).await;
    b.login(&up, OWNER_EMAIL, &up.password).await;

    // Targeted: names lead to their pages.
    b.goto(&up.url("/environments")).await;
    b.click(&format!("tr[data-environment='{env}'] td.name a"))
        .await;
    assert!(b.text("h1").await.starts_with("Production"));
    b.click("#gateway-link").await;
    assert_eq!(b.text("h1").await, "local");
    b.goto(&up.url(&format!("/environments/{env}/configuration")))
        .await;
    b.click("#examples li a").await;
    b.wait_path(format!("/apis/{api}")).await;
    b.click("#deployments td a").await;
    b.wait_path(format!("/environments/{env}/configuration"))
        .await;
    for (nav, path, h1) in [
        ("#nav-environments", "/environments", "Environments"),
        ("#nav-apis", "/apis", "APIs"),
        ("#nav-users", "/users", "Users and roles"),
        ("#nav-tokens", "/tokens", "API tokens"),
        ("#nav-audit", "/audit", "Audit log"),
    ] {
        b.click(nav).await;
        b.wait_path(path).await;
        assert_eq!(b.text("h1").await, h1);
        let current = b.css(nav).await.attr("aria-current").await.unwrap();
        assert_eq!(current.as_deref(), Some("page"), "{nav}");
    }

    // Every link of every page answers a page, not an error.
    let pages = [
        "/environments".to_string(),
        format!("/environments/{env}/configuration"),
        format!("/environments/{env}/edit"),
        format!("/environments/{env}/delete"),
        "/apis".into(),
        "/apis/new".into(),
        format!("/apis/{api}"),
        format!("/apis/{api}/edit"),
        "/users".into(),
        "/tokens".into(),
        "/audit".into(),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for page in &pages {
        b.goto(&up.url(page)).await;
        assert!(!b.has("#error-title").await, "{page} is an error page");
        for href in b.attrs("a[href]", "href").await {
            let local = href.strip_prefix(&up.base).unwrap_or(&href).to_string();
            if !local.starts_with('/')
                || local.starts_with("/assets/")
                || !seen.insert(local.clone())
            {
                continue;
            }
            b.goto(&up.url(&local)).await;
            assert!(
                !b.has("#error-title").await,
                "{local} (linked from {page}) is an error page: {}",
                b.text("main").await
            );
            assert!(b.has("h1").await, "{local} has no heading");
            b.goto(&up.url(page)).await;
        }
    }
    assert!(seen.len() >= 12, "{seen:?}");
    b.close().await;
}
