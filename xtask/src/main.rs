//! `cargo xtask`: the one build entry point for what cargo alone cannot do.
//!
//! - `cargo xtask image [--config debug|release]`: the manifest check
//!   (system-manifest: Microkit's rules, the capability graph, policy.toml),
//!   then the PD ELFs and
//!   `system/llm-os.system` through `$MICROKIT_SDK/bin/microkit` into
//!   `<target>/llm-os-image/<config>/loader.img` (board/qemu-virt-aarch64).
//! - `cargo xtask qemu [--config debug|release]`: build, then boot it in qemu
//!   with the UART on this terminal (`ctrl-a x` quits).
//! - `cargo xtask clippy`: the lints as policy: clippy with `-D warnings` over
//!   every crate of the workspace for the host, and over every PD crate of
//!   the manifest (with the runtime, the interface and policy-verifier) for
//!   `aarch64-unknown-none`. tests may unwrap (clippy.toml).

use std::process::ExitCode;

use board_qemu_virt_aarch64::image::{self, Config, ImageOptions};
use pd_interface::keys::store;
use board_qemu_virt_aarch64::qemu::{self, Serial};

const USAGE: &str = "usage: cargo xtask image|qemu [--config debug|release] | cargo xtask clippy";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if cmd == "clippy" && rest.is_empty() {
        return clippy();
    }
    let mut config = Config::Debug;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next().map(String::as_str).and_then(Config::parse)) {
            ("--config", Some(c)) => config = c,
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match cmd.as_str() {
        "image" => match build(config) {
            Ok(img) => {
                println!("{}", img.loader.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        "qemu" => {
            let img = match build(config) {
                Ok(img) => img,
                Err(code) => return code,
            };
            let Some(q) = qemu::find_qemu() else {
                eprintln!("error: {} not found", qemu::QEMU);
                return ExitCode::FAILURE;
            };
            match qemu::command(&q, &img.loader, &Serial::Stdio).status() {
                Ok(s) if s.success() => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("error: cannot run qemu: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// clippy for the host over the workspace, then for seL4 over the PD crates.
fn clippy() -> ExitCode {
    let m = match system_manifest::build::load() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let root = image::repo_root();
    let mut pds = vec!["pd-runtime".to_owned(), "pd-interface".to_owned(), "policy-verifier".to_owned()];
    let mut images: Vec<&str> = m.system.pds.iter().map(|p| p.program_image.as_str()).collect();
    images.sort();
    images.dedup();
    for img in images {
        match image::package_for(&root, img) {
            Ok((pkg, _)) => pds.push(pkg),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut host = std::process::Command::new(&cargo);
    host.current_dir(&root)
        .args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    let mut sel4 = std::process::Command::new(&cargo);
    sel4.current_dir(&root)
        .args(["clippy", "--target", board_qemu_virt_aarch64::PD_TARGET]);
    for p in &pds {
        sel4.args(["-p", p]);
    }
    sel4.args(["--", "-D", "warnings"]);
    for (what, mut cmd) in [("host", host), ("seL4", sel4)] {
        eprintln!("xtask: clippy ({what})");
        match cmd.status() {
            Ok(s) if s.success() => {}
            Ok(_) => {
                eprintln!("error: clippy ({what}) found problems");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: cannot run cargo clippy: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn build(config: Config) -> Result<image::Image, ExitCode> {
    // the manifest first: the microkit rules with the line at fault, the
    // capability graph, and the agreement with policy.toml, before any
    // PD is compiled or the tool runs
    match system_manifest::build::load() {
        Ok(m) => eprintln!(
            "xtask: manifest ok: {} PDs, {} workers, capability PDs {}",
            m.system.pds.len(),
            m.workers.len(),
            m.capability_pds().join(", ")
        ),
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::FAILURE);
        }
    }
    let sdk = image::sdk_from_env(config).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })?;
    let mut opts = ImageOptions::new(sdk, config);
    opts.system = system_manifest::build::paths().0;
    // the verifier PD gets this installation's keys (LLM_OS_DEV_KEYS=1: the dev keys)
    let keys = store::host_keys(&mut |l| eprintln!("xtask: {l}")).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })?;
    if keys.source == pd_interface::keys::KeySource::Dev {
        eprintln!("xtask: the image carries the public dev keys (tests only)");
    }
    opts.patches.push(image::Patch {
        image: "verifier.elf".into(),
        marker: pd_interface::keys::BLOB_MAGIC.to_vec(),
        bytes: pd_interface::keys::to_blob(&keys).to_vec(),
    });
    image::build(&opts, &mut |line| eprintln!("xtask: {line}")).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}
