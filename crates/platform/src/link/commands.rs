//! What runs of a command to a gateway's nodes after the REST API accepted it
//! (`crate::routes::commands`, SPEC §5, §10): the rolling restart (one node at a time:
//! drained, restarted, back online before the next), and the record of a cancelled restart.

use std::time::Duration;

use model::status::NodeState;
use model::{AccountId, GatewayId, NodeId};
use protocol::link::Command;
use store::{Actor, Audit, AuditResult, AuditTarget};

use super::Link;

/// How often the rolling restart looks at the restarting node's record.
const ROLL_POLL: Duration = Duration::from_millis(50);

/// The rolling restart: one node at a time; the next only when the previous one is back
/// online. The first node's command was sent at `first_sent_at`. A node that does not come
/// back within `limit`, or whose restart was cancelled (it never restarted), stops the roll
/// (a timed-out one shows as Restarting-unresponsive with RESTART_TIMED_OUT); the remaining
/// nodes keep serving.
pub(crate) async fn roll(
    link: &Link,
    command_id: &str,
    nodes: &[NodeId],
    first_sent_at: model::Timestamp,
    drain_timeout_ms: u64,
    limit: Duration,
) {
    for (i, node) in nodes.iter().enumerate() {
        let sent_at = if i == 0 {
            first_sent_at
        } else {
            let sent_at = link.now();
            let command = Command::Restart { drain_timeout_ms };
            if let Err(error) = link.send_command(*node, command_id, &command).await {
                tracing::warn!(%error, %node, command_id, "could not send restart; stopping the roll");
                return;
            }
            sent_at
        };
        let deadline = tokio::time::Instant::now() + limit;
        // The record may show the request late (the node is linked to another process).
        let mut seen_pending = false;
        loop {
            match restart_progress(link, *node, sent_at) {
                Progress::BackOnline => break,
                Progress::Pending => seen_pending = true,
                Progress::NotPending if seen_pending => {
                    tracing::warn!(%node, command_id, "the node's restart was cancelled; stopping the roll");
                    return;
                }
                Progress::NotPending => {}
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(%node, command_id, "node did not come back after a restart; stopping the roll");
                return;
            }
            tokio::time::sleep(ROLL_POLL).await;
        }
    }
    tracing::info!(command_id, "rolling restart done");
}

enum Progress {
    /// A restart is pending on the node's record.
    Pending,
    /// It reported `online` as a new state (after having said something else) since the
    /// command was sent, and no restart is pending.
    BackOnline,
    /// No restart is pending, and it has not come back since the command was sent: not
    /// recorded yet, or cancelled (it never restarted).
    NotPending,
}

/// How the restart of `node`, sent at `sent_at`, stands.
fn restart_progress(link: &Link, node: NodeId, sent_at: model::Timestamp) -> Progress {
    let Some(entry) = link.records().get(node) else {
        return Progress::NotPending;
    };
    let r = &entry.record;
    if r.restart_since.is_some() {
        return Progress::Pending;
    }
    if r.reported == Some(model::status::ReportedState::Online)
        && r.reported_since > sent_at
        && link.node_status(node, link.now()) == Some(NodeState::Online.status())
    {
        return Progress::BackOnline;
    }
    Progress::NotPending
}

/// Records, with an audit record, that the restart of `node` was cancelled: it is running and
/// reporting, but it did not restart (the command was lost, or the platform gave up waiting).
/// It is no longer Restarting, so a new restart can be requested.
pub(crate) async fn restart_cancelled(
    link: &Link,
    account: AccountId,
    gateway: GatewayId,
    node: NodeId,
    reason: &str,
) {
    tracing::warn!(%node, %gateway, reason, "restart cancelled");
    let mut audit = Audit::new(Actor::System, "gateway.restart.cancelled", link.now())
        .with_target(AuditTarget::new("gateway", gateway));
    audit.details = serde_json::json!({ "node_id": node.to_string(), "reason": reason });
    if let Err(error) = link
        .store()
        .append_audit(Some(account), audit, AuditResult::Allowed)
        .await
    {
        tracing::warn!(%error, %node, "could not record a cancelled restart");
    }
}
