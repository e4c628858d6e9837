//! the proof obligations, enumerated from the code's own tables
//! (`ActionKind::ALL` × `Invariant::STATE`), and how each is discharged.
//!
//! with `Inv = holds_all`, for every action kind `a` and state invariant `I`:
//! - `soundness/a/I`: `Inv(s) ∧ accepts(s, a) ⇒ I(step(s, a))`;
//! - `completeness/a/I`: `Inv(s) ∧ preconditions(s, a) ∧ I(step(s, a)) ⇒
//!   check_I(s, a)`: a check fails only when its invariant would break, so a
//!   verdict names exactly the broken invariants;
//! - `completeness/a/accepts`: `Inv(s) ∧ preconditions(s, a) ∧
//!   `Inv(step(s, a))` ⇒ accepts(s, a)`: nothing the invariants allow is rejected;
//! - `vacuity/a`: some state reachable from the policy's initial state in at
//!   most one accepted step accepts an action of kind `a`.
//!
//! `s` and `a` range over every state and action the u64 inputs allow; the
//! limits are the loaded policy's numbers, and `Inv` includes the policy
//! file's enforced invariants (`custom::holds_policy`).

use std::time::Instant;

use policy_verifier::plan::ActionKind;
use policy_verifier::custom::holds_policy;
use policy_verifier::rules::{holds, step, Model};
use policy_verifier::{Invariant, Policy};
use z3::ast::Bool;
use z3::{Params, SatResult, Solver};

use crate::counterexample::{self, Counterexample, Witness};
use crate::rules::Rules;
use crate::symbolic::{sym_action, sym_state, Z3};

/// the three kinds of obligation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// an accepted action keeps the invariant.
    Soundness,
    /// a check fails only when its invariant would break.
    Completeness,
    /// the action is accepted somewhere reachable.
    Vacuity,
}

impl Kind {
    /// `soundness`, `completeness`, `vacuity`.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Soundness => "soundness",
            Kind::Completeness => "completeness",
            Kind::Vacuity => "vacuity",
        }
    }
}

/// one obligation, before it is discharged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// soundness, completeness or vacuity.
    pub kind: Kind,
    /// the action kind it quantifies over.
    pub action: ActionKind,
    /// the state invariant; none for `completeness/a/accepts` and `vacuity/a`.
    pub invariant: Option<Invariant>,
}

impl Spec {
    /// e.g. `soundness/memory.grant/mem.quota`, `completeness/memory.grant/accepts`,
    /// `vacuity/process.start`.
    pub fn name(&self) -> String {
        match (self.kind, self.invariant) {
            (k, Some(i)) => format!("{}/{}/{}", k.name(), self.action.name(), i.name()),
            (Kind::Completeness, None) => format!("completeness/{}/accepts", self.action.name()),
            (k, None) => format!("{}/{}", k.name(), self.action.name()),
        }
    }
}

/// every obligation, in report order: per action kind, soundness for each
/// state invariant, completeness for each state invariant and for the whole
/// acceptance, then non-vacuity.
pub fn all_specs() -> Vec<Spec> {
    let mut out = Vec::new();
    for &action in ActionKind::ALL {
        for inv in Invariant::STATE {
            out.push(Spec { kind: Kind::Soundness, action, invariant: Some(inv) });
        }
        for inv in Invariant::STATE {
            out.push(Spec { kind: Kind::Completeness, action, invariant: Some(inv) });
        }
        out.push(Spec { kind: Kind::Completeness, action, invariant: None });
        out.push(Spec { kind: Kind::Vacuity, action, invariant: None });
    }
    out
}

/// how an obligation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// it holds for every input.
    Proved,
    /// Z3 found a counterexample (or, for vacuity, proved there is no witness).
    Failed,
    /// Z3 gave up (timeout); counts as a failure.
    Unknown,
}

impl Outcome {
    /// `proved`, `failed`, `unknown`.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Proved => "proved",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        }
    }
}

/// a discharged obligation.
#[derive(Debug, Clone)]
pub struct Obligation {
    /// what was to be proved.
    pub spec: Spec,
    /// proved, failed or unknown.
    pub result: Outcome,
    /// wall time of the solver calls, milliseconds.
    pub ms: f64,
    /// for a failed soundness or completeness obligation: a state and a
    /// one-action plan that show it.
    pub counterexample: Option<Counterexample>,
    /// for a proved vacuity obligation: the accepted plan from the initial state.
    pub witness: Option<Witness>,
    /// why Z3 gave up, for `unknown`.
    pub reason: Option<String>,
}

/// the prover: a policy (the limits and the initial state), the checks under
/// proof and the key counterexample plans are confirmed with.
pub struct Prover<'a> {
    policy: &'a Policy,
    rules: &'a dyn Rules<Z3>,
    key: &'a [u8],
    timeout_ms: u32,
}

/// the per-query timeout unless [`Prover::timeout_ms`] says otherwise.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;

