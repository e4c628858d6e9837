//! the manifest steps of docs/architecture.md's walk-through "adding a
//! capability PD", done on a copy of system/llm-os.system in memory: the new
//! PD and its channel from the verifier are all it takes for the graph check
//! to count it as a capability PD and for the generated code to give the
//! verifier its channel; the wiring mistakes the walk-through warns about
//! are refused with the line at fault.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]

use std::path::Path;

use system_manifest::{codegen, Manifest};

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)).unwrap()
}

/// step 1 of the walk-through: the PD, after the firmware PD.
const PD: &str = r#"
    <!-- sensor: a read-only capability PD of the walk-through. -->
    <protection_domain name="sensor" priority="200" stack_size="0x4000">
        <program_image path="sensor.elf" />
    </protection_domain>
"#;

/// step 2: its one channel, a PPC from the verifier (the next free id).
const CHANNEL: &str = r#"
    <channel>
        <end pd="verifier" id="5" pp="true" notify="false" />
        <end pd="sensor" id="0" notify="false" />
    </channel>
"#;

/// `text` with `add` inserted after the line holding `after` (once).
fn insert_after(text: &str, after: &str, add: &str) -> String {
    assert_eq!(text.matches(after).count(), 1, "`{after}` is no longer in llm-os.system once");
    let at = text.find(after).unwrap();
    let eol = at + text[at..].find("</protection_domain>").unwrap() + "</protection_domain>\n".len();
    format!("{}{add}{}", &text[..eol], &text[eol..])
}

fn with_sensor(channel: &str) -> String {
    let sys = read("llm-os.system");
    let sys = insert_after(&sys, r#"<protection_domain name="firmware""#, PD);
    let end = sys.rfind("</system>").unwrap();
    format!("{}{channel}{}", &sys[..end], &sys[end..])
}

fn load(system: &str) -> Result<Manifest, system_manifest::ManifestError> {
    Manifest::from_texts(Path::new("llm-os.system"), system, Path::new("policy.toml"), &read("policy.toml"))
}

#[test]
fn a_pd_with_a_channel_from_the_verifier_is_a_capability_pd_with_generated_ids() {
    let m = load(&with_sensor(CHANNEL)).expect("the walk-through's manifest is accepted");
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
    let text = with_sensor(&format!("{CHANNEL}{bypass}"));
    let e = load(&text).expect_err("link may not reach a capability PD");
    let line = text.lines().position(|l| l.contains(r#"<end pd="link" id="2""#)).unwrap() as u32 + 1;
    assert!(e.line > 0 && e.line.abs_diff(line) <= 3, "error at line {} for the channel at {line}: {e}", e.line);
    assert!(e.message.contains("verifier"), "{e}");
    // the verifier's id taken twice
    let twice = with_sensor(&CHANNEL.replace(r#"id="5""#, r#"id="1""#));
    let e = load(&twice).expect_err("a channel id is the verifier's once");
    assert!(e.line > 0 && e.message.contains("id"), "{e}");
}
