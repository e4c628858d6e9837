//! the verifier: a whole plan against the policy and a state, all or nothing
//! (DESIGN.md: "verified as a whole against the state it would produce step by
//! step, before the first invocation").

use crate::confirm;
use crate::domain::Concrete;
use crate::invariant::{Invariant, InvariantSet};
use crate::model::{Policy, State, WorkerState};
use crate::plan::{Action, Plan};
use crate::rules::{self, Model};

/// the outcome of verifying a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// every check passed.
    pub approved: bool,
    /// plan-level violations (`plan.size`, `plan.replay`), reported at action 0.
    pub plan_violations: InvariantSet,
    /// the first failing action and every name it breaks.
    pub failed: Option<(usize, InvariantSet)>,
    /// approved: the state after the whole plan (with `last_request_id`
    /// advanced). rejected: the state just before the first failing action,
    /// which explains the violation.
    pub state: State,
}

/// the state invariants `s` breaks; empty for any state the verifier can
/// reach. a state given from outside (`--state`) must pass this first.
pub fn state_violations(policy: &Policy, s: &State) -> InvariantSet {
    let m = Model::from_state(&Concrete, s);
    let mut out = InvariantSet::EMPTY;
    for inv in Invariant::STATE {
        if !rules::holds(&Concrete, &policy.limits, &m, inv) {
            out.insert(inv);
        }
    }
    out
}

/// the checks one action fails in model `m` (model names only).
pub fn action_violations(policy: &Policy, m: &Model<Concrete>, a: &Action) -> InvariantSet {
    let op = lower(a);
    let mut out = InvariantSet::EMPTY;
    for inv in Invariant::STATE.iter().chain(Invariant::PRECONDITIONS.iter()) {
        if !rules::check(&Concrete, &policy.limits, m, &op, *inv) {
            out.insert(*inv);
        }
    }
    out
}

/// an action in the concrete domain.
#[inline]
pub fn lower(a: &Action) -> rules::OpTerm<Concrete> {
    a.map(|w| w.index() as u128, |n| u128::from(*n))
}

/// verifies `plan` against `policy` in state `s`. `key` checks confirmation
/// tokens. deterministic, no heap, no panic.
pub fn verify(policy: &Policy, s: &State, plan: &Plan, key: &[u8]) -> Verdict {
    let mut plan_violations = InvariantSet::EMPTY;
    if plan.actions.is_empty() {
        plan_violations.insert(Invariant::PlanSize);
    }
    let (last, id) = (u128::from(s.last_request_id), u128::from(plan.request_id));
    if !rules::fresh_request(&Concrete, &policy.limits, &last, &id) {
        plan_violations.insert(Invariant::PlanReplay);
    }
    let tier = policy.session(plan.session.as_str()).map(|x| x.tier);
    // the token is checked once, only when some action needs it.
    let confirmed = !plan.has_destructive() || confirm::is_valid(plan, key);

    let mut m = Model::from_state(&Concrete, s);
    let mut failed = None;
    for (i, a) in plan.actions.iter().enumerate() {
        let kind = a.kind();
        let mut v = action_violations(policy, &m, a);
        if tier.is_none_or(|t| t < kind.tier()) {
            v.insert(Invariant::AuthTier);
        }
        if kind.destructive() && !confirmed {
            v.insert(Invariant::AuthConfirm);
        }
        if !v.is_empty() {
            failed = Some((i, v));
            break;
        }
        m = rules::step(&Concrete, &m, &lower(a));
    }
    let approved = plan_violations.is_empty() && failed.is_none();
    let mut state = lift(&m, s);
    if approved {
        state.last_request_id = plan.request_id;
    }
    Verdict { approved, plan_violations, failed, state }
}

/// back from the model to a state; every field of a reachable model fits u64.
pub fn lift(m: &Model<Concrete>, s: &State) -> State {
    let f = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
    let w = |t: &rules::WorkerTerm<Concrete>| WorkerState {
        running: t.running,
        priority: f(t.priority),
        budget_us: f(t.budget_us),
        period_us: f(t.period_us),
        pages: f(t.pages),
        timer_period_us: if t.timer_on { Some(f(t.timer_period_us)) } else { None },
    };
    let [a, b, c, d] = &m.workers;
    State { workers: [w(a), w(b), w(c), w(d)], pool_pages: f(m.pool_pages), last_request_id: s.last_request_id }
}

/// applies one already-approved action to a state: what the verifier PD does
/// to its model after a capability PD carried the action out.
pub fn apply(s: &State, a: &Action) -> State {
    let m = Model::from_state(&Concrete, s);
    lift(&rules::step(&Concrete, &m, &lower(a)), s)
}
