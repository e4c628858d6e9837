//! the proofs can fail: deliberately broken copies of the checks (handed to
//! the prover as `Rules`, no source edited) fail exactly the obligations they
//! should, with counterexamples that replay concretely.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]

use policy_prover::differential;
use policy_prover::spec::DomainOp;
use policy_prover::{Counterexample, Kind, Outcome, Prover, Report, Rules};
use policy_verifier::domain::{Concrete, Domain};
use policy_verifier::json;
use policy_verifier::model::Model;
use policy_verifier::plan::{ActionKind, OpTerm};
use policy_verifier::rules;
use policy_verifier::verify::{self, lower};
use policy_verifier::definitions::Definitional;
use policy_verifier::{ActionOf, Invariant, Limits, Tier, DEFAULT_POLICY};

const KEY: [u8; 32] = [7; 32];

/// z3 runs several contexts in parallel threads far slower than one after
/// the other (a shared allocator lock); the proof runs take turns.
static Z3_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn report(rules: &dyn Rules<policy_prover::Z3>) -> Report {
    let _turn = Z3_TURN.lock().unwrap_or_else(|e| e.into_inner());
    // a broken rule's counterexample may need the nonlinear definitions,
    // which take longer than a proof: a generous timeout keeps the
    // expected failures from turning `unknown` on a loaded machine.
    Report::run(&Prover::new(&DEFAULT_POLICY, rules, &KEY).timeout_ms(60_000))
}

/// the verifier's checks with one check's limit moved: `mem.quota` with `<`
/// for `<=` (quota - 1), or `cpu.util` off by one (limit + 1).
struct Mutant {
    inv: Invariant,
    tweak: fn(&mut Limits),
}

impl<D: Domain> Rules<D> for Mutant {
    fn check(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>, inv: Invariant) -> D::Bool {
        if inv == self.inv {
            let mut l = *lim;
            (self.tweak)(&mut l);
            rules::check(d, &l, m, a, inv)
        } else {
            rules::check(d, lim, m, a, inv)
        }
    }
}

const QUOTA_STRICT: Mutant = Mutant { inv: Invariant::MemQuota, tweak: |l| l.quota_pages -= 1 };
const UTIL_PLUS_ONE: Mutant = Mutant { inv: Invariant::CpuUtil, tweak: |l| l.cpu_util_permille += 1 };

fn failed(report: &Report) -> Vec<String> {
    report.obligations.iter().filter(|o| o.result != Outcome::Proved).map(|o| o.spec.name()).collect()
}

fn cex<'r>(report: &'r Report, name: &str) -> &'r Counterexample {
    let o = report.obligations.iter().find(|o| o.spec.name() == name).unwrap();
    assert_eq!(o.result, Outcome::Failed, "{name}");
    o.counterexample.as_ref().unwrap_or_else(|| panic!("{name} has a counterexample"))
}

