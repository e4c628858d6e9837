//! plans and receipts in words for people: each action with its verdict, the
//! state change as a table of what changed, every violation with its
//! invariant, the limit and the value that broke it. the `--json` forms are
//! built elsewhere and never pass through here.
//!
//! everything here is a pure function of the plan, the policy, the state the
//! plan started from and the verdict or receipt json, so golden files can pin
//! the exact text (`tests/golden/`).

use std::fmt::Write as _;

use policy_verifier::json::{self, plan_to_json, state_to_json};
use policy_verifier::{verify, Action, Invariant, Plan, Policy, State};
use serde_json::Value;

/// one action in words: `memory.grant worker1 pages=16`.
pub fn action_words(ja: &Value) -> String {
    let mut s = ja["op"].as_str().unwrap_or("?").to_string();
    if let Some(pd) = ja["pd"].as_str() {
        s.push(' ');
        s.push_str(pd);
    }
    let mut rest: Vec<String> = ja
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !matches!(k.as_str(), "op" | "pd"))
        .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string)))
        .collect();
    rest.sort();
    for r in rest {
        s.push(' ');
        s.push_str(&r);
    }
    s
}

/// the value an action reached and the limit it broke, for invariants with a
/// number on both sides; `s` is the state just before the action.
pub fn bound(policy: &Policy, s: &State, plan: &Plan, a: Option<&Action>, inv: Invariant) -> Option<(String, String)> {
    let l = &policy.limits;
    let held = |w: policy_verifier::Worker| s.worker(w).pages;
    Some(match (inv, a?) {
        (Invariant::MemQuota, Action::MemoryGrant { pd, pages }) => (
            format!("{} pages", u128::from(held(*pd)).saturating_add(u128::from(*pages))),
            format!("quota {} pages", l.quota_pages),
        ),
        (Invariant::MemPool, Action::MemoryGrant { pages, .. }) => (
            format!("{} pages held", s.pages_held().saturating_add(u128::from(*pages))),
            format!("pool {} pages", s.pool_pages),
        ),
        (Invariant::MemReclaimBounds, Action::MemoryReclaim { pd, pages }) => {
            (format!("{pages} pages reclaimed"), format!("{} pages held", held(*pd)))
        }
        (Invariant::CpuUtil, act) => (
            format!("{}‰ cpu", json::utilisation(&verify::apply(s, act))),
            format!("limit {}‰", l.cpu_util_permille),
        ),
        (Invariant::CpuBudgetBounds, Action::ProcessSetBudget { budget_us, period_us, .. }) => (
            format!("budget {budget_us} µs / period {period_us} µs"),
            format!("{} µs ≤ budget ≤ period ≤ {} µs", l.budget_min_us, l.period_max_us),
        ),
        (Invariant::PrioCeiling, Action::ProcessSetPriority { priority, .. }) => {
            (format!("priority {priority}"), format!("ceiling {}", l.priority_ceiling))
        }
        (Invariant::TimerBounds, Action::TimerSetPeriodic { period_us, .. }) => (
            format!("{period_us} µs"),
            format!("{} µs ..= {} µs", l.timer_min_us, l.timer_max_us),
        ),
        (Invariant::PlanSize, _) => (
            format!("{} actions", plan.actions.len()),
            format!("1 ..= {} actions", policy_verifier::MAX_ACTIONS),
        ),
        (Invariant::PlanReplay, _) => (
            format!("request_id {}", plan.request_id),
            format!("> last accepted {}", s.last_request_id),
        ),
        _ => return None,
    })
}

/// the state just before action `i`: the plan's first `i` actions applied to
/// `before` (the verifier's own step function).
fn state_at(before: &State, plan: &Plan, i: usize) -> State {
    plan.actions.iter().take(i).fold(*before, |s, a| verify::apply(&s, a))
}

