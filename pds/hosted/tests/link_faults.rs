//! link faults on the hosted system: bit flips, truncation,
//! duplication, reordering, replay and lost receipts on the framed byte
//! stream. judged at the capability PDs through the invocation log: no
//! action runs twice or without an approved plan, and every approved plan
//! has exactly one receipt, which a retry gets back unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use hosted_system::{default_system_path, Handle, HostedSystem, Invocation, LinkStream};
use pd_interface::client::LinkClient;
use pd_interface::link::{LinkError, Receipt, Reply, Request};
use policy_verifier::{confirm, wire, Action, Plan, Worker};

fn boot() -> Handle {
    HostedSystem::boot(&default_system_path()).expect("the hosted system boots")
}

fn client(sys: &Handle) -> LinkClient<LinkStream> {
    LinkClient::new(sys.transport(Some(Duration::from_secs(10))))
}

fn plan(id: u64, session: &str, actions: &[Action]) -> Plan {
    Plan {
        version: 1,
        request_id: id,
        session: heapless::String::try_from(session).unwrap(),
        reason: heapless::String::try_from("link faults").unwrap(),
        actions: heapless::Vec::from_slice(actions).unwrap(),
        confirmation: None,
    }
}

fn epoch(sys: &Handle) -> u64 {
    match sys.request(&Request::Status).unwrap() {
        Reply::Status(s) => s.epoch,
        other => panic!("{other:?}"),
    }
}

/// the frame the host sends for `p`: sealed with the (dev) plan key for
/// this boot's epoch.
fn framed(sys: &Handle, p: &Plan) -> Vec<u8> {
    let mut buf = [0u8; wire::MAX_PLAN_BYTES];
    let bytes = wire::encode(p, &mut buf).unwrap().to_vec();
    let req = Request::Apply(&bytes).sealed(&hosted_system::Keys::dev().plan, epoch(sys));
    LinkClient::<LinkStream>::frame_request(&req).unwrap()
}

/// the mutating invocations since `from`, as plan actions.
fn actions_since(sys: &Handle, from: usize) -> Vec<Action> {
    sys.invocations()
        .since(from)
        .iter()
        .filter(|i: &&Invocation| i.request.mutates())
        .map(|i| {
            i.request
                .to_action()
                .expect("a mutating invocation is an action")
        })
        .collect()
}

/// the replies to everything sent so far: a `Status` request goes last as a
/// sentinel and replies are read up to its answer (no timeouts involved).
fn drain(c: &mut LinkClient<LinkStream>) -> Vec<Reply> {
    let sentinel = LinkClient::<LinkStream>::frame_request(&Request::Status).unwrap();
    c.send_raw(&sentinel).unwrap();
    let mut out = Vec::new();
    loop {
        match c.read_reply() {
            Ok(Reply::Status(_)) => return out,
            Ok(r) => out.push(r),
            Err(e) => panic!("link broke: {e}"),
        }
    }
}

/// the host's retry: resend the same frame until a receipt for `id` comes
/// back (at most `tries` sends).
fn apply_with_retry(
    c: &mut LinkClient<LinkStream>,
    frame: &[u8],
    id: u64,
    tries: usize,
) -> Option<Receipt> {
    for _ in 0..tries {
        c.send_raw(frame).unwrap();
        for r in drain(c) {
            if let Reply::Receipt(r) = r {
                if r.request_id == id {
                    return Some(r);
                }
            }
        }
    }
    None
}

fn grant(id: u64, w: Worker, pages: u64) -> Plan {
    plan(id, "ops", &[Action::MemoryGrant { pd: w, pages }])
}

#[test]
fn every_single_bit_flip_in_a_plan_frame_is_dropped() {
    let sys = boot();
    let mut c = client(&sys);
    let f = framed(&sys, &grant(1, Worker::W1, 4));
    let before = sys.invocations().len();
    // every bit of every byte except the final delimiter
    for i in 0..f.len() - 1 {
        for bit in 0..8 {
            let mut bad = f.clone();
            bad[i] ^= 1 << bit;
            c.send_raw(&bad).unwrap();
            for r in drain(&mut c) {
                assert!(
                    matches!(
                        r,
                        Reply::Error(
                            LinkError::BadFrame | LinkError::BadRequest | LinkError::BadPlan
                        )
                    ),
                    "flip of byte {i} bit {bit} got {r:?}"
                );
            }
        }
    }
    assert_eq!(
        actions_since(&sys, before),
        vec![],
        "a corrupted frame ran an action"
    );
    // and the link still works: the intact frame runs exactly once
    let r = apply_with_retry(&mut c, &f, 1, 1).expect("a receipt");
    assert!(r.approved && r.executed == 1);
    assert_eq!(
        actions_since(&sys, before),
        vec![Action::MemoryGrant {
            pd: Worker::W1,
            pages: 4
        }]
    );
}

