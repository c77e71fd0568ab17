//! Node status records (`model::status::NodeRecord`) in memory, with their JSON form in the
//! store. The link server folds node events into them; the status job reads them every tick
//! and refreshes the records of nodes linked to other processes (or to none) from the store,
//! which is also how they survive a platform restart.

use std::collections::HashMap;
use std::sync::Mutex;

use model::status::{
    GatewayStatus, NodeEvent, NodeRecord, ReportedState, RestartEnd, StatusSettings,
};
use model::{AccountId, GatewayId, NodeId, Timestamp};
use serde::{Deserialize, Serialize};

use super::lock;

/// One node's record and what it belongs to.
#[derive(Clone, Debug)]
pub(crate) struct NodeEntry {
    pub account: AccountId,
    pub gateway: GatewayId,
    pub record: NodeRecord,
}

#[derive(Default)]
pub(crate) struct Records {
    nodes: Mutex<HashMap<NodeId, NodeEntry>>,
    /// Status settings per gateway, as of the last tick or connection.
    settings: Mutex<HashMap<GatewayId, StatusSettings>>,
}

impl Records {
    /// Folds `event` into the node's record (created as just joined when missing) and
    /// answers the updated record, with how a restart ended if the event ended one.
    pub(crate) fn apply(
        &self,
        entry: (AccountId, GatewayId, NodeId),
        version: Option<&str>,
        event: NodeEvent,
        at: Timestamp,
        seed: impl FnOnce() -> NodeRecord,
    ) -> (NodeRecord, Option<RestartEnd>) {
        let (account, gateway, node) = entry;
        let mut nodes = lock(&self.nodes);
        let e = nodes.entry(node).or_insert_with(|| NodeEntry {
            account,
            gateway,
            record: seed(),
        });
        e.account = account;
        e.gateway = gateway;
        if let Some(version) = version
            && e.record.version != version
        {
            e.record.version = version.to_owned();
        }
        let end = e.record.apply(event, at);
        (e.record.clone(), end)
    }

    pub(crate) fn get(&self, node: NodeId) -> Option<NodeEntry> {
        lock(&self.nodes).get(&node).cloned()
    }

    /// Replaces (or inserts) a record read from the store.
    pub(crate) fn put(&self, entry: NodeEntry) {
        lock(&self.nodes).insert(entry.record.node_id, entry);
    }

    /// Forgets nodes that no longer exist (removed, or their gateway deleted): those not in
    /// `live` whose last message is older than `since`, the time the caller read `live`.
    /// A node that joined and linked after that read is not in `live` yet but is kept.
    pub(crate) fn retain(&self, live: impl Fn(&NodeId) -> bool, since: Timestamp) {
        lock(&self.nodes).retain(|id, e| live(id) || e.record.last_message_at >= since);
    }

    pub(crate) fn set_settings(&self, gateway: GatewayId, settings: StatusSettings) {
        lock(&self.settings).insert(gateway, settings);
    }

    /// Forgets the settings of gateways not in `live` that no kept node belongs to (a gateway
    /// created after the caller read `live` keeps its settings).
    pub(crate) fn retain_gateways(&self, live: impl Fn(&GatewayId) -> bool) {
        let nodes = lock(&self.nodes);
        lock(&self.settings).retain(|id, _| live(id) || nodes.values().any(|e| e.gateway == *id));
    }

    pub(crate) fn node_status(&self, node: NodeId, now: Timestamp) -> Option<GatewayStatus> {
        let entry = self.get(node)?;
        let settings = lock(&self.settings).get(&entry.gateway).copied()?;
        Some(settings.node_state(&entry.record, now).status())
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
    serde_json::to_value(json).unwrap_or_default()
}

pub(crate) fn from_json(node: NodeId, value: &serde_json::Value) -> Option<NodeRecord> {
    let json: RecordJson = serde_json::from_value(value.clone()).ok()?;
    let reported = match json.reported.as_deref() {
        None => None,
        Some(s) => Some(parse_state(s, json.unclean_previous_exit)?),
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
pub(crate) fn from_row(node: &model::Node, reported: Option<&str>) -> NodeRecord {
    let mut record = NodeRecord::new(node.id, node.version.clone(), node.joined_at);
    record.applied_generation = node.applied_generation;
    if let (Some(state), Some(seen)) =
        (reported.and_then(|s| parse_state(s, false)), node.last_seen)
    {
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

fn parse_state(s: &str, unclean_previous_exit: bool) -> Option<ReportedState> {
    Some(match s {
        "starting" => ReportedState::Starting {
            unclean_previous_exit,
        },
        "online" => ReportedState::Online,
        "stopping" => ReportedState::Stopping,
        "stopped" => ReportedState::Stopped,
        _ => return None,
    })
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
}
