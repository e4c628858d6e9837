//! `llmsh boot [--system hosted|qemu]`: start `llm-osd` in the background,
//! which boots the system and serves it on its socket in the private
//! runtime dir (`llmsh::osd::runtime_dir`). a daemon already running is
//! reported, not restarted. `--system qemu` builds the seL4 image here
//! first (progress on stderr). `llmsh boot --stop` stops the daemon and
//! its system.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::code::Code;
use crate::common::{self, Exit};
use crate::osd::client::{Client, OsdError};

/// arguments of `llmsh boot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// which system: `hosted` (default) or `qemu`.
    #[arg(long, default_value = "hosted")]
    pub system: String,
    /// the audit log llm-osd writes (default `LLMSH_AUDIT_LOG` or $XDG_STATE_HOME/llm-os/audit.jsonl).
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// the policy the system enforces and whose `users` say who may use
    /// which session (default `LLM_OS_POLICY`, else system/policy.toml); a
    /// qemu image must have been built with it (`LLM_OS_POLICY`).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// stop the running llm-osd and its system.
    #[arg(long, conflicts_with_all = ["audit_log", "policy"])]
    pub stop: bool,
}

/// how long a hosted boot may take until llm-osd answers.
const HOSTED_READY: Duration = Duration::from_secs(20);
/// how long a qemu boot may take (the image is built before the clock starts).
const QEMU_READY: Duration = Duration::from_secs(120);

/// runs the command.
pub fn run(args: &Args) -> Exit {
    if args.stop {
        return stop();
    }
    match start(&args.system, args.audit_log.as_deref(), args.policy.as_deref(), &mut |l| eprintln!("llmsh: {l}")) {
        Ok(v) => {
            common::print_json(&v);
            Exit::Ok
        }
        Err(e) => e.report(),
    }
}

fn err(code: Code, message: String) -> OsdError {
    OsdError::new(code, message)
}

/// starts llm-osd for `system` unless one runs; its description as json.
pub fn start(
    system: &str,
    audit_log: Option<&std::path::Path>,
    policy: Option<&std::path::Path>,
    progress: &mut dyn FnMut(&str),
) -> Result<Value, OsdError> {
    if !matches!(system, "hosted" | "qemu") {
        return Err(err(Code::Args, format!("unknown system `{system}` (hosted or qemu)")));
    }
    match Client::connect() {
        Ok(c) if c.system() == system => {
            return Ok(json!({"booted": false, "running": true, "system": system, "pid": c.info["pid"],
                             "audit_log": c.info["audit_log"]}))
        }
        Ok(c) => {
            return Err(err(Code::SystemOther,
                format!("a {} system is running; stop it first (`llmsh boot --stop`)", c.system()),
            ))
        }
        Err(e) if e.is_down() => {}
        Err(e) => return Err(e),
    }
    // the keys first, here: a first use says so on this terminal (llm-osd
    // and the image build then find them)
    crate::common::host_keys().map_err(|e| err(Code::KeyUnavailable, e.message))?;
    let uid = crate::osd::my_uid();
    let dir = crate::osd::runtime_dir()
        .and_then(|d| crate::osd::ensure_private(&d, uid).map(|()| d))
        .map_err(|e| err(Code::OsdRuntimeDir, e.0))?;
    let exe = std::env::current_exe().map_err(|e| err(Code::SystemBoot, format!("cannot find llmsh itself: {e}")))?;
    let osd = exe.with_file_name("llm-osd");
    let mut cmd = Command::new(&osd);
    cmd.args(["--system", system]);
    if system == "qemu" {
        let (qemu, loader) = crate::qemu::build_image(progress).map_err(|e| err(e.code(), e.to_string()))?;
        cmd.arg("--qemu").arg(qemu).arg("--loader").arg(loader);
    }
    if let Some(p) = audit_log {
        cmd.arg("--audit-log").arg(p);
    }
    if let Some(p) = policy {
        cmd.arg("--policy").arg(p);
    }
    let log_path = crate::osd::log_path(&dir);
    let log = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| err(Code::SystemBoot, format!("cannot write `{}`: {e}", log_path.display())))?;
    let stderr = log.try_clone().map_err(|e| err(Code::SystemBoot, e.to_string()))?;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .map_err(|e| err(Code::SystemBoot, format!("cannot start `{}`: {e}", osd.display())))?;
    let ready = if system == "qemu" { QEMU_READY } else { HOSTED_READY };
    let mut shown = 0u64;
    loop {
        shown = relay(&log_path, shown, progress);
        if let Ok(Some(st)) = child.try_wait() {
            relay(&log_path, shown, progress);
            return Err(err(Code::SystemBoot, format!("llm-osd exited ({st}) before serving; see `{}`", log_path.display())));
        }
        match Client::connect() {
            Ok(c) => {
                return Ok(json!({"booted": true, "running": true, "system": system, "pid": child.id(),
                    "socket": crate::osd::socket_path(&dir), "audit_log": c.info["audit_log"],
                    "boot_to_ready_ms": started.elapsed().as_millis() as u64}))
            }
            Err(e) if e.is_down() => {}
            Err(e) => return Err(e),
        }
        if started.elapsed() > ready {
            // by its pid: the child we spawned
            let _ = child.kill();
            let _ = child.wait();
            return Err(err(Code::SystemBoot, format!("llm-osd did not answer within {} s", ready.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// prints the daemon log's new complete lines from `from`; the new offset.
fn relay(path: &std::path::Path, from: u64, progress: &mut dyn FnMut(&str)) -> u64 {
    let Ok(mut f) = std::fs::File::open(path) else { return from };
    if f.seek(SeekFrom::Start(from)).is_err() {
        return from;
    }
    let mut buf = Vec::new();
    let _ = f.take(64 * 1024).read_to_end(&mut buf);
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else { return from };
    for line in String::from_utf8_lossy(buf.get(..end).unwrap_or(&[])).lines() {
        progress(line.strip_prefix("llm-osd: ").unwrap_or(line));
    }
    from + end as u64 + 1
}

fn stop() -> Exit {
    let mut c = match Client::connect() {
        Ok(c) => c,
        Err(e) if e.is_down() => {
            common::print_json(&json!({"stopped": false, "running": false}));
            return Exit::Ok;
        }
        Err(e) => return e.report(),
    };
    let pid = c.info["pid"].clone();
    if let Err(e) = c.call("shutdown", json!({})) {
        return e.report();
    }
    drop(c);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(15) {
        match Client::connect() {
            Err(e) if e.is_down() => {
                common::print_json(&json!({"stopped": true, "pid": pid}));
                return Exit::Ok;
            }
            _ => std::thread::sleep(Duration::from_millis(25)),
        }
    }
    err(Code::SystemStop, "llm-osd did not stop within 15 s".into()).report()
}
