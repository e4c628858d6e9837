//! differential testing of the two domains (cedar's `*-drt`): the rules run
//! over `Concrete` (what the verifier PD computes) and over [`Z3`] on the same
//! literal inputs (what the proofs reason about) must agree on every check,
//! invariant, acceptance and every field of the next state. the proofs are
//! about the PD's code only as far as this holds.

use policy_verifier::definitions::{self, Definitional};
use policy_verifier::domain::{Concrete, Domain};
use policy_verifier::plan::{ActionKind, OpTerm, Plan, N_WORKERS, PLAN_VERSION};
use policy_verifier::model::{Model, WorkerTerm};
use policy_verifier::rules::{self, Verifier};
use policy_verifier::verify::{self, lower, CaseFn, Context, Slot};
use policy_verifier::{confirm, Action, Invariant, Limits, Policy, State, Tier, Worker, WorkerState};
use z3::ast::{Ast, Bool, Int};

use crate::spec::DomainOp;
use crate::symbolic::{template, Z3};

/// splitmix64: a small seeded generator, so a failing case is reproducible
/// from its seed and index.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// a generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// the next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64().checked_rem(n).unwrap_or(0)
    }

    /// a fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

/// one random case: a state, the restart marks of the plan so far and an
/// action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// the state before.
    pub state: State,
    /// workers restarted earlier in the plan (`proc.restart_rate`).
    pub restarted: [bool; N_WORKERS],
    /// the action.
    pub action: Action,
}

impl Case {
    /// the model over `Concrete`.
    pub fn model(&self) -> Model<Concrete> {
        let mut m = Model::from_state(&Concrete, &self.state);
        for (w, r) in m.workers.iter_mut().zip(self.restarted) {
            w.restarted = r;
        }
        m
    }
}

/// the interesting values for `lim`: 0, 1, every limit and its neighbours,
/// u64::MAX and its neighbour.
pub fn boundaries(lim: &Limits) -> Vec<u64> {
    let mut out = vec![0, 1, 2, 1000, 10_000, u64::MAX - 1, u64::MAX];
    for l in [
        lim.quota_pages,
        lim.priority_ceiling,
        lim.cpu_util_permille,
        lim.budget_min_us,
        lim.period_max_us,
        lim.timer_min_us,
        lim.timer_max_us,
    ] {
        out.extend([l.saturating_sub(1), l, l.saturating_add(1)]);
    }
    out
}

/// a number: a boundary, a small or mid-sized one, or any u64.
fn number(rng: &mut Rng, bounds: &[u64]) -> u64 {
    match rng.below(4) {
        0 => bounds.get(rng.below(bounds.len() as u64) as usize).copied().unwrap_or(0),
        1 => rng.below(2_000),
        2 => rng.below(20_000_000),
        _ => rng.next_u64(),
    }
}

/// a random case; about one number in four is a boundary value.
pub fn random_case(rng: &mut Rng, bounds: &[u64]) -> Case {
    let workers: [WorkerState; N_WORKERS] = core::array::from_fn(|_| WorkerState {
        running: rng.coin(),
        priority: number(rng, bounds),
        budget_us: number(rng, bounds),
        period_us: number(rng, bounds),
        pages: number(rng, bounds),
        timer_period_us: if rng.coin() { Some(number(rng, bounds)) } else { None },
    });
    let pool_pages = number(rng, bounds);
    let restarted: [bool; N_WORKERS] = core::array::from_fn(|_| rng.coin());
    let kinds = ActionKind::ALL;
    let kind = kinds.get(rng.below(kinds.len() as u64) as usize).copied().unwrap_or(ActionKind::SystemQuery);
    let pd = Worker::from_index(rng.below(N_WORKERS as u64) as usize).unwrap_or(Worker::W0);
    let action = template(kind).map(|_| pd, |_| number(rng, bounds));
    Case { state: State { workers, pool_pages, last_request_id: 0 }, restarted, action }
}

/// where the domains disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// e.g. `check mem.quota`, `step w2.pages`.
    pub what: String,
    /// the `Concrete` value.
    pub concrete: String,
    /// the simplified Z3 term.
    pub symbolic: String,
}

fn lift_int(x: &u128) -> Int {
    Int::from_u128(*x)
}

