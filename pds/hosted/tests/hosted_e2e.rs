//! end to end on the hosted system: plans go in as frames on the link PD's
//! byte stream, receipts come back, and the state in them is read back from
//! the capability PDs.

use std::time::{Duration, Instant};

use hosted_system::{default_system_path, Handle, HostedSystem};
use pd_interface::client::LinkClient;
use pd_interface::link::{LinkError, Receipt, Reply, Request, SystemState};
use policy_verifier::{confirm, wire, Action, Plan, Worker};

fn boot() -> Handle {
    HostedSystem::boot(&default_system_path()).expect("the hosted system boots")
}

fn plan(id: u64, session: &str, actions: &[Action]) -> Plan {
    Plan {
        version: 1,
        request_id: id,
        session: heapless::String::try_from(session).unwrap(),
        reason: heapless::String::try_from("test").unwrap(),
        actions: heapless::Vec::from_slice(actions).unwrap(),
        confirmation: None,
    }
}

fn encode(p: &Plan) -> Vec<u8> {
    let mut buf = [0u8; wire::MAX_PLAN_BYTES];
    wire::encode(p, &mut buf).unwrap().to_vec()
}

fn apply(sys: &Handle, p: &Plan) -> Receipt {
    match sys.request(&Request::Apply(&encode(p))).expect("a reply") {
        Reply::Receipt(r) => r,
        other => panic!("expected a receipt, got {other:?}"),
    }
}

/// the human's token for `p` on this boot (the dev key, this boot's epoch).
fn sign(sys: &Handle, p: &Plan) -> Plan {
    let key = policy_verifier::auth::epoch_key(&pd_verifier::DEV_KEY, status(sys).epoch);
    confirm::sign(p, &key).unwrap()
}

