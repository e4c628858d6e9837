//! the plan obligations: the verifier PD's plan loop (`verify::header`,
//! `verify::advance`, `verify::finish`, the parts `verify::run` is made
//! of) over symbolic plans, against the definitions.
//!
//! the loop is proved by induction over the actions, so the statements hold
//! for plans of every length the plan-level pass admits, not only up to a
//! bound: one symbolic action at a symbolic index `i` (present or not, of
//! any kind, with symbolic worker and numbers) is run by `advance` from a
//! symbolic loop state `P` with the loop invariant `J`: if nothing failed
//! yet, the model keeps every state invariant and its restart marks are
//! exactly the workers restarted earlier in the plan, counted by a ghost
//! counter per worker (not read from the marks). the session's tier rank,
//! the request id, the last accepted id and the validity of the
//! confirmation token are free. the plan-level pass (`verify::header`) is
//! run over [`SLOTS`] symbolic actions, one more than the contract's
//! longest plan, so an off-by-one `plan.size` shows.
//!
//! a loop obligation is one query over the whole symbolic action when Z3
//! settles it within [`crate::WHOLE_RLIMIT`] steps (every one does up to 8
//! workers), else one query per kind and worker, each conjunct of the
//! statement on its own: see [`discharge`].
//!
//! the definitions side says, of the action at model `m` with counts `c`,
//! which names it breaks (`bad_N`): a state invariant the model after it
//! breaks, a precondition's definition it fails, a restart of a worker
//! with `c ≥ 1`, an op above the session's tier, an op needing
//! confirmation without a valid token.
//!
//! | name | statement (with `J(P)`, nothing failed yet, the action present) |
//! |---|---|
//! | `plan/soundness/N` | the action passes ⇒ it breaks no `N`; for `plan.size`, `plan.replay`: no plan-level violation ⇒ 1..=16 actions, a fresh id (last < id ≤ last + window) |
//! | `plan/completeness` | it breaks nothing ⇒ it passes; and 1..=16 actions with a fresh id have no plan-level violation |
//! | `plan/naming/N` | it fails ⇒ it is named `N` exactly when it breaks `N`; `plan.size`, `plan.replay` are named at plan level exactly when they break |
//! | `plan/first_failure` | a failure is kept: once failed, index, names and state never change; the action's index is recorded when it is the first to fail |
//! | `plan/state` | the model after a passing action is the definitions' step, a missing action changes nothing, the verdict's state is the one before the first failure |
//! | `plan/invariant` | `J` holds at the start and is kept by every action |
//! | `plan/confirmation` | the token is asked for exactly when some present action stops or restarts a worker |

use policy_verifier::definitions::{self, holds, pre_holds, tier_ok, PLAN_ACTIONS_MAX};
use policy_verifier::plan::{ActionKind, Plan, MAX_ACTIONS, N_WORKERS, PLAN_VERSION};
use policy_verifier::model::{ite_model, Model, MAX_CUSTOM};
use policy_verifier::rules;
use policy_verifier::verify::{self, Context, Names, Progress};
use policy_verifier::domain::Domain;
use policy_verifier::{confirm, Action, Invariant, Policy, Tier};
use z3::ast::{Bool, Int};
use z3::SatResult;

use crate::counterexample::{self, Counterexample};
use crate::lang::{self, holds_policy};
use crate::spec::{blank, solve, Obligation, Outcome, Prover, Spec};
use crate::symbolic::{in_u64, sym_state, template, SymSlot, Z3};

/// symbolic slots in a plan obligation: one past the longest plan.
pub const SLOTS: usize =
    (if MAX_ACTIONS > PLAN_ACTIONS_MAX as usize { MAX_ACTIONS } else { PLAN_ACTIONS_MAX as usize }) + 1;

pub use crate::spec::PlanGoal;

/// every plan obligation: soundness and naming per name, then the rest.
pub fn goals() -> Vec<(PlanGoal, Option<Invariant>)> {
    let mut out = Vec::new();
    for inv in Invariant::ALL {
        out.push((PlanGoal::Soundness, Some(*inv)));
    }
    out.push((PlanGoal::Completeness, None));
    for inv in Invariant::ALL {
        out.push((PlanGoal::Naming, Some(*inv)));
    }
    for g in [PlanGoal::FirstFailure, PlanGoal::State, PlanGoal::Invariant, PlanGoal::Confirmation] {
        out.push((g, None));
    }
    out
}

