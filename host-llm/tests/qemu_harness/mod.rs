//! what the seL4 tests share: the check that an SDK and qemu exist (a skip
//! outside CI, a failure under `CI=true`), an llmsh with its own runtime dir
//! and installation, and the guard that stops the qemu it booted.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::path::{Path, PathBuf};
use std::process::Command;

use board_qemu_virt_aarch64::image::{self, Config};
use board_qemu_virt_aarch64::qemu::find_qemu;
use serde_json::Value;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// why the seL4 tests cannot run here, if they cannot: no SDK or no qemu.
/// under `CI=true` that is a failure, never a skip.
pub fn cannot_run() -> Option<String> {
    let why = if let Err(e) = image::sdk_from_env(Config::Debug) {
        let at = std::env::var("MICROKIT_SDK").unwrap_or_default();
        format!("no Microkit SDK at `{at}` ({e})")
    } else if find_qemu().is_none() {
        "qemu-system-aarch64 not found".to_owned()
    } else {
        return None;
    };
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and the seL4 test cannot run: {why}");
    println!("SKIPPED: {why}");
    Some(why)
}

/// an llmsh with its own runtime dir (socket, pidfile, console) and a fresh
/// installation (keys made on first use, put into the image at build);
/// `policy` builds the image with another policy file.
pub struct Llmsh {
    pub run_dir: PathBuf,
    pub policy: Option<PathBuf>,
}

impl Llmsh {
    pub fn cmd(&self, args: &[&str]) -> (i32, Value, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmsh"));
        cmd.args(args)
            .env("XDG_RUNTIME_DIR", &self.run_dir)
            .env("XDG_CONFIG_HOME", self.run_dir.join("cfg"))
            .env_remove("LLM_OS_DEV_KEYS")
            .env("LLM_OS_QEMU_GDB", "1")
            .env("LLMSH_AUDIT_LOG", self.run_dir.join("audit.jsonl"));
        if let Some(p) = &self.policy {
            cmd.env("LLM_OS_POLICY", p);
        }
        let out = cmd.output().expect("llmsh runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let v = stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), v, format!("{stdout}\n{stderr}"))
    }

    pub fn dir(&self) -> PathBuf {
        self.run_dir.join("llm-os")
    }

    /// the installation's keys, as the image carries them.
    pub fn keys(&self) -> pd_interface::keys::Keys {
        pd_interface::keys::store::load(&self.run_dir.join("cfg/llm-os")).expect("keys made on first use")
    }
}

/// stops llm-osd (and with it qemu) by the pid `llmsh boot` reported, whatever happens.
pub struct Qemu(pub u32);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

pub fn plan_file(dir: &Path, name: &str, plan: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, plan.to_string()).expect("write plan");
    p
}
