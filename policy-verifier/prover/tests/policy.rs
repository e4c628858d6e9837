//! policy obligations and policy questions over the example policies:
//! a policy-file invariant proved with obligations of every kind the
//! built-in ones have, a claim refuted with a counterexample the real
//! verifier replays, a verifier that skips the file's check caught,
//! `compare` in both directions, `query` with a witness, and vacuity under
//! a changed policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]

use policy_prover::{all_specs, compare, query, specs_for, Kind, Outcome, Prover, Report, Rules, Verifier, Z3};
use policy_verifier::domain::Domain;
use policy_verifier::expr;
use policy_verifier::model::{CustomInvariant, Model};
use policy_verifier::plan::OpTerm;
use policy_verifier::{json, verify, ActionKind, ActionOf, Limits, Policy, DEFAULT_POLICY, N_WORKERS};

const KEY: [u8; 32] = [9; 32];
const DEFAULT: &str = include_str!("../../../system/policy.toml");
const MAX_STOPPED: &str = include_str!("../../../tests/policies/max-stopped.toml");

fn with(invariants: &str) -> Policy {
    json::parse_policy(&format!("{DEFAULT}\n[invariants]\n{invariants}\n")).expect("policy parses")
}

/// z3 runs several contexts in parallel threads far slower than one after
/// the other; the proof runs take turns.
static Z3_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn report(p: &Policy) -> Report {
    let _turn = Z3_TURN.lock().unwrap_or_else(|e| e.into_inner());
    // a generous timeout: the tests share a loaded machine with other z3 runs.
    Report::run(&Prover::new(p, &Verifier, &KEY).timeout_ms(120_000))
}

fn failed(r: &Report) -> Vec<String> {
    r.obligations.iter().filter(|o| o.result != Outcome::Proved).map(|o| o.spec.name()).collect()
}

#[test]
fn a_policy_file_invariant_is_proved_with_every_builtin_obligation() {
    let p = json::parse_policy(MAX_STOPPED).expect("example policy");
    let r = report(&p);
    let bad: Vec<String> = r
        .obligations
        .iter()
        .filter(|o| o.result != Outcome::Proved)
        .map(|o| format!("{} {} {:.0} ms {:?}", o.spec.name(), o.result.name(), o.ms, o.reason))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    let names: Vec<String> = r.obligations.iter().map(|o| o.spec.name()).collect();
    for n in [
        "consistency/mem.quota",
        "consistency/proc.max_stopped",
        "soundness/process.stop/proc.max_stopped",
        "completeness/process.stop/proc.max_stopped",
        "completeness/process.stop/accepts",
        "plan/soundness/proc.max_stopped",
        "plan/naming/proc.max_stopped",
        "plan/invariant",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
    }
    // per op a soundness and a completeness obligation, consistency, and two plan obligations.
    let ops = ActionKind::ALL.len();
    assert_eq!(r.obligations.len(), all_specs().len() + 6 + 1 + 2 * ops + 2);
    assert_eq!(specs_for(&p).len(), r.obligations.len());
    // process.stop stays non-vacuous under the changed policy.
    assert!(r.obligations.iter().any(|o| o.spec.name() == "vacuity/process.stop" && o.result == Outcome::Proved));
}

/// the PD's rules with the policy file's checks dropped.
struct SkipsFileChecks;

impl<D: Domain> Rules<D> for SkipsFileChecks {
    fn check_custom(&self, d: &D, _: &Limits, _: &Model<D>, _: &OpTerm<D>, _: &CustomInvariant) -> D::Bool {
        d.bool(true)
    }
}

/// the PD's rules refusing every stop under the policy file's invariants.
struct RefusesStops;

impl<D: Domain> Rules<D> for RefusesStops {
    fn check_custom(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>, c: &CustomInvariant) -> D::Bool {
        match a {
            ActionOf::ProcessStop { .. } => d.bool(false),
            _ => policy_verifier::custom::eval_bool(d, lim, &policy_verifier::rules::step(d, m, a), &c.expr),
        }
    }
}

/// the PD's rules evaluating another text than the policy's: what an
/// interpreter that misreads an operator would do.
struct Misreads(policy_verifier::expr::Expr);

impl<D: Domain> Rules<D> for Misreads {
    fn check_custom(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>, _: &CustomInvariant) -> D::Bool {
        policy_verifier::custom::eval_bool(d, lim, &policy_verifier::rules::step(d, m, a), &self.0)
    }
}

fn custom_failures(p: &Policy, rules: &dyn Rules<Z3>) -> Vec<String> {
    let _turn = Z3_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let prover = Prover::new(p, rules, &KEY).timeout_ms(120_000);
    specs_for(p)
        .iter()
        .filter(|s| s.custom.is_some() || s.kind == Kind::Plan || (s.kind == Kind::Completeness && s.invariant.is_none()))
        .map(|s| prover.run(s))
        .filter(|o| o.result != Outcome::Proved)
        .map(|o| o.spec.name())
        .collect()
}

