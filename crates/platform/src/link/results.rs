//! Answers to commands that a platform process waits for (a migration's runtime check asks
//! the destination's nodes to probe upstreams and waits for their reports). A node answers
//! on its link, which another platform process may hold: that process hands the answer to
//! a local waiter, or else passes it on as a [`protocol::notice::Notice::CommandResult`] for the
//! process that sent the command.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use model::NodeId;
use protocol::link::{Command, CommandOutcome};
use tokio::sync::mpsc;

use super::{Link, lock};

/// The waiters of this process, by command id.
#[derive(Default)]
pub(crate) struct Waiters {
    by_command: Mutex<HashMap<String, mpsc::UnboundedSender<(NodeId, CommandOutcome)>>>,
}

impl Waiters {
    /// Hands an answer to the local waiter of `command_id`; false when nobody here waits.
    pub(crate) fn deliver(&self, node: NodeId, command_id: &str, outcome: CommandOutcome) -> bool {
        match lock(&self.by_command).get(command_id) {
            Some(tx) => tx.send((node, outcome)).is_ok(),
            None => false,
        }
    }
}

/// What each asked node answered; `None` for a node that did not answer in time (or could
/// not be sent the command).
pub(crate) type Answers = Vec<(NodeId, Option<CommandOutcome>)>;

/// Sends `command` to every node of `nodes` and waits at most `limit` for all answers.
pub(crate) async fn ask(
    link: &Link,
    nodes: &[NodeId],
    command: &Command,
    limit: Duration,
) -> Answers {
    let command_id = uuid::Uuid::now_v7().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel();
    lock(&link.inner.waiters.by_command).insert(command_id.clone(), tx);
    // Deregisters however this future ends (answered, timed out, or dropped).
    let _registered = Registered {
        link,
        command_id: &command_id,
    };
    let mut answers: HashMap<NodeId, Option<CommandOutcome>> =
        nodes.iter().map(|n| (*n, None)).collect();
    let mut waiting = 0usize;
    for node in nodes {
        match link.send_command(*node, &command_id, command).await {
            Ok(()) => waiting += 1,
            Err(error) => tracing::warn!(%error, %node, command_id, "could not send a command"),
        }
    }
    let deadline = tokio::time::Instant::now() + limit;
    while waiting > 0 {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((node, outcome))) => {
                // An answer may arrive twice (locally and by notice); count the first.
                if let Some(slot @ None) = answers.get_mut(&node) {
                    *slot = Some(outcome);
                    waiting -= 1;
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    nodes
        .iter()
        .map(|n| (*n, answers.remove(n).flatten()))
        .collect()
}

struct Registered<'a> {
    link: &'a Link,
    command_id: &'a str,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.link.inner.waiters.by_command).remove(self.command_id);
    }
}

/// A node's answer reached this process: to the local waiter, else to the other processes.
pub(crate) async fn received(
    link: &Link,
    node: NodeId,
    command_id: String,
    outcome: CommandOutcome,
) {
    if link
        .inner
        .waiters
        .deliver(node, &command_id, outcome.clone())
    {
        return;
    }
    let mut notice = protocol::notice::Notice::CommandResult {
        node,
        command_id,
        result: outcome,
    };
    let mut payload = notice.to_payload();
    while payload.len() > store::MAX_NOTICE_BYTES {
        let protocol::notice::Notice::CommandResult { result, .. } = &mut notice else {
            unreachable!("built above")
        };
        if !shrink(result) {
            tracing::warn!(%node, bytes = payload.len(), "a command result is too large to pass on");
            return;
        }
        payload = notice.to_payload();
    }
    if let Err(error) = link.store().notify(&payload).await {
        tracing::warn!(%error, %node, "could not pass a command result on");
    }
}

/// Makes a probe report smaller for a notice (whose payload is bounded): first the reachable
/// targets go (their count stays), then half of the unreachable ones at a time, counted as
/// skipped. False when nothing is left to drop.
fn shrink(outcome: &mut CommandOutcome) -> bool {
    let CommandOutcome::Done {
        details: protocol::link::CommandDetails::ProbeUpstreams(report),
    } = outcome
    else {
        return false;
    };
    if report.results.iter().any(|r| r.reachable) {
        report.results.retain(|r| !r.reachable);
        return true;
    }
    if report.results.is_empty() {
        return false;
    }
    let keep = report.results.len() / 2;
    report.skipped += report.results.len() - keep;
    report.unreachable -= report.results.len() - keep;
    report.results.truncate(keep);
    true
}
