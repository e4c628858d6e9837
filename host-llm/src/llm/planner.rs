//! intent → verified plan. the model drafts `reason` and `actions`; llmsh
//! adds version, request id and session, parses the draft with the strict
//! plan parser and runs the verifier. on a rejection the violated
//! invariants go back to the model, at most `max_retries` times per backend.
//! the planner never executes and never signs: confirmation is the human's.

use policy_verifier::json::{self, InputError};
use policy_verifier::{confirm, verify, Plan, Policy, State};
use serde_json::{json, Value};

use super::prompt::{self, Prompt};
use super::schema::{self, Envelope};
use super::{Backend, GenOptions, LlmError};

/// what to plan.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// the human's words.
    pub intent: &'a str,
    /// the policy the verifier enforces.
    pub policy: &'a Policy,
    /// the state the plan starts from (read from the system).
    pub state: &'a State,
    /// the session the plan runs under.
    pub session: &'a str,
    /// the confirmation key: used only to check plans as if the human had
    /// confirmed, so that `auth.confirm` alone never sends the model round again.
    pub key: &'a [u8; 32],
    /// feedback rounds after the first attempt, per backend.
    pub max_retries: u32,
}

/// how one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// the verifier approved the plan.
    Approved,
    /// the verifier rejected it; the violations as `llmsh check` prints them.
    Rejected(Vec<Value>),
    /// the draft is not a plan (only a server ignoring the schema gets here).
    BadDraft(InputError),
}

/// one attempt, as shown on stderr and kept in the audit log.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// 1-based over the whole request.
    pub number: u32,
    /// `local` or `remote`.
    pub backend: &'static str,
    /// the model.
    pub model: String,
    /// what the model wrote.
    pub draft: String,
    /// the verdict on it.
    pub outcome: Outcome,
    /// prompt + completion tokens.
    pub tokens: u64,
    /// wall time, ms.
    pub millis: u64,
    /// sha256 of the prompt.
    pub prompt_hash: String,
}

impl Attempt {
    /// the attempt as json (audit log, `--json` diagnostics).
    pub fn to_json(&self) -> Value {
        let outcome = match &self.outcome {
            Outcome::Approved => json!({"approved": true}),
            Outcome::Rejected(v) => json!({"approved": false, "violations": v}),
            Outcome::BadDraft(e) => json!({"approved": false, "error": e.to_json()["error"]}),
        };
        json!({
            "attempt": self.number, "backend": self.backend, "model": self.model, "draft": self.draft,
            "outcome": outcome, "tokens": self.tokens, "millis": self.millis, "prompt_hash": self.prompt_hash,
        })
    }

    /// one line for stderr.
    pub fn summary(&self) -> String {
        let verdict = match &self.outcome {
            Outcome::Approved => "approved".to_string(),
            Outcome::Rejected(v) => format!("rejected: {}", findings(v).join("; ")),
            Outcome::BadDraft(e) => format!("not a plan: {e}"),
        };
        format!(
            "llmsh: attempt {} ({} {}, {} tokens, {} ms): {}\nllmsh:   → {verdict}",
            self.number, self.backend, self.model, self.tokens, self.millis, self.draft
        )
    }
}

/// the planner's result: the last plan (approved or not) and every attempt.
#[derive(Debug, Clone)]
pub struct Planned {
    /// the plan, unsigned; none when no attempt produced a plan at all.
    pub plan: Option<Plan>,
    /// whether the verifier approves `plan` (given a confirmation).
    pub approved: bool,
    /// the verdict json of `plan` (`llmsh check` form).
    pub verdict: Value,
    /// every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// tokens spent on the whole request.
    pub tokens: u64,
}

impl Planned {
    /// the attempt that produced `plan`.
    pub fn last(&self) -> Option<&Attempt> {
        self.attempts.last()
    }
}

