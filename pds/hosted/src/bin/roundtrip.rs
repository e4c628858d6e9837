//! bench: the hosted plan round trip (plan in → receipt out through the link
//! PD's framed byte stream), median of 1000.
use std::time::Instant;

use hosted_system::{default_system_path, HostedSystem};
use pd_interface::link::{Reply, Request};

fn main() {
    let path = std::env::args()
        .nth(1)
        .map_or_else(default_system_path, Into::into);
    let sys = match HostedSystem::boot(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("boot failed: {e}");
            std::process::exit(1);
        }
    };
    let n = 1000u64;
    let mut samples = Vec::with_capacity(n as usize);
    for id in 1..=n {
        // two actions that keep the state valid forever: set, then cancel
        let plan = bench_plan(id);
        let t = Instant::now();
        let reply = sys.request(&Request::Apply(&plan));
        let dt = t.elapsed();
        match reply {
            Ok(Reply::Receipt(r)) if r.approved && r.executed == 2 => samples.push(dt),
            other => {
                eprintln!("plan {id}: unexpected reply {other:?}");
                std::process::exit(1);
            }
        }
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    println!(
        "hosted plan round trip (plan in -> receipt out), n={n}: median {median:?}, p99 {p99:?}"
    );
    sys.shutdown();
}

/// a two-action plan that keeps the state valid however often it runs.
fn bench_plan(id: u64) -> Vec<u8> {
    use policy_verifier::{Action, Plan, Worker};
    let mut actions = heapless::Vec::new();
    let _ = actions.push(Action::TimerSetPeriodic {
        pd: Worker::W0,
        period_us: 20_000,
    });
    let _ = actions.push(Action::TimerCancel { pd: Worker::W0 });
    let plan = Plan {
        version: 1,
        request_id: id,
        session: heapless::String::try_from("ops").unwrap_or_default(),
        reason: heapless::String::try_from("bench").unwrap_or_default(),
        actions,
        confirmation: None,
    };
    let mut buf = [0u8; policy_verifier::wire::MAX_PLAN_BYTES];
    policy_verifier::wire::encode(&plan, &mut buf)
        .map(|b| b.to_vec())
        .unwrap_or_default()
}
