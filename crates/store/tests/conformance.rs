//! The store conformance suite: every test runs on SQLite (always) and on PostgreSQL when
//! `SWITCHYARD_TEST_POSTGRES_URL` is set, each PostgreSQL test in a fresh schema.

mod support;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use model::*;
use store::*;
use support::*;

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
    //MORE
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

fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, what: Conflict) {
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
        Conflict::AccountName,
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
    assert_eq!(store.user_by_id(alice.id).await.unwrap(), alice);
    assert_not_found(store.user(other.id, alice.id).await);
    assert_eq!(store.users(acme.id).await.unwrap(), vec![alice.clone()]);
    assert!(store.users(other.id).await.unwrap().is_empty());

    let login = store
        .user_login("ALICE@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login.user, alice);
    assert_eq!(login.password_hash.as_deref(), Some("$argon2id$hash"));
    store
        .set_password_hash(alice.id, Some("$argon2id$new"), audit("user.set_password"))
        .await
        .unwrap();
    let login = store
        .user_login("alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login.password_hash.as_deref(), Some("$argon2id$new"));
    assert_not_found(
        store
            .set_password_hash(UserId::new_v7(), None, audit("user.set_password"))
            .await,
    );

    let dup = NewUser {
        account_id: Some(other.id),
        name: "Alice again".into(),
        email: Some("Alice@Example.com".into()),
        role: Role::Viewer,
        platform_admin: false,
        password_hash: None,
    };
    assert_conflict(
        store.create_user(dup, audit("user.create")).await,
        Conflict::UserEmail,
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
    assert!(store.user_by_id(admin.id).await.unwrap().platform_admin);
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
        Conflict::TokenHash,
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
