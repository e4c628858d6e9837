//! `llmsh`: the llm-os host program. a thin dispatcher; one module per
//! subcommand under `cmd/`.

mod cmd;
mod llm;
mod redteam;

use llmsh::{audit, common, link, osd, qemu, receipt};

use clap::{Parser, Subcommand};

/// llm-os host: plan, verify, prove, apply, audit.
#[derive(Debug, Parser)]
#[command(name = "llmsh", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// verify a plan against the policy; prints the json verdict.
    Check(cmd::check::Args),
    /// prove the verifier's checks sound and complete with Z3.
    Prove(cmd::prove::Args),
    /// fill in a plan's confirmation token (the human's approval).
    Confirm(cmd::confirm::Args),
    /// verify and execute a plan on the running system; prints the receipt.
    Apply(cmd::apply::Args),
    /// start llm-osd and the system (hosted or qemu) in the background.
    Boot(cmd::boot::Args),
    /// the running system's state, read back from its PDs.
    Status(cmd::status::Args),
    /// plan an intent with the llm; the verifier judges, nothing runs.
    Plan(cmd::plan::Args),
    /// list the audit log and verify its hash chain.
    Audit(cmd::audit::Args),
    /// run the red-team corpus; attack success measured at the capability PDs.
    Redteam(cmd::redteam::Args),
    /// the planner's utility benchmark (tests/intents) with the local model.
    #[cfg(feature = "local")]
    #[command(hide = true)]
    BenchIntents(cmd::bench::Args),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // help and version are not errors; everything else is bad input.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let exit = match &cli.command {
        Command::Check(a) => cmd::check::run(a),
        Command::Prove(a) => cmd::prove::run(a),
        Command::Confirm(a) => cmd::confirm::run(a),
        Command::Apply(a) => cmd::apply::run(a),
        Command::Boot(a) => cmd::boot::run(a),
        Command::Status(a) => cmd::status::run(a),
        Command::Plan(a) => cmd::plan::run(a),
        Command::Audit(a) => cmd::audit::run(a),
        Command::Redteam(a) => cmd::redteam::run(a),
        #[cfg(feature = "local")]
        Command::BenchIntents(a) => cmd::bench::run(a),
    };
    std::process::exit(exit as i32);
}