#[test]
fn a_verifier_that_drops_overdoes_or_misreads_the_file_check_fails_its_proofs() {
    let p = json::parse_policy(MAX_STOPPED).expect("example policy");
    // dropped: stopping a third worker is approved, in one step and in a
    // plan, the loop no longer keeps its invariant and a rejected third stop
    // is not named for it.
    let f = custom_failures(&p, &SkipsFileChecks);
    let dropped = [
        "soundness/process.stop/proc.max_stopped",
        "plan/first_failure",
        "plan/invariant",
        "plan/soundness/proc.max_stopped",
        "plan/naming/proc.max_stopped",
    ];
    assert_eq!(f, dropped, "{f:?}");
    // stops refused outright: incomplete, and the refusal is named wrongly.
    let f = custom_failures(&p, &RefusesStops);
    let refused = [
        "completeness/process.stop/proc.max_stopped",
        "completeness/process.stop/accepts",
        "plan/completeness",
        "plan/first_failure",
        "plan/naming/proc.max_stopped",
    ];
    assert_eq!(f, refused, "{f:?}");
    // the obligations state the invariant through a translation of their
    // own (`policy_prover::lang`), not through the interpreter: reading
    // `<=` as `<` is incomplete wherever two workers are stopped, and
    // reading 2 as 3 lets the third stop through.
    let strict = Misreads(expr::parse("count(w, !w.running) < 2", N_WORKERS).unwrap());
    let f = custom_failures(&p, &strict);
    assert!(f.iter().any(|n| n == "completeness/memory.grant/proc.max_stopped"), "{f:?}");
    assert!(f.iter().all(|n| n.starts_with("completeness/") || n.starts_with("plan/")), "{f:?}");
    assert!(!f.iter().any(|n| n.starts_with("plan/soundness")), "{f:?}");
    let loose = Misreads(expr::parse("count(w, !w.running) <= 3", N_WORKERS).unwrap());
    let f = custom_failures(&p, &loose);
    assert!(f.iter().any(|n| n == "soundness/process.stop/proc.max_stopped"), "{f:?}");
    assert!(f.iter().any(|n| n == "plan/soundness/proc.max_stopped"), "{f:?}");
    assert!(!f.iter().any(|n| n.starts_with("completeness/")), "{f:?}");
}

