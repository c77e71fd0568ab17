//! Audit entries: every mutation of the store takes one and commits it with the change.

use model::*;

/// Who did something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    /// A gateway node, authenticated by its node credential or an install token.
    Node(NodeId),
    /// The platform itself (background jobs, `switchyard up`).
    System,
}

impl Actor {
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::Node(_) => "node",
            Actor::System => "system",
        }
    }

    pub(crate) fn id(self) -> Option<String> {
        match self {
            Actor::User(id) => Some(id.to_string()),
            Actor::Node(id) => Some(id.to_string()),
            Actor::System => None,
        }
    }

    pub(crate) fn parse(kind: &str, id: Option<&str>) -> Option<Actor> {
        match (kind, id) {
            ("user", Some(id)) => id.parse().ok().map(Actor::User),
            ("node", Some(id)) => id.parse().ok().map(Actor::Node),
            ("system", _) => Some(Actor::System),
            _ => None,
        }
    }
}

/// What an action was about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditTarget {
    /// `account`, `user`, `api_token`, `install_token`, `node_credential`, `gateway`,
    /// `node`, `environment`, `api`, `deployment`, …
    pub kind: String,
    pub id: Option<String>,
}

impl AuditTarget {
    pub fn new(kind: impl Into<String>, id: impl ToString) -> Self {
        Self {
            kind: kind.into(),
            id: Some(id.to_string()),
        }
    }
}

/// How an audited action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditResult {
    Allowed,
    Denied,
    Failed,
}

impl AuditResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Allowed => "allowed",
            AuditResult::Denied => "denied",
            AuditResult::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allowed" => Some(AuditResult::Allowed),
            "denied" => Some(AuditResult::Denied),
            "failed" => Some(AuditResult::Failed),
            _ => None,
        }
    }
}

/// The audit entry a caller hands to a mutation. `at` is also the time the store records
/// for the change itself (created_at, deleted_at, …), so the clock stays with the caller.
#[derive(Clone, Debug)]
pub struct Audit {
    pub actor: Actor,
    /// Dotted verb, e.g. `gateway.create`, `environment.update_paths`.
    pub action: String,
    /// Filled in by the store for mutations when `None` (it knows the new object's id).
    pub target: Option<AuditTarget>,
    /// Free JSON; the store adds facts it learns (e.g. environments detached by a delete).
    /// Never put secrets here.
    pub details: serde_json::Value,
    pub at: Timestamp,
}

impl Audit {
    pub fn new(actor: Actor, action: impl Into<String>, at: Timestamp) -> Self {
        Self {
            actor,
            action: action.into(),
            target: None,
            details: serde_json::Value::Object(Default::default()),
            at,
        }
    }

    pub fn with_target(mut self, target: AuditTarget) -> Self {
        self.target = Some(target);
        self
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Sets the target unless the caller already chose one.
    pub(crate) fn default_target(&mut self, kind: &str, id: impl ToString) {
        if self.target.is_none() {
            self.target = Some(AuditTarget::new(kind, id));
        }
    }

    /// Adds `key: value` to the details when they are a JSON object.
    pub(crate) fn add_detail(&mut self, key: &str, value: serde_json::Value) {
        if let serde_json::Value::Object(map) = &mut self.details {
            map.insert(key.to_owned(), value);
        }
    }
}

/// One stored audit record.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    pub id: AuditId,
    pub account_id: Option<AccountId>,
    pub actor: Actor,
    pub action: String,
    pub target: Option<AuditTarget>,
    pub result: AuditResult,
    pub details: serde_json::Value,
    pub at: Timestamp,
}

/// The record a mutation writes for `audit`, with a fresh time-ordered id.
pub(crate) fn record(
    account_id: Option<AccountId>,
    audit: &Audit,
    result: AuditResult,
) -> AuditRecord {
    AuditRecord {
        id: AuditId::new_v7(),
        account_id,
        actor: audit.actor,
        action: audit.action.clone(),
        target: audit.target.clone(),
        result,
        details: audit.details.clone(),
        at: audit.at,
    }
}
