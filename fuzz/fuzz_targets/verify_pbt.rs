//! the verifier on arbitrary plans × states (a property, like cedar's
//! `*-pbt`): `verify` never panics; from a state that satisfies every state
//! invariant, an approved plan leads step by step through states that
//! satisfy them too, and ends in the verdict's state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_verifier::verify::{self, state_violations};
use policy_verifier::{wire, State, WorkerState, DEFAULT_POLICY};

/// a state from 4 × 6 numbers; small values are likelier to be reachable.
fn state(bytes: &[u8]) -> State {
    let mut it = bytes.chunks(2).map(|c| u64::from(c[0]) * if c.len() > 1 { u64::from(c[1]) + 1 } else { 1 });
    let mut next = || it.next().unwrap_or(0);
    let mut s = DEFAULT_POLICY.initial;
    for w in &mut s.workers {
        *w = WorkerState {
            running: next() % 2 == 0,
            priority: next() % 128,
            budget_us: 100 + next() * 40,
            period_us: 1000 + next() * 400,
            pages: next() % 300,
            timer_period_us: match next() {
                0 => None,
                n => Some(n * 100),
            },
        };
    }
    s.last_request_id = next();
    s
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = usize::from(data[0]).min(data.len() - 1);
    let (s_bytes, p_bytes) = data[1..].split_at(split);
    let s = state(s_bytes);
    let Ok(plan) = wire::decode(p_bytes) else { return };
    let key = [7u8; 32];
    let v = verify::verify(&DEFAULT_POLICY, &s, &plan, &key);
    if !state_violations(&DEFAULT_POLICY, &s).is_empty() {
        return;
    }
    if v.approved {
        let mut m = s;
        for a in &plan.actions {
            m = verify::apply(&m, a);
            assert!(state_violations(&DEFAULT_POLICY, &m).is_empty(), "approved plan broke an invariant at {a:?}");
        }
        m.last_request_id = plan.request_id;
        assert_eq!(m, v.state);
        assert!(plan.request_id > s.last_request_id);
    }
});
