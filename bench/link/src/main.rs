//! `linkbench`: measures the platform–gateway link (issue 4, bench/RESULTS.md "Platform–gateway
//! link"). `serve` runs a release platform with default link timings; `propagate` times 100
//! configuration changes to a 3-node gateway of real `switchyard gateway` processes and the
//! detection of a SIGKILLed node; `simulate` holds thousands of simulated nodes speaking the
//! link protocol and reports the platform's CPU and heartbeat round trips. See README.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use platform::client::Client;
use platform::dto::{
    AttachEnvironment, ClassificationDto, CreateEnvironment, CreateInstallToken,
    EnvironmentConfiguration, GatewayRowDto, NodeDto, StateDto, VariantDto,
};
use protocol::link::{
    ApplyResult, Counters, JoinRequest, JoinResponse, NodeMessage, PROTOCOL_VERSION,
    PROTOCOL_VERSION_HEADER, PlatformMessage, ReportedState,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A platform (default `LinkConfig`: 5 s heartbeats, 15 s threshold) on `--db`; writes the
    /// owner's token to `--token-file`.
    Serve {
        #[arg(long)]
        db: String,
        #[arg(long)]
        listen: String,
        #[arg(long)]
        token_file: PathBuf,
    },
    /// Propagation (REST change → last node's ack recorded) and SIGKILL detection.
    Propagate {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token_file: PathBuf,
        /// The `switchyard` binary for the node processes.
        #[arg(long)]
        switchyard: PathBuf,
        #[arg(long)]
        work_dir: PathBuf,
        #[arg(long, default_value_t = 100)]
        changes: usize,
        #[arg(long, default_value_t = 3)]
        kills: usize,
    },
    /// Simulated nodes: join, link, heartbeat every 5 s (staggered); platform CPU and
    /// heartbeat+ping round trips over `--duration` seconds.
    Simulate {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token_file: PathBuf,
        #[arg(long, default_value_t = 5000)]
        nodes: usize,
        #[arg(long, default_value_t = 100)]
        gateways: usize,
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Each simulated node's heartbeat period (the platform's default interval is 5 s;
        /// shorter ones reach a given heartbeat rate with fewer nodes).
        #[arg(long, default_value_t = 5000)]
        heartbeat_ms: u64,
        #[arg(long)]
        platform_pid: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Serve {
            db,
            listen,
            token_file,
        } => serve(&db, &listen, &token_file).await,
        Cmd::Propagate {
            url,
            token_file,
            switchyard,
            work_dir,
            changes,
            kills,
        } => {
            let api = Api::new(&url, &token_file)?;
            propagate(&api, &switchyard, &work_dir, changes, kills).await
        }
        Cmd::Simulate {
            url,
            token_file,
            nodes,
            gateways,
            duration,
            heartbeat_ms,
            platform_pid,
        } => {
            let api = Api::new(&url, &token_file)?;
            let period = Duration::from_millis(heartbeat_ms.max(1));
            simulate(&api, nodes, gateways, duration, period, platform_pid).await
        }
    }
}

