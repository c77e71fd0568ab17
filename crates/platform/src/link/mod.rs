//! The platform side of the platform–node link (SPEC §10, `protocol::link`): the WebSocket
//! link server with its connection registry, the snapshot publisher (with cross-process
//! notices), node status records, and the rolling restart. Its REST handlers (join, the
//! link upgrade, restart and stop) are in `crate::routes`.
//!
//! [`Link`] is the shared handle. REST handlers call [`Link::changed`] after a committed
//! change of an account's configuration and [`Link::gateway_deleted`] after a delete; the
//! publisher task recompiles the account's gateways, bumps generations whose configuration
//! changed, and pushes the snapshots to the connected nodes (and notifies other platform
//! processes). The status job (`crate::status_job`) turns node records and time into status.

pub(crate) mod commands;
mod publisher;
pub(crate) mod records;
mod registry;
pub(crate) mod results;
pub(crate) mod server;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::status::StatusSettings;
use model::{AccountId, GatewayId};
use store::Store;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use self::records::Records;
pub use self::registry::Outbound;
use self::registry::Registry;
use crate::clock::Clock;

/// Prefix of node credentials (`sy_node_` + 256 random bits in hex), stored as SHA-256 like
/// every other token (see `crate::auth`).
pub const NODE_CREDENTIAL_PREFIX: &str = "sy_node_";

/// Timings and limits of the link. The defaults are SPEC §2/§10; tests shorten them.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Overrides every gateway's heartbeat interval property when set (tests).
    pub heartbeat_interval: Option<Duration>,
    /// A node that has not reached `online` this long after `starting` failed to start.
    pub startup_timeout: Duration,
    /// The floor of the lost-contact threshold max(3 × heartbeat interval, this).
    pub min_lost_contact: Duration,
    /// A restart is unresponsive after this long when Force Restart is not set.
    pub restart_unresponsive_after: Duration,
    /// Online nodes may differ from the desired configuration generation for this long.
    pub generation_skew_tolerance: Duration,
    /// How often the status job evaluates every gateway.
    pub status_interval: Duration,
    /// How long a new link may take to send its Hello.
    pub hello_timeout: Duration,
    /// Frames queued per connection; a node further behind is disconnected, never waited for.
    pub send_queue_frames: usize,
    /// How long a node drains before a restart or stop when Force Restart is not set.
    pub drain_timeout: Duration,
    /// How often node status records are written to the store, all changed nodes in one
    /// batch (a state or generation change is written at once).
    pub status_flush_interval: Duration,
    /// How long Migrate waits for the destination's online nodes to apply the configuration
    /// containing the environment (SPEC §7).
    pub migration_cutover_timeout: Duration,
    /// How long a migration's source gateway redirects the environment's URLs.
    pub migration_grace: Duration,
    /// Where the link, the status job and REST reads get the time (tests step a manual one).
    pub clock: Clock,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: None,
            startup_timeout: model::status::DEFAULT_STARTUP_TIMEOUT,
            min_lost_contact: model::status::MIN_LOST_CONTACT,
            restart_unresponsive_after: model::status::RESTART_UNRESPONSIVE_AFTER,
            generation_skew_tolerance: model::status::GENERATION_SKEW_TOLERANCE,
            status_interval: Duration::from_secs(1),
            hello_timeout: Duration::from_secs(10),
            send_queue_frames: 64,
            drain_timeout: model::DEFAULT_DRAIN_TIMEOUT,
            status_flush_interval: Duration::from_secs(1),
            migration_cutover_timeout: model::migration::DEFAULT_CUTOVER_TIMEOUT,
            migration_grace: model::migration::DEFAULT_GRACE_PERIOD,
            clock: Clock::Real,
        }
    }
}

impl LinkConfig {
    /// The status settings of a gateway with `settings` under this configuration.
    pub fn status_settings(&self, settings: &model::GatewaySettings) -> StatusSettings {
        StatusSettings {
            heartbeat_interval: self.heartbeat_interval(settings),
            startup_timeout: self.startup_timeout,
            force_restart_after: settings.force_restart_after,
            generation_skew_tolerance: self.generation_skew_tolerance,
            min_lost_contact: self.min_lost_contact,
            restart_unresponsive_after: self.restart_unresponsive_after,
        }
    }

    pub fn heartbeat_interval(&self, settings: &model::GatewaySettings) -> Duration {
        self.heartbeat_interval
            .unwrap_or(settings.heartbeat_interval)
            .max(Duration::from_millis(10))
    }

    /// How long a node may drain before a restart or stop: Force Restart when set.
    pub fn drain_timeout(&self, settings: &model::GatewaySettings) -> Duration {
        settings.force_restart_after.unwrap_or(self.drain_timeout)
    }
}