fn status(sys: &Handle) -> SystemState {
    match sys.request(&Request::Status).expect("a reply") {
        Reply::Status(s) => s,
        other => panic!("expected a status, got {other:?}"),
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn boots_into_the_policy_initial_state() {
    let sys = boot();
    let s = status(&sys);
    // the policy's initial state, whatever policy.toml the PDs were built with
    let init = &policy_verifier::DEFAULT_POLICY.initial;
    for (w, want) in s.workers.iter().zip(&init.workers) {
        assert!(w.running);
        assert_eq!(
            (
                w.priority,
                w.budget_us,
                w.period_us,
                w.pages,
                w.timer_period_us
            ),
            (
                want.priority,
                want.budget_us,
                want.period_us,
                want.pages,
                None
            )
        );
    }
    let held: u64 = init.workers.iter().map(|w| w.pages).sum();
    assert_eq!(
        (s.pool_pages, s.free_pages, s.last_request_id),
        (init.pool_pages, init.pool_pages - held, init.last_request_id)
    );
    // the model the verifier builds from it is the policy's initial state
    assert_eq!(
        pd_verifier::model_state(&s),
        policy_verifier::DEFAULT_POLICY.initial
    );
    // the kernel-side priority (what process set at boot) agrees
    assert_eq!(sys.pd("worker0").unwrap().priority, 50);
}

#[test]
fn approved_plan_changes_the_real_state() {
    let sys = boot();
    let p = plan(
        7,
        "ops",
        &[
            Action::MemoryGrant {
                pd: Worker::W1,
                pages: 16,
            },
            Action::ProcessSetPriority {
                pd: Worker::W1,
                priority: 90,
            },
            Action::ProcessSetBudget {
                pd: Worker::W1,
                budget_us: 2000,
                period_us: 10_000,
            },
            Action::TimerSetPeriodic {
                pd: Worker::W1,
                period_us: 2_000,
            },
            Action::FirmwareInventory {
                query: policy_verifier::InventoryQuery::Devices,
            },
            Action::SystemQuery {},
        ],
    );
    let r = apply(&sys, &p);
    assert!(r.approved, "{r:?}");
    assert_eq!(
        (r.executed, r.failed_action, r.violations.len()),
        (6, None, 0)
    );
    let w1 = r.state_after.workers[1];
    assert_eq!(
        (w1.pages, w1.priority, w1.budget_us, w1.timer_period_us),
        (48, 90, 2000, Some(2_000))
    );
    assert_eq!(r.state_before.workers[1].pages, 32);
    assert_eq!(r.state_after.last_request_id, 7);
    // the pool less every worker's initial pages, less the grant
    assert_eq!(r.state_after.free_pages, r.state_before.free_pages - 16);
    assert_eq!(r.state_before.free_pages, 512 - 32 * policy_verifier::N_WORKERS as u64);
    let inv = r.inventory.expect("the inventory answer");
    assert!(inv.devices.iter().any(|d| d.compatible == "arm,pl011"));
    // the PDs really changed: the process PD's child runs at 90, the worker
    // sees 48 pages in the ledger and makes progress on its timer
    assert_eq!(sys.pd("worker1").unwrap().priority, 90);
    wait_for("worker1 progress", || {
        let s = status(&sys);
        s.workers[1].progress >= 3 && s.workers[1].ticks >= 3
    });
    let s = status(&sys);
    assert_eq!(s.workers[0].progress, 0, "worker0 has no timer");
    assert_eq!(s.workers[1].pages, 48);
}

#[test]
fn rejected_plan_changes_nothing() {
    let sys = boot();
    let before = status(&sys);
    let p = plan(
        3,
        "ops",
        &[
            Action::TimerSetPeriodic {
                pd: Worker::W0,
                period_us: 5_000,
            },
            Action::MemoryGrant {
                pd: Worker::W0,
                pages: 300,
            },
        ],
    );
    let r = apply(&sys, &p);
    assert!(!r.approved);
    assert_eq!(r.executed, 0);
    assert_eq!(r.names(&policy_verifier::DEFAULT_POLICY).collect::<Vec<_>>(), [(1, "mem.quota")]);
    assert_eq!(r.state_after, r.state_before);
    let after = status(&sys);
    assert_eq!(
        after.workers[0].timer_period_us, None,
        "the first, valid action was not run either"
    );
    assert_eq!(
        after.workers.map(|w| w.pages),
        before.workers.map(|w| w.pages)
    );
    assert_eq!(after.last_request_id, 0);
}

#[test]
fn observer_session_cannot_change_anything() {
    let sys = boot();
    let r = apply(
        &sys,
        &plan(
            1,
            "viewer",
            &[Action::MemoryGrant {
                pd: Worker::W2,
                pages: 1,
            }],
        ),
    );
    assert!(!r.approved);
    assert!(r.names(&policy_verifier::DEFAULT_POLICY).any(|(_, n)| n == "auth.tier"));
    assert_eq!(status(&sys).workers[2].pages, 32);
}

#[test]
fn destructive_plan_needs_the_token_and_then_runs() {
    let sys = boot();
    let actions = [
        Action::ProcessStop { pd: Worker::W2 },
        Action::MemoryReclaim {
            pd: Worker::W2,
            pages: 8,
        },
    ];
    let unsigned = plan(5, "admin", &actions);
    let r = apply(&sys, &unsigned);
    assert!(!r.approved);
    assert!(r.names(&policy_verifier::DEFAULT_POLICY).any(|(a, n)| n == "auth.confirm" && a == 0));
    let signed = sign(&sys, &plan(6, "admin", &actions));
    let r = apply(&sys, &signed);
    assert!(r.approved, "{r:?}");
    assert_eq!(r.executed, 2);
    assert!(!r.state_after.workers[2].running);
    assert_eq!(r.state_after.workers[2].pages, 24);
    assert_eq!(
        sys.pd("worker2").unwrap().state,
        pd_runtime::hosted::RunState::Stopped
    );
    // the same signed plan again is the host's retry: the stored receipt
    // comes back and nothing runs twice
    let again = apply(&sys, &signed);
    assert_eq!(again, r);
    assert_eq!(status(&sys).workers[2].pages, 24);
    // a token does not transfer to other content under a spent id
    let other = [Action::ProcessStop { pd: Worker::W1 }];
    let mut forged = sign(&sys, &plan(6, "admin", &other));
    let r = apply(&sys, &forged);
    assert!(!r.approved);
    assert!(r.names(&policy_verifier::DEFAULT_POLICY).any(|(_, n)| n == "plan.replay"));
    forged.request_id = 7;
    let r = apply(&sys, &forged);
    assert!(r.names(&policy_verifier::DEFAULT_POLICY).any(|(_, n)| n == "auth.confirm"));
}

#[test]
fn worker_fault_is_handled_by_the_process_pd() {
    let sys = boot();
    // give worker3 a timer so it has work to lose
    assert!(
        apply(
            &sys,
            &plan(
                1,
                "ops",
                &[Action::TimerSetPeriodic {
                    pd: Worker::W3,
                    period_us: 1_000
                }]
            )
        )
        .approved
    );
    wait_for("worker3 progress", || status(&sys).workers[3].progress >= 2);
    assert!(sys.inject_fault("worker3"));
    wait_for("fault handled", || {
        let w = status(&sys).workers[3];
        w.faults == 1 && w.restarts == 1
    });
    // restarted from its entry: running again, progress starts over and grows
    let w = status(&sys).workers[3];
    assert!(w.running);
    wait_for("progress after restart", || {
        status(&sys).workers[3].progress >= 2
    });
    // past the restart limit the worker stays stopped, and the model sees it
    for n in 2..=4 {
        assert!(sys.inject_fault("worker3"));
        wait_for("next fault", || status(&sys).workers[3].faults == n);
    }
    let s = status(&sys);
    assert!(!s.workers[3].running);
    assert_eq!(s.workers[3].restarts, 3);
    // and the verifier uses that state: starting it again is now a valid plan
    let r = apply(
        &sys,
        &plan(2, "admin", &[Action::ProcessStart { pd: Worker::W3 }]),
    );
    assert!(r.approved, "{r:?}");
    assert!(r.state_after.workers[3].running);
    // other workers were not disturbed
    assert_eq!(s.workers[0].faults, 0);
}

#[test]
fn a_plan_of_sixteen_actions_runs_in_order() {
    let sys = boot();
    let mut actions = Vec::new();
    for i in 0..8u64 {
        actions.push(Action::MemoryGrant {
            pd: Worker::W0,
            pages: 1,
        });
        actions.push(Action::ProcessSetPriority {
            pd: Worker::W0,
            priority: 51 + i,
        });
    }
    let r = apply(&sys, &plan(1, "ops", &actions));
    assert!(r.approved, "{r:?}");
    assert_eq!(r.executed, 16);
    assert_eq!(
        (
            r.state_after.workers[0].pages,
            r.state_after.workers[0].priority
        ),
        (40, 58)
    );
}

#[test]
fn a_stream_of_1000_plans() {
    let sys = boot();
    for id in 1..=1000u64 {
        let period = 1_000 + (id % 50) * 1_000;
        let r = apply(
            &sys,
            &plan(
                id,
                "ops",
                &[Action::TimerSetPeriodic {
                    pd: Worker::W1,
                    period_us: period,
                }],
            ),
        );
        assert!(r.approved && r.executed == 1, "plan {id}: {r:?}");
        assert_eq!(r.state_after.workers[1].timer_period_us, Some(period));
    }
    assert_eq!(status(&sys).last_request_id, 1000);
}

#[test]
fn garbage_on_the_link_is_answered_and_the_link_resynchronises() {
    let sys = boot();
    let mut client = LinkClient::new(sys.transport(Some(Duration::from_secs(10))))
        .with_plan_key(hosted_system::Keys::dev().plan);
    // junk, then a frame with a flipped byte: two framed errors, no crash
    client.send_raw(&[0x41, 0x42, 0x43, 0x00]).unwrap();
    assert_eq!(
        client.read_reply().unwrap(),
        Reply::Error(LinkError::BadFrame)
    );
    let mut framed =
        LinkClient::<hosted_system::LinkStream>::frame_request(&Request::Status).unwrap();
    framed[1] ^= 0x80; // never turns a byte into a delimiter here (0x01 -> 0x81)
    assert_ne!(framed[1], 0);
    client.send_raw(&framed).unwrap();
    assert_eq!(
        client.read_reply().unwrap(),
        Reply::Error(LinkError::BadFrame)
    );
    // a well-framed, authenticated request that is not a plan
    let r = client
        .request(&Request::Apply(&[0xff, 0xff, 0xff]))
        .unwrap();
    assert_eq!(r, Reply::Error(LinkError::BadPlan));
    // and the link still works
    assert!(matches!(
        client.request(&Request::Status).unwrap(),
        Reply::Status(_)
    ));
}

#[test]
fn a_system_failing_the_graph_check_does_not_boot() {
    let path = default_system_path().with_file_name("fixtures/link-to-memory.system");
    let err = HostedSystem::boot(&path).err().expect("refused");
    assert!(
        err.to_string()
            .contains("capability PD `memory` is reachable from `link`"),
        "{err}"
    );
}
