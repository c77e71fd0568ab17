//! The store conformance suite: every test runs on SQLite (always) and on PostgreSQL when
//! `SWITCHYARD_TEST_POSTGRES_URL` is set, each PostgreSQL test in a fresh schema.

mod support;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use model::status::{GatewayStatus, ReportedState, Severity};
use model::*;
use store::*;
use support::*;

/// A model status from its stored names.
fn st(state: &str, variant: Option<&str>) -> GatewayStatus {
    GatewayStatus::parse(state, variant).unwrap()
}

/// A model reported state from its name.
fn rs(name: &str) -> ReportedState {
    ReportedState::parse(name, false).unwrap()
}

/// Generates one `#[tokio::test]` per backend for each listed `async fn(&Store)`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::sqlite().await;
                    super::$name(&db.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::TestDb::postgres().await else {
                        eprintln!("SWITCHYARD_TEST_POSTGRES_URL not set; skipped");
                        return;
                    };
                    super::$name(&db.store).await;
                }
            )*
        }
    };
}

conformance!(
    accounts_and_users,
    api_tokens,
    install_tokens,
    tenant_isolation,
    gateway_names_are_unique_among_live_gateways,
    soft_delete_detaches_revokes_and_frees_the_name,
    failed_mutations_leave_no_trace,
    every_mutation_writes_one_audit_record,
    gateways_overview,
    gateways_overview_search_and_one_gateway,
    environments_and_checked_path_updates,
    apis_and_deployments,
    nodes_issues_status_and_generations,
    concurrent_generation_bumps_are_distinct,
    closed_store_is_unavailable,
    seeded_overview,
    sessions,
    environment_migrations,
    migration_cutover_and_redirects,
    startup_properties_and_status_job_input,
    concurrent_deletes_and_attachments_stay_consistent,
    notices_reach_every_listener,
    link_publish_and_status_inputs,
    joins_never_move_a_node,
    publication_records_the_generation_containing_a_deployment,
    batched_node_status_writes,
    audit_records_filtered_by_actor_action_result_and_time,
);

fn t(ms: i64) -> Timestamp {
    Timestamp(ms)
}

fn audit(action: &str) -> Audit {
    Audit::new(Actor::System, action, t(1_000))
}

async fn account(store: &Store, name: &str) -> Account {
    store
        .create_account(name, audit("account.create"))
        .await
        .unwrap()
}

fn new_env(name: &str) -> NewEnvironment {
    NewEnvironment {
        name: name.into(),
        classification: Classification::Test,
        paths: EnvironmentPaths::default(),
    }
}

fn new_api(name: &str, base: &str) -> NewApi {
    NewApi {
        name: name.into(),
        version: "v1".into(),
        api_type: ApiType::Rest,
        base_path: base.into(),
        upstream_targets: vec![UpstreamTarget {
            url: "http://10.0.0.5:8080/base".into(),
        }],
        health_check_url: None,
        execution: None,
    }
}

