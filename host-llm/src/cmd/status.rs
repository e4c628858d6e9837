//! `llmsh status`: the state of the running system (hosted or qemu), read
//! back from its capability PDs through the verifier, via `llm-osd`.

use pd_interface::link::SystemState;
use serde_json::json;

pub use crate::receipt::{observed_json, state_json};

use crate::common::{self, Exit};
use crate::osd::client::{Client, OsdError};

/// arguments of `llmsh status`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// the running system's name and state, through llm-osd.
pub fn read(c: &mut Client) -> Result<(String, SystemState), OsdError> {
    let v = c.call("status", json!({}))?;
    let s: SystemState = serde_json::from_value(v["status"].clone()).map_err(|e| OsdError {
        code: "osd.reply".into(),
        message: format!("llm-osd's status does not decode: {e}"),
        exit: Exit::Machinery,
    })?;
    Ok((v["system"].as_str().unwrap_or("").to_owned(), s))
}

/// runs the command.
pub fn run(_args: &Args) -> Exit {
    let got = Client::connect().and_then(|mut c| read(&mut c));
    match got {
        Ok((system, s)) => {
            common::print_json(&json!({"system": system, "state": state_json(&s), "observed": observed_json(&s)}));
            Exit::Ok
        }
        Err(e) => e.report(),
    }
}
