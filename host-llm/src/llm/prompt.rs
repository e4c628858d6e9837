//! the prompt: what the model sees. a short system message with the ops and
//! the limits, worked examples as earlier chat turns, the current state, then
//! the intent. on a rejection the verifier's findings are fed back as one
//! more turn. the state comes after the examples so that everything before
//! it depends on the policy and the intent's examples only: the local
//! backend evaluates that prefix once and keeps its state on disk.

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
    /// the start of the answer, forced before the model writes a token
    /// (the local backend; a remote api cannot prefill and ignores it): how
    /// the planner repairs a draft that left out part of the intent.
    pub answer_prefix: Option<String>,
    /// the numbers of the intent in the draft's units ([`intent_numbers`]):
    /// the grammar lets bounded fields take only these where it can.
    pub numbers: Vec<u64>,
    /// where the local backend may cache the evaluated prompt: ascending
    /// counts of leading messages, each a prefix many requests share. the
    /// system message depends on the policy alone, the examples on the
    /// words of the intent, the state message on the state until it
    /// changes; the intent itself is never cached.
    pub cache_points: Vec<usize>,
}

/// worked examples: (intent, draft). they teach the mapping from words to
/// ops and units (ms → µs) more than any instruction does for a small model;
/// each prompt carries the [`N_EXAMPLES`] most similar to the intent.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "give worker3 24 more pages of memory",
        r#"{"reason":"grant 24 pages to worker3","actions":[{"op":"memory.grant","pd":"worker3","pages":24}]}"#,
    ),
    (
        "grant worker2 10 pages",
        r#"{"reason":"grant 10 pages to worker2","actions":[{"op":"memory.grant","pd":"worker2","pages":10}]}"#,
    ),
    (
        "worker0 needs 48 more pages",
        r#"{"reason":"grant 48 pages to worker0","actions":[{"op":"memory.grant","pd":"worker0","pages":48}]}"#,
    ),
    (
        "allocate 6 additional pages to worker2",
        r#"{"reason":"grant 6 pages to worker2","actions":[{"op":"memory.grant","pd":"worker2","pages":6}]}"#,
    ),
    (
        "raise worker0's priority to 70",
        r#"{"reason":"priority 70 for worker0","actions":[{"op":"process.set_priority","pd":"worker0","priority":70}]}"#,
    ),
    (
        "set the priority of worker3 to 35",
        r#"{"reason":"priority 35 for worker3","actions":[{"op":"process.set_priority","pd":"worker3","priority":35}]}"#,
    ),
    (
        "wake worker2 every 50 ms",
        r#"{"reason":"timer every 50 ms for worker2","actions":[{"op":"timer.set_periodic","pd":"worker2","period_ms":50}]}"#,
    ),
    (
        "set a periodic timer of 2 s for worker0",
        r#"{"reason":"timer every 2 s = 2000 ms for worker0","actions":[{"op":"timer.set_periodic","pd":"worker0","period_ms":2000}]}"#,
    ),
    (
        "notify worker3 every 3 ms",
        r#"{"reason":"timer every 3 ms for worker3","actions":[{"op":"timer.set_periodic","pd":"worker3","period_ms":3}]}"#,
    ),
    (
        "let worker1 use 3 ms of cpu every 20 ms",
        r#"{"reason":"cpu budget 3 ms per 20 ms for worker1","actions":[{"op":"process.set_budget","pd":"worker1","budget_ms":3,"period_ms":20}]}"#,
    ),
    (
        "set worker3's cpu budget to 2 ms per 25 ms",
        r#"{"reason":"cpu budget 2 ms per 25 ms for worker3","actions":[{"op":"process.set_budget","pd":"worker3","budget_ms":2,"period_ms":25}]}"#,
    ),
    (
        "stop the periodic timer of worker0",
        r#"{"reason":"stop the timer of worker0","actions":[{"op":"timer.cancel","pd":"worker0"}]}"#,
    ),
    (
        "cancel the timer of worker3",
        r#"{"reason":"cancel the timer of worker3","actions":[{"op":"timer.cancel","pd":"worker3"}]}"#,
    ),
    (
        "how many cpus does the board have?",
        r#"{"reason":"read the inventory: cpus","actions":[{"op":"firmware.inventory","query":"cpus"}]}"#,
    ),
    (
        "how much memory is installed?",
        r#"{"reason":"read the inventory: memory","actions":[{"op":"firmware.inventory","query":"memory"}]}"#,
    ),
    (
        "list the memory ranges of the platform",
        r#"{"reason":"read the inventory: memory","actions":[{"op":"firmware.inventory","query":"memory"}]}"#,
    ),
    (
        "what devices are there?",
        r#"{"reason":"read the inventory: devices","actions":[{"op":"firmware.inventory","query":"devices"}]}"#,
    ),
    (
        "show the whole inventory",
        r#"{"reason":"read the inventory: all","actions":[{"op":"firmware.inventory","query":"all"}]}"#,
    ),
    (
        "show me the current state of the system",
        r#"{"reason":"read the system state","actions":[{"op":"system.query"}]}"#,
    ),
    (
        "what are the workers doing?",
        r#"{"reason":"read the system state","actions":[{"op":"system.query"}]}"#,
    ),
    (
        "stop worker2 and take back 8 of its pages",
        r#"{"reason":"stop worker2, reclaim 8 pages","actions":[{"op":"process.stop","pd":"worker2"},{"op":"memory.reclaim","pd":"worker2","pages":8}]}"#,
    ),
    (
        "stop worker0",
        r#"{"reason":"stop worker0","actions":[{"op":"process.stop","pd":"worker0"}]}"#,
    ),
    (
        "restart worker3",
        r#"{"reason":"restart worker3","actions":[{"op":"process.restart","pd":"worker3"}]}"#,
    ),
    (
        "start worker1",
        r#"{"reason":"start worker1","actions":[{"op":"process.start","pd":"worker1"}]}"#,
    ),
    (
        "reclaim 24 pages from worker3",
        r#"{"reason":"reclaim 24 pages from worker3","actions":[{"op":"memory.reclaim","pd":"worker3","pages":24}]}"#,
    ),
    (
        "give worker2 8 more pages and raise its priority to 60",
        r#"{"reason":"grant 8 pages and priority 60 for worker2","actions":[{"op":"memory.grant","pd":"worker2","pages":8},{"op":"process.set_priority","pd":"worker2","priority":60}]}"#,
    ),
    (
        "notify worker2 once a second",
        r#"{"reason":"timer every 1 s = 1000 ms for worker2","actions":[{"op":"timer.set_periodic","pd":"worker2","period_ms":1000}]}"#,
    ),
    (
        "tick worker3 every 2 seconds",
        r#"{"reason":"timer every 2 s = 2000 ms for worker3","actions":[{"op":"timer.set_periodic","pd":"worker3","period_ms":2000}]}"#,
    ),
    (
        "print the hardware inventory",
        r#"{"reason":"read the inventory: all","actions":[{"op":"firmware.inventory","query":"all"}]}"#,
    ),
    (
        "take back 12 pages from worker1",
        r#"{"reason":"reclaim 12 pages from worker1","actions":[{"op":"memory.reclaim","pd":"worker1","pages":12}]}"#,
    ),
    (
        "set worker2's priority to 40 and wake it every 30 ms",
        r#"{"reason":"priority 40 and timer every 30 ms for worker2","actions":[{"op":"process.set_priority","pd":"worker2","priority":40},{"op":"timer.set_periodic","pd":"worker2","period_ms":30}]}"#,
    ),
];

