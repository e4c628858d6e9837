//! an edit of system/ alone moves every consumer: generation follows the
//! edited files (fast, always), and, as `cargo test -- --ignored` (which
//! scripts/test.sh runs), the hosted end-to-end suite passes on PDs built
//! from an edited temp copy, while a copy that breaks a rule fails the build
//! naming the line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;

use system_manifest::{codegen, Manifest};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap()
}

/// (what, from, to) edits of llm-os.system; each `from` must be present once.
const SYSTEM_EDITS: &[(&str, &str, &str)] = &[
    ("link_verifier region size", r#"<memory_region name="link_verifier" size="0x2000" />"#, r#"<memory_region name="link_verifier" size="0x3000" />"#),
    ("timer's channel id to process", r#"<end pd="timer" id="6" />"#, r#"<end pd="timer" id="9" />"#),
    ("verifier's channel id to firmware", r#"<end pd="verifier" id="4" pp="true" notify="false" />"#, r#"<end pd="verifier" id="7" pp="true" notify="false" />"#),
];
const POLICY_EDITS: &[(&str, &str)] = &[("quota_pages = 256", "quota_pages = 200"), ("workers = 4", "workers = 6")];

/// the edited copy's workers: two more than system/ has.
const EDITED_WORKERS: usize = 6;

/// `text` with `add` inserted after the one line holding `after`.
fn insert_after(text: &str, after: &str, add: &str) -> String {
    assert_eq!(text.matches(after).count(), 1, "`{after}` is no longer in llm-os.system");
    let at = text.find(after).unwrap();
    let eol = at + text[at..].find('\n').unwrap() + 1;
    format!("{}{add}{}", &text[..eol], &text[eol..])
}

/// workers 4 and 5 wired as worker3 is: a status page, the process PD's
/// children and their scheduling contexts, a timer channel each.
fn add_two_workers(sys: &str) -> String {
    let mut sys = sys.to_owned();
    for i in [5usize, 4] {
        sys = insert_after(&sys, r#"<memory_region name="status_w3" size="0x1000" />"#, &format!(
            "    <memory_region name=\"status_w{i}\" size=\"0x1000\" />\n"));
        sys = insert_after(&sys, r#"<map mr="status_w3" vaddr="0x3003000" perms="r" setvar_vaddr="status3_vaddr" />"#, &format!(
            "        <map mr=\"status_w{i}\" vaddr=\"0x300{i}000\" perms=\"r\" setvar_vaddr=\"status{i}_vaddr\" />\n"));
        sys = insert_after(&sys, r#"<cap_sc slot="4" pd="worker3" />"#, &format!(
            "            <cap_sc slot=\"{}\" pd=\"worker{i}\" />\n", i + 1));
        sys = insert_after(&sys, r#"<map mr="status_w3" vaddr="0x3100000" perms="rw" setvar_vaddr="status_vaddr" />"#, &format!(
            "        </protection_domain>\n\
             \x20       <protection_domain name=\"worker{i}\" id=\"{i}\" priority=\"100\" budget=\"10000\" period=\"10000\">\n\
             \x20           <program_image path=\"worker.elf\" />\n\
             \x20           <map mr=\"pool\" vaddr=\"0x10000000\" perms=\"rw\" setvar_vaddr=\"pool_vaddr\" />\n\
             \x20           <map mr=\"ledger\" vaddr=\"0x3000000\" perms=\"r\" setvar_vaddr=\"ledger_vaddr\" />\n\
             \x20           <map mr=\"status_w{i}\" vaddr=\"0x3100000\" perms=\"rw\" setvar_vaddr=\"status_vaddr\" />\n"));
        sys = insert_after(&sys, r#"<end pd="worker3" id="0" notify="false" />"#, &format!(
            "    </channel>\n    <channel>\n        <end pd=\"timer\" id=\"{}\" />\n        <end pd=\"worker{i}\" id=\"0\" notify=\"false\" />\n",
            i + 3));
    }
    sys
}

fn edited() -> (String, String) {
    let mut sys = read("system/llm-os.system");
    for (what, from, to) in SYSTEM_EDITS {
        assert_eq!(sys.matches(from).count(), 1, "edit `{what}` no longer applies");
        sys = sys.replacen(from, to, 1);
    }
    let sys = add_two_workers(&sys);
    let mut pol = read("system/policy.toml");
    for (from, to) in POLICY_EDITS {
        assert_eq!(pol.matches(from).count(), 1, "edit `{from}` no longer applies");
        pol = pol.replacen(from, to, 1);
    }
    (sys, pol)
}

