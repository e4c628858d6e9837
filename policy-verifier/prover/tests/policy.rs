//! policy obligations and policy questions over the example policies:
//! a policy-file invariant proved, a claim refuted with a counterexample the
//! real verifier replays, `compare` in both directions, `query` with a
//! witness, and vacuity under a changed policy.

use policy_prover::{compare, query, Outcome, PolicyRules, Prover, Report};
use policy_verifier::expr;
use policy_verifier::{json, verify, ActionKind, Policy, DEFAULT_POLICY, N_WORKERS};

const KEY: [u8; 32] = [9; 32];
const DEFAULT: &str = include_str!("../../../system/policy.toml");
const MAX_STOPPED: &str = include_str!("../../../tests/policies/max-stopped.toml");

fn with(invariants: &str) -> Policy {
    json::parse_policy(&format!("{DEFAULT}\n[invariants]\n{invariants}\n")).expect("policy parses")
}

fn report(p: &Policy) -> Report {
    // a generous timeout: the test threads share a loaded machine with other z3 runs.
    Report::run(&Prover::new(p, &PolicyRules { policy: p }, &KEY).timeout_ms(120_000))
}

#[test]
fn a_policy_file_invariant_is_proved_with_every_builtin_obligation() {
    let p = json::parse_policy(MAX_STOPPED).expect("example policy");
    let r = report(&p);
    let failed: Vec<String> = r
        .obligations
        .iter()
        .filter(|o| o.result != Outcome::Proved)
        .map(|o| format!("{} {} {:.0} ms {:?}", o.spec.name(), o.result.name(), o.ms, o.reason))
        .chain(r.policy.iter().filter(|o| o.result != Outcome::Proved).map(|o| o.name.clone()))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    let names: Vec<&str> = r.policy.iter().map(|o| o.name.as_str()).collect();
    for n in ["consistency/mem.quota", "consistency/proc.max_stopped", "soundness/process.stop/proc.max_stopped"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    assert_eq!(r.policy.len(), 6 + 1 + ActionKind::ALL.len());
    // process.stop stays non-vacuous under the changed policy.
    assert!(r.obligations.iter().any(|o| o.spec.name() == "vacuity/process.stop" && o.result == Outcome::Proved));
}

#[test]
fn a_claim_the_rules_do_not_keep_is_refuted_with_a_replayable_counterexample() {
    let p = with(r#""proc.max_stopped" = { expr = "count(w, !w.running) <= 2", enforce = false }"#);
    let r = report(&p);
    let bad: Vec<_> = r.policy.iter().filter(|o| o.result != Outcome::Proved).collect();
    let names: Vec<&str> = bad.iter().map(|o| o.name.as_str()).collect();
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
    assert!(r.policy.iter().all(|o| o.result == Outcome::Proved), "{:?}", r.policy);
}

#[test]
fn an_invariant_that_forbids_an_op_makes_it_vacuous() {
    let p = with(r#""proc.all_running" = "all(w, w.running)""#);
    let r = report(&p);
    let failed: Vec<String> = r.obligations.iter().filter(|o| o.result != Outcome::Proved).map(|o| o.spec.name()).collect();
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
