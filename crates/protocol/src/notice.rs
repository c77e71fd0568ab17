//! Notices between platform processes that share one database (PostgreSQL `NOTIFY`, or the
//! store's in-process channel on SQLite): what changed, so the process holding a node's link
//! pushes to it. One JSON object per notice, written and read only through [`Notice`].

use model::{GatewayId, NodeId};
use serde::{Deserialize, Serialize};

use crate::link::{Command, CommandOutcome};

/// One notice. A receiver ignores a notice it cannot read (logged): notices are hints, and
/// a listener that missed some resynchronises from the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Notice {
    /// A gateway's configuration was published at `generation`.
    Config {
        #[serde(with = "by_string")]
        gateway: GatewayId,
        generation: u64,
    },
    /// A gateway was deleted: its linked nodes are refused.
    Deleted {
        #[serde(with = "by_string")]
        gateway: GatewayId,
    },
    /// A command for a node linked to another process.
    Command {
        #[serde(with = "by_string")]
        node: NodeId,
        command_id: String,
        command: Command,
    },
    /// A node's answer to a command, reaching the process that holds its link; the process
    /// that sent the command (and waits for the answer) may be another one.
    CommandResult {
        #[serde(with = "by_string")]
        node: NodeId,
        command_id: String,
        result: CommandOutcome,
    },
}

impl Notice {
    /// The notice's payload. Serialising these plain values cannot fail.
    pub fn to_payload(&self) -> String {
        serde_json::to_string(self).expect("a notice serialises")
    }

    pub fn from_payload(payload: &str) -> Result<Notice, serde_json::Error> {
        serde_json::from_str(payload)
    }
}

/// Typed ids as their `Display` string (model stays free of serde).
mod by_string {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    #[test]
    fn notices_round_trip() {
        let notices = [
            Notice::Config {
                gateway: GatewayId(id(1)),
                generation: 7,
            },
            Notice::Deleted {
                gateway: GatewayId(id(2)),
            },
            Notice::Command {
                node: NodeId(id(3)),
                command_id: "c:1".into(),
                command: Command::Stop {
                    drain_timeout_ms: 30_000,
                },
            },
            Notice::CommandResult {
                node: NodeId(id(4)),
                command_id: "c:2".into(),
                result: CommandOutcome::Failed {
                    message: "no upstream".into(),
                },
            },
        ];
        for notice in notices {
            let payload = notice.to_payload();
            assert_eq!(Notice::from_payload(&payload).unwrap(), notice, "{payload}");
        }
        assert_eq!(
            Notice::Config {
                gateway: GatewayId(id(1)),
                generation: 7,
            }
            .to_payload(),
            r#"{"kind":"config","gateway":"00000000-0000-0000-0000-000000000001","generation":7}"#
        );
    }

    #[test]
    fn unreadable_notices_are_errors() {
        for payload in [
            "config:00000000-0000-0000-0000-000000000001:7",
            r#"{"kind":"config","gateway":"not-a-uuid","generation":7}"#,
            r#"{"kind":"config","gateway":"00000000-0000-0000-0000-000000000001"}"#,
            r#"{"kind":"restarted","gateway":"00000000-0000-0000-0000-000000000001"}"#,
        ] {
            assert!(Notice::from_payload(payload).is_err(), "{payload}");
        }
    }
}
