//! Hot swap under load: snapshots swapped every 200 ms while 8 connections send requests and
//! the targets change; no request fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use testkit::{Behavior, Client, MockUpstream, SnapshotBuilder};

use crate::{start, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_under_load_loses_nothing() {
    let a = MockUpstream::start(Behavior::Echo).await;
    let b = MockUpstream::start(Behavior::Echo).await;
    let sets = [vec![a.url()], vec![b.url()], vec![a.url(), b.url()]];
    let snapshot = |generation: u64| {
        let targets = &sets[generation as usize % sets.len()];
        // An API that comes and goes, to change the routing table too.
        let mut builder = SnapshotBuilder::new(generation).api("svc", "svc", targets);
        if generation % 2 == 0 {
            builder = builder.api(
                &format!("extra{generation}"),
                &format!("extra{generation}"),
                targets,
            );
        }
        builder.build()
    };
    let node = Arc::new(start(snapshot(1)).await);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, ok) = (stop.clone(), ok.clone());
        let target = url(&node, "/ws/rest/svc/x");
        clients.push(tokio::spawn(async move {
            let client = Client::new();
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match client.get(&target).await {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("status {}", r.status)),
                    Err(e) => failures.push(e),
                }
            }
            failures
        }));
    }
    let started = Instant::now();
    let mut generation = 1;
    while started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        generation += 1;
        node.apply_snapshot(snapshot(generation)).expect("applies");
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "only {} requests",
        ok.load(Ordering::Relaxed)
    );
    assert!(a.requests() > 0 && b.requests() > 0);
    assert_eq!(node.applied().unwrap().0, generation);
}
