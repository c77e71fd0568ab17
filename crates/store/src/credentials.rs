//! Install tokens (SPEC §10) and node credentials: created, found by hash, revoked.

use model::*;

use crate::audit::{Audit, AuditResult};
use crate::db::args;
use crate::rows::{CredentialRow, InstallTokenRow};
use crate::tx::insert_audit;
use crate::types::*;
use crate::{Store, StoreError, s};

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
        self.write(move |db| {
            Box::pin(async move {
                db.execute(
                    "INSERT INTO install_tokens (id, account_id, token_hash, created_by, \
                     created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    args![
                        s(token.id),
                        s(account),
                        &new.hash,
                        token.created_by.map(s),
                        token.created_at,
                        token.expires_at,
                    ],
                )
                .await?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(token)
            })
        })
        .await
    }

    /// The install token with this hash if it is neither revoked nor expired at `now`.
    pub async fn find_install_token(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<InstallToken>, StoreError> {
        self.optional::<InstallTokenRow, InstallToken>(
            concat!(
                "SELECT ",
                install_token_cols!(),
                " FROM install_tokens it WHERE it.token_hash = $1 \
                         AND it.revoked_at IS NULL AND it.expires_at > $2"
            ),
            args![hash, now],
        )
        .await
    }

    /// The install tokens of `account`, newest first, revoked and expired ones included.
    pub async fn install_tokens(
        &self,
        account: AccountId,
    ) -> Result<Vec<InstallToken>, StoreError> {
        self.all::<InstallTokenRow, InstallToken>(
            concat!(
                "SELECT ",
                install_token_cols!(),
                " FROM install_tokens it WHERE it.account_id = $1 \
                         ORDER BY it.created_at DESC, it.id DESC"
            ),
            args![s(account)],
        )
        .await
    }

    /// Revokes an install token of `account`.
    pub async fn revoke_install_token(
        &self,
        account: AccountId,
        id: InstallTokenId,
        mut audit: Audit,
    ) -> Result<InstallToken, StoreError> {
        audit.default_target("install_token", id);
        self.write(move |db| {
            Box::pin(async move {
                let token = db
                    .fetch_one::<InstallTokenRow>(
                        concat!(
                            "UPDATE install_tokens AS it SET revoked_at = COALESCE(it.revoked_at, $3) \
                             WHERE it.id = $1 AND it.account_id = $2 RETURNING ",
                            install_token_cols!(bare)
                        ),
                        args![s(id), s(account), audit.at],
                    )
                    .await?
                    .try_into()?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(token)
            })
        })
        .await
    }

    /// The unrevoked credential with this hash whose gateway is not deleted.
    pub async fn find_node_credential(
        &self,
        hash: &str,
    ) -> Result<Option<NodeCredential>, StoreError> {
        self.optional::<CredentialRow, NodeCredential>(
            concat!(
                "SELECT ",
                credential_cols!(),
                " FROM node_credentials nc JOIN gateways g ON g.id = nc.gateway_id \
                         WHERE nc.token_hash = $1 AND nc.revoked_at IS NULL \
                         AND g.deleted_at IS NULL"
            ),
            args![hash],
        )
        .await
    }
}
