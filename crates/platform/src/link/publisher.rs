//! The snapshot publisher: recompiles the gateways of changed accounts, bumps the generation
//! of those whose compiled configuration changed (in the store, under the gateway's row lock),
//! pushes the new snapshot to the nodes linked here and notifies the other platform processes,
//! whose listeners push it to the nodes linked there.
//!
//! Notices (at most [`store::MAX_NOTICE_BYTES`]) are [`protocol::notice::Notice`]s.

use std::sync::Arc;

use model::{AccountId, GatewayId, NodeId};
use protocol::compile::{GatewayState, compile_config};
use protocol::link::{Command, PlatformMessage};
use protocol::notice::Notice;
use protocol::{Snapshot, SnapshotConfig};
use sha2::{Digest, Sha256};
use store::{GatewayConfigInput, StoreError};

use super::{Link, Outbound, lock};

/// The publisher task: waits for changed accounts and publishes their gateways.
pub(crate) async fn run(link: Link) {
    let mut shutdown = link.inner.shutdown.subscribe();
    loop {
        let accounts = link.take_pending();
        if accounts.is_empty() {
            tokio::select! {
                () = link.wait_for_work() => continue,
                _ = shutdown.changed() => return,
            }
        }
        for account in accounts {
            if let Err(error) = publish_account(&link, account).await {
                tracing::warn!(%error, %account, "could not publish gateway configurations");
                // Try again later rather than losing the change.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                link.changed(account);
            }
        }
    }
}

async fn publish_account(link: &Link, account: AccountId) -> Result<(), StoreError> {
    for gateway in link.store().live_gateway_ids(account).await? {
        match publish_gateway(link, account, gateway).await {
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Publishes one gateway's configuration: bumps its generation when the compiled
/// configuration changed (or none was published yet) and pushes the snapshot. Answers the
/// current generation.
pub(crate) async fn publish_gateway(
    link: &Link,
    account: AccountId,
    gateway: GatewayId,
) -> Result<u64, StoreError> {
    let mut compiled: Option<SnapshotConfig> = None;
    let published = link
        .store()
        .publish_gateway_config(account, gateway, link.now(), |input| {
            let config = compile(input);
            let d = digest(&config);
            compiled = Some(config);
            d
        })
        .await?;
    let generation = published.input.generation;
    if published.bumped {
        let config = compiled.unwrap_or_else(|| compile(&published.input));
        let frame = cache(link, gateway, Snapshot::new(generation, config));
        link.inner
            .registry
            .send_gateway(gateway, &Outbound::Text(frame));
        tracing::debug!(%gateway, generation, "published configuration");
        if let Err(error) = link
            .store()
            .notify(
                &Notice::Config {
                    gateway,
                    generation,
                }
                .to_payload(),
            )
            .await
        {
            tracing::warn!(%error, %gateway, "could not notify other platform processes");
        }
    }
    Ok(generation)
}

/// The current snapshot frame of a gateway for a node that just linked: from the cache when
/// it holds the published generation, else compiled at it (publishing first if the gateway
/// never was).
pub(crate) async fn current_frame(
    link: &Link,
    account: AccountId,
    gateway: GatewayId,
) -> Result<(u64, Arc<str>), StoreError> {
    let input = link.store().gateway_config_input(account, gateway).await?;
    let generation = if input.generation == 0 {
        publish_gateway(link, account, gateway).await?
    } else {
        input.generation
    };
    if let Some((cached, frame)) = lock(&link.inner.snapshots).get(&gateway)
        && *cached == generation
    {
        return Ok((generation, frame.clone()));
    }
    let input = if input.generation == generation {
        input
    } else {
        link.store().gateway_config_input(account, gateway).await?
    };
    let frame = cache(
        link,
        gateway,
        Snapshot::new(input.generation, compile(&input)),
    );
    Ok((input.generation, frame))
}

/// Serializes the snapshot frame once and keeps it unless a newer one is cached.
fn cache(link: &Link, gateway: GatewayId, snapshot: Snapshot) -> Arc<str> {
    let generation = snapshot.generation;
    let message = PlatformMessage::Snapshot {
        snapshot: Box::new(snapshot),
    };
    let frame: Arc<str> = serde_json::to_string(&message)
        .expect("a snapshot message serialises")
        .into();
    let mut snapshots = lock(&link.inner.snapshots);
    match snapshots.get(&gateway) {
        Some((cached, _)) if *cached > generation => {}
        _ => {
            snapshots.insert(gateway, (generation, frame.clone()));
        }
    }
    frame
}

fn compile(input: &GatewayConfigInput) -> SnapshotConfig {
    compile_config(GatewayState {
        gateway: &input.gateway,
        environments: &input.environments,
        apis: &input.apis,
        deployments: &input.deployments,
        redirects: &input.redirects,
    })
}

/// SHA-256 of the compact JSON of a configuration: equal configurations, equal digests
/// (the compiler's output is canonical).
fn digest(config: &SnapshotConfig) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(config).expect("a gateway configuration serialises"),
    ))
}

