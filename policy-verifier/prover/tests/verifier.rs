//! the verifier PD's own rules: every obligation is proved, and there are
//! as many as the tables say. the two `..._are_proved` tests are `llmsh
//! prove` and `llmsh prove --policy tests/policies/max-stopped.toml`: the
//! proof suite the mutation run of docs/security.md uses alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]

use policy_prover::{all_specs, Kind, Outcome, Prover, Report, Verifier};
use policy_verifier::plan::ActionKind;
use policy_verifier::{json, Invariant, DEFAULT_POLICY};

const KEY: [u8; 32] = [7; 32];

/// the default policy with one invariant of the policy file's language.
const MAX_STOPPED: &str = include_str!("../../../tests/policies/max-stopped.toml");

#[test]
fn every_obligation_is_enumerated_from_the_tables() {
    let specs = all_specs();
    let kinds = ActionKind::ALL.len();
    let state = Invariant::STATE.len();
    // soundness and completeness per kind × state invariant, one acceptance
    // completeness, one definition per precondition and one non-vacuity per
    // kind; per name a plan soundness and a plan naming obligation, plan
    // completeness, first failure, state, invariant and confirmation; one per
    // domain operation.
    let pre = Invariant::PRECONDITIONS.len();
    let names = Invariant::ALL.len();
    let domain = policy_prover::spec::DomainOp::ALL.len();
    assert_eq!(specs.len(), kinds * (2 * state + 2 + pre) + 2 * names + 5 + domain);
    let mut all: Vec<String> = specs.iter().map(|s| s.name()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), specs.len(), "obligation names are unique");
    assert!(all.contains(&"soundness/memory.grant/mem.quota".to_string()));
    assert!(all.contains(&"completeness/process.set_budget/cpu.util".to_string()));
    assert!(all.contains(&"vacuity/process.start".to_string()));
    for n in ["precondition/memory.reclaim/mem.reclaim_stopped", "plan/soundness/plan.replay", "plan/naming/auth.tier", "plan/first_failure", "plan/completeness", "plan/state", "plan/invariant", "plan/confirmation", "domain/add"] {
        assert!(all.contains(&n.to_string()), "{n}");
    }
}

#[test]
fn the_verifier_rules_are_proved() {
    let prover = Prover::new(&DEFAULT_POLICY, &Verifier, &KEY);
    let report = Report::run(&prover);
    let mut slow: Vec<_> = report.obligations.iter().map(|o| (o.ms, o.spec.name())).collect();
    slow.sort_by(|a, b| b.0.total_cmp(&a.0));
    eprintln!("{} obligations in {:.0} ms; slowest: {:?}", report.obligations.len(), report.total_ms, &slow[..5]);
    // exactly what `llmsh prove` exits 0 on, and nothing else: this test is
    // the proof suite of the mutation run (docs/security.md).
    for o in &report.obligations {
        assert_eq!(o.result, Outcome::Proved, "{} ({:?})", o.spec.name(), o.reason);
    }
    assert_eq!(report.failed(), 0);
}

#[test]
fn the_example_policy_file_invariant_is_proved() {
    // `llmsh prove --policy tests/policies/max-stopped.toml` exits 0.
    let policy = json::parse_policy(MAX_STOPPED).expect("example policy");
    let report = Report::run(&Prover::new(&policy, &Verifier, &KEY));
    for o in &report.obligations {
        assert_eq!(o.result, Outcome::Proved, "{} ({:?})", o.spec.name(), o.reason);
    }
    assert_eq!(report.failed(), 0);
}

#[test]
fn vacuity_witnesses_replay_concretely() {
    let prover = Prover::new(&DEFAULT_POLICY, &Verifier, &KEY);
    for spec in policy_prover::specs_for(&DEFAULT_POLICY).iter().filter(|s| s.kind == Kind::Vacuity) {
        let o = prover.run(spec);
        assert_eq!(o.result, Outcome::Proved, "{}", spec.name());
        let w = o.witness.as_ref().expect("a proved vacuity obligation has a witness");
        let r = policy_prover::counterexample::replay(&DEFAULT_POLICY, &KEY, &DEFAULT_POLICY.initial, &w.plan);
        assert!(r.approved, "witness for {} is approved by the verifier: {r:?}", spec.name());
        assert_eq!(w.plan.actions.last().map(|a| a.kind()), spec.action);
    }
}
