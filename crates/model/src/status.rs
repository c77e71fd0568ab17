//! The gateway status state machine of SPEC §2 and the platform-raised issues of SPEC §3.
//!
//! A [`NodeRecord`] holds what a node said last and when; [`NodeRecord::apply`] folds one
//! [`NodeEvent`] into it. [`StatusSettings::node_state`] turns a record and the clock into one of the nine
//! [`NodeState`]s, [`gateway_status`] turns all of a gateway's records into its
//! [`GatewayStatus`], and [`issues`] derives the issues the platform raises. All are pure: the
//! platform's status job stores the records, calls these with `now`, and records changes.
//!
//! Decisions the SPEC leaves open, made here:
//!
//! - **Restart completion.** A restart (requested by the platform or announced by the node) ends
//!   only when the node reports `online` *after* having reported something else since the restart
//!   began. An `online` heartbeat that was already in flight when the platform sent the restart
//!   command therefore does not end the restart.
//! - **A lost restart command.** A restarted node is a new process, whose first message says
//!   `starting`. So a node that, during a restart, reports `online` on a new link without having
//!   reported anything else since the restart began never received the command (it was lost
//!   with the old link, e.g. the node was suspended and its link timed out): the restart is
//!   cancelled ([`RestartEnd::Cancelled`]) and the node is Online again, so a new restart can be
//!   requested. Likewise a node that reports `online` on its link after the restart became
//!   unresponsive ([`NodeEvent::RestartAbandoned`], sent by the platform, which knows the
//!   limit) without having gone down is cancelled: it is running and answering, it just did not
//!   restart.
//! - **Killed during stop.** A node that said `stopping` and whose link then closed without
//!   `stopped` is Offline (did not shut down cleanly) at once; one that goes silent is so after the
//!   lost-contact threshold. A stopping node keeps sending heartbeats while it drains.
//! - **Time edges.** "More than 5 min" is strict: a restart that began exactly 5 min ago is still
//!   Restarting. Lost contact and the start-up timeout are reached *at* their threshold.
//! - **Transitional nodes.** While one node is online and none of the Cluster Issues conditions
//!   holds, nodes that are starting, stopping or restarting (not yet unresponsive) do not change
//!   the gateway status: a rolling restart shows Online.
//! - **Configuration skew** is measured against the newest generation any online node has
//!   applied: the online nodes differ "for longer than 30 s" when some online node is behind the
//!   newest generation and that generation was first applied by an online node more than 30 s
//!   ago. This needs only per-node facts (generation and since when), no gateway-level state.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use crate::entity::GatewaySettings;
use crate::id::NodeId;
use crate::time::Timestamp;

/// Start-up timeout: a node that has not reached `online` this long after `starting` failed.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// A restart is unresponsive after this long, when the Force Restart property is not set.
pub const RESTART_UNRESPONSIVE_AFTER: Duration = Duration::from_secs(5 * 60);
/// Added to Force Restart to get the restart-unresponsive limit when the property is set.
pub const FORCE_RESTART_GRACE: Duration = Duration::from_secs(60);
/// The lost-contact threshold is never shorter than this, whatever the heartbeat interval.
pub const MIN_LOST_CONTACT: Duration = Duration::from_secs(15);
/// Heartbeats missed before contact is lost.
pub const LOST_CONTACT_HEARTBEATS: u32 = 3;
/// Online nodes may differ in applied configuration generation for this long.
pub const GENERATION_SKEW_TOLERANCE: Duration = Duration::from_secs(30);

/// The state a node says it is in, carried by each of its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReportedState {
    /// The process is starting; says whether its previous run ended without a clean stop.
    Starting {
        unclean_previous_exit: bool,
    },
    Online,
    /// Stop command, SIGTERM, or restart under way: draining.
    Stopping,
    /// Clean shutdown completed; the last message of a run.
    Stopped,
}

impl ReportedState {
    /// The wire name: `starting`, `online`, `stopping`, `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportedState::Starting { .. } => "starting",
            ReportedState::Online => "online",
            ReportedState::Stopping => "stopping",
            ReportedState::Stopped => "stopped",
        }
    }

    /// The state named `name` (the wire and stored name); `starting` carries
    /// `unclean_previous_exit`, which the name alone does not say.
    pub fn parse(name: &str, unclean_previous_exit: bool) -> Option<Self> {
        Some(match name {
            "starting" => ReportedState::Starting {
                unclean_previous_exit,
            },
            "online" => ReportedState::Online,
            "stopping" => ReportedState::Stopping,
            "stopped" => ReportedState::Stopped,
            _ => return None,
        })
    }

    fn same_kind(self, other: ReportedState) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

/// Something that happened to a node, as the platform sees it. The time passed with it to
/// [`NodeRecord::apply`] is the platform's clock when it saw the event, never the node's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// A message from the node (join, heartbeat, state change) with its current state and the
    /// configuration generation it has applied, if any.
    Reported {
        state: ReportedState,
        applied_generation: Option<u64>,
    },
    /// The platform sent the node a restart command.
    RestartRequested,
    /// The node said it is about to restart (e.g. an update or a local restart command).
    RestartAnnounced,
    /// The node's link closed.
    Disconnected,
    /// The platform gave up waiting for a restart (it became unresponsive) while the node keeps
    /// reporting `online` without having gone down: the restart is cancelled.
    RestartAbandoned,
}

/// How a restart under way ended, as answered by [`NodeRecord::apply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartEnd {
    /// The node went down and came back `online`.
    Completed,
    /// The node never restarted (the command did not reach it, or the platform gave up while it
    /// kept running); it is no longer Restarting.
    Cancelled,
}

/// What the platform knows about one node: the last things it said and when. Stored by the
/// platform, updated with [`NodeRecord::apply`], read with [`StatusSettings::node_state`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    pub node_id: NodeId,
    /// First join; the head node is the oldest live node.
    pub joined_at: Timestamp,
    /// Runtime version the node reported at its last start.
    pub version: String,
    /// The state in the node's last message; `None` before its first message after joining,
    /// which counts as starting.
    pub reported: Option<ReportedState>,
    /// When the node first reported `reported` (repeated heartbeats do not move it).
    pub reported_since: Timestamp,
    /// When the last message from the node arrived.
    pub last_message_at: Timestamp,
    /// When the link closed, if it closed after the last message.
    pub disconnected_at: Option<Timestamp>,
    /// When the restart under way began; `None` when no restart is under way.
    pub restart_since: Option<Timestamp>,
    /// Whether the node has reported a state other than `online` since the restart began.
    pub restart_went_down: bool,
    /// Whether the node's current run started after an unclean exit of the previous one.
    pub unclean_previous_exit: bool,
    /// The configuration generation the node last reported as applied.
    pub applied_generation: Option<u64>,
    /// When the node first reported `applied_generation`.
    pub generation_since: Timestamp,
    /// A cluster error the node reports (e.g. it cannot reach its peers); `None` when healthy.
    pub cluster_error: Option<String>,
}

impl NodeRecord {
    /// The record of a node that has just joined: starting, as of `joined_at`.
    pub fn new(node_id: NodeId, version: impl Into<String>, joined_at: Timestamp) -> Self {
        Self {
            node_id,
            joined_at,
            version: version.into(),
            reported: None,
            reported_since: joined_at,
            last_message_at: joined_at,
            disconnected_at: None,
            restart_since: None,
            restart_went_down: false,
            unclean_previous_exit: false,
            applied_generation: None,
            generation_since: joined_at,
            cluster_error: None,
        }
    }

    /// Folds one event that happened `at` into the record and answers how a restart under way
    /// ended, if this event ended one. A message older than the last one (delivered late, e.g.
    /// through another platform process) is stale and ignored, so that it cannot move the node
    /// back to an earlier state.
    pub fn apply(&mut self, event: NodeEvent, at: Timestamp) -> Option<RestartEnd> {
        let restarting = self.restart_since.is_some();
        // A report on a new link: the previous one closed after the last message.
        let new_link = self.disconnected_at.is_some();
        let mut cancelled = false;
        match event {
            NodeEvent::Reported { .. } | NodeEvent::RestartAnnounced
                if at < self.last_message_at => {}
            NodeEvent::Reported {
                state,
                applied_generation,
            } => {
                let is_starting = matches!(state, ReportedState::Starting { .. });
                // A `starting` message on a new link is a new process, even if the previous
                // message was also `starting` (it crashed while starting and came back).
                let changed = match self.reported {
                    Some(previous) => {
                        !previous.same_kind(state)
                            || (is_starting && self.disconnected_at.is_some())
                    }
                    None => true,
                };
                if changed {
                    self.reported_since = at;
                }
                self.reported = Some(state);
                self.message_arrived(at);
                match state {
                    ReportedState::Starting {
                        unclean_previous_exit,
                    } => self.unclean_previous_exit = unclean_previous_exit,
                    ReportedState::Stopped => self.unclean_previous_exit = false,
                    ReportedState::Online | ReportedState::Stopping => {}
                }
                if let Some(generation) = applied_generation
                    && self.applied_generation != Some(generation)
                {
                    self.applied_generation = Some(generation);
                    self.generation_since = at;
                }
                if self.restart_since.is_some() {
                    if state != ReportedState::Online {
                        self.restart_went_down = true;
                    } else if self.restart_went_down {
                        self.restart_ended();
                    } else if new_link {
                        // Online on a new link without going down: the command was lost.
                        self.restart_ended();
                        cancelled = true;
                    }
                }
            }
            NodeEvent::RestartRequested => self.restart_began(at),
            NodeEvent::RestartAnnounced => {
                self.message_arrived(at);
                self.restart_began(at);
            }
            NodeEvent::Disconnected => {
                if at >= self.last_message_at {
                    self.disconnected_at = Some(at);
                }
            }
            NodeEvent::RestartAbandoned => {
                // Only a node that is linked and says `online`: a silent or disconnected node
                // may be restarting right now.
                if self.reported == Some(ReportedState::Online)
                    && !self.restart_went_down
                    && self.disconnected_at.is_none()
                {
                    self.restart_ended();
                    cancelled = true;
                }
            }
        }
        self.check_invariants();
        match (restarting, self.restart_since) {
            (true, None) if cancelled => Some(RestartEnd::Cancelled),
            (true, None) => Some(RestartEnd::Completed),
            _ => None,
        }
    }

