//! policy questions: does policy A imply B (every action A accepts, B
//! accepts too), are they equivalent, and can any state the invariants allow
//! accept an action whose result satisfies an expression.
//!
//! states range over every state both policies admit (`Inv_A ∧ Inv_B`, the
//! states `llmsh check --state` takes under either), actions over every
//! action of each kind. by induction over a plan's actions (both verifiers
//! keep their invariants, which `llmsh prove` proves), A implies B for every
//! plan exactly when it does for every single action and every session tier
//! of A is at most B's. a difference comes as a state and a one-action plan,
//! replayable with `llmsh check --policy`.
//!
//! the verifier is the PD's own ([`Verifier`]); a state's pool is its
//! policy's, so two policies with different pools admit no common state and
//! differ at least in their initial states. every query asserts the full
//! definition of rounding-up division: an answer is a claim about the real
//! verifier, a witness one it replays.

use policy_verifier::custom::eval_bool;
use policy_verifier::expr::Expr;
use policy_verifier::plan::{ActionKind, OpTerm};
use policy_verifier::model::Model;
use policy_verifier::rules::{accepts_policy, step};
use policy_verifier::{confirm, verify, Action, Plan, Policy, State, Worker};
use serde_json::{json, Value};
use z3::ast::{Bool, Int};
use z3::{Params, SatResult, Solver};

use crate::counterexample::{self, Counterexample, Replay};
use crate::lang::{self, holds_policy};
use crate::symbolic::{sym_action, sym_state, Z3};
use crate::Verifier;

/// one plan one policy accepts and the other rejects.
#[derive(Debug, Clone)]
pub struct Difference {
    /// `a` when A accepts and B rejects, else `b`.
    pub accepted_by: char,
    /// the op of the plan's action (or the session the tiers differ for).
    pub what: String,
    /// the state and the plan.
    pub example: Counterexample,
    /// the verdict of the other policy on it.
    pub other: Replay,
}

/// the answer of `llmsh prove --compare A B`.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// every plan A accepts, B accepts (none if Z3 gave up somewhere).
    pub a_implies_b: Option<bool>,
    /// every plan B accepts, A accepts.
    pub b_implies_a: Option<bool>,
    /// the two initial states are the same.
    pub same_initial: bool,
    /// at most one difference per op and direction.
    pub differences: Vec<Difference>,
    /// why Z3 gave up, if it did.
    pub unknown: Vec<String>,
}

impl Comparison {
    /// both directions hold.
    pub fn equivalent(&self) -> Option<bool> {
        Some(self.a_implies_b? && self.b_implies_a? && self.same_initial)
    }
}

/// compares `a` and `b`; `key` signs the example plans.
pub fn compare(a: &Policy, b: &Policy, key: &[u8], timeout_ms: u32) -> Comparison {
    let mut out = Comparison {
        a_implies_b: Some(true),
        b_implies_a: Some(true),
        same_initial: a.initial == b.initial,
        differences: Vec::new(),
        unknown: Vec::new(),
    };
    for (first, second, tag) in [(a, b, 'a'), (b, a, 'b')] {
        let mut holds = Some(true);
        for &op in ActionKind::ALL {
            match one_way(first, second, op, key, timeout_ms) {
                Ok(None) => {}
                Ok(Some(d)) => {
                    holds = holds.map(|_| false);
                    out.differences.push(Difference { accepted_by: tag, ..d });
                }
                Err(reason) => {
                    if holds == Some(true) {
                        holds = None;
                    }
                    out.unknown.push(format!("{}: {reason}", op.name()));
                }
            }
        }
        if let Some(d) = sessions(first, second, key) {
            holds = Some(false);
            out.differences.push(Difference { accepted_by: tag, ..d });
        }
        if tag == 'a' {
            out.a_implies_b = holds;
        } else {
            out.b_implies_a = holds;
        }
    }
    out
}

