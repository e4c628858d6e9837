//! docs/architecture.md's walk-through "adding a capability PD", followed
//! as the doc writes it: its edits are read from the doc (each fenced block
//! after a `<!-- walk-through step N: FILE, WHERE -->` comment), so the doc
//! and this test cannot drift apart.
//!
//! fast, always: every edit applies to this repository (its anchor is there
//! once, its new file is not), and the manifest steps (1, 2) on a copy of
//! llm-os.system in memory make `sensor` a capability PD with generated ids,
//! while the wiring mistakes the walk-through warns about are refused with
//! the line at fault.
//!
//! as `cargo test -- --ignored` (which scripts/test.sh runs): every edit on
//! a copy of the repository (target/add-a-capability-pd/repo, built into
//! target/add-a-capability-pd/target); the op without the verifier PD's
//! mapping fails the build naming it, the whole walk-through builds (llmsh
//! without the local model, so the host's edits compile too), its hosted
//! check passes (boot with the new PD, `sensor.read` approved and executed
//! through the new channel, the reading in the receipt, the schema lists
//! the op), the new PD's seL4 image builds, `llmsh apply` on the booted copy
//! prints the reading and `llmsh prove` proves the new op's obligations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use system_manifest::{codegen, Manifest};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap()
}

/// where an edit goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum At {
    /// a new file.
    New,
    /// appended.
    End,
    /// before the one line holding the anchor.
    Before(String),
    /// after the one line holding the anchor.
    After(String),
    /// every occurrence of the anchor (at least one) becomes the text.
    Replace(String),
}

/// one edit of the walk-through.
#[derive(Debug, Clone)]
struct Edit {
    step: u32,
    path: String,
    at: At,
    text: String,
}

const SECTION: &str = "### Adding a capability PD, step by step";
const MARK: &str = "<!-- walk-through step ";

/// the walk-through's edits, in the doc's order.
fn walk_through() -> Vec<Edit> {
    let doc = read("docs/architecture.md");
    let start = doc.find(SECTION).expect("docs/architecture.md has the walk-through");
    let section = &doc[start..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut lines = section.lines();
    let mut edits = Vec::new();
    while let Some(line) = lines.next() {
        let Some(spec) = line.trim().strip_prefix(MARK).and_then(|s| s.strip_suffix(" -->")) else {
            continue;
        };
        let bad = || format!("walk-through comment `{}` is not `step N: FILE, new|end|before|after|replace `ANCHOR``", line.trim());
        let (step, rest) = spec.split_once(": ").unwrap_or_else(|| panic!("{}", bad()));
        let (path, how) = rest.split_once(", ").unwrap_or_else(|| panic!("{}", bad()));
        let at = match how {
            "new" => At::New,
            "end" => At::End,
            _ => {
                let (mode, anchor) = how.split_once(' ').unwrap_or_else(|| panic!("{}", bad()));
                let anchor = anchor.strip_prefix('`').and_then(|a| a.strip_suffix('`')).unwrap_or_else(|| panic!("{}", bad())).to_owned();
                match mode {
                    "before" => At::Before(anchor),
                    "after" => At::After(anchor),
                    "replace" => At::Replace(anchor),
                    _ => panic!("{}", bad()),
                }
            }
        };
        // the fenced block on the next line, its fence's indentation removed
        let fence = lines.next().unwrap_or_default();
        let indent = fence.len() - fence.trim_start().len();
        assert!(fence.trim_start().starts_with("```"), "no code block after `{}`", line.trim());
        let mut text = String::new();
        for l in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            let l = if l.len() >= indent && l[..indent].trim().is_empty() { &l[indent..] } else { l.trim_start() };
            text.push_str(l);
            text.push('\n');
        }
        if matches!(at, At::Replace(_)) {
            text.truncate(text.trim_end().len());
        }
        edits.push(Edit { step: step.parse().unwrap_or_else(|_| panic!("{}", bad())), path: path.to_owned(), at, text });
    }
    edits
}

/// the line range of the one line of `text` holding `anchor`.
fn the_line(text: &str, anchor: &str, path: &str) -> Result<(usize, usize), String> {
    let n = text.lines().filter(|l| l.contains(anchor)).count();
    if n != 1 {
        return Err(format!("{path}: `{anchor}` is on {n} lines, the walk-through needs it on one"));
    }
    let at = text.find(anchor).unwrap_or(0);
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
    Ok((start, end))
}

