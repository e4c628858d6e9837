//! the invocation log: every protected call that reaches a capability PD
//! (process, memory, timer, firmware), decoded and recorded in arrival
//! order. hosted-only instrumentation for the red-team and fault tests: it
//! wraps a PD's handler from outside, so no PD's logic knows about it, and
//! nothing of it exists in an seL4 image.
//!
//! the log is what "measured at the capability PDs" means in
//! docs/security.md: an attacker succeeds only if an invocation shows up
//! here that the policy would not allow.

use std::sync::{Arc, Mutex};

use pd_interface::{firmware, memory, msg, process, timer};
use pd_runtime::hosted::DynHandler;
use pd_runtime::MessageInfo;
use pd_runtime::{decode_badge, Event, Outcome};

/// the capability PDs, the only ones observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapabilityPd {
    /// `process.elf`
    Process,
    /// `memory.elf`
    Memory,
    /// `timer.elf`
    Timer,
    /// `firmware.elf`
    Firmware,
}

impl CapabilityPd {
    /// the PD kind for a program image, if it is a capability PD.
    pub fn from_image(image: &str) -> Option<CapabilityPd> {
        match image {
            "process.elf" => Some(CapabilityPd::Process),
            "memory.elf" => Some(CapabilityPd::Memory),
            "timer.elf" => Some(CapabilityPd::Timer),
            "firmware.elf" => Some(CapabilityPd::Firmware),
            _ => None,
        }
    }
}

/// a request as the capability PD received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapRequest {
    /// to the process PD.
    Process(process::Request),
    /// to the memory PD.
    Memory(memory::Request),
    /// to the timer PD.
    Timer(timer::Request),
    /// to the firmware PD.
    Firmware(firmware::Request),
    /// the message registers did not decode as that PD's request (the PD
    /// answers such calls with an error; recorded all the same).
    Undecodable(CapabilityPd),
}

impl CapRequest {
    /// false for the read-only requests (queries, inventory).
    pub fn mutates(&self) -> bool {
        !matches!(
            self,
            CapRequest::Process(process::Request::Query)
                | CapRequest::Memory(memory::Request::Query)
                | CapRequest::Timer(timer::Request::Query)
                | CapRequest::Firmware(_)
        )
    }
}

/// one observed invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invocation {
    /// position in the log since boot.
    pub seq: u64,
    /// what was asked.
    pub request: CapRequest,
    /// whether the PD answered without an error (it carried the request out).
    pub accepted: bool,
}

/// the shared, append-only log; cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct InvocationLog(Arc<Mutex<Vec<Invocation>>>);

impl InvocationLog {
    /// every invocation since boot.
    pub fn snapshot(&self) -> Vec<Invocation> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// the invocations from position `from` on.
    pub fn since(&self, from: usize) -> Vec<Invocation> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.get(from..)
            .map(<[Invocation]>::to_vec)
            .unwrap_or_default()
    }

    /// how many were recorded.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// true before the first invocation.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&self, request: CapRequest, accepted: bool) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let seq = g.len() as u64;
        g.push(Invocation {
            seq,
            request,
            accepted,
        });
    }
}

/// a capability PD's handler with the log around it.
pub(crate) struct Observed {
    pub(crate) inner: Box<dyn DynHandler>,
    pub(crate) pd: CapabilityPd,
    pub(crate) log: InvocationLog,
    /// fault injection: the memory PD's answers claim this pool size.
    pub(crate) pool_override: Option<u64>,
}

fn decode(pd: CapabilityPd, tag: MessageInfo) -> CapRequest {
    let r = match pd {
        CapabilityPd::Process => msg::get(tag).map(CapRequest::Process),
        CapabilityPd::Memory => msg::get(tag).map(CapRequest::Memory),
        CapabilityPd::Timer => msg::get(tag).map(CapRequest::Timer),
        CapabilityPd::Firmware => msg::get(tag).map(CapRequest::Firmware),
    };
    r.unwrap_or(CapRequest::Undecodable(pd))
}

fn accepted(pd: CapabilityPd, tag: MessageInfo) -> bool {
    match pd {
        CapabilityPd::Process => matches!(
            msg::get(tag),
            Ok(process::Reply::Done(_) | process::Reply::Workers(_))
        ),
        CapabilityPd::Memory => matches!(msg::get(tag), Ok(memory::Reply::Pool(_))),
        CapabilityPd::Timer => matches!(msg::get(tag), Ok(timer::Reply::Timers(_))),
        CapabilityPd::Firmware => matches!(msg::get(tag), Ok(firmware::Reply::Inventory(_))),
    }
}

impl DynHandler for Observed {
    fn dispatch(&mut self, badge: u64, tag: MessageInfo) -> Result<Outcome, String> {
        if !matches!(decode_badge(badge), Event::Protected(_)) {
            return self.inner.dispatch(badge, tag);
        }
        // the message registers hold the request now and the reply after
        let request = decode(self.pd, tag);
        let mut out = self.inner.dispatch(badge, tag);
        if let (Some(pages), Ok(Outcome::Reply(r))) = (self.pool_override, &out) {
            if let Ok(memory::Reply::Pool(mut p)) = msg::get::<memory::Reply>(*r) {
                p.pool_pages = pages;
                if let Ok(t) = msg::put(&memory::Reply::Pool(p)) {
                    out = Ok(Outcome::Reply(t));
                }
            }
        }
        let ok = matches!(&out, Ok(Outcome::Reply(r)) if accepted(self.pd, *r));
        self.log.push(request, ok);
        out
    }
}

impl CapRequest {
    /// the plan action this invocation carries out, if it is one a plan can
    /// cause (queries map to none; so does an undecodable request).
    pub fn to_action(&self) -> Option<policy_verifier::Action> {
        use policy_verifier::{Action, InventoryQuery, Worker};
        let w = |id: pd_interface::WorkerId| Worker::from_index(id.index());
        Some(match *self {
            CapRequest::Process(r) => match r {
                process::Request::Start(id) => Action::ProcessStart { pd: w(id)? },
                process::Request::Stop(id) => Action::ProcessStop { pd: w(id)? },
                process::Request::Restart(id) => Action::ProcessRestart { pd: w(id)? },
                process::Request::SetPriority(id, p) => Action::ProcessSetPriority {
                    pd: w(id)?,
                    priority: u64::from(p),
                },
                process::Request::SetBudget {
                    worker,
                    budget_us,
                    period_us,
                } => Action::ProcessSetBudget {
                    pd: w(worker)?,
                    budget_us,
                    period_us,
                },
                process::Request::Query => return None,
            },
            CapRequest::Memory(r) => match r {
                memory::Request::Grant(id, pages) => Action::MemoryGrant { pd: w(id)?, pages },
                memory::Request::Reclaim(id, pages) => Action::MemoryReclaim { pd: w(id)?, pages },
                memory::Request::Query => return None,
            },
            CapRequest::Timer(r) => match r {
                timer::Request::SetPeriodic(id, period_us) => Action::TimerSetPeriodic {
                    pd: w(id)?,
                    period_us,
                },
                timer::Request::Cancel(id) => Action::TimerCancel { pd: w(id)? },
                timer::Request::Query => return None,
            },
            CapRequest::Firmware(firmware::Request::Inventory(q)) => Action::FirmwareInventory {
                query: match q {
                    firmware::Query::Cpus => InventoryQuery::Cpus,
                    firmware::Query::Memory => InventoryQuery::Memory,
                    firmware::Query::Devices => InventoryQuery::Devices,
                    firmware::Query::All => InventoryQuery::All,
                },
            },
            CapRequest::Undecodable(_) => return None,
        })
    }
}
