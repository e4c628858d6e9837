// shared by every PD crate's build.rs (`include!`): link PD images with the
// the Microkit layout when building for seL4.
fn link_as_microkit_pd() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "none" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        println!("cargo:rustc-link-arg-bins=-T{dir}/../runtime/microkit.ld");
        println!("cargo:rerun-if-changed={dir}/../runtime/microkit.ld");
    }
}
