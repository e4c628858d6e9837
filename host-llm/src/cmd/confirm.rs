//! `llmsh confirm PLAN.json [--key-file K] [--epoch N]`: the human's
//! approval. prints the same plan with `confirmation` filled in:
//! HMAC-SHA256 over the canonical postcard bytes of the plan without the
//! token, under this boot's confirmation key (`auth::epoch_key`), so the
//! token is worthless after the system restarts.

use std::path::PathBuf;

use policy_verifier::{confirm, json};

use crate::common::{self, Exit};

/// arguments of `llmsh confirm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// the plan (json); `-` reads stdin.
    pub plan: PathBuf,
    /// the confirmation key (hex, mode 0600); default: this installation's
    /// (`LLM_OS_DEV_KEYS=1`: the public dev key, tests only).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// the boot the token is for; default: the running system's (from its
    /// status), else 0, the offline form only `llmsh check` accepts.
    #[arg(long)]
    pub epoch: Option<u64>,
}

/// the running system's boot epoch, if one answers.
pub fn running_epoch() -> Option<u64> {
    let mut c = crate::osd::client::Client::connect().ok()?;
    crate::cmd::status::read(&mut c).ok().map(|(_, s)| s.epoch)
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    let res = (|| {
        let plan = json::parse_plan(&common::read_input(&args.plan, common::Input::Plan)?)?;
        let epoch = match args.epoch {
            Some(e) => e,
            None => running_epoch().unwrap_or_else(|| {
                eprintln!("llmsh: no running system: the token is the offline form (epoch 0), for `llmsh check` only");
                policy_verifier::auth::OFFLINE_EPOCH
            }),
        };
        let key = common::epoch_key(&common::load_key(args.key_file.as_deref())?, epoch);
        confirm::sign(&plan, &key).ok_or_else(|| crate::code::Code::PlanEncode.err("the plan cannot be encoded"))
    })();
    match res {
        Ok(signed) => {
            common::print_json(&json::plan_to_json(&signed));
            Exit::Ok
        }
        Err(e) => common::report(&e),
    }
}