/// the concrete model as Z3 literals.
fn lift(m: &Model<Concrete>) -> Model<Z3> {
    let w = |t: &WorkerTerm<Concrete>| WorkerTerm::<Z3> {
        running: Bool::from_bool(t.running),
        priority: lift_int(&t.priority),
        budget_us: lift_int(&t.budget_us),
        period_us: lift_int(&t.period_us),
        pages: lift_int(&t.pages),
        timer_on: Bool::from_bool(t.timer_on),
        timer_period_us: lift_int(&t.timer_period_us),
        restarted: Bool::from_bool(t.restarted),
    };
    Model { workers: m.workers.each_ref().map(w), pool_pages: lift_int(&m.pool_pages) }
}

/// the comparisons of one case, settled together: Z3 terms over `ceil`
/// applications have their value in the one model of the definitions.
#[derive(Default)]
struct Pending {
    bools: Vec<(String, bool, Bool)>,
    ints: Vec<(String, u128, Int)>,
}

impl Pending {
    fn bool(&mut self, what: impl Fn() -> String, c: bool, z: &Bool) {
        self.bools.push((what(), c, z.clone()));
    }

    fn int(&mut self, what: impl Fn() -> String, c: u128, z: &Int) {
        self.ints.push((what(), c, z.clone()));
    }

    fn settle(mut self, z: &Z3) -> Result<(), Mismatch> {
        // all at once first: one pass over the shared terms; only when that
        // is not plainly true, term by term (to name the mismatch).
        let all: Vec<Bool> = self
            .bools
            .iter()
            .map(|(_, c, t)| t.eq(Bool::from_bool(*c)))
            .chain(self.ints.iter().map(|(_, c, t)| t.eq(Int::from_u128(*c))))
            .collect();
        if Bool::and(&all).simplify().as_bool() == Some(true) {
            return Ok(());
        }
        // most terms are literals already; only the rest need the model.
        let mut err = None;
        self.bools.retain(|(what, c, t)| match t.simplify().as_bool() {
            Some(v) => {
                if v != *c && err.is_none() {
                    err = Some(Mismatch { what: what.clone(), concrete: c.to_string(), symbolic: v.to_string() });
                }
                false
            }
            None => true,
        });
        self.ints.retain(|(what, c, t)| match t.simplify().as_u128() {
            Some(v) => {
                if v != *c && err.is_none() {
                    err = Some(Mismatch { what: what.clone(), concrete: c.to_string(), symbolic: v.to_string() });
                }
                false
            }
            None => true,
        });
        if let Some(e) = err {
            return Err(e);
        }
        if self.bools.is_empty() && self.ints.is_empty() {
            return Ok(());
        }
        let solver = z3::Solver::new();
        solver.assert(z.definitions());
        let model = match solver.check() {
            z3::SatResult::Sat => solver.get_model(),
            _ => None,
        };
        let Some(model) = model else {
            return Err(Mismatch { what: "definitions".into(), concrete: "sat".into(), symbolic: "no model".into() });
        };
        for (what, c, t) in self.bools {
            let got = model.eval(&t, true).and_then(|v| v.as_bool());
            if got != Some(c) {
                return Err(Mismatch { what, concrete: c.to_string(), symbolic: format!("{got:?} ({})", t.simplify()) });
            }
        }
        for (what, c, t) in self.ints {
            let got = model.eval(&t, true).and_then(|v| v.as_u128());
            if got != Some(c) {
                return Err(Mismatch { what, concrete: c.to_string(), symbolic: format!("{got:?} ({})", t.simplify()) });
            }
        }
        Ok(())
    }
}

