//! what travels between the host and the verifier, through the link PD.
//!
//! the host sends a [`Request`] as one frame; the link PD copies the payload
//! into the `link_verifier` region it shares with the verifier and PPCs the
//! verifier with [`OP_REQUEST`] and the length in message register 0; the
//! verifier writes a [`Reply`] into the same region and returns its length.
//! the link PD never decodes either: it is a pipe with a checksum.

use serde::{Deserialize, Serialize};

use crate::N_WORKERS;

/// PPC label from link to verifier: a request is in the shared region.
pub const OP_REQUEST: u64 = 1;

/// a request from the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request<'a> {
    /// a plan (policy-verifier wire encoding) without a MAC: the verifier
    /// refuses it (`auth.mac`) without decoding it. the host's link client
    /// turns it into [`Request::Sealed`] when it holds the plan key.
    Apply(#[serde(borrow)] &'a [u8]),
    /// report the system's state, read back from the capability PDs.
    Status,
    /// verify and execute a plan sealed for one boot: `mac` is
    /// `policy_verifier::auth::plan_mac(plan key, epoch, plan)`.
    Sealed {
        /// the boot epoch the sender learnt from `Status`.
        epoch: u64,
        /// HMAC-SHA256 over the epoch and the plan bytes.
        mac: [u8; 32],
        /// the plan, policy-verifier wire encoding.
        #[serde(borrow)]
        plan: &'a [u8],
    },
}

impl<'a> Request<'a> {
    /// `Apply(plan)` sealed under `key` for boot `epoch`; other requests unchanged.
    pub fn sealed(&self, key: &crate::keys::Key, epoch: u64) -> Request<'a> {
        match *self {
            Request::Apply(plan) => Request::Sealed {
                epoch,
                mac: policy_verifier::auth::plan_mac(key, epoch, plan),
                plan,
            },
            ref other => other.clone(),
        }
    }

    /// the plan bytes a request carries, sealed or not.
    pub fn plan(&self) -> Option<&'a [u8]> {
        match *self {
            Request::Apply(p) | Request::Sealed { plan: p, .. } => Some(p),
            Request::Status => None,
        }
    }
}

/// the verifier's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant, reason = "a PD has no allocator to box the receipt; one reply exists per request")]
pub enum Reply {
    /// the outcome of an `Apply`.
    Receipt(Receipt),
    /// the answer to `Status`.
    Status(SystemState),
    /// the request was refused before verification.
    Error(LinkError),
}

/// is `reply` an answer to some other request than `req`? (a receipt for
/// another plan, a status where a receipt was due, or the reverse.) a
/// refusal before the plan is decoded (`auth.mac`) carries request id 0.
pub fn is_stale(req: &Request<'_>, reply: &Reply) -> bool {
    match (req.plan(), reply) {
        (Some(_), Reply::Status(_)) | (None, Reply::Receipt(_)) => true,
        (Some(plan), Reply::Receipt(r)) => {
            r.request_id != 0 && policy_verifier::wire::decode(plan).map_or(true, |p| p.request_id != r.request_id)
        }
        _ => false,
    }
}

/// why a request was refused before verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkError {
    /// the request bytes are not a `Request`.
    BadRequest,
    /// the plan bytes are not a plan (policy-verifier wire decoding failed).
    BadPlan,
    /// the request or the reply exceeds the shared region.
    TooLarge,
    /// a capability PD could not be read.
    Unavailable,
    /// the link PD dropped a frame (bad CRC, bad encoding, too long).
    BadFrame,
}

/// most violation entries in a receipt: the plan's own names (at action 0)
/// and those of the first failing action.
pub const MAX_VIOLATIONS: usize = 2;

/// the invariants one action breaks, as ids: built-in names by their
/// [`policy_verifier::Invariant`] discriminant, custom ones by their slot in
/// the policy. the host turns them into DESIGN.md's stable names with the
/// policy in force ([`Receipt::names`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// 0-based index of the failing action.
    pub action: u8,
    /// every invariant it breaks.
    pub invariants: policy_verifier::InvariantSet,
}

/// why an approved action failed when executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecFailure {
    /// the capability PD refused (its error, rendered as a code).
    Refused(u8),
    /// the capability PD faulted or could not be reached.
    Unreachable,
    /// the reply did not decode.
    BadReply,
}

/// one worker as read back from the capability PDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkerReport {
    /// from the process PD.
    pub running: bool,
    /// from the process PD.
    pub priority: u64,
    /// from the process PD (the budget it enforces).
    pub budget_us: u64,
    /// from the process PD.
    pub period_us: u64,
    /// from the memory PD's page table.
    pub pages: u64,
    /// from the timer PD.
    pub timer_period_us: Option<u64>,
    /// faults taken since boot (process PD).
    pub faults: u32,
    /// restarts since boot (process PD).
    pub restarts: u32,
    /// progress counter the worker publishes.
    pub progress: u64,
    /// timer notifications delivered since boot.
    pub ticks: u64,
    /// cpu time consumed since boot, µs.
    pub consumed_us: u64,
    /// suspended by the process PD for exceeding its budget in this period.
    pub throttled: bool,
}

