//! the interpreter of the policy's state invariants (`[invariants]`, the
//! [`CustomInvariant`](crate::model::CustomInvariant)s of a [`Policy`]): one pass over an [`Expr`] in a
//! [`Model`] over a [`Domain`], so the verifier PD (`Concrete`) and the
//! proofs (Z3 terms) read the same code.
//!
//! an enforced invariant is checked on the state each action produces
//! (`rules::Rules::check_custom`): a plan whose step breaks it is rejected at
//! that action, naming it. a claim (`enforce = false`) is not checked;
//! `llmsh prove` proves that the other rules keep it, or refutes it with a
//! counterexample.

use crate::domain::Domain;
use crate::expr::{BinOp, Expr, Field, Global, Node, Quant, Ty, Var, MAX_HEIGHT, MAX_VARS};
use crate::invariant::InvariantSet;
use crate::model::{Limits, Model, Policy, WorkerTerm};

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

/// adds to `out` every enforced custom invariant `after` breaks.
pub fn violations<D: Domain<Bool = bool>>(d: &D, policy: &Policy, after: &Model<D>, out: &mut InvariantSet) {
    for (k, c) in policy.invariants.enforced() {
        if !eval_bool(d, &policy.limits, after, &c.expr) {
            out.insert_custom(k);
        }
    }
}
