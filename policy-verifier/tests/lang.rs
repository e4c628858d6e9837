//! the invariant language: parse errors with positions, the canonical text,
//! the bounds (no panic, no overflow, no deep recursion on any input), the
//! interpreter against a direct computation, and a policy-file invariant
//! enforced by `verify`.
#![cfg(feature = "std")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use policy_verifier::custom::{eval_bool, eval_int};
use policy_verifier::domain::Concrete;
use policy_verifier::expr::{self, ErrorKind, Expr, Node, Ty, MAX_NODES};
use policy_verifier::model::Model;
use policy_verifier::{confirm, json, verify, Action, Plan, Policy, State, Worker, DEFAULT_POLICY, N_WORKERS};
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../../tests/policies/max-stopped.toml");
const DEFAULT: &str = include_str!("../../system/policy.toml");
const KEY: [u8; 32] = [7; 32];

fn parse(s: &str) -> Result<Expr, expr::ParseError> {
    expr::parse(s, N_WORKERS)
}

fn err(s: &str) -> (usize, ErrorKind) {
    let e = parse(s).expect_err(s);
    (e.pos, e.kind)
}

#[test]
fn canonical_text_parses_back_to_the_same_expression() {
    for (src, canon) in [
        ("count(w, !w.running) <= 2", "count(w, !w.running) <= 2"),
        ("all(w, w.running => w.pages >= 8)", "all(w, w.running => w.pages >= 8)"),
        ("a => b => c".replace('a', "true").replace('b', "false").replace('c', "true").as_str(), "true => false => true"),
        ("(true => false) => true", "(true => false) => true"),
        ("sum(w, w.pages) + 10 <= pool_pages", "sum(w, w.pages) + 10 <= pool_pages"),
        ("worker1.pages - (3 - 2) > 0", "worker1.pages - (3 - 2) > 0"),
        ("((worker1.pages - 3) - 2) > 0", "worker1.pages - 3 - 2 > 0"),
        ("not any(x, x.timer and x.timer_period_us < 2000) or false", "!any(w, w.timer && w.timer_period_us < 2000) || false"),
        ("all(a, all(b, a.pages + b.pages <= quota_pages * 2))", "all(w, all(v, w.pages + v.pages <= quota_pages * 2))"),
        ("2 * (worker0.budget_us + 1_000) == 4000", "2 * (worker0.budget_us + 1000) == 4000"),
        ("!(true && false)", "!(true && false)"),
    ] {
        let e = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(e.to_string(), canon, "{src}");
        assert_eq!(parse(&e.to_string()).unwrap(), e, "{src}");
    }
}

#[test]
fn errors_give_the_position_and_the_reason() {
    assert_eq!(err(""), (0, ErrorKind::Empty));
    assert_eq!(err("count(w, !w.running) <="), (23, ErrorKind::UnexpectedEnd));
    assert_eq!(err("all(w, w.pagez < 3)"), (9, ErrorKind::UnknownField));
    assert_eq!(err("w.pages < 3"), (0, ErrorKind::UnknownName));
    assert_eq!(err(&format!("worker{N_WORKERS}.pages < 3")), (0, ErrorKind::UnknownWorker));
    assert_eq!(err("worker01.pages < 3"), (0, ErrorKind::UnknownName));
    assert_eq!(err("all(w, w.pages)"), (7, ErrorKind::Type(Ty::Bool)));
    assert_eq!(err("count(w, w.running) && true"), (0, ErrorKind::Type(Ty::Bool)));
    assert_eq!(err("1 < 2 < 3"), (6, ErrorKind::Expected("no second comparison (use && to join them)")));
    assert_eq!(err("1 < 2 )"), (6, ErrorKind::Trailing));
    assert_eq!(err("1 < 2 # x"), (6, ErrorKind::UnexpectedChar));
    assert_eq!(err("99999999999999999999 > 0"), (0, ErrorKind::NumberTooLarge));
    assert_eq!(err("all(w, any(w, w.running))"), (11, ErrorKind::BadVariable));
    assert_eq!(err("all(quota_pages, true)"), (4, ErrorKind::BadVariable));
    assert_eq!(err("all(a, all(b, all(c, all(d, true))))"), (25, ErrorKind::TooManyVars));
    // three u64 factors could reach 2^192: rejected where the product is built.
    assert_eq!(err("worker0.pages * worker1.pages * worker2.pages > 0"), (30, ErrorKind::MayOverflow));
    assert!(parse("worker0.pages * worker1.pages > 0").is_ok());
    assert_eq!(err("worker0.pages * worker1.pages + 1 > 0"), (30, ErrorKind::MayOverflow));
    let deep = format!("{}true{}", "(".repeat(40), ")".repeat(40));
    assert_eq!(err(&deep).1, ErrorKind::TooDeep);
    let group = format!("({})", ["worker0.running"; 4].join(" && "));
    let wide = [group.as_str(); MAX_NODES / 4].join(" || ");
    assert_eq!(err(&wide).1, ErrorKind::TooManyNodes);
    assert_eq!(err(&"1".repeat(2000)).1, ErrorKind::TooLong);
    let e = parse("all(w, w.pagez < 3)").unwrap_err();
    assert!(e.to_string().starts_with("at column 10: unknown field"), "{e}");
}

