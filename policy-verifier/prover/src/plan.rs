//! the plan obligations: `policy_verifier::verify::run`, the loop the
//! verifier PD runs, over a symbolic plan, against the definitions.
//!
//! the plan has [`SLOTS`] symbolic slots (one more than the contract's
//! longest plan, so an off-by-one `plan.size` shows), each present or not
//! (present slots come first), of any kind, with symbolic worker and
//! numbers; the state is symbolic and keeps every invariant, with no
//! restart marks (a plan starts); the session's tier rank, the request id,
//! the last accepted id and the validity of the confirmation token are free.
//!
//! the definitions side threads its own states `m_0 … m_n` through the plan
//! with the model's step function and says, per action `i`, which names it
//! breaks (`bad_N(i)`): a state invariant its state after breaks, a
//! precondition's definition it fails, a restart of a worker restarted
//! earlier in the plan (counted over the actions, not read from marks), an
//! op above the session's tier, an op needing confirmation without a valid
//! token. `ok(i)` is that it breaks none. with those:
//!
//! | name | statement |
//! |---|---|
//! | `plan/soundness/N` | approved ⇒ N held: the size is 1..=16, the id is fresh, no action breaks N |
//! | `plan/completeness` | size ok ∧ id fresh ∧ every action ok ⇒ approved |
//! | `plan/naming/N` | the verdict names N (at plan level or at its first failing action) exactly when the definitions say N breaks there |
//! | `plan/first_failure` | an action failed ⇔ some action is not ok, and the one named is the first |
//! | `plan/state` | the verdict's state is `m_k`, `k` the first failing action or the plan's length |

use policy_verifier::definitions::{self, holds, holds_all, pre_holds, tier_ok, PLAN_ACTIONS_MAX};
use policy_verifier::domain::Domain;
use policy_verifier::plan::{ActionKind, Plan, MAX_ACTIONS, PLAN_VERSION};
use policy_verifier::rules::{self, Model};
use policy_verifier::verify::{self, Context, Names, VerdictOf};
use policy_verifier::{confirm, Action, Invariant, Tier};
use z3::ast::{Bool, Int};
use z3::SatResult;

use crate::counterexample::{self, Counterexample};
use crate::obligation::{blank, timed_check, Obligation, Outcome, Prover, Spec};
use crate::symbolic::{in_u64, sym_state, SymSlot, Z3};

/// symbolic slots in a plan obligation: one past the longest plan.
pub const SLOTS: usize = (if MAX_ACTIONS > PLAN_ACTIONS_MAX as usize { MAX_ACTIONS } else { PLAN_ACTIONS_MAX as usize }) + 1;

/// which statement about plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanGoal {
    /// approved ⇒ the name held throughout.
    Soundness,
    /// every rule holds ⇒ approved.
    Completeness,
    /// the verdict names the name exactly when it breaks.
    Naming,
    /// the first failing action is the one named.
    FirstFailure,
    /// the verdict's state is the definitions' state.
    State,
}

impl PlanGoal {
    /// its part of the obligation name.
    pub const fn name(self) -> &'static str {
        match self {
            PlanGoal::Soundness => "soundness",
            PlanGoal::Completeness => "completeness",
            PlanGoal::Naming => "naming",
            PlanGoal::FirstFailure => "first_failure",
            PlanGoal::State => "state",
        }
    }
}

/// every plan obligation: soundness and naming per name, then completeness,
/// the first failure and the state.
pub fn goals() -> Vec<(PlanGoal, Option<Invariant>)> {
    let mut out = Vec::new();
    for inv in Invariant::ALL {
        out.push((PlanGoal::Soundness, Some(*inv)));
    }
    out.push((PlanGoal::Completeness, None));
    for inv in Invariant::ALL {
        out.push((PlanGoal::Naming, Some(*inv)));
    }
    out.push((PlanGoal::FirstFailure, None));
    out.push((PlanGoal::State, None));
    out
}

