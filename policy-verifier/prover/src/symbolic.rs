//! the symbolic domain: the rules of `policy_verifier::rules` run over Z3
//! terms, and the symbolic states and actions the obligations quantify over.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use policy_verifier::definitions::{self, Definitional};
use policy_verifier::domain::Domain;
use policy_verifier::plan::{ActionKind, InventoryQuery, OpTerm, N_WORKERS};
use policy_verifier::model::{Model, WorkerTerm};
use policy_verifier::verify::{CaseFn, Slot};
use policy_verifier::{Action, Worker};
use z3::ast::{Ast, Bool, Int};

/// a named `ite`: its branches and its name.
type Named = (Int, Int, Int);

/// the Z3 instance of [`Domain`]: mathematical integers and booleans, in the
/// thread's Z3 context. it agrees with `Concrete` on every u64 input (the
/// differential tests and the `domain/*` obligations check it).
///
/// rounding-up division is an uninterpreted function `ceil(a, b)`, and each
/// application is pinned by its defining inequality (`b = 0 ∧ r = 0`, or
/// `b ≥ 1 ∧ r·b ≥ a ∧ a + b > r·b`), kept in [`Z3::definitions`], which
/// every query asserts. the utilisation the definitions speak of
/// ([`Definitional::utilisation`]) is the same function at `(1000·b, p)`,
/// pinned by the definitions' own inequality. no query needs Z3's division,
/// and where a check and a definition ask for the utilisation of equal
/// arguments, congruence answers without nonlinear arithmetic.
#[derive(Debug)]
pub struct Z3 {
    ceil: z3::FuncDecl,
    defs: RefCell<Vec<Bool>>,
    floor: RefCell<Vec<Bool>>,
    seen: RefCell<HashSet<(Int, u8)>>,
    names: RefCell<HashMap<Int, Int>>,
    pushed: RefCell<HashMap<Int, Int>>,
    by_flag: RefCell<HashMap<Bool, Vec<Named>>>,
    name_flags: bool,
}

impl Default for Z3 {
    fn default() -> Z3 {
        Z3 {
            ceil: z3::FuncDecl::new("ceil", &[&z3::Sort::int(), &z3::Sort::int()], &z3::Sort::int()),
            defs: RefCell::new(Vec::new()),
            floor: RefCell::new(Vec::new()),
            seen: RefCell::new(HashSet::new()),
            names: RefCell::new(HashMap::new()),
            pushed: RefCell::new(HashMap::new()),
            by_flag: RefCell::new(HashMap::new()),
            name_flags: false,
        }
    }
}

impl Z3 {
    /// a domain with no division applied yet.
    pub fn new() -> Z3 {
        Z3::default()
    }

    /// the same, with every `ite` on a worker's flag named (see
    /// [`Z3::named_ite`]): what the per-action obligations use. over a whole
    /// plan the names cost more than they save (at 8 workers two plan
    /// obligations ran out of time with them), so the plan obligations use
    /// [`Z3::new`].
    pub fn naming_flags() -> Z3 {
        Z3 { name_flags: true, ..Z3::default() }
    }

    /// the defining inequalities of every division applied so far.
    pub fn definitions(&self) -> Bool {
        Bool::and(&self.defs.borrow())
    }

    /// what the queries assume of `ceil` first: only that it is never
    /// negative (linear). a statement proved for every such function holds
    /// for the real one; only a query this leaves open is asked again under
    /// [`Z3::definitions`]. the checks and the definitions reach the
    /// utilisation of the same worker through equal arguments, so for the
    /// verifier's own rules the first query already settles everything.
    pub fn abstraction(&self) -> Bool {
        Bool::and(&self.floor.borrow())
    }

    fn apply_ceil(&self, a: &Int, b: &Int) -> Int {
        let r = self.ceil.apply(&[a, b]).as_int().unwrap_or_else(|| Int::from_u64(0));
        if self.seen.borrow_mut().insert((r.clone(), 0)) {
            self.floor.borrow_mut().push(r.ge(Int::from_u64(0)));
        }
        r
    }

