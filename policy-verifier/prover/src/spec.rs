//! the vocabulary of the proofs: what an obligation states ([`Spec`]), what
//! came of it ([`Obligation`]), the [`Prover`] and its solver calls. apart
//! from `obligation` (which enumerates and discharges the step and domain
//! obligations) and `plan` (the plan obligations), so that both use it and
//! neither imports the other.

use std::time::Instant;

use policy_verifier::plan::ActionKind;
use policy_verifier::model::{CustomInvariant, Name};
use policy_verifier::{Invariant, Policy};
use z3::ast::Bool;
use z3::{Params, SatResult, Solver};

use crate::counterexample::{Counterexample, Witness};
use crate::rules::Rules;
use crate::symbolic::Z3;

/// the kinds of obligation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// an accepted action keeps the invariant.
    Soundness,
    /// a check fails only when its invariant would break.
    Completeness,
    /// a precondition's check is its definition.
    Precondition,
    /// the action is accepted somewhere reachable.
    Vacuity,
    /// a property of whole plans, through `verify::run`.
    Plan,
    /// the concrete and the symbolic domain agree.
    Domain,
    /// the policy's initial state satisfies a state invariant.
    Consistency,
    /// the rules keep a policy-file invariant they do not check.
    Claim,
}

impl Kind {
    /// `soundness`, `completeness`, `precondition`, `vacuity`, `plan`,
    /// `domain`, `consistency`, `claim`.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Soundness => "soundness",
            Kind::Completeness => "completeness",
            Kind::Precondition => "precondition",
            Kind::Vacuity => "vacuity",
            Kind::Plan => "plan",
            Kind::Domain => "domain",
            Kind::Consistency => "consistency",
            Kind::Claim => "claim",
        }
    }
}

/// a policy-file invariant an obligation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomRef {
    /// its slot in the policy (`CustomInvariants::get`).
    pub slot: u8,
    /// its name, e.g. `proc.max_stopped`.
    pub name: Name,
    /// checked by the verifier, or a claim.
    pub enforced: bool,
}

/// one obligation, before it is discharged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// what kind of statement.
    pub kind: Kind,
    /// the action kind it quantifies over (step obligations only).
    pub action: Option<ActionKind>,
    /// the built-in name it is about, if one.
    pub invariant: Option<Invariant>,
    /// the policy-file invariant it is about, if one.
    pub custom: Option<CustomRef>,
    /// which plan statement (plan obligations only).
    pub plan: Option<PlanGoal>,
    /// which operation (domain obligations only).
    pub op: Option<DomainOp>,
}

impl Spec {
    /// what a counterexample to this obligation shows, in words.
    pub fn expectation(&self) -> String {
        let name = self.subject().map_or("every state invariant".to_string(), |i| format!("`{i}`"));
        match self.kind {
            Kind::Soundness | Kind::Claim => format!("approved, yet `state_after` breaks {name}"),
            Kind::Completeness if self.subject().is_some() => {
                format!("rejected at action 0 naming {name}, yet the state after the action keeps {name}")
            }
            Kind::Precondition => format!("the check {name} and its definition disagree on this action"),
            _ => "rejected at action 0, yet the state after the action keeps every state invariant".to_string(),
        }
    }

    pub(crate) const fn step(kind: Kind, action: ActionKind, invariant: Option<Invariant>) -> Spec {
        Spec { kind, action: Some(action), invariant, custom: None, plan: None, op: None }
    }

    pub(crate) const fn about(kind: Kind, action: Option<ActionKind>, c: CustomRef) -> Spec {
        Spec { kind, action, invariant: None, custom: Some(c), plan: None, op: None }
    }

    /// the name of the invariant it is about: built-in or the policy file's.
    pub fn subject(&self) -> Option<&str> {
        match (self.invariant, &self.custom) {
            (Some(i), _) => Some(i.name()),
            (None, Some(c)) => Some(c.name.as_str()),
            (None, None) => None,
        }
    }

