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
use thiserror::Error;

use crate::id::{ApiId, EnvironmentId};
use crate::paths::path_field;

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

/// The URL at which a deployment is reached, as shown on the Environment Configuration page:
/// `gateway URL / prefix`, e.g. `https://gw.example.com/ws/rest/orders/v1`.
pub fn example_url(gateway_url: &str, prefix: &str) -> String {
    format!("{}/{}", gateway_url.trim_end_matches('/'), prefix)
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
    /// The input field that decides the proposed side's prefix: `custom_path` when it has one,
    /// else, for a change of environment paths, the path of its API type (`rest_path`, …), and
    /// for a deployment, `base_path`.
    pub field: &'static str,
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

/// A refused change: it would create the listed conflicts (`API_PATH_CONFLICT`).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{}", self.message())]
pub struct ApiPathConflictError {
    /// Never empty.
    pub conflicts: Vec<Conflict>,
}

impl ApiPathConflictError {
    pub fn code(&self) -> &'static str {
        API_PATH_CONFLICT
    }

    /// The field of the first conflict.
    pub fn field(&self) -> &'static str {
        self.conflicts.first().map_or("paths", |c| c.field)
    }

    /// All conflicts, one per line.
    pub fn message(&self) -> String {
        let lines: Vec<String> = self.conflicts.iter().map(Conflict::message).collect();
        lines.join("\n")
    }
}

/// [`find_conflicts`] as a check: `Err` naming every conflict when there is one.
pub fn check_change(
    environments: &[GatewayEnvironment],
    deployments: &[DeployedApi],
    change: ProposedChange<'_>,
) -> Result<(), ApiPathConflictError> {
    let conflicts = find_conflicts(environments, deployments, change);
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(ApiPathConflictError { conflicts })
    }
}

