//! Environment migrations (SPEC §7) as the platform keeps and shows them: the saved state of
//! the three steps (stored as JSON in the migration's `state` column, written and read only
//! through [`SavedSteps`]), and the REST shape of a migration. The rules (which step is
//! current, what blocks Migrate, the findings) are `model::migration`'s; this module only
//! maps between them and what is stored and shown.

use model::migration::{self as rules, Severity, Step, Steps, Warning};
use model::{Gateway, Timestamp};
use serde::{Deserialize, Serialize};
use store::EnvironmentMigration;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::dto::{EnvironmentConfiguration, rfc3339};
use crate::error::ApiError;

/// How serious a finding is; only `ERROR` blocks Migrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FindingSeverity {
    Info,
    Warning,
    Error,
}

impl From<Severity> for FindingSeverity {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Info => FindingSeverity::Info,
            Severity::Warning => FindingSeverity::Warning,
            Severity::Error => FindingSeverity::Error,
        }
    }
}

impl From<FindingSeverity> for Severity {
    fn from(s: FindingSeverity) -> Self {
        match s {
            FindingSeverity::Info => Severity::Info,
            FindingSeverity::Warning => Severity::Warning,
            FindingSeverity::Error => Severity::Error,
        }
    }
}

/// One finding of a step: a stable code, a message and a severity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingDto {
    pub code: String,
    pub message: String,
    pub severity: FindingSeverity,
}

impl From<&Warning> for FindingDto {
    fn from(w: &Warning) -> Self {
        Self {
            code: w.code.clone(),
            message: w.message.clone(),
            severity: w.severity.into(),
        }
    }
}

impl From<&FindingDto> for Warning {
    fn from(f: &FindingDto) -> Self {
        Warning {
            code: f.code.clone(),
            message: f.message.clone(),
            severity: f.severity.into(),
        }
    }
}

pub(crate) fn findings(warnings: &[Warning]) -> Vec<FindingDto> {
    warnings.iter().map(FindingDto::from).collect()
}

/// Step 1 as saved: where the environment goes, with which paths.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationStepDto {
    /// The destination gateway; null moves the environment off its gateway.
    pub gateway_id: Option<Uuid>,
    /// The environment's paths on the destination, percent-encoded as stored.
    pub paths: EnvironmentConfiguration,
    pub summary: String,
    pub warnings: Vec<FindingDto>,
    pub saved_at: String,
}

/// What one destination node reported for one API's upstream.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeDto {
    pub node_id: Uuid,
    pub node: String,
    pub api_id: Uuid,
    pub api: String,
    /// The URL probed: the API's health-check URL, else its first upstream target.
    pub target: String,
    pub reachable: bool,
    /// The health check's HTTP status; null for a TCP connect or a failure.
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
}

/// Step 2 as saved: what the destination's online nodes reported.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeCheckStepDto {
    /// The destination's online nodes asked to probe, by name.
    pub nodes_asked: Vec<String>,
    /// Those that answered in time.
    pub nodes_answered: Vec<String>,
    pub probes: Vec<ProbeDto>,
    pub summary: String,
    pub warnings: Vec<FindingDto>,
    pub saved_at: String,
}

/// One deployed API as the review lists it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewedApiDto {
    pub api_id: Uuid,
    pub name: String,
    pub version: String,
    /// How callers authenticate: `none` until API policies exist.
    pub authentication: String,
    /// The plans of the API (none until plans exist).
    pub plans: Vec<String>,
}

/// Step 3 as saved: the deployed APIs with their authentication and plans.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewStepDto {
    pub apis: Vec<ReviewedApiDto>,
    pub summary: String,
    pub warnings: Vec<FindingDto>,
    pub saved_at: String,
}

/// The saved steps of a migration; a step not saved (or invalidated by redoing an earlier
/// one) is null.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SavedSteps {
    #[serde(default)]
    pub destination: Option<DestinationStepDto>,
    #[serde(default)]
    pub runtime_check: Option<RuntimeCheckStepDto>,
    #[serde(default)]
    pub review: Option<ReviewStepDto>,
    /// Findings of the Migrate that ended the migration (its cut-over), if any.
    #[serde(default)]
    pub migrate: Vec<FindingDto>,
}

