//! the link client of llmsh: how the host reaches the verifier.
//!
//! requests are framed postcard bytes on a byte stream
//! (`pd_interface::client::LinkClient`), the same on every transport:
//! a running hosted system's unix socket (`llmsh boot`), or a hosted system
//! booted in this process for the duration of one command. (qemu's serial
//! port is the third transport; it is not wired here yet.)

use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hosted_system::{BootError, Handle, HostedSystem};
use pd_interface::client::{ClientError, LinkClient};
use pd_interface::link::{Reply, Request};

/// how long a reply may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// where a hosted system started by `llmsh boot` keeps its socket and
/// pidfile: `$XDG_RUNTIME_DIR/llm-os`, else `/tmp/llm-os-$UID`.
pub fn runtime_dir() -> PathBuf {
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
    /// socket i/o.
    Io(io::Error),
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
            Self::Io(e) => write!(f, "{e}"),
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
            Self::Io(_) => "link.io",
        }
    }
}

impl Link {
    /// attach to the running hosted system, else boot one from `system` for
    /// the duration of this link.
    pub fn attach_or_boot(system: &Path) -> Result<Link, LinkError> {
        match connect_running() {
            Some(s) => Ok(Link::Attached(LinkClient::new(s))),
            None => HostedSystem::boot(system)
                .map(|h| Link::InProcess(Box::new(h)))
                .map_err(LinkError::Boot),
        }
    }

    /// attach to the running hosted system only.
    pub fn attach() -> Result<Link, LinkError> {
        connect_running()
            .map(|s| Link::Attached(LinkClient::new(s)))
            .ok_or_else(|| LinkError::NotRunning(socket_path()))
    }

    /// one request, one reply.
    pub fn request(&mut self, req: &Request<'_>) -> Result<Reply, LinkError> {
        match self {
            Link::Attached(c) => c.request(req),
            Link::InProcess(h) => h.request(req),
        }
        .map_err(LinkError::Client)
    }
}
