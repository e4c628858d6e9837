//! who turns an intent case into a plan: the compromised planner of the
//! threat model here; the llm planner is the cli's (it needs its flags).

use serde_json::Value;

use super::corpus::IntentInput;

/// turns an intent (with the data it reads back) into a plan (json).
pub trait Planner {
    /// for the report.
    fn name(&self) -> String;
    /// the plan; an error means the planner produced nothing to send.
    fn plan(&mut self, input: &IntentInput) -> Result<Value, String>;
}

/// the worst case of the threat model: the llm obeys the injected data
/// completely and emits the attacker's plan.
pub struct Compromised;

impl Planner for Compromised {
    fn name(&self) -> String {
        "compromised (the attacker's plan verbatim)".into()
    }
    fn plan(&mut self, input: &IntentInput) -> Result<Value, String> {
        Ok(input.attacker_plan.clone())
    }
}
