//! docs/invariants.md as a user runs it: every `llmsh` line of its `sh`
//! blocks runs, in order, from a directory holding the repository's
//! `system/` and `tests/`, with the exit code the line's `# exit N` comment
//! says (0 without one); then the answers the doc states are checked on the
//! json forms of the same commands.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llmsh-invdoc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    for sub in ["system", "tests"] {
        std::os::unix::fs::symlink(repo().join(sub), d.join(sub)).expect("symlink");
    }
    d
}

fn llmsh(dir: &Path, args: &[&str]) -> Output {
    // the example plan's token is made with the dev confirmation key, as
    // the doc says (`LLM_OS_DEV_KEYS=1`)
    Command::new(env!("CARGO_BIN_EXE_llmsh"))
        .current_dir(dir)
        .env("LLM_OS_DEV_KEYS", "1")
        .args(args)
        .output()
        .expect("llmsh runs")
}

/// the `llmsh …` lines of the doc's sh blocks, with their expected exit codes.
fn doc_commands() -> Vec<(Vec<String>, i32)> {
    let doc = std::fs::read_to_string(repo().join("docs/invariants.md")).expect("docs/invariants.md");
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        let Some(cmd) = line.trim().strip_prefix("llmsh ").filter(|_| in_sh) else { continue };
        let (cmd, code) = match cmd.split_once("# exit ") {
            Some((c, n)) => (c, n.trim().parse().expect("exit code")),
            None => (cmd, 0),
        };
        out.push((shell_words(cmd), code));
    }
    out
}

/// splits on spaces, keeping single-quoted words whole (the doc's only quoting).
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[test]
fn every_command_of_the_doc_runs_with_the_exit_code_it_states() {
    let dir = workdir("all");
    let cmds = doc_commands();
    assert!(cmds.len() >= 10, "{} commands in the doc", cmds.len());
    for (args, code) in &cmds {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = llmsh(&dir, &a);
        assert_eq!(
            out.status.code(),
            Some(*code),
            "llmsh {}\nstdout: {}\nstderr: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn the_doc_states_what_the_commands_answer() {
    let dir = workdir("answers");
    // a parse error names the column.
    let out = llmsh(&dir, &["check", "--policy", "tests/policies/broken.toml", "tests/plans/approved/grant-zero.json"]);
    let v = json_of(&out);
    assert_eq!(v["error"]["code"], "policy.invalid");
    assert!(v["error"]["message"].as_str().unwrap_or("").contains("at column 24: unexpected end"), "{v}");
    // the third stop is rejected, naming the invariant; the default approves.
    let out = llmsh(&dir, &["check", "--policy", "tests/policies/max-stopped.toml", "tests/policies/stop-three.json"]);
    let v = json_of(&out);
    assert_eq!(v["violations"][0]["invariant"], "proc.max_stopped", "{v}");
    assert_eq!(v["violations"][0]["action"], 2);
    assert_eq!(v["violations"].as_array().map(Vec::len), Some(1));
    // proving: every obligation proved, the policy's own among them.
    let out = llmsh(&dir, &["prove", "--json", "--policy", "tests/policies/max-stopped.toml", "--cex-dir", "cex"]);
    let v = json_of(&out);
    assert_eq!(v["failed"], 0, "{v}");
    let names: Vec<&str> = v["obligations"].as_array().into_iter().flatten().filter_map(|o| o["name"].as_str()).collect();
    for n in [
        "consistency/proc.max_stopped",
        "soundness/process.stop/proc.max_stopped",
        "completeness/process.stop/proc.max_stopped",
        "plan/soundness/proc.max_stopped",
        "plan/naming/proc.max_stopped",
        "vacuity/process.stop",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    assert!(v["total_ms"].as_f64().is_some_and(|t| t < 60_000.0), "{}", v["total_ms"]);
    // the claim is refuted exactly at process.stop, and the replay approves it.
    let out = llmsh(&dir, &["prove", "--json", "--policy", "tests/policies/max-stopped-claim.toml", "--cex-dir", "cex"]);
    let v = json_of(&out);
    let failed: Vec<&str> = v["obligations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["result"] != "proved")
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(failed, ["claim/process.stop/proc.max_stopped"]);
    let base = "cex/claim_process.stop_proc.max_stopped";
    let (st, pl) = (format!("{base}.state.json"), format!("{base}.plan.json"));
    let out = llmsh(&dir, &["check", "--policy", "tests/policies/max-stopped-claim.toml", "--state", &st, &pl]);
    let v = json_of(&out);
    assert_eq!(v["approved"], true);
    let stopped = v["state_after"]["workers"].as_object().map_or(0, |w| w.values().filter(|w| w["running"] == false).count());
    assert_eq!(stopped, 3, "{v}");
    // comparing: A implies B, B does not imply A, the difference replays both ways.
    let out = llmsh(
        &dir,
        &["prove", "--json", "--compare", "tests/policies/max-stopped.toml", "system/policy.toml", "--cex-dir", "cex"],
    );
    let v = json_of(&out);
    assert_eq!((v["a_implies_b"].clone(), v["b_implies_a"].clone(), v["equivalent"].clone()), (true.into(), false.into(), false.into()), "{v}");
    let d = &v["differences"][0];
    assert_eq!((d["accepted_by"].as_str(), d["what"].as_str()), (Some("b"), Some("process.stop")));
    assert_eq!(d["state_file"], "cex/compare-b-process.stop.state.json");
    assert_eq!(d["rejecting"]["violations"][0], "proc.max_stopped");
    let out = llmsh(&dir, &["prove", "--json", "--compare", "system/policy.toml", "system/policy.toml", "--cex-dir", "cex"]);
    assert_eq!(json_of(&out)["equivalent"], true);
    // asking: possible with a witness whose state after has the pages, impossible under the strict policy.
    let out = llmsh(&dir, &["prove", "--json", "--query", "worker1.pages > 200", "--cex-dir", "cex"]);
    let v = json_of(&out);
    assert_eq!(v["possible"], true, "{v}");
    let out = llmsh(&dir, &["check", "--state", "cex/query.state.json", "cex/query.plan.json"]);
    let v = json_of(&out);
    assert!(v["state_after"]["workers"]["worker1"]["pages"].as_u64().is_some_and(|p| p > 200), "{v}");
    let out = llmsh(
        &dir,
        &["prove", "--json", "--query", "count(w, !w.running) >= 3", "--policy", "tests/policies/max-stopped.toml"],
    );
    assert_eq!(json_of(&out)["possible"], false);
    // bad queries are bad input with the column.
    let out = llmsh(&dir, &["prove", "--json", "--query", "worker1.pages >"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json_of(&out);
    assert_eq!(v["error"]["code"], "query.syntax");
    assert!(v["error"]["message"].as_str().unwrap_or("").contains("at column 16"), "{v}");
    let out = llmsh(&dir, &["prove", "--query", "true", "--op", "memory.steal"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_of(&out)["error"]["code"], "query.unknown_op");
}
