//! Node status records (`model::status::NodeRecord`) in memory, with their JSON form in the
//! store. The link server folds node events into them; the status job reads them every tick
//! and refreshes the records of nodes linked to other processes (or to none) from the store,
//! which is also how they survive a platform restart.
//!
//! Writes to the store are batched: every folded event queues the node's newest record (one
//! entry per node, so the queue is bounded by the nodes), and one task ([`run_flusher`])
//! writes the queue in one transaction every `LinkConfig::status_flush_interval`, or at once
//! when an event changed more than the node's liveness (a state, a generation, a restart), so
//! heartbeats never wait for the store. A node whose write is queued or being written keeps
//! its in-memory record in the status job ([`Records::stored`]).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use model::status::{
    GatewayStatus, NodeEvent, NodeRecord, ReportedState, RestartEnd, StatusSettings,
};
use model::{AccountId, GatewayId, NodeId, Timestamp};
use serde::{Deserialize, Serialize};
use store::{NodeReport, NodeStatusWrite};
use tokio::sync::Notify;

use super::{Link, lock};

/// How long a shutting-down platform waits for its links to record their disconnection
/// before the last flush.
const SHUTDOWN_LINKS_WAIT: Duration = Duration::from_secs(5);

/// One node's record and what it belongs to.
#[derive(Clone, Debug)]
pub(crate) struct NodeEntry {
    pub account: AccountId,
    pub gateway: GatewayId,
    pub record: NodeRecord,
}

/// A node's store write not yet committed: its newest record and its newest report.
#[derive(Clone, Debug)]
struct QueuedWrite {
    account: AccountId,
    report: Option<NodeReport>,
    record: NodeRecord,
}

impl QueuedWrite {
    /// `newer` written over `self`: the newer record, the newer report, and the generation
    /// of an older report when the newer one has none (the store keeps it the same way).
    fn then(self, newer: QueuedWrite) -> QueuedWrite {
        let report = match (self.report, newer.report) {
            (older, None) => older,
            (older, Some(mut report)) => {
                if report.applied_generation.is_none() {
                    report.applied_generation = older.and_then(|r| r.applied_generation);
                }
                Some(report)
            }
        };
        QueuedWrite {
            account: newer.account,
            report,
            record: newer.record,
        }
    }
}

#[derive(Default)]
struct State {
    nodes: HashMap<NodeId, NodeEntry>,
    /// Writes waiting for the flusher, one per node (bounded by the nodes with a record).
    queued: HashMap<NodeId, QueuedWrite>,
    /// Nodes whose write the flusher is committing now.
    flushing: HashSet<NodeId>,
}

impl State {
    fn unflushed(&self, node: &NodeId) -> bool {
        self.queued.contains_key(node) || self.flushing.contains(node)
    }
}

#[derive(Default)]
pub(crate) struct Records {
    state: Mutex<State>,
    /// Status settings per gateway, as of the last tick or connection.
    settings: Mutex<HashMap<GatewayId, StatusSettings>>,
    /// Wakes the flusher for a write that must not wait for the next interval.
    urgent: Notify,
}

impl Records {
    /// Folds `event` into the node's record (created as just joined when missing), queues
    /// the record (with `report`, what the node said, if anything) for the store and answers
    /// the updated record, with how a restart ended if the event ended one.
    pub(crate) fn apply(
        &self,
        entry: (AccountId, GatewayId, NodeId),
        version: Option<&str>,
        event: NodeEvent,
        at: Timestamp,
        report: Option<NodeReport>,
        seed: impl FnOnce() -> NodeRecord,
    ) -> (NodeRecord, Option<RestartEnd>) {
        let (account, gateway, node) = entry;
        let mut state = lock(&self.state);
        let e = state.nodes.entry(node).or_insert_with(|| NodeEntry {
            account,
            gateway,
            record: seed(),
        });
        e.account = account;
        e.gateway = gateway;
        let mut before = e.record.clone();
        if let Some(version) = version
            && e.record.version != version
        {
            e.record.version = version.to_owned();
        }
        let end = e.record.apply(event, at);
        let record = e.record.clone();
        // Only liveness moved (a plain heartbeat): the next interval's flush is soon enough.
        before.last_message_at = record.last_message_at;
        let urgent = before != record;
        let write = QueuedWrite {
            account,
            report,
            record: record.clone(),
        };
        let write = match state.queued.remove(&node) {
            Some(older) => older.then(write),
            None => write,
        };
        state.queued.insert(node, write);
        drop(state);
        if urgent {
            self.urgent.notify_one();
        }
        (record, end)
    }

