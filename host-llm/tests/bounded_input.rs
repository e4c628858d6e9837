//! every input goes through a size cap before it is parsed: an endless or
//! huge input is refused after the cap, in constant memory, and a state that
//! breaks an invariant or disagrees with the policy is bad input.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PLAN: &str = r#"{"version":1,"request_id":1,"session":"ops","reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":16}]}"#;

fn llmsh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmsh"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("llmsh runs")
}

fn error_code(out: &Output) -> String {
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("json on stdout: {}", String::from_utf8_lossy(&out.stdout)));
    v["error"]["code"].as_str().unwrap_or("").to_owned()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("llmsh-bounded-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn an_endless_plan_is_plan_size_at_once() {
    let t = Instant::now();
    let out = llmsh(&["check", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(error_code(&out), "plan.size");
    // reading /dev/zero to its end never ends: an answer means the cap held.
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[test]
fn a_huge_plan_on_stdin_is_not_read_past_the_cap() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmsh"))
        .args(["check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("llmsh runs");
    let mut stdin = child.stdin.take().unwrap();
    // offer 512 MiB; llmsh stops reading after 64 KiB + 1 and exits, so the
    // pipe breaks long before (at most the cap plus the pipe's buffer).
    let writer = std::thread::spawn(move || {
        let chunk = vec![b' '; 1 << 16];
        let mut sent: u64 = 0;
        while sent < 512 << 20 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    let out = child.wait_with_output().unwrap();
    let sent = writer.join().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(error_code(&out), "plan.size");
    assert!(sent < 16 << 20, "llmsh took {sent} bytes of a plan capped at 64 KiB");
}

#[test]
fn a_plan_at_the_cap_is_parsed_and_one_byte_more_is_not() {
    let d = tmp("cap");
    // 64 KiB exactly: the plan padded with spaces is still a plan.
    let mut at = PLAN.as_bytes().to_vec();
    at.resize(64 * 1024, b' ');
    std::fs::write(d.join("at.json"), &at).unwrap();
    let out = llmsh(&["check", d.join("at.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    at.push(b' ');
    std::fs::write(d.join("over.json"), &at).unwrap();
    let out = llmsh(&["check", d.join("over.json").to_str().unwrap()]);
    assert_eq!((out.status.code(), error_code(&out).as_str()), (Some(2), "plan.size"));
}

#[test]
fn endless_policy_key_and_state_files_are_refused_with_their_codes() {
    let d = tmp("kinds");
    let plan = d.join("p.json");
    std::fs::write(&plan, PLAN).unwrap();
    let plan = plan.to_str().unwrap();
    for (flag, code) in [("--policy", "policy.size"), ("--key-file", "key.invalid"), ("--state", "state.size")] {
        let out = llmsh(&["check", plan, flag, "/dev/zero"]);
        assert_eq!((out.status.code(), error_code(&out).as_str()), (Some(2), code), "{flag}");
    }
}

fn state_json(pool: u64, w1_pages: u64) -> String {
    let w = |pages: u64| {
        format!(r#"{{"running":true,"priority":50,"budget_us":1000,"period_us":10000,"pages":{pages},"timer_period_us":null}}"#)
    };
    format!(
        r#"{{"workers":{{"worker0":{},"worker1":{},"worker2":{},"worker3":{}}},"pool_pages":{pool},"last_request_id":0}}"#,
        w(32),
        w(w1_pages),
        w(32),
        w(32)
    )
}

#[test]
fn a_state_that_disagrees_with_the_policy_or_breaks_an_invariant_is_bad_input() {
    let d = tmp("state");
    let plan = d.join("p.json");
    std::fs::write(&plan, PLAN).unwrap();
    let plan = plan.to_str().unwrap();
    let cases = [
        // a pool larger than the policy's: 1000 pages that do not exist
        (state_json(100_000, 200), "state.policy"),
        (state_json(511, 32), "state.policy"),
        // worker1 above its quota
        (state_json(512, 300), "state.invariant"),
    ];
    for (i, (state, code)) in cases.iter().enumerate() {
        let p = d.join(format!("s{i}.json"));
        std::fs::write(&p, state).unwrap();
        let out = llmsh(&["check", plan, "--state", p.to_str().unwrap()]);
        assert_eq!((out.status.code(), error_code(&out).as_str()), (Some(2), *code), "{state}");
    }
    // the policy's own state is fine
    let p = d.join("ok.json");
    std::fs::write(&p, state_json(512, 32)).unwrap();
    let out = llmsh(&["check", plan, "--state", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}