    fn restart_ended(&mut self) {
        self.restart_since = None;
        self.restart_went_down = false;
    }

    fn message_arrived(&mut self, at: Timestamp) {
        self.last_message_at = self.last_message_at.max(at);
        self.disconnected_at = None;
    }

    fn restart_began(&mut self, at: Timestamp) {
        // The unresponsive clock runs from the first request; repeating it does not reset it.
        if self.restart_since.is_none() {
            self.restart_since = Some(at);
            self.restart_went_down = self.reported != Some(ReportedState::Online);
        }
    }

    fn check_invariants(&self) {
        debug_assert!(
            !self.restart_went_down || self.restart_since.is_some(),
            "restart_went_down without a restart under way"
        );
        debug_assert!(
            self.disconnected_at
                .is_none_or(|d| d >= self.last_message_at),
            "disconnected before the last message"
        );
        debug_assert!(
            self.reported_since <= self.last_message_at || self.reported.is_none(),
            "reported state is newer than the last message"
        );
    }
}

/// The nine per-node statuses of SPEC §2 (rows 1–9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// #1
    Starting,
    /// #2
    Online,
    /// #3
    Stopping,
    /// #4
    Restarting,
    /// #5
    RestartingUnresponsive,
    /// #6
    OfflineNotRunning,
    /// #7
    OfflineUncleanShutdown,
    /// #8
    OfflineFailedStart,
    /// #9
    OfflineLostContact,
}

impl NodeState {
    pub const ALL: [NodeState; 9] = [
        NodeState::Starting,
        NodeState::Online,
        NodeState::Stopping,
        NodeState::Restarting,
        NodeState::RestartingUnresponsive,
        NodeState::OfflineNotRunning,
        NodeState::OfflineUncleanShutdown,
        NodeState::OfflineFailedStart,
        NodeState::OfflineLostContact,
    ];

    /// The status shown for this node (and for a gateway whose most significant node it is).
    pub fn status(self) -> GatewayStatus {
        use GatewayState as S;
        use StatusVariant as V;
        let (state, variant) = match self {
            NodeState::Starting => (S::Starting, None),
            NodeState::Online => (S::Online, None),
            NodeState::Stopping => (S::Stopping, None),
            NodeState::Restarting => (S::Restarting, None),
            NodeState::RestartingUnresponsive => (S::Restarting, Some(V::Unresponsive)),
            NodeState::OfflineNotRunning => (S::Offline, Some(V::NotRunning)),
            NodeState::OfflineUncleanShutdown => (S::Offline, Some(V::UncleanShutdown)),
            NodeState::OfflineFailedStart => (S::Offline, Some(V::FailedStart)),
            NodeState::OfflineLostContact => (S::Offline, Some(V::LostContact)),
        };
        GatewayStatus { state, variant }
    }

    pub fn is_online(self) -> bool {
        self == NodeState::Online
    }

    pub fn is_offline(self) -> bool {
        matches!(
            self,
            NodeState::OfflineNotRunning
                | NodeState::OfflineUncleanShutdown
                | NodeState::OfflineFailedStart
                | NodeState::OfflineLostContact
        )
    }

    /// A live node is one that is not offline: it runs, or is expected back soon.
    pub fn is_live(self) -> bool {
        !self.is_offline()
    }

    /// Rank when no node is online: Restarting-unresponsive, Restarting, Stopping, Starting,
    /// then Offline as 9, 7, 8, 6 (SPEC §2). Higher is more significant.
    fn significance(self) -> u8 {
        match self {
            NodeState::Online => 10,
            NodeState::RestartingUnresponsive => 9,
            NodeState::Restarting => 8,
            NodeState::Stopping => 7,
            NodeState::Starting => 6,
            NodeState::OfflineLostContact => 5,
            NodeState::OfflineUncleanShutdown => 4,
            NodeState::OfflineFailedStart => 3,
            NodeState::OfflineNotRunning => 2,
        }
    }
}

/// The state of a status, as in the REST API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GatewayState {
    Starting,
    Online,
    Stopping,
    Restarting,
    Offline,
    ClusterIssues,
    Deleted,
}

impl GatewayState {
    pub const ALL: [GatewayState; 7] = [
        GatewayState::Starting,
        GatewayState::Online,
        GatewayState::Stopping,
        GatewayState::Restarting,
        GatewayState::Offline,
        GatewayState::ClusterIssues,
        GatewayState::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GatewayState::Starting => "starting",
            GatewayState::Online => "online",
            GatewayState::Stopping => "stopping",
            GatewayState::Restarting => "restarting",
            GatewayState::Offline => "offline",
            GatewayState::ClusterIssues => "cluster_issues",
            GatewayState::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The variant of a status, as in the REST API; `None` for most states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusVariant {
    /// Restarting for too long (#5).
    Unresponsive,
    /// Clean shutdown (#6).
    NotRunning,
    /// Did not shut down cleanly (#7).
    UncleanShutdown,
    /// Failed to start (#8).
    FailedStart,
    /// Stopped communicating (#9).
    LostContact,
}

impl StatusVariant {
    pub const ALL: [StatusVariant; 5] = [
        StatusVariant::Unresponsive,
        StatusVariant::NotRunning,
        StatusVariant::UncleanShutdown,
        StatusVariant::FailedStart,
        StatusVariant::LostContact,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StatusVariant::Unresponsive => "unresponsive",
            StatusVariant::NotRunning => "not_running",
            StatusVariant::UncleanShutdown => "unclean_shutdown",
            StatusVariant::FailedStart => "failed_start",
            StatusVariant::LostContact => "lost_contact",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A gateway's (or a node's) status: `{"state": …, "variant": …}` in the REST API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GatewayStatus {
    pub state: GatewayState,
    pub variant: Option<StatusVariant>,
}

/// The coarse status used by filters and notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoarseStatus {
    Online,
    Offline,
    ClusterIssues,
}

impl CoarseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CoarseStatus::Online => "online",
            CoarseStatus::Offline => "offline",
            CoarseStatus::ClusterIssues => "cluster_issues",
        }
    }
}

impl GatewayStatus {
    pub const DELETED: GatewayStatus = GatewayStatus {
        state: GatewayState::Deleted,
        variant: None,
    };
    pub const ONLINE: GatewayStatus = GatewayStatus {
        state: GatewayState::Online,
        variant: None,
    };
    pub const CLUSTER_ISSUES: GatewayStatus = GatewayStatus {
        state: GatewayState::ClusterIssues,
        variant: None,
    };
    pub const OFFLINE_NOT_RUNNING: GatewayStatus = GatewayStatus {
        state: GatewayState::Offline,
        variant: Some(StatusVariant::NotRunning),
    };

    /// Every valid status, in the order a list sorted by status shows them: the healthiest
    /// first (online, cluster issues, the transitional states), then offline in the SPEC §2
    /// row order of its variants, deleted last.
    pub const ALL: [GatewayStatus; 11] = {
        use GatewayState as S;
        use StatusVariant as V;
        const fn st(state: S, variant: Option<V>) -> GatewayStatus {
            GatewayStatus { state, variant }
        }
        [
            st(S::Online, None),
            st(S::ClusterIssues, None),
            st(S::Starting, None),
            st(S::Restarting, None),
            st(S::Restarting, Some(V::Unresponsive)),
            st(S::Stopping, None),
            st(S::Offline, Some(V::NotRunning)),
            st(S::Offline, Some(V::UncleanShutdown)),
            st(S::Offline, Some(V::FailedStart)),
            st(S::Offline, Some(V::LostContact)),
            st(S::Deleted, None),
        ]
    };

    /// The position of this status when a list is sorted by status ([`GatewayStatus::ALL`]).
    pub fn rank(self) -> usize {
        Self::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or(Self::ALL.len())
    }

    /// A status from its parts, or `None` for a combination SPEC §2 does not have
    /// (e.g. `online` with `lost_contact`). Use when reading stored or wire values.
    pub fn new(state: GatewayState, variant: Option<StatusVariant>) -> Option<Self> {
        let status = GatewayStatus { state, variant };
        status.is_valid().then_some(status)
    }

    /// Parses the REST/stored strings.
    pub fn parse(state: &str, variant: Option<&str>) -> Option<Self> {
        let variant = match variant {
            Some(v) => Some(StatusVariant::parse(v)?),
            None => None,
        };
        Self::new(GatewayState::parse(state)?, variant)
    }