    /// Records that the platform asked a node linked here to restart (SPEC §2 #4); nothing
    /// for a node without a record here.
    pub(crate) fn restart_requested(&self, node: NodeId, at: Timestamp) {
        let Some(entry) = self.get(node) else {
            return;
        };
        self.apply(
            (entry.account, entry.gateway, node),
            None,
            NodeEvent::RestartRequested,
            at,
            None,
            || entry.record.clone(),
        );
    }

    pub(crate) fn get(&self, node: NodeId) -> Option<NodeEntry> {
        lock(&self.state).nodes.get(&node).cloned()
    }

    /// The record to evaluate for a node read from the store (`entry`): the one in memory
    /// when it is newer than the stored one, or when its write has not been committed yet
    /// (the store is behind); else the stored one, which replaces it.
    pub(crate) fn stored(&self, entry: NodeEntry) -> NodeRecord {
        let mut state = lock(&self.state);
        let node = entry.record.node_id;
        if let Some(mine) = state.nodes.get(&node)
            && (state.unflushed(&node)
                || mine.record.last_message_at > entry.record.last_message_at)
        {
            return mine.record.clone();
        }
        let record = entry.record.clone();
        state.nodes.insert(node, entry);
        record
    }

    /// Forgets nodes that no longer exist (removed, or their gateway deleted): those not in
    /// `live` whose last message is older than `since`, the time the caller read `live`.
    /// A node that joined and linked after that read is not in `live` yet but is kept, and
    /// so is one whose write is not committed yet.
    pub(crate) fn retain(&self, live: impl Fn(&NodeId) -> bool, since: Timestamp) {
        let mut state = lock(&self.state);
        let State {
            nodes,
            queued,
            flushing,
        } = &mut *state;
        nodes.retain(|id, e| {
            live(id)
                || e.record.last_message_at >= since
                || queued.contains_key(id)
                || flushing.contains(id)
        });
    }

    pub(crate) fn set_settings(&self, gateway: GatewayId, settings: StatusSettings) {
        lock(&self.settings).insert(gateway, settings);
    }

    /// Forgets the settings of gateways not in `live` that no kept node belongs to (a gateway
    /// created after the caller read `live` keeps its settings).
    pub(crate) fn retain_gateways(&self, live: impl Fn(&GatewayId) -> bool) {
        let state = lock(&self.state);
        lock(&self.settings)
            .retain(|id, _| live(id) || state.nodes.values().any(|e| e.gateway == *id));
    }

    pub(crate) fn node_status(&self, node: NodeId, now: Timestamp) -> Option<GatewayStatus> {
        let entry = self.get(node)?;
        let settings = lock(&self.settings).get(&entry.gateway).copied()?;
        Some(settings.node_state(&entry.record, now).status())
    }

    /// Takes every queued write for the flusher; they count as unflushed until
    /// [`Records::flushed`].
    fn take_queued(&self) -> Vec<(NodeId, QueuedWrite)> {
        let mut state = lock(&self.state);
        let batch: Vec<(NodeId, QueuedWrite)> = state.queued.drain().collect();
        state.flushing.extend(batch.iter().map(|(node, _)| *node));
        batch
    }

    /// The flusher's batch was committed (`ok`) or failed: a failed write goes back under any
    /// newer one queued meanwhile, to be written by the next flush.
    fn flushed(&self, batch: Vec<(NodeId, QueuedWrite)>, ok: bool) {
        let mut state = lock(&self.state);
        for (node, write) in batch {
            state.flushing.remove(&node);
            if !ok {
                let write = match state.queued.remove(&node) {
                    Some(newer) => write.then(newer),
                    None => write,
                };
                state.queued.insert(node, write);
            }
        }
    }
}

