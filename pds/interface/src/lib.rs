//! the messages PDs exchange, declared once and used by both ends.
//!
//! one request/reply enum pair per capability PD ([`process`], [`memory`],
//! [`timer`], [`firmware`]), the link protocol between the host and the
//! verifier ([`link`]), and the byte-stream framing the link PD speaks on its
//! UART ([`frame`]). PPC messages travel postcard-encoded in the message
//! registers ([`msg`]): the tag's label is the byte length, its count the words.
#![cfg_attr(not(feature = "std"), no_std)]

#[cfg(feature = "std")]
pub mod client;
pub mod manifest;
pub mod frame;
pub mod keys;
pub mod link;
pub mod msg;

use serde::{Deserialize, Serialize};

/// number of worker PDs (the PDs running `worker.elf`; policy.toml
/// `workers` says the same, or the build fails).
pub const N_WORKERS: usize = manifest::WORKERS;

/// page size of the memory pool (policy.toml `page_size`).
pub const PAGE_SIZE: usize = layout::PAGE_SIZE;

/// a worker by index `0..N_WORKERS`; system PDs are not addressable at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkerId(u8);

impl WorkerId {
    /// all workers in order.
    #[allow(clippy::indexing_slicing, reason = "a const loop bounded by the array's length")]
    pub const ALL: [WorkerId; N_WORKERS] = {
        let mut all = [WorkerId(0); N_WORKERS];
        let mut i = 0;
        while i < N_WORKERS {
            all[i] = WorkerId(i as u8);
            i += 1;
        }
        all
    };

    /// `None` unless `i < N_WORKERS`.
    pub const fn new(i: usize) -> Option<Self> {
        if i < N_WORKERS {
            Some(Self(i as u8))
        } else {
            None
        }
    }

    /// `0..N_WORKERS`.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// process PD interface: the workers as child PDs.
pub mod process {
    use super::*;

    /// what the verifier asks of the process PD.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Request {
        /// start a stopped worker (restart from its entry).
        Start(WorkerId),
        /// suspend a running worker.
        Stop(WorkerId),
        /// restart a worker from its entry.
        Restart(WorkerId),
        /// set a worker's priority (the kernel enforces the .system ceiling).
        SetPriority(WorkerId, u8),
        /// set the budget the process PD enforces.
        SetBudget {
            /// which worker.
            worker: WorkerId,
            /// µs per period.
            budget_us: u64,
            /// period in µs.
            period_us: u64,
        },
        /// report every worker.
        Query,
    }

    /// one worker as the process PD observes it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct WorkerInfo {
        /// not stopped (a throttled worker still counts as running).
        pub running: bool,
        /// current priority.
        pub priority: u8,
        /// enforced budget per period, µs.
        pub budget_us: u64,
        /// period, µs.
        pub period_us: u64,
        /// faults taken since boot.
        pub faults: u32,
        /// restarts since boot (by plan or after a fault).
        pub restarts: u32,
        /// currently suspended for exceeding its budget.
        pub throttled: bool,
        /// cpu time consumed since boot, µs.
        pub consumed_us: u64,
        /// progress counter the worker publishes.
        pub progress: u64,
        /// requests for this worker the process PD carried out since boot
        /// (refused ones and queries not counted): what an outside observer
        /// compares with the plans the verifier approved.
        pub invocations: u64,
    }

    /// the process PD's answer.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Reply {
        /// done; the worker's state after it.
        Done(WorkerInfo),
        /// every worker.
        Workers([WorkerInfo; N_WORKERS]),
        /// refused; nothing changed.
        Error(Error),
    }

    /// why the process PD refused.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Error {
        /// start of a running worker.
        AlreadyRunning,
        /// stop of a stopped worker.
        NotRunning,
        /// budget outside the policy's budget_min_us ≤ budget ≤ period ≤ period_max_us.
        BadBudget,
        /// the kernel refused (seL4 error code).
        Kernel(u8),
        /// the request did not decode.
        BadRequest,
    }

    impl Error {
        /// a stable code for receipts: 1..=3, 4 bad request, 0x80 | seL4 error.
        pub const fn code(self) -> u8 {
            match self {
                Error::AlreadyRunning => 1,
                Error::NotRunning => 2,
                Error::BadBudget => 3,
                Error::BadRequest => 4,
                Error::Kernel(e) => 0x80 | (e & 0x7f),
            }
        }
    }
}

/// memory PD interface: the page pool shared with the workers.
pub mod memory {
    use super::*;

