//! the benchmark's intents (json lines: intent, session, state, expect) and
//! the setup plan that brings a fresh system to an intent's starting state.

use std::path::Path;

use policy_verifier::json::{self, InputError};
use policy_verifier::{confirm, Plan, Worker};
use serde_json::{json, Value};

use crate::common;

/// one benchmark case.
pub struct Case {
    /// the human's words.
    pub intent: String,
    /// the session it is planned in (`ops` when the line names none).
    pub session: String,
    /// the starting state: `worker1.running: false`, ...
    pub setup: Vec<(String, Value)>,
    /// what the receipt (or the refusal) must show.
    pub expect: Vec<(String, Value)>,
}

/// reads the intents through the corpus size cap; a line that is not json
/// is an error naming it.
pub fn load(path: &Path) -> Result<Vec<Case>, InputError> {
    let text = String::from_utf8_lossy(&common::read_input(path, common::Input::Corpus)?).into_owned();
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| crate::code::Code::BenchSyntax.err(format!("line {}: {e}", i + 1)))?;
        let pairs = |k: &str| -> Vec<(String, Value)> {
            v[k].as_object()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        out.push(Case {
            intent: v["intent"].as_str().unwrap_or("").to_string(),
            session: v["session"].as_str().unwrap_or("ops").to_string(),
            setup: pairs("state"),
            expect: pairs("expect"),
        });
    }
    Ok(out)
}

/// `worker1.pages` → (worker1, pages).
pub(super) fn split(key: &str) -> Option<(Worker, &str)> {
    let (w, f) = key.split_once('.')?;
    Some((Worker::from_name(w)?, f))
}

/// the setup plan that brings a fresh system to the case's starting state.
pub(super) fn setup_plan(case: &Case, key: &[u8; 32]) -> Option<Plan> {
    let mut actions = Vec::new();
    for (k, v) in &case.setup {
        let (pd, field) = split(k)?;
        match (field, v) {
            ("timer_period_us", Value::Number(n)) => {
                actions.push(json!({"op": "timer.set_periodic", "pd": pd.name(), "period_us": n}));
            }
            ("running", Value::Bool(false)) => {
                actions.push(json!({"op": "process.stop", "pd": pd.name()}))
            }
            _ => return None,
        }
    }
    if actions.is_empty() {
        return None;
    }
    let text = json!({"version": 1, "request_id": 1, "session": "admin", "reason": "bench setup", "actions": actions});
    let plan = json::parse_plan(text.to_string().as_bytes()).ok()?;
    if plan.has_destructive() {
        confirm::sign(&plan, key)
    } else {
        Some(plan)
    }
}