#[test]
fn truncated_frames_run_nothing() {
    let sys = boot();
    let mut c = client(&sys);
    let f = framed(&sys, &grant(1, Worker::W0, 8));
    let before = sys.invocations().len();
    for cut in 1..f.len() - 1 {
        let mut bad = f[..cut].to_vec();
        bad.push(0); // the delimiter arrives early
        c.send_raw(&bad).unwrap();
        for r in drain(&mut c) {
            assert!(matches!(r, Reply::Error(_)), "cut at {cut} got {r:?}");
        }
    }
    assert_eq!(actions_since(&sys, before), vec![]);
}

#[test]
fn a_duplicated_frame_runs_once_and_both_copies_get_the_same_receipt() {
    let sys = boot();
    let mut c = client(&sys);
    let f = framed(&sys, &grant(1, Worker::W2, 16));
    let before = sys.invocations().len();
    let mut twice = f.clone();
    twice.extend_from_slice(&f);
    c.send_raw(&twice).unwrap();
    let replies = drain(&mut c);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(
        replies[0], replies[1],
        "the duplicate gets the stored receipt"
    );
    assert!(matches!(&replies[0], Reply::Receipt(r) if r.approved && r.executed == 1));
    assert_eq!(actions_since(&sys, before).len(), 1, "executed once");
}

#[test]
fn a_lost_receipt_is_retried_safely() {
    let sys = boot();
    let mut c = client(&sys);
    let f = framed(&sys, &grant(1, Worker::W3, 32));
    let before = sys.invocations().len();
    c.send_raw(&f).unwrap();
    let first = drain(&mut c); // the host never sees this: lost on the way
    assert_eq!(first.len(), 1);
    let again = apply_with_retry(&mut c, &f, 1, 3).expect("the retry gets a receipt");
    assert_eq!(
        Reply::Receipt(again.clone()),
        first[0],
        "the stored receipt, not a new one"
    );
    assert!(
        again.approved,
        "a retry is not a replay: {:?}",
        again.violations
    );
    assert_eq!(actions_since(&sys, before).len(), 1, "executed once");
    let pages = match sys.request(&Request::Status).unwrap() {
        Reply::Status(s) => s.workers[3].pages,
        r => panic!("{r:?}"),
    };
    assert_eq!(pages, 32 + 32);
}

#[test]
fn reordered_and_replayed_plans_never_run_twice() {
    let sys = boot();
    let mut c = client(&sys);
    let p1 = framed(&sys, &grant(1, Worker::W0, 1));
    let p2 = framed(&sys, &grant(2, Worker::W0, 2));
    let p3 = framed(&sys, &grant(3, Worker::W0, 3));
    let before = sys.invocations().len();
    // 2 overtakes 1: 2 runs, 1 is a replay and does not
    let r2 = apply_with_retry(&mut c, &p2, 2, 1).unwrap();
    let r1 = apply_with_retry(&mut c, &p1, 1, 1).unwrap();
    assert!(r2.approved);
    assert!(!r1.approved && r1.names(&policy_verifier::DEFAULT_POLICY).any(|(_, n)| n == "plan.replay"));
    // 3 runs; 2 again is an old plan now (only the last receipt is kept)
    assert!(apply_with_retry(&mut c, &p3, 3, 1).unwrap().approved);
    let r2b = apply_with_retry(&mut c, &p2, 2, 1).unwrap();
    assert!(!r2b.approved && r2b.names(&policy_verifier::DEFAULT_POLICY).any(|(_, n)| n == "plan.replay"));
    // 3 again is the retry of the last plan: its receipt, no execution
    let r3b = apply_with_retry(&mut c, &p3, 3, 1).unwrap();
    assert!(r3b.approved);
    assert_eq!(
        actions_since(&sys, before),
        vec![
            Action::MemoryGrant {
                pd: Worker::W0,
                pages: 2
            },
            Action::MemoryGrant {
                pd: Worker::W0,
                pages: 3
            },
        ]
    );
}

