//! the system model: the state the verifier tracks, the same state over a
//! [`Domain`] ([`Model`], what the rules and the proofs read), and the
//! policy it enforces (DESIGN.md "Default policy and initial state").

use serde::{Deserialize, Serialize};

use crate::domain::Domain;
#[allow(unused_imports, reason = "the generated policy names them when it has invariants")]
use crate::expr::{BinOp, Expr, Field, Global, Node, Quant, Var, MAX_NODES};
use crate::invariant::{InvariantSet, CUSTOM_SLOTS};
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

/// most invariants a policy file may define.
pub const MAX_CUSTOM: usize = 8;

// each slot has its bit in a set
const _: () = assert!(MAX_CUSTOM <= CUSTOM_SLOTS);

/// one named invariant of the policy file (evaluated by `crate::custom`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomInvariant {
    /// its name, e.g. `proc.max_stopped`; never a built-in name.
    pub name: Name,
    /// the predicate on a state.
    pub expr: Expr,
    /// checked by the verifier (true) or only a claim for the proofs (false).
    pub enforced: bool,
}

/// the policy's invariants, in name order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomInvariants {
    /// slot `k` is bit `k` of [`InvariantSet::custom_bits`].
    pub items: [Option<CustomInvariant>; MAX_CUSTOM],
}

impl CustomInvariants {
    /// no custom invariants.
    pub const NONE: CustomInvariants = CustomInvariants { items: [None; MAX_CUSTOM] };

    /// `(slot, invariant)` for every defined one.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &CustomInvariant)> {
        self.items.iter().enumerate().filter_map(|(k, c)| c.as_ref().map(|c| (k, c)))
    }

    /// the enforced ones.
    pub fn enforced(&self) -> impl Iterator<Item = (usize, &CustomInvariant)> {
        self.iter().filter(|(_, c)| c.enforced)
    }

    /// slot `k`.
    pub fn get(&self, k: usize) -> Option<&CustomInvariant> {
        self.items.get(k).and_then(Option::as_ref)
    }

    /// the slot of the invariant named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.iter().find(|(_, c)| c.name.as_str() == name).map(|(k, _)| k)
    }

    /// how many are defined.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// none defined.
    pub fn is_empty(&self) -> bool {
        self.items.iter().all(Option::is_none)
    }
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

    /// the names of a set: built-in names in report order, then this
    /// policy's custom ones in slot order (a set carries ids, never names).
    pub fn names<'a>(&'a self, set: InvariantSet) -> impl Iterator<Item = &'a str> + 'a {
        set.iter()
            .map(|i| -> &'a str { i.name() })
            .chain(set.customs().filter_map(move |k| self.invariants.get(k).map(|c| c.name.as_str())))
    }
}

/// one worker in the model, over a domain.
pub struct WorkerTerm<D: Domain> {
    /// running or stopped.
    pub running: D::Bool,
    /// priority.
    pub priority: D::Int,
    /// budget per period, µs.
    pub budget_us: D::Int,
    /// period, µs.
    pub period_us: D::Int,
    /// pages held.
    pub pages: D::Int,
    /// whether a periodic timer is set.
    pub timer_on: D::Bool,
    /// its period, µs (meaningful when `timer_on`).
    pub timer_period_us: D::Int,
    /// restarted earlier in the current plan (`proc.restart_rate`); false at
    /// the start of every plan.
    pub restarted: D::Bool,
}

impl<D: Domain> Clone for WorkerTerm<D> {
    fn clone(&self) -> Self {
        WorkerTerm {
            running: self.running.clone(),
            priority: self.priority.clone(),
            budget_us: self.budget_us.clone(),
            period_us: self.period_us.clone(),
            pages: self.pages.clone(),
            timer_on: self.timer_on.clone(),
            timer_period_us: self.timer_period_us.clone(),
            restarted: self.restarted.clone(),
        }
    }
}

/// the model over a domain.
pub struct Model<D: Domain> {
    /// indexed by worker index.
    pub workers: [WorkerTerm<D>; N_WORKERS],
    /// the pool size in pages.
    pub pool_pages: D::Int,
}

impl<D: Domain> Clone for Model<D> {
    fn clone(&self) -> Self {
        Model { workers: self.workers.clone(), pool_pages: self.pool_pages.clone() }
    }
}

impl<D: Domain> Model<D> {
    /// lifts a concrete state (restart marks cleared: a plan starts).
    pub fn from_state(d: &D, s: &State) -> Model<D> {
        let w = |x: &WorkerState| WorkerTerm {
            running: d.bool(x.running),
            priority: d.int(x.priority),
            budget_us: d.int(x.budget_us),
            period_us: d.int(x.period_us),
            pages: d.int(x.pages),
            timer_on: d.bool(x.timer_period_us.is_some()),
            timer_period_us: d.int(x.timer_period_us.unwrap_or(0)),
            restarted: d.bool(false),
        };
        Model { workers: s.workers.each_ref().map(w), pool_pages: d.int(s.pool_pages) }
    }
}

/// the model `a` when `c`, else `b`, field by field.
pub fn ite_model<D: Domain>(d: &D, c: &D::Bool, a: &Model<D>, b: &Model<D>) -> Model<D> {
    if let Some(known) = d.known(c) {
        return if known { a.clone() } else { b.clone() };
    }
    let mut out = b.clone();
    for (o, x) in out.workers.iter_mut().zip(a.workers.iter()) {
        o.running = d.ite_bool(c, &x.running, &o.running);
        o.priority = d.ite(c, &x.priority, &o.priority);
        o.budget_us = d.ite(c, &x.budget_us, &o.budget_us);
        o.period_us = d.ite(c, &x.period_us, &o.period_us);
        o.pages = d.ite(c, &x.pages, &o.pages);
        o.timer_on = d.ite_bool(c, &x.timer_on, &o.timer_on);
        o.timer_period_us = d.ite(c, &x.timer_period_us, &o.timer_period_us);
        o.restarted = d.ite_bool(c, &x.restarted, &o.restarted);
    }
    out.pool_pages = d.ite(c, &a.pool_pages, &b.pool_pages);
    out
}

include!(concat!(env!("OUT_DIR"), "/default_policy.rs"));
