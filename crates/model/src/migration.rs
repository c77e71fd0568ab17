//! Environment migration rules (SPEC §7), with no IO. The platform saves the step state and
//! asks these functions what it means:
//!
//! - **Steps.** Three steps (destination and paths, runtime check, APIs review). A step can
//!   run only after the earlier ones completed; completing (or redoing) a step invalidates
//!   every later one, because its input changed. `current_step` is the first incomplete
//!   step, or `Ready` when all three are complete.
//! - **Warnings** carry a stable code, a message and a severity. Any ERROR blocks Migrate.
//! - **Blocked.** Migrate is refused while a step is incomplete, an ERROR stands, or a gateway
//!   of the migration was deleted (then the migration can only be deleted).
//! - **Result** of Migrate: `OK`, `OK_WITH_WARNINGS` when any WARNING stands, `ERROR` when the
//!   cut-over failed.
//! - **Runtime check findings** from the destination nodes' probe reports.
//! - **Nested environment paths** on one gateway (`ENVIRONMENT_PATH_NESTED`): one
//!   environment's path a segment prefix of another's, so that the shorter one's APIs can
//!   capture URLs of the longer one that match none of its APIs.
//! - **Example URLs** of the deployed APIs of an environment, in their encoded form.

use std::fmt;
use std::time::Duration;

use crate::conflict::{DeployedApi, GatewayEnvironment, example_url, route_prefix};
use crate::entity::{ApiType, EnvironmentPaths};
use crate::id::{ApiId, EnvironmentId};

/// How long Migrate waits for the destination's online nodes to apply the configuration that
/// contains the environment, unless the platform sets another time.
pub const DEFAULT_CUTOVER_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the source gateway redirects the environment's URLs after a migration, unless the
/// platform sets another time.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(600);

/// How serious a finding is; only `Error` blocks Migrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
        }
    }

    pub fn parse(name: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Error]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// One finding of a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub code: String,
    pub message: String,
    pub severity: Severity,
}

impl Warning {
    pub fn new(severity: Severity, code: &str, message: impl Into<String>) -> Warning {
        Warning {
            code: code.to_owned(),
            message: message.into(),
            severity,
        }
    }
}

/// Stable codes of the migration findings and refusals.
pub mod codes {
    /// No online node on the destination gateway to run the runtime check (ERROR).
    pub const DESTINATION_OFFLINE: &str = "DESTINATION_OFFLINE";
    /// A destination node could not reach an API's upstream (WARNING).
    pub const UPSTREAM_UNREACHABLE: &str = "UPSTREAM_UNREACHABLE";
    /// A destination node did not answer the probe in time (WARNING).
    pub const PROBE_NO_ANSWER: &str = "PROBE_NO_ANSWER";
    /// Moving off: the APIs will not be reachable through a gateway (WARNING).
    pub const APIS_UNREACHABLE_AFTER_MOVE: &str = "APIS_UNREACHABLE_AFTER_MOVE";
    /// An API the review listed (INFO).
    pub const API_REVIEWED: &str = "API_REVIEWED";
    /// The environment has no deployed API (INFO).
    pub const NO_DEPLOYED_APIS: &str = "NO_DEPLOYED_APIS";
    /// A gateway of the migration was deleted (ERROR).
    pub const GATEWAY_DELETED: &str = "GATEWAY_DELETED";
    /// One environment's path is a segment prefix of another's on the same gateway.
    pub const ENVIRONMENT_PATH_NESTED: &str = "ENVIRONMENT_PATH_NESTED";
    /// The cut-over did not complete (ERROR result).
    pub const CUTOVER_TIMEOUT: &str = "CUTOVER_TIMEOUT";
}

/// The three steps of a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Destination,
    RuntimeCheck,
    Review,
}

impl Step {
    pub const ALL: [Step; 3] = [Step::Destination, Step::RuntimeCheck, Step::Review];

    /// 1, 2 or 3, as shown in the Current Step column.
    pub fn number(self) -> u8 {
        self as u8 + 1
    }

    pub fn name(self) -> &'static str {
        match self {
            Step::Destination => "destination",
            Step::RuntimeCheck => "runtime check",
            Step::Review => "review",
        }
    }
}

/// The first incomplete step, or `Ready` to migrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CurrentStep {
    Step(Step),
    Ready,
}

impl fmt::Display for CurrentStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CurrentStep::Step(s) => write!(f, "{}", s.number()),
            CurrentStep::Ready => f.write_str("ready"),
        }
    }
}

