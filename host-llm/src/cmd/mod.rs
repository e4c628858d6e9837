//! one module per subcommand.

pub mod check;
pub mod confirm;
pub mod prove;
