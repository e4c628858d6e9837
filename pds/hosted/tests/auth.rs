//! the trust chain on the hosted system: plan frames authenticated by the
//! plan key's MAC, bound to the boot epoch; confirmation tokens bound to the
//! boot; request ids that cannot be exhausted; keys reported in the status.
//! judged at the capability PDs through the invocation log.

use std::time::Duration;

use hosted_system::{default_system_path, BootOptions, Handle, HostedSystem, KeySource, Keys, LinkStream};
use pd_interface::client::LinkClient;
use pd_interface::link::{Receipt, Reply, Request, SystemState};
use policy_verifier::{auth, confirm, wire, Action, Plan, Worker, DEFAULT_POLICY};

fn installation() -> Keys {
    Keys { plan: [0x5a; 32], confirm: [0xc3; 32], source: KeySource::Installation }
}

fn boot_with(keys: Keys) -> Handle {
    HostedSystem::boot_with(&default_system_path(), BootOptions { keys, ..Default::default() })
        .expect("the hosted system boots")
}

fn plan(id: u64, session: &str, actions: &[Action]) -> Plan {
    Plan {
        version: 1,
        request_id: id,
        session: heapless::String::try_from(session).unwrap(),
        reason: heapless::String::try_from("auth").unwrap(),
        actions: heapless::Vec::from_slice(actions).unwrap(),
        confirmation: None,
    }
}

fn encode(p: &Plan) -> Vec<u8> {
    let mut buf = [0u8; wire::MAX_PLAN_BYTES];
    wire::encode(p, &mut buf).unwrap().to_vec()
}

fn status(sys: &Handle) -> SystemState {
    match sys.request(&Request::Status).unwrap() {
        Reply::Status(s) => s,
        other => panic!("{other:?}"),
    }
}

/// a raw client: what it sends goes out exactly as given.
fn raw(sys: &Handle) -> LinkClient<LinkStream> {
    LinkClient::new(sys.transport(Some(Duration::from_secs(10))))
}

fn receipt(r: Reply) -> Receipt {
    match r {
        Reply::Receipt(r) => r,
        other => panic!("expected a receipt, got {other:?}"),
    }
}

fn names(r: &Receipt) -> Vec<&str> {
    r.names(&DEFAULT_POLICY).map(|(_, n)| n).collect()
}

fn grant(id: u64) -> Plan {
    plan(id, "ops", &[Action::MemoryGrant { pd: Worker::W1, pages: 4 }])
}

/// sends `req` raw and returns the receipt and the mutating invocations it caused.
fn send(sys: &Handle, req: &Request<'_>) -> (Receipt, usize) {
    let mark = sys.invocations().len();
    let r = receipt(raw(sys).request(req).unwrap());
    let n = sys.invocations().since(mark).iter().filter(|i| i.request.mutates()).count();
    (r, n)
}

#[test]
fn a_plan_frame_without_a_mac_is_refused_and_runs_nothing() {
    let sys = boot_with(installation());
    let bytes = encode(&grant(1));
    let (r, n) = send(&sys, &Request::Apply(&bytes));
    assert!(!r.approved);
    assert_eq!(names(&r), ["auth.mac"]);
    assert_eq!((r.executed, n), (0, 0));
    assert_eq!(status(&sys).workers[1].pages, 32);
    // the id is not spent: the same plan sealed by the key holder runs
    assert!(receipt(sys.request(&Request::Apply(&bytes)).unwrap()).approved);
}

#[test]
fn a_mac_under_another_key_is_refused_even_for_the_admin_session() {
    let sys = boot_with(installation());
    let epoch = status(&sys).epoch;
    let stop = plan(1, "admin", &[Action::ProcessStop { pd: Worker::W0 }]);
    // the attacker even knows the human's key, but not the plan key
    let stop = confirm::sign(&stop, &auth::epoch_key(&installation().confirm, epoch)).unwrap();
    for key in [[0x42; 32], Keys::dev().plan, installation().confirm] {
        let bytes = encode(&stop);
        let (r, n) = send(&sys, &Request::Apply(&bytes).sealed(&key, epoch));
        assert_eq!(names(&r), ["auth.mac"]);
        assert_eq!(n, 0);
    }
    assert!(status(&sys).workers[0].running);
}

#[test]
fn a_dev_key_system_says_so_and_an_installation_one_does_not() {
    let dev = boot_with(Keys::dev());
    let real = boot_with(installation());
    assert_eq!(status(&dev).keys, KeySource::Dev);
    assert_eq!(status(&real).keys, KeySource::Installation);
    let r = receipt(dev.request(&Request::Apply(&encode(&grant(1)))).unwrap());
    assert_eq!(r.state_after.keys, KeySource::Dev);
    // two boots, two epochs, never 0
    let (a, b) = (status(&dev).epoch, status(&real).epoch);
    assert!(a != 0 && b != 0 && a != b, "{a} {b}");
}

