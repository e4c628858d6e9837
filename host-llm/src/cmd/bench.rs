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

use std::path::PathBuf;

use policy_verifier::json::InputError;
use serde_json::{json, Value};

use crate::bench::{self, Case, Defense};
use crate::common::{self, Exit};
use crate::llm::local::LocalBackend;
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
    /// the policy the hosted system enforces and the planner plans
    /// against (default `LLM_OS_POLICY`, else the built-in system/policy.toml),
    /// as llm-osd takes it.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// render these json reports (runs, merged shards, `llmsh redteam
    /// --json` reports) as one html page on stdout; runs nothing.
    #[arg(long, num_args = 1.., conflicts_with = "merge")]
    pub report: Vec<PathBuf>,
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

/// runs the benchmark.
pub fn run(args: &Args) -> Exit {
    if !args.merge.is_empty() {
        return match bench::merge(&args.merge) {
            Ok(out) => {
                common::print_json(&out);
                Exit::Ok
            }
            Err(e) => common::report(&e),
        };
    }
    if !args.report.is_empty() {
        return match bench::render(&args.report) {
            Ok(h) => {
                print!("{h}");
                Exit::Ok
            }
            Err(e) => common::report(&e),
        };
    }
    let path = args.file.clone().unwrap_or_else(|| {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/intents/intents.jsonl"
        ))
    });
    let mut cases = match bench::load(&path) {
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
    let policy_path = args.policy.clone().or_else(crate::paths::policy_path);
    let policy: &'static policy_verifier::Policy = match common::load_policy(policy_path.as_deref()) {
        // one per process: the hosted systems of every intent run it
        Ok(p) => Box::leak(Box::new(p)),
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
    let picked: Vec<(usize, &Case)> = cases
        .iter()
        .enumerate()
        .filter(|(i, _)| i % shards == shard)
        .collect();
    let steps = crate::ui::progress::Steps::new("bench: intent", picked.len());
    let backend: &mut dyn Backend = match remote.as_mut() {
        Some(r) => r,
        None => &mut local,
    };
    let opts = bench::Options { max_retries: args.max_retries, defense: args.defense, policy };
    let results = bench::run(&picked, opts, &key, backend, |p| match p {
        bench::Progress::Start(n, case) => steps.at(n, &case.intent),
        bench::Progress::Done(case, row) => {
            let yes = |k: &str| if row[k]["achieved"] == true { "ok  " } else { "MISS" };
            steps.note(&format!(
                "bench: {:<60} no-retry:{} retries:{} {:<18} ({} ms)",
                case.intent,
                yes("no_retries"),
                yes("retries"),
                row["retries"]["detail"]["outcome"].as_str().unwrap_or(""),
                row["retries"]["ms"]
            ));
            steps.note(&format!("bench:   drafts: {}", row["retries"]["detail"]["attempts"]));
        }
    });
    steps.finish();
    let st = local.stats;
    let rate = |tok: u64, ms: u64| if ms > 0 { tok as f64 * 1000.0 / ms as f64 } else { 0.0 };
    let tps = rate(st.sampled + st.forced, st.gen_ms);
    let sampled_tps = rate(st.sampled, st.gen_ms);
    let prompt_tps = rate(st.prompt, st.prompt_ms);
    let mut summary = bench::summarize(&results);
    summary["set"] = json!(path.file_name().map(|f| f.to_string_lossy().into_owned()));
    summary["policy"] = json!(policy_path.as_ref().map_or("built-in".to_string(), |p| p.display().to_string()));
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
