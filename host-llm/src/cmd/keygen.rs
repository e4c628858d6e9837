//! `llmsh keygen [--force] [--json]`: this installation's secrets, the plan
//! key (host ↔ verifier PD) and the human's confirmation key, 64 hex digits
//! each, mode 0600 in `$XDG_CONFIG_HOME/llm-os/` (a 0700 directory). other
//! commands run it on first use. an existing key is never replaced without
//! `--force`; a system booted or an image built before then keeps the old
//! keys until it is booted or built again.

use pd_interface::keys::store;
use serde_json::json;

use crate::code::Code;
use crate::common::{self, Exit};

/// arguments of `llmsh keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// replace existing keys (every token and running system made with the
    /// old ones stops working).
    #[arg(long)]
    pub force: bool,
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    let fail = |code: Code, m: String| common::report(&code.err(m));
    let dir = match store::dir() {
        Ok(d) => d,
        Err(e) => return fail(Code::KeyUnavailable, e.to_string()),
    };
    let made = store::locked(&dir, || {
        let exists = [store::PLAN_FILE, store::CONFIRM_FILE].iter().any(|f| dir.join(f).exists());
        if exists && !args.force {
            return Ok(Err(format!("keys already exist in `{}`; `--force` replaces them", dir.display())));
        }
        store::generate(&dir, args.force).map(Ok)
    });
    match made.and_then(|r| r) {
        Ok(Ok(_)) => {
            common::print_json(&json!({"dir": dir, "files": [store::PLAN_FILE, store::CONFIRM_FILE], "mode": "0600"}));
            Exit::Ok
        }
        Ok(Err(m)) => fail(Code::KeyExists, m),
        Err(e) => fail(Code::KeyUnavailable, e.to_string()),
    }
}