    /// Whether the variant belongs to the state.
    pub fn is_valid(self) -> bool {
        use StatusVariant as V;
        match self.state {
            GatewayState::Restarting => matches!(self.variant, None | Some(V::Unresponsive)),
            GatewayState::Offline => matches!(
                self.variant,
                Some(V::NotRunning | V::UncleanShutdown | V::FailedStart | V::LostContact)
            ),
            _ => self.variant.is_none(),
        }
    }

    /// Online / Offline / Cluster Issues. Every state other than online and cluster issues
    /// (including starting, restarting and deleted) is coarse Offline: the gateway is not serving
    /// with a node the platform knows to be healthy.
    pub fn coarse(self) -> CoarseStatus {
        match self.state {
            GatewayState::Online => CoarseStatus::Online,
            GatewayState::ClusterIssues => CoarseStatus::ClusterIssues,
            _ => CoarseStatus::Offline,
        }
    }

    /// The UI label, e.g. "Offline (stopped communicating)".
    pub fn label(self) -> &'static str {
        use StatusVariant as V;
        match (self.state, self.variant) {
            (GatewayState::Starting, _) => "Starting",
            (GatewayState::Online, _) => "Online",
            (GatewayState::Stopping, _) => "Stopping",
            (GatewayState::Restarting, Some(V::Unresponsive)) => "Restarting (unresponsive)",
            (GatewayState::Restarting, _) => "Restarting",
            (GatewayState::Offline, Some(V::UncleanShutdown)) => {
                "Offline (did not shut down cleanly)"
            }
            (GatewayState::Offline, Some(V::FailedStart)) => "Offline (failed to start)",
            (GatewayState::Offline, Some(V::LostContact)) => "Offline (stopped communicating)",
            (GatewayState::Offline, _) => "Offline (not running)",
            (GatewayState::ClusterIssues, _) => "Cluster Issues",
            (GatewayState::Deleted, _) => "Deleted",
        }
    }
}

/// The per-node status of `record` at `now`, with the two derived limits given (the one
/// computation of them is [`StatusSettings`]).
fn node_state_with(
    record: &NodeRecord,
    now: Timestamp,
    lost_contact: Duration,
    startup_timeout: Duration,
    unresponsive_after: Duration,
) -> NodeState {
    let silent = now.since(record.last_message_at) >= lost_contact;
    if let Some(since) = record.restart_since {
        return if now.since(since) > unresponsive_after {
            NodeState::RestartingUnresponsive
        } else {
            NodeState::Restarting
        };
    }
    match record.reported {
        None | Some(ReportedState::Starting { .. }) => {
            if silent || now.since(record.reported_since) >= startup_timeout {
                NodeState::OfflineFailedStart
            } else {
                NodeState::Starting
            }
        }
        Some(ReportedState::Online) => {
            if silent {
                NodeState::OfflineLostContact
            } else {
                NodeState::Online
            }
        }
        Some(ReportedState::Stopping) => {
            if silent || record.disconnected_at.is_some() {
                NodeState::OfflineUncleanShutdown
            } else {
                NodeState::Stopping
            }
        }
        Some(ReportedState::Stopped) => NodeState::OfflineNotRunning,
    }
}

/// The settings status evaluation depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusSettings {
    pub heartbeat_interval: Duration,
    pub startup_timeout: Duration,
    pub force_restart_after: Option<Duration>,
    pub generation_skew_tolerance: Duration,
    /// The floor of the lost-contact threshold ([`MIN_LOST_CONTACT`]); lowered only by tests
    /// that need short timings.
    pub min_lost_contact: Duration,
    /// How long a restart may take when Force Restart is not set
    /// ([`RESTART_UNRESPONSIVE_AFTER`]); lowered only by tests that need short timings.
    pub restart_unresponsive_after: Duration,
}

impl StatusSettings {
    /// The status settings of a gateway with `settings`, other values at their defaults.
    pub fn from_gateway(settings: &GatewaySettings) -> Self {
        Self {
            heartbeat_interval: settings.heartbeat_interval,
            force_restart_after: settings.force_restart_after,
            ..Self::default()
        }
    }

    /// The per-node status of `record` at `now` with these settings.
    pub fn node_state(&self, record: &NodeRecord, now: Timestamp) -> NodeState {
        node_state_with(
            record,
            now,
            self.lost_contact_threshold(),
            self.startup_timeout,
            self.unresponsive_after(),
        )
    }

    /// The state of a node of a gateway in `context`. The nodes of a deleted gateway were
    /// refused and their credentials revoked, so none can be running as its node: a node that
    /// would otherwise be live is Offline (not running); one already offline keeps its variant.
    pub fn node_state_in(
        &self,
        record: &NodeRecord,
        now: Timestamp,
        context: GatewayContext,
    ) -> NodeState {
        let state = self.node_state(record, now);
        if context.deleted && state.is_live() {
            NodeState::OfflineNotRunning
        } else {
            state
        }
    }

    /// Whether the platform should give up on the restart of this node
    /// ([`NodeEvent::RestartAbandoned`]): it is Restarting-unresponsive, yet linked and still
    /// reporting `online` within the lost-contact threshold, never having gone down.
    pub fn restart_to_abandon(&self, record: &NodeRecord, now: Timestamp) -> bool {
        record.reported == Some(ReportedState::Online)
            && !record.restart_went_down
            && record.disconnected_at.is_none()
            && now.since(record.last_message_at) < self.lost_contact_threshold()
            && self.node_state(record, now) == NodeState::RestartingUnresponsive
    }

    /// The lost-contact threshold: max(3 × heartbeat interval, `min_lost_contact` (15 s)).
    pub fn lost_contact_threshold(&self) -> Duration {
        self.heartbeat_interval
            .saturating_mul(LOST_CONTACT_HEARTBEATS)
            .max(self.min_lost_contact)
    }

    /// How long a restart may take before it is unresponsive: Force Restart + 1 min when the
    /// property is set, else `restart_unresponsive_after` (5 min).
    pub fn unresponsive_after(&self) -> Duration {
        match self.force_restart_after {
            Some(force) => force.saturating_add(FORCE_RESTART_GRACE),
            None => self.restart_unresponsive_after,
        }
    }
}

impl Default for StatusSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: GatewaySettings::default().heartbeat_interval,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            force_restart_after: None,
            generation_skew_tolerance: GENERATION_SKEW_TOLERANCE,
            min_lost_contact: MIN_LOST_CONTACT,
            restart_unresponsive_after: RESTART_UNRESPONSIVE_AFTER,
        }
    }
}

/// Gateway-level facts that are not about one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayContext {
    /// The gateway was deleted.
    pub deleted: bool,
    /// A rolling update or rollback is under way, so different runtime versions are expected.
    pub rolling_update: bool,
}

/// Why a gateway with an online node has Cluster Issues.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClusterIssue {
    /// This node is offline or restarting unresponsively.
    NodeDown(NodeId),
    /// Live nodes run different runtime versions outside a rolling update.
    VersionMismatch,
    /// This online node has been behind the newest applied generation for too long.
    ConfigOutOfSync(NodeId),
    /// This node reports a cluster error.
    ClusterError(NodeId),
}

/// Everything [`gateway_status`] and [`issues`] need, evaluated once.
struct Evaluation<'a> {
    nodes: Vec<(&'a NodeRecord, NodeState)>,
    any_online: bool,
    version_mismatch: bool,
}

impl<'a> Evaluation<'a> {
    fn new(
        nodes: &'a [NodeRecord],
        now: Timestamp,
        settings: &StatusSettings,
        context: GatewayContext,
    ) -> Self {
        let nodes: Vec<_> = nodes
            .iter()
            .map(|n| (n, settings.node_state(n, now)))
            .collect();
        let any_online = nodes.iter().any(|(_, s)| s.is_online());
        let mut live_versions = nodes
            .iter()
            .filter(|(_, s)| s.is_live())
            .map(|(n, _)| n.version.as_str());
        let first = live_versions.next();
        let version_mismatch = !context.rolling_update && live_versions.any(|v| Some(v) != first);
        Evaluation {
            nodes,
            any_online,
            version_mismatch,
        }
    }

    /// Online nodes behind the newest applied generation for longer than the tolerance.
    fn out_of_sync(&self, now: Timestamp, tolerance: Duration) -> Vec<NodeId> {
        let online = || {
            self.nodes
                .iter()
                .filter(|(_, s)| s.is_online())
                .map(|(n, _)| *n)
        };
        let Some(newest) = online().map(|n| n.applied_generation).max().flatten() else {
            return Vec::new();
        };
        let newest_since = online()
            .filter(|n| n.applied_generation == Some(newest))
            .map(|n| n.generation_since)
            .min();
        let skew_too_long = newest_since.is_some_and(|since| now.since(since) > tolerance);
        if !skew_too_long {
            return Vec::new();
        }
        online()
            .filter(|n| n.applied_generation < Some(newest))
            .map(|n| n.node_id)
            .collect()
    }

    fn cluster_issues(&self, now: Timestamp, settings: &StatusSettings) -> Vec<ClusterIssue> {
        let mut out = Vec::new();
        for (n, s) in &self.nodes {
            if s.is_offline() || *s == NodeState::RestartingUnresponsive {
                out.push(ClusterIssue::NodeDown(n.node_id));
            }
        }
        if self.version_mismatch {
            out.push(ClusterIssue::VersionMismatch);
        }
        out.extend(
            self.out_of_sync(now, settings.generation_skew_tolerance)
                .into_iter()
                .map(ClusterIssue::ConfigOutOfSync),
        );
        for (n, s) in &self.nodes {
            if s.is_live() && n.cluster_error.is_some() {
                out.push(ClusterIssue::ClusterError(n.node_id));
            }
        }
        out
    }
}

