//! Install tokens (SPEC §10) and node credentials: created, found by hash, revoked.

use model::*;

use crate::audit::{Audit, AuditResult};
use crate::rows::{self, Cur};
use crate::types::*;
use crate::{Store, StoreError, found, insert_audit, s, with_conn, with_tx};

impl Store {
    pub async fn create_install_token(
        &self,
        account: AccountId,
        new: NewInstallToken,
        mut audit: Audit,
    ) -> Result<InstallToken, StoreError> {
        let token = InstallToken {
            id: InstallTokenId::new_v7(),
            account_id: account,
            created_by: new.created_by,
            created_at: audit.at,
            expires_at: new.expires_at,
            revoked_at: None,
        };
        audit.default_target("install_token", token.id);
        with_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO install_tokens (id, account_id, token_hash, created_by, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(s(token.id))
            .bind(s(account))
            .bind(&new.hash)
            .bind(token.created_by.map(s))
            .bind(token.created_at.0)
            .bind(token.expires_at.0)
            .execute(&mut *c)
            .await?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
        });
        Ok(token)
    }

    /// The install token with this hash if it is neither revoked nor expired at `now`.
    pub async fn find_install_token(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<InstallToken>, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                install_token_cols!(),
                " FROM install_tokens it WHERE it.token_hash = $1 AND it.revoked_at IS NULL \
                 AND it.expires_at > $2"
            ))
            .bind(hash)
            .bind(now.0)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|r| rows::install_token(&mut Cur::new(&r)))
                .transpose()
        })
    }

    /// The install tokens of `account`, newest first, revoked and expired ones included.
    pub async fn install_tokens(
        &self,
        account: AccountId,
    ) -> Result<Vec<InstallToken>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                install_token_cols!(),
                " FROM install_tokens it WHERE it.account_id = $1 \
                 ORDER BY it.created_at DESC, it.id DESC"
            ))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::install_token(&mut Cur::new(r)))
                .collect()
        })
    }

    /// Revokes an install token of `account`.
    pub async fn revoke_install_token(
        &self,
        account: AccountId,
        id: InstallTokenId,
        mut audit: Audit,
    ) -> Result<InstallToken, StoreError> {
        audit.default_target("install_token", id);
        with_tx!(self, |c| {
            let row = sqlx::query(concat!(
                "UPDATE install_tokens AS it SET revoked_at = COALESCE(it.revoked_at, $3) \
                 WHERE it.id = $1 AND it.account_id = $2 RETURNING ",
                install_token_cols!(bare)
            ))
            .bind(s(id))
            .bind(s(account))
            .bind(audit.at.0)
            .fetch_optional(&mut *c)
            .await?;
            let token = found(row).and_then(|r| rows::install_token(&mut Cur::new(&r)))?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(token)
        })
    }

    /// The unrevoked credential with this hash whose gateway is not deleted.
    pub async fn find_node_credential(
        &self,
        hash: &str,
    ) -> Result<Option<NodeCredential>, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                credential_cols!(),
                " FROM node_credentials nc JOIN gateways g ON g.id = nc.gateway_id \
                 WHERE nc.token_hash = $1 AND nc.revoked_at IS NULL AND g.deleted_at IS NULL"
            ))
            .bind(hash)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|r| rows::credential(&mut Cur::new(&r))).transpose()
        })
    }
}