/// the counterexample survives the json files `llmsh check` reads.
fn roundtrip(c: &Counterexample, name: &str) {
    let dir = std::env::temp_dir().join(format!("llm-os-prover-{}-{}", std::process::id(), name.replace('/', "_")));
    let w = c.write(&dir, name).unwrap();
    let state = json::parse_state(&std::fs::read(&w.state).unwrap(), &DEFAULT_POLICY).unwrap();
    let plan = json::parse_plan(&std::fs::read(&w.plan).unwrap()).unwrap();
    assert_eq!(state, c.state);
    assert_eq!(plan, c.plan);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_strict_quota_check_is_incomplete() {
    let report = report(&QUOTA_STRICT);
    // stricter is still sound; it rejects a grant up to exactly the quota.
    assert_eq!(
        failed(&report),
        [
            "completeness/memory.grant/mem.quota",
            "completeness/memory.grant/accepts",
            "plan/completeness",
            "plan/naming/mem.quota",
            "plan/first_failure",
        ]
    );
    for name in ["completeness/memory.grant/mem.quota", "completeness/memory.grant/accepts"] {
        let c = cex(&report, name);
        roundtrip(c, name);
        let a = c.plan.actions[0];
        let m = Model::from_state(&Concrete, &c.state);
        // concretely: the mutant rejects for mem.quota, yet the state after keeps it...
        assert!(!QUOTA_STRICT.check(&Concrete, &DEFAULT_POLICY.limits, &m, &lower(&a), Invariant::MemQuota));
        assert!(!verify::state_violations(&DEFAULT_POLICY, &verify::apply(&c.state, &a)).contains(Invariant::MemQuota));
        // ...and the real verifier approves it.
        assert!(c.replay.approved, "{name}: {:?}", c.replay);
        assert!(c.replay.violations.is_empty());
        assert!(c.replay.after_breaks.is_empty());
    }
}

#[test]
fn an_off_by_one_util_check_is_unsound() {
    let report = report(&UTIL_PLUS_ONE);
    // every op that adds utilisation; completeness still holds (laxer).
    assert_eq!(
        failed(&report),
        [
            "soundness/process.start/cpu.util",
            "soundness/process.restart/cpu.util",
            "soundness/process.set_budget/cpu.util",
            "plan/soundness/cpu.util",
            "plan/naming/cpu.util",
            "plan/first_failure",
            "plan/invariant",
        ]
    );
    for o in report.obligations.iter().filter(|o| o.result == Outcome::Failed && o.spec.kind != Kind::Plan) {
        assert_eq!(o.spec.kind, Kind::Soundness);
        let name = o.spec.name();
        let c = o.counterexample.as_ref().unwrap_or_else(|| panic!("{name}: no counterexample ({:?})", o.reason));
        roundtrip(c, &name);
        assert!(!c.needs_restart_marks);
        let a = c.plan.actions[0];
        let m = Model::from_state(&Concrete, &c.state);
        // concretely: the mutant accepts, and the state after breaks cpu.util
        // at exactly limit + 1...
        assert!(UTIL_PLUS_ONE.accepts(&Concrete, &DEFAULT_POLICY.limits, &m, &lower(&a)), "{name}");
        let after = verify::apply(&c.state, &a);
        assert!(verify::state_violations(&DEFAULT_POLICY, &after).contains(Invariant::CpuUtil), "{name}");
        assert_eq!(json::utilisation(&after), u128::from(DEFAULT_POLICY.limits.cpu_util_permille) + 1);
        // ...which the real verifier rejects, naming cpu.util.
        assert!(!c.replay.approved);
        assert_eq!(c.replay.violations, [Invariant::CpuUtil]);
        assert_eq!(c.replay.after_breaks, [Invariant::CpuUtil]);
    }
}

#[test]
fn case_by_case_the_plan_obligations_fail_as_a_whole_and_pass_on_the_real_rules() {
    // `whole_rlimit(1)` leaves every query over a whole action open, so each
    // loop obligation is decided by its cases alone (kind, worker): the path
    // 16 workers take. it must reach the same verdicts as the whole query.
    let _turn = Z3_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let plan: Vec<_> = policy_prover::all_specs().into_iter().filter(|s| s.kind == Kind::Plan).collect();
    let run = |rules: &dyn Rules<policy_prover::Z3>, rlimit| {
        let p = Prover::new(&DEFAULT_POLICY, rules, &KEY).timeout_ms(60_000).whole_rlimit(rlimit);
        plan.iter().map(|s| p.run(s)).filter(|o| o.result != Outcome::Proved).map(|o| o.spec.name()).collect::<Vec<_>>()
    };
    assert_eq!(run(&policy_prover::Verifier, 1), Vec::<String>::new());
    let by_cases = run(&UTIL_PLUS_ONE, 1);
    assert_eq!(by_cases, ["plan/soundness/cpu.util", "plan/naming/cpu.util", "plan/first_failure", "plan/invariant"]);
    assert_eq!(by_cases, run(&UTIL_PLUS_ONE, policy_prover::WHOLE_RLIMIT));
    // a bug on the last worker alone: the cases reach every worker.
    assert!(run(&LastWorkerUnchecked, 1).contains(&"plan/soundness/cpu.util".to_string()));
}

/// the verifier's checks, except that starting the last worker skips
/// `cpu.util`.
struct LastWorkerUnchecked;

impl<D: Domain> Rules<D> for LastWorkerUnchecked {
    fn check(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>, inv: Invariant) -> D::Bool {
        let real = rules::check(d, lim, m, a, inv);
        match (inv, a) {
            (Invariant::CpuUtil, ActionOf::ProcessStart { pd }) => {
                d.or(&d.eq(pd, &d.int(policy_verifier::plan::N_WORKERS as u64 - 1)), &real)
            }
            _ => real,
        }
    }
}

#[test]
fn the_real_rules_replay_as_the_proofs_say() {
    // a counterexample's replay with the real verifier is consistent with the
    // real rules over Concrete (the replay path itself is not vacuous).
    let report = report(&UTIL_PLUS_ONE);
    let c = cex(&report, "soundness/process.set_budget/cpu.util");
    let m = Model::from_state(&Concrete, &c.state);
    let a = lower(&c.plan.actions[0]);
    assert!(!rules::accepts(&Concrete, &DEFAULT_POLICY.limits, &m, &a));
    assert!(!rules::check(&Concrete, &DEFAULT_POLICY.limits, &m, &a, Invariant::CpuUtil));
}

/// one bug in the verifier's parts, as the audit planted them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Bug {
    /// `MAX_ACTIONS` one too large.
    MaxActionsPlusOne,
    /// `MAX_ACTIONS` one too small.
    MaxActionsMinusOne,
    /// `memory.grant` allowed to observers.
    GrantForObservers,
    /// `<=` for `<` in the replay check: the last id is accepted again.
    ReplayLe,
    /// the replay window dropped: any higher id passes, and one plan with
    /// id `u64::MAX` locks every later plan out.
    NoReplayWindow,
    /// `process.restart` not destructive.
    RestartNotDestructive,
    /// the `mem.reclaim_stopped` check skipped.
    NoReclaimStopped,
    /// the restart mark never set.
    NoRestartMark,
    /// the quota check filed under `mem.reclaim_bounds`.
    QuotaFiledAsReclaimBounds,
    /// the utilisation of a new budget rounded down.
    UtilRoundsDown,
}