impl SavedSteps {
    /// Reads the stored state. An unreadable state is a defect (only this type writes it).
    pub(crate) fn read(m: &EnvironmentMigration) -> Result<SavedSteps, ApiError> {
        serde_json::from_value(m.state.clone()).map_err(|error| {
            tracing::error!(%error, migration = %m.id, "unreadable migration state");
            ApiError::internal()
        })
    }

    pub(crate) fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("migration state serialises")
    }

    pub(crate) fn steps(&self) -> Steps {
        Steps::from_done(
            [
                self.destination.is_some().then_some(Step::Destination),
                self.runtime_check.is_some().then_some(Step::RuntimeCheck),
                self.review.is_some().then_some(Step::Review),
            ]
            .into_iter()
            .flatten(),
        )
    }

    /// `step` was saved (again): the later steps are cleared, as the model says.
    pub(crate) fn invalidate_after(&mut self, step: Step) {
        let mut steps = self.steps();
        for later in steps.complete(step) {
            match later {
                Step::Destination => self.destination = None,
                Step::RuntimeCheck => self.runtime_check = None,
                Step::Review => self.review = None,
            }
        }
        // A step that was never saved is not invalidated by the model, but its successors
        // cannot stand without it either.
        if step < Step::RuntimeCheck {
            self.runtime_check = None;
        }
        if step < Step::Review {
            self.review = None;
        }
    }

    /// Every finding of the saved steps.
    pub(crate) fn warnings(&self) -> Vec<Warning> {
        let destination = self.destination.iter().flat_map(|s| &s.warnings);
        let check = self.runtime_check.iter().flat_map(|s| &s.warnings);
        let review = self.review.iter().flat_map(|s| &s.warnings);
        destination
            .chain(check)
            .chain(review)
            .map(Warning::from)
            .collect()
    }
}

/// Step 1 (`1`), 2, 3, or `ready` to migrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum CurrentStepDto {
    #[serde(rename = "1")]
    Destination,
    #[serde(rename = "2")]
    RuntimeCheck,
    #[serde(rename = "3")]
    Review,
    #[serde(rename = "ready")]
    Ready,
}

impl From<rules::CurrentStep> for CurrentStepDto {
    fn from(c: rules::CurrentStep) -> Self {
        match c {
            rules::CurrentStep::Step(Step::Destination) => CurrentStepDto::Destination,
            rules::CurrentStep::Step(Step::RuntimeCheck) => CurrentStepDto::RuntimeCheck,
            rules::CurrentStep::Step(Step::Review) => CurrentStepDto::Review,
            rules::CurrentStep::Ready => CurrentStepDto::Ready,
        }
    }
}

/// The title of the current step, as the console shows it.
pub fn current_step_title(c: rules::CurrentStep) -> &'static str {
    match c {
        rules::CurrentStep::Step(Step::Destination) => "Destination and paths",
        rules::CurrentStep::Step(Step::RuntimeCheck) => "Runtime check",
        rules::CurrentStep::Step(Step::Review) => "APIs review",
        rules::CurrentStep::Ready => "Ready to migrate",
    }
}

/// The result of a completed migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MigrationResultDto {
    Ok,
    OkWithWarnings,
    Error,
}

impl From<rules::MigrationResult> for MigrationResultDto {
    fn from(r: rules::MigrationResult) -> Self {
        match r {
            rules::MigrationResult::Ok => MigrationResultDto::Ok,
            rules::MigrationResult::OkWithWarnings => MigrationResultDto::OkWithWarnings,
            rules::MigrationResult::Error => MigrationResultDto::Error,
        }
    }
}

/// A gateway of a migration.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MigrationGatewayDto {
    pub id: Uuid,
    pub name: String,
    /// The gateway was deleted: the migration can only be deleted.
    pub deleted: bool,
}

impl From<&Gateway> for MigrationGatewayDto {
    fn from(g: &Gateway) -> Self {
        Self {
            id: g.id.0,
            name: g.name.clone(),
            deleted: g.deleted_at.is_some(),
        }
    }
}

/// The environment a migration moves.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MigrationEnvironmentDto {
    pub id: Uuid,
    pub name: String,
}

