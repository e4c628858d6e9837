//! the parser and the Microkit 2.3.0 tool agree on which .system files
//! build: every fixture in system/fixtures/sdf (one per rule of the tool's
//! parser, named `accept-*` or `reject-*`), and mutations of
//! system/llm-os.system. the fixture names are checked against the parser
//! always; with $MICROKIT_SDK set, the real tool runs on every file too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;

use system_manifest::sdf;

fn system_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures() -> Vec<(String, String)> {
    let dir = system_dir().join("fixtures/sdf");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "system"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// (what is changed, the text it becomes): each an edit of llm-os.system.
fn mutations(base: &str) -> Vec<(String, String)> {
    let edits: &[(&str, &str, &str)] = &[
        ("pool size unaligned", r#"size="0x200000" page_size="0x1000""#, r#"size="0x200800" page_size="0x1000""#),
        ("pool page size 3 KiB", r#"page_size="0x1000""#, r#"page_size="0xc00""#),
        ("uart irq claimed by timer too", r#"<irq irq="30" id="1" trigger="level" />"#, r#"<irq irq="33" id="1" trigger="level" />"#),
        ("timer irq trigger pulse", r#"trigger="level""#, r#"trigger="pulse""#),
        ("worker1 id clashes with worker0", r#"name="worker1" id="1""#, r#"name="worker1" id="0""#),
        ("second program image for link", r#"<program_image path="link.elf" />"#, r#"<program_image path="link.elf" /><program_image path="verifier.elf" />"#),
        ("status maps overlap in process", r#"vaddr="0x3001000" perms="r""#, r#"vaddr="0x3000000" perms="r""#),
        ("link buffer unaligned", r#"<map mr="link_verifier" vaddr="0x3000000""#, r#"<map mr="link_verifier" vaddr="0x3000800""#),
        ("setvar used twice in memory", r#"perms="rw" setvar_vaddr="ledger_vaddr""#, r#"perms="rw" setvar_vaddr="pool_vaddr""#),
        ("cspace slot used twice", r#"<cap_sc slot="2" pd="worker1" />"#, r#"<cap_sc slot="1" pd="worker1" />"#),
        ("link stack 2 KiB", r#"name="link" priority="150" stack_size="0x10000""#, r#"name="link" priority="150" stack_size="0x800""#),
        ("verifier stack unaligned", r#"name="verifier" priority="160" stack_size="0x40000""#, r#"name="verifier" priority="160" stack_size="0x40800""#),
        ("verifier on cpu 1", r#"name="verifier" priority="160""#, r#"name="verifier" priority="160" cpu="1""#),
        ("link above verifier", r#"name="link" priority="150""#, r#"name="link" priority="170""#),
        ("timer channel id 62", r#"<end pd="timer" id="6" />"#, r#"<end pd="timer" id="62" />"#),
        ("worker budget above period", r#"name="worker2" id="2" priority="100" budget="10000" period="10000""#, r#"name="worker2" id="2" priority="100" budget="20000" period="10000""#),
        // accepted by both
        ("bigger pool", r#"size="0x200000" page_size="0x1000""#, r#"size="0x400000" page_size="0x1000""#),
        ("timer irq edge", r#"trigger="level""#, r#"trigger="edge""#),
        ("link stack 8 KiB", r#"name="link" priority="150" stack_size="0x10000""#, r#"name="link" priority="150" stack_size="0x2000""#),
        ("link buffer 3 pages", r#"<memory_region name="link_verifier" size="0x2000" />"#, r#"<memory_region name="link_verifier" size="0x3000" />"#),
    ];
    edits
        .iter()
        .map(|(what, from, to)| {
            assert!(base.contains(from), "mutation `{what}` no longer applies to llm-os.system");
            ((*what).to_owned(), base.replacen(from, to, 1))
        })
        .collect()
}

/// the tool's verdict: it parses the whole file before it looks for the
/// program images, so "cannot find the image" means the file was accepted.
fn microkit_accepts(tool: &Path, dir: &Path, name: &str, text: &str) -> (bool, String) {
    let path = dir.join(format!("{}.system", name.replace(' ', "_")));
    std::fs::write(&path, text).unwrap();
    let out = Command::new(tool)
        .args(["--board", "qemu_virt_aarch64", "--config", "debug", "-o"])
        .arg(dir.join("out.img"))
        .arg(&path)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", tool.display()));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (said.contains("unable to find program image"), said)
}

#[test]
fn every_fixture_is_judged_as_its_name_says_with_a_line() {
    let all = fixtures();
    assert!(all.len() >= 80, "{} fixtures", all.len());
    for (name, text) in &all {
        let got = sdf::parse(text);
        match (name.starts_with("accept-"), &got) {
            (true, Ok(_)) => {}
            (false, Err(e)) => {
                // only the file as a whole (no PD at all) has no line to name
                assert!(
                    e.line > 0 || name == "reject-no-protection-domain",
                    "{name}: error without a line: {e}"
                );
            }
            (true, Err(e)) => panic!("{name}: refused: {e}"),
            (false, Ok(_)) => panic!("{name}: accepted"),
        }
    }
}

#[test]
fn parser_and_microkit_tool_agree() {
    let Some(sdk) = std::env::var_os("MICROKIT_SDK") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "MICROKIT_SDK must be set in CI: the agreement with the tool is the point"
        );
        println!("SKIPPED: MICROKIT_SDK is not set; the parser was not compared with the Microkit tool");
        return;
    };
    let tool = PathBuf::from(sdk).join("bin/microkit");
    let dir = std::env::temp_dir().join(format!("llm-os-sdf-agree-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::fs::read_to_string(system_dir().join("llm-os.system")).unwrap();
    let mut cases = fixtures();
    cases.push(("llm-os".into(), base.clone()));
    cases.extend(mutations(&base));
    let mut disagree = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for (name, text) in &cases {
        let ours = sdf::parse(text);
        let (theirs, said) = microkit_accepts(&tool, &dir, name, text);
        if ours.is_ok() != theirs {
            disagree.push(format!("{name}: parser {ours:?}, tool: {}", said.trim()));
        }
        if theirs {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{} files: tool accepted {accepted}, rejected {rejected}; disagreements {}", cases.len(), disagree.len());
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
    assert!(accepted > 10 && rejected > 60, "accepted {accepted}, rejected {rejected}");
}
