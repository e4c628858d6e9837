//! the assumptions the language's proofs stand on, checked: that
//! `Expr::well_formed` admits only expressions the interpreter evaluates
//! (the `domain/well_formed` obligation), and that its integer bound keeps
//! every value the PD computes in u128 (`domain/expr_bound`).
//!
//! the specification is [`lang::meaning`]: the AST read straight into Z3
//! terms with no guard, which names the first place the interpreter would
//! fall back to false / 0. an expression `well_formed` accepts must have a
//! meaning of its type, and no integer in it may exceed `u128::MAX` on any
//! state in the u64 ranges (a bound, not a sample). a corpus of
//! hand-built ASTs shows every kind of fault and overflow the check must
//! refuse, each confirmed faulty by the specification itself. the bound is
//! first read off the AST by interval arithmetic (no search); Z3 searches for
//! a state above u128 only where that bound does not settle it.

use policy_verifier::custom;
use policy_verifier::domain::Concrete;
use policy_verifier::expr::{self, BinOp, ErrorKind, Expr, Field, Node, Quant, Ty, Var, MAX_HEIGHT, MAX_NODES, MAX_VARS};
use policy_verifier::plan::N_WORKERS;
use policy_verifier::model::Model;
use policy_verifier::{Policy, State};
use z3::ast::{Ast, Bool, Int};
use z3::{Params, SatResult, Solver};

use crate::differential::{expr_corpus, Mismatch};
use crate::lang::{self, Fault, Term};
use crate::symbolic::{sym_state, Z3};

/// what a corpus entry is: the claim the obligation checks about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// the parser built it: well formed at its type, and only at that type.
    Parsed,
    /// ill-formed in this way (the specification must say so).
    Fault(Fault),
    /// has a meaning, but some integer in it exceeds `u128::MAX` on the
    /// state with every field at u64::MAX.
    Overflow,
    /// nothing claimed: `well_formed` may accept or refuse it, but if it
    /// accepts, the expression must be sound.
    Either,
}

struct Case {
    what: String,
    e: Expr,
    ty: Ty,
    claim: Claim,
}

/// a hand-built AST, nodes in push order (not necessarily post-order).
#[derive(Default, Clone)]
struct Build(Vec<Node>);

impl Build {
    fn push(&mut self, n: Node) -> u8 {
        self.0.push(n);
        u8::try_from(self.0.len().saturating_sub(1)).unwrap_or(u8::MAX)
    }

    fn root(&self) -> u8 {
        u8::try_from(self.0.len().saturating_sub(1)).unwrap_or(u8::MAX)
    }

    fn expr(&self) -> Expr {
        let mut nodes = [Node::Lit(false); MAX_NODES];
        for (slot, n) in nodes.iter_mut().zip(&self.0) {
            *slot = *n;
        }
        Expr::from_nodes(nodes, u8::try_from(self.0.len().min(MAX_NODES)).unwrap_or(0))
    }
}

fn worker_u8(i: usize) -> u8 {
    u8::try_from(i).unwrap_or(u8::MAX)
}

fn last_worker() -> u8 {
    worker_u8(N_WORKERS.saturating_sub(1))
}

fn nodes(ns: &[Node]) -> Expr {
    Build(ns.to_vec()).expr()
}

fn parsed(text: &str, ty: Ty) -> Result<Case, Mismatch> {
    let e = expr::parse_typed(text, N_WORKERS, ty).map_err(|err| Mismatch {
        what: format!("parse `{text}`"),
        concrete: format!("{err:?}"),
        symbolic: "an expression (the language admits it)".into(),
    })?;
    Ok(Case { what: format!("`{text}`"), e, ty, claim: Claim::Parsed })
}

fn built(what: &str, e: Expr, ty: Ty, claim: Claim) -> Case {
    Case { what: what.into(), e, ty, claim }
}

/// integer forms of the language next to the boolean corpus: every
/// quantifier, a nested one and the saturating subtraction.
fn int_texts() -> Vec<String> {
    vec![
        "sum(w, w.pages)".into(),
        "count(w, w.running) + workers".into(),
        format!("worker{}.pages - quota_pages * 2", last_worker()),
        "sum(w, w.timer_period_us - count(v, v.running && !w.timer))".into(),
    ]
}