impl<D: Domain> Rules<D> for Bug {
    fn check(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>, inv: Invariant) -> D::Bool {
        match (self, inv, a) {
            (Bug::NoReclaimStopped, Invariant::MemReclaimStopped, _) => d.bool(true),
            (Bug::QuotaFiledAsReclaimBounds, Invariant::MemQuota, ActionOf::MemoryGrant { .. }) => d.bool(true),
            (Bug::QuotaFiledAsReclaimBounds, Invariant::MemReclaimBounds, ActionOf::MemoryGrant { .. }) => {
                rules::check(d, lim, m, a, Invariant::MemQuota)
            }
            (Bug::UtilRoundsDown, Invariant::CpuUtil, ActionOf::ProcessSetBudget { pd, budget_us, period_us }) => {
                // floor(1000·b / p) = ceil((1000·b + 1) / p) - 1, in place of `util`.
                let p = d.ite(&d.eq(period_us, &d.int(0)), &d.int(1), period_us);
                let work = d.add(&d.mul(budget_us, &d.int(1000)), &d.int(1));
                let mine = d.sub_sat(&d.div_ceil(&work, &p), &d.int(1));
                let mut others = d.int(0);
                let mut running = d.bool(false);
                for (i, w) in m.workers.iter().enumerate() {
                    let me = d.eq(pd, &d.int(i as u64));
                    let u = d.ite(&w.running, &rules::util(d, &w.budget_us, &w.period_us), &d.int(0));
                    others = d.add(&others, &d.ite(&me, &d.int(0), &u));
                    running = d.ite_bool(&me, &w.running, &running);
                }
                d.implies(&running, &d.le(&d.add(&others, &mine), &d.int(lim.cpu_util_permille)))
            }
            _ => rules::check(d, lim, m, a, inv),
        }
    }
    fn step(&self, d: &D, m: &Model<D>, a: &OpTerm<D>) -> Model<D> {
        let mut out = rules::step(d, m, a);
        if *self == Bug::NoRestartMark {
            for (o, w) in out.workers.iter_mut().zip(m.workers.iter()) {
                o.restarted = w.restarted.clone();
            }
        }
        out
    }
    fn max_actions(&self) -> u64 {
        match self {
            Bug::MaxActionsPlusOne => policy_verifier::MAX_ACTIONS as u64 + 1,
            Bug::MaxActionsMinusOne => policy_verifier::MAX_ACTIONS as u64 - 1,
            _ => policy_verifier::MAX_ACTIONS as u64,
        }
    }
    fn tier(&self, kind: ActionKind) -> Tier {
        match (self, kind) {
            (Bug::GrantForObservers, ActionKind::MemoryGrant) => Tier::Observer,
            _ => kind.tier(),
        }
    }
    fn destructive(&self, kind: ActionKind) -> bool {
        match (self, kind) {
            (Bug::RestartNotDestructive, ActionKind::ProcessRestart) => false,
            _ => kind.destructive(),
        }
    }
    fn fresh(&self, d: &D, lim: &Limits, last: &D::Int, request_id: &D::Int) -> D::Bool {
        let within = d.le(request_id, &d.add(last, &d.int(lim.replay_window)));
        match self {
            Bug::ReplayLe => d.and(&d.le(last, request_id), &within),
            Bug::NoReplayWindow => d.lt(last, request_id),
            _ => rules::fresh_request(d, lim, last, request_id),
        }
    }
}

