//! the rules, written once: the checks (what the verifier PD evaluates
//! before each action) and the step function (the state an action
//! produces). what the checks are proved against lives apart, in
//! [`crate::definitions`].
//!
//! everything here is generic over [`Domain`]. the verifier PD runs it with
//! [`Concrete`](crate::domain::Concrete); `llmsh prove` runs the same functions
//! over Z3 terms and proves, for every action kind and every state invariant
//! `I` (with `Inv` and `I` from [`crate::definitions`]):
//!
//! - soundness: `Inv(s) ∧ check(s, a) ⇒ Inv(step(s, a))`,
//! - completeness: `Inv(s) ∧ I(step(s, a)) ⇒ check_I(s, a)`, i.e. a check
//!   fails exactly when its invariant would break, so a verdict names exactly
//!   the broken invariants and rejects nothing they allow,
//! - non-vacuity: each action kind is accepted in some reachable state.
//!
//! a check is written incrementally (it looks only at what the action
//! changes), the definition declaratively (it looks at the whole state). the
//! proofs tie the two; a researcher adding an invariant writes both.

use crate::custom;
use crate::domain::Domain;
use crate::invariant::Invariant;
use crate::model::{CustomInvariant, Limits, Model, Policy, Tier, WorkerTerm};
use crate::plan::{ActionKind, ActionOf, OpTerm, MAX_ACTIONS};

/// sum over workers.
fn sum<D: Domain>(d: &D, m: &Model<D>, f: impl Fn(&WorkerTerm<D>) -> D::Int) -> D::Int {
    let mut acc = d.int(0);
    for w in &m.workers {
        acc = d.add(&acc, &f(w));
    }
    acc
}

/// whether `pd` names worker `i`.
fn is<D: Domain>(d: &D, pd: &D::Int, i: usize) -> D::Bool {
    d.eq(pd, &d.int(i as u64))
}

/// the field of worker `pd`.
fn sel<D: Domain>(d: &D, m: &Model<D>, pd: &D::Int, f: impl Fn(&WorkerTerm<D>) -> D::Int) -> D::Int {
    let mut acc = d.int(0);
    for (i, w) in m.workers.iter().enumerate() {
        acc = d.ite(&is(d, pd, i), &f(w), &acc);
    }
    acc
}

/// the boolean field of worker `pd`.
fn sel_bool<D: Domain>(d: &D, m: &Model<D>, pd: &D::Int, f: impl Fn(&WorkerTerm<D>) -> D::Bool) -> D::Bool {
    let mut acc = d.bool(false);
    for (i, w) in m.workers.iter().enumerate() {
        acc = d.ite_bool(&is(d, pd, i), &f(w), &acc);
    }
    acc
}

/// cpu utilisation of a budget/period pair in per mille, rounded up:
/// `ceil(budget * 1000 / period)`. a zero period counts as 1 µs (it is
/// rejected by `cpu.budget_bounds` anyway; this keeps the value defined).
pub fn util<D: Domain>(d: &D, budget: &D::Int, period: &D::Int) -> D::Int {
    let zero = d.int(0);
    let p = d.ite(&d.eq(period, &zero), &d.int(1), period);
    d.div_ceil(&d.mul(budget, &d.int(1000)), &p)
}

/// utilisation of a worker if it runs, else 0.
fn running_util<D: Domain>(d: &D, w: &WorkerTerm<D>) -> D::Int {
    d.ite(&w.running, &util(d, &w.budget_us, &w.period_us), &d.int(0))
}

/// `min <= x <= max`
fn within<D: Domain>(d: &D, x: &D::Int, min: u64, max: u64) -> D::Bool {
    d.and(&d.le(&d.int(min), x), &d.le(x, &d.int(max)))
}

/// `plan.replay`: a request id is fresh when it lies in
/// `last + 1 ..= last + window`. the window keeps ids from being exhausted:
/// no single plan can move the guard to `u64::MAX`.
pub fn fresh_request<D: Domain>(d: &D, lim: &Limits, last: &D::Int, id: &D::Int) -> D::Bool {
    d.and(&d.lt(last, id), &d.le(id, &d.add(last, &d.int(lim.replay_window))))
}

