//! the definitions: what each named rule means, written apart from the
//! checks that enforce it.
//!
//! `rules` holds what the verifier PD evaluates (incremental checks, the
//! step function, the `util` helper); this module holds what those checks
//! are proved against. it calls nothing in `rules` and shares no helper with
//! it, so a bug in a helper cannot hide by being on both sides of a proof.
//! the only shared things are the data types (`model::Model`,
//! `plan::OpTerm`) and the `Domain` operations, which the differential obligations tie to Z3.
//!
//! - state invariants: [`holds`], a predicate on one state;
//! - preconditions: [`pre_holds`], a relation between the state before an
//!   action, the action and the state after it (e.g. a reclaim takes exactly
//!   the pages it names out of the worker);
//! - plan-level rules: [`plan_size_ok`], [`replay_ok`], [`tier_allows`],
//!   [`needs_confirmation`], and, over a whole plan, the number of restarts
//!   of a worker ([`restart_rate_ok`]).
//!
//! utilisation is defined by its inequality, not by a division: the
//! utilisation `u` of budget `b` over period `p` (a zero period counts as
//! 1 µs) is the one integer with `u·p ≥ 1000·b > (u−1)·p`
//! ([`defines_utilisation`]). a domain supplies that `u` through
//! [`Definitional::utilisation`]; the Z3 domain introduces it as a fresh
//! constant constrained by the inequality.

use crate::domain::{Concrete, Domain};
use crate::invariant::Invariant;
use crate::model::{Limits, Model, Tier, WorkerTerm};
use crate::plan::{ActionKind, ActionOf, OpTerm};

/// the longest plan the contract allows (DESIGN.md "Plan v1": 1..=16
/// actions). the specification's own statement of the number, so that a
/// wrong `MAX_ACTIONS` in the checks is a failed proof, not a new truth.
pub const PLAN_ACTIONS_MAX: u64 = 16;

/// a domain that can name the utilisation of a budget/period pair.
pub trait Definitional: Domain {
    /// the `u` of [`defines_utilisation`] for `budget` over `period`.
    fn utilisation(&self, budget: &Self::Int, period: &Self::Int) -> Self::Int;
}

impl Definitional for Concrete {
    fn utilisation(&self, budget: &u128, period: &u128) -> u128 {
        // core's rounding-up division: no code shared with the checks' `util`.
        let p = if *period == 0 { 1 } else { *period };
        budget.saturating_mul(1000).div_ceil(p)
    }
}

/// the defining inequality of utilisation: `u·p ≥ 1000·b` and
/// `1000·b + p > u·p`, with a zero period counted as 1 µs.
pub fn defines_utilisation<D: Domain>(d: &D, u: &D::Int, budget: &D::Int, period: &D::Int) -> D::Bool {
    let zero = d.int(0);
    let p = d.ite(&d.eq(period, &zero), &d.int(1), period);
    let up = d.mul(u, &p);
    let work = d.mul(&d.int(1000), budget);
    d.and(&d.le(&work, &up), &d.lt(&up, &d.add(&work, &p)))
}

/// every worker satisfies `f`.
fn every<D: Domain>(d: &D, m: &Model<D>, f: impl Fn(&WorkerTerm<D>) -> D::Bool) -> D::Bool {
    m.workers.iter().fold(d.bool(true), |acc, w| d.and(&acc, &f(w)))
}

/// the sum of `f` over workers.
fn total<D: Domain>(d: &D, m: &Model<D>, f: impl Fn(&WorkerTerm<D>) -> D::Int) -> D::Int {
    m.workers.iter().fold(d.int(0), |acc, w| d.add(&acc, &f(w)))
}

/// the worker an action's index term names, as a field read.
fn of<D: Domain, T: Clone>(
    d: &D,
    m: &Model<D>,
    pd: &D::Int,
    none: T,
    pick: impl Fn(&D::Bool, &T, &T) -> T,
    f: impl Fn(&WorkerTerm<D>) -> T,
) -> T {
    let mut out = none;
    for (i, w) in m.workers.iter().enumerate() {
        let here = d.eq(pd, &d.int(i as u64));
        out = pick(&here, &f(w), &out);
    }
    out
}

fn int_of<D: Domain>(d: &D, m: &Model<D>, pd: &D::Int, f: impl Fn(&WorkerTerm<D>) -> D::Int) -> D::Int {
    of(d, m, pd, d.int(0), |c, a, b| d.ite(c, a, b), f)
}

fn bool_of<D: Domain>(d: &D, m: &Model<D>, pd: &D::Int, f: impl Fn(&WorkerTerm<D>) -> D::Bool) -> D::Bool {
    of(d, m, pd, d.bool(false), |c, a, b| d.ite_bool(c, a, b), f)
}