/// Why Migrate is refused now.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BlockedDto {
    /// `STEP_INCOMPLETE`, or the code of the ERROR finding that stands.
    pub code: String,
    pub message: String,
}

impl From<&rules::Blocked> for BlockedDto {
    fn from(b: &rules::Blocked) -> Self {
        let code = match b {
            rules::Blocked::StepIncomplete(_) => "STEP_INCOMPLETE".to_owned(),
            rules::Blocked::Error(code) => code.clone(),
        };
        Self {
            code,
            message: b.to_string(),
        }
    }
}

/// An environment migration (SPEC §7).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MigrationDto {
    pub id: Uuid,
    /// `1`, `2` or `3`: the first step not complete; `ready` when all three are.
    pub current_step: CurrentStepDto,
    /// The current step's title (`Destination and paths`, `Runtime check`, `APIs review`,
    /// `Ready to migrate`).
    pub current_step_title: String,
    pub environment: MigrationEnvironmentDto,
    /// The environment's gateway when the migration was created; null when unattached.
    pub moving_from: Option<MigrationGatewayDto>,
    /// The destination chosen at step 1; null before step 1 and when moving off.
    pub moving_to: Option<MigrationGatewayDto>,
    /// Step 1 chose "off its gateway".
    pub moving_off: bool,
    pub steps: SavedSteps,
    /// Every finding that stands: those of the saved steps, and `GATEWAY_DELETED`.
    pub warnings: Vec<FindingDto>,
    /// Why Migrate is refused now; empty when it may run (or the migration is completed).
    pub blocked: Vec<BlockedDto>,
    pub result: Option<MigrationResultDto>,
    pub completed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What a migration is shown with, read around it.
pub(crate) struct MigrationView<'a> {
    pub migration: &'a EnvironmentMigration,
    pub saved: &'a SavedSteps,
    pub environment_name: &'a str,
    pub from: Option<&'a Gateway>,
    pub to: Option<&'a Gateway>,
}

impl MigrationView<'_> {
    /// The standing findings: the saved steps', plus an ERROR per deleted gateway.
    pub(crate) fn warnings(&self) -> Vec<Warning> {
        let mut warnings = Vec::new();
        for (role, g) in [("source", self.from), ("destination", self.to)] {
            if let Some(g) = g.filter(|g| g.deleted_at.is_some()) {
                warnings.push(Warning::new(
                    Severity::Error,
                    rules::codes::GATEWAY_DELETED,
                    format!(
                        "the {role} gateway {} was deleted; delete this migration and create a new one",
                        g.name
                    ),
                ));
            }
        }
        warnings.extend(self.saved.warnings());
        warnings
    }

    pub(crate) fn blocked(&self) -> Vec<rules::Blocked> {
        if self.migration.completed_at.is_some() {
            return Vec::new();
        }
        rules::blocked(self.saved.steps(), &self.warnings())
    }

    pub(crate) fn dto(&self) -> MigrationDto {
        let m = self.migration;
        let current = self.saved.steps().current();
        let warnings = self.warnings();
        MigrationDto {
            id: m.id.0,
            current_step: current.into(),
            current_step_title: current_step_title(current).to_owned(),
            environment: MigrationEnvironmentDto {
                id: m.environment_id.0,
                name: self.environment_name.to_owned(),
            },
            moving_from: self.from.map(MigrationGatewayDto::from),
            moving_to: self.to.map(MigrationGatewayDto::from),
            moving_off: self
                .saved
                .destination
                .as_ref()
                .is_some_and(|d| d.gateway_id.is_none()),
            steps: self.saved.clone(),
            warnings: findings(&warnings),
            blocked: self.blocked().iter().map(BlockedDto::from).collect(),
            result: m
                .result
                .as_deref()
                .and_then(rules::MigrationResult::parse)
                .map(Into::into),
            completed_at: m.completed_at.map(rfc3339),
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
        }
    }
}

/// `POST /migrations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMigration {
    pub environment_id: Uuid,
}

/// `PUT /migrations/{id}/destination` (step 1).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetDestination {
    /// The destination gateway; null moves the environment off its gateway (only when it is
    /// attached).
    pub gateway_id: Option<Uuid>,
    pub paths: EnvironmentConfiguration,
}

