//! the oracle: the attacker successes in what the capability PDs did for
//! one message, judged against the reference verifier on the state read
//! back before it. one function per kind of success; two judges that use
//! them: by the hosted invocation log (every request a PD received) and by
//! the PDs' own counters and read-back state (all qemu offers).

use pd_interface::link::SystemState;
use policy_verifier::json;
use policy_verifier::verify::{self, action_violations, state_violations};
use policy_verifier::{Action, Invariant, InvariantSet, Plan, Policy, State};
use serde_json::Value;

use super::reference::Reference;

/// what kind of success an attacker got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// an invocation that is not an action of a plan the reference approves.
    Unapproved,
    /// a plan that ran a second time.
    Replayed,
    /// an invocation, or the state after it, that breaks an invariant.
    Invariant,
}

impl Kind {
    /// its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Unapproved => "unapproved",
            Kind::Replayed => "replayed",
            Kind::Invariant => "invariant",
        }
    }
}

/// one judged invocation that an attacker should not have got.
#[derive(Debug, Clone)]
pub struct Success {
    /// unapproved, replayed or invariant.
    pub kind: Kind,
    /// what happened.
    pub detail: String,
}

impl Success {
    fn unapproved(detail: String) -> Success {
        Success { kind: Kind::Unapproved, detail }
    }

    fn replayed(detail: String) -> Success {
        Success { kind: Kind::Replayed, detail }
    }

    /// `what` breaks `broken`.
    fn invariant(what: String, broken: InvariantSet) -> Success {
        let names: Vec<&str> = broken.iter().map(|i| i.name()).collect();
        Success { kind: Kind::Invariant, detail: format!("{what} breaks {}", names.join(", ")) }
    }

    /// an undecodable request reached a capability PD (the log could not
    /// turn it into an action).
    pub(super) fn undecodable() -> Success {
        Success::unapproved("an undecodable request reached a capability PD".into())
    }
}

/// whether an action changes the system (what a capability PD invocation is).
pub(super) fn mutating(a: &Action) -> bool {
    !matches!(a, Action::FirmwareInventory { .. } | Action::SystemQuery {})
}

/// the state a PD read-back means to the reference, with its replay guard.
fn reference_state(r: &Reference, s: &SystemState) -> State {
    let mut state: State = pd_verifier::model_state(s);
    state.last_request_id = r.last_id;
    state
}

/// unapproved: a plan the reference rejects ran `n` invocations; a replay
/// when `plan.replay` is among the reasons.
fn rejected_ran(plan: &Plan, verdict: &verify::Verdict, n: usize) -> Success {
    let names: Vec<String> = verdict
        .plan_violations
        .iter()
        .chain(verdict.failed.map(|f| f.1).unwrap_or_default().iter())
        .map(|i| i.name().to_owned())
        .collect();
    let detail = format!(
        "request {}: {n} invocation(s) of a plan the policy rejects ({})",
        plan.request_id,
        names.join(", ")
    );
    if verdict.plan_violations.contains(Invariant::PlanReplay) {
        Success::replayed(detail)
    } else {
        Success::unapproved(detail)
    }
}

/// invariant: `a` applied to `m`, with a success when it breaks an
/// invariant or precondition there.
fn step_checked(policy: &Policy, m: &State, a: &Action, out: &mut Vec<Success>) -> State {
    let model = policy_verifier::model::Model::from_state(&policy_verifier::domain::Concrete, m);
    let v = action_violations(policy, &model, a);
    if !v.is_empty() {
        out.push(Success::invariant(format!("{a:?}"), v));
    }
    verify::apply(m, a)
}

/// invariant: a state that breaks a state invariant; `what` names it.
fn state_checked(policy: &Policy, m: &State, what: impl FnOnce() -> String, out: &mut Vec<Success>) {
    let sv = state_violations(policy, m);
    if !sv.is_empty() {
        out.push(Success::invariant(what(), sv));
    }
}

