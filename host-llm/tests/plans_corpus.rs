//! runs `llmsh check` on every plan of tests/plans and compares exit code,
//! verdict, first failing action, the exact set of invariant names, and the
//! error code of malformed input with tests/plans/expect.json.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/plans")
}

#[test]
fn every_plan_in_the_corpus_gets_its_expected_verdict() {
    let dir = corpus();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expect.json")).expect("expect.json")).expect("manifest json");
    let manifest = manifest.as_object().expect("manifest is an object");
    assert!(manifest.len() >= 80, "corpus shrank to {} cases", manifest.len());
    let mut failures = Vec::new();
    for (path, want) in manifest {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmsh"));
        // the corpus's tokens are made with the public dev key
        cmd.env("LLM_OS_DEV_KEYS", "1").arg("check").arg(dir.join(path));
        if let Some(state) = want.get("state").and_then(Value::as_str) {
            cmd.arg("--state").arg(dir.join(state));
        }
        let out = cmd.output().expect("run llmsh");
        let code = out.status.code().expect("exit code");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let got: Value = match serde_json::from_str(stdout.trim()) {
            Ok(v) => v,
            Err(_) => {
                failures.push(format!("{path}: stdout is not one json value: {stdout}"));
                continue;
            }
        };
        let want_exit = want["exit"].as_i64().expect("exit");
        if i64::from(code) != want_exit {
            failures.push(format!("{path}: exit {code}, want {want_exit}: {stdout}"));
            continue;
        }
        match want_exit {
            0 => {
                if got["approved"] != Value::Bool(true) || !got["state_after"].is_object() {
                    failures.push(format!("{path}: want approved with state_after: {stdout}"));
                }
            }
            1 => {
                let v = got["violations"].as_array().cloned().unwrap_or_default();
                let names: BTreeSet<&str> = v.iter().filter_map(|x| x["invariant"].as_str()).collect();
                let want_names: BTreeSet<&str> =
                    want["invariants"].as_array().expect("invariants").iter().filter_map(Value::as_str).collect();
                let first = v.iter().filter_map(|x| x["action"].as_u64()).max();
                if got["approved"] != Value::Bool(false)
                    || names != want_names
                    || first != want["action"].as_u64()
                    || got.get("state_after").is_some()
                    || v.iter().any(|x| x["detail"].as_str().is_none_or(str::is_empty))
                {
                    failures.push(format!("{path}: want action {} {want_names:?}: {stdout}", want["action"]));
                }
            }
            _ => {
                if got["error"]["code"] != want["error"] || got["error"]["message"].as_str().is_none_or(str::is_empty) {
                    failures.push(format!("{path}: want error {}: {stdout}", want["error"]));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} corpus failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn confirm_fills_a_token_that_check_accepts_and_that_binds_the_plan() {
    let unsigned = r#"{"version":1,"request_id":5,"session":"admin","reason":"r","actions":[{"op":"process.stop","pd":"worker3"}]}"#;
    let home = std::env::temp_dir().join(format!("llmsh-confirm-home-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).expect("home");
    let tmp = home.join("plan.json");
    std::fs::write(&tmp, unsigned).expect("write");
    // a fresh installation: its own config dir (keys made on first use), no running system
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(env!("CARGO_BIN_EXE_llmsh"))
            .args(args)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env_remove("LLM_OS_DEV_KEYS")
            .output()
            .expect("run");
        (out.status.code().expect("code"), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, unsigned_verdict) = run(&["check".as_ref(), tmp.as_os_str()]);
    assert_eq!(code, 1, "{unsigned_verdict}");
    assert!(unsigned_verdict.contains("auth.confirm"));
    let (code, signed) = run(&["confirm".as_ref(), tmp.as_os_str()]);
    assert_eq!(code, 0, "{signed}");
    let v: Value = serde_json::from_str(&signed).expect("json");
    assert_eq!(v["confirmation"].as_str().map(str::len), Some(64));
    std::fs::write(&tmp, &signed).expect("write");
    let (code, out) = run(&["check".as_ref(), tmp.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    // the same token on a plan with another request id is rejected.
    let moved = signed.replace("\"request_id\":5", "\"request_id\":6");
    assert_ne!(moved, signed);
    std::fs::write(&tmp, moved).expect("write");
    let (code, out) = run(&["check".as_ref(), tmp.as_os_str()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("auth.confirm"));
    // the token was made with this installation's key (generated 0600 on
    // first use), not the public dev key; another key file refuses it
    use std::os::unix::fs::PermissionsExt;
    let key = home.join("config/llm-os/confirm.key");
    assert_eq!(std::fs::metadata(&key).expect("keygen on first use").permissions().mode() & 0o777, 0o600);
    let other = home.join("other.key");
    std::fs::write(&other, "00".repeat(32)).expect("write key");
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&tmp, &signed).expect("write");
    let (code, _) = run(&["check".as_ref(), tmp.as_os_str(), "--key-file".as_ref(), key.as_os_str()]);
    assert_eq!(code, 0);
    let (code, out) = run(&["check".as_ref(), tmp.as_os_str(), "--key-file".as_ref(), other.as_os_str()]);
    assert_eq!(code, 1, "{out}");
    let dev = Command::new(env!("CARGO_BIN_EXE_llmsh"))
        .args(["check".as_ref(), tmp.as_os_str()])
        .env("LLM_OS_DEV_KEYS", "1")
        .output()
        .expect("run");
    assert_eq!(dev.status.code(), Some(1), "a dev-key check refuses an installation token");
    // a key file others can read is refused as bad input
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, out) = run(&["check".as_ref(), tmp.as_os_str(), "--key-file".as_ref(), other.as_os_str()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("key.invalid"), "{out}");
    // a token for a running boot is not the offline one
    let (code, out) = run(&["check".as_ref(), tmp.as_os_str(), "--epoch".as_ref(), "77".as_ref()]);
    assert_eq!(code, 1, "{out}");
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn bad_state_and_policy_files_are_bad_input() {
    let dir = corpus();
    let plan = dir.join("approved/grant-zero.json");
    let tmp = std::env::temp_dir().join(format!("llmsh-state-{}.json", std::process::id()));
    let cases: &[(&str, &str)] = &[
        (r#"{"workers":{},"pool_pages":512,"last_request_id":0}"#, "state.missing_worker"),
        ("{", "json.syntax"),
    ];
    for (text, code) in cases {
        std::fs::write(&tmp, text).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_llmsh"))
            .args(["check".as_ref(), plan.as_os_str(), "--state".as_ref(), tmp.as_os_str()])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2));
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["error"]["code"], *code);
    }
    std::fs::write(&tmp, "[limits]\nworkers = 5\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_llmsh"))
        .args(["check".as_ref(), plan.as_os_str(), "--policy".as_ref(), tmp.as_os_str()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["error"]["code"], "policy.syntax");
    // the shipped policy file reads back as the compiled-in default.
    let policy = dir.join("../../system/policy.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_llmsh"))
        .args(["check".as_ref(), plan.as_os_str(), "--policy".as_ref(), policy.as_os_str()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let _ = std::fs::remove_file(&tmp);
}
