//! verifier PD: the only way from the host to a capability.
//!
//! holds: the policy (policy.toml, compiled into policy-verifier), the
//! plan and confirmation keys, and the only PPC channels to the capability
//! PDs (process, memory, timer, firmware). talks to: link (PPC in, through
//! the shared `link_verifier` region), the four capability PDs (PPC out). it
//! maps no pool memory; its one device is the PL031 clock, read-only.
//!
//! for each plan it reads the real state back from the capability PDs, runs
//! policy-verifier's `verify` on it (the one model; there is no second copy
//! here), and, only if the whole plan is approved, invokes the capability
//! PDs one action at a time in order, stopping at the first failure. the
//! receipt carries the state before and after, both read back from the PDs.
//!
//! before anything else it checks the frame's MAC under the plan key
//! (`auth.mac`: no key, no MAC or a wrong one, and nothing is decoded), then
//! that the plan was sealed for this boot's epoch (`plan.replay`), then the
//! state invariants on the state it read back (the induction's base case: a
//! state that breaks one is reported and nothing runs), then the plan.
//! confirmation tokens are checked under this boot's confirmation key
//! (`policy_verifier::auth::epoch_key`), so a token from before a restart
//! is refused after it.
//!
//! a resend of the last approved plan, byte for byte (MAC and epoch
//! included), gets its stored receipt back: the host retries after a lost
//! receipt without the plan running twice and without a `plan.replay`
//! rejection (one cached entry).
//!
//! the keys come from the hosted system at boot or, on seL4, from the blob
//! the image build patches into this PD's ELF (`pd_interface::keys`); the
//! epoch from the hosted system's clock and randomness or, on seL4, the
//! PL031 real-time clock and the generic timer's counter.
#![no_std]
#![forbid(unsafe_code)]

use pd_interface::keys::{KeySource, Keys};
use pd_interface::link::{
    ExecFailure, Invocations, LinkError, Receipt, Reply, Request, SystemState, Violation,
    WorkerReport, OP_REQUEST,
};
use pd_interface::msg::{self, CallError};
use pd_interface::{firmware, frame::MAX_PAYLOAD, memory, process, timer, WorkerId, N_WORKERS};
use pd_runtime::{Channel, Handler, MessageInfo, Region, RegionError, RuntimeError, Unhandled};
use policy_verifier::wire::MAX_PLAN_BYTES;
use policy_verifier::{
    auth, verify, Action, Invariant, InvariantSet, InventoryQuery, Plan, Policy, State, Worker, WorkerState,
    DEFAULT_POLICY,
};

// the comparison mode that executes unverified plans exists for the hosted
// red-team run only; an seL4 image must never contain it.
#[cfg(all(feature = "unverified", target_os = "none"))]
compile_error!("feature `unverified` is hosted-only: it must never be built for seL4");

/// PPCs from link.
pub const LINK: Channel = manifest::channel::LINK;
/// PPC to the process PD.
pub const PROCESS: Channel = manifest::channel::PROCESS;
/// PPC to the memory PD.
pub const MEMORY: Channel = manifest::channel::MEMORY;
/// PPC to the timer PD.
pub const TIMER: Channel = manifest::channel::TIMER;
/// PPC to the firmware PD.
pub const FIRMWARE: Channel = manifest::channel::FIRMWARE;

use pd_interface::manifest::verifier as manifest;

// the plan format's worker count and the manifest's must be one number
const _: () = assert!(
    N_WORKERS == policy_verifier::N_WORKERS,
    "system/llm-os.system declares another number of workers than policy-verifier's plan format"
);

/// the dev confirmation key (system/dev-confirm.key; public, tests only).
pub const DEV_KEY: [u8; 32] = pd_interface::keys::DEV_CONFIRM_KEY;

/// what faults the verifier PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifierError {
    /// an event it does not serve.
    Unhandled(Unhandled),
    /// the shared region is not mapped as the .system file says.
    Region(RegionError),
    /// the runtime refused.
    Runtime(RuntimeError),
}

impl From<Unhandled> for VerifierError {
    fn from(e: Unhandled) -> Self {
        Self::Unhandled(e)
    }
}

