//! intent → verified plan. the model drafts `reason` and `actions`; llmsh
//! adds version, request id and session, parses the draft with the strict
//! plan parser and runs the verifier. on a rejection the violated
//! invariants go back to the model, at most `max_retries` times per backend.
//! the planner never executes and never signs: confirmation is the human's.
//!
//! an approved plan can still not be what was asked (a small model often
//! writes one action for "x and y", the wrong op for a clear word, or
//! another worker). every draft is held against the intent's reading
//! ([`fidelity`]): when the words resolve to exact actions and the draft is
//! not them, the reader's own plan is verified in its place; otherwise the
//! differences go back to the model. a plan that stays unfaithful is
//! returned marked so, and `apply` runs it only on the human's explicit yes.
//! nonsense asks nothing and reaches no model. rejections no retry can fix
//! (a faithful plan the policy refuses, `auth.tier`, `auth.confirm`) end the
//! request.

use policy_verifier::json::{self, InputError};
use policy_verifier::{confirm, verify, ActionKind, Invariant, Plan, Policy, State, Tier};
use serde_json::{json, Value};

use super::fidelity::{self, Fidelity};
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
    /// hold drafts against the intent's reading (the default). off, the
    /// planner is what it was before the fidelity check: the model plans
    /// every intent, the first approved draft stands and nothing is
    /// repaired or written by the reader. only the benchmark's defense
    /// sweep turns it off; the verdict's fidelity is still reported.
    pub fidelity: bool,
}

/// how one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// the verifier approved the plan.
    Approved,
    /// the verifier rejected it; the violations as `llmsh check` prints them.
    Rejected(Vec<Value>),
    /// the verifier approved it, but it leaves out what these words of the
    /// intent ask for; the model gets another round.
    Incomplete(Vec<String>),
    /// the verifier approved it, but it does what the intent does not ask
    /// (another op, another worker, other numbers).
    Unfaithful(Vec<String>),
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
            Outcome::Incomplete(m) => json!({"approved": true, "incomplete": m}),
            Outcome::Unfaithful(m) => json!({"approved": true, "unfaithful": m}),
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
            Outcome::Incomplete(m) => format!("approved, but leaves out {}", m.join("; ")),
            Outcome::Unfaithful(m) => format!("approved, but not what was asked: {}", m.join("; ")),
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
    /// index into `attempts` of the attempt that wrote `plan`.
    pub produced_by: usize,
    /// `plan` held against the intent.
    pub fidelity: Option<Fidelity>,
    /// the intent asks for nothing llmsh can do: no model was asked.
    pub no_action: bool,
    /// what went wrong on the way (a failed backend, an unknown worker).
    pub notes: Vec<String>,
}

impl Planned {
    /// the plan does what the intent asks and nothing else.
    pub fn faithful(&self) -> bool {
        self.fidelity.as_ref().is_some_and(Fidelity::faithful)
    }