/// Which steps are complete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Steps {
    done: [bool; 3],
}

/// A step was asked for before the steps it depends on completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("complete step {} ({}) first", .missing.number(), .missing.name())]
pub struct OutOfOrder {
    pub missing: Step,
}

impl Steps {
    /// The steps with `complete` already done (as saved).
    pub fn from_done(complete: impl IntoIterator<Item = Step>) -> Steps {
        let mut steps = Steps::default();
        for step in complete {
            steps.done[step as usize] = true;
        }
        steps
    }

    pub fn is_done(self, step: Step) -> bool {
        self.done[step as usize]
    }

    /// Whether `step` may run now: every earlier step is complete.
    pub fn check_can_run(self, step: Step) -> Result<(), OutOfOrder> {
        match Step::ALL[..step as usize]
            .iter()
            .find(|s| !self.is_done(**s))
        {
            Some(missing) => Err(OutOfOrder { missing: *missing }),
            None => Ok(()),
        }
    }

    /// `step` completed (again): the later steps are invalidated, since they were decided on
    /// the old input. Returns the steps that were invalidated.
    pub fn complete(&mut self, step: Step) -> Vec<Step> {
        self.done[step as usize] = true;
        let mut invalidated = Vec::new();
        for later in &Step::ALL[step as usize + 1..] {
            if self.done[*later as usize] {
                invalidated.push(*later);
            }
            self.done[*later as usize] = false;
        }
        self.check_invariants();
        invalidated
    }

    pub fn current(self) -> CurrentStep {
        Step::ALL
            .iter()
            .find(|s| !self.is_done(**s))
            .map_or(CurrentStep::Ready, |s| CurrentStep::Step(*s))
    }

    /// Completed steps always form a prefix: a step is only ever completed after its
    /// predecessors and completing one clears its successors.
    fn check_invariants(self) {
        debug_assert!(
            self.done.windows(2).all(|w| w[0] || !w[1]),
            "completed steps are not a prefix: {:?}",
            self.done
        );
    }
}

/// Why Migrate is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocked {
    StepIncomplete(Step),
    /// An ERROR finding stands (its code).
    Error(String),
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocked::StepIncomplete(s) => {
                write!(f, "step {} ({}) is not complete", s.number(), s.name())
            }
            Blocked::Error(code) => write!(f, "an ERROR stands: {code}"),
        }
    }
}

/// The reasons Migrate is refused now; empty when it may run. `warnings` are the findings of
/// every saved step plus any standing ones (a deleted gateway).
pub fn blocked<'a>(steps: Steps, warnings: impl IntoIterator<Item = &'a Warning>) -> Vec<Blocked> {
    let mut reasons: Vec<Blocked> = Step::ALL
        .iter()
        .filter(|s| !steps.is_done(**s))
        .map(|s| Blocked::StepIncomplete(*s))
        .collect();
    for w in warnings {
        if w.severity == Severity::Error {
            let reason = Blocked::Error(w.code.clone());
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
    }
    reasons
}

/// The result of a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrationResult {
    Ok,
    OkWithWarnings,
    Error,
}

impl MigrationResult {
    pub fn name(self) -> &'static str {
        match self {
            MigrationResult::Ok => "OK",
            MigrationResult::OkWithWarnings => "OK_WITH_WARNINGS",
            MigrationResult::Error => "ERROR",
        }
    }

    pub fn parse(name: &str) -> Option<MigrationResult> {
        [
            MigrationResult::Ok,
            MigrationResult::OkWithWarnings,
            MigrationResult::Error,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }

    /// The result of a cut-over that completed, from the findings that stood.
    pub fn of_completed<'a>(warnings: impl IntoIterator<Item = &'a Warning>) -> MigrationResult {
        let mut result = MigrationResult::Ok;
        for w in warnings {
            match w.severity {
                Severity::Error => return MigrationResult::Error,
                Severity::Warning => result = MigrationResult::OkWithWarnings,
                Severity::Info => {}
            }
        }
        result
    }
}

/// What one destination node found for one API's upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub node: String,
    pub api_name: String,
    pub target: String,
    pub reachable: bool,
    pub error: Option<String>,
}