/// an action of kind `op` that `p` accepts and `q` rejects, in a state both admit.
fn one_way(p: &Policy, q: &Policy, op: ActionKind, key: &[u8], timeout_ms: u32) -> Result<Option<Difference>, String> {
    let d = &Z3::new();
    let s = sym_state("s.", p.initial.pool_pages);
    let a = sym_action(op, "a.");
    let m = &s.model;
    let solver = solver(timeout_ms);
    solver.assert(&s.domain);
    solver.assert(&a.domain);
    solver.assert(holds_policy(d, p, m));
    solver.assert(holds_policy(d, q, m));
    solver.assert(m.pool_pages.eq(Int::from_u64(q.initial.pool_pages)));
    solver.assert(accepts_policy(d, &Verifier, p, m, &a.op));
    solver.assert(accepts_policy(d, &Verifier, q, m, &a.op).not());
    solver.assert(d.abstraction());
    solver.assert(d.definitions());
    match solver.check() {
        SatResult::Unsat => Ok(None),
        SatResult::Unknown => Err(solver.get_reason_unknown().unwrap_or_else(|| "unknown".into())),
        SatResult::Sat => {
            let (model, marks) = prefer_unmarked(&solver, m);
            let Some(model) = model else { return Ok(None) };
            let Some(example) = counterexample(p, key, &model, m, &a.op, marks, || {
                "approved by one policy, rejected by the other".to_string()
            }) else {
                return Ok(None);
            };
            let other = counterexample::replay(q, key, &example.state, &example.plan);
            Ok(Some(Difference { accepted_by: 'a', what: op.name().to_string(), example, other }))
        }
    }
}

/// a session whose tier is higher under `p` than under `q` (or that `q`
/// lacks), shown by a plan of one op of that tier that `p` accepts from its
/// initial state and `q` rejects.
fn sessions(p: &Policy, q: &Policy, key: &[u8]) -> Option<Difference> {
    let state = p.initial;
    if !verify::state_violations(q, &state).is_empty() {
        return None;
    }
    for s in p.sessions.iter().flatten() {
        let theirs = q.session(s.name.as_str()).map(|x| x.tier);
        if theirs.is_some_and(|t| t >= s.tier) {
            continue;
        }
        for kind in ActionKind::ALL.iter().filter(|k| k.tier() == s.tier) {
            for w in Worker::ALL {
                let action = crate::symbolic::template(*kind).map(|_| w, |_| 0);
                let action = match action {
                    Action::MemoryGrant { pd, .. } => Action::MemoryGrant { pd, pages: 0 },
                    Action::TimerSetPeriodic { pd, .. } => Action::TimerSetPeriodic { pd, period_us: p.limits.timer_min_us },
                    other => other,
                };
                let Some(plan) = session_plan(s.name.as_str(), &state, action, key) else { continue };
                let mine = counterexample::replay(p, key, &state, &plan);
                let other = counterexample::replay(q, key, &state, &plan);
                if mine.approved && !other.approved {
                    let example = Counterexample {
                        state,
                        plan,
                        expect: format!("session `{}` may do {} under one policy only", s.name.as_str(), kind.name()),
                        needs_restart_marks: false,
                        replay: mine,
                    };
                    return Some(Difference {
                        accepted_by: 'a',
                        what: format!("session {}", s.name.as_str()),
                        example,
                        other,
                    });
                }
            }
        }
    }
    None
}

fn session_plan(session: &str, state: &State, action: Action, key: &[u8]) -> Option<Plan> {
    let plan = Plan {
        version: policy_verifier::plan::PLAN_VERSION,
        request_id: state.last_request_id.checked_add(1)?,
        session: heapless::String::try_from(session).ok()?,
        reason: heapless::String::try_from("policy comparison").ok()?,
        actions: heapless::Vec::from_slice(&[action]).ok()?,
        confirmation: None,
    };
    confirm::sign(&plan, key)
}

/// the answer of `llmsh prove --query EXPR`.
#[derive(Debug, Clone)]
pub struct QueryAnswer {
    /// some state the invariants allow accepts an action (of `op`, if given)
    /// after which EXPR holds; none if Z3 gave up.
    pub possible: Option<bool>,
    /// the witness: a state and a one-action plan the verifier approves,
    /// whose `state_after` satisfies EXPR.
    pub witness: Option<(String, Counterexample)>,
    /// why Z3 gave up, if it did.
    pub unknown: Vec<String>,
}