/// compares the two domains on one case: every check (`Invariant::ALL`),
/// `accepts`, `preconditions`, every state invariant before and after, and
/// every field of `step`.
pub fn compare(lim: &Limits, case: &Case) -> Result<(), Mismatch> {
    let c = &Concrete;
    let z = &Z3::new();
    let mut pend = Pending::default();
    let cm = &case.model();
    let zm = lift(cm);
    let ca = lower(&case.action);
    let za: OpTerm<Z3> = case.action.map(|w| Int::from_u64(w.index() as u64), |n| Int::from_u64(*n));

    for &inv in Invariant::ALL {
        pend.bool(
            || format!("check {inv}"),
            rules::check(c, lim, cm, &ca, inv),
            &rules::check(z, lim, &zm, &za, inv),
        );
    }
    pend.bool(|| "accepts".into(), rules::accepts(c, lim, cm, &ca), &rules::accepts(z, lim, &zm, &za));
    pend.bool(
        || "preconditions".into(),
        rules::preconditions(c, lim, cm, &ca),
        &rules::preconditions(z, lim, &zm, &za),
    );
    let cn = rules::step(c, cm, &ca);
    let zn = rules::step(z, &zm, &za);
    for inv in Invariant::STATE {
        pend.bool(
            || format!("holds {inv}"),
            definitions::holds(c, lim, cm, inv),
            &definitions::holds(z, lim, &zm, inv),
        );
        pend.bool(
            || format!("holds {inv} after"),
            definitions::holds(c, lim, &cn, inv),
            &definitions::holds(z, lim, &zn, inv),
        );
    }
    for (i, (cw, zw)) in cn.workers.iter().zip(zn.workers.iter()).enumerate() {
        pend.bool(|| format!("step w{i}.running"), cw.running, &zw.running);
        pend.int(|| format!("step w{i}.priority"), cw.priority, &zw.priority);
        pend.int(|| format!("step w{i}.budget_us"), cw.budget_us, &zw.budget_us);
        pend.int(|| format!("step w{i}.period_us"), cw.period_us, &zw.period_us);
        pend.int(|| format!("step w{i}.pages"), cw.pages, &zw.pages);
        pend.bool(|| format!("step w{i}.timer_on"), cw.timer_on, &zw.timer_on);
        pend.int(|| format!("step w{i}.timer_period_us"), cw.timer_period_us, &zw.timer_period_us);
        pend.bool(|| format!("step w{i}.restarted"), cw.restarted, &zw.restarted);
        // utilisation is the one division: compare it on its own too.
        pend.int(
            || format!("util w{i}"),
            rules::util(c, &cw.budget_us, &cw.period_us),
            &rules::util(z, &zw.budget_us, &zw.period_us),
        );
    }
    pend.int(|| "step pool_pages".into(), cn.pool_pages, &zn.pool_pages);
    // the domain operations themselves, on two of the case's numbers.
    let x = cm.workers.first().map_or(0, |w| w.pages);
    let y = cm.workers.get(1).map_or(0, |w| w.budget_us);
    let (zx, zy) = (lift_int(&x), lift_int(&y));
    pend.int(|| "sub_sat".into(), c.sub_sat(&x, &y), &z.sub_sat(&zx, &zy));
    pend.int(|| "div_ceil".into(), c.div_ceil(&x, &y), &z.div_ceil(&zx, &zy));
    pend.int(|| "mul".into(), c.mul(&x, &y), &z.mul(&zx, &zy));
    pend.settle(z)
}

/// the first case of a run where the domains disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// its index in the run (with the seed, it reproduces the case).
    pub index: u64,
    /// the case.
    pub case: Case,
    /// what differs.
    pub mismatch: Mismatch,
}

/// runs `n` cases from `seed`; the first mismatch.
pub fn run(lim: &Limits, seed: u64, n: u64) -> Result<(), Box<Failure>> {
    let mut rng = Rng::new(seed);
    let bounds = boundaries(lim);
    for index in 0..n {
        let case = random_case(&mut rng, &bounds);
        if let Err(mismatch) = compare(lim, &case) {
            return Err(Box::new(Failure { index, case, mismatch }));
        }
    }
    Ok(())
}

/// the extremes the domains are compared on: the ends of u64, of u32 and of
/// u63, and the small numbers the rules multiply and divide by.
pub const EXTREMES: [u64; 12] =
    [0, 1, 2, 999, 1000, 1001, u32::MAX as u64, 1 << 32, 1 << 63, (1 << 63) - 1, u64::MAX - 1, u64::MAX];

