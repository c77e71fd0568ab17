//! `Store::account_deployments`: every deployment of an account in one read, with its
//! environment's gateway and its publication, on SQLite (always) and on PostgreSQL when
//! `SWITCHYARD_TEST_POSTGRES_URL` is set (required under `CI=true`).

mod support;

use std::convert::Infallible;

use model::*;
use store::*;
use support::*;

fn audit(action: &str) -> Audit {
    Audit::new(Actor::System, action, Timestamp(1_000))
}

fn ok<T>(_: &T) -> Result<(), Infallible> {
    Ok(())
}

fn ok2(_: &Environment, _: Option<&GatewayRoutes>) -> Result<(), Infallible> {
    Ok(())
}

async fn api(store: &Store, account: AccountId, name: &str) -> Api {
    store
        .create_api(
            account,
            NewApi {
                name: name.into(),
                version: "v1".into(),
                api_type: ApiType::Rest,
                base_path: name.into(),
                upstream_targets: vec![UpstreamTarget {
                    url: "http://10.0.0.5:8080/base".into(),
                }],
                health_check_url: None,
                execution: None,
            },
            audit("api.create"),
        )
        .await
        .unwrap()
}

async fn environment(
    store: &Store,
    account: AccountId,
    name: &str,
    gateway: Option<GatewayId>,
) -> Environment {
    let env = store
        .create_environment(
            account,
            NewEnvironment {
                name: name.into(),
                classification: Classification::Test,
                paths: EnvironmentPaths::default(),
            },
            audit("environment.create"),
        )
        .await
        .unwrap();
    match gateway {
        None => env,
        Some(g) => store
            .set_environment_gateway(account, env.id, Some(g), audit("environment.attach"), ok2)
            .await
            .unwrap(),
    }
}

async fn deploy(store: &Store, account: AccountId, api: &Api, env: &Environment) -> Deployment {
    store
        .create_deployment(
            account,
            NewDeployment {
                api_id: api.id,
                environment_id: env.id,
                custom_path: None,
                status: if env.gateway_id.is_some() {
                    DeploymentStatus::SentToGateway
                } else {
                    DeploymentStatus::RequiresConfiguration
                },
            },
            audit("deployment.create"),
            ok,
        )
        .await
        .unwrap()
}

/// What `account_deployments` must answer, built from the per-API reads: the deployments
/// of every API (`deployments_by_api`), their publications (`deployment_publications`) and
/// their environments' gateways (`environment`), ordered by API and id.
async fn per_api_reads(store: &Store, account: AccountId) -> Vec<PlacedDeployment> {
    let mut out = Vec::new();
    for a in store.apis(account).await.unwrap() {
        let published = store.deployment_publications(account, a.id).await.unwrap();
        for d in store.deployments_by_api(account, a.id).await.unwrap() {
            let env = store.environment(account, d.environment_id).await.unwrap();
            let published = published
                .iter()
                .find(|(id, _)| *id == d.id)
                .and_then(|(_, p)| *p);
            out.push(PlacedDeployment {
                deployment: d,
                gateway_id: env.gateway_id,
                published,
            });
        }
    }
    out.sort_by_key(|p| (p.deployment.api_id.to_string(), p.deployment.id.to_string()));
    out
}