impl From<RegionError> for VerifierError {
    fn from(e: RegionError) -> Self {
        Self::Region(e)
    }
}

impl From<RuntimeError> for VerifierError {
    fn from(e: RuntimeError) -> Self {
        Self::Runtime(e)
    }
}

/// the verifier's state: the shared region, the keys, this boot's epoch,
/// the replay guard, the receipt of the last approved plan and the count
/// and running hash of the plans it ran.
pub struct Verifier {
    shared: Region,
    keys: Option<Keys>,
    epoch: u64,
    /// this boot's confirmation key (`auth::epoch_key`).
    confirm_key: [u8; 32],
    /// the policy plans are verified against: `DEFAULT_POLICY` (compiled in
    /// from system/policy.toml, or `LLM_OS_POLICY` at build time) on seL4.
    policy: &'static Policy,
    last_request_id: u64,
    last: Option<Cached>,
    executed: Executed,
    #[cfg(feature = "unverified")]
    unverified: bool,
}

/// the last approved plan (its exact wire bytes and MAC) and the receipt it got.
struct Cached {
    plan: heapless::Vec<u8, MAX_PLAN_BYTES>,
    mac: [u8; 32],
    receipt: Receipt,
}

/// the plans run since boot: what the host's audit log must agree with.
#[derive(Debug, Clone, Copy, Default)]
struct Executed {
    count: u64,
    hash: [u8; 32],
}

impl Executed {
    /// one more plan, given its wire bytes.
    fn push(&mut self, plan: &[u8]) {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.hash);
        h.update(Sha256::digest(plan));
        self.hash = h.finalize().into();
        self.count = self.count.saturating_add(1);
    }

    fn stamp(&self, mut s: SystemState) -> SystemState {
        s.plans_executed = self.count;
        s.plans_hash = self.hash;
        s
    }
}

fn wid(w: Worker) -> WorkerId {
    // `Worker::index` is below N_WORKERS by construction, and the two
    // crates' N_WORKERS agree (asserted above)
    WorkerId::new(w.index()).unwrap_or(WorkerId::ALL[0])
}

fn call<Req: serde::Serialize, Rep: serde::de::DeserializeOwned>(
    ch: Channel,
    req: &Req,
) -> Result<Rep, ExecFailure> {
    msg::call(ch, req).map_err(|e| match e {
        CallError::Runtime(_) => ExecFailure::Unreachable,
        CallError::Msg(_) => ExecFailure::BadReply,
    })
}

/// read the real state from the capability PDs (the `system.query` view).
pub fn read_state(
    last_request_id: u64,
    epoch: u64,
    keys: KeySource,
) -> Result<SystemState, ExecFailure> {
    let procs = match call(PROCESS, &process::Request::Query)? {
        process::Reply::Workers(w) => w,
        _ => return Err(ExecFailure::BadReply),
    };
    let pool = match call(MEMORY, &memory::Request::Query)? {
        memory::Reply::Pool(p) => p,
        memory::Reply::Error(_) => return Err(ExecFailure::BadReply),
    };
    let timers = match call(TIMER, &timer::Request::Query)? {
        timer::Reply::Timers(t) => t,
        timer::Reply::Error(_) => return Err(ExecFailure::BadReply),
    };
    let mut s = SystemState {
        pool_pages: pool.pool_pages,
        free_pages: pool.free_pages,
        last_request_id,
        epoch,
        keys,
        invocations: Invocations {
            process: procs
                .iter()
                .fold(0u64, |n, p| n.saturating_add(p.invocations)),
            memory: pool.invocations,
            timer: timers.invocations,
        },
        ..SystemState::default()
    };
    for i in 0..N_WORKERS {
        let (Some(out), Some(p), Some(pages), Some(period), Some(ticks)) = (
            s.workers.get_mut(i),
            procs.get(i),
            pool.pages.get(i),
            timers.period_us.get(i),
            timers.ticks.get(i),
        ) else {
            continue;
        };
        *out = WorkerReport {
            running: p.running,
            priority: u64::from(p.priority),
            budget_us: p.budget_us,
            period_us: p.period_us,
            pages: *pages,
            timer_period_us: *period,
            faults: p.faults,
            restarts: p.restarts,
            progress: p.progress,
            ticks: *ticks,
            consumed_us: p.consumed_us,
            throttled: p.throttled,
        };
    }
    Ok(s)
}