    /// what the verifier asks of the memory PD.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Request {
        /// give the worker this many more pages.
        Grant(WorkerId, u64),
        /// take this many pages back (zeroed before reuse).
        Reclaim(WorkerId, u64),
        /// report the pool.
        Query,
    }

    /// the pool as the memory PD's page table says.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct PoolInfo {
        /// pages held by each worker.
        pub pages: [u64; N_WORKERS],
        /// pages in the pool.
        pub pool_pages: u64,
        /// pages free.
        pub free_pages: u64,
        /// grants and reclaims carried out since boot (not the initial pages).
        pub invocations: u64,
    }

    /// the memory PD's answer.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Reply {
        /// done, or the answer to a query.
        Pool(PoolInfo),
        /// refused; nothing changed.
        Error(Error),
    }

    /// why the memory PD refused.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Error {
        /// not enough free pages.
        PoolExhausted,
        /// reclaim of more pages than the worker holds.
        NotHeld,
        /// more than the per-worker quota.
        Quota,
        /// the pool region is not mapped as the .system file says.
        Region,
        /// the request did not decode.
        BadRequest,
    }
}

/// timer PD interface: periodic notifications to workers.
pub mod timer {
    use super::*;

    /// what the verifier asks of the timer PD.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Request {
        /// notify the worker every `period_us`.
        SetPeriodic(WorkerId, u64),
        /// stop notifying the worker.
        Cancel(WorkerId),
        /// report every worker's timer.
        Query,
    }

    /// timers as the timer PD runs them.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct TimerInfo {
        /// each worker's period, if any.
        pub period_us: [Option<u64>; N_WORKERS],
        /// notifications sent to each worker since boot.
        pub ticks: [u64; N_WORKERS],
        /// set_periodic and cancel requests carried out since boot.
        pub invocations: u64,
    }

    /// the timer PD's answer.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Reply {
        /// done, or the answer to a query.
        Timers(TimerInfo),
        /// refused; nothing changed.
        Error(Error),
    }

    /// why the timer PD refused.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Error {
        /// period outside the policy's timer_min_us ..= timer_max_us.
        BadPeriod,
        /// the request did not decode.
        BadRequest,
    }
}

/// firmware PD interface: read-only platform inventory. every string in it
/// comes from board data the system does not control: untrusted.
pub mod firmware {
    use super::*;

    /// maximum devices in one answer.
    pub const MAX_DEVICES: usize = 8;
    /// maximum memory ranges in one answer.
    pub const MAX_MEMORY: usize = 4;

    /// which part of the inventory.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Query {
        /// cpus only.
        Cpus,
        /// memory only.
        Memory,
        /// devices only.
        Devices,
        /// everything.
        All,
    }

    /// a memory range.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MemoryRange {
        /// physical base.
        pub base: u64,
        /// bytes.
        pub size: u64,
    }

    /// a device.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Device {
        /// node name (untrusted).
        pub name: heapless::String<24>,
        /// compatible string (untrusted).
        pub compatible: heapless::String<32>,
        /// mmio base.
        pub base: u64,
        /// mmio size.
        pub size: u64,
        /// interrupt id, if any.
        pub irq: Option<u32>,
    }

    /// the inventory answer.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct Inventory {
        /// cpu count (0 when not asked).
        pub cpus: u8,
        /// cpu model (untrusted; empty when not asked).
        pub cpu_model: heapless::String<32>,
        /// memory ranges.
        pub memory: heapless::Vec<MemoryRange, MAX_MEMORY>,
        /// devices.
        pub devices: heapless::Vec<Device, MAX_DEVICES>,
    }

    /// what the verifier asks of the firmware PD.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Request {
        /// part of the inventory.
        Inventory(Query),
    }

    /// the firmware PD's answer.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[allow(clippy::large_enum_variant, reason = "a PD has no allocator to box the inventory; one reply exists per request")]
    pub enum Reply {
        /// the inventory.
        Inventory(Inventory),
        /// the request did not decode.
        BadRequest,
    }
}

/// the layout of memory shared between PDs, one place for both sides; the
/// policy numbers the PDs enforce are generated from policy.toml (pool,
/// quota, initial pages, priority, budget, period, last request id).
pub mod layout {
    include!(concat!(env!("OUT_DIR"), "/policy.rs"));

    /// ledger byte for a free page; otherwise the byte is `worker index + 1`.
    pub const LEDGER_FREE: u8 = 0;

    /// status page word offsets (a worker writes its own, process reads all).
    pub mod status {
        /// `STATUS_MAGIC` once the worker initialised.
        pub const MAGIC: usize = 0;
        /// ticks handled since (re)start: the worker's progress.
        pub const PROGRESS: usize = 8;
        /// pages the ledger gives it, as last seen.
        pub const PAGES_SEEN: usize = 16;
        /// last pool page it wrote.
        pub const LAST_PAGE: usize = 24;
        /// the magic value.
        pub const STATUS_MAGIC: u64 = 0x6c6c_6d6f_735f_7772; // "llmos_wr"
    }

    /// the timer's budget-enforcement tick to the process PD, µs.
    pub const ENFORCEMENT_TICK_US: u64 = 10_000;
}