/// whether some state satisfying `policy`'s invariants accepts an action
/// (of kind `op`, or any) whose resulting state satisfies `expr`.
pub fn query(policy: &Policy, expr: &Expr, op: Option<ActionKind>, key: &[u8], timeout_ms: u32) -> QueryAnswer {
    let mut out = QueryAnswer { possible: Some(false), witness: None, unknown: Vec::new() };
    for &kind in ActionKind::ALL.iter().filter(|k| op.is_none_or(|o| o == **k)) {
        let d = &Z3::new();
        let s = sym_state("s.", policy.initial.pool_pages);
        let a = sym_action(kind, "a.");
        let m = &s.model;
        let solver = solver(timeout_ms);
        solver.assert(&s.domain);
        solver.assert(&a.domain);
        solver.assert(holds_policy(d, policy, m));
        solver.assert(accepts_policy(d, &Verifier, policy, m, &a.op));
        solver.assert(lang::holds(&policy.limits, &step(d, m, &a.op), expr));
        solver.assert(d.abstraction());
        solver.assert(d.definitions());
        match solver.check() {
            SatResult::Unsat => {}
            SatResult::Unknown => {
                out.unknown.push(format!("{}: {}", kind.name(), solver.get_reason_unknown().unwrap_or_default()));
                if out.possible == Some(false) {
                    out.possible = None;
                }
            }
            SatResult::Sat => {
                let (model, marks) = prefer_unmarked(&solver, m);
                out.possible = Some(true);
                out.witness = model.and_then(|model| {
                    counterexample(policy, key, &model, m, &a.op, marks, || {
                        format!("approved, and `state_after` satisfies `{expr}`")
                    })
                })
                .map(|c| (kind.name().to_string(), c));
                return out;
            }
        }
    }
    out
}

/// whether `expr` holds in `state` (for checking a witness).
pub fn holds_in(policy: &Policy, state: &State, expr: &Expr) -> bool {
    let m = Model::from_state(&policy_verifier::domain::Concrete, state);
    eval_bool(&policy_verifier::domain::Concrete, &policy.limits, &m, expr)
}

impl Difference {
    /// the json form; `files` are where the state and plan were written.
    pub fn to_json(&self, files: Option<&crate::Written>) -> Value {
        let mut v = json!({
            "accepted_by": self.accepted_by.to_string(),
            "rejected_by": if self.accepted_by == 'a' { "b" } else { "a" },
            "what": self.what,
            "state": policy_verifier::json::state_to_json(&self.example.state),
            "plan": policy_verifier::json::plan_to_json(&self.example.plan),
            "accepting": self.example.replay.to_json(),
            "rejecting": self.other.to_json(),
            "needs_restart_marks": self.example.needs_restart_marks,
        });
        if let (Some(w), Some(m)) = (files, v.as_object_mut()) {
            m.insert("state_file".into(), json!(w.state.display().to_string()));
            m.insert("plan_file".into(), json!(w.plan.display().to_string()));
        }
        v
    }
}

fn solver(timeout_ms: u32) -> Solver {
    let s = Solver::new();
    let mut p = Params::new();
    p.set_u32("timeout", timeout_ms);
    s.set_params(&p);
    s
}

/// a model without restart marks (a state file cannot carry them) if there
/// is one; the flag says the marks were needed.
fn prefer_unmarked(solver: &Solver, m: &Model<Z3>) -> (Option<z3::Model>, bool) {
    let unmarked: Vec<Bool> = m.workers.iter().map(|w| w.restarted.not()).collect();
    if solver.check_assumptions(&unmarked) == SatResult::Sat {
        return (solver.get_model(), false);
    }
    let _ = solver.check();
    (solver.get_model(), true)
}

/// a state and a one-action plan read off `model`, with the real verifier's replay.
fn counterexample(
    policy: &Policy,
    key: &[u8],
    model: &z3::Model,
    m: &Model<Z3>,
    a: &OpTerm<Z3>,
    needs_restart_marks: bool,
    expect: impl FnOnce() -> String,
) -> Option<Counterexample> {
    let state = counterexample::state_of(model, m);
    let action = counterexample::action_of(model, a)?;
    let plan = counterexample::plan_of(policy, key, &state, &[action], "policy question")?;
    let replay = counterexample::replay(policy, key, &state, &plan);
    Some(Counterexample { state, plan, expect: expect(), needs_restart_marks, replay })
}
