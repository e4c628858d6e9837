//! build script: link the PD image with the Microkit layout for seL4.
include!("../runtime/build_support.rs");

fn main() {
    link_as_microkit_pd();
}
