//! the definition side of the policy file's invariants: an expression of
//! the invariant language translated straight into Z3 terms, written apart
//! from the interpreter the verifier PD runs (`policy_verifier::custom`,
//! generic over `Domain`). the checks evaluate an invariant through that
//! interpreter; the obligations state it through this translation, so a bug
//! in the interpreter (an operator read wrongly, a quantifier's range, a
//! field) fails a proof instead of standing on both sides of one.

use policy_verifier::expr::{BinOp, Expr, Field, Global, Node, Quant, Ty, Var, MAX_VARS};
use policy_verifier::rules::{Model, WorkerTerm};
use policy_verifier::{Limits, Policy};
use z3::ast::{Bool, Int};

use crate::symbolic::Z3;

enum Term {
    I(Int),
    B(Bool),
}

struct Tr<'a> {
    lim: &'a Limits,
    m: &'a Model<Z3>,
    e: &'a Expr,
}

impl Tr<'_> {
    fn worker(&self, v: Var, env: &[usize]) -> Option<&WorkerTerm<Z3>> {
        let i = match v {
            Var::Bound(l) => *env.get(usize::from(l))?,
            Var::Worker(i) => usize::from(i),
        };
        self.m.workers.get(i)
    }

    fn global(&self, g: Global) -> Int {
        let l = self.lim;
        let n = match g {
            Global::PoolPages => return self.m.pool_pages.clone(),
            Global::Workers => self.m.workers.len() as u64,
            Global::QuotaPages => l.quota_pages,
            Global::PriorityCeiling => l.priority_ceiling,
            Global::CpuUtilPermille => l.cpu_util_permille,
            Global::BudgetMinUs => l.budget_min_us,
            Global::PeriodMaxUs => l.period_max_us,
            Global::TimerMinUs => l.timer_min_us,
            Global::TimerMaxUs => l.timer_max_us,
            Global::PageSize => l.page_size,
        };
        Int::from_u64(n)
    }

    fn int(&self, i: u8, env: &[usize]) -> Option<Int> {
        match self.term(usize::from(i), env)? {
            Term::I(x) => Some(x),
            Term::B(_) => None,
        }
    }

    fn bool(&self, i: u8, env: &[usize]) -> Option<Bool> {
        match self.term(usize::from(i), env)? {
            Term::B(x) => Some(x),
            Term::I(_) => None,
        }
    }

    /// node `i` with the quantified workers `env` (outermost first).
    fn term(&self, i: usize, env: &[usize]) -> Option<Term> {
        Some(match self.e.node(i)? {
            Node::Num(v) => Term::I(Int::from_u64(v)),
            Node::Lit(b) => Term::B(Bool::from_bool(b)),
            Node::Global(g) => Term::I(self.global(g)),
            Node::Field(v, f) => {
                let w = self.worker(v, env)?;
                match f {
                    Field::Running => Term::B(w.running.clone()),
                    Field::Timer => Term::B(w.timer_on.clone()),
                    Field::Priority => Term::I(w.priority.clone()),
                    Field::BudgetUs => Term::I(w.budget_us.clone()),
                    Field::PeriodUs => Term::I(w.period_us.clone()),
                    Field::Pages => Term::I(w.pages.clone()),
                    // a worker without a timer reads 0.
                    Field::TimerPeriodUs => Term::I(w.timer_on.ite(&w.timer_period_us, &Int::from_u64(0))),
                }
            }
            Node::Not(a) => Term::B(self.bool(a, env)?.not()),
            Node::Bin(op, a, b) => match op {
                BinOp::And => Term::B(Bool::and(&[self.bool(a, env)?, self.bool(b, env)?])),
                BinOp::Or => Term::B(Bool::or(&[self.bool(a, env)?, self.bool(b, env)?])),
                BinOp::Implies => Term::B(self.bool(a, env)?.implies(self.bool(b, env)?)),
                _ => {
                    let (x, y) = (self.int(a, env)?, self.int(b, env)?);
                    match op {
                        BinOp::Add => Term::I(Int::add(&[&x, &y])),
                        // `a - b` is max(a - b, 0).
                        BinOp::Sub => Term::I(y.le(&x).ite(&Int::sub(&[&x, &y]), &Int::from_u64(0))),
                        BinOp::Mul => Term::I(Int::mul(&[&x, &y])),
                        BinOp::Lt => Term::B(x.lt(&y)),
                        BinOp::Le => Term::B(x.le(&y)),
                        BinOp::Gt => Term::B(x.gt(&y)),
                        BinOp::Ge => Term::B(x.ge(&y)),
                        BinOp::Eq => Term::B(x.eq(&y)),
                        BinOp::Ne => Term::B(x.eq(&y).not()),
                        BinOp::And | BinOp::Or | BinOp::Implies => return None,
                    }
                }
            },
            Node::Quant(q, level, body) => {
                if usize::from(level) != env.len() || env.len() >= MAX_VARS {
                    return None;
                }
                let mut each = Vec::new();
                for k in 0..self.m.workers.len() {
                    let mut inner = env.to_vec();
                    inner.push(k);
                    each.push(self.term(usize::from(body), &inner)?);
                }
                let ints = || each.iter().map(|t| if let Term::I(x) = t { Some(x.clone()) } else { None }).collect::<Option<Vec<_>>>();
                let bools = || each.iter().map(|t| if let Term::B(x) = t { Some(x.clone()) } else { None }).collect::<Option<Vec<_>>>();
                match q {
                    Quant::All => Term::B(Bool::and(&bools()?)),
                    Quant::Any => Term::B(Bool::or(&bools()?)),
                    Quant::Count => {
                        let ones: Vec<Int> = bools()?.iter().map(|b| b.ite(&Int::from_u64(1), &Int::from_u64(0))).collect();
                        Term::I(if ones.is_empty() { Int::from_u64(0) } else { Int::add(&ones) })
                    }
                    Quant::Sum => {
                        let xs = ints()?;
                        Term::I(if xs.is_empty() { Int::from_u64(0) } else { Int::add(&xs) })
                    }
                }
            }
        })
    }
}

/// what a boolean expression says of model `m`; false for an expression
/// the parser could not have produced.
pub fn holds(lim: &Limits, m: &Model<Z3>, e: &Expr) -> Bool {
    let t = e.root().filter(|_| e.well_formed(Ty::Bool, m.workers.len())).and_then(|r| Tr { lim, m, e }.term(r, &[]));
    match t {
        Some(Term::B(b)) => b,
        _ => Bool::from_bool(false),
    }
}

/// every state invariant of `policy` by the definitions: the built-in ones
/// and the policy file's enforced ones, through this translation.
pub fn holds_policy(d: &Z3, policy: &Policy, m: &Model<Z3>) -> Bool {
    let mut all = vec![policy_verifier::definitions::holds_all(d, &policy.limits, m)];
    for (_, c) in policy.invariants.enforced() {
        all.push(holds(&policy.limits, m, &c.expr));
    }
    Bool::and(&all)
}