/// the structural corpus: the language's forms as parsed, and one
/// hand-built AST for every way a node can be meaningless.
fn structural() -> Result<Vec<Case>, Mismatch> {
    let mut out = Vec::new();
    for t in expr_corpus() {
        out.push(parsed(&t, Ty::Bool)?);
    }
    for t in int_texts() {
        out.push(parsed(&t, Ty::Int)?);
    }
    let n = worker_u8(N_WORKERS);
    let f = |v, f| Node::Field(v, f);
    let run0 = f(Var::Bound(0), Field::Running);
    let mut deep = Build::default();
    let mut at = deep.push(Node::Lit(true));
    for _ in 0..=MAX_HEIGHT {
        at = deep.push(Node::Not(at));
    }
    let fault = |what: &str, ns: &[Node], ty, k| built(what, nodes(ns), ty, Claim::Fault(k));
    out.extend([
        fault("no nodes", &[], Ty::Bool, Fault::Empty),
        fault("a child past the end", &[Node::Not(5)], Ty::Bool, Fault::Missing),
        fault("a node its own child", &[Node::Not(0)], Ty::Bool, Fault::TooDeep),
        fault("two nodes each other's child", &[Node::Not(1), Node::Not(0)], Ty::Bool, Fault::TooDeep),
        built(&format!("{} nested `!`", MAX_HEIGHT + 1), deep.expr(), Ty::Bool, Claim::Fault(Fault::TooDeep)),
        fault("`!` of a number", &[Node::Num(1), Node::Not(0)], Ty::Bool, Fault::Type),
        fault("a boolean added", &[Node::Lit(true), Node::Num(1), Node::Bin(BinOp::Add, 0, 1), Node::Num(0), Node::Bin(BinOp::Lt, 3, 2)], Ty::Bool, Fault::Type),
        fault("numbers joined by `&&`", &[Node::Num(1), Node::Num(2), Node::Bin(BinOp::And, 0, 1)], Ty::Bool, Fault::Type),
        fault("booleans compared by `<`", &[Node::Lit(true), Node::Lit(false), Node::Bin(BinOp::Lt, 0, 1)], Ty::Bool, Fault::Type),
        fault("`sum` of a boolean", &[run0, Node::Quant(Quant::Sum, 0, 0)], Ty::Int, Fault::Type),
        fault("`count` of a number", &[f(Var::Bound(0), Field::Pages), Node::Quant(Quant::Count, 0, 0)], Ty::Int, Fault::Type),
        fault("`all` of a number", &[f(Var::Bound(0), Field::Pages), Node::Quant(Quant::All, 0, 0)], Ty::Bool, Fault::Type),
        fault("a number where a boolean is wanted", &[Node::Num(1)], Ty::Bool, Fault::Type),
        fault("a boolean where a number is wanted", &[Node::Lit(true)], Ty::Int, Fault::Type),
        fault("a free variable", &[run0], Ty::Bool, Fault::Unbound),
        fault("a variable bound one level up", &[run0, Node::Quant(Quant::All, 1, 0)], Ty::Bool, Fault::Unbound),
        fault("a quantifier beyond the levels", &[Node::Lit(true), Node::Quant(Quant::All, worker_u8(MAX_VARS), 0)], Ty::Bool, Fault::Level),
        fault(
            "a variable beyond the levels",
            &[f(Var::Bound(worker_u8(MAX_VARS)), Field::Running), Node::Quant(Quant::Any, worker_u8(MAX_VARS - 1), 0)],
            Ty::Bool,
            Fault::Level,
        ),
        fault(&format!("worker{n}"), &[f(Var::Worker(n), Field::Running)], Ty::Bool, Fault::Worker),
        fault("worker255", &[f(Var::Worker(u8::MAX), Field::Pages), Node::Num(0), Node::Bin(BinOp::Lt, 1, 0)], Ty::Bool, Fault::Worker),
        // forms the parser never builds but the interpreter evaluates.
        built("a shared node", nodes(&[f(Var::Worker(0), Field::Pages), Node::Bin(BinOp::Add, 0, 0), Node::Bin(BinOp::Le, 0, 1)]), Ty::Bool, Claim::Either),
        built("children after their parent", nodes(&[Node::Lit(true), Node::Bin(BinOp::Or, 2, 0), Node::Lit(false), Node::Not(1)]), Ty::Bool, Claim::Either),
        built("an outermost quantifier at the last level", nodes(&[Node::Lit(true), Node::Quant(Quant::All, worker_u8(MAX_VARS - 1), 0)]), Ty::Bool, Claim::Either),
    ]);
    Ok(out)
}

