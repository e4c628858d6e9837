//! the receipt and state as json: what `llmsh` prints and `llm-osd`
//! records.

use pd_interface::link::{Receipt, SystemState};
use policy_verifier::json::{self, state_to_json};
use policy_verifier::{verify, Plan, Policy};
use serde_json::{json, Value};

use crate::common;

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
           "invocations": {"process": n.process, "memory": n.memory, "timer": n.timer},
           "plans_executed": s.plans_executed, "plans_hash": json::hex(&s.plans_hash)})
}

/// the receipt as DESIGN.md prints it. the verifier PD sends invariant
/// ids; they are named here with `policy`, the policy in force on the
/// system (its custom invariants by slot). details come from the host's
/// policy-verifier run on the receipt's `state_before` under the same
/// policy when it names the same invariants (it always should: it is the
/// same code).
pub fn receipt_json(policy: &Policy, plan: &Plan, r: &Receipt) -> Value {
    let before = pd_verifier::model_state(&r.state_before);
    let key = common::epoch_key(&common::load_key(None).unwrap_or([0; 32]), r.state_before.epoch);
    let host = verify(policy, &before, plan, &key);
    let host_v = json::violations_json(policy, &before, plan, &host);
    let pd: Vec<(u8, &str)> = r.names(policy).collect();
    let same = host_v.len() == pd.len()
        && host_v.iter().zip(pd.iter()).all(|(h, (action, name))| h["action"] == json!(action) && h["invariant"] == json!(name));
    let violations: Vec<Value> = if same {
        host_v
    } else {
        pd.iter().map(|(action, name)| json!({"action": action, "invariant": name})).collect()
    };
    let mut out = json!({
        "request_id": r.request_id,
        "approved": r.approved,
        "executed": r.executed,
        "failed_action": r.failed_action,
        "violations": violations,
        "state_after": state_json(&r.state_after),
        "observed_after": observed_json(&r.state_after),
        "epoch": r.state_after.epoch,
        "keys": r.state_after.keys.name(),
    });
    if r.state_after.keys == pd_interface::keys::KeySource::Dev {
        // the public dev keys: anyone can forge plans and tokens for this system
        out["dev_keys"] = json!(true);
    }
    if let Some(f) = r.failure {
        out["failure"] = json!(format!("{f:?}"));
    }
    if let Some(inv) = &r.inventory {
        // strings from the firmware PD are untrusted data: shown, never interpreted
        out["inventory"] = json!({
            "cpus": inv.cpus,
            "cpu_model": inv.cpu_model.as_str(),
            "memory": inv.memory.iter().map(|m| json!({"base": m.base, "size": m.size})).collect::<Vec<_>>(),
            "devices": inv.devices.iter().map(|d| json!({"name": d.name.as_str(), "compatible": d.compatible.as_str(),
                "base": d.base, "size": d.size, "irq": d.irq})).collect::<Vec<_>>(),
        });
    }
    out
}

