//! property tests of the verifier on random plans and reachable states
//! (named like cedar's: `*_pbt` properties, `*_roundtrip` encodings).
#![cfg(feature = "std")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use policy_verifier::domain::Concrete;
use policy_verifier::model::Model;
use policy_verifier::rules;
use policy_verifier::verify::{self, verify};
use policy_verifier::{confirm, json, wire};
use policy_verifier::{Action, Invariant, Plan, State, Worker, DEFAULT_POLICY};
use proptest::prelude::*;

mod common;
use common::action;

const KEY: [u8; 32] = [7; 32];

fn plan() -> impl Strategy<Value = Plan> {
    (
        prop::collection::vec(action(), 0..=16),
        prop_oneof![Just("viewer"), Just("ops"), Just("admin"), Just("root")],
        prop_oneof![4 => 0u64..20, 1 => Just(u64::MAX - 1), 1 => Just(u64::MAX)],
        any::<bool>(),
    )
        .prop_map(|(actions, session, request_id, sign)| {
            let p = Plan {
                version: 1,
                request_id,
                session: session.try_into().unwrap(),
                reason: "property".try_into().unwrap(),
                actions: actions.into_iter().collect(),
                confirmation: None,
            };
            if sign {
                confirm::sign(&p, &KEY).unwrap()
            } else {
                p
            }
        })
}

fn holds(s: &State) -> Vec<Invariant> {
    verify::state_violations(&DEFAULT_POLICY, s)
        .iter()
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// from the initial state, every approved plan leads to a state that
    /// satisfies every state invariant; a rejected plan changes nothing the
    /// caller keeps, and names a non-empty set.
    #[test]
    fn approved_plans_keep_invariants_pbt(plans in prop::collection::vec(plan(), 1..6)) {
        let mut s = DEFAULT_POLICY.initial;
        for (n, mut p) in plans.into_iter().enumerate() {
            if n % 2 == 0 { p.request_id = s.last_request_id + 1; p = if p.confirmation.is_some() { confirm::sign(&p, &KEY).unwrap() } else { p }; }
            let v = verify(&DEFAULT_POLICY, &s, &p, &KEY);
            prop_assert_eq!(v, verify(&DEFAULT_POLICY, &s, &p, &KEY), "deterministic");
            if v.approved {
                prop_assert!(holds(&v.state).is_empty(), "{:?} after {:?}", holds(&v.state), p);
                prop_assert_eq!(v.state.last_request_id, p.request_id);
                // the guard moves by at most the window: ids are never exhausted
                let step = p.request_id - s.last_request_id;
                prop_assert!((1..=DEFAULT_POLICY.limits.replay_window).contains(&step), "step {}", step);
                // the state after equals applying the actions one by one.
                let mut t = s;
                for a in &p.actions { t = verify::apply(&t, a); }
                t.last_request_id = p.request_id;
                prop_assert_eq!(t, v.state);
                s = v.state;
            } else {
                prop_assert!(!v.plan_violations.is_empty() || v.failed.is_some_and(|(_, set)| !set.is_empty()));
            }
        }
    }

    /// a check fails exactly when its invariant breaks (the concrete face of
    /// the completeness proofs): for every action in a reachable state, each
    /// named state invariant is broken after the step and each unnamed one holds.
    #[test]
    fn named_state_invariants_are_exact_pbt(prefix in prop::collection::vec(action(), 0..10), a in action()) {
        let mut s = DEFAULT_POLICY.initial;
        for x in &prefix {
            let m = Model::from_state(&Concrete, &s);
            if verify::action_violations(&DEFAULT_POLICY, &m, x).is_empty() { s = verify::apply(&s, x); }
        }
        let m = Model::from_state(&Concrete, &s);
        let named = verify::action_violations(&DEFAULT_POLICY, &m, &a);
        let after = Model::from_state(&Concrete, &verify::apply(&s, &a));
        // apply goes through u64; compare in the model domain to avoid saturation.
        let after_model = rules::step(&Concrete, &m, &verify::lower(&a));
        for inv in Invariant::STATE {
            let broken = !policy_verifier::definitions::holds(&Concrete, &DEFAULT_POLICY.limits, &after_model, inv);
            prop_assert_eq!(named.contains(inv), broken, "{} for {:?} in {:?}", inv, a, s);
        }
        let _ = after;
    }

    /// if a plan fails at action i (and nothing plan-level), its first i
    /// actions alone are approved: the verdict names the first failure.
    #[test]
    fn first_failing_action_is_first_pbt(p in plan()) {
        let mut p = p;
        p.session = "admin".try_into().unwrap();
        p.request_id = 1;
        let p = confirm::sign(&p, &KEY).unwrap();
        let v = verify(&DEFAULT_POLICY, &DEFAULT_POLICY.initial, &p, &KEY);
        if let Some((i, _)) = v.failed {
            if i > 0 {
                let mut q = p.clone();
                q.actions.truncate(i);
                let q = confirm::sign(&q, &KEY).unwrap();
                prop_assert!(verify(&DEFAULT_POLICY, &DEFAULT_POLICY.initial, &q, &KEY).approved);
            }
        }
    }

    /// postcard encoding round-trips and stays within the wire cap.
    #[test]
    fn wire_roundtrip(p in plan()) {
        let mut buf = [0u8; wire::MAX_PLAN_BYTES];
        let bytes = wire::encode(&p, &mut buf).unwrap().to_vec();
        prop_assert_eq!(wire::decode(&bytes).unwrap(), p);
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            prop_assert!(wire::decode(&bytes[..cut]).is_err());
        }
    }

    /// the json form round-trips through the host parser.
    #[test]
    fn json_roundtrip(p in plan()) {
        prop_assume!(!p.actions.is_empty());
        let text = json::plan_to_json(&p).to_string();
        prop_assert_eq!(json::parse_plan(text.as_bytes()).unwrap(), p);
    }

    /// arbitrary bytes never panic the decoders.
    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1200)) {
        let _ = wire::decode(&bytes);
        let _ = json::parse_plan(&bytes);
        let _ = json::parse_state(&bytes, &DEFAULT_POLICY);
    }
}