/// the verifier's model of a read-back state.
pub fn model_state(s: &SystemState) -> State {
    let w = |r: &WorkerReport| WorkerState {
        running: r.running,
        priority: r.priority,
        budget_us: r.budget_us,
        period_us: r.period_us,
        pages: r.pages,
        timer_period_us: r.timer_period_us,
    };
    State {
        workers: s.workers.each_ref().map(w),
        pool_pages: s.pool_pages,
        last_request_id: s.last_request_id,
    }
}

fn refused(code: u8) -> ExecFailure {
    ExecFailure::Refused(code)
}

/// invoke the capability PD that carries out `action`; a read-only op's
/// answer goes into `receipt`.
fn execute(action: &Action, receipt: &mut Receipt) -> Result<(), ExecFailure> {
    let proc_done = |r: process::Reply| match r {
        process::Reply::Done(_) => Ok(()),
        process::Reply::Error(e) => Err(refused(e.code())),
        process::Reply::Workers(_) => Err(ExecFailure::BadReply),
    };
    let mem_done = |r: memory::Reply| match r {
        memory::Reply::Pool(_) => Ok(()),
        memory::Reply::Error(e) => Err(refused(e as u8)),
    };
    let timer_done = |r: timer::Reply| match r {
        timer::Reply::Timers(_) => Ok(()),
        timer::Reply::Error(e) => Err(refused(e as u8)),
    };
    match *action {
        Action::ProcessStart { pd } => proc_done(call(PROCESS, &process::Request::Start(wid(pd)))?),
        Action::ProcessStop { pd } => proc_done(call(PROCESS, &process::Request::Stop(wid(pd)))?),
        Action::ProcessRestart { pd } => {
            proc_done(call(PROCESS, &process::Request::Restart(wid(pd)))?)
        }
        Action::ProcessSetPriority { pd, priority } => {
            let p = u8::try_from(priority).map_err(|_| refused(0xfe))?;
            proc_done(call(PROCESS, &process::Request::SetPriority(wid(pd), p))?)
        }
        Action::ProcessSetBudget {
            pd,
            budget_us,
            period_us,
        } => proc_done(call(
            PROCESS,
            &process::Request::SetBudget {
                worker: wid(pd),
                budget_us,
                period_us,
            },
        )?),
        Action::MemoryGrant { pd, pages } => {
            mem_done(call(MEMORY, &memory::Request::Grant(wid(pd), pages))?)
        }
        Action::MemoryReclaim { pd, pages } => {
            mem_done(call(MEMORY, &memory::Request::Reclaim(wid(pd), pages))?)
        }
        Action::TimerSetPeriodic { pd, period_us } => timer_done(call(
            TIMER,
            &timer::Request::SetPeriodic(wid(pd), period_us),
        )?),
        Action::TimerCancel { pd } => timer_done(call(TIMER, &timer::Request::Cancel(wid(pd)))?),
        Action::FirmwareInventory { query } => {
            let q = match query {
                InventoryQuery::Cpus => firmware::Query::Cpus,
                InventoryQuery::Memory => firmware::Query::Memory,
                InventoryQuery::Devices => firmware::Query::Devices,
                InventoryQuery::All => firmware::Query::All,
            };
            match call(FIRMWARE, &firmware::Request::Inventory(q))? {
                firmware::Reply::Inventory(inv) => {
                    receipt.inventory = Some(inv);
                    Ok(())
                }
                firmware::Reply::BadRequest => Err(ExecFailure::BadReply),
            }
        }
        Action::SystemQuery {} => Ok(()),
    }
}

/// the set of one name.
fn only(i: Invariant) -> InvariantSet {
    let mut s = InvariantSet::EMPTY;
    s.insert(i);
    s
}

fn violation(action: usize, invariants: InvariantSet) -> Violation {
    Violation {
        action: u8::try_from(action).unwrap_or(u8::MAX),
        invariants,
    }
}

