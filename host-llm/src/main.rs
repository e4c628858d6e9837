//! `llmsh`: the llm-os host program. a thin dispatcher; one module per
//! subcommand under `cmd/`.

mod ui;
mod cmd;
mod llm;
#[cfg(feature = "local")]
mod bench;
mod redteam;

use llmsh::{audit, code, common, link, osd, paths, qemu, receipt};

use clap::{CommandFactory, Parser, Subcommand};

/// llm-os host: plan, verify, prove, apply, audit.
#[derive(Debug, Parser)]
#[command(name = "llmsh", version, about)]
struct Cli {
    /// none on a terminal: the interactive shell.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// verify a plan against the policy; prints the json verdict.
    Check(cmd::check::Args),
    /// prove the verifier's checks sound and complete with Z3.
    Prove(cmd::prove::Args),
    /// fill in a plan's confirmation token (the human's approval).
    Confirm(cmd::confirm::Args),
    /// write this installation's plan and confirmation keys (0600).
    Keygen(cmd::keygen::Args),
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
    /// a live view of the running system (q quits); never sends a plan.
    Top(ui::top::Args),
    /// the interactive shell (what `llmsh` alone starts on a terminal).
    Shell(ui::shell::Args),
    /// a completion script for SHELL (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(CompletionsArgs),
    /// the man page (roff) on stdout.
    Man,
    /// the planner's utility benchmark (tests/intents) with the local model.
    #[cfg(feature = "local")]
    #[command(hide = true)]
    BenchIntents(cmd::bench::Args),
}

/// arguments of `llmsh completions`.
#[derive(Debug, clap::Args)]
struct CompletionsArgs {
    /// the shell to complete for.
    shell: clap_complete::Shell,
}

/// the clap definition of llmsh: completions, the man page and the shell's
/// command completion all come from it.
pub fn cli_command() -> clap::Command {
    Cli::command()
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
    let Some(command) = &cli.command else {
        let exit = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            ui::shell::run(&ui::shell::defaults())
        } else {
            // no terminal to run the shell on: say what to run instead, on stderr.
            eprint!("{}", Cli::command().render_help());
            common::Exit::BadInput
        };
        std::process::exit(exit as i32);
    };
    let exit = match command {
        Command::Top(a) => ui::top::run(a),
        Command::Shell(a) => ui::shell::run(a),
        Command::Completions(a) => {
            clap_complete::generate(a.shell, &mut Cli::command(), "llmsh", &mut std::io::stdout());
            common::Exit::Ok
        }
        Command::Man => match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
            Ok(()) => common::Exit::Ok,
            Err(e) => {
                eprintln!("llmsh man: {e}");
                code::Code::Terminal.exit()
            }
        },
        Command::Check(a) => cmd::check::run(a),
        Command::Prove(a) => cmd::prove::run(a),
        Command::Confirm(a) => cmd::confirm::run(a),
        Command::Keygen(a) => cmd::keygen::run(a),
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