/// one loop iteration over symbolic inputs, and what the definitions say.
struct Step {
    d: Z3,
    slot: SymSlot,
    ctx: Context<Z3>,
    /// the loop state before.
    p: Progress<Z3>,
    /// after `advance`.
    next: Progress<Z3>,
    /// restarts per worker earlier in the plan (ghost).
    counts: Vec<Int>,
    /// the counts after this action.
    counts_next: Vec<Int>,
    /// the names the definitions say the action breaks (none when absent).
    bad: Names<Z3>,
    /// the definitions' model after the action (the model itself when absent).
    after: Model<Z3>,
    /// the loop invariant before and after.
    j: Bool,
    j_next: Bool,
    hyps: Vec<Bool>,
}

fn names(prefix: &str) -> Names<Z3> {
    Names(core::array::from_fn(|i| Bool::new_const(format!("{prefix}{i}"))))
}

/// `J`: nothing failed ⇒ the invariants (the built-in ones and the policy
/// file's enforced ones) hold and the marks are the counts.
fn invariant(d: &Z3, policy: &Policy, p: &Progress<Z3>, counts: &[Int]) -> Bool {
    let mut parts = vec![holds_policy(d, policy, &p.m)];
    for (w, c) in p.m.workers.iter().zip(counts) {
        parts.push(w.restarted.eq(c.ge(Int::from_u64(1))));
    }
    p.failed.not().implies(Bool::and(&parts))
}

