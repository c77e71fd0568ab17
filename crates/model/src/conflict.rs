//! API path-conflict detection across the environments of one gateway (SPEC §6).
//!
//! Every deployment on a gateway resolves to a URL prefix: `environment path for the API's type /
//! API base path`, or the deployment's custom path. Paths are stored in the normal form of
//! [`crate::paths`], so two prefixes are equal segment by segment exactly when their strings are
//! equal: env `ws/rest` + base `mypath` and env `ws` + base `rest/mypath` both give
//! `ws/rest/mypath` and conflict.
//!
//! **A strict segment prefix is not a conflict.** `ws/rest/orders` and `ws/rest/orders/v2` are both
//! reachable because the gateway routes by longest segment prefix: `…/orders/v2/x` goes to the
//! second, `…/orders/v1/x` to the first. SPEC §6 forbids only resolving "to the same URL prefix".
//! A segment prefix is not a string prefix either: `ws/rest/order` and `ws/rest/orders` are
//! unrelated.
//!
//! Detection groups prefixes in a hash map, so checking a change costs O(n) for n deployments on
//! the gateway, not O(n²).

use std::collections::HashMap;

use crate::entity::{Api, ApiType, Deployment, EnvironmentPaths};
use crate::id::{ApiId, EnvironmentId};

/// The stable error code of a refused change that would create a conflict.
pub const API_PATH_CONFLICT: &str = "API_PATH_CONFLICT";

/// An environment attached to the gateway, with its (normalised) paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayEnvironment {
    pub id: EnvironmentId,
    pub name: String,
    pub paths: EnvironmentPaths,
}

/// One API deployed to one environment, with what decides its URL prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployedApi {
    pub api_id: ApiId,
    pub api_name: String,
    pub api_type: ApiType,
    /// Normalised base path of the API.
    pub base_path: String,
    /// Normalised custom path of the deployment; replaces `env path / base path` when set.
    pub custom_path: Option<String>,
    pub environment_id: EnvironmentId,
}

impl DeployedApi {
    /// The routing facts of `deployment` of `api`.
    pub fn new(api: &Api, deployment: &Deployment) -> Self {
        debug_assert_eq!(api.id, deployment.api_id);
        Self {
            api_id: api.id,
            api_name: api.name.clone(),
            api_type: api.api_type,
            base_path: api.base_path.clone(),
            custom_path: deployment.custom_path.clone(),
            environment_id: deployment.environment_id,
        }
    }
}

/// The URL prefix (without leading `/`) under which a deployment is served.
pub fn route_prefix(
    paths: &EnvironmentPaths,
    api_type: ApiType,
    base_path: &str,
    custom_path: Option<&str>,
) -> String {
    match custom_path {
        Some(custom) => custom.to_owned(),
        None => format!("{}/{}", paths.for_type(api_type), base_path),
    }
}

/// A proposed change to a gateway's routing, checked before it is saved.
#[derive(Clone, Copy, Debug)]
pub enum ProposedChange<'a> {
    /// New paths for one environment. If the environment is not yet among the gateway's
    /// environments (a migration onto the gateway), it is added; its deployments must then be
    /// included in the deployments passed to [`find_conflicts`].
    EnvironmentPaths {
        environment_id: EnvironmentId,
        environment_name: &'a str,
        paths: &'a EnvironmentPaths,
    },
    /// A new deployment, or a changed one (same API and environment, e.g. a new custom path).
    Deployment(&'a DeployedApi),
}

/// One side of a conflict.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteOwner {
    pub api_id: ApiId,
    pub api_name: String,
    pub environment_id: EnvironmentId,
    pub environment_name: String,
}

/// Two deployments that resolve to the same URL prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Conflict {
    /// The shared prefix, normalised, without leading `/`.
    pub prefix: String,
    /// The deployment touched by the proposed change (or, from [`all_conflicts`], the first of
    /// the pair in input order).
    pub proposed: RouteOwner,
    /// The deployment it collides with.
    pub existing: RouteOwner,
}

impl Conflict {
    /// A one-line description naming both APIs and environments.
    pub fn message(&self) -> String {
        format!(
            "API '{}' in environment '{}' and API '{}' in environment '{}' both resolve to /{}",
            self.proposed.api_name,
            self.proposed.environment_name,
            self.existing.api_name,
            self.existing.environment_name,
            self.prefix
        )
    }
}

struct Route {
    prefix: String,
    owner: RouteOwner,
    /// Whether the proposed change touches this deployment.
    touched: bool,
}

