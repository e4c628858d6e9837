//! `llmsh apply --plan F [--system hosted] [--yes] [--json]`: send a plan
//! through the link PD (framed postcard on the link's byte stream, as on
//! qemu's serial port) and print the receipt the verifier PD returns:
//! `{"request_id":n,"approved":bool,"executed":k,"failed_action":null,
//! "violations":[…],"state_after":{…}}`, with `state_after` read back from the
//! capability PDs, never from the host's own model.
//!
//! destructive actions (process.stop, process.restart, memory.reclaim) ask
//! the human on the terminal, as `apply "INTENT"` does ([`intent::ask`]);
//! `--yes` is the human saying yes up front. a yes fills a missing
//! confirmation token under this boot's confirmation key (`llmsh confirm`).
//! attaches to a running system (`llmsh boot [--system qemu]`), else boots
//! one for the duration of the command (hosted: in this process; qemu: the
//! seL4 image, built if needed, stopped by its pid afterwards).

use std::path::PathBuf;

use pd_interface::link::{Receipt, Reply, Request};
use policy_verifier::{confirm, json, verify, wire, Plan, DEFAULT_POLICY};
use serde_json::{json, Value};

use crate::cmd::intent::{self, Consent};
use crate::cmd::status::{observed_json, state_json};
use crate::common::{self, Exit};
use crate::link::{self, Link};

/// arguments of `llmsh apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// what the system should do, in words: the llm plans it (`llmsh plan`).
    #[arg(required_unless_present = "plan", conflicts_with = "plan")]
    pub intent: Option<String>,
    /// the plan (json); `-` reads stdin.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// the audit log; default `LLMSH_AUDIT_LOG` or $XDG_STATE_HOME/llm-os/audit.jsonl.
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// the planner's flags (intent form only).
    #[command(flatten)]
    pub planner: crate::cmd::intent::PlannerArgs,
    /// which system: `hosted` (default) or `qemu`.
    #[arg(long, default_value = "hosted")]
    pub system: String,
    /// yes to every destructive action, up front.
    #[arg(long)]
    pub yes: bool,
    /// print the receipt as json.
    #[arg(long)]
    pub json: bool,
}

/// the receipt as DESIGN.md prints it; violation details come from the
/// host's policy-verifier run on the receipt's `state_before` when it names
/// the same invariants as the PD (it always should: it is the same code).
pub fn receipt_json(plan: &Plan, r: &Receipt) -> Value {
    let before = pd_verifier::model_state(&r.state_before);
    let key = common::epoch_key(&common::load_key(None).unwrap_or([0; 32]), r.state_before.epoch);
    let host = verify(&DEFAULT_POLICY, &before, plan, &key);
    let host_v = json::violations_json(&DEFAULT_POLICY, &before, plan, &host);
    let same = host_v.len() == r.violations.len()
        && host_v.iter().zip(r.violations.iter()).all(|(h, p)| {
            h["action"] == json!(p.action) && h["invariant"] == json!(p.invariant.as_str())
        });
    let violations: Vec<Value> = if same {
        host_v
    } else {
        r.violations
            .iter()
            .map(|v| json!({"action": v.action, "invariant": v.invariant.as_str()}))
            .collect()
    };
    let mut out = json!({
        "request_id": r.request_id,
        "approved": r.approved,
        "executed": r.executed,
        "failed_action": r.failed_action,
        "violations": violations,
        "state_after": state_json(&r.state_after),
        "observed_after": observed_json(&r.state_after),
        "epoch": r.state_after.epoch,
        "keys": r.state_after.keys.name(),
    });
    if r.state_after.keys == pd_interface::keys::KeySource::Dev {
        out["dev_keys"] = json!(true);
    }
    if let Some(f) = r.failure {
        out["failure"] = json!(format!("{f:?}"));
    }
    if let Some(inv) = &r.inventory {
        // strings from the firmware PD are untrusted data: shown, never interpreted
        out["inventory"] = json!({
            "cpus": inv.cpus,
            "cpu_model": inv.cpu_model.as_str(),
            "memory": inv.memory.iter().map(|m| json!({"base": m.base, "size": m.size})).collect::<Vec<_>>(),
            "devices": inv.devices.iter().map(|d| json!({"name": d.name.as_str(), "compatible": d.compatible.as_str(),
                "base": d.base, "size": d.size, "irq": d.irq})).collect::<Vec<_>>(),
        });
    }
    out
}