    /// the attempt that produced `plan`.
    pub fn last(&self) -> Option<&Attempt> {
        self.attempts.get(self.produced_by)
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

/// words that name an op unambiguously, and the ops that do what they ask.
/// only words with one reading: "stop" (a worker, or its timer?) and
/// "memory" (grant, or the inventory?) are left out.
const ASKS: &[(&str, &[ActionKind])] = &[
    ("priority", &[ActionKind::ProcessSetPriority]),
    ("budget", &[ActionKind::ProcessSetBudget]),
    ("cpu", &[ActionKind::ProcessSetBudget]),
    (
        "timer",
        &[ActionKind::TimerSetPeriodic, ActionKind::TimerCancel],
    ),
    ("wake", &[ActionKind::TimerSetPeriodic]),
    ("tick", &[ActionKind::TimerSetPeriodic]),
    ("notify", &[ActionKind::TimerSetPeriodic]),
    (
        "pages",
        &[ActionKind::MemoryGrant, ActionKind::MemoryReclaim],
    ),
    ("reclaim", &[ActionKind::MemoryReclaim]),
    ("inventory", &[ActionKind::FirmwareInventory]),
    ("devices", &[ActionKind::FirmwareInventory]),
    ("cpus", &[ActionKind::FirmwareInventory]),
    ("restart", &[ActionKind::ProcessRestart]),
];

/// the intent's words, lowercased.
fn intent_words(intent: &str) -> Vec<String> {
    intent
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// the [`ASKS`] entries whose word the intent uses, each narrowed to the
/// op the intent's other words point to when they do ("free 8 pages" asks
/// for a reclaim, not any page op).
fn asked(intent: &str) -> Vec<(&'static str, Vec<ActionKind>)> {
    let words = intent_words(intent);
    ASKS.iter()
        .filter(|(w, _)| words.iter().any(|x| x == w))
        .map(|(w, ops)| (*w, narrowed(ops, &words)))
        .collect()
}

/// of several ops for an ask, the one the intent's other words point to
/// ("take back" pages, "cancel" a timer); all of them when none does.
fn narrowed(ops: &[ActionKind], words: &[String]) -> Vec<ActionKind> {
    let says = |w: &[&str]| words.iter().any(|x| w.contains(&x.as_str()));
    if ops.contains(&ActionKind::MemoryReclaim)
        && says(&["reclaim", "back", "free", "release", "return"])
    {
        return vec![ActionKind::MemoryReclaim];
    }
    if ops.contains(&ActionKind::TimerCancel)
        && says(&["cancel", "stop", "remove", "off", "disable", "delete"])
    {
        return vec![ActionKind::TimerCancel];
    }
    ops.to_vec()
}

/// the forced start of a repair attempt for a draft that left out part of
/// the intent: the draft's reason, its actions that answer some ask of the
/// intent (the others were wrong guesses), then the opening of an action of
/// the first missing op; the model writes the rest. none when the draft is
/// not in the grammar's compact form.
pub fn repair_prefix(intent: &str, draft: &str, plan: &Plan) -> Option<String> {
    let head = "{\"reason\":\"";
    let mid = "\",\"actions\":[";
    let body = draft.strip_prefix(head)?;
    let at = body.find(mid)?;
    let reason = body.get(..at)?;
    let actions = body.get(at + mid.len()..)?.strip_suffix("]}")?;
    let asks = asked(intent);
    let wanted = |k: ActionKind| asks.iter().any(|(_, ops)| ops.contains(&k));
    // compact drafts hold flat action objects: `},{` only separates them
    let pieces: Vec<String> = actions
        .split("},{")
        .map(|p| format!("{{{}}}", p.trim_start_matches('{').trim_end_matches('}')))
        .collect();
    if pieces.len() != plan.actions.len() {
        return None;
    }
    let kept: Vec<&String> = pieces
        .iter()
        .zip(plan.actions.iter())
        .filter(|(_, a)| wanted(a.kind()))
        .map(|(p, _)| p)
        .collect();
    let add = asks
        .iter()
        .find(|(_, ops)| !plan.actions.iter().any(|a| ops.contains(&a.kind())))
        .and_then(|(_, ops)| ops.first().copied())?;
    let mut prefix = format!("{head}{reason}{mid}");
    for k in kept {
        prefix.push_str(k);
        prefix.push(',');
    }
    prefix.push_str(&format!("{{\"op\":\"{}\"", add.name()));
    Some(prefix)
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
    // a read-only session's model may write only reads: whatever it picks
    // is harmless, and it cannot drift to a mutation the session would be
    // refused. other sessions see every op, so an admin op asked under an
    // operator session is refused visibly (auth.tier) instead of becoming
    // some other mutation the grammar happens to allow.
    let tier = match req.policy.session(req.session).map(|s| s.tier) {
        Some(Tier::Observer) | None => Tier::Observer,
        Some(_) => Tier::Admin,
    };
    let env = Envelope {
        request_id: req.state.last_request_id.saturating_add(1),
        session: req.session.to_string(),
    };
    let reading = fidelity::read(req.intent);
    let mut out = Planned {
        plan: None,
        approved: false,
        verdict: Value::Null,
        attempts: Vec::new(),
        tokens: 0,
        produced_by: 0,
        fidelity: None,
        no_action: false,
        notes: Vec::new(),
    };
    if let (true, Some(w)) = (req.fidelity, &reading.unknown_worker) {
        out.no_action = true;
        out.notes.push(format!("the system has no {w}"));
        return Ok(out);
    }
    if req.fidelity && reading.is_nothing() {
        out.no_action = true;
        out.notes
            .push("nothing in the intent asks for an op llmsh knows".to_string());
        return Ok(out);
    }
    let expected = reading.resolve(req.policy, req.state).filter(|_| req.fidelity);
    let mut first = prompt::build(req.policy, req.state, req.intent);
    // relative asks reach the grammar resolved ("double" → the pages to add)
    if req.fidelity {
        first
            .numbers
            .extend(reading.draft_numbers(req.policy, req.state));
    }
    first.numbers.sort_unstable();
    first.numbers.dedup();
    let mut number = 0u32;
    // the first approved plan (faithful or not), with its verdict
    let mut fallback: Option<(Plan, Value, usize, Fidelity)> = None;
    // a reading that resolves to exact actions repairs an unfaithful draft
    // itself; feedback rounds are for intents read only in part.
    let rounds = if expected.is_some() { 0 } else { req.max_retries };
    let n_backends = backends.len();
    for b in backends.iter_mut() {
        b.begin();
    }
    'backends: for (bi, backend) in backends.iter_mut().enumerate() {
        let mut p: Prompt = first.clone();
        for round in 0..=rounds {
            number += 1;
            let opts = GenOptions {
                max_tokens: budget.saturating_sub(out.tokens),
                temperature: if round == 0 { 0.0 } else { 0.6 },
                seed: u64::from(number),
                tier,
            };
            let g = match backend.generate(&p, req.policy, &opts) {
                Ok(g) => g,
                Err(LlmError::Budget { used, .. }) => {
                    return Err(LlmError::Budget {
                        used: out.tokens + used,
                        budget,
                    });
                }
                // nothing to show for it and nothing else to try: the error
                Err(e)
                    if out.attempts.is_empty() && bi + 1 == n_backends =>
                {
                    return Err(e)
                }
                // hybrid keeps the other backend's verdict
                Err(e) => {
                    out.notes
                        .push(format!("the {} backend failed: {e} ({})", backend.name(), e.code()));
                    continue 'backends;
                }
            };
            out.tokens += g.prompt_tokens + g.completion_tokens;
            let mut terminal = false;
            let (outcome, feedback) = match schema::complete(&g.text, &env) {
                Err(e) => {
                    let msg = format!("that is not a plan: {e}");
                    (Outcome::BadDraft(e), msg)
                }
                Ok(plan) => {
                    let (ok, v) = verdict(req, &plan);
                    let fid = fidelity::check(&reading, &plan, req.policy, req.state);
                    let viol = v["violations"].as_array().cloned().unwrap_or_default();
                    if ok && fallback.is_none() {
                        fallback = Some((plan.clone(), v.clone(), out.attempts.len(), fid.clone()));
                    }
                    out.plan = Some(plan);
                    out.produced_by = out.attempts.len();
                    out.approved = ok;
                    out.verdict = v;
                    out.fidelity = Some(fid.clone());
                    if !ok {
                        // the ask itself breaks the policy, or the tier or the
                        // confirmation refuses it: no retry can change that
                        terminal = (req.fidelity && fid.exact && fid.faithful())
                            || viol.iter().any(|x| {
                                matches!(
                                    x["invariant"].as_str().and_then(Invariant::from_name),
                                    Some(Invariant::AuthTier | Invariant::AuthConfirm)
                                )
                            });
                        let f = format!(
                            "the verifier rejected that plan: {}",
                            findings(&viol).join("; ")
                        );
                        (Outcome::Rejected(viol), f)
                    } else if fid.faithful() || !req.fidelity {
                        (Outcome::Approved, String::new())
                    } else if fid.actions.iter().all(|a| *a == fidelity::Status::Faithful) {
                        let f = format!(
                            "that plan leaves out part of the intent: it has no {}",
                            fid.incomplete.join(", no ")
                        );
                        (Outcome::Incomplete(fid.incomplete.clone()), f)
                    } else {
                        let d = fid.differences();
                        let f = format!("that plan does not do what the intent says: {}", d.join("; "));
                        (Outcome::Unfaithful(d), f)
                    }
                }
            };
            let attempt = Attempt {
                number,
                backend: backend.name(),
                model: backend.model(),
                draft: truncated(&g.text),
                outcome,
                tokens: g.prompt_tokens + g.completion_tokens,
                millis: g.millis,
                prompt_hash: p.hash(),
            };
            show(&attempt);
            let approved = attempt.outcome == Outcome::Approved;
            out.attempts.push(attempt);
            if approved || terminal {
                return Ok(out);
            }
            let repair = match (&out.attempts.last().map(|a| &a.outcome), &out.plan) {
                (Some(Outcome::Incomplete(_) | Outcome::Unfaithful(_)), Some(plan)) => {
                    repair_prefix(req.intent, &g.text, plan)
                }
                _ => None,
            };
            p = p.with_feedback(&truncated(&g.text), &feedback, req.intent);
            p.answer_prefix = repair;
        }
    }
    if let Some(actions) = expected {
        // no draft did what the words ask, and the words say exactly what:
        // the reader's plan, verified like any other
        if let Some(plan) = reader_plan(req.intent, &actions, &env) {
            let (ok, v) = verdict(req, &plan);
            let fid = fidelity::check(&reading, &plan, req.policy, req.state);
            number += 1;
            let viol = v["violations"].as_array().cloned().unwrap_or_default();
            let attempt = Attempt {
                number,
                backend: READER,
                model: "deterministic".into(),
                draft: schema::plan_text(&plan),
                outcome: if ok { Outcome::Approved } else { Outcome::Rejected(viol) },
                tokens: 0,
                millis: 0,
                prompt_hash: String::new(),
            };
            show(&attempt);
            out.produced_by = out.attempts.len();
            out.attempts.push(attempt);
            out.plan = Some(plan);
            out.approved = ok;
            out.verdict = v;
            out.fidelity = Some(fid);
            return Ok(out);
        }
    }
    // no faithful plan: the first approved one is shown, marked as it is
    if let (false, Some((plan, v, at, fid))) = (out.approved, fallback) {
        out.plan = Some(plan);
        out.approved = true;
        out.verdict = v;
        out.produced_by = at;
        out.fidelity = Some(fid);
    }
    Ok(out)
}

/// the backend name of a plan llmsh's reader wrote from the intent's words.
pub const READER: &str = "reader";

/// most bytes of a draft that are shown, logged or fed back to the model.
pub const DRAFT_SHOWN_BYTES: usize = 2048;

/// `draft` cut to [`DRAFT_SHOWN_BYTES`] on a character boundary.
pub fn truncated(draft: &str) -> String {
    if draft.len() <= DRAFT_SHOWN_BYTES {
        return draft.to_string();
    }
    let mut end = DRAFT_SHOWN_BYTES;
    while !draft.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &draft[..end], draft.len() - end)
}

/// the plan of the reader's exact actions.
fn reader_plan(intent: &str, actions: &[Value], env: &Envelope) -> Option<Plan> {
    let reason: String = intent.chars().take(schema::DRAFT_REASON_CHARS as usize).collect();
    let text = json!({
        "version": 1, "request_id": env.request_id, "session": env.session,
        "reason": reason, "actions": actions,
    });
    json::parse_plan(text.to_string().as_bytes()).ok()
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
            fidelity: true,
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
        let big = r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":250}]}"#;
        let mut b = Scripted {
            answers: vec![big; 10],
            seen: vec![],
            tokens: 1,
        };
        let r = plan(&req(&s, "ops", &key), &mut [&mut b], |_| {}).expect("plans");
        assert!(!r.approved);
        assert_eq!(r.attempts.len(), 4, "1 attempt + 3 retries");
        assert_eq!(r.verdict["violations"][0]["invariant"], "mem.quota");
    }

