//! `llmsh apply "INTENT" [--yes] [--json]`: read the state from the running
//! system, plan with the llm (a connection to `llm-osd` holds no link, so
//! `status` and other clients are served while the model thinks), show the
//! plan with its risk tags and how it stands to the intent, refuse an
//! unfaithful plan unless the human says yes on a terminal (`--yes` does not
//! cover it), ask the human before destructive actions, and hand the plan to
//! `llm-osd`, which writes the audit request record (fsync), executes it
//! through the link and writes step and result records; print the receipt,
//! and on failure a postmortem. a plan the planner's check rejected, or the
//! human declined, is recorded by llm-osd and never sent.

use std::path::Path;

use policy_verifier::{Plan, State};
use serde_json::{json, Value};

use crate::audit::Origin;
use crate::cmd::daemon;
use crate::cmd::intent::{self, Consent, PlannerArgs};
use crate::code::Code;
use crate::common::{self, Exit};
use crate::llm::planner::Planned;

/// what `apply "INTENT"` needs beyond the planner's flags.
#[derive(Debug, Clone, Copy)]
pub struct Flags<'a> {
    /// `hosted` or `qemu` (`--system`); none: the running one.
    pub system: Option<&'a str>,
    /// boot a system if none runs (`--boot`).
    pub boot: bool,
    /// yes to destructive actions, up front.
    pub yes: bool,
    /// print the receipt alone, as json.
    pub json: bool,
    /// the audit log (`--audit-log`).
    pub audit_log: Option<&'a Path>,
}

/// the audit origin of a planned request (also the shell's).
pub fn origin(intent: &str, planned: &Planned) -> Origin {
    let last = planned.last();
    Origin {
        intent: Some(intent.to_string()),
        backend: last.map(|a| a.backend.to_string()).unwrap_or_default(),
        model: last.map(|a| a.model.clone()).unwrap_or_default(),
        prompt_hash: last.map(|a| a.prompt_hash.clone()).unwrap_or_default(),
        attempts: planned.attempts.iter().map(|a| a.to_json()).collect(),
    }
}

