//! Accounts, users, personal API tokens and the audit log.

use model::*;

use crate::audit::{Audit, AuditRecord, AuditResult, AuditTarget};
use crate::db::{Db, args};
use crate::rows::{
    AccountRefRow, AccountRow, AuditRow, IdRow, TokenRow, TokenUserRow, UserLoginRow, UserRow,
};
use crate::tx::insert_audit;
use crate::types::*;
use crate::{Store, StoreError, s};

/// Reads a user by id on `db`.
async fn user_by_id(db: &mut Db<'_>, id: UserId) -> Result<User, StoreError> {
    db.fetch_one::<UserRow>(
        concat!("SELECT ", user_cols!(), " FROM users u WHERE u.id = $1"),
        args![s(id)],
    )
    .await?
    .try_into()
}

async fn insert_account(db: &mut Db<'_>, account: &Account) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)",
        args![s(account.id), &account.name, account.created_at],
    )
    .await?;
    Ok(())
}

async fn insert_user(
    db: &mut Db<'_>,
    user: &User,
    password_hash: Option<String>,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO users (id, account_id, name, email, role, platform_admin, \
         password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            s(user.id),
            user.account_id.map(s),
            &user.name,
            &user.email,
            user.role.as_str(),
            user.platform_admin,
            password_hash,
            user.created_at,
        ],
    )
    .await?;
    Ok(())
}

async fn insert_api_token(db: &mut Db<'_>, token: &ApiToken, hash: &str) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO api_tokens (id, user_id, name, prefix, token_hash, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![
            s(token.id),
            s(token.user_id),
            &token.name,
            &token.prefix,
            hash,
            token.created_at,
            token.expires_at,
        ],
    )
    .await?;
    Ok(())
}

impl Store {
    // ---- accounts -------------------------------------------------------------------

    /// Creates an account (platform administrators only; the platform checks that).
    pub async fn create_account(
        &self,
        name: &str,
        mut audit: Audit,
    ) -> Result<Account, StoreError> {
        let account = Account {
            id: AccountId::new_v7(),
            name: name.to_owned(),
            created_at: audit.at,
        };
        audit.default_target("account", account.id);
        self.write(move |db| {
            Box::pin(async move {
                insert_account(db, &account).await?;
                insert_audit(db, Some(account.id), &audit, AuditResult::Allowed).await?;
                Ok(account)
            })
        })
        .await
    }

    /// Creates an account, its first owner and the owner's first personal token in one
    /// transaction, so a failure leaves no account without an owner. Writes three audit
    /// records (`account.create`, `user.create`, `api_token.create`) from `audit`'s actor
    /// and time; `token.user_id` is ignored (the owner is new). Added by the platform engineer
    /// for `POST /api/v1/accounts`.
    pub async fn create_account_with_owner(
        &self,
        name: &str,
        owner_name: &str,
        token: NewApiToken,
        audit: Audit,
    ) -> Result<(Account, User, ApiToken), StoreError> {
        let account = Account {
            id: AccountId::new_v7(),
            name: name.to_owned(),
            created_at: audit.at,
        };
        let user = User {
            id: UserId::new_v7(),
            account_id: Some(account.id),
            name: owner_name.to_owned(),
            email: None,
            role: Role::Owner,
            platform_admin: false,
            created_at: audit.at,
        };
        let api_token = ApiToken {
            id: TokenId::new_v7(),
            user_id: user.id,
            name: token.name,
            prefix: token.prefix,
            created_at: audit.at,
            expires_at: token.expires_at,
            revoked_at: None,
        };
        let step = |action: &str, target: AuditTarget| {
            Audit::new(audit.actor, action, audit.at).with_target(target)
        };
        let audits = [
            step("account.create", AuditTarget::new("account", account.id)),
            step("user.create", AuditTarget::new("user", user.id)),
            step(
                "api_token.create",
                AuditTarget::new("api_token", api_token.id),
            ),
        ];
        self.write(move |db| {
            Box::pin(async move {
                insert_account(db, &account).await?;
                insert_user(db, &user, None).await?;
                insert_api_token(db, &api_token, &token.hash).await?;
                for a in &audits {
                    insert_audit(db, Some(account.id), a, AuditResult::Allowed).await?;
                }
                Ok((account, user, api_token))
            })
        })
        .await
    }

