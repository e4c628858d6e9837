//! one module per subcommand.

pub mod audit;
#[cfg(feature = "local")]
pub mod bench;
pub mod apply;
pub mod apply_intent;
pub mod boot;
pub mod check;
pub mod confirm;
pub mod daemon;
pub mod intent;
pub mod keygen;
pub mod plan;
pub mod prove;
pub mod redteam;
pub mod status;