/// bits of the worker count: what a `count`, a `sum` or `workers` adds to
/// the bound (docs/invariants.md).
fn worker_bits() -> u32 {
    let n = u128::try_from(N_WORKERS).unwrap_or(u128::MAX);
    (128 - n.leading_zeros()).max(1)
}

/// the largest literal of `b` bits, as text.
fn ones(b: u32) -> String {
    (u128::MAX >> 128u32.saturating_sub(b)).to_string()
}

/// the bound's edges: texts at exactly 128 bits the parser must take,
/// texts one bit over it the parser must refuse, and hand-built ASTs over
/// the bound (as the parser would build them without its check) that
/// `well_formed` must refuse and that do exceed u128 at the extreme state.
fn edges() -> Result<(Vec<Case>, Vec<String>), Mismatch> {
    let last = last_worker();
    let b = worker_bits();
    let mut take = Vec::new();
    for t in [
        format!("worker0.pages * worker{last}.budget_us"),
        format!("worker0.pages * {}", u64::MAX),
        format!("worker0.pages * {} + worker{last}.pages * {}", ones(63), ones(63)),
        format!("sum(w, w.pages * {})", ones(64 - b)),
        format!("workers * worker0.pages * {}", ones(64 - b)),
        format!("count(w, w.running) * {} * {}", ones(64 - b), u64::MAX),
    ] {
        take.push(parsed(&t, Ty::Int)?);
    }
    take.push(parsed(&format!("sum(w, w.budget_us * {}) >= worker{last}.period_us * {}", ones(64 - b), u64::MAX), Ty::Bool)?);
    let refuse = vec![
        format!("worker0.pages * worker{last}.budget_us * 2"),
        format!("worker0.pages * worker{last}.budget_us + 1"),
        format!("worker0.pages * {} * {}", u64::MAX, u64::MAX),
        format!("sum(w, w.pages * {})", ones(65 - b)),
        "sum(w, w.pages * w.budget_us)".into(),
        format!("workers * worker0.pages * {}", ones(65 - b)),
        format!("count(w, w.running) * worker0.pages * worker{last}.budget_us"),
    ];
    // over the bound, built by hand.
    let f = |v, f| Node::Field(v, f);
    let (w0, wl) = (Var::Worker(0), Var::Worker(last));
    let prod = [f(w0, Field::Pages), f(wl, Field::BudgetUs), Node::Bin(BinOp::Mul, 0, 1)];
    let mut twice = Build(prod.to_vec());
    let two = twice.push(Node::Num(2));
    twice.push(Node::Bin(BinOp::Mul, 2, two));
    let mut plus = Build(prod.to_vec());
    let a = plus.push(f(w0, Field::PeriodUs));
    let c = plus.push(f(wl, Field::Pages));
    let p2 = plus.push(Node::Bin(BinOp::Mul, a, c));
    plus.push(Node::Bin(BinOp::Add, 2, p2));
    let mut lits = Build::default();
    let x = lits.push(f(w0, Field::Pages));
    let m1 = lits.push(Node::Num(u64::MAX));
    let y = lits.push(Node::Bin(BinOp::Mul, x, m1));
    let m2 = lits.push(Node::Num(u64::MAX));
    lits.push(Node::Bin(BinOp::Mul, y, m2));
    // the same, compared with 0: a boolean root hides nothing.
    let mut cmp = lits.clone();
    let r = cmp.root();
    let z = cmp.push(Node::Num(0));
    cmp.push(Node::Bin(BinOp::Lt, z, r));
    let mut over = vec![
        built("w0.pages * w.budget_us * 2, built by hand", twice.expr(), Ty::Int, Claim::Overflow),
        built("two products of fields added, built by hand", plus.expr(), Ty::Int, Claim::Overflow),
        built("a field times u64::MAX twice, built by hand", lits.expr(), Ty::Int, Claim::Overflow),
        built("0 < a field times u64::MAX twice, built by hand", cmp.expr(), Ty::Bool, Claim::Overflow),
    ];
    if N_WORKERS >= 2 {
        let mut sum = Build::default();
        let p = sum.push(f(Var::Bound(0), Field::Pages));
        let q = sum.push(f(Var::Bound(0), Field::BudgetUs));
        let pq = sum.push(Node::Bin(BinOp::Mul, p, q));
        sum.push(Node::Quant(Quant::Sum, 0, pq));
        over.push(built("sum(w, w.pages * w.budget_us), built by hand", sum.expr(), Ty::Int, Claim::Overflow));
        let mut count = Build(prod.to_vec());
        let run = count.push(f(Var::Bound(0), Field::Running));
        let k = count.push(Node::Quant(Quant::Count, 0, run));
        count.push(Node::Bin(BinOp::Mul, k, 2));
        over.push(built("count(w, w.running) * w0.pages * w.budget_us, built by hand", count.expr(), Ty::Int, Claim::Overflow));
    }
    take.extend(over);
    Ok((take, refuse))
}

