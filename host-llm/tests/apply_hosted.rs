//! `llmsh apply` / `boot` / `status` against the hosted system, as a user
//! runs them: `llmsh boot` starts llm-osd with the system, apply and status
//! go through it.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn llmsh(rt: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmsh"))
        .args(args)
        .env("XDG_RUNTIME_DIR", rt)
        .env("XDG_CONFIG_HOME", rt.join("cfg"))
        // this installation's keys, never the public dev keys, unless a test asks
        .env_remove("LLM_OS_DEV_KEYS")
        // the audit log goes beside the runtime dir, never into the user's.
        .env("LLMSH_AUDIT_LOG", rt.join("audit.jsonl"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("llmsh runs")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llmsh-apply-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// a booted system, stopped when dropped.
struct Booted(PathBuf);

impl Drop for Booted {
    fn drop(&mut self) {
        let _ = llmsh(&self.0, &["boot", "--stop"]);
    }
}

fn booted(name: &str) -> (PathBuf, Booted) {
    let rt = tmp(name);
    let out = llmsh(&rt, &["boot"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    (rt.clone(), Booted(rt))
}

fn write_plan(dir: &std::path::Path, name: &str, json: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, json).unwrap();
    p.to_string_lossy().into_owned()
}

const GRANT: &str = r#"{"version":1,"request_id":7,"session":"ops","reason":"r","actions":[
  {"op":"memory.grant","pd":"worker1","pages":16},{"op":"process.set_priority","pd":"worker1","priority":90},
  {"op":"timer.set_periodic","pd":"worker1","period_us":20000},{"op":"system.query"}]}"#;
const STOP: &str = r#"{"version":1,"request_id":9,"session":"admin","reason":"r","actions":[
  {"op":"process.stop","pd":"worker2"},{"op":"memory.reclaim","pd":"worker2","pages":8}]}"#;
const TOO_MUCH: &str = r#"{"version":1,"request_id":3,"session":"ops","reason":"r","actions":[
  {"op":"memory.grant","pd":"worker0","pages":300}]}"#;

