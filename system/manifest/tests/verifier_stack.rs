//! the verifier PD's stack follows the worker count: a `stack_size` below
//! `verifier_stack_need` is refused at the verifier's line, the shipped
//! system passes, and the rule refuses the 64 KiB stack that faulted the
//! verifier on seL4 at 16 workers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]

use std::path::Path;

use system_manifest::{build, graph, verifier_stack_need, Manifest};

fn read(rel: &str) -> String {
    std::fs::read_to_string(build::repo_root().join(rel)).unwrap()
}

const SHIPPED: &str = r#"name="verifier" priority="160" stack_size="0x40000""#;

#[test]
fn the_shipped_system_gives_the_verifier_the_stack_it_needs() {
    let sys = read("system/llm-os.system");
    let m = Manifest::from_texts(Path::new("llm-os.system"), &sys, Path::new("policy.toml"), &read("system/policy.toml")).unwrap();
    let v = m.system.pds.iter().find(|pd| pd.name == graph::GUARD).unwrap();
    let link = m.system.region("link_verifier").unwrap();
    assert!(v.stack_size >= verifier_stack_need(m.workers.len() as u64, link.size));
    assert_eq!(sys.matches(SHIPPED).count(), 1, "the verifier's line changed");
}

#[test]
fn a_verifier_stack_too_small_for_the_workers_is_refused_at_its_line() {
    let sys = read("system/llm-os.system");
    let pol = read("system/policy.toml");
    let line = sys.lines().position(|l| l.contains(SHIPPED)).unwrap() as u32 + 1;
    let need = verifier_stack_need(4, 0x2000);
    assert!(pol.contains("workers = 4") && sys.contains(r#"<memory_region name="link_verifier" size="0x2000" />"#));
    // a page short of the need is refused, the need itself passes
    for (stack, ok) in [(need - 0x1000, false), (need, true)] {
        let small = sys.replacen(SHIPPED, &format!(r#"name="verifier" priority="160" stack_size="{stack:#x}""#), 1);
        let r = Manifest::from_texts(Path::new("llm-os.system"), &small, Path::new("policy.toml"), &pol);
        match (r, ok) {
            (Ok(_), true) => {}
            (Err(e), false) => {
                assert_eq!((e.file.to_str().unwrap(), e.line), ("llm-os.system", line), "{e}");
                assert!(e.message.contains("stack_size") && e.message.contains("4 workers"), "{e}");
            }
            (r, _) => panic!("stack {stack:#x}: {r:?}"),
        }
    }
}

#[test]
fn the_need_grows_with_the_workers_and_the_link_buffer() {
    // 64 KiB faulted the verifier on its first plan at 16 workers (seL4)
    assert!(verifier_stack_need(16, 0x2000) > 0x10000);
    // the shipped 256 KiB serves the manifest's most workers
    assert!(verifier_stack_need(32, 0x2000) <= 0x40000);
    assert!(verifier_stack_need(5, 0x2000) > verifier_stack_need(4, 0x2000));
    assert_eq!(verifier_stack_need(4, 0x3000) - verifier_stack_need(4, 0x2000), 0x2000);
}
