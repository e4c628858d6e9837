//! timer PD: periodic notifications to the workers.
//!
//! holds: the ARM generic timer (CNTP_* from EL0, exported to user level by
//! the qemu_virt_aarch64 kernel config) and its PPI (INTID 30) as `<irq>`; on
//! the hosted system a host clock behind the same [`Clock`] trait. talks to:
//! the verifier (PPC in), the workers and the process PD (notify out). it
//! never PPCs anyone. one hardware deadline serves every periodic timer: it is
//! programmed for the earliest next tick.
#![no_std]
#![cfg_attr(not(target_os = "none"), forbid(unsafe_code))]

#[cfg(target_os = "none")]
pub mod generic_timer;

use pd_interface::layout::ENFORCEMENT_TICK_US;
use pd_interface::timer::{Error, Reply, Request, TimerInfo};
use pd_interface::manifest::timer as manifest;
use pd_interface::{msg, WorkerId, N_WORKERS};
use pd_runtime::{Channel, Handler, MessageInfo, RuntimeError, Unhandled};

/// PPCs from the verifier.
pub const VERIFIER: Channel = manifest::channel::VERIFIER;
/// the timer interrupt (the board's timer PPI).
pub const IRQ: Channel = manifest::channel::TIMER_IRQ;
/// ticks to each worker, by worker index.
pub const WORKERS: [Channel; N_WORKERS] = manifest::channel::WORKERS;
/// the budget-enforcement tick to the process PD.
pub const PROCESS: Channel = manifest::channel::PROCESS;

/// timer.bounds (policy.toml `timer_min_us`, `timer_max_us`): the timer PD
/// refuses anything else even if asked.
pub const PERIOD_MIN_US: u64 = pd_interface::layout::TIMER_MIN_US;
/// see [`PERIOD_MIN_US`].
pub const PERIOD_MAX_US: u64 = pd_interface::layout::TIMER_MAX_US;

/// a monotonic clock with one programmable deadline that raises the IRQ.
pub trait Clock {
    /// microseconds since an arbitrary start.
    fn now_us(&self) -> u64;
    /// raise the IRQ at (or soon after) `deadline_us`.
    fn set_deadline(&mut self, deadline_us: u64);
}

/// what faults the timer PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerError {
    /// an event it does not serve.
    Unhandled(Unhandled),
    /// the runtime refused a notify or an ack (a .system mismatch).
    Runtime(RuntimeError),
    /// a reply did not fit the message registers.
    Reply,
}

impl From<Unhandled> for TimerError {
    fn from(e: Unhandled) -> Self {
        Self::Unhandled(e)
    }
}

impl From<RuntimeError> for TimerError {
    fn from(e: RuntimeError) -> Self {
        Self::Runtime(e)
    }
}

/// the periodic timers.
pub struct Timer<C: Clock> {
    clock: C,
    period: [Option<u64>; N_WORKERS],
    next: [u64; N_WORKERS],
    ticks: [u64; N_WORKERS],
    next_enforcement: u64,
    invocations: u64,
}

impl<C: Clock> Timer<C> {
    /// the Microkit `init`: no worker timers (policy.toml `[initial]`), the
    /// enforcement tick running.
    pub fn init(clock: C) -> Self {
        let now = clock.now_us();
        let mut t = Self {
            clock,
            period: [None; N_WORKERS],
            next: [0; N_WORKERS],
            ticks: [0; N_WORKERS],
            next_enforcement: now.saturating_add(ENFORCEMENT_TICK_US),
            invocations: 0,
        };
        t.program();
        t
    }

    fn program(&mut self) {
        let mut at = self.next_enforcement;
        for (p, n) in self.period.iter().zip(self.next.iter()) {
            if p.is_some() {
                at = at.min(*n);
            }
        }
        self.clock.set_deadline(at);
    }

    /// the timers now.
    pub fn info(&self) -> TimerInfo {
        TimerInfo {
            period_us: self.period,
            ticks: self.ticks,
            invocations: self.invocations,
        }
    }

