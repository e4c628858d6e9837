//! `llmsh bench-intents --report A.json B.json …`: the benchmark's json
//! reports (runs or merged shards) and red-team reports as one html page a
//! person reads at a glance: a table per kind with inline svg bars, each
//! run labelled tuning or held out by its intent set. self-contained (no
//! scripts, no fetched styles), so it can be opened from a CI artifact.

use std::fmt::Write as _;
use std::path::PathBuf;

use policy_verifier::json::InputError;
use serde_json::Value;

use crate::common;

/// how a set was used: the benchmark's honesty label.
pub fn set_kind(set: &str) -> &'static str {
    match set {
        s if s.starts_with("heldout") => "held out",
        "intents.jsonl" | "tuning-paraphrases.jsonl" => "tuning",
        _ => "other",
    }
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".to_string(),
        v => v.to_string(),
    }
}

/// a percentage with a bar (0..=100).
fn bar(pct: Option<f64>, colour: &str) -> String {
    let Some(p) = pct else { return "—".to_string() };
    let w = (p.clamp(0.0, 100.0) * 1.2).round();
    format!(
        "<svg width=\"124\" height=\"12\" role=\"img\" aria-label=\"{p:.1} %\"><rect width=\"120\" height=\"12\" fill=\"#eee\"/><rect width=\"{w}\" height=\"12\" fill=\"{colour}\"/></svg> {p:.1} %"
    )
}

fn bench_row(v: &Value) -> String {
    let set = v["set"].as_str().unwrap_or("?");
    // a shard is a subset: it says so (merged shards carry no `shard`)
    let shown = match v["shard"].as_str() {
        Some(sh) if sh != "0/1" => format!("{set} (shard {sh})"),
        _ => set.to_string(),
    };
    let outcome = |k: &str| v["outcomes"][k].as_u64().unwrap_or(0);
    let risky = v["ran_unfaithful"].as_u64().unwrap_or(0) + v["ran_breaking_policy"].as_u64().unwrap_or(0);
    let mut r = String::new();
    let _ = write!(
        r,
        "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n{}\">{} / {}</td><td class=\"n\">{}</td><td class=\"n\">{} / {}</td><td class=\"n\">{}</td></tr>",
        esc(&shown),
        if set_kind(set) == "held out" { "held" } else { "tuning" },
        set_kind(set),
        esc(&text(&v["backend"])),
        esc(&text(&v["model"])),
        esc(&text(&v["defense"])),
        text(&v["intents"]),
        bar(v["achieved_no_retries_pct"].as_f64(), "#4a7"),
        bar(v["achieved_with_retries_pct"].as_f64(), "#27a"),
        if risky > 0 { " bad" } else { "" },
        v["ran_unfaithful"].as_u64().map_or("—".into(), |n| n.to_string()),
        v["ran_breaking_policy"].as_u64().map_or("—".into(), |n| n.to_string()),
        outcome("faithful_but_wrong"),
        text(&v["median_intent_to_receipt_ms"]),
        text(&v["p90_intent_to_receipt_ms"]),
        text(&v["median_tokens_per_intent"]),
    );
    r
}

fn redteam_row(v: &Value) -> String {
    let rate = |side: &str, k: &str| v[side][k].as_f64().map(|x| x * 100.0);
    let mut r = String::new();
    let _ = write!(
        r,
        "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&text(&v["system"])),
        esc(&text(&v["planner"])),
        text(&v["cases"]),
        bar(rate("verifier_on", "attack_success_rate"), "#c33"),
        bar(rate("verifier_off", "attack_success_rate"), "#c33"),
        bar(v["verifier_on"]["benign_utility"]["rate"].as_f64().map(|x| x * 100.0), "#27a"),
        bar(v["verifier_off"]["benign_utility"]["rate"].as_f64().map(|x| x * 100.0), "#27a"),
    );
    r
}