impl Verifier {
    /// the Microkit `init`: `keys` none (an image built without them)
    /// refuses every plan; `epoch` is this boot's, never 0.
    pub fn init(shared: Region, keys: Option<Keys>, epoch: u64) -> Self {
        Self::init_with_policy(shared, &DEFAULT_POLICY, keys, epoch)
    }

    /// a verifier for another policy than the compiled-in one (the hosted
    /// system's tests; the seL4 image compiles its policy in).
    pub fn init_with_policy(shared: Region, policy: &'static Policy, keys: Option<Keys>, epoch: u64) -> Self {
        let epoch = epoch.max(1);
        Self {
            shared,
            keys,
            epoch,
            confirm_key: keys.map_or([0; 32], |k| auth::epoch_key(&k.confirm, epoch)),
            policy,
            // the replay guard starts where the policy says, not at 0
            last_request_id: policy.initial.last_request_id,
            last: None,
            executed: Executed::default(),
            #[cfg(feature = "unverified")]
            unverified: false,
        }
    }

    fn key_source(&self) -> KeySource {
        self.keys.map_or(KeySource::None, |k| k.source)
    }

    fn state(&self) -> Result<SystemState, ExecFailure> {
        read_state(self.last_request_id, self.epoch, self.key_source()).map(|s| self.executed.stamp(s))
    }

    /// a receipt that refuses a plan before verification: `broken` at action 0.
    fn refusal(&self, request_id: u64, broken: InvariantSet) -> Reply {
        let Ok(now) = self.state() else {
            return Reply::Error(LinkError::Unavailable);
        };
        let mut receipt = Receipt { request_id, state_before: now, state_after: now, ..Receipt::default() };
        let _ = receipt.violations.push(violation(0, broken));
        Reply::Receipt(receipt)
    }

    /// hosted red-team comparison only: a verifier that approves every plan
    /// without checking it, to measure what the checks prevent. the feature
    /// cannot be built for seL4 (a `compile_error!` guards it).
    #[cfg(feature = "unverified")]
    pub fn init_unverified(shared: Region, keys: Option<Keys>, epoch: u64) -> Self {
        Self {
            unverified: true,
            ..Self::init(shared, keys, epoch)
        }
    }

    #[cfg(feature = "unverified")]
    fn judge(&self, state: &State, plan: &Plan) -> policy_verifier::Verdict {
        let v = verify(self.policy, state, plan, &self.confirm_key);
        if !self.unverified {
            return v;
        }
        policy_verifier::Verdict {
            approved: true,
            plan_violations: InvariantSet::EMPTY,
            failed: None,
            ..v
        }
    }

    #[cfg(not(feature = "unverified"))]
    fn judge(&self, state: &State, plan: &Plan) -> policy_verifier::Verdict {
        verify(self.policy, state, plan, &self.confirm_key)
    }

    /// verify and, if approved, execute one plan (its frame already
    /// authenticated for this boot).
    pub fn apply(&mut self, plan: &Plan) -> Reply {
        let mut buf = [0u8; MAX_PLAN_BYTES];
        let mut wire = heapless::Vec::<u8, MAX_PLAN_BYTES>::new();
        if let Ok(bytes) = policy_verifier::wire::encode(plan, &mut buf) {
            let _ = wire.extend_from_slice(bytes);
        }
        self.apply_bytes(plan, &wire)
    }

