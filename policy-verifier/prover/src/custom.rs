//! obligations of a policy as a whole: consistency of its initial state with
//! every invariant, soundness of the policy file's enforced invariants, and
//! the claims (`enforce = false`) proved from the other rules or refuted
//! with a counterexample.
//!
//! with `Inv` the built-in state invariants and the enforced ones
//! (`custom::holds_policy`) and `accepts` the verifier's acceptance of one
//! action under the policy (`custom::accepts_policy`):
//! - `consistency/I`: the policy's initial state satisfies `I`, for every
//!   built-in state invariant and every invariant of the policy file;
//! - `soundness/<op>/I` for an enforced `I`: `Inv(s) ∧ accepts(s, a) ⇒ I(step(s, a))`;
//! - `claim/<op>/I` for a claim: `Inv(s) ∧ I(s) ∧ accepts(s, a) ⇒ I(step(s, a))`
//!   (with consistency, `I` holds in every reachable state).

use std::time::Instant;

use policy_verifier::custom::{accepts_policy, eval_bool, holds_policy, CustomInvariant};
use policy_verifier::domain::Concrete;
use policy_verifier::plan::ActionKind;
use policy_verifier::rules::{holds, step, Model};
use policy_verifier::{Action, Invariant, Policy};
use serde_json::{json, Value};
use z3::ast::Bool;
use z3::{Params, SatResult, Solver};

use crate::counterexample::{self, Counterexample, Written};
use crate::obligation::Outcome;
use crate::symbolic::{sym_action, sym_state, Z3};

/// one discharged policy obligation.
#[derive(Debug, Clone)]
pub struct PolicyObligation {
    /// e.g. `consistency/proc.max_stopped`, `claim/process.stop/proc.max_stopped`.
    pub name: String,
    /// `consistency`, `soundness` or `claim`.
    pub kind: &'static str,
    /// the invariant's name.
    pub invariant: String,
    /// the action kind, none for consistency.
    pub action: Option<ActionKind>,
    /// proved, failed or unknown.
    pub result: Outcome,
    /// wall time, milliseconds.
    pub ms: f64,
    /// a failure made concrete: a state and a one-action plan.
    pub counterexample: Option<Counterexample>,
    /// why Z3 gave up.
    pub reason: Option<String>,
}

impl PolicyObligation {
    /// the json form, as the other obligations of `llmsh prove --json`.
    pub fn to_json(&self, written: Option<&Written>) -> Value {
        let mut v = json!({
            "name": self.name,
            "kind": self.kind,
            "invariant": self.invariant,
            "action": self.action.map(|a| a.name()),
            "result": self.result.name(),
            "ms": (self.ms * 1000.0).round() / 1000.0,
        });
        if let (Some(c), Some(m)) = (&self.counterexample, v.as_object_mut()) {
            let mut cj = c.to_json();
            if let (Some(w), Some(o)) = (written, cj.as_object_mut()) {
                o.insert("state_file".into(), json!(w.state.display().to_string()));
                o.insert("plan_file".into(), json!(w.plan.display().to_string()));
            }
            m.insert("counterexample".into(), cj);
        }
        if let (Some(r), Some(m)) = (&self.reason, v.as_object_mut()) {
            m.insert("reason".into(), json!(r));
        }
        v
    }
}

/// discharges every policy obligation of `policy`.
pub fn run(policy: &Policy, key: &[u8], timeout_ms: u32) -> Vec<PolicyObligation> {
    let mut out = Vec::new();
    let initial = Model::from_state(&Concrete, &policy.initial);
    for inv in Invariant::STATE {
        let t = Instant::now();
        let ok = holds(&Concrete, &policy.limits, &initial, inv);
        out.push(consistency(policy, key, inv.name(), ok, t));
    }
    for (_, c) in policy.invariants.iter() {
        let t = Instant::now();
        let ok = eval_bool(&Concrete, &policy.limits, &initial, &c.expr);
        out.push(consistency(policy, key, c.name.as_str(), ok, t));
    }
    for (_, c) in policy.invariants.iter() {
        for &op in ActionKind::ALL {
            out.push(inductive(policy, key, c, op, timeout_ms));
        }
    }
    out
}

