//! The typed client of the REST API, over the same wire types the handlers use ([`crate::dto`],
//! [`crate::error::ErrorEnvelope`]): the one client of `switchyard up`, the admin commands and
//! the link benchmark, so a changed DTO changes every caller at compile time.
//!
//! Failures keep what the platform said: its error envelope when it answered with one, else
//! what happened here (unreachable, another server answering, an unreadable body).

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::dto::{
    ApiDto, ApiList, AttachEnvironment, CreateApi, CreateDeployment, CreateEnvironment,
    CreateInstallToken, CreatedInstallToken, DeploymentDto, DeploymentList,
    EnvironmentConfiguration, EnvironmentDto, EnvironmentList, GatewayListDto, NodeList, UpdateApi,
};
use crate::error::ErrorEnvelope;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The platform did not answer (refused, timed out, reset).
    #[error("cannot reach the platform at {url} ({reason})")]
    Unreachable { url: String, reason: String },
    /// The REST API refused the request; its envelope says why.
    #[error("{status} {}: {}", .envelope.error.code, .envelope.error.message)]
    Refused {
        status: u16,
        envelope: ErrorEnvelope,
    },
    /// Not the platform's answer (a proxy's, or another server on that port), or a body that
    /// does not read as the expected type.
    #[error("{url} answered {status}: {what}")]
    Unexpected {
        url: String,
        status: u16,
        what: String,
    },
}

/// A REST client for one platform and one bearer token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client of the platform at `base` (e.g. `http://127.0.0.1:8080`; a trailing slash is
    /// ignored) with a personal API token; `timeout` bounds each whole call.
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<Client, ClientError> {
        let base = base.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ClientError::Unreachable {
                url: base.clone(),
                reason: e.to_string(),
            })?;
        Ok(Client {
            http,
            base,
            token: token.trim().to_owned(),
        })
    }

    /// The base URL calls go to.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One call answering the API's JSON as it came (`null` for an empty body). The admin
    /// commands print it unchanged with `--json`; everything else uses the typed calls.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<Value, ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |error: reqwest::Error| ClientError::Unreachable {
            url: self.base.clone(),
            reason: reason(&error),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        let unexpected = |what: String| ClientError::Unexpected {
            url: self.base.clone(),
            status: status.as_u16(),
            what,
        };
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
                Ok(envelope) => ClientError::Refused {
                    status: status.as_u16(),
                    envelope,
                },
                Err(_) => unexpected("no error envelope".to_owned()),
            });
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| unexpected(format!("not JSON: {e}")))
    }

    /// One call whose answer is read as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let value = self.send(method, path, body).await?;
        serde_json::from_value(value).map_err(|e| ClientError::Unexpected {
            url: self.base.clone(),
            status: 200,
            what: format!("an unexpected body for {path}: {e}"),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn create_install_token(
        &self,
        body: &CreateInstallToken,
    ) -> Result<CreatedInstallToken, ClientError> {
        self.call(Method::POST, "/api/v1/install-tokens", Some(body))
            .await
    }

    pub async fn gateways(&self) -> Result<GatewayListDto, ClientError> {
        self.get("/api/v1/gateways").await
    }

    pub async fn gateway_nodes(&self, gateway: Uuid) -> Result<NodeList, ClientError> {
        self.get(&format!("/api/v1/gateways/{gateway}/nodes")).await
    }

    /// The first page of at most `limit` environments.
    pub async fn environments(&self, limit: u32) -> Result<EnvironmentList, ClientError> {
        self.get(&format!("/api/v1/environments?limit={limit}"))
            .await
    }

    pub async fn create_environment(
        &self,
        body: &CreateEnvironment,
    ) -> Result<EnvironmentDto, ClientError> {
        self.call(Method::POST, "/api/v1/environments", Some(body))
            .await
    }

    pub async fn attach_environment(
        &self,
        environment: Uuid,
        body: &AttachEnvironment,
    ) -> Result<EnvironmentDto, ClientError> {
        let path = format!("/api/v1/environments/{environment}/gateway");
        self.call(Method::PUT, &path, Some(body)).await
    }

    pub async fn configure_environment(
        &self,
        environment: Uuid,
        body: &EnvironmentConfiguration,
    ) -> Result<EnvironmentDto, ClientError> {
        let path = format!("/api/v1/environments/{environment}/configuration");
        self.call(Method::PUT, &path, Some(body)).await
    }

    /// The first page of at most `limit` APIs.
    pub async fn apis(&self, limit: u32) -> Result<ApiList, ClientError> {
        self.get(&format!("/api/v1/apis?limit={limit}")).await
    }

    pub async fn create_api(&self, body: &CreateApi) -> Result<ApiDto, ClientError> {
        self.call(Method::POST, "/api/v1/apis", Some(body)).await
    }

    pub async fn update_api(&self, api: Uuid, body: &UpdateApi) -> Result<ApiDto, ClientError> {
        self.call(Method::PATCH, &format!("/api/v1/apis/{api}"), Some(body))
            .await
    }

    pub async fn deployments(&self, api: Uuid) -> Result<DeploymentList, ClientError> {
        self.get(&format!("/api/v1/apis/{api}/deployments")).await
    }

    pub async fn create_deployment(
        &self,
        api: Uuid,
        body: &CreateDeployment,
    ) -> Result<DeploymentDto, ClientError> {
        let path = format!("/api/v1/apis/{api}/deployments");
        self.call(Method::POST, &path, Some(body)).await
    }
}

/// The innermost cause, which names what went wrong (connection refused, DNS, …), or
/// "timed out".
fn reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
