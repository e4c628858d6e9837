//! exact verdicts against oracles that do not share code with the verifier
//! (mutation testing): the plan corpus with its expected names, an
//! independent reference checker written in plain integer arithmetic
//! (`verify_drt`), and accept/reject tables for the small pieces (the
//! domain's operations, names, sets, policy validation, wire bounds).
//! property tests that judge the verifier with its own `rules` cannot see a
//! mutant in code both sides share; these can.
#![cfg(feature = "std")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::path::Path;

use policy_verifier::domain::{Concrete, Domain};
use policy_verifier::model::Name;
use policy_verifier::verify::{self, state_violations, verify};
use policy_verifier::{
    confirm, json, policy_file, wire, Action, ActionKind, Invariant, InvariantSet, Plan, RuleClass,
    State, Tier, Worker, WorkerState, DEFAULT_POLICY, MAX_ACTIONS, N_WORKERS,
};
use proptest::prelude::*;

mod common;
use common::action;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn dev_key() -> [u8; 32] {
    let text = std::fs::read_to_string(root().join("system/dev-confirm.key")).unwrap();
    json::unhex32(text.trim()).unwrap()
}

/// a verdict, comparable across the verifier and the reference.
type Summary = (
    bool,
    BTreeSet<String>,
    Option<(usize, BTreeSet<String>)>,
    State,
);

/// one change to a policy file.
type Edit = Box<dyn Fn(&mut policy_file::PolicyFile)>;

fn names(s: InvariantSet) -> BTreeSet<String> {
    s.iter().map(|i| i.name().to_owned()).collect()
}

// ------------------------------------------------------------------ corpus

#[test]
fn plan_corpus_verdicts_are_exact() {
    let dir = root().join("tests/plans");
    let expect: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expect.json")).unwrap()).unwrap();
    let key = dev_key();
    let mut checked = 0;
    for (file, e) in expect.as_object().unwrap() {
        let text = std::fs::read(dir.join(file)).unwrap();
        let parsed = json::parse_plan(&text);
        if e["exit"] == 2 {
            let err = parsed.expect_err(file);
            if let Some(code) = e.get("error").and_then(|c| c.as_str()) {
                assert_eq!(err.code, code, "{file}: {err}");
            }
            checked += 1;
            continue;
        }
        let plan = parsed.unwrap_or_else(|err| panic!("{file}: {err}"));
        let state = match e.get("state").and_then(|s| s.as_str()) {
            Some(s) => {
                json::parse_state(&std::fs::read(dir.join(s)).unwrap(), &DEFAULT_POLICY).unwrap()
            }
            None => DEFAULT_POLICY.initial,
        };
        let v = verify(&DEFAULT_POLICY, &state, &plan, &key);
        assert_eq!(v.approved, e["approved"] == true, "{file}");
        let r = reference(&state, &plan, &key);
        assert_eq!(summary(&v), r.summary(), "{file}: verifier vs reference");
        if let Some(inv) = e.get("invariants").and_then(|x| x.as_array()) {
            let want: BTreeSet<String> =
                inv.iter().map(|x| x.as_str().unwrap().to_owned()).collect();
            let mut got = names(v.plan_violations);
            if let Some((i, set)) = v.failed {
                assert_eq!(Some(i as u64), e["action"].as_u64(), "{file}");
                got.extend(names(set));
            }
            assert_eq!(got, want, "{file}");
        }
        checked += 1;
    }
    assert!(checked >= 80, "the corpus shrank: {checked}");
}

// ------------------------------------------------------- reference checker

/// the reference's verdict.
#[derive(Debug)]
struct Ref {
    plan_violations: BTreeSet<&'static str>,
    failed: Option<(usize, BTreeSet<&'static str>)>,
    state: State,
}

impl Ref {
    fn summary(&self) -> Summary {
        let conv = |s: &BTreeSet<&'static str>| {
            s.iter()
                .map(|x| (*x).to_owned())
                .collect::<BTreeSet<String>>()
        };
        (
            self.plan_violations.is_empty() && self.failed.is_none(),
            conv(&self.plan_violations),
            self.failed.as_ref().map(|(i, s)| (*i, conv(s))),
            self.state,
        )
    }
}

fn summary(v: &policy_verifier::Verdict) -> Summary {
    (
        v.approved,
        names(v.plan_violations),
        v.failed.map(|(i, s)| (i, names(s))),
        v.state,
    )
}

