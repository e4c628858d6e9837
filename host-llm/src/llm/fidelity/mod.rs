//! what the intent asks, read in deterministic code, and whether a plan does
//! that and nothing else.
//!
//! the verifier keeps a plan inside the policy; this module keeps it inside
//! the request. [`read`] turns the human's words into `Ask`s (an op, the
//! workers it names, an amount), fixing small typos and reading number words;
//! `Reading::resolve` turns amounts that are relative to the state or the
//! policy ("double", "another 10", "as much as the quota allows", "25 % of the
//! cpu") into the exact numbers, never by the model's arithmetic. [`check`]
//! holds a plan against the reading: every action is `faithful` or `unasked`,
//! and every ask with no action is `incomplete`.
//!
//! the reader only claims what its words say: an intent it cannot place gets
//! no asks at all ("no action"), and an ask it reads only in part (an op
//! without an amount) checks only that part.
//!
//! one job per file: `read` (words → asks), `resolve` (asks → exact
//! actions on a state), `check` (a plan against the reading).

mod check;
mod read;
mod resolve;

pub use check::{check, Fidelity, Status};
pub use read::read;

#[cfg(test)]
mod tests {
    use super::*;
    use policy_verifier::{json, Plan};
    use serde_json::{json, Value};
    use policy_verifier::DEFAULT_POLICY;

    fn resolved(intent: &str) -> Option<Vec<Value>> {
        read(intent).resolve(&DEFAULT_POLICY, &DEFAULT_POLICY.initial)
    }

    fn one(intent: &str) -> Value {
        let r = resolved(intent).unwrap_or_else(|| panic!("{intent}: {:?}", read(intent)));
        assert_eq!(r.len(), 1, "{intent}: {r:?}");
        r[0].clone()
    }

    #[test]
    fn named_numbers_reach_the_plan_unchanged() {
        assert_eq!(one("set worker0 priority to 150")["priority"], 150);
        assert_eq!(one("grant worker1 10000 pages")["pages"], 10000);
        assert_eq!(one("tick worker2 every 20 s")["period_us"], 20_000_000);
        assert_eq!(one("tick worker2 every 250 us")["period_us"], 250);
    }

    #[test]
    fn relative_asks_resolve_against_the_state() {
        // every worker starts with 32 pages, priority 50, 1000/10000 us
        assert_eq!(one("double the memory of worker3"), json!({"op":"memory.grant","pd":"worker3","pages":32}));
        assert_eq!(one("halve worker0's priority")["priority"], 25);
        assert_eq!(one("worker2 gets another 10 pages")["pages"], 10);
        assert_eq!(one("raise worker1's priority by 5")["priority"], 55);
        assert_eq!(one("lower worker1's priority by 5")["priority"], 45);
        assert_eq!(one("worker3 may have as much memory as the quota allows")["pages"], 224);
        assert_eq!(
            one("worker0 gets 25 % of the cpu"),
            json!({"op":"process.set_budget","pd":"worker0","budget_us":2500,"period_us":10000})
        );
        assert_eq!(one("priority of worker2 to the maximum")["priority"], 100);
        let mut s = DEFAULT_POLICY.initial;
        s.workers[1].timer_period_us = Some(30_000);
        let r = read("worker1's timer should tick twice as often").resolve(&DEFAULT_POLICY, &s);
        assert_eq!(r, Some(vec![json!({"op":"timer.set_periodic","pd":"worker1","period_us":15000})]));
    }

    #[test]
    fn words_for_numbers_and_typos() {
        assert_eq!(one("give worker2 fourteen more pages")["pages"], 14);
        assert_eq!(one("set worker3 priority to eighty two")["priority"], 82);
        assert_eq!(one("grnat worker1 6 pages")["pages"], 6);
        assert_eq!(one("set wokrer3 priority to 9")["pd"], "worker3");
        assert_eq!(one("worker0 must be halted")["op"], "process.stop");
        assert_eq!(one("worker2 should be stopped")["op"], "process.stop");
    }

