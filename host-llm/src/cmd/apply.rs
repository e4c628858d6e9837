//! `llmsh apply --plan F [--system hosted|qemu] [--yes] [--json] [--boot]`:
//! send a plan to `llm-osd`, which sends it through the link PD (framed
//! postcard on the link's byte stream, as on qemu's serial port), records
//! it in the audit log and returns the receipt the verifier PD gives:
//! `{"request_id":n,"approved":bool,"executed":k,"failed_action":null,
//! "violations":[…],"state_after":{…}}`, with `state_after` read back from the
//! capability PDs, never from the host's own model.
//!
//! destructive actions (process.stop, process.restart, memory.reclaim) ask
//! the human on the terminal, as `apply "INTENT"` does ([`intent::ask`]);
//! `--yes` is the human saying yes up front. a yes fills a missing
//! confirmation token under the running boot's confirmation key
//! (`llmsh confirm`).
//! apply never boots a system by itself: with no llm-osd running it fails
//! (`system.down`, exit 3) unless `--boot` asks it to start one, which it
//! says on stderr.

use std::path::PathBuf;

use policy_verifier::{confirm, json};
use serde_json::json;

use crate::audit::Origin;
use crate::cmd::daemon::{connect, execute};
use crate::cmd::intent::{self, Consent};
use crate::code::Code;
use crate::common::{self, Exit};
use crate::receipt::receipt_json;

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
    /// which system: `hosted` or `qemu` (default: the running one; with
    /// `--boot` and none running, hosted).
    #[arg(long)]
    pub system: Option<String>,
    /// if no system is running, boot one (said on stderr); it keeps running.
    #[arg(long)]
    pub boot: bool,
    /// yes to every destructive action, up front.
    #[arg(long)]
    pub yes: bool,
    /// print the receipt as json.
    #[arg(long)]
    pub json: bool,
}

fn fail(code: Code, message: String) -> Exit {
    common::print_json(&json!({"error": {"code": code.name(), "message": message}}));
    code.exit()
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    if let Some(s) = args.system.as_deref().filter(|s| !matches!(*s, "hosted" | "qemu")) {
        return fail(Code::Args, format!("unknown system `{s}` (hosted or qemu)"));
    }
    let Some(plan_path) = &args.plan else {
        let flags = crate::cmd::apply_intent::Flags {
            system: args.system.as_deref(),
            boot: args.boot,
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
    let plan = match common::read_input(plan_path, common::Input::Plan).and_then(|b| json::parse_plan(&b)) {
        Ok(p) => p,
        Err(e) => return common::report(&e),
    };
    let key = match common::load_key(None) {
        Ok(k) => k,
        Err(e) => return common::report(&e),
    };
    let mut c = match connect(args.system.as_deref(), args.boot, args.audit_log.as_deref()) {
        Ok(c) => c,
        Err(e) => return e.report(),
    };
    // the policy in force: the system's names the receipt's invariant ids
    let policy = match c.policy() {
        Ok(p) => p,
        Err(e) => return e.report(),
    };
    // tokens are bound to the boot they are made for
    let key = match crate::cmd::status::read(&mut c) {
        Ok((_, s)) => common::epoch_key(&key, s.epoch),
        Err(e) => return e.report(),
    };
    // a valid token is the human's yes already (`llmsh confirm` binds every
    // action of this exact plan), so only an unconfirmed plan asks.
    let consent = if confirm::is_valid(&plan, &key) {
        Consent::NotNeeded
    } else {
        intent::ask(&plan, args.yes)
    };
    if consent == Consent::No {
        return fail(Code::ApplyDeclined, "the human did not confirm the destructive actions; nothing ran".into());
    }
    let plan = intent::confirmed(&plan, consent, &key);
    let origin = Origin { backend: "file".into(), ..Origin::default() };
    let (receipt, retry) = match execute(&mut c, &plan, &origin) {
        Ok(r) => r,
        Err(e) => return e.report(),
    };
    let mut out = receipt_json(&policy, &plan, &receipt);
    if retry {
        // the same plan again: the stored receipt, nothing ran now
        out["retry"] = json!(true);
    }
    if args.json {
        common::print_json(&out);
    } else {
        let before = pd_verifier::model_state(&receipt.state_before);
        print!("{}", crate::ui::words::receipt(&policy, &before, &plan, &out));
    }
    if receipt.approved && receipt.failed_action.is_none() {
        Exit::Ok
    } else {
        Exit::Rejected
    }
}
