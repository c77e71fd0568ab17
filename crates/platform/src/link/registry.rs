//! The connected nodes of this platform process, per gateway, each with a bounded queue of
//! outgoing frames. Pushing never waits: a node whose queue is full is disconnected (it
//! reconnects and gets the current snapshot), so one slow node never delays the others.
//! It also counts the link tasks that are running, so a shutdown can wait for them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use model::{GatewayId, NodeId};
use tokio::sync::{mpsc, watch};

use super::lock;

/// A frame for one connection.
#[derive(Clone, Debug)]
pub enum Outbound {
    /// A serialized `PlatformMessage`, shared by every node it goes to.
    Text(Arc<str>),
    /// Send `Refused { reason, retry }`, then close the link.
    Refuse { reason: String, retry: bool },
}

struct Linked {
    id: u64,
    node: NodeId,
    tx: mpsc::Sender<Outbound>,
}

#[derive(Default)]
pub(crate) struct Registry {
    gateways: Mutex<HashMap<GatewayId, Vec<Linked>>>,
    next_id: AtomicU64,
    /// Link tasks running, registered or not yet ([`Registry::link_task`]).
    tasks: watch::Sender<usize>,
}

/// Held by a link task from its start to its end (after its last status event).
pub(crate) struct LinkTask<'a>(&'a watch::Sender<usize>);

impl Drop for LinkTask<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Registry {
    /// Counts a link task until the guard drops.
    pub(crate) fn link_task(&self) -> LinkTask<'_> {
        self.tasks.send_modify(|n| *n += 1);
        LinkTask(&self.tasks)
    }

    /// Completes when no link task is running.
    pub(crate) async fn no_links(&self) {
        let _ = self.tasks.subscribe().wait_for(|n| *n == 0).await;
    }

    /// Registers the link of `node`; an older link of the same node is dropped (its queue
    /// closes, so its task ends). Answers the connection id for [`Registry::unregister`].
    pub(crate) fn register(
        &self,
        gateway: GatewayId,
        node: NodeId,
        tx: mpsc::Sender<Outbound>,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut gateways = lock(&self.gateways);
        // A node moves gateways only by joining again; drop its link anywhere.
        for conns in gateways.values_mut() {
            conns.retain(|c| c.node != node);
        }
        gateways
            .entry(gateway)
            .or_default()
            .push(Linked { id, node, tx });
        id
    }

    /// Removes a connection; answers whether it was still the node's current link (a link
    /// replaced by a newer one of the same node must not report the node disconnected).
    pub(crate) fn unregister(&self, gateway: GatewayId, id: u64) -> bool {
        let mut gateways = lock(&self.gateways);
        let Some(conns) = gateways.get_mut(&gateway) else {
            return false;
        };
        let before = conns.len();
        conns.retain(|c| c.id != id);
        let removed = conns.len() != before;
        if conns.is_empty() {
            gateways.remove(&gateway);
        }
        removed
    }

    /// Queues `frame` for every node of `gateway`; answers how many got it. Nodes whose
    /// queue is full are dropped from the registry (their links close).
    pub(crate) fn send_gateway(&self, gateway: GatewayId, frame: &Outbound) -> usize {
        let mut gateways = lock(&self.gateways);
        let Some(conns) = gateways.get_mut(&gateway) else {
            return 0;
        };
        let mut sent = 0;
        conns.retain(|c| match c.tx.try_send(frame.clone()) {
            Ok(()) => {
                sent += 1;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(node = %c.node, %gateway, "node too slow, disconnecting it");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if conns.is_empty() {
            gateways.remove(&gateway);
        }
        sent
    }

    /// Queues `frame` for one node; answers whether it is connected here and got it.
    pub(crate) fn send_node(&self, node: NodeId, frame: Outbound) -> bool {
        let gateways = lock(&self.gateways);
        gateways
            .values()
            .flat_map(|conns| conns.iter())
            .find(|c| c.node == node)
            .is_some_and(|c| c.tx.try_send(frame).is_ok())
    }

    pub(crate) fn is_connected(&self, node: NodeId) -> bool {
        lock(&self.gateways)
            .values()
            .any(|conns| conns.iter().any(|c| c.node == node))
    }

    /// The gateways with at least one node connected here.
    pub(crate) fn gateways(&self) -> Vec<GatewayId> {
        lock(&self.gateways).keys().copied().collect()
    }

    pub(crate) fn has_nodes(&self, gateway: GatewayId) -> bool {
        lock(&self.gateways).contains_key(&gateway)
    }

    /// Every node connected here (the status job prefers their in-memory records).
    pub(crate) fn connected_nodes(&self) -> std::collections::HashSet<NodeId> {
        lock(&self.gateways)
            .values()
            .flat_map(|conns| conns.iter().map(|c| c.node))
            .collect()
    }
}
