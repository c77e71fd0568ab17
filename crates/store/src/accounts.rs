//! Accounts, users, personal API tokens and the audit log.

use model::*;

use crate::audit::{Audit, AuditRecord, AuditResult};
use crate::rows::{self, Cur};
use crate::types::*;
use crate::{Store, StoreError, found, insert_audit, s, with_conn, with_tx};

const USER_BY_ID: &str = concat!("SELECT ", user_cols!(), " FROM users u WHERE u.id = $1");

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
        with_tx!(self, |c| {
            sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(s(account.id))
                .bind(&account.name)
                .bind(account.created_at.0)
                .execute(&mut *c)
                .await?;
            insert_audit!(c, Some(account.id), &audit, AuditResult::Allowed);
        });
        Ok(account)
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
        let step = |action: &str, target: crate::audit::AuditTarget| {
            Audit::new(audit.actor, action, audit.at).with_target(target)
        };
        let audits = [
            step(
                "account.create",
                crate::audit::AuditTarget::new("account", account.id),
            ),
            step(
                "user.create",
                crate::audit::AuditTarget::new("user", user.id),
            ),
            step(
                "api_token.create",
                crate::audit::AuditTarget::new("api_token", api_token.id),
            ),
        ];
        with_tx!(self, |c| {
            sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(s(account.id))
                .bind(&account.name)
                .bind(account.created_at.0)
                .execute(&mut *c)
                .await?;
            sqlx::query(
                "INSERT INTO users (id, account_id, name, email, role, platform_admin, \
                 password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(s(user.id))
            .bind(user.account_id.map(s))
            .bind(&user.name)
            .bind(&user.email)
            .bind(user.role.as_str())
            .bind(user.platform_admin)
            .bind(None::<String>)
            .bind(user.created_at.0)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, name, prefix, token_hash, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(s(api_token.id))
            .bind(s(api_token.user_id))
            .bind(&api_token.name)
            .bind(&api_token.prefix)
            .bind(&token.hash)
            .bind(api_token.created_at.0)
            .bind(api_token.expires_at.map(|t| t.0))
            .execute(&mut *c)
            .await?;
            for a in &audits {
                insert_audit!(c, Some(account.id), a, AuditResult::Allowed);
            }
        });
        Ok((account, user, api_token))
    }

    pub async fn account(&self, id: AccountId) -> Result<Account, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                account_cols!(),
                " FROM accounts ac WHERE ac.id = $1"
            ))
            .bind(s(id))
            .fetch_optional(&mut *c)
            .await?;
            found(row).and_then(|r| rows::account(&mut Cur::new(&r)))
        })
    }

    /// The account with this name, compared case-insensitively.
    pub async fn account_by_name(&self, name: &str) -> Result<Option<Account>, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                account_cols!(),
                " FROM accounts ac WHERE lower(ac.name) = lower($1)"
            ))
            .bind(name)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|r| rows::account(&mut Cur::new(&r))).transpose()
        })
    }

    /// All accounts, by name.
    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                account_cols!(),
                " FROM accounts ac ORDER BY lower(ac.name), ac.id"
            ))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::account(&mut Cur::new(r)))
                .collect()
        })
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
        with_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO users (id, account_id, name, email, role, platform_admin, \
                 password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(s(user.id))
            .bind(user.account_id.map(s))
            .bind(&user.name)
            .bind(&user.email)
            .bind(user.role.as_str())
            .bind(user.platform_admin)
            .bind(&new.password_hash)
            .bind(user.created_at.0)
            .execute(&mut *c)
            .await?;
            insert_audit!(c, user.account_id, &audit, AuditResult::Allowed);
        });
        Ok(user)
    }

    /// Whether any platform administrator exists (an empty database has none).
    pub async fn platform_admin_exists(&self) -> Result<bool, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query("SELECT 1 FROM users WHERE platform_admin LIMIT 1")
                .fetch_optional(&mut *c)
                .await?;
            Ok(row.is_some())
        })
    }

    /// A user of `account`.
    pub async fn user(&self, account: AccountId, id: UserId) -> Result<User, StoreError> {
        let user = self.user_by_id(id).await?;
        if user.account_id == Some(account) {
            Ok(user)
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// A user by id across accounts: for resolving an authenticated principal only.
    async fn user_by_id(&self, id: UserId) -> Result<User, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(USER_BY_ID)
                .bind(s(id))
                .fetch_optional(&mut *c)
                .await?;
            found(row).and_then(|r| rows::user(&mut Cur::new(&r)))
        })
    }

    /// The users of `account`, by name.
    pub async fn users(&self, account: AccountId) -> Result<Vec<User>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                user_cols!(),
                " FROM users u WHERE u.account_id = $1 ORDER BY lower(u.name), u.id"
            ))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            rows.iter().map(|r| rows::user(&mut Cur::new(r))).collect()
        })
    }

    /// The user of the account named `account` (a platform administrator when `None`) with this
    /// e-mail address, and their password hash; names and addresses compare case-insensitively.
    /// E-mail addresses are unique only within an account, so a login always names one.
    pub async fn user_login(
        &self,
        account: Option<&str>,
        email: &str,
    ) -> Result<Option<UserLogin>, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                user_cols!(),
                ", u.password_hash FROM users u LEFT JOIN accounts a ON a.id = u.account_id \
                 WHERE lower(u.email) = lower($2) \
                 AND (($1 IS NULL AND u.account_id IS NULL) OR lower(a.name) = lower($1))"
            ))
            .bind(account)
            .bind(email)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|r| {
                let mut cur = Cur::new(&r);
                Ok(UserLogin {
                    user: rows::user(&mut cur)?,
                    password_hash: cur.opt_text()?,
                })
            })
            .transpose()
        })
    }

    /// Replaces a user's password hash (`None` disables password login).
    pub async fn set_password_hash(
        &self,
        user: UserId,
        hash: Option<&str>,
        mut audit: Audit,
    ) -> Result<(), StoreError> {
        audit.default_target("user", user);
        with_tx!(self, |c| {
            let row = sqlx::query(
                "UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING account_id",
            )
            .bind(s(user))
            .bind(hash)
            .fetch_optional(&mut *c)
            .await?;
            let account: Option<String> = {
                let r = found(row)?;
                Cur::new(&r).opt_text()?
            };
            let account = account.and_then(|a| a.parse().ok());
            insert_audit!(c, account, &audit, AuditResult::Allowed);
        });
        Ok(())
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
        with_tx!(self, |c| {
            sqlx::query(
                "UPDATE install_tokens SET created_by = NULL \
                 WHERE created_by = $1 AND account_id = $2",
            )
            .bind(s(user))
            .bind(s(account))
            .execute(&mut *c)
            .await?;
            let done = sqlx::query("DELETE FROM users WHERE id = $1 AND account_id = $2")
                .bind(s(user))
                .bind(s(account))
                .execute(&mut *c)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(())
        })
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
        with_tx!(self, |c| {
            let row = sqlx::query(concat!(
                "UPDATE users AS u SET role = $3 WHERE u.id = $1 AND u.account_id = $2 RETURNING ",
                user_cols!(bare)
            ))
            .bind(s(user))
            .bind(s(account))
            .bind(role.as_str())
            .fetch_optional(&mut *c)
            .await?;
            let user = found(row).and_then(|r| rows::user(&mut Cur::new(&r)))?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(user)
        })
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
        with_tx!(self, |c| {
            let row = sqlx::query(USER_BY_ID)
                .bind(s(token.user_id))
                .fetch_optional(&mut *c)
                .await?;
            let user = found(row).and_then(|r| rows::user(&mut Cur::new(&r)))?;
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, name, prefix, token_hash, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(s(token.id))
            .bind(s(token.user_id))
            .bind(&token.name)
            .bind(&token.prefix)
            .bind(&new.hash)
            .bind(token.created_at.0)
            .bind(token.expires_at.map(|t| t.0))
            .execute(&mut *c)
            .await?;
            insert_audit!(c, user.account_id, &audit, AuditResult::Allowed);
        });
        Ok(token)
    }

    /// The principal of a token that is neither revoked nor expired at `now`, by hash.
    pub async fn find_api_token(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<TokenPrincipal>, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                token_cols!(),
                ", ",
                user_cols!(),
                " FROM api_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL \
                 AND (t.expires_at IS NULL OR t.expires_at > $2)"
            ))
            .bind(hash)
            .bind(now.0)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|r| {
                let mut cur = Cur::new(&r);
                Ok(TokenPrincipal {
                    token: rows::api_token(&mut cur)?,
                    user: rows::user(&mut cur)?,
                })
            })
            .transpose()
        })
    }

    /// The tokens of a user, newest first, including revoked and expired ones.
    pub async fn api_tokens(&self, user: UserId) -> Result<Vec<ApiToken>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                token_cols!(),
                " FROM api_tokens t WHERE t.user_id = $1 ORDER BY t.id DESC"
            ))
            .bind(s(user))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::api_token(&mut Cur::new(r)))
                .collect()
        })
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
        with_tx!(self, |c| {
            let row = sqlx::query(concat!(
                "UPDATE api_tokens AS t SET revoked_at = COALESCE(t.revoked_at, $3) \
                 WHERE t.id = $1 AND t.user_id = $2 RETURNING ",
                token_cols!(bare)
            ))
            .bind(s(id))
            .bind(s(user))
            .bind(audit.at.0)
            .fetch_optional(&mut *c)
            .await?;
            let token = found(row).and_then(|r| rows::api_token(&mut Cur::new(&r)))?;
            let owner = sqlx::query(USER_BY_ID)
                .bind(s(user))
                .fetch_optional(&mut *c)
                .await?;
            let owner = found(owner).and_then(|r| rows::user(&mut Cur::new(&r)))?;
            insert_audit!(c, owner.account_id, &audit, AuditResult::Allowed);
            Ok(token)
        })
    }

    // ---- audit ----------------------------------------------------------------------

    /// Appends an audit record on its own, e.g. for a change that failed after validation.
    pub async fn append_audit(
        &self,
        account: Option<AccountId>,
        audit: Audit,
        result: AuditResult,
    ) -> Result<AuditRecord, StoreError> {
        with_tx!(self, |c| {
            let rec = insert_audit!(c, account, &audit, result);
            Ok(rec)
        })
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
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                audit_cols!(),
                " FROM audit_records ar WHERE ar.account_id = $1 AND ($2 IS NULL OR ar.id < $2) \
                 ORDER BY ar.id DESC LIMIT $3"
            ))
            .bind(s(account))
            .bind(before.map(s))
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::audit_record(&mut Cur::new(r)))
                .collect()
        })
    }
    /// The platform's own audit records (of no account: accounts created, sources throttled),
    /// newest first, like [`Store::audit_records`].
    pub async fn platform_audit_records(
        &self,
        before: Option<AuditId>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                audit_cols!(),
                " FROM audit_records ar WHERE ar.account_id IS NULL AND ($1 IS NULL OR ar.id < $1) \
                 ORDER BY ar.id DESC LIMIT $2"
            ))
            .bind(before.map(s))
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::audit_record(&mut Cur::new(r)))
                .collect()
        })
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
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                audit_cols!(),
                " FROM audit_records ar WHERE ar.account_id = $1 AND ($2 IS NULL OR ar.id < $2) \
                 AND ($3 IS NULL OR ar.actor_kind = $3) AND ($4 IS NULL OR ar.actor_id = $4) \
                 AND ($5 IS NULL OR substr(ar.action, 1, length($5)) = $5) \
                 AND ($6 IS NULL OR ar.result = $6) \
                 AND ($7 IS NULL OR ar.at >= $7) AND ($8 IS NULL OR ar.at < $8) \
                 ORDER BY ar.id DESC LIMIT $9"
            ))
            .bind(s(account))
            .bind(before.map(s))
            .bind(actor_kind)
            .bind(actor_id.clone())
            .bind(filter.action_prefix.clone())
            .bind(filter.result.map(AuditResult::as_str))
            .bind(filter.from.map(Timestamp::as_millis))
            .bind(filter.until.map(Timestamp::as_millis))
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::audit_record(&mut Cur::new(r)))
                .collect()
        })
    }
}
