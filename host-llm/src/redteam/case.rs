//! one case on a fresh system: boot, the trusted setup, the input sent
//! message by message with the state read back around each, every message
//! judged, and the outcome compared with the case's expectation.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use hosted_system::{BootOptions, Handle, HostedSystem, InvocationLog};
use pd_interface::client::LinkClient;
use pd_interface::link::{Reply, Request, SystemState};
use policy_verifier::{Action, Plan};
use serde_json::Value;

use super::corpus::{Case, Expect, Input};
use super::frames::{self, Message};
use super::judge::{self, judge_counted, judge_window, Success};
use super::planner::Planner;
use super::reference::Reference;
use super::target::{Settings, Target};

/// how one message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Refused,
    LinkError,
    Approved { executed: u8, invoked: usize },
    Rejected,
    Other { invoked: usize },
}

/// the result of one case in one mode.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// the outcome of the last message, in `expect` terms.
    pub outcome: &'static str,
    /// attacker successes at the capability PDs.
    pub successes: Vec<Success>,
    /// on the hosted system, what the qemu oracle (the PDs' counters and
    /// read-back state) concludes from the same messages: it must never see
    /// a success the invocation log does not.
    pub counted: Vec<Success>,
    /// mutating invocations in the input window.
    pub invocations: usize,
    /// the outcome matches `expect`.
    pub as_expected: bool,
    /// a benign plan ran in full.
    pub ran_in_full: bool,
    /// the case could not be run (setup refused, link broke).
    pub error: Option<String>,
}

/// plans an intent case once per run: the verifier-off run sends what the
/// verifier-on run was given.
pub(super) type Planned = BTreeMap<String, Result<Value, String>>;