    /// `ite(c, a, b)` as a constant `t` with `c → t = a` and `¬c → t = b`,
    /// one per distinct term. a sum of `ite(running, u, 0)` over the workers
    /// (utilisation, a count) is what Z3 handles worst as nested `ite`
    /// terms: it splits on every worker's flag, 2^N cases, and cpu.util at
    /// 16 workers ran out of time. named, the sum is linear over the names
    /// and each flag matters only where the arithmetic needs it. the
    /// definition is exact, so it goes to both [`Z3::abstraction`] and
    /// [`Z3::definitions`].
    fn named_ite(&self, c: &Bool, a: &Int, b: &Int) -> Int {
        let term = c.ite(a, b);
        if let Some(t) = self.names.borrow().get(&term) {
            return t.clone();
        }
        let t = Int::fresh_const("ite");
        let mut defs = vec![c.implies(t.eq(a)), c.not().implies(t.eq(b))];
        // congruence the solver would see through the `ite` but not
        // through two names: equal branches under one flag, equal names
        // (a worker's utilisation before a step and after one that left
        // its budget alone).
        let mut by_flag = self.by_flag.borrow_mut();
        let same = by_flag.entry(c.clone()).or_default();
        for (a2, b2, t2) in same.iter() {
            defs.push(Bool::and(&[a.eq(a2), b.eq(b2)]).implies(t.eq(t2)));
        }
        same.push((a.clone(), b.clone(), t.clone()));
        let def = Bool::and(&defs);
        self.floor.borrow_mut().push(def.clone());
        self.defs.borrow_mut().push(def);
        self.names.borrow_mut().insert(term, t.clone());
        t
    }

    /// records `def` for `r` once per kind (1 division, 2 utilisation).
    fn define(&self, r: &Int, kind: u8, def: impl FnOnce() -> Bool) {
        if self.seen.borrow_mut().insert((r.clone(), kind)) {
            let def = def();
            self.defs.borrow_mut().push(def);
        }
    }
}

/// what a condition is: a worker's flag (a boolean constant), a flag after
/// a step (an `ite`), or anything else (a comparison).
enum Flag {
    Const,
    After(Bool, Bool, Bool),
    Other,
}

fn flag(c: &Bool) -> Flag {
    let Ok(f) = c.safe_decl() else { return Flag::Other };
    match f.kind() {
        z3::DeclKind::Uninterpreted if c.num_children() == 0 => Flag::Const,
        z3::DeclKind::Ite => match c.children().as_slice() {
            [p, x, y] => match (p.as_bool(), x.as_bool(), y.as_bool()) {
                // a step's `pd = i`, not a plan's keep-or-advance choice.
                (Some(p), Some(x), Some(y)) if p.safe_decl().is_ok_and(|f| f.kind() == z3::DeclKind::Eq) => Flag::After(p, x, y),
                _ => Flag::Other,
            },
            _ => Flag::Other,
        },
        _ => Flag::Other,
    }
}

/// on numerals (the differential tests), Z3's own division: `0` for
/// `b = 0`, else `(a + b - 1) div b`, simplified to a numeral.
fn numeral_ceil(a: &Int, b: &Int) -> Option<Int> {
    let (a, b) = (a.simplify(), b.simplify());
    a.as_u128()?;
    b.as_u128()?;
    let zero = Int::from_u64(0);
    let q = Int::sub(&[&Int::add(&[&a, &b]), &Int::from_u64(1)]).div(&b);
    Some(b.eq(&zero).ite(&zero, &q).simplify())
}

impl Definitional for Z3 {
    fn utilisation(&self, budget: &Int, period: &Int) -> Int {
        let zero = Int::from_u64(0);
        let p = period.eq(&zero).ite(&Int::from_u64(1), period);
        let a = Int::mul(&[budget, &Int::from_u64(1000)]);
        if let Some(u) = numeral_ceil(&a, &p) {
            return u;
        }
        let u = self.apply_ceil(&a, &p);
        self.define(&u, 2, || definitions::defines_utilisation(self, &u, budget, period));
        u
    }
}

impl Domain for Z3 {
    type Int = Int;
    type Bool = Bool;