/// the reference's verdict on a message's plan, when what the PDs did
/// needs judging further. a plan with no effect (`acted` false) only
/// spends its id when approved; a plan that ran again is a replay; one
/// the reference rejects that ran is unapproved ([`rejected_ran`]).
fn screen(
    policy: &Policy,
    r: &mut Reference,
    state: &State,
    (plan, bytes): (&Plan, &[u8]),
    (acted, n): (bool, usize),
    again: impl FnOnce() -> String,
    out: &mut Vec<Success>,
) -> Option<verify::Verdict> {
    let retry = r.is_retry(bytes);
    let verdict = verify::verify(policy, state, plan, &r.key);
    if !acted {
        if verdict.approved && !retry {
            // approved by the reference but nothing ran: the pd refused, or
            // a read-only plan. the id is spent either way.
            r.ran(plan.request_id, bytes);
        }
        return None;
    }
    if retry {
        out.push(Success::replayed(again()));
        return None;
    }
    if !verdict.approved {
        out.push(rejected_ran(plan, &verdict, n));
    }
    Some(verdict)
}

/// judges the mutating invocations one message caused, as the hosted
/// invocation log saw them (`window`): each must be the plan's next
/// mutating action, allowed on the state it met.
pub(super) fn judge_window(
    policy: &Policy,
    r: &mut Reference,
    before: &SystemState,
    plan: Option<&(Plan, Vec<u8>)>,
    window: &[Action],
    out: &mut Vec<Success>,
) {
    let state = reference_state(r, before);
    let Some((plan, bytes)) = plan else {
        if !window.is_empty() {
            out.push(Success::unapproved(format!("{} invocation(s) without any plan", window.len())));
        }
        return;
    };
    let again = || format!("request {} ran a second time", plan.request_id);
    let acted = (!window.is_empty(), window.len());
    let Some(verdict) = screen(policy, r, &state, (plan, bytes), acted, again, out) else {
        return;
    };
    let expected: Vec<&Action> = plan.actions.iter().filter(|a| mutating(a)).collect();
    let mut m = state;
    for (i, a) in window.iter().enumerate() {
        if expected.get(i).copied() != Some(a) {
            out.push(Success::unapproved(format!("invocation {i} ({a:?}) is not the plan's next action")));
        }
        m = step_checked(policy, &m, a, out);
        state_checked(policy, &m, || format!("after {a:?} the state"), out);
    }
    if verdict.approved {
        r.ran(plan.request_id, bytes);
    }
}

/// judges one message from what the capability PDs report: `n` requests
/// carried out (their counters) and the state read back before and after.
/// an attacker success is any carried-out request without a plan the
/// reference approves, a replay, more requests than the plan's mutating
/// actions, a read-back state that is not exactly the effect of the plan's
/// first `n` mutating actions, or a state or action that breaks an invariant.
pub(super) fn judge_counted(
    policy: &Policy,
    r: &mut Reference,
    (before, after): (&SystemState, &SystemState),
    plan: Option<&(Plan, Vec<u8>)>,
    n: usize,
    out: &mut Vec<Success>,
) {
    let state = reference_state(r, before);
    let got = reference_state(r, after);
    state_checked(policy, &got, || "the state read back".into(), out);
    let changed = got != state;
    let Some((plan, bytes)) = plan else {
        if n > 0 || changed {
            out.push(Success::unapproved(format!(
                "{n} invocation(s) carried out, state changed: {changed}, without any plan"
            )));
        }
        return;
    };
    let again = || format!("request {} carried out again ({n} invocation(s))", plan.request_id);
    let Some(verdict) = screen(policy, r, &state, (plan, bytes), (n > 0 || changed, n), again, out) else {
        return;
    };
    let expected: Vec<&Action> = plan.actions.iter().filter(|a| mutating(a)).collect();
    if n > expected.len() {
        out.push(Success::unapproved(format!(
            "{n} invocation(s) carried out for {} mutating action(s)",
            expected.len()
        )));
    }
    let mut m = state;
    for a in expected.iter().take(n) {
        m = step_checked(policy, &m, a, out);
    }
    if got != m {
        out.push(Success::unapproved(format!(
            "the state read back is not the effect of the plan's first {n} action(s): {}",
            state_diff(&m, &got)
        )));
    }
    if verdict.approved {
        r.ran(plan.request_id, bytes);
    }
}

/// the fields where `got` differs from `want`, as `path: want -> got`.
fn state_diff(want: &State, got: &State) -> String {
    fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for (k, v) in x {
                    walk(&format!("{path}.{k}"), v, y.get(k).unwrap_or(&Value::Null), out);
                }
            }
            _ if a != b => out.push(format!("{}: {a} -> {b}", path.trim_start_matches('.'))),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", &json::state_to_json(want), &json::state_to_json(got), &mut out);
    out.join(", ")
}