fn util(b: u64, p: u64) -> u128 {
    let p = if p == 0 { 1 } else { u128::from(p) };
    (u128::from(b) * 1000).div_ceil(p)
}

fn tier_of(a: &Action) -> Tier {
    match a {
        Action::FirmwareInventory { .. } | Action::SystemQuery {} => Tier::Observer,
        Action::ProcessStart { .. }
        | Action::ProcessStop { .. }
        | Action::ProcessRestart { .. } => Tier::Admin,
        _ => Tier::Operator,
    }
}

fn session_tier(s: &str) -> Option<Tier> {
    match s {
        "viewer" => Some(Tier::Observer),
        "ops" => Some(Tier::Operator),
        "admin" => Some(Tier::Admin),
        _ => None,
    }
}

/// DESIGN.md's rules in plain arithmetic, for the default policy.
fn reference(s: &State, plan: &Plan, key: &[u8]) -> Ref {
    let (quota, pool, ceiling, limit) = (256u128, u128::from(s.pool_pages), 100u64, 800u128);
    let (bmin, pmax, tmin, tmax) = (100u64, 1_000_000u64, 1000u64, 10_000_000u64);
    let mut pv = BTreeSet::new();
    if plan.actions.is_empty() {
        pv.insert("plan.size");
    }
    // a fresh id: last < id <= last + 16 (the default replay window)
    let (last, id) = (u128::from(s.last_request_id), u128::from(plan.request_id));
    if !(last < id && id <= last + 16) {
        pv.insert("plan.replay");
    }
    let destructive = plan.actions.iter().any(|a| {
        matches!(
            a,
            Action::ProcessStop { .. } | Action::ProcessRestart { .. }
        )
    });
    let confirmed = !destructive || confirm::is_valid(plan, key);
    let tier = session_tier(plan.session.as_str());
    let mut m = *s;
    let mut restarted = [false; 4];
    let mut failed = None;
    for (i, a) in plan.actions.iter().enumerate() {
        let mut v = BTreeSet::new();
        let total_util = |m: &State| -> u128 {
            m.workers
                .iter()
                .filter(|w| w.running)
                .map(|w| util(w.budget_us, w.period_us))
                .sum()
        };
        let held: u128 = m.workers.iter().map(|w| u128::from(w.pages)).sum();
        match *a {
            Action::MemoryGrant { pd, pages } => {
                if u128::from(m.workers[pd.index()].pages) + u128::from(pages) > quota {
                    v.insert("mem.quota");
                }
                if held + u128::from(pages) > pool {
                    v.insert("mem.pool");
                }
            }
            Action::MemoryReclaim { pd, pages } => {
                if pages > m.workers[pd.index()].pages {
                    v.insert("mem.reclaim_bounds");
                }
                if m.workers[pd.index()].running {
                    v.insert("mem.reclaim_stopped");
                }
            }
            Action::ProcessSetBudget {
                pd,
                budget_us,
                period_us,
            } => {
                if !(bmin <= budget_us && budget_us <= period_us && period_us <= pmax) {
                    v.insert("cpu.budget_bounds");
                }
                let w = &m.workers[pd.index()];
                if w.running
                    && total_util(&m) - util(w.budget_us, w.period_us) + util(budget_us, period_us)
                        > limit
                {
                    v.insert("cpu.util");
                }
            }
            Action::ProcessStart { pd } | Action::ProcessRestart { pd } => {
                let w = &m.workers[pd.index()];
                if matches!(a, Action::ProcessStart { .. }) && w.running {
                    v.insert("proc.state");
                }
                if matches!(a, Action::ProcessRestart { .. }) && restarted[pd.index()] {
                    v.insert("proc.restart_rate");
                }
                if !w.running && total_util(&m) + util(w.budget_us, w.period_us) > limit {
                    v.insert("cpu.util");
                }
            }
            Action::ProcessStop { pd } => {
                if !m.workers[pd.index()].running {
                    v.insert("proc.state");
                }
            }
            Action::ProcessSetPriority { priority, .. } => {
                if priority > ceiling {
                    v.insert("prio.ceiling");
                }
            }
            Action::TimerSetPeriodic { period_us, .. } => {
                if !(tmin <= period_us && period_us <= tmax) {
                    v.insert("timer.bounds");
                }
            }
            Action::TimerCancel { .. }
            | Action::FirmwareInventory { .. }
            | Action::SystemQuery {} => {}
        }
        if tier.is_none_or(|t| t < tier_of(a)) {
            v.insert("auth.tier");
        }
        if matches!(
            a,
            Action::ProcessStop { .. } | Action::ProcessRestart { .. }
        ) && !confirmed
        {
            v.insert("auth.confirm");
        }
        if !v.is_empty() {
            failed = Some((i, v));
            break;
        }
        match *a {
            Action::ProcessStart { pd } => m.workers[pd.index()].running = true,
            Action::ProcessStop { pd } => m.workers[pd.index()].running = false,
            Action::ProcessRestart { pd } => {
                m.workers[pd.index()].running = true;
                restarted[pd.index()] = true;
            }
            Action::ProcessSetPriority { pd, priority } => {
                m.workers[pd.index()].priority = priority
            }
            Action::ProcessSetBudget {
                pd,
                budget_us,
                period_us,
            } => {
                m.workers[pd.index()].budget_us = budget_us;
                m.workers[pd.index()].period_us = period_us;
            }
            Action::MemoryGrant { pd, pages } => {
                let w = &mut m.workers[pd.index()];
                w.pages = w.pages.saturating_add(pages);
            }
            Action::MemoryReclaim { pd, pages } => {
                let w = &mut m.workers[pd.index()];
                w.pages = w.pages.saturating_sub(pages);
            }
            Action::TimerSetPeriodic { pd, period_us } => {
                m.workers[pd.index()].timer_period_us = Some(period_us)
            }
            Action::TimerCancel { pd } => m.workers[pd.index()].timer_period_us = None,
            Action::FirmwareInventory { .. } | Action::SystemQuery {} => {}
        }
    }
    if pv.is_empty() && failed.is_none() {
        m.last_request_id = plan.request_id;
    }
    Ref {
        plan_violations: pv,
        failed,
        state: m,
    }
}