fn ty_of(t: &Term) -> Ty {
    match t {
        Term::I(_) => Ty::Int,
        Term::B(_) => Ty::Bool,
    }
}

/// what the specification says of `e` at type `ty` on the symbolic state.
fn fault_of(policy: &Policy, s: &Model<Z3>, e: &Expr, ty: Ty) -> Result<lang::Meaning, Fault> {
    let m = lang::meaning(&policy.limits, s, e)?;
    if ty_of(&m.root) != ty {
        return Err(Fault::Type);
    }
    Ok(m)
}

fn u128_max() -> Int {
    Int::from_u128(u128::MAX)
}

/// the largest value any integer node of `e` takes on any state (fields
/// and the pool are u64, a count at most the worker count), or `None` if
/// that is above u128::MAX: interval arithmetic over the AST as the
/// interpreter reads it (`a - b` at most `a`), independent of the bit
/// counting `well_formed` does. `None` too for a node without a meaning.
fn upper(policy: &Policy, e: &Expr) -> Option<u128> {
    /// `None`: no meaning; `Some(None)`: some node may pass u128::MAX.
    fn go(lim: &policy_verifier::Limits, e: &Expr, i: usize, depth: usize) -> Option<Option<u128>> {
        if depth > MAX_HEIGHT {
            return None;
        }
        let n = u128::try_from(N_WORKERS).ok()?;
        let next = depth.saturating_add(1);
        let hi = |v: u64| Some(Some(u128::from(v)));
        match e.node(i)? {
            Node::Num(v) => hi(v),
            Node::Lit(_) => Some(Some(1)),
            Node::Global(g) => match g {
                expr::Global::Workers => Some(Some(n)),
                expr::Global::PoolPages => hi(u64::MAX),
                expr::Global::QuotaPages => hi(lim.quota_pages),
                expr::Global::PriorityCeiling => hi(lim.priority_ceiling),
                expr::Global::CpuUtilPermille => hi(lim.cpu_util_permille),
                expr::Global::BudgetMinUs => hi(lim.budget_min_us),
                expr::Global::PeriodMaxUs => hi(lim.period_max_us),
                expr::Global::TimerMinUs => hi(lim.timer_min_us),
                expr::Global::TimerMaxUs => hi(lim.timer_max_us),
                expr::Global::PageSize => hi(lim.page_size),
            },
            Node::Field(..) => hi(u64::MAX),
            Node::Not(a) => Some(go(lim, e, usize::from(a), next)?.map(|_| 1)),
            Node::Bin(op, a, b) => {
                let (x, y) = (go(lim, e, usize::from(a), next)?, go(lim, e, usize::from(b), next)?);
                let (Some(x), Some(y)) = (x, y) else { return Some(None) };
                Some(match op {
                    BinOp::Add => x.checked_add(y),
                    BinOp::Sub => Some(x),
                    BinOp::Mul => x.checked_mul(y),
                    _ => Some(1),
                })
            }
            Node::Quant(q, _, body) => {
                let Some(b) = go(lim, e, usize::from(body), next)? else { return Some(None) };
                Some(match q {
                    Quant::Sum => b.checked_mul(n),
                    Quant::Count => Some(n),
                    Quant::All | Quant::Any => Some(1),
                })
            }
        }
    }
    go(&policy.limits, e, e.root()?, 0).flatten()
}