/// The reasons for Cluster Issues at `now`; empty when no node is online (the gateway then shows
/// its most significant node state instead) or the cluster is healthy.
pub fn cluster_issues(
    nodes: &[NodeRecord],
    now: Timestamp,
    settings: &StatusSettings,
    context: GatewayContext,
) -> Vec<ClusterIssue> {
    let eval = Evaluation::new(nodes, now, settings, context);
    if !eval.any_online {
        return Vec::new();
    }
    eval.cluster_issues(now, settings)
}

/// The gateway's status at `now` from its nodes' records (SPEC §2).
pub fn gateway_status(
    nodes: &[NodeRecord],
    now: Timestamp,
    settings: &StatusSettings,
    context: GatewayContext,
) -> GatewayStatus {
    if context.deleted {
        return GatewayStatus::DELETED;
    }
    let eval = Evaluation::new(nodes, now, settings, context);
    let status = if eval.any_online {
        if eval.cluster_issues(now, settings).is_empty() {
            GatewayStatus::ONLINE
        } else {
            GatewayStatus::CLUSTER_ISSUES
        }
    } else {
        eval.nodes
            .iter()
            .map(|(_, s)| *s)
            .max_by_key(|s| s.significance())
            .map_or(GatewayStatus::OFFLINE_NOT_RUNNING, NodeState::status)
    };
    debug_assert!(status.is_valid(), "invalid status {status:?}");
    debug_assert!(
        eval.any_online
            == matches!(
                status.state,
                GatewayState::Online | GatewayState::ClusterIssues
            ),
        "online nodes and status disagree: {status:?}"
    );
    status
}

/// The head node: the oldest live node (earliest join; ties by node id). `None` when no node is
/// live.
pub fn head_node(
    nodes: &[NodeRecord],
    now: Timestamp,
    settings: &StatusSettings,
) -> Option<NodeId> {
    nodes
        .iter()
        .filter(|n| settings.node_state(n, now).is_live())
        .min_by_key(|n| (n.joined_at, n.node_id))
        .map(|n| n.node_id)
}

/// The node whose host name a gateway shows: the head node ([`head_node`]), or, when no node
/// is live (always for a deleted gateway, whose nodes are offline), the oldest node (earliest
/// join; ties by node id). `None` without nodes.
pub fn shown_node(
    nodes: &[NodeRecord],
    now: Timestamp,
    settings: &StatusSettings,
    context: GatewayContext,
) -> Option<NodeId> {
    let head = if context.deleted {
        None
    } else {
        head_node(nodes, now, settings)
    };
    head.or_else(|| {
        nodes
            .iter()
            .min_by_key(|n| (n.joined_at, n.node_id))
            .map(|n| n.node_id)
    })
}

/// The difference between the issues raised (`remembered`, by key: what was last written)
/// and those that should be active now (`wanted`): the entries to raise (new, or changed
/// severity or message) and the keys to clear (no longer wanted). The status job (its
/// platform-raised issues) and the link server (the issues a node reports) both write only
/// this difference.
pub fn reconcile<K, V>(remembered: &HashMap<K, V>, wanted: &HashMap<K, V>) -> (Vec<(K, V)>, Vec<K>)
where
    K: Eq + Hash + Clone,
    V: PartialEq + Clone,
{
    let raise = wanted
        .iter()
        .filter(|(key, value)| remembered.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let clear = remembered
        .keys()
        .filter(|key| !wanted.contains_key(*key))
        .cloned()
        .collect();
    (raise, clear)
}

/// Where a deployment stands, for [`deployment_status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeploymentPlace {
    /// Its environment is attached to no gateway.
    NoGateway,
    /// Its URL prefix conflicts with another deployment on its gateway.
    Conflict,
    /// On a gateway; `contained_in` is the first configuration generation of the gateway that
    /// contains it (`None` before one was published).
    OnGateway { contained_in: Option<u64> },
}

/// A deployment's status (SPEC §8): Requires Configuration when it cannot be served; Sent to
/// the Gateway once every online node of its gateway has applied a generation that contains
/// it; Pending before (also while no node is online: nothing has applied it). `nodes` are the
/// gateway's nodes with their state and applied generation.
pub fn deployment_status(
    place: DeploymentPlace,
    nodes: impl IntoIterator<Item = (NodeState, Option<u64>)>,
) -> crate::entity::DeploymentStatus {
    use crate::entity::DeploymentStatus as D;
    let contained_in = match place {
        DeploymentPlace::NoGateway | DeploymentPlace::Conflict => return D::RequiresConfiguration,
        DeploymentPlace::OnGateway { contained_in: None } => return D::Pending,
        DeploymentPlace::OnGateway {
            contained_in: Some(g),
        } => g,
    };
    let mut online = nodes.into_iter().filter(|(s, _)| s.is_online()).peekable();
    if online.peek().is_none() {
        return D::Pending;
    }
    if online.all(|(_, applied)| applied.is_some_and(|a| a >= contained_in)) {
        D::SentToGateway
    } else {
        D::Pending
    }
}

/// How bad an issue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub const ALL: [Severity; 2] = [Severity::Warning, Severity::Error];

    /// The REST and stored name: `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Issue codes of SPEC §3 that the platform itself raises.
pub mod codes {
    pub const NO_NODES: &str = "NO_NODES";
    pub const NODE_OFFLINE: &str = "NODE_OFFLINE";
    pub const VERSION_MISMATCH: &str = "VERSION_MISMATCH";
    pub const CONFIG_OUT_OF_SYNC: &str = "CONFIG_OUT_OF_SYNC";
    pub const RESTART_TIMED_OUT: &str = "RESTART_TIMED_OUT";
    pub const UNCLEAN_PREVIOUS_EXIT: &str = "UNCLEAN_PREVIOUS_EXIT";
    /// A node refused a configuration snapshot: raised by the platform from the refused
    /// acknowledgement, and reported by nodes in their heartbeats too (SPEC §9).
    pub const CONFIG_APPLY_FAILED: &str = "CONFIG_APPLY_FAILED";
    /// A node's target fails its active health check: raised by the node (SPEC §3), with the
    /// API and target in its details.
    pub const UPSTREAM_UNREACHABLE: &str = "UPSTREAM_UNREACHABLE";

    /// The codes derived from node states by [`super::issues`]: the status job raises and
    /// clears them, and a node reporting one does not own it.
    pub const FROM_NODE_STATES: [&str; 6] = [
        NO_NODES,
        NODE_OFFLINE,
        VERSION_MISMATCH,
        CONFIG_OUT_OF_SYNC,
        RESTART_TIMED_OUT,
        UNCLEAN_PREVIOUS_EXIT,
    ];

    /// Whether [`super::issues`] (the status job) owns `code`.
    pub fn from_node_states(code: &str) -> bool {
        FROM_NODE_STATES.contains(&code)
    }
}

/// An issue as a value: the platform stores it with first-seen and last-seen times and clears it
/// when [`issues`] no longer returns it (same code and node).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Issue {
    pub code: &'static str,
    pub severity: Severity,
    /// One line.
    pub message: String,
    pub node_id: Option<NodeId>,
}

