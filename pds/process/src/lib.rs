//! process PD: the workers as child PDs.
//!
//! holds: the workers' TCBs (Microkit gives a parent its children's TCB caps)
//! and, through `<cspace><cap_sc>`, their scheduling contexts; read access to
//! each worker's status page. talks to: the verifier (PPC in), the timer
//! (enforcement tick in). it never PPCs anyone.
//!
//! budgets: Microkit hands out no SchedControl cap, so an MCS budget cannot
//! be reconfigured at run time. the .system file gives each worker a full
//! kernel budget (10 ms per 10 ms) and this PD enforces the policy's budget
//! itself: on every enforcement tick it reads the time each worker consumed
//! (`seL4_SchedContext_Consumed`) and suspends a worker that used more than
//! its budget in the current period until the period ends. the granularity is
//! the tick (10 ms), so a worker can overrun by up to one tick.
//!
//! faults: a faulting worker is restarted from its entry, up to
//! [`MAX_FAULT_RESTARTS`] times in all; after that it stays stopped and the
//! verifier's model sees it stopped.
#![no_std]
#![forbid(unsafe_code)]

use pd_interface::layout::{
    status, ENFORCEMENT_TICK_US, INITIAL_BUDGET_US, INITIAL_PERIOD_US, INITIAL_PRIORITY,
};
use pd_interface::process::{Error, Reply, Request, WorkerInfo};
use pd_interface::manifest::process as manifest;
use pd_interface::{msg, WorkerId, N_WORKERS};
use pd_runtime::{
    Channel, Child, Handler, MessageInfo, Region, RuntimeError, SchedContext, Unhandled,
};

/// PPCs from the verifier.
pub const VERIFIER: Channel = manifest::channel::VERIFIER;
/// the enforcement tick from the timer.
pub const TIMER: Channel = manifest::channel::TIMER;
/// the workers as children, by worker index.
pub const CHILDREN: [Child; N_WORKERS] = manifest::child::WORKERS;
/// their scheduling contexts (`<cap_sc>`), by worker index.
pub const SCHED: [SchedContext; N_WORKERS] = manifest::cspace::WORKER_SC;
/// faults after which a worker is left stopped.
pub const MAX_FAULT_RESTARTS: u32 = 3;

/// cpu.budget_bounds: budget_min_us ≤ budget ≤ period ≤ period_max_us (policy.toml).
const BUDGET_MIN_US: u64 = pd_interface::layout::BUDGET_MIN_US;
const PERIOD_MAX_US: u64 = pd_interface::layout::PERIOD_MAX_US;

/// what faults the process PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessError {
    /// an event it does not serve.
    Unhandled(Unhandled),
    /// the runtime refused (a .system mismatch).
    Runtime(RuntimeError),
    /// a reply did not fit the message registers.
    Reply,
}

impl From<Unhandled> for ProcessError {
    fn from(e: Unhandled) -> Self {
        Self::Unhandled(e)
    }
}

impl From<RuntimeError> for ProcessError {
    fn from(e: RuntimeError) -> Self {
        Self::Runtime(e)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    info: WorkerInfo,
    window_start_us: u64,
    window_used_us: u64,
}

/// the workers as this PD runs them.
pub struct Process {
    workers: [Slot; N_WORKERS],
    status: [Region; N_WORKERS],
    now_us: u64,
}

fn kernel(e: RuntimeError) -> Error {
    match e {
        RuntimeError::Kernel(code) => Error::Kernel(code),
        _ => Error::Kernel(0xff),
    }
}

impl Process {
    /// the Microkit `init`: every worker running at the policy's initial
    /// priority and budget (its declared priority, 100, stays its ceiling).
    pub fn init(status: [Region; N_WORKERS]) -> Result<Self, ProcessError> {
        let mut p = Self {
            workers: [Slot::default(); N_WORKERS],
            status,
            now_us: 0,
        };
        for (slot, child) in p.workers.iter_mut().zip(CHILDREN) {
            child.set_priority(INITIAL_PRIORITY)?;
            slot.info = WorkerInfo {
                running: true,
                priority: INITIAL_PRIORITY,
                budget_us: INITIAL_BUDGET_US,
                period_us: INITIAL_PERIOD_US,
                ..WorkerInfo::default()
            };
        }
        Ok(p)
    }

    fn slot(&mut self, w: WorkerId) -> Option<&mut Slot> {
        self.workers.get_mut(w.index())
    }

    /// every worker, with progress read from its status page.
    pub fn info(&self) -> [WorkerInfo; N_WORKERS] {
        let mut out = [WorkerInfo::default(); N_WORKERS];
        for ((o, s), page) in out
            .iter_mut()
            .zip(self.workers.iter())
            .zip(self.status.iter())
        {
            *o = s.info;
            if page.read_u64(status::MAGIC) == Ok(status::STATUS_MAGIC) {
                o.progress = page.read_u64(status::PROGRESS).unwrap_or(0);
            }
        }
        out
    }

    fn worker_info(&self, w: WorkerId) -> WorkerInfo {
        self.info().get(w.index()).copied().unwrap_or_default()
    }

