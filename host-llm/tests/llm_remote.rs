//! the remote backend against a fake openai-compatible server on 127.0.0.1
//! (spawned here, loopback only), through the real `llmsh` binary: the
//! request carries the draft schema, rejections are fed back, the token
//! budget holds, and `apply "INTENT"` runs end to end on the hosted system
//! with an audit trail that verifies.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};

mod fake_openai;
use fake_openai::fake;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llmsh-remote-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn llmsh(args: &[&str], dir: &PathBuf) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmsh"))
        .args(args)
        .env("XDG_RUNTIME_DIR", dir)
        .env("XDG_STATE_HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("cfg"))
        .env("LLMSH_API_KEY", "test-key")
        .env_remove("LLMSH_ENDPOINT")
        .env_remove("LLMSH_AUDIT_LOG")
        .env_remove("LLMSH_STATE")
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
    assert!(body["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .contains("worker1: running"));
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
fn rejections_end_after_three_retries_with_exit_1() {
    let dir = tmp("retries");
    let f = fake(
        vec![r#"{"reason":"r","actions":[{"op":"process.stop","pd":"worker1"}]}"#],
        100,
    );
    let out = llmsh(
        &[
            "plan",
            "stop worker1",
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
        4,
        "1 attempt + 3 retries"
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
    assert_eq!(out.status.code(), Some(2));
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
