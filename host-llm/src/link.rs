//! the host's end of a system's link: how `llm-osd` (and the red-team and
//! bench runs, which boot private systems) reach the verifier.
//!
//! requests are framed postcard bytes on a byte stream
//! (`pd_interface::client::LinkClient`), the same on every transport: the
//! hosted system's UART pipe in this process, or the seL4 image in qemu,
//! whose PL011 is on a unix socket (`crate::qemu`). a reply is taken only if
//! it answers the request in flight: a receipt must carry the plan's request
//! id, and late replies to an earlier, timed-out request are skipped.
//!
//! every plan goes out sealed (`Request::Sealed`): a MAC under this
//! installation's plan key over the plan and the boot epoch of the system's
//! last status, which the verifier PD checks before anything else.

use std::time::{Duration, Instant};

use hosted_system::{BootError, Handle, HostedSystem, LinkStream};
use pd_interface::client::{ClientError, LinkClient};
use pd_interface::keys::{Key, Keys};
use pd_interface::link::{Receipt, Reply, Request};
use policy_verifier::{wire, Plan};

use crate::code::Code;

/// how long a hosted reply may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// how long the hosted link is read at a time while waiting for a reply.
const POLL: Duration = Duration::from_millis(100);

/// the hosted system and the host end of its UART.
pub struct HostedLink {
    /// the system (dropping it shuts the system down).
    pub handle: Handle,
    client: LinkClient<LinkStream>,
    /// a request timed out: its reply may still come and is drained first.
    dirty: bool,
}

/// a link to a system this process booted: the transport, and what plans
/// are sealed with.
pub struct Link {
    to: To,
    /// the installation's plan key (none: plans go out unsealed and are
    /// refused, `auth.mac`).
    plan_key: Option<Key>,
    /// the boot epoch of the system's last status.
    epoch: Option<u64>,
}

/// the transport of a [`Link`].
pub enum To {
    /// the hosted system, in this process.
    Hosted(Box<HostedLink>),
    /// the seL4 system in qemu.
    Qemu(Box<crate::qemu::QemuLink>),
}

/// why no link could be had or a request got no answer.
#[derive(Debug)]
pub enum LinkError {
    /// the hosted system did not boot.
    Boot(BootError),
    /// the request got no reply.
    Client(ClientError),
    /// the qemu system could not be built, booted or reached.
    Qemu(crate::qemu::QemuError),
    /// this host's keys could not be read or made.
    Keys(String),
}

/// this host's keys (the installation's, made on first use and said on
/// stderr; the public dev keys with `LLM_OS_DEV_KEYS=1`).
pub fn host_keys() -> Result<Keys, LinkError> {
    crate::common::host_keys().map_err(|e| LinkError::Keys(e.message))
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Boot(e) => write!(f, "{e}"),
            Self::Client(e) => write!(f, "{e}"),
            Self::Qemu(e) => write!(f, "{e}"),
            Self::Keys(m) => write!(f, "{m}"),
        }
    }
}

impl LinkError {
    /// a stable code for the json error form.
    pub fn code(&self) -> Code {
        match self {
            Self::Boot(_) => Code::SystemBoot,
            Self::Client(ClientError::Fault(_)) => Code::SystemPdFault,
            Self::Client(_) => Code::LinkIo,
            Self::Qemu(e) => e.code(),
            Self::Keys(_) => Code::KeyUnavailable,
        }
    }
}


impl Link {
    /// boot the hosted system described at `path` in this process, its
    /// verifier PD on `keys` enforcing `policy`; plans are sealed with their
    /// plan key.
    pub fn boot_hosted(path: &std::path::Path, keys: Keys, policy: &'static policy_verifier::Policy) -> Result<Link, LinkError> {
        let opts = hosted_system::BootOptions { keys, policy: Some(policy), ..Default::default() };
        HostedSystem::boot_with(path, opts).map(|h| Link::hosted(h, keys.plan)).map_err(LinkError::Boot)
    }

    /// a link to an already booted hosted system; plans sealed with `plan_key`.
    pub fn hosted(handle: Handle, plan_key: Key) -> Link {
        let client = LinkClient::new(handle.transport(Some(POLL)));
        Link::new(To::Hosted(Box::new(HostedLink { handle, client, dirty: false })), Some(plan_key))
    }

