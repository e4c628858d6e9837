//! the verifier: a whole plan against the policy and a state, all or nothing
//! (DESIGN.md: "verified as a whole against the state it would produce step by
//! step, before the first invocation").

use crate::confirm;
use crate::custom;
use crate::definitions;
use crate::domain::{Concrete, Domain};
use crate::invariant::{Invariant, InvariantSet};
use crate::model::{ite_model, CustomInvariants, Limits, Model, Policy, State, WorkerState, WorkerTerm, MAX_CUSTOM};
use crate::plan::{Action, ActionKind, OpTerm, Plan};
use crate::rules::{self, Rules, Verifier};

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

/// the state invariants `s` breaks (by their definitions); empty for any
/// state the verifier can reach. a state given from outside (`--state`)
/// must pass this first.
pub fn state_violations(policy: &Policy, s: &State) -> InvariantSet {
    let m = Model::from_state(&Concrete, s);
    let mut out = InvariantSet::EMPTY;
    for inv in Invariant::STATE {
        if !definitions::holds(&Concrete, &policy.limits, &m, inv) {
            out.insert(inv);
        }
    }
    custom::violations(&Concrete, policy, &m, &mut out);
    out
}

/// the checks one action fails in model `m` (built-in model names only;
/// [`verify`] adds the policy file's invariants).
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
pub fn lower(a: &Action) -> OpTerm<Concrete> {
    a.map(|w| w.index() as u128, |n| u128::from(*n))
}

/// how many built-in names there are.
pub const N_NAMES: usize = Invariant::ALL.len();

/// the length of a [`Names`]: the built-in names, then one slot per
/// invariant the policy file may define.
pub const N_SLOTS: usize = N_NAMES + MAX_CUSTOM;

/// a set of names over a domain: one boolean per built-in name, by
/// `Invariant as usize`, then one per policy-file invariant, by its slot.
pub struct Names<D: Domain>(pub [D::Bool; N_SLOTS]);

impl<D: Domain> Clone for Names<D> {
    fn clone(&self) -> Self {
        Names(self.0.clone())
    }
}

impl<D: Domain> Names<D> {
    /// no name.
    pub fn none(d: &D) -> Names<D> {
        Names(core::array::from_fn(|_| d.bool(false)))
    }

    /// whether `inv` is in the set.
    pub fn get(&self, d: &D, inv: Invariant) -> D::Bool {
        self.0.get(inv as usize).cloned().unwrap_or_else(|| d.bool(false))
    }

    /// adds `inv` when `c`.
    pub fn add_if(&mut self, d: &D, inv: Invariant, c: &D::Bool) {
        if let Some(b) = self.0.get_mut(inv as usize) {
            *b = d.or(b, c);
        }
    }

    /// whether the policy file's invariant in slot `k` is in the set.
    pub fn get_custom(&self, d: &D, k: usize) -> D::Bool {
        N_NAMES.checked_add(k).and_then(|i| self.0.get(i)).cloned().unwrap_or_else(|| d.bool(false))
    }

    /// adds the policy file's invariant in slot `k` when `c`.
    pub fn add_custom_if(&mut self, d: &D, k: usize, c: &D::Bool) {
        if let Some(b) = N_NAMES.checked_add(k).and_then(|i| self.0.get_mut(i)) {
            *b = d.or(b, c);
        }
    }

    /// some name is in the set.
    pub fn any(&self, d: &D) -> D::Bool {
        self.0.iter().fold(d.bool(false), |acc, b| d.or(&acc, b))
    }

    /// `a` when `c`, else `b`.
    pub fn ite(d: &D, c: &D::Bool, a: &Names<D>, b: &Names<D>) -> Names<D> {
        Names(core::array::from_fn(|i| match (a.0.get(i), b.0.get(i)) {
            (Some(x), Some(y)) => d.ite_bool(c, x, y),
            _ => d.bool(false),
        }))
    }
}

/// what [`Slot::cases`] calls for each action a slot may be: its guard,
/// its kind and the action.
pub type CaseFn<'a, D> = dyn FnMut(&<D as Domain>::Bool, ActionKind, &OpTerm<D>) + 'a;