/// The runtime check's findings. `moving_to` is false when moving off a gateway (the probe is
/// not run); `online_nodes` are the destination's online node names, `answered` those that
/// reported within the time limit, `outcomes` what they reported.
pub fn runtime_check_findings(
    moving_to: bool,
    api_names: &[String],
    online_nodes: &[String],
    answered: &[String],
    outcomes: &[ProbeOutcome],
) -> Vec<Warning> {
    if !moving_to {
        if api_names.is_empty() {
            return vec![Warning::new(
                Severity::Info,
                codes::NO_DEPLOYED_APIS,
                "the environment has no deployed API",
            )];
        }
        return vec![Warning::new(
            Severity::Warning,
            codes::APIS_UNREACHABLE_AFTER_MOVE,
            format!(
                "moving off its gateway: {} will no longer be reachable through a gateway",
                api_names.join(", ")
            ),
        )];
    }
    if online_nodes.is_empty() {
        return vec![Warning::new(
            Severity::Error,
            codes::DESTINATION_OFFLINE,
            "the destination gateway has no online node to run the check",
        )];
    }
    let mut findings = Vec::new();
    for node in online_nodes {
        if !answered.contains(node) {
            findings.push(Warning::new(
                Severity::Warning,
                codes::PROBE_NO_ANSWER,
                format!("node {node} did not report its probe in time"),
            ));
        }
    }
    for o in outcomes.iter().filter(|o| !o.reachable) {
        let why = o.error.as_deref().unwrap_or("unreachable");
        findings.push(Warning::new(
            Severity::Warning,
            codes::UPSTREAM_UNREACHABLE,
            format!(
                "API {} target {} is unreachable from node {}: {why}",
                o.api_name, o.target, o.node
            ),
        ));
    }
    if api_names.is_empty() {
        findings.push(Warning::new(
            Severity::Info,
            codes::NO_DEPLOYED_APIS,
            "the environment has no deployed API",
        ));
    }
    findings
}

/// Whether `prefix` is a strict segment prefix of `path` (`ws` of `ws/rest`, not of `wsx`).
pub fn is_segment_prefix(prefix: &str, path: &str) -> bool {
    path.len() > prefix.len() && path.starts_with(prefix) && path.as_bytes()[prefix.len()] == b'/'
}

const TYPES: [ApiType; 4] = [
    ApiType::Rest,
    ApiType::Soap,
    ApiType::Soap12,
    ApiType::Odata,
];

/// `ENVIRONMENT_PATH_NESTED` warnings for `env` (with `paths`) among the other environments of
/// its gateway: one per pair of paths where one is a strict segment prefix of the other.
/// The shorter environment's APIs then receive the longer one's URLs that match none of its
/// APIs (Staging `ws` + API `rest` receives Production's unmatched `/ws/rest/*`).
pub fn nested_path_warnings(
    env: EnvironmentId,
    env_name: &str,
    paths: &EnvironmentPaths,
    others: &[GatewayEnvironment],
) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for other in others.iter().filter(|o| o.id != env) {
        for ours in TYPES.map(|t| paths.for_type(t)) {
            for theirs in TYPES.map(|t| other.paths.for_type(t)) {
                let (outer, outer_path, inner, inner_path) = if is_segment_prefix(ours, theirs) {
                    (env_name, ours, other.name.as_str(), theirs)
                } else if is_segment_prefix(theirs, ours) {
                    (other.name.as_str(), theirs, env_name, ours)
                } else {
                    continue;
                };
                let message = format!(
                    "path `{outer_path}` of {outer} is a prefix of path `{inner_path}` of \
                     {inner}: {outer}'s APIs can receive {inner}'s unmatched URLs"
                );
                let w = Warning::new(Severity::Warning, codes::ENVIRONMENT_PATH_NESTED, message);
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
        }
    }
    warnings
}

/// What the source gateway of a completed migration keeps answering for the grace period:
/// the environment's old paths redirect to the destination's Gateway URL until `until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// The environment's paths on the source, as it served them.
    pub paths: EnvironmentPaths,
    /// The destination's Gateway URL.
    pub location: String,
    pub until: crate::Timestamp,
}

/// The example URL of one deployed API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExampleUrl {
    pub api_id: ApiId,
    pub api_name: String,
    pub url: String,
}