/// what the verifier checks before action `a` in state `m`, for one name:
/// the incremental form of a state invariant, or an action precondition.
/// true when the check passes or does not apply. plan-level names (size,
/// replay, tier, confirmation) do not depend on the model and are checked in
/// [`crate::verify`].
pub fn check<D: Domain>(d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>, inv: Invariant) -> D::Bool {
    use ActionOf as A;
    use Invariant as I;
    match (inv, a) {
        // a grant must fit the worker's quota and the pool.
        (I::MemQuota, A::MemoryGrant { pd, pages }) => {
            d.le(&d.add(&sel(d, m, pd, |w| w.pages.clone()), pages), &d.int(lim.quota_pages))
        }
        (I::MemPool, A::MemoryGrant { pages, .. }) => {
            d.le(&d.add(&sum(d, m, |w| w.pages.clone()), pages), &m.pool_pages)
        }
        // reclaim: no more than held, and only from a stopped worker.
        (I::MemReclaimBounds, A::MemoryReclaim { pd, pages }) => {
            d.le(pages, &sel(d, m, pd, |w| w.pages.clone()))
        }
        (I::MemReclaimStopped, A::MemoryReclaim { pd, .. }) => {
            d.not(&sel_bool(d, m, pd, |w| w.running.clone()))
        }
        // a new budget: bounds, and the utilisation of the others plus the
        // new one when the worker runs.
        (I::CpuBudgetBounds, A::ProcessSetBudget { budget_us, period_us, .. }) => d.and(
            &d.and(&d.le(&d.int(lim.budget_min_us), budget_us), &d.le(budget_us, period_us)),
            &d.le(period_us, &d.int(lim.period_max_us)),
        ),
        (I::CpuUtil, A::ProcessSetBudget { pd, budget_us, period_us }) => {
            let mut others = d.int(0);
            for (i, w) in m.workers.iter().enumerate() {
                others = d.add(&others, &d.ite(&is(d, pd, i), &d.int(0), &running_util(d, w)));
            }
            let running = sel_bool(d, m, pd, |w| w.running.clone());
            let total = d.add(&others, &util(d, budget_us, period_us));
            d.implies(&running, &d.le(&total, &d.int(lim.cpu_util_permille)))
        }
        // starting (or restarting) a stopped worker adds its utilisation.
        (I::CpuUtil, A::ProcessStart { pd } | A::ProcessRestart { pd }) => {
            let running = sel_bool(d, m, pd, |w| w.running.clone());
            let mine = util(d, &sel(d, m, pd, |w| w.budget_us.clone()), &sel(d, m, pd, |w| w.period_us.clone()));
            let total = d.add(&sum(d, m, |w| running_util(d, w)), &mine);
            d.or(&running, &d.le(&total, &d.int(lim.cpu_util_permille)))
        }
        (I::PrioCeiling, A::ProcessSetPriority { priority, .. }) => {
            d.le(priority, &d.int(lim.priority_ceiling))
        }
        (I::TimerBounds, A::TimerSetPeriodic { period_us, .. }) => {
            within(d, period_us, lim.timer_min_us, lim.timer_max_us)
        }
        // start only a stopped worker; stop only a running one.
        (I::ProcState, A::ProcessStart { pd }) => d.not(&sel_bool(d, m, pd, |w| w.running.clone())),
        (I::ProcState, A::ProcessStop { pd }) => sel_bool(d, m, pd, |w| w.running.clone()),
        (I::ProcRestartRate, A::ProcessRestart { pd }) => {
            d.not(&sel_bool(d, m, pd, |w| w.restarted.clone()))
        }
        _ => d.bool(true),
    }
}

/// every model check for `a` at once (the verifier's acceptance, less the
/// plan-level names).
pub fn accepts<D: Domain>(d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>) -> D::Bool {
    let mut acc = d.bool(true);
    for inv in Invariant::STATE.iter().chain(Invariant::PRECONDITIONS.iter()) {
        acc = d.and(&acc, &check(d, lim, m, a, *inv));
    }
    acc
}

/// the action preconditions of `a` (the specification side of the
/// completeness proofs: a precondition is its own specification).
pub fn preconditions<D: Domain>(d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>) -> D::Bool {
    let mut acc = d.bool(true);
    for inv in Invariant::PRECONDITIONS {
        acc = d.and(&acc, &check(d, lim, m, a, inv));
    }
    acc
}

