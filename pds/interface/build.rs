//! build script: generate `manifest` (channel ids, IRQs, regions, children,
//! cspace slots, the worker set) and `layout`'s policy numbers from
//! system/llm-os.system and system/policy.toml; a manifest that breaks a
//! rule fails the build with the file and line.

fn main() {
    system_manifest::build::generate_for_build_script();
}