/// prints to stdout, or to stderr when stdout is reserved for `--json`.
fn say(json_mode: bool, text: &str) {
    if json_mode {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// runs `apply "INTENT"`.
pub fn run(intent_text: &str, planner: &PlannerArgs, flags: Flags<'_>) -> Exit {
    match run_inner(intent_text, planner, flags) {
        Ok(exit) => exit,
        Err(e) => e.report(),
    }
}

fn run_inner(
    intent_text: &str,
    planner: &PlannerArgs,
    flags: Flags<'_>,
) -> Result<Exit, intent::IntentError> {
    let mut cx = intent::context(planner)?;
    let mut c = match daemon::connect(flags.system, flags.boot, flags.audit_log) {
        Ok(c) => c,
        Err(e) => return Ok(e.report()),
    };
    // the system's state, not the host's idea of it; `--state` only for planning experiments.
    let status = match crate::cmd::status::read(&mut c) {
        Ok((_, s)) => s,
        Err(e) => return Ok(e.report()),
    };
    if planner.state.is_none() {
        cx.state = pd_verifier::model_state(&status);
    }
    // the policy in force is the system's: plans, hints and receipts follow it
    let enforced = match c.policy() {
        Ok(p) => p,
        Err(e) => return Ok(e.report()),
    };
    if planner.policy.is_some() && cx.policy != enforced {
        eprintln!("llmsh: the running system enforces another policy than `--policy`; planning against the system's");
    }
    cx.policy = enforced;
    // tokens are made for this boot only
    cx.key = common::epoch_key(&cx.key, status.epoch);
    let planned = intent::plan_intent(intent_text, planner, &cx)?;
    if planned.no_action {
        return Ok(common::report(&intent::no_action(&planned)));
    }
    let Some(plan) = planned.plan.clone() else {
        return Err(Code::PlanNone.err(format!(
                "no attempt produced a plan ({} attempts)",
                planned.attempts.len()
            ),
        )
        .into());
    };
    say(flags.json, &crate::ui::words::plan(&cx.policy, &cx.state, &plan, &planned.verdict));
    say(flags.json, &intent::describe_fidelity(&planned));
    let org = origin(intent_text, &planned);
    let before = policy_verifier::json::state_to_json(&cx.state);
    let record = |c: &mut crate::osd::client::Client, verdict: &Value, result: Option<&Value>| {
        c.call(
            "record",
            json!({"plan": policy_verifier::json::plan_to_json(&plan), "verdict": verdict,
                   "before": before, "origin": org.to_json(), "result": result}),
        )
        .map(|_| ())
    };

    if !planned.approved {
        let receipt = json!({
            "request_id": plan.request_id, "approved": false, "executed": 0, "failed_action": null,
            "violations": planned.verdict["violations"], "state_after": before,
            "fidelity": planned.fidelity.as_ref().map_or(Value::Null, |f| f.to_json()),
        });
        if let Err(e) = record(&mut c, &planned.verdict, Some(&receipt)) {
            return Ok(e.report());
        }
        print_receipt(&cx.policy, &cx.state, &plan, &receipt, flags.json);
        say(flags.json, &postmortem(&plan, &receipt, None));
        return Ok(Exit::Rejected);
    }

    // not what was asked: only the human's explicit yes on a terminal runs it
    if !planned.faithful() && !intent::ask_unfaithful(&planned) {
        let mut v = planned.verdict.clone();
        v["declined"] = json!(true);
        v["fidelity"] = planned.fidelity.as_ref().map_or(Value::Null, |f| f.to_json());
        if let Err(e) = record(&mut c, &v, None) {
            return Ok(e.report());
        }
        common::print_json(&json!({"error": {
            "code": Code::PlanUnfaithful.name(),
            "message": "the plan is not what the intent asks; nothing ran",
            "fidelity": v["fidelity"],
        }}));
        return Ok(Code::PlanUnfaithful.exit());
    }
    let consent = intent::ask(&plan, flags.yes);
    if consent == Consent::No {
        let mut v = planned.verdict.clone();
        v["declined"] = json!(true);
        if let Err(e) = record(&mut c, &v, None) {
            return Ok(e.report());
        }
        return Ok(common::report(&Code::ApplyDeclined.err("the human did not confirm the destructive actions; nothing ran")));
    }
    let signed = intent::confirmed(&plan, consent, &cx.key);
    let (receipt, retry) = match daemon::execute(&mut c, &signed, &org) {
        Ok(r) => r,
        Err(e) => return Ok(e.report()),
    };
    let mut out = crate::receipt::receipt_json(&cx.policy, &signed, &receipt);
    if retry {
        out["retry"] = json!(true);
    }
    if let Some(f) = &planned.fidelity {
        out["fidelity"] = f.to_json();
    }
    let before = pd_verifier::model_state(&receipt.state_before);
    print_receipt(&cx.policy, &before, &signed, &out, flags.json);
    let ok = receipt.approved && receipt.failed_action.is_none();
    if !ok {
        say(
            flags.json,
            &postmortem(&signed, &out, receipt.failure.map(|f| format!("{f:?}"))),
        );
    }
    Ok(if ok { Exit::Ok } else { Exit::Rejected })
}

/// the receipt: json alone on stdout, or in words ([`crate::ui::words::receipt`]).
fn print_receipt(policy: &policy_verifier::Policy, before: &State, plan: &Plan, r: &Value, json_mode: bool) {
    if json_mode {
        common::print_json(r);
        return;
    }
    print!("{}", crate::ui::words::receipt(policy, before, plan, r));
}

/// what failed, why, and what to look at next.
pub fn postmortem(plan: &Plan, r: &Value, failure: Option<String>) -> String {
    let mut s = String::from("postmortem:\n");
    let jp = policy_verifier::json::plan_to_json(plan);
    if let Some(i) = r["failed_action"].as_u64() {
        s.push_str(&format!(
            "  action {i} ({}) failed at execution: {}; actions 0..{i} ran, the rest did not.\n",
            jp["actions"][i as usize],
            failure.unwrap_or_else(|| "no reason given".into())
        ));
        s.push_str("  next: `llmsh status` shows what the PDs report now; `llmsh audit` shows the step records.\n");
        return s;
    }
    for v in r["violations"].as_array().into_iter().flatten() {
        let inv = v["invariant"].as_str().unwrap_or("?");
        let i = v["action"].as_u64().unwrap_or(0);
        s.push_str(&format!(
            "  action {i} ({}) breaks {inv}: {}\n",
            jp["actions"][i as usize],
            v["detail"].as_str().unwrap_or("")
        ));
        s.push_str(&format!("  next: {}\n", hint(inv)));
    }
    s.push_str("  nothing was executed: a plan runs all or nothing.\n");
    s
}

/// a next step per invariant.
fn hint(inv: &str) -> &'static str {
    match inv {
        "auth.tier" => {
            "the session's tier does not allow this op; rerun with `--session admin` if you may"
        }
        "auth.confirm" => "destructive actions need a confirmation: answer yes or pass `--yes`",
        "mem.quota" | "mem.pool" => {
            "ask for fewer pages, or reclaim pages from a stopped worker first (`llmsh status`)"
        }
        "mem.reclaim_stopped" => "stop the worker first (admin session), then reclaim",
        "mem.reclaim_bounds" => "the worker holds fewer pages; see `llmsh status`",
        "cpu.util" => "lower another worker's budget first, or ask for less cpu",
        "cpu.budget_bounds" => "budget must be at least 100 us and at most the period (<= 1 s)",
        "prio.ceiling" => "worker priorities stop at the ceiling (100)",
        "timer.bounds" => "timer periods are 1 ms .. 10 s",
        "proc.state" => "the worker is not in the state this op needs; see `llmsh status`",
        "plan.replay" => "another plan ran meanwhile; plan again against the new state",
        _ => "rephrase the intent, or write the plan by hand and use `llmsh check`",
    }
}
