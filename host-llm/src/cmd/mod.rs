//! one module per subcommand.

pub mod apply;
pub mod boot;
pub mod check;
pub mod confirm;
pub mod prove;
pub mod status;
