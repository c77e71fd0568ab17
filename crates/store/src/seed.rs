//! Bulk data for benchmarks and load tests: many gateways with environments, nodes and
//! issues in one account, written in one transaction without audit records (seed data is
//! not anybody's decision).

use model::*;

use crate::db::{Db, args};
use crate::{Store, StoreError, s};

/// The shape of a seeded account.
#[derive(Clone, Copy, Debug)]
pub struct SeedShape {
    pub gateways: usize,
    pub environments_per_gateway: usize,
    pub unattached_environments: usize,
    /// Nodes per gateway (the first is the head node).
    pub nodes_per_gateway: usize,
    /// Every n-th gateway gets a warning issue; 0 for none.
    pub issue_every: usize,
}

impl SeedShape {
    /// The Gateways page benchmark: 1,000 gateways × 3 environments + 100 unattached.
    pub const BENCH: SeedShape = SeedShape {
        gateways: 1_000,
        environments_per_gateway: 3,
        unattached_environments: 100,
        nodes_per_gateway: 1,
        issue_every: 10,
    };
}

/// Fills `account` (which must exist) with `shape`. Names are `gw-0001`, `gw-0001-env-1`,
/// `unattached-001`, … so they sort predictably and do not collide with other data.
pub async fn seed_account(
    store: &Store,
    account: AccountId,
    shape: SeedShape,
    at: Timestamp,
) -> Result<(), StoreError> {
    let settings = crate::json::settings_to_json(&GatewaySettings::default());
    let paths = EnvironmentPaths::default();
    store
        .write(move |db| {
            Box::pin(async move {
                for g in 0..shape.gateways {
                    seed_gateway(db, account, g, shape, &settings, &paths, at).await?;
                }
                for u in 0..shape.unattached_environments {
                    db.execute(
                        "INSERT INTO environments (id, account_id, name, classification, \
                         gateway_id, path_rest, path_soap, path_soap12, path_odata, created_at) \
                         VALUES ($1, $2, $3, 'test', NULL, $4, $5, $6, $7, $8)",
                        args![
                            s(EnvironmentId::new_v7()),
                            s(account),
                            format!("unattached-{u:03}"),
                            &paths.rest,
                            &paths.soap,
                            &paths.soap12,
                            &paths.odata,
                            at,
                        ],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
}

/// Writes the `g`-th gateway of `shape` with its environments, nodes and issue.
async fn seed_gateway(
    db: &mut Db<'_>,
    account: AccountId,
    g: usize,
    shape: SeedShape,
    settings: &str,
    paths: &EnvironmentPaths,
    at: Timestamp,
) -> Result<(), StoreError> {
    let gateway = GatewayId::new_v7();
    db.execute(
        "INSERT INTO gateways (id, account_id, name, public_url, bind_address, settings, \
         created_at, status_state, status_since) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'online', $7)",
        args![
            s(gateway),
            s(account),
            format!("gw-{g:04}"),
            format!("https://gw-{g:04}.example.com"),
            DEFAULT_BIND_ADDRESS,
            settings,
            at,
        ],
    )
    .await?;
    for e in 0..shape.environments_per_gateway {
        // Each environment on a gateway needs distinct paths (SPEC §6).
        db.execute(
            "INSERT INTO environments (id, account_id, name, classification, gateway_id, \
             path_rest, path_soap, path_soap12, path_odata, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            args![
                s(EnvironmentId::new_v7()),
                s(account),
                format!("gw-{g:04}-env-{e}"),
                if e == 0 { "production" } else { "test" },
                s(gateway),
                format!("e{e}/{}", paths.rest),
                format!("e{e}/{}", paths.soap),
                format!("e{e}/{}", paths.soap12),
                format!("e{e}/{}", paths.odata),
                at,
            ],
        )
        .await?;
    }
    for n in 0..shape.nodes_per_gateway {
        db.execute(
            "INSERT INTO nodes (id, account_id, gateway_id, host_name, address, version, \
             joined_at, last_seen, reported_state, reported_at) \
             VALUES ($1, $2, $3, $4, NULL, '0.1.0', $5, $5, 'online', $5)",
            args![
                s(NodeId::new_v7()),
                s(account),
                s(gateway),
                format!("host-{g:04}-{n}"),
                at.0 + i64::try_from(n).unwrap_or(0),
            ],
        )
        .await?;
    }
    if shape.issue_every > 0 && g % shape.issue_every == 0 {
        db.execute(
            "INSERT INTO issues (id, account_id, gateway_id, node_id, code, severity, \
             message, details, first_seen, last_seen) \
             VALUES ($1, $2, $3, NULL, 'VERSION_MISMATCH', 'warning', \
             'nodes run different runtime versions', '{}', $4, $4)",
            args![s(IssueId::new_v7()), s(account), s(gateway), at],
        )
        .await?;
    }
    Ok(())
}