pub(crate) fn deleted_notice(gateway: GatewayId) -> String {
    Notice::Deleted { gateway }.to_payload()
}

/// Refuses and closes every node of a deleted gateway linked here.
pub(crate) fn refuse_gateway(link: &Link, gateway: GatewayId) {
    lock(&link.inner.snapshots).remove(&gateway);
    link.inner.registry.send_gateway(
        gateway,
        &Outbound::Refuse {
            reason: "this gateway was deleted; its node credentials are revoked".to_owned(),
            retry: false,
        },
    );
}

/// Sends a command to a node linked to any platform process: directly when it is linked
/// here, else through a notice to the process holding it.
pub(crate) async fn send_command(
    link: &Link,
    node: NodeId,
    command_id: &str,
    command: &Command,
) -> Result<(), StoreError> {
    if deliver_command(link, node, command_id, command.clone()) {
        return Ok(());
    }
    let notice = Notice::Command {
        node,
        command_id: command_id.to_owned(),
        command: command.clone(),
    };
    link.store().notify(&notice.to_payload()).await
}

/// Delivers a command to a node linked here, recording a restart request on its record
/// first (the process holding the link owns the node's record). Answers whether it was.
fn deliver_command(link: &Link, node: NodeId, command_id: &str, command: Command) -> bool {
    if !link.is_connected(node) {
        return false;
    }
    if matches!(command, Command::Restart { .. }) {
        link.records().restart_requested(node, link.now());
    }
    let message = PlatformMessage::Command {
        command_id: command_id.to_owned(),
        command,
    };
    let frame: Arc<str> = serde_json::to_string(&message)
        .expect("a command message serialises")
        .into();
    link.inner.registry.send_node(node, Outbound::Text(frame))
}

/// The notice listener task: applies other processes' notices to the nodes linked here.
pub(crate) async fn listen(link: Link) {
    let mut shutdown = link.inner.shutdown.subscribe();
    loop {
        let mut listener = match link.store().listen().await {
            Ok(l) => l,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for platform notices; retrying");
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        // Notices may have been missed before listening started.
        resync(&link).await;
        loop {
            let notice = tokio::select! {
                n = listener.recv() => n,
                _ = shutdown.changed() => return,
            };
            match notice {
                Ok(Some(payload)) => on_notice(&link, &payload).await,
                Ok(None) => resync(&link).await,
                Err(error) => {
                    tracing::warn!(%error, "platform notices interrupted; listening again");
                    break;
                }
            }
        }
    }
}

async fn on_notice(link: &Link, payload: &str) {
    match Notice::from_payload(payload) {
        Ok(Notice::Config {
            gateway,
            generation,
        }) => push_if_newer(link, gateway, generation).await,
        Ok(Notice::Deleted { gateway }) => refuse_gateway(link, gateway),
        Ok(Notice::Command {
            node,
            command_id,
            command,
        }) => {
            deliver_command(link, node, &command_id, command);
        }
        Ok(Notice::CommandResult {
            node,
            command_id,
            result,
        }) => {
            link.inner.waiters.deliver(node, &command_id, result);
        }
        Err(error) => tracing::debug!(payload, %error, "ignoring an unreadable platform notice"),
    }
}

/// Pushes the current snapshot of `gateway` to the nodes linked here unless this process
/// already pushed `generation` or a newer one.
async fn push_if_newer(link: &Link, gateway: GatewayId, generation: u64) {
    if !link.inner.registry.has_nodes(gateway) {
        return;
    }
    let cached = lock(&link.inner.snapshots).get(&gateway).map(|(g, _)| *g);
    if cached.is_some_and(|c| c >= generation) {
        return;
    }
    let account = match link.store().gateway_account(gateway).await {
        Ok(a) => a,
        Err(StoreError::NotFound) => return refuse_gateway(link, gateway),
        Err(error) => {
            tracing::warn!(%error, %gateway, "could not load a published configuration");
            return;
        }
    };
    match current_frame(link, account, gateway).await {
        Ok((generation, frame)) if cached.is_none_or(|c| c < generation) => {
            link.inner
                .registry
                .send_gateway(gateway, &Outbound::Text(frame));
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, %gateway, "could not load a published configuration"),
    }
}

/// After missed notices: push every linked gateway's current snapshot if it is newer.
async fn resync(link: &Link) {
    for gateway in link.inner.registry.gateways() {
        let account = match link.store().gateway_account(gateway).await {
            Ok(a) => a,
            Err(StoreError::NotFound) => {
                refuse_gateway(link, gateway);
                continue;
            }
            Err(_) => continue,
        };
        if let Ok(input) = link.store().gateway_config_input(account, gateway).await {
            push_if_newer(link, gateway, input.generation).await;
        }
    }
}