/// The shared handle of the link: cheap to clone.
#[derive(Clone)]
pub struct Link {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) config: LinkConfig,
    pub(crate) registry: Registry,
    pub(crate) records: Records,
    /// Local waiters for command answers (`results::ask`).
    pub(crate) waiters: results::Waiters,
    /// Accounts whose gateways must be re-published; bounded by the number of accounts.
    pending: Mutex<HashSet<AccountId>>,
    wake: Notify,
    /// The last snapshot frame per gateway: (generation, serialized `PlatformMessage`).
    pub(crate) snapshots: Mutex<HashMap<GatewayId, (u64, Arc<str>)>>,
    pub(crate) shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The status record flusher: not aborted by [`Link::stop`], it writes what is queued.
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A link without background tasks: joins and connections work, but changes are not
    /// published and no status is evaluated until [`Link::start`] runs.
    pub fn new(store: Store, config: LinkConfig) -> Link {
        Link {
            inner: Arc::new(Inner {
                store,
                config,
                registry: Registry::default(),
                records: Records::default(),
                waiters: results::Waiters::default(),
                pending: Mutex::new(HashSet::new()),
                wake: Notify::new(),
                snapshots: Mutex::new(HashMap::new()),
                shutdown: watch::channel(false).0,
                tasks: Mutex::new(Vec::new()),
                flusher: Mutex::new(None),
            }),
        }
    }

    /// Starts the publisher, the cross-process notice listener, the status job and the
    /// status record flusher.
    pub fn start(&self) {
        let mut tasks = lock(&self.inner.tasks);
        if !tasks.is_empty() {
            return;
        }
        *lock(&self.inner.flusher) = Some(tokio::spawn(records::run_flusher(self.clone())));
        tasks.push(tokio::spawn(publisher::run(self.clone())));
        tasks.push(tokio::spawn(publisher::listen(self.clone())));
        tasks.push(tokio::spawn(crate::status_job::run(self.clone())));
    }

    /// Stops the background tasks and closes every node connection (nodes reconnect,
    /// possibly to another platform process). The flusher writes what is queued and ends
    /// by itself; [`Link::finish`] waits for it.
    pub fn stop(&self) {
        let _ = self.inner.shutdown.send(true);
        for task in lock(&self.inner.tasks).drain(..) {
            task.abort();
        }
    }

    /// [`Link::stop`], then waits until the links closed and every node status record
    /// queued was written (a platform shutdown loses no state a node reported).
    pub async fn finish(&self) {
        self.stop();
        let flusher = lock(&self.inner.flusher).take();
        if let Some(flusher) = flusher {
            let _ = flusher.await;
        }
    }

    /// The time now, by the link's clock ([`LinkConfig::clock`]).
    pub fn now(&self) -> model::Timestamp {
        self.inner.config.clock.now()
    }

    pub fn config(&self) -> &LinkConfig {
        &self.inner.config
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Something in `account` that may affect its gateways' configuration was committed:
    /// re-publish them. Never blocks; repeated calls before the publisher runs coalesce.
    pub fn changed(&self, account: AccountId) {
        lock(&self.inner.pending).insert(account);
        self.inner.wake.notify_one();
    }

    /// A gateway was deleted (its credentials are already revoked): its connected nodes get
    /// `Refused { retry: false }` and are closed, here and in every other platform process.
    pub fn gateway_deleted(&self, account: AccountId, gateway: GatewayId) {
        publisher::refuse_gateway(self, gateway);
        self.changed(account);
        let link = self.clone();
        tokio::spawn(async move {
            if let Err(error) = link
                .store()
                .notify(&publisher::deleted_notice(gateway))
                .await
            {
                tracing::warn!(%error, %gateway, "could not notify other platform processes");
            }
        });
    }

    /// The status of a node as the status job sees it now; `None` when it has no record yet.
    pub fn node_status(
        &self,
        node: model::NodeId,
        now: model::Timestamp,
    ) -> Option<model::status::GatewayStatus> {
        self.inner.records.node_status(node, now)
    }

    /// Whether a node has a link to this platform process.
    pub fn is_connected(&self, node: model::NodeId) -> bool {
        self.inner.registry.is_connected(node)
    }

    /// The node status records of this process.
    pub(crate) fn records(&self) -> &Records {
        &self.inner.records
    }

    /// The nodes linked to this process now.
    pub(crate) fn connected_nodes(&self) -> HashSet<model::NodeId> {
        self.inner.registry.connected_nodes()
    }

    /// Changes to `true` when the link stops ([`Link::stop`]).
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Sends a command to a node linked to this process or, through a notice, to the
    /// process holding its link.
    pub(crate) async fn send_command(
        &self,
        node: model::NodeId,
        command_id: &str,
        command: &protocol::link::Command,
    ) -> Result<(), store::StoreError> {
        publisher::send_command(self, node, command_id, command).await
    }

    /// Publishes `gateway`'s configuration now (bumping its generation when it changed) and
    /// answers its current generation, which contains every change committed before the call.
    pub(crate) async fn publish_now(
        &self,
        account: AccountId,
        gateway: GatewayId,
    ) -> Result<u64, store::StoreError> {
        publisher::publish_gateway(self, account, gateway).await
    }

    pub(crate) fn take_pending(&self) -> Vec<AccountId> {
        lock(&self.inner.pending).drain().collect()
    }

    pub(crate) async fn wait_for_work(&self) {
        self.inner.wake.notified().await;
    }
}

/// Locks a mutex, recovering from poisoning: the data behind it stays consistent because no
/// critical section here can panic half-way through an update that matters.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
