//! The history of environment migrations: the completed ones of an account, newest first
//! (`GET /migrations?state=completed`); a completed migration is never changed again.

use model::AccountId;

use crate::rows::{self, Cur};
use crate::types::EnvironmentMigration;
use crate::{Store, StoreError, s, with_conn};

impl Store {
    /// The completed migrations of `account`, newest first.
    pub async fn completed_migrations(
        &self,
        account: AccountId,
    ) -> Result<Vec<EnvironmentMigration>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                migration_cols!(),
                " FROM environment_migrations m WHERE m.account_id = $1 \
                 AND m.completed_at IS NOT NULL ORDER BY m.completed_at DESC, m.id DESC"
            ))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::migration(&mut Cur::new(r)))
                .collect()
        })
    }
}