#[test]
fn a_token_binds_every_field() {
    let p = Plan {
        version: 1,
        request_id: 9,
        session: "admin".try_into().unwrap(),
        reason: "r".try_into().unwrap(),
        actions: [Action::ProcessStop { pd: Worker::W1 }]
            .into_iter()
            .collect(),
        confirmation: None,
    };
    let signed = confirm::sign(&p, &KEY).unwrap();
    assert!(confirm::is_valid(&signed, &KEY));
    assert!(!confirm::is_valid(&signed, &[8; 32]));
    let mut other = signed.clone();
    other.reason = "s".try_into().unwrap();
    assert!(!confirm::is_valid(&other, &KEY));
    let mut other = signed.clone();
    other.actions[0] = Action::ProcessStop { pd: Worker::W2 };
    assert!(!confirm::is_valid(&other, &KEY));
    assert!(!confirm::is_valid(&p, &KEY), "no token is not valid");
}

#[test]
fn default_policy_is_the_policy_file() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../system/policy.toml"
    ))
    .unwrap();
    assert_eq!(json::parse_policy(&text).unwrap(), DEFAULT_POLICY);
    assert!(holds(&DEFAULT_POLICY.initial).is_empty());
}

#[test]
fn every_name_of_design_md_exists_once() {
    let names: Vec<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
    let want = [
        "mem.quota",
        "mem.pool",
        "mem.reclaim_bounds",
        "mem.reclaim_stopped",
        "cpu.util",
        "cpu.budget_bounds",
        "prio.ceiling",
        "timer.bounds",
        "proc.state",
        "proc.restart_rate",
        "plan.size",
        "plan.replay",
        "auth.tier",
        "auth.confirm",
        "auth.mac",
    ];
    assert_eq!(names, want);
    // docs/invariants.md's table names every one
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/invariants.md")).unwrap();
    for n in &want {
        assert!(doc.contains(&format!("| `{n}` |")), "docs/invariants.md lacks `{n}`");
    }
    for i in Invariant::ALL {
        assert_eq!(Invariant::from_name(i.name()), Some(*i));
        assert!(!i.meaning().is_empty() && i.meaning() == i.meaning().trim());
    }
}

#[test]
fn schema_is_generated_from_the_plan_types() {
    let schema = json::plan_schema().to_string();
    for k in policy_verifier::ActionKind::ALL {
        assert!(schema.contains(k.name()), "schema lacks {}", k.name());
    }
    for w in Worker::ALL {
        assert!(schema.contains(w.name()));
    }
    assert!(schema.contains("\"additionalProperties\":false"));
}
