//! the running `llm-osd`, as the commands that execute plans reach it:
//! connected (and booted with `--boot`), checked to run the system and
//! write the audit log the command names, and sent a confirmed plan.

use std::path::{Path, PathBuf};

use pd_interface::link::Receipt;
use policy_verifier::json;
use serde_json::{json, Value};

use crate::audit::Origin;
use crate::code::Code;
use crate::osd::client::{Client, OsdError};

/// the running llm-osd, checked to run `system` (if given) and write
/// `audit_log` (if given); with `boot` and none running, one is started,
/// which is said on stderr.
pub fn connect(system: Option<&str>, boot: bool, audit_log: Option<&Path>) -> Result<Client, OsdError> {
    let c = match Client::connect() {
        Ok(c) => c,
        Err(e) if e.is_down() && boot => {
            let sys = system.unwrap_or("hosted");
            eprintln!(
                "llmsh: no system is running: booting a {sys} system with llm-osd (`--boot`); it keeps running, `llmsh boot --stop` stops it"
            );
            let v = crate::cmd::boot::start(sys, audit_log, None, &mut |l| eprintln!("llmsh: {l}"))?;
            eprintln!("llmsh: {v}");
            Client::connect()?
        }
        Err(e) => return Err(e),
    };
    if let Some(s) = system.filter(|s| *s != c.system()) {
        return Err(OsdError::new(
            Code::SystemOther,
            format!("the running system is {}, not {s}; nothing ran (`llmsh boot --stop`, then `llmsh boot --system {s}`)", c.system()),
        ));
    }
    if let Some(p) = audit_log {
        let theirs = c.info["audit_log"].as_str().map(PathBuf::from);
        let same = |a: &Path, b: &Path| a == b || a.canonicalize().ok().is_some_and(|x| b.canonicalize().ok() == Some(x));
        if !theirs.as_deref().is_some_and(|t| same(t, p)) {
            return Err(OsdError::new(
                Code::AuditLog,
                format!(
                    "the running llm-osd writes the audit log `{}`, not `{}`; nothing ran",
                    theirs.unwrap_or_default().display(),
                    p.display()
                ),
            ));
        }
    }
    Ok(c)
}

/// sends a (confirmed) plan to llm-osd: the verifier PD's receipt and
/// whether it was a retry answered from the stored receipt.
pub fn execute(c: &mut Client, plan: &policy_verifier::Plan, origin: &Origin) -> Result<(Receipt, bool), OsdError> {
    let v = c.call("apply", json!({"plan": json::plan_to_json(plan), "origin": origin.to_json()}))?;
    let r: Receipt = serde_json::from_value(v["receipt"].clone()).map_err(|e| OsdError::new(Code::OsdReply, format!("llm-osd's receipt does not decode: {e}")))?;
    Ok((r, v["retry"] == Value::Bool(true)))
}

