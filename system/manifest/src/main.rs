//! `system-manifest check|system-rs|policy-rs [SYSTEM [POLICY]]`: check the
//! manifest (exit 1 with `file:line: reason`), or print the generated code.

use std::path::PathBuf;
use std::process::ExitCode;

use system_manifest::{build, codegen, Manifest};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (default_system, default_policy) = build::paths();
    let system = args.get(1).map_or(default_system, PathBuf::from);
    let policy = args.get(2).map_or(default_policy, PathBuf::from);
    let m = match Manifest::load(&system, &policy) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.first().map(String::as_str) {
        Some("check") => {
            let caps = m.capability_pds();
            println!(
                "{}: ok: {} PDs, {} workers, capability PDs {}",
                system.display(),
                m.system.pds.len(),
                m.workers.len(),
                caps.join(", ")
            );
            ExitCode::SUCCESS
        }
        Some("system-rs") => match codegen::system_rs(&m) {
            Ok(s) => {
                print!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Some("policy-rs") => {
            print!("{}", codegen::policy_rs(&m));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: system-manifest check|system-rs|policy-rs [SYSTEM [POLICY]]");
            ExitCode::from(2)
        }
    }
}
