//! JSON shapes of the settings stored in TEXT columns. Store-private on purpose: the model
//! types carry no serde, and these shapes only have to stay readable by later versions
//! (every field has a default, so adding one needs no migration).

use std::time::Duration;

use model::{ExecutionSettings, GatewaySettings, RetryCase, UpstreamTarget};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::rows::millis;

#[derive(Serialize, Deserialize)]
#[serde(default)]
struct SettingsJson {
    heartbeat_interval_ms: u64,
    force_restart_after_ms: Option<u64>,
    log_retention_days: u32,
    shutdown_delay_ms: u64,
    execution: ExecutionJson,
}

impl Default for SettingsJson {
    fn default() -> Self {
        to_settings_json(&GatewaySettings::default())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(default)]
struct ExecutionJson {
    max_concurrency_per_node: u32,
    retry_attempts: u32,
    connect_timeout_ms: u64,
    execution_timeout_ms: u64,
    retry_cases: Vec<String>,
}

impl Default for ExecutionJson {
    fn default() -> Self {
        to_execution_json(&ExecutionSettings::default())
    }
}

fn to_execution_json(e: &ExecutionSettings) -> ExecutionJson {
    ExecutionJson {
        max_concurrency_per_node: e.max_concurrency_per_node,
        retry_attempts: e.retry_attempts,
        connect_timeout_ms: millis(e.connect_timeout),
        execution_timeout_ms: millis(e.execution_timeout),
        retry_cases: e
            .retry_cases
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
    }
}

// `..default()` keeps this compiling when the model gains fields; they are not persisted yet.
#[allow(clippy::needless_update)]
fn from_execution_json(e: ExecutionJson) -> Result<ExecutionSettings, StoreError> {
    let retry_cases = e
        .retry_cases
        .iter()
        .map(|s| {
            RetryCase::parse(s).ok_or_else(|| StoreError::Corrupt(format!("bad retry case {s:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ExecutionSettings {
        max_concurrency_per_node: e.max_concurrency_per_node,
        retry_attempts: e.retry_attempts,
        connect_timeout: Duration::from_millis(e.connect_timeout_ms),
        execution_timeout: Duration::from_millis(e.execution_timeout_ms),
        retry_cases,
        ..ExecutionSettings::default()
    })
}

fn to_settings_json(s: &GatewaySettings) -> SettingsJson {
    SettingsJson {
        heartbeat_interval_ms: millis(s.heartbeat_interval),
        force_restart_after_ms: s.force_restart_after.map(millis),
        log_retention_days: s.log_retention_days,
        shutdown_delay_ms: millis(s.shutdown_delay),
        execution: to_execution_json(&s.execution),
    }
}

pub(crate) fn settings_to_json(s: &GatewaySettings) -> String {
    // Serializing a struct of numbers and strings cannot fail.
    serde_json::to_string(&to_settings_json(s)).expect("settings serialise")
}

#[allow(clippy::needless_update)]
pub(crate) fn settings_from_json(s: &str) -> Result<GatewaySettings, StoreError> {
    let j: SettingsJson =
        serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("settings: {e}")))?;
    Ok(GatewaySettings {
        heartbeat_interval: Duration::from_millis(j.heartbeat_interval_ms),
        force_restart_after: j.force_restart_after_ms.map(Duration::from_millis),
        log_retention_days: j.log_retention_days,
        shutdown_delay: Duration::from_millis(j.shutdown_delay_ms),
        execution: from_execution_json(j.execution)?,
        ..GatewaySettings::default()
    })
}

pub(crate) fn execution_to_json(e: &ExecutionSettings) -> String {
    serde_json::to_string(&to_execution_json(e)).expect("execution settings serialise")
}

pub(crate) fn execution_from_json(s: &str) -> Result<ExecutionSettings, StoreError> {
    let j: ExecutionJson =
        serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("execution: {e}")))?;
    from_execution_json(j)
}

pub(crate) fn targets_to_json(t: &[UpstreamTarget]) -> String {
    let urls: Vec<&str> = t.iter().map(|t| t.url.as_str()).collect();
    serde_json::to_string(&urls).expect("a list of strings serialises")
}

pub(crate) fn targets_from_json(s: &str) -> Result<Vec<UpstreamTarget>, StoreError> {
    let urls: Vec<String> = serde_json::from_str(s)
        .map_err(|e| StoreError::Corrupt(format!("upstream targets: {e}")))?;
    Ok(urls.into_iter().map(|url| UpstreamTarget { url }).collect())
}