/// `c` (a concrete domain: `Concrete`, or a broken copy in a test) and Z3
/// agree on `op` for every pair of [`EXTREMES`], and on every sum of up to
/// five of them (the longest expression the rules build).
pub fn domain_agrees<C>(c: &C, op: DomainOp) -> Result<(), Mismatch>
where
    C: Domain<Int = u128, Bool = bool> + Definitional,
{
    let z = &Z3::new();
    let mut pend = Pending::default();
    let lit = |x: u128| Int::from_u128(x);
    for &x in &EXTREMES {
        for &y in &EXTREMES {
            let (cx, cy) = (c.int(x), c.int(y));
            let (zx, zy) = (z.int(x), z.int(y));
            let what = |s: &'static str| move || format!("{s}({x}, {y})");
            match op {
                DomainOp::Add => {
                    pend.int(what("add"), c.add(&cx, &cy), &z.add(&zx, &zy));
                    // sums of five u64 values, as the rules build them.
                    let mut cs = c.int(0);
                    let mut zs = z.int(0);
                    for v in [x, y, x, y, u64::MAX] {
                        cs = c.add(&cs, &c.int(v));
                        zs = z.add(&zs, &z.int(v));
                        pend.int(what("sum"), cs, &zs);
                    }
                }
                DomainOp::SubSat => pend.int(what("sub_sat"), c.sub_sat(&cx, &cy), &z.sub_sat(&zx, &zy)),
                DomainOp::Mul => {
                    pend.int(what("mul"), c.mul(&cx, &c.int(1000)), &z.mul(&zx, &z.int(1000)));
                    pend.int(what("mul"), c.mul(&cx, &cy), &z.mul(&zx, &zy));
                }
                DomainOp::DivCeil => {
                    let big = c.mul(&cx, &c.int(1000));
                    pend.int(what("div_ceil"), c.div_ceil(&big, &cy), &z.div_ceil(&lit(big), &zy));
                    pend.int(what("div_ceil"), c.div_ceil(&cx, &cy), &z.div_ceil(&zx, &zy));
                }
                DomainOp::Compare => {
                    pend.bool(what("le"), c.le(&cx, &cy), &z.le(&zx, &zy));
                    pend.bool(what("lt"), c.lt(&cx, &cy), &z.lt(&zx, &zy));
                    // above u64, where a sum lands.
                    let cb = c.add(&cx, &c.int(u64::MAX));
                    pend.bool(what("le sum"), c.le(&cb, &cy), &z.le(&lit(cb), &zy));
                }
                DomainOp::Eq => pend.bool(what("eq"), c.eq(&cx, &cy), &z.eq(&zx, &zy)),
                DomainOp::Ite => {
                    for b in [false, true] {
                        pend.int(what("ite"), c.ite(&c.bool(b), &cx, &cy), &z.ite(&z.bool(b), &zx, &zy));
                        let (p, q) = (c.le(&cx, &cy), z.le(&zx, &zy));
                        pend.bool(what("ite_bool"), c.ite_bool(&c.bool(b), &p, &c.not(&p)), &z.ite_bool(&z.bool(b), &q, &z.not(&q)));
                        pend.bool(what("and"), c.and(&c.bool(b), &p), &z.and(&z.bool(b), &q));
                        pend.bool(what("or"), c.or(&c.bool(b), &p), &z.or(&z.bool(b), &q));
                    }
                }
                DomainOp::Util => pend.int(what("util"), rules::util(c, &cx, &cy), &rules::util(z, &zx, &zy)),
                DomainOp::Utilisation => {
                    // the concrete utilisation is the integer the inequality defines.
                    let u = c.utilisation(&cx, &cy);
                    pend.bool(what("utilisation"), true, &definitions::defines_utilisation(z, &lit(u), &zx, &zy));
                }
                DomainOp::Known => {
                    let (p, q) = (c.le(&cx, &cy), z.le(&zx, &zy));
                    pend.bool(what("known"), p, &Bool::from_bool(c.known(&p).unwrap_or(p)));
                    pend.bool(what("known z3"), p, &z.known(&q).map_or(q.clone(), Bool::from_bool));
                }
                // not operations of the value domain: see `entry::entry_agrees`.
                DomainOp::Workers | DomainOp::Expr | DomainOp::Verify | DomainOp::WellFormed | DomainOp::ExprBound => {
                    return Err(Mismatch { what: format!("domain/{}", op.name()), concrete: "an entry point".into(), symbolic: "not a domain operation".into() });
                }
            }
        }
    }
    pend.settle(z)
}

fn mismatch(what: String, concrete: impl ToString, symbolic: impl ToString) -> Mismatch {
    Mismatch { what, concrete: concrete.to_string(), symbolic: symbolic.to_string() }
}