fn state_with(stopped: &[usize], pages: [u64; N_WORKERS]) -> State {
    let mut s = DEFAULT_POLICY.initial;
    for (i, w) in s.workers.iter_mut().enumerate() {
        w.running = !stopped.contains(&i);
        w.pages = pages[i];
    }
    s
}

#[test]
fn the_interpreter_computes_what_the_words_say() {
    let lim = &DEFAULT_POLICY.limits;
    let s = state_with(&[1, 3], [5, 40, 7, 200]);
    let m = Model::from_state(&Concrete, &s);
    let int = |src: &str| eval_int(&Concrete, lim, &m, &expr::parse_typed(src, N_WORKERS, Ty::Int).unwrap());
    let yes = |src: &str| eval_bool(&Concrete, lim, &m, &parse(src).unwrap());
    assert_eq!(int("count(w, !w.running)"), 2);
    assert_eq!(int("sum(w, w.pages)"), 252);
    assert_eq!(int("sum(w, w.running => false)".replace("w.running => false", "w.pages * 2").as_str()), 504);
    assert_eq!(int("worker1.pages - 100"), 0, "subtraction saturates at 0");
    assert_eq!(int("workers"), N_WORKERS as u128);
    assert_eq!(int("quota_pages + pool_pages"), 256 + 512);
    assert!(yes("count(w, !w.running) <= 2"));
    assert!(!yes("count(w, !w.running) <= 1"));
    assert!(yes("any(w, !w.running && w.pages > 100)"));
    assert!(!yes("all(w, w.pages >= 7)"));
    assert!(yes("all(w, w.running => w.pages >= 5)"));
    assert!(yes("all(w, any(v, v.pages > w.pages || v.pages == w.pages))"));
    assert!(yes("!any(w, w.timer) && worker0.timer_period_us == 0"));
}

#[test]
fn a_malformed_ast_fails_closed_without_recursing_forever() {
    let lim = &DEFAULT_POLICY.limits;
    let m = Model::from_state(&Concrete, &DEFAULT_POLICY.initial);
    // a node that names itself, one that names a node out of range, wrong types.
    for nodes in [
        vec![Node::Not(0)],
        vec![Node::Bin(expr::BinOp::And, 0, 0)],
        vec![Node::Lit(true), Node::Bin(expr::BinOp::Or, 0, 40)],
        vec![Node::Num(3)],
        vec![Node::Quant(expr::Quant::All, 200, 0)],
    ] {
        let mut arr = [Node::Lit(false); MAX_NODES];
        arr[..nodes.len()].copy_from_slice(&nodes);
        let e = Expr::from_nodes(arr, nodes.len() as u8);
        let _ = eval_bool(&Concrete, lim, &m, &e);
        let _ = eval_int(&Concrete, lim, &m, &e);
        assert!(!e.well_formed(Ty::Bool, N_WORKERS) && !e.well_formed(Ty::Int, N_WORKERS) || nodes == [Node::Num(3)]);
    }
    // every parsed expression is well formed; an unbound variable is not.
    assert!(parse("all(w, any(v, v.pages > w.pages))").unwrap().well_formed(Ty::Bool, N_WORKERS));
    let mut arr = [Node::Lit(false); MAX_NODES];
    arr[0] = Node::Field(policy_verifier::expr::Var::Bound(0), policy_verifier::expr::Field::Running);
    assert!(!Expr::from_nodes(arr, 1).well_formed(Ty::Bool, N_WORKERS));
    assert!(!eval_bool(&Concrete, lim, &m, &Expr::from_nodes([Node::Not(0); MAX_NODES], 1)));
    assert!(!eval_bool(&Concrete, lim, &m, &Expr::from_nodes([Node::Lit(true); MAX_NODES], 0)));
}