/// the symbolic plan, the verdict of `verify::run` on it, and what the
/// definitions say of it.
struct Setup {
    d: Z3,
    m0: Model<Z3>,
    slots: Vec<SymSlot>,
    ctx: Context<Z3>,
    verdict: VerdictOf<Z3>,
    /// the definitions' states: `states[i]` before slot `i`, `states[SLOTS]` after all.
    states: Vec<Model<Z3>>,
    /// per slot, the names the definitions say it breaks (false when absent).
    bad: Vec<Names<Z3>>,
    /// per slot: breaks nothing.
    ok: Vec<Bool>,
    size_ok: Bool,
    replay_ok: Bool,
    hyps: Vec<Bool>,
}

fn setup(p: &Prover<'_>) -> Setup {
    let d = Z3::new();
    let lim = &p.policy.limits;
    let s0 = sym_state("s.");
    let m0 = s0.model;
    let slots: Vec<SymSlot> = (0..SLOTS).map(|i| SymSlot::new(&format!("a{i}."))).collect();
    let ctx = Context {
        request_id: Int::new_const("plan.request_id"),
        last_request_id: Int::new_const("state.last_request_id"),
        tier_rank: Int::new_const("session.tier_rank"),
        token_valid: Bool::new_const("plan.token_valid"),
    };
    let mut hyps = vec![s0.domain, holds_all(&d, lim, &m0), in_u64(&ctx.request_id), in_u64(&ctx.last_request_id)];
    hyps.push(Bool::and(&[ctx.tier_rank.ge(Int::from_u64(0)), ctx.tier_rank.le(Int::from_u64(3))]));
    hyps.extend(m0.workers.iter().map(|w| w.restarted.not()));
    for (i, s) in slots.iter().enumerate() {
        hyps.push(s.domain.clone());
        if let Some(prev) = i.checked_sub(1).and_then(|j| slots.get(j)) {
            hyps.push(s.present.implies(&prev.present));
        }
    }

    let verdict = verify::run(&d, p.rules, lim, &m0, &ctx, &slots);

    // the definitions' side.
    let mut states = vec![m0.clone()];
    let mut bad = Vec::new();
    let mut ok = Vec::new();
    let mut len = d.int(0);
    for (i, s) in slots.iter().enumerate() {
        let m = states.last().cloned().unwrap_or_else(|| m0.clone());
        len = d.add(&len, &d.ite(&s.present, &d.int(1), &d.int(0)));
        let earlier_restarts = slots.get(..i).unwrap_or(&[]).iter().fold(d.int(0), |acc, e| {
            let same = Bool::and(&[e.present.clone(), e.is(ActionKind::ProcessRestart), e.pd.eq(&s.pd)]);
            d.add(&acc, &d.ite(&same, &d.int(1), &d.int(0)))
        });
        let mut after = m.clone();
        let mut b = Names::none(&d);
        for (k, op) in &s.ops {
            let g = s.is(*k);
            let st = rules::step(&d, &m, op);
            for pre in [Invariant::MemReclaimBounds, Invariant::MemReclaimStopped, Invariant::ProcState] {
                b.add_if(&d, pre, &Bool::and(&[g.clone(), pre_holds(&d, &m, &st, op, pre).not()]));
            }
            if *k == ActionKind::ProcessRestart {
                let fine = definitions::restart_rate_ok(&d, &earlier_restarts);
                b.add_if(&d, Invariant::ProcRestartRate, &Bool::and(&[g.clone(), fine.not()]));
            }
            b.add_if(&d, Invariant::AuthTier, &Bool::and(&[g.clone(), tier_ok(&d, &ctx.tier_rank, *k).not()]));
            if definitions::needs_confirmation(*k) {
                b.add_if(&d, Invariant::AuthConfirm, &Bool::and(&[g.clone(), ctx.token_valid.not()]));
            }
            after = rules::ite_model(&d, &g, &st, &after);
        }
        for inv in Invariant::STATE {
            b.add_if(&d, inv, &holds(&d, lim, &after, inv).not());
        }
        // an absent slot breaks nothing.
        let b = Names::ite(&d, &s.present, &b, &Names::none(&d));
        ok.push(b.any(&d).not());
        bad.push(b);
        states.push(rules::ite_model(&d, &s.present, &after, &m));
    }
    let size_ok = definitions::plan_size_ok(&d, &len);
    let replay_ok = definitions::replay_ok(&d, &ctx.last_request_id, &ctx.request_id);
    Setup { d, m0, slots, ctx, verdict, states, bad, ok, size_ok, replay_ok, hyps }
}