#[test]
fn a_claim_the_rules_do_not_keep_is_refuted_with_a_replayable_counterexample() {
    let p = with(r#""proc.max_stopped" = { expr = "count(w, !w.running) <= 2", enforce = false }"#);
    let r = report(&p);
    let bad: Vec<_> = r.obligations.iter().filter(|o| o.result != Outcome::Proved).collect();
    let names: Vec<String> = bad.iter().map(|o| o.spec.name()).collect();
    assert_eq!(names, ["claim/process.stop/proc.max_stopped"], "only stopping can raise the count");
    let c = bad[0].counterexample.as_ref().expect("counterexample");
    assert!(!c.needs_restart_marks);
    // the real verifier approves it and the state after breaks the claim.
    assert!(c.replay.approved, "{:?}", c.replay);
    assert_eq!(c.replay.custom_after_breaks, ["proc.max_stopped"]);
    assert_eq!(c.state.workers.iter().filter(|w| !w.running).count(), 2);
    // and a claim the rules do keep is proved: the pages never exceed the quota.
    let p = with(r#""mem.each_fits" = { expr = "all(w, w.pages <= quota_pages)", enforce = false }"#);
    let r = report(&p);
    assert!(failed(&r).is_empty(), "{:?}", failed(&r));
}

#[test]
fn an_invariant_that_forbids_an_op_makes_it_vacuous() {
    let p = with(r#""proc.all_running" = "all(w, w.running)""#);
    let r = report(&p);
    let failed = failed(&r);
    // no worker can be stopped, so none can be started or have its memory reclaimed.
    assert_eq!(failed, ["vacuity/process.start", "vacuity/process.stop", "vacuity/memory.reclaim"]);
}

#[test]
fn compare_finds_a_difference_both_ways_and_equivalence() {
    let default = DEFAULT_POLICY;
    let strict = json::parse_policy(MAX_STOPPED).expect("example policy");
    let c = compare(&strict, &default, &KEY, 10_000);
    assert_eq!(c.a_implies_b, Some(true), "{:?}", c.differences);
    assert_eq!(c.b_implies_a, Some(false));
    assert_eq!(c.equivalent(), Some(false));
    assert_eq!(c.differences.len(), 1, "{:?}", c.differences);
    let d = &c.differences[0];
    assert_eq!((d.accepted_by, d.what.as_str()), ('b', "process.stop"));
    // replay: the default approves it, the strict policy rejects it naming the invariant.
    assert!(verify::verify(&default, &d.example.state, &d.example.plan, &KEY).approved);
    let v = verify::verify(&strict, &d.example.state, &d.example.plan, &KEY);
    assert!(!v.approved);
    assert_eq!(d.other.custom_violations, ["proc.max_stopped"]);
    // the state is one both policies admit.
    assert!(verify::state_violations(&strict, &d.example.state).is_empty());

    let same = compare(&default, &default, &KEY, 10_000);
    assert_eq!(same.equivalent(), Some(true));
    assert!(same.differences.is_empty());

    // a lower quota: the default accepts a grant the small one rejects, and a
    // session downgraded to observer is a difference on its own.
    let small = json::parse_policy(
        &DEFAULT.replace("quota_pages = 256", "quota_pages = 64").replace(
            "[sessions.ops]\ntier = \"operator\"",
            "[sessions.ops]\ntier = \"observer\"",
        ),
    )
    .expect("small policy");
    let c = compare(&default, &small, &KEY, 10_000);
    assert_eq!(c.a_implies_b, Some(false));
    assert_eq!(c.b_implies_a, Some(true), "{:?}", c.differences);
    let whats: Vec<&str> = c.differences.iter().map(|d| d.what.as_str()).collect();
    assert!(whats.contains(&"memory.grant") && whats.contains(&"session ops"), "{whats:?}");
}

#[test]
fn query_answers_with_a_witness_or_no() {
    let p = DEFAULT_POLICY;
    let e = expr::parse("worker1.pages > 200", N_WORKERS).expect("parses");
    let a = query(&p, &e, None, &KEY, 10_000);
    assert_eq!(a.possible, Some(true));
    let (op, w) = a.witness.expect("witness");
    assert!(w.replay.approved);
    let v = verify::verify(&p, &w.state, &w.plan, &KEY);
    assert!(v.approved && policy_prover::compare::holds_in(&p, &v.state, &e), "{op}: {v:?}");
    // above the quota: impossible.
    let e = expr::parse("worker1.pages > quota_pages", N_WORKERS).expect("parses");
    assert_eq!(query(&p, &e, None, &KEY, 10_000).possible, Some(false));
    // restricted to one op: no timer set can break its bounds, but one can be set.
    let e = expr::parse("worker2.timer && worker2.timer_period_us < timer_min_us", N_WORKERS).expect("parses");
    assert_eq!(query(&p, &e, Some(ActionKind::TimerSetPeriodic), &KEY, 10_000).possible, Some(false));
    let e = expr::parse("worker2.timer", N_WORKERS).expect("parses");
    let a = query(&p, &e, Some(ActionKind::TimerSetPeriodic), &KEY, 10_000);
    assert_eq!(a.witness.map(|(op, _)| op).as_deref(), Some("timer.set_periodic"));
    // under the strict policy, three stopped workers are out of reach.
    let strict = json::parse_policy(MAX_STOPPED).expect("example policy");
    let e = expr::parse("count(w, !w.running) >= 3", N_WORKERS).expect("parses");
    assert_eq!(query(&strict, &e, None, &KEY, 10_000).possible, Some(false));
    assert_eq!(query(&p, &e, None, &KEY, 10_000).possible, Some(true));
}

#[test]
fn the_interpreter_and_the_definitions_translation_agree_on_every_form() {
    use policy_prover::symbolic::sym_state;
    use z3::{SatResult, Solver};
    let p = DEFAULT_POLICY;
    // every operator, quantifier, field and global at least once.
    let texts = [
        "count(w, !w.running) <= 2",
        "all(w, w.pages <= quota_pages) && any(w, w.running)",
        "sum(w, w.pages) + 3 * workers - pool_pages < 7 || worker1.priority > priority_ceiling",
        "all(w, w.timer => w.timer_period_us >= timer_min_us && w.timer_period_us <= timer_max_us)",
        "all(v, all(w, v.budget_us * 1000 != w.period_us - budget_min_us)) => period_max_us == cpu_util_permille",
        "count(w, any(v, v.pages > w.pages)) >= 1 || sum(w, w.timer_period_us) == page_size",
        "not (worker3.timer and worker0.budget_us > worker0.period_us) or false or true",
    ];
    for t in texts {
        let e = expr::parse(t, N_WORKERS).unwrap();
        let d = Z3::new();
        let s = sym_state("s.", p.initial.pool_pages);
        let checked = policy_verifier::custom::eval_bool(&d, &p.limits, &s.model, &e);
        let defined = policy_prover::lang::holds(&p.limits, &s.model, &e);
        let solver = Solver::new();
        solver.assert(&s.domain);
        solver.assert(checked.eq(&defined).not());
        assert_eq!(solver.check(), SatResult::Unsat, "`{t}`: {:?}", solver.get_model());
    }
}
