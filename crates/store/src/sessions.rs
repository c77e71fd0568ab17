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