#[test]
fn a_plan_approved_before_a_reboot_is_refused_after_it() {
    let keys = installation();
    let first = boot_with(keys);
    let epoch = status(&first).epoch;
    let stop = plan(1, "admin", &[Action::ProcessStop { pd: Worker::W2 }]);
    let stop = confirm::sign(&stop, &auth::epoch_key(&keys.confirm, epoch)).unwrap();
    let bytes = encode(&stop);
    let captured = Request::Apply(&bytes).sealed(&keys.plan, epoch);
    let (r, n) = send(&first, &captured);
    assert!(r.approved && n == 1, "{r:?}");
    first.shutdown();

    // the same system restarted: ids start again at 1, worker2 runs again
    let second = boot_with(keys);
    let now = status(&second);
    assert_ne!(now.epoch, epoch);
    assert!(now.workers[2].running);
    // the captured frame, byte for byte
    let (r, n) = send(&second, &captured);
    assert_eq!(names(&r), ["plan.replay"]);
    assert_eq!(n, 0);
    // resealed by the key holder for the new boot: the human's token was for the old one
    let (r, n) = send(&second, &Request::Apply(&bytes).sealed(&keys.plan, now.epoch));
    assert_eq!(names(&r), ["auth.confirm"]);
    assert_eq!(n, 0);
    assert!(status(&second).workers[2].running);
}

#[test]
fn a_token_under_another_key_is_refused() {
    let keys = installation();
    let sys = boot_with(keys);
    let epoch = status(&sys).epoch;
    let stop = plan(1, "admin", &[Action::ProcessStop { pd: Worker::W3 }]);
    let wrong = [
        auth::epoch_key(&pd_verifier::DEV_KEY, epoch),
        auth::epoch_key(&[0x42; 32], epoch),
        auth::epoch_key(&keys.plan, epoch),
        // the right key, but the offline form and another boot's
        keys.confirm,
        auth::epoch_key(&keys.confirm, epoch ^ 1),
    ];
    for key in wrong {
        let forged = confirm::sign(&stop, &key).unwrap();
        let r = receipt(sys.request(&Request::Apply(&encode(&forged))).unwrap());
        assert_eq!(names(&r), ["auth.confirm"], "{r:?}");
    }
    assert!(status(&sys).workers[3].running);
    // the right key for this boot: it runs
    let ok = confirm::sign(&stop, &auth::epoch_key(&keys.confirm, epoch)).unwrap();
    assert!(receipt(sys.request(&Request::Apply(&encode(&ok))).unwrap()).approved);
}

#[test]
fn request_id_u64_max_no_longer_locks_later_plans_out() {
    let sys = boot_with(installation());
    let w = DEFAULT_POLICY.limits.replay_window;
    let viewer = plan(u64::MAX, "viewer", &[Action::SystemQuery {}]);
    let r = receipt(sys.request(&Request::Apply(&encode(&viewer))).unwrap());
    assert_eq!(names(&r), ["plan.replay"]);
    assert_eq!(status(&sys).last_request_id, 0);
    // past the window: refused; at its edge: runs
    let r = receipt(sys.request(&Request::Apply(&encode(&grant(w + 1)))).unwrap());
    assert_eq!(names(&r), ["plan.replay"]);
    assert!(receipt(sys.request(&Request::Apply(&encode(&grant(w)))).unwrap()).approved);
    assert!(receipt(sys.request(&Request::Apply(&encode(&grant(w + 1)))).unwrap()).approved);
    assert_eq!(status(&sys).last_request_id, w + 1);
}

#[test]
fn a_read_back_state_that_breaks_an_invariant_runs_nothing() {
    // the memory PD claims a pool of 100 pages while the workers hold 128
    let opts = BootOptions { keys: installation(), misreport_pool_pages: Some(100), ..Default::default() };
    let sys = HostedSystem::boot_with(&default_system_path(), opts).expect("boots");
    let mark = sys.invocations().len();
    let query = receipt(sys.request(&Request::Apply(&encode(&plan(1, "viewer", &[Action::SystemQuery {}])))).unwrap());
    let r = receipt(sys.request(&Request::Apply(&encode(&grant(2)))).unwrap());
    for r in [&query, &r] {
        assert!(!r.approved);
        assert_eq!(names(r), ["mem.pool"]);
        assert_eq!(r.executed, 0);
    }
    assert_eq!(sys.invocations().since(mark).iter().filter(|i| i.request.mutates()).count(), 0);
    assert_eq!(status(&sys).last_request_id, 0);
}
