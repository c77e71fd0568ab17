//! Typed identifiers: a gateway id can never be passed where an environment id is expected.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7), so ids sort by creation time.
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )*};
}

id_type!(
    /// A tenant.
    AccountId,
    /// A person (or service principal) who signs in or holds tokens.
    UserId,
    /// A cluster of gateway nodes.
    GatewayId,
    /// One running `switchyard gateway` process; stable across its restarts.
    NodeId,
    /// A stage for APIs, attached to at most one gateway.
    EnvironmentId,
    /// An API proxy definition.
    ApiId,
    /// An API deployed to an environment.
    DeploymentId,
    /// A personal API token or a node credential.
    TokenId,
    /// A single-use-per-join install token.
    InstallTokenId,
    /// An issue raised on a gateway.
    IssueId,
    /// One audit record.
    AuditId,
);
