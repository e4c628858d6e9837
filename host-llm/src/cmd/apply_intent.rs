//! `llmsh apply "INTENT" [--yes] [--json]`: read the state from the running
//! system, plan with the llm, show the plan with its risk tags, ask the
//! human before destructive actions, write the audit request record (fsync),
//! execute through the same path as `apply --plan F`
//! ([`crate::cmd::apply::execute`]), write step and result records, print the
//! receipt, and on failure a postmortem.

use std::path::Path;

use pd_interface::link::{Receipt, Reply, Request};
use policy_verifier::json::InputError;
use policy_verifier::{Plan, State};
use serde_json::{json, Value};

use crate::audit::{AuditLog, Origin};
use crate::cmd::apply;
use crate::cmd::intent::{self, Consent, PlannerArgs};
use crate::common::{self, Exit};
use crate::link::{self, Link};
use crate::llm::planner::Planned;

/// what `apply "INTENT"` needs beyond the planner's flags.
#[derive(Debug, Clone, Copy)]
pub struct Flags<'a> {
    /// `hosted` or `qemu` (`--system`).
    pub system: &'a str,
    /// yes to destructive actions, up front.
    pub yes: bool,
    /// print the receipt alone, as json.
    pub json: bool,
    /// the audit log (`--audit-log`).
    pub audit_log: Option<&'a Path>,
}

/// the system's status through the link: its state, boot epoch and keys.
pub fn system_status(link: &mut Link) -> Result<pd_interface::link::SystemState, InputError> {
    match link.request(&Request::Status) {
        Ok(Reply::Status(s)) => Ok(s),
        Ok(other) => Err(InputError::new(
            "link.reply",
            format!("unexpected reply {other:?}"),
        )),
        Err(e) => Err(InputError::new(e.code(), e.to_string())),
    }
}

/// the audit origin of a planned request.
fn origin(intent: &str, planned: &Planned) -> Origin {
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
    let log = AuditLog::resolve(flags.audit_log);
    let mut cx = intent::context(planner)?;
    let mut link = Link::open(flags.system, &link::system_path())
        .map_err(|e| InputError::new(e.code(), e.to_string()))?;
    // the system's state, not the host's idea of it; `--state` only for planning experiments.
    let status = system_status(&mut link)?;
    if planner.state.is_none() {
        cx.state = pd_verifier::model_state(&status);
    }
    // tokens are made for this boot only
    cx.key = common::epoch_key(&cx.key, status.epoch);
    let planned = intent::plan_intent(intent_text, planner, &cx)?;
    let Some(plan) = planned.plan.clone() else {
        return Err(InputError::new(
            "plan.none",
            format!(
                "no attempt produced a plan ({} attempts)",
                planned.attempts.len()
            ),
        )
        .into());
    };
    say(flags.json, &crate::ui::words::plan(&cx.policy, &cx.state, &plan, &planned.verdict));
    let org = origin(intent_text, &planned);

    if !planned.approved {
        log.request(&plan, &planned.verdict, &cx.state, &org)?;
        let receipt = json!({
            "request_id": plan.request_id, "approved": false, "executed": 0, "failed_action": null,
            "violations": planned.verdict["violations"], "state_after": policy_verifier::json::state_to_json(&cx.state),
        });
        log.result(plan.request_id, &receipt, None)?;
        print_receipt(&cx.policy, &cx.state, &plan, &receipt, flags.json);
        say(flags.json, &postmortem(&plan, &receipt, None));
        return Ok(Exit::Rejected);
    }

    let consent = intent::ask(&plan, flags.yes);
    if consent == Consent::No {
        let mut v = planned.verdict.clone();
        v["declined"] = json!(true);
        log.request(&plan, &v, &cx.state, &org)?;
        common::print_json(
            &json!({"error": {"code": "apply.declined", "message": "the human did not confirm the destructive actions; nothing ran"}}),
        );
        return Ok(Exit::Rejected);
    }
    let signed = intent::confirmed(&plan, consent, &cx.key);

    let receipt = match execute_audited(&mut link, &signed, &cx.state, &planned.verdict, &org, &log)
    {
        Ok(r) => r,
        Err((code, message, exit)) => {
            common::print_json(&json!({"error": {"code": code, "message": message}}));
            return Ok(exit);
        }
    };
    let out = apply::receipt_json(&signed, &receipt);
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

/// an execution error: code, message, exit (as [`apply::execute`] returns).
pub type ExecError = (&'static str, String, Exit);

/// executes `plan` through [`apply::execute`] between audit records: the
/// request record (fsync) before the first invocation, a step record per
/// executed or failed action and the result record after.
pub fn execute_audited(
    link: &mut Link,
    plan: &Plan,
    before: &State,
    verdict: &Value,
    origin: &Origin,
    log: &AuditLog,
) -> Result<Receipt, ExecError> {
    let audit_err = |e: InputError| (e.code, e.message, Exit::BadInput);
    // on disk before the first invocation: a killed run leaves a request without a result.
    log.request(plan, verdict, before, origin)
        .map_err(audit_err)?;
    let receipt = match apply::execute(link, plan) {
        Ok(r) => r,
        Err((code, message, exit)) => {
            let err = json!({"error": {"code": code, "message": message}});
            log.result(plan.request_id, &err, None).map_err(audit_err)?;
            return Err((code, message, exit));
        }
    };
    let out = apply::receipt_json(plan, &receipt);
    let actions = policy_verifier::json::plan_to_json(plan)["actions"].clone();
    for i in 0..usize::from(receipt.executed) {
        log.step(plan.request_id, i, &actions[i], true, "executed")
            .map_err(audit_err)?;
    }
    if let Some(i) = receipt.failed_action {
        let why = receipt
            .failure
            .map(|f| format!("{f:?}"))
            .unwrap_or_else(|| "failed".into());
        log.step(
            plan.request_id,
            usize::from(i),
            &actions[usize::from(i)],
            false,
            &why,
        )
        .map_err(audit_err)?;
    }
    log.result(plan.request_id, &out, Some(&out["state_after"]))
        .map_err(audit_err)?;
    Ok(receipt)
}

/// `apply --plan F`'s audited execution: the state is read from the system
/// and the host verifier's verdict recorded beside the plan (the verifier PD
/// decides; the host's verdict is for the record).
pub fn execute_file_plan(
    link: &mut Link,
    plan: &Plan,
    log: &AuditLog,
) -> Result<Receipt, ExecError> {
    let status = system_status(link).map_err(|e| (e.code, e.message, Exit::Rejected))?;
    let before = pd_verifier::model_state(&status);
    let key = common::load_key(None).map_err(|e| (e.code, e.message, Exit::BadInput))?;
    let key = common::epoch_key(&key, status.epoch);
    let policy = policy_verifier::DEFAULT_POLICY;
    let v = policy_verifier::verify(&policy, &before, plan, &key);
    let verdict = policy_verifier::json::verdict_json(&policy, &before, plan, &v);
    let origin = Origin {
        backend: "file".into(),
        ..Origin::default()
    };
    execute_audited(link, plan, &before, &verdict, &origin, log)
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