/// `Worker::from_index(i)` is a worker exactly for `i < N_WORKERS` (the pd
/// range of `SymSlot` and `sym_action`), and that worker has index `i`, is
/// `Worker::ALL[i]` and is named `worker{i}` both ways.
pub(crate) fn workers_agree() -> Result<(), Mismatch> {
    let upto = usize::from(u8::MAX).saturating_add(2);
    for i in (0..=upto).chain([usize::MAX]) {
        let w = Worker::from_index(i);
        if w.is_some() != (i < N_WORKERS) {
            return Err(mismatch(format!("from_index({i})"), format!("{w:?}"), format!("a worker iff {i} < {N_WORKERS}")));
        }
        if let Some(w) = w {
            if w.index() != i || Worker::ALL.get(i) != Some(&w) {
                return Err(mismatch(format!("index of from_index({i})"), w.index(), i));
            }
            // a counterexample names its workers; `llmsh check` reads them back.
            let name = format!("worker{i}");
            if w.name() != name || Worker::from_name(&name) != Some(w) {
                return Err(mismatch(format!("name of worker {i}"), w.name(), name));
            }
        }
    }
    if Worker::ALL.len() != N_WORKERS {
        return Err(mismatch("Worker::ALL".into(), Worker::ALL.len(), N_WORKERS));
    }
    // the worker an action reports (the shell's confirmation prompt, error
    // details) is the one its lowering hands the checks.
    for &kind in ActionKind::ALL {
        for &w in &Worker::ALL {
            let a = template(kind).map(|_| w, |_| 1);
            let mut checked = None;
            let _ = lower(&a).map(|p| checked = Some(*p), |_| ());
            let reported = a.worker().map(|r| r.index() as u128);
            if reported != checked {
                return Err(mismatch(format!("{} on {}: worker()", kind.name(), w.name()), format!("{reported:?}"), format!("{checked:?} (lowered)")));
            }
        }
    }
    schema_workers()
}

/// the plan schema the LLM is given: every `pd` is a string, one of exactly
/// the names the verifier decodes to workers `0..N_WORKERS`, in order.
fn schema_workers() -> Result<(), Mismatch> {
    use serde_json::Value;
    let s = policy_verifier::json::plan_schema();
    let defs = s.get("definitions").and_then(Value::as_object);
    let resolve = |v: &Value| -> Option<Value> {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => defs?.get(r.strip_prefix("#/definitions/")?).cloned(),
            None => Some(v.clone()),
        }
    };
    let want: Vec<String> = (0..N_WORKERS).map(|i| format!("worker{i}")).collect();
    let mut pds = 0usize;
    let mut stack: Vec<Value> = vec![s.clone()];
    while let Some(v) = stack.pop() {
        match &v {
            Value::Object(o) => {
                if let Some(pd) = o.get("properties").and_then(|p| p.get("pd")) {
                    pds = pds.saturating_add(1);
                    let pd = resolve(pd).unwrap_or(Value::Null);
                    let names: Option<Vec<String>> =
                        pd.get("enum").and_then(Value::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect());
                    if pd.get("type").and_then(Value::as_str) != Some("string") || names.as_ref() != Some(&want) {
                        return Err(mismatch("schema pd".into(), pd, format!("a string, one of {want:?}")));
                    }
                    for (i, n) in want.iter().enumerate() {
                        let got = serde_json::from_value::<Worker>(Value::from(n.as_str())).ok().map(Worker::index);
                        if got != Some(i) {
                            return Err(mismatch(format!("schema name {n}"), format!("{got:?}"), i));
                        }
                    }
                }
                stack.extend(o.values().cloned());
            }
            Value::Array(a) => stack.extend(a.iter().cloned()),
            _ => {}
        }
    }
    // one `pd` per op with a worker.
    let with_pd = ActionKind::ALL
        .iter()
        .filter(|&&k| {
            let mut has = false;
            let _ = lower(&template(k)).map(|_| has = true, |_| ());
            has
        })
        .count();
    if pds != with_pd {
        return Err(mismatch("schema pd fields".into(), pds, with_pd));
    }
    Ok(())
}

/// invariants with every operator, quantifier, field and global of the
/// language at least once (docs/invariants.md), over the first and the last
/// worker.
pub fn expr_corpus() -> Vec<String> {
    let last = N_WORKERS.saturating_sub(1);
    vec![
        "count(w, !w.running) <= 2".into(),
        "all(w, w.pages <= quota_pages) && any(w, w.running)".into(),
        format!("sum(w, w.pages) + 3 * workers - pool_pages < 7 || worker{last}.priority > priority_ceiling"),
        "all(w, w.timer => w.timer_period_us >= timer_min_us && w.timer_period_us <= timer_max_us)".into(),
        "all(v, all(w, v.budget_us * 1000 != w.period_us - budget_min_us)) => period_max_us == cpu_util_permille".into(),
        "count(w, any(v, v.pages > w.pages)) >= 1 || sum(w, w.timer_period_us) == page_size".into(),
        format!("not (worker{last}.timer and worker0.budget_us > worker0.period_us) or false or true"),
        "count(w, w.pages < pool_pages - quota_pages) == workers - 1 || page_size * 2 >= 33".into(),
    ]
}

