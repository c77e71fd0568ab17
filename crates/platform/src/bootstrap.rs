//! First-run data. `switchyard platform` on an empty database creates the platform
//! administrator and a token for it ([`bootstrap_platform_admin`]); `switchyard up` also
//! creates an account `default` with an owner ([`bootstrap`]). Idempotent: users that exist
//! are reused.

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
    let admin = ensure_platform_admin(store, now).await?;
    let account = match store.account_by_name(DEFAULT_ACCOUNT).await? {
        Some(account) => account,
        None => {
            store
                .create_account(DEFAULT_ACCOUNT, system("account.create"))
                .await?
        }
    };
    let owner = match store.user_login(Some(DEFAULT_ACCOUNT), OWNER_EMAIL).await? {
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

/// On a database without a platform administrator, creates one and answers a new token for it
/// (shown once); answers `None` when one exists already, so a restarted platform mints nothing.
/// When several processes start on one empty database at once, the one whose insert wins
/// mints the token; the others answer `None`.
pub async fn bootstrap_platform_admin(
    store: &Store,
    now: Timestamp,
) -> Result<Option<String>, StoreError> {
    if store.platform_admin_exists().await? {
        return Ok(None);
    }
    let admin = match create_platform_admin(store, now).await {
        Ok(admin) => admin,
        Err(StoreError::Conflict { .. }) => return Ok(None),
        Err(error) => return Err(error),
    };
    mint_token(store, &admin, BOOTSTRAP_TOKEN_NAME, now)
        .await
        .map(Some)
}

/// The platform administrator (created when missing) with a new token for it: the way back
/// in when its token is lost (`switchyard platform bootstrap`, run with database access).
pub async fn new_platform_admin_token(store: &Store, now: Timestamp) -> Result<String, StoreError> {
    let admin = ensure_platform_admin(store, now).await?;
    mint_token(store, &admin, BOOTSTRAP_TOKEN_NAME, now).await
}

/// Name of the tokens the bootstrap mints (seen in `GET /tokens`).
const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap";

async fn ensure_platform_admin(store: &Store, now: Timestamp) -> Result<User, StoreError> {
    match store.user_login(None, ADMIN_EMAIL).await? {
        Some(login) => Ok(login.user),
        None => create_platform_admin(store, now).await,
    }
}

async fn create_platform_admin(store: &Store, now: Timestamp) -> Result<User, StoreError> {
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
            Audit::new(Actor::System, "user.create", now),
        )
        .await
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