#[test]
fn generated_code_follows_an_edit_of_system() {
    let (sys, pol) = edited();
    let m = Manifest::from_texts(Path::new("llm-os.system"), &sys, Path::new("policy.toml"), &pol).unwrap();
    let code = codegen::system_rs(&m).unwrap();
    let module = |name: &str| {
        let start = code.find(&format!("pub mod {name} {{")).unwrap();
        code[start..].split("\n}\n").next().unwrap().to_owned()
    };
    assert!(module("timer").contains("pub const PROCESS: Channel = Channel::new(9);"));
    assert!(module("verifier").contains("pub const FIRMWARE: Channel = Channel::new(7);"));
    assert!(module("link").contains(r#"RegionSpec::from_manifest("link_buf", 0x3000, true)"#));
    assert!(module("verifier").contains(r#"RegionSpec::from_manifest("link_buf", 0x3000, true)"#));
    assert!(codegen::policy_rs(&m).contains("pub const QUOTA_PAGES: u64 = 200;"));
    assert_eq!(m.workers.len(), EDITED_WORKERS);
    assert!(codegen::policy_rs(&m).contains(&format!("pub const N_WORKERS: usize = {EDITED_WORKERS};")));
    assert!(module("process").contains("pub const WORKERS: [Child; 6]"), "{}", module("process"));
}

#[test]
fn an_edit_that_breaks_a_rule_names_the_line() {
    let sys = read("system/llm-os.system");
    let pol = read("system/policy.toml");
    let line_of = |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() as u32 + 1;
    let cases: Vec<(String, String, &str, u32, &str)> = vec![
        // the pool no longer holds pool_pages pages
        (
            sys.replacen(r#"name="pool" size="0x200000""#, r#"name="pool" size="0x100000""#, 1),
            pol.clone(),
            "llm-os.system",
            line_of(&sys, r#"name="pool" size="#),
            "pool_pages",
        ),
        // a worker's declared priority is the kernel's ceiling: it must be the policy's
        (
            sys.clone(),
            pol.replacen("priority_ceiling = 100", "priority_ceiling = 90", 1),
            "llm-os.system",
            line_of(&sys, r#"name="worker0""#),
            "priority_ceiling",
        ),
        // five workers in the policy, four in the system
        (
            sys.clone(),
            pol.replacen("workers = 4", "workers = 5", 1),
            "policy.toml",
            line_of(&pol, "workers = 4"),
            "worker.elf",
        ),
        // two workers wired differently
        (
            sys.replacen(r#"<end pd="worker2" id="0" notify="false" />"#, r#"<end pd="worker2" id="3" notify="false" />"#, 1),
            pol.clone(),
            "llm-os.system",
            line_of(&sys, r#"name="worker2""#),
            "wired differently",
        ),
    ];
    for (s, p, file, line, says) in cases {
        let e = Manifest::from_texts(Path::new("llm-os.system"), &s, Path::new("policy.toml"), &p)
            .and_then(|m| codegen::system_rs(&m).map(|_| ()))
            .unwrap_err();
        assert_eq!((e.file.to_str().unwrap(), e.line), (file, line), "{e}");
        assert!(e.message.contains(says), "{e}");
    }
}

fn cargo(target: &Path, system: &Path, policy: &Path, args: &[&str]) -> std::process::Output {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(args)
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", target)
        .env("LLM_OS_SYSTEM", system)
        .env("LLM_OS_POLICY", policy)
        .output()
        .unwrap()
}

#[test]
#[ignore = "builds the PDs and the hosted system a second time, in target/manifest-edit: scripts/test.sh runs it"]
fn the_hosted_suite_passes_on_an_edited_copy_and_a_broken_copy_does_not_build() {
    let dir = std::env::temp_dir().join(format!("llm-os-edit-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("fixtures")).unwrap();
    for f in std::fs::read_dir(repo().join("system/fixtures")).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, dir.join("fixtures").join(f.file_name().unwrap())).unwrap();
        }
    }
    let (sys, pol) = edited();
    let (sys_path, pol_path) = (dir.join("llm-os.system"), dir.join("policy.toml"));
    std::fs::write(&sys_path, &sys).unwrap();
    std::fs::write(&pol_path, &pol).unwrap();
    let target = repo().join("target/manifest-edit");
    let out = cargo(&target, &sys_path, &pol_path, &["test", "-p", "hosted-system", "--test", "hosted_e2e"]);
    assert!(
        out.status.success(),
        "hosted suite on the edited copy failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // the same copy with a pool that does not fit pool_pages: the build stops at the line
    let broken = sys.replacen(r#"name="pool" size="0x200000""#, r#"name="pool" size="0x100000""#, 1);
    std::fs::write(&sys_path, &broken).unwrap();
    let line = broken.lines().position(|l| l.contains(r#"name="pool" size="#)).unwrap() + 1;
    let out = cargo(&target, &sys_path, &pol_path, &["build", "-p", "pd-memory"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "a broken manifest built");
    assert!(
        stderr.contains(&format!("llm-os.system:{line}: region `pool`")),
        "the build failure does not name the line:\n{stderr}"
    );
}
