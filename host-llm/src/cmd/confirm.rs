//! `llmsh confirm PLAN.json [--key-file K]`: the human's approval. prints the
//! same plan with `confirmation` filled in: HMAC-SHA256 over the canonical
//! postcard bytes of the plan without the token.

use std::path::PathBuf;

use policy_verifier::{confirm, json};

use crate::common::{self, Exit};

/// arguments of `llmsh confirm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// the plan (json); `-` reads stdin.
    pub plan: PathBuf,
    /// the confirmation key (hex); default: the dev key (dev-only).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    let res = (|| {
        let key = common::load_key(args.key_file.as_deref())?;
        let plan = json::parse_plan(&common::read_input(&args.plan, common::Input::Plan)?)?;
        confirm::sign(&plan, &key).ok_or_else(|| json::InputError::new("plan.encode", "the plan cannot be encoded"))
    })();
    match res {
        Ok(signed) => {
            common::print_json(&json::plan_to_json(&signed));
            Exit::Ok
        }
        Err(e) => common::bad_input(&e),
    }
}
