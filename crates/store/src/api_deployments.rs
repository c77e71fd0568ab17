//! The deployments of a whole account in one read, each with what its status is derived
//! from (SPEC §8): the gateway its environment is attached to and where it was published.
//! A list over every API (the console's APIs page) reads this once instead of once per API.

use model::*;

use crate::db::args;
use crate::rows::{DeploymentRow, opt_u64, parse_opt_id};
use crate::{Store, StoreError, s};

/// `deployment_cols!()` with the environment's gateway and the publication.
#[derive(sqlx::FromRow)]
struct PlacedDeploymentRow {
    #[sqlx(flatten)]
    deployment: DeploymentRow,
    gateway_id: Option<String>,
    published_gateway_id: Option<String>,
    published_generation: Option<i64>,
}

impl TryFrom<PlacedDeploymentRow> for PlacedDeployment {
    type Error = StoreError;
    fn try_from(r: PlacedDeploymentRow) -> Result<Self, StoreError> {
        let published_gateway: Option<GatewayId> = parse_opt_id(r.published_gateway_id.as_deref())?;
        Ok(PlacedDeployment {
            deployment: r.deployment.try_into()?,
            gateway_id: parse_opt_id(r.gateway_id.as_deref())?,
            published: published_gateway.zip(opt_u64(r.published_generation)?),
        })
    }
}

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
        self.all::<PlacedDeploymentRow, PlacedDeployment>(
            concat!(
                "SELECT ",
                deployment_cols!(),
                ", e.gateway_id, d.published_gateway_id, d.published_generation \
                 FROM deployments d JOIN environments e \
                 ON e.id = d.environment_id AND e.account_id = d.account_id \
                 WHERE d.account_id = $1 ORDER BY d.api_id, d.id"
            ),
            args![s(account)],
        )
        .await
    }
}
