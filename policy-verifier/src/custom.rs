//! state invariants written as data: the policy's `[invariants]` table,
//! evaluated over a [`Domain`] by one interpreter, so the verifier PD
//! (`Concrete`) and the proofs (Z3 terms) read the same code.
//!
//! an enforced invariant is checked on the state each action produces: a
//! plan whose step breaks it is rejected at that action, naming it. a claim
//! (`enforce = false`) is not checked; `llmsh prove` proves that the other
//! rules keep it, or refutes it with a counterexample.

use crate::domain::Domain;
use crate::expr::{BinOp, Expr, Field, Global, Node, Quant, Ty, Var, MAX_HEIGHT, MAX_VARS};
use crate::invariant::InvariantSet;
use crate::model::{Limits, Name, Policy};
use crate::definitions::{self, Definitional};
use crate::rules::{Model, OpTerm, Rules, WorkerTerm};

/// most invariants a policy file may define.
pub const MAX_CUSTOM: usize = 8;

// each slot has its bit in a set
const _: () = assert!(MAX_CUSTOM <= crate::invariant::CUSTOM_SLOTS);

/// one named invariant of the policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomInvariant {
    /// its name, e.g. `proc.max_stopped`; never a built-in name.
    pub name: Name,
    /// the predicate on a state.
    pub expr: Expr,
    /// checked by the verifier (true) or only a claim for the proofs (false).
    pub enforced: bool,
}

/// the policy's invariants, in name order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomInvariants {
    /// slot `k` is bit `k` of [`InvariantSet::custom_bits`].
    pub items: [Option<CustomInvariant>; MAX_CUSTOM],
}

impl CustomInvariants {
    /// no custom invariants.
    pub const NONE: CustomInvariants = CustomInvariants { items: [None; MAX_CUSTOM] };

    /// `(slot, invariant)` for every defined one.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &CustomInvariant)> {
        self.items.iter().enumerate().filter_map(|(k, c)| c.as_ref().map(|c| (k, c)))
    }

    /// the enforced ones.
    pub fn enforced(&self) -> impl Iterator<Item = (usize, &CustomInvariant)> {
        self.iter().filter(|(_, c)| c.enforced)
    }

    /// slot `k`.
    pub fn get(&self, k: usize) -> Option<&CustomInvariant> {
        self.items.get(k).and_then(Option::as_ref)
    }

    /// the slot of the invariant named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.iter().find(|(_, c)| c.name.as_str() == name).map(|(k, _)| k)
    }

    /// how many are defined.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// none defined.
    pub fn is_empty(&self) -> bool {
        self.items.iter().all(Option::is_none)
    }
}

/// the value of `g` in model `m`.
fn global<D: Domain>(d: &D, lim: &Limits, m: &Model<D>, g: Global) -> D::Int {
    let v = match g {
        Global::PoolPages => return m.pool_pages.clone(),
        Global::Workers => u64::try_from(m.workers.len()).unwrap_or(u64::MAX),
        Global::QuotaPages => lim.quota_pages,
        Global::PriorityCeiling => lim.priority_ceiling,
        Global::CpuUtilPermille => lim.cpu_util_permille,
        Global::BudgetMinUs => lim.budget_min_us,
        Global::PeriodMaxUs => lim.period_max_us,
        Global::TimerMinUs => lim.timer_min_us,
        Global::TimerMaxUs => lim.timer_max_us,
        Global::PageSize => lim.page_size,
    };
    d.int(v)
}

/// the interpreter: one pass over the AST with the quantified workers bound
/// in `env`. a malformed AST (only possible when built by hand, never from
/// the parser) evaluates to false / 0, and nesting beyond [`MAX_HEIGHT`]
/// too: the verifier fails closed.
struct Eval<'a, D: Domain> {
    d: &'a D,
    lim: &'a Limits,
    m: &'a Model<D>,
    e: &'a Expr,
}