const ALPHABET: &[&str] = &[
    "all", "any", "count", "sum", "(", ")", ",", "w", "v", ".", "running", "pages", "timer", "priority", "!",
    "&&", "||", "=>", "<", "<=", "==", "+", "-", "*", "1", "18446744073709551615", "worker0", "worker3",
    "pool_pages", "quota_pages", "true", " ", "not",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn any_text_parses_or_errors_never_panics(s in ".{0,200}") {
        if let Ok(e) = parse(&s) {
            prop_assert_eq!(parse(&e.to_string()).unwrap(), e);
        }
    }

    #[test]
    fn token_soup_parses_or_errors_within_bounds(toks in proptest::collection::vec(0usize..ALPHABET.len(), 0..80)) {
        let s: String = toks.iter().map(|i| ALPHABET[*i]).collect::<Vec<_>>().join(" ");
        match parse(&s) {
            Ok(e) => {
                prop_assert!(e.nodes().len() <= MAX_NODES);
                prop_assert_eq!(parse(&e.to_string()).unwrap(), e);
                // evaluates on an extreme state without panicking.
                let mut st = DEFAULT_POLICY.initial;
                for w in &mut st.workers { w.pages = u64::MAX; w.priority = u64::MAX; }
                let _ = eval_bool(&Concrete, &DEFAULT_POLICY.limits, &Model::from_state(&Concrete, &st), &e);
            }
            Err(e) => prop_assert!(e.pos <= s.len()),
        }
    }

    /// `count` and `sum` against a direct computation on random states.
    #[test]
    fn count_and_sum_match_a_direct_computation(
        running in proptest::array::uniform4(any::<bool>()),
        pages in proptest::array::uniform4(common::num()),
        limit in 0u64..5,
    ) {
        let mut s = DEFAULT_POLICY.initial;
        for (i, w) in s.workers.iter_mut().enumerate() { w.running = running[i]; w.pages = pages[i]; }
        let m = Model::from_state(&Concrete, &s);
        let lim = &DEFAULT_POLICY.limits;
        let stopped = running.iter().filter(|r| !**r).count() as u64;
        let e = parse(&format!("count(w, !w.running) <= {limit}")).unwrap();
        prop_assert_eq!(eval_bool(&Concrete, lim, &m, &e), stopped <= limit);
        let total: u128 = pages.iter().map(|p| u128::from(*p)).sum();
        let e = expr::parse_typed("sum(w, w.pages)", N_WORKERS, Ty::Int).unwrap();
        prop_assert_eq!(eval_int(&Concrete, lim, &m, &e), total);
    }
}

fn example() -> Policy {
    json::parse_policy(EXAMPLE).expect("example policy parses")
}

fn plan(actions: &[Action]) -> Plan {
    let p = Plan {
        version: 1,
        request_id: 1,
        session: "admin".try_into().unwrap(),
        reason: "test".try_into().unwrap(),
        actions: heapless::Vec::from_slice(actions).unwrap(),
        confirmation: None,
    };
    confirm::sign(&p, &KEY).unwrap()
}

#[test]
fn the_example_policy_is_the_default_plus_its_invariants() {
    assert!(EXAMPLE.starts_with(DEFAULT), "tests/policies/max-stopped.toml must begin with system/policy.toml");
    let p = example();
    assert_eq!(p.limits, DEFAULT_POLICY.limits);
    assert_eq!(p.initial, DEFAULT_POLICY.initial);
    assert_eq!(p.invariants.len(), 1);
    assert!(DEFAULT_POLICY.invariants.is_empty(), "the default policy defines no custom invariant");
    let (_, c) = p.invariants.iter().next().unwrap();
    assert_eq!(c.name.as_str(), "proc.max_stopped");
    assert!(c.enforced);
}

