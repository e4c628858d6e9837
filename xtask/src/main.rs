//! `cargo xtask`: the one build entry point for what cargo alone cannot do.
//!
//! - `cargo xtask image [--config debug|release]`: the PD ELFs and
//!   `system/llm-os.system` through `$MICROKIT_SDK/bin/microkit` into
//!   `<target>/llm-os-image/<config>/loader.img` (board/qemu-virt-aarch64).
//! - `cargo xtask qemu [--config debug|release]`: build, then boot it in qemu
//!   with the UART on this terminal (`ctrl-a x` quits).

use std::process::ExitCode;

use board_qemu_virt_aarch64::image::{self, Config, ImageOptions};
use pd_interface::keys::store;
use board_qemu_virt_aarch64::qemu::{self, Serial};

const USAGE: &str = "usage: cargo xtask image|qemu [--config debug|release]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
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

fn build(config: Config) -> Result<image::Image, ExitCode> {
    let sdk = image::sdk_from_env(config).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })?;
    let mut opts = ImageOptions::new(sdk, config);
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
