//! `llm-osd`, the one host process that talks to a running system, and how
//! `llmsh` reaches it.
//!
//! the daemon owns the system's link (the hosted system in its own process,
//! or qemu's PL011 socket) and the audit log with its key. `llmsh` commands
//! talk to it over a unix socket in a private runtime dir ([`runtime_dir`]):
//! one json object per line, each request with a client-chosen `id` that its
//! reply carries back. the daemon learns each client's uid from the socket's
//! peer credentials, never from the request, and allows a plan only in a
//! session that uid may use (`users` under `[sessions.NAME]` in the policy;
//! default: the daemon's owner only).
//!
//! requests of all clients go through one queue to the one link; a client
//! only ever gets the reply to its own request, and a slow, idle or broken
//! client costs only its own connection.

pub mod client;
pub mod server;
pub mod users;

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// the longest request or reply line, in bytes: a 64 KiB plan and the
/// planner's record of how it came about, with room to spare.
pub const MAX_LINE: usize = 1 << 20;
/// how long a client may take to finish a line it started.
pub const PARTIAL_LINE_TIMEOUT: Duration = Duration::from_secs(10);
/// how long a connection may stay idle between requests: `apply "INTENT"`
/// holds its connection while the llm plans, which can take minutes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(1800);
/// how long a client waits for the daemon's reply: a qemu request retries
/// for up to 30 s, and requests ahead of it in the queue come first.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// connections served at once; more are told `osd.busy`.
pub const MAX_CLIENTS: usize = 64;
/// requests waiting for the link at once; more are told `osd.busy`.
pub const MAX_QUEUE: usize = 64;

/// why the runtime dir cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDirError(pub String);

impl std::fmt::Display for RuntimeDirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// the uid this process runs as (the owner of `/proc/self`).
pub fn my_uid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

/// where the daemon keeps its socket, pidfile and log, and qemu its socket
/// and console: `$LLM_OS_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/llm-os`, else
/// `$XDG_STATE_HOME/llm-os/run` (`~/.local/state/llm-os/run`). never a
/// shared directory such as /tmp: every use goes through [`ensure_private`].
pub fn runtime_dir() -> Result<PathBuf, RuntimeDirError> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = env("LLM_OS_RUNTIME_DIR") {
        return Ok(d);
    }
    if let Some(d) = env("XDG_RUNTIME_DIR") {
        return Ok(d.join("llm-os"));
    }
    let state = env("XDG_STATE_HOME").or_else(|| env("HOME").map(|h| h.join(".local").join("state")));
    match state {
        Some(s) => Ok(s.join("llm-os").join("run")),
        None => Err(RuntimeDirError(
            "no private runtime dir: set XDG_RUNTIME_DIR (or HOME, or LLM_OS_RUNTIME_DIR)".into(),
        )),
    }
}

/// checks that `dir` is a real directory (not a symlink) owned by `uid` with
/// no group or other access; creates it 0700 (and its parents) when missing.
/// a dir that exists with another owner or wider access is refused, never
/// repaired: someone else may be waiting in it.
pub fn ensure_private(dir: &Path, uid: u32) -> Result<(), RuntimeDirError> {
    let err = |m: String| RuntimeDirError(format!("runtime dir `{}`: {m}", dir.display()));
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|e| err(format!("cannot create its parent: {e}")))?;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(err(format!("cannot create it: {e}"))),
            }
            // the umask may have narrowed it further, never widened it
            check_private(dir, uid)
        }
        Err(e) => Err(err(e.to_string())),
        Ok(_) => check_private(dir, uid),
    }
}

/// the checks of [`ensure_private`] on an existing dir.
pub fn check_private(dir: &Path, uid: u32) -> Result<(), RuntimeDirError> {
    let err = |m: String| RuntimeDirError(format!("runtime dir `{}`: {m}", dir.display()));
    let m = std::fs::symlink_metadata(dir).map_err(|e| err(e.to_string()))?;
    if !m.file_type().is_dir() {
        return Err(err("is not a directory (a symlink is refused)".into()));
    }
    if m.uid() != uid {
        return Err(err(format!("is owned by uid {}, not by you (uid {uid}); refusing to use it", m.uid())));
    }
    if m.mode() & 0o077 != 0 {
        return Err(err(format!(
            "has mode {:o}: group or others can reach it; it must be 0700 (refusing to use it)",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// checks that the socket at `path` is a socket owned by `uid` that group
/// and others cannot use.
pub fn check_socket(path: &Path, uid: u32) -> Result<(), RuntimeDirError> {
    let err = |m: String| RuntimeDirError(format!("socket `{}`: {m}", path.display()));
    let m = std::fs::symlink_metadata(path).map_err(|e| err(e.to_string()))?;
    if !std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) {
        return Err(err("is not a socket".into()));
    }
    if m.uid() != uid {
        return Err(err(format!("is owned by uid {}, not by you (uid {uid})", m.uid())));
    }
    if m.mode() & 0o077 != 0 {
        return Err(err(format!("has mode {:o}: group or others can use it", m.mode() & 0o777)));
    }
    Ok(())
}

/// makes `path` mode 0600 whatever the umask made it.
pub fn make_owner_only(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// the daemon's socket in `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("llm-osd.sock")
}

/// the daemon's pidfile in `dir`.
pub fn pidfile_path(dir: &Path) -> PathBuf {
    dir.join("llm-osd.pid")
}

/// the daemon's stderr (boot progress, key generation notes) in `dir`.
pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("llm-osd.log")
}

/// the user's config dir for llm-os secrets: `$XDG_CONFIG_HOME/llm-os`,
/// else `~/.config/llm-os`.
pub fn config_dir() -> Result<PathBuf, RuntimeDirError> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("XDG_CONFIG_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".config")))
        .map(|d| d.join("llm-os"))
        .ok_or_else(|| RuntimeDirError("no config dir: set XDG_CONFIG_HOME or HOME".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("osd-rt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_missing_dir_is_created_owner_only() {
        let d = tmp("new").join("llm-os");
        ensure_private(&d, my_uid()).unwrap();
        let m = std::fs::metadata(&d).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700);
    }

    #[test]
    fn a_group_readable_or_foreign_dir_is_refused_not_repaired() {
        let d = tmp("open");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o750)).unwrap();
        let e = ensure_private(&d, my_uid()).unwrap_err();
        assert!(e.0.contains("mode 750"), "{e}");
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, 0o750, "left as found");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = ensure_private(&d, my_uid().wrapping_add(1)).unwrap_err();
        assert!(e.0.contains("not by you"), "{e}");
    }

    #[test]
    fn a_symlink_to_a_private_dir_is_refused() {
        let d = tmp("link");
        std::fs::create_dir_all(d.join("real")).unwrap();
        std::fs::set_permissions(d.join("real"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("alias")).unwrap();
        assert!(ensure_private(&d.join("alias"), my_uid()).is_err());
    }
}