    /// e.g. `soundness/memory.grant/mem.quota`, `completeness/memory.grant/accepts`,
    /// `vacuity/process.start`, `plan/naming/first`, `plan/soundness/auth.tier`,
    /// `domain/add`, `consistency/proc.max_stopped`, `claim/process.stop/proc.max_stopped`.
    pub fn name(&self) -> String {
        let action = self.action.map_or("?", |a| a.name());
        match (self.kind, self.subject()) {
            (Kind::Plan, i) => {
                let goal = self.plan.map_or("?", PlanGoal::name);
                match i {
                    Some(i) => format!("plan/{goal}/{i}"),
                    None => format!("plan/{goal}"),
                }
            }
            (Kind::Domain, _) => format!("domain/{}", self.op.map_or("?", DomainOp::name)),
            (Kind::Consistency, i) => format!("consistency/{}", i.unwrap_or("?")),
            (k, Some(i)) => format!("{}/{action}/{i}", k.name()),
            (Kind::Completeness, None) => format!("completeness/{action}/accepts"),
            (k, None) => format!("{}/{action}", k.name()),
        }
    }
}

/// which statement about plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanGoal {
    /// a passing action breaks no name.
    Soundness,
    /// an action that breaks nothing passes.
    Completeness,
    /// a failing action is named exactly with what it breaks.
    Naming,
    /// the first failure is the one kept.
    FirstFailure,
    /// the loop threads the definitions' states.
    State,
    /// the loop invariant.
    Invariant,
    /// the token is needed exactly for stop and restart.
    Confirmation,
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
            PlanGoal::Invariant => "invariant",
            PlanGoal::Confirmation => "confirmation",
        }
    }
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
    /// wall time of the whole obligation (building terms and every solver
    /// call), milliseconds.
    pub ms: f64,
    /// the longest single solver call, milliseconds: what the timeout bounds.
    pub slowest_query_ms: f64,
    /// the per-query timeout it ran under, milliseconds.
    pub timeout_ms: u32,
    /// for a failed soundness, completeness, precondition or plan
    /// obligation: a state and a plan that show it.
    pub counterexample: Option<Counterexample>,
    /// for a proved vacuity obligation: the accepted plan from the initial state.
    pub witness: Option<Witness>,
    /// why Z3 gave up, for `unknown`; the mismatch, for a failed `domain/*`.
    pub reason: Option<String>,
}

impl Obligation {
    /// the timeout less the slowest query: how close it came to `unknown`.
    pub fn margin_ms(&self) -> f64 {
        f64::from(self.timeout_ms) - self.slowest_query_ms
    }
}

/// the prover: a policy (the limits and the initial state), the checks under
/// proof and the key counterexample plans are confirmed with.
pub struct Prover<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) rules: &'a dyn Rules<Z3>,
    pub(crate) key: &'a [u8],
    pub(crate) timeout_ms: u32,
    pub(crate) whole_rlimit: u32,
}

/// an operation of the value domain, compared between `Concrete` and Z3 on
/// the extremes of u64 (the `domain/*` obligations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainOp {
    /// `add`
    Add,
    /// `sub_sat`
    SubSat,
    /// `mul`
    Mul,
    /// `div_ceil`
    DivCeil,
    /// `le` and `lt`
    Compare,
    /// `eq`
    Eq,
    /// `ite`
    Ite,
    /// the checks' `util` helper
    Util,
    /// `Definitional::utilisation` meets its defining inequality
    Utilisation,
    /// `known`: no value, or the value itself (generic code may only skip
    /// work on it)
    Known,
    /// the workers the PD decodes are the ones every symbolic action ranges
    /// over (`0..N_WORKERS`), each at its own index
    Workers,
    /// the interpreter of the policy file's invariants (`custom::eval_bool`,
    /// what the PD runs) and the proofs' translation (`lang::holds`) agree
    /// on every state, for a corpus with every form of the language
    Expr,
    /// the PD's entry points on literal plans and states: `verify::verify`,
    /// `state_violations`, `action_violations` and `apply` give what the
    /// plan loop's parts, the definitions and the rules give over Z3
    Verify,
    /// `Expr::well_formed` admits only expressions the interpreter
    /// evaluates without a fallback, and every form the parser builds
    WellFormed,
    /// the language's integer bound: no accepted expression exceeds u128,
    /// and the PD's u128 and Z3's integers agree at the extremes
    ExprBound,
}

impl DomainOp {
    /// every operation.
    pub const ALL: [DomainOp; 15] = [
        DomainOp::Add,
        DomainOp::SubSat,
        DomainOp::Mul,
        DomainOp::DivCeil,
        DomainOp::Compare,
        DomainOp::Eq,
        DomainOp::Ite,
        DomainOp::Util,
        DomainOp::Utilisation,
        DomainOp::Known,
        DomainOp::Workers,
        DomainOp::Expr,
        DomainOp::Verify,
        DomainOp::WellFormed,
        DomainOp::ExprBound,
    ];

