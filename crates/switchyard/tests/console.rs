//! The web console in a real browser: headless Chromium driven over WebDriver (chromedriver)
//! against a real `switchyard up` (platform, SQLite, local node) and real joining nodes, with
//! the shared harness of `browser/`. Screenshots of the main pages land in
//! `target/screenshots/` on every run.

mod browser;

use std::process::{Command, Stdio};

use browser::{BIN, Browser, Up, browser_available, stop};
use fantoccini::Locator;
use serde_json::json;

/// How many unattached environments the last row shows.
async fn shown(b: &Browser) -> usize {
    b.texts("#unattached .env").await.len()
}

/// The gateway names of the table, top to bottom.
async fn row_names(b: &Browser) -> Vec<String> {
    b.texts("#gateways tbody tr[data-gateway] td.name").await
}

// ---- tests --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_logout_wrong_password_password_change_and_rate_limit() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    // `up` names the account, the e-mail and a 0600 file with the owner's password.
    let sign_in = up.welcome.last().expect("welcome");
    assert!(sign_in.contains("account `default`"), "{sign_in}");
    assert!(
        sign_in.contains("e-mail owner@switchyard.local"),
        "{sign_in}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&up.password_file)
            .expect("password file")
            .permissions();
        assert_eq!(mode.mode() & 0o777, 0o600, "owner-password must be 0600");
    }
    let b = Browser::start(true).await;

    // Not signed in: a page sends the browser to the login form, and back after it.
    b.goto(&up.url("/gateways?sort=status")).await;
    assert!(
        b.path().await.starts_with("/login?next="),
        "{}",
        b.path().await
    );
    b.screenshot("login").await;

    // Wrong password: the form says what to check and keeps account and e-mail.
    b.fill("#account", "default").await;
    b.fill("#email", "owner@switchyard.local").await;
    b.fill("#password", "not the password").await;
    b.click("button[type=submit]").await;
    assert!(b.text("#login-error").await.contains("not right"));
    assert_eq!(
        b.css("#email")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("owner@switchyard.local")
    );
    b.screenshot("login-wrong-password").await;

    // Right password: on to the page asked for, with an HttpOnly session cookie.
    b.fill("#password", &up.password).await;
    b.click("button[type=submit]").await;
    b.wait_path("/gateways?sort=status").await;
    assert_eq!(b.text("h1").await, "Gateways");
    let cookie = b
        .client
        .get_named_cookie("sy_session")
        .await
        .expect("session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Lax)");
    let visible = b
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert!(
        !visible.as_str().unwrap_or("").contains("sy_session"),
        "{visible}"
    );

    // Password change: errors next to their field, then the new password works.
    b.goto(&up.url("/account/password")).await;
    b.fill("#current", "wrong").await;
    b.fill("#new", "short").await;
    b.fill("#confirm", "short").await;
    b.click("main button[type=submit]").await;
    assert!(
        b.text("#current-error")
            .await
            .contains("not your current password")
    );
    assert!(b.text("#new-error").await.contains("12"));
    b.screenshot("password-change-errors").await;
    let new_password = "correct horse battery staple";
    b.fill("#current", &up.password).await;
    b.fill("#new", new_password).await;
    b.fill("#confirm", new_password).await;
    b.click("main button[type=submit]").await;
    b.wait_path("/account/password?done=changed").await;
    assert!(b.text(".notice").await.contains("changed"));

    // Logout ends the session: pages need a login again.
    b.click("form[action='/logout'] button").await;
    b.wait_path("/login?done=logout").await;
    assert!(b.text(".notice").await.contains("signed out"));
    b.goto(&up.url("/gateways")).await;
    assert!(b.path().await.starts_with("/login"));
    b.login(&up, "owner@switchyard.local", &up.password).await;
    assert!(
        b.has("#login-error").await,
        "the old password must no longer work"
    );
    b.login(&up, "OWNER@switchyard.local", new_password).await;
    b.wait_path("/gateways").await;
    b.click("form[action='/logout'] button").await;

    // Rate limit: after 10 failures for this identity (1 above, 9 here) sign-in is paused,
    // even with the right password, and the page says when to retry.
    for _ in 0..9 {
        b.login(&up, "owner@switchyard.local", "guess").await;
    }
    assert_eq!(b.text("#error-title").await, "Too many failed sign-ins");
    b.login(&up, "owner@switchyard.local", new_password).await;
    assert_eq!(b.text("#error-title").await, "Too many failed sign-ins");
    assert!(b.text("main").await.contains("Try again in"));
    b.screenshot("login-rate-limited").await;
    // The answer is a 429 with Retry-After.
    let response = up
        .http
        .post(up.url("/login"))
        .header("cookie", "sy_login=".to_string() + &"a".repeat(64))
        .form(&[
            ("csrf", "a".repeat(64).as_str()),
            ("account", "default"),
            ("email", "owner@switchyard.local"),
            ("password", new_password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_page_sorts_searches_toggles_lists_unattached_and_escapes() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    use reqwest::Method;
    let store = up.store().await;
    let account = store.account_by_name("default").await.unwrap().unwrap().id;

    // Gateways whose host names and URLs sort differently from their names.
    let mut ids = Vec::new();
    for (name, host, url) in [
        ("alpha", "zeta-host", "https://c.example"),
        ("Bravo", "mid-host", "https://a.example"),
        ("charlie-7", "alpha-host", "https://b.example"),
    ] {
        let (status, g) = up.create_gateway(name).await;
        assert_eq!(status, 201, "{g}");
        let id: model::GatewayId = g["id"].as_str().unwrap().parse().unwrap();
        let gateway = store.gateway(account, id).await.unwrap();
        store
            .update_gateway(
                account,
                id,
                store::GatewayUpdate {
                    public_url: Some(url.into()),
                    bind_address: gateway.bind_address.clone(),
                    settings: gateway.settings.clone(),
                },
                store::Audit::new(
                    store::Actor::System,
                    "gateway.update",
                    platform::state::now(),
                ),
            )
            .await
            .unwrap();
        store
            .upsert_node(
                account,
                &model::Node {
                    id: model::NodeId::new_v7(),
                    gateway_id: id,
                    host_name: host.into(),
                    address: None,
                    version: "test".into(),
                    joined_at: platform::state::now(),
                    last_seen: None,
                    applied_generation: None,
                },
            )
            .await
            .unwrap();
        ids.push(g["id"].as_str().unwrap().to_string());
    }
    up.create_environment("Staging", Some(&ids[0])).await;
    // A gateway with no node: no host name.
    let (status, _) = up.create_gateway("delta").await;
    assert_eq!(status, 201);

    // Names that need escaping: the strict name rule may refuse `<script>`; then a name it
    // allows that still needs escaping shows the same.
    let script = "<script>alert(1)</script>";
    let (status, _) = up.create_gateway(script).await;
    let tricky_gateway = if status == 201 { script } else { "a&b 'q'" };
    if status != 201 {
        assert_eq!(status, 422, "a refused name is a validation error");
        let (status, body) = up.create_gateway(tricky_gateway).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, _) = up.create_environment(script, None).await;
    let tricky_env = if status == 201 { script } else { "e&f 'q'" };
    if status != 201 {
        let (status, body) = up.create_environment(tricky_env, None).await;
        assert_eq!(status, 201, "{body}");
    }

    let b = Browser::start(true).await;
    b.login(&up, "owner@switchyard.local", &up.password).await;
    b.wait_path("/gateways").await;
    let names = row_names(&b).await;
    let mut expected = vec![
        "alpha",
        "Bravo",
        "charlie-7",
        "delta",
        "local",
        tricky_gateway,
    ];
    expected.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, expected, "default: Gateway Name ascending");
    // Escaped: the name is text, no element was made of it.
    assert!(!b.has("#gateways script").await);
    let unattached = b.texts("#unattached .env").await;
    assert!(unattached.iter().any(|e| e == tricky_env), "{unattached:?}");
    b.screenshot("gateways").await;

    // Each sortable column, both ways (clicking the header; state in the URL).
    b.click("#sort-name").await;
    b.wait_path("/gateways?order=desc").await;
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(row_names(&b).await, reversed);

    b.click("#sort-host_name").await;
    b.wait_path("/gateways?sort=host_name").await;
    let hosts = b.texts("#gateways tbody tr[data-gateway] td.host").await;
    let known: Vec<&String> = hosts.iter().filter(|h| *h != "—").collect();
    let mut sorted = known.clone();
    sorted.sort_by_key(|h| h.to_lowercase());
    assert_eq!(known, sorted, "hosts ascending: {hosts:?}");
    assert_eq!(
        hosts.last().map(String::as_str),
        Some("—"),
        "no host last: {hosts:?}"
    );
    assert_eq!(hosts[0], "alpha-host");
    b.click("#sort-host_name").await;
    b.wait_path("/gateways?sort=host_name&order=desc").await;
    let hosts = b.texts("#gateways tbody tr[data-gateway] td.host").await;
    assert_eq!(hosts[0], "—", "no host first when descending: {hosts:?}");
    let known: Vec<&String> = hosts.iter().filter(|h| *h != "—").collect();
    assert_eq!(
        known.last().map(|h| h.as_str()),
        Some("alpha-host"),
        "{hosts:?}"
    );

    b.click("#sort-gateway_url").await;
    b.wait_path("/gateways?sort=gateway_url").await;
    let urls = b.texts("#gateways tbody tr[data-gateway] td.url").await;
    let mut sorted = urls.clone();
    sorted.sort_by_key(|u| u.to_lowercase());
    assert_eq!(urls, sorted);
    assert!(urls.contains(&"https://a.example".to_string()), "{urls:?}");
    b.click("#sort-gateway_url").await;
    let desc = b.texts("#gateways tbody tr[data-gateway] td.url").await;
    let mut sorted = desc.clone();
    sorted.sort_by_key(|u| std::cmp::Reverse(u.to_lowercase()));
    assert_eq!(desc, sorted);
    assert!(desc.contains(&"https://c.example".to_string()));

    let rank = |s: &str| match s.split('/').next().unwrap_or("") {
        "online" => 0,
        "cluster_issues" => 1,
        "starting" => 2,
        "restarting" => 3,
        "stopping" => 4,
        "offline" => 5,
        _ => 6,
    };
    b.click("#sort-status").await;
    b.wait_path("/gateways?sort=status").await;
    b.wait("the local gateway is online", || async {
        b.goto(&up.url("/gateways?sort=status")).await;
        b.attrs("#gateways tbody tr[data-gateway] .badge", "data-status")
            .await
            .first()
            .is_some_and(|s| s == "online")
    })
    .await;
    let statuses: Vec<u8> = b
        .attrs("#gateways tbody tr[data-gateway] .badge", "data-status")
        .await
        .iter()
        .map(|s| rank(s))
        .collect();
    assert!(statuses.windows(2).all(|w| w[0] <= w[1]), "{statuses:?}");
    assert!(statuses.first() < statuses.last(), "{statuses:?}");
    b.click("#sort-status").await;
    b.wait_path("/gateways?sort=status&order=desc").await;
    let statuses: Vec<u8> = b
        .attrs("#gateways tbody tr[data-gateway] .badge", "data-status")
        .await
        .iter()
        .map(|s| rank(s))
        .collect();
    assert!(statuses.windows(2).all(|w| w[0] >= w[1]), "{statuses:?}");

    // Every status shows its text beside the icon; a variant is spelled out.
    for badge in b.texts("#gateways tbody .badge").await {
        assert!(!badge.trim().is_empty());
    }
    let offline = b
        .texts("#gateways tbody .badge[data-status='offline/not_running']")
        .await;
    assert!(
        offline.iter().all(|t| t.contains("not running")),
        "{offline:?}"
    );

    // Search by gateway name, instantly (script) with the query in the URL.
    b.goto(&up.url("/gateways")).await;
    b.fill("#search", "brav").await;
    b.wait("the search narrows the rows", || async {
        row_names(&b).await == ["Bravo"]
    })
    .await;
    b.wait_path("/gateways?q=brav").await;
    // By environment name (case-insensitive), submitted with Enter.
    b.fill("#search", "STAGING\n").await;
    b.wait("the search finds the gateway of Staging", || async {
        row_names(&b).await == ["alpha"]
    })
    .await;
    b.fill("#search", "no such thing").await;
    b.wait("the empty search says so", || async {
        b.has("#gateways-empty").await
    })
    .await;
    assert!(b.text("#gateways-empty").await.contains("Clear the search"));
    b.screenshot("gateways-search-empty").await;

    // Enabled / deleted toggle.
    let (status, _) = up
        .rest(
            Method::DELETE,
            &format!("/api/v1/gateways/{}", ids[2]),
            None,
        )
        .await;
    assert_eq!(status, 204);
    b.goto(&up.url("/gateways")).await;
    assert!(!row_names(&b).await.contains(&"charlie-7".to_string()));
    b.click("#view-deleted").await;
    b.wait_path("/gateways?view=deleted").await;
    assert_eq!(row_names(&b).await, ["charlie-7"]);
    assert_eq!(
        b.attrs("#gateways tbody tr[data-gateway] .badge", "data-status")
            .await,
        ["deleted"]
    );
    assert_eq!(
        b.text("#gateways tbody td.issues").await,
        "",
        "deleted rows show no issues"
    );
    b.screenshot("gateways-deleted").await;
    b.click("#view-enabled").await;
    b.wait_path("/gateways").await;

    // The unattached row with 2 (the tricky one and one more), 3, 4 and 7 environments;
    // See more / See less with script here and without script below.
    let (status, _) = up.create_environment("u-1", None).await;
    assert_eq!(status, 201);
    b.goto(&up.url("/gateways")).await;
    assert_eq!(shown(&b).await, 2);
    assert!(!b.has("#see-more").await);
    up.create_environment("u-2", None).await;
    b.goto(&up.url("/gateways")).await;
    assert_eq!(shown(&b).await, 3);
    assert!(!b.has("#see-more").await);
    up.create_environment("u-3", None).await;
    b.goto(&up.url("/gateways")).await;
    assert_eq!(shown(&b).await, 3);
    b.click("#see-more").await;
    assert_eq!(shown(&b).await, 4);
    assert!(b.css("#see-less").await.is_displayed().await.unwrap());
    b.wait_path("/gateways?more=1").await;
    b.click("#see-less").await;
    assert_eq!(shown(&b).await, 3);
    for name in ["u-4", "u-5", "u-6"] {
        up.create_environment(name, None).await;
    }
    b.goto(&up.url("/gateways")).await;
    assert_eq!(shown(&b).await, 3);
    let first_three = b.texts("#unattached .env").await;
    let mut sorted = first_three.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(first_three, sorted, "alphabetical");
    b.click("#see-more").await;
    assert_eq!(shown(&b).await, 7);
    b.screenshot("gateways-unattached-expanded").await;
    // The live refresh keeps the row expanded.
    let before = b.attrs("#gateways-table", "data-refreshed").await;
    b.wait("the table refreshes by itself", || async {
        b.attrs("#gateways-table", "data-refreshed").await != before
    })
    .await;
    assert_eq!(shown(&b).await, 7);
    b.click("#see-less").await;
    assert_eq!(shown(&b).await, 3);
    // The search filters the unattached row too.
    b.fill("#search", "u-").await;
    b.wait("only u-* environments", || async {
        b.texts("#unattached .env")
            .await
            .iter()
            .all(|e| e.starts_with("u-"))
    })
    .await;

    // Every link of the main pages lands on a page (no error page, no dead link).
    let mut hrefs: Vec<String> = Vec::new();
    let settings = format!("/gateways/{}", ids[0]);
    for page in [
        "/gateways",
        "/gateways?tab=migration",
        "/gateways?view=deleted",
        "/gateways/add",
        settings.as_str(),
    ] {
        b.goto(&up.url(page)).await;
        for href in b.attrs("a[href]", "href").await {
            // A link within the page (`#main`) is resolved against it.
            let href = if href.starts_with('#') {
                format!("{}{href}", page.split('#').next().unwrap_or(page))
            } else {
                href
            };
            if !hrefs.contains(&href) {
                hrefs.push(href);
            }
        }
    }
    assert!(hrefs.len() > 15, "{hrefs:?}");
    // Environments are links, in the rows and in the unattached row (SPEC §4).
    let env_links = hrefs
        .iter()
        .filter(|h| h.ends_with("/configuration"))
        .count();
    assert!(
        env_links >= 8,
        "Staging, Production and the unattached: {hrefs:?}"
    );
    for href in &hrefs {
        let url = if href.starts_with('/') {
            up.url(href)
        } else {
            href.clone()
        };
        assert!(
            url.starts_with(&up.base),
            "no link leaves the console: {href}"
        );
        b.goto(&url).await;
        assert!(
            !b.has("#error-title").await,
            "{href} lands on an error page"
        );
        if let Some(id) = href
            .strip_prefix("/gateways/")
            .map(|rest| rest.split(['#', '?']).next().unwrap_or(""))
            .filter(|id| id.len() == 36)
        {
            let name = b.text("h1").await;
            assert!(
                names.contains(&name) || name == "charlie-7",
                "{href} shows gateway {name} ({id})"
            );
        }
        // An environment's link (in a row, the unattached row or the settings page) lands on
        // that environment's configuration.
        if let Some(id) = href
            .strip_prefix("/environments/")
            .and_then(|rest| rest.strip_suffix("/configuration"))
        {
            let (status, env) = up
                .rest(Method::GET, &format!("/api/v1/environments/{id}"), None)
                .await;
            assert_eq!(status, 200, "{href}: {env}");
            let name = env["name"].as_str().expect("environment name");
            let heading = b.text("h1").await;
            assert!(heading.contains(name), "{href} shows {heading}, not {name}");
        }
        if let Some(fragment) = href.split('#').nth(1) {
            assert!(
                b.has(&format!("#{fragment}")).await,
                "{href}: no #{fragment}"
            );
        }
    }
    b.goto(&up.url(&format!("/gateways/{}", ids[0]))).await;
    b.screenshot("gateway-settings").await;
    b.goto(&up.url("/gateways?tab=migration")).await;
    assert_eq!(
        b.texts("#migrations thead th").await,
        [
            "CURRENT STEP",
            "ENVIRONMENT",
            "MOVING FROM",
            "MOVING TO",
            "DELETE"
        ]
    );
    assert!(
        b.text("#migrations-empty")
            .await
            .contains("Create a New Migration")
    );
    b.screenshot("gateways-migration").await;
    b.close().await;

    // Without script: sorting, search and See more / See less are plain links and forms.
    let b = Browser::start(false).await;
    b.login(&up, "owner@switchyard.local", &up.password).await;
    b.wait_path("/gateways").await;
    assert_eq!(shown(&b).await, 3);
    b.click("#see-more").await;
    b.wait_path("/gateways?more=1").await;
    assert_eq!(shown(&b).await, 7);
    b.click("#see-less").await;
    b.wait_path("/gateways").await;
    assert_eq!(shown(&b).await, 3);
    b.fill("#search", "alp\n").await;
    b.wait_path("/gateways?q=alp").await;
    assert_eq!(row_names(&b).await, ["alpha"]);
    b.click("#sort-name").await;
    b.wait_path("/gateways?order=desc&q=alp").await;
    b.close().await;
}

/// The seeded gateway names (`store::seed`: `gw-0000`, …) with `local`, in the table's order.
fn seeded_names(n: usize, desc: bool, with_local: bool) -> Vec<String> {
    let mut names: Vec<String> = (0..n).map(|g| format!("gw-{g:04}")).collect();
    if with_local {
        names.push("local".into());
    }
    names.sort_by_key(|n| n.to_lowercase());
    if desc {
        names.reverse();
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_table_pages_keep_sort_search_and_view_with_and_without_script() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    let store = up.store().await;
    let account = store.account_by_name("default").await.unwrap().unwrap().id;
    // 250 gateways with an environment each, and 4 unattached environments: with `local`,
    // 251 gateways on three pages of 100.
    store::seed::seed_account(
        &store,
        account,
        store::seed::SeedShape {
            gateways: 250,
            environments_per_gateway: 1,
            unattached_environments: 4,
            nodes_per_gateway: 0,
            issue_every: 0,
        },
        platform::state::now(),
    )
    .await
    .unwrap();
    let all = seeded_names(250, false, true);
    let page_size = platform::console::GATEWAYS_PAGE_SIZE;
    assert_eq!(page_size, 100);

    let b = Browser::start(true).await;
    b.login(&up, "owner@switchyard.local", &up.password).await;
    b.wait_path("/gateways").await;
    assert_eq!(row_names(&b).await, all[..100]);
    assert_eq!(
        b.text("#pager-summary").await,
        "Showing 1–100 of 251 gateways"
    );
    assert!(!b.has("#page-prev").await, "no previous page on the first");
    assert_eq!(
        b.attrs(
            ".pager-bar:not(.bottom) .page-number[aria-current=page]",
            "id"
        )
        .await,
        ["page-1"]
    );
    // The unattached row is on every page.
    assert_eq!(shown(&b).await, 3);
    b.screenshot("gateways-paged").await;

    // Forward and back, with script: plain links, the live region follows the page.
    b.click("#page-next").await;
    b.wait_path("/gateways?page=2").await;
    assert_eq!(row_names(&b).await, all[100..200]);
    assert_eq!(
        b.text("#pager-summary").await,
        "Showing 101–200 of 251 gateways"
    );
    assert_eq!(shown(&b).await, 3);
    assert_eq!(
        b.attrs("#gateways-table", "data-live").await,
        ["/gateways/table?page=2"]
    );
    // The live refresh re-reads page 2, not the whole list.
    let before = b.attrs("#gateways-table", "data-refreshed").await;
    b.wait("the table refreshes by itself", || async {
        b.attrs("#gateways-table", "data-refreshed").await != before
    })
    .await;
    assert_eq!(row_names(&b).await, all[100..200]);
    b.click("#page-3").await;
    b.wait_path("/gateways?page=3").await;
    assert_eq!(row_names(&b).await, all[200..]);
    assert_eq!(
        b.text("#pager-summary").await,
        "Showing 201–251 of 251 gateways"
    );
    assert!(!b.has("#page-next").await, "no next page on the last");
    b.click("#page-prev").await;
    b.wait_path("/gateways?page=2").await;

    // A new order starts at its first page; paging keeps the order.
    b.click("#sort-name").await;
    b.wait_path("/gateways?order=desc").await;
    let desc = seeded_names(250, true, true);
    assert_eq!(row_names(&b).await, desc[..100]);
    b.click("#page-next").await;
    b.wait_path("/gateways?order=desc&page=2").await;
    assert_eq!(row_names(&b).await, desc[100..200]);
    // A sort link on page 2 keeps the other state and goes back to page 1.
    let sort_links = b.attrs("#gateways thead a.sort", "href").await;
    assert!(
        sort_links.iter().all(|h| !h.contains("page=")),
        "{sort_links:?}"
    );

    // A search spanning pages (by environment name: `gw-NNNN-env-0`, so not `local`), then
    // paging keeps both the search and the order.
    b.fill("#search", "ENV").await;
    b.wait_path("/gateways?order=desc&q=ENV").await;
    b.wait("the search shows its first page", || async {
        b.text_now("#pager-summary").await == "Showing 1–100 of 250 gateways matching “ENV”"
    })
    .await;
    let found = seeded_names(250, true, false);
    assert_eq!(row_names(&b).await, found[..100]);
    b.click("#page-next").await;
    b.wait_path("/gateways?order=desc&q=ENV&page=2").await;
    assert_eq!(row_names(&b).await, found[100..200]);
    assert_eq!(
        b.css("#search")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("ENV")
    );
    b.click("#page-3").await;
    b.wait_path("/gateways?order=desc&q=ENV&page=3").await;
    assert_eq!(row_names(&b).await, found[200..]);
    b.click("#page-1").await;
    b.wait_path("/gateways?order=desc&q=ENV").await;
    assert_eq!(row_names(&b).await, found[..100]);

    // Past the last page: the last page, at its own address. Nonsense: the first.
    b.goto(&up.url("/gateways?page=99")).await;
    b.wait_path("/gateways?page=3").await;
    assert_eq!(row_names(&b).await, all[200..]);
    b.goto(&up.url("/gateways?page=abc")).await;
    assert_eq!(row_names(&b).await, all[..100]);
    // A search on one page has no pager; the deleted view starts at its first page.
    b.goto(&up.url("/gateways?q=0042&page=2")).await;
    b.wait_path("/gateways?q=0042").await;
    assert_eq!(row_names(&b).await, ["gw-0042"]);
    assert!(!b.has(".pager").await);
    b.goto(&up.url("/gateways?page=2")).await;
    assert!(
        !b.attrs("#view-deleted", "href").await[0].contains("page="),
        "the other view starts at its first page"
    );
    b.close().await;

    // Without script: the pager and sort links carry every parameter (view, sort, order,
    // search, See more).
    let b = Browser::start(false).await;
    b.login(&up, "owner@switchyard.local", &up.password).await;
    b.wait_path("/gateways").await;
    b.click("#sort-gateway_url").await;
    b.wait_path("/gateways?sort=gateway_url").await;
    b.click("#see-more").await;
    b.wait_path("/gateways?sort=gateway_url&more=1").await;
    assert_eq!(shown(&b).await, 4);
    b.fill("#search", "0\n").await;
    b.wait_path("/gateways?sort=gateway_url&more=1&q=0").await;
    assert_eq!(
        b.text("#pager-summary").await,
        "Showing 1–100 of 250 gateways matching “0”"
    );
    b.click("#page-next").await;
    b.wait_path("/gateways?sort=gateway_url&q=0&more=1&page=2")
        .await;
    // Seeded Gateway URLs are `https://gw-NNNN.example.com`: the same order as the names.
    let by_url = seeded_names(250, false, false);
    assert_eq!(row_names(&b).await, by_url[100..200]);
    assert_eq!(shown(&b).await, 4, "See more stays open on page 2");
    b.click(".pager-bar.bottom a[rel=next]").await;
    b.wait_path("/gateways?sort=gateway_url&q=0&more=1&page=3")
        .await;
    assert_eq!(row_names(&b).await, by_url[200..]);
    b.click("#page-prev").await;
    b.wait_path("/gateways?sort=gateway_url&q=0&more=1&page=2")
        .await;
    b.click("#sort-gateway_url").await;
    b.wait_path("/gateways?sort=gateway_url&order=desc&q=0&more=1")
        .await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_a_gateway_command_joins_a_real_node_that_appears_online_without_a_reload() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    let b = Browser::start(true).await;
    b.login(&up, "owner@switchyard.local", &up.password).await;
    b.click("#add-gateway").await;
    b.wait_path("/gateways/add").await;

    // A name the rule refuses is shown next to its field, with its code.
    b.fill("#name", "").await;
    b.click("main button[type=submit]").await;
    assert!(b.text("#name-error").await.contains("GATEWAY_NAME_EMPTY"));
    b.fill("#name", "<script>alert(1)</script>").await;
    b.click("main button[type=submit]").await;
    if b.has("#name-error").await {
        let error = b.text("#name-error").await;
        assert!(error.contains("GATEWAY_NAME"), "{error}");
        b.screenshot("add-gateway-error").await;
    } else {
        // Allowed: the command quotes it as text.
        assert!(
            b.text("#command")
                .await
                .contains("'<script>alert(1)</script>'")
        );
        b.goto(&up.url("/gateways/add")).await;
    }

    b.fill("#name", "edge-1").await;
    b.select("#valid_for_minutes", "30").await;
    b.click("main button[type=submit]").await;
    let command = b.text("#command").await;
    b.screenshot("add-gateway").await;
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(&words[..2], ["switchyard", "gateway"], "{command}");
    assert_eq!(words[2], "--platform");
    assert_eq!(words[3], up.base);
    assert_eq!(words[4], "--install-token");
    assert!(words[5].starts_with("sy_inst_"), "{command}");
    assert_eq!(&words[6..], ["--name", "edge-1"]);

    // The Gateways page, then the node starts: its row appears online without a reload.
    b.click("a.button.primary[href='/gateways']").await;
    assert!(!row_names(&b).await.contains(&"edge-1".to_string()));
    b.client
        .execute("window.notReloaded = true", vec![])
        .await
        .unwrap();
    let node_dir = tempfile::tempdir().expect("node dir");
    let mut node = Command::new(BIN)
        .args(&words[1..])
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(node_dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the node");
    b.wait("edge-1 appears online", || async {
        let names = row_names(&b).await;
        let statuses = b
            .attrs("#gateways tr[data-gateway] .badge", "data-status")
            .await;
        names
            .iter()
            .zip(&statuses)
            .any(|(n, s)| n == "edge-1" && s == "online")
    })
    .await;
    let same_page = b
        .client
        .execute("return window.notReloaded === true", vec![])
        .await
        .unwrap();
    assert_eq!(same_page, json!(true), "the row appeared without a reload");
    b.screenshot("gateways-live").await;

    // Its settings page: Cluster Status with the head node, owner actions.
    b.client
        .find(Locator::LinkText("edge-1"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(b.text("h1").await, "edge-1");
    b.wait("the node row shows online", || async {
        b.attrs("#cluster tr[data-node] .badge", "data-status")
            .await
            == ["online"]
    })
    .await;
    assert!(b.text("#cluster").await.contains("head node"));
    assert!(b.text("#information").await.contains("Online"));
    assert!(b.has("#restart").await && b.has("#delete").await);
    b.screenshot("gateway-settings-online").await;

    // A form posted without its CSRF token is refused, and nothing happens.
    b.client
        .execute(
            "document.querySelector('form[action$=\"/restart\"] input[name=csrf]').remove()",
            vec![],
        )
        .await
        .unwrap();
    b.click("#restart").await;
    assert_eq!(b.text("#error-title").await, "Form expired");
    b.screenshot("csrf-refused").await;
    b.client.back().await.unwrap();
    b.client.refresh().await.unwrap();

    // Rename: a refused name is shown next to its field, then the new name is everywhere.
    let settings = b.path().await;
    assert!(!settings.contains('?'), "{settings}");
    b.click("#rename").await;
    b.wait_path(format!("{settings}/rename")).await;
    b.fill("#name", "").await;
    b.click("#save-name").await;
    let error = b.text("#name-error").await;
    assert!(error.contains("GATEWAY_NAME_EMPTY"), "{error}");
    b.screenshot("gateway-rename-error").await;
    b.fill("#name", "edge-one").await;
    b.click("#save-name").await;
    b.wait_path(format!("{settings}?done=renamed")).await;
    assert_eq!(b.text("h1").await, "edge-one");
    assert!(b.text(".notice").await.contains("renamed"));

    // Cluster Status: a live node has no Remove; once the node is stopped and reported
    // offline, the live refresh offers Remove, which takes it off the gateway.
    assert!(!b.has("button[data-action=remove-node]").await);
    stop(&mut node);
    b.wait("the stopped node can be removed", || async {
        b.has("#cluster button[data-action=remove-node]").await
    })
    .await;
    b.screenshot("gateway-settings-offline-node").await;
    b.click("#cluster button[data-action=remove-node]").await;
    b.wait_path(format!("{settings}?done=node_removed")).await;
    assert!(b.text(".notice").await.contains("Node removed"));
    assert!(!b.has("#cluster tr[data-node]").await);
    assert!(b.text("#cluster").await.contains("No node has joined"));

    // Delete warns, then deletes.
    b.click("#delete").await;
    assert!(b.text("main").await.contains("cannot be restored"));
    b.screenshot("gateway-delete").await;
    b.click("#confirm-delete").await;
    b.wait_path("/gateways?view=deleted&done=deleted").await;
    assert_eq!(row_names(&b).await, ["edge-one"]);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_restart_or_delete_and_actions_need_role_and_csrf() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    let store = up.store().await;
    let account = store.account_by_name("default").await.unwrap().unwrap().id;
    let password = "viewer password 1";
    store
        .create_user(
            store::NewUser {
                account_id: Some(account),
                name: "Vera Viewer".into(),
                email: Some("vera@example.com".into()),
                role: model::Role::Viewer,
                platform_admin: false,
                password_hash: Some(platform::console::hash_password(password)),
            },
            store::Audit::new(store::Actor::System, "user.create", platform::state::now()),
        )
        .await
        .unwrap();
    let (_, list) = up
        .rest(reqwest::Method::GET, "/api/v1/gateways", None)
        .await;
    let local = list["gateways"][0]["id"].as_str().unwrap().to_string();

    let b = Browser::start(true).await;
    b.login(&up, "vera@example.com", password).await;
    b.wait_path("/gateways").await;
    assert!(!b.has("#add-gateway").await, "a viewer cannot add gateways");
    assert!(
        !b.has("#install-tokens").await,
        "a viewer cannot see install tokens"
    );
    b.goto(&up.url("/gateways/install-tokens")).await;
    assert_eq!(b.text("#error-title").await, "Not allowed");
    b.goto(&up.url(&format!("/gateways/{local}"))).await;
    assert_eq!(b.text("h1").await, "local");
    assert!(!b.has("#restart").await && !b.has("#delete").await);
    assert!(!b.has("#rename").await, "a viewer cannot rename");
    b.screenshot("gateway-settings-viewer").await;
    b.goto(&up.url(&format!("/gateways/{local}/rename"))).await;
    assert_eq!(b.text("#error-title").await, "Not allowed");
    b.goto(&up.url(&format!("/gateways/{local}/delete"))).await;
    assert_eq!(b.text("#error-title").await, "Not allowed");

    // The viewer's session, outside the page: with the token a viewer is refused by role,
    // without it the form is refused before anything else.
    let cookie = b.client.get_named_cookie("sy_session").await.unwrap();
    b.goto(&up.url("/gateways")).await;
    let csrf = b
        .attrs("form[action='/logout'] input[name=csrf]", "value")
        .await[0]
        .clone();
    let post = |fields: Vec<(&'static str, String)>| {
        up.http
            .post(up.url(&format!("/gateways/{local}/restart")))
            .header("cookie", format!("sy_session={}", cookie.value()))
            .form(&fields)
            .send()
    };
    let refused = post(vec![("csrf", csrf.clone())]).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("Not allowed"));
    let no_token = post(vec![]).await.unwrap();
    assert_eq!(no_token.status(), 403);
    assert!(no_token.text().await.unwrap().contains("Form expired"));
    let wrong_token = post(vec![("csrf", "0".repeat(64))]).await.unwrap();
    assert_eq!(wrong_token.status(), 403);

    // Security headers on every console response; the REST API does not take the cookie.
    for path in ["/gateways", "/login", "/assets/console.js", "/no-such-page"] {
        let response = up
            .http
            .get(up.url(path))
            .header("cookie", format!("sy_session={}", cookie.value()))
            .send()
            .await
            .unwrap();
        let h = response.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert!(h.contains_key("referrer-policy"), "{path}");
    }
    let rest = up
        .http
        .get(up.url("/api/v1/gateways"))
        .header("cookie", format!("sy_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 401, "the REST API is bearer-only");
    b.close().await;
}

/// The REST list of install tokens, by id: `revoked_at` (null while not revoked).
async fn rest_install_tokens(up: &Up) -> Vec<(String, serde_json::Value)> {
    let (status, list) = up
        .rest(reqwest::Method::GET, "/api/v1/install-tokens", None)
        .await;
    assert_eq!(status, 200, "{list}");
    list["install_tokens"]
        .as_array()
        .expect("install_tokens")
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["revoked_at"].clone(),
            )
        })
        .collect()
}

/// The audit records of `action` on install token `id`.
async fn audited(up: &Up, action: &str, id: &str) -> Vec<serde_json::Value> {
    let (status, list) = up
        .rest(reqwest::Method::GET, "/api/v1/audit?limit=500", None)
        .await;
    assert_eq!(status, 200, "{list}");
    list["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["action"] == action && r["target_id"] == id)
        .cloned()
        .collect()
}

/// A join with `token` as a node would send it; answers the status.
async fn join_with(up: &Up, token: &str, gateway: &str) -> u16 {
    up.http
        .post(up.url("/api/v1/nodes/join"))
        .json(&json!({
            "protocol_version": 1,
            "install_token": token,
            "gateway_name": gateway,
            "node_id": uuid::Uuid::new_v4(),
            "host_name": "test-host",
            "runtime_version": "test",
        }))
        .send()
        .await
        .expect("join")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_tokens_are_listed_and_revoked_after_confirmation_without_script() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    // Without script: listing and revoking are links and forms.
    let b = Browser::start(false).await;
    b.login(&up, browser::OWNER_EMAIL, &up.password).await;
    b.wait_path("/gateways").await;
    b.click("#install-tokens").await;
    b.wait_path("/gateways/install-tokens").await;
    assert_eq!(b.text("h1").await, "Install tokens");
    let before = b
        .attrs("#install-tokens tr[data-token]", "data-token")
        .await;

    // Add a Gateway creates a token; the page links to the list, which shows it first.
    b.click("#add-gateway").await;
    b.wait_path("/gateways/add").await;
    b.fill("#name", "edge-t").await;
    b.select("#valid_for_minutes", "120").await;
    b.click("main button[type=submit]").await;
    let command = b.text("#command").await;
    let secret = command
        .split_whitespace()
        .find(|w| w.starts_with("sy_inst_"))
        .unwrap_or_else(|| panic!("no token in {command}"))
        .to_string();
    b.click("#manage-install-tokens").await;
    b.wait_path("/gateways/install-tokens").await;
    let ids = b
        .attrs("#install-tokens tr[data-token]", "data-token")
        .await;
    let new: Vec<&String> = ids.iter().filter(|id| !before.contains(id)).collect();
    assert_eq!(new.len(), 1, "one new token: {ids:?} (before {before:?})");
    let id = new[0].clone();
    assert_eq!(ids[0], id, "newest first: {ids:?}");
    let row = format!("#install-tokens tr[data-token='{id}']");
    assert_eq!(b.attrs(&row, "data-state").await, ["active"]);
    let text = b.text(&row).await;
    assert!(text.contains("active"), "{text}");
    assert!(
        !text.contains("the platform"),
        "created by the owner: {text}"
    );
    assert!(!text.contains(&secret), "the secret is never listed");
    assert!(
        text.contains("(in 1 h)") || text.contains("(in 2 h)"),
        "{text}"
    );
    // The REST list is the same list.
    let rest: Vec<String> = rest_install_tokens(&up)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(rest, ids, "the console lists what REST lists, in its order");
    b.screenshot("install-tokens").await;
    // It joins nodes while active.
    assert_eq!(join_with(&up, &secret, "edge-t").await, 201);

    // Revoke asks first; Cancel changes nothing.
    b.click(&format!("{row} a[data-action=revoke]")).await;
    b.wait_path(format!("/gateways/install-tokens/{id}/revoke"))
        .await;
    assert!(b.text("main").await.contains("No node can join with it"));
    b.screenshot("install-token-revoke").await;
    b.click("main a.button.secondary").await;
    b.wait_path("/gateways/install-tokens").await;
    assert_eq!(b.attrs(&row, "data-state").await, ["active"]);
    assert!(audited(&up, "install_token.revoke", &id).await.is_empty());

    // Confirmed: revoked in the list, in REST, and for joins; audited once, as REST does.
    b.click(&format!("{row} a[data-action=revoke]")).await;
    b.click("#confirm-revoke").await;
    b.wait_path("/gateways/install-tokens?done=revoked").await;
    assert!(b.text(".notice").await.contains("Install token revoked"));
    assert_eq!(b.attrs(&row, "data-state").await, ["revoked"]);
    assert!(
        !b.has(&format!("{row} a[data-action=revoke]")).await,
        "a revoked token offers no Revoke"
    );
    let revoked_at = rest_install_tokens(&up)
        .await
        .into_iter()
        .find(|(t, _)| *t == id)
        .map(|(_, r)| r)
        .expect("still listed");
    assert!(revoked_at.is_string(), "REST sees it revoked: {revoked_at}");
    assert_eq!(join_with(&up, &secret, "edge-t").await, 401);
    let records = audited(&up, "install_token.revoke", &id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["result"], "allowed");
    assert_eq!(records[0]["actor_kind"], "user");
    b.screenshot("install-tokens-revoked").await;

    // Its confirmation page now only says so.
    b.goto(&up.url(&format!("/gateways/install-tokens/{id}/revoke")))
        .await;
    assert!(b.text("#already-revoked").await.contains("already revoked"));
    assert!(!b.has("#confirm-revoke").await);

    // A token revoked elsewhere (REST) while its confirmation page was open: the console
    // says it was already revoked, and nothing changes.
    let (status, second) = up
        .rest(
            reqwest::Method::POST,
            "/api/v1/install-tokens",
            Some(json!({ "valid_for_minutes": 30 })),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let second = second["id"].as_str().unwrap().to_string();
    b.goto(&up.url(&format!("/gateways/install-tokens/{second}/revoke")))
        .await;
    assert!(b.has("#confirm-revoke").await);
    let (status, _) = up
        .rest(
            reqwest::Method::DELETE,
            &format!("/api/v1/install-tokens/{second}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    b.click("#confirm-revoke").await;
    b.wait_path("/gateways/install-tokens?done=already_revoked")
        .await;
    assert!(b.text(".notice").await.contains("already revoked"));
    assert_eq!(
        b.attrs(
            &format!("#install-tokens tr[data-token='{second}']"),
            "data-state"
        )
        .await,
        ["revoked"]
    );

    // An unknown token: its confirmation page and a posted revocation answer 404 with the
    // list and a sentence saying nothing was revoked — never a server error.
    let unknown = uuid::Uuid::new_v4();
    b.goto(&up.url(&format!("/gateways/install-tokens/{unknown}/revoke")))
        .await;
    assert!(
        b.text("#revoke-error")
            .await
            .contains("nothing was revoked")
    );
    assert!(b.has("#install-tokens").await);
    b.screenshot("install-token-unknown").await;
    let cookie = b.client.get_named_cookie("sy_session").await.unwrap();
    let csrf = b
        .attrs("form[action='/logout'] input[name=csrf]", "value")
        .await[0]
        .clone();
    for target in [unknown.to_string(), "not-a-token".to_string()] {
        let response = up
            .http
            .post(up.url(&format!("/gateways/install-tokens/{target}/revoke")))
            .header("cookie", format!("sy_session={}", cookie.value()))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{target}");
        let body = response.text().await.unwrap();
        assert!(body.contains("nothing was revoked"), "{target}: {body}");
    }
    // Without the CSRF token nothing is revoked.
    let (status, third) = up
        .rest(
            reqwest::Method::POST,
            "/api/v1/install-tokens",
            Some(json!({ "valid_for_minutes": 30 })),
        )
        .await;
    assert_eq!(status, 201);
    let third = third["id"].as_str().unwrap().to_string();
    let response = up
        .http
        .post(up.url(&format!("/gateways/install-tokens/{third}/revoke")))
        .header("cookie", format!("sy_session={}", cookie.value()))
        .form(&[("csrf", "0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let still = rest_install_tokens(&up)
        .await
        .into_iter()
        .find(|(t, _)| *t == third)
        .map(|(_, r)| r);
    assert_eq!(still, Some(serde_json::Value::Null));
    b.close().await;
}

/// The console's deployment statuses of one API (`data-deployment` → `data-status`).
async fn console_statuses(b: &Browser, up: &Up, api: &str) -> Vec<(String, String)> {
    b.goto(&up.url(&format!("/apis/{api}"))).await;
    let ids = b
        .attrs("#deployments tr[data-deployment]", "data-deployment")
        .await;
    let statuses = b
        .attrs("#deployments tr[data-deployment] .badge", "data-status")
        .await;
    let mut pairs: Vec<(String, String)> = ids.into_iter().zip(statuses).collect();
    pairs.sort();
    pairs
}

/// REST's deployment statuses of one API.
async fn rest_statuses(up: &Up, api: &str) -> Vec<(String, String)> {
    let (status, list) = up
        .rest(
            reqwest::Method::GET,
            &format!("/api/v1/apis/{api}/deployments"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let mut pairs: Vec<(String, String)> = list["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

/// The badges of one API's row on the APIs list: (status, count).
async fn list_counts(b: &Browser, up: &Up, api: &str) -> Vec<(String, String)> {
    b.goto(&up.url("/apis")).await;
    let row = format!("#apis tr[data-api='{api}'] td.deployments .badge");
    let statuses = b.attrs(&row, "data-status").await;
    let counts = b.attrs(&row, "data-count").await;
    statuses.into_iter().zip(counts).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_statuses_in_the_console_are_the_rest_derivation() {
    if !browser_available() {
        return;
    }
    let up = Up::start();
    use reqwest::Method;
    let production = up.environment_id("Production").await.expect("Production");
    // A gateway no node ever joined: a deployment there is stored as sent to the gateway but
    // derived Pending (nothing applied it); an unattached environment requires configuration.
    let (status, dark) = up.create_gateway("dark").await;
    assert_eq!(status, 201, "{dark}");
    let (status, dark_env) = up
        .create_environment("Dark", Some(dark["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 201, "{dark_env}");
    let (status, loose) = up.create_environment("Loose", None).await;
    assert_eq!(status, 201, "{loose}");
    let mut apis = Vec::new();
    for (name, base) in [("Orders", "orders"), ("Billing", "billing")] {
        let (status, api) = up
            .rest(
                Method::POST,
                "/api/v1/apis",
                Some(json!({ "name": name, "version": "v1", "api_type": "REST",
                    "base_path": base, "upstream_targets": ["http://127.0.0.1:9/"] })),
            )
            .await;
        assert_eq!(status, 201, "{api}");
        apis.push(api["id"].as_str().unwrap().to_string());
    }
    let (orders, billing) = (&apis[0], &apis[1]);
    let deploy = |api: String, env: String| {
        let up = &up;
        async move {
            let (status, d) = up
                .rest(
                    Method::POST,
                    &format!("/api/v1/apis/{api}/deployments"),
                    Some(json!({ "environment_id": env })),
                )
                .await;
            assert_eq!(status, 201, "{d}");
        }
    };
    for env in [
        &production,
        dark_env["id"].as_str().unwrap(),
        loose["id"].as_str().unwrap(),
    ] {
        deploy(orders.clone(), env.to_string()).await;
    }
    deploy(
        billing.clone(),
        dark_env["id"].as_str().unwrap().to_string(),
    )
    .await;

    let b = Browser::start(true).await;
    b.login(&up, browser::OWNER_EMAIL, &up.password).await;
    b.wait_path("/gateways").await;
    // Once the local node applied Production's configuration: all three statuses at once.
    b.wait("REST sees Orders sent to the local gateway", || async {
        rest_statuses(&up, orders)
            .await
            .iter()
            .any(|(_, s)| s == "sent_to_gateway")
    })
    .await;
    let mut expected: Vec<String> = rest_statuses(&up, orders)
        .await
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    expected.sort();
    assert_eq!(
        expected,
        ["pending", "requires_configuration", "sent_to_gateway"],
        "REST derives each status"
    );
    // The API page shows, per deployment, exactly REST's status.
    assert_eq!(
        console_statuses(&b, &up, orders).await,
        rest_statuses(&up, orders).await
    );
    assert_eq!(
        console_statuses(&b, &up, billing).await,
        rest_statuses(&up, billing).await
    );
    assert_eq!(
        b.attrs("#deployments .badge", "data-status").await,
        ["pending"]
    );
    assert!(
        b.text("#deployments")
            .await
            .contains("Waiting for every online node")
    );
    b.screenshot("api-pending").await;
    // The APIs list counts the same statuses, read in one query for the account.
    let counts = |pairs: Vec<(String, String)>| {
        let mut c: Vec<(String, String)> = ["sent_to_gateway", "pending", "requires_configuration"]
            .iter()
            .map(|s| {
                let n = pairs.iter().filter(|(_, x)| x == s).count();
                (s.to_string(), n.to_string())
            })
            .filter(|(_, n)| n != "0")
            .collect();
        c.sort();
        c
    };
    let mut shown = list_counts(&b, &up, orders).await;
    shown.sort();
    assert_eq!(shown, counts(rest_statuses(&up, orders).await));
    let mut shown = list_counts(&b, &up, billing).await;
    shown.sort();
    assert_eq!(shown, [("pending".to_string(), "1".to_string())]);
    b.screenshot("apis-statuses").await;

    // Detaching Production changes the derived status at once (the stored one would not):
    // the console follows REST.
    let (status, body) = up
        .rest(
            Method::PUT,
            &format!("/api/v1/environments/{production}/gateway"),
            Some(json!({ "gateway_id": null })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let now = rest_statuses(&up, orders).await;
    assert!(
        !now.iter().any(|(_, s)| s == "sent_to_gateway"),
        "REST: {now:?}"
    );
    assert_eq!(console_statuses(&b, &up, orders).await, now);
    let mut shown = list_counts(&b, &up, orders).await;
    shown.sort();
    assert_eq!(shown, counts(now));
    // The delete page warns from the same statuses: Billing's pending deployment may be
    // served by some node, so it warns that the gateways stop serving it.
    b.goto(&up.url(&format!("/apis/{billing}/delete"))).await;
    assert!(
        b.text("#warn-deployments")
            .await
            .contains("stop serving it")
    );
    b.close().await;
}