/// one action of a plan as [`run`] reads it: present or not, and the
/// actions it may be, each with a guard saying that it is this one. a
/// concrete action is present and exactly one action; a symbolic slot in
/// the prover is any action of any kind.
pub trait Slot<D: Domain> {
    /// the plan has this action.
    fn present(&self, d: &D) -> D::Bool;
    /// calls `f(guard, kind, action)` for each action the slot may be.
    fn cases(&self, d: &D, f: &mut CaseFn<'_, D>);
}

impl Slot<Concrete> for Action {
    fn present(&self, _: &Concrete) -> bool {
        true
    }
    fn cases(&self, _: &Concrete, f: &mut CaseFn<'_, Concrete>) {
        f(&true, self.kind(), &lower(self));
    }
}

/// what [`run`] needs besides the actions: the plan's request id, the last
/// accepted one, the session's tier rank (`definitions::tier_rank`: 0 for an
/// unknown session) and whether the confirmation token is valid (opaque:
/// an HMAC in the PD, a free boolean in the proofs).
pub struct Context<D: Domain> {
    /// the plan's `request_id`.
    pub request_id: D::Int,
    /// the state's `last_request_id`.
    pub last_request_id: D::Int,
    /// 0 unknown session, 1 observer, 2 operator, 3 admin.
    pub tier_rank: D::Int,
    /// the plan's confirmation token checks out.
    pub token_valid: D::Bool,
}

/// the verdict of [`run`], over a domain.
pub struct VerdictOf<D: Domain> {
    /// every check passed.
    pub approved: D::Bool,
    /// `plan.size`, `plan.replay`.
    pub plan_violations: Names<D>,
    /// some action failed.
    pub failed: D::Bool,
    /// the index of the first failing action (meaningful when `failed`).
    pub failed_at: D::Int,
    /// every name the first failing action breaks (empty unless `failed`).
    pub failed_names: Names<D>,
    /// the model after the last action, or just before the first failing one.
    pub model: Model<D>,
}

/// the plan-level pass of [`run`]: the plan's length, `plan.size` and
/// `plan.replay`, and whether the confirmation covers the plan (no action
/// needs it, or the token is valid).
pub struct Header<D: Domain> {
    /// present actions.
    pub len: D::Int,
    /// `plan.size`, `plan.replay`.
    pub plan_violations: Names<D>,
    /// every action that needs the confirmation has it.
    pub confirmed: D::Bool,
}

/// the plan-level pass.
pub fn header<D: Domain, R: Rules<D> + ?Sized, S: Slot<D>>(
    d: &D,
    rules: &R,
    lim: &Limits,
    ctx: &Context<D>,
    slots: &[S],
) -> Header<D> {
    let zero = d.int(0);
    let one = d.int(1);
    let mut len = zero.clone();
    let mut destructive = d.bool(false);
    for s in slots {
        let here = s.present(d);
        len = d.add(&len, &d.ite(&here, &one, &zero));
        s.cases(d, &mut |g, kind, _| {
            if rules.destructive(kind) {
                destructive = d.or(&destructive, &d.and(&here, g));
            }
        });
    }
    let mut plan_violations = Names::none(d);
    let size_ok = d.and(&d.le(&one, &len), &d.le(&len, &d.int(rules.max_actions())));
    plan_violations.add_if(d, Invariant::PlanSize, &d.not(&size_ok));
    plan_violations.add_if(d, Invariant::PlanReplay, &d.not(&rules.fresh(d, lim, &ctx.last_request_id, &ctx.request_id)));
    // the token matters only when some action needs it.
    let confirmed = d.or(&d.not(&destructive), &ctx.token_valid);
    Header { len, plan_violations, confirmed }
}

/// the state of [`run`]'s loop over the actions.
pub struct Progress<D: Domain> {
    /// the model after the actions so far (it runs on past a failure; the
    /// model of each action does not depend on whether an earlier one
    /// failed).
    pub m: Model<D>,
    /// the model just before the first failing action.
    pub held: Model<D>,
    /// some action failed.
    pub failed: D::Bool,
    /// the first failing action's index.
    pub failed_at: D::Int,
    /// the names it breaks.
    pub failed_names: Names<D>,
}

impl<D: Domain> Clone for Progress<D> {
    fn clone(&self) -> Self {
        Progress {
            m: self.m.clone(),
            held: self.held.clone(),
            failed: self.failed.clone(),
            failed_at: self.failed_at.clone(),
            failed_names: self.failed_names.clone(),
        }
    }
}

/// the loop state before the first action.
pub fn begin<D: Domain>(d: &D, m0: &Model<D>) -> Progress<D> {
    Progress { m: m0.clone(), held: m0.clone(), failed: d.bool(false), failed_at: d.int(0), failed_names: Names::none(d) }
}

/// the loop body of [`run`]: action `slot` at index `i`, every check
/// against the model the actions before it produced; the first failure is
/// recorded and kept.
#[allow(clippy::too_many_arguments, reason = "the loop's inputs, named")]
pub fn advance<D: Domain, R: Rules<D> + ?Sized, S: Slot<D>>(
    d: &D,
    rules: &R,
    lim: &Limits,
    invariants: &CustomInvariants,
    ctx: &Context<D>,
    confirmed: &D::Bool,
    i: &D::Int,
    p: &Progress<D>,
    slot: &S,
) -> Progress<D> {
    let m = &p.m;
    let present = slot.present(d);
    let go = d.and(&d.not(&p.failed), &present);
    let mut v = Names::none(d);
    let mut next = m.clone();
    slot.cases(d, &mut |g, kind, op| {
        for inv in Invariant::STATE.iter().chain(Invariant::PRECONDITIONS.iter()) {
            let bad = d.and(g, &d.not(&rules.check(d, lim, m, op, *inv)));
            v.add_if(d, *inv, &bad);
        }
        // the policy file's enforced invariants, on the state the action produces.
        for (k, c) in invariants.enforced() {
            let bad = d.and(g, &d.not(&rules.check_custom(d, lim, m, op, c)));
            v.add_custom_if(d, k, &bad);
        }
        let rank_needed = d.int(definitions::tier_rank(Some(rules.tier(kind))));
        v.add_if(d, Invariant::AuthTier, &d.and(g, &d.lt(&ctx.tier_rank, &rank_needed)));
        if rules.destructive(kind) {
            v.add_if(d, Invariant::AuthConfirm, &d.and(g, &d.not(confirmed)));
        }
        next = ite_model(d, g, &rules.step(d, m, op), &next);
    });
    let now = d.and(&go, &v.any(d));
    Progress {
        m: ite_model(d, &present, &next, m),
        held: ite_model(d, &now, m, &p.held),
        failed: d.or(&p.failed, &now),
        failed_at: d.ite(&now, i, &p.failed_at),
        failed_names: Names::ite(d, &now, &v, &p.failed_names),
    }
}

/// the verdict from the plan-level pass and the loop's end state.
pub fn finish<D: Domain>(d: &D, h: &Header<D>, p: &Progress<D>) -> VerdictOf<D> {
    let approved = d.and(&d.not(&h.plan_violations.any(d)), &d.not(&p.failed));
    VerdictOf {
        approved,
        plan_violations: h.plan_violations.clone(),
        failed: p.failed.clone(),
        failed_at: p.failed_at.clone(),
        failed_names: p.failed_names.clone(),
        model: ite_model(d, &p.failed, &p.held, &p.m),
    }
}

/// the verifier, generic: the plan-level pass, then the actions in order
/// ([`advance`]), then the verdict. `verify` runs it over `Concrete`; the
/// prover runs [`header`], [`advance`] and [`finish`] over Z3 terms.
pub fn run<D: Domain, R: Rules<D> + ?Sized, S: Slot<D>>(
    d: &D,
    rules: &R,
    lim: &Limits,
    invariants: &CustomInvariants,
    m0: &Model<D>,
    ctx: &Context<D>,
    slots: &[S],
) -> VerdictOf<D> {
    let h = header(d, rules, lim, ctx, slots);
    let mut p = begin(d, m0);
    for (i, s) in slots.iter().enumerate() {
        if d.known(&d.and(&d.not(&p.failed), &s.present(d))) == Some(false) {
            break;
        }
        p = advance(d, rules, lim, invariants, ctx, &h.confirmed, &d.int(i as u64), &p, s);
    }
    finish(d, &h, &p)
}

/// verifies `plan` against `policy` in state `s`. `key` checks confirmation
/// tokens. deterministic, no heap, no panic.
pub fn verify(policy: &Policy, s: &State, plan: &Plan, key: &[u8]) -> Verdict {
    let d = &Concrete;
    let tier = policy.session(plan.session.as_str()).map(|x| x.tier);
    let ctx = Context {
        request_id: d.int(plan.request_id),
        last_request_id: d.int(s.last_request_id),
        tier_rank: d.int(definitions::tier_rank(tier)),
        // the token is checked once, only when some action needs it.
        token_valid: plan.has_destructive() && confirm::is_valid(plan, key),
    };
    let v = run(d, &Verifier, &policy.limits, &policy.invariants, &Model::from_state(d, s), &ctx, &plan.actions);
    let set = |n: &Names<Concrete>| {
        let mut out = InvariantSet::EMPTY;
        for inv in Invariant::ALL {
            if n.get(d, *inv) {
                out.insert(*inv);
            }
        }
        for k in 0..MAX_CUSTOM {
            if n.get_custom(d, k) {
                out.insert_custom(k);
            }
        }
        out
    };
    let failed = v.failed.then(|| (usize::try_from(v.failed_at).unwrap_or(usize::MAX), set(&v.failed_names)));
    let mut state = lift(&v.model, s);
    if v.approved {
        state.last_request_id = plan.request_id;
    }
    Verdict { approved: v.approved, plan_violations: set(&v.plan_violations), failed, state }
}

/// back from the model to a state; every field of a reachable model fits u64.
pub fn lift(m: &Model<Concrete>, s: &State) -> State {
    let f = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
    let w = |t: &WorkerTerm<Concrete>| WorkerState {
        running: t.running,
        priority: f(t.priority),
        budget_us: f(t.budget_us),
        period_us: f(t.period_us),
        pages: f(t.pages),
        timer_period_us: if t.timer_on { Some(f(t.timer_period_us)) } else { None },
    };
    State { workers: m.workers.each_ref().map(w), pool_pages: f(m.pool_pages), last_request_id: s.last_request_id }
}

/// applies one already-approved action to a state: what the verifier PD does
/// to its model after a capability PD carried the action out.
pub fn apply(s: &State, a: &Action) -> State {
    let m = Model::from_state(&Concrete, s);
    lift(&rules::step(&Concrete, &m, &lower(a)), s)
}
