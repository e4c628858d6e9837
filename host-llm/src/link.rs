//! the link client of llmsh: how the host reaches the verifier.
//!
//! requests are framed postcard bytes on a byte stream
//! (`pd_interface::client::LinkClient`), the same on every transport:
//! a running hosted system's unix socket (`llmsh boot`), or a hosted system
//! booted in this process for the duration of one command, or the seL4
//! image in qemu, whose PL011 is on a unix socket (`crate::qemu`).

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hosted_system::{BootError, Handle, HostedSystem};
use pd_interface::client::{ClientError, LinkClient};
use pd_interface::link::{Reply, Request};

/// how long a reply may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

static PRIVATE_RUNTIME_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// boots of this process use `dir` for their sockets and pidfiles: a
/// red-team run boots system after system and must not touch one the user
/// started with `llmsh boot`.
pub fn use_private_runtime_dir(dir: PathBuf) {
    let _ = PRIVATE_RUNTIME_DIR.set(dir);
}

/// where a hosted system started by `llmsh boot` keeps its socket and
/// pidfile: `$XDG_RUNTIME_DIR/llm-os`, else `/tmp/llm-os-$UID`.
pub fn runtime_dir() -> PathBuf {
    if let Some(d) = PRIVATE_RUNTIME_DIR.get() {
        return d.clone();
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("llm-os"),
        _ => {
            let uid = std::fs::metadata("/proc/self")
                .map(|m| m.uid())
                .unwrap_or(0);
            PathBuf::from(format!("/tmp/llm-os-{uid}"))
        }
    }
}

/// the hosted system's link socket.
pub fn socket_path() -> PathBuf {
    runtime_dir().join("hosted.sock")
}

/// the hosted system's pidfile.
pub fn pidfile_path() -> PathBuf {
    runtime_dir().join("hosted.pid")
}

/// the system description llmsh boots: `$LLM_OS_SYSTEM`, else the repository's.
pub fn system_path() -> PathBuf {
    std::env::var_os("LLM_OS_SYSTEM").map_or_else(hosted_system::default_system_path, PathBuf::from)
}

/// a connection to a running hosted system, if one is up.
pub fn connect_running() -> Option<UnixStream> {
    let s = UnixStream::connect(socket_path()).ok()?;
    s.set_read_timeout(Some(REPLY_TIMEOUT)).ok()?;
    Some(s)
}

/// a link to the system: attached to a running one, or booted here.
pub enum Link {
    /// `llmsh boot`'s system, over its unix socket.
    Attached(LinkClient<UnixStream>),
    /// a system booted in this process; it stops when this is dropped.
    InProcess(Box<Handle>),
    /// the seL4 system in qemu (attached, or booted for this link).
    Qemu(Box<crate::qemu::QemuLink>),
}

/// why no link could be had.
#[derive(Debug)]
pub enum LinkError {
    /// the hosted system did not boot.
    Boot(BootError),
    /// the request got no reply.
    Client(ClientError),
    /// no hosted system is running (for commands that need one).
    NotRunning(PathBuf),
    /// the qemu system could not be built, booted or reached.
    Qemu(crate::qemu::QemuError),
    /// no such system (`--system`).
    UnknownSystem(String),
    /// this host's keys could not be read or made.
    Keys(String),
}

/// this host's keys (the installation's, made on first use; dev with
/// `LLM_OS_DEV_KEYS=1`).
pub fn host_keys() -> Result<pd_interface::keys::Keys, LinkError> {
    crate::common::host_keys().map_err(|e| LinkError::Keys(e.message))
}

/// a link client that seals plans with this host's plan key.
pub fn sealing_client<S: std::io::Read + std::io::Write>(stream: S) -> Result<LinkClient<S>, LinkError> {
    Ok(LinkClient::new(stream).with_plan_key(host_keys()?.plan))
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Boot(e) => write!(f, "{e}"),
            Self::Client(e) => write!(f, "{e}"),
            Self::NotRunning(p) => write!(
                f,
                "no hosted system is running (no socket at `{}`); start one with `llmsh boot`",
                p.display()
            ),
            Self::Qemu(e) => write!(f, "{e}"),
            Self::UnknownSystem(s) => write!(f, "unknown system `{s}` (hosted or qemu)"),
            Self::Keys(m) => write!(f, "{m}"),
        }
    }
}

impl LinkError {
    /// a stable code for the json error form.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Boot(_) => "system.boot",
            Self::Client(_) => "link.io",
            Self::NotRunning(_) => "system.not_running",
            Self::Qemu(e) => e.code(),
            Self::UnknownSystem(_) => "args",
            Self::Keys(_) => "key.unavailable",
        }
    }
}

impl Link {
    /// attach to the running hosted system, else boot one from `system` for
    /// the duration of this link.
    pub fn attach_or_boot(system: &Path) -> Result<Link, LinkError> {
        match connect_running() {
            Some(s) => Ok(Link::Attached(sealing_client(s)?)),
            None => {
                let opts = hosted_system::BootOptions { keys: host_keys()?, ..Default::default() };
                HostedSystem::boot_with(system, opts)
                    .map(|h| Link::InProcess(Box::new(h)))
                    .map_err(LinkError::Boot)
            }
        }
    }

    /// `--system hosted|qemu`: attach to that system if it runs, else boot
    /// it for the duration of this link (qemu: progress lines on stderr).
    pub fn open(system: &str, system_file: &Path) -> Result<Link, LinkError> {
        match system {
            "hosted" => Self::attach_or_boot(system_file),
            "qemu" => crate::qemu::attach_or_boot(&mut |l| eprintln!("llmsh: {l}"))
                .map(|q| Link::Qemu(Box::new(q)))
                .map_err(LinkError::Qemu),
            other => Err(LinkError::UnknownSystem(other.to_owned())),
        }
    }

    /// attach to the running hosted system, else to a running qemu system.
    pub fn attach() -> Result<Link, LinkError> {
        if let Some(s) = connect_running() {
            return Ok(Link::Attached(sealing_client(s)?));
        }
        if let Some(q) = crate::qemu::attach() {
            return Ok(Link::Qemu(Box::new(q)));
        }
        Err(LinkError::NotRunning(socket_path()))
    }

    /// `hosted` or `qemu`.
    pub fn system(&self) -> &'static str {
        match self {
            Link::Qemu(_) => "qemu",
            _ => "hosted",
        }
    }

    /// one request, one reply.
    pub fn request(&mut self, req: &Request<'_>) -> Result<Reply, LinkError> {
        match self {
            Link::Attached(c) => c.request(req),
            Link::InProcess(h) => h.request(req),
            Link::Qemu(q) => q.request(req),
        }
        .map_err(LinkError::Client)
    }
}
