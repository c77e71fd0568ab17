//! Issues of a gateway (SPEC §3): raised or refreshed, cleared, listed.

use model::*;

use crate::rows::{self, Cur};
use crate::types::*;
use crate::{Store, StoreError, found, s, with_conn, with_tx};

impl Store {
    /// Raises an issue on a non-deleted gateway, or refreshes the active one with the same
    /// gateway, node and code (message, severity, details and last_seen are updated).
    pub async fn raise_issue(
        &self,
        account: AccountId,
        new: NewIssue,
        now: Timestamp,
    ) -> Result<IssueRecord, StoreError> {
        with_tx!(self, |c| {
            let live = sqlx::query(
                "SELECT id FROM gateways WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
            )
            .bind(s(new.gateway_id))
            .bind(s(account))
            .fetch_optional(&mut *c)
            .await?;
            found(live)?;
            let details = new.details.to_string();
            let updated = sqlx::query(concat!(
                "UPDATE issues AS i SET severity = $5, message = $6, details = $7, last_seen = $8 \
                 WHERE i.gateway_id = $1 AND i.account_id = $2 AND i.code = $3 \
                 AND COALESCE(i.node_id, '') = COALESCE($4, '') AND i.cleared_at IS NULL \
                 RETURNING ",
                issue_cols!(bare)
            ))
            .bind(s(new.gateway_id))
            .bind(s(account))
            .bind(&new.code)
            .bind(new.node_id.map(s))
            .bind(new.severity.as_str())
            .bind(&new.message)
            .bind(&details)
            .bind(now.0)
            .fetch_optional(&mut *c)
            .await?;
            match updated {
                Some(r) => rows::issue(&mut Cur::new(&r)),
                None => {
                    let issue = IssueRecord {
                        id: IssueId::new_v7(),
                        gateway_id: new.gateway_id,
                        node_id: new.node_id,
                        code: new.code,
                        severity: new.severity,
                        message: new.message,
                        details: new.details,
                        first_seen: now,
                        last_seen: now,
                        cleared_at: None,
                    };
                    sqlx::query(
                "INSERT INTO issues (id, account_id, gateway_id, node_id, code, severity, message, \
                 details, first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .bind(s(issue.id))
            .bind(s(account))
            .bind(s(issue.gateway_id))
            .bind(issue.node_id.map(s))
            .bind(&issue.code)
            .bind(issue.severity.as_str())
            .bind(&issue.message)
            .bind(&details)
            .bind(now.0)
            .execute(&mut *c)
            .await?;
                    Ok(issue)
                }
            }
        })
    }

    /// Clears the active issue with this gateway, node and code; answers whether one was.
    pub async fn clear_issue(
        &self,
        account: AccountId,
        gateway: GatewayId,
        node: Option<NodeId>,
        code: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        with_conn!(self, |c| {
            let done = sqlx::query(
                "UPDATE issues SET cleared_at = $5 WHERE gateway_id = $1 AND account_id = $2 \
                 AND code = $3 AND COALESCE(node_id, '') = COALESCE($4, '') AND cleared_at IS NULL",
            )
            .bind(s(gateway))
            .bind(s(account))
            .bind(code)
            .bind(node.map(s))
            .bind(now.0)
            .execute(&mut *c)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// The active issues of a gateway, errors first; none for a deleted gateway.
    pub async fn issues(
        &self,
        account: AccountId,
        gateway: GatewayId,
    ) -> Result<Vec<IssueRecord>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                issue_cols!(),
                " FROM issues i JOIN gateways g ON g.id = i.gateway_id \
                 WHERE i.gateway_id = $1 AND i.account_id = $2 AND i.cleared_at IS NULL \
                 AND g.deleted_at IS NULL ORDER BY i.first_seen, i.id"
            ))
            .bind(s(gateway))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            let mut issues = rows
                .iter()
                .map(|r| rows::issue(&mut Cur::new(r)))
                .collect::<Result<Vec<_>, _>>()?;
            issues.sort_by_key(|i| std::cmp::Reverse(i.severity));
            Ok(issues)
        })
    }
}