/// the violation lines of action `i` (indented by `pad`).
fn violation_lines(out: &mut String, policy: &Policy, before: &State, plan: &Plan, vs: &[&Value], pad: &str) {
    for v in vs {
        let name = v["invariant"].as_str().unwrap_or("?");
        let inv = Invariant::from_name(name);
        let meaning = inv.map_or("", Invariant::meaning);
        let _ = writeln!(out, "{pad}breaks {name}: {meaning}");
        let i = v["action"].as_u64().and_then(|i| usize::try_from(i).ok()).unwrap_or(0);
        let s = state_at(before, plan, i);
        if let Some((value, limit)) = inv.and_then(|inv| bound(policy, &s, plan, plan.actions.get(i), inv)) {
            let _ = writeln!(out, "{pad}  value {value}, limit {limit}");
        }
        if let Some(d) = v["detail"].as_str().filter(|d| !d.is_empty()) {
            let _ = writeln!(out, "{pad}  {d}");
        }
    }
}

/// a worker field's label and its value in words.
fn field_words(key: &str, v: &Value) -> (String, String) {
    let us = |v: &Value| v.as_u64().map_or_else(|| "none".to_string(), |n| format!("{n} µs"));
    match key {
        "running" => ("state".into(), if v == &Value::Bool(true) { "running" } else { "stopped" }.into()),
        "budget_us" => ("budget".into(), us(v)),
        "period_us" => ("period".into(), us(v)),
        "timer_period_us" => ("timer".into(), us(v)),
        "pool_pages" => ("pool pages".into(), v.to_string()),
        "last_request_id" => ("last request".into(), v.to_string()),
        other => (other.replace('_', " "), v.as_str().map_or_else(|| v.to_string(), str::to_string)),
    }
}

/// the rows `(pd, field, before, after)` where two state jsons differ, in
/// the state's own order (workers first, then the system's fields).
pub fn state_changes(before: &Value, after: &Value) -> Vec<[String; 4]> {
    let mut rows = Vec::new();
    let empty = serde_json::Map::new();
    // a fixed order whatever serde_json's map order: workers by index, fields by name.
    let mut workers: Vec<(&String, &Value)> = after["workers"].as_object().unwrap_or(&empty).iter().collect();
    workers.sort_by_key(|(w, _)| (w.len(), (*w).clone()));
    for (w, wa) in workers {
        let wb = &before["workers"][w];
        let mut fields: Vec<(&String, &Value)> = wa.as_object().unwrap_or(&empty).iter().collect();
        fields.sort_by_key(|(k, _)| (*k).clone());
        for (k, va) in fields {
            let vb = &wb[k];
            if vb != va {
                let (label, b) = field_words(k, vb);
                let (_, a) = field_words(k, va);
                rows.push([w.clone(), label, b, a]);
            }
        }
    }
    let mut system: Vec<(&String, &Value)> = after.as_object().unwrap_or(&empty).iter().collect();
    system.sort_by_key(|(k, _)| (*k).clone());
    for (k, va) in system {
        if k == "workers" {
            continue;
        }
        let vb = &before[k];
        if vb != va {
            let (label, b) = field_words(k, vb);
            let (_, a) = field_words(k, va);
            rows.push(["system".into(), label, b, a]);
        }
    }
    rows
}