    fn int(&self, v: u64) -> Int {
        Int::from_u64(v)
    }
    fn bool(&self, v: bool) -> Bool {
        Bool::from_bool(v)
    }
    fn add(&self, a: &Int, b: &Int) -> Int {
        Int::add(&[a, b])
    }
    /// `ite(b <= a, a - b, 0)`, as `Concrete`'s saturating subtraction.
    fn sub_sat(&self, a: &Int, b: &Int) -> Int {
        b.le(a).ite(&Int::sub(&[a, b]), &Int::from_u64(0))
    }
    fn mul(&self, a: &Int, b: &Int) -> Int {
        Int::mul(&[a, b])
    }
    /// `ceil(a, b)`: for b > 0 the integer r with `r·b ≥ a > (r−1)·b`, which
    /// is ceil(a / b) for a >= 0 (every term the rules build is
    /// non-negative); 0 for b = 0, as `Concrete` (the rules never divide by
    /// zero: `util` maps a zero period to 1).
    fn div_ceil(&self, a: &Int, b: &Int) -> Int {
        if let Some(r) = numeral_ceil(a, b) {
            return r;
        }
        let r = self.apply_ceil(a, b);
        self.define(&r, 1, || {
            let zero = Int::from_u64(0);
            let rb = Int::mul(&[&r, b]);
            Bool::or(&[
                Bool::and(&[b.eq(&zero), r.eq(&zero)]),
                Bool::and(&[b.ge(Int::from_u64(1)), rb.ge(a), rb.lt(Int::add(&[a, b]))]),
            ])
        });
        r
    }
    fn le(&self, a: &Int, b: &Int) -> Bool {
        a.le(b)
    }
    /// a literal for two numerals (an action of a fixed worker compares its
    /// worker with each index), else the equation.
    fn eq(&self, a: &Int, b: &Int) -> Bool {
        match (a.as_u128(), b.as_u128()) {
            (Some(x), Some(y)) => Bool::from_bool(x == y),
            _ => a.eq(b),
        }
    }
    fn and(&self, a: &Bool, b: &Bool) -> Bool {
        Bool::and(&[a, b])
    }
    fn or(&self, a: &Bool, b: &Bool) -> Bool {
        Bool::or(&[a, b])
    }
    fn not(&self, a: &Bool) -> Bool {
        a.not()
    }
    /// `b` itself when both branches are the same term, which keeps the
    /// states of a symbolic plan small (and their utilisations shared); the
    /// branch itself for a literal condition; under [`Z3::naming_flags`], a
    /// named constant (see [`Z3::named_ite`]) when the condition is a
    /// worker's flag.
    fn ite(&self, c: &Bool, a: &Int, b: &Int) -> Int {
        if a == b {
            return a.clone();
        }
        match c.as_bool() {
            Some(true) => a.clone(),
            Some(false) => b.clone(),
            None if !self.name_flags => c.ite(a, b),
            None => match flag(c) {
                Flag::Const => self.named_ite(c, a, b),
                // a flag after a step: `ite(p, x, y)` as a condition is
                // `ite(p, ite(x, a, b), ite(y, a, b))`, so that the worker's
                // term after the step is its term before (named) where the
                // step does not touch it.
                Flag::After(p, x, y) => {
                    let term = c.ite(a, b);
                    if let Some(t) = self.pushed.borrow().get(&term) {
                        return t.clone();
                    }
                    let (x, y) = (self.ite(&x, a, b), self.ite(&y, a, b));
                    let t = if x == y { x } else { p.ite(&x, &y) };
                    self.pushed.borrow_mut().insert(term, t.clone());
                    t
                }
                Flag::Other => c.ite(a, b),
            },
        }
    }
    /// as [`Z3::ite`] without names: `a` when both branches are the same
    /// term, the branch itself for a literal condition.
    fn ite_bool(&self, c: &Bool, a: &Bool, b: &Bool) -> Bool {
        if a == b {
            return a.clone();
        }
        match c.as_bool() {
            Some(true) => a.clone(),
            Some(false) => b.clone(),
            None => c.ite(a, b),
        }
    }
}

/// the range of a u64 input: `0 <= x <= 2^64 - 1`.
pub fn in_u64(x: &Int) -> Bool {
    Bool::and(&[x.ge(Int::from_u64(0)), x.le(Int::from_u64(u64::MAX))])
}