/// sends a (confirmed) plan through the link and returns the verifier PD's
/// receipt: the one execution path of `apply --plan F` and `apply "INTENT"`.
pub fn execute(link: &mut Link, plan: &Plan) -> Result<Receipt, (&'static str, String, Exit)> {
    let mut buf = [0u8; wire::MAX_PLAN_BYTES];
    let bytes = match wire::encode(plan, &mut buf) {
        Ok(b) => b.to_vec(),
        Err(e) => {
            return Err((
                e.code(),
                "the plan does not fit the wire format".into(),
                Exit::BadInput,
            ))
        }
    };
    match link.request(&Request::Apply(&bytes)) {
        Ok(Reply::Receipt(r)) => Ok(r),
        Ok(Reply::Error(e)) => Err(("link.refused", format!("{e:?}"), Exit::Rejected)),
        Ok(other) => Err((
            "link.reply",
            format!("unexpected reply {other:?}"),
            Exit::Rejected,
        )),
        Err(e) => Err((e.code(), e.to_string(), Exit::Rejected)),
    }
}

fn fail(code: &str, message: String, exit: Exit) -> Exit {
    common::print_json(&json!({"error": {"code": code, "message": message}}));
    exit
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    if !matches!(args.system.as_str(), "hosted" | "qemu") {
        return fail(
            "args",
            format!("unknown system `{}` (hosted or qemu)", args.system),
            Exit::BadInput,
        );
    }
    let Some(plan_path) = &args.plan else {
        let flags = crate::cmd::apply_intent::Flags {
            system: &args.system,
            yes: args.yes,
            json: args.json,
            audit_log: args.audit_log.as_deref(),
        };
        return crate::cmd::apply_intent::run(
            args.intent.as_deref().unwrap_or(""),
            &args.planner,
            flags,
        );
    };
    let plan = match common::read_input(plan_path).and_then(|b| json::parse_plan(&b)) {
        Ok(p) => p,
        Err(e) => return common::bad_input(&e),
    };
    let key = match common::load_key(None) {
        Ok(k) => k,
        Err(e) => return common::bad_input(&e),
    };
    let mut link = match Link::open(&args.system, &link::system_path()) {
        Ok(l) => l,
        Err(e) => return fail(e.code(), e.to_string(), Exit::Rejected),
    };
    // tokens are bound to the boot they are made for
    let key = match crate::cmd::apply_intent::system_status(&mut link) {
        Ok(s) => common::epoch_key(&key, s.epoch),
        Err(e) => return fail(e.code, e.message, Exit::Rejected),
    };
    // a valid token is the human's yes already (`llmsh confirm` binds every
    // action of this exact plan), so only an unconfirmed plan asks.
    let consent = if confirm::is_valid(&plan, &key) {
        Consent::NotNeeded
    } else {
        intent::ask(&plan, args.yes)
    };
    if consent == Consent::No {
        return fail(
            "apply.declined",
            "the human did not confirm the destructive actions; nothing ran".into(),
            Exit::Rejected,
        );
    }
    let plan = intent::confirmed(&plan, consent, &key);
    let log = crate::audit::AuditLog::resolve(args.audit_log.as_deref());
    let receipt = match crate::cmd::apply_intent::execute_file_plan(&mut link, &plan, &log) {
        Ok(r) => r,
        Err((code, msg, exit)) => return fail(code, msg, exit),
    };
    let out = receipt_json(&plan, &receipt);
    if args.json {
        common::print_json(&out);
    } else {
        let before = pd_verifier::model_state(&receipt.state_before);
        print!("{}", crate::ui::words::receipt(&DEFAULT_POLICY, &before, &plan, &out));
    }
    if receipt.approved && receipt.failed_action.is_none() {
        Exit::Ok
    } else {
        Exit::Rejected
    }
}
