//! `llmsh plan "INTENT" [--json]`: the model proposes, the verifier judges,
//! nothing runs. exit 0 approved and faithful to the intent, 1 rejected or
//! not faithful, 2 bad input, no plan, or an intent that asks for nothing.
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
        Err(e) => return common::report(&e),
    };
    let planned = match intent::plan_intent(&args.intent, &args.planner, &cx) {
        Ok(p) => p,
        Err(e) => return e.report(),
    };
    if planned.no_action {
        return common::report(&intent::no_action(&planned));
    }
    let Some(plan) = &planned.plan else {
        return common::report(&crate::code::Code::PlanNone.err(format!(
                "no attempt produced a plan ({} attempts)",
                planned.attempts.len()
            ),
        ));
    };
    if args.json {
        println!("{}", schema::plan_text(plan));
        eprint!("{}", intent::describe_fidelity(&planned));
    } else {
        print!("{}", crate::ui::words::plan(&cx.policy, &cx.state, plan, &planned.verdict));
        print!("{}", intent::describe_fidelity(&planned));
        println!("{}", schema::plan_text(plan));
        if plan.has_destructive() {
            println!("(destructive: `llmsh confirm` or `llmsh apply … --yes` adds the confirmation token)");
        }
    }
    // an approved plan that is not what was asked is not a plan to run
    if planned.approved && planned.faithful() {
        Exit::Ok
    } else {
        Exit::Rejected
    }
}
