//! the proofs can fail: deliberately broken copies of the checks (handed to
//! the prover as `Rules`, no source edited) fail exactly the obligations they
//! should, with counterexamples that replay concretely.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]

use policy_prover::{Counterexample, Kind, Outcome, Prover, Report, Rules};
use policy_verifier::domain::{Concrete, Domain};
use policy_verifier::json;
use policy_verifier::rules::{self, Model, OpTerm};
use policy_verifier::verify::{self, lower};
use policy_verifier::{Invariant, Limits, DEFAULT_POLICY};

const KEY: [u8; 32] = [7; 32];

/// z3 runs several contexts in parallel threads far slower than one after
/// the other (a shared allocator lock); the proof runs take turns.
static Z3_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn report(rules: &Mutant) -> Report {
    let _turn = Z3_TURN.lock().unwrap_or_else(|e| e.into_inner());
    Report::run(&Prover::new(&DEFAULT_POLICY, rules, &KEY))
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
    assert_eq!(failed(&report), ["completeness/memory.grant/mem.quota", "completeness/memory.grant/accepts"]);
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
        ]
    );
    for o in report.obligations.iter().filter(|o| o.result == Outcome::Failed) {
        assert_eq!(o.spec.kind, Kind::Soundness);
        let name = o.spec.name();
        let c = o.counterexample.as_ref().unwrap();
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