async fn serve(db: &str, listen: &str, token_file: &Path) -> anyhow::Result<()> {
    let store = store::Store::open(db, store::StoreOptions::default()).await?;
    let tokens = platform::bootstrap::bootstrap(&store, platform::state::now()).await?;
    std::fs::write(token_file, &tokens.owner_token)?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let platform = platform::Platform::start_with(
        platform::PlatformConfig { store },
        platform::LinkConfig::default(),
        listener,
    )
    .await?;
    eprintln!(
        "platform on http://{} (pid {})",
        platform.addr(),
        std::process::id()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// The platform's typed REST client with the owner's token.
struct Api {
    base: String,
    client: Client,
}

impl Api {
    fn new(url: &str, token_file: &Path) -> anyhow::Result<Api> {
        let token = std::fs::read_to_string(token_file)?;
        let client = Client::new(url, &token, Duration::from_secs(30))?;
        Ok(Api {
            base: client.base().to_owned(),
            client,
        })
    }

    async fn install_token(&self) -> anyhow::Result<String> {
        let body = CreateInstallToken {
            valid_for_minutes: 120,
        };
        Ok(self.client.create_install_token(&body).await?.token)
    }

    async fn gateway(&self, name: &str) -> anyhow::Result<Option<GatewayRowDto>> {
        let list = self.client.gateways().await?;
        Ok(list.gateways.into_iter().find(|g| g.name == name))
    }

    async fn nodes(&self, gateway: Uuid) -> anyhow::Result<Vec<NodeDto>> {
        Ok(self.client.gateway_nodes(gateway).await?.nodes)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn spawn_node(
    bin: &Path,
    api: &Api,
    dir: &Path,
    i: usize,
    token: Option<&str>,
) -> anyhow::Result<Child> {
    let mut cmd = Command::new(bin);
    cmd.arg("gateway")
        .args(["--platform", &api.base, "--name", "linkbench"])
        .arg("--data-dir")
        .arg(dir.join(format!("node{i}")))
        .args(["--listen", &format!("127.0.0.1:{}", 18100 + i)])
        .args(["--admin-listen", &format!("127.0.0.1:{}", 18200 + i)])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("node{i}.log")))?);
    if let Some(t) = token {
        cmd.args(["--install-token", t]);
    }
    Ok(cmd.spawn()?)
}

async fn wait_online(api: &Api, gateway: Uuid, n: usize, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let nodes = api.nodes(gateway).await?;
        let online = nodes
            .iter()
            .filter(|n| n.status.state == StateDto::Online)
            .count();
        let gw_online = api
            .client
            .gateways()
            .await?
            .gateways
            .iter()
            .any(|g| g.id == gateway && g.status.state == StateDto::Online);
        if online >= n && gw_online {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("nodes not online in time: {nodes:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn propagate(
    api: &Api,
    bin: &Path,
    dir: &Path,
    changes: usize,
    kills: usize,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let token = api.install_token().await?;
    let mut children = vec![spawn_node(bin, api, dir, 0, Some(&token))?];
    let gateway = loop {
        if let Some(g) = api.gateway("linkbench").await? {
            break g.id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for i in 1..3 {
        children.push(spawn_node(bin, api, dir, i, Some(&token))?);
    }
    wait_online(api, gateway, 3, Duration::from_secs(60)).await?;
    let env = api
        .client
        .create_environment(&CreateEnvironment {
            name: "linkbench".into(),
            classification: ClassificationDto::Test,
        })
        .await?
        .id;
    let attach = AttachEnvironment {
        gateway_id: Some(gateway),
    };
    api.client.attach_environment(env, &attach).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Propagation: after each PUT's response, poll the nodes list (every 1 ms) until every node's
    // recorded applied_generation is above the highest seen before the change.
    let mut times = Vec::new();
    for i in 0..changes {
        let before = api
            .nodes(gateway)
            .await?
            .iter()
            .filter_map(|n| n.applied_generation)
            .max()
            .unwrap_or(0);
        let paths = EnvironmentConfiguration {
            rest_path: format!("bench/rest{i}"),
            soap_path: "ws/soap".into(),
            soap12_path: "ws/soap12".into(),
            odata_path: "ws/odata".into(),
        };
        api.client.configure_environment(env, &paths).await?;
        let t0 = Instant::now();
        loop {
            let nodes = api.nodes(gateway).await?;
            if nodes.len() >= 3
                && nodes
                    .iter()
                    .all(|n| n.applied_generation.unwrap_or(0) > before)
            {
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("change {i} not acknowledged in 10 s: {nodes:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "propagation: {} changes, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        sorted.len(),
        percentile(&sorted, 50.0),
        percentile(&sorted, 90.0),
        percentile(&sorted, 99.0),
        sorted.last().copied().unwrap_or(f64::NAN)
    );

    // Detection: SIGKILL one node, poll the gateways list every 100 ms until the gateway is
    // no longer online; then restart the node (no token) and wait for Online again.
    for k in 0..kills {
        let victim = k % 3;
        let killed = Instant::now();
        children[victim].kill()?; // SIGKILL
        let _ = children[victim].wait();
        let status = loop {
            let g = api.gateway("linkbench").await?.context("gateway")?;
            if g.status.state != StateDto::Online {
                break g;
            }
            if killed.elapsed() > Duration::from_secs(120) {
                bail!("no status change in 120 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        println!(
            "detection {}: {:.1} s → {} / {} issues {}",
            k + 1,
            killed.elapsed().as_secs_f64(),
            status.status.state,
            status.status.variant.map_or("-", VariantDto::as_str),
            status
                .issues
                .iter()
                .map(|i| i.code.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        children[victim] = spawn_node(bin, api, dir, victim, None)?;
        wait_online(api, gateway, 3, Duration::from_secs(60)).await?;
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    Ok(())
}

/// Round trips (µs) of heartbeat + ping → pong during the measurement window.
type Samples = Arc<Mutex<Vec<u32>>>;

async fn simulate(
    api: &Api,
    n: usize,
    gateways: usize,
    duration: u64,
    period: Duration,
    pid: u32,
) -> anyhow::Result<()> {
    let token = api.install_token().await?;
    let http = reqwest::Client::new();
    let join = |i: usize| {
        let http = http.clone();
        let url = format!("{}/api/v1/nodes/join", api.base);
        let token = token.clone();
        async move {
            let node_id = uuid::Uuid::new_v4().to_string();
            let r = http
                .post(url)
                .header(PROTOCOL_VERSION_HEADER, PROTOCOL_VERSION.to_string())
                .json(&JoinRequest {
                    protocol_version: PROTOCOL_VERSION,
                    install_token: token,
                    gateway_name: format!("sim-{:03}", i % gateways),
                    node_id: node_id.clone(),
                    host_name: format!("sim{i}"),
                    runtime_version: "0.1.0".into(),
                })
                .send()
                .await?;
            let status = r.status();
            if !status.is_success() {
                bail!("join {i}: {status} {}", r.text().await?);
            }
            let joined: JoinResponse = r.json().await?;
            anyhow::Ok((node_id, joined.node_credential))
        }
    };
    let started = Instant::now();
    let mut creds = Vec::with_capacity(n);
    // The first node of each gateway creates it; the rest join in parallel.
    for i in 0..gateways.min(n) {
        creds.push(join(i).await?);
    }
    let rest: Vec<_> = futures_util::stream::iter(gateways.min(n)..n)
        .map(join)
        .buffer_unordered(32)
        .collect()
        .await;
    for r in rest {
        creds.push(r?);
    }
    eprintln!(
        "joined {n} nodes in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The platform's memory before any link exists (every node joined), so the growth after
    // linking and the warm-up is what the idle links cost.
    let rss_unlinked = rss_kib(pid)?;
    let samples: Samples = Arc::new(Mutex::new(Vec::new()));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let connected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let ws_url = format!("{}/api/v1/link", api.base.replacen("http", "ws", 1));
    for (i, (node_id, cred)) in creds.into_iter().enumerate() {
        let stagger = period.mul_f64(i as f64 / n as f64);
        let (ws_url, samples, measuring, connected, gate) = (
            ws_url.clone(),
            samples.clone(),
            measuring.clone(),
            connected.clone(),
            gate.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = sim_node(
                ws_url, node_id, cred, stagger, period, samples, measuring, connected, gate,
            )
            .await
            {
                eprintln!("node {i}: {e:#}");
            }
        });
    }
    let t = Instant::now();
    while connected.load(std::sync::atomic::Ordering::Relaxed) < n {
        if t.elapsed() > Duration::from_secs(300) {
            bail!(
                "only {} linked",
                connected.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "linked {n} nodes in {:.1} s; 10 s warm-up",
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rss_linked = rss_kib(pid)?;
    println!(
        "{n} idle links: platform RSS {rss_unlinked} KiB before linking, {rss_linked} KiB after \
         the warm-up: {:.1} KiB per link",
        (rss_linked as f64 - rss_unlinked as f64) / n as f64
    );

    let ticks0 = cpu_ticks(pid)?;
    let load0 = std::fs::read_to_string("/proc/loadavg")?;
    let w = Instant::now();
    measuring.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(duration)).await;
    measuring.store(false, std::sync::atomic::Ordering::Relaxed);
    let ticks1 = cpu_ticks(pid)?;
    let secs = w.elapsed().as_secs_f64();
    let load1 = std::fs::read_to_string("/proc/loadavg")?;
    let rss = format!("VmRSS {} KiB", rss_kib(pid)?);
    let mut s: Vec<f64> = samples
        .lock()
        .unwrap()
        .iter()
        .map(|&u| f64::from(u) / 1000.0)
        .collect();
    s.sort_by(f64::total_cmp);
    println!(
        "{n} nodes, {secs:.0} s: platform CPU {:.3} cores ({} ticks); heartbeat+ping RTT over {} heartbeats ({:.0}/s): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; {rss}; loadavg start {} end {}",
        (ticks1 - ticks0) as f64 / 100.0 / secs,
        ticks1 - ticks0,
        s.len(),
        s.len() as f64 / secs,
        percentile(&s, 50.0),
        percentile(&s, 99.0),
        percentile(&s, 99.9),
        s.last().copied().unwrap_or(f64::NAN),
        load0.trim(),
        load1.trim(),
    );
    Ok(())
}

/// Resident set size of a process in KiB (`VmRSS` of `/proc/PID/status`).
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?)
}

/// utime + stime of a process in clock ticks (USER_HZ = 100 on Linux).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')').context("stat")? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

#[allow(clippy::too_many_arguments)]
async fn sim_node(
    url: String,
    node_id: String,
    cred: String,
    stagger: Duration,
    period: Duration,
    samples: Samples,
    measuring: Arc<std::sync::atomic::AtomicBool>,
    connected: Arc<std::sync::atomic::AtomicUsize>,
    gate: Arc<tokio::sync::Semaphore>,
) -> anyhow::Result<()> {
    let permit = gate.acquire_owned().await?;
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {cred}").parse()?);
    req.headers_mut().insert(
        PROTOCOL_VERSION_HEADER,
        PROTOCOL_VERSION.to_string().parse()?,
    );
    // TCP_NODELAY: without it Nagle holds the ping behind the heartbeat (≈ 40 ms delayed ACK).
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await?;
    let (mut tx, mut rx) = ws.split();
    let text = |m: &NodeMessage| {
        Message::Text(
            serde_json::to_string(m)
                .expect("a link message serialises")
                .into(),
        )
    };
    tx.send(text(&NodeMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        node_id,
        state: ReportedState::Online,
        runtime_version: "0.1.0".into(),
        applied: None,
        startup: None,
    }))
    .await?;
    // Welcome, then the snapshot: acknowledge it as applied.
    let mut applied = None;
    while applied.is_none() {
        let Some(m) = rx.next().await else {
            bail!("closed before snapshot")
        };
        if let Message::Text(t) = m? {
            match serde_json::from_str::<PlatformMessage>(t.as_str())? {
                PlatformMessage::Snapshot { snapshot } => {
                    tx.send(text(&NodeMessage::SnapshotAck {
                        generation: snapshot.generation,
                        content_hash: snapshot.content_hash.clone(),
                        result: ApplyResult::Applied,
                    }))
                    .await?;
                    applied = Some(protocol::link::AppliedConfig {
                        generation: snapshot.generation,
                        content_hash: snapshot.content_hash.clone(),
                    });
                }
                PlatformMessage::Refused { reason, .. } => bail!("refused: {reason}"),
                _ => {}
            }
        }
    }
    drop(permit);
    connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let sent: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let sent_r = sent.clone();
    // Reader: pongs close a round trip; snapshots are acknowledged... by the heartbeat's
    // applied field only (this simulator does not re-ack pushes: nothing changes during a run).
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Pong(_) = m {
                if let Some(t) = sent_r.lock().unwrap().take() {
                    if measuring.load(std::sync::atomic::Ordering::Relaxed) {
                        let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
                        samples.lock().unwrap().push(us);
                    }
                }
            }
        }
    });
    tokio::time::sleep(stagger).await;
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        if reader.is_finished() {
            bail!("link closed");
        }
        let hb = text(&NodeMessage::Heartbeat {
            state: ReportedState::Online,
            runtime_version: "0.1.0".into(),
            applied: applied.clone(),
            issues: Vec::new(),
            counters: Counters::default(),
        });
        // The platform handles frames of one link in order, and answers the ping only when it
        // reads the next frame, i.e. after the heartbeat was handled.
        *sent.lock().unwrap() = Some(Instant::now());
        tx.send(hb).await?;
        tx.send(Message::Ping(Vec::new().into())).await?;
    }
}
