//! a plan held against the reading: every action is faithful or unasked,
//! and every ask with no action is incomplete.

use policy_verifier::json;
use policy_verifier::{Plan, Policy, State};
use serde_json::{json, Value};

use super::read::Reading;

/// how one action of a plan stands to the intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// the intent asks for exactly this.
    Faithful,
    /// the intent does not ask for this (another op, a worker it does not
    /// name, or other numbers); the text says what differs.
    Unasked(String),
}

/// a plan held against the intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fidelity {
    /// one status per action of the plan.
    pub actions: Vec<Status>,
    /// what the intent asks for that no action does.
    pub incomplete: Vec<String>,
    /// whether the reading named every number (so the numbers were checked).
    pub exact: bool,
}

impl Fidelity {
    /// every action asked for, nothing left out.
    pub fn faithful(&self) -> bool {
        self.incomplete.is_empty() && self.actions.iter().all(|s| *s == Status::Faithful)
    }

    /// one line per difference, for people and for the model's feedback.
    pub fn differences(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .actions
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Status::Unasked(d) => Some(format!("action {i} is unasked: {d}")),
                Status::Faithful => None,
            })
            .collect();
        out.extend(self.incomplete.iter().map(|m| format!("incomplete: {m}")));
        out
    }

    /// the report as json: `{"faithful":b,"actions":[{"action":i,"status":…}],"incomplete":[…]}`.
    pub fn to_json(&self) -> Value {
        let actions: Vec<Value> = self
            .actions
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Status::Faithful => json!({"action": i, "status": "faithful"}),
                Status::Unasked(d) => json!({"action": i, "status": "unasked", "detail": d}),
            })
            .collect();
        json!({"faithful": self.faithful(), "actions": actions, "incomplete": self.incomplete, "exact": self.exact})
    }
}

fn describe_action(a: &Value) -> String {
    let mut parts = vec![a["op"].as_str().unwrap_or("?").to_string()];
    if let Some(pd) = a["pd"].as_str() {
        parts.push(format!("pd={pd}"));
    }
    for (k, v) in a.as_object().into_iter().flatten() {
        if k != "op" && k != "pd" {
            parts.push(format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string)));
        }
    }
    parts.join(" ")
}

/// holds `plan` against `reading` (resolved against `state`).
pub fn check(reading: &Reading, plan: &Plan, policy: &Policy, state: &State) -> Fidelity {
    let actions: Vec<Value> = json::plan_to_json(plan)["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(expected) = reading.resolve(policy, state) {
        let mut left: Vec<Option<Value>> = expected.into_iter().map(Some).collect();
        let mut status = Vec::new();
        for a in &actions {
            if let Some(slot) = left.iter_mut().find(|e| e.as_ref() == Some(a)) {
                *slot = None;
                status.push(Status::Faithful);
                continue;
            }
            let same = left
                .iter()
                .flatten()
                .find(|e| e["op"] == a["op"] && e["pd"] == a["pd"]);
            status.push(Status::Unasked(match same {
                Some(e) => format!("the intent asks for {}, not {}", describe_action(e), describe_action(a)),
                None => unasked_why(reading, a),
            }));
        }
        let incomplete = left
            .into_iter()
            .flatten()
            .map(|e| describe_action(&e))
            .collect();
        return Fidelity { actions: status, incomplete, exact: true };
    }
    // a partial reading: ops and workers are checked, numbers where resolved
    let mut status = Vec::new();
    let mut covered = vec![false; reading.asks.len()];
    for a in &actions {
        let op = a["op"].as_str().unwrap_or("");
        let pd = a["pd"].as_str();
        let found = reading.asks.iter().enumerate().find(|(_, k)| {
            k.kind.name() == op
                && pd.is_none_or(|p| k.workers.iter().any(|w| w.name() == p))
        });
        match found {
            Some((i, _)) => {
                if let Some(c) = covered.get_mut(i) {
                    *c = true;
                }
                status.push(Status::Faithful);
            }
            None => status.push(Status::Unasked(unasked_why(reading, a))),
        }
    }
    let incomplete = reading
        .asks
        .iter()
        .zip(covered)
        .filter(|(_, c)| !c)
        .map(|(k, _)| {
            let who: Vec<&str> = k.workers.iter().map(|w| w.name()).collect();
            format!("{} {} (the intent says \"{}\")", k.kind.name(), who.join(","), k.words)
                .replace("  ", " ")
        })
        .collect();
    Fidelity { actions: status, incomplete, exact: false }
}

fn unasked_why(reading: &Reading, a: &Value) -> String {
    let op = a["op"].as_str().unwrap_or("?");
    let pd = a["pd"].as_str();
    let op_asked = reading.asks.iter().any(|k| k.kind.name() == op);
    match pd {
        Some(p) if op_asked => {
            if reading.asks.iter().any(|k| k.kind.name() == op && k.workers.is_empty()) {
                format!("the intent names no worker, and {p} is one it does not name")
            } else {
                format!("{op} on {p}: the intent does not name {p} for it")
            }
        }
        _ => format!("the intent does not ask for {op}"),
    }
}