    /// serve one request; a refused request changes nothing.
    pub fn handle(&mut self, req: Request) -> Reply {
        let result = match req {
            Request::Query => return Reply::Workers(self.info()),
            Request::Start(w) => self.start(w).map(|()| w),
            Request::Stop(w) => self.stop(w).map(|()| w),
            Request::Restart(w) => self.restart(w).map(|()| w),
            Request::SetPriority(w, p) => self.set_priority(w, p).map(|()| w),
            Request::SetBudget {
                worker,
                budget_us,
                period_us,
            } => self
                .set_budget(worker, budget_us, period_us)
                .map(|()| worker),
        };
        match result {
            Ok(w) => {
                if let Some(s) = self.slot(w) {
                    s.info.invocations = s.info.invocations.saturating_add(1);
                }
                Reply::Done(self.worker_info(w))
            }
            Err(e) => Reply::Error(e),
        }
    }

    fn child(w: WorkerId) -> Result<Child, Error> {
        CHILDREN.get(w.index()).copied().ok_or(Error::BadRequest)
    }

    fn start(&mut self, w: WorkerId) -> Result<(), Error> {
        let child = Self::child(w)?;
        let s = self.slot(w).ok_or(Error::BadRequest)?;
        if s.info.running {
            return Err(Error::AlreadyRunning);
        }
        child.resume().map_err(kernel)?;
        s.info.running = true;
        s.info.throttled = false;
        Ok(())
    }

    fn stop(&mut self, w: WorkerId) -> Result<(), Error> {
        let child = Self::child(w)?;
        let s = self.slot(w).ok_or(Error::BadRequest)?;
        if !s.info.running {
            return Err(Error::NotRunning);
        }
        child.stop().map_err(kernel)?;
        s.info.running = false;
        s.info.throttled = false;
        Ok(())
    }

    fn restart(&mut self, w: WorkerId) -> Result<(), Error> {
        let child = Self::child(w)?;
        let s = self.slot(w).ok_or(Error::BadRequest)?;
        child.restart(pd_runtime::DEFAULT_ENTRY).map_err(kernel)?;
        s.info.running = true;
        s.info.throttled = false;
        s.info.restarts = s.info.restarts.saturating_add(1);
        Ok(())
    }

    fn set_priority(&mut self, w: WorkerId, p: u8) -> Result<(), Error> {
        let child = Self::child(w)?;
        let s = self.slot(w).ok_or(Error::BadRequest)?;
        child.set_priority(p).map_err(kernel)?;
        s.info.priority = p;
        Ok(())
    }

    fn set_budget(&mut self, w: WorkerId, budget_us: u64, period_us: u64) -> Result<(), Error> {
        if budget_us < BUDGET_MIN_US || budget_us > period_us || period_us > PERIOD_MAX_US {
            return Err(Error::BadBudget);
        }
        let now = self.now_us;
        let s = self.slot(w).ok_or(Error::BadRequest)?;
        s.info.budget_us = budget_us;
        s.info.period_us = period_us;
        s.window_start_us = now;
        s.window_used_us = 0;
        Ok(())
    }

    /// the enforcement tick: account consumed time, throttle and release.
    pub fn enforce(&mut self) -> Result<(), RuntimeError> {
        self.now_us = self.now_us.saturating_add(ENFORCEMENT_TICK_US);
        let now = self.now_us;
        for ((s, sc), child) in self.workers.iter_mut().zip(SCHED).zip(CHILDREN) {
            let used = sc.consumed_us()?;
            s.info.consumed_us = s.info.consumed_us.saturating_add(used);
            if now.saturating_sub(s.window_start_us) >= s.info.period_us {
                s.window_start_us = now;
                s.window_used_us = 0;
                if s.info.throttled && s.info.running {
                    child.resume()?;
                    s.info.throttled = false;
                }
            }
            s.window_used_us = s.window_used_us.saturating_add(used);
            if s.info.running && !s.info.throttled && s.window_used_us > s.info.budget_us {
                child.stop()?;
                s.info.throttled = true;
            }
        }
        Ok(())
    }

    /// a worker faulted: restart it, or leave it stopped after too many faults.
    pub fn faulted(&mut self, child: Child) -> Result<(), RuntimeError> {
        let Some(s) = self.workers.get_mut(child.index()) else {
            return Ok(());
        };
        s.info.faults = s.info.faults.saturating_add(1);
        if s.info.faults <= MAX_FAULT_RESTARTS {
            child.restart(pd_runtime::DEFAULT_ENTRY)?;
            s.info.restarts = s.info.restarts.saturating_add(1);
            s.info.running = true;
        } else {
            child.stop()?;
            s.info.running = false;
        }
        s.info.throttled = false;
        Ok(())
    }
}

impl Handler for Process {
    type Error = ProcessError;

    fn notified(&mut self, channel: Channel) -> Result<(), ProcessError> {
        match channel {
            TIMER => Ok(self.enforce()?),
            other => Err(Unhandled::Notified(other).into()),
        }
    }

    fn protected(
        &mut self,
        channel: Channel,
        msg_info: MessageInfo,
    ) -> Result<MessageInfo, ProcessError> {
        if channel != VERIFIER {
            return Err(Unhandled::Protected(channel).into());
        }
        let reply = match msg::get::<Request>(msg_info) {
            Ok(req) => self.handle(req),
            Err(_) => Reply::Error(Error::BadRequest),
        };
        msg::put(&reply).map_err(|_| ProcessError::Reply)
    }

    fn fault(
        &mut self,
        child: Child,
        _msg_info: MessageInfo,
    ) -> Result<Option<MessageInfo>, ProcessError> {
        self.faulted(child)?;
        // no fault reply: resuming at the faulting instruction would fault again
        Ok(None)
    }
}
