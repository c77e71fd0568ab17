//! One module per subcommand.

pub mod admin;
pub mod gateway;
pub mod platform;
pub mod up;