/// examples per prompt: enough to show the format, few enough to stay fast.
pub const N_EXAMPLES: usize = 4;

/// words that say nothing about the op.
const STOPWORDS: &[&str] = &[
    "the", "a", "an", "of", "to", "and", "its", "it", "me", "for", "is", "are", "there", "does",
    "have", "has", "please", "my", "on", "in", "at", "be", "with", "s",
];

/// words people use for an op, folded onto the word the examples use, so
/// "reboot worker1" finds the restart example and "free 8 pages" the
/// reclaim one.
const SYNONYMS: &[(&str, &str)] = &[
    ("reboot", "restart"),
    ("reset", "restart"),
    ("halt", "stop"),
    ("kill", "stop"),
    ("shut", "stop"),
    ("suspend", "stop"),
    ("pause", "stop"),
    ("resume", "start"),
    ("launch", "start"),
    ("unpause", "start"),
    ("free", "reclaim"),
    ("release", "reclaim"),
    ("return", "reclaim"),
    ("remove", "cancel"),
    ("disable", "cancel"),
    ("off", "cancel"),
    ("processors", "cpus"),
    ("cores", "cpus"),
    ("ram", "memory"),
    ("hardware", "inventory"),
    ("status", "state"),
];

/// the content words of a text, with worker names and numbers abstracted
/// and synonyms folded: examples match an intent by what it asks, not by
/// which worker or value.
fn words(text: &str) -> std::collections::BTreeSet<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && !STOPWORDS.contains(w))
        .map(|w| {
            if w.starts_with("worker") {
                "<worker>".to_string()
            } else if w.chars().all(|c| c.is_ascii_digit()) {
                "<n>".to_string()
            } else {
                SYNONYMS
                    .iter()
                    .find(|(from, _)| *from == w)
                    .map_or(w, |(_, to)| to)
                    .to_string()
            }
        })
        .collect()
}

