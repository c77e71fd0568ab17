//! The status job (SPEC §2, §3): every `LinkConfig::status_interval` it evaluates every live
//! gateway from its nodes' records and the clock (`model::status`), records status changes
//! (with history) and raises and clears the platform's issues.
//!
//! Records of nodes linked to this process come from memory (the link server keeps them
//! current); all others are read from the store each tick, where the process holding the
//! node's link persists them. So a restarted platform, or one of several platform processes,
//! evaluates from the same facts. What this job raised is remembered per gateway (rebuilt
//! from the store's active issues on start), so a tick writes only changes.

use std::collections::{HashMap, HashSet};

use model::status::{
    GatewayContext, GatewayStatus, Issue, NodeEvent, NodeRecord, NodeState, RestartEnd, Severity,
    StatusSettings, codes, gateway_status, issues, reconcile, shown_node,
};
use model::{GatewayId, NodeId, Timestamp};
use store::{GatewayRow, GatewayStatusInput, NewIssue, NodeStatusRow, StoreError};

use crate::link::Link;
use crate::link::records::{self, NodeEntry};

type IssueKey = (&'static str, Option<NodeId>);

/// What the job remembers between ticks.
#[derive(Default)]
struct Memory {
    /// Per gateway: the status last recorded.
    status: HashMap<GatewayId, GatewayStatus>,
    /// Per gateway: the issues this job has active, with severity and message.
    raised: HashMap<GatewayId, HashMap<IssueKey, (Severity, String)>>,
}

/// Runs the job until the link stops.
pub(crate) async fn run(link: Link) {
    let mut shutdown = link.shutdown_signal();
    let mut memory = Memory::default();
    loop {
        match load_raised(&link).await {
            Ok(raised) => {
                memory.raised = raised;
                break;
            }
            Err(error) => {
                tracing::warn!(%error, "status job cannot read active issues; retrying");
                tokio::select! {
                    () = tokio::time::sleep(link.config().status_interval) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
    let mut interval = tokio::time::interval(link.config().status_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_session_sweep = link.now();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = link.now();
        if let Err(error) = tick(&link, &mut memory, now).await {
            tracing::warn!(%error, "status job tick failed");
        }
        // Expired console sessions are refused at once, but their rows would stay forever:
        // the job that already runs every second in every platform process removes them now
        // and then (an idempotent delete, so several processes doing it is harmless).
        if now >= next_session_sweep {
            match link.store().delete_expired_sessions(now).await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "expired console sessions removed"),
                Err(error) => tracing::warn!(%error, "cannot remove expired console sessions"),
            }
            next_session_sweep = now.plus(SESSION_SWEEP_EVERY);
        }
    }
}

/// How often expired console sessions are removed from the store.
pub const SESSION_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10 * 60);

async fn load_raised(
    link: &Link,
) -> Result<HashMap<GatewayId, HashMap<IssueKey, (Severity, String)>>, StoreError> {
    let mut raised: HashMap<GatewayId, HashMap<IssueKey, (Severity, String)>> = HashMap::new();
    for (_, issue) in link.store().all_active_issues().await? {
        // The codes this job owns: raised and cleared only here.
        let Some(code) = codes::FROM_NODE_STATES.iter().find(|c| **c == issue.code) else {
            continue;
        };
        raised
            .entry(issue.gateway_id)
            .or_default()
            .insert((code, issue.node_id), (issue.severity, issue.message));
    }
    Ok(raised)
}

/// One evaluation of every live gateway at `now`.
async fn tick(link: &Link, memory: &mut Memory, now: Timestamp) -> Result<(), StoreError> {
    let inputs = link.store().gateway_status_inputs().await?;
    let connected = link.connected_nodes();
    let mut live_gateways = HashSet::with_capacity(inputs.len());
    let mut live_nodes = HashSet::new();
    for input in &inputs {
        live_gateways.insert(input.gateway.id);
        live_nodes.extend(input.nodes.iter().map(|n| n.node.id));
        let settings = link.config().status_settings(&input.gateway.settings);
        link.records().set_settings(input.gateway.id, settings);
        let records = node_records(link, input, &connected);
        evaluate(link, memory, input, &records, &settings, now).await;
        abandon_restarts(link, input, &records, &settings, &connected, now).await;
    }
    link.records().retain(|n| live_nodes.contains(n), now);
    link.records()
        .retain_gateways(|g| live_gateways.contains(g));
    memory.status.retain(|g, _| live_gateways.contains(g));
    memory.raised.retain(|g, _| live_gateways.contains(g));
    Ok(())
}

/// The gateway's node records: from memory for nodes linked here, else from the store.
fn node_records(
    link: &Link,
    input: &GatewayStatusInput,
    connected: &HashSet<NodeId>,
) -> Vec<NodeRecord> {
    let account = input.gateway.account_id;
    let gateway = input.gateway.id;
    input
        .nodes
        .iter()
        .map(|row| {
            let id = row.node.id;
            let in_memory = link.records().get(id);
            if connected.contains(&id)
                && let Some(entry) = &in_memory
            {
                return entry.record.clone();
            }
            let record = row
                .record
                .as_ref()
                .and_then(|json| records::from_json(id, json))
                .unwrap_or_else(|| records::from_row(&row.node, row.reported_state));
            // A node may have linked here after `connected` was read (it reports before it
            // registers), or its last records here are not written yet: a fresher record in
            // memory is not replaced by the stored one.
            link.records().stored(NodeEntry {
                account,
                gateway,
                record,
            })
        })
        .collect()
}

/// Gives up on the unresponsive restarts of nodes linked here that keep reporting `online`
/// (`model::status::StatusSettings::restart_to_abandon`): the restart is cancelled, with an
/// audit record, so the node is Online again and can be restarted. Only the process holding
/// the link does this, so it happens once.
async fn abandon_restarts(
    link: &Link,
    input: &GatewayStatusInput,
    records: &[NodeRecord],
    settings: &StatusSettings,
    connected: &HashSet<NodeId>,
    now: Timestamp,
) {
    let account = input.gateway.account_id;
    let gateway = input.gateway.id;
    for record in records {
        let node = record.node_id;
        if !connected.contains(&node) || !settings.restart_to_abandon(record, now) {
            continue;
        }
        // The records queue the changed record for the store (`records::run_flusher`).
        let (_, end) = link.records().apply(
            (account, gateway, node),
            None,
            NodeEvent::RestartAbandoned,
            now,
            None,
            || record.clone(),
        );
        if end != Some(RestartEnd::Cancelled) {
            continue;
        }
        let reason = "the node kept reporting online without restarting";
        crate::link::commands::restart_cancelled(link, account, gateway, node, reason).await;
    }
}

/// What a gateway row shows, derived by `model::status` from its nodes' records at one
/// instant.
pub(crate) struct Reading {
    pub status: GatewayStatus,
    /// The node whose host name the row shows (`model::status::shown_node`).
    pub shown: Option<NodeId>,
    /// The issues `model::status::issues` derives from the records (the status job raises
    /// the same).
    pub issues: Vec<Issue>,
}

impl Reading {
    fn derive(
        records: &[NodeRecord],
        settings: &StatusSettings,
        context: GatewayContext,
        now: Timestamp,
    ) -> Reading {
        Reading {
            status: gateway_status(records, now, settings, context),
            shown: shown_node(records, now, settings, context),
            issues: issues(records, now, settings, context),
        }
    }
}

/// What a REST read of one gateway shows: its row and its nodes' states, derived together
/// from the same records at the same instant.
pub(crate) struct GatewayReading {
    pub row: Reading,
    /// The node rows, oldest first, each with its state.
    pub nodes: Vec<(model::Node, NodeState)>,
}

fn context_of(gateway: &model::Gateway) -> GatewayContext {
    GatewayContext {
        deleted: gateway.deleted_at.is_some(),
        ..GatewayContext::default()
    }
}

/// Reads a gateway's nodes and derives what [`GatewayReading`] holds at `now`.
pub(crate) async fn read_gateway(
    link: &Link,
    gateway: &model::Gateway,
    now: Timestamp,
) -> Result<GatewayReading, StoreError> {
    let rows = link
        .store()
        .node_status_rows(gateway.account_id, gateway.id)
        .await?;
    let records = current_records(link, &rows);
    let settings = link.config().status_settings(&gateway.settings);
    let context = context_of(gateway);
    let nodes = rows
        .into_iter()
        .zip(&records)
        .map(|(row, record)| {
            let mut node = row.node;
            // The record may be fresher than the row (memory of a node linked here).
            node.applied_generation = record.applied_generation.or(node.applied_generation);
            (node, settings.node_state_in(record, now, context))
        })
        .collect();
    Ok(GatewayReading {
        row: Reading::derive(&records, &settings, context, now),
        nodes,
    })
}

/// [`read_gateway`]'s row for a list of many gateways, without a store read: each node's
/// record from memory, else rebuilt from its row (`records::from_row`). While some node has
/// no record in memory (before the status job's first tick) the status the job recorded is
/// shown, when it recorded one.
pub(crate) fn read_row(link: &Link, row: &GatewayRow, now: Timestamp) -> Reading {
    let mut all_in_memory = true;
    let records: Vec<NodeRecord> = row
        .nodes
        .iter()
        .map(|(node, reported)| match link.records().get(node.id) {
            Some(entry) => entry.record,
            None => {
                all_in_memory = false;
                records::from_row(node, *reported)
            }
        })
        .collect();
    let settings = link.config().status_settings(&row.gateway.settings);
    let context = context_of(&row.gateway);
    let mut reading = Reading::derive(&records, &settings, context, now);
    if let Some(recorded) = row.status
        && !all_in_memory
        && !context.deleted
    {
        reading.status = recorded.status;
    }
    reading
}

/// The records REST reads derive states from, without changing memory: the one in memory
/// (kept current by the link server for nodes linked here, refreshed every tick for the
/// others) unless the stored one is newer; else the stored one; else one rebuilt from the row.
pub(crate) fn current_records(link: &Link, rows: &[NodeStatusRow]) -> Vec<NodeRecord> {
    rows.iter()
        .map(|row| {
            let id = row.node.id;
            let stored = row
                .record
                .as_ref()
                .and_then(|json| records::from_json(id, json));
            match (link.records().get(id), stored) {
                (Some(memory), Some(stored))
                    if stored.last_message_at > memory.record.last_message_at =>
                {
                    stored
                }
                (Some(memory), _) => memory.record,
                (None, Some(stored)) => stored,
                (None, None) => records::from_row(&row.node, row.reported_state),
            }
        })
        .collect()
}

async fn evaluate(
    link: &Link,
    memory: &mut Memory,
    input: &GatewayStatusInput,
    records: &[NodeRecord],
    settings: &StatusSettings,
    now: Timestamp,
) {
    let account = input.gateway.account_id;
    let gateway = input.gateway.id;
    let context = GatewayContext::default();

    let status = gateway_status(records, now, settings, context);
    let recorded = memory
        .status
        .get(&gateway)
        .copied()
        .or_else(|| input.status.map(|s| s.status));
    if recorded != Some(status) {
        let result = link
            .store()
            .set_gateway_status(account, gateway, status, now)
            .await;
        match result {
            Ok(_) => {
                memory.status.insert(gateway, status);
            }
            Err(error) => tracing::warn!(%error, %gateway, "could not record gateway status"),
        }
    }

    let mut wanted: HashMap<IssueKey, (Severity, String)> = HashMap::new();
    for issue in issues(records, now, settings, context)
        .into_iter()
        .chain(behind_desired(input, records, settings, now))
    {
        wanted
            .entry((issue.code, issue.node_id))
            .or_insert((issue.severity, issue.message));
    }
    let raised = memory.raised.entry(gateway).or_default();
    let (raise, clear) = reconcile(raised, &wanted);
    for (key, (severity, message)) in raise {
        let new = NewIssue {
            gateway_id: gateway,
            node_id: key.1,
            code: key.0.to_owned(),
            severity,
            message: message.clone(),
            details: serde_json::json!({ "raised_by": "platform" }),
        };
        match link.store().raise_issue(account, new, now).await {
            Ok(_) => {
                raised.insert(key, (severity, message));
            }
            Err(error) => tracing::warn!(%error, %gateway, code = key.0, "could not raise issue"),
        }
    }
    for key in clear {
        match link
            .store()
            .clear_issue(account, gateway, key.1, key.0, now)
            .await
        {
            Ok(_) => {
                raised.remove(&key);
            }
            Err(error) => tracing::warn!(%error, %gateway, code = key.0, "could not clear issue"),
        }
    }
}

/// CONFIG_OUT_OF_SYNC against the desired (published) generation: an online node that has
/// not applied it although it was published, and the node online, for longer than the
/// tolerance. The model's own rule covers skew among online nodes; this one also catches a
/// gateway whose every node is behind.
fn behind_desired(
    input: &GatewayStatusInput,
    records: &[NodeRecord],
    settings: &StatusSettings,
    now: Timestamp,
) -> Vec<Issue> {
    let Some(published_at) = input.published_at else {
        return Vec::new();
    };
    let desired = input.generation;
    records
        .iter()
        .filter(|r| settings.node_state(r, now).is_online())
        .filter(|r| r.applied_generation.is_none_or(|g| g < desired))
        .filter(|r| {
            now.since(published_at.max(r.reported_since)) > settings.generation_skew_tolerance
        })
        .map(|r| Issue {
            code: codes::CONFIG_OUT_OF_SYNC,
            severity: Severity::Warning,
            message: format!(
                "node {} has not applied the latest configuration (it has {}, the latest is \
                 generation {desired})",
                r.node_id,
                r.applied_generation
                    .map_or_else(|| "none".to_owned(), |g| format!("generation {g}"))
            ),
            node_id: Some(r.node_id),
        })
        .collect()
}
