//! a policy-file invariant enforced on seL4: the image built with
//! `LLM_OS_POLICY=tests/policies/max-stopped.toml` (system/policy.toml plus
//! `"proc.max_stopped" = "count(w, !w.running) <= 2"`) boots in qemu, and
//! its verifier PD refuses the plan that would stop a third worker, naming
//! `proc.max_stopped`, with nothing executed; two stops pass. the host's
//! own policy (the default, without the invariant) would approve the plan,
//! so the refusal is the PD's.
//!
//! needs the Microkit SDK (`MICROKIT_SDK`) and `qemu-system-aarch64`; without
//! them it prints one `SKIPPED: <why>` line and returns, or fails under
//! `CI=true`. it rebuilds the PDs with the example policy; the next default
//! image build rebuilds them back.

use serde_json::{json, Value};

mod qemu_harness;
use qemu_harness::{cannot_run, plan_file, repo, Llmsh, Qemu};

fn stops(id: u64, workers: &[&str]) -> Value {
    let actions: Vec<Value> = workers.iter().map(|w| json!({"op": "process.stop", "pd": w})).collect();
    json!({"version": 1, "request_id": id, "session": "admin", "reason": "stop workers", "actions": actions})
}

#[test]
fn qemu_verifier_enforces_a_policy_file_invariant() {
    if cannot_run().is_some() {
        return;
    }
    let run_dir = std::env::temp_dir().join(format!("llm-os-qemu-policy-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir).expect("run dir");
    let sh = Llmsh { run_dir: run_dir.clone(), policy: Some(repo().join("tests/policies/max-stopped.toml")) };

    let (code, boot, out) = sh.cmd(&["boot", "--system", "qemu"]);
    assert_eq!(code, 0, "boot failed: {out}");
    let _qemu = Qemu(boot["pid"].as_u64().expect("pid") as u32);

    // three stops: the PD rejects the third, naming the policy file's invariant.
    let three = plan_file(&run_dir, "three.json", &stops(1, &["worker0", "worker1", "worker2"]));
    let (code, r, out) = sh.cmd(&["apply", "--system", "qemu", "--yes", "--json", "--plan", three.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!((r["approved"].as_bool(), r["executed"].as_u64()), (Some(false), Some(0)), "{out}");
    let names: Vec<(u64, &str)> = r["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["action"].as_u64()?, v["invariant"].as_str()?)))
        .collect();
    assert_eq!(names, [(2, "proc.max_stopped")], "{out}");
    let (_, st, out) = sh.cmd(&["status"]);
    let running = |st: &Value| -> usize {
        st["state"]["workers"].as_object().map_or(0, |w| w.values().filter(|w| w["running"] == true).count())
    };
    let workers = st["state"]["workers"].as_object().map_or(0, |w| w.len());
    assert!(workers >= 4, "the test stops worker0..worker3: {out}");
    assert_eq!(running(&st), workers, "nothing was stopped: {out}");

    // two stops keep the invariant and run.
    let two = plan_file(&run_dir, "two.json", &stops(2, &["worker0", "worker1"]));
    let (code, r, out) = sh.cmd(&["apply", "--system", "qemu", "--yes", "--json", "--plan", two.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!((r["approved"].as_bool(), r["executed"].as_u64()), (Some(true), Some(2)), "{out}");
    // and a third stop on its own is refused.
    let one = plan_file(&run_dir, "one.json", &stops(3, &["worker3"]));
    let (code, r, out) = sh.cmd(&["apply", "--system", "qemu", "--yes", "--json", "--plan", one.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(r["violations"][0]["invariant"], "proc.max_stopped", "{out}");
    let (_, st, out) = sh.cmd(&["status"]);
    assert_eq!(running(&st), workers - 2, "{out}");
    let (code, _, out) = sh.cmd(&["boot", "--stop"]);
    assert_eq!(code, 0, "{out}");
    let _ = std::fs::remove_dir_all(&run_dir);
}