/// the whole system as read back from the capability PDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SystemState {
    /// by worker index.
    pub workers: [WorkerReport; N_WORKERS],
    /// pages in the memory pool.
    pub pool_pages: u64,
    /// pages free in the pool.
    pub free_pages: u64,
    /// last approved request id (the verifier's replay guard).
    pub last_request_id: u64,
    /// this boot's epoch: plans and confirmation tokens are bound to it.
    pub epoch: u64,
    /// the verifier PD's keys: none, the public dev keys, or the installation's.
    pub keys: crate::keys::KeySource,
    /// mutating requests each capability PD carried out since boot, as the
    /// PD itself counts them.
    pub invocations: Invocations,
    /// plans the verifier approved and ran since boot, as it counts them.
    pub plans_executed: u64,
    /// the running hash of those plans: from zeros at boot, each approved
    /// plan makes it `sha256(hash ‖ sha256(plan wire bytes))`. the host's
    /// audit log is checked against it (`llmsh audit --verify`).
    pub plans_hash: [u8; 32],
}

/// mutating requests carried out since boot, per capability PD: the red-team
/// oracle on qemu, where no outside log sees the PPCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Invocations {
    /// process PD (the sum over its workers).
    pub process: u64,
    /// memory PD.
    pub memory: u64,
    /// timer PD.
    pub timer: u64,
}

impl Invocations {
    /// all three PDs together.
    pub const fn total(&self) -> u64 {
        self.process
            .saturating_add(self.memory)
            .saturating_add(self.timer)
    }
}

/// the outcome of one plan (DESIGN.md's receipt). the default is a refusal
/// with nothing run and nothing read, so a receipt is written as its
/// request and states `..Receipt::default()`: a read-only op's answer (a new
/// `Option` field) needs no edit where receipts are made.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Receipt {
    /// the plan's request id.
    pub request_id: u64,
    /// the verifier approved the whole plan.
    pub approved: bool,
    /// actions executed successfully.
    pub executed: u8,
    /// the action that failed at execution, if one did; the rest were not run.
    pub failed_action: Option<u8>,
    /// why it failed.
    pub failure: Option<ExecFailure>,
    /// the plan's own broken invariants (at action 0), then the first
    /// failing action's (empty when approved).
    pub violations: heapless::Vec<Violation, MAX_VIOLATIONS>,
    /// the state before the plan, read back from the PDs.
    pub state_before: SystemState,
    /// the state after the plan, read back from the PDs.
    pub state_after: SystemState,
    /// the answer of the plan's last `firmware.inventory` (untrusted strings).
    pub inventory: Option<crate::firmware::Inventory>,
}