/// what a state invariant says of state `m`; true for the other names.
pub fn holds<D: Definitional>(d: &D, lim: &Limits, m: &Model<D>, inv: Invariant) -> D::Bool {
    match inv {
        // no worker holds more pages than its quota.
        Invariant::MemQuota => every(d, m, |w| d.le(&w.pages, &d.int(lim.quota_pages))),
        // the pages held by all workers together fit in the pool.
        Invariant::MemPool => d.le(&total(d, m, |w| w.pages.clone()), &m.pool_pages),
        // the utilisations of the running workers add up to at most the limit.
        Invariant::CpuUtil => {
            let used = total(d, m, |w| {
                d.ite(&w.running, &d.utilisation(&w.budget_us, &w.period_us), &d.int(0))
            });
            d.le(&used, &d.int(lim.cpu_util_permille))
        }
        // least budget <= budget <= period <= longest period.
        Invariant::CpuBudgetBounds => every(d, m, |w| {
            let low = d.le(&d.int(lim.budget_min_us), &w.budget_us);
            let fits = d.le(&w.budget_us, &w.period_us);
            let high = d.le(&w.period_us, &d.int(lim.period_max_us));
            d.and(&low, &d.and(&fits, &high))
        }),
        // no worker's priority is above the ceiling.
        Invariant::PrioCeiling => every(d, m, |w| d.le(&w.priority, &d.int(lim.priority_ceiling))),
        // a worker with a timer has a period between the bounds.
        Invariant::TimerBounds => every(d, m, |w| {
            let low = d.le(&d.int(lim.timer_min_us), &w.timer_period_us);
            let high = d.le(&w.timer_period_us, &d.int(lim.timer_max_us));
            d.or(&d.not(&w.timer_on), &d.and(&low, &high))
        }),
        _ => d.bool(true),
    }
}

/// every state invariant.
pub fn holds_all<D: Definitional>(d: &D, lim: &Limits, m: &Model<D>) -> D::Bool {
    Invariant::STATE.iter().fold(d.bool(true), |acc, inv| d.and(&acc, &holds(d, lim, m, *inv)))
}

/// what a precondition says of the action `a` taking `before` to `after`;
/// true for the other names and for actions a precondition does not speak of.
///
/// `proc.restart_rate` is read here from the restart marks of `before`
/// (restarted earlier in this plan); over a whole plan it is the count of
/// [`restart_rate_ok`], which needs no marks.
pub fn pre_holds<D: Domain>(d: &D, before: &Model<D>, after: &Model<D>, a: &OpTerm<D>, inv: Invariant) -> D::Bool {
    use ActionOf as A;
    use Invariant as I;
    match (inv, a) {
        // a reclaim takes exactly the pages it names out of the worker: what
        // the worker holds afterwards plus the pages reclaimed is what it held.
        (I::MemReclaimBounds, A::MemoryReclaim { pd, pages }) => {
            let had = int_of(d, before, pd, |w| w.pages.clone());
            let has = int_of(d, after, pd, |w| w.pages.clone());
            d.eq(&d.add(&has, pages), &had)
        }
        // the pages of a running worker are never taken away.
        (I::MemReclaimStopped, A::MemoryReclaim { pd, .. }) => d.not(&bool_of(d, before, pd, |w| w.running.clone())),
        // start and stop each change the worker's run state.
        (I::ProcState, A::ProcessStart { pd } | A::ProcessStop { pd }) => {
            let was = bool_of(d, before, pd, |w| w.running.clone());
            let is = bool_of(d, after, pd, |w| w.running.clone());
            d.ite_bool(&was, &d.not(&is), &is)
        }
        // no worker restarted twice in one plan.
        (I::ProcRestartRate, A::ProcessRestart { pd }) => d.not(&bool_of(d, before, pd, |w| w.restarted.clone())),
        _ => d.bool(true),
    }
}

/// a plan has 1..=16 actions.
pub fn plan_size_ok<D: Domain>(d: &D, len: &D::Int) -> D::Bool {
    d.and(&d.le(&d.int(1), len), &d.le(len, &d.int(PLAN_ACTIONS_MAX)))
}

/// a plan's request id was never accepted and does not run ahead: it is
/// one of the next `window` ids after the last accepted one (the policy's
/// `replay_window`), so no single plan spends the ids up to `u64::MAX`.
pub fn replay_ok<D: Domain>(d: &D, window: u64, last: &D::Int, request_id: &D::Int) -> D::Bool {
    let next = d.add(last, &d.int(1));
    let past = d.add(last, &d.int(window));
    d.and(&d.le(&next, request_id), &d.le(request_id, &past))
}

/// the least tier allowed to use each op (DESIGN.md "Sessions and tiers"):
/// observers read, operators also change resources, admins also start,
/// stop and restart workers.
pub const fn tier_allows(kind: ActionKind) -> Tier {
    use ActionKind as K;
    match kind {
        K::FirmwareInventory | K::SystemQuery => Tier::Observer,
        K::ProcessSetPriority
        | K::ProcessSetBudget
        | K::MemoryGrant
        | K::MemoryReclaim
        | K::TimerSetPeriodic
        | K::TimerCancel => Tier::Operator,
        K::ProcessStart | K::ProcessStop | K::ProcessRestart => Tier::Admin,
    }
}

/// the rank of a session's tier: 0 for a session the policy does not name.
pub const fn tier_rank(tier: Option<Tier>) -> u64 {
    match tier {
        None => 0,
        Some(Tier::Observer) => 1,
        Some(Tier::Operator) => 2,
        Some(Tier::Admin) => 3,
    }
}

/// a session of rank `rank` may use `kind`.
pub fn tier_ok<D: Domain>(d: &D, rank: &D::Int, kind: ActionKind) -> D::Bool {
    d.le(&d.int(tier_rank(Some(tier_allows(kind)))), rank)
}

/// ops that take a worker down need the human's confirmation.
pub const fn needs_confirmation(kind: ActionKind) -> bool {
    matches!(kind, ActionKind::ProcessStop | ActionKind::ProcessRestart)
}

/// `restarts_before` restarts of a worker earlier in the plan, and this
/// action one more if it restarts the same worker: at most one in all.
pub fn restart_rate_ok<D: Domain>(d: &D, restarts_before: &D::Int) -> D::Bool {
    d.eq(restarts_before, &d.int(0))
}
