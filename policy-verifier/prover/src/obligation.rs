//! the proof obligations, enumerated from the code's own tables
//! (`ActionKind::ALL`, `Invariant::ALL`, `DomainOp::ALL`), and how each is
//! discharged. the specification side is `policy_verifier::definitions`
//! (`Inv` below is its `holds_all`), the checked side the `Rules` under
//! proof.
//!
//! per action kind `a` (a symbolic action of that kind in a symbolic state
//! `s` with `Inv(s)`):
//! - `soundness/a/I`: `accepts(s, a) ⇒ I(step(s, a))`;
//! - `completeness/a/I`: `preconditions(s, a) ∧ I(step(s, a)) ⇒ check_I(s, a)`;
//! - `completeness/a/accepts`: `preconditions(s, a) ∧ Inv(step(s, a)) ⇒ accepts(s, a)`;
//! - `precondition/a/P`: `check_P(s, a) ⇔ P(s, a, step(s, a))`, the
//!   precondition's definition: a check dropped, or filed under another
//!   name, fails here;
//! - `vacuity/a`: some state reachable from the policy's initial state in at
//!   most one accepted step accepts an action of kind `a`.
//!
//! per plan (`verify::run` itself over up to 17 symbolic slots, see
//! [`crate::plan`]): `plan/soundness/N`, `plan/completeness`,
//! `plan/naming/N`, `plan/naming/first`, `plan/state`.
//!
//! per domain operation: `domain/op`, `Concrete` and Z3 agree on the
//! extremes of u64; `domain/workers` and `domain/verify`: the PD's entry
//! points (worker decoding, `verify::verify`, `state_violations`,
//! `action_violations`, `apply`) agree with `verify::run`, the definitions
//! and the rules over Z3 on literal plans and states.
//!
//! the policy file's invariants (`[invariants]`, `policy_verifier::custom`)
//! are obligations of the same kinds. `Inv` holds the built-in state
//! invariants and the enforced ones of the file, `accepts` the built-in
//! checks and `check_C` (`C` on the state the action produces) for each
//! enforced `C`. for an enforced `C`: `soundness/a/C`, `completeness/a/C`,
//! `plan/soundness/C`, `plan/naming/C`; for a claim (`enforce = false`),
//! `claim/a/C`: `Inv(s) ∧ C(s) ∧ accepts(s, a) ⇒ C(step(s, a))`, which the
//! other rules prove or refute. `consistency/I` for every state invariant,
//! built-in or the file's: the policy's initial state satisfies it (with
//! soundness, `I` then holds in every reachable state).

use std::time::Instant;

use policy_verifier::definitions::{holds, pre_holds};
use policy_verifier::domain::Concrete;
use policy_verifier::plan::ActionKind;
use policy_verifier::model::{CustomInvariants, Model};
use policy_verifier::rules::{accepts_policy, step};
use policy_verifier::{Action, Invariant, Policy};
use z3::ast::{Ast, Bool};
use z3::SatResult;

use crate::counterexample::{self, Counterexample};
use crate::lang::{self, holds_policy};
use crate::entry;
use crate::plan;
use crate::spec::{blank, solve, timed_check, CustomRef, DomainOp, Kind, Obligation, Outcome, PlanGoal, Prover, Spec};
use crate::symbolic::{sym_action, sym_state, Z3};


/// the obligations about the checks, independent of the policy file: the
/// domain agreements, then per action kind soundness for each state
/// invariant, completeness for each state invariant and for the whole
/// acceptance, each precondition's definition and non-vacuity; then the
/// plan obligations.
pub fn all_specs() -> Vec<Spec> {
    build(&CustomInvariants::NONE, false)
}

/// every obligation of `policy`, in report order: [`all_specs`] with the
/// consistency of each state invariant after the domain agreements, and the
/// obligations of the policy file's invariants beside the built-in ones of
/// the same kind.
pub fn specs_for(policy: &Policy) -> Vec<Spec> {
    build(&policy.invariants, true)
}

fn refs(customs: &CustomInvariants) -> Vec<CustomRef> {
    customs
        .iter()
        .filter_map(|(k, c)| Some(CustomRef { slot: u8::try_from(k).ok()?, name: c.name, enforced: c.enforced }))
        .collect()
}