fn model_eq(a: &Model<Z3>, b: &Model<Z3>) -> Bool {
    let mut all = vec![a.pool_pages.eq(&b.pool_pages)];
    for (x, y) in a.workers.iter().zip(b.workers.iter()) {
        all.push(x.running.eq(&y.running));
        all.push(x.priority.eq(&y.priority));
        all.push(x.budget_us.eq(&y.budget_us));
        all.push(x.period_us.eq(&y.period_us));
        all.push(x.pages.eq(&y.pages));
        all.push(x.timer_on.eq(&y.timer_on));
        all.push(x.timer_period_us.eq(&y.timer_period_us));
        all.push(x.restarted.eq(&y.restarted));
    }
    Bool::and(&all)
}

/// the statement of `spec` over `s`.
fn goal(s: &Setup, spec: &Spec) -> Bool {
    let d = &s.d;
    let v = &s.verdict;
    let at = |i: usize| Bool::and(&[v.failed.clone(), v.failed_at.eq(Int::from_u64(i as u64))]);
    let held = |inv: Invariant| match inv {
        Invariant::PlanSize => s.size_ok.clone(),
        Invariant::PlanReplay => s.replay_ok.clone(),
        _ => Bool::and(&s.bad.iter().map(|b| b.get(d, inv).not()).collect::<Vec<_>>()),
    };
    let all_ok = Bool::and(&s.ok);
    match (spec.plan, spec.invariant) {
        (Some(PlanGoal::Soundness), Some(inv)) => v.approved.implies(held(inv)),
        (Some(PlanGoal::Completeness), _) => Bool::and(&[s.size_ok.clone(), s.replay_ok.clone(), all_ok]).implies(&v.approved),
        (Some(PlanGoal::Naming), Some(inv)) => {
            let at_plan = match inv {
                Invariant::PlanSize => s.size_ok.not(),
                Invariant::PlanReplay => s.replay_ok.not(),
                _ => Bool::from_bool(false),
            };
            let named = v.failed_names.get(d, inv);
            let mut parts = vec![v.plan_violations.get(d, inv).eq(&at_plan), v.failed.not().implies(named.not())];
            for (i, b) in s.bad.iter().enumerate() {
                parts.push(at(i).implies(named.eq(b.get(d, inv))));
            }
            Bool::and(&parts)
        }
        (Some(PlanGoal::FirstFailure), _) => {
            let some_bad = Bool::or(&s.ok.iter().map(|o| o.not()).collect::<Vec<_>>());
            let mut parts = vec![v.failed.eq(&some_bad)];
            for i in 0..s.ok.len() {
                let before = Bool::and(s.ok.get(..i).unwrap_or(&[]));
                let first = Bool::and(&[s.ok.get(i).map_or(Bool::from_bool(false), |o| o.not()), before]);
                parts.push(at(i).eq(&first));
            }
            Bool::and(&parts)
        }
        (Some(PlanGoal::State), _) => {
            let mut parts = Vec::new();
            for (i, m) in s.states.iter().enumerate().take(s.slots.len()) {
                parts.push(at(i).implies(model_eq(&v.model, m)));
            }
            if let Some(end) = s.states.last() {
                parts.push(v.failed.not().implies(model_eq(&v.model, end)));
            }
            Bool::and(&parts)
        }
        _ => Bool::from_bool(false),
    }
}

