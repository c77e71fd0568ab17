//! The deployments of a whole account in one read, each with what its status is derived
//! from (SPEC §8): the gateway its environment is attached to and where it was published.
//! A list over every API (the console's APIs page) reads this once instead of once per API.

use model::*;

use crate::rows::{self, Cur};
use crate::{Store, StoreError, s, with_conn};

/// A deployment with the facts its status is derived from
/// (`model::status::deployment_status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedDeployment {
    pub deployment: Deployment,
    /// The gateway its environment is attached to; `None` when it is attached to none.
    pub gateway_id: Option<GatewayId>,
    /// The gateway and the first generation of its configuration that contained the
    /// deployment; `None` when it is on no published configuration.
    pub published: Option<(GatewayId, u64)>,
}

impl Store {
    /// Every deployment of `account`, ordered by API and then id, with its environment's
    /// gateway and its publication.
    pub async fn account_deployments(
        &self,
        account: AccountId,
    ) -> Result<Vec<PlacedDeployment>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                deployment_cols!(),
                ", e.gateway_id, d.published_gateway_id, d.published_generation \
                 FROM deployments d JOIN environments e \
                 ON e.id = d.environment_id AND e.account_id = d.account_id \
                 WHERE d.account_id = $1 ORDER BY d.api_id, d.id"
            ))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| {
                    let mut cur = Cur::new(r);
                    let deployment = rows::deployment(&mut cur)?;
                    let gateway_id = cur.opt_id()?;
                    let published_gateway: Option<GatewayId> = cur.opt_id()?;
                    let published_generation = cur.opt_u64()?;
                    Ok(PlacedDeployment {
                        deployment,
                        gateway_id,
                        published: published_gateway.zip(published_generation),
                    })
                })
                .collect()
        })
    }
}