/// for each of [`expr_corpus`]: no state (in the u64 ranges) where the
/// interpreter over Z3 and the translation differ.
pub(crate) fn expr_agrees(policy: &Policy) -> Result<(), Mismatch> {
    use z3::{Params, SatResult, Solver};
    for text in expr_corpus() {
        let e = policy_verifier::expr::parse(&text, N_WORKERS)
            .map_err(|err| mismatch(format!("parse `{text}`"), format!("{err:?}"), "an expression"))?;
        let s = crate::symbolic::sym_state("e.", policy.initial.pool_pages);
        let z = Z3::new();
        let checked = policy_verifier::custom::eval_bool(&z, &policy.limits, &s.model, &e);
        let defined = crate::lang::holds(&policy.limits, &s.model, &e);
        let solver = Solver::new();
        let mut p = Params::new();
        p.set_u32("timeout", crate::DEFAULT_TIMEOUT_MS);
        solver.set_params(&p);
        solver.assert(&s.domain);
        solver.assert(z.definitions());
        solver.assert(checked.eq(&defined).not());
        match solver.check() {
            SatResult::Unsat => {}
            SatResult::Sat => return Err(mismatch(format!("`{text}`"), "the interpreter", format!("the translation differs: {:?}", solver.get_model()))),
            SatResult::Unknown => return Err(mismatch(format!("`{text}`"), "the interpreter", "unknown (timeout)")),
        }
    }
    Ok(())
}

/// a literal action as a plan slot over Z3.
struct LitSlot {
    kind: ActionKind,
    op: OpTerm<Z3>,
}

impl Slot<Z3> for LitSlot {
    fn present(&self, _: &Z3) -> Bool {
        Bool::from_bool(true)
    }
    fn cases(&self, _: &Z3, f: &mut CaseFn<'_, Z3>) {
        f(&Bool::from_bool(true), self.kind, &self.op);
    }
}

/// the action over Z3, the worker by its position in `Worker::ALL` (not
/// through `Worker::index`, which the PD's lowering uses).
fn lit_op(a: &Action) -> OpTerm<Z3> {
    a.map(
        |w| Int::from_u64(Worker::ALL.iter().position(|x| x == w).map_or(u64::MAX, |i| i as u64)),
        |n| Int::from_u64(*n),
    )
}

/// how a plan of the cases is signed and sent: session name, a valid token
/// or none, fresh or stale request id.
#[derive(Clone, Copy)]
struct Variant {
    /// 0 the highest tier's session, 1 the lowest's, 2 one the policy lacks.
    session: usize,
    signed: bool,
    fresh: bool,
}