/// discharges one plan obligation.
pub(crate) fn discharge(p: &Prover<'_>, spec: &Spec) -> Obligation {
    let s = setup(p);
    let g = goal(&s, spec);
    let solver = p.solver();
    for h in &s.hyps {
        solver.assert(h);
    }
    solver.assert(g.not());
    solver.assert(s.d.definitions());
    let mut ob = blank(spec);
    let mut slowest = 0.0;
    match timed_check(&solver, &mut slowest, None) {
        SatResult::Unsat => ob.result = Outcome::Proved,
        SatResult::Unknown => {
            ob.result = Outcome::Unknown;
            ob.reason = solver.get_reason_unknown();
        }
        SatResult::Sat => {
            ob.result = Outcome::Failed;
            if let Some(model) = solver.get_model() {
                match counterexample_of(p, &s, spec, &model) {
                    Ok(c) => ob.counterexample = Some(c),
                    Err(why) => ob.reason = Some(why),
                }
            }
        }
    }
    ob.slowest_query_ms = slowest;
    ob
}

/// the plan and state of a model, for `llmsh check`.
fn counterexample_of(p: &Prover<'_>, s: &Setup, spec: &Spec, model: &z3::Model) -> Result<Counterexample, String> {
    let mut state = counterexample::state_of(model, &s.m0);
    state.last_request_id = counterexample::u64_of(model, &s.ctx.last_request_id);
    let mut actions: Vec<Action> = Vec::new();
    for slot in &s.slots {
        if !counterexample::bool_of(model, &slot.present) {
            break;
        }
        let kind = usize::try_from(counterexample::u64_of(model, &slot.kind)).ok().and_then(|k| ActionKind::ALL.get(k));
        let op = kind.and_then(|k| slot.ops.iter().find(|(x, _)| x == k)).map(|(_, op)| op);
        let a = op.and_then(|op| counterexample::action_of(model, op)).ok_or("a slot without a kind")?;
        actions.push(a);
    }
    let rank = counterexample::u64_of(model, &s.ctx.tier_rank);
    let tier = match rank {
        1 => Some(Tier::Observer),
        2 => Some(Tier::Operator),
        3 => Some(Tier::Admin),
        _ => None,
    };
    let session = match tier {
        None => "no-such-session".to_string(),
        Some(t) => p
            .policy
            .sessions
            .iter()
            .flatten()
            .find(|x| x.tier == t)
            .map(|x| x.name.as_str().to_string())
            .ok_or_else(|| format!("the policy has no {} session", t.name()))?,
    };
    if actions.len() > MAX_ACTIONS {
        return Err(format!("the counterexample needs {} actions, more than a plan file holds", actions.len()));
    }
    let mut plan = Plan {
        version: PLAN_VERSION,
        request_id: counterexample::u64_of(model, &s.ctx.request_id),
        session: heapless::String::try_from(session.as_str()).map_err(|_| "session name too long")?,
        reason: heapless::String::try_from(spec.name().as_str()).map_err(|_| "name too long")?,
        actions: heapless::Vec::from_slice(&actions).map_err(|_| "too many actions")?,
        confirmation: None,
    };
    if counterexample::bool_of(model, &s.ctx.token_valid) {
        plan = confirm::sign(&plan, p.key).ok_or("cannot sign the plan")?;
    }
    let replay = counterexample::replay(p.policy, p.key, &state, &plan);
    let approved = counterexample::bool_of(model, &s.verdict.approved);
    let expect = format!(
        "the verifier {} this plan, and {} does not hold of it as the definitions state it",
        if approved { "approves" } else { "rejects" },
        spec.name()
    );
    Ok(Counterexample { state, plan, expect, needs_restart_marks: false, replay })
}