struct Route {
    prefix: String,
    owner: RouteOwner,
    /// Whether the proposed change touches this deployment.
    touched: bool,
    /// See [`Conflict::field`].
    field: &'static str,
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
                field: match (change, &d.custom_path) {
                    (_, Some(_)) => "custom_path",
                    (ProposedChange::EnvironmentPaths { .. }, None) => path_field(d.api_type),
                    (ProposedChange::Deployment(_), None) => "base_path",
                },
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
                field: if d.custom_path.is_some() {
                    "custom_path"
                } else {
                    "base_path"
                },
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
                field: r.field,
                proposed: r.owner.clone(),
                existing: other.owner.clone(),
            });
        }
    }
    conflicts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gateway described by names, so the tables read like the SPEC's examples.
    struct Fixture {
        envs: Vec<GatewayEnvironment>,
        deployments: Vec<DeployedApi>,
        apis: HashMap<String, ApiId>,
    }

    fn env_paths(rest: &str) -> EnvironmentPaths {
        EnvironmentPaths {
            rest: rest.into(),
            soap: format!("{rest}-soap"),
            soap12: format!("{rest}-soap12"),
            odata: format!("{rest}-odata"),
        }
    }

    impl Fixture {
        /// `envs`: (name, REST path); other types get derived distinct paths.
        fn new(envs: &[(&str, &str)]) -> Self {
            let envs = envs
                .iter()
                .map(|(name, rest)| GatewayEnvironment {
                    id: EnvironmentId::new_v7(),
                    name: (*name).into(),
                    paths: env_paths(rest),
                })
                .collect();
            Fixture {
                envs,
                deployments: Vec::new(),
                apis: HashMap::new(),
            }
        }

        fn env_id(&self, name: &str) -> EnvironmentId {
            self.envs.iter().find(|e| e.name == name).unwrap().id
        }

        fn api(&mut self, api: &str, env: &str, base: &str, custom: Option<&str>) -> DeployedApi {
            let api_id = *self.apis.entry(api.into()).or_insert_with(ApiId::new_v7);
            DeployedApi {
                api_id,
                api_name: api.into(),
                api_type: ApiType::Rest,
                base_path: base.into(),
                custom_path: custom.map(Into::into),
                environment_id: self.env_id(env),
            }
        }

        fn deploy(&mut self, api: &str, env: &str, base: &str) -> &mut Self {
            let d = self.api(api, env, base, None);
            self.deployments.push(d);
            self
        }
    }

    fn render(conflicts: &[Conflict]) -> Vec<String> {
        conflicts
            .iter()
            .map(|c| {
                format!(
                    "{}@{} vs {}@{} /{}",
                    c.proposed.api_name,
                    c.proposed.environment_name,
                    c.existing.api_name,
                    c.existing.environment_name,
                    c.prefix
                )
            })
            .collect()
    }

    /// Deploys `api` (REST, base path `base`, optional custom path) into `env` of a gateway with
    /// environments A = `ws/rest` and B = `ws` holding existing APIs, and checks the conflicts.
    #[track_caller]
    fn check_deploy(env: &str, base: &str, custom: Option<&str>, expected: &[&str]) {
        let mut f = Fixture::new(&[("A", "ws/rest"), ("B", "ws")]);
        f.deploy("Orders", "A", "orders/v1")
            .deploy("Billing", "B", "billing")
            .deploy("Legacy", "B", "rest/legacy");
        let new = f.api("New", env, base, custom);
        let actual = find_conflicts(&f.envs, &f.deployments, ProposedChange::Deployment(&new));
        assert_eq!(
            render(&actual),
            expected,
            "deploy {base:?} {custom:?} to {env}"
        );
    }

    #[test]
    fn deployment_conflicts() {
        // The SPEC's example: `ws/rest` + `x` and `ws` + `rest/x` resolve to the same prefix.
        check_deploy(
            "B",
            "rest/orders/v1",
            None,
            &["New@B vs Orders@A /ws/rest/orders/v1"],
        );
        check_deploy("A", "legacy", None, &["New@A vs Legacy@B /ws/rest/legacy"]);
        // Same environment, same base path.
        check_deploy("B", "billing", None, &["New@B vs Billing@B /ws/billing"]);
        // A strict segment prefix, in either direction, is not a conflict (longest-prefix routing).
        check_deploy("A", "orders", None, &[]);
        check_deploy("A", "orders/v1/items", None, &[]);
        check_deploy("B", "rest", None, &[]);
        // A string prefix that is not a segment prefix is unrelated.
        check_deploy("A", "orders/v", None, &[]);
        check_deploy("A", "orders/v10", None, &[]);
        // Paths are case-sensitive.
        check_deploy("A", "Orders/v1", None, &[]);
        // A custom URL resolves a conflict ...
        check_deploy("B", "rest/orders/v1", Some("custom/orders"), &[]);
        // ... unless the custom URL itself collides.
        check_deploy(
            "B",
            "x",
            Some("ws/rest/orders/v1"),
            &["New@B vs Orders@A /ws/rest/orders/v1"],
        );
        check_deploy(
            "A",
            "x",
            Some("ws/billing"),
            &["New@A vs Billing@B /ws/billing"],
        );
    }

    #[test]
    fn redeploying_replaces_the_old_deployment() {
        let mut f = Fixture::new(&[("A", "ws/rest")]);
        f.deploy("Orders", "A", "orders")
            .deploy("Billing", "A", "billing");
        // Changing Orders' own deployment (a custom path equal to its old prefix) is no conflict
        // with itself.
        let changed = f.api("Orders", "A", "orders", Some("ws/rest/orders"));
        assert!(
            find_conflicts(
                &f.envs,
                &f.deployments,
                ProposedChange::Deployment(&changed)
            )
            .is_empty()
        );
        let clash = f.api("Orders", "A", "orders", Some("ws/rest/billing"));
        assert_eq!(
            render(&find_conflicts(
                &f.envs,
                &f.deployments,
                ProposedChange::Deployment(&clash)
            )),
            ["Orders@A vs Billing@A /ws/rest/billing"]
        );
    }

    /// Gives environment `env` the REST path `rest` on a gateway with A = `ws/rest`,
    /// B = `api`, and checks the conflicts.
    #[track_caller]
    fn check_paths(env: &str, rest: &str, expected: &[&str]) {
        let mut f = Fixture::new(&[("A", "ws/rest"), ("B", "api")]);
        f.deploy("Orders", "A", "mypath")
            .deploy("Items", "A", "items")
            .deploy("Billing", "B", "rest/mypath")
            .deploy("Shop", "B", "shop");
        // A deployment with a custom path does not move when its environment's paths change.
        let pinned = f.api("Pinned", "B", "pinned", Some("ws/rest/items"));
        f.deployments.push(pinned);
        let id = f.env_id(env);
        let paths = env_paths(rest);
        let change = ProposedChange::EnvironmentPaths {
            environment_id: id,
            environment_name: env,
            paths: &paths,
        };
        let actual = find_conflicts(&f.envs, &f.deployments, change);
        assert_eq!(render(&actual), expected, "{env} -> {rest}");
    }

    #[test]
    fn environment_path_change_conflicts() {
        check_paths("B", "api", &[]);
        check_paths("B", "ws", &["Billing@B vs Orders@A /ws/rest/mypath"]);
        check_paths("A", "api/rest", &["Orders@A vs Billing@B /api/rest/mypath"]);
        // Items moves off `ws/rest/items`, so the pinned custom path no longer collides ...
        check_paths("A", "v2", &[]);
        // ... but moving B does not move its custom-path deployment.
        check_paths("B", "other", &[]);
        // Strict prefixes are fine.
        check_paths("B", "ws/rest/mypath", &[]);
    }

    #[test]
    fn existing_conflicts_elsewhere_do_not_block_unrelated_changes() {
        let mut f = Fixture::new(&[("A", "ws/rest"), ("B", "ws"), ("C", "c")]);
        f.deploy("X", "A", "x")
            .deploy("Y", "B", "rest/x")
            .deploy("Z", "C", "z");
        let paths = env_paths("c2");
        let change = ProposedChange::EnvironmentPaths {
            environment_id: f.env_id("C"),
            environment_name: "C",
            paths: &paths,
        };
        assert!(find_conflicts(&f.envs, &f.deployments, change).is_empty());
        assert_eq!(
            render(&all_conflicts(&f.envs, &f.deployments)),
            ["X@A vs Y@B /ws/rest/x"]
        );
    }

    #[test]
    fn migrating_an_environment_onto_the_gateway() {
        let mut f = Fixture::new(&[("A", "ws/rest"), ("M", "m")]);
        f.deploy("Orders", "A", "orders")
            .deploy("Moved", "M", "orders");
        // The migrating environment is not attached yet: remove it from the gateway's list.
        let m = f.envs.pop().unwrap();
        let paths = env_paths("ws/rest");
        let change = ProposedChange::EnvironmentPaths {
            environment_id: m.id,
            environment_name: "M",
            paths: &paths,
        };
        assert_eq!(
            render(&find_conflicts(&f.envs, &f.deployments, change)),
            ["Moved@M vs Orders@A /ws/rest/orders"]
        );
        // Deployments of environments not on the gateway are ignored.
        assert!(all_conflicts(&f.envs, &f.deployments).is_empty());
    }

    #[test]
    fn groups_of_more_than_two_report_each_pair_once() {
        let mut f = Fixture::new(&[("A", "a"), ("B", "a/b"), ("C", "a/b/c")]);
        f.deploy("P", "A", "b/c/x")
            .deploy("Q", "B", "c/x")
            .deploy("R", "C", "x");
        assert_eq!(
            render(&all_conflicts(&f.envs, &f.deployments)),
            [
                "P@A vs Q@B /a/b/c/x",
                "P@A vs R@C /a/b/c/x",
                "Q@B vs R@C /a/b/c/x"
            ]
        );
        let paths = env_paths("a/b");
        let change = ProposedChange::EnvironmentPaths {
            environment_id: f.env_id("B"),
            environment_name: "B",
            paths: &paths,
        };
        assert_eq!(
            render(&find_conflicts(&f.envs, &f.deployments, change)),
            ["Q@B vs P@A /a/b/c/x", "Q@B vs R@C /a/b/c/x"]
        );
    }

    #[test]
    fn conflicts_name_the_field_that_decides_the_prefix() {
        let mut f = Fixture::new(&[("A", "ws/rest"), ("B", "ws")]);
        f.deploy("Orders", "A", "x");
        let fields = |f: &Fixture, change| -> Vec<&'static str> {
            find_conflicts(&f.envs, &f.deployments, change)
                .iter()
                .map(|c| c.field)
                .collect()
        };
        let by_base = f.api("New", "B", "rest/x", None);
        assert_eq!(
            fields(&f, ProposedChange::Deployment(&by_base)),
            ["base_path"]
        );
        let by_custom = f.api("New", "B", "y", Some("ws/rest/x"));
        assert_eq!(
            fields(&f, ProposedChange::Deployment(&by_custom)),
            ["custom_path"]
        );
        let mut soap = f.api("Soapy", "B", "x", None);
        soap.api_type = ApiType::Soap;
        f.deployments.push(soap);
        let paths = EnvironmentPaths {
            soap: "ws/rest".into(),
            ..env_paths("b")
        };
        let change = ProposedChange::EnvironmentPaths {
            environment_id: f.env_id("B"),
            environment_name: "B",
            paths: &paths,
        };
        assert_eq!(fields(&f, change), ["soap_path"]);
        let err = check_change(&f.envs, &f.deployments, change).unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            ("API_PATH_CONFLICT", "soap_path")
        );
        let unrelated = f.api("Z", "A", "z", None);
        assert!(
            check_change(
                &f.envs,
                &f.deployments,
                ProposedChange::Deployment(&unrelated)
            )
            .is_ok()
        );
    }

    #[test]
    fn example_urls() {
        let paths = EnvironmentPaths::default();
        let prefix = route_prefix(&paths, ApiType::Soap12, "orders/v1", None);
        assert_eq!(
            example_url("https://gw.example.com", &prefix),
            "https://gw.example.com/ws/soap12/orders/v1"
        );
        assert_eq!(
            example_url("http://0.0.0.0:8077/", "shop"),
            "http://0.0.0.0:8077/shop"
        );
        assert_eq!(
            route_prefix(&paths, ApiType::Rest, "x", Some("custom/x")),
            "custom/x"
        );
    }

    #[test]
    fn message_names_both_sides() {
        let mut f = Fixture::new(&[("Prod", "ws/rest"), ("Test", "ws")]);
        f.deploy("Orders", "Prod", "mypath");
        let new = f.api("Billing", "Test", "rest/mypath", None);
        let c = find_conflicts(&f.envs, &f.deployments, ProposedChange::Deployment(&new));
        expect_test::expect![[r#"
            API 'Billing' in environment 'Test' and API 'Orders' in environment 'Prod' both resolve to /ws/rest/mypath"#]]
        .assert_eq(&c[0].message());
    }

    #[test]
    fn thousands_of_deployments() {
        let envs: Vec<(String, String)> = (0..50)
            .map(|i| (format!("E{i}"), format!("env{i}/rest")))
            .collect();
        let refs: Vec<(&str, &str)> = envs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let mut f = Fixture::new(&refs);
        for i in 0..20_000 {
            f.deploy(
                &format!("Api{i}"),
                &format!("E{}", i % 50),
                &format!("api{i}"),
            );
        }
        assert!(all_conflicts(&f.envs, &f.deployments).is_empty());
        // Move E1 onto E0's path: E1's 400 APIs collide with nothing (distinct base paths) ...
        let paths = env_paths("env0/rest");
        let change = ProposedChange::EnvironmentPaths {
            environment_id: f.env_id("E1"),
            environment_name: "E1",
            paths: &paths,
        };
        assert!(find_conflicts(&f.envs, &f.deployments, change).is_empty());
        // ... and one API whose base path equals another's in the target environment does.
        f.deploy("Dup", "E1", "api0");
        assert_eq!(
            render(&find_conflicts(&f.envs, &f.deployments, change)),
            ["Dup@E1 vs Api0@E0 /env0/rest/api0"]
        );
    }
}