/// the states and plans `domain/verify` runs: the policy's initial state, a
/// state whose workers all differ (so that a wrong worker shows), and
/// seeded random states; every action kind for every worker with numbers at
/// the limits, under sessions of each tier, with and without a token, with
/// a fresh and a stale request id; repeated actions (a second restart, a
/// grant to the quota and one more).
fn entry_cases(policy: &Policy, key: &[u8]) -> Vec<(State, Plan)> {
    let lim = &policy.limits;
    let by_tier = |t: Tier| policy.sessions.iter().flatten().find(|s| s.tier == t).map(|s| s.name.as_str());
    let top = by_tier(Tier::Admin).or(by_tier(Tier::Operator)).or(by_tier(Tier::Observer)).unwrap_or("admin");
    let low = by_tier(Tier::Observer).or(by_tier(Tier::Operator)).unwrap_or(top);
    let names = [top, low, "nobody.unknown"];
    let variants = |i: usize| -> Variant {
        let pick = [(0, true, true), (0, false, true), (0, true, false), (1, true, true), (2, true, true)];
        let (session, signed, fresh) = pick.get(i % pick.len()).copied().unwrap_or((0, true, true));
        Variant { session, signed, fresh }
    };
    let mut s0 = policy.initial;
    s0.last_request_id = 7;
    let mut s1 = s0;
    for (k, w) in s1.workers.iter_mut().enumerate() {
        let k64 = k as u64;
        w.running = k % 2 == 0;
        w.pages = lim.quota_pages.saturating_sub(k64);
        w.priority = k64;
        w.timer_period_us = (k % 2 == 1).then_some(lim.timer_min_us.saturating_add(k64));
    }
    let nums = [1, lim.quota_pages, u64::MAX];
    let mut actions: Vec<Action> = Vec::new();
    for &kind in ActionKind::ALL {
        for &w in &Worker::ALL {
            for &n in &nums {
                actions.push(template(kind).map(|_| w, |_| n));
            }
        }
    }
    let (budget_us, period_us) = s0.workers.first().map_or((lim.budget_min_us, lim.period_max_us), |x| (x.budget_us, x.period_us));
    for &w in &Worker::ALL {
        actions.push(Action::ProcessSetBudget { pd: w, budget_us, period_us });
    }
    let mut out = Vec::new();
    let mut push = |s: &State, acts: &[Action], v: Variant| {
        let request_id = if v.fresh { s.last_request_id.saturating_add(1) } else { s.last_request_id };
        let Ok(session) = heapless::String::try_from(names.get(v.session).copied().unwrap_or("")) else { return };
        let Ok(actions) = heapless::Vec::from_slice(acts) else { return };
        let plan = Plan { version: PLAN_VERSION, request_id, session, reason: heapless::String::new(), actions, confirmation: None };
        let plan = if v.signed { confirm::sign(&plan, key).unwrap_or(plan) } else { plan };
        out.push((*s, plan));
    };
    for (t, s) in [&s0, &s1].into_iter().enumerate() {
        for (j, a) in actions.iter().enumerate() {
            // every variant for the destructive ops on the state with
            // stopped workers; the variants in turn otherwise.
            let all = t == 1 && a.kind().destructive() && j % nums.len() == 0; // n = 1
            for i in if all { 0..5 } else { j.saturating_add(t)..j.saturating_add(t).saturating_add(1) } {
                push(s, core::slice::from_ref(a), variants(i));
            }
        }
        for &w in &Worker::ALL {
            let restart = Action::ProcessRestart { pd: w };
            push(s, &[restart, restart], variants(0));
            push(s, &[Action::MemoryGrant { pd: w, pages: 1 }, Action::MemoryGrant { pd: w, pages: lim.quota_pages }], variants(0));
        }
    }
    let mut rng = Rng::new(0x6d75_7461_6e74);
    let bounds = boundaries(lim);
    for _ in 0..16 {
        let mut c = random_case(&mut rng, &bounds);
        c.state.last_request_id = 7;
        let more = random_case(&mut rng, &bounds).action;
        push(&c.state, &[c.action, more], variants(0));
    }
    out
}