    /// its name in `domain/<name>`.
    pub const fn name(self) -> &'static str {
        match self {
            DomainOp::Add => "add",
            DomainOp::SubSat => "sub_sat",
            DomainOp::Mul => "mul",
            DomainOp::DivCeil => "div_ceil",
            DomainOp::Compare => "le",
            DomainOp::Eq => "eq",
            DomainOp::Ite => "ite",
            DomainOp::Util => "util",
            DomainOp::Utilisation => "utilisation",
            DomainOp::Known => "known",
            DomainOp::Workers => "workers",
            DomainOp::Expr => "expr",
            DomainOp::Verify => "verify",
            DomainOp::WellFormed => "well_formed",
            DomainOp::ExprBound => "expr_bound",
        }
    }
}

/// the per-query timeout unless [`Prover::timeout_ms`] says otherwise.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;

/// the resource limit (Z3's `rlimit`, a count of its steps) of a loop
/// obligation's first query over a whole action. the largest of them takes
/// about 0.8 million at 4 workers and 8.3 million at 8 (`plan/first_failure`),
/// so up to 8 workers every one is settled by that query; at 16, five are
/// not, and each costs a few seconds before its cases prove it. it bounds
/// only how an obligation is proved, never what.
/// [`Prover::whole_rlimit`] sets another.
pub const WHOLE_RLIMIT: u32 = 10_000_000;


/// a query: first under the abstraction of `ceil`, and only when that
/// leaves it open, again under its full definition (see [`Z3::abstraction`]).
pub(crate) fn solve(solver: &Solver, d: &Z3, slowest: &mut f64) -> SatResult {
    solve_with(solver, &d.abstraction(), &d.definitions(), slowest)
}

/// [`solve`] with the abstraction and the definitions given as terms (a
/// case of a query substitutes into them as into the query).
pub(crate) fn solve_with(solver: &Solver, abstraction: &Bool, definitions: &Bool, slowest: &mut f64) -> SatResult {
    solver.push();
    solver.assert(abstraction);
    let first = timed_check(solver, slowest, None);
    solver.pop(1);
    if first != SatResult::Sat {
        return first;
    }
    solver.assert(abstraction);
    solver.assert(definitions);
    timed_check(solver, slowest, None)
}

/// a solver call and its time.
pub(crate) fn timed_check(solver: &Solver, slowest: &mut f64, assumptions: Option<&[Bool]>) -> SatResult {
    let t = Instant::now();
    let r = match assumptions {
        Some(a) => solver.check_assumptions(a),
        None => solver.check(),
    };
    *slowest = slowest.max(t.elapsed().as_secs_f64() * 1000.0);
    r
}

impl<'a> Prover<'a> {
    /// a prover for `rules` under `policy`; `key` signs counterexample plans so
    /// that `auth.confirm` never interferes with a replay.
    pub fn new(policy: &'a Policy, rules: &'a dyn Rules<Z3>, key: &'a [u8]) -> Prover<'a> {
        Prover { policy, rules, key, timeout_ms: DEFAULT_TIMEOUT_MS, whole_rlimit: WHOLE_RLIMIT }
    }
    /// sets the resource limit of a loop obligation's query over a whole
    /// action ([`WHOLE_RLIMIT`]); 1 proves every one case by case.
    pub fn whole_rlimit(mut self, rlimit: u32) -> Prover<'a> {
        self.whole_rlimit = rlimit;
        self
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
    /// the policy-file invariant `spec` is about.
    pub(crate) fn custom(&self, spec: &Spec) -> Option<&'a CustomInvariant> {
        spec.custom.and_then(|c| self.policy.invariants.get(usize::from(c.slot)))
    }
    pub(crate) fn solver(&self) -> Solver {
        let s = Solver::new();
        let mut p = Params::new();
        p.set_u32("timeout", self.timeout_ms);
        s.set_params(&p);
        s
    }
}

pub(crate) fn blank(spec: &Spec) -> Obligation {
    Obligation {
        spec: *spec,
        result: Outcome::Unknown,
        ms: 0.0,
        slowest_query_ms: 0.0,
        timeout_ms: DEFAULT_TIMEOUT_MS,
        counterexample: None,
        witness: None,
        reason: None,
    }
}