/// `edit` applied to `old` (the file's text, none if it does not exist).
fn apply(old: Option<&str>, edit: &Edit) -> Result<String, String> {
    let path = &edit.path;
    match (&edit.at, old) {
        (At::New, None) => Ok(edit.text.clone()),
        (At::New, Some(_)) => Err(format!("{path} exists: the walk-through creates it")),
        (_, None) => Err(format!("{path} does not exist")),
        (At::End, Some(t)) => Ok(format!("{t}{}", edit.text)),
        (At::Before(a), Some(t)) => {
            let (start, _) = the_line(t, a, path)?;
            Ok(format!("{}{}{}", &t[..start], edit.text, &t[start..]))
        }
        (At::After(a), Some(t)) => {
            let (_, end) = the_line(t, a, path)?;
            Ok(format!("{}{}{}", &t[..end], edit.text, &t[end..]))
        }
        (At::Replace(a), Some(t)) if t.contains(a.as_str()) => Ok(t.replace(a.as_str(), &edit.text)),
        (At::Replace(a), Some(_)) => Err(format!("{path}: `{a}` is not there to replace")),
    }
}

/// the files the edits touch, after them: read from `root` (the repository
/// or its copy), none for a file that does not exist.
fn edited(root: &Path, edits: &[Edit]) -> Result<BTreeMap<String, String>, String> {
    let mut files: BTreeMap<String, Option<String>> = BTreeMap::new();
    for e in edits {
        let old = files
            .entry(e.path.clone())
            .or_insert_with(|| std::fs::read_to_string(root.join(&e.path)).ok());
        *old = Some(apply(old.as_deref(), e)?);
    }
    Ok(files.into_iter().filter_map(|(p, t)| Some((p, t?))).collect())
}

/// llm-os.system after the manifest steps (1 and 2).
fn with_sensor() -> String {
    let manifest: Vec<Edit> = walk_through().into_iter().filter(|e| e.path == "system/llm-os.system").collect();
    assert_eq!(manifest.iter().map(|e| e.step).collect::<Vec<_>>(), [1, 2], "the manifest edits are steps 1 and 2");
    edited(&repo(), &manifest).unwrap().remove("system/llm-os.system").unwrap()
}

/// `system` with `add` before its `</system>`.
fn with(system: &str, add: &str) -> String {
    let end = system.rfind("</system>").unwrap();
    format!("{}{add}{}", &system[..end], &system[end..])
}

fn load(system: &str) -> Result<Manifest, system_manifest::ManifestError> {
    Manifest::from_texts(Path::new("llm-os.system"), system, Path::new("policy.toml"), &read("system/policy.toml"))
}

#[test]
fn every_edit_of_the_walk_through_applies_to_this_repository() {
    let edits = walk_through();
    let steps: Vec<u32> = edits.iter().map(|e| e.step).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "edits out of step order: {steps:?}");
    for step in 1..=6 {
        assert!(steps.contains(&step), "step {step} has no edit");
    }
    let files = edited(&repo(), &edits).unwrap_or_else(|e| panic!("the walk-through no longer applies: {e}"));
    assert!(files.contains_key("pds/sensor/src/main.rs") && files.contains_key("pds/hosted/tests/sensor.rs"));
}

#[test]
fn a_pd_with_a_channel_from_the_verifier_is_a_capability_pd_with_generated_ids() {
    let m = load(&with_sensor()).expect("the walk-through's manifest is accepted");
    assert!(m.capability_pds().iter().any(|p| p == "sensor"), "{:?}", m.capability_pds());
    let code = codegen::system_rs(&m).expect("code is generated");
    // the verifier's id for the new PD, and the new image's own module
    assert!(code.contains("/// ppc into `sensor`.\n        pub const SENSOR: Channel = Channel::new(5);"), "{code}");
    assert!(code.contains("pub mod sensor {"), "sensor.elf gets its module");
    let caps = code.lines().find(|l| l.starts_with("pub const CAPABILITY_PDS")).unwrap();
    assert!(caps.contains("\"sensor\""), "{caps}");
}