#[test]
fn apply_prints_the_receipt_of_the_running_system() {
    let (rt, _sys) = booted("receipt");
    let plan = write_plan(&rt, "grant.json", GRANT);
    let out = llmsh(&rt, &["apply", "--plan", &plan, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["approved"], true);
    assert_eq!(r["executed"], 4);
    assert_eq!(r["failed_action"], Value::Null);
    assert_eq!(r["request_id"], 7);
    let w1 = &r["state_after"]["workers"]["worker1"];
    assert_eq!(
        (
            w1["pages"].as_u64(),
            w1["priority"].as_u64(),
            w1["timer_period_us"].as_u64()
        ),
        (Some(48), Some(90), Some(20000))
    );
    assert_eq!(r["state_after"]["last_request_id"], 7);
}

#[test]
fn rejected_plan_exits_1_with_named_violations() {
    let (rt, _sys) = booted("reject");
    let plan = write_plan(&rt, "too-much.json", TOO_MUCH);
    let out = llmsh(&rt, &["apply", "--plan", &plan, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["approved"], false);
    assert_eq!(r["executed"], 0);
    assert_eq!(r["violations"][0]["invariant"], "mem.quota");
    assert_eq!(r["violations"][0]["action"], 0);
    assert!(r["violations"][0]["detail"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert_eq!(r["state_after"]["workers"]["worker0"]["pages"], 32);
}

#[test]
fn destructive_plan_without_a_yes_is_declined_and_with_yes_runs() {
    let (rt, _sys) = booted("destructive");
    let plan = write_plan(&rt, "stop.json", STOP);
    let out = llmsh(&rt, &["apply", "--plan", &plan, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("apply.declined"));
    let out = llmsh(&rt, &["apply", "--plan", &plan, "--yes", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["state_after"]["workers"]["worker2"]["running"], false);
    assert_eq!(r["state_after"]["workers"]["worker2"]["pages"], 24);
}

#[test]
fn a_plan_confirmed_with_llmsh_confirm_runs_without_asking() {
    let (rt, _sys) = booted("confirmed");
    let plan = write_plan(&rt, "stop.json", STOP);
    let out = llmsh(&rt, &["confirm", &plan]);
    assert_eq!(out.status.code(), Some(0));
    let signed = write_plan(&rt, "signed.json", &String::from_utf8_lossy(&out.stdout));
    let first = llmsh(&rt, &["apply", "--plan", &signed, "--json"]);
    // a forged token is no yes: without --yes it is declined, nothing runs.
    let mut forged: Value = serde_json::from_slice(&std::fs::read(&signed).unwrap()).unwrap();
    forged["confirmation"] = Value::String("ab".repeat(32));
    forged["request_id"] = Value::from(10);
    let forged = write_plan(&rt, "forged.json", &forged.to_string());
    let out = llmsh(&rt, &["apply", "--plan", &forged, "--json"]);
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stdout));
    let r: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(r["approved"], true);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("apply.declined"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn bad_plan_json_exits_2() {
    let (rt, _sys) = booted("bad");
    let plan = write_plan(
        &rt,
        "bad.json",
        r#"{"version":1,"request_id":1,"session":"ops","reason":"r","actions":[{"op":"memory.explode"}]}"#,
    );
    let out = llmsh(&rt, &["apply", "--plan", &plan, "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .get("error")
        .is_some());
}

#[test]
fn boot_then_status_and_apply_attach_to_the_running_system() {
    let rt = tmp("boot");
    let out = llmsh(&rt, &["status"]);
    assert_eq!(out.status.code(), Some(3), "no system yet");
    let out = llmsh(&rt, &["boot"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let _sys = Booted(rt.clone());
    let booted: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(booted["pid"].as_u64().is_some(), "{booted}");
    // a second boot reports the running one
    let again: Value = serde_json::from_slice(&llmsh(&rt, &["boot"]).stdout).unwrap();
    assert_eq!((again["booted"].as_bool(), again["pid"].as_u64()), (Some(false), booted["pid"].as_u64()));
    let plan = write_plan(&rt, "grant.json", GRANT);
    let first = llmsh(&rt, &["apply", "--plan", &plan, "--json"]);
    // the same plan again is the host's retry of request 7: the verifier
    // answers with the stored receipt and nothing runs twice
    let again = llmsh(&rt, &["apply", "--plan", &plan, "--json"]);
    let status = llmsh(&rt, &["status"]);
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(again.status.code(), Some(0));
    let r1: Value = serde_json::from_slice(&first.stdout).unwrap();
    let mut r2: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(r2["retry"], true, "said to be a retry");
    r2.as_object_mut().unwrap().remove("retry");
    assert_eq!(r2, r1, "the stored receipt");
    let s: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(s["state"]["last_request_id"], 7);
    assert_eq!(s["state"]["workers"]["worker1"]["pages"], 48);
    let out = llmsh(&rt, &["boot", "--stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(llmsh(&rt, &["status"]).status.code(), Some(3), "stopped");
}

#[test]
fn a_confirmed_stop_that_ran_is_refused_after_the_system_restarts() {
    use std::os::unix::fs::PermissionsExt;
    let rt = tmp("reboot");
    let boot = |rt: &std::path::Path| -> String {
        let out = llmsh(rt, &["boot"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = boot(&rt);
    let _sys = Booted(rt.clone());
    // first use: the keys are made, said on stderr, 0600 in the config dir
    assert!(stderr.contains("generated"), "{stderr}");
    for f in ["plan.key", "confirm.key"] {
        let m = std::fs::metadata(rt.join("cfg/llm-os").join(f)).expect("key file");
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{f}");
    }
    let status = |rt: &std::path::Path| -> Value {
        serde_json::from_slice(&llmsh(rt, &["status"]).stdout).unwrap_or(Value::Null)
    };
    let before = status(&rt);
    let plan = write_plan(&rt, "stop.json", STOP);
    let out = llmsh(&rt, &["confirm", &plan]);
    let signed = write_plan(&rt, "signed.json", &String::from_utf8_lossy(&out.stdout));
    let first = llmsh(&rt, &["apply", "--plan", &signed, "--json"]);
    // the system restarts: a new boot, a new epoch
    assert_eq!(llmsh(&rt, &["boot", "--stop"]).status.code(), Some(0));
    boot(&rt);
    let after = status(&rt);
    // the human's earlier yes is in the file; --yes adds no new token to a plan that has one
    let again = llmsh(&rt, &["apply", "--plan", &signed, "--yes", "--json"]);
    let end = status(&rt);

    assert_eq!(before["keys"], "installation", "{before}");
    assert!(before.get("dev_keys").is_none());
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stdout));
    assert_ne!(before["epoch"], after["epoch"], "a new boot, a new epoch");
    assert_eq!(after["state"]["workers"]["worker2"]["running"], true);
    assert_eq!(again.status.code(), Some(1), "{}", String::from_utf8_lossy(&again.stdout));
    let r: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(r["approved"], false);
    assert_eq!(r["violations"][0]["invariant"], "auth.confirm", "{r}");
    assert_eq!(end["state"]["workers"]["worker2"]["running"], true, "nothing ran");
}

#[test]
fn dev_keys_are_used_only_when_asked_for_and_then_said_everywhere() {
    let rt = tmp("devkeys");
    let plan = write_plan(&rt, "grant.json", GRANT);
    let dev = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_llmsh"))
            .args(args)
            .env("XDG_RUNTIME_DIR", &rt)
            .env("XDG_CONFIG_HOME", rt.join("cfg"))
            .env("LLMSH_AUDIT_LOG", rt.join("audit.jsonl"))
            .env("LLM_OS_DEV_KEYS", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = dev(&["apply", "--plan", &plan, "--boot", "--json"]);
    let _sys = Booted(rt.clone());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((r["keys"].as_str(), r["dev_keys"].as_bool()), (Some("dev"), Some(true)), "{r}");
    let s: Value = serde_json::from_slice(&dev(&["status"]).stdout).unwrap();
    assert_eq!((s["keys"].as_str(), s["dev_keys"].as_bool()), (Some("dev"), Some(true)), "{s}");
    assert!(!rt.join("cfg/llm-os/plan.key").exists(), "no installation key is made for a dev run");
    // without the flag: the installation's keys, and the receipt says so
    assert_eq!(llmsh(&rt, &["boot", "--stop"]).status.code(), Some(0));
    let out = llmsh(&rt, &["apply", "--plan", &plan, "--boot", "--json"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["keys"], "installation", "{r}");
    assert!(r.get("dev_keys").is_none());
}