    /// serve one request; a refused request changes nothing.
    pub fn handle(&mut self, req: Request) -> Reply {
        match req {
            Request::SetPeriodic(w, p) => {
                if !(PERIOD_MIN_US..=PERIOD_MAX_US).contains(&p) {
                    return Reply::Error(Error::BadPeriod);
                }
                let now = self.clock.now_us();
                if let (Some(slot), Some(next)) =
                    (self.period.get_mut(w.index()), self.next.get_mut(w.index()))
                {
                    *slot = Some(p);
                    *next = now.saturating_add(p);
                }
                self.invocations = self.invocations.saturating_add(1);
                self.program();
            }
            Request::Cancel(w) => {
                if let Some(slot) = self.period.get_mut(w.index()) {
                    *slot = None;
                }
                self.invocations = self.invocations.saturating_add(1);
                self.program();
            }
            Request::Query => {}
        }
        Reply::Timers(self.info())
    }

    /// the deadline passed: tick every due worker (once, however late:
    /// ticks coalesce like the notifications that carry them).
    pub fn expired(&mut self) -> Result<(), RuntimeError> {
        let now = self.clock.now_us();
        for w in WorkerId::ALL {
            let i = w.index();
            let (Some(Some(p)), Some(next)) = (self.period.get(i).copied(), self.next.get_mut(i))
            else {
                continue;
            };
            if *next <= now {
                if let (Some(ch), Some(t)) = (WORKERS.get(i), self.ticks.get_mut(i)) {
                    ch.notify()?;
                    *t = t.saturating_add(1);
                }
                *next = next.saturating_add(p).max(now.saturating_add(1));
            }
        }
        if self.next_enforcement <= now {
            PROCESS.notify()?;
            self.next_enforcement = self
                .next_enforcement
                .saturating_add(ENFORCEMENT_TICK_US)
                .max(now.saturating_add(1));
        }
        self.program();
        Ok(())
    }
}

impl<C: Clock> Handler for Timer<C> {
    type Error = TimerError;

    fn notified(&mut self, channel: Channel) -> Result<(), TimerError> {
        if channel != IRQ {
            return Err(Unhandled::Notified(channel).into());
        }
        self.expired()?;
        IRQ.irq_ack()?;
        Ok(())
    }

    fn protected(
        &mut self,
        channel: Channel,
        msg_info: MessageInfo,
    ) -> Result<MessageInfo, TimerError> {
        if channel != VERIFIER {
            return Err(Unhandled::Protected(channel).into());
        }
        let reply = match msg::get::<Request>(msg_info) {
            Ok(req) => self.handle(req),
            Err(_) => Reply::Error(Error::BadRequest),
        };
        msg::put(&reply).map_err(|_| TimerError::Reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        now: u64,
        deadline: u64,
    }
    impl Clock for &mut Fake {
        fn now_us(&self) -> u64 {
            self.now
        }
        fn set_deadline(&mut self, d: u64) {
            self.deadline = d;
        }
    }

    fn w(i: usize) -> WorkerId {
        WorkerId::new(i).unwrap()
    }

    #[test]
    fn deadline_is_the_earliest_tick() {
        let mut f = Fake {
            now: 1000,
            deadline: 0,
        };
        let mut t = Timer::init(&mut f);
        assert_eq!(
            t.handle(Request::SetPeriodic(w(1), 2_000)),
            Reply::Timers(t.info())
        );
        assert_eq!(t.clock.deadline, 3_000);
        t.handle(Request::Cancel(w(1)));
        assert_eq!(t.clock.deadline, 1000 + ENFORCEMENT_TICK_US);
    }

    #[test]
    fn out_of_bounds_periods_are_refused_and_change_nothing() {
        let mut f = Fake {
            now: 0,
            deadline: 0,
        };
        let mut t = Timer::init(&mut f);
        let before = t.info();
        assert_eq!(
            t.handle(Request::SetPeriodic(w(0), 999)),
            Reply::Error(Error::BadPeriod)
        );
        assert_eq!(
            t.handle(Request::SetPeriodic(w(0), 10_000_001)),
            Reply::Error(Error::BadPeriod)
        );
        assert_eq!(t.info(), before);
        assert!(matches!(
            t.handle(Request::SetPeriodic(w(0), 1_000)),
            Reply::Timers(_)
        ));
    }
}