#[test]
fn a_policy_file_invariant_is_enforced_and_named() {
    let p = example();
    let stop = |i| Action::ProcessStop { pd: Worker::from_index(i).unwrap() };
    // two stopped workers keep the invariant.
    let v = verify::verify(&p, &p.initial, &plan(&[stop(0), stop(1)]), &KEY);
    assert!(v.approved, "{v:?}");
    // the third stop breaks it: rejected at action 2, naming only it.
    let bad = plan(&[stop(0), stop(1), stop(2), Action::SystemQuery {}]);
    let v = verify::verify(&p, &p.initial, &bad, &KEY);
    assert!(!v.approved);
    let (i, set) = v.failed.unwrap();
    assert_eq!(i, 2);
    assert_eq!(p.names(set).collect::<Vec<_>>(), ["proc.max_stopped"]);
    let j = json::verdict_json(&p, &p.initial, &bad, &v);
    assert_eq!(j["violations"][0]["invariant"], "proc.max_stopped");
    assert_eq!(j["violations"][0]["action"], 2);
    assert!(j["violations"][0]["detail"].as_str().unwrap().contains("count(w, !w.running) <= 2"), "{j}");
    // the default policy accepts the same plan.
    assert!(verify::verify(&DEFAULT_POLICY, &DEFAULT_POLICY.initial, &bad, &KEY).approved);
    // a built-in and a custom violation at one action are both named, in that order.
    let s = state_with(&[0, 1], [32; N_WORKERS]);
    let mut unsigned = plan(&[stop(2)]);
    unsigned.confirmation = None;
    let v = verify::verify(&p, &s, &unsigned, &KEY);
    let names: Vec<_> = p.names(v.failed.unwrap().1).collect();
    assert_eq!(names, ["auth.confirm", "proc.max_stopped"]);
    // stopping a stopped worker keeps the count: only proc.state.
    let v = verify::verify(&p, &s, &plan(&[stop(0)]), &KEY);
    let names: Vec<_> = p.names(v.failed.unwrap().1).collect();
    assert_eq!(names, ["proc.state"]);
}

#[test]
fn a_state_breaking_a_policy_invariant_is_refused_as_input() {
    let p = example();
    let s = state_with(&[0, 1, 2], [32; N_WORKERS]);
    let text = json::state_to_json(&s).to_string();
    let e = json::parse_state(text.as_bytes(), &p).unwrap_err();
    assert_eq!(e.code, "state.invariant");
    assert!(e.message.contains("proc.max_stopped"), "{}", e.message);
    assert!(json::parse_state(text.as_bytes(), &DEFAULT_POLICY).is_ok());
}

#[test]
fn bad_invariants_are_policy_errors() {
    let with = |inv: &str| format!("{DEFAULT}\n[invariants]\n{inv}\n");
    for (inv, needle) in [
        (r#""proc.x" = "count(w, !w.running) <=""#, "at column 24"),
        (r#""mem.quota" = "true""#, "built-in"),
        (r#""Bad Name" = "true""#, "invariant name"),
        (r#""a.b" = "all(w, w.pages)""#, "expected a boolean"),
        (r#""a.b" = { expr = "true", enforce = false, extra = 1 }"#, "policy"),
    ] {
        let e = json::parse_policy(&with(inv)).unwrap_err();
        assert!(e.code.starts_with("policy."), "{inv}: {e}");
        assert!(e.message.contains(needle) || needle == "policy", "{inv}: {}", e.message);
    }
    // the initial state must keep every enforced invariant.
    let e = json::parse_policy(&with(r#""mem.min" = "all(w, w.pages >= 33)""#)).unwrap_err();
    assert!(e.message.contains("mem.min"), "{}", e.message);
    // a claim is not enforced.
    let p = json::parse_policy(&with(r#""proc.max_stopped" = { expr = "count(w, !w.running) <= 2", enforce = false }"#)).unwrap();
    let stop = |i| Action::ProcessStop { pd: Worker::from_index(i).unwrap() };
    assert!(verify::verify(&p, &p.initial, &plan(&[stop(0), stop(1), stop(2)]), &KEY).approved);
}