impl<'a> Prover<'a> {
    /// a prover for `rules` under `policy`; `key` signs counterexample plans so
    /// that `auth.confirm` never interferes with a replay.
    pub fn new(policy: &'a Policy, rules: &'a dyn Rules<Z3>, key: &'a [u8]) -> Prover<'a> {
        Prover { policy, rules, key, timeout_ms: DEFAULT_TIMEOUT_MS }
    }

    /// sets the per-query timeout; a query that runs out is `unknown`.
    pub fn timeout_ms(mut self, ms: u32) -> Prover<'a> {
        self.timeout_ms = ms;
        self
    }

    /// the policy under proof.
    pub fn policy(&self) -> &'a Policy {
        self.policy
    }

    /// the key counterexample plans are signed with.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// the per-query timeout, milliseconds.
    pub fn timeout(&self) -> u32 {
        self.timeout_ms
    }

    /// discharges every obligation of [`all_specs`].
    pub fn run_all(&self) -> Vec<Obligation> {
        all_specs().iter().map(|s| self.run(s)).collect()
    }

    /// discharges one obligation with a fresh solver.
    pub fn run(&self, spec: &Spec) -> Obligation {
        let t = Instant::now();
        let mut ob = match spec.kind {
            Kind::Vacuity => self.vacuity(spec),
            Kind::Soundness | Kind::Completeness => self.implication(spec),
        };
        ob.ms = t.elapsed().as_secs_f64() * 1000.0;
        ob
    }

    fn solver(&self) -> Solver {
        let s = Solver::new();
        let mut p = Params::new();
        p.set_u32("timeout", self.timeout_ms);
        s.set_params(&p);
        s
    }

    /// soundness and completeness: asserts the hypotheses and the negated
    /// goal; unsat proves it, a model is a counterexample.
    fn implication(&self, spec: &Spec) -> Obligation {
        let d = &Z3;
        let lim = &self.policy.limits;
        let s = sym_state("s.");
        let a = sym_action(spec.action, "a.");
        let m = &s.model;
        let after = step(d, m, &a.op);
        let (hyp, goal) = match (spec.kind, spec.invariant) {
            (Kind::Soundness, Some(inv)) => (self.rules.accepts(d, lim, m, &a.op), holds(d, lim, &after, inv)),
            (Kind::Soundness, None) => (self.rules.accepts(d, lim, m, &a.op), holds_policy(d, self.policy, &after)),
            (_, Some(inv)) => (
                Bool::and(&[self.rules.preconditions(d, lim, m, &a.op), holds(d, lim, &after, inv)]),
                self.rules.check(d, lim, m, &a.op, inv),
            ),
            (_, None) => (
                Bool::and(&[self.rules.preconditions(d, lim, m, &a.op), holds_policy(d, self.policy, &after)]),
                self.rules.accepts(d, lim, m, &a.op),
            ),
        };
        let solver = self.solver();
        solver.assert(&s.domain);
        solver.assert(&a.domain);
        solver.assert(holds_policy(d, self.policy, m));
        solver.assert(&hyp);
        solver.assert(goal.not());
        let mut ob = blank(spec);
        match solver.check() {
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
                let clean = Bool::new_const("prefer.clean_after");
                solver.assert(clean.implies(holds_policy(d, self.policy, &after)));
                let unmarked: Vec<Bool> = m.workers.iter().map(|w| w.restarted.not()).collect();
                let mut preferred = unmarked.clone();
                if spec.kind == Kind::Completeness {
                    preferred.push(clean);
                }
                let mut marks_needed = false;
                if solver.check_assumptions(&preferred) != SatResult::Sat
                    && solver.check_assumptions(&unmarked) != SatResult::Sat
                {
                    marks_needed = true;
                    let _ = solver.check();
                }
                if let Some(model) = solver.get_model() {
                    ob.counterexample =
                        counterexample::extract(self.policy, self.key, spec, &model, m, &a.op, marks_needed);
                }
            }
        }
        ob
    }

    /// non-vacuity: an action of the kind accepted in the initial state, or
    /// after one accepted action of any kind.
    fn vacuity(&self, spec: &Spec) -> Obligation {
        let d = &Z3;
        let lim = &self.policy.limits;
        let s0: Model<Z3> = Model::from_state(d, &self.policy.initial);
        let mut ob = blank(spec);
        ob.result = Outcome::Failed;
        let mut unknown = false;
        let last = sym_action(spec.action, "v.last.");
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
                    solver.assert(self.rules.accepts(d, lim, &s0, &first.op));
                    let m = step(d, &s0, &first.op);
                    ops.push(first.op);
                    m
                }
            };
            solver.assert(self.rules.accepts(d, lim, &m, &last.op));
            ops.push(last.op.clone());
            match solver.check() {
                SatResult::Sat => {
                    ob.result = Outcome::Proved;
                    if let Some(model) = solver.get_model() {
                        ob.witness = counterexample::witness(self.policy, self.key, &model, &ops);
                    }
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
        ob
    }
}

fn blank(spec: &Spec) -> Obligation {
    Obligation { spec: *spec, result: Outcome::Unknown, ms: 0.0, counterexample: None, witness: None, reason: None }
}