fn ok<T>(_: &T) -> Result<(), Infallible> {
    Ok(())
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    match r {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, what: ConflictKind) {
    match r {
        Err(StoreError::Conflict { what: got }) => assert_eq!(got, what),
        other => panic!("expected Conflict {what:?}, got {other:?}"),
    }
}

async fn audit_count(store: &Store, account: AccountId) -> usize {
    store
        .audit_records(account, None, 10_000)
        .await
        .unwrap()
        .len()
}

async fn accounts_and_users(store: &Store) {
    let acme = account(store, "Acme").await;
    assert_eq!(store.account(acme.id).await.unwrap(), acme);
    assert_eq!(
        store.account_by_name("acme").await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(store.account_by_name("nope").await.unwrap(), None);
    assert_conflict(
        store.create_account("ACME", audit("account.create")).await,
        ConflictKind::AccountName,
    );
    let other = account(store, "Other").await;
    assert_eq!(
        store.accounts().await.unwrap(),
        vec![acme.clone(), other.clone()]
    );

    let alice = store
        .create_user(
            NewUser {
                account_id: Some(acme.id),
                name: "Alice".into(),
                email: Some("alice@example.com".into()),
                role: Role::Owner,
                platform_admin: false,
                password_hash: Some("$argon2id$hash".into()),
            },
            audit("user.create"),
        )
        .await
        .unwrap();
    assert_eq!(store.user(acme.id, alice.id).await.unwrap(), alice);
    assert_not_found(store.user(other.id, alice.id).await);
    assert_eq!(store.users(acme.id).await.unwrap(), vec![alice.clone()]);
    assert!(store.users(other.id).await.unwrap().is_empty());

    let login = store
        .user_login(Some("ACME"), "ALICE@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login.user, alice);
    // A login names its account: Alice is not a user of Other, nor a platform administrator.
    assert!(
        store
            .user_login(Some("Other"), "alice@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .user_login(None, "alice@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(login.password_hash.as_deref(), Some("$argon2id$hash"));
    store
        .set_password_hash(alice.id, Some("$argon2id$new"), audit("user.set_password"))
        .await
        .unwrap();
    let login = store
        .user_login(Some("acme"), "alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login.password_hash.as_deref(), Some("$argon2id$new"));
    assert_not_found(
        store
            .set_password_hash(UserId::new_v7(), None, audit("user.set_password"))
            .await,
    );

    // An e-mail is unique within an account (case-insensitively), not across accounts.
    let alice_in = |account: Option<AccountId>| NewUser {
        account_id: account,
        name: "Alice again".into(),
        email: Some("Alice@Example.com".into()),
        role: Role::Viewer,
        platform_admin: account.is_none(),
        password_hash: None,
    };
    assert_conflict(
        store
            .create_user(alice_in(Some(acme.id)), audit("user.create"))
            .await,
        ConflictKind::UserEmail,
    );
    let other_alice = store
        .create_user(alice_in(Some(other.id)), audit("user.create"))
        .await
        .unwrap();
    let login = store
        .user_login(Some("other"), "alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login.user, other_alice);
    // Platform administrators are one group: unique among them.
    store
        .create_user(alice_in(None), audit("user.create"))
        .await
        .unwrap();
    assert_conflict(
        store
            .create_user(alice_in(None), audit("user.create"))
            .await,
        ConflictKind::UserEmail,
    );
    assert!(
        store
            .user_login(None, "ALICE@example.com")
            .await
            .unwrap()
            .is_some_and(|l| l.user.platform_admin)
    );

    let admin = store
        .create_user(
            NewUser {
                account_id: None,
                name: "root".into(),
                email: None,
                role: Role::Owner,
                platform_admin: true,
                password_hash: None,
            },
            audit("user.create"),
        )
        .await
        .unwrap();
    assert!(admin.platform_admin);
    assert_not_found(store.user(acme.id, admin.id).await);

    let viewer = store
        .set_user_role(acme.id, alice.id, Role::Viewer, audit("user.set_role"))
        .await
        .unwrap();
    assert_eq!(viewer.role, Role::Viewer);
    assert_not_found(
        store
            .set_user_role(other.id, alice.id, Role::Admin, audit("user.set_role"))
            .await,
    );
}

async fn api_tokens(store: &Store) {
    let acme = account(store, "Acme").await;
    let mk_user = |name: &str| NewUser {
        account_id: Some(acme.id),
        name: name.into(),
        email: None,
        role: Role::Admin,
        platform_admin: false,
        password_hash: None,
    };
    let bob = store
        .create_user(mk_user("bob"), audit("user.create"))
        .await
        .unwrap();
    let eve = store
        .create_user(mk_user("eve"), audit("user.create"))
        .await
        .unwrap();
    let token = store
        .create_api_token(
            NewApiToken {
                user_id: bob.id,
                name: "ci".into(),
                prefix: "sy_pat_ab12".into(),
                hash: "hash-1".into(),
                expires_at: Some(t(10_000)),
            },
            audit("token.create"),
        )
        .await
        .unwrap();
    let found = store
        .find_api_token("hash-1", t(5_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.token, token);
    assert_eq!(found.user, bob);
    assert!(
        store
            .find_api_token("hash-1", t(10_000))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        store
            .find_api_token("hash-2", t(5_000))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.api_tokens(bob.id).await.unwrap(), vec![token.clone()]);
    assert!(store.api_tokens(eve.id).await.unwrap().is_empty());

    assert_conflict(
        store
            .create_api_token(
                NewApiToken {
                    user_id: eve.id,
                    name: "dup".into(),
                    prefix: "sy_pat_ab12".into(),
                    hash: "hash-1".into(),
                    expires_at: None,
                },
                audit("token.create"),
            )
            .await,
        ConflictKind::TokenHash,
    );
    assert_not_found(
        store
            .create_api_token(
                NewApiToken {
                    user_id: UserId::new_v7(),
                    name: "ghost".into(),
                    prefix: "p".into(),
                    hash: "hash-3".into(),
                    expires_at: None,
                },
                audit("token.create"),
            )
            .await,
    );

    assert_not_found(
        store
            .revoke_api_token(eve.id, token.id, audit("token.revoke"))
            .await,
    );
    let revoked = store
        .revoke_api_token(bob.id, token.id, audit("token.revoke"))
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(t(1_000)));
    assert!(
        store
            .find_api_token("hash-1", t(5_000))
            .await
            .unwrap()
            .is_none()
    );
    let mut later = audit("token.revoke");
    later.at = t(2_000);
    let again = store
        .revoke_api_token(bob.id, token.id, later)
        .await
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(t(1_000)),
        "first revocation time is kept"
    );
}

async fn install_tokens(store: &Store) {
    let acme = account(store, "Acme").await;
    let other = account(store, "Other").await;
    let token = store
        .create_install_token(
            acme.id,
            NewInstallToken {
                hash: "install-1".into(),
                expires_at: t(1_000 + 30 * 60 * 1000),
                created_by: None,
            },
            audit("install_token.create"),
        )
        .await
        .unwrap();
    let found = store
        .find_install_token("install-1", t(2_000))
        .await
        .unwrap();
    assert_eq!(found, Some(token.clone()));
    assert!(
        store
            .find_install_token("install-1", t(1_000 + 30 * 60 * 1000))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_install_token("other", t(2_000))
            .await
            .unwrap()
            .is_none()
    );
    assert_not_found(
        store
            .revoke_install_token(other.id, token.id, audit("install_token.revoke"))
            .await,
    );
    store
        .revoke_install_token(acme.id, token.id, audit("install_token.revoke"))
        .await
        .unwrap();
    assert!(
        store
            .find_install_token("install-1", t(2_000))
            .await
            .unwrap()
            .is_none()
    );
}

/// A gateway with one attached environment, one API deployed there, and a node.
struct World {
    account: Account,
    gateway: Gateway,
    env: Environment,
    api: Api,
    deployment: Deployment,
    node: Node,
}

async fn world(store: &Store, name: &str) -> World {
    let account = account(store, name).await;
    let a = account.id;
    let gateway = store
        .create_gateway(a, NewGateway::named("gw"), audit("gateway.create"))
        .await
        .unwrap();
    let env = store
        .create_environment(a, new_env("Production"), audit("environment.create"))
        .await
        .unwrap();
    let env = store
        .set_environment_gateway(
            a,
            env.id,
            Some(gateway.id),
            audit("environment.attach"),
            ok2,
        )
        .await
        .unwrap();
    let api = store
        .create_api(a, new_api("orders", "orders"), audit("api.create"))
        .await
        .unwrap();
    let deployment = store
        .create_deployment(
            a,
            NewDeployment {
                api_id: api.id,
                environment_id: env.id,
                custom_path: None,
                status: DeploymentStatus::SentToGateway,
            },
            audit("deployment.create"),
            ok,
        )
        .await
        .unwrap();
    let node = Node {
        id: NodeId::new_v7(),
        gateway_id: gateway.id,
        host_name: "host-a".into(),
        address: Some("10.0.0.1".into()),
        version: "0.1.0".into(),
        joined_at: t(1_000),
        last_seen: None,
        applied_generation: None,
    };
    let node = store.upsert_node(a, &node).await.unwrap();
    World {
        account,
        gateway,
        env,
        api,
        deployment,
        node,
    }
}

/// A completion that moves the environment with the default paths and no redirect.
fn moved() -> MigrationOutcome {
    MigrationOutcome::Applied {
        paths: EnvironmentPaths::default(),
        redirect: None,
    }
}

fn ok2(_: &Environment, _: Option<&GatewayRoutes>) -> Result<(), Infallible> {
    Ok(())
}

fn ok_api(_: &Api, _: &[GatewayRoutes]) -> Result<(), Infallible> {
    Ok(())
}

fn store_err<T: std::fmt::Debug, E: std::fmt::Debug>(
    r: Result<T, Checked<E>>,
) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        Checked::Store(e) => e,
        Checked::Rejected(e) => panic!("unexpected rejection {e:?}"),
    })
}

async fn tenant_isolation(store: &Store) {
    let w = world(store, "Acme").await;
    let other = account(store, "Other").await;
    let o = other.id;
    assert_not_found(store.gateway(o, w.gateway.id).await);
    assert_eq!(store.gateway_by_name(o, "gw").await.unwrap(), None);
    assert!(
        store
            .gateways(o, GatewayView::Enabled)
            .await
            .unwrap()
            .is_empty()
    );
    assert_not_found(
        store
            .rename_gateway(o, w.gateway.id, "mine", audit("gateway.rename"))
            .await,
    );
    assert_not_found(
        store
            .update_gateway(
                o,
                w.gateway.id,
                GatewayUpdate {
                    public_url: None,
                    bind_address: DEFAULT_BIND_ADDRESS.into(),
                    settings: GatewaySettings::default(),
                },
                audit("gateway.update"),
            )
            .await,
    );
    assert_not_found(
        store
            .delete_gateway(o, w.gateway.id, audit("gateway.delete"))
            .await,
    );
    assert_not_found(store.gateway_config_input(o, w.gateway.id).await);
    assert_not_found(store.gateway_routes(o, w.gateway.id).await);
    assert_not_found(store.gateway_status_history(o, w.gateway.id, 10).await);
    assert_not_found(
        store
            .set_gateway_status(o, w.gateway.id, st("online", None), t(5))
            .await,
    );
    assert!(store.nodes(o, w.gateway.id).await.unwrap().is_empty());
    assert!(store.issues(o, w.gateway.id).await.unwrap().is_empty());
    assert_not_found(store.upsert_node(o, &w.node).await);
    assert_eq!(
        save_status(store, o, w.node.id, Some(report("online", 5))).await,
        0
    );
    assert_not_found(store.remove_node(o, w.node.id, audit("node.remove")).await);
    assert_not_found(
        store
            .raise_issue(
                o,
                NewIssue {
                    gateway_id: w.gateway.id,
                    node_id: None,
                    code: "NO_NODES".into(),
                    severity: Severity::Warning,
                    message: "m".into(),
                    details: serde_json::json!({}),
                },
                t(5),
            )
            .await,
    );

    assert_not_found(store.environment(o, w.env.id).await);
    assert!(store.environments(o).await.unwrap().is_empty());
    assert_not_found(
        store
            .update_environment(
                o,
                w.env.id,
                "x",
                Classification::Test,
                audit("environment.update"),
            )
            .await,
    );
    assert_not_found(store_err(
        store
            .update_environment_paths(o, w.env.id, EnvironmentPaths::default(), audit("p"), ok2)
            .await,
    ));
    assert_not_found(
        store
            .delete_environment(o, w.env.id, audit("environment.delete"))
            .await,
    );
    // Attaching another account's environment, or to another account's gateway.
    assert_not_found(store_err(
        store
            .set_environment_gateway(o, w.env.id, None, audit("environment.detach"), ok2)
            .await,
    ));
    let own_env = store
        .create_environment(o, new_env("Own"), audit("environment.create"))
        .await
        .unwrap();
    assert_not_found(store_err(
        store
            .set_environment_gateway(o, own_env.id, Some(w.gateway.id), audit("attach"), ok2)
            .await,
    ));

    assert_not_found(store.api(o, w.api.id).await);
    assert!(store.apis(o).await.unwrap().is_empty());
    assert_not_found(store_err(
        store
            .update_api(o, w.api.id, new_api("x", "x"), audit("api.update"), ok_api)
            .await,
    ));
    assert_not_found(store.delete_api(o, w.api.id, audit("api.delete")).await);
    assert_not_found(store.deployment(o, w.deployment.id).await);
    assert!(
        store
            .deployments_by_environment(o, w.env.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .deployments_by_api(o, w.api.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_not_found(
        store
            .delete_deployment(o, w.deployment.id, audit("d"))
            .await,
    );
    // Deploying another account's API into one's own environment.
    assert_not_found(store_err(
        store
            .create_deployment(
                o,
                NewDeployment {
                    api_id: w.api.id,
                    environment_id: own_env.id,
                    custom_path: None,
                    status: DeploymentStatus::SentToGateway,
                },
                audit("deployment.create"),
                ok,
            )
            .await,
    ));

    let overview = store
        .gateways_overview(o, GatewayView::Enabled, OverviewFilter::default())
        .await
        .unwrap();
    assert!(overview.gateways.is_empty());
    assert_eq!(overview.unattached.len(), 1);
    assert!(
        store
            .audit_records(o, None, 100)
            .await
            .unwrap()
            .iter()
            .all(|r| r.account_id == Some(o))
    );

    // And everything of the first account is intact.
    assert_eq!(
        store
            .gateway(w.account.id, w.gateway.id)
            .await
            .unwrap()
            .name,
        "gw"
    );
    assert_eq!(
        store.environment(w.account.id, w.env.id).await.unwrap(),
        w.env
    );
    assert_eq!(
        store
            .deployments_by_environment(w.account.id, w.env.id)
            .await
            .unwrap(),
        vec![w.deployment.clone()]
    );
}

async fn gateway_names_are_unique_among_live_gateways(store: &Store) {
    let acme = account(store, "Acme").await;
    let other = account(store, "Other").await;
    let gw = store
        .create_gateway(acme.id, NewGateway::named("Edge"), audit("gateway.create"))
        .await
        .unwrap();
    assert_conflict(
        store
            .create_gateway(acme.id, NewGateway::named("edge"), audit("gateway.create"))
            .await,
        ConflictKind::GatewayName,
    );
    // Another account may use the name.
    store
        .create_gateway(other.id, NewGateway::named("Edge"), audit("gateway.create"))
        .await
        .unwrap();
    let second = store
        .create_gateway(acme.id, NewGateway::named("Core"), audit("gateway.create"))
        .await
        .unwrap();
    assert_conflict(
        store
            .rename_gateway(acme.id, second.id, "EDGE", audit("gateway.rename"))
            .await,
        ConflictKind::GatewayName,
    );
    let renamed = store
        .rename_gateway(acme.id, gw.id, "Edge 2", audit("gateway.rename"))
        .await
        .unwrap();
    assert_eq!(renamed.name, "Edge 2");
    assert_eq!(
        store
            .gateway_by_name(acme.id, "edge 2")
            .await
            .unwrap()
            .map(|g| g.id),
        Some(gw.id)
    );
    // Environments and APIs have their own unique names.
    store
        .create_environment(acme.id, new_env("Prod"), audit("environment.create"))
        .await
        .unwrap();
    assert_conflict(
        store
            .create_environment(acme.id, new_env("PROD"), audit("environment.create"))
            .await,
        ConflictKind::EnvironmentName,
    );
    store
        .create_api(acme.id, new_api("orders", "orders"), audit("api.create"))
        .await
        .unwrap();
    assert_conflict(
        store
            .create_api(acme.id, new_api("Orders", "orders2"), audit("api.create"))
            .await,
        ConflictKind::ApiNameVersion,
    );
}

async fn soft_delete_detaches_revokes_and_frees_the_name(store: &Store) {
    let w = world(store, "Acme").await;
    let a = w.account.id;
    let joining = Node {
        id: NodeId::new_v7(),
        ..w.node.clone()
    };
    let (_, cred) = store
        .join_node(a, &joining, "cred-1", audit("node.join"))
        .await
        .unwrap();
    assert_eq!(
        store.find_node_credential("cred-1").await.unwrap(),
        Some(cred.clone())
    );
    store
        .raise_issue(
            a,
            NewIssue {
                gateway_id: w.gateway.id,
                node_id: None,
                code: "NO_NODES".into(),
                severity: Severity::Warning,
                message: "no node has joined".into(),
                details: serde_json::json!({}),
            },
            t(1_500),
        )
        .await
        .unwrap();
    let mut del = audit("gateway.delete");
    del.at = t(2_000);
    let deleted = store.delete_gateway(a, w.gateway.id, del).await.unwrap();
    assert_eq!(deleted.deleted_at, Some(t(2_000)));

    let env = store.environment(a, w.env.id).await.unwrap();
    assert_eq!(env.gateway_id, None, "environment detached");
    // Deployments stay with the environment; they just no longer reach a gateway.
    assert_eq!(
        store
            .deployments_by_environment(a, w.env.id)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.find_node_credential("cred-1").await.unwrap(), None);
    assert!(store.issues(a, w.gateway.id).await.unwrap().is_empty());
    let deleted = store
        .gateways_overview(
            a,
            GatewayView::Deleted,
            OverviewFilter::gateway(w.gateway.id),
        )
        .await
        .unwrap();
    let row = &deleted.gateways[0];
    assert_eq!(row.gateway.deleted_at, Some(t(2_000)));
    assert_eq!(row.status.unwrap().status, GatewayStatus::DELETED);

    // Deleted gateways are never changed again.
    assert_not_found(
        store
            .delete_gateway(a, w.gateway.id, audit("gateway.delete"))
            .await,
    );
    assert_not_found(
        store
            .rename_gateway(a, w.gateway.id, "x", audit("gateway.rename"))
            .await,
    );
    assert_not_found(
        store
            .join_node(
                a,
                &Node {
                    id: NodeId::new_v7(),
                    ..w.node.clone()
                },
                "c2",
                audit("x"),
            )
            .await,
    );
    assert_not_found(store_err(
        store
            .set_environment_gateway(a, w.env.id, Some(w.gateway.id), audit("attach"), ok2)
            .await,
    ));
    assert_eq!(store.gateway_by_name(a, "gw").await.unwrap(), None);

    // The name is free again; both show in their views.
    let again = store
        .create_gateway(a, NewGateway::named("GW"), audit("gateway.create"))
        .await
        .unwrap();
    let enabled = store.gateways(a, GatewayView::Enabled).await.unwrap();
    assert_eq!(
        enabled.iter().map(|g| g.id).collect::<Vec<_>>(),
        vec![again.id]
    );
    let deleted_view = store.gateways(a, GatewayView::Deleted).await.unwrap();
    assert_eq!(
        deleted_view.iter().map(|g| g.id).collect::<Vec<_>>(),
        vec![w.gateway.id]
    );

    let records = store.audit_records(a, None, 100).await.unwrap();
    let rec = records
        .iter()
        .find(|r| r.action == "gateway.delete")
        .unwrap();
    assert_eq!(
        rec.details["detached_environments"],
        serde_json::json!([w.env.id.to_string()])
    );
    assert_eq!(rec.target, Some(AuditTarget::new("gateway", w.gateway.id)));
}

async fn failed_mutations_leave_no_trace(store: &Store) {
    let w = world(store, "Acme").await;
    let a = w.account.id;
    let before = audit_count(store, a).await;

    // A unique violation: no gateway, no audit record.
    assert_conflict(
        store
            .create_gateway(a, NewGateway::named("gw"), audit("gateway.create"))
            .await,
        ConflictKind::GatewayName,
    );
    assert_eq!(
        store.gateways(a, GatewayView::Enabled).await.unwrap().len(),
        1
    );
    assert_eq!(audit_count(store, a).await, before);

    // A refused check: paths unchanged, no audit record.
    let mut seen = None;
    let paths = EnvironmentPaths {
        rest: "api/rest".into(),
        ..EnvironmentPaths::default()
    };
    let refused = store
        .update_environment_paths(
            a,
            w.env.id,
            paths.clone(),
            audit("environment.update_paths"),
            |env, routes| {
                seen = Some((env.clone(), routes.cloned()));
                Err("PATH_CONFLICT")
            },
        )
        .await;
    assert!(matches!(refused, Err(Checked::Rejected("PATH_CONFLICT"))));
    let (env_seen, routes_seen) = seen.unwrap();
    assert_eq!(env_seen, w.env);
    let routes_seen = routes_seen.unwrap();
    assert_eq!(routes_seen.gateway_id, w.gateway.id);
    assert_eq!(routes_seen.deployments.len(), 1);
    assert_eq!(
        store.environment(a, w.env.id).await.unwrap().paths,
        EnvironmentPaths::default()
    );
    assert_eq!(audit_count(store, a).await, before);

    // A refused deployment: nothing written.
    let api2 = store
        .create_api(a, new_api("billing", "billing"), audit("api.create"))
        .await
        .unwrap();
    let before = audit_count(store, a).await;
    let refused = store
        .create_deployment(
            a,
            NewDeployment {
                api_id: api2.id,
                environment_id: w.env.id,
                custom_path: None,
                status: DeploymentStatus::SentToGateway,
            },
            audit("deployment.create"),
            |check: &DeploymentCheck| {
                assert_eq!(check.api.id, api2.id);
                assert_eq!(check.routes.as_ref().unwrap().deployments.len(), 1);
                Err(())
            },
        )
        .await;
    assert!(matches!(refused, Err(Checked::Rejected(()))));
    assert!(
        store
            .deployments_by_api(a, api2.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(audit_count(store, a).await, before);

    // A duplicate deployment is a named conflict, also without trace.
    let dup = store
        .create_deployment(
            a,
            NewDeployment {
                api_id: w.api.id,
                environment_id: w.env.id,
                custom_path: Some("custom".into()),
                status: DeploymentStatus::SentToGateway,
            },
            audit("deployment.create"),
            ok,
        )
        .await;
    assert_conflict(store_err(dup), ConflictKind::AlreadyDeployed);
    assert_eq!(audit_count(store, a).await, before);

    // A soft delete is all-or-nothing too: a refused delete (not found) changes nothing.
    assert_not_found(
        store
            .delete_gateway(a, GatewayId::new_v7(), audit("gateway.delete"))
            .await,
    );
    assert_eq!(audit_count(store, a).await, before);
}

async fn every_mutation_writes_one_audit_record(store: &Store) {
    let acme = account(store, "Acme").await;
    let a = acme.id;
    let user = store
        .create_user(
            NewUser {
                account_id: Some(a),
                name: "alice".into(),
                email: None,
                role: Role::Owner,
                platform_admin: false,
                password_hash: None,
            },
            audit("user.create"),
        )
        .await
        .unwrap();
    let actor = Actor::User(user.id);
    let mut n = audit_count(store, a).await;
    assert_eq!(n, 2, "account.create and user.create");

    macro_rules! step {
        ($action:expr, $call:expr) => {{
            let out = $call;
            n += 1;
            let records = store.audit_records(a, None, 1).await.unwrap();
            assert_eq!(records[0].action, $action);
            assert_eq!(records[0].actor, actor);
            assert_eq!(records[0].result, AuditResult::Allowed);
            assert_eq!(audit_count(store, a).await, n, "after {}", $action);
            out
        }};
    }
    let au = |action: &str| {
        Audit::new(actor, action, t(3_000)).with_details(serde_json::json!({"k": "v"}))
    };

    let gw = step!(
        "gateway.create",
        store
            .create_gateway(a, NewGateway::named("gw"), au("gateway.create"))
            .await
            .unwrap()
    );
    let records = store.audit_records(a, None, 1).await.unwrap();
    assert_eq!(records[0].target, Some(AuditTarget::new("gateway", gw.id)));
    assert_eq!(records[0].details, serde_json::json!({"k": "v"}));
    assert_eq!(records[0].at, t(3_000));
    step!(
        "gateway.rename",
        store
            .rename_gateway(a, gw.id, "gw2", au("gateway.rename"))
            .await
            .unwrap()
    );
    step!(
        "gateway.update",
        store
            .update_gateway(
                a,
                gw.id,
                GatewayUpdate {
                    public_url: Some("https://gw.example.com".into()),
                    bind_address: "http://0.0.0.0:9000".into(),
                    settings: GatewaySettings {
                        force_restart_after: Some(Duration::from_secs(600)),
                        ..GatewaySettings::default()
                    },
                },
                au("gateway.update"),
            )
            .await
            .unwrap()
    );
    let env = step!(
        "environment.create",
        store
            .create_environment(a, new_env("Test"), au("environment.create"))
            .await
            .unwrap()
    );
    step!(
        "environment.update",
        store
            .update_environment(
                a,
                env.id,
                "Test 2",
                Classification::Production,
                au("environment.update")
            )
            .await
            .unwrap()
    );
    step!(
        "environment.attach",
        store
            .set_environment_gateway(a, env.id, Some(gw.id), au("environment.attach"), ok2)
            .await
            .unwrap()
    );
    step!(
        "environment.update_paths",
        store
            .update_environment_paths(
                a,
                env.id,
                EnvironmentPaths::default(),
                au("environment.update_paths"),
                ok2
            )
            .await
            .unwrap()
    );
    let api = step!(
        "api.create",
        store
            .create_api(a, new_api("orders", "orders"), au("api.create"))
            .await
            .unwrap()
    );
    step!(
        "api.update",
        store
            .update_api(
                a,
                api.id,
                new_api("orders", "orders-v2"),
                au("api.update"),
                ok_api
            )
            .await
            .unwrap()
    );
    let dep = step!(
        "deployment.create",
        store
            .create_deployment(
                a,
                NewDeployment {
                    api_id: api.id,
                    environment_id: env.id,
                    custom_path: None,
                    status: DeploymentStatus::SentToGateway
                },
                au("deployment.create"),
                ok,
            )
            .await
            .unwrap()
    );
    step!(
        "deployment.delete",
        store
            .delete_deployment(a, dep.id, au("deployment.delete"))
            .await
            .unwrap()
    );
    step!(
        "api.delete",
        store.delete_api(a, api.id, au("api.delete")).await.unwrap()
    );
    let it = step!(
        "install_token.create",
        store
            .create_install_token(
                a,
                NewInstallToken {
                    hash: "ih".into(),
                    expires_at: t(99_999),
                    created_by: Some(user.id)
                },
                au("install_token.create")
            )
            .await
            .unwrap()
    );
    step!(
        "install_token.revoke",
        store
            .revoke_install_token(a, it.id, au("install_token.revoke"))
            .await
            .unwrap()
    );
    let tok = step!(
        "api_token.create",
        store
            .create_api_token(
                NewApiToken {
                    user_id: user.id,
                    name: "t".into(),
                    prefix: "p".into(),
                    hash: "th".into(),
                    expires_at: None
                },
                au("api_token.create")
            )
            .await
            .unwrap()
    );
    step!(
        "api_token.revoke",
        store
            .revoke_api_token(user.id, tok.id, au("api_token.revoke"))
            .await
            .unwrap()
    );
    step!(
        "user.set_password",
        store
            .set_password_hash(user.id, Some("h"), au("user.set_password"))
            .await
            .unwrap()
    );
    step!(
        "user.set_role",
        store
            .set_user_role(a, user.id, Role::Admin, au("user.set_role"))
            .await
            .unwrap()
    );
    let node = Node {
        id: NodeId::new_v7(),
        gateway_id: gw.id,
        host_name: "h".into(),
        address: None,
        version: "0.1.0".into(),
        joined_at: t(1),
        last_seen: None,
        applied_generation: None,
    };
    store.upsert_node(a, &node).await.unwrap();
    step!(
        "node.remove",
        store
            .remove_node(a, node.id, au("node.remove"))
            .await
            .unwrap()
    );
    step!(
        "environment.detach",
        store
            .set_environment_gateway(a, env.id, None, au("environment.detach"), ok2)
            .await
            .unwrap()
    );
    step!(
        "environment.delete",
        store
            .delete_environment(a, env.id, au("environment.delete"))
            .await
            .unwrap()
    );
    step!(
        "gateway.delete",
        store
            .delete_gateway(a, gw.id, au("gateway.delete"))
            .await
            .unwrap()
    );

    // Denied and failed actions are recorded on request.
    let denied = store
        .record_denied(
            Some(a),
            Audit::new(actor, "gateway.delete", t(4_000))
                .with_target(AuditTarget::new("gateway", gw.id)),
        )
        .await
        .unwrap();
    assert_eq!(denied.result, AuditResult::Denied);
    store
        .append_audit(
            Some(a),
            Audit::new(actor, "gateway.create", t(4_001)),
            AuditResult::Failed,
        )
        .await
        .unwrap();
    let records = store.audit_records(a, None, 2).await.unwrap();
    assert_eq!(records[0].result, AuditResult::Failed);
    assert_eq!(records[1], denied);

    // Records of no account are the platform's: never in an account's log, only in its own.
    let platform = store
        .append_audit(
            None,
            Audit::new(Actor::System, "auth.throttled", t(4_002))
                .with_target(AuditTarget::new("source", "192.0.2.7")),
            AuditResult::Denied,
        )
        .await
        .unwrap();
    assert_eq!(
        store.audit_records(a, None, 1).await.unwrap()[0].action,
        "gateway.create"
    );
    let own = store.platform_audit_records(None, 1).await.unwrap();
    assert_eq!(own, vec![platform.clone()]);
    assert!(
        store
            .platform_audit_records(Some(platform.id), 1_000)
            .await
            .unwrap()
            .iter()
            .all(|r| r.account_id.is_none() && r.id < platform.id)
    );

    // Paging: newest first, cursor excludes itself, pages cover everything once.
    let all = store.audit_records(a, None, 1_000).await.unwrap();
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.audit_records(a, cursor, 5).await.unwrap();
        if page.is_empty() {
            break;
        }
        cursor = Some(page.last().unwrap().id);
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
}

fn node_on(gateway: GatewayId, host: &str, joined: i64) -> Node {
    Node {
        id: NodeId::new_v7(),
        gateway_id: gateway,
        host_name: host.into(),
        address: None,
        version: "0.1.0".into(),
        joined_at: t(joined),
        last_seen: None,
        applied_generation: None,
    }
}

fn issue(gateway: GatewayId, node: Option<NodeId>, code: &str, severity: Severity) -> NewIssue {
    NewIssue {
        gateway_id: gateway,
        node_id: node,
        code: code.into(),
        severity,
        message: format!("{code} happened"),
        details: serde_json::json!({"code": code}),
    }
}

/// A status write of one node with an empty record.
fn status_write(account: AccountId, node: NodeId, report: Option<NodeReport>) -> NodeStatusWrite {
    NodeStatusWrite {
        account,
        node,
        report,
        record: serde_json::json!({}),
    }
}

/// Writes one node's status; answers how many rows were written.
async fn save_status(
    store: &Store,
    account: AccountId,
    node: NodeId,
    report: Option<NodeReport>,
) -> u64 {
    store
        .save_node_statuses(&[status_write(account, node, report)])
        .await
        .unwrap()
}

fn report(state: &str, at: i64) -> NodeReport {
    NodeReport {
        state: rs(state),
        applied_generation: None,
        at: t(at),
    }
}

async fn gateways_overview(store: &Store) {
    let acme = account(store, "Acme").await;
    let a = acme.id;
    let gw = |name: &'static str| {
        store.create_gateway(a, NewGateway::named(name), audit("gateway.create"))
    };
    let beta = gw("beta").await.unwrap();
    let alpha = gw("Alpha").await.unwrap();
    let gamma = gw("gamma").await.unwrap();
    let delta = gw("delta").await.unwrap();
    let attach = |name: &'static str, to: Option<GatewayId>| async move {
        let env = store
            .create_environment(a, new_env(name), audit("environment.create"))
            .await
            .unwrap();
        match to {
            Some(g) => store
                .set_environment_gateway(a, env.id, Some(g), audit("attach"), ok2)
                .await
                .unwrap(),
            None => env,
        }
    };
    attach("Prod", Some(alpha.id)).await;
    attach("dev", Some(alpha.id)).await;
    attach("QA", Some(gamma.id)).await;
    attach("Staging", Some(delta.id)).await;
    for name in ["zeta", "Eta", "theta", "iota"] {
        attach(name, None).await;
    }
    let n1 = store
        .upsert_node(a, &node_on(alpha.id, "alpha-old", 10))
        .await
        .unwrap();
    store
        .save_node_statuses(&[status_write(a, n1.id, Some(report("stopped", 30)))])
        .await
        .unwrap();
    store
        .upsert_node(a, &node_on(alpha.id, "alpha-new", 20))
        .await
        .unwrap();
    let nb = store
        .upsert_node(a, &node_on(beta.id, "beta-only", 5))
        .await
        .unwrap();
    store
        .save_node_statuses(&[status_write(a, nb.id, Some(report("stopped", 30)))])
        .await
        .unwrap();
    store
        .upsert_node(a, &node_on(delta.id, "delta-host", 5))
        .await
        .unwrap();
    store
        .raise_issue(
            a,
            issue(alpha.id, None, "VERSION_MISMATCH", Severity::Warning),
            t(40),
        )
        .await
        .unwrap();
    store
        .raise_issue(
            a,
            issue(
                alpha.id,
                Some(n1.id),
                "CONFIG_APPLY_FAILED",
                Severity::Error,
            ),
            t(50),
        )
        .await
        .unwrap();
    store
        .raise_issue(
            a,
            issue(delta.id, None, "NO_NODES", Severity::Warning),
            t(40),
        )
        .await
        .unwrap();
    store
        .set_gateway_status(a, alpha.id, st("cluster_issues", None), t(60))
        .await
        .unwrap();
    store
        .delete_gateway(a, delta.id, audit("gateway.delete"))
        .await
        .unwrap();
    // Another account's data never shows.
    let other = account(store, "Other").await;
    store
        .create_gateway(other.id, NewGateway::named("aaa"), audit("gateway.create"))
        .await
        .unwrap();
    store
        .create_environment(other.id, new_env("aaa-env"), audit("environment.create"))
        .await
        .unwrap();

    let o = store
        .gateways_overview(a, GatewayView::Enabled, OverviewFilter::default())
        .await
        .unwrap();
    let names: Vec<_> = o.gateways.iter().map(|r| r.gateway.name.as_str()).collect();
    assert_eq!(names, ["Alpha", "beta", "gamma"]);
    let env_names = |envs: &[Environment]| envs.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    assert_eq!(env_names(&o.gateways[0].environments), ["dev", "Prod"]);
    assert!(o.gateways[1].environments.is_empty());
    assert_eq!(env_names(&o.gateways[2].environments), ["QA"]);
    assert_eq!(
        env_names(&o.unattached),
        ["Eta", "iota", "Staging", "theta", "zeta"]
    );
    // Nodes come oldest first with the state each reported last (the head node is the
    // model's to decide).
    let hosts = |row: &GatewayRow| {
        row.nodes
            .iter()
            .map(|(n, reported)| (n.host_name.clone(), *reported))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        hosts(&o.gateways[0]),
        [
            ("alpha-old".to_owned(), Some(ReportedState::Stopped)),
            ("alpha-new".to_owned(), None)
        ]
    );
    assert_eq!(
        hosts(&o.gateways[1]),
        [("beta-only".to_owned(), Some(ReportedState::Stopped))]
    );
    assert!(o.gateways[2].nodes.is_empty());
    let codes: Vec<_> = o.gateways[0]
        .issues
        .iter()
        .map(|i| i.code.as_str())
        .collect();
    assert_eq!(codes, ["CONFIG_APPLY_FAILED", "VERSION_MISMATCH"]);
    assert_eq!(
        o.gateways[0].status.unwrap().status,
        GatewayStatus::CLUSTER_ISSUES
    );
    assert_eq!(o.gateways[0].status.as_ref().unwrap().since, t(60));
    assert_eq!(o.gateways[1].status, None);

    let deleted = store
        .gateways_overview(a, GatewayView::Deleted, OverviewFilter::default())
        .await
        .unwrap();
    assert_eq!(deleted.gateways.len(), 1);
    let d = &deleted.gateways[0];
    assert_eq!(d.gateway.name, "delta");
    assert!(d.environments.is_empty() && d.issues.is_empty());
    assert_eq!(d.status.unwrap().status, GatewayStatus::DELETED);
    assert_eq!(d.nodes[0].0.host_name, "delta-host");

    let prod = o.clone().filter("PROD");
    assert_eq!(prod.gateways.len(), 1);
    assert!(prod.unattached.is_empty());
    let eta = o.clone().filter("eta");
    assert_eq!(
        eta.gateways
            .iter()
            .map(|r| r.gateway.name.as_str())
            .collect::<Vec<_>>(),
        ["beta"]
    );
    assert_eq!(env_names(&eta.unattached), ["Eta", "theta", "zeta"]);
    assert_eq!(o.clone().filter("  ").gateways.len(), 3);
}

/// An overview in one line: `name[environments]<nodes>n<issues>i` per gateway row, then
/// ` | ` and the unattached environments.
fn shown(o: &GatewaysOverview) -> String {
    let names = |envs: &[Environment]| {
        envs.iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    let rows: Vec<String> = o
        .gateways
        .iter()
        .map(|r| {
            format!(
                "{}[{}]{}n{}i",
                r.gateway.name,
                names(&r.environments),
                r.nodes.len(),
                r.issues.len()
            )
        })
        .collect();
    format!("{} | {}", rows.join(" "), names(&o.unattached))
}

/// Checks what the store's search returns, and that it is exactly the in-memory
/// [`GatewaysOverview::filter`] of the whole overview.
async fn check_search(store: &Store, a: AccountId, view: GatewayView, q: &str, expect: &str) {
    let got = store
        .gateways_overview(a, view, OverviewFilter::search(q))
        .await
        .unwrap();
    assert_eq!(shown(&got), expect, "q = {q:?} ({view:?})");
    let all = store
        .gateways_overview(a, view, OverviewFilter::default())
        .await
        .unwrap();
    assert_eq!(shown(&all.filter(q)), expect, "filter({q:?}) ({view:?})");
}

async fn check_one(
    store: &Store,
    a: AccountId,
    view: GatewayView,
    filter: OverviewFilter<'_>,
    expect: &str,
) {
    let got = store.gateways_overview(a, view, filter).await.unwrap();
    assert_eq!(shown(&got), expect, "{filter:?} ({view:?})");
}

async fn gateways_overview_search_and_one_gateway(store: &Store) {
    use GatewayView::{Deleted, Enabled};
    let a = account(store, "Acme").await.id;
    let gw = |name: &'static str| async move {
        store
            .create_gateway(a, NewGateway::named(name), audit("gateway.create"))
            .await
            .unwrap()
    };
    let env = |name: &'static str, to: Option<GatewayId>| async move {
        let env = store
            .create_environment(a, new_env(name), audit("environment.create"))
            .await
            .unwrap();
        if let Some(g) = to {
            store
                .set_environment_gateway(a, env.id, Some(g), audit("attach"), ok2)
                .await
                .unwrap();
        }
    };
    let alpha = gw("Alpha-East").await;
    env("Prod-EU", Some(alpha.id)).await;
    env("dev", Some(alpha.id)).await;
    store
        .upsert_node(a, &node_on(alpha.id, "alpha-host", 10))
        .await
        .unwrap();
    store
        .raise_issue(
            a,
            issue(alpha.id, None, "VERSION_MISMATCH", Severity::Warning),
            t(40),
        )
        .await
        .unwrap();
    gw("ÉTÉ").await;
    // KELVIN SIGN, which lowercases to an ASCII 'k'.
    let kelvin = gw("\u{212A}elvin").await;
    env("qa", Some(kelvin.id)).await;
    store
        .upsert_node(a, &node_on(kelvin.id, "kelvin-host", 10))
        .await
        .unwrap();
    gw("100%_sure").await;
    let plain = gw("1000 sure").await;
    env("été-staging", Some(plain.id)).await;
    let gone = gw("prod-old").await;
    store
        .upsert_node(a, &node_on(gone.id, "gone-host", 10))
        .await
        .unwrap();
    store
        .delete_gateway(a, gone.id, audit("gateway.delete"))
        .await
        .unwrap();
    for name in ["prod-spare", "Été-spare", "other"] {
        env(name, None).await;
    }
    // Another account's matching data never shows.
    let other = account(store, "Other").await.id;
    let foreign = store
        .create_gateway(
            other,
            NewGateway::named("alpha-prod"),
            audit("gateway.create"),
        )
        .await
        .unwrap();
    store
        .create_environment(other, new_env("prod-other"), audit("environment.create"))
        .await
        .unwrap();

    let everything = "100%_sure[]0n0i 1000 sure[été-staging]0n0i Alpha-East[dev,Prod-EU]1n1i \
                      \u{212A}elvin[qa]1n0i ÉTÉ[]0n0i | other,prod-spare,Été-spare";
    check_search(store, a, Enabled, "", everything).await;
    check_search(store, a, Enabled, "  ", everything).await;
    // ASCII, case-insensitive, trimmed.
    check_search(store, a, Enabled, "ALPHA", "Alpha-East[dev,Prod-EU]1n1i | ").await;
    check_search(
        store,
        a,
        Enabled,
        " Prod-eu  ",
        "Alpha-East[dev,Prod-EU]1n1i | ",
    )
    .await;
    // A match by environment name keeps all the gateway's environments; unattached filtered.
    check_search(
        store,
        a,
        Enabled,
        "prod",
        "Alpha-East[dev,Prod-EU]1n1i | prod-spare",
    )
    .await;
    // Unicode lowercase, both ways.
    let ete = "1000 sure[été-staging]0n0i ÉTÉ[]0n0i | Été-spare";
    check_search(store, a, Enabled, "été", ete).await;
    check_search(store, a, Enabled, "ÉTÉ", ete).await;
    check_search(store, a, Enabled, "k", "\u{212A}elvin[qa]1n0i | ").await;
    check_search(store, a, Enabled, "\u{212A}EL", "\u{212A}elvin[qa]1n0i | ").await;
    // SQL wildcards are plain characters.
    check_search(store, a, Enabled, "%", "100%_sure[]0n0i | ").await;
    check_search(store, a, Enabled, "_", "100%_sure[]0n0i | ").await;
    check_search(store, a, Enabled, "0%_s", "100%_sure[]0n0i | ").await;
    check_search(store, a, Enabled, "%e", " | ").await;
    check_search(store, a, Enabled, "zzz", " | ").await;
    check_search(store, a, Enabled, "\0", " | ").await;
    // The deleted view: its gateways (with nodes, no issues) and the same unattached row.
    check_search(
        store,
        a,
        Deleted,
        "",
        "prod-old[]1n0i | other,prod-spare,Été-spare",
    )
    .await;
    check_search(store, a, Deleted, "PROD", "prod-old[]1n0i | prod-spare").await;
    check_search(store, a, Deleted, "alpha", " | ").await;

    // One gateway: only its rows, no unattached environments, in its view only.
    let alpha_row = "Alpha-East[dev,Prod-EU]1n1i | ";
    check_one(
        store,
        a,
        Enabled,
        OverviewFilter::gateway(alpha.id),
        alpha_row,
    )
    .await;
    check_one(store, a, Deleted, OverviewFilter::gateway(alpha.id), " | ").await;
    check_one(store, a, Enabled, OverviewFilter::gateway(gone.id), " | ").await;
    check_one(
        store,
        a,
        Deleted,
        OverviewFilter::gateway(gone.id),
        "prod-old[]1n0i | ",
    )
    .await;
    check_one(
        store,
        a,
        Enabled,
        OverviewFilter::gateway(foreign.id),
        " | ",
    )
    .await;
    let one_and = |q| OverviewFilter {
        q,
        gateway: Some(alpha.id),
    };
    check_one(store, a, Enabled, one_and("prod"), alpha_row).await;
    check_one(store, a, Enabled, one_and("zzz"), " | ").await;
}

async fn environments_and_checked_path_updates(store: &Store) {
    let acme = account(store, "Acme").await;
    let a = acme.id;
    let g1 = store
        .create_gateway(a, NewGateway::named("g1"), audit("gateway.create"))
        .await
        .unwrap();
    let g2 = store
        .create_gateway(a, NewGateway::named("g2"), audit("gateway.create"))
        .await
        .unwrap();
    let paths = EnvironmentPaths {
        rest: "p/rest".into(),
        soap: "p/soap".into(),
        soap12: "p/soap12".into(),
        odata: "p/odata".into(),
    };
    let env = store
        .create_environment(
            a,
            NewEnvironment {
                name: "Prod".into(),
                classification: Classification::Production,
                paths: paths.clone(),
            },
            audit("environment.create"),
        )
        .await
        .unwrap();
    assert_eq!(env.gateway_id, None);
    assert_eq!(store.environment(a, env.id).await.unwrap(), env);
    let other = store
        .create_environment(a, new_env("another"), audit("environment.create"))
        .await
        .unwrap();
    assert_eq!(
        store.environments(a).await.unwrap(),
        vec![other.clone(), env.clone()]
    );

    let renamed = store
        .update_environment(
            a,
            env.id,
            "Production",
            Classification::Test,
            audit("environment.update"),
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.classification),
        ("Production", Classification::Test)
    );
    assert_conflict(
        store
            .update_environment(
                a,
                other.id,
                "production",
                Classification::Test,
                audit("environment.update"),
            )
            .await,
        ConflictKind::EnvironmentName,
    );

    // Unattached: the check sees no routes.
    let mut saw = None;
    store
        .update_environment_paths(
            a,
            env.id,
            EnvironmentPaths::default(),
            audit("p"),
            |_, r| {
                saw = Some(r.is_none());
                Ok::<(), Infallible>(())
            },
        )
        .await
        .unwrap();
    assert_eq!(saw, Some(true));

    // Attach to g1 (check sees g1's routes before the change), then change paths on g1.
    store
        .set_environment_gateway(a, other.id, Some(g1.id), audit("attach"), ok2)
        .await
        .unwrap();
    let attached = store
        .set_environment_gateway(
            a,
            env.id,
            Some(g1.id),
            audit("attach"),
            |current, routes| {
                assert_eq!(current.gateway_id, None);
                let routes = routes.unwrap();
                assert_eq!(routes.gateway_id, g1.id);
                assert_eq!(
                    routes.environments.iter().map(|e| e.id).collect::<Vec<_>>(),
                    vec![other.id]
                );
                Ok::<(), Infallible>(())
            },
        )
        .await
        .unwrap();
    assert_eq!(attached.gateway_id, Some(g1.id));
    let updated = store
        .update_environment_paths(a, env.id, paths.clone(), audit("p"), |current, routes| {
            assert_eq!(current.paths, EnvironmentPaths::default());
            assert_eq!(routes.unwrap().environments.len(), 2);
            Ok::<(), Infallible>(())
        })
        .await
        .unwrap();
    assert_eq!(updated.paths, paths);

    // Move to g2, then detach; the audit records where from and where to.
    let moved = store
        .set_environment_gateway(a, env.id, Some(g2.id), audit("environment.move"), ok2)
        .await
        .unwrap();
    assert_eq!(moved.gateway_id, Some(g2.id));
    let rec = &store.audit_records(a, None, 1).await.unwrap()[0];
    assert_eq!(
        rec.details["from_gateway"],
        serde_json::json!(g1.id.to_string())
    );
    assert_eq!(
        rec.details["to_gateway"],
        serde_json::json!(g2.id.to_string())
    );
    let detached = store
        .set_environment_gateway(a, env.id, None, audit("environment.detach"), ok2)
        .await
        .unwrap();
    assert_eq!(detached.gateway_id, None);
    assert_not_found(store_err(
        store
            .set_environment_gateway(a, env.id, Some(GatewayId::new_v7()), audit("attach"), ok2)
            .await,
    ));

    // Delete takes the environment's deployments with it.
    let api = store
        .create_api(a, new_api("orders", "orders"), audit("api.create"))
        .await
        .unwrap();
    store
        .create_deployment(
            a,
            NewDeployment {
                api_id: api.id,
                environment_id: env.id,
                custom_path: None,
                status: DeploymentStatus::RequiresConfiguration,
            },
            audit("deployment.create"),
            ok,
        )
        .await
        .unwrap();
    store
        .delete_environment(a, env.id, audit("environment.delete"))
        .await
        .unwrap();
    assert_not_found(store.environment(a, env.id).await);
    assert!(
        store
            .deployments_by_api(a, api.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_not_found(
        store
            .delete_environment(a, env.id, audit("environment.delete"))
            .await,
    );
}

async fn apis_and_deployments(store: &Store) {
    let w = world(store, "Acme").await;
    let a = w.account.id;
    assert_eq!(store.api(a, w.api.id).await.unwrap(), w.api);
    let rich = NewApi {
        name: "billing".into(),
        version: "v2".into(),
        api_type: ApiType::Soap12,
        base_path: "billing/v2".into(),
        upstream_targets: vec![
            UpstreamTarget {
                url: "http://10.0.0.1:80".into(),
            },
            UpstreamTarget {
                url: "https://billing.internal/base".into(),
            },
        ],
        health_check_url: Some("http://10.0.0.1:80/health".into()),
        execution: Some(ExecutionSettings {
            max_concurrency_per_node: 7,
            retry_attempts: 0,
            connect_timeout: Duration::from_secs(3),
            execution_timeout: Duration::from_secs(315_360_000),
            retry_cases: vec![RetryCase::ExecutionTimeout],
        }),
    };
    let billing = store
        .create_api(a, rich, audit("api.create"))
        .await
        .unwrap();
    assert_eq!(store.api(a, billing.id).await.unwrap(), billing);
    assert_eq!(
        store.apis(a).await.unwrap(),
        vec![billing.clone(), w.api.clone()]
    );

    let routes = store.gateway_routes(a, w.gateway.id).await.unwrap();
    assert_eq!(routes.environments, vec![w.env.clone()]);
    assert_eq!(routes.deployments.len(), 1);
    let entry = &routes.deployments[0];
    assert_eq!(entry.deployment, w.deployment);
    assert_eq!(entry.api, w.api);
    assert_eq!(entry.environment_name, "Production");
    assert_eq!(entry.environment_paths, w.env.paths);

    // A deployment to an unattached environment has no routes to check against.
    let test_env = store
        .create_environment(a, new_env("Test"), audit("environment.create"))
        .await
        .unwrap();
    let dep2 = store
        .create_deployment(
            a,
            NewDeployment {
                api_id: w.api.id,
                environment_id: test_env.id,
                custom_path: Some("my/orders".into()),
                status: DeploymentStatus::RequiresConfiguration,
            },
            audit("deployment.create"),
            |c: &DeploymentCheck| {
                assert!(c.routes.is_none());
                assert_eq!(c.environment.id, test_env.id);
                Ok::<(), Infallible>(())
            },
        )
        .await
        .unwrap();
    assert_eq!(store.deployment(a, dep2.id).await.unwrap(), dep2);
    assert_eq!(
        store
            .deployments_by_environment(a, test_env.id)
            .await
            .unwrap(),
        vec![dep2.clone()]
    );
    assert_eq!(
        store.deployments_by_api(a, w.api.id).await.unwrap(),
        vec![w.deployment.clone(), dep2.clone()]
    );

    // update_api sees the routes of each gateway the API is deployed on.
    let updated = store
        .update_api(
            a,
            w.api.id,
            new_api("orders", "orders/v2"),
            audit("api.update"),
            |api, routes| {
                assert_eq!(api.base_path, "orders/v2");
                assert_eq!(routes.len(), 1);
                assert_eq!(routes[0].gateway_id, w.gateway.id);
                Ok::<(), Infallible>(())
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.base_path, "orders/v2");
    assert_eq!(updated.created_at, w.api.created_at);
    let refused = store
        .update_api(
            a,
            w.api.id,
            new_api("orders", "clash"),
            audit("api.update"),
            |_, _| Err("conflict"),
        )
        .await;
    assert!(matches!(refused, Err(Checked::Rejected("conflict"))));
    assert_eq!(store.api(a, w.api.id).await.unwrap().base_path, "orders/v2");

    store
        .delete_deployment(a, dep2.id, audit("deployment.delete"))
        .await
        .unwrap();
    assert_not_found(store.deployment(a, dep2.id).await);
    store
        .delete_api(a, w.api.id, audit("api.delete"))
        .await
        .unwrap();
    assert_not_found(store.api(a, w.api.id).await);
    assert_not_found(store.deployment(a, w.deployment.id).await);
    assert!(
        store
            .gateway_routes(a, w.gateway.id)
            .await
            .unwrap()
            .deployments
            .is_empty()
    );
}

async fn nodes_issues_status_and_generations(store: &Store) {
    let w = world(store, "Acme").await;
    let a = w.account.id;
    let g = w.gateway.id;

    // Upsert keeps joined_at and refreshes the rest.
    let mut again = w.node.clone();
    again.host_name = "host-a2".into();
    again.joined_at = t(9_999);
    again.version = "0.2.0".into();
    let again = store.upsert_node(a, &again).await.unwrap();
    assert_eq!(again.joined_at, w.node.joined_at);
    assert_eq!(
        (again.host_name.as_str(), again.version.as_str()),
        ("host-a2", "0.2.0")
    );
    let mut online = report("online", 5_000);
    online.applied_generation = Some(3);
    assert_eq!(save_status(store, a, w.node.id, Some(online)).await, 1);
    let nodes = store.nodes(a, g).await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].1, Some(ReportedState::Online));
    assert_eq!(nodes[0].0.last_seen, Some(t(5_000)));
    assert_eq!(nodes[0].0.applied_generation, Some(3));

    // The same node id cannot be claimed from another account.
    let other = account(store, "Other").await;
    let og = store
        .create_gateway(other.id, NewGateway::named("gw"), audit("gateway.create"))
        .await
        .unwrap();
    let mut stolen = w.node.clone();
    stolen.gateway_id = og.id;
    assert_conflict(
        store.upsert_node(other.id, &stolen).await,
        ConflictKind::NodeId,
    );
    assert_eq!(store.nodes(a, g).await.unwrap()[0].0.gateway_id, g);

    // Issues: raising again refreshes the active one; clearing ends it.
    let first = store
        .raise_issue(
            a,
            issue(g, None, "VERSION_MISMATCH", Severity::Warning),
            t(100),
        )
        .await
        .unwrap();
    let mut refreshed = issue(g, None, "VERSION_MISMATCH", Severity::Error);
    refreshed.message = "still mismatched".into();
    let second = store.raise_issue(a, refreshed, t(200)).await.unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!((second.first_seen, second.last_seen), (t(100), t(200)));
    assert_eq!(second.severity, Severity::Error);
    assert_eq!(second.message, "still mismatched");
    let node_issue = store
        .raise_issue(
            a,
            issue(g, Some(w.node.id), "VERSION_MISMATCH", Severity::Warning),
            t(150),
        )
        .await
        .unwrap();
    assert_ne!(
        node_issue.id, first.id,
        "a node-scoped issue is a separate issue"
    );
    let listed = store.issues(a, g).await.unwrap();
    assert_eq!(
        listed.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![first.id, node_issue.id]
    );
    assert_eq!(listed[0], second);
    assert!(
        store
            .clear_issue(a, g, None, "VERSION_MISMATCH", t(300))
            .await
            .unwrap()
    );
    assert!(
        !store
            .clear_issue(a, g, None, "VERSION_MISMATCH", t(300))
            .await
            .unwrap()
    );
    assert_eq!(store.issues(a, g).await.unwrap(), vec![node_issue.clone()]);
    let reraised = store
        .raise_issue(
            a,
            issue(g, None, "VERSION_MISMATCH", Severity::Warning),
            t(400),
        )
        .await
        .unwrap();
    assert_ne!(reraised.id, first.id, "a cleared issue is not reopened");

    // Status: history only on change.
    assert!(
        store
            .set_gateway_status(a, g, st("starting", None), t(10))
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_gateway_status(a, g, st("starting", None), t(11))
            .await
            .unwrap()
    );
    assert!(
        store
            .set_gateway_status(a, g, st("offline", Some("failed_start")), t(20))
            .await
            .unwrap()
    );
    assert!(
        store
            .set_gateway_status(a, g, st("offline", Some("lost_contact")), t(30))
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_gateway_status(a, g, st("offline", Some("lost_contact")), t(31))
            .await
            .unwrap()
    );
    let history = store.gateway_status_history(a, g, 10).await.unwrap();
    let states: Vec<_> = history
        .iter()
        .map(|s| {
            let variant = s.status.variant.map(|v| v.as_str());
            (s.status.state.as_str(), variant, s.since)
        })
        .collect();
    assert_eq!(
        states,
        [
            ("offline", Some("lost_contact"), t(30)),
            ("offline", Some("failed_start"), t(20)),
            ("starting", None, t(10))
        ]
    );
    let generation = async || store.gateway_config_input(a, g).await.unwrap().generation;
    assert_eq!(generation().await, 0);
    // Checked changes lock the gateway row without bumping it.
    store
        .update_environment_paths(a, w.env.id, w.env.paths.clone(), audit("p"), ok2)
        .await
        .unwrap();
    assert_eq!(generation().await, 0);

    store
        .remove_node(a, w.node.id, audit("node.remove"))
        .await
        .unwrap();
    assert!(store.nodes(a, g).await.unwrap().is_empty());
}

async fn concurrent_generation_bumps_are_distinct(store: &Store) {
    let w = world(store, "Acme").await;
    // Concurrent creates with the same name: exactly one wins, the rest are conflicts.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let a = w.account.id;
        tasks.push(tokio::spawn(async move {
            store
                .create_gateway(a, NewGateway::named("race"), audit("gateway.create"))
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict {
                what: ConflictKind::GatewayName,
            }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
}

async fn closed_store_is_unavailable(store: &Store) {
    store.ping().await.unwrap();
    store.close().await;
    let started = Instant::now();
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.accounts().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.create_account("x", audit("account.create")).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
}

async fn seeded_overview(store: &Store) {
    let acme = account(store, "Acme").await;
    let started = Instant::now();
    seed::seed_account(store, acme.id, seed::SeedShape::BENCH, t(1_000))
        .await
        .unwrap();
    let seeded = started.elapsed();
    let started = Instant::now();
    let o = store
        .gateways_overview(acme.id, GatewayView::Enabled, OverviewFilter::default())
        .await
        .unwrap();
    let listed = started.elapsed();
    eprintln!(
        "{:?}: seeded in {seeded:?}, overview in {listed:?}",
        store.backend()
    );
    assert_eq!(o.gateways.len(), 1_000);
    assert!(o.gateways.iter().all(|r| r.environments.len() == 3));
    assert_eq!(o.unattached.len(), 100);
    assert_eq!(o.gateways[0].gateway.name, "gw-0000");
    assert_eq!(o.gateways[0].nodes[0].0.host_name, "host-0000-0");
    assert_eq!(
        o.gateways.iter().filter(|r| !r.issues.is_empty()).count(),
        100
    );
    let started = Instant::now();
    let searched = store
        .gateways_overview(
            acme.id,
            GatewayView::Enabled,
            OverviewFilter::search("GW-01"),
        )
        .await
        .unwrap();
    let searched_in = started.elapsed();
    let started = Instant::now();
    let one = store
        .gateways_overview(
            acme.id,
            GatewayView::Enabled,
            OverviewFilter::gateway(o.gateways[40].gateway.id),
        )
        .await
        .unwrap();
    eprintln!(
        "{:?}: searched in {searched_in:?}, one gateway in {:?}",
        store.backend(),
        started.elapsed()
    );
    assert_eq!(shown(&searched), shown(&o.clone().filter("GW-01")));
    assert_eq!(searched.gateways.len(), 100);
    assert_eq!(one.gateways.len(), 1);
    assert_eq!(shown(&one), shown(&o.clone().filter("gw-0040")));
    assert_eq!(
        shown(&one),
        "gw-0040[gw-0040-env-0,gw-0040-env-1,gw-0040-env-2]1n1i | "
    );
    assert!(one.unattached.is_empty());
    assert_eq!(o.filter("gw-0042").gateways.len(), 1);
}

// ---- backend-specific ------------------------------------------------------------------

#[tokio::test]
async fn postgres_that_is_down_is_unavailable_quickly() {
    let options = StoreOptions {
        acquire_timeout: Duration::from_secs(1),
        ..StoreOptions::default()
    };
    let started = Instant::now();
    let r = Store::open("postgres://postgres@127.0.0.1:1/none", options).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unknown_url_scheme_is_a_config_error() {
    let r = Store::open("mysql://localhost/x", StoreOptions::default()).await;
    assert!(matches!(r, Err(StoreError::Config(_))), "{r:?}");
}

#[tokio::test]
async fn sqlite_file_and_directory_are_created_reopened_and_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("nested.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(&url, StoreOptions::default()).await.unwrap();
    let acme = account(&store, "Acme").await;
    store.close().await;
    assert!(path.exists());
    let store = Store::open(&url, StoreOptions::default()).await.unwrap();
    assert_eq!(store.account(acme.id).await.unwrap(), acme);
    assert_eq!(store.backend(), BackendKind::Sqlite);
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let store = Store::open("sqlite::memory:", StoreOptions::default())
        .await
        .unwrap();
    let acme = account(&store, "Acme").await;
    assert_eq!(store.accounts().await.unwrap(), vec![acme]);
}

async fn sessions(store: &Store) {
    let acme = account(store, "Acme").await;
    let user = store
        .create_user(
            NewUser {
                account_id: Some(acme.id),
                name: "alice".into(),
                email: Some("alice@example.com".into()),
                role: Role::Owner,
                platform_admin: false,
                password_hash: None,
            },
            audit("user.create"),
        )
        .await
        .unwrap();
    let session = store
        .create_session(user.id, "cookie-hash", t(10_000), audit("session.create"))
        .await
        .unwrap();
    let (found, who) = store
        .find_session("cookie-hash", t(5_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found, who), (session.clone(), user.clone()));
    assert!(
        store
            .find_session("cookie-hash", t(10_000))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        store
            .find_session("other", t(5_000))
            .await
            .unwrap()
            .is_none()
    );
    assert_conflict(
        store
            .create_session(user.id, "cookie-hash", t(10_000), audit("session.create"))
            .await,
        ConflictKind::TokenHash,
    );
    assert_not_found(
        store
            .create_session(UserId::new_v7(), "x", t(10_000), audit("session.create"))
            .await,
    );
    assert_eq!(
        store.audit_records(acme.id, None, 1).await.unwrap()[0].action,
        "session.create"
    );

    store
        .create_session(user.id, "second", t(20_000), audit("session.create"))
        .await
        .unwrap();
    assert_eq!(store.delete_expired_sessions(t(10_000)).await.unwrap(), 1);
    assert!(
        store
            .find_session("second", t(15_000))
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.delete_session("second").await.unwrap());
    assert!(!store.delete_session("second").await.unwrap());
    store
        .create_session(user.id, "third", t(20_000), audit("session.create"))
        .await
        .unwrap();
    assert_eq!(store.delete_user_sessions(user.id).await.unwrap(), 1);
}

async fn environment_migrations(store: &Store) {
    let w = world(store, "Acme").await;
    let a = w.account.id;
    let dest = store
        .create_gateway(a, NewGateway::named("dest"), audit("gateway.create"))
        .await
        .unwrap();
    let state = serde_json::json!({"step": 1, "paths": {"rest": "ws/rest"}});
    let m = store
        .create_migration(
            a,
            w.env.id,
            Some(dest.id),
            state.clone(),
            audit("migration.create"),
        )
        .await
        .unwrap();
    assert_eq!(
        (m.from_gateway_id, m.to_gateway_id),
        (Some(w.gateway.id), Some(dest.id))
    );
    assert_eq!(m.state, state);
    assert_eq!(store.migration(a, m.id).await.unwrap(), m);
    assert_eq!(
        store.migrations_in_progress(a).await.unwrap(),
        vec![m.clone()]
    );
    assert_conflict(
        store
            .create_migration(
                a,
                w.env.id,
                None,
                serde_json::json!({}),
                audit("migration.create"),
            )
            .await,
        ConflictKind::MigrationInProgress,
    );
    assert_not_found(
        store
            .create_migration(
                a,
                w.env.id,
                Some(GatewayId::new_v7()),
                serde_json::json!({}),
                audit("migration.create"),
            )
            .await,
    );

    // Another account sees nothing and can touch nothing.
    let other = account(store, "Other").await;
    assert_not_found(store.migration(other.id, m.id).await);
    assert!(
        store
            .migrations_in_progress(other.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_not_found(
        store
            .update_migration(
                other.id,
                m.id,
                None,
                serde_json::json!({}),
                audit("migration.update"),
            )
            .await,
    );
    assert_not_found(
        store
            .delete_migration(other.id, m.id, audit("migration.delete"))
            .await,
    );
    assert_not_found(store_err(
        store
            .complete_migration(
                other.id,
                m.id,
                "OK",
                moved(),
                serde_json::json!({}),
                audit("migration.complete"),
                ok2,
            )
            .await,
    ));
    assert_not_found(
        store
            .create_migration(
                other.id,
                w.env.id,
                None,
                serde_json::json!({}),
                audit("migration.create"),
            )
            .await,
    );

    // Saving a step.
    let mut later = audit("migration.update");
    later.at = t(2_000);
    let step2 = serde_json::json!({"step": 2});
    let m2 = store
        .update_migration(a, m.id, Some(dest.id), step2.clone(), later)
        .await
        .unwrap();
    assert_eq!(
        (m2.state.clone(), m2.updated_at, m2.created_at),
        (step2, t(2_000), m.created_at)
    );

    // A refused check completes nothing; an accepted one moves the environment.
    let refused = store
        .complete_migration(
            a,
            m.id,
            "OK",
            moved(),
            serde_json::json!({}),
            audit("migration.complete"),
            |_, _| Err("PATH_CONFLICT"),
        )
        .await;
    assert!(matches!(refused, Err(Checked::Rejected("PATH_CONFLICT"))));
    assert!(
        store
            .migration(a, m.id)
            .await
            .unwrap()
            .completed_at
            .is_none()
    );
    let done = store
        .complete_migration(
            a,
            m.id,
            "OK_WITH_WARNINGS",
            moved(),
            serde_json::json!({}),
            audit("migration.complete"),
            |env, routes| {
                assert_eq!(env.gateway_id, Some(w.gateway.id));
                assert_eq!(routes.unwrap().gateway_id, dest.id);
                Ok::<(), Infallible>(())
            },
        )
        .await
        .unwrap();
    assert_eq!(done.result.as_deref(), Some("OK_WITH_WARNINGS"));
    assert_eq!(done.completed_at, Some(t(1_000)));
    assert_eq!(
        store.environment(a, w.env.id).await.unwrap().gateway_id,
        Some(dest.id)
    );
    assert!(store.migrations_in_progress(a).await.unwrap().is_empty());
    assert_conflict(
        store
            .update_migration(
                a,
                m.id,
                None,
                serde_json::json!({}),
                audit("migration.update"),
            )
            .await,
        ConflictKind::MigrationCompleted,
    );
    assert_conflict(
        store_err(
            store
                .complete_migration(
                    a,
                    m.id,
                    "OK",
                    moved(),
                    serde_json::json!({}),
                    audit("migration.complete"),
                    ok2,
                )
                .await,
        ),
        ConflictKind::MigrationCompleted,
    );

    // A new migration may start once the previous one completed; an ERROR leaves it alone.
    let off = store
        .create_migration(
            a,
            w.env.id,
            None,
            serde_json::json!({}),
            audit("migration.create"),
        )
        .await
        .unwrap();
    assert_eq!(off.from_gateway_id, Some(dest.id));
    store
        .complete_migration(
            a,
            off.id,
            "ERROR",
            MigrationOutcome::Unchanged,
            serde_json::json!({}),
            audit("migration.complete"),
            ok2,
        )
        .await
        .unwrap();
    assert_eq!(
        store.environment(a, w.env.id).await.unwrap().gateway_id,
        Some(dest.id)
    );
    let off = store
        .create_migration(
            a,
            w.env.id,
            None,
            serde_json::json!({}),
            audit("migration.create"),
        )
        .await
        .unwrap();
    store
        .delete_migration(a, off.id, audit("migration.delete"))
        .await
        .unwrap();
    assert_not_found(store.migration(a, off.id).await);
    let actions: Vec<_> = store
        .audit_records(a, None, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        ["migration.delete", "migration.create", "migration.complete"]
    );
}

/// SPEC §7 make-before-break in the store: a running cut-over puts the environment (with its
/// destination paths) and its deployments into the destination's configuration input while
/// the source keeps it; completing moves it and leaves the source a redirect of its old
/// paths until the grace period ends; an ERROR completion or a deletion ends the cut-over.
async fn migration_cutover_and_redirects(store: &Store) {
    let w = world(store, "Acme").await;
    let a = w.account.id;
    let dest = store
        .create_gateway(a, NewGateway::named("dest"), audit("gateway.create"))
        .await
        .unwrap();
    let new_paths = EnvironmentPaths {
        rest: "p/rest".into(),
        soap: "p/soap".into(),
        soap12: "p/soap12".into(),
        odata: "p/odata".into(),
    };
    let env_ids = |input: &GatewayConfigInput| -> Vec<EnvironmentId> {
        input.environments.iter().map(|e| e.id).collect()
    };
    let m = store
        .create_migration(
            a,
            w.env.id,
            Some(dest.id),
            serde_json::json!({}),
            audit("m"),
        )
        .await
        .unwrap();
    assert!(env_ids(&store.gateway_config_input(a, dest.id).await.unwrap()).is_empty());

    // A refused check starts nothing.
    let refused = store
        .start_cutover(a, m.id, &new_paths, t(5_000), |_, _| Err("CONFLICT"))
        .await;
    assert!(matches!(refused, Err(Checked::Rejected("CONFLICT"))));
    assert!(env_ids(&store.gateway_config_input(a, dest.id).await.unwrap()).is_empty());

    let started = store
        .start_cutover(a, m.id, &new_paths, t(5_000), |env, routes| {
            assert_eq!(env.gateway_id, Some(w.gateway.id));
            assert_eq!(routes.unwrap().gateway_id, dest.id);
            Ok::<(), Infallible>(())
        })
        .await
        .unwrap();
    assert!(started.completed_at.is_none());
    let on_dest = store.gateway_config_input(a, dest.id).await.unwrap();
    assert_eq!(env_ids(&on_dest), vec![w.env.id]);
    assert_eq!(on_dest.environments[0].paths, new_paths);
    assert_eq!(on_dest.environments[0].gateway_id, Some(dest.id));
    assert_eq!(on_dest.deployments.len(), 1);
    assert_eq!(on_dest.apis[0].id, w.api.id);
    // The source still serves it, with its old paths.
    let on_source = store.gateway_config_input(a, w.gateway.id).await.unwrap();
    assert_eq!(env_ids(&on_source), vec![w.env.id]);
    assert_eq!(on_source.environments[0].paths, EnvironmentPaths::default());
    assert!(on_source.redirects.is_empty());

    // Completed: moved with the new paths; the source redirects the old ones.
    let until = Timestamp(i64::MAX / 2);
    let done = store
        .complete_migration(
            a,
            m.id,
            "OK",
            MigrationOutcome::Applied {
                paths: new_paths.clone(),
                redirect: Some(CutoverRedirect {
                    location: "https://dest.example.com".into(),
                    until,
                }),
            },
            serde_json::json!({"done": true}),
            audit("migration.migrate"),
            ok2,
        )
        .await
        .unwrap();
    assert_eq!(done.state, serde_json::json!({"done": true}));
    let env = store.environment(a, w.env.id).await.unwrap();
    assert_eq!(
        (env.gateway_id, env.paths.clone()),
        (Some(dest.id), new_paths.clone())
    );
    let on_dest = store.gateway_config_input(a, dest.id).await.unwrap();
    assert_eq!(
        env_ids(&on_dest),
        vec![w.env.id],
        "once, no longer as a cut-over"
    );
    let on_source = store.gateway_config_input(a, w.gateway.id).await.unwrap();
    assert!(env_ids(&on_source).is_empty());
    assert_eq!(
        on_source.redirects,
        vec![model::migration::Redirect {
            paths: EnvironmentPaths::default(),
            location: "https://dest.example.com".into(),
            until,
        }]
    );
    assert_eq!(
        store.completed_migrations(a).await.unwrap(),
        vec![done.clone()]
    );

    // Back to the first gateway, but the cut-over fails: nothing changes and it ends.
    let back = store
        .create_migration(
            a,
            w.env.id,
            Some(w.gateway.id),
            serde_json::json!({}),
            audit("m"),
        )
        .await
        .unwrap();
    store
        .start_cutover(a, back.id, &EnvironmentPaths::default(), t(6_000), ok2)
        .await
        .unwrap();
    let on_source = store.gateway_config_input(a, w.gateway.id).await.unwrap();
    assert_eq!(env_ids(&on_source), vec![w.env.id], "cut-over back running");
    let failed = store
        .complete_migration(
            a,
            back.id,
            "ERROR",
            MigrationOutcome::Unchanged,
            serde_json::json!({}),
            audit("migration.migrate"),
            ok2,
        )
        .await
        .unwrap();
    assert_eq!(failed.result.as_deref(), Some("ERROR"));
    assert!(env_ids(&store.gateway_config_input(a, w.gateway.id).await.unwrap()).is_empty());
    assert_eq!(
        store.environment(a, w.env.id).await.unwrap().gateway_id,
        Some(dest.id)
    );
    let history = store.completed_migrations(a).await.unwrap();
    assert_eq!(history.len(), 2);

    // A deleted migration ends its cut-over too; an expired redirect is gone.
    let again = store
        .create_migration(
            a,
            w.env.id,
            Some(w.gateway.id),
            serde_json::json!({}),
            audit("m"),
        )
        .await
        .unwrap();
    store
        .start_cutover(a, again.id, &EnvironmentPaths::default(), t(7_000), ok2)
        .await
        .unwrap();
    store
        .delete_migration(a, again.id, audit("migration.delete"))
        .await
        .unwrap();
    assert!(env_ids(&store.gateway_config_input(a, w.gateway.id).await.unwrap()).is_empty());
    let off = store
        .create_migration(a, w.env.id, None, serde_json::json!({}), audit("m"))
        .await
        .unwrap();
    assert_conflict(
        store_err(
            store
                .start_cutover(a, off.id, &EnvironmentPaths::default(), t(8_000), ok2)
                .await,
        ),
        ConflictKind::Reference,
    );
    store
        .complete_migration(
            a,
            off.id,
            "OK",
            MigrationOutcome::Applied {
                paths: EnvironmentPaths::default(),
                redirect: Some(CutoverRedirect {
                    location: "https://nowhere.example.com".into(),
                    until: t(1),
                }),
            },
            serde_json::json!({}),
            audit("migration.migrate"),
            ok2,
        )
        .await
        .unwrap();
    assert_eq!(
        store.environment(a, w.env.id).await.unwrap().gateway_id,
        None
    );
    let on_dest = store.gateway_config_input(a, dest.id).await.unwrap();
    assert!(
        on_dest.redirects.is_empty(),
        "expired: {:?}",
        on_dest.redirects
    );
}

async fn startup_properties_and_status_job_input(store: &Store) {
    let w = world(store, "Acme").await;
    let a = w.account.id;
    let props = serde_json::json!({"os": "linux", "cpus": 4});
    store
        .set_node_startup_properties(a, w.node.id, &props, t(7_000))
        .await
        .unwrap();
    let got = store.startup_properties(a, w.gateway.id).await.unwrap();
    assert_eq!(
        got,
        vec![StartupProperties {
            node_id: w.node.id,
            properties: props,
            reported_at: t(7_000)
        }]
    );
    let other = account(store, "Other").await;
    assert_not_found(
        store
            .set_node_startup_properties(other.id, w.node.id, &serde_json::json!({}), t(1))
            .await,
    );
    assert!(
        store
            .startup_properties(other.id, w.gateway.id)
            .await
            .unwrap()
            .is_empty()
    );

    let og = store
        .create_gateway(other.id, NewGateway::named("og"), audit("gateway.create"))
        .await
        .unwrap();
    let gone = store
        .create_gateway(a, NewGateway::named("gone"), audit("gateway.create"))
        .await
        .unwrap();
    store
        .upsert_node(a, &node_on(gone.id, "gone-host", 1))
        .await
        .unwrap();
    store
        .delete_gateway(a, gone.id, audit("gateway.delete"))
        .await
        .unwrap();
    let live = store.gateway_status_inputs().await.unwrap();
    let mut ids: Vec<_> = live.iter().map(|g| g.gateway.id).collect();
    ids.sort();
    let mut want = vec![w.gateway.id, og.id];
    want.sort();
    assert_eq!(ids, want, "every account's live gateways, no deleted ones");
    let mine = live.iter().find(|g| g.gateway.id == w.gateway.id).unwrap();
    assert_eq!(
        mine.nodes.iter().map(|n| n.node.id).collect::<Vec<_>>(),
        vec![w.node.id]
    );
}

async fn concurrent_deletes_and_attachments_stay_consistent(store: &Store) {
    let acme = account(store, "Acme").await;
    let a = acme.id;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let gw = store
            .create_gateway(
                a,
                NewGateway::named(format!("g{i}")),
                audit("gateway.create"),
            )
            .await
            .unwrap();
        let attached = store
            .create_environment(a, new_env(&format!("on-{i}")), audit("e"))
            .await
            .unwrap();
        store
            .set_environment_gateway(a, attached.id, Some(gw.id), audit("attach"), ok2)
            .await
            .unwrap();
        let loose = store
            .create_environment(a, new_env(&format!("loose-{i}")), audit("e"))
            .await
            .unwrap();
        let api = store
            .create_api(a, new_api(&format!("api-{i}"), "x"), audit("api.create"))
            .await
            .unwrap();
        let (s1, s2, s3, s4) = (store.clone(), store.clone(), store.clone(), store.clone());
        tasks.push(tokio::spawn(async move {
            s1.delete_gateway(a, gw.id, audit("gateway.delete"))
                .await
                .map(|_| ())
        }));
        tasks.push(tokio::spawn(async move {
            let paths = EnvironmentPaths {
                rest: "moved/rest".into(),
                ..EnvironmentPaths::default()
            };
            s2.update_environment_paths(a, attached.id, paths, audit("p"), ok2)
                .await
                .map(|_| ())
                .map_err(|e| e.into_store().unwrap())
        }));
        tasks.push(tokio::spawn(async move {
            s3.set_environment_gateway(a, loose.id, Some(gw.id), audit("attach"), ok2)
                .await
                .map(|_| ())
                .map_err(|e| e.into_store().unwrap())
        }));
        tasks.push(tokio::spawn(async move {
            let new = NewDeployment {
                api_id: api.id,
                environment_id: attached.id,
                custom_path: None,
                status: DeploymentStatus::SentToGateway,
            };
            s4.create_deployment(a, new, audit("deploy"), ok)
                .await
                .map(|_| ())
                .map_err(|e| e.into_store().unwrap())
        }));
    }
    for task in tasks {
        match task.await.unwrap() {
            // Attaching to a gateway deleted first is NotFound; nothing else may fail.
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let deleted: Vec<GatewayId> = store
        .gateways(a, GatewayView::Deleted)
        .await
        .unwrap()
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(deleted.len(), 12);
    for env in store.environments(a).await.unwrap() {
        assert_eq!(
            env.gateway_id, None,
            "{} attached to a deleted gateway",
            env.name
        );
    }
}

async fn notices_reach_every_listener(store: &Store) {
    let mut first = store.listen().await.unwrap();
    let mut second = store.clone().listen().await.unwrap();
    store.notify("gateway 1 generation 2").await.unwrap();
    store.notify("gateway 1 generation 3").await.unwrap();
    for listener in [&mut first, &mut second] {
        for want in ["gateway 1 generation 2", "gateway 1 generation 3"] {
            let got = tokio::time::timeout(Duration::from_secs(5), listener.recv())
                .await
                .expect("notice within 5 s")
                .unwrap();
            assert_eq!(got.as_deref(), Some(want));
        }
    }
    let too_long = "x".repeat(MAX_NOTICE_BYTES + 1);
    assert!(matches!(
        store.notify(&too_long).await,
        Err(StoreError::Config(_))
    ));
}

async fn link_publish_and_status_inputs(store: &Store) {
    let w = world(store, "Acme").await;
    let (a, g) = (w.account.id, w.gateway.id);

    // First publish bumps; the same digest does not; a new digest does.
    let first = store
        .publish_gateway_config(a, g, t(10), |_| "d1".into())
        .await
        .unwrap();
    assert!(first.bumped);
    assert_eq!(first.input.generation, 1);
    assert_eq!(first.input.environments, vec![w.env.clone()]);
    assert_eq!(first.input.apis, vec![w.api.clone()]);
    assert_eq!(first.input.deployments, vec![w.deployment.clone()]);
    let same = store
        .publish_gateway_config(a, g, t(20), |_| "d1".into())
        .await
        .unwrap();
    assert!(!same.bumped);
    assert_eq!(
        (same.input.generation, same.input.published_at),
        (1, Some(t(10)))
    );
    let changed = store
        .publish_gateway_config(a, g, t(30), |_| "d2".into())
        .await
        .unwrap();
    assert!(changed.bumped);
    assert_eq!(changed.input.generation, 2);
    let input = store.gateway_config_input(a, g).await.unwrap();
    assert_eq!(
        (
            input.generation,
            input.digest.as_deref(),
            input.published_at
        ),
        (2, Some("d2"), Some(t(30)))
    );

    let other = account(store, "Other").await;
    assert_not_found(
        store
            .publish_gateway_config(other.id, g, t(40), |_| "x".into())
            .await,
    );
    assert_not_found(store.gateway_config_input(other.id, g).await);
    assert!(store.live_gateway_ids(other.id).await.unwrap().is_empty());
    assert_eq!(store.live_gateway_ids(a).await.unwrap(), vec![g]);
    assert_eq!(store.gateway_account(g).await.unwrap(), a);

    // Node status records survive and come back with the status-job input.
    let record = serde_json::json!({"state": "online"});
    let mut online = status_write(a, w.node.id, Some(report("online", 50)));
    online.report.as_mut().unwrap().applied_generation = Some(2);
    online.record = record.clone();
    assert_eq!(store.save_node_statuses(&[online]).await.unwrap(), 1);
    // Not a node of the other account: nothing written.
    assert_eq!(save_status(store, other.id, w.node.id, None).await, 0);
    store
        .raise_issue(a, issue(g, None, "NO_NODES", Severity::Warning), t(60))
        .await
        .unwrap();
    let inputs = store.gateway_status_inputs().await.unwrap();
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0].generation, 2);
    assert_eq!(inputs[0].nodes.len(), 1);
    assert_eq!(inputs[0].nodes[0].record, Some(record));
    assert_eq!(inputs[0].nodes[0].reported_state, Some(rs("online")));
    assert_eq!(inputs[0].nodes[0].node.applied_generation, Some(2));
    let issues = store.all_active_issues().await.unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].0, a);

    // A deleted gateway leaves every link read.
    store
        .delete_gateway(a, g, audit("gateway.delete"))
        .await
        .unwrap();
    assert_not_found(store.gateway_config_input(a, g).await);
    assert_not_found(store.gateway_account(g).await);
    assert!(store.gateway_status_inputs().await.unwrap().is_empty());
    assert!(store.all_active_issues().await.unwrap().is_empty());
}

/// A node id is registered once: a second join (same gateway, another one, another account)
/// is a `ConflictKind::NodeId` that writes nothing; a link start cannot move it either; removing
/// it revokes its credentials and frees the id.
async fn joins_never_move_a_node(store: &Store) {
    let w = world(store, "Acme").await;
    let a = w.account.id;
    let second = store
        .create_gateway(a, NewGateway::named("second"), audit("gateway.create"))
        .await
        .unwrap();
    let fresh = Node {
        id: NodeId::new_v7(),
        applied_generation: None,
        ..w.node.clone()
    };
    let (joined, credential) = store
        .join_node(a, &fresh, "hash-1", audit("node.join"))
        .await
        .unwrap();
    assert_eq!((joined.id, credential.node_id), (fresh.id, Some(fresh.id)));
    assert!(store.node_registered(fresh.id).await.unwrap());
    let audits = audit_count(store, a).await;
    let moved = Node {
        gateway_id: second.id,
        ..fresh.clone()
    };
    assert_conflict(
        store
            .join_node(a, &moved, "hash-2", audit("node.join"))
            .await,
        ConflictKind::NodeId,
    );
    assert_conflict(
        store
            .join_node(a, &fresh, "hash-3", audit("node.join"))
            .await,
        ConflictKind::NodeId,
    );
    let other = account(store, "Other").await;
    let og = store
        .create_gateway(other.id, NewGateway::named("gw"), audit("gateway.create"))
        .await
        .unwrap();
    let theirs = Node {
        gateway_id: og.id,
        ..fresh.clone()
    };
    assert_conflict(
        store
            .join_node(other.id, &theirs, "hash-4", audit("node.join"))
            .await,
        ConflictKind::NodeId,
    );
    // Nothing was written by the refusals: no credential, no audit record.
    assert_eq!(audit_count(store, a).await, audits);
    for hash in ["hash-2", "hash-3", "hash-4"] {
        assert!(store.find_node_credential(hash).await.unwrap().is_none());
    }
    // A link start of the node with another gateway does not move it.
    assert_conflict(store.upsert_node(a, &moved).await, ConflictKind::NodeId);
    let first_nodes = store.nodes(a, w.gateway.id).await.unwrap();
    assert!(first_nodes.iter().any(|(n, _)| n.id == fresh.id));
    assert!(store.nodes(a, second.id).await.unwrap().is_empty());
    // Two joins racing for one id: exactly one wins.
    let racer = Node {
        id: NodeId::new_v7(),
        ..fresh.clone()
    };
    let racer_elsewhere = Node {
        gateway_id: second.id,
        ..racer.clone()
    };
    let (x, y) = tokio::join!(
        store.join_node(a, &racer, "race-1", audit("node.join")),
        store.join_node(a, &racer_elsewhere, "race-2", audit("node.join")),
    );
    assert_eq!(u8::from(x.is_ok()) + u8::from(y.is_ok()), 1, "{x:?} {y:?}");
    // Removed: its credential is revoked and the id can join again.
    store
        .remove_node(a, fresh.id, audit("node.remove"))
        .await
        .unwrap();
    assert!(
        store
            .find_node_credential("hash-1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.node_registered(fresh.id).await.unwrap());
    store
        .join_node(a, &moved, "hash-5", audit("node.join"))
        .await
        .unwrap();
}

/// Publishing records the first generation that contains each deployment on its gateway,
/// keeps it across later generations, and forgets it when the environment leaves.
async fn publication_records_the_generation_containing_a_deployment(store: &Store) {
    let w = world(store, "Acme").await;
    let a = w.account.id;
    let g = w.gateway.id;
    let publications = || async { store.deployment_publications(a, w.api.id).await.unwrap() };
    assert_eq!(publications().await, [(w.deployment.id, None)]);
    let first = store
        .publish_gateway_config(a, g, t(2_000), |_| "d1".into())
        .await
        .unwrap();
    assert_eq!(first.input.generation, 1);
    assert_eq!(publications().await, [(w.deployment.id, Some((g, 1)))]);
    store
        .publish_gateway_config(a, g, t(3_000), |_| "d2".into())
        .await
        .unwrap();
    assert_eq!(publications().await, [(w.deployment.id, Some((g, 1)))]);
    store
        .set_environment_gateway(a, w.env.id, None, audit("environment.detach"), ok2)
        .await
        .unwrap();
    store
        .publish_gateway_config(a, g, t(4_000), |_| "d3".into())
        .await
        .unwrap();
    assert_eq!(publications().await, [(w.deployment.id, None)]);
    store
        .set_environment_gateway(a, w.env.id, Some(g), audit("environment.attach"), ok2)
        .await
        .unwrap();
    let again = store
        .publish_gateway_config(a, g, t(5_000), |_| "d4".into())
        .await
        .unwrap();
    assert_eq!(
        publications().await,
        [(w.deployment.id, Some((g, again.input.generation)))]
    );
}

/// `save_node_statuses` writes what `save_node_status` would, for many nodes at once (more
/// than one statement's worth), skipping nodes of another account.
async fn batched_node_status_writes(store: &Store) {
    let w = world(store, "Acme").await;
    let (a, g) = (w.account.id, w.gateway.id);
    let other = world(store, "Other").await;
    assert_eq!(store.save_node_statuses(&[]).await.unwrap(), 0);

    // A node that applied generation 4 before: a report without a generation keeps it.
    let mut starting = status_write(a, w.node.id, Some(report("starting", 2_000)));
    starting.report.as_mut().unwrap().applied_generation = Some(4);
    starting.record = serde_json::json!({"n": 0});
    assert_eq!(store.save_node_statuses(&[starting]).await.unwrap(), 1);
    let mut nodes = vec![w.node.id];
    for i in 0..STATUS_WRITES_PER_STATEMENT + 2 {
        let n = store
            .upsert_node(a, &node_on(g, &format!("h{i}"), 1_000))
            .await
            .unwrap();
        nodes.push(n.id);
    }
    let write = |node: NodeId, i: usize, report: Option<NodeReport>| NodeStatusWrite {
        account: a,
        node,
        report,
        record: serde_json::json!({"n": i}),
    };
    let mut writes: Vec<NodeStatusWrite> = nodes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut r = report("online", 3_000 + i as i64);
            r.applied_generation = (i % 2 == 1).then_some(i as u64);
            write(n, i, Some(r))
        })
        .collect();
    // The last node only gets a new record: its reported state stays what it was.
    let last = *nodes.last().unwrap();
    assert_eq!(
        save_status(store, a, last, Some(report("stopping", 2_500))).await,
        1
    );
    writes.pop();
    writes.push(write(last, nodes.len() - 1, None));
    // A node of another account, with this account: not written.
    writes.push(write(other.node.id, 9_999, Some(report("stopped", 9_999))));
    // Repeated: the last write of a node wins.
    writes.insert(0, write(nodes[1], 7_777, Some(report("stopped", 7_777))));
    assert_eq!(
        store.save_node_statuses(&writes).await.unwrap(),
        nodes.len() as u64
    );

    let inputs = store.gateway_status_inputs().await.unwrap();
    let ours = inputs.iter().find(|i| i.gateway.id == g).unwrap();
    assert_eq!(ours.nodes.len(), nodes.len());
    for (i, &n) in nodes.iter().enumerate() {
        let row = ours.nodes.iter().find(|r| r.node.id == n).unwrap();
        assert_eq!(row.record, Some(serde_json::json!({"n": i})), "node {i}");
        if n == last {
            assert_eq!(row.reported_state, Some(rs("stopping")));
            assert_eq!(row.node.last_seen, Some(t(2_500)));
            continue;
        }
        assert_eq!(row.reported_state, Some(rs("online")), "node {i}");
        assert_eq!(row.node.last_seen, Some(t(3_000 + i as i64)), "node {i}");
        let applied = match i {
            0 => Some(4),
            i if i % 2 == 1 => Some(i as u64),
            _ => None,
        };
        assert_eq!(row.node.applied_generation, applied, "node {i}");
    }
    let theirs = inputs
        .iter()
        .find(|i| i.gateway.id == other.gateway.id)
        .unwrap();
    assert_eq!(theirs.nodes[0].record, None);
    assert_eq!(theirs.nodes[0].reported_state, None);
}

async fn audit_records_filtered_by_actor_action_result_and_time(store: &Store) {
    let acme = account(store, "Acme").await.id;
    let other = account(store, "Other").await.id;
    let user = Actor::User(UserId::new_v7());
    let day = 86_400_000;
    for (actor, action, result, at) in [
        (user, "environment.create", AuditResult::Allowed, 1_000),
        (Actor::System, "gateway.delete", AuditResult::Denied, 2_000),
        (user, "environment.update", AuditResult::Failed, 3_000),
        (user, "api.create", AuditResult::Allowed, day + 5),
    ] {
        store
            .append_audit(Some(acme), Audit::new(actor, action, t(at)), result)
            .await
            .unwrap();
    }
    store
        .append_audit(
            Some(other),
            Audit::new(user, "environment.create", t(1_000)),
            AuditResult::Allowed,
        )
        .await
        .unwrap();
    let actions = |filter: AuditFilter| async move {
        store
            .audit_records_filtered(acme, &filter, None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.action != "account.create")
            .map(|r| r.action)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        actions(AuditFilter::default()).await,
        [
            "api.create",
            "environment.update",
            "gateway.delete",
            "environment.create"
        ]
    );
    let by_user = AuditFilter {
        actor: Some(user),
        ..AuditFilter::default()
    };
    assert_eq!(
        actions(by_user.clone()).await,
        ["api.create", "environment.update", "environment.create"]
    );
    let system = AuditFilter {
        actor: Some(Actor::System),
        ..AuditFilter::default()
    };
    assert_eq!(actions(system).await, ["gateway.delete"]);
    let environment = AuditFilter {
        action_prefix: Some("environment.".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        actions(environment.clone()).await,
        ["environment.update", "environment.create"]
    );
    // A prefix is literal: `_` and `%` match only themselves.
    let literal = AuditFilter {
        action_prefix: Some("environment_%".into()),
        ..AuditFilter::default()
    };
    assert!(actions(literal).await.is_empty());
    let denied = AuditFilter {
        result: Some(AuditResult::Denied),
        ..AuditFilter::default()
    };
    assert_eq!(actions(denied).await, ["gateway.delete"]);
    let window = AuditFilter {
        from: Some(t(2_000)),
        until: Some(t(3_001)),
        ..AuditFilter::default()
    };
    assert_eq!(
        actions(window).await,
        ["environment.update", "gateway.delete"]
    );
    let all = AuditFilter {
        actor: Some(user),
        action_prefix: Some("environment".into()),
        result: Some(AuditResult::Allowed),
        from: Some(t(0)),
        until: Some(t(day)),
    };
    assert_eq!(actions(all).await, ["environment.create"]);
    // Paged with the record id as cursor, the filter kept.
    let first = store
        .audit_records_filtered(acme, &environment, None, 1)
        .await
        .unwrap();
    assert_eq!(first[0].action, "environment.update");
    let second = store
        .audit_records_filtered(acme, &environment, Some(first[0].id), 1)
        .await
        .unwrap();
    assert_eq!(second[0].action, "environment.create");
    let rest = store
        .audit_records_filtered(acme, &environment, Some(second[0].id), 1)
        .await
        .unwrap();
    assert!(rest.is_empty());
    // Another account's records never show.
    assert_eq!(
        store
            .audit_records_filtered(other, &by_user, None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
}
