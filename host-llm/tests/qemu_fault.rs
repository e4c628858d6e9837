//! a PD that faults on seL4 is named, fast. the image is the real system
//! with one change the Microkit tool accepts: the verifier's stack cut to
//! 16 KiB (the same PD ELFs; the stack is the tool's to map), which the
//! verifier overflows as it starts. the Microkit monitor reports the fault
//! on the console, and booting fails at once with the PD's name
//! (`system.pd_fault`) rather than after the 60 s ready timeout. (a fault
//! after boot fails the request in flight the same way: the unit tests of
//! `llmsh::qemu` feed the link the monitor's report.)
//!
//! needs the Microkit SDK (`MICROKIT_SDK`) and `qemu-system-aarch64`; without
//! them it prints one `SKIPPED: <why>` line and returns, or fails under
//! `CI=true`.

use std::time::{Duration, Instant};

mod qemu_harness;
use qemu_harness::{cannot_run, repo};

/// the verifier's stack in the faulting image.
const SMALL_STACK: &str = "0x4000";

#[test]
fn a_verifier_that_faults_at_boot_is_named_at_once() {
    if cannot_run().is_some() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("llm-os-qemu-fault-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    llmsh::osd::ensure_private(&dir, llmsh::osd::my_uid()).expect("run dir");
    // this installation's keys go into the image; the link gets a runtime dir of its own
    std::env::set_var("XDG_CONFIG_HOME", dir.join("cfg"));
    std::env::remove_var("LLM_OS_DEV_KEYS");
    llmsh::paths::use_private_runtime_dir(dir.join("run"));
    llmsh::osd::ensure_private(&dir.join("run"), llmsh::osd::my_uid()).expect("runtime dir");

    // the shipped manifest with the verifier's stack cut
    let system = std::fs::read_to_string(repo().join("system/llm-os.system")).expect("manifest");
    let verifier = system.lines().find(|l| l.contains(r#"<protection_domain name="verifier""#)).expect("verifier PD");
    let stack = verifier.split("stack_size=\"").nth(1).and_then(|s| s.split('"').next()).expect("stack_size");
    let small = system.replacen(verifier, &verifier.replace(stack, SMALL_STACK), 1);
    assert_ne!(small, system);
    let sys_path = dir.join("small-stack.system");
    std::fs::write(&sys_path, &small).expect("write manifest");

    let config = llmsh::qemu::config();
    let sdk = board_qemu_virt_aarch64::image::sdk_from_env(config).expect("sdk");
    let qemu = board_qemu_virt_aarch64::qemu::find_qemu().expect("qemu");
    let mut opts = llmsh::qemu::image_options(sdk, config).expect("image options");
    opts.system = sys_path;
    opts.out_dir = dir.join("image");
    let img = board_qemu_virt_aarch64::image::build(&opts, &mut |l| println!("image: {l}")).expect("image builds");
    let t = Instant::now();
    let booted = llmsh::qemu::boot_image(&qemu, &img.loader, &mut |l| println!("qemu: {l}"));
    let took = t.elapsed();
    let e = match booted {
        Err(e) => e,
        Ok(_) => panic!("a system whose verifier faults booted"),
    };
    println!("boot: {e} after {} ms", took.as_millis());
    assert!(matches!(&e, llmsh::qemu::QemuError::Fault(pd) if pd == "verifier"), "{e}");
    assert_eq!(e.code().name(), "system.pd_fault");
    // named as the monitor reports it, not after the ready timeout
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