fn reference_state_ok(s: &State) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    if s.workers.iter().any(|w| w.pages > 256) {
        out.insert("mem.quota");
    }
    if s.workers.iter().map(|w| u128::from(w.pages)).sum::<u128>() > u128::from(s.pool_pages) {
        out.insert("mem.pool");
    }
    if s.workers
        .iter()
        .filter(|w| w.running)
        .map(|w| util(w.budget_us, w.period_us))
        .sum::<u128>()
        > 800
    {
        out.insert("cpu.util");
    }
    if s.workers
        .iter()
        .any(|w| !(100 <= w.budget_us && w.budget_us <= w.period_us && w.period_us <= 1_000_000))
    {
        out.insert("cpu.budget_bounds");
    }
    if s.workers.iter().any(|w| w.priority > 100) {
        out.insert("prio.ceiling");
    }
    if s.workers.iter().any(|w| {
        w.timer_period_us
            .is_some_and(|p| !(1000..=10_000_000).contains(&p))
    }) {
        out.insert("timer.bounds");
    }
    out
}

fn worker_state() -> impl Strategy<Value = WorkerState> {
    (
        any::<bool>(),
        prop_oneof![0u64..=101, Just(u64::MAX)],
        prop_oneof![90u64..3000, Just(0u64)],
        prop_oneof![1000u64..20_000, 999_000u64..1_000_100, Just(0u64)],
        prop_oneof![0u64..140, 250u64..260],
        prop_oneof![
            Just(None),
            (900u64..1100).prop_map(Some),
            (9_999_000u64..10_000_100).prop_map(Some)
        ],
    )
        .prop_map(
            |(running, priority, budget_us, period_us, pages, timer_period_us)| WorkerState {
                running,
                priority,
                budget_us,
                period_us,
                pages,
                timer_period_us,
            },
        )
}

fn state() -> impl Strategy<Value = State> {
    (
        [
            worker_state(),
            worker_state(),
            worker_state(),
            worker_state(),
        ],
        prop_oneof![Just(512u64), 0u64..600],
        prop_oneof![0u64..4, Just(u64::MAX - 2), Just(u64::MAX)],
    )
        .prop_map(|(workers, pool_pages, last_request_id)| State {
            workers,
            pool_pages,
            last_request_id,
        })
}