/// violations as short sentences for the model: `action 0 (memory.grant): mem.quota: …`.
pub fn findings(violations: &[Value]) -> Vec<String> {
    violations
        .iter()
        .map(|v| {
            format!(
                "action {} breaks {}: {}",
                v["action"].as_u64().unwrap_or(0),
                v["invariant"].as_str().unwrap_or("?"),
                v["detail"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// verifies `plan` as the human would see it after confirming: destructive
/// plans are checked with a token, so `auth.confirm` is the human's question,
/// not the model's.
pub fn verdict(req: &Request<'_>, plan: &Plan) -> (bool, Value) {
    let checked = if plan.has_destructive() {
        confirm::sign(plan, req.key).unwrap_or_else(|| plan.clone())
    } else {
        plan.clone()
    };
    let v = verify::verify(req.policy, req.state, &checked, req.key);
    (
        v.approved,
        json::verdict_json(req.policy, req.state, &checked, &v),
    )
}

/// plans `req.intent` with each backend in turn (hybrid: local, then remote)
/// until the verifier approves. `show` sees every attempt as it ends.
pub fn plan(
    req: &Request<'_>,
    backends: &mut [&mut dyn Backend],
    mut show: impl FnMut(&Attempt),
) -> Result<Planned, LlmError> {
    let budget = req
        .policy
        .session(req.session)
        .map_or(0, |s| s.token_budget);
    let env = Envelope {
        request_id: req.state.last_request_id.saturating_add(1),
        session: req.session.to_string(),
    };
    let first = prompt::build(req.policy, req.state, req.intent);
    let mut out = Planned {
        plan: None,
        approved: false,
        verdict: Value::Null,
        attempts: Vec::new(),
        tokens: 0,
    };
    let mut number = 0u32;
    for backend in backends.iter_mut() {
        let mut p: Prompt = first.clone();
        for round in 0..=req.max_retries {
            number += 1;
            let opts = GenOptions {
                max_tokens: budget.saturating_sub(out.tokens),
                temperature: if round == 0 { 0.0 } else { 0.6 },
                seed: u64::from(number),
            };
            let g = match backend.generate(&p, req.policy, &opts) {
                Ok(g) => g,
                Err(LlmError::Budget { used, .. }) => {
                    return Err(LlmError::Budget {
                        used: out.tokens + used,
                        budget,
                    });
                }
                Err(e) => return Err(e),
            };
            out.tokens += g.prompt_tokens + g.completion_tokens;
            let (outcome, feedback) = match schema::complete(&g.text, &env) {
                Err(e) => {
                    let msg = e.to_string();
                    (Outcome::BadDraft(e), vec![msg])
                }
                Ok(plan) => {
                    let (ok, v) = verdict(req, &plan);
                    out.plan = Some(plan);
                    out.approved = ok;
                    let viol = v["violations"].as_array().cloned().unwrap_or_default();
                    out.verdict = v;
                    if ok {
                        (Outcome::Approved, Vec::new())
                    } else {
                        let f = findings(&viol);
                        (Outcome::Rejected(viol), f)
                    }
                }
            };
            let attempt = Attempt {
                number,
                backend: backend.name(),
                model: backend.model(),
                draft: g.text.clone(),
                outcome,
                tokens: g.prompt_tokens + g.completion_tokens,
                millis: g.millis,
                prompt_hash: p.hash(),
            };
            show(&attempt);
            let approved = attempt.outcome == Outcome::Approved;
            out.attempts.push(attempt);
            if approved {
                return Ok(out);
            }
            p = p.with_feedback(&g.text, &feedback, req.intent);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Generation;
    use policy_verifier::DEFAULT_POLICY;

    /// a backend that answers from a script, to test the loop without a model.
    struct Scripted {
        answers: Vec<&'static str>,
        seen: Vec<Prompt>,
        tokens: u64,
    }

    impl Backend for Scripted {
        fn name(&self) -> &'static str {
            "local"
        }
        fn model(&self) -> String {
            "scripted".into()
        }
        fn generate(
            &mut self,
            p: &Prompt,
            _: &Policy,
            opts: &GenOptions,
        ) -> Result<Generation, LlmError> {
            if self.tokens > opts.max_tokens {
                return Err(LlmError::Budget {
                    used: self.tokens,
                    budget: opts.max_tokens,
                });
            }
            self.seen.push(p.clone());
            let text = self
                .answers
                .get(self.seen.len() - 1)
                .copied()
                .unwrap_or("{}")
                .to_string();
            Ok(Generation {
                text,
                prompt_tokens: self.tokens,
                completion_tokens: 0,
                millis: 1,
            })
        }
    }

    fn req<'a>(state: &'a State, session: &'a str, key: &'a [u8; 32]) -> Request<'a> {
        Request {
            intent: "give worker1 more memory",
            policy: &DEFAULT_POLICY,
            state,
            session,
            key,
            max_retries: 3,
        }
    }

    #[test]
    fn rejection_is_fed_back_and_the_retry_wins() {
        let key = [7u8; 32];
        let s = DEFAULT_POLICY.initial;
        let mut b = Scripted {
            answers: vec![
                r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":250}]}"#,
                r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":16}]}"#,
            ],
            seen: vec![],
            tokens: 10,
        };
        let r = plan(&req(&s, "ops", &key), &mut [&mut b], |_| {}).expect("plans");
        assert!(r.approved);
        assert_eq!(r.attempts.len(), 2);
        assert!(
            matches!(&r.attempts[0].outcome, Outcome::Rejected(v) if v[0]["invariant"] == "mem.quota")
        );
        // the second prompt carries the first draft and the violated invariant.
        let fb = &b.seen[1].messages.last().expect("feedback").1;
        assert!(fb.contains("mem.quota"), "{fb}");
        assert_eq!(r.plan.as_ref().map(|p| p.request_id), Some(1));
        assert_eq!(r.tokens, 20);
    }

    #[test]
    fn retries_stop_after_the_limit_and_report_the_rejection() {
        let key = [7u8; 32];
        let s = DEFAULT_POLICY.initial;
        let bad = r#"{"reason":"r","actions":[{"op":"process.stop","pd":"worker1"}]}"#;
        let mut b = Scripted {
            answers: vec![bad; 10],
            seen: vec![],
            tokens: 1,
        };
        let r = plan(&req(&s, "ops", &key), &mut [&mut b], |_| {}).expect("plans");
        assert!(!r.approved);
        assert_eq!(r.attempts.len(), 4, "1 attempt + 3 retries");
        assert_eq!(r.verdict["violations"][0]["invariant"], "auth.tier");
        // destructive plans are checked as if confirmed: auth.confirm is not the model's problem.
        let mut b = Scripted {
            answers: vec![bad],
            seen: vec![],
            tokens: 1,
        };
        let r = plan(&req(&s, "admin", &key), &mut [&mut b], |_| {}).expect("plans");
        assert!(r.approved, "{}", r.verdict);
        assert_eq!(
            r.plan.as_ref().and_then(|p| p.confirmation),
            None,
            "the planner never signs"
        );
    }

    #[test]
    fn the_token_budget_stops_planning() {
        let key = [7u8; 32];
        let s = DEFAULT_POLICY.initial;
        // the viewer session has 4096 tokens; each attempt here costs 1500.
        let bad = r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":16}]}"#;
        let mut b = Scripted {
            answers: vec![bad; 10],
            seen: vec![],
            tokens: 1500,
        };
        let r = plan(&req(&s, "viewer", &key), &mut [&mut b], |_| {});
        assert!(
            matches!(r, Err(LlmError::Budget { budget: 4096, .. })),
            "{r:?}"
        );
        assert_eq!(r.map_err(|e| e.code()).err(), Some("budget.tokens"));
    }
}
