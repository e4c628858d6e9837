//! the remote backend against a fake openai-compatible server on 127.0.0.1
//! (spawned here, loopback only), through the real `llmsh` binary: the
//! request carries the draft schema, rejections are fed back, the token
//! budget holds, and `apply "INTENT"` runs end to end on the hosted system
//! with an audit trail that verifies.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod fake_openai;
use fake_openai::{completion, fake, fake_with, Reply};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llmsh-remote-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn llmsh(args: &[&str], dir: &PathBuf) -> Output {
    llmsh_env(args, dir, &[])
}

/// [`llmsh`] with these environment variables set as well.
fn llmsh_env(args: &[&str], dir: &PathBuf, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmsh"))
        .args(args)
        .env("XDG_RUNTIME_DIR", dir)
        .env("XDG_STATE_HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("cfg"))
        .env("LLMSH_API_KEY", "test-key")
        .env_remove("LLMSH_ENDPOINT")
        .env_remove("LLMSH_AUDIT_LOG")
        .env_remove("LLMSH_STATE")
        .env_remove("LLM_OS_POLICY")
        .envs(env.iter().copied())
        .output()
        .expect("run llmsh")
}

/// stops the system `--boot` started in `dir`.
struct Stop(PathBuf);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = llmsh(&["boot", "--stop"], &self.0);
    }
}

const GRANT16: &str = r#"{"reason":"worker1 needs memory","actions":[{"op":"memory.grant","pd":"worker1","pages":16}]}"#;

#[test]
fn plan_asks_for_the_draft_schema_and_prints_the_plan() {
    let dir = tmp("plan");
    let f = fake(vec![GRANT16], 100);
    let out = llmsh(
        &[
            "plan",
            "give worker1 16 more pages of memory",
            "--backend",
            "remote",
            "--endpoint",
            &f.url,
            "--json",
        ],
        &dir,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan json alone on stdout");
    assert_eq!(plan["request_id"], 1);
    assert_eq!(plan["session"], "ops");
    assert_eq!(
        plan["actions"][0],
        json!({"op": "memory.grant", "pd": "worker1", "pages": 16})
    );
    let seen = f.seen.lock().expect("lock");
    let (headers, body) = &seen[0];
    assert!(
        headers
            .iter()
            .any(|h| h.to_lowercase() == "authorization: bearer test-key"),
        "{headers:?}"
    );
    assert_eq!(body["response_format"]["type"], "json_schema");
    let schema = &body["response_format"]["json_schema"]["schema"];
    let props: Vec<&String> = schema["properties"]
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        props.len(),
        2,
        "the model writes reason and actions only: {schema}"
    );
    assert!(schema.to_string().contains("memory.grant"));
    // the state read back from the system sits just before the intent (the
    // prompt's shared start comes first, for the local prefix cache)
    let msgs = body["messages"].as_array().cloned().unwrap_or_default();
    let state_at = msgs.iter().position(|m| m["content"].as_str().unwrap_or("").contains("worker1: running"));
    assert_eq!(state_at, Some(msgs.len().saturating_sub(2)), "{msgs:?}");
    assert_eq!(
        body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .map(|m| m["content"].clone()),
        Some(json!("give worker1 16 more pages of memory"))
    );
}

#[test]
fn a_rejected_draft_is_fed_back_and_fixed() {
    let dir = tmp("feedback");
    // the fake ignores the schema: 300 pages breaks mem.quota, then a fix.
    let f = fake(
        vec![
            r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":300}]}"#,
            GRANT16,
        ],
        100,
    );
    let out = llmsh(
        &[
            "plan",
            "give worker1 more memory",
            "--backend",
            "remote",
            "--endpoint",
            &f.url,
            "--json",
        ],
        &dir,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("attempt 1")
            && stderr.contains("mem.quota")
            && stderr.contains("attempt 2"),
        "{stderr}"
    );
    let seen = f.seen.lock().expect("lock");
    assert_eq!(seen.len(), 2);
    let last = seen[1].1["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    assert!(
        last["content"].as_str().unwrap_or("").contains("mem.quota"),
        "{last}"
    );
}

