//! the prompt: what the model sees. a short system message with the ops and
//! the current state, worked examples as earlier chat turns, then the intent.
//! on a rejection the verifier's findings are fed back as one more turn.

use policy_verifier::{Policy, State, Worker};
use sha2::{Digest, Sha256};

/// who speaks a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// instructions and state.
    System,
    /// the human (or llmsh feeding back a verdict).
    User,
    /// the model.
    Assistant,
}

impl Role {
    /// the openai / chat-template role name.
    pub const fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// a chat prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// the messages in order; the model answers the last one.
    pub messages: Vec<(Role, String)>,
}

/// worked examples: (intent, draft). they teach the mapping from words to
/// ops and units (ms → µs) more than any instruction does for a small model.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "give worker3 24 more pages of memory",
        r#"{"reason":"worker3 needs 24 more pages","actions":[{"op":"memory.grant","pd":"worker3","pages":24}]}"#,
    ),
    (
        "raise worker0's priority to 70",
        r#"{"reason":"run worker0 at priority 70","actions":[{"op":"process.set_priority","pd":"worker0","priority":70}]}"#,
    ),
    (
        "wake worker2 every 50 ms",
        r#"{"reason":"periodic timer of 50 ms for worker2","actions":[{"op":"timer.set_periodic","pd":"worker2","period_us":50000}]}"#,
    ),
    (
        "let worker1 use 3 ms of cpu every 20 ms",
        r#"{"reason":"budget 3 ms per 20 ms for worker1","actions":[{"op":"process.set_budget","pd":"worker1","budget_us":3000,"period_us":20000}]}"#,
    ),
    (
        "stop the periodic timer of worker0",
        r#"{"reason":"cancel the timer of worker0","actions":[{"op":"timer.cancel","pd":"worker0"}]}"#,
    ),
    (
        "how many cpus does the board have?",
        r#"{"reason":"read the cpu inventory","actions":[{"op":"firmware.inventory","query":"cpus"}]}"#,
    ),
    (
        "show me the current state of the system",
        r#"{"reason":"read the system state","actions":[{"op":"system.query"}]}"#,
    ),
    (
        "stop worker2 and take back 8 of its pages",
        r#"{"reason":"stop worker2, reclaim 8 pages","actions":[{"op":"process.stop","pd":"worker2"},{"op":"memory.reclaim","pd":"worker2","pages":8}]}"#,
    ),
    (
        "restart worker3",
        r#"{"reason":"restart worker3","actions":[{"op":"process.restart","pd":"worker3"}]}"#,
    ),
];

/// the state in a few lines the model can read.
pub fn describe_state(s: &State) -> String {
    let mut out = String::new();
    for w in Worker::ALL {
        let x = s.worker(w);
        let timer = match x.timer_period_us {
            Some(p) => format!("timer every {p} us"),
            None => "no timer".to_string(),
        };
        out.push_str(&format!(
            "{}: {}, priority {}, budget {} us per {} us, {} pages, {}\n",
            w.name(),
            if x.running { "running" } else { "stopped" },
            x.priority,
            x.budget_us,
            x.period_us,
            x.pages,
            timer
        ));
    }
    out.push_str(&format!(
        "pool: {} pages, {} held by workers\n",
        s.pool_pages,
        s.pages_held()
    ));
    out
}

/// the system message: the ops, the limits, the state.
pub fn system_message(policy: &Policy, s: &State) -> String {
    let l = &policy.limits;
    format!(
        "You plan actions for llm-os. Answer with one JSON plan: a short reason and the actions.\n\
         ops:\n\
         memory.grant {{pd,pages}}: give a worker more pages\n\
         memory.reclaim {{pd,pages}}: take pages back from a stopped worker\n\
         process.set_priority {{pd,priority}}: priority 1..{}\n\
         process.set_budget {{pd,budget_us,period_us}}: cpu time per period, in us\n\
         timer.set_periodic {{pd,period_us}}: wake a worker periodically, in us (1 ms = 1000 us)\n\
         timer.cancel {{pd}}: stop its timer\n\
         process.start|process.stop|process.restart {{pd}}\n\
         firmware.inventory {{query: cpus|memory|devices|all}}\n\
         system.query {{}}: read the state\n\
         limits: at most {} pages per worker, pool {} pages.\n\
         state:\n{}",
        l.priority_ceiling,
        l.quota_pages,
        s.pool_pages,
        describe_state(s)
    )
}

/// the first prompt for an intent.
pub fn build(policy: &Policy, s: &State, intent: &str) -> Prompt {
    let mut messages = vec![(Role::System, system_message(policy, s))];
    for (q, a) in EXAMPLES {
        messages.push((Role::User, (*q).to_string()));
        messages.push((Role::Assistant, (*a).to_string()));
    }
    messages.push((Role::User, intent.to_string()));
    Prompt { messages }
}

impl Prompt {
    /// the prompt after a rejected attempt: the model's draft, then what the
    /// verifier found, so the next attempt can fix exactly that.
    pub fn with_feedback(&self, draft: &str, findings: &[String], intent: &str) -> Prompt {
        let mut p = self.clone();
        p.messages.push((Role::Assistant, draft.to_string()));
        p.messages.push((
            Role::User,
            format!(
                "the verifier rejected that plan: {}. write a corrected plan for: {intent}",
                findings.join("; ")
            ),
        ));
        p
    }

    /// sha256 over the messages (role, newline, content, nul), for the audit log.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for (r, c) in &self.messages {
            h.update(r.name().as_bytes());
            h.update(b"\n");
            h.update(c.as_bytes());
            h.update([0u8]);
        }
        policy_verifier::json::hex(&h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_verifier::DEFAULT_POLICY;

    #[test]
    fn examples_are_valid_drafts_the_verifier_knows() {
        let env = super::super::schema::Envelope {
            request_id: 1,
            session: "admin".into(),
        };
        for (q, a) in EXAMPLES {
            let plan = super::super::schema::complete(a, &env);
            assert!(plan.is_ok(), "example for `{q}` does not parse: {plan:?}");
        }
    }

    #[test]
    fn prompt_carries_state_and_intent_and_hash_changes() {
        let mut s = DEFAULT_POLICY.initial;
        let p = build(&DEFAULT_POLICY, &s, "give worker1 16 more pages");
        assert!(p
            .messages
            .first()
            .is_some_and(|(_, m)| m.contains("worker1: running, priority 50")));
        assert_eq!(
            p.messages.last().map(|(_, m)| m.as_str()),
            Some("give worker1 16 more pages")
        );
        s.workers[1].pages = 64;
        let q = build(&DEFAULT_POLICY, &s, "give worker1 16 more pages");
        assert_ne!(p.hash(), q.hash());
        assert_eq!(
            p.hash(),
            build(
                &DEFAULT_POLICY,
                &DEFAULT_POLICY.initial,
                "give worker1 16 more pages"
            )
            .hash()
        );
    }
}