/// the numbers an intent names, as the draft would write them: each number
/// (not the digit of a worker's name), its value in ms too when the intent
/// speaks of seconds, and 1000 for "a second".
pub fn intent_numbers(intent: &str) -> Vec<u64> {
    let lower = intent.to_lowercase();
    let tokens: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    let is_seconds = |t: &str| matches!(t, "s" | "sec" | "secs" | "second" | "seconds");
    let seconds = tokens.iter().any(|t| is_seconds(t));
    let mut out: Vec<u64> = Vec::new();
    for t in &tokens {
        if t.starts_with("worker") {
            continue;
        }
        let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
        let Ok(n) = digits.parse::<u64>() else {
            continue;
        };
        out.push(n);
        if seconds || is_seconds(t.get(digits.len()..).unwrap_or("")) {
            out.push(n.saturating_mul(1000));
        }
    }
    if tokens.iter().any(|t| matches!(*t, "second" | "sec")) {
        out.push(1000);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// an intent that asks for several things ("… and …", "…, then …").
fn asks_for_several(intent: &str) -> bool {
    let t = intent.to_lowercase();
    t.contains(" and ") || t.contains(" then ") || t.contains(", also ")
}

/// the example shows a plan of more than one action.
fn is_multi(draft: &str) -> bool {
    draft.matches("\"op\"").count() > 1
}

/// whether every worker an example's draft names exists in this build's
/// system: the table is written for the default 4 workers, and an example
/// about a worker the system lacks would teach the model a name the
/// verifier refuses.
fn names_only_workers_below(draft: &str, n: usize) -> bool {
    serde_json::from_str::<serde_json::Value>(draft).is_ok_and(|v| {
        v["actions"].as_array().is_some_and(|a| {
            a.iter().all(|x| match x.get("pd") {
                None => true,
                Some(pd) => pd.as_str().and_then(policy_verifier::Worker::from_name).is_some_and(|w| w.index() < n),
            })
        })
    })
}

/// the examples for `intent`: the [`N_EXAMPLES`] most similar (jaccard over
/// content words), least similar first so the closest sits next to the intent.
pub fn examples_for(intent: &str) -> Vec<(&'static str, &'static str)> {
    examples_among(intent, policy_verifier::N_WORKERS)
}

/// [`examples_for`] on a system of `n` workers.
fn examples_among(intent: &str, n: usize) -> Vec<(&'static str, &'static str)> {
    let q = words(intent);
    let mut scored: Vec<(f64, usize)> = EXAMPLES
        .iter()
        .enumerate()
        .filter(|(_, (_, draft))| names_only_workers_below(draft, n))
        .map(|(i, (e, _))| {
            let w = words(e);
            let inter = q.intersection(&w).count() as f64;
            let union = q.union(&w).count().max(1) as f64;
            (inter / union, i)
        })
        .collect();
    // best first; ties keep table order (deterministic).
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut picked: Vec<(&'static str, &'static str)> = scored
        .iter()
        .take(N_EXAMPLES)
        .filter_map(|(_, i)| EXAMPLES.get(*i).copied())
        .collect();
    // several asks: the example next to the intent is a plan with several
    // actions, or a small model copies the single-action format and drops
    // the rest of the intent
    if asks_for_several(intent) {
        let multi = scored
            .iter()
            .filter_map(|(_, i)| EXAMPLES.get(*i).copied())
            .find(|(_, d)| is_multi(d));
        if let Some(m) = multi {
            picked.retain(|e| *e != m);
            picked.insert(0, m);
            picked.truncate(N_EXAMPLES);
        }
    }
    picked.reverse();
    picked
}

/// a duration in the unit the model writes: whole ms where exact.
fn duration(us: u64) -> String {
    if us.is_multiple_of(1000) {
        format!("{} ms", us / 1000)
    } else {
        format!("{us} us")
    }
}

/// the state in a few lines the model can read.
pub fn describe_state(s: &State) -> String {
    let mut out = String::new();
    for w in Worker::ALL {
        let x = s.worker(w);
        let timer = match x.timer_period_us {
            Some(p) => format!("timer every {}", duration(p)),
            None => "no timer".to_string(),
        };
        out.push_str(&format!(
            "{}: {}, priority {}, budget {} per {}, {} pages, {}\n",
            w.name(),
            if x.running { "running" } else { "stopped" },
            x.priority,
            duration(x.budget_us),
            duration(x.period_us),
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

/// the system message: the ops (the policy alone).
pub fn system_message(policy: &Policy) -> String {
    format!(
        "You plan actions for llm-os. Answer with one JSON plan: a short reason that restates the intent, then the actions, one action for each thing the intent asks.\n\
         ops:\n\
         memory.grant {{pd,pages}}: give a worker more pages\n\
         memory.reclaim {{pd,pages}}: take pages back from a stopped worker\n\
         process.set_priority {{pd,priority}}: priority 1..{}\n\
         process.set_budget {{pd,budget_ms,period_ms}}: cpu time per period, in ms (1 s = 1000 ms)\n\
         timer.set_periodic {{pd,period_ms}}: wake a worker periodically, in ms (1 s = 1000 ms)\n\
         timer.cancel {{pd}}: stop its timer\n\
         process.start|process.stop|process.restart {{pd}}\n\
         firmware.inventory {{query: cpus|memory|devices|all}}\n\
         system.query {{}}: read the state\n",
        policy.limits.priority_ceiling,
    )
}

/// the limits and the state, right before the intent (the pool is the
/// state's, so this message is not part of the fixed prefix).
pub fn state_message(policy: &Policy, s: &State) -> String {
    format!(
        "limits: at most {} pages per worker, pool {} pages.\nstate:\n{}",
        policy.limits.quota_pages,
        s.pool_pages,
        describe_state(s)
    )
}

/// the first prompt for an intent.
pub fn build(policy: &Policy, s: &State, intent: &str) -> Prompt {
    let mut messages = vec![(Role::System, system_message(policy))];
    for (q, a) in examples_for(intent) {
        messages.push((Role::User, q.to_string()));
        messages.push((Role::Assistant, a.to_string()));
    }
    let examples = messages.len();
    messages.push((Role::System, state_message(policy, s)));
    let state = messages.len();
    messages.push((Role::User, intent.to_string()));
    Prompt {
        messages,
        answer_prefix: None,
        numbers: intent_numbers(intent),
        cache_points: vec![1, examples, state],
    }
}

impl Prompt {
    /// the prompt after an attempt that did not do: the model's draft, then
    /// what is wrong with it (`problem`: the verifier's findings, or what
    /// the plan leaves out), so the next attempt can fix exactly that.
    pub fn with_feedback(&self, draft: &str, problem: &str, intent: &str) -> Prompt {
        let mut p = self.clone();
        p.answer_prefix = None;
        p.messages.push((Role::Assistant, draft.to_string()));
        p.messages.push((
            Role::User,
            format!("{problem}. write a corrected plan for: {intent}"),
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
        if let Some(prefix) = &self.answer_prefix {
            h.update(b"prefix\n");
            h.update(prefix.as_bytes());
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
        for n in 1..=policy_verifier::N_WORKERS {
            let usable = EXAMPLES.iter().filter(|(_, a)| names_only_workers_below(a, n)).count();
            assert!(usable >= N_EXAMPLES, "{usable} examples fit a system of {n} workers");
            for intent in ["restart worker3", "give worker2 8 more pages and raise its priority to 60", "cancel the timer"] {
                for (q, a) in examples_among(intent, n) {
                    assert!(names_only_workers_below(a, n), "`{q}` names a worker a system of {n} lacks");
                }
            }
        }
        for (q, a) in EXAMPLES.iter().filter(|(_, a)| names_only_workers_below(a, policy_verifier::N_WORKERS)) {
            let plan = super::super::schema::complete(a, &env);
            assert!(plan.is_ok(), "example for `{q}` does not parse: {plan:?}");
        }
    }

    #[test]
    fn the_closest_example_sits_next_to_the_intent() {
        let ex = examples_for("give worker1 16 more pages of memory");
        assert_eq!(ex.len(), N_EXAMPLES);
        assert_eq!(
            ex.last().map(|e| e.0),
            Some("give worker3 24 more pages of memory")
        );
        let ex = examples_for("how much memory does the board have?");
        assert!(
            ex.iter().any(|e| e.1.contains("firmware.inventory")),
            "{ex:?}"
        );
        let ex = examples_for("cancel worker2's timer");
        assert!(
            ex.last().is_some_and(|e| e.1.contains("timer.cancel")),
            "{ex:?}"
        );
    }

    #[test]
    fn the_numbers_of_an_intent_in_the_drafts_units() {
        assert_eq!(intent_numbers("give worker1 16 more pages of memory"), [16]);
        assert_eq!(
            intent_numbers("add 6 pages to worker2 and set its priority to 55"),
            [6, 55]
        );
        assert_eq!(intent_numbers("tick worker3 every 2 seconds"), [2, 2000]);
        assert_eq!(intent_numbers("wake worker1 every 2s"), [2, 2000]);
        assert_eq!(intent_numbers("wake worker1 every 20ms"), [20]);
        assert_eq!(intent_numbers("tick worker1 once per second"), [1000]);
        assert!(intent_numbers("show me the system state").is_empty());
    }

    #[test]
    fn synonyms_find_the_example_of_the_op() {
        for (intent, op) in [
            ("please reboot worker3", "process.restart"),
            ("free 8 of worker2's pages", "memory.reclaim"),
            ("turn off the timer of worker1", "timer.cancel"),
            ("how many processors are there", "firmware.inventory"),
        ] {
            let ex = examples_for(intent);
            assert!(
                ex.last().is_some_and(|e| e.1.contains(op)),
                "{intent}: {ex:?}"
            );
        }
    }

    #[test]
    fn an_intent_with_several_asks_is_shown_a_plan_with_several_actions() {
        let ex = examples_for("add 6 pages to worker2 and set its priority to 55");
        assert_eq!(ex.len(), N_EXAMPLES);
        assert!(ex.last().is_some_and(|e| is_multi(e.1)), "{ex:?}");
        let one = examples_for("add 6 pages to worker0");
        assert!(!one.iter().any(|e| is_multi(e.1)), "{one:?}");
    }

    #[test]
    fn prompt_carries_state_and_intent_and_hash_changes() {
        let mut s = DEFAULT_POLICY.initial;
        let p = build(&DEFAULT_POLICY, &s, "give worker1 16 more pages");
        assert!(p
            .messages
            .get(p.messages.len() - 2)
            .is_some_and(|(_, m)| m.contains("worker1: running, priority 50")));
        // the cached prefixes: the system message alone is the same for
        // every intent, the examples hold no state, the intent is never cached
        assert_eq!(p.cache_points, [1, 1 + 2 * N_EXAMPLES, 2 + 2 * N_EXAMPLES]);
        for (_, m) in p.messages.iter().take(p.cache_points[1]) {
            assert!(!m.contains("priority 50,"), "{m}");
        }
        let other = build(&DEFAULT_POLICY, &DEFAULT_POLICY.initial, "how many cpus are there?");
        assert_eq!(p.messages[..1], other.messages[..1]);
        assert_eq!(p.messages[p.messages.len() - 2], other.messages[other.messages.len() - 2]);
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