#[test]
fn no_retry_is_spent_on_a_rejection_no_retry_can_fix() {
    let dir = tmp("retries");
    let f = fake(
        vec![r#"{"reason":"r","actions":[{"op":"process.stop","pd":"worker1"}]}"#],
        100,
    );
    let out = llmsh(
        &[
            "plan",
            "halt worker1",
            "--backend",
            "remote",
            "--endpoint",
            &f.url,
            "--json",
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        f.seen.lock().expect("lock").len(),
        1,
        "auth.tier: the operator session may not stop a worker, whatever the model writes"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("auth.tier"), "{stderr}");
}

#[test]
fn the_session_token_budget_stops_the_planner() {
    let dir = tmp("budget");
    // viewer has 4096 tokens; the server claims 5000 per call.
    let f = fake(vec![GRANT16], 5000);
    let out = llmsh(
        &[
            "plan",
            "show the state",
            "--session",
            "viewer",
            "--backend",
            "remote",
            "--endpoint",
            &f.url,
        ],
        &dir,
    );
    // the session's budget is the policy's: a refusal, exit 1
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(err["error"]["code"], "budget.tokens");
}

#[test]
fn remote_without_an_endpoint_is_a_json_error() {
    let dir = tmp("noendpoint");
    let out = llmsh(&["plan", "x", "--backend", "remote"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let err: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(err["error"]["code"], "backend.config");
    let out = llmsh(
        &[
            "plan",
            "x",
            "--backend",
            "remote",
            "--endpoint",
            "http://127.0.0.1:9",
            "--session",
            "nobody",
        ],
        &dir,
    );
    let err: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(err["error"]["code"], "session.unknown");
}

#[test]
fn apply_intent_executes_on_the_hosted_system_and_audits() {
    let dir = tmp("apply");
    let log = dir.join("audit.jsonl");
    let f = fake(vec![GRANT16], 100);
    let out = llmsh(
        &[
            "apply",
            "give worker1 16 more pages of memory",
            "--yes",
            "--json",
            "--backend",
            "remote",
            "--endpoint",
            &f.url,
            "--audit-log",
            log.to_str().unwrap_or(""),
            "--boot",
        ],
        &dir,
    );
    let _sys = Stop(dir.clone());
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {} stderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let receipt: Value = serde_json::from_slice(&out.stdout).expect("receipt json");
    assert_eq!(receipt["approved"], true);
    assert_eq!(receipt["executed"], 1);
    assert_eq!(receipt["failed_action"], Value::Null);
    assert_eq!(receipt["state_after"]["workers"]["worker1"]["pages"], 48);
    let text = std::fs::read_to_string(&log).expect("audit log");
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["kind"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["boot", "request", "step", "result"]);
    let req: Value = serde_json::from_str(text.lines().nth(1).unwrap_or("")).expect("json");
    assert_eq!(req["backend"], "remote");
    assert_eq!(req["intent"], "give worker1 16 more pages of memory");
    assert_eq!(req["before"]["workers"]["worker1"]["pages"], 32);
    assert_eq!(req["prompt_hash"].as_str().map(str::len), Some(64));
    let v = llmsh(
        &[
            "audit",
            "--verify",
            "--json",
            "--audit-log",
            log.to_str().unwrap_or(""),
        ],
        &dir,
    );
    assert_eq!(v.status.code(), Some(0));
    let rep: Value = serde_json::from_slice(&v.stdout).expect("report");
    assert_eq!(rep["ok"], true);
    assert_eq!(rep["records"], 4);
    assert_eq!(rep["live"]["match"], true, "checked against the running system: {rep}");
    // tamper: the chain breaks and `audit --verify` says where.
    std::fs::write(&log, text.replacen("\"pages\":16", "\"pages\":160", 1)).expect("write");
    let v = llmsh(
        &[
            "audit",
            "--verify",
            "--json",
            "--audit-log",
            log.to_str().unwrap_or(""),
        ],
        &dir,
    );
    assert_eq!(v.status.code(), Some(1));
    let rep: Value = serde_json::from_slice(&v.stdout).expect("report");
    assert_eq!(rep["broken"]["line"], 2);
}

#[test]
fn a_destructive_intent_without_yes_and_without_a_terminal_runs_nothing() {
    let dir = tmp("declined");
    let log = dir.join("audit.jsonl");
    let f = fake(
        vec![r#"{"reason":"r","actions":[{"op":"process.stop","pd":"worker2"}]}"#],
        100,
    );
    let out = llmsh(
        &[
            "apply",
            "stop worker2",
            "--session",
            "admin",
            "--backend",
            "remote",
            "--endpoint",
            &f.url,
            "--audit-log",
            log.to_str().unwrap_or(""),
            "--boot",
        ],
        &dir,
    );
    let _sys = Stop(dir.clone());
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("DESTRUCTIVE") && text.contains("apply.declined"),
        "{text}"
    );
    let recs = std::fs::read_to_string(&log).expect("audit log");
    let kinds: Vec<String> = recs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json")["kind"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(kinds, ["boot", "request"], "a declined request is recorded, nothing executed");
    assert!(recs.contains("\"declined\":true"));
}

#[test]
fn a_refused_json_schema_falls_back_to_a_compact_grammar_then_json_object() {
    let dir = tmp("fallback");
    // as llama-cpp-python does: http 500 for json_schema, a grammar works
    let f = fake_with(|_, body| {
        if body["response_format"]["type"] == "json_schema" {
            Reply { status: 500, body: r#"{"error":{"message":"Internal Server Error"}}"#.into(), delay: Duration::ZERO }
        } else {
            completion(GRANT16, 100)
        }
    });
    let out = llmsh(
        &["plan", "give worker1 16 more pages of memory", "--backend", "remote", "--endpoint", &f.url, "--json"],
        &dir,
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    {
        let seen = f.seen.lock().expect("lock");
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].1["response_format"]["type"], "json_schema");
        assert!(seen[1].1.get("response_format").is_none(), "{}", seen[1].1);
        let g = seen[1].1["grammar"].as_str().expect("a gbnf grammar");
        assert!(g.contains("root ::= \"{\" \"\\\"reason\\\"\" \":\""), "{g}");
        assert!(g.contains("\"\\\"memory.grant\\\"\""), "{g}");
    }
    // a server that refuses the grammar as well gets json_object + schema
    let dir = tmp("fallback2");
    let f = fake_with(|_, body| {
        if body["response_format"]["type"] == "json_schema" || body.get("grammar").is_some() {
            Reply { status: 400, body: r#"{"error":{"message":"unsupported response_format / grammar"}}"#.into(), delay: Duration::ZERO }
        } else {
            completion(GRANT16, 100)
        }
    });
    let out = llmsh(
        &["plan", "give worker1 16 more pages of memory", "--backend", "remote", "--endpoint", &f.url, "--json"],
        &dir,
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = f.seen.lock().expect("lock");
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].1["response_format"]["type"], "json_object");
    assert!(seen[2].1["response_format"]["schema"]["properties"]["actions"].is_object());
    assert!(seen[2].1.get("grammar").is_none());
}

#[test]
fn a_pinned_format_is_the_only_one_asked_for() {
    let dir = tmp("pinned");
    let f = fake_with(|_, _| Reply { status: 500, body: "no".into(), delay: Duration::ZERO });
    let out = llmsh_env(&["plan", "give worker1 16 more pages of memory", "--backend", "remote", "--endpoint", &f.url, "--json"], &dir, &[("LLMSH_REMOTE_FORMAT", "grammar")]);
    let err: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(err["error"]["code"], "remote.http", "{err}");
    {
        let seen = f.seen.lock().expect("lock");
        assert_eq!(seen.len(), 1);
        assert!(seen[0].1["grammar"].is_string());
    }
    // a name llmsh does not know is bad input, before any call
    let out = llmsh_env(&["plan", "give worker1 16 more pages of memory", "--backend", "remote", "--endpoint", &f.url, "--json"], &dir, &[("LLMSH_REMOTE_FORMAT", "yaml")]);
    assert_eq!(out.status.code(), Some(2));
    let err: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(err["error"]["code"], "backend.config", "{err}");
    assert_eq!(f.seen.lock().expect("lock").len(), 1);
}

#[test]
fn sampling_is_pinned_and_extra_fields_are_sent() {
    let dir = tmp("sampling");
    let f = fake(vec![GRANT16], 100);
    let out = Command::new(env!("CARGO_BIN_EXE_llmsh"))
        .args(["plan", "give worker1 16 more pages of memory", "--backend", "remote", "--endpoint", &f.url, "--json"])
        .env("XDG_RUNTIME_DIR", &dir)
        .env("XDG_STATE_HOME", &dir)
        .env("LLMSH_REMOTE_EXTRA", r#"{"top_k":1,"min_p":0}"#)
        .env_remove("LLMSH_ENDPOINT")
        .env_remove("LLMSH_STATE")
        .output()
        .expect("run llmsh");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = f.seen.lock().expect("lock");
    let b = &seen[0].1;
    assert_eq!(b["temperature"], 0.0);
    assert_eq!(b["top_p"], 1.0);
    assert_eq!(b["frequency_penalty"], 0.0);
    assert_eq!(b["presence_penalty"], 0.0);
    assert_eq!(b["repeat_penalty"], 1.0);
    assert_eq!(b["top_k"], 1);
    assert_eq!(b["min_p"], 0);
    // a bad extra is a config error, before any call
    let out = Command::new(env!("CARGO_BIN_EXE_llmsh"))
        .args(["plan", "give worker1 16 more pages", "--backend", "remote", "--endpoint", &f.url])
        .env("XDG_RUNTIME_DIR", &dir)
        .env("LLMSH_REMOTE_EXTRA", "[1]")
        .output()
        .expect("run llmsh");
    assert_eq!(out.status.code(), Some(2));
    let err: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(err["error"]["code"], "backend.config");
}

#[test]
fn a_slow_server_hits_the_call_timeout_and_the_deadline() {
    let dir = tmp("timeout");
    let f = fake_with(|_, _| Reply { delay: Duration::from_secs(5), ..completion(GRANT16, 100) });
    let t0 = Instant::now();
    let out = llmsh(
        &["plan", "give worker1 16 more pages", "--backend", "remote", "--endpoint", &f.url, "--remote-timeout", "0.5"],
        &dir,
    );
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let err: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(err["error"]["code"], "remote.timeout", "{err}");
    // each call answers in 0.4 s with a plan the verifier refuses; the
    // deadline of 1 s ends the feedback rounds early
    let dir = tmp("deadline");
    let big = r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":300}]}"#;
    let f = fake_with(move |_, _| Reply { delay: Duration::from_millis(400), ..completion(big, 100) });
    let t0 = Instant::now();
    let out = llmsh(
        &["plan", "give worker1 more memory", "--backend", "remote", "--endpoint", &f.url, "--remote-deadline", "1"],
        &dir,
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("remote.deadline"), "{stderr}");
    assert!(f.seen.lock().expect("lock").len() < 4);
    assert_eq!(out.status.code(), Some(1), "the last verdict stands: mem.quota");
}

/// the benchmark (like `llmsh shell`) plans many intents with one backend:
/// the deadline is per request, so the fourth intent gets the same second
/// as the first.
#[test]
fn each_request_of_a_long_run_gets_the_whole_deadline() {
    let dir = tmp("bench-deadline");
    let f = fake_with(|_, _| Reply { delay: Duration::from_millis(400), ..completion(GRANT16, 100) });
    let intents = dir.join("intents.jsonl");
    let line = r#"{"intent":"give worker1 16 more pages of memory","session":"ops","expect":{"worker1.pages":"+16"}}"#;
    std::fs::write(&intents, format!("{line}\n").repeat(4)).expect("write intents");
    let file = intents.to_str().expect("utf-8 path");
    let out = llmsh_env(&["bench-intents", "--file", file, "--endpoint", &f.url], &dir, &[("LLMSH_REMOTE_DEADLINE", "1")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(report["outcomes"], json!({"achieved": 4}), "{stderr}");
    assert_eq!(f.seen.lock().expect("lock").len(), 4);
}

/// `bench-intents --policy` benchmarks the policy a researcher names: the
/// hosted systems enforce it and the planner plans against it. the same
/// ask, achieved under the built-in policy, is refused by `mem.quota`
/// under one with a 40-page quota.
#[test]
fn the_benchmark_runs_the_policy_it_is_given() {
    let dir = tmp("bench-policy");
    let f = fake_with(|_, _| completion(GRANT16, 100));
    let intents = dir.join("intents.jsonl");
    std::fs::write(
        &intents,
        "{\"intent\":\"give worker1 16 more pages of memory\",\"session\":\"ops\",\"expect\":{\"worker1.pages\":\"+16\"}}\n",
    )
    .expect("write intents");
    let base = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../system/policy.toml")).expect("policy.toml");
    assert!(base.contains("quota_pages = 256"));
    let small = dir.join("small-quota.toml");
    std::fs::write(&small, base.replace("quota_pages = 256", "quota_pages = 40")).expect("write policy");
    let bench = |policy: Option<&std::path::Path>| {
        let mut args = vec!["bench-intents", "--file", intents.to_str().expect("utf-8 path"), "--endpoint", &f.url];
        if let Some(p) = policy {
            args.extend(["--policy", p.to_str().expect("utf-8 path")]);
        }
        let out = llmsh(&args, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        (v, stderr)
    };
    let (built_in, stderr) = bench(None);
    assert_eq!(built_in["outcomes"], json!({"achieved": 1}), "{stderr}");
    assert_eq!(built_in["policy"], "built-in");
    let (small_run, stderr) = bench(Some(&small));
    assert_eq!(small_run["achieved_with_retries_pct"], json!(0.0), "{stderr}");
    let case = small_run["cases"][0]["retries"]["detail"].to_string();
    assert!(case.contains("mem.quota"), "{case}");
    assert!(small_run["policy"].as_str().is_some_and(|p| p.ends_with("small-quota.toml")));
}

#[test]
fn a_huge_answer_is_not_read_and_a_long_draft_is_cut_before_it_is_echoed() {
    let dir = tmp("huge");
    let f = fake_with(|_, _| Reply { status: 200, body: "x".repeat(3 << 20), delay: Duration::ZERO });
    let out = llmsh(&["plan", "give worker1 16 more pages", "--backend", "remote", "--endpoint", &f.url], &dir);
    let err: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(err["error"]["code"], "remote.too_large");
    assert!(out.stderr.len() < 4096, "{} bytes on stderr", out.stderr.len());
    // a 200 kB draft that is no plan: shown and fed back cut short
    let dir = tmp("longdraft");
    let long: &'static str = Box::leak(format!("{{\"reason\":\"{}\"}}", "a".repeat(200_000)).into_boxed_str());
    let f = fake(vec![long, GRANT16], 100);
    let out = llmsh(&["plan", "give worker1 some memory", "--backend", "remote", "--endpoint", &f.url, "--json"], &dir);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stderr.len() < 16_384, "{} bytes on stderr", out.stderr.len());
    let seen = f.seen.lock().expect("lock");
    assert!(seen[1].1.to_string().len() < 64_000, "the feedback request carries the cut draft");
}

#[test]
fn a_refused_connection_is_remote_connect_and_the_machinery_exit() {
    let dir = tmp("connect");
    // a loopback port nobody listens on: bound, then closed
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let _sys = Stop(dir.clone());
    for cmd in [&["plan"][..], &["apply", "--yes", "--boot"][..]] {
        let args = [cmd, &["give worker1 16 more pages", "--backend", "remote", "--endpoint", &url][..]].concat();
        let out = llmsh(&args, &dir);
        let err: Value = serde_json::from_slice(&out.stdout).expect("json error");
        // not bad input: the network failed, exit 3
        assert_eq!((out.status.code(), err["error"]["code"].as_str()), (Some(3), Some("remote.connect")), "{cmd:?}: {err}");
    }
}

#[test]
fn nonsense_is_no_action_and_asks_no_model() {
    let dir = tmp("nonsense");
    let f = fake(vec![r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker3","pages":24}]}"#], 100);
    let _sys = Stop(dir.clone());
    for cmd in [&["plan"][..], &["apply", "--yes", "--boot"][..]] {
        let args = [cmd, &["banana purple elephant", "--backend", "remote", "--endpoint", &f.url][..]].concat();
        let out = llmsh(&args, &dir);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        let err: Value = serde_json::from_slice(&out.stdout).expect("json error");
        assert_eq!(err["error"]["code"], "intent.no_action");
    }
    assert!(f.seen.lock().expect("lock").is_empty());
    // hybrid without an endpoint says so
    let out = llmsh(&["plan", "banana purple elephant", "--backend", "hybrid"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hybrid without --endpoint"), "{stderr}");
}

#[test]
fn an_out_of_policy_number_is_refused_by_name_not_clamped() {
    let dir = tmp("clamp");
    // the model clamps 150 to 15; the plan that is checked carries 150
    let f = fake(vec![r#"{"reason":"r","actions":[{"op":"process.set_priority","pd":"worker0","priority":15}]}"#], 100);
    let out = llmsh(&["apply", "set worker0 priority to 150", "--json", "--boot", "--backend", "remote", "--endpoint", &f.url], &dir);
    let _sys = Stop(dir.clone());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).expect("receipt");
    assert_eq!(r["executed"], 0);
    assert_eq!(r["violations"][0]["invariant"], "prio.ceiling");
    assert_eq!(r["state_after"]["workers"]["worker0"]["priority"], 50);
    // the schema the server saw lets it write 150
    let seen = f.seen.lock().expect("lock");
    assert!(seen[0].1["response_format"].to_string().contains("150"));
}

#[test]
fn apply_runs_what_was_asked_on_the_named_worker() {
    let dir = tmp("wrongworker");
    let f = fake(vec![r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":20}]}"#], 100);
    let out = llmsh(&["apply", "give worker2 20 more pages", "--json", "--boot", "--backend", "remote", "--endpoint", &f.url], &dir);
    let _sys = Stop(dir.clone());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).expect("receipt");
    assert_eq!(r["state_after"]["workers"]["worker2"]["pages"], 52);
    assert_eq!(r["state_after"]["workers"]["worker1"]["pages"], 32);
    assert_eq!(r["fidelity"]["faithful"], true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unasked") || stderr.contains("not what was asked"), "{stderr}");
}

#[test]
fn an_unfaithful_plan_never_runs_without_a_human_even_with_yes() {
    let dir = tmp("unfaithful");
    // "some memory" names no amount: read in part, so the model's wrong
    // worker cannot be replaced; every round stays on worker0
    let f = fake(vec![r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker0","pages":16}]}"#], 100);
    let out = llmsh(&["apply", "give worker1 some memory", "--yes", "--boot", "--backend", "remote", "--endpoint", &f.url], &dir);
    let _sys = Stop(dir.clone());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("plan.unfaithful") && text.contains("unasked"), "{text}");
    assert_eq!(f.seen.lock().expect("lock").len(), 4, "1 attempt + 3 feedback rounds");
}

/// a llama-cpp-python server started by the test; killed on drop.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// the default model, when it is cached (`llmsh` fetches it on first use).
fn cached_model() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let p = base.join("llm-os/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    p.exists().then_some(p)
}

/// a python that imports `llama_cpp.server`: `LLMSH_LLAMA_PYTHON`, the
/// venv `.ci/run` installs it into, or `python3`.
fn llama_python() -> Option<PathBuf> {
    let venv = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("llm-os/llama-server-venv/bin/python3"));
    std::env::var_os("LLMSH_LLAMA_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(venv)
        .chain([PathBuf::from("python3")])
        .find(|py| {
            Command::new(py)
                .args(["-c", "import llama_cpp.server"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn plans_against_a_real_llama_cpp_python_server() {
    let (Some(python), Some(model)) = (llama_python(), cached_model()) else {
        println!("SKIPPED: llama-cpp-python[server] or the cached default model is missing (.ci/run installs the server into ~/.cache/llm-os/llama-server-venv)");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let _server = Server(
        Command::new(&python)
            .args(["-m", "llama_cpp.server", "--host", "127.0.0.1", "--port", &port.to_string(), "--n_ctx", "4096"])
            .arg("--model")
            .arg(&model)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start llama_cpp.server"),
    );
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(120), "the server did not start in 120 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let url = format!("http://127.0.0.1:{port}/v1");
    let dir = tmp("llamacpp");
    // the grammar form pinned: the server must take llmsh's GBNF (a refusal
    // would be remote.http); the fallback order has its own test
    let out = llmsh_env(
        &["plan", "give worker1 16 more pages of memory", "--backend", "remote", "--endpoint", &url, "--json", "--remote-timeout", "240", "--remote-deadline", "600"],
        &dir,
        &[("LLMSH_REMOTE_FORMAT", "grammar")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan json");
    assert_eq!(plan["actions"], json!([{"op": "memory.grant", "pd": "worker1", "pages": 16}]), "{stderr}");
    // the draft came under llmsh's grammar, which has no free whitespace
    // (the server's own schema converter has)
    let draft = stderr
        .lines()
        .find(|l| l.contains("llmsh: attempt 1"))
        .and_then(|l| l.split_once("): "))
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    assert!(draft.starts_with(r#"{"reason":""#) && !draft.contains(r#"", "#) && !draft.contains(r#"": "#), "{stderr}");
    println!("llama-cpp-python: {}", stderr.lines().filter(|l| l.contains("attempt")).collect::<Vec<_>>().join(" | "));
}