/// one loop iteration over `slot`: a whole symbolic slot, or one case of
/// it (see [`discharge`]).
fn step_setup(p: &Prover<'_>, slot: SymSlot) -> Step {
    let d = Z3::new();
    let lim = &p.policy.limits;
    let ctx: Context<Z3> = Context {
        request_id: Int::new_const("plan.request_id"),
        last_request_id: Int::new_const("state.last_request_id"),
        tier_rank: Int::new_const("session.tier_rank"),
        token_valid: Bool::new_const("plan.token_valid"),
    };
    let confirmed = Bool::new_const("plan.confirmed");
    let i = Int::new_const("a.index");
    let m = sym_state("s.", p.policy.initial.pool_pages);
    let held = sym_state("held.", p.policy.initial.pool_pages);
    let prog = Progress {
        m: m.model.clone(),
        held: held.model.clone(),
        failed: Bool::new_const("failed"),
        failed_at: Int::new_const("failed_at"),
        failed_names: names("failed_names."),
    };
    let counts: Vec<Int> = (0..N_WORKERS).map(|w| Int::new_const(format!("restarts.w{w}"))).collect();
    let mut hyps = vec![m.domain, held.domain, slot.domain.clone()];
    hyps.push(Bool::and(&[ctx.tier_rank.ge(Int::from_u64(0)), ctx.tier_rank.le(Int::from_u64(3))]));
    hyps.push(Bool::and(&[i.ge(Int::from_u64(0)), i.lt(Int::from_u64(SLOTS as u64))]));
    hyps.extend(counts.iter().map(|c| c.ge(Int::from_u64(0))));
    // what `plan/confirmation` proves of the plan-level pass, for this action.
    let needs = Bool::or(
        &ActionKind::ALL.iter().filter(|k| definitions::needs_confirmation(**k)).map(|k| slot.is(*k)).collect::<Vec<_>>(),
    );
    hyps.push(Bool::and(&[slot.present.clone(), needs]).implies(confirmed.eq(&ctx.token_valid)));

    let next = verify::advance(&d, p.rules, lim, &p.policy.invariants, &ctx, &confirmed, &i, &prog, &slot);

    // the definitions' side.
    let mm = &prog.m;
    let earlier = counts.iter().enumerate().fold(Int::from_u64(0), |acc, (w, c)| {
        d.ite(&d.eq(&slot.pd, &Int::from_u64(w as u64)), c, &acc)
    });
    let mut after = mm.clone();
    let mut b = Names::none(&d);
    for (k, op) in &slot.ops {
        let g = slot.is(*k);
        let st = rules::step(&d, mm, op);
        for pre in [Invariant::MemReclaimBounds, Invariant::MemReclaimStopped, Invariant::ProcState] {
            b.add_if(&d, pre, &Bool::and(&[g.clone(), pre_holds(&d, mm, &st, op, pre).not()]));
        }
        if *k == ActionKind::ProcessRestart {
            let fine = definitions::restart_rate_ok(&d, &earlier);
            b.add_if(&d, Invariant::ProcRestartRate, &Bool::and(&[g.clone(), fine.not()]));
        }
        b.add_if(&d, Invariant::AuthTier, &Bool::and(&[g.clone(), tier_ok(&d, &ctx.tier_rank, *k).not()]));
        if definitions::needs_confirmation(*k) {
            b.add_if(&d, Invariant::AuthConfirm, &Bool::and(&[g.clone(), ctx.token_valid.not()]));
        }
        after = ite_model(&d, &g, &st, &after);
    }
    for inv in Invariant::STATE {
        b.add_if(&d, inv, &holds(&d, lim, &after, inv).not());
    }
    for (k, c) in p.policy.invariants.enforced() {
        b.add_custom_if(&d, k, &lang::holds(lim, &after, &c.expr).not());
    }
    let bad = Names::ite(&d, &slot.present, &b, &Names::none(&d));
    let after = ite_model(&d, &slot.present, &after, mm);
    let restart_here = Bool::and(&[slot.present.clone(), slot.is(ActionKind::ProcessRestart)]);
    let counts_next: Vec<Int> = counts
        .iter()
        .enumerate()
        .map(|(w, c)| {
            let mine = Bool::and(&[restart_here.clone(), d.eq(&slot.pd, &Int::from_u64(w as u64))]);
            Int::add(&[c, &mine.ite(&Int::from_u64(1), &Int::from_u64(0))])
        })
        .collect();
    let j = invariant(&d, p.policy, &prog, &counts);
    let j_next = invariant(&d, p.policy, &next, &counts_next);
    hyps.push(j.clone());
    Step { d, slot, ctx, p: prog, next, counts, counts_next, bad, after, j, j_next, hyps }
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

/// every slot equal: the built-in names and the policy file's.
fn names_eq(a: &Names<Z3>, b: &Names<Z3>) -> Bool {
    Bool::and(&a.0.iter().zip(b.0.iter()).map(|(x, y)| x.eq(y)).collect::<Vec<_>>())
}

/// the plan-level pass over [`SLOTS`] symbolic actions.
struct Pass {
    d: Z3,
    slots: Vec<SymSlot>,
    ctx: Context<Z3>,
    header: verify::Header<Z3>,
    size_ok: Bool,
    replay_ok: Bool,
    hyps: Vec<Bool>,
}

fn pass_setup(p: &Prover<'_>) -> Pass {
    let d = Z3::new();
    let slots: Vec<SymSlot> = (0..SLOTS).map(|i| SymSlot::new(&format!("a{i}."))).collect();
    let ctx: Context<Z3> = Context {
        request_id: Int::new_const("plan.request_id"),
        last_request_id: Int::new_const("state.last_request_id"),
        tier_rank: Int::new_const("session.tier_rank"),
        token_valid: Bool::new_const("plan.token_valid"),
    };
    let mut hyps = vec![in_u64(&ctx.request_id), in_u64(&ctx.last_request_id)];
    let mut len = Int::from_u64(0);
    for (i, s) in slots.iter().enumerate() {
        hyps.push(s.domain.clone());
        if let Some(prev) = i.checked_sub(1).and_then(|j| slots.get(j)) {
            hyps.push(s.present.implies(&prev.present));
        }
        len = Int::add(&[&len, &s.present.ite(&Int::from_u64(1), &Int::from_u64(0))]);
    }
    let lim = &p.policy.limits;
    let header = verify::header(&d, p.rules, lim, &ctx, &slots);
    let size_ok = definitions::plan_size_ok(&d, &len);
    let replay_ok = definitions::replay_ok(&d, lim.replay_window, &ctx.last_request_id, &ctx.request_id);
    Pass { d, slots, ctx, header, size_ok, replay_ok, hyps }
}

/// a statement over the plan-level pass, if `spec` is one.
fn pass_goal(s: &Pass, spec: &Spec) -> Option<Bool> {
    let d = &s.d;
    let pv = &s.header.plan_violations;
    let only_plan_names = Bool::and(
        &Invariant::ALL
            .iter()
            .filter(|i| !matches!(i, Invariant::PlanSize | Invariant::PlanReplay))
            .map(|i| pv.get(d, *i).not())
            .chain((0..MAX_CUSTOM).map(|k| pv.get_custom(d, k).not()))
            .collect::<Vec<_>>(),
    );
    match (spec.plan?, spec.invariant) {
        (PlanGoal::Soundness, Some(Invariant::PlanSize)) => Some(pv.any(d).not().implies(&s.size_ok)),
        (PlanGoal::Soundness, Some(Invariant::PlanReplay)) => Some(pv.any(d).not().implies(&s.replay_ok)),
        (PlanGoal::Naming, Some(Invariant::PlanSize)) => {
            Some(Bool::and(&[pv.get(d, Invariant::PlanSize).eq(s.size_ok.not()), only_plan_names]))
        }
        (PlanGoal::Naming, Some(Invariant::PlanReplay)) => {
            Some(Bool::and(&[pv.get(d, Invariant::PlanReplay).eq(s.replay_ok.not()), only_plan_names]))
        }
        (PlanGoal::Confirmation, _) => {
            let needed = Bool::or(
                &s.slots
                    .iter()
                    .flat_map(|sl| {
                        ActionKind::ALL
                            .iter()
                            .filter(|k| definitions::needs_confirmation(**k))
                            .map(move |k| Bool::and(&[sl.present.clone(), sl.is(*k)]))
                    })
                    .collect::<Vec<_>>(),
            );
            Some(s.header.confirmed.eq(Bool::or(&[needed.not(), s.ctx.token_valid.clone()])))
        }
        _ => None,
    }
}

/// the statement of `spec` over one loop iteration, as conjuncts: a case
/// of the obligation asks each of them on its own (see [`discharge`]).
fn step_goal(p: &Prover<'_>, s: &Step, spec: &Spec) -> Vec<Bool> {
    let d = &s.d;
    let pre = &s.p;
    let nx = &s.next;
    let fresh = Bool::and(&[pre.failed.not(), s.slot.present.clone()]);
    let now = Bool::and(&[pre.failed.not(), nx.failed.clone()]);
    let breaks = s.bad.any(d);
    if let Some(k) = spec.custom.map(|c| usize::from(c.slot)) {
        return vec![match spec.plan {
            Some(PlanGoal::Soundness) => Bool::and(&[fresh, now.not()]).implies(s.bad.get_custom(d, k).not()),
            Some(PlanGoal::Naming) => now.implies(nx.failed_names.get_custom(d, k).eq(s.bad.get_custom(d, k))),
            _ => Bool::from_bool(false),
        }];
    }
    match (spec.plan, spec.invariant) {
        (Some(PlanGoal::Soundness), Some(inv)) => {
            vec![Bool::and(&[fresh, now.not()]).implies(s.bad.get(d, inv).not())]
        }
        (Some(PlanGoal::Completeness), _) => vec![Bool::and(&[fresh, breaks.not()]).implies(now.not())],
        (Some(PlanGoal::Naming), Some(inv)) => {
            vec![now.implies(nx.failed_names.get(d, inv).eq(s.bad.get(d, inv)))]
        }
        (Some(PlanGoal::FirstFailure), _) => vec![
            // it fails exactly when it breaks something, and only once.
            fresh.implies(now.eq(&breaks)),
            s.slot.present.not().implies(nx.failed.eq(&pre.failed)),
            now.implies(Bool::and(&[nx.failed_at.eq(Int::new_const("a.index")), model_eq(&nx.held, &pre.m)])),
            pre.failed.implies(Bool::and(&[
                nx.failed.clone(),
                nx.failed_at.eq(&pre.failed_at),
                names_eq(&nx.failed_names, &pre.failed_names),
                model_eq(&nx.held, &pre.held),
            ])),
        ],
        (Some(PlanGoal::State), _) => {
            let h = verify::Header {
                len: Int::new_const("plan.len"),
                plan_violations: names("plan_violations."),
                confirmed: Bool::new_const("plan.confirmed"),
            };
            let v = verify::finish(d, &h, pre);
            vec![
                Bool::and(&[pre.failed.not(), now.not()]).implies(model_eq(&nx.m, &s.after)),
                v.approved.eq(Bool::and(&[h.plan_violations.any(d).not(), pre.failed.not()])),
                pre.failed.implies(model_eq(&v.model, &pre.held)),
                pre.failed.not().implies(model_eq(&v.model, &pre.m)),
            ]
        }
        (Some(PlanGoal::Invariant), _) => {
            // J at the start of a plan (begin from a state that keeps every
            // invariant, no marks, zero counts), and J kept by the action.
            let m0 = sym_state("init.", p.policy.initial.pool_pages);
            let start = verify::begin(d, &m0.model);
            let zeros: Vec<Int> = (0..N_WORKERS).map(|_| Int::from_u64(0)).collect();
            let unmarked = Bool::and(&m0.model.workers.iter().map(|w| w.restarted.not()).collect::<Vec<_>>());
            let base = Bool::and(&[m0.domain, holds_policy(d, p.policy, &m0.model), unmarked])
                .implies(invariant(d, p.policy, &start, &zeros));
            let _ = (&s.counts, &s.counts_next);
            vec![base, s.j.implies(&s.j_next)]
        }
        _ => vec![Bool::from_bool(false)],
    }
}

/// discharges one plan obligation.
///
/// a loop obligation is first one query over a whole symbolic action, under
/// a resource limit ([`crate::spec::WHOLE_RLIMIT`]). when that leaves it open, it is one
/// query per case of the action: its kind, and for a kind that names a
/// worker, the worker, each under the full timeout. the cases cover the
/// slot's whole domain (`0 <= kind < |ActionKind::ALL|`, `0 <= pd <
/// N_WORKERS`), so every case unsat is the statement proved. a case's terms
/// hold one kind's step on one worker ([`SymSlot::case`]): over the whole
/// slot, the sum of the workers' utilisations under every kind's and every
/// worker's `ite` runs out of time at 16 workers, while a case is linear
/// in the workers. the limit counts Z3's own steps, not time, so which path
/// an obligation takes does not depend on the machine's load. the
/// plan-level pass has no such choice and is one query.
pub(crate) fn discharge(p: &Prover<'_>, spec: &Spec) -> Obligation {
    let mut ob = blank(spec);
    let mut slowest = 0.0;
    let pass = pass_setup(p);
    if let Some(goal) = pass_goal(&pass, spec) {
        let solver = p.solver();
        for h in &pass.hyps {
            solver.assert(h);
        }
        solver.assert(goal.not());
        match solve(&solver, &pass.d, &mut slowest) {
            SatResult::Unsat => ob.result = Outcome::Proved,
            SatResult::Unknown => {
                ob.result = Outcome::Unknown;
                ob.reason = solver.get_reason_unknown();
            }
            SatResult::Sat => {
                ob.result = Outcome::Failed;
                ob.reason = Some("a plan-level counterexample: see the plan-level pass".to_string());
            }
        }
        ob.slowest_query_ms = slowest;
        return ob;
    }
    let mut first = 0.0;
    match step_query(p, spec, SymSlot::new("a."), Some(p.whole_rlimit), &mut first) {
        (SatResult::Unsat, _) => {
            ob.result = Outcome::Proved;
            ob.slowest_query_ms = first;
            return ob;
        }
        (SatResult::Sat, failed) => {
            ob.result = Outcome::Failed;
            (ob.reason, ob.counterexample) = failed;
            ob.slowest_query_ms = first;
            return ob;
        }
        (SatResult::Unknown, _) => {}
    }
    ob.result = Outcome::Proved;
    for (k, kind) in ActionKind::ALL.iter().enumerate() {
        // a kind without a worker keeps `pd` free: it reads none.
        let workers: Vec<Option<u64>> = match template(*kind).worker() {
            Some(_) => (0..N_WORKERS as u64).map(Some).collect(),
            None => vec![None],
        };
        for w in workers {
            match step_query(p, spec, SymSlot::case("a.", k, w), None, &mut slowest) {
                (SatResult::Unsat, _) => {}
                (SatResult::Unknown, (reason, _)) => {
                    // an open case leaves the obligation open; the other
                    // cases may still hold a counterexample, the stronger
                    // answer.
                    ob.result = Outcome::Unknown;
                    let at = w.map_or(String::new(), |w| format!(", worker{w}"));
                    ob.reason = reason.map(|r| format!("{r} ({}{at})", kind.name()));
                }
                (SatResult::Sat, failed) => {
                    ob.result = Outcome::Failed;
                    (ob.reason, ob.counterexample) = failed;
                    ob.slowest_query_ms = slowest;
                    return ob;
                }
            }
        }
    }
    ob.slowest_query_ms = slowest;
    ob
}

/// a loop query over `slot`, with `rlimit` if given: the answer and, for
/// sat, the failure in words and a replayable counterexample; for unknown,
/// Z3's reason.
fn step_query(
    p: &Prover<'_>,
    spec: &Spec,
    slot: SymSlot,
    rlimit: Option<u32>,
    slowest: &mut f64,
) -> (SatResult, (Option<String>, Option<Counterexample>)) {
    let s = step_setup(p, slot);
    let parts = step_goal(p, &s, spec);
    let solver = p.solver();
    if let Some(r) = rlimit {
        let mut params = z3::Params::new();
        params.set_u32("rlimit", r);
        solver.set_params(&params);
    }
    for h in &s.hyps {
        solver.assert(h);
    }
    // over a whole action, the statement at once; in a case, each conjunct.
    let queries = if rlimit.is_some() { vec![Bool::and(&parts)] } else { parts };
    let mut r = SatResult::Unsat;
    for g in &queries {
        solver.push();
        solver.assert(g.not());
        r = solve(&solver, &s.d, slowest);
        if r != SatResult::Unsat {
            break;
        }
        solver.pop(1);
    }
    let out = match r {
        SatResult::Unsat => (None, None),
        SatResult::Unknown => (solver.get_reason_unknown(), None),
        SatResult::Sat => match solver.get_model() {
            Some(model) => (Some(describe_step(&model, &s)), counterexample_of(p, &s, spec, &model).ok()),
            None => (None, None),
        },
    };
    (r, out)
}

/// the one action of a failed loop obligation, in words.
fn describe_step(model: &z3::Model, s: &Step) -> String {
    let kind = usize::try_from(counterexample::u64_of(model, &s.slot.kind)).ok().and_then(|k| ActionKind::ALL.get(k));
    let failed = counterexample::bool_of(model, &s.p.failed);
    format!(
        "action {} ({}) after {} earlier failure; restarts so far {:?}",
        counterexample::u64_of(model, &Int::new_const("a.index")),
        kind.map_or("?", |k| k.name()),
        if failed { "an" } else { "no" },
        s.counts.iter().map(|c| counterexample::u64_of(model, c)).collect::<Vec<_>>()
    )
}

/// a replayable plan for a failed loop obligation: when nothing failed
/// before and no worker was restarted yet, the action alone from the loop's
/// state is a one-action plan `llmsh check` can run.
fn counterexample_of(p: &Prover<'_>, s: &Step, spec: &Spec, model: &z3::Model) -> Result<Counterexample, String> {
    if counterexample::bool_of(model, &s.p.failed) || s.counts.iter().any(|c| counterexample::u64_of(model, c) > 0) {
        return Err("needs earlier actions".into());
    }
    let mut state = counterexample::state_of(model, &s.p.m);
    state.last_request_id = counterexample::u64_of(model, &s.ctx.last_request_id);
    let kind = usize::try_from(counterexample::u64_of(model, &s.slot.kind)).ok().and_then(|k| ActionKind::ALL.get(k));
    let op = kind.and_then(|k| s.slot.ops.iter().find(|(x, _)| x == k)).map(|(_, op)| op);
    let action: Action = op.and_then(|op| counterexample::action_of(model, op)).ok_or("a slot without a kind")?;
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
    let mut plan = Plan {
        version: PLAN_VERSION,
        request_id: state.last_request_id.checked_add(1).ok_or("no next request id")?,
        session: heapless::String::try_from(session.as_str()).map_err(|_| "session name too long")?,
        reason: heapless::String::try_from(spec.name().as_str()).map_err(|_| "name too long")?,
        actions: heapless::Vec::from_slice(&[action]).map_err(|_| "too many actions")?,
        confirmation: None,
    };
    if counterexample::bool_of(model, &s.ctx.token_valid) {
        plan = confirm::sign(&plan, p.key).ok_or("cannot sign the plan")?;
    }
    let replay = counterexample::replay(p.policy, p.key, &state, &plan);
    let expect = format!("{} does not hold for this action: compare the verdict with the definitions", spec.name());
    Ok(Counterexample { state, plan, expect, needs_restart_marks: false, replay })
}