    #[test]
    fn no_retry_is_spent_on_the_tier_and_destructive_plans_are_checked_as_confirmed() {
        let key = [7u8; 32];
        let s = DEFAULT_POLICY.initial;
        let stop = r#"{"reason":"r","actions":[{"op":"process.stop","pd":"worker1"}]}"#;
        let mut b = Scripted {
            answers: vec![stop; 10],
            seen: vec![],
            tokens: 1,
        };
        let mut r = req(&s, "ops", &key);
        r.intent = "worker1 must be halted now";
        let out = plan(&r, &mut [&mut b], |_| {}).expect("plans");
        assert!(!out.approved);
        assert_eq!(out.attempts.len(), 1, "auth.tier: no retry can fix it");
        assert_eq!(out.verdict["violations"][0]["invariant"], "auth.tier");
        // destructive plans are checked as if confirmed: auth.confirm is not the model's problem.
        let mut b = Scripted {
            answers: vec![stop],
            seen: vec![],
            tokens: 1,
        };
        r.session = "admin";
        let out = plan(&r, &mut [&mut b], |_| {}).expect("plans");
        assert!(out.approved && out.faithful(), "{}", out.verdict);
        assert_eq!(
            out.plan.as_ref().and_then(|p| p.confirmation),
            None,
            "the planner never signs"
        );
    }