    #[test]
    fn all_every_each_name_every_worker() {
        let r = resolved("lower the priority of all workers to 20").expect("reads");
        assert_eq!(r.len(), policy_verifier::N_WORKERS);
        assert!(r.iter().all(|a| a["priority"] == 20 && a["op"] == "process.set_priority"));
        let r = resolved("shut everything down").expect("reads");
        assert_eq!(r.len(), policy_verifier::N_WORKERS);
        assert!(r.iter().all(|a| a["op"] == "process.stop"));
    }

    #[test]
    fn compound_asks_carry_the_worker() {
        let r = resolved("set worker2 priority to 80 and give it 20 more pages").expect("reads");
        assert_eq!(
            r,
            vec![
                json!({"op":"process.set_priority","pd":"worker2","priority":80}),
                json!({"op":"memory.grant","pd":"worker2","pages":20}),
            ]
        );
        let r = resolved("stop worker2 and reclaim all of its memory").expect("reads");
        assert_eq!(
            r,
            vec![
                json!({"op":"process.stop","pd":"worker2"}),
                json!({"op":"memory.reclaim","pd":"worker2","pages":32}),
            ]
        );
    }

    #[test]
    fn restart_is_a_restart_and_nonsense_is_nothing() {
        assert_eq!(one("restart worker1"), json!({"op":"process.restart","pd":"worker1"}));
        assert!(read("banana purple elephant").is_nothing());
        assert!(read("").is_nothing());
        assert!(read("colourless green ideas sleep furiously").is_nothing());
        assert_eq!(read("give worker9 5 pages").unknown_worker.as_deref(), Some("worker9"));
    }

    #[test]
    fn freeing_pages_is_a_reclaim() {
        assert_eq!(one("free 8 pages of worker3's memory")["op"], "memory.reclaim");
        assert_eq!(one("free 8 pages of worker3's memory")["pages"], 8);
    }

    fn plan_of(actions: Value) -> Plan {
        let text = json!({"version":1,"request_id":1,"session":"admin","reason":"r","actions":actions});
        json::parse_plan(text.to_string().as_bytes()).expect("plan")
    }

    #[test]
    fn the_check_names_unasked_and_incomplete_actions() {
        let s = DEFAULT_POLICY.initial;
        let p = &DEFAULT_POLICY;
        // the grant of a "free" ask, on the right worker
        let r = read("free 8 pages of worker3's memory");
        let f = check(&r, &plan_of(json!([{"op":"memory.grant","pd":"worker3","pages":8}])), p, &s);
        assert!(!f.faithful());
        assert!(matches!(&f.actions[0], Status::Unasked(_)));
        assert_eq!(f.incomplete, ["memory.reclaim pd=worker3 pages=8"]);
        // "all workers" with one worker touched: incomplete
        let r = read("lower the priority of all workers to 20");
        let f = check(&r, &plan_of(json!([{"op":"process.set_priority","pd":"worker0","priority":20}])), p, &s);
        assert_eq!(f.actions, [Status::Faithful]);
        assert_eq!(f.incomplete.len(), policy_verifier::N_WORKERS - 1);
        // a clamped number is not the intent's number
        let r = read("set worker0 priority to 150");
        let f = check(&r, &plan_of(json!([{"op":"process.set_priority","pd":"worker0","priority":15}])), p, &s);
        assert!(
            matches!(&f.actions[0], Status::Unasked(d) if d.contains("priority=150")),
            "{f:?}"
        );
        // another worker
        let r = read("give worker2 20 more pages");
        let f = check(&r, &plan_of(json!([{"op":"memory.grant","pd":"worker1","pages":20}])), p, &s);
        assert!(!f.faithful());
        let f = check(&r, &plan_of(json!([{"op":"memory.grant","pd":"worker2","pages":20}])), p, &s);
        assert!(f.faithful(), "{f:?}");
        assert!(f.exact);
    }

