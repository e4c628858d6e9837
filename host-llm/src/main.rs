//! `llmsh`: the llm-os host program. a thin dispatcher; one module per
//! subcommand under `cmd/`.

mod cmd;
mod common;
mod link;

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
    /// start the hosted system in the background.
    Boot(cmd::boot::Args),
    /// the running system's state, read back from its PDs.
    Status(cmd::status::Args),
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
    };
    std::process::exit(exit as i32);
}