#[test]
fn the_walk_throughs_wiring_mistakes_are_refused_at_their_line() {
    // a channel from link straight to the new PD: a path around the verifier
    let bypass = r#"
    <channel>
        <end pd="link" id="2" pp="true" notify="false" />
        <end pd="sensor" id="1" notify="false" />
    </channel>
"#;
    let text = with(&with_sensor(), bypass);
    let e = load(&text).expect_err("link may not reach a capability PD");
    let line = text.lines().position(|l| l.contains(r#"<end pd="link" id="2""#)).unwrap() as u32 + 1;
    assert!(e.line > 0 && e.line.abs_diff(line) <= 3, "error at line {} for the channel at {line}: {e}", e.line);
    assert!(e.message.contains("verifier"), "{e}");
    // the verifier's id taken twice
    let sensor = with_sensor();
    assert_eq!(sensor.matches(r#"<end pd="verifier" id="5""#).count(), 1);
    let twice = sensor.replace(r#"<end pd="verifier" id="5""#, r#"<end pd="verifier" id="1""#);
    let e = load(&twice).expect_err("a channel id is the verifier's once");
    assert!(e.line > 0 && e.message.contains("id"), "{e}");
}

/// the repository's files (tracked, and untracked but not ignored: what a
/// person following the doc has) copied to `to`, their times kept so cargo
/// reuses what an earlier run built from unchanged files.
fn copy_repo(to: &Path) {
    let out = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(repo())
        .output()
        .expect("git lists the repository's files");
    assert!(out.status.success(), "git ls-files: {}", String::from_utf8_lossy(&out.stderr));
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    for rel in out.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let rel = std::str::from_utf8(rel).unwrap();
        let (from, dest) = (repo().join(rel), to.join(rel));
        let Ok(meta) = std::fs::symlink_metadata(&from) else {
            continue; // deleted in the work tree, not yet in the index
        };
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if meta.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &dest).unwrap();
            continue;
        }
        std::fs::copy(&from, &dest).unwrap();
        let f = std::fs::File::options().write(true).open(&dest).unwrap();
        f.set_modified(meta.modified().unwrap()).unwrap();
    }
    // libz3 where .cargo/config.toml looks for it (scripts/z3-env.sh put it there)
    std::os::unix::fs::symlink(repo().join(".cache").canonicalize().unwrap_or_else(|_| repo().join(".cache")), to.join(".cache")).unwrap();
}

fn write_files(root: &Path, files: &BTreeMap<String, String>) {
    for (rel, text) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// cargo on the copy at `root`, with the shared target dir; the build is
/// the copy's own system/ (no LLM_OS_SYSTEM or LLM_OS_POLICY from outside).
fn cargo(root: &Path, target: &Path, args: &[&str]) -> (bool, String) {
    let t = Instant::now();
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(args)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target)
        // one build, run once: no incremental state, no debug info to link
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env("CARGO_PROFILE_TEST_DEBUG", "false")
        .env_remove("LLM_OS_SYSTEM")
        .env_remove("LLM_OS_POLICY")
        .output()
        .unwrap();
    eprintln!("walk-through: cargo {} ({:.0} s)", args.join(" "), t.elapsed().as_secs_f64());
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// llmsh of the copy, built into `target`, with its own runtime and
/// config dirs under `rt` (keys, llm-osd's socket, the audit log).
/// its exit code, stdout and stderr.
fn llmsh(target: &Path, rt: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(target.join("debug/llmsh"))
        .args(args)
        .env("XDG_RUNTIME_DIR", rt)
        .env("XDG_CONFIG_HOME", rt.join("cfg"))
        .env("LLMSH_AUDIT_LOG", rt.join("audit.jsonl"))
        .env_remove("LLM_OS_DEV_KEYS")
        .env_remove("LLM_OS_SYSTEM")
        .env_remove("LLM_OS_POLICY")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// the json an llmsh command that exited 0 printed.
fn stdout_json(args: &[&str], (code, out, err): (Option<i32>, String, String)) -> serde_json::Value {
    assert_eq!(code, Some(0), "llmsh {}:\n{out}{err}", args.join(" "));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("llmsh {} printed no json ({e}):\n{out}", args.join(" ")))
}

/// the hosted system `llmsh boot` started, stopped when dropped.
struct Booted<'a>(&'a Path, &'a Path);

impl Drop for Booted<'_> {
    fn drop(&mut self) {
        let _ = llmsh(self.0, self.1, &["boot", "--stop"]);
    }
}

/// the plan of step 6, as a user hands it to `llmsh apply`.
const PLAN: &str = r#"{"version":1,"request_id":1,"session":"viewer","reason":"read the sensor","actions":[{"op":"sensor.read"}]}"#;

/// what a user runs: cargo builds llmsh (without the local model), the
/// doc's check passes, and every check of this test runs on the copy.
const LLMSH: &[&str] = &["build", "-p", "llmsh", "--no-default-features", "--bins"];

#[test]
#[ignore = "builds the walk-through's copy of the repository in target/add-a-capability-pd: scripts/test.sh runs it"]
fn the_walk_through_builds_boots_runs_the_op_and_proves_it() {
    let t = Instant::now();
    let root = repo().join("target/add-a-capability-pd/repo");
    // a target dir of its own: cargo names a workspace crate's artifacts by
    // its path inside the workspace, so a copy sharing the repository's (or
    // the edited-copy test's) target dir would reuse their artifacts and they
    // the copy's
    let target = repo().join("target/add-a-capability-pd/target");
    copy_repo(&root);
    let edits = walk_through();
    // the mistake first: the op and everything else, but not the verifier
    // PD's arm that maps it onto the channel
    let is_arm = |e: &Edit| e.path == "pds/verifier/src/lib.rs" && e.text.contains("Action::SensorRead");
    assert_eq!(edits.iter().filter(|e| is_arm(e)).count(), 1, "step 4 maps the op in the verifier PD once");
    let without: Vec<Edit> = edits.iter().filter(|e| !is_arm(e)).cloned().collect();
    write_files(&root, &edited(&root, &without).unwrap());
    let (ok, log) = cargo(&root, &target, LLMSH);
    assert!(!ok, "the op built without its mapping in the verifier PD");
    assert!(
        log.contains("pds/verifier/src/lib.rs") && log.contains("SensorRead") && log.contains("not covered"),
        "the build failure does not name the verifier PD's missing arm:\n{log}"
    );
    // the whole walk-through: llmsh builds, and the check of step 6 passes
    let arm: Vec<Edit> = edits.iter().filter(|e| is_arm(e)).cloned().collect();
    write_files(&root, &edited(&root, &arm).unwrap());
    let (ok, log) = cargo(&root, &target, LLMSH);
    assert!(ok, "the walk-through does not build:\n{log}");
    let (ok, log) = cargo(&root, &target, &["test", "-p", "hosted-system", "--test", "sensor"]);
    assert!(ok && log.contains("test a_viewer_reads_the_sensor_through_the_verifier ... ok"), "the walk-through's check failed:\n{log}");
    // the tests the walk-through edits: the capability PDs the graph check
    // pins (step 2), the reference checker that judges the op (step 5)
    let (ok, log) = cargo(&root, &target, &["test", "-p", "system-manifest", "--test", "capability_graph"]);
    assert!(ok, "the capability graph test fails on the walk-through:\n{log}");
    let (ok, log) = cargo(&root, &target, &["test", "-p", "policy-verifier", "--features", "std", "--test", "exact"]);
    assert!(ok, "the reference checker fails on the walk-through:\n{log}");
    // the new PD's seL4 image (`protection_domain!` is compiled for seL4
    // only), as pds/ci-aarch64.sh builds it from the manifest's name
    let (ok, log) = cargo(&root, &target, &["build", "-p", "pd-sensor", "--target", "aarch64-unknown-none"]);
    assert!(ok, "the sensor PD does not build for seL4:\n{log}");
    // as a user: `llmsh apply` on the booted copy shows the reading
    let rt = std::env::temp_dir().join(format!("llm-os-add-pd-{}", std::process::id()));
    std::fs::create_dir_all(&rt).unwrap();
    let plan = rt.join("sensor.json");
    std::fs::write(&plan, PLAN).unwrap();
    let booted = stdout_json(&["boot"], llmsh(&target, &rt, &["boot"]));
    let _sys = Booted(&target, &rt);
    assert_eq!(booted["system"], "hosted", "{booted}");
    let args = ["apply", "--plan", plan.to_str().unwrap(), "--json"];
    let r = stdout_json(&args, llmsh(&target, &rt, &args));
    assert_eq!((&r["approved"], &r["executed"]), (&true.into(), &1.into()), "{r}");
    assert_eq!(r["sensor"], serde_json::json!({"value": 21_500, "seq": 1}), "{r}");
    drop(_sys);
    // step 5: `llmsh prove` proves the new op's obligations, and every other
    let tp = Instant::now();
    let cex = rt.join("cex");
    let args = ["prove", "--json", "--cex-dir", cex.to_str().unwrap()];
    let report = stdout_json(&args, llmsh(&target, &rt, &args));
    let _ = std::fs::remove_dir_all(&rt);
    let all = report["obligations"].as_array().unwrap();
    let sensor: Vec<&serde_json::Value> = all.iter().filter(|o| o["action"] == "sensor.read").collect();
    assert!(all.iter().all(|o| o["result"] == "proved"), "{report}");
    for kind in ["soundness", "completeness", "precondition", "vacuity"] {
        assert!(sensor.iter().any(|o| o["kind"] == kind), "no {kind} obligation of sensor.read: {sensor:?}");
    }
    eprintln!(
        "walk-through: llmsh prove: {} obligations proved, {} of sensor.read ({:.0} s); {:.0} s in all",
        all.len(),
        sensor.len(),
        tp.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
}
