//! The platform–gateway link end to end with real processes: `switchyard platform` (short status
//! timings through its advanced flags) and `switchyard gateway` nodes, started, stopped
//! (SIGTERM) and killed (SIGKILL) as an operator or a crash would. Ports are picked free, data
//! lives in temp dirs, every wait has a deadline and every child is killed on drop.

mod e2e;

use std::time::{Duration, Instant};

use e2e::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_start_online_then_sigterm_not_running() {
    let root = tempfile::tempdir().unwrap();
    let (platform, mut node, gw, id) = platform_and_node(root.path(), "g-start").await;
    platform.wait_node(&gw, &id, "online", None).await;
    let status = node.stop("TERM").await;
    assert!(status.success(), "SIGTERM exits 0: {status}");
    platform
        .wait_node(&gw, &id, "offline", Some("not_running"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_online_is_lost_contact_within_threshold() {
    let root = tempfile::tempdir().unwrap();
    let (platform, mut node, gw, id) = platform_and_node(root.path(), "g-kill").await;
    platform.wait_node(&gw, &id, "online", None).await;
    let killed = Instant::now();
    node.stop("KILL").await;
    platform
        .wait_node(&gw, &id, "offline", Some("lost_contact"))
        .await;
    let took = killed.elapsed();
    let threshold = Duration::from_millis(LOST_CONTACT_FLOOR_MS.max(3 * HEARTBEAT_MS));
    // Threshold + one status interval, plus slack for a loaded 2-core machine and polling.
    let bound = threshold + Duration::from_millis(STATUS_INTERVAL_MS) + Duration::from_millis(700);
    assert!(
        took <= bound,
        "lost_contact after {took:?}, bound {bound:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_one_killed_is_cluster_issue_then_back_online() {
    let root = tempfile::tempdir().unwrap();
    let (platform, a, gw, a_id) = platform_and_node(root.path(), "g-three").await;
    let mut others = Vec::new();
    for name in ["node-b", "node-c"] {
        let token = platform.install_token().await;
        let mut node = Node::new(root.path(), name, &platform);
        node.start(Some(("g-three", &token)));
        let id = node.id().await;
        others.push((node, id));
    }
    platform.wait_node(&gw, &a_id, "online", None).await;
    for (_, id) in &others {
        platform.wait_node(&gw, id, "online", None).await;
    }
    assert_eq!(platform.nodes(&gw).await.len(), 3);
    let (victim, victim_id) = &mut others[0];
    victim.stop("KILL").await;
    let row = wait_until("cluster_issues with NODE_OFFLINE", || async {
        let row = platform.gateway("g-three").await?;
        let offline = row["issues"]
            .as_array()?
            .iter()
            .any(|i| i["code"] == "NODE_OFFLINE");
        (row["status"]["state"] == "cluster_issues" && offline).then_some(row)
    })
    .await;
    assert!(
        row["issues"].to_string().contains(victim_id.as_str()),
        "{row:#}"
    );
    victim.start(None);
    platform.wait_node(&gw, victim_id, "online", None).await;
    wait_until("the gateway online again", || async {
        let row = platform.gateway("g-three").await?;
        (row["status"]["state"] == "online").then_some(())
    })
    .await;
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_down_traffic_continues_cache_serves_and_nodes_catch_up() {
    let root = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let up = upstream().await;
    let (mut platform, mut a, gw, a_id) = platform_and_node(root.path(), "g-down").await;
    let token = platform.install_token().await;
    let mut b = Node::new(root.path(), "node-b", &platform);
    b.start(Some(("g-down", &token)));
    let b_id = b.id().await;
    platform
        .deploy(&gw, "Production", "one", &format!("http://{up}"))
        .await;
    a.wait_status(&client, "/ws/rest/one/x", 200).await;
    b.wait_status(&client, "/ws/rest/one/x", 200).await;

    // Platform gone: traffic continues without a single failure.
    platform.stop("KILL").await;
    let started = Instant::now();
    let mut failed = Vec::new();
    for i in 0..200 {
        match client.get(a.url(&format!("/ws/rest/one/{i}"))).send().await {
            Ok(r) if r.status() == 200 => {}
            other => failed.push(format!("{i}: {other:?}")),
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(failed.is_empty(), "failed requests: {failed:#?}");
    assert!(started.elapsed() >= Duration::from_secs(2));

    // A node restarted while the platform is away serves from its cache.
    let status = b.stop("TERM").await;
    assert!(status.success(), "{status}");
    b.start(None);
    b.wait_status(&client, "/ws/rest/one/cached", 200).await;

    // Platform back; a change made while node A is stopped reaches it when it starts.
    platform.spawn().await;
    platform.wait_node(&gw, &b_id, "online", None).await;
    platform.wait_node(&gw, &a_id, "online", None).await;
    a.stop("TERM").await;
    platform
        .deploy(&gw, "Production", "two", &format!("http://{up}"))
        .await;
    b.wait_status(&client, "/ws/rest/two/x", 200).await;
    a.start(None);
    a.wait_status(&client, "/ws/rest/two/x", 200).await;
    platform.wait_node(&gw, &a_id, "online", None).await;
    let nodes = platform.nodes(&gw).await;
    let generations: Vec<&Value> = nodes.iter().map(|n| &n["applied_generation"]).collect();
    assert!(
        generations.windows(2).all(|w| w[0] == w[1]),
        "every node on the same generation: {nodes:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_gateway_stops_its_node_with_a_clear_message() {
    let root = tempfile::tempdir().unwrap();
    let (platform, mut node, gw, id) = platform_and_node(root.path(), "g-deleted").await;
    platform.wait_node(&gw, &id, "online", None).await;
    platform
        .ok(
            reqwest::Method::DELETE,
            &format!("/api/v1/gateways/{gw}"),
            None,
        )
        .await;
    let mut proc = node.proc.take().expect("running");
    let status = proc.wait_exit().await;
    assert!(!status.success(), "exit code is non-zero: {status}");
    let log = proc.log();
    assert!(
        log.contains("refused this node for good"),
        "clear message: {log}"
    );
    // Its node is not shown online in the deleted gateway (issue 8 item 7).
    let nodes = platform.nodes(&gw).await;
    assert_eq!(
        nodes[0]["status"],
        json!({ "state": "offline", "variant": "not_running" })
    );
}

/// Issue 8 items 5 and 9 with real processes: a node suspended (SIGSTOP) right after a
/// restart was requested becomes Restarting-unresponsive with RESTART_TIMED_OUT; resumed
/// (SIGCONT) it reports again and leaves Restarting (the pending restart completes or is
/// cancelled), a new restart is accepted and completes, and a clean stop shows as one. The
/// gateway URL is the node's own listener, not the bind address default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_during_a_restart_then_resumed_leaves_restarting() {
    let root = tempfile::tempdir().unwrap();
    let (platform, mut node, gw, id) = platform_and_node(root.path(), "g-suspended").await;
    platform.wait_node(&gw, &id, "online", None).await;
    let row = wait_until("the gateway URL", || async {
        platform
            .gateway("g-suspended")
            .await
            .filter(|g| g["gateway_url"].is_string())
    })
    .await;
    assert_eq!(
        row["gateway_url"],
        format!("http://127.0.0.1:{}", node.port)
    );

    let restart = format!("/api/v1/gateways/{gw}/restart");
    node.proc.as_ref().expect("running").signal("STOP");
    let (status, body) = platform
        .call(reqwest::Method::POST, &restart, Some(json!({})))
        .await;
    assert_eq!(status, 202, "{body:#}");
    platform
        .wait_node(&gw, &id, "restarting", Some("unresponsive"))
        .await;
    node.proc.as_ref().expect("running").signal("CONT");
    platform.wait_node(&gw, &id, "online", None).await;
    wait_until("RESTART_TIMED_OUT cleared", || async {
        let g = platform.gateway("g-suspended").await?;
        (g["status"]["state"] == "online" && g["issues"].as_array()?.is_empty()).then_some(())
    })
    .await;

    // A new restart is possible and completes with a new process.
    let (status, body) = platform
        .call(reqwest::Method::POST, &restart, Some(json!({})))
        .await;
    assert_eq!(status, 202, "{body:#}");
    platform.wait_node(&gw, &id, "restarting", None).await;
    platform.wait_node(&gw, &id, "online", None).await;
    node.stop("TERM").await;
    platform
        .wait_node(&gw, &id, "offline", Some("not_running"))
        .await;
}