/// The issues the platform raises for a gateway at `now`, derived from its nodes' records:
/// NO_NODES, NODE_OFFLINE (an error when no node is online), RESTART_TIMED_OUT,
/// CONFIG_OUT_OF_SYNC, UNCLEAN_PREVIOUS_EXIT (for the node's current run) and VERSION_MISMATCH.
/// A deleted gateway has none. Node-level issues come in node order; gateway-level ones last.
pub fn issues(
    nodes: &[NodeRecord],
    now: Timestamp,
    settings: &StatusSettings,
    context: GatewayContext,
) -> Vec<Issue> {
    if context.deleted {
        return Vec::new();
    }
    if nodes.is_empty() {
        return vec![Issue {
            code: codes::NO_NODES,
            severity: Severity::Warning,
            message: "no node has joined this gateway".to_owned(),
            node_id: None,
        }];
    }
    let eval = Evaluation::new(nodes, now, settings, context);
    let out_of_sync = eval.out_of_sync(now, settings.generation_skew_tolerance);
    let mut out = Vec::new();
    for (n, s) in &eval.nodes {
        let node_id = Some(n.node_id);
        if s.is_offline() {
            out.push(Issue {
                code: codes::NODE_OFFLINE,
                severity: if eval.any_online {
                    Severity::Warning
                } else {
                    Severity::Error
                },
                message: format!("node {} is {}", n.node_id, s.status().label()),
                node_id,
            });
        }
        if *s == NodeState::RestartingUnresponsive {
            out.push(Issue {
                code: codes::RESTART_TIMED_OUT,
                severity: Severity::Error,
                message: format!(
                    "node {} has not come back online after a restart",
                    n.node_id
                ),
                node_id,
            });
        }
        if out_of_sync.contains(&n.node_id) {
            out.push(Issue {
                code: codes::CONFIG_OUT_OF_SYNC,
                severity: Severity::Warning,
                message: format!(
                    "node {} has not applied the latest configuration (it has {})",
                    n.node_id,
                    n.applied_generation
                        .map_or_else(|| "none".to_owned(), |g| format!("generation {g}"))
                ),
                node_id,
            });
        }
        if n.unclean_previous_exit && s.is_live() {
            out.push(Issue {
                code: codes::UNCLEAN_PREVIOUS_EXIT,
                severity: Severity::Warning,
                message: format!(
                    "node {} started after its previous run ended without a clean stop",
                    n.node_id
                ),
                node_id,
            });
        }
    }
    if eval.version_mismatch {
        let mut versions: Vec<&str> = eval
            .nodes
            .iter()
            .filter(|(_, s)| s.is_live())
            .map(|(n, _)| n.version.as_str())
            .collect();
        versions.sort_unstable();
        versions.dedup();
        out.push(Issue {
            code: codes::VERSION_MISMATCH,
            severity: Severity::Warning,
            message: format!("nodes run different versions: {}", versions.join(", ")),
            node_id: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn at(secs: f64) -> Timestamp {
        Timestamp(T0 + (secs * 1000.0).round() as i64)
    }

    /// Builds a record from a script of comma-separated `SECS EVENT [gN]` steps, where EVENT is
    /// `starting`, `starting!` (after an unclean exit), `online`, `stopping`, `stopped`,
    /// `restart` (requested by the platform), `announce` (by the node), `abandon` (the platform
    /// gave up on an unresponsive restart) or `disconnect`, and `gN`
    /// is the applied generation carried by the message. The node joins at 0.
    fn record(script: &str, version: &str) -> NodeRecord {
        let mut r = NodeRecord::new(NodeId::new_v7(), version, at(0.0));
        for step in script.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let mut words = step.split_whitespace();
            let secs: f64 = words.next().unwrap().parse().unwrap();
            let what = words.next().unwrap();
            let applied_generation = words
                .next()
                .map(|g| g.trim_start_matches('g').parse().unwrap());
            let state = |state| NodeEvent::Reported {
                state,
                applied_generation,
            };
            let event = match what {
                "starting" => state(ReportedState::Starting {
                    unclean_previous_exit: false,
                }),
                "starting!" => state(ReportedState::Starting {
                    unclean_previous_exit: true,
                }),
                "online" => state(ReportedState::Online),
                "stopping" => state(ReportedState::Stopping),
                "stopped" => state(ReportedState::Stopped),
                "restart" => NodeEvent::RestartRequested,
                "announce" => NodeEvent::RestartAnnounced,
                "disconnect" => NodeEvent::Disconnected,
                "abandon" => NodeEvent::RestartAbandoned,
                other => panic!("unknown event {other}"),
            };
            let _ = r.apply(event, at(secs));
        }
        r
    }

    fn render_status(s: GatewayStatus) -> String {
        match s.variant {
            Some(v) => format!("{}/{}", s.state.as_str(), v.as_str()),
            None => s.state.as_str().to_owned(),
        }
    }

    #[track_caller]
    fn check_with(settings: StatusSettings, script: &str, now: f64, expected: &str) {
        let r = record(script, "1.0");
        let actual = render_status(settings.node_state(&r, at(now)).status());
        assert_eq!(actual, expected, "{script:?} at {now}s");
    }

    #[track_caller]
    fn check(script: &str, now: f64, expected: &str) {
        check_with(StatusSettings::default(), script, now, expected);
    }

    fn heartbeat(secs: u64) -> StatusSettings {
        StatusSettings {
            heartbeat_interval: Duration::from_secs(secs),
            ..StatusSettings::default()
        }
    }

    fn force_restart(mins: u64) -> StatusSettings {
        StatusSettings {
            force_restart_after: Some(Duration::from_secs(mins * 60)),
            ..StatusSettings::default()
        }
    }

    #[test]
    fn node_transitions() {
        // #1 Starting: joined, or said starting, within the start-up timeout (60 s).
        check("", 10.0, "starting");
        check("0 starting", 10.0, "starting");
        check(
            "0 starting, 10 starting, 20 starting, 30 starting, 40 starting, 50 starting",
            59.999,
            "starting",
        );
        // #8 failed to start: at the start-up timeout, or silent for the lost-contact threshold.
        check(
            "0 starting, 10 starting, 20 starting, 30 starting, 40 starting, 50 starting",
            60.0,
            "offline/failed_start",
        );
        check("0 starting", 14.999, "starting");
        check("0 starting", 15.0, "offline/failed_start");
        check("", 15.0, "offline/failed_start");
        // A new process on a new link restarts the start-up clock; the same link does not.
        check(
            "0 starting, 50 disconnect, 52 starting, 62 starting, 72 starting",
            80.0,
            "starting",
        );
        check(
            "0 starting, 10 starting, 20 starting, 30 starting, 40 starting, 50 starting, 62 starting",
            70.0,
            "offline/failed_start",
        );
        // #2 Online, and #9 lost contact exactly at max(3 × 5 s, 15 s) = 15 s of silence.
        check("0 starting, 5 online", 10.0, "online");
        check(
            "0 starting, 5 online, 10 online, 15 online",
            29.999,
            "online",
        );
        check(
            "0 starting, 5 online, 10 online, 15 online",
            30.0,
            "offline/lost_contact",
        );
        check("0 online, 5 disconnect", 14.999, "online");
        check("0 online, 5 disconnect", 15.0, "offline/lost_contact");
        check("0 online, 20 online", 21.0, "online");
        // The threshold follows the heartbeat interval above 5 s, and never drops below 15 s.
        check_with(heartbeat(10), "0 online", 29.999, "online");
        check_with(heartbeat(10), "0 online", 30.0, "offline/lost_contact");
        check_with(heartbeat(1), "0 online", 14.999, "online");
        check_with(heartbeat(1), "0 online", 15.0, "offline/lost_contact");
        // #3 Stopping, #6 not running, #7 did not shut down cleanly.
        check("0 online, 10 stopping", 11.0, "stopping");
        check("0 online, 10 stopping, 20 stopping", 34.999, "stopping");
        check(
            "0 online, 10 stopping, 12 stopped",
            13.0,
            "offline/not_running",
        );
        check(
            "0 online, 10 stopping, 12 stopped",
            9999.0,
            "offline/not_running",
        );
        check(
            "0 online, 10 stopping, 11 disconnect",
            11.0,
            "offline/unclean_shutdown",
        );
        check(
            "0 online, 10 stopping, 12 stopped, 13 disconnect",
            13.0,
            "offline/not_running",
        );
        check("0 online, 10 stopping", 24.999, "stopping");
        check("0 online, 10 stopping", 25.0, "offline/unclean_shutdown");
        // A node that comes back after any offline state is starting again.
        check(
            "0 online, 10 stopping, 12 stopped, 20 starting",
            21.0,
            "starting",
        );
        check(
            "0 online, 10 stopping, 11 disconnect, 20 starting!",
            21.0,
            "starting",
        );
        check("0 online, 30 starting", 31.0, "starting");
        check("0 online, 30 starting, 35 online", 36.0, "online");
        // #4 Restarting: requested or announced, until the node is back online.
        check("0 online, 10 restart", 11.0, "restarting");
        check("0 online, 10 announce", 11.0, "restarting");
        check(
            "0 online, 10 restart, 11 stopping, 12 stopped",
            13.0,
            "restarting",
        );
        check(
            "0 online, 10 restart, 11 stopping, 12 stopped, 20 starting",
            21.0,
            "restarting",
        );
        check(
            "0 online, 10 restart, 11 stopping, 12 stopped, 20 starting, 25 online",
            26.0,
            "online",
        );
        check(
            "0 online, 10 announce, 11 stopping, 20 starting, 25 online",
            26.0,
            "online",
        );
        // An online heartbeat already in flight when the restart was requested does not end it.
        check("0 online, 10 restart, 10.5 online", 11.0, "restarting");
        check(
            "0 online, 10 restart, 10.5 online, 11 stopping, 15 online",
            16.0,
            "online",
        );
        // A restart requested while the node is not online ends when it comes online.
        check(
            "0 online, 5 stopping, 6 stopped, 10 restart, 20 online",
            21.0,
            "online",
        );
        // While restarting, silence is not lost contact, and a killed stop is not unclean.
        check(
            "0 online, 10 restart, 11 stopping, 12 disconnect",
            200.0,
            "restarting",
        );
        // #5 Restarting unresponsive: more than 5 min after the restart began.
        check("0 online, 10 restart", 10.0 + 299.0, "restarting");
        check("0 online, 10 restart", 10.0 + 300.0, "restarting");
        check(
            "0 online, 10 restart",
            10.0 + 300.001,
            "restarting/unresponsive",
        );
        check(
            "0 online, 10 restart",
            10.0 + 301.0,
            "restarting/unresponsive",
        );
        check(
            "0 online, 10 announce",
            10.0 + 301.0,
            "restarting/unresponsive",
        );
        check(
            "0 online, 10 restart, 11 stopping, 20 starting",
            10.0 + 301.0,
            "restarting/unresponsive",
        );
        // Repeating the request does not reset the clock.
        check(
            "0 online, 10 restart, 200 restart",
            10.0 + 301.0,
            "restarting/unresponsive",
        );
        // With Force Restart = 10 min: more than 11 min, and the 5 min rule no longer applies.
        check_with(
            force_restart(10),
            "0 online, 10 restart",
            10.0 + 301.0,
            "restarting",
        );
        check_with(
            force_restart(10),
            "0 online, 10 restart",
            10.0 + 659.0,
            "restarting",
        );
        check_with(
            force_restart(10),
            "0 online, 10 restart",
            10.0 + 660.0,
            "restarting",
        );
        check_with(
            force_restart(10),
            "0 online, 10 restart",
            10.0 + 661.0,
            "restarting/unresponsive",
        );
        // A message older than the last one is stale and ignored.
        check(
            "0 online, 10 stopping, 12 stopped, 11 online",
            13.0,
            "offline/not_running",
        );
        check("0 online, 10 online, 5 stopping", 11.0, "online");
        // Coming back online ends even an unresponsive restart.
        check(
            "0 online, 10 restart, 11 stopping, 400 starting, 405 online",
            406.0,
            "online",
        );
        // A restart command lost with its link: the node (suspended, then resumed) reports
        // `online` on a new link without having gone down, so it did not restart; the restart
        // is cancelled, and later reports follow the usual rules.
        check(
            "0 online, 10 restart, 15 disconnect, 400 online",
            401.0,
            "online",
        );
        check(
            "0 online, 10 restart, 15 disconnect, 20 online",
            21.0,
            "online",
        );
        check(
            "0 online, 10 restart, 15 disconnect, 400 online, 410 stopping, 411 stopped",
            500.0,
            "offline/not_running",
        );
        check(
            "0 online, 10 restart, 15 disconnect, 400 online",
            430.0,
            "offline/lost_contact",
        );
        check(
            "0 online, 10 restart, 15 disconnect, 400 online, 410 restart",
            411.0,
            "restarting",
        );
        // ... but a restarted process says `starting` on its new link: still restarting.
        check(
            "0 online, 10 restart, 15 disconnect, 20 starting",
            21.0,
            "restarting",
        );
        // The same link reporting `online` keeps restarting until the platform gives up.
        check(
            "0 online, 10 restart, 15 online, 400 online",
            401.0,
            "restarting/unresponsive",
        );
        check(
            "0 online, 10 restart, 15 online, 400 online, 401 abandon",
            402.0,
            "online",
        );
        // Giving up does not cancel a restart whose node went down and is coming back.
        check(
            "0 online, 10 restart, 11 stopping, 400 starting, 401 abandon",
            402.0,
            "restarting/unresponsive",
        );
        check(
            "0 online, 10 restart, 11 disconnect, 401 abandon",
            402.0,
            "restarting/unresponsive",
        );
    }

    #[test]
    fn when_the_platform_gives_up_on_a_restart() {
        let give_up = |script: &str, now: f64| {
            StatusSettings::default().restart_to_abandon(&record(script, "1.0"), at(now))
        };
        // Unresponsive, linked, reporting online: give up.
        assert!(give_up(
            "0 online, 10 restart, 300 online, 310 online",
            311.0
        ));
        // Not yet unresponsive, or not reporting online, or silent, or disconnected: wait.
        assert!(!give_up(
            "0 online, 10 restart, 300 online, 309 online",
            309.5
        ));
        assert!(!give_up(
            "0 online, 10 restart, 11 stopping, 310 stopping",
            311.0
        ));
        assert!(!give_up(
            "0 online, 10 restart, 11 starting, 310 online",
            311.0
        ));
        assert!(!give_up("0 online, 10 restart, 100 online", 311.0));
        assert!(!give_up(
            "0 online, 10 restart, 300 online, 305 disconnect",
            311.0
        ));
        assert!(!give_up("0 online, 310 online", 311.0));
    }

    #[test]
    fn nodes_of_a_deleted_gateway_are_offline() {
        let deleted = GatewayContext {
            deleted: true,
            ..GatewayContext::default()
        };
        let settings = StatusSettings::default();
        let state = |script: &str, context| {
            render_status(
                settings
                    .node_state_in(&record(script, "1.0"), at(400.0), context)
                    .status(),
            )
        };
        for (script, live, in_deleted) in [
            (ONLINE, "online", "offline/not_running"),
            (STARTING, "starting", "offline/not_running"),
            (STOPPING, "stopping", "offline/not_running"),
            (RESTARTING, "restarting", "offline/not_running"),
            (
                UNRESPONSIVE,
                "restarting/unresponsive",
                "offline/not_running",
            ),
            (NOT_RUNNING, "offline/not_running", "offline/not_running"),
            (
                UNCLEAN,
                "offline/unclean_shutdown",
                "offline/unclean_shutdown",
            ),
            (FAILED_START, "offline/failed_start", "offline/failed_start"),
            (LOST_CONTACT, "offline/lost_contact", "offline/lost_contact"),
        ] {
            assert_eq!(state(script, GatewayContext::default()), live, "{script}");
            assert_eq!(state(script, deleted), in_deleted, "{script}");
        }
    }

    #[test]
    fn deployment_status_follows_what_online_nodes_applied() {
        use DeploymentPlace as P;
        use NodeState as S;
        let status = |place, nodes: &[(NodeState, Option<u64>)]| {
            deployment_status(place, nodes.iter().copied()).as_str()
        };
        let on = |g| P::OnGateway {
            contained_in: Some(g),
        };
        assert_eq!(
            status(P::NoGateway, &[(S::Online, Some(9))]),
            "requires_configuration"
        );
        assert_eq!(
            status(P::Conflict, &[(S::Online, Some(9))]),
            "requires_configuration"
        );
        assert_eq!(
            status(P::OnGateway { contained_in: None }, &[(S::Online, Some(9))]),
            "pending"
        );
        // No node, or none online: nothing has applied it.
        assert_eq!(status(on(3), &[]), "pending");
        assert_eq!(
            status(on(3), &[(S::OfflineLostContact, Some(3))]),
            "pending"
        );
        // Every online node at or past the generation containing it.
        assert_eq!(status(on(3), &[(S::Online, Some(3))]), "sent_to_gateway");
        assert_eq!(
            status(on(3), &[(S::Online, Some(4)), (S::Online, Some(3))]),
            "sent_to_gateway"
        );
        assert_eq!(
            status(on(3), &[(S::Online, Some(3)), (S::Online, Some(2))]),
            "pending"
        );
        assert_eq!(status(on(3), &[(S::Online, None)]), "pending");
        // Nodes that are not online do not hold it back.
        assert_eq!(
            status(
                on(3),
                &[
                    (S::Online, Some(3)),
                    (S::Starting, None),
                    (S::OfflineNotRunning, Some(1))
                ]
            ),
            "sent_to_gateway"
        );
    }

    #[test]
    fn how_a_restart_ends() {
        let ends = |script: &str| -> Vec<RestartEnd> {
            let mut r = NodeRecord::new(NodeId::new_v7(), "1.0", at(0.0));
            let mut out = Vec::new();
            for step in script.split(',').map(str::trim) {
                let (secs, what) = step.split_once(' ').unwrap();
                let event = match what {
                    "online" => NodeEvent::Reported {
                        state: ReportedState::Online,
                        applied_generation: None,
                    },
                    "starting" => NodeEvent::Reported {
                        state: ReportedState::Starting {
                            unclean_previous_exit: false,
                        },
                        applied_generation: None,
                    },
                    "restart" => NodeEvent::RestartRequested,
                    "disconnect" => NodeEvent::Disconnected,
                    "abandon" => NodeEvent::RestartAbandoned,
                    other => panic!("unknown event {other}"),
                };
                out.extend(r.apply(event, at(secs.parse().unwrap())));
            }
            out
        };
        assert_eq!(
            ends("0 online, 10 restart, 11 disconnect, 20 starting, 25 online"),
            [RestartEnd::Completed]
        );
        assert_eq!(
            ends("0 online, 10 restart, 11 disconnect, 400 online, 405 online"),
            [RestartEnd::Cancelled]
        );
        assert_eq!(
            ends("0 online, 10 restart, 400 online, 401 abandon, 402 abandon"),
            [RestartEnd::Cancelled]
        );
        assert_eq!(ends("0 online, 10 online, 11 abandon"), []);
        // After a cancelled restart a new one can begin, with a fresh clock.
        assert_eq!(
            ends(
                "0 online, 10 restart, 11 disconnect, 400 online, 410 restart, 411 disconnect, 420 starting, 425 online"
            ),
            [RestartEnd::Cancelled, RestartEnd::Completed]
        );
    }

    #[test]
    fn thresholds() {
        let secs = Duration::from_secs;
        let lost = |hb| {
            StatusSettings {
                heartbeat_interval: hb,
                ..StatusSettings::default()
            }
            .lost_contact_threshold()
        };
        assert_eq!(lost(secs(5)), secs(15));
        assert_eq!(lost(secs(1)), secs(15));
        assert_eq!(lost(secs(6)), secs(18));
        let unresponsive = |force| {
            StatusSettings {
                force_restart_after: force,
                ..StatusSettings::default()
            }
            .unresponsive_after()
        };
        assert_eq!(unresponsive(None), secs(300));
        assert_eq!(unresponsive(Some(secs(600))), secs(660));
        assert_eq!(unresponsive(Some(secs(60))), secs(120));
        // The floor is a setting (tests lower it), and so is the unset-Force-Restart limit.
        let short = StatusSettings {
            heartbeat_interval: Duration::from_millis(100),
            min_lost_contact: Duration::from_millis(500),
            restart_unresponsive_after: secs(2),
            ..StatusSettings::default()
        };
        assert_eq!(short.lost_contact_threshold(), Duration::from_millis(500));
        assert_eq!(short.unresponsive_after(), secs(2));
    }

    #[test]
    fn unclean_previous_exit_lasts_for_the_run() {
        let r = record("0 starting!, 5 online", "1.0");
        assert!(r.unclean_previous_exit);
        let r = record("0 starting!, 5 online, 10 stopping, 11 stopped", "1.0");
        assert!(!r.unclean_previous_exit);
        let r = record(
            "0 starting!, 5 online, 10 stopping, 11 disconnect, 20 starting",
            "1.0",
        );
        assert!(!r.unclean_previous_exit);
    }

    #[test]
    fn generation_since_moves_only_on_change() {
        let r = record(
            "0 starting, 5 online g1, 10 online g1, 20 online g2, 30 online g2, 40 online",
            "1.0",
        );
        assert_eq!(
            (r.applied_generation, r.generation_since),
            (Some(2), at(20.0))
        );
    }

    /// One node: a script, a version; `cluster_error` marks a node that reports one.
    struct N(&'static str, &'static str);

    /// Renders the gateway status and the issues as `status | CODE:severity:node ...`, nodes named
    /// by index.
    fn gateway(nodes: &[N], now: f64, settings: StatusSettings, context: GatewayContext) -> String {
        let records: Vec<NodeRecord> = nodes
            .iter()
            .map(|N(script, version)| {
                let (script, cluster_error) = match script.strip_suffix(" cluster_error") {
                    Some(s) => (s, Some("cannot reach peers".to_owned())),
                    None => (*script, None),
                };
                NodeRecord {
                    cluster_error,
                    ..record(script, version)
                }
            })
            .collect();
        let status = gateway_status(&records, at(now), &settings, context);
        let index = |id: NodeId| records.iter().position(|r| r.node_id == id).unwrap();
        let issues: Vec<String> = issues(&records, at(now), &settings, context)
            .into_iter()
            .map(|i| {
                let node = i.node_id.map_or("-".to_owned(), |id| index(id).to_string());
                format!("{}:{}:{node}", i.code, i.severity.as_str())
            })
            .collect();
        format!("{} | {}", render_status(status), issues.join(" "))
    }

    #[track_caller]
    fn check_gateway(nodes: &[N], now: f64, expected: &str) {
        let actual = gateway(
            nodes,
            now,
            StatusSettings::default(),
            GatewayContext::default(),
        );
        assert_eq!(actual, expected);
    }

    // Scripts for one node in each state at t = 400 s.
    const ONLINE: &str = "0 starting, 5 online, 399 online";
    const STARTING: &str = "0 starting, 395 disconnect, 396 starting";
    const STOPPING: &str = "0 online, 399 stopping";
    const RESTARTING: &str = "0 online, 390 restart";
    const UNRESPONSIVE: &str = "0 online, 10 restart";
    const NOT_RUNNING: &str = "0 online, 10 stopping, 11 stopped";
    const UNCLEAN: &str = "0 online, 10 stopping, 11 disconnect";
    const FAILED_START: &str = "0 starting, 200 starting";
    const LOST_CONTACT: &str = "0 online, 300 online";

    #[test]
    fn every_script_is_in_its_state() {
        let expected = [
            (ONLINE, "online"),
            (STARTING, "starting"),
            (STOPPING, "stopping"),
            (RESTARTING, "restarting"),
            (UNRESPONSIVE, "restarting/unresponsive"),
            (NOT_RUNNING, "offline/not_running"),
            (UNCLEAN, "offline/unclean_shutdown"),
            (FAILED_START, "offline/failed_start"),
            (LOST_CONTACT, "offline/lost_contact"),
        ];
        for (script, state) in expected {
            check(script, 400.0, state);
        }
    }

    #[test]
    fn gateway_status_and_issues() {
        let t = 400.0;
        // No node yet.
        check_gateway(&[], t, "offline/not_running | NO_NODES:warning:-");
        // All healthy.
        check_gateway(&[N(ONLINE, "1.0")], t, "online | ");
        check_gateway(
            &[N(ONLINE, "1.0"), N(ONLINE, "1.0"), N(ONLINE, "1.0")],
            t,
            "online | ",
        );
        // Another node offline (any variant) or unresponsive while one is online.
        check_gateway(
            &[N(ONLINE, "1.0"), N(ONLINE, "1.0"), N(LOST_CONTACT, "1.0")],
            t,
            "cluster_issues | NODE_OFFLINE:warning:2",
        );
        check_gateway(
            &[N(NOT_RUNNING, "1.0"), N(ONLINE, "1.0")],
            t,
            "cluster_issues | NODE_OFFLINE:warning:0",
        );
        check_gateway(
            &[N(ONLINE, "1.0"), N(UNCLEAN, "1.0")],
            t,
            "cluster_issues | NODE_OFFLINE:warning:1",
        );
        check_gateway(
            &[N(ONLINE, "1.0"), N(FAILED_START, "1.0")],
            t,
            "cluster_issues | NODE_OFFLINE:warning:1",
        );
        check_gateway(
            &[N(ONLINE, "1.0"), N(UNRESPONSIVE, "1.0")],
            t,
            "cluster_issues | RESTART_TIMED_OUT:error:1",
        );
        // Transitional nodes beside an online one do not change the status (rolling restart).
        check_gateway(
            &[
                N(ONLINE, "1.0"),
                N(RESTARTING, "1.0"),
                N(STARTING, "1.0"),
                N(STOPPING, "1.0"),
            ],
            t,
            "online | ",
        );
        // A node-reported cluster error.
        check_gateway(
            &[
                N(ONLINE, "1.0"),
                N("0 starting, 5 online, 399 online cluster_error", "1.0"),
            ],
            t,
            "cluster_issues | ",
        );
        // No node online: the most significant state, in the order 5, 4, 3, 1, 9, 7, 8, 6.
        check_gateway(
            &[
                N(NOT_RUNNING, "1.0"),
                N(STARTING, "1.0"),
                N(UNRESPONSIVE, "1.0"),
                N(RESTARTING, "1.0"),
                N(STOPPING, "1.0"),
            ],
            t,
            "restarting/unresponsive | NODE_OFFLINE:error:0 RESTART_TIMED_OUT:error:2",
        );
        check_gateway(
            &[
                N(STOPPING, "1.0"),
                N(RESTARTING, "1.0"),
                N(STARTING, "1.0"),
                N(LOST_CONTACT, "1.0"),
            ],
            t,
            "restarting | NODE_OFFLINE:error:3",
        );
        check_gateway(
            &[
                N(STARTING, "1.0"),
                N(STOPPING, "1.0"),
                N(LOST_CONTACT, "1.0"),
            ],
            t,
            "stopping | NODE_OFFLINE:error:2",
        );
        check_gateway(
            &[
                N(NOT_RUNNING, "1.0"),
                N(STARTING, "1.0"),
                N(LOST_CONTACT, "1.0"),
            ],
            t,
            "starting | NODE_OFFLINE:error:0 NODE_OFFLINE:error:2",
        );
        check_gateway(
            &[
                N(NOT_RUNNING, "1.0"),
                N(FAILED_START, "1.0"),
                N(UNCLEAN, "1.0"),
                N(LOST_CONTACT, "1.0"),
            ],
            t,
            "offline/lost_contact | NODE_OFFLINE:error:0 NODE_OFFLINE:error:1 NODE_OFFLINE:error:2 NODE_OFFLINE:error:3",
        );
        check_gateway(
            &[
                N(NOT_RUNNING, "1.0"),
                N(FAILED_START, "1.0"),
                N(UNCLEAN, "1.0"),
            ],
            t,
            "offline/unclean_shutdown | NODE_OFFLINE:error:0 NODE_OFFLINE:error:1 NODE_OFFLINE:error:2",
        );
        check_gateway(
            &[N(NOT_RUNNING, "1.0"), N(FAILED_START, "1.0")],
            t,
            "offline/failed_start | NODE_OFFLINE:error:0 NODE_OFFLINE:error:1",
        );
        check_gateway(
            &[N(NOT_RUNNING, "1.0")],
            t,
            "offline/not_running | NODE_OFFLINE:error:0",
        );
        // Different runtime versions among live nodes; offline nodes' versions do not count.
        check_gateway(
            &[N(ONLINE, "1.0"), N(ONLINE, "1.1")],
            t,
            "cluster_issues | VERSION_MISMATCH:warning:-",
        );
        check_gateway(
            &[N(ONLINE, "1.0"), N(STARTING, "1.1")],
            t,
            "cluster_issues | VERSION_MISMATCH:warning:-",
        );
        check_gateway(
            &[N(ONLINE, "1.0"), N(NOT_RUNNING, "1.1")],
            t,
            "cluster_issues | NODE_OFFLINE:warning:1",
        );
        check_gateway(
            &[N(STARTING, "1.0"), N(STARTING, "1.1")],
            t,
            "starting | VERSION_MISMATCH:warning:-",
        );
        // A node that started after an unclean exit.
        check_gateway(
            &[N("0 starting!, 5 online, 399 online", "1.0")],
            t,
            "online | UNCLEAN_PREVIOUS_EXIT:warning:0",
        );
    }

    #[test]
    fn versions_may_differ_during_a_rolling_update() {
        let nodes = [N(ONLINE, "1.0"), N(ONLINE, "1.1")];
        let rolling = GatewayContext {
            rolling_update: true,
            ..GatewayContext::default()
        };
        assert_eq!(
            gateway(&nodes, 400.0, StatusSettings::default(), rolling),
            "online | "
        );
    }

    #[test]
    fn deleted_gateways_show_no_issues() {
        let deleted = GatewayContext {
            deleted: true,
            ..GatewayContext::default()
        };
        assert_eq!(
            gateway(&[], 400.0, StatusSettings::default(), deleted),
            "deleted | "
        );
        let nodes = [N(ONLINE, "1.0"), N(LOST_CONTACT, "1.1")];
        assert_eq!(
            gateway(&nodes, 400.0, StatusSettings::default(), deleted),
            "deleted | "
        );
    }

    #[test]
    fn generations_may_differ_for_30_seconds() {
        // Node 0 applied generation 5 at 100 s; node 1 is still on 4.
        let a = "0 starting, 5 online g4, 100 online g5";
        let b = "0 starting, 5 online g4";
        let heartbeat_until = |s: &str, now: u32| {
            let beats: String = (10..=now)
                .step_by(5)
                .map(|t| format!(", {t} online"))
                .collect();
            Box::leak(format!("{s}{beats}").into_boxed_str()) as &'static str
        };
        let nodes = |now| {
            [
                N(heartbeat_until(a, now), "1.0"),
                N(heartbeat_until(b, now), "1.0"),
            ]
        };
        check_gateway(&nodes(129), 129.0, "online | ");
        check_gateway(&nodes(130), 130.0, "online | ");
        check_gateway(
            &nodes(131),
            131.0,
            "cluster_issues | CONFIG_OUT_OF_SYNC:warning:1",
        );
        // Catching up clears it.
        let caught_up = [
            N(heartbeat_until(a, 131), "1.0"),
            N("0 starting, 5 online g4, 131 online g5", "1.0"),
        ];
        check_gateway(&caught_up, 131.0, "online | ");
        // A node that has applied nothing is behind too.
        let none = [
            N(heartbeat_until(a, 131), "1.0"),
            N(heartbeat_until("0 starting, 5 online", 131), "1.0"),
        ];
        check_gateway(
            &none,
            131.0,
            "cluster_issues | CONFIG_OUT_OF_SYNC:warning:1",
        );
        // Only online nodes count: a starting node has not applied anything yet.
        let starting = [
            N(heartbeat_until(a, 131), "1.0"),
            N("0 starting, 120 disconnect, 125 starting", "1.0"),
        ];
        check_gateway(&starting, 131.0, "online | ");
    }

    #[test]
    fn head_node_is_the_oldest_live_node() {
        let settings = StatusSettings::default();
        let mut old = record(LOST_CONTACT, "1.0");
        old.joined_at = at(-100.0);
        let mut middle = record(ONLINE, "1.0");
        middle.joined_at = at(-50.0);
        let young = record(ONLINE, "1.0");
        let nodes = [young.clone(), old.clone(), middle.clone()];
        assert_eq!(
            head_node(&nodes, at(400.0), &settings),
            Some(middle.node_id)
        );
        assert_eq!(head_node(&nodes, at(200.0), &settings), Some(old.node_id));
        assert_eq!(head_node(&[old], at(400.0), &settings), None);
        assert_eq!(head_node(&[], at(400.0), &settings), None);
    }

    #[test]
    fn cluster_issue_reasons() {
        let mut a = record(ONLINE, "1.0");
        let b = record(LOST_CONTACT, "1.1");
        a.cluster_error = Some("split".into());
        let reasons = cluster_issues(
            &[a.clone(), b.clone()],
            at(400.0),
            &StatusSettings::default(),
            GatewayContext::default(),
        );
        assert_eq!(
            reasons,
            [
                ClusterIssue::NodeDown(b.node_id),
                ClusterIssue::ClusterError(a.node_id)
            ]
        );
        let no_online = cluster_issues(
            &[b],
            at(400.0),
            &StatusSettings::default(),
            GatewayContext::default(),
        );
        assert!(no_online.is_empty());
    }

    #[test]
    fn status_strings_round_trip() {
        let mut rendered = Vec::new();
        for state in NodeState::ALL {
            let s = state.status();
            assert!(s.is_valid());
            let variant = s.variant.map(StatusVariant::as_str);
            assert_eq!(GatewayStatus::parse(s.state.as_str(), variant), Some(s));
            rendered.push(format!(
                "{:<26} {:<14} {}",
                render_status(s),
                s.coarse().as_str(),
                s.label()
            ));
        }
        for s in [GatewayStatus::CLUSTER_ISSUES, GatewayStatus::DELETED] {
            assert_eq!(GatewayStatus::parse(s.state.as_str(), None), Some(s));
            rendered.push(format!(
                "{:<26} {:<14} {}",
                render_status(s),
                s.coarse().as_str(),
                s.label()
            ));
        }
        expect_test::expect![[r#"
            starting                   offline        Starting
            online                     online         Online
            stopping                   offline        Stopping
            restarting                 offline        Restarting
            restarting/unresponsive    offline        Restarting (unresponsive)
            offline/not_running        offline        Offline (not running)
            offline/unclean_shutdown   offline        Offline (did not shut down cleanly)
            offline/failed_start       offline        Offline (failed to start)
            offline/lost_contact       offline        Offline (stopped communicating)
            cluster_issues             cluster_issues Cluster Issues
            deleted                    offline        Deleted"#]]
        .assert_eq(&rendered.join("\n"));
        // Combinations the SPEC does not have are refused.
        assert_eq!(GatewayStatus::parse("online", Some("lost_contact")), None);
        assert_eq!(GatewayStatus::parse("offline", None), None);
        assert_eq!(
            GatewayStatus::parse("restarting", Some("not_running")),
            None
        );
        assert_eq!(GatewayStatus::parse("asleep", None), None);
        assert_eq!(GatewayStatus::parse("offline", Some("asleep")), None);
    }

    #[test]
    fn every_status_has_one_rank_and_round_trips() {
        let mut all: Vec<GatewayStatus> = NodeState::ALL.iter().map(|s| s.status()).collect();
        all.extend([GatewayStatus::CLUSTER_ISSUES, GatewayStatus::DELETED]);
        all.sort_by_key(|s| s.rank());
        assert_eq!(all, GatewayStatus::ALL);
        for (i, s) in GatewayStatus::ALL.into_iter().enumerate() {
            assert!(s.is_valid(), "{s:?}");
            assert_eq!(s.rank(), i);
        }
        assert_eq!(GatewayStatus::ONLINE.rank(), 0);
        assert_eq!(GatewayStatus::DELETED.rank(), GatewayStatus::ALL.len() - 1);
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        assert_eq!(Severity::parse("fatal"), None);
        for name in ["starting", "online", "stopping", "stopped"] {
            assert_eq!(
                ReportedState::parse(name, true).map(|s| s.as_str()),
                Some(name)
            );
        }
        assert_eq!(
            ReportedState::parse("starting", true),
            Some(ReportedState::Starting {
                unclean_previous_exit: true
            })
        );
        assert_eq!(ReportedState::parse("restarting", false), None);
        assert!(codes::from_node_states(codes::NO_NODES));
        assert!(!codes::from_node_states(codes::CONFIG_APPLY_FAILED));
    }

    #[test]
    fn the_shown_node_is_the_head_node_else_the_oldest() {
        let settings = StatusSettings::default();
        let mut old = record(LOST_CONTACT, "1.0");
        old.joined_at = at(-100.0);
        let mut middle = record(LOST_CONTACT, "1.0");
        middle.joined_at = at(-50.0);
        let young = record(ONLINE, "1.0");
        let nodes = [young.clone(), middle.clone(), old.clone()];
        let live = GatewayContext::default();
        let deleted = GatewayContext {
            deleted: true,
            ..live
        };
        // A deleted gateway's nodes are offline: the oldest is shown.
        assert_eq!(
            shown_node(&[young.clone(), old.clone()], at(400.0), &settings, deleted),
            Some(old.node_id)
        );
        // At 100 s every node is live: the oldest is the head.
        assert_eq!(
            shown_node(&nodes, at(100.0), &settings, live),
            Some(old.node_id)
        );
        // At 400 s only the young one is live.
        assert_eq!(
            shown_node(&nodes, at(400.0), &settings, live),
            Some(young.node_id)
        );
        // None live: the oldest node.
        let down = [middle.clone(), old.clone()];
        assert_eq!(head_node(&down, at(400.0), &settings), None);
        assert_eq!(
            shown_node(&down, at(400.0), &settings, live),
            Some(old.node_id)
        );
        assert_eq!(shown_node(&[], at(400.0), &settings, live), None);
    }

    #[test]
    fn reconcile_raises_new_and_changed_and_clears_the_rest() {
        let map = |entries: &[(&'static str, &'static str)]| -> HashMap<&str, &str> {
            entries.iter().copied().collect()
        };
        let remembered = map(&[("A", "same"), ("B", "old"), ("C", "gone")]);
        let wanted = map(&[("A", "same"), ("B", "new"), ("D", "fresh")]);
        let (mut raise, clear) = reconcile(&remembered, &wanted);
        raise.sort();
        assert_eq!(raise, [("B", "new"), ("D", "fresh")]);
        assert_eq!(clear, ["C"]);
        let (raise, clear) = reconcile(&wanted, &wanted);
        assert!(raise.is_empty() && clear.is_empty());
        let (raise, clear) = reconcile(&HashMap::<&str, &str>::new(), &HashMap::new());
        assert!(raise.is_empty() && clear.is_empty());
    }
}