fn plan() -> impl Strategy<Value = (Plan, bool)> {
    (
        prop_oneof![4 => 0u64..6, 1 => 14u64..24, 1 => Just(u64::MAX - 1), 1 => Just(u64::MAX)],
        prop_oneof![Just("viewer"), Just("ops"), Just("admin"), Just("root")],
        proptest::collection::vec(action(), 0..=MAX_ACTIONS),
        any::<bool>(),
    )
        .prop_map(|(request_id, session, actions, sign)| {
            (
                Plan {
                    version: 1,
                    request_id,
                    session: heapless::String::try_from(session).unwrap(),
                    reason: heapless::String::new(),
                    actions: heapless::Vec::from_slice(&actions).unwrap(),
                    confirmation: None,
                },
                sign,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// differential: the verifier and the reference agree on every verdict,
    /// every name, the failing index and the resulting state.
    #[test]
    fn verify_drt(s in state(), (p, sign) in plan()) {
        let key = [9u8; 32];
        let p = if sign { confirm::sign(&p, &key).unwrap() } else { p };
        let v = verify(&DEFAULT_POLICY, &s, &p, &key);
        prop_assert_eq!(summary(&v), reference(&s, &p, &key).summary());
    }

    /// the state invariants, named exactly, against the reference's.
    #[test]
    fn state_violations_drt(s in state()) {
        let got: BTreeSet<String> = names(state_violations(&DEFAULT_POLICY, &s));
        let want: BTreeSet<String> = reference_state_ok(&s).into_iter().map(str::to_owned).collect();
        prop_assert_eq!(got, want);
    }

    /// one action applied as the PD model does, against the reference's step.
    #[test]
    fn apply_drt(s in state(), a in action()) {
        let p = Plan { version: 1, request_id: u64::MAX, session: heapless::String::try_from("admin").unwrap(),
            reason: heapless::String::new(), actions: heapless::Vec::from_slice(&[a]).unwrap(), confirmation: None };
        let mut want = reference(&State { last_request_id: 0, ..s }, &p, &[]).state;
        want.last_request_id = s.last_request_id;
        // the reference steps only accepted actions; step it unconditionally
        if reference(&State { last_request_id: 0, ..s }, &p, &[]).failed.is_some() {
            want = step_only(&s, &a);
        }
        prop_assert_eq!(verify::apply(&s, &a), want);
    }
}

fn step_only(s: &State, a: &Action) -> State {
    // the reference's step on an action no check guards: reuse it through
    // a plan an admin sends with every check disabled is not possible, so
    // mirror the step here (it is four lines per op).
    let mut m = *s;
    match *a {
        Action::ProcessStart { pd } | Action::ProcessRestart { pd } => {
            m.workers[pd.index()].running = true
        }
        Action::ProcessStop { pd } => m.workers[pd.index()].running = false,
        Action::ProcessSetPriority { pd, priority } => m.workers[pd.index()].priority = priority,
        Action::ProcessSetBudget {
            pd,
            budget_us,
            period_us,
        } => {
            m.workers[pd.index()].budget_us = budget_us;
            m.workers[pd.index()].period_us = period_us;
        }
        Action::MemoryGrant { pd, pages } => {
            m.workers[pd.index()].pages = m.workers[pd.index()].pages.saturating_add(pages)
        }
        Action::MemoryReclaim { pd, pages } => {
            m.workers[pd.index()].pages = m.workers[pd.index()].pages.saturating_sub(pages)
        }
        Action::TimerSetPeriodic { pd, period_us } => {
            m.workers[pd.index()].timer_period_us = Some(period_us)
        }
        Action::TimerCancel { pd } => m.workers[pd.index()].timer_period_us = None,
        Action::FirmwareInventory { .. } | Action::SystemQuery {} => {}
    }
    m
}

// ------------------------------------------------------------------ tables

#[test]
fn concrete_domain_operations() {
    let d = Concrete;
    let big = u128::MAX;
    for (a, b, add, sub, mul) in [
        (0u128, 0u128, 0u128, 0u128, 0u128),
        (2, 3, 5, 0, 6),
        (7, 3, 10, 4, 21),
        (big, 1, big, big - 1, big),
        (big, big, big, 0, big),
    ] {
        assert_eq!(d.add(&a, &b), add, "{a}+{b}");
        assert_eq!(d.sub_sat(&a, &b), sub, "{a}-{b}");
        assert_eq!(d.mul(&a, &b), mul, "{a}*{b}");
    }
    for (a, b, q) in [
        (0u128, 5u128, 0u128),
        (10, 5, 2),
        (11, 5, 3),
        (4, 5, 1),
        (7, 0, 0),
        (u128::from(u64::MAX) + 1, 2, 1u128 << 63),
        (u128::from(u64::MAX) * 4 + 1, 4, u128::from(u64::MAX) + 1),
        (u128::from(u64::MAX) * 4, 4, u128::from(u64::MAX)),
        (9, u128::from(u64::MAX) + 1, 1),
        (5, 0, 0),
    ] {
        assert_eq!(d.div_ceil(&a, &b), q, "ceil({a}/{b})");
    }
    assert!(d.le(&1, &2) && d.le(&2, &2) && !d.le(&3, &2));
    assert!(d.lt(&1, &2) && !d.lt(&2, &2));
    assert!(d.eq(&4, &4) && !d.eq(&4, &5));
    assert!(d.and(&true, &true) && !d.and(&true, &false) && !d.and(&false, &true));
    assert!(d.or(&false, &true) && d.or(&true, &false) && !d.or(&false, &false));
    assert!(d.not(&false) && !d.not(&true));
    assert!(d.implies(&false, &false) && d.implies(&true, &true) && !d.implies(&true, &false));
    assert_eq!((d.ite(&true, &1, &2), d.ite(&false, &1, &2)), (1, 2));
    assert_eq!(
        (
            d.ite_bool(&true, &true, &false),
            d.ite_bool(&false, &true, &false)
        ),
        (true, false)
    );
    assert_eq!((d.int(7), d.bool(true)), (7u128, true));
}

#[test]
fn names_round_trip_and_are_distinct() {
    for (i, w) in Worker::ALL.iter().enumerate() {
        assert_eq!(w.index(), i);
        assert_eq!(Worker::from_index(i), Some(*w));
        assert_eq!(w.name(), format!("worker{i}"));
        assert_eq!(Worker::from_name(w.name()), Some(*w));
    }
    assert_eq!(Worker::from_index(4), None);
    assert_eq!(Worker::from_name("worker4"), None);
    assert_eq!(Worker::from_name(""), None);
    for k in ActionKind::ALL {
        assert_eq!(ActionKind::from_name(k.name()), Some(*k));
    }
    assert_eq!(ActionKind::from_name("memory.explode"), None);
    assert_eq!(
        (
            Tier::Observer.name(),
            Tier::Operator.name(),
            Tier::Admin.name()
        ),
        ("observer", "operator", "admin")
    );
    let all: BTreeSet<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
    assert_eq!(all.len(), Invariant::ALL.len());
    for i in Invariant::ALL {
        assert_eq!(Invariant::from_name(i.name()), Some(*i));
        assert_eq!(i.to_string(), i.name());
        assert!(!i.meaning().is_empty());
    }
    assert_eq!(Invariant::MemQuota.class(), RuleClass::State);
    assert_eq!(Invariant::ProcState.class(), RuleClass::Precondition);
    assert_eq!(Invariant::AuthTier.class(), RuleClass::Plan);
    assert_eq!(Invariant::from_name("mem.nothing"), None);
}

#[test]
fn invariant_sets() {
    let mut a = InvariantSet::EMPTY;
    assert!(a.is_empty() && a.iter().next().is_none() && a.bits() == 0);
    a.insert(Invariant::MemPool);
    let mut b = InvariantSet::EMPTY;
    b.insert(Invariant::AuthConfirm);
    b.insert(Invariant::MemPool);
    let u = a.union(b);
    assert_eq!(
        u.iter().collect::<Vec<_>>(),
        vec![Invariant::MemPool, Invariant::AuthConfirm]
    );
    assert!(u.contains(Invariant::AuthConfirm) && !u.contains(Invariant::MemQuota));
    assert_eq!(InvariantSet::from_bits(u.bits()), u);
    assert_eq!(
        u.bits(),
        (1 << Invariant::MemPool as u8) | (1 << Invariant::AuthConfirm as u8)
    );
    assert_eq!(
        InvariantSet::from_bits(0xffff).iter().count(),
        Invariant::ALL.len()
    );
    assert_eq!(
        InvariantSet::from_bits(1).iter().collect::<Vec<_>>(),
        vec![Invariant::ALL[0]]
    );
}

#[test]
fn names_and_sessions_of_the_policy() {
    let n = Name::from_str_const("ops");
    assert_eq!((n.as_bytes(), n.as_str()), (&b"ops"[..], "ops"));
    let long = "a".repeat(40);
    assert_eq!(Name::from_str_const(&long).as_str().len(), 32);
    assert_eq!(Name::from_str_const("").as_str(), "");
    assert_eq!(
        DEFAULT_POLICY.session("ops").map(|s| s.tier),
        Some(Tier::Operator)
    );
    assert_eq!(
        DEFAULT_POLICY.session("admin").map(|s| s.tier),
        Some(Tier::Admin)
    );
    assert_eq!(
        DEFAULT_POLICY.session("viewer").map(|s| s.tier),
        Some(Tier::Observer)
    );
    assert!(DEFAULT_POLICY.session("op").is_none() && DEFAULT_POLICY.session("opsx").is_none());
    let mut s = DEFAULT_POLICY.initial;
    assert_eq!(s.pages_held(), 128);
    s.workers[0].pages = u64::MAX;
    s.workers[1].pages = u64::MAX;
    assert_eq!(s.pages_held(), 2 * u128::from(u64::MAX) + 64);
}

#[test]
fn plan_helpers() {
    let mut p = Plan {
        version: 1,
        request_id: 1,
        session: heapless::String::try_from("admin").unwrap(),
        reason: heapless::String::new(),
        actions: heapless::Vec::from_slice(&[
            Action::SystemQuery {},
            Action::MemoryGrant {
                pd: Worker::W2,
                pages: 1,
            },
        ])
        .unwrap(),
        confirmation: None,
    };
    assert!(!p.has_destructive());
    assert_eq!(p.actions[1].worker(), Some(Worker::W2));
    assert_eq!(p.actions[0].worker(), None);
    p.actions
        .push(Action::ProcessRestart { pd: Worker::W3 })
        .unwrap();
    assert!(p.has_destructive());
}

#[test]
fn wire_bounds_and_codes() {
    let p = Plan {
        version: 1,
        request_id: 3,
        session: heapless::String::try_from("ops").unwrap(),
        reason: heapless::String::new(),
        actions: heapless::Vec::from_slice(&[Action::SystemQuery {}]).unwrap(),
        confirmation: None,
    };
    let mut buf = [0u8; wire::MAX_PLAN_BYTES];
    let bytes = wire::encode(&p, &mut buf).unwrap().to_vec();
    // exactly the cap: decoded (and refused for the bytes after the plan)
    let mut at_cap = bytes.clone();
    at_cap.resize(wire::MAX_PLAN_BYTES, 0);
    assert_eq!(wire::decode(&at_cap), Err(wire::WireError::TrailingBytes));
    let mut over = bytes.clone();
    over.resize(wire::MAX_PLAN_BYTES + 1, 0);
    assert_eq!(wire::decode(&over), Err(wire::WireError::TooLarge));
    let codes: BTreeSet<&str> = [
        wire::WireError::TooLarge,
        wire::WireError::Malformed,
        wire::WireError::TrailingBytes,
        wire::WireError::Version,
        wire::WireError::NonCanonical,
    ]
    .iter()
    .map(|e| e.code())
    .collect();
    assert_eq!(codes.len(), 5);
    assert!(codes.contains("wire.too_large") && codes.contains("plan.version"));
}

#[test]
fn policy_file_validation_table() {
    let text = std::fs::read_to_string(root().join("system/policy.toml")).unwrap();
    let good: policy_file::PolicyFile = toml::from_str(&text).unwrap();
    assert_eq!(policy_file::validate(&good), Ok(()));
    let bad: Vec<(&str, Edit)> = vec![
        ("no workers", Box::new(|f| f.limits.workers = 0)),
        ("33 workers", Box::new(|f| f.limits.workers = 33)),
        ("page size 0", Box::new(|f| f.limits.page_size = 0)),
        ("budget min 0", Box::new(|f| f.limits.budget_min_us = 0)),
        (
            "budget min over period max",
            Box::new(|f| f.limits.budget_min_us = f.limits.period_max_us + 1),
        ),
        ("timer min 0", Box::new(|f| f.limits.timer_min_us = 0)),
        (
            "timer min over max",
            Box::new(|f| f.limits.timer_min_us = f.limits.timer_max_us + 1),
        ),
        ("ceiling 255", Box::new(|f| f.limits.priority_ceiling = 255)),
        (
            "empty session name",
            Box::new(|f| {
                let s = f.sessions.values().next().unwrap().clone();
                f.sessions.insert(String::new(), s);
            }),
        ),
        (
            "33-byte session name",
            Box::new(|f| {
                let s = f.sessions.values().next().unwrap().clone();
                f.sessions.insert("s".repeat(33), s);
            }),
        ),
        (
            "unknown tier",
            Box::new(|f| f.sessions.values_mut().next().unwrap().tier = "root".into()),
        ),
        (
            "nine sessions",
            Box::new(|f| {
                let s = f.sessions.values().next().unwrap().clone();
                for i in 0..9 {
                    f.sessions.insert(format!("s{i}"), s.clone());
                }
            }),
        ),
    ];
    for (what, change) in bad {
        let mut f = good.clone();
        change(&mut f);
        assert!(policy_file::validate(&f).is_err(), "{what} was accepted");
    }
    // the edges that are allowed
    let ok: Vec<(&str, Edit)> = vec![
        (
            "budget min = period max",
            Box::new(|f| f.limits.budget_min_us = f.limits.period_max_us),
        ),
        (
            "timer min = max",
            Box::new(|f| f.limits.timer_min_us = f.limits.timer_max_us),
        ),
        ("ceiling 254", Box::new(|f| f.limits.priority_ceiling = 254)),
        ("32 workers", Box::new(|f| f.limits.workers = 32)),
        (
            "32-byte session name",
            Box::new(|f| {
                let s = f.sessions.values().next().unwrap().clone();
                f.sessions.insert("s".repeat(32), s);
            }),
        ),
        (
            "eight sessions",
            Box::new(|f| {
                let s = f.sessions.values().next().unwrap().clone();
                for i in 0..5 {
                    f.sessions.insert(format!("s{i}"), s.clone());
                }
            }),
        ),
    ];
    for (what, change) in ok {
        let mut f = good.clone();
        change(&mut f);
        assert_eq!(policy_file::validate(&f), Ok(()), "{what} was refused");
    }
    // a policy for another worker count is well formed but describes another
    // system: `--policy` refuses it against this build's workers
    let other = text.replace(
        &format!("workers = {N_WORKERS}"),
        &format!("workers = {}", N_WORKERS + 1),
    );
    assert_ne!(other, text);
    let e = json::parse_policy(&other).unwrap_err();
    assert_eq!(e.code, "policy.invalid", "{e:?}");
    assert!(e.message.contains("workers"), "{e:?}");
}

#[test]
fn json_error_codes_are_stable() {
    let plan = |actions: &str| {
        format!(
            r#"{{"version":1,"request_id":1,"session":"ops","reason":"r","actions":[{actions}]}}"#
        )
    };
    let table = [
        ("{".to_owned(), "json.syntax"),
        (plan(r#"{"op":"system.query","x":1}"#), "json.unknown_field"),
        (
            plan(r#"{"op":"memory.grant","pd":"worker9","pages":1}"#),
            "json.unknown_pd",
        ),
        (
            plan(r#"{"op":"firmware.inventory","query":"gpus"}"#),
            "json.unknown_query",
        ),
        (plan(r#"{"op":"memory.explode"}"#), "json.unknown_op"),
        (
            plan(r#"{"op":"memory.grant","pd":"worker1"}"#),
            "json.missing_field",
        ),
        (
            r#"{"version":1,"version":1,"request_id":1,"session":"ops","reason":"r","actions":[]}"#
                .to_owned(),
            "json.duplicate_field",
        ),
        (
            plan(r#"{"op":"memory.grant","pd":"worker1","pages":"x"}"#),
            "json.type",
        ),
    ];
    for (text, code) in table {
        let err = json::parse_plan(text.as_bytes()).expect_err(code);
        assert_eq!(err.code, code, "{text:.80}: {err}");
        assert_eq!(err.to_json()["error"]["code"], code);
        assert_eq!(err.to_json()["error"]["message"], err.message.as_str());
        assert_eq!(err.to_string(), format!("{}: {}", err.code, err.message));
    }
}

#[test]
fn json_front_end_edges_and_outputs() {
    // hex tokens
    let h = "0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789";
    assert_eq!(json::unhex32(h).map(|t| t[0]), Some(0x01));
    assert_eq!(json::hex(&json::unhex32(h).unwrap()), h.to_lowercase());
    assert!(json::unhex32(&h[1..]).is_none() && json::unhex32(&format!("{h}0")).is_none());
    assert!(json::unhex32(&format!("{}g", &h[1..])).is_none());
    // the 64 KiB cap: exactly at it parses, one byte over is plan.size / state.size
    let plan = r#"{"version":1,"request_id":1,"session":"ops","reason":"r","actions":[{"op":"system.query"}]}"#;
    let pad = |n: usize, t: &str| format!("{}{t}", " ".repeat(n - t.len()));
    assert!(json::parse_plan(pad(json::MAX_JSON_BYTES, plan).as_bytes()).is_ok());
    assert_eq!(
        json::parse_plan(pad(json::MAX_JSON_BYTES + 1, plan).as_bytes())
            .unwrap_err()
            .code,
        "plan.size"
    );
    let state = json::state_to_json(&DEFAULT_POLICY.initial).to_string();
    assert_eq!(
        json::parse_state(state.as_bytes(), &DEFAULT_POLICY),
        Ok(DEFAULT_POLICY.initial)
    );
    assert!(json::parse_state(
        pad(json::MAX_JSON_BYTES, &state).as_bytes(),
        &DEFAULT_POLICY
    )
    .is_ok());
    assert_eq!(
        json::parse_state(
            pad(json::MAX_JSON_BYTES + 1, &state).as_bytes(),
            &DEFAULT_POLICY
        )
        .unwrap_err()
        .code,
        "state.size"
    );
    assert_eq!(
        json::state_to_json(&DEFAULT_POLICY.initial)["workers"]["worker2"]["pages"],
        32
    );
    // utilisation of the running workers
    let mut s = DEFAULT_POLICY.initial;
    assert_eq!(json::utilisation(&s), 400);
    s.workers[0].running = false;
    s.workers[1].budget_us = 1001;
    assert_eq!(json::utilisation(&s), 100 + 101 + 100);
    // verdict and violations json
    let p = json::parse_plan(
        br#"{"version":1,"request_id":1,"session":"ops","reason":"r","actions":[{"op":"system.query"},{"op":"memory.grant","pd":"worker1","pages":400}]}"#,
    )
    .unwrap();
    let v = verify(&DEFAULT_POLICY, &DEFAULT_POLICY.initial, &p, &[]);
    let j = json::verdict_json(&DEFAULT_POLICY, &DEFAULT_POLICY.initial, &p, &v);
    assert_eq!(j["approved"], false);
    assert!(j.get("state_after").is_none());
    let viol = json::violations_json(&DEFAULT_POLICY, &DEFAULT_POLICY.initial, &p, &v);
    assert_eq!(viol.len(), 2);
    assert_eq!(
        (viol[0]["action"].as_u64(), viol[0]["invariant"].as_str()),
        (Some(1), Some("mem.quota"))
    );
    assert_eq!(viol[1]["invariant"], "mem.pool");
    assert_eq!(j["violations"], serde_json::Value::Array(viol.clone()));
    // the detail text names the numbers (its wording is free text)
    let d = viol[0]["detail"].as_str().unwrap();
    assert!(d.contains("256") && d.contains("worker1"), "{d}");
    let ok = json::parse_plan(br#"{"version":1,"request_id":1,"session":"ops","reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":8}]}"#).unwrap();
    let v = verify(&DEFAULT_POLICY, &DEFAULT_POLICY.initial, &ok, &[]);
    let j = json::verdict_json(&DEFAULT_POLICY, &DEFAULT_POLICY.initial, &ok, &v);
    assert_eq!(
        (
            j["approved"].as_bool(),
            j["violations"].as_array().map(Vec::len)
        ),
        (Some(true), Some(0))
    );
    assert_eq!(j["state_after"]["workers"]["worker1"]["pages"], 40);
    assert_eq!(j["state_after"]["last_request_id"], 1);
    // op names for help texts
    let names: Vec<&str> = ActionKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(json::op_names(), names);
}