pub(crate) fn verify_agrees(policy: &Policy, key: &[u8]) -> Result<(), Mismatch> {
    let z = &Z3::new();
    let lim = &policy.limits;
    let mut pend = Pending::default();
    let mut prev: Option<State> = None;
    for (j, (s, plan)) in entry_cases(policy, key).iter().enumerate() {
        let at = |what: &str| format!("case {j} ({:?}, {}): {what}", plan.actions, plan.session);
        let v = verify::verify(policy, s, plan, key);
        let zm = Model::from_state(z, s);
        // the session by `Name` equality, not through `Policy::session`
        // (the PD's lookup by bytes, compared here).
        let want = policy_verifier::model::Name::from_str_const(plan.session.as_str());
        let tier = policy.sessions.iter().flatten().find(|x| x.name == want).map(|x| x.tier);
        let ctx = Context {
            request_id: Int::from_u64(plan.request_id),
            last_request_id: Int::from_u64(s.last_request_id),
            tier_rank: Int::from_u64(definitions::tier_rank(tier)),
            token_valid: Bool::from_bool(confirm::is_valid(plan, key)),
        };
        let slots: Vec<LitSlot> = plan.actions.iter().map(|a| LitSlot { kind: a.kind(), op: lit_op(a) }).collect();
        // the composition the plan obligations prove, not `verify::run`
        // itself: the PD's loop is compared with it.
        let h = verify::header(z, &Verifier, lim, &ctx, &slots);
        let mut p = verify::begin(z, &zm);
        for (i, slot) in slots.iter().enumerate() {
            p = verify::advance(z, &Verifier, lim, &policy.invariants, &ctx, &h.confirmed, &Int::from_u64(i as u64), &p, slot);
        }
        let zv = verify::finish(z, &h, &p);
        pend.bool(|| at("approved"), v.approved, &zv.approved);
        pend.bool(|| at("failed"), v.failed.is_some(), &zv.failed);
        if let Some((i, _)) = v.failed {
            pend.int(|| at("failed_at"), i as u128, &zv.failed_at);
        }
        let failed_names = v.failed.map(|(_, n)| n).unwrap_or_default();
        for &inv in Invariant::ALL {
            pend.bool(|| at(&format!("plan violation {inv}")), v.plan_violations.contains(inv), &zv.plan_violations.get(z, inv));
            pend.bool(|| at(&format!("names {inv}")), failed_names.contains(inv), &zv.failed_names.get(z, inv));
        }
        for (k, _) in policy.invariants.enforced() {
            pend.bool(|| at(&format!("names custom {k}")), failed_names.contains_custom(k), &zv.failed_names.get_custom(z, k));
        }
        let last = zv.approved.ite(&Int::from_u64(plan.request_id), &Int::from_u64(s.last_request_id));
        pend.int(|| at("state last_request_id"), u128::from(v.state.last_request_id), &last);
        state_agrees(&mut pend, &|w| at(w), &v.state, &zv.model);

        // the state gate (once per state: the cases come grouped by state)
        // and the per-action report, against the definitions and the checks
        // over Z3.
        if prev.as_ref() != Some(s) {
            prev = Some(*s);
            let broken = verify::state_violations(policy, s);
            for inv in Invariant::STATE {
                pend.bool(|| at(&format!("state_violations {inv}")), !broken.contains(inv), &definitions::holds(z, lim, &zm, inv));
            }
            for (k, c) in policy.invariants.enforced() {
                pend.bool(|| at(&format!("state_violations custom {k}")), !broken.contains_custom(k), &crate::lang::holds(lim, &zm, &c.expr));
            }
        }
        // the report and `apply` on every fourth case (each is a loop
        // over the same checks and step the verdict uses).
        if j % 4 != 0 {
            continue;
        }
        let cm = Model::from_state(&Concrete, s);
        for a in &plan.actions {
            let report = verify::action_violations(policy, &cm, a);
            let op = lit_op(a);
            for &inv in Invariant::STATE.iter().chain(Invariant::PRECONDITIONS.iter()) {
                pend.bool(|| at(&format!("action_violations {inv}")), !report.contains(inv), &rules::check(z, lim, &zm, &op, inv));
            }
            // what the PD applies after an action ran.
            let after = verify::apply(s, a);
            state_agrees(&mut pend, &|w| at(&format!("apply {w}")), &after, &rules::step(z, &zm, &op));
        }
    }
    pend.settle(z)
}

/// a concrete state against a model over Z3, field by field; a state
/// holds u64, so a field of the model above it reads as u64::MAX (only a
/// rejected action gets there, and `apply` is for approved ones).
fn state_agrees(pend: &mut Pending, at: &dyn Fn(&str) -> String, s: &State, m: &Model<Z3>) {
    let max = Int::from_u64(u64::MAX);
    let fit = |t: &Int| t.le(&max).ite(t, &max);
    for (i, (c, w)) in s.workers.iter().zip(m.workers.iter()).enumerate() {
        pend.bool(|| at(&format!("w{i}.running")), c.running, &w.running);
        pend.int(|| at(&format!("w{i}.priority")), u128::from(c.priority), &fit(&w.priority));
        pend.int(|| at(&format!("w{i}.budget_us")), u128::from(c.budget_us), &fit(&w.budget_us));
        pend.int(|| at(&format!("w{i}.period_us")), u128::from(c.period_us), &fit(&w.period_us));
        pend.int(|| at(&format!("w{i}.pages")), u128::from(c.pages), &fit(&w.pages));
        pend.bool(|| at(&format!("w{i}.timer_on")), c.timer_period_us.is_some(), &w.timer_on);
        if let Some(t) = c.timer_period_us {
            pend.int(|| at(&format!("w{i}.timer_period_us")), u128::from(t), &fit(&w.timer_period_us));
        }
    }
    pend.int(|| at("pool_pages"), u128::from(s.pool_pages), &fit(&m.pool_pages));
}