/// One example URL per deployment of the environment, in the encoded (stored) form, sorted by
/// API name. Without a Gateway URL (unattached, or no URL known yet) the URL is the path alone.
pub fn example_urls(
    gateway_url: Option<&str>,
    paths: &EnvironmentPaths,
    deployments: &[DeployedApi],
) -> Vec<ExampleUrl> {
    let mut urls: Vec<ExampleUrl> = deployments
        .iter()
        .map(|d| ExampleUrl {
            api_id: d.api_id,
            api_name: d.api_name.clone(),
            url: example_url(
                gateway_url.unwrap_or(""),
                &route_prefix(paths, d.api_type, &d.base_path, d.custom_path.as_deref()),
            ),
        })
        .collect();
    urls.sort_by(|a, b| a.api_name.cmp(&b.api_name).then(a.url.cmp(&b.url)));
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(done: &str) -> Steps {
        Steps::from_done(
            done.chars()
                .map(|c| Step::ALL[c.to_digit(10).unwrap() as usize - 1]),
        )
    }

    /// `check(saved, completing, current after, invalidated)`.
    fn check_complete(saved: &str, completing: u8, current: &str, invalidated: &[u8]) {
        let mut s = steps(saved);
        let step = Step::ALL[completing as usize - 1];
        let gone: Vec<u8> = s.complete(step).iter().map(|s| s.number()).collect();
        assert_eq!(s.current().to_string(), current, "{saved} + {completing}");
        assert_eq!(gone, invalidated, "{saved} + {completing}");
    }

    #[test]
    fn current_step_follows_completion_and_redo_invalidates_later_steps() {
        assert_eq!(Steps::default().current().to_string(), "1");
        check_complete("", 1, "2", &[]);
        check_complete("1", 2, "3", &[]);
        check_complete("12", 3, "ready", &[]);
        check_complete("123", 3, "ready", &[]);
        check_complete("123", 2, "3", &[3]);
        check_complete("123", 1, "2", &[2, 3]);
        check_complete("12", 1, "2", &[2]);
    }

    #[test]
    fn a_step_runs_only_after_the_earlier_ones() {
        assert_eq!(steps("").check_can_run(Step::Destination), Ok(()));
        assert_eq!(
            steps("").check_can_run(Step::Review),
            Err(OutOfOrder {
                missing: Step::Destination
            })
        );
        assert_eq!(
            steps("1").check_can_run(Step::Review),
            Err(OutOfOrder {
                missing: Step::RuntimeCheck
            })
        );
        assert_eq!(steps("12").check_can_run(Step::Review), Ok(()));
        assert_eq!(
            OutOfOrder {
                missing: Step::RuntimeCheck
            }
            .to_string(),
            "complete step 2 (runtime check) first"
        );
    }

    fn w(severity: Severity, code: &str) -> Warning {
        Warning::new(severity, code, "m")
    }

    #[test]
    fn migrate_is_blocked_by_incomplete_steps_and_errors() {
        let info = w(Severity::Info, "I");
        let warn = w(Severity::Warning, "W");
        let err = w(Severity::Error, "E");
        assert_eq!(blocked(steps("123"), [&info, &warn]), vec![]);
        assert_eq!(
            blocked(steps("1"), [&warn]),
            vec![
                Blocked::StepIncomplete(Step::RuntimeCheck),
                Blocked::StepIncomplete(Step::Review)
            ]
        );
        assert_eq!(
            blocked(steps("123"), [&err, &err.clone()]),
            vec![Blocked::Error("E".into())]
        );
        assert_eq!(
            Blocked::StepIncomplete(Step::Review).to_string(),
            "step 3 (review) is not complete"
        );
    }

    #[test]
    fn result_of_a_completed_cutover() {
        let r = |sev: &[Severity]| {
            let ws: Vec<Warning> = sev.iter().map(|s| w(*s, "X")).collect();
            MigrationResult::of_completed(&ws).name()
        };
        assert_eq!(r(&[]), "OK");
        assert_eq!(r(&[Severity::Info]), "OK");
        assert_eq!(r(&[Severity::Info, Severity::Warning]), "OK_WITH_WARNINGS");
        assert_eq!(r(&[Severity::Warning, Severity::Error]), "ERROR");
        for name in ["OK", "OK_WITH_WARNINGS", "ERROR"] {
            assert_eq!(MigrationResult::parse(name).unwrap().name(), name);
        }
        assert_eq!(MigrationResult::parse("ok"), None);
        assert_eq!(Severity::parse("WARNING"), Some(Severity::Warning));
    }

    fn codes_of(ws: &[Warning]) -> Vec<String> {
        ws.iter()
            .map(|w| format!("{} {}", w.severity.name(), w.code))
            .collect()
    }

    #[test]
    fn runtime_check_findings_by_case() {
        let apis = vec!["orders".to_string()];
        let nodes = vec!["n1".to_string(), "n2".to_string()];
        let down = ProbeOutcome {
            node: "n2".into(),
            api_name: "orders".into(),
            target: "http://10.0.0.1:80".into(),
            reachable: false,
            error: Some("connection refused".into()),
        };
        let up = ProbeOutcome {
            reachable: true,
            error: None,
            node: "n1".into(),
            ..down.clone()
        };
        assert_eq!(
            codes_of(&runtime_check_findings(true, &apis, &[], &[], &[])),
            ["ERROR DESTINATION_OFFLINE"]
        );
        assert_eq!(
            codes_of(&runtime_check_findings(
                true,
                &apis,
                &nodes,
                &nodes,
                std::slice::from_ref(&up)
            )),
            Vec::<String>::new()
        );
        let found = runtime_check_findings(true, &apis, &nodes, &nodes, &[up, down]);
        assert_eq!(codes_of(&found), ["WARNING UPSTREAM_UNREACHABLE"]);
        assert_eq!(
            found[0].message,
            "API orders target http://10.0.0.1:80 is unreachable from node n2: connection refused"
        );
        assert_eq!(
            codes_of(&runtime_check_findings(
                true,
                &apis,
                &nodes,
                &nodes[..1],
                &[]
            )),
            ["WARNING PROBE_NO_ANSWER"]
        );
        assert_eq!(
            codes_of(&runtime_check_findings(false, &apis, &[], &[], &[])),
            ["WARNING APIS_UNREACHABLE_AFTER_MOVE"]
        );
        assert_eq!(
            codes_of(&runtime_check_findings(false, &[], &[], &[], &[])),
            ["INFO NO_DEPLOYED_APIS"]
        );
    }

    fn env(n: u128, name: &str, rest: &str) -> GatewayEnvironment {
        GatewayEnvironment {
            id: EnvironmentId(uuid::Uuid::from_u128(n)),
            name: name.into(),
            paths: EnvironmentPaths {
                rest: rest.into(),
                soap: format!("e{n}/soap"),
                soap12: format!("e{n}/soap12"),
                odata: format!("e{n}/odata"),
            },
        }
    }

    fn check_nested(ours: &str, theirs: &str, expected: &[&str]) {
        let me = env(1, "Staging", ours);
        let others = [me.clone(), env(2, "Production", theirs)];
        let found = nested_path_warnings(me.id, &me.name, &me.paths, &others);
        let messages: Vec<&str> = found.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(messages, expected, "{ours} vs {theirs}");
        assert!(
            found
                .iter()
                .all(|w| w.code == codes::ENVIRONMENT_PATH_NESTED)
        );
    }

    #[test]
    fn nested_environment_paths() {
        check_nested(
            "ws",
            "ws/rest",
            &[
                "path `ws` of Staging is a prefix of path `ws/rest` of Production: Staging's APIs can receive Production's unmatched URLs",
            ],
        );
        check_nested(
            "ws/rest/x",
            "ws/rest",
            &[
                "path `ws/rest` of Production is a prefix of path `ws/rest/x` of Staging: Production's APIs can receive Staging's unmatched URLs",
            ],
        );
        check_nested("wsx", "ws", &[]);
        check_nested("a/b", "a/c", &[]);
        assert!(is_segment_prefix("ws", "ws/rest"));
        assert!(!is_segment_prefix("ws", "ws"));
        assert!(!is_segment_prefix("ws", "wsrest"));
    }

    #[test]
    fn example_urls_are_encoded_and_sorted() {
        let paths = EnvironmentPaths {
            rest: "ws/caf%C3%A9".into(),
            ..EnvironmentPaths::default()
        };
        let api = |n: u128, name: &str, t: ApiType, custom: Option<&str>| DeployedApi {
            api_id: ApiId(uuid::Uuid::from_u128(n)),
            api_name: name.into(),
            api_type: t,
            base_path: name.into(),
            custom_path: custom.map(Into::into),
            environment_id: EnvironmentId(uuid::Uuid::from_u128(9)),
        };
        let deployments = [
            api(1, "orders", ApiType::Rest, None),
            api(2, "billing", ApiType::Soap, None),
            api(3, "custom", ApiType::Rest, Some("x/y")),
        ];
        let urls: Vec<String> = example_urls(Some("https://gw.example.com/"), &paths, &deployments)
            .into_iter()
            .map(|u| format!("{} {}", u.api_name, u.url))
            .collect();
        assert_eq!(
            urls,
            [
                "billing https://gw.example.com/ws/soap/billing",
                "custom https://gw.example.com/x/y",
                "orders https://gw.example.com/ws/caf%C3%A9/orders",
            ]
        );
        assert_eq!(
            example_urls(None, &paths, &deployments[..1])[0].url,
            "/ws/caf%C3%A9/orders"
        );
    }
}
