//! `llmsh check PLAN.json [--state S.json] [--policy P] [--key-file K]`:
//! the verifier's verdict as json. exit 0 approved, 1 rejected, 2 bad input.

use std::path::PathBuf;

use policy_verifier::json;
use policy_verifier::verify;

use crate::common::{self, Exit};

/// arguments of `llmsh check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// the plan (json); `-` reads stdin.
    pub plan: PathBuf,
    /// the state to verify against (json); default: the policy's initial state.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// the policy file; default: the built-in system/policy.toml.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// the confirmation key (hex, mode 0600); default: this installation's
    /// (`LLM_OS_DEV_KEYS=1`: the public dev key).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// the boot epoch tokens are checked for (`llmsh status` shows a
    /// system's); default 0, the offline form `llmsh confirm --epoch 0` makes.
    #[arg(long, default_value_t = policy_verifier::auth::OFFLINE_EPOCH)]
    pub epoch: u64,
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    match check(args) {
        Ok(exit) => exit,
        Err(e) => common::report(&e),
    }
}

fn check(args: &Args) -> Result<Exit, json::InputError> {
    let policy = common::load_policy(args.policy.as_deref())?;
    let key = common::epoch_key(&common::load_key(args.key_file.as_deref())?, args.epoch);
    let plan = json::parse_plan(&common::read_input(&args.plan, common::Input::Plan)?)?;
    let state = match &args.state {
        Some(p) => json::parse_state(&common::read_input(p, common::Input::State)?, &policy)?,
        None => policy.initial,
    };
    let verdict = verify::verify(&policy, &state, &plan, &key);
    common::print_json(&json::verdict_json(&policy, &state, &plan, &verdict));
    Ok(if verdict.approved { Exit::Ok } else { Exit::Rejected })
}