/// whether some integer of `ints` can exceed u128::MAX on a state of the
/// domain: `Some(model)` if so, `None` if not.
fn may_exceed(domain: &Bool, ints: &[Int]) -> Result<Option<String>, String> {
    let max = u128_max();
    let over: Vec<Bool> = ints.iter().map(|x| x.gt(&max)).collect();
    if over.is_empty() {
        return Ok(None);
    }
    let solver = Solver::new();
    let mut p = Params::new();
    p.set_u32("timeout", crate::DEFAULT_TIMEOUT_MS);
    solver.set_params(&p);
    solver.assert(domain);
    solver.assert(Bool::or(&over));
    match solver.check() {
        SatResult::Unsat => Ok(None),
        SatResult::Sat => Ok(Some(solver.get_model().map_or_else(|| "a state".into(), |m| m.to_string()))),
        SatResult::Unknown => Err("unknown (timeout)".into()),
    }
}

/// every case: what it claims holds, and `well_formed` accepts it only if
/// its meaning exists, has the wanted type and stays within u128.
fn check(policy: &Policy, cases: &[Case]) -> Result<(), Mismatch> {
    let s = sym_state("wf.", policy.initial.pool_pages);
    let extreme = extreme_state(policy, true);
    let zx = Model::from_state(&Z3::new(), &extreme);
    let miss = |c: &Case, concrete: String, symbolic: String| Mismatch { what: c.what.clone(), concrete, symbolic };
    for c in cases {
        let accepted = c.e.well_formed(c.ty, N_WORKERS);
        let meaning = fault_of(policy, &s.model, &c.e, c.ty);
        // the claim, against the specification.
        match (c.claim, &meaning) {
            (Claim::Parsed, _) => {
                if !accepted {
                    return Err(miss(c, "well_formed refuses what the parser built".into(), "well formed".into()));
                }
                let other = if c.ty == Ty::Bool { Ty::Int } else { Ty::Bool };
                if c.e.well_formed(other, N_WORKERS) {
                    return Err(miss(c, format!("well_formed at {other:?} too"), format!("only at {:?}", c.ty)));
                }
            }
            (Claim::Fault(k), Err(got)) if *got == k => {}
            (Claim::Fault(k), got) => {
                return Err(miss(c, format!("{:?}", got.as_ref().err()), format!("corpus: fault {k:?}")));
            }
            (Claim::Overflow, Ok(_)) => {
                // a witness without search: the state with every field at its maximum.
                let at = lang::meaning(&policy.limits, &zx, &c.e).map_err(|f| miss(c, format!("{f:?}"), "a meaning".into()))?;
                let max = u128_max();
                if !at.ints.iter().any(|x| x.gt(&max).simplify().as_bool() == Some(true)) {
                    return Err(miss(c, "no value above u128::MAX at the extreme".into(), "corpus: overflows".into()));
                }
            }
            (Claim::Overflow, Err(f)) => return Err(miss(c, format!("{f:?}"), "corpus: a meaning that overflows".into())),
            (Claim::Either, _) => {}
        }
        if !accepted {
            continue;
        }
        // soundness: what well_formed admits, the interpreter evaluates exactly.
        let m = meaning.map_err(|f| miss(c, "well_formed accepts".into(), format!("the interpreter cannot evaluate it: {f:?}")))?;
        // an upper bound first (no search); only where it is above u128, a
        // Z3 search for a state that gets there.
        if upper(policy, &c.e).is_none() {
            match may_exceed(&s.domain, &m.ints) {
                Ok(None) => {}
                Ok(Some(state)) => return Err(miss(c, "well_formed accepts".into(), format!("a value above u128::MAX at {state}"))),
                Err(why) => return Err(miss(c, "the bound".into(), why)),
            }
        }
    }
    Ok(())
}