async fn account_deployments_match_the_per_api_reads(store: &Store) {
    let acme = store
        .create_account("acme", audit("account.create"))
        .await
        .unwrap()
        .id;
    let other = store
        .create_account("other", audit("account.create"))
        .await
        .unwrap()
        .id;
    assert_eq!(store.account_deployments(acme).await.unwrap(), []);

    let gw = store
        .create_gateway(acme, NewGateway::named("gw"), audit("gateway.create"))
        .await
        .unwrap()
        .id;
    let prod = environment(store, acme, "Production", Some(gw)).await;
    let lab = environment(store, acme, "Lab", None).await;
    let orders = api(store, acme, "orders").await;
    let billing = api(store, acme, "billing").await;
    let _unused = api(store, acme, "unused").await;
    let orders_prod = deploy(store, acme, &orders, &prod).await;
    let orders_lab = deploy(store, acme, &orders, &lab).await;
    let billing_prod = deploy(store, acme, &billing, &prod).await;
    // Another account's deployment never shows.
    let their_gw = store
        .create_gateway(other, NewGateway::named("gw"), audit("gateway.create"))
        .await
        .unwrap()
        .id;
    let theirs = environment(store, other, "Production", Some(their_gw)).await;
    let their_api = api(store, other, "orders").await;
    let their_deployment = deploy(store, other, &their_api, &theirs).await;

    // Before any publication: the gateways of the environments, nothing published.
    let all = store.account_deployments(acme).await.unwrap();
    assert_eq!(all, per_api_reads(store, acme).await);
    assert_eq!(all.len(), 3);
    let find = |all: &[PlacedDeployment], id: DeploymentId| {
        all.iter()
            .find(|p| p.deployment.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} missing from {all:?}"))
    };
    for (d, gateway) in [
        (&orders_prod, Some(gw)),
        (&orders_lab, None),
        (&billing_prod, Some(gw)),
    ] {
        let placed = find(&all, d.id);
        assert_eq!(&placed.deployment, d);
        assert_eq!(placed.gateway_id, gateway);
        assert_eq!(placed.published, None);
    }
    let ordered: Vec<(String, String)> = all
        .iter()
        .map(|p| (p.deployment.api_id.to_string(), p.deployment.id.to_string()))
        .collect();
    let mut sorted = ordered.clone();
    sorted.sort();
    assert_eq!(ordered, sorted, "by API, then id");

    // Published: the deployments on the gateway carry its first generation.
    let published = store
        .publish_gateway_config(acme, gw, Timestamp(2_000), |_| "d1".into())
        .await
        .unwrap()
        .input
        .generation;
    let all = store.account_deployments(acme).await.unwrap();
    assert_eq!(all, per_api_reads(store, acme).await);
    assert_eq!(find(&all, orders_prod.id).published, Some((gw, published)));
    assert_eq!(find(&all, billing_prod.id).published, Some((gw, published)));
    assert_eq!(find(&all, orders_lab.id).published, None);

    // Detached: no gateway any more; re-attached to another gateway: that one.
    store
        .set_environment_gateway(acme, prod.id, None, audit("environment.detach"), ok2)
        .await
        .unwrap();
    let all = store.account_deployments(acme).await.unwrap();
    assert_eq!(all, per_api_reads(store, acme).await);
    assert_eq!(find(&all, orders_prod.id).gateway_id, None);
    let gw2 = store
        .create_gateway(acme, NewGateway::named("gw2"), audit("gateway.create"))
        .await
        .unwrap()
        .id;
    store
        .set_environment_gateway(acme, lab.id, Some(gw2), audit("environment.attach"), ok2)
        .await
        .unwrap();
    let all = store.account_deployments(acme).await.unwrap();
    assert_eq!(all, per_api_reads(store, acme).await);
    assert_eq!(find(&all, orders_lab.id).gateway_id, Some(gw2));

    // Undeployed and deleted APIs leave the list.
    store
        .delete_deployment(acme, orders_lab.id, audit("deployment.delete"))
        .await
        .unwrap();
    store
        .delete_api(acme, billing.id, audit("api.delete"))
        .await
        .unwrap();
    let all = store.account_deployments(acme).await.unwrap();
    assert_eq!(
        all.iter().map(|p| p.deployment.id).collect::<Vec<_>>(),
        [orders_prod.id]
    );

    let theirs = store.account_deployments(other).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].deployment, their_deployment);
    assert_eq!(theirs[0].gateway_id, Some(their_gw));
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn account_deployments_match_the_per_api_reads() {
        let db = super::TestDb::sqlite().await;
        super::account_deployments_match_the_per_api_reads(&db.store).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn account_deployments_match_the_per_api_reads() {
        let Some(db) = super::TestDb::postgres().await else {
            eprintln!("SWITCHYARD_TEST_POSTGRES_URL not set; skipped");
            return;
        };
        super::account_deployments_match_the_per_api_reads(&db.store).await;
    }
}
