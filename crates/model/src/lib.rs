//! The vocabulary and the rules of Switchyard, with no IO.
//!
//! Everything here is a plain value or a pure function: validation of names and URL paths,
//! API path-conflict detection, and the gateway status state machine. Time is always an
//! argument ([`Timestamp`]); nothing in this crate reads a clock, a file or a socket.

pub mod conflict;
pub mod entity;
pub mod id;
pub mod migration;
pub mod paths;
pub mod status;
pub mod time;
pub mod validate;

pub use entity::*;
pub use id::*;
pub use time::Timestamp;
