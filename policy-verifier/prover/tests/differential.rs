//! symbolic vs concrete (cedar's `*-drt`): the rules over Z3 literals agree
//! with the rules over `Concrete` on 10^4 seeded random cases, boundary
//! values included. the longer run is `cargo bench -p policy-prover`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]

use policy_prover::differential::{self, Case, Rng};
use policy_verifier::{Action, State, Worker, DEFAULT_POLICY};

const CASES: u64 = 10_000;

#[test]
fn z3_and_concrete_agree_on_random_cases() {
    let t = std::time::Instant::now();
    let lim = DEFAULT_POLICY.limits;
    if let Err(f) = differential::run(&lim, 0x11e0_5eed, CASES) {
        panic!("case {}: {:?}\n{:?}", f.index, f.mismatch, f.case);
    }
    eprintln!("{CASES} differential cases in {:.1} s", t.elapsed().as_secs_f64());
}

#[test]
fn z3_and_concrete_agree_at_the_extremes() {
    // every field at u64::MAX, then at 0, for every op: sums and products
    // beyond u64, division by a zero period.
    let lim = DEFAULT_POLICY.limits;
    for v in [0, 1, u64::MAX] {
        let mut state: State = DEFAULT_POLICY.initial;
        for w in &mut state.workers {
            *w = policy_verifier::WorkerState {
                running: true,
                priority: v,
                budget_us: v,
                period_us: v,
                pages: v,
                timer_period_us: Some(v),
            };
        }
        state.pool_pages = v;
        for kind in policy_verifier::ActionKind::ALL {
            let action: Action = policy_prover::symbolic::template(*kind).map(|_| Worker::W3, |_| v);
            let case = Case { state, restarted: [v == 1; 4], action };
            differential::compare(&lim, &case).unwrap_or_else(|m| panic!("{m:?}\n{case:?}"));
        }
    }
}

#[test]
fn the_generator_hits_boundaries() {
    // the test above means little if the generator never produces limits.
    let lim = DEFAULT_POLICY.limits;
    let bounds = differential::boundaries(&lim);
    let mut rng = Rng::new(1);
    let mut seen_max = false;
    let mut seen_quota = false;
    for _ in 0..2_000 {
        let c = differential::random_case(&mut rng, &bounds);
        seen_max |= c.state.workers.iter().any(|w| w.pages == u64::MAX || w.budget_us == u64::MAX);
        seen_quota |= c.state.workers.iter().any(|w| w.pages == lim.quota_pages);
    }
    assert!(seen_max && seen_quota);
}
