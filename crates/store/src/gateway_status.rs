//! The status the platform records for a gateway (`model::status` decides it), with its
//! history.

use model::status::GatewayStatus;
use model::*;

use crate::db::args;
use crate::rows::{IdRow, StatusHistoryRow};
use crate::tx::{require_gateway, require_live_gateway};
use crate::types::*;
use crate::{Store, StoreError, s};

impl Store {
    /// Records the gateway status the platform evaluated. Writes history only on a change
    /// of state or variant; answers whether it changed. Deleted gateways keep `deleted`.
    pub async fn set_gateway_status(
        &self,
        account: AccountId,
        id: GatewayId,
        status: GatewayStatus,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let state = status.state.as_str();
        let variant = status.variant.map(|v| v.as_str());
        self.write(move |db| {
            Box::pin(async move {
                let changed = db
                    .fetch_optional::<IdRow>(
                        "UPDATE gateways SET status_state = $3, status_variant = $4, \
                         status_since = $5 \
                         WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL \
                         AND (status_state IS NULL OR status_state <> $3 \
                              OR COALESCE(status_variant, '') <> COALESCE($4, '')) \
                         RETURNING id",
                        args![s(id), s(account), state, variant, at],
                    )
                    .await?;
                if changed.is_none() {
                    // Unchanged, or not a live gateway of this account: tell them apart.
                    require_live_gateway(db, account, id).await?;
                    return Ok(false);
                }
                db.execute(
                    "INSERT INTO gateway_status_history (id, account_id, gateway_id, state, \
                     variant, at) VALUES ($1, $2, $3, $4, $5, $6)",
                    args![s(IssueId::new_v7()), s(account), s(id), state, variant, at],
                )
                .await?;
                Ok(true)
            })
        })
        .await
    }

    /// The status history of a gateway, newest first, at most `limit` entries.
    pub async fn gateway_status_history(
        &self,
        account: AccountId,
        id: GatewayId,
        limit: u32,
    ) -> Result<Vec<RecordedStatus>, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                require_gateway(db, account, id).await?;
                db.fetch_all::<StatusHistoryRow>(
                    "SELECT state, variant, at FROM gateway_status_history \
                     WHERE gateway_id = $1 AND account_id = $2 \
                     ORDER BY at DESC, id DESC LIMIT $3",
                    args![s(id), s(account), i64::from(limit)],
                )
                .await?
                .into_iter()
                .map(RecordedStatus::try_from)
                .collect()
            })
        })
        .await
    }
}