#[test]
fn every_planted_bug_fails_a_proof() {
    // each bug, alone, fails at least the obligations listed (and never
    // passes everything); the proofs alone catch it, no test plan needed.
    let expect: [(Bug, &[&str]); 10] = [
        (Bug::MaxActionsPlusOne, &["plan/soundness/plan.size", "plan/naming/plan.size"]),
        (Bug::MaxActionsMinusOne, &["plan/naming/plan.size"]),
        (Bug::GrantForObservers, &["plan/soundness/auth.tier", "plan/naming/auth.tier"]),
        (Bug::ReplayLe, &["plan/soundness/plan.replay", "plan/naming/plan.replay"]),
        (Bug::NoReplayWindow, &["plan/soundness/plan.replay", "plan/naming/plan.replay"]),
        (Bug::RestartNotDestructive, &["plan/soundness/auth.confirm", "plan/confirmation"]),
        (Bug::NoReclaimStopped, &["precondition/memory.reclaim/mem.reclaim_stopped"]),
        (Bug::NoRestartMark, &["plan/state", "plan/invariant"]),
        (
            Bug::QuotaFiledAsReclaimBounds,
            // still sound (the check runs, under the wrong name); the names are wrong.
            &["precondition/memory.grant/mem.reclaim_bounds", "plan/naming/mem.quota", "plan/naming/mem.reclaim_bounds"],
        ),
        (Bug::UtilRoundsDown, &["soundness/process.set_budget/cpu.util"]),
    ];
    for (bug, names) in expect {
        let report = report(&bug);
        let f = failed(&report);
        for n in names {
            assert!(f.iter().any(|x| x == n), "{bug:?}: {n} not among the failed {f:?}");
        }
    }
}

/// `Concrete` with an addition that wraps at u64, the audit's domain bug.
struct WrappingAdd;

impl Domain for WrappingAdd {
    type Int = u128;
    type Bool = bool;
    fn int(&self, v: u64) -> u128 {
        Concrete.int(v)
    }
    fn bool(&self, v: bool) -> bool {
        v
    }
    fn add(&self, a: &u128, b: &u128) -> u128 {
        u128::from((*a as u64).wrapping_add(*b as u64))
    }
    fn sub_sat(&self, a: &u128, b: &u128) -> u128 {
        Concrete.sub_sat(a, b)
    }
    fn mul(&self, a: &u128, b: &u128) -> u128 {
        Concrete.mul(a, b)
    }
    fn div_ceil(&self, a: &u128, b: &u128) -> u128 {
        Concrete.div_ceil(a, b)
    }
    fn le(&self, a: &u128, b: &u128) -> bool {
        a <= b
    }
    fn eq(&self, a: &u128, b: &u128) -> bool {
        a == b
    }
    fn and(&self, a: &bool, b: &bool) -> bool {
        *a && *b
    }
    fn or(&self, a: &bool, b: &bool) -> bool {
        *a || *b
    }
    fn not(&self, a: &bool) -> bool {
        !*a
    }
    fn ite(&self, c: &bool, a: &u128, b: &u128) -> u128 {
        if *c { *a } else { *b }
    }
    fn ite_bool(&self, c: &bool, a: &bool, b: &bool) -> bool {
        if *c { *a } else { *b }
    }
}

impl Definitional for WrappingAdd {
    fn utilisation(&self, budget: &u128, period: &u128) -> u128 {
        Concrete.utilisation(budget, period)
    }
}

#[test]
fn a_wrapping_add_fails_the_domain_obligation() {
    let m = differential::domain_agrees(&WrappingAdd, DomainOp::Add).unwrap_err();
    assert!(m.what.starts_with("add") || m.what.starts_with("sum"), "{m:?}");
    // the real domain passes the same obligation.
    differential::domain_agrees(&Concrete, DomainOp::Add).unwrap();
}

/// timings and files for a look by hand: `cargo test -p policy-prover --test
/// mutants -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing() {
    for m in [&QUOTA_STRICT, &UTIL_PLUS_ONE] {
        let report = report(m);
        let mut slow: Vec<_> = report.obligations.iter().map(|o| (o.ms as u64, o.spec.name())).collect();
        slow.sort_by_key(|s| std::cmp::Reverse(s.0));
        eprintln!("{:.0} ms {:?}", report.total_ms, &slow[..6]);
        // the files, for a manual `llmsh check --state … …`.
        let dir = std::env::temp_dir().join("llm-os-mutant-counterexamples");
        for o in &report.obligations {
            if let Some(c) = &o.counterexample {
                let w = c.write(&dir, &o.spec.name()).unwrap();
                eprintln!("{}: {} {} (expect: {})", o.spec.name(), w.state.display(), w.plan.display(), c.expect);
            }
        }
    }
}
