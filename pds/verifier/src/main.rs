//! the verifier PD's image: glue between the seL4 runtime and [`pd_verifier`].
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use pd_runtime::Region;

    pd_interface::verifier_setvars!();

    fn init() -> Result<pd_verifier::Verifier, pd_verifier::VerifierError> {
        Ok(pd_verifier::Verifier::init(Region::from_setvar(&link_buf)))
    }

    pd_runtime::protection_domain!(pd_verifier::Verifier, init);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the verifier PD runs under seL4 (aarch64-unknown-none) or in the hosted system (`llmsh boot`)");
}
