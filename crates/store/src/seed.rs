//! Bulk data for benchmarks and load tests: many gateways with environments, nodes and
//! issues in one account, written in one transaction without audit records (seed data is
//! not anybody's decision).

use model::*;

use crate::{Store, StoreError, s, with_tx};

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
    with_tx!(store, |c| {
        for g in 0..shape.gateways {
            let gateway = GatewayId::new_v7();
            sqlx::query(
                "INSERT INTO gateways (id, account_id, name, public_url, bind_address, settings, \
                 created_at, status_state, status_since) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'online', $7)",
            )
            .bind(s(gateway))
            .bind(s(account))
            .bind(format!("gw-{g:04}"))
            .bind(format!("https://gw-{g:04}.example.com"))
            .bind(DEFAULT_BIND_ADDRESS)
            .bind(&settings)
            .bind(at.0)
            .execute(&mut *c)
            .await?;
            for e in 0..shape.environments_per_gateway {
                // Each environment on a gateway needs distinct paths (SPEC §6).
                sqlx::query(
                    "INSERT INTO environments (id, account_id, name, classification, gateway_id, \
                     path_rest, path_soap, path_soap12, path_odata, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(s(EnvironmentId::new_v7()))
                .bind(s(account))
                .bind(format!("gw-{g:04}-env-{e}"))
                .bind(if e == 0 { "production" } else { "test" })
                .bind(s(gateway))
                .bind(format!("e{e}/{}", paths.rest))
                .bind(format!("e{e}/{}", paths.soap))
                .bind(format!("e{e}/{}", paths.soap12))
                .bind(format!("e{e}/{}", paths.odata))
                .bind(at.0)
                .execute(&mut *c)
                .await?;
            }
            for n in 0..shape.nodes_per_gateway {
                sqlx::query(
                    "INSERT INTO nodes (id, account_id, gateway_id, host_name, address, version, \
                     joined_at, last_seen, reported_state, reported_at) \
                     VALUES ($1, $2, $3, $4, NULL, '0.1.0', $5, $5, 'online', $5)",
                )
                .bind(s(NodeId::new_v7()))
                .bind(s(account))
                .bind(s(gateway))
                .bind(format!("host-{g:04}-{n}"))
                .bind(at.0 + i64::try_from(n).unwrap_or(0))
                .execute(&mut *c)
                .await?;
            }
            if shape.issue_every > 0 && g % shape.issue_every == 0 {
                sqlx::query(
                    "INSERT INTO issues (id, account_id, gateway_id, node_id, code, severity, \
                     message, details, first_seen, last_seen) \
                     VALUES ($1, $2, $3, NULL, 'VERSION_MISMATCH', 'warning', \
                     'nodes run different runtime versions', '{}', $4, $4)",
                )
                .bind(s(IssueId::new_v7()))
                .bind(s(account))
                .bind(s(gateway))
                .bind(at.0)
                .execute(&mut *c)
                .await?;
            }
        }
        for u in 0..shape.unattached_environments {
            sqlx::query(
                "INSERT INTO environments (id, account_id, name, classification, gateway_id, \
                 path_rest, path_soap, path_soap12, path_odata, created_at) \
                 VALUES ($1, $2, $3, 'test', NULL, $4, $5, $6, $7, $8)",
            )
            .bind(s(EnvironmentId::new_v7()))
            .bind(s(account))
            .bind(format!("unattached-{u:03}"))
            .bind(&paths.rest)
            .bind(&paths.soap)
            .bind(&paths.soap12)
            .bind(&paths.odata)
            .bind(at.0)
            .execute(&mut *c)
            .await?;
        }
    });
    Ok(())
}