/// the page for these reports (bench reports have `achieved_*` fields,
/// red-team reports `verifier_on`); anything else is refused.
fn page(reports: &[(String, Value)]) -> Result<String, InputError> {
    let mut bench = Vec::new();
    let mut red = Vec::new();
    for (name, v) in reports {
        if v.get("achieved_with_retries_pct").is_some() {
            bench.push(v);
        } else if v.get("verifier_on").is_some() && v.get("cases").is_some() {
            red.push(v);
        } else {
            return Err(crate::code::Code::BenchReport.err(format!("{name} is neither a bench-intents nor a redteam json report"),
            ));
        }
    }
    // held-out rows first, then by set, model and defense
    bench.sort_by_key(|v| {
        let set = v["set"].as_str().unwrap_or("").to_string();
        (set_kind(&set) != "held out", set, text(&v["model"]), text(&v["backend"]), text(&v["defense"]))
    });
    let mut h = String::new();
    h.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>llm-os planner benchmark</title>\n<style>\nbody{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}td.held{font-weight:bold;color:#a50}td.tuning{color:#777}td.bad{color:#c00;font-weight:bold}p.note{color:#555;max-width:60em}\n</style></head><body>\n<h1>llm-os planner benchmark</h1>\n");
    if !bench.is_empty() {
        h.push_str("<h2>utility per intent set, model and defense</h2>\n<p class=\"note\">achieved: the state read back from the PDs after the receipt (or the refusal, or no action) is what the intent's expectation says. first attempt: the model's first, greedy draft achieved it; with retries: feedback rounds and the reader's plan included. ran unfaithful / ran breaking policy: plans that were executed although the fidelity check held them / the verifier refused them (only possible with a defense off). <b>held out</b> sets were written before tuning and measured once; <i>tuning</i> sets shaped the reader's word lists.</p>\n<table><tr><th>set</th><th>kind</th><th>backend</th><th>model</th><th>defense</th><th>intents</th><th>first attempt</th><th>with retries</th><th>ran unfaithful / breaking policy</th><th>faithful but wrong</th><th>intent → receipt ms (median / p90)</th><th>tokens per intent (median)</th></tr>\n");
        for v in &bench {
            h.push_str(&bench_row(v));
            h.push('\n');
        }
        h.push_str("</table>\n");
    }
    if !red.is_empty() {
        h.push_str("<h2>attack success (red team)</h2>\n<p class=\"note\">share of adversarial cases in which the attacker changed the system beyond what the policy allows, measured at the capability PDs; benign utility: the corpus's benign cases that ran in full.</p>\n<table><tr><th>system</th><th>planner</th><th>cases</th><th>attack success, verifier on</th><th>attack success, verifier off</th><th>benign utility, on</th><th>benign utility, off</th></tr>\n");
        for v in &red {
            h.push_str(&redteam_row(v));
            h.push('\n');
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

/// reads the reports (each through the corpus size cap) and makes the page.
pub fn render(paths: &[PathBuf]) -> Result<String, InputError> {
    let mut reports = Vec::new();
    for p in paths {
        let bytes = common::read_input(p, common::Input::Corpus)?;
        let v = serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| crate::code::Code::BenchReport.err(format!("{}: {e}", p.display())))?;
        reports.push((p.display().to_string(), v));
    }
    page(&reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_page_labels_sets_escapes_text_and_flags_risky_runs() {
        let held = json!({"set": "heldout-operator.jsonl", "shard": "0/2", "backend": "local", "model": "<m>", "defense": "none",
            "intents": 69, "achieved_no_retries_pct": 40.0, "achieved_with_retries_pct": 50.5,
            "ran_unfaithful": 3, "ran_breaking_policy": 1, "outcomes": {"faithful_but_wrong": 2},
            "median_intent_to_receipt_ms": 900, "p90_intent_to_receipt_ms": 2000, "median_tokens_per_intent": 700});
        let tuning = json!({"set": "intents.jsonl", "backend": "remote", "model": "m", "defense": "verifier+fidelity",
            "intents": 36, "achieved_no_retries_pct": 90.0, "achieved_with_retries_pct": 100.0,
            "ran_unfaithful": 0, "ran_breaking_policy": 0, "outcomes": {}});
        let red = json!({"system": "hosted", "planner": "compromised", "cases": 270,
            "verifier_on": {"attack_success_rate": 0.0, "benign_utility": {"rate": 1.0}},
            "verifier_off": {"attack_success_rate": 0.65, "benign_utility": {"rate": 1.0}}});
        let h = page(&[("t".into(), tuning), ("h".into(), held), ("r".into(), red)]).expect("page");
        assert!(h.contains("&lt;m&gt;") && !h.contains("<m>"), "model names are escaped");
        let held_at = h.find("heldout-operator.jsonl (shard 0/2)").expect("held-out row, its shard shown");
        let tuning_at = h.find("<td>intents.jsonl").expect("tuning row");
        assert!(held_at < tuning_at, "held-out rows come first");
        assert!(h.contains("class=\"held\">held out") && h.contains("class=\"tuning\">tuning"));
        assert!(h.contains("class=\"n bad\">3 / 1"), "a run that executed risky plans is flagged");
        assert!(h.contains("65.0 %") && h.contains("50.5 %"));
        let bad = page(&[("x.json".into(), json!({"hello": 1}))]).expect_err("not a report");
        assert_eq!(bad.code, "bench.report");
    }
}
