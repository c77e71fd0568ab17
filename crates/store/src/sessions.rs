//! Console sessions: the server side of the session cookie, so any platform process can
//! check it (SPEC §16).

use model::*;

use crate::audit::{Audit, AuditResult};
use crate::db::args;
use crate::rows::{AccountRefRow, PasswordHashRow, SessionUserRow, UserLoginRow};
use crate::tx::insert_audit;
use crate::types::*;
use crate::{Store, StoreError, s};

impl Store {
    /// Stores a session of `user` under the hash of its cookie value (login).
    pub async fn create_session(
        &self,
        user: UserId,
        hash: &str,
        expires_at: Timestamp,
        mut audit: Audit,
    ) -> Result<Session, StoreError> {
        let session = Session {
            id: TokenId::new_v7(),
            user_id: user,
            created_at: audit.at,
            expires_at,
            last_seen_at: audit.at,
        };
        audit.default_target("session", session.id);
        self.write(move |db| {
            Box::pin(async move {
                let account = db
                    .fetch_one::<AccountRefRow>(
                        "SELECT account_id FROM users WHERE id = $1",
                        args![s(user)],
                    )
                    .await?
                    .account()?;
                db.execute(
                    "INSERT INTO sessions (id, token_hash, user_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                    args![
                        s(session.id),
                        hash,
                        s(user),
                        session.created_at,
                        session.expires_at
                    ],
                )
                .await?;
                insert_audit(db, account, &audit, AuditResult::Allowed).await?;
                Ok(session)
            })
        })
        .await
    }

    /// The unexpired session with this hash and its user.
    pub async fn find_session(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<(Session, User)>, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                db.fetch_optional::<SessionUserRow>(
                    concat!(
                        "SELECT ",
                        session_user_cols!(),
                        " FROM sessions se JOIN users u ON u.id = se.user_id \
                         WHERE se.token_hash = $1 AND se.expires_at > $2"
                    ),
                    args![hash, now],
                )
                .await?
                .map(SessionUserRow::into_model)
                .transpose()
            })
        })
        .await
    }

    /// Records that the session with this hash was used at `now` (idle expiry counts from
    /// the last use).
    pub async fn touch_session(&self, hash: &str, now: Timestamp) -> Result<(), StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                db.execute(
                    "UPDATE sessions SET last_seen_at = $2 WHERE token_hash = $1",
                    args![hash, now],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// The user of the account named `account` (case-insensitive) with this e-mail address
    /// (case-insensitive), and their password hash: the console login's identity (an e-mail
    /// is unique within an account, so another account's users never change the answer).
    pub async fn account_user_login(
        &self,
        account: &str,
        email: &str,
    ) -> Result<Option<UserLogin>, StoreError> {
        self.optional::<UserLoginRow, UserLogin>(
            concat!(
                "SELECT ",
                user_cols!(),
                ", u.password_hash FROM users u JOIN accounts a ON a.id = u.account_id \
                         WHERE lower(a.name) = lower($1) AND lower(u.email) = lower($2)"
            ),
            args![account, email],
        )
        .await
    }

    /// The password hash of a user (`None`: no password set), for checking it before a change.
    pub async fn password_hash(&self, user: UserId) -> Result<Option<String>, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                Ok(db
                    .fetch_one::<PasswordHashRow>(
                        "SELECT password_hash FROM users WHERE id = $1",
                        args![s(user)],
                    )
                    .await?
                    .password_hash)
            })
        })
        .await
    }

    /// Ends a session (logout); answers whether there was one.
    pub async fn delete_session(&self, hash: &str) -> Result<bool, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                let done = db
                    .execute("DELETE FROM sessions WHERE token_hash = $1", args![hash])
                    .await?;
                Ok(done > 0)
            })
        })
        .await
    }

    /// Ends every session of a user (password change, role change); answers how many.
    pub async fn delete_user_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                db.execute("DELETE FROM sessions WHERE user_id = $1", args![s(user)])
                    .await
            })
        })
        .await
    }

    /// Removes sessions expired at `now` (a background job); answers how many.
    pub async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                db.execute("DELETE FROM sessions WHERE expires_at <= $1", args![now])
                    .await
            })
        })
        .await
    }
}