impl<D: Domain> Eval<'_, D> {
    fn worker(&self, v: Var, env: &[usize; MAX_VARS]) -> Option<&WorkerTerm<D>> {
        let i = match v {
            Var::Bound(l) => *env.get(usize::from(l))?,
            Var::Worker(i) => usize::from(i),
        };
        self.m.workers.get(i)
    }

    fn int(&self, i: usize, env: &[usize; MAX_VARS], depth: usize) -> D::Int {
        let d = self.d;
        let next = depth.saturating_add(1);
        let (Some(n), true) = (self.e.node(i), depth <= MAX_HEIGHT) else {
            return d.int(0);
        };
        match n {
            Node::Num(v) => d.int(v),
            Node::Global(g) => global(d, self.lim, self.m, g),
            Node::Field(v, f) => match self.worker(v, env) {
                None => d.int(0),
                Some(w) => match f {
                    Field::Priority => w.priority.clone(),
                    Field::BudgetUs => w.budget_us.clone(),
                    Field::PeriodUs => w.period_us.clone(),
                    Field::Pages => w.pages.clone(),
                    Field::TimerPeriodUs => d.ite(&w.timer_on, &w.timer_period_us, &d.int(0)),
                    Field::Running | Field::Timer => d.int(0),
                },
            },
            Node::Bin(op, a, b) => {
                let (a, b) = (self.int(usize::from(a), env, next), self.int(usize::from(b), env, next));
                match op {
                    BinOp::Add => d.add(&a, &b),
                    BinOp::Sub => d.sub_sat(&a, &b),
                    BinOp::Mul => d.mul(&a, &b),
                    _ => d.int(0),
                }
            }
            Node::Quant(q, level, body) => {
                let mut acc = d.int(0);
                for k in 0..self.m.workers.len() {
                    let mut env = *env;
                    let Some(slot) = env.get_mut(usize::from(level)) else {
                        return d.int(0);
                    };
                    *slot = k;
                    let term = match q {
                        Quant::Count => d.ite(&self.bool(usize::from(body), &env, next), &d.int(1), &d.int(0)),
                        Quant::Sum => self.int(usize::from(body), &env, next),
                        Quant::All | Quant::Any => return d.int(0),
                    };
                    acc = d.add(&acc, &term);
                }
                acc
            }
            Node::Lit(_) | Node::Not(_) => d.int(0),
        }
    }

    fn bool(&self, i: usize, env: &[usize; MAX_VARS], depth: usize) -> D::Bool {
        let d = self.d;
        let next = depth.saturating_add(1);
        let (Some(n), true) = (self.e.node(i), depth <= MAX_HEIGHT) else {
            return d.bool(false);
        };
        match n {
            Node::Lit(b) => d.bool(b),
            Node::Field(v, f) => match (self.worker(v, env), f) {
                (Some(w), Field::Running) => w.running.clone(),
                (Some(w), Field::Timer) => w.timer_on.clone(),
                _ => d.bool(false),
            },
            Node::Not(a) => d.not(&self.bool(usize::from(a), env, next)),
            Node::Bin(op @ (BinOp::And | BinOp::Or | BinOp::Implies), a, b) => {
                let (a, b) = (self.bool(usize::from(a), env, next), self.bool(usize::from(b), env, next));
                match op {
                    BinOp::And => d.and(&a, &b),
                    BinOp::Or => d.or(&a, &b),
                    _ => d.implies(&a, &b),
                }
            }
            Node::Bin(op, a, b) => {
                let (a, b) = (self.int(usize::from(a), env, next), self.int(usize::from(b), env, next));
                match op {
                    BinOp::Lt => d.lt(&a, &b),
                    BinOp::Le => d.le(&a, &b),
                    BinOp::Gt => d.lt(&b, &a),
                    BinOp::Ge => d.le(&b, &a),
                    BinOp::Eq => d.eq(&a, &b),
                    BinOp::Ne => d.not(&d.eq(&a, &b)),
                    _ => d.bool(false),
                }
            }
            Node::Quant(q @ (Quant::All | Quant::Any), level, body) => {
                let mut acc = d.bool(q == Quant::All);
                for k in 0..self.m.workers.len() {
                    let mut env = *env;
                    let Some(slot) = env.get_mut(usize::from(level)) else {
                        return d.bool(false);
                    };
                    *slot = k;
                    let b = self.bool(usize::from(body), &env, next);
                    acc = if q == Quant::All { d.and(&acc, &b) } else { d.or(&acc, &b) };
                }
                acc
            }
            Node::Num(_) | Node::Global(_) | Node::Quant(..) => d.bool(false),
        }
    }
}

/// the value of a boolean expression in model `m`.
/// false for an AST the parser could not have produced.
pub fn eval_bool<D: Domain>(d: &D, lim: &Limits, m: &Model<D>, e: &Expr) -> D::Bool {
    match e.root() {
        Some(r) if e.well_formed(Ty::Bool, m.workers.len()) => Eval { d, lim, m, e }.bool(r, &[0; MAX_VARS], 0),
        _ => d.bool(false),
    }
}

/// the value of an integer expression in model `m`.
/// 0 for an AST the parser could not have produced.
pub fn eval_int<D: Domain>(d: &D, lim: &Limits, m: &Model<D>, e: &Expr) -> D::Int {
    match e.root() {
        Some(r) if e.well_formed(Ty::Int, m.workers.len()) => Eval { d, lim, m, e }.int(r, &[0; MAX_VARS], 0),
        _ => d.int(0),
    }
}

/// every state invariant of the policy, by the definitions: the built-in
/// ones and the enforced ones of the policy file (claims are not assumed:
/// they are what the proofs test).
pub fn holds_policy<D: Definitional>(d: &D, policy: &Policy, m: &Model<D>) -> D::Bool {
    let mut acc = definitions::holds_all(d, &policy.limits, m);
    for (_, c) in policy.invariants.enforced() {
        acc = d.and(&acc, &eval_bool(d, &policy.limits, m, &c.expr));
    }
    acc
}

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

/// adds to `out` every enforced custom invariant `after` breaks.
pub fn violations<D: Domain<Bool = bool>>(d: &D, policy: &Policy, after: &Model<D>, out: &mut InvariantSet) {
    for (k, c) in policy.invariants.enforced() {
        if !eval_bool(d, &policy.limits, after, &c.expr) {
            out.insert_custom(k);
        }
    }
}

/// the names of a set: built-in names in report order, then the policy's
/// custom ones in slot order.
pub fn names<'a>(policy: &'a Policy, set: InvariantSet) -> impl Iterator<Item = &'a str> + 'a {
    set.iter()
        .map(|i| -> &'a str { i.name() })
        .chain(set.customs().filter_map(move |k| policy.invariants.get(k).map(|c| c.name.as_str())))
}
