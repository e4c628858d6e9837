//! `llmsh prove` as a user runs it: every obligation proved, enumerated from
//! the tables (at least 30), json as DESIGN.md says, and a custom policy.

use std::process::{Command, Output};

use serde_json::Value;

fn llmsh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmsh")).args(args).output().expect("llmsh runs")
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("llmsh-prove-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn prove_json(extra: &[&str]) -> (Output, Value) {
    let cex = tmp("cex");
    let cex = cex.to_string_lossy().into_owned();
    let mut args = vec!["prove", "--json", "--cex-dir", &cex];
    args.extend_from_slice(extra);
    let out = llmsh(&args);
    let v: Value = serde_json::from_slice(&out.stdout).expect("prove --json prints json");
    (out, v)
}

fn check_all_proved(out: &Output, v: &Value) {
    let obs = v["obligations"].as_array().expect("obligations");
    assert!(obs.len() >= 30, "{} obligations", obs.len());
    assert_eq!(v["proved"].as_u64(), Some(obs.len() as u64));
    assert_eq!(v["failed"].as_u64(), Some(0));
    assert!(v["total_ms"].as_f64().is_some_and(|t| t < 60_000.0), "{}", v["total_ms"]);
    for o in obs {
        assert_eq!(o["result"], "proved", "{o}");
        for field in ["name", "kind", "ms", "slowest_query_ms", "timeout_ms", "margin_ms"] {
            assert!(!o[field].is_null(), "{field} in {o}");
        }
        let kind = o["kind"].as_str().unwrap_or("");
        let kinds = ["soundness", "completeness", "precondition", "vacuity", "plan", "domain", "consistency", "claim"];
        assert!(kinds.contains(&kind), "{o}");
        // step obligations name their op; plan, domain and consistency ones
        // (about the initial state) have none.
        assert_eq!(o["action"].is_null(), ["plan", "domain", "consistency"].contains(&kind), "{o}");
        // well inside the timeout: at most half of it in the slowest query.
        let (margin, timeout) = (o["margin_ms"].as_f64().unwrap_or(0.0), o["timeout_ms"].as_f64().unwrap_or(0.0));
        assert!(margin > timeout / 2.0, "{o}");
    }
    assert!(v["least_margin_ms"].as_f64().is_some_and(|m| m > 0.0), "{}", v["least_margin_ms"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn prove_json_proves_every_obligation() {
    let (out, v) = prove_json(&[]);
    check_all_proved(&out, &v);
    let names: Vec<&str> = v["obligations"].as_array().into_iter().flatten().filter_map(|o| o["name"].as_str()).collect();
    for n in [
        "soundness/memory.grant/mem.quota",
        "completeness/process.set_budget/cpu.util",
        "vacuity/process.start",
        "precondition/memory.reclaim/mem.reclaim_stopped",
        "plan/soundness/auth.tier",
        "plan/naming/plan.replay",
        "plan/first_failure",
        "domain/add",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    let start = v["obligations"].as_array().into_iter().flatten().find(|o| o["name"] == "vacuity/process.start");
    let ops: Vec<&str> = start
        .and_then(|o| o["witness"]["actions"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|a| a["op"].as_str())
        .collect();
    assert_eq!(ops, ["process.stop", "process.start"], "a stopped worker is needed first");
}

#[test]
fn prove_human_table_ends_with_a_summary() {
    let out = llmsh(&["prove", "--cex-dir", &tmp("cex-table").to_string_lossy()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("");
    assert!(last.contains("proved, 0 failed"), "{last}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn prove_uses_the_given_policy() {
    let dir = tmp("policy");
    let policy = include_str!("../../system/policy.toml")
        .replace("cpu_util_permille = 800", "cpu_util_permille = 500")
        .replace("quota_pages = 256", "quota_pages = 64");
    let path = dir.join("policy.toml");
    std::fs::write(&path, policy).expect("write policy");
    let (out, v) = prove_json(&["--policy", &path.to_string_lossy()]);
    check_all_proved(&out, &v);
}

#[test]
fn prove_rejects_a_bad_policy_file() {
    let dir = tmp("bad-policy");
    let path = dir.join("policy.toml");
    std::fs::write(&path, "[limits]\nquota_pages = \"many\"\n").expect("write policy");
    let out = llmsh(&["prove", "--policy", &path.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert!(v["error"]["code"].as_str().is_some_and(|c| c.starts_with("policy.")), "{v}");
}