/// the table of [`state_changes`], or a line saying nothing changed.
pub fn change_table(title: &str, rows: &[[String; 4]]) -> String {
    if rows.is_empty() {
        return format!("{title}: nothing\n");
    }
    let head = ["pd".to_string(), "field".into(), "before".into(), "after".into()];
    let width = |c: usize| rows.iter().chain(std::iter::once(&head)).map(|r| r[c].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut s = format!("{title}:\n");
    let _ = writeln!(s, "  {:<w0$}  {:<w1$}  {:>w2$}    {}", head[0], head[1], head[2], head[3]);
    for r in rows {
        let _ = writeln!(s, "  {:<w0$}  {:<w1$}  {:>w2$} →  {}", r[0], r[1], r[2], r[3]);
    }
    s
}

/// the numbered action lines with a verdict word each, violations under the
/// action that broke them.
fn action_list(out: &mut String, policy: &Policy, before: &State, plan: &Plan, status: &dyn Fn(usize) -> String, violations: &[Value]) {
    let jp = plan_to_json(plan);
    let actions = jp["actions"].as_array().cloned().unwrap_or_default();
    let words: Vec<String> = actions.iter().map(action_words).collect();
    let w = words.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    for (i, text) in words.iter().enumerate() {
        let _ = writeln!(out, "  {i}. {text:<w$}  {}", status(i));
        let vs: Vec<&Value> = violations.iter().filter(|v| v["action"].as_u64() == Some(i as u64)).collect();
        violation_lines(out, policy, before, plan, &vs, "       ");
    }
}

fn session_line(plan: &Plan) -> String {
    let reason = if plan.reason.is_empty() { String::new() } else { format!(" — {}", plan.reason.as_str()) };
    format!("request {} · session `{}`{reason}", plan.request_id, plan.session.as_str())
}

/// a plan and the host verifier's verdict on it, before anything runs.
pub fn plan(policy: &Policy, before: &State, plan: &Plan, verdict: &Value) -> String {
    let approved = verdict["approved"] == Value::Bool(true);
    let violations = verdict["violations"].as_array().cloned().unwrap_or_default();
    let first_bad = violations.iter().filter_map(|v| v["action"].as_u64()).min();
    let mut s = format!("plan: {}\n", session_line(plan));
    let status = |i: usize| -> String {
        let destructive = plan.actions.get(i).is_some_and(|a| a.kind().destructive());
        let tag = if destructive { "  [DESTRUCTIVE: needs your yes]" } else { "" };
        let word = match first_bad {
            None => "ok",
            Some(b) if (i as u64) < b => "ok",
            Some(b) if (i as u64) == b => "refused",
            Some(_) => "not checked",
        };
        format!("{word}{tag}")
    };
    action_list(&mut s, policy, before, plan, &status, &violations);
    if approved {
        let n = plan.actions.len();
        let _ = writeln!(s, "verdict: approved ({n} action{})", if n == 1 { "" } else { "s" });
        let rows = state_changes(&state_to_json(before), &verdict["state_after"]);
        s.push_str(&change_table("would change", &rows));
    } else {
        let _ = writeln!(s, "verdict: rejected; nothing would run (a plan runs all or nothing)");
    }
    s
}

/// a receipt: what ran, what the verifier said, and what changed in the
/// state read back from the PDs.
pub fn receipt(policy: &Policy, before: &State, plan: &Plan, r: &Value) -> String {
    let approved = r["approved"] == Value::Bool(true);
    let executed = r["executed"].as_u64().unwrap_or(0);
    let failed = r["failed_action"].as_u64();
    let n = plan.actions.len();
    let violations = r["violations"].as_array().cloned().unwrap_or_default();
    let mut s = format!("receipt: {}\n", session_line(plan));
    let failure = r["failure"].as_str().unwrap_or("no reason given").to_string();
    let status = |i: usize| -> String {
        let i = i as u64;
        if !approved {
            if violations.iter().any(|v| v["action"].as_u64() == Some(i)) { "refused" } else { "not run" }.into()
        } else if failed == Some(i) {
            format!("failed: {failure}")
        } else if i < executed {
            "done".into()
        } else {
            "not run".into()
        }
    };
    action_list(&mut s, policy, before, plan, &status, &violations);
    let _ = match (approved, failed) {
        (false, _) => writeln!(s, "verdict: rejected by the verifier; nothing ran (a plan runs all or nothing)"),
        (true, None) => writeln!(s, "verdict: approved; {executed} of {n} actions done"),
        (true, Some(i)) => writeln!(s, "verdict: approved, but action {i} failed at execution; {executed} of {n} actions done, the rest did not run"),
    };
    if let Some(d) = dev_key_note(r) {
        let _ = writeln!(s, "{d}");
    }
    let rows = state_changes(&state_to_json(before), &r["state_after"]);
    s.push_str(&change_table("what changed (read back from the PDs)", &rows));
    s
}

/// a line when a status or receipt says the system runs on the dev key.
pub fn dev_key_note(v: &Value) -> Option<&'static str> {
    let dev = v["dev_key"] == Value::Bool(true) || v["keys"] == "dev" || v["keys"]["dev"] == Value::Bool(true);
    dev.then_some("keys: DEV KEY in use (tests only; run `llmsh keygen` for your own)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_verifier::DEFAULT_POLICY;
    use serde_json::json;

    fn plan_of(j: &str) -> Plan {
        json::parse_plan(j.as_bytes()).expect("plan")
    }

    /// compares `got` with `host-llm/tests/golden/NAME`; `LLMSH_BLESS=1` rewrites it.
    fn golden(name: &str, got: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
        if std::env::var_os("LLMSH_BLESS").is_some() {
            std::fs::write(&path, got).expect("bless");
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(got == want, "{name} differs from the golden file\n--- want\n{want}--- got\n{got}");
    }

    const GRANT: &str = r#"{"version":1,"request_id":7,"session":"ops","reason":"make room for the indexer","actions":[
      {"op":"memory.grant","pd":"worker1","pages":16},{"op":"process.set_priority","pd":"worker1","priority":90},
      {"op":"timer.set_periodic","pd":"worker1","period_us":20000},{"op":"system.query"}]}"#;
    const TOO_MUCH: &str = r#"{"version":1,"request_id":3,"session":"ops","reason":"","actions":[
      {"op":"system.query"},{"op":"memory.grant","pd":"worker0","pages":300},{"op":"process.set_priority","pd":"worker0","priority":120}]}"#;

    fn receipt_of(plan: &Plan, before: &State) -> Value {
        let v = verify(&DEFAULT_POLICY, before, plan, &[0; 32]);
        let jv = json::verdict_json(&DEFAULT_POLICY, before, plan, &v);
        let executed = if v.approved { plan.actions.len() } else { 0 };
        json!({"request_id": plan.request_id, "approved": v.approved, "executed": executed,
               "failed_action": null, "violations": jv["violations"], "state_after": state_to_json(&v.state)})
    }

    #[test]
    fn an_approved_receipt_lists_each_action_and_what_changed() {
        let p = plan_of(GRANT);
        let before = DEFAULT_POLICY.initial;
        let text = receipt(&DEFAULT_POLICY, &before, &p, &receipt_of(&p, &before));
        golden("receipt-approved.txt", &text);
    }

    #[test]
    fn a_rejected_receipt_names_invariant_value_and_limit() {
        let p = plan_of(TOO_MUCH);
        let before = DEFAULT_POLICY.initial;
        let mut r = receipt_of(&p, &before);
        r["state_after"] = state_to_json(&before);
        let text = receipt(&DEFAULT_POLICY, &before, &p, &r);
        golden("receipt-rejected.txt", &text);
    }

    #[test]
    fn a_failed_execution_says_which_action_and_what_did_not_run() {
        let p = plan_of(GRANT);
        let before = DEFAULT_POLICY.initial;
        let mut r = receipt_of(&p, &before);
        r["executed"] = json!(1);
        r["failed_action"] = json!(1);
        r["failure"] = json!("ProcessRefused");
        r["state_after"] = state_to_json(&verify::apply(&before, &p.actions[0]));
        golden("receipt-failed.txt", &receipt(&DEFAULT_POLICY, &before, &p, &r));
    }

    #[test]
    fn a_plan_shows_its_verdict_and_the_change_it_would_make() {
        let before = DEFAULT_POLICY.initial;
        for (name, j) in [("plan-approved.txt", GRANT), ("plan-rejected.txt", TOO_MUCH)] {
            let p = plan_of(j);
            let v = verify(&DEFAULT_POLICY, &before, &p, &[0; 32]);
            let jv = json::verdict_json(&DEFAULT_POLICY, &before, &p, &v);
            golden(name, &plan(&DEFAULT_POLICY, &before, &p, &jv));
        }
    }

    #[test]
    fn the_change_table_holds_only_what_differs() {
        let a = json!({"workers": {"worker1": {"pages": 32, "running": true}}, "pool_pages": 512});
        let b = json!({"workers": {"worker1": {"pages": 48, "running": false}}, "pool_pages": 512});
        let rows = state_changes(&a, &b);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], ["worker1", "pages", "32", "48"].map(String::from));
        assert_eq!(rows[1], ["worker1", "state", "running", "stopped"].map(String::from));
        assert!(state_changes(&a, &a).is_empty());
    }
}
