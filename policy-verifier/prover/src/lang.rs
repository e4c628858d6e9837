//! the definition side of the policy file's invariants: an expression of
//! the invariant language translated straight into Z3 terms, written apart
//! from the interpreter the verifier PD runs (`policy_verifier::custom`,
//! generic over `Domain`). the checks evaluate an invariant through that
//! interpreter; the obligations state it through this translation, so a bug
//! in the interpreter (an operator read wrongly, a quantifier's range, a
//! field) fails a proof instead of standing on both sides of one.

use policy_verifier::expr::{BinOp, Expr, Field, Global, Node, Quant, Ty, Var, MAX_HEIGHT, MAX_VARS};
use policy_verifier::model::{Model, WorkerTerm};
use policy_verifier::{Limits, Policy};
use z3::ast::{Bool, Int};

use crate::symbolic::Z3;

/// the meaning of one node: an integer or a boolean term.
#[derive(Debug, Clone)]
pub enum Term {
    /// an integer.
    I(Int),
    /// a boolean.
    B(Bool),
}

/// why an AST has no meaning: a place where the interpreter the PD runs
/// would fall back to false / 0 instead of evaluating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// no nodes at all.
    Empty,
    /// a child index past the last node.
    Missing,
    /// an operand, body or root of the wrong type.
    Type,
    /// a field of a quantified variable no enclosing quantifier binds.
    Unbound,
    /// a quantifier or variable level beyond `MAX_VARS`.
    Level,
    /// `worker{i}` with `i` not below the worker count.
    Worker,
    /// nodes nested deeper than the interpreter's `MAX_HEIGHT` (a cycle, too).
    TooDeep,
}

impl Fault {
    /// every kind.
    pub const ALL: [Fault; 7] =
        [Fault::Empty, Fault::Missing, Fault::Type, Fault::Unbound, Fault::Level, Fault::Worker, Fault::TooDeep];
}

/// an expression's meaning over a model: the root's term and every integer
/// term met on the way (each quantified instance apart), so that a caller
/// can bound the values the interpreter computes.
#[derive(Debug, Clone)]
pub struct Meaning {
    /// the root.
    pub root: Term,
    /// every integer subterm, the root's included.
    pub ints: Vec<Int>,
}

struct Tr<'a> {
    lim: &'a Limits,
    m: &'a Model<Z3>,
    e: &'a Expr,
    ints: core::cell::RefCell<Vec<Int>>,
}

/// the workers the enclosing quantifiers bind, by level.
type Env = [Option<usize>; MAX_VARS];

impl Tr<'_> {
    fn worker(&self, v: Var, env: &Env) -> Result<&WorkerTerm<Z3>, Fault> {
        let i = match v {
            Var::Bound(l) => env.get(usize::from(l)).ok_or(Fault::Level)?.ok_or(Fault::Unbound)?,
            Var::Worker(i) => usize::from(i),
        };
        self.m.workers.get(i).ok_or(Fault::Worker)
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

    fn int(&self, i: u8, env: &Env, depth: usize) -> Result<Int, Fault> {
        match self.term(usize::from(i), env, depth)? {
            Term::I(x) => Ok(x),
            Term::B(_) => Err(Fault::Type),
        }
    }

    fn bool(&self, i: u8, env: &Env, depth: usize) -> Result<Bool, Fault> {
        match self.term(usize::from(i), env, depth)? {
            Term::B(x) => Ok(x),
            Term::I(_) => Err(Fault::Type),
        }
    }

    /// node `i` at nesting `depth` (the root is 0) with the quantified
    /// workers `env`.
    fn term(&self, i: usize, env: &Env, depth: usize) -> Result<Term, Fault> {
        let t = self.node(i, env, depth)?;
        if let Term::I(x) = &t {
            self.ints.borrow_mut().push(x.clone());
        }
        Ok(t)
    }

    fn node(&self, i: usize, env: &Env, depth: usize) -> Result<Term, Fault> {
        // the interpreter reads nothing deeper than MAX_HEIGHT.
        if depth > MAX_HEIGHT {
            return Err(Fault::TooDeep);
        }
        let next = depth.saturating_add(1);
        Ok(match self.e.node(i).ok_or(Fault::Missing)? {
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
            Node::Not(a) => Term::B(self.bool(a, env, next)?.not()),
            Node::Bin(op, a, b) => match op {
                BinOp::And => Term::B(Bool::and(&[self.bool(a, env, next)?, self.bool(b, env, next)?])),
                BinOp::Or => Term::B(Bool::or(&[self.bool(a, env, next)?, self.bool(b, env, next)?])),
                BinOp::Implies => Term::B(self.bool(a, env, next)?.implies(self.bool(b, env, next)?)),
                _ => {
                    let (x, y) = (self.int(a, env, next)?, self.int(b, env, next)?);
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
                        BinOp::And | BinOp::Or | BinOp::Implies => return Err(Fault::Type),
                    }
                }
            },
            Node::Quant(q, level, body) => {
                let mut each = Vec::new();
                for k in 0..self.m.workers.len() {
                    let mut inner = *env;
                    *inner.get_mut(usize::from(level)).ok_or(Fault::Level)? = Some(k);
                    each.push(self.term(usize::from(body), &inner, next)?);
                }
                let ints = || each.iter().map(|t| if let Term::I(x) = t { Ok(x.clone()) } else { Err(Fault::Type) }).collect::<Result<Vec<_>, _>>();
                let bools = || each.iter().map(|t| if let Term::B(x) = t { Ok(x.clone()) } else { Err(Fault::Type) }).collect::<Result<Vec<_>, _>>();
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

/// what `e` means over model `m`, read straight from the AST (no
/// `well_formed` guard): the root's term and every integer subterm, or the
/// first place the interpreter could not evaluate. this is the
/// specification `Expr::well_formed` is checked against.
pub fn meaning(lim: &Limits, m: &Model<Z3>, e: &Expr) -> Result<Meaning, Fault> {
    let r = e.root().ok_or(Fault::Empty)?;
    let tr = Tr { lim, m, e, ints: core::cell::RefCell::new(Vec::new()) };
    let root = tr.term(r, &[None; MAX_VARS], 0)?;
    Ok(Meaning { root, ints: tr.ints.into_inner() })
}

/// what a boolean expression says of model `m`; false for an expression
/// the parser could not have produced.
pub fn holds(lim: &Limits, m: &Model<Z3>, e: &Expr) -> Bool {
    if !e.well_formed(Ty::Bool, m.workers.len()) {
        return Bool::from_bool(false);
    }
    match meaning(lim, m, e) {
        Ok(Meaning { root: Term::B(b), .. }) => b,
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
