//! `llmsh status`: the state of the running system (hosted or qemu), read
//! back from its capability PDs through the verifier, via `llm-osd`.

use pd_interface::link::SystemState;
use serde_json::{json, Value};

pub use crate::receipt::{observed_json, state_json};

use crate::common::{self, Exit};
use crate::osd::client::{Client, OsdError};

/// arguments of `llmsh status`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// the running system's name and state, through llm-osd.
pub fn read(c: &mut Client) -> Result<(String, SystemState), OsdError> {
    let v = c.call("status", json!({}))?;
    let s: SystemState = serde_json::from_value(v["status"].clone()).map_err(|e| OsdError::new(crate::code::Code::OsdReply, format!("llm-osd's status does not decode: {e}")))?;
    Ok((v["system"].as_str().unwrap_or("").to_owned(), s))
}

/// the running system's status json, `{"system","state","observed","epoch","keys"}`
/// (and `dev_keys` on the public dev keys): the
/// one read of `llmsh status`, `llmsh top` and the shell's `status`.
pub fn status_json(c: &mut Client) -> Result<Value, OsdError> {
    let (system, s) = read(c)?;
    let mut observed = observed_json(&s);
    // status only: receipts keep their json exactly as it was.
    for (i, w) in s.workers.iter().enumerate() {
        observed["workers"][format!("worker{i}")]["throttled"] = json!(w.throttled);
    }
    let mut out = json!({"system": system, "state": state_json(&s), "observed": observed,
        "epoch": s.epoch, "keys": s.keys.name()});
    if s.keys == pd_interface::keys::KeySource::Dev {
        // the public dev keys: anyone can forge plans and tokens for this system
        out["dev_keys"] = json!(true);
    }
    Ok(out)
}

/// runs the command.
pub fn run(_args: &Args) -> Exit {
    match Client::connect().and_then(|mut c| status_json(&mut c)) {
        Ok(v) => {
            common::print_json(&v);
            Exit::Ok
        }
        Err(e) => e.report(),
    }
}