    #[test]
    fn a_faithful_plan_the_policy_refuses_is_refused_at_once_with_the_named_number() {
        let key = [7u8; 32];
        let s = DEFAULT_POLICY.initial;
        // the model clamps the number; the reader keeps it, and the verifier refuses it
        let clamped = r#"{"reason":"r","actions":[{"op":"process.set_priority","pd":"worker0","priority":15}]}"#;
        let mut b = Scripted {
            answers: vec![clamped; 4],
            seen: vec![],
            tokens: 1,
        };
        let mut r = req(&s, "ops", &key);
        r.intent = "set worker0 priority to 150";
        let out = plan(&r, &mut [&mut b], |_| {}).expect("plans");
        assert!(matches!(&out.attempts[0].outcome, Outcome::Unfaithful(_)));
        assert_eq!(out.attempts.len(), 2, "one draft, then the reader's plan");
        assert_eq!(out.attempts[1].backend, READER);
        assert!(!out.approved);
        assert!(out.faithful());
        assert_eq!(out.verdict["violations"][0]["invariant"], "prio.ceiling");
        // the same with a draft that already carries the number: no retry at all
        let exact = r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":10000}]}"#;
        let mut b = Scripted {
            answers: vec![exact; 4],
            seen: vec![],
            tokens: 1,
        };
        r.intent = "grant worker1 10000 pages";
        let out = plan(&r, &mut [&mut b], |_| {}).expect("plans");
        assert_eq!(out.attempts.len(), 1);
        assert_eq!(out.verdict["violations"][0]["invariant"], "mem.quota");
    }

