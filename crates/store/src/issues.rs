//! Issues of a gateway (SPEC §3): raised or refreshed, cleared, listed.

use model::*;

use crate::db::args;
use crate::rows::IssueRow;
use crate::tx::require_live_gateway;
use crate::types::*;
use crate::{Store, StoreError, s};

impl Store {
    /// Raises an issue on a non-deleted gateway, or refreshes the active one with the same
    /// gateway, node and code (message, severity, details and last_seen are updated).
    pub async fn raise_issue(
        &self,
        account: AccountId,
        new: NewIssue,
        now: Timestamp,
    ) -> Result<IssueRecord, StoreError> {
        self.write(move |db| {
            Box::pin(async move {
                require_live_gateway(db, account, new.gateway_id).await?;
                let details = new.details.to_string();
                let updated = db
                    .fetch_optional::<IssueRow>(
                        concat!(
                            "UPDATE issues AS i SET severity = $5, message = $6, details = $7, \
                             last_seen = $8 \
                             WHERE i.gateway_id = $1 AND i.account_id = $2 AND i.code = $3 \
                             AND COALESCE(i.node_id, '') = COALESCE($4, '') \
                             AND i.cleared_at IS NULL RETURNING ",
                            issue_cols!(bare)
                        ),
                        args![
                            s(new.gateway_id),
                            s(account),
                            &new.code,
                            new.node_id.map(s),
                            new.severity.as_str(),
                            &new.message,
                            &details,
                            now,
                        ],
                    )
                    .await?;
                if let Some(r) = updated {
                    return r.try_into();
                }
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
                db.execute(
                    "INSERT INTO issues (id, account_id, gateway_id, node_id, code, severity, \
                     message, details, first_seen, last_seen) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                    args![
                        s(issue.id),
                        s(account),
                        s(issue.gateway_id),
                        issue.node_id.map(s),
                        &issue.code,
                        issue.severity.as_str(),
                        &issue.message,
                        &details,
                        now,
                    ],
                )
                .await?;
                Ok(issue)
            })
        })
        .await
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
        self.read(move |db| {
            Box::pin(async move {
                let done = db
                    .execute(
                        "UPDATE issues SET cleared_at = $5 \
                         WHERE gateway_id = $1 AND account_id = $2 AND code = $3 \
                         AND COALESCE(node_id, '') = COALESCE($4, '') AND cleared_at IS NULL",
                        args![s(gateway), s(account), code, node.map(s), now],
                    )
                    .await?;
                Ok(done > 0)
            })
        })
        .await
    }

    /// The active issues of a gateway, errors first; none for a deleted gateway.
    pub async fn issues(
        &self,
        account: AccountId,
        gateway: GatewayId,
    ) -> Result<Vec<IssueRecord>, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                let mut issues = db
                    .fetch_all::<IssueRow>(
                        concat!(
                            "SELECT ",
                            issue_cols!(),
                            " FROM issues i JOIN gateways g ON g.id = i.gateway_id \
                             WHERE i.gateway_id = $1 AND i.account_id = $2 \
                             AND i.cleared_at IS NULL AND g.deleted_at IS NULL \
                             ORDER BY i.first_seen, i.id"
                        ),
                        args![s(gateway), s(account)],
                    )
                    .await?
                    .into_iter()
                    .map(IssueRecord::try_from)
                    .collect::<Result<Vec<_>, _>>()?;
                issues.sort_by_key(|i| std::cmp::Reverse(i.severity));
                Ok(issues)
            })
        })
        .await
    }
}