/// Writes the queued status writes in one batch; answers how many nodes were written.
async fn flush(link: &Link) -> Result<usize, store::StoreError> {
    let records = &link.inner.records;
    let batch = records.take_queued();
    if batch.is_empty() {
        return Ok(0);
    }
    let writes: Vec<NodeStatusWrite> = batch
        .iter()
        .map(|(node, w)| NodeStatusWrite {
            account: w.account,
            node: *node,
            report: w.report.clone(),
            record: to_json(&w.record),
        })
        .collect();
    let result = link.store().save_node_statuses(&writes).await;
    records.flushed(batch, result.is_ok());
    result.map(|_| writes.len())
}

/// The one writer of node status records: flushes every `status_flush_interval`, and at once
/// when a write is urgent. On shutdown it waits (bounded) for the links to close and record
/// their disconnection, then writes what is left.
pub(crate) async fn run_flusher(link: Link) {
    let mut shutdown = link.inner.shutdown.subscribe();
    let mut interval = tokio::time::interval(link.config().status_flush_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = link.inner.records.urgent.notified() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => break,
        }
        if let Err(error) = flush(&link).await {
            tracing::warn!(%error, "could not record node status; retrying with the next flush");
        }
    }
    if tokio::time::timeout(SHUTDOWN_LINKS_WAIT, link.inner.registry.no_links())
        .await
        .is_err()
    {
        tracing::warn!("links still open at shutdown; writing node status without them");
    }
    if let Err(error) = flush(&link).await {
        tracing::warn!(%error, "could not record node status at shutdown");
    }
}

/// The stored form of a [`NodeRecord`] (its node id is the row's).
#[derive(Serialize, Deserialize)]
struct RecordJson {
    joined_at: i64,
    version: String,
    reported: Option<String>,
    #[serde(default)]
    unclean_previous_exit: bool,
    reported_since: i64,
    last_message_at: i64,
    disconnected_at: Option<i64>,
    restart_since: Option<i64>,
    #[serde(default)]
    restart_went_down: bool,
    applied_generation: Option<u64>,
    generation_since: i64,
    cluster_error: Option<String>,
}

pub(crate) fn to_json(record: &NodeRecord) -> serde_json::Value {
    let json = RecordJson {
        joined_at: record.joined_at.0,
        version: record.version.clone(),
        reported: record.reported.map(|s| s.as_str().to_owned()),
        unclean_previous_exit: record.unclean_previous_exit,
        reported_since: record.reported_since.0,
        last_message_at: record.last_message_at.0,
        disconnected_at: record.disconnected_at.map(|t| t.0),
        restart_since: record.restart_since.map(|t| t.0),
        restart_went_down: record.restart_went_down,
        applied_generation: record.applied_generation,
        generation_since: record.generation_since.0,
        cluster_error: record.cluster_error.clone(),
    };
    serde_json::to_value(json).expect("a node record serialises")
}

pub(crate) fn from_json(node: NodeId, value: &serde_json::Value) -> Option<NodeRecord> {
    let json: RecordJson = serde_json::from_value(value.clone()).ok()?;
    let reported = match json.reported.as_deref() {
        None => None,
        Some(s) => Some(ReportedState::parse(s, json.unclean_previous_exit)?),
    };
    Some(NodeRecord {
        node_id: node,
        joined_at: Timestamp(json.joined_at),
        version: json.version,
        reported,
        reported_since: Timestamp(json.reported_since),
        last_message_at: Timestamp(json.last_message_at),
        disconnected_at: json.disconnected_at.map(Timestamp),
        restart_since: json.restart_since.map(Timestamp),
        restart_went_down: json.restart_went_down && json.restart_since.is_some(),
        unclean_previous_exit: json.unclean_previous_exit,
        applied_generation: json.applied_generation,
        generation_since: Timestamp(json.generation_since),
        cluster_error: json.cluster_error,
    })
}

