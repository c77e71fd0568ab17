//! Wire types between the platform and gateway nodes: the only serde types both sides share.
//!
//! Everything here is plain data with serde derives and no IO. Each message family carries a
//! format version so a node can refuse what it does not understand instead of misreading it.
//! Receivers validate these raw types into their own runtime types (the gateway does so in
//! `gateway::config`); nothing here promises that a value is valid. `notice` types the notices
//! between platform processes (they carry the link's `Command`).

pub mod compile;
pub mod link;
pub mod notice;
pub mod snapshot;

pub use snapshot::*;
