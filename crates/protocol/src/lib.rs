//! Wire types between the platform and gateway nodes: the only serde types both sides share.