    /// a link to a booted qemu system whose image carries the plan key
    /// `plan_key`.
    pub fn qemu(q: crate::qemu::QemuLink, plan_key: Key) -> Link {
        Link::new(To::Qemu(Box::new(q)), Some(plan_key))
    }

    fn new(to: To, plan_key: Option<Key>) -> Link {
        Link { to, plan_key, epoch: None }
    }

    /// `hosted` or `qemu`.
    pub fn system(&self) -> &'static str {
        match self.to {
            To::Qemu(_) => "qemu",
            To::Hosted(_) => "hosted",
        }
    }

    /// one request, its reply (replies to other requests are skipped). a
    /// plan is sealed for the epoch of the system's last status (one status
    /// first if there was none); every status renews the epoch, so a system
    /// that restarted gets plans for its new boot.
    pub fn request(&mut self, req: &Request<'_>) -> Result<Reply, LinkError> {
        let sealed;
        let req = match (req, self.plan_key) {
            (Request::Apply(_), Some(key)) => {
                let epoch = match self.epoch {
                    Some(e) => e,
                    None => match self.send(&Request::Status)? {
                        Reply::Status(s) => s.epoch,
                        _ => return Err(LinkError::Client(ClientError::Decode)),
                    },
                };
                sealed = req.sealed(&key, epoch);
                &sealed
            }
            _ => req,
        };
        self.send(req)
    }

    fn send(&mut self, req: &Request<'_>) -> Result<Reply, LinkError> {
        let r = match &mut self.to {
            To::Hosted(h) => h.request(req),
            To::Qemu(q) => q.request(req),
        }
        .map_err(LinkError::Client)?;
        if let Reply::Status(s) = &r {
            self.epoch = Some(s.epoch);
        }
        Ok(r)
    }

    /// sends a (confirmed) plan and returns the verifier PD's receipt.
    pub fn apply(&mut self, plan: &Plan) -> Result<Receipt, Failure> {
        let mut buf = [0u8; wire::MAX_PLAN_BYTES];
        let bytes = match wire::encode(plan, &mut buf) {
            Ok(b) => b.to_vec(),
            Err(e) => return Err((e.code(), "the plan does not fit the wire format".into())),
        };
        self.apply_wire(&bytes)
    }

    /// [`Link::apply`] of a plan already in its wire form.
    pub fn apply_wire(&mut self, bytes: &[u8]) -> Result<Receipt, Failure> {
        match self.request(&Request::Apply(bytes)) {
            Ok(Reply::Receipt(r)) => Ok(r),
            Ok(Reply::Error(e)) => Err((Code::LinkRefused.name(), format!("{e:?}"))),
            Ok(other) => Err((Code::LinkReply.name(), format!("unexpected reply {other:?}"))),
            Err(e) => Err((e.code().name(), e.to_string())),
        }
    }
}

/// a request's failure: its code (`crate::code`; the exit code follows
/// from it) and a message for people.
pub type Failure = (&'static str, String);

impl HostedLink {
    fn request(&mut self, req: &Request<'_>) -> Result<Reply, ClientError> {
        if self.dirty {
            // whatever a timed-out request left on the wire: read until quiet
            let quiet = Instant::now() + REPLY_TIMEOUT;
            while Instant::now() < quiet && self.client.read_reply().is_ok() {}
            self.dirty = false;
        }
        let framed = LinkClient::<LinkStream>::frame_request(req)?;
        self.client.send_raw(&framed)?;
        let started = Instant::now();
        loop {
            match self.client.read_reply() {
                Ok(r) if pd_interface::link::is_stale(req, &r) => continue,
                Ok(r) => return Ok(r),
                Err(ClientError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                    if started.elapsed() >= REPLY_TIMEOUT {
                        self.dirty = true;
                        return Err(ClientError::Io(e));
                    }
                }
                Err(ClientError::Decode) => {}
                Err(e) => {
                    self.dirty = true;
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// a faulted PD is the machinery's failure with a code of its own, not
    /// a generic link error or a timeout.
    #[test]
    fn a_pd_fault_has_its_own_code_and_says_how_to_recover() {
        let e = LinkError::Client(ClientError::Fault("verifier".into()));
        assert_eq!(e.code(), Code::SystemPdFault);
        assert_eq!(e.code().exit(), crate::code::Exit::Machinery);
        let text = e.to_string();
        assert!(text.contains("`verifier` PD faulted") && text.contains("boot"), "{text}");
        assert_eq!(LinkError::Client(ClientError::Closed).code(), Code::LinkIo);
    }
}