fn build(customs: &CustomInvariants, consistency: bool) -> Vec<Spec> {
    let customs = refs(customs);
    let mut out = Vec::new();
    for op in DomainOp::ALL {
        out.push(Spec { kind: Kind::Domain, action: None, invariant: None, custom: None, plan: None, op: Some(op) });
    }
    if consistency {
        for inv in Invariant::STATE {
            out.push(Spec { kind: Kind::Consistency, action: None, invariant: Some(inv), custom: None, plan: None, op: None });
        }
        for c in &customs {
            out.push(Spec::about(Kind::Consistency, None, *c));
        }
    }
    for &action in ActionKind::ALL {
        for inv in Invariant::STATE {
            out.push(Spec::step(Kind::Soundness, action, Some(inv)));
        }
        for c in &customs {
            let kind = if c.enforced { Kind::Soundness } else { Kind::Claim };
            out.push(Spec::about(kind, Some(action), *c));
        }
        for inv in Invariant::STATE {
            out.push(Spec::step(Kind::Completeness, action, Some(inv)));
        }
        for c in customs.iter().filter(|c| c.enforced) {
            out.push(Spec::about(Kind::Completeness, Some(action), *c));
        }
        out.push(Spec::step(Kind::Completeness, action, None));
        for inv in Invariant::PRECONDITIONS {
            out.push(Spec::step(Kind::Precondition, action, Some(inv)));
        }
        out.push(Spec::step(Kind::Vacuity, action, None));
    }
    for (goal, invariant) in plan::goals() {
        out.push(Spec { kind: Kind::Plan, action: None, invariant, custom: None, plan: Some(goal), op: None });
    }
    for goal in [PlanGoal::Soundness, PlanGoal::Naming] {
        for c in customs.iter().filter(|c| c.enforced) {
            out.push(Spec { plan: Some(goal), ..Spec::about(Kind::Plan, None, *c) });
        }
    }
    out
}


impl<'a> Prover<'a> {


    /// discharges every obligation of [`specs_for`] the policy.
    pub fn run_all(&self) -> Vec<Obligation> {
        specs_for(self.policy).iter().map(|s| self.run(s)).collect()
    }



    /// discharges one obligation with a fresh solver.
    pub fn run(&self, spec: &Spec) -> Obligation {
        let t = Instant::now();
        let mut ob = match spec.kind {
            Kind::Vacuity => self.vacuity(spec),
            Kind::Soundness | Kind::Completeness | Kind::Precondition | Kind::Claim => self.implication(spec),
            Kind::Consistency => self.consistency(spec),
            Kind::Plan => plan::discharge(self, spec),
            Kind::Domain => self.domain(spec),
        };
        ob.ms = t.elapsed().as_secs_f64() * 1000.0;
        ob.timeout_ms = self.timeout_ms;
        ob
    }


    /// `domain/op`: evaluated on literals, no search.
    fn domain(&self, spec: &Spec) -> Obligation {
        let mut ob = blank(spec);
        let t = Instant::now();
        match spec.op.map(|op| entry::entry_agrees(self.policy, self.key, op)) {
            Some(Ok(())) => ob.result = Outcome::Proved,
            Some(Err(m)) => {
                ob.result = Outcome::Failed;
                ob.reason = Some(format!("{}: concrete {}, z3 {}", m.what, m.concrete, m.symbolic));
            }
            None => ob.result = Outcome::Failed,
        }
        ob.slowest_query_ms = t.elapsed().as_secs_f64() * 1000.0;
        ob
    }

    /// soundness, completeness and preconditions: asserts the hypotheses and
    /// the negated goal; unsat proves it, a model is a counterexample.
    fn implication(&self, spec: &Spec) -> Obligation {
        let d = &Z3::naming_flags();
        let lim = &self.policy.limits;
        let Some(action) = spec.action else { return blank(spec) };
        let s = sym_state("s.", self.policy.initial.pool_pages);
        let a = sym_action(action, "a.");
        let m = &s.model;
        let after = step(d, m, &a.op);
        let policy = self.policy;
        let accepts = || accepts_policy(d, self.rules, policy, m, &a.op);
        let pre = || self.rules.preconditions(d, lim, m, &a.op);
        let (hyp, goal) = match (spec.kind, spec.invariant, self.custom(spec)) {
            (Kind::Precondition, Some(inv), _) => {
                let check = self.rules.check(d, lim, m, &a.op, inv);
                (Bool::from_bool(true), check.eq(pre_holds(d, m, &after, &a.op, inv)))
            }
            (Kind::Soundness, Some(inv), _) => (accepts(), holds(d, lim, &after, inv)),
            (Kind::Soundness, None, Some(c)) => (accepts(), lang::holds(lim, &after, &c.expr)),
            // a claim is not in `Inv`: it is assumed of the state before.
            (Kind::Claim, None, Some(c)) => {
                (Bool::and(&[accepts(), lang::holds(lim, m, &c.expr)]), lang::holds(lim, &after, &c.expr))
            }
            (Kind::Completeness, Some(inv), _) => {
                (Bool::and(&[pre(), holds(d, lim, &after, inv)]), self.rules.check(d, lim, m, &a.op, inv))
            }
            (Kind::Completeness, None, Some(c)) => (
                Bool::and(&[pre(), lang::holds(lim, &after, &c.expr)]),
                self.rules.check_custom(d, lim, m, &a.op, c),
            ),
            (Kind::Completeness, None, None) => (Bool::and(&[pre(), holds_policy(d, policy, &after)]), accepts()),
            _ => return blank(spec),
        };
        let before = holds_policy(d, policy, m);
        let clean = Bool::new_const("prefer.clean_after");
        let clean_after = clean.implies(holds_policy(d, policy, &after));
        let solver = self.solver();
        solver.assert(&s.domain);
        solver.assert(&a.domain);
        solver.assert(&before);
        solver.assert(&hyp);
        solver.assert(goal.not());
        solver.assert(&clean_after);
        let mut ob = blank(spec);
        let mut slowest = 0.0;
        match solve(&solver, d, &mut slowest) {
            SatResult::Unsat => ob.result = Outcome::Proved,
            SatResult::Unknown => {
                ob.result = Outcome::Unknown;
                ob.reason = solver.get_reason_unknown();
            }
            SatResult::Sat => {
                ob.result = Outcome::Failed;
                // prefer a model a replay shows plainly: a plan starts with no
                // restart marks, and a completeness counterexample whose state
                // after keeps every invariant is rejected for this check alone.
                let unmarked: Vec<Bool> = m.workers.iter().map(|w| w.restarted.not()).collect();
                let mut preferred = unmarked.clone();
                if !matches!(spec.kind, Kind::Soundness | Kind::Claim) {
                    preferred.push(clean);
                }
                // the first model stays the answer when a preferred one
                // cannot be had in time.
                let first = solver.get_model();
                let mut marks_needed = false;
                let model = if timed_check(&solver, &mut slowest, Some(&preferred)) == SatResult::Sat
                    || timed_check(&solver, &mut slowest, Some(&unmarked)) == SatResult::Sat
                {
                    solver.get_model()
                } else {
                    marks_needed = true;
                    first
                };
                if let Some(model) = model {
                    ob.counterexample =
                        counterexample::extract(self.policy, self.key, &spec.name(), spec.expectation(), &model, m, &a.op, marks_needed);
                }
            }
        }
        ob.slowest_query_ms = slowest;
        ob
    }