/// a symbolic state and what every state of that shape satisfies.
pub struct SymState {
    /// the model over fresh constants.
    pub model: Model<Z3>,
    /// the u64 ranges, and `timer_period_us = 0` when no timer is set (the
    /// image of `Model::from_state`). restart marks are free: the state may
    /// be in the middle of a plan.
    pub domain: Bool,
}

/// a state over fresh constants named `{prefix}w{i}.{field}`, whose pool is
/// the policy's (`pool`): a state that disagrees with its policy is bad input
/// (`state.policy`), so a counterexample must replay with `llmsh check`.
pub fn sym_state(prefix: &str, pool: u64) -> SymState {
    let mut ranges = Vec::new();
    let mut int = |name: String| {
        let x = Int::new_const(name);
        ranges.push(in_u64(&x));
        x
    };
    let workers: [WorkerTerm<Z3>; N_WORKERS] = core::array::from_fn(|i| WorkerTerm {
        running: Bool::new_const(format!("{prefix}w{i}.running")),
        priority: int(format!("{prefix}w{i}.priority")),
        budget_us: int(format!("{prefix}w{i}.budget_us")),
        period_us: int(format!("{prefix}w{i}.period_us")),
        pages: int(format!("{prefix}w{i}.pages")),
        timer_on: Bool::new_const(format!("{prefix}w{i}.timer_on")),
        timer_period_us: int(format!("{prefix}w{i}.timer_period_us")),
        restarted: Bool::new_const(format!("{prefix}w{i}.restarted")),
    });
    let pool_pages = int(format!("{prefix}pool_pages"));
    ranges.push(pool_pages.eq(Int::from_u64(pool)));
    for w in &workers {
        ranges.push(Bool::or(&[w.timer_on.clone(), w.timer_period_us.eq(Int::from_u64(0))]));
    }
    SymState { model: Model { workers, pool_pages }, domain: Bool::and(&ranges) }
}

/// an action of one kind over fresh constants, and its input domain.
pub struct SymAction {
    /// the action; the worker is an index term.
    pub op: OpTerm<Z3>,
    /// `0 <= pd <= 3` and the u64 ranges of its numbers.
    pub domain: Bool,
}

/// an action of kind `kind` over fresh constants named `{prefix}pd`,
/// `{prefix}n0`, `{prefix}n1`, ...
pub fn sym_action(kind: ActionKind, prefix: &str) -> SymAction {
    let mut pd_range = Vec::new();
    let mut ranges = Vec::new();
    let mut n = 0usize;
    let op = template(kind).map(
        |_| {
            let pd = Int::new_const(format!("{prefix}pd"));
            pd_range.push(Bool::and(&[pd.ge(Int::from_u64(0)), pd.le(Int::from_u64(N_WORKERS as u64 - 1))]));
            pd
        },
        |_| {
            let x = Int::new_const(format!("{prefix}n{n}"));
            n = n.saturating_add(1);
            ranges.push(in_u64(&x));
            x
        },
    );
    ranges.extend(pd_range);
    SymAction { op, domain: Bool::and(&ranges) }
}

/// one action of each kind, with placeholder arguments: the shape that
/// [`sym_action`] fills with fresh constants. the match is exhaustive, so a
/// new op in the plan table cannot be forgotten here.
pub fn template(kind: ActionKind) -> Action {
    use ActionKind as K;
    let pd = Worker::W0;
    match kind {
        K::ProcessStart => Action::ProcessStart { pd },
        K::ProcessStop => Action::ProcessStop { pd },
        K::ProcessRestart => Action::ProcessRestart { pd },
        K::ProcessSetPriority => Action::ProcessSetPriority { pd, priority: 0 },
        K::ProcessSetBudget => Action::ProcessSetBudget { pd, budget_us: 0, period_us: 0 },
        K::MemoryGrant => Action::MemoryGrant { pd, pages: 0 },
        K::MemoryReclaim => Action::MemoryReclaim { pd, pages: 0 },
        K::TimerSetPeriodic => Action::TimerSetPeriodic { pd, period_us: 0 },
        K::TimerCancel => Action::TimerCancel { pd },
        K::FirmwareInventory => Action::FirmwareInventory { query: InventoryQuery::All },
        K::SystemQuery => Action::SystemQuery {},
    }
}