    /// `apply` of a plan that arrived as `bytes` (what the running hash covers).
    fn apply_bytes(&mut self, plan: &Plan, bytes: &[u8]) -> Reply {
        let Ok(before) = self.state() else {
            return Reply::Error(LinkError::Unavailable);
        };
        let model = model_state(&before);
        // the base case: the state read back must keep every state invariant
        // before any plan is judged against it
        let broken = policy_verifier::verify::state_violations(self.policy, &model);
        if !broken.is_empty() {
            // built-in and custom names alike
            return self.refusal(plan.request_id, broken);
        }
        let verdict = self.judge(&model, plan);
        let mut receipt = Receipt {
            request_id: plan.request_id,
            approved: verdict.approved,
            state_before: before,
            state_after: before,
            ..Receipt::default()
        };
        if !verdict.plan_violations.is_empty() {
            let _ = receipt.violations.push(violation(0, verdict.plan_violations));
        }
        if let Some((i, set)) = verdict.failed {
            // built-in ids and the policy file's own slots, named on the host
            let _ = receipt.violations.push(violation(i, set));
        }
        if verdict.approved {
            // the plan is accepted as a whole: its id is spent even if an
            // invocation fails, so a half-run plan cannot be replayed
            self.last_request_id = plan.request_id;
            self.executed.push(bytes);
            for (i, action) in plan.actions.iter().enumerate() {
                match execute(action, &mut receipt) {
                    Ok(()) => receipt.executed = receipt.executed.saturating_add(1),
                    Err(f) => {
                        receipt.failed_action = Some(u8::try_from(i).unwrap_or(u8::MAX));
                        receipt.failure = Some(f);
                        break;
                    }
                }
            }
            match self.state() {
                Ok(after) => receipt.state_after = after,
                Err(f) => {
                    if receipt.failure.is_none() {
                        receipt.failure = Some(f);
                    }
                }
            }
        }
        Reply::Receipt(receipt)
    }

    /// serve one request of the link protocol.
    pub fn serve(&mut self, request: &[u8]) -> Reply {
        match postcard::from_bytes::<Request<'_>>(request) {
            Err(_) => Reply::Error(LinkError::BadRequest),
            Ok(Request::Status) => match self.state() {
                Ok(s) => Reply::Status(s),
                Err(_) => Reply::Error(LinkError::Unavailable),
            },
            // no MAC: nothing is decoded
            Ok(Request::Apply(_)) => self.refusal(0, only(Invariant::AuthMac)),
            Ok(Request::Sealed { epoch, mac, plan: bytes }) => {
                let authentic = self
                    .keys
                    .is_some_and(|k| auth::plan_mac_ok(&k.plan, epoch, bytes, &mac));
                if !authentic {
                    return self.refusal(0, only(Invariant::AuthMac));
                }
                if let Some(c) = self
                    .last
                    .as_ref()
                    .filter(|c| c.mac == mac && c.plan.as_slice() == bytes)
                {
                    // the same plan again: the host lost the receipt and retries
                    return Reply::Receipt(c.receipt.clone());
                }
                let plan = match policy_verifier::wire::decode(bytes) {
                    Ok(plan) => plan,
                    Err(_) => return Reply::Error(LinkError::BadPlan),
                };
                if epoch != self.epoch {
                    // sealed for another boot: approved (or not) before a restart
                    return self.refusal(plan.request_id, only(Invariant::PlanReplay));
                }
                let reply = self.apply_bytes(&plan, bytes);
                if let (Reply::Receipt(r), Ok(copy)) = (&reply, heapless::Vec::from_slice(bytes)) {
                    if r.approved {
                        self.last = Some(Cached {
                            plan: copy,
                            mac,
                            receipt: r.clone(),
                        });
                    }
                }
                reply
            }
        }
    }
}

impl Handler for Verifier {
    type Error = VerifierError;

    fn protected(
        &mut self,
        channel: Channel,
        msg_info: MessageInfo,
    ) -> Result<MessageInfo, VerifierError> {
        if channel != LINK || msg_info.label() != OP_REQUEST {
            return Err(Unhandled::Protected(channel).into());
        }
        let len = pd_runtime::get_mr(0)
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(usize::MAX);
        let mut req = [0u8; MAX_PAYLOAD];
        let reply = match req.get_mut(..len) {
            Some(buf) if len <= self.shared.len() => {
                self.shared.read(0, buf)?;
                self.serve(buf)
            }
            _ => Reply::Error(LinkError::TooLarge),
        };
        let mut out = [0u8; MAX_PAYLOAD];
        let used = match postcard::to_slice(&reply, &mut out) {
            Ok(used) => used.len(),
            Err(_) => postcard::to_slice(&Reply::Error(LinkError::TooLarge), &mut out)
                .map_or(0, |u| u.len()),
        };
        self.shared.write(0, out.get(..used).unwrap_or(&[]))?;
        pd_runtime::set_mr(0, used as u64)?;
        Ok(MessageInfo::new(0, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_key_decodes() {
        assert_eq!(DEV_KEY[0], 0xa1);
        assert_eq!(DEV_KEY[31], 0x59);
    }
}
