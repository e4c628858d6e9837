//! the symbolic domain: the rules of `policy_verifier::rules` run over Z3
//! terms, and the symbolic states and actions the obligations quantify over.

use policy_verifier::domain::Domain;
use policy_verifier::plan::{ActionKind, InventoryQuery, N_WORKERS};
use policy_verifier::rules::{Model, OpTerm, WorkerTerm};
use policy_verifier::{Action, Worker};
use z3::ast::{Bool, Int};

/// the Z3 instance of [`Domain`]: mathematical integers and booleans, in the
/// thread's Z3 context. it agrees with `Concrete` on every u64 input (the
/// differential tests check it); [`Z3::div_ceil`] and [`Z3::sub_sat`] are
/// the only encodings that are not one Z3 operator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Z3;

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
    /// `(a + b - 1) div b` for b > 0, which is ceil(a / b) for a >= 0 (every
    /// term the rules build is non-negative); 0 for b = 0, as `Concrete`
    /// (the rules never divide by zero: `util` maps a zero period to 1).
    fn div_ceil(&self, a: &Int, b: &Int) -> Int {
        let zero = Int::from_u64(0);
        let num = Int::sub(&[&Int::add(&[a, b]), &Int::from_u64(1)]);
        b.eq(&zero).ite(&zero, &num.div(b))
    }
    fn le(&self, a: &Int, b: &Int) -> Bool {
        a.le(b)
    }
    fn eq(&self, a: &Int, b: &Int) -> Bool {
        a.eq(b)
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
    fn ite(&self, c: &Bool, a: &Int, b: &Int) -> Int {
        c.ite(a, b)
    }
    fn ite_bool(&self, c: &Bool, a: &Bool, b: &Bool) -> Bool {
        c.ite(a, b)
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

/// a state over fresh constants named `{prefix}w{i}.{field}`.
pub fn sym_state(prefix: &str) -> SymState {
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