/// `domain/well_formed`: every form of the language as parsed is well
/// formed at its type alone, every kind of fault is refused, and whatever
/// is accepted evaluates without a fallback and within u128.
pub fn well_formed_agrees(policy: &Policy) -> Result<(), Mismatch> {
    let cases = structural()?;
    for k in Fault::ALL {
        if !cases.iter().any(|c| c.claim == Claim::Fault(k)) {
            return Err(Mismatch { what: "corpus".into(), concrete: format!("no case of {k:?}"), symbolic: "every fault".into() });
        }
    }
    check(policy, &cases)
}

/// a state at the ends of u64: every field (and the timer) at u64::MAX,
/// every worker running (`high`), or every field 0 and stopped.
fn extreme_state(policy: &Policy, high: bool) -> State {
    let mut s = policy.initial;
    let v = if high { u64::MAX } else { 0 };
    for w in s.workers.iter_mut() {
        w.running = high;
        w.priority = v;
        w.budget_us = v;
        w.period_us = v;
        w.pages = v;
        w.timer_period_us = high.then_some(u64::MAX);
    }
    s
}

/// `domain/expr_bound`: the bound's edges (128 bits taken, 129 refused with
/// `MayOverflow`), overflowing ASTs refused, nothing accepted exceeds
/// u128, and the PD's u128 interpreter gives what Z3's unbounded integers
/// give at the extremes of u64 for every accepted expression.
pub fn bound_agrees(policy: &Policy) -> Result<(), Mismatch> {
    let (take, refuse) = edges()?;
    for t in &refuse {
        match expr::parse_typed(t, N_WORKERS, Ty::Int) {
            Err(e) if e.kind == ErrorKind::MayOverflow => {}
            got => {
                return Err(Mismatch { what: format!("parse `{t}`"), concrete: format!("{got:?}"), symbolic: "MayOverflow (over 128 bits)".into() })
            }
        }
    }
    check(policy, &take)?;
    // u128 against Z3 on states at the ends of u64, mixed too.
    let mut states = vec![extreme_state(policy, true), extreme_state(policy, false)];
    for flip in [0usize, 1] {
        let mut s = extreme_state(policy, true);
        for (i, w) in s.workers.iter_mut().enumerate() {
            if i % 2 == flip {
                *w = extreme_state(policy, false).workers.first().copied().unwrap_or(*w);
            }
        }
        states.push(s);
    }
    let mut all = take;
    all.extend(structural()?);
    let z = Z3::new();
    for s in &states {
        let cm = Model::from_state(&Concrete, s);
        let zm = Model::from_state(&z, s);
        for c in all.iter().filter(|c| c.e.well_formed(c.ty, N_WORKERS)) {
            let what = || format!("{} at {:?}", c.what, s.workers.first());
            let want = lang::meaning(&policy.limits, &zm, &c.e).map_err(|f| Mismatch { what: what(), concrete: "evaluates".into(), symbolic: format!("{f:?}") })?;
            let (got, want) = match (c.ty, want.root) {
                (Ty::Bool, Term::B(b)) => (custom::eval_bool(&Concrete, &policy.limits, &cm, &c.e).to_string(), b.simplify().as_bool().map(|v| v.to_string())),
                (Ty::Int, Term::I(x)) => (custom::eval_int(&Concrete, &policy.limits, &cm, &c.e).to_string(), x.simplify().as_u128().map(|v| v.to_string())),
                _ => return Err(Mismatch { what: what(), concrete: format!("{:?}", c.ty), symbolic: "a term of another type".into() }),
            };
            if want.as_deref() != Some(got.as_str()) {
                return Err(Mismatch { what: what(), concrete: got, symbolic: format!("{want:?}") });
            }
        }
    }
    Ok(())
}
