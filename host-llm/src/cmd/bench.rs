//! `llmsh bench-intents [--file F] [--model M]` (hidden): the planner's
//! utility on tests/intents/intents.jsonl with the local model. every intent
//! runs on a freshly booted hosted system (set up to the intent's starting
//! state), is planned, executed and judged on the receipt's state read back
//! from the PDs. reports the share achieved without and with feedback
//! retries, the median intent → receipt time, and tokens/s.
//!
//! an expectation is a state change (`"worker1.pages":"+16"`, an absolute
//! value), an action (`"op":…`), a refusal naming an invariant
//! (`"refused":"prio.ceiling"`: a faithful plan the verifier rejects) or
//! `"no_action":true` (the planner asks no model and plans nothing). like
//! `apply` with no terminal, only a faithful approved plan runs; outcomes
//! count `achieved`, `refused`, `no_action`, `unfaithful_held` (approved,
//! not what was asked, not run) and `faithful_but_wrong` (ran, judged
//! faithful, missed the expectation: the fidelity check's blind spot).
//!
//! `--defense` sweeps what stands between the model and the system: the
//! verifier and the fidelity check (`full`, what `apply` does), the verifier
//! alone (`verifier-only`: the first approved draft runs), or neither
//! (`none`: the first draft runs on a verifier PD in its unverified mode).
//! the rows count what ran that a defense would have stopped
//! (`ran_unfaithful`, `ran_breaking_policy`). `--report A.json …` renders
//! runs and red-team reports as one html page.

use std::path::{Path, PathBuf};
use std::time::Instant;

use pd_interface::link::{Reply, Request};
use policy_verifier::json::{self, InputError};
use policy_verifier::{confirm, Plan, State, Worker, DEFAULT_POLICY};
use serde_json::{json, Value};

use crate::common::{self, Exit};
use crate::link::{self, Link};
use crate::llm::local::LocalBackend;
use crate::llm::planner::{self, Request as PlanRequest};
use crate::llm::remote::{Limits, RemoteBackend, RemoteConfig};
use crate::llm::Backend;

/// arguments of `llmsh bench-intents`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// the intents (json lines: intent, session, state, expect).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// a gguf model file for the local backend, or a model llmsh fetches by
    /// name into ~/.cache/llm-os/models on first use: `smollm2-135m`
    /// (SmolLM2-135M-Instruct, the default) or `gemma3-270m` (Gemma 3 270M).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// run only the first n intents.
    #[arg(long)]
    pub limit: Option<usize>,
    /// run shard i of n (`i/n`, 0-based): the intents whose index is i mod n.
    /// a cluster's scheduler runs the shards (a slurm array, a kubernetes
    /// job); `--merge` joins their json reports.
    #[arg(long)]
    pub shard: Option<String>,
    /// join the json reports of shards into one report; runs nothing.
    #[arg(long, num_args = 1..)]
    pub merge: Vec<PathBuf>,
    /// plan with an openai-compatible endpoint instead of the local model.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// the remote model name.
    #[arg(long)]
    pub remote_model: Option<String>,
    /// feedback rounds (the "with retries" column).
    #[arg(long, default_value_t = 3)]
    pub max_retries: u32,
    /// which defenses stand between the model and the system.
    #[arg(long, value_enum, default_value = "full")]
    pub defense: Defense,
    /// render these json reports (runs, merged shards, `llmsh redteam
    /// --json` reports) as one html page on stdout; runs nothing.
    #[arg(long, num_args = 1.., conflicts_with = "merge")]
    pub report: Vec<PathBuf>,
}

/// the defenses of a benchmark run (the sweep's axis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Defense {
    /// the verifier PD and the fidelity check: what `apply` does.
    Full,
    /// the verifier PD alone: the first approved draft runs, faithful or not.
    VerifierOnly,
    /// neither: the model's first draft runs on a hosted system whose
    /// verifier PD is in its unverified mode (no retries, nothing refused).
    None,
}

impl Defense {
    /// its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Defense::Full => "verifier+fidelity",
            Defense::VerifierOnly => "verifier",
            Defense::None => "none",
        }
    }
}

/// one benchmark case.
struct Case {
    intent: String,
    session: String,
    setup: Vec<(String, Value)>,
    expect: Vec<(String, Value)>,
}

fn load(path: &Path) -> Result<Vec<Case>, InputError> {
    let text = String::from_utf8_lossy(&common::read_input(path, common::Input::Corpus)?).into_owned();
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| crate::code::Code::BenchSyntax.err(format!("line {}: {e}", i + 1)))?;
        let pairs = |k: &str| -> Vec<(String, Value)> {
            v[k].as_object()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        out.push(Case {
            intent: v["intent"].as_str().unwrap_or("").to_string(),
            session: v["session"].as_str().unwrap_or("ops").to_string(),
            setup: pairs("state"),
            expect: pairs("expect"),
        });
    }
    Ok(out)
}