fn status<S: Read + Write>(c: &mut LinkClient<S>) -> Result<SystemState, String> {
    match c.request(&Request::Status) {
        Ok(Reply::Status(s)) => Ok(s),
        Ok(other) => Err(format!("unexpected reply {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// replies to everything sent so far, and the state after them: a `Status`
/// goes last as a sentinel, after a delimiter that ends whatever partial
/// frame an attack left behind.
fn drain<S: Read + Write>(c: &mut LinkClient<S>) -> Result<(Vec<Reply>, SystemState), String> {
    let mut sentinel = vec![0u8];
    sentinel.extend(LinkClient::<S>::frame_request(&Request::Status).map_err(|e| e.to_string())?);
    c.send_raw(&sentinel).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    loop {
        match c.read_reply().map_err(|e| e.to_string())? {
            Reply::Status(s) => return Ok((out, s)),
            r => out.push(r),
        }
    }
}

/// runs one case on a fresh system.
pub(super) fn run_case(
    case: &Case,
    cfg: &Settings<'_>,
    unverified: bool,
    planned: &mut Planned,
    planner: &mut dyn Planner,
) -> CaseResult {
    let mut res = CaseResult {
        outcome: "error",
        successes: Vec::new(),
        counted: Vec::new(),
        invocations: 0,
        as_expected: false,
        ran_in_full: false,
        error: None,
    };
    let judged = match cfg.target {
        Target::Hosted => {
            let opts = BootOptions { unverified, keys: cfg.keys, ..Default::default() };
            let sys: Handle = match HostedSystem::boot_with(cfg.system, opts) {
                Ok(h) => h,
                Err(e) => {
                    res.error = Some(format!("boot: {e}"));
                    return res;
                }
            };
            let mut c = LinkClient::new(sys.transport(Some(Duration::from_secs(20))));
            let j = run_on(case, cfg, &mut c, Some(sys.invocations()), planned, planner, &mut res);
            drop(c);
            sys.shutdown();
            j
        }
        Target::Qemu { qemu, loader } => {
            // the seL4 image has no unverified mode: the comparison is hosted only
            let mut link = match crate::qemu::boot_image(qemu, loader, &mut |_| {}) {
                Ok(l) => l,
                Err(e) => {
                    res.error = Some(format!("boot: {e}"));
                    return res;
                }
            };
            run_on(case, cfg, &mut link.client, None, planned, planner, &mut res)
            // dropping the link stops qemu
        }
    };
    if let Err(e) = judged {
        res.error = Some(e);
    }
    res
}

/// the case on a booted system: setup, input, each message judged, outcome.
fn run_on<S: Read + Write>(
    case: &Case,
    cfg: &Settings<'_>,
    c: &mut LinkClient<S>,
    log: Option<&InvocationLog>,
    planned: &mut Planned,
    planner: &mut dyn Planner,
    res: &mut CaseResult,
) -> Result<(), String> {
    let epoch = status(c)?.epoch;
    let mut r = Reference::new(cfg.key, cfg.keys.plan, epoch);
    setup(case, c, &mut r)?;
    let Some(messages) = messages(case, &r, planned, planner)? else {
        // the planner produced nothing: nothing reaches the system
        res.outcome = "no_plan";
        res.as_expected = case.expect.adversarial();
        res.error = None;
        return Ok(());
    };
    let mut last = Answer::Refused;
    let mut all_full = true;
    for m in messages {
        let (framed, plan) = match m {
            Message::Refused(_) => {
                last = Answer::Refused;
                all_full = false;
                continue;
            }
            Message::Bytes { framed, plan } => (framed, plan),
        };
        let (answer, full) = send(cfg, c, log, &mut r, &framed, plan.as_ref(), res)?;
        last = answer;
        all_full &= full;
    }
    res.outcome = outcome(last);
    res.ran_in_full = all_full && res.outcome == "approved";
    res.as_expected = as_expected(case.expect, res.outcome, res.ran_in_full);
    Ok(())
}

/// the trusted setup: every plan must be approved and run.
fn setup<S: Read + Write>(case: &Case, c: &mut LinkClient<S>, r: &mut Reference) -> Result<(), String> {
    for (p, sign) in &case.setup {
        let Message::Bytes { framed, plan: Some((plan, bytes)) } = frames::host_plan(p, *sign, r) else {
            return Err("a setup plan does not parse".into());
        };
        c.send_raw(&framed).map_err(|e| e.to_string())?;
        let approved = drain(c)?
            .0
            .iter()
            .any(|x| matches!(x, Reply::Receipt(rc) if rc.approved));
        if !approved {
            return Err(format!("setup plan {} was not approved", plan.request_id));
        }
        r.ran(plan.request_id, &bytes);
        if *sign {
            r.setup_token = plan.confirmation;
        }
    }
    Ok(())
}

/// the case's input as the messages to send; none when the planner made
/// no plan of an intent case.
fn messages(
    case: &Case,
    r: &Reference,
    planned: &mut Planned,
    planner: &mut dyn Planner,
) -> Result<Option<Vec<Message>>, String> {
    Ok(Some(match Input::of(case)? {
        Input::Plans(values) => values.iter().map(|v| frames::host_plan(v, false, r)).collect(),
        Input::JsonText(text) => text.iter().map(|t| frames::text_message(t, r)).collect(),
        Input::Frames(raw) => raw.iter().map(|h| frames::raw_message(h, r)).collect::<Result<_, _>>()?,
        Input::Intent(input) => {
            let p = planned
                .entry(case.id.clone())
                .or_insert_with(|| planner.plan(&input))
                .clone();
            match p {
                Ok(v) => vec![frames::host_plan(&v, false, r)],
                Err(_) => return Ok(None),
            }
        }
    }))
}

/// sends one message with the state read back before and after it, judges
/// what the capability PDs did, and says how it ended and whether its plan
/// ran in full.
fn send<S: Read + Write>(
    cfg: &Settings<'_>,
    c: &mut LinkClient<S>,
    log: Option<&InvocationLog>,
    r: &mut Reference,
    framed: &[u8],
    plan: Option<&(Plan, Vec<u8>)>,
    res: &mut CaseResult,
) -> Result<(Answer, bool), String> {
    let before = status(c)?;
    let mark = log.map(InvocationLog::len);
    c.send_raw(framed).map_err(|e| e.to_string())?;
    let (mut replies, mut after) = drain(c)?;
    // on qemu console text can cut a reply frame: the host then sends the
    // same bytes again (host-llm/src/qemu.rs), and so does the runner.
    // the counters are read after the last send, so a plan that ran
    // twice is still judged a replay.
    let answered = |r: &[Reply]| r.iter().any(|x| matches!(x, Reply::Receipt(_) | Reply::Error(_)));
    let mut resends = 0;
    while log.is_none() && plan.is_some() && !answered(&replies) && resends < 3 {
        c.send_raw(framed).map_err(|e| e.to_string())?;
        let (more, now) = drain(c)?;
        replies.extend(more);
        after = now;
        resends += 1;
    }
    // carried out, as the capability PDs count it
    let counted = after
        .invocations
        .total()
        .saturating_sub(before.invocations.total());
    let invoked = match log.zip(mark) {
        Some((log, mark)) => judge_logged(cfg, r, log.since(mark), (&before, &after), plan, counted, res)?,
        None => {
            let n = usize::try_from(counted).unwrap_or(usize::MAX);
            judge_counted(cfg.policy, r, (&before, &after), plan, n, &mut res.successes);
            n
        }
    };
    res.invocations += invoked;
    let answer = answer(replies.last(), plan, invoked);
    let full = matches!((&answer, plan), (Answer::Approved { executed, .. }, Some((p, _)))
        if usize::from(*executed) == p.actions.len());
    Ok((answer, full))
}

/// hosted: judges the invocations the log saw since the message (`seen`),
/// after checking the PDs' own counters agree with it; the counter oracle
/// judges the same message beside it (into `res.counted`). the number of
/// mutating invocations.
fn judge_logged(
    cfg: &Settings<'_>,
    r: &mut Reference,
    seen: Vec<hosted_system::Invocation>,
    states: (&SystemState, &SystemState),
    plan: Option<&(Plan, Vec<u8>)>,
    counted: u64,
    res: &mut CaseResult,
) -> Result<usize, String> {
    let accepted = seen
        .iter()
        .filter(|i| i.request.mutates() && i.accepted)
        .count();
    if accepted as u64 != counted {
        return Err(format!(
            "the capability PDs counted {counted} invocation(s), the invocation log {accepted}"
        ));
    }
    let window: Vec<Action> = seen
        .iter()
        .filter(|i| i.request.mutates())
        .map(|i| i.request.to_action())
        .collect::<Option<Vec<_>>>()
        .unwrap_or_else(|| {
            res.successes.push(Success::undecodable());
            Vec::new()
        });
    let mut shadow = r.clone();
    judge_counted(cfg.policy, &mut shadow, states, plan, accepted, &mut res.counted);
    judge_window(cfg.policy, r, states.0, plan, &window, &mut res.successes);
    Ok(window.len())
}

/// how a message ended, from its last reply: an approved plan that should
/// change the system but invoked no PD had no effect.
fn answer(last: Option<&Reply>, plan: Option<&(Plan, Vec<u8>)>, invoked: usize) -> Answer {
    let changes = plan.is_some_and(|(p, _)| p.actions.iter().any(judge::mutating));
    match last {
        Some(Reply::Receipt(rc)) if rc.approved && changes && invoked == 0 => Answer::Other { invoked: 0 },
        Some(Reply::Receipt(rc)) if rc.approved => Answer::Approved { executed: rc.executed, invoked },
        Some(Reply::Receipt(_)) => Answer::Rejected,
        Some(Reply::Error(_)) => Answer::LinkError,
        Some(Reply::Status(_)) | None => Answer::Other { invoked },
    }
}

/// the outcome of the case's last message, in `expect` terms.
fn outcome(last: Answer) -> &'static str {
    match last {
        Answer::Refused | Answer::LinkError => "bad_input",
        Answer::Rejected => "rejected",
        Answer::Other { invoked: 0 } => "no_effect",
        Answer::Approved { .. } | Answer::Other { .. } => "approved",
    }
}

/// whether the outcome is what the case expects.
fn as_expected(expect: Expect, outcome: &str, ran_in_full: bool) -> bool {
    match expect {
        Expect::Approved | Expect::ApprovedWithinPolicy => ran_in_full,
        Expect::NoEffect => outcome == "no_effect",
        Expect::Rejected => outcome == "rejected",
        Expect::BadInput => outcome == "bad_input",
    }
}
