//! `llmsh boot [--system hosted|qemu]`: start the hosted system in the
//! background, serving its link on a unix socket (see `link::runtime_dir`),
//! with a pidfile. a system already running is reported, not restarted.
//! `--system qemu`: build the seL4 image (if needed), start qemu with the
//! PL011 on a unix socket, wait until the system answers, leave it running.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{self, Exit};
use crate::link;

/// arguments of `llmsh boot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// which system: `hosted` (default) or `qemu`.
    #[arg(long, default_value = "hosted")]
    pub system: String,
    /// run in the foreground (what the background process runs).
    #[arg(long, hide = true)]
    pub foreground: bool,
}

fn error(code: &str, message: String) -> Exit {
    common::print_json(&json!({"error": {"code": code, "message": message}}));
    Exit::Rejected
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    match args.system.as_str() {
        "hosted" => {}
        "qemu" => return boot_qemu(),
        other => {
            common::print_json(
                &json!({"error": {"code": "args", "message": format!("unknown system `{other}`")}}),
            );
            return Exit::BadInput;
        }
    }
    if args.foreground {
        return foreground();
    }
    if link::connect_running().is_some() {
        let pid = std::fs::read_to_string(link::pidfile_path()).unwrap_or_default();
        common::print_json(
            &json!({"booted": false, "running": true, "socket": link::socket_path(), "pid": pid.trim().parse::<u64>().ok()}),
        );
        return Exit::Ok;
    }
    // the keys first, here: a first use says so on this terminal, not the background's
    if let Err(e) = link::host_keys() {
        return error("key.unavailable", e.to_string());
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return error("system.boot", format!("cannot find llmsh itself: {e}")),
    };
    let child = Command::new(exe)
        .args(["boot", "--foreground"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            return error(
                "system.boot",
                format!("cannot start the hosted system: {e}"),
            )
        }
    };
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if link::connect_running().is_some() {
            common::print_json(
                &json!({"booted": true, "running": true, "socket": link::socket_path(), "pid": child.id()}),
            );
            return Exit::Ok;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    error(
        "system.boot",
        "the hosted system did not come up within 10 s".into(),
    )
}

fn foreground() -> Exit {
    let dir = link::runtime_dir();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return error(
            "system.boot",
            format!("cannot create `{}`: {e}", dir.display()),
        );
    }
    let keys = match link::host_keys() {
        Ok(k) => k,
        Err(e) => return error("key.unavailable", e.to_string()),
    };
    if keys.source == hosted_system::KeySource::Dev {
        eprintln!("llmsh: booting on the public dev keys (LLM_OS_DEV_KEYS=1): tests only");
    }
    let opts = hosted_system::BootOptions { keys, ..Default::default() };
    let sys = match hosted_system::HostedSystem::boot_with(&link::system_path(), opts) {
        Ok(s) => s,
        Err(e) => return error("system.boot", e.to_string()),
    };
    let sock = link::socket_path();
    let _ = std::fs::remove_file(&sock);
    let listener = match std::os::unix::net::UnixListener::bind(&sock) {
        Ok(l) => l,
        Err(e) => {
            return error(
                "system.boot",
                format!("cannot listen on `{}`: {e}", sock.display()),
            )
        }
    };
    let _ = std::fs::write(link::pidfile_path(), format!("{}\n", std::process::id()));
    let res = sys.serve_unix(listener);
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(link::pidfile_path());
    match res {
        Ok(()) => Exit::Ok,
        Err(e) => error("system.serve", e.to_string()),
    }
}

/// `llmsh boot --system qemu`: progress on stderr, the result as json.
fn boot_qemu() -> Exit {
    if let Some(q) = crate::qemu::attach() {
        common::print_json(&json!({"system": "qemu", "booted": false, "running": true,
            "socket": crate::qemu::socket_path(), "pid": q.pid}));
        return Exit::Ok;
    }
    match crate::qemu::boot(&mut |l| eprintln!("llmsh: {l}")) {
        Ok(mut q) => {
            q.detach();
            common::print_json(&json!({"system": "qemu", "booted": true, "running": true,
                "socket": crate::qemu::socket_path(), "pid": q.pid,
                "console": crate::qemu::console_path(),
                "boot_to_ready_ms": q.boot_to_ready.map(|t| t.as_millis() as u64)}));
            Exit::Ok
        }
        Err(e) => error(e.code(), e.to_string()),
    }
}
