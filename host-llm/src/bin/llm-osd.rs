//! `llm-osd`: the one host process that talks to a running llm-os system
//! (hosted, or seL4 in qemu). `llmsh boot` starts it; see `llmsh::osd`.

use std::path::PathBuf;

use clap::Parser;
use llmsh::osd::server::{self, Options, SystemSpec};

/// llm-os daemon: owns the system's link and the audit log.
#[derive(Debug, Parser)]
#[command(name = "llm-osd", version, about)]
struct Args {
    /// which system: `hosted` or `qemu`.
    #[arg(long, default_value = "hosted")]
    system: String,
    /// the .system file the hosted system boots (default: `$LLM_OS_SYSTEM` or the repository's).
    #[arg(long)]
    system_file: Option<PathBuf>,
    /// qemu: the `qemu-system-aarch64` binary.
    #[arg(long)]
    qemu: Option<PathBuf>,
    /// qemu: the built image (`cargo xtask image`'s loader).
    #[arg(long)]
    loader: Option<PathBuf>,
    /// the policy the system enforces and whose `users` say who may use which
    /// session (default: `LLM_OS_POLICY`, else system/policy.toml).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// the audit log (default: `LLMSH_AUDIT_LOG` or $XDG_STATE_HOME/llm-os/audit.jsonl).
    #[arg(long)]
    audit_log: Option<PathBuf>,
}

fn main() {
    let a = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let system = match (a.system.as_str(), a.qemu, a.loader) {
        ("hosted", _, _) => SystemSpec::Hosted(a.system_file.unwrap_or_else(llmsh::paths::system_path)),
        ("qemu", Some(qemu), Some(loader)) => SystemSpec::Qemu { qemu, loader },
        ("qemu", _, _) => {
            eprintln!("llm-osd: --system qemu needs --qemu and --loader (`llmsh boot --system qemu` builds the image)");
            std::process::exit(2);
        }
        (other, _, _) => {
            eprintln!("llm-osd: unknown system `{other}` (hosted or qemu)");
            std::process::exit(2);
        }
    };
    let opts = Options { system, policy: a.policy, audit_log: llmsh::audit::AuditLog::resolve(a.audit_log.as_deref()) };
    std::process::exit(server::run(opts) as i32);
}
