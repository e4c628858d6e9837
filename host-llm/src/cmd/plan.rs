//! `llmsh plan "INTENT" [--json]`: the model proposes, the verifier judges,
//! nothing runs. exit 0 approved, 1 rejected, 2 bad input or no plan.
//! `--json` prints the plan alone on stdout; attempts go to stderr.

use crate::cmd::intent::{self, PlannerArgs};
use crate::common::{self, Exit};
use crate::llm::schema;

/// arguments of `llmsh plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// what the system should do, in words.
    pub intent: String,
    /// print the plan alone, as json.
    #[arg(long)]
    pub json: bool,
    /// the planner's flags.
    #[command(flatten)]
    pub planner: PlannerArgs,
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    let cx = match intent::context(&args.planner) {
        Ok(c) => c,
        Err(e) => return common::bad_input(&e),
    };
    let planned = match intent::plan_intent(&args.intent, &args.planner, &cx) {
        Ok(p) => p,
        Err(e) => return e.report(),
    };
    let Some(plan) = &planned.plan else {
        return common::bad_input(&policy_verifier::json::InputError::new(
            "plan.none",
            format!(
                "no attempt produced a plan ({} attempts)",
                planned.attempts.len()
            ),
        ));
    };
    if args.json {
        println!("{}", schema::plan_text(plan));
    } else {
        print!("{}", crate::ui::words::plan(&cx.policy, &cx.state, plan, &planned.verdict));
        println!("{}", schema::plan_text(plan));
        if plan.has_destructive() {
            println!("(destructive: `llmsh confirm` or `llmsh apply … --yes` adds the confirmation token)");
        }
    }
    if planned.approved {
        Exit::Ok
    } else {
        Exit::Rejected
    }
}
