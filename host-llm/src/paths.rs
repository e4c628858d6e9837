//! where the host's files are: the runtime dir of sockets and pidfiles
//! (a private one for a process that boots systems of its own) and the
//! system description to boot. the link, qemu and the red team read it; it
//! reads only the daemon's runtime dir.

use std::path::PathBuf;

static PRIVATE_RUNTIME_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// boots of this process use `dir` for their sockets and pidfiles: a
/// red-team run boots system after system and must not touch the one the
/// user's `llm-osd` runs.
pub fn use_private_runtime_dir(dir: PathBuf) {
    let _ = PRIVATE_RUNTIME_DIR.set(dir);
}

/// where qemu's socket, pidfile and console go: this process's private dir
/// if it set one, else the user's runtime dir ([`crate::osd::runtime_dir`];
/// `llm-osd` checks it is private before it boots anything).
pub fn runtime_dir() -> PathBuf {
    if let Some(d) = PRIVATE_RUNTIME_DIR.get() {
        return d.clone();
    }
    crate::osd::runtime_dir().unwrap_or_default()
}

/// the policy file named by `LLM_OS_POLICY`, if any (else the built-in
/// system/policy.toml): what llm-osd and the benchmark enforce, and what
/// policy-verifier's build script compiles into a qemu image.
pub fn policy_path() -> Option<PathBuf> {
    std::env::var_os("LLM_OS_POLICY").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// the system description to boot: `$LLM_OS_SYSTEM`, else the repository's.
pub fn system_path() -> PathBuf {
    std::env::var_os("LLM_OS_SYSTEM").map_or_else(hosted_system::default_system_path, PathBuf::from)
}