    #[test]
    fn an_unfaithful_draft_of_an_exact_ask_is_replaced_by_the_readers_plan() {
        let key = [7u8; 32];
        let s = DEFAULT_POLICY.initial;
        let cases = [
            // a grant for a "free", on a stopped worker
            ("free 8 pages of memory from worker1", r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":8}]}"#, "admin"),
            ("lower the priority of all workers to 20", r#"{"reason":"r","actions":[{"op":"process.set_priority","pd":"worker0","priority":20}]}"#, "ops"),
            ("give worker2 20 more pages", r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":20}]}"#, "ops"),
            ("restart worker1", r#"{"reason":"r","actions":[{"op":"process.start","pd":"worker1"}]}"#, "admin"),
            ("banana purple elephant", r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker3","pages":24}]}"#, "ops"),
        ];
        let mut s1 = s;
        s1.workers[1].running = false;
        for (intent, draft, session) in cases {
            let mut b = Scripted {
                answers: vec![draft; 4],
                seen: vec![],
                tokens: 1,
            };
            let state = if intent.starts_with("free") { &s1 } else { &s };
            let mut r = req(state, session, &key);
            r.intent = intent;
            let out = plan(&r, &mut [&mut b], |_| {}).expect("plans");
            if intent.starts_with("banana") {
                assert!(out.no_action && out.plan.is_none() && b.seen.is_empty(), "{intent}");
                continue;
            }
            assert!(out.faithful(), "{intent}: {:?}", out.fidelity);
            assert!(out.approved, "{intent}: {}", out.verdict);
            let p = out.plan.expect("plan");
            let j = json::plan_to_json(&p);
            match intent {
                i if i.starts_with("free") => assert_eq!(j["actions"][0]["op"], "memory.reclaim"),
                i if i.starts_with("lower") => assert_eq!(p.actions.len(), policy_verifier::N_WORKERS),
                i if i.starts_with("give") => assert_eq!(j["actions"][0]["pd"], "worker2"),
                _ => assert_eq!(j["actions"][0]["op"], "process.restart"),
            }
        }
    }

    /// the benchmark's "fidelity off" defense is the planner of old: the
    /// model's first approved draft stands, unfaithful or not, and nonsense
    /// goes to the model.
    #[test]
    fn with_the_fidelity_check_off_the_first_approved_draft_stands() {
        let key = [7u8; 32];
        let s = DEFAULT_POLICY.initial;
        for (intent, draft) in [
            ("give worker2 20 more pages", r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":20}]}"#),
            ("banana purple elephant", r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker3","pages":24}]}"#),
        ] {
            let mut b = Scripted { answers: vec![draft; 4], seen: vec![], tokens: 1 };
            let mut r = req(&s, "ops", &key);
            r.intent = intent;
            r.fidelity = false;
            let out = plan(&r, &mut [&mut b], |_| {}).expect("plans");
            assert!(!out.no_action, "{intent}");
            assert_eq!(out.attempts.len(), 1, "{intent}: one draft, no repair");
            assert_eq!(out.attempts[0].outcome, Outcome::Approved, "{intent}");
            assert!(out.approved && !out.faithful(), "{intent}: {:?}", out.fidelity);
            assert_eq!(out.plan.map(|p| json::plan_to_json(&p)["actions"][0]["pd"].clone()), Some(json!(draft_pd(draft))));
        }
    }

    fn draft_pd(draft: &str) -> String {
        let v: Value = serde_json::from_str(draft).expect("json");
        v["actions"][0]["pd"].as_str().unwrap_or("").to_string()
    }

    #[test]
    fn a_plan_that_leaves_out_part_of_the_intent_goes_round_again() {
        let key = [7u8; 32];
        let s = DEFAULT_POLICY.initial;
        let only_priority = r#"{"reason":"r","actions":[{"op":"process.set_priority","pd":"worker1","priority":95}]}"#;
        let both = r#"{"reason":"r","actions":[{"op":"process.set_priority","pd":"worker1","priority":95},{"op":"timer.set_periodic","pd":"worker1","period_ms":10}]}"#;
        let mut b = Scripted {
            answers: vec![only_priority, both],
            seen: vec![],
            tokens: 1,
        };
        let mut r = req(&s, "ops", &key);
        // no numbers: read in part, so the model gets feedback rounds
        r.intent = "raise the priority of worker1 and give it a periodic timer";
        let out = plan(&r, &mut [&mut b], |_| {}).expect("plans");
        assert!(out.approved && out.faithful());
        assert_eq!(out.attempts.len(), 2);
        assert!(
            matches!(&out.attempts[0].outcome, Outcome::Incomplete(m) if m[0].contains("timer.set_periodic")),
            "{:?}",
            out.attempts[0].outcome
        );
        let fb = &b.seen[1].messages.last().expect("feedback").1;
        assert!(fb.contains("leaves out") && fb.contains("timer.set_periodic"), "{fb}");
        assert_eq!(out.plan.as_ref().map(|p| p.actions.len()), Some(2));
        assert_eq!(out.produced_by, 1);
    }

    #[test]
    fn when_no_retry_covers_the_intent_the_plan_is_kept_but_marked_unfaithful() {
        let key = [7u8; 32];
        let s = DEFAULT_POLICY.initial;
        let only_priority = r#"{"reason":"r","actions":[{"op":"process.set_priority","pd":"worker1","priority":95}]}"#;
        let rejected =
            r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":250}]}"#;
        let mut b = Scripted {
            answers: vec![only_priority, rejected, rejected, rejected],
            seen: vec![],
            tokens: 1,
        };
        let mut r = req(&s, "ops", &key);
        r.intent = "raise the priority of worker1 and give it a periodic timer";
        let out = plan(&r, &mut [&mut b], |_| {}).expect("plans");
        assert_eq!(out.attempts.len(), 4);
        assert!(out.approved, "{}", out.verdict);
        assert!(!out.faithful());
        assert_eq!(out.produced_by, 0);
        let f = out.fidelity.expect("checked");
        assert_eq!(f.incomplete.len(), 1, "{f:?}");
    }

    #[test]
    fn hybrid_keeps_the_local_verdict_when_the_remote_fails() {
        struct Down;
        impl Backend for Down {
            fn name(&self) -> &'static str {
                "remote"
            }
            fn model(&self) -> String {
                "down".into()
            }
            fn generate(&mut self, _: &Prompt, _: &Policy, _: &GenOptions) -> Result<Generation, LlmError> {
                Err(LlmError::Remote(crate::code::Code::RemoteConnect, "connection refused".into()))
            }
        }
        let key = [7u8; 32];
        let s = DEFAULT_POLICY.initial;
        let big = r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":250}]}"#;
        let mut local = Scripted {
            answers: vec![big; 4],
            seen: vec![],
            tokens: 1,
        };
        let mut remote = Down;
        let out = plan(&req(&s, "ops", &key), &mut [&mut local, &mut remote], |_| {}).expect("plans");
        assert_eq!(out.attempts.len(), 4);
        assert_eq!(out.verdict["violations"][0]["invariant"], "mem.quota");
        assert!(out.notes.iter().any(|n| n.contains("remote") && n.contains("connection refused")), "{:?}", out.notes);
    }

    #[test]
    fn a_repair_keeps_the_right_actions_and_opens_the_missing_one() {
        let env = Envelope {
            request_id: 1,
            session: "ops".into(),
        };
        let cases = [
            (
                "wake worker2 every 25 ms and hand it 10 extra pages",
                r#"{"reason":"set 10 pages","actions":[{"op":"memory.grant","pd":"worker2","pages":10},{"op":"process.set_priority","pd":"worker2","priority":10}]}"#,
                r#"{"reason":"set 10 pages","actions":[{"op":"memory.grant","pd":"worker2","pages":10},{"op":"timer.set_periodic""#,
            ),
            (
                "worker3 ought to have priority 45",
                r#"{"reason":"priority 45 for worker3","actions":[{"op":"memory.grant","pd":"worker3","pages":45}]}"#,
                r#"{"reason":"priority 45 for worker3","actions":[{"op":"process.set_priority""#,
            ),
            (
                "switch the timer of worker3 off",
                r#"{"reason":"r","actions":[{"op":"system.query"}]}"#,
                r#"{"reason":"r","actions":[{"op":"timer.cancel""#,
            ),
        ];
        for (intent, draft, want) in cases {
            let plan = schema::complete(draft, &env).expect("draft");
            assert_eq!(
                repair_prefix(intent, draft, &plan).as_deref(),
                Some(want),
                "{intent}"
            );
        }
        // nothing missing, or not the grammar's form: no repair
        let draft = r#"{"reason":"r","actions":[{"op":"process.set_priority","pd":"worker3","priority":45}]}"#;
        let plan = schema::complete(draft, &env).expect("draft");
        assert_eq!(
            repair_prefix("worker3 ought to have priority 45", draft, &plan),
            None
        );
        let spaced = r#"{"reason": "r", "actions": [{"op": "system.query"}]}"#;
        let plan = schema::complete(spaced, &env).expect("draft");
        assert_eq!(
            repair_prefix("raise the priority of worker1", spaced, &plan),
            None
        );
    }

    #[test]
    fn a_repair_is_forced_as_the_start_of_the_next_answer() {
        let key = [7u8; 32];
        let s = DEFAULT_POLICY.initial;
        let wrong = r#"{"reason":"priority 45 for worker3","actions":[{"op":"memory.grant","pd":"worker3","pages":45}]}"#;
        let right = r#"{"reason":"priority 45 for worker3","actions":[{"op":"process.set_priority","pd":"worker3","priority":45}]}"#;
        let mut b = Scripted {
            answers: vec![wrong, right],
            seen: vec![],
            tokens: 1,
        };
        let mut r = req(&s, "ops", &key);
        // no number: read in part, so the draft gets a repair round
        r.intent = "worker3 should run with a higher priority";
        let out = plan(&r, &mut [&mut b], |_| {}).expect("plans");
        assert_eq!(b.seen[0].answer_prefix, None);
        assert_eq!(
            b.seen[1].answer_prefix.as_deref(),
            Some(r#"{"reason":"priority 45 for worker3","actions":[{"op":"process.set_priority""#)
        );
        assert_eq!(
            out.plan.as_ref().map(|p| p.actions[0].kind()),
            Some(ActionKind::ProcessSetPriority)
        );
    }

    #[test]
    fn the_token_budget_stops_planning() {
        let key = [7u8; 32];
        let s = DEFAULT_POLICY.initial;
        // the viewer session has 4096 tokens; each attempt here costs 1500.
        let bad = r#"{"reason":"r","actions":[{"op":"system.query"}]}"#;
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
        assert_eq!(r.map_err(|e| e.code()).err(), Some(crate::code::Code::BudgetTokens));
    }
}