    /// consistency: the definition evaluated on the policy's initial state,
    /// no search. a failure comes with that state, which `llmsh check
    /// --state` refuses.
    fn consistency(&self, spec: &Spec) -> Obligation {
        let t = Instant::now();
        let mut ob = blank(spec);
        let p = self.policy;
        let m0 = Model::from_state(&Concrete, &p.initial);
        let ok = match (spec.invariant, self.custom(spec)) {
            (Some(inv), _) => holds(&Concrete, &p.limits, &m0, inv),
            // the definition's translation, on the literal state.
            (None, Some(c)) => {
                let z: Model<Z3> = Model::from_state(&Z3::new(), &p.initial);
                lang::holds(&p.limits, &z, &c.expr).simplify().as_bool() == Some(true)
            }
            (None, None) => false,
        };
        ob.result = if ok { Outcome::Proved } else { Outcome::Failed };
        if !ok {
            let name = spec.subject().unwrap_or("?");
            ob.counterexample = counterexample::plan_of(p, self.key, &p.initial, &[Action::SystemQuery {}], &spec.name())
                .map(|plan| Counterexample {
                    state: p.initial,
                    replay: counterexample::replay(p, self.key, &p.initial, &plan),
                    plan,
                    expect: format!("the initial state breaks `{name}`: `llmsh check --state` refuses it (state.invariant)"),
                    needs_restart_marks: false,
                });
        }
        ob.slowest_query_ms = t.elapsed().as_secs_f64() * 1000.0;
        ob
    }

    /// non-vacuity: an action of the kind accepted in the initial state, or
    /// after one accepted action of any kind.
    fn vacuity(&self, spec: &Spec) -> Obligation {
        let d = &Z3::new();
        let mut ob = blank(spec);
        let Some(action) = spec.action else { return ob };
        let s0: Model<Z3> = Model::from_state(d, &self.policy.initial);
        ob.result = Outcome::Failed;
        let mut unknown = false;
        let mut slowest = 0.0;
        let last = sym_action(action, "v.last.");
        // zero steps first, then one step of each kind.
        let mut prefixes: Vec<Option<ActionKind>> = vec![None];
        prefixes.extend(ActionKind::ALL.iter().copied().map(Some));
        for first_kind in prefixes {
            let solver = self.solver();
            solver.assert(&last.domain);
            let mut ops = Vec::new();
            let m = match first_kind {
                None => s0.clone(),
                Some(k) => {
                    let first = sym_action(k, "v.first.");
                    solver.assert(&first.domain);
                    solver.assert(accepts_policy(d, self.rules, self.policy, &s0, &first.op));
                    let m = step(d, &s0, &first.op);
                    ops.push(first.op);
                    m
                }
            };
            solver.assert(accepts_policy(d, self.rules, self.policy, &m, &last.op));
            // a witness must be one under the real `ceil`, not an abstraction.
            solver.assert(d.abstraction());
            solver.assert(d.definitions());
            ops.push(last.op.clone());
            match timed_check(&solver, &mut slowest, None) {
                SatResult::Sat => {
                    ob.result = Outcome::Proved;
                    if let Some(model) = solver.get_model() {
                        ob.witness = counterexample::witness(self.policy, self.key, &model, &ops);
                    }
                    ob.slowest_query_ms = slowest;
                    return ob;
                }
                SatResult::Unknown => {
                    unknown = true;
                    ob.reason = solver.get_reason_unknown();
                }
                SatResult::Unsat => {}
            }
        }
        if unknown {
            ob.result = Outcome::Unknown;
        }
        ob.slowest_query_ms = slowest;
        ob
    }
}

