//! the verifier's cost per action (goal: <= 200 ns per action on the
//! host), for 16-action plans: approved without a destructive op, approved
//! with one (the HMAC of `auth.confirm` included), and rejected at the last
//! action. `cargo bench -p policy-verifier --bench verify`; prints ns/action.

#![allow(clippy::indexing_slicing, clippy::panic, clippy::arithmetic_side_effects, missing_docs, reason = "a bench binary")]

use std::hint::black_box;
use std::time::Instant;

use policy_verifier::plan::PLAN_VERSION;
use policy_verifier::{confirm, verify, Action, InventoryQuery, Plan, State, Worker, DEFAULT_POLICY};

const KEY: [u8; 32] = [0x42; 32];

fn plan(session: &str, actions: &[Action]) -> Plan {
    Plan {
        version: PLAN_VERSION,
        request_id: 1,
        session: heapless::String::try_from(session).unwrap_or_default(),
        reason: heapless::String::try_from("make room for the indexer").unwrap_or_default(),
        actions: heapless::Vec::from_slice(actions).unwrap_or_default(),
        confirmation: None,
    }
}

/// sixteen operator actions a planner would propose: memory, priorities,
/// budgets, timers, reads.
fn operator_actions() -> Vec<Action> {
    use Action as A;
    const W0: Worker = Worker::W0;
    const W1: Worker = Worker::W1;
    const W2: Worker = Worker::W2;
    const W3: Worker = Worker::W3;
    vec![
        A::MemoryGrant { pd: W1, pages: 16 },
        A::ProcessSetPriority { pd: W1, priority: 90 },
        A::ProcessSetBudget { pd: W1, budget_us: 2000, period_us: 10000 },
        A::TimerSetPeriodic { pd: W1, period_us: 20000 },
        A::MemoryGrant { pd: W0, pages: 8 },
        A::ProcessSetPriority { pd: W0, priority: 60 },
        A::ProcessSetBudget { pd: W0, budget_us: 1500, period_us: 10000 },
        A::TimerSetPeriodic { pd: W0, period_us: 5000 },
        A::FirmwareInventory { query: InventoryQuery::Memory },
        A::SystemQuery {},
        A::MemoryGrant { pd: W2, pages: 32 },
        A::ProcessSetPriority { pd: W2, priority: 40 },
        A::TimerCancel { pd: W0 },
        A::ProcessSetBudget { pd: W3, budget_us: 500, period_us: 5000 },
        A::MemoryGrant { pd: W3, pages: 4 },
        A::SystemQuery {},
    ]
}

/// ns per action of verifying `p` from the initial state: the minimum and
/// the median over many short rounds, so that other load on the machine
/// (builds on two cores) shows in the median, not in the minimum.
/// the state the plans start from: the policy's initial one, with workers
/// past the fourth stopped, so the same plans fit `cpu.util` whatever the
/// worker count (every check still loops over all workers).
fn start() -> State {
    let mut s = DEFAULT_POLICY.initial;
    for w in s.workers.iter_mut().skip(4) {
        w.running = false;
    }
    s
}

fn measure(name: &str, p: &Plan, expect_approved: bool) -> f64 {
    let state = start();
    let v = verify(&DEFAULT_POLICY, &state, p, &KEY);
    assert_eq!(v.approved, expect_approved, "{name}: {v:?}");
    let iters = 1_000u32;
    let mut rounds: Vec<f64> = (0..400)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(verify(black_box(&DEFAULT_POLICY), black_box(&state), black_box(p), &KEY));
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters) / p.actions.len() as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    let best = rounds[0];
    let median = rounds[rounds.len() / 2];
    let verdict = if expect_approved { "approved" } else { "rejected" };
    println!(
        "verify/{name}: {best:.1} ns/action (median {median:.1}; {} actions, {verdict})",
        p.actions.len()
    );
    best
}

fn main() {
    println!("verify: {} workers (system/policy.toml or LLM_OS_POLICY)", policy_verifier::N_WORKERS);
    let ops = plan("ops", &operator_actions());

    // an admin plan with a stop and a restart: one HMAC-SHA256 per plan.
    let mut admin_actions = operator_actions();
    admin_actions[12] = Action::ProcessStop { pd: Worker::W2 };
    admin_actions[13] = Action::ProcessRestart { pd: Worker::W2 };
    let admin = confirm::sign(&plan("admin", &admin_actions), &KEY).unwrap_or_else(|| plan("admin", &admin_actions));

    // rejected at the last action: a grant past the quota (every check of
    // the first fifteen runs).
    let mut bad_actions = operator_actions();
    bad_actions[15] = Action::MemoryGrant { pd: Worker::W3, pages: 1000 };
    let rejected = plan("ops", &bad_actions);

    let a = measure("approved-16", &ops, true);
    let b = measure("approved-16-confirmed", &admin, true);
    let c = measure("rejected-at-16", &rejected, false);
    let worst = a.max(b).max(c);
    println!("verify: worst {worst:.1} ns/action; goal <= 200 ns/action: {}", if worst <= 200.0 { "met" } else { "missed" });
}