#[test]
fn a_same_id_plan_with_other_content_is_a_replay_not_a_retry() {
    let sys = boot();
    let mut c = client(&sys);
    let before = sys.invocations().len();
    assert!(
        apply_with_retry(&mut c, &framed(&sys, &grant(1, Worker::W1, 1)), 1, 1)
            .unwrap()
            .approved
    );
    let forged = apply_with_retry(&mut c, &framed(&sys, &grant(1, Worker::W1, 200)), 1, 1).unwrap();
    assert!(!forged.approved);
    assert!(forged.names(&policy_verifier::DEFAULT_POLICY).any(|(_, n)| n == "plan.replay"));
    assert_eq!(actions_since(&sys, before).len(), 1);
}

/// a tiny deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// a seeded campaign mixing every fault; the oracle: the mutating
/// invocations are exactly the actions of the approved plans, each once,
/// in request order, and every approved plan has one receipt.
#[test]
fn a_random_fault_campaign_keeps_exactly_once() {
    let sys = boot();
    let mut c = client(&sys);
    let mut rng = Rng(0x5eed_1e55_0000_0007);
    let before = sys.invocations().len();
    let mut receipts: BTreeMap<u64, Receipt> = BTreeMap::new();
    let mut expected: Vec<Action> = Vec::new();
    let mut id = 0u64;
    let workers = Worker::ALL;
    for _round in 0..60 {
        id += 1;
        let w = workers[rng.below(4) as usize];
        // some plans are legal, some break an invariant (quota, priority)
        let p = match rng.below(4) {
            0 => plan(
                id,
                "ops",
                &[Action::ProcessSetPriority {
                    pd: w,
                    priority: 40 + rng.below(70),
                }],
            ),
            1 => plan(
                id,
                "ops",
                &[Action::TimerSetPeriodic {
                    pd: w,
                    period_us: 1000 + rng.below(20_000),
                }],
            ),
            2 => plan(
                id,
                "ops",
                &[Action::MemoryGrant {
                    pd: w,
                    pages: rng.below(8),
                }],
            ),
            _ => {
                let p = plan(id, "admin", &[Action::ProcessRestart { pd: w }]);
                let key = policy_verifier::auth::epoch_key(&pd_verifier::DEV_KEY, epoch(&sys));
                confirm::sign(&p, &key).unwrap()
            }
        };
        let f = framed(&sys, &p);
        // the fault on the first send; the host then retries with the same frame
        match rng.below(6) {
            0 => {}
            1 => {
                let mut bad = f.clone();
                let i = rng.below(f.len() as u64 - 1) as usize;
                bad[i] ^= 1 << rng.below(8);
                c.send_raw(&bad).unwrap();
            }
            2 => {
                let cut = 1 + rng.below(f.len() as u64 - 2) as usize;
                let mut bad = f[..cut].to_vec();
                bad.push(0);
                c.send_raw(&bad).unwrap();
            }
            3 => c.send_raw(&f).unwrap(), // duplicate: it arrives twice
            4 => {
                // lost receipt: sent and answered, the answer is dropped
                c.send_raw(&f).unwrap();
                let _ = drain(&mut c);
            }
            _ => {
                // a replay of an older plan slips in first
                if id > 2 {
                    let old = grant(id - 2, w, 1);
                    c.send_raw(&framed(&sys, &old)).unwrap();
                }
            }
        }
        let _ = drain(&mut c);
        let r = apply_with_retry(&mut c, &f, id, 3).expect("a receipt after retries");
        if r.approved {
            assert!(receipts.insert(id, r.clone()).is_none());
            expected.extend(p.actions.iter().take(usize::from(r.executed)).copied());
        }
        // a second retry returns the same receipt and runs nothing
        if r.approved {
            assert_eq!(apply_with_retry(&mut c, &f, id, 1).as_ref(), Some(&r));
        }
    }
    assert!(
        receipts.len() > 20,
        "the campaign approved too little to mean much: {}",
        receipts.len()
    );
    assert_eq!(actions_since(&sys, before), expected);
}
