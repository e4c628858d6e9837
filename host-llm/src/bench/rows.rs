//! the rows of a run, the summary of rows (a run's or merged shards'), and
//! the join of shards' reports.

use std::path::PathBuf;

use policy_verifier::json::InputError;
use serde_json::{json, Value};

use crate::common;
use crate::llm::planner;

fn pct(k: usize, n: usize) -> f64 {
    (k as f64 * 1000.0 / n.max(1) as f64).round() / 10.0
}

/// the lower median of a field over the rows that have it (0 for none).
fn lower_median(rows: &[Value], get: impl Fn(&Value) -> Option<u64>) -> u64 {
    let mut v: Vec<u64> = rows.iter().filter_map(get).collect();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

/// the summary of case rows (a run's or merged shards').
pub fn summarize(rows: &[Value]) -> Value {
    let n = rows.len();
    let first = rows.iter().filter(|r| r["no_retries"]["achieved"] == true).count();
    let with = rows.iter().filter(|r| r["retries"]["achieved"] == true).count();
    let mut times: Vec<u64> = rows.iter().filter_map(|r| r["retries"]["ms"].as_u64()).collect();
    times.sort_unstable();
    let at = |q: f64| times.get(((times.len() as f64 - 1.0) * q).round().max(0.0) as usize).copied().unwrap_or(0);
    let plan_median = lower_median(rows, |r| r["retries"]["plan_ms"].as_u64());
    let mut outcomes = serde_json::Map::new();
    for r in rows {
        let o = r["retries"]["detail"]["outcome"].as_str().unwrap_or("error").to_string();
        let k = outcomes.get(&o).and_then(Value::as_u64).unwrap_or(0);
        outcomes.insert(o, json!(k + 1));
    }
    let model_plans = rows
        .iter()
        .filter(|r| {
            r["retries"]["achieved"] == true
                && r["retries"]["detail"]["by"]
                    .as_str()
                    .is_some_and(|b| b != planner::READER && b != "none")
        })
        .count();
    let ran = |k: &str| rows.iter().filter(|r| r["retries"]["detail"][k] == true).count();
    // tokens the backend reported (prompt + completion, every attempt), per
    // intent that asked a model
    let tokens = |r: &Value| r["retries"]["detail"]["tokens"].as_u64();
    let tokens_total: u64 = rows.iter().filter_map(tokens).sum();
    let tokens_median = lower_median(rows, tokens);
    json!({
        "intents": n,
        "ran_unfaithful": ran("ran_unfaithful"),
        "ran_breaking_policy": ran("ran_breaking_policy"),
        "achieved_no_retries_pct": pct(first, n),
        "achieved_with_retries_pct": pct(with, n),
        "achieved_by_a_model_plan_pct": pct(model_plans, n),
        "outcomes": outcomes,
        "median_intent_to_receipt_ms": at(0.5),
        "p90_intent_to_receipt_ms": at(0.9),
        "median_intent_to_plan_ms": plan_median,
        "tokens_total": tokens_total,
        "median_tokens_per_intent": tokens_median,
    })
}

/// joins shard reports: the cases in index order, the summary recomputed.
pub fn merge(paths: &[PathBuf]) -> Result<Value, InputError> {
    let mut rows: Vec<Value> = Vec::new();
    let mut meta = json!({});
    for p in paths {
        let text = common::read_input(p, common::Input::Corpus)?;
        let v: Value = serde_json::from_slice(&text)
            .map_err(|e| crate::code::Code::BenchMerge.err(format!("{}: {e}", p.display())))?;
        if meta["set"].is_null() {
            meta = json!({"set": v["set"], "model": v["model"], "backend": v["backend"], "defense": v["defense"]});
        } else if meta["set"] != v["set"] || meta["model"] != v["model"] || meta["defense"] != v["defense"] {
            return Err(crate::code::Code::BenchMerge.err(
                format!("{} is a report of another set, model or defense", p.display()),
            ));
        }
        rows.extend(v["cases"].as_array().cloned().unwrap_or_default());
    }
    rows.sort_by_key(|r| r["index"].as_u64().unwrap_or(u64::MAX));
    rows.dedup_by_key(|r| r["index"].as_u64());
    let mut out = summarize(&rows);
    for k in ["set", "model", "backend", "defense"] {
        out[k] = meta[k].clone();
    }
    out["shards"] = json!(paths.len());
    out["cases"] = json!(rows);
    Ok(out)
}

