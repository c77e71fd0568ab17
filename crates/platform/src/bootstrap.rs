//! First-run data for `switchyard up`: a platform administrator, an account `default` with an
//! owner, and a personal token for each. Idempotent: users that exist are reused.

use model::{Role, Timestamp, User};
use store::{Actor, Audit, NewApiToken, NewUser, Store, StoreError};

use crate::auth::{API_TOKEN_PREFIX, hash_secret, new_secret, shown_prefix};

/// Name of the account `switchyard up` creates.
pub const DEFAULT_ACCOUNT: &str = "default";
const ADMIN_EMAIL: &str = "admin@switchyard.local";
pub const OWNER_EMAIL: &str = "owner@switchyard.local";

/// Secrets minted by [`bootstrap`], shown once.
#[derive(Clone, Debug)]
pub struct BootstrapTokens {
    pub account_id: model::AccountId,
    pub admin_token: String,
    pub owner_token: String,
}

/// Ensures the platform administrator, the `default` account and its owner exist, and mints a
/// new token for each. Call it only when the caller has no saved tokens: existing tokens stay
/// valid, so calling it again just adds tokens.
pub async fn bootstrap(store: &Store, now: Timestamp) -> Result<BootstrapTokens, StoreError> {
    let system = |action: &str| Audit::new(Actor::System, action, now);
    let admin = match store.user_login(ADMIN_EMAIL).await? {
        Some(login) => login.user,
        None => {
            store
                .create_user(
                    NewUser {
                        account_id: None,
                        name: "Platform administrator".into(),
                        email: Some(ADMIN_EMAIL.into()),
                        role: Role::Owner,
                        platform_admin: true,
                        password_hash: None,
                    },
                    system("user.create"),
                )
                .await?
        }
    };
    let account = match store.account_by_name(DEFAULT_ACCOUNT).await? {
        Some(account) => account,
        None => {
            store
                .create_account(DEFAULT_ACCOUNT, system("account.create"))
                .await?
        }
    };
    let owner = match store.user_login(OWNER_EMAIL).await? {
        Some(login) => login.user,
        None => {
            store
                .create_user(
                    NewUser {
                        account_id: Some(account.id),
                        name: "Owner".into(),
                        email: Some(OWNER_EMAIL.into()),
                        role: Role::Owner,
                        platform_admin: false,
                        password_hash: None,
                    },
                    system("user.create"),
                )
                .await?
        }
    };
    let admin_token = mint_token(store, &admin, "switchyard up", now).await?;
    let owner_token = mint_token(store, &owner, "switchyard up", now).await?;
    Ok(BootstrapTokens {
        account_id: account.id,
        admin_token,
        owner_token,
    })
}

/// Creates a personal token for `user` and returns its secret.
pub async fn mint_token(
    store: &Store,
    user: &User,
    name: &str,
    now: Timestamp,
) -> Result<String, StoreError> {
    let secret = new_secret(API_TOKEN_PREFIX);
    store
        .create_api_token(
            NewApiToken {
                user_id: user.id,
                name: name.into(),
                prefix: shown_prefix(&secret),
                hash: hash_secret(&secret),
                expires_at: None,
            },
            Audit::new(Actor::System, "api_token.create", now),
        )
        .await?;
    Ok(secret)
}