fn consistency(policy: &Policy, key: &[u8], name: &str, ok: bool, t: Instant) -> PolicyObligation {
    let counterexample = (!ok).then(|| {
        let plan = counterexample::plan_of(policy, key, &policy.initial, &[Action::SystemQuery {}], "consistency")?;
        Some(Counterexample {
            state: policy.initial,
            replay: counterexample::replay(policy, key, &policy.initial, &plan),
            plan,
            expect: format!("the initial state breaks `{name}`: `llmsh check --state` refuses it (state.invariant)"),
            needs_restart_marks: false,
        })
    });
    PolicyObligation {
        name: format!("consistency/{name}"),
        kind: "consistency",
        invariant: name.to_string(),
        action: None,
        result: if ok { Outcome::Proved } else { Outcome::Failed },
        ms: t.elapsed().as_secs_f64() * 1000.0,
        counterexample: counterexample.flatten(),
        reason: None,
    }
}

pub(crate) fn solver(timeout_ms: u32) -> Solver {
    let s = Solver::new();
    let mut p = Params::new();
    p.set_u32("timeout", timeout_ms);
    s.set_params(&p);
    s
}

/// soundness of an enforced invariant, or the inductiveness of a claim.
fn inductive(policy: &Policy, key: &[u8], c: &CustomInvariant, op: ActionKind, timeout_ms: u32) -> PolicyObligation {
    let t = Instant::now();
    let d = &Z3;
    let lim = &policy.limits;
    let s = sym_state("s.");
    let a = sym_action(op, "a.");
    let m = &s.model;
    let after = step(d, m, &a.op);
    let solver = solver(timeout_ms);
    solver.assert(&s.domain);
    solver.assert(&a.domain);
    solver.assert(holds_policy(d, policy, m));
    if !c.enforced {
        solver.assert(eval_bool(d, lim, m, &c.expr));
    }
    solver.assert(accepts_policy(d, policy, m, &a.op));
    solver.assert(eval_bool(d, lim, &after, &c.expr).not());
    let kind = if c.enforced { "soundness" } else { "claim" };
    let name = c.name.as_str();
    let mut ob = PolicyObligation {
        name: format!("{kind}/{}/{name}", op.name()),
        kind,
        invariant: name.to_string(),
        action: Some(op),
        result: Outcome::Unknown,
        ms: 0.0,
        counterexample: None,
        reason: None,
    };
    match solver.check() {
        SatResult::Unsat => ob.result = Outcome::Proved,
        SatResult::Unknown => ob.reason = solver.get_reason_unknown(),
        SatResult::Sat => {
            ob.result = Outcome::Failed;
            let (model, marks) = prefer_unmarked(&solver, m);
            if let Some(model) = model {
                ob.counterexample = counterexample(policy, key, &model, m, &a.op, marks, || {
                    format!("approved, yet `state_after` breaks `{name}`")
                });
            }
        }
    }
    ob.ms = t.elapsed().as_secs_f64() * 1000.0;
    ob
}

/// a model without restart marks (a state file cannot carry them) if there
/// is one; the flag says the marks were needed.
pub(crate) fn prefer_unmarked(solver: &Solver, m: &Model<Z3>) -> (Option<z3::Model>, bool) {
    let unmarked: Vec<Bool> = m.workers.iter().map(|w| w.restarted.not()).collect();
    if solver.check_assumptions(&unmarked) == SatResult::Sat {
        return (solver.get_model(), false);
    }
    let _ = solver.check();
    (solver.get_model(), true)
}

/// a state and a one-action plan read off `model`, with the real verifier's replay.
pub(crate) fn counterexample(
    policy: &Policy,
    key: &[u8],
    model: &z3::Model,
    m: &Model<Z3>,
    a: &policy_verifier::rules::OpTerm<Z3>,
    needs_restart_marks: bool,
    expect: impl FnOnce() -> String,
) -> Option<Counterexample> {
    let state = counterexample::state_of(model, m);
    let action = counterexample::action_of(model, a)?;
    let plan = counterexample::plan_of(policy, key, &state, &[action], "policy question")?;
    let replay = counterexample::replay(policy, key, &state, &plan);
    Some(Counterexample { state, plan, expect: expect(), needs_restart_marks, replay })
}