/// A record for a node the platform has no record of (joined, or from before records were
/// kept), from its row: what it reported last, at its last-seen time.
pub(crate) fn from_row(node: &model::Node, reported: Option<ReportedState>) -> NodeRecord {
    let mut record = NodeRecord::new(node.id, node.version.clone(), node.joined_at);
    record.applied_generation = node.applied_generation;
    if let (Some(state), Some(seen)) = (reported, node.last_seen) {
        record.apply(
            NodeEvent::Reported {
                state,
                applied_generation: node.applied_generation,
            },
            seen.max(node.joined_at),
        );
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_json() {
        let node = NodeId::new_v7();
        let mut record = NodeRecord::new(node, "1.0", Timestamp(1_000));
        record.apply(
            NodeEvent::Reported {
                state: ReportedState::Starting {
                    unclean_previous_exit: true,
                },
                applied_generation: None,
            },
            Timestamp(2_000),
        );
        record.apply(
            NodeEvent::Reported {
                state: ReportedState::Online,
                applied_generation: Some(3),
            },
            Timestamp(3_000),
        );
        record.apply(NodeEvent::RestartRequested, Timestamp(4_000));
        record.apply(NodeEvent::Disconnected, Timestamp(5_000));
        let back = from_json(node, &to_json(&record)).unwrap();
        assert_eq!(back, record);
    }

    fn report(state: &str, applied: Option<u64>, at: i64) -> NodeReport {
        NodeReport {
            state: ReportedState::parse(state, false).unwrap(),
            applied_generation: applied,
            at: Timestamp(at),
        }
    }

    fn beat(records: &Records, node: NodeId, at: i64, report: Option<NodeReport>) -> NodeRecord {
        let (account, gateway) = (AccountId::new_v7(), GatewayId::new_v7());
        records
            .apply(
                (account, gateway, node),
                Some("1.0"),
                NodeEvent::Reported {
                    state: ReportedState::Online,
                    applied_generation: report.as_ref().and_then(|r| r.applied_generation),
                },
                Timestamp(at),
                report,
                || NodeRecord::new(node, "1.0", Timestamp(0)),
            )
            .0
    }

    #[test]
    fn queued_writes_coalesce_per_node_keeping_the_last_generation() {
        let records = Records::default();
        let node = NodeId::new_v7();
        beat(&records, node, 10, Some(report("online", Some(3), 10)));
        beat(&records, node, 20, Some(report("online", None, 20)));
        let last = beat(&records, node, 30, None);
        let batch = records.take_queued();
        assert_eq!(batch.len(), 1);
        let write = &batch[0].1;
        assert_eq!(write.record, last);
        let r = write.report.as_ref().unwrap();
        assert_eq!((r.at, r.applied_generation), (Timestamp(20), Some(3)));
    }

    #[test]
    fn a_failed_flush_goes_back_under_newer_writes() {
        let records = Records::default();
        let node = NodeId::new_v7();
        beat(&records, node, 10, Some(report("online", Some(3), 10)));
        let batch = records.take_queued();
        let newer = beat(&records, node, 20, None);
        records.flushed(batch, false);
        let again = records.take_queued();
        assert_eq!(again[0].1.record, newer);
        assert_eq!(again[0].1.report.as_ref().unwrap().at, Timestamp(10));
        records.flushed(again, true);
        assert!(records.take_queued().is_empty());
    }

    #[test]
    fn the_status_job_keeps_a_record_the_store_does_not_have_yet() {
        let records = Records::default();
        let node = NodeId::new_v7();
        let mine = beat(&records, node, 10, Some(report("online", None, 10)));
        let entry = records.get(node).unwrap();
        let mut stored = NodeRecord::new(node, "1.0", Timestamp(0));
        // Older than memory, and memory's write is queued: memory stays.
        let old = NodeEntry {
            record: stored.clone(),
            ..entry.clone()
        };
        assert_eq!(records.stored(old.clone()), mine);
        // Being written: memory stays.
        let batch = records.take_queued();
        assert_eq!(records.stored(old.clone()), mine);
        // Written: a newer stored record (another process's) replaces it; an older one not.
        records.flushed(batch, true);
        assert_eq!(records.stored(old), mine);
        stored.apply(
            NodeEvent::Reported {
                state: ReportedState::Stopping,
                applied_generation: None,
            },
            Timestamp(50),
        );
        let newer = NodeEntry {
            record: stored.clone(),
            ..entry
        };
        assert_eq!(records.stored(newer), stored);
        assert_eq!(records.get(node).unwrap().record, stored);
    }
}
