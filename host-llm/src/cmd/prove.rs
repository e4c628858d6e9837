//! `llmsh prove [--json]`: see policy-prover.

use crate::common::Exit;

/// arguments of `llmsh prove`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// print the obligations as json.
    #[arg(long)]
    pub json: bool,
}

/// runs the command.
pub fn run(_args: &Args) -> Exit {
    println!("{{\"error\":{{\"code\":\"prove.unavailable\",\"message\":\"the prover is not built yet\"}}}}");
    Exit::Rejected
}
