//! what a person sees, through the binary: receipts in words (golden
//! files), the `--json` form untouched, who asked in the audit log, the
//! completions and the man page, `llmsh top --once`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn llmsh(rt: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmsh"))
        .args(args)
        .env("XDG_RUNTIME_DIR", rt)
        .env("XDG_CONFIG_HOME", rt.join("cfg"))
        .env("XDG_STATE_HOME", rt)
        .env("LLMSH_AUDIT_LOG", rt.join("audit.jsonl"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("llmsh runs")
}

/// stops the system `--boot` started in the runtime dir.
struct Stop(PathBuf);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = llmsh(&self.0, &["boot", "--stop"]);
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llmsh-ux-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// compares with `tests/golden/NAME`; `LLMSH_BLESS=1` rewrites it.
fn golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("LLMSH_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(got == want, "{name} differs from the golden file\n--- want\n{want}--- got\n{got}");
}

const GRANT: &str = r#"{"version":1,"request_id":7,"session":"ops","reason":"make room","actions":[
  {"op":"memory.grant","pd":"worker1","pages":16},{"op":"process.set_budget","pd":"worker1","budget_us":2000,"period_us":10000},
  {"op":"timer.set_periodic","pd":"worker1","period_us":20000},{"op":"system.query"}]}"#;
const TOO_FAST: &str = r#"{"version":1,"request_id":3,"session":"ops","reason":"","actions":[
  {"op":"timer.set_periodic","pd":"worker2","period_us":10}]}"#;

fn plan_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn an_applied_plan_reads_as_words_with_a_table_of_what_changed() {
    let rt = tmp("words");
    let _sys = Stop(rt.clone());
    let out = llmsh(&rt, &["apply", "--boot", "--plan", &plan_file(&rt, "grant.json", GRANT)]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    golden("apply-grant.txt", &String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_refused_plan_names_the_invariant_its_limit_and_the_value() {
    let rt = tmp("refused");
    let _sys = Stop(rt.clone());
    let out = llmsh(&rt, &["apply", "--boot", "--plan", &plan_file(&rt, "fast.json", TOO_FAST)]);
    assert_eq!(out.status.code(), Some(1));
    golden("apply-refused.txt", &String::from_utf8_lossy(&out.stdout));
}

#[test]
fn json_receipts_keep_their_machine_form() {
    let rt = tmp("json");
    let _sys = Stop(rt.clone());
    let out = llmsh(&rt, &["apply", "--boot", "--plan", &plan_file(&rt, "grant.json", GRANT), "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "one json line:\n{text}");
    let r: Value = serde_json::from_str(&text).unwrap();
    let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    // `epoch` and `keys` say which boot and which keys (a dev-key system adds `dev_keys`)
    assert_eq!(keys, ["approved", "epoch", "executed", "failed_action", "keys", "observed_after", "request_id", "state_after", "violations"]);
    let mut w1: Vec<&str> = r["observed_after"]["workers"]["worker1"].as_object().unwrap().keys().map(String::as_str).collect();
    w1.sort_unstable();
    assert_eq!(w1, ["consumed_us", "faults", "progress", "restarts", "ticks"], "receipts gain no fields");
    assert!(!text.contains("what changed"));
}

#[test]
fn the_audit_log_names_the_os_user_who_asked() {
    let rt = tmp("who");
    let _sys = Stop(rt.clone());
    let out = llmsh(&rt, &["apply", "--boot", "--plan", &plan_file(&rt, "grant.json", GRANT), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let want = passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.get(2) == Some(&uid.to_string().as_str())).then(|| f[0].to_string())
        })
        .unwrap_or(format!("uid:{uid}"));
    let log = std::fs::read_to_string(rt.join("audit.jsonl")).unwrap();
    assert!(log.lines().count() >= 2);
    for line in log.lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        assert_eq!(rec["user"], want.as_str(), "{line}");
        assert_eq!(rec["uid"], uid);
    }
    // the chain still verifies with the new fields
    assert_eq!(llmsh(&rt, &["audit", "--verify"]).status.code(), Some(0));
}

#[test]
fn completions_and_the_man_page_come_from_the_clap_definitions() {
    let rt = tmp("gen");
    for shell in ["bash", "zsh", "fish"] {
        let out = llmsh(&rt, &["completions", shell]);
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        for sub in ["apply", "top", "status", "completions", "system"] {
            assert!(text.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let bad = llmsh(&rt, &["completions", "cmd.exe"]);
    assert_eq!(bad.status.code(), Some(2));
    let man = llmsh(&rt, &["man"]);
    assert_eq!(man.status.code(), Some(0));
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(text.starts_with(".ie") || text.contains(".TH llmsh"), "{}", &text[..text.len().min(200)]);
    for sub in ["top", "apply", "completions"] {
        assert!(text.contains(sub), "man page lacks {sub}");
    }
}

#[test]
fn top_once_prints_one_frame_of_the_running_system() {
    let rt = tmp("top");
    let no = llmsh(&rt, &["top", "--once"]);
    // no system running is the machinery's failure (`system.down`), exit 3
    assert_eq!(no.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&no.stdout).contains("no system to read"));
    assert_eq!(llmsh(&rt, &["boot"]).status.code(), Some(0));
    let _stop = Stop(rt.clone());
    let applied = llmsh(&rt, &["apply", "--boot", "--plan", &plan_file(&rt, "grant.json", GRANT), "--json"]);
    assert_eq!(applied.status.code(), Some(0));
    let out = llmsh(&rt, &["top", "--once"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for want in ["system hosted", "last request 7", "worker1", "2000/10000 µs", " 48/256", "20000 µs", "#7", "approved", "4 done", "make room"] {
        assert!(text.contains(want), "frame lacks `{want}`:\n{text}");
    }
}