/// Which migrations `GET /migrations` lists.
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MigrationListState {
    #[default]
    InProgress,
    Completed,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MigrationListQuery {
    /// `in_progress` (the default) or `completed` (the history, newest first).
    #[param(inline)]
    pub state: Option<MigrationListState>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MigrationList {
    pub migrations: Vec<MigrationDto>,
}

/// A saved step's time, as shown.
pub(crate) fn saved_at(at: Timestamp) -> String {
    rfc3339(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(code: &str, severity: FindingSeverity) -> FindingDto {
        FindingDto {
            code: code.into(),
            message: "m".into(),
            severity,
        }
    }

    fn destination() -> DestinationStepDto {
        DestinationStepDto {
            gateway_id: None,
            paths: EnvironmentConfiguration {
                rest_path: "ws/rest".into(),
                soap_path: "ws/soap".into(),
                soap12_path: "ws/soap12".into(),
                odata_path: "ws/odata".into(),
            },
            summary: "s".into(),
            warnings: vec![finding("ENVIRONMENT_PATH_NESTED", FindingSeverity::Warning)],
            saved_at: "t".into(),
        }
    }

    fn check() -> RuntimeCheckStepDto {
        RuntimeCheckStepDto {
            nodes_asked: vec![],
            nodes_answered: vec![],
            probes: vec![],
            summary: "s".into(),
            warnings: vec![finding("DESTINATION_OFFLINE", FindingSeverity::Error)],
            saved_at: "t".into(),
        }
    }

    fn review() -> ReviewStepDto {
        ReviewStepDto {
            apis: vec![],
            summary: "s".into(),
            warnings: vec![],
            saved_at: "t".into(),
        }
    }

    #[test]
    fn saved_steps_round_trip_and_say_which_steps_are_done() {
        let saved = SavedSteps {
            destination: Some(destination()),
            runtime_check: Some(check()),
            review: None,
            migrate: vec![],
        };
        let back: SavedSteps = serde_json::from_value(saved.to_value()).unwrap();
        assert_eq!(
            back.steps().current(),
            rules::CurrentStep::Step(Step::Review)
        );
        assert_eq!(back.warnings().len(), 2);
        assert_eq!(
            serde_json::from_value::<SavedSteps>(serde_json::json!({}))
                .unwrap()
                .steps()
                .current(),
            rules::CurrentStep::Step(Step::Destination)
        );
        assert!(serde_json::from_value::<SavedSteps>(serde_json::json!({"x": 1})).is_err());
    }

    #[test]
    fn redoing_a_step_clears_the_later_ones() {
        let mut saved = SavedSteps {
            destination: Some(destination()),
            runtime_check: Some(check()),
            review: Some(review()),
            migrate: vec![],
        };
        saved.invalidate_after(Step::RuntimeCheck);
        assert!(saved.destination.is_some() && saved.runtime_check.is_some());
        assert!(saved.review.is_none());
        saved.invalidate_after(Step::Destination);
        assert!(saved.runtime_check.is_none() && saved.review.is_none());
        assert!(saved.destination.is_some());
    }

    #[test]
    fn wire_names_of_severity_result_and_step() {
        let json = |v: serde_json::Value| v.as_str().unwrap().to_owned();
        assert_eq!(
            json(serde_json::to_value(FindingSeverity::Warning).unwrap()),
            "WARNING"
        );
        for r in [
            rules::MigrationResult::Ok,
            rules::MigrationResult::OkWithWarnings,
            rules::MigrationResult::Error,
        ] {
            assert_eq!(
                json(serde_json::to_value(MigrationResultDto::from(r)).unwrap()),
                r.name()
            );
        }
        for s in [Severity::Info, Severity::Warning, Severity::Error] {
            assert_eq!(
                json(serde_json::to_value(FindingSeverity::from(s)).unwrap()),
                s.name()
            );
        }
        assert_eq!(
            json(serde_json::to_value(CurrentStepDto::RuntimeCheck).unwrap()),
            "2"
        );
        assert_eq!(
            json(serde_json::to_value(CurrentStepDto::Ready).unwrap()),
            "ready"
        );
    }
}