    pub async fn account(&self, id: AccountId) -> Result<Account, StoreError> {
        self.one::<AccountRow, _>(
            concat!(
                "SELECT ",
                account_cols!(),
                " FROM accounts ac WHERE ac.id = $1"
            ),
            args![s(id)],
        )
        .await
    }

    /// The account with this name, compared case-insensitively.
    pub async fn account_by_name(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.optional::<AccountRow, Account>(
            concat!(
                "SELECT ",
                account_cols!(),
                " FROM accounts ac WHERE lower(ac.name) = lower($1)"
            ),
            args![name],
        )
        .await
    }

    /// All accounts, by name.
    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.all::<AccountRow, Account>(
            concat!(
                "SELECT ",
                account_cols!(),
                " FROM accounts ac ORDER BY lower(ac.name), ac.id"
            ),
            args![],
        )
        .await
    }

    // ---- users ----------------------------------------------------------------------

    pub async fn create_user(&self, new: NewUser, mut audit: Audit) -> Result<User, StoreError> {
        let user = User {
            id: UserId::new_v7(),
            account_id: new.account_id,
            name: new.name,
            email: new.email,
            role: new.role,
            platform_admin: new.platform_admin,
            created_at: audit.at,
        };
        audit.default_target("user", user.id);
        self.write(move |db| {
            Box::pin(async move {
                insert_user(db, &user, new.password_hash).await?;
                insert_audit(db, user.account_id, &audit, AuditResult::Allowed).await?;
                Ok(user)
            })
        })
        .await
    }

    /// Whether any platform administrator exists (an empty database has none).
    pub async fn platform_admin_exists(&self) -> Result<bool, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                Ok(db
                    .fetch_optional::<IdRow>(
                        "SELECT id FROM users WHERE platform_admin LIMIT 1",
                        args![],
                    )
                    .await?
                    .is_some())
            })
        })
        .await
    }

    /// A user of `account`.
    pub async fn user(&self, account: AccountId, id: UserId) -> Result<User, StoreError> {
        let user = self
            .read(move |db| Box::pin(async move { user_by_id(db, id).await }))
            .await?;
        if user.account_id == Some(account) {
            Ok(user)
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// The users of `account`, by name.
    pub async fn users(&self, account: AccountId) -> Result<Vec<User>, StoreError> {
        self.all::<UserRow, User>(
            concat!(
                "SELECT ",
                user_cols!(),
                " FROM users u WHERE u.account_id = $1 ORDER BY lower(u.name), u.id"
            ),
            args![s(account)],
        )
        .await
    }

    /// The user of the account named `account` (a platform administrator when `None`) with this
    /// e-mail address, and their password hash; names and addresses compare case-insensitively.
    /// E-mail addresses are unique only within an account, so a login always names one.
    pub async fn user_login(
        &self,
        account: Option<&str>,
        email: &str,
    ) -> Result<Option<UserLogin>, StoreError> {
        self.optional::<UserLoginRow, UserLogin>(
            concat!(
                "SELECT ",
                user_cols!(),
                ", u.password_hash FROM users u LEFT JOIN accounts a ON a.id = u.account_id \
                         WHERE lower(u.email) = lower($2) \
                         AND (($1 IS NULL AND u.account_id IS NULL) OR lower(a.name) = lower($1))"
            ),
            args![account, email],
        )
        .await
    }

    /// Replaces a user's password hash (`None` disables password login).
    pub async fn set_password_hash(
        &self,
        user: UserId,
        hash: Option<&str>,
        mut audit: Audit,
    ) -> Result<(), StoreError> {
        audit.default_target("user", user);
        self.write(move |db| {
            Box::pin(async move {
                let row = db
                    .fetch_one::<AccountRefRow>(
                        "UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING account_id",
                        args![s(user), hash],
                    )
                    .await?;
                // An unreadable account id records the change without one, as before.
                let account = row.account().ok().flatten();
                insert_audit(db, account, &audit, AuditResult::Allowed).await?;
                Ok(())
            })
        })
        .await
    }

    /// Deletes a user of `account` with their personal tokens and sessions (cascade). Install
    /// tokens they created stay valid and forget their creator. Added by the platform engineer
    /// for `DELETE /api/v1/users/{id}`.
    pub async fn delete_user(
        &self,
        account: AccountId,
        user: UserId,
        mut audit: Audit,
    ) -> Result<(), StoreError> {
        audit.default_target("user", user);
        self.write(move |db| {
            Box::pin(async move {
                db.execute(
                    "UPDATE install_tokens SET created_by = NULL \
                     WHERE created_by = $1 AND account_id = $2",
                    args![s(user), s(account)],
                )
                .await?;
                let done = db
                    .execute(
                        "DELETE FROM users WHERE id = $1 AND account_id = $2",
                        args![s(user), s(account)],
                    )
                    .await?;
                if done == 0 {
                    return Err(StoreError::NotFound);
                }
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(())
            })
        })
        .await
    }

    /// Changes the role of a user of `account`.
    pub async fn set_user_role(
        &self,
        account: AccountId,
        user: UserId,
        role: Role,
        mut audit: Audit,
    ) -> Result<User, StoreError> {
        audit.default_target("user", user);
        self.write(move |db| {
            Box::pin(async move {
                let user = db
                    .fetch_one::<UserRow>(
                        concat!(
                            "UPDATE users AS u SET role = $3 \
                             WHERE u.id = $1 AND u.account_id = $2 RETURNING ",
                            user_cols!(bare)
                        ),
                        args![s(user), s(account), role.as_str()],
                    )
                    .await?
                    .try_into()?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(user)
            })
        })
        .await
    }

    // ---- personal API tokens --------------------------------------------------------

    /// Stores a new personal token of `new.user_id`; the platform shows the secret once.
    pub async fn create_api_token(
        &self,
        new: NewApiToken,
        mut audit: Audit,
    ) -> Result<ApiToken, StoreError> {
        let token = ApiToken {
            id: TokenId::new_v7(),
            user_id: new.user_id,
            name: new.name,
            prefix: new.prefix,
            created_at: audit.at,
            expires_at: new.expires_at,
            revoked_at: None,
        };
        audit.default_target("api_token", token.id);
        self.write(move |db| {
            Box::pin(async move {
                let user = user_by_id(db, token.user_id).await?;
                insert_api_token(db, &token, &new.hash).await?;
                insert_audit(db, user.account_id, &audit, AuditResult::Allowed).await?;
                Ok(token)
            })
        })
        .await
    }

    /// The principal of a token that is neither revoked nor expired at `now`, by hash.
    pub async fn find_api_token(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<TokenPrincipal>, StoreError> {
        self.optional::<TokenUserRow, TokenPrincipal>(
            concat!(
                "SELECT ",
                token_user_cols!(),
                " FROM api_tokens t JOIN users u ON u.id = t.user_id \
                         WHERE t.token_hash = $1 AND t.revoked_at IS NULL \
                         AND (t.expires_at IS NULL OR t.expires_at > $2)"
            ),
            args![hash, now],
        )
        .await
    }

    /// The tokens of a user, newest first, including revoked and expired ones.
    pub async fn api_tokens(&self, user: UserId) -> Result<Vec<ApiToken>, StoreError> {
        self.all::<TokenRow, ApiToken>(
            concat!(
                "SELECT ",
                token_cols!(),
                " FROM api_tokens t WHERE t.user_id = $1 ORDER BY t.id DESC"
            ),
            args![s(user)],
        )
        .await
    }

    /// Revokes a token of `user` (a token of anyone else is `NotFound`). Idempotent: an
    /// already revoked token keeps its first revocation time.
    pub async fn revoke_api_token(
        &self,
        user: UserId,
        id: TokenId,
        mut audit: Audit,
    ) -> Result<ApiToken, StoreError> {
        audit.default_target("api_token", id);
        self.write(move |db| {
            Box::pin(async move {
                let token = db
                    .fetch_one::<TokenRow>(
                        concat!(
                            "UPDATE api_tokens AS t SET revoked_at = COALESCE(t.revoked_at, $3) \
                             WHERE t.id = $1 AND t.user_id = $2 RETURNING ",
                            token_cols!(bare)
                        ),
                        args![s(id), s(user), audit.at],
                    )
                    .await?
                    .try_into()?;
                let owner = user_by_id(db, user).await?;
                insert_audit(db, owner.account_id, &audit, AuditResult::Allowed).await?;
                Ok(token)
            })
        })
        .await
    }

    // ---- audit ----------------------------------------------------------------------

    /// Appends an audit record on its own, e.g. for a change that failed after validation.
    pub async fn append_audit(
        &self,
        account: Option<AccountId>,
        audit: Audit,
        result: AuditResult,
    ) -> Result<AuditRecord, StoreError> {
        self.write(move |db| {
            Box::pin(async move { insert_audit(db, account, &audit, result).await })
        })
        .await
    }

    /// Records an action the principal was not allowed to do (SPEC §14).
    pub async fn record_denied(
        &self,
        account: Option<AccountId>,
        audit: Audit,
    ) -> Result<AuditRecord, StoreError> {
        self.append_audit(account, audit, AuditResult::Denied).await
    }

    /// The audit log of `account`, newest first: at most `limit` records older than the
    /// cursor `before` (an id from a previous page).
    pub async fn audit_records(
        &self,
        account: AccountId,
        before: Option<AuditId>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_records_filtered(account, &AuditFilter::default(), before, limit)
            .await
    }

    /// The platform's own audit records (of no account: accounts created, sources throttled),
    /// newest first, like [`Store::audit_records`].
    pub async fn platform_audit_records(
        &self,
        before: Option<AuditId>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.all::<AuditRow, AuditRecord>(
            concat!(
                "SELECT ",
                audit_cols!(),
                " FROM audit_records ar WHERE ar.account_id IS NULL \
                         AND ($1 IS NULL OR ar.id < $1) ORDER BY ar.id DESC LIMIT $2"
            ),
            args![before.map(s), i64::from(limit)],
        )
        .await
    }

    /// Like [`Store::audit_records`], keeping only the records that match `filter` (the
    /// console's audit log page); the cursor is the same record id.
    pub async fn audit_records_filtered(
        &self,
        account: AccountId,
        filter: &AuditFilter,
        before: Option<AuditId>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let (actor_kind, actor_id) = match filter.actor {
            Some(actor) => (Some(actor.kind()), actor.id()),
            None => (None, None),
        };
        self.all::<AuditRow, AuditRecord>(
            concat!(
                "SELECT ",
                audit_cols!(),
                " FROM audit_records ar WHERE ar.account_id = $1 \
                         AND ($2 IS NULL OR ar.id < $2) \
                         AND ($3 IS NULL OR ar.actor_kind = $3) \
                         AND ($4 IS NULL OR ar.actor_id = $4) \
                         AND ($5 IS NULL OR substr(ar.action, 1, length($5)) = $5) \
                         AND ($6 IS NULL OR ar.result = $6) \
                         AND ($7 IS NULL OR ar.at >= $7) AND ($8 IS NULL OR ar.at < $8) \
                         ORDER BY ar.id DESC LIMIT $9"
            ),
            args![
                s(account),
                before.map(s),
                actor_kind,
                actor_id,
                filter.action_prefix.clone(),
                filter.result.map(AuditResult::as_str),
                filter.from,
                filter.until,
                i64::from(limit),
            ],
        )
        .await
    }
}
