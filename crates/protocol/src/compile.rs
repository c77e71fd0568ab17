//! The desired configuration of one gateway, compiled from domain entities into a snapshot.
//!
//! A pure function: the platform loads a gateway's state from the store and calls
//! [`compile_snapshot`] whenever something that affects it changes. The output is canonical
//! (everything sorted by id), so the same state always yields the same content hash.

use std::collections::BTreeMap;

use model::{Api, Deployment, Environment, Gateway};

use crate::snapshot::{self, Snapshot, SnapshotConfig, millis};

/// Everything about one gateway that ends up in its snapshot.
#[derive(Clone, Copy, Debug)]
pub struct GatewayState<'a> {
    pub gateway: &'a Gateway,
    /// Environments attached to the gateway.
    pub environments: &'a [Environment],
    /// APIs deployed to at least one of those environments (others are ignored).
    pub apis: &'a [Api],
    /// Deployments of those APIs (deployments to other environments are ignored).
    pub deployments: &'a [Deployment],
}

/// Compiles a gateway's state into the snapshot of `generation`.
pub fn compile_snapshot(state: GatewayState<'_>, generation: u64) -> Snapshot {
    Snapshot::new(generation, compile_config(state))
}

/// The hashed part of the snapshot; see [`compile_snapshot`].
pub fn compile_config(state: GatewayState<'_>) -> SnapshotConfig {
    let gateway = state.gateway;

    let mut environments: Vec<snapshot::Environment> = state
        .environments
        .iter()
        .filter(|e| e.gateway_id == Some(gateway.id))
        .map(|e| snapshot::Environment {
            id: e.id.to_string(),
            name: e.name.clone(),
            paths: snapshot::EnvironmentPaths {
                rest: e.paths.rest.clone(),
                soap: e.paths.soap.clone(),
                soap12: e.paths.soap12.clone(),
                odata: e.paths.odata.clone(),
            },
        })
        .collect();
    environments.sort_by(|a, b| a.id.cmp(&b.id));

    // Deployments per API, restricted to this gateway's environments.
    let mut deployments_by_api: BTreeMap<model::ApiId, Vec<snapshot::Deployment>> = BTreeMap::new();
    for deployment in state.deployments {
        let attached = state
            .environments
            .iter()
            .any(|e| e.id == deployment.environment_id && e.gateway_id == Some(gateway.id));
        if attached {
            deployments_by_api
                .entry(deployment.api_id)
                .or_default()
                .push(snapshot::Deployment {
                    environment_id: deployment.environment_id.to_string(),
                    custom_path: deployment.custom_path.clone(),
                });
        }
    }

    let mut apis: Vec<snapshot::Api> = state
        .apis
        .iter()
        .filter_map(|api| {
            let mut deployments = deployments_by_api.remove(&api.id)?;
            deployments.sort_by(|a, b| a.environment_id.cmp(&b.environment_id));
            Some(snapshot::Api {
                id: api.id.to_string(),
                name: api.name.clone(),
                version: api.version.clone(),
                api_type: api_type(api.api_type),
                base_path: api.base_path.clone(),
                targets: api
                    .upstream_targets
                    .iter()
                    .map(|t| snapshot::UpstreamTarget { url: t.url.clone() })
                    .collect(),
                load_balancing: snapshot::LoadBalancing::default(),
                health_check_url: api.health_check_url.clone(),
                execution: api
                    .execution
                    .as_ref()
                    .map(snapshot::ExecutionSettings::from),
                max_body_bytes: None,
                deployments,
            })
        })
        .collect();
    apis.sort_by(|a, b| a.id.cmp(&b.id));

    let settings = &gateway.settings;
    SnapshotConfig {
        gateway: snapshot::GatewaySettings {
            gateway_id: gateway.id.to_string(),
            name: gateway.name.clone(),
            hosts: gateway
                .public_url
                .as_deref()
                .and_then(url_host)
                .map(|h| vec![h])
                .unwrap_or_default(),
            listeners: snapshot::Listeners {
                http: bind_host_port(&gateway.bind_address, "http"),
                https: bind_host_port(&gateway.bind_address, "https"),
            },
            execution: snapshot::ExecutionSettings::from(&settings.execution),
            shutdown_delay_ms: millis(settings.shutdown_delay),
            ..snapshot::GatewaySettings::default()
        },
        environments,
        apis,
        certificates: Vec::new(),
        redirects: Vec::new(),
    }
}

fn api_type(api_type: model::ApiType) -> snapshot::ApiType {
    match api_type {
        model::ApiType::Rest => snapshot::ApiType::Rest,
        model::ApiType::Soap => snapshot::ApiType::Soap,
        model::ApiType::Soap12 => snapshot::ApiType::Soap12,
        model::ApiType::Odata => snapshot::ApiType::Odata,
    }
}

/// The host of a URL as a request names it (`Host` header, URI authority): lowercase, an IPv6
/// literal in brackets (`[::1]`), which is what the gateway compares request hosts with.
fn url_host(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.host_str().filter(|h| !h.is_empty()).map(str::to_owned)
}

