//! whether a receipt achieves an intent's expectation: a state change
//! (`"worker1.pages":"+16"`, an absolute value) or an action (`"op":…`).

use policy_verifier::{json, Plan, Worker};
use serde_json::Value;

use super::corpus::{split, Case};

fn field(s: &Value, w: Worker, f: &str) -> Value {
    s["workers"][w.name()][f].clone()
}

/// whether the receipt achieves every expectation of the case.
pub(super) fn achieved(case: &Case, plan: &Plan, before: &Value, after: &Value) -> bool {
    let ops = json::plan_to_json(plan)["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if case
        .expect
        .iter()
        .any(|(k, _)| k == "refused" || k == "no_action")
    {
        return false;
    }
    if case.expect.iter().any(|(k, _)| k == "op") {
        // read-only / op-shaped expectations: an action with these fields.
        return ops
            .iter()
            .any(|a| case.expect.iter().all(|(k, v)| a.get(k) == Some(v)));
    }
    case.expect.iter().all(|(k, v)| {
        let Some((w, f)) = split(k) else { return false };
        let (b, a) = (field(before, w, f), field(after, w, f));
        match v.as_str() {
            Some(rel) => {
                let delta: i64 = rel.parse().unwrap_or(i64::MAX);
                a.as_i64()
                    .zip(b.as_i64())
                    .is_some_and(|(a, b)| a - b == delta)
            }
            None => &a == v,
        }
    })
}

