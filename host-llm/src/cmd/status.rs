//! `llmsh status`: the state of the running system (hosted, else qemu), read back from
//! its capability PDs through the verifier (the link's `Status` request).

use pd_interface::link::{Reply, Request, SystemState};
use policy_verifier::json::state_to_json;
use serde_json::{json, Value};

use crate::common::{self, Exit};
use crate::link::Link;

/// arguments of `llmsh status`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// the state json of DESIGN.md (what `llmsh check --state` reads back).
pub fn state_json(s: &SystemState) -> Value {
    state_to_json(&pd_verifier::model_state(s))
}

/// what the PDs observe beyond the model: progress, ticks, faults, cpu time.
pub fn observed_json(s: &SystemState) -> Value {
    let observed: serde_json::Map<String, Value> = s
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            (
                format!("worker{i}"),
                json!({"progress": w.progress, "ticks": w.ticks, "faults": w.faults, "restarts": w.restarts, "consumed_us": w.consumed_us}),
            )
        })
        .collect();
    let n = &s.invocations;
    json!({"workers": observed, "free_pages": s.free_pages,
           "invocations": {"process": n.process, "memory": n.memory, "timer": n.timer}})
}

/// the running system's status json, `{"system","state","observed"}`: the
/// one read of `llmsh status`, `llmsh top` and the shell's `status`.
pub fn read() -> Result<Value, (&'static str, String)> {
    let mut link = Link::attach().map_err(|e| (e.code(), e.to_string()))?;
    read_from(&mut link)
}

/// [`read`] over a link already open (the shell keeps one).
pub fn read_from(link: &mut Link) -> Result<Value, (&'static str, String)> {
    match link.request(&Request::Status) {
        Ok(Reply::Status(s)) => {
            let mut observed = observed_json(&s);
            // status only: receipts keep their json exactly as it was.
            for (i, w) in s.workers.iter().enumerate() {
                observed["workers"][format!("worker{i}")]["throttled"] = json!(w.throttled);
            }
            let mut out = json!({"system": link.system(), "state": state_json(&s), "observed": observed,
                "epoch": s.epoch, "keys": s.keys.name()});
            if s.keys == pd_interface::keys::KeySource::Dev {
                // the public dev keys: anyone can forge plans and tokens for this system
                out["dev_keys"] = json!(true);
            }
            Ok(out)
        }
        Ok(other) => Err(("link.reply", format!("unexpected reply {other:?}"))),
        Err(e) => Err((e.code(), e.to_string())),
    }
}

/// runs the command.
pub fn run(_args: &Args) -> Exit {
    match read() {
        Ok(v) => {
            common::print_json(&v);
            Exit::Ok
        }
        Err((code, message)) => {
            common::print_json(&json!({"error": {"code": code, "message": message}}));
            Exit::Rejected
        }
    }
}