/// The conflicts a proposed change would create on a gateway, given its current environments and
/// deployments. Only conflicts involving a deployment touched by the change are reported, so a
/// conflict that already exists elsewhere on the gateway does not block an unrelated change.
/// Deployments whose environment is not among `environments` (nor added by the change) are not
/// served by the gateway and are ignored.
pub fn find_conflicts(
    environments: &[GatewayEnvironment],
    deployments: &[DeployedApi],
    change: ProposedChange<'_>,
) -> Vec<Conflict> {
    let mut envs: HashMap<EnvironmentId, (&str, &EnvironmentPaths)> = environments
        .iter()
        .map(|e| (e.id, (e.name.as_str(), &e.paths)))
        .collect();
    let mut new_deployment = None;
    match change {
        ProposedChange::EnvironmentPaths {
            environment_id,
            environment_name,
            paths,
        } => {
            envs.insert(environment_id, (environment_name, paths));
        }
        ProposedChange::Deployment(d) => new_deployment = Some(d),
    }
    let is_touched = |d: &DeployedApi| match change {
        ProposedChange::EnvironmentPaths { environment_id, .. } => {
            d.environment_id == environment_id && d.custom_path.is_none()
        }
        ProposedChange::Deployment(new) => {
            d.api_id == new.api_id && d.environment_id == new.environment_id
        }
    };
    let existing = deployments.iter().filter(|d| match new_deployment {
        // The changed deployment replaces its old version.
        Some(new) => !(d.api_id == new.api_id && d.environment_id == new.environment_id),
        None => true,
    });
    let routes: Vec<Route> = existing
        .chain(new_deployment)
        .filter_map(|d| {
            let (env_name, paths) = envs.get(&d.environment_id)?;
            Some(Route {
                prefix: route_prefix(paths, d.api_type, &d.base_path, d.custom_path.as_deref()),
                owner: RouteOwner {
                    api_id: d.api_id,
                    api_name: d.api_name.clone(),
                    environment_id: d.environment_id,
                    environment_name: (*env_name).to_owned(),
                },
                touched: is_touched(d),
            })
        })
        .collect();
    conflicts_in(&routes, true)
}

/// Every conflict among the current deployments of a gateway, e.g. to raise a `PATH_CONFLICT`
/// issue after a migration or a data import. Each conflicting pair is reported once.
pub fn all_conflicts(
    environments: &[GatewayEnvironment],
    deployments: &[DeployedApi],
) -> Vec<Conflict> {
    let envs: HashMap<EnvironmentId, &GatewayEnvironment> =
        environments.iter().map(|e| (e.id, e)).collect();
    let routes: Vec<Route> = deployments
        .iter()
        .filter_map(|d| {
            let env = envs.get(&d.environment_id)?;
            Some(Route {
                prefix: route_prefix(
                    &env.paths,
                    d.api_type,
                    &d.base_path,
                    d.custom_path.as_deref(),
                ),
                owner: RouteOwner {
                    api_id: d.api_id,
                    api_name: d.api_name.clone(),
                    environment_id: d.environment_id,
                    environment_name: env.name.clone(),
                },
                touched: true,
            })
        })
        .collect();
    conflicts_in(&routes, false)
}

/// Groups routes by prefix and reports pairs within a group. With `touched_only`, a pair is
/// reported only when its first member is touched, and two touched members are paired once.
fn conflicts_in(routes: &[Route], touched_only: bool) -> Vec<Conflict> {
    let mut by_prefix: HashMap<&str, Vec<usize>> = HashMap::with_capacity(routes.len());
    for (i, r) in routes.iter().enumerate() {
        by_prefix.entry(r.prefix.as_str()).or_default().push(i);
    }
    let mut conflicts = Vec::new();
    // Iterate in input order so the output is deterministic.
    for (i, r) in routes.iter().enumerate() {
        if touched_only && !r.touched {
            continue;
        }
        let group = &by_prefix[r.prefix.as_str()];
        for &j in group {
            let other = &routes[j];
            // Pair each unordered couple once: skip earlier touched members (already reported
            // from their side) and the route itself.
            let already_reported = j < i && (other.touched || !touched_only);
            if j == i || already_reported {
                continue;
            }
            conflicts.push(Conflict {
                prefix: r.prefix.clone(),
                proposed: r.owner.clone(),
                existing: other.owner.clone(),
            });
        }
    }
    conflicts
}
