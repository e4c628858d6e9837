//! the system model: the state the verifier tracks and the policy it enforces
//! (DESIGN.md "Default policy and initial state").

use serde::{Deserialize, Serialize};

#[allow(unused_imports, reason = "the generated policy names them when it has invariants")]
use crate::custom::{CustomInvariant, CustomInvariants};
#[allow(unused_imports, reason = "the generated policy names them when it has invariants")]
use crate::expr::{BinOp, Expr, Field, Global, Node, Quant, Var, MAX_NODES};
use crate::worker::{Worker, N_WORKERS};

/// a worker as the verifier models it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerState {
    /// running or stopped (`proc.state`).
    pub running: bool,
    /// its seL4 priority, at most the ceiling (`prio.ceiling`).
    pub priority: u64,
    /// cpu budget per period in µs (`cpu.budget_bounds`, `cpu.util`).
    pub budget_us: u64,
    /// period in µs.
    pub period_us: u64,
    /// pages it holds (`mem.quota`, `mem.pool`).
    pub pages: u64,
    /// its periodic timer, if any (`timer.bounds`).
    pub timer_period_us: Option<u64>,
}

/// the whole model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// indexed by `Worker::index`.
    pub workers: [WorkerState; N_WORKERS],
    /// pages the memory PD's pool holds in all (`mem.pool`).
    pub pool_pages: u64,
    /// the last request id that was approved (`plan.replay`).
    pub last_request_id: u64,
}

impl State {
    /// the state of one worker.
    pub fn worker(&self, w: Worker) -> &WorkerState {
        // a `Worker` is always below N_WORKERS: the fallback to the first is
        // never taken, and keeps this free of panics
        let [first, rest @ ..] = &self.workers;
        match w.index().checked_sub(1) {
            None => first,
            Some(j) => rest.get(j).unwrap_or(first),
        }
    }

    /// mutable access to one worker.
    pub fn worker_mut(&mut self, w: Worker) -> &mut WorkerState {
        let [first, rest @ ..] = &mut self.workers;
        match w.index().checked_sub(1) {
            None => first,
            Some(j) => match rest.get_mut(j) {
                Some(x) => x,
                None => first,
            },
        }
    }

    /// pages held by all workers; u128 so it never wraps.
    pub fn pages_held(&self) -> u128 {
        self.workers.iter().map(|w| u128::from(w.pages)).sum()
    }
}

/// capability tiers, ordered: a higher tier may do all a lower one may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// read-only: firmware.inventory, system.query.
    Observer,
    /// + memory.*, timer.*, process.set_priority, process.set_budget.
    Operator,
    /// + process.start, process.stop, process.restart.
    Admin,
}

impl Tier {
    /// `observer`, `operator`, `admin`.
    pub const fn name(self) -> &'static str {
        match self {
            Tier::Observer => "observer",
            Tier::Operator => "operator",
            Tier::Admin => "admin",
        }
    }
}

/// a short name stored inline so that a policy is a `const` (no heap in the PD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name {
    len: u8,
    bytes: [u8; 32],
}

impl Name {
    /// builds a name at compile time; longer input is cut at 32 bytes
    /// (the policy file parser rejects such names before this point).
    #[allow(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        reason = "const fn without iterators: the loop condition keeps i below both lengths"
    )]
    pub const fn from_str_const(s: &str) -> Name {
        let src = s.as_bytes();
        let mut bytes = [0u8; 32];
        let mut i = 0;
        while i < src.len() && i < 32 {
            bytes[i] = src[i];
            i += 1;
        }
        Name { len: i as u8, bytes }
    }

    /// the name as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// the name as text (always valid utf-8 when built from a `&str`;
    /// a cut in the middle of a character yields the empty string).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

/// a session of the policy: who may plan, at which tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// the `session` field of a plan.
    pub name: Name,
    /// what the session may do (`auth.tier`).
    pub tier: Tier,
    /// tokens the host's planner may spend per request (enforced by llmsh).
    pub token_budget: u64,
}

/// numeric limits, one per invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `mem.quota`: pages per worker.
    pub quota_pages: u64,
    /// `prio.ceiling`.
    pub priority_ceiling: u64,
    /// `cpu.util`, per mille.
    pub cpu_util_permille: u64,
    /// `cpu.budget_bounds`: least budget.
    pub budget_min_us: u64,
    /// `cpu.budget_bounds`: longest period.
    pub period_max_us: u64,
    /// `timer.bounds`: shortest timer period.
    pub timer_min_us: u64,
    /// `timer.bounds`: longest timer period.
    pub timer_max_us: u64,
    /// bytes per page.
    pub page_size: u64,
    /// `plan.replay`: a request id is accepted in `last + 1 ..= last + window`.
    pub replay_window: u64,
}

/// most sessions a policy names (a fixed table in the verifier PD).
pub const MAX_SESSIONS: usize = 8;

/// the policy: limits, the boot state, sessions. built from `system/policy.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// the numbers the invariants compare against.
    pub limits: Limits,
    /// the state at boot.
    pub initial: State,
    /// up to 8 sessions.
    pub sessions: [Option<Session>; MAX_SESSIONS],
    /// the state invariants of the policy file's `[invariants]` table.
    pub invariants: CustomInvariants,
}

impl Policy {
    /// the session with this name.
    pub fn session(&self, name: &str) -> Option<&Session> {
        self.sessions.iter().flatten().find(|s| s.name.as_bytes() == name.as_bytes())
    }
}

include!(concat!(env!("OUT_DIR"), "/default_policy.rs"));