/// `worker1.pages` → (worker1, pages).
fn split(key: &str) -> Option<(Worker, &str)> {
    let (w, f) = key.split_once('.')?;
    Some((Worker::from_name(w)?, f))
}

/// the setup plan that brings a fresh system to the case's starting state.
fn setup_plan(case: &Case, key: &[u8; 32]) -> Option<Plan> {
    let mut actions = Vec::new();
    for (k, v) in &case.setup {
        let (pd, field) = split(k)?;
        match (field, v) {
            ("timer_period_us", Value::Number(n)) => {
                actions.push(json!({"op": "timer.set_periodic", "pd": pd.name(), "period_us": n}));
            }
            ("running", Value::Bool(false)) => {
                actions.push(json!({"op": "process.stop", "pd": pd.name()}))
            }
            _ => return None,
        }
    }
    if actions.is_empty() {
        return None;
    }
    let text = json!({"version": 1, "request_id": 1, "session": "admin", "reason": "bench setup", "actions": actions});
    let plan = json::parse_plan(text.to_string().as_bytes()).ok()?;
    if plan.has_destructive() {
        confirm::sign(&plan, key)
    } else {
        Some(plan)
    }
}

fn field(s: &Value, w: Worker, f: &str) -> Value {
    s["workers"][w.name()][f].clone()
}