/// one action of a symbolic plan: present or not, of any kind, with its
/// worker and numbers as fresh constants shared by every kind.
pub struct SymSlot {
    /// the plan has this action.
    pub present: Bool,
    /// the index of its kind in `ActionKind::ALL`.
    pub kind: Int,
    /// the worker, for every kind that names one.
    pub pd: Int,
    /// the action as each kind, in `ActionKind::ALL` order.
    pub ops: Vec<(ActionKind, OpTerm<Z3>)>,
    /// the kind is one of the table's, the worker in range, the numbers u64.
    pub domain: Bool,
}

impl SymSlot {
    /// a slot over fresh constants `{prefix}present`, `{prefix}kind`,
    /// `{prefix}pd`, `{prefix}n0`, `{prefix}n1`.
    pub fn new(prefix: &str) -> SymSlot {
        let pd = Int::new_const(format!("{prefix}pd"));
        let nums: Vec<Int> = (0..2).map(|i| Int::new_const(format!("{prefix}n{i}"))).collect();
        let kind = Int::new_const(format!("{prefix}kind"));
        let mut ranges: Vec<Bool> = nums.iter().map(in_u64).collect();
        ranges.push(Bool::and(&[pd.ge(Int::from_u64(0)), pd.le(Int::from_u64(N_WORKERS as u64 - 1))]));
        ranges.push(Bool::and(&[kind.ge(Int::from_u64(0)), kind.lt(Int::from_u64(ActionKind::ALL.len() as u64))]));
        let ops = ActionKind::ALL
            .iter()
            .map(|k| {
                let mut j = 0usize;
                let op = template(*k).map(
                    |_| pd.clone(),
                    |_| {
                        let x = nums.get(j).cloned().unwrap_or_else(|| Int::from_u64(0));
                        j = j.saturating_add(1);
                        x
                    },
                );
                (*k, op)
            })
            .collect();
        SymSlot { present: Bool::new_const(format!("{prefix}present")), kind, pd, ops, domain: Bool::and(&ranges) }
    }

    /// a slot of one case: its kind is the `k`-th of `ActionKind::ALL` and,
    /// when `pd` is given, its worker is `pd`; its presence and numbers stay
    /// free. the rules fold every choice on the kind and the worker while
    /// they build the terms (`Z3::ite` on a literal, `Z3::eq` on numerals),
    /// so a case's terms hold one kind's step on one worker.
    pub fn case(prefix: &str, k: usize, pd: Option<u64>) -> SymSlot {
        let mut s = SymSlot::new(prefix);
        let kind = Int::from_u64(k as u64);
        let w = pd.map_or_else(|| s.pd.clone(), Int::from_u64);
        let subst = [(&s.kind, &kind), (&s.pd, &w)];
        // only the numbers' ranges and the literal checks of the fixed parts.
        s.domain = s.domain.substitute(&subst).simplify();
        let ops = ActionKind::ALL
            .iter()
            .map(|k| {
                let mut j = 0usize;
                let op = template(*k).map(
                    |_| w.clone(),
                    |_| {
                        let x = Int::new_const(format!("{prefix}n{j}"));
                        j = j.saturating_add(1);
                        x
                    },
                );
                (*k, op)
            })
            .collect();
        SymSlot { kind, pd: w, ops, ..s }
    }

    /// the slot holds an action of `kind`.
    pub fn is(&self, kind: ActionKind) -> Bool {
        let i = ActionKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u128;
        match self.kind.as_u128() {
            Some(k) => Bool::from_bool(k == i),
            None => self.kind.eq(Int::from_u128(i)),
        }
    }
}

impl Slot<Z3> for SymSlot {
    fn present(&self, _: &Z3) -> Bool {
        self.present.clone()
    }
    fn cases(&self, _: &Z3, f: &mut CaseFn<'_, Z3>) {
        for (k, op) in &self.ops {
            f(&self.is(*k), *k, op);
        }
    }
}