impl Receipt {
    /// every broken invariant as `(action, stable name)`, in report order:
    /// built-in names, then the policy's own, named by `policy` (the one the
    /// verifier ran). a custom slot `policy` does not define is left out: the
    /// caller holds another policy than the verifier's.
    pub fn names<'a>(&'a self, policy: &'a policy_verifier::Policy) -> impl Iterator<Item = (u8, &'a str)> + 'a {
        self.violations
            .iter()
            .flat_map(move |v| policy.names(v.invariants).map(move |n| (v.action, n)))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    /// a refused receipt with no violations and default states.
    fn refused_receipt(request_id: u64) -> Receipt {
        Receipt { request_id, ..Receipt::default() }
    }

    /// the largest receipt the verifier can write: every number at its
    /// widest varint, every string and list full. a rejected plan carries
    /// violations and no answers; an approved one the answers and none.
    /// written out field by field (no `..`), so a new field of the receipt
    /// must be given its widest value here.
    fn widest_receipt(approved: bool) -> Receipt {
        let w = WorkerReport {
            running: true,
            priority: u64::MAX,
            budget_us: u64::MAX,
            period_us: u64::MAX,
            pages: u64::MAX,
            timer_period_us: Some(u64::MAX),
            faults: u32::MAX,
            restarts: u32::MAX,
            progress: u64::MAX,
            ticks: u64::MAX,
            consumed_us: u64::MAX,
            throttled: true,
        };
        let state = SystemState {
            workers: [w; N_WORKERS],
            pool_pages: u64::MAX,
            free_pages: u64::MAX,
            last_request_id: u64::MAX,
            epoch: u64::MAX,
            keys: crate::keys::KeySource::Installation,
            invocations: Invocations { process: u64::MAX, memory: u64::MAX, timer: u64::MAX },
            plans_executed: u64::MAX,
            plans_hash: [0xff; 32],
        };
        let mut violations = heapless::Vec::new();
        let mut inventory = None;
        if approved {
            let mut inv = crate::firmware::Inventory {
                cpus: u8::MAX,
                cpu_model: heapless::String::try_from("x".repeat(32).as_str()).unwrap(),
                memory: heapless::Vec::new(),
                devices: heapless::Vec::new(),
            };
            while inv.memory.push(crate::firmware::MemoryRange { base: u64::MAX, size: u64::MAX }).is_ok() {}
            let d = crate::firmware::Device {
                name: heapless::String::try_from("n".repeat(24).as_str()).unwrap(),
                compatible: heapless::String::try_from("c".repeat(32).as_str()).unwrap(),
                base: u64::MAX,
                size: u64::MAX,
                irq: Some(u32::MAX),
            };
            while inv.devices.push(d.clone()).is_ok() {}
            inventory = Some(inv);
        } else {
            let v = Violation { action: u8::MAX, invariants: policy_verifier::InvariantSet::ALL };
            while violations.push(v).is_ok() {}
        }
        Receipt {
            request_id: u64::MAX,
            approved,
            executed: u8::MAX,
            failed_action: Some(u8::MAX),
            failure: Some(ExecFailure::Refused(u8::MAX)),
            violations,
            state_before: state,
            state_after: state,
            inventory,
        }
    }

    #[test]
    fn the_widest_receipt_fits_one_frame_for_this_worker_count() {
        // a receipt that does not fit reaches the host as `TooLarge` although
        // the plan ran: the payload cap must grow with the worker count
        let mut buf = std::vec![0u8; 4 * crate::frame::MAX_PAYLOAD];
        for approved in [false, true] {
            let used = postcard::to_slice(&Reply::Receipt(widest_receipt(approved)), &mut buf).unwrap().len();
            std::println!("widest receipt, approved {approved}, {N_WORKERS} workers: {used} bytes of {}", crate::frame::MAX_PAYLOAD);
            assert!(
                used <= crate::frame::MAX_PAYLOAD,
                "the widest receipt is {used} bytes for {N_WORKERS} workers: make the `link_verifier` region in system/llm-os.system at least that large (whole pages)"
            );
        }
    }

    #[test]
    fn request_round_trip_borrows_the_plan_bytes() {
        let plan = [1u8, 2, 3, 0, 255];
        let mut buf = [0u8; 64];
        let used = postcard::to_slice(&Request::Apply(&plan), &mut buf).unwrap();
        let back: Request<'_> = postcard::from_bytes(used).unwrap();
        assert_eq!(back, Request::Apply(&plan));
    }

    #[test]
    fn receipt_round_trip() {
        let mut r = refused_receipt(7);
        let mut set = policy_verifier::InvariantSet::EMPTY;
        set.insert(policy_verifier::Invariant::MemQuota);
        set.insert_custom(1);
        r.violations.push(Violation { action: 2, invariants: set }).unwrap();
        r.state_after.workers[1].timer_period_us = Some(20_000);
        let mut buf = [0u8; 1024];
        let used = postcard::to_slice(&Reply::Receipt(r.clone()), &mut buf).unwrap();
        assert_eq!(
            postcard::from_bytes::<Reply>(used).unwrap(),
            Reply::Receipt(r)
        );
    }

    #[test]
    fn violations_are_ids_named_in_report_order_and_unknown_ids_do_not_decode() {
        use policy_verifier::{Invariant, InvariantSet, DEFAULT_POLICY};
        let mut plan = InvariantSet::EMPTY;
        plan.insert(Invariant::PlanReplay);
        let mut step = InvariantSet::EMPTY;
        step.insert(Invariant::ProcState);
        step.insert(Invariant::MemQuota);
        let mut r = refused_receipt(1);
        r.violations.push(Violation { action: 0, invariants: plan }).unwrap();
        r.violations.push(Violation { action: 3, invariants: step }).unwrap();
        // DESIGN.md order within an action, plan-level names first
        let names: std::vec::Vec<(u8, &str)> = r.names(&DEFAULT_POLICY).collect();
        assert_eq!(names, [(0, "plan.replay"), (3, "mem.quota"), (3, "proc.state")]);
        // a built-in id this build does not name: another contract, refused
        let mut buf = [0u8; 32];
        let unknown = postcard::to_slice(&(3u8, (1u32 << 31, 0u32)), &mut buf).unwrap();
        assert!(postcard::from_bytes::<Violation>(unknown).is_err());
        let known = postcard::to_slice(&(3u8, (step.bits(), 0u32)), &mut buf).unwrap();
        assert_eq!(postcard::from_bytes::<Violation>(known).unwrap(), Violation { action: 3, invariants: step });
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_crash() {
        for bytes in [&[][..], &[9, 9, 9], &[0, 200, 200, 200, 200, 200]] {
            assert!(
                postcard::from_bytes::<Request<'_>>(bytes).is_err(),
                "{bytes:?}"
            );
        }
        assert!(postcard::from_bytes::<Reply>(&[7]).is_err());
    }
}