    #[test]
    fn a_partial_reading_checks_ops_and_workers() {
        let s = DEFAULT_POLICY.initial;
        let p = &DEFAULT_POLICY;
        // no amount: any grant on worker1 is what was asked
        let r = read("give worker1 some memory");
        assert_eq!(r.resolve(p, &s), None);
        let ok = check(&r, &plan_of(json!([{"op":"memory.grant","pd":"worker1","pages":16}])), p, &s);
        assert!(ok.faithful() && !ok.exact, "{ok:?}");
        let other = check(&r, &plan_of(json!([{"op":"memory.grant","pd":"worker0","pages":16}])), p, &s);
        assert!(!other.faithful());
        let extra = check(
            &r,
            &plan_of(json!([{"op":"memory.grant","pd":"worker1","pages":16},{"op":"system.query"}])),
            p,
            &s,
        );
        assert_eq!(extra.actions[1], Status::Unasked("the intent does not ask for system.query".into()));
    }
}

#[cfg(test)]
mod tuning {
    //! the reader on the tuning sets (never on a held-out set): each intent's
    //! resolved actions, applied to its starting state, meet its expectation.
    use super::resolve::apply_to;
    use super::*;
    use policy_verifier::{State, Worker};
    use serde_json::{json, Value};
    use policy_verifier::DEFAULT_POLICY;

    fn field(s: &State, w: Worker, f: &str) -> Value {
        let ws = s.worker(w);
        match f {
            "pages" => json!(ws.pages),
            "priority" => json!(ws.priority),
            "budget_us" => json!(ws.budget_us),
            "period_us" => json!(ws.period_us),
            "running" => json!(ws.running),
            "timer_period_us" => json!(ws.timer_period_us),
            _ => Value::Null,
        }
    }

    fn misses(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let case: Value = serde_json::from_str(line).expect("json line");
            let intent = case["intent"].as_str().unwrap_or("");
            let mut s = DEFAULT_POLICY.initial;
            for (k, v) in case["state"].as_object().into_iter().flatten() {
                let (w, f) = k.split_once('.').expect("key");
                let w = Worker::from_name(w).expect("worker");
                match f {
                    "timer_period_us" => s.worker_mut(w).timer_period_us = v.as_u64(),
                    "running" => s.worker_mut(w).running = v.as_bool().unwrap_or(true),
                    _ => {}
                }
            }
            let Some(actions) = read(intent).resolve(&DEFAULT_POLICY, &s) else {
                out.push(format!("{intent}: not resolved: {:?}", read(intent)));
                continue;
            };
            let exp = case["expect"].as_object().cloned().unwrap_or_default();
            let ok = if exp.contains_key("op") {
                actions.len() == 1 && exp.iter().all(|(k, v)| actions[0].get(k) == Some(v))
            } else {
                let mut after = s;
                for a in &actions {
                    if let Some(w) = a["pd"].as_str().and_then(Worker::from_name) {
                        apply_to(&mut after, w, a);
                    }
                }
                exp.iter().all(|(k, v)| {
                    let (w, f) = k.split_once('.').expect("key");
                    let w = Worker::from_name(w).expect("worker");
                    let (b, a) = (field(&s, w, f), field(&after, w, f));
                    match v.as_str() {
                        Some(d) => a.as_i64().zip(b.as_i64()).is_some_and(|(a, b)| Some(a - b) == d.parse().ok()),
                        None => &a == v,
                    }
                })
            };
            if !ok {
                out.push(format!("{intent}: {actions:?}"));
            }
        }
        out
    }

    #[test]
    fn the_reader_resolves_the_tuning_sets() {
        let mut m = misses(include_str!("../../../../tests/intents/intents.jsonl"));
        m.extend(misses(include_str!("../../../../tests/intents/tuning-paraphrases.jsonl")));
        assert!(m.is_empty(), "{} misses:\n{}", m.len(), m.join("\n"));
    }
}