/// the model after `a`. total: defined even for actions the checks reject
/// (e.g. reclaim saturates at zero), so the proofs can speak of it.
pub fn step<D: Domain>(d: &D, m: &Model<D>, a: &OpTerm<D>) -> Model<D> {
    use ActionOf as A;
    let mut out = m.clone();
    let pd = match a {
        A::FirmwareInventory { .. } | A::SystemQuery {} => return out,
        A::ProcessStart { pd }
        | A::ProcessStop { pd }
        | A::ProcessRestart { pd }
        | A::ProcessSetPriority { pd, .. }
        | A::ProcessSetBudget { pd, .. }
        | A::MemoryGrant { pd, .. }
        | A::MemoryReclaim { pd, .. }
        | A::TimerSetPeriodic { pd, .. }
        | A::TimerCancel { pd } => pd,
    };
    for (i, w) in out.workers.iter_mut().enumerate() {
        let me = is(d, pd, i);
        match a {
            A::ProcessStart { .. } => w.running = d.ite_bool(&me, &d.bool(true), &w.running),
            A::ProcessStop { .. } => w.running = d.ite_bool(&me, &d.bool(false), &w.running),
            A::ProcessRestart { .. } => {
                w.running = d.ite_bool(&me, &d.bool(true), &w.running);
                w.restarted = d.ite_bool(&me, &d.bool(true), &w.restarted);
            }
            A::ProcessSetPriority { priority, .. } => w.priority = d.ite(&me, priority, &w.priority),
            A::ProcessSetBudget { budget_us, period_us, .. } => {
                w.budget_us = d.ite(&me, budget_us, &w.budget_us);
                w.period_us = d.ite(&me, period_us, &w.period_us);
            }
            A::MemoryGrant { pages, .. } => w.pages = d.ite(&me, &d.add(&w.pages, pages), &w.pages),
            A::MemoryReclaim { pages, .. } => w.pages = d.ite(&me, &d.sub_sat(&w.pages, pages), &w.pages),
            A::TimerSetPeriodic { period_us, .. } => {
                w.timer_on = d.ite_bool(&me, &d.bool(true), &w.timer_on);
                w.timer_period_us = d.ite(&me, period_us, &w.timer_period_us);
            }
            A::TimerCancel { .. } => {
                w.timer_on = d.ite_bool(&me, &d.bool(false), &w.timer_on);
                w.timer_period_us = d.ite(&me, &d.int(0), &w.timer_period_us);
            }
            A::FirmwareInventory { .. } | A::SystemQuery {} => {}
        }
    }
    out
}

/// the parts of the verifier that `verify::run` calls: the checks, the
/// step function and the plan-level tables. [`Verifier`] is the verifier
/// PD's own; the prover's tests hand in copies with one part broken and
/// expect a proof to fail.
pub trait Rules<D: Domain> {
    /// one named check, as [`check`].
    fn check(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>, inv: Invariant) -> D::Bool {
        check(d, lim, m, a, inv)
    }

    /// the check of a policy-file invariant before `a`: the invariant holds
    /// on the state `a` produces, by the interpreter (`crate::custom`).
    /// `verify::advance` calls it for every enforced one; the proofs state
    /// the invariant through a translation of their own.
    fn check_custom(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>, c: &CustomInvariant) -> D::Bool {
        custom::eval_bool(d, lim, &self.step(d, m, a), &c.expr)
    }

    /// every model check at once, as [`accepts`].
    fn accepts(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>) -> D::Bool {
        let mut acc = d.bool(true);
        for inv in Invariant::STATE.iter().chain(Invariant::PRECONDITIONS.iter()) {
            acc = d.and(&acc, &self.check(d, lim, m, a, *inv));
        }
        acc
    }

    /// the action preconditions, as [`preconditions`].
    fn preconditions(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>) -> D::Bool {
        let mut acc = d.bool(true);
        for inv in Invariant::PRECONDITIONS {
            acc = d.and(&acc, &self.check(d, lim, m, a, inv));
        }
        acc
    }

    /// the model after `a`, as [`step`].
    fn step(&self, d: &D, m: &Model<D>, a: &OpTerm<D>) -> Model<D> {
        step(d, m, a)
    }

    /// most actions in a plan (`plan.size`).
    fn max_actions(&self) -> u64 {
        MAX_ACTIONS as u64
    }

    /// the least tier of an op (`auth.tier`).
    fn tier(&self, kind: ActionKind) -> Tier {
        kind.tier()
    }

    /// whether an op needs a confirmation token (`auth.confirm`).
    fn destructive(&self, kind: ActionKind) -> bool {
        kind.destructive()
    }

    /// `request_id` passes `plan.replay` after `last` was accepted, as
    /// [`fresh_request`].
    fn fresh(&self, d: &D, lim: &Limits, last: &D::Int, request_id: &D::Int) -> D::Bool {
        fresh_request(d, lim, last, request_id)
    }
}

/// the verifier PD's rules: every part as written in this crate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verifier;

impl<D: Domain> Rules<D> for Verifier {}

/// the verifier's acceptance of one action under the whole policy: every
/// built-in check of `rules`, and every enforced invariant of the policy
/// file on the state the action produces (what `verify::advance` checks).
pub fn accepts_policy<D: Domain, R: Rules<D> + ?Sized>(
    d: &D,
    rules: &R,
    policy: &Policy,
    m: &Model<D>,
    a: &OpTerm<D>,
) -> D::Bool {
    let mut acc = rules.accepts(d, &policy.limits, m, a);
    for (_, c) in policy.invariants.enforced() {
        acc = d.and(&acc, &rules.check_custom(d, &policy.limits, m, a, c));
    }
    acc
}