/// `host:port` of a bind address with the given scheme, e.g. `http://0.0.0.0:8077` →
/// `0.0.0.0:8077` (`[::]:8077` for IPv6; the scheme's default port when none is given).
fn bind_host_port(bind_address: &str, scheme: &str) -> Option<String> {
    let url = url::Url::parse(bind_address).ok()?;
    if url.scheme() != scheme {
        return None;
    }
    let host = url.host_str().filter(|h| !h.is_empty())?;
    Some(format!("{host}:{}", url.port_or_known_default()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::*;

    fn ts() -> Timestamp {
        Timestamp(1)
    }

    fn gateway() -> Gateway {
        Gateway {
            id: GatewayId(uuid_n(1)),
            account_id: AccountId(uuid_n(2)),
            name: "gw".into(),
            public_url: Some("https://api.example.com:8443/".into()),
            bind_address: DEFAULT_BIND_ADDRESS.into(),
            settings: GatewaySettings::default(),
            created_at: ts(),
            deleted_at: None,
        }
    }

    fn uuid_n(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    fn environment(n: u128, gateway: Option<GatewayId>) -> Environment {
        Environment {
            id: EnvironmentId(uuid_n(n)),
            account_id: AccountId(uuid_n(2)),
            name: format!("env{n}"),
            classification: Classification::Production,
            gateway_id: gateway,
            paths: EnvironmentPaths::default(),
            created_at: ts(),
        }
    }

    fn api(n: u128) -> Api {
        Api {
            id: ApiId(uuid_n(n)),
            account_id: AccountId(uuid_n(2)),
            name: format!("api{n}"),
            version: "1".into(),
            api_type: ApiType::Rest,
            base_path: format!("api{n}"),
            upstream_targets: vec![UpstreamTarget {
                url: "http://127.0.0.1:9000".into(),
            }],
            health_check_url: None,
            execution: None,
            created_at: ts(),
        }
    }

    fn deployment(n: u128, api: u128, env: u128) -> Deployment {
        Deployment {
            id: DeploymentId(uuid_n(n)),
            api_id: ApiId(uuid_n(api)),
            environment_id: EnvironmentId(uuid_n(env)),
            custom_path: None,
            status: DeploymentStatus::SentToGateway,
            created_at: ts(),
        }
    }

    #[test]
    fn only_apis_deployed_to_attached_environments_are_served() {
        let gw = gateway();
        let envs = [environment(10, Some(gw.id)), environment(11, None)];
        let apis = [api(20), api(21), api(22)];
        let deployments = [
            deployment(30, 20, 10),
            deployment(31, 21, 11), // environment not attached
            deployment(32, 20, 11),
        ];
        let config = compile_config(GatewayState {
            gateway: &gw,
            environments: &envs,
            apis: &apis,
            deployments: &deployments,
        });
        assert_eq!(config.environments.len(), 1);
        assert_eq!(config.apis.len(), 1);
        assert_eq!(config.apis[0].name, "api20");
        assert_eq!(config.apis[0].deployments.len(), 1);
        assert_eq!(config.gateway.hosts, vec!["api.example.com".to_owned()]);
        assert_eq!(
            config.gateway.listeners.http.as_deref(),
            Some("0.0.0.0:8077")
        );
        assert_eq!(config.gateway.listeners.https, None);
    }

    #[test]
    fn input_order_does_not_change_the_hash() {
        let gw = gateway();
        let envs = [environment(10, Some(gw.id)), environment(12, Some(gw.id))];
        let apis = [api(20), api(21)];
        let deployments = [
            deployment(30, 20, 10),
            deployment(31, 21, 12),
            deployment(32, 20, 12),
        ];
        let a = compile_snapshot(
            GatewayState {
                gateway: &gw,
                environments: &envs,
                apis: &apis,
                deployments: &deployments,
            },
            5,
        );
        let envs_rev = [envs[1].clone(), envs[0].clone()];
        let apis_rev = [apis[1].clone(), apis[0].clone()];
        let deployments_rev = [
            deployments[2].clone(),
            deployments[1].clone(),
            deployments[0].clone(),
        ];
        let b = compile_snapshot(
            GatewayState {
                gateway: &gw,
                environments: &envs_rev,
                apis: &apis_rev,
                deployments: &deployments_rev,
            },
            5,
        );
        assert_eq!(a, b);
        a.verify_hash().unwrap();
    }

    #[test]
    fn url_hosts() {
        for (url, host) in [
            ("https://a.example.com", Some("a.example.com")),
            ("https://A.Example.com:8443/x", Some("a.example.com")),
            // The brackets stay: the gateway sees `Host: [::1]:8080` and compares `[::1]`.
            ("http://[::1]:8080", Some("[::1]")),
            ("http://[::1]", Some("[::1]")),
            ("nonsense", None),
            ("http://", None),
        ] {
            assert_eq!(url_host(url).as_deref(), host, "{url}");
        }
        for (bind, scheme, listener) in [
            ("http://0.0.0.0:8077", "http", Some("0.0.0.0:8077")),
            ("http://[::]:8077", "http", Some("[::]:8077")),
            ("http://[::1]:80", "http", Some("[::1]:80")),
            ("https://0.0.0.0", "https", Some("0.0.0.0:443")),
            ("https://0.0.0.0:8443", "http", None),
            ("0.0.0.0:8077", "http", None),
        ] {
            assert_eq!(bind_host_port(bind, scheme).as_deref(), listener, "{bind}");
        }
    }
}
