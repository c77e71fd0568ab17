//! Console sessions: the server side of the session cookie, so any platform process can
//! check it (SPEC §16).

use model::*;

use crate::audit::{Audit, AuditResult};
use crate::rows::{self, Cur};
use crate::types::*;
use crate::{Store, StoreError, found, insert_audit, s, with_conn, with_tx};

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
        with_tx!(self, |c| {
            let row = sqlx::query("SELECT account_id FROM users WHERE id = $1")
                .bind(s(user))
                .fetch_optional(&mut *c)
                .await?;
            let account = found(row).and_then(|r| Cur::new(&r).opt_id::<AccountId>())?;
            sqlx::query(
                "INSERT INTO sessions (id, token_hash, user_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(s(session.id))
            .bind(hash)
            .bind(s(user))
            .bind(session.created_at.0)
            .bind(session.expires_at.0)
            .execute(&mut *c)
            .await?;
            insert_audit!(c, account, &audit, AuditResult::Allowed);
        });
        Ok(session)
    }

    /// The unexpired session with this hash and its user.
    pub async fn find_session(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<(Session, User)>, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                session_cols!(),
                ", ",
                user_cols!(),
                " FROM sessions se JOIN users u ON u.id = se.user_id \
                 WHERE se.token_hash = $1 AND se.expires_at > $2"
            ))
            .bind(hash)
            .bind(now.0)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|r| {
                let mut cur = Cur::new(&r);
                Ok((rows::session(&mut cur)?, rows::user(&mut cur)?))
            })
            .transpose()
        })
    }

    /// Records that the session with this hash was used at `now` (idle expiry counts from
    /// the last use).
    pub async fn touch_session(&self, hash: &str, now: Timestamp) -> Result<(), StoreError> {
        with_conn!(self, |c| {
            sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE token_hash = $1")
                .bind(hash)
                .bind(now.0)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// The user of the account named `account` (case-insensitive) with this e-mail address
    /// (case-insensitive), and their password hash: the console login's identity (an e-mail
    /// is unique within an account, so another account's users never change the answer).
    pub async fn account_user_login(
        &self,
        account: &str,
        email: &str,
    ) -> Result<Option<UserLogin>, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                user_cols!(),
                ", u.password_hash FROM users u JOIN accounts a ON a.id = u.account_id \
                 WHERE lower(a.name) = lower($1) AND lower(u.email) = lower($2)"
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

    /// The password hash of a user (`None`: no password set), for checking it before a change.
    pub async fn password_hash(&self, user: UserId) -> Result<Option<String>, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
                .bind(s(user))
                .fetch_optional(&mut *c)
                .await?;
            found(row).and_then(|r| Cur::new(&r).opt_text())
        })
    }

    /// Ends a session (logout); answers whether there was one.
    pub async fn delete_session(&self, hash: &str) -> Result<bool, StoreError> {
        with_conn!(self, |c| {
            let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(hash)
                .execute(&mut *c)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Ends every session of a user (password change, role change); answers how many.
    pub async fn delete_user_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        with_conn!(self, |c| {
            let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(s(user))
                .execute(&mut *c)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// Removes sessions expired at `now` (a background job); answers how many.
    pub async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        with_conn!(self, |c| {
            let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now.0)
                .execute(&mut *c)
                .await?;
            Ok(done.rows_affected())
        })
    }
}
