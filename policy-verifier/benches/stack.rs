//! the verifier's peak stack use, measured: the least thread stack on which
//! `state_violations`, `verify` (16 actions, one destructive, so the
//! confirmation's HMAC runs) and `apply` of each action complete, less the
//! least stack an empty thread needs (both under the same padding). the
//! rule on the verifier PD's `stack_size` (system-manifest's
//! `verifier_stack_need`) is built on these numbers. `cargo bench -p
//! policy-verifier --bench stack` prints the bytes at the build's worker
//! count; `LLM_OS_POLICY` naming a policy with other `workers` moves it.
//!
//! each try runs in a child process: a thread that overflows its stack
//! aborts the process, which is the answer "too small".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::arithmetic_side_effects, missing_docs, reason = "a bench binary")]

use std::hint::black_box;
use std::process::Command;

use policy_verifier::plan::PLAN_VERSION;
use policy_verifier::{confirm, verify, Action, Plan, Worker, DEFAULT_POLICY, N_WORKERS};

const KEY: [u8; 32] = [0x42; 32];
/// the child's mode: the stack size to try, and the workload.
const CHILD: &str = "PV_STACK_CHILD";

/// sixteen admin actions over every worker, one restart among them.
fn plan() -> Plan {
    let w = |i: usize| Worker::from_index(i % N_WORKERS).unwrap();
    let mut actions = heapless::Vec::new();
    for i in 0..15 {
        let a = match i % 5 {
            0 => Action::MemoryGrant { pd: w(i), pages: 1 },
            1 => Action::ProcessSetPriority { pd: w(i), priority: 60 },
            2 => Action::ProcessSetBudget { pd: w(i), budget_us: 500, period_us: 10000 },
            3 => Action::TimerSetPeriodic { pd: w(i), period_us: 20000 },
            _ => Action::TimerCancel { pd: w(i) },
        };
        actions.push(a).unwrap();
    }
    actions.push(Action::ProcessRestart { pd: w(0) }).unwrap();
    let p = Plan {
        version: PLAN_VERSION,
        request_id: DEFAULT_POLICY.initial.last_request_id + 1,
        session: heapless::String::try_from("admin").unwrap(),
        reason: heapless::String::try_from("stack probe").unwrap(),
        actions,
        confirmation: None,
    };
    confirm::sign(&p, &KEY).unwrap()
}

fn workload() {
    let p = black_box(plan());
    let s = black_box(DEFAULT_POLICY.initial);
    black_box(verify::state_violations(&DEFAULT_POLICY, &s));
    let v = black_box(verify::verify(&DEFAULT_POLICY, &s, &p, &KEY));
    let mut t = s;
    for a in &p.actions {
        t = black_box(verify::apply(&t, a));
    }
    black_box((v, t));
}

/// the workload (or nothing) under 64 KiB of padding, so that both tries
/// lie above the least stack a thread is given whatever it asks for.
#[inline(never)]
fn padded(work: bool) {
    let pad = black_box([1u8; 64 << 10]);
    if work {
        workload();
    }
    black_box(&pad);
}

/// whether the workload (or nothing) completes on a thread of `stack` bytes.
fn fits(stack: usize, work: bool) -> bool {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .env(CHILD, format!("{stack}:{work}"))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// the least stack, to a page, on which the thread completes.
fn least(work: bool) -> usize {
    let (mut lo, mut hi) = (0usize, 4 << 20);
    assert!(fits(hi, work), "4 MiB is not enough");
    while hi - lo > 4096 {
        let mid = (lo + hi) / 2 / 4096 * 4096;
        if fits(mid, work) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

fn main() {
    if let Ok(arg) = std::env::var(CHILD) {
        let (stack, work) = arg.split_once(':').unwrap();
        let work = work == "true";
        let t = std::thread::Builder::new().stack_size(stack.parse().unwrap()).spawn(move || padded(work));
        std::process::exit(if t.map(|t| t.join().is_ok()).unwrap_or(false) { 0 } else { 1 });
    }
    let empty = least(false);
    let used = least(true);
    println!("workers: {N_WORKERS}");
    println!("verifier stack: {} bytes ({} KiB)", used - empty, (used - empty) / 1024);
}