/// whether the receipt achieves every expectation of the case.
fn achieved(case: &Case, plan: &Plan, before: &Value, after: &Value) -> bool {
    let ops = json::plan_to_json(plan)["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if case
        .expect
        .iter()
        .any(|(k, _)| k == "refused" || k == "no_action")
    {
        return false;
    }
    if case.expect.iter().any(|(k, _)| k == "op") {
        // read-only / op-shaped expectations: an action with these fields.
        return ops
            .iter()
            .any(|a| case.expect.iter().all(|(k, v)| a.get(k) == Some(v)));
    }
    case.expect.iter().all(|(k, v)| {
        let Some((w, f)) = split(k) else { return false };
        let (b, a) = (field(before, w, f), field(after, w, f));
        match v.as_str() {
            Some(rel) => {
                let delta: i64 = rel.parse().unwrap_or(i64::MAX);
                a.as_i64()
                    .zip(b.as_i64())
                    .is_some_and(|(a, b)| a - b == delta)
            }
            None => &a == v,
        }
    })
}

/// `i/n` → (i, n).
fn parse_shard(s: &str) -> Result<(usize, usize), InputError> {
    let bad = || crate::code::Code::BenchShard.err(format!("--shard wants i/n with 0 <= i < n, not `{s}`"));
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

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
fn summarize(rows: &[Value]) -> Value {
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
fn merge(paths: &[PathBuf]) -> Exit {
    let mut rows: Vec<Value> = Vec::new();
    let mut meta = json!({});
    for p in paths {
        let text = match common::read_input(p, common::Input::Corpus) {
            Ok(t) => t,
            Err(e) => return common::report(&e),
        };
        let v: Value = match serde_json::from_slice(&text) {
            Ok(v) => v,
            Err(e) => return common::report(&crate::code::Code::BenchMerge.err(format!("{}: {e}", p.display()))),
        };
        if meta["set"].is_null() {
            meta = json!({"set": v["set"], "model": v["model"], "backend": v["backend"], "defense": v["defense"]});
        } else if meta["set"] != v["set"] || meta["model"] != v["model"] || meta["defense"] != v["defense"] {
            return common::report(&crate::code::Code::BenchMerge.err(
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
    common::print_json(&out);
    Exit::Ok
}

/// runs the benchmark.
pub fn run(args: &Args) -> Exit {
    if !args.merge.is_empty() {
        return merge(&args.merge);
    }
    if !args.report.is_empty() {
        return crate::bench_report::render(&args.report);
    }
    let path = args.file.clone().unwrap_or_else(|| {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/intents/intents.jsonl"
        ))
    });
    let mut cases = match load(&path) {
        Ok(c) => c,
        Err(e) => return common::report(&e),
    };
    if let Some(n) = args.limit {
        cases.truncate(n);
    }
    let (shard, shards) = match args.shard.as_deref().map(parse_shard).transpose() {
        Ok(s) => s.unwrap_or((0, 1)),
        Err(e) => return common::report(&e),
    };
    let key = match common::load_key(None) {
        Ok(k) => k,
        Err(e) => return common::report(&e),
    };
    let mut local = LocalBackend::new(args.model.as_deref());
    let mut remote = match RemoteConfig::from_flags_or_env(
        args.endpoint.as_deref(),
        args.remote_model.as_deref(),
        None,
        Limits::default(),
    ) {
        Ok(c) => c.filter(|_| args.endpoint.is_some()).map(RemoteBackend::new),
        Err(e) => return common::report(&e.to_input_error()),
    };
    let mut results = Vec::new();
    let picked: Vec<(usize, &Case)> = cases
        .iter()
        .enumerate()
        .filter(|(i, _)| i % shards == shard)
        .collect();
    let steps = crate::ui::progress::Steps::new("bench: intent", picked.len());
    for (n, (index, case)) in picked.into_iter().enumerate() {
        steps.at(n + 1, &case.intent);
        let mut row = json!({"index": index, "intent": case.intent});
        // attempt 1 is greedy and the same with or without retries, so one
        // run gives both numbers: without retries means "achieved on attempt 1".
        let t0 = Instant::now();
        let backend: &mut dyn Backend = match remote.as_mut() {
            Some(r) => r,
            None => &mut local,
        };
        let mut plan_ms = 0u64;
        let r = run_case(case, args.max_retries, args.defense, &key, backend, &mut plan_ms);
        let ms = t0.elapsed().as_millis() as u64;
        let (ok, attempts, detail) = match r {
            Ok((ok, n, d)) => (ok, n, d),
            Err(e) => (false, 0, json!({"error": e, "outcome": "error"})),
        };
        let first = ok && attempts == 1;
        row["no_retries"] = json!({"achieved": first});
        row["retries"] = json!({"achieved": ok, "attempts": attempts, "ms": ms, "plan_ms": plan_ms, "detail": detail});
        steps.note(&format!(
            "bench: {:<60} no-retry:{} retries:{} {:<18} ({} ms)",
            case.intent,
            if first { "ok  " } else { "MISS" },
            if ok { "ok  " } else { "MISS" },
            row["retries"]["detail"]["outcome"].as_str().unwrap_or(""),
            ms
        ));
        steps.note(&format!("bench:   drafts: {}", row["retries"]["detail"]["attempts"]));
        results.push(row);
    }
    steps.finish();
    let st = local.stats;
    let rate = |tok: u64, ms: u64| if ms > 0 { tok as f64 * 1000.0 / ms as f64 } else { 0.0 };
    let tps = rate(st.sampled + st.forced, st.gen_ms);
    let sampled_tps = rate(st.sampled, st.gen_ms);
    let prompt_tps = rate(st.prompt, st.prompt_ms);
    let mut summary = summarize(&results);
    summary["set"] = json!(path.file_name().map(|f| f.to_string_lossy().into_owned()));
    summary["backend"] = json!(if remote.is_some() { "remote" } else { "local" });
    summary["model"] = json!(match &remote {
        Some(r) => r.model(),
        None => local.model(),
    });
    summary["shard"] = json!(format!("{shard}/{shards}"));
    summary["defense"] = json!(args.defense.name());
    summary["completion_tokens_per_s"] = json!((tps * 10.0).round() / 10.0);
    summary["sampled_tokens_per_s"] = json!((sampled_tps * 10.0).round() / 10.0);
    summary["prompt_tokens_per_s"] = json!(prompt_tps.round());
    // the local backend's own counts (a remote server reports only totals)
    summary["tokens"] = if remote.is_some() {
        Value::Null
    } else {
        json!({"sampled": st.sampled, "forced": st.forced, "prompt": st.prompt, "prompt_cached": st.cached, "prefix_cache_hits": st.prefix_hits})
    };
    summary["cases"] = json!(results);
    common::print_json(&summary);
    eprintln!(
        "bench: {} intents · achieved {}% without retries, {}% with retries ({}% by a model's plan) · outcomes {} · median intent→plan {} ms, intent→receipt {} ms · {:.1} tok/s completion ({:.1} sampled) · {:.0} tok/s prompt ({} tokens from the prefix cache)",
        summary["intents"],
        summary["achieved_no_retries_pct"],
        summary["achieved_with_retries_pct"],
        summary["achieved_by_a_model_plan_pct"],
        summary["outcomes"],
        summary["median_intent_to_plan_ms"],
        summary["median_intent_to_receipt_ms"],
        tps,
        sampled_tps,
        prompt_tps,
        st.cached
    );
    Exit::Ok
}

/// one case on a fresh system: setup, state, plan, execute, judge.
fn run_case(
    case: &Case,
    retries: u32,
    defense: Defense,
    key: &[u8; 32],
    backend: &mut dyn Backend,
    plan_ms: &mut u64,
) -> Result<(bool, usize, Value), String> {
    // the verifier PD boots on this host's keys; tokens are for its boot
    let keys = link::host_keys().map_err(|e| e.to_string())?;
    let mut link = if defense == Defense::None {
        let opts = hosted_system::BootOptions { unverified: true, keys, ..Default::default() };
        let h = hosted_system::HostedSystem::boot_with(&crate::paths::system_path(), opts).map_err(|e| e.to_string())?;
        Link::hosted(h, keys.plan)
    } else {
        Link::boot_hosted(&crate::paths::system_path(), keys, &DEFAULT_POLICY).map_err(|e| e.to_string())?
    };
    let epoch = match link.request(&Request::Status) {
        Ok(Reply::Status(s)) => s.epoch,
        other => return Err(format!("status: {other:?}")),
    };
    let key = &common::epoch_key(key, epoch);
    if let Some(setup) = setup_plan(case, key) {
        let r = link.apply(&setup).map_err(|(c, m)| format!("{c}: {m}"))?;
        if !r.approved || r.failed_action.is_some() {
            return Err(format!("setup failed: {r:?}"));
        }
    }
    let state: State = match link.request(&Request::Status) {
        Ok(Reply::Status(s)) => pd_verifier::model_state(&s),
        other => return Err(format!("status: {other:?}")),
    };
    let req = PlanRequest {
        intent: &case.intent,
        policy: &DEFAULT_POLICY,
        state: &state,
        session: &case.session,
        key,
        max_retries: if defense == Defense::None { 0 } else { retries },
        fidelity: defense == Defense::Full,
    };
    let mut refs: [&mut dyn Backend; 1] = [backend];
    let t = Instant::now();
    let planned = planner::plan(&req, &mut refs, |_| {});
    *plan_ms = t.elapsed().as_millis() as u64;
    let planned = planned.map_err(|e| e.to_string())?;
    let attempts: Vec<Value> = planned
        .attempts
        .iter()
        .map(|a| json!(format!("{}: {}", a.backend, a.draft)))
        .collect();
    let fidelity = planned.fidelity.as_ref().map(|f| f.to_json());
    let by = planned.last().map(|a| a.backend).unwrap_or("none");
    let expects = |k: &str| case.expect.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    if planned.no_action {
        let ok = expects("no_action") == Some(json!(true));
        return Ok((ok, 1, json!({"attempts": attempts, "no_action": true, "outcome": "no_action"})));
    }
    // apply without a terminal: only a faithful approved plan runs (with
    // the full defense)
    let runs = match defense {
        Defense::Full => planned.approved && planned.faithful(),
        Defense::VerifierOnly => planned.approved,
        Defense::None => true,
    };
    let Some(plan) = planned.plan.clone().filter(|_| runs) else {
        let n = attempts.len().max(1);
        let viol = planned.verdict["violations"].clone();
        let ok = match expects("refused") {
            Some(Value::String(inv)) => {
                !planned.approved
                    && planned.faithful()
                    && viol
                        .as_array()
                        .is_some_and(|v| v.iter().any(|x| x["invariant"] == inv.as_str()))
            }
            _ => false,
        };
        let outcome = match (&planned.plan, planned.approved) {
            (None, _) => "no_plan",
            (Some(_), true) => "unfaithful_held",
            (Some(_), false) => "refused",
        };
        return Ok((
            ok,
            n,
            json!({"attempts": attempts, "verdict": viol, "fidelity": fidelity, "outcome": outcome, "by": by, "tokens": planned.tokens}),
        ));
    };
    let signed = if plan.has_destructive() {
        confirm::sign(&plan, key).unwrap_or(plan)
    } else {
        plan
    };
    let receipt = link.apply(&signed).map_err(|(c, m)| format!("{c}: {m}"))?;
    let out = crate::receipt::receipt_json(&DEFAULT_POLICY, &signed, &receipt);
    let before = json::state_to_json(&state);
    let ok = receipt.approved
        && receipt.failed_action.is_none()
        && achieved(case, &signed, &before, &out["state_after"]);
    // what ran that a defense would have stopped: a plan the fidelity
    // check holds, or one the verifier refuses
    let unfaithful = !planned.faithful();
    let breaks_policy = !planned.approved;
    let outcome = match (ok, unfaithful) {
        (true, _) => "achieved",
        (false, false) => "faithful_but_wrong",
        (false, true) => "unfaithful_ran",
    };
    Ok((
        ok,
        attempts.len(),
        json!({"attempts": attempts, "fidelity": fidelity, "outcome": outcome, "by": by, "tokens": planned.tokens,
               "ran": true, "ran_unfaithful": unfaithful, "ran_breaking_policy": breaks_policy}),
    ))
}
