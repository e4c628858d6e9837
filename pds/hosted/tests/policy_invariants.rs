//! a policy-file invariant enforced by the running (hosted) system: the
//! verifier PD booted with tests/policies/max-stopped.toml refuses the plan
//! that would stop a third worker, names `proc.max_stopped` in the receipt,
//! and invokes no capability PD for it.

use hosted_system::{default_system_path, BootOptions, Handle, HostedSystem};
use pd_interface::link::{Receipt, Reply, Request, SystemState};
use policy_verifier::{confirm, json, wire, Action, Plan, Policy, Worker};

fn boot(policy: &'static Policy) -> Handle {
    let opts = BootOptions { policy: Some(policy), ..BootOptions::default() };
    HostedSystem::boot_with(&default_system_path(), opts).expect("the hosted system boots")
}

fn status(sys: &Handle) -> SystemState {
    match sys.request(&Request::Status).expect("a reply") {
        Reply::Status(s) => s,
        other => panic!("expected a status, got {other:?}"),
    }
}

/// an admin plan with the human's token for this boot (dev key, its epoch).
fn plan(sys: &Handle, id: u64, actions: &[Action]) -> Plan {
    let p = Plan {
        version: 1,
        request_id: id,
        session: heapless::String::try_from("admin").unwrap(),
        reason: heapless::String::try_from("test").unwrap(),
        actions: heapless::Vec::from_slice(actions).unwrap(),
        confirmation: None,
    };
    let key = policy_verifier::auth::epoch_key(&pd_verifier::DEV_KEY, status(sys).epoch);
    confirm::sign(&p, &key).unwrap()
}

fn apply(sys: &Handle, p: &Plan) -> Receipt {
    let mut buf = [0u8; wire::MAX_PLAN_BYTES];
    let bytes = wire::encode(p, &mut buf).unwrap().to_vec();
    match sys.request(&Request::Apply(&bytes)).expect("a reply") {
        Reply::Receipt(r) => r,
        other => panic!("expected a receipt, got {other:?}"),
    }
}

#[test]
fn the_running_verifier_enforces_a_policy_file_invariant() {
    let text = include_str!("../../../tests/policies/max-stopped.toml");
    let policy: &'static Policy = Box::leak(Box::new(json::parse_policy(text).expect("example policy")));
    let sys = boot(policy);
    let stop = |pd| Action::ProcessStop { pd };
    let r = apply(&sys, &plan(&sys, 1, &[stop(Worker::W0), stop(Worker::W1)]));
    assert!(r.approved && r.executed == 2, "{r:?}");
    let r = apply(&sys, &plan(&sys, 2, &[Action::SystemQuery {}, stop(Worker::W2)]));
    assert!(!r.approved, "{r:?}");
    assert_eq!(r.executed, 0);
    let names: Vec<(u8, &str)> = r.names(policy).collect();
    assert_eq!(names, [(1, "proc.max_stopped")]);
    assert!(r.state_after.workers[2].running, "worker2 still runs: nothing was invoked");
    assert_eq!(r.state_after.workers.iter().filter(|w| !w.running).count(), 2);
    // the compiled-in default policy accepts the same plan.
    let sys = HostedSystem::boot(&default_system_path()).expect("boots");
    assert!(apply(&sys, &plan(&sys, 1, &[stop(Worker::W0), stop(Worker::W1), stop(Worker::W2)])).approved);
}
